//! Updates: operator updates (`$set`, `$inc`, `$push` with modifiers, positional `$`, `$[]`,
//! `$[<id>]` with `arrayFilters`, ...), replacements, and pipeline updates.
//!
//! Operator updates are parsed, as on the server, into a tree keyed by path component: one
//! node per field, an array node under a field followed by `$[]`/`$[<id>]`, and a modifier
//! leaf at the end of each path. Building the tree detects conflicting paths; applying it walks
//! children in the server's field order (lexicographic, numeric components numerically), which
//! is also the order in which new fields are appended.
//!
//! Errors of [`Update::parse`] are the server's parse errors, which it reports as they are.
//! Errors of [`Update::apply`] depend on the document; the server reports those prefixed with
//! "Plan executor error during <command> :: caused by :: ", which the command layer adds.

// `CommandError` is the crate-wide error type; boxing it is not this module's call.
#![allow(clippy::result_large_err)]

use crate::util::type_name;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use bson::{Bson, Document, Timestamp};

use crate::error::{CommandError, Result, codes};
use crate::query::compare::{compare, values_equal};
use crate::query::matcher::Matcher;
use crate::query::pipeline::Pipeline;

mod apply;
mod arithmetic;
mod array;
mod fields;
mod replacement;
mod tree;

use apply::*;
use arithmetic::*;
use array::*;
use fields::*;
use replacement::*;
use tree::*;

/// A parsed update.
#[derive(Debug, Clone)]
pub struct Update {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Replacement(Document),
    Modifiers {
        root: ObjNode,
        filters: BTreeMap<String, Matcher>,
    },
    Pipeline(Vec<Document>),
}

/// What an update is applied with.
#[derive(Debug, Clone, Default)]
pub struct UpdateContext<'a> {
    /// The array index the query matched, for the positional `$` operator.
    pub positional: Option<usize>,
    /// Whether this update builds the document an upsert inserts (`$setOnInsert` applies).
    pub is_insert: bool,
    /// The `let` variables, for pipeline updates.
    pub vars: Option<&'a Document>,
}

impl Update {
    /// Parses an update: a document of operators, a replacement document, or an array (a
    /// pipeline). `array_filters` are the `arrayFilters` of the statement. Errors are the
    /// server's (e.g. 9 FailedToParse "Unknown modifier: $foo", 40 ConflictingUpdateOperators).
    pub fn parse(update: &Bson, array_filters: Option<&[Document]>) -> Result<Update> {
        match update {
            Bson::Array(stages) => {
                if array_filters.is_some() {
                    return Err(CommandError::failed_to_parse(
                        "arrayFilters may not be specified for pipeline-style updates",
                    ));
                }
                let mut docs = Vec::with_capacity(stages.len());
                for stage in stages {
                    match stage {
                        Bson::Document(d) => docs.push(d.clone()),
                        other => {
                            return Err(CommandError::type_mismatch(format!(
                                "Each element of the 'pipeline' array must be an object, found {}",
                                type_name(other)
                            )));
                        }
                    }
                }
                check_pipeline_stages(&docs)?;
                Ok(Update {
                    kind: Kind::Pipeline(docs),
                })
            }
            Bson::Document(d) => {
                let is_modifier = d.keys().next().is_some_and(|k| k.starts_with('$'));
                if !is_modifier {
                    // The server accepts (and ignores) arrayFilters with a replacement.
                    return Ok(Update {
                        kind: Kind::Replacement(d.clone()),
                    });
                }
                if d.contains_key("$v") {
                    return Err(CommandError::failed_to_parse(
                        "The $v update field is only recognized internally",
                    ));
                }
                let filters = parse_array_filters(array_filters.unwrap_or(&[]))?;
                let mut used = BTreeSet::new();
                let mut root = ObjNode::default();
                for (op_name, arg) in d {
                    let Some(op) = Op::from_name(op_name) else {
                        return Err(CommandError::failed_to_parse(format!(
                            "Unknown modifier: {op_name}. Expected a valid update modifier or \
                             pipeline-style update specified as an array"
                        )));
                    };
                    let Bson::Document(fields) = arg else {
                        return Err(CommandError::failed_to_parse(format!(
                            "Modifiers operate on fields but we found type {} instead. For \
                             example: {{$mod: {{<field>: ...}}}} not {{{op_name}: {}}}",
                            type_name(arg),
                            fmt_value(arg)
                        )));
                    };
                    // Since 5.0 an empty operand (`{$set: {}}`) is accepted and changes
                    // nothing (release notes of 5.0).
                    for (path, value) in fields {
                        let parts = check_update_path(path, &filters, &mut used)?;
                        if op == Op::Rename {
                            let to = parse_rename(path, value)?;
                            let to_parts = check_update_path(&to, &filters, &mut used)?;
                            root.insert(&to_parts, &to, Leaf::RenameTo { from: path.clone() })?;
                            root.insert(&parts, path, Leaf::RenameFrom)?;
                        } else {
                            let leaf = Leaf::parse(op, path, value)?;
                            root.insert(&parts, path, leaf)?;
                        }
                    }
                }
                if let Some(unused) = filters.keys().find(|id| !used.contains(*id)) {
                    return Err(CommandError::failed_to_parse(format!(
                        "The array filter for identifier '{unused}' was not used in the update {}",
                        fmt_doc(d)
                    )));
                }
                Ok(Update {
                    kind: Kind::Modifiers { root, filters },
                })
            }
            other => Err(CommandError::failed_to_parse(format!(
                "Update argument must be either an object or an array, found {}",
                type_name(other)
            ))),
        }
    }

    /// Whether this is a replacement document (no operators).
    pub fn is_replacement(&self) -> bool {
        matches!(self.kind, Kind::Replacement(_))
    }

    /// Whether this is a pipeline update.
    pub fn is_pipeline(&self) -> bool {
        matches!(self.kind, Kind::Pipeline(_))
    }

    /// Applies the update to `doc`, returning the new document. `_id` may not change
    /// (66 ImmutableField); a replacement keeps `doc`'s `_id` first. Field order follows the
    /// server (new fields appended; `_id` first).
    pub fn apply(&self, doc: &Document, ctx: &UpdateContext<'_>) -> Result<Document> {
        self.apply_with_change(doc, ctx).map(|(d, _)| d)
    }

    /// Like [`Update::apply`], also telling whether the document really changed (the server's
    /// `nModified` counts only real changes: setting a field to the identical value, same type
    /// included, is a no-op).
    pub fn apply_with_change(
        &self,
        doc: &Document,
        ctx: &UpdateContext<'_>,
    ) -> Result<(Document, bool)> {
        let new = match &self.kind {
            Kind::Replacement(repl) => replace(doc, repl, false)?,
            Kind::Pipeline(stages) => {
                let empty = Document::new();
                let vars = ctx.vars.unwrap_or(&empty);
                let pipeline = Pipeline::parse(stages, vars)?;
                let mut out = pipeline.run_local(vec![doc.clone()])?;
                if out.len() != 1 {
                    return Err(CommandError::new(
                        codes::BAD_VALUE,
                        "Update pipeline did not produce exactly one document",
                    ));
                }
                let result = out.remove(0);
                // Top-level `$` fields are allowed in pipeline results (5.0+).
                replace(doc, &result, true)?
            }
            Kind::Modifiers { root, filters } => {
                let applier = Applier {
                    ctx,
                    original: doc,
                    filters,
                    now: bson::DateTime::now(),
                };
                let old = Bson::Document(doc.clone());
                let new = match applier.obj(root, Slot::Present(&old), "", "")? {
                    Out::Set(Bson::Document(d)) => d,
                    _ => doc.clone(),
                };
                check_new_dollar_fields(doc, &new)?;
                new
            }
        };
        // A document an upsert inserts has its `_id` first, whatever built it.
        let new = if ctx.is_insert { id_first(new) } else { new };
        if let Some(id) = new.get("_id") {
            check_id_value(id)?;
        }
        let changed = !doc_binary_equal(doc, &new);
        Ok((new, changed))
    }
}

/// The document an upsert starts from: the equality fields of its query with dotted paths
/// expanded (`{"a.b": 1, _id: 5}` → `{_id: 5, a: {b: 1}}`), `_id` first.
pub fn upsert_document(equality_fields: &Document) -> Result<Document> {
    let mut root = ObjNode::default();
    let mut used = BTreeSet::new();
    let no_filters = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::new();
    for (path, value) in equality_fields {
        if path.starts_with('$') {
            continue;
        }
        // Two equalities on one path, or on a path and its prefix, are ambiguous (54).
        for existing in &seen {
            let nested = |a: &str, b: &str| a.len() > b.len() && a.starts_with(&format!("{b}."));
            let (long, short) = if nested(existing, path) {
                (*existing, path.as_str())
            } else if nested(path, existing) {
                (path.as_str(), *existing)
            } else {
                continue;
            };
            return Err(CommandError::new(
                codes::NOT_SINGLE_VALUE_FIELD,
                format!(
                    "cannot infer query fields to set, both paths '{long}' and '{short}' are matched"
                ),
            ));
        }
        seen.push(path);
        let parts = check_update_path(path, &no_filters, &mut used)?;
        if parts
            .iter()
            .any(|p| matches!(p, Part::Positional | Part::Array(_)))
        {
            continue;
        }
        root.insert(&parts, path, Leaf::Set(value.clone()))?;
    }
    let ctx = UpdateContext {
        is_insert: true,
        ..Default::default()
    };
    let empty = Document::new();
    let applier = Applier {
        ctx: &ctx,
        original: &empty,
        filters: &no_filters,
        now: bson::DateTime::now(),
    };
    let doc = match applier.obj(&root, Slot::Present(&Bson::Document(empty.clone())), "", "")? {
        Out::Set(Bson::Document(d)) => d,
        _ => Document::new(),
    };
    Ok(id_first(doc))
}

fn id_first(mut doc: Document) -> Document {
    match doc.remove("_id") {
        Some(id) => {
            let mut with_id = Document::new();
            with_id.insert("_id", id);
            with_id.extend(doc);
            with_id
        }
        None => doc,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Unset,
    Inc,
    Mul,
    Min,
    Max,
    Rename,
    SetOnInsert,
    CurrentDate,
    Push,
    AddToSet,
    Pop,
    Pull,
    PullAll,
    Bit,
}

impl Op {
    fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "$set" => Op::Set,
            "$unset" => Op::Unset,
            "$inc" => Op::Inc,
            "$mul" => Op::Mul,
            "$min" => Op::Min,
            "$max" => Op::Max,
            "$rename" => Op::Rename,
            "$setOnInsert" => Op::SetOnInsert,
            "$currentDate" => Op::CurrentDate,
            "$push" => Op::Push,
            "$addToSet" => Op::AddToSet,
            "$pop" => Op::Pop,
            "$pull" => Op::Pull,
            "$pullAll" => Op::PullAll,
            "$bit" => Op::Bit,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Leaf {
    Set(Bson),
    SetOnInsert(Bson),
    Unset,
    Inc(Bson),
    Mul(Bson),
    Min(Bson),
    Max(Bson),
    CurrentDate {
        timestamp: bool,
    },
    Push(PushSpec),
    AddToSet(Vec<Bson>),
    Pop {
        first: bool,
    },
    Pull(Box<PullCond>),
    PullAll(Vec<Bson>),
    Bit(Vec<(BitOp, Bson)>),
    /// The destination of a `$rename`: takes the value at `from` in the original document.
    RenameTo {
        from: String,
    },
    /// The source of a `$rename`: removed when the rename happens.
    RenameFrom,
}

/// How many nulls the server pads an array with at most when setting past its end.
const MAX_PADDING: usize = 1_500_000;
/// 10 CannotBackfillArray (not in `codes`).
const CANNOT_BACKFILL_ARRAY: i32 = 10;

/// The key under which wrapped `$pull` conditions match values.
const WRAP: &str = "__update_element";

impl Leaf {
    fn parse(op: Op, path: &str, value: &Bson) -> Result<Leaf> {
        Ok(match op {
            Op::Set => Leaf::Set(value.clone()),
            Op::SetOnInsert => Leaf::SetOnInsert(value.clone()),
            Op::Unset => Leaf::Unset,
            Op::Inc | Op::Mul => {
                if !is_number(value) {
                    let verb = if op == Op::Inc {
                        "increment"
                    } else {
                        "multiply"
                    };
                    return Err(CommandError::type_mismatch(format!(
                        "Cannot {verb} with non-numeric argument: {{{}}}",
                        fmt_elem(path, value)
                    )));
                }
                if op == Op::Inc {
                    Leaf::Inc(value.clone())
                } else {
                    Leaf::Mul(value.clone())
                }
            }
            Op::Min => Leaf::Min(value.clone()),
            Op::Max => Leaf::Max(value.clone()),
            Op::CurrentDate => parse_current_date(value)?,
            Op::Push => Leaf::Push(parse_push(value)?),
            Op::AddToSet => Leaf::AddToSet(parse_add_to_set(value)?),
            Op::Pop => {
                let n = parse_integer(path, value).map_err(CommandError::failed_to_parse)?;
                if n != 1 && n != -1 {
                    return Err(CommandError::failed_to_parse(format!(
                        "$pop expects 1 or -1, found: {n}"
                    )));
                }
                Leaf::Pop { first: n < 0 }
            }
            Op::Pull => Leaf::Pull(Box::new(parse_pull(value)?)),
            Op::PullAll => match value {
                Bson::Array(a) => Leaf::PullAll(a.clone()),
                other => {
                    return Err(CommandError::bad_value(format!(
                        "$pullAll requires an array argument but was given a {}",
                        type_name(other)
                    )));
                }
            },
            Op::Bit => Leaf::Bit(parse_bit(value)?),
            Op::Rename => Leaf::RenameFrom,
        })
    }

    /// Whether the operator creates a missing path (`$unset`, `$pop`, `$pull` do not).
    fn creates(&self) -> bool {
        !matches!(
            self,
            Leaf::Unset | Leaf::Pop { .. } | Leaf::Pull(_) | Leaf::PullAll(_) | Leaf::RenameFrom
        )
    }
}

/// An integral number as the server's `parseIntegerElementToLong` reads it; the error is its
/// (FailedToParse) message.
fn parse_integer(name: &str, v: &Bson) -> std::result::Result<i64, String> {
    match v {
        Bson::Int32(i) => Ok(i64::from(*i)),
        Bson::Int64(i) => Ok(*i),
        Bson::Double(_) | Bson::Decimal128(_) => {
            let d = as_f64(v).unwrap_or(f64::NAN);
            if d.is_nan() {
                Err(format!(
                    "Expected an integer, but found NaN in: {}",
                    fmt_elem(name, v)
                ))
            } else if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&d) {
                Err(format!(
                    "Cannot represent as a 64-bit integer: {}",
                    fmt_elem(name, v)
                ))
            } else if d.fract() != 0.0 {
                Err(format!("Expected an integer: {}", fmt_elem(name, v)))
            } else {
                Ok(d as i64)
            }
        }
        _ => Err(format!("Expected a number in: {}", fmt_elem(name, v))),
    }
}

/// Operators that take a path (`{$gt: ..}`), as opposed to `$and`/`$or`/`$expr`.
fn is_path_operator(name: &str) -> bool {
    matches!(
        name,
        "$eq"
            | "$ne"
            | "$gt"
            | "$gte"
            | "$lt"
            | "$lte"
            | "$in"
            | "$nin"
            | "$exists"
            | "$type"
            | "$mod"
            | "$regex"
            | "$options"
            | "$size"
            | "$all"
            | "$elemMatch"
            | "$not"
            | "$bitsAllSet"
            | "$bitsAllClear"
            | "$bitsAnySet"
            | "$bitsAnyClear"
            | "$geoWithin"
            | "$geoIntersects"
            | "$near"
            | "$nearSphere"
            | "$within"
    )
}

/// One component of an update path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Field(String),
    /// `$`.
    Positional,
    /// `$[]` (empty identifier) or `$[<id>]`.
    Array(String),
}

fn check_update_path(
    path: &str,
    filters: &BTreeMap<String, Matcher>,
    used: &mut BTreeSet<String>,
) -> Result<Vec<Part>> {
    if path.is_empty() {
        return Err(CommandError::new(
            codes::EMPTY_FIELD_NAME,
            "An empty update path is not valid.",
        ));
    }
    let mut parts = Vec::new();
    let mut positional = 0;
    for (i, p) in path.split('.').enumerate() {
        if p.is_empty() {
            return Err(CommandError::new(
                codes::EMPTY_FIELD_NAME,
                format!(
                    "The update path '{path}' contains an empty field name, which is not allowed."
                ),
            ));
        }
        if p == "$" {
            positional += 1;
            if i == 0 {
                return Err(CommandError::bad_value(format!(
                    "Cannot have positional (i.e. '$') element in the first position in path \
                     '{path}'"
                )));
            }
            parts.push(Part::Positional);
        } else if let Some(id) = p.strip_prefix("$[").and_then(|r| r.strip_suffix(']')) {
            if i == 0 {
                return Err(CommandError::bad_value(format!(
                    "Cannot have array filter identifier (i.e. '$[<id>]') element in the first \
                     position in path '{path}'"
                )));
            }
            if !id.is_empty() {
                if !filters.contains_key(id) {
                    return Err(CommandError::bad_value(format!(
                        "No array filter found for identifier '{id}' in path '{path}'"
                    )));
                }
                used.insert(id.to_string());
            }
            parts.push(Part::Array(id.to_string()));
        } else {
            parts.push(Part::Field(p.to_string()));
        }
    }
    if positional > 1 {
        return Err(CommandError::bad_value(format!(
            "Too many positional (i.e. '$') elements found in path '{path}'"
        )));
    }
    Ok(parts)
}

/// Parses `arrayFilters`: each is a query on one identifier (`{"i.b": 1}`, `{e: {$gt: 1}}`),
/// matched against `{<identifier>: element}`.
fn parse_array_filters(filters: &[Document]) -> Result<BTreeMap<String, Matcher>> {
    let mut out = BTreeMap::new();
    let empty = Document::new();
    for filter in filters {
        // The filter is parsed as a query first, so its own errors come first.
        let matcher = Matcher::new(filter, &empty)?;
        let mut ids = Vec::new();
        collect_filter_ids(filter, &mut ids)?;
        let Some(id) = ids.first().cloned() else {
            return Err(CommandError::failed_to_parse(
                "Cannot use an expression without a top-level field name in arrayFilters",
            ));
        };
        if let Some(other) = ids.get(1) {
            return Err(CommandError::failed_to_parse(format!(
                "Error parsing array filter :: caused by :: Expected a single top-level field \
                 name, found '{id}' and '{other}'"
            )));
        }
        let valid = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(CommandError::bad_value(format!(
                "Error parsing array filter :: caused by :: The top-level field name must be an \
                 alphanumeric string beginning with a lowercase letter, found '{id}'"
            )));
        }
        if out.contains_key(&id) {
            return Err(CommandError::failed_to_parse(format!(
                "Found multiple array filters with the same top-level field name {id}"
            )));
        }
        out.insert(id, matcher);
    }
    Ok(out)
}

/// The distinct top-level identifiers of an array filter, in order of appearance (through
/// `$and`/`$or`/`$nor`).
fn collect_filter_ids(filter: &Document, ids: &mut Vec<String>) -> Result<()> {
    for (k, v) in filter {
        if matches!(k.as_str(), "$and" | "$or" | "$nor") {
            if let Bson::Array(items) = v {
                for item in items {
                    if let Bson::Document(d) = item {
                        collect_filter_ids(d, ids)?;
                    }
                }
            }
        } else if k.starts_with('$') {
            return Err(CommandError::failed_to_parse(
                "Cannot use an expression without a top-level field name in arrayFilters",
            ));
        } else {
            let first = k.split('.').next().unwrap_or_default().to_string();
            if !ids.contains(&first) {
                ids.push(first);
            }
        }
    }
    Ok(())
}

/// The server parses the whole pipeline first (so a malformed or unknown stage reports its own
/// error), then rejects stages an update may not use with 72 InvalidOptions.
fn check_pipeline_stages(stages: &[Document]) -> Result<()> {
    const ALLOWED: &[&str] = &[
        "$addFields",
        "$set",
        "$project",
        "$unset",
        "$replaceRoot",
        "$replaceWith",
    ];
    // `let` variables are only known when applying, and only evaluation reads them.
    Pipeline::parse(stages, &Document::new())?;
    for stage in stages {
        let name = stage.keys().next().cloned().unwrap_or_default();
        if !ALLOWED.contains(&name.as_str()) {
            return Err(CommandError::invalid_options(format!(
                "{name} is not allowed to be used within an update"
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The update tree
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
