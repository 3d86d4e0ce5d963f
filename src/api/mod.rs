//! The HTTP JSON API. Routes are matched as a tree in `router`; every `/api` request is
//! authenticated and passes the module gate before any handler runs,
//! and each handler authorises the namespace it reads with the verb it serves (see `authz`).

mod authz;
mod conditional;
mod deliveries;
mod error;
pub(crate) mod executions;
pub mod health;
mod insights;
mod limits;
mod modules;
mod named;
pub mod openapi;
mod pages;
mod params;
pub(crate) mod pipelines;
mod poll;
pub(crate) mod rejections;
pub mod retention;
mod router;
pub mod scrape;
pub mod server;
mod stream;
pub mod ui;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::header::{CONTENT_TYPE, HeaderValue};
use warp::reply::Response;

pub use conditional::Responses;
pub use error::{ApiError, recover};
pub use health::Health;
pub use limits::{CallerLimits, capacity};
pub use pages::Pages;
pub use server::ServerSettings;

use crate::access::Access;
use crate::history::Archive;
use crate::index::Index;
use crate::model::Resource;
use crate::modules::Modules;
use crate::modules::switch::Switch;
use crate::wire::{Freshness, Json, Tag};

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
    /// The archive, where one is configured: executions whose ConfigMaps are gone.
    pub archive: Option<Archive>,
    /// Retention, where a policy is configured.
    pub retention: Option<retention::Retention>,
}

impl AppState {
    /// The archive, while the history module is on.
    pub fn history(&self) -> Option<&Archive> {
        self.archive.as_ref().filter(|_| self.modules.is_available(crate::model::ModuleName::History))
    }

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

/// Every route of the service: health, the description, the module list and each module's
/// routes (matched as a tree, in `router`), then the dashboard's files.
pub fn routes(state: AppState, dashboard: bool) -> BoxedFilter<(Response,)> {
    let dashboard = ui::routes(dashboard, state.responses.clone());
    let incoming = warp::method()
        .and(warp::path::full())
        .and(params::raw())
        .and(warp::header::optional::<String>("authorization"))
        .and(conditional::negotiation())
        .map(|method, path, query, authorization, how| router::Incoming { method, path, query, authorization, how });
    let api = incoming.and_then(move |incoming| router::dispatch(state.clone(), incoming));
    api.or(dashboard).unify().recover(recover).unify().boxed()
}

/// `GET /metrics` alone, for the metrics port: it names namespaces and counts, so it is read
/// only by those `Access::may_scrape` allows.
pub fn metrics_routes(
    registry: Arc<prometheus_client::registry::Registry>,
    access: Access,
) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |authorization: Option<String>| {
            let (registry, access) = (registry.clone(), access.clone());
            async move {
                access.may_scrape(authorization.as_deref()).await.map_err(ApiError::from)?;
                let mut response = Response::new(crate::metrics::encode(&registry).into());
                let kind = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
                response.headers_mut().insert(CONTENT_TYPE, kind);
                Ok::<_, warp::Rejection>(response)
            }
        })
        .recover(recover)
        .unify()
        .boxed()
}

/// What every `/api` handler takes besides the names in its path: the raw query, the caller
/// past the access check, what the request negotiates, and the state.
struct ApiRequest {
    query: String,
    caller: crate::access::Caller,
    how: conditional::Negotiation,
    state: AppState,
}

/// `value` as 16 lowercase hex digits, written without a formatter: ETags and request ids are
/// on every answer.
fn hex(value: u64) -> [u8; 16] {
    let mut digits = [0u8; 16];
    // Eight bytes always fit sixteen digits.
    hex::encode_to_slice(value.to_be_bytes(), &mut digits).unwrap_or_default();
    digits
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
    kind: Resource,
    items: Vec<Json>,
    next: Option<String>,
    freshness: Bytes,
    /// Every source it draws on is synced.
    complete: bool,
}

/// A body made per request (a list page, insights): its tag, whether it may be remembered for
/// the revision it was made at (see `pages`), and its bytes.
trait Answer {
    fn tag(&self) -> Tag;
    /// Every source it draws on is synced: it stays what it is until the index or archive changes.
    fn complete(&self) -> bool;
    fn render(&self) -> Bytes;

    /// The response: `304` when the client holds this body already.
    fn reply(self, state: &AppState, how: &conditional::Negotiation) -> Response
    where
        Self: Sized,
    {
        state.responses.reply_with(how, self.tag(), state.vary(), || self.render())
    }
}

impl ListBody {
    fn new(kind: Resource, items: Vec<Json>, next: Option<String>, freshness: &Freshness) -> Self {
        let complete = freshness.complete;
        ListBody { kind, items, next, freshness: crate::wire::to_bytes(freshness), complete }
    }
}

impl Answer for ListBody {
    fn complete(&self) -> bool {
        self.complete
    }

    fn tag(&self) -> Tag {
        let items = self.items.iter().map(|item| item.tag.0.to_be_bytes());
        let items: Vec<[u8; 16]> = items.collect();
        let head =
            [self.kind.as_str().as_bytes(), self.next.as_deref().unwrap_or_default().as_bytes(), &self.freshness];
        // `next` absent and empty differ: an empty token is never issued.
        Tag::of_parts(
            head.into_iter().chain([&[u8::from(self.next.is_some())][..]]).chain(items.iter().map(|t| &t[..])),
        )
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
            archive: None,
            retention: None,
        })
    }
}
