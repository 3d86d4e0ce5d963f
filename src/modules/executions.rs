//! The `executions` module: the watchers that feed the index, and the execution endpoints.

use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::task::JoinSet;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::{EXECUTIONS, Lifecycle, Module};
use crate::api::{self, AppState};
use crate::index::{Index, ShardState};
use crate::service::{Sources, spawn_sources};
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

    fn routes(&self, state: AppState) -> BoxedFilter<(Response,)> {
        api::executions::routes(state, self.lifecycle.clone())
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
