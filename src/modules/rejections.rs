//! The `rejections` module: why ConfigMaps are not served. Its data comes from the executions
//! module's watchers, so it depends on that module.

use futures::FutureExt;
use futures::future::BoxFuture;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::{EXECUTIONS, Lifecycle, Module, REJECTIONS};
use crate::api::{self, AppState};

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

    fn enable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.lifecycle.set(true);
        }
        .boxed()
    }

    fn disable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.lifecycle.set(false);
        }
        .boxed()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn routes(&self, state: AppState) -> BoxedFilter<(Response,)> {
        api::rejections::routes(state)
    }

    fn readiness(&self) -> (bool, Option<String>) {
        (true, None)
    }
}
