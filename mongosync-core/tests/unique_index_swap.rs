//! Two documents swap the values of a unique index while the sync runs. Applied in parallel
//! and out of order across documents, the destination passes through duplicates; that is fine
//! because the index is built non-unique during the sync, and it is unique again after commit.

mod common;

use bson::doc;
use mongodb::IndexModel;
use mongodb::options::IndexOptions;
use mongosync_core::{ClusterName, StartOptions, Syncer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapped_unique_values_sync_and_the_index_is_unique_after_commit() {
    let pair = common::pair().await;
    let users = pair
        .src
        .database("app")
        .collection::<bson::Document>("users");
    users
        .insert_many((0..1000).map(|i| doc! {"_id": i, "email": format!("u{i}@x")}))
        .await
        .unwrap();
    users
        .create_index(
            IndexModel::builder()
                .keys(doc! {"email": 1})
                .options(
                    IndexOptions::builder()
                        .unique(true)
                        .name("email_1".to_string())
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    let running = Syncer::connect(
        &pair.source_uri,
        &pair.destination_uri,
        common::options().appliers(8),
    )
    .await
    .unwrap()
    .start(StartOptions::new(ClusterName::Cluster0))
    .await
    .unwrap();
    common::wait_for(|| running.progress(), common::in_cea).await;
    // Swap pairs of emails through a temporary value, many times over.
    for round in 0..5 {
        for i in (0..200).step_by(2) {
            let (a, b) = (i, i + 1);
            let ea = users
                .find_one(doc! {"_id": a})
                .await
                .unwrap()
                .unwrap()
                .get_str("email")
                .unwrap()
                .to_string();
            let eb = users
                .find_one(doc! {"_id": b})
                .await
                .unwrap()
                .unwrap()
                .get_str("email")
                .unwrap()
                .to_string();
            users
                .update_one(
                    doc! {"_id": a},
                    doc! {"$set": {"email": format!("tmp{round}-{i}")}},
                )
                .await
                .unwrap();
            users
                .update_one(doc! {"_id": b}, doc! {"$set": {"email": ea}})
                .await
                .unwrap();
            users
                .update_one(doc! {"_id": a}, doc! {"$set": {"email": eb}})
                .await
                .unwrap();
        }
    }
    let committed = common::commit(running).await;
    assert!(
        committed.warnings().is_empty(),
        "{:?}",
        committed.warnings()
    );
    let idx = common::indexes(&pair.dst, "app", "users").await;
    assert_eq!(
        idx["email_1"].get_bool("unique").ok(),
        Some(true),
        "{:?}",
        idx["email_1"]
    );
    assert!(!idx["email_1"].contains_key("prepareUnique"));
    common::assert_same(&pair.src, &pair.dst, None).await;
    // The destination enforces the constraint again.
    let e = pair
        .dst
        .database("app")
        .collection::<bson::Document>("users")
        .insert_one(doc! {"_id": 5000, "email": "u500@x"})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("E11000"), "{e}");
}
