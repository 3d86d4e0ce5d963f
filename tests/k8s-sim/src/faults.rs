//! Fault switches over HTTP, so faults can be driven from outside a cargo test (a shell, a
//! script, another language's test suite) against the standalone simulator:
//!
//! ```text
//! curl -X POST localhost:6443/_sim/faults -d '{"latencyMs": 2000}'
//! curl -X POST localhost:6443/_sim/faults -d '{"failNamespace": {"namespace": "team-a", "status": 403}}'
//! curl -X POST localhost:6443/_sim/faults -d '{"dropWatches": true, "compact": true}'
//! curl localhost:6443/_sim/faults          # what is switched on now
//! ```
//!
//! Every field is optional; `null` heals a status fault. One-shot actions (`dropWatches`,
//! `endWatches`, `compact`, `silenceWatches`) happen once per request.

use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::Inner;
use crate::store::ApiError;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Switches {
    latency_ms: Option<u64>,
    fail_namespace: Option<NamespaceFault>,
    fail_reviews: Option<Option<u16>>,
    hang_reviews: Option<bool>,
    hang_lists: Option<bool>,
    #[serde(default)]
    drop_watches: bool,
    #[serde(default)]
    end_watches: bool,
    #[serde(default)]
    compact: bool,
    #[serde(default)]
    silence_watches: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceFault {
    namespace: String,
    status: Option<u16>,
}

impl Inner {
    pub(crate) fn drop_watches(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    pub(crate) fn end_watches(&self) {
        self.ends.send_modify(|g| *g += 1);
    }

    pub(crate) fn fail_namespace(&self, namespace: &str, status: Option<u16>) {
        let mut faults = self.faults();
        match status {
            Some(code) => faults.namespace_status.insert(namespace.to_owned(), code),
            None => faults.namespace_status.remove(namespace),
        };
    }

    pub(crate) fn silence_watches(&self) {
        self.faults().silence_below = self.next_watch_id.load(Ordering::SeqCst);
    }

    /// Applies `POST /_sim/faults`, then says what is on.
    pub(crate) fn apply_faults(&self, body: &[u8]) -> Result<Value, ApiError> {
        let switches: Switches = match body.is_empty() {
            true => Switches::default(),
            false => serde_json::from_slice(body).map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))?,
        };
        if let Some(fault) = &switches.fail_namespace {
            if fault.status.is_some_and(|s| !(400..=599).contains(&s)) {
                return Err(ApiError::new(400, "BadRequest", "failNamespace.status must be 400-599 or null"));
            }
            self.fail_namespace(&fault.namespace, fault.status);
        }
        {
            let mut faults = self.faults();
            if let Some(ms) = switches.latency_ms {
                faults.latency = std::time::Duration::from_millis(ms.min(600_000));
            }
            if let Some(status) = switches.fail_reviews {
                faults.review_status = status;
            }
            if let Some(hang) = switches.hang_reviews {
                faults.hang_reviews = hang;
            }
            if let Some(hang) = switches.hang_lists {
                faults.hang_lists = hang;
            }
        }
        if switches.drop_watches {
            self.drop_watches();
        }
        if switches.end_watches {
            self.end_watches();
        }
        if switches.compact {
            self.store().compact();
        }
        if switches.silence_watches {
            self.silence_watches();
        }
        Ok(self.fault_state())
    }

    /// What is switched on now.
    pub(crate) fn fault_state(&self) -> Value {
        let faults = self.faults();
        json!({
            "latencyMs": faults.latency.as_millis() as u64,
            "failedNamespaces": faults.namespace_status,
            "failReviews": faults.review_status,
            "hangReviews": faults.hang_reviews,
            "hangLists": faults.hang_lists,
        })
    }
}
