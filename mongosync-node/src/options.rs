//! The options: `ConnectOptions` from a plain object (camelCase, every field optional), and
//! the `/start` body as JSON, parsed and validated by the engine exactly as the REST API does.

use std::time::Duration;

use mongosync_core::{ConnectOptions, Error, StartOptions};
use napi_derive::napi;

use crate::error::to_napi;

/// Engine settings that are not part of `/start` (mongosync's flags and tuning).
#[napi(object)]
#[derive(Default)]
pub struct NativeConnectOptions {
    /// This instance's ID (`mongosyncID`).
    pub id: Option<String>,
    /// Where spilled change events go.
    pub spill_dir: Option<String>,
    /// The largest lag (seconds) at which commit is allowed.
    pub commit_lag_limit_secs: Option<i64>,
    /// Target size of a copy partition, in bytes.
    pub partition_bytes: Option<i64>,
    /// Partitions copied at once.
    pub copy_workers: Option<i64>,
    /// Bytes in one insert batch of the copy.
    pub copy_batch_bytes: Option<i64>,
    /// Events applied in one round.
    pub apply_round_events: Option<i64>,
    /// Parallel change-event appliers.
    pub appliers: Option<i64>,
    /// Change-event bytes kept in memory before spilling.
    pub buffer_memory_bytes: Option<i64>,
    /// How long transient failures are retried, in milliseconds.
    pub retry_window_ms: Option<i64>,
    /// How often the clusters are pinged and the source gets a no-op, in milliseconds.
    pub monitor_interval_ms: Option<i64>,
    /// How often the source's oplog window is checked, in milliseconds.
    pub oplog_check_interval_ms: Option<i64>,
}

fn count(field: &str, v: i64) -> napi::Result<usize> {
    usize::try_from(v).map_err(|_| {
        to_napi(&Error::InvalidOptions {
            field: field.into(),
            reason: format!("{v} is negative; allowed: a whole number of at least 1"),
        })
    })
}

fn millis(field: &str, v: i64) -> napi::Result<Duration> {
    Ok(Duration::from_millis(count(field, v)? as u64))
}

impl NativeConnectOptions {
    /// The engine's options; the engine checks the rest when it connects.
    pub(crate) fn into_core(self) -> napi::Result<ConnectOptions> {
        let mut o = ConnectOptions::default();
        if let Some(v) = self.id {
            o = o.id(v);
        }
        if let Some(v) = self.spill_dir {
            o = o.spill_dir(v);
        }
        if let Some(v) = self.commit_lag_limit_secs {
            o = o.commit_lag_limit_secs(v);
        }
        if let Some(v) = self.partition_bytes {
            o = o.partition_bytes(count("partitionBytes", v)? as u64);
        }
        if let Some(v) = self.copy_workers {
            o = o.copy_workers(count("copyWorkers", v)?);
        }
        if let Some(v) = self.copy_batch_bytes {
            o = o.copy_batch_bytes(count("copyBatchBytes", v)?);
        }
        if let Some(v) = self.apply_round_events {
            o = o.apply_round_events(count("applyRoundEvents", v)?);
        }
        if let Some(v) = self.appliers {
            o = o.appliers(count("appliers", v)?);
        }
        if let Some(v) = self.buffer_memory_bytes {
            o = o.buffer_memory_bytes(count("bufferMemoryBytes", v)?);
        }
        if let Some(v) = self.retry_window_ms {
            o = o.retry_window(millis("retryWindowMs", v)?);
        }
        if let Some(v) = self.monitor_interval_ms {
            o = o.monitor_interval(millis("monitorIntervalMs", v)?);
        }
        if let Some(v) = self.oplog_check_interval_ms {
            o = o.oplog_check_interval(millis("oplogCheckIntervalMs", v)?);
        }
        Ok(o)
    }
}

/// The `/start` body (JSON text, as the TypeScript layer serialises the typed object).
pub(crate) fn start_options(body: &str) -> napi::Result<StartOptions> {
    StartOptions::from_json(body).map_err(|e| to_napi(&e))
}
