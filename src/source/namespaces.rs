//! `--namespace-selector`: follows the Namespace objects whose labels match, and tells which
//! namespaces to start and stop watching as they are labelled, unlabelled, created and deleted.

use std::collections::BTreeSet;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use super::SourceError;
use super::cluster::{WatchSettings, resilient_watch};
use crate::selector::Selector;

/// A change to the set of namespaces to watch.
#[derive(Debug)]
pub enum Change {
    Start(String),
    Stop(String),
    /// The selected namespaces were listed: the set is complete.
    Synced,
    Failed(SourceError),
}

/// The changes, as the Namespace objects matching `selector` come and go. Never ends.
pub fn follow(client: Client, selector: &Selector, watch: &WatchSettings) -> impl Stream<Item = Change> + Send + use<> {
    let api: Api<Namespace> = Api::all(client);
    let config = watcher::Config::default().labels(&selector.to_string()).timeout(watch.timeout_seconds());
    let mut followed = BTreeSet::new();
    let mut listing = BTreeSet::new();
    resilient_watch(api, config, watch).flat_map(move |event| {
        let changes = match event {
            Ok(Event::Init) => {
                listing.clear();
                Vec::new()
            }
            Ok(Event::InitApply(ns)) => {
                listing.extend(ns.metadata.name);
                Vec::new()
            }
            Ok(Event::InitDone) => {
                let listed = std::mem::take(&mut listing);
                let mut changes: Vec<Change> = followed.difference(&listed).cloned().map(Change::Stop).collect();
                changes.extend(listed.difference(&followed).cloned().map(Change::Start));
                followed = listed;
                changes.push(Change::Synced);
                changes
            }
            Ok(Event::Apply(ns)) => {
                ns.metadata.name.filter(|n| followed.insert(n.clone())).map(Change::Start).into_iter().collect()
            }
            Ok(Event::Delete(ns)) => {
                ns.metadata.name.filter(|n| followed.remove(n)).map(Change::Stop).into_iter().collect()
            }
            Err(e) => vec![Change::Failed(e)],
        };
        futures::stream::iter(changes)
    })
}
