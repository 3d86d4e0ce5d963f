//! Filtered, paginated reads. Pages are keyset-paginated over the index's total order, so a
//! `continue` token stays consistent while data changes: no item is served twice and none that
//! existed throughout is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ExecutionEntry, Index, Json, Key, Postings, SortKey, State};
use crate::model::ObjectRef;
use crate::model::Phase;
use crate::model::ReasonCode;
use crate::model::Resource;
use crate::selector::Selector;
use std::cmp::Reverse;

/// The namespaces a caller may read: every one, or these.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope(Option<Arc<BTreeSet<String>>>);

impl Scope {
    pub fn all() -> Self {
        Scope(None)
    }

    pub fn only(namespaces: BTreeSet<String>) -> Self {
        Scope(Some(Arc::new(namespaces)))
    }

    pub fn allows(&self, namespace: &str) -> bool {
        self.0.as_ref().is_none_or(|readable| readable.contains(namespace))
    }

    /// True when it holds every namespace.
    pub fn is_all(&self) -> bool {
        self.0.is_none()
    }

    /// The namespaces it holds, unless it holds every one.
    pub fn namespaces(&self) -> Option<&BTreeSet<String>> {
        self.0.as_deref()
    }
}

/// Which executions a list wants, within the namespaces its caller may read.
#[derive(Clone, Debug, Default)]
pub struct ExecutionFilter {
    pub namespace: Option<String>,
    pub pipeline: Option<String>,
    pub phase: Option<Phase>,
    pub environment: Option<String>,
    pub labels: Option<Selector>,
    /// Not part of a continue token's fingerprint: a page goes on serving what the caller may
    /// read now, if their access changed between pages.
    pub scope: Scope,
}

impl Hash for ExecutionFilter {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (&self.namespace, &self.pipeline, &self.phase, &self.environment, &self.labels).hash(h);
    }
}

impl ExecutionFilter {
    pub fn matches(&self, e: &ExecutionEntry) -> bool {
        self.scope.allows(&e.id.namespace)
            && self.namespace.as_ref().is_none_or(|ns| *ns == e.id.namespace)
            && self.pipeline.as_ref().is_none_or(|p| *p == e.view.pipeline)
            && self.phase.is_none_or(|p| p == e.view.phase)
            && self.environment.as_ref().is_none_or(|env| e.has_environment(env))
            && self.labels.as_ref().is_none_or(|s| s.matches(&e.labels))
    }

    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// Where the next page starts: just after this key, for this filter only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "t")]
    time: Timestamp,
    #[serde(rename = "ns")]
    namespace: String,
    #[serde(rename = "n")]
    name: String,
    #[serde(rename = "f")]
    filter: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CursorError {
    #[error("continue token is malformed")]
    Malformed,
    #[error("continue token belongs to a list with other filters")]
    OtherFilter,
}

/// A continue token: a cursor as URL-safe base64 of JSON.
pub(super) fn encode_token<T: Serialize>(cursor: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

pub(super) fn decode_token<T: serde::de::DeserializeOwned>(token: &str) -> Result<T, CursorError> {
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| CursorError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| CursorError::Malformed)
}

impl Cursor {
    pub fn encode(&self) -> String {
        encode_token(self)
    }

    /// Decodes a token and checks it was issued for `filter`.
    pub fn decode(token: &str, filter: &ExecutionFilter) -> Result<Cursor, CursorError> {
        let cursor: Cursor = decode_token(token)?;
        if cursor.filter != filter.fingerprint() {
            return Err(CursorError::OtherFilter);
        }
        Ok(cursor)
    }

    /// Where the page it ends was cut.
    pub fn position(&self) -> Position {
        Position { time: self.time, namespace: self.namespace.clone(), name: self.name.clone() }
    }

    /// The cursor of a page of `filter` cut at `position`.
    pub fn at(position: Position, filter: &ExecutionFilter) -> Cursor {
        let Position { time, namespace, name } = position;
        Cursor { time, namespace, name, filter: filter.fingerprint() }
    }
}

/// A place in the order of every execution list: newest first, then by namespace and name.
/// Live and archived executions share it, so their lists merge into one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub time: Timestamp,
    pub namespace: String,
    pub name: String,
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (Reverse(self.time), &self.namespace, &self.name).cmp(&(Reverse(other.time), &other.namespace, &other.name))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Position {
    pub fn of(entry: &ExecutionEntry) -> Self {
        Position { time: entry.sort_time, namespace: entry.id.namespace.clone(), name: entry.id.name.clone() }
    }

    fn key(&self) -> SortKey {
        (Reverse(self.time), Arc::new(ObjectRef { namespace: self.namespace.clone(), name: self.name.clone() }))
    }
}

/// Items of an execution list in its order, each with its place.
pub struct Listing {
    pub items: Vec<(Position, Json)>,
    /// More items follow the last.
    pub more: bool,
}

/// Where the next page of a list ordered by namespace and name starts: just after this object,
/// for lists of this kind and namespace filter only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NameCursor {
    #[serde(rename = "ns")]
    pub(super) namespace: String,
    #[serde(rename = "n")]
    pub(super) name: String,
    #[serde(rename = "f")]
    filter: u64,
}

impl NameCursor {
    pub(super) fn new(list: Resource, filter: Option<&str>, namespace: &str, name: &str) -> Self {
        NameCursor { namespace: namespace.to_owned(), name: name.to_owned(), filter: Self::fingerprint(list, filter) }
    }

    pub fn encode(&self) -> String {
        encode_token(self)
    }

    /// Decodes a token and checks it was issued for a `list` of `namespace` (or of any).
    pub fn decode(token: &str, list: Resource, namespace: Option<&str>) -> Result<Self, CursorError> {
        let cursor: NameCursor = decode_token(token)?;
        if cursor.filter != Self::fingerprint(list, namespace) {
            return Err(CursorError::OtherFilter);
        }
        Ok(cursor)
    }

    fn fingerprint(list: Resource, namespace: Option<&str>) -> u64 {
        let mut h = DefaultHasher::new();
        (list, namespace).hash(&mut h);
        h.finish()
    }
}

/// A page of a list ordered by namespace and name: up to `limit` after `after` (checked to
/// belong to this `list` and `namespace`), within `namespace` (or any) and `scope`.
pub(super) struct ByName<'a> {
    pub list: Resource,
    pub namespace: Option<&'a str>,
    pub scope: &'a Scope,
    pub after: Option<&'a NameCursor>,
    pub limit: usize,
}

impl ByName<'_> {
    /// The page of `map`, whose keys `key` makes and `id` takes apart, and the next page's cursor.
    ///
    /// A list of some namespaces (one named, or a caller's partial scope) walks only those
    /// namespaces' keys, so its time says nothing of what the others hold.
    pub fn page<'m, K: Ord + Clone, V>(
        &self,
        map: &'m BTreeMap<K, V>,
        key: impl Fn(&str, &str) -> K,
        id: impl Fn(&K) -> (&str, &str),
        listed: impl Fn(&V) -> bool,
    ) -> (Vec<&'m V>, Option<NameCursor>) {
        let after = self.after.map(|c| key(&c.namespace, &c.name));
        let namespaces: Vec<&str> = match (self.namespace, self.scope.namespaces()) {
            (Some(ns), _) => vec![ns],
            (None, Some(readable)) => readable.iter().map(String::as_str).collect(),
            (None, None) => Vec::new(),
        };
        let (key, id) = (&key, &id);
        let walk: Box<dyn Iterator<Item = (&'m K, &'m V)> + '_> = if self.namespace.is_none() && self.scope.is_all() {
            Box::new(map.range((after.map_or(Bound::Unbounded, Bound::Excluded), Bound::Unbounded)))
        } else {
            Box::new(namespaces.into_iter().flat_map(move |ns| {
                let first = key(ns, "");
                let from = match &after {
                    Some(after) if *after >= first => Bound::Excluded(after.clone()),
                    _ => Bound::Included(first),
                };
                map.range((from, Bound::Unbounded)).take_while(move |(k, _)| id(k).0 == ns)
            }))
        };
        let mut matching = walk.filter(|(k, v)| self.scope.allows(id(k).0) && listed(v));
        let page: Vec<(&K, &V)> = matching.by_ref().take(self.limit).collect();
        let more = matching.next().is_some();
        let next = page.last().filter(|_| more).map(|(k, _)| {
            let (namespace, name) = id(k);
            NameCursor::new(self.list, self.namespace, namespace, name)
        });
        (page.into_iter().map(|(_, v)| v).collect(), next)
    }
}

/// One page of serialised items, by namespace and name.
pub struct NamedPage {
    pub items: Vec<Json>,
    pub next: Option<NameCursor>,
}

/// One page of serialised summaries.
pub struct Page {
    pub items: Vec<Json>,
    pub next: Option<Cursor>,
    /// The last change the page reflects: a stream that starts from it resumes after this.
    pub as_of: u64,
}

impl Index {
    /// Up to `limit` summaries matching `filter`, newest first, after `after`.
    pub fn list(&self, filter: &ExecutionFilter, after: Option<&Cursor>, limit: usize) -> Page {
        let (listing, as_of) = self.listing(filter, after.map(Cursor::position).as_ref(), limit);
        let next = listing.items.last().filter(|_| listing.more).map(|(at, _)| Cursor::at(at.clone(), filter));
        Page { items: listing.items.into_iter().map(|(_, item)| item).collect(), next, as_of }
    }

    /// Up to `limit` summaries matching `filter` after `after`, each with its place; and the
    /// last change they reflect.
    ///
    /// It walks the smallest postings the filter names (a union, for `in` selectors and a
    /// caller's namespaces) from the cursor on, and checks the rest of the filter per entry.
    pub fn listing(&self, filter: &ExecutionFilter, after: Option<&Position>, limit: usize) -> (Listing, u64) {
        let state = self.read();
        let start = after.map(Position::key);
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
            items.push((Position::of(entry), entry.summary.clone()));
        }
        (Listing { items, more }, state.changes.last())
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
        let confined: Option<Vec<&String>> = match (&filter.namespace, filter.scope.namespaces()) {
            (Some(ns), _) => Some(vec![ns]),
            (None, Some(readable)) => Some(readable.iter().collect()),
            (None, None) => None,
        };
        if let Some(namespaces) = confined {
            let each =
                |key: &dyn Fn(&String) -> Key| namespaces.iter().filter_map(|ns| self.postings(&key(ns))).collect();
            let mut options: Vec<Vec<&Postings>> = vec![each(&|ns| Key::Namespace(ns.clone()))];
            if let Some(p) = &filter.pipeline {
                options.push(each(&|ns| Key::NamespacedPipeline(ns.clone(), p.clone())));
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
