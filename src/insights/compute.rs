//! Insights from runs' facts, counted as they stream past (a year of an archive is never held
//! in memory at once): per group and bucket, with exact percentiles. The runs given are those
//! the request's filter matched, every one counted at or after the range's start; a failure's
//! recovery may come after the range's end, so later runs are given too.

use std::collections::BTreeMap;

// A fast hash, seeded per process: a run is looked up in these maps several times, and SipHash
// was a sixth of a 90-day request's time. Names are writers' DNS labels, interned per request.
use foldhash::HashMap;

use super::facts::{EnvironmentFacts, Millis, Outcome, RunFacts};
use super::request::{Buckets, GroupKey, InsightsRequest};
use super::values::Values;
use crate::model::Phase;
use crate::wire::{Bucket, Deployments, Durations, Freshness, InsightsBody, InsightsGroup, Rate, Recovery, Runs};

/// Counts runs for one request: `add` each, then `finish`.
pub struct Counter<'r> {
    request: &'r InsightsRequest,
    /// The range's day edges in its time zone, for deployment days.
    days: Buckets,
    values: Interner,
    /// Groups by their values (ids, `UNSET` past the request's keys), and their tallies.
    groups: HashMap<GroupId, usize>,
    tallies: Vec<BTreeMap<usize, Tally>>,
    /// Per namespace, application and environment: its deployments, for recoveries.
    lines: HashMap<[u32; 3], Line>,
    /// The environments of the run being counted that the request counts (their places in the
    /// run, and ids).
    environments: Vec<(usize, u32)>,
}

/// A group's values as ids, `UNSET` past the request's keys.
#[derive(Clone, Copy, PartialEq, Eq)]
struct GroupId([u32; GroupKey::ALL.len()]);

impl std::hash::Hash for GroupId {
    /// As numbers: hashed as the array's bytes, it took foldhash's path for long strings (5 %
    /// of a request's time over 90 days of every pipeline).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.iter().for_each(|value| state.write_u32(*value));
    }
}

const UNSET: u32 = u32::MAX;

/// The deployments of one application in one environment that recoveries need: when each
/// success was, and each failure counted in the range with the group and bucket it is counted
/// in (a failure outside the range recovers nothing that is asked). A year of one busy line is
/// hundreds of thousands of deployments, so a success is only its time.
#[derive(Default)]
struct Line {
    successes: Vec<Millis>,
    failures: Vec<(Millis, usize, usize)>,
}

/// What one group counted in one bucket.
#[derive(Default)]
struct Tally {
    deployments: Deployments,
    /// Day indexes with a success; sorted and deduplicated when read.
    days: Vec<u32>,
    runs: Runs,
    recovered: Values,
    open: u64,
    lead: Values,
    run_took: Values,
    environment_took: Values,
    gap: Values,
}

/// A run's names as ids, each looked up once per run rather than once per group it counts in.
struct Names {
    namespace: u32,
    pipeline: u32,
    application: u32,
    trigger: u32,
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
            groups: HashMap::default(),
            tallies: Vec::new(),
            lines: HashMap::default(),
            environments: Vec::new(),
        }
    }

    /// Counts one run of `namespace`.
    pub fn add(&mut self, namespace: &str, facts: &RunFacts<'_>) {
        // Kept from run to run: a year of runs makes no list per run.
        let mut environments = std::mem::take(&mut self.environments);
        environments.clear();
        for (at, env) in facts.environments.iter().enumerate() {
            if self.request.filter.environment.as_ref().is_none_or(|wanted| **wanted == *env.name) {
                environments.push((at, self.values.id(&env.name)));
            }
        }
        let names = Names {
            namespace: self.values.id(namespace),
            pipeline: self.values.id(&facts.pipeline),
            application: self.values.id(&facts.application),
            trigger: self.values.id(facts.trigger.as_deref().unwrap_or_default()),
        };
        for &(at, env_id) in &environments {
            self.add_environment(&names, &facts.environments[at], env_id);
        }
        if let Some(outcome) = facts.outcome
            && let Some(bucket) = self.request.buckets.of(outcome.at)
        {
            let by_environment = self.request.group_by.contains(&GroupKey::Environment);
            let mut count = |environment: Option<u32>| {
                let group = self.group(&names, environment);
                self.tallies[group].entry(bucket).or_default().run(outcome);
            };
            match by_environment {
                true => environments.iter().for_each(|(_, env_id)| count(Some(*env_id))),
                false => count(None),
            }
        }
        self.environments = environments;
    }

    /// Counts one environment of a run: its deployment in its bucket, and on its line.
    fn add_environment(&mut self, names: &Names, env: &EnvironmentFacts<'_>, env_id: u32) {
        let Some(outcome) = env.outcome else { return };
        let target = self.request.buckets.of(outcome.at).map(|bucket| {
            let group = self.group(names, Some(env_id));
            let day = self.days.of(outcome.at).and_then(|d| u32::try_from(d).ok());
            self.tallies[group].entry(bucket).or_default().deployment(env, outcome, day);
            (group, bucket)
        });
        let Some(deployed) = env.deployment() else { return };
        let line = self.lines.entry([names.namespace, names.application, env_id]).or_default();
        match (deployed.phase, target) {
            (Phase::Succeeded, _) => line.successes.push(deployed.at),
            (Phase::Failed, Some((group, bucket))) => line.failures.push((deployed.at, group, bucket)),
            _ => {}
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
    fn group(&mut self, names: &Names, environment: Option<u32>) -> usize {
        let mut id = [UNSET; GroupKey::ALL.len()];
        for (slot, key) in id.iter_mut().zip(&self.request.group_by) {
            *slot = match key {
                GroupKey::Pipeline => names.pipeline,
                GroupKey::Application => names.application,
                // Always given where environments are grouped; `UNSET` reads as "".
                GroupKey::Environment => environment.unwrap_or(UNSET),
                GroupKey::Namespace => names.namespace,
                GroupKey::Trigger => names.trigger,
            };
        }
        let id = GroupId(id);
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
            line.successes.sort_unstable();
            for (at, group, bucket) in line.failures {
                // The first success strictly after: a failure is not ended by its twin.
                let next = line.successes.partition_point(|s| *s <= at);
                let tally = self.tallies[group].entry(bucket).or_default();
                match line.successes.get(next) {
                    Some(success) => tally.recovered.push(success - at),
                    None => tally.open += 1,
                }
            }
        }
    }

    /// The answer: groups in the order of their values, each with every bucket of the range.
    pub fn finish(self) -> InsightsBody {
        let (mut body, groups) = self.finish_lazily();
        body.groups = groups.collect();
        body
    }

    /// The answer as JSON with `freshness`, written group by group: a weekly answer of every
    /// pipeline is tens of megabytes, never held both as values and as text.
    pub fn finish_json(self, freshness: Option<Freshness>) -> Vec<u8> {
        let (mut body, groups) = self.finish_lazily();
        let mut out = serde_json::to_vec(&body).unwrap_or_default();
        // With neither groups nor freshness, `groups` is the last field written.
        if !out.ends_with(b"\"groups\":[]}") {
            body.groups = groups.collect();
            body.freshness = freshness;
            return serde_json::to_vec(&body).unwrap_or_default();
        }
        out.truncate(out.len() - 2);
        let count = groups.len();
        for (i, group) in groups.enumerate() {
            let before = out.len();
            if i > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut out, &group);
            if i == 0 {
                // Groups have the same buckets: the first tells about how long the rest are.
                out.reserve((out.len() - before + 64) * (count - 1));
            }
        }
        out.push(b']');
        if let Some(freshness) = freshness {
            out.extend_from_slice(b",\"freshness\":");
            let _ = serde_json::to_writer(&mut out, &freshness);
        }
        out.push(b'}');
        out
    }

    /// The answer without its groups, and its groups one at a time, in the order of their values.
    fn finish_lazily(mut self) -> (InsightsBody, Groups<'r>) {
        self.recover();
        let request = self.request;
        let mut order: Vec<(Vec<String>, usize)> = self
            .groups
            .iter()
            .map(|(id, group)| {
                (id.0[..request.group_by.len()].iter().map(|v| self.values.name(*v).to_owned()).collect(), *group)
            })
            .collect();
        order.sort_unstable();
        let body = InsightsBody {
            kind: "Insights".to_owned(),
            from: time(request.buckets.from()),
            to: time(request.buckets.to),
            tz: request.tz_name.clone(),
            interval: request.interval.as_str().to_owned(),
            group_by: request.group_by.iter().map(|k| k.as_str().to_owned()).collect(),
            groups: Vec::new(),
            freshness: None,
        };
        (body, Groups { request, order: order.into_iter(), tallies: self.tallies })
    }
}

/// The groups of an answer, each made when it is reached (its tallies are dropped then).
struct Groups<'r> {
    request: &'r InsightsRequest,
    order: std::vec::IntoIter<(Vec<String>, usize)>,
    tallies: Vec<BTreeMap<usize, Tally>>,
}

impl Iterator for Groups<'_> {
    type Item = InsightsGroup;

    fn next(&mut self) -> Option<InsightsGroup> {
        let (values, group) = self.order.next()?;
        let request = self.request;
        let (edges, from, to) = (&request.buckets.edges, request.buckets.from(), request.buckets.to);
        let mut buckets = std::mem::take(&mut self.tallies[group]);
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
        Some(InsightsGroup {
            key: request.group_by.iter().zip(values).map(|(k, v)| (k.as_str().to_owned(), v)).collect(),
            total: total.bucket(from, to),
            buckets,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
}

impl ExactSizeIterator for Groups<'_> {}

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
        self.recovered.append(other.recovered);
        self.lead.append(other.lead);
        self.run_took.append(other.run_took);
        self.environment_took.append(other.environment_took);
        self.gap.append(other.gap);
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
                time: self.recovered.stats(),
            },
            lead_time: self.lead.stats(),
            durations: Durations {
                run: self.run_took.stats(),
                environment: self.environment_took.stats(),
                promotion_gap: self.gap.stats(),
            },
            success_rate: Rate::of(succeeded, succeeded + failed),
            runs: self.runs.clone(),
        }
    }
}

fn time(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}
