//! `createIndexes` (outside and inside transactions), `dropIndexes`, `listIndexes`.

use std::sync::Arc;

use bson::{Bson, Document, doc};

use super::super::support;
use super::super::{Ctx, Reply};
use super::{check_collection_uuid, not_in_transaction};
use crate::error::{CommandError, Result, codes};
use crate::oplog::EntryKind;
use crate::query::matcher::Matcher;
use crate::storage::Index;
use crate::storage::catalog::Namespace;
use crate::storage::collection::CollectionData;

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

pub(super) fn options_of(spec: &Document) -> Document {
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
        // `create_indexes.idl`: `indexes` is an `array<object>`.
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "createIndexes",
                "indexes",
                crate::util::type_name(other),
                &["array"],
            ));
        }
    };
    let specs = specs
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Bson::Document(d) => validate_index_spec(d),
            other => Err(CommandError::wrong_field_type(
                "createIndexes.indexes",
                &i.to_string(),
                crate::util::type_name(other),
                &["object"],
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
    // `drop_indexes.idl`: `index` is required, a variant of string, array<string> and object,
    // parsed before the collection is looked up.
    let target = ctx
        .body
        .get("index")
        .cloned()
        .ok_or_else(|| CommandError::missing_field("dropIndexes", "index"))?;
    match &target {
        Bson::String(_) | Bson::Document(_) => {}
        Bson::Array(names) => {
            if let Some((i, other)) = names
                .iter()
                .enumerate()
                .find(|(_, v)| !matches!(v, Bson::String(_)))
            {
                return Err(CommandError::wrong_field_type(
                    "dropIndexes.index",
                    &i.to_string(),
                    crate::util::type_name(other),
                    &["string"],
                ));
            }
        }
        // The IDL generator's variant parser (`_gen_variant_deserializer`, 8.x) lists only
        // the element types of the variant's array alternatives in this message.
        other => {
            return Err(CommandError::type_mismatch(format!(
                "BSON field 'dropIndexes.index' is the wrong type '{}', expected types '[string]'",
                crate::util::type_name(other)
            )));
        }
    }
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
        _ => unreachable!("the type of `index` was checked above"),
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
    // `list_indexes.idl`: a `SimpleCursorOptions` cursor, `safeBool` flags.
    let batch = ctx.simple_cursor_batch_size()?;
    ctx.opt_safe_bool("includeBuildUUIDs")?;
    ctx.opt_safe_bool("includeIndexBuildInfo")?;
    check_collection_uuid(ctx, &ctx.db, &coll)?;
    let ns = ctx.ns(&coll);
    if super::super::local::is_oplog(&ctx.db, &coll) {
        // The oplog has no index, not even on `_id`.
        return Ok(super::super::read::cursor_over(ctx, ns, Vec::new(), batch));
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
    Ok(super::super::read::cursor_over(ctx, ns, out, batch))
}
