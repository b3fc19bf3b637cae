//! `GET /metrics`: the engine's counters ([`SyncHandle::metrics`]) in the Prometheus /
//! OpenMetrics text format, through one `prometheus-client` registry per server (no global
//! state). Every scrape reads a fresh snapshot, so nothing is counted twice.

use std::sync::{Arc, RwLock};

use mongosync_core::{Batches, Metrics, SyncHandle, SyncState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The registry of one server.
#[derive(Debug)]
pub struct MetricsRegistry {
    registry: Registry,
}

impl MetricsRegistry {
    /// A registry reading the sync behind `handle` (none yet while INITIALIZING).
    pub fn new(handle: Arc<RwLock<Option<SyncHandle>>>) -> MetricsRegistry {
        let mut registry = Registry::with_prefix("mongosync");
        registry.register_collector(Box::new(SyncCollector { handle }));
        MetricsRegistry { registry }
    }

    /// The text exposition.
    ///
    /// # Errors
    /// Formatting failed.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[derive(Debug)]
struct SyncCollector {
    handle: Arc<RwLock<Option<SyncHandle>>>,
}

const STATES: [SyncState; 6] = [
    SyncState::Idle,
    SyncState::Running,
    SyncState::Paused,
    SyncState::Committing,
    SyncState::Committed,
    SyncState::Reversing,
];

fn counter(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// The engine's cumulative buckets as the per-bucket counts the encoder accumulates.
fn histogram(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    b: &Batches,
) -> Result<(), std::fmt::Error> {
    let mut previous = 0;
    let buckets: Vec<(f64, u64)> = b
        .buckets
        .iter()
        .map(|&(bound, cumulative)| {
            let n = cumulative.saturating_sub(previous);
            previous = cumulative;
            (bound, n)
        })
        .collect();
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(b.seconds, b.count, &buckets, None)
}

fn encode(m: &Metrics, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    {
        let mut d = e.encode_descriptor(
            "state",
            "1 for the sync's current state, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for s in STATES {
            let labels = [("state", s.as_str())];
            ConstGauge::new(i64::from(m.state == s)).encode(d.encode_family(&labels)?)?;
        }
    }
    counter(
        e,
        "collection_copy_copied_docs_count",
        "Documents copied by this process",
        m.documents_copied,
    )?;
    counter(
        e,
        "collection_copy_copied_bytes_count",
        "Bytes copied (persisted progress included)",
        m.bytes_copied,
    )?;
    gauge(
        e,
        "collection_copy_estimated_total_bytes",
        "Bytes to copy, measured before the copy",
        m.bytes_to_copy as i64,
    )?;
    {
        let mut d = e.encode_descriptor(
            "collection_copy_namespace_copied_docs_count",
            "Documents copied by this process, per namespace",
            None,
            MetricType::Counter,
        )?;
        for (ns, c) in &m.namespaces {
            let labels = [("namespace", ns.as_str())];
            ConstCounter::new(c.documents).encode(d.encode_family(&labels)?)?;
        }
    }
    {
        let mut d = e.encode_descriptor(
            "collection_copy_namespace_copied_bytes_count",
            "Bytes copied by this process, per namespace",
            None,
            MetricType::Counter,
        )?;
        for (ns, c) in &m.namespaces {
            let labels = [("namespace", ns.as_str())];
            ConstCounter::new(c.bytes).encode(d.encode_family(&labels)?)?;
        }
    }
    counter(
        e,
        "cea_events_read_count",
        "Change events read from the source",
        m.events_read,
    )?;
    counter(
        e,
        "cea_events_applied_count",
        "Change events applied to the destination (CRUD and DDL)",
        m.events_applied,
    )?;
    counter(
        e,
        "cea_ddl_applied_count",
        "DDL events applied",
        m.ddl_applied,
    )?;
    counter(
        e,
        "cea_refetch_count",
        "Documents re-read from the source because a change could not apply as a delta",
        m.refetches,
    )?;
    {
        let mut d = e.encode_descriptor(
            "retry_count",
            "Transient failures retried, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in &m.retries {
            let labels = [("reason", reason.as_str())];
            ConstCounter::new(*n).encode(d.encode_family(&labels)?)?;
        }
    }
    histogram(
        e,
        "collection_copy_batch_duration_seconds",
        "Durations of the copy's insert batches",
        &m.copy_batches,
    )?;
    counter(
        e,
        "collection_copy_batch_docs_count",
        "Documents in the copy's insert batches",
        m.copy_batches.items,
    )?;
    histogram(
        e,
        "cea_round_duration_seconds",
        "Durations of change application rounds",
        &m.apply_batches,
    )?;
    counter(
        e,
        "cea_round_events_count",
        "Events in change application rounds",
        m.apply_batches.items,
    )?;
    if let Some(lag) = m.lag_seconds {
        gauge(e, "lag_time_seconds", "lagTimeSeconds of /progress", lag)?;
    }
    if let Some(h) = m.oplog_headroom_seconds {
        gauge(
            e,
            "oplog_headroom_seconds",
            "How long the source's oplog keeps the sync's resume point",
            h,
        )?;
    }
    Ok(())
}

impl Collector for SyncCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let handle = self
            .handle
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(handle) = handle else {
            // INITIALIZING: no sync yet, so no figures.
            return Ok(());
        };
        encode(&handle.metrics(), &mut encoder)
    }
}
