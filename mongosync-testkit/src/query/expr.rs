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

/// 241 ConversionFailure (`$convert` and the `$toX` shorthands).
const CONVERSION_FAILURE: i32 = 241;

/// Evaluates an aggregation expression against `root` (the current document, `$$ROOT` and
/// `$$CURRENT`) with the user variables `vars` (from `let`; names without `$$`).
///
/// `Ok(None)` is a missing value (a missing field path, `$$REMOVE`); it differs from
/// `Bson::Null` where the server distinguishes them (e.g. `$project` omits missing fields).
pub fn evaluate(expr: &Bson, root: &Document, vars: &Document) -> Result<Option<Bson>> {
    let scope = Scope {
        root,
        user: vars,
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
                if first == "$literal" {
                    return Ok(());
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
    "$binarySize",
    "$bsonSize",
    "$dateAdd",
    "$dateFromParts",
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
    "$zip",
];

// ---------------------------------------------------------------------------------------------
// Scopes and variables

struct Scope<'a> {
    root: &'a Document,
    user: &'a Document,
    parent: Option<&'a Scope<'a>>,
    names: Vec<(String, Option<Bson>)>,
}

impl<'a> Scope<'a> {
    fn child(&'a self, names: Vec<(String, Option<Bson>)>) -> Scope<'a> {
        Scope {
            root: self.root,
            user: self.user,
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
        "$literal" => Ok(Some(arg.clone())),
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
            let f = parse_object(name, arg, &["input", "find", "replacement"], 51240)?;
            let mut vals = Vec::new();
            for key in ["input", "find", "replacement"] {
                let e = field(&f, key).ok_or_else(|| {
                    CommandError::new(
                        51241 + vals.len() as i32,
                        format!("{name} requires '{key}' to be specified"),
                    )
                })?;
                vals.push(eval(e, scope)?);
            }
            let mut strs = Vec::new();
            for (key, v) in ["input", "find", "replacement"].iter().zip(&vals) {
                match v {
                    Some(Bson::String(s)) => strs.push(s.clone()),
                    x if nullish(x) => {}
                    other => {
                        return Err(CommandError::new(
                            51746,
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
        | "$dayOfWeek" | "$dayOfYear" => op_date_part(name, arg, scope),
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

/// A numeric value with the server's type ladder int → long → double → decimal. Decimal
/// `+ - * /` are exact (see [`Dec`]); other decimal operations go through `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i32),
    Long(i64),
    Double(f64),
    Decimal(Decimal128),
}

impl Num {
    pub(crate) fn from_bson(v: &Bson) -> Option<Num> {
        match v {
            Bson::Int32(i) => Some(Num::Int(*i)),
            Bson::Int64(i) => Some(Num::Long(*i)),
            Bson::Double(d) => Some(Num::Double(*d)),
            Bson::Decimal128(d) => Some(Num::Decimal(*d)),
            _ => None,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Num::Int(_) => 0,
            Num::Long(_) => 1,
            Num::Double(_) => 2,
            Num::Decimal(_) => 3,
        }
    }

    pub(crate) fn f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Long(i) => i as f64,
            Num::Double(d) => d,
            Num::Decimal(d) => dec_to_f64(&d),
        }
    }

    fn i64(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i as i64),
            Num::Long(i) => Some(i),
            _ => None,
        }
    }

    pub(crate) fn to_bson(self) -> Bson {
        match self {
            Num::Int(i) => Bson::Int32(i),
            Num::Long(i) => Bson::Int64(i),
            Num::Double(d) => Bson::Double(d),
            Num::Decimal(d) => Bson::Decimal128(d),
        }
    }

    /// A float result in the type of the wider operand (double unless decimal).
    fn float(rank: u8, v: f64) -> Num {
        if rank == 3 {
            Num::Decimal(f64_to_dec(v))
        } else {
            Num::Double(v)
        }
    }

    /// An integer result narrowed to int when both operands were ints and it fits, widened to
    /// double when it overflows a long.
    fn integer(rank: u8, v: Option<i64>, fallback: f64) -> Num {
        match v {
            Some(v) if rank == 0 && i32::try_from(v).is_ok() => Num::Int(v as i32),
            Some(v) => Num::Long(v),
            None => Num::Double(fallback),
        }
    }

    pub(crate) fn add(self, other: Num) -> Num {
        let rank = self.rank().max(other.rank());
        match (self.i64(), other.i64()) {
            (Some(a), Some(b)) => Num::integer(rank, a.checked_add(b), a as f64 + b as f64),
            _ if rank == 3 => Num::decimal_op(self, other, Dec::add, |a, b| a + b),
            _ => Num::float(rank, self.f64() + other.f64()),
        }
    }

    fn sub(self, other: Num) -> Num {
        let rank = self.rank().max(other.rank());
        match (self.i64(), other.i64()) {
            (Some(a), Some(b)) => Num::integer(rank, a.checked_sub(b), a as f64 - b as f64),
            _ if rank == 3 => Num::decimal_op(self, other, |a, b| a.add(b.neg()), |a, b| a - b),
            _ => Num::float(rank, self.f64() - other.f64()),
        }
    }

    fn mul(self, other: Num) -> Num {
        let rank = self.rank().max(other.rank());
        match (self.i64(), other.i64()) {
            (Some(a), Some(b)) => Num::integer(rank, a.checked_mul(b), a as f64 * b as f64),
            _ if rank == 3 => Num::decimal_op(self, other, Dec::mul, |a, b| a * b),
            _ => Num::float(rank, self.f64() * other.f64()),
        }
    }

    /// Division: always a double, or a decimal if either operand is one.
    fn div(self, other: Num) -> Num {
        if self.rank().max(other.rank()) == 3 {
            Num::decimal_op(self, other, Dec::div, |a, b| a / b)
        } else {
            Num::Double(self.f64() / other.f64())
        }
    }

    /// The operand as an exact decimal (a double through its 15 significant digits, as the
    /// server converts it).
    fn to_dec(self) -> Option<Dec> {
        match self {
            Num::Int(i) => Some(Dec::from_i64(i as i64)),
            Num::Long(l) => Some(Dec::from_i64(l)),
            Num::Double(d) => Dec::parse(&format!("{d:.14e}")),
            Num::Decimal(d) => Dec::parse(&d.to_string()),
        }
    }

    fn decimal_op(
        a: Num,
        b: Num,
        exact: impl Fn(Dec, Dec) -> Option<Dec>,
        approx: impl Fn(f64, f64) -> f64,
    ) -> Num {
        match (a.to_dec(), b.to_dec()) {
            (Some(x), Some(y)) => match exact(x, y).and_then(|r| r.to_decimal128()) {
                Some(d) => Num::Decimal(d),
                None => Num::Decimal(f64_to_dec(approx(a.f64(), b.f64()))),
            },
            // NaN or an infinity.
            _ => Num::Decimal(f64_to_dec(approx(a.f64(), b.f64()))),
        }
    }

    fn is_zero(self) -> bool {
        self.f64() == 0.0
    }
}

pub(crate) fn dec_to_f64(d: &Decimal128) -> f64 {
    let s = d.to_string();
    s.parse::<f64>().unwrap_or_else(|_| {
        if s.contains('-') && s.contains("Inf") {
            f64::NEG_INFINITY
        } else if s.contains("Inf") {
            f64::INFINITY
        } else {
            f64::NAN
        }
    })
}

pub(crate) fn f64_to_dec(v: f64) -> Decimal128 {
    let s = if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{v:?}")
    };
    s.parse::<Decimal128>().unwrap_or_else(|_| {
        "NaN"
            .parse::<Decimal128>()
            .unwrap_or(Decimal128::from_bytes([0; 16]))
    })
}

fn op_add(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let mut total = Num::Int(0);
    let mut date: Option<i64> = None;
    let mut null = false;
    for a in arg_list(arg) {
        let v = eval(a, scope)?;
        match &v {
            x if nullish(x) => null = true,
            Some(Bson::DateTime(d)) => {
                if date.is_some() {
                    return Err(CommandError::new(
                        16612,
                        "only one date allowed in an $add expression",
                    ));
                }
                date = Some(d.timestamp_millis());
            }
            Some(b) => match Num::from_bson(b) {
                Some(n) => total = total.add(n),
                None => {
                    return Err(CommandError::type_mismatch(format!(
                        "$add only supports numeric or date types, not {}",
                        tn(&v)
                    )));
                }
            },
            None => {}
        }
    }
    if null {
        return Ok(Some(Bson::Null));
    }
    if let Some(ms) = date {
        let delta = match total {
            Num::Int(i) => i as i64,
            Num::Long(l) => l,
            Num::Double(_) | Num::Decimal(_) => total.f64().round() as i64,
        };
        return Ok(Some(Bson::DateTime(bson::DateTime::from_millis(
            ms.wrapping_add(delta),
        ))));
    }
    Ok(Some(total.to_bson()))
}

fn op_subtract(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$subtract", arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(Some(Bson::Null));
    }
    let (a, b) = (v[0].as_ref(), v[1].as_ref());
    match (a, b) {
        (Some(Bson::DateTime(x)), Some(Bson::DateTime(y))) => Ok(Some(Bson::Int64(
            x.timestamp_millis().wrapping_sub(y.timestamp_millis()),
        ))),
        (Some(Bson::DateTime(x)), Some(n)) if Num::from_bson(n).is_some() => {
            let delta = match Num::from_bson(n) {
                Some(Num::Int(i)) => i as i64,
                Some(Num::Long(l)) => l,
                Some(n @ (Num::Double(_) | Num::Decimal(_))) => n.f64().round() as i64,
                None => 0,
            };
            Ok(Some(Bson::DateTime(bson::DateTime::from_millis(
                x.timestamp_millis().wrapping_sub(delta),
            ))))
        }
        (Some(x), Some(y)) => match (Num::from_bson(x), Num::from_bson(y)) {
            (Some(x), Some(y)) => Ok(Some(x.sub(y).to_bson())),
            _ => Err(CommandError::type_mismatch(format!(
                "can't $subtract {} from {}",
                tn(&v[1]),
                tn(&v[0])
            ))),
        },
        _ => Ok(Some(Bson::Null)),
    }
}

fn op_multiply(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let mut total = Num::Int(1);
    let mut null = false;
    for a in arg_list(arg) {
        let v = eval(a, scope)?;
        if nullish(&v) {
            null = true;
            continue;
        }
        match v.as_ref().and_then(Num::from_bson) {
            Some(n) => total = total.mul(n),
            None => {
                return Err(CommandError::type_mismatch(format!(
                    "$multiply only supports numeric types, not {}",
                    tn(&v)
                )));
            }
        }
    }
    Ok(Some(if null { Bson::Null } else { total.to_bson() }))
}

fn two_nums(name: &str, arg: &Bson, scope: &Scope, code: i32) -> Result<Option<(Num, Num)>> {
    let v = eval_exact(name, arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(None);
    }
    match (
        v[0].as_ref().and_then(Num::from_bson),
        v[1].as_ref().and_then(Num::from_bson),
    ) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        _ => Err(CommandError::new(
            code,
            format!(
                "{name} only supports numeric types, not {} and {}",
                tn(&v[0]),
                tn(&v[1])
            ),
        )),
    }
}

fn op_divide(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Some((a, b)) = two_nums("$divide", arg, scope, codes::TYPE_MISMATCH)? else {
        return Ok(Some(Bson::Null));
    };
    if b.is_zero() {
        return Err(CommandError::bad_value("can't $divide by zero"));
    }
    Ok(Some(a.div(b).to_bson()))
}

fn op_mod(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Some((a, b)) = two_nums("$mod", arg, scope, 16611)? else {
        return Ok(Some(Bson::Null));
    };
    if b.is_zero() {
        return Err(CommandError::new(16610, "can't $mod by zero"));
    }
    let rank = a.rank().max(b.rank());
    Ok(Some(
        match (a.i64(), b.i64()) {
            (Some(x), Some(y)) => Num::integer(rank, Some(x.wrapping_rem(y)), 0.0),
            _ => Num::float(rank, a.f64() % b.f64()),
        }
        .to_bson(),
    ))
}

fn op_unary_math(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact(name, arg, 1, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    let Some(n) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28765,
            format!("{name} only supports numeric types, not {}", tn(&v[0])),
        ));
    };
    let rank = n.rank().max(2);
    let x = n.f64();
    let out = match name {
        "$abs" => match n {
            Num::Int(i) => match i.checked_abs() {
                Some(a) => Num::Int(a),
                None => Num::Long((i as i64).abs()),
            },
            Num::Long(l) => match l.checked_abs() {
                Some(a) => Num::Long(a),
                None => {
                    return Err(CommandError::new(28680, "can't take $abs of long long min"));
                }
            },
            Num::Double(d) => Num::Double(d.abs()),
            Num::Decimal(_) => Num::float(3, x.abs()),
        },
        "$ceil" | "$floor" => match n {
            Num::Int(_) | Num::Long(_) => n,
            _ => Num::float(rank, if name == "$ceil" { x.ceil() } else { x.floor() }),
        },
        "$sqrt" => {
            if x < 0.0 {
                return Err(CommandError::new(
                    28714,
                    "$sqrt's argument must be greater than or equal to 0",
                ));
            }
            Num::float(rank, x.sqrt())
        }
        "$exp" => Num::float(rank, x.exp()),
        "$ln" | "$log10" => {
            if x <= 0.0 || x.is_nan() {
                return Err(CommandError::new(
                    if name == "$ln" { 28766 } else { 28761 },
                    format!(
                        "{name}'s argument must be a positive number, but is {}",
                        num_display(n)
                    ),
                ));
            }
            Num::float(rank, if name == "$ln" { x.ln() } else { x.log10() })
        }
        _ => return Err(unknown_operator(name)),
    };
    Ok(Some(out.to_bson()))
}

fn num_display(n: Num) -> String {
    match n {
        Num::Int(i) => i.to_string(),
        Num::Long(l) => l.to_string(),
        Num::Double(d) => format_double(d),
        Num::Decimal(d) => d.to_string(),
    }
}

fn op_log(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$log", arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(Some(Bson::Null));
    }
    let Some(n) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28756,
            format!("$log's argument must be numeric, not {}", tn(&v[0])),
        ));
    };
    let Some(b) = v[1].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28757,
            format!("$log's base must be numeric, not {}", tn(&v[1])),
        ));
    };
    if n.f64() <= 0.0 {
        return Err(CommandError::new(
            28758,
            format!(
                "$log's argument must be a positive number, but is {}",
                num_display(n)
            ),
        ));
    }
    if b.f64() <= 0.0 || b.f64() == 1.0 {
        return Err(CommandError::new(
            28759,
            format!(
                "$log's base must be a positive number not equal to 1, but is {}",
                num_display(b)
            ),
        ));
    }
    let rank = n.rank().max(b.rank()).max(2);
    Ok(Some(
        Num::float(rank, n.f64().ln() / b.f64().ln()).to_bson(),
    ))
}

fn op_pow(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$pow", arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(Some(Bson::Null));
    }
    let Some(base) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28762,
            format!("$pow's base must be numeric, not {}", tn(&v[0])),
        ));
    };
    let Some(exp) = v[1].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28763,
            format!("$pow's exponent must be numeric, not {}", tn(&v[1])),
        ));
    };
    if base.is_zero() && exp.f64() < 0.0 {
        return Err(CommandError::new(
            28764,
            "$pow cannot take a base of 0 and a negative exponent",
        ));
    }
    let rank = base.rank().max(exp.rank());
    if let (Some(b), Some(e)) = (base.i64(), exp.i64()) {
        if e >= 0 {
            let exact = u32::try_from(e).ok().and_then(|e| b.checked_pow(e));
            return Ok(Some(
                Num::integer(rank, exact, (b as f64).powf(e as f64)).to_bson(),
            ));
        }
        // Negative integer exponents are exact only for bases 1 and -1.
        if b == 1 || b == -1 {
            let r = if b == 1 || e % 2 == 0 { 1 } else { -1 };
            return Ok(Some(Num::integer(rank, Some(r), r as f64).to_bson()));
        }
        return Ok(Some(Bson::Double((b as f64).powf(e as f64))));
    }
    Ok(Some(Num::float(rank, base.f64().powf(exp.f64())).to_bson()))
}

fn op_round(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args(name, arg, 1, 2)?;
    let v = eval_all(&args, scope)?;
    if nullish(&v[0]) || v.get(1).is_some_and(nullish) {
        return Ok(Some(Bson::Null));
    }
    let Some(n) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            51081,
            format!("{name} only supports numeric types, not {}", tn(&v[0])),
        ));
    };
    let place = match v.get(1) {
        None => 0i64,
        Some(p) => match p.as_ref().and_then(Num::from_bson) {
            Some(Num::Int(i)) => i as i64,
            Some(Num::Long(l)) => l,
            Some(n @ (Num::Double(_) | Num::Decimal(_))) if n.f64().fract() == 0.0 => {
                n.f64() as i64
            }
            _ => {
                return Err(CommandError::new(
                    51082,
                    format!(
                        "precision argument to {name} must be a integral value, but is {}",
                        tn(p)
                    ),
                ));
            }
        },
    };
    if !(-20..=100).contains(&place) {
        return Err(CommandError::new(
            51083,
            format!("cannot apply {name} with precision value {place} value must be in [-20, 100]"),
        ));
    }
    let round = |x: f64| -> f64 {
        if name == "$trunc" {
            x.trunc()
        } else {
            // The server rounds half to even.
            let r = x.round();
            if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
                r - x.signum()
            } else {
                r
            }
        }
    };
    let out = match n {
        Num::Int(_) | Num::Long(_) if place >= 0 => n,
        Num::Int(_) | Num::Long(_) => {
            let i = n.i64().unwrap_or(0);
            let p = 10f64.powi((-place) as i32);
            let r = round(i as f64 / p) * p;
            match n {
                Num::Int(_) if r.abs() <= i32::MAX as f64 => Num::Int(r as i32),
                Num::Int(_) => Num::Long(r as i64),
                _ => Num::Long(r as i64),
            }
        }
        Num::Double(_) | Num::Decimal(_) => {
            let x = n.f64();
            let p = 10f64.powi(place as i32);
            Num::float(n.rank(), round(x * p) / p)
        }
    };
    Ok(Some(out.to_bson()))
}

// ---------------------------------------------------------------------------------------------
// Conditionals and variables

fn op_cond(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let (cond, then, els) = match arg {
        Bson::Document(d) => {
            for k in d.keys() {
                if !matches!(k.as_str(), "if" | "then" | "else") {
                    return Err(CommandError::new(
                        17083,
                        format!("Unrecognized parameter to $cond: {k}"),
                    ));
                }
            }
            let get = |k: &str, code: i32| {
                d.get(k).ok_or_else(|| {
                    CommandError::new(code, format!("Missing '{k}' parameter to $cond"))
                })
            };
            (get("if", 17080)?, get("then", 17081)?, get("else", 17082)?)
        }
        _ => {
            let a = exact_args("$cond", arg, 3)?;
            (a[0], a[1], a[2])
        }
    };
    if truthy(eval(cond, scope)?.as_ref()) {
        eval(then, scope)
    } else {
        eval(els, scope)
    }
}

fn op_switch(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Bson::Document(d) = arg else {
        return Err(CommandError::new(
            40060,
            format!(
                "$switch requires an object as an argument, found: {}",
                type_name(Some(arg))
            ),
        ));
    };
    let mut branches: Vec<(&Bson, &Bson)> = Vec::new();
    let mut default = None;
    for (k, v) in d {
        match k.as_str() {
            "branches" => {
                let Bson::Array(items) = v else {
                    return Err(CommandError::new(
                        40061,
                        format!(
                            "$switch expected an array for 'branches', found: {}",
                            type_name(Some(v))
                        ),
                    ));
                };
                for b in items {
                    let Bson::Document(bd) = b else {
                        return Err(CommandError::new(
                            40062,
                            format!(
                                "$switch expected each branch to be an object, found: {}",
                                type_name(Some(b))
                            ),
                        ));
                    };
                    for key in bd.keys() {
                        if key != "case" && key != "then" {
                            return Err(CommandError::new(
                                40063,
                                format!("$switch found an unknown argument to a branch: {key}"),
                            ));
                        }
                    }
                    let case = bd.get("case").ok_or_else(|| {
                        CommandError::new(
                            40064,
                            "$switch requires each branch have a 'case' expression",
                        )
                    })?;
                    let then = bd.get("then").ok_or_else(|| {
                        CommandError::new(
                            40065,
                            "$switch requires each branch have a 'then' expression.",
                        )
                    })?;
                    branches.push((case, then));
                }
            }
            "default" => default = Some(v),
            other => {
                return Err(CommandError::new(
                    40067,
                    format!("$switch found an unknown argument: {other}"),
                ));
            }
        }
    }
    if branches.is_empty() {
        return Err(CommandError::new(
            40068,
            "$switch requires at least one branch.",
        ));
    }
    for (case, then) in branches {
        if truthy(eval(case, scope)?.as_ref()) {
            return eval(then, scope);
        }
    }
    match default {
        Some(e) => eval(e, scope),
        None => Err(CommandError::new(
            40066,
            "$switch could not find a matching branch for an input, and no default was specified.",
        )),
    }
}

fn check_var_name(name: &str) -> Result<()> {
    let first = name.chars().next();
    let ok_first = first.is_some_and(|c| c.is_ascii_lowercase() || !c.is_ascii());
    if !ok_first {
        return Err(CommandError::new(
            16867,
            format!("'{name}' starts with an invalid character for a user variable name"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii())
    {
        return Err(CommandError::new(
            16868,
            format!("'{name}' contains an invalid character for a variable name"),
        ));
    }
    Ok(())
}

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

fn op_let(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let d = object_arg("$let", arg, 16874)?;
    let mut vars = None;
    let mut body = None;
    for (k, v) in d {
        match k.as_str() {
            "vars" => vars = Some(v),
            "in" => body = Some(v),
            other => {
                return Err(CommandError::new(
                    16875,
                    format!("Unrecognized parameter to $let: {other}"),
                ));
            }
        }
    }
    let vars = vars.ok_or_else(|| CommandError::new(16876, "Missing 'vars' parameter to $let"))?;
    let body = body.ok_or_else(|| CommandError::new(16877, "Missing 'in' parameter to $let"))?;
    let Bson::Document(vars) = vars else {
        return Err(CommandError::new(
            10065,
            "invalid parameter: expected an object (vars)",
        ));
    };
    let mut names = Vec::new();
    for (k, v) in vars {
        check_var_name(k)?;
        // Variables are evaluated in the outer scope.
        names.push((k.clone(), eval(v, scope)?));
    }
    let inner = scope.child(names);
    eval(body, &inner)
}

// ---------------------------------------------------------------------------------------------
// Conversions

/// Formats a double as the server prints it in `$toString`/`$concat` contexts.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let abs = d.abs();
    if !(1e-5..1e15).contains(&abs) {
        let s = format!("{d:e}");
        // Rust prints "1e20"; the server "1e+20".
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{d}")
    }
}

/// ISO-8601 with milliseconds and `Z`, as the server prints dates.
pub(crate) fn format_date(ms: i64) -> String {
    let p = DateParts::from_millis(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis
    )
}

fn coerce_to_string(name: &str, v: &Option<Bson>) -> Result<String> {
    match v {
        x if nullish(x) => Ok(String::new()),
        Some(Bson::String(s)) | Some(Bson::Symbol(s)) => Ok(s.clone()),
        Some(Bson::Int32(i)) => Ok(i.to_string()),
        Some(Bson::Int64(i)) => Ok(i.to_string()),
        Some(Bson::Double(d)) => Ok(format_double(*d)),
        Some(Bson::Decimal128(d)) => Ok(d.to_string()),
        Some(Bson::DateTime(d)) => Ok(format_date(d.timestamp_millis())),
        Some(Bson::Timestamp(t)) => Ok(format!("Timestamp({}, {})", t.time, t.increment)),
        Some(Bson::Boolean(b)) => Ok(b.to_string()),
        other => Err(CommandError::new(
            16007,
            format!(
                "can't convert from BSON type {} to String ({name})",
                tn(other)
            ),
        )),
    }
}

fn target_name(to: &Bson) -> Result<&'static str> {
    let by_number = |n: i64| -> Option<&'static str> {
        Some(match n {
            1 => "double",
            2 => "string",
            7 => "objectId",
            8 => "bool",
            9 => "date",
            16 => "int",
            18 => "long",
            19 => "decimal",
            _ => return None,
        })
    };
    let name = match to {
        Bson::String(s) => match s.as_str() {
            "double" => Some("double"),
            "string" => Some("string"),
            "objectId" => Some("objectId"),
            "bool" => Some("bool"),
            "date" => Some("date"),
            "int" => Some("int"),
            "long" => Some("long"),
            "decimal" => Some("decimal"),
            "null" | "object" | "array" | "binData" | "regex" | "timestamp" | "minKey"
            | "maxKey" | "undefined" | "javascript" | "symbol" => {
                return Err(CommandError::bad_value(format!(
                    "Unsupported conversion to {s} in $convert"
                )));
            }
            _ => None,
        },
        other => Num::from_bson(other).and_then(|n| match n {
            Num::Int(i) => by_number(i as i64),
            Num::Long(l) => by_number(l),
            n @ (Num::Double(_) | Num::Decimal(_)) if n.f64().fract() == 0.0 => {
                by_number(n.f64() as i64)
            }
            _ => None,
        }),
    };
    name.ok_or_else(|| CommandError::bad_value(format!("Unknown type name: {}", to)))
}

fn conversion_error(from: &Bson, to: &str) -> CommandError {
    CommandError::new(
        CONVERSION_FAILURE,
        format!(
            "Unsupported conversion from {} to {to} in $convert with no onError value",
            type_name(Some(from))
        ),
    )
}

fn parse_failure(s: &str, why: &str) -> CommandError {
    CommandError::new(
        CONVERSION_FAILURE,
        format!("Failed to parse number '{s}' in $convert with no onError value: {why}"),
    )
}

fn parse_int_str(s: &str) -> Result<i64> {
    if s.is_empty() {
        return Err(parse_failure(s, "No digits"));
    }
    s.parse::<i64>().map_err(|_| {
        if s.chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
        {
            parse_failure(s, "Overflow")
        } else {
            parse_failure(s, "Did not consume whole string.")
        }
    })
}

fn double_to_integer(d: f64, from: &Bson, min: f64, max: f64) -> Result<i64> {
    if d.is_nan() {
        return Err(CommandError::new(
            CONVERSION_FAILURE,
            "Attempt to convert NaN value to integer type in $convert with no onError value",
        ));
    }
    let t = d.trunc();
    if t < min || t > max {
        return Err(CommandError::new(
            CONVERSION_FAILURE,
            format!(
                "Conversion would overflow target type in $convert with no onError value: {}",
                from
            ),
        ));
    }
    Ok(t as i64)
}

/// `$convert` of a non-null value to the target type name.
pub(crate) fn convert(v: Bson, to: &str) -> Result<Bson> {
    let err = || conversion_error(&v, to);
    Ok(match to {
        "bool" => match &v {
            Bson::Boolean(_) => v.clone(),
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
                Bson::Boolean(truthy(Some(&v)))
            }
            Bson::String(_) | Bson::ObjectId(_) | Bson::DateTime(_) | Bson::Timestamp(_)
            | Bson::Document(_) | Bson::Array(_) | Bson::Binary(_) | Bson::RegularExpression(_)
            | Bson::JavaScriptCode(_) | Bson::MinKey | Bson::MaxKey => Bson::Boolean(true),
            _ => return Err(err()),
        },
        "int" | "long" => {
            let (min, max) = if to == "int" {
                (i32::MIN as f64, i32::MAX as f64)
            } else {
                (i64::MIN as f64, 9.223372036854775e18)
            };
            let i: i64 = match &v {
                Bson::Boolean(b) => *b as i64,
                Bson::Int32(i) => *i as i64,
                Bson::Int64(i) => {
                    if to == "int" && i32::try_from(*i).is_err() {
                        return Err(CommandError::new(
                            CONVERSION_FAILURE,
                            format!("Conversion would overflow target type in $convert with no onError value: {i}"),
                        ));
                    }
                    *i
                }
                Bson::Double(d) => double_to_integer(*d, &v, min, max)?,
                Bson::Decimal128(d) => double_to_integer(dec_to_f64(d), &v, min, max)?,
                Bson::DateTime(d) if to == "long" => d.timestamp_millis(),
                Bson::String(s) => {
                    let i = parse_int_str(s)?;
                    if to == "int" && i32::try_from(i).is_err() {
                        return Err(parse_failure(s, "Overflow"));
                    }
                    i
                }
                _ => return Err(err()),
            };
            if to == "int" { Bson::Int32(i as i32) } else { Bson::Int64(i) }
        }
        "double" | "decimal" => {
            let d = match &v {
                Bson::Boolean(b) => *b as i64 as f64,
                Bson::Int32(i) => *i as f64,
                Bson::Int64(i) => *i as f64,
                Bson::Double(d) => *d,
                Bson::Decimal128(d) => {
                    if to == "decimal" {
                        return Ok(v.clone());
                    }
                    dec_to_f64(d)
                }
                Bson::DateTime(d) => d.timestamp_millis() as f64,
                Bson::String(s) => {
                    if to == "decimal" {
                        return s
                            .parse::<Decimal128>()
                            .map(Bson::Decimal128)
                            .map_err(|_| parse_failure(s, "Failed to parse string to decimal"));
                    }
                    let t = s.trim();
                    if t.len() != s.len() || s.is_empty() {
                        return Err(parse_failure(s, "Did not consume whole string."));
                    }
                    s.parse::<f64>()
                        .map_err(|_| parse_failure(s, "Did not consume whole string."))?
                }
                _ => return Err(err()),
            };
            if to == "double" {
                Bson::Double(d)
            } else {
                match &v {
                    Bson::Int32(i) => Bson::Decimal128(
                        i.to_string().parse().unwrap_or_else(|_| f64_to_dec(d)),
                    ),
                    Bson::Int64(i) => Bson::Decimal128(
                        i.to_string().parse().unwrap_or_else(|_| f64_to_dec(d)),
                    ),
                    _ => Bson::Decimal128(f64_to_dec(d)),
                }
            }
        }
        "string" => match &v {
            Bson::ObjectId(o) => Bson::String(o.to_hex()),
            Bson::String(_) => v.clone(),
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
            | Bson::Boolean(_) | Bson::DateTime(_) => {
                Bson::String(coerce_to_string("$convert", &Some(v.clone()))?)
            }
            _ => return Err(err()),
        },
        "objectId" => match &v {
            Bson::ObjectId(_) => v.clone(),
            Bson::String(s) => Bson::ObjectId(ObjectId::parse_str(s).map_err(|_| {
                CommandError::new(
                    CONVERSION_FAILURE,
                    format!("Failed to parse objectId '{s}' in $convert with no onError value: Invalid string length for parsing to OID, expected 24 but found {}", s.len()),
                )
            })?),
            _ => return Err(err()),
        },
        "date" => match &v {
            Bson::DateTime(_) => v.clone(),
            Bson::Int64(i) => Bson::DateTime(bson::DateTime::from_millis(*i)),
            Bson::Double(d) => Bson::DateTime(bson::DateTime::from_millis(*d as i64)),
            Bson::Decimal128(d) => {
                Bson::DateTime(bson::DateTime::from_millis(dec_to_f64(d) as i64))
            }
            Bson::ObjectId(o) => Bson::DateTime(o.timestamp()),
            Bson::Timestamp(t) => Bson::DateTime(bson::DateTime::from_millis(t.time as i64 * 1000)),
            Bson::String(s) => Bson::DateTime(parse_date(s).ok_or_else(|| {
                CommandError::new(
                    CONVERSION_FAILURE,
                    format!("Error parsing date string '{s}'; in $convert with no onError value"),
                )
            })?),
            _ => return Err(err()),
        },
        _ => return Err(err()),
    })
}

/// Parses `YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z|±HH:MM]` (the common ISO forms).
fn parse_date(s: &str) -> Option<bson::DateTime> {
    let s = s.trim();
    let (date, rest) = s.split_at(s.find(['T', ' ']).unwrap_or(s.len()));
    let mut dp = date.split('-');
    let year: i64 = dp.next()?.parse().ok()?;
    let month: i64 = dp.next()?.parse().ok()?;
    let day: i64 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let rest = rest.get(1..).unwrap_or("");
    if !rest.is_empty() {
        let (time, offset) = match rest.find(['Z', '+', '-']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let mut tp = time.split(':');
        let h: i64 = tp.next()?.parse().ok()?;
        let m: i64 = tp.next()?.parse().ok()?;
        let sec: f64 = tp.next().map(|x| x.parse().ok()).unwrap_or(Some(0.0))?;
        ms += h * 3_600_000 + m * 60_000 + (sec * 1000.0).round() as i64;
        if let Some(o) = offset.strip_prefix(['+', '-']) {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let digits: String = o.chars().filter(|c| c.is_ascii_digit()).collect();
            if digits.len() != 4 {
                return None;
            }
            let oh: i64 = digits[..2].parse().ok()?;
            let om: i64 = digits[2..].parse().ok()?;
            ms -= sign * (oh * 3_600_000 + om * 60_000);
        } else if !offset.is_empty() && offset != "Z" {
            return None;
        }
    }
    Some(bson::DateTime::from_millis(ms))
}

fn op_convert(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let d = object_arg("$convert", arg, 9)?;
    for k in d.keys() {
        if !matches!(
            k.as_str(),
            "input" | "to" | "onError" | "onNull" | "format" | "base"
        ) {
            return Err(CommandError::failed_to_parse(format!(
                "$convert found an unknown argument: {k}"
            )));
        }
    }
    let input_expr = d
        .get("input")
        .ok_or_else(|| CommandError::failed_to_parse("Missing 'input' parameter to $convert"))?;
    let to_expr = d
        .get("to")
        .ok_or_else(|| CommandError::failed_to_parse("Missing 'to' parameter to $convert"))?;
    let input = eval(input_expr, scope)?;
    let to = eval(to_expr, scope)?;
    if nullish(&input) {
        return match d.get("onNull") {
            Some(e) => eval(e, scope),
            None => Ok(Some(Bson::Null)),
        };
    }
    if nullish(&to) {
        return Ok(Some(Bson::Null));
    }
    let target = target_name(to.as_ref().unwrap_or(&Bson::Null))?;
    match convert(input.unwrap_or(Bson::Null), target) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == CONVERSION_FAILURE => match d.get("onError") {
            Some(on_error) => eval(on_error, scope),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Strings

fn int_arg(v: &Option<Bson>) -> Option<i64> {
    match v.as_ref().and_then(Num::from_bson)? {
        Num::Int(i) => Some(i as i64),
        Num::Long(l) => Some(l),
        n @ (Num::Double(_) | Num::Decimal(_)) if n.f64().fract() == 0.0 => Some(n.f64() as i64),
        _ => None,
    }
}

fn op_substr_bytes(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact(name, arg, 3, scope)?;
    let s = coerce_to_string(name, &v[0])?;
    let start = match v[1].as_ref().and_then(Num::from_bson) {
        Some(n) => n.f64(),
        None => {
            return Err(CommandError::new(
                16034,
                format!(
                    "{name}:  starting index must be a numeric type (is BSON type {})",
                    tn(&v[1])
                ),
            ));
        }
    };
    let len = match v[2].as_ref().and_then(Num::from_bson) {
        Some(n) => n.f64(),
        None => {
            return Err(CommandError::new(
                16035,
                format!(
                    "{name}:  length must be a numeric type (is BSON type {})",
                    tn(&v[2])
                ),
            ));
        }
    };
    let bytes = s.as_bytes();
    if start < 0.0 || start as usize >= bytes.len() {
        return Ok(Some(Bson::String(String::new())));
    }
    let start = start as usize;
    let end = if len < 0.0 {
        bytes.len()
    } else {
        (start.saturating_add(len as usize)).min(bytes.len())
    };
    if !s.is_char_boundary(start) {
        return Err(CommandError::new(
            28656,
            format!("{name}:  Invalid range, starting index is a UTF-8 continuation byte."),
        ));
    }
    if !s.is_char_boundary(end) {
        return Err(CommandError::new(
            28657,
            format!("{name}:  Invalid range, ending index is in the middle of a UTF-8 character."),
        ));
    }
    Ok(Some(Bson::String(s[start..end].to_string())))
}

fn op_substr_cp(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$substrCP", arg, 3, scope)?;
    let s = coerce_to_string("$substrCP", &v[0])?;
    let start = match int_arg(&v[1]) {
        Some(i) if i >= 0 => i as usize,
        Some(_) => {
            return Err(CommandError::new(
                34455,
                "$substrCP: the starting index must be nonnegative integer.",
            ));
        }
        None => {
            return Err(CommandError::new(
                34450,
                format!(
                    "$substrCP: starting index must be a numeric type (is BSON type {})",
                    tn(&v[1])
                ),
            ));
        }
    };
    let len = match int_arg(&v[2]) {
        Some(i) if i >= 0 => i as usize,
        Some(_) => {
            return Err(CommandError::new(
                34454,
                "$substrCP: length must be a nonnegative integer.",
            ));
        }
        None => {
            return Err(CommandError::new(
                34452,
                format!(
                    "$substrCP: length must be a numeric type (is BSON type {})",
                    tn(&v[2])
                ),
            ));
        }
    };
    Ok(Some(Bson::String(
        s.chars().skip(start).take(len).collect(),
    )))
}

fn op_split(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$split", arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::String(s)) = &v[0] else {
        return Err(CommandError::new(
            40085,
            format!(
                "$split requires an expression that evaluates to a string as a first argument, found: {}",
                tn(&v[0])
            ),
        ));
    };
    let Some(Bson::String(sep)) = &v[1] else {
        return Err(CommandError::new(
            40086,
            format!(
                "$split requires an expression that evaluates to a string as a second argument, found: {}",
                tn(&v[1])
            ),
        ));
    };
    if sep.is_empty() {
        return Err(CommandError::new(
            40087,
            "$split requires a non-empty separator",
        ));
    }
    Ok(Some(Bson::Array(
        s.split(sep.as_str())
            .map(|p| Bson::String(p.to_string()))
            .collect(),
    )))
}

fn op_trim(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let d = object_arg(name, arg, 50696)?;
    for k in d.keys() {
        if k != "input" && k != "chars" {
            return Err(CommandError::new(
                50694,
                format!("{name} found an unknown argument: {k}"),
            ));
        }
    }
    let input = d
        .get("input")
        .ok_or_else(|| CommandError::new(50695, format!("{name} requires an 'input' field")))?;
    let input = eval(input, scope)?;
    if nullish(&input) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::String(s)) = &input else {
        return Err(CommandError::new(
            50699,
            format!(
                "{name} requires its input to be a string, got {} (of type {}) instead.",
                input.clone().unwrap_or(Bson::Null),
                tn(&input)
            ),
        ));
    };
    let chars: Vec<char> = match d.get("chars") {
        None => vec![
            '\0', ' ', '\t', '\n', '\u{0B}', '\u{0C}', '\r', '\u{A0}', '\u{1680}', '\u{2000}',
            '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}',
            '\u{2008}', '\u{2009}', '\u{200A}',
        ],
        Some(c) => match eval(c, scope)? {
            v if nullish(&v) => return Ok(Some(Bson::Null)),
            Some(Bson::String(c)) => c.chars().collect(),
            v => {
                return Err(CommandError::new(
                    50700,
                    format!(
                        "{name} requires 'chars' to be a string, got {} (of type {}) instead.",
                        v.clone().unwrap_or(Bson::Null),
                        tn(&v)
                    ),
                ));
            }
        },
    };
    let t = match name {
        "$trim" => s.trim_matches(chars.as_slice()),
        "$ltrim" => s.trim_start_matches(chars.as_slice()),
        _ => s.trim_end_matches(chars.as_slice()),
    };
    Ok(Some(Bson::String(t.to_string())))
}

fn op_index_of_str(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args(name, arg, 2, 4)?;
    let v = eval_all(&args, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::String(s)) = &v[0] else {
        return Err(CommandError::new(
            40091,
            format!(
                "{name} requires a string as the first argument, found: {}",
                tn(&v[0])
            ),
        ));
    };
    let Some(Bson::String(sub)) = &v[1] else {
        return Err(CommandError::new(
            40092,
            format!(
                "{name} requires a string as the second argument, found: {}",
                tn(&v[1])
            ),
        ));
    };
    let bound = |i: usize| -> Result<Option<usize>> {
        match v.get(i) {
            None => Ok(None),
            Some(x) => match int_arg(x) {
                Some(n) if n >= 0 => Ok(Some(n as usize)),
                Some(_) => Err(CommandError::new(
                    40097,
                    format!(
                        "{name} requires a nonnegative start index, found: {}",
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
    };
    let start = bound(2)?.unwrap_or(0);
    if name == "$indexOfBytes" {
        let end = bound(3)?.unwrap_or(s.len()).min(s.len());
        if start > end {
            return Ok(Some(Bson::Int32(-1)));
        }
        let hay = &s.as_bytes()[start..end];
        let needle = sub.as_bytes();
        let pos = if needle.is_empty() {
            Some(0)
        } else {
            hay.windows(needle.len()).position(|w| w == needle)
        };
        Ok(Some(Bson::Int32(
            pos.map(|p| (p + start) as i32).unwrap_or(-1),
        )))
    } else {
        let chars: Vec<char> = s.chars().collect();
        let needle: Vec<char> = sub.chars().collect();
        let end = bound(3)?.unwrap_or(chars.len()).min(chars.len());
        if start > end {
            return Ok(Some(Bson::Int32(-1)));
        }
        let hay = &chars[start..end];
        let pos = if needle.is_empty() {
            Some(0)
        } else {
            hay.windows(needle.len())
                .position(|w| w == needle.as_slice())
        };
        Ok(Some(Bson::Int32(
            pos.map(|p| (p + start) as i32).unwrap_or(-1),
        )))
    }
}

fn op_regex_match(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$regexMatch", arg, &["input", "regex", "options"], 31024)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(31022, "$regexMatch requires 'input' parameter"))?;
    let regex = field(&f, "regex")
        .ok_or_else(|| CommandError::new(31023, "$regexMatch requires 'regex' parameter"))?;
    let input = eval(input, scope)?;
    let regex = eval(regex, scope)?;
    let options = match field(&f, "options") {
        Some(o) => match eval(o, scope)? {
            v if nullish(&v) => None,
            Some(Bson::String(s)) => Some(s),
            v => {
                return Err(CommandError::new(
                    51126,
                    format!(
                        "$regexMatch needs 'options' to be of type string, found: {}",
                        tn(&v)
                    ),
                ));
            }
        },
        None => None,
    };
    let (pattern, flags) = match &regex {
        v if nullish(v) => return Ok(Some(Bson::Boolean(false))),
        Some(Bson::String(p)) => (p.clone(), options.unwrap_or_default()),
        Some(Bson::RegularExpression(r)) => {
            if options.is_some() && !r.options.is_empty() {
                return Err(CommandError::new(
                    51075,
                    "$regexMatch: found regex option(s) specified in both 'regex' and 'option' fields",
                ));
            }
            (
                r.pattern.to_string(),
                options.unwrap_or_else(|| r.options.to_string()),
            )
        }
        v => {
            return Err(CommandError::new(
                51105,
                format!(
                    "$regexMatch needs 'regex' to be of type string or regex, found: {}",
                    tn(v)
                ),
            ));
        }
    };
    let text = match &input {
        v if nullish(v) => return Ok(Some(Bson::Boolean(false))),
        Some(Bson::String(s)) => s.clone(),
        v => {
            return Err(CommandError::new(
                51104,
                format!(
                    "$regexMatch needs 'input' to be of type string, found: {}",
                    tn(v)
                ),
            ));
        }
    };
    let re = crate::query::matcher::Re::new(&pattern, &flags)?;
    Ok(Some(Bson::Boolean(re.is_match(&text))))
}

// ---------------------------------------------------------------------------------------------
// Arrays

fn array_elem_at(name: &str, arr: &Option<Bson>, idx: &Option<Bson>) -> Result<Option<Bson>> {
    if nullish(arr) || nullish(idx) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(a)) = arr else {
        return Err(CommandError::new(
            28689,
            format!(
                "{name}'s first argument must be an array, but is {}",
                tn(arr)
            ),
        ));
    };
    let Some(n) = idx.as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28690,
            format!(
                "{name}'s second argument must be a numeric value, but is {}",
                tn(idx)
            ),
        ));
    };
    let i = match n {
        Num::Int(i) => i as i64,
        Num::Long(l) if i32::try_from(l).is_ok() => l,
        Num::Double(_) | Num::Decimal(_)
            if n.f64().fract() == 0.0 && n.f64().abs() <= i32::MAX as f64 =>
        {
            n.f64() as i64
        }
        _ => {
            return Err(CommandError::new(
                28691,
                format!(
                    "{name}'s second argument must be representable as a 32-bit integer: {}",
                    num_display(n)
                ),
            ));
        }
    };
    let len = a.len() as i64;
    let pos = if i < 0 { len + i } else { i };
    if pos < 0 || pos >= len {
        return Ok(None);
    }
    Ok(Some(a[pos as usize].clone()))
}

fn op_slice(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args("$slice", arg, 2, 3)?;
    let v = eval_all(&args, scope)?;
    if v.iter().any(nullish) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(a)) = &v[0] else {
        return Err(CommandError::new(
            28724,
            format!(
                "First argument to $slice must be an array, but is of type: {}",
                tn(&v[0])
            ),
        ));
    };
    let Some(second) = int_arg(&v[1]) else {
        return Err(CommandError::new(
            28725,
            format!(
                "Second argument to $slice must be a numeric value, but is of type: {}",
                tn(&v[1])
            ),
        ));
    };
    let len = a.len() as i64;
    let (start, count) = if v.len() == 2 {
        if second >= 0 {
            (0, second)
        } else {
            ((len + second).max(0), -second)
        }
    } else {
        let Some(n) = int_arg(&v[2]) else {
            return Err(CommandError::new(
                28726,
                format!(
                    "Third argument to $slice must be numeric, but is of type: {}",
                    tn(&v[2])
                ),
            ));
        };
        if n <= 0 {
            return Err(CommandError::new(
                28729,
                format!("Third argument to $slice must be positive: {n}"),
            ));
        }
        let start = if second < 0 {
            (len + second).max(0)
        } else {
            second.min(len)
        };
        (start, n)
    };
    let end = (start + count).min(len);
    Ok(Some(Bson::Array(a[start as usize..end as usize].to_vec())))
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

fn op_filter(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$filter", arg, &["input", "as", "cond", "limit"], 28647)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(28648, "Missing 'input' parameter to $filter"))?;
    let cond = field(&f, "cond")
        .ok_or_else(|| CommandError::new(28650, "Missing 'cond' parameter to $filter"))?;
    let var = as_name("$filter", &f, "this")?;
    let limit = match field(&f, "limit") {
        None => None,
        Some(l) => match eval(l, scope)? {
            v if nullish(&v) => None,
            v => match int_arg(&v) {
                Some(n) if n > 0 => Some(n as usize),
                _ => {
                    return Err(CommandError::new(
                        327391,
                        format!(
                            "$filter: limit must be greater than 0: {}",
                            v.unwrap_or(Bson::Null)
                        ),
                    ));
                }
            },
        },
    };
    let v = eval(input, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = v else {
        return Err(CommandError::new(
            28651,
            format!("input to $filter must be an array not {}", tn(&v)),
        ));
    };
    let mut out = Vec::new();
    for item in items {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let inner = scope.child(vec![(var.clone(), Some(item.clone()))]);
        if truthy(eval(cond, &inner)?.as_ref()) {
            out.push(item);
        }
    }
    Ok(Some(Bson::Array(out)))
}

fn op_map(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$map", arg, &["input", "as", "in"], 16879)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(16880, "Missing 'input' parameter to $map"))?;
    let body = field(&f, "in")
        .ok_or_else(|| CommandError::new(16882, "Missing 'in' parameter to $map"))?;
    let var = as_name("$map", &f, "this")?;
    let v = eval(input, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = v else {
        return Err(CommandError::new(
            16883,
            format!("input to $map must be an array not {}", tn(&v)),
        ));
    };
    let mut out = Vec::new();
    for item in items {
        let inner = scope.child(vec![(var.clone(), Some(item))]);
        out.push(eval(body, &inner)?.unwrap_or(Bson::Null));
    }
    Ok(Some(Bson::Array(out)))
}

fn op_reduce(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$reduce", arg, &["input", "initialValue", "in"], 40076)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(40077, "$reduce requires 'input' to be specified"))?;
    let initial = field(&f, "initialValue").ok_or_else(|| {
        CommandError::new(40078, "$reduce requires 'initialValue' to be specified")
    })?;
    let body = field(&f, "in")
        .ok_or_else(|| CommandError::new(40079, "$reduce requires 'in' to be specified"))?;
    let v = eval(input, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = v else {
        return Err(CommandError::new(
            40080,
            format!(
                "$reduce requires that 'input' be an array, found: {}",
                tn(&v)
            ),
        ));
    };
    let mut acc = eval(initial, scope)?;
    for item in items {
        let inner = scope.child(vec![
            ("value".to_string(), acc.clone()),
            ("this".to_string(), Some(item)),
        ]);
        acc = eval(body, &inner)?;
    }
    Ok(acc)
}

fn op_index_of_array(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args("$indexOfArray", arg, 2, 4)?;
    let v = eval_all(&args, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(a)) = &v[0] else {
        return Err(CommandError::new(
            40090,
            format!(
                "$indexOfArray requires an array as a first argument, found: {}",
                tn(&v[0])
            ),
        ));
    };
    let bound = |i: usize| -> Result<Option<usize>> {
        match v.get(i) {
            None => Ok(None),
            Some(x) => match int_arg(x) {
                Some(n) if n >= 0 => Ok(Some(n as usize)),
                Some(_) => Err(CommandError::new(
                    40097,
                    format!(
                        "$indexOfArray requires a nonnegative starting index, found: {}",
                        x.clone().unwrap_or(Bson::Null)
                    ),
                )),
                None => Err(CommandError::new(
                    40096,
                    format!(
                        "$indexOfArray requires an integral starting index, found a value of type: {}",
                        tn(x)
                    ),
                )),
            },
        }
    };
    let start = bound(2)?.unwrap_or(0);
    let end = bound(3)?.unwrap_or(a.len()).min(a.len());
    for (i, item) in a.iter().enumerate().take(end).skip(start) {
        if compare_values(Some(item), v[1].as_ref()) == Ordering::Equal {
            return Ok(Some(Bson::Int32(i as i32)));
        }
    }
    Ok(Some(Bson::Int32(-1)))
}

fn op_range(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args("$range", arg, 2, 3)?;
    let v = eval_all(&args, scope)?;
    let get = |i: usize, what: &str, c1: i32, c2: i32| -> Result<i64> {
        let x = &v[i];
        let Some(n) = x.as_ref().and_then(Num::from_bson) else {
            return Err(CommandError::new(
                c1,
                format!(
                    "$range requires a numeric {what}, found value of type: {}",
                    tn(x)
                ),
            ));
        };
        match int_arg(x) {
            Some(i) if i32::try_from(i).is_ok() => Ok(i),
            _ => Err(CommandError::new(
                c2,
                format!(
                    "$range requires a {what} that can be represented as a 32-bit integer, found value: {}",
                    num_display(n)
                ),
            )),
        }
    };
    let start = get(0, "starting value", 34443, 34444)?;
    let end = get(1, "ending value", 34445, 34446)?;
    let step = if v.len() == 3 {
        get(2, "step value", 34447, 34448)?
    } else {
        1
    };
    if step == 0 {
        return Err(CommandError::new(
            34449,
            "$range requires a non-zero step value",
        ));
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        out.push(Bson::Int32(i as i32));
        i += step;
    }
    Ok(Some(Bson::Array(out)))
}

fn op_array_to_object(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$arrayToObject", arg, 1, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = &v[0] else {
        return Err(CommandError::new(
            40386,
            format!(
                "$arrayToObject requires an array input, found: {}",
                tn(&v[0])
            ),
        ));
    };
    let mut out = Document::new();
    let mut kv_form: Option<bool> = None;
    for item in items {
        let (k, val) = match item {
            Bson::Array(pair) => {
                if kv_form == Some(true) {
                    return Err(CommandError::new(
                        40391,
                        "$arrayToObject requires a consistent input format. Elements must all be arrays or all be objects. Array was detected, now found: array",
                    ));
                }
                kv_form = Some(false);
                if pair.len() != 2 {
                    return Err(CommandError::new(
                        40397,
                        format!(
                            "$arrayToObject requires an array of size 2 arrays,found array of size: {}",
                            pair.len()
                        ),
                    ));
                }
                let Bson::String(k) = &pair[0] else {
                    return Err(CommandError::new(
                        40395,
                        format!(
                            "$arrayToObject requires an array of key-value pairs, where the key must be of type string. Found key type: {}",
                            type_name(Some(&pair[0]))
                        ),
                    ));
                };
                (k.clone(), pair[1].clone())
            }
            Bson::Document(d) => {
                if kv_form == Some(false) {
                    return Err(CommandError::new(
                        40391,
                        "$arrayToObject requires a consistent input format. Elements must all be arrays or all be objects. Object was detected, now found: object",
                    ));
                }
                kv_form = Some(true);
                if d.len() != 2 || !d.contains_key("k") || !d.contains_key("v") {
                    return Err(CommandError::new(
                        40392,
                        format!(
                            "$arrayToObject requires an object keys of 'k' and 'v'. Found incorrect number of keys:{}",
                            d.len()
                        ),
                    ));
                }
                let Some(Bson::String(k)) = d.get("k") else {
                    return Err(CommandError::new(
                        40394,
                        format!(
                            "$arrayToObject requires an object with keys 'k' and 'v', where the value of 'k' must be of type string. Found type: {}",
                            type_name(d.get("k"))
                        ),
                    ));
                };
                (k.clone(), d.get("v").cloned().unwrap_or(Bson::Null))
            }
            other => {
                return Err(CommandError::new(
                    40398,
                    format!(
                        "Unrecognised input type format for $arrayToObject: {}",
                        type_name(Some(other))
                    ),
                ));
            }
        };
        if k.contains('\0') {
            return Err(CommandError::new(
                4940400,
                "Key field cannot contain an embedded null byte",
            ));
        }
        out.insert(k, val);
    }
    Ok(Some(Bson::Document(out)))
}

fn op_zip(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(
        "$zip",
        arg,
        &["inputs", "useLongestLength", "defaults"],
        34464,
    )?;
    let inputs = field(&f, "inputs")
        .ok_or_else(|| CommandError::new(34465, "Missing 'inputs' parameter to $zip"))?;
    let longest = match field(&f, "useLongestLength") {
        None => false,
        Some(Bson::Boolean(b)) => *b,
        Some(_) => {
            return Err(CommandError::new(
                34463,
                "useLongestLength must be a bool, found ",
            ));
        }
    };
    let Bson::Array(input_exprs) = inputs else {
        return Err(CommandError::new(
            34461,
            "inputs must be an array of expressions, found ",
        ));
    };
    let mut arrays = Vec::new();
    for e in input_exprs {
        match eval(e, scope)? {
            v if nullish(&v) => return Ok(Some(Bson::Null)),
            Some(Bson::Array(a)) => arrays.push(a),
            v => {
                return Err(CommandError::new(
                    34468,
                    format!(
                        "$zip found a non-array expression in input: {}",
                        v.unwrap_or(Bson::Null)
                    ),
                ));
            }
        }
    }
    let defaults: Vec<Bson> = match field(&f, "defaults") {
        None => vec![Bson::Null; arrays.len()],
        Some(d) => {
            if !longest {
                return Err(CommandError::new(
                    34466,
                    "cannot specify defaults unless useLongestLength is true",
                ));
            }
            let Bson::Array(d) = d else {
                return Err(CommandError::new(
                    34462,
                    "defaults must be an array of expressions",
                ));
            };
            if d.len() != arrays.len() {
                return Err(CommandError::new(
                    34467,
                    "defaults and inputs must have the same length",
                ));
            }
            let mut out = Vec::new();
            for e in d {
                out.push(eval(e, scope)?.unwrap_or(Bson::Null));
            }
            out
        }
    };
    let n = if longest {
        arrays.iter().map(Vec::len).max().unwrap_or(0)
    } else {
        arrays.iter().map(Vec::len).min().unwrap_or(0)
    };
    let out = (0..n)
        .map(|i| {
            Bson::Array(
                arrays
                    .iter()
                    .zip(&defaults)
                    .map(|(a, d)| a.get(i).cloned().unwrap_or_else(|| d.clone()))
                    .collect(),
            )
        })
        .collect();
    Ok(Some(Bson::Array(out)))
}

fn op_array_n(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(name, arg, &["input", "n"], 5787901)?;
    let input = field(&f, "input").ok_or_else(|| {
        CommandError::new(5787907, format!("Missing value for 'input' in {name}"))
    })?;
    let n = field(&f, "n")
        .ok_or_else(|| CommandError::new(5787906, format!("Missing value for 'n' in {name}")))?;
    let n = eval(n, scope)?;
    let n = match int_arg(&n) {
        Some(k) if k > 0 => k as usize,
        Some(_) => {
            return Err(CommandError::new(
                5787908,
                format!(
                    "'n' must be greater than 0, found {}",
                    n.unwrap_or(Bson::Null)
                ),
            ));
        }
        None => {
            return Err(CommandError::new(
                5787902,
                format!(
                    "Value for 'n' must be of integral type, but found {}",
                    n.unwrap_or(Bson::Null)
                ),
            ));
        }
    };
    let v = eval(input, scope)?;
    let Some(Bson::Array(mut items)) = v else {
        return Err(CommandError::new(
            5788200,
            format!("Input to {name} must be an array, but found {}", tn(&v)),
        ));
    };
    match name {
        "$firstN" => items.truncate(n),
        "$lastN" => {
            let skip = items.len().saturating_sub(n);
            items.drain(..skip);
        }
        _ => {
            // $maxN/$minN skip null and missing.
            items.retain(|x| !matches!(x, Bson::Null | Bson::Undefined));
            if name == "$maxN" {
                items.sort_by(|a, b| compare(b, a));
            } else {
                items.sort_by(compare);
            }
            items.truncate(n);
        }
    }
    Ok(Some(Bson::Array(items)))
}

fn op_sort_array(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$sortArray", arg, &["input", "sortBy"], 2942500)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(2942501, "$sortArray requires 'input' to be specified"))?;
    let sort_by = field(&f, "sortBy").ok_or_else(|| {
        CommandError::new(2942502, "$sortArray requires 'sortBy' to be specified")
    })?;
    let v = eval(input, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(mut items)) = v else {
        return Err(CommandError::new(
            2942504,
            format!(
                "The input argument to $sortArray must be an array, but was of type: {}",
                tn(&v)
            ),
        ));
    };
    match sort_by {
        Bson::Document(spec) => {
            let sort = crate::query::sort::SortSpec::new(spec)?;
            // Non-documents sort as empty documents under a field sort.
            let key = |b: &Bson| match b {
                Bson::Document(d) => d.clone(),
                _ => Document::new(),
            };
            items.sort_by(|a, b| sort.compare(&key(a), &key(b)));
        }
        other => {
            let dir = int_arg(&Some(other.clone()));
            match dir {
                Some(1) => items.sort_by(compare),
                Some(-1) => items.sort_by(|a, b| compare(b, a)),
                _ => {
                    return Err(CommandError::new(
                        2942505,
                        "$sortArray sortBy must be either 1, -1, or a sort specification object",
                    ));
                }
            }
        }
    }
    Ok(Some(Bson::Array(items)))
}

fn op_set(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = arg_list(arg);
    let v = eval_all(&args, scope)?;
    let dedup = |items: &[Bson]| -> Vec<Bson> {
        let mut out: Vec<Bson> = Vec::new();
        for i in items {
            if !out.iter().any(|o| compare(o, i) == Ordering::Equal) {
                out.push(i.clone());
            }
        }
        out
    };
    let contains = |set: &[Bson], x: &Bson| set.iter().any(|o| compare(o, x) == Ordering::Equal);
    match name {
        "$setUnion" | "$setIntersection" => {
            let mut result: Option<Vec<Bson>> = None;
            for x in &v {
                match x {
                    x if nullish(x) => return Ok(Some(Bson::Null)),
                    Some(Bson::Array(a)) => {
                        result = Some(match result {
                            None => dedup(a),
                            Some(r) if name == "$setUnion" => {
                                let mut all = r;
                                all.extend(a.iter().cloned());
                                dedup(&all)
                            }
                            Some(r) => r.into_iter().filter(|e| contains(a, e)).collect(),
                        });
                    }
                    other => {
                        return Err(CommandError::new(
                            if name == "$setUnion" { 17043 } else { 17047 },
                            format!(
                                "All operands of {name} must be arrays. One argument is of type: {}",
                                tn(other)
                            ),
                        ));
                    }
                }
            }
            Ok(Some(Bson::Array(result.unwrap_or_default())))
        }
        _ => {
            if v.len() != 2 && name != "$setEquals" {
                return Err(CommandError::new(
                    16020,
                    format!(
                        "Expression {name} takes exactly 2 arguments. {} were passed in.",
                        v.len()
                    ),
                ));
            }
            if name == "$setDifference" && v.iter().any(nullish) {
                return Ok(Some(Bson::Null));
            }
            let mut arrays = Vec::new();
            for x in &v {
                match x {
                    Some(Bson::Array(a)) => arrays.push(a.clone()),
                    other => {
                        return Err(CommandError::new(
                            17048,
                            format!(
                                "both operands of {name} must be arrays. First argument is of type: {}",
                                tn(other)
                            ),
                        ));
                    }
                }
            }
            Ok(Some(match name {
                "$setDifference" => Bson::Array(
                    dedup(&arrays[0])
                        .into_iter()
                        .filter(|e| !contains(&arrays[1], e))
                        .collect(),
                ),
                "$setIsSubset" => Bson::Boolean(arrays[0].iter().all(|e| contains(&arrays[1], e))),
                _ => {
                    if arrays.len() < 2 {
                        return Err(CommandError::new(
                            17045,
                            "$setEquals needs at least two arguments",
                        ));
                    }
                    let first = &arrays[0];
                    Bson::Boolean(arrays[1..].iter().all(|a| {
                        a.iter().all(|e| contains(first, e)) && first.iter().all(|e| contains(a, e))
                    }))
                }
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

fn field_name_arg(name: &str, f: &[(&str, &Bson)]) -> Result<String> {
    let fld = field(f, "field").ok_or_else(|| {
        CommandError::new(3041702, format!("{name} requires 'field' to be specified"))
    })?;
    match fld {
        Bson::String(s) if !s.starts_with('$') => Ok(s.clone()),
        Bson::Document(d) if d.len() == 1 && d.contains_key("$literal") => {
            match d.get("$literal") {
                Some(Bson::String(s)) => Ok(s.clone()),
                _ => Err(CommandError::new(
                    5654602,
                    format!("{name} requires 'field' to evaluate to type String"),
                )),
            }
        }
        _ => Err(CommandError::new(
            5654601,
            format!(
                "{name} requires 'field' to evaluate to a constant, but got a non-constant argument"
            ),
        )),
    }
}

fn op_get_field(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let (name, input) = match arg {
        Bson::Document(d) if d.keys().next().is_some_and(|k| !k.starts_with('$')) => {
            let f = parse_object("$getField", arg, &["field", "input"], 3041701)?;
            (field_name_arg("$getField", &f)?, field(&f, "input"))
        }
        Bson::String(s) if !s.starts_with('$') => (s.clone(), None),
        other => {
            let f = vec![("field", other)];
            (field_name_arg("$getField", &f)?, None)
        }
    };
    let input = match input {
        Some(e) => eval(e, scope)?,
        None => scope.variable("CURRENT")?,
    };
    match input {
        Some(Bson::Document(d)) => Ok(d.get(&name).cloned()),
        v if nullish(&v) => Ok(if v.is_none() { None } else { Some(Bson::Null) }),
        _ => Ok(None),
    }
}

fn op_set_field(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let allowed: &[&str] = if name == "$setField" {
        &["field", "input", "value"]
    } else {
        &["field", "input"]
    };
    let f = parse_object(name, arg, allowed, 4161100)?;
    let fname = field_name_arg(name, &f)?;
    let input_expr = field(&f, "input").ok_or_else(|| {
        CommandError::new(4161102, format!("{name} requires 'input' to be specified"))
    })?;
    let value = if name == "$setField" {
        let e = field(&f, "value").ok_or_else(|| {
            CommandError::new(4161103, "$setField requires 'value' to be specified")
        })?;
        eval(e, scope)?
    } else {
        None
    };
    let input = eval(input_expr, scope)?;
    match input {
        v if nullish(&v) => Ok(Some(Bson::Null)),
        Some(Bson::Document(mut d)) => {
            match value {
                Some(v) => {
                    d.insert(fname, v);
                }
                None => {
                    d.remove(&fname);
                }
            }
            Ok(Some(Bson::Document(d)))
        }
        _ => Err(CommandError::new(
            4161105,
            format!("{name} requires 'input' to evaluate to type Object"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Dates

struct DateParts {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    day_of_week: i64,
    day_of_year: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateParts {
    fn from_millis(ms: i64) -> DateParts {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let mut year = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        if month <= 2 {
            year += 1;
        }
        DateParts {
            year,
            month,
            day,
            hour: rem / 3_600_000,
            minute: rem / 60_000 % 60,
            second: rem / 1000 % 60,
            millis: rem % 1000,
            // 1970-01-01 was a Thursday; the server numbers Sunday as 1.
            day_of_week: (days + 4).rem_euclid(7) + 1,
            day_of_year: days - days_from_civil(year, 1, 1) + 1,
        }
    }
}

fn date_millis(v: &Option<Bson>) -> Result<i64> {
    match v {
        Some(Bson::DateTime(d)) => Ok(d.timestamp_millis()),
        Some(Bson::Timestamp(t)) => Ok(t.time as i64 * 1000),
        Some(Bson::ObjectId(o)) => Ok(o.timestamp().timestamp_millis()),
        other => Err(CommandError::new(
            16006,
            format!("can't convert from BSON type {} to Date", tn(other)),
        )),
    }
}

fn check_utc(tz: Option<&Bson>, scope: &Scope) -> Result<()> {
    if let Some(tz) = tz {
        match eval(tz, scope)? {
            Some(Bson::String(s))
                if s == "UTC"
                    || s == "GMT"
                    || s == "Z"
                    || s == "+00:00"
                    || s == "+0000"
                    || s == "Etc/UTC" => {}
            v if nullish(&v) => {}
            v => {
                return Err(CommandError::new(
                    40485,
                    format!(
                        "unrecognized time zone identifier: {}",
                        v.unwrap_or(Bson::Null)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn op_date_part(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let date_expr = match arg {
        Bson::Document(d) if d.keys().next().is_some_and(|k| !k.starts_with('$')) => {
            let f = parse_object(name, arg, &["date", "timezone"], 40535)?;
            check_utc(field(&f, "timezone"), scope)?;
            field(&f, "date").ok_or_else(|| {
                CommandError::new(
                    40539,
                    format!("missing 'date' argument to {name}, provided: {arg}"),
                )
            })?
        }
        other => {
            let a = exact_args(name, other, 1)?;
            a[0]
        }
    };
    let v = eval(date_expr, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let p = DateParts::from_millis(date_millis(&v)?);
    let n = match name {
        "$year" => p.year,
        "$month" => p.month,
        "$dayOfMonth" => p.day,
        "$hour" => p.hour,
        "$minute" => p.minute,
        "$second" => p.second,
        "$millisecond" => p.millis,
        "$dayOfWeek" => p.day_of_week,
        _ => p.day_of_year,
    };
    Ok(Some(Bson::Int32(n as i32)))
}

fn op_date_add(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(
        name,
        arg,
        &["startDate", "unit", "amount", "timezone"],
        5166401,
    )?;
    check_utc(field(&f, "timezone"), scope)?;
    let mut vals = Vec::new();
    for key in ["startDate", "unit", "amount"] {
        let e = field(&f, key).ok_or_else(|| {
            CommandError::new(5166402, format!("{name} requires '{key}' to be present"))
        })?;
        vals.push(eval(e, scope)?);
    }
    if vals.iter().any(nullish) {
        return Ok(Some(Bson::Null));
    }
    let start = match &vals[0] {
        Some(Bson::DateTime(d)) => d.timestamp_millis(),
        other => date_millis(other).map_err(|_| {
            CommandError::new(
                5166403,
                format!("{name} requires startDate to be convertible to a date"),
            )
        })?,
    };
    let Some(Bson::String(unit)) = &vals[1] else {
        return Err(CommandError::new(
            5166404,
            format!(
                "{name} requires 'unit' to be a string, but got {}",
                tn(&vals[1])
            ),
        ));
    };
    let Some(amount) = int_arg(&vals[2]) else {
        return Err(CommandError::new(
            5166405,
            format!("{name} expects integer amount of time units"),
        ));
    };
    let amount = if name == "$dateSubtract" {
        -amount
    } else {
        amount
    };
    let fixed = |ms: i64| start.checked_add(amount.checked_mul(ms)?);
    let result = match unit.as_str() {
        "millisecond" => fixed(1),
        "second" => fixed(1000),
        "minute" => fixed(60_000),
        "hour" => fixed(3_600_000),
        "day" => fixed(86_400_000),
        "week" => fixed(7 * 86_400_000),
        "month" | "quarter" | "year" => {
            let months = amount
                * match unit.as_str() {
                    "month" => 1,
                    "quarter" => 3,
                    _ => 12,
                };
            let p = DateParts::from_millis(start);
            let total = p.year * 12 + (p.month - 1) + months;
            let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
            // The day is clamped to the end of a shorter month.
            let last = days_from_civil(
                if m == 12 { y + 1 } else { y },
                if m == 12 { 1 } else { m + 1 },
                1,
            ) - days_from_civil(y, m, 1);
            let day = p.day.min(last);
            let rem = start.rem_euclid(86_400_000);
            Some(days_from_civil(y, m, day) * 86_400_000 + rem)
        }
        other => {
            return Err(CommandError::failed_to_parse(format!(
                "unknown time unit value: {other}"
            )));
        }
    };
    match result {
        Some(ms) => Ok(Some(Bson::DateTime(bson::DateTime::from_millis(ms)))),
        None => Err(CommandError::new(5166406, format!("{name} overflowed"))),
    }
}

fn op_date_from_parts(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let keys = [
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "millisecond",
    ];
    let mut allowed: Vec<&str> = keys.to_vec();
    allowed.push("timezone");
    let f = parse_object("$dateFromParts", arg, &allowed, 40518)?;
    check_utc(field(&f, "timezone"), scope)?;
    if field(&f, "year").is_none() {
        return Err(CommandError::new(
            40516,
            "$dateFromParts requires either 'year' or 'isoWeekYear' to be present",
        ));
    }
    let mut parts = [1970i64, 1, 1, 0, 0, 0, 0];
    for (i, key) in keys.iter().enumerate() {
        let Some(e) = field(&f, key) else {
            continue;
        };
        let v = eval(e, scope)?;
        if nullish(&v) {
            return Ok(Some(Bson::Null));
        }
        parts[i] = int_arg(&v).ok_or_else(|| {
            CommandError::new(
                40515,
                format!(
                    "'{key}' must evaluate to an integer, found {} with value {}",
                    tn(&v),
                    v.clone().unwrap_or(Bson::Null)
                ),
            )
        })?;
    }
    if !(1..=9999).contains(&parts[0]) {
        return Err(CommandError::new(
            40523,
            format!(
                "'year' must evaluate to an integer in the range 1 to 9999, found {}",
                parts[0]
            ),
        ));
    }
    // Out-of-range parts carry over, as on the server (month 13 is January next year).
    let months = parts[0] * 12 + parts[1] - 1;
    let days = days_from_civil(months.div_euclid(12), months.rem_euclid(12) + 1, 1) + parts[2] - 1;
    let ms =
        days * 86_400_000 + parts[3] * 3_600_000 + parts[4] * 60_000 + parts[5] * 1000 + parts[6];
    Ok(Some(Bson::DateTime(bson::DateTime::from_millis(ms))))
}

fn op_date_from_string(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(
        "$dateFromString",
        arg,
        &["dateString", "format", "timezone", "onError", "onNull"],
        40541,
    )?;
    check_utc(field(&f, "timezone"), scope)?;
    let e = field(&f, "dateString").ok_or_else(|| {
        CommandError::new(40542, "Missing 'dateString' parameter to $dateFromString")
    })?;
    let v = eval(e, scope)?;
    if nullish(&v) {
        return match field(&f, "onNull") {
            Some(e) => eval(e, scope),
            None => Ok(Some(Bson::Null)),
        };
    }
    let parsed = match &v {
        Some(Bson::String(s)) => parse_date(s).ok_or_else(|| {
            CommandError::new(
                CONVERSION_FAILURE,
                format!("Error parsing date string '{s}'"),
            )
        }),
        other => Err(CommandError::new(
            CONVERSION_FAILURE,
            format!(
                "$dateFromString requires that 'dateString' be a string, found: {} with value {}",
                tn(other),
                other.clone().unwrap_or(Bson::Null)
            ),
        )),
    };
    match parsed {
        Ok(d) => Ok(Some(Bson::DateTime(d))),
        Err(e) => match field(&f, "onError") {
            Some(on_error) => eval(on_error, scope),
            None => Err(e),
        },
    }
}

fn op_date_to_string(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(
        "$dateToString",
        arg,
        &["date", "format", "timezone", "onNull"],
        18534,
    )?;
    let date = field(&f, "date")
        .ok_or_else(|| CommandError::new(18628, "Missing 'date' parameter to $dateToString"))?;
    check_utc(field(&f, "timezone"), scope)?;
    let format = match field(&f, "format") {
        None => "%Y-%m-%dT%H:%M:%S.%LZ".to_string(),
        Some(e) => match eval(e, scope)? {
            v if nullish(&v) => return Ok(Some(Bson::Null)),
            Some(Bson::String(s)) => s,
            v => {
                return Err(CommandError::new(
                    18533,
                    format!(
                        "$dateToString requires that 'format' be a string, found: {} with value {}",
                        tn(&v),
                        v.clone().unwrap_or(Bson::Null)
                    ),
                ));
            }
        },
    };
    let v = eval(date, scope)?;
    if nullish(&v) {
        return match field(&f, "onNull") {
            Some(e) => eval(e, scope),
            None => Ok(Some(Bson::Null)),
        };
    }
    let p = DateParts::from_millis(date_millis(&v)?);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            return Err(CommandError::new(
                18535,
                "Unmatched '%' at end of format string",
            ));
        };
        match spec {
            'Y' => out.push_str(&format!("{:04}", p.year)),
            'm' => out.push_str(&format!("{:02}", p.month)),
            'd' => out.push_str(&format!("{:02}", p.day)),
            'H' => out.push_str(&format!("{:02}", p.hour)),
            'M' => out.push_str(&format!("{:02}", p.minute)),
            'S' => out.push_str(&format!("{:02}", p.second)),
            'L' => out.push_str(&format!("{:03}", p.millis)),
            'j' => out.push_str(&format!("{:03}", p.day_of_year)),
            'w' => out.push_str(&p.day_of_week.to_string()),
            'u' => out.push_str(&(((p.day_of_week + 5) % 7) + 1).to_string()),
            'z' => out.push_str("+0000"),
            'Z' => out.push_str("+0"),
            '%' => out.push('%'),
            other => {
                return Err(CommandError::new(
                    18536,
                    format!("Invalid format character '%{other}' in format string"),
                ));
            }
        }
    }
    Ok(Some(Bson::String(out)))
}

/// An exact finite decimal: `(-1)^neg × coeff × 10^exp`, for decimal `+ - * /` with the
/// server's results (34 significant digits, rounded half to even by the BSON decimal parser).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dec {
    neg: bool,
    coeff: u128,
    exp: i32,
}

impl Dec {
    fn from_i64(i: i64) -> Dec {
        Dec {
            neg: i < 0,
            coeff: i.unsigned_abs() as u128,
            exp: 0,
        }
    }

    /// Parses `[-]digits[.digits][E[+-]exp]`; `None` for NaN and infinities.
    fn parse(s: &str) -> Option<Dec> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (mantissa, exp) = match body.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i32>().ok()?),
            None => (body, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = format!("{int}{frac}");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = digits.trim_start_matches('0');
        if trimmed.len() > 38 {
            return None;
        }
        Some(Dec {
            neg,
            coeff: if trimmed.is_empty() {
                0
            } else {
                trimmed.parse().ok()?
            },
            exp: exp - frac.len() as i32,
        })
    }

    fn neg(self) -> Dec {
        Dec {
            neg: !self.neg,
            ..self
        }
    }

    fn scaled(self, to_exp: i32) -> Option<u128> {
        let shift = u32::try_from(self.exp - to_exp).ok()?;
        10u128.checked_pow(shift)?.checked_mul(self.coeff)
    }

    fn add(self, other: Dec) -> Option<Dec> {
        let exp = self.exp.min(other.exp);
        let (a, b) = (self.scaled(exp)?, other.scaled(exp)?);
        let (neg, coeff) = match (self.neg, other.neg) {
            (x, y) if x == y => (x, a.checked_add(b)?),
            _ if a >= b => (self.neg, a - b),
            _ => (other.neg, b - a),
        };
        // x + (-x) is +0, as in IEEE 754 round-to-nearest.
        let neg = neg && coeff != 0;
        Some(Dec { neg, coeff, exp })
    }

    fn mul(self, other: Dec) -> Option<Dec> {
        Some(Dec {
            neg: self.neg != other.neg,
            coeff: self.coeff.checked_mul(other.coeff)?,
            exp: self.exp.checked_add(other.exp)?,
        })
    }

    /// Long division to 36 significant digits; an exact quotient takes the ideal exponent
    /// (`e1 - e2`) when its trailing zeros allow, as IEEE 754 decimal division does.
    fn div(self, other: Dec) -> Option<Dec> {
        if other.coeff == 0 {
            return None;
        }
        let mut q = self.coeff / other.coeff;
        let mut r = self.coeff % other.coeff;
        let mut exp = self.exp - other.exp;
        let ideal = exp;
        let digits = |v: u128| if v == 0 { 0 } else { v.ilog10() + 1 };
        while r != 0 && digits(q) < 36 {
            r *= 10;
            q = q.checked_mul(10)? + r / other.coeff;
            r %= other.coeff;
            exp -= 1;
        }
        if r == 0 {
            while exp < ideal && q.is_multiple_of(10) && q != 0 {
                q /= 10;
                exp += 1;
            }
            if q == 0 {
                exp = ideal;
            }
        } else if q.is_multiple_of(10) {
            // A nonzero remainder must not look like an exact tie when rounding.
            q += 1;
        }
        Some(Dec {
            neg: self.neg != other.neg,
            coeff: q,
            exp,
        })
    }

    /// Rounds to 34 significant digits, half to even, and packs.
    fn to_decimal128(self) -> Option<Decimal128> {
        let (mut coeff, mut exp) = (self.coeff, self.exp);
        let digits = if coeff == 0 { 0 } else { coeff.ilog10() + 1 };
        if digits > 34 {
            let divisor = 10u128.pow(digits - 34);
            let (q, rem) = (coeff / divisor, coeff % divisor);
            let half = divisor / 2;
            coeff = if rem > half || (rem == half && q % 2 == 1) {
                q + 1
            } else {
                q
            };
            exp += (digits - 34) as i32;
            if coeff == 10u128.pow(34) {
                coeff /= 10;
                exp += 1;
            }
        }
        let sign = if self.neg { "-" } else { "" };
        format!("{sign}{coeff}E{exp}").parse().ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Accumulation shared by the expression forms of $sum/$avg/$min/$max and by $group.

/// A running `$sum`, `$avg`, `$min` or `$max`.
#[derive(Debug, Clone)]
pub(crate) enum Accumulator {
    Sum(Num),
    Avg(Num, u64),
    Min(Option<Bson>),
    Max(Option<Bson>),
}

impl Accumulator {
    pub(crate) fn new(op: &str) -> Result<Accumulator> {
        Ok(match op {
            "$sum" => Accumulator::Sum(Num::Int(0)),
            "$avg" => Accumulator::Avg(Num::Int(0), 0),
            "$min" => Accumulator::Min(None),
            "$max" => Accumulator::Max(None),
            other => return Err(unknown_operator(other)),
        })
    }

    /// Adds a value: sums and averages ignore non-numbers; min and max ignore null and missing.
    pub(crate) fn add(&mut self, v: Option<Bson>) -> Result<()> {
        match self {
            Accumulator::Sum(total) => {
                if let Some(n) = v.as_ref().and_then(Num::from_bson) {
                    *total = total.add(n);
                }
            }
            Accumulator::Avg(total, count) => {
                if let Some(n) = v.as_ref().and_then(Num::from_bson) {
                    *total = total.add(n);
                    *count += 1;
                }
            }
            Accumulator::Min(cur) => {
                if !nullish(&v)
                    && cur
                        .as_ref()
                        .is_none_or(|c| compare_values(v.as_ref(), Some(c)) == Ordering::Less)
                {
                    *cur = v;
                }
            }
            Accumulator::Max(cur) => {
                if !nullish(&v)
                    && cur
                        .as_ref()
                        .is_none_or(|c| compare_values(v.as_ref(), Some(c)) == Ordering::Greater)
                {
                    *cur = v;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(&self) -> Bson {
        match self {
            Accumulator::Sum(total) => total.to_bson(),
            Accumulator::Avg(total, count) => {
                if *count == 0 {
                    Bson::Null
                } else if let Num::Decimal(_) = total {
                    total.div(Num::Long(*count as i64)).to_bson()
                } else {
                    Bson::Double(total.f64() / *count as f64)
                }
            }
            Accumulator::Min(v) | Accumulator::Max(v) => v.clone().unwrap_or(Bson::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn ev_in(e: Bson, d: Document) -> Option<Bson> {
        evaluate(&e, &d, &Document::new()).unwrap()
    }
    fn ev(e: Bson) -> Option<Bson> {
        ev_in(e, Document::new())
    }
    fn err_in(e: Bson, d: Document) -> CommandError {
        evaluate(&e, &d, &Document::new()).unwrap_err()
    }
    fn err(e: Bson) -> CommandError {
        err_in(e, Document::new())
    }
    fn dec(s: &str) -> Bson {
        Bson::Decimal128(s.parse().unwrap())
    }

    #[test]
    fn field_paths_traverse_arrays_of_documents() {
        let d = doc! {"a": [{"b": 1}, {"b": 2}, {"c": 3}, 7, [{"b": 4}]], "x": {"y": {"z": 5}}};
        // Missing elements and scalars are dropped; nested arrays are traversed.
        assert_eq!(ev_in(bson!("$a.b"), d.clone()), Some(bson!([1, 2, [4]])));
        assert_eq!(ev_in(bson!("$x.y.z"), d.clone()), Some(bson!(5)));
        assert_eq!(ev_in(bson!("$x.q"), d.clone()), None);
        assert_eq!(ev_in(bson!("$$ROOT.x.y"), d.clone()), Some(bson!({"z": 5})));
        assert_eq!(ev_in(bson!("$$CURRENT.x.y.z"), d.clone()), Some(bson!(5)));
        assert_eq!(ev_in(bson!("$$REMOVE"), d.clone()), None);
        assert!(matches!(ev(bson!("$$NOW")), Some(Bson::DateTime(_))));
        assert_eq!(err(bson!("$$nope")).code, 17276);
        assert_eq!(err(bson!("$")).code, 16872);
    }

    #[test]
    fn literals_and_user_variables() {
        let d = doc! {"a": 1};
        assert_eq!(
            ev_in(
                bson!({"x": "$a", "y": "$missing", "z": ["$a", "$missing"]}),
                d.clone()
            ),
            // A missing field is omitted from an object and null inside an array.
            Some(bson!({"x": 1, "z": [1, null]}))
        );
        assert_eq!(ev(bson!({"$literal": "$a"})), Some(bson!("$a")));
        let vars = doc! {"v": 10};
        assert_eq!(
            evaluate(&bson!({"$add": ["$$v", "$a"]}), &d, &vars).unwrap(),
            Some(bson!(11))
        );
        assert_eq!(
            ev_in(
                bson!({"$let": {"vars": {"x": {"$add": ["$a", 1]}}, "in": {"$multiply": ["$$x", 10]}}}),
                d
            ),
            Some(bson!(20))
        );
        assert_eq!(
            err(bson!({"$let": {"vars": {"X": 1}, "in": 1}})).code,
            16867
        );
        assert_eq!(err(bson!({"$foo": 1})).code, 168);
        assert_eq!(
            err(bson!({"$foo": 1})).message,
            "Unrecognized expression '$foo'"
        );
        assert_eq!(err(bson!({"$add": [1], "$sub": 2})).code, 15983);
        assert!(validate(&bson!({"a": {"$bogus": 1}})).is_err());
        assert!(validate(&bson!({"a": {"$literal": {"$bogus": 1}}})).is_ok());
    }

    #[test]
    fn let_documents_are_evaluated_once() {
        let vars = evaluate_let(
            &doc! {"id": 1, "y": {"$literal": "$bar"}, "r": {"$rand": {}}, "m": "$nothing"},
            &Document::new(),
        )
        .unwrap();
        assert_eq!(vars.get("y"), Some(&bson!("$bar")));
        assert!(matches!(vars.get("r"), Some(Bson::Double(_))));
        assert_eq!(
            evaluate(&bson!("$$y"), &doc! {}, &vars).unwrap(),
            Some(bson!("$bar"))
        );
        // A missing value stays missing.
        assert_eq!(evaluate(&bson!("$$m"), &doc! {}, &vars).unwrap(), None);
        assert_eq!(
            evaluate(&bson!({"$eq": ["$$m", "$x"]}), &doc! {}, &vars).unwrap(),
            Some(bson!(true))
        );
        assert_eq!(
            evaluate_let(&doc! {"Bad": 1}, &Document::new())
                .unwrap_err()
                .code,
            16867
        );
    }

    #[test]
    fn add_promotes_numeric_types() {
        assert_eq!(ev(bson!({"$add": [1, 2]})), Some(Bson::Int32(3)));
        assert_eq!(
            ev(bson!({"$add": [i32::MAX, 1]})),
            Some(Bson::Int64(i32::MAX as i64 + 1))
        );
        assert_eq!(
            ev(bson!({"$add": [i64::MAX, 1i64]})),
            Some(Bson::Double(i64::MAX as f64 + 1.0))
        );
        assert_eq!(ev(bson!({"$add": [1, 2i64]})), Some(Bson::Int64(3)));
        assert_eq!(ev(bson!({"$add": [1, 0.5]})), Some(Bson::Double(1.5)));
        assert_eq!(ev(bson!({"$add": [1, dec("1.1")]})), Some(dec("2.1")));
        assert_eq!(ev(bson!({"$add": []})), Some(Bson::Int32(0)));
        // Missing and null make the result null.
        assert_eq!(ev(bson!({"$add": [1, "$missing"]})), Some(Bson::Null));
        assert_eq!(ev(bson!({"$add": [1, null]})), Some(Bson::Null));
        let e = err(bson!({"$add": [1, "x"]}));
        assert_eq!(
            (e.code, e.message.as_str()),
            (14, "$add only supports numeric or date types, not string")
        );
        let date = bson::DateTime::from_millis(1000);
        assert_eq!(
            ev(bson!({"$add": [date, 500, 0.4]})),
            Some(Bson::DateTime(bson::DateTime::from_millis(1500)))
        );
        assert_eq!(err(bson!({"$add": [date, date]})).code, 16612);
    }

    #[test]
    fn decimal_arithmetic_is_exact() {
        assert_eq!(
            ev(bson!({"$add": [dec("0.1"), dec("0.2")]})),
            Some(dec("0.3"))
        );
        assert_eq!(
            ev(bson!({"$subtract": [dec("1.00"), dec("0.01")]})),
            Some(dec("0.99"))
        );
        assert_eq!(ev(bson!({"$multiply": [dec("1.5"), 2]})), Some(dec("3.0")));
        assert_eq!(ev(bson!({"$divide": [dec("6"), 3]})), Some(dec("2")));
        assert_eq!(
            ev(bson!({"$divide": [dec("10"), dec("4")]})),
            Some(dec("2.5"))
        );
        assert_eq!(
            ev(bson!({"$divide": [1, dec("3")]})),
            Some(dec("0.3333333333333333333333333333333333"))
        );
        assert_eq!(
            ev(bson!({"$divide": [2, dec("3")]})),
            Some(dec("0.6666666666666666666666666666666667"))
        );
        // A double joins decimal arithmetic through its 15 significant digits.
        assert_eq!(
            ev(bson!({"$add": [dec("1"), 0.1]})),
            Some(dec("1.100000000000000"))
        );
        assert_eq!(
            ev(bson!({"$add": [dec("1"), i64::MAX]})),
            Some(dec("9223372036854775808"))
        );
        assert_eq!(
            ev(bson!({"$sum": [dec("0.1"), dec("0.2"), 1]})),
            Some(dec("1.3"))
        );
        assert_eq!(ev(bson!({"$avg": [dec("1"), dec("2")]})), Some(dec("1.5")));
        assert_eq!(ev(bson!({"$abs": dec("-2.5")})), Some(dec("2.5")));
    }

    #[test]
    fn subtract_multiply_divide_mod() {
        let d1 = bson::DateTime::from_millis(5000);
        let d2 = bson::DateTime::from_millis(2000);
        assert_eq!(ev(bson!({"$subtract": [d1, d2]})), Some(Bson::Int64(3000)));
        assert_eq!(
            ev(bson!({"$subtract": [d1, 1000]})),
            Some(Bson::DateTime(bson::DateTime::from_millis(4000)))
        );
        assert_eq!(
            ev(bson!({"$subtract": [i32::MIN, 1]})),
            Some(Bson::Int64(i32::MIN as i64 - 1))
        );
        assert_eq!(err(bson!({"$subtract": [1, d1]})).code, 14);
        let e = err(bson!({"$subtract": [1]}));
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                16020,
                "Expression $subtract takes exactly 2 arguments. 1 were passed in."
            )
        );
        assert_eq!(
            ev(bson!({"$multiply": [65536, 65536]})),
            Some(Bson::Int64(4294967296))
        );
        assert_eq!(ev(bson!({"$multiply": [2, 1.5]})), Some(Bson::Double(3.0)));
        // $divide always returns a double (or a decimal).
        assert_eq!(ev(bson!({"$divide": [6, 3]})), Some(Bson::Double(2.0)));
        assert_eq!(ev(bson!({"$divide": [dec("1"), 4]})), Some(dec("0.25")));
        let e = err(bson!({"$divide": [1, 0]}));
        assert_eq!((e.code, e.message.as_str()), (2, "can't $divide by zero"));
        assert_eq!(ev(bson!({"$divide": [1, null]})), Some(Bson::Null));
        assert_eq!(ev(bson!({"$mod": [7, 3]})), Some(Bson::Int32(1)));
        assert_eq!(ev(bson!({"$mod": [-7, 3i64]})), Some(Bson::Int64(-1)));
        assert_eq!(ev(bson!({"$mod": [7.5, 2]})), Some(Bson::Double(1.5)));
        assert_eq!(err(bson!({"$mod": [7, 0]})).code, 16610);
    }

    #[test]
    fn unary_math() {
        assert_eq!(ev(bson!({"$abs": -5})), Some(Bson::Int32(5)));
        assert_eq!(ev(bson!({"$abs": i32::MIN})), Some(Bson::Int64(2147483648)));
        assert_eq!(err(bson!({"$abs": i64::MIN})).code, 28680);
        assert_eq!(ev(bson!({"$abs": null})), Some(Bson::Null));
        assert_eq!(err(bson!({"$abs": "x"})).code, 28765);
        assert_eq!(ev(bson!({"$ceil": 1.2})), Some(Bson::Double(2.0)));
        assert_eq!(ev(bson!({"$floor": -1.2})), Some(Bson::Double(-2.0)));
        assert_eq!(ev(bson!({"$floor": 3})), Some(Bson::Int32(3)));
        assert_eq!(ev(bson!({"$sqrt": 16})), Some(Bson::Double(4.0)));
        assert_eq!(err(bson!({"$sqrt": -1})).code, 28714);
        assert_eq!(ev(bson!({"$ln": 1})), Some(Bson::Double(0.0)));
        assert_eq!(ev(bson!({"$log10": 1000})), Some(Bson::Double(3.0)));
        assert_eq!(err(bson!({"$log10": 0})).code, 28761);
        assert_eq!(ev(bson!({"$log": [8, 2]})), Some(Bson::Double(3.0)));
        assert_eq!(err(bson!({"$log": [8, 1]})).code, 28759);
        assert_eq!(ev(bson!({"$exp": 0})), Some(Bson::Double(1.0)));
        assert_eq!(ev(bson!({"$pow": [2, 10]})), Some(Bson::Int32(1024)));
        assert_eq!(ev(bson!({"$pow": [2, 40]})), Some(Bson::Int64(1 << 40)));
        assert_eq!(ev(bson!({"$pow": [2, -1]})), Some(Bson::Double(0.5)));
        assert_eq!(ev(bson!({"$pow": [-1, -3]})), Some(Bson::Int32(-1)));
        assert_eq!(err(bson!({"$pow": [0, -1]})).code, 28764);
        // $round rounds half to even; integers with a negative place round to tens etc.
        assert_eq!(ev(bson!({"$round": [2.5]})), Some(Bson::Double(2.0)));
        assert_eq!(ev(bson!({"$round": [3.5]})), Some(Bson::Double(4.0)));
        assert_eq!(ev(bson!({"$round": [1.2345, 2]})), Some(Bson::Double(1.23)));
        assert_eq!(ev(bson!({"$round": [1234, -2]})), Some(Bson::Int32(1200)));
        assert_eq!(ev(bson!({"$trunc": [-1.7]})), Some(Bson::Double(-1.0)));
        assert_eq!(ev(bson!({"$trunc": [1.789, 1]})), Some(Bson::Double(1.7)));
        assert_eq!(err(bson!({"$round": [1, 101]})).code, 51083);
    }

    #[test]
    fn comparisons_use_full_bson_order() {
        assert_eq!(ev(bson!({"$eq": [1, 1.0]})), Some(bson!(true)));
        assert_eq!(ev(bson!({"$lt": [5, "a"]})), Some(bson!(true)));
        assert_eq!(ev(bson!({"$gt": [{"a": 1}, "zzz"]})), Some(bson!(true)));
        assert_eq!(ev(bson!({"$cmp": ["b", "a"]})), Some(bson!(1)));
        assert_eq!(ev(bson!({"$cmp": [2, 2i64]})), Some(bson!(0)));
        // Missing sorts below null in aggregation comparisons.
        assert_eq!(ev(bson!({"$eq": ["$missing", null]})), Some(bson!(false)));
        assert_eq!(ev(bson!({"$lt": ["$missing", null]})), Some(bson!(true)));
        assert_eq!(
            ev(bson!({"$eq": ["$missing", "$alsoMissing"]})),
            Some(bson!(true))
        );
        assert_eq!(err(bson!({"$eq": [1]})).code, 16020);
        assert_eq!(ev(bson!({"$ne": [[1, 2], [1, 2]]})), Some(bson!(false)));
    }

    #[test]
    fn booleans_and_conditionals() {
        assert!(!truthy(None));
        assert!(!truthy(Some(&Bson::Int64(0))));
        assert!(!truthy(Some(&dec("0"))));
        assert!(truthy(Some(&bson!(""))));
        assert!(truthy(Some(&bson!([]))));
        assert_eq!(ev(bson!({"$and": [1, "x", true]})), Some(bson!(true)));
        assert_eq!(ev(bson!({"$and": []})), Some(bson!(true)));
        assert_eq!(
            ev(bson!({"$or": [0, null, "$missing"]})),
            Some(bson!(false))
        );
        assert_eq!(ev(bson!({"$not": [0]})), Some(bson!(true)));
        assert_eq!(ev(bson!({"$cond": [true, 1, 2]})), Some(bson!(1)));
        assert_eq!(
            ev(bson!({"$cond": {"if": null, "then": 1, "else": 2}})),
            Some(bson!(2))
        );
        assert_eq!(err(bson!({"$cond": {"then": 1, "else": 2}})).code, 17080);
        assert_eq!(
            err(bson!({"$cond": {"if": 1, "then": 1, "else": 2, "x": 1}})).code,
            17083
        );
        assert_eq!(err(bson!({"$cond": [1, 2]})).code, 16020);
        // $ifNull takes any number of arguments and replaces both null and missing.
        assert_eq!(
            ev(bson!({"$ifNull": ["$missing", null, 3, 4]})),
            Some(bson!(3))
        );
        assert_eq!(ev(bson!({"$ifNull": ["$missing", "$alsoMissing"]})), None);
        assert_eq!(err(bson!({"$ifNull": [1]})).code, 1257300);
        let sw = bson!({"$switch": {"branches": [{"case": {"$gt": ["$a", 5]}, "then": "big"}, {"case": {"$gt": ["$a", 1]}, "then": "mid"}], "default": "small"}});
        assert_eq!(ev_in(sw.clone(), doc! {"a": 3}), Some(bson!("mid")));
        assert_eq!(ev_in(sw, doc! {"a": 0}), Some(bson!("small")));
        let e = err(bson!({"$switch": {"branches": [{"case": false, "then": 1}]}}));
        assert_eq!(e.code, 40066);
        assert_eq!(err(bson!({"$switch": {"branches": []}})).code, 40068);
    }

    #[test]
    fn type_operators_and_conversions() {
        assert_eq!(ev(bson!({"$type": "$missing"})), Some(bson!("missing")));
        assert_eq!(ev(bson!({"$type": [[1]]})), Some(bson!("array")));
        assert_eq!(ev(bson!({"$type": 1i64})), Some(bson!("long")));
        assert_eq!(ev(bson!({"$isNumber": dec("1")})), Some(bson!(true)));
        assert_eq!(ev(bson!({"$isNumber": "1"})), Some(bson!(false)));
        assert_eq!(ev(bson!({"$toString": 1.5})), Some(bson!("1.5")));
        assert_eq!(ev(bson!({"$toString": 2.0})), Some(bson!("2")));
        assert_eq!(ev(bson!({"$toString": true})), Some(bson!("true")));
        assert_eq!(
            ev(bson!({"$toString": bson::DateTime::from_millis(86_400_000 * 365 + 1)})),
            Some(bson!("1971-01-01T00:00:00.001Z"))
        );
        let oid = ObjectId::parse_str("5f0c3f1e9b1e8a3d4c2b1a09").unwrap();
        assert_eq!(
            ev(bson!({"$toString": oid})),
            Some(bson!("5f0c3f1e9b1e8a3d4c2b1a09"))
        );
        assert_eq!(
            ev(bson!({"$toObjectId": "5f0c3f1e9b1e8a3d4c2b1a09"})),
            Some(Bson::ObjectId(oid))
        );
        assert_eq!(ev(bson!({"$toInt": "42"})), Some(Bson::Int32(42)));
        assert_eq!(ev(bson!({"$toInt": 4.9})), Some(Bson::Int32(4)));
        assert_eq!(ev(bson!({"$toInt": null})), Some(Bson::Null));
        assert_eq!(err(bson!({"$toInt": "4x"})).code, 241);
        assert_eq!(err(bson!({"$toInt": 1e12})).code, 241);
        assert_eq!(
            ev(bson!({"$toLong": bson::DateTime::from_millis(7)})),
            Some(Bson::Int64(7))
        );
        assert_eq!(ev(bson!({"$toDouble": "2.5"})), Some(Bson::Double(2.5)));
        assert_eq!(ev(bson!({"$toBool": 0})), Some(bson!(false)));
        assert_eq!(ev(bson!({"$toBool": "false"})), Some(bson!(true)));
        assert_eq!(
            ev(bson!({"$toDate": "2021-03-04T05:06:07.089Z"})),
            Some(Bson::DateTime(
                bson::DateTime::parse_rfc3339_str("2021-03-04T05:06:07.089Z").unwrap()
            ))
        );
        assert_eq!(
            ev(bson!({"$toDate": 0i64})),
            Some(Bson::DateTime(bson::DateTime::from_millis(0)))
        );
        // An int does not convert to a date, only a long or a double.
        let e = err(bson!({"$toDate": 5}));
        assert_eq!(e.code, 241);
        assert!(
            e.message
                .starts_with("Unsupported conversion from int to date")
        );
        assert_eq!(
            ev(bson!({"$convert": {"input": "x", "to": "int", "onError": -1}})),
            Some(bson!(-1))
        );
        assert_eq!(
            ev(bson!({"$convert": {"input": "$m", "to": "int", "onNull": 0}})),
            Some(bson!(0))
        );
        assert_eq!(
            ev(bson!({"$convert": {"input": "7", "to": 18}})),
            Some(Bson::Int64(7))
        );
        assert_eq!(
            err(bson!({"$convert": {"input": 1, "to": "bogus"}})).code,
            2
        );
    }

    #[test]
    fn strings() {
        assert_eq!(ev(bson!({"$concat": ["a", "b", "c"]})), Some(bson!("abc")));
        assert_eq!(ev(bson!({"$concat": ["a", "$missing"]})), Some(Bson::Null));
        assert_eq!(err(bson!({"$concat": ["a", 1]})).code, 16702);
        assert_eq!(ev(bson!({"$substr": ["hello", 1, 3]})), Some(bson!("ell")));
        assert_eq!(
            ev(bson!({"$substrBytes": ["hello", 2, -1]})),
            Some(bson!("llo"))
        );
        assert_eq!(ev(bson!({"$substrBytes": [123, 0, 2]})), Some(bson!("12")));
        assert_eq!(err(bson!({"$substrBytes": ["é", 1, 1]})).code, 28656);
        assert_eq!(ev(bson!({"$substrCP": ["héllo", 1, 2]})), Some(bson!("él")));
        assert_eq!(ev(bson!({"$toUpper": "abC"})), Some(bson!("ABC")));
        assert_eq!(ev(bson!({"$toLower": null})), Some(bson!("")));
        assert_eq!(ev(bson!({"$strLenBytes": "é"})), Some(bson!(2)));
        assert_eq!(ev(bson!({"$strLenCP": "é"})), Some(bson!(1)));
        assert_eq!(err(bson!({"$strLenCP": "$missing"})).code, 34471);
        assert_eq!(
            ev(bson!({"$split": ["a,b,,c", ","]})),
            Some(bson!(["a", "b", "", "c"]))
        );
        assert_eq!(err(bson!({"$split": ["a", ""]})).code, 40087);
        assert_eq!(ev(bson!({"$trim": {"input": "  x \n"}})), Some(bson!("x")));
        assert_eq!(
            ev(bson!({"$ltrim": {"input": "xxyx", "chars": "x"}})),
            Some(bson!("yx"))
        );
        assert_eq!(
            ev(bson!({"$rtrim": {"input": "xxyx", "chars": "x"}})),
            Some(bson!("xxy"))
        );
        assert_eq!(err(bson!({"$trim": {"input": 1}})).code, 50699);
        assert_eq!(
            ev(bson!({"$indexOfBytes": ["abcabc", "c", 3]})),
            Some(bson!(5))
        );
        assert_eq!(ev(bson!({"$indexOfBytes": ["abc", "z"]})), Some(bson!(-1)));
        assert_eq!(ev(bson!({"$indexOfCP": ["héllo", "l"]})), Some(bson!(2)));
        assert_eq!(
            ev(bson!({"$regexMatch": {"input": "Hello", "regex": "^h", "options": "i"}})),
            Some(bson!(true))
        );
        assert_eq!(
            ev(bson!({"$regexMatch": {"input": "$missing", "regex": "x"}})),
            Some(bson!(false))
        );
        assert_eq!(
            err(bson!({"$regexMatch": {"input": 1, "regex": "x"}})).code,
            51104
        );
        assert_eq!(ev(bson!({"$strcasecmp": ["ABC", "abc"]})), Some(bson!(0)));
    }

    #[test]
    fn arrays() {
        let d = doc! {"a": [1, 2, 3, 4]};
        assert_eq!(
            ev_in(bson!({"$arrayElemAt": ["$a", -1]}), d.clone()),
            Some(bson!(4))
        );
        assert_eq!(ev_in(bson!({"$arrayElemAt": ["$a", 10]}), d.clone()), None);
        assert_eq!(err(bson!({"$arrayElemAt": ["x", 0]})).code, 28689);
        assert_eq!(ev_in(bson!({"$first": "$a"}), d.clone()), Some(bson!(1)));
        assert_eq!(ev_in(bson!({"$last": "$a"}), d.clone()), Some(bson!(4)));
        assert_eq!(ev(bson!({"$first": [[]]})), None);
        assert_eq!(ev_in(bson!({"$size": "$a"}), d.clone()), Some(bson!(4)));
        let e = err(bson!({"$size": "$missing"}));
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                17124,
                "The argument to $size must be an array. Type of argument is missing"
            )
        );
        assert_eq!(
            ev_in(bson!({"$slice": ["$a", 2]}), d.clone()),
            Some(bson!([1, 2]))
        );
        assert_eq!(
            ev_in(bson!({"$slice": ["$a", -2]}), d.clone()),
            Some(bson!([3, 4]))
        );
        assert_eq!(
            ev_in(bson!({"$slice": ["$a", 1, 2]}), d.clone()),
            Some(bson!([2, 3]))
        );
        assert_eq!(
            ev_in(bson!({"$slice": ["$a", -3, 2]}), d.clone()),
            Some(bson!([2, 3]))
        );
        assert_eq!(
            err_in(bson!({"$slice": ["$a", 0, 0]}), d.clone()).code,
            28729
        );
        assert_eq!(
            ev(bson!({"$concatArrays": [[1], [2, 3]]})),
            Some(bson!([1, 2, 3]))
        );
        assert_eq!(
            ev(bson!({"$concatArrays": [[1], "$missing"]})),
            Some(Bson::Null)
        );
        assert_eq!(
            ev_in(bson!({"$in": [2.0, "$a"]}), d.clone()),
            Some(bson!(true))
        );
        assert_eq!(err(bson!({"$in": [1, "$missing"]})).code, 40081);
        assert_eq!(
            ev_in(bson!({"$isArray": "$a"}), d.clone()),
            Some(bson!(true))
        );
        assert_eq!(
            ev_in(
                bson!({"$filter": {"input": "$a", "as": "x", "cond": {"$gt": ["$$x", 2]}}}),
                d.clone()
            ),
            Some(bson!([3, 4]))
        );
        assert_eq!(
            ev_in(
                bson!({"$filter": {"input": "$a", "cond": {"$gt": ["$$this", 1]}, "limit": 2}}),
                d.clone()
            ),
            Some(bson!([2, 3]))
        );
        assert_eq!(
            ev_in(
                bson!({"$map": {"input": "$a", "in": {"$multiply": ["$$this", 2]}}}),
                d.clone()
            ),
            Some(bson!([2, 4, 6, 8]))
        );
        assert_eq!(
            ev(bson!({"$map": {"input": "$missing", "in": 1}})),
            Some(Bson::Null)
        );
        assert_eq!(err(bson!({"$map": {"input": 1, "in": 1}})).code, 16883);
        assert_eq!(
            ev_in(
                bson!({"$reduce": {"input": "$a", "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}),
                d.clone()
            ),
            Some(bson!(10))
        );
        assert_eq!(
            ev_in(bson!({"$indexOfArray": ["$a", 3]}), d.clone()),
            Some(bson!(2))
        );
        assert_eq!(
            ev_in(bson!({"$indexOfArray": ["$a", 1, 1]}), d.clone()),
            Some(bson!(-1))
        );
        assert_eq!(
            ev_in(bson!({"$reverseArray": "$a"}), d.clone()),
            Some(bson!([4, 3, 2, 1]))
        );
        assert_eq!(ev(bson!({"$range": [0, 10, 3]})), Some(bson!([0, 3, 6, 9])));
        assert_eq!(ev(bson!({"$range": [5, 0, -2]})), Some(bson!([5, 3, 1])));
        assert_eq!(err(bson!({"$range": [0, 5, 0]})).code, 34449);
        assert_eq!(
            ev(bson!({"$arrayToObject": [[["a", 1], ["b", 2]]]})),
            Some(bson!({"a": 1, "b": 2}))
        );
        assert_eq!(
            ev(bson!({"$arrayToObject": [[{"k": "a", "v": 1}]]})),
            Some(bson!({"a": 1}))
        );
        assert_eq!(
            ev(bson!({"$objectToArray": {"a": 1}})),
            Some(bson!([{"k": "a", "v": 1}]))
        );
        assert_eq!(
            ev(bson!({"$zip": {"inputs": [[1, 2], ["a"]]}})),
            Some(bson!([[1, "a"]]))
        );
        assert_eq!(
            ev(
                bson!({"$zip": {"inputs": [[1, 2], ["a"]], "useLongestLength": true, "defaults": [0, "z"]}})
            ),
            Some(bson!([[1, "a"], [2, "z"]]))
        );
        assert_eq!(
            ev(bson!({"$setUnion": [[1, 2], [2, 3]]})),
            Some(bson!([1, 2, 3]))
        );
        assert_eq!(
            ev(bson!({"$setIsSubset": [[1], [1, 2]]})),
            Some(bson!(true))
        );
    }

    #[test]
    fn expression_accumulators() {
        let d = doc! {"a": [1, 2i64, 3.5, "x", null]};
        // One array argument: over its elements; non-numbers are ignored.
        assert_eq!(
            ev_in(bson!({"$sum": "$a"}), d.clone()),
            Some(Bson::Double(6.5))
        );
        assert_eq!(
            ev_in(bson!({"$avg": "$a"}), d.clone()),
            Some(Bson::Double(6.5 / 3.0))
        );
        assert_eq!(ev_in(bson!({"$max": "$a"}), d.clone()), Some(bson!("x")));
        assert_eq!(ev_in(bson!({"$min": "$a"}), d.clone()), Some(bson!(1)));
        assert_eq!(ev(bson!({"$sum": [1, 2, 3]})), Some(Bson::Int32(6)));
        assert_eq!(ev(bson!({"$sum": "$missing"})), Some(Bson::Int32(0)));
        assert_eq!(ev(bson!({"$avg": "$missing"})), Some(Bson::Null));
        assert_eq!(ev(bson!({"$max": [null, "$missing"]})), Some(Bson::Null));
    }

    #[test]
    fn objects() {
        let d = doc! {"a": {"b": 1, "c": 2}, "price.usd": 5};
        assert_eq!(
            ev_in(bson!({"$getField": "price.usd"}), d.clone()),
            Some(bson!(5))
        );
        assert_eq!(
            ev_in(
                bson!({"$getField": {"field": "b", "input": "$a"}}),
                d.clone()
            ),
            Some(bson!(1))
        );
        assert_eq!(
            ev_in(
                bson!({"$getField": {"field": "z", "input": "$a"}}),
                d.clone()
            ),
            None
        );
        assert_eq!(
            ev_in(
                bson!({"$setField": {"field": "d", "input": "$a", "value": 3}}),
                d.clone()
            ),
            Some(bson!({"b": 1, "c": 2, "d": 3}))
        );
        assert_eq!(
            ev_in(
                bson!({"$setField": {"field": "b", "input": "$a", "value": "$$REMOVE"}}),
                d.clone()
            ),
            Some(bson!({"c": 2}))
        );
        assert_eq!(
            ev_in(
                bson!({"$unsetField": {"field": "c", "input": "$a"}}),
                d.clone()
            ),
            Some(bson!({"b": 1}))
        );
        assert_eq!(
            ev_in(
                bson!({"$mergeObjects": ["$a", {"c": 3, "e": 4}, null]}),
                d.clone()
            ),
            Some(bson!({"b": 1, "c": 3, "e": 4}))
        );
        assert_eq!(err(bson!({"$mergeObjects": [1]})).code, 40400);
    }

    #[test]
    fn dates() {
        // 2020-02-29T13:14:15.678Z, a Saturday.
        let dt = bson::DateTime::parse_rfc3339_str("2020-02-29T13:14:15.678Z").unwrap();
        let d = doc! {"d": dt};
        let get = |op: &str| ev_in(bson!({op: "$d"}), d.clone());
        assert_eq!(get("$year"), Some(bson!(2020)));
        assert_eq!(get("$month"), Some(bson!(2)));
        assert_eq!(get("$dayOfMonth"), Some(bson!(29)));
        assert_eq!(get("$hour"), Some(bson!(13)));
        assert_eq!(get("$minute"), Some(bson!(14)));
        assert_eq!(get("$second"), Some(bson!(15)));
        assert_eq!(get("$millisecond"), Some(bson!(678)));
        assert_eq!(get("$dayOfWeek"), Some(bson!(7)));
        assert_eq!(get("$dayOfYear"), Some(bson!(60)));
        assert_eq!(ev(bson!({"$year": "$missing"})), Some(Bson::Null));
        assert_eq!(err(bson!({"$year": "2020"})).code, 16006);
        assert_eq!(
            ev_in(
                bson!({"$year": {"date": "$d", "timezone": "UTC"}}),
                d.clone()
            ),
            Some(bson!(2020))
        );
        assert_eq!(
            ev_in(bson!({"$dateToString": {"date": "$d"}}), d.clone()),
            Some(bson!("2020-02-29T13:14:15.678Z"))
        );
        assert_eq!(
            ev_in(
                bson!({"$dateToString": {"date": "$d", "format": "%Y/%m/%d %j %%"}}),
                d.clone()
            ),
            Some(bson!("2020/02/29 060 %"))
        );
        assert_eq!(
            ev(bson!({"$dateToString": {"date": "$missing", "onNull": "none"}})),
            Some(bson!("none"))
        );
        // Before the epoch.
        let old = bson::DateTime::from_millis(-1);
        assert_eq!(
            ev(bson!({"$toString": old})),
            Some(bson!("1969-12-31T23:59:59.999Z"))
        );
    }

    #[test]
    fn more_operators() {
        let d = doc! {"a": [3, 1, null, 2], "t": bson::Timestamp { time: 5, increment: 7 }};
        assert_eq!(
            ev_in(bson!({"$firstN": {"input": "$a", "n": 2}}), d.clone()),
            Some(bson!([3, 1]))
        );
        assert_eq!(
            ev_in(bson!({"$lastN": {"input": "$a", "n": 2}}), d.clone()),
            Some(bson!([null, 2]))
        );
        assert_eq!(
            ev_in(bson!({"$maxN": {"input": "$a", "n": 2}}), d.clone()),
            Some(bson!([3, 2]))
        );
        assert_eq!(
            ev_in(bson!({"$minN": {"input": "$a", "n": 9}}), d.clone()),
            Some(bson!([1, 2, 3]))
        );
        assert_eq!(
            ev_in(
                bson!({"$sortArray": {"input": "$a", "sortBy": -1}}),
                d.clone()
            ),
            Some(bson!([3, 2, 1, null]))
        );
        assert_eq!(
            ev(bson!({"$sortArray": {"input": [{"x": 2}, {"x": 1}], "sortBy": {"x": 1}}})),
            Some(bson!([{"x": 1}, {"x": 2}]))
        );
        assert_eq!(
            ev_in(bson!({"$tsSecond": "$t"}), d.clone()),
            Some(Bson::Int64(5))
        );
        assert_eq!(
            ev_in(bson!({"$tsIncrement": "$t"}), d.clone()),
            Some(Bson::Int64(7))
        );
        // {a: 1} is 12 bytes: length, one int32 element, terminator.
        assert_eq!(
            ev(bson!({"$bsonSize": {"$literal": {"a": 1}}})),
            Some(bson!(12))
        );
        assert_eq!(ev(bson!({"$bsonSize": "$missing"})), Some(Bson::Null));
        assert_eq!(ev(bson!({"$binarySize": "héllo"})), Some(bson!(6)));
        assert_eq!(
            ev(bson!({"$replaceOne": {"input": "a.b.c", "find": ".", "replacement": "-"}})),
            Some(bson!("a-b.c"))
        );
        assert_eq!(
            ev(bson!({"$replaceAll": {"input": "a.b.c", "find": ".", "replacement": "-"}})),
            Some(bson!("a-b-c"))
        );
        assert_eq!(
            ev(bson!({"$replaceAll": {"input": null, "find": ".", "replacement": "-"}})),
            Some(Bson::Null)
        );
        let jan31 = bson::DateTime::parse_rfc3339_str("2021-01-31T10:00:00Z").unwrap();
        assert_eq!(
            ev(bson!({"$dateAdd": {"startDate": jan31, "unit": "month", "amount": 1}})),
            Some(Bson::DateTime(
                bson::DateTime::parse_rfc3339_str("2021-02-28T10:00:00Z").unwrap()
            ))
        );
        assert_eq!(
            ev(bson!({"$dateSubtract": {"startDate": jan31, "unit": "hour", "amount": 10}})),
            Some(Bson::DateTime(
                bson::DateTime::parse_rfc3339_str("2021-01-31T00:00:00Z").unwrap()
            ))
        );
        assert_eq!(
            ev(bson!({"$dateFromParts": {"year": 2020, "month": 13, "day": 1}})),
            Some(Bson::DateTime(
                bson::DateTime::parse_rfc3339_str("2021-01-01T00:00:00Z").unwrap()
            ))
        );
        assert_eq!(
            ev(bson!({"$dateFromString": {"dateString": "2021-01-31T10:00:00Z"}})),
            Some(Bson::DateTime(jan31))
        );
        assert_eq!(
            ev(bson!({"$dateFromString": {"dateString": "garbage", "onError": "bad"}})),
            Some(bson!("bad"))
        );
    }

    #[test]
    fn rand_is_in_unit_interval() {
        for _ in 0..20 {
            let Some(Bson::Double(x)) = ev(bson!({"$rand": {}})) else {
                panic!("not a double");
            };
            assert!((0.0..1.0).contains(&x));
        }
    }
}
