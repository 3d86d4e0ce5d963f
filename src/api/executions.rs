//! Execution endpoints: list (all namespaces or one, optionally as a long poll) and follow one
//! execution.

use warp::Rejection;
use warp::reply::Response;

use super::authz::{Target, authorize, not_there, readable};
use super::params::Params;
use super::poll::{self, HeldList, HeldOne};
use super::stream::{self, Ends, Followed};
use super::{ApiError, ApiRequest, AppState, ListBody};
use crate::access::Verb;
use crate::history::Unreadable;
use crate::index::{DetailUnavailable, ExecutionEntry};
use crate::model::ObjectRef;
use crate::model::Resource;
use crate::query::{self, Cursor, ExecutionFilter, Listing, Scope};
use crate::quote::quote;
use crate::wire::ErrorCode;
use crate::wire::Tag;
use bytes::Bytes;
use std::sync::Arc;

/// The parameters of a list besides its filter's.
const PAGING: [&str; 4] = ["limit", "continue", "timeoutSeconds", "watch"];

/// Lists executions; with `If-None-Match` and `timeoutSeconds`, a long poll (see `poll`); with
/// `Accept: text/event-stream` or `watch=true`, a stream of its changes (see `stream`).
pub(super) async fn list(namespace: Option<String>, request: ApiRequest) -> Result<Response, Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    let accepted: Vec<&str> = ExecutionFilter::PARAMETERS.into_iter().chain(PAGING).collect();
    let params = Params::parse_list(&query, namespace.is_some(), &accepted)?;
    let timeout = poll::timeout(&params)?;
    let streams = stream::wanted(&how, &params)?;
    let verb = if timeout.is_some() || streams { Verb::Watch } else { Verb::List };
    let readable =
        readable(&state, &caller, Resource::Executions, namespace.as_deref(), params.get("namespace"), verb).await?;
    // What the parameters ask for, checked only when a page is made: a list remembered at this
    // revision (see `pages`) is answered without parsing them again.
    let wanted = |scope: &Scope| -> Result<Wanted, ApiError> {
        let filter = ExecutionFilter::from_parameters(namespace.clone(), |name| params.raw(name), scope.clone())?;
        let limit = params.limit(state.page)?;
        let after = params.get("continue").map(|token| Cursor::decode(token, &filter)).transpose()?;
        Ok(Wanted { filter, after, limit })
    };
    if streams {
        let followed = Arc::new(wanted(&readable)?);
        let lost = stream::access_lost(&state, &caller, namespace.clone(), readable);
        let ends = Ends { resource: Resource::Executions, access_lost: lost };
        let filter = followed.filter.clone();
        let snapshot: stream::Snapshot = Box::new(move |state| {
            let (followed, state) = (followed.clone(), state.clone());
            Box::pin(async move { followed.page(&state).await })
        });
        let followed = Followed::Executions { filter, snapshot };
        return Ok(stream::start(&state, &caller, followed, ends, how.last_event_id)?);
    }
    let held = HeldList {
        resource: Resource::Executions,
        namespace: namespace.as_deref(),
        params: &params,
        scope: readable,
        as_of: 0,
    };
    let (state, wanted) = (&state, &wanted);
    poll::list(state, &caller, &how, timeout, held, move |scope| async move { Ok(wanted(&scope)?.page(state).await.0) })
        .await
}

/// A list's filter, where its page starts and its length.
struct Wanted {
    filter: ExecutionFilter,
    after: Option<Cursor>,
    limit: usize,
}

impl Wanted {
    /// The page, and the last change it reflects: live executions, and with the history module
    /// on, archived ones merged in (see `history::merge`). An archive that cannot be read is
    /// named in the page's freshness, and the page holds what is live.
    async fn page(&self, state: &AppState) -> (ListBody, u64) {
        let after = self.after.as_ref().map(Cursor::position);
        let (live, as_of) = state.index.listing(&self.filter, after.as_ref(), self.limit);
        let mut freshness = state.index.freshness(self.filter.namespace.as_deref(), &self.filter.scope);
        let mut archived = Listing::default();
        if let Some(archive) = state.history() {
            let unread;
            (archived, unread) = archive.list(&state.index, &self.filter, after.as_ref(), self.limit).await;
            if let Some(error) = unread {
                freshness.archive_unreadable(error.to_string());
            }
        }
        let (items, next) = query::merge(live, archived, self.limit);
        let next = next.map(|at| Cursor::at(at, &self.filter).encode());
        (ListBody::new(Resource::Executions, items, next, &freshness), as_of)
    }
}

/// GET /api/v1/namespaces/{namespace}/executions/{name}: one execution; with
/// `Accept: text/event-stream` or `watch=true`, a stream of its changes.
pub(super) async fn get_one(namespace: String, name: String, request: ApiRequest) -> Result<Response, Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    let params = Params::parse(&query, &["watch", "timeoutSeconds"])?;
    let timeout = poll::timeout(&params)?;
    let streams = stream::wanted(&how, &params)?;
    let verb = if timeout.is_some() || streams { Verb::Watch } else { Verb::Get };
    let target = Target { namespace: &namespace, resource: Resource::Executions, name: Some(&name), verb };
    authorize(&state, &caller, target).await?;
    let id = ObjectRef { namespace, name };
    if streams {
        // Whether it exists is answered as a plain GET would answer it: an archived one gets
        // its last state, and the stream ends.
        if archived(&state, &id).await?.is_none() {
            look_up(&state, &id)?;
        }
        let lost = stream::access_lost(&state, &caller, Some(id.namespace.clone()), Scope::all());
        let ends = Ends { resource: Resource::Executions, access_lost: lost };
        return Ok(stream::start(&state, &caller, Followed::Execution(id), ends, how.last_event_id)?);
    }
    if timeout.is_none()
        && let Some(archived) = archived(&state, &id).await?
    {
        return Ok(state.responses.reply(&how, Tag::of(&archived), archived, state.vary()));
    }
    let one = HeldOne { resource: Resource::Executions, namespace: &id.namespace, name: &id.name };
    poll::one(&state, &caller, &how, timeout, one, || look_up(&state, &id)).await
}

/// An execution's detail, which a warm start may not have read back from the archive yet.
impl poll::OneBody for Arc<ExecutionEntry> {
    fn tag(&self) -> Tag {
        self.detail.tag
    }

    async fn into_bytes(self) -> Result<Bytes, ApiError> {
        self.detail().await.map_err(|e| detail_unavailable(&self.id, &e))
    }
}

/// `503` for an execution whose detail could not be read from the archive: it exists, and a
/// retry finds it.
fn detail_unavailable(id: &ObjectRef, e: &DetailUnavailable) -> ApiError {
    let message = format!("execution {} is live, but {e}", quote(&id.name));
    ApiError::unavailable(ErrorCode::HistoryUnavailable, message)
}

/// An execution whose ConfigMap is gone, from the archive (where one is on): asked for only
/// when the index holds none, and an error when the archive cannot say.
async fn archived(state: &AppState, id: &ObjectRef) -> Result<Option<bytes::Bytes>, ApiError> {
    let Some(archive) = state.history() else {
        return Ok(None);
    };
    // Live, or its namespace not listed yet: answered as ever.
    match look_up(state, id) {
        Err(e) if e.code == ErrorCode::NotFound => {}
        _ => return Ok(None),
    }
    archive.deleted(&state.index, id).await.map_err(|e| {
        let message = format!("execution {} is not live, and {e}", quote(&id.name));
        match e {
            Unreadable::Busy => super::limits::too_many(&message, std::time::Duration::from_secs(1)),
            _ => ApiError::unavailable(ErrorCode::HistoryUnavailable, message),
        }
    })
}

/// One execution, `503 NotSynced` before its namespace was listed, or the identical 404.
fn look_up(state: &AppState, id: &ObjectRef) -> Result<Arc<ExecutionEntry>, ApiError> {
    match state.index.get(id) {
        Some(entry) => Ok(entry),
        None => Err(not_there(state, &id.namespace, Resource::Executions, &id.name)),
    }
}
