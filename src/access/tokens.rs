//! The `tokens=FILE` authority: a YAML file of bearer tokens, held as SHA-256 digests and never
//! in clear, each mapped to a subject and the namespaces it may read (or `*`). It is reloaded
//! when it changes. An edit that does not parse refuses every token until the file is mended,
//! and says why: keeping the previous tokens would let a revocation with a typo leave the revoked
//! token valid.
//!
//! ```yaml
//! tokens:
//!   - subject: storefront-dashboard
//!     sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8  # sha256sum of the token
//!     namespaces: [team-storefront]
//!   - subject: release-board
//!     sha256: ...
//!     namespaces: ["*"]
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TokenDigest;
use crate::files::{fingerprint, read_bounded};
use crate::query::Scope;

/// The largest tokens file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    subject: String,
    sha256: String,
    namespaces: Vec<String>,
}

/// What readiness says of the file.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenFileStatus {
    pub path: String,
    pub tokens: usize,
    /// Why the last change could not be loaded; until it is mended, every token is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

type Table = HashMap<TokenDigest, (Arc<str>, Scope)>;

/// The loaded tokens. Clones share them.
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    interval: Duration,
    table: Arc<RwLock<(Arc<Table>, TokenFileStatus)>>,
}

impl TokenFile {
    /// Loads `path`; a broken file at start is an error (there is nothing previous to keep).
    pub fn load(path: &Path, interval: Duration) -> Result<Self, TokensFileError> {
        let table = parse(path)?;
        let status = TokenFileStatus { path: path.display().to_string(), tokens: table.len(), last_error: None };
        Ok(TokenFile { path: path.to_owned(), interval, table: Arc::new(RwLock::new((Arc::new(table), status))) })
    }

    pub fn reload_interval(&self) -> Duration {
        self.interval
    }

    pub fn status(&self) -> TokenFileStatus {
        self.table.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// The subject and namespaces of a token's digest.
    pub fn lookup(&self, digest: &TokenDigest) -> Option<(Arc<str>, Scope)> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner()).0.clone();
        table.get(digest).cloned()
    }

    /// Reads the file again when it changed since the last look; runs until aborted.
    pub async fn follow(self) {
        let mut seen = fingerprint(&self.path);
        loop {
            tokio::time::sleep(self.interval).await;
            let now = fingerprint(&self.path);
            if now == seen {
                continue;
            }
            seen = now;
            let path = self.path.clone();
            let reading = tokio::task::spawn_blocking(move || parse(&path)).await;
            let parsed = reading.unwrap_or_else(|e| Err(TokensFileError::at(&self.path, None, e)));
            let mut guard = self.table.write().unwrap_or_else(|p| p.into_inner());
            match parsed {
                Ok(table) => {
                    tracing::info!(path = %self.path.display(), tokens = table.len(), "tokens file reloaded");
                    guard.1 = TokenFileStatus { path: guard.1.path.clone(), tokens: table.len(), last_error: None };
                    guard.0 = Arc::new(table);
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "tokens file does not parse; refusing every token until it is mended");
                    guard.1 =
                        TokenFileStatus { path: guard.1.path.clone(), tokens: 0, last_error: Some(e.to_string()) };
                    guard.0 = Arc::new(Table::new());
                }
            }
        }
    }
}

/// Why a tokens file is refused: the file, the entry where known, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokensFileError {
    pub path: PathBuf,
    /// `tokens[i]`, for an entry's error.
    pub entry: Option<String>,
    pub message: String,
}

impl TokensFileError {
    fn at(path: &Path, entry: Option<usize>, message: impl std::fmt::Display) -> Self {
        let entry = entry.map(|i| format!("tokens[{i}]"));
        TokensFileError { path: path.to_owned(), entry, message: message.to_string() }
    }
}

impl std::fmt::Display for TokensFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        if let Some(entry) = &self.entry {
            write!(f, "{entry}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for TokensFileError {}

fn parse(path: &Path) -> Result<Table, TokensFileError> {
    let whole = |e: &dyn std::fmt::Display| TokensFileError::at(path, None, e);
    let text = read_bounded(path, MAX_FILE_BYTES).map_err(|(_, e)| whole(&e))?;
    let value = crate::decode::strict::yaml(&text).map_err(|e| whole(&e))?;
    let file: FileFormat = serde_json::from_value(value).map_err(|e| whole(&e))?;
    let mut table = Table::new();
    for (i, entry) in file.tokens.into_iter().enumerate() {
        let at = |what: &str| TokensFileError::at(path, Some(i), what);
        let digest = decode_hex(&entry.sha256)
            .ok_or_else(|| at("sha256 must be 64 hexadecimal digits (sha256sum of the token)"))?;
        if entry.subject.trim().is_empty() {
            return Err(at("subject is empty"));
        }
        let scope = if entry.namespaces.iter().any(|ns| ns == "*") {
            Scope::all()
        } else {
            Scope::only(entry.namespaces.into_iter().collect::<BTreeSet<_>>())
        };
        if table.insert(digest, (entry.subject.into(), scope)).is_some() {
            return Err(at("the same token appears twice"));
        }
    }
    Ok(table)
}

fn decode_hex(digits: &str) -> Option<TokenDigest> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(digits.trim(), &mut digest).ok()?;
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{digest, digest_hex as hex};

    #[test]
    fn tokens_are_looked_up_by_digest_with_their_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        let text = format!(
            "tokens:\n- subject: a\n  sha256: {}\n  namespaces: [team-a]\n- subject: all\n  sha256: {}\n  namespaces: ['*']\n",
            hex("secret-a"),
            hex("secret-all")
        );
        std::fs::write(&path, text).unwrap();
        let file = TokenFile::load(&path, Duration::from_secs(1)).unwrap();
        let (subject, scope) = file.lookup(&digest("secret-a")).unwrap();
        assert_eq!(&*subject, "a");
        assert!(scope.allows("team-a") && !scope.allows("team-b"));
        assert!(file.lookup(&digest("secret-all")).unwrap().1.is_all());
        assert!(file.lookup(&digest("guess")).is_none());
    }

    #[test]
    fn a_broken_file_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        for (text, why) in [
            ("tokens:\n- subject: a\n  sha256: nothex\n  namespaces: []\n", "64 hexadecimal"),
            ("tokens:\n- subject: a\n  token: clear\n", "unknown field"),
            ("tokens: [", "did not find expected"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = TokenFile::load(&path, Duration::from_secs(1)).err().unwrap();
            assert!(err.to_string().contains(why), "{err}");
        }
    }
}
