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

fn key_of(ns: &Namespace, id: &Bson) -> Vec<u8> {
    let mut k = ns.to_string().into_bytes();
    k.push(0);
    k.extend(bson::serialize_to_vec(&doc! {"_id": id.clone()}).unwrap_or_default());
    k
}

fn lane_of(key: &[u8], lanes: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
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
    capped: &mut HashSet<Namespace>,
    items: Vec<Item>,
) -> Result<Prepared> {
    let empty = || -> Vec<Vec<DocOps>> { (0..lanes).map(|_| Vec::new()).collect() };
    let mut steps = vec![];
    let mut pending = empty();
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
                    && ev
                        .get_document("operationDescription")
                        .is_ok_and(|d| d.get_bool("capped").unwrap_or(false))
                {
                    capped.insert(ns);
                }
                // A renamed capped collection stays capped under its new name.
                if op_type == "rename"
                    && let Some(from) = ns_of(&ev)
                    && let Some(to) = ev
                        .get_document("to")
                        .ok()
                        .and_then(Namespace::from_document)
                    && capped.remove(&from)
                {
                    capped.insert(to);
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
                let key = key_of(&ns, &id);
                // A capped collection keeps its insertion order: all its events share a lane.
                let lane_key = if capped.contains(&ns) {
                    ns.to_string().into_bytes()
                } else {
                    key.clone()
                };
                let (lane, slot) = *index.entry(key).or_insert_with(|| {
                    let lane = lane_of(&lane_key, lanes);
                    pending[lane].push(DocOps {
                        ns: ns.clone(),
                        id: id.clone(),
                        ops: vec![],
                    });
                    (lane, pending[lane].len() - 1)
                });
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
        let found: HashSet<Vec<u8>> = found
            .iter()
            .filter_map(|d| d.get("_id"))
            .map(|id| key_of(ns, id))
            .collect();
        for i in docs {
            if !found.contains(&key_of(ns, &lane[i].id)) {
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
