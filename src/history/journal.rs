//! What the archive must still write: the latest version of each execution the index served,
//! or that its ConfigMap is gone. It subscribes to the index, which tells it each change under
//! its own lock, and noting one costs a map insert; the archive's writer takes batches off the request and ingest paths.
//! Changes are kept by execution, not in sequence, so a writer that falls behind (a slow or
//! unreachable database) holds at most one note per execution, never a growing log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tokio::sync::Notify;

use crate::index::{ExecutionEntry, Subscriber};

/// One execution in the archive: the ConfigMap's namespace, name and uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArchiveKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl ArchiveKey {
    pub fn of(entry: &ExecutionEntry) -> Self {
        ArchiveKey { namespace: entry.id.namespace.clone(), name: entry.id.name.clone(), uid: entry.uid.clone() }
    }
}

/// What to write for one execution.
#[derive(Clone)]
pub enum Note {
    /// This version was validated and served, at this time.
    Served(Arc<ExecutionEntry>, Timestamp),
    /// Its ConfigMap was deleted or lost its label, at this time: the version last served goes
    /// with it, in case that one was not written yet.
    Deleted(Arc<ExecutionEntry>, Timestamp),
}

/// The notes not yet written. Clones share them.
#[derive(Clone, Default)]
pub struct Journal(Arc<Inner>);

#[derive(Default)]
struct Inner {
    notes: Mutex<Notes>,
    noted: Notify,
    /// Told each time a batch is in the archive, for `settled`.
    written: Notify,
}

#[derive(Default)]
struct Notes {
    /// Not taken yet.
    pending: HashMap<ArchiveKey, Note>,
    /// Taken by the writer and not yet confirmed written: lists still find deletions here.
    writing: HashMap<ArchiveKey, Note>,
    /// Relists done, whose absentees the archive must mark deleted.
    synced: Vec<Synced>,
}

/// A complete relist of one namespace (or, from a directory, of every one): an archived
/// execution of it that the list did not hold, and that the index synced with that namespace
/// does not hold when the archive is reconciled, was deleted while nobody watched. No clock is
/// read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synced {
    /// The namespace relisted; `None` for a directory, which holds every namespace.
    pub namespace: Option<String>,
    /// The executions the list held.
    pub listed: std::collections::HashSet<ArchiveKey>,
}

impl Subscriber for Journal {
    fn served(&self, entry: &Arc<ExecutionEntry>) {
        // Restored from the archive at this very version: nothing to write (each start wrote
        // every live row again before, about 40 s of writing at 100 000).
        if entry.in_archive {
            return;
        }
        self.note(ArchiveKey::of(entry), Note::Served(entry.clone(), Timestamp::now()));
    }

    fn ended(&self, entry: &Arc<ExecutionEntry>, at: Timestamp) {
        self.note(ArchiveKey::of(entry), Note::Deleted(entry.clone(), at));
    }

    fn relisted(&self, namespace: Option<&str>, listed: &[&Arc<ExecutionEntry>]) {
        let listed = listed.iter().map(|entry| ArchiveKey::of(entry)).collect();
        self.synced(Synced { namespace: namespace.map(str::to_owned), listed });
    }
}

impl Journal {
    fn note(&self, key: ArchiveKey, note: Note) {
        self.lock().pending.insert(key, note);
        self.0.noted.notify_one();
    }

    /// Up to `max` notes, taken out, in key order: replicas writing the same rows then lock
    /// them in the same order, so their transactions never deadlock. The writer puts back what
    /// it could not write.
    pub fn take(&self, max: usize) -> Vec<(ArchiveKey, Note)> {
        let mut notes = self.lock();
        let keys: Vec<ArchiveKey> = notes.pending.keys().take(max).cloned().collect();
        let mut taken: Vec<(ArchiveKey, Note)> =
            keys.into_iter().filter_map(|k| notes.pending.remove(&k).map(|n| (k, n))).collect();
        taken.sort_by(|(a, _), (b, _)| (&a.namespace, &a.name, &a.uid).cmp(&(&b.namespace, &b.name, &b.uid)));
        notes.writing.extend(taken.iter().cloned());
        taken
    }

    fn synced(&self, synced: Synced) {
        let mut notes = self.lock();
        // One per namespace is enough: a later relist sees as much.
        notes.synced.retain(|s| s.namespace != synced.namespace);
        notes.synced.push(synced);
        drop(notes);
        self.0.noted.notify_one();
    }

    /// The relists to reconcile, taken out.
    pub fn take_synced(&self) -> Vec<Synced> {
        std::mem::take(&mut self.lock().synced)
    }

    /// Relists that could not be reconciled, to try again.
    pub fn put_back_synced(&self, unreconciled: Vec<Synced>) {
        let mut notes = self.lock();
        for synced in unreconciled {
            if !notes.synced.iter().any(|s| s.namespace == synced.namespace) {
                notes.synced.push(synced);
            }
        }
    }

    /// Everything taken and not confirmed written, pending again: the writer stopped.
    pub fn requeue(&self) {
        let mut notes = self.lock();
        let writing = std::mem::take(&mut notes.writing);
        for (key, note) in writing {
            notes.pending.entry(key).or_insert(note);
        }
    }

    /// A batch `take` gave is in the archive.
    pub fn written(&self, batch: &[(ArchiveKey, Note)]) {
        let mut notes = self.lock();
        for (key, _) in batch {
            notes.writing.remove(key);
        }
        drop(notes);
        self.0.written.notify_waiters();
    }

    /// Completes once every note made is in the archive (none pending, none being written).
    pub async fn settled(&self) {
        loop {
            let written = self.0.written.notified();
            tokio::pin!(written);
            // Registered before the check, so a batch written in between is not missed.
            written.as_mut().enable();
            if self.unwritten() == (0, 0) {
                return;
            }
            written.await;
        }
    }

    /// Every note not in the archive yet (the newest of each execution), taken out: the
    /// writer has stopped, and they go to the spool.
    pub fn take_unwritten(&self) -> Vec<(ArchiveKey, Note)> {
        let mut notes = self.lock();
        let mut all = std::mem::take(&mut notes.writing);
        all.extend(std::mem::take(&mut notes.pending));
        all.into_iter().collect()
    }

    /// Executions whose notes are not in the archive yet: versions served, and deletions.
    pub fn unwritten(&self) -> (usize, usize) {
        let notes = self.lock();
        let writing = notes.writing.iter().filter(|(key, _)| !notes.pending.contains_key(*key));
        let all = notes.pending.iter().chain(writing);
        all.fold((0, 0), |(served, deleted), (_, note)| match note {
            Note::Served(..) => (served + 1, deleted),
            Note::Deleted(..) => (served, deleted + 1),
        })
    }

    /// Notes that were not written, back in the journal unless a newer one came meanwhile.
    pub fn put_back(&self, unwritten: Vec<(ArchiveKey, Note)>) {
        let mut notes = self.lock();
        for (key, note) in unwritten {
            notes.writing.remove(&key);
            notes.pending.entry(key).or_insert(note);
        }
    }

    /// Executions deleted from the cluster that the archive may not hold yet, with when: lists
    /// serve them from here as archived, so none is missing while its row is being written.
    pub(super) fn departed(&self) -> Vec<(Arc<ExecutionEntry>, Timestamp)> {
        let notes = self.lock();
        let writing = notes.writing.iter().filter(|(key, _)| !notes.pending.contains_key(*key));
        let deleted = notes.pending.iter().chain(writing).filter_map(|(_, note)| match note {
            Note::Deleted(entry, at) => Some((entry.clone(), *at)),
            Note::Served(..) => None,
        });
        deleted.collect()
    }

    /// How many executions have notes not yet written.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// Nothing to write and no relist to reconcile.
    pub fn is_idle(&self) -> bool {
        let notes = self.lock();
        notes.pending.is_empty() && notes.synced.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes once a note has been made since the last call (or at once if one is pending).
    pub async fn noted(&self) {
        self.0.noted.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Notes> {
        self.0.notes.lock().unwrap_or_else(|p| p.into_inner())
    }
}
