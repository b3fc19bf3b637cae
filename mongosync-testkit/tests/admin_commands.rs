//! `dbHash`, `getClusterParameter`/`setClusterParameter` and `replSetGetStatus` with the
//! official Rust driver.

use bson::{Bson, Document, doc};
use mongodb::error::{Error, ErrorKind};
use mongodb::{Client, Database};
use mongosync_testkit::MemoryCluster;

async fn client(cluster: &MemoryCluster) -> Client {
    Client::with_uri_str(cluster.uri()).await.unwrap()
}

fn code(e: &Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

async fn db_hash(db: &Database) -> Document {
    db.run_command(doc! {"dbHash": 1}).await.unwrap()
}

#[tokio::test]
async fn db_hash_depends_on_documents_not_on_insertion_order() {
    let a = MemoryCluster::start().await.unwrap();
    let b = MemoryCluster::start().await.unwrap();
    let (ca, cb) = (client(&a).await, client(&b).await);
    let docs: Vec<Document> = (0..20).map(|i| doc! {"_id": i, "v": i * 2}).collect();
    let mut reversed = docs.clone();
    reversed.reverse();
    ca.database("app")
        .collection::<Document>("c")
        .insert_many(docs)
        .await
        .unwrap();
    cb.database("app")
        .collection::<Document>("c")
        .insert_many(reversed)
        .await
        .unwrap();
    for c in [&ca, &cb] {
        c.database("app")
            .collection::<Document>("empty")
            .insert_one(doc! {"_id": 0})
            .await
            .unwrap();
        c.database("app")
            .collection::<Document>("empty")
            .delete_one(doc! {})
            .await
            .unwrap();
        c.database("app")
            .run_command(doc! {"create": "v", "viewOn": "c", "pipeline": []})
            .await
            .unwrap();
    }
    let (ha, hb) = (
        db_hash(&ca.database("app")).await,
        db_hash(&cb.database("app")).await,
    );
    assert_eq!(
        ha.get_document("collections").ok(),
        hb.get_document("collections").ok()
    );
    assert_eq!(ha.get_str("md5").ok(), hb.get_str("md5").ok());
    let collections = ha.get_document("collections").unwrap();
    // Views are not hashed; an empty collection hashes to md5 of nothing.
    assert_eq!(collections.keys().collect::<Vec<_>>(), vec!["c", "empty"]);
    assert_eq!(
        collections.get_str("empty").unwrap(),
        "d41d8cd98f00b204e9800998ecf8427e"
    );
    assert!(ha.get_array("capped").unwrap().is_empty());
    assert!(matches!(
        ha.get_document("uuids").unwrap().get("c"),
        Some(Bson::Binary(_))
    ));
    assert!(ha.get_str("host").is_ok());
    assert!(ha.get("timeMillis").is_some());

    // One update makes them differ; only that collection's hash changes.
    cb.database("app")
        .collection::<Document>("c")
        .update_one(doc! {"_id": 7}, doc! {"$set": {"v": -1}})
        .await
        .unwrap();
    let hb = db_hash(&cb.database("app")).await;
    assert_ne!(ha.get_str("md5").ok(), hb.get_str("md5").ok());
    let (ca_, cb_) = (
        ha.get_document("collections").unwrap(),
        hb.get_document("collections").unwrap(),
    );
    assert_ne!(ca_.get_str("c").ok(), cb_.get_str("c").ok());
    assert_eq!(ca_.get_str("empty").ok(), cb_.get_str("empty").ok());

    // `collections` restricts the answer.
    let only = ca
        .database("app")
        .run_command(doc! {"dbHash": 1, "collections": ["empty"]})
        .await
        .unwrap();
    assert_eq!(
        only.get_document("collections")
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["empty"]
    );
}

#[tokio::test]
async fn cluster_parameters_round_trip() {
    let cluster = MemoryCluster::start().await.unwrap();
    let admin = client(&cluster).await.database("admin");
    let got = admin
        .run_command(doc! {"getClusterParameter": "changeStreamOptions"})
        .await
        .unwrap();
    let params = got.get_array("clusterParameters").unwrap();
    assert_eq!(params.len(), 1);
    let p = params[0].as_document().unwrap();
    assert_eq!(p.get_str("_id").unwrap(), "changeStreamOptions");
    assert!(p.get_timestamp("clusterParameterTime").is_ok());
    assert_eq!(
        p.get_document("preAndPostImages").unwrap(),
        &doc! {"expireAfterSeconds": "off"}
    );

    admin
        .run_command(doc! {"setClusterParameter": {"changeStreamOptions": {"preAndPostImages": {"expireAfterSeconds": 3600}}}})
        .await
        .unwrap();
    let got = admin
        .run_command(doc! {"getClusterParameter": ["changeStreamOptions", "defaultMaxTimeMS"]})
        .await
        .unwrap();
    let params = got.get_array("clusterParameters").unwrap();
    let p = params[0].as_document().unwrap();
    assert_eq!(
        p.get_document("preAndPostImages").unwrap(),
        &doc! {"expireAfterSeconds": 3600i64}
    );
    assert!(p.get_timestamp("clusterParameterTime").unwrap().time > 0);
    let d = params[1].as_document().unwrap();
    assert_eq!(d.get_str("_id").unwrap(), "defaultMaxTimeMS");
    assert_eq!(d.get_i64("readOperations").unwrap(), 0);

    let all = admin
        .run_command(doc! {"getClusterParameter": "*"})
        .await
        .unwrap();
    assert!(all.get_array("clusterParameters").unwrap().len() >= 2);
}

#[tokio::test]
async fn unknown_cluster_parameters_are_no_such_key() {
    let cluster = MemoryCluster::start().await.unwrap();
    let c = client(&cluster).await;
    let admin = c.database("admin");
    for arg in [
        Bson::from("nope"),
        Bson::from(""),
        Bson::from("changestreamoptions"),
        Bson::Array(vec!["*".into()]),
        Bson::Array(vec!["changeStreamOptions".into(), "nope".into()]),
    ] {
        let err = admin
            .run_command(doc! {"getClusterParameter": arg.clone()})
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some(4), "{arg:?}");
    }
    let err = admin
        .run_command(doc! {"getClusterParameter": []})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(2));
    let err = admin
        .run_command(doc! {"setClusterParameter": {"nope": {"x": 1}}})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(4));
    let err = c
        .database("app")
        .run_command(doc! {"getClusterParameter": "*"})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13));
}

#[tokio::test]
async fn repl_set_get_status_describes_one_primary() {
    let cluster = MemoryCluster::start().await.unwrap();
    let status = client(&cluster)
        .await
        .database("admin")
        .run_command(doc! {"replSetGetStatus": 1})
        .await
        .unwrap();
    assert_eq!(status.get_str("set").unwrap(), "rs0");
    assert_eq!(status.get_i32("myState").unwrap(), 1);
    let members = status.get_array("members").unwrap();
    assert_eq!(members.len(), 1);
    let m = members[0].as_document().unwrap();
    assert_eq!(m.get_str("stateStr").unwrap(), "PRIMARY");
    assert!(m.get_bool("self").unwrap());
    assert!(
        m.get_document("optime")
            .unwrap()
            .get_timestamp("ts")
            .is_ok()
    );
    assert!(m.get_datetime("optimeDate").is_ok());
    assert!(
        status
            .get_document("optimes")
            .unwrap()
            .contains_key("appliedOpTime")
    );
}

/// `collMod` converts an index to unique in two steps; repeating either step, or setting
/// `prepareUnique` on an index that is unique already, is a no-op (as `coll_mod.cpp`), so a
/// restarted conversion leaves the index exactly as a single one would.
#[tokio::test]
async fn unique_conversion_steps_are_idempotent() {
    let cluster = MemoryCluster::start().await.unwrap();
    let c = client(&cluster).await;
    let db = c.database("d");
    db.collection::<Document>("c")
        .insert_many([doc! {"a": 1}, doc! {"a": 2}])
        .await
        .unwrap();
    db.run_command(doc! {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}]})
        .await
        .unwrap();
    let prepare = doc! {"collMod": "c", "index": {"name": "a_1", "prepareUnique": true}};
    let unique = doc! {"collMod": "c", "index": {"name": "a_1", "unique": true}};
    let r = db.run_command(prepare.clone()).await.unwrap();
    assert_eq!(r.get_bool("prepareUnique_new").ok(), Some(true), "{r}");
    let r = db.run_command(prepare.clone()).await.unwrap();
    assert!(!r.contains_key("prepareUnique_new"), "{r}");
    let r = db.run_command(unique.clone()).await.unwrap();
    assert_eq!(r.get_bool("unique_new").ok(), Some(true), "{r}");
    for again in [prepare, unique] {
        let r = db.run_command(again).await.unwrap();
        assert!(
            !r.contains_key("unique_new") && !r.contains_key("prepareUnique_new"),
            "{r}"
        );
    }
    let mut cursor = db
        .run_cursor_command(doc! {"listIndexes": "c"})
        .await
        .unwrap();
    let mut a_1 = None;
    while let Some(spec) = futures::TryStreamExt::try_next(&mut cursor).await.unwrap() {
        if spec.get_str("name").ok() == Some("a_1") {
            a_1 = Some(spec);
        }
    }
    let a_1 = a_1.unwrap();
    assert_eq!(a_1.get_bool("unique").ok(), Some(true), "{a_1}");
    assert!(!a_1.contains_key("prepareUnique"), "{a_1}");
}

/// What tools read to size the oplog window: `serverStatus`'s `oplog` section (only when asked
/// for) and the storage figures of `local.oplog.rs`.
#[tokio::test]
async fn the_oplog_window_is_readable() {
    let cluster = MemoryCluster::start_with(
        mongosync_testkit::ClusterOptions::default().oplog_limits(50, 1 << 30),
    )
    .await
    .unwrap();
    let c = client(&cluster).await;
    let admin = c.database("admin");
    let plain = admin.run_command(doc! {"serverStatus": 1}).await.unwrap();
    assert!(!plain.contains_key("oplog"), "{plain}");
    let coll = c.database("d").collection::<Document>("c");
    let first = admin
        .run_command(doc! {"serverStatus": 1, "oplog": 1})
        .await
        .unwrap();
    for i in 0..100 {
        coll.insert_one(doc! {"_id": i}).await.unwrap();
    }
    let status = admin
        .run_command(doc! {"serverStatus": 1, "oplog": 1})
        .await
        .unwrap();
    let oplog = status.get_document("oplog").unwrap();
    let (earliest, latest) = (
        oplog.get_timestamp("earliestOptime").unwrap(),
        oplog.get_timestamp("latestOptime").unwrap(),
    );
    assert!(earliest < latest, "{oplog}");
    // 100 inserts into a 50-entry history: the earliest entry has moved on.
    let before = first
        .get_document("oplog")
        .unwrap()
        .get_timestamp("earliestOptime")
        .unwrap();
    assert!(earliest > before, "{oplog}");

    let mut cursor = c
        .database("local")
        .collection::<Document>("oplog.rs")
        .aggregate([doc! {"$collStats": {"storageStats": {}}}])
        .await
        .unwrap();
    let stats = futures::TryStreamExt::try_next(&mut cursor)
        .await
        .unwrap()
        .unwrap();
    let storage = stats.get_document("storageStats").unwrap();
    assert_eq!(storage.get_bool("capped").ok(), Some(true), "{storage}");
    assert_eq!(storage.get_i64("count").ok(), Some(50), "{storage}");
    // Full by count: the bytes kept are the capacity.
    assert_eq!(
        storage.get_i64("size").ok(),
        storage.get_i64("maxSize").ok(),
        "{storage}"
    );
}
