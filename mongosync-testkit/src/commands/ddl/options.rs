//! Checks of `create`'s and `collMod`'s collection options, as the server's IDL and
//! `CollectionOptions::parse` make them.

use bson::{Bson, Document, doc};

use crate::error::{CommandError, Result, codes};
use crate::query::matcher::Matcher;

pub(super) const CREATE_FIELDS: &[&str] = &[
    "capped",
    "size",
    "max",
    "autoIndexId",
    "storageEngine",
    "validator",
    "validationLevel",
    "validationAction",
    "indexOptionDefaults",
    "viewOn",
    "pipeline",
    "collation",
    "changeStreamPreAndPostImages",
    "timeseries",
    "clusteredIndex",
    "expireAfterSeconds",
    "encryptedFields",
    "idIndex",
    "temp",
    "recordIdsReplicated",
    "flags",
];

/// Options of `create` kept as the collection's options (what `listCollections` reports).
pub(super) const STORED_OPTIONS: &[&str] = &[
    "capped",
    "size",
    "max",
    "storageEngine",
    "validator",
    "validationLevel",
    "validationAction",
    "indexOptionDefaults",
    "collation",
    "changeStreamPreAndPostImages",
    "timeseries",
    "clusteredIndex",
    "expireAfterSeconds",
    "encryptedFields",
    "temp",
    "recordIdsReplicated",
];

const VALIDATION_LEVELS: &[&str] = &["off", "strict", "moderate"];
const VALIDATION_ACTIONS: &[&str] = &["error", "warn", "errorAndLog"];

pub(super) fn validate_collection_options(opts: &Document, command: &str) -> Result<()> {
    if let Some(v) = opts.get("validator") {
        let Bson::Document(v) = v else {
            return Err(CommandError::type_mismatch(format!(
                "BSON field '{command}.validator' is the wrong type, expected type 'object'"
            )));
        };
        for bad in ["$near", "$nearSphere", "$text", "$where"] {
            if v.contains_key(bad) {
                return Err(CommandError::new(
                    codes::QUERY_FEATURE_NOT_ALLOWED,
                    format!("{bad} is not allowed in this context"),
                ));
            }
        }
        Matcher::new(v, &Document::new())?;
    }
    for (field, allowed) in [
        ("validationLevel", VALIDATION_LEVELS),
        ("validationAction", VALIDATION_ACTIONS),
    ] {
        if let Some(value) = opts.get(field)
            && !value.as_str().is_some_and(|v| allowed.contains(&v))
        {
            return Err(CommandError::bad_value(format!(
                "Enumeration value '{}' for field '{command}.{field}' is not a valid value.",
                crate::util::shell_repr(value).trim_matches('"')
            )));
        }
    }
    if let Some(images) = opts.get("changeStreamPreAndPostImages") {
        let ok = matches!(images, Bson::Document(d) if d.len() == 1 && matches!(d.get("enabled"), Some(Bson::Boolean(_))));
        if !ok {
            return Err(CommandError::failed_to_parse(format!(
                "BSON field '{command}.changeStreamPreAndPostImages.enabled' is missing but a required field"
            )));
        }
    }
    Ok(())
}

/// `BSONObjBuilder::appendNumber(long long)`: an int32 up to 2^30 in magnitude, else an int64.
pub(super) fn append_number(n: i64) -> Bson {
    if (-(1 << 30)..=(1 << 30)).contains(&n) {
        Bson::Int32(n as i32)
    } else {
        Bson::Int64(n)
    }
}

fn wrong_type(field: &str, v: &Bson, expected: &[&str]) -> CommandError {
    CommandError::wrong_field_type("create", field, crate::util::type_name(v), expected)
}

/// The `create` fields' types and values, as the server's IDL parser and
/// `CollectionOptions::parse` check them, before anything is created.
pub(super) fn check_create_arguments(body: &Document) -> Result<()> {
    const NUMBER: &[&str] = &["int", "long", "double", "decimal"];
    for field in ["size", "max", "expireAfterSeconds"] {
        if let Some(v) = body.get(field)
            && !crate::util::is_number(v)
        {
            return Err(wrong_type(field, v, NUMBER));
        }
    }
    for field in [
        "storageEngine",
        "indexOptionDefaults",
        "idIndex",
        "encryptedFields",
        "collation",
    ] {
        if let Some(v) = body.get(field)
            && !matches!(v, Bson::Document(_))
        {
            return Err(wrong_type(field, v, &["object"]));
        }
    }
    if let Some(Bson::Document(engines)) = body.get("storageEngine") {
        for (name, v) in engines {
            if !matches!(v, Bson::Document(_)) {
                return Err(CommandError::bad_value(format!(
                    "'storageEngine.{name}' has to be an embedded document."
                )));
            }
        }
    }
    if let Some(max) = body.get("max").and_then(crate::util::as_f64)
        && max >= 2_147_483_648.0
        && max as i64 != i64::MAX
    {
        return Err(CommandError::bad_value(
            "max in a capped collection has to be < 2^31 or not set",
        ));
    }
    if let Some(size) = body.get("size").and_then(crate::util::as_f64)
        && size > (1u64 << 50) as f64
    {
        return Err(CommandError::bad_value("size cannot exceed 1 PB"));
    }
    if let Some(e) = body.get("expireAfterSeconds").and_then(crate::util::as_f64) {
        check_expire_after_seconds(e, false)?;
    }
    if let Some(Bson::Document(id_index)) = body.get("idIndex") {
        if body.contains_key("clusteredIndex") {
            return Err(CommandError::invalid_options(
                "The 'clusteredIndex' option is not supported with the 'idIndex' option",
            ));
        }
        check_id_index(id_index)?;
    }
    if let Some(ts) = body.get("timeseries") {
        check_timeseries(ts)?;
    }
    if let Some(Bson::Document(ef)) = body.get("encryptedFields") {
        check_encrypted_fields(ef, body)?;
    }
    Ok(())
}

/// `index_key_validate::validateExpireAfterSeconds`: a secondary TTL index (`index`) takes
/// up to 2^31-1 seconds, a clustered collection up to the seconds since the epoch.
pub(super) fn check_expire_after_seconds(e: f64, index: bool) -> Result<()> {
    if e < 0.0 {
        return Err(CommandError::invalid_options(
            "TTL index 'expireAfterSeconds' option cannot be less than 0",
        ));
    }
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as f64;
    let max = if index { f64::from(i32::MAX) } else { now_secs };
    if e.is_nan() || e > max {
        return Err(CommandError::invalid_options(
            "TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number",
        ));
    }
    Ok(())
}

/// `index_key_validate::validateIdIndexSpec`: `key` is `{_id: 1}`, `name` is `_id_`, and
/// nothing else but `v`, `collation` and `ns` appear.
fn check_id_index(spec: &Document) -> Result<()> {
    // Field names first, then the key (the server's order); the spec it prints is the one
    // `validateIndexSpec` returned, with `v` filled in.
    for (k, _) in spec {
        if !["key", "name", "v", "collation", "ns"].contains(&k.as_str()) {
            let mut shown = spec.clone();
            if !shown.contains_key("v") {
                shown.insert("v", 2);
            }
            return Err(CommandError::new(
                codes::INVALID_INDEX_SPECIFICATION_OPTION,
                format!(
                    "The field '{k}' is not valid for an _id index specification. Specification: {}",
                    crate::util::shell_repr(&Bson::Document(shown))
                ),
            ));
        }
    }
    for (k, v) in spec {
        match k.as_str() {
            "key"
                if v != &Bson::Document(doc! {"_id": 1})
                    && v != &Bson::Document(doc! {"_id": 1.0}) =>
            {
                return Err(CommandError::bad_value(format!(
                    "The field 'key' for an _id index must be {{_id: 1}}, but got {}",
                    crate::util::shell_repr(v)
                )));
            }
            "name" if v.as_str() != Some("_id_") => {
                return Err(CommandError::bad_value(format!(
                    "The field 'name' for an _id index must be '_id_', but got {}",
                    crate::util::shell_repr(v)
                )));
            }
            _ => {}
        }
    }
    if !spec.contains_key("key") {
        return Err(CommandError::missing_field("create.idIndex", "key"));
    }
    Ok(())
}

/// A time or meta field name: no dot, no NUL (`timeseries::validateTimeAndMetaField`).
fn check_timeseries_field(field: &str, value: &str) -> Result<()> {
    if value.contains('.') || value.contains('\0') {
        return Err(CommandError::bad_value(format!(
            "Time-series time and metadata field names cannot contain '.' or embedded null bytes: '{field}' is {}",
            crate::util::shell_repr(&Bson::String(value.to_string()))
        )));
    }
    Ok(())
}

/// The `timeseries` option (the server's `TimeseriesOptions` IDL and its bucketing rules).
fn check_timeseries(ts: &Bson) -> Result<()> {
    let Bson::Document(ts) = ts else {
        return Err(wrong_type("timeseries", ts, &["object"]));
    };
    for (k, v) in ts {
        let field = format!("timeseries.{k}");
        match k.as_str() {
            "timeField" | "metaField" => {
                let Bson::String(name) = v else {
                    return Err(wrong_type(&field, v, &["string"]));
                };
                check_timeseries_field(k, name)?;
            }
            "granularity" => {
                let Bson::String(g) = v else {
                    return Err(wrong_type(&field, v, &["string"]));
                };
                if !["seconds", "minutes", "hours"].contains(&g.as_str()) {
                    return Err(CommandError::bad_value(format!(
                        "Enumeration value '{g}' for field 'create.timeseries.granularity' is not a valid value."
                    )));
                }
            }
            "bucketMaxSpanSeconds" | "bucketRoundingSeconds" => {
                if !crate::util::is_number(v) {
                    return Err(wrong_type(&field, v, &["int", "long", "double", "decimal"]));
                }
                let n = crate::util::as_f64(v).unwrap_or(0.0);
                if !(1.0..=31_536_000.0).contains(&n) {
                    return Err(CommandError::bad_value(format!(
                        "BSON field 'create.timeseries.{k}' value must be >= 1 and <= 31536000, actual value '{n}'"
                    )));
                }
            }
            _ => return Err(CommandError::unknown_field("create.timeseries", k)),
        }
    }
    let Some(time) = ts.get_str("timeField").ok() else {
        return Err(CommandError::missing_field(
            "create.timeseries",
            "timeField",
        ));
    };
    if ts.get_str("metaField").ok() == Some(time) {
        return Err(CommandError::invalid_options(
            "The 'metaField' field cannot be the same as the 'timeField' field",
        ));
    }
    let span = ts.get("bucketMaxSpanSeconds").and_then(crate::util::as_f64);
    let rounding = ts
        .get("bucketRoundingSeconds")
        .and_then(crate::util::as_f64);
    if let Ok(granularity) = ts.get_str("granularity") {
        // With a granularity, the bucketing fields may only repeat its defaults (what
        // `listCollections` shows, so that a listed spec can be replayed).
        let (default_span, default_rounding) = match granularity {
            "minutes" => (86_400.0, 3_600.0),
            "hours" => (2_592_000.0, 86_400.0),
            _ => (3_600.0, 60.0),
        };
        for (field, value, default) in [
            ("bucketMaxSpanSeconds", span, default_span),
            ("bucketRoundingSeconds", rounding, default_rounding),
        ] {
            if value.is_some_and(|v| v != default) {
                return Err(CommandError::invalid_options(format!(
                    "Timeseries '{field}' is not configurable to a value other than the default of {default} for the provided granularity"
                )));
            }
        }
    } else if (span.is_some() || rounding.is_some()) && span != rounding {
        return Err(CommandError::invalid_options(
            "Timeseries 'bucketMaxSpanSeconds' and 'bucketRoundingSeconds' fields must be set and equal",
        ));
    }
    Ok(())
}

/// `encryptedFields`: a `fields` array of `{path, keyId, bsonType?, queries?}`; not on a
/// capped, time-series or view namespace.
fn check_encrypted_fields(ef: &Document, body: &Document) -> Result<()> {
    for other in ["capped", "timeseries", "viewOn"] {
        if body.contains_key(other) {
            return Err(CommandError::invalid_options(format!(
                "Encrypted fields cannot be used with the '{other}' option"
            )));
        }
    }
    let fields = match ef.get("fields") {
        None => {
            return Err(CommandError::missing_field(
                "create.encryptedFields",
                "fields",
            ));
        }
        Some(Bson::Array(a)) => a,
        Some(v) => return Err(wrong_type("encryptedFields.fields", v, &["array"])),
    };
    for f in fields {
        let Bson::Document(f) = f else {
            return Err(wrong_type("encryptedFields.fields", f, &["object"]));
        };
        for required in ["path", "keyId"] {
            if !f.contains_key(required) {
                return Err(CommandError::missing_field(
                    "create.encryptedFields.fields",
                    required,
                ));
            }
        }
        if !matches!(f.get("path"), Some(Bson::String(_))) {
            return Err(wrong_type(
                "encryptedFields.fields.path",
                f.get("path").unwrap_or(&Bson::Null),
                &["string"],
            ));
        }
        if !matches!(f.get("keyId"), Some(Bson::Binary(b)) if b.subtype == bson::spec::BinarySubtype::Uuid)
        {
            return Err(CommandError::bad_value(
                "BSON field 'create.encryptedFields.fields.keyId' must be a UUID",
            ));
        }
    }
    Ok(())
}

/// A view's pipeline may not write (`$out`, `$merge`) nor open a change stream.
pub(super) fn check_view_pipeline(pipeline: &[Document], view: &str) -> Result<()> {
    for (i, stage) in pipeline.iter().enumerate() {
        let Some(name) = stage.keys().next() else {
            continue;
        };
        match name.as_str() {
            "$out" | "$merge" => {
                return Err(CommandError::new(
                    codes::OPTION_NOT_SUPPORTED_ON_VIEW,
                    format!(
                        "The aggregation stage {name} in location {i} of the pipeline cannot be used in the view definition of {view} because it writes to disk"
                    ),
                ));
            }
            "$changeStream" => {
                return Err(CommandError::new(
                    codes::OPTION_NOT_SUPPORTED_ON_VIEW,
                    "$changeStream cannot be used in a view definition",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}
