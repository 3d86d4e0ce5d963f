//! An unauthenticated flood: requests with fresh 12 KiB bearer tokens, each abandoned by its
//! client while the service reviews it, with every TokenReview hanging (the simulator accepts
//! them and never answers). The service runs as its own binary with `--auth kubernetes` over
//! the simulator; its RSS is read before the flood, after each round and at its peak.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::served::Served;

/// A bound service-account token is about 1 KiB; 12 KiB is near the longest the service reviews.
const TOKEN_BYTES: usize = 12 << 10;
/// Requests per round, and at once within a round.
const ROUND: usize = 1500;
const AT_ONCE: usize = 500;
/// How long a client waits for an answer before it hangs up.
const PATIENCE: Duration = Duration::from_millis(300);

pub struct Figures {
    pub requests: usize,
    pub rss_before: u64,
    /// RSS after each round, and what the clients were answered before they hung up.
    pub rounds: Vec<(u64, Answered)>,
    pub rss_peak: u64,
}

/// Of a round's requests: refused at once (503), answered otherwise, or hung up on unanswered.
#[derive(Default)]
pub struct Answered {
    pub refused: usize,
    pub other: usize,
    pub abandoned: usize,
}

pub async fn run(requests: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = k8s_sim::Sim::start().await.expect("simulator");
    sim.create_namespace("team");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig()).expect("kubeconfig");
    let args = ["--namespaces", "team", "--auth", "kubernetes"].map(str::to_owned);
    let (served, _) = Served::start(&args, &[("KUBECONFIG", kubeconfig.display().to_string())]).await;
    let addr: SocketAddr = served.base.trim_start_matches("http://").parse().expect("address");
    let rss_before = served.rss();
    served.reset_peak();
    sim.hang_reviews(true);
    let mut rounds = Vec::new();
    for round in 0..requests.div_ceil(ROUND) {
        let mut answered = Answered::default();
        for first in (0..ROUND).step_by(AT_ONCE) {
            let sent = (first..ROUND.min(first + AT_ONCE)).map(|i| abandon(addr, fresh_token(round, i)));
            for status in futures::future::join_all(sent).await {
                match status {
                    Some(503) => answered.refused += 1,
                    Some(_) => answered.other += 1,
                    None => answered.abandoned += 1,
                }
            }
        }
        rounds.push((served.rss(), answered));
    }
    let rss_peak = served.peak();
    sim.hang_reviews(false);
    Figures { requests, rss_before, rounds, rss_peak }
}

/// A token nobody has reviewed: unique, and as long as `TOKEN_BYTES`.
fn fresh_token(round: usize, i: usize) -> String {
    let mut token = format!("stranger-{round}-{i}-");
    token.extend(std::iter::repeat_n('x', TOKEN_BYTES - token.len()));
    token
}

/// Sends one list request with `token` and hangs up after `PATIENCE` unless answered first: the
/// status it was answered with, if any.
async fn abandon(addr: SocketAddr, token: String) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /api/v1/executions HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut head = [0u8; 12];
    match tokio::time::timeout(PATIENCE, stream.read_exact(&mut head)).await {
        // `HTTP/1.1 503`: the status is the last three bytes.
        Ok(Ok(_)) => std::str::from_utf8(&head[9..12]).ok()?.parse().ok(),
        _ => None,
    }
}

pub fn print(figures: &Figures) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "\n{} unauthenticated requests with fresh {} KiB tokens, TokenReviews hanging, each abandoned after {} ms:",
        figures.requests,
        TOKEN_BYTES >> 10,
        PATIENCE.as_millis()
    );
    println!("\n| after | RSS | growth | refused 503 | answered otherwise | hung up on |");
    println!("|---|---|---|---|---|---|");
    println!("| start | {:.0} MiB | — | — | — | — |", mib(figures.rss_before));
    for (i, (rss, answered)) in figures.rounds.iter().enumerate() {
        println!(
            "| {} requests | {:.0} MiB | {:+.0} MiB | {} | {} | {} |",
            (i + 1) * ROUND,
            mib(*rss),
            mib(*rss) - mib(figures.rss_before),
            answered.refused,
            answered.other,
            answered.abandoned
        );
    }
    println!(
        "| peak | {:.0} MiB | {:+.0} MiB | | | |",
        mib(figures.rss_peak),
        mib(figures.rss_peak) - mib(figures.rss_before)
    );
}
