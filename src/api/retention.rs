//! `GET /api/v1/retention/plan`: what the retention policy would prune now, per rule, counted
//! over the namespaces the caller may read, with the first names in the order they would go.

use serde::Serialize;
use warp::reply::Response;

use super::authz::{covers_everything, scope};
use super::params::Params;
use super::{ApiError, ApiRequest, PageLimits};
use crate::access::Verb;
use crate::retention::{Mode, PlanBody, RetentionStatus};
use crate::wire::ErrorCode;
use crate::wire::Tag;

/// Names listed per rule unless `limit` says otherwise, and the most it may say.
const FIRST: PageLimits = PageLimits { default: 20, max: 500 };

/// Retention as the API sees it.
#[derive(Clone)]
pub struct Retention {
    pub status: RetentionStatus,
    pub mode: Mode,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlanReply {
    #[serde(flatten)]
    plan: PlanBody,
    /// Why the policy file's last edit is not in force (the previous policy is).
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_error: Option<String>,
    /// Why nothing is deleted although the mode is `enforce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    idle: Option<String>,
}

/// GET /api/v1/retention/plan
pub(super) async fn plan(request: ApiRequest) -> Result<Response, warp::Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    let params = Params::parse(&query, &["limit"])?;
    let limit = params.limit(FIRST)?;
    let Some(retention) = &state.retention else {
        let message = "module retention is not installed: start execwatch with --retention FILE";
        return Err(ApiError::unavailable(ErrorCode::ModuleNotInstalled, message).into());
    };
    let scope = scope(&state, &caller, Verb::List).await?;
    let status = retention.status.get();
    let Some(plan) = status.plan else {
        return Err(ApiError::unavailable(ErrorCode::NotSynced, "the first plan is being made").into());
    };
    // Both may name namespaces the caller may not read.
    let reads_all = covers_everything(&state, &scope);
    let hidden = |e: Option<String>| {
        e.map(|e| if reads_all { e } else { "hidden: it may name namespaces you may not read".into() })
    };
    let body = PlanReply {
        plan: plan.body(retention.mode.as_str(), &scope, limit),
        policy_error: hidden(status.policy_error),
        idle: hidden(status.idle),
    };
    let body = crate::wire::to_bytes(&body);
    Ok(state.responses.reply(&how, Tag::of(&body), body, state.vary()))
}
