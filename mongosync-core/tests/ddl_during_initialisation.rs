//! DDL while the sync initialises: collections dropped or renamed, and a database dropped,
//! after the source's catalog was read but before partitions were planned. The namespaces
//! are gone when their sizes are asked for (`$collStats`: NamespaceNotFound); the change
//! stream replays what happened to them.

mod common;

use bson::{Document, doc};
use mongodb::Client;

/// A collection of `n` small documents.
async fn fill(c: &Client, db: &str, coll: &str, n: i32) {
    c.database(db)
        .collection::<Document>(coll)
        .insert_many((0..n).map(|i| doc! {"_id": i, "v": i}))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespaces_that_vanish_before_partitioning_are_skipped() {
    let pair = common::pair().await;
    for coll in ["gone", "kept", "moved"] {
        fill(&pair.src, "d", coll, 50).await;
    }
    fill(&pair.src, "x", "c", 50).await;
    // The engine's first `$collStats` (the first collection it plans) waits 5 s: by then
    // the catalog was read and the destination's collections created.
    let admin = pair.src.database("admin");
    admin
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {
                "failCommands": ["aggregate"],
                "appName": "mongosync",
                "blockConnection": true,
                "blockTimeMS": 5000,
            },
        })
        .await
        .unwrap();
    let running = common::start(&pair).await;
    admin
        .run_command(
            doc! {"waitForFailPoint": "failCommand", "timesEntered": 1, "maxTimeMS": 60_000},
        )
        .await
        .unwrap();
    let d = pair.src.database("d");
    d.collection::<Document>("gone").drop().await.unwrap();
    pair.src
        .database("admin")
        .run_command(doc! {"renameCollection": "d.moved", "to": "d.renamed"})
        .await
        .unwrap();
    pair.src.database("x").drop().await.unwrap();
    d.collection::<Document>("renamed")
        .insert_one(doc! {"_id": 100})
        .await
        .unwrap();
    // Still planning partitions: the DDL landed during the initialisation.
    assert_eq!(
        running.progress().info.as_deref(),
        Some("initializing partitions")
    );

    let _committed = common::commit(running).await;
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 101);
    assert_eq!(
        common::user_namespaces(&pair.dst).await,
        vec![
            ("d".to_string(), "kept".to_string()),
            ("d".to_string(), "renamed".to_string())
        ]
    );
}
