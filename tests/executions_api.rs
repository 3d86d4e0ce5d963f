//! The HTTP API follows what pipeline writers do to their ConfigMaps, end to end through the
//! simulator.

mod common;

use common::{Cluster, names};
use execwatch::fixtures::{Cm, Doc};

#[tokio::test]
async fn executions_follow_create_update_break_fix_and_delete() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.wait_ready().await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Running")).await;
    let path = "/api/v1/namespaces/team-a/executions/run-1";
    c.service.wait_for("run-1 is served", path, |b| b["execution"]["phase"] == "Running").await;

    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    c.service.wait_for("the update is served", path, |b| b["execution"]["phase"] == "Succeeded").await;

    c.put(Cm::new("team-a", "run-1").data("execution.yaml", "phase: [broken").build()).await;
    let rejections = c
        .service
        .wait_for("the broken run is rejected", "/api/v1/namespaces/team-a/rejections", |b| names(b) == ["run-1"])
        .await;
    assert_eq!(rejections["items"][0]["reasons"][0]["code"], "Unparsable");
    let (status, body) = c.service.get(path).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NotFound")), "{body}");

    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Failed")).await;
    c.service.wait_for("the fix brings it back", path, |b| b["execution"]["phase"] == "Failed").await;
    let (_, rejections) = c.service.get("/api/v1/rejections").await;
    assert!(names(&rejections).is_empty(), "{rejections}");

    c.delete("team-a", "run-1").await;
    c.service.wait_for("the deletion is seen", "/api/v1/executions", |b| names(b).is_empty()).await;
}

#[tokio::test]
async fn rejected_configmap_does_not_hide_others() {
    let c = Cluster::start(&["team-a", "team-b"], &["team-a", "team-b"]).await;
    c.put_execution("team-a", "good-1", &Doc::new("web")).await;
    c.put(Cm::new("team-a", "bad-schema").doc(&Doc::new("web").phase("Exploded")).build()).await;
    c.put(Cm::new("team-a", "bad-bomb").data("execution.yaml", &"[".repeat(5000)).build()).await;
    c.put_execution("team-b", "good-2", &Doc::new("api")).await;
    let body = c.service.wait_for("both valid runs are served", "/api/v1/executions", |b| names(b).len() == 2).await;
    let mut served = names(&body);
    served.sort();
    assert_eq!(served, ["good-1", "good-2"]);
    let rejections =
        c.service.wait_for("both bad runs are reported", "/api/v1/rejections", |b| names(b).len() == 2).await;
    let schema = rejections["items"].as_array().unwrap().iter().find(|r| r["name"] == "bad-schema").unwrap();
    assert_eq!(schema["reasons"][0]["pointer"], "/phase");
    assert_eq!(schema["namespace"], "team-a");
}

#[tokio::test]
async fn unlabelled_configmaps_are_not_executions() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    let mut unlabelled = Cm::new("team-a", "plain").doc(&Doc::new("web")).build();
    unlabelled.metadata.labels = None;
    c.put(unlabelled).await;
    c.put_execution("team-a", "labelled", &Doc::new("web")).await;
    c.service.wait_for("the labelled run is served", "/api/v1/executions", |b| names(b) == ["labelled"]).await;
    let (_, rejections) = c.service.get("/api/v1/rejections").await;
    assert!(names(&rejections).is_empty());
}

#[tokio::test]
async fn lists_filter_and_paginate_consistently() {
    let c = Cluster::start(&["team-a", "team-b"], &["team-a", "team-b"]).await;
    for day in 1..=7 {
        let doc = Doc::new(if day % 2 == 0 { "web" } else { "api" })
            .phase(if day == 7 { "Failed" } else { "Succeeded" })
            .started_at(&format!("2026-01-0{day}T00:00:00Z"));
        c.put(
            Cm::new(if day <= 4 { "team-a" } else { "team-b" }, &format!("r{day}"))
                .doc(&doc)
                .label("tier", if day == 3 { "gold" } else { "std" })
                .build(),
        )
        .await;
    }
    c.service.wait_for("all runs are served", "/api/v1/executions", |b| names(b).len() == 7).await;
    let list = |q: &str| {
        let path = format!("/api/v1/executions?{q}");
        let service = &c.service;
        async move { service.execution_names(&path).await }
    };
    assert_eq!(list("").await, ["r7", "r6", "r5", "r4", "r3", "r2", "r1"]);
    assert_eq!(list("pipeline=web").await, ["r6", "r4", "r2"]);
    assert_eq!(list("phase=Failed").await, ["r7"]);
    assert_eq!(list("namespace=team-a&pipeline=api").await, ["r3", "r1"]);
    assert_eq!(list("labelSelector=tier%3Dgold").await, ["r3"]);
    assert_eq!(list("labelSelector=tier%20notin%20(gold)&environment=prod&limit=2").await, ["r7", "r6"]);
    assert_eq!(c.service.execution_names("/api/v1/namespaces/team-b/executions").await, ["r7", "r6", "r5"]);

    // Page through while a newer run arrives and an already-served one is deleted.
    let (_, first) = c.service.get("/api/v1/executions?limit=3").await;
    assert_eq!(names(&first), ["r7", "r6", "r5"]);
    c.put_execution("team-a", "r8", &Doc::new("api").started_at("2026-01-08T00:00:00Z")).await;
    c.delete("team-b", "r6").await;
    c.service.wait_for("r8 is served", "/api/v1/executions?limit=1", |b| names(b) == ["r8"]).await;
    let token = first["continue"].as_str().expect("a continue token");
    let (_, second) = c.service.get(&format!("/api/v1/executions?limit=3&continue={token}")).await;
    assert_eq!(names(&second), ["r4", "r3", "r2"]);
    let token = second["continue"].as_str().expect("a continue token");
    let (_, last) = c.service.get(&format!("/api/v1/executions?limit=3&continue={token}")).await;
    assert_eq!(names(&last), ["r1"]);
    assert!(last["continue"].is_null());
}

#[tokio::test]
async fn bad_requests_name_the_parameter() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.wait_ready().await;
    let cases = [
        ("/api/v1/executions?limit=0", 400, "InvalidParameter", "limit"),
        ("/api/v1/executions?limit=501", 400, "InvalidParameter", "limit"),
        ("/api/v1/executions?phase=Exploded", 400, "InvalidParameter", "phase"),
        ("/api/v1/executions?labelSelector=a%20in%20b", 400, "InvalidParameter", "labelSelector"),
        ("/api/v1/executions?continue=garbage", 400, "InvalidParameter", "continue"),
        ("/api/v1/executions?colour=red", 400, "UnknownParameter", "colour"),
        ("/api/v1/namespaces/team-a/executions?namespace=x", 400, "UnknownParameter", "namespace"),
        ("/api/v1/namespaces/elsewhere/executions", 404, "NotFound", "elsewhere"),
        ("/api/v1/namespaces/team-a/executions/missing", 404, "NotFound", "missing"),
        ("/api/v1/nothing-here", 404, "NotFound", "endpoint"),
    ];
    for (path, status, code, mentions) in cases {
        let (got, body) = c.service.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["code"], code, "{path}: {body}");
        assert!(body["message"].as_str().unwrap().contains(mentions), "{path}: {body}");
    }
    let (_, first) = c.service.get("/api/v1/executions?limit=1").await;
    assert!(first["continue"].is_null(), "nothing to page through yet");
}

#[tokio::test]
async fn an_unwatched_namespace_is_the_same_404_as_a_filter_and_as_a_path() {
    let c = Cluster::start(&["team-a", "elsewhere"], &["team-a"]).await;
    c.wait_ready().await;
    for resource in ["executions", "pipelines", "rejections"] {
        let by_path = c.service.get(&format!("/api/v1/namespaces/elsewhere/{resource}")).await;
        let by_filter = c.service.get(&format!("/api/v1/{resource}?namespace=elsewhere")).await;
        assert_eq!(by_path.0, 404, "{resource}: {}", by_path.1);
        assert_eq!(by_path, by_filter, "{resource}");
        let (status, _) = c.service.get(&format!("/api/v1/{resource}?namespace=team-a")).await;
        assert_eq!(status, 200, "{resource}");
    }
}

#[tokio::test]
async fn pipelines_are_resolved_from_executions() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    let run = |v: &str, at: &str, phase: &str, envs: &[(&str, &str)]| {
        Doc::new("web").version(v).started_at(at).phase(phase).environments(envs)
    };
    c.put_execution(
        "team-a",
        "web-1",
        &run("1.0", "2026-01-01T00:00:00Z", "Succeeded", &[("dev", "Succeeded"), ("prod", "Succeeded")]),
    )
    .await;
    c.put_execution(
        "team-a",
        "web-2",
        &run("2.0", "2026-01-02T00:00:00Z", "Running", &[("dev", "Running"), ("prod", "Pending")]),
    )
    .await;
    c.put_execution("team-a", "api-1", &Doc::new("api")).await;
    let list = c
        .service
        .wait_for("both pipelines are listed", "/api/v1/pipelines", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    assert_eq!(list["items"][0]["name"], "api");
    let web = c
        .service
        .wait_for("web is resolved", "/api/v1/namespaces/team-a/pipelines/web", |b| b["executionCount"] == 2)
        .await;
    assert_eq!(web["latestExecution"]["name"], "web-2");
    assert_eq!(web["environments"][1]["version"], "1.0", "prod still runs 1.0: {web}");
    assert_eq!(web["counts"]["Succeeded"], 1);
    let (status, body) = c.service.get("/api/v1/namespaces/team-a/pipelines/nope").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NotFound")));

    // Pipelines page like executions, with tokens tied to the list they came from.
    let (_, first) = c.service.get("/api/v1/pipelines?limit=1").await;
    assert_eq!(first["items"][0]["name"], "api");
    let token = first["continue"].as_str().expect("a second page");
    let (_, second) = c.service.get(&format!("/api/v1/pipelines?limit=1&continue={token}")).await;
    assert_eq!(second["items"][0]["name"], "web");
    assert!(second["continue"].is_null(), "{second}");
    let (status, body) = c.service.get(&format!("/api/v1/namespaces/team-a/pipelines?continue={token}")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("InvalidParameter")), "{body}");
}
