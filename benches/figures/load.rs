//! Load: the `oha` generator on the second core, and the ceiling, a bare hyper server answering
//! the same bytes from memory on the first.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// The `oha` load generator: on PATH, or installed once under `target/tools` (a few minutes).
pub fn oha() -> PathBuf {
    if let Some(path) = which("oha") {
        return path;
    }
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/tools"));
    let bin = root.join("bin/oha");
    if !bin.exists() {
        println!("installing the oha load generator into {} (once; takes a few minutes)", root.display());
        let status = Command::new("cargo")
            .args(["install", "oha", "--locked", "--quiet", "--root"])
            .arg(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo install oha failed");
    }
    bin
}

fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|path| path.is_file())
}

/// What one oha run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

fn command(oha: &Path, url: &str, seconds: u64, rate: Option<u32>, header: Option<&str>) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", "1"]).arg(oha).args(["-z", &format!("{seconds}s"), "-c", "32", "--no-tui"]);
    command.args(["--output-format", "json"]);
    // Identity bodies, as the ceiling answers: oha otherwise asks for gzip, and the service
    // would send fewer bytes than the ceiling it is compared with.
    command.arg("--disable-compression");
    if let Some(rate) = rate {
        command.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    if let Some(header) = header {
        command.args(["-H", header]);
    }
    command.arg(url);
    command
}

/// Runs oha against `url` (with one extra `header` line, if any) for 2 s on the second core, 32
/// connections: as fast as it can, or at a fixed `rate` with latency measured from when each
/// request was due. Every answer must have status `expect`.
pub fn measure(oha: &Path, url: &str, header: Option<&str>, rate: Option<u32>, expect: u16) -> Measured {
    let out = command(oha, url, 2, rate, header).output().expect("oha runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("oha's JSON report");
    let codes = report["statusCodeDistribution"].as_object().expect("status codes");
    assert!(codes.keys().all(|code| *code == expect.to_string()), "{url}: {codes:?}");
    let seconds = |v: &serde_json::Value| Duration::from_secs_f64(v.as_f64().unwrap_or_default());
    Measured {
        per_second: report["summary"]["requestsPerSec"].as_f64().unwrap_or_default(),
        p50: seconds(&report["latencyPercentiles"]["p50"]),
        p99: seconds(&report["latencyPercentiles"]["p99"]),
    }
}

/// Runs oha over the URLs of `file` (one a line) at a fixed `rate` for `seconds` on the second
/// core, 8 connections, latency measured from when each request was due. Every answer must be
/// `200`.
pub fn measure_urls(oha: &Path, file: &Path, rate: u32, seconds: u64) -> Measured {
    let mut command = Command::new("taskset");
    command.args(["-c", "1"]).arg(oha).args(["-z", &format!("{seconds}s"), "-c", "8", "--no-tui"]);
    command.args(["--output-format", "json", "--disable-compression", "-q", &rate.to_string(), "--latency-correction"]);
    command.arg("--urls-from-file").arg(file);
    let out = command.output().expect("oha runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("oha's JSON report");
    let codes = report["statusCodeDistribution"].as_object().expect("status codes");
    assert!(codes.keys().all(|code| code == "200"), "{}: {codes:?}", file.display());
    let seconds = |v: &serde_json::Value| Duration::from_secs_f64(v.as_f64().unwrap_or_default());
    Measured {
        per_second: report["summary"]["requestsPerSec"].as_f64().unwrap_or_default(),
        p50: seconds(&report["latencyPercentiles"]["p50"]),
        p99: seconds(&report["latencyPercentiles"]["p99"]),
    }
}

/// Background load at a fixed `rate` for `seconds`, while something else is measured.
pub fn background(oha: &Path, url: &str, seconds: u64, rate: u32) -> Child {
    command(oha, url, seconds, Some(rate), None).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("oha runs")
}

/// A bare hyper server answering every request with `status` and `body`: the ceiling.
pub async fn bare_hyper(status: u16, body: Bytes) -> String {
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
                        let response = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(body));
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

pub fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}
