//! `$densify`: fills the gaps of a numeric or date sequence (the server's
//! `document_source_densify.cpp`). The stage sorts by the partition fields (not with
//! `bounds: "full"`) and the field, then per partition inserts documents on the step grid:
//! anchored at the lower bound (`[lo, hi)`), the partition's minimum (`"partition"`, up to its
//! maximum) or the minimum over all documents (`"full"`, up to the maximum over all). Values a
//! document already holds are not generated again; documents whose field is null or missing
//! pass through. Generated documents hold the partition fields and the field only.

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::error::{CommandError, Result};
use crate::query::compare::compare;
use crate::query::expr::{self, Num};
use crate::query::sort::SortSpec;

use super::type_name;

const STAGE: &str = "$densify";
/// `internalQueryMaxAllowedDensifyDocs`' default.
const MAX_GENERATED: usize = 500_000;

#[derive(Debug, Clone)]
enum Bounds {
    Full,
    Partition,
    /// `[lo, hi)`.
    Explicit(Box<(Bson, Bson)>),
}

#[derive(Debug, Clone)]
pub(super) struct Densify {
    field: Vec<String>,
    partitions: Vec<Vec<String>>,
    step: Num,
    unit: Option<String>,
    bounds: Bounds,
    sort: SortSpec,
}

/// A field path as the server's `FieldPath` checks it.
fn field_path(path: &str) -> Result<Vec<String>> {
    if path.is_empty() {
        return Err(CommandError::new(
            40352,
            "FieldPath cannot be constructed with empty string",
        ));
    }
    if path.starts_with('$') {
        return Err(CommandError::new(
            16410,
            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
        ));
    }
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(CommandError::new(
            15998,
            "FieldPath field names may not be empty strings.",
        ));
    }
    Ok(parts)
}

fn is_integral(n: Num) -> bool {
    let f = n.f64();
    f.fract() == 0.0 && f.abs() < 9.2e18
}

impl Densify {
    pub(super) fn parse(spec: &Bson) -> Result<Densify> {
        let Bson::Document(spec) = spec else {
            return Err(CommandError::failed_to_parse(format!(
                "The $densify stage specification must be an object, found {}",
                type_name(spec)
            )));
        };
        let (mut field, mut partitions, mut range) = (None, Vec::new(), None);
        for (k, v) in spec {
            match (k.as_str(), v) {
                ("field", Bson::String(s)) => field = Some(s.clone()),
                ("partitionByFields", Bson::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let Bson::String(s) = item else {
                            return Err(CommandError::wrong_field_type(
                                STAGE,
                                &format!("partitionByFields.{i}"),
                                type_name(item),
                                &["string"],
                            ));
                        };
                        partitions.push(s.clone());
                    }
                }
                ("range", Bson::Document(d)) => range = Some(d),
                ("field", other) => {
                    return Err(wrong_type("field", other, "string"));
                }
                ("partitionByFields", other) => {
                    return Err(wrong_type("partitionByFields", other, "array"));
                }
                ("range", other) => return Err(wrong_type("range", other, "object")),
                (other, _) => return Err(CommandError::unknown_field(STAGE, other)),
            }
        }
        let field = field.ok_or_else(|| CommandError::missing_field(STAGE, "field"))?;
        let range = range.ok_or_else(|| CommandError::missing_field(STAGE, "range"))?;
        let (mut step, mut bounds, mut unit) = (None, None, None);
        for (k, v) in range {
            match (k.as_str(), v) {
                ("step", v) => step = Some(v.clone()),
                ("bounds", v) => bounds = Some(v.clone()),
                ("unit", Bson::String(u)) => unit = Some(u.clone()),
                ("unit", other) => {
                    return Err(wrong_type("range.unit", other, "string"));
                }
                (other, _) => {
                    return Err(CommandError::unknown_field(
                        STAGE,
                        &format!("range.{other}"),
                    ));
                }
            }
        }
        let step = step.ok_or_else(|| CommandError::missing_field(STAGE, "range.step"))?;
        let bounds = bounds.ok_or_else(|| CommandError::missing_field(STAGE, "range.bounds"))?;
        // RangeStatement::parse, check for check.
        let step = match Num::from_bson(&step) {
            Some(n) if n.f64() > 0.0 => n,
            _ => {
                return Err(CommandError::new(
                    5733401,
                    "The step parameter in a range statement must be a strictly positive numeric value",
                ));
            }
        };
        if let Some(u) = &unit {
            if !is_integral(step) {
                return Err(CommandError::new(
                    6586400,
                    "The step parameter in a range statement must be a whole number when densifying a date range",
                ));
            }
            if expr::add_named_units(0, u, 0).is_none() {
                return Err(CommandError::failed_to_parse(format!(
                    "unknown time unit value: {u}"
                )));
            }
        }
        let bounds = match &bounds {
            Bson::Array(a) => {
                if a.len() != 2 {
                    return Err(CommandError::new(
                        5733403,
                        "A bounding array in a range statement must have exactly two elements",
                    ));
                }
                let (lo, hi) = (&a[0], &a[1]);
                if compare(lo, hi) == Ordering::Greater {
                    return Err(CommandError::new(
                        5733402,
                        "A bounding array must be an ascending array of either two dates or two numbers",
                    ));
                }
                match lo {
                    lo if Num::from_bson(lo).is_some() => {
                        if unit.is_some() {
                            return Err(CommandError::new(
                                5733409,
                                "Numeric bounds may not have unit parameter",
                            ));
                        }
                        if Num::from_bson(hi).is_none() {
                            return Err(CommandError::new(
                                5733406,
                                "A bounding array must contain either both dates or both numeric types",
                            ));
                        }
                        // Mixed widths would make the generated values' type surprising.
                        let kind = std::mem::discriminant;
                        if kind(lo) != kind(hi) || kind(lo) != kind(&step.to_bson()) {
                            return Err(CommandError::new(
                                5876900,
                                "Upper bound, lower bound, and step must all have the same type",
                            ));
                        }
                    }
                    Bson::DateTime(_) => {
                        if !matches!(hi, Bson::DateTime(_)) {
                            return Err(CommandError::new(
                                5733405,
                                "A bounding array must contain either both dates or both numeric types",
                            ));
                        }
                        if unit.is_none() {
                            return Err(CommandError::new(
                                5733410,
                                "A bounding array of dates must specify a unit",
                            ));
                        }
                    }
                    _ => {
                        return Err(CommandError::new(
                            5946800,
                            "Explicit bounds must be numeric or dates",
                        ));
                    }
                }
                Bounds::Explicit(Box::new((lo.clone(), hi.clone())))
            }
            Bson::String(s) if s == "full" => Bounds::Full,
            Bson::String(s) if s == "partition" => Bounds::Partition,
            Bson::String(_) => {
                return Err(CommandError::new(
                    5946802,
                    "Bounds string must either be 'full' or 'partition'",
                ));
            }
            _ => {
                return Err(CommandError::new(
                    5733404,
                    "The bounds in a range statement must be the string 'full', 'partition', or an ascending array of two numbers or two dates",
                ));
            }
        };
        // The densified field and the partition fields may not contain each other (compared
        // as strings, as the server does).
        let mut partition_paths = Vec::with_capacity(partitions.len());
        for p in &partitions {
            if p.starts_with(field.as_str()) {
                return Err(CommandError::new(
                    8993000,
                    format!(
                        "partitionByFields '{p}' cannot include field '{field}' that is being densified."
                    ),
                ));
            }
            if field.starts_with(p.as_str()) {
                return Err(CommandError::new(
                    9554500,
                    format!(
                        "field '{field}' that is being densified cannot include partitionByFields '{p}'."
                    ),
                ));
            }
            partition_paths.push(field_path(p)?);
        }
        let partitions = partition_paths;
        let field_parts = field_path(&field)?;
        if matches!(bounds, Bounds::Partition) && partitions.is_empty() {
            return Err(CommandError::new(
                5733408,
                "One cannot specify the bounds as 'partition' without specifying a non-empty array of partitionByFields. You may have meant to specify 'full' bounds.",
            ));
        }
        // The sort the server puts in front of its internal stage.
        let mut sort = Document::new();
        if !matches!(bounds, Bounds::Full) {
            for p in &partitions {
                sort.insert(p.join("."), 1);
            }
        }
        sort.insert(field.clone(), 1);
        Ok(Densify {
            field: field_parts,
            partitions,
            step,
            unit,
            bounds,
            sort: SortSpec::new(&sort)?,
        })
    }

    /// The next value on the grid: `+ step` for numbers, `step` units later for dates (UTC).
    fn increment(&self, v: &Bson) -> Bson {
        match (v, &self.unit) {
            (Bson::DateTime(t), Some(u)) => Bson::DateTime(bson::DateTime::from_millis(
                expr::add_named_units(t.timestamp_millis(), u, self.step.f64() as i64)
                    .unwrap_or(i64::MAX),
            )),
            (v, _) => Num::from_bson(v).map_or(Bson::Null, |n| n.add(self.step).to_bson()),
        }
    }

    /// The densify value of a document: `None` when null or missing (passed through).
    fn value(&self, d: &Document) -> Result<Option<Bson>> {
        let v = nested(d, &self.field);
        match v {
            None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(None),
            Some(v) if Num::from_bson(v).is_some() || matches!(v, Bson::DateTime(_)) => {
                let is_date = matches!(v, Bson::DateTime(_));
                if is_date != self.unit.is_some() {
                    return Err(CommandError::new(
                        6053600,
                        if is_date {
                            "Encountered date densify value in collection when step does not have a date unit."
                        } else {
                            "Encountered numeric densify value in collection when step has a date unit."
                        },
                    ));
                }
                Ok(Some(v.clone()))
            }
            Some(_) => Err(CommandError::new(
                5733201,
                "Densify field type must be numeric or a date",
            )),
        }
    }

    /// The partition fields of a document, as the server's `{p: "$p"}` object expression
    /// builds them (missing fields omitted).
    fn partition_of(&self, d: &Document) -> Document {
        let mut out = Document::new();
        for p in &self.partitions {
            if let Some(v) = nested(d, p) {
                super::set_path(&mut out, p, v.clone());
            }
        }
        out
    }

    /// The grid values from `from` (inclusive) while `below` holds, minus `present`.
    fn grid(
        &self,
        from: Bson,
        below: impl Fn(&Bson) -> bool,
        present: &[Bson],
        budget: &mut usize,
    ) -> Result<Vec<Bson>> {
        let mut out = Vec::new();
        let mut g = from;
        while below(&g) {
            if !present.iter().any(|p| compare(p, &g) == Ordering::Equal) {
                *budget += 1;
                if *budget > MAX_GENERATED {
                    return Err(CommandError::new(
                        5897900,
                        format!(
                            "Generated {budget} documents in $densify, which is over the limit of {MAX_GENERATED}. Increase the 'internalQueryMaxAllowedDensifyDocs' parameter to allow more generated documents"
                        ),
                    ));
                }
                out.push(g.clone());
            }
            let next = self.increment(&g);
            if compare(&next, &g) != Ordering::Greater {
                break;
            }
            g = next;
        }
        Ok(out)
    }

    fn generated(&self, partition: &Document, value: Bson) -> Result<Document> {
        // DocGenerator: the field's path may not cross an array or a non-object.
        let mut at = partition;
        for (i, name) in self.field.iter().enumerate() {
            match at.get(name) {
                Some(Bson::Array(_)) => {
                    return Err(CommandError::new(
                        5733307,
                        "$densify cannot generate fields nested inside arrays",
                    ));
                }
                Some(Bson::Document(sub)) => at = sub,
                None => break,
                Some(_) if i == self.field.len() - 1 => break,
                Some(_) => {
                    return Err(CommandError::new(
                        5733308,
                        "$densify cannot overwrite non-object values with objects",
                    ));
                }
            }
        }
        let mut d = partition.clone();
        super::set_path(&mut d, &self.field, value);
        Ok(d)
    }

    pub(super) fn run(&self, mut docs: Vec<Document>) -> Result<Vec<Document>> {
        docs.sort_by(|a, b| self.sort.compare(a, b));
        // Partitions in order of first appearance, with their documents' values.
        let mut parts: Vec<(Document, Vec<Bson>)> = Vec::new();
        let mut slot_of = Vec::with_capacity(docs.len());
        for d in &docs {
            let Some(v) = self.value(d)? else {
                slot_of.push(None);
                continue;
            };
            let key = self.partition_of(d);
            let slot = match parts.iter().position(|(k, _)| {
                compare(&Bson::Document(k.clone()), &Bson::Document(key.clone())) == Ordering::Equal
            }) {
                Some(i) => i,
                None => {
                    parts.push((key, Vec::new()));
                    parts.len() - 1
                }
            };
            parts[slot].1.push(v);
            slot_of.push(Some(slot));
        }
        let all: Vec<&Bson> = parts.iter().flat_map(|(_, vs)| vs.iter()).collect();
        let global_min = all.iter().min_by(|a, b| compare(a, b)).cloned().cloned();
        let global_max = all.iter().max_by(|a, b| compare(a, b)).cloned().cloned();
        let mut budget = 0usize;
        let mut pending: Vec<std::collections::VecDeque<Bson>> = Vec::new();
        for (_, values) in &parts {
            let grid = match &self.bounds {
                Bounds::Explicit(b) => self.grid(
                    b.0.clone(),
                    |g| compare(g, &b.1) == Ordering::Less,
                    values,
                    &mut budget,
                )?,
                Bounds::Partition => {
                    let min = values.iter().min_by(|a, b| compare(a, b));
                    let max = values.iter().max_by(|a, b| compare(a, b));
                    match (min, max) {
                        (Some(lo), Some(hi)) => self.grid(
                            lo.clone(),
                            |g| compare(g, hi) == Ordering::Less,
                            values,
                            &mut budget,
                        )?,
                        _ => Vec::new(),
                    }
                }
                Bounds::Full => match (&global_min, &global_max) {
                    (Some(lo), Some(hi)) => self.grid(
                        lo.clone(),
                        |g| compare(g, hi) != Ordering::Greater,
                        values,
                        &mut budget,
                    )?,
                    _ => Vec::new(),
                },
            };
            pending.push(grid.into());
        }
        // Without any value, explicit bounds still generate their whole range.
        if parts.is_empty()
            && let Bounds::Explicit(b) = &self.bounds
        {
            parts.push((Document::new(), Vec::new()));
            pending.push(
                self.grid(
                    b.0.clone(),
                    |g| compare(g, &b.1) == Ordering::Less,
                    &[],
                    &mut budget,
                )?
                .into(),
            );
        }
        let mut out = Vec::with_capacity(docs.len() + budget);
        for (d, slot) in docs.into_iter().zip(slot_of) {
            if let Some(slot) = slot {
                let v = self.value(&d)?.unwrap_or(Bson::Null);
                while pending[slot]
                    .front()
                    .is_some_and(|g| compare(g, &v) == Ordering::Less)
                {
                    let g = pending[slot].pop_front().unwrap_or(Bson::Null);
                    out.push(self.generated(&parts[slot].0, g)?);
                }
            }
            out.push(d);
        }
        // The values above each partition's last document come after the input.
        for (slot, rest) in pending.into_iter().enumerate() {
            for g in rest {
                out.push(self.generated(&parts[slot].0, g)?);
            }
        }
        Ok(out)
    }
}

fn wrong_type(field: &str, v: &Bson, expected: &str) -> CommandError {
    CommandError::wrong_field_type(STAGE, field, type_name(v), &[expected])
}

/// A nested field as `Document::getNestedField` reads it: through documents only.
fn nested<'a>(d: &'a Document, path: &[String]) -> Option<&'a Bson> {
    let (first, rest) = path.split_first()?;
    let v = d.get(first)?;
    if rest.is_empty() {
        return Some(v);
    }
    match v {
        Bson::Document(sub) => nested(sub, rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Bson, doc};

    fn run(spec: Document, input: Vec<Document>) -> Vec<Document> {
        Densify::parse(&Bson::Document(spec))
            .unwrap()
            .run(input)
            .unwrap()
    }

    fn err(spec: Bson) -> (i32, String) {
        let e = Densify::parse(&spec).unwrap_err();
        (e.code, e.message)
    }

    fn vals(docs: &[Document], f: &str) -> Vec<Bson> {
        docs.iter()
            .map(|d| d.get(f).cloned().unwrap_or(Bson::Null))
            .collect()
    }

    #[test]
    fn numeric_full_and_explicit_ranges() {
        // The manual's example shape: gaps filled on the step grid from the minimum.
        let out = run(
            doc! {"field": "v", "range": {"step": 2, "bounds": "full"}},
            vec![doc! {"v": 7}, doc! {"v": 0}, doc! {"v": 3}],
        );
        assert_eq!(
            vals(&out, "v"),
            vec![
                Bson::Int32(0),
                Bson::Int32(2),
                Bson::Int32(3),
                Bson::Int32(4),
                Bson::Int32(6),
                Bson::Int32(7)
            ]
        );
        // Generated documents hold the field only.
        assert_eq!(out[1], doc! {"v": 2});
        // [lo, hi): the upper bound is exclusive; documents outside pass through.
        let out = run(
            doc! {"field": "v", "range": {"step": 1, "bounds": [2, 5]}},
            vec![doc! {"v": 0}, doc! {"v": 3}, doc! {"v": 9}, doc! {"x": 1}],
        );
        assert_eq!(
            out,
            vec![
                doc! {"x": 1},
                doc! {"v": 0},
                doc! {"v": 2},
                doc! {"v": 3},
                doc! {"v": 4},
                doc! {"v": 9}
            ]
        );
        // No input: the whole explicit range.
        let out = run(
            doc! {"field": "a.b", "range": {"step": 0.5, "bounds": [0.0, 1.5]}},
            vec![],
        );
        assert_eq!(
            out,
            vec![
                doc! {"a": {"b": 0.0}},
                doc! {"a": {"b": 0.5}},
                doc! {"a": {"b": 1.0}}
            ]
        );
    }

    #[test]
    fn partitions_and_dates() {
        // jstests/aggregation/sources/densify/partitions.js testOne/testOneDates.
        let out = run(
            doc! {"field": "val", "partitionByFields": ["p"], "range": {"step": 1, "bounds": "partition"}},
            vec![
                doc! {"val": 0, "p": 0},
                doc! {"val": 2, "p": 0},
                doc! {"val": 0, "p": 1},
                doc! {"val": 2, "p": 1},
            ],
        );
        assert_eq!(
            out,
            vec![
                doc! {"val": 0, "p": 0},
                doc! {"p": 0, "val": 1},
                doc! {"val": 2, "p": 0},
                doc! {"val": 0, "p": 1},
                doc! {"p": 1, "val": 1},
                doc! {"val": 2, "p": 1},
            ]
        );
        let day = |d: i64| {
            Bson::DateTime(bson::DateTime::from_millis(
                1_609_459_200_000 + d * 86_400_000,
            ))
        };
        let out = run(
            doc! {"field": "val", "partitionByFields": ["p"], "range": {"step": 1, "unit": "day", "bounds": "full"}},
            vec![doc! {"val": day(0), "p": 0}, doc! {"val": day(2), "p": 1}],
        );
        // "full": every partition spans the global minimum to the global maximum.
        let mut got: Vec<(Bson, Bson)> = out
            .iter()
            .map(|d| (d.get("p").cloned().unwrap(), d.get("val").cloned().unwrap()))
            .collect();
        got.sort_by(|a, b| compare(&a.0, &b.0).then(compare(&a.1, &b.1)));
        let want: Vec<(Bson, Bson)> = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
            .iter()
            .map(|&(p, d)| (Bson::Int32(p), day(d)))
            .collect();
        assert_eq!(got, want);
        // Months step by calendar.
        let out = run(
            doc! {"field": "t", "range": {"step": 1, "unit": "month", "bounds": [
                bson::DateTime::from_millis(1_609_459_200_000),
                bson::DateTime::from_millis(1_617_235_200_000)
            ]}},
            vec![],
        );
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn argument_and_value_errors() {
        assert_eq!(err(Bson::Int32(1)).0, 9);
        assert_eq!(
            err(Bson::Document(doc! {})).1,
            "BSON field '$densify.field' is missing but a required field"
        );
        assert_eq!(err(Bson::Document(doc! {"field": "a", "x": 1})).0, 40415);
        assert_eq!(err(Bson::Document(doc! {"field": 1, "range": {}})).0, 14);
        let range = |r: Document| err(Bson::Document(doc! {"field": "a", "range": r})).0;
        assert_eq!(range(doc! {"step": 0, "bounds": "full"}), 5733401);
        assert_eq!(range(doc! {"step": "1", "bounds": "full"}), 5733401);
        assert_eq!(
            range(doc! {"step": 1.5, "unit": "day", "bounds": "full"}),
            6586400
        );
        assert_eq!(
            range(doc! {"step": 1, "unit": "fortnight", "bounds": "full"}),
            9
        );
        assert_eq!(range(doc! {"step": 1, "bounds": [1]}), 5733403);
        assert_eq!(range(doc! {"step": 1.0, "bounds": [1, 2]}), 5876900);
        assert_eq!(range(doc! {"step": 1, "bounds": [1, 2i64]}), 5876900);
        assert_eq!(range(doc! {"step": 1, "bounds": [2, 1]}), 5733402);
        assert_eq!(
            range(doc! {"step": 1, "unit": "day", "bounds": [1, 2]}),
            5733409
        );
        assert_eq!(range(doc! {"step": 1, "bounds": ["a", "b"]}), 5946800);
        assert_eq!(range(doc! {"step": 1, "bounds": "most"}), 5946802);
        assert_eq!(range(doc! {"step": 1, "bounds": 3}), 5733404);
        assert_eq!(range(doc! {"step": 1, "bounds": "partition"}), 5733408);
        let parted = |p: &str| {
            err(Bson::Document(
                doc! {"field": "a", "partitionByFields": [p], "range": {"step": 1, "bounds": "full"}},
            ))
        };
        assert_eq!(
            parted("a.b"),
            (
                8993000,
                "partitionByFields 'a.b' cannot include field 'a' that is being densified."
                    .to_string()
            )
        );
        assert_eq!(parted("").0, 9554500);
        assert_eq!(
            err(Bson::Document(
                doc! {"field": "$a", "range": {"step": 1, "bounds": "full"}}
            ))
            .0,
            16410
        );
        let run_err = |spec: Document, docs: Vec<Document>| {
            Densify::parse(&Bson::Document(spec))
                .unwrap()
                .run(docs)
                .unwrap_err()
                .code
        };
        let full = doc! {"field": "v", "range": {"step": 1, "bounds": "full"}};
        assert_eq!(run_err(full.clone(), vec![doc! {"v": "x"}]), 5733201);
        assert_eq!(
            run_err(full, vec![doc! {"v": bson::DateTime::from_millis(0)}]),
            6053600
        );
        assert_eq!(
            run_err(
                doc! {"field": "v", "range": {"step": 1, "bounds": [0, 1_000_000]}},
                vec![]
            ),
            5897900
        );
    }

    /// jstests/aggregation/sources/fill/fill_and_densify.js: `$densify` then `$fill` (8.x
    /// requires `sortBy` with a fill method; the jstest predates that).
    #[test]
    fn densify_then_fill() {
        use super::super::Pipeline;
        let run = |densify: Document, partitioned: bool| -> Vec<(i32, i32, Option<i32>)> {
            let mut fill = doc! {"sortBy": {"val": 1}, "output": {"toFill": {"method": "locf"}}};
            let mut docs = vec![
                doc! {"_id": 1, "val": 0, "toFill": 1, "part": 1},
                doc! {"_id": 2, "val": 5, "toFill": 3, "part": 1},
                doc! {"_id": 3, "val": 10, "toFill": 5, "part": 1},
                doc! {"_id": 4, "val": 3, "toFill": 10, "part": 2},
                doc! {"_id": 5, "val": 6, "toFill": 13, "part": 2},
                doc! {"_id": 6, "val": 9, "toFill": 16, "part": 2},
            ];
            if partitioned {
                fill.insert("partitionByFields", vec!["part"]);
            } else {
                docs.truncate(3);
            }
            let stages = [
                doc! {"$project": {"_id": 0}},
                doc! {"$densify": densify},
                doc! {"$fill": fill},
            ];
            let out = Pipeline::parse(&stages, &Document::new())
                .unwrap()
                .run_local(docs)
                .unwrap();
            let mut got: Vec<(i32, i32, Option<i32>)> = out
                .iter()
                .map(|d| {
                    (
                        d.get_i32("part").unwrap_or(1),
                        d.get_i32("val").unwrap(),
                        d.get_i32("toFill").ok(),
                    )
                })
                .collect();
            got.sort();
            got
        };
        // The filled value of `v` in a partition whose documents hold `known` (value, toFill).
        let expect = |part: i32, range: std::ops::RangeInclusive<i32>, known: &[(i32, i32)]| {
            range
                .map(|v| {
                    let fill = known.iter().rev().find(|(at, _)| *at <= v).map(|k| k.1);
                    (part, v, fill)
                })
                .collect::<Vec<_>>()
        };
        let part1 = [(0, 1), (5, 3), (10, 5)];
        let part2 = [(3, 10), (6, 13), (9, 16)];
        assert_eq!(
            run(
                doc! {"field": "val", "range": {"step": 1, "bounds": "full"}},
                false
            ),
            expect(1, 0..=10, &part1)
        );
        let mut want = expect(1, 0..=10, &part1);
        want.extend(expect(2, 3..=9, &part2));
        assert_eq!(
            run(
                doc! {"field": "val", "range": {"step": 1, "bounds": "partition"}, "partitionByFields": ["part"]},
                true
            ),
            want
        );
        // "full" with partitions: each partition spans the global range; before a
        // partition's first document there is nothing to carry forward.
        let mut want = expect(1, 0..=10, &part1);
        want.extend(expect(2, 0..=10, &part2));
        assert_eq!(
            run(
                doc! {"field": "val", "range": {"step": 1, "bounds": "full"}, "partitionByFields": ["part"]},
                true
            ),
            want
        );
    }
}
