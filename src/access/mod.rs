//! Who is calling, and which namespaces they may read. Three authorities: `none` (everyone reads
//! everything), `kubernetes` (delegated: TokenReview, then SubjectAccessReview per namespace, as
//! aggregated API servers and kube-rbac-proxy do it) and `tokens=FILE` (bearer tokens stored as
//! SHA-256 digests, each with its namespaces). Decisions are cached by token digest; errors
//! never are, and never fail open.

pub mod review;
pub mod tokens;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::model::names::is_dns_label;
use crate::query::Scope;

/// How callers are identified (`--auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMode {
    None,
    Kubernetes,
    Tokens(PathBuf),
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(AuthMode::None),
            "kubernetes" => Ok(AuthMode::Kubernetes),
            _ => match s.strip_prefix("tokens=") {
                Some(path) if !path.is_empty() => Ok(AuthMode::Tokens(path.into())),
                _ => Err(format!("expected none, kubernetes or tokens=FILE, got {}", crate::quote::quote(s))),
            },
        }
    }
}

/// What the `kubernetes` authority asks SubjectAccessReview about (`--authorize-as`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthorizeAs {
    /// `executions` in group `pipelines.gitops.dev`: granted without any ConfigMap access.
    Executions,
    /// `configmaps` in the core group: reuses existing grants.
    Configmaps,
}

/// Cache and deadline settings of the authorities.
#[derive(Clone, Debug)]
pub struct AccessSettings {
    /// How long an allowed token or decision is trusted before it is checked again.
    pub allow_ttl: Duration,
    /// How long a rejected token or denied decision is remembered.
    pub deny_ttl: Duration,
    /// A review that takes longer is abandoned, and the request denied with 503.
    pub timeout: Duration,
    /// Most cached identities and decisions.
    pub cache_size: u64,
    pub authorize_as: AuthorizeAs,
    /// Most SubjectAccessReviews in flight at once over every caller (and a sixteenth as many
    /// TokenReviews of tokens not cached); more are refused with 503.
    pub max_reviews_in_flight: usize,
    /// The audience TokenReview checks tokens against (`--token-audience`); `None` for the API
    /// server's own.
    pub audience: Option<Arc<str>>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            allow_ttl: Duration::from_secs(10),
            deny_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            cache_size: 10_000,
            authorize_as: AuthorizeAs::Executions,
            max_reviews_in_flight: 1024,
            audience: None,
        }
    }
}

/// Why a request is refused before any resource is looked at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No token, a malformed one, or one the authority rejects: 401.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A valid token that may not do this (where no identical 404 is owed): 403.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The authority could not be asked in time: 503, never a guess.
    #[error("access cannot be checked now: {0}")]
    Unavailable(String),
    /// Too many reviews are in flight over every caller: 503, before asking.
    #[error("too many access reviews are in flight")]
    Busy,
}

/// The longest bearer token reviewed: API-server and bound service-account tokens are a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a caller does with a namespace, as SubjectAccessReview verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
        }
    }
}

/// The SHA-256 digest of a bearer token: what caches and the tokens file hold instead of it.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// The digest as a tokens file holds it: 64 hexadecimal digits, as `sha256sum` prints them.
pub fn digest_hex(token: &str) -> String {
    hex::encode(digest(token))
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who they are, for per-subject limits; `None` when nobody is asked (`--auth none`).
    pub subject: Option<Arc<str>>,
    grant: Grant,
}

#[derive(Clone, Debug)]
enum Grant {
    /// `--auth none`: every namespace.
    Everything,
    /// Decided per namespace by SubjectAccessReview; the token is kept so that open streams
    /// and long polls can have it reviewed again.
    Reviewed(Arc<review::Identity>, Arc<str>),
    /// The namespaces a tokens file lists for this digest, looked up anew each time, so an edit
    /// of the file applies to open long polls too.
    Listed(TokenDigest),
}

/// The service's authority on callers.
#[derive(Clone)]
pub struct Access(Arc<Authority>);

enum Authority {
    Open,
    Kubernetes(Box<review::Reviewer>),
    Tokens(tokens::TokenFile),
}

impl Access {
    /// Everyone reads everything.
    pub fn open() -> Self {
        Access(Arc::new(Authority::Open))
    }

    pub fn kubernetes(client: kube::Client, settings: AccessSettings) -> Self {
        Access(Arc::new(Authority::Kubernetes(Box::new(review::Reviewer::new(client, settings)))))
    }

    pub fn tokens(file: tokens::TokenFile) -> Self {
        Access(Arc::new(Authority::Tokens(file)))
    }

    /// Cache lookups and reviews sent to the API server, where it is the authority.
    pub fn review_metrics(&self) -> Option<&crate::metrics::ReviewMetrics> {
        match &*self.0 {
            Authority::Kubernetes(reviewer) => Some(reviewer.metrics()),
            _ => None,
        }
    }

    /// True when callers must present a token.
    pub fn required(&self) -> bool {
        !matches!(*self.0, Authority::Open)
    }

    /// The tokens file, where that is the authority (for its reload task and readiness).
    pub fn token_file(&self) -> Option<&tokens::TokenFile> {
        match &*self.0 {
            Authority::Tokens(file) => Some(file),
            _ => None,
        }
    }

    /// Identifies the caller from an `Authorization` header value. Tokens come from this
    /// header only, never from the query string.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AccessError> {
        if let Authority::Open = &*self.0 {
            return Ok(Caller { subject: None, grant: Grant::Everything });
        }
        let token = bearer(authorization)?;
        match &*self.0 {
            Authority::Open => unreachable!("answered above"),
            Authority::Kubernetes(reviewer) => {
                let identity = reviewer.authenticate(token).await?;
                let subject = Some(identity.username.clone());
                Ok(Caller { subject, grant: Grant::Reviewed(identity, token.into()) })
            }
            Authority::Tokens(file) => {
                let key = digest(token);
                let (subject, _) =
                    file.lookup(&key).ok_or(AccessError::Unauthenticated("the bearer token is not valid"))?;
                Ok(Caller { subject: Some(subject), grant: Grant::Listed(key) })
            }
        }
    }

    /// Whether `caller` may `verb` the executions of `namespace`. A name that cannot be a
    /// namespace (not a DNS label) is refused before anyone is asked.
    pub async fn can_read(&self, caller: &Caller, namespace: &str, verb: Verb) -> Result<bool, AccessError> {
        if !is_dns_label(namespace) {
            return Ok(false);
        }
        match (&caller.grant, &*self.0) {
            (Grant::Everything, _) => Ok(true),
            (Grant::Listed(key), Authority::Tokens(file)) => {
                Ok(file.lookup(key).is_some_and(|(_, s)| s.allows(namespace)))
            }
            (Grant::Listed(_), _) => Ok(false),
            (Grant::Reviewed(identity, _), Authority::Kubernetes(reviewer)) => {
                reviewer.authorize(identity, review::Attributes::Namespace(namespace.to_owned()), verb).await
            }
            (Grant::Reviewed(..), _) => Ok(false),
        }
    }

    /// Whether the credentials `caller` presented still stand for them: a token reviewed
    /// again (through the cache) or still in the tokens file. Open streams and long polls ask
    /// this each time their grant expires, so none outlives an expired or revoked token.
    pub async fn still_valid(&self, caller: &Caller) -> Result<bool, AccessError> {
        match (&caller.grant, &*self.0) {
            (Grant::Everything, _) => Ok(true),
            (Grant::Listed(key), Authority::Tokens(file)) => Ok(file.lookup(key).is_some()),
            (Grant::Reviewed(identity, token), Authority::Kubernetes(reviewer)) => {
                match reviewer.authenticate(token).await {
                    Ok(now) => Ok(now.username == identity.username && now.uid == identity.uid),
                    Err(AccessError::Unauthenticated(_)) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(false),
        }
    }

    /// Whether the holder of `authorization` may read `/metrics`: anyone where nobody is asked;
    /// a token of the file that reads every namespace; with `kubernetes`, as kube-rbac-proxy
    /// decides it, a SubjectAccessReview of `get` on the non-resource URL `/metrics`.
    pub async fn may_scrape(&self, authorization: Option<&str>) -> Result<(), AccessError> {
        let caller = self.authenticate(authorization).await?;
        let allowed = match (&caller.grant, &*self.0) {
            (Grant::Everything, _) => true,
            (Grant::Listed(key), Authority::Tokens(file)) => file.lookup(key).is_some_and(|(_, s)| s.is_all()),
            (Grant::Reviewed(identity, _), Authority::Kubernetes(reviewer)) => {
                reviewer.authorize(identity, review::Attributes::Path("/metrics"), Verb::Get).await?
            }
            _ => false,
        };
        if allowed { Ok(()) } else { Err(AccessError::Forbidden("this token may not read /metrics")) }
    }

    /// The namespaces of `universe` that `caller` may `verb`, decided in parallel. `universe` is
    /// only asked for where decisions are made per namespace.
    pub async fn scope(
        &self,
        caller: &Caller,
        universe: impl FnOnce() -> BTreeSet<String>,
        verb: Verb,
    ) -> Result<Scope, AccessError> {
        match &caller.grant {
            Grant::Everything => Ok(Scope::all()),
            Grant::Listed(key) => {
                let listed = self.token_file().and_then(|file| file.lookup(key)).map(|(_, scope)| scope);
                Ok(listed.unwrap_or_else(|| Scope::only(BTreeSet::new())))
            }
            Grant::Reviewed(..) => {
                let universe = universe();
                let decisions =
                    futures::future::join_all(universe.iter().map(|ns| self.can_read(caller, ns, verb))).await;
                let mut readable = BTreeSet::new();
                for (ns, decision) in universe.iter().zip(decisions) {
                    if decision? {
                        readable.insert(ns.clone());
                    }
                }
                // Always the namespaces reviewed, never "all": a namespace watched later is
                // reviewed before any of it reaches this caller.
                Ok(Scope::only(readable))
            }
        }
    }

    /// How long a grant is trusted: open streams re-check their scope this often.
    pub fn recheck_interval(&self) -> Option<Duration> {
        match &*self.0 {
            Authority::Open => None,
            Authority::Kubernetes(reviewer) => Some(reviewer.settings().allow_ttl),
            Authority::Tokens(file) => Some(file.reload_interval()),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(header: Option<&str>) -> Result<&str, AccessError> {
    let header =
        header.ok_or(AccessError::Unauthenticated("a bearer token is required (Authorization: Bearer <token>)"))?;
    let malformed = AccessError::Unauthenticated("the Authorization header must be \"Bearer <token>\"");
    let (scheme, token) = header.trim().split_once(' ').ok_or(malformed.clone())?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(malformed);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AccessError::Unauthenticated("the bearer token is longer than 16 KiB; no valid token is"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header_only_when_well_formed() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        for bad in [None, Some("abc"), Some("Basic abc"), Some("Bearer "), Some("Bearer a b")] {
            assert!(matches!(bearer(bad), Err(AccessError::Unauthenticated(_))), "{bad:?}");
        }
        let longest = format!("Bearer {}", "t".repeat(MAX_TOKEN_BYTES));
        assert!(bearer(Some(&longest)).is_ok());
        let over = format!("Bearer {}", "t".repeat(MAX_TOKEN_BYTES + 1));
        assert!(matches!(bearer(Some(&over)), Err(AccessError::Unauthenticated(_))), "refused before any review");
    }

    #[test]
    fn auth_modes_parse() {
        assert_eq!("none".parse(), Ok(AuthMode::None));
        assert_eq!("kubernetes".parse(), Ok(AuthMode::Kubernetes));
        assert_eq!("tokens=/etc/t.yaml".parse(), Ok(AuthMode::Tokens("/etc/t.yaml".into())));
        assert!("tokens=".parse::<AuthMode>().is_err() && "basic".parse::<AuthMode>().is_err());
    }
}
