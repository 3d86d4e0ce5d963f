//! Kubernetes Events that say a ConfigMap was pruned, on its namespace, where RBAC allows: an
//! operator reading `kubectl get events` sees what retention deleted and why. Best effort: a
//! refused Event never holds a prune back.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use crate::index::ExecutionEntry;

pub async fn pruned(client: kube::Client, entry: Arc<ExecutionEntry>, rule: String) {
    let (namespace, name) = (&entry.id.namespace, &entry.id.name);
    let now = Time(Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("ConfigMap".to_owned()),
            namespace: Some(namespace.clone()),
            name: Some(name.clone()),
            uid: Some(entry.uid.clone()),
            resource_version: Some(entry.resource_version.clone()),
            ..ObjectReference::default()
        },
        reason: Some("Pruned".to_owned()),
        message: Some(format!(
            "execution {name} (pipeline {}, {:?}) deleted by retention rule {rule}; the archive keeps it",
            entry.view.pipeline, entry.view.phase
        )),
        type_: Some("Normal".to_owned()),
        source: Some(EventSource { component: Some("execwatch".to_owned()), host: None }),
        reporting_component: Some("execwatch".to_owned()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(client, namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(namespace = %namespace, error = %e, "cannot record an Event for a pruned ConfigMap");
    }
}
