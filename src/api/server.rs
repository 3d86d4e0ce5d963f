//! The HTTP server: hyper's HTTP/1 connections with a header-read timeout, a cap on concurrent
//! connections, one access-log line per request at the level its status deserves, `HEAD` served
//! as `GET` without a body, CORS for the origins configured (none by default), `nosniff` on
//! every response, and a shutdown that drains for a bounded grace period, then closes whatever is
//! still open.

use crate::metrics::HttpMetrics;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_service::Service as _;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::{Method, Request, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::quote::quote;

/// The most a request's head may take (hyper answers `431` beyond): no request of this read-only
/// API needs more, and a bearer token over 16 KiB is refused anyway.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Connection limits, the shutdown deadline and the origins browsers may call from.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// A request's headers must arrive within this; an idle keep-alive connection is closed
    /// after it too (hyper starts the same timer while it waits for the next request).
    pub header_read_timeout: Duration,
    /// Connections beyond this wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests before closing their connections.
    pub shutdown_grace: Duration,
    /// Origins (`https://ui.example.com`) whose pages may call the API from a browser.
    pub cors_origins: Vec<String>,
    /// Serve the dashboard at `/`.
    pub dashboard: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(5),
            cors_origins: Vec::new(),
            dashboard: true,
        }
    }
}

/// Serves `routes` on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish for at most `shutdown_grace`, and closes every connection.
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    settings: ServerSettings,
    metrics: HttpMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let routes = with_cors(routes, &settings.cors_origins);
    let cors = !settings.cors_origins.is_empty();
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let (stream, permit) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, typically: back off instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let routes = routes.clone();
        let metrics = metrics.clone();
        let service = service_fn(move |req| handle(routes.clone(), cors, metrics.clone(), req));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_buf_size(MAX_HEADER_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let open = connections.len();
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!(connections = open, "every connection drained"),
        _ = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(
                connections = connections.len(),
                grace = ?settings.shutdown_grace,
                "closing connections still open after the shutdown grace period"
            );
        }
    }
    connections.shutdown().await;
}

/// Waits for a free connection slot, then for a connection.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.map_err(std::io::Error::other)?;
    let (stream, _) = listener.accept().await?;
    Ok((stream, permit))
}

/// CORS for `origins`: a preflight is answered, a request from an origin not listed is refused
/// (`403`), and a listed origin may send the headers conditional polls, streams and access
/// control need and read the `ETag`. Without origins, browsers keep other origins out.
fn with_cors(routes: BoxedFilter<(Response,)>, origins: &[String]) -> BoxedFilter<(Response,)> {
    if origins.is_empty() {
        return routes;
    }
    let cors = warp::cors()
        .allow_origins(origins.iter().map(String::as_str))
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers(["authorization", "if-none-match", "last-event-id", "accept"])
        .expose_headers(["etag", "retry-after"])
        .max_age(Duration::from_secs(600));
    let allowed = routes.with(cors).map(Reply::into_response);
    allowed.recover(super::recover).unify().boxed()
}

/// One request: `HEAD` is answered as `GET` without its body, and one log line is written. The
/// request has an id (the client's `X-Request-Id` when it is short and plain, else a new one):
/// every log line written while it is handled carries it, and the response echoes it.
async fn handle(
    routes: BoxedFilter<(Response,)>,
    cors: bool,
    metrics: HttpMetrics,
    mut req: Request<Incoming>,
) -> Result<Response, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    if method == Method::HEAD {
        *req.method_mut() = Method::GET;
    }
    let id = request_id(req.headers());
    let negotiated = super::conditional::Negotiation::of(req.headers());
    req.extensions_mut().insert(negotiated);
    let span = tracing::info_span!("request", request_id = %id.to_str().unwrap_or_default());
    let mut response = warp::service(routes).call(req).instrument(span.clone()).await?;
    if method == Method::HEAD {
        let length = http_body::Body::size_hint(response.body()).exact();
        *response.body_mut() = bytes::Bytes::new().into();
        if let Some(length) = length {
            response.headers_mut().insert(header::CONTENT_LENGTH, length.into());
        }
    }
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if cors {
        // Whether the CORS headers are there depends on the request's Origin.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    headers.insert(HeaderName::from_static("x-request-id"), id);
    let took = started.elapsed();
    span.in_scope(|| log(&method, uri.path(), response.status(), took));
    metrics.observe(uri.path(), response.status().as_u16(), took);
    Ok(response)
}

/// The client's `X-Request-Id` when it is 1 to 64 letters, digits, `.`, `_` or `-`; else a new one.
fn request_id(headers: &header::HeaderMap) -> HeaderValue {
    let plain = |v: &&HeaderValue| {
        let bytes = v.as_bytes();
        (1..=64).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
    };
    match headers.get("x-request-id").filter(plain) {
        Some(id) => id.clone(),
        None => HeaderValue::from_bytes(&super::hex(fastrand::u64(..))).unwrap_or(HeaderValue::from_static("-")),
    }
}

/// Server faults are errors; a 503 is the service saying "not now" (not synced, module off,
/// shutting down); client errors and successes are routine.
fn log(method: &Method, path: &str, status: StatusCode, took: Duration) {
    let status = status.as_u16();
    macro_rules! line {
        ($level:ident) => {
            // Fields are evaluated only when the line is logged: no quoting on the hot path.
            tracing::$level!(target: "execwatch::http", %method, path = quote(path), status, took_ms = took.as_secs_f64() * 1e3, "request")
        };
    }
    match status {
        503 => line!(info),
        500.. => line!(error),
        _ => line!(debug),
    }
}
