//! Insights from runs' facts: counted per group and bucket, with exact percentiles. The runs
//! given are those the request's filter matched, every one counted at or after the range's
//! start (a failure's recovery may come after the range's end, so later runs are given too).

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use jiff::civil::Date;

use super::facts::{EnvironmentFacts, Millis, Outcome, RunFacts};
use super::request::{Buckets, GroupKey, InsightsRequest};
use crate::model::Phase;
use crate::wire::{Bucket, Deployments, Durations, InsightsBody, InsightsGroup, Rate, Recovery, Runs, Stats};

/// One run to count: its namespace and facts.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub namespace: &'a str,
    pub facts: &'a RunFacts,
}

/// What one group counted in one bucket.
#[derive(Default)]
struct Tally {
    deployments: Deployments,
    days: HashSet<Date>,
    runs: Runs,
    recovered: Vec<Millis>,
    open: u64,
    lead: Vec<Millis>,
    run_took: Vec<Millis>,
    environment_took: Vec<Millis>,
    gap: Vec<Millis>,
}

/// A group's tallies: the whole range's and each bucket's that has any.
#[derive(Default)]
struct GroupTally {
    total: Tally,
    buckets: BTreeMap<usize, Tally>,
}

/// The value a run shows for a group key, or for an environment's.
const NONE: &str = "";

/// The insights of `runs` as `request` asks them.
pub fn compute(request: &InsightsRequest, runs: &[Run<'_>]) -> InsightsBody {
    let recoveries = recoveries(runs);
    let mut groups: BTreeMap<Vec<&str>, GroupTally> = BTreeMap::new();
    let buckets = &request.buckets;
    for (index, run) in runs.iter().enumerate() {
        let wanted = |env: &&EnvironmentFacts| request.filter.environment.as_ref().is_none_or(|w| *w == env.name);
        for (position, env) in run.facts.environments.iter().enumerate().filter(|(_, e)| wanted(e)) {
            let Some(outcome) = env.outcome else { continue };
            let day = outcome.at_date(&request.tz);
            let recovery = recoveries.get(&(index, position)).copied();
            let key = group_key(&request.group_by, run, Some(&env.name));
            count(&mut groups, buckets, key, outcome.at, |t| t.deployment(env, outcome, day, recovery));
        }
        let Some(outcome) = run.facts.outcome else { continue };
        let environments: Vec<Option<&str>> = if request.group_by.contains(&GroupKey::Environment) {
            run.facts.environments.iter().filter(wanted).map(|e| Some(e.name.as_str())).collect()
        } else {
            vec![None]
        };
        for env in environments {
            count(&mut groups, buckets, group_key(&request.group_by, run, env), outcome.at, |t| t.run(outcome));
        }
    }
    body(request, groups)
}

/// Adds to `key`'s tallies of the bucket `at` falls in, and of the whole range.
fn count<'a>(
    groups: &mut BTreeMap<Vec<&'a str>, GroupTally>,
    buckets: &Buckets,
    key: Vec<&'a str>,
    at: Millis,
    add: impl Fn(&mut Tally),
) {
    let Some(bucket) = buckets.of(at) else { return };
    let group = groups.entry(key).or_default();
    add(&mut group.total);
    add(group.buckets.entry(bucket).or_default());
}

/// The grouped values of a run (and one of its environments).
fn group_key<'a>(group_by: &[GroupKey], run: &Run<'a>, environment: Option<&'a str>) -> Vec<&'a str> {
    let facts = run.facts;
    group_by
        .iter()
        .map(|key| match key {
            GroupKey::Pipeline => facts.pipeline.as_str(),
            GroupKey::Application => facts.application.as_str(),
            GroupKey::Environment => environment.unwrap_or(NONE),
            GroupKey::Namespace => run.namespace,
            GroupKey::Trigger => facts.trigger.as_deref().unwrap_or(NONE),
        })
        .collect()
}

/// Each failed deployment's recovery, by (run, environment) position: `Some(time)` to the next
/// success of the same application in the same environment and namespace, `None` while open.
fn recoveries(runs: &[Run<'_>]) -> HashMap<(usize, usize), Option<Millis>> {
    // Per namespace, application and environment: each deployment's time, result and position.
    type Line = Vec<(Millis, Phase, usize, usize)>;
    let mut lines: HashMap<(&str, &str, &str), Line> = HashMap::new();
    for (index, run) in runs.iter().enumerate() {
        for (position, env) in run.facts.environments.iter().enumerate() {
            let Some(deployed) = env.deployment() else { continue };
            let line = lines.entry((run.namespace, &run.facts.application, &env.name)).or_default();
            line.push((deployed.at, deployed.phase, index, position));
        }
    }
    let mut recoveries = HashMap::new();
    for mut line in lines.into_values() {
        // Successes before failures at the same instant: a failure is not ended by its twin.
        line.sort_unstable_by_key(|(at, phase, ..)| (*at, *phase == Phase::Failed));
        let mut next_success = None;
        for (at, phase, index, position) in line.into_iter().rev() {
            match phase {
                Phase::Succeeded => next_success = Some(at),
                _ => {
                    let recovery = next_success.filter(|s| *s > at).map(|s| s - at);
                    recoveries.insert((index, position), recovery);
                }
            }
        }
    }
    recoveries
}

impl Outcome {
    fn at_date(&self, tz: &jiff::tz::TimeZone) -> Option<Date> {
        let at = Timestamp::from_millisecond(self.at).ok()?;
        Some(at.to_zoned(tz.clone()).date())
    }
}

impl Tally {
    fn deployment(
        &mut self,
        env: &EnvironmentFacts,
        outcome: Outcome,
        day: Option<Date>,
        recovery: Option<Option<Millis>>,
    ) {
        let d = &mut self.deployments;
        match outcome.phase {
            Phase::Succeeded => {
                d.succeeded += 1;
                self.days.extend(day);
                self.lead.extend(env.lead);
            }
            Phase::Failed => {
                d.failed += 1;
                match recovery.flatten() {
                    Some(took) => self.recovered.push(took),
                    None => self.open += 1,
                }
            }
            Phase::Cancelled => d.cancelled += 1,
            _ => d.skipped += 1,
        }
        if env.deployment().is_some() {
            self.environment_took.extend(outcome.took);
            self.gap.extend(env.gap);
        }
    }

    fn run(&mut self, outcome: Outcome) {
        match outcome.phase {
            Phase::Succeeded => self.runs.succeeded += 1,
            Phase::Failed => self.runs.failed += 1,
            _ => self.runs.cancelled += 1,
        }
        self.run_took.extend(outcome.took);
    }

    fn bucket(mut self, start: Millis, end: Millis) -> Bucket {
        let d = Deployments { deployment_days: self.days.len() as u64, ..self.deployments.clone() };
        let (succeeded, failed) = (self.runs.succeeded, self.runs.failed);
        Bucket {
            start: time(start),
            end: time(end),
            change_fail_rate: Rate::of(d.failed, d.succeeded + d.failed),
            deployments: d,
            recovery: Recovery {
                recovered: self.recovered.len() as u64,
                open: self.open,
                time: stats(&mut self.recovered),
            },
            lead_time: stats(&mut self.lead),
            durations: Durations {
                run: stats(&mut self.run_took),
                environment: stats(&mut self.environment_took),
                promotion_gap: stats(&mut self.gap),
            },
            success_rate: Rate::of(succeeded, succeeded + failed),
            runs: self.runs,
        }
    }
}

/// Count, nearest-rank percentiles, extremes and mean of `values`, in seconds.
pub fn stats(values: &mut [Millis]) -> Stats {
    if values.is_empty() {
        return Stats::default();
    }
    values.sort_unstable();
    let n = values.len();
    let seconds = |ms: Millis| ms as f64 / 1000.0;
    // Nearest rank: the smallest value with at least p % of the values at or below it.
    let rank = |p: usize| seconds(values[(p * n).div_ceil(100).max(1) - 1]);
    let sum: i128 = values.iter().map(|v| i128::from(*v)).sum();
    Stats {
        count: n as u64,
        p50: Some(rank(50)),
        p90: Some(rank(90)),
        p95: Some(rank(95)),
        p99: Some(rank(99)),
        min: Some(seconds(values[0])),
        max: Some(seconds(values[n - 1])),
        mean: Some(sum as f64 / n as f64 / 1000.0),
    }
}

fn time(ms: Millis) -> String {
    Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

fn body(request: &InsightsRequest, groups: BTreeMap<Vec<&str>, GroupTally>) -> InsightsBody {
    let edges = &request.buckets.edges;
    let (from, to) = (request.buckets.from(), request.buckets.to);
    let groups = groups
        .into_iter()
        .map(|(key, mut tally)| {
            let buckets = (0..request.buckets.len())
                .map(|i| tally.buckets.remove(&i).unwrap_or_default().bucket(edges[i], edges[i + 1]))
                .collect();
            InsightsGroup {
                key: request.group_by.iter().zip(key).map(|(k, v)| (k.as_str().to_owned(), v.to_owned())).collect(),
                total: tally.total.bucket(from, to),
                buckets,
            }
        })
        .collect();
    InsightsBody {
        kind: "Insights".to_owned(),
        from: time(from),
        to: time(to),
        tz: request.tz_name.clone(),
        interval: request.interval.as_str().to_owned(),
        group_by: request.group_by.iter().map(|k| k.as_str().to_owned()).collect(),
        groups,
        freshness: None,
    }
}
