//! Filtered, paginated reads of the live executions. Pages are keyset-paginated over the
//! index's total order, so a `continue` token stays consistent while data changes: no item is
//! served twice and none that existed throughout is skipped. What a list wants is
//! `query::ExecutionFilter`; the index only chooses which postings to walk for it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use super::{ExecutionEntry, Index, Key, Postings, SortKey, State};
use crate::model::{ObjectRef, Phase, ReasonCode, Resource};
use crate::query::{ByName, ExecutionFilter, Filterable, Listing, NameCursor, Position, Scope};
use crate::wire::Json;

/// Where `position` sits among the postings.
fn sort_key(position: &Position) -> SortKey {
    (Reverse(position.time), Arc::new(ObjectRef { namespace: position.namespace.clone(), name: position.name.clone() }))
}

impl ExecutionEntry {
    /// Its place in every execution list.
    pub fn position(&self) -> Position {
        Position { time: self.sort_time, namespace: self.id.namespace.clone(), name: self.id.name.clone() }
    }
}

impl Filterable for ExecutionEntry {
    fn namespace(&self) -> &str {
        &self.id.namespace
    }

    fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    fn pipeline(&self) -> &str {
        &self.view.pipeline
    }

    fn phase(&self) -> Phase {
        self.view.phase
    }

    fn environments(&self) -> impl Iterator<Item = &str> {
        self.view.environments.iter().map(|e| e.name.as_str())
    }
}

/// One page of serialised items, by namespace and name.
pub struct NamedPage {
    pub items: Vec<Json>,
    pub next: Option<NameCursor>,
}

impl Index {
    /// Up to `limit` summaries matching `filter` after `after`, each with its place; and the
    /// last change they reflect.
    ///
    /// It walks the smallest postings the filter names (a union, for `in` selectors and a
    /// caller's namespaces) from the cursor on, and checks the rest of the filter per entry.
    pub fn listing(&self, filter: &ExecutionFilter, after: Option<&Position>, limit: usize) -> (Listing, u64) {
        let state = self.read();
        let start = after.map(sort_key);
        let mut items = Vec::with_capacity(limit.min(64));
        let mut more = false;
        for entry in merged(state.candidates(filter), start.as_ref()) {
            if !filter.matches(entry) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push((entry.position(), entry.summary.clone()));
        }
        (Listing { items, more, stopped: None }, state.changes.last())
    }

    /// Every live execution, for a pass over all of them (retention's plan).
    pub fn all_executions(&self) -> Vec<Arc<ExecutionEntry>> {
        self.read().executions.values().cloned().collect()
    }

    /// One execution.
    pub fn get(&self, id: &ObjectRef) -> Option<Arc<ExecutionEntry>> {
        self.read().executions.get(id).cloned()
    }

    /// One execution, and the last change its state reflects.
    pub fn get_as_of(&self, id: &ObjectRef) -> (Option<Arc<ExecutionEntry>>, u64) {
        let state = self.read();
        (state.executions.get(id).cloned(), state.changes.last())
    }

    /// Up to `limit` rejections the scope covers, by namespace and name, optionally of one
    /// namespace, after `after` (checked to belong to a list of `namespace`). A file of the
    /// directory source (no namespace) is covered only by a scope of every namespace.
    pub fn rejections(
        &self,
        namespace: Option<&str>,
        scope: &Scope,
        after: Option<&NameCursor>,
        limit: usize,
    ) -> NamedPage {
        let state = self.read();
        let key = |namespace: &str, name: &str| ObjectRef { namespace: namespace.to_owned(), name: name.to_owned() };
        fn id(k: &ObjectRef) -> (&str, &str) {
            (&k.namespace, &k.name)
        }
        let by_name = ByName { list: Resource::Rejections, namespace, scope, after, limit };
        let (page, next) = by_name.page(&state.rejections, key, id, |_| true);
        NamedPage { items: page.iter().map(|r| r.body.clone()).collect(), next }
    }

    /// Every namespace the index may hold: the watched ones, and those of the objects a
    /// directory source holds.
    pub fn namespaces(&self) -> BTreeSet<String> {
        let state = self.read();
        // A shard of no namespace ("") follows the namespaces themselves.
        let mut all: BTreeSet<String> =
            state.shards.values().filter_map(|s| s.namespace.clone()).filter(|ns| !ns.is_empty()).collect();
        if state.shards.values().any(|s| s.namespace.is_none()) {
            let listed = state.by.keys().filter_map(|k| match k {
                Key::Namespace(ns) => Some(ns.clone()),
                _ => None,
            });
            all.extend(listed);
            all.extend(state.rejections.keys().map(|id| id.namespace.clone()).filter(|ns| !ns.is_empty()));
        }
        all
    }

    /// Whether `namespace` is watched: a shard holds it, or a directory shard may.
    pub fn watches(&self, namespace: &str) -> bool {
        self.read().shards.values().any(|s| s.covers(namespace))
    }

    /// The current revision: changes whenever anything served changes.
    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    /// Executions by namespace and phase.
    pub fn counts_by_namespace_and_phase(&self) -> BTreeMap<(String, Phase), i64> {
        self.read().tally.clone()
    }

    /// The code of each rejection's first reason.
    pub fn rejection_reasons(&self) -> Vec<ReasonCode> {
        self.read().rejections.values().filter_map(|r| r.rejection.reasons.first().map(|r| r.code)).collect()
    }

    /// Counts of executions and rejections, for metrics and memory figures.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.read();
        (state.executions.len(), state.rejections.len())
    }
}

impl State {
    /// The postings to walk for `filter`: of every set of postings the filter confines it to,
    /// the one holding fewest executions. Without any, every execution.
    ///
    /// A list of some namespaces (one named, or a caller's partial scope) walks only postings of
    /// those namespaces: walking a cluster-wide posting would make a page's time grow with what
    /// matches in namespaces its caller may not read.
    pub(super) fn candidates(&self, filter: &ExecutionFilter) -> Vec<&Postings> {
        if let Some(namespaces) = filter.namespaces() {
            let each = |key: &dyn Fn(&str) -> Key| namespaces.iter().filter_map(|ns| self.postings(&key(ns))).collect();
            let mut options: Vec<Vec<&Postings>> = vec![each(&|ns| Key::Namespace(ns.to_owned()))];
            if let Some(p) = &filter.pipeline {
                options.push(each(&|ns| Key::NamespacedPipeline(ns.to_owned(), p.clone())));
            }
            return smallest(options).unwrap_or_default();
        }
        let one = |key: Key| self.postings(&key).into_iter().collect::<Vec<_>>();
        let mut options: Vec<Vec<&Postings>> = Vec::new();
        if let Some(p) = &filter.pipeline {
            options.push(one(Key::Pipeline(p.clone())));
        }
        if let Some(phase) = filter.phase {
            options.push(one(Key::Phase(phase)));
        }
        if let Some(env) = &filter.environment {
            options.push(one(Key::Environment(env.clone())));
        }
        for (key, values) in filter.labels.iter().flat_map(|s| s.indexed()) {
            let label = |v: &&str| self.postings(&Key::Label(key.to_owned(), (*v).to_owned()));
            options.push(values.iter().filter_map(label).collect());
        }
        smallest(options).unwrap_or_else(|| vec![&self.order])
    }
}

/// The option of postings that holds fewest executions.
fn smallest(options: Vec<Vec<&Postings>>) -> Option<Vec<&Postings>> {
    options.into_iter().min_by_key(|o| o.iter().map(|p| p.len()).sum::<usize>())
}

/// The entries of several postings in the index's order, from just after `start`. The postings
/// are disjoint (one namespace, or one value of a label, each).
fn merged<'a>(postings: Vec<&'a Postings>, start: Option<&SortKey>) -> impl Iterator<Item = &'a ExecutionEntry> {
    let from = start.map_or(Bound::Unbounded, Bound::Excluded);
    let mut ranges: Vec<_> = postings.into_iter().map(|p| p.range((from, Bound::Unbounded)).peekable()).collect();
    std::iter::from_fn(move || {
        let mut first: Option<(usize, &SortKey)> = None;
        for (i, range) in ranges.iter_mut().enumerate() {
            if let Some((key, _)) = range.peek()
                && first.is_none_or(|(_, best)| *key < best)
            {
                first = Some((i, *key));
            }
        }
        ranges[first?.0].next().map(|(_, e)| &**e)
    })
}
