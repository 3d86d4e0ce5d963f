//! The runtime switch: a module is enabled while a cluster-scoped `BackendModule` object
//! (`pipelines.gitops.dev/v1alpha1`) of its name exists. Without the CRD (or a cluster), the
//! modules named by `--modules` are enabled, and the CRD is picked up when it appears.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::Serialize;

use super::{ModuleName, Modules};
use crate::source::cluster::{WatchSettings, resilient_watch};

pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "BackendModule";
pub const PLURAL: &str = "backendmodules";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum SwitchState {
    /// Modules come from `--modules` only (no cluster).
    Flags,
    /// Waiting for the first answer from the API server; `--modules` apply meanwhile.
    Starting,
    /// Following BackendModule objects.
    Following,
    /// The CRD is not installed; `--modules` apply until it is.
    CrdAbsent,
    /// The last attempt to follow the objects failed; the last known modules stay as they are.
    Failing,
}

/// What `/api/v1/modules` says of the switch.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwitchStatus {
    pub state: SwitchState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// BackendModule objects that name no module of this service.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_modules: Vec<String>,
}

/// Shared view of the switch's state.
pub struct Switch(Mutex<SwitchStatus>);

impl Switch {
    pub fn new(state: SwitchState) -> Self {
        Switch(Mutex::new(SwitchStatus { state, last_error: None, unknown_modules: Vec::new() }))
    }

    pub fn status(&self) -> SwitchStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut SwitchStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Follows BackendModule objects and applies them to `modules` until the task is aborted. The
/// watch has the namespace watchers' settings: their server-side timeout, silent-watch detection
/// (the timeout plus 5s) and backoff.
pub async fn follow(
    switch: Arc<Switch>,
    modules: Arc<Modules>,
    defaults: BTreeSet<ModuleName>,
    client: Client,
    watch: WatchSettings,
) {
    modules.apply(&defaults).await;
    let gvk = GroupVersionKind::gvk(crate::model::GROUP, VERSION, KIND);
    let api: Api<DynamicObject> = Api::all_with(client, &ApiResource::from_gvk_with_plural(&gvk, PLURAL));
    let config = watcher::Config::default().timeout(watch.timeout_seconds());
    let mut events = std::pin::pin!(resilient_watch(api, config, &watch));
    let mut listing: BTreeSet<String> = BTreeSet::new();
    let mut present: BTreeSet<String> = BTreeSet::new();
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(Event::Init) => {
                listing.clear();
                false
            }
            Ok(Event::InitApply(object)) => {
                listing.extend(object.metadata.name);
                false
            }
            Ok(Event::InitDone) => {
                present = std::mem::take(&mut listing);
                switch.following();
                true
            }
            Ok(Event::Apply(object)) => object.metadata.name.is_some_and(|n| present.insert(n)),
            Ok(Event::Delete(object)) => object.metadata.name.is_some_and(|n| present.remove(&n)),
            Err(error) => match switch.watch_failed(error.not_found(), error.to_string(), &defaults) {
                Some(flags) => {
                    present = flags;
                    true
                }
                None => false,
            },
        };
        if changed && switch.status().state != SwitchState::Failing {
            switch.apply(&modules, &present).await;
        }
    }
}

impl Switch {
    fn following(&self) {
        self.update(|s| {
            if s.state != SwitchState::Following {
                tracing::info!("following BackendModule objects to enable and disable modules");
            }
            s.state = SwitchState::Following;
            s.last_error = None;
        });
    }

    /// A watch that failed: without the CRD, the flags' modules are the ones present (returned);
    /// any other failure keeps the current modules (`None`).
    fn watch_failed(
        &self,
        not_found: bool,
        error: String,
        defaults: &BTreeSet<ModuleName>,
    ) -> Option<BTreeSet<String>> {
        if !not_found {
            tracing::warn!(%error, "cannot follow BackendModule objects; keeping the current modules");
            self.update(|s| (s.state, s.last_error) = (SwitchState::Failing, Some(error)));
            return None;
        }
        if self.status().state != SwitchState::CrdAbsent {
            tracing::warn!(modules = ?defaults, "the BackendModule CRD is not installed: enabling --modules and watching for the CRD to appear");
        }
        self.update(|s| (s.state, s.last_error) = (SwitchState::CrdAbsent, Some(error)));
        Some(defaults.iter().map(ModuleName::to_string).collect())
    }

    /// Enables the modules `present` names (and only those); names no module has are reported.
    async fn apply(&self, modules: &Modules, present: &BTreeSet<String>) {
        let (known, unknown): (Vec<_>, Vec<_>) = present.iter().map(|n| (n, n.parse())).partition(|(_, m)| m.is_ok());
        let unknown: Vec<String> = unknown.into_iter().map(|(n, _)| n.clone()).collect();
        self.update(|s| s.unknown_modules = unknown);
        modules.apply(&known.into_iter().filter_map(|(_, m)| m.ok()).collect()).await;
    }
}
