//! Pieces shared by the read and write commands: resolving a namespace, finding the records a
//! filter selects, and preparing documents for storage.

use crate::query::expr::DocMeta;
use std::ops::Bound;
use std::sync::Arc;

use bson::raw::cstr;
use bson::{Bson, Document, RawDocumentBuf, oid::ObjectId};

use crate::error::{CommandError, Result, codes};
use crate::query::compare::OrdBson;
use crate::query::matcher::Matcher;
use crate::query::sort::{Direction, SortSpec};
use crate::storage::catalog::Namespace;
use crate::storage::collection::{CollectionData, RecordId, decode};
use crate::storage::{Collection, View};

use super::Ctx;

tokio::task_local! {
    /// Set (to the server) while a command runs for a client whose user writes are blocked
    /// (`setUserWriteBlockMode` on, and no `bypassWriteBlockingMode` privilege).
    pub static USER_WRITES_BLOCKED: Option<Arc<crate::server::Server>>;
}

/// Whether the running command's user writes are blocked.
pub fn user_writes_blocked_here() -> bool {
    USER_WRITES_BLOCKED
        .try_with(|s| s.is_some())
        .unwrap_or(false)
}

/// Fails with UserWritesBlocked (371) if the running command may not write to `ns`: the
/// check of the server's op observer, made where a document is written, so a statement that
/// writes nothing (a delete or update matching nothing) succeeds.
pub fn check_user_write(ns: &str) -> Result<()> {
    let db = ns.split('.').next().unwrap_or_default();
    let blocked = USER_WRITES_BLOCKED.try_with(|s| s.clone()).ok().flatten();
    match blocked {
        Some(server) if !super::security::internal_db(db) => {
            Err(super::security::user_writes_blocked(&server))
        }
        _ => Ok(()),
    }
}

/// What a read targets.
pub enum Target {
    /// Nothing there: reads see no documents.
    Missing,
    /// A collection (live, or a transaction's copy).
    Collection(CollHandle),
    /// A view, resolved to its base collection and the combined pipeline.
    View {
        base: String,
        pipeline: Vec<Document>,
    },
}

/// Resolves `db.coll` for a read, following view chains to the base collection.
pub fn resolve(ctx: &Ctx<'_>, coll: &str) -> Result<Target> {
    let mut name = coll.to_string();
    let mut pipeline: Vec<Document> = Vec::new();
    let mut depth = 0;
    loop {
        match ctx.server.catalog.lookup(&ctx.db, &name) {
            None if depth == 0 => {
                // A collection created inside the running transaction exists only there.
                return Ok(ctx
                    .collection(&name)
                    .map_or(Target::Missing, Target::Collection));
            }
            None => {
                return Ok(Target::View {
                    base: name,
                    pipeline,
                });
            }
            Some(Namespace::Collection(c)) if depth == 0 => {
                return Ok(Target::Collection(
                    ctx.collection(&name).unwrap_or(CollHandle::Live(c)),
                ));
            }
            Some(Namespace::Collection(_)) => {
                return Ok(Target::View {
                    base: name,
                    pipeline,
                });
            }
            Some(Namespace::View(View {
                view_on,
                pipeline: p,
                ..
            })) => {
                let mut combined = p;
                combined.extend(pipeline);
                pipeline = combined;
                name = view_on;
                depth += 1;
                if depth > 20 {
                    return Err(CommandError::new(
                        codes::VIEW_DEPTH_LIMIT_EXCEEDED,
                        "View depth too deep or view cycle detected; maximum depth is 20",
                    ));
                }
            }
        }
    }
}

/// Fails with CommandNotSupportedOnView when `coll` is a view (writes, index commands).
pub fn refuse_view(ctx: &Ctx<'_>, coll: &str) -> Result<()> {
    if let Some(Namespace::View(_)) = ctx.server.catalog.lookup(&ctx.db, coll) {
        return Err(CommandError::new(
            codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
            format!("Namespace {}.{coll} is a view, not a collection", ctx.db),
        ));
    }
    Ok(())
}

/// Whether a filter only looks at `_id` (then matching `{_id: value}` is exact and documents
/// need not be decoded).
pub fn filter_only_on_id(filter: &Document) -> bool {
    !filter.is_empty() && filter.keys().all(|k| k == "_id")
}

/// The records selected by `filter`, in natural order, or in `sort` order when given;
/// at most `limit` of them (after `skip`).
pub fn select(
    data: &CollectionData,
    filter: &Document,
    matcher: &Matcher,
    sort: Option<&SortSpec>,
    skip: usize,
    limit: Option<usize>,
) -> Result<Vec<(RecordId, Option<Document>)>> {
    matcher.bind_indexes(data.indexes.iter().map(|i| &i.spec))?;
    let near = matcher.near();
    // Fast path: `_id` equality.
    if let Some(id) = matcher.id_equality().filter(|_| data.has_id_index()) {
        let mut out = Vec::new();
        if let Some((rid, raw)) = data.find_id(id) {
            let doc = decode(raw)?;
            if matcher.try_matches(&doc)? && skip == 0 && limit != Some(0) {
                out.push((rid, Some(doc)));
            }
        }
        return Ok(out);
    }
    // A sort on `_id` alone is the `_id` index's own order: no sort needed.
    let by_id = sort
        .and_then(|s| match s.keys() {
            [(field, Direction::Ascending)] if field == "_id" => Some(false),
            [(field, Direction::Descending)] if field == "_id" => Some(true),
            _ => None,
        })
        .filter(|_| data.has_id_index() && sort.is_some_and(|s| s.collation().is_none()));
    let sorted = sort.filter(|s| s.natural().is_none() && by_id.is_none());
    let id_only = filter_only_on_id(filter);
    let reverse = sort.and_then(|s| s.natural()).is_some_and(|d| d < 0);
    let range = matcher.id_range().filter(|_| data.has_id_index());
    let candidates: Box<dyn Iterator<Item = (RecordId, &RawDocumentBuf)>> = match (range, by_id) {
        (Some((lo, hi)), by_id) if sorted.is_none() && !reverse => {
            let lo = map_bound(lo);
            let hi = map_bound(hi);
            let iter =
                data.iter_id_range(as_ref_bound(&lo), as_ref_bound(&hi), by_id == Some(true));
            Box::new(iter.collect::<Vec<_>>().into_iter())
        }
        (_, Some(desc)) => data.iter_id_range(Bound::Unbounded, Bound::Unbounded, desc),
        _ if reverse => Box::new(data.iter().rev()),
        _ => Box::new(data.iter()),
    };
    let mut matched: Vec<(RecordId, Option<Document>)> = Vec::new();
    // Top-k applies to a plain sort over decoded documents (text scores sort apart).
    let top_k = sorted.filter(|_| limit.is_some() && !matcher.has_text());
    let early_stop = if sorted.is_none() && near.is_none() {
        limit.map(|l| l + skip)
    } else {
        None
    };
    for (rid, raw) in candidates {
        if early_stop.is_some_and(|n| matched.len() >= n) {
            break;
        }
        if filter.is_empty() && top_k.is_none() {
            matched.push((rid, None));
            continue;
        }
        if id_only && top_k.is_none() {
            let mut probe = Document::new();
            if let Some(id) = crate::storage::collection::raw_id(raw) {
                probe.insert("_id", id);
            }
            if matcher.try_matches(&probe)? {
                matched.push((rid, None));
            }
            continue;
        }
        let doc = decode(raw)?;
        if matcher.try_matches(&doc)? {
            // A sort with a limit keeps only the first skip + limit (the server's top-k
            // sort): memory bounded by the limit, not the collection; ties stay in order.
            if let (Some(spec), Some(k)) = (top_k, limit.map(|l| l.saturating_add(skip))) {
                if matched.len() == k
                    && matched
                        .last()
                        .and_then(|(_, d)| d.as_ref())
                        .is_some_and(|last| spec.compare(&doc, last) != std::cmp::Ordering::Less)
                {
                    continue;
                }
                let at = matched.partition_point(|(_, d)| {
                    d.as_ref()
                        .is_some_and(|x| spec.compare(x, &doc) != std::cmp::Ordering::Greater)
                });
                matched.insert(at, (rid, Some(doc)));
                matched.truncate(k);
                continue;
            }
            matched.push((rid, Some(doc)));
        }
    }
    if let Some(spec) = sorted {
        let mut decoded: Vec<(RecordId, Document)> = matched
            .into_iter()
            .map(|(rid, d)| match d {
                Some(d) => Ok((rid, d)),
                None => Ok((rid, decode(data.get(rid).expect("selected record exists"))?)),
            })
            .collect::<Result<_>>()?;
        if matcher.has_text() {
            // Each document's score once, as the metadata a `{$meta: "textScore"}` key reads.
            let mut scored: Vec<(RecordId, Document, DocMeta)> = decoded
                .into_iter()
                .map(|(r, d)| {
                    let meta = DocMeta::text(matcher.text_score(&d));
                    (r, d, meta)
                })
                .collect();
            scored.sort_by(|a, b| spec.compare_meta(&a.1, Some(&a.2), &b.1, Some(&b.2)));
            matched = scored.into_iter().map(|(r, d, _)| (r, Some(d))).collect();
        } else {
            decoded.sort_by(|a, b| spec.compare(&a.1, &b.1));
            matched = decoded.into_iter().map(|(r, d)| (r, Some(d))).collect();
        }
    } else if let Some((path, near)) = near {
        // `$near`/`$nearSphere` return the nearest first (stable among equal distances).
        let mut by_distance = Vec::with_capacity(matched.len());
        for (rid, d) in matched {
            let d = match d {
                Some(d) => d,
                None => decode(data.get(rid).expect("selected record exists"))?,
            };
            let dist = near.nearest(&d, path).map_or(f64::INFINITY, |(x, _)| x);
            by_distance.push((dist, rid, d));
        }
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
        matched = by_distance
            .into_iter()
            .map(|(_, r, d)| (r, Some(d)))
            .collect();
    }
    let iter = matched.into_iter().skip(skip);
    Ok(match limit {
        Some(l) => iter.take(l).collect(),
        None => iter.collect(),
    })
}

fn map_bound(b: Bound<Bson>) -> Bound<OrdBson> {
    match b {
        Bound::Included(v) => Bound::Included(OrdBson(v)),
        Bound::Excluded(v) => Bound::Excluded(OrdBson(v)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_ref_bound(b: &Bound<OrdBson>) -> Bound<&OrdBson> {
    match b {
        Bound::Included(v) => Bound::Included(v),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Checks an `_id` value as the server does before storing it.
pub fn check_id(id: &Bson) -> Result<()> {
    match id {
        Bson::Array(_) => Err(CommandError::new(
            codes::INVALID_ID_FIELD,
            "can't use an array for _id",
        )),
        Bson::RegularExpression(_) => Err(CommandError::new(
            codes::INVALID_ID_FIELD,
            "can't use a regex for _id",
        )),
        Bson::Undefined => Err(CommandError::new(
            codes::INVALID_ID_FIELD,
            "can't use a undefined for _id",
        )),
        Bson::Document(d) => check_no_dollar_fields(d),
        _ => Ok(()),
    }
}

fn check_no_dollar_fields(d: &Document) -> Result<()> {
    for (k, v) in d {
        if k.starts_with('$') {
            return Err(CommandError::new(
                codes::DOLLAR_PREFIXED_FIELD_NAME,
                format!(
                    "_id fields may not contain '$'-prefixed fields: {k} is not valid for storage."
                ),
            ));
        }
        if let Bson::Document(inner) = v {
            check_no_dollar_fields(inner)?;
        }
    }
    Ok(())
}

/// Prepares a raw document for insertion: `_id` first (generated if missing) and checked, size
/// within the limit. Returns the document to store and its `_id`.
pub fn prepare_raw_insert(raw: &RawDocumentBuf) -> Result<(RawDocumentBuf, Bson)> {
    let mut first_key_is_id = false;
    let mut id = None;
    for (i, elem) in raw.iter().enumerate() {
        let (key, value) = elem.map_err(|e| CommandError::new(22, e.to_string()))?;
        if key == "_id" {
            first_key_is_id = i == 0;
            id = Some(Bson::try_from(value).map_err(|e| CommandError::new(22, e.to_string()))?);
            break;
        }
    }
    let (stored, id) = match id {
        Some(id) if first_key_is_id => (raw.clone(), id),
        Some(id) => {
            let mut out = RawDocumentBuf::new();
            out.append(
                cstr!("_id"),
                bson::RawBson::try_from(id.clone())
                    .map_err(|e| CommandError::new(22, e.to_string()))?,
            );
            for elem in raw.iter() {
                let (k, v) = elem.map_err(|e| CommandError::new(22, e.to_string()))?;
                if k != "_id" {
                    out.append(k, bson::RawBson::from(v));
                }
            }
            (out, id)
        }
        None => {
            let oid = ObjectId::new();
            let mut out = RawDocumentBuf::new();
            out.append(cstr!("_id"), oid);
            for elem in raw.iter() {
                let (k, v) = elem.map_err(|e| CommandError::new(22, e.to_string()))?;
                out.append(k, bson::RawBson::from(v));
            }
            (out, Bson::ObjectId(oid))
        }
    };
    check_id(&id)?;
    check_size(&stored)?;
    Ok((stored, id))
}

/// Fails when a document exceeds the 16 MiB limit.
pub fn check_size(raw: &RawDocumentBuf) -> Result<()> {
    let len = raw.as_bytes().len();
    if len > crate::wire::MAX_BSON_SIZE {
        return Err(CommandError::new(
            codes::BSON_OBJECT_TOO_LARGE,
            format!(
                "BSONObj size: {len} (0x{len:X}) is invalid. Size must be between 0 and 16793600(16MB)"
            ),
        ));
    }
    Ok(())
}

/// The largest BSON object the server builds (`BSONObjMaxInternalSize`): 16 MiB plus 16 KiB of
/// slack for command replies.
pub const MAX_INTERNAL_BSON_SIZE: usize = crate::wire::MAX_BSON_SIZE + 16 * 1024;

/// Encodes a result document (a projection's or a pipeline's output). As on a real server a
/// result may exceed the 16 MiB user limit (a `$group` of large strings): only the internal
/// limit of a BSON object applies, with the message of `BSONObj`'s own check.
pub fn encode_result(doc: &Document) -> Result<RawDocumentBuf> {
    let raw = RawDocumentBuf::try_from(doc).map_err(|e| CommandError::new(22, e.to_string()))?;
    let len = raw.as_bytes().len();
    if len > MAX_INTERNAL_BSON_SIZE {
        let first = doc
            .iter()
            .next()
            .map(|(k, v)| {
                let v: String = crate::util::shell_repr(v).chars().take(80).collect();
                format!("{k}: {v}")
            })
            .unwrap_or_default();
        return Err(CommandError::new(
            codes::BSON_OBJECT_TOO_LARGE,
            format!(
                "BSONObj size: {len} (0x{len:X}) is invalid. Size must be between 0 and {MAX_INTERNAL_BSON_SIZE}(16MB) First element: {first}"
            ),
        ));
    }
    Ok(raw)
}

/// Encodes a document for storage.
pub fn encode(doc: &Document) -> Result<RawDocumentBuf> {
    let raw = RawDocumentBuf::try_from(doc).map_err(|e| CommandError::new(22, e.to_string()))?;
    check_size(&raw)?;
    Ok(raw)
}

/// Checks a document against the collection's validator; 121 DocumentValidationFailure.
pub fn validate_document(
    data: &CollectionData,
    doc: &Document,
    id: &Bson,
    is_update_of_invalid: bool,
) -> Result<()> {
    let Ok(validator) = data.options.get_document("validator") else {
        return Ok(());
    };
    let level = data.options.get_str("validationLevel").unwrap_or("strict");
    let action = data.options.get_str("validationAction").unwrap_or("error");
    if level == "off" || action == "warn" || (level == "moderate" && is_update_of_invalid) {
        return Ok(());
    }
    let matcher = Matcher::new(validator, &Document::new())?;
    if matcher.matches(doc) {
        return Ok(());
    }
    Err(CommandError::new(codes::DOCUMENT_VALIDATION_FAILURE, "Document failed validation").with_extra(
        "errInfo",
        bson::doc! {"failingDocumentId": id.clone(), "details": {"operatorName": "$and", "clausesNotSatisfied": []}},
    ))
}

/// Whether a stored document currently fails the validator (for `validationLevel: moderate`).
pub fn is_invalid(data: &CollectionData, doc: &Document) -> bool {
    match data.options.get_document("validator") {
        Ok(v) => Matcher::new(v, &Document::new())
            .map(|m| !m.matches(doc))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The `writeErrors` entry of a failed statement.
pub fn write_error(index: usize, e: &CommandError) -> Bson {
    let mut d = bson::doc! {"index": index as i32, "code": e.code, "errmsg": e.message.clone()};
    for (k, v) in &e.extra {
        d.insert(k.clone(), v.clone());
    }
    Bson::Document(d)
}

/// Checks a `hint` against the collection's indexes (by name or key pattern).
pub fn check_hint(data: Option<&CollectionData>, hint: Option<&Bson>) -> Result<()> {
    let Some(hint) = hint else { return Ok(()) };
    let Some(data) = data else { return Ok(()) };
    let found = match hint {
        Bson::String(name) => name == "_id_" || data.indexes.iter().any(|i| i.name() == name),
        Bson::Document(key) if key.is_empty() => true,
        Bson::Document(key) => {
            key.get("$natural").is_some()
                || (key.len() == 1 && key.keys().next().map(String::as_str) == Some("_id"))
                || data.indexes.iter().any(|i| i.key() == key)
        }
        _ => {
            return Err(CommandError::failed_to_parse(
                "Hint must be a string or an object",
            ));
        }
    };
    if found {
        Ok(())
    } else {
        Err(CommandError::bad_value(
            "hint provided does not correspond to an existing index",
        ))
    }
}

/// A collection as a command sees it: the live one, or a transaction's private copy.
#[derive(Clone)]
pub enum CollHandle {
    /// The live collection.
    Live(Arc<Collection>),
    /// A transaction's copy.
    Txn(Arc<parking_lot::Mutex<CollectionData>>),
}

/// Read access to a collection's data.
pub enum ReadGuard<'a> {
    /// Of the live collection.
    Live(parking_lot::RwLockReadGuard<'a, CollectionData>),
    /// Of a transaction's copy.
    Txn(parking_lot::MutexGuard<'a, CollectionData>),
}

/// Write access to a collection's data.
pub enum WriteGuard<'a> {
    /// Of the live collection.
    Live(parking_lot::RwLockWriteGuard<'a, CollectionData>),
    /// Of a transaction's copy.
    Txn(parking_lot::MutexGuard<'a, CollectionData>),
}

impl CollHandle {
    /// Locks the data for reading.
    pub fn read(&self) -> ReadGuard<'_> {
        match self {
            CollHandle::Live(c) => ReadGuard::Live(c.data.read()),
            CollHandle::Txn(d) => ReadGuard::Txn(d.lock()),
        }
    }

    /// Locks the data for writing.
    pub fn write(&self) -> WriteGuard<'_> {
        match self {
            CollHandle::Live(c) => WriteGuard::Live(c.data.write()),
            CollHandle::Txn(d) => WriteGuard::Txn(d.lock()),
        }
    }
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = CollectionData;
    fn deref(&self) -> &CollectionData {
        match self {
            ReadGuard::Live(g) => g,
            ReadGuard::Txn(g) => g,
        }
    }
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = CollectionData;
    fn deref(&self) -> &CollectionData {
        match self {
            WriteGuard::Live(g) => g,
            WriteGuard::Txn(g) => g,
        }
    }
}

impl std::ops::DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut CollectionData {
        match self {
            WriteGuard::Live(g) => g,
            WriteGuard::Txn(g) => g,
        }
    }
}

/// The `collation` of a command or statement, parsed; `None` for the simple binary collation.
pub fn collation_of(doc: &Document) -> Result<Option<crate::query::collation::Collation>> {
    match doc.get("collation") {
        None => Ok(None),
        Some(Bson::Document(c)) => crate::query::collation::Collation::parse(c),
        Some(other) => Err(CommandError::type_mismatch(format!(
            "collation must be an object, not {}",
            crate::util::type_name(other)
        ))),
    }
}
