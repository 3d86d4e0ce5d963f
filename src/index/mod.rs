//! The in-memory index: executions, rejections and the sync state of every shard (a watched
//! namespace, or the whole directory), behind one lock.
//!
//! Writers use three verbs, `apply`, `delete` and `reset`; a relist buffers outside the lock and
//! swaps in atomically, so readers only ever see complete snapshots. Every change bumps a revision
//! that entries remember and that subscribers are notified of, so later conditional polls and
//! streams can tell what changed and when. Responses are serialised once, on write.

mod archived;
mod changes;
mod detail;
mod entry;
mod ingest;
mod pipelines;
mod query;
mod relist;
mod shards;
mod subscriber;

use crate::insights::RunFacts;
use crate::metrics::{DeploymentMetrics, SourceMetrics};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

pub use archived::{ArchivedRun, ArchivedTotals};
pub use changes::{Change, Changed, Lost};
pub use detail::{DetailBody, DetailUnavailable, StoredDetails};
use entry::Stamped;
pub use entry::{ExecutionEntry, Listed, Prepared, RejectionEntry};
pub use ingest::ingest;
pub use pipelines::{PipelinePage, ResolvedPipeline};
pub use query::NamedPage;
pub use subscriber::{Both, Subscriber};

use crate::model::{Execution, ObjectRef, Phase, Rejection};
use crate::wire::{Json, ShardStatus};

/// Newest first, then namespace and name: a total order, so pages are stable.
type SortKey = (Reverse<Timestamp>, Arc<ObjectRef>);

/// Executions in the index's order. Every list reads one (or a merge of a few) of these.
type Postings = BTreeMap<SortKey, Arc<ExecutionEntry>>;

/// The outcome of decoding one ConfigMap.
pub type Decoded = Result<Execution, Rejection>;

/// A value a filter can ask for: each has its own postings, so a filtered page costs
/// O(page + log N) however rare its matches are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Namespace(String),
    Pipeline(String),
    NamespacedPipeline(String, String),
    Phase(Phase),
    Environment(String),
    Label(String, String),
}

/// A `Key` borrowed from the execution it lists: grouping a listing by these allocates only
/// one `Key` per distinct value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum KeyRef<'a> {
    Namespace(&'a str),
    Pipeline(&'a str),
    NamespacedPipeline(&'a str, &'a str),
    Phase(Phase),
    Environment(&'a str),
    Label(&'a str, &'a str),
}

impl KeyRef<'_> {
    fn to_key(self) -> Key {
        match self {
            KeyRef::Namespace(ns) => Key::Namespace(ns.to_owned()),
            KeyRef::Pipeline(p) => Key::Pipeline(p.to_owned()),
            KeyRef::NamespacedPipeline(ns, p) => Key::NamespacedPipeline(ns.to_owned(), p.to_owned()),
            KeyRef::Phase(phase) => Key::Phase(phase),
            KeyRef::Environment(env) => Key::Environment(env.to_owned()),
            KeyRef::Label(k, v) => Key::Label(k.to_owned(), v.to_owned()),
        }
    }
}

#[derive(Default)]
struct State {
    revision: u64,
    executions: HashMap<Arc<ObjectRef>, Arc<ExecutionEntry>>,
    order: Postings,
    by: HashMap<Key, Postings>,
    /// Resolved pipelines by namespace and name, kept current by `commit`.
    pipelines: BTreeMap<(String, String), Arc<ResolvedPipeline>>,
    /// Pipelines whose executions changed since the last commit.
    dirty: BTreeSet<(String, String)>,
    rejections: BTreeMap<ObjectRef, Arc<RejectionEntry>>,
    shards: BTreeMap<String, ShardStatus>,
    /// Recent changes to executions and pipelines, for streams.
    changes: changes::History,
    /// Executions by namespace and phase, for metrics.
    tally: BTreeMap<(String, Phase), i64>,
    /// Runs whose ConfigMaps are gone, for pipelines' whole history.
    archived: archived::ArchivedRuns,
}

/// Shared handle to the index. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    state: Arc<RwLock<State>>,
    revision: watch::Sender<u64>,
    staleness: Duration,
    /// Failed lists and watches, counted for `/metrics`.
    restarts: SourceMetrics,
    /// Deployments seen happen, for `/metrics`.
    deployments: DeploymentMetrics,
    /// Told of every version served, every run ended and every relist (the archive's journal,
    /// where there is an archive). Where there is one, ended runs are kept, as archived.
    subscriber: Option<Arc<dyn Subscriber>>,
    /// Names this index among replicas and restarts: a stream's event ids carry it, so an id
    /// another process issued is never read as a place in this one's history.
    instance: u32,
    /// Seals event ids, so that they say nothing of other namespaces' changes.
    id_secret: Arc<[u8; 32]>,
}

/// 32 bytes from the operating system's random source. Without one the service cannot promise
/// what its event ids hide, so it stops.
fn new_secret() -> Arc<[u8; 32]> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random source");
    Arc::new(secret)
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
        Index {
            state: Arc::new(RwLock::new(state)),
            revision: watch::Sender::new(epoch),
            staleness,
            subscriber: None,
            restarts: SourceMetrics::default(),
            deployments: DeploymentMetrics::default(),
            instance: fastrand::u32(..),
            id_secret: new_secret(),
        }
    }

    /// What tells this index's event ids from another process's.
    pub fn instance(&self) -> u32 {
        self.instance
    }

    /// The secret this index seals its event ids with (see `api::stream::EventId`).
    pub fn id_secret(&self) -> &[u8; 32] {
        &self.id_secret
    }

    /// Tells `subscriber` of every change, and keeps ended runs among their pipelines' archived
    /// ones: there is an archive.
    pub fn with_subscriber(mut self, subscriber: Arc<dyn Subscriber>) -> Self {
        self.subscriber = Some(subscriber);
        self
    }

    /// Lists and watches that failed and started over, per source.
    pub fn restarts(&self) -> &SourceMetrics {
        &self.restarts
    }

    /// Deployments seen happen, by namespace and environment.
    pub fn deployments(&self) -> &DeploymentMetrics {
        &self.deployments
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

    /// Ends every change: pipelines whose executions changed are resolved again (only those),
    /// and subscribers learn the new revision.
    fn commit(&self, state: &mut State) {
        self.commit_spread(state, false);
    }

    /// `commit`, its pipelines resolved on every core where `spread` (on a blocking thread).
    fn commit_spread(&self, state: &mut State, spread: bool) {
        state.revision += 1;
        state.resolve_dirty_pipelines(spread);
        self.revision.send_replace(state.revision);
    }

    /// Adds or replaces one object. Writes for a shard that is not registered (a source stopped
    /// meanwhile) are ignored, here and in every other verb.
    pub fn apply(&self, shard: &str, object: impl Into<Prepared>) {
        let object = object.into().stamp(&Arc::from(shard), Timestamp::now());
        // Off the lock: what the new version shows deployed.
        let facts = match &object {
            Stamped::Execution(entry) => Some(RunFacts::of(&entry.view)),
            Stamped::Rejection(_) => None,
        };
        let mut state = self.write();
        if !state.shards.contains_key(shard) {
            return;
        }
        if let Some(facts) = &facts {
            self.count_deployments(object.id(), state.executions.get(object.id()).map(|e| &**e), facts);
        }
        self.insert(&mut state, object);
        self.commit(&mut state);
    }

    /// Counts the environments a new version (`facts`) shows deployed that the version it
    /// replaces did not. Only changes seen one at a time count: a relist's runs may have
    /// finished long ago.
    fn count_deployments(&self, id: &ObjectRef, before: Option<&ExecutionEntry>, facts: &RunFacts<'_>) {
        for env in &facts.environments {
            let Some(deployed) = env.deployment() else { continue };
            let was = before.and_then(|b| b.view.environments.iter().find(|e| e.name == env.name)).map(|e| e.phase);
            if was != Some(deployed.phase) {
                let result = if deployed.phase == Phase::Succeeded { "succeeded" } else { "failed" };
                let took = deployed.took.and_then(|ms| u64::try_from(ms).ok()).map(Duration::from_millis);
                self.deployments.deployed(&id.namespace, &env.name, result, took);
            }
        }
    }

    /// Adds or replaces one object and notes it for the archive: the version served, or, where
    /// a rejection replaces a served execution, that execution's end (it is served no more,
    /// and the archive keeps it as it was, as it keeps a deleted one).
    fn insert(&self, state: &mut State, object: Stamped) {
        let rejected = match &object {
            Stamped::Rejection(r) => Some(r.clone()),
            Stamped::Execution(_) => None,
        };
        match state.insert(object) {
            (_, Some(served)) => {
                if let Some(subscriber) = &self.subscriber {
                    subscriber.served(&served);
                }
            }
            (Some(ended), None) => {
                let at = self.archived_now();
                self.note_deleted(state, Removed::Execution(ended), at);
            }
            (None, None) => {}
        }
        if let (Some(subscriber), Some(rejection)) = (&self.subscriber, rejected) {
            subscriber.rejected(&rejection);
        }
    }

    /// Removes one object, whether it was served or rejected.
    pub fn delete(&self, id: &ObjectRef) {
        let mut state = self.write();
        let archived = self.archived_now();
        if let Some(removed) = state.remove(id, archived) {
            self.note_deleted(&mut state, removed, archived);
            self.commit(&mut state);
        }
    }

    /// When a run that ends now is archived (to the millisecond, as the archive records it),
    /// where ended runs are kept.
    fn archived_now(&self) -> Option<Timestamp> {
        let now = Timestamp::now();
        self.subscriber.as_ref().map(|_| Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now))
    }

    /// Tells the subscriber a run ended, and counts it among its pipeline's archived runs.
    fn note_deleted(&self, state: &mut State, removed: Removed, at: Option<Timestamp>) {
        if let (Some(subscriber), Removed::Execution(entry), Some(at)) = (&self.subscriber, removed, at) {
            Index::archive_run(state, &entry, at);
            subscriber.ended(&entry, at);
        }
    }

    /// Which of these names the index serves, under one lock: an archived page asks once, for
    /// every row it matched, not once per row.
    pub fn which_live(&self, ids: &[ObjectRef]) -> Vec<bool> {
        let state = self.read();
        ids.iter().map(|id| state.executions.contains_key(id)).collect()
    }

    /// Whether the index holds this version of the object for `shard` already, so a relist
    /// need not decode it again. Versions are opaque and never empty for a ConfigMap.
    pub fn holds(&self, shard: &str, id: &ObjectRef, resource_version: &str) -> bool {
        let state = self.read();
        !resource_version.is_empty()
            && match state.executions.get(id) {
                Some(e) => &*e.shard == shard && e.resource_version == resource_version,
                None => state
                    .rejections
                    .get(id)
                    .is_some_and(|r| &*r.shard == shard && r.rejection.resource_version == resource_version),
            }
    }
}

/// What `State::remove` took out.
enum Removed {
    Execution(Arc<ExecutionEntry>),
    Rejection,
}

impl State {
    /// Every object, served or rejected, that `shard` holds.
    fn owned_by(&self, shard: &str) -> Vec<ObjectRef> {
        let executions = self.executions.values().filter(|e| &*e.shard == shard).map(|e| (*e.id).clone());
        let rejections = self.rejections.iter().filter(|(_, r)| &*r.shard == shard).map(|(id, _)| id.clone());
        executions.chain(rejections).collect()
    }

    /// Adds or replaces an object: the execution it replaces, and the one it now serves, where
    /// either is one.
    fn insert(&mut self, object: Stamped) -> (Option<Arc<ExecutionEntry>>, Option<Arc<ExecutionEntry>>) {
        let before = self.take(object.id()).0;
        let after = match object {
            Stamped::Execution(entry) => {
                let key = entry.sort_key();
                for k in entry.keys() {
                    self.by.entry(k).or_default().insert(key.clone(), entry.clone());
                }
                self.dirty.insert((entry.id.namespace.clone(), entry.view.pipeline.clone()));
                *self.tally.entry((entry.id.namespace.clone(), entry.view.phase)).or_default() += 1;
                self.order.insert(key, entry.clone());
                self.executions.insert(entry.id.clone(), entry.clone());
                Some(entry)
            }
            Stamped::Rejection(entry) => {
                self.rejections.insert(entry.rejection.id.clone(), entry);
                None
            }
        };
        if before.is_some() || after.is_some() {
            self.changes.record(Changed::Execution { before: before.clone(), after: after.clone(), archived: None });
        }
        (before, after)
    }

    /// Removes an object, served or rejected: what it was, if anything. `archived` says when,
    /// where the archive keeps what is deleted.
    fn remove(&mut self, id: &ObjectRef, archived: Option<Timestamp>) -> Option<Removed> {
        match self.take(id) {
            (Some(before), _) => {
                self.changes.record(Changed::Execution { before: Some(before.clone()), after: None, archived });
                Some(Removed::Execution(before))
            }
            (None, true) => Some(Removed::Rejection),
            (None, false) => None,
        }
    }

    /// Takes an object out without recording a change: the execution it was, if it was one,
    /// and whether it was a rejection.
    fn take(&mut self, id: &ObjectRef) -> (Option<Arc<ExecutionEntry>>, bool) {
        let execution = self.executions.remove(id);
        if let Some(e) = &execution {
            let key = e.sort_key();
            self.order.remove(&key);
            for k in e.keys() {
                if let Some(postings) = self.by.get_mut(&k) {
                    postings.remove(&key);
                    if postings.is_empty() {
                        self.by.remove(&k);
                    }
                }
            }
            self.dirty.insert((e.id.namespace.clone(), e.view.pipeline.clone()));
            let tally = (e.id.namespace.clone(), e.view.phase);
            if let Some(n) = self.tally.get_mut(&tally) {
                *n -= 1;
                if *n == 0 {
                    self.tally.remove(&tally);
                }
            }
        }
        let rejected = self.rejections.remove(id).is_some();
        (execution, rejected)
    }

    fn unchanged(&self, object: &Stamped) -> bool {
        match object {
            Stamped::Execution(e) => {
                self.executions.get(&*e.id).is_some_and(|old| old.resource_version == e.resource_version)
            }
            Stamped::Rejection(r) => {
                self.rejections.get(&r.rejection.id).is_some_and(|old| old.rejection == r.rejection)
            }
        }
    }

    /// The executions listed under `key` (none when nothing is).
    fn postings(&self, key: &Key) -> Option<&Postings> {
        self.by.get(key)
    }
}

#[cfg(test)]
mod tests;
