//! `GET /api/v1/insights` and `/api/v1/namespaces/{namespace}/insights`: delivery metrics over
//! the runs the caller may read, live and archived (see `insights`). Access is the executions
//! list's: the same review, the same scope, the same `404` for a namespace not watched or not
//! readable. Answers have ETags made from their bytes alone (nothing of another namespace goes
//! into them), are remembered per request while the index and archive are unchanged (a `304`
//! costs a lookup), and are long polls with `timeoutSeconds`, as lists are.

use std::sync::Arc;

use bytes::Bytes;
use jiff::{Timestamp, ToSpan, Unit};
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

use super::authz::readable;
use super::params::Params;
use super::poll::{self, HeldList};
use super::{Answer, ApiError, ApiRequest, AppState};
use crate::access::Verb;
use crate::index::ExecutionEntry;
use crate::insights::{self, InsightsRequest, Run, RunFacts};
use crate::model::Resource;
use crate::query::{ExecutionFilter, Scope};
use crate::wire::{ErrorCode, Json, Tag};

/// GET /api/v1/insights and /api/v1/namespaces/{namespace}/insights.
pub(super) async fn get(namespace: Option<String>, request: ApiRequest) -> Result<Response, Rejection> {
    let ApiRequest { query, caller, how, state } = request;
    let accepted: Vec<&str> =
        ExecutionFilter::PARAMETERS.into_iter().chain(InsightsRequest::PARAMETERS).chain(["timeoutSeconds"]).collect();
    let params = Params::parse_list(&query, namespace.is_some(), &accepted)?;
    let timeout = poll::timeout(&params)?;
    let verb = if timeout.is_some() { Verb::Watch } else { Verb::List };
    let scope =
        readable(&state, &caller, Resource::Executions, namespace.as_deref(), params.get("namespace"), verb).await?;
    let now = minute_after(Timestamp::now());
    // Checked before anything is counted, so a bad parameter is a 400 whatever the data.
    InsightsRequest::from_parameters(namespace.clone(), |name| params.raw(name), scope.clone(), now)
        .map_err(ApiError::from)?;
    let held = HeldList {
        resource: Resource::Insights,
        namespace: namespace.as_deref(),
        params: &params,
        scope: scope.clone(),
        as_of: now.as_millisecond(),
    };
    let (state, params, namespace) = (&state, &params, &namespace);
    poll::list(state, &caller, &how, timeout, held, move |scope: Scope| async move {
        let wanted = InsightsRequest::from_parameters(namespace.clone(), |name| params.raw(name), scope, now)?;
        answer(state, wanted).await
    })
    .await
}

/// Times relative to now (`from=90d`, and `to` by default) are taken from the next whole
/// minute: an answer, and its ETag, stays the same within a minute unless a run changes it.
fn minute_after(now: Timestamp) -> Timestamp {
    let floored = now.round(jiff::TimestampRound::new().smallest(Unit::Minute).mode(jiff::RoundMode::Floor));
    floored.ok().and_then(|t| t.checked_add(1.minute()).ok()).unwrap_or(now)
}

/// Insights as served, and whether every source was read.
struct InsightsAnswer {
    body: Json,
    complete: bool,
}

impl Answer for InsightsAnswer {
    fn tag(&self) -> Tag {
        self.body.tag
    }

    fn complete(&self) -> bool {
        self.complete
    }

    fn render(&self) -> Bytes {
        self.body.bytes.clone()
    }
}

/// Counts the runs `wanted` asks for: live ones from the index, those whose ConfigMaps are gone
/// from the archive (where the history module is on), off the request threads.
async fn answer(state: &AppState, wanted: InsightsRequest) -> Result<InsightsAnswer, ApiError> {
    let from = wanted.buckets.from();
    let counted = |facts: &RunFacts| facts.last_counted().is_some_and(|at| at >= from);
    let live: Vec<(Arc<ExecutionEntry>, RunFacts)> = state
        .index
        .all_executions()
        .into_iter()
        .filter(|entry| wanted.filter.matches(&**entry))
        .map(|entry| {
            let facts = RunFacts::of(&entry.view);
            (entry, facts)
        })
        .filter(|(_, facts)| counted(facts))
        .collect();
    let mut freshness = state.index.freshness(wanted.filter.namespace.as_deref(), &wanted.filter.scope);
    let archived = match state.history() {
        Some(archive) => {
            let (runs, unreadable) = archive.insight_runs(&wanted.filter, from).await;
            if let Some(unreadable) = unreadable {
                freshness.archive_unreadable(unreadable.to_string());
            }
            runs
        }
        None => Vec::new(),
    };
    let complete = freshness.complete;
    let counting = tokio::task::spawn_blocking(move || {
        let mut runs: Vec<Run> = live.iter().map(|(e, facts)| Run { namespace: &e.id.namespace, facts }).collect();
        runs.extend(archived.iter().map(|a| Run { namespace: &a.namespace, facts: &a.facts }));
        let mut body = insights::compute(&wanted, &runs);
        body.freshness = Some(freshness);
        Json::of(&body)
    });
    let body = counting.await.map_err(|e| {
        tracing::error!(error = %e, "counting insights failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "counting insights failed")
    })?;
    Ok(InsightsAnswer { body, complete })
}
