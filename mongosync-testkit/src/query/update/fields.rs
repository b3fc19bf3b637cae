//! Field update operators' parsing: `$currentDate` and `$rename`.

use super::*;

pub(super) fn parse_current_date(value: &Bson) -> Result<Leaf> {
    match value {
        Bson::Boolean(_) => Ok(Leaf::CurrentDate { timestamp: false }),
        Bson::Document(d) => {
            let mut timestamp = None;
            for (k, v) in d {
                if k != "$type" {
                    return Err(CommandError::bad_value(format!(
                        "Unrecognized $currentDate option: {k}"
                    )));
                }
                match v {
                    Bson::String(s) if s == "date" => timestamp = Some(false),
                    Bson::String(s) if s == "timestamp" => timestamp = Some(true),
                    _ => {}
                }
            }
            match timestamp {
                Some(timestamp) => Ok(Leaf::CurrentDate { timestamp }),
                None => Err(CommandError::bad_value(
                    "The '$type' string field is required to be 'date' or 'timestamp': \
                     {$currentDate: {field : {$type: 'date'}}}",
                )),
            }
        }
        other => Err(CommandError::bad_value(format!(
            "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type \
             expression ({{$type: 'timestamp/date'}}).",
            type_name(other)
        ))),
    }
}

pub(super) fn parse_rename(from: &str, to: &Bson) -> Result<String> {
    let Bson::String(to) = to else {
        return Err(CommandError::bad_value(format!(
            "The 'to' field for $rename must be a string: {}",
            fmt_elem(from, to)
        )));
    };
    let elem = fmt_elem(from, &Bson::String(to.clone()));
    if from == to {
        return Err(CommandError::bad_value(format!(
            "The source and target field for $rename must differ: {elem}"
        )));
    }
    if to.starts_with(&format!("{from}.")) || from.starts_with(&format!("{to}.")) {
        return Err(CommandError::bad_value(format!(
            "The source and target field for $rename must not be on the same path: {elem}"
        )));
    }
    if from.split('.').any(|p| p.starts_with('$')) {
        return Err(CommandError::bad_value(format!(
            "The source field for $rename may not be dynamic: {from}"
        )));
    }
    if to.split('.').any(|p| p.starts_with('$')) {
        return Err(CommandError::bad_value(format!(
            "The destination field for $rename may not be dynamic: {to}"
        )));
    }
    Ok(to.clone())
}
