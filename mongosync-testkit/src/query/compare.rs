//! BSON comparison order as the server defines it (MinKey < null < numbers < strings < objects
//! < arrays < binary < ObjectId < booleans < dates < timestamps < regex < MaxKey), with
//! numbers of every type compared by value.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use bson::{Bson, Decimal128, Document};

/// Comparison under a collation lives with the collation; re-exported for discoverability.
pub use crate::query::collation::compare_with;

/// The rank of a value's type in the server's comparison order (numbers share one rank).
///
/// These are the server's `canonicalizeBSONType` values shifted by one so they fit a `u8`
/// (MinKey is -1 on the server). Undefined ranks below null, as on the server.
pub fn type_rank(value: &Bson) -> u8 {
    match value {
        Bson::MinKey => 0,
        Bson::Undefined => 1,
        Bson::Null => 6,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 11,
        Bson::String(_) | Bson::Symbol(_) => 16,
        Bson::Document(_) => 21,
        Bson::Array(_) => 26,
        Bson::Binary(_) => 31,
        Bson::ObjectId(_) => 36,
        Bson::Boolean(_) => 41,
        Bson::DateTime(_) => 46,
        Bson::Timestamp(_) => 48,
        Bson::RegularExpression(_) => 51,
        Bson::DbPointer(_) => 56,
        Bson::JavaScriptCode(_) => 61,
        Bson::JavaScriptCodeWithScope(_) => 66,
        Bson::MaxKey => 128,
    }
}

/// Whether a value is one of the four numeric types.
pub fn is_number(value: &Bson) -> bool {
    matches!(
        value,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_)
    )
}

/// Compares two values as the server does (`$sort`, range operators, index order).
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .as_bytes()
            .cmp(y.code.as_bytes())
            .then_with(|| compare_documents(&x.scope, &y.scope)),
        (Bson::Document(x), Bson::Document(y)) => compare_documents(x, y),
        (Bson::Array(x), Bson::Array(y)) => compare_arrays(x, y),
        // Length first, then subtype, then bytes (the server memcmp's subtype+bytes).
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .as_str()
            .as_bytes()
            .cmp(y.pattern.as_str().as_bytes())
            .then_with(|| {
                x.options
                    .as_str()
                    .as_bytes()
                    .cmp(y.options.as_str().as_bytes())
            }),
        (Bson::DbPointer(_), Bson::DbPointer(_)) => {
            let (x, y) = (dbpointer_value_bytes(a), dbpointer_value_bytes(b));
            x.len().cmp(&y.len()).then_with(|| x.cmp(&y))
        }
        _ if is_number(a) => compare_numbers(a, b),
        // MinKey, MaxKey, null, undefined: one value each.
        _ => Ordering::Equal,
    }
}

/// Whether two values are equal as the server's `$eq` sees them (1 == 1.0 == Int64(1)).
pub fn values_equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}

/// Compares two documents as the server's `BSONObj::woCompare` does: element by element (type
/// rank, then field name, then value), then the shorter document first.
pub fn compare_documents(a: &Document, b: &Document) -> Ordering {
    let mut ia = a.iter();
    let mut ib = b.iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = type_rank(va)
                    .cmp(&type_rank(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Compares two arrays element by element, then by length.
pub fn compare_arrays(a: &[Bson], b: &[Bson]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let o = compare(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// The raw value bytes of a DBPointer (length-prefixed namespace, then the ObjectId), which
/// the bson crate does not expose directly.
fn dbpointer_value_bytes(v: &Bson) -> Vec<u8> {
    let mut d = Document::new();
    d.insert("", v.clone());
    match d.to_vec() {
        // doc length (4) + type (1) + empty key NUL (1) ... value ... trailing NUL (1)
        Ok(bytes) if bytes.len() > 7 => bytes[6..bytes.len() - 1].to_vec(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// A decoded Decimal128.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Dec {
    NaN,
    Inf { neg: bool },
    Finite { neg: bool, coef: u128, exp: i32 },
}

/// Decodes the BID encoding of a Decimal128.
pub(crate) fn decode_decimal(d: &Decimal128) -> Dec {
    let bits = u128::from_le_bytes(d.bytes());
    let neg = bits >> 127 == 1;
    let comb = (bits >> 122) & 0x1f;
    if comb == 0x1f {
        return Dec::NaN;
    }
    if comb == 0x1e {
        return Dec::Inf { neg };
    }
    let (exp_bits, coef) = if (bits >> 125) & 0b11 == 0b11 {
        // The "11" form always exceeds the maximum coefficient: non-canonical, i.e. zero.
        (((bits >> 111) & 0x3fff) as i32, 0u128)
    } else {
        (((bits >> 113) & 0x3fff) as i32, bits & ((1u128 << 113) - 1))
    };
    let coef = if coef > 9_999_999_999_999_999_999_999_999_999_999_999u128 {
        0
    } else {
        coef
    };
    Dec::Finite {
        neg,
        coef,
        exp: exp_bits - 6176,
    }
}

/// The closest double to a Decimal128 (correctly rounded via decimal string parsing).
pub(crate) fn decimal_to_f64(d: &Decimal128) -> f64 {
    match decode_decimal(d) {
        Dec::NaN => f64::NAN,
        Dec::Inf { neg } => {
            if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        Dec::Finite { neg, coef, exp } => {
            let v: f64 = format!("{coef}e{exp}").parse().unwrap_or(0.0);
            if neg { -v } else { v }
        }
    }
}

/// A number's value as f64 (lossy for large int64 and most decimals), `None` for non-numbers.
pub fn number_as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(*i as f64),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        Bson::Decimal128(d) => Some(decimal_to_f64(d)),
        _ => None,
    }
}

/// Exact comparison of an integer with a double (no precision loss beyond 2^53).
fn cmp_i64_f64(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    // 2^63 as f64 is exact.
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO63 {
        return Ordering::Less;
    }
    if f < -TWO63 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    let ti = t as i64; // exact: |t| < 2^63 (or t == -2^63)
    match i.cmp(&ti) {
        Ordering::Equal => {
            let frac = f - t;
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// An exact numeric value: sign and `coef * 2^p2 * 10^p10`.
#[derive(Debug, Clone, Copy)]
enum Exact {
    NaN,
    NegInf,
    Finite {
        neg: bool,
        coef: u128,
        p2: i32,
        p10: i32,
    },
    PosInf,
}

fn exact_of(v: &Bson) -> Exact {
    match v {
        Bson::Int32(i) => exact_int(*i as i64),
        Bson::Int64(i) => exact_int(*i),
        Bson::Double(f) => exact_f64(*f),
        Bson::Decimal128(d) => match decode_decimal(d) {
            Dec::NaN => Exact::NaN,
            Dec::Inf { neg: true } => Exact::NegInf,
            Dec::Inf { neg: false } => Exact::PosInf,
            Dec::Finite { neg, coef, exp } => Exact::Finite {
                neg,
                coef,
                p2: 0,
                p10: exp,
            },
        },
        _ => Exact::NaN,
    }
}

fn exact_int(i: i64) -> Exact {
    Exact::Finite {
        neg: i < 0,
        coef: i.unsigned_abs() as u128,
        p2: 0,
        p10: 0,
    }
}

fn exact_f64(f: f64) -> Exact {
    if f.is_nan() {
        return Exact::NaN;
    }
    if f.is_infinite() {
        return if f < 0.0 {
            Exact::NegInf
        } else {
            Exact::PosInf
        };
    }
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    Exact::Finite {
        neg,
        coef: mant as u128,
        p2: e,
        p10: 0,
    }
}

/// Minimal unsigned big integer (little-endian u32 limbs), enough for exact comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BigUint(Vec<u32>);

impl BigUint {
    fn from_u128(mut v: u128) -> Self {
        let mut limbs = Vec::new();
        while v > 0 {
            limbs.push(v as u32);
            v >>= 32;
        }
        BigUint(limbs)
    }
    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for l in self.0.iter_mut() {
            let p = (*l as u64) * (m as u64) + carry;
            *l = p as u32;
            carry = p >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }
    fn mul_pow10(&mut self, mut k: u32) {
        while k >= 9 {
            self.mul_small(1_000_000_000);
            k -= 9;
        }
        if k > 0 {
            self.mul_small(10u32.pow(k));
        }
    }
    fn shl(&mut self, bits: u32) {
        if self.0.is_empty() {
            return;
        }
        let words = (bits / 32) as usize;
        let rem = bits % 32;
        if rem > 0 {
            let mut carry = 0u32;
            for l in self.0.iter_mut() {
                let nl = (*l << rem) | carry;
                carry = *l >> (32 - rem);
                *l = nl;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        if words > 0 {
            let mut v = vec![0u32; words];
            v.extend_from_slice(&self.0);
            self.0 = v;
        }
    }
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

/// Compares `ca * 2^a2 * 10^a10` with `cb * 2^b2 * 10^b10` (both nonzero) exactly.
fn cmp_magnitudes(ca: u128, a2: i32, a10: i32, cb: u128, b2: i32, b10: i32) -> Ordering {
    // A cheap decision on orders of magnitude first; exact arithmetic only when close.
    let la = (ca as f64).log10() + a2 as f64 * std::f64::consts::LOG10_2 + a10 as f64;
    let lb = (cb as f64).log10() + b2 as f64 * std::f64::consts::LOG10_2 + b10 as f64;
    if la - lb > 2.0 {
        return Ordering::Greater;
    }
    if lb - la > 2.0 {
        return Ordering::Less;
    }
    let m2 = a2.min(b2);
    let m10 = a10.min(b10);
    let mut x = BigUint::from_u128(ca);
    x.mul_pow10((a10 - m10) as u32);
    x.shl((a2 - m2) as u32);
    let mut y = BigUint::from_u128(cb);
    y.mul_pow10((b10 - m10) as u32);
    y.shl((b2 - m2) as u32);
    x.cmp(&y)
}

fn cmp_exact(a: Exact, b: Exact) -> Ordering {
    fn class(e: &Exact) -> i8 {
        match e {
            Exact::NaN => 0,
            Exact::NegInf => 1,
            Exact::Finite { .. } => 2,
            Exact::PosInf => 3,
        }
    }
    match (a, b) {
        (
            Exact::Finite {
                neg: na,
                coef: ca,
                p2: a2,
                p10: a10,
            },
            Exact::Finite {
                neg: nb,
                coef: cb,
                p2: b2,
                p10: b10,
            },
        ) => {
            // Sign: -1, 0 or 1 (zero has no sign: -0 == 0).
            let sa = if ca == 0 {
                0
            } else if na {
                -1
            } else {
                1
            };
            let sb = if cb == 0 {
                0
            } else if nb {
                -1
            } else {
                1
            };
            if sa != sb || sa == 0 {
                return sa.cmp(&sb);
            }
            let m = cmp_magnitudes(ca, a2, a10, cb, b2, b10);
            if sa < 0 { m.reverse() } else { m }
        }
        _ => class(&a).cmp(&class(&b)),
    }
}

/// Compares two numeric values (any of int32, int64, double, decimal) exactly by value; NaN
/// equals NaN and sorts below every other number.
pub fn compare_numbers(a: &Bson, b: &Bson) -> Ordering {
    let int = |v: &Bson| match v {
        Bson::Int32(i) => Some(*i as i64),
        Bson::Int64(i) => Some(*i),
        _ => None,
    };
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => cmp_f64(*x, *y),
        (Bson::Double(x), _) if int(b).is_some() => cmp_i64_f64(int(b).unwrap_or(0), *x).reverse(),
        (_, Bson::Double(y)) if int(a).is_some() => cmp_i64_f64(int(a).unwrap_or(0), *y),
        _ => match (int(a), int(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => cmp_exact(exact_of(a), exact_of(b)),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// OrdBson

/// A BSON value ordered, compared and hashed as the server compares values, usable as a
/// `BTreeMap`/`HashMap` key (e.g. an `_id` index): `OrdBson(1) == OrdBson(1.0)`.
#[derive(Debug, Clone)]
pub struct OrdBson(pub Bson);

impl PartialEq for OrdBson {
    fn eq(&self, other: &Self) -> bool {
        compare(&self.0, &other.0) == Ordering::Equal
    }
}
impl Eq for OrdBson {}
impl PartialOrd for OrdBson {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdBson {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}
impl Hash for OrdBson {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_value(&self.0, state);
    }
}
impl From<Bson> for OrdBson {
    fn from(v: Bson) -> Self {
        OrdBson(v)
    }
}

/// Hashes consistently with [`compare`]: values that compare equal hash equally.
fn hash_value<H: Hasher>(v: &Bson, state: &mut H) {
    type_rank(v).hash(state);
    match v {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            // Equal numbers of any type round to the same double.
            let f = number_as_f64(v).unwrap_or(f64::NAN);
            let bits = if f.is_nan() {
                u64::MAX
            } else if f == 0.0 {
                0
            } else {
                f.to_bits()
            };
            bits.hash(state);
        }
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => s.hash(state),
        Bson::Document(d) => hash_document(d, state),
        Bson::Array(a) => {
            a.len().hash(state);
            for x in a {
                hash_value(x, state);
            }
        }
        Bson::Binary(b) => {
            u8::from(b.subtype).hash(state);
            b.bytes.hash(state);
        }
        Bson::ObjectId(o) => o.bytes().hash(state),
        Bson::Boolean(b) => b.hash(state),
        Bson::DateTime(d) => d.timestamp_millis().hash(state),
        Bson::Timestamp(t) => (t.time, t.increment).hash(state),
        Bson::RegularExpression(r) => {
            r.pattern.as_str().hash(state);
            r.options.as_str().hash(state);
        }
        Bson::JavaScriptCodeWithScope(c) => {
            c.code.hash(state);
            hash_document(&c.scope, state);
        }
        Bson::DbPointer(_) => dbpointer_value_bytes(v).hash(state),
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => {}
    }
}

fn hash_document<H: Hasher>(d: &Document, state: &mut H) {
    d.len().hash(state);
    for (k, x) in d {
        k.hash(state);
        hash_value(x, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Binary, DateTime, Timestamp, doc, oid::ObjectId, spec::BinarySubtype};
    use std::collections::BTreeMap;
    use std::str::FromStr;

    fn dec(s: &str) -> Bson {
        Bson::Decimal128(Decimal128::from_str(s).unwrap())
    }

    fn lt(a: Bson, b: Bson) {
        assert_eq!(compare(&a, &b), Ordering::Less, "{a:?} < {b:?}");
        assert_eq!(compare(&b, &a), Ordering::Greater, "{b:?} > {a:?}");
    }

    fn eq(a: Bson, b: Bson) {
        assert_eq!(compare(&a, &b), Ordering::Equal, "{a:?} == {b:?}");
        assert_eq!(compare(&b, &a), Ordering::Equal, "{b:?} == {a:?}");
    }

    #[test]
    fn type_order_across_brackets() {
        let ordered = vec![
            Bson::MinKey,
            Bson::Undefined,
            Bson::Null,
            Bson::Double(f64::NAN),
            Bson::Int32(-5),
            dec("1e6000"),
            Bson::String("".into()),
            Bson::Document(doc! {}),
            Bson::Array(vec![]),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![],
            }),
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(DateTime::from_millis(-1)),
            Bson::DateTime(DateTime::from_millis(0)),
            Bson::Timestamp(Timestamp {
                time: 0,
                increment: 0,
            }),
            Bson::RegularExpression(bson::Regex {
                pattern: "a".try_into().unwrap(),
                options: "".try_into().unwrap(),
            }),
            Bson::JavaScriptCode("x".into()),
            Bson::MaxKey,
        ];
        for w in ordered.windows(2) {
            lt(w[0].clone(), w[1].clone());
        }
    }

    #[test]
    fn numbers_compare_by_value_across_types() {
        eq(Bson::Int32(1), Bson::Double(1.0));
        eq(Bson::Int64(1), dec("1.000"));
        eq(Bson::Double(0.0), Bson::Double(-0.0));
        eq(dec("-0"), Bson::Int32(0));
        lt(Bson::Int32(1), Bson::Double(1.5));
        lt(Bson::Double(-1.5), Bson::Int64(-1));
        // 2^53 + 1 is not representable as a double: int64 vs double must stay exact.
        lt(
            Bson::Double(9007199254740992.0),
            Bson::Int64(9007199254740993),
        );
        eq(
            Bson::Double(9007199254740992.0),
            Bson::Int64(9007199254740992),
        );
        lt(Bson::Int64(i64::MAX), Bson::Double(9223372036854775808.0));
        eq(Bson::Int64(i64::MIN), Bson::Double(-9223372036854775808.0));
        // The double 0.1 is slightly above the decimal 0.1.
        lt(dec("0.1"), Bson::Double(0.1));
        eq(dec("0.5"), Bson::Double(0.5));
        lt(
            dec("9223372036854775807.5"),
            Bson::Double(9223372036854775808.0),
        );
        lt(Bson::Int64(i64::MAX), dec("9223372036854775807.5"));
        lt(dec("-Infinity"), Bson::Double(f64::MIN));
        eq(dec("Infinity"), Bson::Double(f64::INFINITY));
        lt(dec("1E-6176"), Bson::Double(5e-324));
        lt(dec("1E+6000"), Bson::Double(f64::INFINITY));
        lt(Bson::Double(f64::MAX), dec("1E+6000"));
        lt(dec("1.5E+3"), Bson::Int32(1501));
        eq(dec("1.5E+3"), Bson::Int32(1500));
    }

    #[test]
    fn nan_is_below_all_numbers_and_equals_nan() {
        eq(Bson::Double(f64::NAN), dec("NaN"));
        eq(Bson::Double(f64::NAN), Bson::Double(f64::NAN));
        lt(Bson::Double(f64::NAN), Bson::Double(f64::NEG_INFINITY));
        lt(dec("NaN"), Bson::Int64(i64::MIN));
        lt(Bson::Null, Bson::Double(f64::NAN));
    }

    #[test]
    fn strings_compare_by_bytes_and_symbols_like_strings() {
        lt(Bson::String("B".into()), Bson::String("a".into()));
        lt(Bson::String("a".into()), Bson::String("ab".into()));
        eq(Bson::String("x".into()), Bson::Symbol("x".into()));
    }

    #[test]
    fn documents_compare_field_by_field_then_length() {
        // Type rank of values first: a number value sorts before a string value whatever
        // the field names.
        lt(
            Bson::Document(doc! {"z": 1}),
            Bson::Document(doc! {"a": "x"}),
        );
        lt(Bson::Document(doc! {"a": 1}), Bson::Document(doc! {"b": 1}));
        lt(Bson::Document(doc! {"a": 1}), Bson::Document(doc! {"a": 2}));
        lt(
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"a": 1, "b": 0}),
        );
        eq(
            Bson::Document(doc! {"a": 1, "b": {"c": 2.0}}),
            Bson::Document(doc! {"a": 1i64, "b": {"c": 2}}),
        );
        // Field order matters.
        assert_ne!(
            compare(
                &Bson::Document(doc! {"a": 1, "b": 2}),
                &Bson::Document(doc! {"b": 2, "a": 1})
            ),
            Ordering::Equal
        );
    }

    #[test]
    fn arrays_compare_element_by_element() {
        lt(bson::bson!([1, 2]), bson::bson!([1, 3]));
        lt(bson::bson!([1, 2]), bson::bson!([1, 2, 0]));
        lt(bson::bson!([1, 2]), bson::bson!([1, "a"]));
        eq(bson::bson!([1, 2.0]), bson::bson!([1.0, 2i64]));
    }

    #[test]
    fn binary_by_length_then_subtype_then_bytes() {
        let b = |st: u8, bytes: Vec<u8>| {
            Bson::Binary(Binary {
                subtype: BinarySubtype::from(st),
                bytes,
            })
        };
        lt(b(5, vec![9]), b(0, vec![0, 0]));
        lt(b(0, vec![9, 9]), b(4, vec![0, 0]));
        lt(b(0, vec![1, 2]), b(0, vec![1, 3]));
    }

    #[test]
    fn timestamps_and_dates() {
        lt(
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: 9,
            }),
            Bson::Timestamp(Timestamp {
                time: 2,
                increment: 0,
            }),
        );
        lt(
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: 1,
            }),
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: u32::MAX,
            }),
        );
    }

    #[test]
    fn ord_bson_as_map_key() {
        let mut m = BTreeMap::new();
        m.insert(OrdBson(Bson::Int32(1)), "a");
        m.insert(OrdBson(Bson::Double(1.0)), "b");
        m.insert(OrdBson(Bson::String("1".into())), "c");
        assert_eq!(m.len(), 2);
        assert_eq!(m[&OrdBson(Bson::Int64(1))], "b");

        let mut h = std::collections::HashSet::new();
        h.insert(OrdBson(Bson::Int32(7)));
        assert!(h.contains(&OrdBson(dec("7.0"))));
        assert!(h.contains(&OrdBson(Bson::Double(7.0))));
        h.insert(OrdBson(Bson::Document(doc! {"a": 1})));
        assert!(h.contains(&OrdBson(Bson::Document(doc! {"a": 1.0}))));
    }

    #[test]
    fn decimal_decoding() {
        assert_eq!(
            decode_decimal(&Decimal128::from_str("-12.5").unwrap()),
            Dec::Finite {
                neg: true,
                coef: 125,
                exp: -1
            }
        );
        assert_eq!(
            decimal_to_f64(&Decimal128::from_str("2.5E+3").unwrap()),
            2500.0
        );
    }
}
