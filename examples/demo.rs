//! The quick-start demo: two in-memory replica sets, a source seeded with data, and a copy of
//! every collection to the destination with live progress, checked document by document.
//!
//! Until the sync engine lands (the `Syncer` of `mongosync-core`), the copy here is a plain
//! driver-level copy of raw BSON; it shows the testkit working as a real cluster.
//!
//! Run: `cargo run --release -p examples --example demo` (`DEMO_DOCS=N` sets the size).

use std::time::Instant;

use bson::{Document, RawDocumentBuf, doc, oid::ObjectId};
use futures::TryStreamExt;
use mongodb::Client;
use mongosync_testkit::{ClusterOptions, MemoryCluster};

const DATABASES: &[(&str, &[&str])] = &[("shop", &["orders", "customers"]), ("audit", &["events"])];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_collection: usize = std::env::var("DEMO_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
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
    println!("source:      {}", source.uri());
    println!("destination: {}", destination.uri());
    let src = Client::with_uri_str(&source_uri).await?;
    let dst = Client::with_uri_str(&destination_uri).await?;

    let started = Instant::now();
    for (db, colls) in DATABASES {
        for coll in *colls {
            seed(&src, db, coll, per_collection).await?;
        }
    }
    println!(
        "seeded {} documents in {:.2?}",
        per_collection * 3,
        started.elapsed()
    );

    let started = Instant::now();
    let mut total_bytes = 0usize;
    for (db, colls) in DATABASES {
        for coll in *colls {
            total_bytes += copy(&src, &dst, db, coll, per_collection).await?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "copied {} documents ({:.1} MB) in {secs:.2} s: {:.0} docs/s",
        per_collection * 3,
        total_bytes as f64 / 1e6,
        (per_collection * 3) as f64 / secs
    );

    for (db, colls) in DATABASES {
        for coll in *colls {
            verify(&src, &dst, db, coll).await?;
        }
    }
    println!("verified: every document on the destination equals the source, byte for byte");
    src.shutdown().await;
    dst.shutdown().await;
    source.shutdown().await;
    destination.shutdown().await;
    Ok(())
}

async fn seed(client: &Client, db: &str, coll: &str, n: usize) -> mongodb::error::Result<()> {
    let c = client.database(db).collection::<Document>(coll);
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        // Mixed `_id` types, as real collections have them.
        let id = match i % 4 {
            0 => bson::Bson::ObjectId(ObjectId::new()),
            1 => bson::Bson::Int64(i as i64),
            2 => bson::Bson::String(format!("key-{i:08}")),
            _ => bson::Bson::Document(doc! {"shard": (i % 7) as i32, "n": i as i64}),
        };
        batch.push(doc! {"_id": id, "n": i as i64, "payload": "x".repeat(200), "tags": ["a", "b"]});
        if batch.len() == 1000 {
            c.insert_many(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        c.insert_many(batch).await?;
    }
    Ok(())
}

async fn copy(
    src: &Client,
    dst: &Client,
    db: &str,
    coll: &str,
    expected: usize,
) -> mongodb::error::Result<usize> {
    let from = src.database(db).collection::<RawDocumentBuf>(coll);
    let to = dst.database(db).collection::<RawDocumentBuf>(coll);
    let mut cursor = from.find(doc! {}).batch_size(5000).await?;
    let (mut copied, mut bytes) = (0usize, 0usize);
    let mut batch = Vec::with_capacity(5000);
    while let Some(doc) = cursor.try_next().await? {
        bytes += doc.as_bytes().len();
        batch.push(doc);
        if batch.len() == 5000 {
            copied += batch.len();
            to.insert_many(std::mem::take(&mut batch))
                .ordered(false)
                .await?;
            println!("  {db}.{coll}: {copied}/{expected} documents");
        }
    }
    if !batch.is_empty() {
        copied += batch.len();
        to.insert_many(batch).ordered(false).await?;
    }
    println!("  {db}.{coll}: {copied}/{expected} documents, done");
    Ok(bytes)
}

async fn verify(
    src: &Client,
    dst: &Client,
    db: &str,
    coll: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<RawDocumentBuf> = src
        .database(db)
        .collection(coll)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await?
        .try_collect()
        .await?;
    let b: Vec<RawDocumentBuf> = dst
        .database(db)
        .collection(coll)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await?
        .try_collect()
        .await?;
    if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| x.as_bytes() != y.as_bytes()) {
        return Err(format!("{db}.{coll} differs between source and destination").into());
    }
    Ok(())
}
