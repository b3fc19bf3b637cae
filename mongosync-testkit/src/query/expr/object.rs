//! Object expressions: `$getField`, `$setField`, `$unsetField`.

use super::*;

pub(super) fn field_name_arg(name: &str, f: &[(&str, &Bson)]) -> Result<String> {
    let fld = field(f, "field").ok_or_else(|| {
        CommandError::new(3041702, format!("{name} requires 'field' to be specified"))
    })?;
    match fld {
        Bson::String(s) if !s.starts_with('$') => Ok(s.clone()),
        Bson::Document(d) if d.len() == 1 && d.contains_key("$literal") => {
            match d.get("$literal") {
                Some(Bson::String(s)) => Ok(s.clone()),
                _ => Err(CommandError::new(
                    5654602,
                    format!("{name} requires 'field' to evaluate to type String"),
                )),
            }
        }
        _ => Err(CommandError::new(
            5654601,
            format!(
                "{name} requires 'field' to evaluate to a constant, but got a non-constant argument"
            ),
        )),
    }
}

pub(super) fn op_get_field(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let (name, input) = match arg {
        Bson::Document(d) if d.keys().next().is_some_and(|k| !k.starts_with('$')) => {
            let f = parse_object("$getField", arg, &["field", "input"], 3041701)?;
            (field_name_arg("$getField", &f)?, field(&f, "input"))
        }
        Bson::String(s) if !s.starts_with('$') => (s.clone(), None),
        other => {
            let f = vec![("field", other)];
            (field_name_arg("$getField", &f)?, None)
        }
    };
    let input = match input {
        Some(e) => eval(e, scope)?,
        None => scope.variable("CURRENT")?,
    };
    match input {
        Some(Bson::Document(d)) => Ok(d.get(&name).cloned()),
        v if nullish(&v) => Ok(if v.is_none() { None } else { Some(Bson::Null) }),
        _ => Ok(None),
    }
}

pub(super) fn op_set_field(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let allowed: &[&str] = if name == "$setField" {
        &["field", "input", "value"]
    } else {
        &["field", "input"]
    };
    let f = parse_object(name, arg, allowed, 4161100)?;
    let fname = field_name_arg(name, &f)?;
    let input_expr = field(&f, "input").ok_or_else(|| {
        CommandError::new(4161102, format!("{name} requires 'input' to be specified"))
    })?;
    let value = if name == "$setField" {
        let e = field(&f, "value").ok_or_else(|| {
            CommandError::new(4161103, "$setField requires 'value' to be specified")
        })?;
        eval(e, scope)?
    } else {
        None
    };
    let input = eval(input_expr, scope)?;
    match input {
        v if nullish(&v) => Ok(Some(Bson::Null)),
        Some(Bson::Document(mut d)) => {
            match value {
                Some(v) => {
                    d.insert(fname, v);
                }
                None => {
                    d.remove(&fname);
                }
            }
            Ok(Some(Bson::Document(d)))
        }
        _ => Err(CommandError::new(
            4161105,
            format!("{name} requires 'input' to evaluate to type Object"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Dates
