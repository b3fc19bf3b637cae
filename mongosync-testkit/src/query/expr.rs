//! Aggregation expressions (`$add`, `$cond`, `$getField`, `$$ROOT`, ...), used by `$expr`,
//! pipeline stages, pipeline updates and find projections.

use bson::{Bson, Document};

use crate::error::Result;

/// Evaluates an aggregation expression against `root` (the current document, `$$ROOT` and
/// `$$CURRENT`) with the user variables `vars` (from `let`; names without `$$`).
///
/// `Ok(None)` is a missing value (a missing field path, `$$REMOVE`); it differs from
/// `Bson::Null` where the server distinguishes them (e.g. `$project` omits missing fields).
pub fn evaluate(expr: &Bson, root: &Document, vars: &Document) -> Result<Option<Bson>> {
    let _ = (expr, root, vars);
    todo!("expressions")
}

/// Whether a value is true under the server's boolean conversion (`$cond`, `$expr`, `$and`):
/// false, null, missing, undefined and numeric zero are false; everything else is true.
pub fn truthy(value: Option<&Bson>) -> bool {
    let _ = value;
    todo!("expressions")
}
