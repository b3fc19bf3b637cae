//! Pause stops the workers with their positions persisted; resume continues from there, in the
//! copy and in change application, with writes landing on the source while paused.

mod common;

use bson::doc;
use mongodb::Client;
use mongosync_core::{ClusterName, StartOptions, SyncState, Syncer};

/// `serverStatus().metrics.<section>.<name>.total`.
async fn metric(client: &Client, section: &str, name: &str) -> i64 {
    let status = client
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    let total = status
        .get_document("metrics")
        .and_then(|m| m.get_document(section))
        .and_then(|s| s.get_document(name))
        .ok()
        .and_then(|c| c.get("total"));
    total
        .and_then(|t| t.as_i64().or(t.as_i32().map(i64::from)))
        .unwrap_or(0)
}

/// How many times each of `names` ran on `client`'s server.
async fn commands(client: &Client, names: &[&str]) -> Vec<i64> {
    let mut out = vec![];
    for n in names {
        out.push(metric(client, "commands", n).await);
    }
    out
}

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
    // Nothing moves while paused: once the source holds no cursor of the syncer (its copy's
    // and its change stream's are killed after the pause), the writes below are neither read
    // from the source (no `find`, no `getMore`: the monitor's oplog check, an aggregate, goes
    // on while paused) nor written to the destination.
    let copied_at_pause = copy.estimated_copied_bytes;
    while metric(&pair.src, "cursor", "open").await != 0 {}
    let reads = ["find", "getMore"];
    let writes = ["insert", "update", "delete", "bulkWrite"];
    let source_reads = commands(&pair.src, &reads).await;
    let destination_writes = commands(&pair.dst, &writes).await;
    let on_destination = pair
        .dst
        .database("big")
        .collection::<bson::Document>("docs")
        .estimated_document_count()
        .await
        .unwrap();
    coll.update_many(doc! {"_id": {"$lt": 500}}, doc! {"$set": {"v": 1}})
        .await
        .unwrap();
    coll.delete_many(doc! {"_id": {"$gte": 9500}})
        .await
        .unwrap();
    assert_eq!(commands(&pair.src, &reads).await, source_reads);
    assert_eq!(commands(&pair.dst, &writes).await, destination_writes);
    assert_eq!(
        pair.dst
            .database("big")
            .collection::<bson::Document>("docs")
            .estimated_document_count()
            .await
            .unwrap(),
        on_destination
    );
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
