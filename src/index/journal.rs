//! What the archive must still write: the latest version of each execution the index served,
//! or that its ConfigMap is gone. The index notes each change here under its own lock, which
//! costs a map insert; the archive's writer takes batches off the request and ingest paths.
//! Changes are kept by execution, not in sequence, so a writer that falls behind (a slow or
//! unreachable database) holds at most one note per execution, never a growing log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tokio::sync::Notify;

use super::ExecutionEntry;

/// One execution in the archive: the ConfigMap's namespace, name and uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArchiveKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl ArchiveKey {
    fn of(entry: &ExecutionEntry) -> Self {
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
    notes: Mutex<HashMap<ArchiveKey, Note>>,
    noted: Notify,
}

impl Journal {
    pub(super) fn served(&self, entry: &Arc<ExecutionEntry>) {
        self.note(ArchiveKey::of(entry), Note::Served(entry.clone(), Timestamp::now()));
    }

    pub(super) fn deleted(&self, entry: &Arc<ExecutionEntry>) {
        self.note(ArchiveKey::of(entry), Note::Deleted(entry.clone(), Timestamp::now()));
    }

    fn note(&self, key: ArchiveKey, note: Note) {
        self.lock().insert(key, note);
        self.0.noted.notify_one();
    }

    /// Up to `max` notes, taken out, in key order: replicas writing the same rows then lock
    /// them in the same order, so their transactions never deadlock. The writer puts back what
    /// it could not write.
    pub fn take(&self, max: usize) -> Vec<(ArchiveKey, Note)> {
        let mut notes = self.lock();
        let keys: Vec<ArchiveKey> = notes.keys().take(max).cloned().collect();
        let mut taken: Vec<(ArchiveKey, Note)> =
            keys.into_iter().filter_map(|k| notes.remove(&k).map(|n| (k, n))).collect();
        taken.sort_by(|(a, _), (b, _)| (&a.namespace, &a.name, &a.uid).cmp(&(&b.namespace, &b.name, &b.uid)));
        taken
    }

    /// Notes that were not written, back in the journal unless a newer one came meanwhile.
    pub fn put_back(&self, unwritten: Vec<(ArchiveKey, Note)>) {
        let mut notes = self.lock();
        for (key, note) in unwritten {
            notes.entry(key).or_insert(note);
        }
    }

    /// How many executions have notes not yet written.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes once a note has been made since the last call (or at once if one is pending).
    pub async fn noted(&self) {
        self.0.noted.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ArchiveKey, Note>> {
        self.0.notes.lock().unwrap_or_else(|p| p.into_inner())
    }
}
