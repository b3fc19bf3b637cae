//! Snapshot reads outside transactions (`readConcern: {level: "snapshot", atClusterTime}`):
//! `find`, `aggregate` and `distinct` read the collection as it was at a cluster time.
//!
//! The store keeps only the latest version of each document, so the past is rebuilt from the
//! oplog, which keeps every write's before-image: a copy of the collection is taken under its
//! lock (so every write to it is already in the oplog), then the writes after the snapshot's
//! time are undone, newest first. A snapshot older than the oplog's history is SnapshotTooOld
//! (239), as on a server whose history window has passed; a collection created, dropped or
//! renamed since is SnapshotUnavailable (246). A document deleted since comes back at the end
//! of the natural order, not at its old place (record ids are not kept in the oplog). The command then runs as in a transaction over
//! that copy, and its reply carries `atClusterTime`, which drivers keep for the session's
//! next reads.

use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf, Timestamp};

use crate::commands::Ctx;
use crate::error::{CommandError, Result};
use crate::oplog::EntryKind;
use crate::server::Server;
use crate::storage::collection::{CollectionData, raw_id};

fn key(ts: Timestamp) -> (u32, u32) {
    (ts.time, ts.increment)
}

fn show(ts: Timestamp) -> String {
    format!("Timestamp({}, {})", ts.time, ts.increment)
}

/// The snapshot time a command asks for: `None` when it is not a snapshot read outside a
/// transaction of a command that can be one.
pub(crate) fn requested(ctx: &Ctx<'_>) -> Result<Option<Timestamp>> {
    if ctx.txn.is_some() || !matches!(ctx.name.as_str(), "find" | "aggregate" | "distinct") {
        return Ok(None);
    }
    let Ok(rc) = ctx.body.get_document("readConcern") else {
        return Ok(None);
    };
    if rc.get_str("level").ok() != Some("snapshot") {
        return Ok(None);
    }
    let now = ctx.server.oplog.now();
    let at = match rc.get("atClusterTime") {
        None => now,
        Some(Bson::Timestamp(t)) => *t,
        Some(other) => {
            return Err(CommandError::type_mismatch(format!(
                "BSON field 'atClusterTime' is the wrong type '{}', expected type 'timestamp'",
                crate::util::type_name(other)
            )));
        }
    };
    if key(at) > key(now) {
        return Err(CommandError::invalid_options(format!(
            "readConcern atClusterTime value must not be greater than the current clusterTime. \
             Requested clusterTime: {}; current clusterTime: {}",
            show(at),
            show(now)
        )));
    }
    Ok(Some(at))
}

/// `db.coll` as it was at `at`, or `None` if it did not exist then (nor now).
pub(crate) fn collection_at(
    server: &Server,
    db: &str,
    coll: &str,
    at: Timestamp,
) -> Result<Option<CollectionData>> {
    let ns = format!("{db}.{coll}");
    let live = server.catalog.collection(db, coll);
    let (mut copy, latest) = match &live {
        Some(c) => {
            let data = c.data.read();
            // Under the collection's lock every write to it is in the oplog, at or before
            // `latest`.
            (Some(data.transaction_copy()), server.oplog.now())
        }
        None => (None, server.oplog.now()),
    };
    if !server.oplog.covers(at) && server.oplog.oldest().is_some_and(|o| key(o) > key(at)) {
        return Err(CommandError::new(
            239,
            format!(
                "Read timestamp {} is older than the oldest available timestamp.",
                show(at)
            ),
        ));
    }
    let mut after: Vec<Arc<crate::oplog::OplogEntry>> = Vec::new();
    let mut from = at;
    let mut index = None;
    loop {
        let batch = server.oplog.after(from, index, 4096);
        let Some(last) = batch.last() else { break };
        from = last.ts;
        index = Some(last.txn_op_index);
        let done = key(from) > key(latest);
        after.extend(batch.into_iter().filter(|e| key(e.ts) <= key(latest)));
        if done {
            break;
        }
    }
    for e in after.iter().rev() {
        let touches = e.ns == ns
            || matches!(&e.kind, EntryKind::Rename { to, .. } if *to == ns)
            || (matches!(e.kind, EntryKind::DropDatabase) && e.ns == db);
        if !touches {
            continue;
        }
        let Some(data) = copy.as_mut() else {
            return Err(unavailable());
        };
        match &e.kind {
            EntryKind::Insert { doc } => {
                if let Some(id) = raw_id(doc)
                    && let Some((rid, _)) = data.find_id(&id)
                {
                    data.remove(rid);
                }
            }
            EntryKind::Update { before, .. } => restore(data, before)?,
            EntryKind::Delete { before, .. } => {
                let id = raw_id(before).unwrap_or(Bson::Null);
                data.insert(before.clone(), id)?;
            }
            EntryKind::CreateIndexes { .. }
            | EntryKind::DropIndexes { .. }
            | EntryKind::Modify { .. }
            | EntryKind::Noop { .. } => {}
            _ => return Err(unavailable()),
        }
    }
    Ok(copy)
}

fn restore(data: &mut CollectionData, before: &RawDocumentBuf) -> Result<()> {
    let id = raw_id(before).unwrap_or(Bson::Null);
    match data.find_id(&id) {
        Some((rid, _)) => data.replace(rid, before.clone(), true),
        None => data.insert(before.clone(), id).map(|_| ()),
    }
}

fn unavailable() -> CommandError {
    CommandError::new(
        246,
        "Unable to read from a snapshot due to pending collection catalog changes; please retry the operation.",
    )
}

/// Adds `atClusterTime` where drivers read it: in `cursor` for `find`/`aggregate`, at the top
/// for `distinct`.
pub(crate) fn stamp(name: &str, reply: Document, at: Timestamp) -> Document {
    let mut reply = reply;
    if name == "distinct" {
        reply.insert("atClusterTime", at);
    } else if let Ok(cursor) = reply.get_document_mut("cursor") {
        cursor.insert("atClusterTime", at);
    }
    reply
}
