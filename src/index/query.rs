//! Filtered, paginated reads. Pages are keyset-paginated over the index's total order, so a
//! `continue` token stays consistent while data changes: no item is served twice and none that
//! existed throughout is skipped.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ExecutionEntry, Index, RejectionEntry, SortKey};
use crate::model::Phase;
use crate::selector::Selector;
use crate::validate::ObjectRef;
use std::cmp::Reverse;

/// The namespaces a caller may read: every one, or these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
}

/// Which executions a list wants, within the namespaces its caller may read.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub pipeline: Option<String>,
    pub phase: Option<Phase>,
    pub environment: Option<String>,
    pub labels: Option<Selector>,
    /// Not part of a continue token's fingerprint: a page goes on serving what the caller may
    /// read now, if their access changed between pages.
    pub scope: Scope,
}

impl Hash for Filter {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (&self.namespace, &self.pipeline, &self.phase, &self.environment, &self.labels).hash(h);
    }
}

impl Filter {
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

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a token and checks it was issued for `filter`.
    pub fn decode(token: &str, filter: &Filter) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| CursorError::Malformed)?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| CursorError::Malformed)?;
        if cursor.filter != filter.fingerprint() {
            return Err(CursorError::OtherFilter);
        }
        Ok(cursor)
    }

    fn key(&self) -> SortKey {
        (Reverse(self.time), ObjectRef { namespace: self.namespace.clone(), name: self.name.clone() })
    }
}

/// One page of serialised summaries.
pub struct Page {
    pub items: Vec<Bytes>,
    pub next: Option<Cursor>,
    pub revision: u64,
}

impl Index {
    /// Up to `limit` summaries matching `filter`, newest first, after `after`.
    pub fn list(&self, filter: &Filter, after: Option<&Cursor>, limit: usize) -> Page {
        let state = self.read();
        let start = after.map_or(Bound::Unbounded, |c| Bound::Excluded(c.key()));
        let mut items = Vec::with_capacity(limit.min(64));
        let mut last = None;
        let mut more = false;
        for (_, id) in state.order.range((start, Bound::Unbounded)) {
            let entry = &state.executions[id];
            if !filter.matches(entry) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(entry.summary.clone());
            last = Some(entry);
        }
        let next = last.filter(|_| more).map(|e| Cursor {
            time: e.sort_time,
            namespace: e.id.namespace.clone(),
            name: e.id.name.clone(),
            filter: filter.fingerprint(),
        });
        Page { items, next, revision: state.revision }
    }

    /// One execution.
    pub fn get(&self, id: &ObjectRef) -> Option<Arc<ExecutionEntry>> {
        self.read().executions.get(id).cloned()
    }

    /// Rejections the scope covers, by namespace and name, optionally for one namespace. A file
    /// of the directory source (no namespace) is covered only by a scope of every namespace.
    pub fn rejections(&self, namespace: Option<&str>, scope: &Scope) -> Vec<Arc<RejectionEntry>> {
        self.read()
            .rejections
            .values()
            .filter(|r| namespace.is_none_or(|ns| r.rejection.id.namespace == ns))
            .filter(|r| scope.allows(&r.rejection.id.namespace))
            .cloned()
            .collect()
    }

    /// Every namespace the index may hold: the watched ones, and those of the objects a
    /// directory source holds.
    pub fn namespaces(&self) -> BTreeSet<String> {
        let state = self.read();
        // A shard of no namespace ("") follows the namespaces themselves.
        let mut all: BTreeSet<String> =
            state.shards.values().filter_map(|s| s.namespace.clone()).filter(|ns| !ns.is_empty()).collect();
        if state.shards.values().any(|s| s.namespace.is_none()) {
            all.extend(state.executions.keys().map(|id| id.namespace.clone()));
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

    /// Counts of executions and rejections, for metrics and memory figures.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.read();
        (state.executions.len(), state.rejections.len())
    }
}
