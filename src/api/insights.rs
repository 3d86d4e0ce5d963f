//! `GET /api/v1/insights` and `/api/v1/namespaces/{namespace}/insights`: delivery metrics over
//! the runs the caller may read, live and archived (see `insights`). Access is the executions
//! list's: the same review, the same scope, the same `404` for a namespace not watched or not
//! readable. Answers have ETags made from their bytes alone (nothing of another namespace goes
//! into them), are remembered per request while the index and archive are unchanged (a `304`
//! costs a lookup), and are long polls with `timeoutSeconds`, as lists are.

use std::collections::HashSet;

use bytes::Bytes;
use jiff::{Timestamp, ToSpan, Unit};
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

use super::authz::readable;
use super::conditional::{Negotiation, Responses};
use super::params::Params;
use super::poll::{self, HeldList};
use super::{Answer, ApiError, ApiRequest, AppState};
use crate::access::Verb;
use crate::history::StoredRuns;
use crate::insights::{Counter, InsightsRequest, RunFacts};
use crate::model::Resource;
use crate::query::{ExecutionFilter, Scope};
use crate::wire::{ErrorCode, Freshness, Json, Tag};

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
    // The parameters are read when an answer is made (a bad one is a 400 before anything is
    // counted); an answer remembered for this request is served without reading them again.
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

    /// Not kept in the response cache: an answer is megabytes, asked again rarely, and a `304`
    /// needs only its tag, which `pages` remembers.
    fn reply(self, state: &AppState, how: &Negotiation) -> Response {
        Responses::reply_once(how, self.body.tag, self.body.bytes, state.vary())
    }
}

/// Chunks of the archive's rollups in flight between the read and the counting thread.
const IN_FLIGHT: usize = 4;

/// Counts the runs `wanted` asks for: live ones from the index, the archive's (where the history
/// module is on) for those whose ConfigMaps are gone. The counting (parsing, filtering, tallies)
/// and the answer's serialising run on a blocking thread, fed the archive's rows in bounded
/// chunks, so a year of an archive neither holds a request thread nor sits in memory at once.
async fn answer(state: &AppState, wanted: InsightsRequest) -> Result<InsightsAnswer, ApiError> {
    let from = wanted.buckets.from();
    let mut freshness = state.index.freshness(wanted.filter.namespace.as_deref(), &wanted.filter.scope);
    let filter = wanted.filter.clone();
    let archive = state.history();
    let mut live = state.index.all_executions();
    live.extend(archive.map(|a| a.ended_unwritten()).unwrap_or_default());
    // A run that ended between the two snapshots is in both.
    live.sort_unstable_by(|a, b| a.uid.cmp(&b.uid));
    live.dedup_by(|a, b| a.uid == b.uid);
    // Each run counts once: one counted live (or ended and not yet written) may be written to
    // the archive while it is read, so its row is left out.
    let skip: HashSet<String> = match archive {
        Some(_) => live.iter().map(|e| e.uid.clone()).collect(),
        None => HashSet::new(),
    };
    let (rows, mut counted) = tokio::sync::mpsc::channel::<StoredRuns>(IN_FLIGHT);
    // What the sources were, once the archive is read: the last thing the answer needs.
    let (read, sources) = tokio::sync::oneshot::channel::<Freshness>();
    let counting = tokio::task::spawn_blocking(move || {
        let mut counter = Counter::new(&wanted);
        for entry in live.iter().filter(|entry| wanted.filter.matches(&***entry)) {
            counter.add(&entry.id.namespace, &RunFacts::of(&entry.view));
        }
        while let Some(chunk) = counted.blocking_recv() {
            chunk.iter().for_each(|(namespace, labels, facts)| counter.add_stored(namespace, labels, facts));
        }
        let freshness = sources.blocking_recv().ok();
        let complete = freshness.as_ref().is_some_and(|f| f.complete);
        InsightsAnswer { body: Json::from_bytes(Bytes::from(counter.finish_json(freshness))), complete }
    });
    if let Some(archive) = archive
        && let Err(unreadable) = archive.insight_rows((&filter, from), &skip, &rows).await
    {
        freshness.archive_unreadable(unreadable.to_string());
    }
    drop(rows);
    let _ = read.send(freshness);
    counting.await.map_err(|e| {
        tracing::error!(error = %e, "counting insights failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "counting insights failed")
    })
}
