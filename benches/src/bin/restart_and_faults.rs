//! The cost of a restart, and lag while faults are injected, each beside a baseline measured in
//! the same run.
//!
//! Starts three `mongosync-testkit` processes (a source and two destinations) and seeds the
//! source with N documents of 1 KiB. The syncer runs in this process; "killed" means dropped:
//! its tasks are aborted at once and nothing is flushed, so the next syncer starts from what
//! was persisted, as after a crash (`mongosync-core/tests/sigkill_separate_process.rs` shows
//! the same with SIGKILL).
//!
//! 1. Restart in the copy. Baseline: an uninterrupted copy to destination A (time to change
//!    event application, CEA). Then a copy to destination B killed at half of the bytes, and
//!    attached again at once: the bytes the new syncer had to copy again (what unfinished
//!    partitions had copied since their last checkpoint, about a second) and the time lost
//!    overall (the difference of two copies, so within their run-to-run noise).
//! 2. Restart in CEA, under a steady write load: the end-to-end latency of marker documents
//!    (insert on the source, visible on the destination) in steady state is the baseline; the
//!    syncer is killed, the load goes on for a downtime, a new syncer attaches, and a marker
//!    written at once is timed until it lands: the time until CEA is current again.
//! 3. Lag under faults, same load: a window without faults (baseline), then a window in which a
//!    fault is injected every `RESTART_BENCH_FAULT_MS` with `failCommand`, in turn: the
//!    destination's `bulkWrite` fails with ShutdownInProgress (91), the source's `getMore`
//!    drops its connection, the destination's `bulkWrite` fails with WriteConflict (112). Marker
//!    latency p50/p99 and `lagTimeSeconds` p99 of both windows.
//! 4. Commit, then `dbHash` of every collection on source and destination B (sanity).
//!
//! ```text
//! cargo build --release -p mongosync-testkit --bin mongosync-testkit
//! cargo run --release -p benches --bin restart_and_faults
//! ```
//!
//! Settings (environment): `MONGOSYNC_TESTKIT_BIN` (as `sync_throughput`),
//! `RESTART_BENCH_DOCS` (default 1000000), `RESTART_BENCH_COLLECTIONS` (default 4),
//! `RESTART_BENCH_RATE` (write load, ops/s, default 2000), `RESTART_BENCH_WRITERS` (default 8),
//! `RESTART_BENCH_WINDOW_SECS` (each measured window, default 10), `RESTART_BENCH_DOWNTIME_MS`
//! (between kill and restart in CEA, default 2000), `RESTART_BENCH_FAULT_MS` (default 1000),
//! `RESTART_BENCH_FAULT_KINDS` (comma-separated, in turn: `shutdown`, `network`,
//! `writeconflict`; default all three).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use benches::workload::{DB, Load, MARKERS, marker_latency, seed, writer};
use benches::{BoxError, Server, env_num, percentile, testkit_bin};
use bson::{Bson, Document, doc};
use mongodb::{Client, Collection};
use mongosync_core::{AnySyncer, ClusterName, ConnectOptions, Progress, StartOptions, Syncer};
use tokio::task::JoinSet;

const CEA: &str = "change event application";

struct Config {
    docs: u64,
    colls: u64,
    rate: u64,
    writers: u64,
    window: Duration,
    downtime: Duration,
    fault_every: Duration,
}

fn config() -> Result<Config, BoxError> {
    Ok(Config {
        docs: env_num("RESTART_BENCH_DOCS", 1_000_000u64)?.max(1000),
        colls: env_num("RESTART_BENCH_COLLECTIONS", 4u64)?.max(1),
        rate: env_num("RESTART_BENCH_RATE", 2000u64)?.max(1),
        writers: env_num("RESTART_BENCH_WRITERS", 8u64)?.max(1),
        window: Duration::from_secs(env_num("RESTART_BENCH_WINDOW_SECS", 10u64)?.max(1)),
        downtime: Duration::from_millis(env_num("RESTART_BENCH_DOWNTIME_MS", 2000u64)?),
        fault_every: Duration::from_millis(env_num("RESTART_BENCH_FAULT_MS", 1000u64)?.max(10)),
    })
}

fn options() -> ConnectOptions {
    ConnectOptions::default()
}

fn copied(p: &Progress) -> i64 {
    p.collection_copy
        .as_ref()
        .map_or(0, |c| c.estimated_copied_bytes)
}

fn total(p: &Progress) -> i64 {
    p.collection_copy
        .as_ref()
        .map_or(0, |c| c.estimated_total_bytes)
}

/// Polls `progress` every 10 ms until `f` holds; fails on a stopped sync or after 10 minutes.
async fn until(
    progress: impl Fn() -> Progress,
    f: impl Fn(&Progress) -> bool,
) -> Result<Progress, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let p = progress();
        if f(&p) {
            return Ok(p);
        }
        if let Some(w) = p
            .warnings
            .iter()
            .find(|w| w.starts_with("the sync stopped"))
        {
            return Err(w.clone().into());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out; last progress {}", serde_json::to_string(&p)?).into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn attach(source: &str, destination: &str) -> Result<AnySyncer, BoxError> {
    Ok(AnySyncer::attach(source, destination, options()).await?)
}

/// Markers every 100 ms and `lagTimeSeconds` samples for `window`; (latencies ms, lags s).
async fn measure(
    syncer: &AnySyncer,
    markers: (&Collection<Document>, &Collection<Document>),
    window: Duration,
    tag: &str,
) -> Result<(Vec<f64>, Vec<f64>), BoxError> {
    let (mut latencies, mut lags) = (vec![], vec![]);
    let t = Instant::now();
    let mut k = 0;
    while t.elapsed() < window {
        let next = Instant::now() + Duration::from_millis(100);
        latencies
            .push(marker_latency(markers.0, markers.1, Bson::String(format!("{tag}-{k}"))).await?);
        if let Some(l) = syncer.progress().lag_time_seconds {
            lags.push(l as f64);
        }
        k += 1;
        tokio::time::sleep_until(next.into()).await;
    }
    Ok((latencies, lags))
}

/// Injects one fault of a rotating kind every `every` until `stop`; the number injected.
async fn inject(
    src: Client,
    dst: Client,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Result<u64, BoxError> {
    let kinds: Vec<String> = std::env::var("RESTART_BENCH_FAULT_KINDS")
        .unwrap_or_else(|_| "shutdown,network,writeconflict".into())
        .split(',')
        .map(String::from)
        .collect();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (cluster, data) = match kinds[n as usize % kinds.len()].as_str() {
            "shutdown" => (&dst, doc! {"failCommands": ["bulkWrite"], "errorCode": 91}),
            "network" => (
                &src,
                doc! {"failCommands": ["getMore"], "closeConnection": true},
            ),
            "writeconflict" => (&dst, doc! {"failCommands": ["bulkWrite"], "errorCode": 112}),
            other => return Err(format!("unknown fault kind {other:?}").into()),
        };
        let mut data = data;
        data.insert("appName", "mongosync");
        cluster
            .database("admin")
            .run_command(
                doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": data},
            )
            .await?;
        n += 1;
        tokio::time::sleep(every).await;
    }
    for c in [&src, &dst] {
        c.database("admin")
            .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
            .await?;
    }
    Ok(n)
}

async fn db_hashes(c: &Client) -> Result<Document, BoxError> {
    let mut h = c.database(DB).run_command(doc! {"dbHash": 1}).await?;
    Ok(h.remove("collections")
        .and_then(|c| c.as_document().cloned())
        .unwrap_or_default())
}

fn ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} ms"))
}

fn secs(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} s"))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let cfg = config()?;
    let bin = testkit_bin();
    println!(
        "restart_and_faults: {} documents of 1 KiB in {} collections; load {} ops/s from {} writers; \
         windows of {:?}, downtime {:?}, a fault every {:?}",
        cfg.docs, cfg.colls, cfg.rate, cfg.writers, cfg.window, cfg.downtime, cfg.fault_every
    );
    let source = Server::start(&bin)?;
    let dest_a = Server::start(&bin)?;
    let dest_b = Server::start(&bin)?;
    let src = Client::with_uri_str(&source.uri).await?;
    let dst = Client::with_uri_str(&dest_b.uri).await?;
    let t = Instant::now();
    seed(&src, cfg.docs, cfg.colls, 4).await?;
    println!("seeded in {:.1} s", t.elapsed().as_secs_f64());

    // 1. The copy: uninterrupted (baseline), then killed at half and attached again.
    let t = Instant::now();
    let a = Syncer::connect(&source.uri, &dest_a.uri, options())
        .await?
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .map_err(|e| e.error)?;
    until(|| a.progress(), |p| p.info.as_deref() == Some(CEA)).await?;
    let uninterrupted = t.elapsed().as_secs_f64();
    drop(a);
    drop(dest_a);
    println!("uninterrupted copy: {uninterrupted:.2} s");

    let t = Instant::now();
    let b = Syncer::connect(&source.uri, &dest_b.uri, options())
        .await?
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .map_err(|e| e.error)?;
    let at_kill = until(
        || b.progress(),
        |p| total(p) > 1 && copied(p) * 2 >= total(p),
    )
    .await?;
    drop(b);
    let before_kill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let b = attach(&source.uri, &dest_b.uri).await?;
    let at_restart = until(|| b.progress(), |p| total(p) > 1).await?;
    until(|| b.progress(), |p| p.info.as_deref() == Some(CEA)).await?;
    let after_restart = t.elapsed().as_secs_f64();
    let copy_total = total(&at_kill).max(1);
    let redone = copied(&at_kill) - copied(&at_restart);
    println!(
        "killed at {:.0}% after {before_kill:.2} s; the new syncer found {:.0}% done and reached CEA in {after_restart:.2} s",
        copied(&at_kill) as f64 * 100.0 / copy_total as f64,
        copied(&at_restart) as f64 * 100.0 / copy_total as f64
    );

    // 2. CEA: steady load, baseline latency, kill, downtime, restart, time until current.
    let markers = (
        src.database(DB).collection::<Document>(MARKERS),
        dst.database(DB).collection::<Document>(MARKERS),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let load = Load {
        src: src.clone(),
        docs: cfg.docs,
        colls: cfg.colls,
        stop: Arc::clone(&stop),
        done: Arc::clone(&ops),
    };
    let period = Duration::from_secs_f64(cfg.writers as f64 / cfg.rate as f64);
    let mut writers = JoinSet::new();
    for w in 0..cfg.writers {
        writers.spawn(writer(load.clone(), w, Some(period), u64::MAX));
    }
    let (steady, steady_lags) = measure(&b, (&markers.0, &markers.1), cfg.window, "steady").await?;
    let events_before = b.progress().total_events_applied.unwrap_or(0);
    drop(b);
    let ops_at_kill = ops.load(Ordering::Relaxed);
    tokio::time::sleep(cfg.downtime).await;
    let missed = ops.load(Ordering::Relaxed) - ops_at_kill;
    let t = Instant::now();
    let b = attach(&source.uri, &dest_b.uri).await?;
    let attach_ms = t.elapsed().as_secs_f64() * 1000.0;
    let current_ms = attach_ms
        + marker_latency(&markers.0, &markers.1, Bson::String("after-restart".into())).await?;
    println!(
        "CEA: killed after {events_before} events; {missed} writes during {:?} of downtime; current again {current_ms:.0} ms after the restart",
        cfg.downtime
    );

    // 3. Lag without and with injected faults.
    let (calm, calm_lags) = measure(&b, (&markers.0, &markers.1), cfg.window, "calm").await?;
    let stop_faults = Arc::new(AtomicBool::new(false));
    let injector = tokio::spawn(inject(
        src.clone(),
        dst.clone(),
        cfg.fault_every,
        Arc::clone(&stop_faults),
    ));
    let (faulty, faulty_lags) = measure(&b, (&markers.0, &markers.1), cfg.window, "faults").await?;
    stop_faults.store(true, Ordering::SeqCst);
    let faults = injector.await??;
    stop.store(true, Ordering::SeqCst);
    while let Some(r) = writers.join_next().await {
        r??;
    }
    println!("faults: {faults} injected in {:?}", cfg.window);

    // 4. Commit and compare.
    let AnySyncer::Running(running) = b else {
        return Err(format!("not running: {:?}", b.state()).into());
    };
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
    let (hs, hd) = (db_hashes(&src).await?, db_hashes(&dst).await?);
    let equal = hs == hd;
    drop(committed);

    println!();
    println!("figures ({} documents of 1 KiB):", cfg.docs);
    let rows: Vec<[String; 3]> = vec![
        [
            "figure".into(),
            "measured".into(),
            "baseline (same run)".into(),
        ],
        [
            "copy killed at half: time to CEA, kill and restart included".into(),
            format!("{:.2} s", before_kill + after_restart),
            format!("{uninterrupted:.2} s uninterrupted"),
        ],
        [
            "copy killed at half: restart overhead".into(),
            format!("{:.2} s", before_kill + after_restart - uninterrupted),
            String::new(),
        ],
        [
            "copy killed at half: bytes copied again".into(),
            format!(
                "{:.1} MB ({:.1}% of the data)",
                redone as f64 / 1e6,
                redone as f64 * 100.0 / copy_total as f64
            ),
            "what unfinished partitions copied since their last checkpoint".into(),
        ],
        [
            "CEA killed: current again after restart".into(),
            format!("{current_ms:.0} ms (attach {attach_ms:.0} ms)"),
            format!(
                "{} steady e2e p99, {missed} writes missed",
                ms(percentile(&steady, 99.0))
            ),
        ],
        [
            "e2e latency p50 / p99, no faults".into(),
            format!(
                "{} / {}",
                ms(percentile(&calm, 50.0)),
                ms(percentile(&calm, 99.0))
            ),
            format!("lag p99 {}", secs(percentile(&calm_lags, 99.0))),
        ],
        [
            "e2e latency p50 / p99, faults injected".into(),
            format!(
                "{} / {}",
                ms(percentile(&faulty, 50.0)),
                ms(percentile(&faulty, 99.0))
            ),
            format!("lag p99 {}", secs(percentile(&faulty_lags, 99.0))),
        ],
        [
            "faults injected".into(),
            format!("{faults}"),
            format!("one every {:?}", cfg.fault_every),
        ],
        [
            "steady state before the kill: lag p99".into(),
            secs(percentile(&steady_lags, 99.0)),
            String::new(),
        ],
        [
            "commit".into(),
            format!("{commit_secs:.2} s"),
            String::new(),
        ],
        [
            "sanity: dbHash of every collection".into(),
            if equal {
                "equal".into()
            } else {
                "MISMATCH".into()
            },
            format!("{} collections", hs.len()),
        ],
    ];
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
    for r in &rows {
        println!("  {:<w0$}  {:>w1$}  {}", r[0], r[1], r[2]);
    }
    drop((src, dst));
    drop(source);
    drop(dest_b);
    if !equal {
        return Err("source and destination differ after the commit".into());
    }
    Ok(())
}
