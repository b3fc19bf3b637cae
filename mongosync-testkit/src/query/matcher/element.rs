//! Element query operators: `$exists` and `$type` (type names, codes and aliases).

use super::*;

/// A `$type` selector: a BSON type code or all numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TypeSel {
    Code(i32),
    Number,
}

/// The server's `trueValue()`: false, zero, null and undefined are false.
pub(super) fn truthy_value(v: &Bson) -> bool {
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
pub(super) fn as_i64_exact(v: &Bson) -> Option<i64> {
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
pub(super) fn type_alias(name: &str) -> Option<TypeSel> {
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

pub(super) fn parse_type_one(v: &Bson) -> Result<TypeSel> {
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

pub(super) fn parse_type(path: &str, v: &Bson) -> Result<Vec<TypeSel>> {
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
