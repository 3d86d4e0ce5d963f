//! Retention against the simulator as API server with a SQLite archive: a dry run plans and
//! deletes nothing; enforce deletes exactly what the plan says, only terminal runs, only once
//! archived, each with an Event, and the archive lists every pruned execution afterwards.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, Setup, fast_watch, wait_until};
use execwatch::fixtures::Doc;
use execwatch::history::ArchiveSettings;
use execwatch::retention::Mode;
use execwatch::source::cluster::WatchSettings;
use k8s_openapi::api::core::v1::Event;
use serde_json::Value;

/// Keeps the newest two finished runs of each pipeline in team-a. The runs' payloads say they
/// started weeks before their ConfigMaps were made (a skew both ways): this policy trusts them.
const POLICY: &str =
    "rules:\n- name: keep-two\n  namespaces: [team-a]\n  keep: {newest: 2}\n  clockSkew: {action: payloadTime}\n";

/// Five finished runs of `web` (run-1 oldest) and an old one still running.
async fn write_runs(cluster: &Cluster) {
    let mut runs: Vec<(String, Doc)> = (1..=5)
        .map(|i| {
            (format!("run-{i}"), Doc::new("web").phase("Succeeded").started_at(&format!("2026-11-01T10:0{i}:00Z")))
        })
        .collect();
    runs.push(("run-0".to_owned(), Doc::new("web").phase("Running").started_at("2026-10-01T10:00:00Z")));
    write(cluster, &runs).await;
}

/// Writes runs into team-a as a pipeline writer does: `kubectl apply`, or the kube client where
/// kubectl is not installed.
async fn write(cluster: &Cluster, runs: &[(String, Doc)]) {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = common::clients::Kubectl::new(dir.path(), &cluster.sim.kubeconfig());
    let manifests: Vec<String> = runs.iter().map(|(name, doc)| common::manifest("team-a", name, &doc.yaml())).collect();
    if kubectl.ok(&["apply", "-f", "-"], Some(&manifests.join("---\n"))).await.is_none() {
        for (name, doc) in runs {
            cluster.put_execution("team-a", name, doc).await;
        }
    }
}

async fn start(mode: Mode, dir: &std::path::Path) -> Cluster {
    start_with(mode, dir, POLICY, fast_watch()).await
}

async fn start_with(mode: Mode, dir: &std::path::Path, policy: &str, watch: WatchSettings) -> Cluster {
    start_over(mode, dir, policy, watch, archive(dir, "history.db")).await
}

async fn start_over(
    mode: Mode,
    dir: &std::path::Path,
    policy: &str,
    watch: WatchSettings,
    archive: ArchiveSettings,
) -> Cluster {
    let file = dir.join("retention.yaml");
    std::fs::write(&file, policy).unwrap();
    let retention = common::retention(&file, mode, 50, "replica-a");
    let setup = Setup { archive: Some(archive), retention: Some(retention), metrics: true, ..Setup::default() };
    Cluster::launch(&["team-a", "execwatch"], &["team-a"], watch, setup).await
}

fn archive(dir: &std::path::Path, file: &str) -> ArchiveSettings {
    let url = format!("sqlite:{}", dir.join(file).display());
    ArchiveSettings::new(url.parse().unwrap(), std::time::Duration::from_secs(86400))
}

/// Replaces the policy file the way a ConfigMap mount or an editor does: a new file renamed in.
fn rewrite(dir: &std::path::Path, policy: &str) {
    let tmp = dir.join(".retention.yaml.tmp");
    std::fs::write(&tmp, policy).unwrap();
    std::fs::rename(&tmp, dir.join("retention.yaml")).unwrap();
}

/// A counter of `/metrics` with these labels (0 when absent).
async fn counter(cluster: &Cluster, name: &str, labels: &str) -> u64 {
    let text = reqwest::get(cluster.service.metrics.as_ref().unwrap()).await.unwrap().text().await.unwrap();
    let line = format!("{name}{{{labels}}} ");
    text.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |v| v.trim().parse().unwrap())
}

async fn plan_of(cluster: &Cluster) -> Value {
    cluster.service.get("/api/v1/retention/plan").await.1
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn a_dry_run_plans_the_oldest_finished_runs_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(Mode::DryRun, dir.path()).await;
    write_runs(&cluster).await;
    // Every run seen (the running one is written last), then three of them prunable.
    let plan = wait_until("the plan names three of six runs", || async {
        let plan = plan_of(&cluster).await;
        (plan["prunable"] == 3 && plan["rules"][0]["selected"] == 6).then_some(plan)
    })
    .await;
    assert_eq!(plan["mode"], "dryRun");
    let rule = &plan["rules"][0];
    assert_eq!(rule["first"], serde_json::json!(["team-a/run-1", "team-a/run-2", "team-a/run-3"]), "{plan}");
    assert_eq!((rule["selected"].as_u64(), rule["notTerminal"].as_u64()), (Some(6), Some(1)), "{plan}");
    // Several plans later, everything is still there.
    for _ in 0..5 {
        let seen = plan_of(&cluster).await;
        assert_eq!(seen["prunable"], 3);
    }
    assert_eq!(cluster.held(&["team-a"]).await.len(), 6);
    cluster.service.stop().await;
}

#[tokio::test]
async fn enforce_prunes_what_a_sqlite_archive_holds_and_it_lists_them_after() {
    let dir = tempfile::tempdir().unwrap();
    enforce_prunes_what_the_archive_holds(start(Mode::Enforce, dir.path()).await).await;
}

#[tokio::test]
async fn enforce_prunes_what_a_postgres_archive_holds_and_it_lists_them_after() {
    let Some(postgres) = common::postgres::Postgres::start() else { return };
    postgres.create("retention");
    let dir = tempfile::tempdir().unwrap();
    let archive = ArchiveSettings { url: postgres.url("retention").parse().unwrap(), ..archive(dir.path(), "unused") };
    let cluster = start_over(Mode::Enforce, dir.path(), POLICY, fast_watch(), archive).await;
    enforce_prunes_what_the_archive_holds(cluster).await;
}

async fn enforce_prunes_what_the_archive_holds(cluster: Cluster) {
    write_runs(&cluster).await;
    let kept = set(&["run-0", "run-4", "run-5"]);
    wait_until("the three oldest finished runs are pruned", || async {
        (cluster.held(&["team-a"]).await == kept).then_some(())
    })
    .await;
    let listed = cluster
        .service
        .wait_for("the archive lists the pruned runs", "/api/v1/executions", |b| {
            b["items"].as_array().is_some_and(|items| items.iter().filter(|e| e["archived"] == true).count() == 3)
        })
        .await;
    let archived: BTreeSet<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["archived"] == true)
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(archived, set(&["run-1", "run-2", "run-3"]));
    let events: kube::Api<Event> = kube::Api::namespaced(cluster.writer.clone(), "team-a");
    let events = events.list(&Default::default()).await.unwrap();
    let pruned: BTreeSet<String> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Pruned"))
        .filter_map(|e| e.involved_object.name.clone())
        .collect();
    assert_eq!(pruned, set(&["run-1", "run-2", "run-3"]), "one Event per pruned ConfigMap");
    let lease: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(cluster.writer.clone(), "execwatch");
    let lease = lease.get("execwatch-retention").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("replica-a"));
    cluster.service.stop().await;
}

#[tokio::test]
async fn without_delete_rights_retention_stays_idle_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(Mode::Enforce, dir.path()).await;
    cluster.sim.forbid("delete", "configmaps", true);
    write_runs(&cluster).await;
    let plan = wait_until("the plan says why nothing goes", || async {
        let plan = plan_of(&cluster).await;
        plan["idle"].as_str().is_some_and(|i| i.contains("not allowed to delete")).then_some(plan)
    })
    .await;
    assert!(plan["idle"].as_str().unwrap().contains("manifests/retention"), "{plan}");
    assert_eq!(cluster.held(&["team-a"]).await.len(), 6);
    cluster.service.stop().await;
}

/// `execwatch retention plan`, as an operator runs it before switching to enforce.
async fn plan_command(policy: &std::path::Path, source: &[&str], kubeconfig: Option<&std::path::Path>) -> Value {
    let mut command = common::binary::command(&["retention", "plan", "--retention"]);
    command.arg(policy).args(source).args(["-o", "json"]);
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    let out = tokio::time::timeout(common::DEADLINE, command.output()).await.expect("in time").expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test]
async fn the_plan_command_reads_a_directory_or_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(Mode::DryRun, dir.path()).await;
    write_runs(&cluster).await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.sim.kubeconfig()).unwrap();
    let policy = dir.path().join("retention.yaml");
    let from_cluster = plan_command(&policy, &["--namespaces", "team-a"], Some(&kubeconfig)).await;

    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let listed = cluster.writer.clone();
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(listed, "team-a");
    for cm in configmaps.list(&Default::default()).await.unwrap().items {
        let name = cm.metadata.name.clone().unwrap();
        std::fs::write(manifests.join(format!("{name}.yaml")), serde_yaml::to_string(&cm).unwrap()).unwrap();
    }
    let from_dir = plan_command(&policy, &["--from-dir", manifests.to_str().unwrap()], None).await;
    for plan in [&from_cluster, &from_dir] {
        assert_eq!(plan["prunable"], 3, "{plan}");
        assert_eq!(plan["rules"][0]["first"], serde_json::json!(["team-a/run-1", "team-a/run-2", "team-a/run-3"]));
    }
    assert_eq!(cluster.held(&["team-a"]).await.len(), 6, "a plan deletes nothing");
    cluster.service.stop().await;
}

/// A writer's update between the plan and the delete wins: the index (its watch silenced) and
/// the archive still hold the version the plan saw, so only the API server's precondition stands
/// between the pruner and the newer run, and it holds.
#[tokio::test]
async fn a_configmap_changed_after_the_plan_survives_its_delete() {
    let dir = tempfile::tempdir().unwrap();
    // Watches that outlast the test, so a silenced one stays silent.
    let watch = WatchSettings { watch_timeout: std::time::Duration::from_secs(300), ..fast_watch() };
    let cluster = start_with(Mode::Enforce, dir.path(), "rules: []\n", watch).await;
    write_runs(&cluster).await;
    wait_until("every run is archived", || async {
        let plan = plan_of(&cluster).await;
        let history = cluster.service.get("/api/v1/modules").await.1;
        let ready = history["items"].as_array().unwrap().iter().any(|m| m["name"] == "history" && m["ready"] == true);
        (ready && plan["rules"].as_array().is_some_and(Vec::is_empty) && archived_rows(dir.path()).await == 6)
            .then_some(())
    })
    .await;
    cluster.sim.silence_watches();
    write(&cluster, &[("run-1".to_owned(), Doc::new("web").phase("Failed").started_at("2026-11-01T10:01:00Z"))]).await;
    rewrite(dir.path(), "rules: [{name: everything, keep: {newest: 0}, clockSkew: {action: payloadTime}}]\n");
    let survivors = set(&["run-0", "run-1"]);
    wait_until("the other finished runs are pruned", || async {
        (cluster.held(&["team-a"]).await == survivors).then_some(())
    })
    .await;
    wait_until("the refused delete is counted", || async {
        (counter(&cluster, "execwatch_retention_skipped_total", "reason=\"changed\"").await > 0).then_some(())
    })
    .await;
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.writer.clone(), "team-a");
    let run = configmaps.get("run-1").await.unwrap();
    assert!(run.data.unwrap().values().any(|d| d.contains("phase: Failed")), "the writer's version stands");
    cluster.service.stop().await;
}

async fn archived_rows(dir: &std::path::Path) -> i64 {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite:{}", dir.join("history.db").display());
    let Ok(pool) = sqlx::AnyPool::connect(&url).await else { return 0 };
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM executions").fetch_one(&pool).await.unwrap_or(0);
    pool.close().await;
    count
}

/// An edit that does not load is refused with its reason, and the policy before it stays.
#[tokio::test]
async fn a_bad_policy_edit_is_refused_and_the_previous_policy_stays() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(Mode::DryRun, dir.path()).await;
    write_runs(&cluster).await;
    wait_until("the plan names three runs", || async { (plan_of(&cluster).await["prunable"] == 3).then_some(()) })
        .await;
    rewrite(dir.path(), "rules: [{name: broken, keep: {newest: -1}}]\n");
    let plan = wait_until("the plan says why the edit is refused", || async {
        let plan = plan_of(&cluster).await;
        plan["policyError"].as_str().is_some_and(|e| e.contains("/rules/0/keep/newest")).then_some(plan)
    })
    .await;
    assert_eq!((plan["prunable"].as_u64(), plan["rules"][0]["name"].as_str()), (Some(3), Some("keep-two")), "{plan}");
    let modules = cluster.service.get("/api/v1/modules").await.1;
    let retention = modules["items"].as_array().unwrap().iter().find(|m| m["name"] == "retention").unwrap().clone();
    assert!(retention["lastError"].as_str().unwrap().contains("keep/newest"), "{retention}");
    rewrite(dir.path(), "rules: [{name: keep-one, keep: {newest: 1}, clockSkew: {action: payloadTime}}]\n");
    wait_until("the mended file is in force", || async {
        let plan = plan_of(&cluster).await;
        (plan["prunable"] == 4 && plan["policyError"].is_null()).then_some(())
    })
    .await;
    cluster.service.stop().await;
}

/// Two replicas, each with an archive of its own, prune 10 000 ConfigMaps together: the Lease
/// lets one prune at a time, no ConfigMap is deleted successfully twice, none is missed, and
/// deletes never come faster than the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_prune_ten_thousand_one_at_a_time_within_the_rate() {
    use futures::StreamExt;
    const RUNS: usize = 10_000;
    const RATE: u32 = 200;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("retention.yaml");
    std::fs::write(&policy, "rules: [{name: all, keep: {newest: 0}, clockSkew: {action: payloadTime}}]\n").unwrap();
    let sim = k8s_sim::Sim::start().await.unwrap();
    sim.create_namespace("team-a");
    sim.create_namespace("execwatch");
    let writer = common::client_for(&sim);
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(writer, "team-a");
    futures::stream::iter(0..RUNS)
        .map(|i| {
            let cm = execwatch::fixtures::Cm::new("team-a", &format!("run-{i:05}"))
                .doc(&Doc::new(&format!("p-{}", i % 50)).phase("Succeeded"))
                .build();
            let api = configmaps.clone();
            async move { api.create(&Default::default(), &cm).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;

    let replica = |name: &str| {
        let retention = common::retention(&policy, Mode::Enforce, RATE, name);
        let setup = Setup {
            archive: Some(archive(dir.path(), &format!("{name}.db"))),
            retention: Some(retention),
            metrics: true,
            ..Setup::default()
        };
        let sources = execwatch::source::Sources::Kube {
            client: common::client_for(&sim),
            namespaces: vec!["team-a".to_owned()].into(),
            watch: fast_watch(),
        };
        common::Running::launch(sources, setup)
    };
    let (a, b) = (replica("replica-a").await, replica("replica-b").await);
    let pruned = || async {
        let mut pruned = 0;
        for replica in [&a, &b] {
            let text = reqwest::get(replica.metrics.as_ref().unwrap()).await.unwrap().text().await.unwrap();
            let line = text.lines().find_map(|l| l.strip_prefix("execwatch_retention_pruned_total{rule=\"all\"} "));
            pruned += line.map_or(0, |v| v.trim().parse::<usize>().unwrap());
        }
        pruned
    };
    let ingest = std::time::Duration::from_secs(120);
    common::wait_until_within("pruning starts", ingest, || async { (pruned().await > 0).then_some(()) }).await;
    let started = std::time::Instant::now();
    let within = std::time::Duration::from_secs(RUNS as u64 / RATE as u64 * 6);
    common::wait_until_within("every ConfigMap is pruned", within, || async { (pruned().await >= RUNS).then_some(()) })
        .await;
    let took = started.elapsed();
    let slowest = std::time::Duration::from_secs_f64((RUNS - 1) as f64 / RATE as f64 * 0.95);
    assert!(took >= slowest, "{RUNS} deletes took {took:?}: faster than {RATE} per second");
    assert_eq!(configmaps.list_metadata(&Default::default()).await.unwrap().items.len(), 0, "none is left");
    assert_eq!(pruned().await, RUNS, "every ConfigMap deleted successfully exactly once, by one replica or the other");
    let deletes = sim.requests("delete", "configmaps", "team-a") as usize;
    eprintln!("{RUNS} pruned in {took:?}; {deletes} delete requests reached the API server");
    a.stop().await;
    b.stop().await;
}

/// An archive that cannot be reached holds nothing, so nothing is pruned: the plan still names
/// what would go, and the module says why it does not.
#[tokio::test]
async fn nothing_is_pruned_that_the_archive_does_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let unreachable = format!("sqlite:{}", dir.path().join("no-such-dir/history.db").display());
    let archive = ArchiveSettings { url: unreachable.parse().unwrap(), ..archive(dir.path(), "unused") };
    let cluster = start_over(Mode::Enforce, dir.path(), POLICY, fast_watch(), archive).await;
    write_runs(&cluster).await;
    let plan = wait_until("the plan says why nothing goes", || async {
        let plan = plan_of(&cluster).await;
        (plan["prunable"] == 3 && plan["idle"].as_str().is_some_and(|i| i.contains("archive"))).then_some(plan)
    })
    .await;
    assert!(plan["idle"].as_str().unwrap().contains("cannot ask the archive"), "{plan}");
    assert_eq!(cluster.held(&["team-a"]).await.len(), 6);
    cluster.service.stop().await;
}

/// The plan is counted over the namespaces the caller may read, names included.
#[tokio::test]
async fn the_plan_shows_each_caller_only_the_namespaces_they_may_read() {
    use execwatch::access::Access;
    use execwatch::access::tokens::TokenFile;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for (ns, count) in [("team-a", 3), ("team-b", 5)] {
        for i in 0..count {
            let doc = Doc::new("web").phase("Succeeded").started_at(&format!("2026-11-01T10:0{i}:00Z"));
            std::fs::write(data.join(format!("{ns}-{i}.yaml")), common::manifest(ns, &format!("run-{i}"), &doc.yaml()))
                .unwrap();
        }
    }
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, common::tokens_file(&[("a", "token-a", "[team-a]"), ("ops", "token-ops", "['*']")]))
        .unwrap();
    let policy = dir.path().join("retention.yaml");
    // A rule named after what team-b is about: team-a's reader is not shown it.
    let rules = "rules:\n- {name: keep-project-falcon-acquisition, namespaces: [team-b], keep: {newest: 1}}\n\
                 - {name: all, keep: {newest: 1}}\n";
    std::fs::write(&policy, rules).unwrap();
    let setup = Setup {
        access: Access::tokens(TokenFile::load(&tokens, std::time::Duration::from_millis(100)).unwrap()),
        retention: Some(common::retention(&policy, Mode::DryRun, 5, "replica-a")),
        ..Setup::default()
    };
    let service = common::Running::launch(common::dir_source(&data, std::time::Duration::from_millis(50)), setup).await;
    let as_caller = |token: &'static str| {
        let service = &service;
        async move {
            wait_until("a plan over both namespaces", || async {
                let plan: Value = service.get_as("/api/v1/retention/plan", "token-ops").await.json().await.ok()?;
                (plan["prunable"] == 6).then_some(())
            })
            .await;
            let plan: Value = service.get_as("/api/v1/retention/plan", token).await.json().await.unwrap();
            plan
        }
    };
    let a = as_caller("token-a").await;
    assert_eq!((a["prunable"].as_u64(), a["rules"][0]["selected"].as_u64()), (Some(2), Some(3)), "{a}");
    let first: Vec<&str> = a["rules"][0]["first"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(first.iter().all(|n| n.starts_with("team-a/")), "{a}");
    let names = |plan: &Value| -> Vec<String> {
        plan["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&a), ["all"], "{a}");
    let ops = as_caller("token-ops").await;
    assert_eq!(names(&ops), ["keep-project-falcon-acquisition", "all"], "{ops}");
    let selected: u64 = ops["rules"].as_array().unwrap().iter().map(|r| r["selected"].as_u64().unwrap()).sum();
    assert_eq!((ops["prunable"].as_u64(), selected), (Some(6), 8), "{ops}");
    let (status, _) = (service.get_as("/api/v1/retention/plan", "no-such-token").await.status().as_u16(), ());
    assert_eq!(status, 401);
    service.stop().await;
}

/// A run whose payload says it started long before its ConfigMap was created is as skewed as
/// one that claims to be newer: with `clockSkew` left at `keep`, a policy of age keeps it.
#[tokio::test]
async fn a_run_claiming_to_be_older_than_its_configmap_is_skewed_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "rules:\n- name: month\n  namespaces: [team-a]\n  keep: {newest: 1, since: 30d}\n";
    let cluster = start_with(Mode::DryRun, dir.path(), policy, fast_watch()).await;
    let now = jiff::Timestamp::now();
    let runs = [
        ("run-now".to_owned(), Doc::new("web").phase("Succeeded").started_at(&now.to_string())),
        ("b-behind".to_owned(), Doc::new("web").phase("Succeeded").started_at("2025-12-05T10:00:00Z")),
    ];
    write(&cluster, &runs).await;
    let plan = wait_until("a plan of both runs", || async {
        let plan = plan_of(&cluster).await;
        (plan["rules"][0]["selected"] == 2).then_some(plan)
    })
    .await;
    assert_eq!((plan["rules"][0]["skewed"].as_u64(), plan["prunable"].as_u64()), (Some(1), Some(0)), "{plan}");
}

/// A holder whose clock runs an hour slow writes `renewTime`s an hour old, and renews all the
/// same: this replica sees the Lease change and leaves it alone, and takes it only once it has
/// seen it unchanged for the Lease's duration.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_renewed_by_a_replica_with_a_slow_clock_is_not_taken() {
    use k8s_openapi::api::coordination::v1::Lease;
    let dir = tempfile::tempdir().unwrap();
    let sim = k8s_sim::Sim::start().await.unwrap();
    sim.create_namespace("team-a");
    sim.create_namespace("execwatch");
    let leases: kube::Api<Lease> = kube::Api::namespaced(common::client_for(&sim), "execwatch");
    let an_hour_ago = || jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let held = serde_json::json!({"metadata": {"name": "execwatch-retention"}, "spec": {"holderIdentity": "replica-slow",
        "leaseDurationSeconds": 3, "renewTime": an_hour_ago().to_string()}});
    leases.create(&Default::default(), &serde_json::from_value(held).unwrap()).await.unwrap();
    let file = dir.path().join("retention.yaml");
    std::fs::write(&file, POLICY).unwrap();
    let setup = Setup {
        archive: Some(archive(dir.path(), "history.db")),
        retention: Some(common::retention(&file, Mode::Enforce, 50, "replica-a")),
        metrics: true,
        ..Setup::default()
    };
    let sources = execwatch::Sources::Kube {
        client: common::client_for(&sim),
        namespaces: vec!["team-a".to_owned()].into(),
        watch: fast_watch(),
    };
    let service = common::Running::launch(sources, setup).await;
    let writer = common::client_for(&sim);
    let cluster = Cluster { sim, service, writer };
    write_runs(&cluster).await;
    wait_until("a plan to prune three", || async { (plan_of(&cluster).await["prunable"] == 3).then_some(()) }).await;
    // The slow holder renews every half second for twice the Lease's duration.
    let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
    for _ in 0..12 {
        every.tick().await;
        let mut lease = leases.get("execwatch-retention").await.unwrap();
        let spec = lease.spec.as_mut().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("replica-slow"), "the Lease was taken from its holder");
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(an_hour_ago()));
        leases.replace("execwatch-retention", &Default::default(), &lease).await.unwrap();
    }
    assert_eq!(cluster.held(&["team-a"]).await.len(), 6, "nothing was pruned while another replica led");
    // It stops renewing: the Lease is taken once seen unchanged for its duration.
    let kept = set(&["run-0", "run-4", "run-5"]);
    wait_until("the three oldest finished runs are pruned", || async {
        (cluster.held(&["team-a"]).await == kept).then_some(())
    })
    .await;
    let lease = leases.get("execwatch-retention").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("replica-a"));
    cluster.service.stop().await;
}
