//! The archive's one task: connect (retrying until the database answers), then write the
//! journal's notes in batches and prune old rows, for as long as the history module is on.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sqlx::AnyPool;

use super::runs::ArchivedLoad;
use super::{Archive, ArchiveSettings, store};
use super::{ArchiveKey, Journal, Synced};
use crate::index::Index;
use crate::model::ObjectRef;
use crate::quote::shorten;

/// Most notes written in one transaction.
const BATCH: usize = 500;
/// How long notes gather before a batch is written: a burst becomes one transaction.
const GATHER: Duration = Duration::from_millis(50);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Rows pruned per statement.
const PRUNE_BATCH: i64 = 1000;
/// Longest wait between retries of a failing database.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Runs until aborted.
pub async fn run(settings: ArchiveSettings, index: Index, status: Archive, schema_set: String) {
    let journal = status.journal().clone();
    let pool = connect(&settings, &status).await;
    if let Some(spool) = &settings.spool {
        replay(&pool, spool, &schema_set).await;
    }
    rollups(&pool, &status).await;
    let (mut prune_at, mut load_at) = (tokio::time::Instant::now(), tokio::time::Instant::now());
    let mut backoff = Duration::from_millis(100);
    let mut incarnations_seen = status.incarnations().generation();
    loop {
        if tokio::time::Instant::now() >= prune_at {
            prune(&pool, &settings, &status).await;
            // Rollups that could not be rebuilt at the start are tried again.
            rollups(&pool, &status).await;
            // Pipelines' history loaded again: without what was pruned, and counting a name
            // deleted and created again once.
            status.update(|s| s.runs_loaded = false);
            prune_at = tokio::time::Instant::now() + PRUNE_EVERY;
        }
        // A namespace given again under its name: its earlier runs leave its pipelines.
        if status.incarnations().generation() != incarnations_seen {
            incarnations_seen = status.incarnations().generation();
            status.update(|s| s.runs_loaded = false);
        }
        let loaded = status.status().runs_loaded;
        if !loaded && tokio::time::Instant::now() >= load_at {
            if !load_runs(&pool, &index, &status).await {
                load_at = tokio::time::Instant::now() + BACKOFF_MAX;
            }
            continue;
        }
        if journal.is_idle() {
            let wake = if loaded { prune_at } else { prune_at.min(load_at) };
            tokio::select! {
                _ = journal.noted() => {}
                _ = status.incarnations().changed() => continue,
                _ = tokio::time::sleep_until(wake) => continue,
            }
            tokio::time::sleep(GATHER).await;
        }
        let batch = journal.take(BATCH);
        // Versions first: an absentee is one the relist did not hold, whatever is being written.
        if batch.is_empty() {
            reconcile(&pool, &index, &journal, &status).await;
            continue;
        }
        write_batch(&pool, batch, &schema_set, &journal, &status, &mut backoff).await;
    }
}

/// Writes one batch of notes; a batch that fails is kept to retry after `backoff`, which
/// doubles up to `BACKOFF_MAX` and is reset by a write that succeeds.
async fn write_batch(
    pool: &AnyPool,
    batch: Vec<(ArchiveKey, super::Note)>,
    schema_set: &str,
    journal: &Journal,
    status: &Archive,
    backoff: &mut Duration,
) {
    match store::write(pool, &batch, schema_set).await {
        Ok(()) => {
            journal.written(&batch);
            status.changed();
            status.update(|s| {
                s.connected = true;
                s.last_error = None;
                s.written += batch.len() as u64;
                s.last_write = Some(Timestamp::now());
            });
            *backoff = Duration::from_millis(100);
        }
        Err(e) => {
            tracing::warn!(error = %e, notes = batch.len(), retry_in = ?backoff, "cannot write to the archive; keeping the notes");
            journal.put_back(batch);
            status.update(|s| {
                // Not ready until a write succeeds again.
                s.connected = false;
                s.last_error = Some(format!("cannot write to the archive: {}", shorten(e.to_string())));
                s.failures += 1;
            });
            tokio::time::sleep(*backoff).await;
            *backoff = (*backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// Rebuilds insights' rollups where they were made by other rules (or not yet, as right after
/// the migration that adds them). Notes wait meanwhile; a failure is tried again within the hour.
async fn rollups(pool: &AnyPool, status: &Archive) {
    match super::rollup::stale(pool).await {
        Ok(false) => return,
        Ok(true) => {}
        Err(e) => {
            tracing::warn!(error = %shorten(e.to_string()), "cannot read the insights rollups' version");
            return;
        }
    }
    let started = std::time::Instant::now();
    tracing::info!("rebuilding the insights rollups from the archived documents");
    match super::rollup::rebuild(pool).await {
        Ok(runs) => {
            tracing::info!(runs, took = ?started.elapsed(), "insights rollups rebuilt");
            status.changed();
        }
        Err(e) => {
            tracing::warn!(error = %shorten(e.to_string()), "cannot rebuild the insights rollups; trying again within the hour")
        }
    }
}

/// Loads every archived run into the index, for pipelines' whole history; on failure, the
/// status says why, and false.
async fn load_runs(pool: &AnyPool, index: &Index, status: &Archive) -> bool {
    let started = std::time::Instant::now();
    let mut load = ArchivedLoad::new(status, index);
    match store::archived_runs(pool, &mut load, status.incarnations()).await {
        Ok(()) => {
            let count = load.runs();
            load.finish(status, index);
            status.update(|s| s.runs_loaded = true);
            tracing::info!(runs = count, took = ?started.elapsed(), "archived runs loaded for pipelines");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load archived runs; pipelines count live runs meanwhile");
            status.update(|s| s.last_error = Some(format!("cannot load archived runs: {}", shorten(e.to_string()))));
            false
        }
    }
}

/// Marks deleted what relists found gone: archived executions of a relisted namespace that the
/// list did not hold and that are not live now (or live under another uid).
async fn reconcile(pool: &AnyPool, index: &Index, journal: &Journal, status: &Archive) {
    for synced in journal.take_synced() {
        let gone = async {
            let unseen = store::undeleted(pool, &synced).await?;
            let gone: Vec<ArchiveKey> = unseen.into_iter().filter(|key| gone(&synced, index, key)).collect();
            store::mark_deleted(pool, &gone, Timestamp::now()).await.map(|()| gone.len())
        };
        match gone.await {
            Ok(0) => {}
            Ok(marked) => {
                tracing::info!(namespace = synced.namespace, marked, "archived executions found deleted by a relist");
                status.changed();
                // Their runs join their pipelines' history.
                status.update(|s| s.runs_loaded = false);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reconcile the archive with a relist; trying again");
                journal.put_back_synced(vec![synced]);
                return;
            }
        }
    }
}

/// Whether an archived execution that exists in the archive was deleted, by its namespace's
/// relist: the list did not hold it, and this replica's index, synced with that namespace,
/// does not hold it now either. The index is asked too because the list is older than the
/// rows written since: one created after it (another replica wrote it, or this one did before
/// reconciling; a directory's versions do not even order) is live. No clock is read:
/// replicas' clocks may differ.
fn gone(synced: &Synced, index: &Index, key: &ArchiveKey) -> bool {
    if synced.listed.contains(key) {
        return false;
    }
    let id = ObjectRef { namespace: key.namespace.clone(), name: key.name.clone() };
    index.get(&id).is_none_or(|live| live.uid != key.uid)
}

/// Writes what the spool kept from the last shutdown, before any note of this run, and removes
/// it once written; a spool that cannot be written or read stays for the next start.
async fn replay(pool: &AnyPool, spool: &std::path::Path, schema_set: &str) {
    let rows = match super::spool::rows(spool) {
        Ok(rows) if rows.is_empty() => return,
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(spool = %spool.display(), error = %e, "cannot read the archive's spool; it is kept");
            return;
        }
    };
    let count = rows.len();
    match store::write_rows(pool, rows, schema_set).await {
        Ok(()) => match std::fs::remove_file(spool) {
            Ok(()) => tracing::info!(notes = count, spool = %spool.display(), "the spool's notes are in the archive"),
            Err(e) => tracing::warn!(spool = %spool.display(), error = %e, "written, but cannot remove the spool"),
        },
        Err(e) => {
            tracing::warn!(spool = %spool.display(), error = %shorten(e.to_string()), "cannot write the spool's notes yet; it is kept")
        }
    }
}

/// Connects and migrates, retrying with backoff; the status says why meanwhile.
async fn connect(settings: &ArchiveSettings, status: &Archive) -> AnyPool {
    let mut backoff = Duration::from_millis(200);
    loop {
        match store::open(&settings.url).await {
            Ok(pool) => {
                tracing::info!(archive = %settings.url.redacted(), "archive connected");
                status.connected(pool.clone());
                status.update(|s| {
                    s.connected = true;
                    s.last_error = None;
                });
                return pool;
            }
            Err(e) => {
                let message =
                    format!("cannot open the archive {}: {}", settings.url.redacted(), shorten(e.to_string()));
                tracing::warn!(retry_in = ?backoff, "{message}");
                status.update(|s| {
                    s.connected = false;
                    s.last_error = Some(message);
                });
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Prunes rows of executions deleted from the cluster longer ago than `--archive-retain`.
async fn prune(pool: &AnyPool, settings: &ArchiveSettings, status: &Archive) {
    let retain = SignedDuration::try_from(settings.retain).unwrap_or(SignedDuration::MAX);
    let Ok(before) = Timestamp::now().checked_sub(retain) else { return };
    loop {
        match store::prune(pool, before, PRUNE_BATCH).await {
            Ok(0) => return,
            Ok(n) => {
                status.update(|s| s.pruned += n);
                status.changed();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune the archive; trying again within the hour");
                return;
            }
        }
    }
}
