//! Pipeline endpoints: pipelines resolved from their executions.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::conditional::{Negotiation, negotiation};
use super::params::{self, Params};
use super::poll::{self, Held};
use super::stream::{self, Ends, Followed};
use super::{ApiError, AppState, ListBody, caller, hidden, scope, with_state};
use crate::access::{Caller, Verb};
use crate::index::{NameCursor, Scope};
use crate::modules::PIPELINES;
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
        .and(negotiation())
        .and(with_state(state))
        .and_then(|query: String, caller: Caller, how: Negotiation, state: AppState| async move {
            let params = Params::parse(&query, &["namespace", "limit", "continue", "timeoutSeconds", "watch"])?;
            let streams = poll::timeout(&params)?.is_some() || stream::wanted(&how, &params)?;
            let verb = if streams { Verb::Watch } else { Verb::List };
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
            // `caller()` has checked this one namespace.
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
        .and_then(|ns: String, name: String, query: String, _: Caller, how: Negotiation, state: AppState| async move {
            Params::parse(&query, &[])?;
            match state.index.pipeline(&ns, &name) {
                Some(p) => Ok(state.responses.reply(&how, p.body.tag, p.body.bytes.clone(), state.vary())),
                None if !state.index.has_synced(&ns) => Err(Rejection::from(ApiError::unavailable(
                    "NotSynced",
                    format!("namespace {} has not been listed yet; retry shortly", quote(&ns)),
                ))),
                None => Err(hidden(&state, &ns, PIPELINES, Some(&name)).into()),
            }
        })
        .boxed()
}
