//! Pipeline endpoints: pipelines resolved from their executions.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use std::sync::Arc;

use super::params::{self, Params};
use super::{ApiError, AppState, json_bytes, list_body};
use crate::modules::PipelineCache;

/// Handlers see the state and the module's cache of resolved pipelines.
type Ctx = (AppState, Arc<PipelineCache>);

fn with_ctx(state: AppState, cache: Arc<PipelineCache>) -> BoxedFilter<(Ctx,)> {
    warp::any().map(move || (state.clone(), cache.clone())).boxed()
}

pub fn routes(state: AppState, cache: Arc<PipelineCache>) -> BoxedFilter<(Response,)> {
    list_all(with_ctx(state.clone(), cache.clone()))
        .or(list_namespaced(with_ctx(state.clone(), cache.clone())))
        .unify()
        .or(get(with_ctx(state, cache)))
        .unify()
        .boxed()
}

/// GET /api/v1/pipelines
fn list_all(ctx: BoxedFilter<(Ctx,)>) -> BoxedFilter<(Response,)> {
    warp::path!("pipelines")
        .and(warp::get())
        .and(params::raw())
        .and(ctx)
        .and_then(|query: String, ctx: Ctx| async move {
            let params = Params::parse(&query, &["namespace"])?;
            Ok::<_, Rejection>(list(&ctx, params.get("namespace")))
        })
        .boxed()
}

/// GET /api/v1/namespaces/{namespace}/pipelines
fn list_namespaced(ctx: BoxedFilter<(Ctx,)>) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "pipelines")
        .and(warp::get())
        .and(params::raw())
        .and(ctx)
        .and_then(|ns: String, query: String, ctx: Ctx| async move {
            Params::parse(&query, &[])?;
            Ok::<_, Rejection>(list(&ctx, Some(&ns)))
        })
        .boxed()
}

fn list((state, cache): &Ctx, namespace: Option<&str>) -> Response {
    let pipelines = cache.get();
    let items: Vec<_> =
        pipelines.iter().filter(|p| namespace.is_none_or(|ns| p.namespace == ns)).map(|p| p.body.clone()).collect();
    list_body(&items, &[], &state.index.completeness(namespace))
}

/// GET /api/v1/namespaces/{namespace}/pipelines/{name}
fn get(ctx: BoxedFilter<(Ctx,)>) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "pipelines" / String)
        .and(warp::get())
        .and(params::raw())
        .and(ctx)
        .and_then(|ns: String, name: String, query: String, (state, cache): Ctx| async move {
            Params::parse(&query, &[])?;
            let pipelines = cache.get();
            match pipelines.iter().find(|p| p.namespace == ns && p.name == name) {
                Some(p) => Ok(json_bytes(p.body.clone())),
                None if !state.index.has_synced(&ns) => Err(Rejection::from(ApiError::unavailable(
                    "NotSynced",
                    format!("namespace {ns} has not been listed yet; retry shortly"),
                ))),
                None => Err(ApiError::not_found(format!("pipeline {ns}/{name} has no executions")).into()),
            }
        })
        .boxed()
}
