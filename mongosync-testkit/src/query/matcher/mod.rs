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

mod array;
mod bitwise;
mod comparison;
mod element;
mod evaluation;
pub(crate) mod geo;
mod json_schema;
pub(crate) mod text;

use array::*;
use bitwise::*;
use comparison::*;
pub(crate) use element::type_code;
use element::*;
use evaluation::*;
pub(crate) use evaluation::{Captures, Re};
use geo::GeoPred;
use json_schema::*;

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
    /// `$text`.
    Text(Box<text::TextQuery>),
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
    /// `$geoWithin`, `$geoIntersects`, `$near`, `$nearSphere`.
    Geo(Box<GeoPred>),
    /// The negation of the conjunction (`$not`, `$ne`, `$nin`, `$exists: false`).
    Not(Vec<Pred>),
    Const(bool),
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
        self.try_match_details_meta(doc, None)
    }

    /// Like [`Matcher::try_matches`], `$expr` reading `meta` (a pipeline document's metadata).
    pub fn try_matches_meta(
        &self,
        doc: &Document,
        meta: Option<&crate::query::expr::DocMeta>,
    ) -> Result<bool> {
        Ok(self.try_match_details_meta(doc, meta)?.matched)
    }

    fn try_match_details_meta(
        &self,
        doc: &Document,
        meta: Option<&crate::query::expr::DocMeta>,
    ) -> Result<MatchDetails> {
        let mut idx = None;
        let ctx = EvalCtx {
            vars: &self.vars,
            meta,
        };
        let matched = self
            .root
            .matches(doc, &ctx, self.collation.as_ref(), &mut idx)?;
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

    /// The `$near`/`$nearSphere` condition and its path, if the filter has one (results are
    /// then sorted by distance).
    pub fn near(&self) -> Option<(&str, &geo::Near)> {
        let mut conj = Vec::new();
        self.root.conjuncts(&mut conj);
        conj.into_iter().find_map(|n| match n {
            Node::Path {
                path,
                pred: Pred::Geo(g),
            } => g.near().map(|near| (path.as_str(), near)),
            _ => None,
        })
    }

    /// The `$text` score of `doc` (`None` without `$text` or when it does not match).
    pub fn text_score(&self, doc: &Document) -> Option<f64> {
        let mut conj = Vec::new();
        self.root.conjuncts(&mut conj);
        conj.into_iter().find_map(|n| match n {
            Node::Text(q) => q.score(doc).ok().flatten(),
            _ => None,
        })
    }

    /// Whether the filter has a `$text` condition.
    pub fn has_text(&self) -> bool {
        fn walk(n: &Node) -> bool {
            match n {
                Node::And(c) | Node::Or(c) | Node::Nor(c) => c.iter().any(walk),
                Node::Text(_) => true,
                _ => false,
            }
        }
        walk(&self.root)
    }

    /// Binds `$text` to the collection's text index and checks that `$near` has a
    /// geospatial index, with the server's errors (27, 291), given the index specifications.
    pub fn bind_indexes<'a>(
        &self,
        specs: impl Iterator<Item = &'a Document> + Clone,
    ) -> Result<()> {
        fn walk<'a>(n: &Node, specs: &(impl Iterator<Item = &'a Document> + Clone)) -> Result<()> {
            match n {
                Node::And(c) | Node::Or(c) | Node::Nor(c) => {
                    c.iter().try_for_each(|x| walk(x, specs))
                }
                Node::Text(q) => {
                    let idx = specs
                        .clone()
                        .find_map(text::TextIndex::from_spec)
                        .ok_or_else(|| {
                            CommandError::new(
                                codes::INDEX_NOT_FOUND,
                                "text index required for $text query",
                            )
                        })?;
                    let _ = q.index.set(idx);
                    Ok(())
                }
                Node::Path {
                    path,
                    pred: Pred::Geo(g),
                } if g.near().is_some() => {
                    let indexed = specs.clone().any(|s| {
                        s.get_document("key").is_ok_and(|k| {
                            matches!(k.get(path), Some(Bson::String(t)) if t == "2d" || t == "2dsphere")
                        })
                    });
                    if indexed {
                        Ok(())
                    } else {
                        Err(CommandError::new(
                            291,
                            "unable to find index for $geoNear query",
                        ))
                    }
                }
                _ => Ok(()),
            }
        }
        walk(&self.root, &specs)
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
                    if ctx != Ctx::Top {
                        return Err(CommandError::bad_value(
                            "$text can only be applied to the top-level document",
                        ));
                    }
                    nodes.push(Node::Text(Box::new(text::TextQuery::parse(v)?)));
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
            "$geoWithin" | "$within" => geo::parse_geo_within(v)?,
            "$geoIntersects" => geo::parse_geo_intersects(v)?,
            "$near" | "$nearSphere" | "$geoNear" => geo::parse_near(k, v, ops)?,
            "$maxDistance" | "$minDistance"
                if ["$near", "$nearSphere", "$geoNear"]
                    .iter()
                    .any(|n| ops.contains_key(*n)) =>
            {
                continue;
            }
            _ => {
                return Err(CommandError::bad_value(format!("unknown operator: {k}")));
            }
        };
        preds.push(pred);
    }
    Ok(preds)
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
        ctx: &EvalCtx,
        coll: Option<&Collation>,
        idx: &mut Option<usize>,
    ) -> Result<bool> {
        let vars = ctx.vars;
        match self {
            Node::And(children) => {
                for c in children {
                    if !c.matches(doc, ctx, coll, idx)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Or(children) => {
                for c in children {
                    let mut i = None;
                    if c.matches(doc, ctx, coll, &mut i)? {
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
                    if c.matches(doc, ctx, coll, &mut None)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Path { path, pred } => Ok(path_matches(doc, path, pred, vars, coll, idx)),
            Node::Expr(e) => {
                let v = crate::query::expr::evaluate_with_meta(e, doc, vars, ctx.meta)?;
                Ok(crate::query::expr::truthy(v.as_ref()))
            }
            Node::Const(b) => Ok(*b),
            Node::Schema(s) => Ok(s.validate_doc(doc)),
            Node::SampleRate(x) => Ok(rand::random::<f64>() < *x),
            Node::Text(q) => Ok(q.score(doc)?.is_some()),
        }
    }
}

/// What `$expr` evaluates with: the filter's variables and the document's metadata.
struct EvalCtx<'a> {
    vars: &'a Document,
    meta: Option<&'a crate::query::expr::DocMeta>,
}

impl<'a> EvalCtx<'a> {
    fn plain(vars: &'a Document) -> EvalCtx<'a> {
        EvalCtx { vars, meta: None }
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
                        Bson::Document(d) => {
                            node.matches(d, &EvalCtx::plain(vars), coll, &mut None)
                        }
                        // Arrays are matched as objects keyed "0", "1", ...
                        Bson::Array(a) => {
                            let sub: Document = a
                                .iter()
                                .enumerate()
                                .map(|(k, x)| (k.to_string(), x.clone()))
                                .collect();
                            node.matches(&sub, &EvalCtx::plain(vars), coll, &mut None)
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
            Pred::Geo(g) => v.is_some_and(|x| g.matches(x)),
            Pred::Const(b) => *b,
        }
    }
}

#[cfg(test)]
mod tests;
