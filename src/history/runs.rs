//! Archived runs read from the archive for pipelines' whole history, added up as they come, off
//! the index's lock, so a load holds O(pipelines) whatever the archive's size; then handed to
//! the index whole. Runs ended lately (or pending in the journal when the load began) are kept
//! aside, to be counted once against the journal when the load is handed over: an end may be
//! both pending and already written.

use std::collections::HashSet;

use jiff::Timestamp;
use serde::Deserialize;

use super::Archive;
use crate::index::{ArchivedRun, ArchivedTotals, Index};
use crate::model::{ExecutionView, ObjectRef};

/// How long a deletion may take to be written and read back, the replicas' clock skew included.
const SETTLING: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

pub struct ArchivedLoad {
    totals: ArchivedTotals,
    late: Vec<ArchivedRun>,
    pending: HashSet<ObjectRef>,
    /// Rows deleted before this cannot be pending any more, but for those in `pending`.
    settled_before: Timestamp,
    runs: usize,
}

impl ArchivedLoad {
    /// A load of what the archive holds, to fill with `add` and hand over with `finish`.
    pub fn new(archive: &Archive, index: &Index) -> Self {
        let pending = archive.departed(index).into_iter().map(|(entry, _)| (*entry.id).clone()).collect();
        let settled_before = Timestamp::now() - SETTLING;
        ArchivedLoad { totals: ArchivedTotals::default(), late: Vec::new(), pending, settled_before, runs: 0 }
    }

    pub fn add(&mut self, run: ArchivedRun) {
        self.runs += 1;
        if run.deleted_at < self.settled_before && !self.pending.contains(&run.id) {
            self.totals.add(run);
        } else {
            self.late.push(run);
        }
    }

    /// Runs read so far.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// Replaces the index's archived runs with what this load read, and adds again the ends
    /// the archive may not hold yet.
    pub fn finish(self, archive: &Archive, index: &Index) {
        let ArchivedLoad { mut totals, late, .. } = self;
        let departed = archive.departed(index);
        let pending: HashSet<&ObjectRef> = departed.iter().map(|(entry, _)| &*entry.id).collect();
        for run in late.into_iter().filter(|run| !pending.contains(&run.id)) {
            totals.add(run);
        }
        for (entry, at) in &departed {
            totals.add(ArchivedRun::of(entry, *at));
        }
        index.replace_archived(totals);
    }
}

/// An archived run from its summary as lists served it, and the times the archive keeps beside
/// it; `None` for a row this version cannot read.
pub fn from_summary(summary: &str, sort_time: Timestamp, deleted_at: Timestamp) -> Option<ArchivedRun> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Served {
        namespace: String,
        name: String,
        resource_version: String,
        #[serde(flatten)]
        view: ExecutionView,
    }
    let Served { namespace, name, resource_version, view } = serde_json::from_str(summary).ok()?;
    Some(ArchivedRun { id: ObjectRef { namespace, name }, resource_version, sort_time, deleted_at, view })
}
