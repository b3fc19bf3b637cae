//! Every illegal transition through `AnySyncer` fails with an error naming the operation, the
//! state and the states that allow it, and hands the syncer back unchanged; the legal ones
//! walk IDLE → RUNNING → PAUSED → RUNNING → COMMITTING → COMMITTED.

mod common;

use bson::doc;
use mongosync_core::{AnySyncer, ClusterName, StartOptions, SyncState};

fn start_options() -> StartOptions {
    StartOptions::new(ClusterName::Cluster0)
}

/// Tries every operation that `state` does not allow; each must fail and keep the state.
async fn refuse_all_but(mut s: AnySyncer, allowed: &[&str]) -> AnySyncer {
    let state = s.state();
    for op in ["start", "pause", "resume", "commit", "reverse"] {
        if allowed.contains(&op) {
            continue;
        }
        let result = match op {
            "start" => s.start(start_options()).await,
            "pause" => s.pause().await,
            "resume" => s.resume().await,
            "commit" => s.commit().await,
            _ => s.reverse().await,
        };
        let e = result.expect_err(op);
        assert!(e.error.is_invalid_state(), "{op} in {state}: {}", e.error);
        let msg = e.error.to_string();
        assert!(
            msg.starts_with(&format!(
                "cannot {op}: the sync is {state}; {op} is allowed in "
            )),
            "{msg}"
        );
        assert_eq!(e.syncer.state(), state);
        s = e.syncer;
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_transitions_name_the_state_and_keep_the_syncer() {
    let pair = common::pair().await;
    pair.src
        .database("d")
        .collection("c")
        .insert_many((0..100).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let s = AnySyncer::attach(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap();
    assert_eq!(s.state(), SyncState::Idle);
    let s = refuse_all_but(s, &["start"]).await;
    let s = s.start(start_options()).await.unwrap();
    assert_eq!(s.state(), SyncState::Running);
    let s = refuse_all_but(s, &["pause", "commit"]).await;
    let s = s.pause().await.unwrap();
    assert_eq!(s.state(), SyncState::Paused);
    assert_eq!(
        s.progress().lag_time_seconds,
        None,
        "no lag is reported while paused"
    );
    let s = refuse_all_but(s, &["resume"]).await;
    let s = s.resume().await.unwrap();
    let s = match s {
        AnySyncer::Running(r) => {
            r.wait_can_commit().await.unwrap();
            AnySyncer::from(r)
        }
        other => panic!("resumed into {}", other.state()),
    };
    let s = s.commit().await.unwrap();
    assert!(matches!(
        s.state(),
        SyncState::Committing | SyncState::Committed
    ));
    let s = s.wait().await.unwrap();
    assert_eq!(s.state(), SyncState::Committed);
    let s = refuse_all_but(s, &["reverse"]).await;
    // Not reversible: refused, state kept.
    let e = s.reverse().await.unwrap_err();
    assert_eq!(e.syncer.state(), SyncState::Committed);
    common::assert_same(&pair.src, &pair.dst, None).await;
}
