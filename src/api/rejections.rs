//! Rejection endpoints: how a pipeline writer finds out why an execution does not show.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::params::{self, Params};
use super::{AppState, list_body, with_state};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    list_all(state.clone()).or(list_namespaced(state)).unify().boxed()
}

/// GET /api/v1/rejections
fn list_all(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("rejections")
        .and(warp::get())
        .and(params::raw())
        .and(with_state(state))
        .and_then(|query: String, state: AppState| async move {
            let params = Params::parse(&query, &["namespace"])?;
            Ok::<_, Rejection>(list(&state, params.get("namespace")))
        })
        .boxed()
}

/// GET /api/v1/namespaces/{namespace}/rejections
fn list_namespaced(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "rejections")
        .and(warp::get())
        .and(params::raw())
        .and(with_state(state))
        .and_then(|ns: String, query: String, state: AppState| async move {
            Params::parse(&query, &[])?;
            Ok::<_, Rejection>(list(&state, Some(&ns)))
        })
        .boxed()
}

fn list(state: &AppState, namespace: Option<&str>) -> Response {
    let items: Vec<_> = state.index.rejections(namespace).iter().map(|r| r.body.clone()).collect();
    list_body(&items, &[], &state.index.completeness(namespace))
}
