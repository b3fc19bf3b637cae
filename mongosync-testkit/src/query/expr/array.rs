//! Array expressions: `$arrayElemAt`, `$slice`, `$filter`, `$map`, `$reduce`, `$indexOfArray`,
//! `$range`, `$arrayToObject`, `$zip`, `$firstN`/`$lastN`/`$maxN`/`$minN`, `$sortArray`.

use super::*;

pub(super) fn array_elem_at(
    name: &str,
    arr: &Option<Bson>,
    idx: &Option<Bson>,
) -> Result<Option<Bson>> {
    if nullish(arr) || nullish(idx) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(a)) = arr else {
        return Err(CommandError::new(
            28689,
            format!(
                "{name}'s first argument must be an array, but is {}",
                tn(arr)
            ),
        ));
    };
    let Some(n) = idx.as_ref().and_then(Num::from_bson) else {
        return Err(CommandError::new(
            28690,
            format!(
                "{name}'s second argument must be a numeric value, but is {}",
                tn(idx)
            ),
        ));
    };
    let i = match n {
        Num::Int(i) => i as i64,
        Num::Long(l) if i32::try_from(l).is_ok() => l,
        Num::Double(_) | Num::Decimal(_)
            if n.f64().fract() == 0.0 && n.f64().abs() <= i32::MAX as f64 =>
        {
            n.f64() as i64
        }
        _ => {
            return Err(CommandError::new(
                28691,
                format!(
                    "{name}'s second argument must be representable as a 32-bit integer: {}",
                    num_display(n)
                ),
            ));
        }
    };
    let len = a.len() as i64;
    let pos = if i < 0 { len + i } else { i };
    if pos < 0 || pos >= len {
        return Ok(None);
    }
    Ok(Some(a[pos as usize].clone()))
}

pub(super) fn op_slice(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args("$slice", arg, 2, 3)?;
    let v = eval_all(&args, scope)?;
    if v.iter().any(nullish) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(a)) = &v[0] else {
        return Err(CommandError::new(
            28724,
            format!(
                "First argument to $slice must be an array, but is of type: {}",
                tn(&v[0])
            ),
        ));
    };
    let Some(second) = int_arg(&v[1]) else {
        return Err(CommandError::new(
            28725,
            format!(
                "Second argument to $slice must be a numeric value, but is of type: {}",
                tn(&v[1])
            ),
        ));
    };
    let len = a.len() as i64;
    let (start, count) = if v.len() == 2 {
        if second >= 0 {
            (0, second)
        } else {
            ((len + second).max(0), -second)
        }
    } else {
        let Some(n) = int_arg(&v[2]) else {
            return Err(CommandError::new(
                28726,
                format!(
                    "Third argument to $slice must be numeric, but is of type: {}",
                    tn(&v[2])
                ),
            ));
        };
        if n <= 0 {
            return Err(CommandError::new(
                28729,
                format!("Third argument to $slice must be positive: {n}"),
            ));
        }
        let start = if second < 0 {
            (len + second).max(0)
        } else {
            second.min(len)
        };
        (start, n)
    };
    let end = (start + count).min(len);
    Ok(Some(Bson::Array(a[start as usize..end as usize].to_vec())))
}

pub(super) fn op_filter(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$filter", arg, &["input", "as", "cond", "limit"], 28647)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(28648, "Missing 'input' parameter to $filter"))?;
    let cond = field(&f, "cond")
        .ok_or_else(|| CommandError::new(28650, "Missing 'cond' parameter to $filter"))?;
    let var = as_name("$filter", &f, "this")?;
    let limit = match field(&f, "limit") {
        None => None,
        Some(l) => match eval(l, scope)? {
            v if nullish(&v) => None,
            v => match int_arg(&v) {
                Some(n) if n > 0 => Some(n as usize),
                _ => {
                    return Err(CommandError::new(
                        327391,
                        format!(
                            "$filter: limit must be greater than 0: {}",
                            v.unwrap_or(Bson::Null)
                        ),
                    ));
                }
            },
        },
    };
    let v = eval(input, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = v else {
        return Err(CommandError::new(
            28651,
            format!("input to $filter must be an array not {}", tn(&v)),
        ));
    };
    let mut out = Vec::new();
    for item in items {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let inner = scope.child(vec![(var.clone(), Some(item.clone()))]);
        if truthy(eval(cond, &inner)?.as_ref()) {
            out.push(item);
        }
    }
    Ok(Some(Bson::Array(out)))
}

pub(super) fn op_map(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$map", arg, &["input", "as", "in"], 16879)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(16880, "Missing 'input' parameter to $map"))?;
    let body = field(&f, "in")
        .ok_or_else(|| CommandError::new(16882, "Missing 'in' parameter to $map"))?;
    let var = as_name("$map", &f, "this")?;
    let v = eval(input, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = v else {
        return Err(CommandError::new(
            16883,
            format!("input to $map must be an array not {}", tn(&v)),
        ));
    };
    let mut out = Vec::new();
    for item in items {
        let inner = scope.child(vec![(var.clone(), Some(item))]);
        out.push(eval(body, &inner)?.unwrap_or(Bson::Null));
    }
    Ok(Some(Bson::Array(out)))
}

pub(super) fn op_reduce(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$reduce", arg, &["input", "initialValue", "in"], 40076)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(40077, "$reduce requires 'input' to be specified"))?;
    let initial = field(&f, "initialValue").ok_or_else(|| {
        CommandError::new(40078, "$reduce requires 'initialValue' to be specified")
    })?;
    let body = field(&f, "in")
        .ok_or_else(|| CommandError::new(40079, "$reduce requires 'in' to be specified"))?;
    let v = eval(input, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = v else {
        return Err(CommandError::new(
            40080,
            format!(
                "$reduce requires that 'input' be an array, found: {}",
                tn(&v)
            ),
        ));
    };
    let mut acc = eval(initial, scope)?;
    for item in items {
        let inner = scope.child(vec![
            ("value".to_string(), acc.clone()),
            ("this".to_string(), Some(item)),
        ]);
        acc = eval(body, &inner)?;
    }
    Ok(acc)
}

pub(super) fn op_index_of_array(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args("$indexOfArray", arg, 2, 4)?;
    let v = eval_all(&args, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(a)) = &v[0] else {
        return Err(CommandError::new(
            40090,
            format!(
                "$indexOfArray requires an array as a first argument, found: {}",
                tn(&v[0])
            ),
        ));
    };
    let bound = |i: usize| index_bound(&v, i, "$indexOfArray", "starting");
    let start = bound(2)?.unwrap_or(0);
    let end = bound(3)?.unwrap_or(a.len()).min(a.len());
    for (i, item) in a.iter().enumerate().take(end).skip(start) {
        if compare_values(Some(item), v[1].as_ref()) == Ordering::Equal {
            return Ok(Some(Bson::Int32(i as i32)));
        }
    }
    Ok(Some(Bson::Int32(-1)))
}

pub(super) fn op_range(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args("$range", arg, 2, 3)?;
    let v = eval_all(&args, scope)?;
    let get = |i: usize, what: &str, c1: i32, c2: i32| -> Result<i64> {
        let x = &v[i];
        let Some(n) = x.as_ref().and_then(Num::from_bson) else {
            return Err(CommandError::new(
                c1,
                format!(
                    "$range requires a numeric {what}, found value of type: {}",
                    tn(x)
                ),
            ));
        };
        match int_arg(x) {
            Some(i) if i32::try_from(i).is_ok() => Ok(i),
            _ => Err(CommandError::new(
                c2,
                format!(
                    "$range requires a {what} that can be represented as a 32-bit integer, found value: {}",
                    num_display(n)
                ),
            )),
        }
    };
    let start = get(0, "starting value", 34443, 34444)?;
    let end = get(1, "ending value", 34445, 34446)?;
    let step = if v.len() == 3 {
        get(2, "step value", 34447, 34448)?
    } else {
        1
    };
    if step == 0 {
        return Err(CommandError::new(
            34449,
            "$range requires a non-zero step value",
        ));
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        out.push(Bson::Int32(i as i32));
        i += step;
    }
    Ok(Some(Bson::Array(out)))
}

pub(super) fn op_array_to_object(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$arrayToObject", arg, 1, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(items)) = &v[0] else {
        return Err(CommandError::new(
            40386,
            format!(
                "$arrayToObject requires an array input, found: {}",
                tn(&v[0])
            ),
        ));
    };
    let mut out = Document::new();
    let mut kv_form: Option<bool> = None;
    for item in items {
        let (k, val) = match item {
            Bson::Array(pair) => {
                if kv_form == Some(true) {
                    return Err(CommandError::new(
                        40391,
                        "$arrayToObject requires a consistent input format. Elements must all be arrays or all be objects. Array was detected, now found: array",
                    ));
                }
                kv_form = Some(false);
                if pair.len() != 2 {
                    return Err(CommandError::new(
                        40397,
                        format!(
                            "$arrayToObject requires an array of size 2 arrays,found array of size: {}",
                            pair.len()
                        ),
                    ));
                }
                let Bson::String(k) = &pair[0] else {
                    return Err(CommandError::new(
                        40395,
                        format!(
                            "$arrayToObject requires an array of key-value pairs, where the key must be of type string. Found key type: {}",
                            type_name(Some(&pair[0]))
                        ),
                    ));
                };
                (k.clone(), pair[1].clone())
            }
            Bson::Document(d) => {
                if kv_form == Some(false) {
                    return Err(CommandError::new(
                        40391,
                        "$arrayToObject requires a consistent input format. Elements must all be arrays or all be objects. Object was detected, now found: object",
                    ));
                }
                kv_form = Some(true);
                if d.len() != 2 || !d.contains_key("k") || !d.contains_key("v") {
                    return Err(CommandError::new(
                        40392,
                        format!(
                            "$arrayToObject requires an object keys of 'k' and 'v'. Found incorrect number of keys:{}",
                            d.len()
                        ),
                    ));
                }
                let Some(Bson::String(k)) = d.get("k") else {
                    return Err(CommandError::new(
                        40394,
                        format!(
                            "$arrayToObject requires an object with keys 'k' and 'v', where the value of 'k' must be of type string. Found type: {}",
                            type_name(d.get("k"))
                        ),
                    ));
                };
                (k.clone(), d.get("v").cloned().unwrap_or(Bson::Null))
            }
            other => {
                return Err(CommandError::new(
                    40398,
                    format!(
                        "Unrecognised input type format for $arrayToObject: {}",
                        type_name(Some(other))
                    ),
                ));
            }
        };
        if k.contains('\0') {
            return Err(CommandError::new(
                4940400,
                "Key field cannot contain an embedded null byte",
            ));
        }
        out.insert(k, val);
    }
    Ok(Some(Bson::Document(out)))
}

pub(super) fn op_zip(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(
        "$zip",
        arg,
        &["inputs", "useLongestLength", "defaults"],
        34464,
    )?;
    let inputs = field(&f, "inputs")
        .ok_or_else(|| CommandError::new(34465, "Missing 'inputs' parameter to $zip"))?;
    let longest = match field(&f, "useLongestLength") {
        None => false,
        Some(Bson::Boolean(b)) => *b,
        Some(_) => {
            return Err(CommandError::new(
                34463,
                "useLongestLength must be a bool, found ",
            ));
        }
    };
    let Bson::Array(input_exprs) = inputs else {
        return Err(CommandError::new(
            34461,
            "inputs must be an array of expressions, found ",
        ));
    };
    let mut arrays = Vec::new();
    for e in input_exprs {
        match eval(e, scope)? {
            v if nullish(&v) => return Ok(Some(Bson::Null)),
            Some(Bson::Array(a)) => arrays.push(a),
            v => {
                return Err(CommandError::new(
                    34468,
                    format!(
                        "$zip found a non-array expression in input: {}",
                        v.unwrap_or(Bson::Null)
                    ),
                ));
            }
        }
    }
    let defaults: Vec<Bson> = match field(&f, "defaults") {
        None => vec![Bson::Null; arrays.len()],
        Some(d) => {
            if !longest {
                return Err(CommandError::new(
                    34466,
                    "cannot specify defaults unless useLongestLength is true",
                ));
            }
            let Bson::Array(d) = d else {
                return Err(CommandError::new(
                    34462,
                    "defaults must be an array of expressions",
                ));
            };
            if d.len() != arrays.len() {
                return Err(CommandError::new(
                    34467,
                    "defaults and inputs must have the same length",
                ));
            }
            let mut out = Vec::new();
            for e in d {
                out.push(eval(e, scope)?.unwrap_or(Bson::Null));
            }
            out
        }
    };
    let n = if longest {
        arrays.iter().map(Vec::len).max().unwrap_or(0)
    } else {
        arrays.iter().map(Vec::len).min().unwrap_or(0)
    };
    let out = (0..n)
        .map(|i| {
            Bson::Array(
                arrays
                    .iter()
                    .zip(&defaults)
                    .map(|(a, d)| a.get(i).cloned().unwrap_or_else(|| d.clone()))
                    .collect(),
            )
        })
        .collect();
    Ok(Some(Bson::Array(out)))
}

pub(super) fn op_array_n(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(name, arg, &["input", "n"], 5787901)?;
    let input = field(&f, "input").ok_or_else(|| {
        CommandError::new(5787907, format!("Missing value for 'input' in {name}"))
    })?;
    let n = field(&f, "n")
        .ok_or_else(|| CommandError::new(5787906, format!("Missing value for 'n' in {name}")))?;
    let n = eval(n, scope)?;
    // 8.x: a fractional or non-positive n is 7548606; a non-number 5787902.
    let fractional = n
        .as_ref()
        .and_then(Num::from_bson)
        .is_some_and(|x| x.f64().fract() != 0.0);
    let n = match int_arg(&n) {
        Some(k) if k > 0 => k as usize,
        _ if fractional => {
            return Err(CommandError::new(
                7548606,
                format!(
                    "Value for 'n' must be of integral type, but found {}",
                    n.unwrap_or(Bson::Null)
                ),
            ));
        }
        Some(_) => {
            return Err(CommandError::new(
                7548606,
                format!(
                    "'n' must be greater than 0, found {}",
                    n.unwrap_or(Bson::Null)
                ),
            ));
        }
        None => {
            return Err(CommandError::new(
                5787902,
                format!(
                    "Value for 'n' must be of integral type, but found {}",
                    n.unwrap_or(Bson::Null)
                ),
            ));
        }
    };
    let v = eval(input, scope)?;
    let Some(Bson::Array(mut items)) = v else {
        return Err(CommandError::new(
            5788200,
            format!("Input to {name} must be an array, but found {}", tn(&v)),
        ));
    };
    match name {
        "$firstN" => items.truncate(n),
        "$lastN" => {
            let skip = items.len().saturating_sub(n);
            items.drain(..skip);
        }
        _ => {
            // $maxN/$minN skip null and missing.
            items.retain(|x| !matches!(x, Bson::Null | Bson::Undefined));
            if name == "$maxN" {
                items.sort_by(|a, b| compare(b, a));
            } else {
                items.sort_by(compare);
            }
            items.truncate(n);
        }
    }
    Ok(Some(Bson::Array(items)))
}

pub(super) fn op_sort_array(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object("$sortArray", arg, &["input", "sortBy"], 2942500)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(2942501, "$sortArray requires 'input' to be specified"))?;
    let sort_by = field(&f, "sortBy").ok_or_else(|| {
        CommandError::new(2942502, "$sortArray requires 'sortBy' to be specified")
    })?;
    let v = eval(input, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::Array(mut items)) = v else {
        return Err(CommandError::new(
            2942504,
            format!(
                "The input argument to $sortArray must be an array, but was of type: {}",
                tn(&v)
            ),
        ));
    };
    match sort_by {
        Bson::Document(spec) => {
            let sort = crate::query::sort::SortSpec::new(spec)?;
            // Non-documents sort as empty documents under a field sort.
            let key = |b: &Bson| match b {
                Bson::Document(d) => d.clone(),
                _ => Document::new(),
            };
            items.sort_by(|a, b| sort.compare(&key(a), &key(b)));
        }
        other => {
            let dir = int_arg(&Some(other.clone()));
            match dir {
                Some(1) => items.sort_by(compare),
                Some(-1) => items.sort_by(|a, b| compare(b, a)),
                _ => {
                    return Err(CommandError::new(
                        2942505,
                        "$sortArray sortBy must be either 1, -1, or a sort specification object",
                    ));
                }
            }
        }
    }
    Ok(Some(Bson::Array(items)))
}
