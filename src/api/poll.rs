//! Long polls. A list request that names the page the client holds (`If-None-Match`) and a
//! `timeoutSeconds` is held until that page would differ (`200` with the new page) or the wait
//! ends (`304`). It ends early, with the page as it is, on shutdown (so the client polls another
//! replica), with `503` when the list's module is switched off, and when the caller's access
//! changes. Waits are capped, jittered so that clients do not come back in step, and counted
//! against the caller's and the service's limits.

use std::time::Duration;

use warp::Rejection;
use warp::reply::Response;

use super::conditional::Negotiation;
use super::pages::PageRequest;
use super::{ApiError, AppState, ListBody, hidden, params::Params};
use crate::access::{Caller, Verb};
use crate::index::Scope;

/// Longest a long poll may wait, in seconds.
pub const MAX_WAIT: u64 = 300;

/// How often a held page is checked again without a change to the index: a failing source's
/// data turns stale with time alone.
const RECHECK: Duration = Duration::from_secs(10);

/// `timeoutSeconds`, if given: how long a conditional list may be held.
pub fn timeout(params: &Params) -> Result<Option<u64>, ApiError> {
    params.parsed("timeoutSeconds", &format!("a whole number from 1 to {MAX_WAIT}"), |s| {
        s.parse::<u64>().ok().filter(|t| (1..=MAX_WAIT).contains(t))
    })
}

/// What a list answers for.
pub struct Held<'a> {
    pub resource: &'static str,
    /// The namespace of a namespaced list (checked once by `caller()`), or `None` for a list
    /// over the caller's scope.
    pub namespace: Option<&'a str>,
    pub params: &'a Params,
    pub scope: Scope,
}

/// Answers a list: at once, unless the client holds the current page and asked to wait.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    how: &Negotiation,
    timeout: Option<u64>,
    held: Held<'_>,
    page: impl Fn(&Scope) -> Result<ListBody, ApiError>,
) -> Result<Response, Rejection> {
    let Some(timeout) = timeout else {
        let request = PageRequest {
            resource: held.resource,
            namespace: held.namespace.map(str::to_owned),
            params: held.params.clone(),
            scope: held.scope.clone(),
        };
        return Ok(state.pages.reply(state, how, request, || page(&held.scope))?);
    };
    let mut body = page(&held.scope)?;
    if !how.holds(body.tag()) {
        return Ok(body.reply(state, how));
    }
    let _held = state.limits.hold(caller.subject.as_ref())?;
    let mut changes = state.index.subscribe();
    // Up to a tenth less than asked, so that polls started together come back spread out.
    let wait = Duration::from_secs(timeout).mul_f64(1.0 - fastrand::f64() * 0.1);
    let deadline = tokio::time::Instant::now() + wait;
    let mut withdrawn = std::pin::pin!(state.modules.withdrawn(held.resource));
    let mut lost = std::pin::pin!(super::access_lost(state, caller, held.namespace, &held.scope));
    let mut rescoped = None;
    loop {
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = tokio::time::sleep_until(deadline) => break,
            _ = state.health.shutting_down() => break,
            why = &mut withdrawn => return Err(ApiError::from(why).into()),
            _ = &mut lost => match held.namespace {
                Some(ns) => return Err(hidden(state, ns, held.resource, None).into()),
                None => {
                    rescoped = Some(super::scope(state, caller, Verb::Watch).await?);
                    break;
                }
            },
        }
        body = page(&held.scope)?;
        if !how.holds(body.tag()) {
            break;
        }
    }
    if let Some(scope) = rescoped {
        body = page(&scope)?;
    }
    Ok(body.reply(state, how))
}
