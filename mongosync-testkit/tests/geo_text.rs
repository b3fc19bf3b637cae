//! Geospatial and text search through the official Rust driver: `2dsphere`, `2d` and `text`
//! indexes as `listIndexes` shows them, `$geoWithin`, `$geoIntersects`, `$near`,
//! `$nearSphere`, the `$geoNear` stage, `$text` with its score, and the server's codes.

use bson::{Document, doc};
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
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code,
        ErrorKind::InsertMany(m) => m.write_errors.unwrap()[0].code,
        other => panic!("not a command error: {other:?}"),
    }
}

async fn ids(coll: &Collection<Document>, filter: Document) -> Vec<i32> {
    coll.find(filter)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|d| d.get_i32("_id").unwrap())
        .collect()
}

async fn create_index(coll: &Collection<Document>, spec: Document) -> Result<Document, i32> {
    coll.client()
        .database("db")
        .run_command(doc! {"createIndexes": coll.name(), "indexes": [spec]})
        .await
        .map_err(code)
}

fn point(x: f64, y: f64) -> Document {
    doc! {"type": "Point", "coordinates": [x, y]}
}

/// Great-circle distance in meters on the server's sphere (radius 6378.1 km).
fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
    let (dla, dlo) = ((b.1 - a.1).to_radians(), (b.0 - a.0).to_radians());
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * h.sqrt().asin() * 6_378_100.0
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[tokio::test]
async fn geo_and_text_indexes_are_listed_as_the_server_stores_them() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "idx").await;
    create_index(
        &coll,
        doc! {"key": {"loc": "2dsphere"}, "name": "loc_2dsphere"},
    )
    .await
    .unwrap();
    create_index(
        &coll,
        doc! {"key": {"xy": "2d"}, "name": "xy_2d", "bits": 20, "min": -500, "max": 500},
    )
    .await
    .unwrap();
    create_index(
        &coll,
        doc! {"key": {"title": "text", "body": "text"}, "name": "title_text_body_text", "weights": {"title": 10}},
    )
    .await
    .unwrap();
    let reply = coll
        .client()
        .database("db")
        .run_command(doc! {"listIndexes": "idx"})
        .await
        .unwrap();
    let specs: Vec<Document> = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|b| b.as_document().unwrap().clone())
        .collect();
    let by_name = |n: &str| {
        specs
            .iter()
            .find(|s| s.get_str("name").ok() == Some(n))
            .unwrap()
            .clone()
    };
    let sphere = by_name("loc_2dsphere");
    assert_eq!(sphere.get_i32("2dsphereIndexVersion").ok(), Some(3));
    let flat = by_name("xy_2d");
    assert_eq!(flat.get_i32("bits").ok(), Some(20));
    let text = by_name("title_text_body_text");
    assert_eq!(
        text.get_document("key").unwrap(),
        &doc! {"_fts": "text", "_ftsx": 1}
    );
    assert_eq!(
        text.get_document("weights").unwrap(),
        &doc! {"body": 1, "title": 10}
    );
    assert_eq!(text.get_str("default_language").ok(), Some("english"));
    assert_eq!(text.get_str("language_override").ok(), Some("language"));
    assert_eq!(text.get_i32("textIndexVersion").ok(), Some(3));

    // The listed specification creates the same index (as copy tools send it back).
    let copy = collection(&cluster, "copy").await;
    let mut listed = text.clone();
    listed.remove("v");
    create_index(&copy, listed).await.unwrap();
    let reply = coll
        .client()
        .database("db")
        .run_command(doc! {"listIndexes": "copy"})
        .await
        .unwrap();
    let copied = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()[1]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(copied, text);

    // One text index per collection: another one conflicts (85).
    assert_eq!(
        create_index(&coll, doc! {"key": {"other": "text"}, "name": "other_text"}).await,
        Err(85)
    );
    // Bad options: CannotCreateIndex (67).
    let other = collection(&cluster, "idx2").await;
    for spec in [
        doc! {"key": {"t": "text"}, "name": "t", "weights": {"t": 0}},
        doc! {"key": {"t": "text"}, "name": "t", "default_language": "klingon"},
        doc! {"key": {"p": "2d"}, "name": "p", "bits": 40},
        doc! {"key": {"p": "2d"}, "name": "p", "min": 10, "max": 0},
        doc! {"key": {"p": "2dsphere"}, "name": "p", "2dsphereIndexVersion": 9},
    ] {
        assert_eq!(create_index(&other, spec.clone()).await, Err(67), "{spec}");
    }

    // A 2dsphere index refuses what is not a geometry (16755); a 2d index, points out of
    // its bounds (13027).
    let e = coll
        .insert_one(doc! {"loc": {"type": "Point", "coordinates": [200, 0]}})
        .await
        .unwrap_err();
    assert_eq!(code(e), 16755);
    let e = coll.insert_one(doc! {"loc": "nowhere"}).await.unwrap_err();
    assert_eq!(code(e), 16755);
    let e = coll.insert_one(doc! {"xy": [600, 0]}).await.unwrap_err();
    assert_eq!(code(e), 13027);
    coll.insert_one(doc! {"loc": point(10.0, 10.0), "xy": [400, -400]})
        .await
        .unwrap();
    // Null and missing values are not indexed.
    coll.insert_one(doc! {"loc": null, "title": "x"})
        .await
        .unwrap();
    // A language override the text index does not know: 17262.
    let e = coll
        .insert_one(doc! {"title": "hola", "language": "klingon"})
        .await
        .unwrap_err();
    assert_eq!(code(e), 17262);
    coll.insert_one(doc! {"title": "hola", "language": "spanish"})
        .await
        .unwrap();
}

#[tokio::test]
async fn geo_within_and_intersects() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "places").await;
    coll.insert_many(vec![
        doc! {"_id": 1, "loc": point(0.5, 0.5)},
        doc! {"_id": 2, "loc": point(5.0, 5.0)},
        doc! {"_id": 3, "loc": [0.2, 0.8]},
        doc! {"_id": 4, "loc": {"type": "LineString", "coordinates": [[-1.0, 0.5], [2.0, 0.5]]}},
        doc! {"_id": 5, "loc": {"type": "Polygon", "coordinates": [[[0.1, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.1]]]}},
        doc! {"_id": 6, "loc": "not a place"},
    ])
    .await
    .unwrap();
    let square = doc! {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]]};
    // $geometry: points, the small polygon and the legacy pair inside; the line leaves it.
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$geoWithin": {"$geometry": square.clone()}}}
        )
        .await,
        vec![1, 3, 5]
    );
    // $geoIntersects: the line crosses the square too.
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$geoIntersects": {"$geometry": square.clone()}}}
        )
        .await,
        vec![1, 3, 4, 5]
    );
    // A point inside the small polygon; the same point as a stored one.
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$geoIntersects": {"$geometry": point(0.2, 0.15)}}}
        )
        .await,
        vec![5]
    );
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$geoIntersects": {"$geometry": point(5.0, 5.0)}}}
        )
        .await,
        vec![2]
    );
    // Legacy shapes hold points only.
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$geoWithin": {"$box": [[0, 0], [1, 1]]}}}
        )
        .await,
        vec![1, 3]
    );
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$geoWithin": {"$polygon": [[0, 0], [0.4, 0], [0.4, 1], [0, 1]]}}}
        )
        .await,
        vec![3]
    );
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$geoWithin": {"$center": [[5, 5], 1]}}}
        )
        .await,
        vec![2]
    );
    // $centerSphere: radius in radians; 5 degrees around the origin reaches (0.5, 0.5) and
    // the legacy pair, not (5, 5) (7.07 degrees away).
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$geoWithin": {"$centerSphere": [[0, 0], 5f64.to_radians()]}}}
        )
        .await,
        vec![1, 3, 4, 5]
    );
    // Malformed GeoJSON: BadValue (2).
    for bad in [
        doc! {"$geoWithin": {"$geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}}},
        doc! {"$geoWithin": {"$geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}}},
        doc! {"$geoIntersects": {"$geometry": {"type": "Point", "coordinates": [0, 91]}}},
        doc! {"$geoIntersects": {"$geometry": {"type": "Blob", "coordinates": [0, 1]}}},
        doc! {"$geoWithin": {"$center": [[0, 0], -1]}},
    ] {
        let e = coll.find(doc! {"loc": bad.clone()}).await.unwrap_err();
        assert_eq!(code(e), 2, "{bad}");
    }
}

#[tokio::test]
async fn near_and_near_sphere_sort_by_distance_and_need_an_index() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "near").await;
    coll.insert_many(vec![
        doc! {"_id": 1, "loc": point(3.0, 0.0), "p": [3, 4]},
        doc! {"_id": 2, "loc": point(1.0, 0.0), "p": [0, 6]},
        doc! {"_id": 3, "loc": point(2.0, 0.0), "p": [1, 0]},
    ])
    .await
    .unwrap();
    let near = doc! {"loc": {"$near": {"$geometry": point(0.0, 0.0)}}};
    let e = coll.find(near.clone()).await.unwrap_err();
    assert_eq!(code(e), 291);
    create_index(
        &coll,
        doc! {"key": {"loc": "2dsphere"}, "name": "loc_2dsphere"},
    )
    .await
    .unwrap();
    create_index(&coll, doc! {"key": {"p": "2d"}, "name": "p_2d"})
        .await
        .unwrap();
    assert_eq!(ids(&coll, near).await, vec![2, 3, 1]);
    // A GeoJSON point without `$geometry`, and `$geoNear` as an alias.
    assert_eq!(
        ids(&coll, doc! {"loc": {"$near": point(2.1, 0.0)}}).await,
        vec![3, 1, 2]
    );
    assert_eq!(
        ids(&coll, doc! {"loc": {"$geoNear": point(2.9, 0.0)}}).await,
        vec![1, 3, 2]
    );
    // $maxDistance in meters for GeoJSON: 2.5 degrees of arc.
    let max = haversine((0.0, 0.0), (2.5, 0.0));
    assert_eq!(
        ids(&coll, doc! {"loc": {"$nearSphere": {"$geometry": point(0.0, 0.0), "$maxDistance": max, "$minDistance": 200_000}}}).await,
        vec![3]
    );
    // Legacy $near on a 2d index: flat distances, $maxDistance in coordinate units.
    assert_eq!(
        ids(&coll, doc! {"p": {"$near": [0, 0]}}).await,
        vec![3, 1, 2]
    );
    assert_eq!(
        ids(&coll, doc! {"p": {"$near": [0, 0], "$maxDistance": 5}}).await,
        vec![3, 1]
    );
    // No geospatial sort in a count or a $match stage (5626500).
    let e = coll
        .count_documents(doc! {"p": {"$near": [0, 0]}})
        .await
        .unwrap_err();
    assert_eq!(code(e), 5626500);
    let e = coll
        .aggregate(vec![doc! {"$match": {"loc": {"$nearSphere": [0, 0]}}}])
        .await
        .unwrap_err();
    assert_eq!(code(e), 5626500);
    // $geoWithin counts.
    assert_eq!(
        coll.count_documents(doc! {"p": {"$geoWithin": {"$center": [[0, 0], 5]}}})
            .await
            .unwrap(),
        2
    );
    // Legacy $nearSphere: radians.
    assert_eq!(
        ids(
            &coll,
            doc! {"loc": {"$nearSphere": [0, 0], "$maxDistance": 1.5f64.to_radians()}}
        )
        .await,
        vec![2]
    );
}

#[tokio::test]
async fn geo_near_stage() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "geonear").await;
    // The server's jstests/core/geob.js data.
    coll.insert_many(vec![
        doc! {"_id": 1, "p": [0, 0]},
        doc! {"_id": 2, "p": [1, 0]},
        doc! {"_id": 3, "p": [3, 4]},
        doc! {"_id": 4, "p": [0, 6]},
    ])
    .await
    .unwrap();
    let run = |pipeline: Vec<Document>| {
        let coll = coll.clone();
        async move {
            match coll.aggregate(pipeline).await {
                Ok(c) => Ok(c.try_collect::<Vec<Document>>().await.unwrap()),
                Err(e) => Err(code(e)),
            }
        }
    };
    let stage = doc! {"$geoNear": {"near": [0, 0], "distanceField": "dis"}};
    assert_eq!(run(vec![stage.clone()]).await.unwrap_err(), 27);
    create_index(&coll, doc! {"key": {"p": "2d"}, "name": "p_2d"})
        .await
        .unwrap();
    let out = run(vec![stage.clone()]).await.unwrap();
    let got: Vec<(i32, f64)> = out
        .iter()
        .map(|d| (d.get_i32("_id").unwrap(), d.get_f64("dis").unwrap()))
        .collect();
    assert_eq!(got, vec![(1, 0.0), (2, 1.0), (3, 5.0), (4, 6.0)]);
    let out = run(vec![doc! {"$geoNear": {
        "near": [0, 0], "distanceField": "d.x", "distanceMultiplier": 2.0,
        "maxDistance": 5.5, "query": {"_id": {"$ne": 1}}, "includeLocs": "loc",
    }}])
    .await
    .unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"_id": 2, "p": [1, 0], "d": {"x": 2.0}, "loc": [1, 0]},
            doc! {"_id": 3, "p": [3, 4], "d": {"x": 10.0}, "loc": [3, 4]},
        ]
    );
    // Only as the first stage (40603); no $near inside its query.
    assert_eq!(
        run(vec![doc! {"$match": {}}, stage.clone()])
            .await
            .unwrap_err(),
        40603
    );
    assert_eq!(
        run(vec![doc! {"$geoNear": {"near": [0, 0]}}])
            .await
            .unwrap_err(),
        2
    );
    // Spherical with a GeoJSON point: meters.
    let sphere = collection(&cluster, "geonear2").await;
    sphere
        .insert_many(vec![
            doc! {"_id": 1, "loc": point(1.0, 0.0)},
            doc! {"_id": 2, "loc": point(0.0, 2.0)},
        ])
        .await
        .unwrap();
    create_index(
        &sphere,
        doc! {"key": {"loc": "2dsphere"}, "name": "loc_2dsphere"},
    )
    .await
    .unwrap();
    let out: Vec<Document> = sphere
        .aggregate(vec![
            doc! {"$geoNear": {"near": point(0.0, 0.0), "distanceField": "m", "spherical": true}},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(out[0].get_i32("_id").ok(), Some(1));
    assert!(close(
        out[0].get_f64("m").unwrap(),
        haversine((0.0, 0.0), (1.0, 0.0))
    ));
    assert!(close(
        out[1].get_f64("m").unwrap(),
        haversine((0.0, 0.0), (0.0, 2.0))
    ));
}

#[tokio::test]
async fn text_search_with_scores() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "articles").await;
    coll.insert_many(vec![
        doc! {"_id": 1, "subject": "coffee", "author": "xyz"},
        doc! {"_id": 2, "subject": "Coffee Shopping", "author": "efg"},
        doc! {"_id": 3, "subject": "Baking a cake", "author": "abc"},
        doc! {"_id": 4, "subject": "baking", "author": "xyz"},
        doc! {"_id": 5, "subject": "Café Con Leche", "author": "abc"},
        doc! {"_id": 6, "subject": "cake", "author": "xyz"},
        doc! {"_id": 7, "subject": "coffee and cream", "author": "efg"},
        doc! {"_id": 8, "subject": "Cafe con Leche", "author": "xyz"},
    ])
    .await
    .unwrap();
    let e = coll
        .find(doc! {"$text": {"$search": "coffee"}})
        .await
        .unwrap_err();
    assert_eq!(code(e), 27);
    create_index(
        &coll,
        doc! {"key": {"subject": "text"}, "name": "subject_text"},
    )
    .await
    .unwrap();
    let scored = |filter: Document| {
        let coll = coll.clone();
        async move {
            coll.find(filter)
                .projection(doc! {"score": {"$meta": "textScore"}})
                .sort(doc! {"score": {"$meta": "textScore"}, "_id": 1})
                .await
                .unwrap()
                .try_collect::<Vec<Document>>()
                .await
                .unwrap()
                .iter()
                .map(|d| (d.get_i32("_id").unwrap(), d.get_f64("score").unwrap()))
                .collect::<Vec<_>>()
        }
    };
    // Score: weight x frequency x (0.5 x count / tokens + 0.5), stop words ("and") skipped,
    // terms stemmed ("Shopping" -> "shop").
    assert_eq!(
        scored(doc! {"$text": {"$search": "coffee"}}).await,
        vec![(1, 1.0), (2, 0.75), (7, 0.75)]
    );
    // A whole-field match of the term itself gets a 1.1 boost ("cake" is its own stem).
    assert_eq!(
        scored(doc! {"$text": {"$search": "cake"}}).await,
        vec![(6, 1.1), (3, 0.75)]
    );
    // Any term matches; scores add up.
    assert_eq!(
        scored(doc! {"$text": {"$search": "bake coffee"}}).await,
        vec![(1, 1.0), (4, 1.0), (2, 0.75), (3, 0.75), (7, 0.75)]
    );
    // Negation and phrases.
    assert_eq!(
        ids(&coll, doc! {"$text": {"$search": "coffee -shop"}})
            .await
            .len(),
        2
    );
    assert_eq!(
        ids(&coll, doc! {"$text": {"$search": "\"coffee shop\""}}).await,
        vec![2]
    );
    // Diacritics fold unless $diacriticSensitive; case matters with $caseSensitive.
    let mut both = ids(&coll, doc! {"$text": {"$search": "cafe"}}).await;
    both.sort();
    assert_eq!(both, vec![5, 8]);
    assert_eq!(
        ids(
            &coll,
            doc! {"$text": {"$search": "café", "$diacriticSensitive": true}}
        )
        .await,
        vec![5]
    );
    assert_eq!(
        ids(
            &coll,
            doc! {"$text": {"$search": "Coffee", "$caseSensitive": true}}
        )
        .await,
        vec![2]
    );
    // Bad arguments.
    let e = coll.find(doc! {"$text": {"$search": 1}}).await.unwrap_err();
    assert_eq!(code(e), 14);
    let e = coll
        .find(doc! {"$text": {"$search": "x", "$language": "klingon"}})
        .await
        .unwrap_err();
    assert_eq!(code(e), 2);

    // In an aggregation: first stage only (17313).
    let out: Vec<Document> = coll
        .aggregate(vec![
            doc! {"$match": {"$text": {"$search": "leche"}}},
            doc! {"$sort": {"_id": 1}},
            doc! {"$project": {"_id": 1}},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(out, vec![doc! {"_id": 5}, doc! {"_id": 8}]);
    // A $sort on the score after the $text match orders by it.
    let out: Vec<Document> = coll
        .aggregate(vec![
            doc! {"$match": {"$text": {"$search": "coffee cake"}}},
            doc! {"$sort": {"score": {"$meta": "textScore"}, "_id": -1}},
            doc! {"$project": {"_id": 1}},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            doc! {"_id": 6},
            doc! {"_id": 1},
            doc! {"_id": 7},
            doc! {"_id": 3},
            doc! {"_id": 2}
        ]
    );
    let e = coll
        .aggregate(vec![
            doc! {"$sort": {"_id": 1}},
            doc! {"$match": {"$text": {"$search": "x"}}},
        ])
        .await
        .unwrap_err();
    assert_eq!(code(e), 17313);
    // Weights multiply a field's score; repeats count 1 + 1/2 + ...:
    // title 10 x 1 x 1.0, body 1 x 1.5 x (0.5 x 2/3 + 0.5) = 1.25.
    let weighted = collection(&cluster, "weighted").await;
    weighted
        .insert_one(doc! {"_id": 1, "title": "coffee", "body": "coffee coffee tea"})
        .await
        .unwrap();
    create_index(
        &weighted,
        doc! {"key": {"title": "text", "body": "text"}, "name": "tb", "weights": {"title": 10}},
    )
    .await
    .unwrap();
    let got: Vec<Document> = weighted
        .find(doc! {"$text": {"$search": "coffee"}})
        .projection(doc! {"s": {"$meta": "textScore"}, "title": 1, "_id": 0})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got, vec![doc! {"title": "coffee", "s": 11.25}]);

    // A wildcard text index covers every string.
    let any = collection(&cluster, "wildcard").await;
    any.insert_many(vec![
        doc! {"_id": 1, "a": "red apple"},
        doc! {"_id": 2, "b": {"c": ["green apples", 3]}},
        doc! {"_id": 3, "a": "pear"},
    ])
    .await
    .unwrap();
    create_index(&any, doc! {"key": {"$**": "text"}, "name": "all"})
        .await
        .unwrap();
    assert_eq!(
        ids(&any, doc! {"$text": {"$search": "apple"}}).await.len(),
        2
    );

    // Counts, updates and deletes use the index too.
    assert_eq!(
        coll.count_documents(doc! {"$text": {"$search": "coffee"}})
            .await
            .unwrap(),
        3
    );
    let r = coll
        .update_many(
            doc! {"$text": {"$search": "cake"}},
            doc! {"$set": {"sweet": true}},
        )
        .await
        .unwrap();
    assert_eq!(r.modified_count, 2);
    let r = coll
        .delete_many(doc! {"$text": {"$search": "leche"}})
        .await
        .unwrap();
    assert_eq!(r.deleted_count, 2);
    assert_eq!(ids(&coll, doc! {"sweet": true}).await, vec![3, 6]);
}

#[tokio::test]
async fn text_search_in_each_language() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "multilingual").await;
    coll.insert_many(vec![
        doc! {"_id": 1, "body": "Les éléphants mangent des pommes", "idioma": "french"},
        doc! {"_id": 2, "body": "The quick dogs are running"},
        doc! {"_id": 3, "body": "Los elefantes comen manzanas", "idioma": "es"},
        doc! {"_id": 4, "body": "Die Häuser sind alt", "idioma": "German"},
        doc! {"_id": 5, "body": "running dogs", "idioma": "none"},
        doc! {"_id": 6, "body": "Çocuklar kitapları okuyor", "idioma": "turkish"},
    ])
    .await
    .unwrap();
    create_index(
        &coll,
        doc! {"key": {"body": "text"}, "name": "body_text", "language_override": "idioma"},
    )
    .await
    .unwrap();
    let search = |s: &str, lang: Option<&str>| {
        let mut text = doc! {"$search": s};
        if let Some(l) = lang {
            text.insert("$language", l);
        }
        let coll = coll.clone();
        async move {
            let mut out = ids(&coll, doc! {"$text": text}).await;
            out.sort();
            out
        }
    };
    // German: Snowball stems "Häuser" and "haus" alike; "die" is a German stop word.
    assert_eq!(search("häuser", Some("german")).await, vec![4]);
    assert_eq!(search("HAUS", Some("de")).await, vec![4]);
    assert_eq!(search("die", Some("german")).await, Vec::<i32>::new());
    // Each document was indexed in its own language: the German stop word "die" is not in
    // document 4's index, whatever the query's language.
    assert_eq!(search("die", None).await, Vec::<i32>::new());
    // Spanish: "manzana" and "manzanas" share the stem "manzan".
    assert_eq!(search("manzana", Some("Spanish")).await, vec![3]);
    // English stems "running" to "run" (document 2); "none" keeps words whole (document 5).
    assert_eq!(search("run", None).await, vec![2]);
    assert_eq!(search("running", Some("none")).await, vec![5]);
    // French: "les" and "des" are stop words, so the French document has no such terms.
    assert_eq!(search("les des", Some("none")).await, Vec::<i32>::new());
    assert_eq!(search("pomme", Some("fr")).await, vec![1]);
    // Turkish: Snowball's Turkish stemmer removes the plural and case suffixes
    // ("kitapları" -> "kitap", "çocuklar" -> "çocuk"), then the diacritics go.
    assert_eq!(search("kitap", Some("tr")).await, vec![6]);
    assert_eq!(search("KİTAPLAR", Some("turkish")).await, vec![6]);
    assert_eq!(search("çocuk", Some("turkish")).await, vec![6]);
    // Unstemmed, the word is not among the document's terms.
    assert_eq!(search("kitapları", Some("none")).await, Vec::<i32>::new());
    // An unsupported $language is BadValue.
    let e = coll
        .find(doc! {"$text": {"$search": "x", "$language": "latin"}})
        .await
        .unwrap_err();
    assert_eq!(code(e), 2);
}

#[tokio::test]
async fn big_polygons_with_strict_winding() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster, "places").await;
    coll.insert_many(vec![
        doc! {"_id": 1, "loc": point(0.0, 0.0)},
        doc! {"_id": 2, "loc": point(100.0, 0.0)},
        doc! {"_id": 3, "loc": point(0.0, 80.0)},
        doc! {"_id": 4, "loc": point(-170.0, -45.0)},
        doc! {"_id": 5, "loc": {"type": "LineString", "coordinates": [[-20.0, 1.0], [20.0, 1.0]]}},
    ])
    .await
    .unwrap();
    create_index(
        &coll,
        doc! {"key": {"loc": "2dsphere"}, "name": "loc_2dsphere"},
    )
    .await
    .unwrap();
    let crs =
        doc! {"type": "name", "properties": {"name": "urn:x-mongodb:crs:strictwinding:EPSG:4326"}};
    let square = |clockwise: bool| {
        let mut ring = vec![
            bson::bson!([-10.0, -10.0]),
            bson::bson!([10.0, -10.0]),
            bson::bson!([10.0, 10.0]),
            bson::bson!([-10.0, 10.0]),
        ];
        if clockwise {
            ring.reverse();
        }
        ring.push(ring[0].clone());
        doc! {"type": "Polygon", "coordinates": [ring], "crs": crs.clone()}
    };
    let sorted = |filter: Document| {
        let coll = coll.clone();
        async move {
            let mut out = ids(&coll, filter).await;
            out.sort();
            out
        }
    };
    // Counter-clockwise: the square itself. Clockwise: the rest of the globe.
    assert_eq!(
        sorted(doc! {"loc": {"$geoWithin": {"$geometry": square(false)}}}).await,
        vec![1]
    );
    assert_eq!(
        sorted(doc! {"loc": {"$geoWithin": {"$geometry": square(true)}}}).await,
        vec![2, 3, 4]
    );
    // The line crosses the square's edge: it intersects both, is within neither.
    assert_eq!(
        sorted(doc! {"loc": {"$geoIntersects": {"$geometry": square(true)}}}).await,
        vec![2, 3, 4, 5]
    );
    assert_eq!(
        sorted(doc! {"loc": {"$geoIntersects": {"$geometry": square(false)}}}).await,
        vec![1, 5]
    );
    // The server's rules: a polygon only, one loop, a known CRS (BadValue).
    for geometry in [
        doc! {"type": "Point", "coordinates": [0.0, 0.0], "crs": crs.clone()},
        doc! {"type": "Polygon", "crs": crs.clone(), "coordinates": [
            [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 0.0]],
            [[1.0, 1.0], [2.0, 1.0], [2.0, 2.0], [1.0, 1.0]]
        ]},
        doc! {"type": "Polygon", "crs": {"type": "name", "properties": {"name": "EPSG:3857"}},
        "coordinates": [[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 0.0]]]},
    ] {
        let e = coll
            .find(doc! {"loc": {"$geoIntersects": {"$geometry": geometry}}})
            .await
            .unwrap_err();
        assert_eq!(code(e), 2);
    }
}
