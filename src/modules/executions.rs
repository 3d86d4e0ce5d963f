//! The `executions` module: the sources that feed the index (one ingestion task per shard), and
//! the lifecycle the execution endpoints and their long polls follow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

use super::{Lifecycle, Module, ModuleName};
use crate::model::Resource;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::decode::SchemaRegistry;
use crate::history::{Filling, Warm, WarmSource};
use crate::index::{self, Index, Listed, Prepared};
use crate::model::ObjectRef;
use crate::selector::Selector;
use crate::source::cluster::{WatchSettings, watch_namespace};
use crate::source::dir::{ArchivedFiles, FileNotes, watch_dir};
use crate::source::namespaces::{self, Change};
use crate::source::{Namespaces, SourceEvent, Sources};
use crate::wire::ShardState;

pub struct ExecutionsModule {
    sources: Sources,
    index: Index,
    decoding: Decoding,
    tasks: Mutex<Option<JoinSet<()>>>,
    lifecycle: Lifecycle,
}

impl ExecutionsModule {
    /// With `warm`, each shard starts from the versions the archive holds.
    pub fn new(sources: Sources, index: Index, registry: Arc<SchemaRegistry>, warm: Option<WarmSource>) -> Self {
        let decoding = Decoding { registry, warm: warm.map(Arc::new) };
        ExecutionsModule { sources, index, decoding, tasks: Mutex::default(), lifecycle: Lifecycle::default() }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Option<JoinSet<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Module for ExecutionsModule {
    fn name(&self) -> ModuleName {
        ModuleName::Executions
    }

    fn resources(&self) -> &'static [Resource] {
        &[Resource::Executions]
    }

    fn enable(&self) -> BoxFuture<'_, ()> {
        async move {
            let mut tasks = self.tasks();
            if tasks.is_none() {
                *tasks = Some(spawn_sources(self.sources.clone(), &self.index, &self.decoding));
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

/// Starts one ingestion task per shard, or the task that follows selected namespaces.
fn spawn_sources(sources: Sources, index: &Index, decoding: &Decoding) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    match sources {
        Sources::Kube { client, namespaces: Namespaces::Listed(namespaces), watch } => {
            for ns in namespaces {
                watch_one(&mut tasks, &client, &ns, &watch, index, decoding);
            }
        }
        Sources::Kube { client, namespaces: Namespaces::Selected(selector), watch } => {
            let span = tracing::info_span!("namespaces", selector = %selector);
            let follow = follow_selected(client, selector, watch, index.clone(), decoding.clone());
            tasks.spawn(follow.instrument(span));
        }
        Sources::Dir(dir) => {
            let source = format!("dir:{}", dir.path.display());
            index.register(&source, None);
            let span = tracing::info_span!("dir", path = %dir.path.display());
            let events = move |warm: Arc<Warm>| {
                // A file whose every object the archive holds is not parsed again.
                watch_dir(dir, Some(warm as ArchivedFiles))
            };
            spawn_ingest(&mut tasks, index, decoding, (source, None), events, span);
        }
    }
    tasks
}

/// What a shard does with the archive beside its ingestion: fills `filling` with the versions
/// stored of `namespace` (and, for a directory's shard, what was kept of its files), reads the
/// details back once the shard is listed, and keeps what the directory's files are read as
/// (`noted`) for as long as the shard runs.
async fn from_archive(
    archive: Arc<WarmSource>,
    filling: Filling,
    index: Index,
    (shard, namespace): (String, Option<String>),
    noted: tokio::sync::mpsc::UnboundedReceiver<FileNotes>,
) {
    // A shard of every namespace is a directory's.
    let directory = namespace.is_none().then(|| shard.clone());
    let remember = async {
        if let Some(directory) = &directory {
            archive.remember_files(directory, noted).await;
        }
    };
    let load = async {
        // Dropped once the versions are in, filling what is still unfilled: nothing waits on it.
        let filling = filling;
        let kept = async {
            if let Some(directory) = &directory {
                filling.0.keep_files(archive.kept_files(directory).await);
            }
        };
        let (loaded, ()) = futures::join!(archive.load(namespace.as_deref()), kept);
        let restored = !loaded.is_empty();
        filling.0.fill(loaded);
        drop(filling);
        // The details left in the archive, read back once what was restored is served.
        if restored {
            index.listed(&shard).await;
            archive.read_details(&index, namespace.as_deref()).await;
        }
    };
    futures::join!(load, remember);
}

/// Watches one namespace as a shard of its own.
fn watch_one(
    tasks: &mut JoinSet<()>,
    client: &kube::Client,
    ns: &str,
    watch: &WatchSettings,
    index: &Index,
    decoding: &Decoding,
) -> AbortHandle {
    index.register(ns, Some(ns));
    let events = watch_namespace(client.clone(), ns, watch);
    // The list is sent once the archived versions are loaded, so each object it holds finds
    // its own.
    let events = |warm: Arc<Warm>| {
        futures::stream::once(async move {
            warm.ready().await;
            events
        })
        .flatten()
    };
    let span = tracing::info_span!("watch", namespace = %ns);
    spawn_ingest(tasks, index, decoding, (ns.to_owned(), Some(ns.to_owned())), events, span)
}

/// Starts and stops a watcher per namespace as namespaces matching `selector` come and go. The
/// namespace list is a shard of its own (of no namespace), so readiness waits for it; a namespace
/// dropped takes its executions with it. Aborting this task stops every watcher it started.
async fn follow_selected(
    client: kube::Client,
    selector: Selector,
    watch: WatchSettings,
    index: Index,
    decoding: Decoding,
) {
    let source = format!("namespaces:{selector}");
    index.register(&source, Some(""));
    let mut tasks = JoinSet::new();
    let mut watchers: HashMap<String, AbortHandle> = HashMap::new();
    let mut changes = std::pin::pin!(namespaces::follow(client.clone(), &selector, &watch));
    while let Some(change) = changes.next().await {
        match change {
            Change::Start(ns) => {
                tracing::info!(namespace = %ns, "namespace selected: watching it");
                let handle = watch_one(&mut tasks, &client, &ns, &watch, &index, &decoding);
                watchers.insert(ns, handle);
            }
            Change::Stop(ns) => {
                tracing::info!(namespace = %ns, "namespace no longer selected: dropping its executions");
                if let Some(handle) = watchers.remove(&ns) {
                    handle.abort();
                }
                index.unregister(&ns);
            }
            Change::Synced => index.reset::<Listed>(&source, Vec::new()),
            Change::Failed(error) => {
                tracing::warn!(%error, "cannot follow the selected namespaces; retrying");
                index.fail(&source, error.to_string(), error.answered());
            }
        }
        while tasks.try_join_next().is_some() {}
    }
}

/// How a shard's ConfigMaps are decoded: by the schemas, unless the archive kept the very
/// version (a warm start).
#[derive(Clone)]
pub struct Decoding {
    pub registry: Arc<SchemaRegistry>,
    pub warm: Option<Arc<WarmSource>>,
}

/// One task per shard, in its own span: `(source, namespace)` names the shard and the
/// namespace whose archived versions it may start from; `events` starts its source while those
/// load, and sends nothing before they are.
fn spawn_ingest<S>(
    tasks: &mut JoinSet<()>,
    index: &Index,
    decoding: &Decoding,
    (source, namespace): (String, Option<String>),
    events: impl FnOnce(Arc<Warm>) -> S + Send + 'static,
    span: tracing::Span,
) -> AbortHandle
where
    S: Stream<Item = SourceEvent> + Send + 'static,
{
    let (index, decoding) = (index.clone(), decoding.clone());
    let run = async move {
        let (notes, noted) = tokio::sync::mpsc::unbounded_channel();
        let warm = Arc::new(if decoding.warm.is_some() { Warm::pending(Some(notes)) } else { Warm::default() });
        let shard = (source.clone(), namespace);
        let archived = decoding
            .warm
            .clone()
            .map(|archive| from_archive(archive, Filling(warm.clone()), index.clone(), shard, noted));
        let events = events(warm.clone());
        let (registry, details) = (decoding.registry, decoding.warm);
        let decoder = move |cm: &ConfigMap| {
            let restored = warm.take(cm).zip(details.as_ref()).and_then(|(stored, details)| {
                let labels = cm.metadata.labels.clone().unwrap_or_default();
                let created = cm.metadata.creation_timestamp.as_ref().map(|t| t.0);
                stored.into_entry((ObjectRef::of(cm), labels, created), details)
            });
            match restored {
                Some(entry) => Prepared::Execution(entry),
                None => Prepared::from(registry.decode(cm)),
            }
        };
        let archived = async {
            if let Some(archived) = archived {
                archived.await
            }
        };
        futures::join!(archived, index::ingest(index, decoder, source, events));
    };
    tasks.spawn(run.instrument(span))
}
