//! A partition copy that fails with a transient error after a checkpoint is retried from that
//! checkpoint, not from its lower bound, and what it copied is counted once.

mod common;

use bson::{Document, doc};
use mongosync_core::{ClusterName, StartOptions, Syncer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_partition_continues_from_its_checkpoint() {
    let pair = common::pair().await;
    let c = pair.src.database("d").collection::<Document>("c");
    const N: i32 = 3000;
    common::insert_padded(&c, N).await;
    // One partition, one worker, batches of about 70 documents.
    let options = common::options()
        .copy_workers(1)
        .partition_bytes(64 << 20)
        .copy_batch_bytes(64 << 10);
    // The first batch written takes 1.5 s, longer than the checkpoint period (1 s): the
    // partition is checkpointed after it.
    let admin = pair.dst.database("admin");
    admin
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {
                "failCommands": ["insert"],
                "namespace": "d.c",
                "blockConnection": true,
                "blockTimeMS": 1500,
            },
        })
        .await
        .unwrap();
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, options)
        .await
        .unwrap()
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap();
    admin
        .run_command(
            doc! {"waitForFailPoint": "failCommand", "timesEntered": 1, "maxTimeMS": 60_000},
        )
        .await
        .unwrap();
    // While the first batch is held: the next one fails with a transient error (no labels,
    // so the driver does not retry it itself; the engine does).
    admin
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {
                "failCommands": ["insert"],
                "namespace": "d.c",
                "errorCode": 112,
                "errorLabels": [],
            },
        })
        .await
        .unwrap();
    admin
        .run_command(
            doc! {"waitForFailPoint": "failCommand", "timesEntered": 2, "maxTimeMS": 60_000},
        )
        .await
        .unwrap();

    let handle = running.handle();
    let committed = common::commit(running).await;
    let metrics = handle.metrics();
    assert!(
        !metrics.retries.is_empty(),
        "the copy was retried: {metrics:?}"
    );
    // Every document counted once: the retry did not copy the first batch again.
    assert_eq!(metrics.documents_copied, N as u64, "{metrics:?}");
    let stored: u64 = common::documents(&pair.src, "d", "c", false)
        .await
        .iter()
        .map(|d| d.as_bytes().len() as u64)
        .sum();
    assert_eq!(metrics.bytes_copied, stored, "{metrics:?}");
    drop(committed);
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, N as usize);
}
