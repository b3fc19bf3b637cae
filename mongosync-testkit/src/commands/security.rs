//! Authentication (`saslStart`, `saslContinue`, speculative authentication in `hello`),
//! authorization (the privileges each command needs), user management, user write blocking,
//! cluster parameters and `dbHash`.

use base64::Engine;
use bson::{Binary, Bson, Document, doc, spec::BinarySubtype};

use super::{Ctx, Reply};
use crate::auth::scram::{self, Conversation, Mechanism};
use crate::auth::{self, Privileges, Resource, User};
use crate::error::{CommandError, Result, codes};

/// Commands a client may run before authenticating (`requiresAuth() == false` in the server):
/// the handshake, authentication itself, and a few harmless ones.
pub const NO_AUTH_COMMANDS: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "buildInfo",
    "buildinfo",
    "saslStart",
    "saslContinue",
    "authenticate",
    "logout",
    "ping",
    "connectionStatus",
    "configureFailPoint",
    "waitForFailPoint",
    "_isSelf",
];

/// The commands `dispatch` knows: the server looks a command up before checking
/// authorization, so an unknown one is CommandNotFound (59) even for an unauthenticated client.
const KNOWN_COMMANDS: &[&str] = &[
    "abortTransaction",
    "autoCompact",
    "currentOp",
    "dropConnections",
    "explain",
    "fsync",
    "fsyncUnlock",
    "killOp",
    "logRotate",
    "profile",
    "setDefaultRWConcern",
    "setFeatureCompatibilityVersion",
    "setParameter",
    "aggregate",
    "appendOplogNote",
    "buildInfo",
    "buildinfo",
    "bulkWrite",
    "collMod",
    "collStats",
    "commitTransaction",
    "connectionStatus",
    "count",
    "create",
    "createIndexes",
    "createSearchIndexes",
    "createUser",
    "dataSize",
    "dbHash",
    "dbStats",
    "dbhash",
    "delete",
    "deleteIndexes",
    "distinct",
    "drop",
    "dropDatabase",
    "dropIndexes",
    "dropSearchIndex",
    "dropUser",
    "endSessions",
    "find",
    "findAndModify",
    "findandmodify",
    "getClusterParameter",
    "getCmdLineOpts",
    "getDefaultRWConcern",
    "getLog",
    "getMore",
    "getParameter",
    "hello",
    "hostInfo",
    "insert",
    "isMaster",
    "ismaster",
    "killAllSessions",
    "killAllSessionsByPattern",
    "killCursors",
    "killSessions",
    "listCollections",
    "listCommands",
    "listDatabases",
    "listIndexes",
    "logout",
    "ping",
    "refreshSessions",
    "renameCollection",
    "replSetGetStatus",
    "saslContinue",
    "saslStart",
    "serverStatus",
    "setClusterParameter",
    "setUserWriteBlockMode",
    "startSession",
    "update",
    "updateSearchIndex",
    "updateUser",
    "usersInfo",
    "whatsmyuri",
];

/// Whether `dispatch` knows the command.
pub fn is_known_command(name: &str) -> bool {
    KNOWN_COMMANDS.contains(&name)
}

/// AuthenticationFailed (18), worded the same whatever went wrong.
fn auth_failed() -> CommandError {
    CommandError::new(18, "Authentication failed.")
}

/// `admin`-only commands: Unauthorized elsewhere, as the server's dispatcher reports it.
pub fn admin_only(ctx: &Ctx<'_>) -> Result<()> {
    if ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!("{} may only be run against the admin database.", ctx.name),
        ));
    }
    Ok(())
}

fn payload_bytes(ctx: &Ctx<'_>, body: &Document) -> Result<Vec<u8>> {
    match body.get("payload") {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        // The shell may send the payload as a (base64) string.
        Some(Bson::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| CommandError::bad_value("Invalid payload")),
        None => Err(CommandError::missing_field(&ctx.name, "payload")),
        Some(other) => Err(CommandError::wrong_field_type(
            &ctx.name,
            "payload",
            crate::util::type_name(other),
            &["string", "binData"],
        )),
    }
}

fn bin(bytes: impl Into<Vec<u8>>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.into(),
    })
}

/// Starts a SCRAM conversation for `body` (`saslStart` or the hello's
/// `speculativeAuthenticate`) on `db`; the reply's `conversationId`, `done`, `payload`.
fn start_conversation(ctx: &mut Ctx<'_>, body: &Document, db: &str) -> Result<Document> {
    let mechanism = match body.get("mechanism") {
        Some(Bson::String(m)) => m.clone(),
        None => return Err(CommandError::missing_field("saslStart", "mechanism")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "saslStart",
                "mechanism",
                crate::util::type_name(other),
                &["string"],
            ));
        }
    };
    let Some(mechanism) = Mechanism::parse(&mechanism) else {
        return Err(CommandError::new(
            334,
            format!(
                "Received authentication for mechanism {mechanism} which is unknown or not enabled"
            ),
        ));
    };
    let payload = payload_bytes(ctx, body)?;
    let message = String::from_utf8(payload).map_err(|_| auth_failed())?;
    let first = scram::parse_client_first(&message).ok_or_else(auth_failed)?;
    let credentials = ctx
        .server
        .users
        .get(db, &first.user)
        .and_then(|u| u.credentials_for(mechanism).cloned());
    // A real server fails at once for an unknown user (or one without credentials for the
    // mechanism), with the same message as for a wrong password.
    if credentials.is_none() {
        return Err(auth_failed());
    }
    let id = 1;
    let (conv, server_first) = Conversation::start(id, db, mechanism, &first, credentials);
    ctx.conn.sasl = Some(conv);
    ctx.conn.skip_empty_exchange = body
        .get_document("options")
        .ok()
        .and_then(|o| o.get_bool("skipEmptyExchange").ok())
        .unwrap_or(false);
    Ok(doc! {"conversationId": id, "done": false, "payload": bin(server_first)})
}

/// `saslStart`.
pub fn sasl_start(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["mechanism", "payload", "autoAuthorize", "options"])?;
    let body = ctx.body.clone();
    let db = ctx.db.clone();
    start_conversation(ctx, &body, &db).map(Reply::Doc)
}

/// `saslContinue`.
pub fn sasl_continue(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["conversationId", "payload"])?;
    let payload = payload_bytes(ctx, &ctx.body.clone())?;
    let id = ctx
        .body
        .get("conversationId")
        .and_then(crate::util::as_f64)
        .map(|f| f as i32);
    let Some(mut conv) = ctx.conn.sasl.take() else {
        return Err(CommandError::new(17, "No SASL session state found"));
    };
    if id != Some(conv.id) || conv.db != ctx.db {
        return Err(CommandError::new(17, "sasl: Mismatched conversation id"));
    }
    if conv.proved {
        // The empty exchange after the server's signature.
        ctx.conn.user = Some((conv.user.clone(), conv.db.clone()));
        return Ok(Reply::Doc(
            doc! {"conversationId": conv.id, "done": true, "payload": bin(Vec::new())},
        ));
    }
    let message = String::from_utf8(payload).map_err(|_| auth_failed())?;
    let server_final = conv.finish(&message).ok_or_else(auth_failed)?;
    let done = ctx.conn.skip_empty_exchange;
    if done {
        ctx.conn.user = Some((conv.user.clone(), conv.db.clone()));
    } else {
        ctx.conn.sasl = Some(conv.clone());
    }
    Ok(Reply::Doc(
        doc! {"conversationId": conv.id, "done": done, "payload": bin(server_final)},
    ))
}

/// The hello's `speculativeAuthenticate` answer (`None`: the attempt failed, and the field is
/// left out, as a real server does) and `saslSupportedMechs`.
pub fn hello_auth_fields(ctx: &mut Ctx<'_>, reply: &mut Document) {
    if let Ok(name) = ctx.body.get_str("saslSupportedMechs")
        && let Some((db, user)) = name.split_once('.')
        && let Some(u) = ctx.server.users.get(db, user)
    {
        reply.insert("saslSupportedMechs", u.mechanisms());
    }
    if let Ok(spec) = ctx.body.get_document("speculativeAuthenticate").cloned() {
        let db = spec.get_str("db").unwrap_or("admin").to_string();
        if spec.contains_key("saslStart")
            && let Ok(answer) = start_conversation(ctx, &spec, &db)
        {
            reply.insert("speculativeAuthenticate", answer);
        }
    }
}

/// `logout`: forgets the connection's user.
pub fn logout(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.conn.user = None;
    ctx.conn.sasl = None;
    Ok(Reply::Doc(Document::new()))
}

/// The connection's user's privileges (none if the user was dropped since).
fn privileges(ctx: &Ctx<'_>) -> Option<(User, Privileges)> {
    let (name, db) = ctx.conn.user.as_ref()?;
    let user = ctx.server.users.get(db, name)?;
    let privs = Privileges::of_roles(&user.roles);
    Some((user, privs))
}

/// Whether this command may write while user writes are blocked. As the server's cached
/// per-connection flag (`AuthorizationSessionImpl`): false until the connection authenticates,
/// then `isAuthEnabled() ? hasPrivilege(bypassWriteBlockingMode) : true`. So a connection that
/// did not authenticate is blocked even with authentication off.
pub fn may_bypass_write_blocking(ctx: &Ctx<'_>) -> bool {
    let Some((_, privs)) = privileges(ctx) else {
        return false;
    };
    !ctx.server.auth_enabled() || privs.allows(&Resource::Cluster, "bypassWriteBlockingMode")
}

/// Checks that the connection may run this command: authenticated (unless the command needs
/// no authentication) and holding every privilege it requires.
pub fn authorize(ctx: &Ctx<'_>) -> Result<()> {
    if !ctx.server.auth_enabled()
        || NO_AUTH_COMMANDS.contains(&ctx.name.as_str())
        || !KNOWN_COMMANDS.contains(&ctx.name.as_str())
    {
        return Ok(());
    }
    let Some((_, privs)) = privileges(ctx) else {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            format!("Command {} requires authentication", ctx.name),
        ));
    };
    for (resource, action) in required_privileges(ctx) {
        if !privs.allows(&resource, action) {
            return Err(auth::unauthorized(&ctx.db, &ctx.body));
        }
    }
    Ok(())
}

/// `db.coll` split at the first dot.
fn split_ns(ns: &str) -> Option<(&str, &str)> {
    ns.split_once('.')
}

/// The privileges a command needs: a coarse but faithful version of each command's
/// `checkAuthForOperation` in the server.
fn required_privileges(ctx: &Ctx<'_>) -> Vec<(Resource, &'static str)> {
    let db = ctx.db.as_str();
    let coll = match ctx.arg() {
        Bson::String(c) => c.clone(),
        _ => String::new(),
    };
    let ns = Resource::ns(db, &coll);
    let dbr = Resource::db(db);
    let mut out: Vec<(Resource, &'static str)> = Vec::new();
    let bypass_validation = ctx
        .body
        .get_bool("bypassDocumentValidation")
        .unwrap_or(false);
    let cluster = |a: &'static str| vec![(Resource::Cluster, a)];
    match ctx.name.as_str() {
        "find" | "count" | "distinct" => out.push((ns.clone(), "find")),
        "dataSize" => {
            if let Some((d, c)) = split_ns(&coll) {
                out.push((Resource::ns(d, c), "find"));
            }
        }
        "listIndexes" => out.push((ns.clone(), "listIndexes")),
        "listCollections" => {
            let name_only = ctx.body.get_bool("nameOnly").unwrap_or(false);
            let authorized = ctx.body.get_bool("authorizedCollections").unwrap_or(false);
            if !(name_only && authorized) {
                out.push((dbr.clone(), "listCollections"));
            }
        }
        "collStats" => out.push((ns.clone(), "collStats")),
        "dbStats" => out.push((dbr.clone(), "dbStats")),
        "dbHash" | "dbhash" => out.push((dbr.clone(), "dbHash")),
        "insert" => out.push((ns.clone(), "insert")),
        "update" => {
            out.push((ns.clone(), "update"));
            let upsert = ctx.body.get_array("updates").is_ok_and(|u| {
                u.iter().any(|s| {
                    s.as_document()
                        .is_some_and(|d| d.get_bool("upsert").unwrap_or(false))
                })
            });
            if upsert {
                out.push((ns.clone(), "insert"));
            }
        }
        "delete" => out.push((ns.clone(), "remove")),
        "findAndModify" | "findandmodify" => {
            out.push((ns.clone(), "find"));
            if ctx.body.get_bool("remove").unwrap_or(false) {
                out.push((ns.clone(), "remove"));
            } else {
                out.push((ns.clone(), "update"));
                if ctx.body.get_bool("upsert").unwrap_or(false) {
                    out.push((ns.clone(), "insert"));
                }
            }
        }
        "bulkWrite" => {
            let namespaces: Vec<Resource> = ctx
                .body
                .get_array("nsInfo")
                .map(|infos| {
                    infos
                        .iter()
                        .filter_map(|i| i.as_document()?.get_str("ns").ok())
                        .filter_map(split_ns)
                        .map(|(d, c)| Resource::ns(d, c))
                        .collect()
                })
                .unwrap_or_default();
            if let Ok(ops) = ctx.body.get_array("ops") {
                for op in ops.iter().filter_map(Bson::as_document) {
                    let (key, action) = if op.contains_key("insert") {
                        ("insert", "insert")
                    } else if op.contains_key("update") {
                        ("update", "update")
                    } else {
                        ("delete", "remove")
                    };
                    let index = op.get(key).and_then(crate::util::as_f64).unwrap_or(-1.0);
                    if let Some(r) = namespaces.get(index as usize) {
                        out.push((r.clone(), action));
                        if action == "update" && op.get_bool("upsert").unwrap_or(false) {
                            out.push((r.clone(), "insert"));
                        }
                    }
                }
            }
            if bypass_validation {
                for r in namespaces {
                    out.push((r, "bypassDocumentValidation"));
                }
            }
            return out;
        }
        "aggregate" => {
            let stages: Vec<Document> = ctx
                .body
                .get_array("pipeline")
                .map(|p| p.iter().filter_map(|s| s.as_document().cloned()).collect())
                .unwrap_or_default();
            let change_stream = stages
                .first()
                .and_then(|s| s.get_document("$changeStream").ok());
            let target = if let Some(cs) = change_stream {
                if cs.get_bool("allChangesForCluster").unwrap_or(false) {
                    Resource::AnyNormal
                } else if coll.is_empty() {
                    dbr.clone()
                } else {
                    ns.clone()
                }
            } else {
                ns.clone()
            };
            if change_stream.is_some() {
                out.push((target.clone(), "changeStream"));
            }
            if change_stream.is_some() || !coll.is_empty() {
                out.push((target, "find"));
            }
            for stage in &stages {
                let out_ns = match (stage.get("$out"), stage.get_document("$merge")) {
                    (Some(Bson::String(c)), _) => Some(Resource::ns(db, c)),
                    (Some(Bson::Document(d)), _) => Some(Resource::ns(
                        d.get_str("db").unwrap_or(db),
                        d.get_str("coll").unwrap_or_default(),
                    )),
                    (_, Ok(m)) => match m.get("into") {
                        Some(Bson::String(c)) => Some(Resource::ns(db, c)),
                        Some(Bson::Document(d)) => Some(Resource::ns(
                            d.get_str("db").unwrap_or(db),
                            d.get_str("coll").unwrap_or_default(),
                        )),
                        _ => None,
                    },
                    _ => match stage.get("$merge") {
                        Some(Bson::String(c)) => Some(Resource::ns(db, c)),
                        _ => None,
                    },
                };
                if let Some(r) = out_ns {
                    out.push((r.clone(), "insert"));
                    out.push((r.clone(), "remove"));
                    if bypass_validation {
                        out.push((r, "bypassDocumentValidation"));
                    }
                }
            }
            return out;
        }
        "create" => out.push((ns.clone(), "createCollection")),
        "drop" => out.push((ns.clone(), "dropCollection")),
        "dropDatabase" => out.push((dbr.clone(), "dropDatabase")),
        "renameCollection" => {
            let to = ctx.body.get_str("to").unwrap_or_default().to_string();
            if let (Some((sd, sc)), Some((td, tc))) = (split_ns(&coll), split_ns(&to)) {
                if sd == td {
                    out.push((Resource::db(sd), "renameCollectionSameDB"));
                } else {
                    out.push((Resource::ns(sd, sc), "find"));
                    out.push((Resource::ns(sd, sc), "dropCollection"));
                    out.push((Resource::ns(td, tc), "insert"));
                    out.push((Resource::ns(td, tc), "createIndex"));
                    out.push((Resource::ns(td, tc), "createCollection"));
                }
                if ctx.body.get_bool("dropTarget").unwrap_or(false) {
                    out.push((Resource::ns(td, tc), "dropCollection"));
                }
            }
        }
        "collMod" => out.push((ns.clone(), "collMod")),
        "createIndexes" => out.push((ns.clone(), "createIndex")),
        "dropIndexes" | "deleteIndexes" => out.push((ns.clone(), "dropIndex")),
        "serverStatus" => return cluster("serverStatus"),
        "hostInfo" => return cluster("hostInfo"),
        "getParameter" => return cluster("getParameter"),
        "getCmdLineOpts" => return cluster("getCmdLineOpts"),
        "getLog" => return cluster("getLog"),
        "replSetGetStatus" => return cluster("replSetGetStatus"),
        "getDefaultRWConcern" => return cluster("getDefaultRWConcern"),
        "setDefaultRWConcern" => return cluster("setDefaultRWConcern"),
        "setParameter" => return cluster("setParameter"),
        "explain" => {
            // The explained command's own privileges (reads: find; writes: their action).
            let inner = ctx.body.get_document("explain").ok();
            let (name, target) = inner
                .and_then(|d| d.iter().next())
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .unwrap_or_default();
            let ns = Resource::ns(db, target);
            match name {
                "update" | "findAndModify" | "findandmodify" => {
                    out.push((ns.clone(), "find"));
                    out.push((ns, "update"));
                }
                "delete" => {
                    out.push((ns.clone(), "find"));
                    out.push((ns, "remove"));
                }
                _ => out.push((ns, "find")),
            }
        }
        "fsync" => return cluster("fsync"),
        "fsyncUnlock" => return cluster("unlock"),
        "currentOp" => return cluster("inprog"),
        "killOp" => return cluster("killop"),
        "logRotate" => return cluster("logRotate"),
        "dropConnections" => return cluster("dropConnections"),
        "setFeatureCompatibilityVersion" => return cluster("setFeatureCompatibilityVersion"),
        "autoCompact" => return cluster("compact"),
        "profile" => out.push((dbr.clone(), "enableProfiler")),
        "appendOplogNote" => return cluster("appendOplogNote"),
        "setUserWriteBlockMode" => return cluster("setUserWriteBlockMode"),
        "getClusterParameter" => return cluster("getClusterParameter"),
        "setClusterParameter" => return cluster("setClusterParameter"),
        "createUser" => {
            out.push((dbr.clone(), "createUser"));
            if let Some(roles) = ctx.body.get("roles")
                && let Ok(roles) = auth::parse_roles(roles, "createUser", db)
            {
                for (_, rdb) in roles {
                    out.push((Resource::Db(rdb), "grantRole"));
                }
            }
        }
        "updateUser" => {
            if ctx.body.contains_key("pwd") {
                out.push((dbr.clone(), "changePassword"));
            }
            if ctx.body.contains_key("customData") {
                out.push((dbr.clone(), "changeCustomData"));
            }
            if let Some(roles) = ctx.body.get("roles")
                && let Ok(roles) = auth::parse_roles(roles, "updateUser", db)
            {
                for (_, rdb) in roles {
                    out.push((Resource::Db(rdb), "grantRole"));
                }
                out.push((dbr.clone(), "revokeRole"));
            }
        }
        "dropUser" => out.push((dbr.clone(), "dropUser")),
        "usersInfo" => {
            // Anyone may look at themselves.
            let me = ctx.conn.user.clone();
            let only_me = match ctx.arg() {
                Bson::String(u) => me.as_ref().is_some_and(|(n, d)| n == u && d == db),
                Bson::Document(d) => me.as_ref().is_some_and(|(n, udb)| {
                    d.get_str("user").ok() == Some(n.as_str())
                        && d.get_str("db").ok() == Some(udb.as_str())
                }),
                _ => false,
            };
            if ctx.body.get_bool("forAllDBs").unwrap_or(false)
                || matches!(ctx.arg(), Bson::Document(d) if d.get_bool("forAllDBs").unwrap_or(false))
            {
                return cluster("viewUser");
            }
            if !only_me {
                out.push((dbr.clone(), "viewUser"));
            }
        }
        // Commands that need authentication only: cursors and sessions are checked against
        // their owner, transactions against the session.
        _ => {}
    }
    if bypass_validation {
        out.push((ns, "bypassDocumentValidation"));
    }
    out
}

/// Whether the connection may act on `db.coll` at all: `listCollections` with
/// `authorizedCollections: true` lists only those (everything without authentication).
pub fn any_action_on_collection(ctx: &Ctx<'_>, db: &str, coll: &str) -> bool {
    !ctx.server.auth_enabled()
        || privileges(ctx).is_some_and(|(_, p)| p.any_action_on(&Resource::ns(db, coll)))
}

/// `listDatabases` without the `listDatabases` privilege lists the databases the user has
/// privileges on (`authorizedDatabases` defaults to that).
pub fn visible_database(ctx: &Ctx<'_>, name: &str) -> bool {
    if !ctx.server.auth_enabled() {
        return true;
    }
    match privileges(ctx) {
        Some((_, p)) => {
            let forced = ctx.body.get_bool("authorizedDatabases").ok();
            if forced != Some(true) && p.allows(&Resource::Cluster, "listDatabases") {
                return true;
            }
            p.touches_db(name)
        }
        None => false,
    }
}

/// Checks for `listDatabases`: `authorizedDatabases: false` needs the privilege.
pub fn check_list_databases(ctx: &Ctx<'_>) -> Result<()> {
    if !ctx.server.auth_enabled() {
        return Ok(());
    }
    let has = privileges(ctx).is_some_and(|(_, p)| p.allows(&Resource::Cluster, "listDatabases"));
    if ctx.body.get_bool("authorizedDatabases").ok() == Some(false) && !has {
        return Err(auth::unauthorized(&ctx.db, &ctx.body));
    }
    Ok(())
}

// ---- user management -------------------------------------------------------------------

fn mechanisms_field(ctx: &Ctx<'_>, default: &[Mechanism]) -> Result<Vec<Mechanism>> {
    match ctx.body.get("mechanisms") {
        None => Ok(default.to_vec()),
        Some(Bson::Array(items)) => {
            if items.is_empty() {
                return Err(CommandError::bad_value(
                    "mechanisms field must not be empty",
                ));
            }
            items
                .iter()
                .map(|m| match m {
                    Bson::String(s) => Mechanism::parse(s).ok_or_else(|| {
                        CommandError::bad_value(format!("Unknown auth mechanism '{s}'"))
                    }),
                    _ => Err(CommandError::bad_value("mechanisms must be strings")),
                })
                .collect()
        }
        Some(other) => Err(CommandError::wrong_field_type(
            &ctx.name,
            "mechanisms",
            crate::util::type_name(other),
            &["array"],
        )),
    }
}

fn user_name_arg(ctx: &Ctx<'_>) -> Result<String> {
    match ctx.arg() {
        Bson::String(s) if !s.is_empty() => Ok(s.clone()),
        Bson::String(_) => Err(CommandError::bad_value(
            "User document needs 'user' field to be non-empty",
        )),
        other => Err(CommandError::wrong_field_type(
            &ctx.name,
            &ctx.name,
            crate::util::type_name(other),
            &["string"],
        )),
    }
}

fn pwd_field(ctx: &Ctx<'_>) -> Result<Option<String>> {
    match ctx.body.get("pwd") {
        None => Ok(None),
        Some(Bson::String(p)) if p.is_empty() => {
            Err(CommandError::bad_value("Password cannot be empty"))
        }
        Some(Bson::String(p)) => Ok(Some(p.clone())),
        Some(other) => Err(CommandError::wrong_field_type(
            &ctx.name,
            "pwd",
            crate::util::type_name(other),
            &["string"],
        )),
    }
}

fn custom_data_field(ctx: &Ctx<'_>) -> Result<Option<Document>> {
    match ctx.body.get("customData") {
        None => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d.clone())),
        Some(other) => Err(CommandError::wrong_field_type(
            &ctx.name,
            "customData",
            crate::util::type_name(other),
            &["object"],
        )),
    }
}

const USER_COMMAND_FIELDS: &[&str] = &[
    "pwd",
    "roles",
    "customData",
    "mechanisms",
    "digestPassword",
    "authenticationRestrictions",
];

/// `createUser`.
pub fn create_user(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(USER_COMMAND_FIELDS)?;
    let name = user_name_arg(ctx)?;
    if ctx.db == "local" {
        return Err(CommandError::bad_value(
            "Cannot create users in the local database",
        ));
    }
    let roles = match ctx.body.get("roles") {
        Some(r) => auth::parse_roles(r, "createUser", &ctx.db)?,
        None => return Err(CommandError::missing_field("createUser", "roles")),
    };
    let Some(pwd) = pwd_field(ctx)? else {
        return Err(CommandError::bad_value(
            "Must provide a 'pwd' field for all user documents, except those with '$external' as the user's source db",
        ));
    };
    let mechanisms = mechanisms_field(ctx, &[Mechanism::Sha1, Mechanism::Sha256])?;
    let user = User {
        user: name.clone(),
        db: ctx.db.clone(),
        user_id: bson::Uuid::new(),
        roles,
        custom_data: custom_data_field(ctx)?,
        credentials: auth::make_credentials(&name, &pwd, &mechanisms)?,
    };
    ctx.server.users.insert(user)?;
    Ok(Reply::Doc(Document::new()))
}

/// `updateUser`.
pub fn update_user(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(USER_COMMAND_FIELDS)?;
    let name = user_name_arg(ctx)?;
    let Some(mut user) = ctx.server.users.get(&ctx.db, &name) else {
        return Err(CommandError::new(
            11,
            format!("Could not find user \"{name}\" for db \"{}\"", ctx.db),
        ));
    };
    let pwd = pwd_field(ctx)?;
    let custom = custom_data_field(ctx)?;
    if pwd.is_none()
        && custom.is_none()
        && !ctx.body.contains_key("roles")
        && !ctx.body.contains_key("mechanisms")
        && !ctx.body.contains_key("authenticationRestrictions")
    {
        return Err(CommandError::bad_value(
            "Must specify at least one field to update in updateUser",
        ));
    }
    if let Some(roles) = ctx.body.get("roles") {
        user.roles = auth::parse_roles(roles, "updateUser", &ctx.db)?;
    }
    if let Some(c) = custom {
        user.custom_data = Some(c);
    }
    let current: Vec<Mechanism> = user.credentials.iter().map(|c| c.mechanism).collect();
    let mechanisms = mechanisms_field(ctx, &current)?;
    match pwd {
        Some(pwd) => {
            let mechanisms = if ctx.body.contains_key("mechanisms") {
                mechanisms
            } else {
                vec![Mechanism::Sha1, Mechanism::Sha256]
            };
            user.credentials = auth::make_credentials(&name, &pwd, &mechanisms)?;
        }
        None => {
            if mechanisms.iter().any(|m| !current.contains(m)) {
                return Err(CommandError::bad_value(
                    "mechanisms field must be a subset of previously set mechanisms",
                ));
            }
            user.credentials
                .retain(|c| mechanisms.contains(&c.mechanism));
        }
    }
    ctx.server.users.update(user);
    Ok(Reply::Doc(Document::new()))
}

/// `dropUser`.
pub fn drop_user(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[])?;
    let name = user_name_arg(ctx)?;
    if !ctx.server.users.remove(&ctx.db, &name) {
        return Err(CommandError::new(
            11,
            format!("Could not find user \"{name}\" for db \"{}\"", ctx.db),
        ));
    }
    Ok(Reply::Doc(Document::new()))
}

/// `usersInfo`: one name, `{user, db}`, a list of them, `1` (every user of the database), or
/// `{forAllDBs: true}`.
pub fn users_info(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[
        "showCredentials",
        "showCustomData",
        "showPrivileges",
        "showAuthenticationRestrictions",
        "filter",
    ])?;
    let users = &ctx.server.users;
    let wanted = |v: &Bson| -> Result<Option<User>> {
        match v {
            Bson::String(u) => Ok(users.get(&ctx.db, u)),
            Bson::Document(d) => match (d.get_str("user"), d.get_str("db")) {
                (Ok(u), Ok(db)) => Ok(users.get(db, u)),
                _ => Err(CommandError::bad_value(
                    "User name must be either a string or an object with \"user\" and \"db\" fields",
                )),
            },
            _ => Err(CommandError::bad_value(
                "User name must be either a string or an object with \"user\" and \"db\" fields",
            )),
        }
    };
    let list: Vec<User> = match ctx.arg() {
        Bson::Document(d) if d.get_bool("forAllDBs").unwrap_or(false) => users.list(None),
        v @ (Bson::String(_) | Bson::Document(_)) => wanted(v)?.into_iter().collect(),
        Bson::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                out.extend(wanted(item)?);
            }
            out
        }
        v if crate::util::as_f64(v) == Some(1.0) => users.list(Some(&ctx.db)),
        _ => {
            return Err(CommandError::bad_value(
                "User name must be either a string or an object with \"user\" and \"db\" fields",
            ));
        }
    };
    let show_custom = ctx.body.get_bool("showCustomData").unwrap_or(true);
    let show_privileges = ctx.body.get_bool("showPrivileges").unwrap_or(false);
    let filter = match ctx.opt_doc("filter")? {
        Some(f) => Some(crate::query::matcher::Matcher::new(f, &Document::new())?),
        None => None,
    };
    let mut out = Vec::new();
    for u in list {
        let mut info = u.info();
        if !show_custom {
            info.remove("customData");
        }
        if show_privileges {
            info.insert("inheritedRoles", auth::roles_doc(&u.roles));
            info.insert(
                "inheritedPrivileges",
                Privileges::of_roles(&u.roles).to_bson(),
            );
        }
        if filter.as_ref().is_some_and(|f| !f.matches(&info)) {
            continue;
        }
        out.push(Bson::Document(info));
    }
    Ok(Reply::Doc(doc! {"users": out}))
}

/// `connectionStatus`.
pub fn connection_status(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["showPrivileges"])?;
    let show = ctx.opt_bool("showPrivileges")?.unwrap_or(false);
    let mut info = doc! {"authenticatedUsers": [], "authenticatedUserRoles": []};
    match privileges(ctx) {
        Some((user, privs)) => {
            info.insert(
                "authenticatedUsers",
                vec![Bson::Document(
                    doc! {"user": user.user.clone(), "db": user.db.clone()},
                )],
            );
            info.insert("authenticatedUserRoles", auth::roles_doc(&user.roles));
            if show {
                info.insert("authenticatedUserPrivileges", privs.to_bson());
            }
        }
        None => {
            if show {
                info.insert("authenticatedUserPrivileges", Vec::<Bson>::new());
            }
        }
    }
    Ok(Reply::Doc(doc! {"authInfo": info}))
}

// ---- user write blocking -----------------------------------------------------------------

/// The reasons `setUserWriteBlockMode` accepts, in the server's enum order.
pub const WRITE_BLOCK_REASONS: &[&str] = &[
    "Unspecified",
    "ClusterToClusterMigrationInProgress",
    "DiskUseThresholdExceeded",
];

/// The user write blocking state.
#[derive(Debug, Default)]
pub struct WriteBlock {
    /// Whether user writes are blocked.
    pub enabled: bool,
    /// The reason's index in [`WRITE_BLOCK_REASONS`].
    pub reason: usize,
    /// Writes refused, per reason.
    pub counters: [i64; 3],
}

/// `setUserWriteBlockMode`.
///
/// Not admin-only: the server's command declares `adminOnly() == false`.
pub fn set_user_write_block_mode(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["global", "reason"])?;
    let global = match ctx.body.get("global") {
        Some(Bson::Boolean(b)) => *b,
        // The IDL parser treats a null required field as missing.
        None | Some(Bson::Null) => {
            return Err(CommandError::missing_field(
                "setUserWriteBlockMode",
                "global",
            ));
        }
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "setUserWriteBlockMode",
                "global",
                crate::util::type_name(other),
                &["bool"],
            ));
        }
    };
    let reason = match ctx.body.get("reason") {
        None | Some(Bson::Null) => 0,
        Some(Bson::String(r)) => WRITE_BLOCK_REASONS
            .iter()
            .position(|x| x == r)
            .ok_or_else(|| {
                CommandError::bad_value(format!(
                    "Enumeration value '{r}' for field 'setUserWriteBlockMode.reason' is not a valid value."
                ))
            })?,
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "setUserWriteBlockMode",
                "reason",
                crate::util::type_name(other),
                &["string"],
            ));
        }
    };
    let mut state = ctx.server.write_block.lock();
    if state.enabled && state.reason != reason {
        return Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            format!(
                "Cannot {} user write blocking with reason {} while it is enabled with reason {}",
                if global { "enable" } else { "disable" },
                WRITE_BLOCK_REASONS[reason],
                WRITE_BLOCK_REASONS[state.reason]
            ),
        ));
    }
    state.enabled = global;
    state.reason = reason;
    Ok(Reply::Doc(Document::new()))
}

/// Whether writes to `db` are exempt from user write blocking: the server never blocks
/// writes to its internal databases (`NamespaceString::isOnInternalDb`).
pub fn internal_db(db: &str) -> bool {
    matches!(db, "admin" | "config" | "local")
}

/// UserWritesBlocked (371), counted against the active reason.
pub fn user_writes_blocked(server: &crate::server::Server) -> CommandError {
    let mut state = server.write_block.lock();
    let r = state.reason;
    state.counters[r] += 1;
    CommandError::new(371, "User writes blocked")
}

/// DDL and `$out`/`$merge` are refused as a whole while user writes are blocked (CRUD
/// statements fail one by one, as write errors, in `write.rs`).
pub fn check_ddl_write_block(ctx: &Ctx<'_>) -> Result<()> {
    if !crate::commands::support::user_writes_blocked_here() {
        return Ok(());
    }
    let coll = match ctx.arg() {
        Bson::String(c) => c.clone(),
        _ => String::new(),
    };
    let dbs: Vec<String> = match ctx.name.as_str() {
        "create" | "drop" | "dropDatabase" | "collMod" | "createIndexes" | "dropIndexes"
        | "deleteIndexes" => vec![ctx.db.clone()],
        "renameCollection" => {
            let to = ctx.body.get_str("to").unwrap_or_default();
            [coll.as_str(), to]
                .iter()
                .filter_map(|ns| split_ns(ns).map(|(d, _)| d.to_string()))
                .collect()
        }
        "aggregate" => {
            let writes = ctx.body.get_array("pipeline").is_ok_and(|p| {
                p.iter().any(|s| {
                    s.as_document()
                        .is_some_and(|d| d.contains_key("$out") || d.contains_key("$merge"))
                })
            });
            if writes { vec![ctx.db.clone()] } else { vec![] }
        }
        _ => vec![],
    };
    if dbs.iter().any(|d| !internal_db(d)) {
        return Err(user_writes_blocked(ctx.server));
    }
    Ok(())
}

// ---- cluster parameters ------------------------------------------------------------------

/// The cluster parameters this server knows, with their defaults.
pub fn default_cluster_parameters() -> Vec<Document> {
    vec![
        doc! {
            "_id": "changeStreamOptions",
            "clusterParameterTime": bson::Timestamp { time: 0, increment: 0 },
            "preAndPostImages": {"expireAfterSeconds": "off"},
        },
        doc! {
            "_id": "defaultMaxTimeMS",
            "clusterParameterTime": bson::Timestamp { time: 0, increment: 0 },
            "readOperations": 0i64,
        },
    ]
}

fn no_such_parameter(name: &str) -> CommandError {
    CommandError::new(
        codes::NO_SUCH_KEY,
        format!("Unknown server parameter: {name}"),
    )
}

/// `getClusterParameter`: a name, a list of names, or `"*"`.
pub fn get_cluster_parameter(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    ctx.check_fields(&["omitInFTDC"])?;
    let params = ctx.server.cluster_parameters.lock().clone();
    let find = |name: &str| -> Result<Bson> {
        params
            .iter()
            .find(|p| p.get_str("_id").ok() == Some(name))
            .map(|p| Bson::Document(p.clone()))
            .ok_or_else(|| no_such_parameter(name))
    };
    let out: Vec<Bson> = match ctx.arg() {
        Bson::Array(items) if items.is_empty() => {
            return Err(CommandError::bad_value(
                "Must supply at least one cluster server parameter name to getClusterParameter",
            ));
        }
        Bson::String(s) if s == "*" => params.iter().cloned().map(Bson::Document).collect(),
        Bson::String(s) => vec![find(s)?],
        Bson::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    // "*" is only meaningful alone.
                    Bson::String(s) => out.push(find(s)?),
                    other => {
                        return Err(CommandError::type_mismatch(format!(
                            "BSON field 'getClusterParameter.getClusterParameter' is the wrong type '{}', expected types '[string, array]'",
                            crate::util::type_name(other)
                        )));
                    }
                }
            }
            out
        }
        other => {
            return Err(CommandError::type_mismatch(format!(
                "BSON field 'getClusterParameter.getClusterParameter' is the wrong type '{}', expected types '[string, array]'",
                crate::util::type_name(other)
            )));
        }
    };
    Ok(Reply::Doc(doc! {"clusterParameters": out}))
}

fn long_field(d: &Document, field: &str, context: &str) -> Result<i64> {
    match d.get(field) {
        Some(v) if crate::util::is_number(v) => Ok(crate::util::as_f64(v).unwrap_or(0.0) as i64),
        Some(other) => Err(CommandError::wrong_field_type(
            context,
            field,
            crate::util::type_name(other),
            &["long"],
        )),
        None => Err(CommandError::missing_field(context, field)),
    }
}

/// `setClusterParameter: {<name>: {<fields>}}`.
pub fn set_cluster_parameter(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    ctx.check_fields(&[])?;
    let Bson::Document(arg) = ctx.arg().clone() else {
        return Err(CommandError::wrong_field_type(
            "setClusterParameter",
            "setClusterParameter",
            crate::util::type_name(ctx.arg()),
            &["object"],
        ));
    };
    if arg.len() != 1 {
        return Err(CommandError::invalid_options(
            "Exactly one cluster parameter must be set per command",
        ));
    }
    let (name, value) = arg.iter().next().expect("one field");
    let Bson::Document(value) = value else {
        return Err(CommandError::bad_value(format!(
            "Cluster parameter value must be an object, got {}",
            crate::util::type_name(value)
        )));
    };
    let fields = match name.as_str() {
        "changeStreamOptions" => {
            for k in value.keys() {
                if k != "preAndPostImages" {
                    return Err(CommandError::unknown_field("changeStreamOptions", k));
                }
            }
            let images = match value.get("preAndPostImages") {
                Some(Bson::Document(d)) => d.clone(),
                None => Document::new(),
                Some(other) => {
                    return Err(CommandError::wrong_field_type(
                        "changeStreamOptions",
                        "preAndPostImages",
                        crate::util::type_name(other),
                        &["object"],
                    ));
                }
            };
            for k in images.keys() {
                if k != "expireAfterSeconds" {
                    return Err(CommandError::unknown_field("preAndPostImages", k));
                }
            }
            let expire = match images.get("expireAfterSeconds") {
                None => Bson::String("off".into()),
                Some(Bson::String(s)) if s == "off" => Bson::String("off".into()),
                Some(v) if crate::util::is_number(v) => {
                    let n = crate::util::as_f64(v).unwrap_or(0.0) as i64;
                    if n <= 0 {
                        return Err(CommandError::bad_value(
                            "Invalid value for 'expireAfterSeconds': must be positive",
                        ));
                    }
                    Bson::Int64(n)
                }
                Some(_) => {
                    return Err(CommandError::bad_value(
                        "expireAfterSeconds must be 'off' or a positive number",
                    ));
                }
            };
            doc! {"preAndPostImages": {"expireAfterSeconds": expire}}
        }
        "defaultMaxTimeMS" => {
            for k in value.keys() {
                if k != "readOperations" {
                    return Err(CommandError::unknown_field("defaultMaxTimeMS", k));
                }
            }
            let n = long_field(value, "readOperations", "defaultMaxTimeMS")?;
            if n < 0 {
                return Err(CommandError::bad_value(
                    "readOperations must be a non-negative number",
                ));
            }
            doc! {"readOperations": n}
        }
        other => return Err(no_such_parameter(other)),
    };
    // Stored in config.clusterParameters on a real server: a write with its own optime.
    let time = ctx.server.oplog.append(
        String::new(),
        None,
        crate::oplog::EntryKind::Noop {
            data: doc! {"msg": "setClusterParameter", "name": name.clone()},
        },
        None,
    );
    let mut entry = doc! {"_id": name.clone(), "clusterParameterTime": time};
    entry.extend(fields);
    let mut params = ctx.server.cluster_parameters.lock();
    match params
        .iter_mut()
        .find(|p| p.get_str("_id").ok() == Some(name.as_str()))
    {
        Some(p) => *p = entry,
        None => params.push(entry),
    }
    Ok(Reply::Doc(Document::new()))
}

// ---- dbHash ------------------------------------------------------------------------------

/// `dbHash`: an md5 per collection over its documents' BSON in `_id` order, and one over
/// those hashes in name order. Views are not collections; the `local` database is not
/// replicated and hashes as empty, as are `system.profile` and `tmp.mr.*` collections.
pub fn db_hash(ctx: &mut Ctx<'_>) -> Result<Reply> {
    use md5::Digest;
    let started = std::time::Instant::now();
    ctx.check_fields(&["collections", "$_internalReadAtClusterTime"])?;
    let wanted: Option<Vec<String>> = match ctx.body.get("collections") {
        None => None,
        Some(Bson::Array(items)) => Some(
            items
                .iter()
                .map(|i| match i {
                    Bson::String(s) => Ok(s.clone()),
                    _ => Err(CommandError::new(
                        codes::BAD_VALUE,
                        "collections entries have to be strings",
                    )),
                })
                .collect::<Result<_>>()?,
        ),
        Some(_) => None,
    };
    let db = ctx.server.catalog.database(&ctx.db).unwrap_or_default();
    let mut collections = Document::new();
    let mut capped = Vec::new();
    let mut uuids = Document::new();
    let mut all = md5::Md5::new();
    for (name, coll) in &db.collections {
        if ctx.db == "local" || name == "system.profile" || name.starts_with("tmp.mr.") {
            continue;
        }
        if wanted.as_ref().is_some_and(|w| !w.contains(name)) {
            continue;
        }
        let data = coll.data.read();
        let mut h = md5::Md5::new();
        for (_, raw) in data.iter_id_range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
        ) {
            h.update(raw.as_bytes());
        }
        let hex = scram::hex(&h.finalize());
        all.update(hex.as_bytes());
        if data.is_capped() {
            capped.push(Bson::String(name.clone()));
        }
        uuids.insert(name.clone(), coll.uuid);
        collections.insert(name.clone(), hex);
    }
    Ok(Reply::Doc(doc! {
        "host": ctx.server.host.clone(),
        "collections": collections,
        "capped": capped,
        "uuids": uuids,
        "md5": scram::hex(&all.finalize()),
        "timeMillis": started.elapsed().as_millis() as i32,
    }))
}
