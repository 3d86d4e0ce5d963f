//! One task per subscription: it reads the subscription's Secret, checks its destination, then
//! claims its due messages from the outbox and sends them (a bounded number at once, at a
//! bounded rate), records each attempt, and writes what it sees to the subscription's status.
//! A slow or dead receiver holds only its own subscription's task.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tokio::sync::Notify;

use super::Notifier;
use super::destination::Checked;
use super::send::{self, Signed};
use super::sign::SigningKeys;
use super::subscription::Subscription;
use crate::history::outbox::{Claimed, Outbox, Outcome};

mod status;

pub use status::{Problem, StatusWriter, Why, resource};

/// How often the Secret is read again (a rotated key or a new URL is used within this).
const RECHECK: Duration = Duration::from_secs(30);
/// How long a claim holds a message: longer than a claimed batch can take (two rounds of
/// attempts at `--notify-concurrency`, each at most 15 s: connect and answer).
const LEASE: Duration = Duration::from_secs(60);
/// Messages claimed at once, per attempt in flight.
const CLAIMED_PER_ATTEMPT: usize = 2;
/// The longest wait for a message due later; enqueued ones wake the task sooner.
const IDLE: Duration = Duration::from_secs(5);
/// Retries back off from this, doubling, up to `LONGEST_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const LONGEST_BACKOFF: Duration = Duration::from_secs(600);
/// The most a receiver's `Retry-After` defers a message.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Where a subscription's messages go, and the keys they are signed with.
struct Destination {
    to: Checked,
    keys: SigningKeys,
}

/// Delivers a subscription's messages until aborted.
pub async fn run(notifier: Arc<Notifier>, sub: Arc<Subscription>, client: kube::Client, wake: Arc<Notify>) {
    let mut status = StatusWriter::new(client.clone(), &sub.id(), sub.generation);
    let mut deferred = false;
    loop {
        match prepare(&notifier, &sub, &client).await {
            Err(problem) => {
                tracing::info!(namespace = %sub.namespace, subscription = %sub.name, reason = ?problem.why, message = %problem.message, "notifications held");
                if let Ok(outbox) = notifier.archive.outbox() {
                    let until = Timestamp::now() + RECHECK * 4;
                    deferred = outbox.defer(&sub.uid, until, &problem.message).await.is_ok() || deferred;
                }
                status.report(&notifier, Some(problem)).await;
                // Not woken by new messages: nothing can be sent until the Secret or the
                // destination changes, and reading them again for every message would be waste.
                tokio::time::sleep(RECHECK).await;
            }
            Ok(destination) => {
                if std::mem::take(&mut deferred)
                    && let Ok(outbox) = notifier.archive.outbox()
                {
                    let _ = outbox.wake(&sub.uid).await;
                }
                deliver_for(&notifier, &sub, &destination, &wake, &mut status, RECHECK).await;
            }
        }
    }
}

/// Reads the Secret and checks its destination; what is wrong, as the status says it.
async fn prepare(notifier: &Notifier, sub: &Subscription, client: &kube::Client) -> Result<Destination, Problem> {
    if !notifier.index.watches(&sub.namespace) {
        let message = format!("namespace {} is not watched by this service: nothing is sent", sub.namespace);
        return Err(Problem::new(Why::NamespaceNotWatched, message));
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &sub.namespace);
    let secret = secrets.get(&sub.secret).await.map_err(|e| {
        let why = match &e {
            kube::Error::Api(s) if s.code == 403 => {
                "execwatch may not read it (grant get on this Secret to its ServiceAccount)".to_owned()
            }
            kube::Error::Api(s) if s.code == 404 => "it does not exist".to_owned(),
            other => crate::quote::shorten(other.to_string()),
        };
        Problem::new(Why::SecretUnreadable, format!("Secret {} cannot be read: {why}", sub.secret))
    })?;
    let text = |key: &str| {
        let data = secret.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned());
        data.or_else(|| secret.string_data.as_ref().and_then(|d| d.get(key)).cloned())
    };
    let invalid = |message: String| Problem::new(Why::InvalidSecret, format!("Secret {}: {message}", sub.secret));
    let url = text("url").ok_or_else(|| invalid("has no key url".to_owned()))?;
    let keys = text("signingKeys").ok_or_else(|| invalid("has no key signingKeys".to_owned()))?;
    let keys = SigningKeys::parse(&keys).map_err(invalid)?;
    let to = notifier.guard.check(&url).await.map_err(|r| Problem::new(Why::DestinationRefused, r.0))?;
    Ok(Destination { to, keys })
}

/// Claims and sends due messages for `for_how_long`, reporting the status as it goes.
async fn deliver_for(
    notifier: &Notifier,
    sub: &Subscription,
    destination: &Destination,
    wake: &Notify,
    status: &mut StatusWriter,
    for_how_long: Duration,
) {
    let end = Instant::now() + for_how_long;
    let rate = NonZeroU32::new(notifier.settings.rate).unwrap_or(NonZeroU32::MIN);
    let limiter = governor::RateLimiter::direct(governor::Quota::per_second(rate));
    while Instant::now() < end {
        let woken = wake.notified();
        let claimed = match notifier.archive.outbox() {
            Ok(outbox) => outbox
                .claim(&sub.uid, &notifier.me, LEASE, notifier.settings.concurrency * CLAIMED_PER_ATTEMPT)
                .await
                .map(|c| (outbox, c)),
            Err(e) => Err(e),
        };
        let (outbox, claimed) = match claimed {
            Ok(claimed) => claimed,
            Err(e) => {
                status
                    .report(
                        notifier,
                        Some(Problem::new(Why::ArchiveUnavailable, format!("the outbox cannot be read: {e}"))),
                    )
                    .await;
                let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
                continue;
            }
        };
        if claimed.is_empty() {
            status.report(notifier, None).await;
            let due = outbox.next_due(&sub.uid).await.ok().flatten();
            let wait = due.map_or(IDLE, |at| until(at).min(IDLE));
            let _ = tokio::time::timeout(wait.min(end.saturating_duration_since(Instant::now())), woken).await;
            continue;
        }
        let refused_signature = std::sync::atomic::AtomicBool::new(false);
        futures::stream::iter(claimed)
            .for_each_concurrent(notifier.settings.concurrency, |message| async {
                limiter.until_ready().await;
                if let Some(401 | 403) = attempt(notifier, &outbox, sub, destination, message).await {
                    refused_signature.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .await;
        status.report(notifier, None).await;
        if refused_signature.into_inner() {
            // The receiver refused the signature: the keys may have been rotated in the Secret.
            return;
        }
    }
}

/// One attempt, recorded; the receiver's status, where it answered.
async fn attempt(
    notifier: &Notifier,
    outbox: &Outbox,
    sub: &Subscription,
    destination: &Destination,
    message: Claimed,
) -> Option<u16> {
    let timestamp = Timestamp::now().as_second();
    let body = bytes::Bytes::from(message.body);
    let signature = destination.keys.sign(&message.id, timestamp, &body);
    let signed = Signed { id: message.id.clone(), content_type: message.content_type, timestamp, signature, body };
    let outcome = match send::post(&destination.to, &signed).await {
        Ok(answer) if (200..300).contains(&answer.status) => Outcome::Sent { status: answer.status },
        Ok(answer) => {
            let error = format!("{} answered {}: {}", destination.to.host, answer.status, answer.excerpt.trim());
            let retry_at =
                retry_at(notifier.settings.max_age, message.attempts, message.created_at, answer.retry_after);
            Outcome::Failed { status: Some(answer.status), error, retry_at }
        }
        Err(error) => Outcome::Failed {
            status: None,
            error,
            retry_at: retry_at(notifier.settings.max_age, message.attempts, message.created_at, None),
        },
    };
    match &outcome {
        Outcome::Sent { .. } => notifier.metrics.sent(&sub.namespace),
        Outcome::Failed { retry_at: Some(_), .. } => notifier.metrics.retried(&sub.namespace),
        Outcome::Failed { retry_at: None, error, .. } => {
            tracing::warn!(namespace = %sub.namespace, subscription = %sub.name, id = %message.id, %error, "notification dead-lettered");
            notifier.metrics.dead(&sub.namespace);
        }
    }
    if let Err(e) = outbox.record(&message.id, &notifier.me, &outcome).await {
        // The claim runs out and the message is tried again: a duplicate, with the same id.
        tracing::warn!(id = %message.id, error = %e, "an attempt could not be recorded");
    }
    match outcome {
        Outcome::Sent { status } => Some(status),
        Outcome::Failed { status, .. } => status,
    }
}

/// When a failed message is tried again (exponential backoff with jitter, or the receiver's
/// `Retry-After` where later), or `None` past the maximum age: dead-lettered.
fn retry_at(max_age: Duration, attempts: i64, created: Timestamp, retry_after: Option<Duration>) -> Option<Timestamp> {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << attempts.clamp(0, 20)).min(LONGEST_BACKOFF);
    // Full jitter over the upper half: replicas and subscriptions that failed together spread out.
    let backoff = doubled.mul_f64(0.5 + fastrand::f64() / 2.0);
    let wait = retry_after.map_or(backoff, |r| r.min(LONGEST_RETRY_AFTER).max(backoff));
    let at = Timestamp::now().checked_add(wait).ok()?;
    let deadline = created.checked_add(max_age).ok()?;
    (at <= deadline).then_some(at)
}

/// How long from now until `at` (zero when past).
fn until(at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::{Timestamp, ToSpan};

    use super::retry_at;

    const DAY: Duration = Duration::from_secs(86400);

    fn secs_from_now(at: Option<Timestamp>) -> f64 {
        at.expect("tried again").duration_since(Timestamp::now()).as_secs_f64()
    }

    #[test]
    fn retries_back_off_with_jitter_honour_retry_after_and_end_at_the_maximum_age() {
        let now = Timestamp::now();
        let first = secs_from_now(retry_at(DAY, 0, now, None));
        assert!((0.4..=1.0).contains(&first), "{first}");
        let fifth = secs_from_now(retry_at(DAY, 4, now, None));
        assert!((7.9..=16.0).contains(&fifth), "{fifth}");
        let capped = secs_from_now(retry_at(DAY, 40, now, None));
        assert!((299.0..=600.0).contains(&capped), "{capped}");
        let told = secs_from_now(retry_at(DAY, 0, now, Some(Duration::from_secs(120))));
        assert!((119.0..=120.0).contains(&told), "Retry-After is honoured: {told}");
        let bounded = secs_from_now(retry_at(DAY, 0, now, Some(Duration::from_secs(86_000))));
        assert!((3599.0..=3600.0).contains(&bounded), "at most an hour: {bounded}");
        let old = now.checked_sub(23.hours().checked_add(59.minutes()).unwrap()).unwrap();
        assert_eq!(retry_at(DAY, 0, old, Some(Duration::from_secs(120))), None, "past the maximum age: dead");
    }
}
