//! Accumulation shared by the expression forms of `$sum`/`$avg`/`$min`/`$max` and by `$group`.

use super::*;

/// A running `$sum`, `$avg`, `$min` or `$max`.
#[derive(Debug, Clone)]
pub(crate) enum Accumulator {
    Sum(Num),
    Avg(Num, u64),
    Min(Option<Bson>),
    Max(Option<Bson>),
}

impl Accumulator {
    pub(crate) fn new(op: &str) -> Result<Accumulator> {
        Ok(match op {
            "$sum" => Accumulator::Sum(Num::Int(0)),
            "$avg" => Accumulator::Avg(Num::Int(0), 0),
            "$min" => Accumulator::Min(None),
            "$max" => Accumulator::Max(None),
            other => return Err(unknown_operator(other)),
        })
    }

    /// Adds a value: sums and averages ignore non-numbers; min and max ignore null and missing.
    pub(crate) fn add(&mut self, v: Option<Bson>) -> Result<()> {
        match self {
            Accumulator::Sum(total) => {
                if let Some(n) = v.as_ref().and_then(Num::from_bson) {
                    *total = total.add(n);
                }
            }
            Accumulator::Avg(total, count) => {
                if let Some(n) = v.as_ref().and_then(Num::from_bson) {
                    *total = total.add(n);
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
            Accumulator::Sum(total) => total.to_bson(),
            Accumulator::Avg(total, count) => {
                if *count == 0 {
                    Bson::Null
                } else if let Num::Decimal(_) = total {
                    total.div(Num::Long(*count as i64)).to_bson()
                } else {
                    Bson::Double(total.f64() / *count as f64)
                }
            }
            Accumulator::Min(v) | Accumulator::Max(v) => v.clone().unwrap_or(Bson::Null),
        }
    }
}
