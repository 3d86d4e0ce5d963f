//! Insights' rollups in the archive: each run's facts (`insights::RunFacts`) in `run_facts`,
//! beside its row of `executions`. A row is copied from its execution's row whenever that is
//! written (in the same transaction), so it holds the same version, deletion and namespace
//! incarnation; the rules that made the rows are versioned, and rows made by other rules (or
//! none, as after the migration that adds the table) are rebuilt from the stored documents.

use std::collections::HashSet;

use futures::StreamExt;
use rayon::prelude::*;
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row};

use super::incarnation::Incarnations;
use crate::insights::{Millis, RunFacts};
use crate::model::ExecutionView;
use crate::query::ExecutionFilter;

/// The version of the rules in `insights::facts`: a change to what a run's facts are, or to
/// their stored form, is a new number here (2: the compact form instead of JSON), and archives
/// made under the old one are rebuilt when they connect.
pub const FACTS_VERSION: i64 = 2;

/// Rows read, parsed and staged per transaction of a rebuild.
const REBUILD_BATCH: usize = 2000;

/// Rows copied per statement (six values each). Not more: sqlx finds each of SQLite's `$N`
/// parameters by its name among all of the statement's, so binding costs the square of their
/// number: at 500 rows that search was a quarter of a rebuild's time, and 1 000 000 runs took
/// 72 s to rebuild in SQLite; 58 s at 50 rows.
const COPY_ROWS: usize = 50;

/// Copies executions' rows at these versions into `run_facts` with their facts (`VALUES` of
/// namespace, name, uid, resourceVersion, latest counted time and facts, joined to their rows);
/// a version an execution's row no longer holds (a newer one was written) copies nothing.
fn copy_sql(rows: usize) -> String {
    copy_from_sql(&format!("(VALUES {})", values_sql(rows)), "")
}

/// Placeholders of `rows` rows of six values: `($1, ..., $6), ($7, ...`.
fn values_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let p = |i: usize| format!("${}", r * 6 + i);
            format!("({}, {}, {}, {}, {}, {})", p(1), p(2), p(3), p(4), p(5), p(6))
        })
        .collect();
    values.join(", ")
}

/// Copies the rows of `source` (columns `column1` to `column6`, as `copy_sql`'s `VALUES`) that
/// `condition` keeps, in its order, into `run_facts`.
fn copy_from_sql(source: &str, condition: &str) -> String {
    format!(
        "INSERT INTO run_facts (namespace, name, uid, pipeline, labels, configmap_created, deleted_at, last_counted, \
         facts) SELECT e.namespace, e.name, e.uid, e.pipeline, e.labels, e.configmap_created, e.deleted_at, \
         v.column5, v.column6 FROM {source} AS v JOIN executions e ON e.namespace = v.column1 \
         AND e.name = v.column2 AND e.uid = v.column3 AND e.resource_version = v.column4 WHERE true {condition} \
         ON CONFLICT (namespace, name, uid) DO UPDATE SET pipeline = excluded.pipeline, labels = excluded.labels, \
         configmap_created = excluded.configmap_created, deleted_at = excluded.deleted_at, \
         last_counted = excluded.last_counted, facts = excluded.facts"
    )
}

/// One execution's row, at a version, and its facts: what `copy` writes.
pub struct Copied<'a> {
    pub key: (&'a str, &'a str, &'a str),
    pub resource_version: &'a str,
    pub facts: &'a StoredFacts,
}

/// Writes these executions' facts (see `copy_sql`), in statements of `COPY_ROWS`.
pub async fn copy(tx: &mut sqlx::Transaction<'_, sqlx::Any>, rows: &[Copied<'_>]) -> Result<(), sqlx::Error> {
    in_statements(tx, rows, copy_sql).await
}

/// Runs `sql(n)` for each `COPY_ROWS` of `rows`, each row's six values bound in turn.
async fn in_statements(
    conn: &mut AnyConnection,
    rows: &[Copied<'_>],
    sql: impl Fn(usize) -> String,
) -> Result<(), sqlx::Error> {
    for part in rows.chunks(COPY_ROWS) {
        // Only placeholders are written into the text; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql(part.len())));
        for row in part {
            let (namespace, name, uid) = row.key;
            query = query.bind(namespace).bind(name).bind(uid).bind(row.resource_version);
            query = query.bind(row.facts.last_counted).bind(row.facts.facts.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A run's facts as stored (`RunFacts::encode`), and the latest time they count at.
pub struct StoredFacts {
    pub facts: String,
    pub last_counted: Option<Millis>,
}

impl StoredFacts {
    pub fn of(view: &ExecutionView) -> StoredFacts {
        let facts = RunFacts::of(view);
        StoredFacts { last_counted: facts.last_counted(), facts: facts.encode() }
    }

    /// The facts of a detail body as it was served; `None` for one this version cannot read.
    pub fn of_detail(detail: &str) -> Option<StoredFacts> {
        super::warm::view_of_detail(detail).map(|view| StoredFacts::of(&view))
    }
}

/// Whether the rows were made by other rules than this binary's (or not made yet).
pub async fn stale(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    let version: Option<i64> = sqlx::query("SELECT MAX(version) FROM run_facts_version").fetch_one(pool).await?.get(0);
    Ok(version != Some(FACTS_VERSION))
}

/// Makes every run's facts again from its stored document, then marks them made by this
/// binary's rules: the number of runs. Versions written meanwhile are kept (see `copy_sql`).
///
/// Read a page at a time in key order, each page's documents parsed on every core and its facts
/// staged in one transaction, then copied in time order (see `staged`): no read stays open
/// across the writes, so SQLite's write-ahead log is checkpointed as it goes instead of growing
/// with the archive.
pub async fn rebuild(pool: &AnyPool) -> Result<u64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let sqlite = conn.backend_name() == "SQLite";
    if sqlite {
        // SQLite's default cache (2 MiB) makes each row written through the indexes read and
        // write pages through the kernel again: most of a rebuild was those system calls.
        conn.execute(REBUILD_CACHE).await?;
    }
    let made = staged(&mut conn, pool).await;
    if sqlite {
        // The connection goes back to the pool: with the default cache, and its pages freed.
        conn.execute("PRAGMA cache_size = -2000").await?;
    }
    let made = made?;
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM run_facts_version").execute(&mut *tx).await?;
    sqlx::query("INSERT INTO run_facts_version (version) VALUES ($1)").bind(FACTS_VERSION).execute(&mut *tx).await?;
    tx.commit().await?;
    if !sqlite {
        // Every row is new: PostgreSQL reads the indexes that hold the facts without the table
        // only where its visibility map says so, and plans with the old table's statistics.
        // Vacuumed now rather than by autovacuum in the middle of the first reads (which it
        // slowed by half at 1 000 000).
        conn.execute("VACUUM (ANALYZE) run_facts").await?;
    }
    Ok(made)
}

/// `rebuild_on` into a staging table of the connection's own, then copied from it in time order:
/// written in the documents' key order, each transaction dirtied pages all over the indexes
/// that hold the facts (migration 0005), and 1 000 000 runs took 117 s instead of 58; copied in
/// time order, they are written at those indexes' ends (10.7 s for the copy).
async fn staged(conn: &mut AnyConnection, pool: &AnyPool) -> Result<u64, sqlx::Error> {
    conn.execute("DROP TABLE IF EXISTS rebuilt_facts").await?;
    conn.execute(
        "CREATE TEMPORARY TABLE rebuilt_facts (column1 TEXT NOT NULL, column2 TEXT NOT NULL, column3 TEXT NOT NULL, \
         column4 TEXT NOT NULL, column5 BIGINT, column6 TEXT NOT NULL)",
    )
    .await?;
    let made = rebuild_on(&mut *conn, pool).await?;
    conn.execute("CREATE INDEX rebuilt_facts_by_time ON rebuilt_facts (column5)").await?;
    copy_staged(&mut *conn).await?;
    conn.execute("DROP TABLE rebuilt_facts").await?;
    Ok(made)
}

/// Staged rows copied per transaction, so no one transaction holds the archive's writer long.
const COPY_RANGE: i64 = 50_000;

/// Copies the staging table into `run_facts` in ranges of `last_counted` (`column5`), in order;
/// rows counted at no time last.
async fn copy_staged(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // A range ends at the first time after its last row's: equal times never straddle two
    // ranges, and each range holds at least its first time's rows. None: the rest is one.
    let next = format!(
        "SELECT MIN(column5) FROM rebuilt_facts WHERE column5 > (SELECT column5 FROM rebuilt_facts \
         WHERE column5 >= $1 ORDER BY column5 LIMIT 1 OFFSET {})",
        COPY_RANGE - 1
    );
    let range = copy_from_sql("rebuilt_facts", "AND v.column5 >= $1 AND v.column5 < $2 ORDER BY v.column5");
    let mut start: Option<Millis> =
        sqlx::query("SELECT MIN(column5) FROM rebuilt_facts").fetch_one(&mut *conn).await?.get(0);
    while let Some(from) = start {
        let end: Option<Millis> =
            sqlx::query(sqlx::AssertSqlSafe(next.as_str())).bind(from).fetch_one(&mut *conn).await?.get(0);
        let until = end.unwrap_or(Millis::MAX);
        sqlx::query(sqlx::AssertSqlSafe(range.as_str())).bind(from).bind(until).execute(&mut *conn).await?;
        start = end;
    }
    let sql = copy_from_sql("rebuilt_facts", "AND v.column5 IS NULL");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
    Ok(())
}

/// SQLite's page cache for a rebuild: 64 MiB (a negative size is in KiB).
const REBUILD_CACHE: &str = "PRAGMA cache_size = -65536";

/// The pages of `rebuild`, written on `conn`; each next page is read from the pool while the
/// last is parsed and written, so the read of the documents and the writes overlap.
async fn rebuild_on(conn: &mut AnyConnection, pool: &AnyPool) -> Result<u64, sqlx::Error> {
    let mut rows = page(pool, None).await?;
    let mut made = 0u64;
    while let Some(last) = rows.last() {
        let after = (last.0.clone(), last.1.clone(), last.2.clone());
        let full = rows.len() == REBUILD_BATCH;
        // A document this version cannot read counts for nothing rather than stopping the rest.
        let parse = move || -> Vec<(Key, StoredFacts)> {
            let facts = |(namespace, name, uid, version, detail): Row5| {
                StoredFacts::of_detail(&detail).map(|facts| ((namespace, name, uid, version), facts))
            };
            rows.into_par_iter().filter_map(facts).collect()
        };
        let next = async {
            match full {
                true => page(pool, Some(&after)).await,
                false => Ok(Vec::new()),
            }
        };
        let written = async { write(&mut *conn, tokio::task::spawn_blocking(parse).await.unwrap_or_default()).await };
        let (next, written) = tokio::join!(next, written);
        made += written?;
        rows = next?;
    }
    Ok(made)
}

/// An execution's row: namespace, name, uid and resourceVersion.
type Key = (String, String, String, String);
/// The key and the detail.
type Row5 = (String, String, String, String, String);

/// Up to `REBUILD_BATCH` rows after `after` in key order: the key and the detail.
async fn page(pool: &AnyPool, after: Option<&(String, String, String)>) -> Result<Vec<Row5>, sqlx::Error> {
    let select = "SELECT namespace, name, uid, resource_version, detail FROM executions";
    let order = format!("ORDER BY namespace, name, uid LIMIT {REBUILD_BATCH}");
    let rows = match after {
        None => sqlx::query(sqlx::AssertSqlSafe(format!("{select} {order}"))).fetch_all(pool).await?,
        Some((namespace, name, uid)) => {
            let sql = format!("{select} WHERE (namespace, name, uid) > ($1, $2, $3) {order}");
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(namespace.as_str()).bind(name.as_str());
            query.bind(uid.as_str()).fetch_all(pool).await?
        }
    };
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect())
}

/// Puts a page's facts in the staging table, in one transaction.
async fn write(conn: &mut AnyConnection, batch: Vec<(Key, StoredFacts)>) -> Result<u64, sqlx::Error> {
    let rows: Vec<Copied<'_>> = batch
        .iter()
        .map(|((namespace, name, uid, version), facts)| Copied {
            key: (namespace, name, uid),
            resource_version: version,
            facts,
        })
        .collect();
    let mut tx = conn.begin().await?;
    let staging = |rows| format!("INSERT INTO rebuilt_facts VALUES {}", values_sql(rows));
    in_statements(&mut tx, &rows, staging).await?;
    tx.commit().await?;
    Ok(batch.len() as u64)
}

/// Archived runs' rollups as read, for whoever counts them to parse and filter: records of
/// namespace, labels (JSON, empty unless the filter asks for labels) and facts (their stored
/// form), in one text. Neither names, JSON nor the facts' form hold the two separators (both
/// escape control characters).
pub struct StoredRuns(String);

const UNIT: char = '\u{1f}';
const RECORD: char = '\u{1e}';

impl StoredRuns {
    /// Each run's namespace, labels and facts.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.0.split_terminator(RECORD).filter_map(|record| {
            let mut fields = record.splitn(3, UNIT);
            Some((fields.next()?, fields.next()?, fields.next()?))
        })
    }
}

/// Windows asked of PostgreSQL at once: it reads one while the last is filtered here, each on
/// a core of its own where it has them (the insights' budget counts them as one read,
/// `store::CONNECTIONS` as two). SQLite is asked one at a time: it reads on a thread of this
/// process, and a second one's memory (glibc keeps an arena per thread) raised the peak of a
/// year's request from 62 to 67 MiB for no time saved.
fn windows_in_flight(pool: &AnyPool) -> usize {
    match pool.connect_options().database_url.scheme() {
        "sqlite" => 1,
        _ => 2,
    }
}

/// Bytes of records handed on at a time.
const CHUNK_BYTES: usize = 256 << 10;
/// Most windows one namespace's read is cut into, and the narrowest.
const WINDOWS: i64 = 256;
const DAY_MS: i64 = 86_400_000;

/// The rollups of runs whose ConfigMaps are gone, counted at or after `from`, of the namespaces
/// `filter` reads (one at a time, as lists read them) and of its pipeline, sent in chunks
/// (waiting while the counter is behind): the rest of the filter is the counter's to check. A
/// counter that has gone stops the read. Rows of an earlier namespace of that name, and the
/// runs (ConfigMap uids) in `skip`, are left out.
///
/// Each window of time is one row: the database joins its rows into one text (`string_agg`, in
/// both), because a driver's cost per row (sqlx hands SQLite's rows from its thread one at a
/// time) would otherwise be most of a year's read; and windows rather than `GROUP BY`, which
/// SQLite would sort in a temporary tree holding the whole range.
pub async fn archived(
    pool: &AnyPool,
    (filter, from): (&ExecutionFilter, Millis),
    incarnations: &Incarnations,
    skip: &HashSet<String>,
    to: &tokio::sync::mpsc::Sender<StoredRuns>,
) -> Result<(), sqlx::Error> {
    let namespaces: Vec<Option<&str>> = match filter.namespaces() {
        None => vec![None],
        Some(named) => named.into_iter().map(Some).collect(),
    };
    let in_flight = windows_in_flight(pool);
    let mut kept = String::new();
    for namespace in namespaces {
        let rows = Rows { namespace, pipeline: filter.pipeline.as_deref(), labels: filter.labels.is_some() };
        let parts = rows.parts(pool).await?;
        let Some(last) = parts.iter().map(|(_, last)| *last).max() else { continue };
        let width = ((last + 1 - from) / WINDOWS + 1).max(DAY_MS);
        let mut windows = Vec::new();
        for start in (0..).map(|i| from + i * width).take_while(|start| *start <= last) {
            windows.extend(parts.iter().filter(|(_, last)| start <= *last).map(|(held, _)| (*held, start)));
        }
        let reads = windows.into_iter().map(|(held, start)| rows.window(pool, held, start, start + width));
        let mut texts = futures::stream::iter(reads).buffered(in_flight);
        while let Some(text) = texts.next().await {
            if let Some(text) = text? {
                keep(&text, incarnations, skip, &mut kept);
            }
            if kept.len() >= CHUNK_BYTES && to.send(StoredRuns(std::mem::take(&mut kept))).await.is_err() {
                return Ok(());
            }
        }
    }
    if !kept.is_empty() {
        let _ = to.send(StoredRuns(kept)).await;
    }
    Ok(())
}

/// Archived facts are indexed by time in two parts (migration 0005): those short enough to be
/// held in the index, read from it alone, and the rest; a read asks each part that has rows.
/// A pipeline's indexes hold no facts, so its rows are read in one part, from the table.
#[derive(Clone, Copy)]
enum Held {
    InIndex,
    Long,
    Either,
}

impl Held {
    /// The condition of the part, as its indexes in migration 0005 state it, to the letter (a
    /// database uses a partial index only for a query that states its condition).
    fn condition(self) -> &'static str {
        match self {
            Held::InIndex => "AND length(facts) <= 512",
            Held::Long => "AND length(facts) > 512",
            Held::Either => "",
        }
    }
}

/// Archived rollups of one namespace (or all) and pipeline (or all).
struct Rows<'a> {
    namespace: Option<&'a str>,
    pipeline: Option<&'a str>,
    /// Whether the filter reads labels (else they are not read).
    labels: bool,
}

impl Rows<'_> {
    /// `SELECT {what} FROM run_facts WHERE` archived, of the namespace and pipeline, and `more`,
    /// whose placeholders come after theirs (numbered from `$3`).
    fn query<'q>(&'q self, what: &str, more: &str) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        let mut sql = format!("SELECT {what} FROM run_facts WHERE deleted_at IS NOT NULL {more}");
        // Only placeholders are written into the text; every value is bound.
        sql.push_str(match (self.namespace, self.pipeline) {
            (Some(_), Some(_)) => " AND namespace = $1 AND pipeline = $2",
            (Some(_), None) => " AND namespace = $1 AND $2 = ''",
            (None, Some(_)) => " AND $1 = '' AND pipeline = $2",
            (None, None) => " AND $1 = '' AND $2 = ''",
        });
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        query.bind(self.namespace.unwrap_or_default()).bind(self.pipeline.unwrap_or_default())
    }

    /// The parts to read, each with the latest time any of its rows counts at; none without
    /// rows (nearly every run's facts are held in the index: the other part is not asked).
    async fn parts(&self, pool: &AnyPool) -> Result<Vec<(Held, Millis)>, sqlx::Error> {
        let parts = match self.pipeline {
            Some(_) => &[Held::Either][..],
            None => &[Held::InIndex, Held::Long][..],
        };
        let mut read = Vec::new();
        for held in parts {
            let last: Option<Millis> = self.query("MAX(last_counted)", held.condition()).fetch_one(pool).await?.get(0);
            read.extend(last.map(|last| (*held, last)));
        }
        Ok(read)
    }

    /// Those of a part counted in `[start, end)`, as one text of records (see `keep`); none
    /// where none is.
    async fn window(
        &self,
        pool: &AnyPool,
        held: Held,
        start: Millis,
        end: Millis,
    ) -> Result<Option<String>, sqlx::Error> {
        let labels = if self.labels { "labels" } else { "''" };
        let what = format!(
            "string_agg(namespace || $5 || uid || $5 || COALESCE(CAST(configmap_created AS TEXT), '') \
             || $5 || {labels} || $5 || facts, $6)"
        );
        let range = format!("{} AND last_counted >= $3 AND last_counted < $4", held.condition());
        let query = self.query(&what, &range);
        let query = query.bind(start).bind(end).bind(UNIT.to_string()).bind(RECORD.to_string());
        query.fetch_one(pool).await.map(|row| row.get(0))
    }
}

/// Appends to `kept` the runs of one window's text that belong to their namespace as it is now
/// and are not in `skip`, as namespace, labels and facts.
fn keep(window: &str, incarnations: &Incarnations, skip: &HashSet<String>, kept: &mut String) {
    for record in window.split_terminator(RECORD) {
        let mut fields = record.splitn(5, UNIT);
        let mut field = || fields.next();
        let (Some(namespace), Some(uid), Some(created), Some(labels), Some(facts)) =
            (field(), field(), field(), field(), field())
        else {
            continue;
        };
        if skip.contains(uid) || !incarnations.current(namespace, created.parse::<i64>().ok()) {
            continue;
        }
        for (field, end) in [(namespace, UNIT), (labels, UNIT), (facts, RECORD)] {
            kept.push_str(field);
            kept.push(end);
        }
    }
}
