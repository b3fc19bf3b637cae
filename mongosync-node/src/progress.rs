//! `/progress` and the metrics as plain JavaScript objects: the engine's serde forms, so the
//! field names are mongosync's own.

use mongosync_core::{ErrorCode, Metrics, Progress};

use crate::error::binding;

fn to_value<T: serde::Serialize>(what: &str, v: &T) -> napi::Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| binding(ErrorCode::Internal, format!("{what}: {e}")))
}

/// The `/progress` document.
pub(crate) fn progress(p: &Progress) -> napi::Result<serde_json::Value> {
    to_value("serialising the progress", p)
}

/// The engine's counters.
pub(crate) fn metrics(m: &Metrics) -> napi::Result<serde_json::Value> {
    to_value("serialising the metrics", m)
}
