//! `/metrics` in the Prometheus text format (prometheus-client), served on a port of its own
//! (`--metrics-listen`) so that the API's access control does not stand between Prometheus and
//! the namespace names in its labels.
//!
//! What happens (HTTP requests, watch restarts, access-cache lookups and reviews) is counted
//! where it happens, in this process's `EVENTS`. What is a state (executions by namespace and
//! phase, rejections by reason, each source's sync, modules, open long polls and streams) is
//! read from its owner at scrape time, so it cannot drift. Label values are bounded: routes are
//! templates, sources are the watched namespaces, never an execution's name.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::CallerLimits;
use crate::api::openapi::ROUTES;
use crate::index::{Index, ShardState};
use crate::modules::Modules;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    outcome: &'static str,
}

/// Counts of what happened, for the whole process.
struct Events {
    http: Family<HttpLabels, Histogram>,
    watch_restarts: Family<SourceLabels, Counter>,
    access_cache: Family<CacheLabels, Counter>,
    reviews: Histogram,
}

static EVENTS: LazyLock<Events> = LazyLock::new(|| Events {
    // 100 µs to about 13 s.
    http: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18))),
    watch_restarts: Family::default(),
    access_cache: Family::default(),
    // 1 ms to about 8 s: a review is a round trip to the API server.
    reviews: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
});

/// One HTTP request answered: its route template, status and how long it took.
pub fn http_request(path: &str, status: u16, took: Duration) {
    EVENTS.http.get_or_create(&HttpLabels { route: route(path), status }).observe(took.as_secs_f64());
}

/// A source's list or watch failed, and it starts over after a backoff.
pub fn watch_restart(source: &str) {
    EVENTS.watch_restarts.get_or_create(&SourceLabels { source: source.to_owned() }).inc();
}

/// An access-cache lookup (`cache` is `identities` or `decisions`): answered from the cache or not.
pub fn access_cache(cache: &'static str, hit: bool) {
    EVENTS.access_cache.get_or_create(&CacheLabels { cache, outcome: if hit { "hit" } else { "miss" } }).inc();
}

/// A TokenReview or SubjectAccessReview took this long.
pub fn review(took: Duration) {
    EVENTS.reviews.observe(took.as_secs_f64());
}

/// Every route template, split into segments once.
static TEMPLATES: LazyLock<Vec<(&'static str, Vec<&'static str>)>> = LazyLock::new(|| {
    let all = std::iter::once("/metrics").chain(ROUTES).chain(crate::api::ui::ROUTES);
    all.map(|t| (t, t.trim_matches('/').split('/').collect())).collect()
});

/// The template of a path (`ROUTES`, or `/metrics`), or `other`: a bounded set of values.
fn route(path: &str) -> &'static str {
    // At most one more segment than the longest template is worth looking at.
    let mut got = [""; 7];
    let mut count = 0;
    for segment in path.trim_matches('/').split('/') {
        if count == got.len() {
            return "other";
        }
        got[count] = segment;
        count += 1;
    }
    let got = &got[..count];
    // `{...}` in a template stands for any one segment.
    let fits =
        |want: &[&str]| want.len() == got.len() && want.iter().zip(got).all(|(w, g)| w.starts_with('{') || w == g);
    TEMPLATES.iter().find(|(_, want)| fits(want)).map_or("other", |(template, _)| template)
}

/// The registry a service's `/metrics` encodes: the process's events and its state.
pub fn registry(index: Index, modules: Arc<Modules>, limits: CallerLimits) -> Registry {
    let mut registry = Registry::with_prefix("execwatch");
    registry.register(
        "http_request_duration_seconds",
        "HTTP requests by route template and status, and how long they took to answer (a stream: until it started)",
        EVENTS.http.clone(),
    );
    registry.register(
        "watch_restarts",
        "Lists or watches of a source that failed and started over after a backoff",
        EVENTS.watch_restarts.clone(),
    );
    registry.register(
        "access_cache_lookups",
        "Lookups of cached identities and namespace decisions, by outcome",
        EVENTS.access_cache.clone(),
    );
    registry.register(
        "access_review_duration_seconds",
        "TokenReviews and SubjectAccessReviews sent to the API server, and how long they took",
        EVENTS.reviews.clone(),
    );
    registry.register_collector(Box::new(State { index, modules, limits }));
    registry
}

/// Encodes `registry` in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::with_capacity(16 << 10);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// What the service holds now, read at each scrape.
struct State {
    index: Index,
    modules: Arc<Modules>,
    limits: CallerLimits,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("State")
    }
}

/// One gauge family from `(labels, value)` rows.
fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for State {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let executions = self.index.counts_by_namespace_and_phase();
        let rows =
            executions.iter().map(|((ns, phase), n)| ([("namespace", ns.as_str()), ("phase", phase.as_str())], *n));
        gauges(e, "executions", "Executions served, by namespace and phase", rows)?;
        let mut reasons: BTreeMap<&'static str, i64> = BTreeMap::new();
        for code in self.index.rejection_reasons() {
            *reasons.entry(code).or_default() += 1;
        }
        let rows = reasons.into_iter().map(|(code, n)| ([("reason", code)], n));
        gauges(e, "rejections", "ConfigMaps rejected, by the code of their first reason", rows)?;

        let shards = self.index.shards();
        let states = [ShardState::Pending, ShardState::Synced, ShardState::Failing];
        let rows = shards.iter().flat_map(|s| {
            states.iter().map(move |state| {
                let name = match state {
                    ShardState::Pending => "Pending",
                    ShardState::Synced => "Synced",
                    ShardState::Failing => "Failing",
                };
                ([("source", s.source.as_str()), ("state", name)], i64::from(s.state == *state))
            })
        });
        gauges(e, "source_state", "Each source's sync state: 1 for the state it is in", rows)?;
        let rows = shards.iter().filter_map(|s| Some(([("source", s.source.as_str())], s.last_sync?.as_second())));
        gauges(e, "source_last_sync_timestamp_seconds", "When each source last completed a list", rows)?;
        let rows = shards.iter().map(|s| ([("source", s.source.as_str())], i64::from(s.stale)));
        gauges(e, "source_stale", "1 while a source's data is older than --staleness", rows)?;

        let modules = self.modules.status();
        for (name, help, value) in [
            (
                "module_enabled",
                "1 when the module is switched on",
                (|m: &crate::modules::ModuleStatus| m.enabled) as fn(&_) -> bool,
            ),
            ("module_available", "1 when the module and every module it depends on are on", |m| m.available),
            ("module_ready", "1 when the module is available and its sync is done", |m| m.ready),
        ] {
            gauges(e, name, help, modules.iter().map(|m| ([("module", m.name)], i64::from(value(m)))))?;
        }
        let waiting = i64::try_from(self.limits.held()).unwrap_or(i64::MAX);
        gauges(e, "waiting_requests", "Long polls and streams open now", [([("kind", "held")], waiting)])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{ROUTES, route};

    #[test]
    fn every_route_of_the_api_has_its_template() {
        for template in ROUTES {
            let path = template.replace("{namespace}", "team-a").replace("{name}", "run-1");
            assert_eq!(route(&path), template);
        }
    }

    #[test]
    fn routes_are_templates_so_label_values_stay_bounded() {
        assert_eq!(
            route("/api/v1/namespaces/team-a/executions/run-1"),
            "/api/v1/namespaces/{namespace}/executions/{name}"
        );
        assert_eq!(route("/api/v1/executions"), "/api/v1/executions");
        assert_eq!(route("/api/v1/namespaces/a/b/c/d"), "other");
        assert_eq!(route(&"x/".repeat(1000)), "other");
    }
}
