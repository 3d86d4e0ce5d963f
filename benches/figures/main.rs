//! Figures for execwatch, printed as Markdown tables for the README. Run:
//! `cargo bench --bench figures` (every size and both sources, about half an hour), or narrow it
//! with `EXECWATCH_BENCH_SIZES=1000,10000` and `EXECWATCH_BENCH_SOURCES=dir` (or `kube`), and
//! `EXECWATCH_BENCH_ACCESS=0` to leave out the access figures, `EXECWATCH_BENCH_FOLLOWERS=N`
//! for N idle followers over 10 000 executions (10 000 by default; 0 leaves them out),
//! `EXECWATCH_BENCH_WARM=N,…` for the ready time of a restart over a warm archive (10 000 by
//! default; empty leaves it out), `EXECWATCH_BENCH_ARCHIVE=N` for lists and GET one over N
//! archived executions in SQLite and PostgreSQL (1 000 000 by default; empty leaves it out),
//! `EXECWATCH_BENCH_PRUNE=N` for retention pruning N executions through the simulator down to
//! the newest 10 of each pipeline (100 000 by default; empty leaves it out),
//! `EXECWATCH_BENCH_CLI=N` for `get executions` paging through N executions and how soon `wait`
//! prints a change (10 000 by default; empty leaves it out), `EXECWATCH_BENCH_INSIGHTS=N` for
//! insights over N archived runs in SQLite and PostgreSQL (1 000 000 by default; empty leaves it
//! out), `EXECWATCH_BENCH_FLOOD=N` for N unauthenticated requests with fresh tokens abandoned
//! while their reviews hang (6 000 by default; empty leaves it out), `EXECWATCH_BENCH_NOTIFY=N` for
//! notifications' latency, sustained deliveries and N messages waiting on a dead receiver
//! (10 000 by default; empty leaves it out).
//! `EXECWATCH_BENCH_DATABASES` names the archives measured (`sqlite,postgres` by default).
//! `EXECWATCH_BENCH_WRITE=DIR`
//! only writes the data set of the first size into DIR as manifests, for profiling by hand.
//!
//! The service runs as its own release binary pinned to the first core; the `oha` load generator
//! (installed on first use) runs on the second; the ceiling, a bare hyper server answering the
//! same bytes from memory, runs in this process on the first core while the service is paused.

mod access;
mod archive;
mod cli;
mod data;
mod flood;
mod followers;
mod insights;
mod load;
mod notify;
mod prune;
mod scale;
mod served;
mod warm;

/// The tests' PostgreSQL harness: a server in a temporary directory, for the warm start.
#[path = "../../tests/common/postgres.rs"]
#[allow(dead_code)] // the tests stop and resume the server too
mod postgres;
mod clients {
    pub fn missing(what: &str) {
        println!("skipped: {what} is not available");
    }
}

use scale::Source;

fn list<T>(var: &str, default: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let raw = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let items = raw.split(',').map(str::trim).filter(|s| !s.is_empty());
    items.map(|s| parse(s).unwrap_or_else(|| panic!("{var}: cannot read {s:?}"))).collect()
}

/// `measure` over a SQLite archive, then over a PostgreSQL database of its own where PostgreSQL
/// is installed; `EXECWATCH_BENCH_DATABASES` (`sqlite,postgres` by default) names which.
async fn in_both<T, F: Future<Output = T>>(database: &str, measure: impl Fn(warm::Archive) -> F) -> Vec<T> {
    let databases = list("EXECWATCH_BENCH_DATABASES", "sqlite,postgres", |s| {
        ["sqlite", "postgres"].contains(&s).then(|| s.to_owned())
    });
    let mut rows = Vec::new();
    if databases.iter().any(|d| d == "sqlite") {
        rows.push(measure(warm::Archive::Sqlite).await);
    }
    if !databases.iter().any(|d| d == "postgres") {
        return rows;
    }
    if let Some(postgres) = postgres::Postgres::start() {
        postgres.create(database);
        rows.push(measure(warm::Archive::Postgres(postgres.url(database))).await);
        if std::env::var_os("EXECWATCH_BENCH_KEEP").is_some() {
            println!("  PostgreSQL left running for profiling by hand: {}", postgres.url(database));
            // Neither stopped nor its directory removed.
            std::mem::forget(postgres);
        }
    }
    rows
}

fn main() {
    let sizes = list("EXECWATCH_BENCH_SIZES", "1000,10000,100000", |s| s.parse::<usize>().ok());
    let sources = list("EXECWATCH_BENCH_SOURCES", "dir,kube", |s| match s {
        "dir" => Some(Source::Dir),
        "kube" => Some(Source::Kube),
        _ => None,
    });
    if let Ok(dir) = std::env::var("EXECWATCH_BENCH_WRITE") {
        let payload = data::write_dir(std::path::Path::new(&dir), sizes[0]);
        println!("wrote {} executions ({payload} bytes of documents) into {dir}", sizes[0]);
        return;
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    println!(
        "machine: {} cores, {}; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        model.unwrap_or("unknown CPU"),
        jiff::Timestamp::now().strftime("%Y-%m-%d")
    );
    // This process (the simulator and the ceiling) shares the first core with the service.
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-cp", "0", &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pinned {
        println!("note: taskset could not pin this process to core 0; figures share cores");
    }
    // `EXECWATCH_BENCH_SIZES=` (empty) measures nothing at scale, and needs no load generator.
    let oha = if sizes.is_empty() { Default::default() } else { load::oha() };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut rows = Vec::new();
        for &n in &sizes {
            for &source in &sources {
                println!("measuring {} executions through {} ...", n, source.name());
                rows.push(scale::run(&oha, source, n).await);
                scale::print(std::slice::from_ref(rows.last().expect("a row")));
            }
        }
        println!("\nAll runs:");
        scale::print(&rows);
        if std::env::var("EXECWATCH_BENCH_ACCESS").as_deref() != Ok("0") {
            access::access_cost().await;
        }
        for n in list("EXECWATCH_BENCH_WARM", "10000", |s| s.parse::<usize>().ok()) {
            println!("\nrestarting over a warm archive of {n} executions ...");
            warm::print(&in_both("warm", |archive| warm::run(n, archive)).await);
        }
        for n in list("EXECWATCH_BENCH_ARCHIVE", "1000000", |s| s.parse::<usize>().ok()) {
            println!("\nlists over an archive of {n} executions ...");
            let oha = load::oha();
            archive::print(&in_both("large", |archive| archive::run(&oha, n, archive)).await);
        }
        for n in list("EXECWATCH_BENCH_INSIGHTS", "1000000", |s| s.parse::<usize>().ok()) {
            println!("\ninsights over an archive of {n} runs ...");
            insights::print(&in_both("insights", |archive| insights::run(n, archive)).await);
        }
        for n in list("EXECWATCH_BENCH_FLOOD", "6000", |s| s.parse::<usize>().ok()) {
            println!("\nflooding the service with {n} unauthenticated requests ...");
            flood::print(&flood::run(n).await);
        }
        for n in list("EXECWATCH_BENCH_NOTIFY", "10000", |s| s.parse::<usize>().ok()) {
            println!("\nnotifications, then {n} messages waiting on a dead receiver ...");
            notify::print(&notify::run(n).await);
        }
        for n in list("EXECWATCH_BENCH_PRUNE", "100000", |s| s.parse::<usize>().ok()) {
            println!("\npruning {n} executions down to the newest 10 of each pipeline ...");
            prune::print(&prune::run(n).await);
        }
        for n in list("EXECWATCH_BENCH_CLI", "10000", |s| s.parse::<usize>().ok()) {
            println!("\nthe command line over {n} executions ...");
            cli::print(&cli::run(n).await);
        }
        let followers = list("EXECWATCH_BENCH_FOLLOWERS", "10000", |s| s.parse::<usize>().ok());
        let followers = followers.first().copied().unwrap_or(0);
        if followers > 0 {
            println!("\nholding {followers} followers ...");
            followers::print(&followers::run(10_000, followers).await);
        }
    });
}
