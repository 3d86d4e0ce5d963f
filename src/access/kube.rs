//! The `kubernetes` authority: TokenReview says who a token is, SubjectAccessReview whether they
//! may read a namespace's executions. Both are cached by token digest (allowed and denied
//! answers for their own TTLs, errors never), concurrent identical reviews are one request, and
//! a review that fails or outlasts the deadline denies with 503.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use moka::Expiry;
use moka::future::Cache;

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

/// Keeps allowed answers for the allow TTL and denied ones for the deny TTL.
struct Ttl(AccessSettings);

impl<K, T> Expiry<K, Answer<T>> for Ttl {
    fn expire_after_create(&self, _: &K, answer: &Answer<T>, _: Instant) -> Option<Duration> {
        Some(match answer {
            Answer::Allowed(_) => self.0.allow_ttl,
            Answer::Denied => self.0.deny_ttl,
        })
    }
}

fn cache<K, T>(settings: AccessSettings) -> Cache<K, Answer<T>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    Cache::builder().max_capacity(settings.cache_size).expire_after(Ttl(settings)).build()
}

pub struct Reviewer {
    client: kube::Client,
    settings: AccessSettings,
    identities: Cache<TokenDigest, Answer<Arc<Identity>>>,
    decisions: Cache<(TokenDigest, String, Verb), Answer<()>>,
}

impl Reviewer {
    pub fn new(client: kube::Client, settings: AccessSettings) -> Self {
        Reviewer { client, settings, identities: cache(settings), decisions: cache(settings) }
    }

    pub fn settings(&self) -> AccessSettings {
        self.settings
    }

    /// Who `token` is, or 401 when TokenReview rejects it.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Identity>, AccessError> {
        let key = digest(token);
        let answer =
            self.identities.try_get_with(key, self.token_review(token, key)).await.map_err(|e| (*e).clone())?;
        match answer {
            Answer::Allowed(identity) => Ok(identity),
            Answer::Denied => Err(AccessError::Unauthenticated("the bearer token is not valid")),
        }
    }

    /// Whether `identity` may `verb` executions (or ConfigMaps) in `namespace`.
    pub async fn authorize(&self, identity: &Arc<Identity>, namespace: &str, verb: Verb) -> Result<bool, AccessError> {
        let key = (identity.key, namespace.to_owned(), verb);
        let review = self.access_review(identity, namespace, verb);
        let answer = self.decisions.try_get_with(key, review).await.map_err(|e| (*e).clone())?;
        Ok(matches!(answer, Answer::Allowed(())))
    }

    async fn token_review(&self, token: &str, key: TokenDigest) -> Result<Answer<Arc<Identity>>, AccessError> {
        let review = TokenReview {
            spec: TokenReviewSpec { token: token.to_owned(), ..TokenReviewSpec::default() },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answered = self.within_deadline("TokenReview", api.create(&PostParams::default(), &review)).await?;
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

    async fn access_review(&self, identity: &Identity, namespace: &str, verb: Verb) -> Result<Answer<()>, AccessError> {
        let (group, resource) = match self.settings.authorize_as {
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
                    namespace: Some(namespace.to_owned()),
                    verb: Some(verb.as_str().to_owned()),
                    group: Some(group.to_owned()),
                    resource: Some(resource.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answered = self.within_deadline("SubjectAccessReview", api.create(&PostParams::default(), &review)).await?;
        let allowed = answered.status.is_some_and(|s| s.allowed);
        Ok(if allowed { Answer::Allowed(()) } else { Answer::Denied })
    }

    /// Runs one review call, turning a failure or a timeout into `Unavailable`.
    async fn within_deadline<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, AccessError> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "{what} failed; denying");
                Err(AccessError::Unavailable(format!("{what} failed")))
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.settings.timeout, "{what} took too long; denying");
                Err(AccessError::Unavailable(format!("{what} took longer than {:?}", self.settings.timeout)))
            }
        }
    }
}
