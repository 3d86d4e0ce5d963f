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
    pub fn load(path: &Path, interval: Duration) -> Result<Self, String> {
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
            let parsed = tokio::task::spawn_blocking(move || parse(&path)).await.unwrap_or_else(|e| Err(e.to_string()));
            let mut guard = self.table.write().unwrap_or_else(|p| p.into_inner());
            match parsed {
                Ok(table) => {
                    tracing::info!(path = %self.path.display(), tokens = table.len(), "tokens file reloaded");
                    guard.1 = TokenFileStatus { path: guard.1.path.clone(), tokens: table.len(), last_error: None };
                    guard.0 = Arc::new(table);
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "tokens file does not parse; refusing every token until it is mended");
                    guard.1 = TokenFileStatus { path: guard.1.path.clone(), tokens: 0, last_error: Some(e) };
                    guard.0 = Arc::new(Table::new());
                }
            }
        }
    }
}

fn parse(path: &Path) -> Result<Table, String> {
    let text = read_bounded(path, MAX_FILE_BYTES).map_err(|(_, e)| format!("{}: {e}", path.display()))?;
    let value = crate::decode::strict::yaml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: FileFormat = serde_json::from_value(value).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut table = Table::new();
    for (i, entry) in file.tokens.into_iter().enumerate() {
        let at = |what: &str| format!("{}: tokens[{i}]: {what}", path.display());
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

fn decode_hex(hex: &str) -> Option<TokenDigest> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
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
            assert!(err.contains(why), "{err}");
        }
    }
}
