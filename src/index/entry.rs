//! Index entries: what is kept of an object, with its responses serialised once on write.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Decoded, Key, SortKey};
use crate::model::{Application, EnvironmentStatus, ExecutionView, Phase};
use crate::model::{Execution, ObjectRef, Rejection};

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
    pub detail: Json,
    /// One item of a list body.
    pub summary: Json,
    pub(super) shard: Arc<str>,
    /// Index revision and wall time of the last change to this entry.
    pub revision: u64,
    pub changed_at: Timestamp,
}

/// What the archive kept of one execution version, as it was served.
pub struct Stored {
    pub uid: String,
    pub resource_version: String,
    pub sort_time: Timestamp,
    pub detail: String,
    pub summary: String,
}

/// The compact form lists serve. Borrowed where the service serialises it, owned where a client
/// decodes it (`Summary<'static>`).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub pipeline: Cow<'a, str>,
    pub application: Cow<'a, Application>,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Cow<'a, str>>,
    pub environments: Vec<EnvironmentPhase<'a>>,
    pub resource_version: Cow<'a, str>,
    /// Only on an execution served from the archive: its ConfigMap is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// When the archive saw its ConfigMap deleted (or unlabelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvironmentPhase<'a> {
    pub name: Cow<'a, str>,
    pub phase: Phase,
}

/// One execution, whole: `GET .../executions/{name}` and a one-execution stream's events.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Detail<'a> {
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub labels: Cow<'a, BTreeMap<String, String>>,
    pub resource_version: Cow<'a, str>,
    /// The document as the writer stored it, validated against its kind's schema.
    #[schema(value_type = Object)]
    pub execution: Cow<'a, Value>,
    /// Only on an execution served from the archive: its ConfigMap is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// When the archive saw its ConfigMap deleted (or unlabelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

impl ExecutionEntry {
    /// Serialises an execution's responses, off the index lock; `Index` stamps it on insert.
    pub fn new(e: Execution) -> Self {
        let detail = Json::of(&Detail {
            namespace: Cow::Borrowed(&e.id.namespace),
            name: Cow::Borrowed(&e.id.name),
            labels: Cow::Borrowed(&e.labels),
            resource_version: Cow::Borrowed(&e.resource_version),
            execution: Cow::Borrowed(&e.document),
            archived: None,
            deleted_at: None,
        });
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
            shard: Arc::from(""),
            revision: 0,
            changed_at: Timestamp::UNIX_EPOCH,
        }
    }

    /// An execution as the archive kept it: its bodies as they were served, which the index
    /// serves again as they are, so a warm start neither parses nor validates its document.
    /// `None` when the stored detail is not what this version serves.
    pub fn restored(
        id: ObjectRef,
        labels: BTreeMap<String, String>,
        created: Option<Timestamp>,
        stored: Stored,
    ) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Served {
            execution: ExecutionView,
        }
        let Served { execution: view } = serde_json::from_str(&stored.detail).ok()?;
        let json = |text: String| Json::from_bytes(Bytes::from(text));
        Some(ExecutionEntry {
            id: Arc::new(id),
            labels,
            uid: stored.uid,
            resource_version: stored.resource_version,
            sort_time: stored.sort_time,
            created,
            view,
            detail: json(stored.detail),
            summary: json(stored.summary),
            shard: Arc::from(""),
            revision: 0,
            changed_at: Timestamp::UNIX_EPOCH,
        })
    }

    pub(super) fn sort_key(&self) -> SortKey {
        (Reverse(self.sort_time), self.id.clone())
    }

    /// Every secondary-index key this execution is listed under.
    pub(super) fn keys(&self) -> Vec<Key> {
        let (ns, view) = (&self.id.namespace, &self.view);
        let mut keys = vec![
            Key::Namespace(ns.clone()),
            Key::Pipeline(view.pipeline.clone()),
            Key::NamespacedPipeline(ns.clone(), view.pipeline.clone()),
            Key::Phase(view.phase),
        ];
        for env in &view.environments {
            let key = Key::Environment(env.name.clone());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys.extend(self.labels.iter().map(|(k, v)| Key::Label(k.clone(), v.clone())));
        keys
    }

    pub fn has_environment(&self, name: &str) -> bool {
        self.view.environments.iter().any(|e| e.name == name)
    }

    pub(super) fn summary_value(&self) -> Summary<'_> {
        summary(&self.id, &self.view, &self.resource_version)
    }
}

pub(super) fn summary<'a>(id: &'a ObjectRef, view: &'a ExecutionView, rv: &'a str) -> Summary<'a> {
    Summary {
        namespace: Cow::Borrowed(&id.namespace),
        name: Cow::Borrowed(&id.name),
        pipeline: Cow::Borrowed(&view.pipeline),
        application: Cow::Borrowed(&view.application),
        phase: view.phase,
        started_at: view.started_at.as_deref().map(Cow::Borrowed),
        finished_at: view.finished_at.as_deref().map(Cow::Borrowed),
        environments: view.environments.iter().map(environment_phase).collect(),
        resource_version: Cow::Borrowed(rv),
        archived: None,
        deleted_at: None,
    }
}

fn environment_phase(e: &EnvironmentStatus) -> EnvironmentPhase<'_> {
    EnvironmentPhase { name: Cow::Borrowed(&e.name), phase: e.phase }
}

/// A ConfigMap that is not served, with its reasons.
pub struct RejectionEntry {
    pub rejection: Rejection,
    pub body: Json,
    pub(super) shard: Arc<str>,
    pub revision: u64,
    pub changed_at: Timestamp,
}

/// A rejected ConfigMap and why, as rejection lists serve it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectionBody<'a> {
    #[serde(flatten)]
    pub rejection: Cow<'a, Rejection>,
    pub rejected_at: String,
}

impl RejectionEntry {
    pub fn new(rejection: Rejection) -> Self {
        let now = Timestamp::now();
        let body = Json::of(&RejectionBody { rejection: Cow::Borrowed(&rejection), rejected_at: now.to_string() });
        RejectionEntry { rejection, body, shard: Arc::from(""), revision: 0, changed_at: now }
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

/// A serialised response and a strong hash of it, so a response's ETag is computed without
/// serialising or hashing its bytes again. The hash is the same in every process, so replicas
/// holding the same data agree on it.
#[derive(Clone, Debug)]
pub struct Json {
    pub bytes: Bytes,
    pub tag: Tag,
}

impl Json {
    pub(crate) fn of<T: Serialize>(value: &T) -> Json {
        Json::from_bytes(to_bytes(value))
    }

    pub fn from_bytes(bytes: Bytes) -> Json {
        Json { tag: Tag::of(&bytes), bytes }
    }

    /// A body (a JSON object) as the archive serves it: marked `"archived":true` and
    /// `"deletedAt"` after its own fields.
    pub fn archived(body: &[u8], deleted_at: Timestamp) -> Json {
        let body = body.trim_ascii_end();
        let fields = body.strip_suffix(b"}").unwrap_or(body);
        let mut marked = Vec::with_capacity(fields.len() + 64);
        marked.extend_from_slice(fields);
        marked.extend_from_slice(format!(",\"archived\":true,\"deletedAt\":\"{deleted_at}\"}}").as_bytes());
        Json::from_bytes(Bytes::from(marked))
    }
}

/// An ETag: the first 128 bits of a SHA-256. Writers choose the documents that are hashed, so
/// the hash must resist collisions that they craft: two documents of one tag would let a
/// client holding one be told it holds the other, and one cached body be served for the other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tag(pub u128);

impl Tag {
    /// The tag of a body: `sha256sum` of it, cut to 32 hex digits.
    pub fn of(bytes: &[u8]) -> Tag {
        Tag::first_128(Sha256::digest(bytes))
    }

    /// The tag of a sequence of parts, each length-prefixed so that no two sequences collide
    /// by moving a boundary.
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Tag {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Tag::first_128(hasher.finalize())
    }

    fn first_128(digest: impl AsRef<[u8]>) -> Tag {
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest.as_ref()[..16]);
        Tag(u128::from_be_bytes(first))
    }
}

/// Serialises a value the index owns; these types cannot fail to serialise.
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "serialising a response failed");
        b"null".to_vec()
    }))
}
