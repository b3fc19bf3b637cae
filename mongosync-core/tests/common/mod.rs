//! Shared by the end-to-end scenarios: two testkit clusters (or real ones from
//! `MONGOSYNC_TEST_SOURCE_URI` / `MONGOSYNC_TEST_DESTINATION_URI`), and the oracle that
//! compares them document by document, with indexes and collection options.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use bson::{Document, RawDocumentBuf, doc};
use futures::TryStreamExt;
use mongodb::Client;
use mongosync_core::{
    ClusterName, Committed, ConnectOptions, Progress, Running, StartOptions, SyncState, Syncer,
};
use mongosync_testkit::{ClusterOptions, MemoryCluster};

/// The `root` user of every test cluster. Authentication is on everywhere: write blocking
/// (the default, `destinationOnly`) needs a syncer connected as a user holding
/// `bypassWriteBlockingMode`, as on a real server.
pub const USER: &str = "admin";
pub const PASSWORD: &str = "test-pass";

/// Cluster options with authentication on ([`USER`], [`PASSWORD`]).
pub fn auth() -> ClusterOptions {
    ClusterOptions::default().auth(USER, PASSWORD)
}

/// The URI of `c` with the credentials of [`USER`].
pub fn uri(c: &MemoryCluster) -> String {
    c.uri_with_credentials(USER, PASSWORD)
}

pub struct Pair {
    pub source: Option<MemoryCluster>,
    pub destination: Option<MemoryCluster>,
    pub source_uri: String,
    pub destination_uri: String,
    pub src: Client,
    pub dst: Client,
}

pub async fn pair() -> Pair {
    if let (Ok(s), Ok(d)) = (
        std::env::var("MONGOSYNC_TEST_SOURCE_URI"),
        std::env::var("MONGOSYNC_TEST_DESTINATION_URI"),
    ) {
        return Pair {
            src: Client::with_uri_str(&s).await.unwrap(),
            dst: Client::with_uri_str(&d).await.unwrap(),
            source: None,
            destination: None,
            source_uri: s,
            destination_uri: d,
        };
    }
    let source = MemoryCluster::start_with(auth()).await.unwrap();
    let destination = MemoryCluster::start_with(auth()).await.unwrap();
    // A fast heartbeat, as the drivers' own test runners use: after an injected state-change
    // error (ShutdownInProgress, NotWritablePrimary) the driver waits for its next check.
    let (source_uri, destination_uri) = (
        format!("{}&heartbeatFrequencyMS=500", uri(&source)),
        format!("{}&heartbeatFrequencyMS=500", uri(&destination)),
    );
    Pair {
        src: Client::with_uri_str(&source_uri).await.unwrap(),
        dst: Client::with_uri_str(&destination_uri).await.unwrap(),
        source: Some(source),
        destination: Some(destination),
        source_uri,
        destination_uri,
    }
}

/// Small partitions and a fast monitor, so that small data still exercises parallel copy.
pub fn options() -> ConnectOptions {
    ConnectOptions::default()
        .partition_bytes(16 << 10)
        .copy_workers(3)
        .monitor_interval(Duration::from_millis(100))
}

const SKIP_DBS: &[&str] = &["admin", "config", "local", "__mdb_internal_mongosync"];

pub async fn user_namespaces(c: &Client) -> Vec<(String, String)> {
    let mut out = vec![];
    for db in c.list_database_names().await.unwrap() {
        if SKIP_DBS.contains(&db.as_str()) {
            continue;
        }
        for coll in c.database(&db).list_collection_names().await.unwrap() {
            if !coll.starts_with("system.") {
                out.push((db.clone(), coll));
            }
        }
    }
    out.sort();
    out
}

async fn collection_info(c: &Client, db: &str, coll: &str) -> Document {
    let mut cursor = c
        .database(db)
        .run_cursor_command(doc! {"listCollections": 1, "filter": {"name": coll}})
        .await
        .unwrap();
    let mut info = cursor.try_next().await.unwrap().unwrap_or_default();
    info.remove("info");
    info.remove("idIndex");
    // A validator's level and action have defaults a server may or may not spell out.
    if let Ok(options) = info.get_document_mut("options")
        && options.contains_key("validator")
    {
        if !options.contains_key("validationLevel") {
            options.insert("validationLevel", "strict");
        }
        if !options.contains_key("validationAction") {
            options.insert("validationAction", "error");
        }
    }
    info
}

pub async fn indexes(c: &Client, db: &str, coll: &str) -> BTreeMap<String, Document> {
    let mut out = BTreeMap::new();
    let Ok(mut cursor) = c
        .database(db)
        .run_cursor_command(doc! {"listIndexes": coll})
        .await
    else {
        return out;
    };
    while let Some(mut spec) = cursor.try_next().await.unwrap() {
        spec.remove("v");
        spec.remove("ns");
        out.insert(spec.get_str("name").unwrap().to_string(), spec);
    }
    out
}

pub async fn documents(c: &Client, db: &str, coll: &str, natural: bool) -> Vec<RawDocumentBuf> {
    let coll = c.database(db).collection::<RawDocumentBuf>(coll);
    let find = if natural {
        coll.find(doc! {})
    } else {
        coll.find(doc! {}).sort(doc! {"_id": 1})
    };
    find.await.unwrap().try_collect().await.unwrap()
}

/// The oracle: every namespace (of `only`, or every user namespace of either side) holds the
/// same documents byte for byte, the same indexes and the same options. Returns the number of
/// documents compared.
pub async fn assert_same(src: &Client, dst: &Client, only: Option<&[(String, String)]>) -> usize {
    let namespaces = match only {
        Some(n) => n.to_vec(),
        None => {
            let s = user_namespaces(src).await;
            let d = user_namespaces(dst).await;
            assert_eq!(s, d, "the namespaces differ");
            s
        }
    };
    let mut compared = 0;
    for (db, coll) in &namespaces {
        let si = collection_info(src, db, coll).await;
        let di = collection_info(dst, db, coll).await;
        assert_eq!(si, di, "the options of {db}.{coll} differ");
        assert_eq!(
            indexes(src, db, coll).await,
            indexes(dst, db, coll).await,
            "the indexes of {db}.{coll} differ"
        );
        if si.get_str("type").ok() == Some("view") {
            continue;
        }
        let capped = si
            .get_document("options")
            .ok()
            .and_then(|o| o.get_bool("capped").ok())
            .unwrap_or(false);
        let a = documents(src, db, coll, capped).await;
        let b = documents(dst, db, coll, capped).await;
        assert_eq!(
            a.len(),
            b.len(),
            "{db}.{coll}: {} documents on the source, {} on the destination",
            a.len(),
            b.len()
        );
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x.as_bytes(),
                y.as_bytes(),
                "{db}.{coll}: documents differ:\n source {:?}\n   dest {:?}",
                Document::try_from(x.as_ref()),
                Document::try_from(y.as_ref())
            );
        }
        compared += a.len();
    }
    compared
}

/// Polls `progress` until `f` holds (panics after 60 s with the last progress). A wait on a
/// condition: the 50 ms between looks only spaces the polls.
pub async fn wait_for(
    mut progress: impl FnMut() -> Progress,
    f: impl Fn(&Progress) -> bool,
) -> Progress {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = progress();
        if f(&p) {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out; last progress: {}",
            serde_json::to_string_pretty(&p).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn in_cea(p: &Progress) -> bool {
    p.state == SyncState::Running && p.info.as_deref() == Some("change event application")
}

/// Connects with [`options`] and starts syncing everything from cluster0.
pub async fn start(pair: &Pair) -> Syncer<Running> {
    Syncer::connect(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap()
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap()
}

/// Waits until the sync can commit, commits, and waits for COMMITTED.
pub async fn commit(running: Syncer<Running>) -> Syncer<Committed> {
    running.wait_can_commit().await.unwrap();
    running.commit().await.unwrap().wait().await.unwrap()
}

/// The server's error code of a failed command or write.
pub fn code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        _ => None,
    }
}

/// Inserts `_id`s 0..n with a 900-byte pad, in batches of 1000 (about 1 MB each).
pub async fn insert_padded(coll: &mongodb::Collection<Document>, n: i32) {
    for start in (0..n).step_by(1000) {
        coll.insert_many(
            (start..(start + 1000).min(n)).map(|i| doc! {"_id": i, "pad": "p".repeat(900)}),
        )
        .await
        .unwrap();
    }
}

/// Creates a unique index on `key`.
pub async fn unique_index(coll: &mongodb::Collection<Document>, key: &str) {
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {key: 1})
            .options(
                mongodb::options::IndexOptions::builder()
                    .unique(true)
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap();
}

/// Waits until a document matching `filter` is persisted in the engine's metadata collection
/// `coll` on `dst`, and returns it: a change stream opened before each look wakes the wait on
/// the next write (no polling interval).
pub async fn wait_persisted(dst: &Client, coll: &str, filter: Document) -> Document {
    let coll = dst
        .database("__mdb_internal_mongosync")
        .collection::<Document>(coll);
    loop {
        let mut changes = coll.watch().await.unwrap();
        if let Some(found) = coll.find_one(filter.clone()).await.unwrap() {
            return found;
        }
        changes.next_if_any().await.unwrap();
    }
}
