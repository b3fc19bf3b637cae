//! `$densify`, `$toHashedIndexKey`, `$meta` and the N accumulators as window functions through
//! the official Rust driver, with the values and codes a real 8.x server answers.

use bson::{Bson, DateTime, Document, doc};
use futures::TryStreamExt;
use mongodb::{Client, Collection, error::ErrorKind};
use mongosync_testkit::MemoryCluster;

async fn collection(cluster: &MemoryCluster, name: &str) -> Collection<Document> {
    let client = Client::with_uri_str(cluster.uri())
        .await
        .expect("valid uri");
    client.database("db").collection(name)
}

fn code(e: mongodb::error::Error) -> i32 {
    match *e.kind {
        ErrorKind::Command(c) => c.code,
        other => panic!("not a command error: {other:?}"),
    }
}

async fn run(coll: &Collection<Document>, pipeline: Vec<Document>) -> Vec<Document> {
    coll.aggregate(pipeline)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn densify_fills_numeric_and_date_gaps() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "d").await;
    // jstests/aggregation/sources/densify/partitions.js, testOne: two partitions of 0 and 2.
    coll.insert_many(vec![
        doc! {"val": 0, "partition": 0},
        doc! {"val": 2, "partition": 0},
        doc! {"val": 0, "partition": 1},
        doc! {"val": 2, "partition": 1},
    ])
    .await
    .unwrap();
    let out = run(
        &coll,
        vec![
            doc! {"$project": {"_id": 0}},
            doc! {"$densify": {"field": "val", "partitionByFields": ["partition"],
            "range": {"step": 1, "bounds": "partition"}}},
        ],
    )
    .await;
    let pairs: Vec<(i32, i32)> = out
        .iter()
        .map(|d| (d.get_i32("partition").unwrap(), d.get_i32("val").unwrap()))
        .collect();
    assert_eq!(pairs, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    // The generated documents carry the partition fields and the field only.
    assert_eq!(out[1], doc! {"partition": 0, "val": 1});

    // Dates by calendar unit over explicit bounds [lo, hi).
    let day = |d: i64| DateTime::from_millis(1_609_459_200_000 + d * 86_400_000);
    let dates = collection(&cluster, "t").await;
    dates
        .insert_many(vec![
            doc! {"_id": 1, "t": day(1)},
            doc! {"_id": 2, "t": day(4)},
        ])
        .await
        .unwrap();
    let out = run(
        &dates,
        vec![doc! {"$densify": {"field": "t",
        "range": {"step": 1, "unit": "day", "bounds": [day(0), day(3)]}}}],
    )
    .await;
    let ts: Vec<DateTime> = out.iter().map(|d| *d.get_datetime("t").unwrap()).collect();
    assert_eq!(ts, vec![day(0), day(1), day(2), day(4)]);
    assert_eq!(out[1].get_i32("_id").unwrap(), 1);

    // The server's codes: a bad step, 'partition' without partitions, a string value.
    let failing = |stage: Document| {
        let coll = coll.clone();
        async move { code(coll.aggregate(vec![stage]).await.unwrap_err()) }
    };
    assert_eq!(
        failing(doc! {"$densify": {"field": "val", "range": {"step": -1, "bounds": "full"}}}).await,
        5733401
    );
    assert_eq!(
        failing(doc! {"$densify": {"field": "val", "range": {"step": 1, "bounds": "partition"}}})
            .await,
        5733408
    );
    coll.insert_one(doc! {"val": "x"}).await.unwrap();
    assert_eq!(
        failing(doc! {"$densify": {"field": "val", "range": {"step": 1, "bounds": "full"}}}).await,
        5733201
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn hashed_index_keys_meta_and_n_window_functions() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "h").await;
    coll.insert_many(vec![
        doc! {"_id": 1, "t": 1, "v": 5, "s": "string to hash"},
        doc! {"_id": 2, "t": 2, "v": 3, "s": "abc"},
        doc! {"_id": 3, "t": 3, "v": 9, "s": {"a": "abc", "b": 123i64}},
    ])
    .await
    .unwrap();
    let out = run(
        &coll,
        vec![
            doc! {"$setWindowFields": {"sortBy": {"t": 1}, "output": {
                "top2": {"$topN": {"n": 2, "sortBy": {"v": -1}, "output": "$v"},
                         "window": {"documents": [-1, 1]}},
                "min1": {"$minN": {"n": 1, "input": "$v"}, "window": {"range": [0, 1]}},
            }}},
            doc! {"$set": {"h": {"$toHashedIndexKey": "$s"}}},
        ],
    )
    .await;
    // The manual's example and db/hasher_test.cpp's vectors.
    let hashes: Vec<i64> = out.iter().map(|d| d.get_i64("h").unwrap()).collect();
    assert_eq!(
        hashes,
        vec![763543691661428748, 8478485326885698097, 4771603801758380216]
    );
    let top2: Vec<&Bson> = out.iter().map(|d| d.get("top2").unwrap()).collect();
    assert_eq!(
        top2,
        vec![
            &Bson::from(vec![5, 3]),
            &Bson::from(vec![9, 5]),
            &Bson::from(vec![9, 3])
        ]
    );
    let min1: Vec<&Bson> = out.iter().map(|d| d.get("min1").unwrap()).collect();
    assert_eq!(
        min1,
        vec![
            &Bson::from(vec![3]),
            &Bson::from(vec![3]),
            &Bson::from(vec![9])
        ]
    );

    let failing = |pipeline: Vec<Document>| {
        let coll = coll.clone();
        async move { code(coll.aggregate(pipeline).await.unwrap_err()) }
    };
    // 'n' must be a positive integer (8.x: 7548606).
    assert_eq!(
        failing(vec![
            doc! {"$setWindowFields": {"sortBy": {"t": 1}, "output": {
            "x": {"$firstN": {"n": 0, "input": "$v"}}}}}
        ])
        .await,
        7548606
    );
    // $meta: an unknown name, and a text score without $text.
    assert_eq!(
        failing(vec![doc! {"$project": {"m": {"$meta": "nope"}}}]).await,
        17308
    );
    assert_eq!(
        failing(vec![doc! {"$project": {"m": {"$meta": "textScore"}}}]).await,
        40218
    );
    // Metadata the testkit never has is missing, as without Atlas Search.
    let out = run(
        &coll,
        vec![
            doc! {"$match": {"_id": 1}},
            doc! {"$project": {"m": {"$meta": "searchHighlights"}}},
        ],
    )
    .await;
    assert_eq!(out, vec![doc! {"_id": 1}]);
    cluster.shutdown().await;
}
