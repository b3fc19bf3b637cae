//! Throughput, latency and memory of the sync engine (`mongosync-core`), each beside a
//! baseline measured in the same run.
//!
//! Starts `mongosync-testkit` commands in their own processes (source, destination, and a
//! third cluster for the baselines), seeds the source with N documents of 1 KiB, then:
//!
//! 1. Copy baselines: a single-stream raw-driver copy (find all as raw BSON, `insert_many` of raw
//!    documents) to the baseline cluster, then (after dropping it) a parallel one with one such
//!    stream per collection, all at once, as `mongodump`/`mongorestore
//!    --numParallelCollections` do. docs/s, MB/s.
//! 2. The syncer's copy: `Syncer::connect` + `start` until change event application (CEA)
//!    starts. docs/s, MB/s, ratio to 1 (target >= 0.9), and the syncer's peak memory: it runs
//!    in this process, so `VmHWM` is reset just before it (`/proc/self/clear_refs`) and RSS is
//!    sampled every 100 ms (target < 256 MiB).
//! 3. Steady CEA: a fixed-rate write load (updates and inserts) from several tasks. Applied
//!    events/s (from `totalEventsApplied`), lag p50/p99 from `/progress` (whole seconds,
//!    sampled every 100 ms), and an end-to-end latency: a marker document inserted on the
//!    source with its time, polled on the destination until it arrives (p50/p99, ms).
//! 4. Backlog application: the syncer is paused, a burst of updates and inserts is written at
//!    full speed, the syncer is resumed and timed until the burst's end marker reaches the
//!    destination. Baseline: the same events read from a change stream and applied one by one
//!    (`replace_one` / `update_one` / `delete_one`, one round trip each) to the baseline
//!    cluster (ratio, target >= 5x); and a batched one: one lane, windows of 1000 events split
//!    by namespace into ordered bulk writes (ratio, target >= 1.5x).
//! 5. Commit, then a document count comparison of every collection (sanity).
//!
//! Build the server in release mode first, then run the harness:
//!
//! ```text
//! cargo build --release -p mongosync-testkit --bin mongosync-testkit
//! cargo run --release -p benches --bin sync_throughput
//! ```
//!
//! Settings (environment): `MONGOSYNC_TESTKIT_BIN` (default
//! `$CARGO_TARGET_DIR/release/mongosync-testkit`, else `<workspace>/target/release/...`),
//! `SYNC_BENCH_DOCS` (seeded documents, default 1000000), `SYNC_BENCH_COLLECTIONS` (default 4),
//! `SYNC_BENCH_SEED_TASKS` (parallel seeding inserts, default 4), `SYNC_BENCH_CEA_RATE` (steady
//! write load in ops/s, default 3000), `SYNC_BENCH_CEA_SECS` (default 20),
//! `SYNC_BENCH_WRITERS` (writer tasks, default 8), `SYNC_BENCH_MARKER_MS` (marker period,
//! default 200), `SYNC_BENCH_BURST_EVENTS` (backlog size, default 100000). Engine settings,
//! the engine's defaults when unset: `SYNC_BENCH_COPY_WORKERS`, `SYNC_BENCH_COPY_BATCH_BYTES`,
//! `SYNC_BENCH_APPLIERS`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use benches::workload::{DB, DOC_BYTES, Load, MARKERS, coll_name, marker_latency, seed, writer};
use benches::{
    BoxError, Server, env_num, env_opt, mib, percentile, reset_peak_rss, self_kib, testkit_bin,
};
use bson::{Bson, Document, RawDocumentBuf, Timestamp, doc};
use futures::TryStreamExt;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};
use mongodb::options::{DeleteOneModel, ReplaceOneModel, UpdateOneModel, WriteModel};
use mongodb::{Client, Namespace};
use mongosync_core::{ClusterName, ConnectOptions, StartOptions, Syncer};

const CEA: &str = "change event application";

struct Config {
    docs: u64,
    colls: u64,
    seed_tasks: usize,
    cea_rate: u64,
    cea_secs: u64,
    writers: u64,
    marker_ms: u64,
    burst: u64,
}

fn config() -> Result<Config, BoxError> {
    Ok(Config {
        docs: env_num("SYNC_BENCH_DOCS", 1_000_000u64)?.max(1),
        colls: env_num("SYNC_BENCH_COLLECTIONS", 4u64)?.max(1),
        seed_tasks: env_num("SYNC_BENCH_SEED_TASKS", 4usize)?.max(1),
        cea_rate: env_num("SYNC_BENCH_CEA_RATE", 3000u64)?.max(1),
        cea_secs: env_num("SYNC_BENCH_CEA_SECS", 20u64)?.max(1),
        writers: env_num("SYNC_BENCH_WRITERS", 8u64)?.max(1),
        marker_ms: env_num("SYNC_BENCH_MARKER_MS", 200u64)?.max(1),
        burst: env_num("SYNC_BENCH_BURST_EVENTS", 100_000u64)?.max(1),
    })
}

/// The engine's defaults, with the `SYNC_BENCH_COPY_*` / `SYNC_BENCH_APPLIERS` overrides.
fn engine_options() -> Result<ConnectOptions, BoxError> {
    let mut o = ConnectOptions::default();
    if let Some(n) = env_opt::<usize>("SYNC_BENCH_COPY_WORKERS")? {
        o = o.copy_workers(n.max(1));
    }
    if let Some(n) = env_opt::<usize>("SYNC_BENCH_COPY_BATCH_BYTES")? {
        o = o.copy_batch_bytes(n.max(1));
    }
    if let Some(n) = env_opt::<usize>("SYNC_BENCH_APPLIERS")? {
        o = o.appliers(n.max(1));
    }
    println!("engine: {o:?}");
    Ok(o)
}

fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

fn mbps(n: u64, secs: f64) -> f64 {
    rate(n, secs) * DOC_BYTES as f64 / 1e6
}

/// Copies one collection: read a batch, write it, repeat; raw BSON both ways.
async fn copy_collection(src: &Client, dst: &Client, name: String) -> Result<u64, BoxError> {
    let from = src.database(DB).collection::<RawDocumentBuf>(&name);
    let to = dst.database(DB).collection::<RawDocumentBuf>(&name);
    let mut cursor = from.find(doc! {}).batch_size(8192).await?;
    let mut batch = Vec::with_capacity(8192);
    let mut n = 0u64;
    while let Some(d) = cursor.try_next().await? {
        batch.push(d);
        if batch.len() == 8192 {
            n += batch.len() as u64;
            to.insert_many(std::mem::take(&mut batch))
                .ordered(false)
                .await?;
        }
    }
    if !batch.is_empty() {
        n += batch.len() as u64;
        to.insert_many(batch).ordered(false).await?;
    }
    Ok(n)
}

/// The single-stream baseline copy: one collection after the other.
async fn baseline_copy(src: &Client, dst: &Client, cfg: &Config) -> Result<u64, BoxError> {
    let mut n = 0u64;
    for c in 0..cfg.colls {
        n += copy_collection(src, dst, coll_name(c)).await?;
    }
    Ok(n)
}

/// The parallel baseline copy: one stream per collection, all at once, as `mongodump` /
/// `mongorestore --numParallelCollections` do.
async fn parallel_copy(src: &Client, dst: &Client, cfg: &Config) -> Result<u64, BoxError> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..cfg.colls {
        let (src, dst) = (src.clone(), dst.clone());
        tasks.spawn(async move { copy_collection(&src, &dst, coll_name(c)).await });
    }
    let mut n = 0u64;
    while let Some(r) = tasks.join_next().await {
        n += r??;
    }
    Ok(n)
}

/// Samples this process's RSS every 100 ms until stopped; returns the largest sample (KiB).
fn rss_sampler(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut max = 0;
        while !stop.load(Ordering::Relaxed) {
            max = max.max(self_kib("VmRSS:").unwrap_or(0));
            std::thread::sleep(Duration::from_millis(100));
        }
        max
    })
}

/// One change event as the write a baseline applier sends, or `None` for events it skips.
fn event_write(
    ev: &ChangeStreamEvent<Document>,
) -> Result<Option<(Namespace, WriteModel)>, BoxError> {
    let Some(ns) = ev.ns.as_ref() else {
        return Ok(None);
    };
    let Some(coll) = ns.coll.clone() else {
        return Ok(None);
    };
    let namespace = Namespace::new(ns.db.clone(), coll);
    let key = namespace.clone();
    let id = ev
        .document_key
        .as_ref()
        .and_then(|k| k.get("_id"))
        .cloned()
        .unwrap_or(Bson::Null);
    let filter = doc! {"_id": id};
    let write: WriteModel = match ev.operation_type {
        OperationType::Insert | OperationType::Replace => {
            let full = ev
                .full_document
                .clone()
                .ok_or("event without fullDocument")?;
            ReplaceOneModel::builder()
                .namespace(namespace)
                .filter(filter)
                .replacement(full)
                .upsert(true)
                .build()
                .into()
        }
        OperationType::Update => {
            let u = ev
                .update_description
                .as_ref()
                .ok_or("no updateDescription")?;
            let mut update = doc! {};
            if !u.updated_fields.is_empty() {
                update.insert("$set", u.updated_fields.clone());
            }
            if !u.removed_fields.is_empty() {
                let unset: Document = u
                    .removed_fields
                    .iter()
                    .map(|f| (f.clone(), Bson::Int32(1)))
                    .collect();
                update.insert("$unset", unset);
            }
            if update.is_empty() {
                return Ok(None);
            }
            UpdateOneModel::builder()
                .namespace(namespace)
                .filter(filter)
                .update(update)
                .build()
                .into()
        }
        OperationType::Delete => DeleteOneModel::builder()
            .namespace(namespace)
            .filter(filter)
            .build()
            .into(),
        _ => return Ok(None),
    };
    Ok(Some((key, write)))
}

/// Whether `ev` is the insert of the marker `until`.
fn is_end_marker(ev: &ChangeStreamEvent<Document>, until: &str) -> bool {
    ev.ns.as_ref().and_then(|n| n.coll.as_deref()) == Some(MARKERS)
        && ev.document_key.as_ref().and_then(|k| k.get("_id")) == Some(&Bson::String(until.into()))
}

/// How a baseline applier sends its writes.
#[derive(Clone, Copy, PartialEq)]
enum Applier {
    /// One round trip per event (`replace_one` / `update_one` / `delete_one` semantics).
    OneByOne,
    /// One lane: windows of up to [`WINDOW`] events, each split by namespace (order kept within
    /// a namespace) into ordered bulk writes, one per namespace: what a user writing a
    /// replicator with the driver's bulk API would do.
    Batched,
}

const WINDOW: usize = 1000;

/// Sends a window of writes as one ordered bulk write per namespace, in order of first use.
async fn flush(dst: &Client, window: &mut Vec<(Namespace, WriteModel)>) -> Result<(), BoxError> {
    let mut groups: Vec<(Namespace, Vec<WriteModel>)> = Vec::new();
    for (ns, w) in window.drain(..) {
        match groups.iter_mut().find(|(n, _)| *n == ns) {
            Some((_, g)) => g.push(w),
            None => groups.push((ns, vec![w])),
        }
    }
    for (_, g) in groups {
        dst.bulk_write(g).ordered(true).await?;
    }
    Ok(())
}

/// Reads the change stream from `from` and applies it to `dst` until the insert of the marker
/// `until`. Returns the events applied.
async fn baseline_apply(
    src: &Client,
    dst: &Client,
    from: Timestamp,
    until: &str,
    how: Applier,
) -> Result<u64, BoxError> {
    let mut stream = src
        .database(DB)
        .watch()
        .start_at_operation_time(from)
        .await?;
    let mut n = 0u64;
    let mut window = Vec::with_capacity(WINDOW);
    while let Some(ev) = stream.try_next().await? {
        if let Some((ns, w)) = event_write(&ev)? {
            n += 1;
            window.push((ns, w));
        }
        let end = is_end_marker(&ev, until);
        if end || how == Applier::OneByOne || window.len() == WINDOW {
            flush(dst, &mut window).await?;
        }
        if end {
            return Ok(n);
        }
    }
    Err("the change stream ended before the end marker".into())
}

/// Reads the change stream from `from` to the insert of the marker `until`, applying
/// nothing: the source's ceiling for any applier.
async fn read_stream(src: &Client, from: Timestamp, until: &str) -> Result<u64, BoxError> {
    let mut stream = src
        .database(DB)
        .watch()
        .start_at_operation_time(from)
        .await?;
    let end = Bson::String(until.into());
    let mut n = 0u64;
    while let Some(ev) = stream.try_next().await? {
        n += 1;
        let key = ev.document_key.as_ref().and_then(|k| k.get("_id"));
        if ev.operation_type == OperationType::Insert && key == Some(&end) {
            return Ok(n);
        }
    }
    Err("the change stream ended before the end marker".into())
}

struct Row(String, String, String, String);

fn print_table(rows: &[Row]) {
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    for r in rows {
        println!("  {:<w0$}  {:>w1$}  {:>w2$}  {}", r.0, r.1, r.2, r.3);
    }
}

fn row(a: &str, b: String, c: String, d: &str) -> Row {
    Row(a.into(), b, c, d.into())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let cfg = config()?;
    let bin = testkit_bin();
    println!(
        "sync_throughput: {} documents of {DOC_BYTES} B in {} collections; CEA load {} ops/s for {} s \
         from {} writers; burst of {} events",
        cfg.docs, cfg.colls, cfg.cea_rate, cfg.cea_secs, cfg.writers, cfg.burst
    );
    println!("server binary: {}", bin.display());
    let source = Server::start(&bin)?;
    let destination = Server::start(&bin)?;
    let baseline = Server::start(&bin)?;
    let src = Client::with_uri_str(&source.uri).await?;
    let base = Client::with_uri_str(&baseline.uri).await?;
    let dst = Client::with_uri_str(&destination.uri).await?;

    let t = Instant::now();
    seed(&src, cfg.docs, cfg.colls, cfg.seed_tasks).await?;
    println!("seeded in {:.1} s", t.elapsed().as_secs_f64());

    // 1. Baseline copy.
    let t = Instant::now();
    let copied = baseline_copy(&src, &base, &cfg).await?;
    let base_copy_secs = t.elapsed().as_secs_f64();
    if copied != cfg.docs {
        return Err(format!("baseline copied {copied} of {} documents", cfg.docs).into());
    }
    println!("baseline copy: {base_copy_secs:.2} s");
    base.database(DB).drop().await?;
    let t = Instant::now();
    let copied = parallel_copy(&src, &base, &cfg).await?;
    let par_copy_secs = t.elapsed().as_secs_f64();
    if copied != cfg.docs {
        return Err(format!(
            "parallel baseline copied {copied} of {} documents",
            cfg.docs
        )
        .into());
    }
    println!("parallel baseline copy: {par_copy_secs:.2} s");

    // 2. The syncer's copy, its memory measured from here.
    let rss_before = self_kib("VmRSS:").unwrap_or(0);
    let reset = reset_peak_rss();
    let stop_rss = Arc::new(AtomicBool::new(false));
    let sampler = rss_sampler(Arc::clone(&stop_rss));
    let t = Instant::now();
    let idle = Syncer::connect(&source.uri, &destination.uri, engine_options()?).await?;
    let opts = StartOptions::new(ClusterName::Cluster0);
    let running = idle.start(opts).await.map_err(|e| e.error)?;
    loop {
        let p = running.progress();
        if p.info.as_deref() == Some(CEA) {
            break;
        }
        if let Some(w) = p
            .warnings
            .iter()
            .find(|w| w.starts_with("the sync stopped"))
        {
            return Err(w.clone().into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sync_copy_secs = t.elapsed().as_secs_f64();
    let copy_peak = self_kib("VmHWM:");
    println!("syncer copy: {sync_copy_secs:.2} s");

    // 3. Steady CEA under a fixed-rate load, with markers for end-to-end latency.
    let markers_src = src.database(DB).collection::<Document>(MARKERS);
    let markers_dst = dst.database(DB).collection::<Document>(MARKERS);
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut writers = tokio::task::JoinSet::new();
    let steady = Load {
        src: src.clone(),
        docs: cfg.docs,
        colls: cfg.colls,
        stop: Arc::clone(&stop),
        done: Arc::clone(&ops),
    };
    let period = Duration::from_secs_f64(cfg.writers as f64 / cfg.cea_rate as f64);
    for w in 0..cfg.writers {
        writers.spawn(writer(steady.clone(), w, Some(period), u64::MAX));
    }
    let marker_task = {
        let (s, d, stop) = (markers_src.clone(), markers_dst.clone(), Arc::clone(&stop));
        let every = Duration::from_millis(cfg.marker_ms);
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut k = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let next = Instant::now() + every;
                lat.push(marker_latency(&s, &d, Bson::Int64(k)).await?);
                k += 1;
                tokio::time::sleep_until(next.into()).await;
            }
            Ok::<_, BoxError>(lat)
        })
    };
    let events0 = running.progress().total_events_applied.unwrap_or(0);
    let t = Instant::now();
    let mut lags = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while t.elapsed() < Duration::from_secs(cfg.cea_secs) {
        tick.tick().await;
        if let Some(l) = running.progress().lag_time_seconds {
            lags.push(l as f64);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let load_secs = t.elapsed().as_secs_f64();
    while let Some(r) = writers.join_next().await {
        r??;
    }
    let offered = ops.load(Ordering::Relaxed);
    let latencies = marker_task.await??;
    // Drained: a last marker made it, so every earlier write did.
    let drain_ms = marker_latency(
        &markers_src,
        &markers_dst,
        Bson::String("steady-end".into()),
    )
    .await?;
    let steady_secs = t.elapsed().as_secs_f64();
    let steady_events = running.progress().total_events_applied.unwrap_or(0) - events0;
    println!("steady CEA: {offered} ops in {load_secs:.1} s, drained {drain_ms:.0} ms after");

    // 4. Backlog: paused syncer, burst of writes, resume and time until the end marker lands.
    let paused = running.pause().await.map_err(|e| e.error)?;
    let mut session = src.start_session().await?;
    markers_src
        .insert_one(doc! {"_id": "burst-begin"})
        .session(&mut session)
        .await?;
    let burst_from = session.operation_time().ok_or("no operationTime")?;
    let burst_ops = Arc::new(AtomicU64::new(0));
    let stop_burst = Arc::new(AtomicBool::new(false));
    let burst = Load {
        stop: Arc::clone(&stop_burst),
        done: Arc::clone(&burst_ops),
        ..steady.clone()
    };
    let t = Instant::now();
    for w in 0..cfg.writers {
        let share = cfg.burst / cfg.writers + u64::from(w < cfg.burst % cfg.writers);
        writers.spawn(writer(burst.clone(), 100 + w, None, share));
    }
    while let Some(r) = writers.join_next().await {
        r??;
    }
    markers_src.insert_one(doc! {"_id": "burst-end"}).await?;
    println!(
        "burst: {} writes in {:.1} s on the source while paused",
        burst_ops.load(Ordering::Relaxed),
        t.elapsed().as_secs_f64()
    );
    let events1 = paused.progress().total_events_applied.unwrap_or(0);
    let t = Instant::now();
    let running = paused.resume().await.map_err(|e| e.error)?;
    while markers_dst
        .find_one(doc! {"_id": "burst-end"})
        .await?
        .is_none()
    {
        if t.elapsed() > Duration::from_secs(600) {
            return Err("the burst did not drain within 600 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let burst_secs = t.elapsed().as_secs_f64();
    let burst_events = running.progress().total_events_applied.unwrap_or(0) - events1;
    stop_rss.store(true, Ordering::SeqCst);
    let sampled_peak = sampler.join().unwrap_or(0);
    let total_peak = self_kib("VmHWM:");
    println!("syncer backlog: {burst_events} events in {burst_secs:.2} s");

    let t = Instant::now();
    let read_events = read_stream(&src, burst_from, "burst-end").await?;
    let read_secs = t.elapsed().as_secs_f64();
    println!("change stream read only: {read_events} events in {read_secs:.2} s");

    let t = Instant::now();
    let base_events =
        baseline_apply(&src, &base, burst_from, "burst-end", Applier::OneByOne).await?;
    let base_apply_secs = t.elapsed().as_secs_f64();
    println!("baseline one-by-one: {base_events} events in {base_apply_secs:.2} s");
    // The same events again on the state they produced: inserts are upserts, updates `$set`,
    // so the batched baseline does the same writes as the one-by-one one.
    let t = Instant::now();
    let batched_events =
        baseline_apply(&src, &base, burst_from, "burst-end", Applier::Batched).await?;
    let batched_secs = t.elapsed().as_secs_f64();
    println!("baseline batched: {batched_events} events in {batched_secs:.2} s");
    base.database(DB).drop().await?;
    drop(base);
    drop(baseline);

    // 5. Commit and compare counts.
    running.wait_can_commit().await?;
    let t = Instant::now();
    let committed = running
        .commit()
        .await
        .map_err(|e| e.error)?
        .wait()
        .await
        .map_err(|e| e.error)?;
    let commit_secs = t.elapsed().as_secs_f64();
    let mut mismatches = Vec::new();
    let mut counted = 0u64;
    let mut names = src.database(DB).list_collection_names().await?;
    names.sort();
    for c in &names {
        let a = src
            .database(DB)
            .collection::<Document>(c)
            .count_documents(doc! {})
            .await?;
        let b = dst
            .database(DB)
            .collection::<Document>(c)
            .count_documents(doc! {})
            .await?;
        counted += a;
        if a != b {
            mismatches.push(format!("{DB}.{c}: source {a}, destination {b}"));
        }
    }
    println!(
        "final progress: {}",
        serde_json::to_string(&committed.progress())?
    );
    drop(committed);

    // The figures.
    let sync_dps = rate(cfg.docs, sync_copy_secs);
    let base_dps = rate(cfg.docs, base_copy_secs);
    let par_dps = rate(cfg.docs, par_copy_secs);
    let opt = |v: Option<f64>, unit: &str, digits: usize| {
        v.map_or("n/a".into(), |v| format!("{v:.digits$} {unit}"))
    };
    let peak_mib = copy_peak.map(mib);
    let all_peak_mib = total_peak.map(mib);
    let sync_apply = rate(burst_events, burst_secs);
    let base_apply = rate(base_events, base_apply_secs);
    let batched_apply = rate(batched_events, batched_secs);
    println!();
    println!(
        "figures ({} documents of 1 KiB, {:.0} MB):",
        cfg.docs,
        cfg.docs as f64 * 1024.0 / 1e6
    );
    let rows = vec![
        row(
            "figure",
            "syncer".into(),
            "baseline".into(),
            "ratio / target",
        ),
        row(
            "copy: documents/s",
            format!("{sync_dps:.0} docs/s"),
            format!("{base_dps:.0} docs/s"),
            &format!(
                "{:.2}x (target >= 0.9x; baseline: one stream)",
                sync_dps / base_dps
            ),
        ),
        row(
            "copy: documents/s, parallel baseline",
            format!("{sync_dps:.0} docs/s"),
            format!("{par_dps:.0} docs/s"),
            &format!(
                "{:.2}x (target >= 1.0x; baseline: one stream per collection, {} at once)",
                sync_dps / par_dps,
                cfg.colls
            ),
        ),
        row(
            "copy: throughput",
            format!("{:.1} MB/s", mbps(cfg.docs, sync_copy_secs)),
            format!("{:.1} MB/s", mbps(cfg.docs, base_copy_secs)),
            "",
        ),
        row(
            "copy: time to CEA",
            format!("{sync_copy_secs:.2} s"),
            format!("{base_copy_secs:.2} s"),
            "",
        ),
        row(
            "syncer memory: VmHWM during copy",
            opt(peak_mib, "MiB", 1),
            format!("{:.1} MiB at start", mib(rss_before)),
            &format!(
                "target < 256 MiB{}",
                if reset {
                    ""
                } else {
                    " (peak reset unavailable: includes the seeding)"
                }
            ),
        ),
        row(
            "syncer memory: VmHWM copy..backlog",
            opt(all_peak_mib, "MiB", 1),
            format!("{:.1} MiB sampled", mib(sampled_peak)),
            "target < 256 MiB",
        ),
        row(
            "CEA steady: applied events/s",
            format!("{:.0} ev/s", rate(steady_events, steady_secs)),
            format!("{:.0} ops/s", rate(offered, load_secs)),
            "(baseline column: offered load)",
        ),
        row(
            "CEA steady: lag (progress) p50/p99",
            format!(
                "{} / {}",
                opt(percentile(&lags, 50.0), "s", 0),
                opt(percentile(&lags, 99.0), "s", 0)
            ),
            String::new(),
            "whole seconds, sampled every 100 ms",
        ),
        row(
            "CEA steady: end-to-end p50/p99",
            format!(
                "{} / {}",
                opt(percentile(&latencies, 50.0), "ms", 1),
                opt(percentile(&latencies, 99.0), "ms", 1)
            ),
            String::new(),
            &format!(
                "{} markers, insert on source -> visible on destination",
                latencies.len()
            ),
        ),
        row(
            "CEA backlog: events/s",
            format!("{sync_apply:.0} ev/s"),
            format!("{base_apply:.0} ev/s"),
            &format!(
                "{:.1}x (target >= 5x; baseline: one round trip per event)",
                sync_apply / base_apply
            ),
        ),
        row(
            "CEA backlog: events/s, batched baseline",
            format!("{sync_apply:.0} ev/s"),
            format!("{batched_apply:.0} ev/s"),
            &format!(
                "{:.1}x (target >= 1.5x; baseline: one lane, ordered bulk writes per namespace, \
                 windows of {WINDOW} events)",
                sync_apply / batched_apply
            ),
        ),
        row(
            "CEA backlog: change stream read only",
            String::new(),
            format!("{:.0} ev/s", rate(read_events, read_secs)),
            "the source's ceiling: the same events read, none applied",
        ),
        row(
            "CEA backlog: events",
            format!("{burst_events}"),
            format!("{base_events}"),
            "syncer: totalEventsApplied delta; baseline: events applied",
        ),
        row(
            "commit: time",
            format!("{commit_secs:.2} s"),
            String::new(),
            "",
        ),
        row(
            "sanity: document counts",
            format!("{counted} docs"),
            String::new(),
            if mismatches.is_empty() {
                "equal on both sides"
            } else {
                "MISMATCH"
            },
        ),
    ];
    print_table(&rows);
    drop((src, dst));
    drop(source);
    drop(destination);
    if !mismatches.is_empty() {
        return Err(format!("document counts differ: {mismatches:?}").into());
    }
    Ok(())
}
