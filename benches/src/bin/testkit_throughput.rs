//! Throughput of the `mongosync-testkit` command through the real Rust driver.
//!
//! Starts the server binary in its own process (so its memory is measured alone), then times:
//! `insert_many` of N 1 KiB documents in batches, a full `_id`-ordered scan, and an `_id`-range
//! scan of a 10% slice. Beside each figure it prints a baseline measured in the same run: the
//! same driver's BSON encoding (insert) or decoding (scan) of the same documents in-process with
//! no server, i.e. the client-side ceiling, and the server's own CPU time per document (user +
//! system, from `/proc`: steadier than wall-clock rates on a shared machine). Last, the server's
//! peak RSS (`VmHWM`) overall and during each scan alone (the peak is reset before each scan):
//! a scan that streams holds about two batches whatever the size of its result, so the full
//! scan and the 10% slice should rise by about the same amount above the RSS they start from.
//!
//! Build the server in release mode first, then run the harness:
//!
//! ```text
//! cargo build --release -p mongosync-testkit --bin mongosync-testkit
//! cargo run --release -p benches --bin testkit_throughput -- [DOCS]
//! ```
//!
//! Settings (environment): `MONGOSYNC_TESTKIT_BIN` (default
//! `$CARGO_TARGET_DIR/release/mongosync-testkit`, else `<workspace>/target/release/...`),
//! `TESTKIT_BENCH_DOCS` (default 200000; the first argument wins), `TESTKIT_BENCH_INSERT_BATCH`
//! (documents per `insert_many`, default 1000), `TESTKIT_BENCH_SCAN_BATCH` (find `batchSize`,
//! default 10000).

use std::path::PathBuf;
use std::time::Instant;

use benches::{BoxError, Server, env_num, testkit_bin};

use bson::{Bson, Document, RawDocumentBuf, doc};
use futures::TryStreamExt;
use mongodb::{Client, Collection};

/// Every document encodes to exactly this many bytes.
const DOC_BYTES: usize = 1024;

struct Config {
    bin: PathBuf,
    docs: u64,
    insert_batch: usize,
    scan_batch: u32,
}

fn config() -> Result<Config, BoxError> {
    let bin = testkit_bin();
    let mut docs = env_num("TESTKIT_BENCH_DOCS", 200_000u64)?;
    if let Some(arg) = std::env::args().nth(1) {
        docs = arg
            .parse()
            .map_err(|_| format!("DOCS argument {arg:?} is not a number"))?;
    }
    if docs == 0 {
        return Err("DOCS must be positive".into());
    }
    Ok(Config {
        bin,
        docs,
        insert_batch: env_num("TESTKIT_BENCH_INSERT_BATCH", 1000usize)?.max(1),
        scan_batch: env_num("TESTKIT_BENCH_SCAN_BATCH", 10_000u32)?.max(1),
    })
}

fn make_doc(i: u64, payload_len: usize) -> Document {
    // A cheap varying payload so documents are not all identical.
    let c = char::from(b'a' + (i % 26) as u8);
    doc! { "_id": i as i64, "n": i as i64, "payload": c.to_string().repeat(payload_len) }
}

/// The payload length that makes a document exactly `DOC_BYTES` long.
fn payload_len() -> Result<usize, BoxError> {
    let base = RawDocumentBuf::try_from(&make_doc(0, 0))?.as_bytes().len();
    Ok(DOC_BYTES - base)
}

struct Rate {
    docs: u64,
    secs: f64,
    /// The server's CPU seconds during the phase, when known.
    cpu: Option<f64>,
    /// The server's RSS when the phase started and its peak during the phase (KiB), when known.
    rss: Option<(u64, u64)>,
}

/// A process's CPU time (user + system) in seconds, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

impl Rate {
    fn line(&self, what: &str, baseline: Option<&Rate>) -> String {
        let dps = self.docs as f64 / self.secs;
        let mbps = dps * DOC_BYTES as f64 / 1e6;
        let mut s = format!(
            "{what:<34} {:>9} docs {:>8.3} s {:>11.0} docs/s {:>8.1} MB/s",
            self.docs, self.secs, dps, mbps
        );
        if let Some(cpu) = self.cpu {
            s.push_str(&format!(
                "   server CPU {:.2} us/doc",
                cpu * 1e6 / self.docs as f64
            ));
        }
        if let Some((start, peak)) = self.rss {
            s.push_str(&format!(
                "   peak RSS {:.1} MiB (+{:.1} MiB over the scan)",
                start.max(peak) as f64 / 1024.0,
                peak.saturating_sub(start) as f64 / 1024.0
            ));
        }
        if let Some(b) = baseline {
            let bdps = b.docs as f64 / b.secs;
            s.push_str(&format!(
                "   ({:.1}% of client ceiling)",
                100.0 * dps / bdps
            ));
        }
        s
    }
}

fn time<T>(f: impl FnOnce() -> Result<T, BoxError>) -> Result<(T, f64), BoxError> {
    let start = Instant::now();
    let out = f()?;
    Ok((out, start.elapsed().as_secs_f64()))
}

/// The client-side ceilings: encoding Documents to BSON, decoding BSON to Documents.
fn baselines(docs: u64, plen: usize) -> Result<(Rate, Rate), BoxError> {
    let sources: Vec<Document> = (0..docs).map(|i| make_doc(i, plen)).collect();
    let (raws, enc) = time(|| {
        let mut raws = Vec::with_capacity(sources.len());
        for d in &sources {
            raws.push(RawDocumentBuf::try_from(d)?);
        }
        Ok(raws)
    })?;
    if raws.iter().any(|r| r.as_bytes().len() != DOC_BYTES) {
        return Err("documents are not all 1 KiB".into());
    }
    let (decoded, dec) = time(|| {
        let mut n = 0u64;
        for r in &raws {
            let d = Document::try_from(r.as_ref())?;
            n += u64::from(d.contains_key("payload"));
        }
        Ok(n)
    })?;
    if decoded != docs {
        return Err("baseline decode lost documents".into());
    }
    Ok((
        Rate {
            docs,
            secs: enc,
            cpu: None,
            rss: None,
        },
        Rate {
            docs,
            secs: dec,
            cpu: None,
            rss: None,
        },
    ))
}

async fn scan(coll: &Collection<Document>, filter: Document, batch: u32) -> Result<u64, BoxError> {
    let mut cursor = coll
        .find(filter)
        .sort(doc! { "_id": 1 })
        .batch_size(batch)
        .await?;
    let mut n = 0u64;
    let mut last = -1i64;
    while let Some(d) = cursor.try_next().await? {
        let id = match d.get("_id") {
            Some(Bson::Int64(v)) => *v,
            other => return Err(format!("unexpected _id {other:?}").into()),
        };
        if id <= last {
            return Err(format!("scan out of order: {id} after {last}").into());
        }
        last = id;
        n += 1;
    }
    Ok(n)
}

/// The same `_id`-ordered scan, reading raw BSON as the sync engine does (no decoding into
/// `Document` on the client: what is left is the server and the wire).
async fn scan_raw(coll: &Collection<RawDocumentBuf>, batch: u32) -> Result<(u64, u64), BoxError> {
    let mut cursor = coll
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .batch_size(batch)
        .await?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(d) = cursor.try_next().await? {
        bytes += d.as_bytes().len() as u64;
        n += 1;
    }
    Ok((n, bytes))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let cfg = config()?;
    let plen = payload_len()?;
    println!(
        "testkit_throughput: {} documents of {DOC_BYTES} B, insert batches of {}, scan batchSize {}",
        cfg.docs, cfg.insert_batch, cfg.scan_batch
    );
    println!("server binary: {}", cfg.bin.display());

    let (enc_base, dec_base) = baselines(cfg.docs, plen)?;

    let server = Server::start(&cfg.bin)?;
    let idle_rss = server.status_kib("VmRSS:").unwrap_or(0);
    println!("server: {}", server.redacted_uri());
    let client = Client::with_uri_str(&server.uri).await?;
    let coll: Collection<Document> = client.database("bench").collection("docs");
    coll.drop().await?;

    // Insert: documents are built outside the timed section; encoding is inside (the driver's).
    let pid = server.pid();
    let cpu_at = || cpu_secs(pid);
    let mut inserted = 0u64;
    let mut secs = 0.0f64;
    let cpu_start = cpu_at();
    let mut next = 0u64;
    while next < cfg.docs {
        let end = (next + cfg.insert_batch as u64).min(cfg.docs);
        let batch: Vec<Document> = (next..end).map(|i| make_doc(i, plen)).collect();
        let start = Instant::now();
        let res = coll.insert_many(batch).await?;
        secs += start.elapsed().as_secs_f64();
        inserted += res.inserted_ids.len() as u64;
        next = end;
    }
    if inserted != cfg.docs {
        return Err(format!("inserted {inserted} of {} documents", cfg.docs).into());
    }
    let since = |start: Option<f64>| Some(cpu_at()? - start?);
    let insert = Rate {
        docs: inserted,
        secs,
        cpu: since(cpu_start),
        rss: None,
    };
    let after_insert_rss = server.status_kib("VmRSS:").unwrap_or(0);
    // The peak so far (the insert's); the scans' peaks are read one by one below.
    let insert_peak = server.status_kib("VmHWM:");

    // Each scan's peak RSS: the peak is reset to the current RSS before it starts (no figure
    // when it cannot be reset: the peak would be the insert's).
    let rss_start = || {
        if server.reset_peak_rss() {
            server.status_kib("VmRSS:")
        } else {
            None
        }
    };
    let rss_during = |start: Option<u64>| Some((start?, server.status_kib("VmHWM:")?));

    let rss0 = rss_start();
    let cpu_start = cpu_at();
    let start = Instant::now();
    let full = scan(&coll, doc! {}, cfg.scan_batch).await?;
    let full_rate = Rate {
        docs: full,
        secs: start.elapsed().as_secs_f64(),
        cpu: since(cpu_start),
        rss: rss_during(rss0),
    };
    if full != cfg.docs {
        return Err(format!("full scan returned {full} of {} documents", cfg.docs).into());
    }

    let rss0 = rss_start();
    let cpu_start = cpu_at();
    let start = Instant::now();
    let (raw_n, _) = scan_raw(&coll.clone_with_type::<RawDocumentBuf>(), cfg.scan_batch).await?;
    let raw_rate = Rate {
        docs: raw_n,
        secs: start.elapsed().as_secs_f64(),
        cpu: since(cpu_start),
        rss: rss_during(rss0),
    };
    if raw_n != cfg.docs {
        return Err(format!("raw scan returned {raw_n} of {} documents", cfg.docs).into());
    }

    let lo = (cfg.docs * 45 / 100) as i64;
    let hi = (cfg.docs * 55 / 100) as i64;
    let rss0 = rss_start();
    let cpu_start = cpu_at();
    let start = Instant::now();
    let slice = scan(
        &coll,
        doc! { "_id": { "$gte": lo, "$lt": hi } },
        cfg.scan_batch,
    )
    .await?;
    let slice_rate = Rate {
        docs: slice,
        secs: start.elapsed().as_secs_f64(),
        cpu: since(cpu_start),
        rss: rss_during(rss0),
    };
    if slice != (hi - lo) as u64 {
        return Err(format!("range scan returned {slice} of {} documents", hi - lo).into());
    }

    client.shutdown().await;
    drop(server);

    println!();
    println!("client ceiling (no server):");
    println!("{}", enc_base.line("  encode Document -> BSON", None));
    println!("{}", dec_base.line("  decode BSON -> Document", None));
    println!("through mongosync-testkit:");
    println!("{}", insert.line("  insert_many", Some(&enc_base)));
    println!(
        "{}",
        full_rate.line("  find all, sort _id", Some(&dec_base))
    );
    println!("{}", raw_rate.line("  find all, sort _id, raw BSON", None));
    println!(
        "{}",
        slice_rate.line(
            &format!("  find _id in [{lo}, {hi}) (10%)"),
            Some(&dec_base)
        )
    );
    println!();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let scans_peak = [&full_rate, &raw_rate, &slice_rate]
        .iter()
        .filter_map(|r| r.rss.map(|(_, p)| p))
        .max();
    let peak = insert_peak.max(scans_peak);
    println!(
        "server RSS: idle {:.1} MiB, after insert {:.1} MiB, peak (VmHWM) {} (data: {:.1} MiB; \
         scan batches of {} docs: {:.1} MiB)",
        mib(idle_rss),
        mib(after_insert_rss),
        peak.map_or_else(|| "n/a".to_string(), |k| format!("{:.1} MiB", mib(k))),
        cfg.docs as f64 * DOC_BYTES as f64 / (1024.0 * 1024.0),
        cfg.scan_batch,
        f64::from(cfg.scan_batch) * DOC_BYTES as f64 / (1024.0 * 1024.0),
    );
    Ok(())
}
