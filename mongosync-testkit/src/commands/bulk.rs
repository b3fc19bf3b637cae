//! `bulkWrite` (MongoDB 8.0): inserts, updates and deletes across namespaces in one command,
//! run on the `admin` database. Each op runs as one statement of the ordinary write commands
//! (shared with `insert`/`update`/`delete` in `write.rs`); the per-op results come back in a
//! cursor (`admin.$cmd.bulkWrite`) with summary counts beside it.
#![allow(clippy::result_large_err)]

use bson::{Bson, Document, RawDocumentBuf, doc};

use super::write::{
    INVALID_LENGTH, StatementTarget, check_batch_size, command_vars, delete_statement,
    insert_statement, parse_delete_statement, parse_update_statement, update_statement,
};
use super::{Ctx, Reply, support};
use crate::error::{CommandError, Result, codes};
use crate::storage::catalog::Namespace;

const FIELDS: &[&str] = &[
    "ops",
    "nsInfo",
    "cursor",
    "bypassDocumentValidation",
    "ordered",
    "stmtId",
    "stmtIds",
    "let",
    "errorsOnly",
    "bypassEmptyTsReplacement",
    "rawData",
];
const NS_INFO_FIELDS: &[&str] = &[
    "ns",
    "collectionUUID",
    "encryptionInformation",
    "isTimeseriesNamespace",
    "shardVersion",
    "databaseVersion",
];
const INSERT_FIELDS: &[&str] = &["insert", "document"];
const UPDATE_FIELDS: &[&str] = &[
    "update",
    "filter",
    "sort",
    "multi",
    "updateMods",
    "upsert",
    "upsertSupplied",
    "arrayFilters",
    "hint",
    "constants",
    "collation",
    "sampleId",
    "$_allowShardKeyUpdatesWithoutFullShardKeyInQuery",
];
const DELETE_FIELDS: &[&str] = &["delete", "filter", "multi", "hint", "collation", "sampleId"];

/// One op of the request, checked for shape (the server's IDL parse: errors here fail the
/// whole command, before anything runs).
enum Op {
    Insert {
        ns: usize,
        document: RawDocumentBuf,
    },
    /// The op translated to an `update` statement (`{q, u, multi, ...}`).
    Update {
        ns: usize,
        statement: Document,
    },
    /// The op translated to a `delete` statement (`{q, limit, ...}`).
    Delete {
        ns: usize,
        statement: Document,
    },
}

impl Op {
    fn ns(&self) -> usize {
        match self {
            Op::Insert { ns, .. } | Op::Update { ns, .. } | Op::Delete { ns, .. } => *ns,
        }
    }
}

/// The running totals of the reply.
#[derive(Default)]
struct Summary {
    errors: i32,
    inserted: i32,
    matched: i32,
    modified: i32,
    upserted: i32,
    deleted: i32,
}

impl Summary {
    /// Counts the result `item` of `op` (as `run_op` returned it) again.
    fn count(&mut self, op: &Op, item: &Document) {
        let n = item.get_i32("n").unwrap_or(0);
        match op {
            Op::Insert { .. } => self.inserted += 1,
            Op::Update { .. } => {
                self.modified += item.get_i32("nModified").unwrap_or(0);
                if item.contains_key("upserted") {
                    self.upserted += 1;
                } else {
                    self.matched += n;
                }
            }
            Op::Delete { .. } => self.deleted += n,
        }
    }
}

pub fn bulk_write(ctx: &mut Ctx<'_>) -> Result<Reply> {
    // `adminOnly()` commands are refused elsewhere by the command dispatcher with Unauthorized.
    if ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "bulkWrite may only be run against the admin database.",
        ));
    }
    ctx.check_fields(FIELDS)?;
    let ordered = ctx.opt_bool("ordered")?.unwrap_or(true);
    let bypass = ctx.opt_bool("bypassDocumentValidation")?.unwrap_or(false);
    let errors_only = ctx.opt_bool("errorsOnly")?.unwrap_or(false);
    let vars = command_vars(ctx)?;
    let batch_size = cursor_batch_size(ctx)?;
    let namespaces = parse_ns_info(required_array(ctx, "nsInfo")?)?;
    let ops = required_array(ctx, "ops")?
        .iter()
        .map(parse_op)
        .collect::<Result<Vec<Op>>>()?;
    check_batch_size(ops.len())?;
    check_stmt_ids(ctx, ops.len())?;
    for (i, op) in ops.iter().enumerate() {
        if op.ns() >= namespaces.len() {
            return Err(CommandError::bad_value(format!(
                "BulkWrite ops entry {} has an invalid nsInfo index.",
                op_description(ctx, i)
            )));
        }
    }

    let mut summary = Summary::default();
    let mut items: Vec<Document> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let (db, coll) = &namespaces[op.ns()];
        // Executed by an earlier attempt of this retryable write: its result, not redone.
        let result = match crate::session::executed_statement(i) {
            Some(item) => {
                summary.count(op, &item);
                Ok(item)
            }
            None => run_op(ctx, db, coll, op, &vars, bypass, &mut summary).inspect(|item| {
                crate::session::record_statement(i, item.clone());
            }),
        };
        match result {
            Ok(item) => {
                if !errors_only {
                    let mut full = doc! {"ok": 1.0, "idx": i as i32};
                    full.extend(item);
                    items.push(full);
                }
            }
            Err(e) => {
                summary.errors += 1;
                let mut item =
                    doc! {"ok": 0.0, "idx": i as i32, "code": e.code, "errmsg": e.message.clone()};
                item.extend(e.extra.clone());
                item.insert("n", 0);
                if matches!(op, Op::Update { .. }) {
                    item.insert("nModified", 0);
                }
                items.push(item);
                if ordered {
                    break;
                }
            }
        }
    }

    // An unacknowledged bulkWrite gets the simplest reply: no per-op results.
    if is_unacknowledged(ctx) {
        items.clear();
    }
    let raws = items
        .iter()
        .map(support::encode)
        .collect::<Result<Vec<_>>>()?;
    let cursor =
        super::read::cursor_over(ctx, "admin.$cmd.bulkWrite".to_string(), raws, batch_size);
    let mut reply = match cursor {
        Reply::Doc(d) => d,
        Reply::Raw(r) => crate::wire::to_document(&r)
            .map_err(|e| CommandError::new(codes::INTERNAL_ERROR, e.to_string()))?,
        Reply::CloseConnection => return Ok(Reply::CloseConnection),
    };
    reply.insert("nErrors", summary.errors);
    reply.insert("nInserted", summary.inserted);
    reply.insert("nMatched", summary.matched);
    reply.insert("nModified", summary.modified);
    reply.insert("nUpserted", summary.upserted);
    reply.insert("nDeleted", summary.deleted);
    Ok(Reply::Doc(reply))
}

/// Runs one op; returns the fields of its result item after `ok` and `idx`.
fn run_op(
    ctx: &Ctx<'_>,
    db: &str,
    coll: &str,
    op: &Op,
    vars: &Document,
    bypass: bool,
    summary: &mut Summary,
) -> Result<Document> {
    crate::storage::catalog::validate_collection_name(db, coll)?;
    refuse_view(ctx, db, coll)?;
    let mut target = StatementTarget::new(ctx, db, coll);
    match op {
        Op::Insert { document, .. } => {
            let collection = target.for_write()?;
            let mut data = collection.write();
            insert_statement(&mut data, document, bypass)?;
            summary.inserted += 1;
            Ok(doc! {"n": 1})
        }
        Op::Update { statement, .. } => {
            let stmt = parse_update_statement(statement, vars, "bulkWrite.ops")?;
            let out = update_statement(&mut target, &stmt, vars, bypass)?;
            summary.modified += out.modified as i32;
            match out.upserted {
                Some(id) => {
                    summary.upserted += 1;
                    Ok(doc! {"n": 1, "nModified": out.modified as i32, "upserted": {"_id": id}})
                }
                None => {
                    summary.matched += out.matched as i32;
                    Ok(doc! {"n": out.matched as i32, "nModified": out.modified as i32})
                }
            }
        }
        Op::Delete { statement, .. } => {
            let stmt = parse_delete_statement(statement, vars, "bulkWrite.ops")?;
            let n = delete_statement(&target, &stmt)?;
            summary.deleted += n as i32;
            Ok(doc! {"n": n as i32})
        }
    }
}

/// Writes to a view fail per op, as the ordinary write commands fail on one.
fn refuse_view(ctx: &Ctx<'_>, db: &str, coll: &str) -> Result<()> {
    if let Some(Namespace::View(_)) = ctx.server.catalog.lookup(db, coll) {
        return Err(CommandError::new(
            codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
            format!("Namespace {db}.{coll} is a view, not a collection"),
        ));
    }
    Ok(())
}

fn required_array<'a>(ctx: &'a Ctx<'_>, field: &str) -> Result<&'a Vec<Bson>> {
    match ctx.body.get(field) {
        Some(Bson::Array(a)) => Ok(a),
        Some(other) => Err(CommandError::wrong_field_type(
            "bulkWrite",
            field,
            crate::util::type_name(other),
            &["array"],
        )),
        None => Err(CommandError::missing_field("bulkWrite", field)),
    }
}

/// `nsInfo` entries as `(db, coll)`.
fn parse_ns_info(entries: &[Bson]) -> Result<Vec<(String, String)>> {
    entries
        .iter()
        .map(|entry| {
            let Bson::Document(entry) = entry else {
                return Err(CommandError::wrong_field_type(
                    "bulkWrite",
                    "nsInfo",
                    crate::util::type_name(entry),
                    &["object"],
                ));
            };
            for key in entry.keys() {
                if !NS_INFO_FIELDS.contains(&key.as_str()) {
                    return Err(CommandError::unknown_field("bulkWrite.nsInfo", key));
                }
            }
            let ns = match entry.get("ns") {
                Some(Bson::String(s)) => s,
                Some(other) => {
                    return Err(CommandError::wrong_field_type(
                        "bulkWrite.nsInfo",
                        "ns",
                        crate::util::type_name(other),
                        &["string"],
                    ));
                }
                None => return Err(CommandError::missing_field("bulkWrite.nsInfo", "ns")),
            };
            let invalid = || {
                CommandError::invalid_namespace(format!(
                    "Invalid namespace specified for bulkWrite: '{ns}'"
                ))
            };
            let (db, coll) = ns.split_once('.').ok_or_else(invalid)?;
            if coll.is_empty() || crate::storage::catalog::validate_db_name(db).is_err() {
                return Err(invalid());
            }
            Ok((db.to_string(), coll.to_string()))
        })
        .collect()
}

/// The namespace index of an op (`safeInt`, at least 0).
fn ns_index(op: &Document, field: &str) -> Result<usize> {
    let value = op.get(field).unwrap_or(&Bson::Null);
    let index = match value {
        Bson::Int32(i) => *i as i64,
        Bson::Int64(i) => *i,
        Bson::Double(d) if d.fract() == 0.0 && d.is_finite() => *d as i64,
        other => {
            return Err(CommandError::wrong_field_type(
                "bulkWrite.ops",
                field,
                crate::util::type_name(other),
                &["int", "long", "double"],
            ));
        }
    };
    if index < 0 {
        return Err(CommandError::new(
            51024,
            format!("BSON field '{field}' value must be >= 0, actual value '{index}'"),
        ));
    }
    Ok(index as usize)
}

fn check_op_fields(op: &Document, allowed: &[&str]) -> Result<()> {
    for key in op.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(CommandError::unknown_field("bulkWrite.ops", key));
        }
    }
    Ok(())
}

fn op_doc<'a>(op: &'a Document, field: &str) -> Result<&'a Document> {
    match op.get(field) {
        Some(Bson::Document(d)) => Ok(d),
        Some(other) => Err(CommandError::wrong_field_type(
            "bulkWrite.ops",
            field,
            crate::util::type_name(other),
            &["object"],
        )),
        None => Err(CommandError::missing_field("bulkWrite.ops", field)),
    }
}

fn op_bool(op: &Document, field: &str) -> Result<bool> {
    match op.get(field) {
        None => Ok(false),
        Some(Bson::Boolean(b)) => Ok(*b),
        Some(v) if crate::util::is_number(v) => Ok(crate::util::as_f64(v) != Some(0.0)),
        Some(other) => Err(CommandError::wrong_field_type(
            "bulkWrite.ops",
            field,
            crate::util::type_name(other),
            &["bool"],
        )),
    }
}

/// Parses one `ops` entry; its first field (`insert`, `update` or `delete`) tells its kind.
fn parse_op(entry: &Bson) -> Result<Op> {
    let Bson::Document(op) = entry else {
        return Err(CommandError::wrong_field_type(
            "bulkWrite",
            "ops",
            crate::util::type_name(entry),
            &["object"],
        ));
    };
    let kind = op.keys().next().map(String::as_str).unwrap_or("");
    match kind {
        "insert" => {
            check_op_fields(op, INSERT_FIELDS)?;
            let ns = ns_index(op, "insert")?;
            let document = support::encode(op_doc(op, "document")?)?;
            Ok(Op::Insert { ns, document })
        }
        "update" => {
            check_op_fields(op, UPDATE_FIELDS)?;
            let ns = ns_index(op, "update")?;
            let mut statement = doc! {"q": op_doc(op, "filter")?.clone()};
            match op.get("updateMods") {
                Some(u @ (Bson::Document(_) | Bson::Array(_))) => {
                    statement.insert("u", u.clone());
                }
                Some(other) => {
                    return Err(CommandError::type_mismatch(format!(
                        "Update argument must be either an object or an array, got {}",
                        crate::util::type_name(other)
                    )));
                }
                None => return Err(CommandError::missing_field("bulkWrite.ops", "updateMods")),
            }
            statement.insert("multi", op_bool(op, "multi")?);
            statement.insert("upsert", op_bool(op, "upsert")?);
            for (from, to) in [
                ("arrayFilters", "arrayFilters"),
                ("hint", "hint"),
                ("collation", "collation"),
                ("sort", "sort"),
                ("constants", "c"),
            ] {
                if let Some(v) = op.get(from) {
                    statement.insert(to, v.clone());
                }
            }
            Ok(Op::Update { ns, statement })
        }
        "delete" => {
            check_op_fields(op, DELETE_FIELDS)?;
            let ns = ns_index(op, "delete")?;
            let mut statement = doc! {
                "q": op_doc(op, "filter")?.clone(),
                "limit": if op_bool(op, "multi")? { 0 } else { 1 },
            };
            for field in ["hint", "collation"] {
                if let Some(v) = op.get(field) {
                    statement.insert(field, v.clone());
                }
            }
            Ok(Op::Delete { ns, statement })
        }
        "" => Err(CommandError::failed_to_parse(
            "BulkWrite ops entry must not be empty",
        )),
        other => Err(CommandError::unknown_field("bulkWrite.ops", other)),
    }
}

/// The op as the server prints it in errors (its document as sent).
fn op_description(ctx: &Ctx<'_>, i: usize) -> String {
    match ctx.body.get_array("ops").ok().and_then(|ops| ops.get(i)) {
        Some(op) => op.to_string(),
        None => String::new(),
    }
}

/// `stmtId` and `stmtIds` exclude each other; `stmtIds` has one entry per op.
fn check_stmt_ids(ctx: &Ctx<'_>, n_ops: usize) -> Result<()> {
    let ids = ctx.body.get("stmtIds");
    if ctx.body.contains_key("stmtId") && ids.is_some() {
        return Err(CommandError::invalid_options(
            "May not specify both stmtId and stmtIds in bulkWrite command.",
        ));
    }
    if let Some(Bson::Array(ids)) = ids
        && ids.len() != n_ops
    {
        return Err(CommandError::new(
            INVALID_LENGTH,
            format!(
                "Number of statement ids must match the number of batch entries. Got {} statement ids but {n_ops} operations.",
                ids.len()
            ),
        ));
    }
    Ok(())
}

/// `cursor: {batchSize}`: how many results go in the first batch (the rest stay in a cursor).
fn cursor_batch_size(ctx: &Ctx<'_>) -> Result<Option<usize>> {
    let Some(cursor) = ctx.opt_doc("cursor")? else {
        return Ok(None);
    };
    match cursor.get("batchSize") {
        None => Ok(None),
        Some(v) if crate::util::is_number(v) => {
            let n = crate::util::as_f64(v).unwrap_or(0.0);
            if n < 0.0 {
                return Err(CommandError::new(
                    51024,
                    format!("BSON field 'batchSize' value must be >= 0, actual value '{n}'"),
                ));
            }
            Ok(Some(n as usize))
        }
        Some(other) => Err(CommandError::wrong_field_type(
            "bulkWrite.cursor",
            "batchSize",
            crate::util::type_name(other),
            &["long", "int", "decimal", "double"],
        )),
    }
}

/// `writeConcern: {w: 0}` (without `j`).
fn is_unacknowledged(ctx: &Ctx<'_>) -> bool {
    let Ok(wc) = ctx.body.get_document("writeConcern") else {
        return false;
    };
    let w_zero = wc
        .get("w")
        .is_some_and(|w| crate::util::is_number(w) && crate::util::as_f64(w) == Some(0.0));
    w_zero && !wc.get_bool("j").unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_info_splits_at_the_first_dot() {
        let parsed = parse_ns_info(&[Bson::Document(doc! {"ns": "db.a.b"})]).unwrap();
        assert_eq!(parsed, vec![("db".to_string(), "a.b".to_string())]);
        for bad in ["nodot", "db.", ".coll", "d b.c"] {
            let e = parse_ns_info(&[Bson::Document(doc! {"ns": bad})]).unwrap_err();
            assert_eq!(e.code, codes::INVALID_NAMESPACE, "{bad}");
        }
        let e = parse_ns_info(&[Bson::Document(doc! {"ns": "db.c", "x": 1})]).unwrap_err();
        assert_eq!(e.code, codes::IDL_UNKNOWN_FIELD);
    }

    #[test]
    fn ops_translate_to_write_statements() {
        let op = parse_op(&Bson::Document(doc! {
            "update": 1, "filter": {"a": 1}, "updateMods": {"$set": {"b": 1}},
            "multi": true, "constants": {"x": 1}, "sort": {"a": 1},
        }))
        .unwrap();
        let Op::Update { ns, statement } = op else {
            panic!("an update")
        };
        assert_eq!(ns, 1);
        assert_eq!(
            statement,
            doc! {"q": {"a": 1}, "u": {"$set": {"b": 1}}, "multi": true, "upsert": false,
            "sort": {"a": 1}, "c": {"x": 1}}
        );
        let Op::Delete { statement, .. } =
            parse_op(&Bson::Document(doc! {"delete": 0, "filter": {}})).unwrap()
        else {
            panic!("a delete")
        };
        // `multi` defaults to false: one document.
        assert_eq!(statement, doc! {"q": {}, "limit": 1});
    }

    #[test]
    fn malformed_ops_fail_the_whole_command() {
        let cases = [
            (doc! {"insert": -1, "document": {}}, 51024),
            (doc! {"insert": "0", "document": {}}, codes::TYPE_MISMATCH),
            (doc! {"insert": 0}, codes::IDL_MISSING_FIELD),
            (
                doc! {"delete": 0, "filter": {}, "limit": 1},
                codes::IDL_UNKNOWN_FIELD,
            ),
            (doc! {"update": 0, "filter": {}}, codes::IDL_MISSING_FIELD),
            (doc! {"replace": 0, "filter": {}}, codes::IDL_UNKNOWN_FIELD),
        ];
        for (op, code) in cases {
            let e = parse_op(&Bson::Document(op.clone())).err().unwrap();
            assert_eq!(e.code, code, "{op}");
        }
    }
}
