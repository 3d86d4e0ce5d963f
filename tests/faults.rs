//! The fault suite: the simulator's fault switches, driven over HTTP (`POST /_sim/faults`) as a
//! script outside cargo would, while pipeline writers go on writing. Afterwards the served set is
//! exactly the API server's, and the service holds no more tasks than before.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Cluster, DEADLINE, names, wait_until};
use execwatch::fixtures::Doc;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

async fn faults(sim: &k8s_sim::Sim, switches: Value) -> Value {
    let url = format!("{}/_sim/faults", sim.url());
    let response = reqwest::Client::new().post(url).json(&switches).send().await.expect("the simulator answers");
    assert_eq!(response.status(), 200, "{switches}");
    response.json().await.expect("the fault state")
}

/// Names of the labelled ConfigMaps the API server holds in `namespaces`.
async fn held(c: &Cluster, namespaces: &[&str]) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for ns in namespaces {
        let api: Api<ConfigMap> = Api::namespaced(c.writer.clone(), ns);
        let listed = api.list(&ListParams::default().labels(&common::selector().to_string())).await.expect("list");
        all.extend(listed.items.into_iter().filter_map(|cm| cm.metadata.name));
    }
    all
}

async fn served(c: &Cluster) -> BTreeSet<String> {
    let (_, body) = c.service.get("/api/v1/executions?limit=500").await;
    names(&body).into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_drops_and_410_storms_while_writing_end_with_exactly_the_servers_set() {
    let namespaces = ["team-a", "team-b"];
    let c = Cluster::start(&namespaces, &namespaces).await;
    c.wait_ready().await;
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = tasks();
    // Every 200 ms for 6 s, every watch is dropped and all history compacted (so resuming
    // gets 410 Gone), while executions are created, updated and deleted.
    let storm = async {
        for _ in 0..30 {
            faults(&c.sim, json!({"dropWatches": true, "compact": true})).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let writes = async {
        for i in 0..60 {
            let ns = namespaces[i % 2];
            c.put_execution(ns, &format!("run-{i}"), &Doc::new("web")).await;
            if i % 3 == 0 {
                c.put_execution(ns, &format!("run-{i}"), &Doc::new("web").phase("Succeeded")).await;
            }
            if i % 5 == 0 && i > 0 {
                c.delete(namespaces[(i - 1) % 2], &format!("run-{}", i - 1)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::join!(storm, writes);
    let expected = held(&c, &namespaces).await;
    assert!(expected.len() > 40, "{expected:?}");
    wait_until("the served set is exactly the API server's", || async { (served(&c).await == expected).then_some(()) })
        .await;
    let phases =
        c.service.wait_for("updates are served", "/api/v1/executions?phase=Succeeded&limit=500", |_| true).await;
    assert!(names(&phases).iter().all(|n| expected.contains(n)), "no ghost: {phases}");
    wait_until("tasks are back where they were", || async { (tasks() <= before + 2).then_some(()) }).await;
}

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
    let service = common::Running::start(sources, Duration::from_secs(60)).await;
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
    let watch = execwatch::source::kube::WatchSettings { list_timeout: Duration::from_secs(5), ..common::fast_watch() };
    let c = Cluster::start_with(&["team-a"], &["team-a"], watch, Duration::from_secs(60)).await;
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
