//! `/openapi.json` describes every route the server answers, and nothing else.

mod common;

use std::time::Duration;

use common::{Running, dir_source, names};
use execwatch::fixtures::Doc;
use execwatch::routes::API as ROUTES;

#[tokio::test]
async fn every_described_route_is_routed_and_the_description_is_served() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), common::manifest("team-a", "run-1", &Doc::new("web").yaml())).unwrap();
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), common::Setup::default()).await;
    service.wait_for("run-1 is served", "/api/v1/executions", |b| names(b) == ["run-1"]).await;

    let (status, document) = service.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
    let mut described: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    described.sort();
    let mut routes = ROUTES.to_vec();
    routes.sort();
    assert_eq!(described, routes);

    for template in ROUTES {
        let path = template.replace("{namespace}", "team-a").replace("{name}", "web");
        let response = reqwest::get(format!("{}{path}", service.base)).await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!(!body.contains("no such endpoint"), "{template} is described but not routed: {status} {body}");
        let operation = &document["paths"][template]["get"];
        assert!(operation["responses"][status.to_string()].is_object(), "{template}: {status} is not described");
    }
    let (status, body) = service.get("/api/v1/undescribed").await;
    assert_eq!((status, body["message"].as_str()), (404, Some("no such endpoint; see /api/v1")));
    service.stop().await;
}

/// schemathesis generates requests from the description, valid and not, and checks every answer
/// against it: no 5xx, every status and body described, invalid requests refused. The number
/// of cases per operation is in `tests/schemathesis.toml` (`EXECWATCH_SCHEMATHESIS_EXAMPLES`
/// overrides it).
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_description() {
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), "rules: [{name: finished, phases: [Succeeded, Failed], keep: {newest: 1}}]\n")
        .unwrap();
    let retention = common::retention(policy.path(), execwatch::retention::Mode::DryRun, 5, "openapi");
    // Every module on, notifications (and so the archive and a cluster) included.
    let dir = tempfile::tempdir().unwrap();
    let archive = format!("sqlite:{}", dir.path().join("history.db").display()).parse().unwrap();
    let archive = execwatch::history::ArchiveSettings::new(archive, Duration::from_secs(86400));
    let notify = execwatch::notify::NotifySettings::default();
    let setup = common::Setup {
        retention: Some(retention),
        archive: Some(archive),
        notify: Some(notify),
        ..Default::default()
    };
    let teams = ["team-payments", "team-storefront"];
    let cluster = common::Cluster::launch(&teams, &teams, common::fast_watch(), setup).await;
    for cm in common::examples() {
        cluster.put(cm).await;
    }
    let service = &cluster.service;
    service.wait_for("the examples are served", "/api/v1/executions", |b| names(b).len() == 7).await;
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let url = format!("{}/openapi.json", service.base);
    let mut args = vec!["--config-file", config.to_str().unwrap(), "run", &url, "--checks", "all"];
    args.extend(["--exclude-checks", "positive_data_acceptance", "--no-color"]);
    let examples = std::env::var("EXECWATCH_SCHEMATHESIS_EXAMPLES").unwrap_or_default();
    if !examples.is_empty() {
        args.extend(["--max-examples", &examples]);
    }
    let Some((ok, out)) = common::clients::python_module("schemathesis", "schemathesis.cli", &args).await else {
        return;
    };
    assert!(ok, "schemathesis found failures:\n{out}");
    assert!(out.contains("No issues found") || out.contains("passed"), "{out}");
}
