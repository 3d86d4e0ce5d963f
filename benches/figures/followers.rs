//! Followers by the thousand: idle SSE streams and long polls, a quarter each of four kinds,
//! held by one service over 10 000 executions: what they cost in memory, and how soon every
//! one hears of a change. The followers are plain sockets in this process, moved to the second
//! core; the service runs alone on the first.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::data;
use crate::load::median;
use crate::served::Served;

/// Connections opened at once while the followers are set up.
const OPENING: usize = 256;

pub struct Figures {
    pub followers: usize,
    pub executions: usize,
    /// The service's resident memory before and with every follower held, in bytes.
    pub rss: (u64, u64),
    /// From the change being written to each follower hearing of it: p50, p99, max.
    pub woken: (Duration, Duration, Duration),
    pub within_a_second: usize,
}

/// One follower: its request, and what its answer says once it has heard of the change.
struct Follower {
    request: String,
    /// A stream's first event, before which it is not yet following.
    opened: Option<&'static str>,
    heard: &'static str,
}

pub async fn run(executions: usize, followers: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    data::write_dir(dir.path(), executions);
    let args = ["--from-dir".to_owned(), dir.path().display().to_string()];
    let (served, _) = Served::start(&args, &[]).await;
    let open_files = rlimit::increase_nofile_limit(u64::MAX).expect("the open-files limit");
    assert!(open_files as usize > followers + 100, "this process may open only {open_files} files");
    pin_self("1");
    let http = reqwest::Client::new();

    // The change to come: a new, newest run of a pipeline, in its namespace.
    let change = data::execution(executions, 1);
    let kinds = kinds(&http, &served.base, &change).await;
    // `EXECWATCH_BENCH_FOLLOWER_KIND=0`…`3`: every follower of that one kind, to tell their costs
    // apart; a value it cannot read stops the bench, as every knob's does.
    let one =
        crate::list("EXECWATCH_BENCH_FOLLOWER_KIND", "", |k| k.parse::<usize>().ok().filter(|k| *k < kinds.len()));
    let kinds = match one.first() {
        Some(&k) => &kinds[k..=k],
        None => &kinds[..],
    };
    let before = served.rss();
    let tasks = open(&served, kinds, followers).await;
    // Every long poll is held once the service counts every follower as waiting.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready: serde_json::Value =
            http.get(format!("{}/readyz", served.base)).send().await.expect("readyz").json().await.expect("json");
        if ready["waiting"].as_u64() == Some(followers as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of {followers} followers are held", ready["waiting"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = served.rss();

    let written = Instant::now();
    let path = dir.path().join(format!("{}.yaml", change.name));
    let tmp = dir.path().join(format!("{}.yaml.tmp", change.name));
    std::fs::write(&tmp, change.manifest()).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    let mut times = Vec::with_capacity(followers);
    for task in tasks {
        let at =
            tokio::time::timeout(Duration::from_secs(60), task).await.expect("every follower hears").expect("task");
        times.push(at.saturating_duration_since(written));
    }
    times.sort();
    let within_a_second = times.iter().filter(|t| **t <= Duration::from_secs(1)).count();
    pin_self("0");
    drop(served);
    let woken = (median(times.clone()), times[times.len() * 99 / 100], times[times.len() - 1]);
    Figures { followers, executions, rss: (before, held), woken, within_a_second }
}

/// The four kinds of follower, each waiting for `change`: streams of every and of one
/// namespace's executions, and long polls of the list and of the change's pipeline.
async fn kinds(http: &reqwest::Client, base: &str, change: &data::Execution) -> [Follower; 4] {
    let (ns, pipeline) = (&change.namespace, &change.pipeline);
    let etag = |path: String| {
        let http = http.clone();
        async move {
            let response = http.get(&path).send().await.expect("get");
            response.headers()["etag"].to_str().expect("ETag").to_owned()
        }
    };
    let host = "Host: execwatch\r\n";
    let list_tag = etag(format!("{base}/api/v1/executions?limit=1")).await;
    let pipeline_path = format!("/api/v1/namespaces/{ns}/pipelines/{pipeline}");
    let pipeline_tag = etag(format!("{base}{pipeline_path}")).await;
    let stream = |path: String| Follower {
        request: format!("GET {path} HTTP/1.1\r\n{host}Accept: text/event-stream\r\n\r\n"),
        opened: Some("event:snapshot"),
        heard: "event:added",
    };
    let poll = |path: String, tag: &str| Follower {
        request: format!("GET {path} HTTP/1.1\r\n{host}If-None-Match: {tag}\r\n\r\n"),
        opened: None,
        heard: "HTTP/1.1 200",
    };
    [
        stream("/api/v1/executions?limit=1".into()),
        stream(format!("/api/v1/namespaces/{ns}/executions?limit=1")),
        poll("/api/v1/executions?limit=1&timeoutSeconds=300".into(), &list_tag),
        poll(format!("{pipeline_path}?timeoutSeconds=300"), &pipeline_tag),
    ]
}

/// Opens `followers` connections, `OPENING` at a time, each a kind in turn: tasks that finish
/// when their follower hears the change, with when it did.
async fn open(served: &Served, kinds: &[Follower], followers: usize) -> Vec<tokio::task::JoinHandle<Instant>> {
    let address = served.base.trim_start_matches("http://").to_owned();
    let mut tasks = Vec::with_capacity(followers);
    for batch in (0..followers).collect::<Vec<_>>().chunks(OPENING) {
        let opening = batch.iter().map(|i| {
            let follower = &kinds[i % kinds.len()];
            let (address, request, opened) = (address.clone(), follower.request.clone(), follower.opened);
            async move {
                let mut socket = tokio::net::TcpStream::connect(&address).await.expect("connect");
                socket.write_all(request.as_bytes()).await.expect("request");
                let mut seen = Vec::new();
                if let Some(opened) = opened {
                    read_until(&mut socket, &mut seen, opened, Duration::from_secs(60)).await;
                }
                socket
            }
        });
        let sockets: Vec<_> = futures::stream::iter(opening).buffered(OPENING).collect().await;
        for (i, mut socket) in batch.iter().zip(sockets) {
            let marker = kinds[i % kinds.len()].heard;
            tasks.push(tokio::spawn(async move {
                // Held idle while the others are set up, then until the change.
                read_until(&mut socket, &mut Vec::new(), marker, Duration::from_secs(600)).await;
                Instant::now()
            }));
        }
    }
    tasks
}

/// Reads from `socket` into `seen` until it holds `marker`, with at most `idle` between reads.
async fn read_until(socket: &mut tokio::net::TcpStream, seen: &mut Vec<u8>, marker: &str, idle: Duration) {
    let mut chunk = [0u8; 4096];
    let found = |seen: &[u8]| seen.windows(marker.len()).any(|w| w == marker.as_bytes());
    while !found(seen) {
        let read = tokio::time::timeout(idle, socket.read(&mut chunk)).await;
        match read.unwrap_or_else(|_| panic!("nothing for {idle:?} while waiting for {marker:?}")).expect("read") {
            0 => panic!("the connection closed before {marker:?}: {}", String::from_utf8_lossy(seen)),
            n => seen.extend_from_slice(&chunk[..n]),
        }
    }
    seen.clear();
}

/// Moves every thread of this process to `core`.
fn pin_self(core: &str) {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("taskset").args(["-a", "-cp", core, &pid]).output();
}

pub fn print(f: &Figures) {
    let mib = |b: u64| b as f64 / 1048576.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\n| followers (SSE + long polls) | executions | RSS before → held (growth) | woken after a change p50 / p99 / max | woken within 1 s |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.0} → {:.0} MiB (+{:.0} MiB) | {:.0} / {:.0} / {:.0} ms | {} of {} |",
        f.followers,
        f.executions,
        mib(f.rss.0),
        mib(f.rss.1),
        mib(f.rss.1.saturating_sub(f.rss.0)),
        ms(f.woken.0),
        ms(f.woken.1),
        ms(f.woken.2),
        f.within_a_second,
        f.followers
    );
}
