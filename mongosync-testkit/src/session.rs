//! Logical sessions on the server side: the latest retryable write of each session and its
//! result, so that a retry with the same `(lsid, txnNumber)` returns the first result instead
//! of executing twice.

use std::collections::HashMap;

use bson::{Bson, Document};
use parking_lot::Mutex;

use crate::error::{CommandError, Result};

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
    txn_number: i64,
    /// The reply of the retryable write `txn_number`, once it completed.
    result: Option<Document>,
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

impl Sessions {
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
