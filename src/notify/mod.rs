//! Notifications: signed CloudEvents for the transitions a team subscribed to, written to an
//! outbox in the archive before anything is sent, so nothing is lost when the service stops,
//! and sent at least once with a stable id, so a receiver can drop what it saw.
//!
//! - `subscription.rs`: a `NotificationSubscription` as the team writes it;
//! - `message.rs`: the transitions a run's state shows, their ids and CloudEvents;
//! - `destination.rs`: where a subscription may send (`--notify-allow`), resolved once;
//! - `template.rs`: a subscription's own body shape, where it wants one;
//! - `sign.rs`: Standard Webhooks signatures; `send.rs`: one attempt over HTTP;
//! - `notes.rs`: the index's subscriber, writing the outbox; `deliver.rs`: one task per
//!   subscription, sending, retrying and reporting its status; `follow.rs`: the subscriptions,
//!   watched in the cluster.

mod deliver;
pub mod destination;
mod follow;
pub mod message;
mod notes;
pub mod send;
pub mod sign;
pub mod subscription;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

pub use destination::{Allowed, Guard};
pub use notes::Notes;
pub use subscription::{KIND, PLURAL, Subscription, VERSION};

use crate::history::Archive;
use crate::index::Index;
use crate::metrics::NotificationMetrics;

/// The notifications' settings, from the command line.
#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// `--notify-allow`: the destinations a subscription may name.
    pub allowed: Vec<Allowed>,
    /// How long a message is tried before it is dead-lettered.
    pub max_age: Duration,
    /// How long sent and dead messages are kept (and transitions older than this are never
    /// sent, so their ids need not be kept to refuse duplicates).
    pub keep: Duration,
    /// Attempts in flight per subscription.
    pub concurrency: usize,
    /// Attempts per second per subscription.
    pub rate: u32,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            allowed: Vec::new(),
            max_age: Duration::from_secs(24 * 3600),
            keep: Duration::from_secs(7 * 24 * 3600),
            concurrency: 8,
            rate: 100,
        }
    }
}

impl NotifySettings {
    /// Messages are kept longer than they are tried, or a message still tried could be written
    /// again after its row was forgotten.
    pub fn check(&self) -> Result<(), String> {
        if self.keep <= self.max_age {
            return Err(format!(
                "--notify-keep ({}) must be longer than --notify-max-age ({})",
                humantime::format_duration(self.keep),
                humantime::format_duration(self.max_age)
            ));
        }
        if self.concurrency == 0 || self.rate == 0 {
            return Err("--notify-concurrency and --notify-rate must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// What the notifier's tasks share.
pub struct Notifier {
    pub settings: NotifySettings,
    pub guard: Guard,
    pub archive: Archive,
    pub index: Index,
    pub notes: Arc<Notes>,
    pub metrics: NotificationMetrics,
    /// This replica, as it claims messages: another replica's claims are not its own.
    pub me: String,
    /// Whether the subscriptions were listed, and why the last attempt to follow them failed.
    following: std::sync::Mutex<(bool, Option<String>)>,
}

impl Notifier {
    pub fn new(settings: NotifySettings, guard: Guard, archive: Archive, index: Index, notes: Arc<Notes>) -> Self {
        let me = format!("{}-{:08x}", crate::files::hostname(), fastrand::u32(..));
        let following = std::sync::Mutex::default();
        Notifier { settings, guard, archive, index, notes, metrics: NotificationMetrics::default(), me, following }
    }

    /// Ready once the subscriptions are listed; the last error following them, if any.
    pub fn readiness(&self) -> (bool, Option<String>) {
        self.following.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn followed(&self, result: Result<(), String>) {
        let mut following = self.following.lock().unwrap_or_else(|p| p.into_inner());
        *following = match result {
            Ok(()) => (true, None),
            Err(error) => (following.0, Some(error)),
        };
    }

    /// Follows the subscriptions and delivers their messages until aborted.
    pub async fn run(self: Arc<Self>, client: kube::Client, watch: crate::source::cluster::WatchSettings) {
        follow::run(self, client, watch).await;
    }
}
