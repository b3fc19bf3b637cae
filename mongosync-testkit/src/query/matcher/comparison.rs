//! Comparison query operators: `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// The right-hand side of a comparison operator.
pub(super) fn comparand(v: &Bson, path: &str, range: bool) -> Result<Bson> {
    match v {
        Bson::Undefined => Err(CommandError::bad_value("cannot compare to undefined")),
        Bson::RegularExpression(_) if range => Err(CommandError::bad_value(format!(
            "Can't have RegEx as arg to predicate over field '{path}'."
        ))),
        _ => Ok(v.clone()),
    }
}

pub(super) fn parse_in(v: &Bson, name: &str) -> Result<Pred> {
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

/// A comparison operator on one value, with the server's type bracketing.
pub(super) fn cmp_matches(
    op: CmpOp,
    v: Option<&Bson>,
    rhs: &Bson,
    coll: Option<&Collation>,
) -> bool {
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

pub(super) fn is_nan(v: &Bson) -> bool {
    match v {
        Bson::Double(d) => d.is_nan(),
        Bson::Decimal128(d) => matches!(
            crate::query::compare::decode_decimal(d),
            crate::query::compare::Dec::NaN
        ),
        _ => false,
    }
}
