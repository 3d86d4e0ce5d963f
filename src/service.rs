//! Wiring: the index, the modules and their switch, and the HTTP server; one shutdown signal
//! stops them all.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::Instrument;

use crate::access::Access;
use crate::api::{self, AppState, CallerLimits, Health, PageLimits, ServerSettings};
use crate::index::{Both, Index};
use crate::metrics::HttpMetrics;
use crate::modules::switch::{self, Switch, SwitchState};
use crate::notify::{Guard, Notes, Notifier};

/// Budget of the cache of assembled pages and compressed bodies.
const RESPONSE_CACHE_BYTES: u64 = 32 << 20;
use crate::decode::SchemaRegistry;
use crate::history::{Archive, ArchiveSettings, WarmSource};
use crate::metrics::{NotificationMetrics, RetentionMetrics};
use crate::modules::{
    ExecutionsModule, HistoryModule, InsightsModule, Module, Modules, NotificationsModule, PipelinesModule,
    RejectionsModule, RetentionModule,
};
use crate::retention::{Policy, Pruner, RetentionSettings, RetentionStatus};
use crate::source::Sources;

/// A configured service, ready to run on a listener the caller bound.
/// What a running service is configured with: the settings of its parts, which the command
/// line builds from flags.
pub mod settings {
    pub use crate::access::tokens::TokenFile;
    pub use crate::access::{Access, AccessSettings, AuthMode, AuthorizeAs};
    pub use crate::api::{CallerLimits, PageLimits, ServerSettings, capacity};
    pub use crate::history::{ArchiveSettings, ArchiveUrl};
    pub use crate::notify::{Allowed, NotifySettings};
    pub use crate::retention::{LeaseSettings, Mode as RetentionMode, Policy, RetentionSettings};
}

pub struct Service {
    pub sources: Sources,
    pub registry: Arc<SchemaRegistry>,
    pub staleness: Duration,
    pub page: PageLimits,
    pub server: ServerSettings,
    /// Who may read what.
    pub access: Access,
    pub limits: CallerLimits,
    /// Modules enabled when no BackendModule CRD says otherwise.
    pub modules: BTreeSet<crate::model::ModuleName>,
    /// Where `/metrics` is served, if anywhere: a port of its own, outside access control.
    pub metrics: Option<TcpListener>,
    /// The archive, if any: the `history` module writes it.
    pub archive: Option<ArchiveSettings>,
    /// A retention policy, checked at start, if any: the `retention` module applies it.
    pub retention: Option<(RetentionSettings, Policy)>,
    /// Notifications' settings, where `--notify-allow` is given (with an archive, in a cluster).
    pub notify: Option<crate::notify::NotifySettings>,
}

impl Service {
    /// The archive's status; with an archive of a cluster, it follows the namespaces' creation,
    /// so that a name given again is another namespace (see `history::incarnation`).
    fn archive_status(&self) -> Archive {
        let cluster = match &self.sources {
            Sources::Kube { client, watch, .. } if self.archive.is_some() => Some((client.clone(), watch.clone())),
            _ => None,
        };
        Archive::of_cluster(cluster)
    }

    /// Runs until `shutdown` completes: readiness turns false and long polls answer at once, the
    /// server drains in-flight requests for at most the grace period, and every module stops.
    pub async fn run(mut self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
        let archive = self.archive.is_some().then(|| self.archive_status());
        let notes = self.notify.as_ref().map(|_| Arc::new(Notes::default()));
        let index = match (&archive, &notes) {
            // Every clone of the index tells the archive (and the notifier): set before any is made.
            (Some(archive), Some(notes)) => {
                let both = Both(Arc::new(archive.journal().clone()), notes.clone());
                Index::new(self.staleness).with_subscriber(Arc::new(both))
            }
            (Some(archive), None) => Index::new(self.staleness).with_subscriber(Arc::new(archive.journal().clone())),
            (None, _) => Index::new(self.staleness),
        };
        let retention = (RetentionStatus::default(), RetentionMetrics::default());
        let retention_mode = self.retention.as_ref().map(|(settings, _)| settings.mode);
        let notifier = self.notifier(&index, archive.as_ref(), notes).await;
        let modules = self.modules(&index, archive.as_ref(), &retention, notifier.clone());
        let (switch, follower) = self.switch(&modules).await;
        let tokens = self.access.token_file().map(|file| tokio::spawn(file.clone().follow()));
        let health = Health::default();
        let state = AppState::new(api::Shared {
            index,
            health: health.clone(),
            page: self.page,
            modules: modules.clone(),
            switch,
            access: self.access.clone(),
            limits: self.limits.clone(),
            responses: api::Responses::new(RESPONSE_CACHE_BYTES),
            pages: api::Pages::default(),
            archive: archive.clone(),
            retention: retention_mode.map(|mode| api::retention::Retention { status: retention.0.clone(), mode }),
        });
        let http = HttpMetrics::default();
        let notifications = notifier.as_ref().map(|n| n.metrics.clone());
        let metrics = self.serve_metrics(&state, &http, (&retention.1, notifications), &health);
        let draining = async move {
            shutdown.await;
            health.begin_shutdown();
            tracing::info!("shutting down");
        };
        let routes = api::routes(state, self.server.dashboard);
        api::server::serve(listener, routes, self.server, http, draining).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        for task in [follower, tokens].into_iter().flatten() {
            task.abort();
            let _ = task.await;
        }
        modules.apply(&BTreeSet::new()).await;
    }

    /// The modules: executions, pipelines and rejections always; history and retention where
    /// they are configured.
    fn modules(
        &mut self,
        index: &Index,
        archive: Option<&Archive>,
        (status, metrics): &(RetentionStatus, RetentionMetrics),
        notifier: Option<Arc<Notifier>>,
    ) -> Arc<Modules> {
        let fingerprint = self.registry.fingerprint().to_owned();
        let warm = self.archive.clone().map(|settings| WarmSource::new(settings, fingerprint.clone()));
        let executions = ExecutionsModule::new(self.sources.clone(), index.clone(), self.registry.clone(), warm);
        let mut all: Vec<Arc<dyn Module>> = vec![
            Arc::new(executions),
            Arc::new(PipelinesModule::default()),
            Arc::new(RejectionsModule::default()),
            Arc::new(InsightsModule::default()),
        ];
        if let (Some(settings), Some(archive)) = (self.archive.clone(), archive) {
            all.push(Arc::new(HistoryModule::new(settings, index.clone(), archive.clone(), fingerprint)));
        }
        if let Some((settings, policy)) = self.retention.take() {
            let client = match &self.sources {
                Sources::Kube { client, .. } => Some(client.clone()),
                Sources::Dir(_) => None,
            };
            let (index, archive) = (index.clone(), archive.cloned());
            let (status, metrics) = (status.clone(), metrics.clone());
            let pruner = Pruner { settings, index, archive, client, status, metrics };
            all.push(Arc::new(RetentionModule::new(pruner, policy)));
        }
        if let (Some(notifier), Sources::Kube { client, watch, .. }) = (notifier, &self.sources) {
            all.push(Arc::new(NotificationsModule::new(notifier, client.clone(), watch.clone())));
        }
        Arc::new(Modules::new(all))
    }

    /// The notifier, where notifications are configured: its guard refuses the API server's
    /// and this pod's addresses unless named.
    async fn notifier(
        &self,
        index: &Index,
        archive: Option<&Archive>,
        notes: Option<Arc<Notes>>,
    ) -> Option<Arc<Notifier>> {
        let (settings, archive, notes) = (self.notify.clone()?, archive?.clone(), notes?);
        if !matches!(self.sources, Sources::Kube { .. }) {
            return None;
        }
        let own = crate::notify::destination::own_addresses().await;
        tracing::info!(allowed = settings.allowed.len(), refused = ?own, "notifications on");
        let guard = Guard { allowed: settings.allowed.clone(), own };
        Some(Arc::new(Notifier::new(settings, guard, archive, index.clone(), notes)))
    }

    /// What switches the modules: BackendModule objects followed in a cluster (the task doing
    /// it), the flags alone for a directory.
    async fn switch(&self, modules: &Arc<Modules>) -> (Arc<Switch>, Option<tokio::task::JoinHandle<()>>) {
        match &self.sources {
            Sources::Kube { client, watch, .. } => {
                let switch = Arc::new(Switch::new(SwitchState::Starting));
                let (flags, client, watch) = (self.modules.clone(), client.clone(), watch.clone());
                let follow = switch::follow(switch.clone(), modules.clone(), flags, client, watch);
                (switch, Some(tokio::spawn(follow.instrument(tracing::info_span!("modules")))))
            }
            Sources::Dir(_) => {
                modules.apply(&self.modules).await;
                (Arc::new(Switch::new(SwitchState::Flags)), None)
            }
        }
    }

    /// `/metrics` on its own port, where one is given: the server's task.
    fn serve_metrics(
        &mut self,
        state: &AppState,
        http: &HttpMetrics,
        (retention, notifications): (&RetentionMetrics, Option<NotificationMetrics>),
        health: &Health,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let listener = self.metrics.take()?;
        let (index, limits, modules) = (state.index.clone(), state.limits.clone(), state.modules.clone());
        let archive = state.archive.clone();
        let mut registry = api::scrape::registry(index, modules, limits, &state.access, http, archive);
        retention.register(&mut registry);
        if let Some(notifications) = notifications {
            notifications.register(&mut registry);
        }
        let settings = ServerSettings { cors_origins: Vec::new(), ..self.server.clone() };
        let routes = api::metrics_routes(Arc::new(registry), state.access.clone());
        Some(tokio::spawn(api::server::serve(listener, routes, settings, http.clone(), health.shutting_down())))
    }
}

/// Rebuilds the insights rollups of the archive at `url` from its stored documents (connecting
/// and migrating it first): the number of runs.
pub async fn rebuild_insights(url: &crate::history::ArchiveUrl) -> Result<u64, crate::history::ArchiveError> {
    crate::history::rebuild_rollups(url).await
}
