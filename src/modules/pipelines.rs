//! The `pipelines` module: pipelines resolved from executions. The index resolves them as their
//! executions change (only the pipelines a change touches), so the module only switches their
//! routes on and off.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{EXECUTIONS, Lifecycle, Module, PIPELINES};

#[derive(Default)]
pub struct PipelinesModule {
    lifecycle: Lifecycle,
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
        futures::future::ready(()).boxed()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}
