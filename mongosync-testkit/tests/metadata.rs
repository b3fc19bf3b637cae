//! Document metadata through aggregation pipelines, through the official Rust driver: the text
//! score of a first-stage `$text` match, `$geoNear`'s distance and point, `$sample`'s random
//! value, read by `{$meta: ...}` in every stage that evaluates expressions, and the server's
//! errors when a pipeline reads metadata nothing produces (40218).

use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use mongodb::{Client, Collection, error::ErrorKind};
use mongosync_testkit::MemoryCluster;

async fn collection(cluster: &MemoryCluster, name: &str) -> Collection<Document> {
    let client = Client::with_uri_str(cluster.uri())
        .await
        .expect("valid uri");
    client.database("db").collection(name)
}

fn code_and_message(e: mongodb::error::Error) -> (i32, String) {
    match *e.kind {
        ErrorKind::Command(c) => (c.code, c.message),
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

async fn fails(coll: &Collection<Document>, pipeline: Vec<Document>) -> (i32, String) {
    code_and_message(coll.aggregate(pipeline).await.unwrap_err())
}

/// The documents of the server's `meta_dependency_validation` tests: scores for "three" are
/// 2/3 for three tokens and 3/4 for two (the stop words "the" and "we" do not count).
async fn three(cluster: &MemoryCluster, name: &str) -> Collection<Document> {
    let coll = collection(cluster, name).await;
    coll.insert_many(vec![
        doc! {"_id": 0, "textField": "three blind mice", "geoField": [23, 51]},
        doc! {"_id": 1, "textField": "the three stooges", "geoField": [25, 49]},
        doc! {"_id": 2, "textField": "we three kings", "geoField": [30, 51]},
        doc! {"_id": 3, "textField": "four", "geoField": [0, 0]},
    ])
    .await
    .unwrap();
    let indexes = [
        doc! {"key": {"textField": "text"}, "name": "text"},
        doc! {"key": {"geoField": "2d"}, "name": "geo"},
    ];
    coll.client()
        .database("db")
        .run_command(doc! {"createIndexes": name, "indexes": indexes.to_vec()})
        .await
        .unwrap();
    coll
}

const TWO_THIRDS: f64 = 2.0 / 3.0;

fn text(search: &str) -> Document {
    doc! {"$match": {"$text": {"$search": search}}}
}

#[tokio::test]
async fn text_score_reaches_every_stage_that_reads_it() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = three(&cluster, "t").await;
    // $project, and $meta inside a larger expression in $addFields/$set.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$project": {"score": {"$meta": "textScore"}}},
            doc! {"$set": {"twice": {"$multiply": [{"$meta": "textScore"}, 2]}}},
            doc! {"$sort": {"_id": 1}},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            doc! {"_id": 0, "score": TWO_THIRDS, "twice": 2.0 * TWO_THIRDS},
            doc! {"_id": 1, "score": 0.75, "twice": 1.5},
            doc! {"_id": 2, "score": 0.75, "twice": 1.5},
        ]
    );
    // $sort on the score (highest first), also as a top-k sort with $limit; the score outlives
    // a $project that drops every field.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$project": {"_id": 1}},
            doc! {"$sort": {"s": {"$meta": "textScore"}, "_id": -1}},
        ],
    )
    .await;
    assert_eq!(got, vec![doc! {"_id": 2}, doc! {"_id": 1}, doc! {"_id": 0}]);
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$sort": {"s": {"$meta": "textScore"}, "_id": 1}},
            doc! {"$limit": 2},
            doc! {"$project": {"_id": 1}},
        ],
    )
    .await;
    assert_eq!(got, vec![doc! {"_id": 1}, doc! {"_id": 2}]);
    // $group accumulators; the group's output has no score of its own.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$group": {
                "_id": null,
                "total": {"$sum": {"$meta": "textScore"}},
                "low": {"$min": {"$meta": "textScore"}},
            }},
            doc! {"$project": {"total": 1, "low": 1, "after": {"$meta": "textScore"}}},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![doc! {"_id": Bson::Null, "total": 1.5 + TWO_THIRDS, "low": TWO_THIRDS}]
    );
    // $match with $expr.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$match": {"$expr": {"$gt": [{"$meta": "textScore"}, 0.7]}}},
            doc! {"$sort": {"_id": 1}},
            doc! {"$project": {"_id": 1}},
        ],
    )
    .await;
    assert_eq!(got, vec![doc! {"_id": 1}, doc! {"_id": 2}]);
    // $redact decides with it, and its output keeps it.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$redact": {"$cond": [{"$gt": [{"$meta": "textScore"}, 0.7]}, "$$KEEP", "$$PRUNE"]}},
            doc! {"$project": {"s": {"$meta": "textScore"}}},
            doc! {"$sort": {"_id": 1}},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![doc! {"_id": 1, "s": 0.75}, doc! {"_id": 2, "s": 0.75}]
    );
    // $replaceRoot keeps the metadata for later stages; $unwind copies it to every output.
    let got = run(
        &coll,
        vec![
            text("blind kings"),
            doc! {"$replaceRoot": {"newRoot": {"id": "$_id", "s": {"$meta": "textScore"}, "w": [1, 2]}}},
            doc! {"$unwind": "$w"},
            doc! {"$addFields": {"again": {"$meta": "textScore"}}},
            doc! {"$sort": {"id": 1, "w": 1}},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            doc! {"id": 0, "s": TWO_THIRDS, "w": 1, "again": TWO_THIRDS},
            doc! {"id": 0, "s": TWO_THIRDS, "w": 2, "again": TWO_THIRDS},
            doc! {"id": 2, "s": 0.75, "w": 1, "again": 0.75},
            doc! {"id": 2, "s": 0.75, "w": 2, "again": 0.75},
        ]
    );
    // $facet pipelines see their input's scores (the server's facet metadata test).
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$project": {"_id": 1}},
            doc! {"$facet": {
                "scores": [{"$project": {"score": {"$meta": "textScore"}}}, {"$sort": {"_id": 1}}],
                "order": [{"$sort": {"a": {"$meta": "textScore"}, "_id": 1}}],
            }},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![doc! {
            "scores": [
                {"_id": 0, "score": TWO_THIRDS},
                {"_id": 1, "score": 0.75},
                {"_id": 2, "score": 0.75},
            ],
            "order": [{"_id": 1}, {"_id": 2}, {"_id": 0}],
        }]
    );
    // A $lookup pipeline may start with its own $text match; its documents carry their own
    // scores, and the outer document keeps its own.
    let got = run(
        &coll,
        vec![
            text("mice"),
            doc! {"$lookup": {
                "from": "t",
                "pipeline": [
                    text("kings stooges"),
                    {"$project": {"s": {"$meta": "textScore"}}},
                    {"$sort": {"_id": 1}},
                ],
                "as": "j",
            }},
            doc! {"$addFields": {"mine": {"$meta": "textScore"}}},
        ],
    )
    .await;
    assert_eq!(
        got[0].get_array("j").unwrap(),
        &vec![
            Bson::Document(doc! {"_id": 1, "s": 0.75}),
            Bson::Document(doc! {"_id": 2, "s": 0.75}),
        ]
    );
    assert_eq!(got[0].get_f64("mine").unwrap(), TWO_THIRDS);
}

#[tokio::test]
async fn geo_near_and_sample_metadata() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = three(&cluster, "g").await;
    // The distance metadata is unscaled by distanceMultiplier; the point is the stored one.
    let got = run(
        &coll,
        vec![
            doc! {"$geoNear": {"near": [20, 40], "distanceField": "dist", "distanceMultiplier": 2, "query": {"_id": {"$lt": 3}}}},
            doc! {"$project": {
                "dist": 1,
                "d": {"$meta": "geoNearDistance"},
                "pt": {"$meta": "geoNearPoint"},
            }},
        ],
    )
    .await;
    let want = [
        (1, 106f64.sqrt(), vec![25, 49]),
        (0, 130f64.sqrt(), vec![23, 51]),
        (2, 221f64.sqrt(), vec![30, 51]),
    ];
    assert_eq!(got.len(), 3);
    for (d, (id, dist, pt)) in got.iter().zip(want) {
        assert_eq!(d.get_i32("_id").unwrap(), id);
        assert!((d.get_f64("d").unwrap() - dist).abs() < 1e-9, "{d}");
        assert!(
            (d.get_f64("dist").unwrap() - 2.0 * dist).abs() < 1e-9,
            "{d}"
        );
        assert_eq!(
            d.get("pt"),
            Some(&Bson::Array(pt.into_iter().map(Bson::Int32).collect()))
        );
    }
    // A $meta sort on the distance is descending, as every $meta sort.
    let got = run(
        &coll,
        vec![
            doc! {"$geoNear": {"near": [20, 40], "distanceField": "dist", "query": {"_id": {"$lt": 3}}}},
            doc! {"$project": {"_id": 1}},
            doc! {"$facet": {"f": [{"$sort": {"a": {"$meta": "geoNearDistance"}}}]}},
        ],
    )
    .await;
    assert_eq!(got, vec![doc! {"f": [{"_id": 2}, {"_id": 0}, {"_id": 1}]}]);
    // $sample gives each document a random value, in [0, 1), and returns them highest first.
    let got = run(
        &coll,
        vec![
            doc! {"$sample": {"size": 3}},
            doc! {"$project": {"r": {"$meta": "randVal"}}},
        ],
    )
    .await;
    let r: Vec<f64> = got.iter().map(|d| d.get_f64("r").unwrap()).collect();
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|x| (0.0..1.0).contains(x)), "{r:?}");
    assert!(r.windows(2).all(|w| w[0] >= w[1]), "{r:?}");
}

#[tokio::test]
async fn unavailable_metadata_and_misplaced_text_fail_as_on_the_server() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = three(&cluster, "e").await;
    let empty = collection(&cluster, "nothing_here").await;
    let text_score = (
        40218,
        "query requires text score metadata, but it is not available".to_string(),
    );
    // Checked when the pipeline is planned: even over no documents.
    for c in [&coll, &empty] {
        assert_eq!(
            fails(c, vec![doc! {"$project": {"s": {"$meta": "textScore"}}}]).await,
            text_score
        );
    }
    assert_eq!(
        fails(&coll, vec![doc! {"$sort": {"s": {"$meta": "textScore"}}}]).await,
        text_score
    );
    assert_eq!(
        fails(
            &coll,
            vec![
                doc! {"$match": {"_id": {"$gte": 0}}},
                doc! {"$facet": {"p": [{"$group": {"_id": null, "s": {"$sum": {"$meta": "textScore"}}}}]}},
            ]
        )
        .await,
        text_score
    );
    // A $lookup pipeline starts afresh: the outer $text does not score its documents.
    assert_eq!(
        fails(
            &coll,
            vec![
                text("three"),
                doc! {"$lookup": {"from": "e", "pipeline": [{"$project": {"s": {"$meta": "textScore"}}}], "as": "j"}},
            ]
        )
        .await,
        text_score
    );
    for (name, what) in [
        ("geoNearDistance", "$geoNear distance"),
        ("geoNearPoint", "$geoNear point"),
        ("searchScore", "$search score"),
    ] {
        assert_eq!(
            fails(
                &coll,
                vec![text("three"), doc! {"$addFields": {"x": {"$meta": name}}}]
            )
            .await,
            (
                40218,
                format!("query requires {what} metadata, but it is not available")
            )
        );
    }
    // A view's definition is checked when it is read, with the reader's stages.
    let db = coll.client().database("db");
    db.run_command(doc! {"create": "scored", "viewOn": "e", "pipeline": [{"$addFields": {"s": {"$meta": "textScore"}}}]})
        .await
        .unwrap();
    assert_eq!(
        fails(&db.collection::<Document>("scored"), vec![]).await,
        text_score
    );
    // Metadata a stage may give is just missing without it; after a $group it is missing too.
    let got = run(
        &coll,
        vec![
            doc! {"$match": {"_id": 0}},
            doc! {"$project": {"r": {"$meta": "randVal"}, "k": {"$meta": "sortKey"}}},
        ],
    )
    .await;
    assert_eq!(got, vec![doc! {"_id": 0}]);
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$group": {"_id": null, "n": {"$sum": 1}}},
            doc! {"$project": {"n": 1, "s": {"$meta": "textScore"}}},
        ],
    )
    .await;
    assert_eq!(got, vec![doc! {"_id": Bson::Null, "n": 3}]);
    // Unknown names and non-strings, at parse time.
    assert_eq!(
        fails(&coll, vec![doc! {"$project": {"s": {"$meta": "nope"}}}]).await,
        (17308, "Unsupported argument to $meta: nope".to_string())
    );
    assert_eq!(
        fails(&coll, vec![doc! {"$project": {"s": {"$meta": 1}}}]).await,
        (17307, "$meta only supports string arguments".to_string())
    );
    // $text only in the first stage.
    assert_eq!(
        fails(&coll, vec![doc! {"$match": {"_id": 1}}, text("three")]).await,
        (
            17313,
            "$match with $text is only allowed as the first pipeline stage".to_string()
        )
    );
}

#[tokio::test]
async fn find_and_aggregate_share_the_text_score() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = three(&cluster, "f").await;
    // A find projection evaluates $meta inside expressions too, and sorts by the score.
    let got: Vec<Document> = coll
        .find(doc! {"$text": {"$search": "three"}})
        .projection(doc! {"s": {"$add": [{"$meta": "textScore"}, 1]}})
        .sort(doc! {"s": {"$meta": "textScore"}, "_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            doc! {"_id": 1, "s": 1.75},
            doc! {"_id": 2, "s": 1.75},
            doc! {"_id": 0, "s": 1.0 + TWO_THIRDS},
        ]
    );
    // Checked before any document is read: a filter that matches nothing fails too.
    for sort in [doc! {}, doc! {"s": {"$meta": "textScore"}}] {
        let e = coll
            .find(doc! {"_id": 99})
            .projection(doc! {"s": {"$meta": "textScore"}})
            .sort(sort)
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(e),
            (
                40218,
                "query requires text score metadata, but it is not available".to_string()
            )
        );
    }
    // A $near filter gives each document its distance and point, in the query's units.
    let got: Vec<Document> = coll
        .find(doc! {"geoField": {"$near": [20, 40]}, "_id": {"$lt": 3}})
        .projection(doc! {"d": {"$meta": "geoNearDistance"}, "p": {"$meta": "geoNearPoint"}})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let got: Vec<(i32, f64, Bson)> = got
        .iter()
        .map(|d| {
            let dist = d.get_f64("d").unwrap();
            (d.get_i32("_id").unwrap(), dist, d.get("p").unwrap().clone())
        })
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        (got[0].0, &got[0].2),
        (1, &Bson::Array(vec![25.into(), 49.into()]))
    );
    assert!((got[0].1 - 106f64.sqrt()).abs() < 1e-9, "{got:?}");
    assert_eq!(
        code_and_message(
            coll.find(doc! {})
                .projection(doc! {"d": {"$meta": "geoNearDistance"}})
                .await
                .unwrap_err()
        ),
        (
            40218,
            "query requires $geoNear distance metadata, but it is not available".to_string()
        )
    );
}

#[tokio::test]
async fn lookup_and_union_with_pipelines_search_their_own_collection() {
    let cluster = MemoryCluster::start().await.unwrap();
    let words = three(&cluster, "words").await;
    let outer = collection(&cluster, "outer").await;
    outer.insert_one(doc! {"_id": "x"}).await.unwrap();
    // The outer collection has no text index; the foreign one's serves the $text match (the
    // server's text_search_requires_index test).
    let sub = vec![
        text("stooges"),
        doc! {"$project": {"s": {"$meta": "textScore"}}},
    ];
    let got = run(
        &outer,
        vec![doc! {"$lookup": {"from": "words", "pipeline": sub.clone(), "as": "j"}}],
    )
    .await;
    assert_eq!(got, vec![doc! {"_id": "x", "j": [{"_id": 1, "s": 0.75}]}]);
    let got = run(
        &outer,
        vec![doc! {"$unionWith": {"coll": "words", "pipeline": sub.clone()}}],
    )
    .await;
    assert_eq!(got, vec![doc! {"_id": "x"}, doc! {"_id": 1, "s": 0.75}]);
    // Without a text index on the foreign collection: IndexNotFound.
    let (code, _) = fails(
        &words,
        vec![doc! {"$lookup": {"from": "outer", "pipeline": sub, "as": "j"}}],
    )
    .await;
    assert_eq!(code, 27);
}

#[tokio::test]
async fn sort_keys_and_bucket_accumulators() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = three(&cluster, "k").await;
    // A $sort records each document's key when a later stage reads it: one value per key (an
    // array sorts by its smallest element ascending), a $meta key's metadata.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$addFields": {"tags": [{"$multiply": ["$_id", 10]}, 5]}},
            doc! {"$sort": {"tags": 1, "s": {"$meta": "textScore"}}},
            doc! {"$project": {"k": {"$meta": "sortKey"}}},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            doc! {"_id": 0, "k": [0, TWO_THIRDS]},
            doc! {"_id": 1, "k": [5, 0.75]},
            doc! {"_id": 2, "k": [5, 0.75]},
        ]
    );
    let got = run(
        &coll,
        vec![
            doc! {"$sort": {"nothing": -1, "_id": -1}},
            doc! {"$limit": 1},
            doc! {"$project": {"k": {"$meta": "sortKey"}}},
        ],
    )
    .await;
    assert_eq!(got, vec![doc! {"_id": 3, "k": [Bson::Null, 3]}]);
    // $setWindowFields adds fields to its documents, which keep their metadata; it may
    // partition and sort by it.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$setWindowFields": {
                "partitionBy": {"$gt": [{"$meta": "textScore"}, 0.7]},
                "sortBy": {"s": {"$meta": "textScore"}, "_id": -1},
                "output": {"n": {"$documentNumber": {}}},
            }},
            doc! {"$project": {"n": 1, "s": {"$meta": "textScore"}}},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            doc! {"_id": 0, "n": 1i64, "s": TWO_THIRDS},
            doc! {"_id": 2, "n": 1i64, "s": 0.75},
            doc! {"_id": 1, "n": 2i64, "s": 0.75},
        ]
    );
    // So does $fill, whose values may read it.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$fill": {"sortBy": {"_id": 1}, "output": {"x": {"value": {"$meta": "textScore"}}}}},
            doc! {"$project": {"x": 1, "s": {"$meta": "textScore"}}},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            doc! {"_id": 0, "x": TWO_THIRDS, "s": TWO_THIRDS},
            doc! {"_id": 1, "x": 0.75, "s": 0.75},
            doc! {"_id": 2, "x": 0.75, "s": 0.75},
        ]
    );
    // $bucket and $bucketAuto are groups: their accumulators read the scores.
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$bucket": {
                "groupBy": "$_id",
                "boundaries": [0, 1, 3],
                "output": {"s": {"$sum": {"$meta": "textScore"}}},
            }},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![doc! {"_id": 0, "s": TWO_THIRDS}, doc! {"_id": 1, "s": 1.5}]
    );
    let got = run(
        &coll,
        vec![
            text("three"),
            doc! {"$bucketAuto": {
                "groupBy": {"$meta": "textScore"},
                "buckets": 1,
                "output": {"n": {"$sum": 1}},
            }},
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![doc! {"_id": {"min": TWO_THIRDS, "max": 0.75}, "n": 3}]
    );
}
