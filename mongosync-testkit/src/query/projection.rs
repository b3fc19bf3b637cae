//! `find` projections: inclusion, exclusion, `_id` rules, `$slice`, `$elemMatch`, positional
//! `$`, and aggregation expressions.
// `CommandError` is the crate-wide error type; its size is a crate design decision.
#![allow(clippy::result_large_err)]

use crate::query::expr::DocMeta;
use bson::{Bson, Document, doc};

use crate::error::{CommandError, Result, codes};
use crate::query::matcher::Matcher;

/// A parsed find projection.
#[derive(Debug, Clone)]
pub struct Projection {
    tree: Tree,
    /// `None` for the empty projection (the whole document).
    mode: Option<Mode>,
    vars: Document,
    /// The positional projection's key (`a.b.$`), if any.
    positional: Option<String>,
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
    positional_key: Option<String>,
    elem_match: bool,
    slice: bool,
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
            positional_key: None,
            elem_match: false,
            slice: false,
            id_included: false,
            vars: vars.clone(),
        };
        let mut tree = Tree::default();
        parse_level(spec, "", &mut tree, &mut ctx)?;
        let mode = if spec.is_empty() {
            None
        } else {
            // The find() defaults when no field decided: `$slice` excludes unless `_id: 1`;
            // `$elemMatch` includes; otherwise `_id: 1` includes and anything else excludes.
            Some(ctx.mode.unwrap_or(if ctx.slice {
                if ctx.id_included {
                    Mode::Inclusion
                } else {
                    Mode::Exclusion
                }
            } else if ctx.id_included || ctx.elem_match {
                Mode::Inclusion
            } else {
                Mode::Exclusion
            }))
        };
        Ok(Projection {
            tree,
            mode,
            vars: vars.clone(),
            positional: ctx.positional_key,
        })
    }

    /// Applies the projection. `filter` is the query, needed by the positional `$` projection.
    pub fn apply(&self, doc: &Document, filter: Option<&Matcher>) -> Result<Document> {
        let mut position = None;
        if self.positional.is_some() {
            let Some(m) = filter else {
                return Err(CommandError::new(
                    51050,
                    "Projections with a positional operator require a matcher",
                ));
            };
            position = m.match_details(doc).array_index;
        }
        let env = Env {
            root: doc,
            vars: &self.vars,
            position,
            meta: filter.and_then(|m| find_metadata(m, doc)),
        };
        match self.mode {
            None => Ok(doc.clone()),
            Some(Mode::Exclusion) => apply_exclusion(doc, &self.tree, &env),
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

/// The metadata a find's filter gives a document: its `$text` score, or its `$near` distance
/// and point (in the query's units). `None` when the filter produces none.
pub fn find_metadata(m: &Matcher, doc: &Document) -> Option<DocMeta> {
    if m.has_text() {
        return Some(DocMeta::text(m.text_score(doc)));
    }
    let (path, near) = m.near()?;
    let hit = near.nearest(doc, path);
    Some(DocMeta {
        geo_near_distance: hit.as_ref().map(|h| h.0),
        geo_near_point: hit.map(|h| h.1),
        ..DocMeta::EMPTY
    })
}

/// Validates a projection path as the server's `FieldPath` does.
fn check_field_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(CommandError::new(
            40352,
            "FieldPath cannot be constructed with empty string",
        ));
    }
    for part in path.split('.') {
        if part.is_empty() {
            return Err(CommandError::new(
                15998,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if part.starts_with('$') {
            return Err(CommandError::new(
                16410,
                "FieldPath field names may not start with '$'. Consider using $getField or \
                 $setField.",
            ));
        }
    }
    Ok(())
}

/// Parses one level of a projection (the top level, or a sub-projection `{a: {b: 1}}` with
/// `prefix` "a."), in the order and with the errors of the server's projection parser.
fn parse_level(spec: &Document, prefix: &str, tree: &mut Tree, ctx: &mut ParseCtx) -> Result<()> {
    for (k, v) in spec {
        let full = format!("{prefix}{k}");
        let positional = k.ends_with(".$") || k == "$";
        if k.contains(".$.") {
            return Err(CommandError::new(
                31394,
                "As of 4.4, it's illegal to specify positional operator in the middle of a \
                 path.Positional projection may only be used at the end, for example: a.b.$. \
                 If the query previously used a form like a.b.$.d, remove the parts following \
                 the '$' and the results will be equivalent.",
            ));
        }
        let top_level_id = prefix.is_empty() && k == "_id";
        match v {
            Bson::Document(d) => {
                if positional {
                    return Err(CommandError::new(
                        31271,
                        "positional projection cannot be used with an expression or sub object",
                    ));
                }
                if d.is_empty() {
                    return Err(CommandError::new(
                        51270,
                        format!("Invalid empty sub-projection: {k}"),
                    ));
                }
                check_field_path(k)?;
                let parts: Vec<&str> = full.split('.').collect();
                if d.len() == 1 && d.keys().next().is_some_and(|f| f.starts_with('$')) {
                    let node = parse_operator(&full, d, ctx)?;
                    tree.insert(&full, &parts, node)?;
                } else {
                    // `{a: {b: 1}}` is `{"a.b": 1}`.
                    parse_level(d, &format!("{full}."), tree, ctx)?;
                }
            }
            Bson::Boolean(_)
            | Bson::Int32(_)
            | Bson::Int64(_)
            | Bson::Double(_)
            | Bson::Decimal128(_) => {
                if truthy(v) {
                    if positional {
                        if ctx.positional {
                            return Err(CommandError::new(
                                31276,
                                "Cannot specify more than one positional projection per query.",
                            ));
                        }
                        if ctx.elem_match {
                            return Err(CommandError::new(
                                31256,
                                "Cannot specify positional operator and $elemMatch.",
                            ));
                        }
                        if k == ".$" || k == "$" {
                            return Err(CommandError::new(
                                5392900,
                                format!("Projection on field {k} is invalid"),
                            ));
                        }
                        let field = &full[..full.len() - 2];
                        check_field_path(&k[..k.len() - 2])?;
                        ctx.positional = true;
                        ctx.positional_key = Some(full.clone());
                        let parts: Vec<&str> = field.split('.').collect();
                        tree.insert(field, &parts, PNode::Positional)?;
                    } else {
                        check_field_path(k)?;
                        let parts: Vec<&str> = full.split('.').collect();
                        tree.insert(&full, &parts, PNode::Include)?;
                    }
                    // `_id: 1` fits an exclusion projection too (it is the default there).
                    if top_level_id {
                        ctx.id_included = true;
                    } else {
                        ctx.want(Mode::Inclusion, k)?;
                    }
                } else {
                    if positional {
                        return Err(CommandError::new(
                            31395,
                            "positional projection cannot be used with exclusion",
                        ));
                    }
                    check_field_path(k)?;
                    let parts: Vec<&str> = full.split('.').collect();
                    tree.insert(&full, &parts, PNode::Exclude)?;
                    if !top_level_id {
                        ctx.want(Mode::Exclusion, k)?;
                    }
                }
            }
            // Any other value is a literal or an expression (`"$a"`, `[...]`, `null`).
            _ => {
                if positional {
                    return Err(CommandError::new(
                        31308,
                        "positional projection cannot be used with a literal",
                    ));
                }
                check_field_path(k)?;
                if ctx.mode == Some(Mode::Exclusion) {
                    return Err(CommandError::new(
                        31310,
                        format!(
                            "Cannot use an expression {k}: {} in an exclusion projection",
                            crate::query::matcher::server_display(v)
                        ),
                    ));
                }
                ctx.mode = Some(Mode::Inclusion);
                let parts: Vec<&str> = full.split('.').collect();
                tree.insert(&full, &parts, PNode::Computed(v.clone()))?;
            }
        }
    }
    Ok(())
}

impl ParseCtx {
    /// A computed field; `$meta` fits either kind of projection and sets none.
    fn want_computed(&mut self, path: &str, is_meta: bool) -> Result<()> {
        if is_meta {
            return Ok(());
        }
        if self.mode == Some(Mode::Exclusion) {
            return Err(CommandError::new(
                31252,
                "Cannot use expression other than $meta in exclusion projection",
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
        "$slice" => {
            if let Some(node) = parse_slice(d, arg)? {
                ctx.slice = true;
                return Ok(node);
            }
        }
        "$elemMatch" => {
            if !matches!(arg, Bson::Document(_)) {
                return Err(CommandError::new(
                    31274,
                    format!(
                        "elemMatch: Invalid argument, object required, but got {}",
                        crate::query::matcher::type_name(arg)
                    ),
                ));
            }
            if ctx.positional {
                return Err(CommandError::new(
                    31255,
                    "Cannot specify positional operator and $elemMatch.",
                ));
            }
            if full.contains('.') {
                return Err(CommandError::new(
                    31275,
                    "Cannot use $elemMatch projection on a nested field.",
                ));
            }
            let m = Matcher::new(&doc! {"e": {"$elemMatch": arg.clone()}}, &ctx.vars)?;
            ctx.elem_match = true;
            return Ok(PNode::ElemMatch(Box::new(m)));
        }
        _ => {}
    }
    let is_meta = op == "$meta";
    ctx.want_computed(full, is_meta)?;
    if is_meta {
        crate::query::expr::check_meta(arg)?;
    } else if let Err(e) =
        crate::query::expr::evaluate(&Bson::Document(d.clone()), &Document::new(), &ctx.vars)
        && e.code == codes::INVALID_PIPELINE_OPERATOR
    {
        // Unknown operators fail at parse time, as on the server; other evaluation errors
        // depend on the document.
        if e.message.contains(&format!("'{op}'")) {
            return Err(CommandError::new(31325, format!("Unknown expression {op}")));
        }
        return Err(e);
    }
    Ok(PNode::Computed(Bson::Document(d.clone())))
}

/// Evaluates a computed field, `$meta` reading the document's metadata (its `$text` score).
/// `randVal` is a fresh random number per document, as a find's projection asks for one.
fn eval_computed(e: &Bson, env: &Env) -> Result<Option<Bson>> {
    if let Bson::Document(d) = e
        && d.len() == 1
        && d.get("$meta") == Some(&Bson::String("randVal".into()))
    {
        return Ok(Some(Bson::Double(rand::random::<f64>())));
    }
    crate::query::expr::evaluate_with_meta(e, env.root, env.vars, env.meta.as_ref())
}

/// The find `$slice` forms (`n`, `[skip, limit]`); `None` when the argument is an aggregation
/// `$slice` expression instead (as the server falls back to it).
fn parse_slice(spec: &Document, arg: &Bson) -> Result<Option<PNode>> {
    // The server reads the numbers as 32-bit ints, truncating and saturating.
    let int = |v: &Bson| -> i64 {
        match v {
            Bson::Int32(i) => *i as i64,
            Bson::Int64(i) => (*i).clamp(i32::MIN as i64, i32::MAX as i64),
            _ => crate::query::compare::number_as_f64(v).unwrap_or(0.0) as i32 as i64,
        }
    };
    let syntax_error = |find_reason: &str, n: usize| {
        CommandError::new(
            28667,
            format!(
                "Invalid $slice syntax. The given syntax {} did not match the find() syntax \
                 because :: {find_reason} :: The given syntax did not match the expression $slice \
                 syntax. :: caused by :: Expression $slice takes at least 2 arguments, and at most \
                 3, but {n} were passed in.",
                crate::query::matcher::server_display(&Bson::Document(spec.clone()))
            ),
        )
    };
    match arg {
        _ if crate::query::compare::is_number(arg) => Ok(Some(PNode::Slice(None, int(arg)))),
        Bson::Array(a) if a.len() == 2 && a.iter().all(crate::query::compare::is_number) => {
            let limit = int(&a[1]);
            if limit <= 0 {
                // Not the find() form: the aggregation `$slice` rejects a non-array first argument.
                return Err(CommandError::new(
                    28724,
                    format!(
                        "First argument to $slice must be an array, but is of type: {}",
                        crate::query::matcher::type_name(&a[0])
                    ),
                ));
            }
            Ok(Some(PNode::Slice(Some(int(&a[0])), limit)))
        }
        Bson::Array(a) if a.len() == 2 || a.len() == 3 => {
            // The aggregation expression; constant arguments are checked as the server's
            // constant folding does.
            let constant = |v: &Bson| match v {
                Bson::String(s) => !s.starts_with('$'),
                Bson::Document(_) | Bson::Array(_) => false,
                _ => true,
            };
            if !a.iter().any(|v| matches!(v, Bson::Null | Bson::Undefined)) && constant(&a[0]) {
                return Err(CommandError::new(
                    28724,
                    format!(
                        "First argument to $slice must be an array, but is of type: {}",
                        crate::query::matcher::type_name(&a[0])
                    ),
                ));
            }
            Ok(None)
        }
        Bson::Array(a) => Err(syntax_error(
            "Location31272: $slice array argument should be of form [skip, limit]",
            a.len(),
        )),
        _ => Err(syntax_error(
            "Location31273: $slice only supports numbers and [skip, limit] arrays",
            1,
        )),
    }
}

/// What applying a projection needs besides the current subdocument.
struct Env<'a> {
    root: &'a Document,
    vars: &'a Document,
    position: Option<usize>,
    /// The document's metadata, when the filter has `$text`.
    meta: Option<DocMeta>,
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

fn apply_exclusion(doc: &Document, tree: &Tree, env: &Env) -> Result<Document> {
    let mut out = Document::new();
    for (k, v) in doc {
        match tree.get(k) {
            None | Some(PNode::Include) => {
                out.insert(k.clone(), v.clone());
            }
            Some(PNode::Exclude) => {}
            Some(PNode::Sub(t)) => {
                out.insert(k.clone(), exclude_value(v, t, env)?);
            }
            Some(PNode::Slice(skip, limit)) => {
                out.insert(k.clone(), slice(v, *skip, *limit));
            }
            // Computed below (`$meta`, `$elemMatch`).
            Some(PNode::Computed(_) | PNode::ElemMatch(_)) => {}
            // Not produced in an exclusion projection.
            Some(_) => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, node) in &tree.children {
        match node {
            PNode::Computed(e) => {
                if let Some(x) = eval_computed(e, env)? {
                    out.insert(k.clone(), x);
                }
            }
            PNode::ElemMatch(m) => {
                if let Some(x) = elem_match(doc.get(k), m) {
                    out.insert(k.clone(), x);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The `$elemMatch` projection of a field: its first matching element, as a one-element array.
fn elem_match(v: Option<&Bson>, m: &Matcher) -> Option<Bson> {
    let arr @ Bson::Array(a) = v? else {
        return None;
    };
    let details = m.match_details(&doc! {"e": arr.clone()});
    if !details.matched {
        return None;
    }
    let x = a.get(details.array_index?)?;
    Some(Bson::Array(vec![x.clone()]))
}

fn exclude_value(v: &Bson, t: &Tree, env: &Env) -> Result<Bson> {
    Ok(match v {
        Bson::Document(d) => Bson::Document(apply_exclusion(d, t, env)?),
        Bson::Array(a) => Bson::Array(
            a.iter()
                .map(|e| exclude_value(e, t, env))
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
                if let Some(x) = eval_computed(e, env)? {
                    out.insert(k.clone(), x);
                }
            }
            PNode::ElemMatch(m) => {
                if let Some(x) = elem_match(doc.get(k), m) {
                    out.insert(k.clone(), x);
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
        Bson::Array(a) => match env.position {
            Some(i) => match a.get(i) {
                Some(x) => Ok(Bson::Array(vec![x.clone()])),
                None => Err(CommandError::new(
                    51247,
                    "positional operator '.$' element mismatch",
                )),
            },
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
    fn dotted_inclusion_over_arrays_and_scalars() {
        let proj = p(doc! {"_id": 0, "a.b": 1});
        let cases = [
            (doc! {"a": [[]]}, doc! {"a": [[]]}),
            (doc! {"a": []}, doc! {"a": []}),
            (doc! {"a": [1, "s", null]}, doc! {"a": []}),
            (
                doc! {"a": [{"b": 3, "c": 1}, {}]},
                doc! {"a": [{"b": 3}, {}]},
            ),
            (doc! {"a": 4}, doc! {}),
            (doc! {"a": null}, doc! {}),
            (doc! {"a": {}}, doc! {"a": {}}),
        ];
        for (input, want) in cases {
            assert_eq!(proj.apply(&input, None).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn meta_projections() {
        assert_eq!(err(doc! {"s": {"$meta": "nope"}}).code, 17308);
        // `$meta` alone is an exclusion projection; with `_id: 1`, an inclusion.
        let d = doc! {"_id": 1, "a": 2};
        assert_eq!(
            apply(doc! {"s": {"$meta": "recordId"}}, d.clone()),
            d.clone()
        );
        assert_eq!(
            apply(doc! {"s": {"$meta": "sortKey"}, "_id": 1}, d.clone()),
            doc! {"_id": 1}
        );
        let e = p(doc! {"s": {"$meta": "textScore"}})
            .apply(&d, None)
            .unwrap_err();
        assert_eq!(e.code, 40218);
        // `$meta` mixes with exclusions.
        assert!(Projection::new(&doc! {"a": 0, "s": {"$meta": "randVal"}}, &doc! {}).is_ok());
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
        assert_eq!(
            err(doc! {"a": {}}).message,
            "Invalid empty sub-projection: a"
        );
        // Sub-projections report the local field name.
        assert_eq!(
            err(doc! {"a": 0, "b": {"c": 1}}).message,
            "Cannot do inclusion on field c in exclusion projection"
        );
        let e = err(doc! {"a": 0, "b": "lit"});
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                31310,
                "Cannot use an expression b: \"lit\" in an exclusion projection"
            )
        );
        let e = err(doc! {"a": 0, "b": {"$add": [1, 2]}});
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                31252,
                "Cannot use expression other than $meta in exclusion projection"
            )
        );
        // A multi-field object is a sub-projection, whose `$` names are invalid paths.
        assert_eq!(err(doc! {"a": {"$slice": 1, "b": 1}}).code, 16410);
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
        // `$slice` with `_id: 1` and nothing else is an inclusion projection.
        assert_eq!(
            apply(doc! {"a": {"$slice": 1}, "_id": 1}, d.clone()),
            doc! {"_id": 1, "a": [1]}
        );
        // Non-arrays are unchanged.
        assert_eq!(apply(doc! {"b": {"$slice": 1}}, d.clone()), d);
        // Floats truncate; infinity saturates.
        assert_eq!(
            apply(doc! {"a": {"$slice": 1.4}, "b": 0}, d.clone()),
            doc! {"_id": 1, "a": [1]}
        );
        assert_eq!(
            apply(doc! {"a": {"$slice": [-2.5, 2]}, "b": 0}, d.clone()),
            doc! {"_id": 1, "a": [4, 5]}
        );
        assert_eq!(
            apply(doc! {"a": {"$slice": f64::INFINITY}, "b": 0}, d.clone()),
            doc! {"_id": 1, "a": [1, 2, 3, 4, 5]}
        );
        // Not the find() syntax: the server falls back to the aggregation `$slice`.
        let e = err(doc! {"a": {"$slice": [3, -2]}});
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                28724,
                "First argument to $slice must be an array, but is of type: int"
            )
        );
        assert_eq!(err(doc! {"a": {"$slice": ["x", 5]}}).code, 28724);
        let e = err(doc! {"a": {"$slice": "string"}});
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                28667,
                "Invalid $slice syntax. The given syntax { $slice: \"string\" } did not match the \
                 find() syntax because :: Location31273: $slice only supports numbers and [skip, \
                 limit] arrays :: The given syntax did not match the expression $slice syntax. :: \
                 caused by :: Expression $slice takes at least 2 arguments, and at most 3, but 1 \
                 were passed in."
            )
        );
        let e = err(doc! {"a": {"$slice": [1, 2, 3, 4]}});
        assert!(
            e.message.contains("Location31272") && e.message.ends_with("but 4 were passed in.")
        );
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
        // $elemMatch does not decide the projection's kind: it also works with exclusions.
        assert_eq!(
            apply(
                doc! {"z": 0, "s": {"$elemMatch": {"$gt": 2}}},
                doc! {"_id": 1, "s": [1, 5], "z": 1, "y": 2}
            ),
            doc! {"_id": 1, "y": 2, "s": [5]}
        );
        assert_eq!(
            err(doc! {"s": {"$elemMatch": 1}}).message,
            "elemMatch: Invalid argument, object required, but got int"
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
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                51050,
                "Projections with a positional operator require a matcher"
            )
        );
        // A query that does not traverse `a` gives no position.
        let other = Matcher::new(&doc! {"b": 2}, &doc! {}).unwrap();
        assert_eq!(proj.apply(&d, Some(&other)).unwrap_err().code, 51246);
        // The filter matched `a` as a whole, with no array position.
        let whole = Matcher::new(&doc! {"a": {"$size": 3}}, &doc! {}).unwrap();
        assert_eq!(proj.apply(&d, Some(&whole)).unwrap_err().code, 51246);
        // Through `$and`, and with the other fields.
        let f2 = Matcher::new(&doc! {"$and": [{"b": 2}, {"a": 9}]}, &doc! {}).unwrap();
        assert_eq!(
            p(doc! {"a.$": 1, "b": 1, "_id": 0})
                .apply(&d, Some(&f2))
                .unwrap(),
            doc! {"a": [9], "b": 2}
        );
        assert_eq!(err(doc! {"a.$": {"$slice": 1}}).code, 31271);
        assert_eq!(
            err(doc! {"a.$": 1, "s": {"$elemMatch": {"k": 1}}}).code,
            31255
        );
        assert_eq!(
            err(doc! {"s": {"$elemMatch": {"k": 1}}, "a.$": 1}).code,
            31256
        );
        assert_eq!(err(doc! {"a.$": 1, "b.$": 1}).code, 31276);
        assert_eq!(err(doc! {"a.$.b": 1}).code, 31394);
        assert_eq!(err(doc! {"a.$": 0}).code, 31395);
        assert_eq!(err(doc! {"a.$": "x"}).code, 31308);
        assert_eq!(err(doc! {".$": 1}).code, 5392900);
        // Nested positional key.
        let nested = Matcher::new(&doc! {"x.a": 5}, &doc! {}).unwrap();
        assert_eq!(
            p(doc! {"x": {"a.$": 1}})
                .apply(&doc! {"_id": 1, "x": {"a": [4, 5]}}, Some(&nested))
                .unwrap(),
            doc! {"_id": 1, "x": {"a": [5]}}
        );
    }
}
