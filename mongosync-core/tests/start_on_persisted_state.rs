//! `start` on a destination that holds this sync's persisted state: the typed `start` returns a
//! RUNNING syncer only when the sync really is RUNNING, and otherwise refuses (handing the IDLE
//! syncer back, nothing written) saying to attach; `AnySyncer::start` returns the true state.

mod common;

use bson::doc;
use mongodb::Client;
use mongosync_core::{AnySyncer, ClusterName, ErrorCode, StartOptions, SyncState, Syncer};

async fn idle(pair: &common::Pair) -> Syncer<mongosync_core::Idle> {
    Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap()
}

async fn any_idle(pair: &common::Pair) -> AnySyncer {
    AnySyncer::from(idle(pair).await)
}

fn options() -> StartOptions {
    StartOptions::new(ClusterName::Cluster0)
}

/// The typed start refuses: InvalidState naming the persisted state and `attach`.
async fn typed_start_refuses(pair: &common::Pair, state: SyncState) {
    let e = idle(pair).await.start(options()).await.unwrap_err();
    assert_eq!(e.error.code(), ErrorCode::InvalidState, "{}", e.error);
    let msg = e.error.to_string();
    assert!(
        msg.contains(state.as_str()) && msg.contains("attach"),
        "{msg}"
    );
    assert_eq!(e.syncer.state(), SyncState::Idle);
}

async fn hold_collmod(c: &Client, on: bool) {
    let cmd = if on {
        doc! {
            "configureFailPoint": "failCommand", "mode": "alwaysOn",
            "data": {"failCommands": ["collMod"], "blockConnection": true, "blockTimeMS": 5000,
                     "errorCode": 2, "appName": "mongosync"},
        }
    } else {
        doc! {"configureFailPoint": "failCommand", "mode": "off"}
    };
    c.database("admin").run_command(cmd).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_returns_the_true_state_of_a_persisted_sync() {
    let pair = common::pair().await;
    let users = pair.src.database("shop").collection("users");
    users
        .insert_many((0..200).map(|i| doc! {"_id": i, "email": format!("u{i}@x")}))
        .await
        .unwrap();
    common::unique_index(&users, "email").await;

    // RUNNING: the typed start resumes it.
    drop(common::start(&pair).await);
    let running = idle(&pair).await.start(options()).await.unwrap();
    running.wait_can_commit().await.unwrap();

    // PAUSED.
    drop(running.pause().await.unwrap());
    typed_start_refuses(&pair, SyncState::Paused).await;
    let s = any_idle(&pair).await.start(options()).await.unwrap();
    assert_eq!(s.state(), SyncState::Paused);
    let s = s.resume().await.unwrap();
    let AnySyncer::Running(running) = s else {
        panic!("resumed into {}", s.state())
    };
    running.wait_can_commit().await.unwrap();

    // COMMITTING: the restoration is held, so the commit cannot finish before the drop.
    hold_collmod(&pair.dst, true).await;
    let committing = running.commit().await.unwrap();
    committing
        .handle()
        .wait_for(|p| p.info.as_deref() == Some("waiting for commit to complete"))
        .await
        .unwrap();
    drop(committing);
    hold_collmod(&pair.dst, false).await;
    typed_start_refuses(&pair, SyncState::Committing).await;
    let s = any_idle(&pair).await.start(options()).await.unwrap();
    assert_eq!(s.state(), SyncState::Committing);
    let s = s.wait().await.unwrap();
    assert_eq!(s.state(), SyncState::Committed);
    drop(s);

    // COMMITTED.
    typed_start_refuses(&pair, SyncState::Committed).await;
    let s = any_idle(&pair).await.start(options()).await.unwrap();
    assert_eq!(s.state(), SyncState::Committed);
    common::assert_same(&pair.src, &pair.dst, None).await;
}
