//! Bodies serialised once, each with its strong hash: what ETags are made of.

use sha2::{Digest, Sha256};

use bytes::Bytes;
use jiff::Timestamp;
use serde::Serialize;

/// A serialised response and a strong hash of it, so a response's ETag is computed without
/// serialising or hashing its bytes again. The hash is the same in every process, so replicas
/// holding the same data agree on it.
#[derive(Clone, Debug)]
pub struct Json {
    pub bytes: Bytes,
    pub tag: Tag,
}

impl Json {
    pub fn of<T: Serialize>(value: &T) -> Json {
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

    /// A tag as this service writes it (in ETags, in the archive): 32 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Tag> {
        let ours = text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ours.then(|| u128::from_str_radix(text, 16).ok().map(Tag)).flatten()
    }

    /// The tag as `parse` reads it.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    fn first_128(digest: impl AsRef<[u8]>) -> Tag {
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest.as_ref()[..16]);
        Tag(u128::from_be_bytes(first))
    }
}

/// Serialises a value the index owns; these types cannot fail to serialise.
pub fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "serialising a response failed");
        b"null".to_vec()
    }))
}
