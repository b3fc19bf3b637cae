//! Engine errors to Python exceptions: one class per `ErrorCode` (defined in
//! `mongosync/errors.py`, named after the code), the `source()` chain in the message and as
//! `__cause__`.

use std::any::Any;

use mongosync_core::{Error, ErrorCode};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(ERRORS
        .get_or_try_init(py, || {
            PyModule::import(py, "mongosync.errors").map(Bound::unbind)
        })?
        .bind(py))
}

/// The exception `{code}Error` of `mongosync.errors` with `message`, and `cause` as `__cause__`.
pub fn exception(py: Python<'_>, code: ErrorCode, message: String, cause: Option<PyErr>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let class = errors_module(py)?.getattr(format!("{}Error", code.as_str()))?;
        let err = PyErr::from_value(class.call1((message.clone(),))?);
        err.set_cause(py, cause);
        Ok(err)
    };
    build().unwrap_or_else(|e| e)
}

/// An engine error as its exception: the message ends with the causes, each cause is also a
/// `mongosync.errors.SourceError` in the `__cause__` chain.
pub fn to_py(py: Python<'_>, error: &Error) -> PyErr {
    let mut causes = Vec::new();
    let mut next = std::error::Error::source(error);
    while let Some(e) = next {
        causes.push(e.to_string());
        next = e.source();
    }
    let mut message = error.to_string();
    for c in &causes {
        message.push_str("\ncaused by: ");
        message.push_str(c);
    }
    // Innermost first: each wrapper gets the one below as its cause.
    let mut cause: Option<PyErr> = None;
    for c in causes.iter().rev() {
        let class = errors_module(py).and_then(|m| m.getattr("SourceError"));
        let err = match class.and_then(|cls| cls.call1((c.clone(),))) {
            Ok(v) => PyErr::from_value(v),
            Err(e) => return e,
        };
        err.set_cause(py, cause.take());
        cause = Some(err);
    }
    exception(py, error.code(), message, cause)
}

/// A panic as `InternalError`, with its message.
pub fn internal(panic: Box<dyn Any + Send>) -> PyErr {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    Python::attach(|py| {
        exception(
            py,
            ErrorCode::Internal,
            format!("internal error in mongosync (a bug; please report it): {what}"),
            None,
        )
    })
}

/// `InvalidStateError` with `message`.
pub fn invalid_state(py: Python<'_>, message: String) -> PyErr {
    exception(py, ErrorCode::InvalidState, message, None)
}

/// A task that did not finish: its panic as `InternalError`.
pub fn join_error(e: tokio::task::JoinError) -> PyErr {
    if e.is_panic() {
        internal(e.into_panic())
    } else {
        Python::attach(|py| {
            exception(
                py,
                ErrorCode::Cancelled,
                format!("the operation was cancelled: {e}"),
                None,
            )
        })
    }
}
