//! Retryable reads and writes through `failCommand`: the Rust driver retries once, and the
//! server runs the write exactly once.

use bson::{Document, doc};
use futures::TryStreamExt;
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

/// Every document of `coll`, in natural order.
async fn all_documents(coll: &mongodb::Collection<Document>) -> Vec<Document> {
    coll.find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Sets `onPrimaryTransactionalWrite` (the server's fail point in the write path of retryable
/// writes).
async fn transactional_write_fail_point(client: &Client, mode: bson::Bson, data: Document) {
    client
        .database("admin")
        .run_command(
            doc! {"configureFailPoint": "onPrimaryTransactionalWrite", "mode": mode, "data": data},
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_retryable_write_failed_before_commit_is_retried_and_done_once() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = connect(&cluster).await;
    let coll = client.database("app").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1, "x": 0}).await.unwrap();
    // closeConnection defaults to true: the driver sees a network error and retries; the
    // first attempt was not written, so the retry writes.
    let once = bson::Bson::Document(doc! {"times": 1});
    let fail = doc! {"failBeforeCommitExceptionCode": 1};
    transactional_write_fail_point(&client, once.clone(), fail.clone()).await;
    coll.insert_one(doc! {"_id": 2}).await.expect("retried");
    transactional_write_fail_point(&client, once.clone(), fail.clone()).await;
    coll.update_one(doc! {"_id": 1}, doc! {"$inc": {"x": 1}})
        .await
        .expect("retried");
    transactional_write_fail_point(&client, once.clone(), fail.clone()).await;
    let before = coll
        .find_one_and_update(doc! {"_id": 1}, doc! {"$inc": {"x": 1}})
        .await
        .expect("retried");
    assert_eq!(before, Some(doc! {"_id": 1, "x": 1}));
    transactional_write_fail_point(&client, once, fail).await;
    coll.delete_one(doc! {"_id": 2}).await.expect("retried");
    let docs = all_documents(&coll).await;
    assert_eq!(docs, vec![doc! {"_id": 1, "x": 2}]);
}

#[tokio::test]
async fn a_retryable_write_committed_before_its_connection_closed_is_not_done_twice() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = connect(&cluster).await;
    let coll = client.database("app").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1, "x": 0}).await.unwrap();
    // No failure code: the write commits, the connection closes, the retry gets the result
    // recorded for the session's txnNumber.
    let once = bson::Bson::Document(doc! {"times": 1});
    transactional_write_fail_point(&client, once, doc! {}).await;
    let r = coll
        .update_one(doc! {"_id": 1}, doc! {"$inc": {"x": 1}})
        .await
        .expect("retried");
    assert_eq!(r.modified_count, 1);
    assert_eq!(
        coll.find_one(doc! {}).await.unwrap(),
        Some(doc! {"_id": 1, "x": 1})
    );
}

#[tokio::test]
async fn a_statement_failed_before_commit_without_closing_is_a_write_error() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = connect(&cluster).await;
    let db = client.database("app");
    db.create_collection("c").await.unwrap();
    // As the server's retryable-writes jstest: skip the first statement, fail the second.
    transactional_write_fail_point(
        &client,
        bson::Bson::Document(doc! {"skip": 1}),
        doc! {"closeConnection": false, "failBeforeCommitExceptionCode": 1},
    )
    .await;
    let mut session = client.start_session().await.unwrap();
    let reply = db
        .run_command(doc! {"insert": "c", "documents": [{"_id": 1}, {"_id": 2}], "ordered": true, "txnNumber": 1i64})
        .session(&mut session)
        .await
        .unwrap();
    transactional_write_fail_point(&client, "off".into(), doc! {}).await;
    assert_eq!(reply.get_i32("n").unwrap(), 1, "{reply}");
    let errors = reply.get_array("writeErrors").unwrap();
    assert_eq!(errors.len(), 1);
    let e = errors[0].as_document().unwrap();
    assert_eq!(e.get_i32("index").unwrap(), 1);
    assert_eq!(e.get_i32("code").unwrap(), 1);
    let msg = e.get_str("errmsg").unwrap();
    assert!(
        msg.starts_with("Failing write for ")
            && msg.ends_with(":1 due to failpoint. The write must not be reflected."),
        "{msg}"
    );
    let ids = all_documents(&db.collection("c")).await;
    assert_eq!(ids, vec![doc! {"_id": 1}]);

    // The retry (same txnNumber) skips the statement done and runs the failed one: n counts
    // both, as the server's retry of executed statement ids.
    let retry = db
        .run_command(doc! {"insert": "c", "documents": [{"_id": 1}, {"_id": 2}], "ordered": true, "txnNumber": 1i64})
        .session(&mut session)
        .await
        .unwrap();
    assert_eq!(retry.get_i32("n").unwrap(), 2, "{retry}");
    assert!(!retry.contains_key("writeErrors"), "{retry}");

    // Updates, as the server's jstest: the first is not applied twice.
    transactional_write_fail_point(
        &client,
        bson::Bson::Document(doc! {"skip": 1}),
        doc! {"closeConnection": false, "failBeforeCommitExceptionCode": 1},
    )
    .await;
    let update = doc! {
        "update": "c",
        "updates": [{"q": {"_id": 1}, "u": {"$inc": {"y": 1}}}, {"q": {"_id": 2}, "u": {"$inc": {"y": 1}}}],
        "ordered": true,
        "txnNumber": 2i64,
    };
    let first = db
        .run_command(update.clone())
        .session(&mut session)
        .await
        .unwrap();
    assert_eq!(first.get_i32("nModified").unwrap(), 1, "{first}");
    assert_eq!(first.get_array("writeErrors").unwrap().len(), 1, "{first}");
    transactional_write_fail_point(&client, "off".into(), doc! {}).await;
    let retry = db.run_command(update).session(&mut session).await.unwrap();
    assert_eq!(
        (
            retry.get_i32("n").unwrap(),
            retry.get_i32("nModified").unwrap()
        ),
        (2, 2),
        "{retry}"
    );
    let docs = all_documents(&db.collection("c")).await;
    assert_eq!(docs, vec![doc! {"_id": 1, "y": 1}, doc! {"_id": 2, "y": 1}]);
}
