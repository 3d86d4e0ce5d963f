//! Figures for execwatch, printed: memory per execution in the index, list throughput as a ratio
//! of a bare hyper server answering the same bytes, and change-to-visible latency through the
//! Kubernetes source (simulator over loopback). Run: `cargo bench --bench figures`.
//!
//! Load is a closed loop of concurrent keep-alive clients on loopback, bounded in time.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use execwatch::access::{Access, AccessSettings};
use execwatch::api::{PageLimits, ServerSettings};
use execwatch::fixtures::{Cm, Doc};
use execwatch::index::{Decoded, Index};
use execwatch::source::DirSource;
use execwatch::source::dir::max_file_bytes;
use execwatch::source::kube::WatchSettings;
use execwatch::validate::{Limits, SchemaRegistry};
use execwatch::{Service, Sources};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use serde::Deserialize;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// Counts live heap bytes, so memory per execution is exact rather than read off RSS.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const CONCURRENCY: usize = 32;
const LOAD_SECONDS: u64 = 3;

/// How the benchmark's services watch the simulator.
fn watch_settings() -> WatchSettings {
    WatchSettings {
        label_selector: "pipelines.gitops.dev/execution=true".into(),
        watch_timeout: Duration::from_secs(290),
        backoff_max: Duration::from_secs(1),
    }
}

fn client_for(sim: &k8s_sim::Sim) -> kube::Client {
    kube::Client::try_from(kube::Config::new(sim.url().parse::<http::Uri>().expect("url"))).expect("client")
}

fn registry() -> Arc<SchemaRegistry> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    Arc::new(SchemaRegistry::load(&dir, Limits::default()).expect("schemas"))
}

fn execution(registry: &SchemaRegistry, ns: &str, i: usize) -> Decoded {
    let doc = Doc::new(&format!("pipeline-{}", i % 50)).version(&format!("1.{i}.0")).started_at(&format!(
        "2026-{:02}-{:02}T{:02}:00:00Z",
        1 + i % 12,
        1 + i % 28,
        i % 24
    ));
    registry.decode(&Cm::new(ns, &format!("run-{i}")).doc(&doc).build())
}

/// Heap bytes the index holds per execution, after the decoded documents it was built from
/// are gone.
fn memory_per_execution(n: usize) {
    let registry = registry();
    let index = Index::new(Duration::from_secs(60));
    index.register("bench", Some("bench"));
    let region = Region::new(GLOBAL);
    let decoded: Vec<Decoded> = (0..n).map(|i| execution(&registry, "bench", i)).collect();
    index.reset("bench", decoded);
    let stats = region.change();
    let held = stats.bytes_allocated.saturating_sub(stats.bytes_deallocated) as u64;
    let (executions, _) = index.counts();
    println!(
        "memory: {} heap bytes per execution in the index ({executions} executions, {:.1} MiB)",
        held / n as u64,
        held as f64 / 1048576.0
    );
}

/// Requests per second that `CONCURRENCY` keep-alive clients get from `url` in `LOAD_SECONDS`.
async fn load(url: &str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (url, done, client) = (url.to_owned(), done.clone(), reqwest::Client::new());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let response = client.get(&url).send().await.expect("request");
                    assert_eq!(response.status(), 200, "{url}");
                    let body = response.bytes().await.expect("body");
                    assert!(!body.is_empty());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    done.load(Ordering::Relaxed) as f64 / LOAD_SECONDS as f64
}

/// A bare hyper server answering every request with `body`.
async fn bare_hyper(body: Bytes) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        let response =
                            hyper::Response::builder().header("content-type", "application/json").body(Full::new(body));
                        Ok::<_, Infallible>(response.expect("response"))
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    url
}

/// The `oha` load generator: on PATH, or installed once under `target/tools` (a few minutes).
fn oha() -> std::path::PathBuf {
    if let Some(path) = which("oha") {
        return path;
    }
    let root = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/tools"));
    let bin = root.join("bin/oha");
    if !bin.exists() {
        println!("installing the oha load generator into {} (once; takes a few minutes)", root.display());
        let status = std::process::Command::new("cargo")
            .args(["install", "oha", "--locked", "--quiet", "--root"])
            .arg(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo install oha failed");
    }
    bin
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|path| path.is_file())
}

/// Rounds of alternating oha runs whose medians are reported.
const ROUNDS: usize = 5;

fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

/// What one oha run measured.
struct Measured {
    per_second: f64,
    p99: Duration,
}

/// Runs oha against `url` for 2 s on the second core, 32 connections: as fast as it can, or at
/// a fixed `rate` with latency measured from when each request was due.
fn measure(oha: &std::path::Path, url: &str, token: Option<&str>, rate: Option<u32>) -> Measured {
    let mut command = std::process::Command::new("taskset");
    command.args(["-c", "1"]).arg(oha).args(["-z", "2s", "-c", "32", "--no-tui", "--output-format", "json"]);
    if let Some(rate) = rate {
        command.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = command.arg(url).output().expect("oha runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("oha's JSON report");
    let codes = report["statusCodeDistribution"].as_object().expect("status codes");
    assert!(codes.keys().all(|code| code == "200"), "{url}: {codes:?}");
    let seconds = |v: &serde_json::Value| Duration::from_secs_f64(v.as_f64().unwrap_or_default());
    Measured {
        per_second: report["summary"]["requestsPerSec"].as_f64().unwrap_or_default(),
        p99: seconds(&report["latencyPercentiles"]["p99"]),
    }
}

/// Throughput and fixed-rate latency of GET one and a list page of 50 with `--auth kubernetes`
/// on a warm cache, beside the same service without auth, both on one simulator's data.
async fn access_cost() {
    let sim = k8s_sim::Sim::start().await.expect("simulator");
    sim.set_token_file("bench-token,dashboard,1,\"readers\"\n").expect("tokens");
    let client = client_for(&sim);
    let namespaces = ["bench-a", "bench-b"];
    for ns in namespaces {
        sim.create_namespace(ns);
    }
    grant_readers(&client).await;
    for i in 0..2000 {
        let ns = namespaces[i % 2];
        let cm = Cm::new(ns, &format!("run-{i}")).doc(&Doc::new(&format!("pipeline-{}", i % 50))).build();
        kube::Api::<ConfigMap>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let watch = watch_settings();
    let sources =
        Sources::Kube { client: client.clone(), namespaces: namespaces.map(String::from).to_vec().into(), watch };
    let settings = AccessSettings {
        allow_ttl: Duration::from_secs(600),
        deny_ttl: Duration::from_secs(600),
        ..AccessSettings::default()
    };
    let open = start_with(sources.clone(), Access::open()).await;
    let guarded = start_with(sources, Access::kubernetes(client, settings)).await;
    for (base, token) in [(&open, None), (&guarded, Some("bench-token"))] {
        let url = format!("{base}/api/v1/executions?limit=500");
        loop {
            let mut request = reqwest::Client::new().get(&url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let body: serde_json::Value = request.send().await.expect("list").json().await.expect("json");
            if body["items"].as_array().is_some_and(|i| i.len() == 500) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let oha = oha();
    for (what, path) in
        [("GET one", "/api/v1/namespaces/bench-a/executions/run-0"), ("list 50", "/api/v1/executions?limit=50")]
    {
        let body = reqwest::get(format!("{open}{path}")).await.expect("get").bytes().await.expect("body");
        let bare = bare_hyper(body).await;
        let run = |url: String, token: Option<&'static str>, rate| {
            let oha = oha.clone();
            tokio::task::spawn_blocking(move || measure(&oha, &url, token, rate))
        };
        // This machine's throughput drifts by tens of percent from one second to the next: runs
        // alternate, and the medians of ROUNDS rounds are compared.
        let (mut plain, mut authed, mut ceiling, mut ratios, mut p99s, mut bare_p99s) = Default::default();
        for _ in 0..ROUNDS {
            let p = run(format!("{open}{path}"), None, None).await.expect("oha").per_second;
            let a = run(format!("{guarded}{path}"), Some("bench-token"), None).await.expect("oha").per_second;
            let c = run(bare.clone(), None, None).await.expect("oha").per_second;
            let fixed = run(format!("{guarded}{path}"), Some("bench-token"), Some(2000)).await.expect("oha");
            let fixed_bare = run(bare.clone(), None, Some(2000)).await.expect("oha");
            for (all, value) in [(&mut plain, p), (&mut authed, a), (&mut ceiling, c), (&mut ratios, a / p)] {
                Vec::push(all, value);
            }
            Vec::push(&mut p99s, fixed.p99);
            Vec::push(&mut bare_p99s, fixed_bare.p99);
        }
        println!(
            "access: {what}: {:.0}/s with --auth kubernetes (warm cache) vs {:.0}/s without: ratio {:.2} (bare hyper on the same bytes: {:.0}/s); at 2000 req/s with auth p99 {:?} (bare hyper p99 {:?}); medians of {ROUNDS} alternating rounds",
            median(authed),
            median(plain),
            median(ratios),
            median(ceiling),
            median(p99s),
            median(bare_p99s),
        );
    }
    let reviews = sim.requests("create", "tokenreviews.authentication.k8s.io", "");
    let decisions = sim.requests("create", "subjectaccessreviews.authorization.k8s.io", "");
    println!("access: the whole run made {reviews} TokenReview(s) and {decisions} SubjectAccessReview(s)");
}

/// Binds the shipped executions reader to the group `readers`, cluster-wide.
async fn grant_readers(client: &kube::Client) {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let rbac = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/base/rbac-cluster.yaml"))
        .expect("rbac");
    let role = serde_yaml::Deserializer::from_str(&rbac)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .find(|doc| doc["metadata"]["name"] == "execwatch-executions-reader")
        .expect("the reader ClusterRole");
    let role: ClusterRole = serde_yaml::from_value(role).expect("ClusterRole");
    kube::Api::<ClusterRole>::all(client.clone()).create(&PostParams::default(), &role).await.expect("role");
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "readers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "execwatch-executions-reader"},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "readers"}]
    }))
    .expect("binding");
    kube::Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
}

async fn start(sources: Sources) -> String {
    start_with(sources, Access::open()).await
}

async fn start_with(sources: Sources, access: Access) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let modules = execwatch::modules::ALL.iter().map(|m| m.to_string()).collect();
    let service = Service {
        sources,
        registry: registry(),
        staleness: Duration::from_secs(60),
        page: PageLimits::default(),
        server: ServerSettings::default(),
        access,
        limits: execwatch::api::CallerLimits::new(64, None),
        modules,
    };
    tokio::spawn(service.run(listener, std::future::pending()));
    base
}

async fn throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One file per execution, as the directory source bounds each file's size.
    for i in 0..2000 {
        let doc = Doc::new(&format!("pipeline-{}", i % 50)).started_at(&format!(
            "2026-01-01T{:02}:{:02}:00Z",
            i / 60 % 24,
            i % 60
        ));
        let indented: String = doc.yaml().lines().map(|l| format!("    {l}\n")).collect();
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: run-{i}\n  namespace: bench\n  labels:\n    pipelines.gitops.dev/execution: \"true\"\ndata:\n  execution.yaml: |\n{indented}"
        );
        std::fs::write(dir.path().join(format!("run-{i}.yaml")), manifest).expect("write");
    }
    let selector = "pipelines.gitops.dev/execution=true".parse().expect("selector");
    let base = start(Sources::Dir(DirSource {
        path: dir.path().to_owned(),
        selector,
        interval: Duration::from_secs(60),
        max_file_bytes: max_file_bytes(Limits::default().max_document_bytes),
    }))
    .await;
    let url = format!("{base}/api/v1/executions?limit=50");
    let body = loop {
        let response = reqwest::get(&url).await.expect("list");
        let body = response.bytes().await.expect("body");
        if body.windows(10).filter(|w| w == b"\"pipeline\"").count() == 50 {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let served = load(&url).await;
    let bare = load(&bare_hyper(body.clone()).await).await;
    println!(
        "throughput: {served:.0} lists/s of 50 executions ({} bytes) vs {bare:.0}/s from bare hyper on the same bytes: ratio {:.2} ({CONCURRENCY} clients, {LOAD_SECONDS}s each)",
        body.len(),
        served / bare
    );
}

async fn latency(samples: usize) {
    let sim = k8s_sim::Sim::start().await.expect("simulator");
    sim.create_namespace("bench");
    let client = client_for(&sim);
    let watch = watch_settings();
    let base = start(Sources::Kube { client: client.clone(), namespaces: vec!["bench".into()].into(), watch }).await;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "bench");
    let http = reqwest::Client::new();
    while http.get(format!("{base}/readyz")).send().await.expect("readyz").status() != 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let cm = Cm::new("bench", &format!("run-{i}")).doc(&Doc::new("bench")).build();
        let started = Instant::now();
        api.create(
            &PostParams::default(),
            &ConfigMap { metadata: kube::api::ObjectMeta { resource_version: None, ..cm.metadata }, ..cm },
        )
        .await
        .expect("create");
        let url = format!("{base}/api/v1/namespaces/bench/executions/run-{i}");
        while http.get(&url).send().await.expect("get").status() != 200 {
            tokio::task::yield_now().await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "change-to-visible: p50 {:?}, p99 {:?}, max {:?} over {samples} writes (kube-rs writer, simulator, watch, index, HTTP)",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    // The service (this process) on the first core, oha on the second (see `measure`).
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-cp", "0", &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pinned {
        println!("note: taskset could not pin this process to core 0; figures share cores");
    }
    memory_per_execution(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        throughput().await;
        latency(200).await;
        access_cost().await;
    });
}
