//! Notifications: how soon a transition reaches its receiver, how many deliveries a second the
//! service keeps up with, and what messages waiting on a dead receiver cost. The service runs as
//! its own binary over the simulator, with a SQLite archive (the outbox); the receiver is a
//! bare hyper server in this process, answering `204` (or `503` while it plays dead) and noting
//! when each run's first attempt arrived.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use execwatch::fixtures::{Cm, Doc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{DynamicObject, PostParams};

use crate::served::Served;

/// Subscriptions sharing the sustained load (each is bounded to `--notify-rate` on its own).
const SUBSCRIPTIONS: usize = 4;
/// Runs written one at a time, for the latency.
const PACED: usize = 200;
/// Transitions a second in the sustained run, and for how long by default
/// (`EXECWATCH_BENCH_NOTIFY_SECONDS` sets it).
const SUSTAINED_RATE: usize = 200;
const SUSTAINED_SECONDS: usize = 60;

pub struct Figures {
    /// From a run's write to its message's first attempt: p50, p95, max.
    pub latency: (Duration, Duration, Duration),
    pub sustained_rate: f64,
    /// RSS every 10 s of the sustained run.
    pub sustained_rss: Vec<u64>,
    pub waiting: usize,
    /// RSS with the runs served and nothing waiting, then with a message of each waiting.
    pub waiting_rss: (u64, u64),
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    first: Mutex<HashMap<String, Instant>>,
    accepted: AtomicUsize,
    dead: AtomicBool,
}

pub async fn run(waiting: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = k8s_sim::Sim::start().await.expect("simulator");
    sim.create_namespace("team");
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().expect("url"))).expect("client");
    let seen = Arc::new(Seen::default());
    let port = receive(seen.clone()).await;
    subscribe(&client, port).await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig()).expect("kubeconfig");
    let archive = format!("sqlite:{}", dir.path().join("history.db").display());
    let args = ["--namespaces", "team", "--archive", &archive, "--notify-allow", "127.0.0.1"].map(str::to_owned);
    let (served, _) = Served::start(&args, &[("KUBECONFIG", kubeconfig.display().to_string())]).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client, "team");

    let latency = paced(&configmaps, &seen).await;
    let (sustained_rate, sustained_rss) = sustained(&configmaps, &seen, &served).await;
    let archive_file = dir.path().join("history.db");
    let waiting_rss = dead_receiver(&configmaps, &seen, (&served, &archive_file), waiting).await;
    Figures { latency, sustained_rate, sustained_rss, waiting, waiting_rss }
}

/// A run of pipeline `p{i % SUBSCRIPTIONS}` in `phase`, started now.
fn run_of(i: usize, name: &str, phase: &str) -> ConfigMap {
    let started = jiff::Timestamp::now().to_string();
    let doc = Doc::new(&format!("p{}", i % SUBSCRIPTIONS)).started_at(&started).phase(phase);
    Cm::new("team", name).doc(&doc.environments(&[("prod", phase)])).build()
}

/// Writes runs one every 50 ms; the latency of each run's first attempt.
async fn paced(configmaps: &Api<ConfigMap>, seen: &Seen) -> (Duration, Duration, Duration) {
    let mut written = HashMap::new();
    for i in 0..PACED {
        let name = format!("paced-{i}");
        configmaps.create(&PostParams::default(), &run_of(i, &name, "Succeeded")).await.expect("create");
        written.insert(format!("team/{name}"), Instant::now());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_accepted(seen, PACED).await;
    let first = seen.first.lock().unwrap();
    let mut latencies: Vec<Duration> =
        written.iter().map(|(subject, at)| first[subject].saturating_duration_since(*at)).collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), at(1.0))
}

/// Writes `SUSTAINED_RATE` transitions a second for `sustained_seconds()` (new runs, each deleted two
/// seconds later, so the live executions stay as many and RSS shows what notifications hold);
/// the deliveries a second from the first write until the last is accepted, and the RSS every 5 s.
async fn sustained(configmaps: &Api<ConfigMap>, seen: &Seen, served: &Served) -> (f64, Vec<u64>) {
    let before = seen.accepted.load(Ordering::SeqCst);
    let started = Instant::now();
    let mut rss = Vec::new();
    let seconds = sustained_seconds();
    for second in 0..seconds {
        let tick = started + Duration::from_secs(second as u64);
        tokio::time::sleep_until(tick.into()).await;
        let writes = (0..SUSTAINED_RATE).map(|i| {
            let name = format!("sustained-{second}-{i}");
            async move { configmaps.create(&PostParams::default(), &run_of(i, &name, "Succeeded")).await }
        });
        for written in futures::future::join_all(writes).await {
            written.expect("create");
        }
        if let Some(gone) = second.checked_sub(2) {
            let deletes = (0..SUSTAINED_RATE).map(|i| {
                let name = format!("sustained-{gone}-{i}");
                async move { configmaps.delete(&name, &Default::default()).await }
            });
            futures::future::join_all(deletes).await.into_iter().for_each(|d| drop(d.expect("delete")));
        }
        if second % 10 == 9 {
            rss.push(served.rss());
        }
    }
    let total = seconds * SUSTAINED_RATE;
    wait_accepted(seen, before + total).await;
    (total as f64 / started.elapsed().as_secs_f64(), rss)
}

/// Writes `n` running runs, then finishes each while the receiver answers 503: RSS before the
/// finishing writes and once every message of them waits.
async fn dead_receiver(
    configmaps: &Api<ConfigMap>,
    seen: &Seen,
    (served, dir): (&Served, &std::path::Path),
    n: usize,
) -> (u64, u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let writes = chunk.iter().map(|i| {
            let name = format!("dead-{i}");
            async move { configmaps.create(&PostParams::default(), &run_of(*i, &name, "Running")).await }
        });
        futures::future::join_all(writes).await.into_iter().for_each(|w| drop(w.expect("create")));
    }
    seen.dead.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = served.rss();
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let writes = chunk.iter().map(|i| {
            let name = format!("dead-{i}");
            async move {
                let mut cm = run_of(*i, &name, "Succeeded");
                cm.metadata.resource_version = configmaps.get(&name).await?.metadata.resource_version;
                configmaps.replace(&name, &PostParams::default(), &cm).await
            }
        });
        futures::future::join_all(writes).await.into_iter().for_each(|w| drop(w.expect("replace")));
    }
    wait_waiting(&format!("sqlite://{}", dir.display()), n).await;
    // Attempts go on meanwhile: RSS once they have run for a while.
    tokio::time::sleep(Duration::from_secs(10)).await;
    (before, served.rss())
}

/// Waits until `n` messages wait in the outbox.
async fn wait_waiting(url: &str, n: usize) {
    sqlx::any::install_default_drivers();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(pool) = sqlx::AnyPool::connect(url).await {
            let sql = "SELECT COUNT(*) FROM notification_outbox WHERE state = 'waiting'";
            let count: Option<i64> = sqlx::query_scalar(sql).fetch_one(&pool).await.ok();
            pool.close().await;
            if count.is_some_and(|c| c as usize >= n) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the messages were not written within 10 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sustained_seconds() -> usize {
    std::env::var("EXECWATCH_BENCH_NOTIFY_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(SUSTAINED_SECONDS)
}

async fn wait_accepted(seen: &Seen, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.accepted.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "deliveries stalled at {}", seen.accepted.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The CRD, a Secret and a subscription per pipeline, through the API as kubectl would.
async fn subscribe(client: &kube::Client, port: u16) {
    let crd = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/notifications/crd-notificationsubscription.yaml");
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_yaml::from_str(&std::fs::read_to_string(crd).expect("CRD")).expect("CRD parses");
    Api::all(client.clone()).create(&PostParams::default(), &crd).await.expect("CRD");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hook"},
        "data": {
            "url": b64(&format!("http://127.0.0.1:{port}/hook")),
            "signingKeys": b64("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        },
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), "team").create(&PostParams::default(), &secret).await.expect("secret");
    let gvk = kube::api::GroupVersionKind::gvk("pipelines.gitops.dev", "v1alpha1", "NotificationSubscription");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "notificationsubscriptions");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "team", &resource);
    for i in 0..SUBSCRIPTIONS {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "pipelines.gitops.dev/v1alpha1", "kind": "NotificationSubscription",
            "metadata": {"name": format!("p{i}")},
            "spec": {"runs": {"pipelines": [format!("p{i}")]}, "transitions": {"runs": ["Succeeded"]},
                     "destination": {"secretRef": {"name": "hook"}}},
        }))
        .expect("subscription");
        api.create(&PostParams::default(), &object).await.expect("subscription");
    }
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The receiver: notes each subject's first attempt, answers 204, or 503 while dead.
async fn receive(seen: Arc<Seen>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = seen.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    let arrived = Instant::now();
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let subject = event["subject"].as_str().unwrap_or_default().to_owned();
                    seen.first.lock().unwrap().entry(subject).or_insert(arrived);
                    let dead = seen.dead.load(Ordering::SeqCst);
                    if !dead {
                        seen.accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    let status = if dead { 503 } else { 204 };
                    let answer = hyper::Response::builder().status(status).body(Full::new(Bytes::new()));
                    Ok::<_, Infallible>(answer.expect("answer"))
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service));
        }
    });
    port
}

pub fn print(f: &Figures) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("\n| figure | target | measured |");
    println!("|---|---|---|");
    println!(
        "| transition to first attempt, p50 / p95 / max ({PACED} runs, one every 50 ms) | p95 ≤ 2 s | {:.0} / {:.0} / {:.0} ms |",
        ms(f.latency.0),
        ms(f.latency.1),
        ms(f.latency.2)
    );
    let rss: Vec<String> = f.sustained_rss.iter().map(|r| format!("{:.0}", mib(*r))).collect();
    println!(
        "| deliveries a second, {SUSTAINED_RATE} transitions/s for {} s over {SUBSCRIPTIONS} subscriptions | 200/s, RSS flat | {:.0}/s, RSS every 10 s: {} MiB |",
        sustained_seconds(),
        f.sustained_rate,
        rss.join(", ")
    );
    println!(
        "| {} messages waiting on a dead receiver | ≤ 20 MB | {:+.1} MiB ({:.0} → {:.0} MiB) |",
        f.waiting,
        mib(f.waiting_rss.1) - mib(f.waiting_rss.0),
        mib(f.waiting_rss.0),
        mib(f.waiting_rss.1)
    );
}
