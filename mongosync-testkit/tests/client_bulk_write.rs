//! The 8.0 `bulkWrite` command through the official Rust driver (`Client::bulk_write`) and as a
//! raw command, checked against the reply shape of a real server (`bulk_write.idl`,
//! `BulkWriteReplyItem::serialize`).

use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use mongodb::error::ErrorKind;
use mongodb::options::{
    DeleteManyModel, DeleteOneModel, InsertOneModel, ReplaceOneModel, UpdateManyModel,
    UpdateOneModel, WriteModel,
};
use mongodb::{Client, Collection, Namespace};
use mongosync_testkit::MemoryCluster;

async fn client(cluster: &MemoryCluster) -> Client {
    Client::with_uri_str(cluster.uri())
        .await
        .expect("valid uri")
}

fn ns(db: &str, coll: &str) -> Namespace {
    Namespace {
        db: db.to_string(),
        coll: coll.to_string(),
    }
}

async fn contents(coll: &Collection<Document>) -> Vec<Document> {
    coll.find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn mixed_namespaces_verbose_results() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let a: Collection<Document> = client.database("db0").collection("a");
    let b: Collection<Document> = client.database("db1").collection("b");
    a.insert_many([doc! {"_id": 1, "x": 1}, doc! {"_id": 2, "x": 2}])
        .await
        .unwrap();
    b.insert_many([doc! {"_id": 1, "y": 1}, doc! {"_id": 2, "y": 2}])
        .await
        .unwrap();
    let models: Vec<WriteModel> = vec![
        InsertOneModel::builder()
            .namespace(ns("db0", "a"))
            .document(doc! {"_id": 3, "x": 3})
            .build()
            .into(),
        UpdateOneModel::builder()
            .namespace(ns("db1", "b"))
            .filter(doc! {"_id": 1})
            .update(doc! {"$inc": {"y": 10}})
            .build()
            .into(),
        UpdateManyModel::builder()
            .namespace(ns("db0", "a"))
            .filter(doc! {"x": {"$gte": 2}})
            .update(doc! {"$set": {"big": true}})
            .build()
            .into(),
        UpdateOneModel::builder()
            .namespace(ns("db1", "b"))
            .filter(doc! {"_id": 9})
            .update(doc! {"$set": {"y": 9}})
            .upsert(true)
            .build()
            .into(),
        ReplaceOneModel::builder()
            .namespace(ns("db1", "b"))
            .filter(doc! {"_id": 2})
            .replacement(doc! {"z": 1})
            .build()
            .into(),
        DeleteOneModel::builder()
            .namespace(ns("db0", "a"))
            .filter(doc! {"_id": 1})
            .build()
            .into(),
        DeleteManyModel::builder()
            .namespace(ns("db0", "a"))
            .filter(doc! {"_id": {"$gt": 100}})
            .build()
            .into(),
        // Matches without changing anything: matched 1, modified 0.
        UpdateOneModel::builder()
            .namespace(ns("db1", "b"))
            .filter(doc! {"_id": 9})
            .update(doc! {"$set": {"y": 9}})
            .build()
            .into(),
    ];
    let result = client.bulk_write(models).verbose_results().await.unwrap();
    assert_eq!(result.summary.inserted_count, 1);
    assert_eq!(result.summary.matched_count, 5);
    assert_eq!(result.summary.modified_count, 4);
    assert_eq!(result.summary.upserted_count, 1);
    assert_eq!(result.summary.deleted_count, 1);
    assert_eq!(result.insert_results[&0].inserted_id, Bson::Int32(3));
    assert_eq!(result.update_results[&2].matched_count, 2);
    assert_eq!(result.update_results[&3].upserted_id, Some(Bson::Int32(9)));
    assert_eq!(result.update_results[&7].modified_count, 0);
    assert_eq!(result.delete_results[&5].deleted_count, 1);
    assert_eq!(result.delete_results[&6].deleted_count, 0);
    assert_eq!(
        contents(&a).await,
        vec![
            doc! {"_id": 2, "x": 2, "big": true},
            doc! {"_id": 3, "x": 3, "big": true}
        ]
    );
    assert_eq!(
        contents(&b).await,
        vec![
            doc! {"_id": 1, "y": 11},
            doc! {"_id": 2, "z": 1},
            doc! {"_id": 9, "y": 9}
        ]
    );
    cluster.shutdown().await;
}

fn dup_models() -> Vec<WriteModel> {
    vec![
        InsertOneModel::builder()
            .namespace(ns("db", "c"))
            .document(doc! {"_id": 1})
            .build()
            .into(),
        InsertOneModel::builder()
            .namespace(ns("db", "c"))
            .document(doc! {"_id": 1})
            .build()
            .into(),
        InsertOneModel::builder()
            .namespace(ns("db", "c"))
            .document(doc! {"_id": 2})
            .build()
            .into(),
    ]
}

#[tokio::test]
async fn ordered_stops_at_the_first_error_and_unordered_goes_on() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let c: Collection<Document> = client.database("db").collection("c");

    let err = client
        .bulk_write(dup_models())
        .verbose_results()
        .await
        .unwrap_err();
    let ErrorKind::BulkWrite(bw) = *err.kind else {
        panic!("expected a bulk write error, got {err:?}");
    };
    assert_eq!(bw.write_errors.len(), 1);
    assert_eq!(bw.write_errors[&1].code, 11000);
    assert!(bw.partial_result.is_some());
    assert_eq!(contents(&c).await, vec![doc! {"_id": 1}]);

    c.delete_many(doc! {}).await.unwrap();
    let err = client
        .bulk_write(dup_models())
        .ordered(false)
        .await
        .unwrap_err();
    let ErrorKind::BulkWrite(bw) = *err.kind else {
        panic!("expected a bulk write error, got {err:?}");
    };
    assert_eq!(bw.write_errors[&1].code, 11000);
    assert_eq!(contents(&c).await, vec![doc! {"_id": 1}, doc! {"_id": 2}]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn update_errors_are_per_op_and_let_reaches_filters() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let c: Collection<Document> = client.database("db").collection("c");
    c.insert_many([doc! {"_id": 1, "s": "text"}, doc! {"_id": 2, "n": 1}])
        .await
        .unwrap();
    let models: Vec<WriteModel> = vec![
        UpdateOneModel::builder()
            .namespace(ns("db", "c"))
            .filter(doc! {"_id": 1})
            .update(doc! {"$inc": {"s": 1}})
            .build()
            .into(),
        DeleteOneModel::builder()
            .namespace(ns("db", "c"))
            .filter(doc! {"$expr": {"$eq": ["$_id", "$$target"]}})
            .build()
            .into(),
    ];
    let err = client
        .bulk_write(models)
        .ordered(false)
        .let_vars(doc! {"target": 2})
        .verbose_results()
        .await
        .unwrap_err();
    let ErrorKind::BulkWrite(bw) = *err.kind else {
        panic!("expected a bulk write error, got {err:?}");
    };
    // $inc on a string: TypeMismatch, a write error of op 0 only.
    assert_eq!(bw.write_errors[&0].code, 14);
    assert_eq!(contents(&c).await, vec![doc! {"_id": 1, "s": "text"}]);
    cluster.shutdown().await;
}

async fn admin(client: &Client, cmd: Document) -> mongodb::error::Result<Document> {
    client.database("admin").run_command(cmd).await
}

fn code_of(e: &mongodb::error::Error) -> i32 {
    match *e.kind {
        ErrorKind::Command(ref c) => c.code,
        _ => panic!("expected a command error, got {e:?}"),
    }
}

#[tokio::test]
async fn raw_reply_has_the_shape_of_a_real_server() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let reply = admin(
        &client,
        doc! {
            "bulkWrite": 1,
            "ops": [
                {"insert": 0, "document": {"_id": 1}},
                {"insert": 0, "document": {"_id": 1}},
                {"update": 1, "filter": {"_id": 5}, "updateMods": {"$set": {"a": 1}}, "upsert": true},
                {"delete": 0, "filter": {}, "multi": true},
            ],
            "nsInfo": [{"ns": "db.c"}, {"ns": "db.d"}],
            "ordered": false,
        },
    )
    .await
    .unwrap();
    let cursor = reply.get_document("cursor").unwrap();
    assert_eq!(cursor.get_i64("id").unwrap(), 0);
    assert_eq!(cursor.get_str("ns").unwrap(), "admin.$cmd.bulkWrite");
    let batch: Vec<&Document> = cursor
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|b| b.as_document().unwrap())
        .collect();
    assert_eq!(batch[0], &doc! {"ok": 1.0, "idx": 0, "n": 1});
    let err = batch[1];
    assert_eq!(err.get_f64("ok").unwrap(), 0.0);
    assert_eq!(err.get_i32("idx").unwrap(), 1);
    assert_eq!(err.get_i32("code").unwrap(), 11000);
    assert!(err.get_str("errmsg").unwrap().starts_with("E11000"));
    assert_eq!(err.get_document("keyValue").unwrap(), &doc! {"_id": 1});
    assert_eq!(err.get_i32("n").unwrap(), 0);
    assert_eq!(
        batch[2],
        &doc! {"ok": 1.0, "idx": 2, "n": 1, "nModified": 0, "upserted": {"_id": 5}}
    );
    assert_eq!(batch[3], &doc! {"ok": 1.0, "idx": 3, "n": 1});
    for (field, value) in [
        ("nErrors", 1),
        ("nInserted", 1),
        ("nMatched", 0),
        ("nModified", 0),
        ("nUpserted", 1),
        ("nDeleted", 1),
    ] {
        assert_eq!(reply.get_i32(field).unwrap(), value, "{field}");
    }

    // errorsOnly: successes are left out of the cursor, the counts stay.
    let reply = admin(
        &client,
        doc! {
            "bulkWrite": 1,
            "ops": [{"insert": 0, "document": {"_id": 7}}, {"insert": 0, "document": {"_id": 7}}],
            "nsInfo": [{"ns": "db.c"}],
            "errorsOnly": true,
        },
    )
    .await
    .unwrap();
    let batch = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].as_document().unwrap().get_i32("idx").unwrap(), 1);
    assert_eq!(reply.get_i32("nInserted").unwrap(), 1);
    cluster.shutdown().await;
}

#[tokio::test]
async fn command_level_errors() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let ops = doc! {"ops": [{"insert": 0, "document": {}}], "nsInfo": [{"ns": "db.c"}]};
    // adminOnly: Unauthorized elsewhere.
    let mut cmd = doc! {"bulkWrite": 1};
    cmd.extend(ops.clone());
    let e = client.database("db").run_command(cmd).await.unwrap_err();
    assert_eq!(code_of(&e), 13);
    // An nsInfo index out of range: BadValue, nothing written.
    let e = admin(
        &client,
        doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {}}, {"insert": 1, "document": {}}], "nsInfo": [{"ns": "db.c"}]},
    )
    .await
    .unwrap_err();
    assert_eq!(code_of(&e), 2);
    assert_eq!(
        client
            .database("db")
            .collection::<Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap(),
        0
    );
    // No ops: InvalidLength.
    let e = admin(
        &client,
        doc! {"bulkWrite": 1, "ops": [], "nsInfo": [{"ns": "db.c"}]},
    )
    .await
    .unwrap_err();
    assert_eq!(code_of(&e), 16);
    // An invalid namespace.
    let e = admin(
        &client,
        doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {}}], "nsInfo": [{"ns": "nodot"}]},
    )
    .await
    .unwrap_err();
    assert_eq!(code_of(&e), 73);
    // An unknown op field.
    let e = admin(
        &client,
        doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {}, "bogus": 1}], "nsInfo": [{"ns": "db.c"}]},
    )
    .await
    .unwrap_err();
    assert_eq!(code_of(&e), 40415);
    cluster.shutdown().await;
}

#[tokio::test]
async fn results_beyond_the_batch_size_stay_in_a_cursor() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let reply = admin(
        &client,
        doc! {
            "bulkWrite": 1,
            "ops": [{"insert": 0, "document": {"_id": 1}}, {"insert": 0, "document": {"_id": 2}}],
            "nsInfo": [{"ns": "db.c"}],
            "cursor": {"batchSize": 1},
        },
    )
    .await
    .unwrap();
    let cursor = reply.get_document("cursor").unwrap();
    assert_eq!(cursor.get_array("firstBatch").unwrap().len(), 1);
    let id = cursor.get_i64("id").unwrap();
    assert_ne!(id, 0);
    let more = admin(
        &client,
        doc! {"getMore": id, "collection": "$cmd.bulkWrite"},
    )
    .await
    .unwrap();
    let next = more
        .get_document("cursor")
        .unwrap()
        .get_array("nextBatch")
        .unwrap();
    assert_eq!(
        next[0].as_document().unwrap(),
        &doc! {"ok": 1.0, "idx": 1, "n": 1}
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn find_and_modify_execution_errors_carry_the_plan_executor_context() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = client(&cluster).await;
    let c: Collection<Document> = client.database("db").collection("c");
    c.insert_one(doc! {"_id": 1, "s": "text"}).await.unwrap();
    let e = c
        .find_one_and_update(doc! {"_id": 1}, doc! {"$inc": {"s": 1}})
        .await
        .unwrap_err();
    let ErrorKind::Command(ref ce) = *e.kind else {
        panic!("expected a command error, got {e:?}");
    };
    assert_eq!(ce.code, 14);
    assert!(
        ce.message
            .starts_with("Plan executor error during findAndModify :: caused by :: "),
        "{}",
        ce.message
    );
    // A malformed update fails at parse time, without the context.
    let e = c
        .find_one_and_update(doc! {"_id": 1}, doc! {"$bogus": {"s": 1}})
        .await
        .unwrap_err();
    let ErrorKind::Command(ref ce) = *e.kind else {
        panic!("expected a command error, got {e:?}");
    };
    assert!(!ce.message.starts_with("Plan executor"), "{}", ce.message);
    cluster.shutdown().await;
}
