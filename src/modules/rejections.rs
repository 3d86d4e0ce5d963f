//! The `rejections` module: why ConfigMaps are not served. Its data comes from the executions
//! module's watchers, so it depends on that module.

use super::{Lifecycle, Module, ModuleName};
use crate::model::Resource;

#[derive(Default)]
pub struct RejectionsModule {
    lifecycle: Lifecycle,
}

impl Module for RejectionsModule {
    fn name(&self) -> ModuleName {
        ModuleName::Rejections
    }

    fn depends_on(&self) -> &'static [ModuleName] {
        &[ModuleName::Executions]
    }

    fn resources(&self) -> &'static [Resource] {
        &[Resource::Rejections]
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}
