//! `ProgressStream`: `SyncHandle::changes()` as a Python iterator source; each item is the
//! `/progress` document (JSON) published by the engine, so nothing polls.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use mongosync_core::{Progress, SyncHandle};
use pyo3::prelude::*;

use crate::runtime::{awaitable, wait};

type Changes = Pin<Box<dyn Stream<Item = Progress> + Send>>;

/// The progress now, then each change, until the syncer is gone.
#[pyclass(module = "mongosync._mongosync", frozen)]
pub struct ProgressStream {
    changes: Arc<tokio::sync::Mutex<Changes>>,
}

impl ProgressStream {
    pub fn new(handle: &SyncHandle) -> ProgressStream {
        ProgressStream {
            changes: Arc::new(tokio::sync::Mutex::new(Box::pin(handle.changes()))),
        }
    }
}

async fn next(changes: Arc<tokio::sync::Mutex<Changes>>) -> PyResult<Option<String>> {
    let item = changes.lock().await.next().await;
    item.map(|p| crate::progress::progress_json(&p)).transpose()
}

#[pymethods]
impl ProgressStream {
    /// The next document (JSON), or `None` once the syncer is gone. Blocks without the GIL;
    /// Ctrl-C interrupts the wait.
    fn next(&self, py: Python<'_>) -> PyResult<Option<String>> {
        wait(py, next(Arc::clone(&self.changes)))
    }

    /// `next` as an awaitable.
    fn next_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, next(Arc::clone(&self.changes)))
    }
}
