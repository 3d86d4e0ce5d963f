//! The index's change feed for those beside it: every version served, every run ended, every
//! complete relist, told in order under the index's lock. The archive's journal subscribes;
//! streams read the index's own change log (`changes`). No subscriber is known by name here, so
//! the index knows nothing of databases.

use std::sync::Arc;

use jiff::Timestamp;

use super::ExecutionEntry;

/// One who follows every change. Told under the index's lock: it notes, and never waits.
pub trait Subscriber: Send + Sync {
    /// This version of an execution is served now.
    fn served(&self, entry: &Arc<ExecutionEntry>);

    /// This execution is served no more (its ConfigMap deleted, unlabelled, or rejected now):
    /// ended at `at`.
    fn ended(&self, entry: &Arc<ExecutionEntry>, at: Timestamp);

    /// A complete relist of `namespace` (`None`: a directory, which holds every namespace) held
    /// `listed`; `newest` is its newest resourceVersion (`i64::MAX` where versions are not
    /// numbers, 0 for an empty list).
    fn relisted(&self, namespace: Option<&str>, listed: &[&Arc<ExecutionEntry>], newest: i64);
}
