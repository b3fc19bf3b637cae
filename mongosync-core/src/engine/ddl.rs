//! DDL events during change application. Each is a barrier (see [`super::apply`]) and keeps
//! the persisted collection specifications current, so commit restores what the source has.

use std::sync::Arc;

use bson::{Bson, Document, doc};

use super::Engine;
use super::initialise::{CollSpec, builds, create_collection, create_indexes};
use crate::error::{Error, Result, server_code};
use crate::namespace::{Namespace, Scope};

fn ns_of(d: &Document) -> Option<Namespace> {
    Some(Namespace::new(
        d.get_str("db").ok()?,
        d.get_str("coll").unwrap_or_default(),
    ))
}

pub(crate) async fn apply(engine: &Arc<Engine>, scope: &Scope, ev: &Document) -> Result<()> {
    let op = ev.get_str("operationType").unwrap_or_default();
    let Some(ns) = ev.get_document("ns").ok().and_then(ns_of) else {
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
            super::initialise::check_supported(std::slice::from_ref(&spec))?;
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
                .and_then(ns_of)
                .ok_or_else(|| Error::Metadata {
                    reason: "a rename event has no target".into(),
                })?;
            match (scope.includes(&ns), scope.includes(&to)) {
                (true, true) => {
                    let drop_target = desc.contains_key("dropTarget");
                    let renamed = dest
                        .admin(doc! {
                            "renameCollection": ns.to_string(),
                            "to": to.to_string(),
                            "dropTarget": drop_target,
                        })
                        .await;
                    match renamed {
                        Ok(_) => {}
                        // Replayed after a restart: already renamed.
                        Err(e) if server_code(&e) == Some(26) => {}
                        Err(e) => return Err(fail("renaming", e)),
                    }
                    if let Some(mut spec) = spec_of(engine, &ns).await? {
                        meta.delete_collection(&ns).await?;
                        spec.ns = to.clone();
                        meta.save_collection(&to, spec.to_metadata()).await?;
                    }
                }
                (true, false) => drop_collection(engine, &ns).await?,
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
            if specs.iter().any(|s| builds(build, s)) {
                create_indexes(dest, &ns, &specs, build).await?;
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

async fn spec_of(engine: &Engine, ns: &Namespace) -> Result<Option<CollSpec>> {
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
    if !now.is_empty() {
        let mut cmd = doc! {"collMod": &ns.coll};
        cmd.extend(now);
        dest.client
            .database(&ns.db)
            .run_command(cmd)
            .await
            .map_err(|e| {
                Error::step(
                    format!("applying `collMod` to `{ns}`"),
                    dest.name.as_str(),
                    e,
                )
            })?;
    }
    engine
        .metadata()
        .save_collection(ns, spec.to_metadata())
        .await
}
