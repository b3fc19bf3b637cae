//! Engine errors as JavaScript errors. napi cannot give an async function's error a custom
//! code (TOOLCHAIN.md pitfall 7), so the message starts with the stable code in brackets,
//! `[InvalidState] …`, followed by one `Caused by: …` line per `source()`; the TypeScript
//! layer (`src/errors.ts`) parses it back into one class per code with `cause` set.

use mongosync_core::{Error, ErrorCode};

/// The message prefix's format: `[Code] message` then `\nCaused by: cause` lines.
pub(crate) fn format(code: &str, error: &dyn std::error::Error) -> String {
    let mut message = format!("[{code}] {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        // Some causes repeat their wrapper's message (a driver error inside DriverError).
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str("\nCaused by: ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// An engine error as a napi error.
pub(crate) fn to_napi(error: &Error) -> napi::Error {
    napi::Error::from_reason(format(error.code().as_str(), error))
}

/// An error of this binding, with one of the engine's codes.
pub(crate) fn binding(code: ErrorCode, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::from_reason(format!("[{code}] {message}"))
}

/// A task of this binding that ended with a panic (a bug).
pub(crate) fn task_failed(what: &str, e: tokio::task::JoinError) -> napi::Error {
    let panic = if e.is_panic() {
        let p = e.into_panic();
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    } else {
        "it was cancelled".into()
    };
    binding(
        ErrorCode::Internal,
        format!("{what} ended abnormally (a bug; please report it): {panic}"),
    )
}

/// Every engine error code, in the engine's order: the TypeScript layer checks that it
/// declares one class for each.
#[napi_derive::napi(catch_unwind)]
pub fn error_codes() -> Vec<&'static str> {
    ErrorCode::ALL.iter().map(|c| c.as_str()).collect()
}
