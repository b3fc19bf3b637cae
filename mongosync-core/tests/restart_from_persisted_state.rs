//! A syncer dropped in the middle of the copy, and again in change application, is picked up
//! by a new one (`AnySyncer::attach`, or `start` with the same options) from the state
//! persisted on the destination; the final comparison is exact. Different options are refused.

mod common;

use bson::doc;
use futures::StreamExt;
use mongosync_core::{AnySyncer, ClusterName, NamespaceFilter, StartOptions, SyncState, Syncer};

fn start_options() -> StartOptions {
    StartOptions::new(ClusterName::Cluster0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_syncer_is_resumed_by_a_new_one() {
    let pair = common::pair().await;
    let coll = pair
        .src
        .database("big")
        .collection::<bson::Document>("docs");
    common::insert_padded(&coll, 8000).await;
    let options = || {
        common::options()
            .copy_workers(1)
            .partition_bytes(64 << 10)
            .copy_batch_bytes(16 << 10)
    };
    // First process: killed (dropped) in the middle of the copy.
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap()
        .start(start_options())
        .await
        .unwrap();
    common::wait_for(
        || running.progress(),
        |p| {
            p.collection_copy
                .as_ref()
                .is_some_and(|c| c.estimated_copied_bytes > 2_000_000)
        },
    )
    .await;
    drop(running);
    coll.update_many(doc! {"_id": {"$lt": 300}}, doc! {"$set": {"after": "kill"}})
        .await
        .unwrap();

    // Different options are refused and change nothing.
    let idle = Syncer::connect(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap();
    let e = idle
        .start(start_options().include(NamespaceFilter::database("big")))
        .await
        .unwrap_err();
    assert!(e.error.to_string().contains("other options"), "{}", e.error);
    // The same options resume.
    let running = e.syncer.start(start_options()).await.unwrap();
    let p = running.progress();
    assert_eq!(p.state, SyncState::Running);
    common::wait_for(|| running.progress(), common::in_cea).await;
    coll.delete_many(doc! {"_id": {"$gte": 7900}})
        .await
        .unwrap();
    common::wait_for(
        || running.progress(),
        |p| p.total_events_applied.unwrap_or(0) >= 100,
    )
    .await;
    // Second kill, in change application; writes while nobody syncs (the handle's stream of
    // changes ends once the syncer is gone).
    let mut changes = Box::pin(running.handle().changes());
    drop(running);
    while changes.next().await.is_some() {}
    coll.insert_many((10_000..10_100).map(|i| doc! {"_id": i}))
        .await
        .unwrap();

    let any = AnySyncer::attach(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap();
    assert_eq!(
        any.state(),
        SyncState::Running,
        "attach continues a running sync"
    );
    let AnySyncer::Running(running) = any else {
        unreachable!()
    };
    let _committed = common::commit(running).await;
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 8000 - 100 + 100);

    // A COMMITTED sync attaches as COMMITTED.
    let any = AnySyncer::attach(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap();
    assert_eq!(any.state(), SyncState::Committed);
}

/// One large partition, killed past half: the new syncer continues from the partition's last
/// checkpointed `_id`, not from its start, and the comparison is exact (writes race the copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_killed_midway_continues_from_its_checkpoint() {
    let pair = common::pair().await;
    let coll = pair.src.database("big").collection::<bson::Document>("one");
    common::insert_padded(&coll, 8000).await;
    // Every batch of the copy is held 150 ms, so the copy outlasts its checkpoints.
    pair.dst
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand", "mode": {"times": 40},
            "data": {"failCommands": ["insert"], "blockConnection": true, "blockTimeMS": 150,
                     "appName": "mongosync"},
        })
        .await
        .unwrap();
    let options = || {
        common::options()
            .copy_workers(1)
            .partition_bytes(1 << 30)
            .copy_batch_bytes(256 << 10)
    };
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap()
        .start(start_options())
        .await
        .unwrap();
    let at_kill = common::wait_for(
        || running.progress(),
        |p| {
            p.collection_copy
                .as_ref()
                .is_some_and(|c| c.estimated_copied_bytes * 2 > c.estimated_total_bytes.max(2))
        },
    )
    .await;
    // Past a checkpoint (one a second): the partition's persisted `resumeAfter`.
    common::wait_persisted(
        &pair.dst,
        "partitions",
        doc! {"resumeAfter": {"$exists": true}},
    )
    .await;
    drop(running);
    coll.update_many(doc! {"_id": {"$lt": 500}}, doc! {"$set": {"after": "kill"}})
        .await
        .unwrap();
    coll.delete_many(doc! {"_id": {"$gte": 7500}})
        .await
        .unwrap();

    let any = AnySyncer::attach(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap();
    let resumed = common::wait_for(
        || any.progress(),
        |p| {
            p.collection_copy
                .as_ref()
                .is_some_and(|c| c.estimated_total_bytes > 1)
        },
    )
    .await;
    let (killed_at, resumed_at) = (
        at_kill.collection_copy.unwrap().estimated_copied_bytes,
        resumed.collection_copy.unwrap().estimated_copied_bytes,
    );
    assert!(
        resumed_at * 4 >= killed_at * 3,
        "the partition restarted from {resumed_at} bytes; {killed_at} were copied at the kill"
    );
    let AnySyncer::Running(running) = any else {
        panic!("not running: {:?}", any.state())
    };
    let _committed = common::commit(running).await;
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 7500);
}

/// A paused sync whose process ends is PAUSED for the next one, which resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_sync_attaches_as_paused() {
    let pair = common::pair().await;
    let coll = pair.src.database("d").collection::<bson::Document>("c");
    coll.insert_many((0..1000).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let running = common::start(&pair).await;
    common::wait_for(|| running.progress(), common::in_cea).await;
    let paused = running.pause().await.unwrap();
    drop(paused);
    coll.delete_many(doc! {"_id": {"$lt": 100}}).await.unwrap();
    let any = AnySyncer::attach(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap();
    assert_eq!(any.state(), SyncState::Paused);
    let p = any.progress();
    assert!(p.lag_time_seconds.is_none(), "no lag while paused");
    let AnySyncer::Running(running) = any.resume().await.unwrap() else {
        panic!("resume gives RUNNING")
    };
    let _committed = common::commit(running).await;
    assert_eq!(common::assert_same(&pair.src, &pair.dst, None).await, 900);
}
