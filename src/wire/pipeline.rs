//! A pipeline as the API serves it: its latest run, where each environment stands, counts.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Summary;
use crate::model::Phase;

/// Where one environment of a pipeline stands: its latest attempted run.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineEnvironment {
    pub name: String,
    pub phase: Phase,
    pub version: String,
    pub execution: String,
}

/// Borrowed where the service serialises it, owned where a client decodes it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline<'a> {
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub application: Cow<'a, str>,
    pub latest_execution: Summary<'a>,
    pub environments: Vec<PipelineEnvironment>,
    pub execution_count: usize,
    /// Runs by phase (every phase but `Skipped`, zeros included).
    pub counts: BTreeMap<Cow<'a, str>, usize>,
}
