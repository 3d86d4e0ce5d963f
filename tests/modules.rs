//! Modules switched on and off at runtime through BackendModule objects in the simulator, and
//! through `--modules` without a cluster.

mod common;

use std::time::Duration;

use common::{Cluster, Running, names, rss_mib, wait_until};
use execwatch::Sources;
use execwatch::fixtures::Doc;
use execwatch::model::ModuleName;

const ALL: [&str; 3] = ["executions", "pipelines", "rejections"];

/// A cluster with the CRD and every module's object installed, the service ready with data.
async fn cluster_with_modules(runs: usize) -> Cluster {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.install_crd().await;
    for m in ALL {
        c.set_module(m, true).await;
    }
    for i in 0..runs {
        c.put_execution("team-a", &format!("run-{i}"), &Doc::new(if i % 2 == 0 { "web" } else { "api" })).await;
    }
    c.service.wait_for("every run is served", "/api/v1/executions?limit=500", |b| names(b).len() == runs).await;
    wait_until("the switch follows BackendModule objects", || async {
        let (_, body) = c.service.get("/api/v1/modules").await;
        (body["switch"]["state"] == "Following").then_some(())
    })
    .await;
    c
}

async fn module_not_installed(c: &Cluster, path: &str) -> Option<String> {
    let (status, body) = c.service.get(path).await;
    (status == 503 && body["code"] == "ModuleNotInstalled")
        .then(|| body["message"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn disabling_answers_503_within_a_second_stops_watchers_and_frees_state() {
    let c = cluster_with_modules(20).await;
    c.service
        .wait_for("pipelines are resolved", "/api/v1/pipelines", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    let watches = c.sim.open_watches();

    // A long poll that is waiting when the module goes away ends with the same 503.
    let held = c.service.etag("/api/v1/executions", None).await;
    let long_poll = c.service.long_poll("/api/v1/executions?timeoutSeconds=60", &held, None);
    c.service.wait_for("the poll is held", "/readyz", |b| b["waiting"] == 1).await;

    c.set_module("executions", false).await;
    let disabled_at = tokio::time::Instant::now();
    let message = wait_until("executions answers 503", || module_not_installed(&c, "/api/v1/executions")).await;
    assert!(disabled_at.elapsed() < Duration::from_secs(1), "took {:?}", disabled_at.elapsed());
    assert_eq!(message, "module executions is not installed");
    let polled = long_poll.await.unwrap().unwrap();
    assert_eq!(polled.status().as_u16(), 503);
    assert_eq!(polled.json::<serde_json::Value>().await.unwrap()["code"], "ModuleNotInstalled");

    // Every route of the module, and of the modules that depend on it.
    for path in ["/api/v1/namespaces/team-a/executions", "/api/v1/namespaces/team-a/executions/run-1"] {
        assert!(module_not_installed(&c, path).await.is_some(), "{path}");
    }
    let message = module_not_installed(&c, "/api/v1/pipelines").await.expect("pipelines depends on executions");
    assert!(message.contains("module executions is not installed"), "{message}");
    assert!(module_not_installed(&c, "/api/v1/rejections").await.is_some());
    let (status, _) = c.service.get("/api/v1/nothing-here").await;
    assert_eq!(status, 404, "unknown paths stay 404");

    wait_until("the ConfigMap watch is closed", || async { (c.sim.open_watches() < watches).then_some(()) }).await;
    let executions = c.module("executions").await;
    assert_eq!((executions["enabled"].as_bool(), executions["ready"].as_bool()), (Some(false), Some(false)));
    let pipelines = c.module("pipelines").await;
    assert_eq!(pipelines["enabled"], true);
    assert!(pipelines["lastError"].as_str().unwrap().contains("executions"), "{pipelines}");
    let ready = c.wait_ready().await;
    assert!(ready["sources"].as_array().unwrap().is_empty(), "the index is freed: {ready}");

    c.set_module("executions", true).await;
    c.service.wait_for("data is back after the sync", "/api/v1/executions?limit=500", |b| names(b).len() == 20).await;
    c.service
        .wait_for("pipelines are back", "/api/v1/pipelines", |b| b["items"].as_array().is_some_and(|i| i.len() == 2))
        .await;
}

#[tokio::test]
async fn a_disabled_module_leaves_the_others_serving() {
    let c = cluster_with_modules(3).await;
    c.set_module("pipelines", false).await;
    let message =
        wait_until("pipelines answers 503", || module_not_installed(&c, "/api/v1/namespaces/team-a/pipelines/web"))
            .await;
    assert_eq!(message, "module pipelines is not installed");
    assert_eq!(c.service.execution_names("/api/v1/executions").await.len(), 3);
    let (status, _) = c.service.get("/api/v1/rejections").await;
    assert_eq!(status, 200);
    let ready = c.wait_ready().await;
    assert_eq!(ready["ready"], true, "readiness counts enabled modules only");
}

#[tokio::test]
async fn crd_absent_at_start_uses_flags_and_is_picked_up_when_installed() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.put_execution("team-a", "run-1", &Doc::new("web")).await;
    c.service.wait_for("--modules apply without the CRD", "/api/v1/executions", |b| names(b) == ["run-1"]).await;
    let modules = c
        .service
        .wait_for("the missing CRD is reported", "/api/v1/modules", |b| b["switch"]["state"] == "CrdAbsent")
        .await;
    assert!(modules["items"].as_array().unwrap().iter().all(|m| m["enabled"] == true), "{modules}");
    assert!(modules["switch"]["lastError"].is_string());
    let (_, ready) = c.service.get("/readyz").await;
    assert_eq!(ready["switch"]["state"], "CrdAbsent", "the missing CRD shows in /readyz too: {ready}");

    c.install_crd().await;
    c.set_module("executions", true).await;
    c.set_module("rejections", true).await;
    wait_until("the CRD is followed and pipelines switched off", || module_not_installed(&c, "/api/v1/pipelines"))
        .await;
    let (_, modules) = c.service.get("/api/v1/modules").await;
    assert_eq!(modules["switch"]["state"], "Following");
    assert_eq!(c.service.execution_names("/api/v1/executions").await, ["run-1"]);
}

#[tokio::test]
async fn deleting_the_crd_falls_back_to_the_flags() {
    let c = cluster_with_modules(1).await;
    c.set_module("pipelines", false).await;
    wait_until("pipelines is switched off", || module_not_installed(&c, "/api/v1/pipelines")).await;
    let api: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        kube::Api::all(c.writer.clone());
    api.delete("backendmodules.pipelines.gitops.dev", &Default::default()).await.expect("delete the CRD");
    let modules = c
        .service
        .wait_for("the switch falls back to --modules", "/api/v1/modules", |b| b["switch"]["state"] == "CrdAbsent")
        .await;
    assert!(modules["items"].as_array().unwrap().iter().all(|m| m["enabled"] == true), "{modules}");
    let (status, _) = c.service.get("/api/v1/pipelines").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_silently_dead_switch_watch_is_noticed_within_the_watch_timeout() {
    let c = cluster_with_modules(1).await;
    c.sim.silence_watches();
    c.set_module("rejections", false).await;
    // The namespace watchers' settings (3 s timeout in tests) apply: not kube-runtime's 290 s.
    wait_until("the switch relists and sees the change", || module_not_installed(&c, "/api/v1/rejections")).await;
}

#[tokio::test]
async fn the_service_starts_with_its_modules_when_the_api_server_is_unreachable() {
    let sim = k8s_sim::Sim::start().await.unwrap();
    sim.stop();
    let sources = Sources::Kube {
        client: common::client_for(&sim),
        namespaces: vec!["team-a".into()].into(),
        watch: common::fast_watch(),
    };
    let service = Running::launch(sources, common::Setup::default()).await;
    assert_eq!(service.get("/livez").await.0, 200);
    let modules = service
        .wait_for("modules report the outage", "/api/v1/modules", |b| {
            b["items"][0]["lastError"].is_string() && b["switch"]["state"] == "Failing"
        })
        .await;
    assert!(
        modules["items"].as_array().unwrap().iter().all(|m| m["enabled"] == true && m["ready"] == false),
        "{modules}"
    );
    let (status, body) = service.get("/api/v1/executions").await;
    assert_eq!(status, 200, "enabled modules serve what they have, marked incomplete: {body}");
    assert_eq!(body["freshness"]["complete"], false);
    assert_eq!(service.get("/readyz").await.0, 503);
}

#[tokio::test]
async fn flags_choose_the_modules_without_a_cluster() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
    let sources = common::dir_source(&dir, Duration::from_secs(1));
    let service = Running::launch(
        sources,
        common::Setup { modules: vec![ModuleName::Pipelines, ModuleName::Rejections], ..common::Setup::default() },
    )
    .await;
    let (status, body) = service.get("/api/v1/namespaces/team-payments/pipelines/ledger").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("ModuleNotInstalled")));
    assert!(body["message"].as_str().unwrap().contains("module executions is not installed"), "{body}");
    let (_, modules) = service.get("/api/v1/modules").await;
    assert_eq!(modules["switch"]["state"], "Flags");
    let enabled: Vec<&str> = modules["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["enabled"] == true)
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(enabled, ["pipelines", "rejections"]);
    assert_eq!(modules["items"][1]["dependsOn"][0], "executions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_fast_toggles_leave_tasks_watches_and_memory_where_they_started() {
    let c = cluster_with_modules(300).await;
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    // One warm-up round, so pooled connections are in the baseline.
    toggle(&c, 1).await;
    let (base_tasks, base_watches, base_rss) = (tasks(), c.sim.open_watches(), rss_mib());

    toggle(&c, 100).await;

    wait_until("tasks and watches return to where they started", || async {
        (tasks() <= base_tasks + 4 && c.sim.open_watches() == base_watches).then_some(())
    })
    .await;
    let grown = rss_mib() - base_rss;
    assert!(grown < 48.0, "resident memory grew by {grown:.1} MiB over 100 toggles");
}

/// Switches executions and pipelines off and on `rounds` times, as fast as the API takes it,
/// then waits until everything is served again.
async fn toggle(c: &Cluster, rounds: usize) {
    for _ in 0..rounds {
        c.set_module("executions", false).await;
        c.set_module("pipelines", false).await;
        c.set_module("executions", true).await;
        c.set_module("pipelines", true).await;
    }
    c.service.wait_for("all runs are back", "/api/v1/executions?limit=500", |b| names(b).len() == 300).await;
    c.service
        .wait_for("pipelines are back", "/api/v1/pipelines", |b| b["items"].as_array().is_some_and(|i| i.len() == 2))
        .await;
}
