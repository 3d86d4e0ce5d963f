//! The production source: one kube-runtime watcher per allowed namespace, so a namespaced Role
//! is all the service needs.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event, ExponentialBackoff};
use kube::{Api, Client};

use super::{Object, SourceError, SourceEvent, map_event};

/// How every namespace watch is made.
#[derive(Clone, Debug)]
pub struct WatchSettings {
    pub label_selector: String,
    /// Server-side watch timeout; a silent connection is noticed within this plus 5s.
    pub watch_timeout: Duration,
    /// Ceiling of the exponential backoff between failed attempts.
    pub backoff_max: Duration,
    /// Longest wait for the next page of a list (each page is an event, or the end of the
    /// list): kube-runtime sets no timeout on a list, so a server that accepts one and never
    /// answers would otherwise hold the source unsynced until the client's read timeout.
    pub list_timeout: Duration,
}

impl WatchSettings {
    /// The server-side watch timeout, as the API takes it.
    pub fn timeout_seconds(&self) -> u32 {
        self.watch_timeout.as_secs().clamp(1, u64::from(u32::MAX)) as u32
    }
}

struct Attempt<K> {
    watch: Option<BoxStream<'static, watcher::Result<Event<K>>>>,
    backoff: ExponentialBackoff,
    /// Set after a failure: wait this long before starting over.
    delay: Option<Duration>,
    /// Between the start of a list and its `InitDone`.
    listing: bool,
}

/// Watches labelled ConfigMaps in `namespace`. Errors are yielded and the stream never ends.
pub fn watch_namespace(
    client: Client,
    namespace: &str,
    settings: &WatchSettings,
) -> impl Stream<Item = SourceEvent> + Send + use<> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().labels(&settings.label_selector).timeout(settings.timeout_seconds());
    resilient_watch(api, config, settings).map(|event| event.map(|e| map_event(e, Object::ConfigMap)))
}

/// A kube-runtime watcher that yields its errors and never ends.
///
/// An ordinary watch timeout resumes from the last resourceVersion inside kube-runtime. After an
/// error, though, this starts over with a fresh list (after a backoff): kube-runtime would resume
/// silently, leaving no event to say the source is healthy again, while a relist ends in
/// `InitDone`, which consumers turn into "synced".
pub fn resilient_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    settings: &WatchSettings,
) -> impl Stream<Item = Result<Event<K>, SourceError>> + Send + use<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (backoff_max, list_timeout) = (settings.backoff_max, settings.list_timeout);
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(800).min(backoff_max))
        .with_max_delay(backoff_max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    let start = Attempt { watch: None, backoff: ExponentialBackoff::from(backoff), delay: None, listing: true };
    stream::unfold(start, move |mut attempt| {
        let (api, config) = (api.clone(), config.clone());
        async move {
            if let Some(delay) = attempt.delay.take() {
                tokio::time::sleep(delay).await;
            }
            let mut watch = attempt.watch.take().unwrap_or_else(|| {
                attempt.listing = true;
                watcher::watcher(api, config).boxed()
            });
            let next = match attempt.listing {
                true => tokio::time::timeout(list_timeout, watch.next()).await,
                false => Ok(watch.next().await),
            };
            let Ok(next) = next else {
                // The stalled list is dropped with `watch`; the next attempt lists afresh.
                attempt.delay = attempt.backoff.next();
                return Some((Err(SourceError::ListStalled(list_timeout)), attempt));
            };
            match next? {
                Ok(event) => {
                    if matches!(event, Event::InitDone) {
                        attempt.backoff.reset();
                        attempt.listing = false;
                    }
                    attempt.watch = Some(watch);
                    Some((Ok(event), attempt))
                }
                Err(error) => {
                    attempt.delay = attempt.backoff.next();
                    Some((Err(SourceError::from(error)), attempt))
                }
            }
        }
    })
}
