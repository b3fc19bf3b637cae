//! Server-side cursors: results waiting to be fetched with `getMore`, reaped after ten idle
//! minutes as on a real server.

use std::collections::{HashMap, VecDeque};
use std::sync::Weak;
use std::time::{Duration, Instant};

use bson::raw::cstr;
use bson::{RawArrayBuf, RawDocumentBuf};
use parking_lot::Mutex;

use crate::server::Server;

/// How long an idle cursor lives (the server's `cursorTimeoutMillis`).
pub const CURSOR_TIMEOUT: Duration = Duration::from_secs(600);

/// The largest batch in bytes: a reply must stay under the 16 MiB document limit.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024 - 16 * 1024;

/// An open cursor.
#[derive(Debug)]
pub struct Cursor {
    /// `db.coll` as reported in `cursor.ns`.
    pub ns: String,
    /// Documents not yet returned.
    pub pending: VecDeque<RawDocumentBuf>,
    /// The session that opened it, if any.
    pub lsid: Option<bson::Bson>,
    /// The command that created it (`find`, `aggregate`, ...).
    pub origin: String,
    /// When it was last used.
    pub last_used: Instant,
    /// `noCursorTimeout`: never reaped.
    pub no_timeout: bool,
    /// A change stream's state (its batches come from the oplog, not `pending`).
    pub stream: Option<Box<crate::changestream::stream::StreamState>>,
}

/// Every open cursor, by id.
#[derive(Debug, Default)]
pub struct CursorTable {
    cursors: Mutex<HashMap<i64, Cursor>>,
}

impl CursorTable {
    /// Registers a cursor and returns its new id (a positive Int64, never 0).
    pub fn register(&self, cursor: Cursor) -> i64 {
        let mut map = self.cursors.lock();
        loop {
            let id: i64 = rand::random::<i64>() & i64::MAX;
            if id != 0 && !map.contains_key(&id) {
                map.insert(id, cursor);
                return id;
            }
        }
    }

    /// Takes a cursor out for a `getMore`; put it back with [`restore`](Self::restore).
    pub fn checkout(&self, id: i64) -> Option<Cursor> {
        self.cursors.lock().remove(&id)
    }

    /// Puts a cursor back after use.
    pub fn restore(&self, id: i64, mut cursor: Cursor) {
        cursor.last_used = Instant::now();
        self.cursors.lock().insert(id, cursor);
    }

    /// The namespace of an open cursor.
    pub fn ns_of(&self, id: i64) -> Option<String> {
        self.cursors.lock().get(&id).map(|c| c.ns.clone())
    }

    /// Kills a cursor; whether it existed.
    pub fn kill(&self, id: i64) -> bool {
        self.cursors.lock().remove(&id).is_some()
    }

    /// Kills every cursor of a session (`endSessions`, `killSessions`).
    pub fn kill_session(&self, lsid: &bson::Bson) {
        self.cursors
            .lock()
            .retain(|_, c| c.lsid.as_ref() != Some(lsid));
    }

    /// The number of open cursors.
    pub fn len(&self) -> usize {
        self.cursors.lock().len()
    }

    /// Whether no cursor is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn reap_idle(&self) {
        let now = Instant::now();
        self.cursors
            .lock()
            .retain(|_, c| c.no_timeout || now.duration_since(c.last_used) < CURSOR_TIMEOUT);
    }
}

/// Takes the next batch: at most `limit` documents (all when `None`) and at most 16 MiB.
pub fn next_batch(
    pending: &mut VecDeque<RawDocumentBuf>,
    limit: Option<usize>,
) -> Vec<RawDocumentBuf> {
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some(doc) = pending.front() {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let len = doc.as_bytes().len();
        if !out.is_empty() && bytes + len > MAX_BATCH_BYTES {
            break;
        }
        bytes += len;
        out.push(pending.pop_front().expect("front exists"));
    }
    out
}

/// The `{cursor: {firstBatch|nextBatch, id, ns}}` reply body.
pub fn cursor_reply(id: i64, ns: &str, batch: Vec<RawDocumentBuf>, first: bool) -> RawDocumentBuf {
    let mut arr = RawArrayBuf::new();
    for d in batch {
        arr.push(d);
    }
    let mut cursor = RawDocumentBuf::new();
    cursor.append(
        if first {
            cstr!("firstBatch")
        } else {
            cstr!("nextBatch")
        },
        arr,
    );
    cursor.append(cstr!("id"), id);
    cursor.append(cstr!("ns"), ns);
    let mut reply = RawDocumentBuf::new();
    reply.append(cstr!("cursor"), cursor);
    reply
}

/// Reaps idle cursors every few seconds until the server is gone.
pub(crate) async fn reap(server: Weak<Server>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        match server.upgrade() {
            Some(s) => s.cursors.reap_idle(),
            None => return,
        }
    }
}
