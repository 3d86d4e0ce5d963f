//! `GET /api/v1/modules`: every module with its state, so a UI can hide what is not installed.
//! Always available, whatever is enabled.

use serde::Serialize;
use warp::reply::Response;

use super::ApiRequest;
use super::authz::{covers_everything, scope};
use super::params::Params;
use crate::access::Verb;
use crate::modules::ModuleStatus;
use crate::modules::switch::SwitchStatus;
use crate::wire::Tag;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Body {
    items: Vec<ModuleStatus>,
    switch: SwitchStatus,
}

/// GET /api/v1/modules
pub(super) async fn list(request: ApiRequest) -> Result<Response, warp::Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    Params::parse(&query, &[])?;
    let reads_all = covers_everything(&state, &scope(&state, &caller, Verb::List).await?);
    let body = Body { items: redacted(state.modules.status(), reads_all), switch: state.switch.status() };
    // A few hundred bytes, built per request: its tag is a hash of the bytes.
    let body = crate::wire::to_bytes(&body);
    Ok(state.responses.reply(&how, Tag::of(&body), body, state.vary()))
}

/// Drops modules' last errors, which name the namespaces that fail, unless `reads_all`.
pub(super) fn redacted(mut modules: Vec<ModuleStatus>, reads_all: bool) -> Vec<ModuleStatus> {
    if !reads_all {
        for module in &mut modules {
            module.last_error = module.last_error.take().map(|_| "hidden: it names namespaces you may not read".into());
        }
    }
    modules
}
