//! `execwatch record` as a pipeline writer runs it, against the simulator through its
//! kubeconfig, checked with kubectl: the labels and data key the service expects, refusal
//! before anything is written, dry runs, and updates under a concurrent writer.

mod common;

use std::path::{Path, PathBuf};

use common::clients::Kubectl;
use k8s_sim::Sim;
use serde_json::{Value, json};

/// Runs the binary with the simulator's kubeconfig: its exit code, stdout and stderr.
async fn record(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = common::binary::command(&[&["record"], args].concat())
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or_default().as_bytes()).await.expect("stdin written");
    drop(input);
    let out = child.wait_with_output().await.expect("the binary ends");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

struct Writer {
    sim: Sim,
    kubeconfig: PathBuf,
    kubectl: Kubectl,
    _dir: tempfile::TempDir,
}

async fn writer() -> Writer {
    let sim = Sim::start().await.expect("simulator starts");
    sim.create_namespace("team-a");
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(dir.path(), &sim.kubeconfig());
    Writer { kubeconfig: dir.path().join("kubeconfig"), kubectl, sim, _dir: dir }
}

impl Writer {
    /// The ConfigMap as kubectl reads it; `None` where kubectl is absent (a skip) or it is not there.
    async fn configmap(&self, name: &str) -> Option<Value> {
        let (ok, out) = self.kubectl.run(&["get", "configmap", name, "-n", "team-a", "-o", "json"], None).await?;
        ok.then(|| serde_json::from_str(&out).expect("kubectl prints JSON"))
    }

    /// The execution document the ConfigMap holds under `execution.yaml`.
    async fn document(&self, name: &str) -> Option<Value> {
        let cm = self.configmap(name).await?;
        let text = cm["data"]["execution.yaml"].as_str().unwrap_or_else(|| panic!("execution.yaml in {cm}"));
        Some(serde_yaml::from_str(text).expect("YAML"))
    }
}

#[tokio::test]
async fn record_creates_then_updates_with_the_label_and_data_key_the_service_expects() {
    let w = writer().await;
    let flags = ["team-a/web-7", "--pipeline", "web", "--app-version", "1.4.0", "--phase", "Running"];
    let (code, out, err) = record(&w.kubeconfig, &[&flags[..], &["--environment", "dev=Running"]].concat(), None).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "execution team-a/web-7 created");
    let Some(cm) = w.configmap("web-7").await else { return };
    assert_eq!(cm["metadata"]["labels"]["pipelines.gitops.dev/execution"], "true", "{cm}");
    assert_eq!(cm["metadata"]["labels"]["pipelines.gitops.dev/pipeline"], "web", "as the examples label runs");
    let keys: Vec<&String> = cm["data"].as_object().expect("data").keys().collect();
    assert_eq!(keys, ["execution.yaml"]);
    let doc = w.document("web-7").await.expect("kubectl ran");
    assert_eq!((doc["pipeline"].as_str(), doc["phase"].as_str()), (Some("web"), Some("Running")));
    assert_eq!(doc["application"], json!({ "name": "web", "version": "1.4.0" }));
    assert!(doc["startedAt"].is_string() && doc["environments"][0]["startedAt"].is_string(), "{doc}");

    // An update changes what the flags name and keeps the rest.
    let args =
        ["team-a/web-7", "--environment", "dev=Succeeded", "--environment", "staging=Running", "--label", "team=a"];
    let (code, out, err) = record(&w.kubeconfig, &args, None).await;
    assert_eq!((code, out.trim()), (0, "execution team-a/web-7 configured"), "{err}");
    let doc = w.document("web-7").await.expect("kubectl ran");
    let envs: Vec<(&str, &str)> = doc["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(envs, [("dev", "Succeeded"), ("staging", "Running")]);
    assert!(doc["environments"][0]["finishedAt"].is_string(), "{doc}");
    assert_eq!(doc["application"]["version"], "1.4.0");
    assert_eq!(w.configmap("web-7").await.unwrap()["metadata"]["labels"]["team"], "a");

    // The same again changes nothing, and says so.
    let (code, out, _) = record(&w.kubeconfig, &args, None).await;
    assert_eq!((code, out.trim()), (0, "execution team-a/web-7 unchanged"));

    // A whole document from stdin replaces it, as written (a JSON one under execution.json).
    let given = r#"{"apiVersion": "pipelines.gitops.dev/v1alpha1", "kind": "PipelineExecution", "pipeline": "web",
        "application": {"name": "web", "version": "1.5.0"}, "trigger": {"type": "GitPush"}, "phase": "Pending",
        "environments": [{"name": "dev", "phase": "Pending"}]}"#;
    let (code, out, err) = record(&w.kubeconfig, &["team-a/web-7", "-f", "-"], Some(given)).await;
    assert_eq!((code, out.trim()), (0, "execution team-a/web-7 configured"), "{err}");
    let cm = w.configmap("web-7").await.unwrap();
    assert_eq!(cm["data"], json!({ "execution.json": given }), "one key, the document as written");
}

#[tokio::test]
async fn an_invalid_run_is_refused_with_the_services_reasons_before_anything_is_written() {
    let w = writer().await;
    // No version: the schema requires one.
    let (code, out, err) =
        record(&w.kubeconfig, &["team-a/web-8", "--pipeline", "web", "--phase", "Running"], None).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("would be rejected; nothing was written"), "{err}");
    assert!(err.contains("SchemaViolation at /application") && err.contains("version"), "{err}");
    assert_eq!(w.sim.requests("create", "configmaps", "team-a"), 0, "nothing reached the cluster");
    let (code, _, err) = record(&w.kubeconfig, &["team-a/web-8", "--phase", "Exploded"], None).await;
    assert_eq!(code, 4, "a usage error: {err}");
    assert!(err.contains("\"Exploded\" is not a phase"), "{err}");
    if w.kubectl.run(&["version", "--client"], None).await.is_some() {
        assert!(w.configmap("web-8").await.is_none(), "not created");
    }
}

#[tokio::test]
async fn dry_runs_check_and_print_but_store_nothing() {
    let w = writer().await;
    let flags = ["team-a/web-9", "--pipeline", "web", "--app-version", "2.0", "-o", "yaml"];
    // A client dry run needs no cluster at all.
    let nowhere = Path::new("/nonexistent/kubeconfig");
    let (code, out, err) = record(nowhere, &[&flags[..], &["--dry-run", "client"]].concat(), None).await;
    assert_eq!(code, 0, "{err}");
    let cm: Value = serde_yaml::from_str(&out).expect("the ConfigMap as YAML");
    assert_eq!(cm["metadata"]["labels"]["pipelines.gitops.dev/execution"], "true");
    let (code, out, err) = record(&w.kubeconfig, &[&flags[..], &["--dry-run", "server"]].concat(), None).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(w.sim.requests("create", "configmaps", "team-a"), 1, "sent, as a dry run");
    if w.kubectl.run(&["version", "--client"], None).await.is_some() {
        assert!(w.configmap("web-9").await.is_none(), "the API server stored nothing");
    }
}

#[tokio::test]
async fn an_update_under_a_concurrent_writer_reads_again_and_keeps_both_changes() {
    let w = writer().await;
    let base = ["--pipeline", "web", "--app-version", "1.0", "--phase", "Running"];
    let (code, _, err) = record(&w.kubeconfig, &[&["team-a/web-10"][..], &base[..]].concat(), None).await;
    assert_eq!(code, 0, "{err}");
    // Another writer changes it between record's read and its write.
    w.sim.write_after_next_get(
        "configmaps",
        "team-a",
        "web-10",
        json!({ "metadata": { "labels": { "other": "writer" } } }),
    );
    let (code, out, err) = record(&w.kubeconfig, &["team-a/web-10", "--phase", "Succeeded"], None).await;
    assert_eq!((code, out.trim()), (0, "execution team-a/web-10 configured"), "{err}");
    assert!(err.contains("changed since it was read (attempt 1): reading it again"), "{err}");
    assert_eq!(w.sim.requests("update", "configmaps", "team-a"), 2, "one conflict, one success");
    let Some(cm) = w.configmap("web-10").await else { return };
    assert_eq!(cm["metadata"]["labels"]["other"], "writer", "the other writer's change stands: {cm}");
    assert_eq!(w.document("web-10").await.unwrap()["phase"], "Succeeded");

    // Eight writers at once, each an environment of its own: none is lost.
    let runs = (0..8).map(|i| {
        let kubeconfig = w.kubeconfig.clone();
        tokio::spawn(async move {
            record(&kubeconfig, &["team-a/web-10", "--environment", &format!("env-{i}=Succeeded")], None).await
        })
    });
    for run in futures::future::join_all(runs).await {
        let (code, out, err) = run.expect("a writer ran");
        assert_eq!(code, 0, "{out}{err}");
    }
    let doc = w.document("web-10").await.unwrap();
    let mut names: Vec<&str> =
        doc["environments"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, (0..8).map(|i| format!("env-{i}")).collect::<Vec<_>>(), "{doc}");
}

#[tokio::test]
async fn record_refuses_a_configmap_that_is_not_an_execution_unless_forced() {
    let w = writer().await;
    let made = w.kubectl.run(
        &[
            "create",
            "configmap",
            "payments-config",
            "-n",
            "team-a",
            "--from-literal=database.url=postgres://db/payments",
        ],
        None,
    );
    let Some((true, _)) = made.await else { return };
    let flags = ["team-a/payments-config", "--pipeline", "web", "--app-version", "1.0.0", "--phase", "Running"];
    let (code, out, err) = record(&w.kubeconfig, &flags, None).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("is not an execution") && err.contains("--force") && err.contains("nothing was written"),
        "{err}"
    );
    let cm = w.configmap("payments-config").await.expect("kubectl ran");
    assert_eq!(cm["data"], json!({"database.url": "postgres://db/payments"}), "untouched: {cm}");
    assert!(cm["metadata"]["labels"].get("pipelines.gitops.dev/execution").is_none(), "{cm}");
    // Labelled as an execution, but holding another key besides its document: refused too.
    let labelled = ["label", "configmap", "payments-config", "-n", "team-a", "pipelines.gitops.dev/execution=true"];
    w.kubectl.ok(&labelled, None).await.expect("kubectl labels");
    let (code, _, err) = record(&w.kubeconfig, &flags, None).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"database.url\""), "names the key it would drop: {err}");
    assert_eq!(w.configmap("payments-config").await.unwrap()["data"]["database.url"], "postgres://db/payments");
    // --force converts it, and says what it dropped.
    let (code, out, err) = record(&w.kubeconfig, &[&flags[..], &["--force"]].concat(), None).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("dropping \"database.url\""), "{err}");
    let keys: Vec<String> =
        w.configmap("payments-config").await.unwrap()["data"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["execution.yaml"]);
    // An execution it wrote is updated as before.
    let (code, out, err) = record(&w.kubeconfig, &["team-a/payments-config", "--phase", "Succeeded"], None).await;
    assert_eq!((code, out.trim()), (0, "execution team-a/payments-config configured"), "{err}");
}
