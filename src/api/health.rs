//! `/livez` and `/readyz`. Liveness never touches the API server; readiness is earned: every
//! available module is ready (its sources settled: synced, or refused with a reported reason) and
//! shutdown has not begun.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::AppState;
use crate::index::ShardStatus;
use crate::modules::ModuleStatus;
use crate::modules::switch::SwitchStatus;

/// Process-wide health: whether shutdown has begun. Clones share it.
#[derive(Clone)]
pub struct Health {
    shutting_down: Arc<watch::Sender<bool>>,
}

impl Default for Health {
    fn default() -> Self {
        Health { shutting_down: Arc::new(watch::Sender::new(false)) }
    }
}

impl Health {
    /// Readiness turns false from here on, so load balancers drain the pod first, and every
    /// long poll answers at once.
    pub fn begin_shutdown(&self) {
        self.shutting_down.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutting_down.borrow()
    }

    /// Completes when shutdown begins (at once if it has).
    pub fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutting_down.subscribe();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Readiness {
    ready: bool,
    shutting_down: bool,
    /// Only enabled modules count towards readiness.
    modules: Vec<ModuleStatus>,
    /// How modules are switched, and whether that works (e.g. the CRD is absent).
    switch: SwitchStatus,
    sources: Vec<ShardStatus>,
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let livez = warp::path!("livez")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let readyz = warp::path!("readyz").and(warp::get()).map(move || readyz(&state));
    livez.or(readyz).unify().boxed()
}

/// GET /readyz
fn readyz(state: &AppState) -> Response {
    let shutting_down = state.health.is_shutting_down();
    let modules = state.modules.status();
    let ready = !shutting_down && crate::modules::all_ready(&modules);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body =
        Readiness { ready, shutting_down, modules, switch: state.switch.status(), sources: state.index.shards() };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
