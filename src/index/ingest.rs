//! Feeds the index from any stream of watcher events, whichever source produced it.
//!
//! Events are taken in batches of whatever is ready. A batch's objects are decoded and
//! serialised on every core, off the async workers, before the index lock is taken; an object
//! the index already holds at the same version is not decoded again, so a relist of unchanged
//! data costs a lookup per object.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::Event;

use super::{Index, Listed, Prepared};
use crate::model::ReasonCode;
use crate::model::{Execution, ObjectRef, Reason, Rejection};
use crate::source::{Object, SourceError, SourceEvent};

/// Most events taken at once: bounds what a relist holds undecoded.
const BATCH: usize = 512;

/// One event of a batch, its object (if any) decoded or found unchanged.
enum Step {
    Init,
    Listed(Option<ObjectRef>),
    Done,
    Apply(Option<ObjectRef>),
    Delete(ObjectRef),
    Failed(SourceError),
}

/// Consumes `events` for the shard `source` until the stream ends, decoding each ConfigMap
/// with `decoder` (normally `SchemaRegistry::decode`). Errors are recorded on the shard and never
/// end ingestion; a relist is buffered (decoded) and swapped in whole.
pub async fn ingest<S, D, P>(index: Index, decoder: D, source: String, events: S)
where
    S: Stream<Item = SourceEvent>,
    D: Fn(&ConfigMap) -> P + Send + Sync + 'static,
    P: Into<Prepared>,
{
    let decoder = Arc::new(decoder);
    let mut batches = std::pin::pin!(events.ready_chunks(BATCH));
    let mut relist: Option<Vec<Listed>> = None;
    while let Some(batch) = batches.next().await {
        let (steps, fresh) = steps(&index, &source, batch);
        // Only a runtime shutting down cancels the blocking work: ingestion ends with it.
        let Some(prepared) = prepare_all(decoder.clone(), fresh).await else { return };
        if apply(&index, &source, steps, prepared, &mut relist).await.is_none() {
            return;
        }
    }
}

/// What a batch of events does, in order, and the objects of it to decode (the others the index
/// holds as they are).
fn steps(index: &Index, source: &str, batch: Vec<SourceEvent>) -> (Vec<Step>, Vec<Object>) {
    let mut steps = Vec::with_capacity(batch.len());
    let mut fresh = Vec::new();
    for event in batch {
        // `None` for an object to decode, the id of one the index holds as it is.
        let mut held = |object: Object| {
            let same = match &object {
                Object::ConfigMap(cm) => {
                    let rv = cm.metadata.resource_version.as_deref().unwrap_or_default();
                    Some(ObjectRef::of(cm)).filter(|id| index.holds(source, id, rv))
                }
                Object::Unreadable(_) => None,
            };
            if same.is_none() {
                fresh.push(object);
            }
            same
        };
        steps.push(match event {
            Ok(Event::Init) => Step::Init,
            Ok(Event::InitApply(object)) => Step::Listed(held(object)),
            Ok(Event::InitDone) => Step::Done,
            Ok(Event::Apply(object)) => Step::Apply(held(object)),
            Ok(Event::Delete(object)) => Step::Delete(object.id()),
            Err(error) => Step::Failed(error),
        });
    }
    (steps, fresh)
}

/// Applies `steps` to the index, with the objects decoded for them in order; a relist is
/// gathered in `relist` until it is done. `None` when the runtime is shutting down.
async fn apply(
    index: &Index,
    source: &str,
    steps: Vec<Step>,
    prepared: Vec<Prepared>,
    relist: &mut Option<Vec<Listed>>,
) -> Option<()> {
    let mut prepared = prepared.into_iter();
    for step in steps {
        match step {
            Step::Init => *relist = Some(Vec::new()),
            Step::Listed(same) => {
                let listed = match same {
                    Some(id) => Listed::Same(id),
                    None => Listed::Fresh(prepared.next().expect("one prepared object per fresh one")),
                };
                relist.get_or_insert_with(Vec::new).push(listed);
            }
            Step::Done => {
                let objects = relist.take().unwrap_or_default();
                tracing::debug!(source, objects = objects.len(), "synced");
                // On a blocking thread: a large relist is built on every core and swapped in
                // under the write lock.
                let (index, source) = (index.clone(), source.to_owned());
                tokio::task::spawn_blocking(move || index.reset(&source, objects)).await.ok()?;
            }
            Step::Apply(Some(_)) => {}
            Step::Apply(None) => index.apply(source, prepared.next().expect("one prepared object per fresh one")),
            Step::Delete(id) => index.delete(&id),
            Step::Failed(error) => {
                tracing::warn!(source, %error, "source failed; serving the last complete data and retrying");
                index.fail(source, error.to_string(), error.answered());
            }
        }
    }
    Some(())
}

/// Decodes and serialises `objects` in order, split across the machine's cores on blocking
/// threads.
async fn prepare_all<D, P>(decoder: Arc<D>, objects: Vec<Object>) -> Option<Vec<Prepared>>
where
    D: Fn(&ConfigMap) -> P + Send + Sync + 'static,
    P: Into<Prepared>,
{
    if objects.is_empty() {
        return Some(Vec::new());
    }
    let work = move || crate::parallel::map(&objects, |o| decode(&*decoder, o));
    tokio::task::spawn_blocking(work).await.ok()
}

/// Decodes one object: an unreadable file is a rejection as it is, and a panic in the decoder
/// becomes a rejection of that object alone.
fn decode<P: Into<Prepared>>(decoder: &impl Fn(&ConfigMap) -> P, object: &Object) -> Prepared {
    let cm = match object {
        Object::ConfigMap(cm) => cm,
        Object::Unreadable(u) => {
            return Prepared::from(Err::<Execution, _>(Rejection {
                id: object.id(),
                file: Some(u.file.clone()),
                resource_version: String::new(),
                reasons: vec![Reason::new(u.code, u.message.clone())],
            }));
        }
    };
    catch_unwind(AssertUnwindSafe(|| decoder(cm).into())).unwrap_or_else(|_| {
        tracing::error!(object = %ObjectRef::of(cm), "decoder panicked; object rejected");
        Prepared::from(Err::<Execution, _>(Rejection {
            id: ObjectRef::of(cm),
            file: None,
            resource_version: cm.metadata.resource_version.clone().unwrap_or_default(),
            reasons: vec![Reason::new(ReasonCode::Internal, "the decoder failed on this object; please report it")],
        }))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::channel::mpsc;

    use super::*;
    use crate::decode::{Limits, SchemaRegistry};
    use crate::fixtures::{Cm, Doc};

    #[tokio::test]
    async fn a_panicking_decoder_rejects_one_object_and_ingestion_goes_on() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let registry = SchemaRegistry::load(&dir, Limits::default()).unwrap();
        let decoder = move |cm: &ConfigMap| {
            if cm.metadata.name.as_deref() == Some("poison") {
                panic!("decoder bug");
            }
            registry.decode(cm)
        };
        let index = Index::new(Duration::from_secs(60));
        index.register("ns", Some("ns"));
        let (tx, rx) = mpsc::unbounded();
        let task = tokio::spawn(ingest(index.clone(), decoder, "ns".to_owned(), rx));
        let cm = |name: &str| Cm::new("ns", name).doc(&Doc::new("p")).build();
        for event in [
            Event::Init,
            Event::InitApply(cm("before")),
            Event::InitDone,
            Event::Apply(cm("poison")),
            Event::Apply(cm("after")),
        ] {
            tx.unbounded_send(Ok(crate::source::map_event(event, Object::ConfigMap))).unwrap();
        }
        drop(tx);
        task.await.expect("ingestion survives the panic");
        let rejections = index.rejections(None, &crate::query::Scope::all(), None, 10).items;
        assert_eq!(rejections.len(), 1);
        let rejection: serde_json::Value = serde_json::from_slice(&rejections[0].bytes).unwrap();
        assert_eq!(rejection["reasons"][0]["code"], "Internal");
        let served: Vec<_> = ["before", "after"]
            .iter()
            .filter(|n| index.get(&ObjectRef { namespace: "ns".into(), name: n.to_string() }).is_some())
            .collect();
        assert_eq!(served.len(), 2);
    }

    #[tokio::test]
    async fn a_relist_decodes_only_versions_the_index_does_not_hold() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let registry = SchemaRegistry::load(&dir, Limits::default()).unwrap();
        let decoded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = decoded.clone();
        let decoder = move |cm: &ConfigMap| {
            seen.lock().unwrap().push(cm.metadata.name.clone().unwrap_or_default());
            registry.decode(cm)
        };
        let index = Index::new(Duration::from_secs(60));
        index.register("ns", Some("ns"));
        let (tx, rx) = mpsc::unbounded();
        let task = tokio::spawn(ingest(index.clone(), decoder, "ns".to_owned(), rx));
        let cm = |name: &str, rv: &str| {
            let mut cm = Cm::new("ns", name).doc(&Doc::new("p")).build();
            cm.metadata.resource_version = Some(rv.to_owned());
            Object::ConfigMap(cm)
        };
        let relist = |objects: Vec<Object>| {
            let events = std::iter::once(Event::Init).chain(objects.into_iter().map(Event::InitApply));
            events.chain(std::iter::once(Event::InitDone)).collect::<Vec<_>>()
        };
        for event in relist(vec![cm("a", "1"), cm("b", "1")]) {
            tx.unbounded_send(Ok(event)).unwrap();
        }
        // The second relist is checked against the index only once the first is in it.
        let mut synced = index.subscribe();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while index.counts().0 < 2 {
            assert!(std::time::Instant::now() < deadline, "the first relist is applied");
            let _ = tokio::time::timeout(Duration::from_millis(100), synced.changed()).await;
        }
        for event in relist(vec![cm("a", "1"), cm("b", "2")]) {
            tx.unbounded_send(Ok(event)).unwrap();
        }
        drop(tx);
        task.await.unwrap();
        assert_eq!(*decoded.lock().unwrap(), ["a", "b", "b"], "a at the same version is not decoded again");
        let b = index.get(&ObjectRef { namespace: "ns".into(), name: "b".into() }).unwrap();
        assert_eq!(b.resource_version, "2");
        assert!(index.get(&ObjectRef { namespace: "ns".into(), name: "a".into() }).is_some(), "a is kept");
    }
}
