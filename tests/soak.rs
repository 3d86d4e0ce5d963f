//! A soak of the access check from outside: for a minute (`EXECWATCH_SOAK_SECONDS`), clients
//! send random bearer tokens, many of them oversized, and hang up before the answer, as an
//! attacker would to grow memory without authenticating. Reviews are slowed so that most are in
//! flight when their client leaves. The process must end where it started, and still answer.
//! This binary holds one test, so the memory it measures is its own.
//!
//! "Where it started" is the heap's live bytes, counted by this binary's allocator: resident
//! memory also holds what glibc keeps in its arenas after a burst of 400 KB requests, which it
//! returns when it pleases, so asserting on it failed now and then with nothing leaked.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{DEADLINE, Running, Setup, client_for, fast_watch, rss_mib, wait_until};
use execwatch::Sources;
use execwatch::access::{Access, AccessSettings};
use k8s_sim::Sim;
use tokio::io::AsyncWriteExt;

/// Clients sending at once.
const CLIENTS: usize = 16;

/// The system allocator, counting the bytes live on the heap.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, size) };
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(size, Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes live on the heap now, in MiB.
fn heap_mib() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn random_oversized_tokens_closed_mid_request_leave_memory_where_it_started() {
    let seconds: u64 = std::env::var("EXECWATCH_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let sim = Sim::start().await.unwrap();
    sim.set_token_file("good-token,alice,1,\"readers\"\n").unwrap();
    sim.create_namespace("team-a");
    let client = client_for(&sim);
    let sources =
        Sources::Kube { client: client.clone(), namespaces: vec!["team-a".into()].into(), watch: fast_watch() };
    // The caches of identities are bounded by count: a small bound fills within the warm-up, so
    // that the baseline holds them full and any growth after it is a leak.
    let settings = AccessSettings { cache_size: 1_000, ..AccessSettings::default() };
    let setup = Setup { access: Access::kubernetes(client, settings), ..Setup::default() };
    let service = Running::launch(sources, setup).await;
    wait_until("the service answers", || async {
        (service.get_as("/api/v1/modules", "good-token").await.status() == 200).then_some(())
    })
    .await;
    sim.set_latency(Duration::from_millis(300));

    // Ten seconds first, so that pools, caches and allocator arenas are in the baseline.
    soak(service.address(), Duration::from_secs(10)).await;
    let (baseline, rss_before) = (heap_mib(), rss_mib());
    let reviews = sim.requests("create", "tokenreviews.authentication.k8s.io", "");
    let sent = soak(service.address(), Duration::from_secs(seconds)).await;
    let reviewed = sim.requests("create", "tokenreviews.authentication.k8s.io", "") - reviews;
    assert!(reviewed > 0, "the soak reached the review path");
    sim.set_latency(Duration::ZERO);
    let settled = wait_until("the heap returns to where it started", || async {
        let now = heap_mib();
        (now <= baseline + 10.0).then_some(now)
    })
    .await;
    eprintln!(
        "{sent} requests ({reviewed} reviewed) in {seconds} s: heap {baseline:.1} MiB before, {settled:.1} MiB after; \
         RSS {rss_before:.1} MiB before, {:.1} MiB after",
        rss_mib()
    );
    // The flood evicted the valid token's identity from the bounded cache, and its last reviews
    // (answered 300 ms late) may still hold every permit for tokens not cached: the valid token
    // is refused (503, as documented) only until they end, never for good.
    wait_until("the service answers a valid token again", || async {
        let response = tokio::time::timeout(DEADLINE, service.get_as("/api/v1/modules", "good-token")).await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
}

/// Sends requests with random tokens from `CLIENTS` clients for `length`, each closed as soon
/// as it is sent; the number sent.
async fn soak(address: &str, length: Duration) -> usize {
    let until = Instant::now() + length;
    let clients = (0..CLIENTS).map(|_| {
        let address = address.to_owned();
        tokio::spawn(async move {
            let random: String = std::iter::repeat_with(fastrand::alphanumeric).take(400 * 1000).collect();
            let mut sent = 0;
            while Instant::now() < until {
                // One in four under the 16 KiB bound (reviewed), the rest up to 400 KB (beyond
                // the 64 KiB a request's head may take); each distinct, so none is cached.
                let size = match fastrand::u8(..4) {
                    0 => fastrand::usize(64..16 * 1024 - 32),
                    _ => fastrand::usize(16 * 1024..400 * 1000),
                };
                let token = format!("{:032x}{}", fastrand::u128(..), &random[..size]);
                let request =
                    format!("GET /api/v1/executions HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer {token}\r\n\r\n");
                let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else { continue };
                if stream.write_all(request.as_bytes()).await.is_ok() {
                    sent += 1;
                }
                // Hang up at once: the request is in flight, its answer never read.
                drop(stream);
            }
            sent
        })
    });
    futures::future::join_all(clients).await.into_iter().map(|sent| sent.unwrap_or(0)).sum()
}
