//! Insights as the API serves them (`/api/v1/insights`): per group, per time bucket, counts with
//! their numerators and denominators and durations with exact percentiles. docs/insights.md
//! defines each number.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Freshness;

/// The answer of `/api/v1/insights`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsightsBody {
    pub kind: String,
    /// The range counted: `from` moved back to the start of its bucket, `to` as asked.
    pub from: String,
    pub to: String,
    /// The IANA time zone whose calendar the buckets follow.
    pub tz: String,
    /// `day`, `week` (ISO, from Monday), `month` or `whole`.
    pub interval: String,
    pub group_by: Vec<String>,
    /// One per combination of the grouped values that has anything in the range, in their order.
    pub groups: Vec<InsightsGroup>,
    /// The sources not counted, as lists name them: an unsynced namespace, an unreadable archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InsightsGroup {
    /// The grouped values (`{"application": "web", "environment": "prod"}`); empty when nothing
    /// is grouped.
    pub key: BTreeMap<String, String>,
    /// The whole range at once: its percentiles are of every value, not of the buckets'.
    pub total: Bucket,
    /// Every bucket of the range, in order, empty ones included.
    pub buckets: Vec<Bucket>,
}

/// What happened in one bucket (or the whole range) of one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub start: String,
    pub end: String,
    pub deployments: Deployments,
    /// Failed deployments of attempted ones (succeeded + failed).
    pub change_fail_rate: Rate,
    pub recovery: Recovery,
    /// From the commit (or the run's start) to each successful deployment.
    pub lead_time: Stats,
    pub durations: Durations,
    pub runs: Runs,
    /// Succeeded runs of those that succeeded or failed.
    pub success_rate: Rate,
}

/// Environments of runs reaching a terminal phase in the bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployments {
    pub succeeded: u64,
    pub failed: u64,
    /// Cancelled and skipped environments are counted apart: they are not deployments.
    pub cancelled: u64,
    pub skipped: u64,
    /// Days (in the time zone) with at least one successful deployment.
    pub deployment_days: u64,
}

/// `count` of `of`, and their ratio (none when `of` is 0): never a bare percentage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rate {
    pub count: u64,
    pub of: u64,
    pub value: Option<f64>,
}

impl Rate {
    pub fn of(count: u64, of: u64) -> Self {
        Rate { count, of, value: (of > 0).then(|| count as f64 / of as f64) }
    }
}

/// Failed deployments of the bucket, by whether a later success of the same application in the
/// same environment (and namespace) ended them; `time` is from the failure to that success.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recovery {
    pub recovered: u64,
    /// Not followed by a success yet.
    pub open: u64,
    pub time: Stats,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    /// Runs, start to finish.
    pub run: Stats,
    /// Each deployment, the environment's start to finish.
    pub environment: Stats,
    /// The wait between an environment's finish and the next one's start.
    pub promotion_gap: Stats,
}

/// Runs that ended in the bucket, by phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Runs {
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// A distribution of durations, in seconds, exact: percentiles by nearest rank.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
}
