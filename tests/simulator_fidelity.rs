//! The simulator speaks the Kubernetes wire protocol: checked with the real kubectl (where the
//! machine has it) and with raw HTTP for what kubectl does not exercise.

mod common;

use common::clients::Kubectl;
use k8s_sim::Sim;
use serde_json::{Value, json};

const MANIFEST: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: run-1\n  namespace: team-a\n  labels:\n    pipelines.gitops.dev/execution: \"true\"\ndata:\n  execution.yaml: \"phase: Running\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_creates_lists_labels_watches_and_deletes_configmaps() {
    let sim = Sim::start().await.unwrap();
    sim.create_namespace("team-a");
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(dir.path(), &sim.kubeconfig());

    let Some((ok, out)) = kubectl.run(&["version", "-o", "json"], None).await else {
        return;
    };
    assert!(ok && out.contains("v1.33.0-k8s-sim"), "{out}");

    // A watch started before the writes sees them as they happen.
    let watch = kubectl.spawn(&[
        "get",
        "configmaps",
        "-n",
        "team-a",
        "--watch",
        "--output-watch-events",
        "-o",
        "jsonpath={.type}{\"\\n\"}",
        "--request-timeout=5s",
    ]);

    let (ok, out) = kubectl.run(&["create", "-f", "-"], Some(MANIFEST)).await.unwrap();
    assert!(ok && out.contains("configmap/run-1 created"), "{out}");
    let (ok, out) = kubectl.run(&["create", "-f", "-"], Some(MANIFEST)).await.unwrap();
    assert!(!ok && out.contains("AlreadyExists"), "{out}");
    let typo = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  namespace: team-a\ndatta:\n  a: b\n";
    let (ok, out) = kubectl.run(&["create", "-f", "-"], Some(typo)).await.unwrap();
    assert!(!ok && out.contains("unknown field \"datta\""), "strict field validation: {out}");
    let (ok, out) = kubectl.run(&["label", "configmap", "run-1", "-n", "team-a", "tier=gold"], None).await.unwrap();
    assert!(ok && out.contains("labeled"), "{out}");
    let selector = "tier=gold,pipelines.gitops.dev/execution";
    let (ok, out) =
        kubectl.run(&["get", "configmaps", "-n", "team-a", "-l", selector, "-o", "name"], None).await.unwrap();
    assert!(ok && out.trim() == "configmap/run-1", "{out}");
    let (ok, out) =
        kubectl.run(&["get", "configmaps", "-n", "team-a", "-l", "tier!=gold", "-o", "name"], None).await.unwrap();
    assert!(ok && out.trim().is_empty(), "{out}");
    let (ok, out) = kubectl.run(&["apply", "-f", "-"], Some(MANIFEST)).await.unwrap();
    assert!(ok && out.contains("configured"), "{out}");
    let (ok, out) = kubectl
        .run(&["get", "configmap", "run-1", "-n", "team-a", "-o", "jsonpath={.metadata.labels.tier}"], None)
        .await
        .unwrap();
    assert!(ok && out == "gold", "apply keeps labels it does not manage: {out}");
    // Imperative commands send protobuf.
    let (ok, out) = kubectl.run(&["create", "namespace", "team-b"], None).await.unwrap();
    assert!(ok && out.contains("namespace/team-b created"), "{out}");
    let literal = vec!["create", "configmap", "run-2", "-n", "team-b", "--from-literal=execution.yaml=phase: Running"];
    let (ok, out) = kubectl.run(&literal, None).await.unwrap();
    assert!(ok && out.contains("configmap/run-2 created"), "{out}");
    let jsonpath = "jsonpath={.data.execution\\.yaml}";
    let (ok, out) = kubectl.run(&["get", "configmap", "run-2", "-n", "team-b", "-o", jsonpath], None).await.unwrap();
    assert!(ok && out == "phase: Running", "{out}");
    let (ok, out) = kubectl.run(&["delete", "configmap", "run-1", "-n", "team-a"], None).await.unwrap();
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, out) = kubectl.run(&["get", "configmap", "run-1", "-n", "team-a"], None).await.unwrap();
    assert!(!ok && out.contains("NotFound"), "{out}");

    let (_, events) = watch.await.unwrap().unwrap();
    let kinds: Vec<&str> = events.lines().collect();
    assert!(kinds.starts_with(&["ADDED", "MODIFIED"]) && kinds.last() == Some(&"DELETED"), "{events}");
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A simulator with namespace `ns`, and the URL of its ConfigMaps.
async fn sim_with_namespace() -> (Sim, String) {
    let sim = Sim::start().await.unwrap();
    sim.create_namespace("ns");
    let base = format!("{}/api/v1/namespaces/ns/configmaps", sim.url());
    (sim, base)
}

fn configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

#[tokio::test]
async fn lists_paginate_and_expired_continue_tokens_get_410() {
    let (sim, base) = sim_with_namespace().await;
    for i in 0..5 {
        assert_eq!(post(&base, configmap(&format!("cm-{i}"), json!({"n": i.to_string()}))).await.0, 201);
    }
    let (status, page) = common::get_json(&format!("{base}?limit=2")).await;
    assert_eq!(status, 200);
    assert_eq!(page["kind"], "ConfigMapList");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let token = page["metadata"]["continue"].as_str().unwrap().to_owned();
    let (_, rest) = common::get_json(&format!("{base}?limit=10&continue={}", urlencode(&token))).await;
    let names: Vec<&str> =
        rest["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cm-2", "cm-3", "cm-4"]);
    assert!(rest["metadata"].get("continue").is_none());
    let (_, selected) = common::get_json(&format!("{base}?labelSelector=n%20in%20(1,3)")).await;
    assert_eq!(selected["items"].as_array().unwrap().len(), 2);

    post(&base, configmap("cm-5", json!({}))).await;
    sim.compact();
    let (status, expired) = common::get_json(&format!("{base}?limit=10&continue={}", urlencode(&token))).await;
    assert_eq!((status, expired["reason"].as_str()), (410, Some("Expired")), "{expired}");
}

#[tokio::test]
async fn resource_versions_conflicts_and_missing_namespaces_behave_like_kubernetes() {
    let (sim, base) = sim_with_namespace().await;
    let (_, created) = post(&base, configmap("a", json!({}))).await;
    let rv: u64 = created["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!((rv - 1).to_string());
    let response = reqwest::Client::new().put(format!("{base}/a")).json(&stale).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 409);
    let (status, body) =
        post(&format!("{}/api/v1/namespaces/nowhere/configmaps", sim.url()), configmap("b", json!({}))).await;
    assert_eq!((status, body["kind"].as_str(), body["reason"].as_str()), (404, Some("Status"), Some("NotFound")));
    let (status, body) = common::get_json(&format!("{}/api/v1/namespaces/nowhere/configmaps", sim.url())).await;
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "listing a missing namespace is empty, as in Kubernetes"
    );
    let (status, _) = common::get_json(&format!("{}/api/v1", sim.url())).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn watches_from_a_compacted_resource_version_get_410_and_bookmarks_carry_progress() {
    let (sim, base) = sim_with_namespace().await;
    let (_, created) = post(&base, configmap("a", json!({}))).await;
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    post(&base, configmap("b", json!({}))).await;
    sim.compact();
    let body = reqwest::get(format!("{base}?watch=true&resourceVersion={rv}")).await.unwrap().text().await.unwrap();
    let event: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!((event["type"].as_str(), event["object"]["code"].as_u64()), (Some("ERROR"), Some(410)), "{body}");

    let current = common::get_json(&base).await.1["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let url = format!("{base}?watch=true&resourceVersion={current}&allowWatchBookmarks=true&timeoutSeconds=2");
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    let bookmark: Value = serde_json::from_str(body.lines().next().expect("a bookmark before the timeout")).unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["metadata"]["resourceVersion"], current.as_str());
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_installs_the_crd_and_manages_backendmodules() {
    let sim = Sim::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(dir.path(), &sim.kubeconfig());
    let manifests = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let (crd, modules) = (manifests.join("base/crd-backendmodule.yaml"), manifests.join("base/modules.yaml"));

    let Some((ok, out)) = kubectl.run(&["get", "backendmodules"], None).await else { return };
    assert!(!ok && out.contains("doesn't have a resource type"), "before the CRD: {out}");
    let (ok, out) = kubectl.run(&["apply", "-f", crd.to_str().unwrap()], None).await.unwrap();
    assert!(ok && out.contains("created"), "{out}");
    let watch = kubectl.spawn(&[
        "get",
        "bm",
        "--watch",
        "--output-watch-events",
        "-o",
        "jsonpath={.type}{\"\\n\"}",
        "--request-timeout=4s",
    ]);
    let (ok, out) = kubectl.run(&["apply", "-f", modules.to_str().unwrap()], None).await.unwrap();
    assert!(ok && out.matches("created").count() == 4, "{out}");
    let (ok, out) = kubectl.run(&["get", "backendmodules", "-o", "name"], None).await.unwrap();
    let names: Vec<&str> = out.lines().collect();
    assert!(ok, "{out}");
    assert_eq!(
        names,
        [
            "backendmodule.pipelines.gitops.dev/executions",
            "backendmodule.pipelines.gitops.dev/insights",
            "backendmodule.pipelines.gitops.dev/pipelines",
            "backendmodule.pipelines.gitops.dev/rejections"
        ]
    );
    let (ok, out) = kubectl.run(&["delete", "backendmodule", "pipelines"], None).await.unwrap();
    assert!(ok && out.contains("deleted"), "{out}");
    let (_, events) = watch.await.unwrap().unwrap();
    assert!(
        events.lines().filter(|l| *l == "ADDED").count() >= 4 && events.lines().last() == Some("DELETED"),
        "{events}"
    );

    // Deleting the CRD deletes its objects, as Kubernetes does.
    let (ok, out) = kubectl.run(&["delete", "-f", crd.to_str().unwrap()], None).await.unwrap();
    assert!(ok, "{out}");
    let (status, _) =
        common::get_json(&format!("{}/apis/pipelines.gitops.dev/v1alpha1/backendmodules", sim.url())).await;
    assert_eq!(status, 404);
}
