//! `mongosync._mongosync`: the native module of the `mongosync` Python package. Users import
//! the typed layer (`mongosync`, `mongosync.aio`); this module is its private engine room.
//! Each file wraps the core module of the same name.
#![allow(clippy::result_large_err)]

mod any;
mod error;
mod handle;
mod options;
mod progress;
mod runtime;
mod syncer;
mod testkit;

use pyo3::prelude::*;

use crate::options::PyConnectOptions;
use crate::runtime::{awaitable, wait};
use crate::syncer::Syncer;

fn opts(options: Option<PyRef<'_, PyConnectOptions>>) -> mongosync_core::ConnectOptions {
    options.map(|o| o.0.clone()).unwrap_or_default()
}

/// Connects to both clusters: an IDLE syncer (blocking).
#[pyfunction]
#[pyo3(signature = (cluster0, cluster1, options = None))]
fn connect(
    py: Python<'_>,
    cluster0: String,
    cluster1: String,
    options: Option<PyRef<'_, PyConnectOptions>>,
) -> PyResult<Syncer> {
    wait(py, syncer::connect(cluster0, cluster1, opts(options)))
}

/// `connect` as an awaitable.
#[pyfunction]
#[pyo3(signature = (cluster0, cluster1, options = None))]
fn connect_async<'py>(
    py: Python<'py>,
    cluster0: String,
    cluster1: String,
    options: Option<PyRef<'_, PyConnectOptions>>,
) -> PyResult<Bound<'py, PyAny>> {
    awaitable(py, syncer::connect(cluster0, cluster1, opts(options)))
}

/// Connects and re-enters the sync persisted on the destination (blocking).
#[pyfunction]
#[pyo3(signature = (cluster0, cluster1, options = None))]
fn attach(
    py: Python<'_>,
    cluster0: String,
    cluster1: String,
    options: Option<PyRef<'_, PyConnectOptions>>,
) -> PyResult<Syncer> {
    wait(py, any::attach(cluster0, cluster1, opts(options)))
}

/// `attach` as an awaitable.
#[pyfunction]
#[pyo3(signature = (cluster0, cluster1, options = None))]
fn attach_async<'py>(
    py: Python<'py>,
    cluster0: String,
    cluster1: String,
    options: Option<PyRef<'_, PyConnectOptions>>,
) -> PyResult<Bound<'py, PyAny>> {
    awaitable(py, any::attach(cluster0, cluster1, opts(options)))
}

/// Every error code (`ErrorCode::ALL`), for the exception classes.
#[pyfunction]
fn error_codes() -> Vec<&'static str> {
    mongosync_core::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect()
}

/// Panics in Rust: proves that a panic reaches Python as `InternalError` (tests only).
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    wait(py, async {
        if std::hint::black_box(true) {
            panic!("a panic raised on purpose by _panic_for_tests");
        }
        Ok(())
    })
}

#[pymodule]
fn _mongosync(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Syncer>()?;
    m.add_class::<handle::ProgressStream>()?;
    m.add_class::<PyConnectOptions>()?;
    m.add_class::<testkit::PyMemoryCluster>()?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(connect_async, m)?)?;
    m.add_function(wrap_pyfunction!(attach, m)?)?;
    m.add_function(wrap_pyfunction!(attach_async, m)?)?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
