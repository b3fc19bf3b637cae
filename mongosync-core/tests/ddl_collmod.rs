//! DDL during the sync: collMod of the validator, an index's `hidden`, a TTL index's
//! `expireAfterSeconds`, and `prepareUnique`, while the copy runs and during change application.

mod common;
mod ddl_util;

use bson::doc;
use ddl_util::{When, crud, fill, filler, finish, note, start};

async fn setup(pair: &common::Pair) {
    filler(&pair.src).await;
    fill(&pair.src, "app", "c", 2000, 500).await;
    pair.src
        .database("app")
        .run_command(doc! {"createIndexes": "c", "indexes": [
            {"key": {"k": 1}, "name": "k_1"},
            {"key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 3600},
            {"key": {"pad": 1}, "name": "pad_1", "hidden": true},
            {"key": {"new": 1}, "name": "new_1"},
        ]})
        .await
        .unwrap();
}

async fn coll_mod(when: When) {
    let pair = common::pair().await;
    setup(&pair).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "c", 5000).await;
    let db = pair.src.database("app");
    for cmd in [
        doc! {"collMod": "c", "validator": {"k": {"$type": "number"}}, "validationAction": "warn"},
        doc! {"collMod": "c", "index": {"name": "pad_1", "hidden": false}},
        doc! {"collMod": "c", "index": {"name": "new_1", "hidden": true}},
        doc! {"collMod": "c", "index": {"keyPattern": {"at": 1}, "expireAfterSeconds": 60}},
    ] {
        db.run_command(cmd).await.unwrap();
    }
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "c", 6000).await;
    finish(&pair, running).await;
}

async fn prepare_unique(when: When) {
    let pair = common::pair().await;
    setup(&pair).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "c", 5000).await;
    pair.src
        .database("app")
        .run_command(doc! {"collMod": "c", "index": {"name": "k_1", "prepareUnique": true}})
        .await
        .unwrap();
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "c", 6000).await;
    finish(&pair, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coll_mod_during_copy() {
    coll_mod(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coll_mod_during_change_application() {
    coll_mod(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prepare_unique_during_copy() {
    prepare_unique(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prepare_unique_during_change_application() {
    prepare_unique(When::Cea).await;
}
