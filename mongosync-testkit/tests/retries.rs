//! Retryable reads and writes through `failCommand`: the Rust driver retries once, and the
//! server runs the write exactly once.

use bson::{Document, doc};
use mongodb::Client;
use mongosync_testkit::MemoryCluster;

/// A client that rediscovers the server quickly after a network or shutdown error.
async fn connect(cluster: &MemoryCluster) -> Client {
    Client::with_uri_str(format!("{}&heartbeatFrequencyMS=500", cluster.uri()))
        .await
        .unwrap()
}

/// Configures `failCommand` once; returns the times it was entered so far.
async fn fail_point(client: &Client, data: Document) -> i64 {
    let r = client
        .database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": data})
        .await
        .unwrap();
    count(&r)
}

/// Turns `failCommand` off; returns the times it was entered so far (cumulative, as the
/// server's `timesEntered`).
async fn times_entered(client: &Client) -> i64 {
    let r = client
        .database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();
    count(&r)
}

fn count(r: &Document) -> i64 {
    match r.get("count") {
        Some(bson::Bson::Int32(n)) => *n as i64,
        Some(bson::Bson::Int64(n)) => *n,
        other => panic!("count: {other:?}"),
    }
}

#[tokio::test]
async fn insert_after_a_closed_connection_is_retried_once() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = connect(&cluster).await;
    let coll = client.database("app").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0}).await.unwrap();
    let before = fail_point(
        &client,
        doc! {"failCommands": ["insert"], "closeConnection": true},
    )
    .await;
    coll.insert_one(doc! {"_id": 1}).await.expect("retried");
    assert_eq!(times_entered(&client).await - before, 1);
    assert_eq!(coll.count_documents(doc! {"_id": 1}).await.unwrap(), 1);
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 2);
}

#[tokio::test]
async fn find_after_a_retryable_error_is_retried() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = connect(&cluster).await;
    let coll = client.database("app").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1}).await.unwrap();
    for code in [91, 10107] {
        let before = fail_point(&client, doc! {"failCommands": ["find"], "errorCode": code}).await;
        let found = coll.find_one(doc! {}).await.expect("retried");
        assert_eq!(found, Some(doc! {"_id": 1}));
        assert_eq!(times_entered(&client).await - before, 1, "code {code}");
    }
}

#[tokio::test]
async fn a_non_retryable_error_is_not_retried() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = connect(&cluster).await;
    let coll = client.database("app").collection::<Document>("c");
    let before = fail_point(&client, doc! {"failCommands": ["find"], "errorCode": 2}).await;
    assert!(coll.find_one(doc! {}).await.is_err());
    assert_eq!(times_entered(&client).await - before, 1);
}
