//! Wiring: starts one ingestion task per shard and the HTTP server, and stops them on one
//! shutdown signal.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::api::{self, AppState, PageLimits};
use crate::health::Health;
use crate::index::{self, Index};
use crate::selector::Selector;
use crate::source::dir::watch_dir;
use crate::source::kube::{WatchSettings, watch_namespace};
use crate::validate::SchemaRegistry;

/// Where executions come from.
pub enum Sources {
    /// One watcher per namespace.
    Kube {
        client: kube::Client,
        namespaces: Vec<String>,
        watch: WatchSettings,
    },
    /// Manifests in a directory, polled for changes.
    Dir {
        path: PathBuf,
        selector: Selector,
        interval: Duration,
    },
}

/// A configured service, ready to run on a listener the caller bound.
pub struct Service {
    pub sources: Sources,
    pub registry: Arc<SchemaRegistry>,
    pub staleness: Duration,
    pub page: PageLimits,
}

impl Service {
    /// Runs until `shutdown` completes: readiness turns false, the server drains in-flight
    /// requests, and every source task stops.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let index = Index::new(self.staleness);
        let health = Health::default();
        let mut tasks = spawn_sources(self.sources, &index, &self.registry);
        let state = AppState {
            index,
            health: health.clone(),
            page: self.page,
        };
        let drained = async move {
            shutdown.await;
            health.begin_shutdown();
            tracing::info!("shutting down");
        };
        warp::serve(api::routes(state))
            .incoming(listener)
            .graceful(drained)
            .run()
            .await;
        tasks.shutdown().await;
    }
}

fn spawn_sources(sources: Sources, index: &Index, registry: &Arc<SchemaRegistry>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    match sources {
        Sources::Kube {
            client,
            namespaces,
            watch,
        } => {
            for ns in namespaces {
                index.register(&ns, Some(&ns));
                let events = watch_namespace(client.clone(), &ns, &watch);
                let span = tracing::info_span!("watch", namespace = %ns);
                spawn_ingest(&mut tasks, index, registry, ns, events, span);
            }
        }
        Sources::Dir {
            path,
            selector,
            interval,
        } => {
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
    S: futures::Stream<
            Item = Result<
                kube::runtime::watcher::Event<k8s_openapi::api::core::v1::ConfigMap>,
                crate::source::SourceError,
            >,
        > + Send
        + 'static,
{
    let registry = registry.clone();
    let decoder = move |cm: &_| registry.decode(cm);
    tasks.spawn(index::ingest(index.clone(), decoder, source, events).instrument(span));
}
