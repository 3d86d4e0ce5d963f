//! `GET /api/v1/modules`: every module with its state, so a UI can hide what is not installed.
//! Always available, whatever is enabled.

use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::params::{self, Params};
use super::{AppState, with_state};
use crate::modules::ModuleStatus;
use crate::modules::switch::SwitchStatus;

#[derive(Serialize)]
struct Body {
    items: Vec<ModuleStatus>,
    switch: SwitchStatus,
}

/// GET /api/v1/modules
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("modules")
        .and(warp::get())
        .and(params::raw())
        .and(with_state(state))
        .and_then(|query: String, state: AppState| async move {
            Params::parse(&query, &[])?;
            let body = Body { items: state.modules.status(), switch: state.switch.status() };
            Ok::<_, warp::Rejection>(warp::reply::json(&body).into_response())
        })
        .boxed()
}
