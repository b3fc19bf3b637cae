//! Collection and index commands: `create`, `drop`, `dropDatabase`, `renameCollection`,
//! `collMod`, `listCollections`, `createIndexes`, `dropIndexes`, `listIndexes`, and the size
//! figures (`collStats`, `dataSize`).

use std::sync::Arc;

use bson::{Bson, Document, doc};

use super::support;
use super::{Ctx, Reply};
use crate::error::{CommandError, Result, codes};
use crate::oplog::EntryKind;
use crate::query::matcher::Matcher;
use crate::storage::catalog::Namespace;
use crate::storage::collection::CollectionData;
use crate::storage::{Index, View};

const CREATE_FIELDS: &[&str] = &[
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
const STORED_OPTIONS: &[&str] = &[
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

fn validate_collection_options(opts: &Document, command: &str) -> Result<()> {
    if let Some(v) = opts.get("validator") {
        let Bson::Document(v) = v else {
            return Err(CommandError::type_mismatch(format!(
                "BSON field '{command}.validator' is the wrong type, expected type 'object'"
            )));
        };
        for bad in ["$near", "$nearSphere", "$text", "$where", "$expr"] {
            if v.contains_key(bad) && bad != "$expr" {
                return Err(CommandError::new(
                    codes::QUERY_FEATURE_NOT_ALLOWED,
                    format!("{bad} is not allowed in this context"),
                ));
            }
        }
        Matcher::new(v, &Document::new())?;
    }
    if let Some(level) = opts.get("validationLevel")
        && !level
            .as_str()
            .is_some_and(|l| VALIDATION_LEVELS.contains(&l))
    {
        return Err(CommandError::bad_value(format!(
            "Enumeration value '{}' for field '{command}.validationLevel' is not a valid value.",
            crate::util::shell_repr(level).trim_matches('"')
        )));
    }
    if let Some(action) = opts.get("validationAction")
        && !action
            .as_str()
            .is_some_and(|a| VALIDATION_ACTIONS.contains(&a))
    {
        return Err(CommandError::bad_value(format!(
            "Enumeration value '{}' for field '{command}.validationAction' is not a valid value.",
            crate::util::shell_repr(action).trim_matches('"')
        )));
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
fn append_number(n: i64) -> Bson {
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
fn check_create_arguments(body: &Document) -> Result<()> {
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
fn check_expire_after_seconds(e: f64, index: bool) -> Result<()> {
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
    for (k, v) in spec {
        match k.as_str() {
            "key" => {
                if v != &Bson::Document(doc! {"_id": 1}) && v != &Bson::Document(doc! {"_id": 1.0})
                {
                    return Err(CommandError::bad_value(format!(
                        "The field 'key' for an _id index must be {{_id: 1}}, but got {}",
                        crate::util::shell_repr(v)
                    )));
                }
            }
            "name" => {
                if v.as_str() != Some("_id_") {
                    return Err(CommandError::bad_value(format!(
                        "The field 'name' for an _id index must be '_id_', but got {}",
                        crate::util::shell_repr(v)
                    )));
                }
            }
            "v" | "collation" | "ns" => {}
            other => {
                return Err(CommandError::new(
                    codes::INVALID_INDEX_SPECIFICATION_OPTION,
                    format!(
                        "The field '{other}' is not valid for an _id index specification. Specifications for _id indexes may only contain fields 'key', 'name', 'v', 'collation' and 'ns'"
                    ),
                ));
            }
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
fn check_view_pipeline(pipeline: &[Document], view: &str) -> Result<()> {
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

pub fn create(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(CREATE_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let body = ctx.body.clone();
    check_create_arguments(&body)?;
    if let Some(view_on) = body.get("viewOn") {
        let Bson::String(view_on) = view_on else {
            return Err(CommandError::type_mismatch("'viewOn' must be a string"));
        };
        if view_on.is_empty() {
            return Err(CommandError::bad_value("'viewOn' cannot be empty"));
        }
        for incompatible in [
            "capped",
            "size",
            "max",
            "validator",
            "timeseries",
            "clusteredIndex",
            "changeStreamPreAndPostImages",
            "idIndex",
        ] {
            if body.contains_key(incompatible) {
                return Err(CommandError::invalid_options(format!(
                    "'{incompatible}' option not supported on a view"
                )));
            }
        }
        let pipeline = match body.get("pipeline") {
            None => Vec::new(),
            Some(Bson::Array(stages)) => stages
                .iter()
                .map(|s| match s {
                    Bson::Document(d) => Ok(d.clone()),
                    _ => Err(CommandError::type_mismatch(
                        "'pipeline' must be an array of objects",
                    )),
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(CommandError::type_mismatch("'pipeline' must be an array")),
        };
        check_view_pipeline(&pipeline, &ctx.ns(&coll))?;
        crate::query::pipeline::Pipeline::parse(&pipeline, &Document::new())?;
        if ctx.txn.is_some() {
            return Err(not_in_transaction(
                "Cannot create a view in a multi-document transaction.".into(),
            ));
        }
        let view = View {
            view_on: view_on.clone(),
            pipeline,
            collation: body.get_document("collation").ok().cloned(),
        };
        ctx.server.catalog.create_view(&ctx.db, &coll, view)?;
        return Ok(Reply::Doc(Document::new()));
    }
    if body.contains_key("pipeline") {
        return Err(CommandError::invalid_options(
            "'pipeline' requires 'viewOn' to also be specified",
        ));
    }
    let mut options = Document::new();
    for (k, v) in body.iter().skip(1) {
        if STORED_OPTIONS.contains(&k.as_str()) {
            options.insert(k.clone(), v.clone());
        }
    }
    validate_collection_options(&options, "create")?;
    if options.contains_key("validator") {
        // A real server stores the defaults next to a validator.
        if !options.contains_key("validationLevel") {
            options.insert("validationLevel", "strict");
        }
        if !options.contains_key("validationAction") {
            options.insert("validationAction", "error");
        }
    }
    let capped = options.get("capped").map(|c| {
        c.as_bool()
            .unwrap_or(crate::util::as_f64(c).is_some_and(|f| f != 0.0))
    });
    if capped == Some(true) {
        options.insert("capped", true);
        match options.get("size").and_then(crate::util::as_f64) {
            Some(s) if s > 0.0 => {
                // The server rounds a capped size up to a multiple of 256 and writes it with
                // `appendNumber` (int32 up to 2^30, int64 above).
                let size = ((s as i64).saturating_add(0xff)) & !0xff;
                options.insert("size", append_number(size));
            }
            Some(_) => return Err(CommandError::bad_value("size must be greater than 0")),
            None => {
                return Err(CommandError::invalid_options(
                    "the 'size' field is required when 'capped' is true",
                ));
            }
        }
        if let Some(max) = options.get("max").and_then(crate::util::as_f64) {
            let max = max as i64;
            if max <= 0 || max == i64::MAX {
                // No limit: the server does not list it.
                options.remove("max");
            } else {
                options.insert("max", append_number(max));
            }
        }
        if options.contains_key("clusteredIndex") {
            return Err(CommandError::invalid_options(
                "Clustered collections cannot be capped",
            ));
        }
    } else {
        options.remove("capped");
        if options.contains_key("size") || options.contains_key("max") {
            return Err(CommandError::invalid_options(
                "the 'size' and 'max' fields are only allowed for capped collections",
            ));
        }
    }
    if let Some(ts) = options.get("timeseries") {
        let Bson::Document(ts) = ts else {
            return Err(CommandError::type_mismatch(
                "'timeseries' must be an object",
            ));
        };
        if ts.get_str("timeField").is_err() {
            return Err(CommandError::missing_field(
                "create.timeseries",
                "timeField",
            ));
        }
        let mut ts = ts.clone();
        if !ts.contains_key("granularity") && !ts.contains_key("bucketMaxSpanSeconds") {
            ts.insert("granularity", "seconds");
        }
        if !ts.contains_key("bucketMaxSpanSeconds") {
            let span = match ts.get_str("granularity").unwrap_or("seconds") {
                "minutes" => 86_400,
                "hours" => 2_592_000,
                _ => 3600,
            };
            ts.insert("bucketMaxSpanSeconds", span);
        }
        options.insert("timeseries", ts);
    }
    if let Some(ci) = options.get("clusteredIndex") {
        let Bson::Document(ci) = ci else {
            return Err(CommandError::type_mismatch(
                "'clusteredIndex' must be an object",
            ));
        };
        if ci.get_document("key").ok() != Some(&doc! {"_id": 1})
            || !ci.get_bool("unique").unwrap_or(false)
        {
            return Err(CommandError::invalid_options(
                "The clusteredIndex option is only supported for key: {_id: 1} and unique: true",
            ));
        }
        let mut spec = doc! {"v": 2, "key": {"_id": 1}};
        spec.insert("name", ci.get_str("name").unwrap_or("_id_"));
        spec.insert("unique", true);
        options.insert("clusteredIndex", spec);
    }
    if options.contains_key("expireAfterSeconds")
        && !options.contains_key("clusteredIndex")
        && !options.contains_key("timeseries")
    {
        return Err(CommandError::invalid_options(
            "'expireAfterSeconds' requires clustering to be enabled",
        ));
    }
    if options.contains_key("timeseries") {
        options.remove("clusteredIndex");
    }
    if let Some(e) = options
        .get("expireAfterSeconds")
        .and_then(crate::util::as_f64)
    {
        // `safeInt64` in the IDL: listed as a long whatever number type was given.
        options.insert("expireAfterSeconds", e as i64);
    }
    let exists = || {
        CommandError::new(
            codes::NAMESPACE_EXISTS,
            format!("Collection {}.{coll} already exists.", ctx.db),
        )
    };
    support::refuse_view(ctx, &coll).map_err(|_| exists())?;
    if let Some(txn) = &ctx.txn {
        // As `createCollection` in the server: inside a transaction only a plain collection,
        // created in the transaction (an existing one is NamespaceExists, whatever its options).
        if options.contains_key("timeseries") {
            return Err(not_in_transaction(
                "Cannot create a time-series collection in a multi-document transaction.".into(),
            ));
        }
        if coll.starts_with("system.") {
            return Err(not_in_transaction(format!(
                "Cannot create system collection {} within a transaction.",
                ctx.ns(&coll)
            )));
        }
        crate::storage::catalog::validate_collection_name(&ctx.db, &coll)?;
        let mut txn = txn.lock();
        if txn.has_collection(&ctx.db, &coll)
            || ctx.server.catalog.collection(&ctx.db, &coll).is_some()
        {
            return Err(exists());
        }
        txn.create_collection(&ctx.db, &coll, options);
        return Ok(Reply::Doc(Document::new()));
    }
    ctx.server
        .catalog
        .create_collection(&ctx.db, &coll, options)?;
    Ok(Reply::Doc(Document::new()))
}

/// OperationNotSupportedInTransaction (263).
fn not_in_transaction(message: String) -> CommandError {
    CommandError::new(263, message)
}

pub fn drop(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["collectionUUID"])?;
    let coll = ctx.collection_arg()?;
    check_collection_uuid(ctx, &ctx.db, &coll)?;
    let ns = ctx.ns(&coll);
    match ctx.server.catalog.drop_namespace(&ctx.db, &coll) {
        Some(Namespace::Collection(c)) => {
            let n = 1 + c.data.read().indexes.len() as i32;
            Ok(Reply::Doc(doc! {"nIndexesWas": n, "ns": ns}))
        }
        Some(Namespace::View(_)) => Ok(Reply::Doc(doc! {"ns": ns})),
        // Since 7.0 dropping a missing collection succeeds.
        None => Ok(Reply::Doc(Document::new())),
    }
}

/// `dropDatabase`: 8.x replies `{ok: 1}` alone, whether the database existed or not.
pub fn drop_database(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[])?;
    // A replica-set member keeps its oplog and its users.
    match ctx.db.as_str() {
        "local" => {
            return Err(CommandError::new(
                codes::ILLEGAL_OPERATION,
                "Cannot drop 'local' database while replication is active",
            ));
        }
        "admin" => {
            return Err(CommandError::new(
                codes::ILLEGAL_OPERATION,
                "Dropping the 'admin' database is prohibited.",
            ));
        }
        _ => {}
    }
    ctx.server.catalog.drop_database(&ctx.db);
    Ok(Reply::Doc(Document::new()))
}

/// `db.coll` of `renameCollection`'s source or target (`NamespaceString::isValid`).
fn split_ns<'a>(ns: &'a str, which: &str) -> Result<(&'a str, &'a str)> {
    ns.split_once('.')
        .filter(|(d, c)| crate::storage::catalog::validate_collection_name(d, c).is_ok())
        .ok_or_else(|| CommandError::invalid_namespace(format!("Invalid {which} namespace: {ns}")))
}

/// The generic `collectionUUID` argument: the namespace must be the collection with that
/// UUID, or the command fails with CollectionUUIDMismatch (361) naming the collection that
/// has it, as `checkCollectionUUIDMismatch`.
fn check_collection_uuid(ctx: &Ctx<'_>, db: &str, coll: &str) -> Result<()> {
    let expected = match ctx.body.get("collectionUUID") {
        None => return Ok(()),
        Some(Bson::Binary(b)) if b.subtype == bson::spec::BinarySubtype::Uuid => {
            bson::Uuid::from_bytes(b.bytes.as_slice().try_into().map_err(|_| {
                CommandError::new(codes::INVALID_UUID, "uuid must be a 16-byte binary field")
            })?)
        }
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                &ctx.name,
                "collectionUUID",
                crate::util::type_name(other),
                &["binData"],
            ));
        }
    };
    if ctx
        .server
        .catalog
        .collection(db, coll)
        .is_some_and(|c| c.uuid == expected)
    {
        return Ok(());
    }
    let actual = ctx.server.catalog.database(db).and_then(|d| {
        d.collections
            .iter()
            .find(|(_, c)| c.uuid == expected)
            .map(|(name, _)| name.clone())
    });
    Err(CommandError::new(
        codes::COLLECTION_UUID_MISMATCH,
        "Collection UUID does not match that specified",
    )
    .with_extra("db", db)
    .with_extra(
        "collectionUUID",
        Bson::Binary(bson::Binary::from_uuid(expected)),
    )
    .with_extra("expectedCollection", coll)
    .with_extra("actualCollection", actual.map_or(Bson::Null, Bson::String)))
}

pub fn rename_collection(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[
        "to",
        "dropTarget",
        "stayTemp",
        "collectionUUID",
        "newTargetCollectionUuid",
    ])?;
    if ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "renameCollection may only be run against the admin database.",
        ));
    }
    let from = match ctx.arg() {
        Bson::String(s) => s.clone(),
        other => {
            return Err(CommandError::wrong_field_type(
                "renameCollection",
                "renameCollection",
                crate::util::type_name(other),
                &["string"],
            ));
        }
    };
    let to = match ctx.body.get("to") {
        Some(Bson::String(s)) => s.clone(),
        None => return Err(CommandError::missing_field("renameCollection", "to")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "renameCollection",
                "to",
                crate::util::type_name(other),
                &["string"],
            ));
        }
    };
    let drop_target = match ctx.body.get("dropTarget") {
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Binary(_)) => true,
        _ => false,
    };
    let from = split_ns(&from, "source")?;
    let to = split_ns(&to, "target")?;
    check_collection_uuid(ctx, from.0, from.1)?;
    ctx.server.catalog.rename(from, to, drop_target)?;
    Ok(Reply::Doc(Document::new()))
}

pub fn coll_mod(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[
        "validator",
        "validationLevel",
        "validationAction",
        "index",
        "viewOn",
        "pipeline",
        "changeStreamPreAndPostImages",
        "expireAfterSeconds",
        "cappedSize",
        "cappedMax",
        "timeseries",
        "dryRun",
        "collectionUUID",
        "recordIdsReplicated",
        "timeseriesBucketsMayHaveMixedSchemaData",
    ])?;
    let coll = ctx.collection_arg()?;
    check_collection_uuid(ctx, &ctx.db, &coll)?;
    let body = ctx.body.clone();
    match ctx.server.catalog.lookup(&ctx.db, &coll) {
        None => Err(CommandError::namespace_not_found(format!(
            "ns does not exist: {}.{coll}",
            ctx.db
        ))),
        Some(Namespace::View(mut view)) => {
            for k in body.keys().skip(1) {
                if !["viewOn", "pipeline"].contains(&k.as_str())
                    && !super::GENERIC_FIELDS.contains(&k.as_str())
                {
                    return Err(CommandError::invalid_options(format!(
                        "option not supported on a view: {k}"
                    )));
                }
            }
            // Both or neither, as `collMod` on a view replaces the whole definition.
            if ctx.server.auth_enabled()
                && body.contains_key("viewOn") != body.contains_key("pipeline")
            {
                return Err(CommandError::invalid_options(
                    "Must specify both 'viewOn' and 'pipeline' when modifying a view and auth is enabled",
                ));
            }
            match body.get("viewOn") {
                None => {}
                Some(Bson::String(v)) if !v.is_empty() => view.view_on = v.clone(),
                Some(Bson::String(_)) => {
                    return Err(CommandError::bad_value("'viewOn' cannot be empty"));
                }
                Some(v) => {
                    return Err(CommandError::wrong_field_type(
                        "collMod",
                        "viewOn",
                        crate::util::type_name(v),
                        &["string"],
                    ));
                }
            }
            match body.get("pipeline") {
                None => {}
                Some(Bson::Array(p)) => {
                    let mut stages = Vec::with_capacity(p.len());
                    for s in p {
                        let Bson::Document(d) = s else {
                            return Err(CommandError::type_mismatch(
                                "'pipeline' must be an array of objects",
                            ));
                        };
                        stages.push(d.clone());
                    }
                    check_view_pipeline(&stages, &ctx.ns(&coll))?;
                    crate::query::pipeline::Pipeline::parse(&stages, &Document::new())?;
                    view.pipeline = stages;
                }
                Some(v) => {
                    return Err(CommandError::wrong_field_type(
                        "collMod",
                        "pipeline",
                        crate::util::type_name(v),
                        &["array"],
                    ));
                }
            }
            ctx.server.catalog.modify_view(&ctx.db, &coll, view)?;
            Ok(Reply::Doc(Document::new()))
        }
        Some(Namespace::Collection(c)) => {
            if body.contains_key("viewOn") || body.contains_key("pipeline") {
                return Err(CommandError::invalid_options(
                    "'viewOn' and 'pipeline' are only valid for views",
                ));
            }
            let mut changes = Document::new();
            for k in [
                "validator",
                "validationLevel",
                "validationAction",
                "changeStreamPreAndPostImages",
            ] {
                if let Some(v) = body.get(k) {
                    changes.insert(k, v.clone());
                }
            }
            validate_collection_options(&changes, "collMod")?;
            let dry_run = match body.get("dryRun") {
                None | Some(Bson::Null) => false,
                Some(v) => safe_bool("dryRun", v)?,
            };
            let index = match body.get("index") {
                None => None,
                Some(Bson::Document(index)) => Some(index),
                Some(v) => {
                    return Err(CommandError::wrong_field_type(
                        "collMod",
                        "index",
                        crate::util::type_name(v),
                        &["object"],
                    ));
                }
            };
            if dry_run {
                let unique_only = index
                    .is_some_and(|i| i.get("unique").is_some_and(|u| u == &Bson::Boolean(true)))
                    && body.keys().skip(1).all(|k| {
                        ["index", "dryRun"].contains(&k.as_str())
                            || super::GENERIC_FIELDS.contains(&k.as_str())
                    });
                if !unique_only {
                    return Err(CommandError::invalid_options(
                        "collMod.dryRun can only be specified with collMod.index.unique",
                    ));
                }
            }
            let mut data = c.data.write();
            // Every option is checked before anything changes.
            let mut capped = Document::new();
            for (field, stored) in [("cappedSize", "size"), ("cappedMax", "max")] {
                let Some(v) = body.get(field) else { continue };
                if !crate::util::is_number(v) {
                    return Err(CommandError::wrong_field_type(
                        "collMod",
                        field,
                        crate::util::type_name(v),
                        &["int", "long", "double", "decimal"],
                    ));
                }
                if !data.is_capped() {
                    return Err(CommandError::invalid_options(format!(
                        "Collection is not capped: {field}"
                    )));
                }
                let n = crate::util::as_f64(v).unwrap_or(0.0) as i64;
                if field == "cappedSize" {
                    if !(1..=1i64 << 50).contains(&n) {
                        return Err(CommandError::invalid_options(
                            "Capped size must be greater than 0 and less than 1 PB",
                        ));
                    }
                    capped.insert(stored, append_number((n + 0xff) & !0xff));
                } else if n >= 1i64 << 31 {
                    return Err(CommandError::invalid_options(
                        "Capped max must be less than 2^31",
                    ));
                } else {
                    capped.insert(stored, append_number(n));
                }
            }
            let expire = match body.get("expireAfterSeconds") {
                None => None,
                Some(v) => {
                    if !data.options.contains_key("clusteredIndex")
                        && !data.options.contains_key("timeseries")
                    {
                        return Err(CommandError::invalid_options(
                            "collMod.expireAfterSeconds is only supported on clustered collections and time-series collections",
                        ));
                    }
                    match v {
                        Bson::String(s) if s == "off" => Some(None),
                        v if crate::util::is_number(v) => {
                            let e = crate::util::as_f64(v).unwrap_or(0.0);
                            check_expire_after_seconds(e, false)?;
                            Some(Some(e as i64))
                        }
                        _ => {
                            return Err(CommandError::bad_value(
                                "When passing a string to 'expireAfterSeconds' it must be 'off'",
                            ));
                        }
                    }
                }
            };
            let mut state_before = doc! {"collectionOptions": data.options.clone()};
            let mut reply = Document::new();
            if let Some(index) = index {
                let (r, old) = modify_index(&mut data, index, dry_run)?;
                if dry_run {
                    return Ok(Reply::Doc(Document::new()));
                }
                reply = r;
                state_before.insert("indexOptions", old);
            }
            for (k, v) in changes {
                data.options.insert(k, v);
            }
            for (k, v) in capped {
                data.options.insert(k, v);
            }
            match expire {
                Some(Some(e)) => {
                    data.options.insert("expireAfterSeconds", e);
                }
                Some(None) => {
                    data.options.remove("expireAfterSeconds");
                }
                None => {}
            }
            let mut description = Document::new();
            for (k, v) in body.iter().skip(1) {
                if !super::GENERIC_FIELDS.contains(&k.as_str()) && k != "dryRun" {
                    description.insert(k.clone(), v.clone());
                }
            }
            data.record_ddl(EntryKind::Modify {
                description,
                state_before,
            });
            Ok(Reply::Doc(reply))
        }
    }
}

/// The IDL's `safeBool`: a bool or a number (non-zero is true).
fn safe_bool(field: &str, v: &Bson) -> Result<bool> {
    match v {
        Bson::Boolean(b) => Ok(*b),
        v if crate::util::is_number(v) => Ok(crate::util::as_f64(v) != Some(0.0)),
        other => Err(CommandError::wrong_field_type(
            "collMod",
            field,
            crate::util::type_name(other),
            &["bool", "int", "long", "double", "decimal"],
        )),
    }
}

/// Changes an index's options; returns the reply fields and the options it had.
fn modify_index(
    data: &mut crate::storage::CollectionData,
    index: &Document,
    dry_run: bool,
) -> Result<(Document, Document)> {
    // The `_id` index is implicit here; the server refuses to hide it before anything else.
    let is_id = index.get_str("name").ok() == Some("_id_")
        || index
            .get_document("keyPattern")
            .is_ok_and(|k| k.len() == 1 && k.get("_id").and_then(crate::util::as_f64) == Some(1.0));
    if is_id && index.contains_key("hidden") {
        return Err(CommandError::bad_value("can't hide _id index"));
    }
    let position = if let Ok(name) = index.get_str("name") {
        data.indexes
            .iter()
            .position(|i| i.name() == name)
            .ok_or_else(|| {
                CommandError::new(
                    codes::INDEX_NOT_FOUND,
                    format!("cannot find index {name} for ns {}", data.ns),
                )
            })?
    } else if let Ok(key) = index.get_document("keyPattern") {
        data.indexes
            .iter()
            .position(|i| i.key() == key)
            .ok_or_else(|| {
                CommandError::new(
                    codes::INDEX_NOT_FOUND,
                    format!(
                        "cannot find index {} for ns {}",
                        crate::util::shell_repr(&Bson::Document(key.clone())),
                        data.ns
                    ),
                )
            })?
    } else {
        return Err(CommandError::invalid_options(
            "must specify either index name or key pattern for collMod",
        ));
    };
    let mut spec = data.indexes[position].spec.clone();
    let old_options = options_of(&spec);
    let mut reply = Document::new();
    if let Some(hidden) = index.get("hidden") {
        let hidden = &safe_bool("index.hidden", hidden)?;
        let old = spec.get_bool("hidden").unwrap_or(false);
        // Hiding a hidden index (or unhiding a visible one) is a no-op the reply omits.
        if old != *hidden {
            reply.insert("hidden_old", old);
            reply.insert("hidden_new", *hidden);
        }
        if *hidden {
            spec.insert("hidden", true);
        } else {
            spec.remove("hidden");
        }
    }
    if let Some(expire) = index.get("expireAfterSeconds") {
        if !crate::util::is_number(expire) {
            return Err(CommandError::type_mismatch(
                "'expireAfterSeconds' must be a number",
            ));
        }
        if !spec.contains_key("expireAfterSeconds") {
            return Err(CommandError::invalid_options(
                "no expireAfterSeconds field to update",
            ));
        }
        let new = crate::util::as_f64(expire).unwrap_or(0.0);
        check_expire_after_seconds(new, true)?;
        let new = new as i64;
        let old = spec.get("expireAfterSeconds").and_then(crate::util::as_f64);
        // `safeInt64` in the reply; an unchanged value is a no-op the reply omits.
        if old.map(|o| o as i64) != Some(new) {
            if let Some(old) = old {
                reply.insert("expireAfterSeconds_old", old as i64);
            }
            reply.insert("expireAfterSeconds_new", new);
        }
        // The index keeps an int32 when it fits, as `createIndexes` stores it.
        spec.insert(
            "expireAfterSeconds",
            i32::try_from(new).map_or(Bson::Int64(new), Bson::Int32),
        );
    }
    if let Some(prepare) = index.get("prepareUnique") {
        let prepare = &safe_bool("index.prepareUnique", prepare)?;
        let old = spec.get_bool("prepareUnique").unwrap_or(false);
        // As the server: the same value, or any value on a unique index, is a no-op.
        if old != *prepare && !spec.get_bool("unique").unwrap_or(false) {
            reply.insert("prepareUnique_old", old);
            reply.insert("prepareUnique_new", *prepare);
            if *prepare {
                spec.insert("prepareUnique", true);
            } else {
                spec.remove("prepareUnique");
            }
        }
    }
    let mut make_unique = false;
    if let Some(unique) = index.get("unique") {
        if unique != &Bson::Boolean(true) {
            return Err(CommandError::bad_value(
                "Cannot make index non-unique; collMod only supports unique: true",
            ));
        }
        if !spec.get_bool("unique").unwrap_or(false) {
            if !dry_run && !spec.get_bool("prepareUnique").unwrap_or(false) {
                return Err(CommandError::invalid_options(
                    "Cannot make index unique with 'prepareUnique=false'. Run collMod to set it first.",
                ));
            }
            make_unique = true;
        }
    }
    if make_unique {
        let dups = data.indexes[position].duplicates(data.decoded()?.into_iter())?;
        if !dups.is_empty() {
            let violations: Vec<Bson> = dups
                .iter()
                .map(|(_, rids)| {
                    let ids: Vec<Bson> = rids
                        .iter()
                        .filter_map(|r| data.get(*r).and_then(crate::storage::collection::raw_id))
                        .collect();
                    Bson::Document(doc! {"ids": ids})
                })
                .collect();
            return Err(CommandError::new(
                codes::CANNOT_CONVERT_INDEX_TO_UNIQUE,
                "Cannot convert the index to unique. Please resolve conflicting documents before running collMod again.",
            )
            .with_extra("violations", violations));
        }
        if dry_run {
            return Ok((Document::new(), old_options));
        }
        spec.insert("unique", true);
        spec.remove("prepareUnique");
        reply.insert("unique_new", true);
    }
    let ns = data.ns.clone();
    let mut new_index = Index::new(spec)?;
    new_index.rebuild(&ns, data.decoded()?.into_iter())?;
    data.indexes[position] = new_index;
    Ok((reply, old_options))
}

/// The `listCollections` entry of a collection.
fn collection_entry(name: &str, c: &crate::storage::Collection) -> Document {
    let data = c.data.read();
    let kind = if data.options.contains_key("timeseries") {
        "timeseries"
    } else {
        "collection"
    };
    let mut entry = doc! {"name": name, "type": kind, "options": data.options.clone()};
    if kind == "timeseries" {
        entry.insert("info", doc! {"readOnly": false});
    } else {
        entry.insert(
            "info",
            doc! {"readOnly": false, "uuid": Bson::Binary(bson::Binary::from_uuid(c.uuid))},
        );
        if !data.options.contains_key("clusteredIndex") {
            entry.insert("idIndex", doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"});
        }
    }
    entry
}

pub fn list_collections(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[
        "filter",
        "nameOnly",
        "authorizedCollections",
        "cursor",
        "includePendingDrops",
        "rawData",
    ])?;
    let filter = ctx.opt_doc("filter")?.cloned().unwrap_or_default();
    let matcher = Matcher::new(&filter, &Document::new())?;
    let name_only = ctx.opt_bool("nameOnly")?.unwrap_or(false);
    let batch = match ctx.opt_doc("cursor")? {
        Some(c) => c
            .get("batchSize")
            .and_then(crate::util::as_f64)
            .map(|b| b as usize),
        None => None,
    };
    let db = ctx.server.catalog.database(&ctx.db).unwrap_or_default();
    let mut entries: Vec<Document> = Vec::new();
    for (name, c) in &db.collections {
        entries.push(collection_entry(name, c));
    }
    if ctx.db == "local" && !db.collections.contains_key("oplog.rs") {
        entries.push(super::local::oplog_collection_entry(ctx));
    }
    for (name, v) in &db.views {
        let pipeline: Vec<Bson> = v.pipeline.iter().cloned().map(Bson::Document).collect();
        let mut options = doc! {"viewOn": v.view_on.clone(), "pipeline": pipeline};
        if let Some(c) = &v.collation {
            options.insert("collation", c.clone());
        }
        entries.push(doc! {"name": name.clone(), "type": "view", "options": options, "info": {"readOnly": true}});
    }
    entries.sort_by(|a, b| {
        a.get_str("name")
            .unwrap_or("")
            .cmp(b.get_str("name").unwrap_or(""))
    });
    let mut out = Vec::new();
    for e in entries {
        if !matcher.matches(&e) {
            continue;
        }
        let e = if name_only {
            doc! {"name": e.get_str("name").unwrap_or(""), "type": e.get_str("type").unwrap_or("")}
        } else {
            e
        };
        out.push(support::encode(&e)?);
    }
    let ns = format!("{}.$cmd.listCollections", ctx.db);
    Ok(super::read::cursor_over(ctx, ns, out, batch))
}

const INDEX_OPTIONS: &[&str] = &[
    "v",
    "key",
    "name",
    "unique",
    "sparse",
    "partialFilterExpression",
    "hidden",
    "collation",
    "expireAfterSeconds",
    "background",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "bucketSize",
    "wildcardProjection",
    "prepareUnique",
    "storageEngine",
    "dropDups",
    "ns",
    "coarsestIndexedLevel",
    "finestIndexedLevel",
    "clustered",
];

fn validate_index_spec(spec: &Document) -> Result<Document> {
    let key = match spec.get("key") {
        Some(Bson::Document(k)) if !k.is_empty() => k.clone(),
        Some(Bson::Document(_)) => {
            return Err(CommandError::new(
                codes::CANNOT_CREATE_INDEX,
                "Index keys cannot be an empty field.",
            ));
        }
        Some(_) => {
            return Err(CommandError::type_mismatch(
                "The field 'key' must be an object",
            ));
        }
        None => {
            return Err(CommandError::failed_to_parse(
                "The 'key' field is a required property of an index specification",
            ));
        }
    };
    for (field, dir) in &key {
        if field.is_empty() {
            return Err(CommandError::new(
                codes::CANNOT_CREATE_INDEX,
                "Index keys cannot be an empty field.",
            ));
        }
        let ok = match dir {
            Bson::String(s) => {
                ["hashed", "text", "2dsphere", "2d", "geoHaystack"].contains(&s.as_str())
            }
            v if crate::util::is_number(v) => {
                crate::util::as_f64(v).is_some_and(|f| f != 0.0 && !f.is_nan())
            }
            _ => false,
        };
        if !ok {
            return Err(CommandError::new(
                codes::CANNOT_CREATE_INDEX,
                format!(
                    "Values in index key pattern can't be 0 or a non-number/string: {}",
                    crate::util::shell_repr(dir)
                ),
            ));
        }
    }
    let name = match spec.get("name") {
        Some(Bson::String(n)) if !n.is_empty() => n.clone(),
        Some(Bson::String(_)) => {
            return Err(CommandError::new(
                codes::CANNOT_CREATE_INDEX,
                "index name cannot be empty",
            ));
        }
        Some(_) => {
            return Err(CommandError::type_mismatch(
                "The field 'name' must be a string",
            ));
        }
        None => {
            return Err(CommandError::failed_to_parse(
                "The 'name' field is a required property of an index specification",
            ));
        }
    };
    for k in spec.keys() {
        if !INDEX_OPTIONS.contains(&k.as_str()) {
            return Err(CommandError::new(
                codes::INVALID_INDEX_SPECIFICATION_OPTION,
                format!(
                    "The field '{k}' is not valid for an index specification. Specification: {}",
                    crate::util::shell_repr(&Bson::Document(spec.clone()))
                ),
            ));
        }
    }
    let truthy = |f: &str| {
        spec.get(f).is_some_and(|v| {
            v.as_bool()
                .unwrap_or(crate::util::as_f64(v).is_some_and(|n| n != 0.0))
        })
    };
    if truthy("unique") && truthy("prepareUnique") {
        return Err(CommandError::invalid_options(
            "Index specification cannot have both 'unique' and 'prepareUnique' set to true",
        ));
    }
    if let Some(e) = spec.get("expireAfterSeconds") {
        let secs = crate::util::as_f64(e).ok_or_else(|| {
            CommandError::type_mismatch("TTL index 'expireAfterSeconds' option must be numeric")
        })?;
        if !(0.0..=2_147_483_647.0).contains(&secs) {
            return Err(CommandError::invalid_options(format!(
                "TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number: {secs}"
            )));
        }
        if key.len() > 1 {
            return Err(CommandError::new(
                codes::CANNOT_CREATE_INDEX,
                "TTL indexes are single-field indexes, compound indexes do not support TTL",
            ));
        }
    }
    if let Some(p) = spec.get("partialFilterExpression") {
        let Bson::Document(p) = p else {
            return Err(CommandError::type_mismatch(
                "The field 'partialFilterExpression' must be an object",
            ));
        };
        Matcher::new(p, &Document::new())?;
    }
    // Stored as the server stores it: v, key, name first, then the options as given.
    let mut out = doc! {"v": 2, "key": key, "name": name};
    for (k, v) in spec {
        if !["v", "key", "name", "background", "ns", "dropDups"].contains(&k.as_str()) {
            let v = match (k.as_str(), v) {
                ("unique" | "sparse" | "hidden" | "prepareUnique", v)
                    if crate::util::is_number(v) =>
                {
                    Bson::Boolean(crate::util::as_f64(v) != Some(0.0))
                }
                _ => v.clone(),
            };
            if matches!(k.as_str(), "unique" | "sparse" | "hidden" | "prepareUnique")
                && v == Bson::Boolean(false)
            {
                continue;
            }
            out.insert(k.clone(), v);
        }
    }
    let out = crate::storage::index::complete_special(out)?;
    if out.get_str("name").ok() == Some("_id_")
        && out.get_document("key").ok() != Some(&doc! {"_id": 1})
    {
        return Err(CommandError::bad_value(
            "The index name '_id_' is reserved for the _id index",
        ));
    }
    Ok(out)
}

fn options_of(spec: &Document) -> Document {
    let mut d = spec.clone();
    d.remove("v");
    d.remove("name");
    d.remove("key");
    d
}

pub fn create_indexes(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[
        "indexes",
        "commitQuorum",
        "ignoreUnknownIndexOptions",
        "isTimeseriesNamespace",
        "collectionUUID",
    ])?;
    let coll = ctx.collection_arg()?;
    check_collection_uuid(ctx, &ctx.db, &coll)?;
    let specs = match ctx.body.get("indexes") {
        Some(Bson::Array(a)) if !a.is_empty() => a.clone(),
        Some(Bson::Array(_)) => {
            return Err(CommandError::bad_value(
                "Must specify at least one index to create",
            ));
        }
        None => return Err(CommandError::missing_field("createIndexes", "indexes")),
        Some(_) => return Err(CommandError::type_mismatch("indexes must be an array")),
    };
    let specs = specs
        .iter()
        .map(|s| match s {
            Bson::Document(d) => validate_index_spec(d),
            _ => Err(CommandError::type_mismatch(
                "index specifications must be objects",
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    support::refuse_view(ctx, &coll)?;
    if let Some(txn) = &ctx.txn {
        return create_indexes_in_transaction(ctx, txn, &coll, specs);
    }
    let (collection, created) = ctx.server.catalog.collection_for_write(&ctx.db, &coll)?;
    let mut data = collection.data.write();
    add_indexes(&mut data, specs, created)
}

/// `createIndexes` inside a transaction, as the server's `runCreateIndexesWithCoordinator`:
/// only on a collection the transaction creates (implicitly here if missing) while it is
/// still empty; on an existing collection only when every index exists already.
fn create_indexes_in_transaction(
    ctx: &Ctx<'_>,
    txn: &Arc<parking_lot::Mutex<crate::transaction::Txn>>,
    coll: &str,
    specs: Vec<Document>,
) -> Result<Reply> {
    let ns = ctx.ns(coll);
    if coll.starts_with("system.") {
        return Err(not_in_transaction(format!(
            "Cannot write to system collection {ns} within a transaction."
        )));
    }
    let mut txn = txn.lock();
    if !txn.created(&ctx.db, coll) {
        if let Some(live) = ctx.server.catalog.collection(&ctx.db, coll) {
            // Tried on a copy that records nothing: only the "all exist" answer is kept.
            let mut data = live.data.read().transaction_copy();
            let reply = add_indexes(&mut data, specs, false)?;
            if matches!(&reply, Reply::Doc(d) if d.contains_key("note")) {
                return Ok(reply);
            }
            return Err(not_in_transaction(format!(
                "Cannot create new indexes on existing collection {ns} in a multi-document transaction."
            )));
        }
        crate::storage::catalog::validate_collection_name(&ctx.db, coll)?;
        if specs.iter().any(|s| s.contains_key("clustered")) {
            return Err(CommandError::new(
                6100900,
                "Cannot implicitly create a new collection with createIndex 'clustered' option",
            ));
        }
        txn.create_collection(&ctx.db, coll, Document::new());
        let data = txn
            .collection(ctx.server, &ctx.db, coll, true)
            .expect("just created");
        return add_indexes(&mut data.lock(), specs, true);
    }
    let data = txn
        .collection(ctx.server, &ctx.db, coll, true)
        .expect("created in the transaction");
    let mut data = data.lock();
    if data.count() > 0 {
        return Err(not_in_transaction(format!(
            "Cannot create new indexes on non-empty collection {ns} in a multi-document transaction."
        )));
    }
    // The server answers `createdCollectionAutomatically: true` here too.
    add_indexes(&mut data, specs, true)
}

/// Builds the indexes of `specs` that `data` lacks (conflicts refused as the server refuses
/// them); the reply of `createIndexes`.
fn add_indexes(data: &mut CollectionData, specs: Vec<Document>, created: bool) -> Result<Reply> {
    let before = 1 + data.indexes.len() as i32;
    let mut to_build = Vec::new();
    for spec in specs {
        let name = spec.get_str("name").unwrap_or("").to_string();
        let key = spec.get_document("key").cloned().unwrap_or_default();
        if key == doc! {"_id": 1} && (name == "_id_" || options_of(&spec).is_empty()) {
            if !options_of(&spec).is_empty() && options_of(&spec) != doc! {"unique": true} {
                return Err(CommandError::new(
                    codes::INDEX_OPTIONS_CONFLICT,
                    format!("Index with name: {name} already exists with different options"),
                ));
            }
            continue;
        }
        if let Some(existing) = data
            .indexes
            .iter()
            .chain(to_build.iter())
            .find(|i: &&Index| i.name() == name)
        {
            if existing.key() != &key {
                return Err(CommandError::new(
                    codes::INDEX_KEY_SPECS_CONFLICT,
                    format!(
                        "An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: {}, existing index: {}",
                        crate::util::shell_repr(&Bson::Document(spec.clone())),
                        crate::util::shell_repr(&Bson::Document(existing.spec.clone()))
                    ),
                ));
            }
            if options_of(&existing.spec) != options_of(&spec) {
                return Err(CommandError::new(
                    codes::INDEX_OPTIONS_CONFLICT,
                    format!(
                        "An equivalent index already exists with the same name but different options. Requested index: {}, existing index: {}",
                        crate::util::shell_repr(&Bson::Document(spec.clone())),
                        crate::util::shell_repr(&Bson::Document(existing.spec.clone()))
                    ),
                ));
            }
            continue;
        }
        if let Some(existing) = data
            .indexes
            .iter()
            .chain(to_build.iter())
            .find(|i: &&Index| {
                i.key() == &key
                    && i.spec.get("collation") == spec.get("collation")
                    && i.spec.get("partialFilterExpression") == spec.get("partialFilterExpression")
            })
        {
            return Err(CommandError::new(
                codes::INDEX_OPTIONS_CONFLICT,
                format!(
                    "Index already exists with a different name: {}",
                    existing.name()
                ),
            ));
        }
        let mut index = Index::new(spec)?;
        index.rebuild(&data.ns, data.decoded()?.into_iter())?;
        to_build.push(index);
    }
    let built = !to_build.is_empty();
    let specs: Vec<Document> = to_build.iter().map(|i| i.spec.clone()).collect();
    data.indexes.extend(to_build);
    let after = 1 + data.indexes.len() as i32;
    // One entry per index, as the server's commitIndexBuild events are per build.
    for spec in specs {
        data.record_ddl(EntryKind::CreateIndexes {
            indexes: vec![spec],
        });
    }
    let mut reply = doc! {"numIndexesBefore": before, "numIndexesAfter": after, "createdCollectionAutomatically": created};
    if !built {
        reply.insert("note", "all indexes already exist");
    }
    Ok(Reply::Doc(reply))
}

pub fn drop_indexes(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["index", "collectionUUID", "isTimeseriesNamespace"])?;
    let coll = ctx.collection_arg()?;
    check_collection_uuid(ctx, &ctx.db, &coll)?;
    support::refuse_view(ctx, &coll)?;
    let Some(collection) = ctx.server.catalog.collection(&ctx.db, &coll) else {
        return Err(CommandError::namespace_not_found(format!(
            "ns not found {}.{coll}",
            ctx.db
        )));
    };
    let mut data = collection.data.write();
    let was = 1 + data.indexes.len() as i32;
    let target = ctx
        .body
        .get("index")
        .cloned()
        .ok_or_else(|| CommandError::missing_field("dropIndexes", "index"))?;
    let mut names: Vec<String> = match &target {
        Bson::String(s) if s == "*" => {
            for index in std::mem::take(&mut data.indexes) {
                data.record_ddl(EntryKind::DropIndexes {
                    indexes: vec![index.spec],
                });
            }
            return Ok(Reply::Doc(
                doc! {"nIndexesWas": was, "msg": "non-_id indexes dropped for collection"},
            ));
        }
        Bson::String(s) => vec![s.clone()],
        Bson::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| CommandError::type_mismatch("index names must be strings"))
            })
            .collect::<Result<_>>()?,
        Bson::Document(key) => {
            if key == &doc! {"_id": 1} {
                return Err(CommandError::invalid_options("cannot drop _id index"));
            }
            match data.indexes.iter().find(|i| i.key() == key) {
                Some(i) => vec![i.name().to_string()],
                None => {
                    return Err(CommandError::new(
                        codes::INDEX_NOT_FOUND,
                        format!(
                            "can't find index with key: {}",
                            crate::util::shell_repr(&Bson::Document(key.clone()))
                        ),
                    ));
                }
            }
        }
        _ => {
            return Err(CommandError::type_mismatch(
                "dropIndexes 'index' must be a string, an object or an array",
            ));
        }
    };
    for name in &names {
        if name == "_id_" {
            return Err(CommandError::invalid_options("cannot drop _id index"));
        }
        if !data.indexes.iter().any(|i| i.name() == name) {
            return Err(CommandError::new(
                codes::INDEX_NOT_FOUND,
                format!("index not found with name [{name}]"),
            ));
        }
    }
    names.dedup();
    let (dropped, kept): (Vec<Index>, Vec<Index>) = std::mem::take(&mut data.indexes)
        .into_iter()
        .partition(|i| names.iter().any(|n| n == i.name()));
    data.indexes = kept;
    for index in dropped {
        data.record_ddl(EntryKind::DropIndexes {
            indexes: vec![index.spec],
        });
    }
    Ok(Reply::Doc(doc! {"nIndexesWas": was}))
}

pub fn list_indexes(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[
        "cursor",
        "includeBuildUUIDs",
        "includeIndexBuildInfo",
        "collectionUUID",
        "rawData",
    ])?;
    let coll = ctx.collection_arg()?;
    check_collection_uuid(ctx, &ctx.db, &coll)?;
    let ns = ctx.ns(&coll);
    let batch = match ctx.opt_doc("cursor")? {
        Some(c) => c
            .get("batchSize")
            .and_then(crate::util::as_f64)
            .map(|b| b as usize),
        None => None,
    };
    if super::local::is_oplog(&ctx.db, &coll) {
        // The oplog has no index, not even on `_id`.
        return Ok(super::read::cursor_over(ctx, ns, Vec::new(), batch));
    }
    let collection = match ctx.server.catalog.lookup(&ctx.db, &coll) {
        Some(Namespace::Collection(c)) => c,
        Some(Namespace::View(_)) => {
            return Err(CommandError::new(
                codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                format!("Namespace {ns} is a view, not a collection"),
            ));
        }
        None => {
            return Err(CommandError::namespace_not_found(format!(
                "ns does not exist: {ns}"
            )));
        }
    };
    let data = collection.data.read();
    let mut out = Vec::new();
    if let Ok(ci) = data.options.get_document("clusteredIndex") {
        let mut spec = ci.clone();
        spec.insert("clustered", true);
        out.push(support::encode(&spec)?);
    } else if !data.options.contains_key("timeseries") {
        out.push(support::encode(
            &doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        )?);
    }
    for i in &data.indexes {
        out.push(support::encode(&i.spec)?);
    }
    std::mem::drop(data);
    Ok(super::read::cursor_over(ctx, ns, out, batch))
}

/// The storage statistics of a collection (`collStats`, `$collStats.storageStats`).
pub fn storage_stats(ctx: &Ctx<'_>, coll: &str) -> Result<Document> {
    let ns = ctx.ns(coll);
    if ns == "local.oplog.rs" {
        // The oplog is no catalog collection here; its figures are what tools read to size
        // the oplog window (`size`, `maxSize`, `count`).
        let (size, max) = ctx.server.oplog.usage();
        // Documents as `find` shows them (a transaction's operations are one `applyOps`).
        let count = super::local::count(ctx, &Document::new(), 0, None)? as i64;
        let size = size as i64;
        return Ok(doc! {
            "size": size,
            "count": count,
            "avgObjSize": if count > 0 { size / count } else { 0 },
            "storageSize": size.max(4096),
            "freeStorageSize": 0i64,
            "capped": true,
            "max": 0i64,
            "maxSize": max as i64,
            "nindexes": 0,
            "indexDetails": {},
            "indexBuilds": [],
            "totalIndexSize": 0i64,
            "totalSize": size.max(4096),
            "indexSizes": {},
        });
    }
    let Some(c) = ctx.server.catalog.collection(&ctx.db, coll) else {
        return Err(CommandError::namespace_not_found(format!(
            "Unable to retrieve storageStats in $collStats stage :: caused by :: Collection [{ns}] not found."
        )));
    };
    let data = c.data.read();
    let count = data.count() as i64;
    let size = data.data_size() as i64;
    let mut index_sizes = doc! {"_id_": 4096i64 + count * 16};
    for i in &data.indexes {
        index_sizes.insert(i.name(), 4096i64 + count * 16);
    }
    let total_index: i64 = index_sizes
        .values()
        .filter_map(crate::storage::collection::as_i64)
        .sum();
    let mut stats = doc! {
        "size": size,
        "count": count,
        "avgObjSize": if count > 0 { size / count } else { 0 },
        "numOrphanDocs": 0i64,
        "storageSize": size.max(4096),
        "freeStorageSize": 0i64,
        "capped": data.is_capped(),
        "nindexes": 1 + data.indexes.len() as i32,
        "indexDetails": {},
        "indexBuilds": [],
        "totalIndexSize": total_index,
        "totalSize": size.max(4096) + total_index,
        "indexSizes": index_sizes,
    };
    if data.is_capped() {
        stats.insert(
            "max",
            data.options
                .get("max")
                .and_then(crate::storage::collection::as_i64)
                .unwrap_or(0),
        );
        stats.insert(
            "maxSize",
            data.options
                .get("size")
                .and_then(crate::storage::collection::as_i64)
                .unwrap_or(0),
        );
    }
    Ok(stats)
}

pub fn coll_stats(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let coll = ctx.collection_arg()?;
    let mut stats = doc! {"ns": ctx.ns(&coll)};
    stats.extend(storage_stats(ctx, &coll)?);
    Ok(Reply::Doc(stats))
}

pub fn data_size(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let ns = match ctx.arg() {
        Bson::String(s) => s.clone(),
        _ => {
            return Err(CommandError::type_mismatch(
                "dataSize takes a namespace string",
            ));
        }
    };
    let (db, coll) = ns
        .split_once('.')
        .filter(|(d, c)| !d.is_empty() && !c.is_empty())
        .ok_or_else(|| {
            CommandError::invalid_namespace(format!("Invalid namespace specified '{ns}'"))
        })?;
    let Some(c) = ctx.server.catalog.collection(db, coll) else {
        return Ok(Reply::Doc(
            doc! {"size": 0i64, "numObjects": 0i64, "millis": 0i64},
        ));
    };
    let data = c.data.read();
    Ok(Reply::Doc(
        doc! {"size": data.data_size() as i64, "numObjects": data.count() as i64, "millis": 0i64},
    ))
}
