//! The embedded default: manifests in a directory, followed as they change.

mod common;

use std::time::Duration;

use common::{Running, names, selector};
use execwatch::Sources;
use execwatch::fixtures::{Doc, EXECUTION_LABEL};

fn manifest(ns: &str, name: &str, execution: &str) -> String {
    let indented: String = execution.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    {EXECUTION_LABEL}: \"true\"\ndata:\n  execution.yaml: |\n{indented}"
    )
}

#[tokio::test]
async fn directory_changes_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), manifest("team-a", "one", &Doc::new("web").yaml())).unwrap();
    let sources =
        Sources::Dir { path: dir.path().to_owned(), selector: selector(), interval: Duration::from_millis(50) };
    let service = Running::start(sources, Duration::from_secs(60)).await;
    let ready = service.wait_for("the directory is read", "/readyz", |b| b["ready"] == true).await;
    assert!(ready["sources"][0]["source"].as_str().unwrap().starts_with("dir:"));
    service.wait_for("one is served", "/api/v1/executions", |b| names(b) == ["one"]).await;

    let two = format!(
        "{}---\n{}",
        manifest("team-b", "two", &Doc::new("api").yaml()),
        manifest("team-b", "bad", "phase: [oops")
    );
    std::fs::write(dir.path().join("b.yaml"), two).unwrap();
    service.wait_for("a new file is picked up", "/api/v1/executions", |b| names(b).len() == 2).await;
    service.wait_for("its bad run is rejected", "/api/v1/namespaces/team-b/rejections", |b| names(b) == ["bad"]).await;

    std::fs::write(dir.path().join("a.yaml"), manifest("team-a", "one", &Doc::new("web").phase("Failed").yaml()))
        .unwrap();
    service
        .wait_for("an edit is picked up", "/api/v1/namespaces/team-a/executions/one", |b| {
            b["execution"]["phase"] == "Failed"
        })
        .await;

    std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
    service.wait_for("a removed file's runs go", "/api/v1/executions", |b| names(b) == ["one"]).await;
    let (_, rejections) = service.get("/api/v1/rejections").await;
    assert!(names(&rejections).is_empty(), "{rejections}");
    service.stop().await;
}

#[tokio::test]
async fn an_unreadable_file_is_reported_and_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), manifest("team-a", "one", &Doc::new("web").yaml())).unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "kind: ConfigMap\nmetadata: [unclosed\n").unwrap();
    let sources =
        Sources::Dir { path: dir.path().to_owned(), selector: selector(), interval: Duration::from_millis(50) };
    let service = Running::start(sources, Duration::from_secs(60)).await;
    let body = service.wait_for("one is served", "/api/v1/executions", |b| names(b) == ["one"]).await;
    assert_eq!(body["freshness"]["complete"], false, "{body}");
    let error = body["freshness"]["incompleteSources"][0]["lastError"].as_str().unwrap();
    assert!(error.contains("broken.yaml"), "{error}");
}
