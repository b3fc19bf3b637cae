//! DDL during the sync: createIndexes (unique, TTL, hidden: restored exactly at commit) and
//! dropIndexes (also of an index never built on the destination), while the copy runs and
//! during change application.

mod common;
mod ddl_util;

use bson::doc;
use ddl_util::{When, crud, fill, filler, finish, note, start};

async fn create_and_drop_indexes(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "c", 2000, 500).await;
    let db = pair.src.database("app");
    db.run_command(doc! {"createIndexes": "c", "indexes": [
        {"key": {"pad": 1}, "name": "pad_1"},
        {"key": {"k": -1}, "name": "k_-1"},
    ]})
    .await
    .unwrap();
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "c", 5000).await;
    db.run_command(doc! {"createIndexes": "c", "indexes": [
        {"key": {"k": 1}, "name": "k_1", "unique": true},
        {"key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 3600},
        {"key": {"new": 1, "k": 1}, "name": "new_k", "hidden": true, "sparse": true},
        {"key": {"tmp": 1}, "name": "tmp_1"},
    ]})
    .await
    .unwrap();
    // Created and dropped at once: never built on the destination during the copy.
    db.run_command(doc! {"dropIndexes": "c", "index": "tmp_1"})
        .await
        .unwrap();
    db.run_command(doc! {"dropIndexes": "c", "index": "pad_1"})
        .await
        .unwrap();
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "c", 6000).await;
    finish(&pair, running).await;
    let idx = common::indexes(&pair.dst, "app", "c").await;
    assert_eq!(idx["k_1"].get_bool("unique").ok(), Some(true));
    assert_eq!(idx["new_k"].get_bool("hidden").ok(), Some(true));
    assert!(!idx.contains_key("pad_1") && !idx.contains_key("tmp_1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn indexes_during_copy() {
    create_and_drop_indexes(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn indexes_during_change_application() {
    create_and_drop_indexes(When::Cea).await;
}

/// An index dropped and re-created with other options: the copy builds the later one, the
/// replay meets the earlier one first.
async fn re_created_with_other_options(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "c", 2000, 500).await;
    let running = start(&pair, when).await;
    let db = pair.src.database("app");
    db.run_command(doc! {"createIndexes": "c", "indexes": [{"key": {"k": 1}, "name": "k_1"}]})
        .await
        .unwrap();
    crud(&pair.src, "app", "c", 5000).await;
    db.run_command(doc! {"dropIndexes": "c", "index": "k_1"})
        .await
        .unwrap();
    db.run_command(doc! {"createIndexes": "c", "indexes": [
        {"key": {"k": 1}, "name": "k_1", "sparse": true, "unique": true},
        {"key": {"pad": 1}, "name": "pad_1", "expireAfterSeconds": 100},
    ]})
    .await
    .unwrap();
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "c", 6000).await;
    finish(&pair, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn index_re_created_with_other_options_during_copy() {
    re_created_with_other_options(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn index_re_created_with_other_options_during_change_application() {
    re_created_with_other_options(When::Cea).await;
}

/// A round that fails transiently is applied again whole: its `createIndexes` then meets the
/// index that a later event of the same round re-created with other options. (Paused while the
/// DDL happens, so that the events arrive together, in one round.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_replayed_over_an_index_re_created_with_other_options() {
    let pair = common::pair().await;
    fill(&pair.src, "app", "c", 500, 100).await;
    let running = start(&pair, When::Cea).await;
    let paused = running.pause().await.unwrap();
    let db = pair.src.database("app");
    for cmd in [
        doc! {"createIndexes": "c", "indexes": [{"key": {"k": 1}, "name": "k_1"}]},
        doc! {"dropIndexes": "c", "index": "k_1"},
        doc! {"createIndexes": "c", "indexes": [{"key": {"k": 1}, "name": "k_1", "sparse": true}]},
    ] {
        db.run_command(cmd).await.unwrap();
    }
    crud(&pair.src, "app", "c", 5000).await;
    pair.dst
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": ["bulkWrite"], "errorCode": 112},
        })
        .await
        .unwrap();
    let running = paused.resume().await.unwrap();
    finish(&pair, running).await;
    let fired = pair
        .dst
        .database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();
    assert_eq!(
        fired
            .get_i32("count")
            .ok()
            .map(i64::from)
            .or(fired.get_i64("count").ok()),
        Some(1)
    );
}
