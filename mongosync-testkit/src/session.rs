//! Logical sessions on the server side: the latest retryable write of each session and its
//! result, so that a retry with the same `(lsid, txnNumber)` returns the first result instead
//! of executing twice.

use std::collections::HashMap;

use bson::{Bson, Document};
use parking_lot::Mutex;

use crate::error::{CommandError, Result};

const EMPTY_USER_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The commands that are retryable writes when they carry `txnNumber` without `autocommit`.
pub const RETRYABLE_WRITES: &[&str] = &[
    "insert",
    "update",
    "delete",
    "findAndModify",
    "findandmodify",
    "bulkWrite",
];

#[derive(Debug, Default)]
struct SessionState {
    /// The session's `lsid`, and when a command last used it (`$listLocalSessions`).
    lsid: Option<Document>,
    last_use: Option<bson::DateTime>,
    txn_number: i64,
    /// The reply of the retryable write `txn_number`, once it completed.
    result: Option<Document>,
    /// The statements of `txn_number` executed so far, by index, with their outcome: an
    /// attempt whose reply was not recorded (a statement failed by `onPrimaryTransactionalWrite`)
    /// is retried without executing them again, as the server keeps executed statement ids.
    statements: std::collections::BTreeMap<usize, Document>,
}

/// Every session the server has seen a retryable write on.
#[derive(Debug, Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<Vec<u8>, SessionState>>,
}

/// The key of a session: the bytes of its `lsid.id`.
pub fn session_key(lsid: &Bson) -> Option<Vec<u8>> {
    match lsid {
        Bson::Document(d) => match d.get("id") {
            Some(Bson::Binary(b)) => Some(b.bytes.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A session as the server prints a `LogicalSessionId` in messages: `<id> - <uid> -  - `
/// (its uid in base64; the empty user's without authentication).
pub fn display_lsid(lsid: &Bson) -> String {
    let bytes = |field: &str| match lsid.as_document().and_then(|d| d.get(field)) {
        Some(Bson::Binary(b)) => Some(b.bytes.clone()),
        _ => None,
    };
    let id = bytes("id")
        .and_then(|b| uuid::Uuid::from_slice(&b).ok())
        .map(|u| u.to_string())
        .unwrap_or_default();
    let uid = bytes("uid").unwrap_or_else(|| EMPTY_USER_SHA256.to_vec());
    use base64::Engine;
    format!(
        "{id} - {} -  - ",
        base64::engine::general_purpose::STANDARD.encode(uid)
    )
}

/// For statement `index` of the retryable write running now: its outcome if an earlier
/// attempt of the same `(lsid, txnNumber)` executed it (the statement is then not executed
/// again); `None` outside a retryable write.
pub fn executed_statement(index: usize) -> Option<Document> {
    crate::failpoint::RETRYABLE_WRITE
        .try_with(|w| {
            let server = w.server.as_ref().filter(|_| w.per_statement)?;
            server.sessions.statement(&w.key, w.txn_number, index)
        })
        .ok()
        .flatten()
}

/// Records that statement `index` of the retryable write running now was executed, with its
/// outcome (what its command adds to the reply).
pub fn record_statement(index: usize, outcome: Document) {
    let _ = crate::failpoint::RETRYABLE_WRITE.try_with(|w| {
        if let Some(server) = w.server.as_ref().filter(|_| w.per_statement) {
            server
                .sessions
                .record_statement(&w.key, w.txn_number, index, outcome);
        }
    });
}

impl Sessions {
    /// Notes that a command used the session `lsid`.
    pub fn touch(&self, lsid: &Bson) {
        let (Some(key), Bson::Document(d)) = (session_key(lsid), lsid) else {
            return;
        };
        let mut sessions = self.sessions.lock();
        let state = sessions.entry(key).or_default();
        state.lsid = Some(d.clone());
        state.last_use = Some(bson::DateTime::now());
    }

    /// The sessions in the cache, as `$listLocalSessions` reports them.
    pub fn list(&self) -> Vec<Document> {
        self.sessions
            .lock()
            .values()
            .filter_map(|s| {
                let lsid = s.lsid.clone()?;
                let id = lsid.get("id")?.clone();
                // No authentication: every session belongs to the same (empty) user, whose
                // uid is the SHA-256 of the empty user name.
                let uid = bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: EMPTY_USER_SHA256.to_vec() };
                Some(bson::doc! {"_id": {"id": id, "uid": uid}, "lastUse": s.last_use.unwrap_or_else(bson::DateTime::now)})
            })
            .collect()
    }

    /// Before a retryable write: the stored reply if `(session, txn_number)` already ran;
    /// TransactionTooOld (225) if the session has moved on to a newer number.
    pub fn begin(&self, key: &[u8], txn_number: i64) -> Result<Option<Document>> {
        let mut sessions = self.sessions.lock();
        let state = sessions.entry(key.to_vec()).or_default();
        if txn_number < state.txn_number {
            return Err(CommandError::new(
                225,
                format!(
                    "Retryable write with txnNumber {txn_number} is prohibited on session because a newer retryable write with txnNumber {} has already started on this session.",
                    state.txn_number
                ),
            ));
        }
        if txn_number == state.txn_number {
            return Ok(state.result.clone());
        }
        state.txn_number = txn_number;
        state.result = None;
        state.statements.clear();
        Ok(None)
    }

    /// After a retryable write completed: remembers its reply.
    pub fn complete(&self, key: &[u8], txn_number: i64, reply: Document) {
        let mut sessions = self.sessions.lock();
        let state = sessions.entry(key.to_vec()).or_default();
        if state.txn_number == txn_number {
            state.result = Some(reply);
        }
    }

    /// Whether an attempt of `(key, txn_number)` recorded executed statements.
    pub fn has_statements(&self, key: &[u8], txn_number: i64) -> bool {
        self.sessions
            .lock()
            .get(key)
            .is_some_and(|s| s.txn_number == txn_number && !s.statements.is_empty())
    }

    fn statement(&self, key: &[u8], txn_number: i64, index: usize) -> Option<Document> {
        let sessions = self.sessions.lock();
        let state = sessions.get(key)?;
        (state.txn_number == txn_number)
            .then(|| state.statements.get(&index).cloned())
            .flatten()
    }

    fn record_statement(&self, key: &[u8], txn_number: i64, index: usize, outcome: Document) {
        let mut sessions = self.sessions.lock();
        if let Some(state) = sessions.get_mut(key)
            && state.txn_number == txn_number
        {
            state.statements.insert(index, outcome);
        }
    }

    /// Forgets sessions (`endSessions`, `killAllSessions`).
    pub fn end(&self, key: &[u8]) {
        self.sessions.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_returns_the_first_result_and_old_numbers_are_refused() {
        let s = Sessions::default();
        assert_eq!(s.begin(b"a", 1).unwrap(), None);
        s.complete(b"a", 1, bson::doc! {"n": 1});
        assert_eq!(s.begin(b"a", 1).unwrap(), Some(bson::doc! {"n": 1}));
        assert_eq!(s.begin(b"a", 2).unwrap(), None);
        assert_eq!(s.begin(b"a", 1).unwrap_err().code, 225);
    }
}
