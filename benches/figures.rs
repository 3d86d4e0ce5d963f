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
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// Counts live heap bytes, so memory per execution is exact rather than read off RSS.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const CONCURRENCY: usize = 32;
const LOAD_SECONDS: u64 = 3;

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
                    let body = client.get(&url).send().await.expect("request").bytes().await.expect("body");
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

async fn start(sources: Sources) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let modules = execwatch::modules::ALL.iter().map(|m| m.to_string()).collect();
    let service = Service {
        sources,
        registry: registry(),
        staleness: Duration::from_secs(60),
        page: PageLimits::default(),
        server: ServerSettings::default(),
        access: execwatch::access::Access::open(),
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
    let config = kube::Config::new(sim.url().parse::<http::Uri>().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let watch = WatchSettings {
        label_selector: "pipelines.gitops.dev/execution=true".into(),
        watch_timeout: Duration::from_secs(290),
        backoff_max: Duration::from_secs(1),
    };
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
    memory_per_execution(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        throughput().await;
        latency(200).await;
    });
}
