//! The server: accepts connections, reads wire messages, runs each command and writes the
//! reply with the envelope every real reply carries (`ok`, `operationTime`, `$clusterTime`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::time::Instant;

use bson::raw::cstr;
use bson::{Bson, Document, RawDocumentBuf, doc, oid::ObjectId, spec::BinarySubtype};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cluster::ClusterOptions;
use crate::commands::{self, Reply};
use crate::cursor::CursorTable;
use crate::error::{CommandError, codes};
use crate::oplog::Oplog;
use crate::storage::Catalog;
use crate::wire::{self, Request, WireError};

/// Like a real primary, writes a no-op every 10 s when idle, so that change streams' resume
/// points keep moving on a quiet cluster.
async fn periodic_noop(server: std::sync::Weak<Server>) {
    let period = std::time::Duration::from_secs(10);
    loop {
        tokio::time::sleep(period).await;
        let Some(server) = server.upgrade() else {
            return;
        };
        let now = server.oplog.now();
        let idle = (bson::DateTime::now().timestamp_millis() / 1000) as u32 >= now.time + 10;
        if idle {
            server.oplog.append(
                String::new(),
                None,
                crate::oplog::EntryKind::Noop {
                    data: doc! {"msg": "periodic noop"},
                },
                None,
            );
        }
    }
}

/// Whether a request is a `hello` that may wait (`topologyVersion` and `maxAwaitTimeMS`).
fn is_awaitable_hello(body: &RawDocumentBuf) -> bool {
    let name = body
        .iter()
        .next()
        .and_then(|e| e.ok())
        .map(|(k, _)| k.as_str().to_string());
    matches!(name.as_deref(), Some("hello" | "isMaster" | "ismaster"))
        && body.get("topologyVersion").ok().flatten().is_some()
        && body.get("maxAwaitTimeMS").ok().flatten().is_some()
}

/// The commands a real server still accepts over legacy OP_QUERY (handshake and auth).
const OP_QUERY_COMMANDS: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "_isSelf",
    "authenticate",
    "buildinfo",
    "buildInfo",
    "saslStart",
    "saslContinue",
];

/// A reply ready to be written.
enum Outgoing {
    /// Encoded whole.
    Bytes(Vec<u8>),
    /// An OP_MSG's header and its body.
    Msg([u8; 21], RawDocumentBuf),
}

/// The state of one emulated replica set member.
#[derive(Debug)]
pub struct Server {
    /// The advertised `host:port` (`hosts`, `me`, `primary`).
    pub(crate) host: String,
    pub(crate) options: ClusterOptions,
    pub(crate) catalog: Catalog,
    pub(crate) oplog: Arc<Oplog>,
    pub(crate) cursors: CursorTable,
    pub(crate) sessions: crate::session::Sessions,
    pub(crate) transactions: crate::transaction::Transactions,
    pub(crate) failpoints: crate::failpoint::FailPoints,
    drops: watch::Sender<u64>,
    next_connection_id: AtomicI64,
    next_request_id: AtomicI32,
    pub(crate) started: Instant,
    /// The `electionId` (constant: this member never steps down by itself).
    pub(crate) election_id: ObjectId,
    /// Identifies this server process in `topologyVersion`.
    pub(crate) process_id: ObjectId,
    /// Connections currently open.
    pub(crate) open_connections: AtomicI64,
    /// Connections accepted since start.
    pub(crate) total_connections: AtomicI64,
    /// The users (`admin.system.users`).
    pub(crate) users: crate::auth::Users,
    /// `setUserWriteBlockMode` state.
    pub(crate) write_block: parking_lot::Mutex<crate::commands::security::WriteBlock>,
    /// Cluster parameters (`getClusterParameter`), each `{_id, clusterParameterTime, ...}`.
    pub(crate) cluster_parameters: parking_lot::Mutex<Vec<Document>>,
    /// fsync locks, parameters, default read/write concerns, operations in progress.
    pub(crate) admin: crate::commands::admin::Admin,
    /// Per command name, how many times it ran (`serverStatus.metrics.commands.NAME.total`).
    pub(crate) command_counts: parking_lot::Mutex<std::collections::BTreeMap<String, i64>>,
    /// Result documents computed in full before a cursor handed them out (blocking plans);
    /// a streaming scan adds none.
    pub(crate) materialised: std::sync::atomic::AtomicU64,
    /// Buffers of cursor replies already sent, for the next batches: a scan's 16 MiB batches
    /// then reuse memory already mapped instead of faulting fresh pages in for each one.
    reply_buffers: parking_lot::Mutex<Vec<Vec<u8>>>,
}

/// How many spare reply buffers the server keeps, and the sizes it keeps: the idle memory they
/// hold is bounded (two buffers of at most 32 MiB), whatever the results.
const SPARE_REPLY_BUFFERS: usize = 2;
const SPARE_REPLY_MIN: usize = 256 * 1024;
const SPARE_REPLY_MAX: usize = 2 * crate::cursor::MAX_BATCH_BYTES;

/// What the server knows about one client connection.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `connectionId` in hello replies.
    pub id: i64,
    /// The client's application name from its handshake.
    pub app_name: Option<String>,
    /// The peer's address.
    pub peer: String,
    /// The authenticated user, `(user, db)`.
    pub user: Option<(String, String)>,
    /// The SCRAM conversation in progress.
    pub sasl: Option<crate::auth::scram::Conversation>,
    /// The conversation asked to skip the final empty exchange.
    pub skip_empty_exchange: bool,
}

impl Server {
    pub(crate) fn new(host: String, options: ClusterOptions) -> Arc<Server> {
        let series = options.server_version.series();
        let oplog = Oplog::new(options.oplog_limits);
        let users = crate::auth::Users::default();
        if let Some(auth) = &options.auth {
            // The first user: root on admin, as a deployment's administrator would create it.
            let credentials = crate::auth::make_credentials(
                &auth.user,
                &auth.password,
                &[
                    crate::auth::scram::Mechanism::Sha1,
                    crate::auth::scram::Mechanism::Sha256,
                ],
            )
            .unwrap_or_default();
            let _ = users.insert(crate::auth::User {
                user: auth.user.clone(),
                db: "admin".into(),
                user_id: bson::Uuid::new(),
                roles: vec![("root".into(), "admin".into())],
                custom_data: None,
                credentials,
            });
        }
        Arc::new(Server {
            host,
            options,
            catalog: Catalog::new(Arc::clone(&oplog)),
            oplog,
            cursors: CursorTable::default(),
            sessions: crate::session::Sessions::default(),
            transactions: crate::transaction::Transactions::default(),
            failpoints: crate::failpoint::FailPoints::default(),
            drops: watch::channel(0).0,
            next_connection_id: AtomicI64::new(1),
            next_request_id: AtomicI32::new(1),
            started: Instant::now(),
            election_id: ObjectId::parse_str("7fffffff0000000000000001").expect("valid oid"),
            process_id: ObjectId::new(),
            open_connections: AtomicI64::new(0),
            total_connections: AtomicI64::new(0),
            users,
            write_block: parking_lot::Mutex::default(),
            admin: crate::commands::admin::Admin::new(series),
            cluster_parameters: parking_lot::Mutex::new(
                crate::commands::security::default_cluster_parameters(),
            ),
            command_counts: parking_lot::Mutex::default(),
            materialised: std::sync::atomic::AtomicU64::new(0),
            reply_buffers: parking_lot::Mutex::default(),
        })
    }

    /// How many times the command `name` ran since start (test hook; also in
    /// `serverStatus.metrics.commands`).
    pub fn command_count(&self, name: &str) -> i64 {
        self.command_counts.lock().get(name).copied().unwrap_or(0)
    }

    /// How many result documents were materialised (computed in full before a cursor's first
    /// batch) since start: a test hook showing that a streaming scan holds none of them.
    pub fn materialised_documents(&self) -> u64 {
        self.materialised.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An empty buffer for a cursor reply's batch: a spare one when there is one.
    pub(crate) fn reply_buffer(&self) -> Vec<u8> {
        self.reply_buffers.lock().pop().unwrap_or_default()
    }

    /// Keeps a sent reply's buffer for a later batch, when it is large enough to be worth it.
    fn recycle(&self, mut buffer: Vec<u8>) {
        if (SPARE_REPLY_MIN..=SPARE_REPLY_MAX).contains(&buffer.capacity()) {
            let mut spare = self.reply_buffers.lock();
            if spare.len() < SPARE_REPLY_BUFFERS {
                buffer.clear();
                spare.push(buffer);
            }
        }
    }

    /// Whether clients must authenticate (`ClusterOptions::auth`).
    pub fn auth_enabled(&self) -> bool {
        self.options.auth.is_some()
    }

    /// The oplog (test hooks: bound or truncate history).
    pub fn oplog(&self) -> &Arc<Oplog> {
        &self.oplog
    }

    /// The replica set name.
    pub fn replica_set(&self) -> &str {
        &self.options.replica_set
    }

    /// Accepts connections until `stop` turns true, then closes every connection.
    pub(crate) async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut connections = JoinSet::new();
        let mut background = JoinSet::new();
        background.spawn(crate::ttl::run(
            Arc::downgrade(&self),
            self.options.ttl_monitor_period,
        ));
        background.spawn(crate::cursor::reap(Arc::downgrade(&self)));
        background.spawn(periodic_noop(Arc::downgrade(&self)));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let server = Arc::clone(&self);
                    let conn = Connection {
                        id: self.next_connection_id.fetch_add(1, Ordering::Relaxed),
                        app_name: None,
                        peer: peer.to_string(),
                        ..Connection::default()
                    };
                    connections.spawn(server.handle_connection(stream, conn));
                }
                _ = stop.changed() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
        drop(listener);
        connections.shutdown().await;
        background.shutdown().await;
    }

    async fn handle_connection(self: Arc<Self>, stream: TcpStream, conn: Connection) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        self.total_connections.fetch_add(1, Ordering::Relaxed);
        let mut drops = self.drops.subscribe();
        // Dropping the connection's future closes its socket, whatever it was doing.
        tokio::select! {
            _ = Arc::clone(&self).serve_connection(stream, conn) => {}
            _ = drops.changed() => {}
        }
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Closes every client connection at once, as a network failure would (a test hook).
    pub fn drop_connections(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    async fn serve_connection(self: Arc<Self>, stream: TcpStream, mut conn: Connection) {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::with_capacity(64 * 1024, read);
        loop {
            let (header, request) = match wire::read_message(&mut read).await {
                Ok(Some(m)) => m,
                Ok(None) | Err(WireError::Io(_)) => break,
                Err(WireError::Fatal(reason)) => {
                    tracing::debug!(connection = conn.id, %reason, "closing connection");
                    break;
                }
                Err(WireError::Invalid(code, message, header)) => {
                    let reply = self.error_reply(&CommandError::new(code, message));
                    let bytes =
                        wire::encode_msg_reply(self.request_id(), header.request_id, &reply);
                    if write.write_all(&bytes).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let outcome = match request {
                Request::Msg {
                    body,
                    sequences,
                    more_to_come,
                    exhaust_allowed,
                } => {
                    if exhaust_allowed && is_awaitable_hello(&body) {
                        // The streaming protocol: reply now and then every maxAwaitTimeMS,
                        // unasked, until the client goes away.
                        self.stream_hello(&mut write, body, header.request_id, conn.clone())
                            .await;
                        break;
                    }
                    let reply = Arc::clone(&self)
                        .run_isolated(body, sequences, conn.clone())
                        .await;
                    if more_to_come {
                        None
                    } else {
                        Some(reply.map(|(r, c)| {
                            let head = wire::encode_msg_head(
                                self.request_id(),
                                header.request_id,
                                r.as_bytes().len(),
                            );
                            (Outgoing::Msg(head, r), c)
                        }))
                    }
                }
                Request::Query {
                    full_collection_name,
                    query,
                } => {
                    let reply = self
                        .run_op_query(full_collection_name, query, conn.clone())
                        .await;
                    Some(reply.map(|(r, c)| {
                        (
                            Outgoing::Bytes(wire::encode_op_reply(
                                self.request_id(),
                                header.request_id,
                                &r,
                            )),
                            c,
                        )
                    }))
                }
            };
            match outcome {
                None => {}
                Some(None) => break, // the command asked for the connection to be closed
                Some(Some((out, new_conn))) => {
                    conn = new_conn;
                    let written = match out {
                        Outgoing::Bytes(bytes) => write.write_all(&bytes).await,
                        // A large reply (a batch) goes out as built, after its header.
                        Outgoing::Msg(head, body) if body.as_bytes().len() > 64 * 1024 => {
                            let written = match write.write_all(&head).await {
                                Ok(()) => write.write_all(body.as_bytes()).await,
                                Err(e) => Err(e),
                            };
                            self.recycle(body.into_bytes());
                            written
                        }
                        Outgoing::Msg(head, body) => {
                            let mut bytes = Vec::with_capacity(head.len() + body.as_bytes().len());
                            bytes.extend_from_slice(&head);
                            bytes.extend_from_slice(body.as_bytes());
                            // A small batch may have been written into a spare buffer.
                            self.recycle(body.into_bytes());
                            write.write_all(&bytes).await
                        }
                    };
                    if written.is_err() {
                        break;
                    }
                }
            }
        }
    }

    async fn stream_hello(
        self: &Arc<Self>,
        write: &mut tokio::net::tcp::OwnedWriteHalf,
        body: RawDocumentBuf,
        mut response_to: i32,
        conn: Connection,
    ) {
        loop {
            let Some((reply, _)) = Arc::clone(self)
                .run_isolated(body.clone(), Vec::new(), conn.clone())
                .await
            else {
                return;
            };
            let request_id = self.request_id();
            let bytes = wire::encode_msg_reply_flags(request_id, response_to, &reply, true);
            if write.write_all(&bytes).await.is_err() {
                return;
            }
            response_to = request_id;
        }
    }

    /// This server process's topology version: it never changes while the process lives.
    pub(crate) fn topology_version(&self) -> Document {
        doc! {"processId": self.process_id, "counter": 0i64}
    }

    fn request_id(&self) -> i32 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn run_op_query(
        self: &Arc<Self>,
        full_collection_name: String,
        query: RawDocumentBuf,
        conn: Connection,
    ) -> Option<(RawDocumentBuf, Connection)> {
        // Drivers may wrap the command as {$query: {...}, $readPreference: ...}.
        let mut body = match wire::to_document(&query) {
            Ok(d) => d,
            Err(e) => {
                return Some((
                    self.error_reply(&CommandError::new(22, e.to_string())),
                    conn,
                ));
            }
        };
        if let Ok(inner) = body.get_document("$query") {
            body = inner.clone();
        }
        let name = body.keys().next().cloned().unwrap_or_default();
        let Some(db) = full_collection_name.strip_suffix(".$cmd") else {
            let e = CommandError::new(
                codes::UNSUPPORTED_OP_QUERY_COMMAND,
                format!(
                    "Unsupported OP_QUERY command: {name}. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal"
                ),
            );
            return Some((self.error_reply(&e), conn));
        };
        if !OP_QUERY_COMMANDS.contains(&name.as_str()) {
            let e = CommandError::new(
                codes::UNSUPPORTED_OP_QUERY_COMMAND,
                format!(
                    "Unsupported OP_QUERY command: {name}. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal"
                ),
            );
            return Some((self.error_reply(&e), conn));
        }
        body.insert("$db", db);
        let raw = match RawDocumentBuf::try_from(&body) {
            Ok(r) => r,
            Err(e) => {
                return Some((
                    self.error_reply(&CommandError::new(22, e.to_string())),
                    conn,
                ));
            }
        };
        Arc::clone(self).run_isolated(raw, Vec::new(), conn).await
    }

    /// Runs one command on its own task, so that a bug in a handler becomes an InternalError
    /// reply instead of taking the connection (or the server) down. `None`: close the
    /// connection.
    async fn run_isolated(
        self: Arc<Self>,
        body: RawDocumentBuf,
        sequences: Vec<(String, Vec<RawDocumentBuf>)>,
        conn: Connection,
    ) -> Option<(RawDocumentBuf, Connection)> {
        let server = Arc::clone(&self);
        // Kept so that a handler's panic does not cost the connection its id or its user.
        let saved = conn.clone();
        let task = tokio::spawn(async move {
            let mut conn = conn;
            let result = commands::run(&server, &mut conn, body, sequences).await;
            (result, conn)
        });
        match task.await {
            Ok((Ok(Reply::CloseConnection), _)) => None,
            Ok((Ok(reply), conn)) => Some((self.success_reply(reply), conn)),
            Ok((Err(e), conn)) => Some((self.error_reply(&e), conn)),
            Err(join) => {
                let e = CommandError::new(
                    codes::INTERNAL_ERROR,
                    format!("command failed internally: {join}"),
                );
                Some((self.error_reply(&e), saved))
            }
        }
    }

    fn success_reply(&self, reply: Reply) -> RawDocumentBuf {
        let mut raw = match reply {
            Reply::Doc(mut d) => {
                if !d.contains_key("ok") {
                    d.insert("ok", 1.0);
                }
                RawDocumentBuf::try_from(&d).unwrap_or_default()
            }
            Reply::Raw(mut r) => {
                r.append(cstr!("ok"), 1.0);
                r
            }
            Reply::CloseConnection => RawDocumentBuf::new(),
        };
        self.append_cluster_time(&mut raw);
        raw
    }

    fn error_reply(&self, e: &CommandError) -> RawDocumentBuf {
        let mut doc = e.to_document();
        // NotPrimaryError codes carry the server's topologyVersion, so that drivers can tell a
        // stale error from a real state change (shutdown errors carry it only in quiesce mode).
        if matches!(e.code, 189 | 10107 | 11602 | 13435 | 13436)
            && !doc.contains_key("topologyVersion")
        {
            doc.insert("topologyVersion", self.topology_version());
        }
        let mut raw = RawDocumentBuf::try_from(&doc).unwrap_or_default();
        self.append_cluster_time(&mut raw);
        raw
    }

    fn append_cluster_time(&self, raw: &mut RawDocumentBuf) {
        let now = self.oplog.now();
        let cluster_time = doc! {
            "clusterTime": now,
            "signature": {
                "hash": Bson::Binary(bson::Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 20] }),
                "keyId": 0i64,
            }
        };
        if let Ok(ct) = RawDocumentBuf::try_from(&cluster_time) {
            raw.append(cstr!("$clusterTime"), ct);
        }
        raw.append(cstr!("operationTime"), now);
    }

    /// A document of the server's own identity (`hello` fields that never change).
    pub(crate) fn hello_fields(&self, conn: &Connection) -> Document {
        let now = self.oplog.now();
        let wall = bson::DateTime::now();
        let mut fields = doc! {
            "hosts": [self.host.clone()],
            "setName": self.options.replica_set.clone(),
            "setVersion": 1,
            "secondary": false,
            "primary": self.host.clone(),
            "me": self.host.clone(),
            "electionId": self.election_id,
            "lastWrite": {
                "opTime": {"ts": now, "t": 1i64},
                "lastWriteDate": wall,
                "majorityOpTime": {"ts": now, "t": 1i64},
                "majorityWriteDate": wall,
            },
            "maxBsonObjectSize": wire::MAX_BSON_SIZE as i32,
            "maxMessageSizeBytes": wire::MAX_MESSAGE_SIZE as i32,
            "maxWriteBatchSize": 100_000,
            "localTime": wall,
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": conn.id,
            "topologyVersion": self.topology_version(),
            "minWireVersion": 0,
            "maxWireVersion": self.options.server_version.max_wire_version(),
            "readOnly": false,
        };
        if self.options.mongos {
            // A router's handshake: no replica set fields, `msg: "isdbgrid"`.
            for f in [
                "hosts",
                "setName",
                "setVersion",
                "secondary",
                "primary",
                "me",
                "electionId",
                "lastWrite",
            ] {
                fields.remove(f);
            }
            fields.insert("msg", "isdbgrid");
        }
        fields
    }
}
