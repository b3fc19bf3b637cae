//! The `local` database of a replica-set member: `local.oplog.rs`, a read-only view of the
//! testkit's oplog in the server's entry shape, which tools read to measure the oplog window
//! (its oldest and newest entries) and to follow writes.

use bson::{Bson, Document, RawDocumentBuf, doc};

use super::Ctx;
use crate::error::Result;
use crate::oplog::{EntryKind, OplogEntry};
use crate::query::matcher::Matcher;
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::storage::collection::decode;

/// Whether `db.coll` is the oplog.
pub fn is_oplog(db: &str, coll: &str) -> bool {
    db == "local" && coll == "oplog.rs"
}

/// A stable UUID for the oplog of this server (derived from its history's start).
fn oplog_uuid(ctx: &Ctx<'_>) -> bson::Uuid {
    let start = ctx.server.oplog.start;
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&start.time.to_be_bytes());
    bytes[4..8].copy_from_slice(&start.increment.to_be_bytes());
    bytes[8..].copy_from_slice(b"oplog.rs");
    // Version 4, variant 1, so that drivers show it as an ordinary UUID.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bson::Uuid::from_bytes(bytes)
}

/// The `listCollections` entry of `local.oplog.rs`: capped at the oplog's size, no `_id`
/// index (`autoIndexId: false`).
pub fn oplog_collection_entry(ctx: &Ctx<'_>) -> Document {
    let (_, max) = ctx.server.oplog.usage();
    let size = i64::try_from(max).unwrap_or(i64::MAX);
    let size = if size <= 1 << 30 {
        Bson::Int32(size as i32)
    } else {
        Bson::Int64(size)
    };
    doc! {
        "name": "oplog.rs",
        "type": "collection",
        "options": {"capped": true, "size": size, "autoIndexId": false},
        "info": {"readOnly": false, "uuid": Bson::Binary(bson::Binary::from_uuid(oplog_uuid(ctx)))},
    }
}

/// The parsed arguments of a `find` on the oplog.
pub struct OplogFind<'a> {
    pub filter: &'a Document,
    pub projection: &'a Document,
    pub sort: &'a Document,
    pub skip: usize,
    pub limit: Option<usize>,
    pub vars: &'a Document,
}

/// `find` on `local.oplog.rs`: entries in `$natural` order (`sort` or `hint`
/// `{$natural: -1}` reverses it), filtered, skipped, limited and projected. A `ts` lower
/// bound (`$gt`/`$gte`) starts the scan there instead of at the oldest entry.
pub fn find(ctx: &Ctx<'_>, args: &OplogFind<'_>) -> Result<Vec<RawDocumentBuf>> {
    let matcher = Matcher::new(args.filter, args.vars)?;
    let projection = if args.projection.is_empty() {
        None
    } else {
        Some(Projection::new(args.projection, args.vars)?)
    };
    let sort = if args.sort.is_empty() {
        None
    } else {
        Some(SortSpec::new(args.sort)?)
    };
    let hint_reverse = matches!(ctx.body.get("hint"), Some(Bson::Document(h))
        if h.get("$natural").and_then(crate::util::as_f64).is_some_and(|d| d < 0.0));
    // `ts` grows with the natural order, so a sort on it alone is a natural-order scan.
    let (reverse, in_memory_sort) = match &sort {
        None => (hint_reverse, None),
        Some(s) => match (s.natural(), s.keys()) {
            (Some(d), _) => (d < 0, None),
            (None, [(field, dir)]) if field == "ts" => (
                matches!(dir, crate::query::sort::Direction::Descending),
                None,
            ),
            _ => (false, Some(s)),
        },
    };
    let start = lower_ts_bound(args.filter).unwrap_or(bson::Timestamp {
        time: 0,
        increment: 0,
    });
    let entries = ctx.server.oplog.from(start, usize::MAX);
    let groups = entries.chunk_by(|a, b| a.ts == b.ts);
    let groups: Box<dyn Iterator<Item = &[std::sync::Arc<OplogEntry>]>> = if reverse {
        Box::new(groups.rev())
    } else {
        Box::new(groups)
    };
    let mut matched = Vec::new();
    // Without an in-memory sort, the scan stops once skip + limit entries matched.
    let wanted = match (in_memory_sort, args.limit) {
        (None, Some(l)) => args.skip.saturating_add(l),
        _ => usize::MAX,
    };
    for group in groups {
        if matched.len() >= wanted {
            break;
        }
        let entry = group_document(group);
        if matcher.matches(&entry) {
            matched.push(entry);
        }
    }
    if let Some(s) = in_memory_sort {
        matched.sort_by(|a, b| s.compare(a, b));
    }
    let mut out = Vec::new();
    for d in matched
        .into_iter()
        .skip(args.skip)
        .take(args.limit.unwrap_or(usize::MAX))
    {
        let d = match &projection {
            Some(p) => p.apply(&d, Some(&matcher))?,
            None => d,
        };
        out.push(super::support::encode(&d)?);
    }
    Ok(out)
}

/// Every oplog document in natural order: the input of an `aggregate` or `$lookup` on it.
pub fn documents(ctx: &Ctx<'_>) -> Vec<Document> {
    let entries = ctx.server.oplog.from(
        bson::Timestamp {
            time: 0,
            increment: 0,
        },
        usize::MAX,
    );
    entries
        .chunk_by(|a, b| a.ts == b.ts)
        .map(group_document)
        .collect()
}

/// `count` on `local.oplog.rs`: the documents `find` would return for `filter`.
pub fn count(ctx: &Ctx<'_>, filter: &Document, skip: usize, limit: Option<usize>) -> Result<usize> {
    let matcher = Matcher::new(filter, &Document::new())?;
    let start = lower_ts_bound(filter).unwrap_or(bson::Timestamp {
        time: 0,
        increment: 0,
    });
    let entries = ctx.server.oplog.from(start, usize::MAX);
    let n = entries
        .chunk_by(|a, b| a.ts == b.ts)
        .filter(|g| filter.is_empty() || matcher.matches(&group_document(g)))
        .count();
    let n = n.saturating_sub(skip);
    Ok(limit.map_or(n, |l| n.min(l)))
}

/// The `$gt`/`$gte` bound of a top-level `ts` condition, if there is one.
fn lower_ts_bound(filter: &Document) -> Option<bson::Timestamp> {
    match filter.get("ts")? {
        Bson::Timestamp(t) => Some(*t),
        Bson::Document(cond) => cond
            .iter()
            .filter(|(op, _)| *op == "$gt" || *op == "$gte")
            .filter_map(|(_, v)| match v {
                Bson::Timestamp(t) => Some(*t),
                _ => None,
            })
            .max_by_key(|t| (t.time, t.increment)),
        _ => None,
    }
}

/// One oplog document per cluster time: a single operation as itself, several sharing a
/// time (a transaction, a batched write) as an `applyOps` command, as the server writes them.
fn group_document(group: &[std::sync::Arc<OplogEntry>]) -> Document {
    let first = &group[0];
    let mut d = if group.len() == 1 {
        operation(first)
    } else {
        let ops: Vec<Bson> = group.iter().map(|e| Bson::Document(operation(e))).collect();
        doc! {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": ops}}
    };
    if let Some(txn) = &first.txn {
        d.insert("lsid", txn.lsid.clone());
        d.insert("txnNumber", txn.txn_number);
    }
    d.insert("ts", first.ts);
    d.insert("t", 1i64);
    d.insert("v", 2i64);
    d.insert("wall", first.wall);
    d
}

fn raw(doc: &RawDocumentBuf) -> Document {
    decode(doc).unwrap_or_default()
}

fn id_of(doc: &Document) -> Document {
    doc.get("_id")
        .map(|id| doc! {"_id": id.clone()})
        .unwrap_or_default()
}

/// A `$v: 2` update description of the top-level changes from `before` to `after`.
fn diff(before: &Document, after: &Document) -> Document {
    let mut updated = Document::new();
    let mut inserted = Document::new();
    let mut deleted = Document::new();
    for (k, v) in after {
        match before.get(k) {
            Some(old) if old == v => {}
            Some(_) => {
                updated.insert(k.clone(), v.clone());
            }
            None => {
                inserted.insert(k.clone(), v.clone());
            }
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            deleted.insert(k.clone(), false);
        }
    }
    let mut d = Document::new();
    if !deleted.is_empty() {
        d.insert("d", deleted);
    }
    if !updated.is_empty() {
        d.insert("u", updated);
    }
    if !inserted.is_empty() {
        d.insert("i", inserted);
    }
    doc! {"$v": 2, "diff": d}
}

/// One operation: `op`, `ns`, `ui`, `o` and `o2` as the server's oplog entry has them.
fn operation(e: &OplogEntry) -> Document {
    let cmd_ns = format!("{}.$cmd", e.db());
    let coll = e.coll().to_string();
    let (op, ns, o, o2): (&str, String, Document, Option<Document>) = match &e.kind {
        EntryKind::Insert { doc } => ("i", e.ns.clone(), raw(doc), None),
        EntryKind::Update {
            before,
            after,
            replace,
            ..
        } => {
            let (before, after) = (raw(before), raw(after));
            let o = if *replace {
                after.clone()
            } else {
                diff(&before, &after)
            };
            ("u", e.ns.clone(), o, Some(id_of(&after)))
        }
        EntryKind::Delete { before, .. } => ("d", e.ns.clone(), id_of(&raw(before)), None),
        EntryKind::Create { description, view } => {
            let mut o = doc! {"create": coll};
            for (k, v) in description {
                // A view's definition is written to `system.views`, not to `create`.
                if !*view || k == "viewOn" || k == "pipeline" {
                    o.insert(k.clone(), v.clone());
                }
            }
            ("c", cmd_ns, o, None)
        }
        EntryKind::Drop { .. } => ("c", cmd_ns, doc! {"drop": coll}, None),
        EntryKind::Rename { to, drop_target } => {
            let mut o =
                doc! {"renameCollection": e.ns.clone(), "to": to.clone(), "stayTemp": false};
            if let Some(uuid) = drop_target {
                o.insert("dropTarget", Bson::Binary(bson::Binary::from_uuid(*uuid)));
            }
            ("c", cmd_ns, o, None)
        }
        EntryKind::DropDatabase => ("c", cmd_ns, doc! {"dropDatabase": 1}, None),
        EntryKind::CreateIndexes { indexes } => {
            let specs: Vec<Bson> = indexes.iter().cloned().map(Bson::Document).collect();
            let o = doc! {
                "commitIndexBuild": coll,
                "indexBuildUUID": Bson::Binary(bson::Binary::from_uuid(bson::Uuid::new())),
                "indexes": specs,
            };
            ("c", cmd_ns, o, None)
        }
        EntryKind::DropIndexes { indexes } => {
            let name = indexes
                .first()
                .and_then(|i| i.get_str("name").ok())
                .unwrap_or("")
                .to_string();
            let spec = indexes.first().cloned().unwrap_or_default();
            (
                "c",
                cmd_ns,
                doc! {"dropIndexes": coll, "index": name},
                Some(spec),
            )
        }
        EntryKind::Modify {
            description,
            state_before,
        } => {
            let mut o = doc! {"collMod": coll};
            o.extend(description.clone());
            ("c", cmd_ns, o, Some(state_before.clone()))
        }
        EntryKind::Noop { data } => ("n", String::new(), data.clone(), None),
    };
    let mut d = doc! {"op": op, "ns": ns};
    if let Some(ui) = e.ui {
        d.insert("ui", Bson::Binary(bson::Binary::from_uuid(ui)));
    }
    d.insert("o", o);
    if let Some(o2) = o2 {
        d.insert("o2", o2);
    }
    d
}
