//! Aggregation expressions (`$add`, `$cond`, `$getField`, `$$ROOT`, ...), used by `$expr`,
//! pipeline stages, pipeline updates and find projections.
//!
//! Values are `Option<Bson>`: `None` is the server's "missing" (a field path that resolves to
//! nothing, `$$REMOVE`). Most operators treat missing like null.

#![allow(clippy::result_large_err)]

use std::cmp::Ordering;

use bson::{Bson, Decimal128, Document, oid::ObjectId};

use crate::error::{CommandError, Result, codes};
use crate::query::compare::compare;

mod accumulator;
mod arithmetic;
mod array;
mod conditional;
mod date;
mod decimal;
mod hash;
mod meta;
mod object;
mod set;
mod string;
mod type_conversion;
mod variables;

use accumulator::*;
pub(crate) use accumulator::{Accumulator, quantile_result, quantile_samples, quantile_spec};
use arithmetic::*;
pub(crate) use arithmetic::{Num, dec_to_f64, f64_to_dec};
use array::*;
use conditional::*;
use date::*;
pub(crate) use date::{add_named_units, format_date};
use decimal::*;
use hash::*;
pub use meta::DocMeta;
use meta::*;
pub(crate) use meta::{check_meta, unavailable, validated as validated_meta};
use object::*;
use set::*;
use string::*;
use type_conversion::*;
pub(crate) use type_conversion::{convert, format_double};
use variables::*;

/// Evaluates an aggregation expression against `root` (the current document, `$$ROOT` and
/// `$$CURRENT`) with the user variables `vars` (from `let`; names without `$$`).
///
/// `Ok(None)` is a missing value (a missing field path, `$$REMOVE`); it differs from
/// `Bson::Null` where the server distinguishes them (e.g. `$project` omits missing fields).
pub fn evaluate(expr: &Bson, root: &Document, vars: &Document) -> Result<Option<Bson>> {
    evaluate_with_meta(expr, root, vars, None)
}

/// Like [`evaluate`], with the current document's metadata for `$meta` (`None` outside a
/// pipeline or a `find` that produces some).
pub fn evaluate_with_meta(
    expr: &Bson,
    root: &Document,
    vars: &Document,
    meta: Option<&DocMeta>,
) -> Result<Option<Bson>> {
    let scope = Scope {
        root,
        user: vars,
        meta,
        parent: None,
        names: Vec::new(),
    };
    eval(expr, &scope)
}

/// Whether a value is true under the server's boolean conversion (`$cond`, `$expr`, `$and`):
/// false, null, missing, undefined and numeric zero are false; everything else is true.
pub fn truthy(value: Option<&Bson>) -> bool {
    match value {
        None | Some(Bson::Null) | Some(Bson::Undefined) => false,
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Int32(i)) => *i != 0,
        Some(Bson::Int64(i)) => *i != 0,
        Some(Bson::Double(d)) => *d != 0.0,
        Some(Bson::Decimal128(d)) => dec_to_f64(d) != 0.0,
        Some(_) => true,
    }
}

/// Evaluates a command's `let` document (`aggregate`, `find`, `update`, ...) into the variables
/// that [`evaluate`] and the pipeline take: each value is an expression evaluated once, without
/// a current document (`{$literal: "$x"}` is the string, `{$rand: {}}` a number). Names are
/// checked as the server checks user variable names. A missing result is kept as undefined,
/// which reads back as missing.
pub fn evaluate_let(let_vars: &Document, outer: &Document) -> Result<Document> {
    let mut out = outer.clone();
    let empty = Document::new();
    for (k, e) in let_vars {
        check_var_name(k)?;
        validate(e)?;
        let v = evaluate(e, &empty, outer)?;
        out.insert(k.clone(), v.unwrap_or(Bson::Undefined));
    }
    Ok(out)
}

/// Checks an expression at parse time the way the server does before any document is seen:
/// unknown operators (168) and malformed operator objects (15983) fail even over no input.
pub fn validate(expr: &Bson) -> Result<()> {
    match expr {
        Bson::Document(d) => {
            let Some((first, arg)) = d.iter().next() else {
                return Ok(());
            };
            if first.starts_with('$') {
                if d.len() != 1 {
                    return Err(one_field_error(d));
                }
                if !KNOWN_OPERATORS.contains(&first.as_str()) {
                    return Err(unknown_operator(first));
                }
                if first == "$literal" || first == "$const" {
                    return Ok(());
                }
                if first == "$meta" {
                    return check_meta(arg);
                }
                if let Bson::Document(a) = arg {
                    precompile_regex(first, a)?;
                }
                validate_args(arg)
            } else {
                for (k, v) in d {
                    if k.starts_with('$') {
                        return Err(CommandError::new(
                            16410,
                            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
                        ));
                    }
                    validate(v)?;
                }
                Ok(())
            }
        }
        Bson::Array(a) => a.iter().try_for_each(validate),
        Bson::String(s) if s.starts_with("$$") => {
            let name = s[2..].split('.').next().unwrap_or("");
            if name.is_empty() {
                return Err(CommandError::new(
                    16869,
                    "empty variable names are not allowed",
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn validate_args(arg: &Bson) -> Result<()> {
    match arg {
        // Operator arguments given as objects ({input, as, in}, {if, then, else}...).
        Bson::Document(d) if d.keys().next().is_some_and(|k| !k.starts_with('$')) => {
            d.values().try_for_each(validate)
        }
        other => validate(other),
    }
}

/// Whether `name` (with its `$`) is an expression operator the evaluator knows.
pub fn is_operator_name(name: &str) -> bool {
    KNOWN_OPERATORS.contains(&name)
}

fn one_field_error(d: &Document) -> CommandError {
    CommandError::new(
        15983,
        format!(
            "an expression specification must contain exactly one field, the name of the expression. Found {} fields in {}",
            d.len(),
            Bson::Document(d.clone())
        ),
    )
}

fn unknown_operator(name: &str) -> CommandError {
    CommandError::new(
        codes::INVALID_PIPELINE_OPERATOR,
        format!("Unrecognized expression '{name}'"),
    )
}

const KNOWN_OPERATORS: &[&str] = &[
    "$sigmoid",
    "$toUUID",
    "$toHashedIndexKey",
    "$meta",
    "$binarySize",
    "$bsonSize",
    "$dateAdd",
    "$dateFromParts",
    "$dateToParts",
    "$dateDiff",
    "$dateTrunc",
    "$dateFromString",
    "$dateSubtract",
    "$firstN",
    "$lastN",
    "$maxN",
    "$minN",
    "$replaceAll",
    "$replaceOne",
    "$sortArray",
    "$tsIncrement",
    "$tsSecond",
    "$abs",
    "$add",
    "$allElementsTrue",
    "$and",
    "$anyElementTrue",
    "$arrayElemAt",
    "$arrayToObject",
    "$avg",
    "$ceil",
    "$cmp",
    "$concat",
    "$concatArrays",
    "$cond",
    "$convert",
    "$dateToString",
    "$dayOfMonth",
    "$dayOfWeek",
    "$dayOfYear",
    "$divide",
    "$eq",
    "$exp",
    "$filter",
    "$first",
    "$floor",
    "$getField",
    "$gt",
    "$gte",
    "$hour",
    "$ifNull",
    "$in",
    "$indexOfArray",
    "$indexOfBytes",
    "$indexOfCP",
    "$isArray",
    "$isNumber",
    "$last",
    "$let",
    "$literal",
    "$ln",
    "$log",
    "$const",
    "$sin",
    "$cos",
    "$tan",
    "$asin",
    "$acos",
    "$atan",
    "$atan2",
    "$sinh",
    "$cosh",
    "$tanh",
    "$asinh",
    "$acosh",
    "$atanh",
    "$degreesToRadians",
    "$radiansToDegrees",
    "$bitAnd",
    "$bitOr",
    "$bitXor",
    "$bitNot",
    "$log10",
    "$lt",
    "$lte",
    "$ltrim",
    "$map",
    "$max",
    "$mergeObjects",
    "$millisecond",
    "$min",
    "$minute",
    "$mod",
    "$month",
    "$multiply",
    "$ne",
    "$not",
    "$objectToArray",
    "$or",
    "$pow",
    "$rand",
    "$range",
    "$reduce",
    "$regexMatch",
    "$regexFind",
    "$median",
    "$percentile",
    "$regexFindAll",
    "$reverseArray",
    "$round",
    "$rtrim",
    "$second",
    "$setDifference",
    "$setEquals",
    "$setField",
    "$setIntersection",
    "$setIsSubset",
    "$setUnion",
    "$size",
    "$slice",
    "$split",
    "$sqrt",
    "$strLenBytes",
    "$strLenCP",
    "$strcasecmp",
    "$substr",
    "$substrBytes",
    "$substrCP",
    "$subtract",
    "$sum",
    "$switch",
    "$toBool",
    "$toDate",
    "$toDecimal",
    "$toDouble",
    "$toInt",
    "$toLong",
    "$toLower",
    "$toObjectId",
    "$toString",
    "$toUpper",
    "$trim",
    "$trunc",
    "$type",
    "$unsetField",
    "$year",
    "$week",
    "$isoWeek",
    "$isoWeekYear",
    "$isoDayOfWeek",
    "$zip",
];

// ---------------------------------------------------------------------------------------------
// Scopes and variables

struct Scope<'a> {
    root: &'a Document,
    user: &'a Document,
    /// The current document's metadata, for `$meta`.
    meta: Option<&'a DocMeta>,
    parent: Option<&'a Scope<'a>>,
    names: Vec<(String, Option<Bson>)>,
}

impl<'a> Scope<'a> {
    fn child(&'a self, names: Vec<(String, Option<Bson>)>) -> Scope<'a> {
        Scope {
            root: self.root,
            user: self.user,
            meta: self.meta,
            parent: Some(self),
            names,
        }
    }

    fn lookup(&self, name: &str) -> Option<Option<Bson>> {
        let mut s = Some(self);
        while let Some(scope) = s {
            if let Some((_, v)) = scope.names.iter().rev().find(|(n, _)| n == name) {
                return Some(v.clone());
            }
            s = scope.parent;
        }
        // A missing `let` value is stored as undefined (which aggregation compares equal to
        // missing); read it back as missing.
        self.user.get(name).map(|v| match v {
            Bson::Undefined => None,
            v => Some(v.clone()),
        })
    }

    fn variable(&self, name: &str) -> Result<Option<Bson>> {
        if let Some(v) = self.lookup(name) {
            return Ok(v);
        }
        match name {
            "ROOT" | "CURRENT" => Ok(Some(Bson::Document(self.root.clone()))),
            "REMOVE" => Ok(None),
            "NOW" => Ok(Some(Bson::DateTime(bson::DateTime::now()))),
            "CLUSTER_TIME" => Ok(Some(Bson::Timestamp(bson::Timestamp {
                time: (bson::DateTime::now().timestamp_millis() / 1000) as u32,
                increment: 1,
            }))),
            // $redact's decisions are these strings on the server.
            "DESCEND" => Ok(Some(Bson::String("descend".into()))),
            "PRUNE" => Ok(Some(Bson::String("prune".into()))),
            "KEEP" => Ok(Some(Bson::String("keep".into()))),
            _ => Err(CommandError::new(
                17276,
                format!("Use of undefined variable: {name}"),
            )),
        }
    }
}

/// Follows `parts` from `value` as the server's field paths do: through documents, and through
/// arrays element by element (missing results are dropped, nested arrays are traversed).
pub(crate) fn traverse(value: &Bson, parts: &[&str]) -> Option<Bson> {
    let Some((first, rest)) = parts.split_first() else {
        return Some(value.clone());
    };
    match value {
        Bson::Document(d) => d.get(*first).and_then(|v| traverse(v, rest)),
        Bson::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Bson::Document(_) | Bson::Array(_) => {
                        if let Some(v) = traverse(item, parts) {
                            out.push(v);
                        }
                    }
                    _ => {}
                }
            }
            Some(Bson::Array(out))
        }
        _ => None,
    }
}

fn field_path(path: &str, scope: &Scope) -> Result<Option<Bson>> {
    if let Some(var) = path.strip_prefix("$$") {
        let mut parts = var.split('.');
        let name = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        // Paths under $$ROOT/$$CURRENT read the document in place instead of copying it.
        if (name == "ROOT" || name == "CURRENT") && !rest.is_empty() && scope.lookup(name).is_none()
        {
            return Ok(traverse_document(scope.root, &rest));
        }
        let value = scope.variable(name)?;
        return Ok(value.and_then(|v| traverse(&v, &rest)));
    }
    let body = &path[1..];
    if body.is_empty() {
        return Err(CommandError::new(
            16872,
            "'$' by itself is not a valid FieldPath",
        ));
    }
    let parts: Vec<&str> = body.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(CommandError::new(
            15998,
            "FieldPath field names may not be empty strings.",
        ));
    }
    match scope.lookup("CURRENT") {
        Some(current) => Ok(current.and_then(|c| traverse(&c, &parts))),
        None => Ok(traverse_document(scope.root, &parts)),
    }
}

fn traverse_document(doc: &Document, parts: &[&str]) -> Option<Bson> {
    let (first, rest) = parts.split_first()?;
    doc.get(*first).and_then(|v| traverse(v, rest))
}

// ---------------------------------------------------------------------------------------------
// The evaluator

fn eval(expr: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    match expr {
        Bson::String(s) if s.starts_with('$') => field_path(s, scope),
        Bson::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                // A missing element of an array literal becomes null.
                out.push(eval(item, scope)?.unwrap_or(Bson::Null));
            }
            Ok(Some(Bson::Array(out)))
        }
        Bson::Document(d) => {
            let Some((first, arg)) = d.iter().next() else {
                return Ok(Some(Bson::Document(Document::new())));
            };
            if first.starts_with('$') {
                if d.len() != 1 {
                    return Err(one_field_error(d));
                }
                operator(first, arg, scope)
            } else {
                let mut out = Document::new();
                for (k, v) in d {
                    if let Some(val) = eval(v, scope)? {
                        out.insert(k.clone(), val);
                    }
                }
                Ok(Some(Bson::Document(out)))
            }
        }
        other => Ok(Some(other.clone())),
    }
}

/// The arguments of an n-ary operator: an array is the argument list, anything else is one
/// argument.
fn arg_list(arg: &Bson) -> Vec<&Bson> {
    match arg {
        Bson::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn exact_args<'a>(name: &str, arg: &'a Bson, n: usize) -> Result<Vec<&'a Bson>> {
    let args = arg_list(arg);
    if args.len() != n {
        return Err(CommandError::new(
            16020,
            format!(
                "Expression {name} takes exactly {n} arguments. {} were passed in.",
                args.len()
            ),
        ));
    }
    Ok(args)
}

fn range_args<'a>(name: &str, arg: &'a Bson, min: usize, max: usize) -> Result<Vec<&'a Bson>> {
    let args = arg_list(arg);
    if args.len() < min {
        return Err(CommandError::new(
            16020,
            format!(
                "Expression {name} takes at least {min} arguments, and at most {max}. {} were passed in.",
                args.len()
            ),
        ));
    }
    if args.len() > max {
        return Err(CommandError::new(
            16021,
            format!(
                "Expression {name} takes at least {min} arguments, and at most {max}. {} were passed in.",
                args.len()
            ),
        ));
    }
    Ok(args)
}

fn eval_all(args: &[&Bson], scope: &Scope) -> Result<Vec<Option<Bson>>> {
    args.iter().map(|a| eval(a, scope)).collect()
}

fn eval_exact(name: &str, arg: &Bson, n: usize, scope: &Scope) -> Result<Vec<Option<Bson>>> {
    eval_all(&exact_args(name, arg, n)?, scope)
}

fn nullish(v: &Option<Bson>) -> bool {
    matches!(v, None | Some(Bson::Null) | Some(Bson::Undefined))
}

/// The server's type name of a value (`$type`, error messages); "missing" for missing.
pub fn type_name(v: Option<&Bson>) -> &'static str {
    match v {
        None => "missing",
        Some(b) => match b {
            Bson::Double(_) => "double",
            Bson::String(_) => "string",
            Bson::Array(_) => "array",
            Bson::Document(_) => "object",
            Bson::Boolean(_) => "bool",
            Bson::Null => "null",
            Bson::RegularExpression(_) => "regex",
            Bson::JavaScriptCode(_) => "javascript",
            Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
            Bson::Int32(_) => "int",
            Bson::Int64(_) => "long",
            Bson::Timestamp(_) => "timestamp",
            Bson::Binary(_) => "binData",
            Bson::ObjectId(_) => "objectId",
            Bson::DateTime(_) => "date",
            Bson::Symbol(_) => "symbol",
            Bson::Decimal128(_) => "decimal",
            Bson::Undefined => "undefined",
            Bson::MaxKey => "maxKey",
            Bson::MinKey => "minKey",
            Bson::DbPointer(_) => "dbPointer",
        },
    }
}

fn tn(v: &Option<Bson>) -> &'static str {
    type_name(v.as_ref())
}

/// Compares two expression values with the full BSON order; missing sorts with undefined,
/// below null (the server's canonical type order for aggregation values).
pub fn compare_values(a: Option<&Bson>, b: Option<&Bson>) -> Ordering {
    let a = a.unwrap_or(&Bson::Undefined);
    let b = b.unwrap_or(&Bson::Undefined);
    compare(a, b)
}

fn operator(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    match name {
        "$literal" | "$const" => Ok(Some(arg.clone())),
        // Arithmetic
        "$add" => op_add(arg, scope),
        "$subtract" => op_subtract(arg, scope),
        "$multiply" => op_multiply(arg, scope),
        "$divide" => op_divide(arg, scope),
        "$mod" => op_mod(arg, scope),
        "$abs" | "$ceil" | "$floor" | "$sqrt" | "$exp" | "$ln" | "$log10" => {
            op_unary_math(name, arg, scope)
        }
        "$log" => op_log(arg, scope),
        "$sin" | "$cos" | "$tan" | "$asin" | "$acos" | "$atan" | "$sinh" | "$cosh" | "$tanh"
        | "$asinh" | "$acosh" | "$atanh" | "$degreesToRadians" | "$radiansToDegrees" => {
            op_trig(name, arg, scope)
        }
        "$atan2" => op_atan2(arg, scope),
        "$bitAnd" | "$bitOr" | "$bitXor" => op_bitwise(name, arg, scope),
        "$bitNot" => op_bit_not(arg, scope),
        "$pow" => op_pow(arg, scope),
        "$round" | "$trunc" => op_round(name, arg, scope),
        // Comparison
        "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" | "$cmp" => {
            let v = eval_exact(name, arg, 2, scope)?;
            let ord = compare_values(v[0].as_ref(), v[1].as_ref());
            Ok(Some(match name {
                "$eq" => Bson::Boolean(ord == Ordering::Equal),
                "$ne" => Bson::Boolean(ord != Ordering::Equal),
                "$gt" => Bson::Boolean(ord == Ordering::Greater),
                "$gte" => Bson::Boolean(ord != Ordering::Less),
                "$lt" => Bson::Boolean(ord == Ordering::Less),
                "$lte" => Bson::Boolean(ord != Ordering::Greater),
                _ => Bson::Int32(match ord {
                    Ordering::Less => -1,
                    Ordering::Equal => 0,
                    Ordering::Greater => 1,
                }),
            }))
        }
        // Boolean
        "$and" => {
            for a in arg_list(arg) {
                if !truthy(eval(a, scope)?.as_ref()) {
                    return Ok(Some(Bson::Boolean(false)));
                }
            }
            Ok(Some(Bson::Boolean(true)))
        }
        "$or" => {
            for a in arg_list(arg) {
                if truthy(eval(a, scope)?.as_ref()) {
                    return Ok(Some(Bson::Boolean(true)));
                }
            }
            Ok(Some(Bson::Boolean(false)))
        }
        "$not" => {
            let v = eval_exact(name, arg, 1, scope)?;
            Ok(Some(Bson::Boolean(!truthy(v[0].as_ref()))))
        }
        // Conditionals
        "$cond" => op_cond(arg, scope),
        "$ifNull" => {
            let args = arg_list(arg);
            if args.len() < 2 {
                return Err(CommandError::new(
                    1257300,
                    format!("$ifNull needs at least two arguments, had: {}", args.len()),
                ));
            }
            let last = args.len() - 1;
            for (i, a) in args.iter().enumerate() {
                let v = eval(a, scope)?;
                if i == last || !nullish(&v) {
                    return Ok(v);
                }
            }
            Ok(None)
        }
        "$switch" => op_switch(arg, scope),
        "$let" => op_let(arg, scope),
        // Types
        "$type" => {
            let v = eval_exact(name, arg, 1, scope)?;
            Ok(Some(Bson::String(tn(&v[0]).to_string())))
        }
        "$isNumber" => {
            let v = eval_exact(name, arg, 1, scope)?;
            Ok(Some(Bson::Boolean(matches!(
                v[0],
                Some(Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_))
            ))))
        }
        "$toString" | "$toInt" | "$toLong" | "$toDouble" | "$toBool" | "$toObjectId"
        | "$toDate" | "$toDecimal" => {
            let v = eval_exact(name, arg, 1, scope)?;
            let target = match name {
                "$toString" => "string",
                "$toInt" => "int",
                "$toLong" => "long",
                "$toDouble" => "double",
                "$toBool" => "bool",
                "$toObjectId" => "objectId",
                "$toDate" => "date",
                _ => "decimal",
            };
            let input = v.into_iter().next().flatten();
            if nullish(&input) {
                return Ok(Some(Bson::Null));
            }
            convert(input.unwrap_or(Bson::Null), target).map(Some)
        }
        "$convert" => op_convert(arg, scope),
        "$toUUID" => op_to_uuid(arg, scope),
        "$toHashedIndexKey" => op_to_hashed_index_key(arg, scope),
        "$meta" => op_meta(arg, scope),
        "$sigmoid" => op_sigmoid(arg, scope),
        // Strings
        "$concat" => {
            let mut out = String::new();
            for a in arg_list(arg) {
                match eval(a, scope)? {
                    v if nullish(&v) => return Ok(Some(Bson::Null)),
                    Some(Bson::String(s)) => out.push_str(&s),
                    v => {
                        return Err(CommandError::new(
                            16702,
                            format!("$concat only supports strings, not {}", tn(&v)),
                        ));
                    }
                }
            }
            Ok(Some(Bson::String(out)))
        }
        "$substr" | "$substrBytes" => op_substr_bytes(name, arg, scope),
        "$substrCP" => op_substr_cp(arg, scope),
        "$toLower" | "$toUpper" => {
            let v = eval_exact(name, arg, 1, scope)?;
            let s = coerce_to_string(name, &v[0])?;
            Ok(Some(Bson::String(if name == "$toLower" {
                s.to_ascii_lowercase()
            } else {
                s.to_ascii_uppercase()
            })))
        }
        "$strLenBytes" | "$strLenCP" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                Some(Bson::String(s)) => Ok(Some(Bson::Int32(if name == "$strLenBytes" {
                    s.len() as i32
                } else {
                    s.chars().count() as i32
                }))),
                other => Err(CommandError::new(
                    if name == "$strLenBytes" { 34473 } else { 34471 },
                    format!("{name} requires a string argument, found: {}", tn(other)),
                )),
            }
        }
        "$strcasecmp" => {
            let v = eval_exact(name, arg, 2, scope)?;
            let a = coerce_to_string(name, &v[0])?.to_ascii_lowercase();
            let b = coerce_to_string(name, &v[1])?.to_ascii_lowercase();
            Ok(Some(Bson::Int32(match a.cmp(&b) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            })))
        }
        "$split" => op_split(arg, scope),
        "$trim" | "$ltrim" | "$rtrim" => op_trim(name, arg, scope),
        "$indexOfBytes" | "$indexOfCP" => op_index_of_str(name, arg, scope),
        "$regexMatch" => op_regex_match(arg, scope),
        "$regexFind" => op_regex_find(arg, scope),
        "$median" | "$percentile" => op_quantile(name, arg, scope),
        "$regexFindAll" => op_regex_find_all(arg, scope),
        // Arrays
        "$arrayElemAt" => {
            let v = eval_exact(name, arg, 2, scope)?;
            array_elem_at(name, &v[0], &v[1])
        }
        "$first" | "$last" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                x if nullish(x) => Ok(Some(Bson::Null)),
                Some(Bson::Array(a)) => Ok(if name == "$first" {
                    a.first().cloned()
                } else {
                    a.last().cloned()
                }),
                other => Err(CommandError::new(
                    28689,
                    format!("{name}'s argument must be an array, but is {}", tn(other)),
                )),
            }
        }
        "$size" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                Some(Bson::Array(a)) => Ok(Some(Bson::Int32(a.len() as i32))),
                other => Err(CommandError::new(
                    17124,
                    format!(
                        "The argument to $size must be an array. Type of argument is {}",
                        tn(other)
                    ),
                )),
            }
        }
        "$slice" => op_slice(arg, scope),
        "$concatArrays" => {
            let mut out = Vec::new();
            for a in arg_list(arg) {
                match eval(a, scope)? {
                    v if nullish(&v) => return Ok(Some(Bson::Null)),
                    Some(Bson::Array(items)) => out.extend(items),
                    v => {
                        return Err(CommandError::new(
                            28664,
                            format!("$concatArrays only supports arrays, not {}", tn(&v)),
                        ));
                    }
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        "$in" => {
            let v = eval_exact(name, arg, 2, scope)?;
            match &v[1] {
                Some(Bson::Array(items)) => {
                    Ok(Some(Bson::Boolean(items.iter().any(|i| {
                        compare_values(Some(i), v[0].as_ref()) == Ordering::Equal
                    }))))
                }
                other => Err(CommandError::new(
                    40081,
                    format!(
                        "$in requires an array as a second argument, found: {}",
                        tn(other)
                    ),
                )),
            }
        }
        "$isArray" => {
            let v = eval_exact(name, arg, 1, scope)?;
            Ok(Some(Bson::Boolean(matches!(v[0], Some(Bson::Array(_))))))
        }
        "$filter" => op_filter(arg, scope),
        "$map" => op_map(arg, scope),
        "$reduce" => op_reduce(arg, scope),
        "$indexOfArray" => op_index_of_array(arg, scope),
        "$reverseArray" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                x if nullish(x) => Ok(Some(Bson::Null)),
                Some(Bson::Array(a)) => Ok(Some(Bson::Array(a.iter().rev().cloned().collect()))),
                other => Err(CommandError::new(
                    34435,
                    format!(
                        "The argument to $reverseArray must be an array, but was of type: {}",
                        tn(other)
                    ),
                )),
            }
        }
        "$range" => op_range(arg, scope),
        "$arrayToObject" => op_array_to_object(arg, scope),
        "$objectToArray" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                x if nullish(x) => Ok(Some(Bson::Null)),
                Some(Bson::Document(d)) => Ok(Some(Bson::Array(
                    d.iter()
                        .map(|(k, v)| Bson::Document(bson::doc! {"k": k.clone(), "v": v.clone()}))
                        .collect(),
                ))),
                other => Err(CommandError::new(
                    40390,
                    format!(
                        "$objectToArray requires a document input, found: {}",
                        tn(other)
                    ),
                )),
            }
        }
        "$zip" => op_zip(arg, scope),
        "$firstN" | "$lastN" | "$maxN" | "$minN" => op_array_n(name, arg, scope),
        "$sortArray" => op_sort_array(arg, scope),
        "$bsonSize" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                x if nullish(x) => Ok(Some(Bson::Null)),
                Some(Bson::Document(d)) => {
                    let bytes = d
                        .to_vec()
                        .map_err(|e| CommandError::new(codes::INTERNAL_ERROR, e.to_string()))?;
                    Ok(Some(Bson::Int32(bytes.len() as i32)))
                }
                other => Err(CommandError::new(
                    31393,
                    format!("$bsonSize requires a document input, found: {}", tn(other)),
                )),
            }
        }
        "$binarySize" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                x if nullish(x) => Ok(Some(Bson::Null)),
                Some(Bson::String(s)) => Ok(Some(Bson::Int32(s.len() as i32))),
                Some(Bson::Binary(b)) => Ok(Some(Bson::Int32(b.bytes.len() as i32))),
                other => Err(CommandError::new(
                    51276,
                    format!(
                        "$binarySize requires a string or BinData argument, found: {}",
                        tn(other)
                    ),
                )),
            }
        }
        "$tsSecond" | "$tsIncrement" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                x if nullish(x) => Ok(Some(Bson::Null)),
                Some(Bson::Timestamp(t)) => Ok(Some(Bson::Int64(if name == "$tsSecond" {
                    t.time as i64
                } else {
                    t.increment as i64
                }))),
                other => Err(CommandError::new(
                    5687301,
                    format!(
                        "Argument to {name} must be a timestamp, but is {}",
                        tn(other)
                    ),
                )),
            }
        }
        "$replaceOne" | "$replaceAll" => {
            // 8.x codes: 51751 not an object, 51750 unknown argument, 51749/51748/51747 a
            // missing input/find/replacement, 10503904/10503901/10503902 their wrong types.
            let Bson::Document(d) = arg else {
                return Err(CommandError::new(
                    51751,
                    format!(
                        "{name} requires an object as an argument, found: {}",
                        type_name(Some(arg))
                    ),
                ));
            };
            if let Some(k) = d
                .keys()
                .find(|k| !matches!(k.as_str(), "input" | "find" | "replacement"))
            {
                return Err(CommandError::new(
                    51750,
                    format!("{name} found an unknown argument: {k}"),
                ));
            }
            let mut vals = Vec::new();
            for (key, code) in [("input", 51749), ("find", 51748), ("replacement", 51747)] {
                let e = d.get(key).ok_or_else(|| {
                    CommandError::new(code, format!("{name} requires '{key}' to be specified"))
                })?;
                vals.push(eval(e, scope)?);
            }
            let mut strs = Vec::new();
            for ((key, code), v) in [
                ("input", 10503904),
                ("find", 10503901),
                ("replacement", 10503902),
            ]
            .iter()
            .zip(&vals)
            {
                match v {
                    Some(Bson::String(s)) => strs.push(s.clone()),
                    x if nullish(x) => {}
                    other => {
                        return Err(CommandError::new(
                            *code,
                            format!(
                                "{name} requires that '{key}' be a string, found: {}",
                                other.clone().unwrap_or(Bson::Null)
                            ),
                        ));
                    }
                }
            }
            if strs.len() < 3 {
                return Ok(Some(Bson::Null));
            }
            Ok(Some(Bson::String(if name == "$replaceOne" {
                strs[0].replacen(&strs[1], &strs[2], 1)
            } else if strs[1].is_empty() {
                // Rust's replace of "" inserts between characters, as the server does.
                strs[0].replace("", &strs[2])
            } else {
                strs[0].replace(&strs[1], &strs[2])
            })))
        }
        "$dateAdd" | "$dateSubtract" => op_date_add(name, arg, scope),
        "$dateFromParts" => op_date_from_parts(arg, scope),
        "$dateToParts" => op_date_to_parts(arg, scope),
        "$dateDiff" => op_date_diff(arg, scope),
        "$dateTrunc" => op_date_trunc(arg, scope),
        "$dateFromString" => op_date_from_string(arg, scope),
        "$allElementsTrue" | "$anyElementTrue" => {
            let v = eval_exact(name, arg, 1, scope)?;
            match &v[0] {
                Some(Bson::Array(a)) => Ok(Some(Bson::Boolean(if name == "$allElementsTrue" {
                    a.iter().all(|x| truthy(Some(x)))
                } else {
                    a.iter().any(|x| truthy(Some(x)))
                }))),
                other => Err(CommandError::new(
                    if name == "$allElementsTrue" {
                        17040
                    } else {
                        17041
                    },
                    format!("{name}'s argument must be an array, but is {}", tn(other)),
                )),
            }
        }
        "$setUnion" | "$setIntersection" | "$setDifference" | "$setEquals" | "$setIsSubset" => {
            op_set(name, arg, scope)
        }
        "$sum" | "$avg" | "$min" | "$max" => {
            let args = arg_list(arg);
            let values: Vec<Option<Bson>> = if args.len() == 1 {
                match eval(args[0], scope)? {
                    Some(Bson::Array(items)) => items.into_iter().map(Some).collect(),
                    v => vec![v],
                }
            } else {
                eval_all(&args, scope)?
            };
            let mut acc = Accumulator::new(name)?;
            for v in values {
                acc.add(v)?;
            }
            Ok(Some(acc.finish()))
        }
        // Objects
        "$getField" => op_get_field(arg, scope),
        "$setField" | "$unsetField" => op_set_field(name, arg, scope),
        "$mergeObjects" => {
            let mut out = Document::new();
            for a in arg_list(arg) {
                match eval(a, scope)? {
                    v if nullish(&v) => {}
                    Some(Bson::Document(d)) => {
                        for (k, v) in d {
                            out.insert(k, v);
                        }
                    }
                    v => {
                        return Err(CommandError::new(
                            40400,
                            format!(
                                "$mergeObjects requires object inputs, but input {} is of type {}",
                                v.clone().unwrap_or(Bson::Null),
                                tn(&v)
                            ),
                        ));
                    }
                }
            }
            Ok(Some(Bson::Document(out)))
        }
        // Dates
        "$year" | "$month" | "$dayOfMonth" | "$hour" | "$minute" | "$second" | "$millisecond"
        | "$dayOfWeek" | "$dayOfYear" | "$week" | "$isoWeek" | "$isoWeekYear" | "$isoDayOfWeek" => {
            op_date_part(name, arg, scope)
        }
        "$dateToString" => op_date_to_string(arg, scope),
        "$rand" => {
            match arg {
                Bson::Document(d) if d.is_empty() => {}
                _ => {
                    return Err(CommandError::new(
                        10065,
                        "invalid parameter: expected an object ($rand)",
                    ));
                }
            }
            Ok(Some(Bson::Double(rand::random::<f64>())))
        }
        _ => Err(unknown_operator(name)),
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

fn object_arg<'a>(name: &str, arg: &'a Bson, code: i32) -> Result<&'a Document> {
    match arg {
        Bson::Document(d) => Ok(d),
        other => Err(CommandError::new(
            code,
            format!(
                "{name} only supports an object as its argument, not {}",
                type_name(Some(other))
            ),
        )),
    }
}

/// The optional start (`i` = 2) or end (`i` = 3) index of `$indexOfArray`, `$indexOfBytes` and
/// `$indexOfCP`: a non-negative integral number (40097, 40096); `start` is how the operator's
/// message names it ("starting" or "start").
fn index_bound(v: &[Option<Bson>], i: usize, name: &str, start: &str) -> Result<Option<usize>> {
    match v.get(i) {
        None => Ok(None),
        Some(x) => match int_arg(x) {
            Some(n) if n >= 0 => Ok(Some(n as usize)),
            Some(_) => Err(CommandError::new(
                40097,
                format!(
                    "{name} requires a nonnegative {start} index, found: {}",
                    x.clone().unwrap_or(Bson::Null)
                ),
            )),
            None => Err(CommandError::new(
                40096,
                format!(
                    "{name} requires an integral starting index, found a value of type: {}",
                    tn(x)
                ),
            )),
        },
    }
}

fn int_arg(v: &Option<Bson>) -> Option<i64> {
    match v.as_ref().and_then(Num::from_bson)? {
        Num::Int(i) => Some(i as i64),
        Num::Long(l) => Some(l),
        n @ (Num::Double(_) | Num::Decimal(_)) if n.f64().fract() == 0.0 => Some(n.f64() as i64),
        _ => None,
    }
}

fn parse_object<'a>(
    name: &str,
    arg: &'a Bson,
    allowed: &[&str],
    code: i32,
) -> Result<Vec<(&'a str, &'a Bson)>> {
    let d = object_arg(name, arg, code)?;
    let mut out = Vec::new();
    for (k, v) in d {
        if !allowed.contains(&k.as_str()) {
            return Err(CommandError::new(
                code,
                format!("Unrecognized parameter to {name}: {k}"),
            ));
        }
        out.push((k.as_str(), v));
    }
    Ok(out)
}

fn field<'a>(fields: &[(&str, &'a Bson)], key: &str) -> Option<&'a Bson> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn as_name(name: &str, fields: &[(&str, &Bson)], default: &str) -> Result<String> {
    match field(fields, "as") {
        None => Ok(default.to_string()),
        Some(Bson::String(s)) => {
            check_var_name(s)?;
            Ok(s.clone())
        }
        Some(_) => Err(CommandError::new(
            28648,
            format!("{name}: 'as' must be a string"),
        )),
    }
}

#[cfg(test)]
mod tests;
