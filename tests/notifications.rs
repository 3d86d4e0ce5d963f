//! Notifications from outside: a team subscribes with kubectl (the shipped CRD, a Secret, a
//! NotificationSubscription), and a real receiver (Python, verifying every signature with the
//! reference `standardwebhooks` package and every CDEvent against the vendored CDEvents
//! schemas) gets exactly the transitions it chose, retried while it fails, never from a
//! destination the operator did not allow.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::clients::Kubectl;
use common::{Cluster, Setup, fast_watch, wait_until_within};
use execwatch::fixtures::{Cm, Doc};
use execwatch::history::ArchiveSettings;
use execwatch::notify::NotifySettings;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Standard Webhooks keys (24 bytes or more, base64 after `whsec_`).
const OLD_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_KEY: &str = "whsec_c2Vjb25kLWtleS1mb3ItdGhlLXJvdGF0aW9uLXRlc3Q=";

/// The Python receiver (`tests/clients/webhook_receiver.py`) and what it has printed so far.
struct Receiver {
    port: u16,
    lines: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    _child: tokio::process::Child,
}

impl Receiver {
    /// Starts a receiver that verifies with any of `keys`; `None` where Python or its packages
    /// are missing (a skip, or a failure where clients are required).
    async fn start(keys: &[&str]) -> Option<Receiver> {
        let probe = std::process::Command::new("python3")
            .args(["-c", "import standardwebhooks, jsonschema, referencing"])
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            common::clients::missing(
                "python3 with standardwebhooks and jsonschema (pip install standardwebhooks jsonschema)",
            );
            return None;
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new("python3")
            .arg(root.join("tests/clients/webhook_receiver.py"))
            .arg(root.join("tests/data/cdevents"))
            .args(keys)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the receiver starts");
        let (tx, mut lines) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send(serde_json::from_str::<Value>(&line).expect("the receiver prints JSON"));
            }
        });
        let first = tokio::time::timeout(Duration::from_secs(30), lines.recv()).await.expect("the receiver listens");
        let port = first.expect("a first line")["listening"].as_u64().expect("its port") as u16;
        Some(Receiver { port, lines, seen: Vec::new(), _child: child })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// How the receiver answers from now on: "200", "503" or "redirect URL".
    async fn answer(&self, mode: &str) {
        let url = format!("http://127.0.0.1:{}/_mode", self.port);
        let sent = reqwest::Client::new().post(url).body(mode.to_owned()).send().await.expect("the receiver answers");
        assert_eq!(sent.status(), 204);
    }

    /// Reads what the receiver prints until `done` holds of everything seen (within 180s).
    async fn until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> &[Value] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    // Everything printed meanwhile, before `done` looks again: it reads all of it.
                    self.seen.push(line);
                    while let Ok(more) = self.lines.try_recv() {
                        self.seen.push(more);
                    }
                }
                _ => panic!("{what}: not within 180s; the receiver saw {:#?}", self.seen),
            }
        }
        &self.seen
    }
}

/// Messages accepted (204), as (type, subject, transition key parts) by id.
fn accepted(seen: &[Value]) -> Vec<&Value> {
    seen.iter().filter(|r| r["status"] == 204).collect()
}

/// A cluster with the service watching team-a and team-b, an archive, notifications allowed to
/// 127.0.0.1 by name, and the shipped CRD installed by kubectl.
async fn cluster(dir: &Path) -> Option<(Cluster, Kubectl)> {
    cluster_with(dir, NotifySettings::default()).await
}

async fn cluster_with(dir: &Path, notify: NotifySettings) -> Option<(Cluster, Kubectl)> {
    let archive = ArchiveSettings::new(
        format!("sqlite:{}", dir.join("history.db").display()).parse().unwrap(),
        Duration::from_secs(86400),
    );
    let notify = NotifySettings { allowed: vec!["127.0.0.1".parse().unwrap()], ..notify };
    let setup = Setup { archive: Some(archive), notify: Some(notify), metrics: true, ..Setup::default() };
    let c = Cluster::launch(&["team-a", "team-b", "team-x"], &["team-a", "team-b"], fast_watch(), setup).await;
    let kubectl = Kubectl::new(dir, &c.sim.kubeconfig());
    let crd =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/notifications/crd-notificationsubscription.yaml");
    kubectl.ok(&["apply", "-f", crd.to_str().unwrap()], None).await?;
    kubectl
        .ok(&["wait", "--for=condition=Established", "crd/notificationsubscriptions.pipelines.gitops.dev"], None)
        .await?;
    Some((c, kubectl))
}

/// A Secret with the destination and keys, and a subscription naming it, applied by kubectl.
async fn subscribe(kubectl: &Kubectl, ns: &str, name: &str, url: &str, keys: &str, transitions: &str) {
    secret(kubectl, ns, name, url, keys).await;
    let subscription = format!(
        "apiVersion: pipelines.gitops.dev/v1alpha1\nkind: NotificationSubscription\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
         spec:\n  transitions:\n{transitions}\n  destination:\n    secretRef:\n      name: {name}\n"
    );
    kubectl.ok(&["apply", "-f", "-"], Some(&subscription)).await;
}

/// The Secret a subscription names, as the API server stores one: `data`, in base64 (the
/// simulator does not turn `stringData` into it).
async fn secret(kubectl: &Kubectl, ns: &str, name: &str, url: &str, keys: &str) {
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
        "data": {"url": b64(url), "signingKeys": b64(keys)},
    });
    kubectl.ok(&["apply", "-f", "-"], Some(&secret.to_string())).await;
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The subscription's status, read with kubectl.
async fn status(kubectl: &Kubectl, ns: &str, name: &str) -> Value {
    let out =
        kubectl.ok(&["get", "notificationsubscription", name, "-n", ns, "-o", "json"], None).await.unwrap_or_default();
    serde_json::from_str::<Value>(&out).map(|o| o["status"].clone()).unwrap_or(Value::Null)
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == kind)).unwrap_or(&Value::Null)
}

async fn wait_status(kubectl: &Kubectl, ns: &str, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_until_within(what, Duration::from_secs(60), || async {
        let s = status(kubectl, ns, name).await;
        check(&s).then_some(s)
    })
    .await
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

#[tokio::test]
async fn a_team_receives_signed_cloudevents_of_exactly_the_transitions_it_chose() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    let Some((c, kubectl)) = cluster(dir.path()).await else { return };
    let transitions = "    runs: [Running, Succeeded, Failed]\n    environments:\n      prod: [Succeeded, Failed]\n    rejections: true";
    subscribe(&kubectl, "team-a", "payments", &receiver.url(), OLD_KEY, transitions).await;
    wait_status(&kubectl, "team-a", "payments", "the subscription is ready", |s| {
        condition(s, "Ready")["status"] == "True"
    })
    .await;

    let started = now();
    c.put_execution("team-a", "run-1", &Doc::new("web").started_at(&started).environments(&[("dev", "Running")])).await;
    // Another team's runs are not this subscription's.
    c.put_execution("team-b", "run-9", &Doc::new("web").started_at(&started).phase("Failed")).await;
    let done = Doc::new("web").started_at(&started).phase("Succeeded");
    c.put_execution("team-a", "run-1", &done.environments(&[("dev", "Succeeded"), ("prod", "Succeeded")])).await;
    let failed = Doc::new("api").started_at(&started).phase("Failed").environments(&[("prod", "Failed")]);
    c.put_execution("team-a", "run-2", &failed).await;
    c.put(Cm::new("team-a", "broken").data("execution.yaml", "pipeline: [not, a, run]").build()).await;

    let expected: BTreeSet<(String, String)> = [
        ("dev.cdevents.pipelinerun.started.0.2.0", "team-a/run-1"),
        ("dev.cdevents.pipelinerun.finished.0.2.0", "team-a/run-1"),
        ("dev.cdevents.service.deployed.0.2.0", "team-a/run-1"),
        ("dev.cdevents.pipelinerun.started.0.2.0", "team-a/run-2"),
        ("dev.cdevents.pipelinerun.finished.0.2.0", "team-a/run-2"),
        ("dev.gitops.pipelines.environment.failed.v1", "team-a/run-2"),
        ("dev.gitops.pipelines.configmap.rejected.v1", "team-a/broken"),
    ]
    .into_iter()
    .map(|(t, s)| (t.to_owned(), s.to_owned()))
    .collect();
    let seen = receiver.until("every chosen transition arrives", |seen| accepted(seen).len() >= expected.len()).await;
    let got: BTreeSet<(String, String)> = accepted(seen)
        .iter()
        .map(|r| (r["type"].as_str().unwrap().to_owned(), r["subject"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, expected, "{seen:#?}");
    for record in seen {
        assert_eq!(record["verified"], true, "every signature verifies: {record}");
        assert_eq!(record["schema"], "ok", "every CloudEvent and CDEvent is valid: {record}");
        assert_eq!(record["contentType"], "application/cloudevents+json; charset=utf-8");
    }
    let ids: BTreeSet<&str> = seen.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), seen.len(), "no message twice: {seen:#?}");
    let finished =
        seen.iter().find(|r| r["subject"] == "team-a/run-2" && r["type"].as_str().unwrap().contains("finished"));
    assert_eq!(finished.unwrap()["event"]["data"]["subject"]["content"]["outcome"], "failure");

    let s = wait_status(&kubectl, "team-a", "payments", "the status counts the deliveries", |s| s["sent"] == 7).await;
    assert_eq!((&s["waiting"], &s["deadLettered"]), (&Value::from(0), &Value::from(0)), "{s}");
    assert!(s["lastDelivery"].is_string(), "{s}");
    assert_eq!(condition(&s, "Failing")["status"], "False", "{s}");
    let metrics = reqwest::get(c.service.metrics.as_deref().unwrap()).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("execwatch_notifications_sent_total{namespace=\"team-a\"} 7"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_is_retried_with_the_same_id_until_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    let Some((c, kubectl)) = cluster(dir.path()).await else { return };
    receiver.answer("503").await;
    subscribe(&kubectl, "team-a", "flaky", &receiver.url(), OLD_KEY, "    runs: [Succeeded]").await;
    wait_status(&kubectl, "team-a", "flaky", "the subscription is ready", |s| {
        condition(s, "Ready")["status"] == "True"
    })
    .await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    let seen =
        receiver.until("three attempts fail", |seen| seen.iter().filter(|r| r["status"] == 503).count() >= 3).await;
    let id = seen[0]["id"].clone();
    assert!(seen.iter().all(|r| r["id"] == id && r["verified"] == true), "every retry is the same message: {seen:#?}");
    let s = wait_status(&kubectl, "team-a", "flaky", "the status says it fails", |s| {
        condition(s, "Failing")["status"] == "True"
    })
    .await;
    assert!(condition(&s, "Failing")["message"].as_str().unwrap().contains("503"), "{s}");
    assert_eq!(s["waiting"], 1, "{s}");

    receiver.answer("200").await;
    let seen = receiver.until("the retry is accepted", |seen| !accepted(seen).is_empty()).await;
    assert_eq!(accepted(seen).len(), 1);
    assert_eq!(accepted(seen)[0]["id"], id);
    wait_status(&kubectl, "team-a", "flaky", "the status recovers", |s| {
        condition(s, "Failing")["status"] == "False" && s["sent"] == 1 && s["waiting"] == 0
    })
    .await;

    // The team sees the delivery, its attempts and its last error: over the API and the CLI.
    let (code, body) = c.service.get("/api/v1/namespaces/team-a/deliveries?subscription=flaky").await;
    assert_eq!(code, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(
        (&items[0]["id"], &items[0]["state"], &items[0]["lastStatus"]),
        (&id, &Value::from("sent"), &Value::from(204))
    );
    assert!(items[0]["attempts"].as_i64().unwrap() >= 4, "{body}");
    assert_eq!(items[0]["transition"], "run/Succeeded");
    let (code, body) = c.service.get("/api/v1/namespaces/team-a/deliveries?state=lost").await;
    assert_eq!((code, &body["code"]), (400, &Value::from("InvalidParameter")), "{body}");
    let (code, _) = c.service.get("/api/v1/namespaces/team-x/deliveries").await;
    assert_eq!(code, 404, "a namespace not watched");
    let cli = common::binary::command(&["get", "deliveries", "-n", "team-a", "--server", &c.service.base])
        .output()
        .await
        .expect("the CLI runs");
    let table = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{table} {}", String::from_utf8_lossy(&cli.stderr));
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("flaky") && row.contains("run/Succeeded") && row.contains("sent"), "{table}");

    // And on the dashboard's status page.
    let Some(browser) = common::browser::Browser::start(1280, 720).await else { return };
    browser.goto(&format!("{}/#/status?namespace=team-a", c.service.base)).await;
    let row = format!("#notifications tr[data-key='{}']", id.as_str().unwrap());
    let shown = browser.wait_text("the delivery is on the status page", &row, |t| t.contains("sent")).await;
    assert!(shown.contains("flaky") && shown.contains("run/Succeeded") && shown.contains("team-a/run-1"), "{shown}");
    browser.close().await;
}

/// A listener that counts the connections it is offered.
async fn counting_listener(address: &str) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, count)
}

#[tokio::test]
async fn destinations_the_operator_did_not_allow_are_never_reached_and_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    let Some((c, kubectl)) = cluster(dir.path()).await else { return };
    let (loopback_port, loopback) = counting_listener("127.0.0.2:0").await;
    let (localhost_port, localhost) = counting_listener("127.0.0.1:0").await;
    let refused = [
        ("other-loopback", format!("http://127.0.0.2:{loopback_port}/"), "127.0.0.2"),
        ("metadata", "http://169.254.169.254/latest/meta-data/".to_owned(), "link-local"),
        ("by-name", format!("http://localhost:{localhost_port}/"), "localhost"),
    ];
    for (name, url, _) in &refused {
        subscribe(&kubectl, "team-a", name, url, OLD_KEY, "    runs: [Succeeded]").await;
    }
    subscribe(&kubectl, "team-a", "redirected", &receiver.url(), OLD_KEY, "    runs: [Succeeded]").await;
    receiver.answer(&format!("redirect http://127.0.0.2:{loopback_port}/")).await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    for (name, _, words) in &refused {
        let s = wait_status(&kubectl, "team-a", name, "the destination is refused", |s| {
            condition(s, "DestinationRefused")["status"] == "True"
        })
        .await;
        let message = condition(&s, "DestinationRefused")["message"].as_str().unwrap();
        assert!(message.contains(words), "{name}: {message}");
        assert_eq!(condition(&s, "Ready")["status"], "False", "{s}");
    }
    // A refused destination is a condition, not a retry loop: its message waits, never tried.
    for (name, _, _) in &refused {
        let path = format!("/api/v1/namespaces/team-a/deliveries?subscription={name}");
        let body = c.service.wait_for("the message waits", &path, |b| b["items"][0].is_object()).await;
        let message = &body["items"][0];
        assert_eq!((&message["state"], &message["attempts"]), (&Value::from("waiting"), &Value::from(0)), "{body}");
    }
    receiver.until("the redirect is answered", |seen| seen.iter().filter(|r| r["status"] == 302).count() >= 2).await;
    let s = wait_status(&kubectl, "team-a", "redirected", "a redirect is a failure", |s| {
        condition(s, "Failing")["status"] == "True"
    })
    .await;
    assert!(condition(&s, "Failing")["message"].as_str().unwrap().contains("302"), "{s}");
    assert_eq!(loopback.load(Ordering::SeqCst), 0, "nothing reached 127.0.0.2, not even by a redirect");
    assert_eq!(localhost.load(Ordering::SeqCst), 0, "nothing reached localhost");
}

#[tokio::test]
async fn a_rotated_key_verifies_during_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    // The receiver already knows only the new key; the Secret still has only the old one.
    let Some(mut receiver) = Receiver::start(&[NEW_KEY]).await else { return };
    let Some((c, kubectl)) = cluster(dir.path()).await else { return };
    subscribe(&kubectl, "team-a", "rotating", &receiver.url(), OLD_KEY, "    runs: [Succeeded]").await;
    wait_status(&kubectl, "team-a", "rotating", "ready", |s| condition(s, "Ready")["status"] == "True").await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    receiver.until("the old key's signature is refused", |seen| seen.iter().any(|r| r["status"] == 401)).await;
    // The overlap: both keys in the Secret.
    subscribe(
        &kubectl,
        "team-a",
        "rotating",
        &receiver.url(),
        &format!("{OLD_KEY} {NEW_KEY}"),
        "    runs: [Succeeded]",
    )
    .await;
    let seen = receiver.until("the message verifies with both keys sent", |seen| !accepted(seen).is_empty()).await;
    let ids: BTreeSet<&str> = seen.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one message, retried: {seen:#?}");
}

#[tokio::test]
async fn invalid_subscriptions_and_unwatched_namespaces_say_why_and_send_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    let Some((c, kubectl)) = cluster(dir.path()).await else { return };
    subscribe(&kubectl, "team-x", "elsewhere", &receiver.url(), OLD_KEY, "    runs: [Succeeded]").await;
    let s = wait_status(&kubectl, "team-x", "elsewhere", "not watched", |s| {
        condition(s, "Ready")["reason"] == "NamespaceNotWatched"
    })
    .await;
    assert!(condition(&s, "Ready")["message"].as_str().unwrap().contains("team-x"), "{s}");
    subscribe(&kubectl, "team-a", "typo", &receiver.url(), OLD_KEY, "    runs: [Succeded]").await;
    let s =
        wait_status(&kubectl, "team-a", "typo", "invalid", |s| condition(s, "Ready")["reason"] == "InvalidSpec").await;
    assert!(condition(&s, "Ready")["message"].as_str().unwrap().contains("\"Succeded\" is not a phase"), "{s}");
    subscribe(&kubectl, "team-a", "badkey", &receiver.url(), "whsec_short", "    runs: [Succeeded]").await;
    let s =
        wait_status(&kubectl, "team-a", "badkey", "bad key", |s| condition(s, "Ready")["reason"] == "InvalidSecret")
            .await;
    assert!(!s.to_string().contains("whsec_short"), "a key is never shown: {s}");
    let secretless = "apiVersion: pipelines.gitops.dev/v1alpha1\nkind: NotificationSubscription\nmetadata:\n  name: nosecret\n  namespace: team-a\nspec:\n  transitions:\n    runs: [Failed]\n  destination:\n    secretRef:\n      name: missing\n";
    kubectl.ok(&["apply", "-f", "-"], Some(secretless)).await;
    wait_status(&kubectl, "team-a", "nosecret", "no secret", |s| condition(s, "Ready")["reason"] == "SecretUnreadable")
        .await;
    // A Secret execwatch may not read.
    secret(&kubectl, "team-a", "forbidden", &receiver.url(), OLD_KEY).await;
    c.sim.forbid("get", "secrets", true);
    let forbidden = secretless.replace("nosecret", "forbidden").replace("name: missing", "name: forbidden");
    kubectl.ok(&["apply", "-f", "-"], Some(&forbidden)).await;
    let s = wait_status(&kubectl, "team-a", "forbidden", "forbidden", |s| {
        condition(s, "Ready")["reason"] == "SecretUnreadable"
    })
    .await;
    assert!(condition(&s, "Ready")["message"].as_str().unwrap().contains("may not read it"), "{s}");
}

/// A replica of the service as users run it: the binary, over the simulator (its kubeconfig in
/// `dir`), the archive at `url`.
fn replica(dir: &Path, url: &str) -> tokio::process::Child {
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
    common::binary::command(&["--log-level", "error", "serve", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "none", "--schemas", schemas, "--namespaces", "team-a"])
        .args(["--archive", url, "--notify-allow", "127.0.0.1"])
        .args(["--watch-timeout", "5s", "--backoff-max", "500ms"])
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .spawn()
        .expect("a replica starts")
}

/// Transitions written and delivered in `every_transition_arrives_through_kills_and_two_replicas`:
/// four per run (started, finished, two environments deployed); `EXECWATCH_NOTIFY_TRANSITIONS`
/// changes it.
fn transitions() -> usize {
    std::env::var("EXECWATCH_NOTIFY_TRANSITIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000)
}

/// Two replicas on one PostgreSQL, the receiver failing while runs are written, a replica killed
/// (SIGKILL) three times meanwhile: every transition arrives, duplicates are at most 0.1 % and
/// each has its original's id.
#[tokio::test]
async fn every_transition_arrives_through_kills_and_two_replicas() {
    let Some(postgres) = common::postgres::Postgres::start() else { return };
    let Some(mut receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    postgres.create("notify");
    let url = postgres.url("notify");
    let dir = tempfile::tempdir().unwrap();
    let sim = k8s_sim::Sim::start().await.expect("simulator");
    sim.create_namespace("team-a");
    let kubectl = Kubectl::new(dir.path(), &sim.kubeconfig());
    let crd =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/notifications/crd-notificationsubscription.yaml");
    let Some(_) = kubectl.ok(&["apply", "-f", crd.to_str().unwrap()], None).await else { return };
    receiver.answer("503").await;
    let transitions_yaml = "    runs: [Running, Succeeded]\n    environments:\n      \"*\": [Succeeded]";
    subscribe(&kubectl, "team-a", "everything", &receiver.url(), OLD_KEY, transitions_yaml).await;
    let (mut first, mut second) = (replica(dir.path(), &url), replica(dir.path(), &url));
    let writer = common::client_for(&sim);
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(writer, "team-a");
    let runs = transitions() / 4;
    let started = now();
    for i in 0..runs {
        let doc = Doc::new("web").started_at(&started).environments(&[("dev", "Running")]);
        let cm = Cm::new("team-a", &format!("run-{i:05}")).doc(&doc).build();
        configmaps.create(&Default::default(), &cm).await.expect("create");
        if i == runs / 2 {
            // Killed while runs are being written and noted.
            first.start_kill().expect("SIGKILL");
            first.wait().await.expect("reaped");
            first = replica(dir.path(), &url);
        }
    }
    let finished = Doc::new("web").started_at(&started).phase("Succeeded");
    let finished = finished.environments(&[("dev", "Succeeded"), ("prod", "Succeeded")]);
    for i in 0..runs {
        let name = format!("run-{i:05}");
        let mut cm = Cm::new("team-a", &name).doc(&finished).build();
        cm.metadata.resource_version = configmaps.get(&name).await.expect("get").metadata.resource_version;
        configmaps.replace(&name, &Default::default(), &cm).await.expect("replace");
    }
    // Killed twice more while the receiver fails and the replicas retry.
    for kill in 0..2 {
        receiver
            .until("the replicas retry", |seen| seen.iter().filter(|r| r["status"] == 503).count() > 100 * (kill + 1))
            .await;
        let victim = if kill == 0 { &mut second } else { &mut first };
        victim.start_kill().expect("SIGKILL");
        victim.wait().await.expect("reaped");
        *victim = replica(dir.path(), &url);
    }
    receiver.answer("200").await;
    let expected = runs * 4;
    let seen = receiver
        .until("every transition arrives", |seen| {
            accepted(seen).iter().map(|r| r["id"].as_str()).collect::<BTreeSet<_>>().len() >= expected
        })
        .await;
    let accepted = accepted(seen);
    let ids: BTreeSet<&str> = accepted.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), expected);
    let per_run = accepted.iter().fold(std::collections::BTreeMap::<&str, BTreeSet<&str>>::new(), |mut m, r| {
        m.entry(r["subject"].as_str().unwrap()).or_default().insert(r["id"].as_str().unwrap());
        m
    });
    assert_eq!(per_run.len(), runs);
    assert!(per_run.values().all(|ids| ids.len() == 4), "four transitions per run");
    let duplicates = accepted.len() - ids.len();
    println!("{expected} transitions delivered, {duplicates} duplicates, {} attempts in all", seen.len());
    assert!(duplicates * 1000 <= expected, "{duplicates} duplicates of {expected}");
    assert!(seen.iter().all(|r| r["verified"] == true && (r["status"] != 204 || r["schema"] == "ok")));
    for mut child in [first, second] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn a_deleted_subscription_sends_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    let Some((c, kubectl)) = cluster(dir.path()).await else { return };
    receiver.answer("503").await;
    for name in ["leaving", "staying"] {
        subscribe(&kubectl, "team-a", name, &receiver.url(), OLD_KEY, "    runs: [Succeeded]").await;
        wait_status(&kubectl, "team-a", name, "ready", |s| condition(s, "Ready")["status"] == "True").await;
    }
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    receiver
        .until("both subscriptions' messages are tried", |seen| {
            seen.iter().filter_map(|r| r["id"].as_str()).collect::<BTreeSet<_>>().len() == 2
        })
        .await;
    let (_, leaving) = c.service.get("/api/v1/namespaces/team-a/deliveries?subscription=leaving").await;
    let leaving: BTreeSet<String> =
        leaving["items"].as_array().unwrap().iter().filter_map(|d| d["id"].as_str().map(str::to_owned)).collect();
    assert_eq!(leaving.len(), 1, "{leaving:?}");
    kubectl.ok(&["delete", "notificationsubscription", "leaving", "-n", "team-a"], None).await;
    c.service
        .wait_for("its waiting message is dropped", "/api/v1/namespaces/team-a/deliveries?subscription=leaving", |b| {
            b["items"].as_array().is_some_and(|items| items.is_empty())
        })
        .await;
    receiver.answer("200").await;
    c.put_execution("team-a", "run-2", &Doc::new("web").phase("Succeeded")).await;
    let seen = receiver.until("the remaining subscription gets both runs", |seen| accepted(seen).len() >= 2).await;
    assert!(accepted(seen).iter().all(|r| !leaving.contains(r["id"].as_str().unwrap())), "{seen:#?}");
    let (_, all) = c.service.get("/api/v1/namespaces/team-a/deliveries").await;
    let subscriptions: BTreeSet<&str> =
        all["items"].as_array().unwrap().iter().filter_map(|d| d["subscription"].as_str()).collect();
    assert_eq!(subscriptions, BTreeSet::from(["staying"]), "{all}");
}

#[tokio::test]
async fn a_message_failing_past_the_maximum_age_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    let notify = NotifySettings { max_age: Duration::from_secs(3), ..NotifySettings::default() };
    let Some((c, kubectl)) = cluster_with(dir.path(), notify).await else { return };
    receiver.answer("503").await;
    subscribe(&kubectl, "team-a", "doomed", &receiver.url(), OLD_KEY, "    runs: [Succeeded]").await;
    wait_status(&kubectl, "team-a", "doomed", "ready", |s| condition(s, "Ready")["status"] == "True").await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    let s = wait_status(&kubectl, "team-a", "doomed", "dead-lettered", |s| s["deadLettered"] == 1).await;
    assert_eq!(s["waiting"], 0, "{s}");
    let (_, body) = c.service.get("/api/v1/namespaces/team-a/deliveries?state=dead").await;
    let dead = body["items"][0].clone();
    assert!(dead["attempts"].as_i64().unwrap() >= 2 && dead["lastStatus"] == 503, "tried, then given up: {body}");
    assert!(dead.get("nextAttemptAt").is_none(), "{body}");
    // Nothing more is sent for it once it is dead, though the receiver recovers.
    receiver.answer("200").await;
    c.put_execution("team-a", "run-2", &Doc::new("web").phase("Succeeded")).await;
    let seen = receiver.until("the next run's message arrives", |seen| !accepted(seen).is_empty()).await;
    assert_eq!(accepted(seen).len(), 1);
    assert_ne!(accepted(seen)[0]["id"], dead["id"], "the dead message is not sent again");
    let metrics = reqwest::get(c.service.metrics.as_deref().unwrap()).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("execwatch_notifications_dead_lettered_total{namespace=\"team-a\"} 1"), "{metrics}");
}

/// A message never tried (its destination refused) is given up on at the maximum age too, and
/// counted as dead-lettered like one that failed.
#[tokio::test]
async fn a_message_never_tried_is_dead_lettered_at_the_maximum_age_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySettings { max_age: Duration::from_secs(3), ..NotifySettings::default() };
    let Some((c, kubectl)) = cluster_with(dir.path(), notify).await else { return };
    let (port, reached) = counting_listener("127.0.0.2:0").await;
    subscribe(&kubectl, "team-a", "refused", &format!("http://127.0.0.2:{port}/"), OLD_KEY, "    runs: [Succeeded]")
        .await;
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    let s = wait_status(&kubectl, "team-a", "refused", "dead-lettered", |s| s["deadLettered"] == 1).await;
    assert_eq!(s["waiting"], 0, "{s}");
    let (_, body) = c.service.get("/api/v1/namespaces/team-a/deliveries?state=dead").await;
    assert_eq!(body["items"][0]["attempts"], 0, "never tried: {body}");
    let metrics = reqwest::get(c.service.metrics.as_deref().unwrap()).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("execwatch_notifications_dead_lettered_total{namespace=\"team-a\"} 1"), "{metrics}");
    assert_eq!(reached.load(Ordering::SeqCst), 0, "nothing reached the refused destination");
}

#[tokio::test]
async fn a_template_gives_a_receiver_its_own_shape() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    let Some((c, kubectl)) = cluster(dir.path()).await else { return };
    // As a Slack incoming webhook takes it.
    let template = r#"{"text": "{{pipeline}} reached {{environment}} ({{transition}}): {{subject}}"}"#;
    let subscription = format!(
        "apiVersion: pipelines.gitops.dev/v1alpha1\nkind: NotificationSubscription\nmetadata:\n  name: slack\n  namespace: team-a\n\
         spec:\n  transitions:\n    environments:\n      prod: [Succeeded]\n  template: '{template}'\n  destination:\n    secretRef:\n      name: slack\n"
    );
    subscribe(&kubectl, "team-a", "slack", &receiver.url(), OLD_KEY, "    runs: [Failed]").await;
    kubectl.ok(&["apply", "-f", "-"], Some(&subscription)).await;
    wait_status(&kubectl, "team-a", "slack", "ready", |s| {
        condition(s, "Ready")["status"] == "True" && s["observedGeneration"] == 2
    })
    .await;
    let doc = Doc::new("web").phase("Succeeded").environments(&[("prod", "Succeeded")]);
    c.put_execution("team-a", "run-1", &doc).await;
    let seen = receiver.until("the templated message arrives", |seen| !accepted(seen).is_empty()).await;
    let message = accepted(seen)[0];
    assert_eq!(message["contentType"], "application/json");
    assert_eq!(message["verified"], true, "signed all the same");
    assert_eq!(message["event"]["text"], "web reached prod (environment/prod/Succeeded): team-a/run-1");

    let broken = subscription
        .replace("{{pipeline}}", "{{password}}")
        .replace("name: slack\n  namespace", "name: broken\n  namespace");
    kubectl.ok(&["apply", "-f", "-"], Some(&broken)).await;
    let s = wait_status(&kubectl, "team-a", "broken", "refused", |s| condition(s, "Ready")["reason"] == "InvalidSpec")
        .await;
    assert!(
        condition(&s, "Ready")["message"].as_str().unwrap().contains("placeholder \"password\" is not a field"),
        "{s}"
    );
}

/// A listener that accepts connections and never answers, holding them.
async fn hanging_listener() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[tokio::test]
async fn a_hanging_receiver_delays_no_other_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut receiver) = Receiver::start(&[OLD_KEY]).await else { return };
    let Some((c, kubectl)) = cluster(dir.path()).await else { return };
    let stuck = format!("http://127.0.0.1:{}/hook", hanging_listener().await);
    subscribe(&kubectl, "team-a", "stuck", &stuck, OLD_KEY, "    runs: [Succeeded]").await;
    subscribe(&kubectl, "team-a", "prompt", &receiver.url(), OLD_KEY, "    runs: [Succeeded]").await;
    for name in ["stuck", "prompt"] {
        wait_status(&kubectl, "team-a", name, "ready", |s| condition(s, "Ready")["status"] == "True").await;
    }
    let started = std::time::Instant::now();
    for i in 0..20 {
        c.put_execution("team-a", &format!("run-{i}"), &Doc::new("web").phase("Succeeded")).await;
    }
    receiver.until("every run reaches the prompt receiver", |seen| accepted(seen).len() >= 20).await;
    // The stuck receiver's attempts (at most --notify-concurrency at once) wait 10 s for an
    // answer; the other subscription's messages did not wait behind them.
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    let s = wait_status(&kubectl, "team-a", "stuck", "the stuck receiver is named", |s| {
        condition(s, "Failing")["status"] == "True"
    })
    .await;
    assert!(condition(&s, "Failing")["message"].as_str().unwrap().contains("no answer"), "{s}");
}

#[tokio::test]
async fn without_the_crd_the_module_says_so_and_follows_it_once_installed() {
    let dir = tempfile::tempdir().unwrap();
    let archive = ArchiveSettings::new(
        format!("sqlite:{}", dir.path().join("history.db").display()).parse().unwrap(),
        Duration::from_secs(86400),
    );
    let setup = Setup { archive: Some(archive), notify: Some(NotifySettings::default()), ..Setup::default() };
    let c = Cluster::launch(&["team-a"], &["team-a"], fast_watch(), setup).await;
    let module = wait_until_within("the module names the missing CRD", Duration::from_secs(30), || async {
        let m = c.module("notifications").await;
        m["lastError"].as_str().is_some_and(|e| e.contains("CRD is not installed")).then_some(m)
    })
    .await;
    assert_eq!(module["ready"], false, "{module}");
    // Notifications never hold the service's readiness back.
    c.wait_ready().await;
    assert_eq!(c.module("notifications").await["ready"], false);
    let kubectl = Kubectl::new(dir.path(), &c.sim.kubeconfig());
    let crd =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/notifications/crd-notificationsubscription.yaml");
    let Some(_) = kubectl.ok(&["apply", "-f", crd.to_str().unwrap()], None).await else { return };
    wait_until_within("the module follows the CRD", Duration::from_secs(30), || async {
        let m = c.module("notifications").await;
        (m["ready"] == true && m.get("lastError").is_none()).then_some(())
    })
    .await;
}
