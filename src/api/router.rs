//! The routes as a tree: a request's path is split once and matched in one `match`, instead of
//! trying a flat `or` of filters one after another (a profile put a quarter of GET one's CPU in
//! warp's nested `or`/`and` futures). What warp's `path!` accepted is accepted here: raw
//! segments (not percent-decoded), one trailing slash, and nothing empty between slashes.

use warp::http::Method;
use warp::reply::Response;
use warp::{Rejection, Reply};

use super::conditional::Negotiation;
use super::{
    ApiError, ApiRequest, AppState, authz, deliveries, executions, health, insights, modules, pipelines, rejections,
    retention,
};
use crate::model::Resource;
use crate::wire::ErrorCode;

/// Where a path leads.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route<'a> {
    Livez,
    Readyz,
    OpenApi,
    Modules,
    RetentionPlan,
    /// `/api/v1/insights` or `/api/v1/namespaces/{namespace}/insights`.
    Insights {
        namespace: Option<&'a str>,
    },
    /// `/api/v1/namespaces/{namespace}/deliveries`.
    Deliveries {
        namespace: &'a str,
    },
    /// `/api/v1/{resource}` or `/api/v1/namespaces/{namespace}/{resource}`.
    List {
        resource: Resource,
        namespace: Option<&'a str>,
    },
    Execution {
        namespace: &'a str,
        name: &'a str,
    },
    Pipeline {
        namespace: &'a str,
        name: &'a str,
    },
}

impl<'a> Route<'a> {
    /// The route of `path`; `None` for any other path (the dashboard's, or none).
    pub fn of(path: &'a str) -> Option<Self> {
        let path = path.strip_prefix('/')?;
        let path = path.strip_suffix('/').unwrap_or(path);
        // One more segment than the longest route is enough to know it is none of them.
        let mut segments = [""; 7];
        let mut count = 0;
        for segment in path.split('/') {
            if segment.is_empty() || count == segments.len() {
                return None;
            }
            segments[count] = segment;
            count += 1;
        }
        Some(match segments[..count] {
            ["livez"] => Route::Livez,
            ["readyz"] => Route::Readyz,
            ["openapi.json"] => Route::OpenApi,
            ["api", "v1", "modules"] => Route::Modules,
            ["api", "v1", "retention", "plan"] => Route::RetentionPlan,
            ["api", "v1", "insights"] => Route::Insights { namespace: None },
            ["api", "v1", "namespaces", namespace, "insights"] => Route::Insights { namespace: Some(namespace) },
            ["api", "v1", "namespaces", namespace, "deliveries"] => Route::Deliveries { namespace },
            ["api", "v1", resource] => Route::List { resource: Resource::listed(resource)?, namespace: None },
            ["api", "v1", "namespaces", namespace, resource] => {
                Route::List { resource: Resource::listed(resource)?, namespace: Some(namespace) }
            }
            ["api", "v1", "namespaces", namespace, "executions", name] => Route::Execution { namespace, name },
            ["api", "v1", "namespaces", namespace, "pipelines", name] => Route::Pipeline { namespace, name },
            _ => return None,
        })
    }

    /// The API resource whose module answers it, if a module does.
    fn resource(&self) -> Option<Resource> {
        match self {
            Route::List { resource, .. } => Some(*resource),
            Route::Execution { .. } => Some(Resource::Executions),
            Route::Pipeline { .. } => Some(Resource::Pipelines),
            Route::RetentionPlan => Some(Resource::Retention),
            Route::Insights { .. } => Some(Resource::Insights),
            Route::Deliveries { .. } => Some(Resource::Deliveries),
            Route::Livez | Route::Readyz | Route::OpenApi | Route::Modules => None,
        }
    }
}

/// Everything a route's handler may need from the request.
pub(super) struct Incoming {
    pub method: Method,
    pub path: warp::path::FullPath,
    pub query: String,
    pub authorization: Option<String>,
    pub how: Negotiation,
}

/// Answers a request whose path is a route; any other path is rejected as not found, for the
/// dashboard's routes to try. A route takes GET only (HEAD is answered as GET by the server),
/// checked before the caller is; `/api` routes then take their caller from the one access check.
pub(super) async fn dispatch(state: AppState, request: Incoming) -> Result<Response, Rejection> {
    let Some(route) = Route::of(request.path.as_str()) else { return Err(warp::reject::not_found()) };
    if request.method != Method::GET {
        let refused = ApiError::new(
            warp::http::StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "only GET and HEAD are supported",
        );
        return Err(refused.into());
    }
    let Incoming { query, authorization, how, .. } = request;
    match route {
        Route::Livez => return Ok(health::livez()),
        Route::Readyz => return Ok(health::readyz(state, authorization).await),
        Route::OpenApi => return Ok(super::json_bytes(super::openapi::DOCUMENT.clone())),
        _ => {}
    }
    let caller = authz::admit(&state, route.resource(), authorization.as_deref()).await?;
    let owned = |s: &str| s.to_owned();
    let request = ApiRequest { query, caller, how, state };
    match route {
        Route::Modules => modules::list(request).await,
        Route::RetentionPlan => retention::plan(request).await,
        Route::Insights { namespace } => insights::get(namespace.map(owned), request).await,
        Route::Deliveries { namespace } => deliveries::list(owned(namespace), request).await,
        Route::List { resource, namespace } => {
            let namespace = namespace.map(owned);
            match resource {
                Resource::Executions => executions::list(namespace, request).await,
                Resource::Pipelines => pipelines::list(namespace, request).await,
                _ => rejections::list(namespace, request).await,
            }
        }
        Route::Execution { namespace, name } => executions::get_one(owned(namespace), owned(name), request).await,
        Route::Pipeline { namespace, name } => pipelines::get_one(owned(namespace), owned(name), request).await,
        Route::Livez | Route::Readyz | Route::OpenApi => unreachable!("answered above"),
    }
    .map(Reply::into_response)
}

#[cfg(test)]
mod tests {
    use super::{Resource, Route};

    #[test]
    fn paths_match_as_warp_path_matched_them() {
        let list = |resource, namespace| Some(Route::List { resource, namespace });
        assert_eq!(Route::of("/api/v1/executions"), list(Resource::Executions, None));
        assert_eq!(Route::of("/api/v1/executions/"), list(Resource::Executions, None), "one trailing slash");
        assert_eq!(Route::of("/api/v1/executions//"), None);
        assert_eq!(Route::of("/api/v1//executions"), None);
        assert_eq!(Route::of("/api/v1/namespaces/a/rejections"), list(Resource::Rejections, Some("a")));
        assert_eq!(Route::of("/api/v1/namespaces/a/modules"), None);
        assert_eq!(Route::of("/api/v1/namespaces/a/rejections/b"), None);
        assert_eq!(
            Route::of("/api/v1/namespaces/a%2Fb/executions/run"),
            Some(Route::Execution { namespace: "a%2Fb", name: "run" }),
            "segments are raw"
        );
        assert_eq!(Route::of("/api/v1/namespaces/a/executions/"), list(Resource::Executions, Some("a")));
        assert_eq!(Route::of("/livez/"), Some(Route::Livez));
        assert_eq!(Route::of("/"), None, "the dashboard's");
        assert_eq!(Route::of("/app.js"), None);
        assert_eq!(Route::of(&"/a".repeat(10_000)), None);
    }

    /// A long poll holds its request's future for minutes, thousands at once; whatever only a
    /// miss, a review or an archive read needs is boxed so that it is not part of it (a review
    /// passed by value made it 10 KiB).
    #[tokio::test]
    async fn a_request_future_is_small() {
        let state = crate::api::tests::state(crate::index::Index::new(std::time::Duration::from_secs(60)));
        let path = warp::test::request().path("/api/v1/executions").filter(&warp::path::full()).await.unwrap();
        let how = crate::api::conditional::Negotiation::default();
        let incoming =
            super::Incoming { method: warp::http::Method::GET, path, query: String::new(), authorization: None, how };
        let size = std::mem::size_of_val(&super::dispatch(state, incoming));
        assert!(size <= 3 * 1024, "a request's future takes {size} bytes");
    }
}
