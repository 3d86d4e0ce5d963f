//! Live streams (Server-Sent Events), read with a real SSE client (`eventsource-stream`) against
//! the service on the simulator: order, resumption, resync, slow readers, module switch-off and
//! shutdown.

mod common;

use std::time::Duration;

use common::{Cluster, DEADLINE, names};
use eventsource_stream::{Event, Eventsource};
use execwatch::fixtures::{Cm, Doc};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Events = std::pin::Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Opens a stream of `path`, resuming after `last` when given.
async fn open(c: &Cluster, path: &str, last: Option<&str>) -> Events {
    let mut request =
        reqwest::Client::new().get(format!("{}{path}", c.service.base)).header("accept", "text/event-stream");
    if let Some(id) = last {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.expect("service answers");
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Box::pin(response.bytes_stream().eventsource().map(|e| e.expect("well-formed events")))
}

/// The next event that is not a heartbeat, within the deadline.
async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(DEADLINE, events.next()).await.expect("an event in time").expect("the stream goes on")
}

fn json(event: &Event) -> serde_json::Value {
    serde_json::from_str(&event.data).expect("JSON data")
}

#[tokio::test]
async fn a_list_stream_sees_changes_in_order_and_resumes_without_a_gap_or_a_duplicate() {
    let c = Cluster::start(&["team-a", "team-b"], &["team-a", "team-b"]).await;
    c.wait_ready().await;
    let mut events = open(&c, "/api/v1/namespaces/team-a/executions", None).await;
    let snapshot = next(&mut events).await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.retry, Some(Duration::from_secs(2)));
    assert!(names(&json(&snapshot)).is_empty());

    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Running")).await;
    c.put_execution("team-b", "elsewhere", &Doc::new("api")).await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    c.delete("team-a", "run-1").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = next(&mut events).await;
        seen.push((e.event.clone(), json(&e)["name"].as_str().unwrap().to_owned(), json(&e)["phase"].clone()));
    }
    let phase = |p: &str| serde_json::Value::from(p);
    assert_eq!(
        seen,
        [
            ("added".into(), "run-1".into(), phase("Running")),
            ("modified".into(), "run-1".into(), phase("Succeeded")),
            ("deleted".into(), "run-1".into(), phase("Succeeded")),
        ],
        "team-b's change is not in team-a's stream"
    );

    // Disconnect after `added` of run-2, miss two changes, reconnect with Last-Event-ID.
    c.put_execution("team-a", "run-2", &Doc::new("web")).await;
    let added = next(&mut events).await;
    assert_eq!((added.event.as_str(), json(&added)["name"].as_str()), ("added", Some("run-2")));
    drop(events);
    c.put_execution("team-a", "run-2", &Doc::new("web").phase("Failed")).await;
    c.put_execution("team-a", "run-3", &Doc::new("web")).await;
    c.service
        .wait_for("both changes are served", "/api/v1/namespaces/team-a/executions", |b| names(b).len() == 2)
        .await;
    let mut resumed = open(&c, "/api/v1/namespaces/team-a/executions", Some(&added.id)).await;
    let first = next(&mut resumed).await;
    let second = next(&mut resumed).await;
    assert_eq!((first.event.as_str(), json(&first)["name"].as_str()), ("modified", Some("run-2")));
    assert_eq!(json(&first)["phase"], "Failed");
    assert_eq!((second.event.as_str(), json(&second)["name"].as_str()), ("added", Some("run-3")));
    // `instance:sealed`: the index that issued it, and a place in its history only it can open.
    let split = |id: &str| id.split_once(':').map(|(i, s)| (i.to_owned(), s.to_owned())).unwrap();
    let ids: Vec<(String, String)> = [&added, &first, &second].iter().map(|e| split(&e.id)).collect();
    assert!(ids.windows(2).all(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1), "one instance, distinct ids: {ids:?}");

    // An id the history does not hold (a forged one), or one another replica issued, gets a
    // fresh snapshot as `resync`.
    let instance = &ids[0].0;
    let other = if instance == "00000000" { "00000001" } else { "00000000" };
    for id in [format!("{instance}:{}", "0".repeat(32)), format!("{other}:{}", ids[2].1)] {
        let mut lost = open(&c, "/api/v1/namespaces/team-a/executions", Some(&id)).await;
        let resync = next(&mut lost).await;
        assert_eq!(resync.event, "resync", "{id}");
        assert_eq!(names(&json(&resync)), ["run-2", "run-3"]);
    }
}

#[tokio::test]
async fn an_execution_stream_sends_its_state_then_each_change_then_deleted_and_ends() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Running")).await;
    let path = "/api/v1/namespaces/team-a/executions/run-1";
    c.service.wait_for("run-1 is served", path, |b| b["name"] == "run-1").await;
    let mut events = open(&c, path, None).await;
    let snapshot = next(&mut events).await;
    assert_eq!(
        (snapshot.event.as_str(), json(&snapshot)["execution"]["phase"].as_str()),
        ("snapshot", Some("Running"))
    );
    c.put_execution("team-a", "other", &Doc::new("web")).await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    let modified = next(&mut events).await;
    assert_eq!(modified.event, "modified", "another execution's change is not sent");
    assert_eq!(json(&modified)["execution"]["phase"], "Succeeded");
    c.delete("team-a", "run-1").await;
    assert_eq!(next(&mut events).await.event, "deleted");
    let closed = next(&mut events).await;
    assert_eq!(closed.event, "closed");
    let end = tokio::time::timeout(DEADLINE, events.next()).await.expect("the stream ends");
    assert!(end.is_none());
}

#[tokio::test]
async fn a_stream_ends_after_its_longest_life_and_resumes_where_it_ended() {
    let limits = execwatch::api::CallerLimits::new(64, 10_000, None).with_max_stream_life(Duration::from_secs(1));
    let setup = common::Setup { limits, ..common::Setup::default() };
    let c = Cluster::launch(&["team-a"], &["team-a"], common::fast_watch(), setup).await;
    c.wait_ready().await;
    let mut events = open(&c, "/api/v1/namespaces/team-a/executions", None).await;
    let snapshot = next(&mut events).await;
    let closed = next(&mut events).await;
    assert_eq!(closed.event, "closed");
    assert!(json(&closed)["reason"].as_str().unwrap().contains("Last-Event-ID"), "{closed:?}");
    c.put_execution("team-a", "meanwhile", &Doc::new("web")).await;
    let mut resumed = open(&c, "/api/v1/namespaces/team-a/executions", Some(&snapshot.id)).await;
    let added = next(&mut resumed).await;
    assert_eq!((added.event.as_str(), json(&added)["name"].as_str()), ("added", Some("meanwhile")));
}

#[tokio::test]
async fn pipelines_stream_their_changes() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.wait_ready().await;
    let mut events = open(&c, "/api/v1/pipelines?watch=true", None).await;
    assert_eq!(next(&mut events).await.event, "snapshot");
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Running")).await;
    let added = next(&mut events).await;
    assert_eq!((added.event.as_str(), json(&added)["name"].as_str()), ("added", Some("web")));
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Failed")).await;
    let modified = next(&mut events).await;
    assert_eq!(modified.event, "modified");
    assert_eq!(json(&modified)["latestExecution"]["phase"], "Failed");
}

#[tokio::test]
async fn a_stalled_reader_does_not_delay_another() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    // About 100 KiB per version, so the stalled reader's socket buffers fill within a few dozen.
    let big = |phase: &str, i: usize| {
        let mut doc = Doc::new("web").phase(phase).environments(&[]).yaml().replace("  []\n", "");
        doc.push_str(&format!("  - name: dev\n    phase: {phase}\n    message: \"version {i}\"\n    targets:\n"));
        for t in 0..25 {
            let message = "x".repeat(4000);
            doc.push_str(&format!(
                "      - {{cluster: c{t}, namespace: web, phase: {phase}, message: \"{message}\"}}\n"
            ));
        }
        Cm::new("team-a", "big").data("execution.yaml", &doc).build()
    };
    c.put(big("Running", 0)).await;
    let path = "/api/v1/namespaces/team-a/executions/big";
    c.service.wait_for("big is served", path, |b| b["name"] == "big").await;
    let mut stalled = tokio::net::TcpStream::connect(c.service.address()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    stalled.write_all(request.as_bytes()).await.unwrap();
    let mut events = open(&c, path, None).await;
    assert_eq!(next(&mut events).await.event, "snapshot");
    c.service.wait_for("both streams are open", "/readyz", |b| b["waiting"] == 2).await;
    for i in 1..=150 {
        c.put(big("Running", i)).await;
    }
    c.put(big("Succeeded", 151)).await;
    // The reader that reads sees every version up to the last, however stuck the other is.
    loop {
        let e = next(&mut events).await;
        if json(&e)["execution"]["phase"] == "Succeeded" {
            break;
        }
        assert!(matches!(e.event.as_str(), "modified" | "resync"), "{}", e.event);
    }
    let (status, _) = c.service.get("/api/v1/executions").await;
    assert_eq!(status, 200, "the service goes on answering");
    // 150 versions of 100 KiB are more than the history holds: once the stalled reader reads
    // again, what it missed is gone, and it is told to resynchronise.
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let resynced = tokio::time::timeout(DEADLINE, async {
        loop {
            let n = stalled.read(&mut buf).await.expect("the stalled stream is still open");
            assert!(n > 0, "the stream ended without a resync");
            seen.extend_from_slice(&buf[..n]);
            // Keep only a tail: the bytes before it have been searched.
            if let Some(at) = seen.windows(13).position(|w| w == b"event:resync\n") {
                return at;
            }
            let keep = seen.len().saturating_sub(16);
            seen.drain(..keep);
        }
    })
    .await;
    assert!(resynced.is_ok(), "the stalled reader gets a resync");
}

#[tokio::test]
async fn streams_end_with_a_reason_when_the_module_goes_and_on_shutdown() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.install_crd().await;
    for m in execwatch::model::MODULES {
        c.set_module(m.as_str(), true).await;
    }
    common::wait_until("the switch follows BackendModule objects", || async {
        let (_, body) = c.service.get("/api/v1/modules").await;
        (body["switch"]["state"] == "Following").then_some(())
    })
    .await;
    let mut executions = open(&c, "/api/v1/executions", None).await;
    assert_eq!(next(&mut executions).await.event, "snapshot");
    let mut pipelines = open(&c, "/api/v1/pipelines", None).await;
    assert_eq!(next(&mut pipelines).await.event, "snapshot");
    c.set_module("pipelines", false).await;
    let closed = next(&mut pipelines).await;
    assert_eq!(closed.event, "closed");
    assert_eq!(json(&closed)["reason"], "module pipelines is not installed");

    let Cluster { sim: _sim, mut service, .. } = c;
    let started = tokio::time::Instant::now();
    service.begin_stop();
    let closed = next(&mut executions).await;
    assert_eq!(closed.event, "closed");
    assert!(json(&closed)["reason"].as_str().unwrap().contains("shutting down"));
    tokio::time::timeout(DEADLINE, service.stopped()).await.expect("shutdown ends");
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
}

/// Event ids are one history over every namespace: sealed, they tell a caller nothing of how
/// much changed elsewhere. The same place is sealed afresh each time, and still resumes.
#[tokio::test]
async fn event_ids_say_nothing_of_changes_in_other_namespaces() {
    let c = Cluster::start(&["team-a", "team-b"], &["team-a", "team-b"]).await;
    c.put_execution("team-b", "b-1", &Doc::new("web")).await;
    c.service.wait_for("b-1", "/api/v1/executions", |b| names(b).len() == 1).await;
    let snapshot_id = |path: &'static str| {
        let c = &c;
        async move {
            let mut events = open(c, path, None).await;
            let snapshot = next(&mut events).await;
            assert_eq!(snapshot.event, "snapshot");
            snapshot.id
        }
    };
    let before = snapshot_id("/api/v1/namespaces/team-b/executions").await;
    for i in 0..5 {
        c.put_execution("team-a", &format!("a-{i}"), &Doc::new("web")).await;
    }
    c.service.wait_for("team-a's runs", "/api/v1/executions", |b| names(b).len() == 6).await;
    let after = snapshot_id("/api/v1/namespaces/team-b/executions").await;
    let again = snapshot_id("/api/v1/namespaces/team-b/executions").await;
    assert_ne!(after, again, "one place, two ids: {after} {again}");
    let place = |id: &str| id.split_once(':').and_then(|(_, p)| p.parse::<u64>().ok());
    assert_eq!(place(&before).zip(place(&after)).map(|(b, a)| a.wrapping_sub(b)), None, "{before} → {after}");
    // A sealed id still resumes: nothing changed since, so no resync and no snapshot.
    let mut resumed = open(&c, "/api/v1/namespaces/team-b/executions", Some(&after)).await;
    c.put_execution("team-b", "b-2", &Doc::new("web")).await;
    let first = next(&mut resumed).await;
    assert_eq!((first.event.as_str(), json(&first)["name"].as_str()), ("added", Some("b-2")), "{first:?}");
}
