//! Write blocking as users meet it, with authentication on: the destination refuses the
//! application's writes (371) during the sync while the syncer, as a `root` user, writes
//! through; at commit the source is blocked too (`sourceAndDestination`), and the destination
//! opens to the application. A start with write blocking is refused, with nothing written,
//! unless the syncer connects to each blocked cluster as a user holding
//! `bypassWriteBlockingMode` (a connection that did not authenticate never bypasses, even
//! with authentication off).

mod common;

use bson::doc;
use mongodb::Client;
use mongosync_core::{ClusterName, ErrorCode, StartOptions, SyncState, Syncer, WriteBlocking};
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

/// The databases and the write blocking mode of a cluster: what a refused start must leave.
async fn snapshot(c: &Client) -> (Vec<String>, i32) {
    let mut names = c.list_database_names().await.unwrap();
    names.sort();
    let status = c
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    let mode = status
        .get_document("repl")
        .and_then(|r| r.get_i32("userWriteBlockMode"))
        .unwrap();
    (names, mode)
}

/// Starts a sync with `blocking` and returns the error's code and message.
async fn refused(source: &str, destination: &str, blocking: WriteBlocking) -> (ErrorCode, String) {
    let e = Syncer::connect(source, destination, common::options())
        .await
        .unwrap()
        .start(StartOptions::new(ClusterName::Cluster0).write_blocking(blocking))
        .await
        .expect_err("refused")
        .error;
    (e.code(), e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_blocking_without_the_bypass_privilege_is_refused() {
    // Authentication off, no credentials: the syncer's own writes would be blocked.
    let (s, d) = (
        MemoryCluster::start().await.unwrap(),
        MemoryCluster::start().await.unwrap(),
    );
    let (src, dst) = (
        Client::with_uri_str(s.uri()).await.unwrap(),
        Client::with_uri_str(d.uri()).await.unwrap(),
    );
    src.database("shop")
        .collection::<bson::Document>("orders")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let before = (snapshot(&src).await, snapshot(&dst).await);
    let (code, message) = refused(s.uri(), d.uri(), WriteBlocking::DestinationOnly).await;
    assert_eq!(code, ErrorCode::InvalidOptions, "{message}");
    assert!(
        message.contains("enableUserWriteBlocking")
            && message.contains("bypassWriteBlockingMode")
            && message.contains("cluster1")
            && message.contains("no credentials"),
        "{message}"
    );
    assert_eq!((snapshot(&src).await, snapshot(&dst).await), before);

    // Authentication on, a user without the privilege on the destination, then on the source.
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
    src_root
        .database("shop")
        .collection::<bson::Document>("orders")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let before = (snapshot(&src_root).await, snapshot(&dst_root).await);
    let root = |c: &MemoryCluster| c.uri_with_credentials("syncer", "s3cret-pass");
    let app = |c: &MemoryCluster| c.uri_with_credentials("app", "app-pass");
    let (code, message) = refused(
        &root(&source),
        &app(&destination),
        WriteBlocking::DestinationOnly,
    )
    .await;
    assert_eq!(code, ErrorCode::InvalidOptions, "{message}");
    assert!(
        message.contains("cluster1") && message.contains("app@admin does not hold it"),
        "{message}"
    );
    assert!(!message.contains("app-pass"), "{message}");
    let (code, message) = refused(
        &app(&source),
        &root(&destination),
        WriteBlocking::SourceAndDestination,
    )
    .await;
    assert_eq!(code, ErrorCode::InvalidOptions, "{message}");
    assert!(message.contains("on cluster0"), "{message}");
    assert_eq!(
        (snapshot(&src_root).await, snapshot(&dst_root).await),
        before
    );
}
