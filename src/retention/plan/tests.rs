//! The planner over executions decoded from ConfigMaps, at a fixed `now`.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::decode::{Limits, SchemaRegistry};
use crate::fixtures::{Cm, Doc};
use crate::index::ExecutionEntry;
use crate::retention::policy::Policy;

const NOW: &str = "2026-11-01T12:00:00Z";

/// A run of `pipeline` in `ns` that started `minutes` before NOW; its ConfigMap was created
/// `created` minutes before NOW when given.
fn run(ns: &str, name: &str, pipeline: &str, phase: &str, minutes: i64, created: Option<i64>) -> Arc<ExecutionEntry> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let registry = SchemaRegistry::load(&dir, Limits::default()).unwrap();
    let now: Timestamp = NOW.parse().unwrap();
    let started = now - jiff::SignedDuration::from_mins(minutes);
    let mut cm = Cm::new(ns, name).doc(&Doc::new(pipeline).phase(phase).started_at(&started.to_string())).build();
    cm.metadata.creation_timestamp = created.map(|m| Time(now - jiff::SignedDuration::from_mins(m)));
    Arc::new(ExecutionEntry::new(registry.decode(&cm).unwrap_or_else(|r| panic!("{r:?}"))))
}

fn plan(policy: &str, runs: &[Arc<ExecutionEntry>]) -> Plan {
    Plan::make(&Policy::parse(policy).unwrap(), runs, NOW.parse().unwrap())
}

fn pruned(plan: &Plan) -> Vec<String> {
    plan.candidates.iter().map(|c| c.entry.id.name.clone()).collect()
}

/// Five finished runs of `web` (w1 oldest) and three of `api`, in team-a.
fn history() -> Vec<Arc<ExecutionEntry>> {
    let mut runs: Vec<_> =
        (1..=5).map(|i| run("team-a", &format!("w{i}"), "web", "Succeeded", 600 - 60 * i, None)).collect();
    runs.extend((1..=3).map(|i| run("team-a", &format!("a{i}"), "api", "Failed", 600 - 60 * i, None)));
    runs
}

#[test]
fn keep_newest_counts_per_pipeline_and_prunes_oldest_first() {
    let plan = plan("rules: [{name: all, keep: {newest: 2}}]", &history());
    assert_eq!(pruned(&plan), ["a1", "w1", "w2", "w3"]);
}

#[test]
fn keep_since_keeps_what_ended_within_it() {
    // w4 started 6 hours before now, w5 5 hours, a3 7 hours.
    let plan = plan("rules: [{name: all, keep: {since: 330m}}]", &history());
    assert_eq!(pruned(&plan), ["a1", "w1", "a2", "w2", "a3", "w3", "w4"]);
}

#[test]
fn keep_newest_and_since_together_keep_what_either_keeps() {
    let plan = plan("rules: [{name: all, keep: {newest: 1, since: 390m}}]", &history());
    assert_eq!(pruned(&plan), ["a1", "w1", "a2", "w2", "w3"]);
    let nothing = plan_of_everything();
    assert!(nothing.candidates.is_empty());
}

fn plan_of_everything() -> Plan {
    plan("rules: [{name: all}]", &history())
}

#[test]
fn only_terminal_runs_are_pruned_and_unselected_ones_are_kept() {
    let mut runs = history();
    runs.push(run("team-a", "old-running", "web", "Running", 9000, None));
    runs.push(run("team-a", "old-pending", "web", "Pending", 9000, None));
    runs.push(run("team-a", "old-unknown", "web", "Unknown", 9000, None));
    runs.push(run("team-b", "other", "web", "Succeeded", 9000, None));
    let plan = plan("rules: [{name: a, namespaces: [team-a], keep: {newest: 0}}]", &runs);
    assert_eq!(pruned(&plan).len(), 8, "{:?}", pruned(&plan));
    assert!(pruned(&plan).iter().all(|n| n.starts_with('w') || n.starts_with('a')));
    let body = plan.body("dryRun", &Scope::all(), 3);
    assert_eq!((body.rules[0].selected, body.rules[0].not_terminal, body.prunable), (11, 3, 8));
    assert_eq!(body.rules[0].first, ["team-a/a1", "team-a/w1", "team-a/a2"]);
}

#[test]
fn the_first_rule_that_selects_a_run_decides() {
    let mut runs = history();
    runs.push(run("team-b", "b1", "web", "Succeeded", 900, None));
    let policy = "rules: [{name: keep-web, selector: '', phases: [Succeeded]}, {name: prune, keep: {newest: 0}}]";
    let plan = plan(policy, &runs);
    assert_eq!(pruned(&plan), ["a1", "a2", "a3"], "the web runs are Succeeded: the first rule keeps them");
    let body = plan.body("dryRun", &Scope::only(BTreeSet::from(["team-b".to_owned()])), 10);
    assert_eq!((body.rules[0].selected, body.rules[1].selected, body.prunable), (1, 0, 0), "team-b's view only");
}

#[test]
fn a_configmap_older_than_its_payload_says_is_kept_or_aged_by_its_creation() {
    // Started 10 minutes ago by its payload, but its ConfigMap was created three days ago.
    let runs = vec![
        run("team-a", "skewed", "web", "Succeeded", 10, Some(3 * 1440)),
        run("team-a", "honest", "web", "Succeeded", 60, Some(61)),
    ];
    let kept = plan("rules: [{name: r, keep: {since: 1d}, clockSkew: {tolerance: 1h}}]", &runs);
    assert!(kept.candidates.is_empty());
    assert_eq!(kept.body("dryRun", &Scope::all(), 1).rules[0].skewed, 1);
    let aged = plan("rules: [{name: r, keep: {since: 1d}, clockSkew: {tolerance: 1h, action: configMapTime}}]", &runs);
    assert_eq!(pruned(&aged), ["skewed"]);
    let trusted = plan("rules: [{name: r, keep: {since: 1d}, clockSkew: {tolerance: 1h, action: payloadTime}}]", &runs);
    assert!(trusted.candidates.is_empty());
}
