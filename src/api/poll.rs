//! Long polls. A list or one-object request that names what the client holds (`If-None-Match`)
//! and a `timeoutSeconds` is held until that would differ (`200` with the new page or object; a
//! `404` when the object goes) or the wait ends (`304`): every endpoint that answers `304` waits. It ends early, with the page as it is, on shutdown (so the client polls another
//! replica), with `503` when the list's module is switched off, and when the caller's access
//! changes. Waits are capped, jittered so that clients do not come back in step, and counted
//! against the caller's and the service's limits.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use tokio::sync::watch;
use tokio::time::Instant;
use warp::Rejection;
use warp::reply::Response;

use super::authz::{access_lost, hidden, scope};
use super::conditional::Negotiation;
use super::limits;
use super::pages::PageRequest;
use super::{Answer, ApiError, AppState, params::Params};
use crate::access::{Caller, Verb};
use crate::model::Resource;
use crate::modules::NotInstalled;
use crate::query::Scope;
use crate::wire::{Json, Tag};

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
pub struct HeldList<'a> {
    pub resource: Resource,
    /// The namespace of a namespaced list (authorised by its handler), or `None` for a list
    /// over the caller's scope.
    pub namespace: Option<&'a str>,
    pub params: &'a Params,
    pub scope: Scope,
    /// What the body depends on besides these and the data: see `PageRequest::as_of`.
    pub as_of: i64,
}

/// What a GET of one object answers for.
pub struct HeldOne<'a> {
    pub resource: Resource,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Answers a list: at once, unless the client holds the current page and asked to wait.
pub async fn list<F, B>(
    state: &AppState,
    caller: &Caller,
    how: &Negotiation,
    timeout: Option<u64>,
    held: HeldList<'_>,
    page: impl Fn(Scope) -> F,
) -> Result<Response, Rejection>
where
    F: Future<Output = Result<B, ApiError>>,
    B: Answer,
{
    // Boxed: a page's future is kilobytes (it may read the archive), and a held list's future
    // is kept for minutes, thousands at once.
    let page = |scope| Box::pin(page(scope));
    let Some(timeout) = timeout else {
        let request = PageRequest {
            resource: held.resource,
            namespace: held.namespace.map(str::to_owned),
            params: held.params.clone(),
            scope: held.scope.clone(),
            as_of: held.as_of,
        };
        return Ok(state.pages.reply(state, how, request, page(held.scope.clone())).await?);
    };
    let mut body = page(held.scope.clone()).await?;
    if !how.holds(body.tag()) {
        return Ok(body.reply(state, how));
    }
    let namespace = held.namespace.map(str::to_owned);
    let mut wait = Wait::start(state, caller, timeout, held.resource, namespace, held.scope.clone())?;
    loop {
        match wait.next().await {
            Woke::Changed => {}
            Woke::Ended => break,
            Woke::Withdrawn(why) => return Err(ApiError::from(why).into()),
            Woke::Lost => match held.namespace {
                Some(ns) => return Err(hidden(state, ns, held.resource, None).into()),
                None => {
                    // Answered with what the caller may read now.
                    let now = scope(state, caller, Verb::Watch).await?;
                    return Ok(page(now).await?.reply(state, how));
                }
            },
        }
        body = page(held.scope.clone()).await?;
        if !how.holds(body.tag()) {
            break;
        }
    }
    Ok(body.reply(state, how))
}

/// Answers one object: at once, unless the client holds its current version (`If-None-Match`)
/// and asked to wait; then held until it changes (`200`), goes (`404`), or the wait ends (`304`).
pub async fn one<B: OneBody>(
    state: &AppState,
    caller: &Caller,
    how: &Negotiation,
    timeout: Option<u64>,
    one: HeldOne<'_>,
    look_up: impl Fn() -> Result<B, ApiError>,
) -> Result<Response, Rejection> {
    let mut body = look_up()?;
    if let Some(timeout) = timeout.filter(|_| how.holds(body.tag())) {
        let namespace = Some(one.namespace.to_owned());
        let mut wait = Wait::start(state, caller, timeout, one.resource, namespace, Scope::all())?;
        loop {
            match wait.next().await {
                Woke::Changed => {}
                Woke::Ended => break,
                Woke::Withdrawn(why) => return Err(ApiError::from(why).into()),
                Woke::Lost => return Err(hidden(state, one.namespace, one.resource, Some(one.name)).into()),
            }
            body = look_up()?;
            if !how.holds(body.tag()) {
                break;
            }
        }
    }
    let tag = body.tag();
    // A `304` needs no body, nor a detail read from the archive.
    let bytes = if how.holds(tag) { Bytes::new() } else { body.into_bytes().await? };
    Ok(state.responses.reply(how, tag, bytes, state.vary()))
}

/// What a one-object request answers with: its ETag at once, its bytes only for a `200` (an
/// execution's detail may still be in the archive after a warm start).
pub trait OneBody {
    fn tag(&self) -> Tag;
    fn into_bytes(self) -> impl Future<Output = Result<Bytes, ApiError>> + Send;
}

impl OneBody for Json {
    fn tag(&self) -> Tag {
        self.tag
    }

    fn into_bytes(self) -> impl Future<Output = Result<Bytes, ApiError>> + Send {
        std::future::ready(Ok(self.bytes))
    }
}

/// A held request's wait, counted against the caller's and the service's limits while it lasts.
struct Wait {
    changes: watch::Receiver<u64>,
    deadline: Instant,
    withdrawn: Pin<Box<dyn Future<Output = NotInstalled> + Send>>,
    lost: Pin<Box<dyn Future<Output = ()> + Send>>,
    shutting_down: Pin<Box<dyn Future<Output = ()> + Send>>,
    _slot: limits::WaitSlot,
}

/// Why a wait woke.
enum Woke {
    /// The index changed, or it is time to look again: look again.
    Changed,
    /// The wait is over (its time, or shutdown): answer with what is there.
    Ended,
    Withdrawn(NotInstalled),
    /// The caller's access changed.
    Lost,
}

impl Wait {
    fn start(
        state: &AppState,
        caller: &Caller,
        timeout: u64,
        resource: Resource,
        namespace: Option<String>,
        scope: Scope,
    ) -> Result<Wait, ApiError> {
        let held = state.limits.hold(caller.subject.as_ref())?;
        // Up to a tenth less than asked, so that polls started together come back spread out.
        let wait = Duration::from_secs(timeout).mul_f64(1.0 - fastrand::f64() * 0.1);
        Ok(Wait {
            changes: state.index.subscribe(),
            deadline: Instant::now() + wait,
            withdrawn: Box::pin(state.modules.withdrawn(resource)),
            lost: Box::pin(access_lost(state.clone(), caller.clone(), namespace, scope)),
            shutting_down: Box::pin(state.health.shutting_down()),
            _slot: held,
        })
    }

    async fn next(&mut self) -> Woke {
        tokio::select! {
            _ = self.changes.changed() => Woke::Changed,
            _ = tokio::time::sleep(RECHECK) => Woke::Changed,
            _ = tokio::time::sleep_until(self.deadline) => Woke::Ended,
            _ = &mut self.shutting_down => Woke::Ended,
            why = &mut self.withdrawn => Woke::Withdrawn(why),
            _ = &mut self.lost => Woke::Lost,
        }
    }
}
