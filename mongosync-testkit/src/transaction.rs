//! Multi-document transactions. A transaction works on private copies of the collections it
//! touches (taken at first touch), so its writes are invisible until commit; each write takes
//! a document lock, and a second writer of the same document, or a document changed outside
//! since the copy, fails with WriteConflict, first writer wins, as on a real server. Commit
//! replays the captured writes on the live collections and records them in the oplog under
//! one cluster time with increasing `txnOpIndex`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bson::{Bson, Document};
use parking_lot::Mutex;

use crate::error::{CommandError, Result};
use crate::oplog::{EntryKind, TxnInfo};
use crate::query::compare::OrdBson;
use crate::server::Server;
use crate::storage::Collection;
use crate::storage::collection::{CollectionData, raw_id};

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// Running: commands with `autocommit: false` join it.
    InProgress,
    /// Committed (a retried commit succeeds again).
    Committed,
    /// Aborted (explicitly, or by an error).
    Aborted,
}

/// A transaction's private copy of one collection.
#[derive(Debug)]
pub struct TxnCollection {
    /// The copy the transaction reads and writes.
    pub data: Arc<Mutex<CollectionData>>,
    /// The live collection (none when the transaction created it).
    live: Option<Arc<Collection>>,
    /// How many captured writes have been checked for conflicts.
    checked: usize,
    /// Created by the transaction (explicitly, or implicitly by a write or `createIndexes`):
    /// invisible outside it, created with its options and indexes at commit.
    created: bool,
}

/// One transaction of one session.
#[derive(Debug)]
pub struct Txn {
    /// For a snapshot read outside a transaction: the time its collections are read at.
    snapshot_at: Option<bson::Timestamp>,
    /// Its `txnNumber`.
    pub number: i64,
    /// Where it stands.
    pub state: TxnState,
    lsid: Document,
    key: Vec<u8>,
    copies: BTreeMap<(String, String), TxnCollection>,
    /// Documents this transaction wrote (locked against other transactions).
    written: BTreeSet<(String, OrdBson)>,
}

/// Every session's latest transaction and the document locks.
#[derive(Debug, Default)]
pub struct Transactions {
    by_session: Mutex<HashMap<Vec<u8>, Arc<Mutex<Txn>>>>,
    locks: Mutex<HashMap<(String, OrdBson), Vec<u8>>>,
}

fn no_such_transaction(message: String) -> CommandError {
    CommandError::new(251, message)
}

/// Aggregation stages whose lite-parsed form refuses a transaction
/// (`assertSupportsMultiDocumentTransaction` calling `transactionNotSupported`).
const STAGES_NOT_IN_TRANSACTIONS: &[&str] = &[
    "$changeStream",
    "$collStats",
    "$currentOp",
    "$indexStats",
    "$listLocalSessions",
    "$listSessions",
    "$listSampledQueries",
    "$planCacheStats",
    "$querySettings",
    "$queryStats",
    "$backupCursor",
    "$backupCursorExtend",
];

/// `CommandHelpers::canUseTransactions` (`commands.cpp`), for a command the transaction
/// allowlist accepts: `count` has its own message; no namespace in `local`, nor
/// `system.profile`/`system.views`, nor (on a replica set) in `config`. Then the pipeline's
/// stages, as `LiteParsedPipeline` checks them.
pub fn check_command_allowed(ctx: &crate::commands::Ctx<'_>) -> Result<()> {
    let not_supported = |m: String| CommandError::new(263, m);
    let mut namespaces: Vec<(String, String)> = Vec::new();
    match (ctx.arg(), ctx.body.get("collection")) {
        (Bson::String(c), _) => namespaces.push((ctx.db.clone(), c.clone())),
        (_, Some(Bson::String(c))) if ctx.name == "getMore" => {
            namespaces.push((ctx.db.clone(), c.clone()))
        }
        _ => namespaces.push((ctx.db.clone(), "$cmd".into())),
    }
    if ctx.name == "bulkWrite"
        && let Ok(entries) = ctx.body.get_array("nsInfo")
    {
        namespaces.extend(
            entries
                .iter()
                .filter_map(|e| e.as_document()?.get_str("ns").ok()?.split_once('.'))
                .map(|(d, c)| (d.to_string(), c.to_string())),
        );
    }
    for (db, coll) in &namespaces {
        if db == "local" {
            return Err(not_supported(format!(
                "Cannot run command against the '{db}' database in a transaction."
            )));
        }
        if coll == "system.profile" || coll == "system.views" {
            return Err(not_supported(format!(
                "Cannot run command against the '{db}.{coll}' collection in a transaction."
            )));
        }
        if db == "config" {
            return Err(not_supported(
                "Cannot run command against the config database in a transaction.".into(),
            ));
        }
    }
    if ctx.name == "aggregate"
        && let Ok(pipeline) = ctx.body.get_array("pipeline")
        && let Some(stage) = pipeline.iter().filter_map(Bson::as_document).find_map(|d| {
            d.keys()
                .find(|k| STAGES_NOT_IN_TRANSACTIONS.contains(&k.as_str()))
        })
    {
        return Err(not_supported(format!(
            "Operation not permitted in transaction :: caused by :: Aggregation stage {stage} cannot run within a multi-document transaction."
        )));
    }
    Ok(())
}

/// The server's `doTransactionValidationForWrites`, for a write command inside a transaction:
/// no system collection (but the privilege and time-series bucket collections), no
/// unreplicated (`local`) collection.
pub fn check_write_namespaces(ctx: &crate::commands::Ctx<'_>) -> Result<()> {
    let namespaces: Vec<(String, String)> = match ctx.name.as_str() {
        "insert" | "update" | "delete" | "findAndModify" | "findandmodify" => match ctx.arg() {
            Bson::String(c) => vec![(ctx.db.clone(), c.clone())],
            _ => Vec::new(),
        },
        "bulkWrite" => ctx
            .body
            .get_array("nsInfo")
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.as_document()?.get_str("ns").ok()?.split_once('.'))
                    .map(|(d, c)| (d.to_string(), c.to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    for (db, coll) in namespaces {
        let privilege = db == "admin" && matches!(coll.as_str(), "system.users" | "system.roles");
        if coll.starts_with("system.") && !privilege && !coll.starts_with("system.buckets.") {
            return Err(CommandError::new(
                50791,
                format!("Cannot write to system collection {db}.{coll} within a transaction."),
            ));
        }
        if db == "local" {
            return Err(CommandError::new(
                50790,
                format!(
                    "Cannot write to unreplicated collection {db}.{coll} within a transaction."
                ),
            ));
        }
    }
    Ok(())
}

/// WriteConflict as a real server words it inside a transaction.
pub fn write_conflict() -> CommandError {
    CommandError::new(
        112,
        "Caused by :: Write conflict during plan execution and yielding is disabled. :: Please retry your operation or multi-document transaction.",
    )
}

impl Transactions {
    /// `startTransaction: true` with `txnNumber` `number`.
    pub fn begin(&self, key: &[u8], lsid: &Document, number: i64) -> Result<Arc<Mutex<Txn>>> {
        let mut sessions = self.by_session.lock();
        if let Some(existing) = sessions.get(key) {
            let existing = existing.lock();
            if number < existing.number {
                return Err(CommandError::new(
                    225,
                    format!(
                        "Cannot start transaction {number} on session because a newer transaction {} has already started",
                        existing.number
                    ),
                ));
            }
            if number == existing.number {
                return Err(CommandError::new(
                    256,
                    format!("Transaction with {{ txnNumber: {number} }} has already been started"),
                ));
            }
        }
        if let Some(old) = sessions.remove(key) {
            self.release(&mut old.lock());
        }
        let txn = Arc::new(Mutex::new(Txn {
            snapshot_at: None,
            number,
            state: TxnState::InProgress,
            lsid: lsid.clone(),
            key: key.to_vec(),
            copies: BTreeMap::new(),
            written: BTreeSet::new(),
        }));
        sessions.insert(key.to_vec(), Arc::clone(&txn));
        Ok(txn)
    }

    /// The session's transaction `number`, for a command continuing it.
    pub fn continuing(&self, key: &[u8], number: i64) -> Result<Arc<Mutex<Txn>>> {
        let sessions = self.by_session.lock();
        let Some(txn) = sessions.get(key) else {
            return Err(no_such_transaction(format!(
                "Given transaction number {number} does not match any in-progress transactions."
            )));
        };
        let t = txn.lock();
        if t.number != number {
            return Err(no_such_transaction(format!(
                "Given transaction number {number} does not match any in-progress transactions. The active transaction number is {}",
                t.number
            )));
        }
        match t.state {
            TxnState::InProgress => Ok(Arc::clone(txn)),
            TxnState::Aborted => Err(no_such_transaction(format!(
                "Transaction with {{ txnNumber: {number} }} has been aborted."
            ))),
            TxnState::Committed => Err(CommandError::new(
                256,
                format!("Transaction with {{ txnNumber: {number} }} has been committed."),
            )),
        }
    }

    /// Aborts a transaction after an error in one of its commands.
    pub fn abort_txn(&self, txn: &mut Txn) {
        if txn.state == TxnState::InProgress {
            txn.state = TxnState::Aborted;
            self.release(txn);
        }
    }

    /// The session's transaction, which must carry `number`; NoSuchTransaction otherwise.
    fn numbered(&self, key: &[u8], number: i64) -> Result<Arc<Mutex<Txn>>> {
        let txn = self.by_session.lock().get(key).cloned();
        let Some(txn) = txn else {
            return Err(no_such_transaction(format!(
                "Given transaction number {number} does not match any in-progress transactions."
            )));
        };
        let active = txn.lock().number;
        if active != number {
            return Err(no_such_transaction(format!(
                "Given transaction number {number} does not match any in-progress transactions. The active transaction number is {active}"
            )));
        }
        Ok(txn)
    }

    /// `abortTransaction`.
    pub fn abort(&self, key: &[u8], number: i64) -> Result<()> {
        let txn = self.numbered(key, number)?;
        let mut t = txn.lock();
        match t.state {
            TxnState::InProgress => {
                self.abort_txn(&mut t);
                Ok(())
            }
            TxnState::Aborted => Err(no_such_transaction(format!(
                "Transaction with {{ txnNumber: {number} }} has been aborted."
            ))),
            TxnState::Committed => Err(CommandError::new(
                256,
                format!("Transaction with {{ txnNumber: {number} }} has been committed."),
            )),
        }
    }

    /// `commitTransaction`: applies the transaction atomically; a retried commit of a committed
    /// transaction succeeds again.
    pub fn commit(&self, server: &Server, key: &[u8], number: i64) -> Result<()> {
        let txn = self.numbered(key, number)?;
        let mut t = txn.lock();
        match t.state {
            TxnState::Committed => return Ok(()),
            TxnState::Aborted => {
                return Err(no_such_transaction(format!(
                    "Transaction with {{ txnNumber: {number} }} has been aborted."
                )));
            }
            TxnState::InProgress => {}
        }
        let result = apply(server, &mut t);
        if result.is_ok() {
            t.state = TxnState::Committed;
            self.release(&mut t);
        } else {
            self.abort_txn(&mut t);
        }
        result
    }

    /// After each command of a transaction: takes the locks of the documents it wrote;
    /// WriteConflict if another transaction holds one, or if a document changed outside the
    /// transaction since its copy was taken.
    pub fn check_writes(&self, server: &Server, txn: &mut Txn) -> Result<()> {
        let mut locks = self.locks.lock();
        let key = txn.key.clone();
        let mut newly: Vec<(String, OrdBson)> = Vec::new();
        for ((db, coll), copy) in txn.copies.iter_mut() {
            let ns = format!("{db}.{coll}");
            let data = copy.data.lock();
            let captured = data.captured_since(copy.checked);
            for entry in captured {
                let (id, before) = match entry {
                    EntryKind::Insert { doc } => (raw_id(doc), None),
                    EntryKind::Update { before, after, .. } => (raw_id(after), Some(before)),
                    EntryKind::Delete { before, .. } => (raw_id(before), Some(before)),
                    _ => continue,
                };
                let Some(id) = id else { continue };
                let lock_key = (ns.clone(), OrdBson(id.clone()));
                if let Some(holder) = locks.get(&lock_key) {
                    if *holder != key {
                        return Err(write_conflict());
                    }
                    continue;
                }
                // First write of this document: the live one must still be what was copied.
                if let Some(live) = copy
                    .live
                    .as_ref()
                    .or(server.catalog.collection(db, coll).as_ref())
                {
                    let live = live.data.read();
                    let current = live.find_id(&id).map(|(_, raw)| raw.as_bytes().to_vec());
                    let expected = before.map(|b| b.as_bytes().to_vec());
                    if current != expected {
                        return Err(write_conflict());
                    }
                }
                locks.insert(lock_key.clone(), key.clone());
                newly.push(lock_key);
            }
            copy.checked += captured.len();
        }
        txn.written.extend(newly);
        Ok(())
    }

    /// Ends a session: its running transaction is aborted (`endSessions`, `killSessions`).
    pub fn end_session(&self, key: &[u8]) {
        let txn = self.by_session.lock().remove(key);
        if let Some(txn) = txn {
            self.abort_txn(&mut txn.lock());
        }
    }

    /// Aborts every running transaction (`killAllSessions`).
    pub fn abort_all(&self) {
        let all: Vec<_> = self.by_session.lock().drain().map(|(_, t)| t).collect();
        for txn in all {
            self.abort_txn(&mut txn.lock());
        }
    }

    fn release(&self, txn: &mut Txn) {
        let mut locks = self.locks.lock();
        for k in std::mem::take(&mut txn.written) {
            if locks.get(&k) == Some(&txn.key) {
                locks.remove(&k);
            }
        }
        txn.copies.clear();
    }
}

impl Txn {
    /// The read-only context of a snapshot read at `at` (see `snapshot.rs`): each collection
    /// it touches is rebuilt as of `at`.
    pub(crate) fn snapshot(at: bson::Timestamp) -> Txn {
        Txn {
            snapshot_at: Some(at),
            number: -1,
            state: TxnState::InProgress,
            lsid: Document::new(),
            key: Vec::new(),
            copies: BTreeMap::new(),
            written: BTreeSet::new(),
        }
    }

    /// Rebuilds `db.coll` as of the snapshot's time now, so that its errors (SnapshotTooOld,
    /// SnapshotUnavailable) reach the command.
    pub(crate) fn preload(&mut self, server: &Server, db: &str, coll: &str) -> Result<()> {
        let Some(at) = self.snapshot_at else {
            return Ok(());
        };
        if let Some(data) = crate::snapshot::collection_at(server, db, coll, at)? {
            self.copies.insert(
                (db.to_string(), coll.to_string()),
                TxnCollection {
                    data: Arc::new(Mutex::new(data)),
                    live: None,
                    checked: 0,
                    created: false,
                },
            );
        }
        Ok(())
    }

    /// The transaction's copy of `db.coll`, taken on first use; with `create`, an empty one
    /// when the collection does not exist (it is created at commit).
    pub fn collection(
        &mut self,
        server: &Server,
        db: &str,
        coll: &str,
        create: bool,
    ) -> Option<Arc<Mutex<CollectionData>>> {
        let k = (db.to_string(), coll.to_string());
        if let Some(c) = self.copies.get(&k) {
            return Some(Arc::clone(&c.data));
        }
        if let Some(at) = self.snapshot_at {
            // Another collection of a snapshot read (`$lookup`, `$unionWith`).
            let data = crate::snapshot::collection_at(server, db, coll, at).ok()??;
            let data = Arc::new(Mutex::new(data));
            self.copies.insert(
                k,
                TxnCollection {
                    data: Arc::clone(&data),
                    live: None,
                    checked: 0,
                    created: false,
                },
            );
            return Some(data);
        }
        let live = server.catalog.collection(db, coll);
        let data = match &live {
            Some(l) => l.data.read().transaction_copy(),
            None if create => return Some(self.create_collection(db, coll, Document::new())),
            None => return None,
        };
        let data = Arc::new(Mutex::new(data));
        self.copies.insert(
            k,
            TxnCollection {
                data: Arc::clone(&data),
                live,
                checked: 0,
                created: false,
            },
        );
        Some(data)
    }

    /// Creates `db.coll` with `options` inside the transaction (the caller checked that the
    /// name is free): only the transaction sees it until it commits.
    pub fn create_collection(
        &mut self,
        db: &str,
        coll: &str,
        options: Document,
    ) -> Arc<Mutex<CollectionData>> {
        let mut d = Collection::new(format!("{db}.{coll}"), options, None)
            .data
            .into_inner();
        d.begin_capture();
        let data = Arc::new(Mutex::new(d));
        self.copies.insert(
            (db.to_string(), coll.to_string()),
            TxnCollection {
                data: Arc::clone(&data),
                live: None,
                checked: 0,
                created: true,
            },
        );
        data
    }

    /// Whether the transaction created `db.coll`.
    pub fn created(&self, db: &str, coll: &str) -> bool {
        self.copies
            .get(&(db.to_string(), coll.to_string()))
            .is_some_and(|c| c.created)
    }

    /// Whether the transaction has `db.coll` (a copy, or a collection it created).
    pub fn has_collection(&self, db: &str, coll: &str) -> bool {
        self.copies
            .contains_key(&(db.to_string(), coll.to_string()))
    }

    /// The session of the transaction.
    pub fn lsid(&self) -> &Document {
        &self.lsid
    }
}

/// Replays a transaction's writes on the live collections, under one cluster time.
fn apply(server: &Server, txn: &mut Txn) -> Result<()> {
    let mut targets = Vec::new();
    for ((db, coll), copy) in &txn.copies {
        let captured: Vec<EntryKind> = copy.data.lock().captured_since(0).to_vec();
        if captured.is_empty() && !copy.created {
            continue;
        }
        let live = match &copy.live {
            Some(l) => Arc::clone(l),
            None => create_at_commit(server, db, coll, &copy.data.lock())?,
        };
        targets.push((format!("{db}.{coll}"), live, captured));
    }
    if targets.is_empty() {
        return Ok(());
    }
    // Lock every collection (in namespace order) so the commit is atomic to readers.
    let mut guards: Vec<_> = targets
        .iter()
        .map(|(_, live, _)| live.data.write())
        .collect();
    let mut ops = Vec::new();
    for ((ns, live, captured), data) in targets.iter().zip(guards.iter_mut()) {
        data.begin_capture();
        let mut result = Ok(());
        for entry in captured {
            result = replay(data, entry);
            if result.is_err() {
                break;
            }
        }
        let recorded = data.end_capture();
        result?;
        ops.extend(
            recorded
                .into_iter()
                .map(|k| (ns.clone(), Some(live.uuid), k)),
        );
    }
    let info = TxnInfo {
        lsid: txn.lsid.clone(),
        txn_number: txn.number,
    };
    server.oplog.append_group(ops, Some(info));
    drop(guards);
    Ok(())
}

/// A collection the transaction created, created live at its commit with the options and
/// indexes it was given inside the transaction (one that appeared meanwhile is reused).
fn create_at_commit(
    server: &Server,
    db: &str,
    coll: &str,
    copy: &CollectionData,
) -> Result<Arc<Collection>> {
    if let Some(existing) = server.catalog.collection(db, coll) {
        return Ok(existing);
    }
    let live = match server
        .catalog
        .create_collection(db, coll, copy.options.clone())?
    {
        Some(c) => c,
        None => server.catalog.collection_for_write(db, coll)?.0,
    };
    let mut data = live.data.write();
    for index in &copy.indexes {
        data.indexes
            .push(crate::storage::index::Index::new(index.spec.clone())?);
        data.record_ddl(EntryKind::CreateIndexes {
            indexes: vec![index.spec.clone()],
        });
    }
    drop(data);
    Ok(live)
}

fn replay(data: &mut CollectionData, entry: &EntryKind) -> Result<()> {
    match entry {
        EntryKind::Insert { doc } => {
            let id = raw_id(doc).unwrap_or(Bson::Null);
            data.insert(doc.clone(), id)
                .map(|_| ())
                .map_err(|_| write_conflict())
        }
        EntryKind::Update { after, replace, .. } => {
            let id = raw_id(after).unwrap_or(Bson::Null);
            let rid = data
                .find_id(&id)
                .map(|(r, _)| r)
                .ok_or_else(write_conflict)?;
            data.replace(rid, after.clone(), *replace)
                .map_err(|_| write_conflict())
        }
        EntryKind::Delete { before, .. } => {
            let id = raw_id(before).unwrap_or(Bson::Null);
            let rid = data
                .find_id(&id)
                .map(|(r, _)| r)
                .ok_or_else(write_conflict)?;
            data.remove(rid);
            Ok(())
        }
        _ => Ok(()),
    }
}
