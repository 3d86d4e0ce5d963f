//! The index's change feed for those beside it: every version served, every run ended, every
//! complete relist, told in order under the index's lock. The archive's journal subscribes;
//! streams read the index's own change log (`changes`). No subscriber is known by name here, so
//! the index knows nothing of databases.

use std::sync::Arc;

use jiff::Timestamp;

use super::{ExecutionEntry, RejectionEntry};

/// One who follows every change. Told under the index's lock: it notes, and never waits.
pub trait Subscriber: Send + Sync {
    /// This version of an execution is served now.
    fn served(&self, entry: &Arc<ExecutionEntry>);

    /// This execution is served no more (its ConfigMap deleted, unlabelled, or rejected now):
    /// ended at `at`.
    fn ended(&self, entry: &Arc<ExecutionEntry>, at: Timestamp);

    /// A complete relist of `namespace` (`None`: a directory, which holds every namespace) held
    /// `listed`.
    fn relisted(&self, namespace: Option<&str>, listed: &[&Arc<ExecutionEntry>]);

    /// This version of a ConfigMap is rejected (served as a rejection). By default, nothing.
    fn rejected(&self, _rejection: &Arc<RejectionEntry>) {}
}

/// Two subscribers, each told everything, in order: the archive's journal and the notifier.
pub struct Both(pub Arc<dyn Subscriber>, pub Arc<dyn Subscriber>);

impl Subscriber for Both {
    fn served(&self, entry: &Arc<ExecutionEntry>) {
        self.0.served(entry);
        self.1.served(entry);
    }

    fn ended(&self, entry: &Arc<ExecutionEntry>, at: Timestamp) {
        self.0.ended(entry, at);
        self.1.ended(entry, at);
    }

    fn relisted(&self, namespace: Option<&str>, listed: &[&Arc<ExecutionEntry>]) {
        self.0.relisted(namespace, listed);
        self.1.relisted(namespace, listed);
    }

    fn rejected(&self, rejection: &Arc<RejectionEntry>) {
        self.0.rejected(rejection);
        self.1.rejected(rejection);
    }
}
