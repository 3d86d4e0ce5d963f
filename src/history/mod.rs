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

mod list;
mod store;
mod warm;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use sqlx::AnyPool;

use crate::index::{ExecutionEntry, ExecutionFilter, Index, Json, Position};
use crate::validate::ObjectRef;

pub use list::{Archived, merge};
pub use warm::{Warm, WarmSource};
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

    /// The URL with any password left out, for logs and errors.
    pub fn redacted(&self) -> String {
        match self.0.split_once("://").and_then(|(scheme, rest)| Some((scheme, rest.split_once('@')?))) {
            Some((scheme, (user, host))) => format!("{scheme}://{}@{host}", user.split(':').next().unwrap_or("")),
            None => self.0.clone(),
        }
    }
}

/// The archive's settings, from the command line.
#[derive(Clone, Debug)]
pub struct ArchiveSettings {
    pub url: ArchiveUrl,
    /// Rows of executions deleted from the cluster longer ago than this are pruned.
    pub retain: Duration,
}

/// How the archive is doing, for readiness and `/metrics`, and its connection once it has one,
/// for the API to read archived executions. Clones share it.
#[derive(Clone, Default)]
pub struct ArchiveStatus(Arc<Mutex<StatusInner>>, Arc<Mutex<Option<AnyPool>>>, Arc<AtomicU64>, Arc<Mutex<ReadFailure>>);

/// When a read of the archive last failed, and why.
type ReadFailure = Option<(std::time::Instant, String)>;

/// A snapshot of the archive's state.
#[derive(Clone, Debug, Default)]
pub struct StatusInner {
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

impl ArchiveStatus {
    pub fn get(&self) -> StatusInner {
        self.lock().clone()
    }

    fn update(&self, f: impl FnOnce(&mut StatusInner)) {
        f(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connected(&self, pool: AnyPool) {
        *self.1.lock().unwrap_or_else(|p| p.into_inner()) = Some(pool);
        self.changed();
    }

    /// Counts a change to what the archive holds.
    fn changed(&self) {
        self.2.fetch_add(1, Ordering::Release);
    }

    /// Changes every time what the archive holds may have: list pages remembered for one
    /// generation are made again for the next.
    pub fn generation(&self) -> u64 {
        self.2.load(Ordering::Acquire)
    }

    /// Whether pipelines count every archived run yet; why not.
    pub fn runs_loaded(&self) -> Result<(), String> {
        let status = self.get();
        match (status.runs_loaded, status.last_error) {
            (true, _) => Ok(()),
            (false, Some(error)) => Err(error),
            (false, None) => Err("archived runs are being loaded".to_owned()),
        }
    }

    fn pool(&self) -> Result<AnyPool, String> {
        let pool = self.1.lock().unwrap_or_else(|p| p.into_inner()).clone();
        pool.ok_or_else(|| self.get().last_error.unwrap_or_else(|| "not connected yet".to_owned()))
    }

    /// Up to `limit` archived executions matching `filter` after `after` (see `list`), and why
    /// the archive's rows are not among them when it cannot be read within `READ_TIMEOUT`:
    /// deletions not written yet are there either way.
    pub async fn list(
        &self,
        index: &Index,
        filter: &ExecutionFilter,
        after: Option<&Position>,
        limit: usize,
    ) -> (Archived, Option<String>) {
        let (mut items, pending) = list::pending(index, filter, after);
        let read = async {
            let pool = self.readable()?;
            let rows = list::rows(&pool, index, filter, (after, limit), &pending);
            let rows = tokio::time::timeout(READ_TIMEOUT, rows).await;
            let rows = rows.map_err(|_| format!("no answer within {READ_TIMEOUT:?}"));
            rows.and_then(|r| r.map_err(short)).inspect_err(|e| self.read_failed(e))
        };
        match read.await {
            Ok((rows, stopped)) => {
                items.extend(rows);
                (list::assemble(items, stopped, limit), None)
            }
            Err(error) => (list::assemble(items, None, limit), Some(error)),
        }
    }

    /// The connection, unless there is none yet or a read failed within `READ_BACKOFF`: while
    /// the database is away, requests learn it at once instead of each waiting for it.
    fn readable(&self) -> Result<AnyPool, String> {
        let failed = self.3.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match failed {
            Some((at, error)) if at.elapsed() < READ_BACKOFF => Err(error),
            _ => self.pool(),
        }
    }

    fn read_failed(&self, error: &str) {
        *self.3.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), error.to_owned()));
    }

    /// The archived version of `namespace/name` whose ConfigMap is gone (the latest deleted,
    /// where several were): its detail as served then, with `archived` and `deletedAt`. An
    /// error when the archive cannot be read within `READ_TIMEOUT`, so a missing execution is
    /// never passed off as one that does not exist.
    pub async fn deleted(&self, index: &Index, id: &ObjectRef) -> Result<Option<Bytes>, String> {
        // Deleted so lately that its row may not be written yet.
        if let Some((entry, at)) = index.departed().into_iter().find(|(entry, _)| *entry.id == *id) {
            return Ok(Some(Json::archived(&entry.detail.bytes, at).bytes));
        }
        let (namespace, name) = (id.namespace.as_str(), id.name.as_str());
        let pool = self.readable()?;
        let found = tokio::time::timeout(READ_TIMEOUT, store::deleted(&pool, namespace, name)).await;
        let found = found.map_err(|_| format!("no answer within {READ_TIMEOUT:?}"));
        let found = found.and_then(|f| f.map_err(short)).inspect_err(|e| self.read_failed(e))?;
        Ok(found.map(|(detail, deleted_at)| Json::archived(detail.as_bytes(), store::timestamp(deleted_at)).bytes))
    }

    /// Which of these executions the archive holds at their exact version (their ConfigMap's uid
    /// and resourceVersion): the one condition under which retention may delete a ConfigMap. One
    /// query per namespace.
    pub async fn holding<'e>(&self, entries: &[&'e ExecutionEntry]) -> Result<Vec<&'e ExecutionEntry>, String> {
        let pool = self.pool()?;
        let mut by_namespace: BTreeMap<&str, Vec<&'e ExecutionEntry>> = BTreeMap::new();
        for entry in entries {
            by_namespace.entry(entry.id.namespace.as_str()).or_default().push(entry);
        }
        let mut held = Vec::new();
        for (namespace, entries) in by_namespace {
            let names: Vec<&str> = entries.iter().map(|e| e.id.name.as_str()).collect();
            let rows = tokio::time::timeout(READ_TIMEOUT, store::versions(&pool, namespace, &names)).await;
            let rows = rows.map_err(|_| format!("no answer within {READ_TIMEOUT:?}"))?.map_err(short)?;
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

/// The longest a request waits for the archive.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after a failed read requests do without the archive, before one tries again.
const READ_BACKOFF: Duration = Duration::from_secs(5);

/// An error quoted in status and logs: the database's message, bounded.
fn short(error: impl std::fmt::Display) -> String {
    let text = error.to_string();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::ArchiveUrl;

    #[test]
    fn archive_urls_are_sqlite_files_or_postgres() {
        assert_eq!("sqlite:/tmp/h.db".parse(), Ok(ArchiveUrl("sqlite:///tmp/h.db?mode=rwc".into())));
        assert_eq!("sqlite:h.db".parse(), Ok(ArchiveUrl("sqlite://h.db?mode=rwc".into())));
        assert!("sqlite:".parse::<ArchiveUrl>().is_err());
        assert!("mysql://x".parse::<ArchiveUrl>().unwrap_err().contains("sqlite:PATH"));
        let pg: ArchiveUrl = "postgres://app:s3cret@db:5432/history".parse().unwrap();
        assert_eq!(pg.redacted(), "postgres://app@db:5432/history", "the password never shows");
    }
}
