//! The runbook: start (keys in any case, as MongoDB's own harness posts them), poll
//! `/progress` while a writer changes the source, commit once `canCommit`, COMMITTED with the
//! data identical document by document; reverse, write on the new source, commit again,
//! identical again; SIGTERM ends with 0. Along the way: the log lines existing tools read,
//! `/metrics` and the dashboard's JSON.

mod common;

use common::{Mongosync, Writer, assert_same, cluster, state};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_commit_reverse_commit() {
    let (c0, c1) = (cluster().await, cluster().await);
    common::seed(&c0.client, "shop", "orders", 3000).await;
    common::seed(&c0.client, "shop", "users", 500).await;
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &[]).await;

    let lines = m.log_lines();
    assert_eq!(lines[0]["message"], "Mongosync Options", "{lines:#?}");
    assert!(
        lines[0]["options"]["cluster0"]
            .as_str()
            .unwrap()
            .contains("<redacted>")
    );
    assert_eq!(lines[1]["message"], "Version info", "{lines:#?}");
    for l in &lines {
        for key in ["time", "level", "message", "mongosyncID", "componentName"] {
            assert!(l.get(key).is_some(), "{key} missing: {l}");
        }
        let time = l["time"].as_str().unwrap();
        assert!(
            time.len() == 27 && time.as_bytes()[19] == b'.' && time.ends_with('Z'),
            "not RFC 3339 with microseconds: {time}"
        );
    }
    m.wait_progress(|p| state(p) == "IDLE").await;

    m.post_ok(
        "/api/v1/start",
        r#"{"Source": "cluster0", "Destination": "cluster1", "Reversible": true,
            "enableUserWriteBlocking": "sourceAndDestination"}"#,
    )
    .await;
    let writer = Writer::start(&c0.client, "shop", "orders");
    let p = m
        .wait_progress(|p| {
            p["info"] == "change event application"
                && p["canCommit"] == true
                && p["totalEventsApplied"].as_u64() > Some(100)
        })
        .await;
    assert_eq!(state(&p), "RUNNING");
    assert!(
        p["directionMapping"]["Source"]
            .as_str()
            .unwrap()
            .starts_with("cluster0: ")
    );
    let copied = &p["collectionCopy"];
    assert_eq!(
        copied["estimatedCopiedBytes"], copied["estimatedTotalBytes"],
        "{p}"
    );

    // The log lines of the phases, of the requests and of replication.
    m.wait_log(|l| l["message"] == "Starting collection copy phase")
        .await;
    m.wait_log(|l| l["message"] == "Starting change event application phase")
        .await;
    let s = m
        .wait_log(|l| l["message"] == "Operation duration stats")
        .await;
    let w = &s["CollectionCopyDestinationWrite"];
    assert!(
        w["numOperations"].as_u64() > Some(0) && w.get("averageDurationMs").is_some(),
        "{s}"
    );
    let r = m.wait_log(|l| l["message"] == "Replication progress").await;
    assert!(
        r.get("totalEventsApplied").is_some() && r.get("lagTimeSeconds").is_some(),
        "{r}"
    );
    let r = m
        .wait_log(|l| l["message"] == "Received request" && l["uri"] == "/api/v1/start")
        .await;
    let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["Source"], "cluster0", "{r}");
    m.wait_log(|l| {
        l["message"] == "sent response"
            && l["uri"] == "/api/v1/start"
            && l["status"] == 200
            && l["body"] == r#"{"success":true}"#
    })
    .await;

    // Metrics: the Prometheus text and the dashboard's JSON.
    let (status, text) = common::http(m.port, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    for name in [
        "mongosync_state{state=\"RUNNING\"} 1",
        "mongosync_cea_events_applied_count_total ",
        "mongosync_collection_copy_namespace_copied_docs_count_total{namespace=\"shop.orders\"} ",
        "mongosync_collection_copy_batch_duration_seconds_bucket{le=\"+Inf\"} ",
        "mongosync_lag_time_seconds ",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    let (_, j) = m.get("/api/v1/metrics.json").await;
    assert_eq!(j["success"], true);
    assert_eq!(
        j["metrics"]["namespaces"]["shop.users"]["documents"], 500,
        "{j}"
    );

    let writes = writer.stop().await;
    m.post_ok("/api/v1/commit", "{ }").await;
    // /progress answers during the commit (COMMITTING, or COMMITTED already).
    let p = m.progress().await;
    assert!(matches!(state(&p), "COMMITTING" | "COMMITTED"), "{p}");
    m.wait_progress(|p| state(p) == "COMMITTED").await;
    let n = assert_same(&c0.client, &c1.client).await;
    assert!(n >= 3500 && writes > 100, "{n} documents, {writes} writes");

    // Reverse: cluster1 becomes the source.
    m.post_ok("/api/v1/reverse", "{}").await;
    let p = m.wait_progress(|p| state(p) == "RUNNING").await;
    assert!(
        p["directionMapping"]["Source"]
            .as_str()
            .unwrap()
            .starts_with("cluster1: "),
        "{p}"
    );
    let writer = Writer::start(&c1.client, "shop", "users");
    m.wait_progress(|p| p["canCommit"] == true && p["totalEventsApplied"].as_u64() > Some(50))
        .await;
    writer.stop().await;
    m.post_ok("/api/v1/commit", "{}").await;
    m.wait_progress(|p| state(p) == "COMMITTED").await;
    assert_same(&c1.client, &c0.client).await;

    let (status, m) = m.signal(15).await;
    assert!(status.success(), "SIGTERM: {status:?}");
    m.assert_no_password();
}
