//! Cursors as a real server keeps them: a scan reads lazily between `getMore`s (no result is
//! materialised), a find's cursor (a scan or a blocking sort) or a streaming aggregate's is
//! killed with QueryPlanKilled (175) when its collection is dropped or renamed, a scan loses
//! its position in a capped collection with CappedPositionLost (136); result documents may
//! exceed 16 MiB up to the server's internal BSON limit.

use std::collections::BTreeSet;

use bson::{Bson, Document, doc};
use mongodb::{Client, Database};
use mongosync_testkit::MemoryCluster;

async fn client(cluster: &MemoryCluster) -> Client {
    Client::with_uri_str(cluster.uri())
        .await
        .expect("valid uri")
}

/// Opens a cursor with a raw `find`; returns its id and first batch.
async fn find(db: &Database, cmd: Document) -> (i64, Vec<Document>) {
    let reply = db.run_command(cmd).await.unwrap();
    let cursor = reply.get_document("cursor").unwrap();
    (
        cursor.get_i64("id").unwrap(),
        batch(cursor.get_array("firstBatch").unwrap()),
    )
}

fn batch(docs: &[Bson]) -> Vec<Document> {
    docs.iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect()
}

/// A raw `getMore`: the next batch and the cursor id, or the server's error.
async fn get_more(
    db: &Database,
    coll: &str,
    id: i64,
    size: i32,
) -> Result<(i64, Vec<Document>), (i32, String)> {
    run_get_more(
        db,
        doc! {"getMore": id, "collection": coll, "batchSize": size},
    )
    .await
}

/// Runs a `getMore` command: the cursor id and the next batch, or the server's error.
async fn run_get_more(db: &Database, cmd: Document) -> Result<(i64, Vec<Document>), (i32, String)> {
    match db.run_command(cmd).await {
        Ok(reply) => {
            let cursor = reply.get_document("cursor").unwrap();
            Ok((
                cursor.get_i64("id").unwrap(),
                batch(cursor.get_array("nextBatch").unwrap()),
            ))
        }
        Err(e) => match *e.kind {
            mongodb::error::ErrorKind::Command(c) => Err((c.code, c.message)),
            other => panic!("unexpected error {other:?}"),
        },
    }
}

fn size_of(d: &Document) -> usize {
    bson::RawDocumentBuf::try_from(d).unwrap().as_bytes().len()
}

fn ids(docs: &[Document]) -> Vec<i32> {
    docs.iter().map(|d| d.get_i32("_id").unwrap()).collect()
}

async fn uuid_of(db: &Database, coll: &str) -> String {
    let reply = db
        .run_command(doc! {"listCollections": 1, "filter": {"name": coll}})
        .await
        .unwrap();
    let first = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    match first.get_document("info").unwrap().get("uuid").unwrap() {
        Bson::Binary(b) => bson::Uuid::from_bytes(b.bytes.clone().try_into().unwrap()).to_string(),
        other => panic!("uuid {other:?}"),
    }
}

/// Opens a cursor with `open` over `db.dropped`, drops that collection, then one over
/// `db.renamed` and renames it to `db.target`: each next getMore fails with QueryPlanKilled
/// (175) and the server's message, and the killed cursor is gone (43).
async fn assert_drop_and_rename_kill(client: &Client, open: impl AsyncFn(&Database, &str) -> i64) {
    let db = client.database("db");
    let uuid = uuid_of(&db, "dropped").await;
    let id = open(&db, "dropped").await;
    assert_ne!(id, 0);
    db.collection::<Document>("dropped").drop().await.unwrap();
    let (code, message) = get_more(&db, "dropped", id, 2).await.unwrap_err();
    assert_eq!(
        (code, message),
        (175, format!("collection dropped. UUID {uuid}"))
    );
    let (code, _) = get_more(&db, "dropped", id, 2).await.unwrap_err();
    assert_eq!(code, 43, "the killed cursor is gone");

    let uuid = uuid_of(&db, "renamed").await;
    let id = open(&db, "renamed").await;
    client
        .database("admin")
        .run_command(doc! {"renameCollection": "db.renamed", "to": "db.target"})
        .await
        .unwrap();
    let (code, message) = get_more(&db, "renamed", id, 2).await.unwrap_err();
    assert_eq!(
        (code, message),
        (
            175,
            format!("collection renamed from 'db.renamed' to 'db.target'. UUID {uuid}")
        )
    );
    let (code, _) = get_more(&db, "renamed", id, 2).await.unwrap_err();
    assert_eq!(code, 43, "the killed cursor is gone");
}

#[tokio::test]
async fn a_scan_reads_lazily_with_yield_visibility() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    let coll = db.collection::<Document>("c");
    coll.insert_many((0..100).map(|i| doc! {"_id": i, "v": i}))
        .await
        .unwrap();
    for (label, cmd) in [
        (
            "natural",
            doc! {"find": "c", "filter": {"v": {"$gte": 0}}, "batchSize": 10},
        ),
        (
            "_id order",
            doc! {"find": "c", "sort": {"_id": 1}, "batchSize": 10},
        ),
        (
            "_id range",
            doc! {"find": "c", "filter": {"_id": {"$gte": 0}}, "batchSize": 10},
        ),
    ] {
        let (id, first) = find(&db, cmd).await;
        assert_eq!(ids(&first), (0..10).collect::<Vec<_>>(), "{label}");
        // Meanwhile: a document ahead is deleted, one behind and one ahead are updated, and
        // new documents arrive after the end.
        coll.delete_one(doc! {"_id": 50}).await.unwrap();
        coll.update_one(doc! {"_id": 5}, doc! {"$set": {"v": -1}})
            .await
            .unwrap();
        coll.update_one(doc! {"_id": 60}, doc! {"$set": {"w": "grown".repeat(100)}})
            .await
            .unwrap();
        coll.insert_one(doc! {"_id": 1000, "v": 1000})
            .await
            .unwrap();
        let mut seen: Vec<i32> = ids(&first);
        let mut cursor = id;
        while cursor != 0 {
            let (next, docs) = get_more(&db, "c", cursor, 7).await.unwrap();
            assert!(docs.len() <= 7);
            seen.extend(ids(&docs));
            cursor = next;
        }
        // Never twice; never the deleted one; everything that existed throughout; the later
        // insert is after the position, so this server shows it.
        let unique: BTreeSet<i32> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "{label}: a document came twice");
        let expected: BTreeSet<i32> = (0..100).filter(|i| *i != 50).chain([1000]).collect();
        assert_eq!(unique, expected, "{label}");
        // Undo for the next round.
        coll.insert_one(doc! {"_id": 50, "v": 50}).await.unwrap();
        coll.delete_one(doc! {"_id": 1000}).await.unwrap();
        coll.update_one(doc! {"_id": 5}, doc! {"$set": {"v": 5}})
            .await
            .unwrap();
    }
    // skip, limit and projection hold across batches; the cursor closes with the limit.
    let (id, first) = find(
        &db,
        doc! {"find": "c", "filter": {"v": {"$lt": 200}}, "skip": 3, "limit": 12, "projection": {"v": 0}, "batchSize": 5, "sort": {"_id": 1}},
    )
    .await;
    assert_eq!(ids(&first), vec![3, 4, 5, 6, 7]);
    assert!(!first[0].contains_key("v"));
    let (id, docs) = get_more(&db, "c", id, 5).await.unwrap();
    assert_eq!(ids(&docs), vec![8, 9, 10, 11, 12]);
    let (id, docs) = get_more(&db, "c", id, 5).await.unwrap();
    assert_eq!(ids(&docs), vec![13, 14]);
    assert_eq!(id, 0);
    // An exact final batch leaves the cursor open, as the server's does: it stops at
    // `batchSize` results without reading further, so only the next getMore finds the end
    // (an empty batch, cursor id 0). Drivers rely on that getMore to close the cursor.
    let (id, docs) = find(&db, doc! {"find": "c", "batchSize": 100}).await;
    assert_eq!(docs.len(), 100);
    assert_ne!(id, 0, "find: an exactly full last batch");
    let (id, docs) = get_more(&db, "c", id, 100).await.unwrap();
    assert!(docs.is_empty());
    assert_eq!(id, 0);
    // So does a blocking sort's (on a field no index orders).
    let (id, docs) = find(&db, doc! {"find": "c", "sort": {"v": -1}, "batchSize": 100}).await;
    assert_eq!(docs.len(), 100);
    assert_ne!(
        id, 0,
        "find with a blocking sort: an exactly full last batch"
    );
    let (id, docs) = get_more(&db, "c", id, 100).await.unwrap();
    assert_eq!((id, docs.len()), (0, 0));
    // The same for an aggregate, even when its `$limit` is reached with the batch full (its
    // pipeline finds EOF at the next read); one that ends inside a batch closes at once.
    let limited = |n: i32| vec![doc! {"$match": {"v": {"$gte": 0}}}, doc! {"$limit": n}];
    let grouped = || vec![doc! {"$group": {"_id": {"$mod": ["$v", 4]}}}];
    let nothing = || vec![doc! {"$match": {"v": -5}}, doc! {"$sort": {"v": 1}}];
    for (label, pipeline, batch, batches) in [
        ("$limit 100", limited(100), 100, vec![100, 0]),
        ("$limit 10", limited(10), 5, vec![5, 5, 0]),
        ("$limit 7", limited(7), 5, vec![5, 2]),
        ("$limit 150", limited(150), 101, vec![100]),
        // A blocking pipeline's result is computed whole, and still ends the same way.
        ("4 groups", grouped(), 4, vec![4, 0]),
        ("4 groups", grouped(), 3, vec![3, 1]),
        // batchSize 0 reads nothing, so even an empty result leaves the cursor open.
        ("no result", nothing(), 0, vec![0, 0]),
    ] {
        let (mut id, first) = aggregate(&db, "c", pipeline, batch).await;
        let mut seen = vec![first.len()];
        while id != 0 {
            let (next, docs) = get_more(&db, "c", id, batch).await.unwrap();
            seen.push(docs.len());
            id = next;
        }
        assert_eq!(seen, batches, "{label}, batchSize {batch}");
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn drop_rename_and_drop_database_kill_the_cursor_with_query_plan_killed() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    for name in ["dropped", "renamed", "in_dropped_db", "_id_scan"] {
        db.collection::<Document>(name)
            .insert_many((0..10).map(|i| doc! {"_id": i}))
            .await
            .unwrap();
    }

    assert_drop_and_rename_kill(&client, async |db: &Database, coll: &str| {
        find(db, doc! {"find": coll, "batchSize": 2}).await.0
    })
    .await;

    // An `_id` index scan is killed the same way.
    let uuid = uuid_of(&db, "_id_scan").await;
    let (id, _) = find(
        &db,
        doc! {"find": "_id_scan", "hint": {"_id": 1}, "min": {"_id": 2}, "max": {"_id": 8}, "batchSize": 2},
    )
    .await;
    db.collection::<Document>("_id_scan").drop().await.unwrap();
    let (code, message) = get_more(&db, "_id_scan", id, 2).await.unwrap_err();
    assert_eq!(
        (code, message),
        (175, format!("collection dropped. UUID {uuid}"))
    );

    let other = client.database("other");
    other
        .collection::<Document>("c")
        .insert_many((0..10).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let uuid = uuid_of(&other, "c").await;
    let (id, _) = find(&other, doc! {"find": "c", "batchSize": 2}).await;
    other.drop().await.unwrap();
    let (code, message) = get_more(&other, "c", id, 2).await.unwrap_err();
    assert_eq!(
        (code, message),
        (175, format!("collection dropped. UUID {uuid}"))
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn capping_past_a_cursors_position_loses_it() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    db.run_command(doc! {"create": "capped", "capped": true, "size": 1 << 20, "max": 10})
        .await
        .unwrap();
    let coll = db.collection::<Document>("capped");
    coll.insert_many((0..10).map(|i| doc! {"_id": i}))
        .await
        .unwrap();

    // A non-tailable scan whose last record is capped away.
    let (id, first) = find(&db, doc! {"find": "capped", "batchSize": 3}).await;
    assert_eq!(ids(&first), vec![0, 1, 2]);
    coll.insert_many((10..15).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let (code, message) = get_more(&db, "capped", id, 3).await.unwrap_err();
    assert_eq!(code, 136);
    assert!(
        message.starts_with(
            "CollectionScan died due to position in capped collection being deleted. Last seen record id: RecordId("
        ),
        "{message}"
    );

    // A tailable cursor follows new documents while its position lives, then loses it.
    let (id, first) = find(&db, doc! {"find": "capped", "tailable": true}).await;
    assert_eq!(ids(&first), (5..15).collect::<Vec<_>>());
    assert_ne!(id, 0, "a tailable cursor stays open at the end");
    let (id, docs) = get_more(&db, "capped", id, 10).await.unwrap();
    assert!(docs.is_empty());
    coll.insert_one(doc! {"_id": 15}).await.unwrap();
    let (id, docs) = get_more(&db, "capped", id, 10).await.unwrap();
    assert_eq!(ids(&docs), vec![15]);
    coll.insert_many((16..30).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let (code, message) = get_more(&db, "capped", id, 10).await.unwrap_err();
    assert_eq!(code, 136);
    assert!(
        message.starts_with(
            "CollectionScan died due to position in capped collection being deleted. Last seen record id: RecordId("
        ),
        "{message}"
    );
    // The lost cursor is gone.
    let (code, _) = get_more(&db, "capped", id, 10).await.unwrap_err();
    assert_eq!(code, 43);
    cluster.shutdown().await;
}

#[tokio::test]
async fn result_documents_may_exceed_16_mib_up_to_the_internal_limit() {
    const MIB16: usize = 16 * 1024 * 1024;
    const INTERNAL: usize = MIB16 + 16 * 1024;
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    let coll = db.collection::<Document>("big");
    // A stored document of exactly 16 MiB (as the server's bson_size_limit.js, with an int `_id`).
    let max = doc! {"_id": 1, "x": "a".repeat(MIB16 - 22)};
    assert_eq!(size_of(&max), MIB16);
    coll.insert_one(max).await.unwrap();
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1);

    // A result just over 16 MiB is returned: 16,777,233 bytes.
    let reply = db
        .run_command(doc! {"aggregate": "big", "pipeline": [{"$project": {"x": 1, "y": "abcdefghi"}}], "cursor": {}})
        .await
        .unwrap();
    let first = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    let size = size_of(&first);
    assert_eq!(size, 16_777_233);

    // Over the internal limit it is refused with BSONObj's own message.
    let over = INTERNAL - MIB16 + 1;
    let err = db
        .run_command(doc! {"aggregate": "big", "pipeline": [{"$project": {"x": 1, "y": {"$literal": "b".repeat(over)}}}], "cursor": {}})
        .await
        .unwrap_err();
    let mongodb::error::ErrorKind::Command(c) = *err.kind else {
        panic!("{err}")
    };
    assert_eq!(c.code, 10334);
    assert!(
        c.message.starts_with(&format!(
            "BSONObj size: {} (0x{:X}) is invalid. Size must be between 0 and 16793600(16MB) First element: _id: 1",
            INTERNAL + 9,
            INTERNAL + 9
        )),
        "{}",
        c.message
    );

    // distinct caps its values below 16 MiB (17217).
    coll.insert_one(doc! {"_id": 2, "x": "b".repeat(1023)})
        .await
        .unwrap();
    let err = db
        .run_command(doc! {"distinct": "big", "key": "x"})
        .await
        .unwrap_err();
    let mongodb::error::ErrorKind::Command(c) = *err.kind else {
        panic!("{err}")
    };
    assert_eq!(
        (c.code, c.message.as_str()),
        (
            17217,
            "Executor error during distinct command on namespace: db.big :: caused by :: distinct too big, 16mb cap"
        )
    );
    coll.drop().await.unwrap();
    coll.insert_one(doc! {"_id": 1, "x": "a".repeat(MIB16 - 4096 - 101)})
        .await
        .unwrap();
    let reply = db
        .run_command(doc! {"distinct": "big", "key": "x"})
        .await
        .unwrap();
    assert_eq!(reply.get_array("values").unwrap().len(), 1);
    cluster.shutdown().await;
}

/// A raw `getMore` with `maxTimeMS` (the driver's `maxAwaitTimeMS`).
async fn get_more_await(
    db: &Database,
    coll: &str,
    id: i64,
    max_time_ms: i32,
) -> Result<(i64, Vec<Document>), (i32, String)> {
    run_get_more(
        db,
        doc! {"getMore": id, "collection": coll, "maxTimeMS": max_time_ms},
    )
    .await
}

#[tokio::test]
async fn await_data_get_more_waits_for_an_insert_and_keeps_the_cursor_when_none_comes() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    db.run_command(doc! {"create": "capped", "capped": true, "size": 4096, "max": 100})
        .await
        .unwrap();
    let coll = db.collection::<Document>("capped");
    coll.insert_many((0..2).map(|i| doc! {"_id": i}))
        .await
        .unwrap();

    // The server's argument errors.
    let err = db
        .run_command(doc! {"find": "capped", "awaitData": true})
        .await
        .unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::Command(c) => assert_eq!(
            (c.code, c.message.as_str()),
            (9, "Cannot set 'awaitData' without also setting 'tailable'")
        ),
        other => panic!("unexpected error {other:?}"),
    }
    let (plain, _) = find(
        &db,
        doc! {"find": "capped", "tailable": true, "batchSize": 1},
    )
    .await;
    assert_eq!(
        get_more_await(&db, "capped", plain, 10).await.unwrap_err(),
        (
            2,
            "cannot set maxTimeMS on getMore command for a non-awaitData cursor".to_string()
        )
    );

    let (id, first) = find(
        &db,
        doc! {"find": "capped", "tailable": true, "awaitData": true},
    )
    .await;
    assert_eq!(ids(&first), vec![0, 1]);
    assert_ne!(id, 0);

    // Nothing arrives: an empty batch, and the cursor stays open.
    let (same, docs) = get_more_await(&db, "capped", id, 20).await.unwrap();
    assert_eq!((same, docs.len()), (id, 0));

    // A getMore that waits (for up to ten minutes) is woken by an insert, whose document is
    // in its batch.
    let before = cluster.server().command_count("getMore");
    let waiting = {
        let db = db.clone();
        tokio::spawn(async move { get_more_await(&db, "capped", id, 600_000).await })
    };
    while cluster.server().command_count("getMore") == before {
        tokio::task::yield_now().await;
    }
    coll.insert_one(doc! {"_id": 2}).await.unwrap();
    let (same, docs) = waiting.await.unwrap().unwrap();
    assert_eq!((same, ids(&docs)), (id, vec![2]));

    // Documents already there are returned at once.
    coll.insert_many((3..5).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let (same, docs) = get_more_await(&db, "capped", id, 600_000).await.unwrap();
    assert_eq!((same, ids(&docs)), (id, vec![3, 4]));
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_driver_tailable_await_cursor_follows_inserts() {
    use futures::TryStreamExt;
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    db.run_command(doc! {"create": "log", "capped": true, "size": 1 << 20})
        .await
        .unwrap();
    let coll = db.collection::<Document>("log");
    coll.insert_one(doc! {"_id": 0}).await.unwrap();
    let mut cursor = coll
        .find(doc! {})
        .cursor_type(mongodb::options::CursorType::TailableAwait)
        .max_await_time(std::time::Duration::from_millis(600_000))
        .await
        .unwrap();
    assert_eq!(cursor.try_next().await.unwrap(), Some(doc! {"_id": 0}));
    let writer = {
        let coll = coll.clone();
        tokio::spawn(async move {
            for i in 1..4 {
                coll.insert_one(doc! {"_id": i}).await.unwrap();
            }
        })
    };
    for i in 1..4 {
        assert_eq!(cursor.try_next().await.unwrap(), Some(doc! {"_id": i}));
    }
    writer.await.unwrap();
    let stored: Vec<Document> = coll
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stored, (0..4).map(|i| doc! {"_id": i}).collect::<Vec<_>>());
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_blocking_sort_over_100_mib_needs_allow_disk_use_while_a_top_k_sort_does_not() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    let coll = db.collection::<Document>("big");
    // 101 documents of 1 MiB: more than the 100 MiB a blocking sort may hold.
    let payload = "x".repeat(1 << 20);
    for chunk in (0..101).collect::<Vec<i32>>().chunks(20) {
        coll.insert_many(
            chunk
                .iter()
                .map(|i| doc! {"_id": i, "k": 1000 - i, "payload": payload.clone()}),
        )
        .await
        .unwrap();
    }
    let expect_292 = |err: mongodb::error::Error, prefix: &str| match *err.kind {
        mongodb::error::ErrorKind::Command(c) => assert_eq!(
            (c.code, c.code_name.as_str(), c.message.as_str()),
            (
                292,
                "QueryExceededMemoryLimitNoDiskUseAllowed",
                format!(
                    "{prefix} :: caused by :: Sort exceeded memory limit of 104857600 bytes, \
                     but did not opt in to external sorting."
                )
                .as_str()
            )
        ),
        other => panic!("unexpected error {other:?}"),
    };
    let err = db
        .run_command(doc! {"aggregate": "big", "pipeline": [{"$sort": {"k": 1}}], "cursor": {}, "allowDiskUse": false})
        .await
        .unwrap_err();
    expect_292(err, "PlanExecutor error during aggregation");
    let err = db
        .run_command(doc! {"find": "big", "sort": {"k": 1}, "allowDiskUse": false})
        .await
        .unwrap_err();
    expect_292(err, "Executor error during find command");

    // A sort followed by a limit keeps only the top k: no memory limit is reached.
    let reply = db
        .run_command(doc! {"aggregate": "big", "pipeline": [{"$sort": {"k": 1}}, {"$limit": 3}, {"$project": {"payload": 0}}], "cursor": {}, "allowDiskUse": false})
        .await
        .unwrap();
    let first = batch(
        reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap(),
    );
    assert_eq!(ids(&first), vec![100, 99, 98]);
    let (id, first) = find(
        &db,
        doc! {"find": "big", "sort": {"k": 1}, "limit": 3, "projection": {"payload": 0}, "allowDiskUse": false},
    )
    .await;
    assert_eq!((id, ids(&first)), (0, vec![100, 99, 98]));
    // Without allowDiskUse: false the server spills (allowDiskUseByDefault).
    let reply = db
        .run_command(doc! {"aggregate": "big", "pipeline": [{"$sort": {"k": 1}}, {"$project": {"payload": 0}}], "cursor": {"batchSize": 200}})
        .await
        .unwrap();
    let all = batch(
        reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap(),
    );
    assert_eq!(ids(&all), (0..101).rev().collect::<Vec<_>>());

    // Top k keeps ties in their input order, as a stable sort would.
    let small = db.collection::<Document>("small");
    small
        .insert_many((0..20).map(|i| doc! {"_id": i, "g": i % 3}))
        .await
        .unwrap();
    let reply = db
        .run_command(doc! {"aggregate": "small", "pipeline": [{"$sort": {"g": -1}}, {"$limit": 8}], "cursor": {}})
        .await
        .unwrap();
    let top = batch(
        reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap(),
    );
    assert_eq!(ids(&top), vec![2, 5, 8, 11, 14, 17, 1, 4]);
    for filter in [doc! {}, doc! {"_id": {"$gte": 0}}, doc! {"g": {"$gte": 0}}] {
        let (_, top) = find(
            &db,
            doc! {"find": "small", "filter": filter, "sort": {"g": -1}, "skip": 1, "limit": 7},
        )
        .await;
        assert_eq!(ids(&top), vec![5, 8, 11, 14, 17, 1, 4]);
    }
    cluster.shutdown().await;
}

/// An aggregate cursor: its id and first batch.
async fn aggregate(
    db: &Database,
    coll: &str,
    pipeline: Vec<Document>,
    size: i32,
) -> (i64, Vec<Document>) {
    let reply = db
        .run_command(doc! {"aggregate": coll, "pipeline": pipeline, "cursor": {"batchSize": size}})
        .await
        .unwrap();
    let cursor = reply.get_document("cursor").unwrap();
    (
        cursor.get_i64("id").unwrap(),
        batch(cursor.get_array("firstBatch").unwrap()),
    )
}

#[tokio::test]
async fn a_per_document_pipeline_streams_between_get_mores() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    let coll = db.collection::<Document>("c");
    coll.insert_many((0..50).map(|i| doc! {"_id": i, "v": i}))
        .await
        .unwrap();
    let pipeline = vec![
        doc! {"$match": {"v": {"$mod": [2, 0]}}},
        doc! {"$set": {"half": {"$divide": ["$v", 2]}}},
        doc! {"$unset": "v"},
        doc! {"$skip": 1},
        doc! {"$replaceWith": {"_id": "$_id", "h": "$half"}},
        doc! {"$project": {"h": 1}},
        doc! {"$limit": 30},
    ];
    let (id, first) = aggregate(&db, "c", pipeline.clone(), 4).await;
    assert_eq!(first[0], doc! {"_id": 2, "h": 1.0});
    assert_eq!(ids(&first), vec![2, 4, 6, 8]);
    assert_ne!(id, 0);
    // Documents inserted after the cursor opened are read when the scan reaches them: the
    // result was not computed when the cursor opened.
    coll.insert_many((50..100).map(|i| doc! {"_id": i, "v": i}))
        .await
        .unwrap();
    let mut seen = ids(&first);
    let mut cursor = id;
    while cursor != 0 {
        let (next, docs) = get_more(&db, "c", cursor, 7).await.unwrap();
        assert!(docs.len() <= 7);
        seen.extend(ids(&docs));
        cursor = next;
    }
    // The limit closes the cursor after 30 results, past the first 50 documents.
    assert_eq!(seen, (1..31).map(|i| 2 * i).collect::<Vec<_>>());

    // The same pipeline materialised (a $sort makes it blocking) gives the same documents.
    let mut blocking = vec![doc! {"$sort": {"_id": 1}}];
    blocking.extend(pipeline);
    let (id, all) = aggregate(&db, "c", blocking, 100).await;
    assert_eq!(id, 0);
    let streamed: Vec<Document> = {
        let (mut cursor, mut docs) = aggregate(
            &db,
            "c",
            vec![
                doc! {"$match": {"v": {"$mod": [2, 0]}}},
                doc! {"$set": {"half": {"$divide": ["$v", 2]}}},
                doc! {"$unset": "v"},
                doc! {"$skip": 1},
                doc! {"$replaceWith": {"_id": "$_id", "h": "$half"}},
                doc! {"$project": {"h": 1}},
                doc! {"$limit": 30},
            ],
            3,
        )
        .await;
        while cursor != 0 {
            let (next, more) = get_more(&db, "c", cursor, 3).await.unwrap();
            docs.extend(more);
            cursor = next;
        }
        docs
    };
    assert_eq!(streamed, all);
    // An error in a later document surfaces at the getMore that reaches it, as on the server.
    coll.insert_one(doc! {"_id": 1000, "v": "text"})
        .await
        .unwrap();
    let (id, _) = aggregate(
        &db,
        "c",
        vec![doc! {"$replaceWith": {"$cond": [{"$eq": ["$_id", 1000]}, "$v", "$$ROOT"]}}],
        10,
    )
    .await;
    let mut cursor = id;
    let code = loop {
        match get_more(&db, "c", cursor, 50).await {
            Ok((next, _)) => {
                assert_ne!(next, 0, "the failing document was not reached");
                cursor = next;
            }
            Err((code, _)) => break code,
        }
    };
    assert_eq!(code, 40228);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_scan_much_larger_than_a_batch_materialises_no_document() {
    use futures::TryStreamExt;
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    let coll = db.collection::<Document>("big");
    // 4,000 documents of about 1 KiB: 40 batches of 100.
    const N: i32 = 4000;
    coll.insert_many((0..N).map(|i| doc! {"_id": i, "v": N - i, "pad": "x".repeat(1000)}))
        .await
        .unwrap();
    let server = cluster.server();
    let before = server.materialised_documents();

    // Raw commands: the first batch and one getMore.
    let (id, first) = find(&db, doc! {"find": "big", "batchSize": 100}).await;
    assert_eq!(ids(&first), (0..100).collect::<Vec<_>>());
    let (_, next) = get_more(&db, "big", id, 100).await.unwrap();
    assert_eq!(ids(&next), (100..200).collect::<Vec<_>>());
    // The driver's cursors, to the end: natural order, `_id` order (an `_id` index scan, also
    // over a range), newest first, with a projection, and a per-document aggregate.
    let count = |filter: Document, sort: Option<Document>, projection: Option<Document>| {
        let coll = coll.clone();
        async move {
            let mut find = coll.find(filter).batch_size(100);
            if let Some(s) = sort {
                find = find.sort(s);
            }
            if let Some(p) = projection {
                find = find.projection(p);
            }
            let docs: Vec<Document> = find.await.unwrap().try_collect().await.unwrap();
            docs.len()
        }
    };
    assert_eq!(count(doc! {}, None, None).await, N as usize);
    assert_eq!(
        count(doc! {}, Some(doc! {"_id": 1}), None).await,
        N as usize
    );
    assert_eq!(
        count(doc! {"_id": {"$gte": 1000}}, Some(doc! {"_id": -1}), None).await,
        3000
    );
    assert_eq!(
        count(doc! {}, Some(doc! {"$natural": -1}), None).await,
        N as usize
    );
    assert_eq!(
        count(doc! {"v": {"$gt": 2000}}, None, Some(doc! {"pad": 0})).await,
        2000
    );
    let docs: Vec<Document> = coll
        .aggregate(vec![
            doc! {"$match": {"v": {"$gt": 1000}}},
            doc! {"$unset": "pad"},
        ])
        .batch_size(100)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(docs.len(), 3000);
    assert_eq!(
        server.materialised_documents(),
        before,
        "a streaming scan held its result"
    );

    // The counter does see a blocking plan: a sort on a field no index orders holds every
    // document before its first batch.
    assert_eq!(count(doc! {}, Some(doc! {"v": 1}), None).await, N as usize);
    assert_eq!(server.materialised_documents(), before + N as u64);
    cluster.shutdown().await;
}

#[tokio::test]
async fn drop_and_rename_kill_a_streaming_aggregate_cursor_with_query_plan_killed() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    for name in ["dropped", "renamed"] {
        db.collection::<Document>(name)
            .insert_many((0..10).map(|i| doc! {"_id": i, "v": i}))
            .await
            .unwrap();
    }
    let pipeline = || vec![doc! {"$match": {"v": {"$gte": 0}}}, doc! {"$set": {"w": 1}}];

    assert_drop_and_rename_kill(&client, async |db: &Database, coll: &str| {
        let (id, first) = aggregate(db, coll, pipeline(), 2).await;
        assert_eq!(ids(&first), vec![0, 1]);
        id
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn drop_and_rename_kill_a_find_cursor_over_a_blocking_sort_with_query_plan_killed() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("db");
    for name in ["dropped", "renamed", "kept"] {
        db.collection::<Document>(name)
            .insert_many((0..10).map(|i| doc! {"_id": i, "v": 10 - i}))
            .await
            .unwrap();
    }
    // A sort on a field no index orders: the result is computed in full, yet the plan still
    // restores its collection at each getMore.
    let sorted = |coll: &str| doc! {"find": coll, "sort": {"v": 1}, "batchSize": 2};
    let server = cluster.server();
    assert_drop_and_rename_kill(&client, async |db: &Database, coll: &str| {
        let before = server.materialised_documents();
        let (id, first) = find(db, sorted(coll)).await;
        assert_eq!(ids(&first), vec![9, 8]);
        assert_eq!(server.materialised_documents(), before + 10);
        id
    })
    .await;

    // A write to the collection does not kill it: the result stays as computed.
    let (id, _) = find(&db, sorted("kept")).await;
    db.collection::<Document>("kept")
        .insert_one(doc! {"_id": 100, "v": -1})
        .await
        .unwrap();
    let (id, docs) = get_more(&db, "kept", id, 2).await.unwrap();
    assert_eq!(ids(&docs), vec![7, 6]);
    assert_ne!(id, 0);
    cluster.shutdown().await;
}
