//! Rejection endpoints: how a pipeline writer finds out why an execution does not show. Paged
//! like every list, by namespace and name.

use warp::Rejection;
use warp::reply::Response;

use super::named::NamedList;
use super::params::Params;
use super::poll::{self, HeldList};
use super::{ApiRequest, ListBody};
use crate::access::Verb;
use crate::model::Resource;
use crate::query::NameCursor;

/// GET /api/v1/rejections and /api/v1/namespaces/{namespace}/rejections: a page of rejections, by namespace and name; a long poll with `timeoutSeconds` (a watch;
/// anything else is a list).
pub(super) async fn list(namespaced: Option<String>, request: ApiRequest) -> Result<Response, Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    let params = Params::parse_list(&query, namespaced.is_some(), &["limit", "continue", "timeoutSeconds"])?;
    let timeout = poll::timeout(&params)?;
    let verb = if timeout.is_some() { Verb::Watch } else { Verb::List };
    let NamedList { scope, namespace, limit, after } =
        NamedList::read(&state, &caller, Resource::Rejections, namespaced.as_deref(), &params, verb).await?;
    let held =
        HeldList { resource: Resource::Rejections, namespace: namespaced.as_deref(), params: &params, scope, as_of: 0 };
    poll::list(&state, &caller, &how, timeout, held, |scope| {
        let page = state.index.rejections(namespace, &scope, after.as_ref(), limit);
        let freshness = state.index.freshness(namespace, &scope);
        std::future::ready(Ok(ListBody::new(
            Resource::Rejections,
            page.items,
            page.next.as_ref().map(NameCursor::encode),
            &freshness,
        )))
    })
    .await
}
