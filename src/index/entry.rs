//! Index entries: what is kept of an object, with its responses serialised once on write.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::SortKey;
use crate::model::{Application, EnvironmentStatus, ExecutionView, Phase};
use crate::validate::{Execution, ObjectRef, Rejection};

/// A served execution. The document itself is kept only as its serialised detail response.
pub struct ExecutionEntry {
    pub id: ObjectRef,
    pub labels: BTreeMap<String, String>,
    pub resource_version: String,
    pub sort_time: Timestamp,
    pub view: ExecutionView,
    /// `GET .../executions/{name}` body.
    pub detail: Bytes,
    /// One item of a list body.
    pub summary: Bytes,
    pub(super) shard: Arc<str>,
    /// Index revision and wall time of the last change to this entry.
    pub revision: u64,
    pub changed_at: Timestamp,
}

/// The compact form lists serve.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    namespace: &'a str,
    name: &'a str,
    pipeline: &'a str,
    application: &'a Application,
    phase: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<&'a str>,
    environments: Vec<EnvironmentPhase<'a>>,
    resource_version: &'a str,
}

#[derive(Serialize)]
struct EnvironmentPhase<'a> {
    name: &'a str,
    phase: Phase,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail<'a> {
    namespace: &'a str,
    name: &'a str,
    labels: &'a BTreeMap<String, String>,
    resource_version: &'a str,
    execution: &'a Value,
}

impl ExecutionEntry {
    pub(super) fn new(e: Execution, shard: Arc<str>, revision: u64, now: Timestamp) -> Self {
        let detail = to_bytes(&Detail {
            namespace: &e.id.namespace,
            name: &e.id.name,
            labels: &e.labels,
            resource_version: &e.resource_version,
            execution: &e.document,
        });
        let summary = to_bytes(&summary(&e.id, &e.view, &e.resource_version));
        ExecutionEntry {
            id: e.id,
            labels: e.labels,
            resource_version: e.resource_version,
            sort_time: e.sort_time,
            view: e.view,
            detail,
            summary,
            shard,
            revision,
            changed_at: now,
        }
    }

    pub(super) fn sort_key(&self) -> SortKey {
        (Reverse(self.sort_time), self.id.clone())
    }

    pub fn has_environment(&self, name: &str) -> bool {
        self.view.environments.iter().any(|e| e.name == name)
    }

    pub(super) fn summary_value(&self) -> Summary<'_> {
        summary(&self.id, &self.view, &self.resource_version)
    }
}

fn summary<'a>(id: &'a ObjectRef, view: &'a ExecutionView, rv: &'a str) -> Summary<'a> {
    Summary {
        namespace: &id.namespace,
        name: &id.name,
        pipeline: &view.pipeline,
        application: &view.application,
        phase: view.phase,
        started_at: view.started_at.as_deref(),
        finished_at: view.finished_at.as_deref(),
        environments: view.environments.iter().map(environment_phase).collect(),
        resource_version: rv,
    }
}

fn environment_phase(e: &EnvironmentStatus) -> EnvironmentPhase<'_> {
    EnvironmentPhase { name: &e.name, phase: e.phase }
}

/// A ConfigMap that is not served, with its reasons.
pub struct RejectionEntry {
    pub rejection: Rejection,
    pub body: Bytes,
    pub(super) shard: Arc<str>,
    pub revision: u64,
    pub changed_at: Timestamp,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RejectionBody<'a> {
    #[serde(flatten)]
    rejection: &'a Rejection,
    rejected_at: String,
}

impl RejectionEntry {
    pub(super) fn new(rejection: Rejection, shard: Arc<str>, revision: u64, now: Timestamp) -> Self {
        let body = to_bytes(&RejectionBody { rejection: &rejection, rejected_at: now.to_string() });
        RejectionEntry { rejection, body, shard, revision, changed_at: now }
    }
}

/// Serialises a value the index owns; these types cannot fail to serialise.
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "serialising a response failed");
        b"null".to_vec()
    }))
}
