//! `$group` and its accumulators, and the stages built on them (`$bucket`, `$bucketAuto`).

use std::cmp::Ordering;

use bson::{Bson, Document, doc};

use crate::error::{CommandError, Result};
use crate::query::expr::{self, Accumulator, compare_values};
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

    fn init(&self) -> Result<AccState> {
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

    fn add(&self, state: &mut AccState, doc: &Document, vars: &Document) -> Result<()> {
        match (self, state) {
            (AccSpec::Basic(_, e), AccState::Basic(acc)) => {
                acc.add(expr::evaluate(e, doc, vars)?)?
            }
            (AccSpec::Count, AccState::Basic(acc)) => acc.add(Some(Bson::Int32(1)))?,
            (AccSpec::First(e), AccState::First(slot @ None)) => {
                *slot = Some(expr::evaluate(e, doc, vars)?.unwrap_or(Bson::Null));
            }
            (AccSpec::Last(e), AccState::Last(slot)) => {
                *slot = Some(expr::evaluate(e, doc, vars)?.unwrap_or(Bson::Null));
            }
            (AccSpec::Push(e), AccState::Values(values)) => {
                if let Some(v) = expr::evaluate(e, doc, vars)? {
                    values.push(v);
                }
            }
            (AccSpec::AddToSet(e), AccState::Values(values)) => {
                if let Some(v) = expr::evaluate(e, doc, vars)?
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
                match expr::evaluate(e, doc, vars)? {
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
            (AccSpec::MergeObjects(e), AccState::Merge(out)) => match expr::evaluate(e, doc, vars)?
            {
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
            },
            (AccSpec::Quantile { input, .. }, AccState::Floats(values)) => {
                if let Some(v) = expr::evaluate(input, doc, vars)? {
                    expr::quantile_samples(&v, values);
                }
            }
            (AccSpec::StdDev { expr: e, .. }, AccState::Floats(values)) => {
                if let Some(n) = expr::evaluate(e, doc, vars)?
                    .as_ref()
                    .and_then(expr::Num::from_bson)
                {
                    values.push(n.f64());
                }
            }
            (AccSpec::N { op, input, .. }, AccState::Values(values)) => {
                let v = expr::evaluate(input, doc, vars)?;
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
                let out = expr::evaluate(output, doc, vars)?.unwrap_or(Bson::Null);
                items.push((doc.clone(), out));
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&self, state: AccState, id: &Bson, vars: &Document) -> Result<Bson> {
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
enum AccState {
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
    pub(super) fn run(&self, docs: Vec<Document>, vars: &Document) -> Result<Vec<Document>> {
        let mut groups: Vec<(Bson, Vec<AccState>)> = Vec::new();
        // Indexes into `groups`, sorted by key, for a binary search with BSON equality.
        let mut index: Vec<usize> = Vec::new();
        for d in &docs {
            let key = expr::evaluate(&self.id, d, vars)?.unwrap_or(Bson::Null);
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
                spec.add(state, d, vars)?;
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

    /// Accumulates `docs` as one group and returns the accumulated fields (for buckets).
    fn accumulate(
        accs: &[(String, AccSpec)],
        docs: &[&Document],
        key: &Bson,
        vars: &Document,
    ) -> Result<Document> {
        let mut states = accs
            .iter()
            .map(|(_, a)| a.init())
            .collect::<Result<Vec<_>>>()?;
        for d in docs {
            for ((_, spec), state) in accs.iter().zip(states.iter_mut()) {
                spec.add(state, d, vars)?;
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
                    return Err(CommandError::new(
                        40257,
                        "$bucketAuto 'granularity' is not supported by the testkit",
                    ));
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
        })
    }

    pub(super) fn run(&self, docs: Vec<Document>, vars: &Document) -> Result<Vec<Document>> {
        let mut keyed = Vec::with_capacity(docs.len());
        for d in docs {
            let k = expr::evaluate(&self.group_by, &d, vars)?.unwrap_or(Bson::Null);
            keyed.push((k, d));
        }
        keyed.sort_by(|a, b| compare_values(Some(&a.0), Some(&b.0)));
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
            let members: Vec<&Document> = keyed[start..end].iter().map(|(_, d)| d).collect();
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

    pub(super) fn run(&self, docs: Vec<Document>, vars: &Document) -> Result<Vec<Document>> {
        // One slot per boundary interval, plus the default bucket.
        let mut members: Vec<Vec<Document>> = vec![Vec::new(); self.boundaries.len()];
        for d in docs {
            let v = expr::evaluate(&self.group_by, &d, vars)?;
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
            let refs: Vec<&Document> = m.iter().collect();
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
