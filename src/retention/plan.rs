//! What a policy would prune of the live executions now. Pure, so the plan endpoint, the
//! `retention plan` command and the pruner agree by construction.
//!
//! Each execution goes to the first rule that selects it (none: kept). Of a rule's executions,
//! only terminal ones (`Phase::is_terminal`) can be pruned; they are grouped by namespace
//! and pipeline, newest first by start, and one is kept when it is among the newest `keep.newest`
//! of its group or finished (else started) within `keep.since`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use super::policy::{Policy, Rule, SkewAction};
use crate::index::ExecutionEntry;
use crate::model::{Execution, ExecutionView, ObjectRef};
use crate::query::Scope;

/// What a plan reads of a run: a live one of the index, or one the command line decoded.
pub trait PlannedRun {
    fn run(&self) -> RunFacts<'_>;
}

/// A run's identity, labels and view, its start (or its ConfigMap's creation, for a run not
/// started) and when the API server created its ConfigMap, where known.
pub struct RunFacts<'a> {
    pub id: &'a ObjectRef,
    pub labels: &'a BTreeMap<String, String>,
    pub view: &'a ExecutionView,
    pub sort_time: Timestamp,
    pub created: Option<Timestamp>,
}

impl PlannedRun for ExecutionEntry {
    fn run(&self) -> RunFacts<'_> {
        let (id, labels, view) = (&*self.id, &self.labels, &self.view);
        RunFacts { id, labels, view, sort_time: self.sort_time, created: self.created }
    }
}

impl PlannedRun for Execution {
    fn run(&self) -> RunFacts<'_> {
        let (id, labels, view) = (&self.id, &self.labels, &self.view);
        RunFacts { id, labels, view, sort_time: self.sort_time, created: self.created }
    }
}

/// An execution the policy would prune, and the rule that says so.
pub struct Candidate<R = ExecutionEntry> {
    pub entry: Arc<R>,
    pub rule: usize,
}

impl<R> Clone for Candidate<R> {
    fn clone(&self) -> Self {
        Candidate { entry: self.entry.clone(), rule: self.rule }
    }
}

/// What one rule selected in one namespace.
#[derive(Clone, Copy, Default)]
struct Tally {
    selected: usize,
    not_terminal: usize,
    skewed: usize,
}

pub struct Plan<R = ExecutionEntry> {
    /// Each rule's name, and the namespaces it names (`None`: every one).
    rules: Vec<(String, Option<BTreeSet<String>>)>,
    tallies: BTreeMap<(usize, String), Tally>,
    /// Oldest first: the order the pruner deletes in.
    pub candidates: Vec<Candidate<R>>,
}

/// `GET /api/v1/retention/plan`: per rule, over the namespaces the caller may read.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanBody {
    /// `dryRun` (nothing is deleted) or `enforce`.
    pub mode: &'static str,
    pub prunable: usize,
    pub rules: Vec<RulePlan>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RulePlan {
    pub name: String,
    /// Live executions this rule is the first to select.
    pub selected: usize,
    /// Of those, not terminal: never pruned.
    pub not_terminal: usize,
    /// Of those, kept because their ConfigMap is older than their payload says (`clockSkew`).
    pub skewed: usize,
    /// What the policy would prune, once the archive holds it.
    pub prunable: usize,
    /// The first of them in the order they would go (oldest first), as `namespace/name`.
    pub first: Vec<String>,
}

impl Rule {
    fn selects(&self, e: &RunFacts) -> bool {
        self.namespaces.as_ref().is_none_or(|ns| ns.contains(&e.id.namespace))
            && self.phases.as_ref().is_none_or(|phases| phases.contains(&e.view.phase))
            && self.selector.matches(e.labels)
    }

    /// When the run started and when it ended, as this rule reads them; `None` when its clock
    /// skew keeps it.
    fn times(&self, e: &RunFacts) -> Option<(Timestamp, Timestamp)> {
        let finished = e.view.finished_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
        let payload = (e.sort_time, finished.unwrap_or(e.sort_time).max(e.sort_time));
        let Some(created) = e.created else { return Some(payload) };
        // Either way: a run that claims to be older than its ConfigMap is as suspect as one that
        // claims to be newer (pruned at once by a policy of age, it may have ended seconds ago).
        let skewed = e.sort_time.duration_since(created).as_secs_f64().abs() > self.clock_skew.tolerance.as_secs_f64();
        match self.clock_skew.action {
            _ if !skewed => Some(payload),
            SkewAction::Keep => None,
            SkewAction::ConfigMapTime => Some((created, created)),
            SkewAction::PayloadTime => Some(payload),
        }
    }
}

impl<R: PlannedRun> Plan<R> {
    pub fn make(policy: &Policy, executions: &[Arc<R>], now: Timestamp) -> Plan<R> {
        let mut tallies: BTreeMap<(usize, String), Tally> = BTreeMap::new();
        type Group<'e, R> = Vec<(Timestamp, Timestamp, &'e Arc<R>)>;
        let mut groups: HashMap<(usize, &str, &str), Group<'_, R>> = HashMap::new();
        for entry in executions {
            let e = entry.run();
            let Some(rule) = policy.rules.iter().position(|r| r.selects(&e)) else { continue };
            let tally = tallies.entry((rule, e.id.namespace.clone())).or_default();
            tally.selected += 1;
            if !e.view.phase.is_terminal() {
                tally.not_terminal += 1;
                continue;
            }
            match policy.rules[rule].times(&e) {
                None => tally.skewed += 1,
                Some((started, ended)) => groups
                    .entry((rule, e.id.namespace.as_str(), e.view.pipeline.as_str()))
                    .or_default()
                    .push((started, ended, entry)),
            }
        }
        let mut candidates = Vec::new();
        for ((rule, _, _), mut group) in groups {
            let keep = policy.rules[rule].keep;
            group.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.run().id.name.cmp(&b.2.run().id.name)));
            for (i, (_, ended, e)) in group.into_iter().enumerate() {
                let recent =
                    keep.since.is_some_and(|since| now.duration_since(ended).as_secs_f64() < since.as_secs_f64());
                if !(keep.everything() || keep.newest.is_some_and(|n| i < n) || recent) {
                    candidates.push((ended, Candidate { entry: e.clone(), rule }));
                }
            }
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.entry.run().id.cmp(b.1.entry.run().id)));
        let rules = policy.rules.iter().map(|r| (r.name.clone(), r.namespaces.clone())).collect();
        Plan { rules, tallies, candidates: candidates.into_iter().map(|(_, c)| c).collect() }
    }

    pub fn rule_name(&self, rule: usize) -> &str {
        &self.rules[rule].0
    }

    /// The plan over the namespaces `scope` allows, with the first `first` names per rule.
    pub fn body(&self, mode: &'static str, scope: &Scope, first: usize) -> PlanBody {
        let mut rules: Vec<RulePlan> = self
            .rules
            .iter()
            .map(|(name, _)| RulePlan {
                name: name.clone(),
                selected: 0,
                not_terminal: 0,
                skewed: 0,
                prunable: 0,
                first: Vec::new(),
            })
            .collect();
        for ((rule, _), tally) in self.tallies.iter().filter(|((_, ns), _)| scope.allows(ns)) {
            let r = &mut rules[*rule];
            r.selected += tally.selected;
            r.not_terminal += tally.not_terminal;
            r.skewed += tally.skewed;
        }
        for c in self.candidates.iter().filter(|c| scope.allows(&c.entry.run().id.namespace)) {
            let r = &mut rules[c.rule];
            r.prunable += 1;
            if r.first.len() < first {
                r.first.push(c.entry.run().id.to_string());
            }
        }
        // A rule's name can say what a namespace the caller may not read is about: only rules
        // that may select something in the caller's scope are shown.
        let shown = |(_, namespaces): &(String, Option<BTreeSet<String>>)| {
            scope.is_all() || namespaces.as_ref().is_none_or(|named| named.iter().any(|ns| scope.allows(ns)))
        };
        let rules: Vec<RulePlan> =
            rules.into_iter().zip(&self.rules).filter(|(_, rule)| shown(rule)).map(|(r, _)| r).collect();
        PlanBody { mode, prunable: rules.iter().map(|r| r.prunable).sum(), rules }
    }
}

#[cfg(test)]
mod tests;
