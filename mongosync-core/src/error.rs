//! The one error type of the engine, and its stable codes ([`ErrorCode`]): the REST API's
//! `error` field, the Python exceptions' `.code` and the JavaScript errors' `code`.

use crate::progress::SyncState;

/// The driver's error, kept as a cause (`source()`) without making the driver's types part of
/// this crate's API.
#[derive(Debug, Clone)]
pub struct DriverError(pub(crate) mongodb::error::Error);

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl DriverError {
    /// The server's error code, when the server answered with one.
    pub fn server_code(&self) -> Option<i32> {
        server_code(&self.0)
    }
}

impl From<mongodb::error::Error> for DriverError {
    fn from(e: mongodb::error::Error) -> Self {
        DriverError(e)
    }
}

/// The stable short name of an [`Error`]: what programs branch on. Every face of the
/// product uses these names: the REST API's `error`, Python's `MongosyncError.code` (and one
/// exception class per code), JavaScript's `MongosyncError.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// An option is not allowed; nothing was written.
    InvalidOptions,
    /// The operation is not allowed in the sync's state.
    InvalidState,
    /// A cluster could not be reached, authenticated to, or used.
    ConnectionFailed,
    /// The destination holds data the options do not allow.
    DestinationNotEmpty,
    /// The source's history no longer reaches back to the sync's resume point.
    HistoryLost,
    /// A commit was asked for while `canCommit` is false.
    NotReadyToCommit,
    /// The source holds something the sync cannot migrate.
    Unsupported,
    /// A step of the sync failed on a cluster (after its retries).
    OperationFailed,
    /// The persisted state of a sync cannot be used (another sync's, other clusters').
    MetadataMismatch,
    /// A document or event could not be decoded.
    DecodeFailed,
    /// A local file (the event buffer's spill file) could not be used.
    LocalIoFailed,
    /// The operation was cancelled: the syncer was shut down or dropped.
    Cancelled,
    /// A bug: a task of the engine panicked or an invariant did not hold.
    Internal,
}

impl ErrorCode {
    /// Every code, for bindings that declare one exception class per code.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidOptions,
        ErrorCode::InvalidState,
        ErrorCode::ConnectionFailed,
        ErrorCode::DestinationNotEmpty,
        ErrorCode::HistoryLost,
        ErrorCode::NotReadyToCommit,
        ErrorCode::Unsupported,
        ErrorCode::OperationFailed,
        ErrorCode::MetadataMismatch,
        ErrorCode::DecodeFailed,
        ErrorCode::LocalIoFailed,
        ErrorCode::Cancelled,
        ErrorCode::Internal,
    ];

    /// The name, e.g. `"InvalidState"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidOptions => "InvalidOptions",
            ErrorCode::InvalidState => "InvalidState",
            ErrorCode::ConnectionFailed => "ConnectionFailed",
            ErrorCode::DestinationNotEmpty => "DestinationNotEmpty",
            ErrorCode::HistoryLost => "HistoryLost",
            ErrorCode::NotReadyToCommit => "NotReadyToCommit",
            ErrorCode::Unsupported => "Unsupported",
            ErrorCode::OperationFailed => "OperationFailed",
            ErrorCode::MetadataMismatch => "MetadataMismatch",
            ErrorCode::DecodeFailed => "DecodeFailed",
            ErrorCode::LocalIoFailed => "LocalIoFailed",
            ErrorCode::Cancelled => "Cancelled",
            ErrorCode::Internal => "Internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a full sentence, with the cause kept in `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option given to the engine is not allowed. Nothing was written anywhere.
    #[error("invalid option `{field}`: {reason}")]
    InvalidOptions {
        /// The option's name as the user wrote it.
        field: String,
        /// What was wrong and what is allowed.
        reason: String,
    },
    /// The operation is not allowed in the sync's current state.
    #[error("cannot {operation}: the sync is {state}; {operation} is allowed in {}", allowed_states(.allowed))]
    InvalidState {
        /// The operation asked for (`start`, `pause`, `resume`, `commit`, `reverse`).
        operation: &'static str,
        /// The state the sync is in.
        state: SyncState,
        /// The states that allow the operation.
        allowed: Vec<SyncState>,
    },
    /// A cluster could not be reached or answered with an error.
    #[error("the {cluster} cluster could not be used: {message}")]
    Connection {
        /// Which cluster, e.g. "source (cluster0)".
        cluster: String,
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// The destination holds user data and the options do not allow it.
    #[error(
        "the destination cluster is not empty (it holds {}); start with an empty destination, or set `preExistingDestinationData` with a namespace filter that leaves these out",
        .namespaces.join(", ")
    )]
    DestinationNotEmpty {
        /// Some of the namespaces found.
        namespaces: Vec<String>,
    },
    /// The source no longer holds the history the sync needs to continue.
    #[error(
        "the source's change history no longer reaches back to the sync's resume point ({message}); the source's oplog is too small for this migration: enlarge it, then drop the destination's data and the `__mdb_internal_mongosync` database and start again"
    )]
    HistoryLost {
        /// What the source said.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// The source holds something the sync cannot migrate.
    #[error("{what} is not supported: {reason}")]
    Unsupported {
        /// The thing, e.g. "the time-series collection `db.weather`".
        what: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A commit was asked for before the sync can commit.
    #[error("cannot commit yet: {reason}")]
    NotReadyToCommit {
        /// Which condition of `canCommit` is not met.
        reason: String,
    },
    /// A step of the sync failed on a cluster.
    #[error("{step} failed on the {cluster} cluster: {message}")]
    Step {
        /// The step, e.g. "copying partition 3 of `db.coll`".
        step: String,
        /// Which cluster.
        cluster: String,
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// The persisted state on the destination cannot be used.
    #[error("the sync's persisted state on the destination cannot be used: {reason}")]
    Metadata {
        /// What is wrong with it.
        reason: String,
    },
    /// The destination holds this sync's persisted state in a state that `start` cannot
    /// return (it returns a RUNNING syncer).
    #[error(
        "the destination holds this sync's persisted state, which is {state}; a start cannot continue it as RUNNING: re-enter it with `AnySyncer::attach` (the `mongosync` command does so when it starts)"
    )]
    AlreadyStarted {
        /// The persisted state.
        state: SyncState,
    },
    /// A document or change event could not be decoded.
    #[error("{what} could not be decoded: {message}")]
    Decode {
        /// What, e.g. "a change event".
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// A task of the engine ended abnormally (a panic): a bug.
    #[error("{task} ended abnormally (a bug; please report it): {message}")]
    Task {
        /// Which task.
        task: String,
        /// The panic's message or the cancellation.
        message: String,
    },
    /// An invariant of the engine did not hold: a bug.
    #[error("internal error (a bug; please report it): {reason}")]
    Internal {
        /// What did not hold.
        reason: String,
    },
    /// The operation was cancelled because the syncer was shut down.
    #[error("{operation} was cancelled: the syncer was shut down")]
    Cancelled {
        /// The operation.
        operation: String,
    },
    /// A local file of the event buffer could not be used.
    #[error("the change event buffer's spill file `{path}` could not be used")]
    Spill {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The sync stopped because of an earlier error; its state is kept.
    #[error("the sync stopped: {0}")]
    Stopped(#[source] std::sync::Arc<Error>),
}

fn allowed_states(states: &[SyncState]) -> String {
    let names: Vec<String> = states.iter().map(|s| s.to_string()).collect();
    match names.len() {
        0 => "no state".into(),
        1 => names[0].clone(),
        _ => format!(
            "{} or {}",
            names[..names.len() - 1].join(", "),
            names[names.len() - 1]
        ),
    }
}

impl Error {
    /// The stable short name of this error (see [`ErrorCode`]). A [`Error::Stopped`] has the
    /// code of the error that stopped the sync.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidOptions { .. } => ErrorCode::InvalidOptions,
            Error::InvalidState { .. } | Error::AlreadyStarted { .. } => ErrorCode::InvalidState,
            Error::Connection { .. } => ErrorCode::ConnectionFailed,
            Error::Step { .. } if self.is_connection() => ErrorCode::ConnectionFailed,
            Error::Step { .. } => ErrorCode::OperationFailed,
            Error::DestinationNotEmpty { .. } => ErrorCode::DestinationNotEmpty,
            Error::HistoryLost { .. } => ErrorCode::HistoryLost,
            Error::Unsupported { .. } => ErrorCode::Unsupported,
            Error::NotReadyToCommit { .. } => ErrorCode::NotReadyToCommit,
            Error::Metadata { .. } => ErrorCode::MetadataMismatch,
            Error::Decode { .. } => ErrorCode::DecodeFailed,
            Error::Spill { .. } => ErrorCode::LocalIoFailed,
            Error::Cancelled { .. } => ErrorCode::Cancelled,
            Error::Task { .. } | Error::Internal { .. } => ErrorCode::Internal,
            Error::Stopped(inner) => inner.code(),
        }
    }

    /// Whether the sync had stopped on this error (it is kept; a restart continues).
    pub fn is_stopped(&self) -> bool {
        matches!(self, Error::Stopped(_))
    }

    /// Whether the error is an invalid option.
    pub fn is_invalid_options(&self) -> bool {
        matches!(self, Error::InvalidOptions { .. })
    }

    /// Whether the operation is not allowed in the current state.
    pub fn is_invalid_state(&self) -> bool {
        matches!(self, Error::InvalidState { .. })
    }

    /// Whether the error is a failure to reach or use a cluster.
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Connection { .. } => true,
            Error::Step {
                source: Some(e), ..
            } => is_network(&e.0),
            Error::Stopped(inner) => inner.is_connection(),
            _ => false,
        }
    }

    /// Whether the destination was refused for holding data.
    pub fn is_destination_not_empty(&self) -> bool {
        matches!(self, Error::DestinationNotEmpty { .. })
    }

    /// Whether the source's history no longer covers the sync's resume point.
    pub fn is_history_lost(&self) -> bool {
        match self {
            Error::HistoryLost { .. } => true,
            Error::Stopped(inner) => inner.is_history_lost(),
            _ => false,
        }
    }

    /// Whether a commit was refused because `canCommit` is false.
    pub fn is_not_ready_to_commit(&self) -> bool {
        matches!(self, Error::NotReadyToCommit { .. })
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidOptions {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn step(
        step: impl Into<String>,
        cluster: &str,
        source: mongodb::error::Error,
    ) -> Error {
        // The driver's message never carries a password: credentials are not part of it.
        let message = source.to_string();
        if history_lost(&source) {
            return Error::HistoryLost {
                message,
                source: Some(DriverError(source)),
            };
        }
        Error::Step {
            step: step.into(),
            cluster: cluster.into(),
            message,
            source: Some(DriverError(source)),
        }
    }

    pub(crate) fn internal(reason: impl Into<String>) -> Error {
        Error::Internal {
            reason: reason.into(),
        }
    }

    /// A task that ended with a panic (or was aborted).
    pub(crate) fn task(task: impl Into<String>, e: tokio::task::JoinError) -> Error {
        let message = if e.is_panic() {
            let panic = e.into_panic();
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into())
        } else {
            "it was cancelled".into()
        };
        Error::Task {
            task: task.into(),
            message,
        }
    }

    pub(crate) fn decode(what: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Decode {
            what: what.into(),
            message: e.to_string(),
        }
    }
}

/// Whether a driver error says a network or availability problem (worth retrying).
pub(crate) fn is_network(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    matches!(
        *e.kind,
        ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::ServerSelection { .. }
    ) || e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
        || e.contains_label("ResumableChangeStreamError")
}

/// ChangeStreamHistoryLost (286) or a token no longer in the oplog (280).
pub(crate) fn history_lost(e: &mongodb::error::Error) -> bool {
    matches!(server_code(e), Some(286) | Some(280))
}

/// Whether every write error of an insert is a duplicate key (a document already there).
pub(crate) fn only_duplicate_keys(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        mongodb::error::ErrorKind::InsertMany(m) => {
            m.write_concern_error.is_none()
                && m.write_errors
                    .as_ref()
                    .is_some_and(|w| w.iter().all(|w| w.code == 11000))
        }
        _ => server_code(e) == Some(11000),
    }
}

/// The server's error code in a driver error, if the server answered with one.
pub(crate) fn server_code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first().map(|w| w.code))
            .or(m.write_concern_error.as_ref().map(|w| w.code)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_option_names_the_field() {
        let e = Error::invalid("buildIndexes", "allowed: always, never");
        assert!(e.is_invalid_options());
        assert_eq!(
            e.to_string(),
            "invalid option `buildIndexes`: allowed: always, never"
        );
    }

    #[test]
    fn invalid_state_names_operation_state_and_allowed_states() {
        let e = Error::InvalidState {
            operation: "pause",
            state: SyncState::Committed,
            allowed: vec![SyncState::Running],
        };
        assert_eq!(
            e.to_string(),
            "cannot pause: the sync is COMMITTED; pause is allowed in RUNNING"
        );
        let e = Error::InvalidState {
            operation: "progress",
            state: SyncState::Idle,
            allowed: vec![SyncState::Idle, SyncState::Running, SyncState::Paused],
        };
        assert!(e.to_string().ends_with("IDLE, RUNNING or PAUSED"));
    }

    #[test]
    fn codes_are_stable_names_and_stopped_keeps_the_cause_code() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        let e = Error::HistoryLost {
            message: "gone".into(),
            source: None,
        };
        assert_eq!(e.code(), ErrorCode::HistoryLost);
        let stopped = Error::Stopped(std::sync::Arc::new(e));
        assert_eq!(stopped.code().as_str(), "HistoryLost");
        assert!(stopped.is_stopped());
        assert_eq!(
            Error::AlreadyStarted {
                state: SyncState::Paused
            }
            .code(),
            ErrorCode::InvalidState
        );
    }
}
