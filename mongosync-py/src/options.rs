//! `ConnectOptions`: the engine settings of `connect`/`attach` (mongosync's command-line flags),
//! checked by the engine when it connects. The `/start` options cross as their JSON body.

use std::time::Duration;

use pyo3::prelude::*;

/// Engine settings; every one optional (the engine's defaults).
#[pyclass(module = "mongosync._mongosync", name = "ConnectOptions", frozen)]
#[derive(Clone)]
pub struct PyConnectOptions(pub mongosync_core::ConnectOptions);

fn seconds(name: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "`{name}` must be a finite number of seconds >= 0, not {s}"
        ))
    })
}

#[pymethods]
impl PyConnectOptions {
    #[new]
    #[pyo3(signature = (*, id = None, spill_dir = None, commit_lag_limit_secs = None,
        partition_bytes = None, copy_workers = None, copy_batch_bytes = None,
        apply_round_events = None, appliers = None, buffer_memory_bytes = None,
        retry_window = None, monitor_interval = None, oplog_check_interval = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: Option<String>,
        spill_dir: Option<std::path::PathBuf>,
        commit_lag_limit_secs: Option<i64>,
        partition_bytes: Option<u64>,
        copy_workers: Option<usize>,
        copy_batch_bytes: Option<usize>,
        apply_round_events: Option<usize>,
        appliers: Option<usize>,
        buffer_memory_bytes: Option<usize>,
        retry_window: Option<f64>,
        monitor_interval: Option<f64>,
        oplog_check_interval: Option<f64>,
    ) -> PyResult<Self> {
        let mut o = mongosync_core::ConnectOptions::default();
        if let Some(v) = id {
            o = o.id(v);
        }
        if let Some(v) = spill_dir {
            o = o.spill_dir(v);
        }
        if let Some(v) = commit_lag_limit_secs {
            o = o.commit_lag_limit_secs(v);
        }
        if let Some(v) = partition_bytes {
            o = o.partition_bytes(v);
        }
        if let Some(v) = copy_workers {
            o = o.copy_workers(v);
        }
        if let Some(v) = copy_batch_bytes {
            o = o.copy_batch_bytes(v);
        }
        if let Some(v) = apply_round_events {
            o = o.apply_round_events(v);
        }
        if let Some(v) = appliers {
            o = o.appliers(v);
        }
        if let Some(v) = buffer_memory_bytes {
            o = o.buffer_memory_bytes(v);
        }
        if let Some(v) = retry_window {
            o = o.retry_window(seconds("retry_window", v)?);
        }
        if let Some(v) = monitor_interval {
            o = o.monitor_interval(seconds("monitor_interval", v)?);
        }
        if let Some(v) = oplog_check_interval {
            o = o.oplog_check_interval(seconds("oplog_check_interval", v)?);
        }
        Ok(PyConnectOptions(o))
    }
}
