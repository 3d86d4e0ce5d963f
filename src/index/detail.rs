//! An execution's detail body, which a warm start serves before it has read it back.
//!
//! A warm start restores each execution from the archive as it was served. Its detail (the
//! document, about 9 kB) is the bulk of what it would read: a gigabyte and about a second of the
//! start at 100 000. Everything else the index needs (the typed view, both ETags, the summary)
//! is read before ready; the details follow once the shard is listed, and a reader that needs one
//! first reads it from the archive itself.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::future::BoxFuture;

use super::ExecutionEntry;
use crate::model::ObjectRef;
use crate::wire::{Json, Tag};

/// Where the details a warm start has not read yet are: the archive it restored them from.
pub trait StoredDetails: Send + Sync {
    /// The detail the archive holds for this very version of `id` (its ConfigMap's uid and
    /// resourceVersion), as it was served with ETag `tag`; `None` when it no longer holds that.
    fn read<'a>(
        &'a self,
        id: &'a ObjectRef,
        version: (&'a str, &'a str),
        tag: Tag,
    ) -> BoxFuture<'a, Result<Option<Bytes>, DetailUnavailable>>;
}

/// `GET .../executions/{name}` body: its ETag always, its bytes once read.
pub struct DetailBody {
    pub tag: Tag,
    bytes: OnceLock<Bytes>,
    /// Where the bytes are read from when they are not here yet; `None` for a body made here.
    stored: Option<Arc<dyn StoredDetails>>,
}

impl DetailBody {
    /// A body serialised here.
    pub fn new(json: Json) -> Self {
        DetailBody { tag: json.tag, bytes: OnceLock::from(json.bytes), stored: None }
    }

    /// A body of ETag `tag` that `stored` holds, not read yet.
    pub fn stored(tag: Tag, stored: Arc<dyn StoredDetails>) -> Self {
        DetailBody { tag, bytes: OnceLock::new(), stored: Some(stored) }
    }

    /// The bytes, if they have been read.
    pub fn loaded(&self) -> Option<&Bytes> {
        self.bytes.get()
    }

    /// Puts the bytes read from the archive; the first stands.
    pub fn fill(&self, bytes: Bytes) {
        let _ = self.bytes.set(bytes);
    }

    /// The bytes held: none for a body not read yet (what the change history weighs).
    pub fn len(&self) -> usize {
        self.loaded().map_or(0, Bytes::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a detail not read yet could not be read. Callers of any namespace see these words, so
/// they are fixed phrases: the database's own error goes to the log where it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DetailUnavailable {
    /// The archive did not answer in time, or failed.
    #[error("its detail is in the archive, which cannot be read now")]
    Unreadable,
    /// The archive no longer holds the version served (another writer replaced it): the
    /// ConfigMap's watch brings the newer one.
    #[error("its detail is being replaced by a newer version: ask again")]
    Replaced,
}

impl ExecutionEntry {
    /// The detail body's bytes: read from the archive (once) when a warm start has not yet.
    pub async fn detail(&self) -> Result<Bytes, DetailUnavailable> {
        if let Some(bytes) = self.detail.loaded() {
            return Ok(bytes.clone());
        }
        let Some(stored) = &self.detail.stored else {
            // A body made here is always loaded; unreachable, but not worth a panic.
            return Err(DetailUnavailable::Replaced);
        };
        let version = (self.uid.as_str(), self.resource_version.as_str());
        let bytes = stored.read(&self.id, version, self.detail.tag).await?;
        let bytes = bytes.ok_or(DetailUnavailable::Replaced)?;
        self.detail.fill(bytes);
        Ok(self.detail.loaded().cloned().unwrap_or_default())
    }
}
