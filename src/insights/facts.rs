//! What one run contributes to insights, read once from its document: each environment's
//! outcome and when it was reached, and the durations around it. Every rule of what counts
//! (docs/insights.md) that looks at one run is here; what looks across runs (recovery) is in
//! `compute`. The archive stores these facts as they are (`history`), so a run counts the same
//! whether it is live or archived, in a compact text of their own (`encode`, `decode`).

use std::borrow::Cow;
use std::fmt::Write;

use jiff::Timestamp;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::model::{ExecutionView, Phase};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// One run's facts. Its names are borrowed where they can be (from the view they were read from,
/// or from the stored text they are decoded from), so counting a year of runs allocates no
/// string per run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunFacts<'a> {
    pub pipeline: Cow<'a, str>,
    pub application: Cow<'a, str>,
    pub trigger: Option<Cow<'a, str>>,
    /// The run's phase now, for the executions' `phase` filter.
    pub phase: Phase,
    /// The run's outcome, once it ended.
    pub outcome: Option<Outcome>,
    pub environments: Vec<EnvironmentFacts<'a>>,
}

/// How a run or an environment ended, when, and how long it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub phase: Phase,
    /// When it ended: where it is counted.
    pub at: Millis,
    /// From its start to its end; none where either is missing or the end comes first.
    pub took: Option<Millis>,
}

/// One environment of a run, in promotion order.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentFacts<'a> {
    pub name: Cow<'a, str>,
    /// Its outcome, once it reached a terminal phase.
    pub outcome: Option<Outcome>,
    /// From the commit (or the run's start) to its success.
    pub lead: Option<Millis>,
    /// From the previous environment's finish to this one's start: the promotion's wait.
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

/// The stored form (`RunFacts::encode`): fields separated by tabs, a field of nothing for `None`.
/// About a third of the facts' size as JSON, and read by splitting: a year of runs is read and
/// decoded per request.
const SEPARATOR: char = '\t';
/// Names are percent-escaped where they hold a control character (a tab, or a separator of the
/// archive's rows) or `%`; the schema's names never do, so they are stored as they are.
const ESCAPED: &AsciiSet = &CONTROLS.add(b'%');
/// Each phase's letter in the stored form.
const LETTERS: [(Phase, char); 7] = [
    (Phase::Pending, 'P'),
    (Phase::Running, 'R'),
    (Phase::Succeeded, 'S'),
    (Phase::Failed, 'F'),
    (Phase::Cancelled, 'C'),
    (Phase::Skipped, 'K'),
    (Phase::Unknown, 'U'),
];

impl<'a> RunFacts<'a> {
    /// The stored form: pipeline, application, trigger, the run's phase and outcome, then each
    /// environment's name, outcome, lead time and promotion gap. An outcome is its phase's
    /// letter and time, and its duration after a comma (`S1796083350000,120000`).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(64 + 48 * self.environments.len());
        let trigger = self.trigger.as_deref().unwrap_or_default();
        let names = [&*self.pipeline, &*self.application, trigger].map(|n| utf8_percent_encode(n, ESCAPED));
        // Writing to a String cannot fail.
        let _ = write!(text, "{}\t{}\t{}\t{}\t", names[0], names[1], names[2], letter(self.phase));
        write_outcome(&mut text, self.outcome);
        for env in &self.environments {
            let _ = write!(text, "\t{}\t", utf8_percent_encode(&env.name, ESCAPED));
            write_outcome(&mut text, env.outcome);
            for value in [env.lead, env.gap] {
                text.push(SEPARATOR);
                if let Some(value) = value {
                    let _ = write!(text, "{value}");
                }
            }
        }
        text
    }

    /// Facts from their stored form, borrowing its names; `None` for a text not in that form.
    pub fn decode(text: &'a str) -> Option<RunFacts<'a>> {
        let mut fields = text.split(SEPARATOR);
        let mut name = || name_of(fields.next()?);
        let (pipeline, application, trigger) = (name()?, name()?, name()?);
        let phase = phase_of(fields.next()?)?;
        let outcome = outcome_of(fields.next()?)?;
        let mut environments = Vec::with_capacity(4);
        while let Some(env) = fields.next() {
            environments.push(EnvironmentFacts {
                name: name_of(env)?,
                outcome: outcome_of(fields.next()?)?,
                lead: number_of(fields.next()?)?,
                gap: number_of(fields.next()?)?,
            });
        }
        let trigger = Some(trigger).filter(|t| !t.is_empty());
        Some(RunFacts { pipeline, application, trigger, phase, outcome, environments })
    }
}

/// A name from its stored form. Nearly every one has nothing escaped, and is borrowed as it is:
/// percent-decoding checked again that it was UTF-8 (3.5 % of a 90-day request's time).
fn name_of(field: &str) -> Option<Cow<'_, str>> {
    match field.contains('%') {
        false => Some(Cow::Borrowed(field)),
        true => percent_decode_str(field).decode_utf8().ok(),
    }
}

fn letter(phase: Phase) -> char {
    LETTERS.iter().find(|(p, _)| *p == phase).map_or('U', |(_, l)| *l)
}

fn phase_of(field: &str) -> Option<Phase> {
    let mut chars = field.chars();
    let (letter, None) = (chars.next()?, chars.next()) else { return None };
    LETTERS.iter().find(|(_, l)| *l == letter).map(|(p, _)| *p)
}

fn write_outcome(text: &mut String, outcome: Option<Outcome>) {
    let Some(outcome) = outcome else { return };
    let _ = write!(text, "{}{}", letter(outcome.phase), outcome.at);
    if let Some(took) = outcome.took {
        let _ = write!(text, ",{took}");
    }
}

/// An outcome's field: `Some(None)` when empty, `None` when malformed.
fn outcome_of(field: &str) -> Option<Option<Outcome>> {
    if field.is_empty() {
        return Some(None);
    }
    let (phase, rest) = field.split_at_checked(1)?;
    let (at, took) = match rest.split_once(',') {
        Some((at, took)) => (at, Some(took.parse().ok()?)),
        None => (rest, None),
    };
    Some(Some(Outcome { phase: phase_of(phase)?, at: at.parse().ok()?, took }))
}

/// A number's field: `Some(None)` when empty, `None` when malformed.
fn number_of(field: &str) -> Option<Option<Millis>> {
    match field {
        "" => Some(None),
        _ => field.parse().ok().map(Some),
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
        let mut run = view(
            Phase::Failed,
            vec![
                env("dev", Phase::Succeeded, Some("2026-01-01T10:00:00Z"), Some("2026-01-01T10:05:00Z")),
                env("staging", Phase::Failed, Some("2026-01-01T10:08:00Z"), Some("2026-01-01T10:20:00Z")),
                env("prod", Phase::Skipped, None, None),
                env("later", Phase::Pending, None, None),
            ],
        );
        let facts = RunFacts::of(&run);
        let stored = facts.encode();
        assert_eq!(RunFacts::decode(&stored), Some(facts.clone()));
        assert!(stored.len() < 160, "{stored}");
        assert!(!stored.contains(['\u{1e}', '\u{1f}']), "no separator of the archive's rows");
        // Names the schema would refuse still come back as they were, and no trigger is none.
        run.pipeline = "a\tb%c\u{1e}d".into();
        run.trigger = None;
        let facts = RunFacts::of(&run);
        let stored = facts.encode();
        assert!(!stored.contains(['\u{1e}', '\u{1f}']), "{stored}");
        assert_eq!(RunFacts::decode(&stored), Some(facts));
    }

    #[test]
    fn text_not_in_the_stored_form_decodes_to_nothing() {
        for text in ["", "p\ta\tt\tS", "p\ta\tt\tX\t", "p\ta\tt\tS\tS12,x", "p\ta\tt\tS\t\tdev\t\t1", "{\"p\":\"x\"}"] {
            assert_eq!(RunFacts::decode(text), None, "{text:?}");
        }
    }
}
