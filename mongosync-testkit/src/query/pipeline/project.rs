//! Aggregation projections: `$project` (inclusion, exclusion, computed fields), `$addFields` /
//! `$set` and `$unset`, as trees of nested field specifications.

use bson::{Bson, Document};

use crate::error::{CommandError, Result};
use crate::query::expr::{self, DocMeta};

#[derive(Debug, Clone)]
pub(super) enum Node {
    Include,
    Exclude,
    Expr(Bson),
    Sub(Vec<(String, Node)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Inclusion,
    Exclusion,
    /// `$addFields`/`$set`: every field is computed, the rest of the document is kept.
    AddFields,
}

#[derive(Debug, Clone)]
pub(super) struct Projection {
    pub(super) mode: Mode,
    fields: Vec<(String, Node)>,
}

fn collision(path: &str) -> CommandError {
    CommandError::new(31250, format!("Path collision at {path}"))
}

fn insert_path(
    fields: &mut Vec<(String, Node)>,
    parts: &[&str],
    node: Node,
    full: &str,
) -> Result<()> {
    let Some((first, rest)) = parts.split_first() else {
        return Ok(());
    };
    let existing = fields.iter_mut().find(|(k, _)| k == first);
    if rest.is_empty() {
        if existing.is_some() {
            return Err(collision(full));
        }
        fields.push((first.to_string(), node));
        return Ok(());
    }
    match existing {
        Some((_, Node::Sub(children))) => insert_path(children, rest, node, full),
        Some(_) => Err(collision(full)),
        None => {
            let mut children = Vec::new();
            insert_path(&mut children, rest, node, full)?;
            fields.push((first.to_string(), Node::Sub(children)));
            Ok(())
        }
    }
}

fn split_path<'a>(stage: &str, path: &'a str) -> Result<Vec<&'a str>> {
    if path.is_empty() {
        return Err(CommandError::new(
            40352,
            format!(
                "Invalid {stage} :: caused by :: FieldPath cannot be constructed with empty string"
            ),
        ));
    }
    if path.starts_with('$') {
        return Err(CommandError::new(
            16410,
            format!(
                "Invalid {stage} :: caused by :: FieldPath field names may not start with '$'. Consider using $getField or $setField."
            ),
        ));
    }
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(CommandError::new(
            15998,
            format!(
                "Invalid {stage} :: caused by :: FieldPath field names may not be empty strings."
            ),
        ));
    }
    Ok(parts)
}

fn is_expression_object(d: &Document) -> bool {
    d.keys().next().is_some_and(|k| k.starts_with('$'))
}

impl Projection {
    /// Parses a `$project` specification.
    pub(super) fn parse_project(spec: &Document) -> Result<Projection> {
        if spec.is_empty() {
            return Err(CommandError::new(
                51272,
                "Invalid $project :: caused by :: projection specification must have at least one field",
            ));
        }
        let mut mode: Option<Mode> = None;
        let mut fields = Vec::new();
        let mut id_spec: Option<bool> = None;
        Self::parse_level(spec, "", &mut mode, &mut fields, &mut id_spec)?;
        let mode = mode.unwrap_or(match id_spec {
            // `{_id: 0}` alone is an exclusion; `{_id: 1}` alone an inclusion.
            Some(false) => Mode::Exclusion,
            _ => Mode::Inclusion,
        });
        if mode == Mode::Inclusion && id_spec.is_none() {
            fields.insert(0, ("_id".to_string(), Node::Include));
        }
        Ok(Projection { mode, fields })
    }

    fn parse_level(
        spec: &Document,
        prefix: &str,
        mode: &mut Option<Mode>,
        fields: &mut Vec<(String, Node)>,
        id_spec: &mut Option<bool>,
    ) -> Result<()> {
        for (key, value) in spec {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let parts = split_path("$project", &path)?;
            // Only a top-level `_id` may be excluded in an inclusion and included in an
            // exclusion.
            let is_id = prefix.is_empty() && key == "_id";
            let node = match value {
                Bson::Document(d) if d.len() == 1 && is_expression_object(d) => {
                    let name = d.keys().next().map(String::as_str).unwrap_or("");
                    if !expr::is_operator_name(name) {
                        return Err(CommandError::new(
                            31325,
                            format!("Invalid $project :: caused by :: Unknown expression {name}"),
                        ));
                    }
                    expr::validate(value)?;
                    if *mode == Some(Mode::Exclusion) {
                        return Err(CommandError::new(
                            31252,
                            "Invalid $project :: caused by :: Cannot use expression other than $meta in exclusion projection",
                        ));
                    }
                    *mode = Some(Mode::Inclusion);
                    if is_id {
                        *id_spec = Some(true);
                    }
                    Node::Expr(value.clone())
                }
                Bson::Document(d) if d.is_empty() => {
                    return Err(CommandError::new(
                        51270,
                        format!(
                            "Invalid $project :: caused by :: An empty sub-projection is not a valid value. Found empty object at path {path}"
                        ),
                    ));
                }
                Bson::Document(d) => {
                    if is_id {
                        *id_spec = Some(true);
                    }
                    Self::parse_level(d, &path, mode, fields, id_spec)?;
                    continue;
                }
                Bson::Boolean(_)
                | Bson::Int32(_)
                | Bson::Int64(_)
                | Bson::Double(_)
                | Bson::Decimal128(_) => {
                    let include = expr::truthy(Some(value));
                    if is_id {
                        *id_spec = Some(include);
                    } else if include {
                        if *mode == Some(Mode::Exclusion) {
                            return Err(CommandError::new(
                                31253,
                                format!(
                                    "Invalid $project :: caused by :: Cannot do inclusion on field {key} in exclusion projection"
                                ),
                            ));
                        }
                        *mode = Some(Mode::Inclusion);
                    } else {
                        if *mode == Some(Mode::Inclusion) {
                            return Err(CommandError::new(
                                31254,
                                format!(
                                    "Invalid $project :: caused by :: Cannot do exclusion on field {key} in inclusion projection"
                                ),
                            ));
                        }
                        *mode = Some(Mode::Exclusion);
                    }
                    if include {
                        Node::Include
                    } else {
                        Node::Exclude
                    }
                }
                other => {
                    expr::validate(other)?;
                    if *mode == Some(Mode::Exclusion) {
                        return Err(CommandError::new(
                            31310,
                            format!(
                                "Invalid $project :: caused by :: Cannot use an expression {key}: {other} in an exclusion projection"
                            ),
                        ));
                    }
                    *mode = Some(Mode::Inclusion);
                    if is_id {
                        *id_spec = Some(true);
                    }
                    Node::Expr(other.clone())
                }
            };
            if prefix.is_empty() && key.starts_with("_id.") && id_spec.is_none() {
                // `{"_id.x": ...}` counts as specifying _id: it is not added by default.
                *id_spec = Some(true);
            }
            insert_path(fields, &parts, node, &path)?;
        }
        Ok(())
    }

    /// Parses `$addFields`/`$set` (`stage` is the name used in errors).
    pub(super) fn parse_add_fields(spec: &Document, stage: &str) -> Result<Projection> {
        let mut fields = Vec::new();
        Self::parse_add_level(spec, "", stage, &mut fields)?;
        Ok(Projection {
            mode: Mode::AddFields,
            fields,
        })
    }

    fn parse_add_level(
        spec: &Document,
        prefix: &str,
        stage: &str,
        fields: &mut Vec<(String, Node)>,
    ) -> Result<()> {
        for (key, value) in spec {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let parts = split_path(stage, &path)?;
            match value {
                Bson::Document(d) if !d.is_empty() && !is_expression_object(d) => {
                    Self::parse_add_level(d, &path, stage, fields)?;
                }
                other => {
                    expr::validate(other)?;
                    insert_path(fields, &parts, Node::Expr(other.clone()), &path)?;
                }
            }
        }
        Ok(())
    }

    /// Parses `$unset`: a field path or an array of them.
    pub(super) fn parse_unset(spec: &Bson) -> Result<Projection> {
        let paths: Vec<&str> = match spec {
            Bson::String(s) => vec![s.as_str()],
            Bson::Array(items) => {
                if items.is_empty() {
                    return Err(CommandError::new(
                        31119,
                        "$unset specification must be a string or an array with at least one field",
                    ));
                }
                let mut out = Vec::new();
                for i in items {
                    match i {
                        Bson::String(s) => out.push(s.as_str()),
                        _ => {
                            return Err(CommandError::new(
                                31120,
                                "$unset specification must be a string or an array containing only string values",
                            ));
                        }
                    }
                }
                out
            }
            _ => {
                return Err(CommandError::new(
                    31002,
                    "$unset specification must be a string or an array",
                ));
            }
        };
        let mut fields = Vec::new();
        for p in paths {
            let parts = split_path("$unset", p)?;
            insert_path(&mut fields, &parts, Node::Exclude, p)?;
        }
        Ok(Projection {
            mode: Mode::Exclusion,
            fields,
        })
    }

    /// Applies the projection to `doc`; `vars` are the pipeline's variables, `meta` the
    /// document's metadata (which the output keeps, as the server's projections do).
    pub(super) fn apply(
        &self,
        doc: &Document,
        vars: &Document,
        meta: Option<&DocMeta>,
    ) -> Result<Document> {
        match self.mode {
            Mode::Exclusion => Ok(exclude(doc, &self.fields)),
            Mode::Inclusion => {
                let mut out = include(doc, &self.fields);
                compute(&mut out, &self.fields, doc, vars, meta)?;
                Ok(out)
            }
            Mode::AddFields => {
                let mut out = doc.clone();
                compute(&mut out, &self.fields, doc, vars, meta)?;
                Ok(out)
            }
        }
    }
}

fn find<'a>(fields: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    fields.iter().find(|(k, _)| k == key).map(|(_, n)| n)
}

fn exclude(doc: &Document, fields: &[(String, Node)]) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        match find(fields, k) {
            Some(Node::Exclude) => {}
            Some(Node::Sub(children)) => {
                out.insert(k.clone(), exclude_value(v, children));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn exclude_value(v: &Bson, children: &[(String, Node)]) -> Bson {
    match v {
        Bson::Document(d) => Bson::Document(exclude(d, children)),
        Bson::Array(items) => {
            Bson::Array(items.iter().map(|i| exclude_value(i, children)).collect())
        }
        other => other.clone(),
    }
}

/// The inclusion pass: included fields and sub-projections, in the input document's order.
fn include(doc: &Document, fields: &[(String, Node)]) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        match find(fields, k) {
            Some(Node::Include) => {
                out.insert(k.clone(), v.clone());
            }
            Some(Node::Sub(children)) => {
                if let Some(projected) = include_value(v, children) {
                    out.insert(k.clone(), projected);
                }
            }
            _ => {}
        }
    }
    out
}

fn include_value(v: &Bson, children: &[(String, Node)]) -> Option<Bson> {
    match v {
        Bson::Document(d) => Some(Bson::Document(include(d, children))),
        // Scalars inside arrays are dropped by a nested inclusion, as on the server.
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter_map(|i| include_value(i, children))
                .collect(),
        )),
        _ => None,
    }
}

fn has_computed(fields: &[(String, Node)]) -> bool {
    fields.iter().any(|(_, n)| match n {
        Node::Expr(_) => true,
        Node::Sub(c) => has_computed(c),
        _ => false,
    })
}

/// The computed-field pass, in specification order.
fn compute(
    out: &mut Document,
    fields: &[(String, Node)],
    root: &Document,
    vars: &Document,
    meta: Option<&DocMeta>,
) -> Result<()> {
    for (k, node) in fields {
        match node {
            Node::Expr(e) => match expr::evaluate_with_meta(e, root, vars, meta)? {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => {
                    out.remove(k);
                }
            },
            Node::Sub(children) if has_computed(children) => {
                let value = compute_value(out.get(k), children, root, vars, meta)?;
                out.insert(k.clone(), value);
            }
            _ => {}
        }
    }
    Ok(())
}

fn compute_value(
    v: Option<&Bson>,
    children: &[(String, Node)],
    root: &Document,
    vars: &Document,
    meta: Option<&DocMeta>,
) -> Result<Bson> {
    match v {
        Some(Bson::Document(d)) => {
            let mut d = d.clone();
            compute(&mut d, children, root, vars, meta)?;
            Ok(Bson::Document(d))
        }
        Some(Bson::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(compute_value(Some(i), children, root, vars, meta)?);
            }
            Ok(Bson::Array(out))
        }
        // A scalar or missing value is replaced by a document of the computed fields.
        _ => {
            let mut d = Document::new();
            compute(&mut d, children, root, vars, meta)?;
            Ok(Bson::Document(d))
        }
    }
}
