//! Collection and index commands as an 8.2 replica set answers them (`create` and `collMod`
//! option checks, their replies and listings) and the `local.oplog.rs` a member shows, with
//! the official Rust driver.

use bson::{Bson, Document, Timestamp, doc};
use futures::TryStreamExt;
use mongodb::error::{Error, ErrorKind};
use mongodb::{Client, Database};
use mongosync_testkit::MemoryCluster;

async fn client(cluster: &MemoryCluster) -> Client {
    Client::with_uri_str(cluster.uri()).await.unwrap()
}

/// The code and message of a command error.
fn failure(e: Error) -> (i32, String) {
    match *e.kind {
        ErrorKind::Command(c) => (c.code, c.message),
        other => panic!("not a command error: {other:?}"),
    }
}

async fn code_of(db: &Database, cmd: Document) -> i32 {
    failure(db.run_command(cmd).await.expect_err("must fail")).0
}

async fn options_of(db: &Database, name: &str) -> Document {
    let reply = db
        .run_command(doc! {"listCollections": 1, "filter": {"name": name}})
        .await
        .unwrap();
    let batch = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    batch[0]
        .as_document()
        .unwrap()
        .get_document("options")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn create_is_idempotent_with_identical_options_and_lists_capped_sizes_as_the_server() {
    let cluster = MemoryCluster::start().await.unwrap();
    let db = client(&cluster).await.database("app");
    let create = doc! {"create": "c", "capped": true, "size": 1000, "max": 10};
    db.run_command(create.clone()).await.unwrap();
    // The same options again: a no-op, as on the server.
    db.run_command(create).await.unwrap();
    let options = options_of(&db, "c").await;
    // Rounded up to a multiple of 256, written as an int32 below 2^30.
    assert_eq!(options.get("size"), Some(&Bson::Int32(1024)));
    assert_eq!(options.get("max"), Some(&Bson::Int32(10)));
    let (code, message) = failure(
        db.run_command(doc! {"create": "c", "capped": true, "size": 4096})
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 48);
    assert!(
        message.starts_with("namespace app.c already exists, but with different options"),
        "{message}"
    );
    db.run_command(doc! {"create": "big", "capped": true, "size": Bson::Int64(3 << 30)})
        .await
        .unwrap();
    assert_eq!(
        options_of(&db, "big").await.get("size"),
        Some(&Bson::Int64(3 << 30))
    );
    db.run_command(doc! {"create": "plain"}).await.unwrap();
    db.run_command(doc! {"create": "plain"}).await.unwrap();
}

#[tokio::test]
async fn create_checks_each_option_with_the_servers_codes() {
    let cluster = MemoryCluster::start().await.unwrap();
    let db = client(&cluster).await.database("app");
    let cases: Vec<(Document, i32)> = vec![
        (doc! {"create": "a", "capped": true, "size": "big"}, 14),
        (
            doc! {"create": "a", "capped": true, "size": 4096, "max": Bson::Int64(1 << 31)},
            2,
        ),
        (doc! {"create": "a", "storageEngine": 1}, 14),
        (doc! {"create": "a", "storageEngine": {"wiredTiger": 1}}, 2),
        (doc! {"create": "a", "idIndex": 1}, 14),
        (
            doc! {"create": "a", "idIndex": {"key": {"a": 1}, "name": "_id_"}},
            2,
        ),
        (
            doc! {"create": "a", "idIndex": {"key": {"_id": 1}, "name": "id"}},
            2,
        ),
        (
            doc! {"create": "a", "idIndex": {"key": {"_id": 1}, "name": "_id_", "unique": true}},
            197,
        ),
        (doc! {"create": "a", "timeseries": {"timeField": "t.x"}}, 2),
        (
            doc! {"create": "a", "timeseries": {"timeField": "t\u{0}x"}},
            2,
        ),
        (doc! {"create": "a", "timeseries": {"timeField": 1}}, 14),
        (
            doc! {"create": "a", "timeseries": {"timeField": "t", "metaField": 1}},
            14,
        ),
        (
            doc! {"create": "a", "timeseries": {"timeField": "t", "metaField": "t"}},
            72,
        ),
        (
            doc! {"create": "a", "timeseries": {"timeField": "t", "granularity": "days"}},
            2,
        ),
        (
            doc! {"create": "a", "timeseries": {"timeField": "t", "bucketMaxSpanSeconds": 60}},
            72,
        ),
        (
            doc! {"create": "a", "timeseries": {"timeField": "t", "granularity": "hours", "bucketMaxSpanSeconds": 60, "bucketRoundingSeconds": 60}},
            72,
        ),
        (
            doc! {"create": "a", "timeseries": {"timeField": "t", "other": 1}},
            40415,
        ),
        (
            doc! {"create": "a", "timeseries": {"metaField": "m"}},
            40414,
        ),
        (doc! {"create": "a", "encryptedFields": {}}, 40414),
        (doc! {"create": "a", "encryptedFields": 1}, 14),
        (
            doc! {"create": "a", "clusteredIndex": {"key": {"_id": 1}, "unique": true}, "expireAfterSeconds": -1},
            72,
        ),
        (
            doc! {"create": "a", "clusteredIndex": {"key": {"_id": 1}, "unique": true}, "expireAfterSeconds": "x"},
            14,
        ),
        (
            doc! {"create": "a", "clusteredIndex": {"key": {"_id": 1}, "unique": true}, "idIndex": {"key": {"_id": 1}, "name": "_id_"}},
            72,
        ),
        (doc! {"create": "a", "validationLevel": "sometimes"}, 2),
        (doc! {"create": "a", "validationAction": "ignore"}, 2),
    ];
    for (cmd, expected) in cases {
        assert_eq!(code_of(&db, cmd.clone()).await, expected, "{cmd}");
    }
    // A view may not write.
    for stage in ["$out", "$merge"] {
        let (code, message) = failure(
            db.run_command(doc! {"create": "v", "viewOn": "c", "pipeline": [{stage: "other"}]})
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 157);
        assert_eq!(
            message,
            format!(
                "The aggregation stage {stage} in location 0 of the pipeline cannot be used in the view definition of app.v because it writes to disk"
            )
        );
    }
    // Nothing was created by the refused commands.
    let names = db.list_collection_names().await.unwrap();
    assert!(names.is_empty(), "{names:?}");
    // The options that are valid are listed with their defaults and the server's types.
    db.run_command(doc! {"create": "ts", "timeseries": {"timeField": "t", "metaField": "m", "bucketMaxSpanSeconds": 600, "bucketRoundingSeconds": 600}})
        .await
        .unwrap();
    let ts = options_of(&db, "ts").await;
    let ts = ts.get_document("timeseries").unwrap();
    assert_eq!(ts.get_str("timeField").unwrap(), "t");
    assert!(!ts.contains_key("granularity"), "{ts}");
    db.run_command(doc! {"create": "ttl", "clusteredIndex": {"key": {"_id": 1}, "unique": true}, "expireAfterSeconds": 60})
        .await
        .unwrap();
    assert_eq!(
        options_of(&db, "ttl").await.get("expireAfterSeconds"),
        Some(&Bson::Int64(60))
    );
    // A listed spec replays: a granularity with its default bucketing.
    db.run_command(doc! {"create": "tm", "timeseries": {"timeField": "t", "granularity": "minutes", "bucketMaxSpanSeconds": 86_400}})
        .await
        .unwrap();
    let listed = options_of(&db, "tm").await;
    db.run_command(
        doc! {"create": "tm", "timeseries": listed.get_document("timeseries").unwrap().clone()},
    )
    .await
    .unwrap();
    db.run_command(doc! {"create": "e", "storageEngine": {"wiredTiger": {}}, "idIndex": {"key": {"_id": 1}, "name": "_id_", "v": 2}})
        .await
        .unwrap();
}

#[tokio::test]
async fn coll_mod_replies_as_the_server_and_checks_its_options() {
    let cluster = MemoryCluster::start().await.unwrap();
    let db = client(&cluster).await.database("app");
    let c = db.collection::<Document>("c");
    c.insert_many(vec![
        doc! {"_id": 1, "t": 1, "k": 1},
        doc! {"_id": 2, "t": 2, "k": 1},
    ])
    .await
    .unwrap();
    db.run_command(doc! {"createIndexes": "c", "indexes": [
        {"key": {"t": 1}, "name": "t_1", "expireAfterSeconds": 100},
        {"key": {"k": 1}, "name": "k_1"},
    ]})
    .await
    .unwrap();
    // expireAfterSeconds: old and new as int64.
    let reply = db
        .run_command(doc! {"collMod": "c", "index": {"name": "t_1", "expireAfterSeconds": 200}})
        .await
        .unwrap();
    assert_eq!(reply.get("expireAfterSeconds_old"), Some(&Bson::Int64(100)));
    assert_eq!(reply.get("expireAfterSeconds_new"), Some(&Bson::Int64(200)));
    // The same value again: a no-op without the fields.
    let reply = db
        .run_command(doc! {"collMod": "c", "index": {"name": "t_1", "expireAfterSeconds": 200.0}})
        .await
        .unwrap();
    assert!(!reply.contains_key("expireAfterSeconds_old"), "{reply}");
    assert!(!reply.contains_key("expireAfterSeconds_new"), "{reply}");
    // hidden given as a number, replied as bools; hiding a hidden index is a no-op.
    let reply = db
        .run_command(doc! {"collMod": "c", "index": {"name": "k_1", "hidden": 1}})
        .await
        .unwrap();
    assert_eq!(reply.get("hidden_old"), Some(&Bson::Boolean(false)));
    assert_eq!(reply.get("hidden_new"), Some(&Bson::Boolean(true)));
    let reply = db
        .run_command(doc! {"collMod": "c", "index": {"name": "k_1", "hidden": true}})
        .await
        .unwrap();
    assert!(!reply.contains_key("hidden_old"), "{reply}");
    let listed: Vec<Document> = c
        .list_indexes()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|m| bson::serialize_to_document(&m).unwrap())
        .collect();
    let k = listed
        .iter()
        .find(|i| i.get_str("name").ok() == Some("k_1"))
        .unwrap();
    assert_eq!(k.get("hidden"), Some(&Bson::Boolean(true)));
    let cases: Vec<(Document, i32)> = vec![
        (
            doc! {"collMod": "c", "index": {"name": "_id_", "hidden": true}},
            2,
        ),
        (
            doc! {"collMod": "c", "index": {"name": "k_1", "hidden": "yes"}},
            14,
        ),
        (
            doc! {"collMod": "c", "index": {"name": "t_1", "expireAfterSeconds": -5}},
            72,
        ),
        (
            doc! {"collMod": "c", "index": {"name": "t_1", "expireAfterSeconds": Bson::Int64(1 << 31)}},
            72,
        ),
        (
            doc! {"createIndexes": "c", "indexes": [{"key": {"u": 1}, "name": "u_1", "unique": 1, "prepareUnique": 1}]},
            72,
        ),
        (doc! {"collMod": "c", "index": 1}, 14),
        (doc! {"collMod": "c", "cappedSize": 4096}, 72),
        (doc! {"collMod": "c", "expireAfterSeconds": 10}, 72),
        (
            doc! {"collMod": "c", "dryRun": true, "validationLevel": "off"},
            72,
        ),
        (
            doc! {"collMod": "c", "index": {"name": "k_1", "unique": true}, "dryRun": true},
            359,
        ),
    ];
    for (cmd, expected) in cases {
        assert_eq!(code_of(&db, cmd.clone()).await, expected, "{cmd}");
    }
    // dryRun with no duplicates answers ok and changes nothing.
    c.delete_one(doc! {"_id": 2}).await.unwrap();
    db.run_command(doc! {"collMod": "c", "index": {"name": "k_1", "unique": true}, "dryRun": true})
        .await
        .unwrap();
    let listed = db.run_command(doc! {"listIndexes": "c"}).await.unwrap();
    let batch = listed
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert!(
        batch
            .iter()
            .all(|i| !i.as_document().unwrap().contains_key("unique")),
        "{batch:?}"
    );
    // Capped sizes: rounded up to 256 and listed as the server types them.
    db.run_command(doc! {"create": "capped", "capped": true, "size": 4096})
        .await
        .unwrap();
    db.run_command(doc! {"collMod": "capped", "cappedSize": 5000, "cappedMax": 7})
        .await
        .unwrap();
    let options = options_of(&db, "capped").await;
    assert_eq!(options.get("size"), Some(&Bson::Int32(5120)));
    assert_eq!(options.get("max"), Some(&Bson::Int32(7)));
    // A clustered collection's TTL turns off with "off".
    db.run_command(doc! {"create": "clustered", "clusteredIndex": {"key": {"_id": 1}, "unique": true}, "expireAfterSeconds": 5})
        .await
        .unwrap();
    db.run_command(doc! {"collMod": "clustered", "expireAfterSeconds": "off"})
        .await
        .unwrap();
    assert!(
        !options_of(&db, "clustered")
            .await
            .contains_key("expireAfterSeconds")
    );
    // A view's new pipeline may not write either.
    db.run_command(doc! {"create": "v", "viewOn": "c", "pipeline": []})
        .await
        .unwrap();
    assert_eq!(
        code_of(
            &db,
            doc! {"collMod": "v", "viewOn": "c", "pipeline": [{"$out": "x"}]}
        )
        .await,
        157
    );
}

/// The documents of a `find` on `local.oplog.rs`.
async fn oplog(client: &Client, cmd: Document) -> Vec<Document> {
    let reply = client.database("local").run_command(cmd).await.unwrap();
    reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn local_oplog_rs_is_listed_and_readable_in_the_servers_shape() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let names = client
        .database("local")
        .list_collection_names()
        .await
        .unwrap();
    assert!(names.contains(&"oplog.rs".to_string()), "{names:?}");
    let options = options_of(&client.database("local"), "oplog.rs").await;
    assert_eq!(options.get_bool("capped").ok(), Some(true));

    let c = client.database("app").collection::<Document>("c");
    c.insert_one(doc! {"_id": 1, "a": 1}).await.unwrap();
    c.update_one(doc! {"_id": 1}, doc! {"$set": {"a": 2}})
        .await
        .unwrap();
    c.delete_one(doc! {"_id": 1}).await.unwrap();

    // The newest entry: the delete, in the server's entry shape.
    let newest = oplog(
        &client,
        doc! {"find": "oplog.rs", "sort": {"$natural": -1}, "limit": 1},
    )
    .await;
    assert_eq!(newest.len(), 1);
    let delete = &newest[0];
    assert_eq!(delete.get_str("op").ok(), Some("d"));
    assert_eq!(delete.get_str("ns").ok(), Some("app.c"));
    assert_eq!(delete.get_document("o").ok(), Some(&doc! {"_id": 1}));
    assert!(matches!(delete.get("ui"), Some(Bson::Binary(_))));
    assert!(matches!(delete.get("ts"), Some(Bson::Timestamp(_))));
    assert_eq!(delete.get("t"), Some(&Bson::Int64(1)));
    assert_eq!(delete.get("v"), Some(&Bson::Int64(2)));
    assert!(matches!(delete.get("wall"), Some(Bson::DateTime(_))));
    let keys: Vec<&str> = delete.keys().map(String::as_str).collect();
    assert_eq!(keys, ["op", "ns", "ui", "o", "ts", "t", "v", "wall"]);

    // The oldest entry comes first in natural order, and is not newer than the newest.
    let oldest = oplog(&client, doc! {"find": "oplog.rs", "limit": 1}).await;
    let ts = |d: &Document| match d.get("ts") {
        Some(Bson::Timestamp(t)) => (t.time, t.increment),
        other => panic!("{other:?}"),
    };
    assert!(ts(&oldest[0]) <= ts(delete));

    // The entries of the collection, from the insert on, with a `ts` filter.
    let ours = oplog(
        &client,
        doc! {"find": "oplog.rs", "filter": {"ns": "app.c", "op": {"$in": ["i", "u", "d"]}}},
    )
    .await;
    let ops: Vec<&str> = ours.iter().map(|d| d.get_str("op").unwrap()).collect();
    assert_eq!(ops, ["i", "u", "d"]);
    assert_eq!(
        ours[0].get_document("o").ok(),
        Some(&doc! {"_id": 1, "a": 1})
    );
    assert_eq!(ours[1].get_document("o2").ok(), Some(&doc! {"_id": 1}));
    assert_eq!(
        ours[1].get_document("o").ok(),
        Some(&doc! {"$v": 2, "diff": {"u": {"a": 2}}})
    );
    let Some(Bson::Timestamp(update_ts)) = ours[1].get("ts").cloned() else {
        panic!()
    };
    let after: Vec<Document> = oplog(
        &client,
        doc! {"find": "oplog.rs", "filter": {"ts": {"$gte": update_ts}, "ns": "app.c"}},
    )
    .await;
    let ops: Vec<&str> = after.iter().map(|d| d.get_str("op").unwrap()).collect();
    assert_eq!(ops, ["u", "d"]);
    let later: Vec<Document> = oplog(&client, doc! {"find": "oplog.rs", "filter": {"ts": {"$gt": Timestamp {time: u32::MAX, increment: 0}}}}).await;
    assert!(later.is_empty());
    // A projection and a descending `ts` sort.
    let projected = oplog(&client, doc! {"find": "oplog.rs", "filter": {"ns": "app.c"}, "sort": {"ts": -1}, "projection": {"op": 1, "_id": 0}}).await;
    assert_eq!(projected[0], doc! {"op": "d"});
    // `count` agrees with `find`.
    let counted = client
        .database("local")
        .run_command(doc! {"count": "oplog.rs", "query": {"ns": "app.c"}})
        .await
        .unwrap();
    assert_eq!(counted.get("n"), Some(&Bson::Int32(3)));
    let all = client
        .database("local")
        .run_command(doc! {"count": "oplog.rs"})
        .await
        .unwrap();
    let everything = oplog(&client, doc! {"find": "oplog.rs", "batchSize": 100_000}).await;
    assert_eq!(all.get("n"), Some(&Bson::Int32(everything.len() as i32)));
    // An aggregation reads the same documents.
    let mut cursor = client
        .database("local")
        .collection::<Document>("oplog.rs")
        .aggregate([
            doc! {"$match": {"ns": "app.c"}},
            doc! {"$group": {"_id": "$op", "n": {"$sum": 1}}},
            doc! {"$sort": {"_id": 1}},
        ])
        .await
        .unwrap();
    let mut groups = Vec::new();
    while let Some(d) = cursor.try_next().await.unwrap() {
        groups.push(d);
    }
    assert_eq!(
        groups,
        [
            doc! {"_id": "d", "n": 1},
            doc! {"_id": "i", "n": 1},
            doc! {"_id": "u", "n": 1}
        ]
    );
    // DDL entries are commands on `<db>.$cmd`.
    client
        .database("app")
        .run_command(doc! {"create": "d"})
        .await
        .unwrap();
    let create = oplog(
        &client,
        doc! {"find": "oplog.rs", "filter": {"o.create": "d"}},
    )
    .await;
    assert_eq!(create.len(), 1);
    assert_eq!(create[0].get_str("ns").ok(), Some("app.$cmd"));
    assert_eq!(create[0].get_str("op").ok(), Some("c"));
}

#[tokio::test]
async fn rename_and_collection_uuid_arguments_are_checked_as_the_server() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("app");
    let admin = client.database("admin");
    db.collection::<Document>("a")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    db.collection::<Document>("b")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let rename = |from: &str, to: &str| doc! {"renameCollection": from, "to": to};
    let cases: Vec<(Document, i32, &str)> = vec![
        (rename("app", "app.x"), 73, "Invalid source namespace: app"),
        (
            rename("app.a", "app."),
            73,
            "Invalid target namespace: app.",
        ),
        (
            rename("app.a", "a$b.c"),
            73,
            "Invalid target namespace: a$b.c",
        ),
        (
            rename("app.a", "app.a"),
            20,
            "Can't rename a collection to itself",
        ),
        (
            rename("app.none", "app.x"),
            26,
            "Source collection app.none does not exist",
        ),
        (rename("app.a", "app.b"), 48, "target namespace exists"),
    ];
    for (cmd, code, message) in cases {
        let (c, m) = failure(admin.run_command(cmd.clone()).await.unwrap_err());
        assert_eq!((c, m.as_str()), (code, message), "{cmd}");
    }
    // collectionUUID: the namespace must be the collection of that UUID.
    let uuid_of = |name: &'static str| {
        let db = db.clone();
        async move {
            let reply = db
                .run_command(doc! {"listCollections": 1, "filter": {"name": name}})
                .await
                .unwrap();
            let entry = reply
                .get_document("cursor")
                .unwrap()
                .get_array("firstBatch")
                .unwrap()[0]
                .as_document()
                .unwrap()
                .clone();
            entry
                .get_document("info")
                .unwrap()
                .get("uuid")
                .unwrap()
                .clone()
        }
    };
    let (ua, ub) = (uuid_of("a").await, uuid_of("b").await);
    db.run_command(doc! {"listIndexes": "a", "collectionUUID": ua.clone()})
        .await
        .unwrap();
    for cmd in [
        doc! {"listIndexes": "a", "collectionUUID": ub.clone()},
        doc! {"collMod": "a", "collectionUUID": ub.clone()},
        doc! {"createIndexes": "a", "indexes": [{"key": {"x": 1}, "name": "x_1"}], "collectionUUID": ub.clone()},
        doc! {"dropIndexes": "a", "index": "*", "collectionUUID": ub.clone()},
        doc! {"drop": "a", "collectionUUID": ub.clone()},
    ] {
        let e = db.run_command(cmd.clone()).await.unwrap_err();
        let ErrorKind::Command(c) = *e.kind else {
            panic!("{cmd}")
        };
        assert_eq!(c.code, 361, "{cmd}");
        assert_eq!(c.message, "Collection UUID does not match that specified");
    }
    // A missing namespace with a UUID is a mismatch too.
    let raw = db
        .run_command(doc! {"listIndexes": "none", "collectionUUID": ub.clone()})
        .await
        .unwrap_err();
    let ErrorKind::Command(c) = *raw.kind else {
        panic!()
    };
    assert_eq!(c.code, 361);
    let rename_mismatch = admin
        .run_command(
            doc! {"renameCollection": "app.a", "to": "app.c", "collectionUUID": ub.clone()},
        )
        .await
        .unwrap_err();
    assert_eq!(failure(rename_mismatch).0, 361);
    admin
        .run_command(
            doc! {"renameCollection": "app.a", "to": "app.c", "collectionUUID": ua.clone()},
        )
        .await
        .unwrap();
    assert_eq!(
        code_of(&db, doc! {"drop": "b", "collectionUUID": "not a uuid"}).await,
        14
    );
    // The oplog has no index.
    let reply = client
        .database("local")
        .run_command(doc! {"listIndexes": "oplog.rs"})
        .await
        .unwrap();
    assert!(
        reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn drop_database_replies_ok_alone_and_keeps_local_and_admin() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("app");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    // `ok` and the replica set's gossip fields, nothing else (no `dropped`).
    for _ in 0..2 {
        let reply = db.run_command(doc! {"dropDatabase": 1}).await.unwrap();
        assert_eq!(
            reply.keys().collect::<Vec<_>>(),
            ["ok", "$clusterTime", "operationTime"]
        );
    }
    for (name, message) in [
        (
            "local",
            "Cannot drop 'local' database while replication is active",
        ),
        ("admin", "Dropping the 'admin' database is prohibited."),
    ] {
        let e = client
            .database(name)
            .run_command(doc! {"dropDatabase": 1})
            .await
            .unwrap_err();
        assert_eq!(failure(e), (20, message.to_string()));
    }
    assert_eq!(
        code_of(&db, doc! {"dropDatabase": 1, "other": 1}).await,
        40415
    );
}

async fn collection_names(db: &Database) -> Vec<String> {
    let mut names = db.list_collection_names().await.unwrap();
    names.sort();
    names
}

async fn index_names(db: &Database, coll: &str) -> Vec<String> {
    db.collection::<Document>(coll)
        .list_index_names()
        .await
        .unwrap_or_default()
}

#[tokio::test]
async fn collections_and_indexes_created_in_a_transaction_appear_only_at_its_commit() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("app");
    let mut session = client.start_session().await.unwrap();

    // Explicit create, an index on it, a document: none visible outside until the commit.
    session.start_transaction().await.unwrap();
    db.create_collection("t")
        .session(&mut session)
        .await
        .unwrap();
    let index = mongodb::IndexModel::builder()
        .keys(doc! {"x": 1})
        .options(
            mongodb::options::IndexOptions::builder()
                .name("x_1".to_string())
                .build(),
        )
        .build();
    let t = db.collection::<Document>("t");
    t.create_index(index.clone())
        .session(&mut session)
        .await
        .unwrap();
    t.insert_one(doc! {"_id": 1, "x": 1})
        .session(&mut session)
        .await
        .unwrap();
    // An index on a missing collection creates it inside the transaction too.
    db.collection::<Document>("u")
        .create_index(index.clone())
        .session(&mut session)
        .await
        .unwrap();
    assert_eq!(collection_names(&db).await, Vec::<String>::new());
    assert_eq!(index_names(&db, "t").await, Vec::<String>::new());
    session.commit_transaction().await.unwrap();
    assert_eq!(collection_names(&db).await, vec!["t", "u"]);
    assert_eq!(index_names(&db, "t").await, vec!["_id_", "x_1"]);
    assert_eq!(index_names(&db, "u").await, vec!["_id_", "x_1"]);
    let docs: Vec<Document> = t.find(doc! {}).await.unwrap().try_collect().await.unwrap();
    assert_eq!(docs, vec![doc! {"_id": 1, "x": 1}]);

    // Aborted: nothing remains.
    session.start_transaction().await.unwrap();
    db.create_collection("v")
        .session(&mut session)
        .await
        .unwrap();
    db.collection::<Document>("w")
        .create_index(index.clone())
        .session(&mut session)
        .await
        .unwrap();
    session.abort_transaction().await.unwrap();
    assert_eq!(collection_names(&db).await, vec!["t", "u"]);
}

#[tokio::test]
async fn ddl_a_transaction_may_not_run_fails_with_the_servers_codes() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let db = client.database("app");
    db.create_collection("t").await.unwrap();
    let mut session = client.start_session().await.unwrap();
    let mut in_txn = async |cmd: Document| {
        session.start_transaction().await.unwrap();
        let result = db.run_command(cmd).session(&mut session).await;
        // An error aborts the transaction, as on the server.
        let _ = session.abort_transaction().await;
        result
    };
    // An existing collection is NamespaceExists inside a transaction, even with the same
    // options (outside, that is a no-op).
    let (code, message) = failure(in_txn(doc! {"create": "t"}).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (48, "Collection app.t already exists.")
    );
    let (code, message) = failure(
        in_txn(doc! {"create": "view", "viewOn": "t", "pipeline": []})
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (263, "Cannot create a view in a multi-document transaction.")
    );
    let (code, message) = failure(
        in_txn(doc! {"createIndexes": "t", "indexes": [{"key": {"x": 1}, "name": "x_1"}]})
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            263,
            "Cannot create new indexes on existing collection app.t in a multi-document transaction."
        )
    );
    // Indexes that all exist already: a no-op, allowed.
    let reply =
        in_txn(doc! {"createIndexes": "t", "indexes": [{"key": {"_id": 1}, "name": "_id_"}]})
            .await
            .unwrap();
    assert_eq!(
        reply.get_str("note").ok(),
        Some("all indexes already exist")
    );
    // A collection created in the transaction takes indexes only while empty.
    session.start_transaction().await.unwrap();
    db.collection::<Document>("n")
        .insert_one(doc! {"_id": 1})
        .session(&mut session)
        .await
        .unwrap();
    let (code, message) = failure(
        db.run_command(doc! {"createIndexes": "n", "indexes": [{"key": {"x": 1}, "name": "x_1"}]})
            .session(&mut session)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            263,
            "Cannot create new indexes on non-empty collection app.n in a multi-document transaction."
        )
    );
    // The error aborted the transaction: its collection is gone with it.
    assert_eq!(
        failure(session.commit_transaction().await.unwrap_err()).0,
        251
    );
    assert_eq!(collection_names(&db).await, vec!["t"]);
}

#[tokio::test]
async fn an_id_index_spec_is_checked_field_names_first_with_the_servers_messages() {
    let cluster = MemoryCluster::start().await.unwrap();
    let db = client(&cluster).await.database("app");
    // validateIdIndexSpec checks the field names before the key, and prints the spec with
    // the `v` that validateIndexSpec filled in.
    let (code, message) = failure(
        db.run_command(
            doc! {"create": "a", "idIndex": {"key": {"a": 1}, "name": "_id_", "unique": true}},
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            197,
            "The field 'unique' is not valid for an _id index specification. Specification: { key: { a: 1 }, name: \"_id_\", unique: true, v: 2 }"
        )
    );
    let (code, message) = failure(
        db.run_command(doc! {"create": "a", "idIndex": {"key": {"a": 1}, "name": "_id_"}})
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            2,
            "The field 'key' for an _id index must be {_id: 1}, but got { a: 1 }"
        )
    );
}

#[tokio::test]
async fn a_transaction_may_not_write_system_or_unreplicated_collections() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let mut session = client.start_session().await.unwrap();
    for (db, coll, code, message) in [
        (
            "app",
            "system.js",
            50791,
            "Cannot write to system collection app.system.js within a transaction.",
        ),
        // `canUseTransactions` refuses the `local` database before the write is tried, so the
        // write's own check (50790) is not reached.
        (
            "local",
            "scratch",
            263,
            "Cannot run command against the 'local' database in a transaction.",
        ),
    ] {
        session.start_transaction().await.unwrap();
        let e = client
            .database(db)
            .collection::<Document>(coll)
            .insert_one(doc! {"_id": 1})
            .session(&mut session)
            .await
            .unwrap_err();
        assert_eq!(failure(e), (code, message.to_string()));
        // The error aborted the transaction, as on the server.
        assert_eq!(
            failure(session.commit_transaction().await.unwrap_err()).0,
            251
        );
    }
}

/// `createIndexes` takes `indexes` as the IDL's `array<object>` (`create_indexes.idl`): the
/// wrong type for the list or for one of its entries is a TypeMismatch naming the field.
#[tokio::test]
async fn create_indexes_types_its_list_as_the_idl() {
    let cluster = MemoryCluster::start().await.unwrap();
    let db = client(&cluster).await.database("app");
    for (cmd, message) in [
        (
            doc! {"createIndexes": "c", "indexes": {"key": {"a": 1}, "name": "a_1"}},
            "BSON field 'createIndexes.indexes' is the wrong type 'object', expected type 'array'",
        ),
        (
            doc! {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}, "b_1"]},
            "BSON field 'createIndexes.indexes.1' is the wrong type 'string', expected type 'object'",
        ),
    ] {
        let e = db.run_command(cmd.clone()).await.unwrap_err();
        assert_eq!(failure(e), (14, message.to_string()), "{cmd}");
    }
    // Nothing was created by either.
    let names: Vec<String> = db
        .collection::<Document>("c")
        .list_index_names()
        .await
        .unwrap_or_default();
    assert!(!names.contains(&"a_1".to_string()), "{names:?}");
}

/// `dropIndexes` parses `index` (`drop_indexes.idl`: required, string, array of strings or
/// object) before it looks for the collection.
#[tokio::test]
async fn drop_indexes_parses_index_before_looking_for_the_collection() {
    let cluster = MemoryCluster::start().await.unwrap();
    let db = client(&cluster).await.database("app");
    for (cmd, code, message) in [
        (
            doc! {"dropIndexes": "missing"},
            40414,
            "BSON field 'dropIndexes.index' is missing but a required field",
        ),
        (
            doc! {"dropIndexes": "missing", "index": ["a_1", 2]},
            14,
            "BSON field 'dropIndexes.index.1' is the wrong type 'int', expected type 'string'",
        ),
    ] {
        let e = db.run_command(cmd.clone()).await.unwrap_err();
        assert_eq!(failure(e), (code, message.to_string()), "{cmd}");
    }
    // A type outside the variant: TypeMismatch naming the field (the list of expected types
    // depends on the IDL generator's version, so only the start is checked).
    let (code, message) = failure(
        db.run_command(doc! {"dropIndexes": "missing", "index": 1})
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 14);
    assert!(
        message.starts_with("BSON field 'dropIndexes.index' is the wrong type 'int', expected"),
        "{message}"
    );
    assert_eq!(
        code_of(&db, doc! {"dropIndexes": "missing", "index": "a_1"}).await,
        26
    );
}

/// `create`'s options are optional IDL fields (`create.idl`): an explicit null is omitted,
/// as if the option were not sent.
#[tokio::test]
async fn create_reads_null_options_as_omitted() {
    let cluster = MemoryCluster::start().await.unwrap();
    let db = client(&cluster).await.database("app");
    db.run_command(doc! {
        "create": "n",
        "validator": null,
        "capped": null,
        "size": null,
        "collation": null,
        "viewOn": null,
    })
    .await
    .unwrap();
    assert_eq!(options_of(&db, "n").await, doc! {});
    // Without a validator, any document goes in.
    db.collection::<Document>("n")
        .insert_one(doc! {"x": 1})
        .await
        .unwrap();
}

/// `dropDatabase` takes 1 as its argument (`CmdDropDatabase`): another number is refused and
/// nothing is dropped.
#[tokio::test]
async fn drop_database_takes_one() {
    let cluster = MemoryCluster::start().await.unwrap();
    let db = client(&cluster).await.database("app");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    for arg in [0, 2] {
        let e = db
            .run_command(doc! {"dropDatabase": arg})
            .await
            .unwrap_err();
        assert_eq!(
            failure(e),
            (20, "have to pass 1 as db parameter".to_string())
        );
    }
    assert_eq!(
        db.collection::<Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap(),
        1
    );
    db.run_command(doc! {"dropDatabase": 1}).await.unwrap();
    assert!(db.list_collection_names().await.unwrap().is_empty());
}
