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
