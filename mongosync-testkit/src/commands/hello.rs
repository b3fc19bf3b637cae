//! Identity and monitoring commands: `hello`, `buildInfo`, `serverStatus`, and the other
//! commands drivers and tools send to learn what they are talking to.

use std::sync::atomic::Ordering;

use bson::{Bson, Document, doc};

use super::{Ctx, Reply};
use crate::error::{CommandError, Result, codes};

/// `hello`; with the client's current `topologyVersion` and `maxAwaitTimeMS` it waits that long
/// (the topology of this single member never changes) before answering, as the awaitable hello
/// does.
pub async fn hello(ctx: &mut Ctx<'_>) -> Result<Reply> {
    if let (Ok(tv), Some(wait)) = (
        ctx.body.get_document("topologyVersion"),
        ctx.body.get("maxAwaitTimeMS"),
    ) {
        let wait = crate::util::as_f64(wait)
            .ok_or_else(|| CommandError::type_mismatch("maxAwaitTimeMS must be a number"))?;
        if wait < 0.0 {
            return Err(CommandError::bad_value(
                "maxAwaitTimeMS must be a non-negative integer",
            ));
        }
        if tv == &ctx.server.topology_version() {
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        }
    }
    if let Ok(client) = ctx.body.get_document("client")
        && let Ok(app) = client.get_document("application")
    {
        ctx.conn.app_name = app.get_str("name").ok().map(str::to_string);
    }
    let mut reply = Document::new();
    if ctx.body.get_bool("helloOk").unwrap_or(false) {
        reply.insert("helloOk", true);
    }
    // The legacy command answers `ismaster`, `hello` answers `isWritablePrimary`.
    if ctx.name == "hello" {
        reply.insert("isWritablePrimary", true);
    } else {
        reply.insert("ismaster", true);
    }
    reply.extend(ctx.server.hello_fields(ctx.conn));
    super::security::hello_auth_fields(ctx, &mut reply);
    Ok(Reply::Doc(reply))
}

pub fn build_info(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let version = ctx.server.options.server_version;
    Ok(Reply::Doc(doc! {
        "version": version.release(),
        "gitVersion": "0000000000000000000000000000000000000000",
        "modules": [],
        "allocator": "system",
        "javascriptEngine": "none",
        "sysInfo": "deprecated",
        "versionArray": version.version_array().to_vec(),
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": crate::wire::MAX_BSON_SIZE as i32,
        "storageEngines": ["inMemory"],
        "openssl": {"running": "disabled", "compiled": "disabled"},
        "buildEnvironment": {"target_os": std::env::consts::OS, "target_arch": std::env::consts::ARCH},
    }))
}

pub fn host_info(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as i32)
        .unwrap_or(1);
    Ok(Reply::Doc(doc! {
        "system": {
            "currentTime": bson::DateTime::now(),
            "hostname": "localhost",
            "cpuAddrSize": 64,
            "memSizeMB": 1024i64,
            "numCores": cores,
            "cpuArch": std::env::consts::ARCH,
            "numaEnabled": false,
        },
        "os": {"type": "Linux", "name": "mongosync-testkit", "version": ctx.server.options.server_version.release()},
        "extra": {},
    }))
}

pub fn server_status(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let s = ctx.server;
    let uptime = s.started.elapsed();
    let block = {
        let b = s.write_block.lock();
        super::security::WriteBlock {
            enabled: b.enabled,
            reason: b.reason,
            counters: b.counters,
        }
    };
    // Sections a caller must ask for, as on a real server: `{serverStatus: 1, oplog: 1}`.
    let oplog_section = ctx
        .body
        .get("oplog")
        .is_some_and(|v| !matches!(v, Bson::Boolean(false) | Bson::Int32(0) | Bson::Null));
    let mut reply = doc! {
        "host": s.host.clone(),
        "version": s.options.server_version.release(),
        "process": "mongod",
        "pid": std::process::id() as i64,
        "uptime": uptime.as_secs_f64().floor(),
        "uptimeMillis": uptime.as_millis() as i64,
        "uptimeEstimate": uptime.as_secs() as i64,
        "localTime": bson::DateTime::now(),
        "connections": {
            "current": s.open_connections.load(Ordering::Relaxed) as i32,
            "available": 1_000_000,
            "totalCreated": s.total_connections.load(Ordering::Relaxed) as i32,
            "active": 1,
        },
        "metrics": {
            "cursor": {"open": {"total": s.cursors.len() as i64}},
            "commands": s.command_counts.lock().iter().map(|(name, n)| {
                (name.clone(), Bson::Document(doc! {"total": *n}))
            }).collect::<Document>(),
        },
        "repl": {
            "hosts": [s.host.clone()],
            "setName": s.replica_set(),
            "setVersion": 1,
            "isWritablePrimary": true,
            "secondary": false,
            "primary": s.host.clone(),
            "me": s.host.clone(),
            "electionId": s.election_id,
            // The server's enums: mode 1 disabled, 2 enabled; reason 0 Unspecified,
            // 1 ClusterToClusterMigrationInProgress, 2 DiskUseThresholdExceeded.
            "userWriteBlockMode": if block.enabled { 2 } else { 1 },
            "userWriteBlockReason": block.reason as i32,
            "userWriteBlockModeCounters": {
                "Unspecified": block.counters[0],
                "ClusterToClusterMigrationInProgress": block.counters[1],
                "DiskUseThresholdExceeded": block.counters[2],
            },
        },
        "storageEngine": {"name": "inMemory", "supportsCommittedReads": true, "persistent": false},
    };
    if oplog_section {
        let latest = s.oplog.now();
        reply.insert(
            "oplog",
            doc! {"latestOptime": latest, "earliestOptime": s.oplog.oldest().unwrap_or(latest)},
        );
    }
    Ok(Reply::Doc(reply))
}

pub fn list_databases(ctx: &mut Ctx<'_>) -> Result<Reply> {
    if ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "listDatabases may only be run against the admin database.",
        ));
    }
    ctx.check_fields(&["filter", "nameOnly", "authorizedDatabases"])?;
    super::security::check_list_databases(ctx)?;
    // `list_databases.idl`: `nameOnly` is a `safeBool`, `authorizedDatabases` a `bool`.
    let name_only = ctx.opt_safe_bool("nameOnly")?.unwrap_or(false);
    ctx.opt_idl_bool("authorizedDatabases")?;
    let filter = match ctx.opt_doc("filter")? {
        Some(f) => Some(crate::query::matcher::Matcher::new(f, &Document::new())?),
        None => None,
    };
    let mut dbs = Vec::new();
    let mut total: i64 = 0;
    // A replica set member always has these three (users, sessions, the oplog).
    let mut names = ctx.server.catalog.database_names();
    for system in ["admin", "config", "local"] {
        if !names.iter().any(|n| n == system) {
            names.push(system.to_string());
        }
    }
    names.sort();
    for name in names {
        let size: i64 = ctx
            .server
            .catalog
            .database(&name)
            .map(|d| {
                d.collections
                    .values()
                    .map(|c| c.data.read().data_size() as i64)
                    .sum()
            })
            .unwrap_or(0);
        let entry = if name_only {
            doc! {"name": name.clone()}
        } else {
            doc! {"name": name.clone(), "sizeOnDisk": size.max(4096), "empty": false}
        };
        if !super::security::visible_database(ctx, &name)
            || filter.as_ref().is_some_and(|f| !f.matches(&entry))
        {
            continue;
        }
        total += size.max(4096);
        dbs.push(Bson::Document(entry));
    }
    let mut reply = doc! {"databases": dbs};
    if !name_only {
        reply.insert("totalSize", total);
        reply.insert("totalSizeMb", total / (1024 * 1024));
    }
    Ok(Reply::Doc(reply))
}

/// `startSession`: a new server-generated session id, as the server's `StartSessionCommand`.
pub fn start_session(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[])?;
    let id = bson::Binary {
        subtype: bson::spec::BinarySubtype::Uuid,
        bytes: uuid::Uuid::new_v4().as_bytes().to_vec(),
    };
    Ok(Reply::Doc(doc! {"id": {"id": id}, "timeoutMinutes": 30}))
}

/// The sessions an `endSessions`/`killSessions`/`refreshSessions` names, checked as the
/// server's IDL does: an array of `{id: UUID}` documents.
fn session_list(ctx: &Ctx<'_>) -> Result<Vec<Bson>> {
    let Bson::Array(sessions) = ctx.arg() else {
        return Err(CommandError::wrong_field_type(
            &ctx.name,
            &ctx.name,
            crate::util::type_name(ctx.arg()),
            &["array"],
        ));
    };
    let mut out = Vec::new();
    for s in sessions {
        let Bson::Document(d) = s else {
            return Err(CommandError::wrong_field_type(
                &ctx.name,
                &ctx.name,
                crate::util::type_name(s),
                &["object"],
            ));
        };
        for k in d.keys() {
            if k != "id" && k != "uid" {
                return Err(CommandError::unknown_field("LogicalSessionFromClient", k));
            }
        }
        match d.get("id") {
            Some(Bson::Binary(b)) if b.subtype == bson::spec::BinarySubtype::Uuid => {
                out.push(Bson::Document(doc! {"id": Bson::Binary(b.clone())}));
            }
            Some(other) => {
                return Err(CommandError::wrong_field_type(
                    "LogicalSessionFromClient",
                    "id",
                    crate::util::type_name(other),
                    &["uuid"],
                ));
            }
            None => {
                return Err(CommandError::missing_field(
                    "LogicalSessionFromClient",
                    "id",
                ));
            }
        }
    }
    Ok(out)
}

/// `endSessions`, `killSessions` (which also kill the sessions' cursors and transactions) and
/// `refreshSessions` (which only checks its argument: sessions here never expire).
pub fn end_sessions(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let sessions = session_list(ctx)?;
    if ctx.name == "refreshSessions" {
        return Ok(Reply::Doc(Document::new()));
    }
    for lsid in sessions {
        ctx.server.cursors.kill_session(&lsid);
        if let Some(key) = crate::session::session_key(&lsid) {
            ctx.server.sessions.end(&key);
            ctx.server.transactions.end_session(&key);
        }
    }
    Ok(Reply::Doc(Document::new()))
}

/// `killAllSessions: [{user, db}]` / `killAllSessionsByPattern: [{...}]`: with an empty list,
/// every session: their transactions are aborted and their cursors killed (a later `getMore`
/// gets CursorNotFound).
pub fn kill_all_sessions(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let Bson::Array(list) = ctx.arg() else {
        return Err(CommandError::wrong_field_type(
            &ctx.name,
            &ctx.name,
            crate::util::type_name(ctx.arg()),
            &["array"],
        ));
    };
    for entry in list {
        let Bson::Document(d) = entry else {
            return Err(CommandError::wrong_field_type(
                &ctx.name,
                &ctx.name,
                crate::util::type_name(entry),
                &["object"],
            ));
        };
        if ctx.name == "killAllSessions" {
            for field in ["user", "db"] {
                match d.get(field) {
                    Some(Bson::String(_)) => {}
                    Some(other) => {
                        return Err(CommandError::wrong_field_type(
                            "KillAllSessionsUser",
                            field,
                            crate::util::type_name(other),
                            &["string"],
                        ));
                    }
                    None => {
                        return Err(CommandError::missing_field("KillAllSessionsUser", field));
                    }
                }
            }
        }
    }
    // Users' sessions are not told apart here: any list kills every session.
    ctx.server.transactions.abort_all();
    ctx.server.cursors.kill_all_sessions();
    Ok(Reply::Doc(Document::new()))
}

pub fn get_cmd_line_opts(ctx: &mut Ctx<'_>) -> Result<Reply> {
    Ok(Reply::Doc(doc! {
        "argv": ["mongosync-testkit"],
        "parsed": {"replication": {"replSet": ctx.server.replica_set()}, "net": {"bindIp": ctx.server.options.host.clone()}},
    }))
}

/// `getLog: "*" | "global" | "startupWarnings"` (IDL-typed: a required string argument; an
/// unknown log is OperationFailed, as `CmdGetLog` answers it).
pub fn get_log(ctx: &mut Ctx<'_>) -> Result<Reply> {
    match ctx.arg() {
        Bson::String(s) if s == "*" => {
            Ok(Reply::Doc(doc! {"names": ["global", "startupWarnings"]}))
        }
        Bson::String(s) if s == "global" || s == "startupWarnings" => {
            Ok(Reply::Doc(doc! {"totalLinesWritten": 0, "log": []}))
        }
        Bson::String(s) => Err(CommandError::new(
            codes::OPERATION_FAILED,
            format!("No log named '{s}'"),
        )),
        Bson::Null | Bson::Undefined => Err(CommandError::missing_field("getLog", "getLog")),
        other => Err(CommandError::wrong_field_type(
            "getLog",
            "getLog",
            crate::util::type_name(other),
            &["string"],
        )),
    }
}

pub fn repl_set_get_status(ctx: &mut Ctx<'_>) -> Result<Reply> {
    super::security::admin_only(ctx)?;
    let s = ctx.server;
    let now = s.oplog.now();
    let wall = bson::DateTime::now();
    let optime = doc! {"ts": now, "t": 1i64};
    let started = bson::DateTime::from_millis(
        wall.timestamp_millis() - s.started.elapsed().as_millis() as i64,
    );
    Ok(Reply::Doc(doc! {
        "set": s.replica_set(),
        "date": wall,
        "myState": 1,
        "term": 1i64,
        "syncSourceHost": "",
        "syncSourceId": -1,
        "heartbeatIntervalMillis": 2000i64,
        "majorityVoteCount": 1,
        "writeMajorityCount": 1,
        "votingMembersCount": 1,
        "writableVotingMembersCount": 1,
        "optimes": {
            "lastCommittedOpTime": optime.clone(),
            "lastCommittedWallTime": wall,
            "readConcernMajorityOpTime": optime.clone(),
            "appliedOpTime": optime.clone(),
            "durableOpTime": optime.clone(),
            "lastAppliedWallTime": wall,
            "lastDurableWallTime": wall,
        },
        "members": [{
            "_id": 0, "name": s.host.clone(), "health": 1.0, "state": 1, "stateStr": "PRIMARY",
            "uptime": s.started.elapsed().as_secs() as i64,
            "optime": optime.clone(),
            "optimeDate": wall,
            "lastAppliedWallTime": wall,
            "lastDurableWallTime": wall,
            "syncSourceHost": "", "syncSourceId": -1, "infoMessage": "",
            "electionTime": bson::Timestamp { time: (started.timestamp_millis() / 1000) as u32, increment: 1 },
            "electionDate": started,
            "configVersion": 1, "configTerm": 1i64, "self": true, "lastHeartbeatMessage": "",
        }],
    }))
}

pub fn db_stats(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let db = ctx.server.catalog.database(&ctx.db).unwrap_or_default();
    let mut objects: i64 = 0;
    let mut size: i64 = 0;
    let mut indexes: i64 = 0;
    for c in db.collections.values() {
        let d = c.data.read();
        objects += d.count() as i64;
        size += d.data_size() as i64;
        indexes += 1 + d.indexes.len() as i64;
    }
    Ok(Reply::Doc(doc! {
        "db": ctx.db.clone(),
        "collections": db.collections.len() as i64,
        "views": db.views.len() as i64,
        "objects": objects,
        "avgObjSize": if objects > 0 { size as f64 / objects as f64 } else { 0.0 },
        "dataSize": size as f64,
        "storageSize": size as f64,
        "indexes": indexes,
        "indexSize": 0.0,
        "totalSize": size as f64,
        "scaleFactor": 1,
        "fsUsedSize": 0.0,
        "fsTotalSize": 0.0,
    }))
}

/// `appendOplogNote`: a no-op entry that moves cluster time (and change streams' high-water
/// marks) without producing an event; its `operationTime` is the note's time.
pub fn append_oplog_note(ctx: &mut Ctx<'_>) -> Result<Reply> {
    if ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "appendOplogNote may only be run against the admin database.",
        ));
    }
    ctx.check_fields(&["data", "maxClusterTime"])?;
    let data = match ctx.body.get("data") {
        Some(Bson::Document(d)) => d.clone(),
        None => return Err(CommandError::missing_field("appendOplogNote", "data")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "appendOplogNote",
                "data",
                crate::util::type_name(other),
                &["object"],
            ));
        }
    };
    if let Some(Bson::Timestamp(max)) = ctx.body.get("maxClusterTime") {
        let now = ctx.server.oplog.now();
        if (now.time, now.increment) >= (max.time, max.increment) {
            return Ok(Reply::Doc(Document::new()));
        }
    }
    ctx.server.oplog.append(
        String::new(),
        None,
        crate::oplog::EntryKind::Noop { data },
        None,
    );
    Ok(Reply::Doc(Document::new()))
}

pub fn list_commands(_ctx: &mut Ctx<'_>) -> Result<Reply> {
    let names = [
        "aggregate",
        "buildInfo",
        "collMod",
        "collStats",
        "count",
        "create",
        "createIndexes",
        "dataSize",
        "dbStats",
        "delete",
        "distinct",
        "drop",
        "dropDatabase",
        "dropIndexes",
        "endSessions",
        "find",
        "findAndModify",
        "getMore",
        "getParameter",
        "hello",
        "hostInfo",
        "insert",
        "isMaster",
        "killCursors",
        "listCollections",
        "listDatabases",
        "listIndexes",
        "ping",
        "renameCollection",
        "serverStatus",
        "update",
    ];
    let mut commands = Document::new();
    for n in names {
        // `apiVersions` / `deprecatedApiVersions` as `Command::apiVersions()` gives them (no
        // command is deprecated in Version 1).
        let api: Vec<&str> = if super::generic::in_api_version_1(n) {
            vec!["1"]
        } else {
            Vec::new()
        };
        commands.insert(
            n,
            doc! {
                "help": "",
                "requiresAuth": false,
                "adminOnly": false,
                "apiVersions": api,
                "deprecatedApiVersions": [],
            },
        );
    }
    Ok(Reply::Doc(doc! {"commands": commands}))
}
