//! The size figures: `collStats`, `dataSize`, `$collStats.storageStats`.

use bson::{Bson, Document, doc};

use super::super::{Ctx, Reply};
use crate::error::{CommandError, Result};

/// The storage statistics of a collection (`collStats`, `$collStats.storageStats`).
pub fn storage_stats(ctx: &Ctx<'_>, coll: &str) -> Result<Document> {
    let ns = ctx.ns(coll);
    if ns == "local.oplog.rs" {
        // The oplog is no catalog collection here; its figures are what tools read to size
        // the oplog window (`size`, `maxSize`, `count`).
        let (size, max) = ctx.server.oplog.usage();
        // Documents as `find` shows them (a transaction's operations are one `applyOps`).
        let count = super::super::local::count(ctx, &Document::new(), 0, None)? as i64;
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
