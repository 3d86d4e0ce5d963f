//! `/livez` and `/readyz`. Liveness never touches the API server; readiness is earned: every
//! available module is ready (its sources settled: synced, or refused with a reported reason) and
//! shutdown has not begun.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Process-wide health: whether shutdown has begun, and how many long polls are held. Clones
/// share it.
#[derive(Clone)]
pub struct Health {
    shutting_down: Arc<watch::Sender<bool>>,
    long_polls: Arc<AtomicUsize>,
}

impl Default for Health {
    fn default() -> Self {
        Health { shutting_down: Arc::new(watch::Sender::new(false)), long_polls: Arc::default() }
    }
}

/// Counts one held long poll while it lives.
pub struct LongPoll(Arc<AtomicUsize>);

impl Drop for LongPoll {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Health {
    /// Registers a long poll until the returned guard is dropped.
    pub fn hold_long_poll(&self) -> LongPoll {
        self.long_polls.fetch_add(1, Ordering::SeqCst);
        LongPoll(self.long_polls.clone())
    }

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
    /// Long polls waiting now; shutdown answers them all at once.
    long_polls: usize,
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
    let body = Readiness {
        ready,
        shutting_down,
        long_polls: state.health.long_polls.load(Ordering::SeqCst),
        modules,
        switch: state.switch.status(),
        sources: state.index.shards(),
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::PageLimits;
    use crate::index::Index;
    use crate::modules::switch::{Switch, SwitchState};
    use crate::modules::{Lifecycle, Modules, PipelinesModule};

    #[tokio::test]
    async fn readiness_turns_false_when_shutdown_begins() {
        let index = Index::new(Duration::from_secs(60));
        let state = AppState {
            index: index.clone(),
            health: Health::default(),
            page: PageLimits::default(),
            modules: Arc::new(Modules::new(Vec::new())),
            switch: Arc::new(Switch::new(SwitchState::Flags)),
            watched: None,
            executions: Lifecycle::default(),
            pipelines: PipelinesModule::new(index).cache(),
        };
        let filter = routes(state.clone());
        let ready = warp::test::request().path("/readyz").reply(&filter).await;
        assert_eq!(ready.status(), StatusCode::OK);
        state.health.begin_shutdown();
        let draining = warp::test::request().path("/readyz").reply(&filter).await;
        assert_eq!(draining.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = serde_json::from_slice(draining.body()).unwrap();
        assert_eq!(body["shuttingDown"], true);
        let live = warp::test::request().path("/livez").reply(&filter).await;
        assert_eq!(live.status(), StatusCode::OK, "liveness is not readiness");
    }
}
