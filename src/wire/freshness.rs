//! How complete and fresh an answer is: the sources it draws on that are not synced.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ShardState {
    /// Never synced yet.
    Pending,
    Synced,
    /// The last attempt failed; the last good data (if any) is still served.
    Failing,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    pub fn new(source: &str, namespace: Option<&str>) -> Self {
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

    pub fn synced(&mut self, now: Timestamp) {
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

    pub fn with_staleness(&self, bound: Duration, now: Timestamp) -> Self {
        let bound = SignedDuration::try_from(bound).unwrap_or(SignedDuration::MAX);
        let stale = self.state != ShardState::Synced
            && self.failing_since.is_some_and(|since| now.duration_since(since) > bound);
        ShardStatus { stale, ..self.clone() }
    }
}

/// How complete and fresh a response is: every source it draws on that is not synced is named.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
