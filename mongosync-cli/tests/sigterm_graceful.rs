//! SIGTERM stops gracefully (exit 0, positions persisted) and a restart continues RUNNING
//! without `/start`. With `--logPath` the log goes to DIR/mongosync.log: an existing log is
//! renamed with its time at start, and SIGUSR1 rotates it.

mod common;

use common::{Mongosync, Writer, cluster, state};

fn log_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_then_restart_and_log_files() {
    let (c0, c1) = (cluster().await, cluster().await);
    common::seed(&c0.client, "app", "items", 1000).await;
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &["--verbosity", "info"]).await;
    m.wait_progress(|p| state(p) == "IDLE").await;
    m.post_ok(
        "/api/v1/start",
        r#"{"source": "cluster0", "destination": "cluster1"}"#,
    )
    .await;
    let writer = Writer::start(&c0.client, "app", "items");
    m.wait_progress(|p| p["info"] == "change event application" && p["canCommit"] == true)
        .await;
    // --verbosity INFO: no debug lines (the polled GETs log at debug).
    assert!(m.log_lines().iter().all(|l| l["level"] != "debug"));
    let (status, m) = m.signal(15).await;
    assert!(status.success(), "SIGTERM: {status:?}");
    let (_, m) = m.exit().await;
    m.wait_log(|l| l["message"] == "Mongosync stopped").await;
    m.assert_no_password();

    // Restart with the log in a directory that already holds one.
    let dir = std::env::temp_dir().join(format!("mongosync-cli-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mongosync.log"), "old\n").unwrap();
    let log_dir = dir.to_str().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut m = Mongosync::spawn_args(&[
        "--cluster0",
        &c0.uri,
        "--cluster1",
        &c1.uri,
        "--port",
        &port.to_string(),
        "--logPath",
        log_dir,
    ]);
    m.port = port;
    // The API answers once it listens; a refused connection is retried.
    let p = loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break m.wait_progress(|p| state(p) == "RUNNING").await;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(state(&p), "RUNNING", "no /start was needed");
    let files = log_files(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].starts_with("mongosync-") && files[0].ends_with(".log"),
        "{files:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(&files[0])).unwrap(),
        "old\n"
    );
    let text = std::fs::read_to_string(dir.join("mongosync.log")).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["message"], "Mongosync Options");
    assert!(!text.contains(common::PASSWORD));
    m.wait_progress(|p| p["totalEventsApplied"].as_u64() > Some(10))
        .await;

    // SIGUSR1: rotated.
    let pid = m.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .unwrap()
            .success()
    );
    loop {
        let text = std::fs::read_to_string(dir.join("mongosync.log")).unwrap_or_default();
        if text.contains("Log file rotated") {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(log_files(&dir).len(), 3, "{:?}", log_files(&dir));

    writer.stop().await;
    m.wait_progress(|p| p["canCommit"] == true).await;
    m.post_ok("/api/v1/commit", "{}").await;
    m.wait_progress(|p| state(p) == "COMMITTED").await;
    common::assert_same(&c0.client, &c1.client).await;
    let (status, _) = m.signal(2).await;
    assert!(status.success(), "SIGINT: {status:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
