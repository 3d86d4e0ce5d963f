//! Conditional GET, long polls on ETags, compression, CORS and `nosniff`, over HTTP against the
//! service on the simulator.

mod common;

use std::io::Read as _;
use std::time::{Duration, Instant};

use common::{Cluster, DEADLINE, names};
use execwatch::fixtures::{Cm, Doc};
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, IF_NONE_MATCH};

async fn conditional(c: &Cluster, path: &str, etag: &str) -> reqwest::Response {
    let url = format!("{}{path}", c.service.base);
    reqwest::Client::new().get(url).header(IF_NONE_MATCH, etag).send().await.expect("service answers")
}

#[tokio::test]
async fn every_json_endpoint_has_an_etag_that_changes_only_with_its_body() {
    let c = Cluster::start(&["team-a", "team-b"], &["team-a", "team-b"]).await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Running")).await;
    c.put_execution("team-b", "run-2", &Doc::new("api")).await;
    c.put(Cm::new("team-a", "broken").data("execution.yaml", "phase: [").build()).await;
    c.service.wait_for("both runs are served", "/api/v1/executions", |b| names(b).len() == 2).await;
    c.service.wait_for("the broken one is rejected", "/api/v1/rejections", |b| names(b).len() == 1).await;
    let paths = [
        "/api/v1/executions",
        "/api/v1/namespaces/team-a/executions",
        "/api/v1/executions?pipeline=web",
        "/api/v1/namespaces/team-a/executions/run-1",
        "/api/v1/pipelines",
        "/api/v1/namespaces/team-a/pipelines/web",
        "/api/v1/rejections",
        "/api/v1/modules",
    ];
    let mut tags = Vec::new();
    for path in paths {
        let first = c.service.etag(path, None).await;
        assert_eq!(c.service.etag(path, None).await, first, "{path}: identical polls, identical ETag");
        let response = conditional(&c, path, &first).await;
        assert_eq!(response.status(), 304, "{path}");
        assert_eq!(response.headers()[ETAG], first.as_str());
        assert_eq!(response.headers()["cache-control"], "private, no-cache");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}: a 304 has no body");
        tags.push(first);
    }

    // A change in team-b: only what lists team-b (or everything) moves.
    c.put_execution("team-b", "run-2", &Doc::new("api").phase("Failed")).await;
    c.service.wait_for("the change is served", "/api/v1/executions?phase=Failed", |b| names(b) == ["run-2"]).await;
    let mut changed = Vec::new();
    for (path, tag) in paths.iter().zip(&tags) {
        if conditional(&c, path, tag).await.status() == 200 {
            changed.push(*path);
        }
    }
    assert_eq!(changed, ["/api/v1/executions", "/api/v1/pipelines"], "only lists that hold team-b's run");
}

#[tokio::test]
async fn a_long_poll_wakes_on_a_change_to_its_page_and_times_out_without_one() {
    let c = Cluster::start(&["team-a", "team-b"], &["team-a", "team-b"]).await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Running")).await;
    c.service.wait_for("run-1 is served", "/api/v1/executions", |b| names(b) == ["run-1"]).await;
    let path = "/api/v1/namespaces/team-a/executions";
    let held = c.service.etag(path, None).await;

    // Nothing changes in team-a: the poll ends after about its timeout, with 304.
    let started = Instant::now();
    let response = conditional(&c, &format!("{path}?timeoutSeconds=1"), &held).await;
    assert_eq!(response.status(), 304);
    assert!(started.elapsed() >= Duration::from_millis(850), "held for {:?}", started.elapsed());

    let poll = c.service.long_poll(&format!("{path}?timeoutSeconds=300"), &held, None);
    c.service.wait_for("the poll is held", "/readyz", |b| b["waiting"] == 1).await;
    c.put_execution("team-b", "elsewhere", &Doc::new("api")).await;
    c.service.wait_for("the change elsewhere is served", "/api/v1/executions", |b| names(b).len() == 2).await;
    assert!(!poll.is_finished(), "a change in another namespace does not answer the poll");
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    let response = tokio::time::timeout(DEADLINE, poll).await.expect("the poll wakes").unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers()[ETAG], held.as_str());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["items"][0]["phase"], "Succeeded");

    let (status, body) = c.service.get(&format!("{path}?timeoutSeconds=301")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("InvalidParameter")), "{body}");
}

#[tokio::test]
async fn one_execution_and_one_pipeline_long_poll_until_they_change_or_go() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Running")).await;
    c.put_execution("team-a", "run-2", &Doc::new("web").phase("Running")).await;
    c.service.wait_for("both runs are served", "/api/v1/executions", |b| names(b).len() == 2).await;
    let (execution, pipeline) =
        ("/api/v1/namespaces/team-a/executions/run-1", "/api/v1/namespaces/team-a/pipelines/web");
    let held = c.service.etag(execution, None).await;
    let response = conditional(&c, &format!("{execution}?timeoutSeconds=1"), &held).await;
    assert_eq!(response.status(), 304, "nothing changed within the wait");

    let held_pipeline = c.service.etag(pipeline, None).await;
    let poll = c.service.long_poll(&format!("{execution}?timeoutSeconds=300"), &held, None);
    let pipeline_poll = c.service.long_poll(&format!("{pipeline}?timeoutSeconds=300"), &held_pipeline, None);
    c.service.wait_for("both polls are held", "/readyz", |b| b["waiting"] == 2).await;
    c.put_execution("team-a", "run-2", &Doc::new("web").phase("Failed")).await;
    let pipeline_changed = tokio::time::timeout(DEADLINE, pipeline_poll).await.expect("it wakes").unwrap().unwrap();
    assert_eq!(pipeline_changed.status(), 200, "another run of the pipeline changed it");
    assert!(!poll.is_finished(), "a change to another execution does not answer the poll");
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    let response = tokio::time::timeout(DEADLINE, poll).await.expect("the poll wakes").unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["execution"]["phase"], "Succeeded");

    let held = c.service.etag(execution, None).await;
    let poll = c.service.long_poll(&format!("{execution}?timeoutSeconds=300"), &held, None);
    c.service.wait_for("the poll is held", "/readyz", |b| b["waiting"] == 1).await;
    c.delete("team-a", "run-1").await;
    let gone = tokio::time::timeout(DEADLINE, poll).await.expect("the poll wakes").unwrap().unwrap();
    assert_eq!(gone.status(), 404, "a deleted execution ends the poll with the 404 a GET would get");
}

#[tokio::test]
async fn gzip_round_trips_and_small_bodies_stay_plain() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    for i in 0..10 {
        c.put_execution("team-a", &format!("run-{i}"), &Doc::new("web")).await;
    }
    c.service.wait_for("every run is served", "/api/v1/executions", |b| names(b).len() == 10).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/executions", c.service.base);
    let plain = http.get(&url).send().await.unwrap();
    let plain_tag = plain.headers()[ETAG].to_str().unwrap().to_owned();
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 1024, "{} bytes", plain.len());
    for _ in 0..2 {
        let gzipped = http.get(&url).header(ACCEPT_ENCODING, "gzip, br").send().await.unwrap();
        assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(gzipped.headers()["vary"], "Accept-Encoding");
        let gzip_tag = format!("{}-gzip\"", plain_tag.trim_end_matches('"'));
        assert_eq!(gzipped.headers()[ETAG].to_str().unwrap(), gzip_tag);
        let compressed = gzipped.bytes().await.unwrap();
        assert!(compressed.len() < plain.len() / 2, "{} of {} bytes", compressed.len(), plain.len());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut decoded).unwrap();
        assert_eq!(decoded, plain);
    }
    let held = http.get(&url).header(ACCEPT_ENCODING, "gzip").header(IF_NONE_MATCH, &plain_tag).send().await.unwrap();
    assert_eq!(held.status(), 304, "the identity ETag names the same state as the gzip one");
    let small = http.get(format!("{}/api/v1/modules", c.service.base)).header(ACCEPT_ENCODING, "gzip").send().await;
    let small = small.unwrap();
    assert!(small.headers().get(CONTENT_ENCODING).is_none(), "under 1 KiB is not worth compressing");
}

#[tokio::test]
async fn rejections_are_paged_with_continue_tokens() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    for i in 0..5 {
        c.put(Cm::new("team-a", &format!("bad-{i}")).data("execution.yaml", "phase: [").build()).await;
    }
    c.service.wait_for("every rejection is listed", "/api/v1/rejections", |b| names(b).len() == 5).await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/namespaces/team-a/rejections?limit=2".to_owned();
    loop {
        let (status, body) = c.service.get(&path).await;
        assert_eq!(status, 200, "{body}");
        assert!(names(&body).len() <= 2);
        seen.extend(names(&body));
        match body["continue"].as_str() {
            Some(token) => path = format!("/api/v1/namespaces/team-a/rejections?limit=2&continue={token}"),
            None => break,
        }
    }
    assert_eq!(seen, ["bad-0", "bad-1", "bad-2", "bad-3", "bad-4"]);
    let (_, first) = c.service.get("/api/v1/namespaces/team-a/rejections?limit=2").await;
    let token = first["continue"].as_str().unwrap();
    let (status, body) = c.service.get(&format!("/api/v1/rejections?limit=2&continue={token}")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("InvalidParameter")), "another list's token: {body}");
}
