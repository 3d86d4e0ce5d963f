//! Index entries: what is kept of an object, with its responses serialised once on write.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::{Decoded, DetailBody, Key, KeyRef, SortKey};
use crate::model::ExecutionView;
use crate::model::{Execution, ObjectRef, Rejection};
use crate::wire::{Detail, Json, RejectionBody, Summary, summary};

/// A served execution. The document itself is kept only as its serialised detail response.
pub struct ExecutionEntry {
    pub id: Arc<ObjectRef>,
    pub labels: BTreeMap<String, String>,
    pub uid: String,
    pub resource_version: String,
    pub sort_time: Timestamp,
    /// When the API server created the ConfigMap, where known.
    pub created: Option<Timestamp>,
    pub view: ExecutionView,
    /// `GET .../executions/{name}` body.
    pub detail: DetailBody,
    /// One item of a list body.
    pub summary: Json,
    /// The archive holds this very version as served, with all a warm start reads: the archive
    /// need not write it again.
    pub in_archive: bool,
    pub(super) shard: Arc<str>,
    /// Wall time of the last change to this entry.
    pub changed_at: Timestamp,
}

impl ExecutionEntry {
    /// Serialises an execution's responses, off the index lock; `Index` stamps it on insert.
    pub fn new(e: Execution) -> Self {
        let detail = DetailBody::new(Json::of(&Detail {
            namespace: Cow::Borrowed(&e.id.namespace),
            name: Cow::Borrowed(&e.id.name),
            labels: Cow::Borrowed(&e.labels),
            resource_version: Cow::Borrowed(&e.resource_version),
            execution: Cow::Borrowed(&e.document),
            archived: None,
            deleted_at: None,
        }));
        let summary = Json::of(&summary(&e.id, &e.view, &e.resource_version));
        ExecutionEntry {
            id: Arc::new(e.id),
            labels: e.labels,
            uid: e.uid,
            resource_version: e.resource_version,
            sort_time: e.sort_time,
            created: e.created,
            view: e.view,
            detail,
            summary,
            in_archive: false,
            shard: Arc::from(""),
            changed_at: Timestamp::UNIX_EPOCH,
        }
    }

    /// An execution whose bodies were serialised earlier (the archive's, as they were served),
    /// which the index serves as they are: `meta` is its uid, resourceVersion, sort time and
    /// creation time.
    pub fn of_bodies(
        id: ObjectRef,
        labels: BTreeMap<String, String>,
        meta: (String, String, Timestamp, Option<Timestamp>),
        view: ExecutionView,
        (detail, summary): (DetailBody, Json),
    ) -> Self {
        let (uid, resource_version, sort_time, created) = meta;
        ExecutionEntry {
            id: Arc::new(id),
            labels,
            uid,
            resource_version,
            sort_time,
            created,
            view,
            detail,
            summary,
            in_archive: false,
            shard: Arc::from(""),
            changed_at: Timestamp::UNIX_EPOCH,
        }
    }

    pub(super) fn sort_key(&self) -> SortKey {
        (Reverse(self.sort_time), self.id.clone())
    }

    /// `sort_key` borrowed: to sort entries in the index's order without cloning their ids.
    pub(super) fn sort_key_ref(&self) -> (Reverse<Timestamp>, &Arc<ObjectRef>) {
        (Reverse(self.sort_time), &self.id)
    }

    /// Every secondary-index key this execution is listed under.
    pub(super) fn keys(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        self.key_refs(&mut keys);
        keys.into_iter().map(KeyRef::to_key).collect()
    }

    /// Every secondary-index key this execution is listed under, each once, borrowed from it,
    /// added to `keys`.
    pub(super) fn key_refs<'a>(&'a self, keys: &mut Vec<KeyRef<'a>>) {
        let (ns, view) = (self.id.namespace.as_str(), &self.view);
        keys.extend([
            KeyRef::Namespace(ns),
            KeyRef::Pipeline(&view.pipeline),
            KeyRef::NamespacedPipeline(ns, &view.pipeline),
            KeyRef::Phase(view.phase),
        ]);
        let first = keys.len();
        for env in &view.environments {
            let key = KeyRef::Environment(&env.name);
            if !keys[first..].contains(&key) {
                keys.push(key);
            }
        }
        keys.extend(self.labels.iter().map(|(k, v)| KeyRef::Label(k, v)));
    }

    pub(super) fn summary_value(&self) -> Summary<'_> {
        summary(&self.id, &self.view, &self.resource_version)
    }
}

/// A ConfigMap that is not served, with its reasons.
pub struct RejectionEntry {
    pub rejection: Rejection,
    pub body: Json,
    pub(super) shard: Arc<str>,
    pub changed_at: Timestamp,
}

impl RejectionEntry {
    pub fn new(rejection: Rejection) -> Self {
        let now = Timestamp::now();
        let body = Json::of(&RejectionBody { rejection: Cow::Borrowed(&rejection), rejected_at: now.to_string() });
        RejectionEntry { rejection, body, shard: Arc::from(""), changed_at: now }
    }
}

/// An object decoded and serialised, ready to go into the index. Building one is the costly
/// part of ingestion, so it happens before the index lock is taken (and on any thread).
// Transient, and mostly executions: boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Prepared {
    Execution(ExecutionEntry),
    Rejection(RejectionEntry),
}

impl Prepared {
    pub fn id(&self) -> &ObjectRef {
        match self {
            Prepared::Execution(e) => &e.id,
            Prepared::Rejection(r) => &r.rejection.id,
        }
    }

    /// The object as the index keeps it: owned by `shard`, changed at `now`. Done before the
    /// index lock is taken.
    pub(super) fn stamp(self, shard: &Arc<str>, now: Timestamp) -> Stamped {
        match self {
            Prepared::Execution(mut entry) => {
                (entry.shard, entry.changed_at) = (shard.clone(), now);
                Stamped::Execution(Arc::new(entry))
            }
            Prepared::Rejection(mut entry) => {
                (entry.shard, entry.changed_at) = (shard.clone(), now);
                Stamped::Rejection(Arc::new(entry))
            }
        }
    }
}

/// An object stamped with its shard and time of change, as the index holds it.
pub(super) enum Stamped {
    Execution(Arc<ExecutionEntry>),
    Rejection(Arc<RejectionEntry>),
}

impl Stamped {
    pub(super) fn id(&self) -> &ObjectRef {
        match self {
            Stamped::Execution(e) => &e.id,
            Stamped::Rejection(r) => &r.rejection.id,
        }
    }
}

impl From<Decoded> for Prepared {
    fn from(decoded: Decoded) -> Self {
        match decoded {
            Ok(execution) => Prepared::Execution(ExecutionEntry::new(execution)),
            Err(rejection) => Prepared::Rejection(RejectionEntry::new(rejection)),
        }
    }
}

/// One object of a relist: prepared afresh, or the same version the index already holds (so
/// it was not decoded again).
// A relist is mostly fresh objects, and it is transient: boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Listed {
    Fresh(Prepared),
    Same(ObjectRef),
}

impl<T: Into<Prepared>> From<T> for Listed {
    fn from(object: T) -> Self {
        Listed::Fresh(object.into())
    }
}
