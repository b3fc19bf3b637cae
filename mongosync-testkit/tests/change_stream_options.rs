//! `$changeStream` options validated as a real 8.x server does (codes and messages from its
//! IDL and stage parsers), through the official Rust driver: wrong types, a non-object spec,
//! conflicting resume options, the stage's position, views, `apiStrict`, explicit nulls, and
//! resume tokens that are not in the stream (the stream opens; its first getMore that meets an
//! event fails with ChangeStreamFatalError, 280).

use bson::{Bson, Document, doc};
use futures::StreamExt;
use mongodb::error::{Error, ErrorKind};
use mongodb::{Client, Database};
use mongosync_testkit::MemoryCluster;

fn code(e: &Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

fn message(e: &Error) -> String {
    match &*e.kind {
        ErrorKind::Command(c) => c.message.clone(),
        _ => e.to_string(),
    }
}

async fn setup() -> (MemoryCluster, Client, Database) {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("opts");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 0})
        .await
        .unwrap();
    (cluster, client, db)
}

async fn aggregate(db: &Database, coll: &str, pipeline: Vec<Document>) -> Result<Document, Error> {
    db.run_command(doc! {"aggregate": coll, "pipeline": pipeline, "cursor": {}})
        .await
}

async fn refused(db: &Database, pipeline: Vec<Document>) -> Error {
    aggregate(db, "c", pipeline).await.unwrap_err()
}

#[tokio::test]
async fn options_of_the_wrong_type_give_the_servers_codes() {
    let (_cluster, _client, db) = setup().await;
    for field in ["allChangesForCluster", "showExpandedEvents"] {
        for value in [Bson::Int32(1), Bson::String("true".into())] {
            let e = refused(&db, vec![doc! {"$changeStream": {field: value.clone()}}]).await;
            assert_eq!(code(&e), Some(14), "{field}: {e}");
            let kind = if matches!(value, Bson::Int32(_)) {
                "int"
            } else {
                "string"
            };
            assert_eq!(
                message(&e),
                format!(
                    "BSON field '$changeStream.{field}' is the wrong type '{kind}', expected type 'bool'"
                )
            );
        }
    }
    for spec in [
        Bson::Int32(1),
        Bson::String("x".into()),
        Bson::Array(vec![]),
    ] {
        let e = refused(&db, vec![doc! {"$changeStream": spec}]).await;
        assert_eq!(code(&e), Some(6188500), "{e}");
        assert!(
            message(&e).starts_with("$changeStream must take a nested object but found: "),
            "{e}"
        );
    }
}

#[tokio::test]
async fn conflicting_or_misplaced_stages_are_refused() {
    let (_cluster, _client, db) = setup().await;
    let token = {
        let s = db.collection::<Document>("c").watch().await.unwrap();
        bson::serialize_to_document(&s.resume_token().unwrap()).unwrap()
    };
    let e = refused(
        &db,
        vec![doc! {"$changeStream": {"resumeAfter": token.clone(), "startAfter": token}}],
    )
    .await;
    assert_eq!(code(&e), Some(50865), "{e}");
    assert_eq!(
        message(&e),
        "Do not specify both 'startAfter' and 'resumeAfter' in a $changeStream stage."
    );

    let e = refused(
        &db,
        vec![doc! {"$match": {"x": 1}}, doc! {"$changeStream": {}}],
    )
    .await;
    assert_eq!(code(&e), Some(40602), "{e}");
    let e = refused(
        &db,
        vec![doc! {"$changeStream": {}}, doc! {"$changeStream": {}}],
    )
    .await;
    assert_eq!(code(&e), Some(40602), "{e}");
    assert_eq!(
        message(&e),
        "$changeStream is only valid as the first stage in a pipeline."
    );
}

#[tokio::test]
async fn views_and_api_strict() {
    let (_cluster, _client, db) = setup().await;
    db.run_command(doc! {"create": "v", "viewOn": "c", "pipeline": []})
        .await
        .unwrap();
    let e = aggregate(&db, "v", vec![doc! {"$changeStream": {}}])
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(166), "{e}");
    assert_eq!(message(&e), "Namespace opts.v is a view, not a collection");

    let strict = |spec: Document| {
        doc! {"aggregate": "c", "pipeline": [{"$changeStream": spec}], "cursor": {},
        "apiVersion": "1", "apiStrict": true}
    };
    let e = db
        .run_command(strict(doc! {"showExpandedEvents": true}))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(323), "{e}");
    assert_eq!(
        message(&e),
        "BSON field '$changeStream.showExpandedEvents' is not allowed with apiStrict:true."
    );
    let e = db
        .run_command(
            doc! {"aggregate": "c", "cursor": {}, "apiVersion": "1", "apiStrict": true,
            "pipeline": [{"$changeStream": {}}, {"$changeStreamSplitLargeEvent": {}}]},
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(323), "{e}");
    assert_eq!(
        message(&e),
        "$changeStreamSplitLargeEvent is not allowed with 'apiStrict: true' in API Version 1"
    );
    // Without the unstable option the strict stream opens.
    db.run_command(strict(doc! {})).await.unwrap();
}

#[tokio::test]
async fn null_options_mean_omitted() {
    let (_cluster, _client, db) = setup().await;
    let reply = aggregate(
        &db,
        "c",
        vec![doc! {"$changeStream": {
            "resumeAfter": Bson::Null, "startAfter": Bson::Null,
            "startAtOperationTime": Bson::Null, "fullDocument": Bson::Null,
            "fullDocumentBeforeChange": Bson::Null, "allChangesForCluster": Bson::Null,
            "showExpandedEvents": Bson::Null,
        }}],
    )
    .await
    .unwrap();
    let id = reply.get_document("cursor").unwrap().get_i64("id").unwrap();
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let more = db
        .run_command(doc! {"getMore": id, "collection": "c", "maxTimeMS": 5000})
        .await
        .unwrap();
    let batch = more
        .get_document("cursor")
        .unwrap()
        .get_array("nextBatch")
        .unwrap();
    assert_eq!(batch.len(), 1);
    let ev = batch[0].as_document().unwrap();
    assert_eq!(ev.get_str("operationType").unwrap(), "insert");
}

/// The token of an event on `other`, and one of a `create` event (seen only with
/// `showExpandedEvents`).
async fn foreign_tokens(client: &Client, db: &Database) -> (Document, Document) {
    let mut stream = client
        .watch()
        .show_expanded_events(true)
        .await
        .unwrap()
        .with_type::<Document>();
    db.collection::<Document>("other")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let mut create = None;
    let mut insert = None;
    while create.is_none() || insert.is_none() {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let token = ev.get_document("_id").unwrap().clone();
        match ev.get_str("operationType").unwrap() {
            "create" => create = Some(token),
            "insert" => insert = Some(token),
            _ => {}
        }
    }
    (insert.unwrap(), create.unwrap())
}

#[tokio::test]
async fn a_token_not_in_the_stream_fails_its_first_get_more_with_280() {
    let (_cluster, client, db) = setup().await;
    let (other_insert, create) = foreign_tokens(&client, &db).await;
    // A token from another collection, and one valid only with expanded events (on the
    // collection the `create` concerns, without `showExpandedEvents`).
    for (coll, token) in [("c", other_insert), ("other", create)] {
        let reply = aggregate(
            &db,
            coll,
            vec![doc! {"$changeStream": {"resumeAfter": token.clone()}}],
        )
        .await
        .unwrap();
        let cursor = reply.get_document("cursor").unwrap();
        assert!(cursor.get_array("firstBatch").unwrap().is_empty());
        let id = cursor.get_i64("id").unwrap();
        db.collection::<Document>(coll)
            .insert_one(doc! {})
            .await
            .unwrap();
        let e = db
            .run_command(doc! {"getMore": id, "collection": coll, "maxTimeMS": 5000})
            .await
            .unwrap_err();
        assert_eq!(code(&e), Some(280), "{coll}: {e}");
        assert!(
            message(&e).starts_with("cannot resume stream; the resume token was not found."),
            "{e}"
        );
        assert!(e.contains_label("NonResumableChangeStreamError"));
    }
}
