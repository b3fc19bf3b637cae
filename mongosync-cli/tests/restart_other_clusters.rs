//! A process started against other clusters than the persisted sync refuses: one line on
//! stderr naming MetadataMismatch, a fatal log line, a non-zero exit, no password anywhere.

mod common;

use common::{Mongosync, cluster, state};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_against_other_clusters_is_refused() {
    let (c0, c1, other) = (cluster().await, cluster().await, cluster().await);
    common::seed(&c0.client, "app", "items", 200).await;
    common::seed(&other.client, "elsewhere", "things", 10).await;
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &[]).await;
    m.wait_progress(|p| state(p) == "IDLE").await;
    m.post_ok(
        "/api/v1/start",
        r#"{"source": "cluster0", "destination": "cluster1"}"#,
    )
    .await;
    m.wait_progress(|p| p["info"] == "change event application")
        .await;
    let (status, _) = m.signal(15).await;
    assert!(status.success());

    // The same destination, another source.
    let m = Mongosync::spawn(&other.uri, &c1.uri, &[]).await;
    let (status, m) = m.exit().await;
    assert!(!status.success(), "{status:?}");
    let stderr = m.stderr.borrow().clone();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MetadataMismatch"), "{stderr}");
    m.wait_log(|l| l["level"] == "fatal" && l["code"] == "MetadataMismatch")
        .await;
    m.assert_no_password();
}
