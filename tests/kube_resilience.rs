//! The Kubernetes source survives what real clusters do: refusals, late namespaces, restarts,
//! dropped and silent watches, `410 Gone`, and an API server that is down at start.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Cluster, fast_watch, names, sorted, wait_until};
use execwatch::Sources;
use execwatch::fixtures::{Cm, Doc};

#[tokio::test]
async fn forbidden_namespace_is_reported_without_holding_back_others_and_recovers() {
    let sim_namespaces = ["team-a", "team-b"];
    // Forbid team-b before the service ever starts.
    let sim = k8s_sim::Sim::start().await.unwrap();
    for ns in sim_namespaces {
        sim.create_namespace(ns);
    }
    sim.fail_namespace("team-b", Some(403));
    let c =
        common::Cluster { service: start_service(&sim, &sim_namespaces).await, writer: common::client_for(&sim), sim };
    c.put_execution("team-a", "a-1", &Doc::new("web")).await;

    let ready = c.wait_ready().await;
    let team_b = ready["sources"].as_array().unwrap().iter().find(|s| s["source"] == "team-b").unwrap().clone();
    assert_eq!(team_b["state"], "Failing", "{ready}");
    assert!(team_b["lastError"].as_str().unwrap().contains("forbidden"), "{ready}");

    let list = c.service.wait_for("team-a is served", "/api/v1/executions", |b| names(b) == ["a-1"]).await;
    assert_eq!(list["freshness"]["complete"], false, "team-b is missing: {list}");
    assert_eq!(list["freshness"]["incompleteSources"][0]["source"], "team-b");
    let (_, own) = c.service.get("/api/v1/namespaces/team-a/executions").await;
    assert_eq!(own["freshness"]["complete"], true, "team-a alone is complete: {own}");

    c.sim.fail_namespace("team-b", None);
    c.put_execution("team-b", "b-1", &Doc::new("api")).await;
    let list =
        c.service.wait_for("team-b recovers without restart", "/api/v1/executions", |b| names(b).len() == 2).await;
    c.service
        .wait_for("the list is complete again", "/api/v1/executions", |b| b["freshness"]["complete"] == true)
        .await;
    assert_eq!(sorted(&list), ["a-1", "b-1"]);
}

async fn start_service(sim: &k8s_sim::Sim, namespaces: &[&str]) -> common::Running {
    let sources = execwatch::Sources::Kube {
        client: common::client_for(sim),
        namespaces: namespaces.iter().map(|s| s.to_string()).collect::<Vec<_>>().into(),
        watch: fast_watch(),
    };
    common::Running::launch(sources, common::Setup::default()).await
}

#[tokio::test]
async fn namespace_created_late_shows_its_executions_without_restart() {
    let c = Cluster::start(&["team-a"], &["team-a", "late"]).await;
    c.wait_ready().await;
    c.create_namespace("late").await;
    c.put_execution("late", "first", &Doc::new("web")).await;
    c.service
        .wait_for("the late namespace is served", "/api/v1/namespaces/late/executions", |b| names(b) == ["first"])
        .await;
}

#[tokio::test]
async fn watches_survive_an_api_server_restart() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.put_execution("team-a", "before", &Doc::new("web")).await;
    c.service.wait_for("the first run is served", "/api/v1/executions", |b| names(b) == ["before"]).await;
    c.sim.stop();
    let body = c
        .service
        .wait_for("the outage is reported", "/api/v1/executions", |b| b["freshness"]["complete"] == false)
        .await;
    assert_eq!(names(&body), ["before"], "the last good data is still served");
    c.sim.restart().await.unwrap();
    c.put_execution("team-a", "after", &Doc::new("web")).await;
    c.service
        .wait_for("the watch is back", "/api/v1/executions", |b| {
            names(b).len() == 2 && b["freshness"]["complete"] == true
        })
        .await;
}

#[tokio::test]
async fn dropped_watches_reconnect() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.wait_ready().await;
    for round in 0..3 {
        wait_until("a watch is open", || async { (c.sim.open_watches() > 0).then_some(()) }).await;
        c.sim.drop_watches();
        c.put_execution("team-a", &format!("run-{round}"), &Doc::new("web")).await;
        c.service
            .wait_for("the run is seen after the drop", "/api/v1/executions", |b| names(b).len() == round + 1)
            .await;
    }
}

#[tokio::test]
async fn silently_dead_watch_is_noticed_within_the_watch_timeout() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.wait_ready().await;
    wait_until("a watch is open", || async { (c.sim.open_watches() > 0).then_some(()) }).await;
    c.sim.silence_watches();
    let silenced_at = tokio::time::Instant::now();
    c.put_execution("team-a", "during-silence", &Doc::new("web")).await;
    c.service
        .wait_for("the run is seen on a new watch", "/api/v1/executions", |b| names(b) == ["during-silence"])
        .await;
    // kube-rs notices an idle watch after the watch timeout plus 5s; allow a few seconds more.
    let bound = fast_watch().watch_timeout + Duration::from_secs(5 + 3);
    assert!(silenced_at.elapsed() < bound, "took {:?}", silenced_at.elapsed());
}

#[tokio::test]
async fn an_ordinary_watch_timeout_resumes_without_a_new_list() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.wait_ready().await;
    let lists = c.sim.requests("list", "configmaps", "team-a");
    let watches = c.sim.requests("watch", "configmaps", "team-a");
    wait_until("two more watches have timed out and resumed", || async {
        (c.sim.requests("watch", "configmaps", "team-a") >= watches + 2).then_some(())
    })
    .await;
    assert_eq!(c.sim.requests("list", "configmaps", "team-a"), lists, "resumed from the last resourceVersion");
    c.put_execution("team-a", "after-timeouts", &Doc::new("web")).await;
    c.service.wait_for("the resumed watch delivers", "/api/v1/executions", |b| names(b) == ["after-timeouts"]).await;
}

#[tokio::test]
async fn gone_relists_serving_the_previous_complete_snapshot_meanwhile() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    for name in ["keep", "doomed"] {
        c.put_execution("team-a", name, &Doc::new("web")).await;
    }
    c.service.wait_for("both runs are served", "/api/v1/executions", |b| names(b).len() == 2).await;
    let lists = c.sim.requests("list", "configmaps", "team-a");

    // The open watch misses a delete and a create, then history is compacted and the watch
    // ends: resuming from its resourceVersion gets 410 Gone and the watcher must relist, slowly.
    c.sim.silence_watches();
    c.delete("team-a", "doomed").await;
    c.put_execution("team-a", "newcomer", &Doc::new("web")).await;
    c.sim.compact();
    c.sim.set_latency(Duration::from_millis(300));
    c.sim.end_watches();

    let before: BTreeSet<String> = ["doomed", "keep"].map(String::from).into();
    let after: BTreeSet<String> = ["keep", "newcomer"].map(String::from).into();
    let seen_before = std::cell::Cell::new(false);
    wait_until("the relist is swapped in", || async {
        let (_, body) = c.service.get("/api/v1/executions").await;
        let now: BTreeSet<String> = names(&body).into_iter().collect();
        assert!(now == before || now == after, "a partial or mixed snapshot was served: {now:?}");
        seen_before.set(seen_before.get() || now == before);
        (now == after).then_some(())
    })
    .await;
    assert!(seen_before.get(), "the previous snapshot was served while the relist ran");
    assert!(c.sim.requests("gone", "configmaps", "team-a") > 0, "the resumed watch was answered 410");
    assert!(c.sim.requests("list", "configmaps", "team-a") > lists, "410 forced a relist");
}

#[tokio::test]
async fn api_server_down_at_start_is_not_ready_until_it_is_back() {
    let sim = k8s_sim::Sim::start().await.unwrap();
    sim.create_namespace("team-a");
    sim.stop();
    let service = start_service(&sim, &["team-a"]).await;
    let (status, body) = service.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(service.get("/livez").await.0, 200, "liveness never depends on the API server");
    wait_until("the failure is reported", || async {
        let (_, body) = service.get("/readyz").await;
        body["sources"][0]["lastError"].is_string().then_some(())
    })
    .await;
    assert_eq!(service.get("/readyz").await.0, 503, "an unreachable server is not a settled namespace");
    sim.restart().await.unwrap();
    wait_until("the service becomes ready", || async { (service.get("/readyz").await.0 == 200).then_some(()) }).await;
}

#[tokio::test]
async fn data_of_a_failing_namespace_is_marked_stale_after_the_bound() {
    let c = Cluster::launch(
        &["team-a"],
        &["team-a"],
        fast_watch(),
        common::Setup { staleness: Duration::from_millis(200), ..common::Setup::default() },
    )
    .await;
    c.put_execution("team-a", "old-news", &Doc::new("web")).await;
    c.service.wait_for("the run is served", "/api/v1/executions", |b| names(b) == ["old-news"]).await;
    c.sim.fail_namespace("team-a", Some(500));
    c.sim.drop_watches();
    let body =
        c.service.wait_for("the data is marked stale", "/api/v1/executions", |b| b["freshness"]["stale"] == true).await;
    assert_eq!(names(&body), ["old-news"], "stale data is served, and says so");
    assert_eq!(body["freshness"]["incompleteSources"][0]["stale"], true);
}

#[tokio::test]
async fn a_namespace_selector_follows_namespaces_as_they_are_labelled_unlabelled_and_deleted() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};
    let sim = k8s_sim::Sim::start().await.unwrap();
    let writer = common::client_for(&sim);
    let namespaces: kube::Api<Namespace> = kube::Api::all(writer.clone());
    let label = |on: bool| {
        let value = if on { serde_json::json!("enabled") } else { serde_json::Value::Null };
        Patch::Merge(serde_json::json!({"metadata": {"labels": {"pipelines.gitops.dev/executions": value}}}))
    };
    for (ns, on) in [("team-a", true), ("team-b", false)] {
        let object: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        namespaces.create(&Default::default(), &object).await.unwrap();
        namespaces.patch(ns, &PatchParams::default(), &label(on)).await.unwrap();
        let cm = Cm::new(ns, &format!("{ns}-run")).doc(&Doc::new("web")).build();
        kube::Api::namespaced(writer.clone(), ns).create(&Default::default(), &cm).await.unwrap();
    }
    let selector = "pipelines.gitops.dev/executions=enabled".parse().unwrap();
    let sources = Sources::Kube {
        client: common::client_for(&sim),
        namespaces: execwatch::source::Namespaces::Selected(selector),
        watch: fast_watch(),
    };
    let service = common::Running::launch(sources, common::Setup::default()).await;
    service.wait_for("the labelled namespace is served", "/api/v1/executions", |b| sorted(b) == ["team-a-run"]).await;
    service.wait_for("the service is ready", "/readyz", |b| b["ready"] == true).await;

    namespaces.patch("team-b", &PatchParams::default(), &label(true)).await.unwrap();
    service
        .wait_for("a newly labelled namespace is picked up", "/api/v1/executions", |b| {
            sorted(b) == ["team-a-run", "team-b-run"]
        })
        .await;
    namespaces.patch("team-a", &PatchParams::default(), &label(false)).await.unwrap();
    service.wait_for("an unlabelled one is dropped", "/api/v1/executions", |b| sorted(b) == ["team-b-run"]).await;
    let (status, _) = service.get("/api/v1/namespaces/team-a/executions").await;
    assert_eq!(status, 404, "team-a is no longer watched");
    namespaces.delete("team-b", &Default::default()).await.unwrap();
    service.wait_for("a deleted one is dropped", "/api/v1/executions", |b| sorted(b).is_empty()).await;
    let (status, ready) = service.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
}
