//! The archive against real databases: a SQLite file, and a PostgreSQL server started for the
//! test. What the service wrote is read back with SQL; what it served is read over HTTP.

mod common;

use std::time::Duration;

use common::postgres::Postgres;
use common::{Running, Setup, dir_source, manifest, wait_until, write_run};
use execwatch::fixtures::Doc;
use execwatch::history::ArchiveSettings;
use serde_json::Value;
use sqlx::Row;

/// One archived row: name, uid, resourceVersion, phase, detail, first seen, last seen, deleted,
/// and the detail's ETag as stored for a warm start.
#[derive(Clone, Debug)]
struct Archived {
    name: String,
    uid: String,
    resource_version: String,
    phase: String,
    detail: Value,
    first_seen: i64,
    last_seen: i64,
    deleted_at: Option<i64>,
    detail_tag: Option<String>,
}

async fn archived(url: &str) -> Vec<Archived> {
    sqlx::any::install_default_drivers();
    let Ok(pool) = sqlx::AnyPool::connect(url).await else { return Vec::new() };
    let sql = "SELECT name, uid, resource_version, phase, detail, first_seen, last_seen, deleted_at, detail_tag \
               FROM executions ORDER BY name";
    let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap_or_default();
    pool.close().await;
    rows.iter()
        .map(|r| Archived {
            name: r.get(0),
            uid: r.get(1),
            resource_version: r.get(2),
            phase: r.get(3),
            detail: serde_json::from_str(&r.get::<String, _>(4)).expect("detail is JSON"),
            first_seen: r.get(5),
            last_seen: r.get(6),
            deleted_at: r.get(7),
            detail_tag: r.get(8),
        })
        .collect()
}

/// Waits until the archive's rows satisfy `check`.
async fn wait_rows(url: &str, what: &str, check: impl Fn(&[Archived]) -> bool) -> Vec<Archived> {
    wait_until(what, || async {
        let rows = archived(url).await;
        check(&rows).then_some(rows)
    })
    .await
}

fn archive(url: &str, retain: Duration) -> Setup {
    let url = url.parse().expect("an archive URL");
    Setup { archive: Some(ArchiveSettings::new(url, retain)), ..Setup::default() }
}

async fn history_module(service: &Running) -> Value {
    let (_, body) = service.get("/api/v1/modules").await;
    body["items"].as_array().into_iter().flatten().find(|m| m["name"] == "history").cloned().unwrap_or(Value::Null)
}

/// Versions are written as served, updated in place, kept and marked when their ConfigMap goes,
/// and pruned once deleted longer ago than the retention.
async fn keeps_every_version_and_marks_deletions(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), "run-1", "Running");
    write_run(dir.path(), "run-2", "Succeeded");
    let year = Duration::from_secs(365 * 86400);
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), archive(url, year)).await;
    let rows = wait_rows(url, "both runs are archived", |rows| rows.len() == 2).await;
    let (_, served) = service.get("/api/v1/namespaces/team-a/executions/run-1").await;
    assert_eq!(rows[0].detail, served, "the detail is archived as served");
    assert_eq!((rows[0].phase.as_str(), rows[1].phase.as_str()), ("Running", "Succeeded"));
    assert!(rows.iter().all(|r| r.deleted_at.is_none() && r.first_seen <= r.last_seen));
    assert_eq!(history_module(&service).await["ready"], true);

    write_run(dir.path(), "run-1", "Failed");
    let updated = wait_rows(url, "the new version replaces the old", |rows| rows[0].phase == "Failed").await;
    assert_eq!(updated.len(), 2, "the same ConfigMap is the same row");
    assert_eq!(updated[0].uid, rows[0].uid);
    assert_ne!(updated[0].resource_version, rows[0].resource_version);
    assert_eq!(updated[0].first_seen, rows[0].first_seen);
    assert!(updated[0].last_seen >= rows[0].last_seen);

    std::fs::remove_file(dir.path().join("run-2.yaml")).unwrap();
    let marked = wait_rows(url, "the deletion is marked", |rows| rows[1].deleted_at.is_some()).await;
    assert_eq!(marked.len(), 2, "a deleted execution stays archived");
    assert_eq!(marked[1].detail, rows[1].detail, "with its last version");
    let (status, gone) = service.get("/api/v1/namespaces/team-a/executions/run-2").await;
    assert_eq!(status, 200, "an archived execution still answers GET one: {gone}");
    assert_eq!(gone["archived"], true);
    assert!(gone["deletedAt"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()), "{gone}");
    assert_eq!(gone["execution"], rows[1].detail["execution"]);
    let (status, _) = service.get("/api/v1/namespaces/team-a/executions/never-was").await;
    assert_eq!(status, 404, "what was never served is not found");
    service.stop().await;

    // Started again with a retention shorter than the deletion's age: pruned at start.
    let service =
        Running::launch(dir_source(dir.path(), Duration::from_millis(50)), archive(url, Duration::ZERO)).await;
    let pruned = wait_rows(url, "the deleted run is pruned", |rows| rows.len() == 1).await;
    assert_eq!(pruned[0].name, "run-1", "what still exists is never pruned");
    service.stop().await;
}

#[tokio::test]
async fn a_sqlite_archive_keeps_every_version_and_marks_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("history.db");
    keeps_every_version_and_marks_deletions(&format!("sqlite:{}", file.display())).await;
}

#[tokio::test]
async fn a_postgres_archive_keeps_every_version_and_marks_deletions() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("versions");
    keeps_every_version_and_marks_deletions(&postgres.url("versions")).await;
}

#[tokio::test]
async fn replicas_share_one_postgres_history_without_conflict_or_duplicate() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("replicas");
    let url = postgres.url("replicas");
    let dir = tempfile::tempdir().unwrap();
    let runs = 1000;
    for i in 0..runs {
        write_run(dir.path(), &format!("run-{i:04}"), "Running");
    }
    let year = Duration::from_secs(365 * 86400);
    let setup = || Setup { metrics: true, ..archive(&url, year) };
    let launch = || Running::launch(dir_source(dir.path(), Duration::from_millis(50)), setup());
    let (a, b) = (launch().await, launch().await);
    wait_rows(&url, "every run is archived", |rows| rows.len() == runs).await;
    for i in (0..runs).step_by(10) {
        write_run(dir.path(), &format!("run-{i:04}"), "Succeeded");
    }
    std::fs::remove_file(dir.path().join("run-0999.yaml")).unwrap();
    let rows = wait_rows(&url, "both replicas wrote the changes", |rows| {
        rows.iter().filter(|r| r.phase == "Succeeded").count() == runs / 10 && rows[runs - 1].deleted_at.is_some()
    })
    .await;
    assert_eq!(rows.len(), runs, "one row per execution, whichever replica wrote it");
    for service in [&a, &b] {
        let history = history_module(service).await;
        assert_eq!(history["ready"], true, "{history}");
        assert!(history.get("lastError").is_none(), "{history}");
        let text = reqwest::get(service.metrics.clone().unwrap()).await.unwrap().text().await.unwrap();
        let failures = text.lines().find(|l| l.starts_with("execwatch_archive_write_failures_total"));
        assert!(failures.is_some_and(|l| l.ends_with(" 0")), "no write failed (no deadlock): {failures:?}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_unreachable_archive_delays_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), "run-1", "Running");
    // Nothing listens on port 1.
    let setup =
        Setup { metrics: true, ..archive("postgres://execwatch:s3cret@127.0.0.1:1/none", Duration::from_secs(60)) };
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), setup).await;
    service.wait_for("the run is served", "/api/v1/executions", |b| b["items"][0]["name"] == "run-1").await;
    let (status, ready) = service.get("/readyz").await;
    assert_eq!(status, 200, "live executions are served and the service is ready: {ready}");
    let history = wait_until("the history module says why", || async {
        let history = history_module(&service).await;
        history["lastError"].as_str().is_some_and(|e| e.contains("cannot open the archive")).then_some(history)
    })
    .await;
    assert_eq!(history["ready"], false);
    let (status, body) = service.get("/api/v1/namespaces/team-a/executions/gone").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("HistoryUnavailable")), "not passed off as absent: {body}");
    let (_, list) = service.get("/api/v1/executions").await;
    assert_eq!(list["items"][0]["name"], "run-1", "a list holds what is live: {list}");
    let sources = &list["freshness"]["incompleteSources"];
    let archive = sources.as_array().unwrap().iter().find(|s| s["source"] == "archive");
    assert!(archive.is_some_and(|a| a["lastError"].is_string()), "and names the archive it could not read: {list}");
    assert_eq!(list["freshness"]["complete"], false);
    assert!(!history["lastError"].as_str().unwrap().contains("s3cret"));
    let url = service.metrics.clone().expect("metrics");
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(
        text.contains("execwatch_archive_connected{} 0") || text.contains("execwatch_archive_connected 0"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("execwatch_archive_pending") && l.ends_with(" 1")), "{text}");
    service.stop().await;
}

/// A restart serves the versions the archive holds as they were stored, without parsing them
/// again or hashing their bodies: a stored detail and ETag changed behind the service's back
/// show, which no decoding of the unchanged file could produce. A file changed meanwhile is
/// decoded as usual. What the archive holds at that very version is not written again; a row
/// written by a version before, without what a warm start reads, is.
async fn a_warm_start_serves_archived_versions(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["run-1", "run-2", "run-4"] {
        write_run(dir.path(), name, "Running");
    }
    // A file whose second document is rejected: never archived, so the file is parsed again
    // and the rejection still reported.
    let mixed = format!(
        "{}---\n{}",
        manifest("team-a", "run-3", &Doc::new("web").yaml()),
        manifest("team-a", "bad", "kind: nonsense")
    );
    std::fs::write(dir.path().join("mixed.yaml"), mixed).unwrap();
    let year = Duration::from_secs(365 * 86400);
    let launch = || Running::launch(dir_source(dir.path(), Duration::from_millis(50)), archive(url, year));
    let service = launch().await;
    let rows = wait_rows(url, "the runs are archived", |rows| rows.len() == 4).await;
    let (_, cold) = service.get("/api/v1/namespaces/team-a/executions/run-1").await;
    let etag = service.etag("/api/v1/namespaces/team-a/executions/run-1", None).await;
    assert_eq!(rows[0].detail_tag.as_deref(), Some(etag.trim_matches('"')), "the ETag is stored with the body");
    service.stop().await;
    let seen = archived(url).await[0].last_seen;

    let marked = cold["execution"]["pipeline"].as_str().unwrap().replace("web", "web-as-archived");
    let detail = cold.to_string().replace("\"pipeline\":\"web\"", &format!("\"pipeline\":\"{marked}\""));
    let marked_tag = "0123456789abcdef0123456789abcdef";
    sql(url, "UPDATE executions SET detail = $1, detail_tag = $2 WHERE name = $3", &[&detail, marked_tag, "run-1"])
        .await;
    // As a version before wrote it: no view, no ETags.
    let before = "UPDATE executions SET served_view = NULL, detail_tag = NULL, summary_tag = NULL WHERE name = $1";
    sql(url, before, &["run-4"]).await;
    write_run(dir.path(), "run-2", "Succeeded");

    let service = launch().await;
    service
        .wait_for("the runs are served", "/api/v1/executions", |b| b["items"].as_array().is_some_and(|i| i.len() == 4))
        .await;
    let (_, rejections) = service.get("/api/v1/rejections").await;
    assert_eq!(rejections["items"][0]["name"], "bad", "a rejection beside an archived run is reported: {rejections}");
    let (_, warm) = service.get("/api/v1/namespaces/team-a/executions/run-1").await;
    assert_eq!(warm["execution"]["pipeline"], "web-as-archived", "the stored version is served as stored: {warm}");
    let etag = service.etag("/api/v1/namespaces/team-a/executions/run-1", None).await;
    assert_eq!(etag, format!("\"{marked_tag}\""), "with its stored ETag");
    let (_, changed) = service.get("/api/v1/namespaces/team-a/executions/run-2").await;
    assert_eq!(changed["execution"]["phase"], "Succeeded", "a version the archive does not hold is decoded");
    // The writer takes notes in key order, run-1 before run-2 and run-4: once those are
    // written, a note of run-1 would have been too.
    let rows = wait_rows(url, "the changed run and the old row are written", |rows| {
        rows[1].phase == "Succeeded" && rows[3].detail_tag.is_some()
    })
    .await;
    assert_eq!(rows[0].last_seen, seen, "run-1 was not written again");

    // Its stream starts from the stored version too, and a client that holds it is told so.
    let run_1 = "/api/v1/namespaces/team-a/executions/run-1";
    let first = first_event(&service, run_1).await;
    assert!(first.starts_with("event:snapshot") && first.contains("web-as-archived"), "{first}");
    let held = reqwest::Client::new().get(format!("{}{run_1}", service.base)).header("if-none-match", &etag);
    assert_eq!(held.send().await.unwrap().status(), 304);
    // Once its file goes, its row is marked deleted with what it held, and served as archived.
    std::fs::remove_file(dir.path().join("run-1.yaml")).unwrap();
    let rows = wait_rows(url, "run-1 is marked deleted", |rows| rows[0].deleted_at.is_some()).await;
    assert_eq!(rows[0].detail["execution"]["pipeline"], "web-as-archived", "{:?}", rows[0]);
    let (status, gone) = service.get(run_1).await;
    assert_eq!(
        (status, &gone["archived"], &gone["execution"]["pipeline"]),
        (200, &true.into(), &"web-as-archived".into())
    );
    service.stop().await;
}

/// The first event of a stream of `path`, as sent.
async fn first_event(service: &Running, path: &str) -> String {
    use futures::StreamExt;
    let request = reqwest::Client::new().get(format!("{}{path}", service.base)).header("accept", "text/event-stream");
    let mut body = request.send().await.unwrap().bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(common::DEADLINE, body.next()).await.expect("an event in time");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on").unwrap()));
    }
    text
}

/// Runs one statement with text parameters.
async fn sql(url: &str, statement: &str, params: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()));
    for param in params {
        query = query.bind(param.to_string());
    }
    query.execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_warm_start_from_sqlite_serves_archived_versions() {
    let dir = tempfile::tempdir().unwrap();
    a_warm_start_serves_archived_versions(&format!("sqlite:{}", dir.path().join("history.db").display())).await;
}

#[tokio::test]
async fn a_warm_start_from_postgres_serves_archived_versions() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("warm");
    a_warm_start_serves_archived_versions(&postgres.url("warm")).await;
}
