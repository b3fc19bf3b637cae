//! `create`: collections and views, outside and inside transactions.

use bson::{Bson, Document, doc};

use super::super::support;
use super::super::{Ctx, Reply};
use super::not_in_transaction;
use super::options::{
    CREATE_FIELDS, STORED_OPTIONS, append_number, check_create_arguments, check_view_pipeline,
    validate_collection_options,
};
use crate::error::{CommandError, Result, codes};
use crate::storage::View;

pub fn create(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(CREATE_FIELDS)?;
    // Every option is an optional IDL field (`create.idl`): null or undefined is omitted.
    let nulls: Vec<String> = ctx
        .body
        .iter()
        .filter(|(k, v)| {
            CREATE_FIELDS.contains(&k.as_str()) && matches!(v, Bson::Null | Bson::Undefined)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in nulls {
        ctx.body.remove(&k);
    }
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
        crate::query::pipeline::Pipeline::parse_view(&pipeline)?;
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
