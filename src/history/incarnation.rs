//! Which incarnation of a namespace the archive's rows belong to. Rows are kept by namespace
//! name, and a name can be given again: a namespace deleted and created anew (a preview or
//! `pr-123` namespace handed to another team) has a new uid. Each row records the uid its
//! namespace had when it was written, and a row of an earlier incarnation is served to nobody
//! (it stays in the archive, for `--archive-retain` to prune).
//!
//! The uids come from a watch of the cluster's Namespaces (`list` and `watch` on namespaces), so
//! no request waits on the API server for them. Where that watch is refused or not synced yet,
//! a namespace's uid is not known: rows are then written without one, and nothing is filtered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher::{self, Event};

use crate::source::cluster::{WatchSettings, resilient_watch};

/// The uids of the cluster's namespaces, kept by a watch; none without a cluster.
#[derive(Default)]
pub struct Incarnations {
    shared: Arc<Shared>,
    watch: Option<tokio::task::AbortHandle>,
}

#[derive(Default)]
struct Shared {
    /// The uid of each namespace, by name, as last listed or seen.
    uids: Mutex<HashMap<String, String>>,
    /// Counts the namespaces seen under a new uid: pipelines' archived runs are loaded again.
    changes: AtomicU64,
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

    /// The uid `namespace` has now, where known.
    pub fn uid(&self, namespace: &str) -> Option<String> {
        self.shared.uids.lock().unwrap_or_else(|p| p.into_inner()).get(namespace).cloned()
    }

    /// The uids of these namespaces now, where known.
    pub fn uids(&self, namespaces: &[String]) -> HashMap<String, String> {
        let known = self.shared.uids.lock().unwrap_or_else(|p| p.into_inner());
        namespaces.iter().filter_map(|ns| Some((ns.clone(), known.get(ns)?.clone()))).collect()
    }

    /// Whether a row written under `row_uid` belongs to `namespace` as it is now.
    pub fn current(&self, namespace: &str, row_uid: Option<&str>) -> bool {
        match row_uid {
            // Written before uids were recorded, or without a cluster to ask.
            None => true,
            Some(row_uid) => self.uid(namespace).is_none_or(|now| now == row_uid),
        }
    }

    /// Changes every time a namespace is seen under a new uid.
    pub fn generation(&self) -> u64 {
        self.shared.changes.load(Ordering::Acquire)
    }
}

/// Keeps `shared` up to date with the cluster's namespaces, until aborted.
async fn follow(client: kube::Client, settings: WatchSettings, shared: Arc<Shared>) {
    let api: kube::Api<Namespace> = kube::Api::all(client);
    let config = watcher::Config::default().timeout(settings.timeout_seconds());
    let mut listing = HashMap::new();
    let mut events = std::pin::pin!(resilient_watch(api, config, &settings));
    let named = |ns: Namespace| Some((ns.metadata.name?, ns.metadata.uid?));
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing.clear(),
            Ok(Event::InitApply(ns)) => listing.extend(named(ns)),
            Ok(Event::InitDone) => {
                let listed = std::mem::take(&mut listing);
                let mut uids = shared.uids.lock().unwrap_or_else(|p| p.into_inner());
                let renamed =
                    listed.iter().filter(|(name, uid)| uids.get(*name).is_some_and(|was| was != *uid)).count();
                // Names no longer listed keep their last uid: created again, they count as renamed.
                uids.extend(listed);
                shared.changes.fetch_add(renamed as u64, Ordering::Release);
            }
            Ok(Event::Apply(ns)) => {
                if let Some((name, uid)) = named(ns) {
                    let was = shared.uids.lock().unwrap_or_else(|p| p.into_inner()).insert(name, uid.clone());
                    if was.is_some_and(|was| was != uid) {
                        shared.changes.fetch_add(1, Ordering::Release);
                    }
                }
            }
            // Its rows keep their uid: a namespace created again under the name is another one.
            Ok(Event::Delete(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the cluster's namespaces: archived runs are served whatever namespace of their name they came from (grant list and watch on namespaces)")
            }
        }
    }
}
