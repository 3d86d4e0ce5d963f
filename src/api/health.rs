//! `/livez` and `/readyz`. Liveness never touches the API server; readiness is earned: every
//! available module is ready (its sources settled: synced, or refused with a reported reason) and
//! shutdown has not begun.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use super::AppState;
use crate::access::Verb;
use crate::modules::ModuleStatus;
use crate::modules::switch::SwitchStatus;
use crate::query::Scope;
use crate::wire::ShardStatus;

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

/// What a probe without credentials learns, where callers must authenticate.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Status {
    ready: bool,
    shutting_down: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Readiness {
    ready: bool,
    shutting_down: bool,
    /// Long polls and streams open now (shutdown ends them all at once): for callers who read
    /// every namespace only, since it counts other namespaces' followers.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<usize>,
    /// The tokens file, where it is the authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_file: Option<crate::access::tokens::TokenFileStatus>,
    /// Only enabled modules count towards readiness.
    modules: Vec<ModuleStatus>,
    /// How modules are switched, and whether that works (e.g. the CRD is absent).
    switch: SwitchStatus,
    sources: Vec<ShardStatus>,
}

pub(super) fn livez() -> Response {
    warp::reply::json(&serde_json::json!({"status": "ok"})).into_response()
}

/// GET /readyz. Where callers must authenticate, a probe without a valid token learns the status
/// only; a caller with one sees the modules and the sources of the namespaces they may read.
pub(super) async fn readyz(state: AppState, authorization: Option<String>) -> Response {
    let shutting_down = state.health.is_shutting_down();
    let modules = state.modules.status();
    let ready = !shutting_down && crate::modules::all_ready(&modules);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let caller = match &authorization {
        Some(header) => state.access.authenticate(Some(header)).await.ok(),
        None if !state.access.required() => state.access.authenticate(None).await.ok(),
        None => None,
    };
    let Some(caller) = caller else {
        return warp::reply::with_status(warp::reply::json(&Status { ready, shutting_down }), status).into_response();
    };
    // Access that cannot be checked now shows no source and no error at all.
    let (scope, reads_all) = match super::authz::scope(&state, &caller, Verb::List).await {
        Ok(scope) => {
            let reads_all = super::authz::covers_everything(&state, &scope);
            (scope, reads_all)
        }
        Err(_) => (Scope::only(Default::default()), false),
    };
    let sources =
        state.index.shards().into_iter().filter(|s| s.namespace.as_deref().is_none_or(|ns| scope.allows(ns))).collect();
    let body = Readiness {
        ready,
        shutting_down,
        waiting: reads_all.then(|| state.limits.held()),
        // Its path, size and last error are for readers of everything only.
        tokens_file: state.access.token_file().filter(|_| reads_all).map(|f| f.status()),
        modules: super::modules::redacted(modules, reads_all),
        switch: state.switch.status(),
        sources,
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::index::Index;

    #[tokio::test]
    async fn readiness_turns_false_when_shutdown_begins() {
        let index = Index::new(Duration::from_secs(60));
        let state = crate::api::tests::state(index.clone());
        let filter = crate::api::routes(state.clone(), false);
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
