//! The production source: one kube-runtime watcher per allowed namespace, so a namespaced Role
//! is all the service needs.

use std::time::Duration;

use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher::{self, Event, ExponentialBackoff};
use kube::{Api, Client};

use super::SourceError;

/// How every namespace watch is made.
#[derive(Clone, Debug)]
pub struct WatchSettings {
    pub label_selector: String,
    /// Server-side watch timeout; a silent connection is noticed within this plus 5s.
    pub watch_timeout: Duration,
    /// Ceiling of the exponential backoff between failed attempts.
    pub backoff_max: Duration,
}

/// Watches labelled ConfigMaps in `namespace`, retrying with backoff; errors are yielded, the
/// stream never ends.
pub fn watch_namespace(
    client: Client,
    namespace: &str,
    settings: &WatchSettings,
) -> impl Stream<Item = Result<Event<ConfigMap>, SourceError>> + Send + use<> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let config = watcher::Config::default()
        .labels(&settings.label_selector)
        .timeout(
            settings
                .watch_timeout
                .as_secs()
                .clamp(1, u64::from(u32::MAX)) as u32,
        );
    let first = Duration::from_millis(800).min(settings.backoff_max);
    // Reset after a quiet spell, like client-go, so a flapping server backs off for real.
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(settings.backoff_max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    let backoff = ResetTimerBackoff::new(
        ExponentialBackoff::from(exponential),
        Duration::from_secs(120),
    );
    watcher::watcher(api, config)
        .backoff(backoff)
        .map_err(SourceError::from)
}
