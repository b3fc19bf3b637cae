//! A commit and a reverse killed midway, again and again, at growing delays, each time picked
//! up by a new syncer attached to the persisted state. The commit's restoration steps are
//! slowed by a fail point so that the kills land between them. In the end the source is
//! blocked, the destination writable, every index restored, and the comparison exact; the
//! reversed sync carries writes back just as exactly.

mod common;

use std::time::Duration;

use bson::doc;
use mongodb::Client;
use mongodb::IndexModel;
use mongodb::options::IndexOptions;
use mongosync_core::{AnySyncer, ClusterName, StartOptions, SyncState, WriteBlocking};

const BLOCKED: i32 = 2;
const OPEN: i32 = 1;

async fn seed(c: &Client) {
    let db = c.database("shop");
    let users = db.collection::<bson::Document>("users");
    users
        .insert_many(
            (0..500)
                .map(|i| doc! {"_id": i, "email": format!("u{i}@x"), "at": bson::DateTime::now()}),
        )
        .await
        .unwrap();
    for (keys, options) in [
        (
            doc! {"email": 1},
            IndexOptions::builder().unique(true).build(),
        ),
        (
            doc! {"at": 1},
            IndexOptions::builder()
                .expire_after(Duration::from_secs(86_400))
                .build(),
        ),
        (
            doc! {"email": 1, "at": -1},
            IndexOptions::builder().hidden(true).build(),
        ),
    ] {
        users
            .create_index(IndexModel::builder().keys(keys).options(options).build())
            .await
            .unwrap();
    }
    db.create_collection("log")
        .capped(true)
        .size(1 << 20)
        .await
        .unwrap();
    db.collection::<bson::Document>("log")
        .insert_many((0..100).map(|i| doc! {"i": i}))
        .await
        .unwrap();
}

/// Slows every `collMod` and metadata write on `cluster` (the fail point blocks each of them for
/// `ms`), so that the steps of a commit or a reverse take long enough to be killed between.
async fn slow_down(c: &Client, ms: i32) {
    c.database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand", "mode": {"times": 40},
            "data": {"failCommands": ["collMod", "update", "insert", "drop", "dropDatabase"],
                     "blockConnection": true, "blockTimeMS": ms, "appName": "mongosync"},
        })
        .await
        .unwrap();
}

async fn clear(c: &Client) {
    c.database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();
}

async fn attach(pair: &common::Pair) -> AnySyncer {
    AnySyncer::attach(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap()
}

/// Kills (drops) the commit after each delay until it is COMMITTED; returns the number of kills.
/// A kill before COMMITTING was persisted leaves the sync RUNNING, as it would a real process.
async fn commit_through_kills(pair: &common::Pair, mut syncer: AnySyncer) -> (AnySyncer, usize) {
    let mut kills = 0;
    for delay_ms in [5u64, 40, 120, 250, 400, 600, 900, 1300] {
        if syncer.state() == SyncState::Running {
            // Killed before COMMITTING was persisted: the user commits again.
            let AnySyncer::Running(r) = &syncer else {
                unreachable!()
            };
            r.wait_can_commit().await.unwrap();
            syncer = syncer.commit().await.unwrap();
        }
        assert_eq!(syncer.state(), SyncState::Committing);
        match tokio::time::timeout(Duration::from_millis(delay_ms), syncer.wait()).await {
            Ok(done) => return (done.unwrap(), kills),
            Err(_) => {
                kills += 1;
                syncer = attach(pair).await;
                if syncer.state() == SyncState::Committed {
                    return (syncer, kills);
                }
            }
        }
    }
    (syncer.wait().await.unwrap(), kills)
}

/// Whether user writes are blocked (`serverStatus.repl.userWriteBlockMode`: 1 off, 2 on; with
/// authentication off every client would still write through, as on a real server).
async fn write_block_mode(c: &Client) -> i32 {
    let status = c
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    status
        .get_document("repl")
        .unwrap()
        .get_i32("userWriteBlockMode")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_and_reverse_killed_midway_resume_exactly() {
    let pair = common::pair().await;
    seed(&pair.src).await;
    let options = StartOptions::new(ClusterName::Cluster0)
        .reversible(true)
        .write_blocking(WriteBlocking::SourceAndDestination);
    let running = attach(&pair).await.start(options).await.unwrap();
    let users = |c: &Client| c.database("shop").collection::<bson::Document>("users");
    users(&pair.src)
        .update_many(doc! {"_id": {"$lt": 100}}, doc! {"$set": {"during": true}})
        .await
        .unwrap();
    let AnySyncer::Running(r) = &running else {
        panic!("not running")
    };
    r.wait_can_commit().await.unwrap();

    // The commit, killed in its steps.
    slow_down(&pair.dst, 150).await;
    slow_down(&pair.src, 150).await;
    let committing = running.commit().await.unwrap();
    let (committed, kills) = commit_through_kills(&pair, committing).await;
    assert!(kills >= 3, "only {kills} kills landed in the commit");
    assert_eq!(committed.state(), SyncState::Committed);
    clear(&pair.dst).await;
    clear(&pair.src).await;
    common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(write_block_mode(&pair.src).await, BLOCKED);
    assert_eq!(write_block_mode(&pair.dst).await, OPEN);
    let warnings = match &committed {
        AnySyncer::Committed(s) => s.warnings(),
        _ => unreachable!(),
    };
    assert!(warnings.is_empty(), "{warnings:?}");

    // Users write to the new primary cluster; then a reverse, killed midway.
    users(&pair.dst)
        .insert_many((1000..1100).map(|i| doc! {"_id": i, "email": format!("n{i}@x")}))
        .await
        .unwrap();
    users(&pair.dst)
        .delete_many(doc! {"_id": {"$lt": 20}})
        .await
        .unwrap();
    slow_down(&pair.src, 100).await;
    slow_down(&pair.dst, 100).await;
    let mut syncer = committed;
    let mut reverse_kills = 0;
    for delay_ms in [5u64, 60, 150, 300, 500, 800] {
        let reverse = async move { syncer.reverse().await?.wait().await };
        match tokio::time::timeout(Duration::from_millis(delay_ms), reverse).await {
            Ok(done) => {
                syncer = done.unwrap();
                break;
            }
            Err(_) => {
                reverse_kills += 1;
                syncer = attach(&pair).await;
                if syncer.state() == SyncState::Running {
                    break;
                }
                assert_eq!(syncer.state(), SyncState::Committed);
            }
        }
    }
    if syncer.state() == SyncState::Committed {
        syncer = syncer.reverse().await.unwrap().wait().await.unwrap();
    }
    clear(&pair.dst).await;
    clear(&pair.src).await;
    assert!(
        reverse_kills >= 2,
        "only {reverse_kills} kills landed in the reverse"
    );
    eprintln!("kills: {kills} in the commit, {reverse_kills} in the reverse");
    let AnySyncer::Running(r) = &syncer else {
        panic!("not running after the reverse: {:?}", syncer.state())
    };
    let mapping = r.progress().direction_mapping.unwrap();
    assert!(mapping.source.starts_with("cluster1"), "{mapping:?}");
    users(&pair.dst)
        .update_many(doc! {"_id": {"$gte": 1000}}, doc! {"$set": {"back": 1}})
        .await
        .unwrap();
    r.wait_can_commit().await.unwrap();
    let committed = syncer.commit().await.unwrap().wait().await.unwrap();
    assert_eq!(committed.state(), SyncState::Committed);
    common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(write_block_mode(&pair.dst).await, BLOCKED);
    assert_eq!(write_block_mode(&pair.src).await, OPEN);
}
