//! Archived runs of each pipeline, added up, so that pipelines count their whole history: how
//! many runs in each phase, the newest, and where each environment stands by them. The archive
//! loads them when it connects (and again every hour, after pruning) and hands them over
//! (`replace_archived`); a deletion adds one as it happens. A name deleted and created again under a new uid counts twice, its archived
//! run and its live one, until the next load (which leaves out a name that is live again).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

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
    /// The run `entry` was, ended at `deleted_at`.
    pub fn of(entry: &ExecutionEntry, deleted_at: Timestamp) -> Self {
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

/// Archived runs added up by pipeline, built off the index lock (the archive reads them as a
/// stream and adds each as it comes) and swapped in whole with `Index::replace_archived`.
#[derive(Default)]
pub struct ArchivedTotals(ArchivedRuns);

impl ArchivedTotals {
    pub fn add(&mut self, run: ArchivedRun) {
        add_to(&mut self.0, run);
    }
}

fn add_to(totals: &mut ArchivedRuns, run: ArchivedRun) {
    totals.entry(run.pipeline()).or_default().add(run);
}

impl Index {
    /// Replaces every archived run with `totals`.
    pub fn replace_archived(&self, totals: ArchivedTotals) {
        let mut state = self.write();
        let old = std::mem::replace(&mut state.archived, totals.0);
        let dirty: Vec<PipelineKey> = old.into_keys().chain(state.archived.keys().cloned()).collect();
        state.dirty.extend(dirty);
        self.commit(&mut state);
    }

    /// Adds the run `entry` was, deleted at `at`.
    pub(super) fn archive_run(state: &mut State, entry: &ExecutionEntry, at: Timestamp) {
        state.add_archived(ArchivedRun::of(entry, at));
    }
}
