//! The `pipelines` module: pipelines resolved from executions. Its state is a cache of the
//! resolved pipelines, serialised once per index revision and freed when the module is disabled.

use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{EXECUTIONS, Lifecycle, Module, PIPELINES};
use crate::index::{Index, ResolvedPipeline};

/// Resolved pipelines of one index revision.
pub struct PipelineCache {
    index: Index,
    cached: Mutex<Option<(u64, Arc<Vec<ResolvedPipeline>>)>>,
}

impl PipelineCache {
    /// Every pipeline, resolved at most once per index revision.
    pub fn get(&self) -> Arc<Vec<ResolvedPipeline>> {
        let revision = self.index.revision();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some((at, pipelines)) if *at == revision => pipelines.clone(),
            _ => {
                let pipelines = Arc::new(self.index.pipelines());
                *cached = Some((revision, pipelines.clone()));
                pipelines
            }
        }
    }

    fn clear(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether anything is cached (for tests of what disabling frees).
    pub fn is_empty(&self) -> bool {
        self.cached.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }
}

pub struct PipelinesModule {
    cache: Arc<PipelineCache>,
    lifecycle: Lifecycle,
}

impl PipelinesModule {
    pub fn new(index: Index) -> Self {
        let cache = PipelineCache { index, cached: Mutex::default() };
        PipelinesModule { cache: Arc::new(cache), lifecycle: Lifecycle::default() }
    }

    /// The resolved pipelines the module's routes serve.
    pub fn cache(&self) -> Arc<PipelineCache> {
        self.cache.clone()
    }
}

impl Module for PipelinesModule {
    fn name(&self) -> &'static str {
        PIPELINES
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[EXECUTIONS]
    }

    fn resources(&self) -> &'static [&'static str] {
        &["pipelines"]
    }

    fn disable(&self) -> BoxFuture<'_, ()> {
        self.lifecycle.set(false);
        self.cache.clear();
        futures::future::ready(()).boxed()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}
