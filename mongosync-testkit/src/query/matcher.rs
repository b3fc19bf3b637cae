//! Query filters (`find`, `update`, `delete`, `$match`): parsing with the server's errors,
//! and matching.
// `CommandError` is the crate-wide error type; its size is a crate design decision.
#![allow(clippy::result_large_err)]

pub(crate) use crate::util::type_name;
use std::cmp::Ordering;
use std::ops::Bound;

use bson::{Bson, Document};

use crate::error::{CommandError, Result, codes};
use crate::query::collation::{Collation, compare_with, contains_strings};
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
    /// String comparisons (equality, ranges, `$in`) use this collation; `None` is binary.
    collation: Option<Collation>,
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
    /// `$sampleRate`: matches each document with this probability.
    SampleRate(f64),
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
/// flag PCRE's `$` (and `\Z`) also match before a final newline; `\Q...\E` quotes; inside a
/// class `[`, `&&`, `--` and `~~` are literals; a `{` that does not start a quantifier is a
/// literal.
fn translate_pcre(pattern: &str, multiline: bool) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => match chars.get(i) {
                Some('Q') => {
                    // Quote everything up to `\E` (or the end).
                    i += 1;
                    while i < chars.len() && !(chars[i] == '\\' && chars.get(i + 1) == Some(&'E')) {
                        let q = chars[i];
                        if q.is_ascii_alphanumeric() || q == ' ' || !q.is_ascii() {
                            out.push(q);
                        } else {
                            out.push('\\');
                            out.push(q);
                        }
                        i += 1;
                    }
                    i += 2;
                }
                Some('E') => i += 1,
                Some('Z') if !in_class => {
                    out.push_str(r"(?:\n?\z)");
                    i += 1;
                }
                Some(&n) => {
                    out.push('\\');
                    out.push(n);
                    i += 1;
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal in PCRE.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            '[' if in_class => {
                if chars.get(i) == Some(&':') {
                    // A POSIX class `[:alpha:]`, which both dialects support.
                    while i <= chars.len() {
                        let p = chars[i - 1];
                        out.push(p);
                        if p == ']' && i >= 2 && chars[i - 2] == ':' {
                            break;
                        }
                        i += 1;
                    }
                } else {
                    out.push_str(r"\[");
                }
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.get(i) == Some(&'-') => out.push_str(r"\-"),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class && !multiline => out.push_str(r"(?:\n?\z)"),
            '{' if !in_class && !starts_quantifier(&chars[i..]) => out.push_str(r"\{"),
            _ => out.push(c),
        }
    }
    out
}

/// Whether the text after a `{` makes it a quantifier (`{n}`, `{n,}`, `{n,m}`).
fn starts_quantifier(rest: &[char]) -> bool {
    let mut j = 0;
    let digits = |j: &mut usize| {
        let start = *j;
        while rest.get(*j).is_some_and(|c| c.is_ascii_digit()) {
            *j += 1;
        }
        *j > start
    };
    if !digits(&mut j) {
        return false;
    }
    if rest.get(j) == Some(&',') {
        j += 1;
        digits(&mut j);
    }
    rest.get(j) == Some(&'}')
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
        Self::with_collation(filter, vars, None)
    }

    /// Like [`Matcher::new`], comparing strings under `collation` (regexes stay binary, as on
    /// the server).
    pub fn with_collation(
        filter: &Document,
        vars: &Document,
        collation: Option<Collation>,
    ) -> Result<Matcher> {
        let root = parse_filter(filter, Ctx::Top)?;
        check_exprs(&root, vars)?;
        Ok(Matcher {
            root,
            vars: vars.clone(),
            collation,
        })
    }

    /// The collation string comparisons use (`None`: binary).
    pub fn collation(&self) -> Option<&Collation> {
        self.collation.as_ref()
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
        let matched = self
            .root
            .matches(doc, &self.vars, self.collation.as_ref(), &mut idx)?;
        Ok(MatchDetails {
            matched,
            array_index: if matched { idx } else { None },
        })
    }

    /// Whether some path condition of the filter starts with the field `first` (the server's
    /// check that a positional projection `first.$` matches the query).
    pub fn has_path_prefix(&self, first: &str) -> bool {
        fn walk(n: &Node, first: &str) -> bool {
            match n {
                Node::And(c) | Node::Or(c) | Node::Nor(c) => c.iter().any(|x| walk(x, first)),
                Node::Path { path, .. } => path.split('.').next() == Some(first),
                _ => false,
            }
        }
        walk(&self.root, first)
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
            } if path == "_id" && !self.collation_affects(v) => Some(v),
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
            if path != "_id" || self.collation_affects(v) {
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

    /// Whether comparing with `v` under the matcher's collation may differ from the binary
    /// order (then `_id` index shortcuts are not exact).
    fn collation_affects(&self, v: &Bson) -> bool {
        self.collation.is_some() && contains_strings(v)
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

/// Fails on `$expr` operators the expression engine does not know, at parse time as the
/// server does (other evaluation errors depend on the document and surface when matching).
fn check_exprs(node: &Node, vars: &Document) -> Result<()> {
    match node {
        Node::And(c) | Node::Or(c) | Node::Nor(c) => {
            c.iter().try_for_each(|n| check_exprs(n, vars))
        }
        Node::Expr(e) => match crate::query::expr::evaluate(e, &Document::new(), vars) {
            Err(err) if err.code == codes::INVALID_PIPELINE_OPERATOR => Err(err),
            _ => Ok(()),
        },
        _ => Ok(()),
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
                    if parse_integer_element(k, v)? != 1 {
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
                // DBRef fields are matched as plain equalities.
                "id" | "ref" | "db" => nodes.push(Node::Path {
                    path: k.clone(),
                    pred: Pred::Cmp(CmpOp::Eq, v.clone()),
                }),
                "sampleRate" => {
                    if ctx != Ctx::Top {
                        return Err(CommandError::bad_value(
                            "$sampleRate can only be applied to the top-level document",
                        ));
                    }
                    let Some(x) = crate::query::compare::number_as_f64(v) else {
                        return Err(CommandError::bad_value(
                            "argument to $sampleRate must be a numeric type",
                        ));
                    };
                    if !(0.0..=1.0).contains(&x) {
                        return Err(CommandError::bad_value(
                            "numeric argument to $sampleRate must be in [0, 1]",
                        ));
                    }
                    nodes.push(Node::SampleRate(x));
                }
                "not" => {
                    return Err(CommandError::bad_value(
                        "unknown top level operator: $not. If you are trying to negate an entire \
                         expression, use $nor.",
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
        Some(k) => k.starts_with('$') && !(d.contains_key("$ref") && d.contains_key("$id")),
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
    for (k, v) in ops {
        let pred = match k.as_str() {
            "$eq" => Pred::Cmp(CmpOp::Eq, comparand(v, path, false)?),
            "$ne" => {
                if matches!(v, Bson::RegularExpression(_)) {
                    return Err(CommandError::bad_value("Can't have regex as arg to $ne."));
                }
                Pred::Not(vec![Pred::Cmp(CmpOp::Eq, comparand(v, path, false)?)])
            }
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
            "$type" => Pred::Type(parse_type(path, v)?),
            "$size" => Pred::Size(parse_size(v)?),
            "$mod" => parse_mod(v)?,
            "$regex" => parse_regex(ops)?,
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
            "$where" => {
                return Err(CommandError::bad_value(
                    "$where cannot be applied to a field",
                ));
            }
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
            // 0 is EOO, which the server accepts (it matches missing fields).
            if code == -1 || code == 127 || (0..=19).contains(&code) {
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

fn parse_type(path: &str, v: &Bson) -> Result<Vec<TypeSel>> {
    match v {
        Bson::Array(items) => {
            if items.is_empty() {
                return Err(CommandError::failed_to_parse(format!(
                    "{path} must match at least one type"
                )));
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

/// The server's `BSONElement::parseIntegerElementToLong` (FailedToParse errors that name the
/// element as `name: value`).
pub(crate) fn parse_integer_element(name: &str, v: &Bson) -> Result<i64> {
    let shown = || format!("{name}: {}", server_display(v));
    if !is_number(v) {
        return Err(CommandError::failed_to_parse(format!(
            "Expected a number in: {}",
            shown()
        )));
    }
    match v {
        Bson::Int32(i) => Ok(*i as i64),
        Bson::Int64(i) => Ok(*i),
        _ => {
            let f = crate::query::compare::number_as_f64(v).unwrap_or(f64::NAN);
            if f.is_nan() {
                return Err(CommandError::failed_to_parse(format!(
                    "Expected an integer, but found NaN in: {}",
                    shown()
                )));
            }
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                return Err(CommandError::failed_to_parse(format!(
                    "Cannot represent as a 64-bit integer: {}",
                    shown()
                )));
            }
            if f.fract() != 0.0 {
                return Err(CommandError::failed_to_parse(format!(
                    "Expected an integer: {}",
                    shown()
                )));
            }
            Ok(f as i64)
        }
    }
}

/// `parseIntegerElementToNonNegativeLong`.
pub(crate) fn parse_non_negative_element(name: &str, v: &Bson) -> Result<i64> {
    let n = parse_integer_element(name, v)?;
    if n < 0 {
        return Err(CommandError::failed_to_parse(format!(
            "Expected a positive number in: {name}: {}",
            server_display(v)
        )));
    }
    Ok(n)
}

fn parse_size(v: &Bson) -> Result<i64> {
    let n = parse_non_negative_element("$size", v)
        .map_err(|e| CommandError::bad_value(format!("Failed to parse $size. {}", e.message)))?;
    if n > i32::MAX as i64 {
        return Err(CommandError::bad_value(format!(
            "Failed to parse $size. Cannot represent as a 32-bit integer: $size: {}",
            server_display(v)
        )));
    }
    Ok(n)
}

fn parse_mod(v: &Bson) -> Result<Pred> {
    let Bson::Array(items) = v else {
        return Err(CommandError::bad_value(
            "malformed mod, needs to be an array",
        ));
    };
    let not_enough = || CommandError::bad_value("malformed mod, not enough elements");
    let divisor = items.first().ok_or_else(not_enough)?;
    if !is_number(divisor) {
        return Err(CommandError::bad_value(
            "malformed mod, divisor not a number",
        ));
    }
    let remainder = items.get(1).ok_or_else(not_enough)?;
    if !is_number(remainder) {
        return Err(CommandError::bad_value(
            "malformed mod, remainder not a number",
        ));
    }
    if items.len() > 2 {
        return Err(CommandError::bad_value("malformed mod, too many elements"));
    }
    // The server coerces both (truncating) and rejects NaN, infinities and out-of-range values.
    let coerce = |x: &Bson, what: &str| -> Result<i64> {
        match x {
            Bson::Int32(i) => Ok(*i as i64),
            Bson::Int64(i) => Ok(*i),
            _ => {
                let f = crate::query::compare::number_as_f64(x).unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(CommandError::bad_value(format!(
                        "malformed mod, {what} value is invalid :: caused by :: Unable to coerce NaN/Inf to integral type"
                    )));
                }
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f.trunc()) {
                    return Err(CommandError::bad_value(format!(
                        "malformed mod, {what} value is invalid :: caused by :: Out of bounds coercing to integral value"
                    )));
                }
                Ok(f.trunc() as i64)
            }
        }
    };
    let d = coerce(divisor, "divisor")?;
    let r = coerce(remainder, "remainder")?;
    if d == 0 {
        return Err(CommandError::bad_value("divisor cannot be 0"));
    }
    Ok(Pred::Mod(d, r))
}

/// `$regex` with its `$options` sibling, in document order as the server reads them.
fn parse_regex(ops: &Document) -> Result<Pred> {
    let mut pattern = String::new();
    let mut options = String::new();
    for (k, v) in ops {
        match k.as_str() {
            "$regex" => match v {
                Bson::String(p) => pattern = p.clone(),
                Bson::RegularExpression(r) => {
                    pattern = r.pattern.as_str().to_string();
                    if !r.options.as_str().is_empty() {
                        if !options.is_empty() {
                            return Err(CommandError::new(
                                51074,
                                "options set in both $regex and $options",
                            ));
                        }
                        options = r.options.as_str().to_string();
                    }
                }
                _ => return Err(CommandError::bad_value("$regex has to be a string")),
            },
            "$options" => {
                let Bson::String(o) = v else {
                    return Err(CommandError::bad_value("$options has to be a string"));
                };
                if !options.is_empty() {
                    return Err(CommandError::new(
                        51075,
                        "options set in both $regex and $options",
                    ));
                }
                options = o.clone();
            }
            _ => {}
        }
    }
    Ok(Pred::Regex(Re::new(&pattern, &options)?))
}

/// A value as the server prints it in error messages (`BSONElement::toString`):
/// `{ a: 1, b: "x" }`, `[ 1, 2 ]`, `2.0`.
pub(crate) fn server_display(v: &Bson) -> String {
    match v {
        Bson::Double(d) => {
            if d.is_nan() {
                "nan.0".to_string()
            } else if d.is_infinite() {
                if *d > 0.0 { "inf.0" } else { "-inf.0" }.to_string()
            } else if d.fract() == 0.0 && d.abs() < 1e16 {
                format!("{d:.1}")
            } else {
                format!("{d}")
            }
        }
        Bson::String(s) => format!("{s:?}"),
        Bson::Document(d) => {
            if d.is_empty() {
                "{}".to_string()
            } else {
                let inner: Vec<String> = d
                    .iter()
                    .map(|(k, x)| format!("{k}: {}", server_display(x)))
                    .collect();
                format!("{{ {} }}", inner.join(", "))
            }
        }
        Bson::Array(a) => {
            if a.is_empty() {
                "[]".to_string()
            } else {
                let inner: Vec<String> = a.iter().map(server_display).collect();
                format!("[ {} ]", inner.join(", "))
            }
        }
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Decimal128(d) => format!("NumberDecimal(\"{d}\")"),
        Bson::Boolean(b) => b.to_string(),
        Bson::Null => "null".to_string(),
        Bson::Undefined => "undefined".to_string(),
        Bson::MinKey => "MinKey".to_string(),
        Bson::MaxKey => "MaxKey".to_string(),
        Bson::ObjectId(o) => format!("ObjectId('{o}')"),
        Bson::DateTime(d) => format!("new Date({})", d.timestamp_millis()),
        Bson::Timestamp(t) => format!("Timestamp({}, {})", t.time, t.increment),
        Bson::RegularExpression(r) => format!("/{}/{}", r.pattern.as_str(), r.options.as_str()),
        other => other.to_string(),
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
    // The value form applies to an operator document that is neither a logical/top-level
    // operator nor (even partly) a DBRef.
    let dbref = d.contains_key("$ref") || d.contains_key("$id") || d.contains_key("$db");
    let value_form = match d.keys().next() {
        Some(k) => k.starts_with('$') && !dbref && !is_pathless_operator(k),
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
            for (i, item) in items.iter().enumerate() {
                let p = parse_non_negative_element(&i.to_string(), item).map_err(|e| {
                    CommandError::bad_value(format!("Failed to parse bit position. {}", e.message))
                })?;
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
            let m = parse_non_negative_element(name, v)?;
            for bit in 0..64 {
                if m & (1i64 << bit) != 0 {
                    positions.push(bit);
                }
            }
        }
        _ => {
            return Err(CommandError::bad_value(format!(
                "{name} takes an Array, a number, or a BinData but received: {name}: {}",
                server_display(v)
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
    /// The nodes that must all hold (the root, nested `$and`s, and one-clause `$or`s, which
    /// the server's optimizer unwraps).
    fn conjuncts<'a>(&'a self, out: &mut Vec<&'a Node>) {
        match self {
            Node::And(children) => {
                for c in children {
                    c.conjuncts(out);
                }
            }
            Node::Or(children) if children.len() == 1 => children[0].conjuncts(out),
            _ => out.push(self),
        }
    }

    fn matches(
        &self,
        doc: &Document,
        vars: &Document,
        coll: Option<&Collation>,
        idx: &mut Option<usize>,
    ) -> Result<bool> {
        match self {
            Node::And(children) => {
                for c in children {
                    if !c.matches(doc, vars, coll, idx)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Or(children) => {
                for c in children {
                    let mut i = None;
                    if c.matches(doc, vars, coll, &mut i)? {
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
                    if c.matches(doc, vars, coll, &mut None)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Path { path, pred } => Ok(path_matches(doc, path, pred, vars, coll, idx)),
            Node::Expr(e) => {
                let v = crate::query::expr::evaluate(e, doc, vars)?;
                Ok(crate::query::expr::truthy(v.as_ref()))
            }
            Node::Const(b) => Ok(*b),
            Node::Schema(s) => Ok(s.validate_doc(doc)),
            Node::SampleRate(x) => Ok(rand::random::<f64>() < *x),
        }
    }
}

/// Matches a predicate against every value `path` reaches in `doc`.
fn path_matches(
    doc: &Document,
    path: &str,
    pred: &Pred,
    vars: &Document,
    coll: Option<&Collation>,
    idx: &mut Option<usize>,
) -> bool {
    if let Pred::Not(inner) = pred {
        // The server negates the conjunction of the path predicates, each with traversal.
        return !inner
            .iter()
            .all(|p| path_matches(doc, path, p, vars, coll, &mut None));
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
        if pred.matches_single(r.value, vars, coll, &mut inner) {
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
    fn matches_single(
        &self,
        v: Option<&Bson>,
        vars: &Document,
        coll: Option<&Collation>,
        idx: &mut Option<usize>,
    ) -> bool {
        match self {
            Pred::Cmp(op, rhs) => cmp_matches(*op, v, rhs, coll),
            Pred::In {
                values,
                regexes,
                has_null,
            } => match v {
                None => *has_null,
                Some(x) => {
                    values
                        .iter()
                        .any(|r| cmp_matches(CmpOp::Eq, Some(x), r, coll))
                        || regexes.iter().any(|re| re.matches_value(x))
                }
            },
            Pred::Regex(re) => v.is_some_and(|x| re.matches_value(x)),
            Pred::Exists => v.is_some(),
            Pred::Type(sels) => match v {
                None => sels.contains(&TypeSel::Code(0)),
                Some(x) => sels.iter().any(|s| match s {
                    TypeSel::Number => is_number(x),
                    TypeSel::Code(c) => type_code(x) == *c,
                }),
            },
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
                        .all(|p| p.matches_single(Some(e), vars, coll, &mut None))
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
                    let matched = match e {
                        Bson::Document(d) => node.matches(d, vars, coll, &mut None),
                        // Arrays are matched as objects keyed "0", "1", ...
                        Bson::Array(a) => {
                            let sub: Document = a
                                .iter()
                                .enumerate()
                                .map(|(k, x)| (k.to_string(), x.clone()))
                                .collect();
                            node.matches(&sub, vars, coll, &mut None)
                        }
                        _ => continue,
                    };
                    if matched.unwrap_or(false) {
                        *idx = Some(i);
                        return true;
                    }
                }
                false
            }
            Pred::Not(preds) => !preds
                .iter()
                .all(|p| p.matches_single(v, vars, coll, &mut None)),
            Pred::Const(b) => *b,
        }
    }
}

/// A comparison operator on one value, with the server's type bracketing.
fn cmp_matches(op: CmpOp, v: Option<&Bson>, rhs: &Bson, coll: Option<&Collation>) -> bool {
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
    let o = compare_with(x, rhs, coll);
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
    additional_schema: Option<Box<Schema>>,
    multiple_of: Option<Bson>,
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
                    Bson::Document(sd) => s.additional_schema = Some(Box::new(Schema::parse(sd)?)),
                    _ => {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'additionalProperties' must be either an object or a boolean",
                        ));
                    }
                },
                "multipleOf" => {
                    if !is_number(v) {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'multipleOf' must be a number",
                        ));
                    }
                    let n = crate::query::compare::number_as_f64(v).unwrap_or(f64::NAN);
                    if n.is_nan() || n <= 0.0 {
                        return Err(schema_err(
                            "$jsonSchema keyword 'multipleOf' must have a positive value",
                        ));
                    }
                    s.multiple_of = Some(v.clone());
                }
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
        if let Some(m) = &self.multiple_of
            && is_number(v)
        {
            let x = crate::query::compare::number_as_f64(v).unwrap_or(f64::NAN);
            let d = crate::query::compare::number_as_f64(m).unwrap_or(f64::NAN);
            if !x.is_finite() || x % d != 0.0 {
                return false;
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
            let mut additional = d
                .iter()
                .filter(|(k, _)| !self.properties.iter().any(|(name, _)| name == *k));
            if self.additional_properties == Some(false) && additional.next().is_some() {
                return false;
            }
            if let Some(sub) = &self.additional_schema
                && !additional.all(|(_, x)| sub.validate(x))
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

    /// MongoDB 8.0 null semantics (before SERVER-36681 changed dotted paths in a later
    /// version): `{"a.b": null}` skips scalars and empty arrays inside arrays.
    #[test]
    fn null_semantics_over_a_corpus() {
        let docs = vec![
            doc! {"_id": "empty_sub", "a": {}},
            doc! {"_id": "null", "a": null},
            doc! {"_id": "number", "a": 4},
            doc! {"_id": "sub_b_hi", "a": {"b": "hi"}},
            doc! {"_id": "sub_b_null", "a": {"b": null}},
            doc! {"_id": "sub_b_undef", "a": {"b": Bson::Undefined}},
            doc! {"_id": "undef", "a": Bson::Undefined},
            doc! {"_id": "no_a"},
            doc! {"_id": "double_array", "a": [[]]},
            doc! {"_id": "empty_array", "a": []},
            doc! {"_id": "objs_mix", "a": [{"b": null}, {"b": Bson::Undefined}, {}]},
            doc! {"_id": "objs_no_null", "a": [{"b": 1}, {"b": "s"}]},
            doc! {"_id": "objs_missing", "a": [{"b": 3}, {}]},
            doc! {"_id": "vals_nulls", "a": [null, null]},
            doc! {"_id": "vals_no_null", "a": [1, "s"]},
            doc! {"_id": "vals_undef", "a": [1, Bson::Undefined]},
        ];
        let ids = |filter: Document| -> Vec<String> {
            let f = m(filter);
            docs.iter()
                .filter(|d| f.matches(d))
                .map(|d| d.get_str("_id").unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(doc! {"a": null}), ["null", "no_a", "vals_nulls"]);
        assert_eq!(
            ids(doc! {"a.b": null}),
            [
                "empty_sub",
                "null",
                "number",
                "sub_b_null",
                "undef",
                "no_a",
                "objs_mix",
                "objs_missing"
            ]
        );
        assert_eq!(
            ids(doc! {"a.b": {"$ne": null}}),
            [
                "sub_b_hi",
                "sub_b_undef",
                "double_array",
                "empty_array",
                "objs_no_null",
                "vals_nulls",
                "vals_no_null",
                "vals_undef"
            ]
        );
        assert_eq!(
            ids(doc! {"a": {"$nin": [null, []]}}),
            [
                "empty_sub",
                "number",
                "sub_b_hi",
                "sub_b_null",
                "sub_b_undef",
                "undef",
                "objs_mix",
                "objs_no_null",
                "objs_missing",
                "vals_no_null",
                "vals_undef"
            ]
        );
        assert_eq!(
            ids(doc! {"a": {"$elemMatch": {"$eq": null}}}),
            ["vals_nulls"]
        );
        // Array elements are matched as objects by the object form: [] has no `b`.
        assert_eq!(
            ids(doc! {"a": {"$elemMatch": {"b": null}}}),
            ["double_array", "objs_mix", "objs_missing"]
        );
        assert!(ids(doc! {"a.b": {"$elemMatch": {"$ne": null}}}).is_empty());
        assert_eq!(ids(doc! {"a": {"$exists": false}}), ["no_a"]);
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
        assert_eq!(
            err(doc! {"a": {"$where": "x"}}).message,
            "$where cannot be applied to a field"
        );
        assert!(err(doc! {"$not": {"a": 1}}).message.ends_with("use $nor."));
        // `$id`, `$ref` and `$db` at the top level are equalities on those fields.
        yes(doc! {"$id": 5}, doc! {"$id": 5});
        yes(
            doc! {"a": {"$id": 1, "$ref": "c"}},
            doc! {"a": {"$id": 1, "$ref": "c"}},
        );
        yes(doc! {"$sampleRate": 1.0}, doc! {});
        no(doc! {"$sampleRate": 0}, doc! {});
        assert_eq!(err(doc! {"$sampleRate": 2}).code, 2);
        assert_eq!(
            err(doc! {"$alwaysTrue": 2}).message,
            "$alwaysTrue must be an integer value of 1"
        );
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
        // Type 0 (EOO) is accepted by the server and matches a missing field.
        yes(doc! {"a": {"$type": 0}}, doc! {});
        no(doc! {"a": {"$type": 0}}, doc! {"a": null});
        assert_eq!(
            err(doc! {"a": {"$type": 2.5}}).message,
            "Invalid numerical type code: 2.5"
        );
        assert_eq!(
            err(doc! {"a": {"$type": "missing"}}).message,
            "Unknown type name alias: missing"
        );
        assert_eq!(err(doc! {"a": {"$type": 99}}).code, 2);
        assert_eq!(err(doc! {"a": {"$type": {}}}).code, 14);
        let e = err(doc! {"a": {"$type": []}});
        assert_eq!(
            (e.code, e.message.as_str()),
            (9, "a must match at least one type")
        );
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
        assert_eq!(
            err(doc! {"a": {"$ne": re.clone()}}).message,
            "Can't have regex as arg to $ne."
        );
        let re_i = Bson::RegularExpression(bson::Regex {
            pattern: "^a".try_into().unwrap(),
            options: "i".try_into().unwrap(),
        });
        assert_eq!(
            err(doc! {"a": {"$regex": re_i.clone(), "$options": "m"}}).code,
            51075
        );
        assert_eq!(
            err(doc! {"a": {"$options": "m", "$regex": re_i.clone()}}).code,
            51074
        );
        yes(
            doc! {"a": {"$options": "", "$regex": re_i}},
            doc! {"a": "ABC"},
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
            "Failed to parse $size. Expected a number in: $size: \"2\""
        );
        let e = err(doc! {"a": {"$size": -1}});
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                2,
                "Failed to parse $size. Expected a positive number in: $size: -1"
            )
        );
        assert_eq!(
            err(doc! {"a": {"$size": 2.5}}).message,
            "Failed to parse $size. Expected an integer: $size: 2.5"
        );
        assert_eq!(
            err(doc! {"a": {"$size": {"$gte": 3.0}}}).message,
            "Failed to parse $size. Expected a number in: $size: { $gte: 3.0 }"
        );
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
            err(doc! {"a": {"$mod": ["x"]}}).message,
            "malformed mod, divisor not a number"
        );
        assert_eq!(
            err(doc! {"a": {"$mod": [1, 2, 3]}}).message,
            "malformed mod, too many elements"
        );
        assert_eq!(err(doc! {"a": {"$mod": [f64::NAN, 1]}}).code, 2);
        assert_eq!(
            err(doc! {"a": {"$mod": 1}}).message,
            "malformed mod, needs to be an array"
        );
    }

    #[test]
    fn server_style_display() {
        assert_eq!(
            server_display(&bson::bson!({"a": [1, 2.0, "x"], "b": {}})),
            "{ a: [ 1, 2.0, \"x\" ], b: {} }"
        );
        assert_eq!(server_display(&Bson::Double(2.5)), "2.5");
        assert_eq!(type_name(&Bson::Int64(1)), "long");
    }

    #[test]
    fn bit_operators() {
        assert_eq!(
            err(doc! {"a": {"$bitsAllSet": [-1]}}).message,
            "Failed to parse bit position. Expected a positive number in: 0: -1"
        );
        assert_eq!(err(doc! {"a": {"$bitsAllSet": -1}}).code, 9);
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
            doc! {"a": 1, "b.c": 2, "e": "x", "f": 1, "g": 7}
        );
        let f = m(doc! {"$or": [{"a": 1}, {"b": 2}], "c": 3});
        assert_eq!(f.equality_fields(), doc! {"c": 3});
        let f = m(doc! {"$or": [{"_id": 3, "x": {"y": 1}}]});
        assert_eq!(f.equality_fields(), doc! {"_id": 3, "x": {"y": 1}});
        assert_eq!(f.id_equality(), Some(&Bson::Int32(3)));
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
        let strict = doc! {"$jsonSchema": {
            "properties": {"a": {"bsonType": "int"}},
            "additionalProperties": {"bsonType": "string"},
        }};
        yes(strict.clone(), doc! {"a": 1, "b": "x"});
        no(strict, doc! {"a": 1, "b": 2});
        let closed = doc! {"$jsonSchema": {"properties": {"a": {}}, "additionalProperties": false}};
        yes(closed.clone(), doc! {"a": 1});
        no(closed, doc! {"a": 1, "b": 2});
        let mult = doc! {"$jsonSchema": {"properties": {"n": {"multipleOf": 3}}}};
        yes(mult.clone(), doc! {"n": 9.0});
        no(mult, doc! {"n": 10});
    }

    #[test]
    fn pcre_translation() {
        assert_eq!(translate_pcre("a$", false), r"a(?:\n?\z)");
        assert_eq!(translate_pcre("a$", true), "a$");
        assert_eq!(translate_pcre(r"[$]\$", false), r"[$]\$");
        assert_eq!(translate_pcre(r"[]a]", false), r"[\]a]");
        assert_eq!(translate_pcre(r"a\Q.*\Eb", true), r"a\.\*b");
        assert_eq!(translate_pcre(r"[[&&]", true), r"[\[\&\&]");
        assert_eq!(translate_pcre(r"[[:alpha:]]x", true), r"[[:alpha:]]x");
        assert_eq!(translate_pcre(r"a{2}{x}b{1,}", true), r"a{2}\{x}b{1,}");
        for (pattern, subject) in [
            (r"^\Q1+1\E$", "1+1"),
            (r"[[]", "["),
            (r"{a}", "{a}"),
            (r"x{1,2}y", "xxy"),
            (r"(?<n>a)b", "ab"),
            (r"[a-c--]", "-"),
        ] {
            let re = Re::new(pattern, "").unwrap();
            assert!(re.is_match(subject), "{pattern} should match {subject}");
        }
    }

    fn mc(filter: Document, spec: Document) -> Matcher {
        let c = Collation::parse(&spec).unwrap();
        Matcher::with_collation(&filter, &doc! {}, c).unwrap()
    }

    #[test]
    fn collation_applies_to_equality_ranges_and_in() {
        let s2 = doc! {"locale": "en_US", "strength": 2};
        // The crud spec's find-collation case.
        assert!(mc(doc! {"x": "PING"}, s2.clone()).matches(&doc! {"_id": 1, "x": "ping"}));
        assert!(!m(doc! {"x": "PING"}).matches(&doc! {"x": "ping"}));
        assert!(!mc(doc! {"x": "PING"}, s2.clone()).matches(&doc! {"x": "pïng"}));
        assert!(
            mc(doc! {"x": "PÏNG"}, doc! {"locale": "fr", "strength": 1})
                .matches(&doc! {"x": "ping"})
        );
        // Ranges: binary "B" < "a", but alphabetically "a" < "B".
        assert!(mc(doc! {"x": {"$gt": "a"}}, s2.clone()).matches(&doc! {"x": "B"}));
        assert!(!m(doc! {"x": {"$gt": "a"}}).matches(&doc! {"x": "B"}));
        assert!(mc(doc! {"x": {"$lte": "A"}}, s2.clone()).matches(&doc! {"x": "a"}));
        assert!(mc(doc! {"x": {"$in": ["PING", 1]}}, s2.clone()).matches(&doc! {"x": "ping"}));
        assert!(!mc(doc! {"x": {"$nin": ["PING"]}}, s2.clone()).matches(&doc! {"x": "ping"}));
        assert!(!mc(doc! {"x": {"$ne": "PING"}}, s2.clone()).matches(&doc! {"x": "ping"}));
        // Array elements, whole arrays, embedded documents, $elemMatch, $all.
        assert!(mc(doc! {"x": "PING"}, s2.clone()).matches(&doc! {"x": ["a", "ping"]}));
        assert!(mc(doc! {"x": ["A", "PING"]}, s2.clone()).matches(&doc! {"x": ["a", "ping"]}));
        assert!(mc(doc! {"x": {"y": "Z"}}, s2.clone()).matches(&doc! {"x": {"y": "z"}}));
        assert!(
            mc(doc! {"x": {"$elemMatch": {"$eq": "PING"}}}, s2.clone())
                .matches(&doc! {"x": ["ping"]})
        );
        assert!(
            mc(doc! {"x": {"$elemMatch": {"y": "Q"}}}, s2.clone())
                .matches(&doc! {"x": [{"y": "q"}]})
        );
        assert!(mc(doc! {"x": {"$all": ["A", "B"]}}, s2.clone()).matches(&doc! {"x": ["b", "a"]}));
        assert!(
            mc(doc! {"$or": [{"x": "NO"}, {"x": "PING"}]}, s2.clone()).matches(&doc! {"x": "ping"})
        );
        // Regexes stay binary, as on the server.
        assert!(!mc(doc! {"x": {"$regex": "^PING"}}, s2.clone()).matches(&doc! {"x": "ping"}));
        // Numbers are unaffected; numericOrdering only changes strings.
        let num = doc! {"locale": "en", "numericOrdering": true};
        assert!(mc(doc! {"x": {"$lt": "10"}}, num.clone()).matches(&doc! {"x": "9"}));
        assert!(!m(doc! {"x": {"$lt": "10"}}).matches(&doc! {"x": "9"}));
        assert!(mc(doc! {"x": {"$lt": 10}}, num).matches(&doc! {"x": 9}));
        // Simple collation is binary.
        assert!(!mc(doc! {"x": "PING"}, doc! {"locale": "simple"}).matches(&doc! {"x": "ping"}));
    }

    #[test]
    fn collation_disables_string_id_shortcuts() {
        let s2 = doc! {"locale": "en_US", "strength": 2};
        assert!(mc(doc! {"_id": "A"}, s2.clone()).id_equality().is_none());
        assert!(
            mc(doc! {"_id": {"$gt": "A"}}, s2.clone())
                .id_range()
                .is_none()
        );
        assert_eq!(
            mc(doc! {"_id": 1}, s2.clone()).id_equality(),
            Some(&Bson::Int32(1))
        );
        assert!(mc(doc! {"_id": {"$gt": 1}}, s2).id_range().is_some());
        assert!(m(doc! {"_id": "A"}).id_equality().is_some());
    }
}
