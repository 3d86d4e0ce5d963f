//! Figures at scale, for one number of executions and one source: ready time, memory against
//! the raw payload, every endpoint's throughput and latency beside the ceiling serving the same
//! bytes, fixed-rate latency, idle CPU, change-to-visible under load, and memory after 1 000
//! changes.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};

use crate::data::{self, NAMESPACES};
use crate::load::{self, Measured, median};
use crate::served::Served;

/// Alternating rounds of (service, ceiling) whose medians are reported.
const ROUNDS: usize = 3;
/// Changes timed for change-to-visible.
const SAMPLES: usize = 20;
/// The directory source's poll interval here, the service's default.
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Dir,
    Kube,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Dir => "--from-dir",
            Source::Kube => "simulator",
        }
    }
}

pub struct Endpoint {
    pub name: &'static str,
    pub served: Measured,
    pub ceiling: Measured,
    /// Median over rounds of served ÷ ceiling req/s.
    pub ratio: f64,
}

pub struct Row {
    pub source: Source,
    pub n: usize,
    pub payload: u64,
    pub ready: Duration,
    pub rss: u64,
    pub peak: u64,
    pub idle_cpu: f64,
    pub endpoints: Vec<Endpoint>,
    /// GET one at 2 000 req/s: the service's p99 and the ceiling's.
    pub fixed: (Duration, Duration),
    /// Change-to-visible under load, written the usual way (a temporary file renamed over the
    /// manifest; a patch through the API server): p50, p99, max.
    pub visible: (Duration, Duration, Duration),
    /// The same, written in place (the directory source only).
    pub visible_in_place: Option<(Duration, Duration, Duration)>,
    pub after_changes: u64,
}

/// Where executions are written: files, or the simulator through kube-rs.
enum Writer {
    Dir(tempfile::TempDir),
    Kube { _sim: k8s_sim::Sim, client: kube::Client },
}

/// How a file is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Written aside and renamed over the manifest, as editors, config tools and most programs
    /// do (`name.yaml.tmp`, then `rename`), so no reader sees a torn file.
    Renamed,
    /// Truncated and written in place.
    InPlace,
}

impl Writer {
    async fn write(&self, i: usize, generation: usize, way: Way) {
        let e = data::execution(i, generation);
        match self {
            Writer::Dir(dir) => {
                let path = dir.path().join(format!("{}.yaml", e.name));
                if way == Way::InPlace {
                    std::fs::write(&path, e.manifest()).expect("write");
                    return;
                }
                let tmp = dir.path().join(format!("{}.yaml.tmp", e.name));
                std::fs::write(&tmp, e.manifest()).expect("write");
                std::fs::rename(&tmp, &path).expect("rename");
            }
            Writer::Kube { client, .. } => {
                let api = kube::Api::<ConfigMap>::namespaced(client.clone(), &e.namespace);
                let patch = serde_json::json!({"data": {"execution.yaml": e.document}});
                api.patch(&e.name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
            }
        }
    }
}

/// Writes `n` executions for `source`, returning the writer and the raw payload in bytes.
async fn populate(source: Source, n: usize) -> (Writer, u64) {
    match source {
        Source::Dir => {
            let dir = tempfile::tempdir().expect("tempdir");
            let payload = data::write_dir(dir.path(), n);
            // The data set's own writeback would otherwise compete with the service's start.
            let _ = std::process::Command::new("sync").status();
            (Writer::Dir(dir), payload)
        }
        Source::Kube => {
            let sim = k8s_sim::Sim::start().await.expect("simulator");
            for ns in 0..NAMESPACES {
                sim.create_namespace(&format!("ns-{ns}"));
            }
            let config = kube::Config::new(sim.url().parse::<http::Uri>().expect("url"));
            let client = kube::Client::try_from(config).expect("client");
            let creates = futures::stream::iter(0..n).map(|i| {
                let client = client.clone();
                async move {
                    let e = data::execution(i, 0);
                    let api = kube::Api::<ConfigMap>::namespaced(client, &e.namespace);
                    api.create(&PostParams::default(), &e.configmap()).await.expect("create");
                    e.document.len() as u64
                }
            });
            let payload = creates.buffer_unordered(32).fold(0, |sum, len| async move { sum + len }).await;
            (Writer::Kube { _sim: sim, client }, payload)
        }
    }
}

async fn start(writer: &Writer) -> (Served, Duration, Option<tempfile::NamedTempFile>) {
    match writer {
        Writer::Dir(dir) => {
            let poll = humantime::format_duration(POLL).to_string();
            let args =
                ["--from-dir".to_owned(), dir.path().display().to_string(), "--dir-poll-interval".to_owned(), poll];
            let (served, ready) = Served::start(&args, &[]).await;
            (served, ready, None)
        }
        Writer::Kube { _sim: sim, .. } => {
            let kubeconfig = tempfile::NamedTempFile::new().expect("kubeconfig");
            std::fs::write(kubeconfig.path(), sim.kubeconfig()).expect("kubeconfig");
            let namespaces: Vec<String> = (0..NAMESPACES).map(|ns| format!("ns-{ns}")).collect();
            let args = ["--namespaces".to_owned(), namespaces.join(",")];
            let env = [("KUBECONFIG", kubeconfig.path().display().to_string())];
            let (served, ready) = Served::start(&args, &env).await;
            (served, ready, Some(kubeconfig))
        }
    }
}

pub async fn run(oha: &Path, source: Source, n: usize) -> Row {
    let (writer, payload) = populate(source, n).await;
    let (served, ready, _kubeconfig) = start(&writer).await;
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let listed = get_ok(&http, &format!("{base}/api/v1/executions?limit=1")).await;
    assert!(listed.starts_with(b"{\"items\":[{"), "served");
    let rejections = get_ok(&http, &format!("{base}/api/v1/rejections")).await;
    assert!(rejections.starts_with(b"{\"items\":[]"), "every generated execution is valid");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, peak) = (served.rss(), served.peak());
    let cpu = served.cpu();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cpu = (served.cpu() - cpu) / 5.0;

    let one = n / 2;
    let one_url = format!("{base}/api/v1/namespaces/{}/executions/run-{one}", data::namespace(one));
    let endpoints = endpoints(oha, &served, &http, &one_url, n).await;
    let fixed = fixed_rate_p99(oha, &served, &http, &one_url).await;

    // Change-to-visible, with GET one at 1 000 req/s alongside: written the usual way, and
    // (files only) in place.
    let mut background = load::background(oha, &one_url, 600, 1000);
    let visible = change_to_visible(&writer, &http, &base, n, Way::Renamed, 1).await;
    let visible_in_place = match source {
        Source::Dir => Some(change_to_visible(&writer, &http, &base, n, Way::InPlace, SAMPLES + 1).await),
        Source::Kube => None,
    };
    let _ = background.kill();
    let _ = background.wait();
    let after_changes = memory_after_changes(&writer, &served, &http, n).await;
    Row { source, n, payload, ready, rss, peak, idle_cpu, endpoints, fixed, visible, visible_in_place, after_changes }
}

/// The body of a GET that must answer 200.
async fn get_ok(http: &reqwest::Client, url: &str) -> bytes::Bytes {
    let response = http.get(url).send().await.expect("get");
    assert_eq!(response.status(), 200, "{url}");
    response.bytes().await.expect("body")
}

/// Each endpoint's throughput against a bare hyper server answering its bytes, in alternating
/// rounds: the median ratio.
async fn endpoints(oha: &Path, served: &Served, http: &reqwest::Client, one_url: &str, n: usize) -> Vec<Endpoint> {
    let base = &served.base;
    let deep = deep_token(http, base, n / 2).await;
    let list_50 = format!("{base}/api/v1/executions?limit=50");
    let etag = http.get(&list_50).send().await.expect("get").headers()["etag"].to_str().expect("ETag").to_owned();
    let unchanged = format!("If-None-Match: {etag}");
    let paths = [
        // The floor: the same server, logging, metrics and request id around a handler that
        // does nothing but answer a few bytes. No endpoint can beat its ratio.
        ("livez (floor)", format!("{base}/livez")),
        ("GET one", one_url.to_owned()),
        ("list 50", list_50.clone()),
        ("list 50 unchanged (304)", list_50),
        ("by pipeline", format!("{base}/api/v1/executions?pipeline=pipeline-7&limit=50")),
        ("by phase", format!("{base}/api/v1/executions?phase=Failed&limit=50")),
        ("by environment", format!("{base}/api/v1/executions?environment=canary&limit=50")),
        ("by namespace", format!("{base}/api/v1/namespaces/ns-7/executions?limit=50")),
        (
            "label selector",
            format!("{base}/api/v1/executions?labelSelector=pipelines.gitops.dev/pipeline%3Dpipeline-7&limit=50"),
        ),
        ("deep page", format!("{base}/api/v1/executions?limit=50&continue={deep}")),
        ("pipelines page", format!("{base}/api/v1/pipelines?limit=50")),
    ];
    let mut endpoints = Vec::new();
    for (name, url) in paths {
        // A client that holds the page already: the ceiling answers it 304 with no body too.
        let conditional = name.ends_with("(304)");
        let status = if conditional { 304 } else { 200 };
        let request = Request { url: &url, header: conditional.then_some(unchanged.as_str()), rate: None, status };
        let ceiling_url = match conditional {
            true => load::bare_hyper(304, Default::default()).await,
            false => load::bare_hyper(200, get_ok(http, &url).await).await,
        };
        let (mut s, mut c, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let (served_run, ceiling_run) = alternate(oha, served, &request, &ceiling_url).await;
            ratios.push(served_run.per_second / ceiling_run.per_second);
            s.push(served_run);
            c.push(ceiling_run);
        }
        endpoints.push(Endpoint { name, served: middle(s), ceiling: middle(c), ratio: median(ratios) });
    }
    endpoints
}

/// GET one's p99 at a fixed 2 000 requests a second, served and ceiling.
async fn fixed_rate_p99(oha: &Path, served: &Served, http: &reqwest::Client, one_url: &str) -> (Duration, Duration) {
    let ceiling_url = load::bare_hyper(200, get_ok(http, one_url).await).await;
    let (mut s, mut c) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let request = Request { url: one_url, header: None, rate: Some(2000), status: 200 };
        let (served_run, ceiling_run) = alternate(oha, served, &request, &ceiling_url).await;
        s.push(served_run.p99);
        c.push(ceiling_run.p99);
    }
    (median(s), median(c))
}

/// 1 000 changes spread over the data set, then the resident memory once they are all visible.
async fn memory_after_changes(writer: &Writer, served: &Served, http: &reqwest::Client, n: usize) -> u64 {
    let base = &served.base;
    let step = (n / 1000).max(1);
    let changed: Vec<usize> = (0..n).step_by(step).take(1000).collect();
    let writes = futures::stream::iter(changed.iter().map(|i| writer.write(*i, 5000, Way::Renamed)));
    writes.buffer_unordered(16).collect::<Vec<()>>().await;
    for i in &changed {
        let url = format!("{base}/api/v1/namespaces/{}/executions/run-{i}", data::namespace(*i));
        wait_for(http, &url, "\"message\":\"change 5000\"").await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    served.rss()
}

/// `SAMPLES` changes written `way`, from generation `first` on, each timed until it is served:
/// p50, p99, max.
async fn change_to_visible(
    writer: &Writer,
    http: &reqwest::Client,
    base: &str,
    n: usize,
    way: Way,
    first: usize,
) -> (Duration, Duration, Duration) {
    let mut times = Vec::with_capacity(SAMPLES);
    for s in 0..SAMPLES {
        let i = (s * 7919 + 13) % n;
        let generation = first + s;
        let started = Instant::now();
        writer.write(i, generation, way).await;
        let url = format!("{base}/api/v1/namespaces/{}/executions/run-{i}", data::namespace(i));
        let marker = format!("\"message\":\"change {generation}\"");
        wait_for(http, &url, &marker).await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[SAMPLES / 2], times[SAMPLES * 99 / 100], times[SAMPLES - 1])
}

/// What the load generator sends: `url`, with one extra header line, as fast as it can or at
/// a fixed `rate`; and the status every answer must have.
struct Request<'a> {
    url: &'a str,
    header: Option<&'a str>,
    rate: Option<u32>,
    status: u16,
}

/// One run against the service, then one against the ceiling with the service paused; both
/// answer with the same status.
async fn alternate(oha: &Path, served: &Served, request: &Request<'_>, ceiling: &str) -> (Measured, Measured) {
    let expect = request.status;
    let run = |url: String, header: Option<String>| {
        let (oha, rate) = (oha.to_owned(), request.rate);
        let measured = move || load::measure(&oha, &url, header.as_deref(), rate, expect);
        async move { tokio::task::spawn_blocking(measured).await.expect("oha") }
    };
    let served_run = run(request.url.to_owned(), request.header.map(str::to_owned)).await;
    served.pause();
    let ceiling_run = run(ceiling.to_owned(), None).await;
    served.resume();
    (served_run, ceiling_run)
}

/// The run of median throughput.
fn middle(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    runs[runs.len() / 2]
}

/// A continue token `skip` executions deep, found by walking pages of 500.
async fn deep_token(http: &reqwest::Client, base: &str, skip: usize) -> String {
    let mut token: Option<String> = None;
    let mut walked = 0;
    loop {
        let mut url = format!("{base}/api/v1/executions?limit=500");
        if let Some(t) = &token {
            url.push_str(&format!("&continue={t}"));
        }
        let page: serde_json::Value = http.get(&url).send().await.expect("list").json().await.expect("json");
        walked += page["items"].as_array().map_or(0, Vec::len);
        match page["continue"].as_str() {
            Some(next) if walked < skip.max(1) => token = Some(next.to_owned()),
            Some(next) => return next.to_owned(),
            None => return token.unwrap_or_default(),
        }
    }
}

/// Polls `url` every millisecond until its body holds `marker` (at most a minute).
async fn wait_for(http: &reqwest::Client, url: &str, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http.get(url).send().await.expect("get").bytes().await.expect("body");
        if body.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            return;
        }
        if Instant::now() > deadline {
            let base = &url[..url.find("/api/").unwrap_or(url.len())];
            let rejections = http.get(format!("{base}/api/v1/rejections")).send().await.expect("get");
            let rejections = rejections.text().await.expect("body");
            let prefix = |s: &str| s.chars().take(600).collect::<String>();
            panic!(
                "{url} never showed {marker}; it shows {}; rejections: {}",
                prefix(&String::from_utf8_lossy(&body)),
                prefix(&rejections)
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub fn print(rows: &[Row]) {
    let mib = |b: u64| b as f64 / 1048576.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\n| source | N | ready | payload | RSS (÷ payload) | target 50 MB + 3× | peak ÷ RSS | RSS after 1 000 changes | idle CPU | GET one p99 at 2 000/s (ceiling) | change-to-visible p50 / p99 / max, renamed | in place |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} s | {:.0} MiB | {:.0} MiB ({:.2}×) | {:.0} MiB | {:.2} | {:.0} MiB | {:.1} % | {:.2} ms ({:.2} ms) | {:.0} / {:.0} / {:.0} ms | {} |",
            r.source.name(),
            r.n,
            r.ready.as_secs_f64(),
            mib(r.payload),
            mib(r.rss),
            r.rss as f64 / r.payload as f64,
            50.0 + 3.0 * mib(r.payload),
            r.peak as f64 / r.rss as f64,
            mib(r.after_changes),
            r.idle_cpu * 100.0,
            ms(r.fixed.0),
            ms(r.fixed.1),
            ms(r.visible.0),
            ms(r.visible.1),
            ms(r.visible.2),
            r.visible_in_place.map_or("—".to_owned(), |(p50, p99, max)| format!(
                "{:.0} / {:.0} / {:.0} ms",
                ms(p50),
                ms(p99),
                ms(max)
            )),
        );
    }
    let names: Vec<&str> = rows.first().map(|r| r.endpoints.iter().map(|e| e.name).collect()).unwrap_or_default();
    println!(
        "\nEach cell: the service's req/s ÷ the ceiling's (median of {ROUNDS} alternating rounds), then the service's req/s and p50 / p99, and the ceiling's req/s. The directory source follows inotify (its poll fallback: every {POLL:?}).\n"
    );
    println!("| source | N | {} |", names.join(" | "));
    println!("|---|---|{}", "---|".repeat(names.len()));
    for r in rows {
        let cells: Vec<String> = r
            .endpoints
            .iter()
            .map(|e| {
                format!(
                    "**{:.2}** {:.1}k/s {:.1}/{:.1} ms (ceiling {:.1}k/s)",
                    e.ratio,
                    e.served.per_second / 1000.0,
                    ms(e.served.p50),
                    ms(e.served.p99),
                    e.ceiling.per_second / 1000.0,
                )
            })
            .collect();
        println!("| {} | {} | {} |", r.source.name(), r.n, cells.join(" | "));
    }
}
