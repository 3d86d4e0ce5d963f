//! Insights over HTTP, from outside: numbers worked by hand, bad parameters, ETags and long
//! polls; the same insights whether the runs are live, archived, or pruned by retention (SQLite
//! and PostgreSQL, runs written by kubectl to the simulator); and two teams that each see only
//! their own numbers.

mod common;

use std::time::Duration;

use common::{Cluster, Running, Setup, dir_source, manifest, tokens_file, wait_until};
use execwatch::access::Access;
use execwatch::access::tokens::TokenFile;
use execwatch::history::ArchiveSettings;
use execwatch::retention::Mode;
use serde_json::Value;

/// The range every test asks for, so that answers do not move with the clock.
const RANGE: &str = "from=2026-10-01&to=2026-12-01";

/// The time `minute` minutes after 2026-11-02T00:00Z.
fn at(minute: u32) -> String {
    let t: jiff::Timestamp = "2026-11-02T00:00:00Z".parse().unwrap();
    t.checked_add(jiff::SignedDuration::from_mins(i64::from(minute))).unwrap().to_string()
}

/// A run's document: `app` through dev, staging and prod, starting `minute` minutes after
/// 2026-11-02T00:00Z; `prod` is the phase prod ends in (and the run's), the rest succeed.
fn run_doc(app: &str, minute: u32, prod: &str) -> String {
    let commit = at(minute).parse::<jiff::Timestamp>().unwrap() - jiff::SignedDuration::from_mins(30);
    let env = |name: &str, phase: &str, start: u32, end: u32| {
        format!(
            "  - name: {name}\n    phase: {phase}\n    startedAt: \"{}\"\n    finishedAt: \"{}\"\n",
            at(start),
            at(end)
        )
    };
    let m = minute;
    format!(
        "apiVersion: pipelines.gitops.dev/v1alpha1\nkind: PipelineExecution\npipeline: {app}-release\n\
         application:\n  name: {app}\n  version: \"1.{m}\"\n  revisionTime: \"{}\"\ntrigger:\n  type: {}\n\
         phase: {prod}\nstartedAt: \"{}\"\nfinishedAt: \"{}\"\nenvironments:\n{}{}{}",
        commit,
        if m.is_multiple_of(3) { "Manual" } else { "GitPush" },
        at(m),
        at(m + 25 + m % 7),
        env("dev", "Succeeded", m, m + 5),
        env("staging", "Succeeded", m + 7 + m % 3, m + 15),
        env("prod", prod, m + 16 + m % 5, m + 25 + m % 7),
    )
}

/// 23 runs of `web` (4 of them failing in prod, DevLake's reference count) and 9 of `api`, a
/// day apart, the last of `api` failing and never recovered.
fn history() -> Vec<(String, String)> {
    let mut runs = Vec::new();
    for i in 0..23u32 {
        let phase = if [3, 4, 10, 17].contains(&i) { "Failed" } else { "Succeeded" };
        runs.push((format!("web-{i}"), run_doc("web", i * 1440 + i * 13, phase)));
    }
    for i in 0..9u32 {
        let phase = if i == 8 { "Failed" } else { "Succeeded" };
        runs.push((format!("api-{i}"), run_doc("api", i * 1440 + 600, phase)));
    }
    runs
}

fn insights_path(query: &str) -> String {
    format!("/api/v1/insights?{RANGE}&{query}")
}

/// The body without its freshness (which names the sources read, not the runs counted).
fn counted(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("freshness");
    body
}

fn group<'a>(body: &'a Value, key: &[(&str, &str)]) -> &'a Value {
    let found = body["groups"].as_array().unwrap().iter().find(|g| key.iter().all(|(k, v)| g["key"][*k] == *v));
    found.unwrap_or_else(|| panic!("no group {key:?} in {body}"))
}

async fn live_service(runs: &[(String, String)], namespace: &str) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, doc) in runs {
        std::fs::write(dir.path().join(format!("{name}.yaml")), manifest(namespace, name, doc)).unwrap();
    }
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), Setup::default()).await;
    (service, dir)
}

async fn wait_insights(service: &Running, query: &str, runs: usize) -> Value {
    let path = insights_path(&format!("{query}&interval=whole"));
    service
        .wait_for("every run counted", &path, |b| {
            let total =
                |g: &Value| g["total"]["runs"].as_object().map_or(0, |r| r.values().filter_map(Value::as_u64).sum());
            b["groups"].as_array().is_some_and(|g| g.iter().map(total).sum::<u64>() == runs as u64)
        })
        .await
}

#[tokio::test]
async fn the_numbers_are_those_worked_by_hand() {
    let runs = history();
    let (service, _dir) = live_service(&runs, "team-a").await;
    wait_insights(&service, "", runs.len()).await;
    let (status, body) = service.get(&insights_path("groupBy=application,environment&interval=whole")).await;
    assert_eq!(status, 200, "{body}");
    let prod = &group(&body, &[("application", "web"), ("environment", "prod")])["total"];
    assert_eq!(prod["changeFailRate"], serde_json::json!({"count": 4, "of": 23, "value": 4.0 / 23.0}));
    assert_eq!((prod["recovery"]["recovered"].as_u64(), prod["recovery"]["open"].as_u64()), (Some(4), Some(0)));
    assert_eq!(prod["deployments"]["deploymentDays"], 19);
    let api = &group(&body, &[("application", "api"), ("environment", "prod")])["total"];
    assert_eq!((api["recovery"]["recovered"].as_u64(), api["recovery"]["open"].as_u64()), (Some(0), Some(1)));
    let dev = &group(&body, &[("application", "web"), ("environment", "dev")])["total"];
    // Lead time from the commit (30 minutes before the run) to dev's success, 5 minutes in.
    assert_eq!((dev["leadTime"]["min"].as_f64(), dev["leadTime"]["max"].as_f64()), (Some(2100.0), Some(2100.0)));
    assert_eq!(dev["durations"]["environment"]["p99"], 300.0);
    let weekly = service.get(&insights_path("groupBy=application&interval=week&tz=Europe/Berlin")).await.1;
    let web = group(&weekly, &[("application", "web")]);
    let per_week: u64 =
        web["buckets"].as_array().unwrap().iter().map(|b| b["deployments"]["succeeded"].as_u64().unwrap()).sum();
    assert_eq!(per_week, web["total"]["deployments"]["succeeded"].as_u64().unwrap(), "weeks add up to the range");
    assert_eq!(web["buckets"][0]["start"], "2026-09-27T22:00:00Z", "Monday's midnight in Berlin (summer time)");
    service.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_400s_that_name_them() {
    let (service, _dir) = live_service(&history()[..1], "team-a").await;
    for (query, name) in [
        ("groupBy=team", "groupBy"),
        ("interval=hour", "interval"),
        ("tz=Mars/Olympus", "tz"),
        ("from=yesterday", "from"),
        ("from=2026-12-01&to=2026-11-01", "from"),
        ("from=4000d&interval=whole", "from"),
        ("from=1000d&interval=day", "interval"),
        ("phase=Done", "phase"),
    ] {
        let (status, body) = service.get(&format!("/api/v1/insights?{query}")).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("InvalidParameter")), "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(&format!("{name}=")), "{query}: {body}");
    }
    let (status, body) = service.get("/api/v1/insights?limit=5").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("UnknownParameter")));
    service.stop().await;
}

#[tokio::test]
async fn an_unchanged_answer_is_a_304_and_a_finished_run_wakes_a_long_poll() {
    let runs = history();
    let (service, dir) = live_service(&runs, "team-a").await;
    wait_insights(&service, "", runs.len()).await;
    let path = insights_path("groupBy=environment&interval=day");
    let etag = service.etag(&path, None).await;
    let held = service.long_poll(&path, &etag, None).await.unwrap().unwrap();
    assert_eq!(held.status(), 304);
    let polled = service.long_poll(&format!("{path}&timeoutSeconds=30"), &etag, None);
    let tmp = dir.path().join(".late.tmp");
    std::fs::write(&tmp, manifest("team-a", "late", &run_doc("web", 40_000, "Succeeded"))).unwrap();
    std::fs::rename(&tmp, dir.path().join("late.yaml")).unwrap();
    let answered = polled.await.unwrap().unwrap();
    assert_eq!(answered.status(), 200);
    assert_ne!(answered.headers()["etag"], etag.as_str());
    let body: Value = answered.json().await.unwrap();
    let prod = group(&body, &[("environment", "prod")]);
    assert_eq!(prod["total"]["deployments"]["succeeded"], 19 + 8 + 1, "{body}");
    service.stop().await;
}

/// Keeps the newest two finished runs of each pipeline: the rest are pruned once archived.
const POLICY: &str =
    "rules:\n- name: keep-two\n  namespaces: [team-a]\n  keep: {newest: 2}\n  clockSkew: {action: payloadTime}\n";

const QUERIES: [&str; 5] = [
    "groupBy=application,environment&interval=week&tz=Europe/Berlin",
    "groupBy=pipeline,trigger&interval=day",
    "groupBy=namespace&interval=whole&environment=prod",
    "pipeline=web-release&groupBy=environment&interval=week",
    "pipeline=wide-release&groupBy=environment&interval=whole",
];

/// Three runs of `wide` through twenty environments of long names: their facts are too long
/// for the archive's indexes to hold (migration 0005), so they are read from the table.
fn wide_runs() -> Vec<(String, String)> {
    (0..3u32)
        .map(|i| {
            let mut doc = run_doc("wide", 20_000 + i * 1440, if i == 1 { "Failed" } else { "Succeeded" });
            for k in 0..17u32 {
                let (start, end) = (20_000 + i * 1440 + 30 + k, 20_000 + i * 1440 + 31 + k);
                doc.push_str(&format!(
                    "  - name: region-of-a-rather-long-name-{k}\n    phase: Succeeded\n    startedAt: \"{}\"\n    finishedAt: \"{}\"\n",
                    at(start),
                    at(end)
                ));
            }
            (format!("wide-{i}"), doc)
        })
        .collect()
}

#[tokio::test]
async fn live_archived_and_pruned_runs_count_alike_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("history.db").display());
    live_archived_and_pruned_runs_count_alike(dir.path(), &url).await;
}

#[tokio::test]
async fn live_archived_and_pruned_runs_count_alike_in_postgres() {
    let Some(postgres) = common::postgres::Postgres::start() else { return };
    postgres.create("insights");
    let dir = tempfile::tempdir().unwrap();
    live_archived_and_pruned_runs_count_alike(dir.path(), &postgres.url("insights")).await;
}

async fn live_archived_and_pruned_runs_count_alike(dir: &std::path::Path, url: &str) {
    let mut runs = history();
    runs.extend(wide_runs());
    let (live, _data) = live_service(&runs, "team-a").await;
    wait_insights(&live, "", runs.len()).await;
    let mut expected = Vec::new();
    for query in QUERIES {
        expected.push(counted(live.get(&insights_path(query)).await.1));
    }
    live.stop().await;

    let archive = ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86_400));
    std::fs::write(dir.join("retention.yaml"), POLICY).unwrap();
    let retention = common::retention(&dir.join("retention.yaml"), Mode::Enforce, 200, "replica-a");
    let setup = Setup { archive: Some(archive.clone()), retention: Some(retention), ..Setup::default() };
    let cluster = Cluster::launch(&["team-a", "execwatch"], &["team-a"], common::fast_watch(), setup).await;
    write_with_kubectl(&cluster, &runs).await;
    wait_until("retention keeps two runs of each pipeline", || async {
        (cluster.held(&["team-a"]).await.len() == 6).then_some(())
    })
    .await;
    wait_insights(&cluster.service, "", runs.len()).await;
    for (query, expected) in QUERIES.iter().zip(&expected) {
        let pruned = counted(cluster.service.get(&insights_path(query)).await.1);
        assert_eq!(&pruned, expected, "{query}: 29 pruned and archived, 6 live");
    }
    cluster.service.stop().await;

    // Every run archived now, none live: a directory with nothing in it, over the same archive.
    let empty = tempfile::tempdir().unwrap();
    let setup = Setup { archive: Some(archive), ..Setup::default() };
    let archived = Running::launch(dir_source(empty.path(), Duration::from_millis(50)), setup).await;
    wait_insights(&archived, "", runs.len()).await;
    for (query, expected) in QUERIES.iter().zip(&expected) {
        assert_eq!(&counted(archived.get(&insights_path(query)).await.1), expected, "{query}: all archived");
    }
    archived.stop().await;
}

async fn write_with_kubectl(cluster: &Cluster, runs: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = common::clients::Kubectl::new(dir.path(), &cluster.sim.kubeconfig());
    let manifests: Vec<String> = runs.iter().map(|(name, doc)| manifest("team-a", name, doc)).collect();
    if kubectl.ok(&["apply", "-f", "-"], Some(&manifests.join("---\n"))).await.is_none() {
        for (name, doc) in runs {
            let cm = execwatch::fixtures::Cm::new("team-a", name).data("execution.yaml", doc).build();
            cluster.put(cm).await;
        }
    }
}

#[tokio::test]
async fn each_team_sees_its_own_numbers_and_the_same_404_for_another_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for (name, doc) in history() {
        let (ns, doc) = if name.starts_with("web") { ("team-a", doc) } else { ("team-b", doc) };
        std::fs::write(data.join(format!("{name}.yaml")), manifest(ns, &name, &doc)).unwrap();
    }
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, tokens_file(&[("a", "token-a", "[team-a]"), ("b", "token-b", "[team-b]")])).unwrap();
    let file = TokenFile::load(&tokens, Duration::from_millis(100)).unwrap();
    let setup = Setup { access: Access::tokens(file), ..Setup::default() };
    let service = Running::launch(dir_source(&data, Duration::from_millis(50)), setup).await;
    let path = insights_path("groupBy=application&interval=whole");
    let seen = |token: &'static str| {
        let service = &service;
        let path = path.clone();
        async move { service.get_as(&path, token).await.json::<Value>().await.unwrap() }
    };
    let a = wait_until("team a's runs are counted", || async {
        let body = seen("token-a").await;
        (body["groups"][0]["total"]["runs"]["succeeded"] == 19).then_some(body)
    })
    .await;
    let apps = |body: &Value| {
        body["groups"].as_array().unwrap().iter().map(|g| g["key"]["application"].clone()).collect::<Vec<_>>()
    };
    assert_eq!(apps(&a), ["web"]);
    assert_eq!(apps(&seen("token-b").await), ["api"]);

    let etag_a = service.etag(&path, Some("token-a")).await;
    let refused = |path: String| {
        let service = &service;
        async move {
            let response = service.get_as(&path, "token-a").await;
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (other, unwatched) = (
        refused(format!("/api/v1/namespaces/team-b/insights?{RANGE}")).await,
        refused("/api/v1/namespaces/nowhere/insights".into()).await,
    );
    assert_eq!(other.0, 404);
    assert_eq!(other.1.replace("team-b", "NS"), unwatched.1.replace("nowhere", "NS"), "the same 404 either way");
    let list = refused("/api/v1/namespaces/team-b/executions".into()).await;
    assert_eq!(other, list, "the same 404 as the executions list");
    let (status, _) = refused(format!("/api/v1/insights?{RANGE}&namespace=team-b")).await;
    assert_eq!(status, 404);

    // Team b's new run changes nothing team a can see, not even its ETag.
    let tmp = data.join(".late.tmp");
    std::fs::write(&tmp, manifest("team-b", "late", &run_doc("api", 40_000, "Succeeded"))).unwrap();
    std::fs::rename(&tmp, data.join("late.yaml")).unwrap();
    wait_until("team b's new run is counted", || async {
        (seen("token-b").await["groups"][0]["total"]["runs"]["succeeded"] == 9).then_some(())
    })
    .await;
    assert_eq!(service.etag(&path, Some("token-a")).await, etag_a);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_the_numbers_the_api_gives_and_a_new_run_without_a_reload() {
    let runs = history();
    let (service, dir) = live_service(&runs, "team-a").await;
    wait_insights(&service, "", runs.len()).await;
    let Some(browser) = common::browser::Browser::start(1280, 900).await else { return };
    let query = "from=2026-10-01&to=2026-12-01&interval=week&tz=UTC";
    browser.goto(&format!("{}/#/insights?{query}", service.base)).await;
    let card = "article[data-key='web/prod']";
    let rate = browser
        .wait_text("web in prod is shown", &format!("{card} [data-figure='change-fail-rate']"), |t| !t.is_empty())
        .await;
    assert_eq!(rate, "4 of 23 (17.4 %)");
    let api = service.get(&format!("/api/v1/insights?groupBy=application,environment&{query}")).await.1;
    let web = group(&api, &[("application", "web"), ("environment", "prod")]);
    let figure = |name: &str| format!("{card} [data-figure='{name}']");
    assert_eq!(
        browser.text(&figure("deployments")).await.unwrap(),
        web["total"]["deployments"]["succeeded"].to_string()
    );
    let bars =
        browser.eval(&format!("return document.querySelectorAll(\"{card} svg rect.bar-ok\").length"), vec![]).await;
    assert_eq!(bars.as_u64(), Some(web["buckets"].as_array().unwrap().len() as u64), "a bar per week");
    let succeeded: Vec<String> =
        web["buckets"].as_array().unwrap().iter().map(|b| b["deployments"]["succeeded"].to_string()).collect();
    // Read as a screen reader and copy-paste do: the table is in the page, folded or not.
    let script = "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);";
    let cells =
        browser.eval(script, vec![serde_json::json!(format!("{card} table.numbers tbody td:nth-of-type(1)"))]).await;
    assert_eq!(cells, serde_json::json!(succeeded), "the table beside the chart holds the API's numbers");

    browser.mark().await;
    let tmp = dir.path().join(".late.tmp");
    std::fs::write(&tmp, manifest("team-a", "late", &run_doc("web", 20_000, "Failed"))).unwrap();
    std::fs::rename(&tmp, dir.path().join("late.yaml")).unwrap();
    browser.wait_text("the new failure shows", &figure("change-fail-rate"), |t| t == "5 of 24 (20.8 %)").await;
    assert!(browser.still_marked().await, "without a reload");
    browser.close().await;
    service.stop().await;
}

async fn execwatch(args: &[&str]) -> (i32, String, String) {
    let out = common::binary::command(args).output().await.expect("the binary runs");
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[tokio::test]
async fn get_insights_prints_the_api_numbers_as_a_table_and_as_json() {
    let runs = history();
    let (service, _dir) = live_service(&runs, "team-a").await;
    wait_insights(&service, "", runs.len()).await;
    let server = service.base.as_str();
    let range = ["--since", "2026-10-01", "--until", "2026-12-01"];
    let args = [
        &["get", "insights", "--server", server, "--group-by", "application,environment", "--interval", "whole"][..],
        &range,
    ]
    .concat();
    let (code, table, stderr) = execwatch(&args).await;
    assert_eq!(code, 0, "{stderr}");
    let headers: Vec<&str> =
        table.lines().next().unwrap().split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(headers[..4], ["APPLICATION", "ENVIRONMENT", "BUCKET", "DEPLOYS"], "{table}");
    let prod = table.lines().find(|l| l.starts_with("web") && l.contains("prod")).unwrap_or_else(|| panic!("{table}"));
    assert!(prod.contains("4 of 23 (17.4%)"), "{prod}");
    let (code, json, stderr) = execwatch(&[&args[..], &["-o", "json"]].concat()).await;
    assert_eq!(code, 0, "{stderr}");
    let printed: Value = serde_json::from_str(&json).unwrap();
    let api = service.get(&insights_path("groupBy=application,environment&interval=whole")).await.1;
    assert_eq!(counted(printed), counted(api), "the CLI prints the API's answer");
    let (code, _, stderr) = execwatch(&["get", "insights", "--server", server, "--interval", "hour"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("interval=\"hour\""), "the service's reason, with the parameter: {stderr}");
    service.stop().await;
}

#[tokio::test]
async fn rollups_are_rebuilt_by_the_command_and_by_a_start_after_their_rules_change_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("history.db").display());
    rollups_are_rebuilt(&url, &format!("{url}?mode=rw")).await;
}

#[tokio::test]
async fn rollups_are_rebuilt_by_the_command_and_by_a_start_after_their_rules_change_in_postgres() {
    let Some(postgres) = common::postgres::Postgres::start() else { return };
    postgres.create("rebuilt");
    let url = postgres.url("rebuilt");
    rollups_are_rebuilt(&url, &url).await;
}

/// `url` for the service and the command, `writable` for the test's own statements.
async fn rollups_are_rebuilt(url: &str, writable: &str) {
    let url = url.to_owned();
    let runs = history();
    let data = tempfile::tempdir().unwrap();
    for (name, doc) in &runs {
        std::fs::write(data.path().join(format!("{name}.yaml")), manifest("team-a", name, doc)).unwrap();
    }
    let archive = ArchiveSettings::new(url.parse().unwrap(), Duration::from_secs(86_400));
    let setup = || Setup { archive: Some(archive.clone()), ..Setup::default() };
    let service = Running::launch(dir_source(data.path(), Duration::from_millis(50)), setup()).await;
    wait_insights(&service, "", runs.len()).await;
    let expected = counted(service.get(&insights_path(QUERIES[0])).await.1);
    // Every run archived: the files are gone.
    for (name, _) in &runs {
        std::fs::remove_file(data.path().join(format!("{name}.yaml"))).unwrap();
    }
    service
        .wait_for("every run archived", "/api/v1/executions?limit=100", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == runs.len() && i.iter().all(|e| e["archived"] == true))
        })
        .await;
    assert_eq!(counted(service.get(&insights_path(QUERIES[0])).await.1), expected);
    service.stop().await;

    let sql = |statement: &'static str| {
        let writable = writable.to_owned();
        async move {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&writable).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        }
    };
    sql("DELETE FROM run_facts").await;
    let (code, out, stderr) = execwatch(&["archive", "rebuild-insights", "--archive", &url]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains(&format!("insights rebuilt for {} runs", runs.len())), "{out}");
    let service = Running::launch(dir_source(data.path(), Duration::from_millis(50)), setup()).await;
    wait_insights(&service, "", runs.len()).await;
    assert_eq!(counted(service.get(&insights_path(QUERIES[0])).await.1), expected, "rebuilt by the command");
    service.stop().await;

    // Rows made by other rules (or none, as after the migration): a start rebuilds them.
    sql("DELETE FROM run_facts").await;
    sql("UPDATE run_facts_version SET version = 0").await;
    let service = Running::launch(dir_source(data.path(), Duration::from_millis(50)), setup()).await;
    wait_insights(&service, "", runs.len()).await;
    assert_eq!(counted(service.get(&insights_path(QUERIES[0])).await.1), expected, "rebuilt at the start");
    service.stop().await;
}
