//! Pipeline endpoints: pipelines resolved from their executions.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::params::{self, Params};
use super::{ApiError, AppState, caller, hidden, json_bytes, list_body, scope, with_state};
use crate::access::{Caller, Verb};
use crate::index::{PipelineCursor, Scope};
use crate::quote::quote;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    list_all(state.clone()).or(list_namespaced(state.clone())).unify().or(get(state)).unify().boxed()
}

/// GET /api/v1/pipelines
fn list_all(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("pipelines")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(with_state(state))
        .and_then(|query: String, caller: Caller, state: AppState| async move {
            let params = Params::parse(&query, &["namespace", "limit", "continue"])?;
            let scope = scope(&state, &caller, Verb::List).await?;
            Ok::<_, Rejection>(list(&state, &params, params.get("namespace"), &scope)?)
        })
        .boxed()
}

/// GET /api/v1/namespaces/{namespace}/pipelines
fn list_namespaced(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "pipelines")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(with_state(state))
        .and_then(|ns: String, query: String, _: Caller, state: AppState| async move {
            let params = Params::parse(&query, &["limit", "continue"])?;
            Ok::<_, Rejection>(list(&state, &params, Some(&ns), &Scope::all())?)
        })
        .boxed()
}

/// One page of pipelines, by namespace and name. `scope` is every namespace for a namespaced
/// list: `caller()` has checked that one.
fn list(state: &AppState, params: &Params, namespace: Option<&str>, scope: &Scope) -> Result<Response, ApiError> {
    let limit = params.limit(state.page)?;
    let after = params.get("continue").map(|token| PipelineCursor::decode(token, namespace)).transpose()?;
    let page = state.index.pipelines(namespace, scope, after.as_ref(), limit);
    let next = page.next.as_ref().map(PipelineCursor::encode);
    let extra = [("continue", next.into()), ("revision", page.revision.into())];
    Ok(list_body(&page.items, &extra, &state.index.completeness(namespace, scope)))
}

/// GET /api/v1/namespaces/{namespace}/pipelines/{name}
fn get(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "pipelines" / String)
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(with_state(state))
        .and_then(|ns: String, name: String, query: String, _: Caller, state: AppState| async move {
            Params::parse(&query, &[])?;
            match state.index.pipeline(&ns, &name) {
                Some(p) => Ok(json_bytes(p.body.clone())),
                None if !state.index.has_synced(&ns) => Err(Rejection::from(ApiError::unavailable(
                    "NotSynced",
                    format!("namespace {} has not been listed yet; retry shortly", quote(&ns)),
                ))),
                None => Err(hidden(&state, &ns, "pipelines", Some(&name)).into()),
            }
        })
        .boxed()
}
