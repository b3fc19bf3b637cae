//! Each pending transition future dropped midway, then a new syncer attached: the sync stops
//! (nothing runs on detached), the persisted state is the one before or after the transition,
//! and the attached syncer carries the sync to an exact commit.
//!
//! "Midway" is held by a fail point: the step the transition is waiting on is blocked for
//! seconds and then fails without executing, so the future cannot have completed when it is
//! dropped, and the blocked write cannot land after the drop.

mod common;

use std::time::Duration;

use bson::doc;
use futures::StreamExt;
use mongodb::Client;
use mongosync_core::{
    AnySyncer, ClusterName, Progress, StartOptions, SyncHandle, SyncState, Syncer, WriteBlocking,
};

/// Blocks `commands` sent by the engine for 5 s, then fails them (BadValue) unexecuted.
async fn hold(c: &Client, commands: &[&str]) {
    c.database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand", "mode": "alwaysOn",
            "data": {"failCommands": commands.to_vec(), "blockConnection": true, "blockTimeMS": 5000,
                     "errorCode": 2, "appName": "mongosync"},
        })
        .await
        .unwrap();
}

/// Nothing of the dropped syncer runs on detached: its engine is freed (the handle's stream
/// ends) well before the held command (5 s) could return to a task still waiting on it.
async fn assert_stopped(handle: &SyncHandle) {
    let ended = tokio::time::timeout(Duration::from_secs(3), handle.changes().count()).await;
    assert!(ended.is_ok(), "a task of the dropped syncer still runs");
}

async fn release(c: &Client) {
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

async fn seed(pair: &common::Pair) {
    let coll = pair.src.database("shop").collection("users");
    coll.insert_many((0..300).map(|i| doc! {"_id": i, "email": format!("u{i}@x")}))
        .await
        .unwrap();
    common::unique_index(&coll, "email").await;
}

/// Writes to the source, then waits until the attached sync can commit, commits, and compares.
async fn finish(pair: &common::Pair, s: AnySyncer) {
    pair.src
        .database("shop")
        .collection("users")
        .insert_many((1000..1100).map(|i| doc! {"_id": i, "email": format!("n{i}@x")}))
        .await
        .unwrap();
    let AnySyncer::Running(r) = s else {
        panic!("expected RUNNING, got {}", s.state())
    };
    let _committed = common::commit(r).await;
    common::assert_same(&pair.src, &pair.dst, None).await;
}

fn in_cea(p: &Progress) -> bool {
    common::in_cea(p) && p.can_commit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pause_leaves_running_and_the_sync_continues() {
    let pair = common::pair().await;
    seed(&pair).await;
    let running = common::start(&pair).await;
    let handle = running.handle();
    handle.wait_for(in_cea).await.unwrap();
    // The pause persists the resume point, then PAUSED: both held.
    hold(&pair.dst, &["update"]).await;
    let pause = tokio::time::timeout(Duration::from_millis(300), running.pause()).await;
    assert!(pause.is_err(), "the pause completed through a held write");
    assert_stopped(&handle).await;
    release(&pair.dst).await;
    let s = attach(&pair).await;
    assert_eq!(s.state(), SyncState::Running);
    finish(&pair, s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_commit_wait_leaves_committing_and_attach_finishes_the_commit() {
    let pair = common::pair().await;
    seed(&pair).await;
    let running = common::start(&pair).await;
    running.wait_can_commit().await.unwrap();
    // The restoration of the unique index is held.
    hold(&pair.dst, &["collMod"]).await;
    let committing = running.commit().await.unwrap();
    let handle = committing.handle();
    handle
        .wait_for(|p| p.info.as_deref() == Some("waiting for commit to complete"))
        .await
        .unwrap();
    let wait = tokio::time::timeout(Duration::from_millis(300), committing.wait()).await;
    assert!(wait.is_err(), "the commit completed through a held collMod");
    assert!(!handle.is_alive());
    assert_stopped(&handle).await;
    assert_eq!(handle.progress().state, SyncState::Committing);
    release(&pair.dst).await;
    let s = attach(&pair).await;
    assert_eq!(s.state(), SyncState::Committing);
    let s = s.wait().await.unwrap();
    assert_eq!(s.state(), SyncState::Committed);
    common::assert_same(&pair.src, &pair.dst, None).await;
    let unique = common::indexes(&pair.dst, "shop", "users").await["email_1"]
        .get_bool("unique")
        .unwrap_or(false);
    assert!(unique, "the unique index was not restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_commit_call_before_it_ran_leaves_running() {
    let pair = common::pair().await;
    seed(&pair).await;
    let running = common::start(&pair).await;
    running.wait_can_commit().await.unwrap();
    // Never polled: dropping it drops the syncer with it.
    drop(running.commit());
    let s = attach(&pair).await;
    assert_eq!(s.state(), SyncState::Running);
    finish(&pair, s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reverse_leaves_committed_and_reverses_again() {
    let pair = common::pair().await;
    seed(&pair).await;
    let options = StartOptions::new(ClusterName::Cluster0)
        .reversible(true)
        .write_blocking(WriteBlocking::SourceAndDestination);
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap()
        .start(options)
        .await
        .unwrap();
    let committed = common::commit(running).await;
    // The reverse's first write to the new destination (cluster0) is held.
    hold(&pair.src, &["dropDatabase"]).await;
    let reversing = committed.reverse().await.unwrap();
    assert_eq!(reversing.progress().state, SyncState::Reversing);
    let handle = reversing.handle();
    let wait = tokio::time::timeout(Duration::from_millis(300), reversing.wait()).await;
    assert!(wait.is_err(), "the reverse completed through a held write");
    assert_stopped(&handle).await;
    release(&pair.src).await;
    let s = attach(&pair).await;
    assert_eq!(s.state(), SyncState::Committed);
    let s = s.reverse().await.unwrap().wait().await.unwrap();
    assert_eq!(s.state(), SyncState::Running);
    let mapping = s.progress().direction_mapping.unwrap();
    assert!(mapping.source.starts_with("cluster1"), "{mapping:?}");
    // The old destination is the source now.
    pair.dst
        .database("shop")
        .collection("users")
        .insert_many((2000..2050).map(|i| doc! {"_id": i, "email": format!("r{i}@x")}))
        .await
        .unwrap();
    let AnySyncer::Running(r) = s else {
        unreachable!()
    };
    let _committed = common::commit(r).await;
    common::assert_same(&pair.dst, &pair.src, None).await;
}
