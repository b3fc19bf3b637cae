//! The official Rust driver against the testkit: handshake, CRUD, cursors, indexes, errors.

use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::{Client, IndexModel, options::IndexOptions};
use mongosync_testkit::MemoryCluster;

async fn client(cluster: &MemoryCluster) -> Client {
    Client::with_uri_str(cluster.uri())
        .await
        .expect("valid uri")
}

#[tokio::test]
async fn handshake_and_hello_describe_a_replica_set_primary() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .unwrap();
    assert!(hello.get_bool("isWritablePrimary").unwrap());
    assert_eq!(hello.get_str("setName").unwrap(), "rs0");
    let me = cluster
        .uri()
        .trim_start_matches("mongodb://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(hello.get_str("me").unwrap(), me);
    assert_eq!(hello.get_i32("maxWireVersion").unwrap(), 25);
    assert!(
        hello
            .get_document("$clusterTime")
            .unwrap()
            .contains_key("signature")
    );
    let build = client
        .database("admin")
        .run_command(doc! {"buildInfo": 1})
        .await
        .unwrap();
    assert!(build.get_str("version").unwrap().starts_with("8.0."));
    cluster.shutdown().await;
}

#[tokio::test]
async fn insert_find_and_get_more_over_many_batches() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let coll = client.database("db").collection::<Document>("c");
    let docs: Vec<Document> = (0..1000).map(|i| doc! {"_id": i, "v": i * 2}).collect();
    let result = coll.insert_many(docs).await.unwrap();
    assert_eq!(result.inserted_ids.len(), 1000);
    let all: Vec<Document> = coll
        .find(doc! {})
        .batch_size(64)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(all[999].get_i32("v").unwrap(), 1998);
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1000);
    assert_eq!(coll.estimated_document_count().await.unwrap(), 1000);
    cluster.shutdown().await;
}

#[tokio::test]
async fn unique_index_rejects_duplicates_with_key_details() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let coll = client.database("db").collection::<Document>("u");
    coll.create_index(
        IndexModel::builder()
            .keys(doc! {"a": 1})
            .options(IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await
    .unwrap();
    coll.insert_one(doc! {"_id": 1, "a": 5}).await.unwrap();
    let err = coll.insert_one(doc! {"_id": 2, "a": 5}).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("E11000"), "{text}");
    let names = coll.list_index_names().await.unwrap();
    assert_eq!(names, vec!["_id_".to_string(), "a_1".to_string()]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn unknown_command_fails_with_command_not_found() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let err = client
        .database("admin")
        .run_command(doc! {"noSuchCommand": 1})
        .await
        .unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::Command(ref e) => assert_eq!(e.code, 59),
        ref other => panic!("unexpected error {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_database_aggregate_cursor_is_killed_under_its_cmd_namespace() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("d");
    let reply = db
        .run_command(doc! {
            "aggregate": 1,
            "pipeline": [{"$documents": [{"a": 1}, {"a": 2}, {"a": 3}]}],
            "cursor": {"batchSize": 1},
        })
        .await
        .unwrap();
    let cursor = reply.get_document("cursor").unwrap();
    assert_eq!(cursor.get_str("ns").unwrap(), "d.$cmd.aggregate");
    let id = cursor.get_i64("id").unwrap();
    assert_ne!(id, 0);
    // What drivers send when such a cursor is closed early.
    let killed = db
        .run_command(doc! {"killCursors": "$cmd.aggregate", "cursors": [id]})
        .await
        .unwrap();
    assert_eq!(
        killed.get_array("cursorsKilled").unwrap(),
        &vec![bson::Bson::Int64(id)]
    );
    let e = db
        .run_command(doc! {"getMore": id, "collection": "$cmd.aggregate"})
        .await
        .unwrap_err();
    assert!(
        matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 43),
        "a killed cursor is not found (CursorNotFound): {e}"
    );
    // The driver's own path: a database aggregate dropped before it is exhausted.
    let mut c = db
        .aggregate(vec![doc! {"$documents": [{"a": 1}, {"a": 2}, {"a": 3}]}])
        .batch_size(1)
        .await
        .unwrap();
    assert!(c.try_next().await.unwrap().is_some());
    drop(c);
}

#[tokio::test]
async fn drop_database_replies_ok_alone_as_8x() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("gone");
    db.collection::<Document>("c")
        .insert_one(doc! {"a": 1})
        .await
        .unwrap();
    for _ in 0..2 {
        // Existing, then missing: the same reply.
        let reply = db.run_command(doc! {"dropDatabase": 1}).await.unwrap();
        let keys: Vec<&str> = reply
            .keys()
            .map(String::as_str)
            .filter(|k| !["$clusterTime", "operationTime"].contains(k))
            .collect();
        assert_eq!(keys, ["ok"], "{reply}");
    }
    assert!(
        !client
            .list_database_names()
            .await
            .unwrap()
            .contains(&"gone".to_string())
    );
}

#[tokio::test]
async fn an_aggregates_collation_reaches_its_match_and_sort_stages() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let coll = client.database("app").collection::<Document>("c");
    coll.insert_many([
        doc! {"_id": 1, "x": "ping"},
        doc! {"_id": 2, "x": "Pong"},
        doc! {"_id": 3, "x": "pang"},
    ])
    .await
    .unwrap();
    let collation = mongodb::options::Collation::builder()
        .locale("en_US")
        .strength(mongodb::options::CollationStrength::Secondary)
        .build();
    // Strength 2 ignores case: "PING" matches "ping", as in the CRUD spec's aggregate test.
    let found: Vec<Document> = coll
        .aggregate([doc! {"$match": {"x": "PING"}}])
        .collation(collation.clone())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found, vec![doc! {"_id": 1, "x": "ping"}]);
    // Without it, binary comparison: no match.
    let none: Vec<Document> = coll
        .aggregate([doc! {"$match": {"x": "PING"}}])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(none.is_empty());
    // Sorted by the collation: "Pong" after "ping" (binary order puts capitals first).
    let sorted: Vec<Document> = coll
        .aggregate([doc! {"$sort": {"x": 1}}, doc! {"$project": {"_id": 1}}])
        .collation(collation)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        sorted,
        vec![doc! {"_id": 3}, doc! {"_id": 1}, doc! {"_id": 2}]
    );
}
