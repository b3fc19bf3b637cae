//! Server-side cursors: results waiting to be fetched with `getMore`, reaped after ten idle
//! minutes as on a real server. A collection or `_id` range scan reads lazily between
//! `getMore`s (a [`Scan`]), as a plan executor that yields; blocking plans (sorts, most
//! pipelines) hand out a materialised result.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bson::{Document, RawDocumentBuf};
use parking_lot::Mutex;

use crate::error::{CommandError, Result, codes};
use crate::query::compare::OrdBson;
use crate::query::matcher::Matcher;
use crate::query::pipeline::{Step, Streaming};
use crate::query::projection::Projection;
use crate::server::Server;
use crate::storage::collection::{decode, raw_id};
use crate::storage::{Catalog, Collection, CollectionData, RecordId};

/// How long an idle cursor lives (the server's `cursorTimeoutMillis`).
pub const CURSOR_TIMEOUT: Duration = Duration::from_secs(600);

/// The largest batch in bytes: a reply must stay under the 16 MiB document limit.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024 - 16 * 1024;

/// A batch of result documents, kept as the bytes of a BSON array's elements (`"0": {...}`,
/// `"1": {...}`, ...) behind room for the reply's head: documents are copied once, from storage
/// (or a materialised result) straight into the reply, with no per-document allocation, and
/// [`cursor_reply`] finishes the reply in the same buffer.
#[derive(Debug)]
pub struct Batch {
    /// Room for the reply's head ([`reply_head`] bytes), then the elements.
    elements: Vec<u8>,
    /// The batch of a `find`/`aggregate` (`firstBatch`), else of a `getMore` (`nextBatch`).
    first: bool,
    len: usize,
    doc_bytes: usize,
}

/// The reply's bytes before the first element: `{cursor: {firstBatch: [` or
/// `{cursor: {nextBatch: [`.
const fn reply_head(first: bool) -> usize {
    4 + 1 + 7 + 4 + 1 + batch_key(first).len() + 4
}

/// The array's key with its NUL.
const fn batch_key(first: bool) -> &'static [u8] {
    if first {
        b"firstBatch\0"
    } else {
        b"nextBatch\0"
    }
}

impl Batch {
    /// An empty `firstBatch` (`first`) or `nextBatch`, written into `buffer` (a spare reply
    /// buffer the server keeps: its pages are reused).
    pub fn new(mut buffer: Vec<u8>, first: bool) -> Batch {
        buffer.clear();
        buffer.resize(reply_head(first), 0);
        Batch {
            elements: buffer,
            first,
            len: 0,
            doc_bytes: 0,
        }
    }

    /// Appends a document as the array's next element.
    pub fn push(&mut self, doc: &bson::RawDocument) {
        self.elements.push(0x03);
        push_index(&mut self.elements, self.len);
        self.elements.extend_from_slice(doc.as_bytes());
        self.len += 1;
        self.doc_bytes += doc.as_bytes().len();
    }

    /// The number of documents.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no document.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The documents' total size (what [`MAX_BATCH_BYTES`] bounds).
    pub fn doc_bytes(&self) -> usize {
        self.doc_bytes
    }

    /// The documents, decoded (for tests and callers that need values).
    pub fn documents(&self) -> Vec<RawDocumentBuf> {
        let elements = &self.elements[reply_head(self.first)..];
        let mut bytes = Vec::with_capacity(elements.len() + 5);
        bytes.extend_from_slice(&((elements.len() + 5) as i32).to_le_bytes());
        bytes.extend_from_slice(elements);
        bytes.push(0);
        let Ok(arr) = bson::RawDocumentBuf::from_bytes(bytes) else {
            return Vec::new();
        };
        arr.iter()
            .filter_map(|e| e.ok())
            .filter_map(|(_, v)| v.as_document().map(|d| d.to_owned()))
            .collect()
    }
}

/// Writes `n` as a decimal array key with its NUL terminator.
fn push_index(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.push(0);
}

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
    /// A lazy scan (its batches come from the collection, not `pending`).
    pub scan: Option<Box<Scan>>,
    /// The plan learns its end only by reading past it (an aggregate pipeline, which the
    /// server closes at EOF): a batch that fills exactly leaves the cursor open, and the next
    /// `getMore` answers the empty last batch.
    pub eof_on_read: bool,
    /// The collection a `find`'s materialised result (a blocking sort) came from: its plan
    /// still restores the collection at each `getMore`, so a drop or rename kills it as it
    /// kills a scan.
    pub collection: Option<Arc<Collection>>,
}

/// Where a lazy scan goes on from.
// One per open cursor, inside the boxed `Scan`: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Position {
    /// Natural order: the record ids still to read (a WiredTiger record cursor).
    Natural {
        /// The lowest record id still to read.
        lower: Bound<RecordId>,
        /// The highest record id still to read.
        upper: Bound<RecordId>,
        /// Newest first (`$natural: -1`).
        reverse: bool,
    },
    /// `_id` order: the `_id` range still to read (an `_id` index scan).
    Id {
        /// The lowest `_id` still to read.
        lower: Bound<OrdBson>,
        /// The highest `_id` still to read.
        upper: Bound<OrdBson>,
        /// Descending `_id` order.
        reverse: bool,
    },
}

/// A find that reads its collection batch by batch. Between batches it holds no lock: like a
/// yielding plan it sees what was committed meanwhile after its position (records inserted
/// later may appear; one that existed throughout is returned exactly once, since a record
/// keeps its id and its `_id` across updates).
#[derive(Debug)]
pub struct Scan {
    /// The collection scanned (its identity: a drop or rename kills the scan).
    pub collection: Arc<Collection>,
    /// `db.coll` when the scan opened.
    pub ns: String,
    /// What is left to read.
    pub position: Position,
    /// The filter (also used by positional projections).
    pub matcher: Matcher,
    /// The filter is empty: every record matches.
    pub match_all: bool,
    /// The filter reads only `_id`: match without decoding the document.
    pub id_only: bool,
    /// The projection, if any.
    pub projection: Option<Projection>,
    /// Matching documents still to skip.
    pub skip: usize,
    /// Documents still to return (`None`: no limit).
    pub limit: Option<usize>,
    /// A tailable cursor: stays open at the end of a capped collection.
    pub tailable: bool,
    /// `awaitData`: an empty `getMore` waits for an insert (up to its `maxTimeMS`).
    pub await_data: bool,
    /// The last record the scan looked at (a capped collection can delete it).
    pub last_seen: Option<RecordId>,
    /// A streaming pipeline run over each document read (a lazy `aggregate`).
    pub stages: Option<Box<Streaming>>,
    /// A pipeline output that did not fit in the last batch (its input was consumed: the
    /// pipeline's `$skip`/`$limit` counted it).
    pub carry: Option<RawDocumentBuf>,
}

impl Scan {
    /// Checks that the scan may go on, as a plan restored after a yield: see
    /// [`restore_collection`].
    pub fn restore(&self, catalog: &Catalog) -> Result<()> {
        restore_collection(&self.collection, &self.ns, catalog)
    }

    /// Checks that a natural-order scan of a capped collection still has its position (the
    /// record it saw last): CappedPositionLost once capping (or a delete) removed it.
    fn check_position(&self, data: &CollectionData) -> Result<()> {
        if let (Position::Natural { .. }, Some(rid)) = (&self.position, self.last_seen)
            && data.is_capped()
            && data.get(rid).is_none()
        {
            return Err(CommandError::new(
                codes::CAPPED_POSITION_LOST,
                format!(
                    "CollectionScan died due to position in capped collection being deleted. \
                     Last seen record id: RecordId({rid})"
                ),
            ));
        }
        Ok(())
    }

    /// Reads the next batch into `out` (empty): at most `max` documents (all when `None`) and
    /// at most [`MAX_BATCH_BYTES`]. Returns it and whether the cursor stays open.
    pub fn next_batch(
        &mut self,
        data: &CollectionData,
        max: Option<usize>,
        mut out: Batch,
    ) -> Result<(Batch, bool)> {
        self.check_position(data)?;
        if max == Some(0) {
            return Ok((out, true));
        }
        if self.limit == Some(0) {
            return Ok((out, false));
        }
        let mut bytes = 0usize;
        if let Some(doc) = self.carry.take() {
            bytes += doc.as_bytes().len();
            out.push(&doc);
            if max.is_some_and(|m| out.len() >= m) {
                return Ok((out, true));
            }
        }
        if self.stages.as_ref().is_some_and(|s| s.finished()) {
            return Ok((out, false));
        }
        let candidates: Box<dyn Iterator<Item = (RecordId, &RawDocumentBuf)>> = match &self.position
        {
            Position::Natural {
                lower,
                upper,
                reverse,
            } => {
                let it = data.iter_records((*lower, *upper));
                if *reverse {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                }
            }
            Position::Id {
                lower,
                upper,
                reverse,
            } => data.iter_id_range(lower.as_ref(), upper.as_ref(), *reverse),
        };
        // The last record looked at, and whether the scan must look at it again (it matched
        // but did not fit in this batch).
        let mut stop: Option<(RecordId, &RawDocumentBuf, bool)> = None;
        let mut open = false;
        for (rid, raw) in candidates {
            self.last_seen = Some(rid);
            stop = Some((rid, raw, false));
            let decoded = if self.match_all {
                None
            } else if self.id_only {
                let mut probe = Document::new();
                if let Some(id) = raw_id(raw) {
                    probe.insert("_id", id);
                }
                if !self.matcher.try_matches(&probe)? {
                    continue;
                }
                None
            } else {
                let d = decode(raw)?;
                if !self.matcher.try_matches(&d)? {
                    continue;
                }
                Some(d)
            };
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            let projected = match (&self.projection, &mut self.stages) {
                (_, Some(stages)) => {
                    let d = match decoded {
                        Some(d) => d,
                        None => decode(raw)?,
                    };
                    match stages.push(d)? {
                        Step::Emit(d) => Some(crate::commands::support::encode_result(&d)?),
                        Step::Skip => continue,
                        Step::Done => {
                            self.advance(rid, raw, false);
                            return Ok((out, false));
                        }
                    }
                }
                (None, None) => None,
                (Some(p), None) => {
                    let d = match decoded {
                        Some(d) => d,
                        None => decode(raw)?,
                    };
                    Some(crate::commands::support::encode_result(
                        &p.apply(&d, Some(&self.matcher))?,
                    )?)
                }
            };
            let doc: &bson::RawDocument = projected.as_deref().unwrap_or(raw);
            let len = doc.as_bytes().len();
            if !out.is_empty() && bytes + len > MAX_BATCH_BYTES {
                // A pipeline's output is kept for the next batch (its input was counted);
                // otherwise the record is read again.
                let again = self.stages.is_none();
                if !again {
                    self.carry = projected;
                }
                stop = Some((rid, raw, again));
                open = true;
                break;
            }
            if out.is_empty() {
                // One allocation for the batch: the first document's size times the count.
                let expected = max.unwrap_or(1024).min(MAX_BATCH_BYTES / len.max(1) + 1);
                // Plus the reply's end, so finishing it does not move the batch.
                out.elements
                    .reserve(expected.saturating_mul(len + 8) + 1024 + ENVELOPE_ROOM);
            }
            bytes += len;
            out.push(doc);
            let full = max.is_some_and(|m| out.len() >= m);
            if self.stages.as_ref().is_some_and(|s| s.finished()) {
                // A pipeline learns it is exhausted only at its next read (the server's
                // aggregate cursor closes on EOF, not on a `$limit` reached): a full batch
                // leaves the cursor open.
                self.advance(rid, raw, false);
                return Ok((out, full));
            }
            if let Some(l) = &mut self.limit {
                *l -= 1;
                if *l == 0 {
                    return Ok((out, false));
                }
            }
            // A full batch ends the read without looking further, so the cursor stays open
            // even when nothing is left: the server stops at `batchSize` results and keeps
            // the cursor unless its plan already reached EOF (`shouldSaveCursor`), and a
            // scan only knows that after one more read; the next getMore answers the empty
            // last batch.
            if full {
                open = true;
                break;
            }
        }
        if let Some((rid, raw, again)) = stop {
            self.advance(rid, raw, again);
        }
        // At the end, only a tailable cursor that has a position stays open.
        let open = open || (self.tailable && self.last_seen.is_some());
        Ok((out, open))
    }

    /// Moves the position past record `rid` (or onto it, when it is to be read again).
    fn advance(&mut self, rid: RecordId, raw: &RawDocumentBuf, again: bool) {
        fn bound<T>(v: T, again: bool) -> Bound<T> {
            if again {
                Bound::Included(v)
            } else {
                Bound::Excluded(v)
            }
        }
        match &mut self.position {
            Position::Natural {
                lower,
                upper,
                reverse,
            } => {
                if *reverse {
                    *upper = bound(rid, again);
                } else {
                    *lower = bound(rid, again);
                }
            }
            Position::Id {
                lower,
                upper,
                reverse,
            } => {
                let Some(id) = raw_id(raw) else { return };
                if *reverse {
                    *upper = bound(OrdBson(id), again);
                } else {
                    *lower = bound(OrdBson(id), again);
                }
            }
        }
    }
}

/// Checks that a find's plan may go on after a yield: its collection (opened as `ns`) still
/// exists under the name it had. QueryPlanKilled otherwise, with the server's messages.
pub fn restore_collection(collection: &Arc<Collection>, ns: &str, catalog: &Catalog) -> Result<()> {
    let current = collection.data.read().ns.clone();
    let (db, coll) = current.split_once('.').unwrap_or((&current, ""));
    let alive = catalog
        .collection(db, coll)
        .is_some_and(|c| Arc::ptr_eq(&c, collection));
    let same_db = ns.split_once('.').map(|(d, _)| d) == Some(db);
    let uuid = collection.uuid;
    // A rename across databases copies into a new collection and drops this one.
    if !alive || !same_db {
        return Err(CommandError::new(
            codes::QUERY_PLAN_KILLED,
            format!("collection dropped. UUID {uuid}"),
        ));
    }
    if current != ns {
        return Err(CommandError::new(
            codes::QUERY_PLAN_KILLED,
            format!("collection renamed from '{ns}' to '{current}'. UUID {uuid}"),
        ));
    }
    Ok(())
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

    /// Kills every cursor opened in a session (`killAllSessions`).
    pub fn kill_all_sessions(&self) {
        self.cursors.lock().retain(|_, c| c.lsid.is_none());
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

/// Takes the next batch into `out` (empty): at most `limit` documents (all when `None`) and at
/// most 16 MiB.
pub fn next_batch(
    pending: &mut VecDeque<RawDocumentBuf>,
    limit: Option<usize>,
    mut out: Batch,
) -> Batch {
    while let Some(doc) = pending.front() {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let len = doc.as_bytes().len();
        if !out.is_empty() && out.doc_bytes() + len > MAX_BATCH_BYTES {
            break;
        }
        out.push(doc);
        pending.pop_front();
    }
    out
}

/// Whether a cursor over `pending` stays open after a batch of `returned` documents asked
/// for at most `limit`: while documents are left, or (`eof_on_read`) when the batch is full.
pub fn stays_open(
    pending: &VecDeque<RawDocumentBuf>,
    eof_on_read: bool,
    limit: Option<usize>,
    returned: usize,
) -> bool {
    !pending.is_empty() || (eof_on_read && limit == Some(returned))
}

/// Room left at the end of a cursor reply for the envelope the server appends (`ok`,
/// `$clusterTime`, `operationTime`), so that appending it does not move the batch.
const ENVELOPE_ROOM: usize = 256;

/// The `{cursor: {firstBatch|nextBatch, id, ns}}` reply body, finished in the batch's own
/// buffer (its head written in the room left for it), so the documents are not copied again.
pub fn cursor_reply(id: i64, ns: &str, batch: Batch) -> RawDocumentBuf {
    let key = batch_key(batch.first);
    let head_len = reply_head(batch.first);
    let mut out = batch.elements;
    let array_len = 4 + (out.len() - head_len) + 1;
    // `id` and `ns`, after the array.
    let fields = (1 + 3 + 8) + (1 + 3 + 4 + ns.len() + 1);
    let cursor_len = 4 + 1 + key.len() + array_len + fields + 1;
    let total = 4 + 1 + 7 + cursor_len + 1;
    let mut head = Vec::with_capacity(head_len);
    head.extend_from_slice(&(total as i32).to_le_bytes());
    head.push(0x03);
    head.extend_from_slice(b"cursor\0");
    head.extend_from_slice(&(cursor_len as i32).to_le_bytes());
    head.push(0x04);
    head.extend_from_slice(key);
    head.extend_from_slice(&(array_len as i32).to_le_bytes());
    out[..head_len].copy_from_slice(&head);
    // The array's NUL, the fields, the two documents' NULs.
    out.reserve(1 + fields + 2 + ENVELOPE_ROOM);
    out.push(0);
    out.push(0x12);
    out.extend_from_slice(b"id\0");
    out.extend_from_slice(&id.to_le_bytes());
    out.push(0x02);
    out.extend_from_slice(b"ns\0");
    out.extend_from_slice(&((ns.len() + 1) as i32).to_le_bytes());
    out.extend_from_slice(ns.as_bytes());
    out.push(0);
    out.push(0);
    out.push(0);
    debug_assert_eq!(out.len(), total);
    RawDocumentBuf::from_bytes(out).expect("a well-formed cursor reply")
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
