//! The workload the sync harnesses share: seeded 1 KiB documents, a writer load of updates and
//! inserts, and marker documents timed from source to destination.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bson::{Bson, Document, RawDocumentBuf, doc};
use mongodb::{Client, Collection};

use crate::BoxError;

/// The size of a seeded or inserted document.
pub const DOC_BYTES: usize = 1024;
/// The database the workload writes.
pub const DB: &str = "bench";
/// The collection of marker documents.
pub const MARKERS: &str = "markers";

pub fn coll_name(i: u64) -> String {
    format!("c{i}")
}

/// A 1 KiB document (exactly: the payload pads it).
pub fn make_doc(id: i64, salt: u64) -> Result<RawDocumentBuf, BoxError> {
    let c = char::from(b'a' + (salt % 26) as u8);
    let mut d = doc! { "_id": id, "n": id, "payload": "" };
    let base = RawDocumentBuf::try_from(&d)?.as_bytes().len();
    d.insert("payload", c.to_string().repeat(DOC_BYTES - base));
    Ok(RawDocumentBuf::try_from(&d)?)
}

/// Seeds `docs` documents of [`DOC_BYTES`] into `colls` collections of [`DB`] with `inserters`
/// in parallel, and creates the markers collection.
pub async fn seed(
    client: &Client,
    docs: u64,
    colls: u64,
    inserters: usize,
) -> Result<(), BoxError> {
    let per = docs / colls;
    let mut jobs = Vec::new();
    for c in 0..colls {
        let n = if c == colls - 1 { docs - per * c } else { per };
        for start in (0..n).step_by(1000) {
            jobs.push((c, start, (start + 1000).min(n)));
        }
    }
    let jobs = Arc::new(std::sync::Mutex::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..inserters {
        let jobs = Arc::clone(&jobs);
        let db = client.database(DB);
        tasks.spawn(async move {
            loop {
                let next = jobs.lock().expect("lock").pop();
                let Some((c, start, end)) = next else {
                    return Ok::<_, BoxError>(());
                };
                let batch = (start..end)
                    .map(|i| make_doc(i as i64, i))
                    .collect::<Result<Vec<_>, _>>()?;
                db.collection::<RawDocumentBuf>(&coll_name(c))
                    .insert_many(batch)
                    .await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    // The markers collection exists before the sync, so markers are plain inserts in CEA.
    client
        .database(DB)
        .collection::<Document>(MARKERS)
        .insert_one(doc! {"_id": "created"})
        .await?;
    Ok(())
}

/// One writer of the load: 70% updates of seeded documents, 30% inserts of new ones; `period`
/// between operations (`None`: full speed) until `stop` or `limit` operations.
#[derive(Clone)]
pub struct Load {
    pub src: Client,
    pub docs: u64,
    pub colls: u64,
    pub stop: Arc<AtomicBool>,
    pub done: Arc<AtomicU64>,
}

pub async fn writer(
    load: Load,
    task: u64,
    period: Option<Duration>,
    limit: u64,
) -> Result<(), BoxError> {
    let Load {
        src,
        docs: cfg_docs,
        colls,
        stop,
        done,
    } = load;
    let db = src.database(DB);
    let mut tick = period.map(tokio::time::interval);
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (task + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut i = 0u64;
    // Each task inserts its own `_id` range, far above the seeded ones.
    let base_id = 1_000_000_000_000i64 * (task as i64 + 1);
    while !stop.load(Ordering::Relaxed) && i < limit {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let coll = db.collection::<RawDocumentBuf>(&coll_name(x % colls));
        if x % 10 < 7 {
            let id = ((x >> 8) % (cfg_docs / colls).max(1)) as i64;
            coll.update_one(
                doc! {"_id": id},
                doc! {"$inc": {"n": 1}, "$set": {"w": task as i64}},
            )
            .await?;
        } else {
            let id = base_id + i as i64;
            coll.insert_one(make_doc(id, x)?).await?;
        }
        i += 1;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Inserts a marker on the source and waits for it on the destination; the latency in ms.
pub async fn marker_latency(
    src: &Collection<Document>,
    dst: &Collection<Document>,
    id: Bson,
) -> Result<f64, BoxError> {
    let start = Instant::now();
    src.insert_one(doc! {"_id": id.clone(), "at": bson::DateTime::now()})
        .await?;
    while dst.find_one(doc! {"_id": id.clone()}).await?.is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            return Err(format!("marker {id} did not arrive within 120 s").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0)
}
