//! `profile`, as `profile_common.cpp` (`ProfileCmdBase::run`) and mongod's `CmdProfile`
//! (`dbcommands.cpp`) answer it: the level and filter belong to the database, `slowms` and
//! `sampleRate` to the whole server (`serverGlobalParams`); a level outside `[0, 2]` only reads;
//! the reply shows the settings as they were before the command.

use std::collections::HashMap;

use bson::{Bson, Document, doc};

use super::{Ctx, Reply};
use crate::error::{CommandError, Result};
use crate::util::{as_f64, is_number, type_name};

/// The profiler settings (`DatabaseProfileSettings` and the global thresholds).
#[derive(Debug)]
pub(crate) struct Profiling {
    /// Level and filter (as its serialized match expression) per database.
    databases: HashMap<String, (i64, Option<Document>)>,
    slow_ms: i64,
    sample_rate: f64,
}

impl Default for Profiling {
    fn default() -> Self {
        Profiling {
            databases: HashMap::new(),
            slow_ms: 100,
            sample_rate: 1.0,
        }
    }
}

/// `safeInt64` / `safeDouble`: any number, else TypeMismatch naming the four numeric types.
fn number(field: &str, v: &Bson) -> Result<f64> {
    if is_number(v) {
        return Ok(as_f64(v).unwrap_or(f64::NAN));
    }
    Err(CommandError::wrong_field_type(
        "profile",
        field,
        type_name(v),
        &["long", "int", "decimal", "double"],
    ))
}

/// `profile: <level>, slowms?, sampleRate?, filter?` on a database.
pub fn profile(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["slowms", "sampleRate", "filter"])?;
    let level = number("profile", ctx.arg())? as i64;
    let opt = |field: &str| -> Result<Option<f64>> {
        match ctx.body.get(field) {
            None | Some(Bson::Null | Bson::Undefined) => Ok(None),
            Some(v) => number(field, v).map(Some),
        }
    };
    let slow_ms = opt("slowms")?.map(|f| f as i64);
    let sample_rate = opt("sampleRate")?;
    // `ObjectOrUnset`: a match expression, or "unset" to remove the filter.
    let filter: Option<Option<Document>> = match ctx.body.get("filter") {
        None | Some(Bson::Null | Bson::Undefined) => None,
        Some(Bson::Document(f)) => {
            crate::query::matcher::Matcher::new(f, &Document::new())?;
            Some(Some(super::explain::parsed_query(f)))
        }
        Some(Bson::String(s)) if s == "unset" => Some(None),
        Some(_) => {
            return Err(CommandError::bad_value(
                "Expected an object, or the string 'unset'.",
            ));
        }
    };
    if sample_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
        return Err(CommandError::bad_value(
            "'sampleRate' must be between 0.0 and 1.0 inclusive",
        ));
    }
    let mut p = ctx.server.admin.profiling.lock();
    let (old_level, old_filter) = p.databases.get(&ctx.db).cloned().unwrap_or((0, None));
    let (old_slow, old_rate) = (p.slow_ms, p.sample_rate);
    let writes = (0..=2).contains(&level) || filter.is_some();
    if writes {
        let entry = p.databases.entry(ctx.db.clone()).or_insert((0, None));
        if (0..=2).contains(&level) {
            entry.0 = level;
        }
        if let Some(f) = &filter {
            entry.1 = f.clone();
        }
    }
    if let Some(s) = slow_ms {
        p.slow_ms = s;
    }
    if let Some(r) = sample_rate {
        p.sample_rate = r;
    }
    drop(p);
    let mut reply = doc! {
        "was": old_level as i32,
        // `serverGlobalParams.slowMS` is an `int`.
        "slowms": old_slow.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        "sampleRate": old_rate,
    };
    if let Some(f) = &old_filter {
        reply.insert("filter", f.clone());
    }
    if old_filter.is_some() || filter.is_some() {
        reply.insert(
            "note",
            "When a filter expression is set, slowms and sampleRate are not used for profiling and slow-query log lines.",
        );
    }
    Ok(Reply::Doc(reply))
}
