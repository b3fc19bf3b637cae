//! Destinations before 8.0 lack the client-level `bulkWrite` command: change application
//! writes to them with ordered `insert`/`update`/`delete` commands per namespace, chosen from
//! the destination's wire version. Each scenario runs a full sync against the testkit passing
//! for a release (6.0 and 7.0 destinations, 7.0 and 6.0 sources, 8.0 for the `bulkWrite`
//! sender), with writes and DDL racing the copy (held by a fail point) and during change
//! application: documents with top-level `$`-prefixed field names (which a replacement cannot
//! hold), `_id`s equal across numeric types, dotted update paths (a 6.0 source does not say
//! which are ambiguous). It ends with a document-by-document comparison (byte for byte, so
//! field order included), and the destination's command counters prove which sender ran.

mod common;
mod ddl_util;

use bson::{Bson, Document, doc};
use common::Pair;
use ddl_util::{When, crud, fill, filler, finish, note, start};
use mongodb::Client;
use mongosync_testkit::{MemoryCluster, ServerVersion};

async fn pair(source: ServerVersion, destination: ServerVersion) -> Pair {
    let s = MemoryCluster::start_with(common::auth().server_version(source))
        .await
        .unwrap();
    let d = MemoryCluster::start_with(common::auth().server_version(destination))
        .await
        .unwrap();
    let (source_uri, destination_uri) = (
        format!("{}&heartbeatFrequencyMS=500", common::uri(&s)),
        format!("{}&heartbeatFrequencyMS=500", common::uri(&d)),
    );
    Pair {
        src: Client::with_uri_str(&source_uri).await.unwrap(),
        dst: Client::with_uri_str(&destination_uri).await.unwrap(),
        source: Some(s),
        destination: Some(d),
        source_uri,
        destination_uri,
    }
}

/// Writes to `d.dollar` documents with top-level `$`-prefixed names: inserts, a `$setField`
/// update adding one, a replacement of one such document by a plain one, a pipeline that
/// replaces a plain document by one with `$` names, and a delete. `base` keeps the `_id`s of
/// each moment apart.
async fn dollar_writes(c: &Client, base: i32) {
    let coll = c.database("d").collection::<Document>("dollar");
    coll.insert_many((base..base + 5).map(|i| doc! {"_id": i, "$a": i, "b": {"$c": i}}))
        .await
        .unwrap();
    coll.insert_one(doc! {"_id": base + 5, "plain": true})
        .await
        .unwrap();
    // Adds a top-level `$` field to a document (an update event naming it).
    coll.update_one(
        doc! {"_id": base},
        vec![doc! {"$replaceWith": {"$setField": {
        "field": {"$literal": "$added"}, "value": base, "input": "$$ROOT"}}}],
    )
    .await
    .unwrap();
    // An operator update of another field of a document holding `$` names.
    coll.update_one(doc! {"_id": base + 1}, doc! {"$set": {"x": 1}})
        .await
        .unwrap();
    // A replacement of a `$` document by a plain one, and the other way (a pipeline).
    coll.replace_one(
        doc! {"_id": base + 2},
        doc! {"_id": base + 2, "now": "plain"},
    )
    .await
    .unwrap();
    coll.update_one(
        doc! {"_id": base + 5},
        vec![doc! {"$replaceWith": {"$literal": {"_id": base + 5, "$now": "dollar"}}}],
    )
    .await
    .unwrap();
    coll.delete_one(doc! {"_id": base + 3}).await.unwrap();
    // Also in the oldest documents (copied, or written by an earlier moment).
    coll.update_one(
        doc! {"_id": 4},
        vec![doc! {"$replaceWith": {"$setField": {
        "field": {"$literal": "$at"}, "value": base, "input": "$$ROOT"}}}],
    )
    .await
    .unwrap();
}

/// Updates naming dotted paths in `d.paths`: nested fields, a field whose name holds a dot,
/// a digit field name in an object, a truncated array. Before 6.1 the change events do not
/// say which paths are ambiguous.
async fn path_writes(c: &Client, base: i32) {
    let coll = c.database("d").collection::<Document>("paths");
    coll.insert_one(doc! {"_id": base, "sub": {"x": 1}, "obj": {"1": "one"}, "arr": [1, 2, 3]})
        .await
        .unwrap();
    coll.update_one(
        doc! {"_id": base},
        doc! {"$set": {"sub.x": 2, "obj.1": "uno"}},
    )
    .await
    .unwrap();
    coll.update_one(
        doc! {"_id": base},
        vec![doc! {"$replaceWith": {"$setField": {"field": "a.b", "input": "$$ROOT", "value": base}}}],
    )
    .await
    .unwrap();
    coll.update_one(
        doc! {"_id": base},
        vec![doc! {"$set": {"arr": {"$slice": ["$arr", 1]}, "sub.y": 1}}],
    )
    .await
    .unwrap();
}

/// One server document, `_id` 7 of `d.ids`, deleted and inserted again under equal `_id`s of
/// other numeric types, in one round.
async fn equal_ids(c: &Client) {
    let coll = c.database("d").collection::<Document>("ids");
    for id in [Bson::Double(7.0), Bson::Int64(7), Bson::Int32(7)] {
        coll.delete_one(doc! {"_id": 7}).await.unwrap();
        coll.insert_one(doc! {"_id": id, "v": 1}).await.unwrap();
    }
}

async fn scenario(source: ServerVersion, destination: ServerVersion) -> (Pair, usize) {
    let pair = pair(source, destination).await;
    filler(&pair.src).await;
    fill(&pair.src, "d", "c", 500, 200).await;
    fill(&pair.src, "d", "renamed", 50, 10).await;
    fill(&pair.src, "d", "ids", 10, 10).await;
    pair.src
        .database("d")
        .collection::<Document>("dollar")
        .insert_many((0..5).map(|i| doc! {"_id": i, "$a": i}))
        .await
        .unwrap();

    // During the copy (held by a fail point): CRUD, `$` documents, DDL.
    let running = start(&pair, When::Copy).await;
    crud(&pair.src, "d", "c", 1000).await;
    dollar_writes(&pair.src, 100).await;
    path_writes(&pair.src, 100).await;
    let db = pair.src.database("d");
    db.collection::<Document>("c")
        .create_index(mongodb::IndexModel::builder().keys(doc! {"k": 1}).build())
        .await
        .unwrap();
    pair.src
        .database("admin")
        .run_command(doc! {"renameCollection": "d.renamed", "to": "d.renamed2"})
        .await
        .unwrap();
    db.collection::<Document>("created")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    note(&pair, &running, When::Copy).await;

    // During change application: the same, and equal `_id`s of other types.
    running.handle().wait_for(common::in_cea).await.unwrap();
    crud(&pair.src, "d", "c", 2000).await;
    dollar_writes(&pair.src, 200).await;
    path_writes(&pair.src, 200).await;
    equal_ids(&pair.src).await;
    db.collection::<Document>("c")
        .replace_one(doc! {"_id": 20}, doc! {"_id": 20, "replaced": true})
        .await
        .unwrap();
    db.collection::<Document>("created").drop().await.unwrap();
    db.collection::<Document>("renamed2")
        .update_many(doc! {}, doc! {"$inc": {"k": 1}})
        .await
        .unwrap();

    let compared = finish(&pair, running).await;
    (pair, compared)
}

fn counts(pair: &Pair, command: &str) -> i64 {
    pair.destination
        .as_ref()
        .unwrap()
        .server()
        .command_count(command)
}

/// The per-namespace sender ran: no `bulkWrite` reached the destination, and change events
/// were written with `update` and `delete` commands.
fn assert_per_namespace(pair: &Pair) {
    assert_eq!(counts(pair, "bulkWrite"), 0);
    assert!(counts(pair, "update") > 0);
    assert!(counts(pair, "delete") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn to_a_6_0_destination() {
    let (pair, compared) = scenario(ServerVersion::V8_0, ServerVersion::V6_0).await;
    assert_per_namespace(&pair);
    assert!(compared > 3500, "{compared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn to_a_7_0_destination() {
    let (pair, compared) = scenario(ServerVersion::V8_0, ServerVersion::V7_0).await;
    assert_per_namespace(&pair);
    assert!(compared > 3500, "{compared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn from_a_7_0_source_to_a_7_0_destination() {
    let (pair, compared) = scenario(ServerVersion::V7_0, ServerVersion::V7_0).await;
    assert_per_namespace(&pair);
    assert!(compared > 3500, "{compared}");
}

/// A 6.0 source's update events carry no `disambiguatedPaths`: dotted paths are re-read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn from_a_6_0_source_to_a_6_0_destination() {
    let (pair, compared) = scenario(ServerVersion::V6_0, ServerVersion::V6_0).await;
    assert_per_namespace(&pair);
    assert!(compared > 3500, "{compared}");
}

/// The same scenario on 8.0, where change application uses `bulkWrite`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn to_an_8_0_destination_with_bulk_write() {
    let (pair, compared) = scenario(ServerVersion::V8_0, ServerVersion::V8_0).await;
    assert!(counts(&pair, "bulkWrite") > 0);
    assert!(compared > 3500, "{compared}");
}
