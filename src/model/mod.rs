//! The vocabulary every other room speaks, with no I/O: executions and rejections, phases and
//! their rules, the API's resources, and Kubernetes' name rules.
//!
//! Only the fields every schema version must keep are typed here; the whole document is kept
//! as validated JSON, so a new schema version with extra fields needs no code change.

mod execution;
pub mod names;

pub use execution::{Execution, ObjectRef, Reason, ReasonCode, Rejection};

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

    /// Parses a phase, or says which are: the one message for a phase a user mistyped.
    pub fn parse_or_list(s: &str) -> Result<Phase, String> {
        Phase::parse(s).ok_or_else(|| format!("{s:?} is not a phase ({})", Phase::LIST))
    }

    /// Every phase, as messages list them.
    pub const LIST: &str = "Pending, Running, Succeeded, Failed, Cancelled, Skipped, Unknown";

    /// A phase a run (or an environment) does not leave.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Cancelled | Phase::Skipped)
    }

    /// Work began: it left `Pending` and was not skipped.
    pub fn is_attempted(self) -> bool {
        !matches!(self, Phase::Pending | Phase::Skipped)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When the revision was committed, where the writer knows: lead times start there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_time: Option<String>,
}

/// What started a run. Its type is one of the schema's (`GitPush`, `Manual`, …), kept as text so
/// that a schema version with a new one needs no code change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: String,
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
/// Serialised, it reads back as itself: the archive keeps it for a warm start (`served_view`).
/// A field added here is missing from the views stored before: such a change must have warm
/// starts read those rows' views from their details again (`Stored::into_entry`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    pub pipeline: String,
    pub application: Application,
    /// Required by every schema version so far; absent only in views read back from a list's
    /// summary, which does not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub environments: Vec<EnvironmentStatus>,
}

/// The API group of execwatch's kinds, resource and labels: spelled here once (and in the
/// schemas and manifests it ships).
pub const GROUP: &str = "pipelines.gitops.dev";
/// The apiVersion execution documents are written with.
pub const EXECUTION_API_VERSION: &str = "pipelines.gitops.dev/v1alpha1";
/// The label selector that marks a ConfigMap as an execution, by default.
pub const DEFAULT_SELECTOR: &str = "pipelines.gitops.dev/execution=true";
/// The label writers set to a run's pipeline (as the examples do), for `-l` filters.
pub const PIPELINE_LABEL: &str = "pipelines.gitops.dev/pipeline";

/// The resources the API serves, each the name of the module that serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Executions,
    Pipelines,
    Rejections,
    /// Retention's plan: `/api/v1/retention/plan`.
    Retention,
    /// Delivery metrics: `/api/v1/insights`.
    Insights,
    /// Notifications' deliveries: `/api/v1/namespaces/{namespace}/deliveries`.
    Deliveries,
}

impl Resource {
    /// The resources `/api/v1/{resource}` lists.
    pub const LISTED: [Resource; 3] = [Resource::Executions, Resource::Pipelines, Resource::Rejections];

    /// As paths, access reviews and messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Executions => "executions",
            Resource::Pipelines => "pipelines",
            Resource::Rejections => "rejections",
            Resource::Retention => "retention",
            Resource::Insights => "insights",
            Resource::Deliveries => "deliveries",
        }
    }

    /// A listed resource by its path segment.
    pub fn listed(segment: &str) -> Option<Resource> {
        Resource::LISTED.into_iter().find(|r| r.as_str() == segment)
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every module, in the order they are enabled.
pub const MODULES: [ModuleName; 7] = [
    ModuleName::Executions,
    ModuleName::Pipelines,
    ModuleName::Rejections,
    ModuleName::History,
    ModuleName::Retention,
    ModuleName::Insights,
    ModuleName::Notifications,
];

/// A module, by the name `--modules`, BackendModule objects and `/api/v1/modules` use: each is
/// also the API resource it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModuleName {
    Executions,
    Pipelines,
    Rejections,
    /// The archive (`--archive`): present only where one is configured.
    History,
    /// Pruning by a retention policy (`--retention`): present only where one is configured.
    Retention,
    /// Delivery metrics over live and archived runs.
    Insights,
    /// Signed CloudEvents to teams' subscriptions (`--notify-allow`): present only with an
    /// archive and a cluster.
    Notifications,
}

impl ModuleName {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleName::Executions => "executions",
            ModuleName::Pipelines => "pipelines",
            ModuleName::Rejections => "rejections",
            ModuleName::History => "history",
            ModuleName::Retention => "retention",
            ModuleName::Insights => "insights",
            ModuleName::Notifications => "notifications",
        }
    }
}

impl std::fmt::Display for ModuleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModuleName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        MODULES.into_iter().find(|m| m.as_str() == name).ok_or_else(|| {
            let known: Vec<&str> = MODULES.iter().map(|m| m.as_str()).collect();
            format!("unknown module {name:?}; known modules: {}", known.join(", "))
        })
    }
}
