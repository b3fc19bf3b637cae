//! `includeNamespaces` / `excludeNamespaces` with regexes: only the namespaces in scope reach
//! the destination, in the copy and in change application (including collections created
//! during the sync), and those that do match the source exactly.

mod common;

use bson::doc;
use mongosync_core::{ClusterName, NamespaceFilter, StartOptions, Syncer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regex_filters_select_namespaces_in_copy_and_change_application() {
    let pair = common::pair().await;
    let all = [
        ("sales", "accounts_eu"),
        ("sales", "ACCOUNTS_us"),
        ("sales", "accounts_old"),
        ("sales", "orders"),
        ("marketing", "leads"),
        ("other", "x"),
    ];
    for (db, coll) in all {
        pair.src
            .database(db)
            .collection(coll)
            .insert_many((0..200).map(|i| doc! {"_id": i, "ns": format!("{db}.{coll}")}))
            .await
            .unwrap();
    }
    let options = StartOptions::new(ClusterName::Cluster0)
        .include(NamespaceFilter::database("sales").collections_regex("^accounts_", "i"))
        .include(NamespaceFilter::database_regex("^mark", ""))
        .exclude(NamespaceFilter::database("sales").collections(["accounts_old"]));
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap()
        .start(options)
        .await
        .unwrap();
    common::wait_for(|| running.progress(), common::in_cea).await;
    // Writes everywhere during change application, and new collections in and out of scope.
    for (db, coll) in all {
        let c = pair.src.database(db).collection::<bson::Document>(coll);
        c.update_many(doc! {"_id": {"$lt": 10}}, doc! {"$set": {"changed": true}})
            .await
            .unwrap();
        c.delete_one(doc! {"_id": 199}).await.unwrap();
    }
    pair.src
        .database("sales")
        .collection("accounts_new")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    pair.src
        .database("marketing")
        .collection("campaigns")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    pair.src
        .database("sales")
        .collection("refunds")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    pair.src
        .database("other")
        .collection("y")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    // Committing at once: the commit point covers the writes just made.
    let _committed = common::commit(running).await;

    let expected: Vec<(String, String)> = [
        ("marketing", "campaigns"),
        ("marketing", "leads"),
        ("sales", "ACCOUNTS_us"),
        ("sales", "accounts_eu"),
        ("sales", "accounts_new"),
    ]
    .iter()
    .map(|(d, c)| (d.to_string(), c.to_string()))
    .collect();
    assert_eq!(common::user_namespaces(&pair.dst).await, expected);
    let n = common::assert_same(&pair.src, &pair.dst, Some(&expected)).await;
    assert_eq!(n, 199 * 3 + 2);
}
