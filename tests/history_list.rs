//! One list over live and archived executions, against a real SQLite file and a real
//! PostgreSQL server: pages through `continue` hold every execution once, newest first, with
//! filters, whether its ConfigMap is live, just deleted (its row not written yet) or archived;
//! ETags and long polls see a deletion as a change, streams see it as a modification, and a
//! caller sees archived executions of the namespaces they may read only.

mod common;

use std::path::Path;
use std::time::Duration;

use common::postgres::Postgres;
use common::{
    Cluster, DEADLINE, Running, Setup, client_for, dir_source, fast_watch, manifest, names, tokens_file, wait_until,
};
use eventsource_stream::Eventsource;
use execwatch::access::Access;
use execwatch::access::tokens::TokenFile;
use execwatch::fixtures::Doc;
use execwatch::history::ArchiveSettings;
use execwatch::source::Sources;
use futures::StreamExt;
use serde_json::Value;

/// Runs written: run-00 is the oldest, run-39 the newest.
const RUNS: usize = 40;

/// One run as written, to know what each filter must answer.
struct Run {
    namespace: &'static str,
    name: String,
    pipeline: &'static str,
    phase: &'static str,
    staging: bool,
    gold: bool,
}

/// Which runs a list must hold.
type Keep<'a> = &'a dyn Fn(&Run) -> bool;

fn run(i: usize) -> Run {
    Run {
        namespace: if i.is_multiple_of(3) { "team-b" } else { "team-a" },
        name: format!("run-{i:02}"),
        pipeline: ["web", "api"][i % 2],
        phase: ["Running", "Succeeded", "Failed"][i % 3],
        staging: i.is_multiple_of(4),
        gold: i.is_multiple_of(5),
    }
}

fn write(dir: &Path, i: usize) {
    let r = run(i);
    let mut envs = vec![("dev", r.phase)];
    if r.staging {
        envs.push(("staging", r.phase));
    }
    let doc = Doc::new(r.pipeline).phase(r.phase).started_at(&format!("2026-11-01T10:{i:02}:00Z")).environments(&envs);
    let tier = if r.gold { "gold" } else { "silver" };
    let text = manifest(r.namespace, &r.name, &doc.yaml()).replacen(
        "  labels:\n",
        &format!("  labels:\n    tier: {tier}\n"),
        1,
    );
    let tmp = dir.join(format!(".{}.tmp", r.name));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{}.yaml", r.name))).unwrap();
}

fn remove(dir: &Path, i: usize) {
    std::fs::remove_file(dir.join(format!("{}.yaml", run(i).name))).unwrap();
}

/// Rows of the archive and how many are marked deleted.
async fn rows(url: &str) -> (i64, i64) {
    sqlx::any::install_default_drivers();
    let Ok(pool) = sqlx::AnyPool::connect(url).await else { return (0, 0) };
    let sql = "SELECT COUNT(*), COUNT(deleted_at) FROM executions";
    let counts = sqlx::query_as::<_, (i64, i64)>(sql).fetch_one(&pool).await.unwrap_or((0, 0));
    pool.close().await;
    counts
}

/// Every item of `path`, page by page (`limit` each), as (name, archived).
async fn all_pages(service: &Running, token: &str, path: &str, limit: usize) -> Vec<(String, bool)> {
    paged(service, token, path, limit).await.0
}

/// Every item of `path`, page by page, and the number of pages.
async fn paged(service: &Running, token: &str, path: &str, limit: usize) -> (Vec<(String, bool)>, usize) {
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        let sep = if path.contains('?') { '&' } else { '?' };
        let token_param = next.as_ref().map(|t| format!("&continue={t}")).unwrap_or_default();
        let page: Value = service
            .get_as(&format!("{path}{sep}limit={limit}{token_param}"), token)
            .await
            .json()
            .await
            .expect("a JSON page");
        assert_eq!(page["freshness"]["complete"], true, "{page}");
        for item in page["items"].as_array().expect("items") {
            let archived = item["archived"] == true;
            assert_eq!(archived, item["deletedAt"].is_string(), "archived items say when they went: {item}");
            items.push((item["name"].as_str().unwrap().to_owned(), archived));
        }
        match page["continue"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => return (items, pages),
        }
    }
}

/// What a list filtered by `keep` must hold, newest first, with the runs removed archived.
fn expected(keep: impl Fn(&Run) -> bool, removed: impl Fn(usize) -> bool) -> Vec<(String, bool)> {
    (0..RUNS).rev().filter(|&i| keep(&run(i))).map(|i| (run(i).name, removed(i))).collect()
}

fn setup(url: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap().keep();
    let tokens = dir.join("tokens.yaml");
    std::fs::write(&tokens, tokens_file(&[("a", "token-a", "[team-a]"), ("ops", "token-ops", "['*']")])).unwrap();
    let access = Access::tokens(TokenFile::load(&tokens, Duration::from_millis(100)).unwrap());
    let archive = ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86400));
    Setup { archive: Some(archive), access, ..Setup::default() }
}

async fn one_list_over_live_and_archived(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..RUNS {
        write(dir.path(), i);
    }
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), setup(url)).await;
    wait_until("every run is archived", || async { (rows(url).await.0 == RUNS as i64).then_some(()) }).await;
    let odd = |i: usize| i % 2 == 1;
    for i in (0..RUNS).filter(|&i| odd(i)) {
        remove(dir.path(), i);
    }
    wait_until("the deletions are written", || async { (rows(url).await.1 == (RUNS / 2) as i64).then_some(()) }).await;

    let all = all_pages(&service, "token-ops", "/api/v1/executions", 7).await;
    assert_eq!(all, expected(|_| true, odd), "newest first, live and archived, each once");
    let filters: [(&str, Keep); 7] = [
        ("/api/v1/executions?pipeline=web", &|r| r.pipeline == "web"),
        ("/api/v1/executions?phase=Failed", &|r| r.phase == "Failed"),
        ("/api/v1/executions?environment=staging", &|r| r.staging),
        ("/api/v1/executions?labelSelector=tier%3Dgold", &|r| r.gold),
        ("/api/v1/executions?labelSelector=tier+notin+(gold)&pipeline=api", &|r| !r.gold && r.pipeline == "api"),
        ("/api/v1/namespaces/team-b/executions?phase=Running", &|r| r.namespace == "team-b" && r.phase == "Running"),
        ("/api/v1/executions?namespace=team-a", &|r| r.namespace == "team-a"),
    ];
    for (path, keep) in filters {
        assert_eq!(all_pages(&service, "token-ops", path, 3).await, expected(keep, odd), "{path}");
    }
    // A caller of team-a sees team-a's archive only, and the identical 404 elsewhere.
    let team_a = all_pages(&service, "token-a", "/api/v1/executions", 5).await;
    assert_eq!(team_a, expected(|r| r.namespace == "team-a", odd));
    let hidden = service.get_as("/api/v1/namespaces/team-b/executions/run-03", "token-a").await;
    let unknown = service.get_as("/api/v1/namespaces/team-b/executions/never-was", "token-a").await;
    assert_eq!((hidden.status().as_u16(), unknown.status().as_u16()), (404, 404));
    assert_eq!(hidden.text().await.unwrap(), unknown.text().await.unwrap().replace("never-was", "run-03"));
    let archived = service.get_as("/api/v1/namespaces/team-b/executions/run-03", "token-ops").await;
    assert_eq!(archived.status(), 200);

    // Deletions while a client pages: nothing twice, nothing that existed throughout skipped,
    // whether a run is read live, as a deletion not written yet, or from its row.
    let mut seen = Vec::new();
    let first: Value = service.get_as("/api/v1/executions?limit=6", "token-ops").await.json().await.unwrap();
    seen.extend(names(&first));
    let mut token = first["continue"].as_str().map(str::to_owned);
    let mut doomed = (0..RUNS).rev().filter(|&i| !odd(i)).skip(4);
    while let Some(t) = token {
        if let Some(i) = doomed.next() {
            // Gone from the cluster: served from the journal until its row is written, then
            // from the row, whichever the next page meets.
            remove(dir.path(), i);
            let path = format!("/api/v1/namespaces/{}/executions/{}", run(i).namespace, run(i).name);
            wait_until("the run is archived", || async {
                let one: Value = service.get_as(&path, "token-ops").await.json().await.unwrap();
                (one["archived"] == true).then_some(())
            })
            .await;
        }
        let page: Value = service
            .get_as(&format!("/api/v1/executions?limit=6&continue={t}"), "token-ops")
            .await
            .json()
            .await
            .unwrap();
        seen.extend(names(&page));
        token = page["continue"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, expected(|_| true, |_| false).into_iter().map(|(n, _)| n).collect::<Vec<_>>());
    service.stop().await;
}

#[tokio::test]
async fn a_sqlite_archive_and_the_cluster_make_one_list() {
    let dir = tempfile::tempdir().unwrap();
    one_list_over_live_and_archived(&format!("sqlite:{}", dir.path().join("history.db").display())).await;
}

#[tokio::test]
async fn a_postgres_archive_and_the_cluster_make_one_list() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("one_list");
    one_list_over_live_and_archived(&postgres.url("one_list")).await;
}

/// A deletion is a change to a list that keeps the execution: its ETag changes, a long poll
/// returns, and a stream says `modified` with the execution marked archived.
#[tokio::test]
async fn a_deletion_is_a_modification_to_lists_polls_and_streams() {
    let data = tempfile::tempdir().unwrap();
    for i in 0..3 {
        write(data.path(), i);
    }
    let file = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", file.path().join("history.db").display());
    let service = Running::launch(dir_source(data.path(), Duration::from_millis(50)), setup(&url)).await;
    let path = "/api/v1/executions";
    wait_until("the runs are served, the archive connected", || async {
        let page: Value = service.get_as(path, "token-ops").await.json().await.unwrap();
        (page["freshness"]["complete"] == true && names(&page).len() == 3).then_some(())
    })
    .await;
    let etag = service.etag(path, Some("token-ops")).await;
    let stream =
        service.http.get(format!("{}{path}?watch=true", service.base)).bearer_auth("token-ops").send().await.unwrap();
    let mut events = Box::pin(stream.bytes_stream().eventsource());
    let snapshot = tokio::time::timeout(DEADLINE, events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(snapshot.event, "snapshot");

    let poll = service
        .http
        .get(format!("{}{path}?timeoutSeconds=20", service.base))
        .bearer_auth("token-ops")
        .header("if-none-match", &etag)
        .send();
    let poll = tokio::spawn(poll);
    remove(data.path(), 1);
    let modified = tokio::time::timeout(DEADLINE, events.next()).await.unwrap().unwrap().unwrap();
    let item: Value = serde_json::from_str(&modified.data).unwrap();
    assert_eq!(
        (modified.event.as_str(), item["name"].as_str(), &item["archived"]),
        ("modified", Some("run-01"), &Value::Bool(true))
    );
    let answered = tokio::time::timeout(DEADLINE, poll).await.unwrap().unwrap().unwrap();
    assert_eq!(answered.status(), 200, "the long poll returns with the change");
    let page: Value = answered.json().await.unwrap();
    assert_eq!(page["items"][1]["name"], "run-01");
    assert_eq!(page["items"][1]["archived"], true, "and the run is still listed, archived: {page}");
    assert_ne!(service.etag(path, Some("token-ops")).await, etag);
    service.stop().await;
}

/// A filter whose one match is deep in a long history: each page reads a bounded number of
/// rows, and a page that found none says where to go on, until the match is reached.
#[tokio::test]
async fn a_rare_match_deep_in_history_is_reached_page_by_page() {
    let data = tempfile::tempdir().unwrap();
    write(data.path(), 0);
    let file = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", file.path().join("history.db").display());
    let service = Running::launch(dir_source(data.path(), Duration::from_millis(50)), setup(&url)).await;
    wait_until("the live run is archived", || async { (rows(&url).await.0 == 1).then_some(()) }).await;
    let rows = 12_000;
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    for i in 0..rows {
        let name = format!("old-{i:05}");
        let tier = if i == rows - 1 { "gold" } else { "silver" };
        let summary = format!(
            r#"{{"namespace":"team-a","name":"{name}","pipeline":"web","application":{{"name":"web"}},"phase":"Succeeded","environments":[],"resourceVersion":"1"}}"#
        );
        let sql = "INSERT INTO executions (namespace, name, uid, resource_version, version_order, schema_set, \
                   pipeline, phase, sort_time, labels, summary, detail, first_seen, last_seen, deleted_at, list_key) \
                   VALUES ('team-a', $1, $2, '1', 1, 'old', 'web', 'Succeeded', $3, $4, $5, '{}', 0, 0, 1, $6)";
        sqlx::query(sql)
            .bind(name.clone())
            .bind(format!("uid-{i}"))
            .bind(1_700_000_000_000i64 - i64::from(i) * 1000)
            .bind(format!(r#"{{"tier":"{tier}"}}"#))
            .bind(summary)
            .bind([b"team-a".as_slice(), &[0], name.as_bytes()].concat())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
    let (items, pages) = paged(&service, "token-ops", "/api/v1/executions?labelSelector=tier%3Dgold", 10).await;
    assert_eq!(items, [("run-00".to_owned(), false), (format!("old-{:05}", rows - 1), true)]);
    assert!(pages >= 3, "{pages} pages: each reads a bounded number of rows");
    let all = all_pages(&service, "token-ops", "/api/v1/executions", 500).await;
    assert_eq!(all.len(), 1 + rows as usize, "the live run and every archived one");
    service.stop().await;
}

/// A ConfigMap deleted while no replica watched is found gone by the next start's relist, and
/// its execution is listed as archived from then on.
#[tokio::test]
async fn what_was_deleted_while_nobody_watched_is_archived_at_the_next_start() {
    let data = tempfile::tempdir().unwrap();
    for i in 0..3 {
        write(data.path(), i);
    }
    let file = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", file.path().join("history.db").display());
    let launch = || Running::launch(dir_source(data.path(), Duration::from_millis(50)), setup(&url));
    let service = launch().await;
    wait_until("every run is archived", || async { (rows(&url).await.0 == 3).then_some(()) }).await;
    service.stop().await;
    remove(data.path(), 1);
    let service = launch().await;
    wait_until("the relist marks the absentee", || async { (rows(&url).await == (3, 1)).then_some(()) }).await;
    let all = all_pages(&service, "token-ops", "/api/v1/executions", 10).await;
    let expected = [("run-02", false), ("run-01", true), ("run-00", false)].map(|(n, a)| (n.to_owned(), a));
    assert_eq!(all, expected);
    service.stop().await;
}

/// A namespace whose every ConfigMap was deleted while no replica watched lists empty, so no
/// version bounds what it should have held: what the archive first saw well before that list is
/// found gone all the same.
#[tokio::test]
async fn a_namespace_emptied_while_nobody_watched_is_archived_at_the_next_start() {
    let file = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", file.path().join("history.db").display());
    let cluster = Cluster::launch(&["team-a"], &["team-a"], fast_watch(), setup(&url)).await;
    for name in ["run-1", "run-2"] {
        cluster.put_execution("team-a", name, &Doc::new("web").phase("Succeeded")).await;
    }
    wait_until("both runs are archived", || async { (rows(&url).await == (2, 0)).then_some(()) }).await;
    let Cluster { sim, service, writer } = cluster;
    service.stop().await;
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(writer, "team-a");
    for name in ["run-1", "run-2"] {
        api.delete(name, &Default::default()).await.unwrap();
    }
    // The runs were first seen ten minutes before the restart.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE executions SET first_seen = first_seen - 600000").execute(&pool).await.unwrap();
    pool.close().await;

    let sources =
        Sources::Kube { client: client_for(&sim), namespaces: vec!["team-a".to_owned()].into(), watch: fast_watch() };
    let service = Running::launch(sources, setup(&url)).await;
    wait_until("the empty relist marks both", || async { (rows(&url).await == (2, 2)).then_some(()) }).await;
    let all = all_pages(&service, "token-ops", "/api/v1/executions", 10).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|(_, archived)| *archived), "{all:?}");
    service.stop().await;
}

/// The pipelines page (every pipeline, one page) as `token-ops` sees it, once complete.
async fn pipelines(service: &Running) -> Vec<Value> {
    wait_until("the pipelines are complete", || async {
        let page: Value = service.get_as("/api/v1/pipelines", "token-ops").await.json().await.unwrap();
        (page["freshness"]["complete"] == true).then(|| page["items"].as_array().unwrap().clone())
    })
    .await
}

/// Pipelines count their whole history: deleting runs changes neither a count nor where an
/// environment stands, only the latest run's mark; a pipeline whose runs are all archived stays;
/// and a restart loads the same history from the archive.
#[tokio::test]
async fn pipelines_count_their_whole_history_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    for i in 0..10 {
        write(data.path(), i);
    }
    let file = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", file.path().join("history.db").display());
    let launch = || Running::launch(dir_source(data.path(), Duration::from_millis(50)), setup(&url));
    let service = launch().await;
    wait_until("every run is archived", || async { (rows(&url).await.0 == 10).then_some(()) }).await;
    let live = pipelines(&service).await;
    assert_eq!(live.len(), 4, "web and api of team-a, and of team-b");
    // Every `api` run (the odd ones: team-a/api and team-b/api are all history), and the newest
    // `web` run of team-a.
    for i in [1, 3, 5, 7, 9, 8] {
        remove(data.path(), i);
    }
    wait_until("the deletions are written", || async { (rows(&url).await.1 == 6).then_some(()) }).await;
    let expected: Vec<Value> = live
        .iter()
        .map(|p| {
            let mut p = p.clone();
            let latest = p["latestExecution"]["name"].as_str().unwrap();
            if ["run-09", "run-08", "run-07"].contains(&latest) {
                p["latestExecution"]["archived"] = Value::Bool(true);
            }
            p
        })
        .collect();
    let check = |got: &[Value]| {
        assert_eq!(got.len(), expected.len());
        for (got, want) in got.iter().zip(&expected) {
            let mut got = got.clone();
            assert!(got["latestExecution"]["archived"] != true || got["latestExecution"]["deletedAt"].is_string());
            got["latestExecution"].as_object_mut().unwrap().remove("deletedAt");
            assert_eq!(&got, want, "counts, environments and the latest run are those of the whole history");
        }
    };
    let history = wait_until("the deletions are archived runs", || async {
        let got = pipelines(&service).await;
        got.iter().any(|p| p["latestExecution"]["archived"] == true).then_some(got)
    })
    .await;
    check(&history);
    service.stop().await;
    let service = launch().await;
    let restarted = wait_until("the history is loaded again", || async {
        let got = pipelines(&service).await;
        (got.len() == 4).then_some(got)
    })
    .await;
    check(&restarted);
    service.stop().await;
}
