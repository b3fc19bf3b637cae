//! A DDL the engine refuses during the sync. `shardCollection` (refused by the engine) cannot
//! happen on a replica set, and the testkit is one; a time-series collection created during the
//! sync is refused the same way: the sync stops with `Error::Unsupported` naming it, the error
//! is in the progress warnings, and the state is kept. A `collMod` that makes a collection
//! unsupported (`expireAfterSeconds` on a clustered collection) is refused too.

mod common;
mod ddl_util;

use bson::{Document, doc};
use ddl_util::{When, crud, fill, filler, note, start};
use futures::TryStreamExt;

async fn time_series_created(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "c", 500, 500).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "c", 5000).await;
    pair.src
        .database("app")
        .run_command(doc! {"create": "weather", "timeseries": {"timeField": "at"}})
        .await
        .unwrap();
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "c", 6000).await;
    let p = common::wait_for(
        || running.progress(),
        |p| p.warnings.iter().any(|w| w.contains("app.weather")),
    )
    .await;
    let err = running.wait_can_commit().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("time-series") && text.contains("app.weather"),
        "{text}"
    );
    assert!(
        p.warnings.iter().any(|w| w.contains(&text)),
        "{:?}",
        p.warnings
    );
    let mongosync_core::Error::Stopped(inner) = &err else {
        panic!("not a stop: {err:?}")
    };
    assert!(
        matches!(&**inner, mongosync_core::Error::Unsupported { .. }),
        "{inner:?}"
    );
    // The state is kept.
    let c = pair.dst.database("app").collection::<Document>("c");
    assert!(c.count_documents(doc! {}).await.unwrap() > 0);
    assert!(
        pair.dst
            .list_database_names()
            .await
            .unwrap()
            .contains(&"__mdb_internal_mongosync".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_series_created_during_copy_is_refused() {
    time_series_created(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_series_created_during_change_application_is_refused() {
    time_series_created(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_set_on_a_clustered_collection_during_change_application_is_refused() {
    let pair = common::pair().await;
    let db = pair.src.database("app");
    db.run_command(
        doc! {"create": "events", "clusteredIndex": {"key": {"_id": 1}, "unique": true}},
    )
    .await
    .unwrap();
    db.collection::<Document>("events")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let running = common::start(&pair).await;
    running.handle().wait_for(common::in_cea).await.unwrap();
    db.run_command(doc! {"collMod": "events", "expireAfterSeconds": 3600})
        .await
        .unwrap();
    // The sync may already be able to commit: wait until it stops, on the refused change.
    let err = running.handle().wait_for(|_| false).await.unwrap_err();
    assert!(err.is_stopped(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("clustered") && text.contains("app.events"),
        "{text}"
    );
    assert_eq!(err.code(), mongosync_core::ErrorCode::Unsupported, "{text}");
    // Nothing of the refused change was applied.
    let info: Document = pair
        .dst
        .database("app")
        .run_cursor_command(doc! {"listCollections": 1, "filter": {"name": "events"}})
        .await
        .unwrap()
        .try_next()
        .await
        .unwrap()
        .unwrap();
    assert!(
        !info
            .get_document("options")
            .unwrap()
            .contains_key("expireAfterSeconds"),
        "{info}"
    );
}
