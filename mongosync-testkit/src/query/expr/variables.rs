//! Variables: `$let` and the rules for user variable names.

use super::*;

pub(super) fn check_var_name(name: &str) -> Result<()> {
    let first = name.chars().next();
    let ok_first = first.is_some_and(|c| c.is_ascii_lowercase() || !c.is_ascii());
    if !ok_first {
        return Err(CommandError::new(
            16867,
            format!("'{name}' starts with an invalid character for a user variable name"),
        ));
    }
    // The server's variable_validation.cpp names the first offending character.
    if let Some(bad) = name
        .chars()
        .skip(1)
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || !c.is_ascii()))
    {
        return Err(CommandError::new(
            16868,
            format!("'{name}' contains an invalid character for a variable name: '{bad}'"),
        ));
    }
    Ok(())
}

pub(super) fn op_let(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let d = object_arg("$let", arg, 16874)?;
    let mut vars = None;
    let mut body = None;
    for (k, v) in d {
        match k.as_str() {
            "vars" => vars = Some(v),
            "in" => body = Some(v),
            other => {
                return Err(CommandError::new(
                    16875,
                    format!("Unrecognized parameter to $let: {other}"),
                ));
            }
        }
    }
    let vars = vars.ok_or_else(|| CommandError::new(16876, "Missing 'vars' parameter to $let"))?;
    let body = body.ok_or_else(|| CommandError::new(16877, "Missing 'in' parameter to $let"))?;
    let Bson::Document(vars) = vars else {
        return Err(CommandError::new(
            10065,
            "invalid parameter: expected an object (vars)",
        ));
    };
    let mut names = Vec::new();
    for (k, v) in vars {
        check_var_name(k)?;
        // Variables are evaluated in the outer scope.
        names.push((k.clone(), eval(v, scope)?));
    }
    let inner = scope.child(names);
    eval(body, &inner)
}

// ---------------------------------------------------------------------------------------------
// Conversions
