//! What real pipeline writers do, against the simulator: kubectl (`diff`, server-side dry runs,
//! JSON patches, server-side apply, `generateName`, binary data, waiting for a CRD) and the
//! official Python client. Every answer is what kube-apiserver gives.

mod common;

use common::clients::{Kubectl, python};
use k8s_sim::Sim;

const RUN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: run-1\n  namespace: team-a\n  labels:\n    pipelines.gitops.dev/execution: \"true\"\ndata:\n  execution.yaml: \"phase: Running\"\n";

async fn sim_and_kubectl() -> (Sim, Kubectl, tempfile::TempDir) {
    let sim = Sim::start().await.unwrap();
    sim.create_namespace("team-a");
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(dir.path(), &sim.kubeconfig());
    (sim, kubectl, dir)
}

fn crd_manifest() -> String {
    format!("{}/manifests/base/crd-backendmodule.yaml", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_diff_and_server_dry_runs_change_nothing() {
    let (sim, kubectl, _dir) = sim_and_kubectl().await;
    let Some((same, out)) = kubectl.run(&["diff", "-f", "-"], Some(RUN)).await else { return };
    assert!(!same && out.contains("+  name: run-1"), "diff shows the new object: {out}");
    let out = kubectl.ok(&["get", "configmaps", "-n", "team-a", "-o", "name"], None).await.unwrap();
    assert!(out.trim().is_empty(), "kubectl diff created nothing: {out}");
    let out = kubectl.ok(&["apply", "--dry-run=server", "-f", "-"], Some(RUN)).await.unwrap();
    assert!(out.contains("created (server dry run)"), "{out}");
    let (found, _) = kubectl.run(&["get", "configmap", "run-1", "-n", "team-a"], None).await.unwrap();
    assert!(!found, "a server dry run stores nothing");

    kubectl.ok(&["apply", "-f", "-"], Some(RUN)).await.unwrap();
    let changed = RUN.replace("phase: Running", "phase: Failed");
    let (same, out) = kubectl.run(&["diff", "-f", "-"], Some(&changed)).await.unwrap();
    assert!(!same && out.contains("phase: Failed"), "{out}");
    kubectl.ok(&["delete", "configmap", "run-1", "-n", "team-a", "--dry-run=server"], None).await.unwrap();
    let out = kubectl.ok(&["get", "configmap", "run-1", "-n", "team-a", "-o", "jsonpath={.data}"], None).await.unwrap();
    assert!(out.contains("phase: Running"), "diff and dry-run delete changed nothing: {out}");
    assert_eq!(sim.requests("delete", "configmaps", "team-a"), 1, "the dry-run delete reached the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_json_patches_applies_server_side_and_generates_names() {
    let (_sim, kubectl, _dir) = sim_and_kubectl().await;
    let Some(out) = kubectl.ok(&["apply", "--server-side", "--field-manager=ci", "-f", "-"], Some(RUN)).await else {
        return;
    };
    assert!(out.contains("serverside-applied"), "{out}");
    let changed = RUN.replace("phase: Running", "phase: Succeeded");
    kubectl.ok(&["apply", "--server-side", "--force-conflicts", "--field-manager=ci", "-f", "-"], Some(&changed)).await;
    let jsonpath = "jsonpath={.data.execution\\.yaml} {.metadata.managedFields[0].manager}";
    let out = kubectl.ok(&["get", "configmap", "run-1", "-n", "team-a", "-o", jsonpath], None).await.unwrap();
    assert_eq!(out, "phase: Succeeded ci");

    let ops = r#"[{"op":"add","path":"/metadata/labels/tier","value":"gold"}]"#;
    kubectl.ok(&["patch", "configmap", "run-1", "-n", "team-a", "--type", "json", "-p", ops], None).await;
    let out =
        kubectl.ok(&["get", "configmap", "run-1", "-n", "team-a", "-o", "jsonpath={.metadata.labels.tier}"], None);
    assert_eq!(out.await.unwrap(), "gold");

    let generated = RUN.replace("  name: run-1\n", "  generateName: checkout-api-\n");
    let out = kubectl.ok(&["create", "-f", "-", "-o", "name"], Some(&generated)).await.unwrap();
    let name = out.trim().strip_prefix("configmap/checkout-api-").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(name.len(), 5, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_keeps_binary_data_and_waits_for_an_established_crd() {
    let (_sim, kubectl, dir) = sim_and_kubectl().await;
    let blob = dir.path().join("logo.bin");
    std::fs::write(&blob, [0u8, 159, 146, 150, 255]).unwrap();
    let from_file = format!("--from-file={}", blob.display());
    let Some(_) = kubectl.ok(&["create", "configmap", "assets", "-n", "team-a", &from_file], None).await else {
        return;
    };
    let out = kubectl.ok(&["get", "configmap", "assets", "-n", "team-a", "-o", "jsonpath={.binaryData}"], None).await;
    assert_eq!(out.unwrap(), r#"{"logo.bin":"AJ+Slv8="}"#);

    kubectl.ok(&["apply", "-f", &crd_manifest()], None).await.unwrap();
    let crd = "crd/backendmodules.pipelines.gitops.dev";
    kubectl.ok(&["wait", "--for=condition=Established", crd, "--timeout=10s"], None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_meets_kube_apiserver_behaviour() {
    let (sim, _, _dir) = sim_and_kubectl().await;
    let Some((ok, out)) = python("python_writer.py", &[&sim.url(), "team-a", &crd_manifest()]).await else { return };
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_watch_from_a_future_resource_version_is_refused() {
    let (sim, _, _dir) = sim_and_kubectl().await;
    let url = format!("{}/api/v1/namespaces/team-a/configmaps?watch=true&resourceVersion=999999999", sim.url());
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 504);
    let status: serde_json::Value = response.json().await.unwrap();
    assert!(status["message"].as_str().unwrap().contains("Too large resource version"), "{status}");
}
