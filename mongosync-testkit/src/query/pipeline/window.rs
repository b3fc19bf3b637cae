//! `$setWindowFields`: partitions sorted by `sortBy`, and per document a window function over
//! a document-based or range-based window (the server's `document_source_set_window_fields`,
//! `window_bounds.cpp` and `window_function_expression.cpp`, with their parse errors).

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::error::{CommandError, Result};
use crate::query::compare::compare;
use crate::query::expr::{self, Accumulator, DocMeta, Num};
use crate::query::sort::{SortSpec, sort_key};

use super::group::AccSpec;
use super::metadata::{Row, compare_rows, meta_or_empty};

const FAILED_TO_PARSE: i32 = 9;

fn parse_error(msg: impl Into<String>) -> CommandError {
    CommandError::new(FAILED_TO_PARSE, msg)
}

#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Unbounded,
    Current,
    Value(Bson),
}

#[derive(Debug, Clone)]
enum Bounds {
    Documents(Bound, Bound),
    /// Range bounds on the single ascending sort field, with a time unit for dates.
    Range(Bound, Bound, Option<String>),
}

#[derive(Debug, Clone)]
enum Func {
    /// `$sum`, `$avg`, `$min`, `$max` through the group accumulators.
    Acc(&'static str),
    Count,
    Push,
    AddToSet,
    First,
    Last,
    StdDev {
        sample: bool,
    },
    Rank,
    DenseRank,
    DocumentNumber,
    Shift {
        by: i64,
        default: Bson,
    },
    Locf,
    LinearFill,
    /// `$derivative`/`$integral` over the sort field, per `unit` milliseconds for dates.
    Derivative {
        unit: Option<i64>,
    },
    Integral {
        unit: Option<i64>,
    },
    ExpMovingAvg {
        alpha: f64,
    },
    Covariance {
        sample: bool,
    },
    /// The `$group` accumulators that are also window functions (`$topN`, `$firstN`,
    /// `$minN`, `$median`, `$concatArrays`...), accumulated over each window's documents.
    Group(Box<AccSpec>),
}

#[derive(Debug, Clone)]
struct Output {
    path: Vec<String>,
    func: Func,
    arg: Bson,
    bounds: Bounds,
}

#[derive(Debug, Clone)]
pub(super) struct SetWindowFields {
    partition_by: Option<Bson>,
    sort_by: Option<SortSpec>,
    /// The single sort field and whether it ascends (for range windows and ranks).
    sort_fields: Vec<(String, bool)>,
    outputs: Vec<Output>,
}

fn parse_bound(v: &Bson, documents: bool, unit: bool) -> Result<Bound> {
    match v {
        Bson::String(s) if s == "unbounded" => Ok(Bound::Unbounded),
        Bson::String(s) if s == "current" => Ok(Bound::Current),
        Bson::String(_) => Err(parse_error(
            "Window bounds must be 'unbounded', 'current', or a number.",
        )),
        _ => {
            let Some(n) = Num::from_bson(v) else {
                return Err(parse_error(if documents || unit {
                    "Window bounds must be 'unbounded', 'current', or a number."
                } else {
                    "Range-based bounds expression must be a number"
                }));
            };
            if (documents || unit) && n.f64().fract() != 0.0 {
                return Err(parse_error(if documents {
                    "Numeric document-based bounds must be an integer".to_string()
                } else {
                    "With 'unit', range-based bounds must be an integer".to_string()
                }));
            }
            Ok(Bound::Value(v.clone()))
        }
    }
}

fn bound_value(b: &Bound) -> Option<f64> {
    match b {
        Bound::Current => Some(0.0),
        Bound::Value(v) => Num::from_bson(v).map(Num::f64),
        Bound::Unbounded => None,
    }
}

fn parse_window(v: &Bson, sorted: &[(String, bool)], has_sort: bool) -> Result<Bounds> {
    let Bson::Document(w) = v else {
        return Err(parse_error("'window' field must be an object"));
    };
    let (documents, range, unit) = (w.get("documents"), w.get("range"), w.get("unit"));
    if documents.is_some() && range.is_some() {
        return Err(parse_error(
            "Window bounds can specify either 'documents' or 'unit', not both.",
        ));
    }
    if range.is_none() && unit.is_some() {
        return Err(parse_error(
            "Window bounds can only specify 'unit' with range-based bounds.",
        ));
    }
    if range.is_none() && documents.is_none() {
        if !w.is_empty() {
            return Err(parse_error(
                "'window' field can only contain 'documents' as the only argument or 'range' with an optional 'unit' field",
            ));
        }
        return Ok(Bounds::Documents(Bound::Unbounded, Bound::Unbounded));
    }
    // The server prints the element with its name: `documents: [ 0 ]`.
    let unpack = |name: &str, e: &Bson| -> Result<(Bson, Bson)> {
        match e {
            Bson::Array(a) if a.len() == 2 => Ok((a[0].clone(), a[1].clone())),
            _ => Err(parse_error(format!(
                "Window bounds must be a 2-element array: {name}: {}",
                crate::query::matcher::server_display(e)
            ))),
        }
    };
    let forward = |lo: &Bound, hi: &Bound| -> Result<()> {
        if let (Some(l), Some(h)) = (bound_value(lo), bound_value(hi))
            && l > h
        {
            let show = |b: &Bound, x: f64| match b {
                Bound::Value(v) => crate::query::matcher::server_display(v),
                _ => format!("{x}"),
            };
            return Err(CommandError::new(
                5339900,
                format!(
                    "Lower bound must not exceed upper bound: [{}, {}]",
                    show(lo, l),
                    show(hi, h)
                ),
            ));
        }
        Ok(())
    };
    if let Some(d) = documents {
        if w.len() != 1 {
            return Err(parse_error(
                "'window' field that specifies documents cannot have other fields",
            ));
        }
        let (l, h) = unpack("documents", d)?;
        let (lo, hi) = (parse_bound(&l, true, false)?, parse_bound(&h, true, false)?);
        forward(&lo, &hi)?;
        if (lo != Bound::Unbounded || hi != Bound::Unbounded) && !has_sort {
            return Err(CommandError::new(
                5339901,
                "Document-based bounds require a sortBy",
            ));
        }
        return Ok(Bounds::Documents(lo, hi));
    }
    let (l, h) = unpack("range", range.unwrap_or(&Bson::Null))?;
    let unit = match unit {
        None => {
            if w.len() != 1 {
                return Err(parse_error(
                    "'window' field that specifies range cannot have other fields besides 'unit'",
                ));
            }
            None
        }
        Some(u) => {
            if w.len() != 2 {
                return Err(parse_error(
                    "'window' field that specifies unit cannot have other fields besides 'range'",
                ));
            }
            let Bson::String(u) = u else {
                return Err(parse_error("'unit' must be a string"));
            };
            if unit_millis(u).is_none() {
                return Err(CommandError::new(
                    FAILED_TO_PARSE,
                    format!("unknown time unit value: {u}"),
                ));
            }
            Some(u.clone())
        }
    };
    let (lo, hi) = (
        parse_bound(&l, false, unit.is_some())?,
        parse_bound(&h, false, unit.is_some())?,
    );
    forward(&lo, &hi)?;
    if !has_sort || sorted.len() != 1 {
        return Err(CommandError::new(
            5339902,
            "Range-based bounds require sortBy a single field",
        ));
    }
    if !sorted[0].1 {
        return Err(CommandError::new(
            8947401,
            "Range-based bounds require an ascending sortBy",
        ));
    }
    Ok(Bounds::Range(lo, hi, unit))
}

/// Fixed-length time units in milliseconds; months, quarters and years step by calendar.
fn unit_millis(u: &str) -> Option<i64> {
    Some(match u {
        "millisecond" => 1,
        "second" => 1000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 7 * 86_400_000,
        "month" | "quarter" | "year" => 0,
        _ => return None,
    })
}

fn add_units(ms: i64, n: i64, unit: &str) -> i64 {
    expr::add_named_units(ms, unit, n).unwrap_or(ms)
}

impl SetWindowFields {
    pub(super) fn parse(spec: &Bson) -> Result<SetWindowFields> {
        let Bson::Document(spec) = spec else {
            return Err(parse_error(format!(
                "the $setWindowFields stage specification must be an object, found {}",
                super::type_name(spec)
            )));
        };
        for k in spec.keys() {
            if !matches!(k.as_str(), "partitionBy" | "sortBy" | "output") {
                return Err(CommandError::new(
                    40415,
                    format!("BSON field '$setWindowFields.{k}' is an unknown field."),
                ));
            }
        }
        let sort_doc = match spec.get("sortBy") {
            None => None,
            Some(Bson::Document(d)) => Some(d.clone()),
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "BSON field '$setWindowFields.sortBy' is the wrong type '{}', expected type 'object'",
                    super::type_name(other)
                )));
            }
        };
        let output = match spec.get("output") {
            Some(Bson::Document(d)) => d,
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "BSON field '$setWindowFields.output' is the wrong type '{}', expected type 'object'",
                    super::type_name(other)
                )));
            }
            None => {
                return Err(CommandError::new(
                    40414,
                    "BSON field '$setWindowFields.output' is missing but a required field",
                ));
            }
        };
        let sort_by = sort_doc.as_ref().map(SortSpec::new).transpose()?;
        let sort_fields: Vec<(String, bool)> = sort_doc
            .iter()
            .flat_map(|d| d.iter())
            .map(|(k, v)| (k.clone(), Num::from_bson(v).is_none_or(|n| n.f64() > 0.0)))
            .collect();
        let mut outputs = Vec::new();
        for (field, fspec) in output {
            let Bson::Document(fspec) = fspec else {
                return Err(parse_error(format!(
                    "The field '{field}' must be an object"
                )));
            };
            outputs.push(parse_output(field, fspec, &sort_fields, sort_by.is_some())?);
        }
        Ok(SetWindowFields {
            partition_by: spec.get("partitionBy").cloned(),
            sort_by,
            sort_fields,
            outputs,
        })
    }

    /// Computes the window fields; each document keeps its metadata (the stage adds fields
    /// to its input documents, as the server's does).
    pub(super) fn run_rows(&self, rows: Vec<Row>, vars: &Document) -> Result<Vec<Row>> {
        let mut keyed = Vec::with_capacity(rows.len());
        for Row { doc: d, meta } in rows {
            let key = match &self.partition_by {
                Some(e) => expr::evaluate_with_meta(e, &d, vars, Some(meta_or_empty(&meta)))?
                    .unwrap_or(Bson::Null),
                None => Bson::Null,
            };
            if matches!(key, Bson::Array(_)) {
                return Err(CommandError::new(
                    5340401,
                    "An expression used to partition cannot evaluate to value of type array",
                ));
            }
            keyed.push((key, d, meta));
        }
        keyed.sort_by(|(ka, a, ma), (kb, b, mb)| {
            compare(ka, kb).then_with(|| {
                self.sort_by.as_ref().map_or(Ordering::Equal, |s| {
                    s.compare_meta(a, ma.as_deref(), b, mb.as_deref())
                })
            })
        });
        let mut out = Vec::with_capacity(keyed.len());
        let mut start = 0;
        while start < keyed.len() {
            let mut end = start + 1;
            while end < keyed.len() && compare(&keyed[start].0, &keyed[end].0) == Ordering::Equal {
                end += 1;
            }
            let mut part: Vec<Document> = keyed[start..end]
                .iter()
                .map(|(_, d, _)| d.clone())
                .collect();
            let mut results = Vec::with_capacity(self.outputs.len());
            for o in &self.outputs {
                results.push(self.compute(o, &part, vars)?);
            }
            for (o, values) in self.outputs.iter().zip(results) {
                for (d, v) in part.iter_mut().zip(values) {
                    super::set_path(d, &o.path, v);
                }
            }
            let metas = keyed[start..end].iter_mut().map(|(_, _, m)| m.take());
            out.extend(
                part.into_iter()
                    .zip(metas)
                    .map(|(doc, meta)| Row { doc, meta }),
            );
            start = end;
        }
        Ok(out)
    }

    fn sort_value(&self, d: &Document) -> Bson {
        self.sort_fields
            .first()
            .map_or(Bson::Null, |(f, _)| sort_key(d, f, false))
    }

    fn same_rank(&self, a: &Document, b: &Document) -> bool {
        self.sort_by
            .as_ref()
            .is_none_or(|s| s.compare(a, b) == Ordering::Equal)
    }

    /// The inclusive index range of document `i`'s window, `None` when it is empty.
    fn window(
        &self,
        bounds: &Bounds,
        part: &[Document],
        keys: &[Bson],
        i: usize,
    ) -> Result<Option<(usize, usize)>> {
        let n = part.len() as i64;
        match bounds {
            Bounds::Documents(lo, hi) => {
                let pos = |b: &Bound, unbounded: i64| match b {
                    Bound::Unbounded => unbounded,
                    Bound::Current => i as i64,
                    Bound::Value(v) => i as i64 + Num::from_bson(v).map_or(0, |n| n.f64() as i64),
                };
                let (l, h) = (pos(lo, 0).max(0), pos(hi, n - 1).min(n - 1));
                Ok((l <= h).then_some((l as usize, h as usize)))
            }
            Bounds::Range(lo, hi, unit) => {
                let here = &keys[i];
                let (low, high) = match unit {
                    Some(u) => {
                        let Bson::DateTime(t) = here else {
                            return Err(CommandError::new(
                                5429513,
                                format!(
                                    "Invalid range: Expected the sortBy field to be a Date, but it was {}",
                                    super::type_name(here)
                                ),
                            ));
                        };
                        let ms = t.timestamp_millis();
                        let at = |b: &Bound| match b {
                            Bound::Unbounded => None,
                            Bound::Current => Some(Bson::DateTime(*t)),
                            Bound::Value(v) => {
                                let k = Num::from_bson(v).map_or(0, |n| n.f64() as i64);
                                Some(Bson::DateTime(bson::DateTime::from_millis(add_units(
                                    ms, k, u,
                                ))))
                            }
                        };
                        (at(lo), at(hi))
                    }
                    None => {
                        let Some(x) = Num::from_bson(here) else {
                            return Err(CommandError::new(
                                5429414,
                                format!(
                                    "Invalid range: Expected the sortBy field to be a number, but it was {}",
                                    super::type_name(here)
                                ),
                            ));
                        };
                        let at = |b: &Bound| match b {
                            Bound::Unbounded => None,
                            Bound::Current => Some(here.clone()),
                            Bound::Value(v) => {
                                Some(x.add(Num::from_bson(v).unwrap_or(Num::Int(0))).to_bson())
                            }
                        };
                        (at(lo), at(hi))
                    }
                };
                let inside = |k: &Bson| {
                    low.as_ref().is_none_or(|l| compare(k, l) != Ordering::Less)
                        && high
                            .as_ref()
                            .is_none_or(|h| compare(k, h) != Ordering::Greater)
                };
                // Sorted ascending: the window is a contiguous run of the partition.
                let first = (0..part.len()).find(|&j| inside(&keys[j]));
                Ok(first.map(|f| {
                    let mut l = f;
                    while l + 1 < part.len() && inside(&keys[l + 1]) {
                        l += 1;
                    }
                    (f, l)
                }))
            }
        }
    }

    fn compute(&self, o: &Output, part: &[Document], vars: &Document) -> Result<Vec<Bson>> {
        let n = part.len();
        match &o.func {
            Func::DocumentNumber => return Ok((1..=n as i64).map(Bson::Int64).collect()),
            Func::Rank | Func::DenseRank => {
                let mut out = Vec::with_capacity(n);
                let (mut rank, mut dense) = (1i64, 1i64);
                for i in 0..n {
                    if i > 0 && !self.same_rank(&part[i - 1], &part[i]) {
                        rank = i as i64 + 1;
                        dense += 1;
                    }
                    out.push(Bson::Int64(if matches!(o.func, Func::Rank) {
                        rank
                    } else {
                        dense
                    }));
                }
                return Ok(out);
            }
            Func::Group(acc) => {
                let keys: Vec<Bson> = part.iter().map(|d| self.sort_value(d)).collect();
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    let mut state = acc.init()?;
                    if let Some((l, h)) = self.window(&o.bounds, part, &keys, i)? {
                        for d in &part[l..=h] {
                            acc.add(&mut state, d, vars, Some(&DocMeta::EMPTY))?;
                        }
                    }
                    out.push(acc.finish(state, &Bson::Null, vars)?);
                }
                return Ok(out);
            }
            _ => {}
        }
        let values = part
            .iter()
            .map(|d| expr::evaluate(&o.arg, d, vars))
            .collect::<Result<Vec<_>>>()?;
        match &o.func {
            Func::Shift { by, default } => {
                return Ok((0..n as i64)
                    .map(|i| {
                        let j = i + by;
                        if j < 0 || j >= n as i64 {
                            default.clone()
                        } else {
                            values[j as usize].clone().unwrap_or(Bson::Null)
                        }
                    })
                    .collect());
            }
            Func::ExpMovingAvg { alpha } => {
                let mut avg: Option<f64> = None;
                return Ok(values
                    .iter()
                    .map(|v| {
                        if let Some(x) = v.as_ref().and_then(Num::from_bson) {
                            let x = x.f64();
                            avg = Some(avg.map_or(x, |a| x * alpha + a * (1.0 - alpha)));
                        }
                        avg.map_or(Bson::Null, Bson::Double)
                    })
                    .collect());
            }
            Func::LinearFill => {
                let xs: Vec<Option<f64>> = part
                    .iter()
                    .map(|d| sort_number(&self.sort_value(d)))
                    .collect();
                let known: Vec<usize> = (0..n)
                    .filter(|&i| values[i].as_ref().is_some_and(|v| *v != Bson::Null))
                    .collect();
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    if let Some(v) = values[i].as_ref().filter(|v| **v != Bson::Null) {
                        out.push(v.clone());
                        continue;
                    }
                    let before = known.iter().rev().find(|&&k| k < i);
                    let after = known.iter().find(|&&k| k > i);
                    let filled = match (before, after) {
                        (Some(&a), Some(&b)) => {
                            let ya = values[a].as_ref().and_then(Num::from_bson);
                            let yb = values[b].as_ref().and_then(Num::from_bson);
                            match (ya, yb, xs[a], xs[b], xs[i]) {
                                (Some(ya), Some(yb), Some(xa), Some(xb), Some(x)) if xb != xa => {
                                    let (ya, yb) = (ya.f64(), yb.f64());
                                    Bson::Double(ya + (yb - ya) * (x - xa) / (xb - xa))
                                }
                                _ => Bson::Null,
                            }
                        }
                        _ => Bson::Null,
                    };
                    out.push(filled);
                }
                return Ok(out);
            }
            Func::Locf => {
                let mut last = Bson::Null;
                return Ok(values
                    .iter()
                    .map(|v| {
                        match v {
                            Some(v) if *v != Bson::Null => last = v.clone(),
                            _ => {}
                        }
                        last.clone()
                    })
                    .collect());
            }
            _ => {}
        }
        let keys: Vec<Bson> = part.iter().map(|d| self.sort_value(d)).collect();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let win = self.window(&o.bounds, part, &keys, i)?;
            let slice: &[Option<Bson>] = match win {
                Some((l, h)) => &values[l..=h],
                None => &[],
            };
            let xs = match win {
                Some((l, h)) => &keys[l..=h],
                None => &[],
            };
            out.push(apply(&o.func, slice, xs)?);
        }
        Ok(out)
    }
}

/// A window function over the values of its window's documents (`None`: missing).
fn apply(func: &Func, values: &[Option<Bson>], xs: &[Bson]) -> Result<Bson> {
    Ok(match func {
        Func::Derivative { unit } | Func::Integral { unit } => {
            // Points (sort key, value); dates count in `unit` milliseconds.
            let mut pts = Vec::with_capacity(values.len());
            for (x, v) in xs.iter().zip(values) {
                let x = match (x, unit) {
                    (Bson::DateTime(t), Some(u)) => t.timestamp_millis() as f64 / *u as f64,
                    (Bson::DateTime(_), None) => {
                        return Err(CommandError::new(
                            5624901,
                            "$derivative and $integral need a 'unit' when the sortBy field is a date",
                        ));
                    }
                    (x, _) => match Num::from_bson(x) {
                        Some(n) => n.f64(),
                        None => continue,
                    },
                };
                if let Some(y) = v.as_ref().and_then(Num::from_bson) {
                    pts.push((x, y.f64()));
                }
            }
            if let Func::Derivative { .. } = func {
                match (pts.first(), pts.last()) {
                    (Some(a), Some(b)) if pts.len() >= 2 && b.0 != a.0 => {
                        Bson::Double((b.1 - a.1) / (b.0 - a.0))
                    }
                    _ => Bson::Null,
                }
            } else if pts.is_empty() {
                Bson::Null
            } else {
                let area: f64 = pts
                    .windows(2)
                    .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
                    .sum();
                Bson::Double(area)
            }
        }
        Func::Covariance { sample } => {
            let pairs: Vec<(f64, f64)> = values
                .iter()
                .flatten()
                .filter_map(|v| match v {
                    Bson::Array(a) if a.len() == 2 => {
                        Some((Num::from_bson(&a[0])?.f64(), Num::from_bson(&a[1])?.f64()))
                    }
                    _ => None,
                })
                .collect();
            let n = pairs.len() as f64;
            if pairs.is_empty() || (*sample && pairs.len() < 2) {
                Bson::Null
            } else {
                let mx = pairs.iter().map(|p| p.0).sum::<f64>() / n;
                let my = pairs.iter().map(|p| p.1).sum::<f64>() / n;
                let c: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
                Bson::Double(c / if *sample { n - 1.0 } else { n })
            }
        }
        Func::Acc(name) => {
            let mut acc = Accumulator::new(name)?;
            for v in values {
                acc.add(v.clone())?;
            }
            acc.finish()
        }
        Func::Count => Bson::Int32(values.len() as i32),
        Func::Push => Bson::Array(values.iter().flatten().cloned().collect()),
        Func::AddToSet => {
            let mut set: Vec<Bson> = Vec::new();
            for v in values.iter().flatten() {
                if !set.iter().any(|s| compare(s, v) == Ordering::Equal) {
                    set.push(v.clone());
                }
            }
            Bson::Array(set)
        }
        Func::First => values.first().cloned().flatten().unwrap_or(Bson::Null),
        Func::Last => values.last().cloned().flatten().unwrap_or(Bson::Null),
        Func::StdDev { sample } => {
            let xs: Vec<f64> = values
                .iter()
                .flatten()
                .filter_map(Num::from_bson)
                .map(Num::f64)
                .collect();
            let count = xs.len() as f64;
            if xs.is_empty() || (*sample && xs.len() < 2) {
                Bson::Null
            } else {
                let mean = xs.iter().sum::<f64>() / count;
                let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
                Bson::Double((ss / if *sample { count - 1.0 } else { count }).sqrt())
            }
        }
        Func::Rank
        | Func::DenseRank
        | Func::DocumentNumber
        | Func::Shift { .. }
        | Func::Locf
        | Func::LinearFill
        | Func::ExpMovingAvg { .. }
        | Func::Group(_) => Bson::Null,
    })
}

/// A sort key as a number for interpolation (dates as milliseconds).
fn sort_number(v: &Bson) -> Option<f64> {
    match v {
        Bson::DateTime(t) => Some(t.timestamp_millis() as f64),
        v => Num::from_bson(v).map(Num::f64),
    }
}

fn parse_output(
    field: &str,
    spec: &Document,
    sorted: &[(String, bool)],
    has_sort: bool,
) -> Result<Output> {
    let Some((name, arg)) = spec.iter().find(|(k, _)| k.starts_with('$')) else {
        return Err(parse_error(format!(
            "Expected a $-prefixed window function{}",
            spec.keys()
                .next()
                .map(|k| format!(", {k}"))
                .unwrap_or_default()
        )));
    };
    let func = match name.as_str() {
        "$sum" => Func::Acc("$sum"),
        "$avg" => Func::Acc("$avg"),
        "$min" => Func::Acc("$min"),
        "$max" => Func::Acc("$max"),
        "$count" => Func::Count,
        "$push" => Func::Push,
        "$addToSet" => Func::AddToSet,
        "$first" => Func::First,
        "$last" => Func::Last,
        "$stdDevPop" => Func::StdDev { sample: false },
        "$stdDevSamp" => Func::StdDev { sample: true },
        "$rank" => Func::Rank,
        "$denseRank" => Func::DenseRank,
        "$documentNumber" => Func::DocumentNumber,
        "$shift" => Func::Shift {
            by: 0,
            default: Bson::Null,
        },
        "$locf" => Func::Locf,
        "$linearFill" => Func::LinearFill,
        "$derivative" => Func::Derivative { unit: None },
        "$integral" => Func::Integral { unit: None },
        "$expMovingAvg" => Func::ExpMovingAvg { alpha: 0.0 },
        "$covariancePop" => Func::Covariance { sample: false },
        "$covarianceSamp" => Func::Covariance { sample: true },
        // The server parses these with the accumulators' own argument checks.
        "$firstN" | "$lastN" | "$minN" | "$maxN" | "$top" | "$bottom" | "$topN" | "$bottomN"
        | "$median" | "$percentile" | "$concatArrays" | "$setUnion" => {
            let mut one = Document::new();
            one.insert(name.clone(), arg.clone());
            Func::Group(Box::new(AccSpec::parse(field, &Bson::Document(one))?))
        }
        other => {
            return Err(parse_error(format!(
                "Unrecognized window function, {other}"
            )));
        }
    };
    let mut bounds = None;
    for (k, v) in spec {
        if k == name {
            continue;
        }
        if k != "window" {
            return Err(parse_error(format!(
                "Window function found an unknown argument: {k}"
            )));
        }
        if matches!(
            func,
            Func::Rank
                | Func::DenseRank
                | Func::DocumentNumber
                | Func::Shift { .. }
                | Func::Locf
                | Func::LinearFill
                | Func::ExpMovingAvg { .. }
        ) {
            return Err(parse_error(format!(
                "{name} does not accept a 'window' field"
            )));
        }
        bounds = Some(parse_window(v, sorted, has_sort)?);
    }
    let bounds = bounds.unwrap_or(Bounds::Documents(Bound::Unbounded, Bound::Unbounded));
    let mut arg = arg.clone();
    let func = match func {
        Func::Count => {
            if !matches!(&arg, Bson::Document(d) if d.is_empty()) {
                return Err(parse_error("$count only accepts an empty object as input"));
            }
            Func::Count
        }
        Func::Rank | Func::DenseRank | Func::DocumentNumber => {
            if !matches!(&arg, Bson::Document(d) if d.is_empty()) {
                return Err(parse_error(format!(
                    "Window function {name} expects an empty object as argument"
                )));
            }
            if !has_sort {
                return Err(parse_error(format!(
                    "{name} must be specified with a top level sortBy expression with exactly one element"
                )));
            }
            func
        }
        Func::Shift { .. } => {
            let Bson::Document(d) = &arg else {
                return Err(parse_error("Argument to $shift must be an object"));
            };
            if !has_sort {
                return Err(parse_error("'$shift' requires a sortBy"));
            }
            let mut by = None;
            let mut default = Bson::Null;
            let mut output = None;
            for (k, v) in d {
                match k.as_str() {
                    "output" => output = Some(v.clone()),
                    "by" => match Num::from_bson(v) {
                        Some(n) if n.f64().fract() == 0.0 && n.f64().abs() <= i32::MAX as f64 => {
                            by = Some(n.f64() as i64)
                        }
                        _ => {
                            return Err(parse_error(
                                "'$shift:by' field must be an integer, but found ".to_string()
                                    + &crate::query::matcher::server_display(v),
                            ));
                        }
                    },
                    "default" => default = v.clone(),
                    other => {
                        return Err(parse_error(format!("Unknown argument in $shift: {other}")));
                    }
                }
            }
            let (Some(output), Some(by)) = (output, by) else {
                return Err(parse_error(
                    "$shift requires an 'output' expression and a 'by' field",
                ));
            };
            arg = output;
            Func::Shift { by, default }
        }
        Func::ExpMovingAvg { .. } => {
            // The server's ExpressionExpMovingAvg::parse, message for message.
            let sub = match &arg {
                Bson::Document(d) => d.clone(),
                _ => {
                    return Err(parse_error(
                        "$expMovingAvg must have exactly one argument that is an object",
                    ));
                }
            };
            if sub.len() != 2 || !sub.contains_key("input") {
                return Err(parse_error(
                    "$expMovingAvg sub object must have exactly two fields: An 'input' field, and either an 'N' field or an 'alpha' field",
                ));
            }
            if !has_sort {
                return Err(parse_error("$expMovingAvg requires an explicit 'sortBy'"));
            }
            let alpha = if let Some(nv) = sub.get("N") {
                let Some(n) = Num::from_bson(nv) else {
                    return Err(parse_error(format!(
                        "'N' field must be an integer, but found type {}",
                        super::type_name(nv)
                    )));
                };
                if n.f64().fract() != 0.0 {
                    return Err(parse_error(format!(
                        "'N' field must be an integer, but found  {}. To use a non-integer, use the 'alpha' argument instead",
                        crate::query::matcher::server_display(nv)
                    )));
                }
                if n.f64() <= 0.0 {
                    return Err(parse_error(format!(
                        "'N' must be greater than zero. Got {}",
                        n.f64() as i64
                    )));
                }
                2.0 / (n.f64() + 1.0)
            } else if let Some(av) = sub.get("alpha") {
                let Some(a) = Num::from_bson(av) else {
                    return Err(parse_error("'alpha' must be a number"));
                };
                if !(a.f64() > 0.0 && a.f64() < 1.0) {
                    return Err(parse_error(format!(
                        "'alpha' must be between 0 and 1 (exclusive), found alpha: {}",
                        crate::query::matcher::server_display(av)
                    )));
                }
                a.f64()
            } else {
                return Err(parse_error(
                    "Got unrecognized field in $expMovingAvg$expMovingAvg sub object must have exactly two fields: An 'input' field, and either an 'N' field or an 'alpha' field",
                ));
            };
            arg = sub.get("input").cloned().unwrap_or(Bson::Null);
            Func::ExpMovingAvg { alpha }
        }
        Func::Derivative { .. } | Func::Integral { .. } => {
            let Bson::Document(d) = &arg else {
                return Err(parse_error(format!(
                    "{name} expects an object with 'input' and an optional 'unit'"
                )));
            };
            let mut unit = None;
            let mut input = None;
            for (k, v) in d {
                match (k.as_str(), v) {
                    ("input", v) => input = Some(v.clone()),
                    ("unit", Bson::String(u)) if u != "month" && u != "quarter" && u != "year" => {
                        unit =
                            Some(unit_millis(u).ok_or_else(|| {
                                parse_error(format!("unknown time unit value: {u}"))
                            })?);
                    }
                    ("unit", _) => {
                        return Err(parse_error(format!(
                            "{name} 'unit' must be a fixed-length time unit"
                        )));
                    }
                    (other, _) => {
                        return Err(parse_error(format!(
                            "{name} got unexpected argument: {other}"
                        )));
                    }
                }
            }
            let Some(input) = input else {
                return Err(parse_error(format!(
                    "{name} requires an 'input' expression"
                )));
            };
            if !has_sort || sorted.len() != 1 {
                return Err(parse_error(format!(
                    "{name} requires a sortBy that consists of exactly one field"
                )));
            }
            arg = input;
            if matches!(func, Func::Derivative { .. }) {
                Func::Derivative { unit }
            } else {
                Func::Integral { unit }
            }
        }
        Func::LinearFill if !has_sort || sorted.len() != 1 => {
            return Err(parse_error(
                "$linearFill requires a sortBy that consists of exactly one field",
            ));
        }
        other => other,
    };
    Ok(Output {
        path: field.split('.').map(str::to_string).collect(),
        func,
        arg,
        bounds,
    })
}

#[cfg(test)]
mod tests {
    use bson::{Bson, Document, bson, doc};

    use super::super::Pipeline;

    fn run(stage: Document, input: Vec<Document>) -> Vec<Document> {
        Pipeline::parse(&[stage], &Document::new())
            .unwrap()
            .run_local(input)
            .unwrap()
    }

    fn parse_err(stage: Document) -> (i32, String) {
        let e = Pipeline::parse(&[stage], &Document::new()).unwrap_err();
        (e.code, e.message)
    }

    fn field(docs: &[Document], f: &str) -> Vec<Bson> {
        docs.iter()
            .map(|d| d.get(f).cloned().unwrap_or(Bson::Null))
            .collect()
    }

    fn sales() -> Vec<Document> {
        vec![
            doc! {"_id": 1, "s": "b", "t": 3, "v": 30},
            doc! {"_id": 2, "s": "a", "t": 2, "v": 20},
            doc! {"_id": 3, "s": "a", "t": 1, "v": 10},
            doc! {"_id": 4, "s": "b", "t": 1, "v": 5},
            doc! {"_id": 5, "s": "a", "t": 2, "v": 40},
        ]
    }

    #[test]
    fn running_totals_and_moving_windows_per_partition() {
        let out = run(
            doc! {"$setWindowFields": {
                "partitionBy": "$s",
                "sortBy": {"t": 1},
                "output": {
                    "run": {"$sum": "$v", "window": {"documents": ["unbounded", "current"]}},
                    "mov": {"$avg": "$v", "window": {"documents": [-1, 0]}},
                    "all": {"$max": "$v"},
                    "n": {"$count": {}},
                    "vals": {"$push": "$v", "window": {"documents": ["current", 1]}},
                    "first": {"$first": "$v", "window": {"documents": [2, 3]}},
                }
            }},
            sales(),
        );
        // Partitions in key order ("a" then "b"), each sorted by t (ties stay stable).
        assert_eq!(
            field(&out, "_id"),
            bson!([3, 2, 5, 4, 1]).as_array().unwrap().clone()
        );
        assert_eq!(
            field(&out, "run"),
            bson!([10, 30, 70, 5, 35]).as_array().unwrap().clone()
        );
        assert_eq!(
            field(&out, "mov"),
            bson!([10.0, 15.0, 30.0, 5.0, 17.5])
                .as_array()
                .unwrap()
                .clone()
        );
        assert_eq!(
            field(&out, "all"),
            bson!([40, 40, 40, 30, 30]).as_array().unwrap().clone()
        );
        assert_eq!(
            field(&out, "n"),
            bson!([3, 3, 3, 2, 2]).as_array().unwrap().clone()
        );
        assert_eq!(
            field(&out, "vals"),
            bson!([[10, 20], [20, 40], [40], [5, 30], [30]])
                .as_array()
                .unwrap()
                .clone()
        );
        // An empty window gives null.
        assert_eq!(
            field(&out, "first"),
            bson!([40, null, null, null, null])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn ranks_shift_locf_and_range_windows() {
        let out = run(
            doc! {"$setWindowFields": {
                "partitionBy": "$s",
                "sortBy": {"t": 1},
                "output": {
                    "rank": {"$rank": {}},
                    "dense": {"$denseRank": {}},
                    "num": {"$documentNumber": {}},
                    "prev": {"$shift": {"output": "$v", "by": -1, "default": "none"}},
                    "near": {"$sum": "$v", "window": {"range": [-1, 0]}},
                }
            }},
            sales(),
        );
        assert_eq!(
            field(&out, "rank"),
            bson!([1i64, 2i64, 2i64, 1i64, 2i64])
                .as_array()
                .unwrap()
                .clone()
        );
        assert_eq!(
            field(&out, "dense"),
            bson!([1i64, 2i64, 2i64, 1i64, 2i64])
                .as_array()
                .unwrap()
                .clone()
        );
        assert_eq!(
            field(&out, "num"),
            bson!([1i64, 2i64, 3i64, 1i64, 2i64])
                .as_array()
                .unwrap()
                .clone()
        );
        assert_eq!(
            field(&out, "prev"),
            bson!(["none", 10, 20, "none", 5])
                .as_array()
                .unwrap()
                .clone()
        );
        // t in [t-1, t]: a/1 → 10; a/2 → 10+20+40; b/1 → 5; b/3 → 30.
        assert_eq!(
            field(&out, "near"),
            bson!([10, 70, 70, 5, 30]).as_array().unwrap().clone()
        );

        let out = run(
            doc! {"$setWindowFields": {"sortBy": {"_id": 1}, "output": {"f": {"$locf": "$x"}}}},
            vec![
                doc! {"_id": 1},
                doc! {"_id": 2, "x": 7},
                doc! {"_id": 3, "x": null},
                doc! {"_id": 4, "x": 9},
            ],
        );
        assert_eq!(
            field(&out, "f"),
            bson!([null, 7, 7, 9]).as_array().unwrap().clone()
        );
    }

    #[test]
    fn time_unit_ranges_step_by_the_calendar() {
        let day = |d: i64| bson::DateTime::from_millis(d * 86_400_000);
        let out = run(
            doc! {"$setWindowFields": {
                "sortBy": {"d": 1},
                "output": {"w": {"$sum": "$v", "window": {"range": [-1, "current"], "unit": "day"}}}
            }},
            vec![
                doc! {"d": day(0), "v": 1},
                doc! {"d": day(1), "v": 2},
                doc! {"d": day(3), "v": 4},
            ],
        );
        assert_eq!(
            field(&out, "w"),
            bson!([1, 3, 4]).as_array().unwrap().clone()
        );
    }

    #[test]
    fn derivative_integral_moving_average_covariance_linear_fill() {
        let pts = vec![
            doc! {"x": 0, "y": 0},
            doc! {"x": 1, "y": 2},
            doc! {"x": 2, "y": 6},
            doc! {"x": 4, "y": null},
            doc! {"x": 5, "y": 10},
        ];
        let out = run(
            doc! {"$setWindowFields": {
                "sortBy": {"x": 1},
                "output": {
                    "d": {"$derivative": {"input": "$y"}, "window": {"documents": [-1, 0]}},
                    "i": {"$integral": {"input": "$y"}, "window": {"documents": ["unbounded", "current"]}},
                    "e": {"$expMovingAvg": {"input": "$y", "alpha": 0.5}},
                    "c": {"$covariancePop": ["$x", "$y"]},
                    "f": {"$linearFill": "$y"},
                }
            }},
            pts,
        );
        assert_eq!(
            field(&out, "d"),
            bson!([null, 2.0, 4.0, null, null])
                .as_array()
                .unwrap()
                .clone()
        );
        // Trapezoids over (0,0) (1,2) (2,6), then (5,10) after the null at x=4: 1 + 4 + 24.
        assert_eq!(
            field(&out, "i"),
            bson!([0.0, 1.0, 5.0, 5.0, 29.0])
                .as_array()
                .unwrap()
                .clone()
        );
        assert_eq!(
            field(&out, "e"),
            bson!([0.0, 1.0, 3.5, 3.5, 6.75])
                .as_array()
                .unwrap()
                .clone()
        );
        // Pairs (0,0) (1,2) (2,6) (5,10): mean x 2, mean y 4.5.
        let c = (2.0 * 4.5 + 1.0 * 2.5 + 0.0 + 3.0 * 5.5) / 4.0;
        assert_eq!(out[0].get("c"), Some(&Bson::Double(c)));
        assert_eq!(
            field(&out, "f"),
            bson!([0, 2, 6, 8.666666666666666, 10])
                .as_array()
                .unwrap()
                .clone()
        );
        let (code, msg) = parse_err(
            doc! {"$setWindowFields": {"sortBy": {"x": 1}, "output": {"e": {"$expMovingAvg": {"input": "$y", "N": 0}}}}},
        );
        assert_eq!(
            (code, msg.as_str()),
            (9, "'N' must be greater than zero. Got 0")
        );
        let (code, msg) = parse_err(
            doc! {"$setWindowFields": {"output": {"e": {"$expMovingAvg": {"input": "$y", "N": 2}}}}},
        );
        assert_eq!(
            (code, msg.as_str()),
            (9, "$expMovingAvg requires an explicit 'sortBy'")
        );
    }

    #[test]
    fn parse_errors_are_the_servers() {
        let cases: Vec<(Document, i32, &str)> = vec![
            (
                doc! {"$setWindowFields": {"output": {"x": {"$summ": "$v"}}}},
                9,
                "Unrecognized window function, $summ",
            ),
            (
                doc! {"$setWindowFields": {"output": {"x": {"window": {}}}}},
                9,
                "Expected a $-prefixed window function, window",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": 1}, "output": {"x": {"$first": "$y", "window": [0, 1]}}}},
                9,
                "'window' field must be an object",
            ),
            (
                doc! {"$setWindowFields": {"output": {"x": {"$count": {}, "foo": 1}}}},
                9,
                "Window function found an unknown argument: foo",
            ),
            (
                doc! {"$setWindowFields": {"output": {"x": {"$count": 1}}}},
                9,
                "$count only accepts an empty object as input",
            ),
            (
                doc! {"$setWindowFields": {"output": {"x": {"$sum": 1, "window": {"documents": [0, 1]}}}}},
                5339901,
                "Document-based bounds require a sortBy",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": 1}, "output": {"x": {"$sum": 1, "window": {"documents": [1, 0]}}}}},
                5339900,
                "Lower bound must not exceed upper bound: [1, 0]",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": 1}, "output": {"x": {"$sum": 1, "window": {"documents": [0]}}}}},
                9,
                "Window bounds must be a 2-element array: documents: [ 0 ]",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": 1}, "output": {"x": {"$sum": 1, "window": {"documents": [0.5, 1]}}}}},
                9,
                "Numeric document-based bounds must be an integer",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": 1, "y": 1}, "output": {"x": {"$sum": 1, "window": {"range": [0, 1]}}}}},
                5339902,
                "Range-based bounds require sortBy a single field",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": -1}, "output": {"x": {"$sum": 1, "window": {"range": [0, 1]}}}}},
                8947401,
                "Range-based bounds require an ascending sortBy",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": 1}, "output": {"x": {"$sum": 1, "window": {"documents": [0, 1], "range": [0, 1]}}}}},
                9,
                "Window bounds can specify either 'documents' or 'unit', not both.",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": 1}, "output": {"x": {"$sum": 1, "window": {"documents": [0, 1], "unit": "day"}}}}},
                9,
                "Window bounds can only specify 'unit' with range-based bounds.",
            ),
            (
                doc! {"$setWindowFields": {"sortBy": {"x": 1}, "output": {"x": {"$sum": 1, "window": {"range": [0, 1], "unit": "fortnight"}}}}},
                9,
                "unknown time unit value: fortnight",
            ),
            (
                doc! {"$setWindowFields": {"partitionBy": "$a"}},
                40414,
                "BSON field '$setWindowFields.output' is missing but a required field",
            ),
        ];
        for (stage, code, msg) in cases {
            let (c, m) = parse_err(stage.clone());
            assert_eq!((c, m.as_str()), (code, msg), "{stage}");
        }
    }

    /// The accumulators that are also window functions: `$topN`, `$firstN`, `$minN`... over
    /// document and range windows, with the accumulators' own argument checks.
    #[test]
    fn n_accumulators_over_windows() {
        let docs = || {
            vec![
                doc! {"_id": 1, "t": 1, "v": 5},
                doc! {"_id": 2, "t": 2, "v": 3},
                doc! {"_id": 3, "t": 3, "v": 9},
                doc! {"_id": 4, "t": 5, "v": 1},
            ]
        };
        let out = run(
            doc! {"$setWindowFields": {"sortBy": {"t": 1}, "output": {
                "top2": {"$topN": {"n": 2, "sortBy": {"v": -1}, "output": "$v"},
                         "window": {"documents": [-1, 1]}},
                "bottom": {"$bottom": {"sortBy": {"v": -1}, "output": "$_id"},
                           "window": {"documents": ["unbounded", "current"]}},
                "first2": {"$firstN": {"n": 2, "input": "$v"}, "window": {"documents": [0, "unbounded"]}},
                "last1": {"$lastN": {"n": 1, "input": "$v"}, "window": {"documents": ["unbounded", 0]}},
                "min2": {"$minN": {"n": 2, "input": "$v"}, "window": {"range": [-1, 1]}},
                "max1": {"$maxN": {"n": 1, "input": "$v"}},
                "all": {"$concatArrays": {"$concatArrays": [["$v"]]}},
                "med": {"$median": {"input": "$v", "method": "approximate"},
                        "window": {"documents": [-1, 1]}},
            }}},
            docs(),
        );
        assert_eq!(
            field(&out, "top2"),
            vec![bson!([5, 3]), bson!([9, 5]), bson!([9, 3]), bson!([9, 1])]
        );
        assert_eq!(
            field(&out, "bottom"),
            vec![bson!(1), bson!(2), bson!(2), bson!(4)]
        );
        assert_eq!(
            field(&out, "first2"),
            vec![bson!([5, 3]), bson!([3, 9]), bson!([9, 1]), bson!([1])]
        );
        assert_eq!(
            field(&out, "last1"),
            vec![bson!([5]), bson!([3]), bson!([9]), bson!([1])]
        );
        // t in [t-1, t+1]: {1,2}, {1,2,3}, {2,3}, {5}.
        assert_eq!(
            field(&out, "min2"),
            vec![bson!([3, 5]), bson!([3, 5]), bson!([3, 9]), bson!([1])]
        );
        assert_eq!(field(&out, "max1"), vec![bson!([9]); 4]);
        assert_eq!(field(&out, "all"), vec![bson!([5, 3, 9, 1]); 4]);
        // Discrete medians of {5,3}, {5,3,9}, {3,9,1}, {9,1}.
        assert_eq!(
            field(&out, "med"),
            vec![bson!(3.0), bson!(5.0), bson!(3.0), bson!(1.0)]
        );
        // The accumulators' argument codes.
        let n_err = |spec: Document| -> i32 {
            Pipeline::parse(
                &[doc! {"$setWindowFields": {"sortBy": {"t": 1}, "output": {"x": spec}}}],
                &Document::new(),
            )
            .and_then(|p| p.run_local(docs()))
            .unwrap_err()
            .code
        };
        assert_eq!(n_err(doc! {"$firstN": {"input": "$v"}}), 5787906);
        assert_eq!(n_err(doc! {"$firstN": {"n": 1}}), 5787907);
        assert_eq!(
            n_err(doc! {"$firstN": {"n": 1, "input": "$v", "x": 1}}),
            5787901
        );
        assert_eq!(n_err(doc! {"$topN": {"n": 1, "output": "$v"}}), 5788005);
        assert_eq!(
            n_err(doc! {"$top": {"n": 1, "sortBy": {"v": 1}, "output": "$v"}}),
            5788002
        );
        assert_eq!(
            n_err(doc! {"$topN": {"n": 0, "sortBy": {"v": 1}, "output": "$v"}}),
            7548606
        );
        assert_eq!(n_err(doc! {"$lastN": {"n": 1.5, "input": "$v"}}), 7548606);
        assert_eq!(n_err(doc! {"$maxN": {"n": "a", "input": "$v"}}), 5787902);
    }
}

/// `$fill`: the server rewrites it to `$setWindowFields` (`$locf`/`$linearFill` for `method`)
/// followed by `$addFields` with `$ifNull` for `value`.
#[derive(Debug, Clone)]
pub(super) struct Fill {
    window: Option<SetWindowFields>,
    sort_by: Option<SortSpec>,
    values: Vec<(Vec<String>, Bson)>,
}

impl Fill {
    pub(super) fn parse(spec: &Bson) -> Result<Fill> {
        let Bson::Document(spec) = spec else {
            return Err(parse_error(format!(
                "$fill specification must be an object, found {}",
                super::type_name(spec)
            )));
        };
        for k in spec.keys() {
            if !matches!(
                k.as_str(),
                "partitionBy" | "partitionByFields" | "sortBy" | "output"
            ) {
                return Err(CommandError::new(
                    40415,
                    format!("BSON field '$fill.{k}' is an unknown field."),
                ));
            }
        }
        let Some(Bson::Document(output)) = spec.get("output") else {
            return Err(CommandError::new(
                40414,
                "BSON field '$fill.output' is missing but a required field",
            ));
        };
        let partition_by = match (spec.get("partitionBy"), spec.get("partitionByFields")) {
            (Some(_), Some(_)) => {
                return Err(parse_error(
                    "Only one of 'partitionBy' and 'partitionByFields' can be specified in $fill",
                ));
            }
            (Some(p), None) => Some(p.clone()),
            (None, Some(Bson::Array(fields))) => {
                let mut d = Document::new();
                for f in fields {
                    let Bson::String(f) = f else {
                        return Err(CommandError::type_mismatch(
                            "BSON field '$fill.partitionByFields' is the wrong type, expected type 'array' of strings",
                        ));
                    };
                    d.insert(f.clone(), Bson::String(format!("${f}")));
                }
                Some(Bson::Document(d))
            }
            (None, Some(other)) => {
                return Err(CommandError::type_mismatch(format!(
                    "BSON field '$fill.partitionByFields' is the wrong type '{}', expected type 'array'",
                    super::type_name(other)
                )));
            }
            (None, None) => None,
        };
        let mut window_output = Document::new();
        let mut values = Vec::new();
        for (field, how) in output {
            let Bson::Document(how) = how else {
                return Err(parse_error(format!(
                    "Each fill output specification must be an object, but '{field}' is not"
                )));
            };
            if how.len() != 1 {
                return Err(parse_error(
                    "Exactly one of 'value' or 'method' must be specified in a $fill output",
                ));
            }
            match (how.get("value"), how.get("method")) {
                (Some(v), None) => {
                    values.push((field.split('.').map(str::to_string).collect(), v.clone()))
                }
                (None, Some(Bson::String(m))) if m == "locf" || m == "linear" => {
                    let op = if m == "locf" { "$locf" } else { "$linearFill" };
                    let mut f = Document::new();
                    f.insert(op, Bson::String(format!("${field}")));
                    window_output.insert(field.clone(), f);
                }
                (None, Some(m)) => {
                    return Err(parse_error(format!(
                        "Method must be either locf or linear, found {}",
                        crate::query::matcher::server_display(m)
                    )));
                }
                _ => {
                    return Err(parse_error(
                        "Exactly one of 'value' or 'method' must be specified in a $fill output",
                    ));
                }
            }
        }
        let sort_doc = match spec.get("sortBy") {
            None => None,
            Some(Bson::Document(d)) => Some(d.clone()),
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "BSON field '$fill.sortBy' is the wrong type '{}', expected type 'object'",
                    super::type_name(other)
                )));
            }
        };
        let window = if window_output.is_empty() {
            None
        } else {
            let Some(sort) = &sort_doc else {
                return Err(parse_error(
                    "$fill requires a 'sortBy' when any output uses a 'method'",
                ));
            };
            let mut w = Document::new();
            if let Some(p) = partition_by {
                w.insert("partitionBy", p);
            }
            w.insert("sortBy", sort.clone());
            w.insert("output", window_output);
            Some(SetWindowFields::parse(&Bson::Document(w))?)
        };
        Ok(Fill {
            window,
            sort_by: sort_doc.as_ref().map(SortSpec::new).transpose()?,
            values,
        })
    }

    /// Fills the documents' missing and null values; they keep their metadata.
    pub(super) fn run(&self, rows: Vec<Row>, vars: &Document) -> Result<Vec<Row>> {
        let mut rows = match (&self.window, &self.sort_by) {
            (Some(w), _) => w.run_rows(rows, vars)?,
            (None, Some(s)) => {
                let mut rows = rows;
                rows.sort_by(|a, b| compare_rows(s, a, b));
                rows
            }
            (None, None) => rows,
        };
        for r in &mut rows {
            let meta = Some(meta_or_empty(&r.meta));
            let d = &mut r.doc;
            for (path, e) in &self.values {
                if matches!(super::get_path(d, path), None | Some(Bson::Null)) {
                    let v = expr::evaluate_with_meta(e, d, vars, meta)?.unwrap_or(Bson::Null);
                    super::set_path(d, path, v);
                }
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod fill_tests {
    use bson::{Bson, Document, bson, doc};

    use super::super::Pipeline;

    #[test]
    fn fill_by_value_locf_and_linear() {
        let out = Pipeline::parse(
            &[doc! {"$fill": {
                "partitionByFields": ["g"],
                "sortBy": {"t": 1},
                "output": {
                    "a": {"method": "locf"},
                    "b": {"method": "linear"},
                    "c": {"value": "none"},
                }
            }}],
            &Document::new(),
        )
        .unwrap()
        .run_local(vec![
            doc! {"g": 1, "t": 3, "a": null, "b": 30, "c": 1},
            doc! {"g": 1, "t": 1, "a": "x", "b": 10},
            doc! {"g": 1, "t": 2, "b": null, "c": null},
            doc! {"g": 2, "t": 1, "a": null},
        ])
        .unwrap();
        let get = |f: &str| -> Vec<Bson> {
            out.iter()
                .map(|d| d.get(f).cloned().unwrap_or(Bson::Null))
                .collect()
        };
        assert_eq!(get("t"), bson!([1, 2, 3, 1]).as_array().unwrap().clone());
        assert_eq!(
            get("a"),
            bson!(["x", "x", "x", null]).as_array().unwrap().clone()
        );
        assert_eq!(
            get("b"),
            bson!([10, 20.0, 30, null]).as_array().unwrap().clone()
        );
        assert_eq!(
            get("c"),
            bson!(["none", "none", 1, "none"])
                .as_array()
                .unwrap()
                .clone()
        );

        let e = Pipeline::parse(
            &[doc! {"$fill": {"output": {"a": {"method": "locf"}}}}],
            &Document::new(),
        )
        .unwrap_err();
        assert_eq!(e.code, 9);
    }
}
