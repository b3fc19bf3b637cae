//! `listCollections`.

use bson::{Bson, Document, doc};

use super::super::support;
use super::super::{Ctx, Reply};
use crate::error::Result;
use crate::query::matcher::Matcher;

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
    // `list_collections.idl`: `nameOnly` and `authorizedCollections` are IDL `bool`s,
    // `includePendingDrops` a `safeBool`.
    let name_only = ctx.opt_idl_bool("nameOnly")?.unwrap_or(false);
    // As the server: with it, only the collections and views the user may act on (the
    // privilege check lets `nameOnly: true` run without `listCollections`; the filter applies
    // whenever it is set).
    let authorized_only = ctx.opt_idl_bool("authorizedCollections")?.unwrap_or(false);
    ctx.opt_safe_bool("includePendingDrops")?;
    let batch = ctx.simple_cursor_batch_size()?;
    let db = ctx.server.catalog.database(&ctx.db).unwrap_or_default();
    let mut entries: Vec<Document> = Vec::new();
    for (name, c) in &db.collections {
        entries.push(collection_entry(name, c));
    }
    if ctx.db == "local" && !db.collections.contains_key("oplog.rs") {
        entries.push(super::super::local::oplog_collection_entry(ctx));
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
        if !matcher.matches(&e)
            || (authorized_only
                && !super::super::security::any_action_on_collection(
                    ctx,
                    &ctx.db,
                    e.get_str("name").unwrap_or(""),
                ))
        {
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
    Ok(super::super::read::cursor_over(ctx, ns, out, batch))
}
