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

    fn from_event(ev: &Document) -> Op {
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
                let unset = desc
                    .get_array("removedFields")
                    .map(|a| {
                        a.iter()
                            .filter_map(|b| b.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let truncate = desc
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
                let op = Op::from_event(&ev);
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

fn update_model(ns: &DriverNs, filter: &Document, update: Document) -> WriteModel {
    WriteModel::UpdateOne(
        UpdateOneModel::builder()
            .namespace(ns.clone())
            .filter(filter.clone())
            .update(UpdateModifications::Document(update))
            .build(),
    )
}

/// Applies one lane's documents with one ordered bulk write (order matters only per
/// document, and each document lives in one lane), falling back to a refetch per document.
async fn apply_lane(engine: &Arc<Engine>, lane: &[DocOps]) -> Result<()> {
    let dest = engine.destination().clone();
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
    // Summary results, not verbose ones: per-write results come back in a cursor, one more
    // round trip per batch of them. An update that matched nothing shows as a shortfall of
    // `matchedCount`; only then are the updated documents looked for.
    let matches_expected = |from: usize| {
        models[from..]
            .iter()
            .filter(|m| matches!(m, WriteModel::UpdateOne(_) | WriteModel::ReplaceOne(_)))
            .count() as i64
    };
    let mut look_for_missing = false;
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
                    look_for_missing = true;
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
                look_for_missing = true;
                refetch.insert(owner[start + failed]);
                start += failed + 1;
            }
        }
    }
    if look_for_missing {
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
