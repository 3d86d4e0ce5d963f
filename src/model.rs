//! The typed view of an execution document that the index sorts, filters and summarises by.
//!
//! Only the fields every schema version must keep are typed here; the whole document is kept
//! as validated JSON, so a new schema version with extra fields needs no code change.

use serde::{Deserialize, Serialize};

/// The overall phase of a run. `Unknown` is honest: the writer could not tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
    Unknown,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Pending,
        Phase::Running,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Cancelled,
        Phase::Skipped,
        Phase::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Cancelled => "Cancelled",
            Phase::Skipped => "Skipped",
            Phase::Unknown => "Unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    pub name: String,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// What the index needs from a validated document (unknown fields are ignored on purpose).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    pub pipeline: String,
    pub application: Application,
    pub phase: Phase,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    pub environments: Vec<EnvironmentStatus>,
}

/// The resources the API serves, each the name of the module that serves it.
pub const EXECUTIONS: &str = "executions";
pub const PIPELINES: &str = "pipelines";
pub const REJECTIONS: &str = "rejections";
/// Retention's plan: `/api/v1/retention/plan`.
pub const RETENTION: &str = "retention";
