//! What `/metrics` reads from the service's state at each scrape (executions by namespace and
//! phase, rejections by reason, each source's sync, modules, open long polls and streams), beside
//! the events `crate::metrics` counts as they happen.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::CallerLimits;
use crate::access::Access;
use crate::history::Archive;
use crate::index::Index;
use crate::metrics::HttpMetrics;
use crate::modules::Modules;
use crate::wire::ShardState;

/// The registry a service's `/metrics` encodes: the events its parts counted and its state.
pub fn registry(
    index: Index,
    modules: Arc<Modules>,
    limits: CallerLimits,
    access: &Access,
    http: &HttpMetrics,
    archive: Option<Archive>,
) -> Registry {
    let mut registry = Registry::with_prefix("execwatch");
    http.register(&mut registry);
    index.restarts().register(&mut registry);
    index.deployments().register(&mut registry);
    // Counted whatever the authority, so dashboards find the series: empty without reviews.
    access.review_metrics().cloned().unwrap_or_default().register(&mut registry);
    registry.register_collector(Box::new(State { index, modules, limits, archive }));
    registry
}

/// What the service holds now, read at each scrape.
struct State {
    index: Index,
    modules: Arc<Modules>,
    limits: CallerLimits,
    archive: Option<Archive>,
}

/// The archive's state and the notes it has yet to write.
fn encode_archive(archive: &Archive, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let status = archive.status();
    let none: [(&str, &str); 0] = [];
    let one = |value: u64| [(none, i64::try_from(value).unwrap_or(i64::MAX))];
    gauges(e, "archive_connected", "1 while the archive's database is connected", one(u64::from(status.connected)))?;
    let pending = "Executions with a version or deletion not yet written to the archive";
    gauges(e, "archive_pending", pending, one(archive.journal().len() as u64))?;
    for (name, help, value) in [
        ("archive_written", "Execution versions and deletions written to the archive", status.written),
        ("archive_write_failures", "Batches the archive failed to write (kept to retry)", status.failures),
        ("archive_pruned", "Archived executions pruned by --archive-retain", status.pruned),
    ] {
        let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(family.encode_family(&none)?)?;
    }
    if let Some(at) = status.last_write {
        let help = "When the archive last wrote a batch";
        gauges(e, "archive_last_write_timestamp_seconds", help, [(none, at.as_second())])?;
    }
    Ok(())
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
        let mut reasons: BTreeMap<crate::model::ReasonCode, i64> = BTreeMap::new();
        for code in self.index.rejection_reasons() {
            *reasons.entry(code).or_default() += 1;
        }
        let rows = reasons.iter().map(|(code, n)| ([("reason", code.as_str())], *n));
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
            gauges(e, name, help, modules.iter().map(|m| ([("module", m.name.as_str())], i64::from(value(m)))))?;
        }
        let waiting = i64::try_from(self.limits.held()).unwrap_or(i64::MAX);
        gauges(e, "waiting_requests", "Long polls and streams open now", [([("kind", "held")], waiting)])?;
        if let Some(archive) = &self.archive {
            encode_archive(archive, e)?;
        }
        Ok(())
    }
}
