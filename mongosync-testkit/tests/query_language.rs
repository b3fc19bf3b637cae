//! The aggregation language through the official Rust driver: time zones, the date, regex,
//! bitwise and quantile operators, and 8.x's error codes, as a client sees them.

use bson::{Bson, DateTime, Document, doc};
use futures::TryStreamExt;
use mongodb::{Client, Collection, error::ErrorKind};
use mongosync_testkit::MemoryCluster;

async fn collection(cluster: &MemoryCluster) -> Collection<Document> {
    let client = Client::with_uri_str(cluster.uri())
        .await
        .expect("valid uri");
    client.database("db").collection("c")
}

fn date(s: &str) -> DateTime {
    DateTime::parse_rfc3339_str(s).unwrap()
}

/// The server error code of a failed command.
fn code(e: mongodb::error::Error) -> i32 {
    match *e.kind {
        ErrorKind::Command(c) => c.code,
        other => panic!("not a command error: {other:?}"),
    }
}

#[tokio::test]
async fn date_operators_in_time_zones() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster).await;
    coll.insert_many(vec![
        doc! {"_id": 1, "t": date("2021-03-20T11:30:05Z"), "s": "a1b22", "v": [10, 1, 3]},
        doc! {"_id": 2, "t": date("2021-11-07T05:30:00Z"), "s": "", "v": []},
    ])
    .await
    .unwrap();
    let out: Vec<Document> = coll
        .aggregate(vec![
            doc! {"$sort": {"_id": 1}},
            doc! {"$project": {
                "day": {"$dateTrunc": {"date": "$t", "unit": "day", "timezone": "America/New_York"}},
                "hour": {"$hour": {"date": "$t", "timezone": "Europe/Paris"}},
                "local": {"$dateToString": {"date": "$t", "format": "%H:%M %z", "timezone": "+05:30"}},
                "days": {"$dateDiff": {"startDate": date("2021-01-01T00:00:00Z"), "endDate": "$t", "unit": "day"}},
                "parts": {"$dateToParts": {"date": "$t", "timezone": "Asia/Tokyo"}},
                "digits": {"$regexFindAll": {"input": "$s", "regex": "[0-9]+"}},
                "median": {"$median": {"input": "$v", "method": "approximate"}},
                "bits": {"$bitAnd": [12, 10]},
            }},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    // 2021-03-20: New York on EDT (-4), Paris on CET (+1).
    assert_eq!(
        out[0].get_datetime("day").unwrap(),
        &date("2021-03-20T04:00:00Z")
    );
    assert_eq!(out[0].get_i32("hour").unwrap(), 12);
    assert_eq!(out[0].get_str("local").unwrap(), "17:00 +0530");
    assert_eq!(out[0].get_i64("days").unwrap(), 78);
    let parts = out[0].get_document("parts").unwrap();
    assert_eq!(
        (
            parts.get_i32("day").unwrap(),
            parts.get_i32("hour").unwrap()
        ),
        (20, 20)
    );
    let digits: Vec<&str> = out[0]
        .get_array("digits")
        .unwrap()
        .iter()
        .map(|m| m.as_document().unwrap().get_str("match").unwrap())
        .collect();
    assert_eq!(digits, ["1", "22"]);
    assert_eq!(out[0].get_f64("median").unwrap(), 3.0);
    assert_eq!(out[0].get_i32("bits").unwrap(), 8);
    // 2021-11-07T05:30Z is 01:30 EDT, the hour before New York falls back: still the 7th.
    assert_eq!(
        out[1].get_datetime("day").unwrap(),
        &date("2021-11-07T04:00:00Z")
    );
    assert_eq!(out[1].get("median"), Some(&Bson::Null));
    assert_eq!(out[1].get_array("digits").unwrap().len(), 0);
    cluster.shutdown().await;
}

#[tokio::test]
async fn argument_errors_carry_the_servers_codes() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster).await;
    coll.insert_one(doc! {"_id": 1, "t": date("2021-03-20T11:30:05Z")})
        .await
        .unwrap();
    let failing = |stage: Document| {
        let coll = coll.clone();
        async move { code(coll.aggregate(vec![stage]).await.unwrap_err()) }
    };
    assert_eq!(
        failing(doc! {"$project": {"h": {"$hour": {"date": "$t", "timezone": "Mars/Base"}}}}).await,
        40485
    );
    assert_eq!(
        failing(doc! {"$project": {"h": {"$hour": {"date": "$t", "timezone": 1}}}}).await,
        40517
    );
    assert_eq!(failing(doc! {"$skip": -1}).await, 5107200);
    assert_eq!(failing(doc! {"$limit": 1.5}).await, 5107201);
    assert_eq!(failing(doc! {"$project": {"x": {"$asin": 2}}}).await, 50989);
    assert_eq!(
        failing(
            doc! {"$project": {"x": {"$dateTrunc": {"date": "$t", "unit": "day", "binSize": 0}}}}
        )
        .await,
        5439018
    );
    cluster.shutdown().await;
}

fn dec(s: &str) -> Bson {
    Bson::Decimal128(s.parse().unwrap())
}

#[tokio::test]
async fn decimal_precision_and_window_fields() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster).await;
    coll.insert_many(vec![
        doc! {"_id": 1, "g": "a", "t": 1, "price": dec("0.1")},
        doc! {"_id": 2, "g": "a", "t": 2, "price": dec("0.2")},
        doc! {"_id": 3, "g": "b", "t": 1, "price": dec("2")},
        doc! {"_id": 4, "g": "a", "t": 3, "price": dec("0.3")},
    ])
    .await
    .unwrap();
    let out: Vec<Document> = coll
        .aggregate(vec![
            doc! {"$setWindowFields": {
                "partitionBy": "$g",
                "sortBy": {"t": 1},
                "output": {
                    "running": {"$sum": "$price", "window": {"documents": ["unbounded", "current"]}},
                    "rank": {"$rank": {}},
                    "prev": {"$shift": {"output": "$price", "by": -1}},
                }
            }},
            doc! {"$set": {
                "root": {"$sqrt": "$price"},
                "third": {"$divide": ["$price", 3]},
                "cents": {"$round": ["$price", 2]},
            }},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<i32> = out.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 4, 3]);
    // Decimal sums are exact: 0.1 + 0.2 + 0.3 is 0.6, not 0.6000000000000001.
    let running: Vec<&Bson> = out.iter().map(|d| d.get("running").unwrap()).collect();
    assert_eq!(
        running,
        vec![&dec("0.1"), &dec("0.3"), &dec("0.6"), &dec("2")]
    );
    assert_eq!(
        out[3].get("root"),
        Some(&dec("1.414213562373095048801688724209698"))
    );
    assert_eq!(
        out[0].get("third"),
        Some(&dec("0.03333333333333333333333333333333333"))
    );
    assert_eq!(out[1].get("cents"), Some(&dec("0.20")));
    assert_eq!(out[2].get("rank"), Some(&Bson::Int64(3)));
    assert_eq!(out[0].get("prev"), Some(&Bson::Null));
    assert_eq!(out[2].get("prev"), Some(&dec("0.2")));

    // A misspelt window function fails as on the server.
    let e = coll
        .aggregate(vec![
            doc! {"$setWindowFields": {"output": {"x": {"$summ": 1}}}},
        ])
        .await
        .unwrap_err();
    assert_eq!(code(e), 9);
}

#[tokio::test]
async fn regexes_are_pcre2() {
    let cluster = MemoryCluster::start().await.unwrap();
    let coll = collection(&cluster).await;
    coll.insert_many(vec![
        doc! {"_id": 1, "s": "price: €42"},
        doc! {"_id": 2, "s": "abab"},
        doc! {"_id": 3, "s": "Ünïcode wörds"},
        doc! {"_id": 4, "s": "line one\nline two\n"},
    ])
    .await
    .unwrap();
    let ids = |filter: Document| {
        let coll = coll.clone();
        async move {
            let docs: Vec<Document> = coll
                .find(filter)
                .sort(doc! {"_id": 1})
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            docs.iter()
                .map(|d| d.get_i32("_id").unwrap())
                .collect::<Vec<_>>()
        }
    };
    // Lookbehind, backreferences, Unicode properties, possessive quantifiers, `$` before a
    // final newline, multiline and extended options: PCRE2's dialect.
    assert_eq!(ids(doc! {"s": {"$regex": r"(?<=€)\d+"}}).await, vec![1]);
    assert_eq!(ids(doc! {"s": {"$regex": r"^(\w\w)\1$"}}).await, vec![2]);
    assert_eq!(
        ids(doc! {"s": {"$regex": r"^\p{Lu}\p{L}+ "}}).await,
        vec![3]
    );
    assert_eq!(
        ids(doc! {"s": {"$regex": "^(ab)++ab$"}}).await,
        Vec::<i32>::new()
    );
    assert_eq!(ids(doc! {"s": {"$regex": "two$"}}).await, vec![4]);
    assert_eq!(
        ids(doc! {"s": {"$regex": "^line two", "$options": "m"}}).await,
        vec![4]
    );
    assert_eq!(
        ids(doc! {"s": {"$regex": "^ a b a b # comment", "$options": "x"}}).await,
        vec![2]
    );
    assert_eq!(
        ids(doc! {"s": {"$in": [bson::Regex { pattern: "^ÜNÏ".try_into().unwrap(), options: "i".try_into().unwrap() }]}})
            .await,
        vec![3]
    );
    // The server's codes: a bad pattern 51091, a bad flag 51108, a null byte BadValue.
    let err = |filter: Document| {
        let coll = coll.clone();
        async move { code(coll.find(filter).await.unwrap_err()) }
    };
    assert_eq!(err(doc! {"s": {"$regex": "(a"}}).await, 51091);
    assert_eq!(
        err(doc! {"s": {"$regex": "a", "$options": "g"}}).await,
        51108
    );
    assert_eq!(err(doc! {"s": {"$regex": "a\u{0}b"}}).await, 2);
    // The expressions: code-point offsets, null for a group that took no part, (*UCP).
    let out: Vec<Document> = coll
        .aggregate(vec![
            doc! {"$match": {"_id": 3}},
            doc! {"$project": {
                "_id": 0,
                "find": {"$regexFind": {"input": "$s", "regex": r"(w)(x)?ö(\w+)"}},
                "ucp": {"$regexFindAll": {"input": "$s", "regex": r"(*UCP)\b\w+\b"}},
            }},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![doc! {
            "find": {"match": "wörds", "idx": 8, "captures": ["w", null, "rds"]},
            "ucp": [
                {"match": "Ünïcode", "idx": 0, "captures": []},
                {"match": "wörds", "idx": 8, "captures": []}
            ],
        }]
    );
    let e = coll
        .aggregate(vec![
            doc! {"$project": {"m": {"$regexMatch": {"input": "$s", "regex": "[a"}}}},
        ])
        .await
        .unwrap_err();
    assert_eq!(code(e), 51111);
    // A constant regex is compiled when the pipeline is parsed: over no documents too.
    let empty = coll.client().database("db").collection::<Document>("empty");
    let e = empty
        .aggregate(vec![
            doc! {"$project": {"m": {"$regexFind": {"input": "$s", "regex": "a", "options": "z"}}}},
        ])
        .await
        .unwrap_err();
    assert_eq!(code(e), 51108);
}
