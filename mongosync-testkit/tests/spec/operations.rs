//! Operations: each one goes through the driver's real API, and its result is converted to
//! the spec's shape before matching.

use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use mongodb::error::{Error as DErr, ErrorKind};
use mongodb::options::{
    AggregateOptions, ChangeStreamOptions, CountOptions, CreateCollectionOptions, DeleteOptions,
    DistinctOptions, DropCollectionOptions, EstimatedDocumentCountOptions, FindOneAndDeleteOptions,
    FindOneAndReplaceOptions, FindOneAndUpdateOptions, FindOptions, IndexOptions,
    InsertManyOptions, InsertOneOptions, ListCollectionsOptions, ReplaceOptions, SelectionCriteria,
    TransactionOptions, UpdateModifications, UpdateOptions,
};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};

use crate::Fail;
use crate::entities::{
    ClientEntity, Entities, Entity, Sent, SessionEntity, TailCursor, opts, rw_opts,
};
use crate::matching::{Lookup, match_doc, matches};

/// What an operation produced.
pub enum Res {
    Value(Bson),
    Nothing,
    Entity(Entity),
}

/// Runner failure or the driver's error (which the test may expect).
pub enum E {
    Driver(DErr),
    Fail(Fail),
}

impl From<DErr> for E {
    fn from(e: DErr) -> Self {
        E::Driver(e)
    }
}
impl From<Fail> for E {
    fn from(e: Fail) -> Self {
        E::Fail(e)
    }
}

fn fail(m: impl Into<String>) -> E {
    E::Fail(Fail::Failed(m.into()))
}
fn unsupported(m: impl Into<String>) -> E {
    E::Fail(Fail::Unsupported(m.into()))
}
fn driver_gap(m: impl Into<String>) -> E {
    E::Fail(Fail::DriverGap(m.into()))
}

pub struct Ctx<'a> {
    pub ents: &'a mut Entities,
    pub uri: &'a str,
    pub internal: &'a Client,
    /// Fail points to switch off after the test: (client, name).
    pub failpoints: &'a mut Vec<(Client, String)>,
    /// Inside a `withTransaction` callback: the session entity's id and the session the
    /// driver handed the callback (the entity's lock is held by `withTransaction`).
    pub callback: Option<(&'a str, &'a mut ClientSession)>,
}

/// The session an operation names: an entity's, locked for the operation, or the one a
/// `withTransaction` callback was handed.
pub enum Sess<'a> {
    Entity(Arc<SessionEntity>),
    Callback(&'a mut ClientSession),
}

pub enum SessGuard<'a> {
    Locked(tokio::sync::MutexGuard<'a, ClientSession>),
    Borrowed(&'a mut ClientSession),
}

impl std::ops::Deref for SessGuard<'_> {
    type Target = ClientSession;
    fn deref(&self) -> &ClientSession {
        match self {
            SessGuard::Locked(g) => g,
            SessGuard::Borrowed(b) => b,
        }
    }
}
impl std::ops::DerefMut for SessGuard<'_> {
    fn deref_mut(&mut self) -> &mut ClientSession {
        match self {
            SessGuard::Locked(g) => g,
            SessGuard::Borrowed(b) => b,
        }
    }
}

impl Sess<'_> {
    pub async fn get(&mut self) -> SessGuard<'_> {
        match self {
            Sess::Entity(e) => SessGuard::Locked(e.session.lock().await),
            Sess::Callback(b) => SessGuard::Borrowed(b),
        }
    }
    /// The entity, for code that locks it itself (`clientBulkWrite`).
    fn entity(self) -> Result<Arc<SessionEntity>, E> {
        match self {
            Sess::Entity(e) => Ok(e),
            Sess::Callback(_) => Err(unsupported("this operation inside withTransaction")),
        }
    }
}

fn take_doc(a: &mut Document, k: &str) -> Result<Document, E> {
    match a.remove(k) {
        Some(Bson::Document(d)) => Ok(d),
        Some(other) => Err(fail(format!("{k} is not a document: {other}"))),
        None => Err(fail(format!("missing {k}"))),
    }
}
fn take_doc_or_empty(a: &mut Document, k: &str) -> Result<Document, E> {
    if a.contains_key(k) {
        take_doc(a, k)
    } else {
        Ok(Document::new())
    }
}
fn take_docs(a: &mut Document, k: &str) -> Result<Vec<Document>, E> {
    match a.remove(k) {
        Some(Bson::Array(v)) => v
            .into_iter()
            .map(|x| match x {
                Bson::Document(d) => Ok(d),
                o => Err(fail(format!("{k} holds a non-document {o}"))),
            })
            .collect(),
        Some(o) => Err(fail(format!("{k} is not an array: {o}"))),
        None => Err(fail(format!("missing {k}"))),
    }
}
fn take_update(a: &mut Document) -> Result<UpdateModifications, E> {
    match a.remove("update") {
        Some(Bson::Document(d)) => Ok(UpdateModifications::Document(d)),
        Some(Bson::Array(v)) => Ok(UpdateModifications::Pipeline(
            v.into_iter()
                .filter_map(|x| x.as_document().cloned())
                .collect(),
        )),
        _ => Err(fail("missing update")),
    }
}
fn take_str(a: &mut Document, k: &str) -> Result<String, E> {
    match a.remove(k) {
        Some(Bson::String(s)) => Ok(s),
        _ => Err(fail(format!("missing {k}"))),
    }
}

/// The session entity `id`, or the callback's session when `id` names it.
fn session_of<'s>(
    ents: &Entities,
    callback: &'s mut Option<(&str, &mut ClientSession)>,
    id: &str,
) -> Result<Sess<'s>, E> {
    match callback {
        Some((cid, s)) if *cid == id => Ok(Sess::Callback(s)),
        _ => match ents.map.get(id) {
            Some(Entity::Session(s)) => Ok(Sess::Entity(Arc::clone(s))),
            // An ended session leaves its lsid behind as a value.
            Some(Entity::Value(_)) => Err(fail(format!("session {id} was ended"))),
            _ => Err(fail(format!("no session entity {id}"))),
        },
    }
}

/// Runs an action with or without the session argument.
macro_rules! sess {
    ($s:expr, $act:expr) => {
        match &mut $s {
            Some(s) => {
                let mut g = s.get().await;
                $act.session(&mut *g).await
            }
            None => $act.await,
        }
    };
}

/// Runs a cursor-returning action and collects every document.
macro_rules! collect {
    ($s:expr, $act:expr) => {
        match &mut $s {
            Some(s) => {
                let mut g = s.get().await;
                let mut c = $act.session(&mut *g).await?;
                let v: Vec<Document> = c.stream(&mut *g).try_collect().await?;
                v
            }
            None => {
                let c = $act.await?;
                let v: Vec<Document> = c.try_collect().await?;
                v
            }
        }
    };
}

fn docs(v: Vec<Document>) -> Res {
    Res::Value(Bson::Array(v.into_iter().map(Bson::Document).collect()))
}

fn u(n: u64) -> Bson {
    Bson::Int64(n as i64)
}

/// Turns an `UpdateResult` into the spec's shape.
fn update_result(r: mongodb::results::UpdateResult) -> Res {
    let mut d = doc! {
        "matchedCount": u(r.matched_count),
        "modifiedCount": u(r.modified_count),
        "upsertedCount": u(r.upserted_id.is_some() as u64),
    };
    if let Some(id) = r.upserted_id {
        d.insert("upsertedId", id);
    }
    Res::Value(Bson::Document(d))
}

pub async fn execute(ctx: &mut Ctx<'_>, op: &Document) -> Result<Res, E> {
    let name = op
        .get_str("name")
        .map_err(|_| fail("operation without name"))?;
    let object = op
        .get_str("object")
        .map_err(|_| fail("operation without object"))?;
    let a = op.get_document("arguments").cloned().unwrap_or_default();
    if object == "testRunner" {
        return test_runner(ctx, name, a).await;
    }
    if a.contains_key("timeoutMS") {
        return Err(unsupported("timeoutMS"));
    }
    if name == "withTransaction" {
        return with_transaction(ctx, object, a).await;
    }
    if name == "endSession" {
        return end_session(ctx, object).await;
    }
    // The callback's session is lent to this one operation and taken back after it.
    let mut callback = ctx.callback.take();
    let r = execute_on(ctx, &mut callback, name, object, a).await;
    ctx.callback = callback;
    r
}

async fn execute_on(
    ctx: &mut Ctx<'_>,
    callback: &mut Option<(&str, &mut ClientSession)>,
    name: &str,
    object: &str,
    mut a: Document,
) -> Result<Res, E> {
    let s = match a.remove("session") {
        Some(Bson::String(id)) => Some(session_of(ctx.ents, callback, &id)?),
        _ => None,
    };
    let target = ctx
        .ents
        .map
        .get(object)
        .ok_or_else(|| fail(format!("no entity {object}")))?;
    match target {
        Entity::Collection(c) => {
            let c = c.clone();
            collection_op(ctx, &c, name, a, s).await
        }
        Entity::Database(d) => {
            let d = d.clone();
            database_op(&d, name, a, s).await
        }
        Entity::Client(c) => {
            let c = c.client.clone();
            client_op(&c, name, a, s).await
        }
        Entity::Session(_) => {
            let mut se = session_of(ctx.ents, callback, object)?;
            let mut g = se.get().await;
            session_op(&mut g, name, a).await
        }
        Entity::Cursor(cur) if name == "close" => {
            let cur = Arc::clone(cur);
            // The driver kills a cursor that the server has not exhausted; its `has_next` is
            // the one public view of that (also true when the server is done but documents of
            // the last batch are left, hence a wait that may end without a killCursors).
            let open = cur.lock().await.has_next();
            let marks = sent_marks(ctx.ents);
            ctx.ents.map.remove(object);
            // The last reference: dropping it makes the driver kill the cursor from a task of
            // its own, which the test's events must see.
            drop(cur);
            if open {
                wait_sent(&marks, "killCursors", |_| true).await;
            }
            Ok(Res::Nothing)
        }
        Entity::Cursor(cur) => {
            let cur = Arc::clone(cur);
            let mut cur = cur.lock().await;
            match name {
                "iterateOnce" => {
                    // The unified format's iterateOnce sends at most one getMore. The driver's
                    // public `advance` repeats getMore until a document comes (its one-step
                    // `try_advance` is crate-private), so a second getMore started by this one
                    // call is the driver's gap, not the server's answer.
                    let marks = sent_marks(ctx.ents);
                    let second = wait_log(&marks, |v| {
                        v.iter()
                            .filter(|s| s.command.contains_key("getMore"))
                            .count()
                            >= 2
                    });
                    tokio::select! {
                        biased;
                        () = second => Err(driver_gap(
                            "the Rust driver's Cursor::advance sent a second getMore for one iterateOnce: its one-getMore step (try_advance) is not public",
                        )),
                        more = cur.advance() => {
                            if more? {
                                let d: Document = cur.deserialize_current()?;
                                Ok(Res::Value(Bson::Document(d)))
                            } else {
                                Ok(Res::Nothing)
                            }
                        }
                    }
                }
                "iterateUntilDocumentOrError" => {
                    if cur.advance().await? {
                        let d: Document = cur.deserialize_current()?;
                        Ok(Res::Value(Bson::Document(d)))
                    } else {
                        Err(fail("cursor exhausted"))
                    }
                }
                _ => Err(unsupported(format!("cursor op {name}"))),
            }
        }
        Entity::TailCursor(cur) => {
            let cur = Arc::clone(cur);
            let mut cur = cur.lock().await;
            match name {
                "iterateUntilDocumentOrError" | "iterateOnce" => loop {
                    if let Some(d) = cur.batch.pop_front() {
                        return Ok(Res::Value(Bson::Document(d)));
                    }
                    if cur.id == 0 {
                        return if name == "iterateOnce" {
                            Ok(Res::Nothing)
                        } else {
                            Err(fail("cursor exhausted"))
                        };
                    }
                    tail_get_more(&mut cur).await?;
                    if name == "iterateOnce" && cur.batch.is_empty() {
                        return Ok(Res::Nothing);
                    }
                },
                "close" => {
                    if cur.id != 0 {
                        // The driver refuses killCursors in a session (so does it send it).
                        let cmd = doc! {"killCursors": cur.coll.clone(), "cursors": [cur.id]};
                        cur.db.run_command(cmd).await?;
                    }
                    drop(cur);
                    ctx.ents.map.remove(object);
                    Ok(Res::Nothing)
                }
                _ => Err(unsupported(format!("cursor op {name}"))),
            }
        }
        Entity::ChangeStream(cs) => {
            let cs = Arc::clone(cs);
            let mut cs = cs.lock().await;
            match name {
                "iterateUntilDocumentOrError" => loop {
                    if let Some(d) = cs.next_if_any().await? {
                        return Ok(Res::Value(Bson::Document(d)));
                    }
                },
                "iterateOnce" => match cs.next_if_any().await? {
                    Some(d) => Ok(Res::Value(Bson::Document(d))),
                    None => Ok(Res::Nothing),
                },
                "close" => {
                    drop(cs);
                    ctx.ents.map.remove(object);
                    Ok(Res::Nothing)
                }
                _ => Err(unsupported(format!("change stream op {name}"))),
            }
        }
        Entity::Value(_) => Err(fail(format!("{object} is a value"))),
    }
}

fn selection(a: &mut Document) -> Result<Option<SelectionCriteria>, E> {
    match a.remove("readPreference") {
        Some(Bson::Document(d)) => Ok(Some(
            bson::deserialize_from_document(d).map_err(|e| fail(format!("readPreference: {e}")))?,
        )),
        _ => Ok(None),
    }
}

async fn collection_op(
    ctx: &mut Ctx<'_>,
    c: &Collection<Document>,
    name: &str,
    mut a: Document,
    mut s: Option<Sess<'_>>,
) -> Result<Res, E> {
    let a = &mut a;
    // Inside withTransaction's callback the driver runs every operation (no w: 0 there).
    if let None | Some(Sess::Entity(_)) = &s {
        let entity = match &s {
            Some(Sess::Entity(e)) => Some(Arc::clone(e)),
            _ => None,
        };
        if let Some(r) = crate::crud_emulated::single_write(ctx, c, name, a, &entity).await {
            return r;
        }
    }
    Ok(match name {
        "insertOne" => {
            let d = take_doc(a, "document")?;
            let o: InsertOneOptions = opts(&rw_opts(a))?;
            let r = sess!(s, c.insert_one(d).with_options(o))?;
            Res::Value(Bson::Document(doc! {"insertedId": r.inserted_id}))
        }
        "insertMany" => {
            let d = take_docs(a, "documents")?;
            let o: InsertManyOptions = opts(&rw_opts(a))?;
            return crate::crud_emulated::insert_many(c, d, o, s).await;
        }
        "bulkWrite" => {
            let s = s.map(Sess::entity).transpose()?;
            return crate::crud_emulated::bulk_write(ctx, c, a.clone(), s).await;
        }
        "count" => {
            let s = s.map(Sess::entity).transpose()?;
            return crate::crud_emulated::count(c, a.clone(), s).await;
        }
        "updateOne" | "updateMany" => {
            let f = take_doc(a, "filter")?;
            let up = take_update(a)?;
            let o: UpdateOptions = opts(&rw_opts(a))?;
            let r = if name == "updateOne" {
                sess!(s, c.update_one(f, up).with_options(o))?
            } else {
                sess!(s, c.update_many(f, up).with_options(o))?
            };
            update_result(r)
        }
        "replaceOne" => {
            let f = take_doc(a, "filter")?;
            let r = take_doc(a, "replacement")?;
            let o: ReplaceOptions = opts(&rw_opts(a))?;
            update_result(sess!(s, c.replace_one(f, r).with_options(o))?)
        }
        "deleteOne" | "deleteMany" => {
            let f = take_doc(a, "filter")?;
            let o: DeleteOptions = opts(&rw_opts(a))?;
            let r = if name == "deleteOne" {
                sess!(s, c.delete_one(f).with_options(o))?
            } else {
                sess!(s, c.delete_many(f).with_options(o))?
            };
            Res::Value(Bson::Document(doc! {"deletedCount": u(r.deleted_count)}))
        }
        "find" => {
            let f = take_doc_or_empty(a, "filter")?;
            let o: FindOptions = opts(&rw_opts(a))?;
            docs(collect!(s, c.find(f).with_options(o)))
        }
        "findOne" => {
            let f = take_doc_or_empty(a, "filter")?;
            let o: mongodb::options::FindOneOptions = opts(&rw_opts(a))?;
            match sess!(s, c.find_one(f).with_options(o))? {
                Some(d) => Res::Value(Bson::Document(d)),
                None => Res::Value(Bson::Null),
            }
        }
        "createFindCursor" => {
            if s.is_some() {
                return Err(unsupported("createFindCursor with a session"));
            }
            let f = take_doc_or_empty(a, "filter")?;
            let o: FindOptions = opts(&rw_opts(a))?;
            let cur = c.find(f).with_options(o).await?;
            Res::Entity(Entity::Cursor(Arc::new(tokio::sync::Mutex::new(cur))))
        }
        "aggregate" => {
            let p = take_docs(a, "pipeline")?;
            let o: AggregateOptions = opts(&rw_opts(a))?;
            docs(collect!(s, c.aggregate(p).with_options(o)))
        }
        "countDocuments" => {
            let f = take_doc(a, "filter")?;
            let o: CountOptions = opts(&rw_opts(a))?;
            Res::Value(u(sess!(s, c.count_documents(f).with_options(o))?))
        }
        "estimatedDocumentCount" => {
            let o: EstimatedDocumentCountOptions = opts(&rw_opts(a))?;
            let _ = s;
            Res::Value(u(c.estimated_document_count().with_options(o).await?))
        }
        "distinct" => {
            let field = take_str(a, "fieldName")?;
            let f = take_doc(a, "filter")?;
            let o: DistinctOptions = opts(&rw_opts(a))?;
            Res::Value(Bson::Array(sess!(s, c.distinct(field, f).with_options(o))?))
        }
        "findOneAndUpdate" | "findOneAndReplace" | "findOneAndDelete" => {
            let f = take_doc(a, "filter")?;
            let r = match name {
                "findOneAndUpdate" => {
                    let up = take_update(a)?;
                    let o: FindOneAndUpdateOptions = opts(&rw_opts(a))?;
                    sess!(s, c.find_one_and_update(f, up).with_options(o))?
                }
                "findOneAndReplace" => {
                    let r = take_doc(a, "replacement")?;
                    let o: FindOneAndReplaceOptions = opts(&rw_opts(a))?;
                    sess!(s, c.find_one_and_replace(f, r).with_options(o))?
                }
                _ => {
                    let o: FindOneAndDeleteOptions = opts(&rw_opts(a))?;
                    sess!(s, c.find_one_and_delete(f).with_options(o))?
                }
            };
            Res::Value(r.map(Bson::Document).unwrap_or(Bson::Null))
        }
        "createIndex" => {
            let keys = take_doc(a, "keys")?;
            let o: IndexOptions = opts(a)?;
            let m = IndexModel::builder().keys(keys).options(o).build();
            let r = sess!(s, c.create_index(m))?;
            Res::Value(Bson::String(r.index_name))
        }
        "listIndexes" => match &mut s {
            Some(se) => {
                let mut g = se.get().await;
                let mut cur = c
                    .list_indexes()
                    .session(&mut *g)
                    .await?
                    .with_type::<Document>();
                docs(cur.stream(&mut g).try_collect().await?)
            }
            None => {
                let cur = c.list_indexes().await?.with_type::<Document>();
                docs(cur.try_collect().await?)
            }
        },
        "listIndexNames" => {
            let v = sess!(s, c.list_index_names())?;
            Res::Value(Bson::Array(v.into_iter().map(Bson::String).collect()))
        }
        "dropIndex" => {
            let n = take_str(a, "name")?;
            sess!(s, c.drop_index(n))?;
            Res::Nothing
        }
        "dropIndexes" => {
            sess!(s, c.drop_indexes())?;
            Res::Nothing
        }
        "drop" => {
            let o: DropCollectionOptions = opts(&rw_opts(a))?;
            sess!(s, c.drop().with_options(o))?;
            Res::Nothing
        }
        "rename" => {
            // The Rust driver has no rename helper: the command it would send.
            let to = take_str(a, "to")?;
            let ns = c.namespace();
            let mut cmd =
                doc! {"renameCollection": ns.to_string(), "to": format!("{}.{}", ns.db, to)};
            if let Some(dt) = a.remove("dropTarget") {
                cmd.insert("dropTarget", dt);
            }
            let admin = c.client().database("admin");
            sess!(s, admin.run_command(cmd))?;
            Res::Nothing
        }
        "createChangeStream" => {
            if s.is_some() {
                return Err(unsupported("change stream with a session"));
            }
            let p = if a.contains_key("pipeline") {
                take_docs(a, "pipeline")?
            } else {
                vec![]
            };
            let o: ChangeStreamOptions = opts(a)?;
            let comment = o.comment.is_some();
            let cs = c
                .watch()
                .pipeline(p)
                .with_options(o)
                .await
                .map_err(|e| comment_gap(e, comment))?
                .with_type::<Document>();
            Res::Entity(Entity::ChangeStream(Arc::new(tokio::sync::Mutex::new(cs))))
        }
        "createSearchIndex" => {
            let m: mongodb::SearchIndexModel = opts(&take_doc(a, "model")?)?;
            Res::Value(Bson::String(c.create_search_index(m).await?))
        }
        "createSearchIndexes" => {
            let ms = take_docs(a, "models")?;
            let ms: Vec<mongodb::SearchIndexModel> =
                ms.iter().map(opts).collect::<Result<_, _>>()?;
            let v = c.create_search_indexes(ms).await?;
            Res::Value(Bson::Array(v.into_iter().map(Bson::String).collect()))
        }
        "dropSearchIndex" => {
            c.drop_search_index(take_str(a, "name")?).await?;
            Res::Nothing
        }
        "updateSearchIndex" => {
            let n = take_str(a, "name")?;
            let d = take_doc(a, "definition")?;
            c.update_search_index(n, d).await?;
            Res::Nothing
        }
        "listSearchIndexes" => {
            let mut act = c.list_search_indexes();
            if let Ok(n) = a.get_str("name") {
                act = act.name(n);
            }
            if let Ok(o) = a.get_document("aggregationOptions") {
                let o: AggregateOptions = opts(o)?;
                act = act.aggregate_options(o);
            }
            let cur = act.await?;
            docs(cur.try_collect().await?)
        }
        _ => {
            let _ = ctx;
            return Err(unsupported(format!("collection op {name}")));
        }
    })
}

async fn database_op(
    d: &Database,
    name: &str,
    mut a: Document,
    mut s: Option<Sess<'_>>,
) -> Result<Res, E> {
    let a = &mut a;
    Ok(match name {
        "runCommand" => {
            let cmd = take_doc(a, "command")?;
            let sc = selection(a)?;
            let r = match sc {
                Some(sc) => sess!(s, d.run_command(cmd).selection_criteria(sc))?,
                None => sess!(s, d.run_command(cmd))?,
            };
            Res::Value(Bson::Document(r))
        }
        "runCursorCommand" | "createCommandCursor" => {
            let cmd = take_doc(a, "command")?;
            a.remove("commandName");
            if name == "createCommandCursor"
                && matches!(a.get_str("cursorType"), Ok("tailable" | "tailableAwait"))
            {
                return open_tail_cursor(d, cmd, a).await;
            }
            let o: mongodb::options::RunCursorCommandOptions = opts(&rw_opts(a))?;
            if let Some(se) = &mut s {
                if name == "createCommandCursor" {
                    return Err(unsupported("createCommandCursor with a session"));
                }
                let mut g = se.get().await;
                let mut cur = d
                    .run_cursor_command(cmd)
                    .with_options(o)
                    .session(&mut *g)
                    .await?;
                let v: Vec<Document> = cur.stream(&mut g).try_collect().await?;
                return Ok(docs(v));
            }
            let cur = d.run_cursor_command(cmd).with_options(o).await?;
            if name == "runCursorCommand" {
                docs(cur.try_collect().await?)
            } else {
                Res::Entity(Entity::Cursor(Arc::new(tokio::sync::Mutex::new(cur))))
            }
        }
        "aggregate" => {
            let p = take_docs(a, "pipeline")?;
            let o: AggregateOptions = opts(&rw_opts(a))?;
            docs(collect!(s, d.aggregate(p).with_options(o)))
        }
        "createCollection" => {
            let n = take_str(a, "collection")?;
            let o: CreateCollectionOptions = opts(&rw_opts(a))?;
            sess!(s, d.create_collection(&n).with_options(o))?;
            Res::Entity(Entity::Collection(d.collection(&n)))
        }
        "dropCollection" => {
            let n = take_str(a, "collection")?;
            let o: DropCollectionOptions = opts(&rw_opts(a))?;
            let c = d.collection::<Document>(&n);
            sess!(s, c.drop().with_options(o))?;
            Res::Nothing
        }
        "listCollections" => {
            let f = take_doc_or_empty(a, "filter")?;
            let o: ListCollectionsOptions = opts(a)?;
            let v: Vec<Document> = match &mut s {
                Some(se) => {
                    let mut g = se.get().await;
                    let mut c = d
                        .list_collections()
                        .with_options(o)
                        .filter(f)
                        .session(&mut *g)
                        .await?;
                    let v: Vec<mongodb::results::CollectionSpecification> =
                        c.stream(&mut g).try_collect().await?;
                    v.iter()
                        .filter_map(|x| bson::serialize_to_document(x).ok())
                        .collect()
                }
                None => {
                    let c = d.list_collections().with_options(o).filter(f).await?;
                    c.with_type::<Document>().try_collect().await?
                }
            };
            docs(v)
        }
        "listCollectionNames" => {
            let f = take_doc_or_empty(a, "filter")?;
            let v = sess!(s, d.list_collection_names().filter(f))?;
            Res::Value(Bson::Array(v.into_iter().map(Bson::String).collect()))
        }
        "createChangeStream" => {
            if s.is_some() {
                return Err(unsupported("change stream with a session"));
            }
            let p = if a.contains_key("pipeline") {
                take_docs(a, "pipeline")?
            } else {
                vec![]
            };
            let o: ChangeStreamOptions = opts(a)?;
            let comment = o.comment.is_some();
            let cs = d
                .watch()
                .pipeline(p)
                .with_options(o)
                .await
                .map_err(|e| comment_gap(e, comment))?
                .with_type::<Document>();
            Res::Entity(Entity::ChangeStream(Arc::new(tokio::sync::Mutex::new(cs))))
        }
        "modifyCollection" => {
            // The Rust driver has no collMod helper: the command it would send.
            let n = take_str(a, "collection")?;
            let mut cmd = doc! {"collMod": n};
            cmd.extend(a.clone());
            Res::Value(Bson::Document(sess!(s, d.run_command(cmd))?))
        }
        "drop" => {
            sess!(s, d.drop())?;
            Res::Nothing
        }
        _ => return Err(unsupported(format!("database op {name}"))),
    })
}

async fn client_op(
    c: &Client,
    name: &str,
    mut a: Document,
    mut s: Option<Sess<'_>>,
) -> Result<Res, E> {
    let a = &mut a;
    Ok(match name {
        "listDatabases" => {
            let f = take_doc_or_empty(a, "filter")?;
            let v = sess!(s, c.list_databases().filter(f))?;
            docs(
                v.iter()
                    .filter_map(|x| bson::serialize_to_document(x).ok())
                    .collect(),
            )
        }
        "listDatabaseNames" => {
            let f = take_doc_or_empty(a, "filter")?;
            let v = sess!(s, c.list_database_names().filter(f))?;
            Res::Value(Bson::Array(v.into_iter().map(Bson::String).collect()))
        }
        "createChangeStream" => {
            if s.is_some() {
                return Err(unsupported("change stream with a session"));
            }
            let p = if a.contains_key("pipeline") {
                take_docs(a, "pipeline")?
            } else {
                vec![]
            };
            let o: ChangeStreamOptions = opts(a)?;
            let comment = o.comment.is_some();
            let cs = c
                .watch()
                .pipeline(p)
                .with_options(o)
                .await
                .map_err(|e| comment_gap(e, comment))?
                .with_type::<Document>();
            Res::Entity(Entity::ChangeStream(Arc::new(tokio::sync::Mutex::new(cs))))
        }
        "clientBulkWrite" => {
            let s = s.map(Sess::entity).transpose()?;
            return crate::bulk::client_bulk_write(c, a.clone(), s).await;
        }
        _ => return Err(unsupported(format!("client op {name}"))),
    })
}

/// The Rust driver copies a change stream's `comment` into the `$changeStream` stage as well
/// as the aggregate command; a server refuses it there (40415, as 8.x does: its
/// `$changeStream` spec has no `comment` field).
fn comment_gap(e: DErr, comment: bool) -> E {
    match &*e.kind {
        ErrorKind::Command(c) if comment && c.code == 40415 && c.message.contains("comment") => {
            driver_gap(format!(
                "the Rust driver puts `comment` inside the $changeStream stage, which a server refuses: {}",
                c.message
            ))
        }
        _ => E::Driver(e),
    }
}

/// `withTransaction`: the driver's convenient transaction API (`and_run2`) runs the callback's
/// operations, retrying and committing as the driver decides. Operations naming the session
/// use the one the driver hands the callback; an error of the callback's operations goes back
/// to the driver even when the test expected it (the unified format's rule).
async fn with_transaction(ctx: &mut Ctx<'_>, object: &str, mut a: Document) -> Result<Res, E> {
    if ctx.callback.is_some() {
        return Err(unsupported("withTransaction inside withTransaction"));
    }
    let ops: Vec<Document> = take_docs(&mut a, "callback")?;
    let o: TransactionOptions = opts(&rw_opts(&a))?;
    let se = ctx.ents.session(object)?;
    let mut g = se.session.lock().await;
    let mut failed: Option<Fail> = None;
    let (ents, uri, internal, failpoints) =
        (&mut *ctx.ents, ctx.uri, ctx.internal, &mut *ctx.failpoints);
    let r = g
        .start_transaction()
        .with_options(o)
        .and_run2(async |session: &mut ClientSession| {
            let mut inner = Ctx {
                ents: &mut *ents,
                uri,
                internal,
                failpoints: &mut *failpoints,
                callback: Some((object, session)),
            };
            for (i, op) in ops.iter().enumerate() {
                // Boxed: an operation may itself be a withTransaction (refused above).
                let r: std::pin::Pin<Box<dyn std::future::Future<Output = _> + '_>> =
                    Box::pin(crate::run_op(&mut inner, i, op));
                match r.await {
                    Ok(None) => {}
                    Ok(Some(e)) => return Err(e),
                    Err(f) => {
                        failed = Some(f);
                        return Err(DErr::custom("the runner failed inside the callback"));
                    }
                }
            }
            Ok(())
        })
        .await;
    if let Some(f) = failed {
        return Err(E::Fail(f));
    }
    r?;
    Ok(Res::Nothing)
}

/// `endSession`: the session is dropped, which is how the Rust driver ends one (the entity
/// keeps its lsid for `$$sessionLsid`). A transaction in progress is then aborted by the
/// driver from a task of its own: wait (bounded) for that abortTransaction to finish, so that
/// the test's events and outcome see it.
async fn end_session(ctx: &mut Ctx<'_>, object: &str) -> Result<Res, E> {
    if ctx.callback.as_ref().is_some_and(|(id, _)| *id == object) {
        return Err(unsupported("endSession inside withTransaction"));
    }
    let se = ctx.ents.session(object)?;
    let client = ctx.ents.client(&se.client)?;
    let state = transaction_state(&*se.session.lock().await)?;
    ctx.ents.map.insert(
        object.to_string(),
        Entity::Value(Bson::Document(se.lsid.clone())),
    );
    let lsid = Bson::Document(se.lsid.clone());
    let marks = vec![(Arc::clone(&client), client.sent.borrow().len())];
    let Ok(se) = Arc::try_unwrap(se) else {
        return Err(fail(format!("session {object} is still in use")));
    };
    drop(se);
    if state == "in_progress"
        && !wait_sent(&marks, "abortTransaction", |c| c.get("lsid") == Some(&lsid)).await
    {
        return Err(fail(
            "endSession: the driver sent no abortTransaction within 10 s",
        ));
    }
    Ok(Res::Nothing)
}

/// How many commands each client entity has sent so far.
fn sent_marks(ents: &Entities) -> Vec<(Arc<ClientEntity>, usize)> {
    ents.map
        .values()
        .filter_map(|e| match e {
            Entity::Client(c) => Some((Arc::clone(c), c.sent.borrow().len())),
            _ => None,
        })
        .collect()
}

/// Waits until the commands one of the clients sent after its mark pass `test`.
async fn wait_log(marks: &[(Arc<ClientEntity>, usize)], test: impl Fn(&[Sent]) -> bool + Copy) {
    let waits = marks.iter().map(|(c, from)| {
        let mut rx = c.sent.subscribe();
        Box::pin(async move {
            rx.wait_for(|v| test(v.get(*from..).unwrap_or_default()))
                .await
                .map(|_| ())
        })
    });
    if futures::future::select_ok(waits).await.is_err() {
        // Every client is gone: nothing more will come.
        futures::future::pending::<()>().await;
    }
}

/// Waits (bounded) until one of the clients has sent, after its mark, a command `what` that
/// `pred` accepts, and has its reply: a command the driver sends from a task of its own when
/// a handle is dropped. False when none came within 10 s.
async fn wait_sent(
    marks: &[(Arc<ClientEntity>, usize)],
    what: &str,
    pred: impl Fn(&Document) -> bool + Copy,
) -> bool {
    let came = wait_log(marks, |v| {
        v.iter()
            .any(|s| s.done && s.command.contains_key(what) && pred(&s.command))
    });
    tokio::time::timeout(Duration::from_secs(10), came)
        .await
        .is_ok()
}

/// The session's transaction state as the unified format names it. The driver keeps it
/// `pub(crate)`; its `Debug` output is the one public view of it (mongodb 3.9.1 prints
/// `transaction: Transaction { state: InProgress, .. }`).
pub fn transaction_state(s: &ClientSession) -> Result<&'static str, E> {
    let dbg = format!("{s:?}");
    let v = debug_value(&dbg, "transaction: Transaction { state: ")?;
    Ok(match v {
        "None" => "none",
        "Starting" => "starting",
        "InProgress" => "in_progress",
        "Committed" => "committed",
        "Aborted" => "aborted",
        other => {
            return Err(driver_gap(format!(
                "the Rust driver shows an unknown transaction state {other}"
            )));
        }
    })
}

/// Whether the driver marked the session dirty (a network error while in use), read from the
/// `Debug` output as `transaction_state` is: `ServerSession::dirty` is `pub(crate)`.
fn is_dirty(s: &ClientSession) -> Result<bool, E> {
    let dbg = format!("{s:?}");
    let start = dbg.find("server_session: ServerSession {").ok_or_else(|| {
        driver_gap("the Rust driver's session Debug output no longer shows server_session")
    })?;
    match debug_value(&dbg[start..], "dirty: ")? {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(driver_gap(format!("the Rust driver shows dirty: {other}"))),
    }
}

/// The identifier after `anchor` in a `Debug` string (never printed: it holds the client's
/// options).
fn debug_value<'d>(dbg: &'d str, anchor: &str) -> Result<&'d str, E> {
    let at = dbg.find(anchor).ok_or_else(|| {
        driver_gap(format!(
            "the Rust driver's session Debug output no longer shows {anchor:?}"
        ))
    })? + anchor.len();
    let rest = &dbg[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(rest.len());
    Ok(&rest[..end])
}

async fn session_op(g: &mut ClientSession, name: &str, a: Document) -> Result<Res, E> {
    match name {
        "startTransaction" => {
            let o: TransactionOptions = opts(&rw_opts(&a))?;
            g.start_transaction().with_options(o).await?;
        }
        "commitTransaction" => g.commit_transaction().await?,
        "abortTransaction" => g.abort_transaction().await?,
        "getSnapshotTime" => {
            return Ok(match g.snapshot_time() {
                Some(t) => Res::Value(Bson::Timestamp(t)),
                None => Res::Value(Bson::Null),
            });
        }
        _ => return Err(unsupported(format!("session op {name}"))),
    }
    Ok(Res::Nothing)
}

async fn test_runner(ctx: &mut Ctx<'_>, name: &str, a: Document) -> Result<Res, E> {
    match name {
        "failPoint" => {
            let cid = a
                .get_str("client")
                .map_err(|_| fail("failPoint without client"))?;
            let fp = a
                .get_document("failPoint")
                .map_err(|_| fail("failPoint without failPoint"))?;
            let c = ctx.ents.client(cid)?.client.clone();
            c.database("admin").run_command(fp.clone()).await?;
            let n = fp
                .get_str("configureFailPoint")
                .unwrap_or_default()
                .to_string();
            ctx.failpoints.push((c, n));
        }
        "assertCollectionExists" | "assertCollectionNotExists" => {
            let db = a.get_str("databaseName").unwrap_or_default();
            let coll = a.get_str("collectionName").unwrap_or_default();
            let names = ctx.internal.database(db).list_collection_names().await?;
            let exists = names.iter().any(|n| n == coll);
            if exists != (name == "assertCollectionExists") {
                return Err(fail(format!("{name} {db}.{coll}: exists={exists}")));
            }
        }
        "assertIndexExists" | "assertIndexNotExists" => {
            let db = a.get_str("databaseName").unwrap_or_default();
            let coll = a.get_str("collectionName").unwrap_or_default();
            let idx = a.get_str("indexName").unwrap_or_default();
            let c = ctx.internal.database(db).collection::<Document>(coll);
            let names = match c.list_index_names().await {
                Ok(n) => n,
                // A missing collection has no index.
                Err(e) if matches!(*e.kind, ErrorKind::Command(ref ce) if ce.code == 26) => vec![],
                Err(e) => return Err(e.into()),
            };
            let exists = names.iter().any(|n| n == idx);
            if exists != (name == "assertIndexExists") {
                return Err(fail(format!("{name} {db}.{coll} {idx}: exists={exists}")));
            }
        }
        "createEntities" => {
            let list = a
                .get_array("entities")
                .map_err(|_| fail("no entities"))?
                .clone();
            ctx.ents.create(&list, ctx.uri).await?;
        }
        "assertSessionTransactionState" | "assertSessionDirty" | "assertSessionNotDirty" => {
            let id = a
                .get_str("session")
                .map_err(|_| fail(format!("{name} without session")))?;
            let mut callback = ctx.callback.take();
            let r = async {
                let mut se = session_of(ctx.ents, &mut callback, id)?;
                let g = se.get().await;
                if name == "assertSessionTransactionState" {
                    let want = a.get_str("state").unwrap_or_default();
                    let got = transaction_state(&g)?;
                    if got != want {
                        return Err(fail(format!("{name}: state {got}, expected {want}")));
                    }
                } else if is_dirty(&g)? != (name == "assertSessionDirty") {
                    return Err(fail(format!("{name}: the session is not so")));
                }
                Ok(())
            }
            .await;
            ctx.callback = callback;
            r?;
        }
        "assertSessionUnpinned" => {}
        "assertSessionPinned" => return Err(fail("a replica set session is never pinned")),
        "wait" => {
            let ms = a
                .get_i64("ms")
                .or_else(|_| a.get_i32("ms").map(i64::from))
                .unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        }
        "assertSameLsidOnLastTwoCommands" | "assertDifferentLsidOnLastTwoCommands" => {
            let cid = a.get_str("client").unwrap_or_default();
            let c = ctx.ents.client(cid)?;
            let ev = c.sent.borrow().clone();
            if ev.len() < 2 {
                return Err(fail("fewer than two commands"));
            }
            let l1 = ev[ev.len() - 2].command.get("lsid").cloned();
            let l2 = ev[ev.len() - 1].command.get("lsid").cloned();
            let same = l1.is_some() && l1 == l2;
            if same != (name == "assertSameLsidOnLastTwoCommands") {
                return Err(fail(format!("{name}: {l1:?} vs {l2:?}")));
            }
        }
        "assertNumberConnectionsCheckedOut" => {}
        _ => return Err(unsupported(format!("testRunner op {name}"))),
    }
    Ok(Res::Nothing)
}

/// The code of a driver error, when the server gave one.
fn code(e: &DErr) -> Option<(i32, String)> {
    match &*e.kind {
        ErrorKind::Command(c) => Some((c.code, c.code_name.clone())),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            Some((w.code, w.code_name.clone().unwrap_or_default()))
        }
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(w)) => {
            Some((w.code, w.code_name.clone()))
        }
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| (w.code, w.code_name.clone().unwrap_or_default()))
            .or_else(|| {
                m.write_concern_error
                    .as_ref()
                    .map(|w| (w.code, w.code_name.clone()))
            }),
        _ => None,
    }
}

fn is_client_error(e: &DErr) -> bool {
    !matches!(
        &*e.kind,
        ErrorKind::Command(_)
            | ErrorKind::Write(_)
            | ErrorKind::InsertMany(_)
            | ErrorKind::BulkWrite(_)
    )
}

/// Checks a driver error against `expectError`.
pub fn check_error(e: &DErr, x: &Document, ents: Lookup) -> Result<(), String> {
    if let Some(f) = e.get_custom::<crate::crud_emulated::Failure>() {
        return crate::crud_emulated::check_failure(f, x, ents);
    }
    let msg = crate::crud_emulated::describe(e);
    let ctx = || format!(" (error: {})", short(&msg));
    if let Ok(b) = x.get_bool("isClientError")
        && b != is_client_error(e)
    {
        return Err(format!("isClientError {b} failed{}", ctx()));
    }
    if let Ok(b) = x.get_bool("isTimeoutError")
        && b
    {
        return Err("timeout errors unsupported".into());
    }
    if let Ok(s) = x.get_str("errorContains")
        && !msg.to_lowercase().contains(&s.to_lowercase())
    {
        return Err(format!("error does not contain {s:?}{}", ctx()));
    }
    if let Some(want) = x.get("errorCode") {
        let got = code(e).map(|c| c.0);
        if got
            .map(Bson::Int32)
            .is_none_or(|g| matches(Some(&g), want, false, ents).is_err())
        {
            return Err(format!("error code {got:?}, expected {want}{}", ctx()));
        }
    }
    if let Ok(want) = x.get_str("errorCodeName") {
        let got = code(e).map(|c| c.1);
        if got.as_deref() != Some(want) {
            return Err(format!("code name {got:?}, expected {want}{}", ctx()));
        }
    }
    if let Ok(l) = x.get_array("errorLabelsContain") {
        for l in l.iter().filter_map(Bson::as_str) {
            if !e.contains_label(l) {
                return Err(format!("labels {:?} lack {l}{}", e.labels(), ctx()));
            }
        }
    }
    if let Ok(l) = x.get_array("errorLabelsOmit") {
        for l in l.iter().filter_map(Bson::as_str) {
            if e.contains_label(l) {
                return Err(format!("labels {:?} contain {l}{}", e.labels(), ctx()));
            }
        }
    }
    if let Ok(r) = x.get_document("errorResponse") {
        let resp = e
            .server_response()
            .and_then(|r| Document::try_from(r.as_ref()).ok())
            .ok_or_else(|| format!("no server response{}", ctx()))?;
        match_doc(&resp, r, true, ents).map_err(|m| format!("errorResponse: {m}"))?;
    }
    if x.contains_key("expectResult")
        || x.contains_key("writeErrors")
        || x.contains_key("writeConcernErrors")
    {
        crate::bulk::check_bulk_error(e, x, ents)?;
    }
    Ok(())
}

fn short(s: &str) -> &str {
    crate::matching::cut(s, 200)
}

/// Matches an operation's result: arrays of documents have root documents.
pub fn check_result(actual: Option<&Bson>, x: &Bson, ents: Lookup) -> Result<(), String> {
    match (actual, x) {
        (Some(Bson::Array(a)), Bson::Array(e)) => {
            if a.len() != e.len() {
                return Err(format!(
                    "{} results, expected {}: {}",
                    a.len(),
                    e.len(),
                    Bson::Array(a.clone())
                ));
            }
            for (i, (p, q)) in a.iter().zip(e).enumerate() {
                matches(Some(p), q, true, ents).map_err(|m| format!("result [{i}]: {m}"))?;
            }
            Ok(())
        }
        _ => matches(actual, x, true, ents).map_err(|m| format!("result: {m}")),
    }
}

/// Opens a tailable command cursor in its own session (as the driver's implicit one).
async fn open_tail_cursor(d: &Database, cmd: Document, a: &mut Document) -> Result<Res, E> {
    let mut get_more_options = Document::new();
    if let Some(n) = a.get("batchSize") {
        get_more_options.insert("batchSize", n.clone());
    }
    if let Some(n) = a.get("maxAwaitTimeMS") {
        get_more_options.insert("maxTimeMS", n.clone());
    }
    let mut session = d.client().start_session().await?;
    let reply = d.run_command(cmd).session(&mut session).await?;
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| fail("cursor command reply without a cursor"))?;
    let id = cursor
        .get_i64("id")
        .map_err(|_| fail("cursor without id"))?;
    let ns = cursor
        .get_str("ns")
        .map_err(|_| fail("cursor without ns"))?;
    let coll = ns.split_once('.').map_or(ns, |(_, c)| c).to_string();
    let batch = batch_of(cursor, "firstBatch")?;
    Ok(Res::Entity(Entity::TailCursor(Arc::new(
        tokio::sync::Mutex::new(TailCursor {
            db: d.clone(),
            session,
            coll,
            id,
            batch,
            get_more_options,
        }),
    ))))
}

fn batch_of(cursor: &Document, field: &str) -> Result<std::collections::VecDeque<Document>, E> {
    let items = cursor
        .get_array(field)
        .map_err(|_| fail(format!("cursor without {field}")))?;
    items
        .iter()
        .map(|v| {
            v.as_document()
                .cloned()
                .ok_or_else(|| fail("a batch item is not a document"))
        })
        .collect()
}

/// One `getMore`: refills the batch (possibly with nothing) and updates the cursor id.
async fn tail_get_more(cur: &mut TailCursor) -> Result<(), E> {
    let mut cmd = doc! {"getMore": cur.id, "collection": cur.coll.clone()};
    cmd.extend(cur.get_more_options.clone());
    let TailCursor { db, session, .. } = cur;
    let reply = db.run_command(cmd).session(session).await?;
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| fail("getMore reply without a cursor"))?;
    cur.id = cursor
        .get_i64("id")
        .map_err(|_| fail("cursor without id"))?;
    cur.batch = batch_of(cursor, "nextBatch")?;
    Ok(())
}
