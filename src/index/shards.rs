//! Sync state of each shard (a watched namespace, or the directory) and what it means for
//! readiness and for how complete a list is.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Index, Scope};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ShardState {
    /// Never synced yet.
    Pending,
    Synced,
    /// The last attempt failed; the last good data (if any) is still served.
    Failing,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// The namespace watched, or `dir:PATH`.
    pub source: String,
    /// The one namespace this shard holds, or `None` for a directory that may hold any.
    #[serde(skip)]
    pub namespace: Option<String>,
    pub state: ShardState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sync: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<Timestamp>,
    /// The failure was an answer from the server (such as 403), not an unreachable server.
    #[serde(skip)]
    pub answered: bool,
    /// Set when read: the data was last confirmed current longer ago than the staleness bound.
    pub stale: bool,
}

impl ShardStatus {
    pub(super) fn new(source: &str, namespace: Option<&str>) -> Self {
        ShardStatus {
            source: source.to_owned(),
            namespace: namespace.map(str::to_owned),
            state: ShardState::Pending,
            last_sync: None,
            last_error: None,
            failing_since: None,
            answered: false,
            stale: false,
        }
    }

    pub(super) fn synced(&mut self, now: Timestamp) {
        self.state = ShardState::Synced;
        self.last_sync = Some(now);
        self.failing_since = None;
    }

    /// Whether objects of `namespace` come from this shard.
    pub fn covers(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// Settled shards no longer hold readiness back: synced, or refused with a reason.
    pub fn settled(&self) -> bool {
        self.last_sync.is_some() || (self.state == ShardState::Failing && self.answered)
    }

    fn with_staleness(&self, bound: Duration, now: Timestamp) -> Self {
        let bound = SignedDuration::try_from(bound).unwrap_or(SignedDuration::MAX);
        let stale = self.state != ShardState::Synced
            && self.failing_since.is_some_and(|since| now.duration_since(since) > bound);
        ShardStatus { stale, ..self.clone() }
    }
}

/// How complete and fresh a response is: every source it draws on that is not synced is named.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Freshness {
    pub complete: bool,
    pub stale: bool,
    pub incomplete_sources: Vec<ShardStatus>,
}

impl Freshness {
    /// Names the archive among the sources not read: a list that merges it in holds only what
    /// is live.
    pub fn archive_unreadable(&mut self, error: String) {
        let mut archive = ShardStatus::new("archive", None);
        (archive.state, archive.last_error, archive.answered) = (ShardState::Failing, Some(error), true);
        self.complete = false;
        self.incomplete_sources.push(archive);
    }
}

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

    /// Whether data for `namespace` has been listed at least once.
    pub fn has_synced(&self, namespace: &str) -> bool {
        self.read().shards.values().any(|s| s.covers(namespace) && s.last_sync.is_some())
    }
}
