//! Command dispatch: parses the command envelope, checks its fields as a real server's strict
//! parser does, and hands it to the handler of its area.

pub(crate) mod admin;
mod bulk;
mod ddl;
mod explain;
mod generic;
mod hello;
mod local;
mod profile;
mod read;
pub(crate) mod security;
pub(crate) mod support;
mod write;

use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf};

use crate::error::{CommandError, Result, codes};
use crate::server::{Connection, Server};

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    /// A reply body; `ok: 1` and the cluster-time fields are added by the server.
    Doc(Document),
    /// A raw reply body (cursor batches stay raw BSON end to end).
    Raw(RawDocumentBuf),
    /// Close the connection without answering (fail points use it).
    #[allow(dead_code)]
    CloseConnection,
}

/// Fields every command accepts (drivers attach them; the server's IDL treats them as generic).
pub const GENERIC_FIELDS: &[&str] = &[
    "$db",
    "lsid",
    "$clusterTime",
    "txnNumber",
    "startTransaction",
    "autocommit",
    "$readPreference",
    "readConcern",
    "writeConcern",
    "comment",
    "maxTimeMS",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "$audit",
    "$client",
    "$configServerState",
    "$queryOptions",
    "mayBypassWriteBlocking",
    "databaseVersion",
    "shardVersion",
    "clientOperationKey",
    "$configTime",
    "$topologyTime",
    "readOnce",
    "allowImplicitCollectionCreation",
    "versionContext",
    "$traceCtx",
];

/// One command being executed.
pub struct Ctx<'a> {
    /// The server.
    pub server: &'a Arc<Server>,
    /// The connection it came on.
    pub conn: &'a mut Connection,
    /// The database (`$db`).
    pub db: String,
    /// The command's name as sent (first field).
    pub name: String,
    /// The command document, with document sequences merged in as arrays.
    pub body: Document,
    /// Document sequences, raw (for `insert`'s fast path).
    pub sequences: Vec<(String, Vec<RawDocumentBuf>)>,
    /// The transaction the command runs in, if any.
    pub txn: Option<Arc<parking_lot::Mutex<crate::transaction::Txn>>>,
}

impl Ctx<'_> {
    /// The collection `coll` of this database as the command sees it (inside a transaction,
    /// the transaction's copy); `None` if it does not exist.
    pub fn collection(&self, coll: &str) -> Option<support::CollHandle> {
        self.collection_in(&self.db, coll)
    }

    /// [`collection`](Self::collection) in another database (`bulkWrite` spans several).
    pub fn collection_in(&self, db: &str, coll: &str) -> Option<support::CollHandle> {
        match &self.txn {
            Some(txn) => txn
                .lock()
                .collection(self.server, db, coll, false)
                .map(support::CollHandle::Txn),
            None => self
                .server
                .catalog
                .collection(db, coll)
                .map(support::CollHandle::Live),
        }
    }

    /// The collection `coll`, created if missing (implicit creation by a write); whether it was
    /// created.
    pub fn collection_for_write(&self, coll: &str) -> Result<(support::CollHandle, bool)> {
        self.collection_for_write_in(&self.db, coll)
    }

    /// [`collection_for_write`](Self::collection_for_write) in another database.
    pub fn collection_for_write_in(
        &self,
        db: &str,
        coll: &str,
    ) -> Result<(support::CollHandle, bool)> {
        if support::user_writes_blocked_here()
            && !security::internal_db(db)
            && self.server.catalog.collection(db, coll).is_none()
        {
            return Err(security::user_writes_blocked(self.server));
        }
        match &self.txn {
            Some(txn) => {
                let existed = self.server.catalog.collection(db, coll).is_some();
                if !existed {
                    crate::storage::catalog::validate_collection_name(db, coll)?;
                    if let Some(crate::storage::catalog::Namespace::View(_)) =
                        self.server.catalog.lookup(db, coll)
                    {
                        return Err(CommandError::new(
                            codes::COMMAND_NOT_SUPPORTED_ON_VIEW,
                            format!("Namespace {db}.{coll} is a view, not a collection"),
                        ));
                    }
                }
                let data = txn
                    .lock()
                    .collection(self.server, db, coll, true)
                    .expect("created on demand");
                Ok((support::CollHandle::Txn(data), !existed))
            }
            None => {
                let (c, created) = self.server.catalog.collection_for_write(db, coll)?;
                Ok((support::CollHandle::Live(c), created))
            }
        }
    }

    /// The command's argument (the value of its first field).
    pub fn arg(&self) -> &Bson {
        self.body.get(&self.name).unwrap_or(&Bson::Null)
    }

    /// The collection named by the command's argument, for commands on a collection.
    pub fn collection_arg(&self) -> Result<String> {
        match self.arg() {
            Bson::String(s) => {
                crate::storage::catalog::validate_collection_name(&self.db, s)?;
                Ok(s.clone())
            }
            other => Err(CommandError::invalid_namespace(format!(
                "collection name has invalid type {}",
                crate::util::type_name(other)
            ))),
        }
    }

    /// `db.coll` for this command's collection.
    pub fn ns(&self, coll: &str) -> String {
        format!("{}.{coll}", self.db)
    }

    /// Fails with IDLUnknownField (40415) on a field neither `allowed` nor generic.
    pub fn check_fields(&self, allowed: &[&str]) -> Result<()> {
        for key in self.body.keys().skip(1) {
            if !allowed.contains(&key.as_str()) && !GENERIC_FIELDS.contains(&key.as_str()) {
                return Err(CommandError::unknown_field(&self.name, key));
            }
        }
        Ok(())
    }

    /// An optional document field, type-checked.
    pub fn opt_doc(&self, field: &str) -> Result<Option<&Document>> {
        match self.body.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Document(d)) => Ok(Some(d)),
            Some(other) => Err(CommandError::wrong_field_type(
                &self.name,
                field,
                crate::util::type_name(other),
                &["object"],
            )),
        }
    }

    /// An optional boolean field (numbers accepted as the server's IDL does).
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.body.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Boolean(b)) => Ok(Some(*b)),
            Some(v) if crate::util::is_number(v) => Ok(Some(crate::util::as_f64(v) != Some(0.0))),
            Some(other) => Err(CommandError::wrong_field_type(
                &self.name,
                field,
                crate::util::type_name(other),
                &["bool"],
            )),
        }
    }

    /// An optional IDL `bool` field: a boolean only (numbers are refused, unlike `safeBool`).
    pub fn opt_idl_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.body.get(field) {
            None | Some(Bson::Null | Bson::Undefined) => Ok(None),
            Some(Bson::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(CommandError::wrong_field_type(
                &self.name,
                field,
                crate::util::type_name(other),
                &["bool"],
            )),
        }
    }

    /// An optional IDL `safeBool` field: a boolean or any number (its truth).
    pub fn opt_safe_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.body.get(field) {
            Some(v)
                if !matches!(v, Bson::Boolean(_) | Bson::Null | Bson::Undefined)
                    && !crate::util::is_number(v) =>
            {
                Err(CommandError::wrong_field_type(
                    &self.name,
                    field,
                    crate::util::type_name(v),
                    &["bool", "long", "int", "decimal", "double"],
                ))
            }
            _ => self.opt_bool(field),
        }
    }

    /// The `cursor` option of `listCollections` / `listIndexes`: a strict `SimpleCursorOptions`
    /// (`basic_types.idl`) whose only field, `batchSize`, is a `safeInt64` of at least 0.
    pub fn simple_cursor_batch_size(&self) -> Result<Option<usize>> {
        let Some(cursor) = self.opt_doc("cursor")? else {
            return Ok(None);
        };
        let mut batch = None;
        for (k, v) in cursor {
            if k != "batchSize" {
                return Err(CommandError::unknown_field(
                    &format!("{}.cursor", self.name),
                    k,
                ));
            }
            if matches!(v, Bson::Null | Bson::Undefined) {
                continue;
            }
            if !crate::util::is_number(v) {
                return Err(CommandError::wrong_field_type(
                    &format!("{}.cursor", self.name),
                    k,
                    crate::util::type_name(v),
                    &["long", "int", "decimal", "double"],
                ));
            }
            let n = crate::util::as_f64(v).unwrap_or(0.0) as i64;
            if n < 0 {
                return Err(CommandError::new(
                    51024,
                    format!("BSON field 'batchSize' value must be >= 0, actual value '{n}'"),
                ));
            }
            batch = Some(n as usize);
        }
        Ok(batch)
    }

    /// An optional integer field.
    pub fn opt_i64(&self, field: &str) -> Result<Option<i64>> {
        match self.body.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(v) if crate::util::is_number(v) => {
                let f = crate::util::as_f64(v).unwrap_or(0.0);
                if f.fract() != 0.0 {
                    return Err(CommandError::bad_value(format!(
                        "Field '{field}' must be an integer, got {f}"
                    )));
                }
                Ok(Some(f as i64))
            }
            Some(other) => Err(CommandError::wrong_field_type(
                &self.name,
                field,
                crate::util::type_name(other),
                &["long", "int", "decimal", "double"],
            )),
        }
    }

    /// The `let` variables of the command, evaluated once (as the server does).
    pub fn let_vars(&self) -> Result<Document> {
        match self.opt_doc("let")? {
            Some(l) => crate::query::expr::evaluate_let(l, &Document::new()),
            None => Ok(Document::new()),
        }
    }
}

/// Runs one command from its raw body.
pub async fn run(
    server: &Arc<Server>,
    conn: &mut Connection,
    body: RawDocumentBuf,
    sequences: Vec<(String, Vec<RawDocumentBuf>)>,
) -> Result<Reply> {
    let mut doc = crate::wire::to_document(&body)
        .map_err(|e| CommandError::new(22, format!("invalid BSON in command: {e}")))?;
    let Some(name) = doc.keys().next().cloned() else {
        return Err(CommandError::failed_to_parse("Empty command object"));
    };
    let db = match doc.get("$db") {
        Some(Bson::String(s)) => s.clone(),
        Some(_) => return Err(CommandError::type_mismatch("$db must be a string")),
        None => {
            return Err(CommandError::new(
                40571,
                "OP_MSG requests require a $db argument",
            ));
        }
    };
    // Insert keeps its documents raw; other commands see sequences as ordinary arrays.
    if name != "insert" {
        for (id, docs) in &sequences {
            let arr: Result<Vec<Bson>> = docs
                .iter()
                .map(|d| {
                    crate::wire::to_document(d)
                        .map(Bson::Document)
                        .map_err(|e| CommandError::new(22, e.to_string()))
                })
                .collect();
            doc.insert(id.clone(), arr?);
        }
    }
    let mut ctx = Ctx {
        server,
        conn,
        db,
        name,
        body: doc,
        sequences,
        txn: None,
    };
    crate::storage::catalog::validate_db_name(&ctx.db).or_else(|e| {
        // Command-only pseudo databases are fine.
        if ctx.db == "$external" {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    if let Some(lsid) = ctx.body.get("lsid") {
        ctx.server.sessions.touch(lsid);
    }
    // The server looks the command up first: one this release lacks is unknown to it.
    if !ctx.server.options.server_version.has_command(&ctx.name) {
        return Err(CommandError::new(
            codes::COMMAND_NOT_FOUND,
            format!("no such command: '{}'", ctx.name),
        ));
    }
    if security::is_known_command(&ctx.name) {
        *ctx.server
            .command_counts
            .lock()
            .entry(ctx.name.clone())
            .or_default() += 1;
    }
    if ctx.name == "configureFailPoint" {
        return configure_fail_point(&ctx);
    }
    if ctx.name == "waitForFailPoint" {
        return wait_for_fail_point(&ctx).await;
    }
    // Authorization comes before fail points and execution, as in the server.
    security::authorize(&ctx)?;
    let blocked = (ctx.server.write_block.lock().enabled
        && !security::may_bypass_write_blocking(&ctx))
    .then(|| Arc::clone(ctx.server));
    let ns = match (ctx.arg(), ctx.body.get("collection")) {
        (Bson::String(c), _) => format!("{}.{c}", ctx.db),
        // A getMore's namespace is its `collection`, as the server's fail points see it.
        (_, Some(Bson::String(c))) if ctx.name == "getMore" => format!("{}.{c}", ctx.db),
        // A collectionless `aggregate: 1` runs on `<db>.$cmd.aggregate`, its cursor's namespace.
        _ if ctx.name == "aggregate" => format!("{}.$cmd.aggregate", ctx.db),
        _ => format!("{}.$cmd", ctx.db),
    };
    let action = ctx
        .server
        .failpoints
        .fail_command(&ctx.name, ctx.conn.app_name.as_deref(), &ns);
    let mut forced_wce = None;
    if let Some(action) = action {
        if let Some(ms) = action.block_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if action.close_connection {
            return Ok(Reply::CloseConnection);
        }
        if let Some(mut e) = action.error {
            match action.labels {
                Some(labels) => {
                    e.labels = labels;
                    e.labels_forced = true;
                }
                None => add_server_labels(&ctx.name, &ctx.body, &mut e, false),
            }
            return Err(e);
        }
        if let Some(wce) = action.write_concern_error {
            forced_wce = Some((wce, action.labels));
        }
    }
    let mut result = support::USER_WRITES_BLOCKED
        .scope(blocked, execute(&mut ctx))
        .await;
    match &mut result {
        Err(e) => add_server_labels(&ctx.name, &ctx.body, e, true),
        Ok(reply) => {
            if let Some((wce, labels)) = forced_wce {
                *reply = attach_write_concern_error(
                    &ctx,
                    std::mem::replace(reply, Reply::Doc(Document::new())),
                    wce,
                    labels,
                );
            }
        }
    }
    result
}

/// Runs a command that passed the fail points: inside its transaction, once per retryable
/// write, or plainly.
async fn execute(ctx: &mut Ctx<'_>) -> Result<Reply> {
    check_session_info(&ctx.body)?;
    // Both are admin-only commands: the service entry point refuses another database before
    // the command looks for its transaction.
    if matches!(ctx.name.as_str(), "commitTransaction" | "abortTransaction") && ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!("{} may only be run against the admin database.", ctx.name),
        ));
    }
    if matches!(ctx.name.as_str(), "commitTransaction" | "abortTransaction")
        && !ctx.body.contains_key("autocommit")
    {
        return Err(outside_transaction(ctx));
    }
    // A txnNumber outside a transaction is for retryable writes only
    // (`validateSessionOptions`, under the command's own name).
    if !ctx.body.contains_key("autocommit")
        && ctx.body.contains_key("txnNumber")
        && !crate::session::RETRYABLE_WRITES.contains(&ctx.name.as_str())
    {
        return Err(CommandError::new(
            50768,
            format!(
                "txnNumber may only be provided for multi-document transactions and retryable write commands. autocommit:false was not provided, and {} is not a retryable write command.",
                generic::canonical_name(&ctx.name)
            ),
        ));
    }
    if ctx.body.contains_key("autocommit") {
        let result = run_in_transaction(ctx).await;
        return result.map(|r| apply_write_concern(&ctx.body, r));
    }
    // A retryable write runs once per (lsid, txnNumber): a retry gets the first reply.
    let retryable = crate::session::RETRYABLE_WRITES.contains(&ctx.name.as_str())
        && !ctx.body.contains_key("autocommit");
    let retry_key = match (
        retryable,
        ctx.body.get("lsid").and_then(crate::session::session_key),
        ctx.body.get("txnNumber"),
    ) {
        (true, Some(key), Some(Bson::Int64(n))) => Some((key, *n)),
        _ => None,
    };
    if let Some((key, n)) = &retry_key
        && let Some(reply) = ctx.server.sessions.begin(key, *n)?
    {
        return Ok(Reply::Doc(reply));
    }
    // Its writes pass the `onPrimaryTransactionalWrite` fail point (see `failpoint.rs`).
    let write = crate::failpoint::RetryableWrite {
        server: Some(Arc::clone(ctx.server)),
        key: retry_key
            .as_ref()
            .map(|(k, _)| k.clone())
            .unwrap_or_default(),
        per_statement: ctx.server.failpoints.is_set("onPrimaryTransactionalWrite")
            || retry_key
                .as_ref()
                .is_some_and(|(k, n)| ctx.server.sessions.has_statements(k, *n)),
        session: ctx
            .body
            .get("lsid")
            .map(crate::session::display_lsid)
            .unwrap_or_default(),
        txn_number: retry_key.as_ref().map_or(0, |(_, n)| *n),
        ..Default::default()
    };
    let result = if retry_key.is_some() {
        crate::failpoint::RETRYABLE_WRITE
            .scope(write.clone(), dispatch(ctx))
            .await
    } else {
        dispatch(ctx).await
    };
    let close_after = write.close.load(std::sync::atomic::Ordering::SeqCst);
    if close_after && result.is_err() {
        return Ok(Reply::CloseConnection);
    }
    let reply = apply_write_concern(&ctx.body, result?);
    // A write failed by the fail point was not recorded: the retry runs the command again.
    if let Some((key, n)) = retry_key
        && !write.failed.load(std::sync::atomic::Ordering::SeqCst)
    {
        let stored = match &reply {
            Reply::Doc(d) => Some(d.clone()),
            Reply::Raw(r) => Document::try_from(r.as_ref()).ok(),
            Reply::CloseConnection => None,
        };
        if let Some(d) = stored {
            ctx.server.sessions.complete(&key, n, d);
        }
    }
    if close_after {
        return Ok(Reply::CloseConnection);
    }
    Ok(reply)
}

/// `initializeOperationSessionInfo` (`logical_session_id_helpers.cpp`): how `lsid`,
/// `txnNumber`, `autocommit` and `startTransaction` must go together, before anything runs.
fn check_session_info(body: &Document) -> Result<()> {
    let present = |k: &str| !matches!(body.get(k), None | Some(Bson::Null));
    let txn_number = body.get("txnNumber").and_then(crate::util::as_f64);
    if txn_number.is_some() && !present("lsid") {
        return Err(CommandError::invalid_options(
            "Transaction number requires a session ID to also be specified",
        ));
    }
    if txn_number.is_some_and(|n| n < 0.0) {
        return Err(CommandError::invalid_options(
            "Transaction number cannot be negative",
        ));
    }
    if !present("autocommit") && present("startTransaction") {
        return Err(CommandError::invalid_options(
            "'startTransaction' field requires 'autocommit' field to also be specified",
        ));
    }
    if present("autocommit") && body.get("startTransaction") == Some(&Bson::Boolean(false)) {
        return Err(CommandError::invalid_options(
            "Specifying startTransaction=false is not allowed.",
        ));
    }
    Ok(())
}

/// Commands a transaction may run (`create` and `createIndexes` only on collections the
/// transaction creates, see `ddl/`).
const TRANSACTION_COMMANDS: &[&str] = &[
    "find",
    "getMore",
    "killCursors",
    "aggregate",
    "distinct",
    "insert",
    "update",
    "delete",
    "findAndModify",
    "findandmodify",
    "bulkWrite",
    "create",
    "createIndexes",
    "commitTransaction",
    "abortTransaction",
];

/// `commitTransaction` / `abortTransaction` sent without `autocommit: false`, as a real 8.x
/// server answers them (its command names are capitalised in these messages).
fn outside_transaction(ctx: &Ctx<'_>) -> CommandError {
    let name = match ctx.name.as_str() {
        "commitTransaction" => "CommitTransaction",
        _ => "AbortTransaction",
    };
    if ctx.body.contains_key("txnNumber") {
        CommandError::new(
            50768,
            format!(
                "txnNumber may only be provided for multi-document transactions and retryable write commands. autocommit:false was not provided, and {name} is not a retryable write command."
            ),
        )
    } else {
        CommandError::new(125, format!("{name} must be run within a transaction"))
    }
}

/// Runs a command carrying `autocommit: false`: starts, continues, commits or aborts the
/// session's transaction.
async fn run_in_transaction(ctx: &mut Ctx<'_>) -> Result<Reply> {
    if ctx.body.get("autocommit") != Some(&Bson::Boolean(false)) {
        return Err(CommandError::invalid_options(
            "Specifying autocommit=true is not allowed.",
        ));
    }
    let Some(Bson::Int64(number)) = ctx.body.get("txnNumber").cloned() else {
        return Err(CommandError::invalid_options(
            "'autocommit' field requires a transaction number to also be specified",
        ));
    };
    let (Some(lsid), Some(key)) = (
        ctx.body.get_document("lsid").ok().cloned(),
        ctx.body.get("lsid").and_then(crate::session::session_key),
    ) else {
        return Err(CommandError::invalid_options(
            "Transaction numbers are only allowed on a session",
        ));
    };
    if ctx.name == "count" {
        return Err(CommandError::new(
            263,
            "Cannot run 'count' in a multi-document transaction. Please see http://dochub.mongodb.org/core/transaction-count for a recommended alternative.",
        ));
    }
    if !TRANSACTION_COMMANDS.contains(&ctx.name.as_str()) {
        return Err(CommandError::new(
            263,
            format!(
                "Cannot run '{}' in a multi-document transaction.",
                generic::canonical_name(&ctx.name)
            ),
        ));
    }
    crate::transaction::check_command_allowed(ctx)?;
    // `validateSessionOptions` (`logical_session_id_helpers.cpp`): what may not start one.
    if ctx.body.get_bool("startTransaction").unwrap_or(false) {
        let refused = match ctx.name.as_str() {
            "killCursors" => Some(
                "Cannot run killCursors as the first operation in a multi-document transaction.",
            ),
            "commitTransaction" => Some("Cannot start a transaction with a commit"),
            "abortTransaction" => Some("Cannot start a transaction with an abort"),
            _ => None,
        };
        if let Some(message) = refused {
            return Err(CommandError::new(263, message));
        }
    }
    // `validateWriteConcernForTransaction`: only commit and abort take a write concern; a
    // command that takes none at all is refused as such by the generic checks.
    if !matches!(ctx.name.as_str(), "commitTransaction" | "abortTransaction")
        && generic::supports_write_concern(&ctx.name)
        && ctx
            .body
            .get_document("writeConcern")
            .is_ok_and(|wc| !wc.is_empty())
    {
        return Err(CommandError::invalid_options(
            "writeConcern is not allowed within a multi-statement transaction",
        ));
    }
    // Stages that write another collection are refused in a transaction by the stage itself.
    if ctx.name == "aggregate"
        && let Ok(pipeline) = ctx.body.get_array("pipeline")
        && let Some(stage) = pipeline
            .iter()
            .filter_map(Bson::as_document)
            .find_map(|d| ["$out", "$merge"].into_iter().find(|s| d.contains_key(*s)))
    {
        return Err(CommandError::new(
            263,
            format!("{stage} cannot be used in a transaction"),
        ));
    }
    let txns = &ctx.server.transactions;
    match ctx.name.as_str() {
        "commitTransaction" | "abortTransaction" if ctx.db != "admin" => Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!("{} may only be run against the admin database.", ctx.name),
        )),
        "commitTransaction" => txns
            .commit(ctx.server, &key, number)
            .map(|()| Reply::Doc(Document::new())),
        "abortTransaction" => txns
            .abort(&key, number)
            .map(|()| Reply::Doc(Document::new())),
        _ => {
            let txn = if ctx.body.get_bool("startTransaction").unwrap_or(false) {
                txns.begin(&key, &lsid, number)?
            } else {
                txns.continuing(&key, number)?
            };
            ctx.txn = Some(Arc::clone(&txn));
            let result = match crate::transaction::check_write_namespaces(ctx) {
                Ok(()) => dispatch(ctx).await,
                Err(e) => Err(e),
            };
            ctx.txn = None;
            let mut t = txn.lock();
            let failed_writes =
                matches!(&result, Ok(Reply::Doc(d)) if d.contains_key("writeErrors"));
            match result {
                Ok(reply) => match txns.check_writes(ctx.server, &mut t) {
                    Ok(()) => {
                        // A write error aborts the transaction, as on a real server.
                        if failed_writes {
                            txns.abort_txn(&mut t);
                        }
                        Ok(reply)
                    }
                    Err(e) => {
                        txns.abort_txn(&mut t);
                        Err(e)
                    }
                },
                Err(e) => {
                    txns.abort_txn(&mut t);
                    Err(e)
                }
            }
        }
    }
}

/// Codes in the server's RetriableError category.
pub const RETRIABLE_CODES: &[i32] = &[
    6, 7, 89, 91, 134, 189, 262, 358, 402, 406, 407, 412, 453, 462, 9001, 10107, 11600, 11602,
    13435, 13436, 50915, 91331, 10045600,
];

/// Codes after which a change stream may resume: RetriableError, NetworkError,
/// NeedRetargettingError, RetryChangeStream and FailedToSatisfyReadPreference.
pub const RESUMABLE_CHANGE_STREAM_CODES: &[i32] = &[317, 384, 150, 13388, 234, 133];

/// Whether a change stream may resume after `code`.
pub fn resumable_change_stream_error(code: i32) -> bool {
    RETRIABLE_CODES.contains(&code) || RESUMABLE_CHANGE_STREAM_CODES.contains(&code)
}

/// The error labels a real server attaches (`error_labels.cpp`), unless a fail point forced
/// its own: TransientTransactionError inside transactions, RetryableWriteError (and
/// NoWritesPerformed) for retryable writes, ResumableChangeStreamError for change streams.
fn add_server_labels(name: &str, body: &Document, e: &mut CommandError, wrote: bool) {
    if e.labels_forced {
        return;
    }
    let in_txn = body.contains_key("txnNumber") && body.contains_key("autocommit");
    let commit_or_abort = matches!(name, "commitTransaction" | "abortTransaction");
    let wce_code = e
        .extra
        .get_document("writeConcernError")
        .ok()
        .and_then(|w| w.get_i32("code").ok());
    let mut push = |l: &str| {
        if !e.labels.iter().any(|x| x == l) {
            e.labels.push(l.to_string());
        }
    };
    if in_txn {
        let transient = match e.code {
            112 | 24 | 267 | 249 | 239 | 246 | 250 | 272 | 150 | 13388 => true,
            251 => wce_code.is_none(),
            c => !commit_or_abort && RETRIABLE_CODES.contains(&c),
        };
        if transient {
            push("TransientTransactionError");
            return;
        }
    }
    let retryable_write = (crate::session::RETRYABLE_WRITES.contains(&name)
        && body.contains_key("txnNumber")
        && !body.contains_key("autocommit"))
        || commit_or_abort;
    if retryable_write
        && (RETRIABLE_CODES.contains(&e.code)
            || wce_code.is_some_and(|c| RETRIABLE_CODES.contains(&c)))
    {
        push("RetryableWriteError");
        if !wrote {
            push("NoWritesPerformed");
        }
        return;
    }
    let change_stream = name == "aggregate"
        && body
            .get_array("pipeline")
            .ok()
            .and_then(|p| p.first())
            .and_then(|s| s.as_document())
            .is_some_and(|s| s.contains_key("$changeStream"));
    if change_stream && wce_code.is_none() && resumable_change_stream_error(e.code) {
        push("ResumableChangeStreamError");
        return;
    }
    if matches!(e.code, 280 | 286) {
        push("NonResumableChangeStreamError");
    }
}

/// `configureFailPoint` (admin; never failed itself).
fn configure_fail_point(ctx: &Ctx<'_>) -> Result<Reply> {
    if ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "configureFailPoint may only be run against the admin database.",
        ));
    }
    let Bson::String(name) = ctx.arg() else {
        return Err(CommandError::type_mismatch(
            "configureFailPoint takes the fail point's name",
        ));
    };
    let mode = ctx
        .body
        .get("mode")
        .ok_or_else(|| CommandError::missing_field("configureFailPoint", "mode"))?;
    let data = ctx.opt_doc("data")?.cloned().unwrap_or_default();
    let count = ctx.server.failpoints.configure(name, mode, data)?;
    Ok(Reply::Doc(bson::doc! {"count": count}))
}

/// `waitForFailPoint` (admin, test-only): `{waitForFailPoint: name, timesEntered: N,
/// maxTimeMS}` returns once the fail point has fired N times in all.
async fn wait_for_fail_point(ctx: &Ctx<'_>) -> Result<Reply> {
    if ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "waitForFailPoint may only be run against the admin database.",
        ));
    }
    let Bson::String(name) = ctx.arg() else {
        return Err(CommandError::type_mismatch(
            "waitForFailPoint takes the fail point's name",
        ));
    };
    let times = ctx
        .body
        .get("timesEntered")
        .and_then(crate::util::as_f64)
        .ok_or_else(|| CommandError::missing_field("waitForFailPoint", "timesEntered"))?;
    let max = ctx
        .body
        .get("maxTimeMS")
        .and_then(crate::util::as_f64)
        .ok_or_else(|| CommandError::missing_field("waitForFailPoint", "maxTimeMS"))?;
    ctx.server
        .failpoints
        .wait_entered(
            name,
            times as i64,
            std::time::Duration::from_millis(max as u64),
        )
        .await?;
    Ok(Reply::Doc(Document::new()))
}

/// A fail point's `writeConcernError` on a command that ran: attached to the reply, with the
/// labels a real server gives it.
fn attach_write_concern_error(
    ctx: &Ctx<'_>,
    reply: Reply,
    wce: Document,
    labels: Option<Vec<String>>,
) -> Reply {
    let mut doc = match reply {
        Reply::Doc(d) => d,
        Reply::Raw(r) => match Document::try_from(r.as_ref()) {
            Ok(d) => d,
            Err(_) => return Reply::Raw(r),
        },
        other => return other,
    };
    let labels = match labels {
        Some(l) => l,
        None => {
            let mut probe = CommandError::new(0, "");
            probe.extra.insert("writeConcernError", wce.clone());
            add_server_labels(&ctx.name, &ctx.body, &mut probe, true);
            probe.labels
        }
    };
    doc.insert("writeConcernError", wce);
    if !labels.is_empty() {
        doc.insert("errorLabels", labels);
    }
    Reply::Doc(doc)
}

/// A single member satisfies `w: 1` and `"majority"`; a larger number, or a tag set this
/// replica set does not define, cannot be satisfied: the write is done and the reply carries a
/// `writeConcernError`, as on a real single-member replica set.
fn apply_write_concern(body: &Document, reply: Reply) -> Reply {
    let Ok(wc) = body.get_document("writeConcern") else {
        return reply;
    };
    let error = match wc.get("w") {
        Some(w) if crate::util::as_f64(w).is_some_and(|n| n > 1.0) => Some(
            bson::doc! {"code": 100, "codeName": "UnsatisfiableWriteConcern", "errmsg": "Not enough data-bearing nodes"},
        ),
        Some(Bson::String(tag)) if tag != "majority" => Some(bson::doc! {
            "code": 79,
            "codeName": "UnknownReplWriteConcern",
            "errmsg": format!("No write concern mode named '{tag}' found in replica set configuration"),
        }),
        _ => None,
    };
    let Some(error) = error else { return reply };
    let mut doc = match reply {
        Reply::Doc(d) => d,
        Reply::Raw(r) => match Document::try_from(r.as_ref()) {
            Ok(d) => d,
            Err(_) => return Reply::Raw(r),
        },
        other => return other,
    };
    doc.insert("writeConcernError", error);
    Reply::Doc(doc)
}

/// Read concern levels the server knows.
const READ_CONCERN_LEVELS: &[&str] =
    &["local", "majority", "linearizable", "available", "snapshot"];

/// Checks `readConcern` as the server does: a known level, and one the command supports
/// outside a transaction (`snapshot` only for reads that can use it, `linearizable` only for
/// reads that do not write, writes only the default).
fn check_read_concern(ctx: &Ctx<'_>) -> Result<()> {
    let Some(rc) = ctx.body.get("readConcern") else {
        return Ok(());
    };
    let Bson::Document(rc) = rc else {
        return Err(CommandError::type_mismatch("readConcern must be an object"));
    };
    let level = match rc.get("level") {
        None => return Ok(()),
        Some(Bson::String(l)) => l.as_str(),
        Some(_) => {
            return Err(CommandError::type_mismatch(
                "readConcern.level must be a string",
            ));
        }
    };
    if !READ_CONCERN_LEVELS.contains(&level) {
        return Err(CommandError::bad_value(format!(
            "Enumeration value '{level}' for field 'readConcern.level' is not a valid value."
        )));
    }
    if ctx.body.contains_key("txnNumber") && ctx.body.contains_key("autocommit") {
        return Ok(());
    }
    let writes_out = || {
        ctx.body.get_array("pipeline").is_ok_and(|p| {
            p.iter().any(|s| {
                s.as_document()
                    .is_some_and(|d| d.contains_key("$out") || d.contains_key("$merge"))
            })
        })
    };
    let supported = match (ctx.name.as_str(), level) {
        (_, "local") => true,
        ("find" | "distinct" | "count" | "getMore", "majority" | "available" | "linearizable") => {
            true
        }
        ("find" | "distinct", "snapshot") => true,
        ("aggregate", "snapshot" | "linearizable") => !writes_out(),
        ("aggregate", _) => true,
        (
            "listCollections" | "listIndexes" | "listDatabases" | "collStats" | "dbStats",
            "majority" | "available",
        ) => true,
        _ => false,
    };
    if supported {
        Ok(())
    } else {
        Err(CommandError::invalid_options(format!(
            "Command {} does not support {{ readConcern: {{ level: \"{level}\" }} }}",
            ctx.name
        )))
    }
}

async fn dispatch(ctx: &mut Ctx<'_>) -> Result<Reply> {
    generic::check(ctx)?;
    check_read_concern(ctx)?;
    security::check_ddl_write_block(ctx)?;
    // In progress for `currentOp`/`killOp` until it returns; a write waits out an fsync lock.
    let op = admin::begin(ctx);
    admin::wait_unless_locked(ctx, &op).await?;
    if let Some(at) = crate::snapshot::requested(ctx)? {
        return snapshot_read(ctx, at).await;
    }
    run_command(ctx).await
}

/// A snapshot read outside a transaction: the command runs over its collections as of `at`.
async fn snapshot_read(ctx: &mut Ctx<'_>, at: bson::Timestamp) -> Result<Reply> {
    let mut txn = crate::transaction::Txn::snapshot(at);
    if let Bson::String(coll) = ctx.arg() {
        txn.preload(ctx.server, &ctx.db, coll)?;
    }
    ctx.txn = Some(Arc::new(parking_lot::Mutex::new(txn)));
    let reply = run_command(ctx).await;
    ctx.txn = None;
    let reply = match reply? {
        Reply::Doc(d) => d,
        Reply::Raw(r) => Document::try_from(r.as_ref())
            .map_err(|e| CommandError::new(codes::INTERNAL_ERROR, e.to_string()))?,
        other => return Ok(other),
    };
    Ok(Reply::Doc(crate::snapshot::stamp(&ctx.name, reply, at)))
}

async fn run_command(ctx: &mut Ctx<'_>) -> Result<Reply> {
    match ctx.name.as_str() {
        "hello" | "isMaster" | "ismaster" => hello::hello(ctx).await,
        "ping" => Ok(Reply::Doc(Document::new())),
        "buildInfo" | "buildinfo" => hello::build_info(ctx),
        "getParameter" => admin::get_parameter(ctx),
        "setParameter" => admin::set_parameter(ctx),
        "fsync" => admin::fsync(ctx),
        "fsyncUnlock" => admin::fsync_unlock(ctx),
        "setDefaultRWConcern" => admin::set_default_rw_concern(ctx),
        "setFeatureCompatibilityVersion" => admin::set_fcv(ctx),
        "currentOp" => admin::current_op(ctx),
        "killOp" => admin::kill_op(ctx),
        "logRotate" => admin::log_rotate(ctx),
        "dropConnections" => admin::drop_connections(ctx),
        "autoCompact" => admin::auto_compact(ctx),
        "profile" => profile::profile(ctx),
        "hostInfo" => hello::host_info(ctx),
        "serverStatus" => hello::server_status(ctx),
        "listDatabases" => hello::list_databases(ctx),
        "endSessions" | "killSessions" | "refreshSessions" => hello::end_sessions(ctx),
        "startSession" => hello::start_session(ctx),
        "killAllSessions" | "killAllSessionsByPattern" => hello::kill_all_sessions(ctx),
        "whatsmyuri" => Ok(Reply::Doc(bson::doc! {"you": ctx.conn.peer.clone()})),
        "getCmdLineOpts" => hello::get_cmd_line_opts(ctx),
        "getLog" => hello::get_log(ctx),
        "connectionStatus" => security::connection_status(ctx),
        "saslStart" => security::sasl_start(ctx),
        "saslContinue" => security::sasl_continue(ctx),
        "logout" => security::logout(ctx),
        "createUser" => security::create_user(ctx),
        "updateUser" => security::update_user(ctx),
        "dropUser" => security::drop_user(ctx),
        "usersInfo" => security::users_info(ctx),
        "setUserWriteBlockMode" => security::set_user_write_block_mode(ctx),
        "getClusterParameter" => security::get_cluster_parameter(ctx),
        "setClusterParameter" => security::set_cluster_parameter(ctx),
        "dbHash" | "dbhash" => security::db_hash(ctx),
        "replSetGetStatus" => hello::repl_set_get_status(ctx),
        "dbStats" => hello::db_stats(ctx),
        "getDefaultRWConcern" => admin::get_default_rw_concern(ctx),
        "listCommands" => hello::list_commands(ctx),
        "appendOplogNote" => hello::append_oplog_note(ctx),
        "createSearchIndexes" | "updateSearchIndex" | "dropSearchIndex" => Err(CommandError::new(
            31082,
            "Using Atlas Search Database Commands and the $listSearchIndexes aggregation stage requires additional configuration. Please connect to Atlas or an AtlasCLI local deployment to enable. For more information on how to connect, see https://dochub.mongodb.org/core/atlas-cli-deploy-local-reqs",
        )),
        "insert" => write::insert(ctx),
        "update" => write::update(ctx),
        "delete" => write::delete(ctx),
        "findAndModify" | "findandmodify" => write::find_and_modify(ctx),
        "bulkWrite" => bulk::bulk_write(ctx),
        "find" => read::find(ctx),
        "getMore" => read::get_more(ctx).await,
        "killCursors" => read::kill_cursors(ctx),
        "count" => read::count(ctx),
        "explain" => explain::explain(ctx),
        "distinct" => read::distinct(ctx),
        "aggregate" => read::aggregate(ctx),
        "create" => ddl::create(ctx),
        "drop" => ddl::drop(ctx),
        "dropDatabase" => ddl::drop_database(ctx),
        "renameCollection" => ddl::rename_collection(ctx),
        "collMod" => ddl::coll_mod(ctx),
        "listCollections" => ddl::list_collections(ctx),
        "createIndexes" => ddl::create_indexes(ctx),
        "dropIndexes" | "deleteIndexes" => ddl::drop_indexes(ctx),
        "listIndexes" => ddl::list_indexes(ctx),
        "collStats" => ddl::coll_stats(ctx),
        "dataSize" => ddl::data_size(ctx),
        _ => Err(CommandError::new(
            codes::COMMAND_NOT_FOUND,
            format!("no such command: '{}'", ctx.name),
        )),
    }
}
