//! `/metrics` in the Prometheus text format (prometheus-client), served on a port of its own
//! (`--metrics-listen`) so that the API's access control does not stand between Prometheus and
//! the namespace names in its labels.
//!
//! What happens (HTTP requests, watch restarts, access-cache lookups and reviews) is counted
//! where it happens, in counters the part that counts owns (a server, the index, the reviewer), so
//! two services in one process count apart; the counter types live here, low, for anyone. What
//! is a state (executions by namespace and phase, rejections by reason, each source's sync,
//! modules, open long polls and streams) is read from its owner at scrape time, by
//! `api::scrape`, so it cannot drift. Label values are bounded: routes are
//! templates, sources are the watched namespaces, never an execution's name.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::routes;

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
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    outcome: &'static str,
}

/// HTTP requests answered, by route template and status; owned by a server.
#[derive(Clone)]
pub struct HttpMetrics(Family<HttpLabels, Histogram>);

impl Default for HttpMetrics {
    fn default() -> Self {
        // 100 µs to about 13 s.
        HttpMetrics(Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18))))
    }
}

impl HttpMetrics {
    /// One HTTP request answered: its route template, status and how long it took.
    pub fn observe(&self, path: &str, status: u16, took: Duration) {
        self.0.get_or_create(&HttpLabels { route: route(path), status }).observe(took.as_secs_f64());
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by route template and status, and how long they took to answer (a stream: until it started)",
            self.0.clone(),
        );
    }
}

/// What retention deleted, by rule, and what it passed over, by reason; owned by the pruner.
#[derive(Clone, Default)]
pub struct RetentionMetrics {
    pruned: Family<RuleLabels, Counter>,
    skipped: Family<ReasonLabels, Counter>,
    errors: Counter,
}

impl RetentionMetrics {
    pub fn pruned(&self, rule: &str) {
        self.pruned.get_or_create(&RuleLabels { rule: rule.to_owned() }).inc();
    }

    pub fn skipped(&self, reason: Skipped) {
        self.skipped.get_or_create(&ReasonLabels { reason: reason.as_str() }).inc();
    }

    pub fn error(&self) {
        self.errors.inc();
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "retention_pruned",
            "Execution ConfigMaps deleted by retention, by rule",
            self.pruned.clone(),
        );
        let skipped = "Execution ConfigMaps the plan named but retention left, by reason (changed, gone, notArchived)";
        registry.register("retention_skipped", skipped, self.skipped.clone());
        let errors = "Deletes refused by the API server or stopped by the archive";
        registry.register("retention_errors", errors, self.errors.clone());
    }
}

/// Why retention left an execution ConfigMap its plan named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// A writer's update came first: the ConfigMap is not the version planned.
    Changed,
    /// Deleted by someone else meanwhile.
    Gone,
    /// The archive does not hold that version yet.
    NotArchived,
}

impl Skipped {
    /// As the `reason` label spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Skipped::Changed => "changed",
            Skipped::Gone => "gone",
            Skipped::NotArchived => "notArchived",
        }
    }
}

/// Lists or watches that failed and started over, by source; owned by the index.
#[derive(Clone, Default)]
pub struct SourceMetrics(Family<SourceLabels, Counter>);

impl SourceMetrics {
    /// A source's list or watch failed, and it starts over after a backoff.
    pub fn restart(&self, source: &str) {
        self.0.get_or_create(&SourceLabels { source: source.to_owned() }).inc();
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "watch_restarts",
            "Lists or watches of a source that failed and started over after a backoff",
            self.0.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

/// Notifications' delivery attempts by namespace: sent, failed and tried again, dead-lettered;
/// owned by the notifier.
#[derive(Clone, Default)]
pub struct NotificationMetrics {
    sent: Family<NamespaceLabels, Counter>,
    retried: Family<NamespaceLabels, Counter>,
    dead: Family<NamespaceLabels, Counter>,
}

impl NotificationMetrics {
    pub fn sent(&self, namespace: &str) {
        Self::count(&self.sent, namespace);
    }

    pub fn retried(&self, namespace: &str) {
        Self::count(&self.retried, namespace);
    }

    pub fn dead(&self, namespace: &str) {
        Self::count(&self.dead, namespace);
    }

    fn count(family: &Family<NamespaceLabels, Counter>, namespace: &str) {
        family.get_or_create(&NamespaceLabels { namespace: namespace.to_owned() }).inc();
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register("notifications_sent", "Notifications a receiver accepted (2xx)", self.sent.clone());
        registry.register(
            "notifications_retried",
            "Notification attempts that failed and will be tried again",
            self.retried.clone(),
        );
        registry.register(
            "notifications_dead_lettered",
            "Notifications given up on: failing for longer than --notify-max-age",
            self.dead.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    namespace: String,
    environment: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvironmentLabels {
    namespace: String,
    environment: String,
}

/// Deployments seen happen (an environment of a run reaching Succeeded or Failed), by namespace,
/// environment and result, and their durations; owned by the index. Labelled by namespace and
/// environment only: pipelines, applications and runs are unbounded sets (docs/insights.md).
#[derive(Clone)]
pub struct DeploymentMetrics {
    deployments: Family<DeploymentLabels, Counter>,
    durations: Family<EnvironmentLabels, Histogram>,
}

impl Default for DeploymentMetrics {
    fn default() -> Self {
        // 1 s to about 18 h.
        let buckets = || Histogram::new(exponential_buckets(1.0, 2.0, 17));
        DeploymentMetrics { deployments: Family::default(), durations: Family::new_with_constructor(buckets) }
    }
}

impl DeploymentMetrics {
    /// An environment reached `result` (`succeeded` or `failed`), after `took` where measured.
    pub fn deployed(&self, namespace: &str, environment: &str, result: &'static str, took: Option<Duration>) {
        let (namespace, environment) = (namespace.to_owned(), environment.to_owned());
        if let Some(took) = took {
            let labels = EnvironmentLabels { namespace: namespace.clone(), environment: environment.clone() };
            self.durations.get_or_create(&labels).observe(took.as_secs_f64());
        }
        self.deployments.get_or_create(&DeploymentLabels { namespace, environment, result }).inc();
    }

    pub fn register(&self, registry: &mut Registry) {
        let deployments = "Deployments seen happen (an environment of a run reaching Succeeded or Failed), by namespace, \
                           environment and result; relists count none";
        registry.register("deployments", deployments, self.deployments.clone());
        let durations =
            "How long deployments seen happen took (the environment's start to finish), by namespace and environment";
        registry.register("deployment_duration_seconds", durations, self.durations.clone());
    }
}

/// Access-cache lookups and reviews sent to the API server; owned by the reviewer.
#[derive(Clone)]
pub struct ReviewMetrics {
    cache: Family<CacheLabels, Counter>,
    reviews: Histogram,
}

impl Default for ReviewMetrics {
    fn default() -> Self {
        // 1 ms to about 8 s: a review is a round trip to the API server.
        ReviewMetrics { cache: Family::default(), reviews: Histogram::new(exponential_buckets(0.001, 2.0, 14)) }
    }
}

impl ReviewMetrics {
    /// An access-cache lookup (`cache` is `identities` or `decisions`): answered from the cache or not.
    pub fn lookup(&self, cache: &'static str, hit: bool) {
        self.cache.get_or_create(&CacheLabels { cache, outcome: if hit { "hit" } else { "miss" } }).inc();
    }

    /// A TokenReview or SubjectAccessReview took this long.
    pub fn review(&self, took: Duration) {
        self.reviews.observe(took.as_secs_f64());
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "access_cache_lookups",
            "Lookups of cached identities and namespace decisions, by outcome",
            self.cache.clone(),
        );
        registry.register(
            "access_review_duration_seconds",
            "TokenReviews and SubjectAccessReviews sent to the API server, and how long they took",
            self.reviews.clone(),
        );
    }
}

/// Every route template, split into segments once.
static TEMPLATES: LazyLock<Vec<(&'static str, Vec<&'static str>)>> = LazyLock::new(|| {
    let all = std::iter::once("/metrics").chain(routes::API).chain(routes::DASHBOARD);
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

/// Encodes `registry` in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::with_capacity(16 << 10);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn every_route_of_the_api_has_its_template() {
        for template in crate::routes::API {
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
