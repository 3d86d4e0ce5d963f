//! Pluggable modules: every domain of the API is a module that can be enabled and disabled while
//! the service runs. A disabled module (or one whose dependency is disabled) answers every one of
//! its routes with `503 ModuleNotInstalled`, checked in one place: the gate in `api::routes`.

mod executions;
mod history;
mod insights;
mod notifications;
mod pipelines;
mod rejections;
mod retention;
pub mod switch;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::watch;

pub use executions::ExecutionsModule;
pub use history::HistoryModule;
pub use insights::InsightsModule;
pub use notifications::NotificationsModule;
pub use pipelines::PipelinesModule;
pub use rejections::RejectionsModule;
pub use retention::RetentionModule;

pub use crate::model::{ModuleName, Resource};
/// One domain of the API.
pub trait Module: Send + Sync {
    fn name(&self) -> ModuleName;
    /// Modules this one needs enabled to be available.
    fn depends_on(&self) -> &'static [ModuleName] {
        &[]
    }
    /// The API resources (`/api/v1/{resource}`, `/api/v1/namespaces/{ns}/{resource}/...`) whose
    /// routes belong to this module.
    fn resources(&self) -> &'static [Resource];
    /// Starts what the module needs. Idempotent. By default the module has nothing to start.
    fn enable(&self) -> BoxFuture<'_, ()> {
        self.lifecycle().set(true);
        futures::future::ready(()).boxed()
    }
    /// Stops the module's tasks and waits for them, ends its streams, frees its state. Idempotent.
    /// By default only the streams end (they watch the lifecycle).
    fn disable(&self) -> BoxFuture<'_, ()> {
        self.lifecycle().set(false);
        futures::future::ready(()).boxed()
    }
    fn lifecycle(&self) -> &Lifecycle;
    /// Ready once its own initial sync is done; with the last error it met, if any. By default a
    /// module has no sync of its own.
    fn readiness(&self) -> (bool, Option<String>) {
        (true, None)
    }
    /// Whether the service is ready only once this module is: true but for modules (the
    /// archive) whose outage must not take live executions off the service's endpoints.
    fn holds_readiness(&self) -> bool {
        true
    }
}

/// Whether a module is enabled, observable by its streams and long polls so they can end when
/// it is disabled. Clones share the state.
#[derive(Clone)]
pub struct Lifecycle(Arc<watch::Sender<bool>>);

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle(Arc::new(watch::Sender::new(false)))
    }
}

impl Lifecycle {
    pub fn is_enabled(&self) -> bool {
        *self.0.borrow()
    }
    /// Sets the state; true when it changed.
    pub fn set(&self, enabled: bool) -> bool {
        self.0.send_if_modified(|e| std::mem::replace(e, enabled) != enabled)
    }
    /// Completes when the module is (or becomes) disabled.
    pub fn disabled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|enabled| !enabled).await;
        }
    }
}

/// A module's background task: started once on enable, aborted and awaited on disable.
#[derive(Default)]
pub struct Task(std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>);

impl Task {
    /// Spawns `make()`'s future unless the task runs already.
    pub fn start<F: Future<Output = ()> + Send + 'static>(&self, make: impl FnOnce() -> F) {
        let mut task = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_none() {
            *task = Some(tokio::spawn(make()));
        }
    }

    /// Aborts the task and waits until it has stopped; true when it was running.
    pub async fn stop(&self) -> bool {
        let task = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(task) = task else { return false };
        task.abort();
        let _ = task.await;
        true
    }
}

/// A module, or one it depends on, is switched off; the message names which.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotInstalled(pub String);

impl NotInstalled {
    pub fn module(name: ModuleName) -> Self {
        NotInstalled(format!("module {name} is not installed"))
    }
}

/// What `GET /api/v1/modules` says of one module.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleStatus {
    pub name: ModuleName,
    pub enabled: bool,
    /// Enabled, and so is every module it depends on: it answers its routes.
    pub available: bool,
    pub ready: bool,
    pub depends_on: &'static [ModuleName],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Whether the service's readiness waits for this module's.
    #[serde(skip)]
    pub holds_readiness: bool,
}

/// Every module of the service.
pub struct Modules {
    modules: Vec<Arc<dyn Module>>,
}

impl Modules {
    pub fn new(modules: Vec<Arc<dyn Module>>) -> Self {
        Modules { modules }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Module>> {
        self.modules.iter()
    }

    fn get(&self, name: ModuleName) -> Option<&Arc<dyn Module>> {
        self.modules.iter().find(|m| m.name() == name)
    }

    /// Enables exactly the modules in `wanted`, dependencies first, and disables the rest.
    pub async fn apply(&self, wanted: &BTreeSet<ModuleName>) {
        for module in &self.modules {
            if !wanted.contains(&module.name()) && module.lifecycle().is_enabled() {
                tracing::info!(module = %module.name(), "disabling module");
                module.disable().await;
            }
        }
        for module in &self.modules {
            if wanted.contains(&module.name()) && !module.lifecycle().is_enabled() {
                tracing::info!(module = %module.name(), "enabling module");
                module.enable().await;
            }
        }
    }

    /// Whether the module is on, and every module it depends on.
    pub fn is_available(&self, name: ModuleName) -> bool {
        let on = |name: ModuleName| self.get(name).is_some_and(|m| m.lifecycle().is_enabled());
        self.get(name).is_some_and(|m| on(name) && m.depends_on().iter().all(|d| on(*d)))
    }

    /// Why the module owning API `resource` cannot answer now, if it cannot: itself or a
    /// dependency is not installed. Resources no module owns are always available.
    pub fn unavailable(&self, resource: Resource) -> Option<NotInstalled> {
        let owner = self.modules.iter().find(|m| m.resources().contains(&resource))?;
        let missing = std::iter::once(owner.name())
            .chain(owner.depends_on().iter().copied())
            .find(|name| !self.get(*name).is_some_and(|m| m.lifecycle().is_enabled()))?;
        if missing == owner.name() {
            return Some(NotInstalled::module(missing));
        }
        Some(NotInstalled(format!("module {missing} is not installed (module {} depends on it)", owner.name())))
    }

    /// Completes when the module owning API `resource`, or one it depends on, is (or becomes)
    /// disabled, with why: what ends a long poll or a stream of that resource. Never completes
    /// for a resource no module owns.
    pub fn withdrawn(self: &Arc<Self>, resource: Resource) -> impl Future<Output = NotInstalled> + Send + 'static {
        let owner = self.modules.iter().find(|m| m.resources().contains(&resource));
        let needed: Vec<Lifecycle> = owner
            .into_iter()
            .flat_map(|o| std::iter::once(o.name()).chain(o.depends_on().iter().copied()))
            .filter_map(|name| self.get(name).map(|m| m.lifecycle().clone()))
            .collect();
        let (modules, resource) = (self.clone(), resource.to_owned());
        async move {
            if needed.is_empty() {
                return std::future::pending().await;
            }
            futures::future::select_all(needed.iter().map(|l| Box::pin(l.disabled()))).await;
            modules.unavailable(resource).unwrap_or_else(|| NotInstalled(format!("{resource} was switched off")))
        }
    }

    /// Every module's state. A module is ready when it is available, its own sync is done and its
    /// dependencies are ready (modules are listed after their dependencies).
    pub fn status(&self) -> Vec<ModuleStatus> {
        let mut all: Vec<ModuleStatus> = Vec::with_capacity(self.modules.len());
        for m in &self.modules {
            let enabled = m.lifecycle().is_enabled();
            let (ready, own_error) = m.readiness();
            let dependency = |d: &ModuleName| all.iter().find(|s| s.name == *d);
            let missing = m.depends_on().iter().find(|d| !dependency(d).is_some_and(|s| s.available));
            let deps_ready = m.depends_on().iter().all(|d| dependency(d).is_some_and(|s| s.ready));
            let last_error = missing.map(|d| format!("depends on module {d}, which is not installed")).or(own_error);
            let available = enabled && missing.is_none();
            let ready = available && ready && deps_ready;
            all.push(ModuleStatus {
                name: m.name(),
                enabled,
                available,
                ready,
                depends_on: m.depends_on(),
                last_error,
                holds_readiness: m.holds_readiness(),
            });
        }
        all
    }
}

/// True when every available module is ready. A module switched off, or left without a
/// dependency, is configuration rather than a fault, and does not hold readiness back.
pub fn all_ready(modules: &[ModuleStatus]) -> bool {
    modules.iter().filter(|s| s.available && s.holds_readiness).all(|s| s.ready)
}
