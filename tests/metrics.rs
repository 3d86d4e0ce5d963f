//! `/metrics`, on its own port, scraped and parsed by the Prometheus project's own parser.

mod common;

use std::time::Duration;

use common::clients::python_with;
use common::{Running, Setup, dir_source, names};
use execwatch::fixtures::Doc;
use serde_json::Value;

/// The value of the one sample named `name` whose labels include `labels`.
fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

fn setup_with_metrics() -> Setup {
    Setup { metrics: true, ..Setup::default() }
}

#[tokio::test]
async fn metrics_report_state_and_events_with_bounded_labels() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = common::manifest("team-a", "run-secret-name", &Doc::new("web").phase("Running").yaml());
    std::fs::write(dir.path().join("good.yaml"), manifest).unwrap();
    std::fs::write(dir.path().join("bad.yaml"), common::manifest("team-a", "broken", "phase: [")).unwrap();
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), setup_with_metrics()).await;
    service.wait_for("the run is served", "/api/v1/executions", |b| names(b) == ["run-secret-name"]).await;
    service.wait_for("the broken one is rejected", "/api/v1/rejections", |b| names(b) == ["broken"]).await;
    let (status, _) = service.get("/api/v1/namespaces/team-a/executions/run-secret-name").await;
    assert_eq!(status, 200);
    let (status, _) = service.get("/api/v1/namespaces/team-a/executions/nothing").await;
    assert_eq!(status, 404);
    let (status, _) = service.get("/metrics").await;
    assert_eq!(status, 404, "the API port does not serve metrics");

    let url = service.metrics.clone().expect("a metrics port");
    let Some((ok, out)) = python_with("prometheus_client", "parse_metrics.py", &[&url]).await else { return };
    assert!(ok, "the Prometheus parser accepts the exposition: {out}");
    let samples: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("a JSON sample")).collect();

    let get = |name: &str, labels: &[(&str, &str)]| sample(&samples, name, labels);
    assert_eq!(get("execwatch_executions", &[("namespace", "team-a"), ("phase", "Running")]), Some(1.0));
    assert_eq!(get("execwatch_rejections", &[("reason", "Unparsable")]), Some(1.0));
    let source = format!("dir:{}", dir.path().display());
    assert_eq!(get("execwatch_source_state", &[("source", &source), ("state", "Synced")]), Some(1.0));
    assert_eq!(get("execwatch_source_state", &[("source", &source), ("state", "Failing")]), Some(0.0));
    assert!(get("execwatch_source_last_sync_timestamp_seconds", &[("source", &source)]).is_some_and(|t| t > 1.7e9));
    for module in ["executions", "pipelines", "rejections"] {
        assert_eq!(get("execwatch_module_ready", &[("module", module)]), Some(1.0), "{module}");
    }
    assert_eq!(get("execwatch_waiting_requests", &[]), Some(0.0));
    let one = "/api/v1/namespaces/{namespace}/executions/{name}";
    for status in ["200", "404"] {
        let count = get("execwatch_http_request_duration_seconds_count", &[("route", one), ("status", status)]);
        assert!(count.is_some_and(|n| n >= 1.0), "{status}: {count:?}");
    }
    // Label values name routes, namespaces, sources, modules and reasons, never an execution.
    for s in &samples {
        let labels = s["labels"].to_string();
        assert!(!labels.contains("run-secret-name") && !labels.contains("broken"), "{labels}");
    }
    // A second service in the same process counts its own requests only.
    let other = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), setup_with_metrics()).await;
    assert_eq!(other.get("/api/v1/executions").await.0, 200);
    let url = other.metrics.clone().expect("a metrics port");
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"route="/api/v1/executions""#), "{text}");
    assert!(!text.contains("executions/{name}"), "the first service's requests are not counted here: {text}");
    other.stop().await;
    service.stop().await;
}

/// A run as a writer updates it: dev done, prod at `prod` (with times, so it has a duration).
fn promoted(prod: &str) -> String {
    let doc = Doc::new("web").phase(if prod == "Running" { "Running" } else { prod }).yaml();
    let times = "    startedAt: \"2026-11-01T10:05:00Z\"\n    finishedAt: \"2026-11-01T10:09:00Z\"\n";
    let doc =
        doc.replace("  - name: dev\n    phase: Succeeded\n", &format!("  - name: dev\n    phase: Succeeded\n{times}"));
    let prod_times = if prod == "Running" { "" } else { times };
    doc.replace("  - name: prod\n    phase: Running\n", &format!("  - name: prod\n    phase: {prod}\n{prod_times}"))
}

#[tokio::test]
async fn deployments_are_counted_as_they_happen_by_namespace_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    // Finished before the service started: a relist's runs are history, not events.
    std::fs::write(dir.path().join("old.yaml"), common::manifest("team-a", "old", &promoted("Failed"))).unwrap();
    std::fs::write(dir.path().join("run.yaml"), common::manifest("team-a", "run", &promoted("Running"))).unwrap();
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), setup_with_metrics()).await;
    service.wait_for("both runs are served", "/api/v1/executions", |b| names(b).len() == 2).await;
    let tmp = dir.path().join(".run.tmp");
    std::fs::write(&tmp, common::manifest("team-a", "run", &promoted("Succeeded"))).unwrap();
    std::fs::rename(&tmp, dir.path().join("run.yaml")).unwrap();
    service
        .wait_for("prod succeeded", "/api/v1/namespaces/team-a/executions/run", |b| {
            b["execution"]["environments"][1]["phase"] == "Succeeded"
        })
        .await;

    let url = service.metrics.clone().expect("a metrics port");
    let Some((ok, out)) = python_with("prometheus_client", "parse_metrics.py", &[&url]).await else { return };
    assert!(ok, "the Prometheus parser accepts the exposition: {out}");
    let samples: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("a JSON sample")).collect();
    let get = |name: &str, labels: &[(&str, &str)]| sample(&samples, name, labels);
    let prod = [("namespace", "team-a"), ("environment", "prod")];
    let counted = |env: &str, result: &str| {
        get("execwatch_deployments_total", &[("namespace", "team-a"), ("environment", env), ("result", result)])
    };
    assert_eq!(counted("prod", "succeeded"), Some(1.0), "prod's success, seen happen");
    assert_eq!(counted("prod", "failed"), None, "the old run's failure was listed, not seen");
    assert_eq!(counted("dev", "succeeded"), None, "dev had succeeded before: no new deployment");
    assert_eq!(get("execwatch_deployment_duration_seconds_count", &prod), Some(1.0));
    assert_eq!(get("execwatch_deployment_duration_seconds_sum", &prod), Some(240.0));
    for s in &samples {
        let labels = s["labels"].as_object().unwrap();
        assert!(!labels.contains_key("pipeline") && !labels.contains_key("name"), "{labels:?}");
    }
    service.stop().await;
}
