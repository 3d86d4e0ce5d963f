//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`. Bodies are described
//! by the very types that are serialised (`utoipa::ToSchema` on them), so a field cannot change
//! without the description following; the operations are declared here, beside `routes::API`, which
//! a test holds equal to the description's paths and to what the server routes.

use std::sync::LazyLock;

use bytes::Bytes;
use utoipa::OpenApi;

/// The description, serialised once.
pub static DOCUMENT: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(described::Description::openapi().to_json().unwrap_or_else(|_| "{}".to_owned())));

/// What the description declares: operations, parameters and answers, never built or called
/// (only read by utoipa's derives).
#[allow(dead_code)]
mod described {
    use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};

    use crate::wire::{Detail, ErrorBody, ExecutionList, Pipeline, PipelineList, RejectionList};

    #[derive(OpenApi)]
    #[openapi(
        info(
            title = "execwatch",
            description = "Lists, discovers and follows pipeline executions recorded as labelled Kubernetes ConfigMaps. \
            Every JSON response has a strong ETag of 32 hex digits (If-None-Match gets 304, and with `timeoutSeconds` \
            is held until what it names changes). Lists are pages: pass `continue` from one to get the next. \
            `/metrics` is served on a port of its own (--metrics-listen).",
            license(name = "Apache-2.0")
        ),
        paths(
            list_executions,
            list_namespace_executions,
            get_execution,
            list_pipelines,
            list_namespace_pipelines,
            get_pipeline,
            list_rejections,
            list_namespace_rejections,
            list_modules,
            retention_plan,
            insights,
            namespace_insights,
            namespace_deliveries,
            livez,
            readyz,
            openapi_json
        ),
        components(schemas(ErrorBody, crate::wire::ErrorCode))
    )]
    pub(super) struct Description;

    /// What every `/api` route may answer besides its `200`, each error as `{code, message}`.
    #[derive(IntoResponses)]
    enum Refused {
        #[response(status = 304, description = "What the client holds (If-None-Match) is current")]
        NotModified,
        #[response(status = 400, description = "A parameter is unknown, repeated or invalid")]
        BadRequest(ErrorBody<'static>),
        #[response(status = 401, description = "Callers must authenticate")]
        Unauthorized(ErrorBody<'static>),
        #[response(status = 429, description = "Too many requests or long polls from this caller")]
        TooManyRequests(ErrorBody<'static>),
        #[response(
            status = 503,
            description = "Not synced yet, module not installed, access cannot be checked now, or shutting down"
        )]
        Unavailable(ErrorBody<'static>),
    }

    /// No such object, or a namespace this service does not watch or the caller may not read.
    #[derive(IntoResponses)]
    #[response(status = 404)]
    struct NotFound(ErrorBody<'static>);

    /// One Server-Sent Event of a stream: `snapshot` and `resync` carry what the same request
    /// answers without streaming; `added`, `modified` and `deleted` an item (a summary in a list, the
    /// whole execution for one); `closed` its reason. `id` is what `Last-Event-ID` resumes after.
    #[derive(ToSchema)]
    struct StreamEvent {
        event: Option<String>,
        /// JSON, on one line.
        data: Option<String>,
        id: Option<String>,
        /// Milliseconds `EventSource` waits before it reconnects.
        retry: Option<u64>,
    }

    /// Filters of the execution lists.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    #[allow(non_snake_case)]
    struct ExecutionQuery {
        /// Runs of this pipeline.
        pipeline: Option<String>,
        /// Runs in this phase. Here as everywhere, an empty value is the same as none.
        #[param(pattern = "^(Pending|Running|Succeeded|Failed|Cancelled|Unknown)?$")]
        phase: Option<String>,
        /// Runs that include this environment.
        environment: Option<String>,
        /// A Kubernetes label selector on the ConfigMap's labels.
        labelSelector: Option<String>,
    }

    /// The all-namespaces form also filters by namespace.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    struct NamespaceFilter {
        /// Only this namespace.
        namespace: Option<String>,
    }

    /// Paging of every list, and its long poll.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    #[allow(non_snake_case)]
    struct PageQuery {
        /// Page size (default 50).
        #[param(minimum = 1, maximum = 500)]
        limit: Option<u32>,
        /// The token from the previous page.
        #[param(rename = "continue")]
        next: Option<String>,
        /// With If-None-Match: hold the request until the page would differ, at most this long.
        #[param(minimum = 1, maximum = 300)]
        timeoutSeconds: Option<u32>,
    }

    /// The long poll of one object.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    #[allow(non_snake_case)]
    struct WaitQuery {
        /// With If-None-Match: hold the request until the object changes (200) or goes (404), at
        /// most this long (then 304).
        #[param(minimum = 1, maximum = 300)]
        timeoutSeconds: Option<u32>,
    }

    /// A stream instead of one answer.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    struct WatchQuery {
        /// `true`: a stream of Server-Sent Events (as `Accept: text/event-stream`).
        watch: Option<bool>,
    }

    #[utoipa::path(get, path = "/api/v1/executions", tag = "executions",
    params(ExecutionQuery, PageQuery, WatchQuery, NamespaceFilter),
    responses(
        (status = 200, description = "A page, or with Accept: text/event-stream a stream of snapshot, added, modified, deleted, resync and closed events",
            content((ExecutionList = "application/json"), (StreamEvent = "text/event-stream"))),
        Refused, NotFound))]
    fn list_executions() {}

    #[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/executions", tag = "executions",
    params(("namespace" = String, Path), ExecutionQuery, PageQuery, WatchQuery),
    responses(
        (status = 200, description = "A page, or a stream", content((ExecutionList = "application/json"), (StreamEvent = "text/event-stream"))),
        Refused, NotFound))]
    fn list_namespace_executions() {}

    #[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/executions/{name}", tag = "executions",
    params(("namespace" = String, Path), ("name" = String, Path), WaitQuery, WatchQuery),
    responses(
        (status = 200, description = "The whole execution, or a stream of it", content((Detail<'static> = "application/json"), (StreamEvent = "text/event-stream"))),
        Refused, NotFound))]
    fn get_execution() {}

    #[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines",
    params(PageQuery, NamespaceFilter, WatchQuery),
    responses(
        (status = 200, description = "A page, or a stream", content((PipelineList = "application/json"), (StreamEvent = "text/event-stream"))),
        Refused, NotFound))]
    fn list_pipelines() {}

    #[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/pipelines", tag = "pipelines",
    params(("namespace" = String, Path), PageQuery, WatchQuery),
    responses(
        (status = 200, description = "A page, or a stream", content((PipelineList = "application/json"), (StreamEvent = "text/event-stream"))),
        Refused, NotFound))]
    fn list_namespace_pipelines() {}

    #[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/pipelines/{name}", tag = "pipelines",
    params(("namespace" = String, Path), ("name" = String, Path), WaitQuery),
    responses(
        (status = 200, body = Pipeline<'static>), Refused, NotFound))]
    fn get_pipeline() {}

    #[utoipa::path(get, path = "/api/v1/rejections", tag = "rejections",
    params(PageQuery, NamespaceFilter),
    responses(
        (status = 200, body = RejectionList), Refused, NotFound))]
    fn list_rejections() {}

    #[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/rejections", tag = "rejections",
    params(("namespace" = String, Path), PageQuery),
    responses(
        (status = 200, body = RejectionList), Refused, NotFound))]
    fn list_namespace_rejections() {}

    /// What the retention policy would prune now, per rule, over the namespaces the caller may read:
    /// counts and the first names in the order they would go (oldest first). `503
    /// ModuleNotInstalled` without `--retention`.
    #[utoipa::path(get, path = "/api/v1/retention/plan", tag = "retention",
    params(("limit" = Option<usize>, Query, description = "Names listed per rule (default 20, at most 500)")),
    responses(
        (status = 200, body = crate::api::retention::PlanReply), Refused))]
    fn retention_plan() {}

    /// What insights count and how: docs/insights.md.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    #[allow(non_snake_case)]
    struct InsightsQuery {
        /// Comma-separated: any of pipeline, application, environment, namespace, trigger.
        #[param(
            pattern = "^((pipeline|application|environment|namespace|trigger)(,(pipeline|application|environment|namespace|trigger))*)?$"
        )]
        groupBy: Option<String>,
        /// Buckets: `day`, `week` (ISO, from Monday), `month`, or `whole` (one bucket). Default
        /// `week`. At most 800 buckets.
        #[param(pattern = "^(day|week|month|whole)?$")]
        interval: Option<String>,
        /// The range's start: an RFC 3339 time, a date (its midnight in `tz`), or a duration
        /// before now (`90d`, the default). Moved back to the start of its bucket. Ranges longer
        /// than 3660 days are refused.
        from: Option<String>,
        /// The range's end (exclusive), in the same forms; default now. Relative times are from
        /// the next whole minute.
        to: Option<String>,
        /// The IANA time zone whose calendar the buckets follow (default `UTC`).
        tz: Option<String>,
        /// With If-None-Match: hold the request until the answer would differ, at most this long.
        #[param(minimum = 1, maximum = 300)]
        timeoutSeconds: Option<u32>,
    }

    /// Delivery metrics over the runs the caller may read, live and archived: deployments,
    /// change fail rate (with both counts), recovery and lead times, and durations with exact
    /// percentiles, per group and bucket.
    #[utoipa::path(get, path = "/api/v1/insights", tag = "insights",
    params(ExecutionQuery, InsightsQuery, NamespaceFilter),
    responses((status = 200, body = crate::wire::InsightsBody), Refused, NotFound))]
    fn insights() {}

    #[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/insights", tag = "insights",
    params(("namespace" = String, Path), ExecutionQuery, InsightsQuery),
    responses((status = 200, body = crate::wire::InsightsBody), Refused, NotFound))]
    fn namespace_insights() {}

    /// The namespace's latest notification deliveries, newest first: each message to a
    /// NotificationSubscription, its attempts, last error and next attempt. Readable by whoever
    /// may read the namespace's executions. `503 ModuleNotInstalled` without notifications.
    #[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/deliveries", tag = "notifications",
    params(("namespace" = String, Path),
        ("subscription" = Option<String>, Query, description = "Only this subscription's"),
        ("state" = Option<String>, Query, description = "Only those in this state", pattern = "^(waiting|sent|dead)?$"),
        ("limit" = Option<usize>, Query, description = "How many (default 100, at most 500)", minimum = 1, maximum = 500)),
    responses((status = 200, body = crate::wire::DeliveryList), Refused, NotFound))]
    fn namespace_deliveries() {}

    #[utoipa::path(get, path = "/api/v1/modules", tag = "modules",
    responses(
        (status = 200, body = crate::api::modules::Body), Refused))]
    fn list_modules() {}

    #[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, description = "The process is alive")))]
    fn livez() {}

    #[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready (with a token, or without access control, the whole state)", body = crate::api::health::Readiness),
        (status = 503, description = "Not ready, or shutting down", body = crate::api::health::Readiness)))]
    fn readyz() {}

    #[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "This description", content_type = "application/json")))]
    fn openapi_json() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_has_every_route_and_nothing_else() {
        let document: serde_json::Value = serde_json::from_slice(&DOCUMENT).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut paths: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        paths.sort();
        let mut routes = crate::routes::API.to_vec();
        routes.sort();
        assert_eq!(paths, routes);
    }
}
