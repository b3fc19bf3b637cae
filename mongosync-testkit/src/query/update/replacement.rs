//! Replacement documents: `$`-field and `_id` checks, and the server's rendering of values in
//! messages.

use super::*;

/// Replaces `doc` by `repl`, keeping `doc`'s `_id` (first) when `repl` has none; a different
/// `_id` fails as on the server.
///
/// As on the server: an identical document is a no-op before any check; then the result is
/// validated for storage (top-level `$` fields only from pipelines), then `_id` is compared.
pub(super) fn replace(doc: &Document, repl: &Document, allow_dollars: bool) -> Result<Document> {
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
pub(super) fn check_top_level_dollars(doc: &Document) -> Result<()> {
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
pub(super) fn check_new_dollar_fields(old: &Document, new: &Document) -> Result<()> {
    let mut touched = Document::new();
    for (k, v) in new {
        if old.get(k).is_none_or(|o| !binary_equal(o, v)) {
            touched.insert(k.clone(), v.clone());
        }
    }
    check_top_level_dollars(&touched)
}

pub(super) fn check_id_value(id: &Bson) -> Result<()> {
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
pub(super) fn binary_equal(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => doc_binary_equal(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| binary_equal(p, q))
        }
        _ => a == b,
    }
}

pub(super) fn doc_binary_equal(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && binary_equal(va, vb))
}

// ---------------------------------------------------------------------------------------------
// The server's value formatting, for error messages
// ---------------------------------------------------------------------------------------------

pub(super) fn fmt_elem(name: &str, v: &Bson) -> String {
    format!("{name}: {}", fmt_value(v))
}

pub(super) fn fmt_doc(d: &Document) -> String {
    if d.is_empty() {
        return "{}".to_string();
    }
    let fields: Vec<String> = d.iter().map(|(k, v)| fmt_elem(k, v)).collect();
    format!("{{ {} }}", fields.join(", "))
}

pub(super) fn fmt_value(v: &Bson) -> String {
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
