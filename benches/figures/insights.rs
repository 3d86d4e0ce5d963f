//! Insights over a large archive: N archived runs (500 pipelines in 20 namespaces, over the two
//! years before 2026-12-01, documents of about 2 KiB with every environment's times) written
//! straight into SQLite or PostgreSQL beside 1 000 live ones; their rollups rebuilt from
//! scratch by `execwatch archive rebuild-insights`; then distinct insights requests, one at a
//! time (each made, none remembered), as a dashboard and a CLI ask them, and a conditional
//! request the service answers `304`. The service runs on both cores here (an insights request
//! reads the archive on one thread and counts on another). Its memory is read before and at its
//! peak.

use std::time::{Duration, Instant};

use crate::archive::{LIVE, Row, Setup, insert_row};
use crate::served::Served;
use crate::warm::Archive;

/// The 90 days before the archive's end, and the year.
const QUARTER: &str = "from=2026-09-02&to=2026-12-01";
const YEAR: &str = "from=2025-12-01&to=2026-12-01";

pub struct Figures {
    pub archive: &'static str,
    pub archived: usize,
    pub rebuild: Duration,
    /// What was asked, how many distinct requests, their p50, p99 and slowest, and the highest
    /// RSS while they were answered.
    pub queries: Vec<(&'static str, usize, Duration, Duration, Duration, u64)>,
    pub rss_before: u64,
    /// The highest RSS over every request but the weekly answers of every pipeline (asked last).
    pub rss_peak: u64,
    /// From a finished run's file renamed in to a held long poll of its bucket answering.
    pub visible: Vec<Duration>,
}

pub async fn run(archived: usize, archive: Archive) -> Figures {
    let Setup { dir, manifests, name, url, writer, args } = Setup::new(archive);
    if std::env::var_os("EXECWATCH_BENCH_KEEP").is_some() {
        println!("  kept for profiling by hand: {}", dir.path().display());
    }
    let (served, _) = Served::start(&args, &[]).await;
    crate::warm::wait_archived(&writer, LIVE).await;
    drop(served);
    println!("writing {archived} archived runs into {name} ...");
    generate(&writer, archived).await;
    let rebuild = rebuild(&url);
    println!("  rollups rebuilt in {:.1} s", rebuild.as_secs_f64());
    let (served, _) = Served::start(&args, &[]).await;
    let rss_before = crate::archive::settled_rss(&served).await;
    served.unpin();
    served.reset_peak();
    let mut queries = Vec::new();
    let per_pipeline = |range: &'static str, interval: &'static str| {
        move |k: usize| {
            format!("pipeline=p-{k}&environment=prod&groupBy=application,environment&interval={interval}&{range}")
        }
    };
    // What is asked, how many distinct times, and the query of the k-th.
    type Ask = (&'static str, usize, Box<dyn Fn(usize) -> String>);
    // The weekly answer of every pipeline comes last: the only one of tens of megabytes, whose
    // memory glibc then keeps, it would raise every later row's peak.
    let asks: [Ask; 4] = [
        ("one application × environment, 90 days, weekly", 200, Box::new(per_pipeline(QUARTER, "week"))),
        ("one application × environment, a year, exact percentiles", 100, Box::new(per_pipeline(YEAR, "whole"))),
        (
            "every pipeline × environment, 90 days",
            20,
            Box::new(|k| format!("groupBy=pipeline,environment&interval=whole&{QUARTER}T00:00:{k:02}Z")),
        ),
        (
            "prod of every pipeline, a year, exact percentiles",
            5,
            Box::new(|k| format!("environment=prod&groupBy=environment&interval=whole&{YEAR}T00:00:{k:02}Z")),
        ),
    ];
    for (what, count, query) in asks {
        let urls: Vec<String> = (0..count).map(|k| format!("{}/api/v1/insights?{}", served.base, query(k))).collect();
        served.reset_peak();
        let (p50, p99, slowest) = timed(&urls, None).await;
        queries.push((what, count, p50, p99, slowest, served.peak()));
    }
    let held =
        format!("{}/api/v1/insights?groupBy=pipeline,environment&interval=whole&{QUARTER}T00:00:00Z", served.base);
    let etag = reqwest::get(&held).await.expect("served").headers()["etag"].to_str().expect("ETag").to_owned();
    served.reset_peak();
    let (p50, p99, slowest) = timed(&vec![held; 500], Some(&etag)).await;
    queries.push((
        "every pipeline × environment, 90 days, unchanged (If-None-Match: 304)",
        500,
        p50,
        p99,
        slowest,
        served.peak(),
    ));
    let rss_peak = queries.iter().map(|q| q.5).max().unwrap_or_default();
    let weekly = "every pipeline × environment, 90 days, weekly (an answer of 20 MB at 1 000 000)";
    let urls: Vec<String> = (0..10)
        .map(|k| {
            format!(
                "{}/api/v1/insights?groupBy=pipeline,environment&interval=week&{QUARTER}T00:01:{k:02}Z",
                served.base
            )
        })
        .collect();
    served.reset_peak();
    let (p50, p99, slowest) = timed(&urls, None).await;
    queries.push((weekly, 10, p50, p99, slowest, served.peak()));
    let visible = visible(&served.base, &manifests).await;
    if std::env::var_os("EXECWATCH_BENCH_KEEP").is_some() {
        let _ = dir.keep();
    }
    Figures { archive: name, archived, rebuild, queries, rss_before, rss_peak, visible }
}

/// Five times: a long poll of one pipeline's prod bucket held with its ETag, then a run of it
/// that succeeded in prod written into the live directory (renamed in): how long until the
/// poll answers with it.
async fn visible(base: &str, manifests: &std::path::Path) -> Vec<Duration> {
    let url =
        format!("{base}/api/v1/insights?pipeline=p-7&environment=prod&groupBy=environment&interval=week&{QUARTER}");
    let client = reqwest::Client::new();
    let mut took = Vec::new();
    for k in 0..5 {
        let response = client.get(&url).send().await.expect("served");
        let etag = response.headers()["etag"].to_str().expect("ETag").to_owned();
        let before: serde_json::Value = response.json().await.expect("JSON");
        let held = client.get(format!("{url}&timeoutSeconds=30")).header("if-none-match", etag).send();
        let held = tokio::spawn(held);
        // The poll is held before the run is written.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let (tmp, file) = (manifests.join(format!(".late-{k}.tmp")), manifests.join(format!("late-{k}.yaml")));
        std::fs::write(&tmp, late_run(k)).expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
        let answered = held.await.expect("joined").expect("answered");
        took.push(started.elapsed());
        assert_eq!(answered.status(), 200, "the long poll answers with the new run");
        let after: serde_json::Value = answered.json().await.expect("JSON");
        let succeeded = |b: &serde_json::Value| b["groups"][0]["total"]["deployments"]["succeeded"].as_u64();
        assert_eq!(succeeded(&after), succeeded(&before).map(|n| n + 1), "counted in its bucket");
    }
    took
}

/// A run of p-7 in ns-7, late in November 2026, that succeeded in prod.
fn late_run(k: usize) -> String {
    let env = |name: &str, start: &str, end: &str| {
        format!(
            "      - name: {name}\n        phase: Succeeded\n        startedAt: \"2026-11-2{k}T{start}:00Z\"\n        finishedAt: \"2026-11-2{k}T{end}:00Z\"\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late-{k}\n  namespace: ns-7\n  labels:\n    {}: \"true\"\ndata:\n  execution.yaml: |\n    apiVersion: pipelines.gitops.dev/v1alpha1\n    kind: PipelineExecution\n    pipeline: p-7\n    application: {{name: p-7, version: \"2.{k}\"}}\n    trigger: {{type: GitPush}}\n    phase: Succeeded\n    startedAt: \"2026-11-2{k}T10:00:00Z\"\n    finishedAt: \"2026-11-2{k}T10:40:00Z\"\n    environments:\n{}{}",
        crate::data::LABEL,
        env("dev", "10:00", "10:10"),
        env("prod", "10:20", "10:40"),
    )
}

/// `execwatch archive rebuild-insights` over the archive: how long it took.
fn rebuild(url: &str) -> Duration {
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_execwatch"))
        .args(["archive", "rebuild-insights", "--archive", url])
        .output()
        .expect("the command runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    started.elapsed()
}

/// Each of `urls` in turn (with `If-None-Match: etag`, which must then be answered `304`):
/// p50, p99 and the slowest.
async fn timed(urls: &[String], etag: Option<&str>) -> (Duration, Duration, Duration) {
    let client = reqwest::Client::new();
    let mut took = Vec::with_capacity(urls.len());
    for url in urls {
        let mut request = client.get(url);
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        let started = Instant::now();
        let response = request.send().await.expect("served");
        let status = response.status().as_u16();
        let body: bytes::Bytes = response.bytes().await.expect("a body");
        took.push(started.elapsed());
        let expected = if etag.is_some() { 304 } else { 200 };
        assert_eq!(status, expected, "{url}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        if etag.is_none() {
            let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(answer["freshness"]["complete"], true, "{url}: every source counted");
            assert!(answer["groups"].as_array().is_some_and(|g| !g.is_empty()), "{url}: runs counted: {answer}");
        }
    }
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    (at(0.5), at(0.99), took[took.len() - 1])
}

/// Writes `n` archived runs in transactions of 2 000 rows.
async fn generate(url: &str, n: usize) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("the archive");
    let started = Instant::now();
    for start in (0..n).step_by(2000) {
        let mut tx = pool.begin().await.expect("begin");
        for i in start..(start + 2000).min(n) {
            insert(i).execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    // Rebuilt from scratch: as if the migration that adds them had just run.
    sqlx::query("DELETE FROM run_facts").execute(&pool).await.expect("delete rollups");
    println!("  {n} rows in {:.0} s", started.elapsed().as_secs_f64());
    pool.close().await;
}

/// Archived run `i` of pipeline `p-(i % 500)`: dev, staging and prod with their times, a commit
/// before the run; staging fails one run in 23 (prod is then skipped), prod one in 9, and one
/// in 31 is cancelled in prod.
fn insert(i: usize) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    const TWO_YEARS_MS: i64 = 2 * 365 * 86_400_000;
    let (ns, name, pipeline) = (format!("ns-{}", i % 20), format!("run-{i:07}"), format!("p-{}", i % 500));
    let k = i as i64;
    // 2026-12-01T00:00:00Z.
    let started = 1_796_083_200_000 - (k * 7_919_000) % TWO_YEARS_MS;
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).expect("a time").to_string();
    let (staging, prod) = match i {
        i if i % 23 == 0 => ("Failed", "Skipped"),
        i if i % 9 == 0 => ("Succeeded", "Failed"),
        i if i % 31 == 0 => ("Succeeded", "Cancelled"),
        _ => ("Succeeded", "Succeeded"),
    };
    let phase = match prod {
        "Succeeded" => "Succeeded",
        "Cancelled" => "Cancelled",
        _ => "Failed",
    };
    let mut t = started + 30_000;
    let mut environments = Vec::new();
    for (env, env_phase, took, gap) in [
        ("dev", "Succeeded", 120 + k % 300, 0),
        ("staging", staging, 300 + k % 900, 60 + k % 600),
        ("prod", prod, 300 + k % 1800, 300 + k % 3600),
    ] {
        t += gap * 1000;
        let (start, end) = (t, t + took * 1000);
        t = end;
        let targets: Vec<serde_json::Value> = (0..2)
            .map(|c| {
                serde_json::json!({"cluster": format!("{env}-eu-{c}"), "namespace": pipeline, "phase": env_phase,
                "message": "synced to revision 82bab35ad3c5 after rollout of every replica; health checks passed"})
            })
            .collect();
        let mut environment = serde_json::json!({"name": env, "phase": env_phase, "targets": targets});
        if env_phase != "Skipped" {
            environment["startedAt"] = at(start).into();
            environment["finishedAt"] = at(end).into();
        }
        environments.push(environment);
    }
    let trigger = ["GitPush", "ImageUpdate", "Manual", "Schedule", "Promotion"][i % 5];
    let application = serde_json::json!({"name": pipeline, "version": format!("1.{}.{}", i % 97, i % 13),
        "revision": "82bab35ad3c5", "revisionTime": at(started - (600 + k % 3600) * 1000)});
    let execution = serde_json::json!({"apiVersion": "pipelines.gitops.dev/v1alpha1", "kind": "PipelineExecution",
        "pipeline": pipeline, "application": application, "trigger": {"type": trigger, "by": "ci@example.com"},
        "phase": phase, "startedAt": at(started), "finishedAt": at(t), "environments": environments});
    let labels = serde_json::json!({"pipelines.gitops.dev/execution": "true", "team": format!("t-{}", i % 7)});
    let detail = serde_json::json!({"namespace": ns, "name": name, "labels": labels, "resourceVersion": i.to_string(),
        "execution": execution});
    let summary = serde_json::json!({"namespace": ns, "name": name, "pipeline": pipeline, "application": application,
        "phase": phase, "startedAt": at(started), "environments": [], "resourceVersion": i.to_string()});
    let summary = summary.to_string();
    let (started_at, finished_at) = (at(started), Some(at(t)));
    let row = Row { i, namespace: ns, name, pipeline, phase, started, started_at, finished_at, summary };
    insert_row(row, labels.to_string(), detail.to_string(), t + 86_400_000)
}

pub fn print(rows: &[Figures]) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!("\n| archive | archived runs | rollups rebuilt from scratch |");
    println!("|---|---|---|");
    for f in rows {
        println!("| {} | {} | {:.1} s |", f.archive, f.archived, f.rebuild.as_secs_f64());
    }
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!("\n| archive | asked, one at a time | requests | p50 / p99 / slowest ms | RSS growth at peak |");
    println!("|---|---|---|---|---|");
    for f in rows {
        for (what, count, p50, p99, slowest, peak) in &f.queries {
            let growth = mib(peak.saturating_sub(f.rss_before));
            println!(
                "| {} | {what} | {count} | {} / {} / {} | {growth:.0} MiB |",
                f.archive,
                ms(*p50),
                ms(*p99),
                ms(*slowest)
            );
        }
    }
    println!("\n| archive | a finished run in its bucket: a held long poll answers after, ms (5 runs) |");
    println!("|---|---|");
    for f in rows {
        let each: Vec<String> = f.visible.iter().map(|d| ms(*d)).collect();
        println!("| {} | {} |", f.archive, each.join(", "));
    }
    println!(
        "\n| archive | RSS ready | RSS at its peak, every request but the weekly answers of every pipeline | growth |"
    );
    println!("|---|---|---|---|");
    for f in rows {
        let growth = mib(f.rss_peak.saturating_sub(f.rss_before));
        println!("| {} | {:.0} MiB | {:.0} MiB | {growth:.0} MiB |", f.archive, mib(f.rss_before), mib(f.rss_peak));
    }
}
