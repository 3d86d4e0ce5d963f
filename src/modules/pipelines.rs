//! The `pipelines` module: pipelines resolved from executions. The index resolves them as their
//! executions change (only the pipelines a change touches), so the module only switches their
//! routes on and off.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Lifecycle, Module, ModuleName};
use crate::model::Resource;

#[derive(Default)]
pub struct PipelinesModule {
    lifecycle: Lifecycle,
}

impl Module for PipelinesModule {
    fn name(&self) -> ModuleName {
        ModuleName::Pipelines
    }

    fn depends_on(&self) -> &'static [ModuleName] {
        &[ModuleName::Executions]
    }

    fn resources(&self) -> &'static [Resource] {
        &[Resource::Pipelines]
    }

    fn disable(&self) -> BoxFuture<'_, ()> {
        self.lifecycle.set(false);
        futures::future::ready(()).boxed()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}
