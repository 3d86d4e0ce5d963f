//! The in-memory index: executions, rejections and the sync state of every shard (a watched
//! namespace, or the whole directory), behind one lock.
//!
//! Writers use three verbs, `apply`, `delete` and `reset`; a relist buffers outside the lock and
//! swaps in atomically, so readers only ever see complete snapshots. Every change bumps a revision
//! that entries remember and that subscribers are notified of, so later conditional polls and
//! streams can tell what changed and when. Responses are serialised once, on write.

mod entry;
mod ingest;
mod pipelines;
mod query;
mod shards;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

pub(crate) use entry::to_bytes;
pub use entry::{ExecutionEntry, RejectionEntry};
pub use ingest::ingest;
pub use pipelines::{Pipeline, PipelineEnvironment, ResolvedPipeline};
pub use query::{Cursor, CursorError, Filter, Page, Scope};
pub use shards::{Completeness, ShardState, ShardStatus};

use crate::validate::{Execution, ObjectRef, Rejection};

/// Newest first, then namespace and name: a total order, so pages are stable.
type SortKey = (Reverse<Timestamp>, ObjectRef);

/// The outcome of decoding one ConfigMap.
pub type Decoded = Result<Execution, Rejection>;

#[derive(Default)]
struct State {
    revision: u64,
    executions: HashMap<ObjectRef, Arc<ExecutionEntry>>,
    order: BTreeSet<SortKey>,
    rejections: BTreeMap<ObjectRef, Arc<RejectionEntry>>,
    shards: BTreeMap<String, ShardStatus>,
}

/// Shared handle to the index. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    state: Arc<RwLock<State>>,
    revision: watch::Sender<u64>,
    staleness: Duration,
}

impl Index {
    /// `staleness` bounds how long a failing shard's last good data is served unmarked.
    ///
    /// Revisions start at the current time in milliseconds, so a revision a client kept from an
    /// earlier process is (nearly always) below the new one and answers a long poll at once;
    /// `api::executions` answers one above it at once too.
    pub fn new(staleness: Duration) -> Self {
        let epoch = u64::try_from(Timestamp::now().as_millisecond()).unwrap_or_default();
        let state = State { revision: epoch, ..State::default() };
        Index { state: Arc::new(RwLock::new(state)), revision: watch::Sender::new(epoch), staleness }
    }

    /// Notified with the new revision after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic never happens under the lock (no user code runs there), so poison is benign.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn commit(&self, state: &mut State) {
        state.revision += 1;
        self.revision.send_replace(state.revision);
    }

    /// Adds or replaces one object. Writes for a shard that is not registered (a source stopped
    /// meanwhile) are ignored, here and in every other verb.
    pub fn apply(&self, shard: &str, decoded: Decoded) {
        let mut state = self.write();
        if !state.shards.contains_key(shard) {
            return;
        }
        let revision = state.revision + 1;
        state.insert(shard, decoded, revision, Timestamp::now());
        self.commit(&mut state);
    }

    /// Removes one object, whether it was served or rejected.
    pub fn delete(&self, id: &ObjectRef) {
        let mut state = self.write();
        if state.remove(id) {
            self.commit(&mut state);
        }
    }

    /// Replaces everything a shard owns with a complete relist and marks the shard synced.
    pub fn reset(&self, shard: &str, objects: Vec<Decoded>) {
        let mut state = self.write();
        if !state.shards.contains_key(shard) {
            return;
        }
        let owned = state.owned_by(shard);
        let revision = state.revision + 1;
        let now = Timestamp::now();
        let mut kept = BTreeSet::new();
        for decoded in objects {
            let id = match &decoded {
                Ok(e) => e.id.clone(),
                Err(r) => r.id.clone(),
            };
            // An unchanged object keeps its entry (and revision), so a relist is not a change.
            if !state.unchanged(&decoded) {
                state.insert(shard, decoded, revision, now);
            }
            kept.insert(id);
        }
        for id in owned.into_iter().filter(|id| !kept.contains(id)) {
            state.remove(&id);
        }
        if let Some(status) = state.shards.get_mut(shard) {
            status.synced(now);
        }
        self.commit(&mut state);
    }
}

impl State {
    /// Every object, served or rejected, that `shard` holds.
    fn owned_by(&self, shard: &str) -> Vec<ObjectRef> {
        let executions = self.executions.iter().filter(|(_, e)| &*e.shard == shard).map(|(id, _)| id);
        let rejections = self.rejections.iter().filter(|(_, r)| &*r.shard == shard).map(|(id, _)| id);
        executions.chain(rejections).cloned().collect()
    }

    fn insert(&mut self, shard: &str, decoded: Decoded, revision: u64, now: Timestamp) {
        let shard: Arc<str> = Arc::from(shard);
        match decoded {
            Ok(execution) => {
                self.remove(&execution.id);
                let entry = ExecutionEntry::new(execution, shard, revision, now);
                self.order.insert(entry.sort_key());
                self.executions.insert(entry.id.clone(), Arc::new(entry));
            }
            Err(rejection) => {
                self.remove(&rejection.id);
                let entry = RejectionEntry::new(rejection, shard, revision, now);
                self.rejections.insert(entry.rejection.id.clone(), Arc::new(entry));
            }
        }
    }

    fn remove(&mut self, id: &ObjectRef) -> bool {
        let execution = self.executions.remove(id);
        if let Some(e) = &execution {
            self.order.remove(&e.sort_key());
        }
        execution.is_some() | self.rejections.remove(id).is_some()
    }

    fn unchanged(&self, decoded: &Decoded) -> bool {
        match decoded {
            Ok(e) => self.executions.get(&e.id).is_some_and(|old| old.resource_version == e.resource_version),
            Err(r) => self.rejections.get(&r.id).is_some_and(|old| old.rejection == *r),
        }
    }
}

#[cfg(test)]
mod tests;
