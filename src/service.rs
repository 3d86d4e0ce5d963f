//! Wiring: the index, the modules and their switch, and the HTTP server; one shutdown signal
//! stops them all.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::Event;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::api::{self, AppState, PageLimits};
use crate::health::Health;
use crate::index::{self, Index};
use crate::modules::switch::{self, Switch, SwitchState};
use crate::modules::{ExecutionsModule, Module, Modules, PipelinesModule, RejectionsModule};
use crate::selector::Selector;
use crate::source::SourceError;
use crate::source::dir::watch_dir;
use crate::source::kube::{WatchSettings, watch_namespace};
use crate::validate::SchemaRegistry;

/// Where executions come from.
#[derive(Clone)]
pub enum Sources {
    /// One watcher per namespace; modules follow BackendModule objects.
    Kube { client: kube::Client, namespaces: Vec<String>, watch: WatchSettings },
    /// Manifests in a directory, polled for changes; modules come from `--modules`.
    Dir { path: PathBuf, selector: Selector, interval: Duration },
}

/// A configured service, ready to run on a listener the caller bound.
pub struct Service {
    pub sources: Sources,
    pub registry: Arc<SchemaRegistry>,
    pub staleness: Duration,
    pub page: PageLimits,
    /// Modules enabled when no BackendModule CRD says otherwise.
    pub modules: BTreeSet<String>,
}

impl Service {
    /// Runs until `shutdown` completes: readiness turns false, the server drains in-flight
    /// requests, and every module stops.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
        let index = Index::new(self.staleness);
        let modules = Arc::new(Modules::new(vec![
            Arc::new(ExecutionsModule::new(self.sources.clone(), index.clone(), self.registry.clone()))
                as Arc<dyn Module>,
            Arc::new(PipelinesModule::new(index.clone())),
            Arc::new(RejectionsModule::default()),
        ]));
        let (switch, follower) = match &self.sources {
            Sources::Kube { client, watch, .. } => {
                let switch = Arc::new(Switch::new(SwitchState::Starting));
                let follow = switch::follow(
                    switch.clone(),
                    modules.clone(),
                    self.modules.clone(),
                    client.clone(),
                    watch.backoff_max,
                );
                (switch, Some(tokio::spawn(follow.instrument(tracing::info_span!("modules")))))
            }
            Sources::Dir { .. } => {
                modules.apply(&self.modules).await;
                (Arc::new(Switch::new(SwitchState::Flags)), None)
            }
        };
        let watched = match &self.sources {
            Sources::Kube { namespaces, .. } => Some(Arc::new(namespaces.iter().cloned().collect())),
            Sources::Dir { .. } => None,
        };
        let health = Health::default();
        let state =
            AppState { index, health: health.clone(), page: self.page, modules: modules.clone(), switch, watched };
        let drained = async move {
            shutdown.await;
            health.begin_shutdown();
            tracing::info!("shutting down");
        };
        warp::serve(api::routes(state)).incoming(listener).graceful(drained).run().await;
        if let Some(follower) = follower {
            follower.abort();
            let _ = follower.await;
        }
        modules.apply(&BTreeSet::new()).await;
    }
}

/// Starts one ingestion task per shard.
pub(crate) fn spawn_sources(sources: Sources, index: &Index, registry: &Arc<SchemaRegistry>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    match sources {
        Sources::Kube { client, namespaces, watch } => {
            for ns in namespaces {
                index.register(&ns, Some(&ns));
                let events = watch_namespace(client.clone(), &ns, &watch);
                let span = tracing::info_span!("watch", namespace = %ns);
                spawn_ingest(&mut tasks, index, registry, ns, events, span);
            }
        }
        Sources::Dir { path, selector, interval } => {
            let source = format!("dir:{}", path.display());
            index.register(&source, None);
            let span = tracing::info_span!("dir", path = %path.display());
            let events = watch_dir(path, selector, interval);
            spawn_ingest(&mut tasks, index, registry, source, events, span);
        }
    }
    tasks
}

/// One task per shard, in its own span.
fn spawn_ingest<S>(
    tasks: &mut JoinSet<()>,
    index: &Index,
    registry: &Arc<SchemaRegistry>,
    source: String,
    events: S,
    span: tracing::Span,
) where
    S: Stream<Item = Result<Event<ConfigMap>, SourceError>> + Send + 'static,
{
    let registry = registry.clone();
    let decoder = move |cm: &_| registry.decode(cm);
    tasks.spawn(index::ingest(index.clone(), decoder, source, events).instrument(span));
}
