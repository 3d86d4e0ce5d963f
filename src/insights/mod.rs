//! Delivery insights from every run, live or archived: deployments, change fail rate, recovery
//! and lead times, and durations with exact percentiles, per group and calendar bucket. No
//! I/O: the API hands in the runs (the index's and the archive's facts) and serves the answer.
//! Each definition, and how it compares with DORA's, GitLab's, Four Keys' and DevLake's, is in
//! docs/insights.md.

mod compute;
mod facts;
mod request;
mod values;

pub use compute::{Counter, compute};
pub use facts::{EnvironmentFacts, Millis, Outcome, RunFacts};
pub use request::{Buckets, DEFAULT_RANGE, GroupKey, InsightsRequest, Interval, MAX_BUCKETS, MAX_RANGE_DAYS};
pub use values::stats;

use std::collections::BTreeMap;

use crate::model::Phase;
use crate::query::Filterable;

/// A run's facts as the executions' filter sees them.
pub struct FilteredRun<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub facts: &'a RunFacts<'a>,
}

impl Filterable for FilteredRun<'_> {
    fn namespace(&self) -> &str {
        self.namespace
    }

    fn labels(&self) -> &BTreeMap<String, String> {
        self.labels
    }

    fn pipeline(&self) -> &str {
        &self.facts.pipeline
    }

    fn phase(&self) -> Phase {
        self.facts.phase
    }

    fn environments(&self) -> impl Iterator<Item = &str> {
        self.facts.environments.iter().map(|e| &*e.name)
    }
}

#[cfg(test)]
mod tests;
