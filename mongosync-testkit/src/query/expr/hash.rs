//! `$toHashedIndexKey`: the server's `BSONElementHasher::hash64` (`db/hasher.cpp`), the hash of
//! hashed indexes and hashed shard keys. MD5 over the seed (int32 0), then per element its
//! canonical type (int32), its field name (inside documents) and its value: numbers squashed to
//! an int64 (so 1, 1.0, NumberLong(1) and 1.9 hash alike), documents and arrays element by
//! element up to their end marker. The result is the digest's first 8 bytes, little-endian.

use bson::{Bson, Document};
use md5::{Digest, Md5};

use super::*;
use crate::query::compare::{Dec, decode_decimal};

/// The seed hashed indexes use (`BSONElementHasher::DEFAULT_HASH_SEED`).
const DEFAULT_SEED: i32 = 0;

/// The server's hash of one value (as a top-level element, no field name).
pub(crate) fn hash64(value: &Bson) -> i64 {
    let mut h = Md5::new();
    h.update(DEFAULT_SEED.to_le_bytes());
    element(&mut h, None, value);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

pub(super) fn op_to_hashed_index_key(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    // Missing hashes as null, as an index key of a missing field does.
    let v = eval(arg, scope)?.unwrap_or(Bson::Null);
    Ok(Some(Bson::Int64(hash64(&v))))
}

/// `canonicalizeBSONType`: the sort-order class of a type.
fn canonical_type(v: &Bson) -> i32 {
    match v {
        Bson::MinKey => -1,
        Bson::MaxKey => 127,
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
    }
}

fn element(h: &mut Md5, name: Option<&str>, v: &Bson) {
    h.update(canonical_type(v).to_le_bytes());
    if let Some(name) = name {
        h.update(name.as_bytes());
        h.update([0u8]);
    }
    match v {
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => {
            h.update(number_for_hash(v).to_le_bytes());
        }
        Bson::Document(d) => fields(h, d.iter().map(|(k, v)| (k.as_str(), v))),
        Bson::Array(a) => {
            let names: Vec<String> = (0..a.len()).map(|i| i.to_string()).collect();
            fields(h, names.iter().map(String::as_str).zip(a.iter()));
        }
        Bson::JavaScriptCodeWithScope(c) => {
            // The code string with its terminating NUL, then the scope's elements.
            h.update(c.code.as_bytes());
            h.update([0u8]);
            fields(h, c.scope.iter().map(|(k, v)| (k.as_str(), v)));
        }
        other => h.update(value_bytes(other)),
    }
}

/// Each element with its name, then the end-of-object marker (canonical type 0, no name, no
/// value).
fn fields<'a>(h: &mut Md5, items: impl Iterator<Item = (&'a str, &'a Bson)>) {
    for (k, v) in items {
        element(h, Some(k), v);
    }
    h.update(0i32.to_le_bytes());
}

/// The value part of a scalar's BSON encoding, as the server's `e.value()`/`e.valuesize()`:
/// encoded inside `{"": v}` and cut out after the type byte and the empty name.
fn value_bytes(v: &Bson) -> Vec<u8> {
    let mut d = Document::new();
    d.insert("", v.clone());
    let mut bytes = Vec::new();
    if d.to_writer(&mut bytes).is_err() || bytes.len() < 7 {
        return Vec::new();
    }
    // int32 length, type byte, "" (one NUL), value, document NUL.
    bytes[6..bytes.len() - 1].to_vec()
}

/// `BSONElement::safeNumberLongForHash`: NaN is 0, out-of-range values clamp, doubles truncate
/// toward zero, decimals round half to even; a double of exactly 2^63 is -2^63 (the historic
/// overflow kept for compatibility).
fn number_for_hash(v: &Bson) -> i64 {
    match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        Bson::Double(d) if *d == 9_223_372_036_854_775_808.0 => i64::MIN,
        // `as` saturates and maps NaN to 0, as safeNumberLong does.
        Bson::Double(d) => *d as i64,
        Bson::Decimal128(d) => match decode_decimal(d) {
            Dec::NaN => 0,
            Dec::Inf { neg } => {
                if neg {
                    i64::MIN
                } else {
                    i64::MAX
                }
            }
            Dec::Finite { neg, coef, exp } => decimal_to_i64(neg, coef, exp),
        },
        _ => 0,
    }
}

/// `coef * 10^exp` rounded half to even and clamped to int64.
fn decimal_to_i64(neg: bool, coef: u128, exp: i32) -> i64 {
    let magnitude: Option<u128> = if coef == 0 {
        Some(0)
    } else if exp >= 0 {
        10u128
            .checked_pow(exp as u32)
            .and_then(|p| coef.checked_mul(p))
    } else if -exp > 38 {
        // Below 10^34 / 10^39: rounds to 0.
        Some(0)
    } else {
        let p = 10u128.pow((-exp) as u32);
        let (q, r) = (coef / p, coef % p);
        let up = match (r * 2).cmp(&p) {
            Ordering::Greater => true,
            Ordering::Equal => q % 2 == 1,
            Ordering::Less => false,
        };
        Some(q + u128::from(up))
    };
    match magnitude {
        Some(m) if neg && m <= 1u128 << 63 => (m as i128).wrapping_neg() as i64,
        Some(m) if !neg && m <= i64::MAX as u128 => m as i64,
        _ => {
            if neg {
                i64::MIN
            } else {
                i64::MAX
            }
        }
    }
}
