//! The one tokio runtime of the module, and the one way a blocking call waits on it: without
//! the GIL, in slices so that Ctrl-C interrupts the wait, with panics turned into
//! `InternalError` (no `PanicException` reaches Python).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::time::Duration;

use futures::FutureExt;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::error::internal;

/// The process that built the runtime: its worker threads do not exist in a forked child.
static RUNTIME_PID: OnceLock<u32> = OnceLock::new();

/// How long a blocking wait runs without the GIL before it looks at pending signals.
const SLICE: Duration = Duration::from_millis(100);

/// The runtime (pyo3-async-runtimes' own, so that the asyncio API shares it).
///
/// # Errors
/// In a child forked after the runtime started: its threads are gone, and waiting on it would
/// hang forever.
pub fn rt() -> PyResult<&'static Runtime> {
    let pid = *RUNTIME_PID.get_or_init(std::process::id);
    if pid != std::process::id() {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
            "mongosync cannot be used in this process: it was forked (from process {pid}) after \
             mongosync started its runtime, whose threads do not exist in the child; use \
             mongosync in the parent only, or start children with \
             multiprocessing.set_start_method(\"spawn\")"
        )));
    }
    Ok(pyo3_async_runtimes::tokio::get_runtime())
}

/// Runs `fut` to completion on the runtime with the GIL released. Every `SLICE` it takes the
/// GIL back to run signal handlers: a `KeyboardInterrupt` ends the wait (the future is dropped
/// here, so callers pass futures whose dropping is harmless: a join guard, a handle's wait).
pub fn wait<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    let rt = rt()?;
    let mut fut = std::pin::pin!(AssertUnwindSafe(fut).catch_unwind());
    loop {
        let slice = py.detach(|| {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async { tokio::time::timeout(SLICE, fut.as_mut()).await })
            }))
        });
        match slice {
            Ok(Ok(Ok(result))) => return result,
            Ok(Ok(Err(panic))) | Err(panic) => return Err(internal(panic)),
            Ok(Err(_elapsed)) => py.check_signals()?,
        }
    }
}

/// Runs `fut` on the runtime as a Python awaitable, panics turned into `InternalError`.
pub fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    rt()?;
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(internal(panic)),
        }
    })
}

/// Runs a short synchronous step inside the runtime (reading the engine's figures; dropping a
/// server), panics turned into `InternalError`: every entry point that does not wait goes
/// through here, as every one that waits goes through `wait` or `awaitable`.
pub fn enter<T>(f: impl FnOnce() -> T) -> PyResult<T> {
    let _guard = rt()?.enter();
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(internal)
}
