//! `$group` and its accumulators, and the stages built on them (`$bucket`, `$bucketAuto`).

use std::cmp::Ordering;

use bson::{Bson, Document, doc};

use crate::error::{CommandError, Result, codes};
use crate::query::expr::{self, Accumulator, DocMeta, compare_values};

use super::metadata::Row;
use crate::query::sort::SortSpec;

/// One accumulator of a `$group` (`field: {$op: argument}`).
#[derive(Debug, Clone)]
pub(super) enum AccSpec {
    /// `$sum`, `$avg`, `$min`, `$max` (the name) over an expression.
    Basic(String, Bson),
    First(Bson),
    Last(Bson),
    Push(Bson),
    AddToSet(Bson),
    /// `$concatArrays` and `$setUnion` (8.1): arrays of the group concatenated, or their
    /// distinct elements.
    ConcatArrays(Bson),
    SetUnion(Bson),
    /// `$median` and `$percentile` (the percentiles asked for).
    Quantile {
        median: bool,
        input: Bson,
        ps: Vec<f64>,
    },
    Count,
    MergeObjects(Bson),
    StdDev {
        sample: bool,
        expr: Bson,
    },
    /// `$firstN`, `$lastN`, `$maxN`, `$minN`.
    N {
        op: String,
        input: Bson,
        n: Bson,
    },
    /// `$top`, `$bottom`, `$topN`, `$bottomN`.
    Top {
        bottom: bool,
        n: Option<Bson>,
        sort: SortSpec,
        output: Bson,
    },
}

fn acc_error(code: i32, msg: String) -> CommandError {
    CommandError::new(code, msg)
}

impl AccSpec {
    pub(super) fn parse(field: &str, value: &Bson) -> Result<AccSpec> {
        let Bson::Document(d) = value else {
            return Err(acc_error(
                40234,
                format!("The field '{field}' must be an accumulator object"),
            ));
        };
        if d.len() != 1 {
            return Err(acc_error(
                40238,
                format!("The field '{field}' must specify one accumulator"),
            ));
        }
        let Some((op, arg)) = d.iter().next() else {
            return Err(acc_error(
                40238,
                format!("The field '{field}' must specify one accumulator"),
            ));
        };
        if !matches!(
            op.as_str(),
            "$top"
                | "$bottom"
                | "$topN"
                | "$bottomN"
                | "$firstN"
                | "$lastN"
                | "$maxN"
                | "$minN"
                | "$count"
        ) {
            expr::validate(arg)?;
            if let Bson::Array(_) = arg {
                // Accumulators are unary: `{$sum: [1, 2]}` is one array argument only for
                // the operators that take expressions; the server rejects it.
                return Err(acc_error(
                    40237,
                    format!("The {op} accumulator is a unary operator"),
                ));
            }
        }
        let obj = |name: &str| -> Result<&Document> {
            match arg {
                Bson::Document(o) => Ok(o),
                _ => Err(CommandError::failed_to_parse(format!(
                    "specification must be an object; found {arg}"
                ))
                .with_extra("accumulator", name.to_string())),
            }
        };
        Ok(match op.as_str() {
            "$sum" | "$avg" | "$min" | "$max" => AccSpec::Basic(op.clone(), arg.clone()),
            "$first" => AccSpec::First(arg.clone()),
            "$last" => AccSpec::Last(arg.clone()),
            "$push" => AccSpec::Push(arg.clone()),
            "$addToSet" => AccSpec::AddToSet(arg.clone()),
            "$concatArrays" => AccSpec::ConcatArrays(arg.clone()),
            "$median" | "$percentile" => {
                let median = op == "$median";
                let (input, ps) = expr::quantile_spec(
                    op,
                    arg,
                    if median { 7436100 } else { 7429703 },
                    &Document::new(),
                )?;
                AccSpec::Quantile { median, input, ps }
            }
            "$setUnion" => AccSpec::SetUnion(arg.clone()),
            "$mergeObjects" => AccSpec::MergeObjects(arg.clone()),
            "$stdDevPop" => AccSpec::StdDev {
                sample: false,
                expr: arg.clone(),
            },
            "$stdDevSamp" => AccSpec::StdDev {
                sample: true,
                expr: arg.clone(),
            },
            "$count" => {
                match arg {
                    Bson::Document(o) if o.is_empty() => {}
                    _ => {
                        return Err(CommandError::type_mismatch(
                            "$count takes no arguments, i.e. $count:{}",
                        ));
                    }
                }
                AccSpec::Count
            }
            "$firstN" | "$lastN" | "$maxN" | "$minN" => {
                let o = obj(op)?;
                for k in o.keys() {
                    if k != "input" && k != "n" {
                        return Err(acc_error(
                            5787901,
                            format!("Unknown argument for 'n' operator: {k}"),
                        ));
                    }
                }
                let input = o.get("input").ok_or_else(|| {
                    acc_error(5787907, format!("Missing value for 'input' in {op}"))
                })?;
                let n = o
                    .get("n")
                    .ok_or_else(|| acc_error(5787906, format!("Missing value for 'n' in {op}")))?;
                expr::validate(input)?;
                AccSpec::N {
                    op: op.clone(),
                    input: input.clone(),
                    n: n.clone(),
                }
            }
            "$top" | "$bottom" | "$topN" | "$bottomN" => {
                let o = obj(op)?;
                let with_n = op.ends_with('N');
                for k in o.keys() {
                    let ok = k == "sortBy" || k == "output" || (with_n && k == "n");
                    if !ok {
                        return Err(acc_error(
                            5788002,
                            format!("Unknown argument to {op} '{k}'"),
                        ));
                    }
                }
                let sort = match o.get("sortBy") {
                    Some(Bson::Document(s)) => SortSpec::new(s)?,
                    Some(_) => {
                        return Err(acc_error(
                            5788003,
                            format!("Value for 'sortBy' must be an object in {op}"),
                        ));
                    }
                    None => {
                        return Err(acc_error(
                            5788005,
                            format!("Missing value for 'sortBy' in {op}"),
                        ));
                    }
                };
                let output = o.get("output").ok_or_else(|| {
                    acc_error(5788004, format!("Missing value for 'output' in {op}"))
                })?;
                let n = if with_n {
                    Some(o.get("n").cloned().ok_or_else(|| {
                        acc_error(5787906, format!("Missing value for 'n' in {op}"))
                    })?)
                } else {
                    None
                };
                AccSpec::Top {
                    bottom: op.starts_with("$bottom"),
                    n,
                    sort,
                    output: output.clone(),
                }
            }
            other => {
                return Err(acc_error(
                    15952,
                    format!("unknown group operator '{other}'"),
                ));
            }
        })
    }

    pub(super) fn init(&self) -> Result<AccState> {
        Ok(match self {
            AccSpec::Basic(op, _) => AccState::Basic(Accumulator::new(op)?),
            AccSpec::Count => AccState::Basic(Accumulator::new("$sum")?),
            AccSpec::First(_) => AccState::First(None),
            AccSpec::Last(_) => AccState::Last(None),
            AccSpec::Push(_)
            | AccSpec::AddToSet(_)
            | AccSpec::ConcatArrays(_)
            | AccSpec::SetUnion(_) => AccState::Values(Vec::new()),
            AccSpec::MergeObjects(_) => AccState::Merge(Document::new()),
            AccSpec::StdDev { .. } | AccSpec::Quantile { .. } => AccState::Floats(Vec::new()),
            AccSpec::N { .. } => AccState::Values(Vec::new()),
            AccSpec::Top { .. } => AccState::Sorted(Vec::new()),
        })
    }

    /// Adds one document; `meta` is its metadata (for `$meta` in the argument).
    pub(super) fn add(
        &self,
        state: &mut AccState,
        doc: &Document,
        vars: &Document,
        meta: Option<&DocMeta>,
    ) -> Result<()> {
        match (self, state) {
            (AccSpec::Basic(_, e), AccState::Basic(acc)) => {
                acc.add(expr::evaluate_with_meta(e, doc, vars, meta)?)?
            }
            (AccSpec::Count, AccState::Basic(acc)) => acc.add(Some(Bson::Int32(1)))?,
            (AccSpec::First(e), AccState::First(slot @ None)) => {
                *slot = Some(expr::evaluate_with_meta(e, doc, vars, meta)?.unwrap_or(Bson::Null));
            }
            (AccSpec::Last(e), AccState::Last(slot)) => {
                *slot = Some(expr::evaluate_with_meta(e, doc, vars, meta)?.unwrap_or(Bson::Null));
            }
            (AccSpec::Push(e), AccState::Values(values)) => {
                if let Some(v) = expr::evaluate_with_meta(e, doc, vars, meta)? {
                    values.push(v);
                }
            }
            (AccSpec::AddToSet(e), AccState::Values(values)) => {
                if let Some(v) = expr::evaluate_with_meta(e, doc, vars, meta)?
                    && !values
                        .iter()
                        .any(|x| compare_values(Some(x), Some(&v)) == Ordering::Equal)
                {
                    values.push(v);
                }
            }
            (AccSpec::ConcatArrays(e), AccState::Values(values))
            | (AccSpec::SetUnion(e), AccState::Values(values)) => {
                let union = matches!(self, AccSpec::SetUnion(_));
                // A missing value adds nothing; anything but an array is refused
                // (accumulator_concat_arrays.cpp).
                match expr::evaluate_with_meta(e, doc, vars, meta)? {
                    None => {}
                    Some(Bson::Array(items)) => {
                        for v in items {
                            if !union
                                || !values
                                    .iter()
                                    .any(|x| compare_values(Some(x), Some(&v)) == Ordering::Equal)
                            {
                                values.push(v);
                            }
                        }
                    }
                    Some(other) => {
                        return Err(CommandError::type_mismatch(format!(
                            "{} requires array inputs, but input {} is of type {}",
                            if union { "$setUnion" } else { "$concatArrays" },
                            crate::query::matcher::server_display(&other),
                            expr::type_name(Some(&other))
                        )));
                    }
                }
            }
            (AccSpec::MergeObjects(e), AccState::Merge(out)) => {
                match expr::evaluate_with_meta(e, doc, vars, meta)? {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => {}
                    Some(Bson::Document(d)) => {
                        for (k, v) in d {
                            out.insert(k, v);
                        }
                    }
                    Some(other) => {
                        return Err(CommandError::new(
                            40400,
                            format!(
                                "$mergeObjects requires object inputs, but input {other} is of type {}",
                                expr::type_name(Some(&other))
                            ),
                        ));
                    }
                }
            }
            (AccSpec::Quantile { input, .. }, AccState::Floats(values)) => {
                if let Some(v) = expr::evaluate_with_meta(input, doc, vars, meta)? {
                    expr::quantile_samples(&v, values);
                }
            }
            (AccSpec::StdDev { expr: e, .. }, AccState::Floats(values)) => {
                if let Some(n) = expr::evaluate_with_meta(e, doc, vars, meta)?
                    .as_ref()
                    .and_then(expr::Num::from_bson)
                {
                    values.push(n.f64());
                }
            }
            (AccSpec::N { op, input, .. }, AccState::Values(values)) => {
                let v = expr::evaluate_with_meta(input, doc, vars, meta)?;
                match op.as_str() {
                    // $maxN/$minN ignore null and missing; $firstN/$lastN keep them as null.
                    "$maxN" | "$minN" => {
                        if let Some(v) = v.filter(|v| !matches!(v, Bson::Null | Bson::Undefined)) {
                            values.push(v);
                        }
                    }
                    _ => values.push(v.unwrap_or(Bson::Null)),
                }
            }
            (AccSpec::Top { output, .. }, AccState::Sorted(items)) => {
                let out = expr::evaluate_with_meta(output, doc, vars, meta)?.unwrap_or(Bson::Null);
                items.push((doc.clone(), out));
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn finish(&self, state: AccState, id: &Bson, vars: &Document) -> Result<Bson> {
        let n_value = |n: &Bson, op: &str| -> Result<usize> {
            let v = expr::evaluate(n, &doc! {"_id": id.clone()}, vars)?;
            // 8.x: a non-number is 5787902; a fractional or non-positive number 7548606.
            let n = match v.as_ref().and_then(expr::Num::from_bson) {
                Some(num) if num.f64().fract() == 0.0 => num.f64(),
                Some(_) => {
                    return Err(acc_error(
                        7548606,
                        format!(
                            "Value for 'n' must be of integral type, but found {}",
                            v.unwrap_or(Bson::Null)
                        ),
                    ));
                }
                None => {
                    return Err(acc_error(
                        5787902,
                        format!(
                            "Value for 'n' must be of integral type, but found {}",
                            v.unwrap_or(Bson::Null)
                        ),
                    ));
                }
            };
            if n < 1.0 {
                return Err(acc_error(
                    7548606,
                    format!("'n' must be greater than 0, found {n} ({op})"),
                ));
            }
            Ok(n as usize)
        };
        Ok(match (self, state) {
            (_, AccState::Basic(acc)) => acc.finish(),
            (_, AccState::First(v)) | (_, AccState::Last(v)) => v.unwrap_or(Bson::Null),
            (AccSpec::N { op, n, .. }, AccState::Values(mut values)) => {
                let n = n_value(n, op)?;
                match op.as_str() {
                    "$firstN" => values.truncate(n),
                    "$lastN" => {
                        let skip = values.len().saturating_sub(n);
                        values.drain(..skip);
                    }
                    "$maxN" => {
                        values.sort_by(|a, b| compare_values(Some(b), Some(a)));
                        values.truncate(n);
                    }
                    _ => {
                        values.sort_by(|a, b| compare_values(Some(a), Some(b)));
                        values.truncate(n);
                    }
                }
                Bson::Array(values)
            }
            (_, AccState::Values(values)) => Bson::Array(values),
            (_, AccState::Merge(d)) => Bson::Document(d),
            (AccSpec::Quantile { median, ps, .. }, AccState::Floats(values)) => {
                expr::quantile_result(*median, ps, values)
            }
            (AccSpec::StdDev { sample, .. }, AccState::Floats(values)) => {
                let count = values.len();
                if count == 0 || (*sample && count == 1) {
                    Bson::Null
                } else {
                    let mean = values.iter().sum::<f64>() / count as f64;
                    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
                    let denom = if *sample { count - 1 } else { count };
                    Bson::Double((ss / denom as f64).sqrt())
                }
            }
            (
                AccSpec::Top {
                    bottom, n, sort, ..
                },
                AccState::Sorted(mut items),
            ) => {
                items.sort_by(|a, b| sort.compare(&a.0, &b.0));
                let count = match n {
                    Some(n) => n_value(n, if *bottom { "$bottomN" } else { "$topN" })?,
                    None => 1,
                };
                let chosen: Vec<Bson> = if *bottom {
                    let skip = items.len().saturating_sub(count);
                    items.into_iter().skip(skip).map(|(_, o)| o).collect()
                } else {
                    items.into_iter().take(count).map(|(_, o)| o).collect()
                };
                if n.is_some() {
                    Bson::Array(chosen)
                } else {
                    chosen.into_iter().next().unwrap_or(Bson::Null)
                }
            }
            _ => Bson::Null,
        })
    }
}

#[derive(Debug)]
pub(super) enum AccState {
    Basic(Accumulator),
    First(Option<Bson>),
    Last(Option<Bson>),
    Values(Vec<Bson>),
    Merge(Document),
    Floats(Vec<f64>),
    Sorted(Vec<(Document, Bson)>),
}

/// A parsed `$group`.
#[derive(Debug, Clone)]
pub(super) struct Group {
    id: Bson,
    accs: Vec<(String, AccSpec)>,
}

impl Group {
    pub(super) fn parse(spec: &Document) -> Result<Group> {
        let mut id = None;
        let mut accs = Vec::new();
        for (k, v) in spec {
            if k == "_id" {
                expr::validate(v)?;
                id = Some(v.clone());
                continue;
            }
            if k.contains('.') {
                return Err(CommandError::new(
                    40235,
                    format!("The field name '{k}' cannot contain '.'"),
                ));
            }
            if k.starts_with('$') {
                return Err(CommandError::new(
                    40236,
                    format!("The field '{k}' must not be an operator name"),
                ));
            }
            accs.push((k.clone(), AccSpec::parse(k, v)?));
        }
        let id = id
            .ok_or_else(|| CommandError::new(15955, "a group specification must include an _id"))?;
        Ok(Group { id, accs })
    }

    /// Groups `docs` by `_id`; groups come out in order of first appearance.
    /// Its output documents have no metadata, as the server's.
    pub(super) fn run(&self, rows: Vec<Row>, vars: &Document) -> Result<Vec<Document>> {
        let mut groups: Vec<(Bson, Vec<AccState>)> = Vec::new();
        // Indexes into `groups`, sorted by key, for a binary search with BSON equality.
        let mut index: Vec<usize> = Vec::new();
        for row in &rows {
            let (d, meta) = (&row.doc, row.meta());
            let key = expr::evaluate_with_meta(&self.id, d, vars, meta)?.unwrap_or(Bson::Null);
            let slot =
                match index.binary_search_by(|&i| compare_values(Some(&groups[i].0), Some(&key))) {
                    Ok(pos) => index[pos],
                    Err(pos) => {
                        let states = self
                            .accs
                            .iter()
                            .map(|(_, a)| a.init())
                            .collect::<Result<Vec<_>>>()?;
                        groups.push((key, states));
                        index.insert(pos, groups.len() - 1);
                        groups.len() - 1
                    }
                };
            let states = &mut groups[slot].1;
            for ((_, spec), state) in self.accs.iter().zip(states.iter_mut()) {
                spec.add(state, d, vars, meta)?;
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for (key, states) in groups {
            let mut d = Document::new();
            d.insert("_id", key.clone());
            for ((name, spec), state) in self.accs.iter().zip(states) {
                d.insert(name.clone(), spec.finish(state, &key, vars)?);
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Accumulates `rows` as one group and returns the accumulated fields (for buckets).
    fn accumulate(
        accs: &[(String, AccSpec)],
        rows: &[&Row],
        key: &Bson,
        vars: &Document,
    ) -> Result<Document> {
        let mut states = accs
            .iter()
            .map(|(_, a)| a.init())
            .collect::<Result<Vec<_>>>()?;
        for r in rows {
            for ((_, spec), state) in accs.iter().zip(states.iter_mut()) {
                spec.add(state, &r.doc, vars, r.meta())?;
            }
        }
        let mut out = Document::new();
        for ((name, spec), state) in accs.iter().zip(states) {
            out.insert(name.clone(), spec.finish(state, key, vars)?);
        }
        Ok(out)
    }
}

fn parse_output(output: Option<&Bson>, stage: &str) -> Result<Vec<(String, AccSpec)>> {
    match output {
        None => Ok(vec![("count".to_string(), AccSpec::Count)]),
        Some(Bson::Document(d)) => {
            let mut accs = Vec::new();
            for (k, v) in d {
                if k.contains('.') {
                    return Err(CommandError::new(
                        40235,
                        format!("The field name '{k}' cannot contain '.'"),
                    ));
                }
                accs.push((k.clone(), AccSpec::parse(k, v)?));
            }
            Ok(accs)
        }
        Some(other) => Err(CommandError::new(
            if stage == "$bucket" { 40196 } else { 40244 },
            format!(
                "The {stage} 'output' field must be an object, but found type: {}",
                expr::type_name(Some(other))
            ),
        )),
    }
}

fn check_group_by(v: &Bson, stage: &str) -> Result<()> {
    let ok = match v {
        Bson::String(s) => s.starts_with('$'),
        Bson::Document(d) => d.keys().next().is_some_and(|k| k.starts_with('$')),
        _ => false,
    };
    if !ok {
        return Err(CommandError::new(
            if stage == "$bucket" { 40202 } else { 40239 },
            format!(
                "The {stage} 'groupBy' field must be defined as a $-prefixed path or an expression{}, but found: {v}",
                if stage == "$bucket" { "" } else { " object" }
            ),
        ));
    }
    expr::validate(v)
}

/// A parsed `$bucketAuto`.
#[derive(Debug, Clone)]
pub(super) struct BucketAuto {
    group_by: Bson,
    buckets: usize,
    output: Vec<(String, AccSpec)>,
    /// A preferred-number series (`granularity`): bucket boundaries are rounded to it.
    series: Option<&'static [f64]>,
}

/// The server's preferred-number series (`granularity_rounder_preferred_numbers.cpp`), in its
/// base scale: boundaries are these times a power of ten, computed in doubles as it does.
fn preferred_series(name: &str) -> Option<&'static [f64]> {
    const R5: &[f64] = &[10.0, 16.0, 25.0, 40.0, 63.0];
    const R10: &[f64] = &[
        100.0, 125.0, 160.0, 200.0, 250.0, 315.0, 400.0, 500.0, 630.0, 800.0,
    ];
    const R20: &[f64] = &[
        100.0, 112.0, 125.0, 140.0, 160.0, 180.0, 200.0, 224.0, 250.0, 280.0, 315.0, 355.0, 400.0,
        450.0, 500.0, 560.0, 630.0, 710.0, 800.0, 900.0,
    ];
    const R40: &[f64] = &[
        100.0, 106.0, 112.0, 118.0, 125.0, 132.0, 140.0, 150.0, 160.0, 170.0, 180.0, 190.0, 200.0,
        212.0, 224.0, 236.0, 250.0, 265.0, 280.0, 300.0, 315.0, 355.0, 375.0, 400.0, 425.0, 450.0,
        475.0, 500.0, 530.0, 560.0, 600.0, 630.0, 670.0, 710.0, 750.0, 800.0, 850.0, 900.0, 950.0,
    ];
    const R80: &[f64] = &[
        103.0, 109.0, 115.0, 122.0, 128.0, 136.0, 145.0, 155.0, 165.0, 175.0, 185.0, 195.0, 206.0,
        218.0, 230.0, 243.0, 258.0, 272.0, 290.0, 307.0, 325.0, 345.0, 365.0, 387.0, 412.0, 437.0,
        462.0, 487.0, 515.0, 545.0, 575.0, 615.0, 650.0, 690.0, 730.0, 775.0, 825.0, 875.0, 925.0,
        975.0,
    ];
    const S125: &[f64] = &[10.0, 20.0, 50.0];
    const E6: &[f64] = &[10.0, 15.0, 22.0, 33.0, 47.0, 68.0];
    const E12: &[f64] = &[
        10.0, 12.0, 15.0, 18.0, 22.0, 27.0, 33.0, 39.0, 47.0, 56.0, 68.0, 82.0,
    ];
    const E24: &[f64] = &[
        10.0, 11.0, 12.0, 13.0, 15.0, 16.0, 18.0, 20.0, 22.0, 24.0, 27.0, 30.0, 33.0, 36.0, 39.0,
        43.0, 47.0, 51.0, 56.0, 62.0, 68.0, 75.0, 82.0, 91.0,
    ];
    Some(match name {
        "R5" => R5,
        "R10" => R10,
        "R20" => R20,
        "R40" => R40,
        "R80" => R80,
        "1-2-5" => S125,
        "E6" => E6,
        "E12" => E12,
        "E24" => E24,
        _ => return None,
    })
}

fn check_roundable(v: &Bson) -> Result<f64> {
    let Some(n) = expr::Num::from_bson(v) else {
        return Err(CommandError::new(
            40262,
            format!(
                "A granularity rounder can only round numeric values, but found type: {}",
                expr::type_name(Some(v))
            ),
        ));
    };
    let x = n.f64();
    if x.is_nan() {
        return Err(CommandError::new(
            40263,
            "A granularity rounder cannot round NaN",
        ));
    }
    if x < 0.0 {
        return Err(CommandError::new(
            40268,
            "A granularity rounder can only round non-negative numbers",
        ));
    }
    Ok(x)
}

/// The server's `roundUp` (double path): the smallest series number strictly above.
fn round_up(v: &Bson, series: &[f64]) -> Result<Bson> {
    let x = check_roundable(v)?;
    if x == 0.0 {
        return Ok(v.clone());
    }
    let (first, last) = (series[0], series[series.len() - 1]);
    let mut m = 1.0;
    while x >= last * m {
        m *= 10.0;
    }
    while x < first * m {
        let previous_min = first * m;
        m /= 10.0;
        if x >= last * m {
            return Ok(Bson::Double(previous_min));
        }
    }
    let s = series.iter().find(|&&s| x < s * m).unwrap_or(&last);
    Ok(Bson::Double(s * m))
}

/// The server's `roundDown` (double path): the largest series number strictly below.
fn round_down(v: &Bson, series: &[f64]) -> Result<Bson> {
    let x = check_roundable(v)?;
    if x == 0.0 {
        return Ok(v.clone());
    }
    let (first, last) = (series[0], series[series.len() - 1]);
    let mut m = 1.0;
    while x <= first * m {
        m /= 10.0;
    }
    while x > last * m {
        let previous_max = last * m;
        m *= 10.0;
        if x <= first * m {
            return Ok(Bson::Double(previous_max));
        }
    }
    let i = series
        .iter()
        .position(|&s| s * m >= x)
        .unwrap_or(series.len());
    Ok(Bson::Double(series[i.max(1) - 1] * m))
}

impl BucketAuto {
    pub(super) fn parse(spec: &Bson) -> Result<BucketAuto> {
        let Bson::Document(d) = spec else {
            return Err(CommandError::new(
                40240,
                format!(
                    "The argument to $bucketAuto must be an object, but found type: {}",
                    expr::type_name(Some(spec))
                ),
            ));
        };
        let mut group_by = None;
        let mut buckets = None;
        let mut series = None;
        for (k, v) in d {
            match k.as_str() {
                "groupBy" => {
                    check_group_by(v, "$bucketAuto")?;
                    group_by = Some(v.clone());
                }
                "buckets" => {
                    let n = match expr::Num::from_bson(v) {
                        Some(n) if n.f64().fract() == 0.0 && n.f64().abs() <= i32::MAX as f64 => {
                            n.f64() as i64
                        }
                        Some(_) => {
                            return Err(CommandError::new(
                                40242,
                                format!(
                                    "The $bucketAuto 'buckets' field must be representable as a 32-bit integer, but found {v}"
                                ),
                            ));
                        }
                        None => {
                            return Err(CommandError::new(
                                40241,
                                format!(
                                    "The $bucketAuto 'buckets' field must be numeric, but found type: {}",
                                    expr::type_name(Some(v))
                                ),
                            ));
                        }
                    };
                    if n <= 0 {
                        return Err(CommandError::new(
                            40243,
                            format!(
                                "The $bucketAuto 'buckets' field must be greater than 0, but found: {n}"
                            ),
                        ));
                    }
                    buckets = Some(n as usize);
                }
                "output" => {}
                "granularity" => {
                    let Bson::String(g) = v else {
                        return Err(CommandError::new(
                            40261,
                            format!(
                                "The $bucketAuto 'granularity' field must be a string, but found type: {}",
                                expr::type_name(Some(v))
                            ),
                        ));
                    };
                    series = match preferred_series(g) {
                        Some(s) => Some(s),
                        // Real series the testkit does not round with (yet): say so.
                        None if matches!(g.as_str(), "E48" | "E96" | "E192" | "POWERSOF2") => {
                            return Err(CommandError::new(
                                codes::COMMAND_NOT_SUPPORTED,
                                format!(
                                    "$bucketAuto granularity '{g}' is not supported by the testkit"
                                ),
                            ));
                        }
                        None => {
                            return Err(CommandError::new(
                                40257,
                                format!("Unknown rounding granularity '{g}'"),
                            ));
                        }
                    };
                }
                other => {
                    return Err(CommandError::new(
                        40245,
                        format!("Unrecognized option to $bucketAuto: {other}."),
                    ));
                }
            }
        }
        let (Some(group_by), Some(buckets)) = (group_by, buckets) else {
            return Err(CommandError::new(
                40246,
                "$bucketAuto requires 'groupBy' and 'buckets' to be specified",
            ));
        };
        let output = parse_output(d.get("output"), "$bucketAuto")?;
        Ok(BucketAuto {
            group_by,
            buckets,
            output,
            series,
        })
    }

    /// Its output documents have no metadata; the accumulators read their inputs'.
    pub(super) fn run(&self, rows: Vec<Row>, vars: &Document) -> Result<Vec<Document>> {
        let mut keyed = Vec::with_capacity(rows.len());
        for d in rows {
            let k = expr::evaluate_with_meta(&self.group_by, &d.doc, vars, d.meta())?
                .unwrap_or(Bson::Null);
            if self.series.is_some() && expr::Num::from_bson(&k).is_none() {
                return Err(CommandError::new(
                    40258,
                    format!(
                        "$bucketAuto can specify a 'granularity' with numeric boundaries only, but found a value with type: {}",
                        expr::type_name(Some(&k))
                    ),
                ));
            }
            if matches!(k, Bson::Decimal128(_)) && self.series.is_some() {
                return Err(CommandError::new(
                    codes::COMMAND_NOT_SUPPORTED,
                    "$bucketAuto granularity over decimal values is not supported by the testkit",
                ));
            }
            keyed.push((k, d));
        }
        keyed.sort_by(|a, b| compare_values(Some(&a.0), Some(&b.0)));
        if let Some(series) = self.series {
            return self.run_rounded(keyed, series, vars);
        }
        // The server fills each bucket with round(n / buckets) documents, then keeps adding
        // documents equal to the bucket's last value; the last bucket takes the rest.
        let approx = ((keyed.len() as f64 / self.buckets as f64).round() as usize).max(1);
        let mut bounds: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < keyed.len() && bounds.len() < self.buckets {
            let start = i;
            let is_last = bounds.len() == self.buckets - 1;
            if is_last {
                i = keyed.len();
            } else {
                i = (start + approx).min(keyed.len());
                while i < keyed.len()
                    && compare_values(Some(&keyed[i - 1].0), Some(&keyed[i].0)) == Ordering::Equal
                {
                    i += 1;
                }
            }
            bounds.push((start, i));
        }
        let mut out = Vec::with_capacity(bounds.len());
        for (n, &(start, end)) in bounds.iter().enumerate() {
            let min = keyed[start].0.clone();
            let max = match bounds.get(n + 1) {
                Some(&(next, _)) => keyed[next].0.clone(),
                None => keyed[end - 1].0.clone(),
            };
            let id = Bson::Document(doc! {"min": min, "max": max});
            let members: Vec<&Row> = keyed[start..end].iter().map(|(_, d)| d).collect();
            let mut d = doc! {"_id": id.clone()};
            for (k, v) in Group::accumulate(&self.output, &members, &id, vars)? {
                d.insert(k, v);
            }
            out.push(d);
        }
        Ok(out)
    }
}

impl BucketAuto {
    /// `$bucketAuto` with a granularity, as the server's `populateBuckets`: each bucket takes
    /// about n/buckets documents, its max is rounded up and absorbs the values below it; the
    /// next bucket starts at that max; the first min is rounded down, the last max up.
    fn run_rounded(
        &self,
        keyed: Vec<(Bson, Row)>,
        series: &[f64],
        vars: &Document,
    ) -> Result<Vec<Document>> {
        let approx = ((keyed.len() as f64 / self.buckets as f64).round() as usize).max(1);
        // (min, max, start, end) per bucket.
        let mut buckets: Vec<(Bson, Bson, usize, usize)> = Vec::new();
        let mut i = 0;
        while i < keyed.len() && buckets.len() < self.buckets {
            let start = i;
            let min = keyed[start].0.clone();
            let is_last = buckets.len() == self.buckets - 1;
            let max;
            if is_last {
                i = keyed.len();
                max = keyed[i - 1].0.clone();
            } else {
                i = (start + approx).min(keyed.len());
                let boundary = round_up(&keyed[i - 1].0, series)?;
                while i < keyed.len()
                    && compare_values(Some(&boundary), Some(&keyed[i].0)) == Ordering::Greater
                {
                    i += 1;
                }
                max = if expr::Num::from_bson(&boundary).is_some_and(|n| n.f64() == 0.0)
                    && i < keyed.len()
                {
                    round_down(&keyed[i].0, series)?
                } else {
                    boundary
                };
            }
            // Each bucket after the first starts at the previous (rounded) max.
            let min = match buckets.last() {
                Some(prev) => prev.1.clone(),
                None => min,
            };
            buckets.push((min, max, start, i));
        }
        if let Some(first) = buckets.first_mut() {
            first.0 = round_down(&first.0, series)?;
        }
        if let Some(last) = buckets.last_mut() {
            last.1 = round_up(&last.1, series)?;
        }
        let mut out = Vec::with_capacity(buckets.len());
        for (min, max, start, end) in buckets {
            let id = Bson::Document(doc! {"min": min, "max": max});
            let members: Vec<&Row> = keyed[start..end].iter().map(|(_, d)| d).collect();
            let mut d = doc! {"_id": id.clone()};
            for (k, v) in Group::accumulate(&self.output, &members, &id, vars)? {
                d.insert(k, v);
            }
            out.push(d);
        }
        Ok(out)
    }
}

/// A parsed `$bucket`.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    group_by: Bson,
    boundaries: Vec<Bson>,
    default: Option<Bson>,
    output: Vec<(String, AccSpec)>,
}

impl Bucket {
    pub(super) fn parse(spec: &Bson) -> Result<Bucket> {
        let Bson::Document(d) = spec else {
            return Err(CommandError::new(
                40201,
                format!(
                    "Argument to $bucket stage must be an object, but found type: {}.",
                    expr::type_name(Some(spec))
                ),
            ));
        };
        let mut group_by = None;
        let mut boundaries = None;
        let mut default = None;
        for (k, v) in d {
            match k.as_str() {
                "groupBy" => {
                    check_group_by(v, "$bucket")?;
                    group_by = Some(v.clone());
                }
                "boundaries" => {
                    let Bson::Array(items) = v else {
                        return Err(CommandError::new(
                            40200,
                            format!(
                                "The $bucket 'boundaries' field must be an array, but found type: {}.",
                                expr::type_name(Some(v))
                            ),
                        ));
                    };
                    boundaries = Some(items.clone());
                }
                "default" => default = Some(v.clone()),
                "output" => {}
                other => {
                    return Err(CommandError::new(
                        40197,
                        format!("Unrecognized option to $bucket: {other}."),
                    ));
                }
            }
        }
        let (Some(group_by), Some(boundaries)) = (group_by, boundaries) else {
            return Err(CommandError::new(
                40198,
                "$bucket requires 'groupBy' and 'boundaries' to be specified.",
            ));
        };
        if boundaries.len() < 2 {
            return Err(CommandError::new(
                40192,
                format!(
                    "The $bucket 'boundaries' field must have at least 2 values, but found {} value(s).",
                    boundaries.len()
                ),
            ));
        }
        for w in 0..boundaries.len() - 1 {
            let (a, b) = (&boundaries[w], &boundaries[w + 1]);
            let numeric = |x: &Bson| expr::Num::from_bson(x).is_some();
            if !(numeric(a) && numeric(b)) && std::mem::discriminant(a) != std::mem::discriminant(b)
            {
                return Err(CommandError::new(
                    40193,
                    format!(
                        "All values in the the 'boundaries' option to $bucket must have the same type. Found conflicting types {} and {}.",
                        expr::type_name(Some(a)),
                        expr::type_name(Some(b))
                    ),
                ));
            }
            if compare_values(Some(a), Some(b)) != Ordering::Less {
                return Err(CommandError::new(
                    40194,
                    format!(
                        "The 'boundaries' option to $bucket must be sorted in ascending order, but elements {} and {} are not in ascending order ({a} is not less than {b}).",
                        w,
                        w + 1
                    ),
                ));
            }
        }
        if let Some(def) = &default {
            let first = &boundaries[0];
            let last = &boundaries[boundaries.len() - 1];
            let same_type = (expr::Num::from_bson(def).is_some()
                && expr::Num::from_bson(first).is_some())
                || std::mem::discriminant(def) == std::mem::discriminant(first);
            if same_type
                && compare_values(Some(def), Some(first)) != Ordering::Less
                && compare_values(Some(def), Some(last)) == Ordering::Less
            {
                return Err(CommandError::new(
                    40199,
                    "The $bucket 'default' field must be less than the lowest boundary or greater than or equal to the highest boundary.",
                ));
            }
        }
        let output = parse_output(d.get("output"), "$bucket")?;
        Ok(Bucket {
            group_by,
            boundaries,
            default,
            output,
        })
    }

    /// Its output documents have no metadata; the accumulators read their inputs'.
    pub(super) fn run(&self, rows: Vec<Row>, vars: &Document) -> Result<Vec<Document>> {
        // One slot per boundary interval, plus the default bucket.
        let mut members: Vec<Vec<Row>> = vec![Vec::new(); self.boundaries.len()];
        for d in rows {
            let v = expr::evaluate_with_meta(&self.group_by, &d.doc, vars, d.meta())?;
            let slot = (0..self.boundaries.len() - 1).find(|&i| {
                compare_values(v.as_ref(), Some(&self.boundaries[i])) != Ordering::Less
                    && compare_values(v.as_ref(), Some(&self.boundaries[i + 1])) == Ordering::Less
            });
            match (slot, &self.default) {
                (Some(i), _) => members[i].push(d),
                (None, Some(_)) => members[self.boundaries.len() - 1].push(d),
                (None, None) => {
                    return Err(CommandError::new(
                        40066,
                        "$switch could not find a matching branch for an input, and no default was specified.",
                    ));
                }
            }
        }
        let mut out = Vec::new();
        for (i, m) in members.iter().enumerate() {
            if m.is_empty() {
                continue;
            }
            let id = if i == self.boundaries.len() - 1 {
                self.default.clone().unwrap_or(Bson::Null)
            } else {
                self.boundaries[i].clone()
            };
            let refs: Vec<&Row> = m.iter().collect();
            let mut d = doc! {"_id": id.clone()};
            for (k, v) in Group::accumulate(&self.output, &refs, &id, vars)? {
                d.insert(k, v);
            }
            out.push(d);
        }
        // The server's $bucket is a $group followed by a sort on _id.
        out.sort_by(|a, b| compare_values(a.get("_id"), b.get("_id")));
        Ok(out)
    }
}
