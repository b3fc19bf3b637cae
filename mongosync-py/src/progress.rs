//! `Progress` and `Metrics` cross to Python as the engine's own serde JSON, so that
//! `Progress.to_dict()` is mongosync's `/progress` document exactly.

use mongosync_core::{Metrics, Progress};
use pyo3::prelude::*;

fn to_json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| {
        Python::attach(|py| {
            crate::error::exception(
                py,
                mongosync_core::ErrorCode::Internal,
                format!("the document could not be serialised: {e}"),
                None,
            )
        })
    })
}

/// The `/progress` document (the object under `progress`).
pub fn progress_json(p: &Progress) -> PyResult<String> {
    to_json(p)
}

/// The counters (camelCase keys).
pub fn metrics_json(m: &Metrics) -> PyResult<String> {
    to_json(m)
}
