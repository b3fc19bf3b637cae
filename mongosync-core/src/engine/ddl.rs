//! DDL events during change application. Each is a barrier (see [`super::apply`]) and keeps
//! the persisted collection specifications current, so commit restores what the source has.

use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf, doc};
use futures::TryStreamExt;

use super::Engine;
use super::initialise::{
    CollSpec, builds, check_supported, create_collection, create_indexes, index_while_syncing,
    list_indexes,
};
use crate::error::{Error, Result, server_code};
use crate::namespace::{Namespace, Scope};
use crate::options::BuildIndexes;

pub(crate) async fn apply(engine: &Arc<Engine>, scope: &Scope, ev: &Document) -> Result<()> {
    let op = ev.get_str("operationType").unwrap_or_default();
    let Some(ns) = ev
        .get_document("ns")
        .ok()
        .and_then(Namespace::from_document)
    else {
        return Ok(());
    };
    let desc = ev
        .get_document("operationDescription")
        .cloned()
        .unwrap_or_default();
    let dest = engine.destination();
    let meta = engine.metadata();
    let step = |what: &str| format!("applying `{op}` of `{ns}` ({what})");
    let fail =
        |what: &str, e: mongodb::error::Error| Error::step(step(what), dest.name.as_str(), e);
    match op {
        "create" if scope.includes(&ns) => {
            let mut options = desc.clone();
            options.remove("idIndex");
            let kind = ev.get_str("nsType").map(String::from).unwrap_or_else(|_| {
                if options.contains_key("viewOn") {
                    "view".into()
                } else {
                    "collection".into()
                }
            });
            let spec = CollSpec {
                ns: ns.clone(),
                kind,
                options,
                indexes: vec![],
            };
            check_supported(std::slice::from_ref(&spec))?;
            meta.save_collection(&ns, spec.to_metadata()).await?;
            create_collection(dest, &spec).await?;
        }
        "drop" if scope.includes(&ns) => {
            drop_collection(engine, &ns).await?;
        }
        "dropDatabase" => {
            let names = dest
                .client
                .database(&ns.db)
                .list_collection_names()
                .await
                .map_err(|e| fail("listing collections", e))?;
            for name in names {
                let target = Namespace::new(&ns.db, name);
                if scope.includes(&target) {
                    drop_collection(engine, &target).await?;
                }
            }
        }
        "rename" => {
            let to = ev
                .get_document("to")
                .ok()
                .and_then(Namespace::from_document)
                .ok_or_else(|| Error::decode("a rename event", "it has no target"))?;
            match (scope.includes(&ns), scope.includes(&to)) {
                (true, true) => {
                    // The destination's `ns` may hold a truncated copy (the copy read the
                    // source after the rename) and its `to` may hold a copy of the
                    // post-rename state, or of a later collection of that name. So the rename
                    // is applied as: the old name goes, the new name is read again from the
                    // source whole (its current state is newer than this event, and later
                    // events replay over it, as a refetch does for a document).
                    drop_collection(engine, &ns).await?;
                    resync(engine, &to).await?;
                }
                (true, false) => drop_collection(engine, &ns).await?,
                // A server renames across databases by copying into a temporary collection of
                // the target database, renaming that onto the target, then dropping the
                // source (a `drop` event of its own): the target is read from the source.
                (false, true) if is_cross_database_temporary(&ns) => {
                    resync(engine, &to).await?;
                }
                (false, true) => {
                    return Err(Error::Unsupported {
                        what: format!("renaming `{ns}` (outside the namespace filter) to `{to}` (inside it)"),
                        reason: "a collection renamed into the filter would need a copy of its documents; widen the filter to include the source name, or restart the sync".into(),
                    });
                }
                (false, false) => {}
            }
        }
        "createIndexes" if scope.includes(&ns) => {
            let build = engine
                .start_options()
                .map(|o| o.build_indexes)
                .unwrap_or_default();
            let specs: Vec<Document> = desc
                .get_array("indexes")
                .map(|a| a.iter().filter_map(|b| b.as_document().cloned()).collect())
                .unwrap_or_default();
            let specs: Vec<Document> = specs
                .into_iter()
                .map(|mut s| {
                    s.remove("v");
                    s
                })
                .collect();
            if let Some(mut spec) = spec_of(engine, &ns).await? {
                for s in &specs {
                    spec.indexes
                        .retain(|i| i.get_str("name").ok() != s.get_str("name").ok());
                    spec.indexes.push(s.clone());
                }
                meta.save_collection(&ns, spec.to_metadata()).await?;
            }
            for s in specs.iter().filter(|s| builds(build, s)) {
                create_index_replacing(engine, &ns, s, build).await?;
            }
        }
        "dropIndexes" if scope.includes(&ns) => {
            let names: Vec<String> = desc
                .get_array("indexes")
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.as_document()?.get_str("name").ok().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for name in &names {
                match dest
                    .client
                    .database(&ns.db)
                    .run_command(doc! {"dropIndexes": &ns.coll, "index": name})
                    .await
                {
                    Ok(_) => {}
                    Err(e) if matches!(server_code(&e), Some(27) | Some(26)) => {}
                    Err(e) => return Err(fail("dropping an index", e)),
                }
            }
            if let Some(mut spec) = spec_of(engine, &ns).await? {
                spec.indexes.retain(|i| {
                    !names
                        .iter()
                        .any(|n| i.get_str("name").ok() == Some(n.as_str()))
                });
                meta.save_collection(&ns, spec.to_metadata()).await?;
            }
        }
        "modify" if scope.includes(&ns) => modify(engine, &ns, &desc).await?,
        "shardCollection" | "reshardCollection" | "refineCollectionShardKey" => {
            return Err(Error::Unsupported {
                what: format!("`{op}` on `{ns}` during the sync"),
                reason: "mongosync does not support sharding changes while it runs; restart the sync after the change".into(),
            });
        }
        _ => {}
    }
    Ok(())
}

/// `<db>.tmpXXXXX.renameCollection`, the server's temporary collection of a rename across
/// databases.
fn is_cross_database_temporary(ns: &Namespace) -> bool {
    ns.coll.starts_with("tmp") && ns.coll.ends_with(".renameCollection")
}

/// The persisted specification of one collection.
pub(crate) async fn spec_of(engine: &Engine, ns: &Namespace) -> Result<Option<CollSpec>> {
    Ok(engine
        .metadata()
        .collections()
        .await?
        .iter()
        .filter_map(CollSpec::from_metadata)
        .find(|s| &s.ns == ns))
}

async fn drop_collection(engine: &Engine, ns: &Namespace) -> Result<()> {
    let dest = engine.destination();
    dest.client
        .database(&ns.db)
        .collection::<Document>(&ns.coll)
        .drop()
        .await
        .map_err(|e| Error::step(format!("dropping `{ns}`"), dest.name.as_str(), e))?;
    engine.metadata().delete_collection(ns).await?;
    engine.metadata().delete_partitions(ns).await
}

/// `collMod`: index options that are temporarily changed while syncing (unique, hidden, TTL)
/// are only recorded, to be restored at commit; the rest is applied now.
async fn modify(engine: &Engine, ns: &Namespace, desc: &Document) -> Result<()> {
    let dest = engine.destination();
    let Some(mut spec) = spec_of(engine, ns).await? else {
        return Ok(());
    };
    let mut now = Document::new();
    for (k, v) in desc {
        match k.as_str() {
            "index" => {
                let Some(change) = v.as_document() else {
                    continue;
                };
                let name = change.get_str("name").ok();
                let key = change.get_document("keyPattern").ok();
                for idx in spec.indexes.iter_mut() {
                    let hit = name.is_some_and(|n| idx.get_str("name").ok() == Some(n))
                        || key.is_some_and(|k| idx.get_document("key").ok() == Some(k));
                    if !hit {
                        continue;
                    }
                    for (opt, val) in change {
                        if matches!(opt.as_str(), "name" | "keyPattern") {
                            continue;
                        }
                        match val {
                            Bson::Boolean(false) => {
                                idx.remove(opt);
                            }
                            other => {
                                idx.insert(opt.clone(), other.clone());
                            }
                        }
                    }
                }
            }
            // Capped limits stay enlarged until commit.
            "cappedSize" => {
                spec.options.insert("size", v.clone());
            }
            "cappedMax" => {
                spec.options.insert("max", v.clone());
            }
            _ => {
                spec.options.insert(k.clone(), v.clone());
                now.insert(k.clone(), v.clone());
            }
        }
    }
    // A collMod can make a collection unsupported (a clustered one given
    // `expireAfterSeconds`), as a create can.
    check_supported(std::slice::from_ref(&spec))?;
    if !now.is_empty() {
        let mut cmd = doc! {"collMod": &ns.coll};
        cmd.extend(now);
        match dest.client.database(&ns.db).run_command(cmd).await {
            Ok(_) => {}
            // Dropped on the destination by a replayed event; a later one re-creates it.
            Err(e) if server_code(&e) == Some(26) => {}
            Err(e) => {
                return Err(Error::step(
                    format!("applying `collMod` to `{ns}`"),
                    dest.name.as_str(),
                    e,
                ));
            }
        }
    }
    engine
        .metadata()
        .save_collection(ns, spec.to_metadata())
        .await
}

/// Builds one index (with the temporary changes). An index of the same name but other options
/// is one that the copy saw in a later state (dropped and re-created since): it is replaced, and
/// the later events replay over it.
async fn create_index_replacing(
    engine: &Engine,
    ns: &Namespace,
    spec: &Document,
    build: BuildIndexes,
) -> Result<()> {
    let dest = engine.destination();
    let cmd = doc! {"createIndexes": &ns.coll, "indexes": [index_while_syncing(spec)]};
    let db = dest.client.database(&ns.db);
    match db.run_command(cmd.clone()).await {
        Ok(_) => return Ok(()),
        // IndexOptionsConflict, IndexKeySpecsConflict
        Err(e) if matches!(server_code(&e), Some(85) | Some(86)) => {}
        Err(e) => {
            return Err(Error::step(
                format!("building an index of `{ns}`"),
                dest.name.as_str(),
                e,
            ));
        }
    }
    let name = spec.get_str("name").unwrap_or_default();
    let _ = db
        .run_command(doc! {"dropIndexes": &ns.coll, "index": name})
        .await;
    // The conflicting index may have another name and the same key.
    if let Ok(key) = spec.get_document("key") {
        let _ = db
            .run_command(doc! {"dropIndexes": &ns.coll, "index": key.clone()})
            .await;
    }
    create_indexes(dest, ns, std::slice::from_ref(spec), build).await
}

/// The source's current definition of one namespace, if it exists.
async fn current_spec(engine: &Engine, ns: &Namespace) -> Result<Option<CollSpec>> {
    let source = engine.source();
    let mut cursor = source
        .client
        .database(&ns.db)
        .run_cursor_command(doc! {"listCollections": 1, "filter": {"name": &ns.coll}})
        .await
        .map_err(|e| Error::step(format!("reading `{ns}`"), source.name.as_str(), e))?;
    let Some(info) = cursor
        .try_next()
        .await
        .map_err(|e| Error::step(format!("reading `{ns}`"), source.name.as_str(), e))?
    else {
        return Ok(None);
    };
    let kind = info.get_str("type").unwrap_or("collection").to_string();
    let options = info.get_document("options").cloned().unwrap_or_default();
    let indexes = if kind == "collection" {
        list_indexes(source, ns).await?
    } else {
        vec![]
    };
    Ok(Some(CollSpec {
        ns: ns.clone(),
        kind,
        options,
        indexes,
    }))
}

/// Makes the destination's `ns` what the source has now: definition, documents, indexes (with
/// the temporary changes), and the persisted specification. Absent on the source: absent here
/// too (a later event re-creates it).
async fn resync(engine: &Engine, ns: &Namespace) -> Result<()> {
    drop_collection(engine, ns).await?;
    let Some(spec) = current_spec(engine, ns).await? else {
        return Ok(());
    };
    check_supported(std::slice::from_ref(&spec))?;
    let dest = engine.destination();
    let source = engine.source();
    engine
        .metadata()
        .save_collection(ns, spec.to_metadata())
        .await?;
    create_collection(dest, &spec).await?;
    if spec.is_view() {
        return Ok(());
    }
    let step = format!("copying `{ns}` again after a rename");
    let mut cursor = source
        .client
        .database(&ns.db)
        .collection::<RawDocumentBuf>(&ns.coll)
        .find(doc! {})
        .await
        .map_err(|e| Error::step(step.clone(), source.name.as_str(), e))?;
    let target = dest
        .client
        .database(&ns.db)
        .collection::<RawDocumentBuf>(&ns.coll);
    let batch_bytes = engine.opts.copy_batch_bytes;
    let mut batch = vec![];
    let mut bytes = 0usize;
    loop {
        let next = match cursor.try_next().await {
            Ok(next) => next,
            // Dropped or renamed again while read: the change stream replays that too.
            Err(e) if server_code(&e) == Some(super::copy::QUERY_PLAN_KILLED) => {
                tracing::info!("copy of `{ns}` stopped: {e}");
                None
            }
            Err(e) => return Err(Error::step(step.clone(), source.name.as_str(), e)),
        };
        let end = next.is_none();
        if let Some(d) = next {
            bytes += d.as_bytes().len();
            batch.push(d);
        }
        if !batch.is_empty() && (end || bytes >= batch_bytes) {
            target
                .insert_many(std::mem::take(&mut batch))
                .ordered(true)
                .bypass_document_validation(true)
                .await
                .map_err(|e| Error::step(step.clone(), dest.name.as_str(), e))?;
            bytes = 0;
        }
        if end {
            break;
        }
    }
    let build = engine
        .start_options()
        .map(|o| o.build_indexes)
        .unwrap_or_default();
    create_indexes(dest, ns, &spec.indexes, build).await
}
