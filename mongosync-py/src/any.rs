//! `attach`: re-enters the sync persisted on the destination, in whatever state it is
//! (`AnySyncer::attach`).

use mongosync_core::{AnySyncer, ConnectOptions};
use pyo3::prelude::*;

use crate::error::{join_error, to_py};
use crate::runtime::rt;
use crate::syncer::Syncer;

/// Connects to both clusters and re-enters the persisted state (IDLE when there is none).
pub async fn attach(
    cluster0: String,
    cluster1: String,
    options: ConnectOptions,
) -> PyResult<Syncer> {
    let task = rt()?.spawn(async move { AnySyncer::attach(&cluster0, &cluster1, options).await });
    match task.await {
        Ok(Ok(s)) => Ok(Syncer::new(s)),
        Ok(Err(e)) => Err(Python::attach(|py| to_py(py, &e))),
        Err(e) => Err(join_error(e)),
    }
}
