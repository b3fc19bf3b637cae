//! DDL during the sync: explicit creates with options (validator, collation, capped), implicit
//! creates by an insert, views, and a collection re-created with other options after a drop,
//! each while the copy runs and during change application.

mod common;
mod ddl_util;

use bson::{Document, doc};
use ddl_util::{When, crud, fill, filler, finish, note, start};

async fn explicit_and_implicit_creates(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "base", 2000, 500).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "base", 5000).await;
    let db = pair.src.database("app");
    db.run_command(doc! {
        "create": "validated",
        "validator": {"$jsonSchema": {"required": ["k"]}},
        "validationLevel": "moderate",
        "collation": {"locale": "fr", "strength": 2},
    })
    .await
    .unwrap();
    db.run_command(doc! {"create": "ring", "capped": true, "size": 8192, "max": 5})
        .await
        .unwrap();
    // Implicit creation by an insert.
    db.collection::<Document>("implicit")
        .insert_one(doc! {"_id": 1, "k": 1})
        .await
        .unwrap();
    note(&pair, &running, when).await;
    for name in ["validated", "implicit"] {
        crud(&pair.src, "app", name, 100).await;
    }
    let ring = db.collection::<Document>("ring");
    for i in 0..12 {
        ring.insert_one(doc! {"n": i}).await.unwrap();
    }
    crud(&pair.src, "app", "base", 6000).await;
    let n = finish(&pair, running).await;
    assert!(n > 2000);
}

async fn views(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "base", 2000, 500).await;
    let running = start(&pair, when).await;
    let db = pair.src.database("app");
    db.run_command(
        doc! {"create": "big_k", "viewOn": "base", "pipeline": [{"$match": {"k": {"$gt": 100}}}]},
    )
    .await
    .unwrap();
    db.run_command(doc! {"create": "gone", "viewOn": "base", "pipeline": []})
        .await
        .unwrap();
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "base", 5000).await;
    db.run_command(
        doc! {"collMod": "big_k", "viewOn": "base", "pipeline": [{"$match": {"k": {"$gt": 200}}}]},
    )
    .await
    .unwrap();
    db.collection::<Document>("gone").drop().await.unwrap();
    finish(&pair, running).await;
}

async fn recreated_with_other_options(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    let db = pair.src.database("app");
    db.run_command(doc! {"create": "c", "validator": {"k": {"$exists": true}}})
        .await
        .unwrap();
    fill(&pair.src, "app", "c", 2000, 500).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "c", 5000).await;
    db.collection::<Document>("c").drop().await.unwrap();
    db.run_command(
        doc! {"create": "c", "capped": true, "size": 100_000, "collation": {"locale": "de"}},
    )
    .await
    .unwrap();
    note(&pair, &running, when).await;
    let c = db.collection::<Document>("c");
    for i in 0..30 {
        c.insert_one(doc! {"_id": i, "again": true}).await.unwrap();
    }
    finish(&pair, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_during_copy() {
    explicit_and_implicit_creates(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_during_change_application() {
    explicit_and_implicit_creates(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn views_during_copy() {
    views(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn views_during_change_application() {
    views(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recreated_with_other_options_during_copy() {
    recreated_with_other_options(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recreated_with_other_options_during_change_application() {
    recreated_with_other_options(When::Cea).await;
}
