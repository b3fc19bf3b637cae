//! SIGKILL in the copy, in change event application and in the commit; each time a new
//! process started with the same clusters re-attaches to the persisted sync and continues
//! without a second `/start`, and the last one reaches COMMITTED with identical data. The copy
//! and the commit are held with fail points on the destination.

mod common;

use bson::doc;
use common::{Mongosync, Writer, block_commands, cluster, state, unblock_commands};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_in_copy_cea_and_commit_then_restart() {
    let (c0, c1) = (cluster().await, cluster().await);
    common::seed(&c0.client, "big", "docs", 4000).await;
    let writer = Writer::start(&c0.client, "big", "docs");

    // 1. Killed in the copy.
    block_commands(&c1.client, &["insert"], 300).await;
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &[]).await;
    m.wait_progress(|p| state(p) == "IDLE").await;
    m.post_ok(
        "/api/v1/start",
        r#"{"source": "cluster0", "destination": "cluster1"}"#,
    )
    .await;
    m.wait_progress(|p| p["info"] == "collection copy").await;
    m.sigkill().await;
    unblock_commands(&c1.client).await;

    // 2. Restarted: INITIALIZING while the persisted state is read (held: the destination's
    // reads wait), then RUNNING without /start; killed in change event application.
    block_commands(&c1.client, &["find", "aggregate", "listDatabases"], 1500).await;
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &[]).await;
    let first = m.progress().await;
    assert_eq!(state(&first), "INITIALIZING", "{first}");
    let d = m
        .post_err(
            "/api/v1/start",
            r#"{"source": "cluster0", "destination": "cluster1"}"#,
            "InvalidState",
        )
        .await;
    assert!(d.contains("INITIALIZING"), "{d}");
    unblock_commands(&c1.client).await;
    m.wait_progress(|p| {
        p["info"] == "change event application" && p["totalEventsApplied"].as_u64() > Some(100)
    })
    .await;
    m.wait_log(|l| l["message"] == "Resumed the sync persisted on the destination")
        .await;
    m.sigkill().await;

    // 3. Restarted; killed in the commit, once the commit is persisted.
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &[]).await;
    m.wait_progress(|p| state(p) == "RUNNING" && p["canCommit"] == true)
        .await;
    let writes = writer.stop().await;
    m.wait_progress(|p| p["canCommit"] == true).await;
    block_commands(&c1.client, &["update", "collMod"], 2000).await;
    m.post_ok("/api/v1/commit", "{}").await;
    assert_eq!(state(&m.progress().await), "COMMITTING");
    let resume_data = c1
        .client
        .database("__mdb_internal_mongosync")
        .collection::<bson::Document>("resumeData");
    loop {
        let persisted = resume_data.find_one(doc! {}).await.unwrap().unwrap();
        if persisted.get_str("state").ok() == Some("COMMITTING") {
            break;
        }
        // The poll of a condition on the cluster, not a wait for time to pass.
        tokio::task::yield_now().await;
    }
    assert_eq!(state(&m.progress().await), "COMMITTING");
    m.sigkill().await;
    unblock_commands(&c1.client).await;

    // 4. Restarted: the commit continues by itself to COMMITTED.
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &[]).await;
    let first = m.wait_progress(|p| state(p) != "INITIALIZING").await;
    assert!(
        matches!(state(&first), "COMMITTING" | "COMMITTED"),
        "{first}"
    );
    m.wait_progress(|p| state(p) == "COMMITTED").await;
    let n = common::assert_same(&c0.client, &c1.client).await;
    assert!(n >= 4000 && writes > 100, "{n} documents, {writes} writes");
    let (status, m) = m.signal(15).await;
    assert!(status.success(), "{status:?}");
    m.assert_no_password();
}
