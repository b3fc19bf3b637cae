//! Change events near and over 16 MiB. Inserts, replaces and updates of documents near the
//! 16 MiB limit (small `_id`s) make events just under the limit: they are applied. With a large
//! `_id` the event is over the limit (it holds the `_id` in its resume token, as hex, and in
//! `documentKey`, beside the document): a real server fails the stream with BSONObjectTooLarge
//! (10334), and `$changeStreamSplitLargeEvent`, which splits by top-level fields and puts the
//! token in every fragment, cannot split it either (7182500): the sync stops, saying why.
//! The engine's reassembly of split events is unit-tested in `engine::capture`.

mod common;

use bson::{Document, doc};
use mongodb::Collection;

/// A 48 KiB `_id`: the event carries it three times (twice as wide in the token's hex).
fn large_id(tag: &str) -> String {
    format!("{tag}-{}", "k".repeat(48 << 10))
}

/// A document of `_id` and one string field, 1 KiB under 16 MiB.
fn near_limit(id: &str, field: &str, fill: char) -> Document {
    let empty = bson::serialize_to_vec(&doc! {"_id": id, field: ""})
        .unwrap()
        .len();
    let len = (16 << 20) - 1024 - empty;
    doc! {"_id": id, field: fill.to_string().repeat(len)}
}

/// Opens a change stream on `d.c` without the split stage, to show that the events below are
/// over the limit (its getMore fails with 10334, as on a real server).
async fn unsplit_stream(pair: &common::Pair) -> i64 {
    let reply = pair
        .src
        .database("d")
        .run_command(doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}],
        "cursor": {"batchSize": 0}})
        .await
        .unwrap();
    reply.get_document("cursor").unwrap().get_i64("id").unwrap()
}

async fn assert_over_the_limit(pair: &common::Pair, cursor: i64) {
    let e = pair
        .src
        .database("d")
        .run_command(doc! {"getMore": cursor, "collection": "c", "maxTimeMS": 2000})
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), Some(10334), "{e}");
}

/// Near-limit documents with small `_id`s: their events stay under the limit.
async fn near_limit_writes(coll: &Collection<Document>) {
    coll.insert_one(near_limit("a", "x", 'x')).await.unwrap();
    coll.replace_one(doc! {"_id": "a"}, near_limit("a", "y", 'y'))
        .await
        .unwrap();
    let updated = near_limit("a", "y", 'z');
    coll.update_one(
        doc! {"_id": "a"},
        doc! {"$set": {"y": updated.get_str("y").unwrap()}},
    )
    .await
    .unwrap();
    coll.insert_one(near_limit("b", "x", 'b')).await.unwrap();
    coll.delete_one(doc! {"_id": "b"}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn near_16_mib_documents_are_inserted_replaced_and_updated() {
    let pair = common::pair().await;
    let coll = pair.src.database("d").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0}).await.unwrap();
    let running = common::start(&pair).await;
    common::wait_for(|| running.progress(), common::in_cea).await;
    near_limit_writes(&coll).await;
    let committed = common::commit(running).await;
    assert!(
        committed.warnings().is_empty(),
        "{:?}",
        committed.warnings()
    );
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 2);
    let a = pair
        .dst
        .database("d")
        .collection::<Document>("c")
        .find_one(doc! {"_id": "a"})
        .await
        .unwrap()
        .unwrap();
    assert!(a.get_str("y").unwrap().starts_with('z'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_too_large_to_split_stops_the_sync_saying_why() {
    let pair = common::pair().await;
    let coll = pair.src.database("d").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0}).await.unwrap();
    let running = common::start(&pair).await;
    running.handle().wait_for(common::in_cea).await.unwrap();

    // The premise: the insert event is over the limit (a stream without the split stage
    // fails on it with 10334).
    let cursor = unsplit_stream(&pair).await;
    let id = large_id("a");
    coll.insert_one(near_limit(&id, "x", 'x')).await.unwrap();
    assert_over_the_limit(&pair, cursor).await;

    let err = running.handle().wait_for(|_| false).await.unwrap_err();
    assert!(err.is_stopped(), "{err}");
    assert_eq!(err.code(), mongosync_core::ErrorCode::Unsupported, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("a change event over 16 MiB") && text.contains("large _id"),
        "{text}"
    );
    // Not the whole token the server's message quotes.
    assert!(text.len() < 2000, "{text}");
    // Nothing of it was applied.
    let dst = pair.dst.database("d").collection::<Document>("c");
    assert_eq!(dst.count_documents(doc! {}).await.unwrap(), 1);
}
