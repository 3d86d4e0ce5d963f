//! Who sees what. Every `/api` route takes its caller from `admit()` (authenticated, within
//! their rate, past the module gate), then asks `authorize()` for the one namespace it names,
//! with the verb it serves: decided by the handler from the route that matched and the one
//! negotiation it uses, never guessed from the raw request. Anything a caller may not see is the
//! same 404 as a missing object.

use super::{ApiError, AppState};
use crate::access::{Caller, Verb};
use crate::model::Resource;
use crate::model::names::is_dns_label;
use crate::query::Scope;
use crate::quote::quote;

/// Authenticates the caller (401, or 503 when that cannot be checked), keeps them to their rate,
/// and only then answers for the module gate of `resource`: module state is not for anonymous
/// callers.
pub(super) async fn admit(
    state: &AppState,
    resource: Option<Resource>,
    authorization: Option<&str>,
) -> Result<Caller, ApiError> {
    let caller = state.access.authenticate(authorization).await?;
    state.limits.admit(caller.subject.as_ref())?;
    if let Some(refused) = resource.and_then(|r| state.modules.unavailable(r)) {
        return Err(refused.into());
    }
    Ok(caller)
}

/// What a request reads in one namespace: `verb` on `resource` (one object when `name` is given).
pub(super) struct Target<'a> {
    pub namespace: &'a str,
    pub resource: Resource,
    pub name: Option<&'a str>,
    pub verb: Verb,
}

/// Whether `caller` may read `target`: a namespace they may `verb` that this service watches.
/// Anything else is the 404 of a missing object; the review is made whether or not the
/// namespace is watched, so nothing tells the two apart.
pub(super) async fn authorize(state: &AppState, caller: &Caller, target: Target<'_>) -> Result<(), ApiError> {
    let readable = state.access.can_read(caller, target.namespace, target.verb).await?;
    if readable && state.index.watches(target.namespace) {
        Ok(())
    } else {
        Err(hidden(state, target.namespace, target.resource, target.name))
    }
}

/// The namespaces a list of `resource` answers for: the one it names, in its path
/// (`namespaced`) or as its `namespace` filter (`filtered`), authorised for `verb`; within it, a
/// namespaced list reads every namespace (it is confined to its own), and a cluster-wide one the
/// caller's scope.
pub(super) async fn readable(
    state: &AppState,
    caller: &Caller,
    resource: Resource,
    namespaced: Option<&str>,
    filtered: Option<&str>,
    verb: Verb,
) -> Result<Scope, ApiError> {
    if let Some(namespace) = namespaced.or(filtered) {
        authorize(state, caller, Target { namespace, resource, name: None, verb }).await?;
    }
    match namespaced {
        Some(_) => Ok(Scope::all()),
        None => scope(state, caller, verb).await,
    }
}

/// The one 404 for what a caller may not see: a namespace not watched, not readable, or an
/// object that does not exist. Built from the request alone, so all three are byte-identical.
pub(super) fn hidden(state: &AppState, namespace: &str, resource: Resource, name: Option<&str>) -> ApiError {
    let unreadable = if state.access.required() { ", or not readable with these credentials" } else { "" };
    // Named in a path only where it is a namespace name (a DNS label), so nothing is echoed raw.
    let rejections = if is_dns_label(namespace) { namespace } else { "{namespace}" };
    let namespace = quote(namespace);
    ApiError::not_found(match (resource, name) {
        (Resource::Executions, Some(name)) => format!(
            "execution {} not found in namespace {namespace}{unreadable}; if it was rejected, see /api/v1/namespaces/{rejections}/rejections",
            quote(name)
        ),
        (Resource::Pipelines, Some(name)) => {
            format!("pipeline {} has no executions in namespace {namespace}{unreadable}", quote(name))
        }
        _ => format!("namespace {namespace} is not watched by this service{unreadable}"),
    })
}

/// Why one object is not answered: its namespace has not been listed yet, or it is not there.
pub(super) fn not_there(state: &AppState, namespace: &str, resource: Resource, name: &str) -> ApiError {
    if state.index.has_synced(namespace) {
        hidden(state, namespace, resource, Some(name))
    } else {
        ApiError::unavailable(
            crate::wire::ErrorCode::NotSynced,
            format!("namespace {} has not been listed yet; retry shortly", quote(namespace)),
        )
    }
}

/// Completes once `caller` may no longer read what a long poll or stream answers for
/// (`namespace`, or the namespaces of `scope`), their credentials no longer stand (a token
/// expired or revoked), or their access cannot be checked: both are checked again each time a
/// grant expires. Never completes where nobody is asked (`--auth none`).
pub(super) async fn access_lost(state: AppState, caller: Caller, namespace: Option<String>, scope: Scope) {
    let Some(every) = state.access.recheck_interval() else { return std::future::pending().await };
    loop {
        tokio::time::sleep(every).await;
        let still = state.access.still_valid(&caller).await.unwrap_or(false)
            && match &namespace {
                Some(ns) => state.access.can_read(&caller, ns, Verb::Watch).await.unwrap_or(false),
                None => self::scope(&state, &caller, Verb::Watch).await.is_ok_and(|now| now == scope),
            };
        if !still {
            return;
        }
    }
}

/// Whether `scope` holds every namespace the service holds, and there is at least one: only
/// then may a caller see errors and settings that name namespaces or files.
pub(super) fn covers_everything(state: &AppState, scope: &Scope) -> bool {
    let namespaces = state.index.namespaces();
    scope.is_all() || (!namespaces.is_empty() && namespaces.iter().all(|ns| scope.allows(ns)))
}

/// The namespaces `caller` may `verb` now, for a cluster-wide list: only those this service
/// watches (a namespace it does not watch answers 404 on its own path, so it shows nothing, its
/// archive neither, in a cluster-wide list; a tokens file may list it all the same).
pub(super) async fn scope(state: &AppState, caller: &Caller, verb: Verb) -> Result<Scope, ApiError> {
    let scope = state.access.scope(caller, || state.index.namespaces(), verb).await?;
    Ok(match scope.namespaces() {
        Some(listed) if listed.iter().any(|ns| !state.index.watches(ns)) => {
            Scope::only(listed.iter().filter(|ns| state.index.watches(ns)).cloned().collect())
        }
        _ => scope,
    })
}
