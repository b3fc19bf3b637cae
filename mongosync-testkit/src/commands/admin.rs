//! Administration commands: `fsync`/`fsyncUnlock`, `getParameter`/`setParameter`,
//! `getDefaultRWConcern`/`setDefaultRWConcern`, `setFeatureCompatibilityVersion`, `currentOp`
//! and `killOp` over the table of operations in progress, `logRotate`, `dropConnections`,
//! and `autoCompact` (`profile` is in `profile.rs`).
//!
//! Codes and messages follow the server's source (`fsync.cpp`, `set_parameter` in
//! `generic_servers.cpp`, `read_write_concern_defaults.cpp`): an fsync lock blocks every write
//! until the matching number of `fsyncUnlock`s, as the server's global read lock does, and a
//! write waiting on it shows in `currentOp` with `waitingForLock: true` and can be killed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use bson::{Bson, Document, doc};
use tokio::sync::watch;

use super::{Ctx, Reply, security::admin_only};
use crate::error::{CommandError, Result, codes};
use crate::util::{as_f64, is_number, type_name};

/// The server's administrative state.
pub(crate) struct Admin {
    inner: parking_lot::Mutex<State>,
    /// Bumped on every fsync unlock and every `killOp`: what a blocked write waits on.
    changed: watch::Sender<u64>,
    next_op: AtomicU32,
    /// The profiler's settings (`profile.rs`).
    pub(crate) profiling: parking_lot::Mutex<super::profile::Profiling>,
}

struct State {
    fsync_locks: i64,
    /// Runtime values of the parameters that were set (the rest have their defaults).
    parameters: HashMap<String, Bson>,
    /// `setDefaultRWConcern`'s last document (`None`: never set, implicit defaults).
    rw_defaults: Option<Document>,
    /// When the defaults were last applied to this node's cache (`localUpdateWallClockTime`).
    rw_local_update: Option<bson::DateTime>,
    fcv: String,
    /// The binary's version (`major.minor`): the FCV a fresh server has.
    binary: String,
    ops: HashMap<u32, Op>,
}

struct Op {
    conn: i64,
    client: String,
    app_name: Option<String>,
    ns: String,
    /// The command as `currentOp` shows it: whole up to 1,000 bytes, else truncated.
    command: Bson,
    started: Instant,
    waiting_for_lock: bool,
    killed: bool,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    pub(crate) fn new(binary: &str) -> Admin {
        Admin {
            inner: parking_lot::Mutex::new(State {
                fsync_locks: 0,
                parameters: HashMap::new(),
                rw_defaults: None,
                rw_local_update: None,
                fcv: binary.to_string(),
                binary: binary.to_string(),
                ops: HashMap::new(),
            }),
            changed: watch::channel(0).0,
            next_op: AtomicU32::new(1),
            profiling: parking_lot::Mutex::default(),
        }
    }

    /// A parameter's current value (its default unless `setParameter` changed it).
    pub(crate) fn parameter(&self, name: &str) -> Option<Bson> {
        let set = self.inner.lock().parameters.get(name).cloned();
        set.or_else(|| {
            PARAMETERS
                .iter()
                .find(|p| p.name == name)
                .map(|p| (p.default)())
        })
    }

    /// Whether an `fsync: 1, lock: true` holds writes back.
    pub(crate) fn fsync_locked(&self) -> bool {
        self.inner.lock().fsync_locks > 0
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Registers the command as an operation in progress (for `currentOp` and `killOp`) until the
/// guard drops.
pub(crate) fn begin(ctx: &Ctx<'_>) -> OpGuard {
    let admin = &ctx.server.admin;
    let id = admin.next_op.fetch_add(1, Ordering::Relaxed);
    let coll = match ctx.arg() {
        Bson::String(c) => c.clone(),
        _ => "$cmd".to_string(),
    };
    admin.inner.lock().ops.insert(
        id,
        Op {
            conn: ctx.conn.id,
            client: ctx.conn.peer.clone(),
            app_name: ctx.conn.app_name.clone(),
            ns: format!("{}.{coll}", ctx.db),
            command: summary(&ctx.body, |k| {
                ctx.sequences.iter().any(|(name, _)| name == k)
            }),
            started: Instant::now(),
            waiting_for_lock: false,
            killed: false,
        },
    );
    OpGuard {
        server: Arc::clone(ctx.server),
        id,
    }
}

/// The largest command `currentOp` shows whole (the server's `maxQuerySize` in
/// `CurOp::reportState`, used because the `currentOp` command sets `truncateOps`).
const MAX_SHOWN: usize = 1000;

/// The command as the server's `CurOp` records it for `currentOp`. The command object is the
/// OP_MSG body without its document sequences (an `insert`'s documents sent as a sequence are
/// not part of it); `appendAsObjOrString` keeps it whole if it encodes in at most
/// [`MAX_SHOWN`] bytes, else writes `{$truncated: <its text cut to MAX_SHOWN bytes, ending in
/// "...">, comment}`. Every command passes here, so neither branch copies or formats more
/// than the limit.
fn summary(body: &Document, is_sequence: impl Fn(&str) -> bool) -> Bson {
    let fields = || body.iter().filter(|(k, _)| !is_sequence(k));
    let mut size = 5;
    let small = fields().all(|(k, v)| {
        let room = MAX_SHOWN.saturating_sub(size + k.len() + 2);
        match value_len_within(v, room) {
            Some(n) => {
                size += k.len() + 2 + n;
                true
            }
            None => false,
        }
    });
    if small {
        return Bson::Document(fields().map(|(k, v)| (k.clone(), v.clone())).collect());
    }
    let mut text = Bounded(String::new());
    // The writer refuses past the limit; the error only means "cut here".
    let _ = (|| {
        use std::fmt::Write;
        text.write_str("{")?;
        for (i, (k, v)) in fields().enumerate() {
            write!(text, "{} {k}: {v}", if i == 0 { "" } else { "," })?;
        }
        text.write_str(" }")
    })();
    let mut text = text.0;
    if text.len() >= MAX_SHOWN {
        let mut cut = MAX_SHOWN - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    let mut d = doc! {"$truncated": text};
    if let Some(c) = body.get("comment") {
        d.insert("comment", c.clone());
    }
    Bson::Document(d)
}

/// A string writer that refuses to grow past [`MAX_SHOWN`] bytes.
struct Bounded(String);

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = MAX_SHOWN.saturating_sub(self.0.len());
        if s.len() <= room {
            self.0.push_str(s);
            return Ok(());
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.0.push_str(&s[..cut]);
        Err(std::fmt::Error)
    }
}

/// The document's BSON size if it is at most `limit` bytes, else `None`; stops counting as soon
/// as the limit is passed.
fn encoded_len_within(d: &Document, limit: usize) -> Option<usize> {
    let mut n = 5; // length prefix and terminator
    for (k, v) in d {
        n += 1 + k.len() + 1 + value_len_within(v, limit.checked_sub(n)?)?;
        if n > limit {
            return None;
        }
    }
    Some(n)
}

fn value_len_within(v: &Bson, limit: usize) -> Option<usize> {
    let n = match v {
        Bson::Document(d) => return encoded_len_within(d, limit),
        Bson::Array(a) => {
            let mut n = 5;
            for (i, e) in a.iter().enumerate() {
                n += 1 + i.to_string().len() + 1 + value_len_within(e, limit.checked_sub(n)?)?;
                if n > limit {
                    return None;
                }
            }
            n
        }
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => 4 + s.len() + 1,
        Bson::Binary(b) => 4 + 1 + b.bytes.len(),
        Bson::RegularExpression(r) => r.pattern.len() + 1 + r.options.len() + 1,
        Bson::JavaScriptCodeWithScope(c) => {
            4 + 4 + c.code.len() + 1 + encoded_len_within(&c.scope, limit)?
        }
        Bson::DbPointer(_) => 4 + 12 + 12,
        Bson::Boolean(_) => 1,
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => 0,
        Bson::Int32(_) => 4,
        Bson::ObjectId(_) => 12,
        Bson::Decimal128(_) => 16,
        Bson::Double(_) | Bson::Int64(_) | Bson::DateTime(_) | Bson::Timestamp(_) => 8,
    };
    (n <= limit).then_some(n)
}

pub(crate) struct OpGuard {
    server: Arc<crate::server::Server>,
    id: u32,
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        self.server.admin.inner.lock().ops.remove(&self.id);
    }
}

/// Whether the command writes (what an fsync lock holds back).
fn writes(ctx: &Ctx<'_>) -> bool {
    match ctx.name.as_str() {
        "insert" | "update" | "delete" | "findAndModify" | "findandmodify" | "bulkWrite"
        | "create" | "drop" | "dropDatabase" | "renameCollection" | "collMod" | "createIndexes"
        | "dropIndexes" | "deleteIndexes" => true,
        "aggregate" => ctx.body.get_array("pipeline").is_ok_and(|p| {
            p.iter().any(|s| {
                s.as_document()
                    .is_some_and(|d| d.contains_key("$out") || d.contains_key("$merge"))
            })
        }),
        _ => false,
    }
}

/// Holds a write while the server is fsync-locked; fails it with Interrupted (11601) if
/// `killOp` kills it meanwhile.
pub(crate) async fn wait_unless_locked(ctx: &Ctx<'_>, op: &OpGuard) -> Result<()> {
    if !writes(ctx) {
        return Ok(());
    }
    let admin = &ctx.server.admin;
    let mut changed = admin.changed.subscribe();
    loop {
        {
            let mut st = admin.inner.lock();
            let locked = st.fsync_locks > 0;
            let Some(me) = st.ops.get_mut(&op.id) else {
                return Ok(());
            };
            if me.killed {
                return Err(CommandError::new(11601, "operation was interrupted"));
            }
            me.waiting_for_lock = locked;
            if !locked {
                return Ok(());
            }
        }
        if changed.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// `fsync` (`fsync.idl`, strict): `lock`, `forBackup` and `allowFsyncFailure` are `safeBool`,
/// `fsyncLockAcquisitionTimeoutMillis` an `int`.
pub fn fsync(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    ctx.check_fields(&[
        "lock",
        "fsyncLockAcquisitionTimeoutMillis",
        "forBackup",
        "allowFsyncFailure",
    ])?;
    for flag in ["lock", "forBackup", "allowFsyncFailure"] {
        if let Some(v) = ctx.body.get(flag)
            && !matches!(v, Bson::Boolean(_) | Bson::Null | Bson::Undefined)
            && !is_number(v)
        {
            return Err(CommandError::wrong_field_type(
                "fsync",
                flag,
                type_name(v),
                &["bool", "long", "int", "decimal", "double"],
            ));
        }
    }
    if let Some(v) = ctx.body.get("fsyncLockAcquisitionTimeoutMillis")
        && !matches!(v, Bson::Int32(_) | Bson::Null | Bson::Undefined)
    {
        return Err(CommandError::wrong_field_type(
            "fsync",
            "fsyncLockAcquisitionTimeoutMillis",
            type_name(v),
            &["int"],
        ));
    }
    let lock = ctx.body.get("lock").is_some_and(truthy);
    if !lock {
        // The field has had a dummy value since MMAPv1 went away; the server keeps it.
        return Ok(Reply::Doc(doc! {"numFiles": 1}));
    }
    let count = {
        let mut st = ctx.server.admin.inner.lock();
        st.fsync_locks += 1;
        st.fsync_locks
    };
    Ok(Reply::Doc(doc! {
        "info": "now locked against writes, use db.fsyncUnlock() to unlock",
        "lockCount": count,
        "seeAlso": "http://dochub.mongodb.org/core/fsynccommand",
    }))
}

pub fn fsync_unlock(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    let count = {
        let mut st = ctx.server.admin.inner.lock();
        if st.fsync_locks == 0 {
            return Err(CommandError::new(
                codes::ILLEGAL_OPERATION,
                "fsyncUnlock called when not locked",
            ));
        }
        st.fsync_locks -= 1;
        st.fsync_locks
    };
    ctx.server.admin.bump();
    Ok(Reply::Doc(
        doc! {"info": "fsyncUnlock completed", "lockCount": count},
    ))
}

fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Null | Bson::Undefined => false,
        v if is_number(v) => as_f64(v).is_some_and(|f| f != 0.0),
        _ => true,
    }
}

/// The kind of value a settable parameter takes.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int,
    Long,
    Str,
    /// Not settable with `setParameter` (startup only, or its own command).
    Fixed,
}

struct Param {
    name: &'static str,
    kind: Kind,
    default: fn() -> Bson,
}

const PARAMETERS: &[Param] = &[
    Param {
        name: "authenticationMechanisms",
        kind: Kind::Fixed,
        default: || Bson::from(vec!["SCRAM-SHA-1", "SCRAM-SHA-256"]),
    },
    Param {
        name: "cursorTimeoutMillis",
        kind: Kind::Long,
        default: || Bson::Int64(600_000),
    },
    Param {
        name: "enableTestCommands",
        kind: Kind::Fixed,
        default: || Bson::Boolean(true),
    },
    Param {
        name: "featureCompatibilityVersion",
        kind: Kind::Fixed,
        default: || Bson::Null,
    },
    Param {
        name: "internalQueryFrameworkControl",
        kind: Kind::Str,
        default: || Bson::String("trySbeRestricted".into()),
    },
    Param {
        name: "internalQueryMaxAddToSetBytes",
        kind: Kind::Long,
        default: || Bson::Int64(104_857_600),
    },
    Param {
        name: "logLevel",
        kind: Kind::Int,
        default: || Bson::Int32(0),
    },
    Param {
        name: "maxTransactionLockRequestTimeoutMillis",
        kind: Kind::Int,
        default: || Bson::Int32(5),
    },
    Param {
        name: "notablescan",
        kind: Kind::Bool,
        default: || Bson::Boolean(false),
    },
    Param {
        name: "quiet",
        kind: Kind::Bool,
        default: || Bson::Boolean(false),
    },
    Param {
        name: "replicaSetName",
        kind: Kind::Fixed,
        default: || Bson::Null,
    },
    Param {
        name: "requireApiVersion",
        kind: Kind::Bool,
        default: || Bson::Boolean(false),
    },
    Param {
        name: "storageEngine",
        kind: Kind::Fixed,
        default: || Bson::String("inMemory".into()),
    },
    Param {
        name: "transactionLifetimeLimitSeconds",
        kind: Kind::Int,
        default: || Bson::Int32(60),
    },
    Param {
        name: "ttlMonitorEnabled",
        kind: Kind::Bool,
        default: || Bson::Boolean(true),
    },
];

/// A parameter's value as `getParameter` shows it.
fn current(ctx: &Ctx<'_>, p: &Param) -> Bson {
    match p.name {
        "featureCompatibilityVersion" => {
            Bson::Document(doc! {"version": ctx.server.admin.inner.lock().fcv.clone()})
        }
        "replicaSetName" => Bson::from(ctx.server.replica_set()),
        name => ctx
            .server
            .admin
            .parameter(name)
            .unwrap_or_else(|| (p.default)()),
    }
}

/// `getParameter: 1 | "*" | {allParameters, showDetails}` with the parameters named as fields.
pub fn get_parameter(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    let (all, details) = match ctx.arg() {
        Bson::String(s) if s == "*" => (true, false),
        Bson::Document(d) => (
            d.get("allParameters").is_some_and(truthy),
            d.get("showDetails").is_some_and(truthy),
        ),
        _ => (false, false),
    };
    let show = |p: &Param| {
        let value = current(ctx, p);
        if details {
            Bson::Document(doc! {
                "value": value,
                "settableAtRuntime": p.kind != Kind::Fixed,
                "settableAtStartup": true,
            })
        } else {
            value
        }
    };
    let mut reply = Document::new();
    if all {
        for p in PARAMETERS {
            reply.insert(p.name, show(p));
        }
        return Ok(Reply::Doc(reply));
    }
    for k in ctx.body.keys().skip(1) {
        if super::GENERIC_FIELDS.contains(&k.as_str()) {
            continue;
        }
        let Some(p) = PARAMETERS.iter().find(|p| p.name == k) else {
            return Err(CommandError::invalid_options(format!(
                "no option found to get: {k}"
            )));
        };
        reply.insert(k.clone(), show(p));
    }
    if reply.is_empty() {
        return Err(CommandError::invalid_options("no option found to get"));
    }
    Ok(Reply::Doc(reply))
}

fn coerce(name: &str, kind: Kind, v: &Bson) -> Result<Bson> {
    let bad = || {
        CommandError::bad_value(format!(
            "Invalid value for {name}: expected {}, got {}",
            match kind {
                Kind::Bool => "a boolean",
                Kind::Str => "a string",
                _ => "a number",
            },
            type_name(v)
        ))
    };
    match (kind, v) {
        (Kind::Bool, Bson::Boolean(b)) => Ok(Bson::Boolean(*b)),
        (Kind::Bool, v) if is_number(v) => Ok(Bson::Boolean(truthy(v))),
        (Kind::Int | Kind::Long, v) if is_number(v) => {
            let f = as_f64(v).ok_or_else(bad)?;
            if f.fract() != 0.0 || !f.is_finite() {
                return Err(bad());
            }
            Ok(if kind == Kind::Int {
                if f < f64::from(i32::MIN) || f > f64::from(i32::MAX) {
                    return Err(bad());
                }
                Bson::Int32(f as i32)
            } else {
                Bson::Int64(f as i64)
            })
        }
        (Kind::Str, Bson::String(s)) => Ok(Bson::String(s.clone())),
        _ => Err(bad()),
    }
}

/// `setParameter: 1, <name>: <value>, ...`: validates every named parameter before setting
/// any, and answers `was`, the first one's previous value.
pub fn set_parameter(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    let mut set: Vec<(&'static str, Bson)> = Vec::new();
    for (k, v) in ctx.body.iter().skip(1) {
        if super::GENERIC_FIELDS.contains(&k.as_str()) {
            continue;
        }
        let Some(p) = PARAMETERS.iter().find(|p| p.name == k) else {
            return Err(CommandError::invalid_options(format!(
                "attempted to set unrecognized parameter [{k}], use help:true to see options "
            )));
        };
        if p.kind == Kind::Fixed {
            return Err(CommandError::new(
                codes::ILLEGAL_OPERATION,
                format!("not allowed to change [{k}] at runtime"),
            ));
        }
        if set.iter().any(|(n, _)| *n == p.name) {
            return Err(CommandError::invalid_options(format!(
                "attempted to set parameter [{k}] twice in the same setParameter command, once to value: [{}], and once to value: [{v}]",
                set.iter()
                    .find(|(n, _)| *n == p.name)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default()
            )));
        }
        set.push((p.name, coerce(k, p.kind, v)?));
    }
    if set.is_empty() {
        return Err(CommandError::invalid_options(
            "no option found to set, use help:true to see options ",
        ));
    }
    let was = ctx.server.admin.parameter(set[0].0).unwrap_or(Bson::Null);
    let mut st = ctx.server.admin.inner.lock();
    for (name, v) in set {
        st.parameters.insert(name.to_string(), v);
    }
    Ok(Reply::Doc(doc! {"was": was}))
}

/// `getDefaultRWConcern`: the defaults set, else the implicit ones (`local`, `w: majority`),
/// with `localUpdateWallClockTime` (when this node's cache last took them: the last set, else
/// its start) and `inMemory: true` when asked for the cached values (`makeResponse` in
/// `rwc_defaults_commands.cpp`).
pub fn get_default_rw_concern(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    ctx.check_fields(&["inMemory"])?;
    let in_memory = ctx.opt_idl_bool("inMemory")?.unwrap_or(false);
    let (set, local) = {
        let st = ctx.server.admin.inner.lock();
        (st.rw_defaults.clone(), st.rw_local_update)
    };
    let mut reply = with_sources(set.unwrap_or_default());
    if in_memory {
        reply.insert("inMemory", true);
    }
    let local = local.unwrap_or_else(|| {
        bson::DateTime::from_millis(
            bson::DateTime::now().timestamp_millis()
                - ctx.server.started.elapsed().as_millis() as i64,
        )
    });
    reply.insert("localUpdateWallClockTime", local);
    Ok(Reply::Doc(reply))
}

/// Completes a stored defaults document with the implicit values and their sources.
fn with_sources(mut d: Document) -> Document {
    let rc_set = d
        .get_document("defaultReadConcern")
        .is_ok_and(|rc| !rc.is_empty());
    if !rc_set {
        d.insert("defaultReadConcern", doc! {"level": "local"});
    }
    let wc_set = d.contains_key("defaultWriteConcern");
    if !wc_set {
        d.insert("defaultWriteConcern", doc! {"w": "majority", "wtimeout": 0});
    }
    d.insert(
        "defaultWriteConcernSource",
        if wc_set { "global" } else { "implicit" },
    );
    d.insert(
        "defaultReadConcernSource",
        if rc_set { "global" } else { "implicit" },
    );
    d
}

/// `setDefaultRWConcern`: validates as `read_write_concern_defaults.cpp` does, stores, and
/// answers the new defaults.
pub fn set_default_rw_concern(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    ctx.check_fields(&["defaultReadConcern", "defaultWriteConcern"])?;
    let rc = ctx.opt_doc("defaultReadConcern")?.cloned();
    let wc = ctx.opt_doc("defaultWriteConcern")?.cloned();
    if rc.is_none() && wc.is_none() {
        return Err(CommandError::bad_value(
            "At least one of the \"defaultReadConcern\" or \"defaultWriteConcern\" fields must be present",
        ));
    }
    if let Some(rc) = &rc {
        for k in rc.keys() {
            match k.as_str() {
                "level" => {}
                "afterOpTime" | "afterClusterTime" | "atClusterTime" => {
                    return Err(CommandError::bad_value(format!(
                        "'{k}' is not suitable for the default read concern"
                    )));
                }
                "provenance" => {
                    return Err(CommandError::bad_value(
                        "'provenance' must be unset in default read concern",
                    ));
                }
                _ => return Err(CommandError::unknown_field("ReadConcern", k)),
            }
        }
        match rc.get("level") {
            None => {}
            Some(Bson::String(l)) if ["local", "majority", "available"].contains(&l.as_str()) => {}
            Some(Bson::String(l)) if ["snapshot", "linearizable"].contains(&l.as_str()) => {
                return Err(CommandError::bad_value(format!(
                    "level: '{l}' is not suitable for the default read concern"
                )));
            }
            Some(Bson::String(l)) => {
                return Err(CommandError::bad_value(format!(
                    "Enumeration value '{l}' for field 'level' is not a valid value."
                )));
            }
            Some(other) => {
                return Err(CommandError::wrong_field_type(
                    "ReadConcern",
                    "level",
                    type_name(other),
                    &["string"],
                ));
            }
        }
    }
    let wc = match wc {
        Some(w) if w.is_empty() => Some(w),
        Some(w) => Some(normalise_write_concern(&w)?),
        None => None,
    };
    let now = ctx.server.oplog.now();
    let mut st = ctx.server.admin.inner.lock();
    let old = st.rw_defaults.clone().unwrap_or_default();
    if wc.as_ref().is_some_and(|w| w.is_empty()) && old.contains_key("defaultWriteConcern") {
        return Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            "The global default write concern cannot be unset once it is set.",
        ));
    }
    let mut new = Document::new();
    match rc {
        Some(rc) if !rc.is_empty() => {
            new.insert("defaultReadConcern", rc);
        }
        Some(_) => {}
        None => {
            if let Ok(rc) = old.get_document("defaultReadConcern") {
                new.insert("defaultReadConcern", rc.clone());
            }
        }
    }
    match wc {
        Some(wc) if !wc.is_empty() => {
            new.insert("defaultWriteConcern", wc);
        }
        Some(_) => {}
        None => {
            if let Ok(wc) = old.get_document("defaultWriteConcern") {
                new.insert("defaultWriteConcern", wc.clone());
            }
        }
    }
    let wall = bson::DateTime::now();
    new.insert("updateOpTime", now);
    new.insert("updateWallClockTime", wall);
    st.rw_defaults = Some(new.clone());
    st.rw_local_update = Some(wall);
    drop(st);
    let mut reply = with_sources(new);
    reply.insert("localUpdateWallClockTime", wall);
    Ok(Reply::Doc(reply))
}

/// A default write concern as the server stores it: `w` and `wtimeout` (0 when omitted);
/// `w: 0` is refused.
fn normalise_write_concern(w: &Document) -> Result<Document> {
    let mut out = Document::new();
    for (k, v) in w {
        match (k.as_str(), v) {
            ("w", Bson::String(_)) => {}
            ("w", v) if is_number(v) => {
                if as_f64(v).is_some_and(|n| n < 1.0) {
                    return Err(CommandError::bad_value(
                        "Unacknowledged write concern is not suitable for the default write concern",
                    ));
                }
            }
            ("w", other) => {
                return Err(CommandError::type_mismatch(format!(
                    "w has to be a number or string; found: {}",
                    type_name(other)
                )));
            }
            ("j" | "fsync", Bson::Boolean(_)) | ("wtimeout", _) => {}
            ("provenance", _) => {
                return Err(CommandError::bad_value(
                    "'provenance' must be unset in default write concern",
                ));
            }
            _ => return Err(CommandError::unknown_field("WriteConcern", k)),
        }
        out.insert(k.clone(), v.clone());
    }
    if !out.contains_key("wtimeout") {
        out.insert("wtimeout", 0);
    }
    Ok(out)
}

/// `setFeatureCompatibilityVersion: "<version>", confirm: true`.
pub fn set_fcv(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    ctx.check_fields(&["confirm", "fromConfigServer", "dryRun"])?;
    let Bson::String(version) = ctx.arg().clone() else {
        return Err(CommandError::wrong_field_type(
            "setFeatureCompatibilityVersion",
            "setFeatureCompatibilityVersion",
            type_name(ctx.arg()),
            &["string"],
        ));
    };
    let binary = ctx.server.admin.inner.lock().binary.clone();
    let allowed = last_lts_and_continuous(&binary);
    if !allowed.contains(&version.as_str()) {
        return Err(CommandError::bad_value(format!(
            "Invalid feature compatibility version value '{version}'; expected one of {}. See \
             https://docs.mongodb.com/master/release-notes/{binary}-compatibility/#feature-compatibility.",
            allowed
                .iter()
                .map(|v| format!("'{v}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // The version is an `fcv_string`, checked by the IDL parser before the command asks
    // for `confirm`.
    if ctx.body.get("confirm") != Some(&Bson::Boolean(true)) {
        return Err(CommandError::new(
            7369100,
            "Once you have upgraded to or downgraded to the specified FCV, you will not be able to \
             downgrade to or upgrade from a previous version. Please run the command again with \
             `confirm: true` to continue.",
        ));
    }
    ctx.server.admin.inner.lock().fcv = version;
    Ok(Reply::Doc(Document::new()))
}

/// The versions a binary accepts as FCV: itself and the last LTS before it.
fn last_lts_and_continuous(binary: &str) -> Vec<&'static str> {
    match binary {
        "6.0" => vec!["5.0", "6.0"],
        "7.0" => vec!["6.0", "7.0"],
        _ => vec!["7.0", "8.0"],
    }
}

/// `currentOp` (or `$all`/`$ownOps` plus a filter): the operations in progress, this one
/// included.
pub fn current_op(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    let mut filter = Document::new();
    for (k, v) in ctx.body.iter().skip(1) {
        if super::GENERIC_FIELDS.contains(&k.as_str()) || k == "$all" || k == "$ownOps" {
            continue;
        }
        filter.insert(k.clone(), v.clone());
    }
    let matcher = crate::query::matcher::Matcher::new(&filter, &Document::new())?;
    let own = ctx.body.get("$ownOps").is_some_and(truthy);
    let st = ctx.server.admin.inner.lock();
    let mut ids: Vec<_> = st.ops.keys().copied().collect();
    ids.sort_unstable();
    let mut inprog = Vec::new();
    for id in ids {
        let op = &st.ops[&id];
        if own && op.conn != ctx.conn.id {
            continue;
        }
        let elapsed = op.started.elapsed();
        let mut d = doc! {
            "type": "op",
            "host": ctx.server.host.clone(),
            "desc": format!("conn{}", op.conn),
            "connectionId": op.conn,
            "client": op.client.clone(),
            "active": true,
            "currentOpTime": bson::DateTime::now().try_to_rfc3339_string().unwrap_or_default(),
            "opid": i64::from(id),
            "secs_running": elapsed.as_secs() as i64,
            "microsecs_running": elapsed.as_micros() as i64,
            "op": "command",
            "ns": op.ns.clone(),
            "command": op.command.clone(),
            "numYields": 0,
            "waitingForLock": op.waiting_for_lock,
        };
        if let Some(app) = &op.app_name {
            d.insert("appName", app.clone());
        }
        if matcher.matches(&d) {
            inprog.push(Bson::Document(d));
        }
    }
    let fsync_lock = st.fsync_locks > 0;
    drop(st);
    let mut reply = doc! {"inprog": inprog};
    if fsync_lock {
        reply.insert("fsyncLock", true);
        reply.insert(
            "info",
            "use db.fsyncUnlock() to terminate the fsync write/snapshot lock",
        );
    }
    Ok(Reply::Doc(reply))
}

/// `killOp: 1, op: <opid>` (`KillOpCmdBase::parseOpId`, a plain command: other fields are
/// ignored): marks the operation killed; it fails with Interrupted (11601) at its next
/// interruption point (here: while it waits for a lock).
pub fn kill_op(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    // `bsonExtractIntegerField(cmdObj, "op")`.
    let v = ctx
        .body
        .get("op")
        .ok_or_else(|| CommandError::new(codes::NO_SUCH_KEY, "Missing expected field \"op\""))?;
    if !is_number(v) {
        return Err(CommandError::type_mismatch(format!(
            "Expected field \"op\" to have numeric type, but found {}",
            type_name(v)
        )));
    }
    let f = as_f64(v).unwrap_or(f64::NAN);
    if f.fract() != 0.0 || !f.is_finite() || f.abs() >= 9.3e18 {
        return Err(CommandError::bad_value(format!(
            "Expected field \"op\" to have a value exactly representable as a 64-bit integer, but found op: {}",
            crate::util::shell_repr(v)
        )));
    }
    let id = f as i64;
    if i32::try_from(id).is_err() {
        return Err(CommandError::new(
            26823,
            format!("invalid op : {id}. Op ID cannot be represented with 32 bits"),
        ));
    }
    // The server casts the id to unsigned: a negative one names no operation.
    if let Ok(id) = u32::try_from(id) {
        let mut st = ctx.server.admin.inner.lock();
        if let Some(op) = st.ops.get_mut(&id) {
            op.killed = true;
        }
    }
    ctx.server.admin.bump();
    Ok(Reply::Doc(doc! {"info": "attempting to kill op"}))
}

/// `logRotate: 1 | "server" | "audit"`.
pub fn log_rotate(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    match ctx.arg() {
        Bson::String(s) if s != "server" && s != "audit" => Err(CommandError::new(
            codes::NO_SUCH_KEY,
            format!("Unknown log type for rotate: {s}"),
        )),
        _ => Ok(Reply::Doc(Document::new())),
    }
}

/// `dropConnections: 1, hostAndPort: [..]`: this server keeps no outgoing pools, so there is
/// nothing to drop, but the argument is checked as the IDL does.
pub fn drop_connections(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    ctx.check_fields(&["hostAndPort"])?;
    match ctx.body.get("hostAndPort") {
        Some(Bson::Array(hosts)) => {
            for h in hosts {
                if !matches!(h, Bson::String(_)) {
                    return Err(CommandError::wrong_field_type(
                        "dropConnections",
                        "hostAndPort",
                        type_name(h),
                        &["string"],
                    ));
                }
            }
            Ok(Reply::Doc(Document::new()))
        }
        Some(other) => Err(CommandError::wrong_field_type(
            "dropConnections",
            "hostAndPort",
            type_name(other),
            &["array"],
        )),
        None => Err(CommandError::missing_field(
            "dropConnections",
            "hostAndPort",
        )),
    }
}

/// `autoCompact: <bool>`: accepted; the in-memory store has nothing to compact.
pub fn auto_compact(ctx: &mut Ctx<'_>) -> Result<Reply> {
    admin_only(ctx)?;
    ctx.check_fields(&["freeSpaceTargetMB", "runOnce"])?;
    match ctx.arg() {
        Bson::Boolean(_) => Ok(Reply::Doc(Document::new())),
        other => Err(CommandError::wrong_field_type(
            "autoCompact",
            "autoCompact",
            type_name(other),
            &["bool"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_commands_are_shown_whole_and_sized_exactly() {
        let d = doc! {"find": "c", "filter": {"x": [1, "two", 3.5]}, "comment": "hi"};
        let mut buf = Vec::new();
        d.to_writer(&mut buf).unwrap();
        let exact = buf.len();
        assert_eq!(encoded_len_within(&d, MAX_SHOWN), Some(exact));
        assert_eq!(summary(&d, |_| false), Bson::Document(d));
    }

    #[test]
    fn large_commands_are_truncated_with_their_comment() {
        let docs: Vec<Bson> = (0..1000)
            .map(|i| Bson::Document(doc! {"_id": i, "pad": "x".repeat(100)}))
            .collect();
        let d = doc! {"insert": "c", "documents": docs, "comment": {"why": "load"}};
        assert_eq!(encoded_len_within(&d, MAX_SHOWN), None);
        // Sent as a document sequence, the documents are not part of the command object.
        let shown = summary(&d, |k| k == "documents");
        assert_eq!(
            shown,
            Bson::Document(doc! {"insert": "c", "comment": {"why": "load"}})
        );
        let Bson::Document(s) = summary(&d, |_| false) else {
            panic!("not a document")
        };
        let text = s.get_str("$truncated").unwrap();
        assert_eq!(text.len(), MAX_SHOWN);
        assert!(text.ends_with("...") && text.contains("insert"), "{text}");
        assert_eq!(s.get_document("comment").unwrap(), &doc! {"why": "load"});
    }
}
