//! IEEE 754-2008 decimal128 arithmetic at decimal precision, as the server's Intel BID library
//! computes it: 34 significant digits, results rounded once (half to even), exponents kept
//! (`1.0 + 2.00` is `3.00`), exact quotients and roots at their ideal exponent, signed zeros,
//! NaN and infinities. Coefficients are big integers, so no intermediate result is approximated.

use bson::Decimal128;
use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};

use crate::query::compare::{Dec as Raw, decode_decimal};

const PRECISION: u64 = 34;
/// The smallest and largest exponents of a decimal128 coefficient (bias 6176).
const EXP_MIN: i64 = -6176;
const EXP_MAX: i64 = 6111;

/// A decoded decimal128 value (finite values unbounded until packed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum D128 {
    NaN,
    Inf { neg: bool },
    Fin { neg: bool, coef: BigUint, exp: i64 },
}

/// How a result that does not fit is rounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rounding {
    HalfEven,
    TowardZero,
    Ceiling,
    Floor,
}

fn pow10(n: u64) -> BigUint {
    BigUint::from(10u32).pow(n as u32)
}

fn digits(c: &BigUint) -> u64 {
    if c.is_zero() {
        0
    } else {
        c.to_string().len() as u64
    }
}

/// `coef / 10^drop` rounded by `mode`; `sticky` says a nonzero remainder was already dropped.
fn round_off(neg: bool, coef: &BigUint, drop: u64, sticky: bool, mode: Rounding) -> BigUint {
    if drop == 0 {
        return coef.clone();
    }
    // Far below the last kept digit: the quotient is 0 and the remainder under half a unit.
    let (q, half_cmp, inexact) = if drop > digits(coef) + 1 {
        let inexact = sticky || !coef.is_zero();
        (BigUint::zero(), std::cmp::Ordering::Less, inexact)
    } else {
        let divisor = pow10(drop);
        let (q, r) = (coef / &divisor, coef % &divisor);
        let twice = &r * 2u32;
        let cmp = match twice.cmp(&divisor) {
            std::cmp::Ordering::Equal if sticky => std::cmp::Ordering::Greater,
            other => other,
        };
        (q, cmp, sticky || !r.is_zero())
    };
    if !inexact {
        return q;
    }
    let up = match mode {
        Rounding::HalfEven => match half_cmp {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => (&q % 2u32).is_one(),
            std::cmp::Ordering::Less => false,
        },
        Rounding::TowardZero => false,
        Rounding::Ceiling => !neg,
        Rounding::Floor => neg,
    };
    if up { q + 1u32 } else { q }
}

fn encode(neg: bool, coef: &BigUint, exp: i64) -> Decimal128 {
    let c = coef.to_u128().unwrap_or(0);
    let bits = (u128::from(neg) << 127) | (((exp - EXP_MIN) as u128) << 113) | c;
    Decimal128::from_bytes(bits.to_le_bytes())
}

fn nan() -> Decimal128 {
    Decimal128::from_bytes((0x7cu128 << 120).to_le_bytes())
}

fn infinity(neg: bool) -> Decimal128 {
    Decimal128::from_bytes(((u128::from(neg) << 127) | (0x78u128 << 120)).to_le_bytes())
}

/// Rounds an exact (or, with `sticky`, truncated) result to 34 digits half to even and packs
/// it: gradual underflow to subnormals, overflow to infinity, large exponents folded down.
fn pack(neg: bool, coef: BigUint, exp: i64, sticky: bool) -> Decimal128 {
    let mut drop = digits(&coef).saturating_sub(PRECISION);
    if exp + (drop as i64) < EXP_MIN {
        drop = (EXP_MIN - exp) as u64;
    }
    let mut coef = round_off(neg, &coef, drop, sticky, Rounding::HalfEven);
    let mut exp = exp + drop as i64;
    if digits(&coef) > PRECISION {
        coef /= 10u32;
        exp += 1;
    }
    if exp > EXP_MAX {
        if coef.is_zero() {
            exp = EXP_MAX;
        } else {
            let pad = (exp - EXP_MAX) as u64;
            if digits(&coef) + pad > PRECISION {
                return infinity(neg);
            }
            coef *= pow10(pad);
            exp = EXP_MAX;
        }
    }
    encode(neg, &coef, exp)
}

impl D128 {
    pub(crate) fn from_decimal128(d: &Decimal128) -> D128 {
        match decode_decimal(d) {
            Raw::NaN => D128::NaN,
            Raw::Inf { neg } => D128::Inf { neg },
            Raw::Finite { neg, coef, exp } => D128::Fin {
                neg,
                coef: BigUint::from(coef),
                exp: exp as i64,
            },
        }
    }

    pub(crate) fn from_i64(i: i64) -> D128 {
        D128::Fin {
            neg: i < 0,
            coef: BigUint::from(i.unsigned_abs()),
            exp: 0,
        }
    }

    /// A double as the server's `Decimal128(double)` converts it: rounded to 15 significant
    /// digits, trailing zeros kept (`2.5` is `2.50000000000000`).
    pub(crate) fn from_f64(d: f64) -> D128 {
        if d.is_nan() {
            return D128::NaN;
        }
        if d.is_infinite() {
            return D128::Inf { neg: d < 0.0 };
        }
        let neg = d.is_sign_negative();
        if d == 0.0 {
            return D128::Fin {
                neg,
                coef: BigUint::zero(),
                exp: 0,
            };
        }
        // `{:.14e}` is d.ddddddddddddddde±x, correctly rounded to 15 digits.
        let s = format!("{:.14e}", d.abs());
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let coef: BigUint = mantissa.replace('.', "").parse().unwrap_or_default();
        let e: i64 = e.parse().unwrap_or(0);
        D128::Fin {
            neg,
            coef,
            exp: e - 14,
        }
    }

    pub(crate) fn into_decimal128(self) -> Decimal128 {
        match self {
            D128::NaN => nan(),
            D128::Inf { neg } => infinity(neg),
            D128::Fin { neg, coef, exp } => pack(neg, coef, exp, false),
        }
    }

    /// True for values below zero (not -0, not NaN).
    pub(crate) fn is_negative(&self) -> bool {
        match self {
            D128::NaN => false,
            D128::Inf { neg } => *neg,
            D128::Fin { neg, coef, .. } => *neg && !coef.is_zero(),
        }
    }

    pub(crate) fn neg(self) -> D128 {
        match self {
            D128::NaN => D128::NaN,
            D128::Inf { neg } => D128::Inf { neg: !neg },
            D128::Fin { neg, coef, exp } => D128::Fin {
                neg: !neg,
                coef,
                exp,
            },
        }
    }

    pub(crate) fn abs(self) -> Decimal128 {
        match self {
            D128::NaN => nan(),
            D128::Inf { .. } => infinity(false),
            D128::Fin { coef, exp, .. } => pack(false, coef, exp, false),
        }
    }

    pub(crate) fn add(self, other: D128) -> Decimal128 {
        match (self, other) {
            (D128::NaN, _) | (_, D128::NaN) => nan(),
            (D128::Inf { neg: a }, D128::Inf { neg: b }) if a != b => nan(),
            (D128::Inf { neg }, _) | (_, D128::Inf { neg }) => infinity(neg),
            (
                D128::Fin {
                    neg: na,
                    coef: ca,
                    exp: ea,
                },
                D128::Fin {
                    neg: nb,
                    coef: cb,
                    exp: eb,
                },
            ) => {
                let exp = ea.min(eb);
                let a = ca * pow10((ea - exp) as u64);
                let b = cb * pow10((eb - exp) as u64);
                let (neg, coef) = if na == nb {
                    (na, a + b)
                } else if a >= b {
                    (na, a - b)
                } else {
                    (nb, b - a)
                };
                // An exact zero sum of opposite signs is +0 (round half to even); -0 + -0 is -0.
                let neg = if coef.is_zero() { na && nb } else { neg };
                pack(neg, coef, exp, false)
            }
        }
    }

    pub(crate) fn sub(self, other: D128) -> Decimal128 {
        self.add(other.neg())
    }

    pub(crate) fn mul(self, other: D128) -> Decimal128 {
        match (self, other) {
            (D128::NaN, _) | (_, D128::NaN) => nan(),
            (D128::Inf { neg: a }, D128::Inf { neg: b }) => infinity(a != b),
            (D128::Inf { neg: a }, D128::Fin { neg: b, coef, .. })
            | (D128::Fin { neg: b, coef, .. }, D128::Inf { neg: a }) => {
                if coef.is_zero() {
                    nan()
                } else {
                    infinity(a != b)
                }
            }
            (
                D128::Fin {
                    neg: na,
                    coef: ca,
                    exp: ea,
                },
                D128::Fin {
                    neg: nb,
                    coef: cb,
                    exp: eb,
                },
            ) => pack(na != nb, ca * cb, ea + eb, false),
        }
    }

    /// Division; an exact quotient takes the ideal exponent `e1 - e2` when its trailing zeros
    /// allow. (`$divide` refuses a zero divisor before it gets here.)
    pub(crate) fn div(self, other: D128) -> Decimal128 {
        match (self, other) {
            (D128::NaN, _) | (_, D128::NaN) | (D128::Inf { .. }, D128::Inf { .. }) => nan(),
            (D128::Inf { neg: a }, D128::Fin { neg: b, .. }) => infinity(a != b),
            (D128::Fin { neg: a, .. }, D128::Inf { neg: b }) => {
                pack(a != b, BigUint::zero(), EXP_MIN, false)
            }
            (
                D128::Fin {
                    neg: na,
                    coef: ca,
                    exp: ea,
                },
                D128::Fin {
                    neg: nb,
                    coef: cb,
                    exp: eb,
                },
            ) => {
                let neg = na != nb;
                if cb.is_zero() {
                    return if ca.is_zero() { nan() } else { infinity(neg) };
                }
                let ideal = ea - eb;
                if ca.is_zero() {
                    return pack(neg, ca, ideal, false);
                }
                // At least 35 quotient digits, so the rounding digit is known.
                let shift = (PRECISION + 1 + digits(&cb)).saturating_sub(digits(&ca));
                let num = ca * pow10(shift);
                let (mut q, r) = (&num / &cb, &num % &cb);
                let mut exp = ideal - shift as i64;
                if r.is_zero() {
                    while exp < ideal && (&q % 10u32).is_zero() {
                        q /= 10u32;
                        exp += 1;
                    }
                }
                pack(neg, q, exp, !r.is_zero())
            }
        }
    }

    /// The square root; `None` for a number below zero (-0 is its own root).
    pub(crate) fn sqrt(self) -> Option<Decimal128> {
        if self.is_negative() {
            return None;
        }
        Some(match self {
            D128::NaN => nan(),
            D128::Inf { .. } => infinity(false),
            D128::Fin { neg, coef, exp } => {
                let ideal = exp.div_euclid(2);
                if coef.is_zero() {
                    return Some(pack(neg, coef, ideal, false));
                }
                // Scale to at least 70 digits with an even exponent: a root of 35 digits.
                let mut shift = 70u64.saturating_sub(digits(&coef));
                if (exp - shift as i64).rem_euclid(2) != 0 {
                    shift += 1;
                }
                let scaled = coef * pow10(shift);
                let mut root = scaled.sqrt();
                let exact = &root * &root == scaled;
                let mut e = (exp - shift as i64) / 2;
                if exact {
                    while e < ideal && (&root % 10u32).is_zero() {
                        root /= 10u32;
                        e += 1;
                    }
                }
                pack(false, root, e, !exact)
            }
        })
    }

    /// The value with exponent `target` (IEEE quantize): NaN when it needs over 34 digits.
    pub(crate) fn quantize(self, target: i64, mode: Rounding) -> Decimal128 {
        match self {
            D128::NaN => nan(),
            D128::Inf { neg } => infinity(neg),
            D128::Fin { neg, coef, exp } => {
                let coef = if exp >= target {
                    coef * pow10((exp - target) as u64)
                } else {
                    round_off(neg, &coef, (target - exp) as u64, false, mode)
                };
                if digits(&coef) > PRECISION || !(EXP_MIN..=EXP_MAX).contains(&target) {
                    nan()
                } else {
                    encode(neg, &coef, target)
                }
            }
        }
    }

    /// Rounds to an integer by `mode`, keeping a nonnegative exponent (`$ceil`, `$floor`).
    pub(crate) fn round_integral(self, mode: Rounding) -> Decimal128 {
        match self {
            D128::Fin { neg, coef, exp } if exp >= 0 => encode(neg, &coef, exp),
            other => other.quantize(0, mode),
        }
    }

    /// The value truncated toward zero as an i64, `None` when NaN, infinite or out of range.
    pub(crate) fn trunc_i64(&self) -> Option<i64> {
        let D128::Fin { neg, coef, exp } = self else {
            return None;
        };
        let whole = if *exp >= 0 {
            if *exp > 20 && !coef.is_zero() {
                return None;
            }
            coef * pow10(*exp as u64)
        } else {
            round_off(*neg, coef, exp.unsigned_abs(), false, Rounding::TowardZero)
        };
        let mag = whole.to_u64()?;
        if *neg {
            if mag <= i64::MAX as u64 + 1 {
                Some((mag as i64).wrapping_neg())
            } else {
                None
            }
        } else {
            i64::try_from(mag).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> D128 {
        D128::from_decimal128(&s.parse::<Decimal128>().unwrap())
    }

    fn show(v: Decimal128) -> String {
        v.to_string()
    }

    #[test]
    fn add_keeps_exponents_and_rounds_once() {
        assert_eq!(show(d("1.0").add(d("2.00"))), "3.00");
        assert_eq!(show(d("0.1").add(d("0.2"))), "0.3");
        // 35 digits: rounded half to even at the 34th.
        assert_eq!(
            show(d("9999999999999999999999999999999999").add(d("0.5"))),
            "1.000000000000000000000000000000000E+34"
        );
        assert_eq!(
            show(d("1E+6000").add(d("1E-6000"))),
            "1.000000000000000000000000000000000E+6000"
        );
        assert_eq!(show(d("-0").add(d("-0"))), "-0");
        assert_eq!(show(d("-1.5").add(d("1.5"))), "0.0");
        assert_eq!(show(d("Infinity").add(d("-Infinity"))), "NaN");
        assert_eq!(show(d("NaN").sub(d("1"))), "NaN");
        assert_eq!(
            show(d("9.999999999999999999999999999999999E+6144").add(d("1E+6144"))),
            "Infinity"
        );
    }

    #[test]
    fn mul_div_sqrt_at_decimal_precision() {
        assert_eq!(show(d("1.10").mul(d("3"))), "3.30");
        assert_eq!(show(d("-0").mul(d("5"))), "-0");
        assert_eq!(
            show(d("1").div(d("3"))),
            "0.3333333333333333333333333333333333"
        );
        assert_eq!(
            show(d("2").div(d("3"))),
            "0.6666666666666666666666666666666667"
        );
        assert_eq!(show(d("10").div(d("4"))), "2.5");
        assert_eq!(show(d("1.00").div(d("1"))), "1.00");
        assert_eq!(show(d("100").div(d("10"))), "10");
        assert_eq!(show(d("1").div(d("0"))), "Infinity");
        assert_eq!(
            show(d("2").sqrt().unwrap()),
            "1.414213562373095048801688724209698"
        );
        assert_eq!(show(d("4").sqrt().unwrap()), "2");
        assert_eq!(show(d("1.00").sqrt().unwrap()), "1.0");
        assert_eq!(show(d("-0").sqrt().unwrap()), "-0");
        assert!(d("-1").sqrt().is_none());
        assert_eq!(show(d("1E-6176").mul(d("0.1"))), "0E-6176");
    }

    #[test]
    fn quantize_and_conversions() {
        assert_eq!(show(d("1.298").quantize(-2, Rounding::HalfEven)), "1.30");
        assert_eq!(show(d("1.298").quantize(-4, Rounding::HalfEven)), "1.2980");
        assert_eq!(show(d("1.298").quantize(-2, Rounding::TowardZero)), "1.29");
        assert_eq!(show(d("2.5").quantize(0, Rounding::HalfEven)), "2");
        assert_eq!(show(d("-0.4").quantize(0, Rounding::HalfEven)), "-0");
        assert_eq!(
            show(d("1234.5678").quantize(2, Rounding::HalfEven)),
            "1.2E+3"
        );
        assert_eq!(show(d("-1.5").round_integral(Rounding::Ceiling)), "-1");
        assert_eq!(show(d("-1.5").round_integral(Rounding::Floor)), "-2");
        assert_eq!(show(d("1E+3").round_integral(Rounding::Floor)), "1E+3");
        assert_eq!(
            show(D128::from_f64(2.5).into_decimal128()),
            "2.50000000000000"
        );
        assert_eq!(
            show(D128::from_f64(0.1).into_decimal128()),
            "0.100000000000000"
        );
        assert_eq!(
            show(D128::from_f64(1e20).into_decimal128()),
            "1.00000000000000E+20"
        );
        assert_eq!(show(D128::from_f64(-0.0).into_decimal128()), "-0");
        assert_eq!(d("-9223372036854775808.9").trunc_i64(), Some(i64::MIN));
        assert_eq!(d("9223372036854775808").trunc_i64(), None);
        assert_eq!(d("1.2E+3").trunc_i64(), Some(1200));
    }
}
