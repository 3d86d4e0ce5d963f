//! Rejection endpoints: how a pipeline writer finds out why an execution does not show. Paged
//! like every list, by namespace and name.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::authz::{Target, authorize, caller, scope};
use super::conditional::{Negotiation, negotiation};
use super::params::{self, Params};
use super::poll::{self, Held};
use super::{ApiError, AppState, ListBody, with_state};
use crate::access::{Caller, Verb};
use crate::index::{NameCursor, Scope};
use crate::modules::REJECTIONS;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    list_all(state.clone()).or(list_namespaced(state)).unify().boxed()
}

/// GET /api/v1/rejections
fn list_all(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("rejections")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(negotiation())
        .and(with_state(state))
        .and_then(|query: String, caller: Caller, how: Negotiation, state: AppState| async move {
            let params = Params::parse(&query, &["namespace", "limit", "continue", "timeoutSeconds"])?;
            let verb = verb(&params)?;
            if let Some(namespace) = params.get("namespace") {
                authorize(&state, &caller, Target { namespace, resource: REJECTIONS, name: None, verb }).await?;
            }
            let scope = scope(&state, &caller, verb).await?;
            let held = Held { resource: REJECTIONS, namespace: None, params: &params, scope };
            list(&state, &caller, &how, &params, params.get("namespace"), held).await
        })
        .boxed()
}

/// GET /api/v1/namespaces/{namespace}/rejections
fn list_namespaced(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "rejections")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(negotiation())
        .and(with_state(state))
        .and_then(|ns: String, query: String, caller: Caller, how: Negotiation, state: AppState| async move {
            let params = Params::parse(&query, &["limit", "continue", "timeoutSeconds"])?;
            let verb = verb(&params)?;
            authorize(&state, &caller, Target { namespace: &ns, resource: REJECTIONS, name: None, verb }).await?;
            let held = Held { resource: REJECTIONS, namespace: Some(&ns), params: &params, scope: Scope::all() };
            list(&state, &caller, &how, &params, Some(&ns), held).await
        })
        .boxed()
}

/// A long poll is a watch; anything else a list.
fn verb(params: &Params) -> Result<Verb, ApiError> {
    Ok(if poll::timeout(params)?.is_some() { Verb::Watch } else { Verb::List })
}

async fn list(
    state: &AppState,
    caller: &Caller,
    how: &Negotiation,
    params: &Params,
    namespace: Option<&str>,
    held: Held<'_>,
) -> Result<Response, Rejection> {
    let limit = params.limit(state.page)?;
    let after = params.get("continue").map(|token| NameCursor::decode(token, REJECTIONS, namespace)).transpose();
    let after = after.map_err(ApiError::from)?;
    poll::list(state, caller, how, poll::timeout(params)?, held, |scope| {
        let page = state.index.rejections(namespace, scope, after.as_ref(), limit);
        let freshness = state.index.completeness(namespace, scope);
        Ok(ListBody::new(REJECTIONS, page.items, page.next.as_ref().map(NameCursor::encode), &freshness))
    })
    .await
}
