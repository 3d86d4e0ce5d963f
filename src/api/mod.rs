//! The HTTP JSON API. Routes are composed in one `routes()` function from one group per domain;
//! every `/api` request passes the module gate and one access check before any handler runs.

mod error;
pub(crate) mod executions;
pub mod health;
mod modules;
mod params;
pub(crate) mod pipelines;
pub(crate) mod rejections;
pub mod server;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use warp::filters::BoxedFilter;
use warp::http::header::{CONTENT_TYPE, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

pub use error::{ApiError, recover};
pub use health::Health;
pub use server::ServerSettings;

use crate::quote::quote;

use crate::index::{Completeness, Index};
use crate::modules::switch::Switch;
use crate::modules::{Lifecycle, Modules, PipelineCache};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub index: Index,
    pub health: Health,
    pub page: PageLimits,
    pub modules: Arc<Modules>,
    pub switch: Arc<Switch>,
    /// The namespaces served; `None` when any may be (a directory source).
    pub watched: Option<Arc<BTreeSet<String>>>,
    /// The executions module's lifecycle: its long polls end when it is switched off.
    pub executions: Lifecycle,
    /// The pipelines module's resolved pipelines.
    pub pipelines: Arc<PipelineCache>,
}

/// Pagination bounds of list endpoints.
#[derive(Clone, Copy, Debug)]
pub struct PageLimits {
    pub default: usize,
    pub max: usize,
}

impl Default for PageLimits {
    fn default() -> Self {
        PageLimits { default: 50, max: 500 }
    }
}

/// Every route of the service: health, the module list, and each module's routes behind the
/// access check and the module gate.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let domains = modules::routes(state.clone())
        .or(executions::routes(state.clone()))
        .unify()
        .or(pipelines::routes(state.clone()))
        .unify()
        .or(rejections::routes(state.clone()))
        .unify();
    let api = warp::path!("api" / "v1" / ..)
        .and(gate(state.clone()))
        .and(access(state.clone()))
        .and(domains)
        .map(Reply::into_response);
    health::routes(state).or(api).unify().recover(recover).unify().boxed()
}

/// Answers `503 ModuleNotInstalled` for a resource whose module, or a module it depends on, is
/// disabled, before any route of it runs.
fn gate(state: AppState) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and_then(move |path: warp::path::FullPath| {
            let refused = resource_in(path.as_str()).and_then(|r| state.modules.unavailable(r));
            async move { refused.map_or(Ok(()), |e| Err(warp::Rejection::from(ApiError::from(e)))) }
        })
        .untuple_one()
}

/// The resource of `/api/v1/{resource}/...` or `/api/v1/namespaces/{namespace}/{resource}/...`.
fn resource_in(path: &str) -> Option<&str> {
    let mut parts = path.strip_prefix("/api/v1/")?.split('/');
    match parts.next()? {
        "namespaces" => parts.nth(1),
        resource => Some(resource),
    }
}

/// Injects the shared state into a handler.
fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The one place every API request is authorised. Today: a namespace in the path, or in the
/// `namespace` filter of a cluster-wide list, must be one the service serves; both forms answer
/// the same 404. Per-user checks (TokenReview, SubjectAccessReview) belong here too.
fn access(state: AppState) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and(params::raw())
        .and_then(move |path: warp::path::FullPath, query: String| {
            let namespace = match namespace_in(path.as_str()) {
                Some(ns) => Some(ns.to_owned()),
                None => params::first(&query, "namespace"),
            };
            let refused = namespace
                .filter(|ns| state.watched.as_ref().is_some_and(|w| !w.contains(ns)))
                .map(|ns| ApiError::not_found(format!("namespace {} is not watched by this service", quote(&ns))));
            async move { refused.map_or(Ok(()), |e| Err(warp::Rejection::from(e))) }
        })
        .untuple_one()
}

/// The namespace of a `/api/v1/namespaces/{namespace}/...` path.
fn namespace_in(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/namespaces/")?.split('/').next().filter(|ns| !ns.is_empty())
}

/// A JSON response from bytes serialised earlier.
fn json_bytes(body: Bytes) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"items":[...],<extra>,"freshness":{...}}` assembled from pre-serialised items.
fn list_body(items: &[Bytes], extra: &[(&str, serde_json::Value)], freshness: &Completeness) -> Response {
    let mut body = BytesMut::with_capacity(64 + items.iter().map(Bytes::len).sum::<usize>() + items.len());
    body.put_slice(b"{\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(item);
    }
    body.put_u8(b']');
    for (key, value) in extra {
        body.put_slice(format!(",\"{key}\":").as_bytes());
        body.put_slice(&serde_json::to_vec(value).unwrap_or_default());
    }
    body.put_slice(b",\"freshness\":");
    body.put_slice(&crate::index::to_bytes(freshness));
    body.put_u8(b'}');
    json_bytes(body.freeze())
}
