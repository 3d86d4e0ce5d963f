//! Reference cases worked by hand, and properties every answer keeps.

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::query::Scope;
use crate::wire::{Bucket, InsightsBody};

fn ms(text: &str) -> Millis {
    text.parse::<Timestamp>().unwrap().as_millisecond()
}

/// A run of `app` deploying one environment, ending at `at`.
fn deployed(app: &str, env: &str, phase: Phase, at: Millis) -> RunFacts<'static> {
    RunFacts {
        pipeline: format!("{app}-pipeline").into(),
        application: app.to_owned().into(),
        trigger: Some("GitPush".into()),
        phase,
        outcome: Some(Outcome { phase, at, took: Some(60_000) }),
        environments: vec![EnvironmentFacts {
            name: env.to_owned().into(),
            outcome: Some(Outcome { phase, at, took: Some(30_000) }),
            lead: (phase == Phase::Succeeded).then_some(90_000),
            gap: None,
        }],
    }
}

fn request(pairs: &[(&str, &str)]) -> InsightsRequest {
    let now: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
    let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    InsightsRequest::from_parameters(None, get, Scope::all(), now).unwrap()
}

fn insights(pairs: &[(&str, &str)], runs: &[RunFacts<'_>]) -> InsightsBody {
    compute(&request(pairs), runs.iter().map(|facts| ("team", facts)))
}

fn only_group(body: &InsightsBody) -> &crate::wire::InsightsGroup {
    assert_eq!(body.groups.len(), 1, "{body:#?}");
    &body.groups[0]
}

#[test]
fn devlake_4_failed_of_23_is_17_4_percent_never_more_than_every_deployment() {
    let day = ms("2026-03-10T00:00:00Z");
    let runs: Vec<RunFacts> = (0..23)
        .map(|i| deployed("web", "prod", if i < 4 { Phase::Failed } else { Phase::Succeeded }, day + i * 3_600_000))
        .collect();
    let body = insights(&[("from", "2026-03-01"), ("interval", "whole")], &runs);
    let rate = only_group(&body).total.change_fail_rate;
    assert_eq!((rate.count, rate.of), (4, 23));
    assert_eq!(format!("{:.1}", rate.value.unwrap() * 100.0), "17.4");
    let recovery = &only_group(&body).total.recovery;
    assert_eq!((recovery.recovered, recovery.open), (4, 0), "the fifth run's success ends all four failures");
    assert_eq!(recovery.time.max, Some(4.0 * 3600.0));
}

#[test]
fn a_week_over_berlins_daylight_saving_change_holds_its_own_deployments() {
    // Sunday 2026-03-22 23:30 in Berlin (UTC+1) is 22:30Z; Monday 00:30 is 23:30Z. Summer time
    // begins on 2026-03-29, so that week ends on Sunday 22:00Z, an hour earlier than it began.
    let runs = [
        deployed("web", "prod", Phase::Succeeded, ms("2026-03-22T22:30:00Z")),
        deployed("web", "prod", Phase::Succeeded, ms("2026-03-22T23:30:00Z")),
        deployed("web", "prod", Phase::Succeeded, ms("2026-03-29T21:30:00Z")),
        deployed("web", "prod", Phase::Succeeded, ms("2026-03-29T22:30:00Z")),
    ];
    let body = insights(&[("from", "2026-03-16"), ("to", "2026-04-06"), ("tz", "Europe/Berlin")], &runs);
    let buckets = &only_group(&body).buckets;
    let starts: Vec<&str> = buckets.iter().map(|b| b.start.as_str()).collect();
    assert_eq!(starts, ["2026-03-15T23:00:00Z", "2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z"]);
    let counts: Vec<u64> = buckets.iter().map(|b| b.deployments.succeeded).collect();
    assert_eq!(counts, [1, 2, 1]);
    assert_eq!(buckets[1].deployments.deployment_days, 2, "Monday the 23rd and Sunday the 29th");
}

#[test]
fn a_failure_recovered_in_the_next_bucket_counts_in_its_own() {
    let runs = [
        deployed("web", "prod", Phase::Failed, ms("2026-03-08T23:00:00Z")),
        deployed("web", "prod", Phase::Succeeded, ms("2026-03-09T01:00:00Z")),
        // Another application's success ends nothing of web's.
        deployed("api", "prod", Phase::Succeeded, ms("2026-03-08T23:30:00Z")),
    ];
    let body = insights(&[("from", "2026-03-02"), ("to", "2026-03-16"), ("groupBy", "application")], &runs);
    let web = body.groups.iter().find(|g| g.key["application"] == "web").unwrap();
    let [first, second]: &[Bucket; 2] = web.buckets.as_slice().try_into().unwrap();
    assert_eq!((first.recovery.recovered, first.recovery.time.p50), (1, Some(7200.0)));
    assert_eq!((second.deployments.succeeded, second.recovery.recovered), (1, 0));
}

#[test]
fn a_failure_never_recovered_is_open_and_not_dropped() {
    let runs = [
        deployed("web", "prod", Phase::Succeeded, ms("2026-03-03T10:00:00Z")),
        deployed("web", "prod", Phase::Failed, ms("2026-03-04T10:00:00Z")),
        // A success in another environment does not restore prod.
        deployed("web", "staging", Phase::Succeeded, ms("2026-03-05T10:00:00Z")),
    ];
    let body = insights(&[("from", "2026-03-02"), ("to", "2026-03-09"), ("groupBy", "environment")], &runs);
    let prod = body.groups.iter().find(|g| g.key["environment"] == "prod").unwrap();
    assert_eq!((prod.total.recovery.recovered, prod.total.recovery.open), (0, 1));
    assert_eq!(prod.total.recovery.time.count, 0);
    assert_eq!(prod.total.change_fail_rate.value, Some(0.5));
}

#[test]
fn cancelled_and_skipped_environments_are_not_failures() {
    let runs = [
        deployed("web", "prod", Phase::Cancelled, ms("2026-03-03T10:00:00Z")),
        deployed("web", "prod", Phase::Skipped, ms("2026-03-03T11:00:00Z")),
        deployed("web", "prod", Phase::Succeeded, ms("2026-03-03T12:00:00Z")),
    ];
    let body = insights(&[("from", "2026-03-02"), ("to", "2026-03-09")], &runs);
    let total = &only_group(&body).total;
    assert_eq!((total.deployments.cancelled, total.deployments.skipped, total.deployments.failed), (1, 1, 0));
    assert_eq!((total.change_fail_rate.count, total.change_fail_rate.of), (0, 1));
}

#[test]
fn the_environment_filter_counts_that_environment_alone() {
    let mut run = deployed("web", "prod", Phase::Succeeded, ms("2026-03-03T10:00:00Z"));
    run.environments
        .insert(0, deployed("web", "dev", Phase::Failed, ms("2026-03-03T09:00:00Z")).environments.remove(0));
    let runs = [run];
    let body = insights(&[("from", "2026-03-02"), ("to", "2026-03-09"), ("environment", "prod")], &runs);
    let total = &only_group(&body).total;
    assert_eq!((total.deployments.succeeded, total.deployments.failed), (1, 0));
}

#[test]
fn durations_past_49_days_are_exact_among_short_ones() {
    let day = ms("2026-03-10T00:00:00Z");
    let mut runs: Vec<RunFacts> = (0..5).map(|i| deployed("web", "prod", Phase::Succeeded, day + i * 60_000)).collect();
    // Past what 32 bits of milliseconds hold: the values so far are widened, none changed.
    let long = 60 * 86_400_000 + 1;
    runs[3].environments[0].lead = Some(long);
    let body = insights(&[("from", "2026-03-01"), ("interval", "whole")], &runs);
    let lead = &only_group(&body).total.lead_time;
    assert_eq!((lead.count, lead.min, lead.p50, lead.max), (5, Some(90.0), Some(90.0), Some(long as f64 / 1000.0)));
    assert_eq!(lead.mean, Some((4.0 * 90_000.0 + long as f64) / 5.0 / 1000.0));
}

fn arbitrary_runs() -> impl Strategy<Value = Vec<RunFacts<'static>>> {
    let start = ms("2026-03-01T00:00:00Z");
    let phase = prop::sample::select(vec![Phase::Succeeded, Phase::Failed, Phase::Cancelled, Phase::Skipped]);
    let run = (0..2usize, 0..3usize, phase, 0..(31 * 86_400_000i64), 0..3_600_000i64);
    prop::collection::vec(run, 0..80).prop_map(move |runs| {
        runs.into_iter()
            .map(|(app, env, phase, offset, took)| {
                let mut run = deployed(["web", "api"][app], ["dev", "staging", "prod"][env], phase, start + offset);
                run.environments[0].outcome.as_mut().unwrap().took = Some(took);
                run
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn rates_stay_within_their_counts_and_days_add_up_to_the_whole(runs in arbitrary_runs()) {
        let range = [("from", "2026-03-01"), ("to", "2026-04-01"), ("groupBy", "application,environment")];
        let days = insights(&[range[0], range[1], range[2], ("interval", "day"), ("tz", "Europe/Berlin")], &runs);
        let whole = insights(&[range[0], range[1], range[2], ("interval", "whole"), ("tz", "Europe/Berlin")], &runs);
        prop_assert_eq!(days.groups.len(), whole.groups.len());
        for (by_day, all) in days.groups.iter().zip(&whole.groups) {
            let rate = all.buckets[0].change_fail_rate;
            prop_assert!(rate.count <= rate.of && rate.value.is_none_or(|v| (0.0..=1.0).contains(&v)));
            let sum = |f: fn(&Bucket) -> u64| by_day.buckets.iter().map(f).sum::<u64>();
            prop_assert_eq!(sum(|b| b.deployments.succeeded), all.buckets[0].deployments.succeeded);
            prop_assert_eq!(sum(|b| b.deployments.failed), all.buckets[0].deployments.failed);
            prop_assert_eq!(sum(|b| b.deployments.deployment_days), all.buckets[0].deployments.deployment_days);
            prop_assert_eq!(sum(|b| b.durations.environment.count), all.buckets[0].durations.environment.count);
            prop_assert_eq!(&by_day.total.durations, &all.buckets[0].durations, "percentiles are of values, not buckets");
        }
    }

    #[test]
    fn the_answer_written_group_by_group_is_the_answer(runs in arbitrary_runs(), stale in any::<bool>()) {
        let wanted = request(&[("from", "2026-03-01"), ("groupBy", "application,environment"), ("interval", "week")]);
        let counted = || {
            let mut counter = Counter::new(&wanted);
            runs.iter().for_each(|facts| counter.add("team", facts));
            counter
        };
        let freshness = stale.then(|| crate::wire::Freshness { complete: false, stale, incomplete_sources: Vec::new() });
        let mut whole = counted().finish();
        whole.freshness = freshness.clone();
        let written: InsightsBody = serde_json::from_slice(&counted().finish_json(freshness)).unwrap();
        prop_assert_eq!(written, whole);
    }

    #[test]
    fn percentiles_are_the_nearest_rank_values(mut values in prop::collection::vec(0..1_000_000i64, 1..300)) {
        let s = stats(&mut values.clone());
        values.sort_unstable();
        for (p, got) in [(50, s.p50), (90, s.p90), (95, s.p95), (99, s.p99)] {
            let got = (got.unwrap() * 1000.0).round() as i64;
            let at_or_below = values.iter().filter(|v| **v <= got).count();
            let below = values.iter().filter(|v| **v < got).count();
            prop_assert!(values.contains(&got));
            prop_assert!(at_or_below * 100 >= p * values.len(), "p{} = {} covers {}", p, got, at_or_below);
            prop_assert!(below * 100 < p * values.len(), "p{} = {} is not the smallest such value", p, got);
        }
        prop_assert_eq!(s.min, Some(values[0] as f64 / 1000.0));
        prop_assert_eq!(s.max, Some(values[values.len() - 1] as f64 / 1000.0));
    }
}
