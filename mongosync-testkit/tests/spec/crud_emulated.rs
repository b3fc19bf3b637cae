//! Driver emulation in the runner, not a driver API: the Rust driver (mongodb 3.9) has no
//! collection-level `bulkWrite` (only the 8.0 client `bulkWrite` command), no legacy `count`,
//! refuses unacknowledged write concerns ("Unacknowledged write concerns are not supported")
//! and keeps `insertMany`'s partial result private. The spec tests of these operations exercise
//! real server behaviour (the insert/update/delete commands, ordered and unordered error
//! handling, retryable-write dedup by `txnNumber`, fail points), so the runner performs them as
//! a driver does, per the CRUD spec ("Bulk API") and the Retryable Writes spec: it builds each
//! command exactly as a driver sends it and sends it through the official driver's
//! `Database::run_command` with an explicit session, so that the wire protocol, `lsid`,
//! `$clusterTime`, transaction fields and command monitoring events stay the driver's.

use std::sync::Arc;

use bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::error::{Error as DErr, ErrorKind};
use mongodb::options::WriteConcern;
use mongodb::{ClientSession, Collection};

use crate::entities::{Entities, Entity, SessionEntity};
use crate::matching::{Lookup, matches};
use crate::operations::{Ctx, E, Res};

fn bad(m: impl Into<String>) -> E {
    E::Fail(crate::Fail::Failed(m.into()))
}

/// A client-side error, as the driver raises before sending anything.
fn client_error(m: impl Into<String>) -> E {
    E::Driver(DErr::custom(ClientSideError(m.into())))
}

#[derive(Debug)]
pub struct ClientSideError(pub String);

/// A failed emulated write: the driver's BulkWriteException (write errors, write concern
/// errors and the partial result) or a command/network error with the partial result.
#[derive(Debug)]
pub struct Failure {
    /// The command or network error that stopped the operation, if any.
    pub cause: Option<DErr>,
    /// Labels the driver would add (RetryableWriteError on a retried network error) and the
    /// reply's own `errorLabels` when it carried a write concern error.
    pub labels: Vec<String>,
    /// `{index, code, codeName, errmsg}` with `index` the caller's model index.
    pub write_errors: Vec<Document>,
    pub write_concern_errors: Vec<Document>,
    pub partial: Document,
}

fn u(n: i64) -> Bson {
    Bson::Int64(n)
}

fn num(d: &Document, k: &str) -> i64 {
    match d.get(k) {
        Some(Bson::Int32(i)) => i64::from(*i),
        Some(Bson::Int64(i)) => *i,
        Some(Bson::Double(f)) => *f as i64,
        _ => 0,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Insert,
    Update,
    Delete,
}

/// One write model as its command statement, with the caller's index.
struct Stmt {
    index: usize,
    kind: Kind,
    doc: Document,
    /// `multi: true` updates and `limit: 0` deletes make a batch non-retryable.
    retryable: bool,
    /// The `_id` of an inserted document.
    id: Option<Bson>,
}

fn check_update(u: &Bson) -> Result<(), E> {
    match u {
        Bson::Document(d) => match d.keys().next() {
            Some(k) if k.starts_with('$') => Ok(()),
            _ => Err(client_error(
                "update document must contain only atomic modifiers ($-prefixed keys)",
            )),
        },
        Bson::Array(_) => Ok(()),
        _ => Err(client_error("update must be a document or a pipeline")),
    }
}

fn check_replacement(r: &Document) -> Result<(), E> {
    if r.keys().next().is_some_and(|k| k.starts_with('$')) {
        return Err(client_error(
            "replacement document must not contain atomic modifiers",
        ));
    }
    Ok(())
}

/// The statement a driver sends for one `requests` model.
fn statement(index: usize, m: &Bson) -> Result<Stmt, E> {
    let m = m.as_document().ok_or_else(|| bad("bad write model"))?;
    let (kind, a) = m.iter().next().ok_or_else(|| bad("empty write model"))?;
    let a = a.as_document().ok_or_else(|| bad("bad write model"))?;
    let filter = || -> Result<Bson, E> {
        a.get("filter")
            .cloned()
            .ok_or_else(|| bad(format!("{kind} without filter")))
    };
    let mut s = Stmt {
        index,
        kind: Kind::Update,
        doc: Document::new(),
        retryable: true,
        id: None,
    };
    match kind.as_str() {
        "insertOne" => {
            let d = a
                .get_document("document")
                .map_err(|_| bad("insertOne without document"))?;
            // The driver gives a document without `_id` a new ObjectId, first.
            let doc = if let Some(id) = d.get("_id") {
                s.id = Some(id.clone());
                d.clone()
            } else {
                let id = ObjectId::new();
                s.id = Some(Bson::ObjectId(id));
                let mut n = doc! {"_id": id};
                n.extend(d.clone());
                n
            };
            s.kind = Kind::Insert;
            s.doc = doc;
        }
        "updateOne" | "updateMany" | "replaceOne" => {
            let multi = kind == "updateMany";
            let u = if kind == "replaceOne" {
                let r = a
                    .get_document("replacement")
                    .map_err(|_| bad("replaceOne without replacement"))?;
                check_replacement(r)?;
                Bson::Document(r.clone())
            } else {
                let u = a
                    .get("update")
                    .ok_or_else(|| bad(format!("{kind} without update")))?;
                check_update(u)?;
                u.clone()
            };
            s.doc = doc! {"q": filter()?, "u": u};
            if let Some(v) = a.get("upsert") {
                s.doc.insert("upsert", v.clone());
            }
            if multi {
                s.doc.insert("multi", true);
                s.retryable = false;
            }
            for k in ["arrayFilters", "collation", "hint"] {
                if let Some(v) = a.get(k) {
                    s.doc.insert(k, v.clone());
                }
            }
            if !multi && let Some(v) = a.get("sort") {
                s.doc.insert("sort", v.clone());
            }
        }
        "deleteOne" | "deleteMany" => {
            let one = kind == "deleteOne";
            s.kind = Kind::Delete;
            s.doc = doc! {"q": filter()?, "limit": i32::from(one)};
            s.retryable = one;
            for k in ["collation", "hint"] {
                if let Some(v) = a.get(k) {
                    s.doc.insert(k, v.clone());
                }
            }
        }
        other => return Err(bad(format!("unknown write model {other}"))),
    }
    Ok(s)
}

/// Batches as the Bulk API forms them: ordered, runs of consecutive statements of one type;
/// unordered, one group per type (in the order the types first appear); each split at the
/// server's `maxWriteBatchSize` and so that a command stays under `maxBsonObjectSize`.
fn batches(stmts: Vec<Stmt>, ordered: bool, max_count: usize, max_bytes: usize) -> Vec<Vec<Stmt>> {
    let mut groups: Vec<Vec<Stmt>> = vec![];
    if ordered {
        for s in stmts {
            match groups.last_mut() {
                Some(g) if g[0].kind == s.kind => g.push(s),
                _ => groups.push(vec![s]),
            }
        }
    } else {
        for s in stmts {
            match groups.iter_mut().find(|g| g[0].kind == s.kind) {
                Some(g) => g.push(s),
                None => groups.push(vec![s]),
            }
        }
    }
    let mut out = vec![];
    for g in groups {
        let mut cur: Vec<Stmt> = vec![];
        let mut bytes = 0;
        for s in g {
            let n = bson::serialize_to_vec(&s.doc).map(|v| v.len()).unwrap_or(0);
            if !cur.is_empty() && (cur.len() >= max_count || bytes + n > max_bytes) {
                out.push(std::mem::take(&mut cur));
                bytes = 0;
            }
            bytes += n;
            cur.push(s);
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

/// The options of a bulk write that go into each command.
struct BulkOpts {
    ordered: bool,
    bypass: Option<Bson>,
    let_: Option<Bson>,
    comment: Option<Bson>,
    raw_data: Option<Bson>,
}

fn command(
    coll: &str,
    kind: Kind,
    batch: &[Stmt],
    o: &BulkOpts,
    wc: Option<&Document>,
) -> Document {
    let (name, field) = match kind {
        Kind::Insert => ("insert", "documents"),
        Kind::Update => ("update", "updates"),
        Kind::Delete => ("delete", "deletes"),
    };
    let mut cmd = doc! {name: coll};
    cmd.insert(
        field,
        batch
            .iter()
            .map(|s| Bson::Document(s.doc.clone()))
            .collect::<Vec<_>>(),
    );
    cmd.insert("ordered", o.ordered);
    if kind != Kind::Delete
        && let Some(b) = &o.bypass
    {
        cmd.insert("bypassDocumentValidation", b.clone());
    }
    if kind != Kind::Insert
        && let Some(l) = &o.let_
    {
        cmd.insert("let", l.clone());
    }
    if let Some(c) = &o.comment {
        cmd.insert("comment", c.clone());
    }
    if let Some(r) = &o.raw_data {
        cmd.insert("rawData", r.clone());
    }
    if let Some(w) = wc {
        cmd.insert("writeConcern", w.clone());
    }
    cmd
}

/// The collection's write concern as the command field, `None` when unset or empty.
fn write_concern(c: &Collection<Document>) -> Option<Document> {
    let wc: &WriteConcern = c.write_concern()?;
    let mut d = bson::serialize_to_document(wc).ok()?;
    if let Some(Bson::Int64(ms)) = d.get("wtimeout").cloned() {
        d.insert("wtimeout", ms);
    }
    (!d.is_empty()).then_some(d)
}

fn unacknowledged(wc: Option<&Document>) -> bool {
    wc.is_some_and(|w| {
        matches!(w.get("w"), Some(Bson::Int32(0)) | Some(Bson::Int64(0)))
            && !w.get_bool("j").unwrap_or(false)
    })
}

/// Whether `session` is in a transaction (starting or in progress), as the driver's own state
/// says (read the one public way, see `operations::transaction_state`).
fn in_transaction(session: &ClientSession) -> bool {
    matches!(
        crate::operations::transaction_state(session),
        Ok("starting" | "in_progress")
    )
}

/// Whether a retryable write may retry after `e` (Retryable Writes spec: a network error, or
/// a server error the server labelled RetryableWriteError).
fn retryable_error(e: &DErr) -> bool {
    e.contains_label("RetryableWriteError") || network_error(e)
}

fn network_error(e: &DErr) -> bool {
    matches!(
        &*e.kind,
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
    )
}

/// The next `txnNumber` of a session that this runner, not the driver, numbers: past every
/// `txnNumber` any client of the test has sent with that `lsid` (the driver's counter is
/// private; a runner-started session is kept until the test ends, so the driver never reuses
/// it with a lower number).
fn next_txn_number(ents: &Entities, lsid: &Document) -> i64 {
    let mut max = 0;
    for e in ents.map.values() {
        if let Entity::Client(c) = e {
            for cmd in c.sent.borrow().iter().map(|sent| &sent.command) {
                if cmd.get_document("lsid").ok() == Some(lsid) {
                    max = max.max(num(cmd, "txnNumber"));
                }
            }
        }
    }
    max + 1
}

/// Runs one command with the session and, for a retryable write, one retry.
async fn send(
    c: &Collection<Document>,
    session: Option<&mut ClientSession>,
    cmd: Document,
    retry: bool,
) -> Result<Document, (DErr, Vec<String>)> {
    let db = c.client().database(&c.namespace().db);
    let mut session = session;
    let mut once = async |cmd: Document| match session.as_deref_mut() {
        Some(s) => db.run_command(cmd).session(s).await,
        None => db.run_command(cmd).await,
    };
    let first = once(cmd.clone()).await;
    let retry_now = match &first {
        Err(e) => retry && retryable_error(e),
        Ok(r) => retry && reply_labels(r).iter().any(|l| l == "RetryableWriteError"),
    };
    if !retry_now {
        return first.map_err(|e| (e, vec![]));
    }
    match once(cmd).await {
        Ok(r) => Ok(r),
        // A retry that wrote nothing reports the first attempt's error (Retryable Writes spec).
        Err(e) if e.contains_label("NoWritesPerformed") => match first {
            Err(f) if network_error(&f) => Err((f, vec!["RetryableWriteError".into()])),
            Err(f) => Err((f, vec![])),
            Ok(_) => Err((e, vec![])),
        },
        // The driver labels a network error of a retryable write.
        Err(e) if network_error(&e) => Err((e, vec!["RetryableWriteError".into()])),
        Err(e) => Err((e, vec![])),
    }
}

fn reply_labels(r: &Document) -> Vec<String> {
    r.get_array("errorLabels")
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The spec's BulkWriteResult, accumulated over batches.
#[derive(Default)]
struct Totals {
    inserted: i64,
    matched: i64,
    modified: i64,
    deleted: i64,
    upserted: i64,
    inserted_ids: Document,
    upserted_ids: Document,
}

impl Totals {
    fn doc(&self) -> Document {
        doc! {
            "deletedCount": u(self.deleted),
            "insertedCount": u(self.inserted),
            "insertedIds": self.inserted_ids.clone(),
            "matchedCount": u(self.matched),
            "modifiedCount": u(self.modified),
            "upsertedCount": u(self.upserted),
            "upsertedIds": self.upserted_ids.clone(),
        }
    }

    /// Adds a batch's reply; returns its write errors with the caller's indexes.
    fn add(&mut self, kind: Kind, batch: &[Stmt], ordered: bool, r: &Document) -> Vec<Document> {
        let n = num(r, "n");
        let mut errs = vec![];
        for w in r.get_array("writeErrors").into_iter().flatten() {
            if let Some(w) = w.as_document() {
                let i = num(w, "index") as usize;
                let mut w = w.clone();
                w.insert(
                    "index",
                    batch.get(i).map(|s| s.index as i64).unwrap_or(i as i64),
                );
                errs.push(w);
            }
        }
        match kind {
            Kind::Insert => {
                self.inserted += n;
                let failed: Vec<i64> = errs.iter().map(|w| num(w, "index")).collect();
                let first_failed = failed.iter().min().copied();
                for s in batch {
                    let i = s.index as i64;
                    let done = if ordered {
                        first_failed.is_none_or(|f| i < f)
                    } else {
                        !failed.contains(&i)
                    };
                    if done && let Some(id) = &s.id {
                        self.inserted_ids.insert(s.index.to_string(), id.clone());
                    }
                }
            }
            Kind::Update => {
                let ups = r.get_array("upserted").cloned().unwrap_or_default();
                self.upserted += ups.len() as i64;
                self.matched += n - ups.len() as i64;
                self.modified += num(r, "nModified");
                for up in ups.iter().filter_map(Bson::as_document) {
                    let i = num(up, "index") as usize;
                    let idx = batch.get(i).map(|s| s.index).unwrap_or(i);
                    if let Some(id) = up.get("_id") {
                        self.upserted_ids.insert(idx.to_string(), id.clone());
                    }
                }
            }
            Kind::Delete => self.deleted += n,
        }
        errs
    }
}

/// The session an emulated write uses: the test's, or one the runner starts for this
/// operation (as the driver's implicit session), kept in the entities until the test ends.
async fn op_session(
    ctx: &mut Ctx<'_>,
    c: &Collection<Document>,
    s: Option<Arc<SessionEntity>>,
) -> Result<Arc<SessionEntity>, E> {
    if let Some(s) = s {
        return Ok(s);
    }
    let session = c.client().start_session().await?;
    let lsid = session.id().clone();
    let se = Arc::new(SessionEntity {
        session: tokio::sync::Mutex::new(session),
        lsid,
        // Not a test entity: no `endSession` names it, so no client log is waited on.
        client: String::new(),
    });
    let n = ctx.ents.map.len();
    ctx.ents.map.insert(
        format!("<runner session {n}>"),
        Entity::Session(Arc::clone(&se)),
    );
    Ok(se)
}

/// `maxWriteBatchSize`, `maxBsonObjectSize` and `maxWireVersion`, asked on the runner's own
/// client so that no extra command shows among the test's events.
async fn limits(ctx: &Ctx<'_>) -> (usize, usize, i64) {
    let h = ctx
        .internal
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .unwrap_or_default();
    let count = match num(&h, "maxWriteBatchSize") {
        0 => 100_000,
        n => n as usize,
    };
    let bytes = match num(&h, "maxBsonObjectSize") {
        0 => 16 * 1024 * 1024,
        n => n as usize,
    };
    (count, bytes, num(&h, "maxWireVersion"))
}

/// The collection `bulkWrite` (`requests`, `ordered`, `bypassDocumentValidation`, `let`,
/// `comment`), as the CRUD spec's Bulk API.
pub async fn bulk_write(
    ctx: &mut Ctx<'_>,
    c: &Collection<Document>,
    a: Document,
    s: Option<Arc<SessionEntity>>,
) -> Result<Res, E> {
    let requests = a
        .get_array("requests")
        .map_err(|_| bad("bulkWrite without requests"))?;
    if requests.is_empty() {
        return Err(client_error("bulkWrite requires at least one request"));
    }
    let stmts: Vec<Stmt> = requests
        .iter()
        .enumerate()
        .map(|(i, m)| statement(i, m))
        .collect::<Result<_, _>>()?;
    let (max_count, max_bytes, wire) = limits(ctx).await;
    let o = BulkOpts {
        ordered: a.get_bool("ordered").unwrap_or(true),
        bypass: a.get("bypassDocumentValidation").cloned(),
        let_: a.get("let").cloned(),
        comment: a.get("comment").cloned(),
        // rawData exists from 8.2 (wire version 27); older servers: the driver ignores it.
        raw_data: a.get("rawData").cloned().filter(|_| wire >= 27),
    };
    run_writes(ctx, c, stmts, o, s, max_count, max_bytes).await
}

/// Runs the batches. Outside a transaction a batch of retryable statements gets a `txnNumber`
/// and one retry. Known gaps: the client's `retryWrites=false` is not seen (the driver keeps
/// its options private; no spec test combines it with these operations), and after an
/// emulated write on a test's named session the driver's own counter for that session lags
/// (a later driver write on it could reuse a number; no spec test does that).
async fn run_writes(
    ctx: &mut Ctx<'_>,
    c: &Collection<Document>,
    stmts: Vec<Stmt>,
    o: BulkOpts,
    s: Option<Arc<SessionEntity>>,
    max_count: usize,
    max_bytes: usize,
) -> Result<Res, E> {
    let coll = c.name().to_string();
    let wc = write_concern(c);
    let batches = batches(stmts, o.ordered, max_count, max_bytes);
    // Unacknowledged (`w: 0`): a driver sends each command with `writeConcern: {w: 0}`, with
    // the OP_MSG `moreToCome` flag set (the server sends no reply) and without a session or
    // txnNumber. `run_command` cannot set that flag, waits for the reply and attaches its
    // implicit `lsid`; a real server applies the write the same way either way (the reply is
    // all that differs), and the result is the unacknowledged one.
    if unacknowledged(wc.as_ref()) && in_txn_of(s.as_deref()).await != Some(true) {
        if s.is_some() {
            return Err(client_error(
                "an unacknowledged write cannot use an explicit session",
            ));
        }
        for b in &batches {
            let cmd = command(&coll, b[0].kind, b, &o, wc.as_ref());
            send(c, None, cmd, false).await.map_err(|(e, _)| e)?;
        }
        return Ok(Res::Value(Bson::Document(doc! {"acknowledged": false})));
    }
    let se = op_session(ctx, c, s).await?;
    let mut g = se.session.lock().await;
    let txn = in_transaction(&g);
    let retry_writes = !txn;
    let mut totals = Totals::default();
    let mut write_errors = vec![];
    let mut wces = vec![];
    let mut labels = vec![];
    for b in &batches {
        let kind = b[0].kind;
        // In a transaction the driver adds txnNumber and the transaction fields, and the
        // collection's write concern does not apply.
        let mut cmd = command(&coll, kind, b, &o, if txn { None } else { wc.as_ref() });
        let retry = retry_writes && b.iter().all(|s| s.retryable);
        if retry {
            cmd.insert("txnNumber", next_txn_number(ctx.ents, &se.lsid));
        }
        let r = match send(c, Some(&mut g), cmd, retry).await {
            Ok(r) => r,
            Err((e, l)) => {
                labels.extend(l);
                return Err(failure(Some(e), labels, write_errors, wces, totals.doc()));
            }
        };
        let errs = totals.add(kind, b, o.ordered, &r);
        let stop = o.ordered && !errs.is_empty();
        write_errors.extend(errs);
        if let Ok(w) = r.get_document("writeConcernError") {
            wces.push(w.clone());
            labels.extend(reply_labels(&r));
        }
        if stop {
            break;
        }
    }
    if !write_errors.is_empty() || !wces.is_empty() {
        return Err(failure(None, labels, write_errors, wces, totals.doc()));
    }
    Ok(Res::Value(Bson::Document(totals.doc())))
}

async fn in_txn_of(s: Option<&SessionEntity>) -> Option<bool> {
    Some(in_transaction(&*s?.session.lock().await))
}

fn failure(
    cause: Option<DErr>,
    labels: Vec<String>,
    write_errors: Vec<Document>,
    write_concern_errors: Vec<Document>,
    partial: Document,
) -> E {
    E::Driver(DErr::custom(Failure {
        cause,
        labels,
        write_errors,
        write_concern_errors,
        partial,
    }))
}

/// A single-document write on a collection whose write concern is unacknowledged (`w: 0`),
/// outside a transaction: the command the driver would send, through the same path as
/// `bulkWrite`. Returns `None` when the driver itself can run the operation.
pub async fn single_write(
    ctx: &mut Ctx<'_>,
    c: &Collection<Document>,
    name: &str,
    a: &Document,
    s: &Option<Arc<SessionEntity>>,
) -> Option<Result<Res, E>> {
    if !unacknowledged(write_concern(c).as_ref()) || in_txn_of(s.as_deref()).await == Some(true) {
        return None;
    }
    let model = |kind: &str, keys: &[&str]| {
        let mut m = Document::new();
        for k in keys {
            if let Some(v) = a.get(*k) {
                m.insert(*k, v.clone());
            }
        }
        Bson::Document(doc! {kind: m})
    };
    const UPD: &[&str] = &[
        "filter",
        "update",
        "replacement",
        "upsert",
        "arrayFilters",
        "collation",
        "hint",
        "sort",
    ];
    let models: Vec<Bson> = match name {
        "insertOne" => vec![model("insertOne", &["document"])],
        "insertMany" => a
            .get_array("documents")
            .map(|v| {
                v.iter()
                    .map(|d| Bson::Document(doc! {"insertOne": {"document": d.clone()}}))
                    .collect()
            })
            .unwrap_or_default(),
        "updateOne" | "updateMany" | "replaceOne" => vec![model(name, UPD)],
        "deleteOne" | "deleteMany" => vec![model(name, &["filter", "collation", "hint"])],
        "findOneAndUpdate" | "findOneAndReplace" | "findOneAndDelete" => {
            return Some(find_and_modify(c, name, a, s.is_some()).await);
        }
        _ => return None,
    };
    let stmts: Result<Vec<Stmt>, E> = models
        .iter()
        .enumerate()
        .map(|(i, m)| statement(i, m))
        .collect();
    let stmts = match stmts {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    let o = BulkOpts {
        ordered: a.get_bool("ordered").unwrap_or(true),
        bypass: a.get("bypassDocumentValidation").cloned(),
        let_: a.get("let").cloned(),
        comment: a.get("comment").cloned(),
        raw_data: None,
    };
    let (max_count, max_bytes, _) = limits(ctx).await;
    Some(run_writes(ctx, c, stmts, o, s.clone(), max_count, max_bytes).await)
}

/// `findOneAndUpdate`/`Replace`/`Delete` with an unacknowledged write concern: the
/// `findAndModify` command the driver would send; the result is unknown (null).
async fn find_and_modify(
    c: &Collection<Document>,
    name: &str,
    a: &Document,
    explicit_session: bool,
) -> Result<Res, E> {
    if explicit_session {
        return Err(client_error(
            "an unacknowledged write cannot use an explicit session",
        ));
    }
    let mut cmd = doc! {"findAndModify": c.name()};
    cmd.insert(
        "query",
        a.get("filter").cloned().unwrap_or(Bson::Document(doc! {})),
    );
    if let Some(v) = a.get("sort") {
        cmd.insert("sort", v.clone());
    }
    match name {
        "findOneAndDelete" => {
            cmd.insert("remove", true);
        }
        "findOneAndUpdate" => {
            let u = a.get("update").ok_or_else(|| bad("no update"))?;
            check_update(u)?;
            cmd.insert("update", u.clone());
        }
        _ => {
            let r = a
                .get_document("replacement")
                .map_err(|_| bad("no replacement"))?;
            check_replacement(r)?;
            cmd.insert("update", r.clone());
        }
    }
    if let Some(Bson::String(rd)) = a.get("returnDocument") {
        cmd.insert("new", rd == "After");
    }
    if let Some(v) = a.get("projection") {
        cmd.insert("fields", v.clone());
    }
    for k in [
        "upsert",
        "bypassDocumentValidation",
        "arrayFilters",
        "collation",
        "hint",
        "let",
        "comment",
    ] {
        if let Some(v) = a.get(k) {
            cmd.insert(k, v.clone());
        }
    }
    if let Some(w) = write_concern(c) {
        cmd.insert("writeConcern", w);
    }
    send(c, None, cmd, false).await.map_err(|(e, _)| e)?;
    Ok(Res::Value(Bson::Null))
}

/// The legacy `count` command (`{count, query, skip, limit, collation, hint, comment}`),
/// which the driver no longer offers (it has `count_documents`, an aggregate).
pub async fn count(
    c: &Collection<Document>,
    a: Document,
    s: Option<Arc<SessionEntity>>,
) -> Result<Res, E> {
    let mut cmd = doc! {"count": c.name()};
    cmd.insert(
        "query",
        a.get("filter").cloned().unwrap_or(Bson::Document(doc! {})),
    );
    for k in ["skip", "limit", "collation", "hint", "comment", "maxTimeMS"] {
        if let Some(v) = a.get(k) {
            cmd.insert(k, v.clone());
        }
    }
    if let Some(rc) = c.read_concern()
        && let Ok(d) = bson::serialize_to_document(rc)
        && !d.is_empty()
    {
        cmd.insert("readConcern", d);
    }
    let db = c.client().database(&c.namespace().db);
    let r = match &s {
        Some(s) => {
            let mut g = s.session.lock().await;
            db.run_command(cmd).session(&mut *g).await?
        }
        None => db.run_command(cmd).await?,
    };
    Ok(Res::Value(u(num(&r, "n"))))
}

/// `insertMany` through the driver; on a write error, the partial result a driver reports
/// (the driver's `InsertManyError` keeps its inserted ids private): the documents before the
/// first error when ordered, every document without an error when unordered.
pub async fn insert_many(
    c: &Collection<Document>,
    docs: Vec<Document>,
    o: mongodb::options::InsertManyOptions,
    s: Option<crate::operations::Sess<'_>>,
) -> Result<Res, E> {
    let n = docs.len() as i64;
    let ordered = o.ordered.unwrap_or(true);
    let r = match s {
        Some(mut s) => {
            let mut g = s.get().await;
            c.insert_many(docs).with_options(o).session(&mut *g).await
        }
        None => c.insert_many(docs).with_options(o).await,
    };
    match r {
        Ok(r) => {
            let mut ids: Vec<_> = r.inserted_ids.into_iter().collect();
            ids.sort_by_key(|(i, _)| *i);
            let ids: Document = ids.into_iter().map(|(i, v)| (i.to_string(), v)).collect();
            Ok(Res::Value(Bson::Document(doc! {"insertedIds": ids})))
        }
        Err(e) => {
            let ErrorKind::InsertMany(m) = &*e.kind else {
                return Err(e.into());
            };
            let Some(we) = &m.write_errors else {
                return Err(e.into());
            };
            let inserted = if ordered {
                we.iter().map(|w| w.index as i64).min().unwrap_or(n)
            } else {
                n - we.len() as i64
            };
            let write_errors = we
                .iter()
                .map(|w| {
                    doc! {"index": w.index as i64, "code": w.code, "codeName": w.code_name.clone().unwrap_or_default(), "errmsg": w.message.clone()}
                })
                .collect();
            let wces = m
                .write_concern_error
                .iter()
                .map(|w| doc! {"code": w.code, "codeName": w.code_name.clone(), "errmsg": w.message.clone()})
                .collect();
            let partial = Totals {
                inserted,
                ..Totals::default()
            };
            let mut p = partial.doc();
            p.remove("insertedIds");
            Err(failure(None, vec![], write_errors, wces, p))
        }
    }
}

/// `expectError` against an emulated write's failure.
pub fn check_failure(f: &Failure, x: &Document, ents: Lookup) -> Result<(), String> {
    let mut labels: Vec<String> = f.labels.clone();
    if let Some(e) = &f.cause {
        labels.extend(e.labels().iter().cloned());
        let mut rest = x.clone();
        for k in [
            "expectResult",
            "writeErrors",
            "writeConcernErrors",
            "errorLabelsContain",
            "errorLabelsOmit",
        ] {
            rest.remove(k);
        }
        crate::operations::check_error(e, &rest, ents)?;
    } else {
        if x.get_bool("isClientError").unwrap_or(false) {
            return Err("a server write error, not a client error".into());
        }
        let first = f.write_errors.first().or(f.write_concern_errors.first());
        if let Some(want) = x.get("errorCode") {
            let got = first.map(|w| Bson::Int64(num(w, "code")));
            matches(got.as_ref(), want, false, ents).map_err(|m| format!("error code: {m}"))?;
        }
        if let Ok(want) = x.get_str("errorCodeName") {
            let got = first.and_then(|w| w.get_str("codeName").ok());
            if got != Some(want) {
                return Err(format!("code name {got:?}, expected {want}"));
            }
        }
        if let Ok(s) = x.get_str("errorContains") {
            let all: String = f
                .write_errors
                .iter()
                .chain(&f.write_concern_errors)
                .filter_map(|w| w.get_str("errmsg").ok())
                .collect::<Vec<_>>()
                .join("; ");
            if !all.to_lowercase().contains(&s.to_lowercase()) {
                return Err(format!("error does not contain {s:?} ({all})"));
            }
        }
        if x.get_bool("isTimeoutError").unwrap_or(false) {
            return Err("timeout errors unsupported".into());
        }
    }
    for l in x
        .get_array("errorLabelsContain")
        .into_iter()
        .flatten()
        .filter_map(Bson::as_str)
    {
        if !labels.iter().any(|x| x == l) {
            return Err(format!("labels {labels:?} lack {l}"));
        }
    }
    for l in x
        .get_array("errorLabelsOmit")
        .into_iter()
        .flatten()
        .filter_map(Bson::as_str)
    {
        if labels.iter().any(|x| x == l) {
            return Err(format!("labels {labels:?} contain {l}"));
        }
    }
    if let Some(want) = x.get("expectResult") {
        matches(Some(&Bson::Document(f.partial.clone())), want, true, ents)
            .map_err(|m| format!("partial result: {m}"))?;
    }
    if x.contains_key("writeErrors") || x.contains_key("writeConcernErrors") {
        return Err("writeErrors/writeConcernErrors belong to a client bulk write".into());
    }
    Ok(())
}

/// A driver error's message; an emulated failure's own parts (the driver's `Display` of a
/// custom error says only "Custom user error").
pub fn describe(e: &DErr) -> String {
    if let Some(f) = e.get_custom::<Failure>() {
        let cause = f.cause.as_ref().map(|c| c.kind.to_string());
        return format!(
            "bulk write failure: cause {cause:?}, write errors {:?}, write concern errors {:?}, labels {:?}, partial result {}",
            f.write_errors, f.write_concern_errors, f.labels, f.partial
        );
    }
    if let Some(c) = e.get_custom::<ClientSideError>() {
        return c.0.clone();
    }
    e.kind.to_string()
}

/// Checks of the parts no spec test reaches (batch splitting at `maxWriteBatchSize` and
/// `maxBsonObjectSize`) and of mapping a batch's indexes back to the caller's models.
pub fn selftest() -> Result<(), String> {
    let models = |spec: &str| -> Vec<Stmt> {
        spec.chars()
            .enumerate()
            .map(|(i, k)| {
                let m = match k {
                    'I' => doc! {"insertOne": {"document": {"_id": i as i32}}},
                    'U' => doc! {"updateOne": {"filter": {"_id": i as i32}, "update": {"$set": {"x": 1}}}},
                    'M' => doc! {"updateMany": {"filter": {}, "update": {"$set": {"x": 1}}}},
                    _ => doc! {"deleteMany": {"filter": {"_id": i as i32}}},
                };
                match statement(i, &Bson::Document(m)) {
                    Ok(s) => s,
                    Err(_) => panic!("bad model {k}"),
                }
            })
            .collect()
    };
    let shape = |b: &[Vec<Stmt>]| -> Vec<(Kind, Vec<usize>)> {
        b.iter()
            .map(|g| (g[0].kind, g.iter().map(|s| s.index).collect()))
            .collect()
    };
    let check = |what: &str, got: Vec<(Kind, Vec<usize>)>, want: Vec<(Kind, Vec<usize>)>| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: {got:?}, expected {want:?}"))
        }
    };
    use Kind::*;
    let big = usize::MAX / 2;
    check(
        "ordered runs",
        shape(&batches(models("IIUIDD"), true, 1000, big)),
        vec![
            (Insert, vec![0, 1]),
            (Update, vec![2]),
            (Insert, vec![3]),
            (Delete, vec![4, 5]),
        ],
    )?;
    check(
        "unordered groups",
        shape(&batches(models("IIUIDD"), false, 1000, big)),
        vec![
            (Insert, vec![0, 1, 3]),
            (Update, vec![2]),
            (Delete, vec![4, 5]),
        ],
    )?;
    check(
        "maxWriteBatchSize",
        shape(&batches(models("IIIII"), true, 2, big)),
        vec![
            (Insert, vec![0, 1]),
            (Insert, vec![2, 3]),
            (Insert, vec![4]),
        ],
    )?;
    let one = bson::serialize_to_vec(&models("I")[0].doc).map_err(|e| e.to_string())?;
    check(
        "maxBsonObjectSize",
        shape(&batches(models("III"), true, 1000, one.len() * 2)),
        vec![(Insert, vec![0, 1]), (Insert, vec![2])],
    )?;
    let stmts = models("M");
    if stmts[0].retryable || models("D")[0].retryable || !models("U")[0].retryable {
        return Err("multi-statement writes must not be retryable".into());
    }
    // An update batch holding the caller's models 2 and 5.
    let mut b = models("IIUIIU");
    b.retain(|s| s.kind == Update);
    let mut t = Totals::default();
    let errs = t.add(
        Update,
        &b,
        false,
        &doc! {"n": 2, "nModified": 1, "upserted": [{"index": 1, "_id": 7}],
        "writeErrors": [{"index": 0, "code": 11000, "errmsg": "dup"}]},
    );
    let want = doc! {"deletedCount": 0_i64, "insertedCount": 0_i64, "insertedIds": {},
    "matchedCount": 1_i64, "modifiedCount": 1_i64, "upsertedCount": 1_i64, "upsertedIds": {"5": 7}};
    if t.doc() != want || errs.len() != 1 || num(&errs[0], "index") != 2 {
        return Err(format!("update totals {} / {errs:?}", t.doc()));
    }
    // An ordered insert batch (models 0, 1, 2) whose model 1 failed: only model 0 inserted.
    let mut t = Totals::default();
    t.add(
        Insert,
        &models("III"),
        true,
        &doc! {"n": 1, "writeErrors": [{"index": 1, "code": 11000, "errmsg": "dup"}]},
    );
    if t.inserted_ids != doc! {"0": 0} || t.inserted != 1 {
        return Err(format!("ordered insert totals {}", t.doc()));
    }
    Ok(())
}
