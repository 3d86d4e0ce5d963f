//! Archived runs of each pipeline, added up, so that pipelines count their whole history: how
//! many runs in each phase, the newest, and where each environment stands by them. The archive's
//! writer loads them when it connects (and again every hour, after pruning); a deletion adds one
//! as it happens. A name deleted and created again under a new uid counts twice, its archived
//! run and its live one, until the next load (which leaves out a name that is live again).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use serde::Deserialize;

use super::pipelines::Environments;
use super::{ExecutionEntry, Index, State};
use crate::model::ObjectRef;
use crate::model::{ExecutionView, Phase};
use crate::query::Position;
use crate::wire::{Summary, summary};

/// A pipeline's namespace and name.
pub(super) type PipelineKey = (String, String);

/// What an archived run contributes to its pipeline.
pub struct ArchivedRun {
    pub id: ObjectRef,
    pub resource_version: String,
    pub sort_time: Timestamp,
    pub deleted_at: Timestamp,
    pub view: ExecutionView,
}

impl ArchivedRun {
    /// From a summary as lists served it, and the times the archive keeps beside it.
    pub fn from_summary(summary: &str, sort_time: Timestamp, deleted_at: Timestamp) -> Option<Self> {
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

    fn of(entry: &ExecutionEntry, deleted_at: Timestamp) -> Self {
        ArchivedRun {
            id: (*entry.id).clone(),
            resource_version: entry.resource_version.clone(),
            sort_time: entry.sort_time,
            deleted_at,
            view: entry.view.clone(),
        }
    }

    pub(super) fn position(&self) -> Position {
        Position { time: self.sort_time, namespace: self.id.namespace.clone(), name: self.id.name.clone() }
    }

    fn pipeline(&self) -> PipelineKey {
        (self.id.namespace.clone(), self.view.pipeline.clone())
    }

    /// Its summary as a list serves it: marked archived.
    pub(super) fn summary(&self) -> Summary<'_> {
        let mut summary = summary(&self.id, &self.view, &self.resource_version);
        summary.archived = Some(true);
        summary.deleted_at = Some(self.deleted_at.to_string());
        summary
    }
}

/// An environment as one run names it: enough to tell which run's word stands.
#[derive(Clone)]
pub(super) struct Mention {
    /// The run's place (newest first, then by name) and the environment's among the run's.
    pub order: (Reverse<Timestamp>, String, usize),
    pub phase: Phase,
    pub version: String,
    pub execution: String,
}

impl Mention {
    /// The `index`th environment of a live run.
    pub(super) fn of(entry: &ExecutionEntry, index: usize) -> Self {
        Mention::new(entry.sort_time, &entry.id.name, &entry.view, index)
    }

    fn new(time: Timestamp, name: &str, view: &ExecutionView, index: usize) -> Self {
        Mention {
            order: (Reverse(time), name.to_owned(), index),
            phase: view.environments[index].phase,
            version: view.application.version.clone(),
            execution: name.to_owned(),
        }
    }
}

/// What a pipeline's archived runs add up to, kept in O(environments) however many they are:
/// archived executions are never held in memory one by one.
#[derive(Default)]
pub(super) struct PipelineHistory {
    pub count: usize,
    pub counts: BTreeMap<Phase, usize>,
    /// The newest archived run.
    pub latest: Option<ArchivedRun>,
    pub environments: Environments,
}

impl PipelineHistory {
    fn add(&mut self, run: ArchivedRun) {
        self.count += 1;
        *self.counts.entry(run.view.phase).or_default() += 1;
        for (index, env) in run.view.environments.iter().enumerate() {
            self.environments.add(&env.name, &Mention::new(run.sort_time, &run.id.name, &run.view, index));
        }
        if self.latest.as_ref().is_none_or(|latest| run.position() < latest.position()) {
            self.latest = Some(run);
        }
    }
}

/// Archived runs, added up by pipeline.
pub(super) type ArchivedRuns = HashMap<PipelineKey, PipelineHistory>;

impl State {
    pub(super) fn add_archived(&mut self, run: ArchivedRun) {
        self.dirty.insert(run.pipeline());
        add_to(&mut self.archived, run);
    }
}

/// Archived runs read from the archive and added up as they come, off the index lock, so a
/// load holds O(pipelines) whatever the archive's size. Runs deleted lately (or pending in the
/// journal when the load began) are kept aside, to be counted once against the journal when the
/// load is swapped in: a deletion may be both pending and already written.
pub struct ArchivedLoad {
    totals: ArchivedRuns,
    late: Vec<ArchivedRun>,
    pending: HashSet<ObjectRef>,
    /// Rows deleted before this cannot be pending any more, but for those in `pending`.
    settled_before: Timestamp,
    runs: usize,
}

/// How long a deletion may take to be written and read back, the replicas' clock skew included.
const SETTLING: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

impl ArchivedLoad {
    pub fn add(&mut self, run: ArchivedRun) {
        self.runs += 1;
        if run.deleted_at < self.settled_before && !self.pending.contains(&run.id) {
            add_to(&mut self.totals, run);
        } else {
            self.late.push(run);
        }
    }

    /// Runs read so far.
    pub fn runs(&self) -> usize {
        self.runs
    }
}

fn add_to(totals: &mut ArchivedRuns, run: ArchivedRun) {
    totals.entry(run.pipeline()).or_default().add(run);
}

impl Index {
    /// A load of what the archive holds, to fill with `ArchivedLoad::add` and swap in with
    /// `load_archived`.
    pub fn archived_load(&self) -> ArchivedLoad {
        let pending = self.departed().into_iter().map(|(entry, _)| (*entry.id).clone()).collect();
        let settled_before = Timestamp::now() - SETTLING;
        ArchivedLoad { totals: ArchivedRuns::new(), late: Vec::new(), pending, settled_before, runs: 0 }
    }

    /// Replaces every archived run with what `load` read, and adds again the deletions the
    /// archive may not hold yet.
    pub fn load_archived(&self, load: ArchivedLoad) {
        let ArchivedLoad { mut totals, late, .. } = load;
        let departed = self.departed();
        let pending: HashSet<&ObjectRef> = departed.iter().map(|(entry, _)| &*entry.id).collect();
        for run in late.into_iter().filter(|run| !pending.contains(&run.id)) {
            add_to(&mut totals, run);
        }
        for (entry, at) in &departed {
            add_to(&mut totals, ArchivedRun::of(entry, *at));
        }
        let mut state = self.write();
        let old = std::mem::replace(&mut state.archived, totals);
        let dirty: Vec<PipelineKey> = old.into_keys().chain(state.archived.keys().cloned()).collect();
        state.dirty.extend(dirty);
        self.commit(&mut state);
    }

    /// Adds the run `entry` was, deleted at `at`.
    pub(super) fn archive_run(state: &mut State, entry: &ExecutionEntry, at: Timestamp) {
        state.add_archived(ArchivedRun::of(entry, at));
    }
}
