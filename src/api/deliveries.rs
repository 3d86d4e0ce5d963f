//! `GET /api/v1/namespaces/{namespace}/deliveries`: the namespace's latest notification
//! deliveries (newest first), what became of each and why, for the team that subscribed. Who
//! may read the namespace's executions may read them; they come from the outbox, in the archive.

use warp::reply::Response;

use super::authz::{Target, authorize};
use super::params::Params;
use super::{ApiError, ApiRequest, PageLimits};
use crate::access::Verb;
use crate::history::outbox::DeliveryRow;
use crate::model::Resource;
use crate::wire::{Delivery, DeliveryList, DeliveryState, ErrorCode, Tag};

/// Deliveries listed unless `limit` says otherwise, and the most it may say.
const LISTED: PageLimits = PageLimits { default: 100, max: 500 };

/// GET /api/v1/namespaces/{namespace}/deliveries
pub(super) async fn list(namespace: String, request: ApiRequest) -> Result<Response, warp::Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    let params = Params::parse(&query, &["limit", "subscription", "state"])?;
    let limit = params.limit(LISTED)?;
    let wanted = params.parsed("state", "waiting, sent or dead", DeliveryState::parse)?;
    authorize(
        &state,
        &caller,
        Target { namespace: &namespace, resource: Resource::Deliveries, name: None, verb: Verb::List },
    )
    .await?;
    let unavailable = |e: crate::history::ArchiveError| {
        tracing::warn!(error = %e, "deliveries cannot be read");
        ApiError::unavailable(
            ErrorCode::HistoryUnavailable,
            "the archive, which holds the deliveries, cannot be read now",
        )
    };
    let archive = state
        .archive
        .as_ref()
        .ok_or_else(|| ApiError::unavailable(ErrorCode::ModuleNotInstalled, "module notifications is not installed"))?;
    let outbox = archive.outbox().map_err(unavailable)?;
    let rows = outbox
        .deliveries(&namespace, params.get("subscription"), wanted.map(DeliveryState::as_str), limit)
        .await
        .map_err(unavailable)?;
    let items = rows.into_iter().map(delivery).collect();
    let body = crate::wire::to_bytes(&DeliveryList { namespace, items });
    Ok(state.responses.reply(&how, Tag::of(&body), body, state.vary()))
}

fn delivery(row: DeliveryRow) -> Delivery {
    let time = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string());
    Delivery {
        state: DeliveryState::parse(&row.state).unwrap_or(DeliveryState::Waiting),
        id: row.id,
        subscription: row.subscription,
        event_type: row.event_type,
        subject: row.subject,
        transition: row.transition,
        attempts: row.attempts,
        created_at: row.created_at.to_string(),
        next_attempt_at: time(row.next_attempt_at),
        last_attempt_at: time(row.last_attempt_at),
        last_status: row.last_status,
        last_error: row.last_error,
        sent_at: time(row.sent_at),
    }
}
