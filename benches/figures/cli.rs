//! The command line at scale, against the release service over N realistic executions in the
//! simulator: how long `execwatch get executions` takes to page through all of them (500 a
//! page), and how soon `execwatch wait` prints a change after the service streams it. The CLI
//! runs on the second core, the service on the first.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::data;
use crate::served::Served;

/// Runs of each `get` output, and changes `wait` is timed on.
const GET_RUNS: usize = 5;
const WAITS: usize = 40;

pub struct Figures {
    pub executions: usize,
    /// Each output's slowest and median whole run.
    pub get: Vec<(&'static str, Duration, Duration)>,
    /// From the write to: a plain SSE reader's event, `wait`'s line, and `wait` after the reader.
    pub stream: Percentiles,
    pub wait: Percentiles,
    pub after_stream: Percentiles,
}

#[derive(Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

fn percentiles(mut ms: Vec<f64>) -> Percentiles {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Percentiles { p50: at(0.5), p99: at(0.99), max: at(1.0) }
}

/// The CLI on the second core.
fn cli(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", "1", env!("CARGO_BIN_EXE_execwatch")]).args(args).env("KUBECONFIG", "/nonexistent");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

pub async fn run(n: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sim, client) = data::simulator(n).await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig()).expect("kubeconfig");
    let namespaces: Vec<String> = (0..data::NAMESPACES).map(|ns| format!("ns-{ns}")).collect();
    let args = ["--namespaces".to_owned(), namespaces.join(",")];
    let (served, _) = Served::start(&args, &[("KUBECONFIG", kubeconfig.display().to_string())]).await;

    let mut get = Vec::new();
    for (name, output) in [("table", None), ("-o name", Some("name")), ("-o json", Some("json"))] {
        let mut times = Vec::new();
        for _ in 0..GET_RUNS {
            let mut args = vec!["get", "executions", "--server", &served.base];
            args.extend(output.map(|o| ["-o", o]).into_iter().flatten());
            let started = Instant::now();
            let out = cli(&args).output().await.expect("get runs");
            times.push(started.elapsed());
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
            assert!(lines >= n, "{name}: every execution printed ({lines} lines)");
        }
        times.sort();
        get.push((name, times[GET_RUNS - 1], times[GET_RUNS / 2]));
    }

    let api = Api::<ConfigMap>::namespaced(client.clone(), "ns-0");
    let (mut stream_ms, mut wait_ms, mut after_ms) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..WAITS {
        let name = format!("wait-{k}");
        let running = with_phase(&data::execution(k, 0), &name, "Running");
        api.create(&PostParams::default(), &running).await.expect("create");
        let mut wait = cli(&["wait", &format!("ns-0/{name}"), "--for", "phase=Succeeded", "--server", &served.base])
            .spawn()
            .expect("wait starts");
        let mut lines = BufReader::new(wait.stdout.take().expect("stdout")).lines();
        lines.next_line().await.expect("reads").expect("wait prints the run as it is");
        let mut reference = events(&served.base, &format!("/api/v1/namespaces/ns-0/executions/{name}")).await;
        assert!(reference.next().await.is_some(), "the reference reader's snapshot");

        let mut succeeded = with_phase(&data::execution(k, 0), &name, "Succeeded");
        succeeded.metadata.resource_version = api.get(&name).await.expect("get").metadata.resource_version;
        let written = Instant::now();
        api.replace(&name, &PostParams::default(), &succeeded).await.expect("replace");
        let (streamed, printed) = tokio::join!(
            async {
                reference.next().await.expect("the reference reader's event");
                written.elapsed()
            },
            async {
                lines.next_line().await.expect("reads").expect("wait prints the change");
                written.elapsed()
            }
        );
        assert!(wait.wait().await.expect("wait ends").success(), "the condition held");
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        stream_ms.push(ms(streamed));
        wait_ms.push(ms(printed));
        after_ms.push(ms(printed) - ms(streamed));
    }
    drop(served);
    Figures {
        executions: n,
        get,
        stream: percentiles(stream_ms),
        wait: percentiles(wait_ms),
        after_stream: percentiles(after_ms),
    }
}

/// Execution `k`'s document as ConfigMap `ns-0/name`, in `phase`.
fn with_phase(e: &data::Execution, name: &str, phase: &str) -> ConfigMap {
    let document: Vec<String> = e
        .document
        .lines()
        .map(|l| if l.starts_with("phase: ") { format!("phase: {phase}") } else { l.to_owned() })
        .collect();
    let e = data::Execution {
        namespace: "ns-0".to_owned(),
        name: name.to_owned(),
        pipeline: e.pipeline.clone(),
        document: document.join("\n"),
    };
    e.configmap()
}

/// A plain SSE reader of `path`: each item is one event's block of lines.
async fn events(base: &str, path: &str) -> impl futures::Stream<Item = String> + Unpin + use<> {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("the stream opens");
    let mut buffer = String::new();
    Box::pin(
        response
            .bytes_stream()
            .map(move |chunk| {
                buffer.push_str(&String::from_utf8_lossy(&chunk.expect("stream reads")));
                let mut blocks = Vec::new();
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if block.contains("data:") {
                        blocks.push(block);
                    }
                }
                futures::stream::iter(blocks)
            })
            .flatten(),
    )
}

pub fn print(f: &Figures) {
    println!("\n| `get executions` over {} executions | slowest of {GET_RUNS} | median |", f.executions);
    println!("|---|---|---|");
    for (name, slowest, median) in &f.get {
        println!("| {name} | {:.2} s | {:.2} s |", slowest.as_secs_f64(), median.as_secs_f64());
    }
    println!("\n| {WAITS} changes, from the write to | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (name, p) in [
        ("a plain SSE reader's event", f.stream),
        ("`wait`'s line", f.wait),
        ("`wait`'s line, after the reader's event", f.after_stream),
    ] {
        println!("| {name} | {:.1} ms | {:.1} ms | {:.1} ms |", p.p50, p.p99, p.max);
    }
}
