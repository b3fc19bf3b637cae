//! `collMod`: collection options, views and index options.

use bson::{Bson, Document, doc};

use super::super::{Ctx, Reply};
use super::check_collection_uuid;
use super::indexes::options_of;
use super::options::{
    append_number, check_expire_after_seconds, check_view_pipeline, validate_collection_options,
};
use crate::error::{CommandError, Result, codes};
use crate::oplog::EntryKind;
use crate::storage::Index;
use crate::storage::catalog::Namespace;

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
                    && !super::super::GENERIC_FIELDS.contains(&k.as_str())
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
                    crate::query::pipeline::Pipeline::parse_view(&stages)?;
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
                            || super::super::GENERIC_FIELDS.contains(&k.as_str())
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
                if !super::super::GENERIC_FIELDS.contains(&k.as_str()) && k != "dryRun" {
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
