//! Array update operators: `$push` with `$each`/`$slice`/`$sort`/`$position`, `$addToSet`, `$pull`.

use super::*;

#[derive(Debug, Clone)]
pub(super) enum SortSpec {
    /// Sort whole elements: 1 or -1.
    Whole(bool),
    /// Sort by fields of document elements: (path, ascending).
    Fields(Vec<(String, bool)>),
}

#[derive(Debug, Clone)]
pub(super) struct PushSpec {
    pub(super) each: Vec<Bson>,
    pub(super) position: Option<i64>,
    pub(super) slice: Option<i64>,
    pub(super) sort: Option<SortSpec>,
}

#[derive(Debug, Clone)]
pub(super) enum PullCond {
    /// A plain value: elements equal to it.
    Equal(Bson),
    /// A query on document elements (`{b: 1}`): matched as a filter; other elements never match.
    Object(Matcher),
    /// Conditions on the element itself (`{$gte: 6}`, a regex): matched through a wrapper.
    Wrapped(Matcher),
}

pub(super) fn parse_push(value: &Bson) -> Result<PushSpec> {
    let mut spec = PushSpec {
        each: vec![value.clone()],
        position: None,
        slice: None,
        sort: None,
    };
    let Bson::Document(d) = value else {
        return Ok(spec);
    };
    if !d.contains_key("$each") {
        return Ok(spec);
    }
    for (k, v) in d {
        match k.as_str() {
            "$each" => match v {
                Bson::Array(a) => spec.each = a.clone(),
                other => {
                    return Err(CommandError::bad_value(format!(
                        "The argument to $each in $push must be an array but it was of type: {}",
                        type_name(other)
                    )));
                }
            },
            "$slice" => match parse_integer(k, v) {
                Ok(n) => spec.slice = Some(n),
                Err(_) => {
                    return Err(CommandError::bad_value(format!(
                        "The value for $slice must be an integer value but was given type: {}",
                        type_name(v)
                    )));
                }
            },
            "$position" => match parse_integer(k, v) {
                Ok(n) => spec.position = Some(n),
                Err(_) => {
                    return Err(CommandError::bad_value(format!(
                        "The value for $position must be an integer value, not of type: {}",
                        type_name(v)
                    )));
                }
            },
            "$sort" => spec.sort = Some(parse_push_sort(v)?),
            other => {
                return Err(CommandError::bad_value(format!(
                    "Unrecognized clause in $push: {other}"
                )));
            }
        }
    }
    Ok(spec)
}

pub(super) fn sort_direction(v: &Bson) -> Option<bool> {
    match as_f64(v) {
        Some(1.0) => Some(true),
        Some(-1.0) => Some(false),
        _ => None,
    }
}

pub(super) fn parse_push_sort(v: &Bson) -> Result<SortSpec> {
    let bad_direction =
        || CommandError::bad_value("The $sort element value must be either 1 or -1");
    match v {
        Bson::Document(d) => {
            if d.is_empty() {
                return Err(CommandError::bad_value(
                    "The $sort pattern is empty when it should be a set of fields.",
                ));
            }
            let mut fields = Vec::new();
            for (k, dir) in d {
                let Some(asc) = sort_direction(dir) else {
                    return Err(bad_direction());
                };
                if k.is_empty() {
                    return Err(CommandError::bad_value("The $sort field cannot be empty"));
                }
                if k.split('.').any(str::is_empty) {
                    return Err(CommandError::bad_value(format!(
                        "The $sort field is a dotted field but has an empty part: {k}"
                    )));
                }
                fields.push((k.clone(), asc));
            }
            Ok(SortSpec::Fields(fields))
        }
        other if is_number(other) => match sort_direction(other) {
            Some(asc) => Ok(SortSpec::Whole(asc)),
            None => Err(bad_direction()),
        },
        _ => Err(CommandError::bad_value(
            "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort \
             embedded fields",
        )),
    }
}

pub(super) fn parse_add_to_set(value: &Bson) -> Result<Vec<Bson>> {
    let mut values = match value {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k == "$each") => {
            match d.get("$each") {
                Some(Bson::Array(a)) => {
                    if d.len() > 1 {
                        return Err(CommandError::bad_value(format!(
                            "Found unexpected fields after $each in $addToSet: {}",
                            fmt_doc(d)
                        )));
                    }
                    a.clone()
                }
                other => {
                    return Err(CommandError::type_mismatch(format!(
                        "The argument to $each in $addToSet must be an array but it was of type \
                         {}",
                        type_name(other.unwrap_or(&Bson::Null))
                    )));
                }
            }
        }
        other => vec![other.clone()],
    };
    // The values themselves are deduplicated first, keeping the first of equal values.
    let mut unique: Vec<Bson> = Vec::new();
    for v in values.drain(..) {
        if !unique.iter().any(|u| values_equal(u, &v)) {
            unique.push(v);
        }
    }
    Ok(unique)
}

pub(super) fn parse_pull(value: &Bson) -> Result<PullCond> {
    let empty = Document::new();
    match value {
        Bson::Document(d) if !d.keys().next().is_some_and(|k| is_path_operator(k)) => {
            Ok(PullCond::Object(Matcher::new(d, &empty)?))
        }
        Bson::Document(_) | Bson::RegularExpression(_) => {
            let mut filter = Document::new();
            filter.insert(WRAP, value.clone());
            Ok(PullCond::Wrapped(Matcher::new(&filter, &empty)?))
        }
        other => Ok(PullCond::Equal(other.clone())),
    }
}

pub(super) fn pull_matches(cond: &PullCond, elem: &Bson) -> bool {
    match cond {
        PullCond::Equal(v) => values_equal(elem, v),
        PullCond::Object(m) => match elem {
            Bson::Document(d) => m.matches(d),
            _ => false,
        },
        PullCond::Wrapped(m) => {
            let mut wrapper = Document::new();
            wrapper.insert(WRAP, elem.clone());
            m.matches(&wrapper)
        }
    }
}

/// `$push`: insert `$each` at `$position`, then `$sort`, then `$slice`.
pub(super) fn push(mut array: Vec<Bson>, spec: &PushSpec) -> Vec<Bson> {
    let len = array.len() as i64;
    let at = match spec.position {
        None => len,
        Some(p) if p < 0 => (len + p).max(0),
        Some(p) => p.min(len),
    } as usize;
    array.splice(at..at, spec.each.iter().cloned());
    if let Some(sort) = &spec.sort {
        match sort {
            SortSpec::Whole(asc) => array.sort_by(|a, b| {
                let o = compare(a, b);
                if *asc { o } else { o.reverse() }
            }),
            SortSpec::Fields(fields) => array.sort_by(|a, b| {
                for (path, asc) in fields {
                    let va = sort_key(a, path);
                    let vb = sort_key(b, path);
                    let o = compare(&va, &vb);
                    let o = if *asc { o } else { o.reverse() };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            }),
        }
    }
    if let Some(n) = spec.slice {
        let len = array.len() as i64;
        if n >= 0 {
            array.truncate(n.min(len) as usize);
        } else {
            let keep = n.unsigned_abs().min(len as u64) as usize;
            array.drain(..array.len() - keep);
        }
    }
    array
}

/// The value of a `$push` `$sort` field of an element (null when missing or not a document).
pub(super) fn sort_key(elem: &Bson, path: &str) -> Bson {
    let mut cur = elem;
    for p in path.split('.') {
        match cur {
            Bson::Document(d) => match d.get(p) {
                Some(v) => cur = v,
                None => return Bson::Null,
            },
            _ => return Bson::Null,
        }
    }
    cur.clone()
}
