//! Pipelines, resolved from their executions: the latest run, where each environment stands,
//! and counts by phase.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::archived::{Mention, PipelineHistory};
use super::{Changed, ExecutionEntry, Index, Key, State};
use crate::model::{Phase, Resource};
use crate::query::{ByName, NameCursor, Scope};
use crate::wire::{Json, Pipeline, PipelineEnvironment};

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
        let by_name = ByName { list: Resource::Pipelines, namespace, scope, after, limit };
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
    /// pipeline whose bodies come out the same is not a change. `spread`: on every core (the
    /// caller is on a blocking thread, after a relist).
    pub(super) fn resolve_dirty_pipelines(&mut self, spread: bool) {
        let dirty: Vec<(String, String)> = std::mem::take(&mut self.dirty).into_iter().collect();
        let bodies = if spread {
            crate::parallel::map(&dirty, |key| self.resolve(key))
        } else {
            dirty.iter().map(|key| self.resolve(key)).collect()
        };
        for (key, (body, whole)) in dirty.into_iter().zip(bodies) {
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

    /// A pipeline's bodies as its runs have it: live, and with its archived runs (where kept).
    fn resolve(&self, key: &(String, String)) -> (Option<Json>, Option<Json>) {
        let live = self.postings(&Key::NamespacedPipeline(key.0.clone(), key.1.clone()));
        let live = live.map(|runs| resolve(runs.values().map(|e| &**e)));
        let whole = self.archived.get(key).map(|history| Json::of(&with_history(live.as_ref(), history)));
        (live.map(|live| Json::of(&live.pipeline())), whole)
    }
}

/// Where each environment stands by a pipeline's runs: per environment, its newest mention and
/// its newest attempted one. The newest stands, unless it has not been attempted yet and an
/// older run attempted it; environments are in the order the newest runs name them.
#[derive(Clone, Default)]
pub(super) struct Environments(HashMap<String, (Mention, Option<Mention>)>);

impl Environments {
    pub(super) fn add(&mut self, name: &str, mention: &Mention) {
        let newer = |known: &Mention| mention.order < known.order;
        match self.0.get_mut(name) {
            None => {
                let attempted = mention.phase.is_attempted().then(|| mention.clone());
                self.0.insert(name.to_owned(), (mention.clone(), attempted));
            }
            Some((newest, attempted_one)) => {
                if mention.phase.is_attempted() && attempted_one.as_ref().is_none_or(newer) {
                    *attempted_one = Some(mention.clone());
                }
                if newer(newest) {
                    *newest = mention.clone();
                }
            }
        }
    }

    fn merge(&mut self, other: &Environments) {
        for (name, (newest, attempted)) in &other.0 {
            self.add(name, newest);
            if let Some(attempted) = attempted {
                self.add(name, attempted);
            }
        }
    }

    fn resolved(&self) -> Vec<PipelineEnvironment> {
        let mut chosen: Vec<(&String, &Mention, &Mention)> = self
            .0
            .iter()
            .map(|(name, (newest, attempted_one))| {
                let stands =
                    if newest.phase.is_attempted() { newest } else { attempted_one.as_ref().unwrap_or(newest) };
                (name, newest, stands)
            })
            .collect();
        chosen.sort_by(|a, b| a.1.order.cmp(&b.1.order));
        chosen
            .into_iter()
            .map(|(name, _, m)| PipelineEnvironment {
                name: name.clone(),
                phase: m.phase,
                version: m.version.clone(),
                execution: m.execution.clone(),
            })
            .collect()
    }
}

/// A pipeline resolved from its live runs, before its environments are chosen.
struct Resolved<'a> {
    latest: &'a ExecutionEntry,
    count: usize,
    counts: BTreeMap<Cow<'static, str>, usize>,
    environments: Environments,
}

impl<'a> Resolved<'a> {
    fn pipeline(&self) -> Pipeline<'a> {
        let latest = self.latest;
        Pipeline {
            namespace: Cow::Borrowed(&latest.id.namespace),
            name: Cow::Borrowed(&latest.view.pipeline),
            application: Cow::Borrowed(&latest.view.application.name),
            latest_execution: latest.summary_value(),
            environments: self.environments.resolved(),
            execution_count: self.count,
            counts: self.counts.clone(),
        }
    }
}

fn no_counts() -> BTreeMap<Cow<'static, str>, usize> {
    Phase::ALL.iter().filter(|p| **p != Phase::Skipped).map(|p| (Cow::Borrowed(p.as_str()), 0)).collect()
}

/// One pipeline from its live runs, newest first, so the first run seen is its latest.
fn resolve<'a>(mut runs: impl Iterator<Item = &'a ExecutionEntry>) -> Resolved<'a> {
    let latest = runs.next().expect("a pipeline's postings are never empty");
    let mut p = Resolved { latest, count: 0, counts: no_counts(), environments: Environments::default() };
    for e in std::iter::once(latest).chain(runs) {
        p.count += 1;
        *p.counts.entry(Cow::Borrowed(e.view.phase.as_str())).or_default() += 1;
        for (index, env) in e.view.environments.iter().enumerate() {
            p.environments.add(&env.name, &Mention::of(e, index));
        }
    }
    p
}

/// A pipeline from its live runs (if any) and its archived ones, added up.
fn with_history<'a>(live: Option<&Resolved<'a>>, history: &'a PipelineHistory) -> Pipeline<'a> {
    let archived = history.latest.as_ref().expect("a pipeline's history holds a run");
    let newest_live = live.map(|l| (Reverse(l.latest.sort_time), l.latest.id.name.as_str()));
    let mut p = match live {
        Some(live) if newest_live < Some((Reverse(archived.sort_time), archived.id.name.as_str())) => live.pipeline(),
        _ => Pipeline {
            namespace: Cow::Borrowed(&archived.id.namespace),
            name: Cow::Borrowed(&archived.view.pipeline),
            application: Cow::Borrowed(&archived.view.application.name),
            latest_execution: archived.summary(),
            environments: Vec::new(),
            execution_count: live.map_or(0, |l| l.count),
            counts: live.map_or_else(no_counts, |l| l.counts.clone()),
        },
    };
    p.execution_count = live.map_or(0, |l| l.count) + history.count;
    p.counts = live.map_or_else(no_counts, |l| l.counts.clone());
    for (phase, n) in &history.counts {
        *p.counts.entry(Cow::Borrowed(phase.as_str())).or_default() += n;
    }
    let mut environments = live.map(|l| l.environments.clone()).unwrap_or_default();
    environments.merge(&history.environments);
    p.environments = environments.resolved();
    p
}
