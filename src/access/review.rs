//! The `kubernetes` authority: TokenReview says who a token is, SubjectAccessReview whether they
//! may read a namespace's executions. Both are cached by token digest (allowed and denied
//! answers for their own TTLs, errors never), concurrent identical reviews are one request, at
//! most `max_reviews_in_flight` SubjectAccessReviews and a sixteenth as many TokenReviews of
//! tokens not cached run at once over every caller (503 beyond), and a review that fails or
//! outlasts the deadline denies with 503.

use crate::metrics::ReviewMetrics;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
enum Decision<T> {
    Allowed(T),
    Denied,
}

type Pending<T> = Shared<BoxFuture<'static, Result<Decision<T>, AccessError>>>;

/// Reviews' decisions by key, a single-flight cache: allowed ones for the allow TTL, denied
/// ones for the deny TTL, errors never. Concurrent lookups of a key that is not cached share one review, and its error too.
///
/// Each review runs as a task of its own that caches its answer and forgets itself whoever
/// waits: a client that hangs up mid-request drops only its wait, never the bookkeeping.
struct ReviewCache<K, T>(Arc<CacheState<K, T>>);

impl<K, T> Clone for ReviewCache<K, T> {
    fn clone(&self) -> Self {
        ReviewCache(self.0.clone())
    }
}

struct CacheState<K, T> {
    /// What metrics call this cache.
    name: &'static str,
    cached: quick_cache::sync::Cache<K, (Decision<T>, Instant)>,
    pending: Mutex<HashMap<K, Pending<T>>>,
    settings: AccessSettings,
    metrics: ReviewMetrics,
    /// This book's reviews in flight, over every caller.
    in_flight: Arc<Semaphore>,
}

impl<K, T> ReviewCache<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    fn new(name: &'static str, settings: AccessSettings, metrics: ReviewMetrics, in_flight: Arc<Semaphore>) -> Self {
        let capacity = usize::try_from(settings.cache_size).unwrap_or(usize::MAX).max(1);
        let cached = quick_cache::sync::Cache::new(capacity);
        ReviewCache(Arc::new(CacheState { name, cached, pending: Mutex::default(), settings, metrics, in_flight }))
    }

    /// The decision for `key`, from the cache or else from the review `review()` starts: made
    /// only on a miss, so that a hit (nearly every request) neither builds nor carries the
    /// review's future, the largest part of a request's.
    async fn get<F>(&self, key: K, review: impl FnOnce() -> F) -> Result<Decision<T>, AccessError>
    where
        F: Future<Output = Result<Decision<T>, AccessError>> + Send + 'static,
    {
        let book = &self.0;
        if let Some((answer, _)) = book.cached.get(&key).filter(|(_, until)| *until > Instant::now()) {
            book.metrics.lookup(book.name, true);
            return Ok(answer);
        }
        book.metrics.lookup(book.name, false);
        let shared = {
            let mut pending = book.pending.lock().unwrap_or_else(|p| p.into_inner());
            // Looked up again under the lock: a review that ended since the lookup above has
            // cached its answer and left `pending`, and must not be made twice.
            if let Some((answer, _)) = book.cached.get(&key).filter(|(_, until)| *until > Instant::now()) {
                return Ok(answer);
            }
            match pending.get(&key) {
                Some(shared) => shared.clone(),
                None => {
                    let permit = book.in_flight.clone().try_acquire_owned().map_err(|_| AccessError::Busy)?;
                    // The task forgets itself under this lock, so only after it is recorded here.
                    let task = tokio::spawn(CacheState::review(book.clone(), key.clone(), review(), permit));
                    let joined = async move {
                        task.await.unwrap_or_else(|e| Err(AccessError::Unavailable(format!("review ended: {e}"))))
                    };
                    let shared = joined.boxed().shared();
                    pending.insert(key, shared.clone());
                    shared
                }
            }
        };
        shared.await
    }

    #[cfg(test)]
    fn pending(&self) -> usize {
        self.0.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl<K, T> CacheState<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// Runs one review to its end (its deadline bounds it), caches the answer and forgets it.
    async fn review(
        book: Arc<Self>,
        key: K,
        review: impl Future<Output = Result<Decision<T>, AccessError>>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Decision<T>, AccessError> {
        let started = Instant::now();
        let result = review.await;
        book.metrics.review(started.elapsed());
        drop(permit);
        if let Ok(answer) = &result {
            let ttl = match answer {
                Decision::Allowed(_) => book.settings.allow_ttl,
                Decision::Denied => book.settings.deny_ttl,
            };
            book.cached.insert(key.clone(), (answer.clone(), Instant::now() + ttl));
        }
        book.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        result
    }
}

pub struct Reviewer {
    client: kube::Client,
    settings: AccessSettings,
    metrics: ReviewMetrics,
    identities: ReviewCache<TokenDigest, Arc<Identity>>,
    decisions: ReviewCache<(TokenDigest, Attributes, Verb), ()>,
}

/// What a SubjectAccessReview asks about besides the verb: a namespace's executions, or a path
/// of this service's own (`/metrics`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attributes {
    Namespace(String),
    Path(&'static str),
}

impl Reviewer {
    pub fn new(client: kube::Client, settings: AccessSettings) -> Self {
        let most = settings.max_reviews_in_flight.max(1);
        // TokenReviews of tokens not cached are anyone's to start, a flood of random tokens
        // included: they get a sixteenth of the cap (64 of the default 1024), apart from the
        // decisions about callers already authenticated, which keep the whole of it. A review
        // answers in milliseconds, so 64 at once admit thousands of new tokens a second; one
        // left hanging holds its request's connection and buffers (about 100 KiB) until its
        // deadline, so the flood a cap of 256 let hang grew the service by 38 MiB.
        let unknown_tokens = Arc::new(Semaphore::new(most.div_ceil(16)));
        let metrics = ReviewMetrics::default();
        let identities = ReviewCache::new("identities", settings.clone(), metrics.clone(), unknown_tokens);
        let decisions =
            ReviewCache::new("decisions", settings.clone(), metrics.clone(), Arc::new(Semaphore::new(most)));
        Reviewer { client, settings, metrics, identities, decisions }
    }

    /// Cache lookups and reviews, for `/metrics`.
    pub fn metrics(&self) -> &ReviewMetrics {
        &self.metrics
    }

    pub fn settings(&self) -> &AccessSettings {
        &self.settings
    }

    /// Who `token` is, or 401 when TokenReview rejects it (or it was not made for this service's
    /// audience, where one is set).
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Identity>, AccessError> {
        let key = digest(token);
        let review = || token_review(self.client.clone(), self.settings.clone(), token.to_owned(), key);
        let answer = self.identities.get(key, review).await?;
        match answer {
            Decision::Allowed(identity) => Ok(identity),
            Decision::Denied => Err(AccessError::Unauthenticated("the bearer token is not valid")),
        }
    }

    /// Whether `identity` may `verb` what `attributes` names.
    pub async fn authorize(
        &self,
        identity: &Arc<Identity>,
        attributes: Attributes,
        verb: Verb,
    ) -> Result<bool, AccessError> {
        let key = (identity.key, attributes.clone(), verb);
        let review = || access_review(self.client.clone(), self.settings.clone(), identity.clone(), attributes, verb);
        let answer = self.decisions.get(key, review).await?;
        Ok(matches!(answer, Decision::Allowed(())))
    }
}

async fn token_review(
    client: kube::Client,
    settings: AccessSettings,
    token: String,
    key: TokenDigest,
) -> Result<Decision<Arc<Identity>>, AccessError> {
    let audiences = settings.audience.map(|a| vec![a.to_string()]);
    // The token goes into the request's body and nowhere else: while the review is in flight
    // (a hanging one, up to its deadline) only the digest is held, not the token.
    let review =
        TokenReview { spec: TokenReviewSpec { token, audiences: audiences.clone() }, ..TokenReview::default() };
    let failed = |what: &str| AccessError::Unavailable(format!("TokenReview could not be {what}"));
    let body = serde_json::to_vec(&review).map_err(|_| failed("written"))?;
    drop(review);
    let url = <TokenReview as kube::Resource>::url_path(&(), None);
    let mut request = kube::core::Request::new(url).create(&PostParams::default(), body).map_err(|_| failed("made"))?;
    // As `Api::create` marks it, for the client's tracing.
    request.extensions_mut().insert("create");
    let answered = within_deadline("TokenReview", settings.timeout, client.request::<TokenReview>(request)).await?;
    let status = answered.status.unwrap_or_default();
    // As kube-rbac-proxy: a token made for other audiences than the one asked for is refused,
    // even where the API server says it is authenticated.
    let for_us = audiences.is_none_or(|want| status.audiences.iter().flatten().any(|a| want.contains(a)));
    let user = status.user.filter(|_| status.authenticated == Some(true) && for_us);
    Ok(match user.and_then(|u| u.username.clone().map(|name| (u, name))) {
        Some((user, username)) => Decision::Allowed(Arc::new(Identity {
            username: username.into(),
            uid: user.uid,
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
            key,
        })),
        None => Decision::Denied,
    })
}

async fn access_review(
    client: kube::Client,
    settings: AccessSettings,
    identity: Arc<Identity>,
    attributes: Attributes,
    verb: Verb,
) -> Result<Decision<()>, AccessError> {
    let (group, resource) = match settings.authorize_as {
        AuthorizeAs::Executions => (crate::model::GROUP, "executions"),
        AuthorizeAs::Configmaps => ("", "configmaps"),
    };
    let (resource_attributes, non_resource_attributes) = match attributes {
        Attributes::Namespace(namespace) => {
            let attributes = ResourceAttributes {
                namespace: Some(namespace),
                verb: Some(verb.as_str().to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                ..ResourceAttributes::default()
            };
            (Some(attributes), None)
        }
        Attributes::Path(path) => {
            let attributes =
                NonResourceAttributes { path: Some(path.to_owned()), verb: Some(verb.as_str().to_owned()) };
            (None, Some(attributes))
        }
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(identity.username.to_string()),
            uid: identity.uid.clone(),
            groups: Some(identity.groups.clone()),
            extra: Some(identity.extra.clone()),
            resource_attributes,
            non_resource_attributes,
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client);
    let answered =
        within_deadline("SubjectAccessReview", settings.timeout, api.create(&PostParams::default(), &review)).await?;
    let allowed = answered.status.is_some_and(|s| s.allowed);
    Ok(if allowed { Decision::Allowed(()) } else { Decision::Denied })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(in_flight: usize) -> ReviewCache<u8, ()> {
        ReviewCache::new(
            "test",
            AccessSettings::default(),
            ReviewMetrics::default(),
            Arc::new(Semaphore::new(in_flight)),
        )
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_review_whose_caller_hung_up_still_caches_its_answer_and_forgets_itself() {
        let answers = answers(4);
        let (answer, answered) = tokio::sync::oneshot::channel::<()>();
        let review = async move {
            let _ = answered.await;
            Ok(Decision::Allowed(()))
        };
        let waiter = tokio::spawn({
            let answers = answers.clone();
            async move { answers.get(1, || review).await }
        });
        until("the review is pending", || answers.pending() == 1).await;
        // The client hangs up: hyper drops the request's future, and with it this wait.
        waiter.abort();
        let _ = waiter.await;
        answer.send(()).unwrap();
        until("the review forgets itself", || answers.pending() == 0).await;
        let cached = answers.get(1, || async { Err(AccessError::Unavailable("asked again".into())) }).await;
        assert!(matches!(cached, Ok(Decision::Allowed(()))), "the answer was cached: {cached:?}");
    }

    #[tokio::test]
    async fn reviews_beyond_the_cap_are_refused_at_once() {
        let answers = answers(1);
        let (answer, answered) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let answers = answers.clone();
            async move {
                let review = async move {
                    let _ = answered.await;
                    Ok(Decision::Denied)
                };
                answers.get(1, || review).await
            }
        });
        until("the first review is in flight", || answers.pending() == 1).await;
        let refused = answers.get(2, || async { Ok(Decision::Allowed(())) }).await;
        assert!(matches!(refused, Err(AccessError::Busy)), "{refused:?}");
        answer.send(()).unwrap();
        assert!(matches!(first.await.unwrap(), Ok(Decision::Denied)));
        let freed = answers.get(2, || async { Ok(Decision::Allowed(())) }).await;
        assert!(matches!(freed, Ok(Decision::Allowed(()))), "the permit came back: {freed:?}");
    }
}
