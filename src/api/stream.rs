//! Live streams (Server-Sent Events) of an execution list, one execution, or pipelines, asked
//! for with `Accept: text/event-stream` or `?watch=true`.
//!
//! A stream sends a `snapshot` (what the same request without streaming answers), then an event
//! per change: `added`, `modified` and `deleted`, as objects enter, change within or leave what
//! the stream follows. Every event's `id` is the change's place in the index's history, so a
//! client that reconnects with `Last-Event-ID` gets exactly what it missed; when the history no
//! longer holds that, it gets `resync` with a fresh snapshot. A stream ends with `closed` (and
//! its reason) on shutdown, when its module is switched off, or when the caller's access
//! changes; a one-execution stream ends after `deleted`.
//!
//! Every stream reads the one index: a task per stream follows the shared history from its own
//! position and writes into a small bounded channel. A slow reader only makes its own task wait;
//! once the history has moved past it, it resynchronises, and a reader that takes nothing for
//! `STALLED` is closed, so memory stays bounded whatever clients do.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use jiff::Timestamp;
use tokio::sync::mpsc;
use warp::Reply;
use warp::http::HeaderMap;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use warp::reply::Response;

use super::conditional::Negotiation;
use super::params::Params;
use super::{Answer, ApiError, AppState, ListBody};
use crate::access::Caller;
use crate::index::{Change, Changed, DetailUnavailable, Lost};
use crate::model::ObjectRef;
use crate::model::Resource;
use crate::query::{ExecutionFilter, Scope};
use crate::quote::quote;
use crate::wire::Json;

/// A comment this often keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How soon `EventSource` reconnects after a stream ends.
const RETRY: Duration = Duration::from_secs(2);
/// Events a stream may have waiting for its reader (each at most a document's detail).
const BUFFER: usize = 16;
/// A comment, sent when nothing else was.
const HEARTBEAT_FRAME: &[u8] = b":heartbeat\n\n";
/// A reader that takes no event for this long is closed.
const STALLED: Duration = Duration::from_secs(30);
/// Why a one-execution stream ends.
const DELETED: &str = "the execution was deleted";
const ARCHIVED: &str = "the execution's ConfigMap is gone and the archive keeps its last state: it no longer changes";

/// Whether a request asks for a stream: `Accept: text/event-stream`, or `?watch=true`.
pub fn wanted(how: &Negotiation, params: &Params) -> Result<bool, ApiError> {
    let watch = params.parsed("watch", "true or false", |s| s.parse::<bool>().ok())?;
    Ok(watch.unwrap_or(how.events))
}

/// Whether `Accept` values name `text/event-stream`.
pub fn accepts_events<'a>(mut accept: impl Iterator<Item = &'a str>) -> bool {
    accept.any(|v| v.split(',').any(|t| t.trim().starts_with("text/event-stream")))
}

/// An event's `id`: the index that issued it (see `Index::instance`) and the change's place in
/// its history, sealed: that history is every namespace's, so a plain place would tell a
/// caller how much changed in namespaces they may not read. The place is XORed with a pad
/// drawn from the index's secret and a nonce fresh for each id (`instance:nonce·sealed`, hex),
/// so two ids say nothing of the distance between them; only the index that issued one can
/// open it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventId {
    pub instance: u32,
    nonce: u64,
    sealed: u64,
}

impl EventId {
    /// The id of change `seq` of `index`.
    pub fn seal(index: &crate::index::Index, seq: u64) -> EventId {
        let nonce = fastrand::u64(..);
        EventId { instance: index.instance(), nonce, sealed: seq ^ pad(index.id_secret(), nonce) }
    }

    /// The change this id names, where `index` issued it.
    pub fn open(&self, index: &crate::index::Index) -> Option<u64> {
        (self.instance == index.instance()).then(|| self.sealed ^ pad(index.id_secret(), self.nonce))
    }
}

/// The first 64 bits of SHA-256(secret ‖ nonce): a pad as unpredictable as the secret.
fn pad(secret: &[u8; 32], nonce: u64) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(secret).chain_update(nonce.to_be_bytes()).finalize();
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}:{:016x}{:016x}", self.instance, self.nonce, self.sealed)
    }
}

impl std::str::FromStr for EventId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (instance, rest) = s.trim().split_once(':').ok_or(())?;
        if rest.len() != 32 || !rest.is_ascii() {
            return Err(());
        }
        let hex = |h: &str| u64::from_str_radix(h, 16).map_err(drop);
        Ok(EventId {
            instance: u32::from_str_radix(instance, 16).map_err(drop)?,
            nonce: hex(&rest[..16])?,
            sealed: hex(&rest[16..])?,
        })
    }
}

/// `Last-Event-ID`, if it has the form of ours.
pub fn last_event_id(headers: &HeaderMap) -> Option<EventId> {
    headers.get("last-event-id")?.to_str().ok()?.parse().ok()
}

/// Completes once `caller` may no longer read what the stream follows.
pub fn access_lost(
    state: &AppState,
    caller: &Caller,
    namespace: Option<String>,
    scope: Scope,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(super::authz::access_lost(state.clone(), caller.clone(), namespace, scope))
}

/// A list's snapshot: its first page, and the last change that page reflects.
pub type Snapshot = Box<dyn Fn(&AppState) -> BoxFuture<'static, (ListBody, u64)> + Send + Sync>;

/// What a stream follows.
pub enum Followed {
    /// A list of executions.
    Executions {
        filter: ExecutionFilter,
        snapshot: Snapshot,
    },
    Execution(ObjectRef),
    /// Pipelines of one namespace (or any) within a scope.
    Pipelines {
        namespace: Option<String>,
        scope: Scope,
        snapshot: Snapshot,
    },
}

/// What ends a stream early: its module going away, the caller's access changing.
pub struct Ends {
    pub resource: Resource,
    pub access_lost: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Starts a stream for `caller`, counted against their limits while it lasts.
pub fn start(
    state: &AppState,
    caller: &Caller,
    followed: Followed,
    ends: Ends,
    resume: Option<EventId>,
) -> Result<Response, ApiError> {
    let held = state.limits.hold(caller.subject.as_ref())?;
    let (tx, mut rx) = mpsc::channel(BUFFER);
    let follower = Follower { state: state.clone(), followed, tx };
    tokio::spawn(async move {
        follower.run(ends, resume).await;
        drop(held);
    });
    let frames = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok::<_, std::convert::Infallible>)));
    let mut response = warp::reply::stream(frames).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// A stream's task. It is held for as long as the stream is open (thousands at once), so it
/// keeps only what every change needs: events go out as the bytes of their frames, and the
/// rarely taken paths (a snapshot, the last event) are boxed, not part of its future.
struct Follower {
    state: AppState,
    followed: Followed,
    tx: mpsc::Sender<Bytes>,
}

/// Why a stream stops: the reader left or stalled (nothing more to say), or a reason to tell.
enum Stop {
    Gone,
    Closed(String),
}

impl Follower {
    async fn run(mut self, ends: Ends, resume: Option<EventId>) {
        let Ends { resource, mut access_lost } = ends;
        let mut changes = self.state.index.subscribe();
        let mut withdrawn = std::pin::pin!(self.state.modules.withdrawn(resource));
        let state = self.state.clone();
        let mut shutting_down = std::pin::pin!(state.health.shutting_down());
        // However long its grant lasts, a stream ends and is opened (and authorised) again.
        let life = state.limits.max_stream_life();
        let mut expired = std::pin::pin!(tokio::time::sleep(life));
        // An id another replica (or an earlier process) issued says nothing about this history:
        // such a client resynchronises.
        let resume_at = resume.and_then(|id| id.open(&self.state.index));
        let mut position = match resume_at {
            Some(seq) => seq,
            None => match Box::pin(self.snapshot(if resume.is_some() { "resync" } else { "snapshot" })).await {
                Ok(seq) => seq,
                Err(stop) => return Box::pin(self.close(stop)).await,
            },
        };
        let mut catch_up = resume_at.is_some();
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        let stop = loop {
            if !catch_up {
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = heartbeat.tick() => {
                        match self.send(Bytes::from_static(HEARTBEAT_FRAME)).await {
                            Ok(()) => continue,
                            Err(stop) => break stop,
                        }
                    }
                    _ = self.tx.closed() => break Stop::Gone,
                    _ = &mut shutting_down => break Stop::Closed("the service is shutting down; reconnect to another replica".into()),
                    why = &mut withdrawn => break Stop::Closed(why.0),
                    _ = &mut access_lost => break Stop::Closed("access changed; reconnect to see what you may read now".into()),
                    _ = &mut expired => break Stop::Closed(format!(
                        "streams last at most {}; reconnect with Last-Event-ID to resume", humantime::format_duration(life)
                    )),
                }
            }
            catch_up = false;
            let step = match self.state.index.changes_since(position, BUFFER) {
                Ok(changes) => {
                    // A full batch may have more behind it: take it before waiting again.
                    catch_up = changes.len() == BUFFER;
                    self.forward(&changes, &mut position).await
                }
                Err(Lost) => Box::pin(self.snapshot("resync")).await.map(|seq| {
                    position = seq;
                    None
                }),
            };
            match step {
                Ok(None) => {}
                Ok(Some(reason)) => break Stop::Closed(reason.into()),
                Err(stop) => break stop,
            }
        };
        Box::pin(self.close(stop)).await;
    }

    /// Ends the stream, with a last `closed` event that says why, unless the reader is gone.
    async fn close(&self, stop: Stop) {
        if let Stop::Closed(reason) = stop {
            let data = serde_json::json!({ "reason": reason }).to_string();
            let _ = self.send(frame("closed", None, data.as_bytes(), false)).await;
        }
    }

    /// Sends the state as it is now; the position it reflects.
    async fn snapshot(&mut self, name: &str) -> Result<u64, Stop> {
        let (data, seq) = match &self.followed {
            Followed::Executions { snapshot, .. } | Followed::Pipelines { snapshot, .. } => {
                let (page, seq) = snapshot(&self.state).await;
                (page.render(), seq)
            }
            Followed::Execution(id) => match self.state.index.get_as_of(id) {
                (Some(entry), seq) => (entry.detail().await.map_err(|e| unreadable(id, e))?, seq),
                (None, seq) => {
                    if let Some(archive) = self.state.history()
                        && let Ok(Some(archived)) = archive.deleted(&self.state.index, id).await
                    {
                        self.send(frame(name, Some(self.id(seq)), &archived, true)).await?;
                        return Err(Stop::Closed(ARCHIVED.into()));
                    }
                    let gone = serde_json::json!({ "namespace": id.namespace, "name": id.name });
                    self.send(frame("deleted", Some(self.id(seq)), gone.to_string().as_bytes(), false)).await?;
                    return Err(Stop::Closed(DELETED.into()));
                }
            },
        };
        self.send(frame(name, Some(self.id(seq)), &data, true)).await?;
        Ok(seq)
    }

    /// Sends the changes this stream follows and moves `position` past them all; why it ends,
    /// once a one-execution stream has sent its execution's last state.
    async fn forward(&mut self, changes: &[Change], position: &mut u64) -> Result<Option<&'static str>, Stop> {
        for change in changes {
            *position = change.seq;
            if let Followed::Execution(id) = &self.followed {
                Box::pin(read_details(&change.what, id)).await?;
            }
            let Some((name, data)) = self.event_for(&change.what) else { continue };
            self.send(frame(name, Some(self.id(change.seq)), &data, false)).await?;
            if let (Followed::Execution(_), Changed::Execution { after: None, archived, .. }) =
                (&self.followed, &change.what)
            {
                return Ok(Some(if name == "deleted" || archived.is_none() { DELETED } else { ARCHIVED }));
            }
        }
        Ok(None)
    }

    /// The event a change makes for this stream, if any.
    fn event_for(&self, what: &Changed) -> Option<(&'static str, Bytes)> {
        match (&self.followed, what) {
            (Followed::Executions { filter, .. }, Changed::Execution { before, after, archived }) => {
                let before = before.as_ref().filter(|e| filter.matches(&***e));
                let after = after.as_ref().filter(|e| filter.matches(&***e));
                if let (Some(gone), Some(at)) = (before, self.archives(archived)) {
                    return Some(("modified", Json::archived(&gone.summary.bytes, at).bytes));
                }
                transition(before.map(|e| &e.summary.bytes), after.map(|e| &e.summary.bytes))
            }
            (Followed::Execution(id), Changed::Execution { before, after, archived }) => {
                let before = before.as_ref().filter(|e| *e.id == *id);
                let after = after.as_ref().filter(|e| *e.id == *id);
                // Read by `read_details` first.
                if let (Some(gone), Some(at)) = (before, self.archives(archived)) {
                    return Some(("modified", Json::archived(gone.detail.loaded()?, at).bytes));
                }
                transition(before.and_then(|e| e.detail.loaded()), after.and_then(|e| e.detail.loaded()))
            }
            (Followed::Pipelines { namespace, scope, .. }, Changed::Pipeline { before, after }) => {
                let follows = |ns: &str| namespace.as_deref().is_none_or(|want| want == ns) && scope.allows(ns);
                let before = before.as_ref().filter(|p| follows(&p.namespace));
                let after = after.as_ref().filter(|p| follows(&p.namespace));
                let history = self.state.history().is_some();
                let before = before.and_then(|p| p.body(history)).map(|b| &b.bytes);
                let after = after.and_then(|p| p.body(history)).map(|b| &b.bytes);
                // A change to the other body only.
                if before == after {
                    return None;
                }
                transition(before, after)
            }
            _ => None,
        }
    }

    /// When an execution that left was archived, if lists now serve it from the archive: it
    /// is then modified (marked archived), not deleted.
    fn archives(&self, archived: &Option<Timestamp>) -> Option<Timestamp> {
        archived.filter(|_| self.state.history().is_some())
    }

    /// The id of the event for change `seq`.
    fn id(&self, seq: u64) -> EventId {
        EventId::seal(&self.state.index, seq)
    }

    /// Waits for room in the buffer, up to `STALLED`.
    async fn send(&self, frame: Bytes) -> Result<(), Stop> {
        match tokio::time::timeout(STALLED, self.tx.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => {
                tracing::info!(after = ?STALLED, "closing a stream whose reader took nothing");
                Err(Stop::Gone)
            }
        }
    }
}

/// Reads from the archive the details of `id` in a change that a warm start has not read yet,
/// so that its event can be made; when the archive cannot answer, the stream ends and says why.
async fn read_details(what: &Changed, id: &ObjectRef) -> Result<(), Stop> {
    let Changed::Execution { before, after, .. } = what else { return Ok(()) };
    for entry in [before, after].into_iter().flatten().filter(|e| *e.id == *id) {
        entry.detail().await.map_err(|e| unreadable(id, e))?;
    }
    Ok(())
}

/// Why a one-execution stream ends when its detail cannot be read.
fn unreadable(id: &ObjectRef, e: DetailUnavailable) -> Stop {
    Stop::Closed(format!("execution {} is live, but {e}; reconnect", quote(&id.name)))
}

/// `added`, `modified` or `deleted`, from what the stream saw before and after a change.
fn transition(before: Option<&Bytes>, after: Option<&Bytes>) -> Option<(&'static str, Bytes)> {
    match (before, after) {
        (None, Some(after)) => Some(("added", after.clone())),
        (Some(_), Some(after)) => Some(("modified", after.clone())),
        (Some(before), None) => Some(("deleted", before.clone())),
        (None, None) => None,
    }
}

/// An event's frame: its name, its data (serialised JSON, so one line; a line break would
/// start another `data:` line), its id, and with `retry`, how soon `EventSource` reconnects.
fn frame(name: &str, id: Option<EventId>, data: &[u8], retry: bool) -> Bytes {
    use std::fmt::Write as _;
    let mut frame = BytesMut::with_capacity(data.len() + 96);
    frame.put_slice(b"event:");
    frame.put_slice(name.as_bytes());
    for line in data.split(|b| *b == b'\n') {
        frame.put_slice(b"\ndata:");
        frame.put_slice(line);
    }
    // Writing to a `BytesMut` cannot fail.
    if let Some(id) = id {
        let _ = write!(frame, "\nid:{id}");
    }
    if retry {
        let _ = write!(frame, "\nretry:{}", RETRY.as_millis());
    }
    frame.put_slice(b"\n\n");
    frame.freeze()
}

#[cfg(test)]
mod tests {
    use super::{Ends, Followed, Follower};

    /// A stream's task lives as long as the stream, thousands at once: its snapshot and last
    /// event are boxed, not part of its future.
    #[tokio::test]
    async fn a_stream_task_is_small() {
        let state = crate::api::tests::state(crate::index::Index::new(std::time::Duration::from_secs(60)));
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let id = crate::model::ObjectRef { namespace: "a".into(), name: "b".into() };
        let follower = Follower { state, followed: Followed::Execution(id), tx };
        let ends = Ends { resource: crate::model::Resource::Executions, access_lost: Box::pin(std::future::pending()) };
        let size = std::mem::size_of_val(&follower.run(ends, None));
        assert!(size <= 2 * 1024, "a stream's task takes {size} bytes");
    }
}
