//! DDL during the sync: drop and dropDatabase (collections and views), with writes before,
//! and the names used again after, while the copy runs and during change application.

mod common;
mod ddl_util;

use bson::{Document, doc};
use ddl_util::{When, crud, fill, filler, finish, note, start};

async fn drop_collection(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "doomed", 2000, 500).await;
    fill(&pair.src, "app", "kept", 500, 100).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "doomed", 5000).await;
    crud(&pair.src, "app", "kept", 5000).await;
    pair.src
        .database("app")
        .collection::<Document>("doomed")
        .drop()
        .await
        .unwrap();
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "kept", 6000).await;
    // Writes to a dropped name create it again.
    crud(&pair.src, "app", "doomed", 7000).await;
    finish(&pair, running).await;
}

async fn drop_database(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "gone", "a", 2000, 500).await;
    fill(&pair.src, "gone", "b", 200, 100).await;
    pair.src
        .database("gone")
        .run_command(doc! {"create": "v", "viewOn": "a", "pipeline": []})
        .await
        .unwrap();
    fill(&pair.src, "stays", "c", 200, 100).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "gone", "a", 5000).await;
    crud(&pair.src, "gone", "b", 5000).await;
    pair.src.database("gone").drop().await.unwrap();
    note(&pair, &running, when).await;
    crud(&pair.src, "stays", "c", 5000).await;
    crud(&pair.src, "gone", "b", 6000).await;
    finish(&pair, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_during_copy() {
    drop_collection(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_during_change_application() {
    drop_collection(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_database_during_copy() {
    drop_database(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_database_during_change_application() {
    drop_database(When::Cea).await;
}
