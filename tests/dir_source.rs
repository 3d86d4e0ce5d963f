//! The embedded default: manifests in a directory, followed as they change.

mod common;

use std::time::Duration;

use common::{Running, dir_source, manifest, names};
use execwatch::fixtures::Doc;

#[tokio::test]
async fn directory_changes_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), manifest("team-a", "one", &Doc::new("web").yaml())).unwrap();
    let sources = dir_source(dir.path(), Duration::from_millis(50));
    let service = Running::launch(sources, common::Setup::default()).await;
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
async fn unreadable_files_are_rejections_that_hide_nothing_and_freeze_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("a.yaml"), manifest("team-a", "one", &Doc::new("web").yaml())).unwrap();
    std::fs::write(path("latin1.yaml"), b"kind: ConfigMap\nmetadata: {name: caf\xe9}\n").unwrap();
    std::fs::write(path("broken.yaml"), "kind: ConfigMap\nmetadata: [unclosed\n").unwrap();
    assert!(std::process::Command::new("mkfifo").arg(path("fifo.yaml")).status().unwrap().success());
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), common::Setup::default()).await;
    let body = service.wait_for("one is served", "/api/v1/executions", |b| names(b) == ["one"]).await;
    assert_eq!(body["freshness"]["complete"], true, "{body}");
    service.wait_for("the directory is ready", "/readyz", |b| b["ready"] == true).await;
    let (_, rejections) = service.get("/api/v1/rejections").await;
    let files: Vec<_> = rejections["items"].as_array().unwrap().iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["broken.yaml", "fifo.yaml", "latin1.yaml"], "{rejections}");
    assert_eq!(rejections["items"][1]["reasons"][0]["code"], "Unreadable", "{rejections}");

    // A hostile file added later freezes nothing: edits elsewhere still show.
    std::os::unix::fs::symlink("/dev/zero", path("zero.yaml")).unwrap();
    std::os::unix::fs::symlink(path("loop.yaml"), path("loop.yaml")).unwrap();
    std::fs::write(path("a.yaml"), manifest("team-a", "one", &Doc::new("web").phase("Failed").yaml())).unwrap();
    service
        .wait_for("an edit shows beside new hostile files", "/api/v1/namespaces/team-a/executions/one", |b| {
            b["execution"]["phase"] == "Failed"
        })
        .await;
    let body = service.wait_for("they are reported", "/api/v1/rejections", |b| names(b).len() == 5).await;
    assert!(names(&body).contains(&"zero.yaml".to_owned()), "{body}");
    let (status, ready) = service.get("/readyz").await;
    assert_eq!((status, &ready["sources"][0]["state"]), (200, &serde_json::json!("Synced")), "{ready}");

    // Fixing a file brings its execution back and drops its rejection.
    std::fs::write(path("broken.yaml"), manifest("team-b", "two", &Doc::new("api").yaml())).unwrap();
    service.wait_for("the fixed file is served", "/api/v1/executions", |b| names(b).len() == 2).await;
    service.wait_for("its rejection is gone", "/api/v1/rejections", |b| names(b).len() == 4).await;
    service.stop().await;
}

#[tokio::test]
async fn duplicate_keys_are_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Doc::new("web").yaml();
    std::fs::write(dir.path().join("a.yaml"), manifest("team-a", "dup", &format!("{doc}phase: Failed\n"))).unwrap();
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), common::Setup::default()).await;
    let body = service.wait_for("the run is rejected", "/api/v1/rejections", |b| names(b) == ["dup"]).await;
    let reason = &body["items"][0]["reasons"][0];
    assert_eq!((reason["code"].as_str(), reason["pointer"].as_str()), (Some("DuplicateKey"), Some("/phase")), "{body}");
    assert!(common::names(&service.get("/api/v1/executions").await.1).is_empty());
    service.stop().await;
}

/// A ConfigMap volume as kubelet writes it: each file a symlink through `..data`, itself a
/// symlink to a timestamped directory that an update replaces atomically.
fn volume_update(dir: &std::path::Path, version: &str, files: &[(&str, String)]) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    for (name, text) in files {
        std::fs::write(data.join(name), text).unwrap();
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
        }
    }
    std::os::unix::fs::symlink(format!("..{version}"), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
}

#[tokio::test]
async fn changes_show_without_waiting_for_a_poll_even_in_a_configmap_volume() {
    let dir = tempfile::tempdir().unwrap();
    let run = |phase: &str| manifest("team-a", "one", &Doc::new("web").phase(phase).yaml());
    volume_update(dir.path(), "v1", &[("one.yaml", run("Running"))]);
    // An hour between polls: only inotify can show a change within the test's deadline.
    let service = Running::launch(dir_source(dir.path(), Duration::from_secs(3600)), common::Setup::default()).await;
    service.wait_for("one is served", "/api/v1/executions", |b| names(b) == ["one"]).await;

    volume_update(dir.path(), "v2", &[("one.yaml", run("Succeeded"))]);
    let one = "/api/v1/namespaces/team-a/executions/one";
    service.wait_for("a volume update shows", one, |b| b["execution"]["phase"] == "Succeeded").await;

    // A writer's temporary file, renamed into place.
    let tmp = dir.path().join("two.yaml.tmp");
    std::fs::write(&tmp, manifest("team-a", "two", &Doc::new("api").yaml())).unwrap();
    std::fs::rename(&tmp, dir.path().join("two.yaml")).unwrap();
    service.wait_for("a renamed-in file shows", "/api/v1/executions", |b| names(b).len() == 2).await;
    std::fs::remove_file(dir.path().join("two.yaml")).unwrap();
    service.wait_for("a removed file's run goes", "/api/v1/executions", |b| names(b) == ["one"]).await;
    service.stop().await;
}
