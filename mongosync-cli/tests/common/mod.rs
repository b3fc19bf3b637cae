//! Shared by the `mongosync` command's scenarios: testkit clusters with authentication, the
//! built binary as a child process driven only over HTTP (a raw HTTP/1.1 client: no library
//! between the test and the bytes on the wire), its JSON log lines, and the oracle comparing
//! two clusters document by document.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bson::{Document, RawDocumentBuf, doc};
use futures::TryStreamExt;
use mongodb::Client;
use mongosync_testkit::{ClusterOptions, MemoryCluster};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// The password of every test cluster's user; no output may ever contain it.
pub const PASSWORD: &str = "pw-Secr3t-cli";
pub const USER: &str = "admin";

/// The longest any wait of a scenario may take before it fails (a hang is a failure).
const PATIENCE: Duration = Duration::from_secs(180);

pub struct Cluster {
    pub cluster: MemoryCluster,
    /// The URI with credentials, as given to `mongosync`.
    pub uri: String,
    pub client: Client,
}

/// A testkit cluster with authentication on.
pub async fn cluster() -> Cluster {
    let cluster = MemoryCluster::start_with(ClusterOptions::default().auth(USER, PASSWORD))
        .await
        .unwrap();
    let uri = format!(
        "{}&heartbeatFrequencyMS=500",
        cluster.uri_with_credentials(USER, PASSWORD)
    );
    let client = Client::with_uri_str(&uri).await.unwrap();
    Cluster {
        cluster,
        uri,
        client,
    }
}

/// `n` documents of about 1 KB in `db.coll`.
pub async fn seed(c: &Client, db: &str, coll: &str, n: i32) {
    let docs: Vec<Document> = (0..n)
        .map(|i| doc! {"_id": i, "name": format!("doc {i}"), "pad": "x".repeat(1000)})
        .collect();
    for chunk in docs.chunks(500) {
        c.database(db)
            .collection::<Document>(coll)
            .insert_many(chunk.to_vec())
            .await
            .unwrap();
    }
}

/// Writes to `db.coll` until stopped: inserts, updates and deletes.
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Writer {
    pub fn start(c: &Client, db: &str, coll: &str) -> Writer {
        let coll = c.database(db).collection::<Document>(coll);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let id = 100_000 + (n % 500) as i32;
                match n % 3 {
                    0 => coll
                        .update_one(doc! {"_id": id}, doc! {"$inc": {"n": 1}})
                        .upsert(true)
                        .await
                        .map(drop),
                    1 => coll
                        .update_one(
                            doc! {"_id": (n % 300) as i32},
                            doc! {"$set": {"w": n as i64}},
                        )
                        .await
                        .map(drop),
                    _ => coll.delete_one(doc! {"_id": id + 1}).await.map(drop),
                }
                .unwrap();
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        });
        Writer { stop, task }
    }

    /// Stops and returns the number of writes.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// `configureFailPoint failCommand` for the syncer's connections (appName `mongosync`):
/// `commands` wait `block_ms` before running.
pub async fn block_commands(c: &Client, commands: &[&str], block_ms: i64) {
    c.database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand", "mode": "alwaysOn",
            "data": {"failCommands": commands, "blockConnection": true,
                     "blockTimeMS": block_ms, "appName": "mongosync"},
        })
        .await
        .unwrap();
}

pub async fn unblock_commands(c: &Client) {
    c.database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();
}

const SKIP_DBS: &[&str] = &["admin", "config", "local"];

async fn user_namespaces(c: &Client) -> Vec<(String, String)> {
    let mut out = vec![];
    for db in c.list_database_names().await.unwrap() {
        if SKIP_DBS.contains(&db.as_str()) || db.starts_with("__mdb_internal") {
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

/// The oracle: the same namespaces, holding the same documents byte for byte. Returns the
/// number of documents compared.
pub async fn assert_same(a: &Client, b: &Client) -> usize {
    let (na, nb) = (user_namespaces(a).await, user_namespaces(b).await);
    assert_eq!(na, nb, "the namespaces differ");
    let mut n = 0;
    for (db, coll) in &na {
        let read = |c: &Client| {
            let coll = c.database(db).collection::<RawDocumentBuf>(coll);
            async move {
                coll.find(doc! {})
                    .sort(doc! {"_id": 1})
                    .await
                    .unwrap()
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap()
            }
        };
        let (da, db_) = (read(a).await, read(b).await);
        assert_eq!(da.len(), db_.len(), "{db}.{coll}: document counts differ");
        for (x, y) in da.iter().zip(&db_) {
            assert_eq!(x.as_bytes(), y.as_bytes(), "{db}.{coll}: {x:?} != {y:?}");
        }
        n += da.len();
    }
    n
}

/// One HTTP/1.1 exchange: the status and the body.
pub async fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The server may answer (413) before reading a large body, and close.
    let _ = s.write_all(request.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response to {method} {path}: {text:?}"));
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A `mongosync` process.
pub struct Mongosync {
    pub child: Child,
    pub port: u16,
    /// Every log line (stdout) so far.
    pub log: watch::Receiver<Vec<String>>,
    pub stderr: watch::Receiver<String>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mongosync")
}

/// The target directory (for artefacts such as screenshots).
pub fn target_dir() -> PathBuf {
    let bin = PathBuf::from(binary());
    bin.parent().unwrap().parent().unwrap().to_path_buf()
}

impl Mongosync {
    /// Starts `mongosync --cluster0 uri0 --cluster1 uri1 --port 0 extra…` and waits until its
    /// API listens (its log says on which port).
    pub async fn spawn(uri0: &str, uri1: &str, extra: &[&str]) -> Mongosync {
        let mut args = vec!["--cluster0", uri0, "--cluster1", uri1, "--port", "0"];
        args.extend_from_slice(extra);
        let m = Mongosync::spawn_args(&args);
        let line = m
            .wait_log(|l| l["message"] == "Starting the web server")
            .await;
        let port = line["port"].as_u64().unwrap() as u16;
        Mongosync { port, ..m }
    }

    /// Starts `mongosync args…` (port unknown: 0).
    pub fn spawn_args(args: &[&str]) -> Mongosync {
        let mut child = Command::new(binary())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, log) = watch::channel(Vec::new());
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                tx.send_modify(|v| v.push(line));
            }
        });
        let (etx, stderr) = watch::channel(String::new());
        let mut err = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let s = String::from_utf8_lossy(&buf[..n]).into_owned();
                etx.send_modify(|v| v.push_str(&s));
            }
        });
        Mongosync {
            child,
            port: 0,
            log,
            stderr,
        }
    }

    /// Waits for a log line for which `f` holds (lines that are not JSON fail the test).
    pub async fn wait_log(&self, f: impl Fn(&Value) -> bool) -> Value {
        let mut rx = self.log.clone();
        let found = tokio::time::timeout(
            PATIENCE,
            rx.wait_for(|lines| {
                lines.iter().any(|l| {
                    let v: Value = serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}"));
                    f(&v)
                })
            }),
        )
        .await;
        let Ok(Ok(lines)) = found else {
            panic!(
                "no such log line; the log: {:#?}\nstderr: {}",
                self.log.borrow(),
                self.stderr.borrow().as_str()
            );
        };
        lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| f(v))
            .unwrap()
    }

    pub fn log_lines(&self) -> Vec<Value> {
        self.log
            .borrow()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = http(self.port, "GET", path, "").await;
        (status, serde_json::from_str(&body).unwrap())
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let (status, text) = http(self.port, "POST", path, body).await;
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text:?}"));
        (status, v)
    }

    /// POSTs and requires `{"success":true}` byte for byte.
    pub async fn post_ok(&self, path: &str, body: &str) {
        let (status, text) = http(self.port, "POST", path, body).await;
        assert_eq!(
            (status, text.as_str()),
            (200, r#"{"success":true}"#),
            "POST {path} {body}"
        );
    }

    /// POSTs and requires the error shape with `code`; returns the description.
    pub async fn post_err(&self, path: &str, body: &str, code: &str) -> String {
        let (status, v) = self.post(path, body).await;
        assert!(status >= 400, "POST {path}: status {status}: {v}");
        assert_eq!(v["success"], false, "POST {path}: {v}");
        assert_eq!(v["error"], code, "POST {path} {body}: {v}");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "{v}");
        v["errorDescription"].as_str().unwrap().to_string()
    }

    /// `GET /api/v1/progress`'s `progress` document.
    pub async fn progress(&self) -> Value {
        let (status, v) = self.get("/api/v1/progress").await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["success"], true, "{v}");
        v["progress"].clone()
    }

    /// Polls `/progress` as a runbook does until `f` holds.
    pub async fn wait_progress(&self, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let p = self.progress().await;
            if f(&p) {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no such progress; the last: {p}\nstderr: {}",
                self.stderr.borrow().as_str()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: nothing runs at the kill.
    pub async fn sigkill(mut self) {
        self.child.kill().await.unwrap();
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
        self.assert_no_password();
    }

    /// Sends a signal and waits for the exit.
    pub async fn signal(mut self, signal: i32) -> (ExitStatus, Self) {
        let pid = self.child.id().unwrap();
        let ok = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("mongosync did not exit")
            .unwrap();
        (status, self)
    }

    /// Waits for the exit.
    pub async fn exit(mut self) -> (ExitStatus, Self) {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("mongosync did not exit")
            .unwrap();
        // The readers have the last lines once the pipes close.
        let mut rx = self.stderr.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|_| false)).await;
        (status, self)
    }

    pub fn assert_no_password(&self) {
        for line in self.log.borrow().iter() {
            assert!(!line.contains(PASSWORD), "a password in the log: {line}");
        }
        let err = self.stderr.borrow();
        assert!(
            !err.contains(PASSWORD),
            "a password on stderr: {}",
            err.as_str()
        );
    }
}

pub fn state(p: &Value) -> &str {
    p["state"].as_str().unwrap_or_default()
}
