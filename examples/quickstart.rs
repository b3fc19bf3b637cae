//! The quick start: a live sync between two in-memory replica sets, checked document by document.
//!
//! Two `MemoryCluster`s start in this process. The source gets 300,000 documents (~300 B each)
//! in four collections of two databases, with secondary indexes (one unique, one TTL). The
//! sync starts while a task keeps inserting, updating and deleting on the source; progress is
//! shown live. Once change event application has run for a few seconds the writes stop, the
//! sync commits, and both sides are compared: every namespace, every document byte for byte in
//! `_id` order, every index spec. Any difference exits non-zero.
//!
//! Run: `cargo run --release -p examples --example quickstart` (`QUICKSTART_DOCS=N` sets the
//! total number of seeded documents).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bson::{DateTime, Document, RawDocumentBuf, doc};
use futures::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use mongosync_core::{ClusterName, ConnectOptions, StartOptions, Syncer};
use mongosync_testkit::{ClusterOptions, MemoryCluster};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The seeded namespaces, each with a share of the documents.
const NAMESPACES: [(&str, &str); 4] = [
    ("shop", "orders"),
    ("shop", "customers"),
    ("telemetry", "events"),
    ("telemetry", "sessions"),
];
/// Values of the indexed `kind` field.
const KINDS: [&str; 3] = ["view", "click", "buy"];
/// How long change event application keeps receiving live writes before they stop.
const LIVE_WRITES_IN_CEA: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let total: u64 = std::env::var("QUICKSTART_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let per_ns = total / NAMESPACES.len() as u64;
    // Authentication on, as write blocking (the default) needs: the syncer connects as a
    // user holding `bypassWriteBlockingMode` (`root`). The printed URIs carry no password.
    let password = format!("pw-{}", std::process::id());
    let auth = || ClusterOptions::default().auth("admin", password.clone());
    let source = MemoryCluster::start_with(auth()).await?;
    let destination = MemoryCluster::start_with(auth()).await?;
    let (source_uri, destination_uri) = (
        source.uri_with_credentials("admin", &password),
        destination.uri_with_credentials("admin", &password),
    );
    println!("source (cluster0):      {}", source.uri());
    println!("destination (cluster1): {}", destination.uri());
    let src = Client::with_uri_str(&source_uri).await?;
    let dst = Client::with_uri_str(&destination_uri).await?;

    let t = Instant::now();
    seed(&src, per_ns).await?;
    let seed_time = t.elapsed();
    println!("seeded {} documents in {seed_time:.2?}", per_ns * 4);

    // The default write blocking: the destination refuses users' writes until the commit.
    let t = Instant::now();
    let idle = Syncer::connect(&source_uri, &destination_uri, ConnectOptions::default()).await?;
    let options = StartOptions::new(ClusterName::Cluster0);
    let running = idle.start(options).await.map_err(|e| e.error)?;

    // The source keeps changing during the copy, so change event application has real work.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_load(
        src.clone(),
        per_ns,
        Arc::clone(&stop),
        Arc::clone(&writes),
    ));

    // Live progress on one line until the writes have stopped and commit is allowed.
    let mut cea_since: Option<Instant> = None;
    let mut copy_time = None;
    loop {
        let p = running.progress();
        let cc = p.collection_copy.as_ref();
        let pct = cc.map_or(0.0, |c| {
            100.0 * c.estimated_copied_bytes as f64 / c.estimated_total_bytes.max(1) as f64
        });
        let info = p.info.clone().unwrap_or_default();
        print!(
            "\r{:>8.1?} {} | {:<24} | copied {pct:5.1}% | lag {:>2} s | events applied {:>7} | source writes {:>6}",
            t.elapsed(),
            p.state,
            info,
            p.lag_time_seconds.map_or("-".into(), |l| l.to_string()),
            p.total_events_applied.unwrap_or(0),
            writes.load(Ordering::Relaxed),
        );
        std::io::stdout().flush()?;
        if info == "change event application" && cea_since.is_none() {
            cea_since = Some(Instant::now());
            copy_time = Some(t.elapsed());
        }
        if cea_since.is_some_and(|s| s.elapsed() >= LIVE_WRITES_IN_CEA) {
            stop.store(true, Ordering::SeqCst);
            if writer.is_finished() && p.can_commit {
                break;
            }
        }
        if p.warnings.iter().any(|w| w.starts_with("the sync stopped")) {
            println!();
            return Err(format!("sync failed: {:?}", p.warnings).into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!();
    writer.await??;

    // With writes stopped, commit drains the last events and restores the destination.
    running.wait_can_commit().await?;
    let tc = Instant::now();
    let committed = running
        .commit()
        .await
        .map_err(|e| e.error)?
        .wait()
        .await
        .map_err(|e| e.error)?;
    let commit_time = tc.elapsed();
    let p = committed.progress();
    println!(
        "{}: {} events applied, {} source writes during the sync",
        p.state,
        p.total_events_applied.unwrap_or(0),
        writes.load(Ordering::Relaxed)
    );

    let sync_total = t.elapsed();
    let tv = Instant::now();
    let checked = verify(&src, &dst).await?;
    println!(
        "verified {} namespaces, {} documents (byte for byte, in _id order), {} indexes: identical",
        checked.0, checked.1, checked.2
    );
    println!(
        "times: seed {seed_time:.2?}, copy {:.2?}, commit {commit_time:.2?}, sync total {sync_total:.2?}, verify {:.2?}",
        copy_time.unwrap_or_default(),
        tv.elapsed()
    );
    Ok(())
}

/// ~300 B documents, inserted in parallel batches; indexes created first so that the unique
/// and TTL options are part of what the sync must reproduce.
async fn seed(client: &Client, per_ns: u64) -> Result<(), BoxError> {
    let idx = |keys: Document, opts: Option<IndexOptions>| {
        IndexModel::builder().keys(keys).options(opts).build()
    };
    let shop = client.database("shop");
    let tel = client.database("telemetry");
    shop.collection::<Document>("orders")
        .create_index(idx(doc! {"customer": 1, "at": -1}, None))
        .await?;
    let unique = IndexOptions::builder().unique(true).build();
    shop.collection::<Document>("customers")
        .create_index(idx(doc! {"email": 1}, Some(unique)))
        .await?;
    tel.collection::<Document>("events")
        .create_index(idx(doc! {"kind": 1}, None))
        .await?;
    // A year: nothing expires during the demo, but the option must arrive intact.
    let ttl = IndexOptions::builder()
        .expire_after(Duration::from_secs(365 * 86_400))
        .build();
    tel.collection::<Document>("sessions")
        .create_index(idx(doc! {"lastSeen": 1}, Some(ttl)))
        .await?;

    let mut tasks = tokio::task::JoinSet::new();
    for (db, coll) in NAMESPACES {
        for chunk in (0..per_ns).step_by(5_000) {
            let c = client.database(db).collection::<Document>(coll);
            let end = (chunk + 5_000).min(per_ns);
            tasks.spawn(async move {
                let docs: Vec<Document> = (chunk..end).map(|i| make_doc(coll, i)).collect();
                c.insert_many(docs).await.map(|_| ())
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

fn make_doc(coll: &str, i: u64) -> Document {
    let now = DateTime::now();
    doc! {
        "_id": i as i64,
        "customer": (i % 10_007) as i64,
        "email": format!("{coll}-{i}@example.com"),
        "kind": KINDS[(i % 3) as usize],
        "at": now,
        "lastSeen": now,
        "note": "x".repeat(170),
        "tags": ["a", "b"],
        "amount": (i % 1000) as f64 / 10.0,
    }
}

/// About 1,000 operations a second until `stop`: inserts of new orders, updates of events,
/// deletes of sessions. Each touches distinct `_id`s, so the unique index never rejects one.
async fn write_load(
    client: Client,
    per_ns: u64,
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let orders = client.database("shop").collection::<Document>("orders");
    let events = client
        .database("telemetry")
        .collection::<Document>("events");
    let sessions = client
        .database("telemetry")
        .collection::<Document>("sessions");
    let mut tick = tokio::time::interval(Duration::from_millis(3));
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        orders.insert_one(make_doc("orders", per_ns + i)).await?;
        let id = ((i * 7919) % per_ns) as i64;
        events
            .update_one(
                doc! {"_id": id},
                doc! {"$inc": {"amount": 1.0}, "$set": {"kind": "seen"}},
            )
            .await?;
        sessions
            .delete_one(doc! {"_id": (i % per_ns) as i64})
            .await?;
        writes.fetch_add(3, Ordering::Relaxed);
        i += 1;
    }
    Ok(())
}

/// Compares every user namespace of the source with the destination; returns
/// (namespaces, documents, indexes) checked.
async fn verify(src: &Client, dst: &Client) -> Result<(usize, u64, usize), BoxError> {
    let user_dbs = |names: Vec<String>| -> Vec<String> {
        let skip = ["admin", "config", "local"];
        let mut v: Vec<String> = names
            .into_iter()
            .filter(|d| !skip.contains(&d.as_str()) && !d.starts_with("__mdb_internal"))
            .collect();
        v.sort();
        v
    };
    let dbs = user_dbs(src.list_database_names().await?);
    let dst_dbs = user_dbs(dst.list_database_names().await?);
    if dbs != dst_dbs {
        return Err(format!("databases differ: source {dbs:?}, destination {dst_dbs:?}").into());
    }
    // One task per namespace: the comparisons are independent.
    let mut checks = tokio::task::JoinSet::new();
    for db in &dbs {
        let mut colls = src.database(db).list_collection_names().await?;
        let mut dst_colls = dst.database(db).list_collection_names().await?;
        colls.sort();
        dst_colls.sort();
        if colls != dst_colls {
            return Err(format!("{db}: collections differ: {colls:?} vs {dst_colls:?}").into());
        }
        for coll in colls {
            checks.spawn(verify_namespace(src.clone(), dst.clone(), db.clone(), coll));
        }
    }
    let (mut namespaces, mut documents, mut indexes) = (0, 0u64, 0);
    while let Some(r) = checks.join_next().await {
        let (d, i) = r??;
        namespaces += 1;
        documents += d;
        indexes += i;
    }
    Ok((namespaces, documents, indexes))
}

/// Same count, same documents byte for byte in `_id` order, same index specs; returns
/// (documents, indexes) checked.
async fn verify_namespace(
    src: Client,
    dst: Client,
    db: String,
    coll: String,
) -> Result<(u64, usize), BoxError> {
    let ns = format!("{db}.{coll}");
    let a = src.database(&db).collection::<RawDocumentBuf>(&coll);
    let b = dst.database(&db).collection::<RawDocumentBuf>(&coll);
    let (na, nb) = (
        a.count_documents(doc! {}).await?,
        b.count_documents(doc! {}).await?,
    );
    if na != nb {
        return Err(format!("{ns}: {na} documents on the source, {nb} on the destination").into());
    }
    // Both sides in `_id` order, compared as raw bytes: field order and types count.
    let mut ca = a.find(doc! {}).sort(doc! {"_id": 1}).await?;
    let mut cb = b.find(doc! {}).sort(doc! {"_id": 1}).await?;
    let mut documents = 0;
    loop {
        match (ca.try_next().await?, cb.try_next().await?) {
            (None, None) => break,
            (Some(x), Some(y)) if x.as_bytes() == y.as_bytes() => documents += 1,
            (x, y) => {
                return Err(
                    format!("{ns}: first difference: source {x:?}, destination {y:?}").into(),
                );
            }
        }
    }
    let (ia, ib) = (
        index_specs(&src, &db, &coll).await?,
        index_specs(&dst, &db, &coll).await?,
    );
    if ia != ib {
        return Err(
            format!("{ns}: indexes differ:\n  source      {ia:?}\n  destination {ib:?}").into(),
        );
    }
    Ok((documents, ia.len()))
}

/// The index specs exactly as the server lists them (`listIndexes`), sorted by name.
async fn index_specs(client: &Client, db: &str, coll: &str) -> Result<Vec<Document>, BoxError> {
    let reply = client
        .database(db)
        .run_command(doc! {"listIndexes": coll, "cursor": {"batchSize": 1000}})
        .await?;
    let mut specs: Vec<Document> = reply
        .get_document("cursor")?
        .get_array("firstBatch")?
        .iter()
        .filter_map(|b| b.as_document().cloned())
        .collect();
    specs.sort_by_key(|d| d.get_str("name").unwrap_or_default().to_string());
    Ok(specs)
}
