//! Insights' rollups in the archive: each run's facts (`insights::RunFacts`) in `run_facts`,
//! beside its row of `executions`. A row is copied from its execution's row whenever that is
//! written (in the same transaction), so it holds the same version, deletion and namespace
//! incarnation; the rules that made the rows are versioned, and rows made by other rules (or
//! none, as after the migration that adds the table) are rebuilt from the stored documents.

use std::collections::HashSet;

use futures::TryStreamExt;
use sqlx::{AnyPool, Row};

use super::incarnation::Incarnations;
use crate::insights::{Millis, RunFacts};
use crate::model::ExecutionView;
use crate::query::ExecutionFilter;

/// The version of the rules in `insights::facts`: a change to what a run's facts are is a new
/// number here, and archives made under the old one are rebuilt when they connect.
pub const FACTS_VERSION: i64 = 1;

/// Rows rebuilt per transaction.
const REBUILD_BATCH: usize = 1000;

/// Copies the execution's row at this version into `run_facts` with its facts; a version the
/// execution's row no longer holds (a newer one was written) copies nothing.
const COPY: &str = "INSERT INTO run_facts (namespace, name, uid, pipeline, labels, configmap_created, deleted_at, \
    last_counted, facts) \
    SELECT namespace, name, uid, pipeline, labels, configmap_created, deleted_at, $4, $5 FROM executions \
    WHERE namespace = $1 AND name = $2 AND uid = $3 AND resource_version = $6 \
    ON CONFLICT (namespace, name, uid) DO UPDATE SET pipeline = excluded.pipeline, labels = excluded.labels, \
    configmap_created = excluded.configmap_created, deleted_at = excluded.deleted_at, \
    last_counted = excluded.last_counted, facts = excluded.facts";

/// A run's facts as stored: JSON, and the latest time they count at.
pub struct StoredFacts {
    pub facts: String,
    pub last_counted: Option<Millis>,
}

impl StoredFacts {
    pub fn of(view: &ExecutionView) -> StoredFacts {
        let facts = RunFacts::of(view);
        StoredFacts { last_counted: facts.last_counted(), facts: serde_json::to_string(&facts).unwrap_or_default() }
    }

    /// The facts of a detail body as it was served; `None` for one this version cannot read.
    pub fn of_detail(detail: &str) -> Option<StoredFacts> {
        #[derive(serde::Deserialize)]
        struct Served {
            execution: ExecutionView,
        }
        let served: Served = serde_json::from_str(detail).ok()?;
        Some(StoredFacts::of(&served.execution))
    }
}

/// The execution `(namespace, name, uid)` at `resource_version` has these facts.
pub async fn copy<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
    executor: E,
    (namespace, name, uid): (&str, &str, &str),
    resource_version: &str,
    facts: &StoredFacts,
) -> Result<(), sqlx::Error> {
    sqlx::query(COPY)
        .bind(namespace)
        .bind(name)
        .bind(uid)
        .bind(facts.last_counted)
        .bind(facts.facts.as_str())
        .bind(resource_version)
        .execute(executor)
        .await
        .map(drop)
}

/// Whether the rows were made by other rules than this binary's (or not made yet).
pub async fn stale(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    let version: Option<i64> = sqlx::query("SELECT MAX(version) FROM run_facts_version").fetch_one(pool).await?.get(0);
    Ok(version != Some(FACTS_VERSION))
}

/// Makes every run's facts again from its stored document, then marks them made by this
/// binary's rules: the number of runs. Versions written meanwhile are kept (see `COPY`).
pub async fn rebuild(pool: &AnyPool) -> Result<u64, sqlx::Error> {
    let mut rows = sqlx::query("SELECT namespace, name, uid, resource_version, detail FROM executions").fetch(pool);
    let (mut batch, mut made) = (Vec::with_capacity(REBUILD_BATCH), 0u64);
    while let Some(row) = rows.try_next().await? {
        let key: (String, String, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
        // A document this version cannot read counts for nothing rather than stopping the rest.
        let Some(facts) = StoredFacts::of_detail(&row.get::<String, _>(4)) else { continue };
        batch.push((key, facts));
        if batch.len() == REBUILD_BATCH {
            made += write(pool, std::mem::take(&mut batch)).await?;
        }
    }
    made += write(pool, batch).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM run_facts_version").execute(&mut *tx).await?;
    sqlx::query("INSERT INTO run_facts_version (version) VALUES ($1)").bind(FACTS_VERSION).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(made)
}

async fn write(
    pool: &AnyPool,
    batch: Vec<((String, String, String, String), StoredFacts)>,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    for ((namespace, name, uid, version), facts) in &batch {
        copy(&mut *tx, (namespace, name, uid), version, facts).await?;
    }
    tx.commit().await?;
    Ok(batch.len() as u64)
}

/// One archived run's rollup as stored: parsed (and filtered) by whoever counts it.
pub struct StoredRun {
    pub namespace: String,
    /// The ConfigMap's labels as JSON; empty unless the filter asks for labels.
    pub labels: String,
    /// `insights::RunFacts` as JSON.
    pub facts: String,
}

/// Rows handed on at a time.
pub const CHUNK: usize = 2000;

/// The rollups of runs whose ConfigMaps are gone, counted at or after `from`, of the namespaces
/// `filter` reads (one at a time, as lists read them) and of its pipeline, sent in chunks of
/// `CHUNK` (waiting while the counter is behind): the rest of the filter is the counter's to
/// check. A counter that has gone stops the read. Rows of an earlier namespace of
/// that name, and those `skip` names (by name and uid), are left out.
pub async fn archived(
    pool: &AnyPool,
    (filter, from): (&ExecutionFilter, Millis),
    incarnations: &Incarnations,
    skip: &HashSet<(String, String)>,
    to: &tokio::sync::mpsc::Sender<Vec<StoredRun>>,
) -> Result<(), sqlx::Error> {
    let labels = if filter.labels.is_some() { "labels" } else { "''" };
    let select = format!(
        "SELECT namespace, name, uid, {labels}, facts, configmap_created FROM run_facts \
         WHERE deleted_at IS NOT NULL AND last_counted >= $1"
    );
    let pipeline = filter.pipeline.as_deref();
    let namespaces: Vec<Option<&str>> = match filter.namespaces() {
        None => vec![None],
        Some(named) => named.into_iter().map(Some).collect(),
    };
    let mut chunk = Vec::with_capacity(CHUNK);
    for namespace in namespaces {
        let sql = match (namespace, pipeline) {
            (Some(_), Some(_)) => format!("{select} AND namespace = $2 AND pipeline = $3"),
            (Some(_), None) => format!("{select} AND namespace = $2"),
            (None, Some(_)) => format!("{select} AND pipeline = $2"),
            (None, None) => select.clone(),
        };
        // Only placeholders are written into the text; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from);
        query = match namespace {
            Some(ns) => query.bind(ns),
            None => query,
        };
        query = match pipeline {
            Some(p) => query.bind(p),
            None => query,
        };
        let mut rows = query.fetch(pool);
        while let Some(row) = rows.try_next().await? {
            let namespace: String = row.get(0);
            let gone = skip.contains(&(row.get(1), row.get(2)));
            if gone || !incarnations.current(&namespace, row.get(5)) {
                continue;
            }
            chunk.push(StoredRun { namespace, labels: row.get(3), facts: row.get(4) });
            if chunk.len() == CHUNK && to.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).await.is_err()
            {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        let _ = to.send(chunk).await;
    }
    Ok(())
}
