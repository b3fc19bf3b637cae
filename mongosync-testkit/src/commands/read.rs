//! Read commands: `find`, `getMore`, `killCursors`, `count`, `distinct`, `aggregate`.
//! Results are computed when the cursor opens and handed out in batches of raw BSON.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use bson::{Bson, Document, RawDocumentBuf, doc};

use super::support::{self, CollHandle, Target};
use super::{Ctx, Reply};
use crate::cursor::{Batch, Cursor, Position, Scan, cursor_reply, next_batch};
use crate::error::{CommandError, Result, codes};
use crate::query::compare::OrdBson;
use crate::query::matcher::Matcher;
use crate::query::pipeline::{Pipeline, PipelineEnv, SORT_MEMORY_LIMIT, sort_memory_error};
use crate::query::projection::Projection;
use crate::query::sort::{Direction, SortSpec};
use crate::storage::CollectionData;
use crate::storage::collection::decode;

pub(super) const FIND_FIELDS: &[&str] = &[
    "filter",
    "projection",
    "sort",
    "skip",
    "limit",
    "batchSize",
    "singleBatch",
    "hint",
    "min",
    "max",
    "returnKey",
    "showRecordId",
    "tailable",
    "awaitData",
    "noCursorTimeout",
    "allowPartialResults",
    "collation",
    "let",
    "allowDiskUse",
    "oplogReplay",
    "term",
    "readOnce",
    "collectionUUID",
    "ntoreturn",
    "$recordId",
];
pub(super) const AGG_FIELDS: &[&str] = &[
    "pipeline",
    "cursor",
    "explain",
    "allowDiskUse",
    "bypassDocumentValidation",
    "collation",
    "hint",
    "let",
    "fromMongos",
    "needsMerge",
    "collectionUUID",
    "isMapReduceCommand",
];

/// The default first batch of `find` and `aggregate`.
const DEFAULT_BATCH: usize = 101;

fn batch_size(ctx: &Ctx<'_>, v: Option<&Bson>, field: &str) -> Result<Option<usize>> {
    match v {
        None => Ok(None),
        Some(v) if crate::util::is_number(v) => {
            let n = crate::util::as_f64(v).unwrap_or(0.0);
            if n < 0.0 {
                return Err(CommandError::new(
                    51024,
                    format!("BSON field '{field}' value must be >= 0, actual value '{n}'"),
                ));
            }
            Ok(Some(n as usize))
        }
        Some(other) => Err(CommandError::wrong_field_type(
            &ctx.name,
            field,
            crate::util::type_name(other),
            &["long", "int", "decimal", "double"],
        )),
    }
}

/// How a cursor over a materialised result behaves.
#[derive(Debug, Clone, Copy, Default)]
struct CursorOptions {
    /// `singleBatch`: closed after the first batch.
    single_batch: bool,
    /// `noCursorTimeout`: never reaped.
    no_timeout: bool,
    /// See [`Cursor::eof_on_read`].
    eof_on_read: bool,
}

/// Opens a cursor over `docs` and returns the first batch. `collection`: the collection a
/// find's result came from (a drop or rename kills the cursor).
fn open_cursor(
    ctx: &Ctx<'_>,
    ns: String,
    docs: Vec<RawDocumentBuf>,
    first_batch: Option<usize>,
    options: CursorOptions,
    collection: Option<Arc<crate::storage::Collection>>,
) -> Reply {
    ctx.server
        .materialised
        .fetch_add(docs.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut pending: VecDeque<RawDocumentBuf> = docs.into();
    let limit = Some(first_batch.unwrap_or(DEFAULT_BATCH));
    let batch = next_batch(
        &mut pending,
        limit,
        Batch::new(ctx.server.reply_buffer(), true),
    );
    let open = crate::cursor::stays_open(&pending, options.eof_on_read, limit, batch.len());
    let id = if !open || options.single_batch {
        0
    } else {
        ctx.server.cursors.register(Cursor {
            ns: ns.clone(),
            pending,
            lsid: ctx.body.get("lsid").cloned(),
            origin: ctx.name.clone(),
            last_used: Instant::now(),
            no_timeout: options.no_timeout,
            stream: None,
            scan: None,
            eof_on_read: options.eof_on_read,
            collection,
        })
    };
    Reply::Raw(cursor_reply(id, &ns, batch))
}

pub fn find(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(FIND_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let ns = ctx.ns(&coll);
    let vars = ctx.let_vars()?;
    let filter = ctx.opt_doc("filter")?.cloned().unwrap_or_default();
    let projection = ctx.opt_doc("projection")?.cloned().unwrap_or_default();
    let sort_doc = ctx.opt_doc("sort")?.cloned().unwrap_or_default();
    let skip = ctx.opt_i64("skip")?.unwrap_or(0);
    if skip < 0 {
        return Err(CommandError::new(
            51024,
            format!("BSON field 'skip' value must be >= 0, actual value '{skip}'"),
        ));
    }
    let mut limit = ctx.opt_i64("limit")?.unwrap_or(0);
    let mut single_batch = ctx.opt_bool("singleBatch")?.unwrap_or(false);
    if limit < 0 {
        // A negative limit is the legacy "single batch of |limit|".
        limit = -limit;
        single_batch = true;
    }
    let limit = if limit == 0 {
        None
    } else {
        Some(limit as usize)
    };
    let batch = batch_size(ctx, ctx.body.get("batchSize"), "batchSize")?;
    let no_timeout = ctx.opt_bool("noCursorTimeout")?.unwrap_or(false);
    if super::local::is_oplog(&ctx.db, &coll) {
        let args = super::local::OplogFind {
            filter: &filter,
            projection: &projection,
            sort: &sort_doc,
            skip: skip as usize,
            limit,
            vars: &vars,
        };
        let docs = super::local::find(ctx, &args)?;
        let options = CursorOptions {
            single_batch,
            no_timeout,
            ..Default::default()
        };
        return Ok(open_cursor(ctx, ns, docs, batch, options, None));
    }
    let tailable = ctx.opt_bool("tailable")?.unwrap_or(false);
    let await_data = ctx.opt_bool("awaitData")?.unwrap_or(false);
    if await_data && !tailable {
        return Err(CommandError::failed_to_parse(
            "Cannot set 'awaitData' without also setting 'tailable'",
        ));
    }
    if tailable
        && let Some(c) = ctx.server.catalog.collection(&ctx.db, &coll)
        && !c.data.read().is_capped()
    {
        return Err(CommandError::bad_value(format!(
            "error processing query: ns={ns} tailable cursor requested on non capped collection"
        )));
    }
    let collation = support::collation_of(&ctx.body)?;
    let matcher = Matcher::with_collation(&filter, &vars, collation.clone())?;
    let sort = if sort_doc.is_empty() {
        None
    } else {
        Some(SortSpec::with_collation(&sort_doc, collation)?)
    };
    let proj = if projection.is_empty() {
        None
    } else {
        Some(Projection::new(&projection, &vars)?)
    };
    // Metadata the projection or sort reads must come from the filter, as the server's
    // planner checks before it reads a document (40218).
    let available = crate::query::pipeline::Available {
        text: matcher.has_text(),
        geo_near: matcher.near().is_some(),
    };
    for spec in [&projection, &sort_doc] {
        crate::query::pipeline::reads_available(&Bson::Document(spec.clone()), available)?;
    }
    let min = ctx.opt_doc("min")?.cloned();
    let max = ctx.opt_doc("max")?.cloned();
    let hint = ctx.body.get("hint").cloned();
    if (min.is_some() || max.is_some()) && hint.is_none() {
        return Err(CommandError::new(
            51173,
            "When using min()/max() a hint of which index to use must be specified",
        ));
    }
    // The live collection a blocking plan's result comes from.
    let mut source = None;
    // Whether the plan finds its end only by reading past it (see `Cursor::eof_on_read`).
    let mut eof_on_read = false;
    let docs = match support::resolve(ctx, &coll)? {
        Target::Missing => {
            support::check_hint(None, hint.as_ref())?;
            Vec::new()
        }
        Target::View { base, mut pipeline } => {
            // A find on a view is an aggregation over the view's pipeline.
            if !filter.is_empty() {
                pipeline.push(doc! {"$match": filter.clone()});
            }
            if sort.is_some() {
                pipeline.push(doc! {"$sort": sort_doc.clone()});
            }
            if skip > 0 {
                pipeline.push(doc! {"$skip": skip});
            }
            if let Some(l) = limit {
                pipeline.push(doc! {"$limit": l as i64});
            }
            if !projection.is_empty() {
                pipeline.push(doc! {"$project": projection.clone()});
            }
            eof_on_read = true;
            run_pipeline(ctx, &base, &pipeline, &vars)?
                .iter()
                .map(support::encode_result)
                .collect::<Result<Vec<_>>>()?
        }
        Target::Collection(c) => {
            let data = c.read();
            support::check_hint(Some(&data), hint.as_ref())?;
            let bounds_key = match (&min, &max, &hint) {
                (None, None, _) => None,
                (_, _, Some(Bson::String(name))) if name == "_id_" => Some(doc! {"_id": 1}),
                (_, _, Some(Bson::String(name))) => data
                    .indexes
                    .iter()
                    .find(|i| i.name() == name)
                    .map(|i| i.key().clone()),
                (_, _, Some(Bson::Document(k))) => Some(k.clone()),
                _ => None,
            };
            // A plan that needs no blocking stage reads lazily between `getMore`s.
            if let CollHandle::Live(live) = &c
                && let Some(position) = scan_position(
                    &data,
                    &matcher,
                    sort.as_ref(),
                    hint.as_ref(),
                    &bounds_key,
                    (&min, &max),
                )
            {
                let mut scan = Scan {
                    collection: Arc::clone(live),
                    ns: ns.clone(),
                    position,
                    match_all: filter.is_empty(),
                    id_only: support::filter_only_on_id(&filter),
                    matcher,
                    projection: proj,
                    skip: skip as usize,
                    limit,
                    tailable,
                    await_data,
                    last_seen: None,
                    stages: None,
                    carry: None,
                };
                let (batch_docs, open) = scan.next_batch(
                    &data,
                    Some(batch.unwrap_or(DEFAULT_BATCH)),
                    Batch::new(ctx.server.reply_buffer(), true),
                )?;
                drop(data);
                let id = if open && !single_batch {
                    ctx.server.cursors.register(Cursor {
                        ns: ns.clone(),
                        pending: VecDeque::new(),
                        lsid: ctx.body.get("lsid").cloned(),
                        origin: ctx.name.clone(),
                        last_used: Instant::now(),
                        no_timeout,
                        stream: None,
                        scan: Some(Box::new(scan)),
                        eof_on_read: false,
                        collection: None,
                    })
                } else {
                    0
                };
                return Ok(Reply::Raw(cursor_reply(id, &ns, batch_docs)));
            }
            if let CollHandle::Live(live) = &c {
                source = Some(Arc::clone(live));
            }
            // A blocking SORT stage learns its end at its next read (SortExecutor); a LIMIT
            // stage knows it at once.
            eof_on_read = sort.is_some() && limit.is_none();
            let selected = support::select(
                &data,
                &filter,
                &matcher,
                sort.as_ref(),
                skip as usize,
                if bounds_key.is_some() { None } else { limit },
            )?;
            // A blocking sort (no index gives the order, no limit makes it top-k) holds every
            // document: over the limit it needs allowDiskUse (true by default since 6.0).
            if sort.is_some() && limit.is_none() && ctx.opt_bool("allowDiskUse")? == Some(false) {
                let held: usize = selected
                    .iter()
                    .map(|(rid, _)| data.get(*rid).map_or(0, |r| r.as_bytes().len()))
                    .sum();
                if held > SORT_MEMORY_LIMIT {
                    return Err(sort_memory_error("Executor error during find command"));
                }
            }
            let mut out = Vec::with_capacity(selected.len());
            for (rid, decoded) in selected {
                if let Some(key) = &bounds_key {
                    let d = match &decoded {
                        Some(d) => d.clone(),
                        None => decode(data.get(rid).expect("selected"))?,
                    };
                    if !within_bounds(&d, key, min.as_ref(), max.as_ref()) {
                        continue;
                    }
                    if limit.is_some_and(|l| out.len() >= l) {
                        break;
                    }
                }
                match (&proj, decoded) {
                    (None, _) => out.push(data.get(rid).expect("selected").clone()),
                    (Some(p), Some(d)) => {
                        out.push(support::encode_result(&p.apply(&d, Some(&matcher))?)?)
                    }
                    (Some(p), None) => {
                        let d = decode(data.get(rid).expect("selected"))?;
                        out.push(support::encode_result(&p.apply(&d, Some(&matcher))?)?);
                    }
                }
            }
            out
        }
    };
    let options = CursorOptions {
        single_batch,
        no_timeout,
        eof_on_read,
    };
    Ok(open_cursor(ctx, ns, docs, batch, options, source))
}

/// Where a lazy scan starts, for the plans that need no blocking stage: a collection scan in
/// natural order (either way), or an `_id` index scan (in `_id` order, within the filter's
/// `_id` range or a hinted `min`/`max`). `None`: the result is materialised.
fn scan_position(
    data: &CollectionData,
    matcher: &Matcher,
    sort: Option<&SortSpec>,
    hint: Option<&Bson>,
    bounds_key: &Option<Document>,
    (min, max): (&Option<Document>, &Option<Document>),
) -> Option<Position> {
    // `$near` sorts by distance and `$text` needs its index and scores: both go through the
    // materialising plan (`support::select`).
    if matcher.near().is_some() || matcher.has_text() {
        return None;
    }
    // Only the `_id` index and the collection itself can be walked lazily.
    let id_hint = match hint {
        None => false,
        Some(Bson::String(name)) if name == "_id_" => true,
        Some(Bson::Document(k)) if *k == doc! {"_id": 1} => true,
        Some(Bson::Document(k)) if k.keys().eq(["$natural"]) => false,
        Some(_) => return None,
    };
    let by_id = match sort.map(|s| (s.keys(), s.collation().is_some())) {
        None => None,
        Some(([], _)) => None,
        Some(([(field, dir)], false)) if field == "_id" => {
            Some(matches!(dir, Direction::Descending))
        }
        Some(_) => return None,
    };
    let natural_reverse = sort.and_then(|s| s.natural()).is_some_and(|d| d < 0);
    if !data.has_id_index() && (by_id.is_some() || bounds_key.is_some()) {
        return None;
    }
    // A single `_id` is one lookup: nothing to stream.
    if matcher.id_equality().is_some() && data.has_id_index() {
        return None;
    }
    if let Some(key) = bounds_key {
        // `min`/`max` on the `_id` index only, walked forward.
        if *key != doc! {"_id": 1} || by_id == Some(true) || natural_reverse {
            return None;
        }
        let bound = |d: &Option<Document>| d.as_ref().and_then(|d| d.get("_id")).cloned();
        return Some(Position::Id {
            lower: bound(min).map_or(Bound::Unbounded, |v| Bound::Included(OrdBson(v))),
            upper: bound(max).map_or(Bound::Unbounded, |v| Bound::Excluded(OrdBson(v))),
            reverse: false,
        });
    }
    let range = matcher.id_range().filter(|_| data.has_id_index());
    match (by_id, range) {
        (Some(reverse), range) => {
            let (lower, upper) = range.unwrap_or((Bound::Unbounded, Bound::Unbounded));
            Some(Position::Id {
                lower: lower.map(OrdBson),
                upper: upper.map(OrdBson),
                reverse,
            })
        }
        // An `_id` range without a sort is an `_id` index scan, as the planner picks.
        (None, Some((lower, upper))) if sort.is_none() => Some(Position::Id {
            lower: lower.map(OrdBson),
            upper: upper.map(OrdBson),
            reverse: false,
        }),
        (None, None) if id_hint && sort.is_none() => Some(Position::Id {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            reverse: false,
        }),
        _ => Some(Position::Natural {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            reverse: natural_reverse,
        }),
    }
}

/// `min` (inclusive) and `max` (exclusive) on the hinted index's key.
fn within_bounds(
    doc: &Document,
    key: &Document,
    min: Option<&Document>,
    max: Option<&Document>,
) -> bool {
    use crate::query::compare::compare;
    let values: Vec<Bson> = key
        .keys()
        .map(|f| {
            crate::query::path::get(doc, f)
                .cloned()
                .unwrap_or(Bson::Null)
        })
        .collect();
    let cmp_to = |bound: &Document| {
        for ((v, (_, b)), (_, dir)) in values.iter().zip(bound.iter()).zip(key.iter()) {
            let mut o = compare(v, b);
            if crate::util::as_f64(dir).is_some_and(|d| d < 0.0) {
                o = o.reverse();
            }
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    };
    min.is_none_or(|m| cmp_to(m).is_ge()) && max.is_none_or(|m| cmp_to(m).is_lt())
}

pub async fn get_more(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[
        "collection",
        "batchSize",
        "term",
        "lastKnownCommittedOpTime",
        "includeQueryStatsMetrics",
    ])?;
    let id = match ctx.arg() {
        Bson::Int64(i) => *i,
        other => {
            return Err(CommandError::type_mismatch(format!(
                "Field 'getMore' must be of type long in: {}",
                crate::util::shell_repr(&Bson::Document(doc! {"getMore": other.clone()}))
            )));
        }
    };
    let coll = match ctx.body.get("collection") {
        Some(Bson::String(s)) => s.clone(),
        None => return Err(CommandError::missing_field("getMore", "collection")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "getMore",
                "collection",
                crate::util::type_name(other),
                &["string"],
            ));
        }
    };
    let batch = batch_size(ctx, ctx.body.get("batchSize"), "batchSize")?;
    let Some(mut cursor) = ctx.server.cursors.checkout(id) else {
        return Err(CommandError::new(
            codes::CURSOR_NOT_FOUND,
            format!("cursor id {id} not found"),
        ));
    };
    let ns = ctx.ns(&coll);
    if cursor.ns != ns
        && !(cursor.ns.starts_with(&format!("{}.$cmd", ctx.db)) && coll.starts_with("$cmd"))
    {
        let owner = cursor.ns.clone();
        ctx.server.cursors.restore(id, cursor);
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!(
                "Requested getMore on namespace '{ns}', but cursor belongs to a different namespace {owner}"
            ),
        ));
    }
    // Fails after the cursor is checked out, so its origin is known for the labels.
    if let Some((mut e, forced)) = ctx.server.failpoints.get_more_after_checkout() {
        let is_stream = cursor.stream.is_some();
        ctx.server.cursors.restore(id, cursor);
        match forced {
            Some(labels) => {
                e.labels = labels;
                e.labels_forced = true;
            }
            None if is_stream && super::resumable_change_stream_error(e.code) => {
                e.labels.push("ResumableChangeStreamError".into());
            }
            None => {}
        }
        return Err(e);
    }
    if cursor.stream.is_some() {
        return crate::changestream::stream::get_more(ctx, id, cursor, batch).await;
    }
    let await_ms = ctx.body.get("maxTimeMS").and_then(crate::util::as_f64);
    let awaits = cursor.scan.as_ref().is_some_and(|s| s.await_data);
    if await_ms.is_some() && !awaits {
        ctx.server.cursors.restore(id, cursor);
        return Err(CommandError::bad_value(
            "cannot set maxTimeMS on getMore command for a non-awaitData cursor",
        ));
    }
    let (docs, remaining) = match &mut cursor.scan {
        // A failed restore kills the cursor (it is not put back).
        Some(scan) => {
            // An awaitData getMore that finds nothing waits for an insert, up to its maxTimeMS
            // (one second by default, as on the server), and then answers an empty batch
            // without closing the cursor.
            let deadline = tokio::time::Instant::now()
                + std::time::Duration::from_millis(await_ms.unwrap_or(1000.0) as u64);
            let collection = Arc::clone(&scan.collection);
            let notify = collection.data.read().insert_notify();
            let mut out = Batch::new(ctx.server.reply_buffer(), false);
            loop {
                scan.restore(&ctx.server.catalog)?;
                // Registered before reading, so an insert right after the read still wakes it.
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let (docs, open) = {
                    let data = collection.data.read();
                    scan.next_batch(&data, batch.filter(|b| *b > 0), out)?
                };
                if !docs.is_empty() || !open || !scan.await_data {
                    break (docs, open);
                }
                // Empty: the next read fills it.
                out = docs;
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break (out, open);
                }
            }
        }
        None => {
            // A find's blocking plan restores its collection too (a failure kills the cursor).
            if let Some(collection) = &cursor.collection {
                crate::cursor::restore_collection(collection, &cursor.ns, &ctx.server.catalog)?;
            }
            let limit = batch.filter(|b| *b > 0);
            let docs = next_batch(
                &mut cursor.pending,
                limit,
                Batch::new(ctx.server.reply_buffer(), false),
            );
            let open =
                crate::cursor::stays_open(&cursor.pending, cursor.eof_on_read, limit, docs.len());
            (docs, open)
        }
    };
    let reply_ns = cursor.ns.clone();
    let reply_id = if remaining {
        ctx.server.cursors.restore(id, cursor);
        id
    } else {
        0
    };
    Ok(Reply::Raw(cursor_reply(reply_id, &reply_ns, docs)))
}

pub fn kill_cursors(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["cursors"])?;
    // A database-level aggregate's cursor lives under `<db>.$cmd.aggregate` (listCollections'
    // under `<db>.$cmd.listCollections`); drivers close them with `killCursors: "$cmd.…"`,
    // which is no collection name.
    let coll = match ctx.arg() {
        Bson::String(s) if s.starts_with("$cmd.") => s.clone(),
        _ => ctx.collection_arg()?,
    };
    // `kill_cursors.idl`: `cursors` is an `array<cursorId>` (longs), all parsed before any
    // cursor is killed.
    let ids: Vec<i64> = match ctx.body.get("cursors") {
        Some(Bson::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Bson::Int64(id) => Ok(*id),
                other => Err(CommandError::wrong_field_type(
                    "killCursors.cursors",
                    &i.to_string(),
                    crate::util::type_name(other),
                    &["long"],
                )),
            })
            .collect::<Result<_>>()?,
        None => return Err(CommandError::missing_field("killCursors", "cursors")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "killCursors",
                "cursors",
                crate::util::type_name(other),
                &["array"],
            ));
        }
    };
    let ns = ctx.ns(&coll);
    let mut killed = Vec::new();
    let mut not_found = Vec::new();
    for id in ids {
        match ctx.server.cursors.ns_of(id) {
            Some(owner) if owner == ns || owner.starts_with(&format!("{}.$cmd", ctx.db)) => {
                ctx.server.cursors.kill(id);
                killed.push(Bson::Int64(id));
            }
            _ => not_found.push(Bson::Int64(id)),
        }
    }
    Ok(Reply::Doc(doc! {
        "cursorsKilled": killed,
        "cursorsNotFound": not_found,
        "cursorsAlive": [],
        "cursorsUnknown": [],
    }))
}

/// `count`'s own fields (`count_command.idl`).
pub(super) const COUNT_FIELDS: &[&str] = &[
    "query",
    "limit",
    "skip",
    "hint",
    "collation",
    "fields",
    "collectionUUID",
];

/// `distinct`'s own fields (`distinct_command.idl`).
pub(super) const DISTINCT_FIELDS: &[&str] =
    &["key", "query", "collation", "hint", "collectionUUID"];

pub fn count(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(COUNT_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let filter = ctx.opt_doc("query")?.cloned().unwrap_or_default();
    let skip = ctx.opt_i64("skip")?.unwrap_or(0);
    if skip < 0 {
        return Err(CommandError::new(
            51024,
            format!("BSON field 'skip' value must be >= 0, actual value '{skip}'"),
        ));
    }
    let limit = ctx.opt_i64("limit")?.unwrap_or(0).unsigned_abs() as usize;
    let limit = if limit == 0 { None } else { Some(limit) };
    let matcher =
        Matcher::with_collation(&filter, &Document::new(), support::collation_of(&ctx.body)?)?;
    let hint = ctx.body.get("hint").cloned();
    if super::local::is_oplog(&ctx.db, &coll) {
        let n = super::local::count(ctx, &filter, skip as usize, limit)?;
        return Ok(Reply::Doc(doc! {"n": n as i32}));
    }
    let n = match support::resolve(ctx, &coll)? {
        Target::Missing => 0,
        Target::View { base, mut pipeline } => {
            pipeline.push(doc! {"$match": filter});
            let total = run_pipeline(ctx, &base, &pipeline, &Document::new())?.len();
            let after_skip = total.saturating_sub(skip as usize);
            limit.map_or(after_skip, |l| after_skip.min(l))
        }
        Target::Collection(c) => {
            let data = c.read();
            support::check_hint(Some(&data), hint.as_ref())?;
            if filter.is_empty() {
                let after_skip = data.count().saturating_sub(skip as usize);
                limit.map_or(after_skip, |l| after_skip.min(l))
            } else {
                support::select(&data, &filter, &matcher, None, skip as usize, limit)?.len()
            }
        }
    };
    Ok(Reply::Doc(doc! {"n": n as i32}))
}

pub fn distinct(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(DISTINCT_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let key = match ctx.body.get("key") {
        Some(Bson::String(k)) => k.clone(),
        None => return Err(CommandError::missing_field("distinct", "key")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "distinct",
                "key",
                crate::util::type_name(other),
                &["string"],
            ));
        }
    };
    let filter = ctx.opt_doc("query")?.cloned().unwrap_or_default();
    let collation = support::collation_of(&ctx.body)?;
    let matcher = Matcher::with_collation(&filter, &Document::new(), collation.clone())?;
    let hint = ctx.body.get("hint").cloned();
    let docs: Vec<Document> = match support::resolve(ctx, &coll)? {
        Target::Missing => Vec::new(),
        Target::View { base, mut pipeline } => {
            pipeline.push(doc! {"$match": filter});
            run_pipeline(ctx, &base, &pipeline, &Document::new())?
        }
        Target::Collection(c) => {
            let data = c.read();
            support::check_hint(Some(&data), hint.as_ref())?;
            support::select(&data, &filter, &matcher, None, 0, None)?
                .into_iter()
                .map(|(rid, d)| match d {
                    Some(d) => Ok(d),
                    None => decode(data.get(rid).expect("selected")),
                })
                .collect::<Result<_>>()?
        }
    };
    let mut values: Vec<Bson> = Vec::new();
    // As distinct.cpp: the values' approximate size (their elements as stored) stays under
    // 16 MiB less 4 KiB.
    const MAX_RESPONSE_SIZE: usize = crate::wire::MAX_BSON_SIZE - 4096;
    let leaf = key.rsplit('.').next().unwrap_or(&key).to_string();
    let mut approx_bytes = 0usize;
    for d in &docs {
        for v in crate::query::path::lookup_all(d, &key) {
            let items: Vec<&Bson> = match v {
                Bson::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for item in items {
                if !values.iter().any(|x| {
                    crate::query::collation::values_equal_with(x, item, collation.as_ref())
                }) {
                    approx_bytes += RawDocumentBuf::try_from(&doc! {leaf.as_str(): item.clone()})
                        .map_or(0, |b| b.as_bytes().len() - 5);
                    if approx_bytes >= MAX_RESPONSE_SIZE {
                        return Err(CommandError::new(
                            17217,
                            format!(
                                "Executor error during distinct command on namespace: {} :: caused by :: distinct too big, 16mb cap",
                                ctx.ns(&coll)
                            ),
                        ));
                    }
                    values.push(item.clone());
                }
            }
        }
    }
    values.sort_by(crate::query::compare::compare);
    Ok(Reply::Doc(doc! {"values": values}))
}

/// Gives pipelines access to the catalog.
pub struct CatalogEnv<'a, 'b> {
    ctx: &'a Ctx<'b>,
    coll: Option<String>,
}

impl PipelineEnv for CatalogEnv<'_, '_> {
    fn collection_documents(&self, db: &str, coll: &str) -> Result<Vec<Document>> {
        if super::local::is_oplog(db, coll) {
            return Ok(super::local::documents(self.ctx));
        }
        // Inside a transaction, its own copy of a collection of this database.
        if db == self.ctx.db
            && let Some(c) = self.ctx.collection(coll)
        {
            let data = c.read();
            return data.iter().map(|(_, raw)| decode(raw)).collect();
        }
        match self.ctx.server.catalog.lookup(db, coll) {
            None => Ok(Vec::new()),
            Some(crate::storage::catalog::Namespace::Collection(c)) => {
                let data = c.data.read();
                data.iter().map(|(_, raw)| decode(raw)).collect()
            }
            Some(crate::storage::catalog::Namespace::View(_)) => {
                if db != self.ctx.db {
                    return Err(CommandError::new(
                        codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                        "cross-database view reads are not supported",
                    ));
                }
                match support::resolve(self.ctx, coll)? {
                    Target::View { base, pipeline } => {
                        run_pipeline(self.ctx, &base, &pipeline, &Document::new())
                    }
                    _ => Ok(Vec::new()),
                }
            }
        }
    }

    fn index_specs(&self) -> Result<Vec<Document>> {
        let Some(c) = self.coll.as_deref().and_then(|c| self.ctx.collection(c)) else {
            return Ok(Vec::new());
        };
        let data = c.read();
        Ok(data.indexes.iter().map(|i| i.spec.clone()).collect())
    }

    fn index_specs_of(&self, db: &str, coll: &str) -> Result<Vec<Document>> {
        // Inside a transaction, its own copy of a collection of this database.
        if db == self.ctx.db
            && let Some(c) = self.ctx.collection(coll)
        {
            return Ok(c.read().indexes.iter().map(|i| i.spec.clone()).collect());
        }
        Ok(match self.ctx.server.catalog.lookup(db, coll) {
            Some(crate::storage::catalog::Namespace::Collection(c)) => c
                .data
                .read()
                .indexes
                .iter()
                .map(|i| i.spec.clone())
                .collect(),
            _ => Vec::new(),
        })
    }

    fn coll_stats(&self, options: &Document) -> Result<Document> {
        let coll = self.coll.clone().unwrap_or_default();
        let mut out = doc! {"ns": self.ctx.ns(&coll), "host": self.ctx.server.host.clone(), "localTime": bson::DateTime::now()};
        let stats = super::ddl::storage_stats(self.ctx, &coll)?;
        if options.contains_key("storageStats") {
            out.insert("storageStats", stats.clone());
        }
        if options.contains_key("count") {
            out.insert(
                "count",
                stats.get("count").cloned().unwrap_or(Bson::Int64(0)),
            );
        }
        if options.contains_key("latencyStats") {
            out.insert("latencyStats", doc! {"reads": {"latency": 0i64, "ops": 0i64}, "writes": {"latency": 0i64, "ops": 0i64}, "commands": {"latency": 0i64, "ops": 0i64}, "transactions": {"latency": 0i64, "ops": 0i64}});
        }
        Ok(out)
    }

    fn local_sessions(&self, _spec: &Document) -> Result<Vec<Document>> {
        Ok(self.ctx.server.sessions.list())
    }

    fn write_out(&self, db: &str, coll: &str, docs: Vec<Document>) -> Result<()> {
        let catalog = &self.ctx.server.catalog;
        let options = catalog
            .collection(db, coll)
            .map(|c| c.data.read().options.clone())
            .unwrap_or_default();
        let target = crate::storage::Collection::new(format!("{db}.{coll}"), options, None);
        {
            let mut data = target.data.write();
            for d in docs {
                let raw = support::encode(&d)?;
                let (raw, id) = support::prepare_raw_insert(&raw)?;
                data.insert(raw, id)?;
            }
        }
        let (c, _) = catalog.collection_for_write(db, coll)?;
        let new = target.data.into_inner();
        let mut data = c.data.write();
        let indexes = std::mem::take(&mut data.indexes);
        data.truncate();
        data.indexes = indexes;
        for (_, raw) in new.iter() {
            let id = crate::storage::collection::raw_id(raw).unwrap_or(Bson::Null);
            data.insert(raw.clone(), id)?;
        }
        Ok(())
    }

    fn merge_into(&self, db: &str, coll: &str, docs: Vec<Document>, spec: &Document) -> Result<()> {
        let on: Vec<String> = match spec.get("on") {
            Some(Bson::String(s)) => vec![s.clone()],
            Some(Bson::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec!["_id".to_string()],
        };
        let when_matched = spec.get_str("whenMatched").unwrap_or("merge").to_string();
        let when_not_matched = spec
            .get_str("whenNotMatched")
            .unwrap_or("insert")
            .to_string();
        let (c, _) = self.ctx.server.catalog.collection_for_write(db, coll)?;
        let mut data = c.data.write();
        for d in docs {
            let mut filter = Document::new();
            for f in &on {
                filter.insert(
                    f.clone(),
                    crate::query::path::get(&d, f)
                        .cloned()
                        .unwrap_or(Bson::Null),
                );
            }
            let matcher = Matcher::new(&filter, &Document::new())?;
            let existing = support::select(&data, &filter, &matcher, None, 0, Some(1))?
                .into_iter()
                .next();
            match existing {
                Some((rid, old)) => {
                    let old = match old {
                        Some(o) => o,
                        None => decode(data.get(rid).expect("selected"))?,
                    };
                    let new = match when_matched.as_str() {
                        "replace" => {
                            let mut n = d.clone();
                            n.insert("_id", old.get("_id").cloned().unwrap_or(Bson::Null));
                            n
                        }
                        "keepExisting" => continue,
                        "fail" => {
                            // As on a real server: the insert of the matching document fails
                            // on the `_id` index.
                            let id = d.get("_id").cloned().unwrap_or(Bson::Null);
                            return Err(crate::storage::index::duplicate_key_error(
                                &data.ns,
                                "_id_",
                                &doc! {"_id": 1},
                                std::iter::once(&id),
                            ));
                        }
                        _ => {
                            let mut n = old.clone();
                            for (k, v) in d {
                                n.insert(k, v);
                            }
                            n
                        }
                    };
                    data.replace(rid, support::encode(&new)?, when_matched == "replace")?;
                }
                None => match when_not_matched.as_str() {
                    "discard" => {}
                    "fail" => {
                        return Err(CommandError::new(
                            13113,
                            "$merge could not find a matching document in the target collection",
                        ));
                    }
                    _ => {
                        let (raw, id) = support::prepare_raw_insert(&support::encode(&d)?)?;
                        data.insert(raw, id)?;
                    }
                },
            }
        }
        Ok(())
    }
}

/// Runs `pipeline` over the documents of `db.coll` (a collection, a view or nothing).
fn run_pipeline(
    ctx: &Ctx<'_>,
    coll: &str,
    pipeline: &[Document],
    vars: &Document,
) -> Result<Vec<Document>> {
    let parsed = Pipeline::parse(pipeline, vars)?
        .with_collation(support::collation_of(&ctx.body)?)?
        .allow_disk_use(ctx.opt_bool("allowDiskUse")?.unwrap_or(true));
    let env = CatalogEnv {
        ctx,
        coll: Some(coll.to_string()),
    };
    let input = if parsed.reads_input() {
        env.collection_documents(&ctx.db, coll)?
    } else {
        Vec::new()
    };
    parsed.run(input, &ctx.db, &env)
}

pub fn aggregate(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(AGG_FIELDS)?;
    let pipeline: Vec<Document> = match ctx.body.get("pipeline") {
        Some(Bson::Array(stages)) => stages
            .iter()
            .map(|s| match s {
                Bson::Document(d) => Ok(d.clone()),
                other => Err(CommandError::type_mismatch(format!(
                    "Each element of the 'pipeline' array must be an object, found {}",
                    crate::util::type_name(other)
                ))),
            })
            .collect::<Result<_>>()?,
        None => return Err(CommandError::missing_field("aggregate", "pipeline")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "aggregate",
                "pipeline",
                crate::util::type_name(other),
                &["array"],
            ));
        }
    };
    let explain = ctx.opt_bool("explain")?.unwrap_or(false);
    if explain {
        // The aggregate's own explain form answers a queryPlanner explain, not a cursor.
        return super::explain::explain_aggregate(ctx);
    }
    let cursor_opts = ctx.opt_doc("cursor")?.cloned();
    if cursor_opts.is_none() && !explain {
        return Err(CommandError::failed_to_parse(
            "The 'cursor' option is required, except for aggregate with the explain argument",
        ));
    }
    let batch = batch_size(
        ctx,
        cursor_opts.as_ref().and_then(|c| c.get("batchSize")),
        "batchSize",
    )?;
    let vars = ctx.let_vars()?;
    let (coll, ns) = match ctx.arg() {
        Bson::String(_) => {
            let c = ctx.collection_arg()?;
            (Some(c.clone()), ctx.ns(&c))
        }
        v if crate::util::as_f64(v) == Some(1.0) => (None, format!("{}.$cmd.aggregate", ctx.db)),
        _ => {
            return Err(CommandError::failed_to_parse(
                "Invalid command format: the 'aggregate' field must specify a collection name or 1",
            ));
        }
    };
    let hint = ctx.body.get("hint").cloned();
    if pipeline
        .first()
        .is_some_and(|s| s.contains_key("$changeStream"))
    {
        return crate::changestream::stream::open(ctx, coll.as_deref(), &pipeline, batch);
    }
    let docs = match &coll {
        None => {
            let parsed = Pipeline::parse(&pipeline, &vars)?
                .with_collation(support::collation_of(&ctx.body)?)?;
            if parsed.reads_input() {
                return Err(CommandError::invalid_namespace(format!(
                    "{{aggregate: 1}} is not valid for '{}'; a collection is required.",
                    pipeline
                        .first()
                        .and_then(|s| s.keys().next().cloned())
                        .unwrap_or_default()
                )));
            }
            let env = CatalogEnv { ctx, coll: None };
            parsed.run(Vec::new(), &ctx.db, &env)?
        }
        Some(c) => match support::resolve(ctx, c)? {
            Target::Missing => {
                support::check_hint(None, hint.as_ref())?;
                run_pipeline(ctx, c, &pipeline, &vars)?
            }
            Target::Collection(col) => {
                support::check_hint(Some(&col.read()), hint.as_ref())?;
                // A pipeline of per-document stages reads its collection lazily.
                if let CollHandle::Live(live) = &col
                    && !explain
                    && let Some(stages) = Pipeline::parse(&pipeline, &vars)?
                        .with_collation(support::collation_of(&ctx.body)?)?
                        .streaming()
                {
                    return stream_aggregate(ctx, live, ns, stages, batch);
                }
                run_pipeline(ctx, c, &pipeline, &vars)?
            }
            Target::View {
                base,
                pipeline: mut view_pipeline,
            } => {
                view_pipeline.extend(pipeline.iter().cloned());
                run_pipeline(ctx, &base, &view_pipeline, &vars)?
            }
        },
    };
    let writes = pipeline
        .last()
        .is_some_and(|s| s.contains_key("$out") || s.contains_key("$merge"));
    let docs = if writes { Vec::new() } else { docs };
    let raws = docs
        .iter()
        .map(support::encode_result)
        .collect::<Result<Vec<_>>>()?;
    // A pipeline finds its end only by reading past it, as the server's aggregate cursor.
    let options = CursorOptions {
        eof_on_read: true,
        ..Default::default()
    };
    Ok(open_cursor(ctx, ns, raws, batch, options, None))
}

/// Opens an aggregate cursor that runs a streaming pipeline over a natural-order scan of
/// `live`, batch by batch.
fn stream_aggregate(
    ctx: &Ctx<'_>,
    live: &Arc<crate::storage::Collection>,
    ns: String,
    stages: crate::query::pipeline::Streaming,
    batch: Option<usize>,
) -> Result<Reply> {
    let mut scan = Scan {
        collection: Arc::clone(live),
        ns: ns.clone(),
        position: Position::Natural {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            reverse: false,
        },
        matcher: Matcher::new(&Document::new(), &Document::new())?,
        match_all: true,
        id_only: false,
        projection: None,
        skip: 0,
        limit: None,
        tailable: false,
        await_data: false,
        last_seen: None,
        stages: Some(Box::new(stages)),
        carry: None,
    };
    let (docs, open) = {
        let data = live.data.read();
        scan.next_batch(
            &data,
            Some(batch.unwrap_or(DEFAULT_BATCH)),
            Batch::new(ctx.server.reply_buffer(), true),
        )?
    };
    let id = if open {
        ctx.server.cursors.register(Cursor {
            ns: ns.clone(),
            pending: VecDeque::new(),
            lsid: ctx.body.get("lsid").cloned(),
            origin: ctx.name.clone(),
            last_used: Instant::now(),
            no_timeout: false,
            stream: None,
            scan: Some(Box::new(scan)),
            eof_on_read: false,
            collection: None,
        })
    } else {
        0
    };
    Ok(Reply::Raw(cursor_reply(id, &ns, docs)))
}

/// A cursor over precomputed documents (`listCollections`, `listIndexes`).
pub fn cursor_over(
    ctx: &Ctx<'_>,
    ns: String,
    docs: Vec<RawDocumentBuf>,
    batch: Option<usize>,
) -> Reply {
    let first = batch.unwrap_or(usize::MAX);
    open_cursor(ctx, ns, docs, Some(first), CursorOptions::default(), None)
}
