//! Change events, built from oplog entries as a real server builds them: which streams see an
//! entry, the event's fields in the server's order, its resume token, and the `invalidate`
//! that follows a drop or rename of a watched collection.

use bson::{Bson, Document, doc};

use super::diff;
use super::token::{ResumeTokenData, TokenType};
use crate::error::{CommandError, Result};
use crate::oplog::{EntryKind, OplogEntry};
use crate::server::Server;
use crate::storage::collection::{decode, raw_id};

/// What a stream watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// One collection.
    Collection {
        /// Its database.
        db: String,
        /// Its name.
        coll: String,
    },
    /// Every collection of one database.
    Database {
        /// The database.
        db: String,
    },
    /// Every database but the internal ones.
    Cluster,
}

/// The `$changeStream` options that shape events.
#[derive(Debug, Clone, Default)]
pub struct EventOptions {
    /// `fullDocument`: default, updateLookup, whenAvailable, required.
    pub full_document: String,
    /// `fullDocumentBeforeChange`: off, whenAvailable, required.
    pub full_document_before_change: String,
    /// `showExpandedEvents`.
    pub expanded: bool,
    /// The server predates `disambiguatedPaths` (6.1): update descriptions never carry it.
    pub no_disambiguated_paths: bool,
}

fn is_internal_db(db: &str) -> bool {
    matches!(db, "admin" | "config" | "local")
}

fn ns_doc(entry: &OplogEntry) -> Document {
    if entry.coll().is_empty() {
        doc! {"db": entry.db()}
    } else {
        doc! {"db": entry.db(), "coll": entry.coll()}
    }
}

fn split(ns: &str) -> (&str, &str) {
    ns.split_once('.').unwrap_or((ns, ""))
}

impl Scope {
    /// Whether an entry concerns this stream at all.
    fn sees(&self, entry: &OplogEntry) -> bool {
        if matches!(entry.kind, EntryKind::Noop { .. }) || entry.coll().starts_with("system.") {
            return false;
        }
        match self {
            Scope::Collection { db, coll } => {
                entry.db() == db
                    && entry.coll() == coll
                    && !matches!(entry.kind, EntryKind::DropDatabase)
            }
            Scope::Database { db } => entry.db() == db,
            Scope::Cluster => !is_internal_db(entry.db()),
        }
    }

    /// Whether an entry ends this stream (an `invalidate` follows its event).
    fn invalidated_by(&self, entry: &OplogEntry) -> bool {
        matches!(
            (self, &entry.kind),
            (
                Scope::Collection { .. },
                EntryKind::Drop { view: false } | EntryKind::Rename { .. }
            ) | (Scope::Database { .. }, EntryKind::DropDatabase)
        )
    }
}

/// An event and the token it carries.
pub struct Built {
    /// The event document.
    pub event: Document,
    /// Its resume token.
    pub token: ResumeTokenData,
}

fn operation_type(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::Insert { .. } => "insert",
        EntryKind::Update { replace: true, .. } => "replace",
        EntryKind::Update { .. } => "update",
        EntryKind::Delete { .. } => "delete",
        EntryKind::Create { .. } => "create",
        EntryKind::Drop { .. } => "drop",
        EntryKind::Rename { .. } => "rename",
        EntryKind::DropDatabase => "dropDatabase",
        EntryKind::CreateIndexes { .. } => "createIndexes",
        EntryKind::DropIndexes { .. } => "dropIndexes",
        EntryKind::Modify { .. } => "modify",
        EntryKind::Noop { .. } => "noop",
    }
}

/// Whether an event type exists only under `showExpandedEvents`.
fn expanded_only(kind: &EntryKind) -> bool {
    matches!(
        kind,
        EntryKind::Create { .. }
            | EntryKind::CreateIndexes { .. }
            | EntryKind::DropIndexes { .. }
            | EntryKind::Modify { .. }
            | EntryKind::Drop { view: true }
    )
}

fn document_key(kind: &EntryKind) -> Option<Document> {
    let raw = match kind {
        EntryKind::Insert { doc } => doc,
        EntryKind::Update { after, .. } => after,
        EntryKind::Delete { before, .. } => before,
        _ => return None,
    };
    Some(doc! {"_id": raw_id(raw).unwrap_or(Bson::Null)})
}

fn operation_description(entry: &OplogEntry) -> Option<Document> {
    Some(match &entry.kind {
        EntryKind::Create { description, .. } => description.clone(),
        EntryKind::Rename { to, drop_target } => {
            let (db, coll) = split(to);
            let mut d = doc! {"to": {"db": db, "coll": coll}};
            if let Some(uuid) = drop_target {
                d.insert("dropTarget", Bson::Binary(bson::Binary::from_uuid(*uuid)));
            }
            d
        }
        EntryKind::CreateIndexes { indexes } | EntryKind::DropIndexes { indexes } => {
            doc! {"indexes": indexes.iter().cloned().map(Bson::Document).collect::<Vec<_>>()}
        }
        EntryKind::Modify { description, .. } => description.clone(),
        _ => return None,
    })
}

fn token_for(entry: &OplogEntry, identifier: Document, from_invalidate: bool) -> ResumeTokenData {
    ResumeTokenData {
        cluster_time: entry.ts,
        version: 2,
        token_type: TokenType::Event,
        txn_op_index: entry.txn_op_index,
        from_invalidate,
        uuid: entry.ui,
        event_identifier: Some(identifier),
        fragment_num: None,
    }
}

/// The events `entry` produces on a stream of `scope` with `opts`: none, one, or an event and
/// the `invalidate` that ends the stream.
pub fn build(
    entry: &OplogEntry,
    scope: &Scope,
    opts: &EventOptions,
    server: &Server,
) -> Result<Vec<Built>> {
    if !scope.sees(entry) || (expanded_only(&entry.kind) && !opts.expanded) {
        return Ok(Vec::new());
    }
    let op = operation_type(&entry.kind);
    let key = document_key(&entry.kind);
    let description = operation_description(entry);
    let identifier = match (&key, &description) {
        (Some(k), _) => doc! {"operationType": op, "documentKey": k.clone()},
        (None, Some(d)) => doc! {"operationType": op, "operationDescription": d.clone()},
        (None, None) => doc! {"operationType": op},
    };
    let token = token_for(entry, identifier.clone(), false);
    let mut ev = Document::new();
    if let Some(txn) = &entry.txn {
        ev.insert("txnNumber", txn.txn_number);
        ev.insert("lsid", txn.lsid.clone());
    }
    if let EntryKind::Rename { to, .. } = &entry.kind {
        let (db, coll) = split(to);
        ev.insert("to", doc! {"db": db, "coll": coll});
    }
    ev.insert("_id", token.encode());
    ev.insert("operationType", op);
    ev.insert("clusterTime", entry.ts);
    if opts.expanded
        && let Some(ui) = entry.ui
    {
        ev.insert("collectionUUID", Bson::Binary(bson::Binary::from_uuid(ui)));
    }
    ev.insert("wallTime", entry.wall);
    match &entry.kind {
        EntryKind::Insert { doc } => {
            ev.insert("fullDocument", decode(doc)?);
        }
        EntryKind::Update {
            replace: true,
            after,
            ..
        } => {
            ev.insert("fullDocument", decode(after)?);
        }
        EntryKind::Update { after, images, .. } => match opts.full_document.as_str() {
            "updateLookup" => {
                let current = lookup(server, entry, key.as_ref())?;
                ev.insert("fullDocument", current.map_or(Bson::Null, Bson::Document));
            }
            "whenAvailable" | "required" => {
                if *images {
                    ev.insert("fullDocument", decode(after)?);
                } else if opts.full_document == "required" {
                    return Err(missing_image("post", &ev));
                } else {
                    ev.insert("fullDocument", Bson::Null);
                }
            }
            _ => {}
        },
        _ => {}
    }
    ev.insert("ns", ns_doc(entry));
    if let Some(k) = key {
        ev.insert("documentKey", k);
    }
    if opts.expanded {
        if let Some(d) = description {
            ev.insert("operationDescription", d);
        }
        if let EntryKind::Modify { state_before, .. } = &entry.kind
            && !state_before.is_empty()
        {
            ev.insert("stateBeforeChange", state_before.clone());
        }
    }
    if let EntryKind::Update {
        before,
        after,
        replace: false,
        ..
    } = &entry.kind
    {
        let description = diff::describe(&decode(before)?, &decode(after)?);
        ev.insert(
            "updateDescription",
            description.to_document(opts.expanded && !opts.no_disambiguated_paths),
        );
    }
    if let EntryKind::Update { before, images, .. } | EntryKind::Delete { before, images } =
        &entry.kind
    {
        match opts.full_document_before_change.as_str() {
            "whenAvailable" | "required" => {
                if *images {
                    ev.insert("fullDocumentBeforeChange", decode(before)?);
                } else if opts.full_document_before_change == "required" {
                    return Err(missing_image("pre", &ev));
                } else {
                    ev.insert("fullDocumentBeforeChange", Bson::Null);
                }
            }
            _ => {}
        }
    }
    let mut out = vec![Built { event: ev, token }];
    if scope.invalidated_by(entry) {
        let token = token_for(entry, identifier, true);
        let ev = doc! {
            "_id": token.encode(),
            "operationType": "invalidate",
            "clusterTime": entry.ts,
            "wallTime": entry.wall,
        };
        out.push(Built { event: ev, token });
    }
    Ok(out)
}

fn lookup(server: &Server, entry: &OplogEntry, key: Option<&Document>) -> Result<Option<Document>> {
    let Some(id) = key.and_then(|k| k.get("_id")) else {
        return Ok(None);
    };
    let Some(c) = server.catalog.collection(entry.db(), entry.coll()) else {
        return Ok(None);
    };
    let data = c.data.read();
    match data.find_id(id) {
        Some((_, raw)) => Ok(Some(decode(raw)?)),
        None => Ok(None),
    }
}

fn missing_image(which: &str, ev: &Document) -> CommandError {
    CommandError::new(
        47,
        format!(
            "Change stream was configured to require a {which}-image for all update, delete and replace events, but the {which}-image was not found for event: {}",
            crate::util::shell_repr(&Bson::Document(ev.clone()))
        ),
    )
}
