//! Insights from runs' facts, counted as they stream past (a year of an archive is never held
//! in memory at once): per group and bucket, with exact percentiles. The runs given are those
//! the request's filter matched, every one counted at or after the range's start; a failure's
//! recovery may come after the range's end, so later runs are given too.

use std::collections::{BTreeMap, HashMap};

use super::facts::{EnvironmentFacts, Millis, Outcome, RunFacts};
use super::request::{Buckets, GroupKey, InsightsRequest};
use crate::model::Phase;
use crate::wire::{Bucket, Deployments, Durations, InsightsBody, InsightsGroup, Rate, Recovery, Runs, Stats};

/// Counts runs for one request: `add` each, then `finish`.
pub struct Counter<'r> {
    request: &'r InsightsRequest,
    /// The range's day edges in its time zone, for deployment days.
    days: Buckets,
    values: Interner,
    /// Groups by their values (ids, `UNSET` past the request's keys), and their tallies.
    groups: HashMap<GroupId, usize>,
    tallies: Vec<BTreeMap<usize, Tally>>,
    /// Per namespace, application and environment: every deployment, for recoveries.
    lines: HashMap<[u32; 3], Vec<Mark>>,
}

type GroupId = [u32; GroupKey::ALL.len()];
const UNSET: u32 = u32::MAX;

/// One deployment in its line; a failure counted in the range knows where its recovery goes.
struct Mark {
    at: Millis,
    failed: bool,
    /// The group and bucket the failure is counted in.
    target: Option<(usize, usize)>,
}

/// What one group counted in one bucket.
#[derive(Default)]
struct Tally {
    deployments: Deployments,
    /// Day indexes with a success; sorted and deduplicated when read.
    days: Vec<u32>,
    runs: Runs,
    recovered: Vec<Millis>,
    open: u64,
    lead: Vec<Millis>,
    run_took: Vec<Millis>,
    environment_took: Vec<Millis>,
    gap: Vec<Millis>,
}

/// Strings as small numbers: group values and recovery lines are compared as ids.
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(UNSET - 1);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }
}

impl<'r> Counter<'r> {
    pub fn new(request: &'r InsightsRequest) -> Self {
        let days = request.buckets.days(&request.tz);
        Counter {
            request,
            days,
            values: Interner::default(),
            groups: HashMap::new(),
            tallies: Vec::new(),
            lines: HashMap::new(),
        }
    }

    /// Counts one run of `namespace`.
    pub fn add(&mut self, namespace: &str, facts: &RunFacts<'_>) {
        let wanted =
            |env: &&EnvironmentFacts<'_>| self.request.filter.environment.as_ref().is_none_or(|w| **w == *env.name);
        let environments: Vec<&EnvironmentFacts<'_>> = facts.environments.iter().filter(wanted).collect();
        for env in &environments {
            let Some(outcome) = env.outcome else { continue };
            let target = self.request.buckets.of(outcome.at).map(|bucket| {
                let group = self.group(namespace, facts, Some(&env.name));
                let day = self.days.of(outcome.at).and_then(|d| u32::try_from(d).ok());
                self.tallies[group].entry(bucket).or_default().deployment(env, outcome, day);
                (group, bucket)
            });
            if let Some(deployed) = env.deployment() {
                let line = [self.values.id(namespace), self.values.id(&facts.application), self.values.id(&env.name)];
                let failed = deployed.phase == Phase::Failed;
                let target = target.filter(|_| failed);
                self.lines.entry(line).or_default().push(Mark { at: deployed.at, failed, target });
            }
        }
        let Some(outcome) = facts.outcome else { return };
        let Some(bucket) = self.request.buckets.of(outcome.at) else { return };
        let by_environment = self.request.group_by.contains(&GroupKey::Environment);
        let names: Vec<Option<&str>> = match by_environment {
            true => environments.iter().map(|e| Some(&*e.name)).collect(),
            false => vec![None],
        };
        for env in names {
            let group = self.group(namespace, facts, env);
            self.tallies[group].entry(bucket).or_default().run(outcome);
        }
    }

    /// Counts a run as the archive stores it (its facts' stored form and, where the filter asks,
    /// its labels as JSON) if the request's filter matches it; a row this version cannot read
    /// counts for nothing.
    pub fn add_stored(&mut self, namespace: &str, labels: &str, facts: &str) {
        let Some(facts) = RunFacts::decode(facts) else { return };
        let labels = match self.request.filter.labels {
            Some(_) => serde_json::from_str(labels).unwrap_or_default(),
            None => std::collections::BTreeMap::new(),
        };
        if self.request.filter.matches(&super::FilteredRun { namespace, labels: &labels, facts: &facts }) {
            self.add(namespace, &facts);
        }
    }

    /// The group a run (and one of its environments) counts in, made on first use.
    fn group(&mut self, namespace: &str, facts: &RunFacts<'_>, environment: Option<&str>) -> usize {
        let mut id = [UNSET; GroupKey::ALL.len()];
        for (slot, key) in id.iter_mut().zip(&self.request.group_by) {
            *slot = self.values.id(match key {
                GroupKey::Pipeline => &facts.pipeline,
                GroupKey::Application => &facts.application,
                GroupKey::Environment => environment.unwrap_or_default(),
                GroupKey::Namespace => namespace,
                GroupKey::Trigger => facts.trigger.as_deref().unwrap_or_default(),
            });
        }
        let next = self.tallies.len();
        let group = *self.groups.entry(id).or_insert(next);
        if group == next {
            self.tallies.push(BTreeMap::new());
        }
        group
    }

    /// Each failed deployment counted in the range: recovered at the next success of its
    /// line (whenever that came), else open.
    fn recover(&mut self) {
        for (_, mut line) in self.lines.drain() {
            // Successes before failures at the same instant: a failure is not ended by its twin.
            line.sort_unstable_by_key(|m| (m.at, m.failed));
            let mut next_success = None;
            for mark in line.into_iter().rev() {
                if !mark.failed {
                    next_success = Some(mark.at);
                    continue;
                }
                let Some((group, bucket)) = mark.target else { continue };
                let tally = self.tallies[group].entry(bucket).or_default();
                match next_success.filter(|s| *s > mark.at) {
                    Some(success) => tally.recovered.push(success - mark.at),
                    None => tally.open += 1,
                }
            }
        }
    }

    /// The answer: groups in the order of their values, each with every bucket of the range.
    pub fn finish(mut self) -> InsightsBody {
        self.recover();
        let request = self.request;
        let (edges, from, to) = (&request.buckets.edges, request.buckets.from(), request.buckets.to);
        let mut named: Vec<(Vec<&str>, usize)> = self
            .groups
            .iter()
            .map(|(id, group)| (id[..request.group_by.len()].iter().map(|v| self.values.name(*v)).collect(), *group))
            .collect();
        named.sort_unstable();
        let mut tallies = std::mem::take(&mut self.tallies);
        let groups = named
            .into_iter()
            .map(|(values, group)| {
                let mut buckets = std::mem::take(&mut tallies[group]);
                // Each bucket's values move into the whole range's once counted: never held twice.
                let mut total = Tally::default();
                let buckets = (0..request.buckets.len())
                    .map(|i| {
                        let mut tally = buckets.remove(&i).unwrap_or_default();
                        let bucket = tally.bucket(edges[i], edges[i + 1]);
                        total.absorb(tally);
                        bucket
                    })
                    .collect();
                InsightsGroup {
                    key: request
                        .group_by
                        .iter()
                        .zip(values)
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_owned()))
                        .collect(),
                    total: total.bucket(from, to),
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
}

/// The insights of `runs` (namespace and facts) as `request` asks them.
pub fn compute<'a>(
    request: &InsightsRequest,
    runs: impl IntoIterator<Item = (&'a str, &'a RunFacts<'a>)>,
) -> InsightsBody {
    let mut counter = Counter::new(request);
    for (namespace, facts) in runs {
        counter.add(namespace, facts);
    }
    counter.finish()
}

impl Tally {
    fn deployment(&mut self, env: &EnvironmentFacts<'_>, outcome: Outcome, day: Option<u32>) {
        let d = &mut self.deployments;
        match outcome.phase {
            Phase::Succeeded => {
                d.succeeded += 1;
                self.days.extend(day);
                self.lead.extend(env.lead);
            }
            Phase::Failed => d.failed += 1,
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

    /// Adds `other`'s counts and moves in its values: the whole range from its buckets.
    fn absorb(&mut self, mut other: Tally) {
        let (d, o) = (&mut self.deployments, &other.deployments);
        (d.succeeded, d.failed, d.cancelled, d.skipped) =
            (d.succeeded + o.succeeded, d.failed + o.failed, d.cancelled + o.cancelled, d.skipped + o.skipped);
        let (r, o) = (&mut self.runs, &other.runs);
        (r.succeeded, r.failed, r.cancelled) =
            (r.succeeded + o.succeeded, r.failed + o.failed, r.cancelled + o.cancelled);
        self.open += other.open;
        self.days.append(&mut other.days);
        for (mine, theirs) in [
            (&mut self.recovered, &mut other.recovered),
            (&mut self.lead, &mut other.lead),
            (&mut self.run_took, &mut other.run_took),
            (&mut self.environment_took, &mut other.environment_took),
            (&mut self.gap, &mut other.gap),
        ] {
            if mine.is_empty() {
                std::mem::swap(mine, theirs);
            } else {
                mine.append(theirs);
            }
        }
    }

    /// The bucket's numbers; its values are left sorted.
    fn bucket(&mut self, start: Millis, end: Millis) -> Bucket {
        self.days.sort_unstable();
        self.days.dedup();
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
            runs: self.runs.clone(),
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
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}
