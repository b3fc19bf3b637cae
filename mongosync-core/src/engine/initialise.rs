//! Step 2 of the data's way: read the source's catalog, then create every destination
//! collection with its options and (per `buildIndexes`) its indexes, with mongosync's
//! temporary changes: unique built non-unique, TTL disabled, hidden made visible, capped
//! enlarged. The originals are persisted and restored at commit.

use bson::{Bson, Document, doc};
use futures::TryStreamExt;

use super::Engine;
use super::connect::Cluster;
use crate::error::{Error, Result};
use crate::namespace::{METADATA_DATABASE, Namespace, Scope};
use crate::options::{BuildIndexes, is_system_database};

/// `expireAfterSeconds` while syncing: no destination-side expiry (deletes arrive as events).
pub(crate) const TTL_DISABLED: i32 = i32::MAX;
/// A capped collection's size while syncing: 1 PB, so nothing is evicted early.
pub(crate) const CAPPED_SIZE_WHILE_SYNCING: i64 = 1 << 50;

/// One source collection or view, as `listCollections` and `listIndexes` describe it.
#[derive(Debug, Clone)]
pub(crate) struct CollSpec {
    pub ns: Namespace,
    /// `collection`, `view` or `timeseries`.
    pub kind: String,
    pub options: Document,
    pub indexes: Vec<Document>,
}

impl CollSpec {
    pub fn is_view(&self) -> bool {
        self.kind == "view"
    }
    pub fn is_capped(&self) -> bool {
        self.options.get_bool("capped").unwrap_or(false)
    }

    pub fn to_metadata(&self) -> Document {
        doc! {
            "_id": self.ns.to_string(),
            "db": &self.ns.db,
            "coll": &self.ns.coll,
            "type": &self.kind,
            "options": self.options.clone(),
            "indexes": self.indexes.clone(),
        }
    }

    pub fn from_metadata(d: &Document) -> Option<CollSpec> {
        Some(CollSpec {
            ns: Namespace::new(d.get_str("db").ok()?, d.get_str("coll").ok()?),
            kind: d.get_str("type").ok()?.to_string(),
            options: d.get_document("options").cloned().unwrap_or_default(),
            indexes: d
                .get_array("indexes")
                .map(|a| a.iter().filter_map(|b| b.as_document().cloned()).collect())
                .unwrap_or_default(),
        })
    }
}

fn step_err(step: &str, cluster: &Cluster, e: mongodb::error::Error) -> Error {
    Error::step(step, cluster.name.as_str(), e)
}

/// Every collection and view in scope on `cluster`, with its indexes.
pub(crate) async fn catalog(cluster: &Cluster, scope: &Scope) -> Result<Vec<CollSpec>> {
    let dbs = cluster
        .client
        .list_database_names()
        .await
        .map_err(|e| step_err("listing databases", cluster, e))?;
    let mut out = vec![];
    for db in dbs {
        if !scope.may_include_database(&db) {
            continue;
        }
        let database = cluster.client.database(&db);
        let mut cursor = database
            .run_cursor_command(doc! {"listCollections": 1})
            .await
            .map_err(|e| step_err("listing collections", cluster, e))?;
        while let Some(info) = cursor
            .try_next()
            .await
            .map_err(|e| step_err("listing collections", cluster, e))?
        {
            let name = info.get_str("name").unwrap_or_default().to_string();
            let ns = Namespace::new(&db, &name);
            if !scope.includes(&ns) {
                continue;
            }
            let kind = info.get_str("type").unwrap_or("collection").to_string();
            let options = info.get_document("options").cloned().unwrap_or_default();
            let indexes = if kind == "collection" {
                list_indexes(cluster, &ns).await?
            } else {
                vec![]
            };
            out.push(CollSpec {
                ns,
                kind,
                options,
                indexes,
            });
        }
    }
    Ok(out)
}

pub(crate) async fn list_indexes(cluster: &Cluster, ns: &Namespace) -> Result<Vec<Document>> {
    // The raw command, not the driver's `IndexModel`: every option must survive the trip.
    let mut cursor = match cluster
        .client
        .database(&ns.db)
        .run_cursor_command(doc! {"listIndexes": &ns.coll})
        .await
    {
        Ok(c) => c,
        Err(e) if crate::error::server_code(&e) == Some(26) => return Ok(vec![]),
        Err(e) => return Err(step_err("listing indexes", cluster, e)),
    };
    let mut specs = vec![];
    while let Some(spec) = cursor
        .try_next()
        .await
        .map_err(|e| step_err("listing indexes", cluster, e))?
    {
        specs.push(clean_index(spec));
    }
    Ok(specs)
}

/// Drops the fields a server adds (`v`, `ns`, `background`) so the spec can be re-created.
fn clean_index(mut spec: Document) -> Document {
    for f in ["v", "ns", "background"] {
        spec.remove(f);
    }
    spec
}

/// Refuses what cannot be migrated, before anything is written.
pub(crate) fn check_supported(specs: &[CollSpec]) -> Result<()> {
    for s in specs {
        if s.kind == "timeseries" || s.options.contains_key("timeseries") {
            return Err(Error::Unsupported {
                what: format!("the time-series collection `{}`", s.ns),
                reason: "mongosync does not migrate time-series collections; exclude it with `excludeNamespaces`".into(),
            });
        }
        if s.options.contains_key("clusteredIndex") && s.options.contains_key("expireAfterSeconds")
        {
            return Err(Error::Unsupported {
                what: format!("the clustered collection `{}` with `expireAfterSeconds`", s.ns),
                reason: "mongosync does not migrate clustered collections that expire documents; exclude it with `excludeNamespaces`".into(),
            });
        }
    }
    Ok(())
}

/// The destination must hold no user data, unless `preExistingDestinationData` allows it (then
/// only the namespaces in scope must be absent).
pub(crate) async fn check_destination(
    engine: &Engine,
    scope: &Scope,
    pre_existing: bool,
) -> Result<()> {
    let dest = engine.destination();
    let dbs = dest
        .client
        .list_database_names()
        .await
        .map_err(|e| step_err("listing databases", dest, e))?;
    let mut found = vec![];
    for db in dbs {
        if is_system_database(&db) || db == METADATA_DATABASE {
            continue;
        }
        let names = dest
            .client
            .database(&db)
            .list_collection_names()
            .await
            .map_err(|e| step_err("listing collections", dest, e))?;
        for name in names {
            let ns = Namespace::new(&db, &name);
            if name.starts_with("system.") {
                continue;
            }
            if !pre_existing || scope.includes(&ns) {
                found.push(ns.to_string());
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    found.truncate(10);
    Err(Error::DestinationNotEmpty { namespaces: found })
}

/// The options a destination collection is created with while syncing.
pub(crate) fn options_while_syncing(spec: &CollSpec) -> Document {
    let mut options = spec.options.clone();
    if spec.is_capped() {
        options.insert("size", CAPPED_SIZE_WHILE_SYNCING);
        options.remove("max");
    }
    options
}

/// An index spec as it is built while syncing.
pub(crate) fn index_while_syncing(spec: &Document) -> Document {
    let mut s = spec.clone();
    s.remove("unique");
    s.remove("prepareUnique");
    s.remove("hidden");
    if s.contains_key("expireAfterSeconds") {
        s.insert("expireAfterSeconds", TTL_DISABLED);
    }
    s
}

/// Whether an index is built under `buildIndexes`.
pub(crate) fn builds(build: BuildIndexes, spec: &Document) -> bool {
    if spec.get_str("name").ok() == Some("_id_") || build == BuildIndexes::Never {
        return false;
    }
    let hashed = spec
        .get_document("key")
        .map(|k| k.values().any(|v| v.as_str() == Some("hashed")))
        .unwrap_or(false);
    !(hashed && build.skips_hashed())
}

/// Creates one collection or view (idempotent: an existing one is kept).
pub(crate) async fn create_collection(dest: &Cluster, spec: &CollSpec) -> Result<()> {
    let mut cmd = doc! {"create": &spec.ns.coll};
    cmd.extend(options_while_syncing(spec));
    match dest.client.database(&spec.ns.db).run_command(cmd).await {
        Ok(_) => Ok(()),
        Err(e) if crate::error::server_code(&e) == Some(48) => Ok(()),
        Err(e) => Err(step_err(
            &format!("creating `{}` on the destination", spec.ns),
            dest,
            e,
        )),
    }
}

/// Creates indexes with the temporary changes (idempotent).
pub(crate) async fn create_indexes(
    dest: &Cluster,
    ns: &Namespace,
    specs: &[Document],
    build: BuildIndexes,
) -> Result<()> {
    let indexes: Vec<Bson> = specs
        .iter()
        .filter(|s| builds(build, s))
        .map(|s| Bson::Document(index_while_syncing(s)))
        .collect();
    if indexes.is_empty() {
        return Ok(());
    }
    dest.client
        .database(&ns.db)
        .run_command(doc! {"createIndexes": &ns.coll, "indexes": indexes})
        .await
        .map_err(|e| step_err(&format!("building the indexes of `{ns}`"), dest, e))?;
    Ok(())
}

/// Creates every destination collection (views last, after the collections they read), saving
/// each one's original specification first so that commit can restore it.
pub(crate) async fn create_destination(engine: &Engine, specs: &[CollSpec]) -> Result<()> {
    let dest = engine.destination();
    let meta = engine.metadata();
    let build = engine
        .start_options()
        .map(|o| o.build_indexes)
        .unwrap_or_default();
    let (views, colls): (Vec<&CollSpec>, Vec<&CollSpec>) = specs.iter().partition(|s| s.is_view());
    for spec in colls.into_iter().chain(views) {
        meta.save_collection(&spec.ns, spec.to_metadata()).await?;
        create_collection(dest, spec).await?;
        if !spec.is_view() && build.before_copy() {
            create_indexes(dest, &spec.ns, &spec.indexes, build).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_index_changes() {
        let spec = doc! {"key": {"a": 1}, "name": "a_1", "unique": true, "hidden": true, "expireAfterSeconds": 60};
        let s = index_while_syncing(&spec);
        assert!(!s.contains_key("unique"));
        assert!(!s.contains_key("hidden"));
        assert_eq!(s.get_i32("expireAfterSeconds").ok(), Some(TTL_DISABLED));
    }

    #[test]
    fn build_indexes_modes() {
        let hashed = doc! {"key": {"a": "hashed"}, "name": "a_hashed"};
        let plain = doc! {"key": {"a": 1}, "name": "a_1"};
        let id = doc! {"key": {"_id": 1}, "name": "_id_"};
        assert!(builds(BuildIndexes::AfterDataCopy, &hashed));
        assert!(!builds(BuildIndexes::ExcludeHashed, &hashed));
        assert!(builds(BuildIndexes::ExcludeHashed, &plain));
        assert!(!builds(BuildIndexes::Never, &plain));
        assert!(!builds(BuildIndexes::BeforeDataCopy, &id));
    }
}
