//! Change streams through the official Rust driver: a cluster-wide stream over many
//! collections with every event type, resuming after dropped connections, `updateLookup`,
//! a committed transaction's events, and history lost (286).

use std::time::Duration;

use bson::{Document, RawDocumentBuf, doc};
use futures::StreamExt;
use mongodb::Client;
use mongodb::change_stream::event::ResumeToken;
use mongodb::options::FullDocumentType;
use mongosync_testkit::{ClusterOptions, MemoryCluster};

/// Events as raw documents (the driver's typed event lacks DDL fields).
async fn next_events(
    stream: &mut mongodb::change_stream::ChangeStream<RawDocumentBuf>,
    n: usize,
) -> Vec<Document> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("no error");
        out.push(Document::try_from(ev.as_ref()).unwrap());
    }
    out
}

fn op(ev: &Document) -> &str {
    ev.get_str("operationType").unwrap()
}

#[tokio::test]
async fn cluster_stream_sees_every_event_type_in_order() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let mut stream = client
        .watch()
        .pipeline(vec![])
        .show_expanded_events(true)
        .await
        .unwrap()
        .with_type::<RawDocumentBuf>();
    let db = client.database("shop");
    let orders = db.collection::<Document>("orders");
    orders
        .insert_one(doc! {"_id": 1, "qty": 1, "items": [1, 2, 3]})
        .await
        .unwrap(); // create + insert
    orders
        .update_one(
            doc! {"_id": 1},
            doc! {"$set": {"qty": 2}, "$pop": {"items": 1}},
        )
        .await
        .unwrap();
    orders
        .replace_one(doc! {"_id": 1}, doc! {"qty": 3})
        .await
        .unwrap();
    orders
        .create_index(mongodb::IndexModel::builder().keys(doc! {"qty": 1}).build())
        .await
        .unwrap();
    orders.drop_index("qty_1").await.unwrap();
    orders.delete_one(doc! {"_id": 1}).await.unwrap();
    db.run_command(doc! {"collMod": "orders", "validator": {"qty": {"$gte": 0}}})
        .await
        .unwrap();
    client
        .database("admin")
        .run_command(doc! {"renameCollection": "shop.orders", "to": "shop.archive"})
        .await
        .unwrap();
    client
        .database("other")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": "x"})
        .await
        .unwrap();
    db.drop().await.unwrap();

    let events = next_events(&mut stream, 13).await;
    let ops: Vec<&str> = events.iter().map(op).collect();
    assert_eq!(
        ops,
        vec![
            "create",
            "insert",
            "update",
            "replace",
            "createIndexes",
            "dropIndexes",
            "delete",
            "modify",
            "rename",
            "create",
            "insert",
            "drop",
            "dropDatabase"
        ]
    );
    let update = &events[2];
    let desc = update.get_document("updateDescription").unwrap();
    assert_eq!(
        desc.get_document("updatedFields").unwrap(),
        &doc! {"qty": 2}
    );
    assert_eq!(desc.get_array("truncatedArrays").unwrap().len(), 1);
    assert_eq!(
        update.get_document("documentKey").unwrap(),
        &doc! {"_id": 1}
    );
    let rename = &events[8];
    assert_eq!(
        rename.get_document("to").unwrap(),
        &doc! {"db": "shop", "coll": "archive"}
    );
    // Tokens sort in event order, and cluster times never go backwards.
    let tokens: Vec<String> = events
        .iter()
        .map(|e| {
            e.get_document("_id")
                .unwrap()
                .get_str("_data")
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = tokens.clone();
    sorted.sort();
    assert_eq!(tokens, sorted);
    cluster.shutdown().await;
}

#[tokio::test]
async fn update_lookup_returns_the_current_document() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let coll = client.database("d").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1, "a": 1}).await.unwrap();
    let mut stream = coll
        .watch()
        .full_document(FullDocumentType::UpdateLookup)
        .await
        .unwrap()
        .with_type::<RawDocumentBuf>();
    coll.update_one(doc! {"_id": 1}, doc! {"$inc": {"a": 1}})
        .await
        .unwrap();
    let ev = &next_events(&mut stream, 1).await[0];
    assert_eq!(
        ev.get_document("fullDocument").unwrap(),
        &doc! {"_id": 1, "a": 2}
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn streams_resume_across_dropped_connections() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let coll = client.database("d").collection::<Document>("c");
    // The start point, taken as mongosync takes it: a no-op, then its operation time.
    let mut session = client.start_session().await.unwrap();
    client
        .database("admin")
        .run_command(doc! {"appendOplogNote": 1, "data": {"msg": "start"}})
        .session(&mut session)
        .await
        .unwrap();
    let start = session.operation_time().unwrap();
    coll.insert_one(doc! {"_id": 0}).await.unwrap();

    let mut stream = coll
        .watch()
        .start_at_operation_time(start)
        .await
        .unwrap()
        .with_type::<RawDocumentBuf>();
    assert_eq!(
        next_events(&mut stream, 1).await[0]
            .get_document("documentKey")
            .unwrap(),
        &doc! {"_id": 0}
    );
    for i in 1..=20 {
        coll.insert_one(doc! {"_id": i}).await.unwrap();
        if i % 5 == 0 {
            // The driver sees a network error and resumes from its cached token.
            cluster.server().drop_connections();
        }
    }
    let events = next_events(&mut stream, 20).await;
    let ids: Vec<i32> = events
        .iter()
        .map(|e| {
            e.get_document("documentKey")
                .unwrap()
                .get_i32("_id")
                .unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        (1..=20).collect::<Vec<_>>(),
        "nothing lost, nothing repeated"
    );

    // resumeAfter and startAfter from a saved token see exactly the later events.
    let token: ResumeToken = stream.resume_token().unwrap();
    coll.insert_one(doc! {"_id": 21}).await.unwrap();
    let mut resumed = coll
        .watch()
        .resume_after(token.clone())
        .await
        .unwrap()
        .with_type::<RawDocumentBuf>();
    assert_eq!(
        next_events(&mut resumed, 1).await[0]
            .get_document("documentKey")
            .unwrap(),
        &doc! {"_id": 21}
    );
    let mut started = coll
        .watch()
        .start_after(token)
        .await
        .unwrap()
        .with_type::<RawDocumentBuf>();
    assert_eq!(
        next_events(&mut started, 1).await[0]
            .get_document("documentKey")
            .unwrap(),
        &doc! {"_id": 21}
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_committed_transaction_appears_as_one_group() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let coll = client.database("d").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0}).await.unwrap();
    let mut stream = client.watch().await.unwrap().with_type::<RawDocumentBuf>();
    let mut session = client.start_session().await.unwrap();
    session.start_transaction().await.unwrap();
    coll.insert_one(doc! {"_id": 1})
        .session(&mut session)
        .await
        .unwrap();
    coll.update_one(doc! {"_id": 0}, doc! {"$set": {"x": 1}})
        .session(&mut session)
        .await
        .unwrap();
    // Invisible outside the transaction until commit.
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1);
    session.commit_transaction().await.unwrap();
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 2);
    let events = next_events(&mut stream, 2).await;
    assert_eq!(
        events.iter().map(op).collect::<Vec<_>>(),
        vec!["insert", "update"]
    );
    assert_eq!(
        events[0].get_timestamp("clusterTime").unwrap(),
        events[1].get_timestamp("clusterTime").unwrap()
    );
    for e in &events {
        assert!(e.contains_key("lsid") && e.contains_key("txnNumber"));
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn resuming_past_the_edge_of_history_fails_with_286() {
    let cluster = MemoryCluster::start_with(ClusterOptions::default().oplog_limits(50, usize::MAX))
        .await
        .unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let coll = client.database("d").collection::<Document>("c");
    let mut stream = coll.watch().await.unwrap().with_type::<RawDocumentBuf>();
    coll.insert_one(doc! {"_id": 0}).await.unwrap();
    next_events(&mut stream, 1).await;
    let token = stream.resume_token().unwrap();
    drop(stream);
    for i in 1..=200 {
        coll.insert_one(doc! {"_id": i}).await.unwrap();
    }
    let err = coll
        .watch()
        .resume_after(token)
        .await
        .map(|_| ())
        .unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::Command(ref e) => {
            assert_eq!(e.code, 286);
            assert_eq!(e.code_name, "ChangeStreamHistoryLost");
        }
        ref other => panic!("unexpected {other:?}"),
    }
    assert!(err.contains_label("NonResumableChangeStreamError"));
    cluster.shutdown().await;
}
