//! The HTTP JSON API. Routes are composed in one `routes()` function from one group per domain;
//! every `/api` request passes the module gate and one access check before any handler runs.

mod conditional;
mod error;
pub(crate) mod executions;
pub mod health;
mod limits;
mod modules;
pub mod openapi;
mod pages;
mod params;
pub(crate) mod pipelines;
mod poll;
pub(crate) mod rejections;
pub mod server;
mod stream;
pub mod ui;

use std::convert::Infallible;
use std::sync::Arc;

use std::hash::Hasher;

use bytes::{BufMut, Bytes, BytesMut};
use warp::filters::BoxedFilter;
use warp::http::header::{CONTENT_TYPE, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

pub use conditional::Responses;
pub use error::{ApiError, recover};
pub use health::Health;
pub use limits::CallerLimits;
pub use pages::Pages;
pub use server::ServerSettings;

use crate::access::{Access, Caller, Verb};
use crate::index::{Completeness, Index, Json, Scope};
use crate::modules::Modules;
use crate::modules::switch::Switch;
use crate::quote::quote;

/// What every handler can reach: one allocation, so that the filters that hand it on clone a
/// pointer, not a struct of handles.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of `AppState`.
pub struct Shared {
    pub index: Index,
    pub health: Health,
    pub page: PageLimits,
    pub modules: Arc<Modules>,
    pub switch: Arc<Switch>,
    /// Who may read what.
    pub access: Access,
    pub limits: CallerLimits,
    /// Pages and compressed bodies, by ETag.
    pub responses: Responses,
    /// The ETag each list request got at the current index revision.
    pub pages: Pages,
}

impl AppState {
    /// What a response depends on besides its URL.
    fn vary(&self) -> &'static str {
        if self.access.required() { "Accept-Encoding, Authorization" } else { "Accept-Encoding" }
    }
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
/// module gate; every `/api` route takes its caller from the one access check, `caller()`.
pub fn routes(state: AppState, dashboard: bool) -> BoxedFilter<(Response,)> {
    let domains = modules::routes(state.clone())
        .or(executions::routes(state.clone()))
        .unify()
        .or(pipelines::routes(state.clone()))
        .unify()
        .or(rejections::routes(state.clone()))
        .unify();
    let api = warp::path!("api" / "v1" / ..).and(gate(state.clone())).and(domains).map(Reply::into_response);
    let description = warp::path!("openapi.json").and(warp::get()).map(|| json_bytes(openapi::DOCUMENT.clone()));
    let dashboard = ui::routes(dashboard, state.responses.clone());
    health::routes(state).or(description).unify().or(api).unify().or(dashboard).unify().recover(recover).unify().boxed()
}

/// `GET /metrics` alone, for the metrics port.
pub fn metrics_routes(registry: Arc<prometheus_client::registry::Registry>) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .map(move || {
            let mut response = Response::new(crate::metrics::encode(&registry).into());
            let kind = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
            response.headers_mut().insert(CONTENT_TYPE, kind);
            response
        })
        .recover(recover)
        .unify()
        .boxed()
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

/// The one place every API request is authorised; every `/api` route takes its caller from
/// here. The caller must authenticate (401 otherwise, or 503 when that cannot be checked), keep
/// to their rate, and may name only a namespace they may read that this service watches, in the
/// path or in a list's `namespace` filter. Anything else is the same 404 as a missing object, so
/// no caller learns whether a namespace they may not read exists: the review is made whether or
/// not the namespace is watched.
fn caller(state: AppState) -> impl Filter<Extract = (Caller,), Error = warp::Rejection> + Clone {
    let headers = warp::header::optional::<String>("authorization").and(warp::header::optional::<String>("accept"));
    warp::path::full().and(params::raw()).and(headers).and_then(
        move |path: warp::path::FullPath, query: String, authorization: Option<String>, accept: Option<String>| {
            let state = state.clone();
            async move {
                let caller = state.access.authenticate(authorization.as_deref()).await.map_err(ApiError::from)?;
                state.limits.admit(caller.subject.as_ref())?;
                let target = Target::of(path.as_str(), &query, accept.as_deref());
                if let Some(namespace) = &target.namespace {
                    let readable =
                        state.access.can_read(&caller, namespace, target.verb).await.map_err(ApiError::from)?;
                    if !readable || !state.index.watches(namespace) {
                        return Err(warp::Rejection::from(hidden(&state, namespace, target.resource, target.name)));
                    }
                }
                Ok(caller)
            }
        },
    )
}

/// What an `/api` request names: a namespace (in the path, or a list's `namespace` filter), the
/// resource, one object's name, and what a SubjectAccessReview would call the reading.
struct Target<'a> {
    namespace: Option<String>,
    resource: &'a str,
    name: Option<&'a str>,
    verb: Verb,
}

impl<'a> Target<'a> {
    /// A long poll (`timeoutSeconds`) and a stream (`watch`, or `Accept: text/event-stream`)
    /// are watches; reading one object is a get.
    fn of(path: &'a str, query: &str, accept: Option<&str>) -> Self {
        let mut parts = path.strip_prefix("/api/v1/").unwrap_or_default().split('/');
        let (namespace, resource, name) = match parts.next() {
            Some("namespaces") => {
                let namespace = parts.next().filter(|ns| !ns.is_empty()).map(str::to_owned);
                (namespace, parts.next().unwrap_or_default(), parts.next())
            }
            resource => (params::first(query, "namespace"), resource.unwrap_or_default(), None),
        };
        let watches = params::first(query, "timeoutSeconds").is_some()
            || params::first(query, "watch").is_some_and(|w| w == "true")
            || stream::accepts_events(accept.into_iter());
        let verb = match (name, watches) {
            (_, true) => Verb::Watch,
            (Some(_), false) => Verb::Get,
            (None, false) => Verb::List,
        };
        Target { namespace, resource, name, verb }
    }
}

/// The one 404 for what a caller may not see: a namespace not watched, not readable, or an
/// object that does not exist. Built from the request alone, so all three are byte-identical.
fn hidden(state: &AppState, namespace: &str, resource: &str, name: Option<&str>) -> ApiError {
    let unreadable = if state.access.required() { ", or not readable with these credentials" } else { "" };
    let namespace = quote(namespace);
    ApiError::not_found(match (resource, name) {
        ("executions", Some(name)) => format!(
            "execution {} not found in namespace {namespace}{unreadable}; if it was rejected, see /api/v1/namespaces/{{namespace}}/rejections",
            quote(name)
        ),
        ("pipelines", Some(name)) => {
            format!("pipeline {} has no executions in namespace {namespace}{unreadable}", quote(name))
        }
        _ => format!("namespace {namespace} is not watched by this service{unreadable}"),
    })
}

/// Completes once `caller` may no longer read what a long poll or stream answers for
/// (`namespace`, or the namespaces of `scope`), or their access cannot be checked: grants are
/// checked again each time they expire. Never completes where nobody is asked (`--auth none`).
async fn access_lost(state: &AppState, caller: &Caller, namespace: Option<&str>, scope: &Scope) {
    let Some(every) = state.access.recheck_interval() else { return std::future::pending().await };
    loop {
        tokio::time::sleep(every).await;
        let unchanged = match namespace {
            Some(ns) => state.access.can_read(caller, ns, Verb::Watch).await.unwrap_or(false),
            None => self::scope(state, caller, Verb::Watch).await.is_ok_and(|now| now == *scope),
        };
        if !unchanged {
            return;
        }
    }
}

/// Whether `scope` holds every namespace the service holds: only then may a caller see errors
/// that name namespaces.
fn covers_everything(state: &AppState, scope: &Scope) -> bool {
    scope.is_all() || state.index.namespaces().iter().all(|ns| scope.allows(ns))
}

/// The namespaces `caller` may read now, for a cluster-wide list.
async fn scope(state: &AppState, caller: &Caller, verb: Verb) -> Result<Scope, ApiError> {
    Ok(state.access.scope(caller, || state.index.namespaces(), verb).await?)
}

/// `value` as 16 lowercase hex digits, written without a formatter: ETags and request ids are
/// on every answer.
fn hex(value: u64) -> [u8; 16] {
    std::array::from_fn(|i| b"0123456789abcdef"[(value >> ((15 - i) * 4)) as usize & 0xf])
}

/// A JSON response from bytes serialised earlier.
fn json_bytes(body: Bytes) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A list response, `{"items":[...],"continue":...,"freshness":{...}}`, from items serialised
/// on write. Its tag is computed from theirs, so a page the client holds costs no copying.
struct ListBody {
    kind: &'static str,
    items: Vec<Json>,
    next: Option<String>,
    freshness: Bytes,
    /// Every source it draws on is synced.
    complete: bool,
}

impl ListBody {
    fn new(kind: &'static str, items: Vec<Json>, next: Option<String>, freshness: &Completeness) -> Self {
        let complete = freshness.complete;
        ListBody { kind, items, next, freshness: crate::index::to_bytes(freshness), complete }
    }

    fn tag(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(self.kind, &self.next, &self.freshness[..], self.items.len()), &mut h);
        for item in &self.items {
            h.write_u64(item.tag);
        }
        h.finish()
    }

    fn render(&self) -> Bytes {
        let items: usize = self.items.iter().map(|i| i.bytes.len() + 1).sum();
        let mut body = BytesMut::with_capacity(64 + items + self.freshness.len());
        body.put_slice(b"{\"items\":[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                body.put_u8(b',');
            }
            body.put_slice(&item.bytes);
        }
        body.put_slice(b"],\"continue\":");
        body.put_slice(&serde_json::to_vec(&self.next).unwrap_or_default());
        body.put_slice(b",\"freshness\":");
        body.put_slice(&self.freshness);
        body.put_u8(b'}');
        body.freeze()
    }

    /// The response: `304` when the client holds this page already.
    fn reply(self, state: &AppState, how: &conditional::Negotiation) -> Response {
        state.responses.reply_with(how, self.tag(), state.vary(), || self.render())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The state of a service over `index`, every module and caller allowed.
    pub fn state(index: Index) -> AppState {
        AppState::new(Shared {
            index,
            health: Health::default(),
            page: PageLimits::default(),
            modules: Arc::new(Modules::new(Vec::new())),
            switch: Arc::new(Switch::new(crate::modules::switch::SwitchState::Flags)),
            access: Access::open(),
            limits: CallerLimits::new(8, 10_000, None),
            responses: Responses::new(1 << 20),
            pages: Pages::default(),
        })
    }
}
