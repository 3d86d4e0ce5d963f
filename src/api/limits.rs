//! Per-caller limits: held long polls and streams per subject, and an optional request rate per
//! subject. Beyond either, a clear `429` with `Retry-After`. Held requests are capped over every
//! caller too: beyond that, `503` with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiError;
use crate::wire::ErrorCode;

/// Where long polls are counted when nobody is authenticated (`--auth none`): there is no
/// subject to cap, so they are counted but not capped, and requests are not rate limited.
const ANONYMOUS: &str = "";

/// Descriptors kept for the process's own files, watches and database connections.
const RESERVED_FILES: u64 = 256;
/// The most connections derived from a large open-files limit (each idle one costs memory).
const MAX_DERIVED_CONNECTIONS: u64 = 65_536;

/// Connections and held requests (long polls and streams) a process allowed `open_files`
/// descriptors can take: `connections` when configured, else one descriptor per connection after
/// a reserve; and an eighth of the connections kept for requests that are answered at once.
pub fn capacity(open_files: u64, connections: Option<usize>) -> (usize, usize) {
    let derived = open_files.saturating_sub(RESERVED_FILES).clamp(64, MAX_DERIVED_CONNECTIONS);
    let connections = connections.unwrap_or(usize::try_from(derived).unwrap_or(64));
    (connections, connections - connections / 8)
}

/// How long a stream stays open unless configured otherwise.
pub const DEFAULT_STREAM_LIFE: Duration = Duration::from_secs(3600);

/// The limits and what they count now. Clones share them.
#[derive(Clone)]
pub struct CallerLimits {
    shared: Arc<Inner>,
    max_stream_life: Duration,
}

struct Inner {
    max_long_polls_per_subject: usize,
    max_held: usize,
    held: Mutex<HashMap<Arc<str>, usize>>,
    rate: Option<DefaultKeyedRateLimiter<Arc<str>>>,
}

/// Counts one held long poll or stream while it lives.
pub struct WaitSlot {
    limits: CallerLimits,
    subject: Arc<str>,
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        let mut held = self.limits.shared.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.subject);
            }
        }
    }
}

impl CallerLimits {
    /// `max_long_polls_per_subject` long polls and streams at once per subject, `max_held` over
    /// every caller; `rate_per_second` requests per second per subject, with as large a burst, or
    /// no rate limit when `None`.
    pub fn new(max_long_polls_per_subject: usize, max_held: usize, rate_per_second: Option<NonZeroU32>) -> Self {
        let rate = rate_per_second.map(|n| RateLimiter::keyed(Quota::per_second(n)));
        let inner = Inner { max_long_polls_per_subject, max_held, held: Mutex::default(), rate };
        CallerLimits { shared: Arc::new(inner), max_stream_life: DEFAULT_STREAM_LIFE }
    }

    /// The same limits, with streams closed after `life` (they are then opened, and
    /// authorised, again).
    pub fn with_max_stream_life(mut self, life: Duration) -> Self {
        self.max_stream_life = life;
        self
    }

    /// How long a stream may stay open.
    pub fn max_stream_life(&self) -> Duration {
        self.max_stream_life
    }

    /// Admits one request of `subject`, or says when to retry.
    pub fn admit(&self, subject: Option<&Arc<str>>) -> Result<(), ApiError> {
        let (Some(rate), Some(subject)) = (&self.shared.rate, subject) else { return Ok(()) };
        rate.check_key(subject).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            too_many("request rate limit reached for this caller", wait)
        })
    }

    /// Holds one long poll or stream of `subject` until the guard drops, or refuses it past a cap.
    pub fn hold(&self, subject: Option<&Arc<str>>) -> Result<WaitSlot, ApiError> {
        let capped = subject.is_some();
        let subject = subject.cloned().unwrap_or_else(|| ANONYMOUS.into());
        let mut held = self.shared.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.values().sum::<usize>() >= self.shared.max_held {
            let mut error = ApiError::unavailable(
                ErrorCode::TooManyWaiting,
                format!(
                    "{} long polls and streams are open, the most this service holds; retry shortly",
                    self.shared.max_held
                ),
            );
            error.retry_after = Some(5);
            return Err(error);
        }
        let count = held.entry(subject.clone()).or_default();
        if capped && *count >= self.shared.max_long_polls_per_subject {
            let message = format!(
                "at most {} long polls may be open at once per caller; retry when one has been answered",
                self.shared.max_long_polls_per_subject
            );
            return Err(too_many(&message, Duration::from_secs(1)));
        }
        *count += 1;
        Ok(WaitSlot { limits: self.clone(), subject })
    }

    /// Long polls and streams held now, over every subject.
    pub fn held(&self) -> usize {
        self.shared.held.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

pub(super) fn too_many(message: &str, wait: Duration) -> ApiError {
    let mut error = ApiError::new(warp::http::StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests, message);
    error.retry_after = Some(wait.as_secs().max(1));
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_are_capped_per_subject_and_released_when_answered() {
        let limits = CallerLimits::new(2, 100, None);
        let (a, b): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        let first = limits.hold(Some(&a)).unwrap();
        let _second = limits.hold(Some(&a)).unwrap();
        let refused = limits.hold(Some(&a)).err().unwrap();
        assert_eq!((refused.status.as_u16(), refused.retry_after), (429, Some(1)));
        assert!(limits.hold(Some(&b)).is_ok(), "another subject has its own cap");
        drop(first);
        assert!(limits.hold(Some(&a)).is_ok());
    }

    #[test]
    fn capacity_follows_the_open_files_limit() {
        assert_eq!(capacity(1024, None), (768, 672));
        assert_eq!(capacity(20_000, None), (19_744, 17_276));
        assert_eq!(capacity(1 << 20, None).0, 65_536, "bounded however large the limit");
        assert_eq!(capacity(10, None).0, 64, "at least a few");
        assert_eq!(capacity(20_000, Some(800)), (800, 700), "a configured cap keeps an eighth free too");
    }

    #[test]
    fn anonymous_callers_are_counted_but_not_capped() {
        let limits = CallerLimits::new(1, 100, NonZeroU32::new(1));
        let held: Vec<_> = (0..10).map(|_| limits.hold(None).unwrap()).collect();
        assert_eq!(limits.held(), held.len());
        let limits = CallerLimits::new(8, 2, None);
        let _held: Vec<_> = (0..2).map(|_| limits.hold(None).unwrap()).collect();
        let refused = limits.hold(None).err().unwrap();
        assert_eq!((refused.status.as_u16(), refused.code), (503, ErrorCode::TooManyWaiting));
        assert!((0..10).all(|_| limits.admit(None).is_ok()));
    }

    #[test]
    fn the_rate_is_limited_per_subject_only_when_configured() {
        let open = CallerLimits::new(1, 100, None);
        assert!((0..1000).all(|_| open.admit(Some(&"a".into())).is_ok()));
        let limited = CallerLimits::new(1, 100, NonZeroU32::new(5));
        let a: Arc<str> = "alice".into();
        let admitted = (0..20).filter(|_| limited.admit(Some(&a)).is_ok()).count();
        assert_eq!(admitted, 5, "the burst is the rate");
        assert!(limited.admit(Some(&"bob".into())).is_ok());
        assert!(limited.admit(Some(&a)).unwrap_err().retry_after.is_some());
    }
}
