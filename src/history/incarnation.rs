//! Which incarnation of a namespace the archive's rows belong to. Rows are kept by namespace
//! name, and a name can be given again: a namespace deleted and created anew (a preview or
//! `pr-123` namespace handed to another team) is another namespace. Its name can be given again
//! only once every object of the earlier one is gone, so a row whose ConfigMap was created
//! before the namespace now of that name belongs to an earlier one, and is served to nobody (it
//! stays in the archive, for `--archive-retain` to prune). Both times are the API server's, so
//! no replica's clock is compared, and nothing is stamped on a row that could be stale.
//!
//! The namespaces' creation times come from a watch of the cluster's Namespaces (`list` and
//! `watch` on namespaces), so no request waits on the API server for them. Where that watch is
//! refused or not synced yet, a namespace's creation is not known and nothing is filtered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher::{self, Event};

use crate::source::cluster::{WatchSettings, resilient_watch};

/// When each of the cluster's namespaces was created, kept by a watch; none without a cluster.
#[derive(Default)]
pub struct Incarnations {
    shared: Arc<Shared>,
    watch: Option<tokio::task::AbortHandle>,
}

#[derive(Default)]
struct Shared {
    /// The uid and creation (Unix milliseconds) of each namespace, by name, as last listed or
    /// seen.
    known: Mutex<HashMap<String, (String, i64)>>,
    /// Counts the namespaces seen under a new uid: pipelines' archived runs are loaded again.
    changes: AtomicU64,
    /// Told when `changes` grows, to wake the archive's writer.
    changed: tokio::sync::Notify,
}

impl Drop for Incarnations {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.abort();
        }
    }
}

impl Incarnations {
    /// Starts watching the cluster's namespaces, where there is a cluster.
    pub fn new(cluster: Option<(kube::Client, WatchSettings)>) -> Self {
        let Some((client, settings)) = cluster else { return Incarnations::default() };
        let shared = Arc::new(Shared::default());
        let watch = tokio::spawn(follow(client, settings, shared.clone())).abort_handle();
        Incarnations { shared, watch: Some(watch) }
    }

    /// When the namespace now named `namespace` was created, where known.
    fn created(&self, namespace: &str) -> Option<i64> {
        self.shared.known.lock().unwrap_or_else(|p| p.into_inner()).get(namespace).map(|(_, created)| *created)
    }

    /// Whether a row whose ConfigMap was created at `configmap_created` belongs to `namespace`
    /// as it is now: not created before it.
    pub fn current(&self, namespace: &str, configmap_created: Option<i64>) -> bool {
        match (configmap_created, self.created(namespace)) {
            (Some(configmap), Some(namespace)) => configmap >= namespace,
            // Written before creation times were kept, or no namespace known to compare with.
            _ => true,
        }
    }

    /// Changes every time a namespace is seen under a new uid.
    pub fn generation(&self) -> u64 {
        self.shared.changes.load(Ordering::Acquire)
    }

    /// Completes once a namespace has been seen under a new uid since the last call.
    pub async fn changed(&self) {
        self.shared.changed.notified().await;
    }
}

/// Keeps `shared` up to date with the cluster's namespaces, until aborted.
async fn follow(client: kube::Client, settings: WatchSettings, shared: Arc<Shared>) {
    let api: kube::Api<Namespace> = kube::Api::all(client);
    let config = watcher::Config::default().timeout(settings.timeout_seconds());
    let mut listing = HashMap::new();
    let mut events = std::pin::pin!(resilient_watch(api, config, &settings));
    let named = |ns: Namespace| {
        let created = ns.metadata.creation_timestamp?.0.as_millisecond();
        Some((ns.metadata.name?, (ns.metadata.uid?, created)))
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing.clear(),
            Ok(Event::InitApply(ns)) => listing.extend(named(ns)),
            Ok(Event::InitDone) => {
                let listed = std::mem::take(&mut listing);
                let mut known = shared.known.lock().unwrap_or_else(|p| p.into_inner());
                let renamed =
                    listed.iter().filter(|(name, uid)| known.get(*name).is_some_and(|was| was != *uid)).count();
                // Names no longer listed keep their last uid: created again, they count as renamed.
                known.extend(listed);
                if renamed > 0 {
                    shared.changes.fetch_add(renamed as u64, Ordering::Release);
                    shared.changed.notify_one();
                }
            }
            Ok(Event::Apply(ns)) => {
                if let Some((name, now)) = named(ns) {
                    let uid = now.0.clone();
                    let was = shared.known.lock().unwrap_or_else(|p| p.into_inner()).insert(name, now);
                    if was.is_some_and(|(was, _)| was != uid) {
                        shared.changes.fetch_add(1, Ordering::Release);
                        shared.changed.notify_one();
                    }
                }
            }
            // Kept: a namespace created again under the name counts as renamed.
            Ok(Event::Delete(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the cluster's namespaces: archived runs are served whatever namespace of their name they came from (grant list and watch on namespaces)")
            }
        }
    }
}
