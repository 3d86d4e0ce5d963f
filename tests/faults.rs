//! The fault suite: the simulator's fault switches, driven over HTTP (`POST /_sim/faults`) as a
//! script outside cargo would. A list that hangs, an API server that refuses, one that is slow
//! and one that is gone: each is retried at the backoff, and recovered from. (Watch-drop and 410
//! storms are in `storm.rs`, alone in their process so that its memory can be measured.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Cluster, DEADLINE, names, sim_faults as faults, wait_until};
use execwatch::fixtures::Doc;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_list_that_never_answers_is_abandoned_and_retried() {
    let sim = k8s_sim::Sim::start().await.expect("simulator starts");
    sim.create_namespace("team-a");
    let writer: Api<ConfigMap> = Api::namespaced(common::client_for(&sim), "team-a");
    let run = execwatch::fixtures::Cm::new("team-a", "run-1").doc(&Doc::new("web")).build();
    writer.create(&Default::default(), &run).await.expect("create");
    let state = faults(&sim, json!({"hangLists": true})).await;
    assert_eq!(state["hangLists"], true);
    let sources = execwatch::Sources::Kube {
        client: common::client_for(&sim),
        namespaces: vec!["team-a".to_owned()].into(),
        watch: common::fast_watch(),
    };
    let service = common::Running::launch(sources, common::Setup::default()).await;
    // fast_watch() gives a list 2 s: the source reports the stall instead of waiting forever.
    wait_until("the stalled list is reported", || async {
        let (_, body) = service.get("/readyz").await;
        let error = body["sources"][0]["lastError"].as_str().unwrap_or_default().to_owned();
        error.contains("did not answer").then_some(())
    })
    .await;
    assert_eq!(service.get("/readyz").await.0, 503, "not ready while the list hangs");
    faults(&sim, json!({"hangLists": false})).await;
    let started = tokio::time::Instant::now();
    service.wait_for("the retried list is served", "/api/v1/executions", |b| names(b) == ["run-1"]).await;
    assert!(started.elapsed() < DEADLINE);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_and_slow_api_servers_are_backed_off_and_recovered_from() {
    // A list may take 5 s here: longer than the slow server's 2 s per request.
    let watch =
        execwatch::source::cluster::WatchSettings { list_timeout: Duration::from_secs(5), ..common::fast_watch() };
    let c = Cluster::launch(&["team-a"], &["team-a"], watch, common::Setup::default()).await;
    c.put_execution("team-a", "run-1", &Doc::new("web")).await;
    c.service.wait_for("run-1 is served", "/api/v1/executions", |b| names(b) == ["run-1"]).await;

    faults(&c.sim, json!({"failNamespace": {"namespace": "team-a", "status": 403}, "dropWatches": true})).await;
    let lists_before = c.sim.requests("list", "configmaps", "team-a");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lists = c.sim.requests("list", "configmaps", "team-a") - lists_before;
    // fast_watch() backs off to at most 500 ms: about 6 lists in 3 s, not a hot loop.
    assert!((1..=8).contains(&lists), "{lists} lists in 3 s against a refusing API server");
    let (_, body) = c.service.get("/api/v1/executions").await;
    assert_eq!(names(&body), ["run-1"], "the last good data is still served");
    assert_eq!(body["freshness"]["complete"], false);

    // Healed, but 2 s per request: it recovers, slowly, and serves what was written meanwhile.
    faults(&c.sim, json!({"failNamespace": {"namespace": "team-a", "status": null}, "latencyMs": 2000})).await;
    c.put_execution("team-a", "run-2", &Doc::new("web")).await;
    c.service
        .wait_for("recovered through a slow API server", "/api/v1/executions", |b| {
            names(b).len() == 2 && b["freshness"]["complete"] == true
        })
        .await;
    faults(&c.sim, json!({"latencyMs": 0})).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_api_server_is_retried_at_the_backoff_not_in_a_hot_loop() {
    let watch =
        execwatch::source::cluster::WatchSettings { backoff_max: Duration::from_secs(1), ..common::fast_watch() };
    let c = Cluster::launch(&["team-a", "team-b"], &["team-a", "team-b"], watch, common::Setup::default()).await;
    c.put_execution("team-a", "run-1", &Doc::new("web")).await;
    c.service.wait_for("run-1 is served", "/api/v1/executions", |b| names(b) == ["run-1"]).await;

    // The API server dies: every connection to its address is accepted and dropped at once (a
    // refused connection cannot be counted), so every request fails as it would against a dead
    // server.
    c.sim.stop();
    let listener = loop {
        match tokio::net::TcpListener::bind(c.sim.addr()).await {
            Ok(listener) => break listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => tokio::task::yield_now().await,
            Err(e) => panic!("bind {}: {e}", c.sim.addr()),
        }
    };
    let attempts = Arc::new(AtomicUsize::new(0));
    let dead = tokio::spawn({
        let attempts = attempts.clone();
        async move {
            while let Ok((connection, _)) = listener.accept().await {
                attempts.fetch_add(1, Ordering::SeqCst);
                drop(connection);
            }
        }
    });
    c.service.wait_for("the outage is reported", "/api/v1/executions", |b| b["freshness"]["complete"] == false).await;
    // Once the backoff has grown to its 1 s ceiling, each of the two namespaces' watchers tries
    // about once a second: some 10 connections in 5 s, where a hot loop makes thousands.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = attempts.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tried = attempts.load(Ordering::SeqCst) - before;
    println!("{tried} connections in 5 s to a dead API server");
    assert!((2..=16).contains(&tried), "{tried} connections in 5 s to a dead API server");
    let (_, body) = c.service.get("/api/v1/executions").await;
    assert_eq!(names(&body), ["run-1"], "the last good data is still served");

    dead.abort();
    let _ = dead.await;
    c.sim.restart().await.expect("the API server comes back");
    c.put_execution("team-b", "run-2", &Doc::new("web")).await;
    c.service
        .wait_for("recovered once the API server is back", "/api/v1/executions", |b| {
            names(b).len() == 2 && b["freshness"]["complete"] == true
        })
        .await;
}
