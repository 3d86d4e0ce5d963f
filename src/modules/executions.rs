//! The `executions` module: the sources that feed the index (one ingestion task per shard), and
//! the lifecycle the execution endpoints and their long polls follow.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{EXECUTIONS, Lifecycle, Module};
use crate::index::{self, Index, ShardState};
use crate::source::dir::watch_dir;
use crate::source::kube::watch_namespace;
use crate::source::{SourceEvent, Sources};
use crate::validate::SchemaRegistry;

pub struct ExecutionsModule {
    sources: Sources,
    index: Index,
    registry: Arc<SchemaRegistry>,
    tasks: Mutex<Option<JoinSet<()>>>,
    lifecycle: Lifecycle,
}

impl ExecutionsModule {
    pub fn new(sources: Sources, index: Index, registry: Arc<SchemaRegistry>) -> Self {
        ExecutionsModule { sources, index, registry, tasks: Mutex::default(), lifecycle: Lifecycle::default() }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Option<JoinSet<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Module for ExecutionsModule {
    fn name(&self) -> &'static str {
        EXECUTIONS
    }

    fn resources(&self) -> &'static [&'static str] {
        &["executions"]
    }

    fn enable(&self) -> BoxFuture<'_, ()> {
        async move {
            let mut tasks = self.tasks();
            if tasks.is_none() {
                *tasks = Some(spawn_sources(self.sources.clone(), &self.index, &self.registry));
            }
            self.lifecycle.set(true);
        }
        .boxed()
    }

    fn disable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.lifecycle.set(false);
            let tasks = self.tasks().take();
            if let Some(mut tasks) = tasks {
                // Wait until every watcher has stopped, so none writes after the index is freed.
                tasks.shutdown().await;
            }
            self.index.clear();
        }
        .boxed()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn readiness(&self) -> (bool, Option<String>) {
        let shards = self.index.shards();
        let error = shards
            .iter()
            .filter(|s| s.state == ShardState::Failing)
            .map(|s| format!("{}: {}", s.source, s.last_error.as_deref().unwrap_or("failing")))
            .collect::<Vec<_>>();
        (self.index.settled(), (!error.is_empty()).then(|| error.join("; ")))
    }
}

/// Starts one ingestion task per shard.
fn spawn_sources(sources: Sources, index: &Index, registry: &Arc<SchemaRegistry>) -> JoinSet<()> {
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
        Sources::Dir(dir) => {
            let source = format!("dir:{}", dir.path.display());
            index.register(&source, None);
            let span = tracing::info_span!("dir", path = %dir.path.display());
            spawn_ingest(&mut tasks, index, registry, source, watch_dir(dir), span);
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
    S: Stream<Item = SourceEvent> + Send + 'static,
{
    let registry = registry.clone();
    let decoder = move |cm: &_| registry.decode(cm);
    tasks.spawn(index::ingest(index.clone(), decoder, source, events).instrument(span));
}
