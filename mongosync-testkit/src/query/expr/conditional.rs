//! Conditional expressions: `$cond` and `$switch`.

use super::*;

pub(super) fn op_cond(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let (cond, then, els) = match arg {
        Bson::Document(d) => {
            for k in d.keys() {
                if !matches!(k.as_str(), "if" | "then" | "else") {
                    return Err(CommandError::new(
                        17083,
                        format!("Unrecognized parameter to $cond: {k}"),
                    ));
                }
            }
            let get = |k: &str, code: i32| {
                d.get(k).ok_or_else(|| {
                    CommandError::new(code, format!("Missing '{k}' parameter to $cond"))
                })
            };
            (get("if", 17080)?, get("then", 17081)?, get("else", 17082)?)
        }
        _ => {
            let a = exact_args("$cond", arg, 3)?;
            (a[0], a[1], a[2])
        }
    };
    if truthy(eval(cond, scope)?.as_ref()) {
        eval(then, scope)
    } else {
        eval(els, scope)
    }
}

pub(super) fn op_switch(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Bson::Document(d) = arg else {
        return Err(CommandError::new(
            40060,
            format!(
                "$switch requires an object as an argument, found: {}",
                type_name(Some(arg))
            ),
        ));
    };
    let mut branches: Vec<(&Bson, &Bson)> = Vec::new();
    let mut default = None;
    for (k, v) in d {
        match k.as_str() {
            "branches" => {
                let Bson::Array(items) = v else {
                    return Err(CommandError::new(
                        40061,
                        format!(
                            "$switch expected an array for 'branches', found: {}",
                            type_name(Some(v))
                        ),
                    ));
                };
                for b in items {
                    let Bson::Document(bd) = b else {
                        return Err(CommandError::new(
                            40062,
                            format!(
                                "$switch expected each branch to be an object, found: {}",
                                type_name(Some(b))
                            ),
                        ));
                    };
                    for key in bd.keys() {
                        if key != "case" && key != "then" {
                            return Err(CommandError::new(
                                40063,
                                format!("$switch found an unknown argument to a branch: {key}"),
                            ));
                        }
                    }
                    let case = bd.get("case").ok_or_else(|| {
                        CommandError::new(
                            40064,
                            "$switch requires each branch have a 'case' expression",
                        )
                    })?;
                    let then = bd.get("then").ok_or_else(|| {
                        CommandError::new(
                            40065,
                            "$switch requires each branch have a 'then' expression.",
                        )
                    })?;
                    branches.push((case, then));
                }
            }
            "default" => default = Some(v),
            other => {
                return Err(CommandError::new(
                    40067,
                    format!("$switch found an unknown argument: {other}"),
                ));
            }
        }
    }
    if branches.is_empty() {
        return Err(CommandError::new(
            40068,
            "$switch requires at least one branch.",
        ));
    }
    for (case, then) in branches {
        if truthy(eval(case, scope)?.as_ref()) {
            return eval(then, scope);
        }
    }
    match default {
        Some(e) => eval(e, scope),
        None => Err(CommandError::new(
            40066,
            "$switch could not find a matching branch for an input, and no default was specified.",
        )),
    }
}
