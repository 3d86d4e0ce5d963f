//! Execution endpoints: list (all namespaces or one, optionally as a long poll) and follow one
//! execution.

use std::time::Duration;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::params::{self, Params};
use super::{ApiError, AppState, caller, hidden, json_bytes, list_body, scope, with_state};
use crate::access::{Caller, Verb};
use crate::index::{Cursor, Filter as ExecutionFilter, Scope};
use crate::model::Phase;
use crate::modules::NotInstalled;
use crate::quote::quote;
use crate::selector::Selector;
use crate::validate::ObjectRef;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    list_all(state.clone()).or(list_namespaced(state.clone())).unify().or(get(state)).unify().boxed()
}

/// GET /api/v1/executions
fn list_all(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("executions")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(with_state(state))
        .and_then(|query: String, caller, state| list(state, caller, None, query))
        .boxed()
}

/// GET /api/v1/namespaces/{namespace}/executions
fn list_namespaced(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "executions")
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(with_state(state))
        .and_then(|ns: String, query: String, caller, state| list(state, caller, Some(ns), query))
        .boxed()
}

/// GET /api/v1/namespaces/{namespace}/executions/{name}
fn get(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("namespaces" / String / "executions" / String)
        .and(warp::get())
        .and(params::raw())
        .and(caller(state.clone()))
        .and(with_state(state))
        .and_then(|ns, name, query, _: Caller, state| get_one(ns, name, query, state))
        .boxed()
}

const FILTERS: [&str; 8] =
    ["pipeline", "phase", "environment", "labelSelector", "limit", "continue", "sinceRevision", "timeoutSeconds"];

/// Longest a long poll may wait.
const MAX_POLL: u64 = 300;

/// Lists executions. With `sinceRevision=N` it is a long poll: it answers once the index has
/// changed since revision N (at once if it already has, or if N is not a revision this process
/// issued), after `timeoutSeconds` (default 30), at once when shutdown begins (so the client
/// polls another replica) or when the caller's access changes, or with 503 as soon as the module
/// is disabled.
async fn list(
    state: AppState,
    caller: Caller,
    namespace: Option<String>,
    query: String,
) -> Result<Response, Rejection> {
    let namespaced = namespace.is_some();
    let mut allowed = FILTERS.to_vec();
    if !namespaced {
        allowed.push("namespace");
    }
    let params = Params::parse(&query, &allowed)?;
    let since = params.parsed("sinceRevision", "a revision from an earlier response", |s| s.parse::<u64>().ok())?;
    let verb = if since.is_some() { Verb::Watch } else { Verb::List };
    // A namespaced list's one namespace was checked by `caller()`.
    let readable = if namespaced { Scope::all() } else { scope(&state, &caller, verb).await? };
    let mut filter = ExecutionFilter {
        namespace: namespace.or_else(|| params.get("namespace").map(str::to_owned)),
        pipeline: params.get("pipeline").map(str::to_owned),
        phase: params.parsed(
            "phase",
            "one of Pending, Running, Succeeded, Failed, Cancelled, Unknown",
            Phase::parse,
        )?,
        environment: params.get("environment").map(str::to_owned),
        labels: label_selector(&params)?,
        scope: readable,
    };
    let limit = params.limit(state.page)?;
    let after =
        params.get("continue").map(|token| Cursor::decode(token, &filter)).transpose().map_err(ApiError::from)?;
    let timeout = params
        .parsed("timeoutSeconds", &format!("a whole number from 1 to {MAX_POLL}"), |s| {
            s.parse::<u64>().ok().filter(|t| (1..=MAX_POLL).contains(t))
        })?
        .unwrap_or(30);
    if let Some(since) = since {
        let mut revisions = state.index.subscribe();
        // Revisions start at the process's start time in milliseconds: one ahead of the current
        // revision was issued by another process (or replica), so the caller's view is unknown.
        let issued_here = since <= *revisions.borrow();
        let _held = state.limits.hold_long_poll(caller.subject.as_ref())?;
        let lost =
            access_lost(&state, &caller, namespaced.then_some(filter.namespace.as_deref()).flatten(), &filter.scope);
        let access_changed = tokio::select! {
            _ = revisions.wait_for(|r| *r > since), if issued_here => false,
            _ = tokio::time::sleep(Duration::from_secs(timeout)), if issued_here => false,
            _ = state.health.shutting_down(), if issued_here => false,
            _ = lost, if issued_here => true,
            _ = state.executions.disabled() => {
                return Err(ApiError::from(NotInstalled::module(crate::modules::EXECUTIONS)).into());
            }
            _ = std::future::ready(()), if !issued_here => false,
        };
        if access_changed {
            match &filter.namespace {
                Some(ns) if namespaced => return Err(hidden(&state, ns, "executions", None).into()),
                _ => filter.scope = scope(&state, &caller, verb).await?,
            }
        }
    }
    let page = state.index.list(&filter, after.as_ref(), limit);
    let next = page.next.as_ref().map(Cursor::encode);
    let freshness = state.index.completeness(filter.namespace.as_deref(), &filter.scope);
    Ok(list_body(&page.items, &[("continue", next.into()), ("revision", page.revision.into())], &freshness))
}

/// Completes once `caller` may no longer read what a long poll answers for (`namespace`, or the
/// namespaces of `scope`), or their access cannot be checked: grants are checked again each time
/// they expire. Never completes where nobody is asked (`--auth none`).
async fn access_lost(state: &AppState, caller: &Caller, namespace: Option<&str>, scope: &Scope) {
    let Some(every) = state.access.recheck_interval() else { return std::future::pending().await };
    loop {
        tokio::time::sleep(every).await;
        let unchanged = match namespace {
            Some(ns) => state.access.can_read(caller, ns, Verb::Watch).await.unwrap_or(false),
            None => super::scope(state, caller, Verb::Watch).await.is_ok_and(|now| now == *scope),
        };
        if !unchanged {
            return;
        }
    }
}

fn label_selector(params: &Params) -> Result<Option<Selector>, ApiError> {
    params
        .get("labelSelector")
        .map(|s| {
            s.parse::<Selector>().map_err(|e| {
                ApiError::bad_request(
                    "InvalidParameter",
                    format!("query parameter labelSelector={} is invalid: {}", quote(&e.input), e.reason),
                )
            })
        })
        .transpose()
}

async fn get_one(namespace: String, name: String, query: String, state: AppState) -> Result<Response, Rejection> {
    Params::parse(&query, &[])?;
    let id = ObjectRef { namespace, name };
    match state.index.get(&id) {
        Some(entry) => Ok(json_bytes(entry.detail.clone())),
        None if !state.index.has_synced(&id.namespace) => Err(ApiError::unavailable(
            "NotSynced",
            format!("namespace {} has not been listed yet; retry shortly", quote(&id.namespace)),
        )
        .into()),
        None => Err(hidden(&state, &id.namespace, "executions", Some(&id.name)).into()),
    }
}
