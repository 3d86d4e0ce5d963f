//! The `kubernetes` authority: TokenReview says who a token is, SubjectAccessReview whether they
//! may read a namespace's executions. Both are cached by token digest (allowed and denied
//! answers for their own TTLs, errors never), concurrent identical reviews are one request, and
//! a review that fails or outlasts the deadline denies with 503.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

use super::{AccessError, AccessSettings, AuthorizeAs, TokenDigest, Verb, digest};

/// Who TokenReview says a token is.
#[derive(Debug)]
pub struct Identity {
    pub username: Arc<str>,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    /// The token's digest: decisions are cached under it.
    key: TokenDigest,
}

/// A cached answer: allowed (an identity, or a grant) or denied.
#[derive(Clone, Debug)]
enum Answer<T> {
    Allowed(T),
    Denied,
}

type Pending<T> = Shared<BoxFuture<'static, Result<Answer<T>, AccessError>>>;

/// Answers by key: allowed ones for the allow TTL, denied ones for the deny TTL, errors never.
/// Concurrent lookups of a key that is not cached share one review, and its error too.
struct Answers<K, T> {
    /// What metrics call this cache.
    name: &'static str,
    cached: quick_cache::sync::Cache<K, (Answer<T>, Instant)>,
    pending: Mutex<HashMap<K, Pending<T>>>,
    settings: AccessSettings,
}

impl<K, T> Answers<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    fn new(name: &'static str, settings: AccessSettings) -> Self {
        let capacity = usize::try_from(settings.cache_size).unwrap_or(usize::MAX).max(1);
        Answers { name, cached: quick_cache::sync::Cache::new(capacity), pending: Mutex::default(), settings }
    }

    async fn get(
        &self,
        key: K,
        review: impl Future<Output = Result<Answer<T>, AccessError>> + Send + 'static,
    ) -> Result<Answer<T>, AccessError> {
        if let Some((answer, _)) = self.cached.get(&key).filter(|(_, until)| *until > Instant::now()) {
            crate::metrics::access_cache(self.name, true);
            return Ok(answer);
        }
        crate::metrics::access_cache(self.name, false);
        let review = async move {
            let started = Instant::now();
            let answer = review.await;
            crate::metrics::review(started.elapsed());
            answer
        };
        let shared = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.entry(key.clone()).or_insert_with(|| review.boxed().shared()).clone()
        };
        let result = shared.clone().await;
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.get(&key).is_some_and(|p| p.ptr_eq(&shared)) {
                pending.remove(&key);
            }
        }
        if let Ok(answer) = &result {
            let ttl = match answer {
                Answer::Allowed(_) => self.settings.allow_ttl,
                Answer::Denied => self.settings.deny_ttl,
            };
            self.cached.insert(key, (answer.clone(), Instant::now() + ttl));
        }
        result
    }
}

pub struct Reviewer {
    client: kube::Client,
    settings: AccessSettings,
    identities: Answers<TokenDigest, Arc<Identity>>,
    decisions: Answers<(TokenDigest, String, Verb), ()>,
}

impl Reviewer {
    pub fn new(client: kube::Client, settings: AccessSettings) -> Self {
        let (identities, decisions) = (Answers::new("identities", settings), Answers::new("decisions", settings));
        Reviewer { client, settings, identities, decisions }
    }

    pub fn settings(&self) -> AccessSettings {
        self.settings
    }

    /// Who `token` is, or 401 when TokenReview rejects it.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Identity>, AccessError> {
        let key = digest(token);
        let review = token_review(self.client.clone(), self.settings.timeout, token.to_owned(), key);
        let answer = self.identities.get(key, review).await?;
        match answer {
            Answer::Allowed(identity) => Ok(identity),
            Answer::Denied => Err(AccessError::Unauthenticated("the bearer token is not valid")),
        }
    }

    /// Whether `identity` may `verb` executions (or ConfigMaps) in `namespace`.
    pub async fn authorize(&self, identity: &Arc<Identity>, namespace: &str, verb: Verb) -> Result<bool, AccessError> {
        let key = (identity.key, namespace.to_owned(), verb);
        let review = access_review(self.client.clone(), self.settings, identity.clone(), namespace.to_owned(), verb);
        let answer = self.decisions.get(key, review).await?;
        Ok(matches!(answer, Answer::Allowed(())))
    }
}

async fn token_review(
    client: kube::Client,
    timeout: Duration,
    token: String,
    key: TokenDigest,
) -> Result<Answer<Arc<Identity>>, AccessError> {
    let review =
        TokenReview { spec: TokenReviewSpec { token, ..TokenReviewSpec::default() }, ..TokenReview::default() };
    let api: Api<TokenReview> = Api::all(client);
    let answered = within_deadline("TokenReview", timeout, api.create(&PostParams::default(), &review)).await?;
    let status = answered.status.unwrap_or_default();
    let user = status.user.filter(|_| status.authenticated == Some(true));
    Ok(match user.and_then(|u| u.username.clone().map(|name| (u, name))) {
        Some((user, username)) => Answer::Allowed(Arc::new(Identity {
            username: username.into(),
            uid: user.uid,
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
            key,
        })),
        None => Answer::Denied,
    })
}

async fn access_review(
    client: kube::Client,
    settings: AccessSettings,
    identity: Arc<Identity>,
    namespace: String,
    verb: Verb,
) -> Result<Answer<()>, AccessError> {
    let (group, resource) = match settings.authorize_as {
        AuthorizeAs::Executions => ("pipelines.gitops.dev", "executions"),
        AuthorizeAs::Configmaps => ("", "configmaps"),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(identity.username.to_string()),
            uid: identity.uid.clone(),
            groups: Some(identity.groups.clone()),
            extra: Some(identity.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace),
                verb: Some(verb.as_str().to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client);
    let answered =
        within_deadline("SubjectAccessReview", settings.timeout, api.create(&PostParams::default(), &review)).await?;
    let allowed = answered.status.is_some_and(|s| s.allowed);
    Ok(if allowed { Answer::Allowed(()) } else { Answer::Denied })
}

/// Runs one review call, turning a failure or a timeout into `Unavailable`.
async fn within_deadline<T>(
    what: &str,
    timeout: Duration,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, AccessError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "{what} failed; denying");
            Err(AccessError::Unavailable(format!("{what} failed")))
        }
        Err(_) => {
            tracing::warn!(?timeout, "{what} took too long; denying");
            Err(AccessError::Unavailable(format!("{what} took longer than {timeout:?}")))
        }
    }
}
