//! `execwatch get` and `execwatch wait` as CI jobs and people run them, against a running
//! service fed by the simulator: paging, filters and outputs; waits through a phase change, a
//! forced disconnect, a switch of replicas and a proxy that strips streams; each exit code.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::{Cluster, Running, Setup, client_for, fast_watch, wait_until};
use execwatch::Sources;
use execwatch::fixtures::{Cm, Doc};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

// No kubeconfig: credentials only where a test gives them.
use common::binary::command;

/// Runs to the end: the exit code, stdout and stderr.
async fn execwatch(args: &[&str]) -> (i32, String, String) {
    let out = command(args).output().await.expect("the binary runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A `wait` running in the background, read a line at a time.
struct Waiting {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Waiting {
    fn start(args: &[&str]) -> Waiting {
        let mut child = command(&[&["wait"][..], args].concat()).spawn().expect("wait starts");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Waiting { child, lines, seen: Vec::new() }
    }

    /// The next line printed, within 10 s.
    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line()).await;
        let line = line.expect("a line within 10 s").expect("stdout reads").expect("a line, not the end");
        self.seen.push(line.clone());
        line
    }

    /// The exit code and stderr, within 20 s; the lines printed meanwhile are kept.
    async fn end(mut self) -> (i32, Vec<String>, String) {
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.seen.push(line);
        }
        let out = tokio::time::timeout(Duration::from_secs(20), self.child.wait_with_output()).await;
        let out = out.expect("wait ends within 20 s").expect("wait ends");
        (out.status.code().unwrap_or(-1), self.seen, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn run(phase: &str, staging: &str) -> Doc {
    Doc::new("web").phase(phase).environments(&[("dev", "Succeeded"), ("staging", staging)])
}

#[tokio::test]
async fn get_pages_through_every_execution_with_the_apis_filters_and_outputs() {
    let c = Cluster::start(&["team-a", "team-b"], &["team-a", "team-b"]).await;
    for i in 0..7 {
        let phase = if i % 3 == 0 { "Failed" } else { "Succeeded" };
        let started = format!("2026-11-2{i}T10:00:00Z");
        let doc = Doc::new(if i < 4 { "web" } else { "api" }).phase(phase).started_at(&started);
        c.put_execution(if i % 2 == 0 { "team-a" } else { "team-b" }, &format!("run-{i}"), &doc).await;
    }
    c.put(
        Cm::new("team-a", "broken")
            .data("execution.yaml", "phase: [")
            .label("pipelines.gitops.dev/execution", "true")
            .build(),
    )
    .await;
    c.service.wait_for("all served", "/api/v1/executions", |b| common::names(b).len() == 7).await;
    let server = c.service.base.as_str();

    // Pages of two, in the API's order (newest first), each name once.
    let (code, out, err) =
        execwatch(&["get", "executions", "--server", server, "--chunk-size", "2", "-o", "name"]).await;
    assert_eq!(code, 0, "{err}");
    let expected: Vec<String> =
        (0..7).rev().map(|i| format!("team-{}/run-{i}", if i % 2 == 0 { "a" } else { "b" })).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    let (_, out, _) =
        execwatch(&["get", "executions", "--server", server, "--chunk-size", "2", "--limit", "3", "-o", "name"]).await;
    assert_eq!(out.lines().count(), 3, "--limit stops early: {out}");

    // Filters, and JSON that decodes.
    let args = [
        "get",
        "executions",
        "--server",
        server,
        "-n",
        "team-a",
        "--phase",
        "Failed",
        "--pipeline",
        "web",
        "-o",
        "json",
    ];
    let (code, out, err) = execwatch(&args).await;
    assert_eq!(code, 0, "{err}");
    let items: Value = serde_json::from_str(&out).expect("JSON");
    let names: Vec<&str> = items["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["run-0"], "{out}");

    // The table: a column per environment, and the namespace where several are listed.
    let (code, out, err) = execwatch(&["get", "executions", "--server", server, "--pipeline", "api"]).await;
    assert_eq!(code, 0, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "PIPELINE", "PHASE", "DEV", "PROD", "VERSION", "AGE"]);
    assert_eq!(out.lines().count(), 4, "{out}");
    let (_, out, _) = execwatch(&["get", "pipelines", "--server", server, "-o", "wide"]).await;
    assert!(out.lines().any(|l| l.starts_with("team-a") && l.contains(" web ")), "{out}");
    let (_, out, _) = execwatch(&["get", "rejections", "--server", server, "-o", "yaml"]).await;
    let rejections: Value = serde_yaml::from_str(&out).expect("YAML");
    assert_eq!(rejections["items"][0]["name"], "broken", "{out}");
    assert_eq!(rejections["items"][0]["reasons"][0]["code"], "Unparsable");

    // One execution, whole; one that is not there is exit 3.
    let (code, out, _) = execwatch(&["get", "execution", "team-b/run-5", "--server", server, "-o", "json"]).await;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["execution"]["pipeline"], "api");
    let (code, _, err) = execwatch(&["get", "execution", "team-b/run-99", "--server", server]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("\"run-99\" not found in namespace"), "{err}");
    assert!(err.contains("see /api/v1/namespaces/team-b/rejections"), "where to look next: {err}");
}

#[tokio::test]
async fn get_watch_prints_the_list_then_each_change() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.put_execution("team-a", "run-1", &run("Running", "Pending")).await;
    c.service.wait_for("served", "/api/v1/executions", |b| common::names(b).len() == 1).await;
    let mut cmd = command(&["get", "executions", "--watch", "-o", "json", "--server", &c.service.base]);
    let mut child = cmd.spawn().expect("get starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
        serde_json::from_str(&line.expect("a line within 10 s").unwrap().expect("a line")).expect("a JSON line")
    };
    let first = next().await;
    assert_eq!((first["type"].as_str(), first["object"]["name"].as_str()), (Some("snapshot"), Some("run-1")));
    c.put_execution("team-a", "run-2", &run("Running", "Pending")).await;
    let added = next().await;
    assert_eq!((added["type"].as_str(), added["object"]["name"].as_str()), (Some("added"), Some("run-2")));
    c.put_execution("team-a", "run-1", &run("Succeeded", "Succeeded")).await;
    let modified = next().await;
    assert_eq!(
        (modified["type"].as_str(), modified["object"]["phase"].as_str()),
        (Some("modified"), Some("Succeeded"))
    );
    c.delete("team-a", "run-2").await;
    let deleted = next().await;
    assert_eq!((deleted["type"].as_str(), deleted["object"]["name"].as_str()), (Some("deleted"), Some("run-2")));
    child.kill().await.expect("stopped");
}

#[tokio::test]
async fn get_and_wait_say_what_is_wrong_with_credentials_and_where_the_service_is() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, common::tokens_file(&[("ci", "good-token", "[team-a]")])).unwrap();
    let file = execwatch::access::tokens::TokenFile::load(&tokens, Duration::from_secs(60)).expect("tokens");
    let setup = Setup { access: execwatch::access::Access::tokens(file), ..Setup::default() };
    let c = Cluster::launch(&["team-a"], &["team-a"], fast_watch(), setup).await;
    c.put_execution("team-a", "run-1", &run("Succeeded", "Succeeded")).await;
    let server = c.service.base.as_str();
    let (code, _, err) = execwatch(&["get", "executions", "--server", server]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("needs a token and none was sent") && err.contains("--token"), "{err}");
    let (code, _, err) = execwatch(&["get", "executions", "--server", server, "--token", "wrong"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("refused the token"), "{err}");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "good-token\n").unwrap();
    let token_file = token_file.to_str().unwrap();
    let (code, out, err) = wait_until("the run is served", || async {
        let got = execwatch(&["wait", "team-a/run-1", "--server", server, "--token-file", token_file]).await;
        (got.0 != 3).then_some(got)
    })
    .await;
    assert_eq!(code, 0, "{out}{err}");
    // Nothing listens there: retried for --retry-for, then exit 4.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let nowhere = format!("http://{closed}");
    let (code, _, err) = execwatch(&["wait", "team-a/run-1", "--server", &nowhere, "--retry-for", "1s"]).await;
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("cannot reach the execwatch service") && err.contains("--server"), "{err}");
    let (code, _, err) = execwatch(&["wait", "team-a/run-1", "--for", "phase=Done"]).await;
    assert_eq!(code, 4, "a usage error: {err}");
}

#[tokio::test]
async fn wait_prints_each_change_and_ends_with_the_code_of_what_happened() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    for name in ["run-1", "run-2", "run-3", "run-4"] {
        c.put_execution("team-a", name, &run("Running", "Pending")).await;
    }
    c.service.wait_for("all served", "/api/v1/executions", |b| common::names(b).len() == 4).await;
    let server = c.service.base.as_str();

    // 0: staging succeeds; every change on its own line, with its time.
    let mut waiting = Waiting::start(&["team-a/run-1", "--for", "environment=staging:Succeeded", "--server", server]);
    assert!(waiting.line().await.ends_with("team-a/run-1 Running dev=Succeeded staging=Pending"));
    c.put_execution("team-a", "run-1", &run("Running", "Running")).await;
    assert!(waiting.line().await.ends_with("staging=Running"));
    c.put_execution("team-a", "run-1", &run("Running", "Succeeded")).await;
    let (code, lines, err) = waiting.end().await;
    assert_eq!(code, 0, "{lines:?} {err}");
    assert!(lines[2].ends_with("staging=Succeeded"), "{lines:?}");
    let time = lines[2].split_whitespace().next().unwrap();
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "each line starts with its time: {lines:?}");
    assert!(err.contains("environment staging Succeeded reached"), "{err}");

    // 1: it fails while Succeeded is awaited.
    let mut waiting = Waiting::start(&["team-a/run-2", "--for", "phase=Succeeded", "--server", server, "-o", "json"]);
    let first: Value = serde_json::from_str(&waiting.line().await).expect("a JSON line");
    assert_eq!((first["name"].as_str(), first["phase"].as_str()), (Some("run-2"), Some("Running")));
    c.put_execution("team-a", "run-2", &run("Failed", "Failed")).await;
    let (code, lines, err) = waiting.end().await;
    assert_eq!(code, 1, "{lines:?} {err}");
    assert!(err.contains("ended Failed, so phase Succeeded will not be reached"), "{err}");

    // 2: the timeout passes, and says what was seen last.
    let (code, _, err) = execwatch(&["wait", "team-a/run-3", "--timeout", "1s", "--server", server]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not reached within 1s (last seen Running)"), "{err}");

    // 3: deleted while awaited, or never there.
    let mut waiting = Waiting::start(&["team-a/run-4", "--server", server]);
    waiting.line().await;
    c.delete("team-a", "run-4").await;
    let (code, _, err) = waiting.end().await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("deleted"), "{err}");
    let (code, _, _) = execwatch(&["wait", "team-a/nothing", "--server", server]).await;
    assert_eq!(code, 3);

    // 130: Ctrl-C ends it at once.
    let mut waiting = Waiting::start(&["team-a/run-3", "--server", server]);
    waiting.line().await;
    let pid = waiting.child.id().expect("running").to_string();
    std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
    let (code, _, _) = waiting.end().await;
    assert_eq!(code, 130);
}

#[tokio::test]
async fn wait_resumes_after_a_forced_disconnect_with_what_it_missed() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.put_execution("team-a", "run-1", &run("Running", "Pending")).await;
    c.service.wait_for("served", "/api/v1/namespaces/team-a/executions/run-1", |b| b["name"] == "run-1").await;
    let proxy = Proxy::start(c.service.address()).await;
    let mut waiting = Waiting::start(&["team-a/run-1", "--for", "phase=Succeeded", "--server", &proxy.url]);
    waiting.line().await;
    // Cut off, and kept off while two changes happen.
    proxy.pause(true);
    proxy.cut();
    c.put_execution("team-a", "run-1", &run("Running", "Running")).await;
    c.put_execution("team-a", "run-1", &run("Succeeded", "Succeeded")).await;
    c.service
        .wait_for("both changes are served", "/api/v1/namespaces/team-a/executions/run-1", |b| {
            b["execution"]["phase"] == "Succeeded"
        })
        .await;
    wait_until("wait tried to reconnect while cut off", || async { (proxy.heads().len() > 1).then_some(()) }).await;
    proxy.pause(false);
    let (code, lines, err) = waiting.end().await;
    assert_eq!(code, 0, "{lines:?} {err}");
    // Both changes, in order: the history replayed from Last-Event-ID, not a fresh snapshot.
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].ends_with("Running dev=Succeeded staging=Running"), "{lines:?}");
    let resumed = proxy.heads().into_iter().filter(|h| h.contains("last-event-id:")).count();
    assert!(resumed >= 1, "reconnected with Last-Event-ID: {:?}", proxy.heads());
}

#[tokio::test]
async fn wait_follows_the_execution_onto_another_replica_in_a_rolling_update() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    let sources =
        || Sources::Kube { client: client_for(&c.sim), namespaces: vec!["team-a".into()].into(), watch: fast_watch() };
    let mut old = Running::launch(sources(), Setup::default()).await;
    let new = Running::launch(sources(), Setup::default()).await;
    c.put_execution("team-a", "run-1", &run("Running", "Pending")).await;
    for replica in [&old, &new] {
        replica.wait_for("served", "/api/v1/namespaces/team-a/executions/run-1", |b| b["name"] == "run-1").await;
    }
    let proxy = Proxy::start(old.address()).await;
    let mut waiting = Waiting::start(&["team-a/run-1", "--for", "terminal", "--server", &proxy.url, "-o", "json"]);
    waiting.line().await;
    // The Service now points at the new replica; the old one shuts down, ending its streams.
    proxy.retarget(new.address());
    old.begin_stop();
    old.stopped().await;
    c.put_execution("team-a", "run-1", &run("Succeeded", "Succeeded")).await;
    let (code, lines, err) = waiting.end().await;
    assert_eq!(code, 0, "{lines:?} {err}");
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["phase"], "Succeeded");
    let heads = proxy.heads();
    assert!(heads.len() >= 2 && heads[1].contains("last-event-id:"), "resumed on the new replica: {heads:?}");
    new.stop().await;
}

#[tokio::test]
async fn wait_long_polls_where_a_proxy_strips_streams() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.put_execution("team-a", "run-1", &run("Running", "Pending")).await;
    c.service.wait_for("served", "/api/v1/namespaces/team-a/executions/run-1", |b| b["name"] == "run-1").await;
    let proxy = Proxy::start(c.service.address()).await;
    proxy.strip_streams(true);
    let mut waiting = Waiting::start(&["team-a/run-1", "--for", "phase=Succeeded", "--server", &proxy.url]);
    waiting.line().await;
    wait_until("a long poll is held", || async {
        proxy.heads().iter().any(|h| h.contains("timeoutseconds=") && h.contains("if-none-match:")).then_some(())
    })
    .await;
    c.put_execution("team-a", "run-1", &run("Succeeded", "Succeeded")).await;
    let (code, lines, err) = waiting.end().await;
    assert_eq!(code, 0, "{lines:?} {err}");
    assert!(lines.last().unwrap().contains(" Succeeded "), "{lines:?}");
}

/// `kubectl execwatch wait …` through kubectl's plugin mechanism.
#[tokio::test]
async fn kubectl_execwatch_wait_is_the_same_command() {
    let c = Cluster::start(&["team-a"], &["team-a"]).await;
    c.put_execution("team-a", "run-1", &run("Succeeded", "Succeeded")).await;
    c.service.wait_for("served", "/api/v1/namespaces/team-a/executions/run-1", |b| b["name"] == "run-1").await;
    let dir = tempfile::tempdir().unwrap();
    let path = common::binary::plugin_path(dir.path());
    let out = Command::new("kubectl")
        .args(["execwatch", "wait", "team-a/run-1", "--for", "phase=Succeeded", "--server", &c.service.base])
        .env("PATH", &path)
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(e) => return common::clients::missing(&format!("kubectl ({e})")),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("team-a/run-1 Succeeded"), "{text}");
}

/// A server on loopback that answers every request `401` and keeps each request's
/// `Authorization` header (empty where none was sent): whatever a user names as `--server`.
async fn listener_keeping_credentials() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut authorization = String::new();
            while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await {
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = value.trim().to_owned();
                }
            }
            let _ = tx.send(authorization);
            let body = r#"{"code":"Unauthorized","message":"a bearer token is needed"}"#;
            let head = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = write.write_all(format!("{head}{body}").as_bytes()).await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn the_kubeconfig_users_credential_is_sent_only_when_asked_and_never_in_clear_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\nusers:\n\
         - name: admin\n  user:\n    token: REAL-APISERVER-TOKEN\ncontexts:\n- name: c\n  context:\n    cluster: c\n    \
         user: admin\ncurrent-context: c\n",
    )
    .unwrap();
    let (server, mut seen) = listener_keeping_credentials().await;
    let with_kubeconfig = |args: &[&str]| {
        let mut cmd = command(args);
        cmd.env("KUBECONFIG", &kubeconfig);
        cmd
    };
    let out = with_kubeconfig(&["get", "executions", "--server", &server]).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("none was sent") && err.contains("--service-account"), "{err}");
    assert_eq!(seen.recv().await.unwrap(), "", "the kubeconfig user's token is not sent unasked");
    let out = with_kubeconfig(&["wait", "team-a/run-1", "--server", &server]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(seen.recv().await.unwrap(), "", "wait sends none either");
    // Asked for by name, to a loopback server: sent.
    let mut asked = with_kubeconfig(&["get", "executions", "--server", &server, "--kubeconfig-credentials"]);
    let out = asked.output().await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(seen.recv().await.unwrap(), "Bearer REAL-APISERVER-TOKEN");
    // Off loopback over plain http: refused before any connection (the name never resolves).
    for credential in [&["--kubeconfig-credentials"][..], &["--token", "t"]] {
        for command in [&["get", "executions"][..], &["wait", "team-a/run-1"]] {
            let args = [command, &["--server", "http://execwatch.invalid:8080"], credential].concat();
            let out = with_kubeconfig(&args).output().await.unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
            assert!(err.contains("refusing to send a credential") && err.contains("--insecure-plaintext"), "{err}");
        }
    }
    assert!(seen.try_recv().is_err(), "nothing more reached the listener");
}
