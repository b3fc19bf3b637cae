//! Arithmetic expressions (`$add`, `$subtract`, `$multiply`, `$divide`, `$mod`, `$abs`, `$sqrt`,
//! `$log`, `$pow`, `$round`, `$trunc`, ...) and the numeric tower they share with accumulators.

use super::*;

/// A numeric value with the server's type ladder int → long → double → decimal. Decimal
/// `+ - * /`, `$sqrt`, `$abs`, `$ceil`/`$floor`, `$round`/`$trunc` compute at decimal precision
/// (see [`D128`]); logarithms, exponentials and powers of decimals go through `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i32),
    Long(i64),
    Double(f64),
    Decimal(Decimal128),
}

impl Num {
    pub(crate) fn from_bson(v: &Bson) -> Option<Num> {
        match v {
            Bson::Int32(i) => Some(Num::Int(*i)),
            Bson::Int64(i) => Some(Num::Long(*i)),
            Bson::Double(d) => Some(Num::Double(*d)),
            Bson::Decimal128(d) => Some(Num::Decimal(*d)),
            _ => None,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Num::Int(_) => 0,
            Num::Long(_) => 1,
            Num::Double(_) => 2,
            Num::Decimal(_) => 3,
        }
    }

    pub(crate) fn f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Long(i) => i as f64,
            Num::Double(d) => d,
            Num::Decimal(d) => dec_to_f64(&d),
        }
    }

    fn i64(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i as i64),
            Num::Long(i) => Some(i),
            _ => None,
        }
    }

    pub(crate) fn to_bson(self) -> Bson {
        match self {
            Num::Int(i) => Bson::Int32(i),
            Num::Long(i) => Bson::Int64(i),
            Num::Double(d) => Bson::Double(d),
            Num::Decimal(d) => Bson::Decimal128(d),
        }
    }

    /// A float result in the type of the wider operand (double unless decimal).
    fn float(rank: u8, v: f64) -> Num {
        if rank == 3 {
            Num::Decimal(f64_to_dec(v))
        } else {
            Num::Double(v)
        }
    }

    /// An integer result narrowed to int when both operands were ints and it fits, widened to
    /// double when it overflows a long.
    fn integer(rank: u8, v: Option<i64>, fallback: f64) -> Num {
        match v {
            Some(v) if rank == 0 && i32::try_from(v).is_ok() => Num::Int(v as i32),
            Some(v) => Num::Long(v),
            None => Num::Double(fallback),
        }
    }

    pub(crate) fn add(self, other: Num) -> Num {
        let rank = self.rank().max(other.rank());
        match (self.i64(), other.i64()) {
            (Some(a), Some(b)) => Num::integer(rank, a.checked_add(b), a as f64 + b as f64),
            _ if rank == 3 => Num::decimal_op(self, other, D128::add),
            _ => Num::float(rank, self.f64() + other.f64()),
        }
    }

    fn sub(self, other: Num) -> Num {
        let rank = self.rank().max(other.rank());
        match (self.i64(), other.i64()) {
            (Some(a), Some(b)) => Num::integer(rank, a.checked_sub(b), a as f64 - b as f64),
            _ if rank == 3 => Num::decimal_op(self, other, D128::sub),
            _ => Num::float(rank, self.f64() - other.f64()),
        }
    }

    fn mul(self, other: Num) -> Num {
        let rank = self.rank().max(other.rank());
        match (self.i64(), other.i64()) {
            (Some(a), Some(b)) => Num::integer(rank, a.checked_mul(b), a as f64 * b as f64),
            _ if rank == 3 => Num::decimal_op(self, other, D128::mul),
            _ => Num::float(rank, self.f64() * other.f64()),
        }
    }

    /// Division: always a double, or a decimal if either operand is one.
    pub(super) fn div(self, other: Num) -> Num {
        if self.rank().max(other.rank()) == 3 {
            Num::decimal_op(self, other, D128::div)
        } else {
            Num::Double(self.f64() / other.f64())
        }
    }

    /// The operand as a decimal (a double through its 15 significant digits, as the server's
    /// `Decimal128(double)` converts it).
    pub(crate) fn to_d128(self) -> D128 {
        match self {
            Num::Int(i) => D128::from_i64(i as i64),
            Num::Long(l) => D128::from_i64(l),
            Num::Double(d) => D128::from_f64(d),
            Num::Decimal(d) => D128::from_decimal128(&d),
        }
    }

    fn decimal_op(a: Num, b: Num, op: impl Fn(D128, D128) -> Decimal128) -> Num {
        Num::Decimal(op(a.to_d128(), b.to_d128()))
    }

    fn is_zero(self) -> bool {
        self.f64() == 0.0
    }
}

pub(crate) fn dec_to_f64(d: &Decimal128) -> f64 {
    let s = d.to_string();
    s.parse::<f64>().unwrap_or_else(|_| {
        if s.contains('-') && s.contains("Inf") {
            f64::NEG_INFINITY
        } else if s.contains("Inf") {
            f64::INFINITY
        } else {
            f64::NAN
        }
    })
}

pub(crate) fn f64_to_dec(v: f64) -> Decimal128 {
    let s = if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{v:?}")
    };
    s.parse::<Decimal128>().unwrap_or_else(|_| {
        "NaN"
            .parse::<Decimal128>()
            .unwrap_or(Decimal128::from_bytes([0; 16]))
    })
}

pub(super) fn op_add(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let mut total = Num::Int(0);
    let mut date: Option<i64> = None;
    let mut null = false;
    for a in arg_list(arg) {
        let v = eval(a, scope)?;
        match &v {
            x if nullish(x) => null = true,
            Some(Bson::DateTime(d)) => {
                if date.is_some() {
                    return Err(CommandError::new(
                        16612,
                        "only one date allowed in an $add expression",
                    ));
                }
                date = Some(d.timestamp_millis());
            }
            Some(b) => match Num::from_bson(b) {
                Some(n) => total = total.add(n),
                None => {
                    return Err(CommandError::type_mismatch(format!(
                        "$add only supports numeric or date types, not {}",
                        tn(&v)
                    )));
                }
            },
            None => {}
        }
    }
    if null {
        return Ok(Some(Bson::Null));
    }
    if let Some(ms) = date {
        let delta = match total {
            Num::Int(i) => i as i64,
            Num::Long(l) => l,
            Num::Double(_) | Num::Decimal(_) => total.f64().round() as i64,
        };
        return Ok(Some(Bson::DateTime(bson::DateTime::from_millis(
            ms.wrapping_add(delta),
        ))));
    }
    Ok(Some(total.to_bson()))
}

pub(super) fn op_subtract(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$subtract", arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(Some(Bson::Null));
    }
    let (a, b) = (v[0].as_ref(), v[1].as_ref());
    match (a, b) {
        (Some(Bson::DateTime(x)), Some(Bson::DateTime(y))) => Ok(Some(Bson::Int64(
            x.timestamp_millis().wrapping_sub(y.timestamp_millis()),
        ))),
        (Some(Bson::DateTime(x)), Some(n)) if Num::from_bson(n).is_some() => {
            let delta = match Num::from_bson(n) {
                Some(Num::Int(i)) => i as i64,
                Some(Num::Long(l)) => l,
                Some(n @ (Num::Double(_) | Num::Decimal(_))) => n.f64().round() as i64,
                None => 0,
            };
            Ok(Some(Bson::DateTime(bson::DateTime::from_millis(
                x.timestamp_millis().wrapping_sub(delta),
            ))))
        }
        (Some(x), Some(y)) => match (Num::from_bson(x), Num::from_bson(y)) {
            (Some(x), Some(y)) => Ok(Some(x.sub(y).to_bson())),
            _ => Err(CommandError::type_mismatch(format!(
                "can't $subtract {} from {}",
                tn(&v[1]),
                tn(&v[0])
            ))),
        },
        _ => Ok(Some(Bson::Null)),
    }
}

pub(super) fn op_multiply(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let mut total = Num::Int(1);
    let mut null = false;
    for a in arg_list(arg) {
        let v = eval(a, scope)?;
        if nullish(&v) {
            null = true;
            continue;
        }
        match v.as_ref().and_then(Num::from_bson) {
            Some(n) => total = total.mul(n),
            None => {
                return Err(CommandError::type_mismatch(format!(
                    "$multiply only supports numeric types, not {}",
                    tn(&v)
                )));
            }
        }
    }
    Ok(Some(if null { Bson::Null } else { total.to_bson() }))
}

pub(super) fn two_nums(
    name: &str,
    arg: &Bson,
    scope: &Scope,
    code: i32,
) -> Result<Option<(Num, Num)>> {
    let v = eval_exact(name, arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(None);
    }
    match (
        v[0].as_ref().and_then(Num::from_bson),
        v[1].as_ref().and_then(Num::from_bson),
    ) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        _ => Err(CommandError::new(
            code,
            format!(
                "{name} only supports numeric types, not {} and {}",
                tn(&v[0]),
                tn(&v[1])
            ),
        )),
    }
}

pub(super) fn op_divide(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Some((a, b)) = two_nums("$divide", arg, scope, codes::TYPE_MISMATCH)? else {
        return Ok(Some(Bson::Null));
    };
    if b.is_zero() {
        return Err(CommandError::bad_value("can't $divide by zero"));
    }
    Ok(Some(a.div(b).to_bson()))
}

pub(super) fn op_mod(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Some((a, b)) = two_nums("$mod", arg, scope, 16611)? else {
        return Ok(Some(Bson::Null));
    };
    if b.is_zero() {
        return Err(CommandError::new(16610, "can't $mod by zero"));
    }
    let rank = a.rank().max(b.rank());
    Ok(Some(
        match (a.i64(), b.i64()) {
            (Some(x), Some(y)) => Num::integer(rank, Some(x.wrapping_rem(y)), 0.0),
            _ => Num::float(rank, a.f64() % b.f64()),
        }
        .to_bson(),
    ))
}

pub(super) fn op_unary_math(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact(name, arg, 1, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    let Some(n) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28765,
            format!("{name} only supports numeric types, not {}", tn(&v[0])),
        ));
    };
    let rank = n.rank().max(2);
    let x = n.f64();
    let out = match name {
        "$abs" => match n {
            Num::Int(i) => match i.checked_abs() {
                Some(a) => Num::Int(a),
                None => Num::Long((i as i64).abs()),
            },
            Num::Long(l) => match l.checked_abs() {
                Some(a) => Num::Long(a),
                None => {
                    return Err(CommandError::new(28680, "can't take $abs of long long min"));
                }
            },
            Num::Double(d) => Num::Double(d.abs()),
            Num::Decimal(d) => Num::Decimal(D128::from_decimal128(&d).abs()),
        },
        "$ceil" | "$floor" => match n {
            Num::Int(_) | Num::Long(_) => n,
            Num::Decimal(d) => Num::Decimal(D128::from_decimal128(&d).round_integral(
                if name == "$ceil" {
                    Rounding::Ceiling
                } else {
                    Rounding::Floor
                },
            )),
            _ => Num::float(rank, if name == "$ceil" { x.ceil() } else { x.floor() }),
        },
        "$sqrt" => {
            let root = match n {
                Num::Decimal(d) => D128::from_decimal128(&d).sqrt().map(Num::Decimal),
                _ => (x.is_nan() || x >= 0.0).then(|| Num::float(rank, x.sqrt())),
            };
            let Some(root) = root else {
                return Err(CommandError::new(
                    28714,
                    "$sqrt's argument must be greater than or equal to 0",
                ));
            };
            root
        }
        "$exp" => Num::float(rank, x.exp()),
        "$ln" | "$log10" => {
            if x <= 0.0 || x.is_nan() {
                return Err(CommandError::new(
                    if name == "$ln" { 28766 } else { 28761 },
                    format!(
                        "{name}'s argument must be a positive number, but is {}",
                        num_display(n)
                    ),
                ));
            }
            Num::float(rank, if name == "$ln" { x.ln() } else { x.log10() })
        }
        _ => return Err(unknown_operator(name)),
    };
    Ok(Some(out.to_bson()))
}

pub(super) fn num_display(n: Num) -> String {
    match n {
        Num::Int(i) => i.to_string(),
        Num::Long(l) => l.to_string(),
        Num::Double(d) => format_double(d),
        Num::Decimal(d) => d.to_string(),
    }
}

pub(super) fn op_log(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$log", arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(Some(Bson::Null));
    }
    let Some(n) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28756,
            format!("$log's argument must be numeric, not {}", tn(&v[0])),
        ));
    };
    let Some(b) = v[1].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28757,
            format!("$log's base must be numeric, not {}", tn(&v[1])),
        ));
    };
    if n.f64() <= 0.0 {
        return Err(CommandError::new(
            28758,
            format!(
                "$log's argument must be a positive number, but is {}",
                num_display(n)
            ),
        ));
    }
    if b.f64() <= 0.0 || b.f64() == 1.0 {
        return Err(CommandError::new(
            28759,
            format!(
                "$log's base must be a positive number not equal to 1, but is {}",
                num_display(b)
            ),
        ));
    }
    let rank = n.rank().max(b.rank()).max(2);
    Ok(Some(
        Num::float(rank, n.f64().ln() / b.f64().ln()).to_bson(),
    ))
}

pub(super) fn op_pow(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$pow", arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(Some(Bson::Null));
    }
    let Some(base) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28762,
            format!("$pow's base must be numeric, not {}", tn(&v[0])),
        ));
    };
    let Some(exp) = v[1].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28763,
            format!("$pow's exponent must be numeric, not {}", tn(&v[1])),
        ));
    };
    if base.is_zero() && exp.f64() < 0.0 {
        return Err(CommandError::new(
            28764,
            "$pow cannot take a base of 0 and a negative exponent",
        ));
    }
    let rank = base.rank().max(exp.rank());
    if let (Some(b), Some(e)) = (base.i64(), exp.i64()) {
        if e >= 0 {
            let exact = u32::try_from(e).ok().and_then(|e| b.checked_pow(e));
            return Ok(Some(
                Num::integer(rank, exact, (b as f64).powf(e as f64)).to_bson(),
            ));
        }
        // Negative integer exponents are exact only for bases 1 and -1.
        if b == 1 || b == -1 {
            let r = if b == 1 || e % 2 == 0 { 1 } else { -1 };
            return Ok(Some(Num::integer(rank, Some(r), r as f64).to_bson()));
        }
        return Ok(Some(Bson::Double((b as f64).powf(e as f64))));
    }
    Ok(Some(Num::float(rank, base.f64().powf(exp.f64())).to_bson()))
}

pub(super) fn op_round(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args(name, arg, 1, 2)?;
    let v = eval_all(&args, scope)?;
    if nullish(&v[0]) || v.get(1).is_some_and(nullish) {
        return Ok(Some(Bson::Null));
    }
    let Some(n) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            51081,
            format!("{name} only supports numeric types, not {}", tn(&v[0])),
        ));
    };
    let place = match v.get(1) {
        None => 0i64,
        Some(p) => match p.as_ref().and_then(Num::from_bson) {
            Some(Num::Int(i)) => i as i64,
            Some(Num::Long(l)) => l,
            Some(n @ (Num::Double(_) | Num::Decimal(_))) if n.f64().fract() == 0.0 => {
                n.f64() as i64
            }
            _ => {
                return Err(CommandError::new(
                    51082,
                    format!(
                        "precision argument to {name} must be a integral value, but is {}",
                        tn(p)
                    ),
                ));
            }
        },
    };
    if !(-20..=100).contains(&place) {
        return Err(CommandError::new(
            51083,
            format!("cannot apply {name} with precision value {place} value must be in [-20, 100]"),
        ));
    }
    let round = |x: f64| -> f64 {
        if name == "$trunc" {
            x.trunc()
        } else {
            // The server rounds half to even; -0.5 rounds to -0.0.
            x.round_ties_even()
        }
    };
    let out = match n {
        Num::Int(_) | Num::Long(_) if place >= 0 => n,
        Num::Int(_) | Num::Long(_) => {
            let i = n.i64().unwrap_or(0);
            let p = 10f64.powi((-place) as i32);
            let r = round(i as f64 / p) * p;
            match n {
                Num::Int(_) if r.abs() <= i32::MAX as f64 => Num::Int(r as i32),
                Num::Int(_) => Num::Long(r as i64),
                _ => Num::Long(r as i64),
            }
        }
        // The server quantizes a decimal to exponent -place (`1.298` to 4 places is `1.2980`).
        Num::Decimal(d) => Num::Decimal(D128::from_decimal128(&d).quantize(
            -place,
            if name == "$trunc" {
                Rounding::TowardZero
            } else {
                Rounding::HalfEven
            },
        )),
        Num::Double(_) => {
            let x = n.f64();
            let p = 10f64.powi(place as i32);
            Num::float(n.rank(), round(x * p) / p)
        }
    };
    Ok(Some(out.to_bson()))
}

// ---------------------------------------------------------------------------------------------
// Conditionals and variables

// ---------------------------------------------------------------------------------------------
// Accumulation shared by the expression forms of $sum/$avg/$min/$max and by $group.

/// The trigonometric operators (the server's `expression_trigonometric.cpp`): `$sin`, `$cos`,
/// `$tan` refuse ±infinity, `$asin`/`$acos`/`$atanh` values outside [-1,1], `$acosh` values
/// below 1 (50989); NaN passes through them; integers compute in double, decimals give a
/// decimal.
pub(super) fn op_trig(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact(name, arg, 1, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    let Some(n) = v[0].as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28765,
            format!("{name} only supports numeric types, not {}", tn(&v[0])),
        ));
    };
    let x = n.f64();
    let inf = f64::INFINITY;
    // (lower, upper, inclusive)
    let bounds = match name {
        "$asin" | "$acos" | "$atanh" => Some((-1.0, 1.0, true)),
        "$acosh" => Some((1.0, inf, true)),
        "$sin" | "$cos" | "$tan" => Some((-inf, inf, false)),
        _ => None,
    };
    if let Some((lo, hi, inclusive)) = bounds {
        if x.is_nan() {
            return Ok(v[0].clone());
        }
        let inside = if inclusive {
            lo <= x && x <= hi
        } else {
            lo < x && x < hi
        };
        if !inside {
            let shown = match n {
                Num::Decimal(d) => d.to_string(),
                _ => stream_double(x),
            };
            let (l, r) = if inclusive { ('[', ']') } else { ('(', ')') };
            return Err(CommandError::new(
                50989,
                format!(
                    "cannot apply {name} to {shown}, value must in {l}{},{}{r}",
                    stream_double(lo),
                    stream_double(hi)
                ),
            ));
        }
    }
    let pi = std::f64::consts::PI;
    let out = match name {
        "$sin" => x.sin(),
        "$cos" => x.cos(),
        "$tan" => x.tan(),
        "$asin" => x.asin(),
        "$acos" => x.acos(),
        "$atan" => x.atan(),
        "$sinh" => x.sinh(),
        "$cosh" => x.cosh(),
        "$tanh" => x.tanh(),
        "$asinh" => x.asinh(),
        "$acosh" => x.acosh(),
        "$atanh" => x.atanh(),
        "$degreesToRadians" => x * (pi / 180.0),
        _ => x * (180.0 / pi),
    };
    Ok(Some(match n {
        Num::Decimal(_) => Bson::Decimal128(f64_to_dec(out)),
        _ => Bson::Double(out),
    }))
}

/// `$atan2`: null if either argument is, 51044/51045 for a non-number.
pub(super) fn op_atan2(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$atan2", arg, 2, scope)?;
    let mut nums = Vec::new();
    for (i, x) in v.iter().enumerate() {
        if nullish(x) {
            return Ok(Some(Bson::Null));
        }
        match x.as_ref().and_then(Num::from_bson) {
            Some(n) => nums.push(n),
            None => {
                return Err(CommandError::new(
                    51044 + i as i32,
                    format!("$atan2 only supports numeric types, not {}", tn(x)),
                ));
            }
        }
    }
    let out = nums[0].f64().atan2(nums[1].f64());
    Ok(Some(if nums.iter().any(|n| matches!(n, Num::Decimal(_))) {
        Bson::Decimal128(f64_to_dec(out))
    } else {
        Bson::Double(out)
    }))
}

/// `$bitAnd`, `$bitOr`, `$bitXor`: any number of int/long operands (a single one needs no
/// array); an int result unless a long took part; null at the first null operand.
pub(super) fn op_bitwise(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let mut acc: i64 = if name == "$bitAnd" { -1 } else { 0 };
    let mut long = false;
    for a in arg_list(arg) {
        let v = eval(a, scope)?;
        let x = match &v {
            _ if nullish(&v) => return Ok(Some(Bson::Null)),
            Some(Bson::Int32(i)) => i64::from(*i),
            Some(Bson::Int64(l)) => {
                long = true;
                *l
            }
            _ => {
                return Err(CommandError::new(
                    codes::TYPE_MISMATCH,
                    format!("{name} only supports int and long operands."),
                ));
            }
        };
        acc = match name {
            "$bitAnd" => acc & x,
            "$bitOr" => acc | x,
            _ => acc ^ x,
        };
    }
    Ok(Some(if long {
        Bson::Int64(acc)
    } else {
        Bson::Int32(acc as i32)
    }))
}

/// `$bitNot`: one int or long; a non-number is 28765, another number 14.
pub(super) fn op_bit_not(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$bitNot", arg, 1, scope)?;
    match &v[0] {
        x if nullish(x) => Ok(Some(Bson::Null)),
        Some(Bson::Int32(i)) => Ok(Some(Bson::Int32(!i))),
        Some(Bson::Int64(l)) => Ok(Some(Bson::Int64(!l))),
        x if x.as_ref().and_then(Num::from_bson).is_some() => Err(CommandError::new(
            codes::TYPE_MISMATCH,
            format!("$bitNot only supports int and long, not: {}.", tn(x)),
        )),
        x => Err(CommandError::new(
            28765,
            format!("$bitNot only supports numeric types, not {}", tn(x)),
        )),
    }
}

/// `$sigmoid` (8.2): `x` or `{input, onNull}`; the server rewrites it to
/// `1 / (1 + exp(-x))`, so a non-number fails as `$multiply` does and a decimal stays decimal.
pub(super) fn op_sigmoid(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let (input, on_null) = match arg {
        Bson::Document(d) if d.keys().next().is_some_and(|k| !k.starts_with('$')) => {
            for k in d.keys() {
                if k != "input" && k != "onNull" {
                    return Err(CommandError::new(
                        codes::FAILED_TO_PARSE,
                        format!("$sigmoid found an unknown argument: {k}"),
                    ));
                }
            }
            let Some(input) = d.get("input") else {
                return Err(CommandError::new(
                    codes::FAILED_TO_PARSE,
                    "$sigmoid requires an 'input' field",
                ));
            };
            (input, d.get("onNull"))
        }
        other => (other, None),
    };
    let v = eval(input, scope)?;
    if nullish(&v) {
        return match on_null {
            Some(e) => Ok(Some(eval(e, scope)?.unwrap_or(Bson::Null))),
            None => Ok(Some(Bson::Null)),
        };
    }
    let Some(x) = v.as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::type_mismatch(format!(
            "$multiply only supports numeric types, not {}",
            tn(&v)
        )));
    };
    let e = Num::float(x.rank().max(2), (-x.f64()).exp());
    Ok(Some(Num::Int(1).div(Num::Int(1).add(e)).to_bson()))
}
