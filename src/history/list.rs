//! One list over live and archived executions. The index pages the live ones; the archive
//! pages those whose ConfigMaps are gone (with the deletions not written yet, from the index's
//! journal); both in the one order of every execution list, so the two pages merge on their
//! positions and a `continue` token is a position in both. A name is listed once: live if it
//! is live, else its latest deletion.
//!
//! Labels and environments are checked on the archive's rows, not in SQL, so a page reads at
//! most `SCAN` rows: one whose matches are rarer than that ends early, with a token that goes on
//! from where it stopped (a page, as in Kubernetes, may hold fewer than `limit` items).

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use sqlx::AnyPool;

use super::incarnation::Incarnations;
use super::store::{self, ArchivedQuery, ArchivedRow};
use crate::index::{ExecutionFilter, Index, Json, Listing, Position};
use crate::model::ObjectRef;

/// Most archived rows one page reads.
const SCAN: usize = 5_000;
/// Fewest rows read at a time where rows are checked after reading.
const CHUNK: usize = 200;

/// A page of archived executions.
pub struct Archived {
    pub items: Vec<(Position, Json)>,
    /// More follow the last item.
    pub more: bool,
    /// Where reading stopped at `SCAN` rows: nothing beyond it was looked at.
    pub stopped: Option<Position>,
}

/// Deletions the archive may not hold yet (see `Index::departed`) that match `filter` after
/// `after`, marked archived; and every such name, so rows of them are left out.
pub(super) fn pending(
    index: &Index,
    filter: &ExecutionFilter,
    after: Option<&Position>,
) -> (Vec<(Position, Json)>, HashSet<ObjectRef>) {
    let departed = index.departed();
    let names = departed.iter().map(|(entry, _)| (*entry.id).clone()).collect();
    let items = departed
        .iter()
        .filter(|(entry, _)| filter.matches(entry))
        .map(|(entry, at)| (Position::of(entry), Json::archived(&entry.summary.bytes, *at)))
        .filter(|(position, _)| after.is_none_or(|after| position > after))
        .collect();
    (items, names)
}

/// The namespaces whose archived rows `filter` reads: `Some(None)` for every one, `None` where
/// its scope allows none (nothing is asked of the database then).
pub(super) fn namespaces(filter: &ExecutionFilter) -> Option<Option<Vec<&str>>> {
    let namespaces: Option<Vec<&str>> = match (&filter.namespace, filter.scope.namespaces()) {
        (Some(ns), _) => Some(vec![ns.as_str()]),
        (None, Some(readable)) => Some(readable.iter().map(String::as_str).collect()),
        (None, None) => None,
    };
    match namespaces.map(|all| all.into_iter().filter(|ns| filter.scope.allows(ns)).collect::<Vec<_>>()) {
        Some(none) if none.is_empty() => None,
        namespaces => Some(namespaces),
    }
}

/// Archived rows of `namespaces` matching `filter` after `after`, of names neither live nor
/// `pending`: more than `limit` where there are that many, and where reading stopped at `SCAN`
/// rows.
pub(super) async fn rows(
    pool: &AnyPool,
    (index, incarnations): (&Index, &Incarnations),
    filter: &ExecutionFilter,
    namespaces: Option<Vec<&str>>,
    (after, limit): (Option<&Position>, usize),
    pending: &HashSet<ObjectRef>,
) -> Result<(Vec<(Position, Json)>, Option<Position>), sqlx::Error> {
    let query =
        ArchivedQuery { namespaces, pipeline: filter.pipeline.as_deref(), phase: filter.phase.map(|p| p.as_str()) };
    let checked_after = filter.labels.is_some() || filter.environment.is_some();
    let chunk = if checked_after { (limit + 1).max(CHUNK) } else { limit + 1 };
    let mut from = after.cloned();
    let (mut read, mut items) = (0, Vec::new());
    loop {
        let cursor = from.as_ref().map(|p| (p.time.as_millisecond(), p.namespace.as_str(), p.name.as_str()));
        let rows = store::archived(pool, &query, cursor, chunk).await?;
        let full = rows.len() == chunk;
        for row in rows {
            read += 1;
            let position = Position {
                time: store::timestamp(row.sort_time),
                namespace: row.namespace.clone(),
                name: row.name.clone(),
            };
            from = Some(position.clone());
            let id = ObjectRef { namespace: row.namespace.clone(), name: row.name.clone() };
            if pending.contains(&id) || index.is_live(&id) || !matches(filter, &row) {
                continue;
            }
            // A row of an earlier namespace of that name is nobody's to read.
            if !incarnations.current(&row.namespace, row.configmap_created) {
                continue;
            }
            items.push((position, Json::archived(row.summary.as_bytes(), store::timestamp(row.deleted_at))));
        }
        if items.len() > limit || !full {
            return Ok((items, None));
        }
        if read >= SCAN {
            return Ok((items, from));
        }
    }
}

/// The first `limit` of `items`, in order, and where the page that holds them stops.
pub(super) fn assemble(mut items: Vec<(Position, Json)>, stopped: Option<Position>, limit: usize) -> Archived {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(stop) = &stopped {
        items.retain(|(position, _)| position <= stop);
    }
    let more = items.len() > limit;
    items.truncate(limit);
    Archived { items, more, stopped }
}

/// The checks SQL leaves to the rows: labels and environment.
fn matches(filter: &ExecutionFilter, row: &ArchivedRow) -> bool {
    #[derive(Deserialize)]
    struct Environments {
        environments: Vec<Named>,
    }
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    let labels = || serde_json::from_str::<BTreeMap<String, String>>(&row.labels).unwrap_or_default();
    let environments =
        || serde_json::from_str::<Environments>(&row.summary).map_or_else(|_| Vec::new(), |e| e.environments);
    filter.labels.as_ref().is_none_or(|selector| selector.matches(&labels()))
        && filter.environment.as_ref().is_none_or(|env| environments().iter().any(|e| e.name == *env))
}

/// The first `limit` of a live and an archived page, and where the next page starts.
pub fn merge(live: Listing, archived: Archived, limit: usize) -> (Vec<Json>, Option<Position>) {
    let mut all: Vec<(Position, Json)> = live.items;
    all.extend(archived.items);
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(stop) = &archived.stopped {
        // Archived rows beyond where reading stopped were not looked at: stop there too.
        all.retain(|(position, _)| position <= stop);
    }
    let more = all.len() > limit || live.more || archived.more;
    all.truncate(limit);
    let next = match (all.last(), &archived.stopped) {
        (Some((last, _)), _) if all.len() == limit && (more || archived.stopped.is_some()) => Some(last.clone()),
        (_, Some(stop)) => Some(stop.clone()),
        (Some((last, _)), None) if more => Some(last.clone()),
        _ => None,
    };
    (all.into_iter().map(|(_, item)| item).collect(), next)
}
