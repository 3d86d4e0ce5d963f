//! The archive's SQL: opening (with the embedded migrations), writing a batch of notes in one
//! transaction, pruning. Every statement is in the SQL SQLite and PostgreSQL share.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::MigrateError;
use sqlx::{AnyPool, Executor, Row};

use super::ArchiveUrl;
use super::incarnation::Incarnations;
use super::rollup::{self, StoredFacts};
use super::runs::{ArchivedLoad, from_summary};
use super::{ArchiveKey, Note, Stored, Synced};
use crate::model::ObjectRef;
use crate::query::ExecutionFilter;
use crate::wire::Tag;
use futures::TryStreamExt;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Connections to the database: `READS` of them for requests' lists and pages at most and two
/// for insights (one read at a time, of two windows at once: see `ReadBudget` and
/// `rollup::windows_in_flight`), the rest for the writer and the pruner.
const CONNECTIONS: u32 = 8;

/// Connects and brings the schema up to date. Replicas may do this at once: the migrator
/// takes a lock where the database has one. SQLite has none, so within a process (the writer
/// and the warm start open their own pools) migrations run one at a time: a second migrator
/// racing the first fails on a locked file, which made the first start after an upgrade cold.
pub async fn open(url: &ArchiveUrl) -> Result<AnyPool, sqlx::Error> {
    static MIGRATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(CONNECTIONS)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url.0)
        .await?;
    let migrating = MIGRATING.lock().await;
    if url.is_sqlite() {
        // Readers never wait for the writer; persisted in the file. Under the lock too: a pool
        // switching a new file to WAL while another migrates it failed on a locked file.
        pool.execute("PRAGMA journal_mode = WAL").await?;
    }
    MIGRATOR.run(&pool).await.map_err(|e| match e {
        // A migration this binary does not know: a newer execwatch wrote this archive, and
        // this one must not write rows that newer schema does not expect.
        MigrateError::VersionMissing(version) => sqlx::Error::Configuration(
            format!(
                "the archive was migrated by a newer execwatch (its migration {version} is unknown to this one); \
                 run that version, or give this one another database"
            )
            .into(),
        ),
        e => e.into(),
    })?;
    drop(migrating);
    Ok(pool)
}

/// Writes a version (and, for a deletion, when), never over a newer version another replica
/// wrote; a deletion stays marked against the same version written again by a replica that had
/// not seen it yet.
const UPSERT: &str = "INSERT INTO executions (namespace, name, uid, resource_version, version_order, \
    schema_set, pipeline, phase, sort_time, started_at, finished_at, labels, summary, detail, \
    first_seen, last_seen, deleted_at, list_key, configmap_created, served_view, detail_tag, summary_tag) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
    ON CONFLICT (namespace, name, uid) DO UPDATE SET \
    resource_version = excluded.resource_version, version_order = excluded.version_order, \
    schema_set = excluded.schema_set, pipeline = excluded.pipeline, phase = excluded.phase, \
    sort_time = excluded.sort_time, started_at = excluded.started_at, \
    finished_at = excluded.finished_at, labels = excluded.labels, summary = excluded.summary, \
    detail = excluded.detail, served_view = excluded.served_view, detail_tag = excluded.detail_tag, \
    summary_tag = excluded.summary_tag, configmap_created = COALESCE(excluded.configmap_created, executions.configmap_created), \
    last_seen = CASE WHEN executions.last_seen > excluded.last_seen THEN executions.last_seen \
        ELSE excluded.last_seen END, \
    deleted_at = CASE WHEN executions.version_order < excluded.version_order THEN excluded.deleted_at \
        ELSE COALESCE(executions.deleted_at, excluded.deleted_at) END \
    WHERE executions.version_order <= excluded.version_order";

/// Writes every note of `batch` in one transaction.
pub async fn write(pool: &AnyPool, batch: &[(ArchiveKey, Note)], schema_set: &str) -> Result<(), sqlx::Error> {
    let rows: Vec<StoredNote> = batch.iter().map(|(key, note)| StoredNote::of(key, note)).collect();
    write_rows(pool, rows, schema_set).await
}

/// Writes these rows in one transaction.
pub async fn write_rows(pool: &AnyPool, rows: Vec<StoredNote>, schema_set: &str) -> Result<(), sqlx::Error> {
    // Notes spooled by a version before insights carry no facts: made from the document.
    let facts: Vec<Option<StoredFacts>> = rows
        .iter()
        .map(|row| match (&row.facts, row.last_counted) {
            (Some(facts), last_counted) => Some(StoredFacts { facts: facts.clone(), last_counted }),
            (None, _) => row.detail.as_deref().and_then(StoredFacts::of_detail),
        })
        .collect();
    // One statement may not update a row twice (PostgreSQL refuses it): the last note of each
    // execution stands, as it does for its row.
    let mut seen = std::collections::HashSet::new();
    let mut copied: Vec<rollup::Copied<'_>> = rows
        .iter()
        .zip(&facts)
        .rev()
        .filter_map(|(row, facts)| {
            let key = (row.namespace.as_str(), row.name.as_str(), row.uid.as_str());
            let facts = facts.as_ref().filter(|_| seen.insert(key))?;
            Some(rollup::Copied { key, resource_version: &row.resource_version, facts })
        })
        .collect();
    copied.reverse();
    let mut tx = pool.begin().await?;
    for row in &rows {
        match row.detail {
            Some(_) => upsert(row, schema_set).execute(&mut *tx).await?,
            None => mark(row).execute(&mut *tx).await?,
        };
    }
    // Their rollups, as the rows now hold them.
    rollup::copy(&mut tx, &copied).await?;
    tx.commit().await
}

/// One note as the archive stores it: what `UPSERT` binds, owned, so that notes can wait in
/// the spool across a restart.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredNote {
    namespace: String,
    name: String,
    uid: String,
    resource_version: String,
    pipeline: String,
    phase: String,
    sort_time: i64,
    started_at: Option<String>,
    finished_at: Option<String>,
    labels: String,
    summary: String,
    /// `None` for a version a warm start restored and has not read back: the row holds it.
    detail: Option<String>,
    seen: i64,
    deleted: Option<i64>,
    /// When its ConfigMap was created (the API server's clock), where known.
    #[serde(default)]
    configmap_created: Option<i64>,
    /// Its insights facts (`rollup`), and the latest time they count at.
    #[serde(default)]
    facts: Option<String>,
    #[serde(default)]
    last_counted: Option<i64>,
    /// What a warm start reads instead of computing it (see `Stored`); none in notes spooled
    /// by a version before.
    #[serde(default)]
    served_view: Option<String>,
    #[serde(default)]
    detail_tag: Option<String>,
    #[serde(default)]
    summary_tag: Option<String>,
}

impl StoredNote {
    pub fn of(key: &ArchiveKey, note: &Note) -> StoredNote {
        let (entry, seen, deleted) = match note {
            Note::Served(entry, at) => (entry, *at, None),
            Note::Deleted(entry, at) => (entry, *at, Some(millis(*at))),
        };
        let text = |bytes: &bytes::Bytes| String::from_utf8_lossy(bytes).into_owned();
        let facts = StoredFacts::of(&entry.view);
        StoredNote {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            uid: key.uid.clone(),
            resource_version: entry.resource_version.clone(),
            pipeline: entry.view.pipeline.clone(),
            phase: entry.view.phase.as_str().to_owned(),
            sort_time: millis(entry.sort_time),
            started_at: entry.view.started_at.clone(),
            finished_at: entry.view.finished_at.clone(),
            labels: serde_json::to_string(&entry.labels).unwrap_or_default(),
            summary: text(&entry.summary.bytes),
            detail: entry.detail.loaded().map(text),
            seen: millis(seen),
            deleted,
            configmap_created: entry.created.map(millis),
            facts: Some(facts.facts),
            last_counted: facts.last_counted,
            served_view: serde_json::to_string(&entry.view).ok(),
            detail_tag: Some(entry.detail.tag.to_hex()),
            summary_tag: Some(entry.summary.tag.to_hex()),
        }
    }
}

/// Marks what a row holds at this very version as seen (and deleted), for a note of a version
/// whose detail the service never read back (a warm start's): the row is all there is of it,
/// so nothing else is written. A row replaced by a newer version is left as it is.
const MARK: &str = "UPDATE executions SET \
    last_seen = CASE WHEN last_seen > $1 THEN last_seen ELSE $2 END, deleted_at = COALESCE(deleted_at, $3) \
    WHERE namespace = $4 AND name = $5 AND uid = $6 AND resource_version = $7";

fn mark(row: &StoredNote) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(MARK)
        .bind(row.seen)
        .bind(row.seen)
        .bind(row.deleted)
        .bind(row.namespace.as_str())
        .bind(row.name.as_str())
        .bind(row.uid.as_str())
        .bind(row.resource_version.as_str())
}

fn upsert<'q>(row: &'q StoredNote, schema_set: &'q str) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(UPSERT)
        .bind(row.namespace.as_str())
        .bind(row.name.as_str())
        .bind(row.uid.as_str())
        .bind(row.resource_version.as_str())
        // etcd's resourceVersions are numbers; anything else orders as 0, last write wins.
        .bind(row.resource_version.parse::<i64>().unwrap_or(0))
        .bind(schema_set)
        .bind(row.pipeline.as_str())
        .bind(row.phase.as_str())
        .bind(row.sort_time)
        .bind(row.started_at.clone())
        .bind(row.finished_at.clone())
        .bind(row.labels.as_str())
        .bind(row.summary.as_str())
        .bind(row.detail.as_deref())
        .bind(row.seen)
        .bind(row.seen)
        .bind(row.deleted)
        .bind(list_key(&row.namespace, &row.name))
        .bind(row.configmap_created)
        .bind(row.served_view.clone())
        .bind(row.detail_tag.clone())
        .bind(row.summary_tag.clone())
}

/// The bytes ties of `sort_time` are ordered by: as Rust orders (namespace, name).
fn list_key(namespace: &str, name: &str) -> Vec<u8> {
    [namespace.as_bytes(), &[0], name.as_bytes()].concat()
}

/// Deletes up to `batch` rows of executions deleted from the cluster before `before`: the
/// number deleted, so the caller goes on until none is left without holding a long lock.
pub async fn prune(pool: &AnyPool, before: Timestamp, batch: i64) -> Result<u64, sqlx::Error> {
    let mut done = 0;
    // Their rollups first: a rollup is never left without its row for long.
    for table in ["run_facts", "executions"] {
        // The table's name is one of these two; every value is bound.
        let sql = format!(
            "DELETE FROM {table} WHERE (namespace, name, uid) IN \
             (SELECT namespace, name, uid FROM {table} WHERE deleted_at < $1 LIMIT $2)"
        );
        done =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(millis(before)).bind(batch).execute(pool).await?.rows_affected();
    }
    Ok(done)
}

/// Every archived run (the latest deletion of each name), for pipelines' whole history: read as
/// a stream into `load`, which adds them up, so the rows are never all in memory at once.
pub async fn archived_runs(
    pool: &AnyPool,
    load: &mut ArchivedLoad,
    incarnations: &Incarnations,
) -> Result<(), sqlx::Error> {
    let sql = "SELECT sort_time, summary, deleted_at, namespace, configmap_created FROM executions e \
               WHERE deleted_at IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM executions l WHERE l.namespace = e.namespace AND l.name = e.name \
               AND l.uid <> e.uid AND (l.deleted_at IS NULL OR l.deleted_at > e.deleted_at \
               OR (l.deleted_at = e.deleted_at AND l.uid > e.uid)))";
    let mut rows = sqlx::query(sql).fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let (namespace, created): (String, Option<i64>) = (row.get(3), row.get(4));
        if !incarnations.current(&namespace, created) {
            continue;
        }
        let summary: String = row.get(1);
        // A row this version cannot read is left out of the counts, never fatal.
        if let Some(run) = from_summary(&summary, timestamp(row.get(0)), timestamp(row.get(2))) {
            load.add(run);
        }
    }
    Ok(())
}

/// The executions of the relisted namespace (or, for a directory, every one) the archive holds
/// as existing (see [`Synced`]).
pub async fn undeleted(pool: &AnyPool, synced: &Synced) -> Result<Vec<ArchiveKey>, sqlx::Error> {
    let select = "SELECT namespace, name, uid FROM executions WHERE deleted_at IS NULL";
    let rows = match &synced.namespace {
        Some(namespace) => {
            let sql = format!("{select} AND namespace = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(namespace.as_str()).fetch_all(pool).await?
        }
        None => sqlx::query(select).fetch_all(pool).await?,
    };
    Ok(rows.into_iter().map(|r| ArchiveKey { namespace: r.get(0), name: r.get(1), uid: r.get(2) }).collect())
}

/// The uid and resourceVersion of every row of these names in `namespace`, by name.
pub async fn versions(
    pool: &AnyPool,
    namespace: &str,
    names: &[&str],
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let each: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT name, uid, resource_version FROM executions WHERE namespace = $1 AND name IN ({})",
        each.join(", ")
    );
    // Only placeholders are written into the text; every value is bound.
    let mut select = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(namespace);
    for name in names {
        select = select.bind(*name);
    }
    let rows = select.fetch_all(pool).await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// Marks these executions deleted at `at`, and their insights rollups, in one transaction.
pub async fn mark_deleted(pool: &AnyPool, gone: &[ArchiveKey], at: Timestamp) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for key in gone {
        for table in ["executions", "run_facts"] {
            // The table's name is one of these two; every value is bound.
            let sql = format!(
                "UPDATE {table} SET deleted_at = $1 WHERE namespace = $2 AND name = $3 AND uid = $4 \
                 AND deleted_at IS NULL"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(millis(at))
                .bind(key.namespace.as_str())
                .bind(key.name.as_str())
                .bind(key.uid.as_str())
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await
}

/// The stored versions of executions that still exist (of one namespace, or all), validated
/// under `schema_set`: each one's namespace, name, labels and what was served, passed to `take`
/// as it arrives.
pub async fn stored(
    pool: &AnyPool,
    namespace: Option<&str>,
    schema_set: &str,
    mut take: impl FnMut(String, String, BTreeMap<String, String>, Stored),
) -> Result<(), sqlx::Error> {
    let mut rows = live(pool, STORED, namespace, schema_set);
    while let Some(r) = rows.try_next().await? {
        let row = StoredRow {
            id: (r.get(0), r.get(1)),
            uid: r.get(2),
            resource_version: r.get(3),
            sort_time: r.get(4),
            detail: r.get(5),
            summary: r.get(6),
            labels: r.get(7),
            served_view: r.get(8),
            tags: (r.get(9), r.get(10)),
        };
        row.take(&mut take);
    }
    Ok(())
}

/// `stored`, over a SQLite file, read on the calling thread (a blocking one) without sqlx: its
/// SQLite driver hands each row from its own thread to the caller's through a channel, waking
/// one for the other row by row, which made a warm start's 100 000 rows take 0.85 s (1.1 s of
/// CPU) where reading them here takes 0.5 s (0.5 s). The rows are taken (their JSON parsed)
/// on a second thread, a chunk at a time, while this one reads on. Stops, failing, once
/// `cancelled` is set.
pub fn stored_from_file(
    path: &std::path::Path,
    namespace: Option<&str>,
    schema_set: &str,
    cancelled: &std::sync::atomic::AtomicBool,
    mut take: impl FnMut(String, String, BTreeMap<String, String>, Stored) + Send,
) -> rusqlite::Result<()> {
    const CHUNK: usize = 1024;
    let connection = open_file(path)?;
    // The same statements as `live`: SQLite numbers `$1` and `$2` in order of appearance.
    let by_namespace = format!("{STORED} AND namespace = $2");
    let mut statement = connection.prepare(if namespace.is_some() { &by_namespace } else { STORED })?;
    let mut rows = match namespace {
        Some(namespace) => statement.query((schema_set, namespace))?,
        None => statement.query((schema_set,))?,
    };
    std::thread::scope(|scope| {
        let (chunks, taken) = std::sync::mpsc::sync_channel::<Vec<StoredRow>>(4);
        scope.spawn(move || taken.into_iter().flatten().for_each(|row| row.take(&mut take)));
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(r) = rows.next()? {
            if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
                    Some("given up".to_owned()),
                ));
            }
            chunk.push(StoredRow {
                id: (r.get(0)?, r.get(1)?),
                uid: r.get(2)?,
                resource_version: r.get(3)?,
                sort_time: r.get(4)?,
                detail: r.get(5)?,
                summary: r.get(6)?,
                labels: r.get(7)?,
                served_view: r.get(8)?,
                tags: (r.get(9)?, r.get(10)?),
            });
            if chunk.len() == CHUNK {
                // The taking thread only stops once this one has.
                let _ = chunks.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
            }
        }
        let _ = chunks.send(chunk);
        Ok(())
    })
}

/// What the archive kept of a directory's files (`directory` is its shard's name): each one's
/// name, stamp and digest, as `remember_files` wrote them.
pub async fn kept_files(pool: &AnyPool, directory: &str) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    let rows = sqlx::query(KEPT_FILES).bind(directory).fetch_all(pool).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// `kept_files`, from a SQLite file on the calling thread (a blocking one), as `stored_from_file`.
pub fn kept_files_from_file(
    path: &std::path::Path,
    directory: &str,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let connection = open_file(path)?;
    let mut statement = connection.prepare(KEPT_FILES)?;
    let rows = statement.query_map((directory,), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

const KEPT_FILES: &str = "SELECT name, stamp, digest FROM dir_files WHERE directory = $1";

/// Keeps what a directory's files were read as (stamp and digest), or forgets them (`None`), a
/// thousand to a transaction so the archive's writer never waits long behind them.
pub async fn remember_files(
    pool: &AnyPool,
    directory: &str,
    files: &[(String, Option<(String, String)>)],
) -> Result<(), sqlx::Error> {
    for chunk in files.chunks(1000) {
        let mut tx = pool.begin().await?;
        for (name, kept) in chunk {
            let statement = match kept {
                Some((stamp, digest)) => sqlx::query(
                    "INSERT INTO dir_files (directory, name, stamp, digest) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (directory, name) DO UPDATE SET stamp = excluded.stamp, digest = excluded.digest",
                )
                .bind(directory)
                .bind(name.as_str())
                .bind(stamp.as_str())
                .bind(digest.as_str()),
                None => sqlx::query("DELETE FROM dir_files WHERE directory = $1 AND name = $2")
                    .bind(directory)
                    .bind(name.as_str()),
            };
            statement.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// A connection of its own to a SQLite archive, for a warm start's reads on a blocking thread.
fn open_file(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    // Opened for writing (never creating) though it only reads: a read-only connection to a
    // file in WAL mode fails where the WAL's index file is missing and the directory read-only.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = rusqlite::Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    Ok(connection)
}

/// What a warm start reads of each live row. The detail (9 kB, most of each row) only where
/// the row lacks what a warm start reads instead: the others' are read once the shard is
/// listed (`details`).
const STORED: &str = "SELECT namespace, name, uid, resource_version, sort_time, \
    CASE WHEN served_view IS NULL OR detail_tag IS NULL OR summary_tag IS NULL THEN detail END, \
    summary, labels, served_view, detail_tag, summary_tag \
    FROM executions WHERE deleted_at IS NULL AND schema_set = $1";

/// The columns of `STORED`, as read, whichever client read them.
struct StoredRow {
    id: (String, String),
    uid: String,
    resource_version: String,
    sort_time: i64,
    detail: Option<String>,
    summary: String,
    labels: String,
    served_view: Option<String>,
    tags: (Option<String>, Option<String>),
}

impl StoredRow {
    /// Passes the row to `take` as namespace, name, labels and the version stored.
    fn take(self, take: &mut impl FnMut(String, String, BTreeMap<String, String>, Stored)) {
        let labels = serde_json::from_str(&self.labels).unwrap_or_default();
        let version = Stored {
            uid: self.uid,
            resource_version: self.resource_version,
            sort_time: timestamp(self.sort_time),
            detail: self.detail,
            summary: self.summary,
            served_view: self.served_view.and_then(|view| serde_json::from_str(&view).ok()),
            tags: (tag(self.tags.0), tag(self.tags.1)),
        };
        take(self.id.0, self.id.1, labels, version);
    }
}

/// The rows `select` reads of executions that still exist, validated under `schema_set` (its
/// `$1`), of `namespace` (every one with `None`).
fn live<'a>(
    pool: &'a AnyPool,
    select: &'static str,
    namespace: Option<&'a str>,
    schema_set: &'a str,
) -> futures::stream::BoxStream<'a, Result<sqlx::any::AnyRow, sqlx::Error>> {
    // Two statements, not one with `($2 = '' OR namespace = $3)`: that form kept SQLite off the
    // primary key, so each namespace's shard read every live row (0.34 s instead of 0.03 s for
    // one of 50 namespaces at 100 000).
    match namespace {
        Some(namespace) => sqlx::query(sqlx::AssertSqlSafe(format!("{select} AND namespace = $2")))
            .bind(schema_set)
            .bind(namespace)
            .fetch(pool),
        None => sqlx::query(select).bind(schema_set).fetch(pool),
    }
}

/// The details of the executions that still exist (of one namespace, or all), validated under
/// `schema_set`: each one's namespace, name, uid, resourceVersion, detail's ETag and detail,
/// passed to `take` as it arrives.
pub async fn details(
    pool: &AnyPool,
    namespace: Option<&str>,
    schema_set: &str,
    mut take: impl FnMut(ObjectRef, (String, String), Option<Tag>, String),
) -> Result<(), sqlx::Error> {
    const EVERY: &str = "SELECT namespace, name, uid, resource_version, detail_tag, detail FROM executions \
        WHERE deleted_at IS NULL AND schema_set = $1";
    let mut rows = live(pool, EVERY, namespace, schema_set);
    while let Some(r) = rows.try_next().await? {
        take(ObjectRef { namespace: r.get(0), name: r.get(1) }, (r.get(2), r.get(3)), tag(r.get(4)), r.get(5));
    }
    Ok(())
}

/// The detail the archive holds of this very version of `id` (its uid and resourceVersion),
/// as it was served with ETag `served`.
pub async fn detail(
    pool: &AnyPool,
    id: &ObjectRef,
    (uid, version): (&str, &str),
    served: Tag,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT detail FROM executions WHERE namespace = $1 AND name = $2 AND uid = $3 AND resource_version = $4 \
         AND detail_tag = $5",
    )
    .bind(id.namespace.as_str())
    .bind(id.name.as_str())
    .bind(uid)
    .bind(version)
    .bind(served.to_hex())
    .fetch_optional(pool)
    .await
}

/// The detail and deletion time of the latest deleted version of `namespace/name` that belongs
/// to the namespace as it is now (see `Incarnations`).
pub async fn deleted(
    pool: &AnyPool,
    namespace: &str,
    name: &str,
    incarnations: &Incarnations,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT detail, deleted_at, configmap_created FROM executions WHERE namespace = $1 AND name = $2 \
         AND deleted_at IS NOT NULL ORDER BY deleted_at DESC LIMIT 16",
    )
    .bind(namespace)
    .bind(name)
    .fetch_all(pool)
    .await?;
    for row in rows {
        let created: Option<i64> = row.get(2);
        if incarnations.current(namespace, created) {
            return Ok(Some((row.get(0), row.get(1))));
        }
    }
    Ok(None)
}

/// A stored ETag; `None` where a row has none (written by an earlier version) or it is not one.
fn tag(text: Option<String>) -> Option<Tag> {
    text.as_deref().and_then(Tag::parse)
}

pub(super) fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// A time the archive stored, in Unix milliseconds.
pub fn timestamp(millis: i64) -> Timestamp {
    Timestamp::from_millisecond(millis).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What an archived list asks the database for; the rest of its filter is checked on the rows.
pub struct ArchivedQuery<'a> {
    /// Every namespace, or these.
    pub namespaces: Option<Vec<&'a str>>,
    pub pipeline: Option<&'a str>,
    pub phase: Option<&'a str>,
}

impl<'a> ArchivedQuery<'a> {
    /// The part of `filter` SQL answers by the archive's columns and indexes.
    pub fn of(filter: &'a ExecutionFilter) -> Self {
        ArchivedQuery {
            namespaces: filter.namespaces(),
            pipeline: filter.pipeline.as_deref(),
            phase: filter.phase.map(|p| p.as_str()),
        }
    }
}

/// One archived execution of a list: the latest deleted version of its name, when no version
/// of that name is live.
pub struct ArchivedRow {
    pub namespace: String,
    pub name: String,
    pub sort_time: i64,
    pub summary: String,
    pub labels: String,
    pub deleted_at: i64,
    /// When its ConfigMap was created (the API server's clock), where known.
    pub configmap_created: Option<i64>,
}

/// A value bound to a placeholder of an archived list's SQL.
enum Bound<'v> {
    Text(&'v str),
    Number(i64),
    Bytes(Vec<u8>),
}

/// An archived list's SQL and the values of its placeholders. A scope of namespaces is read one
/// namespace at a time (`UNION ALL` of a page from each, by the indexes that lead with
/// namespace), so no plan walks another namespace's rows and a page's time says nothing of
/// them; every namespace (a caller who reads all) is one walk of the whole archive.
fn archived_sql<'a>(
    query: &'a ArchivedQuery<'a>,
    after: Option<(i64, &'a str, &'a str)>,
    limit: usize,
) -> (String, Vec<Bound<'a>>) {
    let mut values = Vec::new();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = match &query.namespaces {
        None => {
            format!("{} LIMIT {}", page_sql(query, None, after, &mut values), place(&mut values, Bound::Number(limit)))
        }
        Some(namespaces) => {
            let pages: Vec<String> = namespaces
                .iter()
                .map(|ns| {
                    let page = page_sql(query, Some(ns), after, &mut values);
                    format!("SELECT * FROM ({page} LIMIT {}) AS n", place(&mut values, Bound::Number(limit)))
                })
                .collect();
            let all = pages.join(" UNION ALL ");
            format!("{all} ORDER BY sort_time DESC, list_key LIMIT {}", place(&mut values, Bound::Number(limit)))
        }
    };
    (sql, values)
}

fn place<'a>(values: &mut Vec<Bound<'a>>, value: Bound<'a>) -> String {
    values.push(value);
    format!("${}", values.len())
}

/// One walk of archived rows, of `namespace` or of all, in list order (its `LIMIT` is the
/// caller's to add).
fn page_sql<'a>(
    query: &'a ArchivedQuery<'a>,
    namespace: Option<&'a str>,
    after: Option<(i64, &'a str, &'a str)>,
    values: &mut Vec<Bound<'a>>,
) -> String {
    let mut sql = String::from(
        "SELECT namespace, name, sort_time, summary, labels, deleted_at, list_key, configmap_created FROM executions e \
         WHERE deleted_at IS NOT NULL",
    );
    if let Some(namespace) = namespace {
        sql.push_str(&format!(" AND namespace = {}", place(values, Bound::Text(namespace))));
    }
    if let Some(pipeline) = query.pipeline {
        sql.push_str(&format!(" AND pipeline = {}", place(values, Bound::Text(pipeline))));
    }
    if let Some(phase) = query.phase {
        sql.push_str(&format!(" AND phase = {}", place(values, Bound::Text(phase))));
    }
    if let Some((time, namespace, name)) = after {
        let (at_most, earlier) = (place(values, Bound::Number(time)), place(values, Bound::Number(time)));
        let key = place(values, Bound::Bytes(list_key(namespace, name)));
        // The first bound alone is a range the index starts from; the second refines it.
        sql.push_str(&format!(" AND sort_time <= {at_most} AND (sort_time < {earlier} OR list_key > {key})"));
    }
    // A name deleted and created again has a row per ConfigMap: the list holds the latest.
    sql.push_str(
        " AND NOT EXISTS (SELECT 1 FROM executions l WHERE l.namespace = e.namespace AND l.name = e.name \
         AND l.uid <> e.uid AND (l.deleted_at IS NULL OR l.deleted_at > e.deleted_at \
         OR (l.deleted_at = e.deleted_at AND l.uid > e.uid)))",
    );
    sql.push_str(" ORDER BY sort_time DESC, list_key");
    sql
}

/// Binds `values` to `sql`, whose text holds only placeholders.
fn bound<'q>(sql: String, values: Vec<Bound<'q>>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut select = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in values {
        select = match value {
            Bound::Text(text) => select.bind(text),
            Bound::Number(n) => select.bind(n),
            Bound::Bytes(bytes) => select.bind(bytes),
        };
    }
    select
}

/// Up to `limit` rows of `query` after (`sort_time`, namespace, name), in list order.
pub async fn archived<'a>(
    pool: &AnyPool,
    query: &'a ArchivedQuery<'a>,
    after: Option<(i64, &'a str, &'a str)>,
    limit: usize,
) -> Result<Vec<ArchivedRow>, sqlx::Error> {
    let Some(namespaces) = &query.namespaces else {
        return archived_page(pool, query, after, limit).await;
    };
    // A query of so many pages would pass SQLite's limit of 500 terms of a compound SELECT (and
    // take PostgreSQL long to plan): groups of namespaces are read apart and merged.
    let mut rows = Vec::new();
    for group in namespaces.chunks(NAMESPACES_PER_QUERY) {
        let part = ArchivedQuery { namespaces: Some(group.to_vec()), ..*query };
        rows.extend(archived_page(pool, &part, after, limit).await?);
    }
    if namespaces.len() > NAMESPACES_PER_QUERY {
        rows.sort_by(|a, b| {
            b.sort_time
                .cmp(&a.sort_time)
                .then_with(|| list_key(&a.namespace, &a.name).cmp(&list_key(&b.namespace, &b.name)))
        });
        rows.truncate(limit);
    }
    Ok(rows)
}

/// Namespaces read in one query (each a page of its own, `UNION ALL`).
const NAMESPACES_PER_QUERY: usize = 100;

async fn archived_page<'a>(
    pool: &AnyPool,
    query: &'a ArchivedQuery<'a>,
    after: Option<(i64, &'a str, &'a str)>,
    limit: usize,
) -> Result<Vec<ArchivedRow>, sqlx::Error> {
    if query.namespaces.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let (sql, values) = archived_sql(query, after, limit);
    let rows = bound(sql, values).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|r| ArchivedRow {
            namespace: r.get(0),
            name: r.get(1),
            sort_time: r.get(2),
            summary: r.get(3),
            labels: r.get(4),
            deleted_at: r.get(5),
            configmap_created: r.get(7),
        })
        .collect())
}

/// The database's plan for the first page of `query` (`EXPLAIN QUERY PLAN` in SQLite,
/// `EXPLAIN` in PostgreSQL), a line per step: what tests hold to "no walk outside the scope".
#[cfg(any(test, feature = "fixtures"))]
pub async fn archived_plan(
    pool: &AnyPool,
    query: &ArchivedQuery<'_>,
    sqlite: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let (sql, values) = archived_sql(query, None, 100);
    let explain = if sqlite { "EXPLAIN QUERY PLAN " } else { "EXPLAIN " };
    let rows = bound(format!("{explain}{sql}"), values).fetch_all(pool).await?;
    let column = if sqlite { 3 } else { 0 };
    Ok(rows.into_iter().map(|r| r.get::<String, _>(column)).collect())
}

#[cfg(test)]
mod tests {
    /// The writer and the warm start open their pools at once: on a file no version migrated
    /// yet (or one a new version must migrate), both must get it.
    #[tokio::test]
    async fn pools_opened_at_once_all_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let url: super::ArchiveUrl = format!("sqlite:{}", dir.path().join("a.db").display()).parse().unwrap();
        let opened = futures::future::join_all((0..4).map(|_| super::open(&url))).await;
        for pool in opened {
            let pool = pool.expect("every pool opens");
            let latest = sqlx::query("SELECT served_view FROM executions").fetch_all(&pool).await;
            assert!(latest.is_ok(), "and sees the latest schema: {:?}", latest.err());
            pool.close().await;
        }
    }
}
