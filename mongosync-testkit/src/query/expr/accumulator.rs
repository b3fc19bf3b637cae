//! Accumulation shared by the expression forms of `$sum`/`$avg`/`$min`/`$max` and by `$group`.

use super::*;

/// A running `$sum`, `$avg`, `$min` or `$max`. Sums of doubles carry the rounding error of
/// each addition (TwoSum), as the server's `DoubleDoubleSummation`: ten 0.1s sum to 1.
#[derive(Debug, Clone)]
pub(crate) enum Accumulator {
    Sum(Num, f64),
    Avg(Num, f64, u64),
    Min(Option<Bson>),
    Max(Option<Bson>),
}

impl Accumulator {
    pub(crate) fn new(op: &str) -> Result<Accumulator> {
        Ok(match op {
            "$sum" => Accumulator::Sum(Num::Int(0), 0.0),
            "$avg" => Accumulator::Avg(Num::Int(0), 0.0, 0),
            "$min" => Accumulator::Min(None),
            "$max" => Accumulator::Max(None),
            other => return Err(unknown_operator(other)),
        })
    }

    /// Adds a value: sums and averages ignore non-numbers; min and max ignore null and missing.
    pub(crate) fn add(&mut self, v: Option<Bson>) -> Result<()> {
        match self {
            Accumulator::Sum(total, error) => {
                if let Some(n) = v.as_ref().and_then(Num::from_bson) {
                    *total = compensated_add(*total, n, error);
                }
            }
            Accumulator::Avg(total, error, count) => {
                if let Some(n) = v.as_ref().and_then(Num::from_bson) {
                    *total = compensated_add(*total, n, error);
                    *count += 1;
                }
            }
            Accumulator::Min(cur) => {
                if !nullish(&v)
                    && cur
                        .as_ref()
                        .is_none_or(|c| compare_values(v.as_ref(), Some(c)) == Ordering::Less)
                {
                    *cur = v;
                }
            }
            Accumulator::Max(cur) => {
                if !nullish(&v)
                    && cur
                        .as_ref()
                        .is_none_or(|c| compare_values(v.as_ref(), Some(c)) == Ordering::Greater)
                {
                    *cur = v;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(&self) -> Bson {
        match self {
            // Adding a zero error would turn -0.0 into 0.0.
            Accumulator::Sum(Num::Double(d), error) if *error != 0.0 => Bson::Double(d + error),
            Accumulator::Sum(total, _) => total.to_bson(),
            Accumulator::Avg(total, error, count) => {
                if *count == 0 {
                    Bson::Null
                } else if let Num::Decimal(_) = total {
                    total.div(Num::Long(*count as i64)).to_bson()
                } else if let Num::Double(d) = total
                    && *error != 0.0
                {
                    Bson::Double((d + error) / *count as f64)
                } else {
                    Bson::Double(total.f64() / *count as f64)
                }
            }
            Accumulator::Min(v) | Accumulator::Max(v) => v.clone().unwrap_or(Bson::Null),
        }
    }
}

/// `total + n` in the numeric tower; when the result is a double, the addition's rounding
/// error (Knuth's TwoSum) goes into `error`, so the final `total + error` is the sum rounded
/// once.
fn compensated_add(total: Num, n: Num, error: &mut f64) -> Num {
    let sum = total.add(n);
    if let Num::Double(s) = sum
        && s.is_finite()
    {
        let (a, b) = (total.f64(), n.f64());
        let b_virtual = s - a;
        *error += (a - (s - b_virtual)) + (b - b_virtual);
    }
    sum
}

/// A parsed `$median`/`$percentile` specification (the server's IDL spec): the percentiles
/// asked for. Only `method: "approximate"` is accepted, as 8.x without its accurate-percentile
/// feature flag.
pub(crate) fn quantile_spec(
    name: &str,
    arg: &Bson,
    object_code: i32,
    scope_doc: &Document,
) -> Result<(Bson, Vec<f64>)> {
    let median = name == "$median";
    let Bson::Document(d) = arg else {
        return Err(CommandError::new(
            object_code,
            format!(
                "specification must be an object; found {name}: {}",
                crate::query::matcher::server_display(arg)
            ),
        ));
    };
    // The IDL spec: unknown fields first, then required ones in declaration order.
    let allowed: &[&str] = if median {
        &["input", "method"]
    } else {
        &["input", "p", "method"]
    };
    if let Some(k) = d.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(CommandError::new(
            40415,
            format!("BSON field '{name}.{k}' is an unknown field."),
        ));
    }
    if let Some(k) = allowed.iter().find(|k| !d.contains_key(**k)) {
        return Err(CommandError::new(
            40414,
            format!("BSON field '{name}.{k}' is missing but a required field"),
        ));
    }
    match d.get("method") {
        Some(Bson::String(m)) if m == "approximate" => {}
        Some(Bson::String(_)) => {
            return Err(CommandError::bad_value(
                "Currently only 'approximate' can be used as percentile 'method'.",
            ));
        }
        other => {
            return Err(CommandError::new(
                codes::TYPE_MISMATCH,
                format!(
                    "BSON field '{name}.method' is the wrong type '{}', expected type 'string'",
                    type_name(other)
                ),
            ));
        }
    }
    let ps = if median {
        vec![0.5]
    } else {
        // `p` must be constant: it is evaluated once, against the given document.
        let p = evaluate(
            d.get("p").unwrap_or(&Bson::Null),
            scope_doc,
            &Document::new(),
        )?;
        percentiles(p.unwrap_or(Bson::Null))?
    };
    Ok((d.get("input").cloned().unwrap_or(Bson::Null), ps))
}

/// The numbers a quantile takes from a value (NaN skipped, as DiscretePercentile does).
pub(crate) fn quantile_samples(v: &Bson, out: &mut Vec<f64>) {
    if let Some(n) = Num::from_bson(v) {
        let x = n.f64();
        if !x.is_nan() {
            out.push(x);
        }
    }
}

/// The result of `$median` (one value or null) or `$percentile` (an array, nulls without
/// samples) over `samples`, with the discrete ranks of the server's `DiscretePercentile`
/// (which its t-digest matches on small inputs): `ceil(n·p) - 1`, ties to the lower rank.
pub(crate) fn quantile_result(median: bool, ps: &[f64], mut samples: Vec<f64>) -> Bson {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let at = |p: f64| -> Bson {
        if n == 0 {
            return Bson::Null;
        }
        let rank = if p >= 1.0 {
            n - 1
        } else {
            ((n as f64 * p).ceil() as usize).max(1) - 1
        };
        Bson::Double(samples[rank])
    };
    if median {
        at(0.5)
    } else {
        Bson::Array(ps.iter().map(|p| at(*p)).collect())
    }
}

/// The expression forms of `$median` and `$percentile` (the server's
/// `evaluateAccumulatorQuantile`): a number gives itself for every `p`; an array's numeric
/// elements give discrete percentiles; anything else gives null(s).
pub(super) fn op_quantile(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let median = name == "$median";
    let (input, ps) = quantile_spec(
        name,
        arg,
        if median { 7436201 } else { 7436200 },
        scope.root,
    )?;
    let mut samples = Vec::new();
    match eval(&input, scope)? {
        Some(Bson::Array(items)) => items.iter().for_each(|v| quantile_samples(v, &mut samples)),
        Some(v) if Num::from_bson(&v).is_some() => {
            // A number is every percentile of itself, NaN included.
            samples.push(Num::from_bson(&v).map_or(0.0, Num::f64));
        }
        _ => {}
    }
    Ok(Some(quantile_result(median, &ps, samples)))
}

/// `$percentile.p`: a non-empty array of numbers in [0, 1] (7750301-7750303).
fn percentiles(v: Bson) -> Result<Vec<f64>> {
    const MSG: &str =
        "The $percentile 'p' field must be an array of numbers from [0.0, 1.0], but found: ";
    let Bson::Array(items) = &v else {
        return Err(CommandError::new(
            7750301,
            format!("{MSG}{}", crate::query::matcher::server_display(&v)),
        ));
    };
    if items.is_empty() {
        return Err(CommandError::new(7750301, format!("{MSG}[]")));
    }
    items
        .iter()
        .map(|x| {
            let Some(n) = Num::from_bson(x) else {
                return Err(CommandError::new(
                    7750302,
                    format!("{MSG}{}", crate::query::matcher::server_display(x)),
                ));
            };
            let f = n.f64();
            if !(0.0..=1.0).contains(&f) {
                return Err(CommandError::new(
                    7750303,
                    format!("{MSG}{}", stream_double(f)),
                ));
            }
            Ok(f)
        })
        .collect()
}
