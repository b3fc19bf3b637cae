//! Set expressions: `$setUnion`, `$setIntersection`, `$setDifference`, `$setEquals`, `$setIsSubset`.

use super::*;

pub(super) fn op_set(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = arg_list(arg);
    let v = eval_all(&args, scope)?;
    let dedup = |items: &[Bson]| -> Vec<Bson> {
        let mut out: Vec<Bson> = Vec::new();
        for i in items {
            if !out.iter().any(|o| compare(o, i) == Ordering::Equal) {
                out.push(i.clone());
            }
        }
        out
    };
    let contains = |set: &[Bson], x: &Bson| set.iter().any(|o| compare(o, x) == Ordering::Equal);
    match name {
        "$setUnion" | "$setIntersection" => {
            let mut result: Option<Vec<Bson>> = None;
            for x in &v {
                match x {
                    x if nullish(x) => return Ok(Some(Bson::Null)),
                    Some(Bson::Array(a)) => {
                        result = Some(match result {
                            None => dedup(a),
                            Some(r) if name == "$setUnion" => {
                                let mut all = r;
                                all.extend(a.iter().cloned());
                                dedup(&all)
                            }
                            Some(r) => r.into_iter().filter(|e| contains(a, e)).collect(),
                        });
                    }
                    other => {
                        return Err(CommandError::new(
                            if name == "$setUnion" { 17043 } else { 17047 },
                            format!(
                                "All operands of {name} must be arrays. One argument is of type: {}",
                                tn(other)
                            ),
                        ));
                    }
                }
            }
            Ok(Some(Bson::Array(result.unwrap_or_default())))
        }
        _ => {
            if v.len() != 2 && name != "$setEquals" {
                return Err(CommandError::new(
                    16020,
                    format!(
                        "Expression {name} takes exactly 2 arguments. {} were passed in.",
                        v.len()
                    ),
                ));
            }
            if name == "$setDifference" && v.iter().any(nullish) {
                return Ok(Some(Bson::Null));
            }
            let mut arrays = Vec::new();
            for x in &v {
                match x {
                    Some(Bson::Array(a)) => arrays.push(a.clone()),
                    other => {
                        return Err(CommandError::new(
                            17048,
                            format!(
                                "both operands of {name} must be arrays. First argument is of type: {}",
                                tn(other)
                            ),
                        ));
                    }
                }
            }
            Ok(Some(match name {
                "$setDifference" => Bson::Array(
                    dedup(&arrays[0])
                        .into_iter()
                        .filter(|e| !contains(&arrays[1], e))
                        .collect(),
                ),
                "$setIsSubset" => Bson::Boolean(arrays[0].iter().all(|e| contains(&arrays[1], e))),
                _ => {
                    if arrays.len() < 2 {
                        return Err(CommandError::new(
                            17045,
                            "$setEquals needs at least two arguments",
                        ));
                    }
                    let first = &arrays[0];
                    Bson::Boolean(arrays[1..].iter().all(|a| {
                        a.iter().all(|e| contains(first, e)) && first.iter().all(|e| contains(a, e))
                    }))
                }
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Objects
