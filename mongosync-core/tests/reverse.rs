//! Reverse: after commit, writes made to the destination flow back to the old source;
//! `directionMapping` flips; commit and reverse alternate more than once. A sync that was not
//! started reversible refuses, with its state unchanged.

mod common;

use bson::doc;
use mongodb::Client;
use mongosync_core::{ClusterName, StartOptions, SyncState, Syncer, WriteBlocking};

async fn write_some(c: &Client, round: i32) {
    let orders = c.database("shop").collection::<bson::Document>("orders");
    orders
        .insert_many((0..100).map(|i| doc! {"_id": round * 1000 + i, "round": round}))
        .await
        .unwrap();
    orders
        .update_many(doc! {"_id": {"$lt": 50}}, doc! {"$set": {"touched": round}})
        .await
        .unwrap();
    orders
        .delete_many(doc! {"_id": {"$gte": 50, "$lt": 50 + round}})
        .await
        .unwrap();
    c.database("shop")
        .collection::<bson::Document>(&format!("new_in_round_{round}"))
        .insert_one(doc! {"_id": round})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_and_reverse_alternate_and_writes_flow_back() {
    let pair = common::pair().await;
    write_some(&pair.src, 0).await;
    let options = StartOptions::new(ClusterName::Cluster0)
        .reversible(true)
        .write_blocking(WriteBlocking::SourceAndDestination);
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap()
        .start(options)
        .await
        .unwrap();
    running.wait_can_commit().await.unwrap();
    let mut committed = running.commit().await.unwrap().wait().await.unwrap();
    common::assert_same(&pair.src, &pair.dst, None).await;

    // Alternate: each round writes to the current destination (open to users after commit),
    // reverses, and commits in the new direction.
    for round in 1..=3 {
        let (new_source, expected_source) = if round % 2 == 1 {
            (&pair.dst, "cluster1")
        } else {
            (&pair.src, "cluster0")
        };
        write_some(new_source, round).await;
        let running = committed.reverse().await.unwrap().wait().await.unwrap();
        let p = running.progress();
        assert_eq!(p.state, SyncState::Running);
        let mapping = p.direction_mapping.unwrap();
        assert!(mapping.source.starts_with(expected_source), "{mapping:?}");
        // Writes during the reversed sync flow too.
        new_source
            .database("shop")
            .collection::<bson::Document>("orders")
            .update_one(doc! {"_id": 1}, doc! {"$inc": {"during": 1}})
            .await
            .unwrap();
        running.wait_can_commit().await.unwrap();
        committed = running.commit().await.unwrap().wait().await.unwrap();
        assert!(
            committed.warnings().is_empty(),
            "{:?}",
            committed.warnings()
        );
        common::assert_same(&pair.src, &pair.dst, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_not_started_reversible_refuses_to_reverse() {
    let pair = common::pair().await;
    write_some(&pair.src, 0).await;
    let running = common::start(&pair).await;
    let committed = common::commit(running).await;
    let e = committed.reverse().await.unwrap_err();
    assert!(e.error.is_invalid_options(), "{}", e.error);
    assert!(e.error.to_string().contains("`reversible`"), "{}", e.error);
    assert_eq!(e.syncer.progress().state, SyncState::Committed);
}
