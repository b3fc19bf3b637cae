//! Shared by the `ddl_*` scenarios: a copy held by a fail point so that DDL lands while it
//! runs, the two moments (during the copy, during change application), and the end (commit,
//! then the oracle).
#![allow(dead_code)]

use bson::{Document, doc};
use mongodb::Client;
use mongosync_core::{ClusterName, ConnectOptions, Running, StartOptions, Syncer};

use crate::common::{self, Pair};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// While the collection copy runs.
    Copy,
    /// During change event application.
    Cea,
}

/// One worker, small partitions and batches: a few MB take long enough to copy.
pub fn slow() -> ConnectOptions {
    common::options()
        .copy_workers(1)
        .partition_bytes(64 << 10)
        .copy_batch_bytes(16 << 10)
}

/// `n` documents of about `pad` bytes each, `_id` 0..n, with a field `k` (= `_id`).
pub async fn fill(c: &Client, db: &str, coll: &str, n: i32, pad: usize) {
    let coll = c.database(db).collection::<Document>(coll);
    let text = "x".repeat(pad);
    let mut i = 0;
    while i < n {
        let end = (i + 500).min(n);
        coll.insert_many((i..end).map(|j| doc! {"_id": j, "k": j, "pad": &text}))
            .await
            .unwrap();
        i = end;
    }
}

/// A filler collection (about 3 MB) so that the copy runs for a while.
pub async fn filler(c: &Client) {
    fill(c, "filler", "big", 3000, 1000).await;
}

/// Starts the sync with `options`, and returns once the moment has come.
pub async fn start_with(pair: &Pair, when: When, options: StartOptions) -> Syncer<Running> {
    if when == When::Copy {
        hold_copy(pair, true).await;
    }
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, slow())
        .await
        .unwrap()
        .start(options)
        .await
        .unwrap();
    match when {
        When::Copy => {
            common::wait_for(
                || running.progress(),
                |p| p.info.as_deref() == Some("collection copy"),
            )
            .await;
        }
        When::Cea => {
            common::wait_for(|| running.progress(), common::in_cea).await;
        }
    }
    running
}

pub async fn start(pair: &Pair, when: When) -> Syncer<Running> {
    start_with(pair, when, StartOptions::new(ClusterName::Cluster0)).await
}

/// Holds or releases the copy of the filler collection: while held, every insert of it fails
/// with a transient error (WriteConflict, without labels, so the engine retries rather than
/// the driver), so the copy cannot finish.
async fn hold_copy(pair: &Pair, on: bool) {
    let mode = if on {
        bson::Bson::from("alwaysOn")
    } else {
        bson::Bson::from("off")
    };
    pair.dst
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": mode,
            "data": {
                "failCommands": ["insert"],
                "namespace": "filler.big",
                "appName": "mongosync",
                "errorCode": 112,
                "errorLabels": [],
            },
        })
        .await
        .unwrap();
}

/// After the DDL: in a `When::Copy` scenario, asserts that the copy is still running (it is
/// held), then releases it.
pub async fn note(pair: &Pair, running: &Syncer<Running>, when: When) {
    if when == When::Copy {
        let p = running.progress();
        assert_eq!(
            p.info.as_deref(),
            Some("collection copy"),
            "the DDL landed during the copy"
        );
        hold_copy(pair, false).await;
    }
}

/// Commits and compares every namespace (documents, indexes, options).
pub async fn finish(pair: &Pair, running: Syncer<Running>) -> usize {
    running.wait_can_commit().await.unwrap();
    let _committed = running.commit().await.unwrap().wait().await.unwrap();
    common::assert_same(&pair.src, &pair.dst, None).await
}

/// CRUD on one namespace: updates, deletes and inserts around `_id` `base`.
pub async fn crud(c: &Client, db: &str, coll: &str, base: i32) {
    let coll = c.database(db).collection::<Document>(coll);
    coll.insert_many((base..base + 20).map(|j| doc! {"_id": j, "k": j, "new": true}))
        .await
        .unwrap();
    coll.update_many(
        doc! {"_id": {"$lt": 10}},
        doc! {"$mul": {"k": -1}, "$set": {"touched": base}},
    )
    .await
    .unwrap();
    coll.delete_many(doc! {"_id": {"$in": [base + 1, base + 3, 11, 12]}})
        .await
        .unwrap();
}
