//! Bad input gets an error naming the field and what is allowed, and nothing is written on
//! either cluster; a non-empty destination is refused unless the options allow it.

mod common;

use bson::doc;
use mongodb::Client;
use mongosync_core::{
    ClusterName, ConnectOptions, NamespaceFilter, StartOptions, SyncState, Syncer, WriteBlocking,
};

async fn snapshot(c: &Client) -> Vec<String> {
    let mut names = c.list_database_names().await.unwrap();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_options_fail_at_start_and_write_nothing() {
    let pair = common::pair().await;
    pair.src
        .database("d")
        .collection("c")
        .insert_one(doc! {"a": 1})
        .await
        .unwrap();
    let (src_before, dst_before) = (snapshot(&pair.src).await, snapshot(&pair.dst).await);
    let bad: Vec<(StartOptions, &str)> = vec![
        (
            StartOptions::new(ClusterName::Cluster0).include(NamespaceFilter::database("admin")),
            "includeNamespaces[0].database",
        ),
        (
            StartOptions::new(ClusterName::Cluster0)
                .exclude(NamespaceFilter::database_regex("([", "")),
            "excludeNamespaces[0].databaseRegex.pattern",
        ),
        (
            StartOptions::new(ClusterName::Cluster0)
                .include(NamespaceFilter::database("d").collections_regex("c", "z")),
            "includeNamespaces[0].collectionsRegex.options",
        ),
        (
            StartOptions::new(ClusterName::Cluster0)
                .reversible(true)
                .include(NamespaceFilter::database("d")),
            "reversible",
        ),
        (
            StartOptions::new(ClusterName::Cluster0).pre_existing_destination_data(true),
            "preExistingDestinationData",
        ),
        (
            StartOptions::new(ClusterName::Cluster0)
                .write_blocking(WriteBlocking::SourceAndDestination)
                .exclude(NamespaceFilter::database("x")),
            "enableUserWriteBlocking",
        ),
    ];
    let mut syncer = Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap();
    for (options, field) in bad {
        let e = syncer.start(options).await.unwrap_err();
        assert!(e.error.is_invalid_options(), "{}", e.error);
        assert!(
            e.error.to_string().contains(&format!("`{field}`")),
            "{}",
            e.error
        );
        assert_eq!(e.syncer.progress().state, SyncState::Idle);
        syncer = e.syncer;
    }
    // The JSON body of `/start` is checked the same way.
    let e = StartOptions::from_json(
        r#"{"source": "cluster0", "destination": "cluster1", "buildIndexes": "always"}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("afterDataCopy"), "{e}");
    assert_eq!(snapshot(&pair.src).await, src_before);
    assert_eq!(snapshot(&pair.dst).await, dst_before);

    // Engine settings are checked at connect.
    let e = Syncer::connect(
        &pair.source_uri,
        &pair.destination_uri,
        ConnectOptions::default().copy_workers(0),
    )
    .await
    .err()
    .unwrap();
    assert!(e.to_string().contains("`copyWorkers`"), "{e}");
    // A URI with a forbidden option names the cluster.
    let e = Syncer::connect(
        &pair.source_uri,
        &format!("{}&w=1", pair.destination_uri),
        common::options(),
    )
    .await
    .err()
    .unwrap();
    assert!(e.is_connection(), "{e}");
    assert!(
        e.to_string().contains("cluster1") && e.to_string().contains("majority"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_empty_destination_is_refused_unless_filtered_out() {
    let pair = common::pair().await;
    pair.src
        .database("d")
        .collection("c")
        .insert_one(doc! {"a": 1})
        .await
        .unwrap();
    pair.dst
        .database("old")
        .collection("data")
        .insert_one(doc! {"b": 1})
        .await
        .unwrap();
    let dst_before = snapshot(&pair.dst).await;
    let syncer = Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap();
    let e = syncer
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap_err();
    assert!(e.error.is_destination_not_empty(), "{}", e.error);
    assert!(e.error.to_string().contains("old.data"), "{}", e.error);
    assert_eq!(snapshot(&pair.dst).await, dst_before, "nothing was written");

    let running = e
        .syncer
        .start(
            StartOptions::new(ClusterName::Cluster0)
                .include(NamespaceFilter::database("d"))
                .pre_existing_destination_data(true),
        )
        .await
        .unwrap();
    let _committed = common::commit(running).await;
    let ns = [("d".to_string(), "c".to_string())];
    common::assert_same(&pair.src, &pair.dst, Some(&ns)).await;
    let old: Vec<bson::Document> = common::documents(&pair.dst, "old", "data", false)
        .await
        .iter()
        .map(|r| bson::Document::try_from(r.as_ref()).unwrap())
        .collect();
    assert_eq!(old.len(), 1, "the pre-existing data is left as it was");
}
