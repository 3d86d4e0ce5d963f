//! Pipelines, resolved from their executions: the latest run, where each environment stands,
//! and counts by phase.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::entry::{Json, Summary};
use super::query::ByName;
use super::{Changed, Index, Key, NameCursor, Postings, Scope, State};
use crate::model::PIPELINES;
use crate::model::Phase;

/// Where one environment of a pipeline stands: its latest attempted run.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineEnvironment {
    pub name: String,
    pub phase: Phase,
    pub version: String,
    pub execution: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub application: &'a str,
    pub latest_execution: Summary<'a>,
    pub environments: Vec<PipelineEnvironment>,
    pub execution_count: usize,
    pub counts: BTreeMap<&'static str, usize>,
}

/// An environment counts as attempted by a run once it has left `Pending` and was not skipped.
fn attempted(phase: Phase) -> bool {
    !matches!(phase, Phase::Pending | Phase::Skipped)
}

/// One resolved pipeline, serialised.
pub struct ResolvedPipeline {
    pub namespace: String,
    pub name: String,
    pub body: Json,
    /// Index revision of the last change to it.
    pub revision: u64,
}

/// A page of serialised pipelines.
pub struct PipelinePage {
    pub items: Vec<Json>,
    pub next: Option<NameCursor>,
    /// The last change the page reflects.
    pub as_of: u64,
}

impl Index {
    /// Up to `limit` pipelines in `namespace` (or any) that `scope` covers, by namespace and
    /// name, after `after`. Pipelines are resolved on write, so a page costs O(page).
    pub fn pipelines(
        &self,
        namespace: Option<&str>,
        scope: &Scope,
        after: Option<&NameCursor>,
        limit: usize,
    ) -> PipelinePage {
        let state = self.read();
        let key = |namespace: &str, name: &str| (namespace.to_owned(), name.to_owned());
        fn id((namespace, name): &(String, String)) -> (&str, &str) {
            (namespace, name)
        }
        let by_name = ByName { list: PIPELINES, namespace, scope, after, limit };
        let (page, next) = by_name.page(&state.pipelines, key, id);
        PipelinePage { items: page.iter().map(|p| p.body.clone()).collect(), next, as_of: state.changes.last() }
    }

    /// One resolved pipeline.
    pub fn pipeline(&self, namespace: &str, name: &str) -> Option<Arc<ResolvedPipeline>> {
        self.read().pipelines.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }
}

impl State {
    /// Resolves again the pipelines whose executions changed: O(runs of those pipelines). A
    /// pipeline whose body comes out the same is not a change.
    pub(super) fn resolve_dirty_pipelines(&mut self) {
        for (namespace, name) in std::mem::take(&mut self.dirty) {
            let key = (namespace, name);
            let runs = self.postings(&Key::NamespacedPipeline(key.0.clone(), key.1.clone()));
            let before = self.pipelines.get(&key).cloned();
            let after = match runs {
                Some(runs) => {
                    let body = Json::of(&resolve(runs));
                    if before.as_ref().is_some_and(|b| b.body.tag == body.tag) {
                        continue;
                    }
                    let (namespace, name) = key.clone();
                    let resolved = Arc::new(ResolvedPipeline { namespace, name, body, revision: self.revision });
                    self.pipelines.insert(key, resolved.clone());
                    Some(resolved)
                }
                None => {
                    self.pipelines.remove(&key);
                    None
                }
            };
            if before.is_some() || after.is_some() {
                self.changes.record(Changed::Pipeline { before, after });
            }
        }
    }
}

/// One pipeline from its runs, newest first, so the first run seen is its latest.
fn resolve(runs: &Postings) -> Pipeline<'_> {
    let mut entries = runs.values();
    let latest = entries.next().expect("a pipeline's postings are never empty");
    let mut p = Pipeline {
        namespace: &latest.id.namespace,
        name: &latest.view.pipeline,
        application: &latest.view.application.name,
        latest_execution: latest.summary_value(),
        environments: Vec::new(),
        execution_count: 0,
        counts: Phase::ALL.iter().filter(|p| **p != Phase::Skipped).map(|p| (p.as_str(), 0)).collect(),
    };
    for e in runs.values() {
        p.execution_count += 1;
        *p.counts.entry(e.view.phase.as_str()).or_default() += 1;
        for env in &e.view.environments {
            let known = p.environments.iter().position(|k| k.name == env.name);
            let fresh = || PipelineEnvironment {
                name: env.name.clone(),
                phase: env.phase,
                version: e.view.application.version.clone(),
                execution: e.id.name.clone(),
            };
            match known {
                None => p.environments.push(fresh()),
                // An older run fills in an environment the newer ones have not reached yet.
                Some(i) if !attempted(p.environments[i].phase) && attempted(env.phase) => p.environments[i] = fresh(),
                Some(_) => {}
            }
        }
    }
    p
}
