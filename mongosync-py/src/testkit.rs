//! `MemoryCluster`: the testkit's in-memory replica set, served from this process's runtime.

use mongosync_testkit::{ClusterOptions, MemoryCluster};
use parking_lot::Mutex;
use pyo3::prelude::*;

use crate::runtime::{awaitable, enter, rt, wait};

/// A running in-memory replica set; stopped by `stop()` or when collected.
#[pyclass(module = "mongosync._mongosync", name = "MemoryCluster", frozen)]
pub struct PyMemoryCluster {
    cluster: Mutex<Option<MemoryCluster>>,
    uri: String,
    user: Option<String>,
    password: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn options(
    host: Option<String>,
    port: Option<u16>,
    replica_set: Option<String>,
    user: Option<&str>,
    password: Option<&str>,
    oplog_max_entries: Option<usize>,
    oplog_max_bytes: Option<usize>,
    ttl_monitor_period: Option<f64>,
) -> PyResult<ClusterOptions> {
    let mut o = ClusterOptions::default();
    if let Some(h) = host {
        o = o.host(h);
    }
    if let Some(p) = port {
        o = o.port(p);
    }
    if let Some(r) = replica_set {
        o = o.replica_set(r);
    }
    match (user, password) {
        (Some(u), Some(p)) => o = o.auth(u, p),
        (None, None) => {}
        _ => {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "`user` and `password` go together: give both to turn authentication on, or neither",
            ));
        }
    }
    if oplog_max_entries.is_some() || oplog_max_bytes.is_some() {
        o = o.oplog_limits(
            oplog_max_entries.unwrap_or(usize::MAX),
            oplog_max_bytes.unwrap_or(usize::MAX),
        );
    }
    if let Some(s) = ttl_monitor_period {
        let d = std::time::Duration::try_from_secs_f64(s).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "`ttl_monitor_period` must be a finite number of seconds >= 0, not {s}"
            ))
        })?;
        o = o.ttl_monitor_period(d);
    }
    Ok(o)
}

async fn start(options: ClusterOptions) -> PyResult<MemoryCluster> {
    let task = rt()?.spawn(MemoryCluster::start_with(options));
    match task.await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(pyo3::exceptions::PyOSError::new_err(format!(
            "the in-memory cluster could not start: {e}"
        ))),
        Err(e) => Err(crate::error::join_error(e)),
    }
}

impl PyMemoryCluster {
    fn new(cluster: MemoryCluster, user: Option<String>, password: Option<String>) -> Self {
        PyMemoryCluster {
            uri: cluster.uri().to_string(),
            cluster: Mutex::new(Some(cluster)),
            user,
            password,
        }
    }
}

#[pymethods]
impl PyMemoryCluster {
    /// Starts a cluster (blocking).
    #[staticmethod]
    #[pyo3(signature = (*, host = None, port = None, replica_set = None, user = None,
        password = None, oplog_max_entries = None, oplog_max_bytes = None, ttl_monitor_period = None))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        py: Python<'_>,
        host: Option<String>,
        port: Option<u16>,
        replica_set: Option<String>,
        user: Option<String>,
        password: Option<String>,
        oplog_max_entries: Option<usize>,
        oplog_max_bytes: Option<usize>,
        ttl_monitor_period: Option<f64>,
    ) -> PyResult<Self> {
        let o = options(
            host,
            port,
            replica_set,
            user.as_deref(),
            password.as_deref(),
            oplog_max_entries,
            oplog_max_bytes,
            ttl_monitor_period,
        )?;
        let cluster = wait(py, start(o))?;
        Ok(PyMemoryCluster::new(cluster, user, password))
    }

    /// Starts a cluster (an awaitable).
    #[staticmethod]
    #[pyo3(signature = (*, host = None, port = None, replica_set = None, user = None,
        password = None, oplog_max_entries = None, oplog_max_bytes = None, ttl_monitor_period = None))]
    #[allow(clippy::too_many_arguments)]
    fn start_async(
        py: Python<'_>,
        host: Option<String>,
        port: Option<u16>,
        replica_set: Option<String>,
        user: Option<String>,
        password: Option<String>,
        oplog_max_entries: Option<usize>,
        oplog_max_bytes: Option<usize>,
        ttl_monitor_period: Option<f64>,
    ) -> PyResult<Bound<'_, PyAny>> {
        let o = options(
            host,
            port,
            replica_set,
            user.as_deref(),
            password.as_deref(),
            oplog_max_entries,
            oplog_max_bytes,
            ttl_monitor_period,
        )?;
        awaitable(py, async move {
            let cluster = start(o).await?;
            Ok(PyMemoryCluster::new(cluster, user, password))
        })
    }

    /// `mongodb://HOST:PORT/?replicaSet=NAME` (no credentials).
    #[getter]
    fn uri(&self) -> &str {
        &self.uri
    }

    /// The user of a cluster started with authentication.
    #[getter]
    fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Its password.
    #[getter]
    fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The connection string with `user` and `password` (percent-encoded).
    fn uri_with_credentials(&self, user: &str, password: &str) -> PyResult<String> {
        match &*self.cluster.lock() {
            Some(c) => Ok(c.uri_with_credentials(user, password)),
            None => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the in-memory cluster is stopped",
            )),
        }
    }

    /// Whether it still serves.
    #[getter]
    fn running(&self) -> bool {
        self.cluster.lock().is_some()
    }

    /// Stops serving and waits until every connection is closed. Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let cluster = self.cluster.lock().take();
        if let Some(c) = cluster {
            wait(py, async move {
                c.shutdown().await;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// `stop` as an awaitable.
    fn stop_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cluster = self.cluster.lock().take();
        awaitable(py, async move {
            if let Some(c) = cluster {
                c.shutdown().await;
            }
            Ok(())
        })
    }
}

impl Drop for PyMemoryCluster {
    fn drop(&mut self) {
        // The testkit's Drop only signals its task (no I/O); it needs no runtime context.
        if let Some(c) = self.cluster.get_mut().take() {
            let _ = enter(|| drop(c));
        }
    }
}
