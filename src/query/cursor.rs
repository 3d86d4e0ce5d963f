//! Continue tokens: where the next page starts, checked to belong to the list that issued it.

use std::cmp::Reverse;
use std::hash::{DefaultHasher, Hash, Hasher};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ExecutionFilter;
use crate::model::Resource;

/// Where the next page starts: just after this key, for this filter only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "t")]
    time: Timestamp,
    #[serde(rename = "ns")]
    namespace: String,
    #[serde(rename = "n")]
    name: String,
    #[serde(rename = "f")]
    filter: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CursorError {
    #[error("continue token is malformed")]
    Malformed,
    #[error("continue token belongs to a list with other filters")]
    OtherFilter,
}

/// A continue token: a cursor as URL-safe base64 of JSON.
fn encode_token<T: Serialize>(cursor: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_token<T: serde::de::DeserializeOwned>(token: &str) -> Result<T, CursorError> {
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| CursorError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| CursorError::Malformed)
}

impl Cursor {
    pub fn encode(&self) -> String {
        encode_token(self)
    }

    /// Decodes a token and checks it was issued for `filter`.
    pub fn decode(token: &str, filter: &ExecutionFilter) -> Result<Cursor, CursorError> {
        let cursor: Cursor = decode_token(token)?;
        if cursor.filter != filter.fingerprint() {
            return Err(CursorError::OtherFilter);
        }
        Ok(cursor)
    }

    /// Where the page it ends was cut.
    pub fn position(&self) -> Position {
        Position { time: self.time, namespace: self.namespace.clone(), name: self.name.clone() }
    }

    /// The cursor of a page of `filter` cut at `position`.
    pub fn at(position: Position, filter: &ExecutionFilter) -> Cursor {
        let Position { time, namespace, name } = position;
        Cursor { time, namespace, name, filter: filter.fingerprint() }
    }
}

/// A place in the order of every execution list: newest first, then by namespace and name.
/// Live and archived executions share it, so their lists merge into one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub time: Timestamp,
    pub namespace: String,
    pub name: String,
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (Reverse(self.time), &self.namespace, &self.name).cmp(&(Reverse(other.time), &other.namespace, &other.name))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Where the next page of a list ordered by namespace and name starts: just after this object,
/// for lists of this kind and namespace filter only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NameCursor {
    #[serde(rename = "ns")]
    pub namespace: String,
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "f")]
    filter: u64,
}

impl NameCursor {
    pub fn new(list: Resource, filter: Option<&str>, namespace: &str, name: &str) -> Self {
        NameCursor { namespace: namespace.to_owned(), name: name.to_owned(), filter: Self::fingerprint(list, filter) }
    }

    pub fn encode(&self) -> String {
        encode_token(self)
    }

    /// Decodes a token and checks it was issued for a `list` of `namespace` (or of any).
    pub fn decode(token: &str, list: Resource, namespace: Option<&str>) -> Result<Self, CursorError> {
        let cursor: NameCursor = decode_token(token)?;
        if cursor.filter != Self::fingerprint(list, namespace) {
            return Err(CursorError::OtherFilter);
        }
        Ok(cursor)
    }

    fn fingerprint(list: Resource, namespace: Option<&str>) -> u64 {
        let mut h = DefaultHasher::new();
        (list, namespace).hash(&mut h);
        h.finish()
    }
}
