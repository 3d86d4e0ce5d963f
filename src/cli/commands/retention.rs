//! `execwatch retention plan`: what a retention policy would prune, from a directory of
//! manifests or from the cluster, before anything is deleted. The plan is the one the service
//! makes (`retention::Plan`), over the executions the service would serve.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;

use crate::decode::SchemaRegistry;
use crate::files::read_bounded;
use crate::model::Execution;
use crate::query::Scope;
use crate::retention::{Mode, Plan, PlanBody, Policy};
use crate::selector::Selector;
use crate::source::dir::{is_manifest, max_file_bytes, parse_manifests};

/// The executions of every manifest file in `dir` (not below it) that the selector selects and
/// the schemas accept: what `serve --from-dir` would serve.
pub fn executions_in_dir(
    dir: &Path,
    registry: &SchemaRegistry,
    selector: &Selector,
) -> anyhow::Result<Vec<Arc<Execution>>> {
    let max = max_file_bytes(registry.limits().max_document_bytes);
    let mut executions = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("cannot read {}", dir.display()))?.path();
        if !path.file_name().and_then(|n| n.to_str()).is_some_and(is_manifest) {
            continue;
        }
        let Ok(text) = read_bounded(&path, max) else { continue };
        for cm in parse_manifests(&text).into_iter().filter_map(|parsed| parsed.ok().flatten()) {
            executions.extend(decode(registry, selector, &cm));
        }
    }
    Ok(executions)
}

/// The executions of `namespaces` in the cluster the kubeconfig (or the pod) points at.
pub async fn executions_in_cluster(
    namespaces: &[String],
    registry: &SchemaRegistry,
    selector: &Selector,
) -> anyhow::Result<Vec<Arc<Execution>>> {
    let client = kube::Client::try_default().await.context("cannot configure a Kubernetes client")?;
    let mut executions = Vec::new();
    for namespace in namespaces {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let mut params = ListParams::default().labels(&selector.to_string()).limit(500);
        loop {
            let page = api.list(&params).await.with_context(|| format!("cannot list ConfigMaps in {namespace}"))?;
            executions.extend(page.items.iter().filter_map(|cm| decode(registry, selector, cm)));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(executions)
}

fn decode(registry: &SchemaRegistry, selector: &Selector, cm: &ConfigMap) -> Option<Arc<Execution>> {
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    if !selector.matches(&labels) {
        return None;
    }
    registry.decode(cm).ok().map(Arc::new)
}

/// The plan of `policy` over `executions` now, every namespace counted.
pub fn plan(policy: &Policy, executions: &[Arc<Execution>], first: usize) -> PlanBody {
    Plan::make(policy, executions, Timestamp::now()).body(Mode::DryRun.as_str(), &Scope::all(), first)
}

/// The plan as a table, one row per rule.
pub fn write_table(plan: &PlanBody, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "{:<24} {:>8} {:>12} {:>7} {:>8}  FIRST", "RULE", "SELECTED", "NOT-TERMINAL", "SKEWED", "PRUNABLE")?;
    for rule in &plan.rules {
        let first = if rule.first.is_empty() { "-".to_owned() } else { rule.first.join(", ") };
        writeln!(
            out,
            "{:<24} {:>8} {:>12} {:>7} {:>8}  {first}",
            rule.name, rule.selected, rule.not_terminal, rule.skewed, rule.prunable
        )?;
    }
    writeln!(out, "{} execution ConfigMaps would be pruned, each once the archive holds it.", plan.prunable)
}
