//! The `insights` module: delivery metrics over the executions' runs (live, and archived where
//! the history module is on). It computes on request from what the index and the archive hold,
//! so it has nothing to start: it switches its routes on and off.

use super::{Lifecycle, Module, ModuleName};
use crate::model::Resource;

#[derive(Default)]
pub struct InsightsModule {
    lifecycle: Lifecycle,
}

impl Module for InsightsModule {
    fn name(&self) -> ModuleName {
        ModuleName::Insights
    }

    fn depends_on(&self) -> &'static [ModuleName] {
        &[ModuleName::Executions]
    }

    fn resources(&self) -> &'static [Resource] {
        &[Resource::Insights]
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}
