//! Cursors that the source kills during the copy: a collection dropped or renamed while its
//! copy's cursor is held between batches (QueryPlanKilled, 175), and a capped collection whose
//! cursor loses its position to capping (CappedPositionLost, 136). The sync completes and the
//! clusters are compared document by document.

mod common;

use bson::{Document, doc};
use mongodb::Client;
use mongosync_core::{ClusterName, StartOptions, Syncer};

/// More than one find batch (the copy reads 4096 documents a batch), so a getMore follows.
const N: i32 = 6000;

/// Holds the next getMore on `ns` (the copy's second batch), once.
async fn hold_get_more(src: &Client, ns: &str) {
    src.database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {
                "failCommands": ["getMore"],
                "namespace": ns,
                "blockConnection": true,
                "blockTimeMS": 3000,
            },
        })
        .await
        .unwrap();
}

/// Waits until the held getMore entered the fail point: the copy's cursor exists and is
/// mid-way.
async fn wait_held(src: &Client) {
    src.database("admin")
        .run_command(
            doc! {"waitForFailPoint": "failCommand", "timesEntered": 1, "maxTimeMS": 60_000},
        )
        .await
        .unwrap();
}

/// One partition per collection, so that a collection is read by one cursor.
async fn start(pair: &common::Pair) -> Syncer<mongosync_core::Running> {
    let options = common::options().partition_bytes(256 << 20);
    Syncer::connect(&pair.source_uri, &pair.destination_uri, options)
        .await
        .unwrap()
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collection_dropped_during_its_copy() {
    let pair = common::pair().await;
    let d = pair.src.database("d");
    common::insert_padded(&d.collection::<Document>("dropped"), N).await;
    common::insert_padded(&d.collection::<Document>("kept"), 100).await;
    hold_get_more(&pair.src, "d.dropped").await;
    let running = start(&pair).await;
    wait_held(&pair.src).await;
    d.collection::<Document>("dropped").drop().await.unwrap();
    let handle = running.handle();
    let committed = common::commit(running).await;
    // The copy stopped where the cursor was killed: not every document was copied.
    let copied = handle.metrics().documents_copied;
    assert!(copied < (N + 100) as u64, "copied {copied}");
    drop(committed);
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collection_renamed_during_its_copy() {
    let pair = common::pair().await;
    let d = pair.src.database("d");
    common::insert_padded(&d.collection::<Document>("renamed"), N).await;
    hold_get_more(&pair.src, "d.renamed").await;
    let running = start(&pair).await;
    wait_held(&pair.src).await;
    pair.src
        .database("admin")
        .run_command(doc! {"renameCollection": "d.renamed", "to": "d.target"})
        .await
        .unwrap();
    // Written after the rename: the re-copy of the target or the change stream brings it.
    d.collection::<Document>("target")
        .insert_one(doc! {"_id": N, "after": "rename"})
        .await
        .unwrap();
    let committed = common::commit(running).await;
    drop(committed);
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, N as usize + 1);
    assert!(
        common::user_namespaces(&pair.dst)
            .await
            .contains(&("d".to_string(), "target".to_string()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capped_collection_whose_cursor_loses_its_position() {
    let pair = common::pair().await;
    let d = pair.src.database("d");
    d.run_command(doc! {"create": "capped", "capped": true, "size": 64 << 20, "max": N})
        .await
        .unwrap();
    let capped = d.collection::<Document>("capped");
    common::insert_padded(&capped, N).await;
    hold_get_more(&pair.src, "d.capped").await;
    let running = start(&pair).await;
    wait_held(&pair.src).await;
    // While the copy's cursor waits after its first batch, capping deletes every document
    // it has seen, its position included.
    for start in (N..2 * N).step_by(1000) {
        capped
            .insert_many((start..start + 1000).map(|i| doc! {"_id": i, "pad": "q".repeat(900)}))
            .await
            .unwrap();
    }
    let check = pair
        .src
        .database("d")
        .run_command(doc! {"find": "capped", "filter": {"_id": {"$lt": N}}, "limit": 1})
        .await
        .unwrap();
    assert!(
        check
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .is_empty(),
        "every document the copy had read was capped away"
    );
    let committed = common::commit(running).await;
    drop(committed);
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, N as usize);
}
