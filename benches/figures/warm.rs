//! Ready after a restart with a warm archive: N executions from a directory, started once with
//! `--archive` on an empty SQLite file or PostgreSQL database (a cold start, which also fills
//! the archive), stopped with SIGTERM (as Kubernetes stops a pod) once every version is written,
//! then started again (warm: every ConfigMap the archive holds at the same version is served as
//! stored, not decoded).

use std::time::{Duration, Instant};

use crate::data;
use crate::served::Served;

/// Where the archive is.
pub enum Archive {
    Sqlite,
    Postgres(String),
}

pub struct Figures {
    pub archive: &'static str,
    pub executions: usize,
    /// Ready from the same directory without an archive.
    pub plain: Duration,
    pub cold: Duration,
    pub warm: Duration,
    pub cold_rss: u64,
    pub warm_rss: u64,
    pub archive_bytes: u64,
}

pub async fn run(executions: usize, archive: Archive) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = dir.path().join("manifests");
    data::write_dir(&manifests, executions);
    let file = dir.path().join("history.db");
    let (name, url, reader) = match archive {
        Archive::Sqlite => ("SQLite", format!("sqlite:{}", file.display()), format!("sqlite://{}", file.display())),
        Archive::Postgres(url) => ("PostgreSQL", url.clone(), url),
    };
    let (served, plain) = Served::start(&["--from-dir".to_owned(), manifests.display().to_string()], &[]).await;
    drop(served);
    let args = ["--from-dir".to_owned(), manifests.display().to_string(), "--archive".to_owned(), url];
    let (served, cold) = Served::start(&args, &[]).await;
    let cold_rss = served.rss();
    wait_archived(&reader, executions).await;
    served.stop();
    let (served, warm) = Served::start(&args, &[]).await;
    let warm_rss = served.rss();
    drop(served);
    let archive_bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    Figures { archive: name, executions, plain, cold, warm, cold_rss, warm_rss, archive_bytes }
}

/// Waits until the archive holds every execution.
pub async fn wait_archived(url: &str, executions: usize) {
    sqlx::any::install_default_drivers();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(pool) = sqlx::AnyPool::connect(url).await {
            let count: Option<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM executions").fetch_one(&pool).await.ok();
            pool.close().await;
            if count.is_some_and(|c| c as usize >= executions) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the archive was not written within 10 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn print(rows: &[Figures]) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "\n| archive | executions | ready without archive | ready, cold (first start, archive empty) | ready, warm (restart) | RSS cold → warm | SQLite file |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in rows {
        println!(
            "| {} | {} | {:.2} s | {:.2} s ({:+.0} %) | {:.2} s | {:.0} → {:.0} MiB | {} |",
            f.archive,
            f.executions,
            f.plain.as_secs_f64(),
            f.cold.as_secs_f64(),
            (f.cold.as_secs_f64() / f.plain.as_secs_f64() - 1.0) * 100.0,
            f.warm.as_secs_f64(),
            mib(f.cold_rss),
            mib(f.warm_rss),
            if f.archive_bytes > 0 { format!("{:.0} MiB", mib(f.archive_bytes)) } else { "—".to_owned() }
        );
    }
}
