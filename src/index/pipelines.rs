//! Pipelines, resolved from their executions: the latest run, where each environment stands,
//! and counts by phase.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Index;
use super::entry::Summary;
use crate::model::Phase;

/// Where one environment of a pipeline stands: its latest attempted run.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineEnvironment {
    pub name: String,
    pub phase: Phase,
    pub version: String,
    pub execution: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub application: &'a str,
    pub latest_execution: Summary<'a>,
    pub environments: Vec<PipelineEnvironment>,
    pub execution_count: usize,
    pub counts: BTreeMap<&'static str, usize>,
}

/// An environment counts as attempted by a run once it has left `Pending` and was not skipped.
fn attempted(phase: Phase) -> bool {
    !matches!(phase, Phase::Pending | Phase::Skipped)
}

/// One resolved pipeline, serialised.
pub struct ResolvedPipeline {
    pub namespace: String,
    pub name: String,
    pub body: bytes::Bytes,
}

impl Index {
    /// Every pipeline, ordered by namespace and name, serialised while the read lock is held so
    /// nothing is copied.
    pub fn pipelines(&self) -> Vec<ResolvedPipeline> {
        let state = self.read();
        // Newest first, so the first run seen of a pipeline is its latest.
        let mut pipelines: BTreeMap<(&str, &str), Pipeline<'_>> = BTreeMap::new();
        for (_, id) in &state.order {
            let e = &state.executions[id];
            let p = pipelines.entry((&e.id.namespace, &e.view.pipeline)).or_insert_with(|| Pipeline {
                namespace: &e.id.namespace,
                name: &e.view.pipeline,
                application: &e.view.application.name,
                latest_execution: e.summary_value(),
                environments: Vec::new(),
                execution_count: 0,
                counts: Phase::ALL.iter().filter(|p| **p != Phase::Skipped).map(|p| (p.as_str(), 0)).collect(),
            });
            p.execution_count += 1;
            *p.counts.entry(e.view.phase.as_str()).or_default() += 1;
            for env in &e.view.environments {
                let known = p.environments.iter().position(|k| k.name == env.name);
                let fresh = PipelineEnvironment {
                    name: env.name.clone(),
                    phase: env.phase,
                    version: e.view.application.version.clone(),
                    execution: e.id.name.clone(),
                };
                match known {
                    None => p.environments.push(fresh),
                    // An older run fills in an environment the newer ones have not reached yet.
                    Some(i) if !attempted(p.environments[i].phase) && attempted(env.phase) => p.environments[i] = fresh,
                    Some(_) => {}
                }
            }
        }
        pipelines
            .values()
            .map(|p| ResolvedPipeline {
                namespace: p.namespace.to_owned(),
                name: p.name.to_owned(),
                body: super::entry::to_bytes(p),
            })
            .collect()
    }
}
