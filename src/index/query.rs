//! Filtered, paginated reads. Pages are keyset-paginated over the index's total order, so a
//! `continue` token stays consistent while data changes: no item is served twice and none that
//! existed throughout is skipped.

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

/// Which executions a list wants.
#[derive(Clone, Debug, Default, Hash)]
pub struct Filter {
    pub namespace: Option<String>,
    pub pipeline: Option<String>,
    pub phase: Option<Phase>,
    pub environment: Option<String>,
    pub labels: Option<Selector>,
}

impl Filter {
    pub fn matches(&self, e: &ExecutionEntry) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == e.id.namespace)
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

    /// Rejections, by namespace and name, optionally for one namespace.
    pub fn rejections(&self, namespace: Option<&str>) -> Vec<Arc<RejectionEntry>> {
        self.read()
            .rejections
            .values()
            .filter(|r| namespace.is_none_or(|ns| r.rejection.id.namespace == ns))
            .cloned()
            .collect()
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
