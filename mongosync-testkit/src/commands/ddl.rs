//! Collection and index commands: `create`, `drop`, `dropDatabase`, `renameCollection`,
//! `collMod`, `listCollections`, `createIndexes`, `dropIndexes`, `listIndexes`, and the size
//! figures (`collStats`, `dataSize`).

use bson::{Bson, Document, doc};

use super::support;
use super::{Ctx, Reply};
use crate::error::{CommandError, Result, codes};
use crate::oplog::EntryKind;
use crate::query::matcher::Matcher;
use crate::storage::catalog::Namespace;
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

pub fn create(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(CREATE_FIELDS)?;
    let coll = ctx.collection_arg()?;
    let body = ctx.body.clone();
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
        crate::query::pipeline::Pipeline::parse(&pipeline, &Document::new())?;
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
            Some(s) if s > 0.0 => {}
            Some(_) => return Err(CommandError::bad_value("size must be greater than 0")),
            None => {
                return Err(CommandError::invalid_options(
                    "the 'size' field is required when 'capped' is true",
                ));
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
    support::refuse_view(ctx, &coll).map_err(|_| {
        CommandError::new(
            codes::NAMESPACE_EXISTS,
            format!("Collection {}.{coll} already exists.", ctx.db),
        )
    })?;
    ctx.server
        .catalog
        .create_collection(&ctx.db, &coll, options)?;
    Ok(Reply::Doc(Document::new()))
}

pub fn drop(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["collectionUUID"])?;
    let coll = ctx.collection_arg()?;
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
    ctx.server.catalog.drop_database(&ctx.db);
    Ok(Reply::Doc(Document::new()))
}

fn split_ns(ns: &str) -> Result<(&str, &str)> {
    ns.split_once('.')
        .filter(|(d, c)| !d.is_empty() && !c.is_empty())
        .ok_or_else(|| {
            CommandError::invalid_namespace(format!("Invalid namespace specified '{ns}'"))
        })
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
    let from = split_ns(&from)?;
    let to = split_ns(&to)?;
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
            if let Ok(v) = body.get_str("viewOn") {
                view.view_on = v.to_string();
            }
            if let Ok(p) = body.get_array("pipeline") {
                view.pipeline = p.iter().filter_map(|s| s.as_document().cloned()).collect();
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
            let mut data = c.data.write();
            let mut state_before = doc! {"collectionOptions": data.options.clone()};
            let mut reply = Document::new();
            if let Some(index) = body.get("index") {
                let Bson::Document(index) = index else {
                    return Err(CommandError::type_mismatch("'index' must be an object"));
                };
                let (r, old) = modify_index(&mut data, index)?;
                reply = r;
                state_before.insert("indexOptions", old);
            }
            for (k, v) in changes {
                data.options.insert(k, v);
            }
            if let Some(size) = body.get("cappedSize") {
                if !data.is_capped() {
                    return Err(CommandError::invalid_options(
                        "Collection is not capped: cappedSize",
                    ));
                }
                data.options.insert("size", size.clone());
            }
            if let Some(max) = body.get("cappedMax") {
                if !data.is_capped() {
                    return Err(CommandError::invalid_options(
                        "Collection is not capped: cappedMax",
                    ));
                }
                data.options.insert("max", max.clone());
            }
            if let Some(e) = body.get("expireAfterSeconds") {
                data.options.insert("expireAfterSeconds", e.clone());
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

/// Changes an index's options; returns the reply fields and the options it had.
fn modify_index(
    data: &mut crate::storage::CollectionData,
    index: &Document,
) -> Result<(Document, Document)> {
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
        let Bson::Boolean(hidden) = hidden else {
            return Err(CommandError::type_mismatch("'hidden' must be a boolean"));
        };
        let old = spec.get_bool("hidden").unwrap_or(false);
        reply.insert("hidden_old", old);
        reply.insert("hidden_new", *hidden);
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
        reply.insert(
            "expireAfterSeconds_old",
            spec.get("expireAfterSeconds")
                .cloned()
                .unwrap_or(Bson::Null),
        );
        reply.insert("expireAfterSeconds_new", expire.clone());
        spec.insert("expireAfterSeconds", expire.clone());
    }
    if let Some(prepare) = index.get("prepareUnique") {
        let Bson::Boolean(prepare) = prepare else {
            return Err(CommandError::type_mismatch(
                "'prepareUnique' must be a boolean",
            ));
        };
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
            if !spec.get_bool("prepareUnique").unwrap_or(false) {
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
    if spec.get_bool("unique").unwrap_or(false) && spec.get_bool("prepareUnique").unwrap_or(false) {
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
    let (collection, created) = ctx.server.catalog.collection_for_write(&ctx.db, &coll)?;
    let mut data = collection.data.write();
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
    let ns = ctx.ns(&coll);
    let batch = match ctx.opt_doc("cursor")? {
        Some(c) => c
            .get("batchSize")
            .and_then(crate::util::as_f64)
            .map(|b| b as usize),
        None => None,
    };
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
        let count = ctx.server.oplog.len() as i64;
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
    let (db, coll) = split_ns(&ns)?;
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
