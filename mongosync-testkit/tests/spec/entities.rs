//! Entities of a test: clients (with command monitoring), databases, collections, sessions,
//! cursors, change streams and saved values.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bson::{Bson, Document};
use mongodb::change_stream::ChangeStream;
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::{
    ClientOptions, CollectionOptions, DatabaseOptions, ServerApi, ServerApiVersion, SessionOptions,
};
use mongodb::{Client, ClientSession, Collection, Cursor, Database};

use crate::Fail;

/// A captured command monitoring event.
#[derive(Debug, Clone)]
pub enum Ev {
    Started {
        name: String,
        db: String,
        command: Document,
        service_id: bool,
        conn_id: bool,
    },
    Succeeded {
        name: String,
        db: String,
        reply: Document,
    },
    Failed {
        name: String,
        db: String,
    },
}

impl Ev {
    pub fn name(&self) -> &str {
        match self {
            Ev::Started { name, .. } | Ev::Succeeded { name, .. } | Ev::Failed { name, .. } => name,
        }
    }
}

pub struct ClientEntity {
    pub client: Client,
    pub events: Arc<Mutex<Vec<Ev>>>,
    /// Every command sent (observed or not), for `assert*LsidOnLastTwoCommands` and for
    /// waiting on a command the driver sends from a task of its own.
    pub sent: tokio::sync::watch::Sender<Vec<Sent>>,
    pub listening: Arc<AtomicBool>,
}

/// A command the client sent, and whether its reply (or failure) has come.
#[derive(Clone)]
pub struct Sent {
    pub request_id: i32,
    pub command: Document,
    pub done: bool,
}

pub struct SessionEntity {
    pub session: tokio::sync::Mutex<ClientSession>,
    pub lsid: Document,
    /// The id of the client entity the session was started from.
    pub client: String,
}

pub enum Entity {
    Client(Arc<ClientEntity>),
    Database(Database),
    Collection(Collection<Document>),
    Session(Arc<SessionEntity>),
    Cursor(Arc<tokio::sync::Mutex<Cursor<Document>>>),
    TailCursor(Arc<tokio::sync::Mutex<TailCursor>>),
    ChangeStream(Arc<tokio::sync::Mutex<ChangeStream<Document>>>),
    Value(Bson),
}

/// A tailable command cursor stepped one `getMore` at a time. The driver's `Cursor::advance`
/// sends `getMore`s until a batch is not empty (its one-step `try_advance` is crate-private),
/// while the spec's `iterateOnce` is one step: an empty batch returns nothing.
pub struct TailCursor {
    pub db: Database,
    pub session: ClientSession,
    pub coll: String,
    pub id: i64,
    pub batch: std::collections::VecDeque<Document>,
    /// `batchSize` and `maxTimeMS` for each `getMore`.
    pub get_more_options: Document,
}

/// The commands whose events are never reported (spec: "Security-sensitive commands").
pub const SENSITIVE: &[&str] = &[
    "authenticate",
    "saslstart",
    "saslcontinue",
    "getnonce",
    "createuser",
    "updateuser",
    "copydbgetnonce",
    "copydbsaslstart",
    "copydb",
];

#[derive(Default)]
pub struct Entities {
    pub map: HashMap<String, Entity>,
}

fn uri_value(v: &Bson) -> String {
    match v {
        Bson::String(s) => s.clone(),
        Bson::Boolean(b) => b.to_string(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Double(d) => d.to_string(),
        other => other.to_string(),
    }
}

pub fn opts<T: serde::de::DeserializeOwned>(d: &Document) -> Result<T, Fail> {
    bson::deserialize_from_document(d.clone())
        .map_err(|e| Fail::Failed(format!("bad options {d}: {e}")))
}

impl Entities {
    pub fn lookup(&self, id: &str) -> Option<Bson> {
        match self.map.get(id)? {
            Entity::Value(v) => Some(v.clone()),
            Entity::Session(s) => Some(Bson::Document(s.lsid.clone())),
            _ => None,
        }
    }

    pub fn client(&self, id: &str) -> Result<Arc<ClientEntity>, Fail> {
        match self.map.get(id) {
            Some(Entity::Client(c)) => Ok(Arc::clone(c)),
            _ => Err(Fail::Failed(format!("no client entity {id}"))),
        }
    }

    pub fn session(&self, id: &str) -> Result<Arc<SessionEntity>, Fail> {
        match self.map.get(id) {
            Some(Entity::Session(s)) => Ok(Arc::clone(s)),
            _ => Err(Fail::Failed(format!("no session entity {id}"))),
        }
    }

    /// Creates the entities of a `createEntities` array.
    pub async fn create(&mut self, list: &[Bson], uri: &str) -> Result<(), Fail> {
        for e in list {
            let e = e
                .as_document()
                .ok_or_else(|| Fail::Failed("bad entity".into()))?;
            let (kind, spec) = e
                .iter()
                .next()
                .ok_or_else(|| Fail::Failed("empty entity".into()))?;
            let spec = spec
                .as_document()
                .ok_or_else(|| Fail::Failed("bad entity".into()))?;
            let id = spec
                .get_str("id")
                .map_err(|_| Fail::Failed("entity without id".into()))?;
            let ent = match kind.as_str() {
                "client" => Entity::Client(Arc::new(make_client(spec, uri).await?)),
                "database" => {
                    let c = self.client(spec.get_str("client").unwrap_or_default())?;
                    let name = spec.get_str("databaseName").unwrap_or_default();
                    let o = match spec.get_document("databaseOptions") {
                        Ok(d) => database_options(d)?,
                        Err(_) => DatabaseOptions::default(),
                    };
                    Entity::Database(c.client.database_with_options(name, o))
                }
                "collection" => {
                    let dbid = spec.get_str("database").unwrap_or_default();
                    let db = match self.map.get(dbid) {
                        Some(Entity::Database(d)) => d.clone(),
                        _ => return Err(Fail::Failed(format!("no database entity {dbid}"))),
                    };
                    let name = spec.get_str("collectionName").unwrap_or_default();
                    let o: CollectionOptions = match spec.get_document("collectionOptions") {
                        Ok(d) => opts(&rw_opts(d))?,
                        Err(_) => CollectionOptions::default(),
                    };
                    Entity::Collection(db.collection_with_options(name, o))
                }
                "session" => {
                    let cid = spec.get_str("client").unwrap_or_default();
                    let c = self.client(cid)?;
                    let o: SessionOptions = match spec.get_document("sessionOptions") {
                        Ok(d) => {
                            let mut d = d.clone();
                            if let Ok(t) = d.get_document("defaultTransactionOptions") {
                                let t = rw_opts(t);
                                d.insert("defaultTransactionOptions", t);
                            }
                            // `snapshotTime` names a value saved by an earlier operation.
                            if let Ok(saved) = d.get_str("snapshotTime") {
                                let Some(Entity::Value(t)) = self.map.get(saved) else {
                                    return Err(Fail::Failed(format!(
                                        "snapshotTime: no saved value {saved}"
                                    )));
                                };
                                d.insert("snapshotTime", t.clone());
                            }
                            opts(&d)?
                        }
                        Err(_) => SessionOptions::default(),
                    };
                    let s = c
                        .client
                        .start_session()
                        .with_options(o)
                        .await
                        .map_err(|e| Fail::Failed(format!("startSession: {}", e.kind)))?;
                    let lsid = s.id().clone();
                    Entity::Session(Arc::new(SessionEntity {
                        session: tokio::sync::Mutex::new(s),
                        lsid,
                        client: cid.to_string(),
                    }))
                }
                other => return Err(Fail::Unsupported(format!("entity {other}"))),
            };
            self.map.insert(id.to_string(), ent);
        }
        Ok(())
    }
}

/// The spec writes a read preference as `{mode: "primary"}`; the driver's serde form is
/// `{mode: ...}` too, but write concern `w`, `wtimeoutMS` and `journal` need renaming.
pub fn rw_opts(d: &Document) -> Document {
    let mut d = d.clone();
    if let Ok(wc) = d.get_document("writeConcern") {
        let mut w = Document::new();
        for (k, v) in wc {
            match k.as_str() {
                "wtimeoutMS" => w.insert("wtimeout", v.clone()),
                "journal" => w.insert("j", v.clone()),
                _ => w.insert(k, v.clone()),
            };
        }
        d.insert("writeConcern", w);
    }
    if let Ok(rp) = d.get_document("readPreference") {
        let rp = rp.clone();
        // Some option structs call the field `selectionCriteria`, others rename it
        // `readPreference`: give both (unknown keys are ignored).
        d.insert("selectionCriteria", rp);
    }
    d
}

/// `DatabaseOptions` deserialises snake_case field names (unlike the other option structs),
/// so the spec's camelCase `databaseOptions` are read one by one.
fn database_options(d: &Document) -> Result<DatabaseOptions, Fail> {
    let d = rw_opts(d);
    let mut o = DatabaseOptions::default();
    for (k, v) in &d {
        let bad = |e: bson::error::Error| Fail::Failed(format!("databaseOptions.{k} {v}: {e}"));
        match k.as_str() {
            "readPreference" => {
                o.selection_criteria = Some(bson::deserialize_from_bson(v.clone()).map_err(bad)?)
            }
            "readConcern" => {
                o.read_concern = Some(bson::deserialize_from_bson(v.clone()).map_err(bad)?)
            }
            "writeConcern" => {
                o.write_concern = Some(bson::deserialize_from_bson(v.clone()).map_err(bad)?)
            }
            "selectionCriteria" => {}
            _ => return Err(Fail::Unsupported(format!("databaseOptions.{k}"))),
        }
    }
    Ok(o)
}

async fn make_client(spec: &Document, uri: &str) -> Result<ClientEntity, Fail> {
    if spec.contains_key("observeLogMessages") {
        return Err(Fail::Unsupported("observeLogMessages".into()));
    }
    if spec.contains_key("storeEventsAsEntities") {
        return Err(Fail::Unsupported("storeEventsAsEntities".into()));
    }
    let mut u = uri.to_string();
    if let Ok(o) = spec.get_document("uriOptions") {
        for (k, v) in o {
            if matches!(k.as_str(), "timeoutMS" | "serverMonitoringMode") {
                return Err(Fail::Unsupported(format!("uriOption {k}")));
            }
            u.push_str(&format!("&{k}={}", uri_value(v)));
        }
    }
    let mut o = ClientOptions::parse(&u).await.map_err(|e| {
        // The testkit's own URI parses: an argument refused here is a spec URI option the
        // driver does not take (such as socketTimeoutMS).
        if let mongodb::error::ErrorKind::InvalidArgument { message, .. } = &*e.kind {
            Fail::DriverGap(format!(
                "the Rust driver refuses the client options: {message}"
            ))
        } else {
            Fail::Failed(format!("client options {u}: {}", e.kind))
        }
    })?;
    // After a state-change error (e.g. ShutdownInProgress from a fail point) the driver waits
    // for its monitor before it selects the server again; as drivers' own test runners do,
    // check often (the smallest frequency allowed) so such tests take milliseconds, not the
    // default 10 s heartbeat.
    if o.heartbeat_freq.is_none() {
        o.heartbeat_freq = Some(std::time::Duration::from_millis(500));
    }
    if let Ok(api) = spec.get_document("serverApi") {
        let version = match api.get_str("version") {
            Ok("1") => ServerApiVersion::V1,
            _ => return Err(Fail::Unsupported("serverApi version".into())),
        };
        let mut a = ServerApi::builder().version(version).build();
        a.strict = api.get_bool("strict").ok();
        a.deprecation_errors = api.get_bool("deprecationErrors").ok();
        o.server_api = Some(a);
    }
    let observe: HashSet<String> = spec
        .get_array("observeEvents")
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let ignore: HashSet<String> = spec
        .get_array("ignoreCommandMonitoringEvents")
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let sensitive_ok = spec.get_bool("observeSensitiveCommands").unwrap_or(false);
    let events = Arc::new(Mutex::new(Vec::new()));
    let (sent, _) = tokio::sync::watch::channel(Vec::<Sent>::new());
    let listening = Arc::new(AtomicBool::new(true));
    let dbs: Arc<Mutex<HashMap<i32, String>>> = Arc::default();
    let sensitive_ids: Arc<Mutex<HashSet<i32>>> = Arc::default();
    {
        let events = Arc::clone(&events);
        let sent = sent.clone();
        let listening = Arc::clone(&listening);
        o.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
            if !listening.load(Ordering::SeqCst) {
                return;
            }
            let (name, rid) = match &ev {
                CommandEvent::Started(e) => (e.command_name.clone(), e.request_id),
                CommandEvent::Succeeded(e) => (e.command_name.clone(), e.request_id),
                CommandEvent::Failed(e) => (e.command_name.clone(), e.request_id),
                _ => return,
            };
            let lower = name.to_ascii_lowercase();
            let mut sensitive = SENSITIVE.contains(&lower.as_str());
            if let CommandEvent::Started(e) = &ev {
                // hello with speculativeAuthenticate is sensitive: the driver redacts it to {}.
                if matches!(lower.as_str(), "hello" | "ismaster")
                    && (e.command.is_empty() || e.command.contains_key("speculativeAuthenticate"))
                {
                    sensitive_ids.lock().expect("lock").insert(rid);
                }
                dbs.lock().expect("lock").insert(rid, e.db.clone());
                sent.send_modify(|v| {
                    v.push(Sent {
                        request_id: rid,
                        command: e.command.clone(),
                        done: false,
                    })
                });
            }
            let finished = !matches!(ev, CommandEvent::Started(_));
            sensitive |= sensitive_ids.lock().expect("lock").contains(&rid);
            let observed = 'ev: {
                if ignore.contains(&name)
                    || name == "configureFailPoint"
                    || (sensitive && !sensitive_ok)
                {
                    break 'ev None;
                }
                let db = dbs
                    .lock()
                    .expect("lock")
                    .get(&rid)
                    .cloned()
                    .unwrap_or_default();
                match ev {
                    CommandEvent::Started(e) if observe.contains("commandStartedEvent") => {
                        Some(Ev::Started {
                            name,
                            db,
                            command: e.command,
                            service_id: e.service_id.is_some(),
                            conn_id: e.connection.server_id.is_some(),
                        })
                    }
                    CommandEvent::Succeeded(e) if observe.contains("commandSucceededEvent") => {
                        Some(Ev::Succeeded {
                            name,
                            db,
                            reply: e.reply,
                        })
                    }
                    CommandEvent::Failed(_) if observe.contains("commandFailedEvent") => {
                        Some(Ev::Failed { name, db })
                    }
                    _ => None,
                }
            };
            if let Some(ev) = observed {
                events.lock().expect("lock").push(ev);
            }
            // Marked done only once its event is recorded: a runner waiting on it then sees
            // the event too.
            if finished {
                sent.send_modify(|v| {
                    if let Some(s) = v.iter_mut().rev().find(|s| s.request_id == rid) {
                        s.done = true;
                    }
                });
            }
        }));
    }
    let client =
        Client::with_options(o).map_err(|e| Fail::Failed(format!("client: {}", e.kind)))?;
    Ok(ClientEntity {
        client,
        events,
        sent,
        listening,
    })
}
