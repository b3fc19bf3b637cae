//! A reverse that fails (a write to the new destination refused) hands back a COMMITTED syncer,
//! shows COMMITTED with the failure in the warnings, and can reverse again; while it runs the
//! state is REVERSING.

mod common;

use bson::doc;
use mongosync_core::{ClusterName, ErrorCode, StartOptions, SyncState, Syncer, WriteBlocking};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reverse_can_be_tried_again() {
    let pair = common::pair().await;
    pair.src
        .database("shop")
        .collection("users")
        .insert_many((0..200).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
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

    // The reverse's first write to the new destination (cluster0) fails once.
    pair.src
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand", "mode": {"times": 1},
            "data": {"failCommands": ["dropDatabase"], "errorCode": 2, "appName": "mongosync"},
        })
        .await
        .unwrap();
    let reversing = committed.reverse().await.unwrap();
    assert_eq!(reversing.state(), SyncState::Reversing);
    let e = reversing.wait().await.unwrap_err();
    assert_eq!(e.error.code(), ErrorCode::OperationFailed, "{}", e.error);
    let committed = e.syncer;
    let p = committed.progress();
    assert_eq!(p.state, SyncState::Committed);
    assert!(
        p.warnings.iter().any(|w| w.contains("the reverse failed")),
        "{:?}",
        p.warnings
    );

    // Again, with nothing in the way.
    let running = committed.reverse().await.unwrap().wait().await.unwrap();
    assert!(running.progress().warnings.is_empty());
    let mapping = running.progress().direction_mapping.unwrap();
    assert!(mapping.source.starts_with("cluster1"), "{mapping:?}");
    pair.dst
        .database("shop")
        .collection("users")
        .insert_many((1000..1050).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let _committed = common::commit(running).await;
    common::assert_same(&pair.dst, &pair.src, None).await;
}
