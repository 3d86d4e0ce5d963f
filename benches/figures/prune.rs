//! Retention at scale: N realistic executions in the simulator (about 85 % of them terminal,
//! 500 pipelines), the release service over them with a SQLite archive and a policy that keeps
//! the newest 10 finished runs of each pipeline, in enforce mode. Measured: the pruner's rate at
//! the default `--prune-rate` and with no limit, what the whole prune takes at each, and the p50
//! and p99 of a concurrent writer's create and update calls before pruning and during it.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;

use crate::data;
use crate::served::Served;

/// How long each phase of the writer is measured, and the rate it writes at.
const WINDOW: Duration = Duration::from_secs(30);
const WRITES_PER_SECOND: u64 = 20;
/// `--prune-rate`'s default.
const DEFAULT_RATE: u32 = 5;

pub struct Figures {
    pub executions: usize,
    pub prunable: usize,
    /// Deletes per second measured over `WINDOW` at the default rate.
    pub default_rate: f64,
    /// Deletes per second with no limit, over what was left after the default rate's window.
    pub unlimited_rate: f64,
    pub writer_before: Latency,
    pub writer_default: Latency,
    pub writer_unlimited: Latency,
}

#[derive(Clone, Copy)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
}

pub async fn run(n: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sim, client) = data::simulator(n).await;
    sim.create_namespace("execwatch");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig()).expect("kubeconfig");
    let policy = dir.path().join("retention.yaml");
    std::fs::write(&policy, "rules: []\n").expect("policy");
    let archive = format!("sqlite:{}", dir.path().join("history.db").display());
    let namespaces: Vec<String> = (0..data::NAMESPACES).map(|ns| format!("ns-{ns}")).collect();
    let args = |rate: u32| {
        let mut args: Vec<String> = ["--namespaces", &namespaces.join(","), "--archive", &archive, "--retention"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(policy.display().to_string());
        args.extend(
            ["--retention-mode", "enforce", "--retention-interval", "1s", "--lease-namespace", "execwatch"]
                .map(str::to_owned),
        );
        args.extend(["--prune-rate".to_owned(), rate.to_string()]);
        args
    };
    let env = [("KUBECONFIG", kubeconfig.display().to_string())];
    let (served, _) = Served::start(&args(DEFAULT_RATE), &env).await;
    crate::warm::wait_archived(&format!("sqlite://{}", dir.path().join("history.db").display()), n).await;
    let writer = Api::<ConfigMap>::namespaced(client.clone(), "ns-0");
    let writer_before = write_for(&writer, "before", WINDOW).await;

    // Keep the newest 10 finished runs of each pipeline: the rest goes.
    // The generated runs started long before the simulator made their ConfigMaps: trust them.
    let keep = "rules: [{name: keep-ten, phases: [Succeeded, Failed, Cancelled], keep: {newest: 10}, clockSkew: {action: payloadTime}}]\n";
    let tmp = dir.path().join(".retention.yaml.tmp");
    std::fs::write(&tmp, keep).expect("policy");
    std::fs::rename(&tmp, &policy).expect("policy");
    let prunable = wait_for_plan(&served.base, |p| p > 0).await;
    // Deletes as the API server counts them (the plan lags a round behind).
    let deletes =
        || (0..data::NAMESPACES).map(|ns| sim.requests("delete", "configmaps", &format!("ns-{ns}"))).sum::<u64>();
    let (writer_default, pruned) = tokio::join!(write_for(&writer, "default", WINDOW), async {
        let before = deletes();
        tokio::time::sleep(WINDOW).await;
        deletes() - before
    });
    let default_rate = pruned as f64 / WINDOW.as_secs_f64();
    drop(served);

    let (served, _) = Served::start(&args(1_000_000), &env).await;
    let remaining = wait_for_plan(&served.base, |_| true).await;
    let started = Instant::now();
    let (writer_unlimited, unlimited) = tokio::join!(write_for(&writer, "unlimited", WINDOW), async {
        wait_for_plan(&served.base, |p| p == 0).await;
        started.elapsed()
    });
    drop(served);
    let unlimited_rate = remaining as f64 / unlimited.as_secs_f64();
    Figures { executions: n, prunable, default_rate, unlimited_rate, writer_before, writer_default, writer_unlimited }
}

/// The plan's prunable count, once the service has made one.
async fn plan(base: &str) -> Option<usize> {
    let plan: serde_json::Value =
        reqwest::get(format!("{base}/api/v1/retention/plan")).await.ok()?.json().await.ok()?;
    plan["prunable"].as_u64().map(|p| p as usize)
}

async fn wait_for_plan(base: &str, done: impl Fn(usize) -> bool) -> usize {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        if let Some(prunable) = plan(base).await.filter(|p| done(*p)) {
            return prunable;
        }
        assert!(Instant::now() < deadline, "the plan did not get there within 30 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A writer creating a running execution and updating it once, `WRITES_PER_SECOND` calls a
/// second for `window`: the latency of each call.
async fn write_for(api: &Api<ConfigMap>, phase: &str, window: Duration) -> Latency {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / WRITES_PER_SECOND));
    let mut took = Vec::new();
    let end = Instant::now() + window;
    let mut k = 0;
    while Instant::now() < end {
        tick.tick().await;
        let name = format!("writer-{phase}-{}", k / 2);
        let doc = execwatch::fixtures::Doc::new("writer").phase("Running").version(&format!("1.{k}.0"));
        let mut cm = execwatch::fixtures::Cm::new("ns-0", &name).doc(&doc).build();
        let started = Instant::now();
        if k % 2 == 0 {
            cm.metadata.resource_version = None;
            api.create(&PostParams::default(), &cm).await.expect("create");
        } else {
            let current = api.get(&name).await.expect("get");
            cm.metadata.resource_version = current.metadata.resource_version;
            api.replace(&name, &PostParams::default(), &cm).await.expect("replace");
        }
        took.push(started.elapsed());
        k += 1;
    }
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    Latency { p50: at(0.5), p99: at(0.99) }
}

pub fn print(f: &Figures) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let whole = Duration::from_secs_f64(f.prunable as f64 / f.default_rate.max(f64::MIN_POSITIVE));
    println!(
        "\n| executions | prunable (keep 10 per pipeline) | rate at --prune-rate {DEFAULT_RATE} | the whole prune at it | with no limit | writer p50 / p99 ms: before | during, at {DEFAULT_RATE}/s | during, no limit |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.2}/s | {:.1} h | {:.0}/s: {:.0} s | {} / {} | {} / {} | {} / {} |",
        f.executions,
        f.prunable,
        f.default_rate,
        whole.as_secs_f64() / 3600.0,
        f.unlimited_rate,
        f.prunable as f64 / f.unlimited_rate.max(f64::MIN_POSITIVE),
        ms(f.writer_before.p50),
        ms(f.writer_before.p99),
        ms(f.writer_default.p50),
        ms(f.writer_default.p99),
        ms(f.writer_unlimited.p50),
        ms(f.writer_unlimited.p99),
    );
}
