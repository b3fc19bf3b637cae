//! Expired TTL documents do not expire on the destination before commit (their deletion must
//! come from the source), and the TTL, hidden and capped characteristics are restored at
//! commit, so the destination expires them afterwards.

mod common;

use std::time::Duration;

use bson::doc;
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use mongosync_core::{ClusterName, StartOptions, Syncer};
use mongosync_testkit::MemoryCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_is_disabled_until_commit_and_restored_after() {
    // The source's TTL monitor is slow (the real default, 60 s): its expired documents stay for
    // the test's length. The destination's runs every 100 ms.
    let source = MemoryCluster::start_with(common::auth()).await.unwrap();
    let destination =
        MemoryCluster::start_with(common::auth().ttl_monitor_period(Duration::from_millis(100)))
            .await
            .unwrap();
    let src = Client::with_uri_str(common::uri(&source)).await.unwrap();
    let dst = Client::with_uri_str(common::uri(&destination))
        .await
        .unwrap();
    let sessions = src.database("web").collection::<bson::Document>("sessions");
    let old = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 3_600_000);
    sessions
        .insert_many((0..100).map(|i| doc! {"_id": i, "seenAt": old}))
        .await
        .unwrap();
    sessions
        .create_indexes([
            IndexModel::builder()
                .keys(doc! {"seenAt": 1})
                .options(
                    IndexOptions::builder()
                        .expire_after(Duration::from_secs(60))
                        .build(),
                )
                .build(),
            IndexModel::builder()
                .keys(doc! {"user": 1})
                .options(IndexOptions::builder().hidden(true).build())
                .build(),
        ])
        .await
        .unwrap();
    src.database("web")
        .create_collection("events")
        .capped(true)
        .size(65536)
        .max(10)
        .await
        .unwrap();
    let events = src.database("web").collection::<bson::Document>("events");
    events
        .insert_many((0..25).map(|i| doc! {"n": i}))
        .await
        .unwrap();

    let running = Syncer::connect(
        &common::uri(&source),
        &common::uri(&destination),
        common::options(),
    )
    .await
    .unwrap()
    .start(StartOptions::new(ClusterName::Cluster0))
    .await
    .unwrap();
    common::wait_for(|| running.progress(), common::in_cea).await;
    // A whole pass of the destination's TTL monitor while syncing.
    ttl_pass(&dst).await;
    let dst_sessions = dst.database("web").collection::<bson::Document>("sessions");
    assert_eq!(
        dst_sessions.count_documents(doc! {}).await.unwrap(),
        100,
        "nothing expired early"
    );
    // The capped collection is enlarged while syncing: more inserts than `max` are kept.
    events
        .insert_many((25..40).map(|i| doc! {"n": i}))
        .await
        .unwrap();

    let _committed = common::commit(running).await;
    let ns = [("web".to_string(), "events".to_string())];
    common::assert_same(&src, &dst, Some(&ns)).await;
    let idx = common::indexes(&dst, "web", "sessions").await;
    assert_eq!(
        idx["seenAt_1"]
            .get_i64("expireAfterSeconds")
            .ok()
            .or(idx["seenAt_1"]
                .get_i32("expireAfterSeconds")
                .ok()
                .map(i64::from)),
        Some(60)
    );
    assert_eq!(idx["user_1"].get_bool("hidden").ok(), Some(true));
    assert_eq!(idx, common::indexes(&src, "web", "sessions").await);
    // With TTL restored, the destination expires the old sessions itself, in its next pass.
    ttl_pass(&dst).await;
    assert_eq!(dst_sessions.count_documents(doc! {}).await.unwrap(), 0);
}

/// Waits until the TTL monitor of `client`'s server made a whole pass that began after the
/// call, with the server's `hangTTLMonitorBetweenPasses` fail point (as the server's own
/// tests do): entered once (between two passes), released, entered again (the pass is over).
async fn ttl_pass(client: &Client) {
    let admin = client.database("admin");
    let hang = |mode: &str| {
        doc! {"configureFailPoint": "hangTTLMonitorBetweenPasses", "mode": mode}
    };
    let entered = |n: i64| {
        doc! {"waitForFailPoint": "hangTTLMonitorBetweenPasses", "timesEntered": n,
        "maxTimeMS": 60_000}
    };
    let before = admin.run_command(hang("alwaysOn")).await.unwrap();
    let before = before.get_i64("count").unwrap();
    admin.run_command(entered(before + 1)).await.unwrap();
    admin.run_command(hang("off")).await.unwrap();
    admin.run_command(hang("alwaysOn")).await.unwrap();
    admin.run_command(entered(before + 2)).await.unwrap();
    admin.run_command(hang("off")).await.unwrap();
}
