//! Small helpers shared by the command layer: BSON type names and shell-style printing as the
//! server uses them in messages.

use bson::Bson;

/// The server's name of a value's type (`$type`, error messages).
pub fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::Undefined => "undefined",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::DbPointer(_) => "dbPointer",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::Symbol(_) => "symbol",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Timestamp(_) => "timestamp",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
    }
}

/// A value printed the way the server prints it in messages (`{ a: 1, b: "x" }`).
pub fn shell_repr(v: &Bson) -> String {
    match v {
        Bson::String(s) => format!("\"{s}\""),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Double(d) => {
            if d.fract() == 0.0 && d.is_finite() {
                format!("{d:.1}")
            } else {
                d.to_string()
            }
        }
        Bson::Boolean(b) => b.to_string(),
        Bson::Null => "null".into(),
        Bson::ObjectId(o) => format!("ObjectId('{o}')"),
        Bson::Document(d) => {
            if d.is_empty() {
                "{}".into()
            } else {
                let inner: Vec<String> = d
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", shell_repr(v)))
                    .collect();
                format!("{{ {} }}", inner.join(", "))
            }
        }
        Bson::Array(a) => {
            let inner: Vec<String> = a.iter().map(shell_repr).collect();
            format!("[ {} ]", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// A numeric value as f64, for options given as any number type.
pub fn as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(*i as f64),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

/// Whether a value is a number of any type.
pub fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}
