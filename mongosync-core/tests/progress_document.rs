//! `progress()` serialises to mongosync's `/progress` document: the same field names and JSON
//! types in every state, measured figures only.

mod common;

use bson::doc;
use mongosync_core::{ClusterName, StartOptions, Syncer};
use serde_json::Value;

fn kinds(v: &Value) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let t = match v {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(n) if n.is_i64() || n.is_u64() => "int",
                Value::Number(_) => "float",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            (k.clone(), t)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_has_mongosyncs_fields_and_types_in_every_state() {
    let pair = common::pair().await;
    pair.src
        .database("d")
        .collection("c")
        .insert_many((0..500).map(|i| doc! {"_id": i, "pad": "x".repeat(100)}))
        .await
        .unwrap();
    let idle = Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap();
    let v = idle.progress().to_response_json();
    assert_eq!(v["success"], true);
    let p = &v["progress"];
    assert_eq!(p["state"], "IDLE");
    assert_eq!(p["canCommit"], false);
    for (k, t) in kinds(p) {
        if k != "state" && k != "canCommit" {
            assert_eq!(t, "null", "{k} must be null in IDLE");
        }
    }

    let running = idle
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap();
    common::wait_for(|| running.progress(), |p| p.can_commit).await;
    let p = serde_json::to_value(running.progress()).unwrap();
    let expected = [
        ("canCommit", "bool"),
        ("canWrite", "bool"),
        ("ceaStage", "string"),
        ("collectionCopy", "object"),
        ("coordinatorID", "string"),
        ("destination", "object"),
        ("directionMapping", "object"),
        ("estimatedOplogTimeRemaining", "string"),
        ("info", "string"),
        ("lag", "object"),
        ("lagTimeSeconds", "int"),
        ("mongosyncID", "string"),
        ("source", "object"),
        ("state", "string"),
        ("totalEventsApplied", "int"),
    ];
    let expected: Vec<(String, &str)> = expected.iter().map(|(k, t)| (k.to_string(), *t)).collect();
    assert_eq!(kinds(&p), expected);
    assert_eq!(p["state"], "RUNNING");
    assert_eq!(p["info"], "change event application");
    assert_eq!(p["canWrite"], false);
    let copy = &p["collectionCopy"];
    assert!(copy["estimatedCopiedBytes"].as_i64().unwrap() > 50_000);
    assert_eq!(copy["estimatedCopiedBytes"], copy["estimatedTotalBytes"]);
    let lag = p["lagTimeSeconds"].as_i64().unwrap();
    assert!((0..=30).contains(&lag), "{lag}");
    assert_eq!(p["lag"]["overallLagSeconds"], lag);
    assert!(
        p["directionMapping"]["Source"]
            .as_str()
            .unwrap()
            .starts_with("cluster0: 127.0.0.1:")
    );
    assert!(
        p["directionMapping"]["Destination"]
            .as_str()
            .unwrap()
            .starts_with("cluster1: 127.0.0.1:")
    );
    assert_eq!(p["mongosyncID"], "coordinator");
    assert_eq!(p["coordinatorID"], "coordinator");
    // A fresh 2 GiB history: nothing to warn about.
    let window = p["estimatedOplogTimeRemaining"].as_str().unwrap();
    assert!(
        ["not checked yet", "more than 72 hours"].contains(&window) || window.ends_with("hours"),
        "{window}"
    );
    assert!(p.get("warnings").is_none(), "{p}");

    let paused = running.pause().await.unwrap();
    let p = serde_json::to_value(paused.progress()).unwrap();
    assert_eq!(p["state"], "PAUSED");
    assert!(
        p["lagTimeSeconds"].is_null() && p["lag"].is_null(),
        "no lag while paused: {p}"
    );
    let running = paused.resume().await.unwrap();
    let committed = common::commit(running).await;
    let p = serde_json::to_value(committed.progress()).unwrap();
    assert_eq!(p["state"], "COMMITTED");
    assert_eq!(p["canWrite"], true);
    assert_eq!(p["info"], "commit completed");
    assert!(p.get("estimatedOplogTimeRemaining").is_none(), "{p}");
}
