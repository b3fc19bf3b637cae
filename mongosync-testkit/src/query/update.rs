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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone)]
enum SortSpec {
    /// Sort whole elements: 1 or -1.
    Whole(bool),
    /// Sort by fields of document elements: (path, ascending).
    Fields(Vec<(String, bool)>),
}

#[derive(Debug, Clone)]
struct PushSpec {
    each: Vec<Bson>,
    position: Option<i64>,
    slice: Option<i64>,
    sort: Option<SortSpec>,
}

#[derive(Debug, Clone)]
enum PullCond {
    /// A plain value: elements equal to it.
    Equal(Bson),
    /// A query on document elements (`{b: 1}`): matched as a filter; other elements never match.
    Object(Matcher),
    /// Conditions on the element itself (`{$gte: 6}`, a regex): matched through a wrapper.
    Wrapped(Matcher),
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

fn parse_current_date(value: &Bson) -> Result<Leaf> {
    match value {
        Bson::Boolean(_) => Ok(Leaf::CurrentDate { timestamp: false }),
        Bson::Document(d) => {
            let mut timestamp = None;
            for (k, v) in d {
                if k != "$type" {
                    return Err(CommandError::bad_value(format!(
                        "Unrecognized $currentDate option: {k}"
                    )));
                }
                match v {
                    Bson::String(s) if s == "date" => timestamp = Some(false),
                    Bson::String(s) if s == "timestamp" => timestamp = Some(true),
                    _ => {}
                }
            }
            match timestamp {
                Some(timestamp) => Ok(Leaf::CurrentDate { timestamp }),
                None => Err(CommandError::bad_value(
                    "The '$type' string field is required to be 'date' or 'timestamp': \
                     {$currentDate: {field : {$type: 'date'}}}",
                )),
            }
        }
        other => Err(CommandError::bad_value(format!(
            "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type \
             expression ({{$type: 'timestamp/date'}}).",
            type_name(other)
        ))),
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

fn parse_push(value: &Bson) -> Result<PushSpec> {
    let mut spec = PushSpec {
        each: vec![value.clone()],
        position: None,
        slice: None,
        sort: None,
    };
    let Bson::Document(d) = value else {
        return Ok(spec);
    };
    if !d.contains_key("$each") {
        return Ok(spec);
    }
    for (k, v) in d {
        match k.as_str() {
            "$each" => match v {
                Bson::Array(a) => spec.each = a.clone(),
                other => {
                    return Err(CommandError::bad_value(format!(
                        "The argument to $each in $push must be an array but it was of type: {}",
                        type_name(other)
                    )));
                }
            },
            "$slice" => match parse_integer(k, v) {
                Ok(n) => spec.slice = Some(n),
                Err(_) => {
                    return Err(CommandError::bad_value(format!(
                        "The value for $slice must be an integer value but was given type: {}",
                        type_name(v)
                    )));
                }
            },
            "$position" => match parse_integer(k, v) {
                Ok(n) => spec.position = Some(n),
                Err(_) => {
                    return Err(CommandError::bad_value(format!(
                        "The value for $position must be an integer value, not of type: {}",
                        type_name(v)
                    )));
                }
            },
            "$sort" => spec.sort = Some(parse_push_sort(v)?),
            other => {
                return Err(CommandError::bad_value(format!(
                    "Unrecognized clause in $push: {other}"
                )));
            }
        }
    }
    Ok(spec)
}

fn sort_direction(v: &Bson) -> Option<bool> {
    match as_f64(v) {
        Some(1.0) => Some(true),
        Some(-1.0) => Some(false),
        _ => None,
    }
}

fn parse_push_sort(v: &Bson) -> Result<SortSpec> {
    let bad_direction =
        || CommandError::bad_value("The $sort element value must be either 1 or -1");
    match v {
        Bson::Document(d) => {
            if d.is_empty() {
                return Err(CommandError::bad_value(
                    "The $sort pattern is empty when it should be a set of fields.",
                ));
            }
            let mut fields = Vec::new();
            for (k, dir) in d {
                let Some(asc) = sort_direction(dir) else {
                    return Err(bad_direction());
                };
                if k.is_empty() {
                    return Err(CommandError::bad_value("The $sort field cannot be empty"));
                }
                if k.split('.').any(str::is_empty) {
                    return Err(CommandError::bad_value(format!(
                        "The $sort field is a dotted field but has an empty part: {k}"
                    )));
                }
                fields.push((k.clone(), asc));
            }
            Ok(SortSpec::Fields(fields))
        }
        other if is_number(other) => match sort_direction(other) {
            Some(asc) => Ok(SortSpec::Whole(asc)),
            None => Err(bad_direction()),
        },
        _ => Err(CommandError::bad_value(
            "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort \
             embedded fields",
        )),
    }
}

fn parse_add_to_set(value: &Bson) -> Result<Vec<Bson>> {
    let mut values = match value {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k == "$each") => {
            match d.get("$each") {
                Some(Bson::Array(a)) => {
                    if d.len() > 1 {
                        return Err(CommandError::bad_value(format!(
                            "Found unexpected fields after $each in $addToSet: {}",
                            fmt_doc(d)
                        )));
                    }
                    a.clone()
                }
                other => {
                    return Err(CommandError::type_mismatch(format!(
                        "The argument to $each in $addToSet must be an array but it was of type \
                         {}",
                        type_name(other.unwrap_or(&Bson::Null))
                    )));
                }
            }
        }
        other => vec![other.clone()],
    };
    // The values themselves are deduplicated first, keeping the first of equal values.
    let mut unique: Vec<Bson> = Vec::new();
    for v in values.drain(..) {
        if !unique.iter().any(|u| values_equal(u, &v)) {
            unique.push(v);
        }
    }
    Ok(unique)
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

fn parse_pull(value: &Bson) -> Result<PullCond> {
    let empty = Document::new();
    match value {
        Bson::Document(d) if !d.keys().next().is_some_and(|k| is_path_operator(k)) => {
            Ok(PullCond::Object(Matcher::new(d, &empty)?))
        }
        Bson::Document(_) | Bson::RegularExpression(_) => {
            let mut filter = Document::new();
            filter.insert(WRAP, value.clone());
            Ok(PullCond::Wrapped(Matcher::new(&filter, &empty)?))
        }
        other => Ok(PullCond::Equal(other.clone())),
    }
}

fn parse_bit(value: &Bson) -> Result<Vec<(BitOp, Bson)>> {
    let Bson::Document(d) = value else {
        return Err(CommandError::bad_value(format!(
            "The $bit modifier is not compatible with a {}. You must pass in an embedded \
             document: {{$bit: {{field: {{and/or/xor: #}}}}",
            type_name(value)
        )));
    };
    if d.is_empty() {
        return Err(CommandError::bad_value(
            "You must pass in at least one bitwise operation. The format is: {$bit: {field: \
             {and/or/xor: #}}",
        ));
    }
    let mut ops = Vec::new();
    for (k, v) in d {
        let op = match k.as_str() {
            "and" => BitOp::And,
            "or" => BitOp::Or,
            "xor" => BitOp::Xor,
            other => {
                return Err(CommandError::bad_value(format!(
                    "The $bit modifier only supports 'and', 'or', and 'xor', not '{other}' which \
                     is an unknown operator: {{{}}}",
                    fmt_elem(k, v)
                )));
            }
        };
        if !matches!(v, Bson::Int32(_) | Bson::Int64(_)) {
            return Err(CommandError::bad_value(format!(
                "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported \
                 here: {{{}}}",
                type_name(v),
                fmt_elem(k, v)
            )));
        }
        ops.push((op, v.clone()));
    }
    Ok(ops)
}

fn parse_rename(from: &str, to: &Bson) -> Result<String> {
    let Bson::String(to) = to else {
        return Err(CommandError::bad_value(format!(
            "The 'to' field for $rename must be a string: {}",
            fmt_elem(from, to)
        )));
    };
    let elem = fmt_elem(from, &Bson::String(to.clone()));
    if from == to {
        return Err(CommandError::bad_value(format!(
            "The source and target field for $rename must differ: {elem}"
        )));
    }
    if to.starts_with(&format!("{from}.")) || from.starts_with(&format!("{to}.")) {
        return Err(CommandError::bad_value(format!(
            "The source and target field for $rename must not be on the same path: {elem}"
        )));
    }
    if from.split('.').any(|p| p.starts_with('$')) {
        return Err(CommandError::bad_value(format!(
            "The source field for $rename may not be dynamic: {from}"
        )));
    }
    if to.split('.').any(|p| p.starts_with('$')) {
        return Err(CommandError::bad_value(format!(
            "The destination field for $rename may not be dynamic: {to}"
        )));
    }
    Ok(to.clone())
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

/// A field name ordered as the server orders update children: numeric names numerically,
/// others lexicographically.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(String);

fn numeric(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (numeric(&self.0), numeric(&other.0)) {
            (Some(a), Some(b)) => a.cmp(&b).then_with(|| self.0.cmp(&other.0)),
            _ => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(Box<Leaf>),
    Obj(ObjNode),
    Arr(ArrNode),
}

#[derive(Debug, Clone, Default)]
struct ObjNode {
    children: BTreeMap<Key, Node>,
    positional: Option<Box<Node>>,
}

#[derive(Debug, Clone, Default)]
struct ArrNode {
    /// Keyed by identifier; `""` is `$[]`.
    children: BTreeMap<String, Node>,
}

fn conflict(path: &str, parts: &[Part], upto: usize) -> CommandError {
    let prefix: Vec<String> = parts[..=upto]
        .iter()
        .map(|p| match p {
            Part::Field(f) => f.clone(),
            Part::Positional => "$".to_string(),
            Part::Array(id) => format!("$[{id}]"),
        })
        .collect();
    CommandError::new(
        codes::CONFLICTING_UPDATE_OPERATORS,
        format!(
            "Updating the path '{path}' would create a conflict at '{}'",
            prefix.join(".")
        ),
    )
}

impl ObjNode {
    fn insert(&mut self, parts: &[Part], path: &str, leaf: Leaf) -> Result<()> {
        insert_into_obj(self, parts, 0, path, leaf)
    }
}

/// Builds the node for `parts[i]` of a path not yet in the tree.
fn build(parts: &[Part], i: usize, path: &str, leaf: Leaf) -> Result<Node> {
    if i + 1 == parts.len() {
        return Ok(Node::Leaf(Box::new(leaf)));
    }
    let mut node = if matches!(parts[i + 1], Part::Array(_)) {
        Node::Arr(ArrNode::default())
    } else {
        Node::Obj(ObjNode::default())
    };
    descend(&mut node, parts, i, path, leaf)?;
    Ok(node)
}

fn descend(node: &mut Node, parts: &[Part], i: usize, path: &str, leaf: Leaf) -> Result<()> {
    match node {
        Node::Leaf(..) => Err(conflict(path, parts, i)),
        Node::Obj(o) => {
            if matches!(parts[i + 1], Part::Array(_)) {
                return Err(conflict(path, parts, i));
            }
            insert_into_obj(o, parts, i + 1, path, leaf)
        }
        Node::Arr(a) => {
            if !matches!(parts[i + 1], Part::Array(_)) {
                return Err(conflict(path, parts, i));
            }
            insert_into_arr(a, parts, i + 1, path, leaf)
        }
    }
}

fn insert_into_obj(
    obj: &mut ObjNode,
    parts: &[Part],
    i: usize,
    path: &str,
    leaf: Leaf,
) -> Result<()> {
    let last = i + 1 == parts.len();
    let existing = match &parts[i] {
        Part::Field(f) => obj.children.get_mut(&Key(f.clone())),
        Part::Positional => obj.positional.as_deref_mut(),
        Part::Array(_) => return Err(conflict(path, parts, i)),
    };
    if let Some(node) = existing {
        if last {
            return Err(conflict(path, parts, i));
        }
        return descend(node, parts, i, path, leaf);
    }
    let node = build(parts, i, path, leaf)?;
    match &parts[i] {
        Part::Field(f) => {
            obj.children.insert(Key(f.clone()), node);
        }
        _ => obj.positional = Some(Box::new(node)),
    }
    Ok(())
}

fn insert_into_arr(
    arr: &mut ArrNode,
    parts: &[Part],
    i: usize,
    path: &str,
    leaf: Leaf,
) -> Result<()> {
    let Part::Array(id) = &parts[i] else {
        return Err(conflict(path, parts, i));
    };
    if let Some(node) = arr.children.get_mut(id) {
        if i + 1 == parts.len() {
            return Err(conflict(path, parts, i));
        }
        return descend(node, parts, i, path, leaf);
    }
    let node = build(parts, i, path, leaf)?;
    arr.children.insert(id.clone(), node);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------

/// What applying a node does to the value it is applied to.
enum Out {
    Keep,
    Set(Bson),
    Remove,
}

/// The value a node is applied to.
#[derive(Clone)]
enum Slot<'v> {
    Present(&'v Bson),
    Missing,
    /// Under a scalar (or an array indexed by a name): `desc` is `{name: value}` of that
    /// element and `part` the first field that would have to be created in it.
    NonViable {
        desc: String,
        part: String,
    },
}

struct Applier<'a> {
    ctx: &'a UpdateContext<'a>,
    original: &'a Document,
    filters: &'a BTreeMap<String, Matcher>,
    now: bson::DateTime,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Merges two nodes that apply to the same element (positional `$` and an index, or several
/// matching array filters); two modifiers on one element conflict.
fn merge(a: &Node, b: &Node, path: &str) -> Result<Node> {
    let conflict = || {
        CommandError::new(
            codes::CONFLICTING_UPDATE_OPERATORS,
            format!("Update created a conflict at '{path}'"),
        )
    };
    match (a, b) {
        (Node::Obj(x), Node::Obj(y)) => {
            let mut out = x.clone();
            for (k, v) in &y.children {
                let merged = match out.children.get(k) {
                    Some(existing) => merge(existing, v, &join(path, &k.0))?,
                    None => v.clone(),
                };
                out.children.insert(k.clone(), merged);
            }
            out.positional = match (&x.positional, &y.positional) {
                (Some(p), Some(q)) => Some(Box::new(merge(p, q, &join(path, "$"))?)),
                (p, q) => p.clone().or_else(|| q.clone()),
            };
            Ok(Node::Obj(out))
        }
        (Node::Arr(x), Node::Arr(y)) => {
            let mut out = x.clone();
            for (k, v) in &y.children {
                let merged = match out.children.get(k) {
                    Some(existing) => merge(existing, v, path)?,
                    None => v.clone(),
                };
                out.children.insert(k.clone(), merged);
            }
            Ok(Node::Arr(out))
        }
        _ => Err(conflict()),
    }
}

impl Applier<'_> {
    fn node(&self, node: &Node, slot: Slot<'_>, path: &str, name: &str) -> Result<Out> {
        match node {
            Node::Leaf(leaf) => self.leaf(leaf, slot, path, name),
            Node::Obj(o) => self.obj(o, slot, path, name),
            Node::Arr(a) => self.arr(a, slot, path, name),
        }
    }

    /// The children of an object node in application order, with the positional child put at
    /// the matched index.
    fn children(&self, obj: &ObjNode, path: &str) -> Result<Vec<(String, Node)>> {
        let mut out: BTreeMap<Key, Node> = obj.children.clone();
        if let Some(p) = &obj.positional {
            let Some(idx) = self.ctx.positional else {
                return Err(CommandError::bad_value(
                    "The positional operator did not find the match needed from the query.",
                ));
            };
            let key = Key(idx.to_string());
            let merged = match out.get(&key) {
                Some(existing) => merge(existing, p, &join(path, &key.0))?,
                None => (**p).clone(),
            };
            out.insert(key, merged);
        }
        Ok(out.into_iter().map(|(k, v)| (k.0, v)).collect())
    }

    fn obj(&self, obj: &ObjNode, slot: Slot<'_>, path: &str, name: &str) -> Result<Out> {
        let children = self.children(obj, path)?;
        match slot {
            Slot::Present(Bson::Document(d)) => {
                let mut nd = d.clone();
                let mut changed = false;
                for (key, child) in &children {
                    let cslot = match d.get(key) {
                        Some(v) => Slot::Present(v),
                        None => Slot::Missing,
                    };
                    match self.node(child, cslot, &join(path, key), key)? {
                        Out::Keep => {}
                        Out::Set(v) => {
                            nd.insert(key.clone(), v);
                            changed = true;
                        }
                        Out::Remove => {
                            nd.remove(key);
                            changed = true;
                        }
                    }
                }
                Ok(if changed {
                    Out::Set(Bson::Document(nd))
                } else {
                    Out::Keep
                })
            }
            Slot::Present(Bson::Array(a)) => {
                let mut na = a.clone();
                let mut changed = false;
                for (key, child) in &children {
                    let Some(idx) = numeric(key).and_then(|i| usize::try_from(i).ok()) else {
                        let nv = Slot::NonViable {
                            desc: format!("{{{}}}", fmt_elem(name, &Bson::Array(a.clone()))),
                            part: key.clone(),
                        };
                        self.node(child, nv, &join(path, key), key)?;
                        continue;
                    };
                    let cslot = match a.get(idx) {
                        Some(v) => Slot::Present(v),
                        None => Slot::Missing,
                    };
                    match self.node(child, cslot, &join(path, key), key)? {
                        Out::Keep => {}
                        Out::Set(v) => {
                            if idx >= na.len() {
                                if idx - na.len() > MAX_PADDING {
                                    return Err(CommandError::new(
                                        CANNOT_BACKFILL_ARRAY,
                                        format!("can't backfill more than {MAX_PADDING} elements"),
                                    ));
                                }
                                na.resize(idx + 1, Bson::Null);
                            }
                            na[idx] = v;
                            changed = true;
                        }
                        Out::Remove => {
                            // `$unset` of an array element leaves a null in its place.
                            if idx < na.len() {
                                na[idx] = Bson::Null;
                                changed = true;
                            }
                        }
                    }
                }
                Ok(if changed {
                    Out::Set(Bson::Array(na))
                } else {
                    Out::Keep
                })
            }
            Slot::Present(scalar) => {
                for (key, child) in &children {
                    let nv = Slot::NonViable {
                        desc: format!("{{{}}}", fmt_elem(name, scalar)),
                        part: key.clone(),
                    };
                    self.node(child, nv, &join(path, key), key)?;
                }
                Ok(Out::Keep)
            }
            Slot::Missing => {
                let mut nd = Document::new();
                for (key, child) in &children {
                    if let Out::Set(v) = self.node(child, Slot::Missing, &join(path, key), key)? {
                        nd.insert(key.clone(), v);
                    }
                }
                Ok(if nd.is_empty() {
                    Out::Keep
                } else {
                    Out::Set(Bson::Document(nd))
                })
            }
            Slot::NonViable { .. } => {
                for (key, child) in &children {
                    self.node(child, slot.clone(), &join(path, key), key)?;
                }
                Ok(Out::Keep)
            }
        }
    }

    fn arr(&self, arr: &ArrNode, slot: Slot<'_>, path: &str, name: &str) -> Result<Out> {
        let a = match slot {
            Slot::Present(Bson::Array(a)) => a,
            Slot::Present(other) => {
                return Err(CommandError::bad_value(format!(
                    "Cannot apply array updates to non-array element {}",
                    fmt_elem(name, other)
                )));
            }
            Slot::Missing | Slot::NonViable { .. } => {
                return Err(CommandError::bad_value(format!(
                    "The path '{path}' must exist in the document in order to apply array \
                     updates."
                )));
            }
        };
        let mut na = a.clone();
        let mut changed = false;
        for (i, elem) in a.iter().enumerate() {
            let epath = join(path, &i.to_string());
            let mut merged: Option<Node> = None;
            for (id, child) in &arr.children {
                let matches = id.is_empty() || {
                    let mut wrapper = Document::new();
                    wrapper.insert(id.clone(), elem.clone());
                    self.filters.get(id).is_some_and(|m| m.matches(&wrapper))
                };
                if matches {
                    merged = Some(match merged {
                        Some(m) => merge(&m, child, &epath)?,
                        None => child.clone(),
                    });
                }
            }
            let Some(node) = merged else { continue };
            match self.node(&node, Slot::Present(elem), &epath, &i.to_string())? {
                Out::Keep => {}
                Out::Set(v) => {
                    na[i] = v;
                    changed = true;
                }
                Out::Remove => {
                    na[i] = Bson::Null;
                    changed = true;
                }
            }
        }
        Ok(if changed {
            Out::Set(Bson::Array(na))
        } else {
            Out::Keep
        })
    }

    fn id_elem(&self) -> String {
        match self.original.get("_id") {
            Some(id) => fmt_elem("_id", id),
            None => "no id".to_string(),
        }
    }

    fn id_doc(&self) -> String {
        format!("{{{}}}", self.id_elem())
    }

    fn leaf(&self, leaf: &Leaf, slot: Slot<'_>, path: &str, name: &str) -> Result<Out> {
        if matches!(leaf, Leaf::SetOnInsert(_)) && !self.ctx.is_insert {
            return Ok(Out::Keep);
        }
        // A rename of a missing field does nothing, whatever the destination.
        let rename_value = match leaf {
            Leaf::RenameTo { from } => match self.rename_source(from, path)? {
                Some(v) => Some(v),
                None => return Ok(Out::Keep),
            },
            _ => None,
        };
        let out = match slot {
            Slot::NonViable { desc, part } => {
                if leaf.creates() {
                    return Err(CommandError::new(
                        codes::PATH_NOT_VIABLE,
                        format!("Cannot create field '{part}' in element {desc}"),
                    ));
                }
                // Only `$unset` ignores a path that could not exist; `$pop`, `$pull` and
                // `$pullAll` do nothing on a missing path but fail on an impossible one.
                if matches!(leaf, Leaf::Unset | Leaf::RenameFrom) {
                    return Ok(Out::Keep);
                }
                return Err(CommandError::new(
                    codes::PATH_NOT_VIABLE,
                    format!(
                        "Cannot use the part ({part}) of ({path}) to traverse the element ({desc})"
                    ),
                ));
            }
            Slot::Missing => match rename_value {
                Some(v) => Out::Set(v),
                None => self.create(leaf)?,
            },
            Slot::Present(old) => {
                let out = match rename_value {
                    Some(v) => Out::Set(v),
                    None => self.modify(leaf, old, path, name)?,
                };
                // Identical values are no-ops (the server compares binary values).
                if let Out::Set(new) = &out
                    && binary_equal(old, new)
                {
                    return Ok(Out::Keep);
                }
                out
            }
        };
        if !matches!(out, Out::Keep) {
            self.check_immutable(leaf, path, &out)?;
        }
        Ok(out)
    }

    fn check_immutable(&self, leaf: &Leaf, path: &str, out: &Out) -> Result<()> {
        if path != "_id" && !path.starts_with("_id.") {
            return Ok(());
        }
        if !self.original.contains_key("_id") {
            return Ok(());
        }
        let sets_object = matches!(
            leaf,
            Leaf::Set(_) | Leaf::SetOnInsert(_) | Leaf::RenameTo { .. }
        );
        let msg = match out {
            _ if matches!(leaf, Leaf::RenameFrom) => format!(
                "Unsetting the path '{path}' using $rename would modify the immutable field '_id'"
            ),
            Out::Set(v) if path == "_id" && sets_object => format!(
                "Updating the path '_id' to {} would modify the immutable field '_id'",
                fmt_elem("_id", v)
            ),
            _ => format!(
                "Performing an update on the path '{path}' would modify the immutable field '_id'"
            ),
        };
        Err(CommandError::new(codes::IMMUTABLE_FIELD, msg))
    }

    /// The value at a rename's source path in the original document (`None` if missing).
    /// As on the server, a source path through a scalar is not viable, and sources or
    /// destinations inside arrays are rejected.
    fn rename_source(&self, from: &str, to: &str) -> Result<Option<Bson>> {
        let parts: Vec<&str> = from.split('.').collect();
        let mut cur = self.original_bson();
        let mut array_field: Option<&str> = None;
        let mut taken: Vec<&str> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let next = match &cur {
                Bson::Document(d) => d.get(*p),
                Bson::Array(a) => match numeric(p).and_then(|n| usize::try_from(n).ok()) {
                    Some(idx) => {
                        array_field.get_or_insert(taken.last().copied().unwrap_or(""));
                        a.get(idx)
                    }
                    None => return Err(self.not_traversable(&parts, i, &taken, &cur)),
                },
                _ => return Err(self.not_traversable(&parts, i, &taken, &cur)),
            };
            let Some(next) = next else {
                return Ok(None);
            };
            taken.push(p);
            cur = next.clone();
        }
        if let Some(field) = array_field {
            return Err(CommandError::bad_value(format!(
                "The source field cannot be an array element, '{from}' in doc with {} has an \
                 array field called '{field}'",
                self.id_elem()
            )));
        }
        self.check_rename_dest(to)?;
        Ok(Some(cur))
    }

    fn original_bson(&self) -> Bson {
        Bson::Document(self.original.clone())
    }

    fn not_traversable(
        &self,
        parts: &[&str],
        i: usize,
        taken: &[&str],
        cur: &Bson,
    ) -> CommandError {
        let name = taken.last().copied().unwrap_or("");
        CommandError::new(
            codes::PATH_NOT_VIABLE,
            format!(
                "cannot use the part ({} of {}) to traverse the element ({{{}}})",
                parts[i],
                parts.join("."),
                fmt_elem(name, cur)
            ),
        )
    }

    /// A rename may not write into an array element (the destination itself may be an array).
    fn check_rename_dest(&self, to: &str) -> Result<()> {
        let parts: Vec<&str> = to.split('.').collect();
        let mut cur: &Document = self.original;
        for (i, p) in parts.iter().enumerate() {
            match cur.get(*p) {
                Some(Bson::Document(d)) => cur = d,
                Some(Bson::Array(_)) if i + 1 < parts.len() => {
                    return Err(CommandError::bad_value(format!(
                        "The destination field cannot be an array element, '{to}' in doc with \
                         {} has an array field called '{p}'",
                        self.id_elem()
                    )));
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn current_date(&self, timestamp: bool) -> Bson {
        if timestamp {
            let millis = self.now.timestamp_millis();
            Bson::Timestamp(Timestamp {
                time: u32::try_from(millis / 1000).unwrap_or(u32::MAX),
                increment: 1,
            })
        } else {
            Bson::DateTime(self.now)
        }
    }

    /// The value a creating modifier gives a missing field.
    fn create(&self, leaf: &Leaf) -> Result<Out> {
        Ok(match leaf {
            Leaf::Set(v) | Leaf::SetOnInsert(v) | Leaf::Min(v) | Leaf::Max(v) | Leaf::Inc(v) => {
                Out::Set(v.clone())
            }
            // `$mul` of a missing field creates 0 of the multiplier's type.
            Leaf::Mul(v) => Out::Set(zero_like(v)),
            Leaf::CurrentDate { timestamp } => Out::Set(self.current_date(*timestamp)),
            Leaf::Push(spec) => Out::Set(Bson::Array(push(Vec::new(), spec))),
            Leaf::AddToSet(values) => {
                let mut out: Vec<Bson> = Vec::new();
                for v in values {
                    if !out.iter().any(|e| values_equal(e, v)) {
                        out.push(v.clone());
                    }
                }
                Out::Set(Bson::Array(out))
            }
            Leaf::Bit(ops) => Out::Set(apply_bits(&Bson::Int32(0), ops)),
            Leaf::Unset
            | Leaf::Pop { .. }
            | Leaf::Pull(_)
            | Leaf::PullAll(_)
            | Leaf::RenameFrom
            | Leaf::RenameTo { .. } => Out::Keep,
        })
    }

    fn modify(&self, leaf: &Leaf, old: &Bson, path: &str, name: &str) -> Result<Out> {
        Ok(match leaf {
            Leaf::Set(v) | Leaf::SetOnInsert(v) => Out::Set(v.clone()),
            Leaf::Unset | Leaf::RenameFrom => Out::Remove,
            Leaf::Inc(v) | Leaf::Mul(v) => {
                let is_inc = matches!(leaf, Leaf::Inc(_));
                let op_name = if is_inc { "$inc" } else { "$mul" };
                if !is_number(old) {
                    return Err(CommandError::type_mismatch(format!(
                        "Cannot apply {op_name} to a value of non-numeric type. {} has the field \
                         '{name}' of non-numeric type {}",
                        self.id_doc(),
                        type_name(old)
                    )));
                }
                match arithmetic(old, v, is_inc) {
                    Some(n) => Out::Set(n),
                    None => {
                        return Err(CommandError::bad_value(format!(
                            "Failed to apply {op_name} operations to current value ({}) for \
                             document {}",
                            debug_num(old),
                            self.id_doc()
                        )));
                    }
                }
            }
            Leaf::Min(v) => {
                if compare(v, old) == Ordering::Less {
                    Out::Set(v.clone())
                } else {
                    Out::Keep
                }
            }
            Leaf::Max(v) => {
                if compare(v, old) == Ordering::Greater {
                    Out::Set(v.clone())
                } else {
                    Out::Keep
                }
            }
            Leaf::CurrentDate { timestamp } => Out::Set(self.current_date(*timestamp)),
            Leaf::Push(spec) => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::bad_value(format!(
                        "The field '{path}' must be an array but is of type {} in document {}",
                        type_name(old),
                        self.id_doc()
                    )));
                };
                Out::Set(Bson::Array(push(a.clone(), spec)))
            }
            Leaf::AddToSet(values) => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::bad_value(format!(
                        "Cannot apply $addToSet to non-array field. Field named '{name}' has \
                         non-array type {}",
                        type_name(old)
                    )));
                };
                let mut out = a.clone();
                for v in values {
                    if !out.iter().any(|e| values_equal(e, v)) {
                        out.push(v.clone());
                    }
                }
                Out::Set(Bson::Array(out))
            }
            Leaf::Pop { first } => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::type_mismatch(format!(
                        "Path '{path}' contains an element of non-array type '{}'",
                        type_name(old)
                    )));
                };
                if a.is_empty() {
                    return Ok(Out::Keep);
                }
                let mut out = a.clone();
                if *first {
                    out.remove(0);
                } else {
                    out.pop();
                }
                Out::Set(Bson::Array(out))
            }
            Leaf::Pull(cond) => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::bad_value(
                        "Cannot apply $pull to a non-array value",
                    ));
                };
                let out: Vec<Bson> = a
                    .iter()
                    .filter(|e| !pull_matches(cond, e))
                    .cloned()
                    .collect();
                Out::Set(Bson::Array(out))
            }
            Leaf::PullAll(values) => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::bad_value(
                        "Cannot apply $pull to a non-array value",
                    ));
                };
                let out: Vec<Bson> = a
                    .iter()
                    .filter(|e| !values.iter().any(|v| values_equal(e, v)))
                    .cloned()
                    .collect();
                Out::Set(Bson::Array(out))
            }
            Leaf::Bit(ops) => {
                if !matches!(old, Bson::Int32(_) | Bson::Int64(_)) {
                    return Err(CommandError::bad_value(format!(
                        "Cannot apply $bit to a value of non-integral type.{} has the field \
                         {name} of non-integer type {}",
                        self.id_elem(),
                        type_name(old)
                    )));
                }
                Out::Set(apply_bits(old, ops))
            }
            Leaf::RenameTo { .. } => Out::Keep,
        })
    }
}

fn pull_matches(cond: &PullCond, elem: &Bson) -> bool {
    match cond {
        PullCond::Equal(v) => values_equal(elem, v),
        PullCond::Object(m) => match elem {
            Bson::Document(d) => m.matches(d),
            _ => false,
        },
        PullCond::Wrapped(m) => {
            let mut wrapper = Document::new();
            wrapper.insert(WRAP, elem.clone());
            m.matches(&wrapper)
        }
    }
}

/// `$push`: insert `$each` at `$position`, then `$sort`, then `$slice`.
fn push(mut array: Vec<Bson>, spec: &PushSpec) -> Vec<Bson> {
    let len = array.len() as i64;
    let at = match spec.position {
        None => len,
        Some(p) if p < 0 => (len + p).max(0),
        Some(p) => p.min(len),
    } as usize;
    array.splice(at..at, spec.each.iter().cloned());
    if let Some(sort) = &spec.sort {
        match sort {
            SortSpec::Whole(asc) => array.sort_by(|a, b| {
                let o = compare(a, b);
                if *asc { o } else { o.reverse() }
            }),
            SortSpec::Fields(fields) => array.sort_by(|a, b| {
                for (path, asc) in fields {
                    let va = sort_key(a, path);
                    let vb = sort_key(b, path);
                    let o = compare(&va, &vb);
                    let o = if *asc { o } else { o.reverse() };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            }),
        }
    }
    if let Some(n) = spec.slice {
        let len = array.len() as i64;
        if n >= 0 {
            array.truncate(n.min(len) as usize);
        } else {
            let keep = n.unsigned_abs().min(len as u64) as usize;
            array.drain(..array.len() - keep);
        }
    }
    array
}

/// The value of a `$push` `$sort` field of an element (null when missing or not a document).
fn sort_key(elem: &Bson, path: &str) -> Bson {
    let mut cur = elem;
    for p in path.split('.') {
        match cur {
            Bson::Document(d) => match d.get(p) {
                Some(v) => cur = v,
                None => return Bson::Null,
            },
            _ => return Bson::Null,
        }
    }
    cur.clone()
}

fn apply_bits(old: &Bson, ops: &[(BitOp, Bson)]) -> Bson {
    let mut cur = old.clone();
    for (op, v) in ops {
        let (a, b) = match (&cur, v) {
            (Bson::Int32(a), Bson::Int32(b)) => {
                let r = match op {
                    BitOp::And => a & b,
                    BitOp::Or => a | b,
                    BitOp::Xor => a ^ b,
                };
                cur = Bson::Int32(r);
                continue;
            }
            (x, y) => (as_i64(x), as_i64(y)),
        };
        cur = Bson::Int64(match op {
            BitOp::And => a & b,
            BitOp::Or => a | b,
            BitOp::Xor => a ^ b,
        });
    }
    cur
}

fn as_i64(v: &Bson) -> i64 {
    match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        _ => 0,
    }
}

fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

fn as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

fn zero_like(v: &Bson) -> Bson {
    match v {
        Bson::Int32(_) => Bson::Int32(0),
        Bson::Int64(_) => Bson::Int64(0),
        Bson::Decimal128(_) => "0"
            .parse()
            .map(Bson::Decimal128)
            .unwrap_or(Bson::Double(0.0)),
        _ => Bson::Double(0.0),
    }
}

/// `$inc`/`$mul` with the server's type promotion: int32 overflow widens to int64, int64
/// overflow fails (`None`), doubles and decimals win.
fn arithmetic(a: &Bson, b: &Bson, add: bool) -> Option<Bson> {
    match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => {
            let r = if add {
                x.checked_add(*y)
            } else {
                x.checked_mul(*y)
            };
            match r {
                Some(r) => Some(Bson::Int32(r)),
                None => arithmetic(
                    &Bson::Int64(i64::from(*x)),
                    &Bson::Int64(i64::from(*y)),
                    add,
                ),
            }
        }
        (Bson::Int32(_) | Bson::Int64(_), Bson::Int32(_) | Bson::Int64(_)) => {
            let (x, y) = (as_i64(a), as_i64(b));
            let r = if add {
                x.checked_add(y)
            } else {
                x.checked_mul(y)
            };
            r.map(Bson::Int64)
        }
        (Bson::Decimal128(_), _) | (_, Bson::Decimal128(_)) => {
            if let Some(exact) = decimal_exact(a, b, add) {
                return Some(exact);
            }
            // Results needing rounding (beyond 34 digits) or special values: through f64.
            let (x, y) = (as_f64(a)?, as_f64(b)?);
            let r = if add { x + y } else { x * y };
            format!("{r:e}").parse().ok().map(Bson::Decimal128)
        }
        _ => {
            let (x, y) = (as_f64(a)?, as_f64(b)?);
            Some(Bson::Double(if add { x + y } else { x * y }))
        }
    }
}

/// A finite decimal as (negative, coefficient, exponent); doubles become decimals rounded to 15
/// significant digits, as the server converts them.
fn decimal_parts(v: &Bson) -> Option<(bool, u128, i32)> {
    let text = match v {
        Bson::Int32(i) => return Some((*i < 0, u128::from(i.unsigned_abs()), 0)),
        Bson::Int64(i) => return Some((*i < 0, u128::from(i.unsigned_abs()), 0)),
        Bson::Double(d) if d.is_finite() => format!("{d:.14e}"),
        Bson::Decimal128(d) => d.to_string(),
        _ => return None,
    };
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.as_str()),
    };
    let (mantissa, exp) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.trim_start_matches('+').parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let coef: u128 = format!("{int}{frac}").parse().ok()?;
    Some((neg, coef, exp - i32::try_from(frac.len()).ok()?))
}

/// Exact decimal `+`/`*` when the result fits in 34 digits (IEEE 754 decimal keeps the
/// smaller exponent for sums and adds exponents for products, so 0.1 + 0.2 is 0.3).
fn decimal_exact(a: &Bson, b: &Bson, add: bool) -> Option<Bson> {
    let (na, ca, ea) = decimal_parts(a)?;
    let (nb, cb, eb) = decimal_parts(b)?;
    let signed = |neg: bool, c: u128| -> Option<i128> {
        let c = i128::try_from(c).ok()?;
        Some(if neg { -c } else { c })
    };
    let (value, exp) = if add {
        let exp = ea.min(eb);
        let scale = |c: u128, e: i32| -> Option<u128> {
            c.checked_mul(10u128.checked_pow(u32::try_from(e - exp).ok()?)?)
        };
        let x = signed(na, scale(ca, ea)?)?;
        let y = signed(nb, scale(cb, eb)?)?;
        (x.checked_add(y)?, exp)
    } else {
        let c = ca.checked_mul(cb)?;
        (signed(na != nb, c)?, ea.checked_add(eb)?)
    };
    if value.unsigned_abs() >= 10u128.pow(34) {
        return None;
    }
    format!("{value}E{exp}").parse().ok().map(Bson::Decimal128)
}

fn debug_num(v: &Bson) -> String {
    match v {
        Bson::Int32(i) => format!("(NumberInt){i}"),
        Bson::Int64(i) => format!("(NumberLong){i}"),
        Bson::Double(d) => format!("(NumberDouble){d}"),
        Bson::Decimal128(d) => format!("(NumberDecimal){d}"),
        other => fmt_value(other),
    }
}

/// Replaces `doc` by `repl`, keeping `doc`'s `_id` (first) when `repl` has none; a different
/// `_id` fails as on the server.
///
/// As on the server: an identical document is a no-op before any check; then the result is
/// validated for storage (top-level `$` fields only from pipelines), then `_id` is compared.
fn replace(doc: &Document, repl: &Document, allow_dollars: bool) -> Result<Document> {
    if doc_binary_equal(doc, repl) {
        return Ok(doc.clone());
    }
    let mut out = Document::new();
    if !repl.contains_key("_id")
        && let Some(id) = doc.get("_id")
    {
        out.insert("_id", id.clone());
    }
    for (k, v) in repl {
        out.insert(k.clone(), v.clone());
    }
    if !allow_dollars {
        check_top_level_dollars(&out)?;
    }
    if let Some(id) = out.get("_id") {
        check_id_value(id)?;
    }
    if let (Some(old), Some(new)) = (doc.get("_id"), out.get("_id"))
        && compare(old, new) != Ordering::Equal
    {
        return Err(CommandError::new(
            codes::IMMUTABLE_FIELD,
            format!(
                "After applying the update, the (immutable) field '_id' was found to have \
                     been altered to {}",
                fmt_elem("_id", new)
            ),
        ));
    }
    Ok(out)
}

/// Top-level `$`-prefixed fields cannot be stored by replacements and operator updates
/// (DBRef fields excepted); nested ones can since 5.0.
fn check_top_level_dollars(doc: &Document) -> Result<()> {
    for k in doc.keys() {
        if k.starts_with('$') && !matches!(k.as_str(), "$ref" | "$id" | "$db") {
            return Err(CommandError::new(
                codes::DOLLAR_PREFIXED_FIELD_NAME,
                format!(
                    "The dollar ($) prefixed field '{k}' in '{k}' is not allowed in the context \
                     of an update's replacement document. Consider using an aggregation \
                     pipeline with $replaceWith."
                ),
            ));
        }
    }
    Ok(())
}

/// For operator updates the server validates only the fields it touched: a `$` field stored
/// earlier (by a pipeline update) does not block later updates.
fn check_new_dollar_fields(old: &Document, new: &Document) -> Result<()> {
    let mut touched = Document::new();
    for (k, v) in new {
        if old.get(k).is_none_or(|o| !binary_equal(o, v)) {
            touched.insert(k.clone(), v.clone());
        }
    }
    check_top_level_dollars(&touched)
}

fn check_id_value(id: &Bson) -> Result<()> {
    if matches!(
        id,
        Bson::Array(_) | Bson::RegularExpression(_) | Bson::Undefined
    ) {
        return Err(CommandError::new(
            codes::INVALID_ID_FIELD,
            format!("The '_id' value cannot be of type {}", type_name(id)),
        ));
    }
    Ok(())
}

/// Value equality as the server's binary comparison sees it: types, field names and order,
/// and the bits of doubles all count.
fn binary_equal(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => doc_binary_equal(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| binary_equal(p, q))
        }
        _ => a == b,
    }
}

fn doc_binary_equal(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && binary_equal(va, vb))
}

// ---------------------------------------------------------------------------------------------
// The server's value formatting, for error messages
// ---------------------------------------------------------------------------------------------

fn fmt_elem(name: &str, v: &Bson) -> String {
    format!("{name}: {}", fmt_value(v))
}

fn fmt_doc(d: &Document) -> String {
    if d.is_empty() {
        return "{}".to_string();
    }
    let fields: Vec<String> = d.iter().map(|(k, v)| fmt_elem(k, v)).collect();
    format!("{{ {} }}", fields.join(", "))
}

fn fmt_value(v: &Bson) -> String {
    match v {
        Bson::Double(d) => {
            if d.fract() == 0.0 && d.is_finite() && d.abs() < 1e16 {
                format!("{d:.1}")
            } else {
                format!("{d}")
            }
        }
        Bson::String(s) => format!("\"{s}\""),
        Bson::Document(d) => fmt_doc(d),
        Bson::Array(a) => {
            if a.is_empty() {
                "[]".to_string()
            } else {
                let items: Vec<String> = a.iter().map(fmt_value).collect();
                format!("[ {} ]", items.join(", "))
            }
        }
        Bson::ObjectId(o) => format!("ObjectId('{o}')"),
        Bson::Boolean(b) => b.to_string(),
        Bson::DateTime(d) => format!("new Date({})", d.timestamp_millis()),
        Bson::Null => "null".to_string(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Timestamp(t) => format!("Timestamp({}, {})", t.time, t.increment),
        Bson::Decimal128(d) => format!("NumberDecimal(\"{d}\")"),
        Bson::RegularExpression(r) => format!("/{}/{}", r.pattern, r.options),
        Bson::Undefined => "undefined".to_string(),
        Bson::MinKey => "MinKey".to_string(),
        Bson::MaxKey => "MaxKey".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use bson::{Bson, doc};

    use super::*;

    fn parse(u: Document) -> Result<Update> {
        Update::parse(&Bson::Document(u), None)
    }

    fn apply(u: Document, d: Document) -> Document {
        parse(u)
            .and_then(|u| u.apply(&d, &UpdateContext::default()))
            .expect("update applies")
    }

    fn apply_pos(u: Document, d: Document, pos: usize) -> Result<Document> {
        let ctx = UpdateContext {
            positional: Some(pos),
            ..Default::default()
        };
        parse(u)?.apply(&d, &ctx)
    }

    fn changed(u: Document, d: Document) -> bool {
        parse(u)
            .and_then(|u| u.apply_with_change(&d, &UpdateContext::default()))
            .expect("update applies")
            .1
    }

    fn err(u: Document, d: Document) -> CommandError {
        match parse(u).and_then(|u| u.apply(&d, &UpdateContext::default())) {
            Ok(doc) => panic!("expected an error, got {doc:?}"),
            Err(e) => e,
        }
    }

    fn with_filters(u: Document, filters: Vec<Document>, d: Document) -> Result<Document> {
        Update::parse(&Bson::Document(u), Some(&filters))?.apply(&d, &UpdateContext::default())
    }

    // ----- kinds and parse errors -----

    #[test]
    fn replacement_keeps_id_first() {
        let u = parse(doc! {"x": 2, "y": 3}).unwrap();
        assert!(u.is_replacement());
        let out = u
            .apply(&doc! {"_id": 1, "x": 1, "z": 0}, &UpdateContext::default())
            .unwrap();
        assert_eq!(out, doc! {"_id": 1, "x": 2, "y": 3});
    }

    #[test]
    fn empty_document_is_a_replacement() {
        let u = parse(doc! {}).unwrap();
        assert!(u.is_replacement());
        assert_eq!(
            u.apply(&doc! {"_id": 1, "a": 1}, &UpdateContext::default())
                .unwrap(),
            doc! {"_id": 1}
        );
    }

    #[test]
    fn replacement_changing_id_fails() {
        let e = err(doc! {"_id": 2, "x": 1}, doc! {"_id": 1});
        assert_eq!(e.code, codes::IMMUTABLE_FIELD);
        assert_eq!(
            e.message,
            "After applying the update, the (immutable) field '_id' was found to have been \
             altered to _id: 2"
        );
        // The same _id is fine, and keeps the replacement's order (the server appends it as is).
        assert_eq!(
            apply(doc! {"x": 1, "_id": 1}, doc! {"_id": 1}),
            doc! {"x": 1, "_id": 1}
        );
    }

    #[test]
    fn replacement_with_top_level_dollar_field_fails() {
        let e = err(doc! {"a": 1, "$b": 1}, doc! {"_id": 1});
        assert_eq!(e.code, codes::DOLLAR_PREFIXED_FIELD_NAME);
        assert!(
            e.message
                .starts_with("The dollar ($) prefixed field '$b' in '$b'")
        );
        // Dotted and nested `$` names are storable since 5.0.
        assert_eq!(
            apply(doc! {"a.b": 1, "c": {"$d": 1}}, doc! {"_id": 1}),
            doc! {"_id": 1, "a.b": 1, "c": {"$d": 1}}
        );
    }

    #[test]
    fn identical_replacement_is_a_noop() {
        assert!(!changed(doc! {"_id": 1, "a": 1}, doc! {"_id": 1, "a": 1}));
        assert!(!changed(doc! {"a": 1}, doc! {"_id": 1, "a": 1}));
        assert!(changed(doc! {"a": 1.0}, doc! {"_id": 1, "a": 1}));
    }

    #[test]
    fn unknown_modifier_and_mixed_documents() {
        let e = parse(doc! {"$foo": {"a": 1}}).unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        assert_eq!(
            e.message,
            "Unknown modifier: $foo. Expected a valid update modifier or pipeline-style update \
             specified as an array"
        );
        let e = parse(doc! {"$set": {"a": 1}, "b": 1}).unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        assert!(e.message.starts_with("Unknown modifier: b."));
    }

    #[test]
    fn empty_and_non_document_operator_arguments() {
        // Servers since 5.0 accept an empty operand and change nothing.
        let u = parse(doc! {"$set": {}}).unwrap();
        let doc = doc! {"_id": 1, "a": 1};
        assert_eq!(u.apply(&doc, &UpdateContext::default()).unwrap(), doc);
        let e = parse(doc! {"$inc": 1}).unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        assert!(
            e.message
                .starts_with("Modifiers operate on fields but we found type int")
        );
    }

    #[test]
    fn empty_paths_are_rejected() {
        assert_eq!(
            parse(doc! {"$set": {"": 1}}).unwrap_err().code,
            codes::EMPTY_FIELD_NAME
        );
        let e = parse(doc! {"$set": {"a..b": 1}}).unwrap_err();
        assert_eq!(e.code, codes::EMPTY_FIELD_NAME);
        assert_eq!(
            e.message,
            "The update path 'a..b' contains an empty field name, which is not allowed."
        );
    }

    #[test]
    fn conflicting_paths() {
        let e = parse(doc! {"$set": {"a": 1, "a.b": 2}}).unwrap_err();
        assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
        assert_eq!(
            e.message,
            "Updating the path 'a.b' would create a conflict at 'a'"
        );
        let e = parse(doc! {"$set": {"a.b": 1}, "$inc": {"a": 2}}).unwrap_err();
        assert_eq!(
            e.message,
            "Updating the path 'a' would create a conflict at 'a'"
        );
        let e = parse(doc! {"$set": {"a": 1}, "$unset": {"a": 1}}).unwrap_err();
        assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
        let e = parse(doc! {"$rename": {"a": "b"}, "$set": {"a": 1}}).unwrap_err();
        assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
        // Siblings do not conflict.
        assert!(parse(doc! {"$set": {"a.b": 1, "a.c": 2, "ab": 3}}).is_ok());
    }

    #[test]
    fn positional_placement_errors() {
        let e = parse(doc! {"$set": {"$": 1}}).unwrap_err();
        assert_eq!(e.code, codes::BAD_VALUE);
        assert_eq!(
            e.message,
            "Cannot have positional (i.e. '$') element in the first position in path '$'"
        );
        let e = parse(doc! {"$set": {"a.$.b.$": 1}}).unwrap_err();
        assert_eq!(
            e.message,
            "Too many positional (i.e. '$') elements found in path 'a.$.b.$'"
        );
    }

    // ----- $set / $unset and paths -----

    #[test]
    fn set_keeps_position_of_existing_fields_and_appends_new_ones() {
        assert_eq!(
            apply(
                doc! {"$set": {"a": 10, "z": 1, "b": 2}},
                doc! {"_id": 1, "a": 1, "c": 3}
            ),
            doc! {"_id": 1, "a": 10, "c": 3, "b": 2, "z": 1}
        );
    }

    #[test]
    fn new_fields_are_created_in_lexicographic_then_numeric_order() {
        // 5.0+: "update operators process document fields with string-based names in
        // lexicographic order. Fields with numeric names are processed in numeric order."
        assert_eq!(
            apply(
                doc! {"$set": {"b": 1, "a": 2, "10": 3, "9": 4}},
                doc! {"_id": 1}
            ),
            doc! {"_id": 1, "9": 4, "10": 3, "a": 2, "b": 1}
        );
    }

    #[test]
    fn set_dotted_paths_create_documents_and_index_arrays() {
        assert_eq!(
            apply(doc! {"$set": {"a.b.c": 1}}, doc! {"_id": 1}),
            doc! {"_id": 1, "a": {"b": {"c": 1}}}
        );
        // A numeric component of a missing path makes a field, not an array.
        assert_eq!(
            apply(doc! {"$set": {"a.0": 1}}, doc! {"_id": 1}),
            doc! {"_id": 1, "a": {"0": 1}}
        );
        assert_eq!(
            apply(
                doc! {"$set": {"a.1.x": 5}},
                doc! {"_id": 1, "a": [{"x": 1}, {"x": 2}]}
            ),
            doc! {"_id": 1, "a": [{"x": 1}, {"x": 5}]}
        );
        // Setting past the end pads with nulls.
        assert_eq!(
            apply(doc! {"$set": {"a.4": 9}}, doc! {"_id": 1, "a": [1, 2]}),
            doc! {"_id": 1, "a": [1, 2, Bson::Null, Bson::Null, 9]}
        );
    }

    #[test]
    fn set_inside_a_scalar_is_not_viable() {
        let e = err(doc! {"$set": {"a.b": 1}}, doc! {"_id": 1, "a": 1});
        assert_eq!(e.code, codes::PATH_NOT_VIABLE);
        assert_eq!(e.message, "Cannot create field 'b' in element {a: 1}");
        let e = err(doc! {"$set": {"a.b.c": 1}}, doc! {"_id": 1, "a": "x"});
        assert_eq!(e.message, "Cannot create field 'b' in element {a: \"x\"}");
        let e = err(doc! {"$set": {"a.b": 1}}, doc! {"_id": 1, "a": [1, 2]});
        assert_eq!(
            e.message,
            "Cannot create field 'b' in element {a: [ 1, 2 ]}"
        );
        // $unset of such a path is a no-op.
        assert!(!changed(
            doc! {"$unset": {"a.b": 1}},
            doc! {"_id": 1, "a": 1}
        ));
    }

    #[test]
    fn set_same_value_is_a_noop_but_another_type_is_not() {
        assert!(!changed(doc! {"$set": {"a": 1}}, doc! {"_id": 1, "a": 1}));
        assert!(!changed(
            doc! {"$set": {"a": {"b": [1, 2]}}},
            doc! {"_id": 1, "a": {"b": [1, 2]}}
        ));
        assert!(changed(doc! {"$set": {"a": 1.0}}, doc! {"_id": 1, "a": 1}));
        assert!(changed(doc! {"$set": {"a": 1i64}}, doc! {"_id": 1, "a": 1}));
        assert!(changed(doc! {"$set": {"b": 1}}, doc! {"_id": 1, "a": 1}));
    }

    #[test]
    fn unset_removes_fields_and_nulls_array_elements() {
        assert_eq!(
            apply(
                doc! {"$unset": {"a": "", "b.c": 1, "missing": 1}},
                doc! {"_id": 1, "a": 1, "b": {"c": 1, "d": 2}}
            ),
            doc! {"_id": 1, "b": {"d": 2}}
        );
        assert_eq!(
            apply(doc! {"$unset": {"a.1": 1}}, doc! {"_id": 1, "a": [1, 2, 3]}),
            doc! {"_id": 1, "a": [1, Bson::Null, 3]}
        );
        assert!(!changed(doc! {"$unset": {"x": 1}}, doc! {"_id": 1}));
    }

    #[test]
    fn modifying_id_fails() {
        let e = err(doc! {"$set": {"_id": 2}}, doc! {"_id": 1});
        assert_eq!(e.code, codes::IMMUTABLE_FIELD);
        assert_eq!(
            e.message,
            "Updating the path '_id' to _id: 2 would modify the immutable field '_id'"
        );
        let e = err(doc! {"$inc": {"_id": 1}}, doc! {"_id": 1});
        assert_eq!(
            e.message,
            "Performing an update on the path '_id' would modify the immutable field '_id'"
        );
        let e = err(doc! {"$set": {"_id.a": 2}}, doc! {"_id": {"a": 1}});
        assert_eq!(e.code, codes::IMMUTABLE_FIELD);
        // Setting the same value is allowed.
        assert_eq!(
            apply(doc! {"$set": {"_id": 1, "a": 1}}, doc! {"_id": 1}),
            doc! {"_id": 1, "a": 1}
        );
    }

    // ----- $setOnInsert and upserts -----

    #[test]
    fn set_on_insert_only_applies_to_inserts() {
        let u = parse(doc! {"$setOnInsert": {"a": 1}, "$set": {"b": 2}}).unwrap();
        assert_eq!(
            u.apply(&doc! {"_id": 1}, &UpdateContext::default())
                .unwrap(),
            doc! {"_id": 1, "b": 2}
        );
        let ctx = UpdateContext {
            is_insert: true,
            ..Default::default()
        };
        assert_eq!(
            u.apply(&doc! {"x": 1}, &ctx).unwrap(),
            doc! {"x": 1, "a": 1, "b": 2}
        );
        // On insert, _id comes first even when the update creates it, for replacements too.
        let r = parse(doc! {"a": 1, "_id": 7}).unwrap();
        assert_eq!(
            r.apply(&doc! {"_id": 7}, &ctx).unwrap(),
            doc! {"_id": 7, "a": 1}
        );
        let u = parse(doc! {"$set": {"a": 1, "_id": 7}}).unwrap();
        assert_eq!(
            u.apply(&doc! {"x": 1}, &ctx).unwrap(),
            doc! {"_id": 7, "x": 1, "a": 1}
        );
    }

    #[test]
    fn upsert_document_expands_dotted_equalities() {
        assert_eq!(
            upsert_document(&doc! {"a.b": 1, "_id": 5, "c": "x"}).unwrap(),
            doc! {"_id": 5, "a": {"b": 1}, "c": "x"}
        );
        assert_eq!(
            upsert_document(&doc! {"a.b": 1, "a.c": 2}).unwrap(),
            doc! {"a": {"b": 1, "c": 2}}
        );
        let e = upsert_document(&doc! {"a": 1, "a.b": 2}).unwrap_err();
        assert_eq!(e.code, codes::NOT_SINGLE_VALUE_FIELD);
        assert_eq!(
            e.message,
            "cannot infer query fields to set, both paths 'a.b' and 'a' are matched"
        );
        // Numeric components make fields, as for $set on a missing path.
        assert_eq!(
            upsert_document(&doc! {"a.0": 1}).unwrap(),
            doc! {"a": {"0": 1}}
        );
    }

    // ----- arithmetic -----

    #[test]
    fn inc_types_and_overflow() {
        assert_eq!(
            apply(
                doc! {"$inc": {"a": 1, "b": 2.5, "c": 3}},
                doc! {"_id": 1, "a": 1}
            ),
            doc! {"_id": 1, "a": 2, "b": 2.5, "c": 3}
        );
        // int32 overflow promotes to int64.
        assert_eq!(
            apply(doc! {"$inc": {"a": 1}}, doc! {"_id": 1, "a": i32::MAX}),
            doc! {"_id": 1, "a": i64::from(i32::MAX) + 1}
        );
        // Mixed int32/int64 gives int64; a double wins.
        assert_eq!(
            apply(
                doc! {"$inc": {"a": 1i64, "b": 1.5}},
                doc! {"_id": 1, "a": 1, "b": 1i64}
            ),
            doc! {"_id": 1, "a": 2i64, "b": 2.5}
        );
        // int64 overflow fails.
        let e = err(doc! {"$inc": {"a": 1}}, doc! {"_id": 1, "a": i64::MAX});
        assert_eq!(e.code, codes::BAD_VALUE);
        assert_eq!(
            e.message,
            "Failed to apply $inc operations to current value ((NumberLong)9223372036854775807) \
             for document {_id: 1}"
        );
        // Adding 0 is a no-op.
        assert!(!changed(doc! {"$inc": {"a": 0}}, doc! {"_id": 1, "a": 5}));
    }

    #[test]
    fn decimal_arithmetic_is_exact() {
        let dec = |s: &str| Bson::Decimal128(s.parse().unwrap());
        let out = apply(
            doc! {"$inc": {"a": dec("0.2"), "b": 1}, "$mul": {"c": dec("1.5")}},
            doc! {"_id": 1, "a": dec("0.1"), "b": dec("2.50"), "c": 3},
        );
        assert_eq!(out.get("a"), Some(&dec("0.3")));
        assert_eq!(out.get("b"), Some(&dec("3.50")));
        assert_eq!(out.get("c"), Some(&dec("4.5")));
        // A double is first rounded to 15 digits.
        let out = apply(doc! {"$inc": {"a": 0.1}}, doc! {"_id": 1, "a": dec("1")});
        assert_eq!(out.get("a"), Some(&dec("1.100000000000000")));
    }

    #[test]
    fn inc_errors() {
        let e = parse(doc! {"$inc": {"a": "x"}}).unwrap_err();
        assert_eq!(e.code, codes::TYPE_MISMATCH);
        assert_eq!(
            e.message,
            "Cannot increment with non-numeric argument: {a: \"x\"}"
        );
        let e = err(doc! {"$inc": {"a": 1}}, doc! {"_id": 1, "a": "s"});
        assert_eq!(e.code, codes::TYPE_MISMATCH);
        assert_eq!(
            e.message,
            "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of \
             non-numeric type string"
        );
        let e = parse(doc! {"$mul": {"a": true}}).unwrap_err();
        assert_eq!(
            e.message,
            "Cannot multiply with non-numeric argument: {a: true}"
        );
    }

    #[test]
    fn mul_creates_zero_of_the_argument_type() {
        assert_eq!(
            apply(
                doc! {"$mul": {"a": 3, "b": 2i64, "c": 1.5}},
                doc! {"_id": 1, "a": 2}
            ),
            doc! {"_id": 1, "a": 6, "b": 0i64, "c": 0.0}
        );
        assert_eq!(
            apply(doc! {"$mul": {"a": 2}}, doc! {"_id": 1, "a": i32::MAX}),
            doc! {"_id": 1, "a": i64::from(i32::MAX) * 2}
        );
    }

    #[test]
    fn min_and_max() {
        let d = doc! {"_id": 1, "lo": 5, "hi": 5};
        assert_eq!(
            apply(
                doc! {"$min": {"lo": 3, "hi": 9}, "$max": {"x": 1}},
                d.clone()
            ),
            doc! {"_id": 1, "lo": 3, "hi": 5, "x": 1}
        );
        assert_eq!(
            apply(doc! {"$max": {"lo": 3, "hi": 9}}, d.clone()),
            doc! {"_id": 1, "lo": 5, "hi": 9}
        );
        // Equal values (even of another numeric type) leave the field alone.
        assert!(!changed(doc! {"$min": {"lo": 5.0}}, d.clone()));
        // BSON order across types: a string is greater than any number.
        assert_eq!(
            apply(doc! {"$max": {"lo": "a"}}, d),
            doc! {"_id": 1, "lo": "a", "hi": 5}
        );
    }

    #[test]
    fn bit_operations() {
        assert_eq!(
            apply(
                doc! {"$bit": {"a": {"and": 10}, "b": {"or": 5i64}, "c": {"xor": 1}}},
                doc! {"_id": 1, "a": 13, "b": 1, "c": 3}
            ),
            doc! {"_id": 1, "a": 8, "b": 5i64, "c": 2}
        );
        assert_eq!(
            apply(doc! {"$bit": {"n": {"or": 4}}}, doc! {"_id": 1}),
            doc! {"_id": 1, "n": 4}
        );
        assert_eq!(
            parse(doc! {"$bit": {"a": {"and": 1.0}}}).unwrap_err().code,
            codes::BAD_VALUE
        );
        assert_eq!(
            parse(doc! {"$bit": {"a": {"nand": 1}}}).unwrap_err().code,
            codes::BAD_VALUE
        );
        let e = err(doc! {"$bit": {"a": {"and": 1}}}, doc! {"_id": 1, "a": 1.5});
        assert_eq!(e.code, codes::BAD_VALUE);
    }

    // ----- $rename / $currentDate -----

    #[test]
    fn rename_moves_values() {
        assert_eq!(
            apply(
                doc! {"$rename": {"a": "z", "b.c": "d"}},
                doc! {"_id": 1, "a": 1, "b": {"c": 2, "e": 3}, "d": 0}
            ),
            doc! {"_id": 1, "b": {"e": 3}, "d": 2, "z": 1}
        );
        assert!(!changed(
            doc! {"$rename": {"missing": "x"}},
            doc! {"_id": 1}
        ));
    }

    #[test]
    fn rename_errors() {
        assert_eq!(
            parse(doc! {"$rename": {"a": 1}}).unwrap_err().code,
            codes::BAD_VALUE
        );
        assert_eq!(
            parse(doc! {"$rename": {"a": "a"}}).unwrap_err().code,
            codes::BAD_VALUE
        );
        assert_eq!(
            parse(doc! {"$rename": {"a": "a.b"}}).unwrap_err().code,
            codes::BAD_VALUE
        );
        let e = err(doc! {"$rename": {"a.0": "b"}}, doc! {"_id": 1, "a": [1]});
        assert_eq!(e.code, codes::BAD_VALUE);
        assert!(
            e.message
                .starts_with("The source field cannot be an array element")
        );
        let e = err(doc! {"$rename": {"a": "_id"}}, doc! {"_id": 1, "a": 2});
        assert_eq!(e.code, codes::IMMUTABLE_FIELD);
        let e = err(doc! {"$rename": {"_id": "b"}}, doc! {"_id": 1});
        assert_eq!(e.code, codes::IMMUTABLE_FIELD);
    }

    #[test]
    fn current_date() {
        let out = apply(
            doc! {"$currentDate": {"d": true, "t": {"$type": "timestamp"}, "e": {"$type": "date"}}},
            doc! {"_id": 1},
        );
        assert!(matches!(out.get("d"), Some(Bson::DateTime(_))));
        assert!(matches!(out.get("e"), Some(Bson::DateTime(_))));
        assert!(matches!(out.get("t"), Some(Bson::Timestamp(_))));
        assert_eq!(
            parse(doc! {"$currentDate": {"d": 1}}).unwrap_err().code,
            codes::BAD_VALUE
        );
        assert_eq!(
            parse(doc! {"$currentDate": {"d": {"$type": "x"}}})
                .unwrap_err()
                .code,
            codes::BAD_VALUE
        );
    }

    // ----- arrays -----

    #[test]
    fn push_values_and_modifiers() {
        assert_eq!(
            apply(
                doc! {"$push": {"a": 3, "b": [1]}},
                doc! {"_id": 1, "a": [1, 2]}
            ),
            doc! {"_id": 1, "a": [1, 2, 3], "b": [[1]]}
        );
        assert_eq!(
            apply(
                doc! {"$push": {"a": {"$each": [8, 9], "$position": 1}}},
                doc! {"_id": 1, "a": [1, 2]}
            ),
            doc! {"_id": 1, "a": [1, 8, 9, 2]}
        );
        assert_eq!(
            apply(
                doc! {"$push": {"a": {"$each": [0], "$position": -1}}},
                doc! {"_id": 1, "a": [1, 2]}
            ),
            doc! {"_id": 1, "a": [1, 0, 2]}
        );
        assert_eq!(
            apply(
                doc! {"$push": {"a": {"$each": [5, 1], "$sort": -1, "$slice": 3}}},
                doc! {"_id": 1, "a": [3, 4]}
            ),
            doc! {"_id": 1, "a": [5, 4, 3]}
        );
        assert_eq!(
            apply(
                doc! {"$push": {"a": {"$each": [], "$slice": -2}}},
                doc! {"_id": 1, "a": [1, 2, 3]}
            ),
            doc! {"_id": 1, "a": [2, 3]}
        );
        assert_eq!(
            apply(
                doc! {"$push": {"a": {"$each": [{"s": 2, "n": "b"}], "$sort": {"s": 1}}}},
                doc! {"_id": 1, "a": [{"s": 3, "n": "c"}, {"s": 1, "n": "a"}]}
            ),
            doc! {"_id": 1, "a": [{"s": 1, "n": "a"}, {"s": 2, "n": "b"}, {"s": 3, "n": "c"}]}
        );
    }

    #[test]
    fn push_errors() {
        let e = err(doc! {"$push": {"a": 1}}, doc! {"_id": 1, "a": 1});
        assert_eq!(e.code, codes::BAD_VALUE);
        assert_eq!(
            e.message,
            "The field 'a' must be an array but is of type int in document {_id: 1}"
        );
        assert_eq!(
            parse(doc! {"$push": {"a": {"$each": 1}}}).unwrap_err().code,
            codes::BAD_VALUE
        );
        assert_eq!(
            parse(doc! {"$push": {"a": {"$each": [1], "$foo": 1}}})
                .unwrap_err()
                .message,
            "Unrecognized clause in $push: $foo"
        );
        assert_eq!(
            parse(doc! {"$push": {"a": {"$each": [1], "$slice": "x"}}})
                .unwrap_err()
                .code,
            codes::BAD_VALUE
        );
        assert_eq!(
            parse(doc! {"$push": {"a": {"$each": [1], "$sort": 2}}})
                .unwrap_err()
                .code,
            codes::BAD_VALUE
        );
    }

    #[test]
    fn add_to_set() {
        assert_eq!(
            apply(
                doc! {"$addToSet": {"a": 2, "b": {"$each": [1, 1, 2]}}},
                doc! {"_id": 1, "a": [1, 2]}
            ),
            doc! {"_id": 1, "a": [1, 2], "b": [1, 2]}
        );
        // Numeric equality: 1.0 is already in the set.
        assert!(!changed(
            doc! {"$addToSet": {"a": 1.0}},
            doc! {"_id": 1, "a": [1]}
        ));
        let e = err(doc! {"$addToSet": {"a": 1}}, doc! {"_id": 1, "a": 5});
        assert_eq!(e.code, codes::BAD_VALUE);
        assert_eq!(
            e.message,
            "Cannot apply $addToSet to non-array field. Field named 'a' has non-array type int"
        );
    }

    #[test]
    fn pop() {
        let d = doc! {"_id": 1, "a": [1, 2, 3]};
        assert_eq!(
            apply(doc! {"$pop": {"a": 1}}, d.clone()),
            doc! {"_id": 1, "a": [1, 2]}
        );
        assert_eq!(
            apply(doc! {"$pop": {"a": -1}}, d.clone()),
            doc! {"_id": 1, "a": [2, 3]}
        );
        assert!(!changed(doc! {"$pop": {"x": 1}}, d.clone()));
        assert!(!changed(doc! {"$pop": {"a": 1}}, doc! {"_id": 1, "a": []}));
        let e = parse(doc! {"$pop": {"a": 2}}).unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        assert_eq!(e.message, "$pop expects 1 or -1, found: 2");
        assert_eq!(
            parse(doc! {"$pop": {"a": "x"}}).unwrap_err().code,
            codes::FAILED_TO_PARSE
        );
        let e = err(doc! {"$pop": {"a": 1}}, doc! {"_id": 1, "a": 1});
        assert_eq!(e.code, codes::TYPE_MISMATCH);
    }

    #[test]
    fn pull_all_and_pull_by_value() {
        assert_eq!(
            apply(
                doc! {"$pullAll": {"a": [1, 3]}, "$pull": {"b": "x"}},
                doc! {"_id": 1, "a": [1, 2, 3, 1.0], "b": ["x", "y", "x"]}
            ),
            doc! {"_id": 1, "a": [2], "b": ["y"]}
        );
        assert!(!changed(
            doc! {"$pull": {"a": 9}},
            doc! {"_id": 1, "a": [1]}
        ));
        assert!(!changed(doc! {"$pull": {"m": 9}}, doc! {"_id": 1}));
        assert!(!changed(
            doc! {"$pull": {"m.n": 9}},
            doc! {"_id": 1, "m": {}}
        ));
        // A path through a scalar cannot exist: unlike $unset, $pull and $pop fail.
        let e = err(doc! {"$pull": {"a.b": 1}}, doc! {"_id": 1, "a": 1});
        assert_eq!(e.code, codes::PATH_NOT_VIABLE);
        assert_eq!(
            e.message,
            "Cannot use the part (b) of (a.b) to traverse the element ({a: 1})"
        );
        let e = err(doc! {"$pop": {"a.x": 1}}, doc! {"_id": 1, "a": [1]});
        assert_eq!(e.code, codes::PATH_NOT_VIABLE);
        assert!(!changed(
            doc! {"$pop": {"a.5": 1}},
            doc! {"_id": 1, "a": [1]}
        ));
        let e = err(doc! {"$pull": {"a": 1}}, doc! {"_id": 1, "a": 1});
        assert_eq!(e.message, "Cannot apply $pull to a non-array value");
        assert_eq!(
            parse(doc! {"$pullAll": {"a": 1}}).unwrap_err().code,
            codes::BAD_VALUE
        );
    }

    // ----- positional and array filters -----

    #[test]
    fn positional_operator_uses_the_matched_index() {
        assert_eq!(
            apply_pos(
                doc! {"$set": {"a.$.b": 9}},
                doc! {"_id": 1, "a": [{"b": 1}, {"b": 2}]},
                1
            )
            .unwrap(),
            doc! {"_id": 1, "a": [{"b": 1}, {"b": 9}]}
        );
        let e = err(doc! {"$set": {"a.$": 9}}, doc! {"_id": 1, "a": [1]});
        assert_eq!(e.code, codes::BAD_VALUE);
        assert_eq!(
            e.message,
            "The positional operator did not find the match needed from the query."
        );
        let e = apply_pos(
            doc! {"$set": {"a.$": 1, "a.0": 2}},
            doc! {"_id": 1, "a": [0]},
            0,
        )
        .unwrap_err();
        assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
    }

    #[test]
    fn all_positional_updates_every_element() {
        assert_eq!(
            apply(doc! {"$inc": {"a.$[]": 10}}, doc! {"_id": 1, "a": [1, 2]}),
            doc! {"_id": 1, "a": [11, 12]}
        );
        assert_eq!(
            apply(
                doc! {"$set": {"a.$[].b.$[]": 0}},
                doc! {"_id": 1, "a": [{"b": [1, 2]}, {"b": [3]}]}
            ),
            doc! {"_id": 1, "a": [{"b": [0, 0]}, {"b": [0]}]}
        );
        let e = err(doc! {"$set": {"a.$[]": 1}}, doc! {"_id": 1});
        assert_eq!(e.code, codes::BAD_VALUE);
        assert_eq!(
            e.message,
            "The path 'a' must exist in the document in order to apply array updates."
        );
        let e = err(doc! {"$set": {"a.$[]": 1}}, doc! {"_id": 1, "a": 5});
        assert_eq!(
            e.message,
            "Cannot apply array updates to non-array element a: 5"
        );
        let e = parse(doc! {"$set": {"a.$[]": 1, "a.0": 2}}).unwrap_err();
        assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
    }

    #[test]
    fn array_filter_identifiers_are_validated() {
        let e =
            Update::parse(&Bson::Document(doc! {"$set": {"a.$[x]": 1}}), Some(&[])).unwrap_err();
        assert_eq!(e.code, codes::BAD_VALUE);
        assert_eq!(
            e.message,
            "No array filter found for identifier 'x' in path 'a.$[x]'"
        );
        let e = Update::parse(&Bson::Document(doc! {"$set": {"a.$[x]": 1}}), None).unwrap_err();
        assert_eq!(e.code, codes::BAD_VALUE);
    }

    #[test]
    fn pipeline_rejects_array_filters() {
        let e = Update::parse(&Bson::Array(vec![]), Some(&[doc! {"x": 1}])).unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        assert_eq!(
            e.message,
            "arrayFilters may not be specified for pipeline-style updates"
        );
    }

    #[test]
    fn updates_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Update>();
    }

    #[test]
    fn version_field_is_internal() {
        let e = parse(doc! {"$v": 1, "$set": {"a": 1}}).unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        assert_eq!(
            e.message,
            "The $v update field is only recognized internally"
        );
    }

    #[test]
    fn update_must_be_a_document_or_array() {
        assert_eq!(
            Update::parse(&Bson::Int32(1), None).unwrap_err().code,
            codes::FAILED_TO_PARSE
        );
    }

    #[test]
    fn padding_is_limited() {
        let e = err(doc! {"$set": {"a.1500001": 1}}, doc! {"_id": 1, "a": []});
        assert_eq!(e.code, 10);
        assert_eq!(e.message, "can't backfill more than 1500000 elements");
        let out = apply(doc! {"$set": {"a.1500000": 1}}, doc! {"_id": 1, "a": []});
        assert_eq!(out.get_array("a").map(Vec::len).ok(), Some(1_500_001));
    }

    #[test]
    fn identical_replacement_skips_validation() {
        // A stored top-level `$` field (written by a pipeline) does not fail an identical
        // replacement, which is a no-op before any validation.
        assert!(!changed(doc! {"_id": 1, "$a": 1}, doc! {"_id": 1, "$a": 1}));
        let e = err(doc! {"_id": 2, "$a": 1}, doc! {"_id": 1});
        assert_eq!(e.code, codes::DOLLAR_PREFIXED_FIELD_NAME);
    }

    #[test]
    fn signed_zero_is_a_change() {
        // -0.0 and 0.0 compare equal but are different values to store.
        assert!(changed(
            doc! {"$set": {"a": -0.0}},
            doc! {"_id": 1, "a": 0.0}
        ));
        assert!(!changed(
            doc! {"$set": {"a": 0.0}},
            doc! {"_id": 1, "a": 0.0}
        ));
        assert!(changed(doc! {"a": -0.0}, doc! {"_id": 1, "a": 0.0}));
    }

    #[test]
    fn stored_dollar_fields_do_not_block_other_updates() {
        // A `$a` field written by a pipeline update stays; operators on other fields work.
        assert_eq!(
            apply(doc! {"$set": {"b": 1}}, doc! {"_id": 1, "$a": 1}),
            doc! {"_id": 1, "$a": 1, "b": 1}
        );
        let e = err(doc! {"$set": {"$x": 1}}, doc! {"_id": 1});
        assert_eq!(e.code, codes::DOLLAR_PREFIXED_FIELD_NAME);
    }

    #[test]
    fn pop_argument_messages() {
        let e = parse(doc! {"$pop": {"a": "x"}}).unwrap_err();
        assert_eq!(e.message, "Expected a number in: a: \"x\"");
        let e = parse(doc! {"$pop": {"a": 1.5}}).unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        assert_eq!(e.message, "Expected an integer: a: 1.5");
        let e = parse(doc! {"$pop": {"a": 2.0}}).unwrap_err();
        assert_eq!(e.message, "$pop expects 1 or -1, found: 2");
        assert_eq!(
            apply(doc! {"$pop": {"a": -1.0}}, doc! {"_id": 1, "a": [1, 2]}),
            doc! {"_id": 1, "a": [2]}
        );
        let e = err(doc! {"$pop": {"a": 1}}, doc! {"_id": 1, "a": 1});
        assert_eq!(
            e.message,
            "Path 'a' contains an element of non-array type 'int'"
        );
    }

    #[test]
    fn current_date_messages() {
        let e = parse(doc! {"$currentDate": {"d": 1}}).unwrap_err();
        assert_eq!(
            e.message,
            "int is not valid type for $currentDate. Please use a boolean ('true') or a $type \
             expression ({$type: 'timestamp/date'})."
        );
        let e = parse(doc! {"$currentDate": {"d": {"$type": "x"}}}).unwrap_err();
        assert_eq!(
            e.message,
            "The '$type' string field is required to be 'date' or 'timestamp': \
             {$currentDate: {field : {$type: 'date'}}}"
        );
        let e = parse(doc! {"$currentDate": {"d": {"x": 1}}}).unwrap_err();
        assert_eq!(e.message, "Unrecognized $currentDate option: x");
    }

    #[test]
    fn bit_messages() {
        let e = err(doc! {"$bit": {"a": {"and": 1}}}, doc! {"_id": 1, "a": "s"});
        assert_eq!(
            e.message,
            "Cannot apply $bit to a value of non-integral type._id: 1 has the field a of \
             non-integer type string"
        );
        let e = parse(doc! {"$bit": {"a": 5}}).unwrap_err();
        assert!(
            e.message
                .starts_with("The $bit modifier is not compatible with a int")
        );
        let e = parse(doc! {"$bit": {"a": {"and": 1.0}}}).unwrap_err();
        assert_eq!(
            e.message,
            "The $bit modifier field must be an Integer(32/64 bit); a 'double' is not \
             supported here: {and: 1.0}"
        );
    }

    #[test]
    fn push_sort_and_slice_messages() {
        let p = |v: Bson| parse(doc! {"$push": {"a": v}}).unwrap_err().message;
        assert_eq!(
            p(Bson::Document(doc! {"$each": [1], "$sort": {}})),
            "The $sort pattern is empty when it should be a set of fields."
        );
        assert_eq!(
            p(Bson::Document(doc! {"$each": [1], "$sort": 2})),
            "The $sort element value must be either 1 or -1"
        );
        assert_eq!(
            p(Bson::Document(doc! {"$each": [1], "$sort": "x"})),
            "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort \
             embedded fields"
        );
        assert_eq!(
            p(Bson::Document(doc! {"$each": [1], "$slice": 1.5})),
            "The value for $slice must be an integer value but was given type: double"
        );
        assert_eq!(
            p(Bson::Document(doc! {"$each": [1], "$position": "x"})),
            "The value for $position must be an integer value, not of type: string"
        );
        assert_eq!(
            p(Bson::Document(doc! {"$each": 3})),
            "The argument to $each in $push must be an array but it was of type: int"
        );
        // Without $each, a document with $-fields is just a value to push.
        assert_eq!(
            apply(doc! {"$push": {"a": {"$slice": 1}}}, doc! {"_id": 1}),
            doc! {"_id": 1, "a": [{"$slice": 1}]}
        );
        // Sorting by a field puts elements lacking it (and scalars) first, as nulls.
        assert_eq!(
            apply(
                doc! {"$push": {"a": {"$each": [], "$sort": {"k": -1}}}},
                doc! {"_id": 1, "a": [{"k": 1}, 5, {"k": 3}]}
            ),
            doc! {"_id": 1, "a": [{"k": 3}, {"k": 1}, 5]}
        );
    }

    #[test]
    fn add_to_set_each_messages_and_dedup() {
        let e = parse(doc! {"$addToSet": {"a": {"$each": 1}}}).unwrap_err();
        assert_eq!(e.code, codes::TYPE_MISMATCH);
        assert_eq!(
            e.message,
            "The argument to $each in $addToSet must be an array but it was of type int"
        );
        let e = parse(doc! {"$addToSet": {"a": {"$each": [1], "x": 1}}}).unwrap_err();
        assert_eq!(e.code, codes::BAD_VALUE);
        // A document not starting with $each is a value.
        assert_eq!(
            apply(
                doc! {"$addToSet": {"a": {"x": 1, "$each": 1}}},
                doc! {"_id": 1}
            ),
            doc! {"_id": 1, "a": [{"x": 1, "$each": 1}]}
        );
        assert_eq!(
            apply(
                doc! {"$addToSet": {"a": {"$each": [2, 2.0, 3]}}},
                doc! {"_id": 1, "a": [3]}
            ),
            doc! {"_id": 1, "a": [3, 2]}
        );
    }

    #[test]
    fn rename_paths_through_scalars_and_arrays() {
        let e = err(doc! {"$rename": {"a.b": "c"}}, doc! {"_id": 1, "a": 1});
        assert_eq!(e.code, codes::PATH_NOT_VIABLE);
        assert_eq!(
            e.message,
            "cannot use the part (b of a.b) to traverse the element ({a: 1})"
        );
        let e = err(
            doc! {"$rename": {"a.0.b": "c"}},
            doc! {"_id": 1, "a": [{"b": 1}]},
        );
        assert_eq!(
            e.message,
            "The source field cannot be an array element, 'a.0.b' in doc with _id: 1 has an \
             array field called 'a'"
        );
        let e = err(
            doc! {"$rename": {"x": "a.0"}},
            doc! {"_id": 1, "x": 1, "a": [1]},
        );
        assert_eq!(
            e.message,
            "The destination field cannot be an array element, 'a.0' in doc with _id: 1 has \
             an array field called 'a'"
        );
        // The destination may itself be an array: it is overwritten.
        assert_eq!(
            apply(
                doc! {"$rename": {"x": "a"}},
                doc! {"_id": 1, "a": [1], "x": 2}
            ),
            doc! {"_id": 1, "a": 2}
        );
        let e = err(doc! {"$rename": {"_id": "b"}}, doc! {"_id": 1});
        assert_eq!(
            e.message,
            "Unsetting the path '_id' using $rename would modify the immutable field '_id'"
        );
    }

    #[test]
    fn id_must_remain_storable() {
        let ctx = UpdateContext {
            is_insert: true,
            ..Default::default()
        };
        let e = parse(doc! {"$set": {"_id": [1]}})
            .unwrap()
            .apply(&doc! {}, &ctx)
            .unwrap_err();
        assert_eq!(e.code, codes::INVALID_ID_FIELD);
        assert_eq!(e.message, "The '_id' value cannot be of type array");
    }

    // ----- matcher-backed features (need crate::query::matcher) -----

    #[test]
    fn array_filters_select_elements() {
        // From the CRUD spec tests (updateMany-arrayFilters.json).
        let d = doc! {"_id": 1, "y": [{"b": 3}, {"b": 1}]};
        assert_eq!(
            with_filters(
                doc! {"$set": {"y.$[i].b": 2}},
                vec![doc! {"i.b": 3}],
                d.clone()
            )
            .unwrap(),
            doc! {"_id": 1, "y": [{"b": 2}, {"b": 1}]}
        );
        assert_eq!(
            with_filters(doc! {"$set": {"y.$[i].b": 2}}, vec![doc! {"i.b": 4}], d).unwrap(),
            doc! {"_id": 1, "y": [{"b": 3}, {"b": 1}]}
        );
        assert_eq!(
            with_filters(
                doc! {"$set": {"a.$[e]": 0}},
                vec![doc! {"e": {"$gte": 5}}],
                doc! {"_id": 1, "a": [1, 5, 7]}
            )
            .unwrap(),
            doc! {"_id": 1, "a": [1, 0, 0]}
        );
        // Nested: every element of a, then the filtered elements of its b.
        assert_eq!(
            with_filters(
                doc! {"$inc": {"a.$[].b.$[x]": 100}},
                vec![doc! {"x": {"$lt": 2}}],
                doc! {"_id": 1, "a": [{"b": [1, 2]}, {"b": [0]}]}
            )
            .unwrap(),
            doc! {"_id": 1, "a": [{"b": [101, 2]}, {"b": [100]}]}
        );
    }

    #[test]
    fn array_filter_errors() {
        let e = with_filters(
            doc! {"$set": {"a": 1}},
            vec![doc! {"x": 1}],
            doc! {"_id": 1},
        )
        .unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        assert!(
            e.message
                .starts_with("The array filter for identifier 'x' was not used in the update")
        );
        let e = with_filters(
            doc! {"$set": {"a.$[x]": 1}},
            vec![doc! {"x": 1}, doc! {"x": 2}],
            doc! {"_id": 1},
        )
        .unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        let e = with_filters(
            doc! {"$set": {"a.$[x]": 1}},
            vec![doc! {"x": 1, "y": 2}],
            doc! {"_id": 1},
        )
        .unwrap_err();
        assert_eq!(e.code, codes::FAILED_TO_PARSE);
        let e = with_filters(
            doc! {"$set": {"a.$[X]": 1}},
            vec![doc! {"X": 1}],
            doc! {"_id": 1},
        )
        .unwrap_err();
        assert_eq!(e.code, codes::BAD_VALUE);
    }

    #[test]
    fn array_filters_with_logical_operators_and_query_errors() {
        assert_eq!(
            with_filters(
                doc! {"$set": {"a.$[x].ok": true}},
                vec![doc! {"$or": [{"x.n": 1}, {"x.n": 3}]}],
                doc! {"_id": 1, "a": [{"n": 1}, {"n": 2}, {"n": 3}]}
            )
            .unwrap(),
            doc! {"_id": 1, "a": [{"n": 1, "ok": true}, {"n": 2}, {"n": 3, "ok": true}]}
        );
        // The filter is a query first: an unknown top-level operator is the matcher's error.
        let e = with_filters(
            doc! {"$set": {"a.$[i]": 1}},
            vec![doc! {"$i": 0}],
            doc! {"_id": 1},
        )
        .unwrap_err();
        assert_eq!(e.code, codes::BAD_VALUE);
        // `a.$[i.j]` is not an identifier: `$[i` is a plain field, not viable in an array.
        let e = with_filters(
            doc! {"$set": {"a.$[i.j]": 1, "b.$[i]": 1}},
            vec![doc! {"i.j": 0}],
            doc! {"_id": 0, "a": [0.0], "b": [{"j": 0}]},
        )
        .unwrap_err();
        assert_eq!(e.code, codes::PATH_NOT_VIABLE);
        assert_eq!(
            e.message,
            "Cannot create field '$[i' in element {a: [ 0.0 ]}"
        );
    }

    #[test]
    fn pull_with_conditions() {
        assert_eq!(
            apply(
                doc! {"$pull": {"a": {"$gte": 6}}},
                doc! {"_id": 1, "a": [5, 6, 7, 1]}
            ),
            doc! {"_id": 1, "a": [5, 1]}
        );
        // A condition on fields applies to document elements only, as a query.
        assert_eq!(
            apply(
                doc! {"$pull": {"a": {"b": 1}}},
                doc! {"_id": 1, "a": [{"b": 1, "c": 2}, {"b": 2}, 1]}
            ),
            doc! {"_id": 1, "a": [{"b": 2}, 1]}
        );
        assert_eq!(
            apply(
                doc! {"$pull": {"a": {"$in": ["x", "y"]}}},
                doc! {"_id": 1, "a": ["x", "z", "y"]}
            ),
            doc! {"_id": 1, "a": ["z"]}
        );
    }

    #[test]
    fn nested_array_filters_from_the_spec_tests() {
        // updateOne-arrayFilters.json: y.$[i].c.$[j].d with two filters.
        let d = doc! {"_id": 3, "y": [{"b": 5, "c": [{"d": 2}, {"d": 1}]}]};
        let u = doc! {"$set": {"y.$[i].c.$[j].d": 0}};
        assert_eq!(
            with_filters(u.clone(), vec![doc! {"i.b": 5}, doc! {"j.d": 1}], d.clone()).unwrap(),
            doc! {"_id": 3, "y": [{"b": 5, "c": [{"d": 2}, {"d": 0}]}]}
        );
        let out = Update::parse(
            &Bson::Document(u),
            Some(&[doc! {"i.b": 5}, doc! {"j.d": 3}]),
        )
        .unwrap()
        .apply_with_change(&d, &UpdateContext::default())
        .unwrap();
        assert!(!out.1);
    }

    #[test]
    fn two_filters_matching_one_element_conflict() {
        let e = with_filters(
            doc! {"$set": {"a.$[x]": 1, "a.$[y]": 2}},
            vec![doc! {"x": {"$gt": 0}}, doc! {"y": {"$lt": 5}}],
            doc! {"_id": 1, "a": [3]},
        )
        .unwrap_err();
        assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
        assert_eq!(e.message, "Update created a conflict at 'a.0'");
    }

    // ----- pipeline updates (need crate::query::pipeline) -----

    fn pipeline(stages: Vec<Document>, d: Document) -> Result<(Document, bool)> {
        let stages = Bson::Array(stages.into_iter().map(Bson::Document).collect());
        Update::parse(&stages, None)?.apply_with_change(&d, &UpdateContext::default())
    }

    #[test]
    fn pipeline_updates_from_the_spec_tests() {
        let d = doc! {"_id": 1, "x": 1, "y": 1, "t": {"u": {"v": 1}}};
        // updateOne-pipeline.json: the replaced root keeps the original _id.
        assert_eq!(
            pipeline(
                vec![
                    doc! {"$replaceRoot": {"newRoot": "$t"}},
                    doc! {"$addFields": {"foo": 1}}
                ],
                d.clone()
            )
            .unwrap(),
            (doc! {"_id": 1, "u": {"v": 1}, "foo": 1}, true)
        );
        // updateMany-pipeline.json.
        assert_eq!(
            pipeline(
                vec![doc! {"$project": {"x": 1}}, doc! {"$addFields": {"foo": 1}}],
                d.clone()
            )
            .unwrap()
            .0,
            doc! {"_id": 1, "x": 1, "foo": 1}
        );
        // A pipeline that changes nothing is a no-op.
        assert!(!pipeline(vec![doc! {"$set": {"x": 1}}], d).unwrap().1);
    }

    #[test]
    fn pipeline_stage_restrictions() {
        let e = pipeline(vec![doc! {"$match": {"a": 1}}], doc! {"_id": 1}).unwrap_err();
        assert_eq!(e.code, codes::INVALID_OPTIONS);
        assert_eq!(
            e.message,
            "$match is not allowed to be used within an update"
        );
        let e = pipeline(vec![doc! {"$set": {"_id": 2}}], doc! {"_id": 1}).unwrap_err();
        assert_eq!(e.code, codes::IMMUTABLE_FIELD);
        // Top-level `$` fields can be written by pipelines (updateOne-dots_and_dollars.json).
        let out = pipeline(
            vec![doc! {"$replaceWith": {"$setField": {
            "field": {"$literal": "$a"}, "value": 1, "input": "$$ROOT"}}}],
            doc! {"_id": 1, "foo": {}},
        )
        .unwrap();
        assert_eq!(out.0, doc! {"_id": 1, "foo": {}, "$a": 1});
    }

    #[test]
    fn pipeline_errors_surface_at_parse_time() {
        let stages = |v: Vec<Document>| Bson::Array(v.into_iter().map(Bson::Document).collect());
        let e = Update::parse(&stages(vec![doc! {"$foo": {}}]), None).unwrap_err();
        assert_eq!(e.code, codes::UNRECOGNIZED_PIPELINE_STAGE);
        let e = Update::parse(&stages(vec![doc! {"$group": {"_id": null}}]), None).unwrap_err();
        assert_eq!(e.code, codes::INVALID_OPTIONS);
        assert_eq!(
            e.message,
            "$group is not allowed to be used within an update"
        );
        let e = Update::parse(&Bson::Array(vec![Bson::Int32(1)]), None).unwrap_err();
        assert_eq!(e.code, codes::TYPE_MISMATCH);
        assert!(Update::parse(&stages(vec![]), None).unwrap().is_pipeline());
    }

    #[test]
    fn pipeline_sees_let_variables() {
        let stages = Bson::Array(vec![Bson::Document(doc! {"$set": {"x": "$$v"}})]);
        let vars = doc! {"v": 5};
        let ctx = UpdateContext {
            vars: Some(&vars),
            ..Default::default()
        };
        assert_eq!(
            Update::parse(&stages, None)
                .unwrap()
                .apply(&doc! {"_id": 1}, &ctx)
                .unwrap(),
            doc! {"_id": 1, "x": 5}
        );
    }
}
