//! Feeds the index from any stream of watcher events, whichever source produced it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::Event;

use super::{Decoded, Index};
use crate::source::SourceError;
use crate::validate::{ObjectRef, Reason, Rejection, SchemaRegistry};

/// Consumes `events` for the shard `source` until the stream ends. Errors are recorded on the
/// shard and never end ingestion; a relist is buffered and swapped in whole.
pub async fn ingest<S>(index: Index, registry: Arc<SchemaRegistry>, source: String, events: S)
where
    S: Stream<Item = Result<Event<ConfigMap>, SourceError>>,
{
    let mut events = std::pin::pin!(events);
    let mut relist: Option<Vec<Decoded>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => relist = Some(Vec::new()),
            Ok(Event::InitApply(cm)) => relist
                .get_or_insert_with(Vec::new)
                .push(decode(&registry, &cm)),
            Ok(Event::InitDone) => {
                let objects = relist.take().unwrap_or_default();
                tracing::debug!(source, objects = objects.len(), "synced");
                index.reset(&source, objects);
            }
            Ok(Event::Apply(cm)) => index.apply(&source, decode(&registry, &cm)),
            Ok(Event::Delete(cm)) => index.delete(&object_ref(&cm)),
            Err(error) => {
                tracing::warn!(source, %error, "source failed; serving the last complete data and retrying");
                index.fail(&source, error.to_string(), error.answered());
            }
        }
    }
}

/// Decodes one ConfigMap; a panic in the decoder becomes a rejection of that object alone.
fn decode(registry: &SchemaRegistry, cm: &ConfigMap) -> Decoded {
    catch_unwind(AssertUnwindSafe(|| registry.decode(cm))).unwrap_or_else(|_| {
        tracing::error!(object = %object_ref(cm), "decoder panicked; object rejected");
        Err(Rejection {
            id: object_ref(cm),
            resource_version: cm.metadata.resource_version.clone().unwrap_or_default(),
            reasons: vec![Reason::new(
                "Internal",
                "the decoder failed on this object; please report it",
            )],
        })
    })
}

fn object_ref(cm: &ConfigMap) -> ObjectRef {
    ObjectRef {
        namespace: cm.metadata.namespace.clone().unwrap_or_default(),
        name: cm.metadata.name.clone().unwrap_or_default(),
    }
}
