//! Storms, alone in their test process so that its memory is theirs: every watch is dropped and
//! all history compacted (so resuming gets 410 Gone) every second for a minute, while pipeline
//! writers create, update and delete executions. Afterwards the served set is exactly the API
//! server's, no ghost and none lost, and tasks and memory are back where they were.

mod common;

use std::time::Duration;

use common::{Cluster, names, rss_mib, sim_faults, wait_until};
use execwatch::fixtures::Doc;
use serde_json::json;

/// How long the storm lasts, in one-second rounds (`EXECWATCH_STORM_SECONDS`, 60 by default).
fn rounds() -> u32 {
    std::env::var("EXECWATCH_STORM_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60)
}

/// Resident memory of this process.
#[tokio::test(flavor = "multi_thread")]
async fn a_minute_of_watch_drops_and_410s_while_writing_ends_with_exactly_the_servers_set() {
    let namespaces = ["team-a", "team-b"];
    let c = Cluster::start(&namespaces, &namespaces).await;
    c.wait_ready().await;
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let rounds = rounds();
    let mut memory = Vec::new();
    let mut tasks_before = None;
    for round in 0..rounds {
        sim_faults(&c.sim, json!({"dropWatches": true, "compact": true})).await;
        // Ten writes a round over 40 names: creations, phase updates, and deletions of the name
        // written three rounds ago, so the set turns over but stays about the same size.
        for i in 0..10u32 {
            let n = round * 10 + i;
            let ns = namespaces[(n % 2) as usize];
            let phase = if n % 3 == 0 { "Succeeded" } else { "Running" };
            c.put_execution(ns, &format!("run-{}", n % 40), &Doc::new("web").phase(phase)).await;
            if n >= 30 && n % 4 == 0 {
                c.delete(namespaces[((n - 30) % 2) as usize], &format!("run-{}", (n - 30) % 40)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A quarter in, everything that will be allocated has been: the baseline.
        if round == rounds / 4 {
            tasks_before = Some(tasks());
            memory.push(rss_mib());
        }
    }
    let expected = c.held(&namespaces).await;
    assert!(expected.len() >= 10, "{expected:?}");
    wait_until("the served set is exactly the API server's", || async { (c.served().await == expected).then_some(()) })
        .await;
    let running = c.service.get("/api/v1/executions?phase=Running&limit=500").await.1;
    assert!(names(&running).iter().all(|n| expected.contains(n)), "no ghost: {running}");

    let before = tasks_before.expect("a baseline");
    wait_until("tasks are back where they were", || async { (tasks() <= before + 2).then_some(()) }).await;
    memory.push(rss_mib());
    let grown = memory[1] - memory[0];
    println!("storm of {rounds} s: RSS {:.1} MiB a quarter in, {:.1} MiB after", memory[0], memory[1]);
    assert!(grown < 8.0, "memory grew by {grown:.1} MiB over the storm: {memory:?}");
}
