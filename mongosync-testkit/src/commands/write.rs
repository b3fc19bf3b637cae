//! Write commands: `insert`, `update`, `delete`, `findAndModify`. Each statement runs under
//! its collection's write lock; ordered batches stop at the first error.
#![allow(clippy::result_large_err)]

use bson::{Bson, Document, RawDocumentBuf, doc};

use super::support::CollHandle;
use super::support::{self, validate_document, write_error};
use super::{Ctx, Reply};
use crate::error::{CommandError, Result};
use crate::query::matcher::Matcher;
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::query::update::{Update, UpdateContext, upsert_document};
use crate::storage::collection::{CollectionData, RecordId, decode};

pub(super) use crate::error::codes::INVALID_LENGTH;

/// The most statements one write command carries (`write_ops::kMaxWriteBatchSize`).
pub(super) const MAX_WRITE_BATCH: usize = 100_000;

/// Every write command carries between 1 and 100000 statements (an empty batch fails too).
pub(super) fn check_batch_size(n: usize) -> Result<()> {
    if n == 0 || n > MAX_WRITE_BATCH {
        return Err(CommandError::new(
            INVALID_LENGTH,
            format!(
                "Write batch sizes must be between 1 and {MAX_WRITE_BATCH}. Got {n} operations."
            ),
        ));
    }
    Ok(())
}

const INSERT_FIELDS: &[&str] = &[
    "documents",
    "ordered",
    "bypassDocumentValidation",
    "collectionUUID",
    "stmtId",
    "stmtIds",
];
pub(super) const UPDATE_FIELDS: &[&str] = &[
    "updates",
    "ordered",
    "bypassDocumentValidation",
    "let",
    "collectionUUID",
    "stmtIds",
    "stmtId",
];
pub(super) const DELETE_FIELDS: &[&str] = &[
    "deletes",
    "ordered",
    "let",
    "collectionUUID",
    "stmtIds",
    "stmtId",
];
pub(super) const FAM_FIELDS: &[&str] = &[
    "query",
    "sort",
    "remove",
    "update",
    "new",
    "fields",
    "upsert",
    "bypassDocumentValidation",
    "collation",
    "arrayFilters",
    "hint",
    "let",
    "stmtId",
    "collectionUUID",
];

/// The command's `let` variables, each an expression evaluated once before any statement runs
/// (`{$literal: "$x"}` is the string `$x`), as the server does.
pub(super) fn command_vars(ctx: &Ctx<'_>) -> Result<Document> {
    crate::query::expr::evaluate_let(&ctx.let_vars()?, &Document::new())
}

fn ordered(ctx: &Ctx<'_>) -> Result<bool> {
    Ok(ctx.opt_bool("ordered")?.unwrap_or(true))
}

fn finish(mut reply: Document, errors: Vec<Bson>) -> Reply {
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    Reply::Doc(reply)
}

pub fn insert(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(INSERT_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let ordered = ordered(ctx)?;
    let bypass = ctx.opt_bool("bypassDocumentValidation")?.unwrap_or(false);
    let mut docs: Vec<RawDocumentBuf> = Vec::new();
    for (id, seq) in std::mem::take(&mut ctx.sequences) {
        if id == "documents" {
            docs.extend(seq);
        }
    }
    match ctx.body.get("documents") {
        Some(Bson::Array(items)) => {
            for item in items {
                match item {
                    Bson::Document(d) => docs.push(support::encode(d)?),
                    other => {
                        return Err(CommandError::wrong_field_type(
                            "insert",
                            "documents",
                            crate::util::type_name(other),
                            &["object"],
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "insert",
                "documents",
                crate::util::type_name(other),
                &["array"],
            ));
        }
        None if docs.is_empty() => return Err(CommandError::missing_field("insert", "documents")),
        None => {}
    }
    check_batch_size(docs.len())?;
    support::refuse_view(ctx, &coll)?;
    // A blocked implicit creation fails the first document, as a write error.
    let (collection, _created) = match ctx.collection_for_write(&coll) {
        Err(e) if e.code == 371 => return Ok(finish(doc! {"n": 0}, vec![write_error(0, &e)])),
        other => other?,
    };
    let mut data = collection.write();
    let mut n = 0;
    let mut errors = Vec::new();
    for (i, raw) in docs.iter().enumerate() {
        // Executed by an earlier attempt of this retryable write: counted, not redone.
        if crate::session::executed_statement(i).is_some() {
            n += 1;
            continue;
        }
        match insert_statement(&mut data, raw, bypass) {
            Ok(_) => {
                n += 1;
                crate::session::record_statement(i, Document::new());
            }
            Err(e) => {
                errors.push(write_error(i, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    Ok(finish(doc! {"n": n}, errors))
}

/// Inserts one document (one statement of `insert` or `bulkWrite`): `_id` first (generated
/// when missing), validated unless `bypass`. Returns the document's `_id`.
pub(super) fn insert_statement(
    data: &mut CollectionData,
    raw: &RawDocumentBuf,
    bypass: bool,
) -> Result<Bson> {
    let (stored, id) = support::prepare_raw_insert(raw)?;
    support::check_user_write(&data.ns)?;
    if !bypass && data.options.contains_key("validator") {
        validate_document(data, &decode(&stored)?, &id, false)?;
    }
    crate::failpoint::FailPoints::transactional_write()?;
    data.insert(stored, id.clone())?;
    Ok(id)
}

/// The collection a statement writes to: looked up once, created on the first statement that
/// inserts (a real server creates the collection implicitly on insert or upsert only).
/// Inside a transaction, the statement sees the transaction's copy.
pub(super) struct StatementTarget<'a, 'c> {
    ctx: &'a Ctx<'c>,
    db: &'a str,
    coll: &'a str,
    collection: Option<CollHandle>,
}

impl<'a, 'c> StatementTarget<'a, 'c> {
    pub(super) fn new(ctx: &'a Ctx<'c>, db: &'a str, coll: &'a str) -> Self {
        StatementTarget {
            ctx,
            db,
            coll,
            collection: ctx.collection_in(db, coll),
        }
    }

    /// The collection, created if missing.
    pub(super) fn for_write(&mut self) -> Result<CollHandle> {
        if let Some(c) = &self.collection {
            return Ok(c.clone());
        }
        let c = self.ctx.collection_for_write_in(self.db, self.coll)?.0;
        self.collection = Some(c.clone());
        Ok(c)
    }
}

/// One parsed update statement.
pub(super) struct UpdateStatement {
    filter: Document,
    matcher: Matcher,
    update: Update,
    upsert: bool,
    multi: bool,
    sort: Option<SortSpec>,
    hint: Option<Bson>,
}

/// Parses one `updates` entry (`{q, u, upsert, multi, ...}`); `context` names it in errors
/// (`update.updates`).
pub(super) fn parse_update_statement(
    stmt: &Document,
    vars: &Document,
    context: &str,
) -> Result<UpdateStatement> {
    for key in stmt.keys() {
        if ![
            "q",
            "u",
            "upsert",
            "multi",
            "arrayFilters",
            "collation",
            "hint",
            "c",
            "sort",
            "upsertSupplied",
        ]
        .contains(&key.as_str())
        {
            return Err(CommandError::unknown_field(context, key));
        }
    }
    let filter = match stmt.get("q") {
        Some(Bson::Document(d)) => d.clone(),
        None => return Err(CommandError::missing_field(context, "q")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                context,
                "q",
                crate::util::type_name(other),
                &["object"],
            ));
        }
    };
    let mut vars = vars.clone();
    if let Ok(c) = stmt.get_document("c") {
        vars.extend(c.clone());
    }
    let collation = support::collation_of(stmt)?;
    let matcher = Matcher::with_collation(&filter, &vars, collation.clone())?;
    let array_filters: Option<Vec<Document>> = match stmt.get("arrayFilters") {
        None => None,
        Some(Bson::Array(items)) => Some(
            items
                .iter()
                .map(|f| match f {
                    Bson::Document(d) => Ok(d.clone()),
                    _ => Err(CommandError::type_mismatch(
                        "arrayFilters entries must be objects",
                    )),
                })
                .collect::<Result<_>>()?,
        ),
        Some(_) => return Err(CommandError::type_mismatch("arrayFilters must be an array")),
    };
    let u = stmt
        .get("u")
        .ok_or_else(|| CommandError::missing_field(context, "u"))?;
    let update = Update::parse(u, array_filters.as_deref())?;
    let multi = stmt.get_bool("multi").unwrap_or(false);
    if multi && update.is_replacement() {
        return Err(CommandError::failed_to_parse(
            "multi update is not supported for replacement-style update",
        ));
    }
    let sort = match stmt.get_document("sort") {
        Ok(s) if !s.is_empty() => {
            if multi {
                return Err(CommandError::failed_to_parse(
                    "Cannot specify sort with multi=true",
                ));
            }
            Some(SortSpec::with_collation(s, collation.clone())?)
        }
        _ => None,
    };
    Ok(UpdateStatement {
        filter,
        matcher,
        update,
        upsert: stmt.get_bool("upsert").unwrap_or(false),
        multi,
        sort,
        hint: stmt.get("hint").cloned(),
    })
}

/// The outcome of one update statement.
pub(super) struct UpdateOutcome {
    pub(super) matched: i64,
    pub(super) modified: i64,
    pub(super) upserted: Option<Bson>,
    /// The document before and after (the last one touched), for findAndModify.
    before: Option<Document>,
    after: Option<Document>,
}

fn apply_update(
    data: &mut CollectionData,
    stmt: &UpdateStatement,
    vars: &Document,
    bypass: bool,
) -> Result<UpdateOutcome> {
    support::check_hint(Some(data), stmt.hint.as_ref())?;
    let limit = if stmt.multi { None } else { Some(1) };
    let selected = support::select(
        data,
        &stmt.filter,
        &stmt.matcher,
        stmt.sort.as_ref(),
        0,
        limit,
    )?;
    let mut out = UpdateOutcome {
        matched: 0,
        modified: 0,
        upserted: None,
        before: None,
        after: None,
    };
    for (rid, doc) in selected {
        let old = match doc {
            Some(d) => d,
            None => decode(data.get(rid).expect("selected record exists"))?,
        };
        let details = stmt.matcher.match_details(&old);
        let uctx = UpdateContext {
            positional: details.array_index,
            is_insert: false,
            vars: Some(vars),
        };
        let new = stmt.update.apply(&old, &uctx)?;
        out.matched += 1;
        let changed = new != old || !same_types(&new, &old);
        if changed {
            store_update(data, rid, &old, &new, bypass, stmt.update.is_replacement())?;
            out.modified += 1;
        }
        out.before = Some(old);
        out.after = Some(new);
    }
    if out.matched == 0 && stmt.upsert {
        let new = upsert_new_document(stmt, vars)?;
        let id = new.get("_id").cloned().unwrap_or(Bson::Null);
        support::check_id(&id)?;
        if !bypass {
            validate_document(data, &new, &id, false)?;
        }
        let raw = support::encode(&new)?;
        support::check_user_write(&data.ns)?;
        crate::failpoint::FailPoints::transactional_write()?;
        data.insert(raw, id.clone())?;
        out.upserted = Some(id);
        out.after = Some(new);
    }
    Ok(out)
}

/// `==` on documents compares numbers by value across types; a real server counts a change of
/// type (1 to 1.0) as a modification.
fn same_types(a: &Document, b: &Document) -> bool {
    a.to_vec().ok() == b.to_vec().ok()
}

fn store_update(
    data: &mut CollectionData,
    rid: RecordId,
    old: &Document,
    new: &Document,
    bypass: bool,
    replacement: bool,
) -> Result<()> {
    support::check_user_write(&data.ns)?;
    let id = new.get("_id").cloned().unwrap_or(Bson::Null);
    if !bypass {
        let was_invalid = data.options.get_str("validationLevel").ok() == Some("moderate")
            && support::is_invalid(data, old);
        validate_document(data, new, &id, was_invalid)?;
    }
    let raw = support::encode(new).map_err(|e| {
        // As update_stage.cpp: an update that grows a document past the limit (bypassing
        // validation does not lift it).
        if e.code == crate::error::codes::BSON_OBJECT_TOO_LARGE && !replacement {
            CommandError::new(
                e.code,
                format!(
                    "Resulting document after update is larger than {}",
                    crate::wire::MAX_BSON_SIZE
                ),
            )
        } else {
            e
        }
    })?;
    crate::failpoint::FailPoints::transactional_write()?;
    data.replace(rid, raw, replacement)
}

fn upsert_new_document(stmt: &UpdateStatement, vars: &Document) -> Result<Document> {
    let seed = upsert_document(&stmt.matcher.equality_fields())?;
    let mut new = if stmt.update.is_replacement() {
        // A replacement upsert takes only `_id` from the query.
        let mut base = Document::new();
        if let Some(id) = seed.get("_id") {
            base.insert("_id", id.clone());
        }
        stmt.update.apply(
            &base,
            &UpdateContext {
                positional: None,
                is_insert: true,
                vars: Some(vars),
            },
        )?
    } else {
        stmt.update.apply(
            &seed,
            &UpdateContext {
                positional: None,
                is_insert: true,
                vars: Some(vars),
            },
        )?
    };
    if !new.contains_key("_id") {
        let mut with_id = doc! {"_id": bson::oid::ObjectId::new()};
        with_id.extend(new);
        new = with_id;
    } else if new.keys().next().map(String::as_str) != Some("_id") {
        let id = new.remove("_id").expect("present");
        let mut with_id = doc! {"_id": id};
        with_id.extend(new);
        new = with_id;
    }
    Ok(new)
}

/// Runs one update statement on its target; a missing collection is created only to upsert.
pub(super) fn update_statement(
    target: &mut StatementTarget<'_, '_>,
    stmt: &UpdateStatement,
    vars: &Document,
    bypass: bool,
) -> Result<UpdateOutcome> {
    if target.collection.is_none() && !stmt.upsert {
        support::check_hint(None, stmt.hint.as_ref())?;
        return Ok(UpdateOutcome {
            matched: 0,
            modified: 0,
            upserted: None,
            before: None,
            after: None,
        });
    }
    let c = target.for_write()?;
    let mut data = c.write();
    apply_update(&mut data, stmt, vars, bypass)
}

/// One parsed delete statement.
pub(super) struct DeleteStatement {
    filter: Document,
    matcher: Matcher,
    /// `None` deletes every match, `Some(1)` the first.
    limit: Option<usize>,
    hint: Option<Bson>,
}

/// Parses one `deletes` entry (`{q, limit, collation?, hint?}`); `context` names it in errors.
pub(super) fn parse_delete_statement(
    stmt: &Document,
    vars: &Document,
    context: &str,
) -> Result<DeleteStatement> {
    for key in stmt.keys() {
        if !["q", "limit", "collation", "hint"].contains(&key.as_str()) {
            return Err(CommandError::unknown_field(context, key));
        }
    }
    let filter = match stmt.get("q") {
        Some(Bson::Document(d)) => d.clone(),
        None => return Err(CommandError::missing_field(context, "q")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                context,
                "q",
                crate::util::type_name(other),
                &["object"],
            ));
        }
    };
    let limit = match stmt.get("limit").and_then(crate::util::as_f64) {
        Some(0.0) => None,
        Some(1.0) => Some(1),
        Some(_) => {
            return Err(CommandError::failed_to_parse(
                "The limit field in delete objects must be 0 or 1.",
            ));
        }
        None => return Err(CommandError::missing_field(context, "limit")),
    };
    let matcher = Matcher::with_collation(&filter, vars, support::collation_of(stmt)?)?;
    Ok(DeleteStatement {
        filter,
        matcher,
        limit,
        hint: stmt.get("hint").cloned(),
    })
}

/// Runs one delete statement; returns the number of documents removed.
pub(super) fn delete_statement(
    target: &StatementTarget<'_, '_>,
    stmt: &DeleteStatement,
) -> Result<i64> {
    let Some(c) = target.collection.as_ref() else {
        support::check_hint(None, stmt.hint.as_ref())?;
        return Ok(0);
    };
    let mut data = c.write();
    // No capped-collection refusal: deletes from capped collections are allowed since 5.0 (the
    // 7.0+ manual: capped collections "serialize ... insert, update, and delete" operations).
    support::check_hint(Some(&data), stmt.hint.as_ref())?;
    let selected = support::select(&data, &stmt.filter, &stmt.matcher, None, 0, stmt.limit)?;
    if !selected.is_empty() {
        support::check_user_write(&data.ns)?;
        crate::failpoint::FailPoints::transactional_write()?;
    }
    let mut removed = 0;
    for (rid, _) in selected {
        if data.remove(rid).is_some() {
            removed += 1;
        }
    }
    Ok(removed)
}

pub fn update(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(UPDATE_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let ordered = ordered(ctx)?;
    let bypass = ctx.opt_bool("bypassDocumentValidation")?.unwrap_or(false);
    let vars = command_vars(ctx)?;
    let statements = match ctx.body.get("updates") {
        Some(Bson::Array(a)) => a.clone(),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "update",
                "updates",
                crate::util::type_name(other),
                &["array"],
            ));
        }
        None => return Err(CommandError::missing_field("update", "updates")),
    };
    check_batch_size(statements.len())?;
    support::refuse_view(ctx, &coll)?;
    let mut n = 0i64;
    let mut modified = 0i64;
    let mut upserted = Vec::new();
    let mut errors = Vec::new();
    let mut target = StatementTarget::new(ctx, &ctx.db, &coll);
    for (i, stmt) in statements.iter().enumerate() {
        if let Some(done) = crate::session::executed_statement(i) {
            n += done.get_i64("n").unwrap_or(0);
            modified += done.get_i64("nModified").unwrap_or(0);
            if let Some(id) = done.get("upserted") {
                upserted.push(Bson::Document(doc! {"index": i as i32, "_id": id.clone()}));
            }
            continue;
        }
        let result = (|| {
            let Bson::Document(stmt) = stmt else {
                return Err(CommandError::type_mismatch(
                    "update statements must be objects",
                ));
            };
            let stmt = parse_update_statement(stmt, &vars, "update.updates")?;
            update_statement(&mut target, &stmt, &vars, bypass)
        })();
        match result {
            Ok(out) => {
                let mut done = doc! {
                    "n": out.matched + i64::from(out.upserted.is_some()),
                    "nModified": out.modified,
                };
                if let Some(id) = &out.upserted {
                    done.insert("upserted", id.clone());
                }
                crate::session::record_statement(i, done);
                n += out.matched;
                modified += out.modified;
                if let Some(id) = out.upserted {
                    n += 1;
                    upserted.push(Bson::Document(doc! {"index": i as i32, "_id": id}));
                }
            }
            Err(e) => {
                errors.push(write_error(i, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    let mut reply = doc! {"n": n as i32, "nModified": modified as i32};
    if !upserted.is_empty() {
        reply.insert("upserted", upserted);
    }
    Ok(finish(reply, errors))
}

pub fn delete(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(DELETE_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let ordered = ordered(ctx)?;
    let vars = command_vars(ctx)?;
    let statements = match ctx.body.get("deletes") {
        Some(Bson::Array(a)) => a.clone(),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "delete",
                "deletes",
                crate::util::type_name(other),
                &["array"],
            ));
        }
        None => return Err(CommandError::missing_field("delete", "deletes")),
    };
    check_batch_size(statements.len())?;
    support::refuse_view(ctx, &coll)?;
    let target = StatementTarget::new(ctx, &ctx.db, &coll);
    let mut n = 0i64;
    let mut errors = Vec::new();
    for (i, stmt) in statements.iter().enumerate() {
        if let Some(done) = crate::session::executed_statement(i) {
            n += done.get_i64("n").unwrap_or(0);
            continue;
        }
        let result = (|| {
            let Bson::Document(stmt) = stmt else {
                return Err(CommandError::type_mismatch(
                    "delete statements must be objects",
                ));
            };
            let stmt = parse_delete_statement(stmt, &vars, "delete.deletes")?;
            delete_statement(&target, &stmt)
        })();
        match result {
            Ok(removed) => {
                n += removed;
                crate::session::record_statement(i, doc! {"n": removed});
            }
            Err(e) => {
                errors.push(write_error(i, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    Ok(finish(doc! {"n": n as i32}, errors))
}

/// Errors raised while findAndModify's plan runs (matching, applying the update, storing the
/// result) carry the context a real server adds; parse and planning errors (bad update, unknown
/// hint) do not.
fn plan_executor_error(mut e: CommandError) -> CommandError {
    e.message = format!(
        "Plan executor error during findAndModify :: caused by :: {}",
        e.message
    );
    e
}

pub fn find_and_modify(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(FAM_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let vars = command_vars(ctx)?;
    let filter = ctx.opt_doc("query")?.cloned().unwrap_or_default();
    let remove = ctx.opt_bool("remove")?.unwrap_or(false);
    let return_new = ctx.opt_bool("new")?.unwrap_or(false);
    let upsert = ctx.opt_bool("upsert")?.unwrap_or(false);
    let bypass = ctx.opt_bool("bypassDocumentValidation")?.unwrap_or(false);
    let update = ctx.body.get("update").cloned();
    match (&update, remove) {
        (Some(_), true) => {
            return Err(CommandError::failed_to_parse(
                "Cannot specify both an update and remove=true",
            ));
        }
        (None, false) => {
            return Err(CommandError::failed_to_parse(
                "Either an update or remove=true must be specified",
            ));
        }
        (None, true) if upsert => {
            return Err(CommandError::failed_to_parse(
                "Cannot specify both upsert=true and remove=true",
            ));
        }
        (None, true) if return_new => {
            return Err(CommandError::failed_to_parse(
                "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document",
            ));
        }
        _ => {}
    }
    let sort = match ctx.opt_doc("sort")? {
        Some(s) if !s.is_empty() => Some(SortSpec::with_collation(
            s,
            support::collation_of(&ctx.body)?,
        )?),
        _ => None,
    };
    let projection = match ctx.opt_doc("fields")? {
        Some(f) if !f.is_empty() => Some(Projection::new(f, &vars)?),
        _ => None,
    };
    let matcher = Matcher::with_collation(&filter, &vars, support::collation_of(&ctx.body)?)?;
    support::refuse_view(ctx, &coll)?;
    let hint = ctx.body.get("hint").cloned();
    let mut last_error = doc! {};
    let value: Option<Document>;
    if remove {
        let Some(c) = ctx.collection(&coll) else {
            support::check_hint(None, hint.as_ref())?;
            return Ok(Reply::Doc(
                doc! {"lastErrorObject": {"n": 0}, "value": Bson::Null},
            ));
        };
        let mut data = c.write();
        support::check_hint(Some(&data), hint.as_ref())?;
        let selected = support::select(&data, &filter, &matcher, sort.as_ref(), 0, Some(1))
            .map_err(plan_executor_error)?;
        value = match selected.into_iter().next() {
            Some((rid, doc)) => {
                let doc = match doc {
                    Some(d) => d,
                    None => decode(data.get(rid).expect("selected"))?,
                };
                support::check_user_write(&data.ns)?;
                crate::failpoint::FailPoints::transactional_write()?;
                data.remove(rid);
                Some(doc)
            }
            None => None,
        };
        last_error.insert("n", if value.is_some() { 1 } else { 0 });
    } else {
        let array_filters: Option<Vec<Document>> = match ctx.body.get("arrayFilters") {
            Some(Bson::Array(items)) => Some(
                items
                    .iter()
                    .map(|f| match f {
                        Bson::Document(d) => Ok(d.clone()),
                        _ => Err(CommandError::type_mismatch(
                            "arrayFilters entries must be objects",
                        )),
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => None,
        };
        let parsed = Update::parse(update.as_ref().expect("checked"), array_filters.as_deref())?;
        let stmt = UpdateStatement {
            filter: filter.clone(),
            matcher,
            update: parsed,
            upsert,
            multi: false,
            sort,
            hint,
        };
        let collection = match ctx.collection(&coll) {
            Some(c) => c,
            None if upsert => ctx.collection_for_write(&coll)?.0,
            None => {
                support::check_hint(None, stmt.hint.as_ref())?;
                return Ok(Reply::Doc(
                    doc! {"lastErrorObject": {"n": 0, "updatedExisting": false}, "value": Bson::Null},
                ));
            }
        };
        let mut data = collection.write();
        support::check_hint(Some(&data), stmt.hint.as_ref())?;
        let out = apply_update(&mut data, &stmt, &vars, bypass).map_err(plan_executor_error)?;
        last_error.insert(
            "n",
            if out.matched > 0 || out.upserted.is_some() {
                1
            } else {
                0
            },
        );
        last_error.insert("updatedExisting", out.matched > 0);
        if let Some(id) = &out.upserted {
            last_error.insert("upserted", id.clone());
        }
        value = if return_new { out.after } else { out.before };
    }
    let value = match (value, projection) {
        (Some(v), Some(p)) => Bson::Document(p.apply(&v, None)?),
        (Some(v), None) => Bson::Document(v),
        (None, _) => Bson::Null,
    };
    Ok(Reply::Doc(
        doc! {"lastErrorObject": last_error, "value": value},
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;

    #[test]
    fn batches_hold_one_to_100000_statements() {
        assert_eq!(check_batch_size(0).unwrap_err().code, 16);
        assert!(check_batch_size(1).is_ok());
        assert!(check_batch_size(MAX_WRITE_BATCH).is_ok());
        let e = check_batch_size(MAX_WRITE_BATCH + 1).unwrap_err();
        assert_eq!(
            e.message,
            "Write batch sizes must be between 1 and 100000. Got 100001 operations."
        );
    }

    #[test]
    fn delete_statements_take_limit_0_or_1() {
        let vars = Document::new();
        let all = parse_delete_statement(&doc! {"q": {}, "limit": 0}, &vars, "delete.deletes");
        assert_eq!(all.unwrap().limit, None);
        let one = parse_delete_statement(&doc! {"q": {}, "limit": 1.0}, &vars, "delete.deletes");
        assert_eq!(one.unwrap().limit, Some(1));
        let bad = parse_delete_statement(&doc! {"q": {}, "limit": 2}, &vars, "delete.deletes");
        assert_eq!(bad.err().unwrap().code, codes::FAILED_TO_PARSE);
        let missing = parse_delete_statement(&doc! {"q": {}}, &vars, "delete.deletes");
        assert_eq!(
            missing.err().unwrap().message,
            "BSON field 'delete.deletes.limit' is missing but a required field"
        );
    }

    #[test]
    fn plan_executor_context_keeps_code_and_extra_fields() {
        let e = CommandError::new(codes::DUPLICATE_KEY, "E11000 duplicate key")
            .with_extra("keyValue", doc! {"_id": 1});
        let e = plan_executor_error(e);
        assert_eq!(e.code, codes::DUPLICATE_KEY);
        assert_eq!(
            e.message,
            "Plan executor error during findAndModify :: caused by :: E11000 duplicate key"
        );
        assert!(e.extra.contains_key("keyValue"));
    }

    #[test]
    fn let_values_are_expressions() {
        let vars =
            crate::query::expr::evaluate_let(&doc! {"y": {"$literal": "$x"}}, &Document::new())
                .unwrap();
        assert_eq!(vars, doc! {"y": "$x"});
    }
}
