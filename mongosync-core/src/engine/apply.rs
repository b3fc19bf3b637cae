//! Step 5b of the data's way: apply change events to the destination.
//!
//! A round takes the buffered events in stream order. CRUD events are dispatched by a hash
//! of their namespace and `_id` to parallel lanes, so one document's events stay in order;
//! a DDL event is a barrier (the CRUD before it is applied first, then the DDL alone). Within
//! a lane, events for one document are coalesced: an insert, replace or delete supersedes what
//! came before it (keep-last, for hot documents). Writes are idempotent, so replaying from an
//! earlier resume point converges:
//! - insert and replace: replace by `_id` with upsert;
//! - update: the delta of `updateDescription` (arrays truncated first, then `$set`/`$unset`);
//! - delete: delete by `_id`.
//!
//! A document with top-level `$`-prefixed field names (storable since 5.0 through inserts and
//! `$setField`) cannot be a replacement document (DollarPrefixedFieldName, 52): it is written
//! whole by a pipeline update, `[{$replaceWith: {$literal: doc}}]` with upsert.
//!
//! A lane's writes are one batch of driver write models (`models_of`) with two senders,
//! chosen from the destination's wire version: one client-level `bulkWrite` (8.0 and later),
//! or ordered `insert`/`update`/`delete` commands per namespace (6.0 and 7.0).
//!
//! When a delta cannot apply (the document is missing, a path conflicts, a field name is
//! ambiguous, the result is too large), the document is re-read from the source and
//! replaced, or deleted if the source no longer has it. The source's current state is at
//! least as new as the event, and later events replay over it.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bson::{Bson, Document, RawDocumentBuf, Timestamp, doc};
use futures::TryStreamExt;
use mongodb::Namespace as DriverNs;
use mongodb::error::ErrorKind;
use mongodb::options::{
    DeleteOneModel, ReplaceOneModel, UpdateModifications, UpdateOneModel, WriteModel,
};

use super::buffer::Item;
use super::capture::token_time;
use super::{Engine, raise};
use crate::error::{Error, Result};
use crate::namespace::{Namespace, Scope};

/// What one round reached: the last position seen (applied or skipped), if any.
#[derive(Clone)]
pub(crate) struct Reached {
    pub token: Document,
    pub time: Option<Timestamp>,
    /// Events applied (in scope) in the round.
    pub applied: u64,
}

const DDL_TYPES: &[&str] = &[
    "create",
    "createIndexes",
    "dropIndexes",
    "drop",
    "dropDatabase",
    "rename",
    "modify",
    "shardCollection",
    "reshardCollection",
    "refineCollectionShardKey",
    "invalidate",
];

/// A CRUD change, reduced to what the destination needs.
#[derive(Debug, Clone)]
enum Op {
    Upsert(Document),
    Delete,
    Update {
        set: Document,
        unset: Vec<String>,
        truncate: Vec<(String, i32)>,
    },
    Refetch,
}

impl Op {
    fn supersedes(&self) -> bool {
        !matches!(self, Op::Update { .. })
    }

    /// `ambiguous_paths`: the source's update descriptions carry no `disambiguatedPaths`
    /// (before 6.1), so a dotted path may name a field whose name holds a dot or digits.
    fn from_event(ev: &Document, ambiguous_paths: bool) -> Op {
        match ev.get_str("operationType").unwrap_or_default() {
            "insert" | "replace" => match ev.get_document("fullDocument") {
                Ok(d) => Op::Upsert(d.clone()),
                Err(_) => Op::Refetch,
            },
            "delete" => Op::Delete,
            _ => {
                let Ok(desc) = ev.get_document("updateDescription") else {
                    return Op::Refetch;
                };
                // Field names holding dots or digits are ambiguous as update paths.
                if desc
                    .get_document("disambiguatedPaths")
                    .is_ok_and(|d| !d.is_empty())
                {
                    return Op::Refetch;
                }
                let set = desc
                    .get_document("updatedFields")
                    .cloned()
                    .unwrap_or_default();
                if set.keys().any(|k| k.starts_with('$') || k.contains(".$")) {
                    return Op::Refetch;
                }
                let unset: Vec<String> = desc
                    .get_array("removedFields")
                    .map(|a| {
                        a.iter()
                            .filter_map(|b| b.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let truncate: Vec<(String, i32)> = desc
                    .get_array("truncatedArrays")
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| {
                                let t = t.as_document()?;
                                let n = match t.get("newSize")? {
                                    Bson::Int32(n) => *n,
                                    Bson::Int64(n) => *n as i32,
                                    _ => return None,
                                };
                                Some((t.get_str("field").ok()?.to_string(), n))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if ambiguous_paths
                    && (set.keys().any(|k| k.contains('.'))
                        || unset.iter().any(|k| k.contains('.'))
                        || truncate.iter().any(|(k, _)| k.contains('.')))
                {
                    return Op::Refetch;
                }
                Op::Update {
                    set,
                    unset,
                    truncate,
                }
            }
        }
    }
}

/// One document's pending changes in a lane.
#[derive(Clone)]
struct DocOps {
    ns: Namespace,
    id: Bson,
    /// The dispatch key (`group_key`): slots with one key must be written in lane order.
    key: Vec<u8>,
    ops: Vec<Op>,
}

/// A document's dispatch key: equal whenever the server's `_id` index holds two `_id`s equal,
/// so that the events of one server document share a lane whatever the `_id`'s BSON type
/// (`{_id: 7}` deleted, then `{_id: 7.0}` inserted, must run in that order). Numbers compare
/// by value across int32, int64, double and decimal128 (0 and -0.0 equal). In a collection
/// with a collation (`collated`), strings compare by it: every string is one key there, a
/// key coarser than the collation (ICU strengths, `alternate`, `numericOrdering` all merge
/// strings), which only puts more documents in one lane. Embedded documents and arrays
/// compare element by element, so their values are normalised too.
fn group_key(ns: &Namespace, id: &Bson, collated: bool) -> Vec<u8> {
    let mut k = ns.to_string().into_bytes();
    k.push(0);
    id_key(id, collated, &mut k);
    k
}

fn id_key(v: &Bson, collated: bool, out: &mut Vec<u8>) {
    match v {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            out.push(b'n');
            // As an f64: values the server holds equal map to one number; distinct large
            // integers may meet too, which only shares a lane.
            let x = match v {
                Bson::Int32(i) => *i as f64,
                Bson::Int64(i) => *i as f64,
                Bson::Double(d) => *d,
                Bson::Decimal128(d) => d.to_string().parse::<f64>().unwrap_or(f64::NAN),
                _ => unreachable!(),
            };
            let x = if x == 0.0 {
                0.0
            } else if x.is_nan() {
                f64::NAN
            } else {
                x
            };
            out.extend(x.to_bits().to_be_bytes());
        }
        // Symbols sort and compare as strings.
        Bson::String(_) | Bson::Symbol(_) => {
            out.push(b's');
            if !collated {
                let s = match v {
                    Bson::String(s) | Bson::Symbol(s) => s,
                    _ => unreachable!(),
                };
                out.extend((s.len() as u64).to_be_bytes());
                out.extend(s.as_bytes());
            }
        }
        Bson::Document(d) => {
            out.push(b'd');
            out.extend((d.len() as u64).to_be_bytes());
            for (name, value) in d {
                out.extend((name.len() as u64).to_be_bytes());
                out.extend(name.as_bytes());
                id_key(value, collated, out);
            }
        }
        Bson::Array(a) => {
            out.push(b'a');
            out.extend((a.len() as u64).to_be_bytes());
            for value in a {
                id_key(value, collated, out);
            }
        }
        other => {
            out.push(b'o');
            let bytes = bson::serialize_to_vec(&doc! {"v": other.clone()}).unwrap_or_default();
            out.extend((bytes.len() as u64).to_be_bytes());
            out.extend(bytes);
        }
    }
}

/// Whether two `_id`s are the same BSON bytes (type included; `0.0` and `-0.0` differ).
fn same_bytes(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(_) | Bson::Array(_), _) => {
            bson::serialize_to_vec(&doc! {"_id": a.clone()}).ok()
                == bson::serialize_to_vec(&doc! {"_id": b.clone()}).ok()
        }
        _ => a == b,
    }
}

fn lane_of(key: &[u8], lanes: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// What dispatch must know of the collections, from the catalog and the stream's DDL events.
#[derive(Default)]
pub(crate) struct Known {
    /// Capped collections: their events share one lane, to keep insertion order.
    pub capped: HashSet<Namespace>,
    /// Collections with a (non-simple) collation: their string `_id`s compare by it.
    pub collated: HashSet<Namespace>,
    /// The source's update events carry no `disambiguatedPaths` (before 6.1): a delta with
    /// a dotted path is re-read rather than guessed.
    pub ambiguous_paths: bool,
}

/// Whether collection options carry a non-simple collation.
pub(crate) fn has_collation(options: &Document) -> bool {
    options
        .get_document("collation")
        .is_ok_and(|c| c.get_str("locale").unwrap_or("simple") != "simple")
}

fn ns_of(ev: &Document) -> Option<Namespace> {
    Namespace::from_document(ev.get_document("ns").ok()?)
}

/// One step of a prepared round: CRUD lanes applied in parallel, or a DDL barrier.
#[derive(Clone)]
enum Step {
    Crud {
        lanes: Vec<Vec<DocOps>>,
        time: Option<Timestamp>,
    },
    Ddl {
        event: Document,
        time: Option<Timestamp>,
    },
}

/// A round decoded and dispatched, ready to be written (possibly again, after a transient
/// failure: writing is idempotent).
#[derive(Clone)]
pub(crate) struct Prepared {
    steps: Vec<Step>,
    pub reached: Option<Reached>,
}

/// Decodes a round's items and dispatches its CRUD events to lanes (CPU only, no I/O), so
/// that the next round is prepared while the current one is written.
pub(crate) fn prepare(
    lanes: usize,
    scope: &Scope,
    known: &mut Known,
    items: Vec<Item>,
) -> Result<Prepared> {
    let empty = || -> Vec<Vec<DocOps>> { (0..lanes).map(|_| Vec::new()).collect() };
    let mut steps = vec![];
    let mut pending = empty();
    // Per dispatch key, the lane and slot of its latest document.
    let mut index: HashMap<Vec<u8>, (usize, usize)> = HashMap::new();
    let mut reached = None;
    let mut crud_time = None;
    let mut applied = 0u64;
    for item in items {
        let (token, time, event) = match item {
            Item::Position(token) => {
                let time = token_time(&token);
                (token, time, None)
            }
            Item::Event(raw) => {
                let ev = decode(&raw)?;
                let token = ev.get_document("_id").cloned().unwrap_or_default();
                let time = ev.get_timestamp("clusterTime").ok();
                (token, time, Some(ev))
            }
        };
        if let Some(ev) = event {
            let op_type = ev.get_str("operationType").unwrap_or_default().to_string();
            if DDL_TYPES.contains(&op_type.as_str()) {
                // A barrier: everything before it lands first.
                if !index.is_empty() {
                    index.clear();
                    steps.push(Step::Crud {
                        lanes: std::mem::replace(&mut pending, empty()),
                        time: crud_time.take(),
                    });
                }
                // Known from the stream itself, so that lanes of later events are right
                // before the create is written.
                if op_type == "create"
                    && let Some(ns) = ns_of(&ev)
                    && let Ok(desc) = ev.get_document("operationDescription")
                {
                    if desc.get_bool("capped").unwrap_or(false) {
                        known.capped.insert(ns.clone());
                    }
                    if has_collation(desc) {
                        known.collated.insert(ns);
                    }
                }
                // A renamed collection keeps its kind under its new name.
                if op_type == "rename"
                    && let Some(from) = ns_of(&ev)
                    && let Some(to) = ev
                        .get_document("to")
                        .ok()
                        .and_then(Namespace::from_document)
                {
                    if known.capped.remove(&from) {
                        known.capped.insert(to.clone());
                    }
                    if known.collated.remove(&from) {
                        known.collated.insert(to);
                    }
                }
                applied += 1;
                steps.push(Step::Ddl { event: ev, time });
            } else if let Some(ns) = ns_of(&ev)
                && scope.includes(&ns)
                && let Some(id) = ev
                    .get_document("documentKey")
                    .ok()
                    .and_then(|k| k.get("_id"))
                    .cloned()
            {
                let op = Op::from_event(&ev, known.ambiguous_paths);
                let group = group_key(&ns, &id, known.collated.contains(&ns));
                // A capped collection keeps its insertion order: all its events share a lane.
                let lane = if known.capped.contains(&ns) {
                    lane_of(ns.to_string().as_bytes(), lanes)
                } else {
                    lane_of(&group, lanes)
                };
                // Events of one dispatch key stay in stream order: they merge into the key's
                // latest slot only when it holds the same `_id` bytes (a delete of `7` then
                // an insert of `7.0` are two slots, written in that order).
                let slot = match index.get(&group) {
                    Some(&(l, s)) if same_bytes(&pending[l][s].id, &id) => s,
                    _ => {
                        pending[lane].push(DocOps {
                            ns: ns.clone(),
                            id: id.clone(),
                            key: group.clone(),
                            ops: vec![],
                        });
                        let s = pending[lane].len() - 1;
                        index.insert(group, (lane, s));
                        s
                    }
                };
                let ops = &mut pending[lane][slot].ops;
                if op.supersedes() {
                    ops.clear();
                }
                ops.push(op);
                applied += 1;
                crud_time = time.or(crud_time);
            }
        }
        reached = Some(Reached {
            token,
            time,
            applied: 0,
        });
    }
    if !index.is_empty() {
        steps.push(Step::Crud {
            lanes: pending,
            time: crud_time,
        });
    }
    Ok(Prepared {
        steps,
        reached: reached.map(|r| Reached { applied, ..r }),
    })
}

/// Writes a prepared round to the destination.
pub(crate) async fn execute(engine: &Arc<Engine>, scope: &Scope, round: &Prepared) -> Result<()> {
    for step in &round.steps {
        match step {
            Step::Crud { lanes, time } => {
                let results = futures::future::join_all(
                    lanes
                        .iter()
                        .filter(|l| !l.is_empty())
                        .map(|lane| apply_lane(engine, lane)),
                )
                .await;
                for r in results {
                    r?;
                }
                if let Some(t) = time {
                    raise(&engine.stats.crud_time, *t);
                }
            }
            Step::Ddl { event, time } => {
                super::ddl::apply(engine, scope, event).await?;
                engine.stats.ddl_applied.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = time {
                    raise(&engine.stats.ddl_time, *t);
                }
            }
        }
    }
    Ok(())
}

fn decode(raw: &RawDocumentBuf) -> Result<Document> {
    Document::try_from(raw.as_ref()).map_err(|e| Error::decode("a change event", e))
}

fn models_of(d: &DocOps) -> Vec<WriteModel> {
    let ns = DriverNs::new(&d.ns.db, &d.ns.coll);
    let filter = doc! {"_id": d.id.clone()};
    let mut out = vec![];
    for op in &d.ops {
        match op {
            Op::Upsert(doc) if has_top_level_dollar(doc.keys().map(String::as_str)) => {
                out.push(replace_with_pipeline(&ns, &filter, doc.clone()))
            }
            Op::Upsert(doc) => out.push(WriteModel::ReplaceOne(
                ReplaceOneModel::builder()
                    .namespace(ns.clone())
                    .filter(filter.clone())
                    .replacement(doc.clone())
                    .upsert(true)
                    .build(),
            )),
            Op::Delete => out.push(WriteModel::DeleteOne(
                DeleteOneModel::builder()
                    .namespace(ns.clone())
                    .filter(filter.clone())
                    .build(),
            )),
            Op::Update {
                set,
                unset,
                truncate,
            } => {
                if !truncate.is_empty() {
                    let mut push = Document::new();
                    for (field, n) in truncate {
                        push.insert(field, doc! {"$each": [], "$slice": *n});
                    }
                    out.push(update_model(&ns, &filter, doc! {"$push": push}));
                }
                let mut update = Document::new();
                if !set.is_empty() {
                    update.insert("$set", set.clone());
                }
                if !unset.is_empty() {
                    let u: Document = unset
                        .iter()
                        .map(|f| (f.clone(), Bson::String(String::new())))
                        .collect();
                    update.insert("$unset", u);
                }
                if !update.is_empty() {
                    out.push(update_model(&ns, &filter, update));
                }
            }
            // Refetches run after the lane's batch (see `apply_lane`).
            Op::Refetch => {}
        }
    }
    out
}

/// Whether a document has top-level `$`-prefixed field names, which a replacement document
/// cannot hold.
fn has_top_level_dollar<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| k.starts_with('$'))
}

/// Writes `doc` whole by a pipeline update with upsert: the way a server stores top-level
/// `$`-prefixed field names that a replacement refuses (52).
fn replace_with_pipeline(ns: &DriverNs, filter: &Document, doc: Document) -> WriteModel {
    WriteModel::UpdateOne(
        UpdateOneModel::builder()
            .namespace(ns.clone())
            .filter(filter.clone())
            .update(UpdateModifications::Pipeline(literal_pipeline(doc)))
            .upsert(true)
            .build(),
    )
}

/// The pipeline that makes a document exactly `doc`.
fn literal_pipeline(doc: Document) -> Vec<Document> {
    vec![doc! {"$replaceWith": {"$literal": doc}}]
}

fn update_model(ns: &DriverNs, filter: &Document, update: Document) -> WriteModel {
    WriteModel::UpdateOne(
        UpdateOneModel::builder()
            .namespace(ns.clone())
            .filter(filter.clone())
            .update(UpdateModifications::Document(update))
            .build(),
    )
}

/// Applies one lane's documents (order matters only per document, and each document lives
/// in one lane), falling back to a refetch per document.
async fn apply_lane(engine: &Arc<Engine>, lane: &[DocOps]) -> Result<()> {
    let mut models = vec![];
    let mut owner = vec![];
    let mut refetch: HashSet<usize> = HashSet::new();
    for (i, d) in lane.iter().enumerate() {
        if d.ops.iter().any(|o| matches!(o, Op::Refetch)) {
            refetch.insert(i);
        }
        for m in models_of(d) {
            models.push(m);
            owner.push(i);
        }
    }
    let sent = if engine.destination().has_bulk_write() {
        send_bulk_write(engine, &models).await?
    } else {
        send_per_namespace(engine, lane, &models, &owner).await?
    };
    for failed in &sent.failed {
        refetch.insert(owner[*failed]);
    }
    if sent.unmatched || !sent.failed.is_empty() {
        for i in missing_updated(engine, lane).await? {
            refetch.insert(i);
        }
    }
    let mut refetched: Vec<usize> = refetch.into_iter().collect();
    refetched.sort_unstable();
    for i in refetched {
        refetch_one(engine, &lane[i].ns, &lane[i].id).await?;
        engine.stats.refetches.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// What a sender found: the writes that failed (each one's document is re-read), and whether
/// an update may have matched nothing.
#[derive(Default)]
struct Sent {
    failed: Vec<usize>,
    unmatched: bool,
}

/// Whether a write model counts in an update's matched (or upserted) figure.
fn expects_match(m: &WriteModel) -> bool {
    matches!(m, WriteModel::UpdateOne(_) | WriteModel::ReplaceOne(_))
}

/// The 8.0 sender: one ordered client-level `bulkWrite`, resumed after a failed write.
async fn send_bulk_write(engine: &Arc<Engine>, models: &[WriteModel]) -> Result<Sent> {
    let dest = engine.destination();
    // Summary results, not verbose ones: per-write results come back in a cursor, one more
    // round trip per batch of them. An update that matched nothing shows as a shortfall of
    // `matchedCount`; only then are the updated documents looked for.
    let matches_expected =
        |from: usize| models[from..].iter().filter(|m| expects_match(m)).count() as i64;
    let mut sent = Sent::default();
    let mut start = 0;
    while start < models.len() {
        let batch: Vec<WriteModel> = models[start..].to_vec();
        let result = dest
            .client
            .bulk_write(batch)
            .ordered(true)
            .bypass_document_validation(true)
            .await;
        match result {
            Ok(r) => {
                if r.matched_count + r.upserted_count < matches_expected(start) {
                    sent.unmatched = true;
                }
                break;
            }
            Err(e) => {
                let ErrorKind::BulkWrite(bw) = &*e.kind else {
                    return Err(Error::step("applying change events", dest.name.as_str(), e));
                };
                if !bw.write_concern_errors.is_empty() {
                    return Err(Error::step("applying change events", dest.name.as_str(), e));
                }
                let Some(failed) = bw.write_errors.keys().min().copied() else {
                    return Err(Error::step("applying change events", dest.name.as_str(), e));
                };
                tracing::debug!(
                    "a change could not apply as a delta ({}); re-reading the document",
                    bw.write_errors[&failed].message
                );
                sent.failed.push(start + failed);
                start += failed + 1;
            }
        }
    }
    Ok(sent)
}

/// The command a write goes in, per namespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Insert,
    Update,
    Delete,
}

impl Kind {
    fn command(self) -> &'static str {
        match self {
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
        }
    }
    fn array(self) -> &'static str {
        match self {
            Kind::Insert => "documents",
            Kind::Update => "updates",
            Kind::Delete => "deletes",
        }
    }
}

/// A write model as a statement of an `insert`, `update` or `delete` command.
fn statement(m: &WriteModel) -> Result<(&DriverNs, Kind, Document)> {
    fn extras(
        s: &mut Document,
        collation: &Option<Document>,
        hint: &Option<Bson>,
        upsert: Option<bool>,
    ) {
        if let Some(c) = collation {
            s.insert("collation", c.clone());
        }
        if let Some(h) = hint {
            s.insert("hint", h.clone());
        }
        if upsert == Some(true) {
            s.insert("upsert", true);
        }
    }
    fn modifications(u: &UpdateModifications) -> Result<Bson> {
        match u {
            UpdateModifications::Document(d) => Ok(Bson::Document(d.clone())),
            UpdateModifications::Pipeline(p) => {
                Ok(Bson::Array(p.iter().cloned().map(Bson::Document).collect()))
            }
            other => Err(Error::internal(format!(
                "an update of an unknown shape: {other:?}"
            ))),
        }
    }
    Ok(match m {
        WriteModel::InsertOne(m) => (&m.namespace, Kind::Insert, m.document.clone()),
        WriteModel::ReplaceOne(m) => {
            let mut s = doc! {"q": m.filter.clone(), "u": m.replacement.clone(), "multi": false};
            extras(&mut s, &m.collation, &m.hint, m.upsert);
            (&m.namespace, Kind::Update, s)
        }
        WriteModel::UpdateOne(m) => {
            let mut s =
                doc! {"q": m.filter.clone(), "u": modifications(&m.update)?, "multi": false};
            if let Some(f) = &m.array_filters {
                s.insert("arrayFilters", f.clone());
            }
            extras(&mut s, &m.collation, &m.hint, m.upsert);
            (&m.namespace, Kind::Update, s)
        }
        WriteModel::UpdateMany(m) => {
            let mut s = doc! {"q": m.filter.clone(), "u": modifications(&m.update)?, "multi": true};
            if let Some(f) = &m.array_filters {
                s.insert("arrayFilters", f.clone());
            }
            extras(&mut s, &m.collation, &m.hint, m.upsert);
            (&m.namespace, Kind::Update, s)
        }
        WriteModel::DeleteOne(m) => {
            let mut s = doc! {"q": m.filter.clone(), "limit": 1};
            extras(&mut s, &m.collation, &m.hint, None);
            (&m.namespace, Kind::Delete, s)
        }
        WriteModel::DeleteMany(m) => {
            let mut s = doc! {"q": m.filter.clone(), "limit": 0};
            extras(&mut s, &m.collation, &m.hint, None);
            (&m.namespace, Kind::Delete, s)
        }
        other => {
            return Err(Error::internal(format!(
                "a write of an unknown kind: {other:?}"
            )));
        }
    })
}

/// Statements of one command, each with the index of its write model.
type Statements = Vec<(usize, Document)>;

/// The most statements in one command (the server's `maxWriteBatchSize`).
const MAX_STATEMENTS: usize = 100_000;
/// The most statement bytes in one command, well under the 16 MiB a command body may hold
/// (a larger statement goes alone).
const MAX_STATEMENT_BYTES: usize = 8 << 20;

/// The order of the per-namespace sender: model indices by level (every document's first
/// write, then every second one...). A slot whose dispatch key an earlier slot of the segment
/// holds (the server's same document, `7` then `7.0`) starts a new segment after every level
/// so far. `owner[m]` is the lane index of model `m`'s document, ascending.
fn levels(lane: &[DocOps], owner: &[usize]) -> Vec<Vec<usize>> {
    // Model indices per level; a document's models are contiguous in `models`.
    let mut levels: Vec<Vec<usize>> = vec![];
    let mut segment_start = 0;
    let mut segment_keys: HashSet<&[u8]> = HashSet::new();
    let mut i = 0;
    while i < owner.len() {
        let d = owner[i];
        let end = i + owner[i..].iter().take_while(|o| **o == d).count();
        if !segment_keys.insert(&lane[d].key) {
            segment_keys.clear();
            segment_keys.insert(&lane[d].key);
            segment_start = levels.len();
        }
        for (level, m) in (i..end).enumerate() {
            let at = segment_start + level;
            if levels.len() <= at {
                levels.push(vec![]);
            }
            levels[at].push(m);
        }
        i = end;
    }
    levels
}

/// The sender for destinations before 8.0, which lack `bulkWrite`: ordered `insert`,
/// `update` and `delete` commands per namespace. Writes of different documents are
/// independent, so a lane is sent by level (every document's first write, then every
/// second one...), each level as one command per namespace and kind, statements in lane
/// order (a capped collection's inserts keep their order). Slots the server holds as one
/// document (a delete of `7`, then an insert of `7.0`) start a new segment of levels, so
/// their writes keep stream order.
async fn send_per_namespace(
    engine: &Arc<Engine>,
    lane: &[DocOps],
    models: &[WriteModel],
    owner: &[usize],
) -> Result<Sent> {
    let levels = levels(lane, owner);
    let mut sent = Sent::default();
    for level in levels {
        let mut commands: Vec<(&DriverNs, Kind, Statements)> = vec![];
        for m in level {
            let (ns, kind, s) = statement(&models[m])?;
            match commands.iter_mut().find(|(n, k, _)| *n == ns && *k == kind) {
                Some((_, _, statements)) => statements.push((m, s)),
                None => commands.push((ns, kind, vec![(m, s)])),
            }
        }
        for (ns, kind, statements) in commands {
            send_command(engine, ns, kind, &statements, &mut sent).await?;
        }
    }
    Ok(sent)
}

/// Sends statements of one kind to one namespace, in order, in as many commands as their
/// size needs; a failed statement is recorded and the rest is sent after it.
async fn send_command(
    engine: &Arc<Engine>,
    ns: &DriverNs,
    kind: Kind,
    statements: &[(usize, Document)],
    sent: &mut Sent,
) -> Result<()> {
    let dest = engine.destination();
    let db = dest.client.database(&ns.db);
    let fail =
        |e: mongodb::error::Error| Error::step("applying change events", dest.name.as_str(), e);
    let mut start = 0;
    while start < statements.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < statements.len() && end - start < MAX_STATEMENTS {
            let size = bson::serialize_to_vec(&statements[end].1)
                .map(|b| b.len())
                .unwrap_or(0);
            if end > start && bytes + size > MAX_STATEMENT_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        let batch: Vec<Bson> = statements[start..end]
            .iter()
            .map(|(_, s)| Bson::Document(s.clone()))
            .collect();
        let mut command = doc! {
            kind.command(): ns.coll.clone(),
            kind.array(): batch,
            "ordered": true,
            "writeConcern": {"w": "majority"},
        };
        if kind != Kind::Delete {
            command.insert("bypassDocumentValidation", true);
        }
        let reply = db.run_command(command).await.map_err(fail)?;
        if let Ok(wce) = reply.get_document("writeConcernError") {
            let wce: mongodb::error::WriteConcernError =
                bson::deserialize_from_document(wce.clone())
                    .map_err(|e| Error::decode("a write concern error", e))?;
            return Err(fail(
                ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(wce)).into(),
            ));
        }
        let n = match reply.get("n") {
            Some(Bson::Int32(n)) => *n as usize,
            Some(Bson::Int64(n)) => *n as usize,
            _ => 0,
        };
        let failed = reply
            .get_array("writeErrors")
            .ok()
            .and_then(|w| w.iter().filter_map(Bson::as_document).next())
            .map(|w| {
                let index = match w.get("index") {
                    Some(Bson::Int32(i)) => *i as usize,
                    Some(Bson::Int64(i)) => *i as usize,
                    _ => 0,
                };
                (index, w.get_str("errmsg").unwrap_or_default().to_string())
            });
        // Statements that ran without error, before the failed one if any.
        let ran = failed.as_ref().map_or(end - start, |(i, _)| *i);
        if kind == Kind::Update && n < ran {
            sent.unmatched = true;
        }
        match failed {
            Some((index, message)) if start + index < end => {
                tracing::debug!(
                    "a change could not apply as a delta ({message}); re-reading the document"
                );
                sent.failed.push(statements[start + index].0);
                start += index + 1;
            }
            _ => start = end,
        }
    }
    Ok(())
}

/// The documents of a lane that had an update applied but are not on the destination (the
/// update matched nothing). A document whose last change is an update exists on the source
/// at that point, so it must exist here too.
async fn missing_updated(engine: &Arc<Engine>, lane: &[DocOps]) -> Result<Vec<usize>> {
    let dest = engine.destination();
    let mut by_ns: HashMap<&Namespace, Vec<usize>> = HashMap::new();
    for (i, d) in lane.iter().enumerate() {
        if matches!(d.ops.last(), Some(Op::Update { .. })) {
            by_ns.entry(&d.ns).or_default().push(i);
        }
    }
    let mut missing = vec![];
    for (ns, docs) in by_ns {
        let ids: Vec<Bson> = docs.iter().map(|i| lane[*i].id.clone()).collect();
        let found: Vec<Document> = dest
            .client
            .database(&ns.db)
            .collection::<Document>(&ns.coll)
            .find(doc! {"_id": {"$in": ids}})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| {
                Error::step(
                    format!("checking updated documents of `{ns}`"),
                    dest.name.as_str(),
                    e,
                )
            })?
            .try_collect()
            .await
            .map_err(|e| {
                Error::step(
                    format!("checking updated documents of `{ns}`"),
                    dest.name.as_str(),
                    e,
                )
            })?;
        // The server finds `7.0` for `7`: compare as its `_id` index does (strings by bytes,
        // so a collated match of other bytes is re-read, which is only more work).
        let found: HashSet<Vec<u8>> = found
            .iter()
            .filter_map(|d| d.get("_id"))
            .map(|id| group_key(ns, id, false))
            .collect();
        for i in docs {
            if !found.contains(&group_key(ns, &lane[i].id, false)) {
                missing.push(i);
            }
        }
    }
    Ok(missing)
}

/// Re-reads a document from the source and writes it whole (or deletes it).
pub(crate) async fn refetch_one(engine: &Arc<Engine>, ns: &Namespace, id: &Bson) -> Result<()> {
    let source = engine.source();
    let dest = engine.destination();
    let filter = doc! {"_id": id.clone()};
    let current = source
        .client
        .database(&ns.db)
        .collection::<RawDocumentBuf>(&ns.coll)
        .find_one(filter.clone())
        .await
        .map_err(|e| {
            Error::step(
                format!("re-reading a document of `{ns}`"),
                source.name.as_str(),
                e,
            )
        })?;
    let coll = dest
        .client
        .database(&ns.db)
        .collection::<RawDocumentBuf>(&ns.coll);
    let written = match current {
        Some(doc)
            if has_top_level_dollar(doc.iter().filter_map(|e| e.ok().map(|(k, _)| k.as_str()))) =>
        {
            let doc = Document::try_from(doc.as_ref())
                .map_err(|e| Error::decode(format!("a re-read document of `{ns}`"), e))?;
            coll.update_one(filter, literal_pipeline(doc))
                .upsert(true)
                .bypass_document_validation(true)
                .await
                .map(|_| ())
        }
        Some(doc) => coll
            .replace_one(filter, doc)
            .upsert(true)
            .bypass_document_validation(true)
            .await
            .map(|_| ()),
        None => coll.delete_one(filter).await.map(|_| ()),
    };
    written.map_err(|e| {
        Error::step(
            format!("writing a re-read document of `{ns}`"),
            dest.name.as_str(),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_namespace_levels_keep_each_server_document_in_order() {
        let ns = Namespace::new("d", "c");
        let slot = |id: Bson| DocOps {
            key: group_key(&ns, &id, false),
            ns: ns.clone(),
            id,
            ops: vec![],
        };
        // Documents 1 (two writes), 2 (one), then 7 deleted and 7.0 inserted (one server
        // document in two slots), then 3.
        let lane = vec![
            slot(Bson::Int32(1)),
            slot(Bson::Int32(2)),
            slot(Bson::Int32(7)),
            slot(Bson::Double(7.0)),
            slot(Bson::Int32(3)),
        ];
        let owner = [0, 0, 1, 2, 3, 4];
        assert_eq!(
            levels(&lane, &owner),
            vec![vec![0, 2, 3], vec![1], vec![4, 5]]
        );
    }

    #[test]
    fn ids_the_server_holds_equal_share_a_dispatch_key() {
        let ns = Namespace::new("d", "c");
        let key = |v: Bson, collated| group_key(&ns, &v, collated);
        let seven: Bson = Bson::Decimal128("7.0".parse().unwrap());
        for v in [Bson::Int64(7), Bson::Double(7.0), seven] {
            assert_eq!(key(Bson::Int32(7), false), key(v, false));
        }
        assert_eq!(key(Bson::Int32(0), false), key(Bson::Double(-0.0), false));
        assert_eq!(
            key(Bson::Document(doc! {"a": [1]}), false),
            key(Bson::Document(doc! {"a": [1.0]}), false)
        );
        assert_ne!(key(Bson::Int32(7), false), key(Bson::Int32(8), false));
        assert_ne!(key("a".into(), false), key("A".into(), false));
        assert_eq!(key("a".into(), true), key("A".into(), true));
        assert_ne!(key("7".into(), false), key(Bson::Int32(7), false));
    }
}
