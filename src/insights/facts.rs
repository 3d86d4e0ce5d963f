//! What one run contributes to insights, read once from its document: each environment's
//! outcome and when it was reached, and the durations around it. Every rule of what counts
//! (docs/insights.md) that looks at one run is here; what looks across runs (recovery) is in
//! `compute`. The archive stores these facts as they are (`history`), so a run counts the same
//! whether it is live or archived.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{ExecutionView, Phase};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// One run's facts. Field names are short: the archive keeps one of these per run. Its names are
/// borrowed where they can be (from the view they were read from, or from the stored text they
/// are parsed from), so counting a year of runs allocates no string per run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFacts<'a> {
    #[serde(rename = "p", borrow)]
    pub pipeline: Cow<'a, str>,
    #[serde(rename = "a", borrow)]
    pub application: Cow<'a, str>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none", borrow)]
    pub trigger: Option<Cow<'a, str>>,
    /// The run's phase now, for the executions' `phase` filter.
    #[serde(rename = "ph")]
    pub phase: Phase,
    /// The run's outcome, once it ended.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(rename = "e", borrow)]
    pub environments: Vec<EnvironmentFacts<'a>>,
}

/// How a run or an environment ended, when, and how long it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(rename = "p")]
    pub phase: Phase,
    /// When it ended: where it is counted.
    #[serde(rename = "at")]
    pub at: Millis,
    /// From its start to its end; none where either is missing or the end comes first.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub took: Option<Millis>,
}

/// One environment of a run, in promotion order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentFacts<'a> {
    #[serde(rename = "n", borrow)]
    pub name: Cow<'a, str>,
    /// Its outcome, once it reached a terminal phase.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// From the commit (or the run's start) to its success.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<Millis>,
    /// From the previous environment's finish to this one's start: the promotion's wait.
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Millis>,
}

impl EnvironmentFacts<'_> {
    /// A deployment: the environment reached `Succeeded` or `Failed`.
    pub fn deployment(&self) -> Option<Outcome> {
        self.outcome.filter(|o| matches!(o.phase, Phase::Succeeded | Phase::Failed))
    }
}

impl<'a> RunFacts<'a> {
    /// The facts of a run as its document tells them. Times the document does not give are
    /// taken from the nearest it does (an environment's end from the run's, the run's from its
    /// last environment's); a duration whose end comes before its start is not measured.
    pub fn of(view: &'a ExecutionView) -> RunFacts<'a> {
        let run_start = time(&view.started_at);
        let run_end = time(&view.finished_at);
        let lead_from = time(&view.application.revision_time).or(run_start);
        let mut previous_end = None;
        let mut environments = Vec::with_capacity(view.environments.len());
        for env in &view.environments {
            let (start, end) = (time(&env.started_at), time(&env.finished_at));
            let at = end.or(run_end).or(run_start);
            let outcome = at.filter(|_| env.phase.is_terminal()).map(|at| Outcome {
                phase: env.phase,
                at,
                took: span(start, end),
            });
            let lead = outcome.filter(|o| o.phase == Phase::Succeeded).and_then(|o| span(lead_from, Some(o.at)));
            let gap = outcome.and(span(previous_end, start));
            previous_end = end.or(previous_end);
            environments.push(EnvironmentFacts { name: Cow::Borrowed(&env.name), outcome, lead, gap });
        }
        let last_env = environments.iter().filter_map(|e| e.outcome.map(|o| o.at)).max();
        let outcome = run_end.or(last_env).or(run_start).filter(|_| view.phase.is_terminal()).map(|at| Outcome {
            phase: view.phase,
            at,
            took: span(run_start, run_end),
        });
        RunFacts {
            pipeline: Cow::Borrowed(&view.pipeline),
            application: Cow::Borrowed(&view.application.name),
            trigger: view.trigger.as_ref().map(|t| Cow::Borrowed(t.kind.as_str())),
            phase: view.phase,
            outcome,
            environments,
        }
    }

    /// The latest time anything of this run is counted at: a range that starts later leaves
    /// it out (the archive reads runs by it).
    pub fn last_counted(&self) -> Option<Millis> {
        let envs = self.environments.iter().filter_map(|e| e.outcome.map(|o| o.at));
        envs.chain(self.outcome.map(|o| o.at)).max()
    }
}

/// A document's time, in milliseconds; none when absent (the schema checked its form).
fn time(text: &Option<String>) -> Option<Millis> {
    text.as_deref()?.parse::<Timestamp>().ok().map(|t| t.as_millisecond())
}

/// From `start` to `end`, when both are known and in that order.
fn span(start: Option<Millis>, end: Option<Millis>) -> Option<Millis> {
    let took = end? - start?;
    (took >= 0).then_some(took)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Application, EnvironmentStatus, Trigger};

    fn env(name: &str, phase: Phase, started: Option<&str>, finished: Option<&str>) -> EnvironmentStatus {
        EnvironmentStatus {
            name: name.into(),
            phase,
            started_at: started.map(Into::into),
            finished_at: finished.map(Into::into),
        }
    }

    fn view(phase: Phase, environments: Vec<EnvironmentStatus>) -> ExecutionView {
        ExecutionView {
            pipeline: "shop".into(),
            application: Application { name: "web".into(), version: "1".into(), revision: None, revision_time: None },
            trigger: Some(Trigger { kind: "GitPush".into() }),
            phase,
            started_at: Some("2026-01-01T10:00:00Z".into()),
            finished_at: Some("2026-01-01T10:30:00Z".into()),
            environments,
        }
    }

    const MIN: Millis = 60_000;

    #[test]
    fn environments_count_at_their_end_with_lead_times_and_promotion_gaps() {
        let run = view(
            Phase::Failed,
            vec![
                env("dev", Phase::Succeeded, Some("2026-01-01T10:00:00Z"), Some("2026-01-01T10:05:00Z")),
                env("staging", Phase::Failed, Some("2026-01-01T10:08:00Z"), Some("2026-01-01T10:20:00Z")),
                env("prod", Phase::Pending, None, None),
            ],
        );
        let facts = RunFacts::of(&run);
        let [dev, staging, prod] = &facts.environments[..] else { panic!("three environments") };
        assert_eq!(dev.deployment().map(|o| (o.phase, o.took)), Some((Phase::Succeeded, Some(5 * MIN))));
        assert_eq!((dev.lead, dev.gap), (Some(5 * MIN), None));
        assert_eq!(staging.deployment().map(|o| o.took), Some(Some(12 * MIN)));
        assert_eq!((staging.lead, staging.gap), (None, Some(3 * MIN)), "no lead time for a failure");
        assert_eq!(prod.outcome, None, "a pending environment is no deployment");
        assert_eq!(facts.outcome.map(|o| (o.phase, o.took)), Some((Phase::Failed, Some(30 * MIN))));
        assert_eq!(facts.trigger.as_deref(), Some("GitPush"));
    }

    #[test]
    fn times_out_of_order_measure_nothing_and_missing_ends_borrow_the_runs() {
        let mut v = view(Phase::Succeeded, vec![env("dev", Phase::Succeeded, Some("2026-01-01T10:10:00Z"), None)]);
        v.environments.push(env("prod", Phase::Succeeded, Some("2026-01-01T10:20:00Z"), Some("2026-01-01T10:15:00Z")));
        v.application.revision_time = Some("2026-01-01T09:00:00Z".into());
        let facts = RunFacts::of(&v);
        let (dev, prod) = (&facts.environments[0], &facts.environments[1]);
        let run_end = "2026-01-01T10:30:00Z".parse::<Timestamp>().unwrap().as_millisecond();
        assert_eq!(
            dev.outcome.map(|o| (o.at, o.took)),
            Some((run_end, None)),
            "counted at the run's end, not measured"
        );
        assert_eq!(dev.lead, Some(90 * MIN), "lead time from the commit");
        assert_eq!(prod.outcome.and_then(|o| o.took), None, "an end before its start is not a duration");
        assert_eq!(prod.gap, None, "dev's own end is unknown: no gap");
    }

    #[test]
    fn facts_round_trip_through_their_stored_form() {
        let run = view(Phase::Succeeded, vec![env("dev", Phase::Skipped, None, None)]);
        let facts = RunFacts::of(&run);
        let stored = serde_json::to_string(&facts).unwrap();
        assert_eq!(serde_json::from_str::<RunFacts>(&stored).unwrap(), facts);
        assert!(stored.len() < 200, "{stored}");
    }
}
