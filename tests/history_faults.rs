//! The archive when its database fails: down at start, lost mid-run, a corrupt, read-only or
//! full SQLite file, a database migrated by a newer execwatch, a replica killed mid-batch. Live executions are served throughout, the `history`
//! module says why it is not ready, and once the database is back nothing written meanwhile is
//! lost.

mod common;

use std::path::Path;
use std::time::Duration;

use common::postgres::Postgres;
use common::{Running, Setup, dir_source, names, wait_until, write_run};
use execwatch::history::ArchiveSettings;
use serde_json::Value;

async fn launch(dir: &Path, url: &str) -> Running {
    let archive = ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86400));
    Running::launch(dir_source(dir, Duration::from_millis(50)), Setup { archive: Some(archive), ..Setup::default() })
        .await
}

async fn history(service: &Running) -> Value {
    let (_, body) = service.get("/api/v1/modules").await;
    body["items"].as_array().into_iter().flatten().find(|m| m["name"] == "history").cloned().unwrap_or(Value::Null)
}

/// Name, phase and whether deleted, of every row, by name; empty while the database is down.
async fn rows(url: &str) -> Vec<(String, String, bool)> {
    sqlx::any::install_default_drivers();
    let Ok(pool) = sqlx::AnyPool::connect(url).await else { return Vec::new() };
    let sql = "SELECT name, phase, deleted_at FROM executions ORDER BY name";
    let rows = sqlx::query_as::<_, (String, String, Option<i64>)>(sql).fetch_all(&pool).await.unwrap_or_default();
    pool.close().await;
    rows.into_iter().map(|(name, phase, deleted)| (name, phase, deleted.is_some())).collect()
}

/// Waits until the history module's last error says one of `words`, then checks that it is not
/// ready while the service is.
async fn names_the_fault(service: &Running, words: &[&str]) {
    let h = wait_until("history names the fault", || async {
        let h = history(service).await;
        h["lastError"].as_str().is_some_and(|e| words.iter().any(|w| e.contains(w))).then_some(h)
    })
    .await;
    assert_eq!(h["ready"], false, "{h}");
    assert_eq!(service.get("/readyz").await.0, 200);
}

/// A directory of one running run, and an empty directory for the archive, in a temporary one.
fn data_and_archive() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (data, archive) = (dir.path().join("data"), dir.path().join("archive"));
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(&archive).unwrap();
    write_run(&data, "run-1", "Running");
    (dir, data, archive)
}

fn row(name: &str, phase: &str, deleted: bool) -> (String, String, bool) {
    (name.to_owned(), phase.to_owned(), deleted)
}

#[tokio::test]
async fn a_database_down_at_start_or_lost_mid_run_loses_nothing_once_back() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("faults");
    let url = postgres.url("faults");
    postgres.halt();
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), "run-1", "Running");
    write_run(dir.path(), "run-2", "Running");
    let service = launch(dir.path(), &url).await;
    service.wait_for("live runs are served", "/api/v1/executions", |b| names(b).len() == 2).await;
    assert_eq!(service.get("/readyz").await.0, 200, "a database down at start keeps nobody from live data");
    assert_eq!(history(&service).await["ready"], false);

    postgres.resume();
    wait_until("the reconnect writes what was served meanwhile", || async {
        (rows(&url).await == [row("run-1", "Running", false), row("run-2", "Running", false)]).then_some(())
    })
    .await;
    wait_until("history is ready", || async { (history(&service).await["ready"] == true).then_some(()) }).await;

    postgres.halt();
    write_run(dir.path(), "run-1", "Failed");
    std::fs::remove_file(dir.path().join("run-2.yaml")).unwrap();
    write_run(dir.path(), "run-3", "Running");
    service
        .wait_for("the changes are served live", "/api/v1/executions", |b| {
            let phases: Vec<(&str, &str, bool)> = b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["name"].as_str().unwrap(), e["phase"].as_str().unwrap(), e["archived"] == true))
                .collect();
            phases == [("run-1", "Failed", false), ("run-2", "Running", true), ("run-3", "Running", false)]
        })
        .await;
    let down = wait_until("history says the database is lost", || async {
        let h = history(&service).await;
        (h["ready"] == false && h["lastError"].is_string()).then_some(h)
    })
    .await;
    assert!(down["lastError"].as_str().unwrap().contains("archive"), "{down}");
    let (status, one) = service.get("/api/v1/namespaces/team-a/executions/run-2").await;
    assert_eq!((status, &one["archived"]), (200, &Value::Bool(true)), "a deletion not written yet still answers");

    postgres.resume();
    let expected = [row("run-1", "Failed", false), row("run-2", "Running", true), row("run-3", "Running", false)];
    wait_until("nothing is lost once the database is back", || async { (rows(&url).await == expected).then_some(()) })
        .await;
    wait_until("history is ready again", || async { (history(&service).await["ready"] == true).then_some(()) }).await;
    service.stop().await;
}

#[tokio::test]
async fn a_corrupt_sqlite_file_is_named_and_live_serving_goes_on() {
    let (dir, data, _) = data_and_archive();
    let file = dir.path().join("history.db");
    std::fs::write(&file, b"this is not a SQLite database, whatever its name says".repeat(100)).unwrap();
    let service = launch(&data, &format!("sqlite:{}", file.display())).await;
    service.wait_for("the live run is served", "/api/v1/executions", |b| names(b) == ["run-1"]).await;
    names_the_fault(&service, &["not a database"]).await;
    service.stop().await;
}

#[tokio::test]
async fn an_archive_migrated_by_a_newer_execwatch_is_refused_with_a_clear_error() {
    let (dir, data, _) = data_and_archive();
    let url = format!("sqlite:{}", dir.path().join("history.db").display());
    let service = launch(&data, &url).await;
    wait_until("the run is archived", || async { (rows(&url).await.len() == 1).then_some(()) }).await;
    service.stop().await;
    // What a newer release's migration leaves behind.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let service = launch(&data, &url).await;
    service.wait_for("live serving goes on", "/api/v1/executions", |b| names(b) == ["run-1"]).await;
    let h = wait_until("history refuses the archive", || async {
        let h = history(&service).await;
        h["lastError"].as_str().is_some_and(|e| e.contains("newer execwatch")).then_some(h)
    })
    .await;
    assert_eq!(h["ready"], false, "{h}");
    assert!(h["lastError"].as_str().unwrap().contains("9999"), "{h}");
    service.stop().await;
}

/// Two replicas share one PostgreSQL history; one is killed (SIGKILL) while it writes a burst of
/// changes. The archive ends equal to the directory, one row per execution, nothing doubled.
#[tokio::test]
async fn a_replica_killed_mid_batch_leaves_the_shared_archive_whole() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("killed");
    let url = postgres.url("killed");
    let dir = tempfile::tempdir().unwrap();
    let runs = 2000;
    for i in 0..runs {
        write_run(dir.path(), &format!("run-{i:04}"), "Running");
    }
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
    let mut killed = common::binary::blocking(&["--log-level", "error", "serve", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "none"])
        .args(["--schemas", schemas, "--from-dir"])
        .arg(dir.path())
        .args(["--archive", &url])
        .spawn()
        .expect("a second replica");
    let service = launch(dir.path(), &url).await;
    wait_until("every run is archived", || async { (rows(&url).await.len() == runs).then_some(()) }).await;
    for i in 0..runs {
        write_run(dir.path(), &format!("run-{i:04}"), "Succeeded");
    }
    // Killed as soon as the burst starts to land: both replicas are writing it.
    wait_until("the burst is being written", || async {
        rows(&url).await.iter().any(|(_, phase, _)| phase == "Succeeded").then_some(())
    })
    .await;
    killed.kill().expect("SIGKILL");
    killed.wait().expect("reaped");
    let rows = wait_until("the archive equals the directory", || async {
        let rows = rows(&url).await;
        rows.iter().all(|(_, phase, deleted)| phase == "Succeeded" && !deleted).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), runs, "one row per execution, nothing doubled");
    service.stop().await;
}

/// A change to the system made by a command and undone by another when dropped: a file made
/// unwritable even for root (`chattr +i`), a small tmpfs mounted. `None` where the filesystem
/// or the container does not allow it.
struct Undone(Vec<String>);

impl Undone {
    fn run(command: &[&str], undo: &[&str]) -> Option<Undone> {
        let done = std::process::Command::new(command[0]).args(&command[1..]).status();
        done.is_ok_and(|s| s.success()).then(|| Undone(undo.iter().map(|s| s.to_string()).collect()))
    }

    fn immutable(path: &Path) -> Option<Undone> {
        let path = path.to_str().unwrap();
        Undone::run(&["chattr", "+i", path], &["chattr", "-i", path])
    }
}

impl Drop for Undone {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.0[0]).args(&self.0[1..]).status();
    }
}

#[tokio::test]
async fn a_read_only_sqlite_file_is_named_and_live_serving_goes_on() {
    let (_dir, data, archive) = data_and_archive();
    let url = format!("sqlite:{}", archive.join("history.db").display());
    let service = launch(&data, &url).await;
    wait_until("the run is archived", || async { (rows(&url).await.len() == 1).then_some(()) }).await;
    service.stop().await;
    let _locked = [archive.join("history.db"), archive.clone()].map(|p| Undone::immutable(&p));
    if _locked.iter().any(Option::is_none) {
        eprintln!("skipped: chattr +i is not allowed here, so nothing is read-only to root");
        return;
    }
    write_run(&data, "run-2", "Running");
    let service = launch(&data, &url).await;
    service.wait_for("live serving goes on", "/api/v1/executions", |b| names(b).len() == 2).await;
    names_the_fault(&service, &["readonly", "unable to open"]).await;
    service.stop().await;
}

/// Takes every free byte of the filesystem `dir` is on, so the next write there fails with
/// ENOSPC; the file that does it, to free it.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [64 * 1024, 4096, 512] {
        while file.write_all(&vec![0; chunk]).and_then(|()| file.sync_all()).is_ok() {}
    }
    path
}

#[tokio::test]
async fn a_full_disk_is_named_and_nothing_is_lost_once_there_is_room() {
    let (_dir, data, archive) = data_and_archive();
    let place = archive.to_str().unwrap();
    let Some(_disk) = Undone::run(&["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", place], &["umount", "-l", place])
    else {
        eprintln!("skipped: mounting a small tmpfs is not allowed here, so no disk can be filled");
        return;
    };
    let url = format!("sqlite:{}", archive.join("history.db").display());
    let service = launch(&data, &url).await;
    wait_until("the run is archived", || async { (rows(&url).await.len() == 1).then_some(()) }).await;

    let filler = fill(&archive);
    for i in 2..=6 {
        write_run(&data, &format!("run-{i}"), "Running");
    }
    service.wait_for("live serving goes on", "/api/v1/executions", |b| names(b).len() == 6).await;
    names_the_fault(&service, &["full"]).await;

    std::fs::remove_file(filler).unwrap();
    wait_until("nothing is lost once there is room", || async { (rows(&url).await.len() == 6).then_some(()) }).await;
    wait_until("history is ready again", || async { (history(&service).await["ready"] == true).then_some(()) }).await;
    service.stop().await;
}
