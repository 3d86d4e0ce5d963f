//! Pipeline endpoints: pipelines resolved from their executions.

use warp::Rejection;
use warp::reply::Response;

use super::authz::{Target, authorize, not_there};
use super::named::NamedList;
use super::params::Params;
use super::poll::{self, HeldList, HeldOne};
use super::stream::{self, Ends, Followed};
use super::{ApiRequest, AppState, ListBody};
use crate::access::Verb;
use crate::model::Resource;
use crate::query::{NameCursor, Scope};

/// GET /api/v1/pipelines and /api/v1/namespaces/{namespace}/pipelines: one page of pipelines, by namespace and name; a long poll with `timeoutSeconds`, a stream of
/// pipeline changes with `Accept: text/event-stream` or `watch=true` (both watches; anything else
/// is a list).
pub(super) async fn list(namespaced: Option<String>, request: ApiRequest) -> Result<Response, Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    let accepted = ["limit", "continue", "timeoutSeconds", "watch"];
    let params = Params::parse_list(&query, namespaced.is_some(), &accepted)?;
    let (timeout, streams) = (poll::timeout(&params)?, stream::wanted(&how, &params)?);
    let verb = if timeout.is_some() || streams { Verb::Watch } else { Verb::List };
    let NamedList { scope, namespace, limit, after } =
        NamedList::read(&state, &caller, Resource::Pipelines, namespaced.as_deref(), &params, verb).await?;
    let owned = namespace.map(str::to_owned);
    let page = move |state: &AppState, scope: &Scope| {
        let history = state.history();
        let page = state.index.pipelines(owned.as_deref(), scope, after.as_ref(), limit, history.is_some());
        let mut freshness = state.index.freshness(owned.as_deref(), scope);
        if let Some(Err(unread)) = history.map(|archive| archive.runs_loaded()) {
            freshness.archive_unreadable(unread.to_owned());
        }
        (
            ListBody::new(Resource::Pipelines, page.items, page.next.as_ref().map(NameCursor::encode), &freshness),
            page.as_of,
        )
    };
    if streams {
        let lost = stream::access_lost(&state, &caller, namespaced.clone(), scope.clone());
        let ends = Ends { resource: Resource::Pipelines, access_lost: lost };
        let snapshot_scope = scope.clone();
        let snapshot: stream::Snapshot =
            Box::new(move |state: &AppState| Box::pin(std::future::ready(page(state, &snapshot_scope))));
        let followed = Followed::Pipelines { namespace: namespace.map(str::to_owned), scope, snapshot };
        return Ok(stream::start(&state, &caller, followed, ends, how.last_event_id)?);
    }
    let held =
        HeldList { resource: Resource::Pipelines, namespace: namespaced.as_deref(), params: &params, scope, as_of: 0 };
    poll::list(&state, &caller, &how, timeout, held, |scope| std::future::ready(Ok(page(&state, &scope).0))).await
}

/// GET /api/v1/namespaces/{namespace}/pipelines/{name}; a long poll with `timeoutSeconds`.
pub(super) async fn get_one(ns: String, name: String, request: ApiRequest) -> Result<Response, Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    let params = Params::parse(&query, &["timeoutSeconds"])?;
    let timeout = poll::timeout(&params)?;
    let verb = if timeout.is_some() { Verb::Watch } else { Verb::Get };
    authorize(&state, &caller, Target { namespace: &ns, resource: Resource::Pipelines, name: Some(&name), verb })
        .await?;
    let one = HeldOne { resource: Resource::Pipelines, namespace: &ns, name: &name };
    let look_up = || {
        let pipeline = state.index.pipeline(&ns, &name);
        match pipeline.as_ref().and_then(|p| p.body(state.history().is_some())) {
            Some(body) => Ok(body.clone()),
            None => Err(not_there(&state, &ns, Resource::Pipelines, &name)),
        }
    };
    poll::one(&state, &caller, &how, timeout, one, look_up).await
}
