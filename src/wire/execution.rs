//! Executions and rejections as the API serves them, and as a client reads them back.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Application, EnvironmentStatus, ExecutionView, ObjectRef, Phase, Rejection};

/// The compact form lists serve. Borrowed where the service serialises it, owned where a client
/// decodes it (`Summary<'static>`).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub pipeline: Cow<'a, str>,
    pub application: Cow<'a, Application>,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Cow<'a, str>>,
    pub environments: Vec<EnvironmentPhase<'a>>,
    pub resource_version: Cow<'a, str>,
    /// Only on an execution served from the archive: its ConfigMap is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// When the archive saw its ConfigMap deleted (or unlabelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvironmentPhase<'a> {
    pub name: Cow<'a, str>,
    pub phase: Phase,
}

/// One execution, whole: `GET .../executions/{name}` and a one-execution stream's events.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Detail<'a> {
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub labels: Cow<'a, BTreeMap<String, String>>,
    pub resource_version: Cow<'a, str>,
    /// The document as the writer stored it, validated against its kind's schema.
    #[schema(value_type = Object)]
    pub execution: Cow<'a, Value>,
    /// Only on an execution served from the archive: its ConfigMap is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// When the archive saw its ConfigMap deleted (or unlabelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

/// A run's summary as lists serve it.
pub fn summary<'a>(id: &'a ObjectRef, view: &'a ExecutionView, rv: &'a str) -> Summary<'a> {
    Summary {
        namespace: Cow::Borrowed(&id.namespace),
        name: Cow::Borrowed(&id.name),
        pipeline: Cow::Borrowed(&view.pipeline),
        application: Cow::Borrowed(&view.application),
        phase: view.phase,
        started_at: view.started_at.as_deref().map(Cow::Borrowed),
        finished_at: view.finished_at.as_deref().map(Cow::Borrowed),
        environments: view.environments.iter().map(environment_phase).collect(),
        resource_version: Cow::Borrowed(rv),
        archived: None,
        deleted_at: None,
    }
}

fn environment_phase(e: &EnvironmentStatus) -> EnvironmentPhase<'_> {
    EnvironmentPhase { name: Cow::Borrowed(&e.name), phase: e.phase }
}

/// A rejected ConfigMap and why, as rejection lists serve it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectionBody<'a> {
    #[serde(flatten)]
    pub rejection: Cow<'a, Rejection>,
    pub rejected_at: String,
}
