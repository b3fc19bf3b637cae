//! The watch handle: several tasks follow one sync through its commit on cloned handles while
//! the syncer itself moves; each sees every state in order and ends when the syncer is gone.
//! The counters agree with what was synced; a graceful shutdown keeps the sync RUNNING for
//! `attach`.

mod common;

use bson::doc;
use futures::StreamExt;
use mongosync_core::{AnySyncer, SyncState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_watchers_see_the_commit_in_order() {
    let pair = common::pair().await;
    let users = pair.src.database("shop").collection("users");
    users
        .insert_many((0..2000).map(|i| doc! {"_id": i, "n": 0}))
        .await
        .unwrap();
    let running = common::start(&pair).await;
    let handle = running.handle();
    let watchers: Vec<_> = (0..3)
        .map(|_| {
            let h = handle.clone();
            tokio::spawn(async move {
                h.changes()
                    .map(|p| p.state)
                    .collect::<Vec<SyncState>>()
                    .await
            })
        })
        .collect();
    // Deltas applied as deltas: no document is re-read.
    users
        .update_many(doc! {"_id": {"$lt": 500}}, doc! {"$inc": {"n": 1}})
        .await
        .unwrap();
    running.wait_can_commit().await.unwrap();
    let committed = running.commit().await.unwrap().wait().await.unwrap();
    let m = handle.metrics();
    assert_eq!(m.state, SyncState::Committed);
    assert_eq!(m.documents_copied, 2000, "{m:?}");
    assert_eq!(m.namespaces["shop.users"].documents, 2000, "{m:?}");
    assert!(m.events_applied >= 500, "{m:?}");
    assert!(m.events_read >= m.events_applied, "{m:?}");
    assert_eq!(m.refetches, 0, "{m:?}");
    assert!(
        m.copy_batches.count >= 1 && m.apply_batches.count >= 1,
        "{m:?}"
    );
    common::assert_same(&pair.src, &pair.dst, None).await;

    drop(committed);
    assert!(!handle.is_alive());
    assert_eq!(handle.progress().state, SyncState::Committed);
    for w in watchers {
        let seen = w.await.unwrap();
        let committing = seen.iter().position(|s| *s == SyncState::Committing);
        let committed = seen.iter().position(|s| *s == SyncState::Committed);
        assert!(
            matches!((committing, committed), (Some(a), Some(b)) if a < b),
            "{seen:?}"
        );
        assert_eq!(seen.last(), Some(&SyncState::Committed), "{seen:?}");
        assert_eq!(seen.first(), Some(&SyncState::Running), "{seen:?}");
    }
    // A wait on a gone syncer ends at once.
    let e = handle.wait_can_commit().await.unwrap_err();
    assert_eq!(e.code().as_str(), "Cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_task_and_attach_continues_running() {
    let pair = common::pair().await;
    let users = pair.src.database("shop").collection("users");
    users
        .insert_many((0..1000).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let running = common::start(&pair).await;
    let handle = running.handle();
    running.wait_can_commit().await.unwrap();
    running.shutdown().await.unwrap();
    assert!(!handle.is_alive());
    // Writes while no syncer runs are picked up after attach.
    users
        .insert_many((1000..1100).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let s = AnySyncer::attach(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap();
    let AnySyncer::Running(r) = s else {
        panic!("attached as {}", s.state())
    };
    let _committed = common::commit(r).await;
    common::assert_same(&pair.src, &pair.dst, None).await;
}
