//! Text, `2dsphere` and `2d` indexes reach the destination as the source lists them, whether
//! created before the sync (copied) or while it runs (replayed from their events), and
//! answer `$text` and `$near` there.

mod common;
mod ddl_util;

use bson::{Document, doc};
use ddl_util::{When, crud, fill, filler, finish, note, start};
use futures::TryStreamExt;

async fn geo_and_text(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "c", 2000, 100).await;
    let db = pair.src.database("app");
    let places = db.collection::<Document>("places");
    places
        .insert_many(vec![
            doc! {"_id": 1, "loc": {"type": "Point", "coordinates": [2.0, 0.0]}, "p": [2, 0], "note": "coffee shop"},
            doc! {"_id": 2, "loc": {"type": "Point", "coordinates": [1.0, 0.0]}, "p": [1, 0], "note": "tea house"},
        ])
        .await
        .unwrap();
    db.run_command(doc! {"createIndexes": "places", "indexes": [
        {"key": {"loc": "2dsphere"}, "name": "loc_2dsphere"},
    ]})
    .await
    .unwrap();
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "c", 5000).await;
    db.run_command(doc! {"createIndexes": "places", "indexes": [
        {"key": {"note": "text"}, "name": "note_text", "weights": {"note": 5}, "default_language": "english"},
        {"key": {"p": "2d"}, "name": "p_2d", "bits": 26},
    ]})
    .await
    .unwrap();
    places
        .insert_one(doc! {"_id": 3, "loc": {"type": "Point", "coordinates": [0.5, 0.0]}, "p": [0, 1], "note": "coffee"})
        .await
        .unwrap();
    note(&pair, &running, when).await;
    // Compares documents, indexes and options of every namespace.
    finish(&pair, running).await;
    let idx = common::indexes(&pair.dst, "app", "places").await;
    assert_eq!(
        idx["note_text"].get_document("key").unwrap(),
        &doc! {"_fts": "text", "_ftsx": 1}
    );
    let dst = pair.dst.database("app").collection::<Document>("places");
    let ids = |docs: Vec<Document>| -> Vec<i32> {
        docs.iter().map(|d| d.get_i32("_id").unwrap()).collect()
    };
    let near: Vec<Document> = dst
        .find(doc! {"loc": {"$near": {"$geometry": {"type": "Point", "coordinates": [0.0, 0.0]}}}})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(near), vec![3, 2, 1]);
    let text: Vec<Document> = dst
        .find(doc! {"$text": {"$search": "coffee"}})
        .sort(doc! {"s": {"$meta": "textScore"}})
        .projection(doc! {"s": {"$meta": "textScore"}})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    // "coffee" alone: 5 x 1.0; in "coffee shop": 5 x 0.75.
    assert_eq!(
        text.iter()
            .map(|d| (d.get_i32("_id").unwrap(), d.get_f64("s").unwrap()))
            .collect::<Vec<_>>(),
        vec![(3, 5.0), (1, 3.75)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn geo_and_text_indexes_during_copy() {
    geo_and_text(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn geo_and_text_indexes_during_change_application() {
    geo_and_text(When::Cea).await;
}
