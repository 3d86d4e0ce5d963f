//! An execution and a rejection as the service knows them: a ConfigMap's identity, its typed
//! view and document, or the reasons it is not served.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ExecutionView;
use crate::quote::shorten;

/// A ConfigMap's identity, which is also the execution's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// A ConfigMap's namespace and name.
    pub fn of(cm: &ConfigMap) -> Self {
        ObjectRef {
            namespace: cm.metadata.namespace.clone().unwrap_or_default(),
            name: cm.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A validated execution: the typed view plus the whole document, and only the ConfigMap
/// metadata the API serves.
#[derive(Clone, Debug)]
pub struct Execution {
    pub id: ObjectRef,
    pub labels: BTreeMap<String, String>,
    /// The ConfigMap's uid: a ConfigMap deleted and created again under its name is another.
    pub uid: String,
    pub resource_version: String,
    /// `startedAt`, or the ConfigMap's creation time for runs that have not started.
    pub sort_time: Timestamp,
    /// When the API server created the ConfigMap: a clock the writer does not set.
    pub created: Option<Timestamp>,
    pub view: ExecutionView,
    pub document: Value,
}

/// Why a ConfigMap is not served as an execution. Reasons are kept for the writer to read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    #[serde(flatten)]
    pub id: ObjectRef,
    /// The file (and document) of the directory source that could not be read as a ConfigMap;
    /// such a rejection has no namespace, and its name is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub resource_version: String,
    pub reasons: Vec<Reason>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    pub code: ReasonCode,
    /// JSON pointer into the document, for schema violations and duplicate keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    pub message: String,
}

impl Reason {
    /// Messages quote what the writer sent: they are cut to a bounded length.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Reason { code, pointer: None, message: shorten(message.into()) }
    }
}

/// Why a ConfigMap is not served, as a machine reads it. Writers and dashboards match on these
/// names: a new one is a new variant here, and nothing else spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ReasonCode {
    /// No `execution.yaml`, `execution.yml` or `execution.json` key.
    NoDocument,
    /// More than one of those keys.
    SeveralDocuments,
    TooLarge,
    Unparsable,
    DuplicateKey,
    TooDeep,
    /// An `apiVersion` and `kind` no schema describes.
    UnknownKind,
    SchemaViolation,
    /// The decoder failed: a bug of execwatch's, never the writer's.
    Internal,
    /// A file of the directory source that could not be read as a ConfigMap.
    Unreadable,
    /// Only `execwatch validate` reports it: a manifest the service's selector would not see.
    Unlabelled,
    /// A code this build does not know, as a client of a newer server reads it.
    #[serde(other)]
    Other,
}

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NoDocument => "NoDocument",
            ReasonCode::SeveralDocuments => "SeveralDocuments",
            ReasonCode::TooLarge => "TooLarge",
            ReasonCode::Unparsable => "Unparsable",
            ReasonCode::DuplicateKey => "DuplicateKey",
            ReasonCode::TooDeep => "TooDeep",
            ReasonCode::UnknownKind => "UnknownKind",
            ReasonCode::SchemaViolation => "SchemaViolation",
            ReasonCode::Internal => "Internal",
            ReasonCode::Unreadable => "Unreadable",
            ReasonCode::Unlabelled => "Unlabelled",
            ReasonCode::Other => "Other",
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
