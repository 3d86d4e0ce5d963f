//! History that outlives its ConfigMaps: every execution version the index served, written to a
//! database (`--archive`), kept after its ConfigMap is deleted and pruned after
//! `--archive-retain`. SQLite (a file) for one replica, PostgreSQL for replicas sharing one
//! history; both through sqlx's `Any` driver, so there is one code path and one set of
//! migrations, in the SQL both speak.
//!
//! The index notes what changed in its `Journal`; the writer here takes batches of notes off the
//! request and ingest paths. A database that is slow or down delays nothing but the archive:
//! notes wait in the journal (one per execution at most), the module says why it is not ready,
//! and `/metrics` counts the failures.

mod incarnation;
mod journal;
mod list;
pub mod outbox;
mod rollup;
mod runs;
pub mod spool;
mod store;
mod warm;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use sqlx::AnyPool;

use crate::index::{DetailUnavailable, ExecutionEntry, Index};
use crate::insights::Millis;
use crate::model::ObjectRef;
use crate::query::{ExecutionFilter, Listing, Position};
use crate::quote::shorten;
use crate::wire::Json;

pub use journal::{ArchiveKey, Journal, Note, Synced};
pub use rollup::{FACTS_VERSION, StoredRuns};
pub use warm::{Filling, Stored, Warm, WarmSource};
pub use writer::run;

/// Where the archive lives: `sqlite:PATH` or `postgres://…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveUrl(String);

impl FromStr for ArchiveUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err("sqlite: needs a file, as in sqlite:/var/lib/execwatch/history.db".to_owned());
            }
            // Created when missing; the directory must exist.
            return Ok(ArchiveUrl(format!("sqlite://{path}?mode=rwc")));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(ArchiveUrl(url.to_owned()));
        }
        let shown: String = url.chars().take(40).collect();
        Err(format!("{shown:?} is not an archive: expected sqlite:PATH or postgres://USER@HOST/DATABASE"))
    }
}

impl ArchiveUrl {
    fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }

    /// The SQLite file, for a `sqlite:` archive.
    pub(super) fn sqlite_path(&self) -> Option<&str> {
        self.0.strip_prefix("sqlite://")?.strip_suffix("?mode=rwc")
    }

    /// The URL with its secrets left out, for logs and errors: the userinfo's password, and
    /// every query parameter that holds one or names a key (`password`, `sslpassword`,
    /// `sslkey`, …), whatever characters they contain.
    pub fn redacted(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            // Not a URL the parser reads (it is one sqlx read): show its scheme alone.
            return format!("{}://(unparsable)", self.0.split("://").next().unwrap_or_default());
        };
        if url.password().is_some() {
            let _ = url.set_password(None);
        }
        let secret = |key: &str| {
            let key = key.to_ascii_lowercase();
            ["pass", "key", "secret", "token"].iter().any(|word| key.contains(word))
        };
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.to_string(), if secret(&k) { "REDACTED".to_owned() } else { v.to_string() }))
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
}

/// The archive's settings, from the command line.
#[derive(Clone, Debug)]
pub struct ArchiveSettings {
    pub url: ArchiveUrl,
    /// Rows of executions deleted from the cluster longer ago than this are pruned.
    pub retain: Duration,
    /// Where the notes the database did not take by shutdown wait for the next start (see
    /// `spool`): beside a SQLite file by default, nowhere for PostgreSQL unless given.
    pub spool: Option<std::path::PathBuf>,
}

impl ArchiveSettings {
    /// The settings with the default spool.
    pub fn new(url: ArchiveUrl, retain: Duration) -> Self {
        let spool = url.sqlite_path().map(|path| format!("{path}.spool").into());
        ArchiveSettings { url, retain, spool }
    }
}

/// How the archive is doing, for readiness and `/metrics`, and its connection once it has one,
/// for the API to read archived executions. Clones share it.
#[derive(Clone, Default)]
pub struct Archive(Arc<Parts>);

#[derive(Default)]
struct Parts {
    status: Mutex<ArchiveStatus>,
    pool: Mutex<Option<AnyPool>>,
    /// Counts changes to what the archive holds (see `generation`).
    generation: AtomicU64,
    failed: Mutex<ReadFailure>,
    budget: ReadBudget,
    /// Insights' reads, apart: a year of runs holds its read for seconds, and must not leave
    /// lists without theirs.
    insights_budget: InsightsBudget,
    incarnations: incarnation::Incarnations,
    /// What the index told of and the archive does not hold yet.
    journal: Journal,
}

/// When the archive's connection last failed.
type ReadFailure = Option<std::time::Instant>;

/// Why an answer lacks the archive's rows. Callers of any namespace see these words, so they are
/// fixed phrases: the database's own message (which may name hosts, or values of other callers'
/// requests) goes to the log and to the history module's status, which only callers who may
/// read every namespace see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// Not connected, or the connection failed within `READ_BACKOFF`.
    #[error("the archive cannot be read: the database is not answering")]
    Unavailable,
    #[error("the archive cannot be read: no answer in time")]
    TimedOut,
    /// Over the read budget: this caller's, or everyone's.
    #[error("the archive is busy with other reads: try again shortly")]
    Busy,
    /// The database refused this request's own values (SQLSTATE class 22).
    #[error("the archive cannot answer a request with these values")]
    Refused,
    /// Any other error of the database's: a failure of this read alone.
    #[error("the archive cannot be read: the database failed this read")]
    Failed,
}

/// A snapshot of the archive's state.
#[derive(Clone, Debug, Default)]
pub struct ArchiveStatus {
    /// Connected and migrated.
    pub connected: bool,
    pub last_error: Option<String>,
    /// Execution versions and deletions written.
    pub written: u64,
    /// Batches that failed and were kept to retry.
    pub failures: u64,
    pub last_write: Option<Timestamp>,
    /// Rows pruned by `--archive-retain`.
    pub pruned: u64,
    /// Pipelines count the archived runs: they were loaded.
    pub runs_loaded: bool,
}

impl Archive {
    /// The archive of a cluster's namespaces, whose creation it follows (see `incarnation`);
    /// `None` for a directory source.
    pub fn of_cluster(cluster: Option<(kube::Client, crate::source::cluster::WatchSettings)>) -> Self {
        let incarnations = incarnation::Incarnations::new(cluster);
        Archive(Arc::new(Parts { incarnations, ..Default::default() }))
    }

    fn incarnations(&self) -> &incarnation::Incarnations {
        &self.0.incarnations
    }

    /// What the index tells the archive: subscribe it to the index (`Index::with_subscriber`).
    pub fn journal(&self) -> &Journal {
        &self.0.journal
    }

    pub fn status(&self) -> ArchiveStatus {
        self.lock().clone()
    }

    fn update(&self, f: impl FnOnce(&mut ArchiveStatus)) {
        f(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ArchiveStatus> {
        self.0.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connected(&self, pool: AnyPool) {
        *self.0.pool.lock().unwrap_or_else(|p| p.into_inner()) = Some(pool);
        self.changed();
    }

    /// Counts a change to what the archive holds.
    fn changed(&self) {
        self.0.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes every time what the archive holds may have: list pages remembered for one
    /// generation are made again for the next.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    /// Whether pipelines count every archived run yet; why not, in words any caller may see
    /// (the database's own are in the history module's status).
    pub fn runs_loaded(&self) -> Result<(), &'static str> {
        let status = self.status();
        match (status.runs_loaded, status.last_error) {
            (true, _) => Ok(()),
            (false, Some(_)) => Err("archived runs cannot be loaded: the archive is failing"),
            (false, None) => Err("archived runs are being loaded"),
        }
    }

    fn pool(&self) -> Result<AnyPool, ArchiveError> {
        let pool = self.0.pool.lock().unwrap_or_else(|p| p.into_inner()).clone();
        pool.ok_or_else(|| ArchiveError::NotConnected(self.status().last_error))
    }

    /// Up to `limit` archived executions matching `filter` after `after` (see `list`), and why
    /// the archive's rows are not among them when it cannot be read: deletions not written yet
    /// are there either way. An empty scope asks nothing of the database.
    pub async fn list(
        &self,
        index: &Index,
        filter: &ExecutionFilter,
        after: Option<&Position>,
        limit: usize,
    ) -> (Listing, Option<Unreadable>) {
        let (mut items, pending) = list::pending(&self.departed(index), filter, after);
        let query = store::ArchivedQuery::of(filter);
        if query.namespaces.as_ref().is_some_and(Vec::is_empty) {
            return (Listing::first(items, None, limit), None);
        }
        let reader = budget_key(query.namespaces.as_deref());
        let incarnations = self.incarnations();
        let query = &query;
        let rows = self.read(&reader, |pool| async move {
            list::rows(&pool, (index, incarnations), (filter, query), (after, limit), &pending).await
        });
        match rows.await {
            Ok((rows, stopped)) => {
                items.extend(rows);
                (Listing::first(items, stopped, limit), None)
            }
            Err(unreadable) => (Listing::first(items, None, limit), Some(unreadable)),
        }
    }

    /// Runs ended that the archive may not hold yet (the journal holds one note per ConfigMap):
    /// insights count them from here while their rows are being written.
    pub fn ended_unwritten(&self) -> Vec<Arc<ExecutionEntry>> {
        self.0.journal.departed().into_iter().map(|(entry, _)| entry).collect()
    }

    /// The insights rollups of runs whose ConfigMaps are gone, counted at or after `from`, of
    /// the namespaces and pipeline `filter` names, in chunks sent `to` (see `rollup::archived`),
    /// leaving out the runs (ConfigMap uids) in `skip`: those counted from the index and from
    /// `ended_unwritten`, whose rows may be written while this reads. Within the read
    /// budget, and `INSIGHTS_TIMEOUT`: a year of an archive takes longer than a page.
    pub async fn insight_rows(
        &self,
        (filter, from): (&ExecutionFilter, Millis),
        skip: &HashSet<String>,
        to: &tokio::sync::mpsc::Sender<StoredRuns>,
    ) -> Result<(), Unreadable> {
        let namespaces = filter.namespaces();
        if namespaces.as_ref().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        let reader = budget_key(namespaces.as_deref());
        let incarnations = self.incarnations();
        let read = |pool: AnyPool| async move { rollup::archived(&pool, (filter, from), incarnations, skip, to).await };
        self.read_within((&self.0.insights_budget.0, &reader), INSIGHTS_TIMEOUT, read).await
    }

    /// Executions ended that the archive may not hold yet (see `Journal`), each with when: the
    /// latest end of each name that is not live again.
    pub fn departed(&self, index: &Index) -> Vec<(Arc<ExecutionEntry>, Timestamp)> {
        let mut departed = self.0.journal.departed();
        let ids: Vec<ObjectRef> = departed.iter().map(|(entry, _)| (*entry.id).clone()).collect();
        let mut live = index.which_live(&ids).into_iter();
        departed.retain(|_| !live.next().unwrap_or(false));
        departed.sort_by(|(a, at), (b, bt)| (&a.id, std::cmp::Reverse(at)).cmp(&(&b.id, std::cmp::Reverse(bt))));
        departed.dedup_by(|later, first| later.0.id == first.0.id);
        departed
    }

    /// Runs one read of the archive for a request, within the read budget of `reader` (the
    /// namespaces it reads) and `READ_TIMEOUT`. Only a failed connection makes the next
    /// requests do without the archive for `READ_BACKOFF`: a slow or refused read fails alone.
    async fn read<T, F, Fut>(&self, reader: &str, query: F) -> Result<T, Unreadable>
    where
        F: FnOnce(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.read_within((&self.0.budget, reader), READ_TIMEOUT, query).await
    }

    /// `read`, within another budget and with a timeout of its own.
    async fn read_within<T, F, Fut>(
        &self,
        (budget, reader): (&ReadBudget, &str),
        timeout: Duration,
        query: F,
    ) -> Result<T, Unreadable>
    where
        F: FnOnce(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let pool = self.readable()?;
        let _permit = budget.enter(reader).await?;
        // Boxed: a query's future (sqlx's) is kilobytes, and would otherwise be part of every
        // request future that might read the archive, long polls held for minutes included.
        let error = match tokio::time::timeout(timeout, Box::pin(query(pool))).await {
            Ok(Ok(rows)) => return Ok(rows),
            Ok(Err(error)) => error,
            Err(_) => {
                tracing::warn!(reader, ?timeout, "an archive read took too long; it alone fails");
                return Err(Unreadable::TimedOut);
            }
        };
        if is_connection_failure(&error) {
            tracing::warn!(error = %shorten(error.to_string()), backoff = ?READ_BACKOFF, "the archive's connection failed");
            *self.0.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
            return Err(Unreadable::Unavailable);
        }
        if is_data_exception(&error) {
            tracing::debug!(error = %shorten(error.to_string()), "the archive refused a request's values");
            return Err(Unreadable::Refused);
        }
        tracing::warn!(error = %shorten(error.to_string()), "an archive read failed");
        Err(Unreadable::Failed)
    }

    /// The connection, unless there is none yet or it failed within `READ_BACKOFF`: while the
    /// database is away, requests learn it at once instead of each waiting for it.
    fn readable(&self) -> Result<AnyPool, Unreadable> {
        let failed = *self.0.failed.lock().unwrap_or_else(|p| p.into_inner());
        match failed {
            Some(at) if at.elapsed() < READ_BACKOFF => Err(Unreadable::Unavailable),
            _ => self.pool().map_err(|_| Unreadable::Unavailable),
        }
    }

    /// The archived version of `namespace/name` whose ConfigMap is gone (the latest deleted,
    /// where several were): its detail as served then, with `archived` and `deletedAt`. An
    /// error when the archive cannot be read, so a missing execution is never passed off as one
    /// that does not exist.
    pub async fn deleted(&self, index: &Index, id: &ObjectRef) -> Result<Option<Bytes>, Unreadable> {
        // Deleted so lately that its row may not be written yet.
        if let Some((entry, at)) = self.departed(index).into_iter().find(|(entry, _)| *entry.id == *id) {
            let detail = entry.detail().await.map_err(|e| match e {
                DetailUnavailable::Unreadable => Unreadable::Unavailable,
                DetailUnavailable::Replaced => Unreadable::Failed,
            })?;
            return Ok(Some(Json::archived(&detail, at).bytes));
        }
        let (namespace, name) = (id.namespace.as_str(), id.name.as_str());
        let incarnations = self.incarnations();
        let found =
            self.read(namespace, |pool| async move { store::deleted(&pool, namespace, name, incarnations).await });
        let found = found.await?;
        Ok(found.map(|(detail, deleted_at)| Json::archived(detail.as_bytes(), store::timestamp(deleted_at)).bytes))
    }

    /// Which of these executions the archive holds at their exact version (their ConfigMap's uid
    /// and resourceVersion): the one condition under which retention may delete a ConfigMap. One
    /// query per namespace.
    pub async fn holding<'e>(&self, entries: &[&'e ExecutionEntry]) -> Result<Vec<&'e ExecutionEntry>, ArchiveError> {
        let pool = self.pool()?;
        let mut by_namespace: BTreeMap<&str, Vec<&'e ExecutionEntry>> = BTreeMap::new();
        for entry in entries {
            by_namespace.entry(entry.id.namespace.as_str()).or_default().push(entry);
        }
        let mut held = Vec::new();
        for (namespace, entries) in by_namespace {
            let names: Vec<&str> = entries.iter().map(|e| e.id.name.as_str()).collect();
            let rows = tokio::time::timeout(READ_TIMEOUT, store::versions(&pool, namespace, &names)).await;
            let rows = rows
                .map_err(|_| ArchiveError::TimedOut(READ_TIMEOUT))?
                .map_err(|e| ArchiveError::Failed(shorten(e.to_string())))?;
            let rows: HashSet<(String, String, String)> = rows.into_iter().collect();
            held.extend(
                entries
                    .into_iter()
                    .filter(|e| rows.contains(&(e.id.name.clone(), e.uid.clone(), e.resource_version.clone()))),
            );
        }
        Ok(held)
    }
}

/// The plan of an archived list's first page over `namespaces` (all where `None`) with these
/// filters, on the archive at `url`, a line per step. PostgreSQL is told to avoid sequential
/// scans, so that a test's few rows are planned as a large archive's would be.
#[cfg(any(test, feature = "fixtures"))]
pub async fn archived_plan(
    url: &ArchiveUrl,
    namespaces: Option<Vec<&str>>,
    pipeline: Option<&str>,
    phase: Option<&str>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url.0).await?;
    if !url.is_sqlite() {
        sqlx::query("SET enable_seqscan = off").execute(&pool).await?;
    }
    let query = store::ArchivedQuery { namespaces, pipeline, phase };
    let plan = store::archived_plan(&pool, &query, url.is_sqlite()).await;
    pool.close().await;
    plan
}

/// Rebuilds the insights rollups of the archive at `url` (see `rollup`): the number of runs.
pub async fn rebuild_rollups(url: &ArchiveUrl) -> Result<u64, ArchiveError> {
    let failed = |e: sqlx::Error| ArchiveError::Failed(shorten(e.to_string()));
    let pool = store::open(url).await.map_err(failed)?;
    let runs = rollup::rebuild(&pool).await.map_err(failed);
    pool.close().await;
    runs
}

/// Moves the journal's notes that are not in the archive (the writer has stopped) to the
/// spool: how many, or why they could not be kept (then they stay in the journal).
pub fn spool_unwritten(settings: &ArchiveSettings, journal: &Journal) -> Result<usize, ArchiveError> {
    let Some(path) = &settings.spool else { return Err(ArchiveError::NoSpool) };
    let notes = journal.take_unwritten();
    let rows: Vec<store::StoredNote> = notes.iter().map(|(key, note)| store::StoredNote::of(key, note)).collect();
    spool::save(path, &rows).map_err(|e| {
        journal.put_back(notes);
        ArchiveError::Spool(path.clone(), e.to_string())
    })
}

/// Why the archive could not do what the service itself asked of it (not a request's read:
/// those fail with an `Unreadable`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// Not connected; the connection's last error, where it failed.
    #[error("not connected{}", .0.as_ref().map(|e| format!(": {e}")).unwrap_or_else(|| " yet".to_owned()))]
    NotConnected(Option<String>),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
    #[error("no --archive-spool is set")]
    NoSpool,
    #[error("cannot write the spool {path}: {1}", path = .0.display())]
    Spool(std::path::PathBuf, String),
}

/// The longest a request waits for the archive.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an insights read of the archive may take: its range may be years of runs.
const INSIGHTS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a failed connection requests do without the archive, before one tries again.
const READ_BACKOFF: Duration = Duration::from_secs(5);
/// Requests' reads of the archive at once, in all: the pool's other connections stay the
/// writer's and the pruner's (see `store::CONNECTIONS`).
const READS: usize = 4;
/// Reads at once of one reader (the namespaces a request reads): one caller's flood waits on
/// itself, not on everyone else.
const READS_PER_READER: usize = 2;
/// The longest a read waits for one of the `READS`, before it is answered busy.
const READ_QUEUE: Duration = Duration::from_millis(500);

/// Insights' reads of the archive at once: one, beside the lists' `READS` (see
/// `store::CONNECTIONS`); others wait their turn for up to `INSIGHTS_QUEUE`, two of one reader
/// at most.
const INSIGHTS_READS: usize = 1;
const INSIGHTS_PER_READER: usize = 2;
const INSIGHTS_QUEUE: Duration = Duration::from_secs(5);

/// The archive's reads in flight, in all and by reader, and how long one waits for a place.
struct ReadBudget {
    total: tokio::sync::Semaphore,
    per_reader: usize,
    queue: Duration,
    readers: Mutex<std::collections::HashMap<String, usize>>,
}

impl Default for ReadBudget {
    fn default() -> Self {
        ReadBudget::new(READS, READS_PER_READER, READ_QUEUE)
    }
}

/// The budget of insights' reads.
struct InsightsBudget(ReadBudget);

impl Default for InsightsBudget {
    fn default() -> Self {
        InsightsBudget(ReadBudget::new(INSIGHTS_READS, INSIGHTS_PER_READER, INSIGHTS_QUEUE))
    }
}

/// One read's place in the budget, given back when dropped.
struct ReadPermit<'a> {
    budget: &'a ReadBudget,
    reader: String,
    _total: tokio::sync::SemaphorePermit<'a>,
}

impl ReadBudget {
    fn new(total: usize, per_reader: usize, queue: Duration) -> Self {
        ReadBudget { total: tokio::sync::Semaphore::new(total), per_reader, queue, readers: Mutex::default() }
    }

    /// A place for a read of `reader`: at once `Busy` where that reader has `per_reader` in
    /// flight, or after `queue` where every place is taken.
    async fn enter(&self, reader: &str) -> Result<ReadPermit<'_>, Unreadable> {
        {
            let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            let count = readers.entry(reader.to_owned()).or_default();
            if *count >= self.per_reader {
                return Err(Unreadable::Busy);
            }
            *count += 1;
        }
        match tokio::time::timeout(self.queue, self.total.acquire()).await {
            Ok(Ok(permit)) => Ok(ReadPermit { budget: self, reader: reader.to_owned(), _total: permit }),
            _ => {
                self.leave(reader);
                Err(Unreadable::Busy)
            }
        }
    }

    fn leave(&self, reader: &str) {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = readers.get_mut(reader) {
            *count -= 1;
            if *count == 0 {
                readers.remove(reader);
            }
        }
    }
}

impl Drop for ReadPermit<'_> {
    fn drop(&mut self) {
        self.budget.leave(&self.reader);
    }
}

/// The reader a list's read is counted against: the namespaces it reads (`*` for all).
fn budget_key(namespaces: Option<&[&str]>) -> String {
    namespaces.map_or_else(|| "*".to_owned(), |all| all.join(","))
}

/// The database is out of reach (not this read's fault): requests back off.
fn is_connection_failure(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// The database refused a value of the request (SQLSTATE class 22, "data exception": a NUL in
/// text, a number out of range): that request's failure, not the archive's.
fn is_data_exception(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().is_some_and(|code| code.starts_with("22")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn insights_reads_wait_their_turn_apart_from_the_lists() {
        let parts = Parts::default();
        let (lists, insights) = (&parts.budget, &parts.insights_budget.0);
        let year = insights.enter("team-a").await.expect("the one insights read");
        let mut next = Box::pin(insights.enter("team-b"));
        assert!(futures::poll!(next.as_mut()).is_pending(), "a second insights read waits its turn");
        // Every list read still has its place while a year of runs is being read.
        let mut pages = Vec::new();
        for reader in ["team-a", "team-b", "team-c", "team-d"] {
            pages.push(lists.enter(reader).await.expect("a list's read"));
        }
        assert_eq!(lists.enter("team-e").await.err(), Some(Unreadable::Busy), "the lists' own limit holds");
        drop(year);
        assert!(next.await.is_ok(), "and goes once the first is done");
    }

    #[test]
    fn archive_urls_are_sqlite_files_or_postgres() {
        assert_eq!("sqlite:/tmp/h.db".parse(), Ok(ArchiveUrl("sqlite:///tmp/h.db?mode=rwc".into())));
        assert_eq!("sqlite:h.db".parse(), Ok(ArchiveUrl("sqlite://h.db?mode=rwc".into())));
        assert!("sqlite:".parse::<ArchiveUrl>().is_err());
        assert!("mysql://x".parse::<ArchiveUrl>().unwrap_err().contains("sqlite:PATH"));
        let pg: ArchiveUrl = "postgres://app:s3cret@db:5432/history".parse().unwrap();
        assert_eq!(pg.redacted(), "postgres://app@db:5432/history", "the password never shows");
        let pg: ArchiveUrl = "postgres://app:S3cr3t@pw@db/h?password=S3cr3t&sslmode=require&sslkey=/k".parse().unwrap();
        assert_eq!(pg.redacted(), "postgres://app@db/h?password=REDACTED&sslmode=require&sslkey=REDACTED");
    }
}
