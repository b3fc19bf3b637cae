//! Arithmetic and bitwise update operators: `$inc`, `$mul` (exact on decimals where the server is)
//! and `$bit`.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BitOp {
    And,
    Or,
    Xor,
}

pub(super) fn parse_bit(value: &Bson) -> Result<Vec<(BitOp, Bson)>> {
    let Bson::Document(d) = value else {
        return Err(CommandError::bad_value(format!(
            "The $bit modifier is not compatible with a {}. You must pass in an embedded \
             document: {{$bit: {{field: {{and/or/xor: #}}}}",
            type_name(value)
        )));
    };
    if d.is_empty() {
        return Err(CommandError::bad_value(
            "You must pass in at least one bitwise operation. The format is: {$bit: {field: \
             {and/or/xor: #}}",
        ));
    }
    let mut ops = Vec::new();
    for (k, v) in d {
        let op = match k.as_str() {
            "and" => BitOp::And,
            "or" => BitOp::Or,
            "xor" => BitOp::Xor,
            other => {
                return Err(CommandError::bad_value(format!(
                    "The $bit modifier only supports 'and', 'or', and 'xor', not '{other}' which \
                     is an unknown operator: {{{}}}",
                    fmt_elem(k, v)
                )));
            }
        };
        if !matches!(v, Bson::Int32(_) | Bson::Int64(_)) {
            return Err(CommandError::bad_value(format!(
                "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported \
                 here: {{{}}}",
                type_name(v),
                fmt_elem(k, v)
            )));
        }
        ops.push((op, v.clone()));
    }
    Ok(ops)
}

pub(super) fn apply_bits(old: &Bson, ops: &[(BitOp, Bson)]) -> Bson {
    let mut cur = old.clone();
    for (op, v) in ops {
        let (a, b) = match (&cur, v) {
            (Bson::Int32(a), Bson::Int32(b)) => {
                let r = match op {
                    BitOp::And => a & b,
                    BitOp::Or => a | b,
                    BitOp::Xor => a ^ b,
                };
                cur = Bson::Int32(r);
                continue;
            }
            (x, y) => (as_i64(x), as_i64(y)),
        };
        cur = Bson::Int64(match op {
            BitOp::And => a & b,
            BitOp::Or => a | b,
            BitOp::Xor => a ^ b,
        });
    }
    cur
}

pub(super) fn as_i64(v: &Bson) -> i64 {
    match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        _ => 0,
    }
}

pub(super) fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

pub(super) fn as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

/// `$inc`/`$mul` with the server's type promotion: int32 overflow widens to int64, int64
/// overflow fails (`None`), doubles and decimals win.
pub(super) fn arithmetic(a: &Bson, b: &Bson, add: bool) -> Option<Bson> {
    match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => {
            let r = if add {
                x.checked_add(*y)
            } else {
                x.checked_mul(*y)
            };
            match r {
                Some(r) => Some(Bson::Int32(r)),
                None => arithmetic(
                    &Bson::Int64(i64::from(*x)),
                    &Bson::Int64(i64::from(*y)),
                    add,
                ),
            }
        }
        (Bson::Int32(_) | Bson::Int64(_), Bson::Int32(_) | Bson::Int64(_)) => {
            let (x, y) = (as_i64(a), as_i64(b));
            let r = if add {
                x.checked_add(y)
            } else {
                x.checked_mul(y)
            };
            r.map(Bson::Int64)
        }
        (Bson::Decimal128(_), _) | (_, Bson::Decimal128(_)) => {
            if let Some(exact) = decimal_exact(a, b, add) {
                return Some(exact);
            }
            // Results needing rounding (beyond 34 digits) or special values: through f64.
            let (x, y) = (as_f64(a)?, as_f64(b)?);
            let r = if add { x + y } else { x * y };
            format!("{r:e}").parse().ok().map(Bson::Decimal128)
        }
        _ => {
            let (x, y) = (as_f64(a)?, as_f64(b)?);
            Some(Bson::Double(if add { x + y } else { x * y }))
        }
    }
}

/// A finite decimal as (negative, coefficient, exponent); doubles become decimals rounded to 15
/// significant digits, as the server converts them.
pub(super) fn decimal_parts(v: &Bson) -> Option<(bool, u128, i32)> {
    let text = match v {
        Bson::Int32(i) => return Some((*i < 0, u128::from(i.unsigned_abs()), 0)),
        Bson::Int64(i) => return Some((*i < 0, u128::from(i.unsigned_abs()), 0)),
        Bson::Double(d) if d.is_finite() => format!("{d:.14e}"),
        Bson::Decimal128(d) => d.to_string(),
        _ => return None,
    };
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.as_str()),
    };
    let (mantissa, exp) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.trim_start_matches('+').parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let coef: u128 = format!("{int}{frac}").parse().ok()?;
    Some((neg, coef, exp - i32::try_from(frac.len()).ok()?))
}

/// Exact decimal `+`/`*` when the result fits in 34 digits (IEEE 754 decimal keeps the
/// smaller exponent for sums and adds exponents for products, so 0.1 + 0.2 is 0.3).
pub(super) fn decimal_exact(a: &Bson, b: &Bson, add: bool) -> Option<Bson> {
    let (na, ca, ea) = decimal_parts(a)?;
    let (nb, cb, eb) = decimal_parts(b)?;
    let signed = |neg: bool, c: u128| -> Option<i128> {
        let c = i128::try_from(c).ok()?;
        Some(if neg { -c } else { c })
    };
    let (value, exp) = if add {
        let exp = ea.min(eb);
        let scale = |c: u128, e: i32| -> Option<u128> {
            c.checked_mul(10u128.checked_pow(u32::try_from(e - exp).ok()?)?)
        };
        let x = signed(na, scale(ca, ea)?)?;
        let y = signed(nb, scale(cb, eb)?)?;
        (x.checked_add(y)?, exp)
    } else {
        let c = ca.checked_mul(cb)?;
        (signed(na != nb, c)?, ea.checked_add(eb)?)
    };
    if value.unsigned_abs() >= 10u128.pow(34) {
        return None;
    }
    format!("{value}E{exp}").parse().ok().map(Bson::Decimal128)
}

pub(super) fn debug_num(v: &Bson) -> String {
    match v {
        Bson::Int32(i) => format!("(NumberInt){i}"),
        Bson::Int64(i) => format!("(NumberLong){i}"),
        Bson::Double(d) => format!("(NumberDouble){d}"),
        Bson::Decimal128(d) => format!("(NumberDecimal){d}"),
        other => fmt_value(other),
    }
}
