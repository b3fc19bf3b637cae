//! [`Metrics`]: the engine's counters, read from one place by every face of the product (the
//! REST server's `/metrics`, the bindings, the benches). Counters count what this process did;
//! copy figures start from the persisted ones, as `/progress` does.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::progress::SyncState;

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Metrics {
    /// The sync's state.
    pub state: SyncState,
    /// Documents copied by this process.
    pub documents_copied: u64,
    /// Bytes copied (persisted progress included).
    pub bytes_copied: u64,
    /// Bytes to copy, measured before the copy (0 before it).
    pub bytes_to_copy: u64,
    /// The copy per namespace (`db.coll`), for the namespaces this process copied.
    pub namespaces: BTreeMap<String, NamespaceCopy>,
    /// Change events read from the source's change stream.
    pub events_read: u64,
    /// Change events applied to the destination (CRUD and DDL).
    pub events_applied: u64,
    /// DDL events applied.
    pub ddl_applied: u64,
    /// Documents re-read from the source because a change could not apply as a delta.
    pub refetches: u64,
    /// Transient failures retried, by reason (the server's error name, or `network`).
    pub retries: BTreeMap<String, u64>,
    /// Insert batches of the copy.
    pub copy_batches: Batches,
    /// Rounds of change application (written between two persisted resume points).
    pub apply_batches: Batches,
    /// The lag (`lagTimeSeconds`), when measured.
    pub lag_seconds: Option<i64>,
    /// How long the source's oplog keeps the sync's resume point, when known.
    pub oplog_headroom_seconds: Option<i64>,
}

/// The copy of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NamespaceCopy {
    /// Documents copied by this process.
    pub documents: u64,
    /// Bytes copied by this process.
    pub bytes: u64,
}

/// Counts and durations of batches, with cumulative buckets (Prometheus histogram style).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Batches {
    /// Batches written.
    pub count: u64,
    /// Documents (or events) in them.
    pub items: u64,
    /// Total time spent writing them, in seconds.
    pub seconds: f64,
    /// `(upper bound in seconds, batches that took at most that long)`, cumulative; the
    /// last bound is infinity.
    pub buckets: Vec<(f64, u64)>,
}

/// The upper bounds of the duration buckets, in seconds.
pub const BATCH_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of batch durations being filled.
#[derive(Debug, Default)]
pub(crate) struct BatchHistogram {
    count: u64,
    items: u64,
    seconds: f64,
    /// Per bucket, not cumulative; one more for +Inf.
    counts: Vec<u64>,
}

impl BatchHistogram {
    pub fn observe(&mut self, items: u64, took: Duration) {
        if self.counts.is_empty() {
            self.counts = vec![0; BATCH_SECONDS_BUCKETS.len() + 1];
        }
        let secs = took.as_secs_f64();
        self.count += 1;
        self.items += items;
        self.seconds += secs;
        let i = BATCH_SECONDS_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BATCH_SECONDS_BUCKETS.len());
        self.counts[i] += 1;
    }

    pub fn snapshot(&self) -> Batches {
        let mut cumulative = 0;
        let buckets = BATCH_SECONDS_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, bound)| {
                cumulative += self.counts.get(i).copied().unwrap_or(0);
                (bound, cumulative)
            })
            .collect();
        Batches {
            count: self.count,
            items: self.items,
            seconds: self.seconds,
            buckets,
        }
    }
}

/// The name of a retry's reason: the server's code name for the transient codes, `network`
/// for I/O and pool errors, `other` for the rest.
pub(crate) fn retry_reason(code: Option<i32>) -> &'static str {
    match code {
        Some(6) => "HostUnreachable",
        Some(7) => "HostNotFound",
        Some(89) => "NetworkTimeout",
        Some(91) => "ShutdownInProgress",
        Some(112) => "WriteConflict",
        Some(134) => "ReadConcernMajorityNotAvailableYet",
        Some(189) => "PrimarySteppedDown",
        Some(262) => "ExceededTimeLimit",
        Some(9001) => "SocketException",
        Some(10058) => "LegacyNotPrimary",
        Some(10107) => "NotWritablePrimary",
        Some(11600) => "InterruptedAtShutdown",
        Some(11602) => "InterruptedDueToReplStateChange",
        Some(13435) => "NotPrimaryNoSecondaryOk",
        Some(13436) => "NotPrimaryOrSecondary",
        Some(_) => "other",
        None => "network",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_infinity() {
        let mut h = BatchHistogram::default();
        h.observe(10, Duration::from_millis(3));
        h.observe(5, Duration::from_millis(30));
        h.observe(1, Duration::from_secs(60));
        let b = h.snapshot();
        assert_eq!((b.count, b.items), (3, 16));
        assert_eq!(b.buckets.len(), BATCH_SECONDS_BUCKETS.len() + 1);
        let at = |bound: f64| b.buckets.iter().find(|(x, _)| *x == bound).unwrap().1;
        assert_eq!(at(0.001), 0);
        assert_eq!(at(0.005), 1);
        assert_eq!(at(0.05), 2);
        assert_eq!(at(10.0), 2);
        assert_eq!(b.buckets.last().unwrap(), &(f64::INFINITY, 3));
    }
}
