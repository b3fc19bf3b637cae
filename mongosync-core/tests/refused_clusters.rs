//! Clusters the engine refuses before writing anything: one cluster given as both source and
//! destination; a sharded cluster (a `mongos`).

mod common;

use bson::doc;
use mongodb::Client;
use mongosync_core::{ClusterName, ErrorCode, StartOptions, Syncer};
use mongosync_testkit::{ClusterOptions, MemoryCluster};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cluster_as_source_and_destination_is_refused() {
    let cluster = MemoryCluster::start_with(ClusterOptions::default().auth("admin", "pw-same"))
        .await
        .unwrap();
    let uri = cluster.uri_with_credentials("admin", "pw-same");
    // Empty: as a destination it would pass every other check.
    let client = Client::with_uri_str(&uri).await.unwrap();
    let before = snapshot(&client).await;
    // Two URIs that differ, reaching one cluster.
    let other = format!("{uri}&appName=another");
    let idle = Syncer::connect(&uri, &other, common::options())
        .await
        .unwrap();
    let e = idle
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap_err()
        .error;
    assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
    let message = e.to_string();
    assert!(message.contains("same replica set"), "{message}");
    assert!(!message.contains("pw-same"), "{message}");
    assert_eq!(snapshot(&client).await, before, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_cluster_is_refused_at_connect() {
    let router = MemoryCluster::start_with(ClusterOptions::default().mongos())
        .await
        .unwrap();
    let replica_set = MemoryCluster::start().await.unwrap();
    for (c0, c1, which) in [
        (router.uri(), replica_set.uri(), "cluster0"),
        (replica_set.uri(), router.uri(), "cluster1"),
    ] {
        let e = Syncer::connect(c0, c1, common::options())
            .await
            .expect_err("a mongos is refused");
        assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
        let message = e.to_string();
        assert!(
            message.contains(which) && message.contains("sharded cluster (mongos)"),
            "{message}"
        );
        assert!(message.contains("replica sets only"), "{message}");
    }
}
