//! Every call in a state that does not allow it answers mongosync's error shape and changes
//! nothing; bad bodies, unknown paths and methods get clear errors. The copy and the commit
//! are held with fail points on the destination, so each state is really the one named.

mod common;

use common::{Mongosync, block_commands, cluster, state, unblock_commands};

const ALL: [&str; 5] = ["start", "pause", "resume", "commit", "reverse"];
const START: &str = r#"{"source": "cluster0", "destination": "cluster1"}"#;

/// Each call but `allowed` fails with InvalidState naming the state; the state stays.
async fn wrong_calls(m: &Mongosync, st: &str, allowed: &[&str]) {
    for op in ALL.iter().filter(|op| !allowed.contains(op)) {
        let body = if *op == "start" { START } else { "{}" };
        let d = m
            .post_err(&format!("/api/v1/{op}"), body, "InvalidState")
            .await;
        assert!(d.contains(st) && d.contains(op), "{op} in {st}: {d}");
        assert_eq!(state(&m.progress().await), st, "{op} changed the state");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_states_and_bad_requests() {
    let (c0, c1) = (cluster().await, cluster().await);
    common::seed(&c0.client, "db", "coll", 3000).await;
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &[]).await;
    m.wait_progress(|p| state(p) == "IDLE").await;

    // IDLE.
    wrong_calls(&m, "IDLE", &["start"]).await;

    // Bad bodies and requests.
    let d = m
        .post_err("/api/v1/start", "{\"source\": ", "InvalidOptions")
        .await;
    assert!(d.contains("not valid JSON"), "{d}");
    let d = m
        .post_err("/api/v1/start", "[1, 2]", "InvalidOptions")
        .await;
    assert!(d.contains("must be a JSON object, not an array"), "{d}");
    m.post_err("/api/v1/start", "\"cluster0\"", "InvalidOptions")
        .await;
    let d = m.post_err("/api/v1/start", "", "InvalidOptions").await;
    assert!(d.contains("empty"), "{d}");
    let d = m
        .post_err(
            "/api/v1/start",
            r#"{"source": "cluster0", "destination": "cluster1", "colour": 1}"#,
            "InvalidOptions",
        )
        .await;
    assert!(d.contains("colour"), "{d}");
    let d = m
        .post_err(
            "/api/v1/start",
            r#"{"source": "cluster2", "destination": "cluster1"}"#,
            "InvalidOptions",
        )
        .await;
    assert!(d.contains("cluster2"), "{d}");
    let d = m
        .post_err("/api/v1/pause", r#"{"now": true}"#, "InvalidOptions")
        .await;
    assert!(d.contains("`now`"), "{d}");
    let big = format!("{{\"source\": \"{}\"}}", "x".repeat(400_000));
    let (status, text) = common::http(m.port, "POST", "/api/v1/start", &big).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"error\":\"PayloadTooLarge\""), "{text}");
    let (status, v) = m.get("/api/v1/status").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("NotFound")),
        "{v}"
    );
    assert!(
        v["errorDescription"]
            .as_str()
            .unwrap()
            .contains("/api/v1/progress")
    );
    let (status, v) = m.get("/api/v1/start").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (405, Some("MethodNotAllowed")),
        "{v}"
    );
    assert!(v["errorDescription"].as_str().unwrap().contains("use POST"));
    let (status, text) = common::http(m.port, "DELETE", "/api/v1/progress", "").await;
    assert_eq!(status, 405, "{text}");
    assert_eq!(state(&m.progress().await), "IDLE");

    // RUNNING, held in the copy: the destination's inserts wait.
    block_commands(&c1.client, &["insert"], 400).await;
    m.post_ok("/api/v1/start", START).await;
    m.wait_progress(|p| p["info"] == "collection copy").await;
    wrong_calls(&m, "RUNNING", &["pause", "commit"]).await;
    let d = m.post_err("/api/v1/commit", "{}", "NotReadyToCommit").await;
    assert!(!d.is_empty());
    let p = m.progress().await;
    assert_eq!(
        (state(&p), p["info"].as_str()),
        ("RUNNING", Some("collection copy")),
        "{p}"
    );

    // PAUSED.
    m.post_ok("/api/v1/pause", "{}").await;
    assert_eq!(state(&m.progress().await), "PAUSED");
    wrong_calls(&m, "PAUSED", &["resume"]).await;
    unblock_commands(&c1.client).await;
    m.post_ok("/api/v1/resume", "").await;
    m.wait_progress(|p| p["canCommit"] == true).await;

    // COMMITTING, held: the destination's metadata updates wait.
    block_commands(&c1.client, &["update"], 3000).await;
    m.post_ok("/api/v1/commit", "{}").await;
    assert_eq!(state(&m.progress().await), "COMMITTING");
    wrong_calls(&m, "COMMITTING", &[]).await;
    unblock_commands(&c1.client).await;
    m.wait_progress(|p| state(p) == "COMMITTED").await;

    // COMMITTED, not reversible.
    wrong_calls(&m, "COMMITTED", &["reverse"]).await;
    let (status, v) = m.post("/api/v1/reverse", "{}").await;
    assert!(status >= 400 && v["success"] == false, "{v}");
    assert_eq!(state(&m.progress().await), "COMMITTED");
    common::assert_same(&c0.client, &c1.client).await;
    m.assert_no_password();
}
