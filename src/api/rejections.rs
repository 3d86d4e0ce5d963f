//! Rejection endpoints: how a pipeline writer finds out why an execution does not show.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::params::{self, Params};
use super::{AppState, caller, list_body, scope, with_state};
use crate::access::{Caller, Verb};
use crate::index::Scope;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    list_all(state.clone()).or(list_namespaced(state)).unify().boxed()
}

/// GET /api/v1/rejections
fn list_all(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("rejections")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(with_state(state))
        .and_then(|query: String, caller: Caller, state: AppState| async move {
            let params = Params::parse(&query, &["namespace"])?;
            let scope = scope(&state, &caller, Verb::List).await?;
            Ok::<_, Rejection>(list(&state, params.get("namespace"), &scope))
        })
        .boxed()
}

/// GET /api/v1/namespaces/{namespace}/rejections
fn list_namespaced(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "rejections")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(with_state(state))
        .and_then(|ns: String, query: String, _: Caller, state: AppState| async move {
            Params::parse(&query, &[])?;
            Ok::<_, Rejection>(list(&state, Some(&ns), &Scope::all()))
        })
        .boxed()
}

/// `scope` is every namespace for a namespaced list: `caller()` has checked that one.
fn list(state: &AppState, namespace: Option<&str>, scope: &Scope) -> Response {
    let items: Vec<_> = state.index.rejections(namespace, scope).iter().map(|r| r.body.clone()).collect();
    list_body(&items, &[], &state.index.completeness(namespace, scope))
}
