//! The catalog: databases, their collections and views. The catalog lock is held only to
//! look up, create or drop a namespace; data operations then lock the one collection.

use std::collections::BTreeMap;
use std::sync::Arc;

use bson::Document;
use parking_lot::RwLock;

use crate::error::{CommandError, Result, codes};
use crate::oplog::{EntryKind, Oplog};

use super::collection::Collection;

/// A view: a collection name and a pipeline over it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The source collection or view (same database).
    pub view_on: String,
    /// The view's pipeline.
    pub pipeline: Vec<Document>,
    /// The view's collation, if any.
    pub collation: Option<Document>,
}

/// One database.
#[derive(Debug, Default, Clone)]
pub struct Database {
    /// Collections by name.
    pub collections: BTreeMap<String, Arc<Collection>>,
    /// Views by name.
    pub views: BTreeMap<String, View>,
}

/// What a namespace currently is.
#[derive(Debug, Clone)]
pub enum Namespace {
    /// A collection.
    Collection(Arc<Collection>),
    /// A view.
    View(View),
}

/// Every database of the server.
#[derive(Debug)]
pub struct Catalog {
    dbs: RwLock<BTreeMap<String, Database>>,
    oplog: Arc<Oplog>,
}

/// The `operationDescription` of a collection's `create` event: its options and `_id` index.
pub fn create_description(options: &Document) -> Document {
    let mut d = options.clone();
    if !options.contains_key("clusteredIndex") && !options.contains_key("timeseries") {
        d.insert(
            "idIndex",
            bson::doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        );
    }
    d
}

impl Catalog {
    /// An empty catalog whose changes are recorded in `oplog`.
    pub fn new(oplog: Arc<Oplog>) -> Catalog {
        Catalog {
            dbs: RwLock::new(BTreeMap::new()),
            oplog,
        }
    }

    /// The oplog this catalog records to.
    pub fn oplog(&self) -> &Arc<Oplog> {
        &self.oplog
    }

    fn new_collection(&self, db: &str, coll: &str, options: Document) -> Arc<Collection> {
        let c = Arc::new(Collection::new(
            format!("{db}.{coll}"),
            options.clone(),
            Some(Arc::clone(&self.oplog)),
        ));
        self.oplog.append(
            format!("{db}.{coll}"),
            Some(c.uuid),
            EntryKind::Create {
                description: create_description(&options),
                view: false,
            },
            None,
        );
        c
    }

    /// Looks up `db.coll`.
    pub fn lookup(&self, db: &str, coll: &str) -> Option<Namespace> {
        let dbs = self.dbs.read();
        let d = dbs.get(db)?;
        if let Some(c) = d.collections.get(coll) {
            return Some(Namespace::Collection(Arc::clone(c)));
        }
        d.views.get(coll).cloned().map(Namespace::View)
    }

    /// The collection `db.coll`, if it is one.
    pub fn collection(&self, db: &str, coll: &str) -> Option<Arc<Collection>> {
        self.dbs.read().get(db)?.collections.get(coll).cloned()
    }

    /// The collection `db.coll`, created with default options if missing (implicit creation
    /// by a write). Fails if `db.coll` is a view.
    pub fn collection_for_write(&self, db: &str, coll: &str) -> Result<(Arc<Collection>, bool)> {
        if let Some(c) = self.collection(db, coll) {
            return Ok((c, false));
        }
        validate_collection_name(db, coll)?;
        let mut dbs = self.dbs.write();
        let d = dbs.entry(db.to_string()).or_default();
        if d.views.contains_key(coll) {
            return Err(CommandError::new(
                codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                format!("Namespace {db}.{coll} is a view, not a collection"),
            ));
        }
        if let Some(c) = d.collections.get(coll) {
            return Ok((Arc::clone(c), false));
        }
        let c = self.new_collection(db, coll, Document::new());
        d.collections.insert(coll.to_string(), Arc::clone(&c));
        Ok((c, true))
    }

    /// Creates a collection with `options`; `Ok(None)` if an identical one exists already
    /// (`create` is then a no-op, as on a real server).
    pub fn create_collection(
        &self,
        db: &str,
        coll: &str,
        options: Document,
    ) -> Result<Option<Arc<Collection>>> {
        validate_collection_name(db, coll)?;
        let mut dbs = self.dbs.write();
        let d = dbs.entry(db.to_string()).or_default();
        if let Some(existing) = d.collections.get(coll) {
            let existing = existing.data.read();
            if existing.options == options {
                return Ok(None);
            }
            // As `checkCollectionOptions` of the server's `create`.
            return Err(CommandError::new(
                codes::NAMESPACE_EXISTS,
                format!(
                    "namespace {db}.{coll} already exists, but with different options: {}",
                    crate::util::shell_repr(&bson::Bson::Document(existing.options.clone()))
                ),
            ));
        }
        if d.views.contains_key(coll) {
            return Err(namespace_exists(db, coll));
        }
        let c = self.new_collection(db, coll, options);
        d.collections.insert(coll.to_string(), Arc::clone(&c));
        Ok(Some(c))
    }

    /// Creates a view.
    pub fn create_view(&self, db: &str, name: &str, view: View) -> Result<()> {
        validate_collection_name(db, name)?;
        let mut dbs = self.dbs.write();
        let d = dbs.entry(db.to_string()).or_default();
        if d.collections.contains_key(name) {
            return Err(namespace_exists(db, name));
        }
        if let Some(existing) = d.views.get(name) {
            if *existing == view {
                return Ok(());
            }
            return Err(namespace_exists(db, name));
        }
        let description = view_description(&view);
        d.views.insert(name.to_string(), view);
        self.oplog.append(
            format!("{db}.{name}"),
            None,
            EntryKind::Create {
                description,
                view: true,
            },
            None,
        );
        Ok(())
    }

    /// Replaces a view's definition (`collMod` on a view).
    pub fn modify_view(&self, db: &str, name: &str, view: View) -> Result<()> {
        let mut dbs = self.dbs.write();
        match dbs.get_mut(db).and_then(|d| d.views.get_mut(name)) {
            Some(v) => {
                let description = view_description(&view);
                *v = view;
                self.oplog.append(
                    format!("{db}.{name}"),
                    None,
                    EntryKind::Modify {
                        description,
                        state_before: Document::new(),
                    },
                    None,
                );
                Ok(())
            }
            None => Err(CommandError::namespace_not_found(format!(
                "ns does not exist: {db}.{name}"
            ))),
        }
    }

    /// Drops `db.coll` (collection or view); returns what was dropped.
    pub fn drop_namespace(&self, db: &str, coll: &str) -> Option<Namespace> {
        let mut dbs = self.dbs.write();
        let d = dbs.get_mut(db)?;
        let dropped = if let Some(c) = d.collections.remove(coll) {
            Some(Namespace::Collection(c))
        } else {
            d.views.remove(coll).map(Namespace::View)
        };
        if d.collections.is_empty() && d.views.is_empty() {
            dbs.remove(db);
        }
        match &dropped {
            Some(Namespace::Collection(c)) => {
                self.oplog.append(
                    format!("{db}.{coll}"),
                    Some(c.uuid),
                    EntryKind::Drop { view: false },
                    None,
                );
            }
            Some(Namespace::View(_)) => {
                self.oplog.append(
                    format!("{db}.{coll}"),
                    None,
                    EntryKind::Drop { view: true },
                    None,
                );
            }
            None => {}
        }
        dropped
    }

    /// Drops a database; returns the names of the collections it held.
    pub fn drop_database(&self, db: &str) -> Vec<String> {
        let Some(dropped) = self.dbs.write().remove(db) else {
            return Vec::new();
        };
        // As on a real server: a drop for each collection and view, then the dropDatabase.
        for (name, c) in &dropped.collections {
            self.oplog.append(
                format!("{db}.{name}"),
                Some(c.uuid),
                EntryKind::Drop { view: false },
                None,
            );
        }
        for name in dropped.views.keys() {
            self.oplog.append(
                format!("{db}.{name}"),
                None,
                EntryKind::Drop { view: true },
                None,
            );
        }
        self.oplog
            .append(db.to_string(), None, EntryKind::DropDatabase, None);
        dropped.collections.into_keys().collect()
    }

    /// Renames a collection, possibly across databases; with `drop_target` an existing target
    /// is dropped first (and returned).
    pub fn rename(
        &self,
        from: (&str, &str),
        to: (&str, &str),
        drop_target: bool,
    ) -> Result<(Arc<Collection>, Option<Arc<Collection>>)> {
        validate_collection_name(to.0, to.1)?;
        let mut dbs = self.dbs.write();
        let source_is_view = dbs
            .get(from.0)
            .is_some_and(|d| d.views.contains_key(from.1));
        if source_is_view {
            return Err(CommandError::new(
                codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                format!("cannot rename view: {}.{}", from.0, from.1),
            ));
        }
        // As the command: renaming to itself is refused before the source is looked up.
        if from == to {
            return Err(CommandError::new(
                codes::ILLEGAL_OPERATION,
                "Can't rename a collection to itself",
            ));
        }
        if !dbs
            .get(from.0)
            .is_some_and(|d| d.collections.contains_key(from.1))
        {
            return Err(CommandError::namespace_not_found(format!(
                "Source collection {}.{} does not exist",
                from.0, from.1
            )));
        }
        let target_exists = dbs
            .get(to.0)
            .is_some_and(|d| d.collections.contains_key(to.1));
        let target_is_view = dbs.get(to.0).is_some_and(|d| d.views.contains_key(to.1));
        if target_is_view || (target_exists && !drop_target) {
            return Err(CommandError::new(
                codes::NAMESPACE_EXISTS,
                "target namespace exists",
            ));
        }
        let source_db = dbs.get_mut(from.0).expect("checked");
        let coll = source_db.collections.remove(from.1).expect("checked");
        if source_db.collections.is_empty() && source_db.views.is_empty() {
            dbs.remove(from.0);
        }
        let target_db = dbs.entry(to.0.to_string()).or_default();
        let dropped = target_db.collections.remove(to.1);
        coll.data.write().ns = format!("{}.{}", to.0, to.1);
        target_db
            .collections
            .insert(to.1.to_string(), Arc::clone(&coll));
        self.oplog.append(
            format!("{}.{}", from.0, from.1),
            Some(coll.uuid),
            EntryKind::Rename {
                to: format!("{}.{}", to.0, to.1),
                drop_target: dropped.as_ref().map(|d| d.uuid),
            },
            None,
        );
        Ok((coll, dropped))
    }

    /// Database names, sorted.
    pub fn database_names(&self) -> Vec<String> {
        self.dbs.read().keys().cloned().collect()
    }

    /// A snapshot of one database's namespaces.
    pub fn database(&self, db: &str) -> Option<Database> {
        self.dbs.read().get(db).cloned()
    }
}

fn view_description(view: &View) -> Document {
    let pipeline: Vec<bson::Bson> = view
        .pipeline
        .iter()
        .cloned()
        .map(bson::Bson::Document)
        .collect();
    bson::doc! {"viewOn": view.view_on.clone(), "pipeline": pipeline}
}

fn namespace_exists(db: &str, coll: &str) -> CommandError {
    CommandError::new(
        codes::NAMESPACE_EXISTS,
        format!("Collection {db}.{coll} already exists."),
    )
}

/// Checks a database name as the server does.
pub fn validate_db_name(db: &str) -> Result<()> {
    if db.is_empty() || db.len() >= 64 || db.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
        return Err(CommandError::invalid_namespace(format!(
            "Invalid database name: '{db}'"
        )));
    }
    Ok(())
}

/// Checks a collection name as the server does for user collections.
pub fn validate_collection_name(db: &str, coll: &str) -> Result<()> {
    validate_db_name(db)?;
    if coll.is_empty() {
        return Err(CommandError::invalid_namespace(format!(
            "Invalid namespace specified '{db}.'"
        )));
    }
    if coll.contains('\0')
        || (coll.contains('$') && !coll.starts_with("system."))
        || coll.starts_with('.')
    {
        return Err(CommandError::invalid_namespace(format!(
            "Invalid collection name: {coll}"
        )));
    }
    if db.len() + 1 + coll.len() > 255 {
        return Err(CommandError::invalid_namespace(format!(
            "Fully qualified namespace is too long. Namespace: {db}.{coll} Max: 255"
        )));
    }
    Ok(())
}
