//! When the source's history no longer reaches the resume point (a long pause on a small
//! oplog), the sync stops with an error that says what happened and what to do, and its
//! persisted state is kept. An unreachable cluster is named in the error.

mod common;

use std::time::Duration;

use bson::doc;
use mongodb::Client;
use mongosync_core::{ClusterName, StartOptions, SyncState, Syncer};
use mongosync_testkit::MemoryCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_point_past_the_oplog_stops_the_sync_with_its_state_kept() {
    let source = MemoryCluster::start_with(common::auth().oplog_limits(300, 1 << 30))
        .await
        .unwrap();
    let destination = MemoryCluster::start_with(common::auth()).await.unwrap();
    let src = Client::with_uri_str(common::uri(&source)).await.unwrap();
    let dst = Client::with_uri_str(common::uri(&destination))
        .await
        .unwrap();
    let coll = src.database("d").collection::<bson::Document>("c");
    coll.insert_many((0..100).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let running = Syncer::connect(
        &common::uri(&source),
        &common::uri(&destination),
        common::options(),
    )
    .await
    .unwrap()
    .start(StartOptions::new(ClusterName::Cluster0))
    .await
    .unwrap();
    running.wait_can_commit().await.unwrap();
    let paused = running.pause().await.unwrap();
    // Far more writes than the source's oplog keeps.
    for i in 0..1000 {
        coll.update_one(doc! {"_id": i % 100}, doc! {"$inc": {"n": 1}})
            .await
            .unwrap();
    }
    let running = paused.resume().await.unwrap();
    let e = running.wait_can_commit().await.unwrap_err();
    assert!(e.is_history_lost(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("oplog") && msg.contains("start again"),
        "{msg}"
    );
    let p = running.progress();
    assert_eq!(p.state, SyncState::Running);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("no longer reaches back")),
        "{:?}",
        p.warnings
    );
    assert!(!p.can_commit);
    // Commit is refused with the cause, and the persisted state is still there.
    let e = running.commit().await.unwrap_err();
    assert!(e.error.is_history_lost(), "{}", e.error);
    let meta = dst.database("__mdb_internal_mongosync");
    assert!(
        meta.collection::<bson::Document>("resumeData")
            .find_one(doc! {})
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_named() {
    let pair = common::pair().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let started = std::time::Instant::now();
    let e = Syncer::connect(
        &pair.source_uri,
        &format!("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=500"),
        common::options(),
    )
    .await
    .unwrap_err();
    assert!(e.is_connection(), "{e}");
    assert!(e.to_string().contains("cluster1"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Before history is lost, `progress` forecasts it: on a 300-entry oplog under a steady write
/// load the resume point is seconds from being overwritten, and a warning says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_history_is_forecast_with_a_warning() {
    let source = MemoryCluster::start_with(common::auth().oplog_limits(300, 1 << 30))
        .await
        .unwrap();
    let destination = MemoryCluster::start_with(common::auth()).await.unwrap();
    let src = Client::with_uri_str(common::uri(&source)).await.unwrap();
    let coll = src.database("d").collection::<bson::Document>("c");
    coll.insert_many((0..100).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let options = common::options().oplog_check_interval(Duration::from_millis(200));
    let running = Syncer::connect(&common::uri(&source), &common::uri(&destination), options)
        .await
        .unwrap()
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (coll, stop) = (coll.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                coll.update_one(doc! {"_id": i % 100}, doc! {"$inc": {"n": 1}})
                    .await
                    .unwrap();
                i += 1;
                // Paces the load (not a synchronisation): a steady write rate to forecast from.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let p = common::wait_for(
        || running.progress(),
        |p| p.estimated_oplog_time_remaining.as_deref() == Some("less than 15 minutes"),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("oplog on the source cluster is too small")
                && w.contains("replSetResizeOplog")),
        "{:?}",
        p.warnings
    );
    // The sync itself is fine so far: it commits, and the forecast is gone once committed.
    let committed = common::commit(running).await;
    let p = committed.progress();
    assert!(p.estimated_oplog_time_remaining.is_none());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}
