//! `find` projections: inclusion, exclusion, `_id` rules, `$slice`, `$elemMatch`, positional
//! `$`, and aggregation expressions.
// `CommandError` is the crate-wide error type; its size is a crate design decision.
#![allow(clippy::result_large_err)]

use bson::{Bson, Document, doc};

use crate::error::{CommandError, Result};
use crate::query::matcher::Matcher;

/// A parsed find projection.
#[derive(Debug, Clone)]
pub struct Projection {
    tree: Tree,
    /// `None` for the empty projection (the whole document).
    mode: Option<Mode>,
    vars: Document,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inclusion,
    Exclusion,
}

/// The projection as a tree of path components, in specification order.
#[derive(Debug, Clone, Default)]
struct Tree {
    children: Vec<(String, PNode)>,
}

#[derive(Debug, Clone)]
enum PNode {
    Include,
    Exclude,
    Sub(Tree),
    /// An aggregation expression (`{$literal: 1}`, `"$a"`, `{$add: ...}`).
    Computed(Bson),
    /// `$slice`: `(skip, limit)`; a negative skip counts from the end.
    Slice(Option<i64>, i64),
    /// `$elemMatch`, as a matcher over `{"e": <array>}`.
    ElemMatch(Box<Matcher>),
    /// `a.$`.
    Positional,
}

impl Tree {
    fn get(&self, k: &str) -> Option<&PNode> {
        self.children.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }

    fn has_computed(&self) -> bool {
        self.children.iter().any(|(_, n)| match n {
            PNode::Computed(_) => true,
            PNode::Sub(t) => t.has_computed(),
            _ => false,
        })
    }

    /// Inserts `node` at `parts`, failing on path collisions as the server does.
    fn insert(&mut self, full: &str, parts: &[&str], node: PNode) -> Result<()> {
        let (first, rest) = (parts[0], &parts[1..]);
        let pos = self.children.iter().position(|(n, _)| n == first);
        if rest.is_empty() {
            if pos.is_some() {
                return Err(CommandError::new(
                    31250,
                    format!("Path collision at {full}"),
                ));
            }
            self.children.push((first.to_string(), node));
            return Ok(());
        }
        let idx = match pos {
            Some(i) => i,
            None => {
                self.children
                    .push((first.to_string(), PNode::Sub(Tree::default())));
                self.children.len() - 1
            }
        };
        match &mut self.children[idx].1 {
            PNode::Sub(t) => t.insert(full, rest, node),
            _ => Err(CommandError::new(
                31249,
                format!(
                    "Path collision at {full} remaining portion {}",
                    rest.join(".")
                ),
            )),
        }
    }
}

/// What the parser has seen so far, to detect mixed projections.
struct ParseCtx {
    mode: Option<Mode>,
    positional: bool,
    id_included: bool,
    vars: Document,
}

impl ParseCtx {
    fn want(&mut self, mode: Mode, path: &str) -> Result<()> {
        match (self.mode, mode) {
            (None, _) => {
                self.mode = Some(mode);
                Ok(())
            }
            (Some(a), b) if a == b => Ok(()),
            (Some(Mode::Inclusion), Mode::Exclusion) => Err(CommandError::new(
                31254,
                format!("Cannot do exclusion on field {path} in inclusion projection"),
            )),
            _ => Err(CommandError::new(
                31253,
                format!("Cannot do inclusion on field {path} in exclusion projection"),
            )),
        }
    }
}

/// The server's `trueValue()` for projection values.
fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        _ => crate::query::compare::number_as_f64(v).is_some_and(|n| n != 0.0),
    }
}

impl Projection {
    /// Parses a projection; a mix of inclusion and exclusion fails as on the server (31254 /
    /// 31253), and so on.
    pub fn new(spec: &Document, vars: &Document) -> Result<Projection> {
        let mut ctx = ParseCtx {
            mode: None,
            positional: false,
            id_included: false,
            vars: vars.clone(),
        };
        let mut tree = Tree::default();
        parse_level(spec, "", &mut tree, &mut ctx)?;
        let mode = if spec.is_empty() {
            None
        } else {
            // `{_id: 1}` alone includes; `{_id: 0}` or only `$slice`s exclude.
            Some(ctx.mode.unwrap_or(if ctx.id_included {
                Mode::Inclusion
            } else {
                Mode::Exclusion
            }))
        };
        Ok(Projection {
            tree,
            mode,
            vars: vars.clone(),
        })
    }

    /// Applies the projection. `filter` is the query, needed by the positional `$` projection.
    pub fn apply(&self, doc: &Document, filter: Option<&Matcher>) -> Result<Document> {
        let env = Env {
            root: doc,
            vars: &self.vars,
            position: filter.and_then(|m| m.match_details(doc).array_index),
        };
        match self.mode {
            None => Ok(doc.clone()),
            Some(Mode::Exclusion) => apply_exclusion(doc, &self.tree),
            Some(Mode::Inclusion) => {
                let mut tree = self.tree.clone();
                if tree.get("_id").is_none() {
                    // `_id` is included unless explicitly excluded.
                    tree.children.insert(0, ("_id".to_string(), PNode::Include));
                }
                apply_inclusion(doc, &tree, &env)
            }
        }
    }

    /// Whether the projection keeps only the listed fields.
    pub fn is_inclusion(&self) -> bool {
        self.mode == Some(Mode::Inclusion)
    }
}

fn parse_level(spec: &Document, prefix: &str, tree: &mut Tree, ctx: &mut ParseCtx) -> Result<()> {
    for (k, v) in spec {
        let full = format!("{prefix}{k}");
        let parts: Vec<&str> = full.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(CommandError::new(
                15998,
                "FieldPath field names may not be empty strings.",
            ));
        }
        // Positional `a.$`.
        if let Some(dollar) = parts.iter().position(|p| *p == "$") {
            if dollar != parts.len() - 1 {
                return Err(CommandError::new(
                    31394,
                    "As of 4.4, it's illegal to specify positional operator in the middle of a \
                     path.Positional projection may only be used at the end, for example: a.b.$. \
                     If the query previously used a form like a.b.$.d, remove the parts following \
                     the '$' and the results will be equivalent.",
                ));
            }
            if dollar == 0 {
                return Err(CommandError::new(
                    16410,
                    "FieldPath field names may not start with '$'.",
                ));
            }
            if !truthy(v) {
                return Err(CommandError::bad_value(
                    "Cannot exclude array elements with the positional operator.",
                ));
            }
            if ctx.positional {
                return Err(CommandError::new(
                    31276,
                    "Cannot specify more than one positional projection per query.",
                ));
            }
            ctx.positional = true;
            let field = parts[..dollar].join(".");
            ctx.want(Mode::Inclusion, &field)?;
            tree.insert(&full, &parts[..dollar], PNode::Positional)?;
            continue;
        }
        if parts.iter().any(|p| p.starts_with('$')) {
            return Err(CommandError::new(
                16410,
                "FieldPath field names may not start with '$'.",
            ));
        }
        let node = match v {
            Bson::Boolean(_)
            | Bson::Int32(_)
            | Bson::Int64(_)
            | Bson::Double(_)
            | Bson::Decimal128(_) => {
                if truthy(v) {
                    // `_id: 1` also fits an exclusion projection (it is the default there).
                    if full == "_id" {
                        ctx.id_included = true;
                    } else {
                        ctx.want(Mode::Inclusion, &full)?;
                    }
                    PNode::Include
                } else {
                    if full != "_id" {
                        ctx.want(Mode::Exclusion, &full)?;
                    }
                    PNode::Exclude
                }
            }
            Bson::Document(d) if d.is_empty() => {
                return Err(CommandError::new(
                    51270,
                    format!(
                        "An empty sub-projection is not a valid value. Found empty object at path {full}"
                    ),
                ));
            }
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                parse_operator(&full, d, ctx)?
            }
            Bson::Document(d) => {
                // `{a: {b: 1}}` is `{"a.b": 1}`.
                parse_level(d, &format!("{full}."), tree, ctx)?;
                continue;
            }
            // Any other value is a literal or expression (`"$a"`, `[...]`, `null`).
            _ => {
                ctx.want_computed(&full)?;
                PNode::Computed(v.clone())
            }
        };
        tree.insert(&full, &parts, node)?;
    }
    Ok(())
}

impl ParseCtx {
    fn want_computed(&mut self, path: &str) -> Result<()> {
        if self.mode == Some(Mode::Exclusion) {
            return Err(CommandError::new(
                31252,
                format!(
                    "Cannot use an expression other than $meta in exclusion projection (field {path})"
                ),
            ));
        }
        self.want(Mode::Inclusion, path)
    }
}

fn parse_operator(full: &str, d: &Document, ctx: &mut ParseCtx) -> Result<PNode> {
    let (op, arg) = d
        .iter()
        .next()
        .map(|(k, v)| (k.as_str(), v))
        .unwrap_or(("", &Bson::Null));
    match op {
        "$slice" if d.len() == 1 => {
            if let Some(node) = parse_slice(arg)? {
                return Ok(node);
            }
        }
        "$elemMatch" if d.len() == 1 => {
            if full.contains('.') {
                return Err(CommandError::new(
                    31275,
                    "Cannot use $elemMatch projection on a nested field.",
                ));
            }
            let Bson::Document(_) = arg else {
                return Err(CommandError::bad_value(
                    "elemMatch: Invalid argument, object required.",
                ));
            };
            ctx.want(Mode::Inclusion, full)?;
            let m = Matcher::new(&doc! {"e": {"$elemMatch": arg.clone()}}, &ctx.vars)?;
            return Ok(PNode::ElemMatch(Box::new(m)));
        }
        _ => {}
    }
    ctx.want_computed(full)?;
    Ok(PNode::Computed(Bson::Document(d.clone())))
}

/// The find `$slice` forms (`n`, `[skip, limit]`); `None` when the argument is an aggregation
/// `$slice` expression instead.
fn parse_slice(arg: &Bson) -> Result<Option<PNode>> {
    let int = |v: &Bson| -> Option<i64> {
        match v {
            Bson::Int32(i) => Some(*i as i64),
            Bson::Int64(i) => Some(*i),
            Bson::Double(_) | Bson::Decimal128(_) => {
                let f = crate::query::compare::number_as_f64(v)?;
                f.is_finite()
                    .then(|| f.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64)
            }
            _ => None,
        }
    };
    match arg {
        Bson::Array(a) if a.len() == 2 && a.iter().all(crate::query::compare::is_number) => {
            let skip = int(&a[0]).unwrap_or(0);
            let limit = int(&a[1]).unwrap_or(0);
            if limit <= 0 {
                return Err(CommandError::new(
                    28724,
                    "Second argument to $slice must be a positive number",
                ));
            }
            Ok(Some(PNode::Slice(Some(skip), limit)))
        }
        _ if crate::query::compare::is_number(arg) => {
            Ok(Some(PNode::Slice(None, int(arg).unwrap_or(0))))
        }
        Bson::Array(_) => Ok(None),
        _ => Err(CommandError::new(
            28667,
            "$slice only supports numbers and [skip, limit] arrays",
        )),
    }
}

/// What applying a projection needs besides the current subdocument.
struct Env<'a> {
    root: &'a Document,
    vars: &'a Document,
    position: Option<usize>,
}

fn slice(v: &Bson, skip: Option<i64>, limit: i64) -> Bson {
    let Bson::Array(a) = v else {
        return v.clone();
    };
    let len = a.len() as i64;
    let (start, count) = match skip {
        None if limit >= 0 => (0, limit),
        None => ((len + limit).max(0), len),
        Some(s) if s < 0 => ((len + s).max(0), limit),
        Some(s) => (s.min(len), limit),
    };
    let end = start.saturating_add(count).min(len);
    Bson::Array(a[start as usize..end.max(start) as usize].to_vec())
}

fn apply_exclusion(doc: &Document, tree: &Tree) -> Result<Document> {
    let mut out = Document::new();
    for (k, v) in doc {
        match tree.get(k) {
            None | Some(PNode::Include) => {
                out.insert(k.clone(), v.clone());
            }
            Some(PNode::Exclude) => {}
            Some(PNode::Sub(t)) => {
                out.insert(k.clone(), exclude_value(v, t)?);
            }
            Some(PNode::Slice(skip, limit)) => {
                out.insert(k.clone(), slice(v, *skip, *limit));
            }
            // Not produced in an exclusion projection.
            Some(_) => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

fn exclude_value(v: &Bson, t: &Tree) -> Result<Bson> {
    Ok(match v {
        Bson::Document(d) => Bson::Document(apply_exclusion(d, t)?),
        Bson::Array(a) => Bson::Array(
            a.iter()
                .map(|e| exclude_value(e, t))
                .collect::<Result<Vec<_>>>()?,
        ),
        _ => v.clone(),
    })
}

fn apply_inclusion(doc: &Document, tree: &Tree, env: &Env) -> Result<Document> {
    let mut out = Document::new();
    for (k, v) in doc {
        match tree.get(k) {
            Some(PNode::Include) => {
                out.insert(k.clone(), v.clone());
            }
            Some(PNode::Sub(t)) => {
                if let Some(x) = include_value(v, t, env)? {
                    out.insert(k.clone(), x);
                }
            }
            Some(PNode::Slice(skip, limit)) => {
                out.insert(k.clone(), slice(v, *skip, *limit));
            }
            Some(PNode::Positional) => {
                out.insert(k.clone(), positional(v, env)?);
            }
            // Excluded (`_id: 0`), absent, or computed below.
            _ => {}
        }
    }
    // Computed fields and `$elemMatch` follow the included fields, in specification order.
    for (k, node) in &tree.children {
        match node {
            PNode::Computed(e) => {
                if let Some(x) = crate::query::expr::evaluate(e, env.root, env.vars)? {
                    out.insert(k.clone(), x);
                }
            }
            PNode::ElemMatch(m) => {
                if let Some(arr @ Bson::Array(a)) = doc.get(k) {
                    let details = m.match_details(&doc! {"e": arr.clone()});
                    if details.matched
                        && let Some(x) = details.array_index.and_then(|i| a.get(i))
                    {
                        out.insert(k.clone(), vec![x.clone()]);
                    }
                }
            }
            PNode::Sub(t)
                if t.has_computed()
                    && !matches!(doc.get(k), Some(Bson::Document(_) | Bson::Array(_))) =>
            {
                out.insert(k.clone(), apply_inclusion(&Document::new(), t, env)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A value under an inclusion subtree: documents are projected, arrays element-wise (dropping
/// scalars), scalars are dropped.
fn include_value(v: &Bson, t: &Tree, env: &Env) -> Result<Option<Bson>> {
    Ok(match v {
        Bson::Document(d) => Some(Bson::Document(apply_inclusion(d, t, env)?)),
        Bson::Array(a) => {
            let mut out = Vec::new();
            for e in a {
                if let Some(x) = match e {
                    Bson::Document(_) | Bson::Array(_) => include_value(e, t, env)?,
                    _ => None,
                } {
                    out.push(x);
                }
            }
            Some(Bson::Array(out))
        }
        _ => None,
    })
}

/// The positional projection of an array: the element the filter matched.
fn positional(v: &Bson, env: &Env) -> Result<Bson> {
    match v {
        Bson::Array(a) => match env.position.and_then(|i| a.get(i)) {
            Some(x) => Ok(Bson::Array(vec![x.clone()])),
            None => Err(CommandError::new(
                51246,
                "positional operator '.$' couldn't find a matching element in the array",
            )),
        },
        _ => Ok(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(spec: Document) -> Projection {
        Projection::new(&spec, &doc! {}).unwrap()
    }

    fn err(spec: Document) -> CommandError {
        Projection::new(&spec, &doc! {}).expect_err("should fail")
    }

    fn apply(spec: Document, d: Document) -> Document {
        p(spec).apply(&d, None).unwrap()
    }

    #[test]
    fn empty_projection_returns_everything() {
        let d = doc! {"_id": 1, "a": 1};
        assert_eq!(apply(doc! {}, d.clone()), d);
    }

    #[test]
    fn inclusion_keeps_document_order_and_id() {
        let d = doc! {"_id": 1, "b": 2, "a": 1, "c": 3};
        assert_eq!(
            apply(doc! {"a": 1, "b": true}, d.clone()),
            doc! {"_id": 1, "b": 2, "a": 1}
        );
        assert_eq!(apply(doc! {"a": 1, "_id": 0}, d.clone()), doc! {"a": 1});
        assert_eq!(apply(doc! {"_id": 1}, d.clone()), doc! {"_id": 1});
        assert_eq!(apply(doc! {"zz": 1}, d), doc! {"_id": 1});
    }

    #[test]
    fn exclusion_and_id_rules() {
        let d = doc! {"_id": 1, "a": 1, "b": 2};
        assert_eq!(apply(doc! {"a": 0}, d.clone()), doc! {"_id": 1, "b": 2});
        assert_eq!(apply(doc! {"_id": 0}, d.clone()), doc! {"a": 1, "b": 2});
        assert_eq!(apply(doc! {"a": false, "_id": 0}, d.clone()), doc! {"b": 2});
        assert_eq!(apply(doc! {"a": 0, "_id": 1}, d), doc! {"_id": 1, "b": 2});
    }

    #[test]
    fn dotted_and_nested_paths_through_arrays() {
        let d = doc! {"_id": 1, "a": {"b": 1, "c": 2}, "x": [{"y": 1, "z": 2}, 5, [{"y": 3}]]};
        let want = doc! {"_id": 1, "a": {"b": 1}};
        assert_eq!(apply(doc! {"a.b": 1}, d.clone()), want);
        assert_eq!(apply(doc! {"a": {"b": 1}}, d.clone()), want);
        assert_eq!(
            apply(doc! {"x.y": 1, "_id": 0}, d.clone()),
            doc! {"x": [{"y": 1}, [{"y": 3}]]}
        );
        assert_eq!(
            apply(doc! {"x.y": 0, "a.c": 0}, d),
            doc! {"_id": 1, "a": {"b": 1}, "x": [{"z": 2}, 5, [{}]]}
        );
        // A scalar where a subdocument is expected is dropped by inclusion.
        assert_eq!(
            apply(doc! {"a.b": 1}, doc! {"_id": 1, "a": 5}),
            doc! {"_id": 1}
        );
    }

    #[test]
    fn mixing_errors_and_collisions() {
        let e = err(doc! {"a": 1, "b": 0});
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                31254,
                "Cannot do exclusion on field b in inclusion projection"
            )
        );
        let e = err(doc! {"a": 0, "b": 1});
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                31253,
                "Cannot do inclusion on field b in exclusion projection"
            )
        );
        assert_eq!(err(doc! {"a": 1, "a.b": 1}).code, 31249);
        assert_eq!(err(doc! {"a.b": 1, "a": 1}).code, 31250);
        assert_eq!(err(doc! {"a": {}}).code, 51270);
        assert_eq!(err(doc! {"$a": 1}).code, 16410);
        // `_id: 0` mixes with either kind.
        assert!(Projection::new(&doc! {"_id": 0, "a": 1}, &doc! {}).is_ok());
    }

    #[test]
    fn slice_forms() {
        let d = doc! {"_id": 1, "a": [1, 2, 3, 4, 5], "b": 1};
        assert_eq!(
            apply(doc! {"a": {"$slice": 2}}, d.clone()),
            doc! {"_id": 1, "a": [1, 2], "b": 1}
        );
        assert_eq!(
            apply(doc! {"a": {"$slice": -2}}, d.clone()),
            doc! {"_id": 1, "a": [4, 5], "b": 1}
        );
        assert_eq!(
            apply(doc! {"a": {"$slice": [1, 2]}}, d.clone()),
            doc! {"_id": 1, "a": [2, 3], "b": 1}
        );
        assert_eq!(
            apply(doc! {"a": {"$slice": [-2, 5]}}, d.clone()),
            doc! {"_id": 1, "a": [4, 5], "b": 1}
        );
        assert_eq!(
            apply(doc! {"a": {"$slice": [10, 2]}}, d.clone()),
            doc! {"_id": 1, "a": [], "b": 1}
        );
        assert_eq!(
            apply(doc! {"a": {"$slice": -10}}, d.clone()),
            doc! {"_id": 1, "a": [1, 2, 3, 4, 5], "b": 1}
        );
        // In an inclusion projection the sliced field is included.
        assert_eq!(
            apply(doc! {"a": {"$slice": 1}, "_id": 0, "c": 1}, d.clone()),
            doc! {"a": [1]}
        );
        // Non-arrays are unchanged.
        assert_eq!(apply(doc! {"b": {"$slice": 1}}, d.clone()), d);
        assert_eq!(err(doc! {"a": {"$slice": [1, 0]}}).code, 28724);
        assert_eq!(err(doc! {"a": {"$slice": "x"}}).code, 28667);
    }

    #[test]
    fn elem_match_projection() {
        let d = doc! {"_id": 1, "s": [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}, {"k": 2, "v": "c"}], "z": 1};
        assert_eq!(
            apply(doc! {"s": {"$elemMatch": {"k": 2}}}, d.clone()),
            doc! {"_id": 1, "s": [{"k": 2, "v": "b"}]}
        );
        assert_eq!(
            apply(doc! {"s": {"$elemMatch": {"k": 9}}}, d.clone()),
            doc! {"_id": 1}
        );
        // The $elemMatch field comes after the other included fields.
        let d2 = doc! {"_id": 1, "s": [1, 5], "z": 1};
        assert_eq!(
            apply(doc! {"s": {"$elemMatch": {"$gt": 2}}, "z": 1}, d2),
            doc! {"_id": 1, "z": 1, "s": [5]}
        );
        assert_eq!(err(doc! {"a.b": {"$elemMatch": {"k": 1}}}).code, 31275);
        assert_eq!(
            err(doc! {"a": 0, "s": {"$elemMatch": {"k": 1}}}).code,
            31253
        );
    }

    #[test]
    fn positional_projection_uses_the_filter() {
        let d = doc! {"_id": 1, "a": [1, 5, 9], "b": 2};
        let filter = Matcher::new(&doc! {"a": {"$gt": 4}}, &doc! {}).unwrap();
        let proj = p(doc! {"a.$": 1});
        assert_eq!(
            proj.apply(&d, Some(&filter)).unwrap(),
            doc! {"_id": 1, "a": [5]}
        );
        let e = proj.apply(&d, None).unwrap_err();
        assert_eq!(e.code, 51246);
        assert_eq!(err(doc! {"a.$": 1, "b.$": 1}).code, 31276);
        assert_eq!(err(doc! {"a.$.b": 1}).code, 31394);
        assert_eq!(err(doc! {"a.$": 0}).code, 2);
    }
}
