//! One list over live and archived executions. The index pages the live ones; the archive
//! pages those whose ConfigMaps are gone (with the deletions not written yet, from the index's
//! journal); both in the one order of every execution list, so the two pages merge on their
//! positions and a `continue` token is a position in both. A name is listed once: live if it
//! is live, else its latest deletion.
//!
//! SQL narrows by what the archive has columns for (`ArchivedQuery::of`); the one predicate,
//! `ExecutionFilter::matches`, checks the rest on the rows, so a page reads at most `SCAN` rows:
//! one whose matches are rarer than that ends early, with a token that goes on from where it
//! stopped (a page, as in Kubernetes, may hold fewer than `limit` items).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;

use sqlx::AnyPool;

use super::incarnation::Incarnations;
use super::store::{self, ArchivedQuery, ArchivedRow};
use crate::index::{ExecutionEntry, Index};
use crate::model::{Application, ExecutionView, ObjectRef, Phase};
use crate::query::{ExecutionFilter, Filterable, Position};
use crate::wire::Json;

/// Most archived rows one page reads.
const SCAN: usize = 5_000;
/// Fewest rows read at a time where rows are checked after reading.
const CHUNK: usize = 200;

/// Deletions the archive may not hold yet (`departed`, see `Archive::departed`) that match
/// `filter` after `after`, marked archived; and every such name, so rows of them are left out.
pub(super) fn pending(
    departed: &[(Arc<ExecutionEntry>, Timestamp)],
    filter: &ExecutionFilter,
    after: Option<&Position>,
) -> (Vec<(Position, Json)>, HashSet<ObjectRef>) {
    let names = departed.iter().map(|(entry, _)| (*entry.id).clone()).collect();
    let items = departed
        .iter()
        .filter(|(entry, _)| filter.matches(&**entry))
        .map(|(entry, at)| (entry.position(), Json::archived(&entry.summary.bytes, *at)))
        .filter(|(position, _)| after.is_none_or(|after| position > after))
        .collect();
    (items, names)
}

/// Archived rows that `query` (`filter`'s SQL part) reads and `filter` matches, after `after`, of
/// names neither live nor `pending`: more than `limit` where there are that many, and where
/// reading stopped short of the archive's end (at `SCAN` rows, or where live names took some of
/// the matches). The index is asked once per page which of the names matched are live.
pub(super) async fn rows(
    pool: &AnyPool,
    (index, incarnations): (&Index, &Incarnations),
    (filter, query): (&ExecutionFilter, &ArchivedQuery<'_>),
    (after, limit): (Option<&Position>, usize),
    pending: &HashSet<ObjectRef>,
) -> Result<(Vec<(Position, Json)>, Option<Position>), sqlx::Error> {
    let chunk = if filter.asks_beyond_columns() { (limit + 1).max(CHUNK) } else { limit + 1 };
    let mut from = after.cloned();
    let (mut read, mut matched) = (0, Vec::new());
    let whole = loop {
        let cursor = from.as_ref().map(|p| (p.time.as_millisecond(), p.namespace.as_str(), p.name.as_str()));
        let rows = store::archived(pool, query, cursor, chunk).await?;
        let full = rows.len() == chunk;
        read += rows.len();
        from = rows.last().map(ArchivedRow::position).or(from);
        for row in rows {
            let id = ObjectRef { namespace: row.namespace.clone(), name: row.name.clone() };
            // A row of an earlier namespace of that name is nobody's to read.
            if pending.contains(&id) || !incarnations.current(&row.namespace, row.configmap_created) {
                continue;
            }
            if filter.matches(&Candidate::of(&row, filter)) {
                let body = Json::archived(row.summary.as_bytes(), store::timestamp(row.deleted_at));
                matched.push((id, (row.position(), body)));
            }
        }
        if matched.len() > limit || !full || read >= SCAN {
            break !full;
        }
    };
    let ids: Vec<ObjectRef> = matched.iter().map(|(id, _)| id.clone()).collect();
    let mut live = index.which_live(&ids).into_iter();
    let items: Vec<(Position, Json)> =
        matched.into_iter().filter(|_| !live.next().unwrap_or(false)).map(|(_, item)| item).collect();
    // Read to the archive's end, or more than a page: nothing beyond was needed. Else the next
    // page goes on from where reading stopped.
    let stopped = (!whole && items.len() <= limit).then_some(from).flatten();
    Ok((items, stopped))
}

impl ArchivedRow {
    fn position(&self) -> Position {
        Position { time: store::timestamp(self.sort_time), namespace: self.namespace.clone(), name: self.name.clone() }
    }
}

/// An archived row as the filter sees it: its namespace from its column; its pipeline and phase,
/// where the filter asks for them, as SQL already matched them (`ArchivedQuery::of` pushes both
/// down); its labels and view read from its JSON only when the filter asks.
struct Candidate<'r> {
    row: &'r ArchivedRow,
    filter: &'r ExecutionFilter,
    labels: OnceLock<BTreeMap<String, String>>,
    view: OnceLock<ExecutionView>,
}

impl<'r> Candidate<'r> {
    fn of(row: &'r ArchivedRow, filter: &'r ExecutionFilter) -> Self {
        Candidate { row, filter, labels: OnceLock::new(), view: OnceLock::new() }
    }
}

impl Filterable for Candidate<'_> {
    fn namespace(&self) -> &str {
        &self.row.namespace
    }

    fn pipeline(&self) -> &str {
        self.filter.pipeline.as_deref().unwrap_or_else(|| &self.view().pipeline)
    }

    fn phase(&self) -> Phase {
        self.filter.phase.unwrap_or_else(|| self.view().phase)
    }

    fn labels(&self) -> &BTreeMap<String, String> {
        self.labels.get_or_init(|| serde_json::from_str(&self.row.labels).unwrap_or_default())
    }

    fn environments(&self) -> impl Iterator<Item = &str> {
        self.view().environments.iter().map(|e| e.name.as_str())
    }
}

impl Candidate<'_> {
    /// The summary as it was served holds the view; a row that does not parse (never written so)
    /// shows its columns and nothing else.
    fn view(&self) -> &ExecutionView {
        self.view.get_or_init(|| {
            serde_json::from_str(&self.row.summary).unwrap_or_else(|_| ExecutionView {
                pipeline: String::new(),
                application: Application {
                    name: String::new(),
                    version: String::new(),
                    revision: None,
                    revision_time: None,
                },
                trigger: None,
                phase: Phase::Unknown,
                started_at: None,
                finished_at: None,
                environments: Vec::new(),
            })
        })
    }
}
