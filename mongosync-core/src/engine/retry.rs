//! Transient failures (dropped connections, elections, write conflicts) are retried with
//! backoff for a bounded time (mongosync retries for up to 30 minutes), then reported.
//! Only idempotent steps are retried: a partition copy, an apply round, a commit step.

use std::future::Future;
use std::time::{Duration, Instant};

use super::Engine;
use crate::error::{Error, Result, is_network, server_code};

/// Server codes that say "try again". Exactly: the codes of the drivers' retryable-reads
/// specification (the server's `NetworkError` and `NotPrimaryError` codes, shutdowns,
/// ReadConcernMajorityNotAvailableYet 134, ExceededTimeLimit 262), LegacyNotPrimary (10058,
/// which the SDAM specification reads as "not writable primary" during an election), and
/// WriteConflict (112). The server's other `RetriableError` codes are internal-only or not
/// about failovers (overload, resharding, backup cursors).
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 89, 91, 112, 134, 189, 262, 9001, 10058, 10107, 11600, 11602, 13435, 13436,
];

fn transient_driver(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    if is_network(e) || server_code(e).is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
        return true;
    }
    match &*e.kind {
        ErrorKind::BulkWrite(bw) => {
            bw.write_errors
                .values()
                .any(|w| TRANSIENT_CODES.contains(&w.code))
                || bw
                    .write_concern_errors
                    .iter()
                    .any(|w| TRANSIENT_CODES.contains(&w.code))
                || std::error::Error::source(e)
                    .and_then(|s| s.downcast_ref::<mongodb::error::Error>())
                    .is_some_and(transient_driver)
        }
        _ => false,
    }
}

/// The reason of a transient failure, for the retry counters.
fn reason_of(e: &Error) -> &'static str {
    use mongodb::error::ErrorKind;
    let (Error::Step {
        source: Some(s), ..
    }
    | Error::Connection {
        source: Some(s), ..
    }) = e
    else {
        return "other";
    };
    if is_network(&s.0) {
        return "network";
    }
    let code = match &*s.0.kind {
        ErrorKind::BulkWrite(bw) => bw
            .write_errors
            .values()
            .map(|w| w.code)
            .chain(bw.write_concern_errors.iter().map(|w| w.code))
            .find(|c| TRANSIENT_CODES.contains(c)),
        _ => server_code(&s.0),
    };
    crate::metrics::retry_reason(code.or(Some(0)))
}

/// Whether an engine error is worth retrying.
pub(crate) fn is_transient(e: &Error) -> bool {
    match e {
        Error::Step {
            source: Some(s), ..
        }
        | Error::Connection {
            source: Some(s), ..
        } => transient_driver(&s.0),
        _ => false,
    }
}

/// Runs `step` until it succeeds, fails for good, or transient failures have lasted longer
/// than the retry window. An attempt that ran for a minute before failing made progress, so
/// it starts a new window.
pub(crate) async fn retry<T, F, Fut>(engine: &Engine, what: &str, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut failing_since: Option<Instant> = None;
    let mut delay = Duration::from_millis(50);
    let mut attempts = 0u32;
    loop {
        let attempt = Instant::now();
        match step().await {
            Ok(v) => {
                if attempts > 0 {
                    tracing::info!("{what} succeeded after {attempts} retries");
                }
                return Ok(v);
            }
            Err(e) if is_transient(&e) => {
                if attempt.elapsed() > Duration::from_secs(60) {
                    failing_since = None;
                    delay = Duration::from_millis(50);
                }
                let since = *failing_since.get_or_insert(attempt);
                if since.elapsed() >= engine.opts.retry_window {
                    return Err(e);
                }
                attempts += 1;
                engine.stats.retried(reason_of(&e));
                tracing::warn!("{what} failed ({e}); retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}
