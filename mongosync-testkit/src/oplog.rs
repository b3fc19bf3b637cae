//! The oplog: every write, user or DDL, in cluster-time order, with a bounded history.
//! Cluster time is handed out under the oplog's lock, so entries are appended in strictly
//! increasing `ts` order and a reader always sees a prefix of history. Change streams are
//! built from it.

use std::collections::VecDeque;
use std::sync::Arc;

use bson::{Document, RawDocumentBuf, Timestamp};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::Clock;

/// A transaction or retryable write an entry belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnInfo {
    /// The session (`{id: UUID}`).
    pub lsid: Document,
    /// The transaction number.
    pub txn_number: i64,
}

/// What an entry records.
#[derive(Debug, Clone)]
pub enum EntryKind {
    /// A document inserted (also the insert of an upsert).
    Insert {
        /// The document as stored.
        doc: RawDocumentBuf,
    },
    /// A document updated in place or replaced.
    Update {
        /// Before the write.
        before: RawDocumentBuf,
        /// After the write.
        after: RawDocumentBuf,
        /// A replacement (`replace` event) rather than an operator update (`update` event).
        replace: bool,
        /// Whether the collection kept pre- and post-images for this write.
        images: bool,
    },
    /// A document deleted.
    Delete {
        /// The deleted document.
        before: RawDocumentBuf,
        /// Whether the collection kept a pre-image.
        images: bool,
    },
    /// A collection or view created (`o` without `create`).
    Create {
        /// The `operationDescription` of the `create` event.
        description: Document,
        /// Whether it is a view.
        view: bool,
    },
    /// A collection or view dropped.
    Drop {
        /// Whether it was a view.
        view: bool,
    },
    /// A collection renamed.
    Rename {
        /// The target `db.coll`.
        to: String,
        /// The UUID of the collection dropped by `dropTarget`.
        drop_target: Option<bson::Uuid>,
    },
    /// A database dropped.
    DropDatabase,
    /// Indexes created.
    CreateIndexes {
        /// Their specifications.
        indexes: Vec<Document>,
    },
    /// Indexes dropped.
    DropIndexes {
        /// Their specifications.
        indexes: Vec<Document>,
    },
    /// `collMod`.
    Modify {
        /// The `operationDescription` (the options given).
        description: Document,
        /// `stateBeforeChange`.
        state_before: Document,
    },
    /// A no-op (`appendOplogNote`, periodic no-ops): moves time, makes no event.
    Noop {
        /// The note.
        data: Document,
    },
}

/// One oplog entry.
#[derive(Debug, Clone)]
pub struct OplogEntry {
    /// Its cluster time.
    pub ts: Timestamp,
    /// The wall clock when written.
    pub wall: bson::DateTime,
    /// `db.coll`, or `db` alone for database-level entries, or empty for no-ops.
    pub ns: String,
    /// The collection's UUID, when there is one.
    pub ui: Option<bson::Uuid>,
    /// What happened.
    pub kind: EntryKind,
    /// The transaction or retryable write it belongs to.
    pub txn: Option<TxnInfo>,
    /// Its position among entries sharing `ts` (a transaction's operations).
    pub txn_op_index: u32,
    size: usize,
}

impl OplogEntry {
    /// The database of the entry's namespace.
    pub fn db(&self) -> &str {
        self.ns.split_once('.').map_or(self.ns.as_str(), |(d, _)| d)
    }

    /// The collection of the entry's namespace (empty for database-level entries).
    pub fn coll(&self) -> &str {
        self.ns.split_once('.').map_or("", |(_, c)| c)
    }
}

/// Size bounds of the history kept.
#[derive(Debug, Clone, Copy)]
pub struct OplogLimits {
    /// At most this many entries.
    pub max_entries: usize,
    /// At most this many bytes (approximate: the documents' sizes).
    pub max_bytes: usize,
}

impl Default for OplogLimits {
    fn default() -> Self {
        OplogLimits {
            max_entries: 5_000_000,
            max_bytes: 2 << 30,
        }
    }
}

#[derive(Debug)]
struct Inner {
    entries: VecDeque<Arc<OplogEntry>>,
    bytes: usize,
    limits: OplogLimits,
    /// The newest `ts` no longer in history (entries at or before it are gone).
    truncated_through: Option<Timestamp>,
}

/// The oplog and the cluster clock.
#[derive(Debug)]
pub struct Oplog {
    clock: Clock,
    inner: Mutex<Inner>,
    latest: watch::Sender<Timestamp>,
    /// When the history starts: the clock at start-up (resuming from before it is allowed as
    /// long as nothing was truncated, as on a fresh replica set).
    pub start: Timestamp,
}

fn ts_key(ts: Timestamp) -> (u32, u32) {
    (ts.time, ts.increment)
}

impl Oplog {
    /// An empty oplog with `limits`.
    pub fn new(limits: OplogLimits) -> Arc<Oplog> {
        let clock = Clock::new();
        let start = clock.now();
        let (latest, _) = watch::channel(start);
        Arc::new(Oplog {
            clock,
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                bytes: 0,
                limits,
                truncated_through: None,
            }),
            latest,
            start,
        })
    }

    /// The latest cluster time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Appends one entry and returns its cluster time.
    pub fn append(
        &self,
        ns: String,
        ui: Option<bson::Uuid>,
        kind: EntryKind,
        txn: Option<TxnInfo>,
    ) -> Timestamp {
        self.append_group(vec![(ns, ui, kind)], txn)
    }

    /// Appends entries that share one cluster time (a transaction's commit, a batched write),
    /// with increasing `txn_op_index`.
    pub fn append_group(
        &self,
        ops: Vec<(String, Option<bson::Uuid>, EntryKind)>,
        txn: Option<TxnInfo>,
    ) -> Timestamp {
        let mut inner = self.inner.lock();
        let ts = self.clock.tick();
        let wall = bson::DateTime::now();
        for (i, (ns, ui, kind)) in ops.into_iter().enumerate() {
            let size = entry_size(&kind) + ns.len() + 64;
            inner.bytes += size;
            inner.entries.push_back(Arc::new(OplogEntry {
                ts,
                wall,
                ns,
                ui,
                kind,
                txn: txn.clone(),
                txn_op_index: i as u32,
                size,
            }));
        }
        while inner.entries.len() > 1
            && (inner.entries.len() > inner.limits.max_entries
                || inner.bytes > inner.limits.max_bytes)
        {
            let old = inner.entries.pop_front().expect("non-empty");
            inner.bytes -= old.size;
            inner.truncated_through = Some(old.ts);
        }
        drop(inner);
        self.latest.send_replace(ts);
        ts
    }

    /// Subscribes to the latest cluster time, to wait for new entries.
    pub fn subscribe(&self) -> watch::Receiver<Timestamp> {
        self.latest.subscribe()
    }

    /// Entries strictly after `(ts, txn_op_index)` (after every entry at `ts` when the index
    /// is `None`), at most `limit` of them.
    pub fn after(
        &self,
        ts: Timestamp,
        txn_op_index: Option<u32>,
        limit: usize,
    ) -> Vec<Arc<OplogEntry>> {
        let inner = self.inner.lock();
        let key = (ts_key(ts), txn_op_index.map_or(i64::MAX, |i| i as i64));
        let start = inner
            .entries
            .partition_point(|e| (ts_key(e.ts), e.txn_op_index as i64) <= key);
        inner.entries.range(start..).take(limit).cloned().collect()
    }

    /// Entries at or after `ts`, at most `limit`.
    pub fn from(&self, ts: Timestamp, limit: usize) -> Vec<Arc<OplogEntry>> {
        let inner = self.inner.lock();
        let start = inner.entries.partition_point(|e| ts_key(e.ts) < ts_key(ts));
        inner.entries.range(start..).take(limit).cloned().collect()
    }

    /// Whether history at `ts` is still complete (nothing at or after it was truncated).
    pub fn covers(&self, ts: Timestamp) -> bool {
        match self.inner.lock().truncated_through {
            None => true,
            Some(t) => ts_key(ts) > ts_key(t),
        }
    }

    /// The oldest entry's cluster time still in history.
    pub fn oldest(&self) -> Option<Timestamp> {
        self.inner.lock().entries.front().map(|e| e.ts)
    }

    /// The bytes kept and the capacity, as `collStats` of `local.oplog.rs` reports them
    /// (`size`, `maxSize`). A bound by entries is turned into bytes at the average entry size,
    /// so that a history full by count reads as full.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        let n = inner.entries.len();
        let by_entries = if n == 0 {
            usize::MAX
        } else {
            let max = inner.bytes as u128 * inner.limits.max_entries as u128 / n as u128;
            usize::try_from(max).unwrap_or(usize::MAX)
        };
        (inner.bytes, inner.limits.max_bytes.min(by_entries))
    }

    /// The number of entries kept.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry up to and including `ts` (a test hook: history lost).
    pub fn truncate_through(&self, ts: Timestamp) {
        let mut inner = self.inner.lock();
        while inner
            .entries
            .front()
            .is_some_and(|e| ts_key(e.ts) <= ts_key(ts))
        {
            let old = inner.entries.pop_front().expect("non-empty");
            inner.bytes -= old.size;
        }
        let through = inner
            .truncated_through
            .map_or(ts, |t| if ts_key(t) > ts_key(ts) { t } else { ts });
        inner.truncated_through = Some(through);
    }

    /// Changes the history bounds (applied at the next append).
    pub fn set_limits(&self, limits: OplogLimits) {
        self.inner.lock().limits = limits;
    }
}

fn entry_size(kind: &EntryKind) -> usize {
    match kind {
        EntryKind::Insert { doc } => doc.as_bytes().len(),
        EntryKind::Update { before, after, .. } => before.as_bytes().len() + after.as_bytes().len(),
        EntryKind::Delete { before, .. } => before.as_bytes().len(),
        _ => 256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> EntryKind {
        EntryKind::Noop {
            data: Document::new(),
        }
    }

    #[test]
    fn entries_are_ordered_and_bounded() {
        let log = Oplog::new(OplogLimits {
            max_entries: 3,
            max_bytes: usize::MAX,
        });
        let first = log.append("".into(), None, noop(), None);
        assert!(log.covers(first));
        let ts: Vec<Timestamp> = (0..4)
            .map(|_| log.append("".into(), None, noop(), None))
            .collect();
        assert_eq!(log.len(), 3);
        assert!(!log.covers(first), "the first entries fell off");
        assert!(log.covers(ts[2]));
        let after = log.after(ts[1], None, 10);
        assert_eq!(
            after.iter().map(|e| e.ts).collect::<Vec<_>>(),
            vec![ts[2], ts[3]]
        );
    }

    #[test]
    fn a_group_shares_one_time_with_increasing_indexes() {
        let log = Oplog::new(OplogLimits::default());
        let ts = log.append_group(
            vec![("d.c".into(), None, noop()), ("d.c".into(), None, noop())],
            None,
        );
        let all = log.from(ts, 10);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].txn_op_index, all[1].txn_op_index), (0, 1));
        assert_eq!(log.after(ts, Some(0), 10).len(), 1);
    }
}
