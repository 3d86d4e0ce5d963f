//! Sync state of each shard (a watched namespace, or the directory) and what it means for
//! readiness and for how complete a list is.

use jiff::Timestamp;

use super::Index;
use crate::query::Scope;
use crate::wire::{Freshness, ShardState, ShardStatus};

impl Index {
    /// Registers a shard before its first sync, so it shows as pending. `namespace` is the one
    /// namespace it holds, `None` for any.
    pub fn register(&self, source: &str, namespace: Option<&str>) {
        let mut state = self.write();
        state.shards.insert(source.to_owned(), ShardStatus::new(source, namespace));
        self.commit(&mut state);
    }

    /// Forgets one shard and everything it holds (a namespace no longer followed). Writes for it
    /// from then on are ignored.
    pub fn unregister(&self, source: &str) {
        let mut state = self.write();
        if state.shards.remove(source).is_none() {
            return;
        }
        for id in state.owned_by(source) {
            state.remove(&id, None);
        }
        self.commit(&mut state);
    }

    /// Forgets every shard and everything in the index (the executions module was disabled).
    pub fn clear(&self) {
        let mut state = self.write();
        let (revision, changes) = (state.revision, state.changes.successor());
        *state = super::State { revision, changes, ..super::State::default() };
        self.commit(&mut state);
    }

    /// Records a failed list or watch. `answered` says the server replied (e.g. 403) rather
    /// than being unreachable.
    pub fn fail(&self, source: &str, error: String, answered: bool) {
        let mut state = self.write();
        let Some(shard) = state.shards.get_mut(source) else { return };
        if shard.state != ShardState::Failing {
            shard.failing_since = Some(Timestamp::now());
        }
        shard.state = ShardState::Failing;
        shard.last_error = Some(error);
        shard.answered = answered;
        self.commit(&mut state);
        self.restarts.restart(source);
    }

    /// Every shard, with staleness evaluated now.
    pub fn shards(&self) -> Vec<ShardStatus> {
        let now = Timestamp::now();
        self.read().shards.values().map(|s| s.with_staleness(self.staleness, now)).collect()
    }

    /// True once every shard has settled and there is at least one.
    pub fn settled(&self) -> bool {
        let state = self.read();
        !state.shards.is_empty() && state.shards.values().all(ShardStatus::settled)
    }

    /// Freshness of data drawn from `namespace` (or from every shard when `None`), over the
    /// shards of namespaces `scope` covers: a caller never learns of a source they may not read.
    pub fn freshness(&self, namespace: Option<&str>, scope: &Scope) -> Freshness {
        let now = Timestamp::now();
        let incomplete: Vec<ShardStatus> = self
            .read()
            .shards
            .values()
            .filter(|s| s.state != ShardState::Synced)
            .filter(|s| namespace.is_none_or(|ns| s.covers(ns)))
            .filter(|s| s.namespace.as_deref().is_none_or(|ns| scope.allows(ns)))
            .map(|s| s.with_staleness(self.staleness, now))
            .collect();
        Freshness {
            complete: incomplete.is_empty(),
            stale: incomplete.iter().any(|s| s.stale),
            incomplete_sources: incomplete,
        }
    }

    /// Once `source` has been listed since it was registered, or is forgotten.
    pub async fn listed(&self, source: &str) {
        let mut changes = self.subscribe();
        let listed = |index: &Index| index.read().shards.get(source).is_none_or(|s| s.last_sync.is_some());
        while !listed(self) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether data for `namespace` has been listed at least once.
    pub fn has_synced(&self, namespace: &str) -> bool {
        self.read().shards.values().any(|s| s.covers(namespace) && s.last_sync.is_some())
    }
}
