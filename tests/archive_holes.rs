//! The review's holes in reading the archive (`shared/reviews/security-2026-12-05.md`), from
//! outside: a hostile filter value, one caller's slow reads, and the archive's URL in answers.
//! No request of one caller takes the archive away from another, and no caller sees the
//! database's own words.

mod common;

use std::path::Path;
use std::time::Duration;

use common::postgres::Postgres;
use common::{Running, Setup, dir_source, manifest, names, wait_until};
use execwatch::access::Access;
use execwatch::access::tokens::TokenFile;
use execwatch::fixtures::Doc;
use execwatch::history::ArchiveSettings;
use serde_json::Value;

fn write(dir: &Path, ns: &str, name: &str) {
    let tmp = dir.join(format!(".{ns}-{name}.tmp"));
    std::fs::write(&tmp, manifest(ns, name, &Doc::new("web").phase("Succeeded").yaml())).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{ns}-{name}.yaml"))).unwrap();
}

/// bob reads team-b, eve only team-e, admin everything.
fn tokens(dir: &Path) -> Access {
    let path = dir.join("tokens.yaml");
    let entries =
        [("bob", "bob-token", "[team-b]"), ("eve", "eve-token", "[team-e]"), ("admin", "admin-token", "[\"*\"]")];
    let text = common::tokens_file(&entries);
    std::fs::write(&path, text).unwrap();
    Access::tokens(TokenFile::load(&path, Duration::from_secs(60)).expect("tokens"))
}

async fn launch(data: &Path, url: &str, access: Access) -> Running {
    let archive = ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86400));
    let setup = Setup { archive: Some(archive), access, ..Setup::default() };
    Running::launch(dir_source(data, Duration::from_millis(50)), setup).await
}

async fn get(service: &Running, token: &str, path: &str) -> (u16, Value) {
    let response = service.get_as(path, token).await;
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn served(service: &Running, count: usize) {
    wait_until("the live runs are served", || async {
        let (status, body) = get(service, "admin-token", "/api/v1/executions").await;
        (status == 200 && names(&body).len() == count).then_some(())
    })
    .await;
}

/// bob's run `b-gone`, archived (its file deleted), and a live run in team-e.
async fn archived_run(data: &Path, service: &Running) {
    write(data, "team-b", "b-gone");
    write(data, "team-e", "e-live");
    served(service, 2).await;
    wait_until("b-gone archived", || async {
        let h = get(service, "admin-token", "/api/v1/modules").await.1;
        let history = h["items"].as_array()?.iter().find(|m| m["name"] == "history")?.clone();
        (history["ready"] == true).then_some(())
    })
    .await;
    std::fs::remove_file(data.join("team-b-b-gone.yaml")).unwrap();
    wait_until("b-gone is served from the archive", || async {
        let (status, body) = get(service, "bob-token", "/api/v1/namespaces/team-b/executions/b-gone").await;
        (status == 200 && body["archived"] == true).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_filter_or_one_callers_slow_reads_never_take_the_archive_from_others() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("holes");
    let url = postgres.url("holes");
    let dir = tempfile::tempdir().unwrap();
    let service = launch(dir.path(), &url, tokens(dir.path())).await;
    archived_run(dir.path(), &service).await;
    let bobs = "/api/v1/namespaces/team-b/executions/b-gone";

    // A NUL (or any control character) in a filter value is refused, and harms no one.
    for query in ["pipeline=%00", "environment=a%00b", "labelSelector=a%3Db%00", "pipeline=%01"] {
        let (status, body) = get(&service, "eve-token", &format!("/api/v1/executions?{query}")).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("InvalidParameter")), "{query}: {body}");
    }
    assert_eq!(get(&service, "bob-token", bobs).await.0, 200, "bob still reads his archived run");

    // The database stops answering (a lock held by another session): eve floods her own
    // namespace's list with reads that cannot finish. At most two of hers wait on the
    // database; the rest are answered busy at once.
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&url).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    let flood = (0..8).map(|i| {
        let path = format!("/api/v1/executions?labelSelector=x{i}%3Dy");
        let service = &service;
        async move { get(service, "eve-token", &path).await }
    });
    let answers = futures::future::join_all(flood).await;
    let said = |(_, body): &(u16, Value)| {
        body["freshness"]["incompleteSources"][0]["lastError"].as_str().unwrap_or("").to_owned()
    };
    let busy = answers.iter().filter(|a| said(a).contains("busy")).count();
    assert!(
        busy >= 6,
        "at most two of eve's reads wait on the database: {:?}",
        answers.iter().map(said).collect::<Vec<_>>()
    );
    for answer in &answers {
        assert_eq!(answer.0, 200, "eve's live runs are served: {:?}", answer.1);
        assert!(!said(answer).contains("LOCK") && !said(answer).contains("127.0.0.1"), "fixed words: {}", said(answer));
    }
    // The database answers again: bob reads his run at once, not after a back-off that eve's
    // slow reads switched on for everyone.
    lock.rollback().await.unwrap();
    let (status, body) = get(&service, "bob-token", bobs).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["archived"], true);
    admin.close().await;
    service.stop().await;
}

#[tokio::test]
async fn the_archives_url_and_the_databases_words_reach_no_caller() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "team-b", "b-live");
    let url = "postgres://execwatch:S3cr3t@pw@127.0.0.1:1/history?password=S3cr3tPw&sslmode=disable";
    let service = launch(dir.path(), url, tokens(dir.path())).await;
    served(&service, 1).await;
    let (_, list) = get(&service, "bob-token", "/api/v1/namespaces/team-b/executions").await;
    let (status, one) = get(&service, "bob-token", "/api/v1/namespaces/team-b/executions/nonexistent").await;
    assert_eq!(status, 503, "{one}");
    let (_, pipelines) = get(&service, "bob-token", "/api/v1/namespaces/team-b/pipelines").await;
    for body in [&list, &one, &pipelines] {
        let text = body.to_string();
        assert!(!text.contains("S3cr3t") && !text.contains("127.0.0.1:1"), "{text}");
    }
    assert!(list["freshness"]["incompleteSources"].to_string().contains("the archive cannot be read"), "{list}");
    // The history module, which only callers who read everything see, says why, redacted.
    let modules = get(&service, "admin-token", "/api/v1/modules").await.1.to_string();
    assert!(modules.contains("cannot open the archive") && !modules.contains("S3cr3t"), "{modules}");
    service.stop().await;
}

/// Name and whether deleted, of every row of a SQLite archive, by name; none before the service
/// made it.
async fn sqlite_rows(url: &str) -> Vec<(String, bool)> {
    sqlx::any::install_default_drivers();
    let Ok(pool) = sqlx::AnyPool::connect(url).await else { return Vec::new() };
    let sql = "SELECT name, deleted_at FROM executions ORDER BY name";
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap_or_default();
    pool.close().await;
    rows.into_iter().map(|(name, deleted)| (name, deleted.is_some())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_namespace_selector_a_restart_marks_deleted_only_what_was_deleted() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    let sim = k8s_sim::Sim::start().await.expect("simulator starts");
    let writer = common::client_for(&sim);
    let namespaces: kube::Api<Namespace> = kube::Api::all(writer.clone());
    for ns in ["team-a", "team-b"] {
        let labelled =
            serde_json::json!({"metadata": {"name": ns, "labels": {"pipelines.gitops.dev/executions": "enabled"}}});
        namespaces.create(&Default::default(), &serde_json::from_value(labelled).unwrap()).await.unwrap();
        for name in ["run-1", "run-2"] {
            let cm = execwatch::fixtures::Cm::new(ns, &format!("{ns}-{name}")).doc(&Doc::new("web")).build();
            kube::Api::<ConfigMap>::namespaced(writer.clone(), ns).create(&Default::default(), &cm).await.unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("history.db").display());
    let start = || async {
        let selector = "pipelines.gitops.dev/executions=enabled".parse().unwrap();
        let namespaces = execwatch::source::Namespaces::Selected(selector);
        let sources =
            execwatch::Sources::Kube { client: common::client_for(&sim), namespaces, watch: common::fast_watch() };
        let archive = ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86400));
        Running::launch(sources, Setup { archive: Some(archive), ..Setup::default() }).await
    };
    let service = start().await;
    service.wait_for("every run", "/api/v1/executions", |b| names(b).len() == 4).await;
    let sqlite = format!("sqlite://{}", dir.path().join("history.db").display());
    wait_until("four rows", || async { (sqlite_rows(&sqlite).await.len() == 4).then_some(()) }).await;
    service.stop().await;
    // Time passes (the rows were first seen long ago), and one run is deleted while no one watches.
    let pool = sqlx::AnyPool::connect(&sqlite).await.unwrap();
    sqlx::query("UPDATE executions SET first_seen = first_seen - 3600000").execute(&pool).await.unwrap();
    // A stored detail no decoding could produce: served again, it shows the restart was warm
    // (each namespace loads its own rows).
    let marked = "UPDATE executions SET detail = replace(detail, '\"pipeline\":\"web\"', '\"pipeline\":\"stored\"') \
                  WHERE name = 'team-b-run-1'";
    sqlx::query(marked).execute(&pool).await.unwrap();
    pool.close().await;
    kube::Api::<ConfigMap>::namespaced(writer.clone(), "team-a")
        .delete("team-a-run-2", &Default::default())
        .await
        .unwrap();

    let service = start().await;
    service.wait_for("the live runs", "/api/v1/executions", |b| names(b).len() == 4).await;
    let rows = wait_until("the deleted run is marked", || async {
        let rows = sqlite_rows(&sqlite).await;
        rows.iter().any(|(name, deleted)| name == "team-a-run-2" && *deleted).then_some(rows)
    })
    .await;
    let marked: Vec<&str> = rows.iter().filter(|(_, deleted)| *deleted).map(|(n, _)| n.as_str()).collect();
    assert_eq!(marked, ["team-a-run-2"], "the live runs are not marked deleted");
    let (_, list) = service.get("/api/v1/executions").await;
    let archived: Vec<&Value> = list["items"].as_array().unwrap().iter().filter(|i| i["archived"] == true).collect();
    assert_eq!(archived.len(), 1, "one archived run, the deleted one: {list}");
    let (_, pipelines) = service.get("/api/v1/pipelines").await;
    let counts: u64 =
        pipelines["items"].as_array().unwrap().iter().map(|p| p["executionCount"].as_u64().unwrap()).sum();
    assert_eq!(counts, 4, "each run counted once: {pipelines}");
    let (_, warm) = service.get("/api/v1/namespaces/team-b/executions/team-b-run-1").await;
    assert_eq!(warm["execution"]["pipeline"], "stored", "served as the archive stored it: {warm}");
    service.stop().await;
}

/// Whether every step of a plan that reads the `executions` table (as `e` or `l`) reads it by a
/// condition on namespace: no walk of the whole table or of an index by another column.
fn confined_to_namespaces(plan: &[String], sqlite: bool) -> Result<(), String> {
    let all = plan.join("\n");
    if sqlite {
        // e.g. `SEARCH e USING INDEX executions_archived_by_namespace_pipeline (namespace=? AND pipeline=?)`
        for step in plan.iter().filter(|s| s.contains("SCAN e") || s.contains("SEARCH e") || s.contains(" l ")) {
            if !step.contains("(namespace=?") {
                return Err(format!("{step:?} is not confined to a namespace:\n{all}"));
            }
        }
        return Ok(());
    }
    for (i, step) in plan.iter().enumerate().filter(|(_, s)| s.contains("Scan") && s.contains(" on executions")) {
        let details = plan[i + 1..].iter().take_while(|s| !s.contains("->"));
        if !details.clone().any(|d| d.contains("Cond:") && d.contains("namespace =")) {
            return Err(format!("{step:?} is not confined to a namespace:\n{all}"));
        }
    }
    Ok(())
}

async fn plans_read_only_the_scopes_namespaces(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let service = launch(dir.path(), url, tokens(dir.path())).await;
    write(dir.path(), "team-b", "b-1");
    served(&service, 1).await;
    service.stop().await;
    let url: execwatch::history::ArchiveUrl = url.parse().unwrap();
    let sqlite = url.redacted().starts_with("sqlite");
    let scopes = [vec!["team-a"], vec!["team-a", "team-b", "team-c"]];
    for namespaces in scopes {
        for (pipeline, phase) in
            [(Some("web"), None), (None, Some("Failed")), (Some("web"), Some("Failed")), (None, None)]
        {
            let plan =
                execwatch::history::archived_plan(&url, Some(namespaces.clone()), pipeline, phase).await.unwrap();
            assert!(!plan.is_empty());
            if let Err(e) = confined_to_namespaces(&plan, sqlite) {
                panic!("{namespaces:?} pipeline={pipeline:?} phase={phase:?}: {e}");
            }
        }
    }
}

#[tokio::test]
async fn a_sqlite_archived_list_walks_only_its_scopes_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    plans_read_only_the_scopes_namespaces(&format!("sqlite:{}", dir.path().join("history.db").display())).await;
}

#[tokio::test]
async fn a_postgres_archived_list_walks_only_its_scopes_namespaces() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("plans");
    plans_read_only_the_scopes_namespaces(&postgres.url("plans")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_listing_an_unwatched_namespace_sees_none_of_its_archive() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("history.db").display());
    let archive = || Some(ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86400)));
    // team-a's runs archived while it was watched ...
    let c = common::Cluster::launch(
        &["team-a", "team-b"],
        &["team-a", "team-b"],
        common::fast_watch(),
        Setup { archive: archive(), ..Setup::default() },
    )
    .await;
    c.put_execution("team-a", "secret-deploy-1", &Doc::new("payroll")).await;
    c.put_execution("team-b", "b-run", &Doc::new("web")).await;
    c.service.wait_for("both runs", "/api/v1/executions", |b| names(b).len() == 2).await;
    c.delete("team-a", "secret-deploy-1").await;
    c.service
        .wait_for("the deleted run archived", "/api/v1/executions", |b| {
            b["items"].as_array().is_some_and(|items| items.iter().any(|i| i["archived"] == true))
        })
        .await;
    // ... then the service watches team-b alone; a token lists both.
    let path = dir.path().join("tokens.yaml");
    std::fs::write(&path, common::tokens_file(&[("both", "both-token", "[team-a, team-b]")])).unwrap();
    let access = Access::tokens(TokenFile::load(&path, Duration::from_secs(60)).unwrap());
    let namespaces = vec!["team-b".to_owned()].into();
    let sources =
        execwatch::Sources::Kube { client: common::client_for(&c.sim), namespaces, watch: common::fast_watch() };
    let service = Running::launch(sources, Setup { archive: archive(), access, ..Setup::default() }).await;
    wait_until("team-b's run", || async {
        let (status, body) = get(&service, "both-token", "/api/v1/executions").await;
        (status == 200 && names(&body).contains(&"b-run".to_owned())).then_some(())
    })
    .await;
    wait_until("archived runs loaded for pipelines", || async {
        let (_, body) = get(&service, "both-token", "/api/v1/pipelines").await;
        (body["freshness"]["complete"] == true).then_some(())
    })
    .await;
    assert_eq!(get(&service, "both-token", "/api/v1/namespaces/team-a/executions").await.0, 404);
    let (_, list) = get(&service, "both-token", "/api/v1/executions").await;
    assert_eq!(names(&list), ["b-run"], "none of team-a's archive: {list}");
    let (_, pipelines) = get(&service, "both-token", "/api/v1/pipelines").await;
    let shown: Vec<&str> =
        pipelines["items"].as_array().unwrap().iter().filter_map(|p| p["namespace"].as_str()).collect();
    assert_eq!(shown, ["team-b"], "{pipelines}");
    service.stop().await;
}

#[tokio::test]
async fn a_run_rejected_at_its_last_version_then_deleted_is_archived_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let url = format!("sqlite:{}", dir.path().join("history.db").display());
    let service = launch(&data, &url, Access::open()).await;
    write(&data, "team-b", "b-run-2");
    let sqlite = format!("sqlite://{}", dir.path().join("history.db").display());
    wait_until("its row", || async { (sqlite_rows(&sqlite).await.len() == 1).then_some(()) }).await;
    // The writer's last version is invalid (a phase no schema knows), then the ConfigMap goes.
    let bogus = Doc::new("web").phase("Bogus").yaml();
    let tmp = data.join(".bogus.tmp");
    std::fs::write(&tmp, manifest("team-b", "b-run-2", &bogus)).unwrap();
    std::fs::rename(&tmp, data.join("team-b-b-run-2.yaml")).unwrap();
    service.wait_for("rejected", "/api/v1/rejections", |b| names(b) == ["b-run-2"]).await;
    std::fs::remove_file(data.join("team-b-b-run-2.yaml")).unwrap();
    service.wait_for("no rejection left", "/api/v1/rejections", |b| names(b).is_empty()).await;
    // Served from the archive as it last was, without waiting for a relist.
    let one =
        service.wait_for("archived", "/api/v1/namespaces/team-b/executions/b-run-2", |b| b["archived"] == true).await;
    assert_eq!(one["execution"]["phase"], "Succeeded", "{one}");
    let list = service.get("/api/v1/executions").await.1;
    assert_eq!(names(&list), ["b-run-2"], "{list}");
    wait_until("its row marked", || async {
        (sqlite_rows(&sqlite).await == [("b-run-2".to_owned(), true)]).then_some(())
    })
    .await;
    service.stop().await;
}

/// A run's last change is written on shutdown, even while the database is slow to take it.
#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_writes_what_the_archive_has_not_taken_yet() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("flush");
    let url = postgres.url("flush");
    let dir = tempfile::tempdir().unwrap();
    let mut service = launch(dir.path(), &url, Access::open()).await;
    let run = |phase: &str| manifest("team-a", "x1", &Doc::new("web").phase(phase).yaml());
    let put = |phase: &str| {
        let tmp = dir.path().join(".x1.tmp");
        std::fs::write(&tmp, run(phase)).unwrap();
        std::fs::rename(&tmp, dir.path().join("x1.yaml")).unwrap();
    };
    let phase_of = || async {
        let pool = sqlx::AnyPool::connect(&url).await.ok()?;
        let row: Option<(String,)> =
            sqlx::query_as("SELECT phase FROM executions WHERE name = 'x1'").fetch_optional(&pool).await.ok()?;
        pool.close().await;
        row.map(|(phase,)| phase)
    };
    sqlx::any::install_default_drivers();
    put("Running");
    wait_until("x1 archived Running", || async { (phase_of().await.as_deref() == Some("Running")).then_some(()) })
        .await;
    // The database stalls (a lock held elsewhere) as x1 succeeds, and the service is stopped.
    let admin = sqlx::AnyPool::connect(&url).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    put("Succeeded");
    service.wait_for("x1 served Succeeded", "/api/v1/executions", |b| b["items"][0]["phase"] == "Succeeded").await;
    let address = service.address().to_owned();
    service.begin_stop();
    wait_until("the service no longer serves", || async {
        tokio::net::TcpStream::connect(&address).await.is_err().then_some(())
    })
    .await;
    // The database answers again while the service stops: its last change is written.
    lock.rollback().await.unwrap();
    service.stopped().await;
    admin.close().await;
    assert_eq!(phase_of().await.as_deref(), Some("Succeeded"));
}

/// With the database down at shutdown, what it did not take waits in the spool, and the next
/// start writes it first: a run's final state, and a run created and deleted meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn notes_the_database_missed_at_shutdown_wait_in_the_spool_for_the_next_start() {
    let Some(postgres) = Postgres::start() else { return };
    postgres.create("spool");
    let url = postgres.url("spool");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let spool = dir.path().join("archive.spool");
    let start = || {
        let archive = ArchiveSettings {
            spool: Some(spool.clone()),
            ..ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86400))
        };
        Running::launch(
            dir_source(&data, Duration::from_millis(50)),
            Setup { archive: Some(archive), ..Setup::default() },
        )
    };
    let put = |name: &str, phase: &str| {
        let tmp = data.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, manifest("team-a", name, &Doc::new("web").phase(phase).yaml())).unwrap();
        std::fs::rename(&tmp, data.join(format!("{name}.yaml"))).unwrap();
    };
    let rows = || async {
        sqlx::any::install_default_drivers();
        let Ok(pool) = sqlx::AnyPool::connect(&url).await else { return Vec::new() };
        let sql = "SELECT name, phase, deleted_at FROM executions ORDER BY name";
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap_or_default();
        pool.close().await;
        rows.into_iter().map(|(n, p, d)| (n, p, d.is_some())).collect::<Vec<_>>()
    };
    let row = |n: &str, p: &str, d: bool| (n.to_owned(), p.to_owned(), d);
    let service = start().await;
    put("x1", "Running");
    wait_until("x1 archived", || async { (rows().await == [row("x1", "Running", false)]).then_some(()) }).await;
    postgres.halt();
    put("x1", "Succeeded");
    put("x2", "Failed");
    service.wait_for("both served", "/api/v1/executions", |b| names(b).len() == 2).await;
    std::fs::remove_file(data.join("x2.yaml")).unwrap();
    service
        .wait_for("x2 deleted", "/api/v1/executions", |b| {
            b["items"].as_array().is_some_and(|i| i.iter().any(|e| e["archived"] == true))
        })
        .await;
    service.stop().await;
    assert!(spool.exists(), "the notes wait in the spool");
    postgres.resume();
    let service = start().await;
    let want = vec![row("x1", "Succeeded", false), row("x2", "Failed", true)];
    wait_until("the spool's notes are in the archive", || async { (rows().await == want).then_some(()) }).await;
    wait_until("the spool is gone", || async { (!spool.exists()).then_some(()) }).await;
    service.stop().await;
}

/// A caller who reads many namespaces (more than a SQLite compound query holds) gets every
/// archived run of them, in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_scope_of_six_hundred_namespaces_reads_the_archive_of_each() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let namespaces: Vec<String> = (0..600).map(|i| format!("ns-{i:03}")).collect();
    for ns in &namespaces {
        std::fs::write(data.join(format!("{ns}.yaml")), manifest(ns, "run", &Doc::new("web").yaml())).unwrap();
    }
    let path = dir.path().join("tokens.yaml");
    std::fs::write(&path, common::tokens_file(&[("many", "many-token", &format!("[{}]", namespaces.join(", ")))]))
        .unwrap();
    let access = Access::tokens(TokenFile::load(&path, Duration::from_secs(60)).unwrap());
    let url = format!("sqlite:{}", dir.path().join("history.db").display());
    let service = launch(&data, &url, access).await;
    let sqlite = format!("sqlite://{}", dir.path().join("history.db").display());
    wait_until("600 rows", || async { (sqlite_rows(&sqlite).await.len() == 600).then_some(()) }).await;
    for ns in ["ns-001", "ns-599"] {
        std::fs::remove_file(data.join(format!("{ns}.yaml"))).unwrap();
    }
    wait_until("two rows marked", || async {
        (sqlite_rows(&sqlite).await.iter().filter(|(_, deleted)| *deleted).count() == 2).then_some(())
    })
    .await;
    let (mut archived, mut all, mut next) = (Vec::new(), 0, None::<String>);
    loop {
        let token = next.as_ref().map(|t| format!("&continue={t}")).unwrap_or_default();
        let (status, page) = get(&service, "many-token", &format!("/api/v1/executions?limit=500{token}")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["freshness"]["complete"], true, "{}", page["freshness"]);
        for item in page["items"].as_array().unwrap() {
            all += 1;
            if item["archived"] == true {
                archived.push(item["namespace"].as_str().unwrap().to_owned());
            }
        }
        match page["continue"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!((all, archived), (600, vec!["ns-001".to_owned(), "ns-599".to_owned()]));
    service.stop().await;
}

/// A namespace deleted and created again under its name is another namespace: what was archived
/// in the first is nobody's to read in the second, and the second's own runs are.
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_created_again_does_not_inherit_the_archive_of_the_earlier_one() {
    use k8s_openapi::api::core::v1::Namespace;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.yaml");
    std::fs::write(&path, common::tokens_file(&[("carol", "carol-token", "[team-a]")])).unwrap();
    let access = Access::tokens(TokenFile::load(&path, Duration::from_secs(60)).unwrap());
    let url = format!("sqlite:{}", dir.path().join("history.db").display());
    let archive = ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86400));
    let setup = Setup { archive: Some(archive), access, ..Setup::default() };
    let c = common::Cluster::launch(&["team-a", "team-b"], &["team-a", "team-b"], common::fast_watch(), setup).await;
    let archived_of = |body: &Value| -> Vec<String> {
        let items = body["items"].as_array().cloned().unwrap_or_default();
        items.iter().filter(|i| i["archived"] == true).map(|i| i["name"].as_str().unwrap().to_owned()).collect()
    };
    let carol_sees = |want: &'static [&'static str]| {
        let c = &c;
        async move {
            wait_until("carol's archived runs of team-a", || async {
                let (status, body) = get(&c.service, "carol-token", "/api/v1/namespaces/team-a/executions").await;
                (status == 200 && archived_of(&body) == want).then_some(())
            })
            .await
        }
    };
    c.put_execution("team-a", "secret-deploy-1", &Doc::new("payroll")).await;
    wait_until("served", || async {
        let (_, body) = get(&c.service, "carol-token", "/api/v1/namespaces/team-a/executions").await;
        (names(&body) == ["secret-deploy-1"]).then_some(())
    })
    .await;
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(c.writer.clone(), "team-a");
    let made = configmaps.get("secret-deploy-1").await.unwrap().metadata.creation_timestamp.unwrap().0;
    c.delete("team-a", "secret-deploy-1").await;
    carol_sees(&["secret-deploy-1"]).await;
    // Creation times are whole seconds, as the API server keeps them; a namespace's deletion
    // takes longer than that in a cluster, and at once in the simulator.
    wait_until("the next second", || async { (jiff::Timestamp::now().as_second() > made.as_second()).then_some(()) })
        .await;
    // team-a is decommissioned, and the name is given again.
    let namespaces: kube::Api<Namespace> = kube::Api::all(c.writer.clone());
    namespaces.delete("team-a", &Default::default()).await.unwrap();
    c.create_namespace("team-a").await;
    carol_sees(&[]).await;
    let one = "/api/v1/namespaces/team-a/executions/secret-deploy-1";
    assert_eq!(get(&c.service, "carol-token", one).await.0, 404);
    wait_until("team-a's pipelines forget the earlier namespace", || async {
        let (_, body) = get(&c.service, "carol-token", "/api/v1/namespaces/team-a/pipelines").await;
        (body["freshness"]["complete"] == true && body["items"].as_array().is_some_and(Vec::is_empty)).then_some(())
    })
    .await;
    // The new namespace's own runs are archived and read as ever.
    c.put_execution("team-a", "new-run", &Doc::new("web")).await;
    wait_until("the new run", || async {
        let (_, body) = get(&c.service, "carol-token", "/api/v1/namespaces/team-a/executions").await;
        (names(&body) == ["new-run"]).then_some(())
    })
    .await;
    c.delete("team-a", "new-run").await;
    carol_sees(&["new-run"]).await;
}
