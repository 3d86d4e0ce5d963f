//! Pipeline endpoints: pipelines resolved from their executions.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::authz::{Target, authorize, caller, scope};
use super::conditional::{Negotiation, negotiation};
use super::executions::not_there;
use super::params::{self, Params};
use super::poll::{self, Held, One};
use super::stream::{self, Ends, Followed};
use super::{ApiError, AppState, ListBody, with_state};
use crate::access::{Caller, Verb};
use crate::index::{NameCursor, Scope};
use crate::modules::PIPELINES;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    list_all(state.clone()).or(list_namespaced(state.clone())).unify().or(get(state)).unify().boxed()
}

/// GET /api/v1/pipelines
fn list_all(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("pipelines")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(negotiation())
        .and(with_state(state))
        .and_then(|query: String, caller: Caller, how: Negotiation, state: AppState| async move {
            let params = Params::parse(&query, &["namespace", "limit", "continue", "timeoutSeconds", "watch"])?;
            let verb = verb(&how, &params)?;
            if let Some(namespace) = params.get("namespace") {
                authorize(&state, &caller, Target { namespace, resource: PIPELINES, name: None, verb }).await?;
            }
            let scope = scope(&state, &caller, verb).await?;
            let held = Held { resource: PIPELINES, namespace: None, params: &params, scope };
            list(&state, &caller, &how, &params, params.get("namespace"), held).await
        })
        .boxed()
}

/// GET /api/v1/namespaces/{namespace}/pipelines
fn list_namespaced(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "pipelines")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(negotiation())
        .and(with_state(state))
        .and_then(|ns: String, query: String, caller: Caller, how: Negotiation, state: AppState| async move {
            let params = Params::parse(&query, &["limit", "continue", "timeoutSeconds", "watch"])?;
            let verb = verb(&how, &params)?;
            authorize(&state, &caller, Target { namespace: &ns, resource: PIPELINES, name: None, verb }).await?;
            let held = Held { resource: PIPELINES, namespace: Some(&ns), params: &params, scope: Scope::all() };
            list(&state, &caller, &how, &params, Some(&ns), held).await
        })
        .boxed()
}

/// One page of pipelines, by namespace and name; a long poll with `timeoutSeconds`, a stream of
/// pipeline changes with `Accept: text/event-stream` or `watch=true`.
async fn list(
    state: &AppState,
    caller: &Caller,
    how: &Negotiation,
    params: &Params,
    namespace: Option<&str>,
    held: Held<'_>,
) -> Result<Response, Rejection> {
    let limit = params.limit(state.page)?;
    let timeout = poll::timeout(params)?;
    let after = params.get("continue").map(|token| NameCursor::decode(token, PIPELINES, namespace)).transpose();
    let after = after.map_err(ApiError::from)?;
    let owned = namespace.map(str::to_owned);
    let page = move |state: &AppState, scope: &Scope| {
        let page = state.index.pipelines(owned.as_deref(), scope, after.as_ref(), limit);
        let freshness = state.index.completeness(owned.as_deref(), scope);
        (ListBody::new(PIPELINES, page.items, page.next.as_ref().map(NameCursor::encode), &freshness), page.as_of)
    };
    if stream::wanted(how, params)? {
        let scope = held.scope.clone();
        let lost = stream::access_lost(state, caller, held.namespace.map(str::to_owned), scope.clone());
        let ends = Ends { resource: PIPELINES, access_lost: lost };
        let snapshot_scope = scope.clone();
        let snapshot = Box::new(move |state: &AppState| page(state, &snapshot_scope));
        let followed = Followed::Pipelines { namespace: namespace.map(str::to_owned), scope, snapshot };
        return Ok(stream::start(state, caller, followed, ends, how.last_event_id)?);
    }
    poll::list(state, caller, how, timeout, held, |scope| Ok(page(state, scope).0)).await
}

/// GET /api/v1/namespaces/{namespace}/pipelines/{name}
fn get(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "pipelines" / String)
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(negotiation())
        .and(with_state(state))
        .and_then(
            |ns: String, name: String, query: String, caller: Caller, how: Negotiation, state: AppState| async move {
                let params = Params::parse(&query, &["timeoutSeconds"])?;
                let timeout = poll::timeout(&params)?;
                let verb = if timeout.is_some() { Verb::Watch } else { Verb::Get };
                authorize(&state, &caller, Target { namespace: &ns, resource: PIPELINES, name: Some(&name), verb })
                    .await?;
                let one = One { resource: PIPELINES, namespace: &ns, name: &name };
                let look_up = || match state.index.pipeline(&ns, &name) {
                    Some(pipeline) => Ok(pipeline.body.clone()),
                    None => Err(not_there(&state, &ns, PIPELINES, &name)),
                };
                poll::one(&state, &caller, &how, timeout, one, look_up).await
            },
        )
        .boxed()
}

/// A long poll or a stream is a watch; anything else a list.
fn verb(how: &Negotiation, params: &Params) -> Result<Verb, ApiError> {
    let watches = poll::timeout(params)?.is_some() || stream::wanted(how, params)?;
    Ok(if watches { Verb::Watch } else { Verb::List })
}
