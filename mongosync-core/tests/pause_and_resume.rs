//! Pause stops the workers with their positions persisted; resume continues from there, in the
//! copy and in change application, with writes landing on the source while paused.

mod common;

use std::time::Duration;

use bson::doc;
use mongosync_core::{ClusterName, StartOptions, SyncState, Syncer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_and_resume_in_the_copy_and_in_change_application() {
    let pair = common::pair().await;
    let coll = pair
        .src
        .database("big")
        .collection::<bson::Document>("docs");
    for chunk in 0..10 {
        coll.insert_many(
            (0..1000).map(|i| doc! {"_id": chunk * 1000 + i, "v": 0, "pad": "p".repeat(900)}),
        )
        .await
        .unwrap();
    }
    // One worker and small partitions make the copy slow enough to pause in the middle.
    let options = common::options()
        .copy_workers(1)
        .partition_bytes(64 << 10)
        .copy_batch_bytes(16 << 10);
    let idle = Syncer::connect(&pair.source_uri, &pair.destination_uri, options)
        .await
        .unwrap();
    let running = idle
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap();
    common::wait_for(
        || running.progress(),
        |p| {
            p.collection_copy
                .as_ref()
                .is_some_and(|c| c.estimated_copied_bytes > 1_000_000)
        },
    )
    .await;
    let paused = running.pause().await.unwrap();
    let p = paused.progress();
    assert_eq!(p.state, SyncState::Paused);
    assert_eq!(
        p.info.as_deref(),
        Some("collection copy"),
        "paused in the copy"
    );
    let copy = p.collection_copy.unwrap();
    assert!(
        copy.estimated_copied_bytes < copy.estimated_total_bytes,
        "{copy:?}"
    );
    // Nothing moves while paused.
    let copied_at_pause = copy.estimated_copied_bytes;
    coll.update_many(doc! {"_id": {"$lt": 500}}, doc! {"$set": {"v": 1}})
        .await
        .unwrap();
    coll.delete_many(doc! {"_id": {"$gte": 9500}})
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        paused
            .progress()
            .collection_copy
            .unwrap()
            .estimated_copied_bytes,
        copied_at_pause
    );

    let running = paused.resume().await.unwrap();
    common::wait_for(|| running.progress(), common::in_cea).await;
    coll.update_many(doc! {"_id": {"$lt": 100}}, doc! {"$inc": {"v": 10}})
        .await
        .unwrap();
    common::wait_for(
        || running.progress(),
        |p| p.total_events_applied.unwrap_or(0) >= 1100,
    )
    .await;

    // Pause in change application, write, resume: the writes made while paused arrive.
    let paused = running.pause().await.unwrap();
    assert_eq!(
        paused.progress().info.as_deref(),
        Some("change event application")
    );
    coll.insert_many((0..50).map(|i| doc! {"_id": 20_000 + i}))
        .await
        .unwrap();
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"while": "paused"}})
        .await
        .unwrap();
    let running = paused.resume().await.unwrap();
    let committed = common::commit(running).await;
    assert_eq!(committed.progress().state, SyncState::Committed);
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 10_000 - 500 + 50);
}
