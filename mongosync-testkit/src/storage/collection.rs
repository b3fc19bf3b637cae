//! One collection: raw BSON documents in insertion (natural) order, an `_id` index over them,
//! its options and its secondary indexes. Every mutation keeps the indexes and size figures in
//! step; callers hold the collection's lock for the whole statement.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf, doc};
use parking_lot::RwLock;

use crate::error::{CommandError, Result};
use crate::oplog::{EntryKind, Oplog};
use crate::query::compare::OrdBson;

use super::index::{Index, duplicate_key_error};

/// A record's position in natural order; stable across updates, as in WiredTiger.
pub type RecordId = u64;

/// A collection and its data, behind a lock so that writers on different collections never
/// wait for each other.
#[derive(Debug)]
pub struct Collection {
    /// The collection's UUID (`info.uuid`, `ui` in the oplog).
    pub uuid: bson::Uuid,
    /// Options and documents.
    pub data: RwLock<CollectionData>,
}

/// The options, documents and indexes of a collection.
#[derive(Debug, Clone)]
pub struct CollectionData {
    /// `db.coll`, for error messages.
    pub ns: String,
    /// The creation options as `listCollections` reports them.
    pub options: Document,
    /// Documents by record id (natural order).
    records: BTreeMap<RecordId, RawDocumentBuf>,
    /// The `_id` index: `_id` value to record id.
    ids: BTreeMap<OrdBson, RecordId>,
    next_record: RecordId,
    data_size: usize,
    /// Secondary indexes, in creation order (the `_id_` index is implicit).
    pub indexes: Vec<Index>,
    /// The collection's UUID.
    pub uuid: bson::Uuid,
    /// Where writes are recorded (none for scratch collections).
    oplog: Option<Arc<Oplog>>,
    /// While set, writes are recorded here instead of the oplog: a transaction's private copy,
    /// or a commit gathering its entries to write them under one cluster time.
    captured: Option<Vec<EntryKind>>,
    /// Woken at each insert: tailable `awaitData` cursors wait on it for new documents.
    inserted: Arc<tokio::sync::Notify>,
}

impl Collection {
    /// A new empty collection.
    pub fn new(ns: String, options: Document, oplog: Option<Arc<Oplog>>) -> Collection {
        let uuid = bson::Uuid::new();
        Collection {
            uuid,
            data: RwLock::new(CollectionData {
                uuid,
                oplog,
                captured: None,
                inserted: Arc::default(),
                ns,
                options,
                records: BTreeMap::new(),
                ids: BTreeMap::new(),
                next_record: 1,
                data_size: 0,
                indexes: Vec::new(),
            }),
        }
    }
}

/// The `_id` of a raw document, as an owned value.
pub fn raw_id(doc: &RawDocumentBuf) -> Option<Bson> {
    let value = doc.get("_id").ok().flatten()?;
    Bson::try_from(value).ok()
}

impl CollectionData {
    /// The number of documents.
    pub fn count(&self) -> usize {
        self.records.len()
    }

    /// The total BSON size of the documents.
    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// Whether writes keep pre- and post-images (`changeStreamPreAndPostImages`).
    pub fn keeps_images(&self) -> bool {
        self.options
            .get_document("changeStreamPreAndPostImages")
            .is_ok_and(|d| d.get_bool("enabled").unwrap_or(false))
    }

    /// Records a DDL change of this collection (indexes, `collMod`).
    pub fn record_ddl(&mut self, kind: EntryKind) {
        self.record(kind);
    }

    fn record(&mut self, kind: EntryKind) {
        if let Some(captured) = &mut self.captured {
            captured.push(kind);
        } else if let Some(oplog) = &self.oplog {
            oplog.append(self.ns.clone(), Some(self.uuid), kind, None);
        }
    }

    fn records_anything(&self) -> bool {
        self.oplog.is_some() || self.captured.is_some()
    }

    /// A private copy for a transaction: same documents and indexes; its writes are captured
    /// for the commit instead of reaching the oplog.
    pub fn transaction_copy(&self) -> CollectionData {
        let mut copy = self.clone();
        copy.oplog = None;
        copy.captured = Some(Vec::new());
        copy
    }

    /// Starts capturing writes instead of recording them.
    pub fn begin_capture(&mut self) {
        self.captured = Some(Vec::new());
    }

    /// Stops capturing and returns what was captured.
    pub fn end_capture(&mut self) -> Vec<EntryKind> {
        self.captured.take().unwrap_or_default()
    }

    /// What a transaction copy captured so far (from `from` on).
    pub fn captured_since(&self, from: usize) -> &[EntryKind] {
        self.captured
            .as_deref()
            .map_or(&[], |c| c.get(from..).unwrap_or(&[]))
    }

    /// Whether `_id` is unique and indexed (not in time-series collections, whose `_id`s may
    /// repeat).
    pub fn has_id_index(&self) -> bool {
        !self.options.contains_key("timeseries")
    }

    /// Whether the collection is capped.
    pub fn is_capped(&self) -> bool {
        self.options.get_bool("capped").unwrap_or(false)
    }

    /// Notified at every insert (a tailable `awaitData` cursor's `getMore` waits on it).
    pub fn insert_notify(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.inserted)
    }

    /// Documents in natural order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (RecordId, &RawDocumentBuf)> {
        self.records.iter().map(|(r, d)| (*r, d))
    }

    /// Documents in natural order from record `after` (exclusive).
    pub fn iter_after(&self, after: RecordId) -> impl Iterator<Item = (RecordId, &RawDocumentBuf)> {
        self.records
            .range((Bound::Excluded(after), Bound::Unbounded))
            .map(|(r, d)| (*r, d))
    }

    /// Documents in natural order within record ids `range`.
    pub fn iter_records(
        &self,
        range: (Bound<RecordId>, Bound<RecordId>),
    ) -> impl DoubleEndedIterator<Item = (RecordId, &RawDocumentBuf)> {
        self.records.range(range).map(|(r, d)| (*r, d))
    }

    /// Documents in `_id` order within `range`: O(log n) to find the start, then O(1) a step.
    pub fn iter_id_range<'a>(
        &'a self,
        lower: Bound<&OrdBson>,
        upper: Bound<&OrdBson>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = (RecordId, &'a RawDocumentBuf)> + 'a> {
        // An empty range (`min` past `max`, `$gt: 5, $lt: 3`) reads nothing; BTreeMap would
        // panic on it.
        let empty = match (lower, upper) {
            (Bound::Included(l), Bound::Included(u)) => l > u,
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => {
                l >= u
            }
            _ => false,
        };
        if empty {
            return Box::new(std::iter::empty());
        }
        let range = self.ids.range::<OrdBson, _>((lower, upper));
        let lookup = move |(_, rid): (&OrdBson, &RecordId)| (*rid, &self.records[rid]);
        if reverse {
            Box::new(range.rev().map(lookup))
        } else {
            Box::new(range.map(lookup))
        }
    }

    /// The record holding `_id == id`.
    pub fn find_id(&self, id: &Bson) -> Option<(RecordId, &RawDocumentBuf)> {
        let rid = self.ids.get(&OrdBson(id.clone()))?;
        Some((*rid, &self.records[rid]))
    }

    /// One record.
    pub fn get(&self, rid: RecordId) -> Option<&RawDocumentBuf> {
        self.records.get(&rid)
    }

    /// Inserts a document that already has its `_id` (the caller adds a missing one).
    /// Fails with DuplicateKey on the `_id` index or a unique index, changing nothing.
    pub fn insert(&mut self, raw: RawDocumentBuf, id: Bson) -> Result<RecordId> {
        let key = OrdBson(id);
        let indexed = self.has_id_index();
        if indexed && self.ids.contains_key(&key) {
            return Err(duplicate_key_error(
                &self.ns,
                "_id_",
                &doc! {"_id": 1},
                std::iter::once(&key.0),
            ));
        }
        let rid = self.next_record;
        if !self.indexes.is_empty() {
            let decoded = decode(&raw)?;
            for index in &self.indexes {
                index.check_unique(&self.ns, &decoded, rid)?;
            }
            for index in &mut self.indexes {
                index.add(&decoded, rid)?;
            }
        }
        self.next_record += 1;
        self.data_size += raw.as_bytes().len();
        if indexed {
            self.ids.insert(key, rid);
        }
        if self.records_anything() {
            self.record(EntryKind::Insert { doc: raw.clone() });
        }
        self.records.insert(rid, raw);
        // Only capped collections have tailable cursors to wake.
        if self.is_capped() {
            self.enforce_cap();
            self.inserted.notify_waiters();
        }
        Ok(rid)
    }

    /// Replaces record `rid` with `new` (same `_id`), keeping its place in natural order.
    /// `replacement` tells a replacement (a `replace` event) from an operator update.
    pub fn replace(&mut self, rid: RecordId, new: RawDocumentBuf, replacement: bool) -> Result<()> {
        let old = self
            .records
            .get(&rid)
            .ok_or_else(|| CommandError::new(1, "record vanished"))?;
        if !self.indexes.is_empty() {
            let old_doc = decode(old)?;
            let new_doc = decode(&new)?;
            for index in &self.indexes {
                index.check_unique(&self.ns, &new_doc, rid)?;
            }
            for index in &mut self.indexes {
                index.remove(&old_doc, rid);
                index.add(&new_doc, rid)?;
            }
        }
        let old_len = self.records[&rid].as_bytes().len();
        self.data_size = self.data_size + new.as_bytes().len() - old_len;
        if self.records_anything() {
            let images = self.keeps_images();
            let before = self.records[&rid].clone();
            self.record(EntryKind::Update {
                before,
                after: new.clone(),
                replace: replacement,
                images,
            });
        }
        self.records.insert(rid, new);
        Ok(())
    }

    /// Removes record `rid`, returning its document.
    pub fn remove(&mut self, rid: RecordId) -> Option<RawDocumentBuf> {
        let raw = self.remove_unrecorded(rid)?;
        if self.records_anything() {
            let images = self.keeps_images();
            self.record(EntryKind::Delete {
                before: raw.clone(),
                images,
            });
        }
        Some(raw)
    }

    /// Removes a record without an oplog entry.
    fn remove_unrecorded(&mut self, rid: RecordId) -> Option<RawDocumentBuf> {
        let raw = self.records.remove(&rid)?;
        if let Some(id) = raw_id(&raw).filter(|_| self.has_id_index()) {
            self.ids.remove(&OrdBson(id));
        }
        if !self.indexes.is_empty()
            && let Ok(d) = decode(&raw)
        {
            for index in &mut self.indexes {
                index.remove(&d, rid);
            }
        }
        self.data_size -= raw.as_bytes().len();
        Some(raw)
    }

    /// Removes every document (indexes kept).
    pub fn truncate(&mut self) {
        self.records.clear();
        self.ids.clear();
        self.data_size = 0;
        for index in &mut self.indexes {
            let _ = index.rebuild(&self.ns, std::iter::empty());
        }
    }

    /// Decoded documents with their record ids, for index builds.
    pub fn decoded(&self) -> Result<Vec<(RecordId, Document)>> {
        self.records
            .iter()
            .map(|(r, raw)| Ok((*r, decode(raw)?)))
            .collect()
    }

    /// Capped collections drop their oldest documents past `size` bytes or `max` documents.
    fn enforce_cap(&mut self) {
        if !self.is_capped() {
            return;
        }
        let size = self
            .options
            .get("size")
            .and_then(as_i64)
            .unwrap_or(i64::MAX);
        let max = self
            .options
            .get("max")
            .and_then(as_i64)
            .filter(|m| *m > 0)
            .unwrap_or(i64::MAX);
        while self.records.len() > 1
            && (self.data_size as i64 > size || self.records.len() as i64 > max)
        {
            // Since FCV 5.0 the primary replicates capped deletes as delete oplog entries
            // (SERVER-16049), so change streams see them as `delete` events.
            let oldest = *self.records.keys().next().expect("non-empty");
            self.remove(oldest);
        }
    }
}

/// A number of any BSON numeric type as i64.
pub fn as_i64(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(*i as i64),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.is_finite() => Some(*d as i64),
        _ => None,
    }
}

/// Decodes a stored document (stored documents are valid BSON by construction).
pub fn decode(raw: &RawDocumentBuf) -> Result<Document> {
    Document::try_from(raw.as_ref())
        .map_err(|e| CommandError::new(22, format!("invalid BSON: {e}")))
}
