//! Watches: newline-delimited `{"type","object"}` events over a chunked response, resumed from
//! the store's history, with bookmarks, server-side timeouts and the fault switches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::labels::Selector;
use bytes::Bytes;
use futures::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Inner;
use crate::http::Body;
use crate::store::{ApiError, Event, Resource};

#[derive(Clone, Debug, Default)]
pub struct FieldSelector {
    pub name: Option<String>,
    pub namespace: Option<String>,
}

pub struct WatchRequest {
    pub resource: Resource,
    pub namespace: String,
    pub labels: Selector,
    pub fields: FieldSelector,
    /// `None`: start with synthetic ADDED events for what exists now.
    pub rv: Option<u64>,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
}

pub fn matches(object: &Value, labels: &Selector, fields: &FieldSelector) -> bool {
    let meta = |f: &str| object["metadata"][f].as_str().unwrap_or("").to_owned();
    let object_labels: BTreeMap<String, String> =
        serde_json::from_value(object["metadata"]["labels"].clone()).unwrap_or_default();
    labels.matches(&object_labels)
        && fields.name.as_ref().is_none_or(|n| *n == meta("name"))
        && fields.namespace.as_ref().is_none_or(|n| *n == meta("namespace"))
}

type Chunk = Result<Frame<Bytes>, std::io::Error>;

pub fn serve(inner: Arc<Inner>, req: WatchRequest) -> Result<Response<Body>, ApiError> {
    let current = inner.store().rv;
    if let Some(rv) = req.rv.filter(|rv| *rv > current) {
        // kube-apiserver waits briefly for a resourceVersion it has not reached, then refuses.
        return Err(ApiError::new(504, "Timeout", format!("Too large resource version: {rv}, current: {current}")));
    }
    let (tx, mut rx) = mpsc::channel::<Chunk>(256);
    let id = inner.next_watch_id.fetch_add(1, Ordering::SeqCst);
    inner.open_watches.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        run(&inner, id, req, &tx).await;
        inner.open_watches.fetch_sub(1, Ordering::SeqCst);
    });
    let body = StreamBody::new(stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(BodyExt::boxed(body))
        .expect("valid response"))
}

fn line(kind: &str, object: &Value) -> Chunk {
    let mut bytes = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Ok(Frame::data(Bytes::from(bytes)))
}

fn gone(rv: u64, compacted: u64) -> Chunk {
    line("ERROR", &ApiError::new(410, "Expired", format!("too old resource version: {rv} ({compacted})")).status())
}

/// The event as this watch sees it: label selectors turn modifications into ADDED or DELETED
/// when an object starts or stops matching, as the apiserver's watch cache does.
fn visible(req: &WatchRequest, e: &Event) -> Option<&'static str> {
    if e.resource != req.resource.id()
        || (!req.namespace.is_empty() && e.object["metadata"]["namespace"] != req.namespace.as_str())
    {
        return None;
    }
    let now = matches(&e.object, &req.labels, &req.fields);
    match (e.kind, e.old.as_ref().map(|o| matches(o, &req.labels, &req.fields))) {
        ("MODIFIED", Some(true)) if !now => Some("DELETED"),
        ("MODIFIED", Some(false)) if now => Some("ADDED"),
        ("MODIFIED", Some(false)) => None,
        (kind, _) if now => Some(kind),
        _ => None,
    }
}

/// Reads what a watch at `last` has not seen yet. `Err` carries the 410 that ends the watch.
fn pending(inner: &Inner, req: &WatchRequest, last: &mut u64) -> Result<Vec<Chunk>, Chunk> {
    let store = inner.store();
    if *last < store.compacted {
        return Err(gone(*last, store.compacted));
    }
    let events = store
        .history
        .iter()
        .filter(|e| e.rv > *last)
        .filter_map(|e| visible(req, e).map(|kind| line(kind, &e.object)))
        .collect();
    *last = (*last).max(store.rv);
    Ok(events)
}

/// Synthetic ADDED events for what exists now, for a watch without a resourceVersion.
fn current(inner: &Inner, req: &WatchRequest) -> (Vec<Chunk>, u64) {
    let store = inner.store();
    let events = store
        .list(&req.resource, &req.namespace)
        .filter(|(_, o)| matches(o, &req.labels, &req.fields))
        .map(|(_, o)| line("ADDED", o))
        .collect();
    (events, store.rv)
}

async fn send_all(tx: &mpsc::Sender<Chunk>, chunks: Vec<Chunk>) -> bool {
    for chunk in chunks {
        if tx.send(chunk).await.is_err() {
            return false;
        }
    }
    true
}

async fn run(inner: &Inner, id: u64, req: WatchRequest, tx: &mpsc::Sender<Chunk>) {
    let mut changes = inner.changes.subscribe();
    let mut drops = inner.drops.subscribe();
    drops.mark_unchanged();
    let mut ends = inner.ends.subscribe();
    ends.mark_unchanged();
    let deadline = tokio::time::sleep(req.timeout.unwrap_or(Duration::from_secs(1800)));
    tokio::pin!(deadline);
    let mut bookmarks = tokio::time::interval(inner.bookmark_interval);
    bookmarks.tick().await;
    let mut last = match req.rv {
        Some(rv) => rv,
        None => {
            let (events, rv) = current(inner, &req);
            if !send_all(tx, events).await {
                return;
            }
            rv
        }
    };
    loop {
        if !inner.store().resources().contains(&req.resource) {
            // Its CRD was deleted: the server closes the watch, as kube-apiserver does.
            return;
        }
        if id < inner.faults().silence_below {
            // Silent but open, until the client gives up or the watch is dropped.
            tokio::select! {
                _ = tx.closed() => {}
                _ = drops.changed() => {}
                _ = ends.changed() => {}
            }
            return;
        }
        match pending(inner, &req, &mut last) {
            Ok(events) => {
                if !send_all(tx, events).await {
                    return;
                }
            }
            Err(expired) => {
                inner.count(format!("gone {} {}", req.resource.id(), req.namespace));
                let _ = tx.send(expired).await;
                return;
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = bookmarks.tick(), if req.bookmarks => {
                let mark = json!({"kind": req.resource.kind, "apiVersion": req.resource.api_version(), "metadata": {"resourceVersion": last.to_string()}});
                if tx.send(line("BOOKMARK", &mark)).await.is_err() {
                    return;
                }
            }
            _ = drops.changed() => {
                let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "watch dropped by k8s-sim"))).await;
                return;
            }
            _ = &mut deadline => return,
            _ = ends.changed() => return,
            _ = tx.closed() => return,
        }
    }
}
