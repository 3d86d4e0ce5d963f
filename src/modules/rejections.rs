//! The `rejections` module: why ConfigMaps are not served. Its data comes from the executions
//! module's watchers, so it depends on that module.

use super::{EXECUTIONS, Lifecycle, Module, REJECTIONS};

#[derive(Default)]
pub struct RejectionsModule {
    lifecycle: Lifecycle,
}

impl Module for RejectionsModule {
    fn name(&self) -> &'static str {
        REJECTIONS
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[EXECUTIONS]
    }

    fn resources(&self) -> &'static [&'static str] {
        &["rejections"]
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}
