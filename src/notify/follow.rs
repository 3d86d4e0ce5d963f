//! The subscriptions, followed in the cluster: each valid one gets a delivering task, an invalid
//! one a status saying why, a deleted one loses its waiting messages. Beside them, the task that
//! writes the index's notes to the outbox (once the subscriptions are listed, so no note is
//! judged against a list not yet read), and the outbox's upkeep.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::DynamicObject;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::Notifier;
use super::deliver::{self, Problem, StatusWriter, Why};
use super::notes;
use super::subscription::{Subscription, SubscriptionId};
use crate::source::cluster::{WatchSettings, resilient_watch};

/// Messages written in one transaction at most.
const BATCH: usize = 500;
/// How often dead-lettering by age and forgetting old messages run, at most: a third of the
/// maximum age where that is shorter (so a message is given up on near its age), but no more
/// than once a second.
const UPKEEP: Duration = Duration::from_secs(60);
const UPKEEP_MIN: Duration = Duration::from_secs(1);

/// A subscription the service follows.
struct Held {
    generation: i64,
    /// `None` while its spec is invalid.
    subscription: Option<Arc<Subscription>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the tasks share: the subscriptions by uid.
#[derive(Clone, Default)]
struct Followed(Arc<Mutex<HashMap<String, Held>>>);

impl Followed {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn valid(&self) -> Vec<Arc<Subscription>> {
        self.lock().values().filter_map(|h| h.subscription.clone()).collect()
    }

    fn wake(&self, uids: &BTreeSet<&str>) {
        for (uid, held) in self.lock().iter() {
            if uids.contains(uid.as_str()) {
                held.wake.notify_one();
            }
        }
    }
}

pub async fn run(notifier: Arc<Notifier>, client: Client, settings: WatchSettings) {
    let followed = Followed::default();
    let (synced_tx, synced) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(write_notes(notifier.clone(), followed.clone(), synced));
    tasks.spawn(upkeep(notifier.clone()));
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &deliver::resource());
    let config = watcher::Config::default().timeout(settings.timeout_seconds());
    let mut events = std::pin::pin!(resilient_watch(api, config, &settings));
    let (mut listing, mut fresh) = (BTreeSet::new(), BTreeSet::new());
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing.clear(),
            Ok(Event::InitApply(object)) => {
                listing.extend(SubscriptionId::of(&object).map(|id| id.uid.clone()));
                fresh.extend(apply(&notifier, &client, &followed, &object));
            }
            Ok(Event::InitDone) => {
                let gone: Vec<String> = followed.lock().keys().filter(|uid| !listing.contains(*uid)).cloned().collect();
                for uid in gone {
                    forget(&notifier, &followed, &uid).await;
                }
                note_runs_of(&notifier, &std::mem::take(&mut fresh));
                synced_tx.send_replace(true);
                notifier.followed(Ok(()));
            }
            Ok(Event::Apply(object)) => {
                let started = apply(&notifier, &client, &followed, &object);
                note_runs_of(&notifier, &started.into_iter().collect());
            }
            Ok(Event::Delete(object)) => {
                if let Some(id) = SubscriptionId::of(&object) {
                    forget(&notifier, &followed, &id.uid).await;
                }
            }
            Err(error) => {
                let why = if error.not_found() {
                    "the NotificationSubscription CRD is not installed (kubectl apply -k manifests/notifications)"
                        .to_owned()
                } else {
                    format!("cannot follow NotificationSubscription objects: {error}")
                };
                tracing::warn!("{why}");
                notifier.followed(Err(why));
            }
        }
    }
}

/// Notes the live runs of these namespaces again: what a subscription just started looks at
/// first (runs that changed before it was seen, while the service was down or the module off).
/// Once per listing of the subscriptions, not once per subscription.
fn note_runs_of(notifier: &Notifier, namespaces: &BTreeSet<String>) {
    if namespaces.is_empty() {
        return;
    }
    let runs = notifier.index.all_executions().into_iter().filter(|r| namespaces.contains(&r.id.namespace));
    notifier.notes.note_all(runs.collect());
}

/// Starts (or starts again, when its spec changed) a subscription's task; the namespace of a
/// valid subscription started.
fn apply(notifier: &Arc<Notifier>, client: &Client, followed: &Followed, object: &DynamicObject) -> Option<String> {
    let id = SubscriptionId::of(object)?;
    let generation = object.metadata.generation.unwrap_or(0);
    if followed.lock().get(&id.uid).is_some_and(|h| h.generation == generation) {
        return None;
    }
    let wake = Arc::new(Notify::new());
    let (subscription, task) = match Subscription::parse(&id, object) {
        Ok(sub) => {
            let sub = Arc::new(sub);
            let task = tokio::spawn(deliver::run(notifier.clone(), sub.clone(), client.clone(), wake.clone()));
            (Some(sub), task)
        }
        Err(message) => {
            tracing::info!(namespace = %id.namespace, subscription = %id.name, %message, "invalid subscription");
            let (notifier, mut status) = (notifier.clone(), StatusWriter::new(client.clone(), &id, generation));
            let task = tokio::spawn(async move {
                status.report(&notifier, Some(Problem::new(Why::InvalidSpec, message))).await;
            });
            (None, task)
        }
    };
    let started = subscription.as_ref().map(|s| s.namespace.clone());
    followed.lock().insert(id.uid, Held { generation, subscription, wake, task });
    started
}

/// A deleted subscription: its task stops, and its waiting messages are dropped.
async fn forget(notifier: &Notifier, followed: &Followed, uid: &str) {
    let held = followed.lock().remove(uid);
    drop(held);
    match notifier.archive.outbox() {
        Ok(outbox) => match outbox.drop_waiting(uid).await {
            Ok(dropped) => tracing::info!(uid, dropped, "subscription deleted: its waiting messages are dropped"),
            Err(e) => tracing::warn!(uid, error = %e, "cannot drop a deleted subscription's messages"),
        },
        Err(e) => tracing::warn!(uid, error = %e, "cannot drop a deleted subscription's messages"),
    }
}

/// Writes the index's notes to the outbox, in batches, once the subscriptions are listed; what
/// the database does not take is noted again and retried.
async fn write_notes(notifier: Arc<Notifier>, followed: Followed, mut synced: watch::Receiver<bool>) {
    let _ = synced.wait_for(|s| *s).await;
    loop {
        let pending = notifier.notes.take().await;
        let oldest = Timestamp::now().checked_sub(notifier.settings.keep).unwrap_or(Timestamp::UNIX_EPOCH);
        let messages = notes::messages(&pending, &followed.valid(), oldest);
        let written = match notifier.archive.outbox() {
            Ok(outbox) => {
                let mut result = Ok(());
                for batch in messages.chunks(BATCH) {
                    result = outbox.enqueue(batch).await.map(|_| ());
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => followed.wake(&messages.iter().map(|m| m.subscription_uid.as_str()).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "notifications cannot be written to the outbox; trying again");
                notifier.notes.put_back(pending);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Dead-letters messages past the maximum age that were never tried (their destination refused)
/// and forgets those older than `--notify-keep`.
async fn upkeep(notifier: Arc<Notifier>) {
    loop {
        if let Ok(outbox) = notifier.archive.outbox() {
            let now = Timestamp::now();
            if let Ok(aged) = now.checked_sub(notifier.settings.max_age) {
                match outbox.expire(aged).await {
                    Ok(expired) => expired.iter().for_each(|namespace| notifier.metrics.dead(namespace)),
                    Err(e) => tracing::warn!(error = %e, "cannot dead-letter aged notifications"),
                }
            }
            if let Ok(old) = now.checked_sub(notifier.settings.keep)
                && let Err(e) = outbox.forget(old).await
            {
                tracing::warn!(error = %e, "cannot forget old notifications");
            }
        }
        tokio::time::sleep((notifier.settings.max_age / 3).clamp(UPKEEP_MIN, UPKEEP)).await;
    }
}
