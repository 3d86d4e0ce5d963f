//! Feeds the index from any stream of watcher events, whichever source produced it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::Event;

use super::{Decoded, Index};
use crate::source::{Object, SourceEvent, Unreadable};
use crate::validate::{ObjectRef, Reason, Rejection};

/// Consumes `events` for the shard `source` until the stream ends, decoding each ConfigMap
/// with `decoder` (normally `SchemaRegistry::decode`). Errors are recorded on the shard and never
/// end ingestion; a relist is buffered and swapped in whole.
pub async fn ingest<S, D>(index: Index, decoder: D, source: String, events: S)
where
    S: Stream<Item = SourceEvent>,
    D: Fn(&ConfigMap) -> Decoded,
{
    let mut events = std::pin::pin!(events);
    let mut relist: Option<Vec<Decoded>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => relist = Some(Vec::new()),
            Ok(Event::InitApply(object)) => relist.get_or_insert_with(Vec::new).push(decode(&decoder, object)),
            Ok(Event::InitDone) => {
                let objects = relist.take().unwrap_or_default();
                tracing::debug!(source, objects = objects.len(), "synced");
                index.reset(&source, objects);
            }
            Ok(Event::Apply(object)) => index.apply(&source, decode(&decoder, object)),
            Ok(Event::Delete(Object::ConfigMap(cm))) => index.delete(&object_ref(&cm)),
            Ok(Event::Delete(Object::Unreadable(u))) => index.delete(&unreadable_ref(&u)),
            Err(error) => {
                tracing::warn!(source, %error, "source failed; serving the last complete data and retrying");
                index.fail(&source, error.to_string(), error.answered());
            }
        }
    }
}

/// Decodes one object: an unreadable file is a rejection as it is, and a panic in the decoder
/// becomes a rejection of that object alone.
fn decode(decoder: &impl Fn(&ConfigMap) -> Decoded, object: Object) -> Decoded {
    let cm = match object {
        Object::ConfigMap(cm) => cm,
        Object::Unreadable(u) => {
            return Err(Rejection {
                id: unreadable_ref(&u),
                file: Some(u.file),
                resource_version: String::new(),
                reasons: vec![Reason::new(u.code, u.message)],
            });
        }
    };
    catch_unwind(AssertUnwindSafe(|| decoder(&cm))).unwrap_or_else(|_| {
        tracing::error!(object = %object_ref(&cm), "decoder panicked; object rejected");
        Err(Rejection {
            id: object_ref(&cm),
            file: None,
            resource_version: cm.metadata.resource_version.clone().unwrap_or_default(),
            reasons: vec![Reason::new("Internal", "the decoder failed on this object; please report it")],
        })
    })
}

/// An unreadable file has no namespace; its name is the file's.
fn unreadable_ref(u: &Unreadable) -> ObjectRef {
    ObjectRef { namespace: String::new(), name: u.file.clone() }
}

fn object_ref(cm: &ConfigMap) -> ObjectRef {
    ObjectRef {
        namespace: cm.metadata.namespace.clone().unwrap_or_default(),
        name: cm.metadata.name.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::channel::mpsc;

    use super::*;
    use crate::fixtures::{Cm, Doc};
    use crate::validate::{Limits, SchemaRegistry};

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
        let rejections = index.rejections(None, &crate::index::Scope::all());
        assert_eq!(rejections.len(), 1);
        assert_eq!(rejections[0].rejection.reasons[0].code, "Internal");
        let served: Vec<_> = ["before", "after"]
            .iter()
            .filter(|n| index.get(&ObjectRef { namespace: "ns".into(), name: n.to_string() }).is_some())
            .collect();
        assert_eq!(served.len(), 2);
    }
}
