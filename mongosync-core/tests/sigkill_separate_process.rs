//! A syncer in a separate process, killed with SIGKILL in the copy, in change application and
//! in the middle of the commit, under a write load; each time a new process resumes from the
//! persisted state. Nothing runs at a kill (no destructor, no flush), as when a host dies.
//! The clusters live in this process; the syncer processes are this test binary again, running
//! the ignored `syncer_process` test.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bson::doc;
use futures::StreamExt;
use mongodb::Client;
use mongosync_core::{AnySyncer, ClusterName, StartOptions, SyncState};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const SOURCE: &str = "SYNCER_PROCESS_SOURCE";
const DESTINATION: &str = "SYNCER_PROCESS_DESTINATION";
const COMMIT: &str = "SYNCER_PROCESS_COMMIT";

fn connect_options() -> mongosync_core::ConnectOptions {
    common::options()
        .copy_workers(1)
        .partition_bytes(64 << 10)
        .copy_batch_bytes(16 << 10)
}

/// The syncer process: attaches (or starts), prints its progress as a JSON line every 50 ms,
/// and with `SYNCER_PROCESS_COMMIT` set commits and exits once COMMITTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the syncer process of `sigkill_in_every_phase`, which runs it"]
async fn syncer_process() {
    let (source, destination) = (
        std::env::var(SOURCE).unwrap(),
        std::env::var(DESTINATION).unwrap(),
    );
    let commit = std::env::var(COMMIT).is_ok();
    let mut syncer = AnySyncer::attach(&source, &destination, connect_options())
        .await
        .unwrap();
    if syncer.state() == SyncState::Idle {
        syncer = syncer
            .start(StartOptions::new(ClusterName::Cluster0))
            .await
            .unwrap();
    }
    // The current progress, then each change of it.
    let mut changes = std::pin::pin!(syncer.handle().changes());
    while let Some(p) = changes.next().await {
        println!("{}", serde_json::to_string(&p).unwrap());
        if commit && p.state == SyncState::Running && p.can_commit {
            syncer = syncer.commit().await.unwrap();
        }
        if p.state == SyncState::Committed {
            return;
        }
    }
    panic!("the syncer is gone: {:?}", syncer.progress());
}

struct Process {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

fn spawn(pair: &common::Pair, commit: bool) -> Process {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "syncer_process",
        "--ignored",
        "--nocapture",
        "--quiet",
    ])
    .env(SOURCE, &pair.source_uri)
    .env(DESTINATION, &pair.destination_uri)
    .stdout(Stdio::piped())
    .kill_on_drop(true);
    if commit {
        cmd.env(COMMIT, "1");
    }
    let mut child = cmd.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    Process { child, lines }
}

impl Process {
    /// Reads progress lines until `f` holds for one; panics if the process ends first.
    async fn until(&mut self, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .expect("no such progress within 120 s")
                .unwrap();
            let Some(line) = line else {
                panic!("the syncer process ended: {:?}", self.child.wait().await);
            };
            if let Ok(p) = serde_json::from_str::<Value>(&line)
                && f(&p)
            {
                return p;
            }
        }
    }

    /// SIGKILL, and the exit status says so.
    async fn sigkill(mut self) {
        self.child.kill().await.unwrap();
        let status = self.child.wait().await.unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
}

fn state(p: &Value) -> &str {
    p["state"].as_str().unwrap_or_default()
}

fn copied(p: &Value) -> i64 {
    p["collectionCopy"]["estimatedCopiedBytes"]
        .as_i64()
        .unwrap_or(0)
}

async fn load(src: Client, stop: Arc<AtomicBool>) -> u64 {
    let coll = src.database("big").collection::<bson::Document>("docs");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = (n * 7919 % 9000) as i32;
        match n % 3 {
            0 => coll
                .update_one(doc! {"_id": id}, doc! {"$inc": {"n": 1}})
                .upsert(true)
                .await
                .map(drop),
            1 => coll
                .replace_one(doc! {"_id": id + 20_000}, doc! {"r": n as i64})
                .upsert(true)
                .await
                .map(drop),
            _ => coll.delete_one(doc! {"_id": id}).await.map(drop),
        }
        .unwrap();
        n += 1;
        // Paces the load (not a synchronisation): the syncer keeps up between kills.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_in_every_phase() {
    let pair = common::pair().await;
    let coll = pair
        .src
        .database("big")
        .collection::<bson::Document>("docs");
    common::insert_padded(&coll, 8000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(load(pair.src.clone(), Arc::clone(&stop)));

    // 1. Killed in the copy.
    let mut p = spawn(&pair, false);
    let seen = p
        .until(|p| p["info"] == "collection copy" && copied(p) > 2_000_000)
        .await;
    p.sigkill().await;
    let copied_at_kill = copied(&seen);

    // 2. Killed in change application: the new process starts from what was copied.
    let mut p = spawn(&pair, false);
    // Its first progress shows the copy figures persisted before the kill.
    let first = p.until(|_| true).await;
    assert!(
        copied(&first) >= copied_at_kill / 2,
        "the copy restarted from scratch: {first}"
    );
    p.until(|p| {
        p["info"] == "change event application" && p["totalEventsApplied"].as_i64() > Some(200)
    })
    .await;
    p.sigkill().await;

    // 3. Killed in the commit: its restoration step (the reverse start point, a no-op written
    // to the destination) fails with a transient error, retried until the fail point is off.
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    let admin = pair.dst.database("admin");
    admin
        .run_command(doc! {
            "configureFailPoint": "failCommand", "mode": "alwaysOn",
            "data": {"failCommands": ["appendOplogNote"], "errorCode": 6, "appName": "mongosync"},
        })
        .await
        .unwrap();
    let mut p = spawn(&pair, true);
    p.until(|p| state(p) == "COMMITTING").await;
    // Killed once the commit is in its restoration (COMMITTING is persisted before).
    admin
        .run_command(
            doc! {"waitForFailPoint": "failCommand", "timesEntered": 1, "maxTimeMS": 120_000},
        )
        .await
        .unwrap();
    p.sigkill().await;
    let persisted = common::wait_persisted(&pair.dst, "resumeData", doc! {}).await;
    assert_eq!(persisted.get_str("state").ok(), Some("COMMITTING"));
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();

    // 4. The last process finishes the commit and exits.
    let mut p = spawn(&pair, true);
    let first = p.until(|_| true).await;
    assert_eq!(state(&first), "COMMITTING", "{first}");
    p.until(|p| state(p) == "COMMITTED").await;
    let status = p.child.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert!(writes > 100 && n > 8000, "{writes} writes, {n} documents");
}
