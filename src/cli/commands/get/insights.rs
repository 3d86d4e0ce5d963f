//! `execwatch get insights`: the service's delivery metrics as a table (a row per group and
//! bucket), or its answer as JSON or YAML. The numbers are the API's, never computed here.

use std::fmt::Write as _;

use super::table::Table;
use crate::wire::{Bucket, InsightsBody, Rate, Stats};

/// The query parameters of `/api/v1/insights` the flags ask for.
pub fn query(args: &super::GetArgs) -> Vec<(&'static str, String)> {
    let mut query = vec![("interval", args.interval.clone()), ("from", args.since.clone())];
    let optional = [
        ("groupBy", args.group_by.as_ref().map(|keys| keys.join(","))),
        ("to", args.until.clone()),
        ("tz", args.tz.clone()),
        ("pipeline", args.pipeline.clone()),
        ("environment", args.environment.clone()),
        ("labelSelector", args.selector.clone()),
        ("phase", args.phase.map(|p| p.as_str().to_owned())),
    ];
    query.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    query
}

/// A row per group and bucket (buckets with nothing in them left out), then the group's total
/// where there is more than one bucket.
pub fn table(body: &InsightsBody) -> Table {
    let mut headers: Vec<String> = body.group_by.iter().map(|k| k.to_uppercase()).collect();
    headers.extend(
        [
            "BUCKET",
            "DEPLOYS",
            "FAILED",
            "CHANGE FAIL",
            "DAYS",
            "LEAD P50",
            "RECOVERY P50",
            "OPEN",
            "RUN P50",
            "RUN P90",
        ]
        .map(str::to_owned),
    );
    let mut rows = Vec::new();
    for group in &body.groups {
        let key: Vec<String> = body.group_by.iter().map(|k| group.key.get(k).cloned().unwrap_or_default()).collect();
        let row = |label: String, bucket: &Bucket| {
            let mut row = key.iter().map(|v| if v.is_empty() { "-".to_owned() } else { v.clone() }).collect::<Vec<_>>();
            row.push(label);
            row.extend(cells(bucket));
            row
        };
        let busy = group.buckets.iter().filter(|b| !is_empty(b));
        rows.extend(busy.map(|b| row(day(&b.start), b)));
        if group.buckets.len() > 1 {
            rows.push(row("total".to_owned(), &group.total));
        }
    }
    Table { headers, rows }
}

fn is_empty(bucket: &Bucket) -> bool {
    let d = &bucket.deployments;
    d.succeeded
        + d.failed
        + d.cancelled
        + d.skipped
        + bucket.runs.succeeded
        + bucket.runs.failed
        + bucket.runs.cancelled
        == 0
}

fn cells(b: &Bucket) -> Vec<String> {
    vec![
        b.deployments.succeeded.to_string(),
        b.deployments.failed.to_string(),
        rate(&b.change_fail_rate),
        b.deployments.deployment_days.to_string(),
        seconds(&b.lead_time, |s| s.p50),
        seconds(&b.recovery.time, |s| s.p50),
        b.recovery.open.to_string(),
        seconds(&b.durations.run, |s| s.p50),
        seconds(&b.durations.run, |s| s.p90),
    ]
}

/// `3 of 20 (15%)`, or `-` where nothing was attempted.
pub fn rate(rate: &Rate) -> String {
    match rate.value {
        Some(value) => format!("{} of {} ({}%)", rate.count, rate.of, (value * 1000.0).round() / 10.0),
        None => "-".to_owned(),
    }
}

/// A duration as people read it: `45s`, `12m30s`, `3h05m`, `2d4h`.
fn seconds(stats: &Stats, pick: fn(&Stats) -> Option<f64>) -> String {
    let Some(value) = pick(stats) else { return "-".to_owned() };
    let s = value.round() as u64;
    let mut out = String::new();
    let _ = match s {
        s if s < 60 => write!(out, "{s}s"),
        s if s < 3600 => write!(out, "{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => write!(out, "{}h{:02}m", s / 3600, s % 3600 / 60),
        s => write!(out, "{}d{}h", s / 86_400, s % 86_400 / 3600),
    };
    out
}

/// A bucket's start as its date (the API gives the instant, in UTC).
fn day(start: &str) -> String {
    start.get(..10).unwrap_or(start).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_say_both_counts_and_durations_read_as_people_say_them() {
        assert_eq!(rate(&Rate::of(3, 20)), "3 of 20 (15%)");
        assert_eq!(rate(&Rate::of(4, 23)), "4 of 23 (17.4%)");
        assert_eq!(rate(&Rate::of(0, 0)), "-");
        let at = |v: f64| seconds(&Stats { p50: Some(v), ..Stats::default() }, |s| s.p50);
        assert_eq!([at(45.0), at(750.0), at(11_100.0), at(187_200.0)], ["45s", "12m30s", "3h05m", "2d4h"]);
    }
}
