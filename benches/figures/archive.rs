//! Lists over a large archive: N archived executions (500 pipelines in 20 namespaces, over two
//! years, documents of about 2 KiB) written straight into SQLite or PostgreSQL beside 1 000
//! live ones, then pages of 50 read through the service at a steady rate from many distinct
//! URLs (deep `continue` tokens, so pages are made, not remembered), and GET one of archived
//! executions. The service's memory is compared with the same service over an archive of its
//! live executions alone: archived executions must not be held in memory.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::load::{self, Measured};
use crate::served::Served;
use crate::warm::Archive;

/// Live executions beside the archive.
pub const LIVE: usize = 1_000;
/// Requests per second each measurement sends.
const RATE: u32 = 100;

pub struct Figures {
    pub archive: &'static str,
    pub archived: usize,
    pub pages: Vec<(&'static str, Measured)>,
    pub get_one: Measured,
    /// A reader of one namespace (ns-3), by filter: median and slowest of 100 distinct pages, ms.
    pub scoped: Vec<(&'static str, f64, f64)>,
    pub rss_small: u64,
    pub rss_large: u64,
}

/// A large archive's place: `LIVE` executions in a directory, and the archive beside them.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub manifests: std::path::PathBuf,
    /// SQLite or PostgreSQL.
    pub name: &'static str,
    /// The URL the service takes, and the one sqlx connects to.
    pub url: String,
    pub writer: String,
    /// `serve`'s arguments over them.
    pub args: [String; 6],
}

impl Setup {
    pub fn new(archive: Archive) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifests = dir.path().join("manifests");
        crate::data::write_dir(&manifests, LIVE);
        let file = dir.path().join("history.db");
        let (name, url, writer) = match archive {
            Archive::Sqlite => ("SQLite", format!("sqlite:{}", file.display()), format!("sqlite://{}", file.display())),
            Archive::Postgres(url) => ("PostgreSQL", url.clone(), url),
        };
        // Two years of history: kept whole (the default --archive-retain, 400 days, would prune it).
        let args = ["--from-dir", &manifests.display().to_string(), "--archive", &url, "--archive-retain", "1000d"]
            .map(str::to_owned);
        Setup { dir, manifests, name, url, writer, args }
    }
}

pub async fn run(oha: &Path, archived: usize, archive: Archive) -> Figures {
    let Setup { dir, name, writer, args, .. } = Setup::new(archive);
    // The first start makes the schema and archives the live executions.
    let (served, _) = Served::start(&args, &[]).await;
    let rss_small = settled_rss(&served).await;
    crate::warm::wait_archived(&writer, LIVE).await;
    drop(served);
    println!("writing {archived} archived executions into {name} ...");
    generate(&writer, archived).await;
    let (served, _) = Served::start(&args, &[]).await;
    let rss_large = settled_rss(&served).await;
    let queries: [(&'static str, String); 6] = [
        ("unfiltered", String::new()),
        ("by pipeline", "pipeline=p-17".into()),
        ("by phase", "phase=Failed".into()),
        ("by environment", "environment=prod".into()),
        ("by namespace", "namespace=ns-3".into()),
        ("by label", "labelSelector=team%3Dt-4".into()),
    ];
    let mut pages = Vec::new();
    for (what, query) in queries {
        let urls = distinct(crawl(&served.base, &query, 200).await);
        check(&urls).await;
        pages.push((what, measure(oha, dir.path(), &urls)));
    }
    let one: Vec<String> = (0..2000)
        .map(|k| {
            let i = (k * 7919) % archived;
            format!("{}/api/v1/namespaces/{}/executions/{}", served.base, namespace(i), name_of(i))
        })
        .collect();
    check(&one).await;
    let get_one = measure(oha, dir.path(), &one);
    drop(served);
    let scoped = scoped(&args, dir.path()).await;
    Figures { archive: name, archived, pages, get_one, scoped, rss_small, rss_large }
}

/// What one namespace's reader learns of the others from the time of an answer with nothing
/// archived in it: the
/// service restarted with a tokens file, and a reader of ns-3 (which holds no run of p-17) asks
/// for a pipeline that another namespace holds 2 000 archived runs of, and for one that no
/// namespace holds. The times must not differ.
async fn scoped(args: &[String; 6], dir: &Path) -> Vec<(&'static str, f64, f64)> {
    let tokens = dir.join("tokens.yaml");
    let digest = execwatch::access::digest_hex("ns-3-reader");
    std::fs::write(&tokens, format!("tokens:\n  - subject: reader\n    sha256: {digest}\n    namespaces: [ns-3]\n"))
        .expect("tokens file");
    let mut args = args.to_vec();
    args.extend(["--auth".to_owned(), format!("tokens={}", tokens.display())]);
    let (served, _) = Served::start(&args, &[]).await;
    let client = reqwest::Client::new();
    let queries = [("pipeline held elsewhere (p-17)", "pipeline=p-17"), ("pipeline held nowhere", "pipeline=p-nosuch")];
    // Asked in turn, a warm-up of 20 rounds first, so neither query has the cold caches.
    let mut took = vec![Vec::new(); queries.len()];
    for round in 0..120 {
        for (i, (_, query)) in queries.iter().enumerate() {
            // Distinct limits: a page the service remembers would not read the archive.
            let url = format!("{}/api/v1/namespaces/ns-3/executions?limit={}&{query}", served.base, round + 1);
            let started = std::time::Instant::now();
            let response = client.get(&url).bearer_auth("ns-3-reader").send().await.expect("served");
            assert_eq!(response.status(), 200, "{url}");
            let body: serde_json::Value = response.json().await.expect("JSON");
            if round >= 20 {
                took[i].push(started.elapsed().as_secs_f64() * 1000.0);
            }
            // ns-3's live runs may match; its archive must not.
            let archived = body["items"].as_array().into_iter().flatten().filter(|i| i["archived"] == true).count();
            assert_eq!(archived, 0, "ns-3's archive holds none: {body}");
        }
    }
    queries
        .iter()
        .zip(took)
        .map(|((what, _), took)| (*what, load::median(took.clone()), took.iter().copied().fold(0.0, f64::max)))
        .collect()
}

/// RSS once the archived runs are loaded for pipelines (the service says so in freshness).
pub async fn settled_rss(served: &Served) -> u64 {
    let client = reqwest::Client::new();
    for _ in 0..6000 {
        let page: serde_json::Value = match client.get(format!("{}/api/v1/pipelines", served.base)).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if page["freshness"]["complete"] == true {
            return served.rss();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the archived runs were not loaded within 10 minutes");
}

/// URLs of the first `pages` pages of the list with `query`, each with its `continue` token.
async fn crawl(base: &str, query: &str, pages: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut urls = Vec::new();
    let mut next: Option<String> = None;
    let sep = if query.is_empty() { "" } else { "&" };
    for _ in 0..pages {
        let token = next.as_ref().map(|t| format!("&continue={t}")).unwrap_or_default();
        let url = format!("{base}/api/v1/executions?limit=50{sep}{query}{token}");
        let page: serde_json::Value = client.get(&url).send().await.expect("served").json().await.expect("JSON");
        urls.push(url);
        match page["continue"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => break,
        }
    }
    urls
}

/// Each crawled page asked with limits 51 to 60: the crawl made the service remember the pages
/// of 50, and a page it remembers is served without reading the archive. Continue tokens are
/// positions, valid with any limit.
fn distinct(crawled: Vec<String>) -> Vec<String> {
    (51..=60)
        .flat_map(|limit| crawled.iter().map(move |url| url.replacen("limit=50", &format!("limit={limit}"), 1)))
        .collect()
}

/// Every one of a sample of `urls` answers 200, or the run stops naming the first that does not.
async fn check(urls: &[String]) {
    let client = reqwest::Client::new();
    for url in urls.iter().step_by((urls.len() / 50).max(1)) {
        let response = client.get(url).send().await.expect("served");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{url}: {}", &body[..body.len().min(300)]);
    }
}

/// `RATE` requests a second for 5 s over `urls`, from the second core.
fn measure(oha: &Path, dir: &Path, urls: &[String]) -> Measured {
    let file = dir.join("urls.txt");
    let mut out = std::fs::File::create(&file).expect("urls file");
    for url in urls {
        writeln!(out, "{url}").expect("write");
    }
    load::measure_urls(oha, &file, RATE, 5)
}

fn namespace(i: usize) -> String {
    format!("ns-{}", i % 20)
}

fn name_of(i: usize) -> String {
    format!("archived-{i:07}")
}

/// Writes `n` archived executions in transactions of 2 000 rows.
async fn generate(url: &str, n: usize) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("the archive");
    let started = std::time::Instant::now();
    for start in (0..n).step_by(2000) {
        let mut tx = pool.begin().await.expect("begin");
        for i in start..(start + 2000).min(n) {
            insert(i).execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    println!("  {n} rows in {:.0} s", started.elapsed().as_secs_f64());
    pool.close().await;
}

/// Archived execution `i`: pipeline `p-(i % 500)`, run over two years before 2026-12-01, deleted
/// a day after it started.
fn insert(i: usize) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    const TWO_YEARS_MS: i64 = 2 * 365 * 86_400_000;
    let (ns, name, pipeline) = (namespace(i), name_of(i), format!("p-{}", i % 500));
    let started = 1_764_547_200_000 - (i as i64 * 7_919) % TWO_YEARS_MS;
    let phase = ["Succeeded", "Succeeded", "Succeeded", "Failed", "Cancelled"][i % 5];
    let at = jiff::Timestamp::from_millisecond(started).expect("a time").to_string();
    let labels = serde_json::json!({"pipelines.gitops.dev/execution": "true", "team": format!("t-{}", i % 7)});
    let envs = ["dev", "staging", "prod"];
    let environments: Vec<serde_json::Value> =
        envs.iter().map(|e| serde_json::json!({"name": e, "phase": phase})).collect();
    let version = format!("1.{}.{}", i % 97, i % 13);
    let summary = serde_json::json!({"namespace": ns, "name": name, "pipeline": pipeline,
        "application": {"name": pipeline, "version": version}, "phase": phase, "startedAt": at,
        "environments": environments, "resourceVersion": i.to_string()});
    let targets: Vec<serde_json::Value> = (0..4)
        .map(|t| {
            serde_json::json!({"cluster": format!("{}-eu-{t}", envs[t % 3]), "namespace": pipeline, "phase": phase,
            "message": "synced to revision 82bab35ad3c5 after rollout of every replica; health checks passed"})
        })
        .collect();
    let execution = serde_json::json!({"apiVersion": "pipelines.gitops.dev/v1alpha1", "kind": "PipelineExecution",
        "pipeline": pipeline, "application": {"name": pipeline, "version": version, "revision": "82bab35ad3c5"},
        "phase": phase, "startedAt": at, "trigger": {"kind": "commit", "by": "ci@example.com",
        "url": format!("https://git.example.com/{pipeline}/commit/82bab35ad3c5")},
        "environments": envs.iter().map(|e| serde_json::json!({"name": e, "phase": phase, "startedAt": at,
            "targets": targets})).collect::<Vec<_>>()});
    let detail = serde_json::json!({"namespace": ns, "name": name, "labels": labels, "resourceVersion": i.to_string(),
        "execution": execution});
    let summary = summary.to_string();
    let row = Row { i, namespace: ns, name, pipeline, phase, started, started_at: at, finished_at: None, summary };
    insert_row(row, labels.to_string(), detail.to_string(), started + 86_400_000)
}

/// An archived execution's row, as the service would have written it: the columns besides its
/// labels, detail and deletion time.
pub struct Row {
    pub i: usize,
    pub namespace: String,
    pub name: String,
    pub pipeline: String,
    pub phase: &'static str,
    pub started: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub summary: String,
}

/// The statement that writes `row` (uid and resourceVersion from its number, last seen when it
/// was deleted).
pub fn insert_row(
    row: Row,
    labels: String,
    detail: String,
    deleted_at: i64,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let key = [row.namespace.as_bytes(), &[0], row.name.as_bytes()].concat();
    sqlx::query(
        "INSERT INTO executions (namespace, name, uid, resource_version, version_order, schema_set, pipeline, \
         phase, sort_time, started_at, finished_at, labels, summary, detail, first_seen, last_seen, deleted_at, \
         list_key) VALUES ($1, $2, $3, $4, $5, 'generated', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(row.namespace)
    .bind(row.name)
    .bind(format!("uid-{}", row.i))
    .bind(row.i.to_string())
    .bind(row.i as i64)
    .bind(row.pipeline)
    .bind(row.phase)
    .bind(row.started)
    .bind(row.started_at)
    .bind(row.finished_at)
    .bind(labels)
    .bind(row.summary)
    .bind(detail)
    .bind(row.started)
    .bind(deleted_at - 86_400_000)
    .bind(deleted_at)
    .bind(key)
}

pub fn print(rows: &[Figures]) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!("\n| archive | archived | page of 50 | p50 / p99 ms at {RATE}/s |");
    println!("|---|---|---|---|");
    for f in rows {
        for (what, m) in &f.pages {
            println!("| {} | {} | {what} | {} / {} |", f.archive, f.archived, ms(m.p50), ms(m.p99));
        }
        println!(
            "| {} | {} | GET one archived | {} / {} |",
            f.archive,
            f.archived,
            ms(f.get_one.p50),
            ms(f.get_one.p99)
        );
    }
    println!(
        "\n| archive | a reader of one namespace asks for | median / slowest ms of 100 pages with nothing archived |"
    );
    println!("|---|---|---|");
    for f in rows {
        for (what, median, slowest) in &f.scoped {
            println!("| {} | {what} | {median:.2} / {slowest:.2} |", f.archive);
        }
    }
    println!("\n| archive | RSS over {LIVE} live, archive of them alone | the same beside N archived |");
    println!("|---|---|---|");
    for f in rows {
        let mib = |b: u64| b / (1 << 20);
        println!("| {} | {} MiB | {} MiB ({}) |", f.archive, mib(f.rss_small), mib(f.rss_large), f.archived);
    }
}
