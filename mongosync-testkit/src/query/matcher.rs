//! Query filters (`find`, `update`, `delete`, `$match`): parsing with the server's errors,
//! and matching.
// `CommandError` is the crate-wide error type; its size is a crate design decision.
#![allow(clippy::result_large_err)]

use std::cmp::Ordering;
use std::ops::Bound;

use bson::{Bson, Document};

use crate::error::{CommandError, Result, codes};
use crate::query::compare::{compare, is_number, type_rank};
use crate::query::path::{LeafArrays, traverse};

/// 51091: an invalid regular expression.
const REGEX_INVALID: i32 = 51091;
/// 51108: an invalid regex flag.
const REGEX_BAD_FLAG: i32 = 51108;

/// A parsed query filter.
#[derive(Debug, Clone)]
pub struct Matcher {
    root: Node,
    vars: Document,
}

/// The outcome of matching one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchDetails {
    /// Whether the document matched.
    pub matched: bool,
    /// For the positional update operator `$`: the index of the first array element that
    /// made the match, if an array was traversed.
    pub array_index: Option<usize>,
}

/// A node of the parsed filter tree.
#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Nor(Vec<Node>),
    /// A predicate on the values a path reaches.
    Path {
        path: String,
        pred: Pred,
    },
    /// `$expr`.
    Expr(Bson),
    /// `$alwaysTrue` / `$alwaysFalse`.
    Const(bool),
    /// `$jsonSchema`.
    Schema(Box<Schema>),
}

/// A predicate on one value (`None` = missing).
#[derive(Debug, Clone)]
enum Pred {
    Cmp(CmpOp, Bson),
    In {
        values: Vec<Bson>,
        regexes: Vec<Re>,
        has_null: bool,
    },
    Regex(Re),
    Exists,
    Type(Vec<TypeSel>),
    Size(i64),
    Mod(i64, i64),
    Bits(BitsOp, u64, Vec<u32>),
    ElemMatchValue(Vec<Pred>),
    ElemMatchObject(Box<Node>),
    /// The negation of the conjunction (`$not`, `$ne`, `$nin`, `$exists: false`).
    Not(Vec<Pred>),
    Const(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitsOp {
    AllSet,
    AllClear,
    AnySet,
    AnyClear,
}

/// A `$type` selector: a BSON type code or all numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeSel {
    Code(i32),
    Number,
}

/// A compiled query regex, with its source for regex-value equality.
#[derive(Debug, Clone)]
pub(crate) struct Re {
    pattern: String,
    options: String,
    re: regex::Regex,
}

impl Re {
    /// Compiles a PCRE-style pattern with MongoDB's options (`i`, `m`, `s`, `x`, `u`).
    pub(crate) fn new(pattern: &str, options: &str) -> Result<Re> {
        let mut flags = String::new();
        for c in options.chars() {
            match c {
                'i' | 'm' | 's' | 'x' => {
                    if !flags.contains(c) {
                        flags.push(c);
                    }
                }
                // PCRE's UTF mode: the `regex` crate is always Unicode-aware.
                'u' => {}
                _ => {
                    return Err(CommandError::new(
                        REGEX_BAD_FLAG,
                        format!("invalid flag in regex options: {c}"),
                    ));
                }
            }
        }
        if pattern.contains('\0') {
            return Err(CommandError::bad_value(
                "Regular expression cannot contain an embedded null byte",
            ));
        }
        let translated = translate_pcre(pattern, flags.contains('m'));
        let source = if flags.is_empty() {
            translated
        } else {
            format!("(?{flags}){translated}")
        };
        let re = regex::Regex::new(&source).map_err(|e| {
            CommandError::new(REGEX_INVALID, format!("Regular expression is invalid: {e}"))
        })?;
        Ok(Re {
            pattern: pattern.to_string(),
            options: options.to_string(),
            re,
        })
    }

    /// Whether the regex matches a value: strings and symbols by pattern, regex values by
    /// identical pattern and options (as the server does).
    fn matches_value(&self, v: &Bson) -> bool {
        match v {
            Bson::String(s) | Bson::Symbol(s) => self.re.is_match(s),
            Bson::RegularExpression(r) => {
                r.pattern.as_str() == self.pattern && r.options.as_str() == self.options
            }
            _ => false,
        }
    }

    /// Whether a string matches.
    pub(crate) fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

/// Translates the PCRE constructs whose meaning differs in the `regex` crate: without the `m`
/// flag PCRE's `$` (and `\Z`) also match before a final newline.
fn translate_pcre(pattern: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('Z') => out.push_str(r"(?:\n?\z)"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal in PCRE.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str(r"\]");
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class && !multiline => out.push_str(r"(?:\n?\z)"),
            _ => out.push(c),
        }
    }
    out
}

/// Where a filter is being parsed: `$expr` and `$where` only at the top level.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Top,
    ElemMatch,
}

impl Matcher {
    /// Parses a filter document; unknown operators and malformed arguments fail with the
    /// server's error codes (e.g. 2 BadValue "unknown operator: $foo").
    ///
    /// `vars` are the `let` variables visible to `$expr`.
    pub fn new(filter: &Document, vars: &Document) -> Result<Matcher> {
        Ok(Matcher {
            root: parse_filter(filter, Ctx::Top)?,
            vars: vars.clone(),
        })
    }

    /// Whether `doc` matches.
    pub fn matches(&self, doc: &Document) -> bool {
        self.match_details(doc).matched
    }

    /// Matches `doc`, also reporting the array position for the positional `$` operator.
    /// An error while evaluating `$expr` counts as no match; see [`Matcher::try_match_details`].
    pub fn match_details(&self, doc: &Document) -> MatchDetails {
        self.try_match_details(doc).unwrap_or_default()
    }

    /// Like [`Matcher::match_details`], but reports `$expr` evaluation errors (the server
    /// fails the operation with them).
    pub fn try_match_details(&self, doc: &Document) -> Result<MatchDetails> {
        let mut idx = None;
        let matched = self.root.matches(doc, &self.vars, &mut idx)?;
        Ok(MatchDetails {
            matched,
            array_index: if matched { idx } else { None },
        })
    }

    /// Whether `doc` matches, reporting `$expr` evaluation errors.
    pub fn try_matches(&self, doc: &Document) -> Result<bool> {
        Ok(self.try_match_details(doc)?.matched)
    }

    /// The `_id` equality value when the filter pins `_id` to one value (`{_id: v}` or
    /// `{_id: {$eq: v}}`, possibly inside an `$and` with other conditions), so callers can use
    /// the `_id` index instead of scanning.
    pub fn id_equality(&self) -> Option<&Bson> {
        let mut conj = Vec::new();
        self.root.conjuncts(&mut conj);
        conj.into_iter().find_map(|n| match n {
            Node::Path {
                path,
                pred: Pred::Cmp(CmpOp::Eq, v),
            } if path == "_id" => Some(v),
            _ => None,
        })
    }

    /// The `_id` range the filter restricts to (`$gt`/`$gte`/`$lt`/`$lte` on `_id`), as
    /// bounds, so callers can scan the `_id` index from the lower bound only. `None` if
    /// unrestricted. Bounds are inclusive/exclusive as written; the matcher still checks
    /// each document, so the range may be wider than exact.
    pub fn id_range(&self) -> Option<(std::ops::Bound<Bson>, std::ops::Bound<Bson>)> {
        let mut conj = Vec::new();
        self.root.conjuncts(&mut conj);
        let mut lower: Bound<Bson> = Bound::Unbounded;
        let mut upper: Bound<Bson> = Bound::Unbounded;
        let mut any = false;
        for n in conj {
            let Node::Path {
                path,
                pred: Pred::Cmp(op, v),
            } = n
            else {
                continue;
            };
            if path != "_id" {
                continue;
            }
            any = true;
            let (lo, hi) = match op {
                CmpOp::Eq => (Some(Bound::Included(v)), Some(Bound::Included(v))),
                CmpOp::Gt => (Some(Bound::Excluded(v)), None),
                CmpOp::Gte => (Some(Bound::Included(v)), None),
                CmpOp::Lt => (None, Some(Bound::Excluded(v))),
                CmpOp::Lte => (None, Some(Bound::Included(v))),
            };
            if let Some(lo) = lo {
                lower = tighter(lower, lo, Ordering::Greater);
            }
            if let Some(hi) = hi {
                upper = tighter(upper, hi, Ordering::Less);
            }
        }
        any.then_some((lower, upper))
    }

    /// The equality conditions of the filter (`{a: 1, "b.c": 2}`, `$eq`, inside `$and`) as a
    /// document, used to seed the document an upsert inserts.
    pub fn equality_fields(&self) -> Document {
        let mut conj = Vec::new();
        self.root.conjuncts(&mut conj);
        let mut out = Document::new();
        for n in conj {
            let Node::Path { path, pred } = n else {
                continue;
            };
            let v = match pred {
                Pred::Cmp(CmpOp::Eq, v) => v,
                // A one-element `$in` is an equality for the server's planner.
                Pred::In {
                    values, regexes, ..
                } if values.len() == 1 && regexes.is_empty() => &values[0],
                _ => continue,
            };
            if !out.contains_key(path) {
                out.insert(path.clone(), v.clone());
            }
        }
        out
    }
}

/// The tighter of two bounds (`want` = Greater keeps the larger lower bound).
fn tighter(cur: Bound<Bson>, new: Bound<&Bson>, want: Ordering) -> Bound<Bson> {
    let new = match new {
        Bound::Included(v) => Bound::Included(v.clone()),
        Bound::Excluded(v) => Bound::Excluded(v.clone()),
        Bound::Unbounded => Bound::Unbounded,
    };
    let (cv, nv) = match (&cur, &new) {
        (Bound::Unbounded, _) => return new,
        (_, Bound::Unbounded) => return cur,
        (Bound::Included(c) | Bound::Excluded(c), Bound::Included(n) | Bound::Excluded(n)) => {
            (c, n)
        }
    };
    match compare(nv, cv) {
        o if o == want => new,
        Ordering::Equal if matches!(new, Bound::Excluded(_)) => new,
        _ => cur,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

fn parse_filter(filter: &Document, ctx: Ctx) -> Result<Node> {
    let mut nodes = Vec::new();
    for (k, v) in filter {
        if let Some(op) = k.strip_prefix('$') {
            match op {
                "and" | "or" | "nor" => {
                    let children = parse_tree_list(k, v, ctx)?;
                    nodes.push(match op {
                        "and" => Node::And(children),
                        "or" => Node::Or(children),
                        _ => Node::Nor(children),
                    });
                }
                "expr" => {
                    if ctx != Ctx::Top {
                        return Err(CommandError::bad_value(
                            "$expr can only be applied to the top-level document",
                        ));
                    }
                    nodes.push(Node::Expr(v.clone()));
                }
                "where" => {
                    return Err(CommandError::bad_value(if ctx == Ctx::Top {
                        "$where is not supported: the testkit has no JavaScript engine"
                    } else {
                        "$where can only be applied to the top-level document"
                    }));
                }
                "comment" => {}
                "jsonSchema" => {
                    let Bson::Document(d) = v else {
                        return Err(CommandError::type_mismatch("$jsonSchema must be an object"));
                    };
                    nodes.push(Node::Schema(Box::new(Schema::parse(d)?)));
                }
                "alwaysTrue" | "alwaysFalse" => {
                    if !matches!(as_i64_exact(v), Some(1)) {
                        return Err(CommandError::failed_to_parse(format!(
                            "{k} must be an integer value of 1"
                        )));
                    }
                    nodes.push(Node::Const(op == "alwaysTrue"));
                }
                "text" => {
                    return Err(CommandError::new(
                        codes::INDEX_NOT_FOUND,
                        "text index required for $text query",
                    ));
                }
                _ => {
                    return Err(CommandError::bad_value(format!(
                        "unknown top level operator: {k}. If you have a field name that starts \
                         with a '$' symbol, consider using $getField or $setField."
                    )));
                }
            }
            continue;
        }
        parse_path(k, v, &mut nodes)?;
    }
    Ok(if nodes.len() == 1 {
        nodes.pop().unwrap_or(Node::And(Vec::new()))
    } else {
        Node::And(nodes)
    })
}

fn parse_tree_list(name: &str, v: &Bson, ctx: Ctx) -> Result<Vec<Node>> {
    let Bson::Array(items) = v else {
        return Err(CommandError::bad_value(format!("{name} must be an array")));
    };
    if items.is_empty() {
        return Err(CommandError::bad_value(
            "$and/$or/$nor must be a nonempty array",
        ));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => parse_filter(d, ctx),
            _ => Err(CommandError::bad_value(
                "$or/$and/$nor entries need to be full objects",
            )),
        })
        .collect()
}

/// Whether a document is an operator document (`{$gt: 1}`), not a value to compare to
/// (`{b: 1}`, a DBRef `{$ref, $id}`, `{}`).
fn is_operator_doc(d: &Document) -> bool {
    match d.keys().next() {
        Some(k) => k.starts_with('$') && k != "$ref",
        None => false,
    }
}

fn parse_path(path: &str, v: &Bson, nodes: &mut Vec<Node>) -> Result<()> {
    match v {
        Bson::Document(d) if is_operator_doc(d) => {
            for pred in parse_ops(path, d)? {
                nodes.push(Node::Path {
                    path: path.to_string(),
                    pred,
                });
            }
        }
        Bson::RegularExpression(r) => nodes.push(Node::Path {
            path: path.to_string(),
            pred: Pred::Regex(Re::new(r.pattern.as_str(), r.options.as_str())?),
        }),
        Bson::Undefined => return Err(CommandError::bad_value("cannot compare to undefined")),
        _ => nodes.push(Node::Path {
            path: path.to_string(),
            pred: Pred::Cmp(CmpOp::Eq, v.clone()),
        }),
    }
    Ok(())
}

/// Parses an operator document (`{$gt: 1, $lt: 5}`) into one predicate per operator.
fn parse_ops(path: &str, ops: &Document) -> Result<Vec<Pred>> {
    let mut preds = Vec::new();
    let regex_elem = ops.get("$regex");
    let options_elem = ops.get("$options");
    for (k, v) in ops {
        let pred = match k.as_str() {
            "$eq" => Pred::Cmp(CmpOp::Eq, comparand(v, path, false)?),
            "$ne" => Pred::Not(vec![Pred::Cmp(CmpOp::Eq, comparand(v, path, false)?)]),
            "$lt" => Pred::Cmp(CmpOp::Lt, comparand(v, path, true)?),
            "$lte" => Pred::Cmp(CmpOp::Lte, comparand(v, path, true)?),
            "$gt" => Pred::Cmp(CmpOp::Gt, comparand(v, path, true)?),
            "$gte" => Pred::Cmp(CmpOp::Gte, comparand(v, path, true)?),
            "$in" => parse_in(v, "$in")?,
            "$nin" => Pred::Not(vec![parse_in(v, "$nin")?]),
            "$exists" => {
                if truthy_value(v) {
                    Pred::Exists
                } else {
                    Pred::Not(vec![Pred::Exists])
                }
            }
            "$type" => Pred::Type(parse_type(v)?),
            "$size" => Pred::Size(parse_size(v)?),
            "$mod" => parse_mod(v)?,
            "$regex" => parse_regex(v, options_elem)?,
            "$options" => {
                if regex_elem.is_none() {
                    return Err(CommandError::bad_value("$options needs a $regex"));
                }
                continue;
            }
            "$not" => parse_not(path, v)?,
            "$elemMatch" => parse_elem_match(v)?,
            "$all" => {
                preds.extend(parse_all(v)?);
                continue;
            }
            "$bitsAllSet" => parse_bits(k, BitsOp::AllSet, v)?,
            "$bitsAllClear" => parse_bits(k, BitsOp::AllClear, v)?,
            "$bitsAnySet" => parse_bits(k, BitsOp::AnySet, v)?,
            "$bitsAnyClear" => parse_bits(k, BitsOp::AnyClear, v)?,
            "$comment" => continue,
            "$geoWithin" | "$geoIntersects" | "$near" | "$nearSphere" | "$within" => {
                return Err(CommandError::bad_value(format!(
                    "{k} is not supported by the testkit"
                )));
            }
            _ => {
                return Err(CommandError::bad_value(format!("unknown operator: {k}")));
            }
        };
        preds.push(pred);
    }
    Ok(preds)
}

/// The right-hand side of a comparison operator.
fn comparand(v: &Bson, path: &str, range: bool) -> Result<Bson> {
    match v {
        Bson::Undefined => Err(CommandError::bad_value("cannot compare to undefined")),
        Bson::RegularExpression(_) if range => Err(CommandError::bad_value(format!(
            "Can't have RegEx as arg to predicate over field '{path}'."
        ))),
        _ => Ok(v.clone()),
    }
}

fn parse_in(v: &Bson, name: &str) -> Result<Pred> {
    let Bson::Array(items) = v else {
        return Err(CommandError::bad_value(format!("{name} needs an array")));
    };
    let mut values = Vec::new();
    let mut regexes = Vec::new();
    let mut has_null = false;
    for item in items {
        match item {
            Bson::RegularExpression(r) => {
                regexes.push(Re::new(r.pattern.as_str(), r.options.as_str())?)
            }
            Bson::Undefined => {
                return Err(CommandError::bad_value(
                    "InMatchExpression equality cannot be undefined",
                ));
            }
            Bson::Document(d) if is_operator_doc(d) => {
                return Err(CommandError::bad_value("cannot nest $ under $in"));
            }
            Bson::Null => {
                has_null = true;
                values.push(Bson::Null);
            }
            _ => values.push(item.clone()),
        }
    }
    Ok(Pred::In {
        values,
        regexes,
        has_null,
    })
}

/// The server's `trueValue()`: false, zero, null and undefined are false.
fn truthy_value(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Int32(i) => *i != 0,
        Bson::Int64(i) => *i != 0,
        Bson::Double(d) => *d != 0.0,
        Bson::Decimal128(_) => compare(v, &Bson::Int32(0)) != Ordering::Equal,
        Bson::Null | Bson::Undefined => false,
        _ => true,
    }
}

/// A number as an exact i64 if it is integral and in range.
fn as_i64_exact(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(*i as i64),
        Bson::Int64(i) => Some(*i),
        Bson::Double(_) | Bson::Decimal128(_) => {
            let f = crate::query::compare::number_as_f64(v)?;
            if f.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
            {
                Some(f as i64)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The `$type` aliases (the server's `findBSONTypeAlias`, plus "number").
fn type_alias(name: &str) -> Option<TypeSel> {
    let code = match name {
        "double" => 1,
        "string" => 2,
        "object" => 3,
        "array" => 4,
        "binData" => 5,
        "undefined" => 6,
        "objectId" => 7,
        "bool" => 8,
        "date" => 9,
        "null" => 10,
        "regex" => 11,
        "dbPointer" => 12,
        "javascript" => 13,
        "symbol" => 14,
        "javascriptWithScope" => 15,
        "int" => 16,
        "timestamp" => 17,
        "long" => 18,
        "decimal" => 19,
        "minKey" => -1,
        "maxKey" => 127,
        "number" => return Some(TypeSel::Number),
        _ => return None,
    };
    Some(TypeSel::Code(code))
}

fn parse_type_one(v: &Bson) -> Result<TypeSel> {
    match v {
        Bson::String(s) => type_alias(s)
            .ok_or_else(|| CommandError::bad_value(format!("Unknown type name alias: {s}"))),
        _ if is_number(v) => {
            let code = as_i64_exact(v).ok_or_else(|| {
                CommandError::bad_value(format!(
                    "Invalid numerical type code: {}",
                    crate::query::compare::number_as_f64(v).unwrap_or(f64::NAN)
                ))
            })?;
            if code == -1 || code == 127 || (1..=19).contains(&code) {
                Ok(TypeSel::Code(code as i32))
            } else {
                Err(CommandError::bad_value(format!(
                    "Invalid numerical type code: {code}"
                )))
            }
        }
        _ => Err(CommandError::type_mismatch(
            "type must be represented as a number or a string",
        )),
    }
}

fn parse_type(v: &Bson) -> Result<Vec<TypeSel>> {
    match v {
        Bson::Array(items) => {
            if items.is_empty() {
                return Err(CommandError::failed_to_parse(
                    "$type must match at least one type",
                ));
            }
            items.iter().map(parse_type_one).collect()
        }
        _ => Ok(vec![parse_type_one(v)?]),
    }
}

/// The BSON type code of a value.
pub(crate) fn type_code(v: &Bson) -> i32 {
    match v {
        Bson::Double(_) => 1,
        Bson::String(_) => 2,
        Bson::Document(_) => 3,
        Bson::Array(_) => 4,
        Bson::Binary(_) => 5,
        Bson::Undefined => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Null => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::Symbol(_) => 14,
        Bson::JavaScriptCodeWithScope(_) => 15,
        Bson::Int32(_) => 16,
        Bson::Timestamp(_) => 17,
        Bson::Int64(_) => 18,
        Bson::Decimal128(_) => 19,
        Bson::MinKey => -1,
        Bson::MaxKey => 127,
    }
}

fn parse_size(v: &Bson) -> Result<i64> {
    if !is_number(v) {
        return Err(CommandError::bad_value("$size needs a number"));
    }
    let n =
        as_i64_exact(v).ok_or_else(|| CommandError::bad_value("$size must be a whole number"))?;
    if n < 0 {
        return Err(CommandError::bad_value("$size may not be negative"));
    }
    Ok(n)
}

fn parse_mod(v: &Bson) -> Result<Pred> {
    let Bson::Array(items) = v else {
        return Err(CommandError::bad_value(
            "malformed mod, needs to be an array",
        ));
    };
    if items.len() < 2 {
        return Err(CommandError::bad_value(
            "malformed mod, not enough elements",
        ));
    }
    if items.len() > 2 {
        return Err(CommandError::bad_value("malformed mod, too many elements"));
    }
    let num = |x: &Bson, what: &str| -> Result<i64> {
        if !is_number(x) {
            return Err(CommandError::bad_value(format!(
                "malformed mod, {what} not a number"
            )));
        }
        let f = crate::query::compare::number_as_f64(x).unwrap_or(f64::NAN);
        match x {
            Bson::Int32(i) => Ok(*i as i64),
            Bson::Int64(i) => Ok(*i),
            _ if f.is_finite() && f.abs() < 9.223_372_036_854_776e18 => Ok(f.trunc() as i64),
            _ => Err(CommandError::bad_value(format!(
                "malformed mod, {what} value is invalid :: caused by :: Out of bounds coercing to integral value"
            ))),
        }
    };
    let d = num(&items[0], "divisor")?;
    let r = num(&items[1], "remainder")?;
    if d == 0 {
        return Err(CommandError::bad_value("divisor cannot be 0"));
    }
    Ok(Pred::Mod(d, r))
}

fn parse_regex(v: &Bson, options: Option<&Bson>) -> Result<Pred> {
    let opts = match options {
        Some(Bson::String(s)) => Some(s.as_str()),
        Some(_) => return Err(CommandError::bad_value("$options has to be a string")),
        None => None,
    };
    match v {
        Bson::String(p) => Ok(Pred::Regex(Re::new(p, opts.unwrap_or(""))?)),
        Bson::RegularExpression(r) => {
            if opts.is_some_and(|o| !o.is_empty()) && !r.options.as_str().is_empty() {
                return Err(CommandError::bad_value(
                    "options set in both $regex and $options",
                ));
            }
            let o = if r.options.as_str().is_empty() {
                opts.unwrap_or("")
            } else {
                r.options.as_str()
            };
            Ok(Pred::Regex(Re::new(r.pattern.as_str(), o)?))
        }
        _ => Err(CommandError::bad_value("$regex has to be a string")),
    }
}

fn parse_not(path: &str, v: &Bson) -> Result<Pred> {
    match v {
        Bson::RegularExpression(r) => Ok(Pred::Not(vec![Pred::Regex(Re::new(
            r.pattern.as_str(),
            r.options.as_str(),
        )?)])),
        Bson::Document(d) => {
            if d.is_empty() {
                return Err(CommandError::bad_value("$not cannot be empty"));
            }
            Ok(Pred::Not(parse_ops(path, d)?))
        }
        _ => Err(CommandError::bad_value("$not needs a regex or a document")),
    }
}

/// Top-level operators that make an `$elemMatch` argument the object form.
fn is_pathless_operator(k: &str) -> bool {
    matches!(
        k,
        "$and"
            | "$or"
            | "$nor"
            | "$expr"
            | "$where"
            | "$comment"
            | "$jsonSchema"
            | "$alwaysTrue"
            | "$alwaysFalse"
            | "$text"
    )
}

fn parse_elem_match(v: &Bson) -> Result<Pred> {
    let Bson::Document(d) = v else {
        return Err(CommandError::bad_value("$elemMatch needs an Object"));
    };
    let value_form = match d.keys().next() {
        Some(k) => k.starts_with('$') && k != "$ref" && !is_pathless_operator(k),
        None => false,
    };
    if value_form {
        Ok(Pred::ElemMatchValue(parse_ops("", d)?))
    } else {
        Ok(Pred::ElemMatchObject(Box::new(parse_filter(
            d,
            Ctx::ElemMatch,
        )?)))
    }
}

fn parse_all(v: &Bson) -> Result<Vec<Pred>> {
    let Bson::Array(items) = v else {
        return Err(CommandError::bad_value("$all needs an array"));
    };
    if items.is_empty() {
        // `$all: []` matches nothing.
        return Ok(vec![Pred::Const(false)]);
    }
    let is_elem_match = |x: &Bson| matches!(x, Bson::Document(d) if d.keys().next().is_some_and(|k| k == "$elemMatch"));
    let mut preds = Vec::new();
    if is_elem_match(&items[0]) {
        for item in items {
            let Bson::Document(d) = item else {
                return Err(CommandError::bad_value(
                    "$all/$elemMatch has to be consistent",
                ));
            };
            if !is_elem_match(item) {
                return Err(CommandError::bad_value(
                    "$all/$elemMatch has to be consistent",
                ));
            }
            preds.push(parse_elem_match(
                d.get("$elemMatch").unwrap_or(&Bson::Null),
            )?);
        }
        return Ok(preds);
    }
    for item in items {
        match item {
            Bson::RegularExpression(r) => preds.push(Pred::Regex(Re::new(
                r.pattern.as_str(),
                r.options.as_str(),
            )?)),
            Bson::Document(d) if is_operator_doc(d) => {
                return Err(CommandError::bad_value("no $ expressions in $all"));
            }
            Bson::Undefined => {
                return Err(CommandError::bad_value("cannot compare to undefined"));
            }
            _ => preds.push(Pred::Cmp(CmpOp::Eq, item.clone())),
        }
    }
    Ok(preds)
}

fn parse_bits(name: &str, op: BitsOp, v: &Bson) -> Result<Pred> {
    let mut positions = Vec::new();
    match v {
        Bson::Array(items) => {
            for item in items {
                let p = as_i64_exact(item).ok_or_else(|| {
                    CommandError::bad_value(format!(
                        "bit positions must be an integer but got: {item}"
                    ))
                })?;
                if p < 0 {
                    return Err(CommandError::bad_value(format!(
                        "bit positions must be >= 0 but got: {p}"
                    )));
                }
                positions.push(p.min(u32::MAX as i64) as u32);
            }
        }
        Bson::Binary(b) => {
            for (byte_idx, byte) in b.bytes.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        positions.push((byte_idx * 8 + bit) as u32);
                    }
                }
            }
        }
        _ if is_number(v) => {
            let m = as_i64_exact(v).ok_or_else(|| {
                CommandError::bad_value(format!("{name} cannot represent as a 64-bit integer: {v}"))
            })?;
            if m < 0 {
                return Err(CommandError::bad_value(format!(
                    "{name} cannot take a negative number: {m}"
                )));
            }
            for bit in 0..64 {
                if m & (1i64 << bit) != 0 {
                    positions.push(bit);
                }
            }
        }
        _ => {
            return Err(CommandError::bad_value(format!(
                "{name} takes an Array, a number, or a BinData but received: {v}"
            )));
        }
    }
    let mut mask = 0u64;
    for p in &positions {
        // Bits past 63 test the sign bit: numbers are sign-extended.
        mask |= 1u64 << (*p).min(63);
    }
    Ok(Pred::Bits(op, mask, positions))
}

// ---------------------------------------------------------------------------------------------
// Matching

impl Node {
    /// The nodes that must all hold (the root and nested `$and`s).
    fn conjuncts<'a>(&'a self, out: &mut Vec<&'a Node>) {
        match self {
            Node::And(children) => {
                for c in children {
                    c.conjuncts(out);
                }
            }
            _ => out.push(self),
        }
    }

    fn matches(&self, doc: &Document, vars: &Document, idx: &mut Option<usize>) -> Result<bool> {
        match self {
            Node::And(children) => {
                for c in children {
                    if !c.matches(doc, vars, idx)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Or(children) => {
                for c in children {
                    let mut i = None;
                    if c.matches(doc, vars, &mut i)? {
                        if i.is_some() {
                            *idx = i;
                        }
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Node::Nor(children) => {
                for c in children {
                    if c.matches(doc, vars, &mut None)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Path { path, pred } => Ok(path_matches(doc, path, pred, vars, idx)),
            Node::Expr(e) => {
                let v = crate::query::expr::evaluate(e, doc, vars)?;
                Ok(crate::query::expr::truthy(v.as_ref()))
            }
            Node::Const(b) => Ok(*b),
            Node::Schema(s) => Ok(s.validate_doc(doc)),
        }
    }
}

/// Matches a predicate against every value `path` reaches in `doc`.
fn path_matches(
    doc: &Document,
    path: &str,
    pred: &Pred,
    vars: &Document,
    idx: &mut Option<usize>,
) -> bool {
    if let Pred::Not(inner) = pred {
        // The server negates the conjunction of the path predicates, each with traversal.
        return !inner
            .iter()
            .all(|p| path_matches(doc, path, p, vars, &mut None));
    }
    let leaf = match pred {
        Pred::Size(_) | Pred::ElemMatchValue(_) | Pred::ElemMatchObject(_) => {
            LeafArrays::NoTraversal
        }
        _ => LeafArrays::Traverse,
    };
    let mut found = None;
    let matched = traverse(doc, path, leaf, &mut |r| {
        let mut inner = None;
        if pred.matches_single(r.value, vars, &mut inner) {
            found = r.array_index.or(inner);
            true
        } else {
            false
        }
    });
    if matched && found.is_some() {
        *idx = found;
    }
    matched
}

impl Pred {
    /// Matches one value (`None` = missing); `idx` receives the element index `$elemMatch`
    /// matched on.
    fn matches_single(&self, v: Option<&Bson>, vars: &Document, idx: &mut Option<usize>) -> bool {
        match self {
            Pred::Cmp(op, rhs) => cmp_matches(*op, v, rhs),
            Pred::In {
                values,
                regexes,
                has_null,
            } => match v {
                None => *has_null,
                Some(x) => {
                    values.iter().any(|r| cmp_matches(CmpOp::Eq, Some(x), r))
                        || regexes.iter().any(|re| re.matches_value(x))
                }
            },
            Pred::Regex(re) => v.is_some_and(|x| re.matches_value(x)),
            Pred::Exists => v.is_some(),
            Pred::Type(sels) => v.is_some_and(|x| {
                sels.iter().any(|s| match s {
                    TypeSel::Number => is_number(x),
                    TypeSel::Code(c) => type_code(x) == *c,
                })
            }),
            Pred::Size(n) => matches!(v, Some(Bson::Array(a)) if a.len() as i64 == *n),
            Pred::Mod(d, r) => v.is_some_and(|x| mod_matches(x, *d, *r)),
            Pred::Bits(op, mask, positions) => {
                v.is_some_and(|x| bits_matches(*op, *mask, positions, x))
            }
            Pred::ElemMatchValue(preds) => {
                let Some(Bson::Array(arr)) = v else {
                    return false;
                };
                for (i, e) in arr.iter().enumerate() {
                    if preds
                        .iter()
                        .all(|p| p.matches_single(Some(e), vars, &mut None))
                    {
                        *idx = Some(i);
                        return true;
                    }
                }
                false
            }
            Pred::ElemMatchObject(node) => {
                let Some(Bson::Array(arr)) = v else {
                    return false;
                };
                for (i, e) in arr.iter().enumerate() {
                    let sub = match e {
                        Bson::Document(d) => d.clone(),
                        // Arrays are matched as objects keyed "0", "1", ...
                        Bson::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(k, x)| (k.to_string(), x.clone()))
                            .collect(),
                        _ => continue,
                    };
                    if node.matches(&sub, vars, &mut None).unwrap_or(false) {
                        *idx = Some(i);
                        return true;
                    }
                }
                false
            }
            Pred::Not(preds) => !preds.iter().all(|p| p.matches_single(v, vars, &mut None)),
            Pred::Const(b) => *b,
        }
    }
}

/// A comparison operator on one value, with the server's type bracketing.
fn cmp_matches(op: CmpOp, v: Option<&Bson>, rhs: &Bson) -> bool {
    let Some(x) = v else {
        // Missing compares like null for equality and the inclusive bounds.
        return match rhs {
            Bson::Null => matches!(op, CmpOp::Eq | CmpOp::Lte | CmpOp::Gte),
            Bson::MinKey => matches!(op, CmpOp::Gt | CmpOp::Gte),
            Bson::MaxKey => matches!(op, CmpOp::Lt | CmpOp::Lte),
            _ => false,
        };
    };
    if type_rank(x) != type_rank(rhs) {
        return match rhs {
            Bson::MinKey => matches!(op, CmpOp::Gt | CmpOp::Gte),
            Bson::MaxKey => matches!(op, CmpOp::Lt | CmpOp::Lte),
            _ => false,
        };
    }
    if op != CmpOp::Eq {
        // NaN equals NaN but is neither less nor greater than anything.
        let (xn, rn) = (is_nan(x), is_nan(rhs));
        if xn || rn {
            return matches!(op, CmpOp::Lte | CmpOp::Gte) && xn && rn;
        }
    }
    let o = compare(x, rhs);
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Lte => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Gte => o != Ordering::Less,
    }
}

fn is_nan(v: &Bson) -> bool {
    match v {
        Bson::Double(d) => d.is_nan(),
        Bson::Decimal128(d) => matches!(
            crate::query::compare::decode_decimal(d),
            crate::query::compare::Dec::NaN
        ),
        _ => false,
    }
}

fn mod_matches(x: &Bson, d: i64, r: i64) -> bool {
    let dividend = match x {
        Bson::Int32(i) => *i as i64,
        Bson::Int64(i) => *i,
        Bson::Double(_) | Bson::Decimal128(_) => {
            let f = crate::query::compare::number_as_f64(x).unwrap_or(f64::NAN);
            if !f.is_finite()
                || f.trunc() >= 9.223_372_036_854_776e18
                || f.trunc() < -9.223_372_036_854_776e18
            {
                return false;
            }
            f.trunc() as i64
        }
        _ => return false,
    };
    dividend.wrapping_rem(d) == r
}

fn bits_matches(op: BitsOp, mask: u64, positions: &[u32], x: &Bson) -> bool {
    let bit_set: Box<dyn Fn(u32) -> bool> = match x {
        Bson::Binary(b) => {
            let bytes = b.bytes.clone();
            Box::new(move |p: u32| {
                let byte = (p / 8) as usize;
                byte < bytes.len() && bytes[byte] & (1 << (p % 8)) != 0
            })
        }
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            let n = match x {
                Bson::Int32(i) => *i as i64,
                Bson::Int64(i) => *i,
                _ => match as_i64_exact(x) {
                    Some(n) => n,
                    None => return false,
                },
            };
            let n = n as u64;
            return match op {
                BitsOp::AllSet => n & mask == mask,
                BitsOp::AllClear => !n & mask == mask,
                BitsOp::AnySet => n & mask != 0,
                BitsOp::AnyClear => !n & mask != 0,
            };
        }
        _ => return false,
    };
    match op {
        BitsOp::AllSet => positions.iter().all(|p| bit_set(*p)),
        BitsOp::AllClear => positions.iter().all(|p| !bit_set(*p)),
        BitsOp::AnySet => positions.iter().any(|p| bit_set(*p)),
        BitsOp::AnyClear => positions.iter().any(|p| !bit_set(*p)),
    }
}

// ---------------------------------------------------------------------------------------------
// $jsonSchema (a subset: the keywords validators commonly use)

#[derive(Debug, Clone, Default)]
struct Schema {
    bson_types: Option<Vec<TypeSel>>,
    json_types: Option<Vec<String>>,
    required: Vec<String>,
    properties: Vec<(String, Schema)>,
    additional_properties: Option<bool>,
    minimum: Option<(Bson, bool)>,
    maximum: Option<(Bson, bool)>,
    min_length: Option<i64>,
    max_length: Option<i64>,
    pattern: Option<Re>,
    enum_values: Option<Vec<Bson>>,
    items: Option<Box<Schema>>,
    min_items: Option<i64>,
    max_items: Option<i64>,
    unique_items: bool,
    min_properties: Option<i64>,
    max_properties: Option<i64>,
    any_of: Vec<Schema>,
    all_of: Vec<Schema>,
    one_of: Vec<Schema>,
    not: Option<Box<Schema>>,
}

fn schema_err(msg: impl Into<String>) -> CommandError {
    CommandError::failed_to_parse(msg)
}

impl Schema {
    fn parse(d: &Document) -> Result<Schema> {
        let mut s = Schema::default();
        let non_neg = |k: &str, v: &Bson| -> Result<i64> {
            match as_i64_exact(v) {
                Some(n) if n >= 0 => Ok(n),
                _ => Err(schema_err(format!(
                    "$jsonSchema keyword '{k}' must be a representable nonnegative integer"
                ))),
            }
        };
        let sub_list = |k: &str, v: &Bson| -> Result<Vec<Schema>> {
            match v {
                Bson::Array(a) if !a.is_empty() => a
                    .iter()
                    .map(|x| match x {
                        Bson::Document(d) => Schema::parse(d),
                        _ => Err(schema_err(format!(
                            "$jsonSchema keyword '{k}' must be an array of objects"
                        ))),
                    })
                    .collect(),
                _ => Err(schema_err(format!(
                    "$jsonSchema keyword '{k}' must be a nonempty array"
                ))),
            }
        };
        for (k, v) in d {
            match k.as_str() {
                "bsonType" => {
                    let names: Vec<&Bson> = match v {
                        Bson::Array(a) => a.iter().collect(),
                        _ => vec![v],
                    };
                    let mut sels = Vec::new();
                    for n in names {
                        match n {
                            Bson::String(s) => sels.push(type_alias(s).ok_or_else(|| {
                                CommandError::bad_value(format!("Unknown type name alias: {s}"))
                            })?),
                            _ => {
                                return Err(CommandError::type_mismatch(
                                    "$jsonSchema keyword 'bsonType' must be either a string or an array of strings",
                                ));
                            }
                        }
                    }
                    s.bson_types = Some(sels);
                }
                "type" => {
                    let names: Vec<&Bson> = match v {
                        Bson::Array(a) => a.iter().collect(),
                        _ => vec![v],
                    };
                    let mut out = Vec::new();
                    for n in names {
                        match n {
                            Bson::String(t)
                                if matches!(
                                    t.as_str(),
                                    "object" | "array" | "number" | "boolean" | "string" | "null"
                                ) =>
                            {
                                out.push(t.clone())
                            }
                            Bson::String(t) if t == "integer" => {
                                return Err(schema_err(
                                    "$jsonSchema type 'integer' is not currently supported.",
                                ));
                            }
                            _ => {
                                return Err(CommandError::bad_value(format!(
                                    "Unknown type name alias: {n}"
                                )));
                            }
                        }
                    }
                    s.json_types = Some(out);
                }
                "required" => match v {
                    Bson::Array(a) if !a.is_empty() => {
                        for x in a {
                            match x {
                                Bson::String(f) => s.required.push(f.clone()),
                                _ => {
                                    return Err(schema_err(
                                        "$jsonSchema keyword 'required' must contain only strings",
                                    ));
                                }
                            }
                        }
                    }
                    _ => {
                        return Err(schema_err(
                            "$jsonSchema keyword 'required' must be a nonempty array",
                        ));
                    }
                },
                "properties" => {
                    let Bson::Document(props) = v else {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'properties' must be an object",
                        ));
                    };
                    for (name, sub) in props {
                        let Bson::Document(sd) = sub else {
                            return Err(CommandError::type_mismatch(format!(
                                "Nested schema for $jsonSchema property '{name}' must be an object"
                            )));
                        };
                        s.properties.push((name.clone(), Schema::parse(sd)?));
                    }
                }
                "additionalProperties" => match v {
                    Bson::Boolean(b) => s.additional_properties = Some(*b),
                    _ => {
                        return Err(schema_err(
                            "$jsonSchema keyword 'additionalProperties' is only supported as a boolean by the testkit",
                        ));
                    }
                },
                "minimum" | "maximum" => {
                    if !is_number(v) {
                        return Err(CommandError::type_mismatch(format!(
                            "$jsonSchema keyword '{k}' must be a number"
                        )));
                    }
                    let excl_key = if k == "minimum" {
                        "exclusiveMinimum"
                    } else {
                        "exclusiveMaximum"
                    };
                    let excl = matches!(d.get(excl_key), Some(Bson::Boolean(true)));
                    if k == "minimum" {
                        s.minimum = Some((v.clone(), excl));
                    } else {
                        s.maximum = Some((v.clone(), excl));
                    }
                }
                "exclusiveMinimum" | "exclusiveMaximum" => {
                    let base = if k == "exclusiveMinimum" {
                        "minimum"
                    } else {
                        "maximum"
                    };
                    if !matches!(v, Bson::Boolean(_)) {
                        return Err(CommandError::type_mismatch(format!(
                            "$jsonSchema keyword '{k}' must be a boolean"
                        )));
                    }
                    if !d.contains_key(base) {
                        return Err(schema_err(format!(
                            "$jsonSchema keyword '{base}' must be a present if {k} is present"
                        )));
                    }
                }
                "minLength" => s.min_length = Some(non_neg(k, v)?),
                "maxLength" => s.max_length = Some(non_neg(k, v)?),
                "minItems" => s.min_items = Some(non_neg(k, v)?),
                "maxItems" => s.max_items = Some(non_neg(k, v)?),
                "minProperties" => s.min_properties = Some(non_neg(k, v)?),
                "maxProperties" => s.max_properties = Some(non_neg(k, v)?),
                "uniqueItems" => s.unique_items = matches!(v, Bson::Boolean(true)),
                "pattern" => match v {
                    Bson::String(p) => s.pattern = Some(Re::new(p, "")?),
                    _ => {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'pattern' must be a string",
                        ));
                    }
                },
                "enum" => match v {
                    Bson::Array(a) if !a.is_empty() => s.enum_values = Some(a.clone()),
                    _ => {
                        return Err(schema_err(
                            "$jsonSchema keyword 'enum' cannot be an empty array",
                        ));
                    }
                },
                "items" => match v {
                    Bson::Document(sd) => s.items = Some(Box::new(Schema::parse(sd)?)),
                    _ => {
                        return Err(schema_err(
                            "$jsonSchema keyword 'items' is only supported as an object by the testkit",
                        ));
                    }
                },
                "anyOf" => s.any_of = sub_list(k, v)?,
                "allOf" => s.all_of = sub_list(k, v)?,
                "oneOf" => s.one_of = sub_list(k, v)?,
                "not" => match v {
                    Bson::Document(sd) => s.not = Some(Box::new(Schema::parse(sd)?)),
                    _ => {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'not' must be an object",
                        ));
                    }
                },
                "title" | "description" => {}
                _ => {
                    return Err(schema_err(format!("Unknown $jsonSchema keyword: {k}")));
                }
            }
        }
        Ok(s)
    }

    fn validate_doc(&self, doc: &Document) -> bool {
        self.validate(&Bson::Document(doc.clone()))
    }

    /// Validates a present value. Keywords that do not apply to the value's type pass, as in
    /// JSON Schema.
    fn validate(&self, v: &Bson) -> bool {
        if let Some(sels) = &self.bson_types
            && !sels.iter().any(|s| match s {
                TypeSel::Number => is_number(v),
                TypeSel::Code(c) => type_code(v) == *c,
            })
        {
            return false;
        }
        if let Some(types) = &self.json_types
            && !types.iter().any(|t| match t.as_str() {
                "object" => matches!(v, Bson::Document(_)),
                "array" => matches!(v, Bson::Array(_)),
                "number" => is_number(v),
                "boolean" => matches!(v, Bson::Boolean(_)),
                "string" => matches!(v, Bson::String(_)),
                "null" => matches!(v, Bson::Null),
                _ => false,
            })
        {
            return false;
        }
        if let Some(values) = &self.enum_values
            && !values
                .iter()
                .any(|e| crate::query::compare::values_equal(e, v) && type_rank(e) == type_rank(v))
        {
            return false;
        }
        if is_number(v) {
            if let Some((m, excl)) = &self.minimum {
                let o = compare(v, m);
                if o == Ordering::Less || (*excl && o == Ordering::Equal) || is_nan(v) {
                    return false;
                }
            }
            if let Some((m, excl)) = &self.maximum {
                let o = compare(v, m);
                if o == Ordering::Greater || (*excl && o == Ordering::Equal) || is_nan(v) {
                    return false;
                }
            }
        }
        if let Bson::String(s) = v {
            let len = s.chars().count() as i64;
            if self.min_length.is_some_and(|m| len < m) || self.max_length.is_some_and(|m| len > m)
            {
                return false;
            }
            if let Some(re) = &self.pattern
                && !re.is_match(s)
            {
                return false;
            }
        }
        if let Bson::Array(a) = v {
            let len = a.len() as i64;
            if self.min_items.is_some_and(|m| len < m) || self.max_items.is_some_and(|m| len > m) {
                return false;
            }
            if let Some(items) = &self.items
                && !a.iter().all(|x| items.validate(x))
            {
                return false;
            }
            if self.unique_items {
                for (i, x) in a.iter().enumerate() {
                    if a[..i]
                        .iter()
                        .any(|y| compare(x, y) == Ordering::Equal && type_rank(x) == type_rank(y))
                    {
                        return false;
                    }
                }
            }
        }
        if let Bson::Document(d) = v {
            if self.required.iter().any(|f| !d.contains_key(f)) {
                return false;
            }
            let n = d.len() as i64;
            if self.min_properties.is_some_and(|m| n < m)
                || self.max_properties.is_some_and(|m| n > m)
            {
                return false;
            }
            for (name, sub) in &self.properties {
                if let Some(x) = d.get(name)
                    && !sub.validate(x)
                {
                    return false;
                }
            }
            if self.additional_properties == Some(false)
                && d.keys()
                    .any(|k| !self.properties.iter().any(|(name, _)| name == k))
            {
                return false;
            }
        }
        if !self.all_of.iter().all(|s| s.validate(v)) {
            return false;
        }
        if !self.any_of.is_empty() && !self.any_of.iter().any(|s| s.validate(v)) {
            return false;
        }
        if !self.one_of.is_empty() && self.one_of.iter().filter(|s| s.validate(v)).count() != 1 {
            return false;
        }
        if let Some(n) = &self.not
            && n.validate(v)
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Decimal128, doc};
    use std::str::FromStr;

    fn m(filter: Document) -> Matcher {
        Matcher::new(&filter, &doc! {}).unwrap()
    }

    fn yes(filter: Document, d: Document) {
        assert!(m(filter.clone()).matches(&d), "{filter} should match {d}");
    }

    fn no(filter: Document, d: Document) {
        assert!(
            !m(filter.clone()).matches(&d),
            "{filter} should not match {d}"
        );
    }

    fn err(filter: Document) -> CommandError {
        Matcher::new(&filter, &doc! {}).expect_err("should fail")
    }

    fn dec(s: &str) -> Bson {
        Bson::Decimal128(Decimal128::from_str(s).unwrap())
    }

    #[test]
    fn equality_across_numeric_types_and_exact_documents() {
        yes(doc! {"a": 1}, doc! {"a": 1.0});
        yes(doc! {"a": 1i64}, doc! {"a": dec("1.00")});
        no(doc! {"a": 1}, doc! {"a": "1"});
        yes(doc! {"a": {"b": 1}}, doc! {"a": {"b": 1.0}});
        // Embedded document equality is exact: extra fields or a different order do not match.
        no(doc! {"a": {"b": 1}}, doc! {"a": {"b": 1, "c": 2}});
        no(doc! {"a": {"b": 1, "c": 2}}, doc! {"a": {"c": 2, "b": 1}});
        yes(doc! {"a.b": 1}, doc! {"a": {"b": 1, "c": 2}});
        yes(doc! {}, doc! {"x": 1});
    }

    #[test]
    fn null_matches_missing_but_not_undefined() {
        yes(doc! {"a": null}, doc! {"b": 1});
        yes(doc! {"a": null}, doc! {"a": null});
        no(doc! {"a": null}, doc! {"a": 0});
        // MongoDB 8.0: null equality no longer matches undefined.
        no(doc! {"a": null}, doc! {"a": Bson::Undefined});
        yes(doc! {"a.b": null}, doc! {"a": [{"b": 1}, {"c": 1}]});
        no(doc! {"a.b": null}, doc! {"a": [{"b": 1}]});
        // Scalars inside an array are not documents with a missing field.
        no(doc! {"a.b": null}, doc! {"a": [1, 2]});
        yes(doc! {"a.b": null}, doc! {"a": 5});
        no(doc! {"a": null}, doc! {"a": []});
        yes(doc! {"a": {"$gte": null}}, doc! {});
        no(doc! {"a": {"$gt": null}}, doc! {"a": null});
        yes(doc! {"a": {"$in": [null, 5]}}, doc! {"b": 1});
        no(doc! {"a": {"$ne": null}}, doc! {"b": 1});
        yes(doc! {"a": {"$ne": null}}, doc! {"a": 1});
    }

    #[test]
    fn comparisons_respect_type_brackets() {
        yes(doc! {"a": {"$gt": 1}}, doc! {"a": 2i64});
        no(doc! {"a": {"$gt": 1}}, doc! {"a": "2"});
        no(doc! {"a": {"$lt": "z"}}, doc! {"a": 1});
        yes(doc! {"a": {"$lt": "b"}}, doc! {"a": "a"});
        yes(doc! {"a": {"$gte": dec("1.5")}}, doc! {"a": 1.5});
        no(
            doc! {"a": {"$gt": 9007199254740992.0f64}},
            doc! {"a": 9007199254740992i64},
        );
        yes(
            doc! {"a": {"$gt": 9007199254740992.0f64}},
            doc! {"a": 9007199254740993i64},
        );
        // MinKey / MaxKey bounds cross brackets.
        yes(doc! {"a": {"$gt": Bson::MinKey}}, doc! {"a": "x"});
        yes(doc! {"a": {"$lt": Bson::MaxKey}}, doc! {"a": {"x": 1}});
        no(doc! {"a": {"$lt": Bson::MinKey}}, doc! {"a": 1});
        yes(doc! {"a": {"$gt": 1, "$lt": 5}}, doc! {"a": 3});
        no(doc! {"a": {"$gt": 1, "$lt": 5}}, doc! {"a": 7});
        // Dates compare only with dates.
        let t = bson::DateTime::from_millis(1000);
        yes(
            doc! {"a": {"$gt": bson::DateTime::from_millis(0)}},
            doc! {"a": t},
        );
        no(doc! {"a": {"$gt": 0}}, doc! {"a": t});
    }

    #[test]
    fn nan_semantics() {
        yes(doc! {"a": f64::NAN}, doc! {"a": f64::NAN});
        yes(doc! {"a": {"$gte": f64::NAN}}, doc! {"a": dec("NaN")});
        no(doc! {"a": {"$lt": 0}}, doc! {"a": f64::NAN});
        no(doc! {"a": {"$gt": f64::NAN}}, doc! {"a": 1});
    }

    #[test]
    fn arrays_match_elements_or_whole() {
        yes(doc! {"a": 2}, doc! {"a": [1, 2, 3]});
        yes(doc! {"a": [1, 2]}, doc! {"a": [1, 2]});
        yes(doc! {"a": [1, 2]}, doc! {"a": [[1, 2], 3]});
        no(doc! {"a": [1, 2]}, doc! {"a": [2, 1]});
        no(doc! {"a": 1}, doc! {"a": [[1]]});
        // Range conditions are satisfied by any element, independently.
        yes(doc! {"a": {"$gt": 1, "$lt": 5}}, doc! {"a": [0, 10]});
        no(
            doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}},
            doc! {"a": [0, 10]},
        );
        yes(
            doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}},
            doc! {"a": [0, 3]},
        );
        yes(doc! {"a.b": 2}, doc! {"a": [{"b": 1}, {"b": [2]}]});
        yes(doc! {"a.1": 5}, doc! {"a": [4, 5]});
        yes(doc! {"a.1.b": 5}, doc! {"a": [4, {"b": 5}]});
        yes(doc! {"a.0": 1}, doc! {"a": [{"0": 1}]});
        no(doc! {"a": {"$gt": [3]}}, doc! {"a": [1, 2]});
        // The whole array compares too: [1, 2] < [3].
        yes(doc! {"a": {"$lt": [3]}}, doc! {"a": [1, 2]});
    }

    #[test]
    fn ne_and_nin_negate_the_array_aware_equality() {
        no(doc! {"a": {"$ne": 1}}, doc! {"a": [1, 2]});
        yes(doc! {"a": {"$ne": 3}}, doc! {"a": [1, 2]});
        yes(doc! {"a": {"$ne": 1}}, doc! {});
        no(doc! {"a": {"$nin": [2, 9]}}, doc! {"a": [1, 2]});
        yes(doc! {"a": {"$nin": [8, 9]}}, doc! {"a": [1, 2]});
        no(doc! {"a": {"$nin": [null]}}, doc! {});
    }

    #[test]
    fn in_with_values_and_regexes() {
        yes(doc! {"a": {"$in": [1, "x"]}}, doc! {"a": "x"});
        yes(
            doc! {"a": {"$in": [Bson::RegularExpression(bson::Regex {pattern: "^ab".try_into().unwrap(), options: "".try_into().unwrap()})]}},
            doc! {"a": ["zz", "abc"]},
        );
        no(doc! {"a": {"$in": []}}, doc! {"a": 1});
        yes(doc! {"a": {"$in": [[1, 2]]}}, doc! {"a": [1, 2]});
        assert_eq!(err(doc! {"a": {"$in": 5}}).message, "$in needs an array");
        assert_eq!(err(doc! {"a": {"$nin": 5}}).message, "$nin needs an array");
        assert_eq!(err(doc! {"a": {"$in": [{"$gt": 1}]}}).code, 2);
    }

    #[test]
    fn logical_operators() {
        yes(doc! {"$or": [{"a": 1}, {"b": 2}]}, doc! {"b": 2});
        no(doc! {"$and": [{"a": 1}, {"b": 2}]}, doc! {"b": 2});
        yes(doc! {"$nor": [{"a": 1}, {"b": 2}]}, doc! {"b": 3});
        yes(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": 3});
        yes(doc! {"a": {"$not": {"$gt": 5}}}, doc! {});
        yes(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": "x"});
        no(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": [1, 7]});
        let e = err(doc! {"$or": []});
        assert_eq!(
            (e.code, e.message.as_str()),
            (2, "$and/$or/$nor must be a nonempty array")
        );
        assert_eq!(err(doc! {"$and": 1}).message, "$and must be an array");
        assert_eq!(err(doc! {"$or": [1]}).code, 2);
        assert_eq!(
            err(doc! {"a": {"$not": 5}}).message,
            "$not needs a regex or a document"
        );
    }

    #[test]
    fn unknown_operators() {
        let e = err(doc! {"$foo": 1});
        assert_eq!(e.code, 2);
        assert!(e.message.starts_with("unknown top level operator: $foo"));
        let e = err(doc! {"a": {"$foo": 1}});
        assert_eq!((e.code, e.message.as_str()), (2, "unknown operator: $foo"));
        assert_eq!(
            err(doc! {"a": {"$gt": 1, "b": 1}}).message,
            "unknown operator: b"
        );
        assert_eq!(
            err(doc! {"a": Bson::Undefined}).message,
            "cannot compare to undefined"
        );
        assert!(err(doc! {"$where": "true"}).code == 2);
        // $comment is ignored.
        yes(doc! {"a": 1, "$comment": "hi"}, doc! {"a": 1});
        // A DBRef-shaped document is a value, not an operator document.
        yes(
            doc! {"a": {"$ref": "c", "$id": 1}},
            doc! {"a": {"$ref": "c", "$id": 1}},
        );
    }

    #[test]
    fn exists_and_type() {
        yes(doc! {"a": {"$exists": true}}, doc! {"a": null});
        no(doc! {"a": {"$exists": true}}, doc! {});
        yes(doc! {"a": {"$exists": false}}, doc! {});
        yes(doc! {"a": {"$exists": 0}}, doc! {});
        yes(doc! {"a.b": {"$exists": false}}, doc! {"a": [1]});
        yes(doc! {"a": {"$exists": true}}, doc! {"a": []});
        yes(doc! {"a": {"$type": "string"}}, doc! {"a": ["x", 1]});
        yes(doc! {"a": {"$type": "array"}}, doc! {"a": []});
        yes(doc! {"a": {"$type": "number"}}, doc! {"a": dec("1")});
        yes(doc! {"a": {"$type": ["int", "long"]}}, doc! {"a": 5i64});
        no(doc! {"a": {"$type": "int"}}, doc! {"a": 5.0});
        yes(doc! {"a": {"$type": 2}}, doc! {"a": "s"});
        yes(doc! {"a": {"$type": 1.0}}, doc! {"a": 1.5});
        yes(doc! {"a": {"$type": "null"}}, doc! {"a": null});
        no(doc! {"a": {"$type": "null"}}, doc! {});
        yes(doc! {"a": {"$type": "minKey"}}, doc! {"a": Bson::MinKey});
        yes(doc! {"a": {"$type": "object"}}, doc! {"a": {}});
        assert_eq!(
            err(doc! {"a": {"$type": "missing"}}).message,
            "Unknown type name alias: missing"
        );
        assert_eq!(err(doc! {"a": {"$type": 99}}).code, 2);
        assert_eq!(err(doc! {"a": {"$type": {}}}).code, 14);
    }

    #[test]
    fn regex_matching_and_options() {
        yes(
            doc! {"a": {"$regex": "^Ab", "$options": "i"}},
            doc! {"a": "abc"},
        );
        no(doc! {"a": {"$regex": "^Ab"}}, doc! {"a": "abc"});
        yes(
            doc! {"a": {"$options": "i", "$regex": "B"}},
            doc! {"a": "abc"},
        );
        yes(
            doc! {"a": {"$regex": "^b", "$options": "m"}},
            doc! {"a": "a\nb"},
        );
        no(doc! {"a": {"$regex": "^b"}}, doc! {"a": "a\nb"});
        yes(
            doc! {"a": {"$regex": "a.b", "$options": "s"}},
            doc! {"a": "a\nb"},
        );
        yes(
            doc! {"a": {"$regex": "a b # comment", "$options": "x"}},
            doc! {"a": "ab"},
        );
        // PCRE's `$` also matches before a final newline.
        yes(doc! {"a": {"$regex": "c$"}}, doc! {"a": "abc\n"});
        yes(doc! {"a": {"$regex": "b"}}, doc! {"a": ["x", "abc"]});
        no(doc! {"a": {"$regex": "1"}}, doc! {"a": 1});
        let re = Bson::RegularExpression(bson::Regex {
            pattern: "^a".try_into().unwrap(),
            options: "".try_into().unwrap(),
        });
        yes(doc! {"a": re.clone()}, doc! {"a": "abc"});
        // A regex value as the target of $eq is an equality on regex values.
        no(doc! {"a": {"$eq": re.clone()}}, doc! {"a": "abc"});
        yes(doc! {"a": {"$eq": re.clone()}}, doc! {"a": re.clone()});
        yes(doc! {"a": re.clone()}, doc! {"a": re.clone()});
        yes(doc! {"a": {"$not": re.clone()}}, doc! {"a": "xyz"});
        assert_eq!(
            err(doc! {"a": {"$regex": "a", "$options": "z"}}).code,
            51108
        );
        assert_eq!(err(doc! {"a": {"$regex": "(a"}}).code, 51091);
        assert_eq!(
            err(doc! {"a": {"$options": "i"}}).message,
            "$options needs a $regex"
        );
        assert_eq!(
            err(doc! {"a": {"$regex": 5}}).message,
            "$regex has to be a string"
        );
        assert_eq!(err(doc! {"a": {"$gt": re}}).code, 2);
    }

    #[test]
    fn elem_match_both_forms() {
        let d = doc! {"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]};
        yes(doc! {"a": {"$elemMatch": {"b": 2, "c": 1}}}, d.clone());
        no(doc! {"a": {"$elemMatch": {"b": 1, "c": 1}}}, d.clone());
        // Without $elemMatch, conditions may be met by different elements.
        yes(doc! {"a.b": 1, "a.c": 1}, d.clone());
        yes(
            doc! {"a": {"$elemMatch": {"$or": [{"b": 9}, {"c": 1}]}}},
            d.clone(),
        );
        no(doc! {"a": {"$elemMatch": {"b": 1}}}, doc! {"a": {"b": 1}});
        yes(doc! {"a": {"$elemMatch": {"$eq": 3}}}, doc! {"a": [1, 3]});
        no(doc! {"a": {"$elemMatch": {"$ne": 1}}}, doc! {"a": [1, 1]});
        yes(doc! {"a": {"$elemMatch": {"$ne": 1}}}, doc! {"a": [1, 2]});
        assert_eq!(
            err(doc! {"a": {"$elemMatch": 1}}).message,
            "$elemMatch needs an Object"
        );
        assert_eq!(
            err(doc! {"a": {"$elemMatch": {"$expr": {"$eq": [1, 1]}}}}).code,
            2
        );
    }

    #[test]
    fn size_all_mod() {
        yes(doc! {"a": {"$size": 2}}, doc! {"a": [1, [2, 3]]});
        no(doc! {"a": {"$size": 2}}, doc! {"a": [[1, 2]]});
        yes(doc! {"a": {"$size": 0}}, doc! {"a": []});
        no(doc! {"a": {"$size": 0}}, doc! {});
        yes(doc! {"a": {"$size": 2.0}}, doc! {"a": [1, 2]});
        assert_eq!(
            err(doc! {"a": {"$size": "2"}}).message,
            "$size needs a number"
        );
        assert_eq!(err(doc! {"a": {"$size": -1}}).code, 2);
        yes(doc! {"a": {"$all": [1, 3]}}, doc! {"a": [3, 2, 1]});
        no(doc! {"a": {"$all": [1, 4]}}, doc! {"a": [3, 2, 1]});
        yes(doc! {"a": {"$all": [1]}}, doc! {"a": 1});
        no(doc! {"a": {"$all": []}}, doc! {"a": [1]});
        yes(
            doc! {"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"b": 2}}]}},
            doc! {"a": [{"b": 1}, {"b": 2}]},
        );
        assert_eq!(err(doc! {"a": {"$all": 1}}).message, "$all needs an array");
        yes(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 5});
        yes(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 5.9});
        yes(doc! {"a": {"$mod": [4, -1]}}, doc! {"a": -5});
        no(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": "5"});
        assert_eq!(
            err(doc! {"a": {"$mod": [0, 1]}}).message,
            "divisor cannot be 0"
        );
        assert_eq!(
            err(doc! {"a": {"$mod": [1]}}).message,
            "malformed mod, not enough elements"
        );
        assert_eq!(
            err(doc! {"a": {"$mod": 1}}).message,
            "malformed mod, needs to be an array"
        );
    }

    #[test]
    fn bit_operators() {
        yes(doc! {"a": {"$bitsAllSet": [0, 2]}}, doc! {"a": 5});
        no(doc! {"a": {"$bitsAllSet": 6}}, doc! {"a": 5});
        yes(doc! {"a": {"$bitsAnySet": 6}}, doc! {"a": 5});
        yes(doc! {"a": {"$bitsAllClear": [1]}}, doc! {"a": 5});
        yes(doc! {"a": {"$bitsAnyClear": [1, 0]}}, doc! {"a": 5});
        // Negative numbers are sign-extended: bit 100 tests the sign bit.
        yes(doc! {"a": {"$bitsAllSet": [100]}}, doc! {"a": -1});
    }

    #[test]
    fn positional_index_of_first_traversed_array() {
        let f = m(doc! {"a": {"$gte": 2}});
        assert_eq!(
            f.match_details(&doc! {"a": [1, 2, 3]}),
            MatchDetails {
                matched: true,
                array_index: Some(1)
            }
        );
        let f = m(doc! {"a.b": 5});
        assert_eq!(
            f.match_details(&doc! {"a": [{"b": 1}, {"b": [4, 5]}]})
                .array_index,
            Some(1)
        );
        let f = m(doc! {"a": {"$elemMatch": {"b": 2}}});
        assert_eq!(
            f.match_details(&doc! {"a": [{"b": 1}, {"b": 2}]})
                .array_index,
            Some(1)
        );
        let f = m(doc! {"x": 1, "a": 3});
        assert_eq!(
            f.match_details(&doc! {"x": 1, "a": [1, 3]}).array_index,
            Some(1)
        );
        // A whole-array match has no position.
        let f = m(doc! {"a": [1, 2]});
        assert_eq!(f.match_details(&doc! {"a": [1, 2]}).array_index, None);
        assert_eq!(f.match_details(&doc! {"a": 1}), MatchDetails::default());
    }

    #[test]
    fn id_equality_range_and_equality_fields() {
        let f = m(doc! {"_id": 5, "a": 1});
        assert_eq!(f.id_equality(), Some(&Bson::Int32(5)));
        let f = m(doc! {"$and": [{"a": 1}, {"_id": {"$eq": "x"}}]});
        assert_eq!(f.id_equality(), Some(&Bson::String("x".into())));
        assert_eq!(
            m(doc! {"$or": [{"_id": 1}, {"_id": 2}]}).id_equality(),
            None
        );
        assert_eq!(m(doc! {"_id": {"$gt": 1}}).id_equality(), None);

        let f = m(doc! {"_id": {"$gt": 1, "$lte": 9}, "$and": [{"_id": {"$gte": 3}}]});
        assert_eq!(
            f.id_range(),
            Some((
                Bound::Included(Bson::Int32(3)),
                Bound::Included(Bson::Int32(9))
            ))
        );
        assert_eq!(m(doc! {"a": 1}).id_range(), None);
        assert_eq!(
            m(doc! {"_id": {"$lt": 4}}).id_range(),
            Some((Bound::Unbounded, Bound::Excluded(Bson::Int32(4))))
        );

        let f = m(
            doc! {"a": 1, "b.c": {"$eq": 2}, "d": {"$gt": 3}, "$and": [{"e": "x"}], "$or": [{"f": 1}], "g": {"$in": [7]}},
        );
        assert_eq!(
            f.equality_fields(),
            doc! {"a": 1, "b.c": 2, "e": "x", "g": 7}
        );
    }

    #[test]
    fn always_true_false_and_json_schema() {
        yes(doc! {"$alwaysTrue": 1}, doc! {});
        no(doc! {"$alwaysFalse": 1}, doc! {});
        let schema = doc! {"$jsonSchema": {
            "bsonType": "object",
            "required": ["name"],
            "properties": {
                "name": {"bsonType": "string", "minLength": 2},
                "age": {"bsonType": ["int", "long"], "minimum": 0, "maximum": 150},
                "kind": {"enum": ["a", "b"]},
            }
        }};
        yes(schema.clone(), doc! {"name": "bob", "age": 30});
        no(schema.clone(), doc! {"age": 30});
        no(schema.clone(), doc! {"name": "b"});
        no(schema.clone(), doc! {"name": "bob", "age": 200});
        no(schema.clone(), doc! {"name": "bob", "age": 3.0});
        no(schema.clone(), doc! {"name": "bob", "kind": "c"});
        yes(schema, doc! {"name": "bob", "kind": "a"});
        assert_eq!(err(doc! {"$jsonSchema": {"foo": 1}}).code, 9);
    }

    #[test]
    fn pcre_translation() {
        assert_eq!(translate_pcre("a$", false), r"a(?:\n?\z)");
        assert_eq!(translate_pcre("a$", true), "a$");
        assert_eq!(translate_pcre(r"[$]\$", false), r"[$]\$");
        assert_eq!(translate_pcre(r"[]a]", false), r"[\]a]");
    }
}
