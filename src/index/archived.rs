//! Archived runs of each pipeline, so that pipelines count their whole history: what a run
//! contributes to its pipeline (phase, version, environments), kept after its ConfigMap is gone.
//! The archive's writer loads them when it connects (and again after pruning); a deletion adds
//! one as it happens. A name is counted once: while a run of that name is live, its archived
//! runs are left out, as lists leave them out.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::Deserialize;

use super::entry::{Summary, summary};
use super::{ExecutionEntry, Index, Position, State};
use crate::model::ExecutionView;
use crate::validate::ObjectRef;

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

/// Archived runs by pipeline (newest first), and where each name's run is.
#[derive(Default)]
pub(super) struct ArchivedRuns {
    pub by_pipeline: HashMap<PipelineKey, BTreeMap<Position, ArchivedRun>>,
    names: HashMap<ObjectRef, (PipelineKey, Position, Timestamp)>,
}

impl ArchivedRuns {
    /// The pipeline an archived run of this name counts in, if any.
    pub fn pipeline_of(&self, id: &ObjectRef) -> Option<&PipelineKey> {
        self.names.get(id).map(|(pipeline, ..)| pipeline)
    }

    /// Adds a run, unless a later deletion of its name is held; the pipelines changed.
    fn add(&mut self, run: ArchivedRun) -> Vec<PipelineKey> {
        let mut changed = Vec::new();
        if let Some((pipeline, position, deleted_at)) = self.names.get(&run.id) {
            if *deleted_at > run.deleted_at {
                return changed;
            }
            if let Some(runs) = self.by_pipeline.get_mut(pipeline) {
                runs.remove(position);
                if runs.is_empty() {
                    self.by_pipeline.remove(pipeline);
                }
            }
            changed.push(pipeline.clone());
        }
        let (pipeline, position) = (run.pipeline(), run.position());
        self.names.insert(run.id.clone(), (pipeline.clone(), position.clone(), run.deleted_at));
        self.by_pipeline.entry(pipeline.clone()).or_default().insert(position, run);
        changed.push(pipeline);
        changed
    }
}

impl State {
    pub(super) fn add_archived(&mut self, run: ArchivedRun) {
        let changed = self.archived.add(run);
        self.dirty.extend(changed);
    }
}

impl Index {
    /// Replaces every archived run with `runs` (what the archive holds), and adds again the
    /// deletions it may not hold yet.
    pub fn load_archived(&self, runs: Vec<ArchivedRun>) {
        let departed = self.departed();
        let mut state = self.write();
        let old = std::mem::take(&mut state.archived);
        state.dirty.extend(old.by_pipeline.into_keys());
        for run in runs {
            state.add_archived(run);
        }
        for (entry, at) in departed {
            state.add_archived(ArchivedRun::of(&entry, at));
        }
        self.commit(&mut state);
    }

    /// Adds the run `entry` was, deleted at `at`.
    pub(super) fn archive_run(state: &mut State, entry: &ExecutionEntry, at: Timestamp) {
        state.add_archived(ArchivedRun::of(entry, at));
    }
}
