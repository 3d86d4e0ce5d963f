//! Pipelines, resolved from their executions: the latest run, where each environment stands,
//! and counts by phase.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::entry::{Json, Summary};
use super::query::ByName;
use super::{ArchivedRun, Changed, ExecutionEntry, Index, Key, NameCursor, Scope, State};
use crate::model::{ExecutionView, PIPELINES, Phase};
use crate::validate::ObjectRef;

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

/// One resolved pipeline, serialised: from its live runs, and from all its runs where some are
/// archived.
pub struct ResolvedPipeline {
    pub namespace: String,
    pub name: String,
    /// From its live runs; none when all are archived.
    pub live: Option<Json>,
    /// From its live and archived runs; none when none is archived.
    pub whole: Option<Json>,
    /// Index revision of the last change to it.
    pub revision: u64,
}

impl ResolvedPipeline {
    /// Its body, with its archived runs or without; none when it has no such runs.
    pub fn body(&self, history: bool) -> Option<&Json> {
        if history { self.whole.as_ref().or(self.live.as_ref()) } else { self.live.as_ref() }
    }
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
    /// name, after `after`; with their archived runs (`history`) or without. Pipelines are
    /// resolved on write, so a page costs O(page).
    pub fn pipelines(
        &self,
        namespace: Option<&str>,
        scope: &Scope,
        after: Option<&NameCursor>,
        limit: usize,
        history: bool,
    ) -> PipelinePage {
        let state = self.read();
        let key = |namespace: &str, name: &str| (namespace.to_owned(), name.to_owned());
        fn id((namespace, name): &(String, String)) -> (&str, &str) {
            (namespace, name)
        }
        let by_name = ByName { list: PIPELINES, namespace, scope, after, limit };
        let (page, next) = by_name.page(&state.pipelines, key, id, |p| p.body(history).is_some());
        let items = page.iter().filter_map(|p| p.body(history).cloned()).collect();
        PipelinePage { items, next, as_of: state.changes.last() }
    }

    /// One resolved pipeline.
    pub fn pipeline(&self, namespace: &str, name: &str) -> Option<Arc<ResolvedPipeline>> {
        self.read().pipelines.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }
}

impl State {
    /// Resolves again the pipelines whose executions changed: O(runs of those pipelines). A
    /// pipeline whose bodies come out the same is not a change.
    pub(super) fn resolve_dirty_pipelines(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let live = self.postings(&Key::NamespacedPipeline(key.0.clone(), key.1.clone()));
            let live_runs = || live.into_iter().flat_map(|runs| runs.values().map(|e| &**e));
            let body = resolve(live_runs().map(Run::Live)).map(|p| Json::of(&p));
            // Archived runs of a name that is live again are left out, as lists leave them.
            let archived = self.archived.by_pipeline.get(&key).into_iter().flat_map(|runs| runs.values());
            let mut archived = archived.filter(|r| !self.executions.contains_key(&r.id)).peekable();
            let whole = match archived.peek() {
                Some(_) => resolve(newest_first(live_runs(), archived)).map(|p| Json::of(&p)),
                None => None,
            };
            let before = self.pipelines.get(&key).cloned();
            let tags = |p: &ResolvedPipeline| (p.live.as_ref().map(|b| b.tag), p.whole.as_ref().map(|b| b.tag));
            if before.as_deref().map(tags) == Some((body.as_ref().map(|b| b.tag), whole.as_ref().map(|b| b.tag))) {
                continue;
            }
            let after = if body.is_none() && whole.is_none() {
                self.pipelines.remove(&key);
                None
            } else {
                let (namespace, name) = key.clone();
                let resolved = ResolvedPipeline { namespace, name, live: body, whole, revision: self.revision };
                let resolved = Arc::new(resolved);
                self.pipelines.insert(key, resolved.clone());
                Some(resolved)
            };
            if before.is_some() || after.is_some() {
                self.changes.record(Changed::Pipeline { before, after });
            }
        }
    }
}

/// A run of a pipeline: live, or archived.
#[derive(Clone, Copy)]
enum Run<'a> {
    Live(&'a ExecutionEntry),
    Archived(&'a ArchivedRun),
}

impl<'a> Run<'a> {
    fn id(self) -> &'a ObjectRef {
        match self {
            Run::Live(e) => &e.id,
            Run::Archived(r) => &r.id,
        }
    }

    fn view(self) -> &'a ExecutionView {
        match self {
            Run::Live(e) => &e.view,
            Run::Archived(r) => &r.view,
        }
    }

    fn summary(self) -> Summary<'a> {
        match self {
            Run::Live(e) => e.summary_value(),
            Run::Archived(r) => r.summary(),
        }
    }

    /// Its place in a list: newest first, then by namespace and name.
    fn order(self) -> (std::cmp::Reverse<jiff::Timestamp>, &'a str, &'a str) {
        let time = match self {
            Run::Live(e) => e.sort_time,
            Run::Archived(r) => r.sort_time,
        };
        (std::cmp::Reverse(time), &self.id().namespace, &self.id().name)
    }
}

/// Live and archived runs, each newest first, merged newest first.
fn newest_first<'a>(
    live: impl Iterator<Item = &'a ExecutionEntry>,
    archived: impl Iterator<Item = &'a ArchivedRun>,
) -> impl Iterator<Item = Run<'a>> {
    let (mut live, mut archived) = (live.map(Run::Live).peekable(), archived.map(Run::Archived).peekable());
    std::iter::from_fn(move || match (live.peek(), archived.peek()) {
        (Some(l), Some(a)) if a.order() < l.order() => archived.next(),
        (Some(_), _) => live.next(),
        (None, _) => archived.next(),
    })
}

/// One pipeline from its runs, newest first, so the first run seen is its latest.
fn resolve<'a>(runs: impl Iterator<Item = Run<'a>>) -> Option<Pipeline<'a>> {
    let mut runs = runs.peekable();
    let latest = *runs.peek()?;
    let mut p = Pipeline {
        namespace: &latest.id().namespace,
        name: &latest.view().pipeline,
        application: &latest.view().application.name,
        latest_execution: latest.summary(),
        environments: Vec::new(),
        execution_count: 0,
        counts: Phase::ALL.iter().filter(|p| **p != Phase::Skipped).map(|p| (p.as_str(), 0)).collect(),
    };
    for run in runs {
        let view = run.view();
        p.execution_count += 1;
        *p.counts.entry(view.phase.as_str()).or_default() += 1;
        for env in &view.environments {
            let known = p.environments.iter().position(|k| k.name == env.name);
            let fresh = || PipelineEnvironment {
                name: env.name.clone(),
                phase: env.phase,
                version: view.application.version.clone(),
                execution: run.id().name.clone(),
            };
            match known {
                None => p.environments.push(fresh()),
                // An older run fills in an environment the newer ones have not reached yet.
                Some(i) if !attempted(p.environments[i].phase) && attempted(env.phase) => p.environments[i] = fresh(),
                Some(_) => {}
            }
        }
    }
    Some(p)
}
