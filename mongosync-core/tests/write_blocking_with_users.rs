//! Write blocking as users meet it, with authentication on (without it, a real server lets
//! every client bypass write blocking): the destination refuses the application's writes
//! (371) during the sync while the syncer, as a `root` user, writes through; at commit the
//! source is blocked too (`sourceAndDestination`), and the destination opens to the
//! application.

mod common;

use bson::doc;
use mongodb::Client;
use mongosync_core::{ClusterName, StartOptions, SyncState, Syncer, WriteBlocking};
use mongosync_testkit::{ClusterOptions, MemoryCluster};

async fn app_user(root: &Client) {
    root.database("admin")
        .run_command(doc! {"createUser": "app", "pwd": "app-pass", "roles": [{"role": "readWriteAnyDatabase", "db": "admin"}]})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_application_is_blocked_and_the_syncer_is_not() {
    let auth = || ClusterOptions::default().auth("syncer", "s3cret-pass");
    let source = MemoryCluster::start_with(auth()).await.unwrap();
    let destination = MemoryCluster::start_with(auth()).await.unwrap();
    let src_root = Client::with_uri_str(source.uri_with_credentials("syncer", "s3cret-pass"))
        .await
        .unwrap();
    let dst_root = Client::with_uri_str(destination.uri_with_credentials("syncer", "s3cret-pass"))
        .await
        .unwrap();
    app_user(&src_root).await;
    app_user(&dst_root).await;
    let src_app = Client::with_uri_str(source.uri_with_credentials("app", "app-pass"))
        .await
        .unwrap();
    let dst_app = Client::with_uri_str(destination.uri_with_credentials("app", "app-pass"))
        .await
        .unwrap();
    let orders = src_app
        .database("shop")
        .collection::<bson::Document>("orders");
    orders
        .insert_many((0..500).map(|i| doc! {"_id": i}))
        .await
        .unwrap();

    // A wrong password is a connection error that names the cluster and not the password.
    let e = Syncer::connect(
        &source.uri_with_credentials("syncer", "wrong-pass"),
        &destination.uri_with_credentials("syncer", "s3cret-pass"),
        common::options(),
    )
    .await
    .unwrap_err();
    assert!(e.is_connection(), "{e}");
    assert!(
        e.to_string().contains("cluster0") && !e.to_string().contains("wrong-pass"),
        "{e}"
    );

    let running = Syncer::connect(
        &format!(
            "{}&heartbeatFrequencyMS=500",
            source.uri_with_credentials("syncer", "s3cret-pass")
        ),
        &format!(
            "{}&heartbeatFrequencyMS=500",
            destination.uri_with_credentials("syncer", "s3cret-pass")
        ),
        common::options(),
    )
    .await
    .unwrap()
    .start(
        StartOptions::new(ClusterName::Cluster0)
            .write_blocking(WriteBlocking::SourceAndDestination),
    )
    .await
    .unwrap();
    common::wait_for(|| running.progress(), common::in_cea).await;
    // The destination refuses the application while the syncer writes through.
    let e = dst_app
        .database("shop")
        .collection::<bson::Document>("orders")
        .insert_one(doc! {"_id": "app"})
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), Some(371), "{e}");
    assert_eq!(running.progress().can_write, Some(false));
    // The source still takes the application's writes, and they arrive.
    orders
        .insert_many((500..600).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    orders
        .update_many(doc! {"_id": {"$lt": 50}}, doc! {"$set": {"x": 1}})
        .await
        .unwrap();

    let committed = common::commit(running).await;
    assert_eq!(committed.progress().state, SyncState::Committed);
    // Now the source is blocked for the application, and the destination open to it.
    let e = orders.insert_one(doc! {"_id": "late"}).await.unwrap_err();
    assert_eq!(common::code(&e), Some(371), "{e}");
    dst_app
        .database("shop")
        .collection::<bson::Document>("after")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let ns = [("shop".to_string(), "orders".to_string())];
    let n = common::assert_same(&src_root, &dst_root, Some(&ns)).await;
    assert_eq!(n, 600);
}
