//! The generic command arguments, checked in one place for every command as the server's IDL
//! parser does (`generic_argument.idl`, `write_concern_idl.cpp`, `read_concern_args.cpp`):
//! an explicit `null` for an optional argument means "omitted"; `writeConcern` is parsed
//! whole (`w`, `j`, `fsync`, `wtimeout`) and refused by commands that do not write;
//! `readConcern` has no unknown fields and typed times; `maxTimeMS` is a non-negative 32-bit
//! integer; the API parameters are checked as `validateAPIParameters` does
//! (`initialize_api_parameters.cpp`).

use bson::{Bson, Document};

use super::Ctx;
use crate::error::{CommandError, Result, codes};
use crate::util::{as_f64, is_number, type_name};

/// Optional top-level arguments whose `null` the server's IDL reads as absent.
const NULL_MEANS_OMITTED: &[&str] = &[
    "readConcern",
    "writeConcern",
    "maxTimeMS",
    "collation",
    "let",
    "batchSize",
    "bypassDocumentValidation",
    "hint",
    "sort",
    "projection",
    "filter",
    "skip",
    "limit",
    "returnKey",
    "showRecordId",
    "tailable",
    "awaitData",
    "noCursorTimeout",
    "allowPartialResults",
    "min",
    "max",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
];

/// Commands whose `apiVersions()` is API Version 1 (the Stable API), under the name
/// `Command::getName()` gives: `isMaster` and `distinct`, among others, are not in it.
const API_V1_COMMANDS: &[&str] = &[
    "abortTransaction",
    "aggregate",
    "authenticate",
    "bulkWrite",
    "collMod",
    "commitTransaction",
    "count",
    "create",
    "createIndexes",
    "delete",
    "drop",
    "dropDatabase",
    "dropIndexes",
    "endSessions",
    "explain",
    "find",
    "findAndModify",
    "getMore",
    "hello",
    "insert",
    "killCursors",
    "listCollections",
    "listDatabases",
    "listIndexes",
    "ping",
    "refreshSessions",
    "saslContinue",
    "saslStart",
    "update",
];

/// Fields whose IDL `stability` is `unstable` or `internal`, which `apiStrict: true` refuses
/// (`throwAPIStrictErrorIfApplicable`), for the API Version 1 commands whose IDL says so
/// (`create.idl`, `create_indexes.idl`, `drop_indexes.idl`, `list_collections.idl`,
/// `list_indexes.idl`).
const UNSTABLE_FIELDS: &[(&str, &[&str])] = &[
    (
        "create",
        &[
            "autoIndexId",
            "size",
            "max",
            "storageEngine",
            "indexOptionDefaults",
            "recordPreImages",
            "changeStreamPreAndPostImages",
            "temp",
            "flags",
        ],
    ),
    (
        "createIndexes",
        &[
            "ignoreUnknownIndexOptions",
            "isTimeseriesNamespace",
            "collectionUUID",
        ],
    ),
    ("dropIndexes", &["isTimeseriesNamespace", "collectionUUID"]),
    ("listCollections", &["includePendingDrops"]),
    (
        "listIndexes",
        &[
            "includeBuildUUIDs",
            "includeIndexBuildInfo",
            "isTimeseriesNamespace",
        ],
    ),
];

/// Whether the command (under its reported name) is in API Version 1.
pub(crate) fn in_api_version_1(name: &str) -> bool {
    API_V1_COMMANDS.contains(&canonical_name(name))
}

/// The name a command reports itself by (`Command::getName()`), for its aliases.
pub(crate) fn canonical_name(name: &str) -> &str {
    match name {
        "findandmodify" => "findAndModify",
        "deleteIndexes" => "dropIndexes",
        "ismaster" => "isMaster",
        "buildinfo" => "buildInfo",
        "dbhash" => "dbHash",
        other => other,
    }
}

/// Commands that take a write concern (every other one refuses it).
const WRITE_CONCERN_COMMANDS: &[&str] = &[
    "insert",
    "update",
    "delete",
    "findAndModify",
    "findandmodify",
    "bulkWrite",
    "create",
    "drop",
    "dropDatabase",
    "renameCollection",
    "collMod",
    "createIndexes",
    "dropIndexes",
    "deleteIndexes",
    "commitTransaction",
    "abortTransaction",
    "createUser",
    "updateUser",
    "dropUser",
    "setFeatureCompatibilityVersion",
    "setDefaultRWConcern",
    "setClusterParameter",
    "setUserWriteBlockMode",
    "appendOplogNote",
    "convertToCapped",
    "applyOps",
];

/// Whether the command takes a `writeConcern` (its `supportsWriteConcern`).
pub(crate) fn supports_write_concern(name: &str) -> bool {
    WRITE_CONCERN_COMMANDS.contains(&name) || name == "aggregate"
}

/// Normalises and checks the generic arguments before the command runs.
pub fn check(ctx: &mut Ctx<'_>) -> Result<()> {
    let nulls: Vec<String> = ctx
        .body
        .iter()
        .skip(1)
        .filter(|(k, v)| matches!(v, Bson::Null) && NULL_MEANS_OMITTED.contains(&k.as_str()))
        .map(|(k, _)| k.clone())
        .collect();
    for k in nulls {
        ctx.body.remove(&k);
    }
    if let Some(wc) = ctx.body.get("writeConcern") {
        let wc = match wc {
            Bson::Document(d) => d.clone(),
            other => {
                return Err(CommandError::wrong_field_type(
                    &ctx.name,
                    "writeConcern",
                    type_name(other),
                    &["object"],
                ));
            }
        };
        write_concern(&wc)?;
        // `aggregate` takes one whatever its pipeline: drivers send the collection's write
        // concern with every aggregate, and the server accepts it.
        if !supports_write_concern(&ctx.name) {
            return Err(CommandError::invalid_options(
                "Command does not support writeConcern",
            ));
        }
    }
    if let Some(rc) = ctx.body.get("readConcern") {
        match rc {
            Bson::Document(d) => read_concern(d)?,
            other => {
                return Err(CommandError::wrong_field_type(
                    &ctx.name,
                    "readConcern",
                    type_name(other),
                    &["object"],
                ));
            }
        }
    }
    if let Some(v) = ctx.body.get("maxTimeMS") {
        max_time_ms(v)?;
    }
    for flag in ["apiStrict", "apiDeprecationErrors"] {
        if let Some(v) = ctx.body.get(flag)
            && !matches!(v, Bson::Boolean(_))
        {
            return Err(CommandError::wrong_field_type(
                &ctx.name,
                flag,
                type_name(v),
                &["bool"],
            ));
        }
    }
    idl_typed_options(ctx)?;
    api_parameters(ctx)
}

/// Typed options that the IDL parser checks before a command looks for its collection (so a
/// missing collection does not hide them): `collation` is an `object` and `hint` an
/// `indexHint` (`IndexHint::parse`) in `count_command.idl`, `distinct_command.idl`,
/// `find_and_modify.idl`; `collation` is an `object` in `find_command.idl` and
/// `aggregate_command.idl` too.
fn idl_typed_options(ctx: &Ctx<'_>) -> Result<()> {
    let name = canonical_name(&ctx.name);
    let takes_hint = matches!(name, "count" | "distinct" | "findAndModify");
    if (takes_hint || matches!(name, "find" | "aggregate"))
        && let Some(c) = ctx.body.get("collation")
        && !matches!(c, Bson::Document(_))
    {
        return Err(CommandError::wrong_field_type(
            &ctx.name,
            "collation",
            type_name(c),
            &["object"],
        ));
    }
    // `optionalBool` fields (`find_command.idl`, `aggregate_command.idl`): a boolean only, as
    // `OptionalBool::parseFromBSON` reads them (a null is refused too).
    let optional_bools: &[&str] = match name {
        "find" => &["allowDiskUse", "singleBatch"],
        "aggregate" => &["allowDiskUse"],
        _ => &[],
    };
    for field in optional_bools {
        if let Some(v) = ctx.body.get(*field)
            && !matches!(v, Bson::Boolean(_))
        {
            return Err(CommandError::type_mismatch(format!(
                "Field '{field}' should be a boolean value, but found: {}",
                type_name(v)
            )));
        }
    }
    if takes_hint
        && let Some(h) = ctx.body.get("hint")
        && !matches!(h, Bson::String(_) | Bson::Document(_))
    {
        return Err(failed_to_parse("Hint must be a string or an object".into()));
    }
    Ok(())
}

/// `validateAPIParameters`: `apiStrict` or `apiDeprecationErrors` (whatever their value) need
/// an `apiVersion`; the only version is "1" ("2" exists for tests behind
/// `acceptApiVersion2`, off); `apiStrict: true` refuses commands outside API Version 1, and
/// writes to `system.js`. No command is deprecated in Version 1, so `apiDeprecationErrors`
/// refuses none.
fn api_parameters(ctx: &Ctx<'_>) -> Result<()> {
    let version = match ctx.body.get("apiVersion") {
        None => None,
        Some(Bson::String(v)) => Some(v.as_str()),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                &ctx.name,
                "apiVersion",
                type_name(other),
                &["string"],
            ));
        }
    };
    let strict = ctx.body.get("apiStrict").map(|v| v == &Bson::Boolean(true));
    if (strict.is_some() || ctx.body.contains_key("apiDeprecationErrors")) && version.is_none() {
        return Err(CommandError::new(
            4886600,
            "Provided apiStrict and/or apiDeprecationErrors without passing apiVersion",
        ));
    }
    let Some(version) = version else {
        return Ok(());
    };
    match version {
        "1" => {}
        "2" => {
            return Err(CommandError::new(
                codes::API_VERSION_ERROR,
                "Cannot accept API version 2",
            ));
        }
        _ => {
            return Err(CommandError::new(
                codes::API_VERSION_ERROR,
                "API version must be \"1\"",
            ));
        }
    }
    if strict == Some(true) {
        let name = canonical_name(&ctx.name);
        if !in_api_version_1(name) {
            return Err(CommandError::new(
                codes::API_STRICT_ERROR,
                format!(
                    "Provided apiStrict:true, but the command {name} is not in API Version 1. Information on supported commands and migrations in API Version 1 can be found at https://dochub.mongodb.org/core/manual-versioned-api."
                ),
            ));
        }
        if let Some((_, fields)) = UNSTABLE_FIELDS.iter().find(|(c, _)| *c == name)
            && let Some(field) = ctx
                .body
                .keys()
                .skip(1)
                .find(|k| fields.contains(&k.as_str()))
        {
            return Err(CommandError::new(
                codes::API_STRICT_ERROR,
                format!(
                    "BSON field '{}.{field}' is not allowed with apiStrict:true.",
                    ctx.name
                ),
            ));
        }
        let writes = matches!(
            name,
            "insert" | "update" | "delete" | "findAndModify" | "bulkWrite"
        );
        if writes && ctx.arg().as_str() == Some("system.js") {
            return Err(CommandError::new(
                codes::API_STRICT_ERROR,
                format!(
                    "Provided apiStrict:true, but the command {name} attempts to write to system.js."
                ),
            ));
        }
    }
    Ok(())
}

fn failed_to_parse(message: String) -> CommandError {
    CommandError::new(codes::FAILED_TO_PARSE, message)
}

/// `WriteConcernOptions::parse`: an empty document is the default.
fn write_concern(wc: &Document) -> Result<()> {
    let safe_bool = |field: &str| -> Result<Option<bool>> {
        match wc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Boolean(b)) => Ok(Some(*b)),
            Some(v) if is_number(v) => Ok(Some(as_f64(v).is_some_and(|f| f != 0.0))),
            Some(other) => Err(CommandError::wrong_field_type(
                "writeConcern",
                field,
                type_name(other),
                &["bool", "long", "int", "decimal", "double"],
            )),
        }
    };
    for k in wc.keys() {
        if !matches!(
            k.as_str(),
            "w" | "j"
                | "fsync"
                | "wtimeout"
                | "provenance"
                | "getLastError"
                | "wOpTime"
                | "wElectionId"
        ) {
            return Err(CommandError::unknown_field("writeConcern", k));
        }
    }
    match wc.get("w") {
        None | Some(Bson::Null) | Some(Bson::Undefined) => {}
        Some(v) if is_number(v) => {
            let f = as_f64(v).unwrap_or(f64::NAN);
            if f.is_nan() {
                return Err(failed_to_parse("w cannot be NaN".into()));
            }
            let n = f as i64;
            if !(0..=50).contains(&n) {
                return Err(failed_to_parse(format!(
                    "w has to be a non-negative number and not greater than 50; found: {n}"
                )));
            }
        }
        Some(Bson::String(s)) => {
            if s.contains('\0') {
                return Err(failed_to_parse(format!(
                    "w has illegal embedded NUL byte, w: {s}"
                )));
            }
        }
        Some(Bson::Document(tags)) => {
            if tags.is_empty() {
                return Err(failed_to_parse("tagged write concern requires tags".into()));
            }
            for (k, v) in tags {
                if !is_number(v) {
                    return Err(failed_to_parse(format!(
                        "tags must be a single level document with only number values; found: {k}: {v}"
                    )));
                }
            }
        }
        Some(other) => {
            return Err(failed_to_parse(format!(
                "w has to be a number, string, or object; found: {}",
                type_name(other)
            )));
        }
    }
    let j = safe_bool("j")?;
    let fsync = safe_bool("fsync")?;
    if j == Some(true) && fsync == Some(true) {
        return Err(failed_to_parse(
            "fsync and j options cannot be used together".into(),
        ));
    }
    // A wtimeout of another type reads as 0; a number beyond 32 bits is refused.
    if let Some(v) = wc.get("wtimeout")
        && is_number(v)
        && as_f64(v).is_some_and(|f| f > f64::from(i32::MAX))
    {
        return Err(failed_to_parse("wtimeout must be a 32-bit integer".into()));
    }
    Ok(())
}

/// `ReadConcernArgs::parse`: known fields, typed times, `atClusterTime` only for snapshot.
fn read_concern(rc: &Document) -> Result<()> {
    for (k, v) in rc {
        match k.as_str() {
            "level" => {}
            "afterClusterTime" | "atClusterTime" => {
                if !matches!(v, Bson::Timestamp(_)) {
                    return Err(CommandError::wrong_field_type(
                        "readConcern",
                        k,
                        type_name(v),
                        &["timestamp"],
                    ));
                }
            }
            "afterOpTime" => {
                if !matches!(v, Bson::Document(_)) {
                    return Err(CommandError::wrong_field_type(
                        "readConcern",
                        k,
                        type_name(v),
                        &["object"],
                    ));
                }
            }
            "provenance"
            | "allowTransactionTableSnapshot"
            | "$_waitLastStableRecoveryTimestamp" => {}
            _ => return Err(CommandError::unknown_field("readConcern", k)),
        }
    }
    if rc.contains_key("afterClusterTime") && rc.contains_key("atClusterTime") {
        return Err(CommandError::invalid_options(
            "Can not specify both afterClusterTime and atClusterTime",
        ));
    }
    if rc.contains_key("atClusterTime") && rc.get_str("level").ok() != Some("snapshot") {
        return Err(CommandError::invalid_options(
            "atClusterTime field can be set only if level is snapshot",
        ));
    }
    Ok(())
}

/// `maxTimeMS`: a number with no fractional part, in `[0, 2147483647]`.
fn max_time_ms(v: &Bson) -> Result<()> {
    if !is_number(v) {
        return Err(CommandError::bad_value("maxTimeMS must be a number"));
    }
    let f = as_f64(v).unwrap_or(f64::NAN);
    if f.fract() != 0.0 && f.is_finite() {
        return Err(CommandError::bad_value("maxTimeMS has non-integral value"));
    }
    if !(0.0..=f64::from(i32::MAX)).contains(&f) {
        let shown = match v {
            Bson::Int32(n) => n.to_string(),
            Bson::Int64(n) => n.to_string(),
            _ => (f as i64).to_string(),
        };
        return Err(CommandError::bad_value(format!(
            "{shown} value for maxTimeMS is out of range [0, 2147483647]"
        )));
    }
    Ok(())
}
