//! Step 3 of the data's way: split each collection into `_id` ranges sized by bytes.
//!
//! A range is scanned with `min`/`max` on the `_id` index (with a `hint`), not with a
//! `{_id: {$gte, $lt}}` filter: a filter matches only `_id`s of the bound's BSON type bracket
//! and silently skips the others (peers.md §6.1), whereas index bounds follow the index's own
//! order across every type. The first range starts at MinKey and the last ends past MaxKey,
//! so together the ranges cover every `_id` whatever its type.

use bson::{Bson, Document, doc};
use futures::TryStreamExt;

use super::connect::Cluster;
use super::initialise::CollSpec;
use super::metadata::Partition;
use crate::error::{Error, Result};

/// Samples taken per partition wanted: more samples, more even ranges.
const OVERSAMPLE: u64 = 10;

/// The `storageStats` of `db.coll` (`$collStats`), empty when the server gives none.
pub(crate) async fn storage_stats(
    cluster: &Cluster,
    db: &str,
    coll: &str,
) -> mongodb::error::Result<Document> {
    let mut cursor = cluster
        .client
        .database(db)
        .collection::<Document>(coll)
        .aggregate([doc! {"$collStats": {"storageStats": {}}}])
        .await?;
    let stats = cursor.try_next().await?.unwrap_or_default();
    Ok(stats
        .get_document("storageStats")
        .cloned()
        .unwrap_or_default())
}

/// A numeric field of a server reply, whatever its BSON number type; 0 when absent.
pub(crate) fn number(d: &Document, field: &str) -> i64 {
    match d.get(field) {
        Some(Bson::Int32(v)) => *v as i64,
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

/// The size and count of a collection; `None` when it no longer exists (NamespaceNotFound).
pub(crate) async fn size_of(cluster: &Cluster, spec: &CollSpec) -> Result<Option<(i64, i64)>> {
    match storage_stats(cluster, &spec.ns.db, &spec.ns.coll).await {
        Ok(storage) => Ok(Some((number(&storage, "size"), number(&storage, "count")))),
        Err(e) if crate::error::server_code(&e) == Some(26) => Ok(None),
        Err(e) => Err(Error::step(
            format!("measuring `{}`", spec.ns),
            cluster.name.as_str(),
            e,
        )),
    }
}

/// The partitions of one collection: none when it vanished since the catalog was read (a
/// drop or rename while the sync initialises), since the change stream replays what
/// happened to it from the start point.
pub(crate) async fn plan(
    cluster: &Cluster,
    spec: &CollSpec,
    partition_bytes: u64,
) -> Result<Vec<Partition>> {
    let Some((size, count)) = size_of(cluster, spec).await? else {
        tracing::info!(
            "`{}` no longer exists on the source; nothing to copy",
            spec.ns
        );
        return Ok(vec![]);
    };
    let whole = |natural: bool| Partition {
        id: format!("{}#00000", spec.ns),
        ns: spec.ns.clone(),
        lower: Bson::MinKey,
        upper: Bson::MaxKey,
        natural,
        total_bytes: size,
        copied: 0,
    };
    // Capped collections keep their natural order, so they are copied as one piece;
    // clustered collections have no separate `_id` index to bound.
    if spec.is_capped() {
        return Ok(vec![whole(true)]);
    }
    if spec.options.contains_key("clusteredIndex") {
        return Ok(vec![whole(false)]);
    }
    let wanted = (size as u64).div_ceil(partition_bytes.max(1));
    if wanted <= 1 || count <= 1 {
        return Ok(vec![whole(false)]);
    }
    let samples = (wanted * OVERSAMPLE).min(count as u64) as i64;
    let coll = cluster
        .client
        .database(&spec.ns.db)
        .collection::<Document>(&spec.ns.coll);
    let ids: Vec<Bson> = coll
        .aggregate([
            doc! {"$sample": {"size": samples}},
            doc! {"$project": {"_id": 1}},
            // The server sorts in BSON order, across type brackets.
            doc! {"$sort": {"_id": 1}},
        ])
        .await
        .map_err(|e| Error::step(format!("sampling `{}`", spec.ns), cluster.name.as_str(), e))?
        .try_collect::<Vec<Document>>()
        .await
        .map_err(|e| Error::step(format!("sampling `{}`", spec.ns), cluster.name.as_str(), e))?
        .into_iter()
        .filter_map(|mut d| d.remove("_id"))
        .collect();
    let step = (ids.len() as u64 / wanted).max(1) as usize;
    let mut bounds: Vec<Bson> = vec![];
    for id in ids.into_iter().skip(step).step_by(step) {
        if bounds.last() != Some(&id) {
            bounds.push(id);
        }
    }
    let per = size / (bounds.len() as i64 + 1);
    let mut parts = vec![];
    let mut lower = Bson::MinKey;
    for (i, upper) in bounds.into_iter().chain([Bson::MaxKey]).enumerate() {
        parts.push(Partition {
            id: format!("{}#{i:05}", spec.ns),
            ns: spec.ns.clone(),
            lower: std::mem::replace(&mut lower, upper.clone()),
            upper,
            natural: false,
            total_bytes: per,
            copied: 0,
        });
    }
    Ok(parts)
}
