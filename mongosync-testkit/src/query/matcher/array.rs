//! Array query operators: `$size`, `$elemMatch`, `$all`.

use super::*;

pub(super) fn parse_size(v: &Bson) -> Result<i64> {
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

pub(super) fn parse_elem_match(v: &Bson) -> Result<Pred> {
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

pub(super) fn parse_all(v: &Bson) -> Result<Vec<Pred>> {
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
