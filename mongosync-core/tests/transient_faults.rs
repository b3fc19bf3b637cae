//! Transient failures injected with `failCommand` (dropped connections, retryable errors,
//! write conflicts) in the copy, in change application and in the change stream are retried,
//! and nothing is lost.

mod common;

use bson::{Document, doc};
use mongodb::Client;

/// Sets the fail point; returns how many times it had fired before (the count is cumulative).
async fn fail(c: &Client, times: i32, data: Document) -> i64 {
    let r = c
        .database("admin")
        .run_command(
            doc! {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": data},
        )
        .await
        .unwrap();
    r.get_i64("count")
        .or(r.get_i32("count").map(i64::from))
        .unwrap_or(0)
}

/// Turns the fail point off and returns how many times it has fired in all.
async fn fired(c: &Client) -> i64 {
    let r = c
        .database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();
    r.get_i64("count")
        .or(r.get_i32("count").map(i64::from))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_apply_and_capture_survive_transient_failures() {
    let pair = common::pair().await;
    let c = pair.src.database("d").collection::<Document>("c");
    c.insert_many((0..3000).map(|i| doc! {"_id": i, "pad": "x".repeat(200)}))
        .await
        .unwrap();
    // The copy's inserts: a shutdown error (retryable), then dropped connections.
    let before = fail(
        &pair.dst,
        4,
        doc! {"failCommands": ["insert"], "errorCode": 91},
    )
    .await;
    let running = common::start(&pair).await;
    common::wait_for(|| running.progress(), common::in_cea).await;
    assert_eq!(fired(&pair.dst).await - before, 4);

    // Change application: write conflicts, then a dropped connection, on the bulk writes.
    let before = fail(
        &pair.dst,
        3,
        doc! {"failCommands": ["bulkWrite"], "errorCode": 112},
    )
    .await;
    c.update_many(doc! {"_id": {"$lt": 100}}, doc! {"$set": {"round": 1}})
        .await
        .unwrap();
    common::wait_for(
        || running.progress(),
        |p| p.total_events_applied.unwrap_or(0) >= 100,
    )
    .await;
    assert_eq!(fired(&pair.dst).await - before, 3);
    let before = fail(
        &pair.dst,
        2,
        doc! {"failCommands": ["bulkWrite"], "closeConnection": true},
    )
    .await;
    c.delete_many(doc! {"_id": {"$gte": 2900}}).await.unwrap();
    common::wait_for(
        || running.progress(),
        |p| p.total_events_applied.unwrap_or(0) >= 200,
    )
    .await;
    assert_eq!(fired(&pair.dst).await - before, 2);

    // The change stream's getMore: dropped connections, then a resumable error.
    let before = fail(
        &pair.src,
        3,
        doc! {"failCommands": ["getMore"], "closeConnection": true},
    )
    .await;
    c.insert_many((5000..5100).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    common::wait_for(
        || running.progress(),
        |p| p.total_events_applied.unwrap_or(0) >= 300,
    )
    .await;
    // The driver resumes on its own after the first drop and may read every event before
    // the next getMore: at least one drop happened.
    assert!(fired(&pair.src).await - before >= 1);
    fail(
        &pair.src,
        2,
        doc! {"failCommands": ["getMore"], "errorCode": 10107},
    )
    .await;
    c.update_many(doc! {"_id": {"$gte": 5000}}, doc! {"$set": {"late": true}})
        .await
        .unwrap();

    let _committed = common::commit(running).await;
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 3000 - 100 + 100);
}

/// The commit's steps meet transient failures too: blocking the source's writes, and the
/// destination's `collMod`s that restore unique indexes. Each is retried; the commit completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_commit_survives_transient_failures() {
    let pair = common::pair().await;
    let c = pair.src.database("d").collection::<Document>("c");
    c.insert_many((0..500).map(|i| doc! {"_id": i, "k": i}))
        .await
        .unwrap();
    common::unique_index(&c, "k").await;
    let running =
        mongosync_core::Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
            .await
            .unwrap()
            .start(
                mongosync_core::StartOptions::new(mongosync_core::ClusterName::Cluster0)
                    .write_blocking(mongosync_core::WriteBlocking::SourceAndDestination),
            )
            .await
            .unwrap();
    running.wait_can_commit().await.unwrap();
    let src_before = fail(
        &pair.src,
        1,
        doc! {"failCommands": ["setUserWriteBlockMode"], "closeConnection": true},
    )
    .await;
    let dst_before = fail(
        &pair.dst,
        3,
        doc! {"failCommands": ["collMod"], "errorCode": 10107},
    )
    .await;
    let committed = running.commit().await.unwrap().wait().await.unwrap();
    assert_eq!(fired(&pair.src).await - src_before, 1);
    assert_eq!(fired(&pair.dst).await - dst_before, 3);
    assert!(
        committed.warnings().is_empty(),
        "{:?}",
        committed.warnings()
    );
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 500);
}

/// A failure that outlasts the retry window stops the sync with an error naming the step and
/// the cluster; the state is kept, and once the cause is gone a new syncer continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_outlasting_the_retry_window_stops_the_sync_with_its_state_kept() {
    let pair = common::pair().await;
    let c = pair.src.database("d").collection::<Document>("c");
    c.insert_many((0..500).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let options = || common::options().retry_window(std::time::Duration::from_secs(2));
    let running =
        mongosync_core::Syncer::connect(&pair.source_uri, &pair.destination_uri, options())
            .await
            .unwrap()
            .start(mongosync_core::StartOptions::new(
                mongosync_core::ClusterName::Cluster0,
            ))
            .await
            .unwrap();
    common::wait_for(|| running.progress(), common::in_cea).await;
    pair.dst
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand", "mode": "alwaysOn",
            "data": {"failCommands": ["bulkWrite"], "errorCode": 91, "appName": "mongosync"},
        })
        .await
        .unwrap();
    c.update_many(doc! {}, doc! {"$set": {"during": "outage"}})
        .await
        .unwrap();
    let p = common::wait_for(
        || running.progress(),
        |p| p.warnings.iter().any(|w| w.starts_with("the sync stopped")),
    )
    .await;
    assert_eq!(p.state, mongosync_core::SyncState::Running);
    assert!(!p.can_commit);
    // Commit is refused with the cause: the step and the cluster.
    let e = running.commit().await.unwrap_err();
    let message = e.error.to_string();
    assert!(
        message.contains("applying change events") && message.contains("cluster1"),
        "{message}"
    );
    let running = e.syncer;
    fired(&pair.dst).await;
    drop(running);
    let any = mongosync_core::AnySyncer::attach(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap();
    let mongosync_core::AnySyncer::Running(running) = any else {
        panic!("not running: {:?}", any.state())
    };
    let _committed = common::commit(running).await;
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 500);
}
