//! Top-level `$`-prefixed field names (storable since 5.0): inserts and pipeline updates
//! store them, a replacement document cannot hold them (DollarPrefixedFieldName, 52, with the
//! server's message).

use bson::{Document, doc};
use mongodb::Client;
use mongodb::error::ErrorKind;
use mongosync_testkit::MemoryCluster;

#[tokio::test]
async fn insert_and_pipelines_store_them_a_replacement_cannot() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let coll = client.database("d").collection::<Document>("c");

    coll.insert_one(doc! {"_id": 1, "$a": 1, "b": {"$c": 2}})
        .await
        .unwrap();
    assert_eq!(
        coll.find_one(doc! {"_id": 1}).await.unwrap().unwrap(),
        doc! {"_id": 1, "$a": 1, "b": {"$c": 2}}
    );

    let err = coll
        .replace_one(doc! {"_id": 1}, doc! {"_id": 1, "$a": 2})
        .upsert(true)
        .await
        .unwrap_err();
    let ErrorKind::Write(mongodb::error::WriteFailure::WriteError(e)) = &*err.kind else {
        panic!("not a write error: {err}");
    };
    assert_eq!(e.code, 52);
    assert_eq!(
        e.message,
        "The dollar ($) prefixed field '$a' in '$a' is not allowed in the context of an \
         update's replacement document. Consider using an aggregation pipeline with $replaceWith."
    );
    // An upserting replacement of a missing document is refused the same way.
    let err = coll
        .replace_one(doc! {"_id": 2}, doc! {"_id": 2, "$a": 2})
        .upsert(true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("52") || err.to_string().contains("'$a'"));
    assert!(coll.find_one(doc! {"_id": 2}).await.unwrap().is_none());

    // `$replaceWith: {$literal: doc}` writes the document whole, upserting too.
    for (id, value) in [(1, 3), (2, 4)] {
        let whole = doc! {"_id": id, "$a": value, "b": {"$c": value}};
        coll.update_one(
            doc! {"_id": id},
            vec![doc! {"$replaceWith": {"$literal": whole.clone()}}],
        )
        .upsert(true)
        .await
        .unwrap();
        assert_eq!(
            coll.find_one(doc! {"_id": id}).await.unwrap().unwrap(),
            whole
        );
    }

    // `$setField` adds one.
    coll.update_one(
        doc! {"_id": 1},
        vec![doc! {"$replaceWith": {"$setField": {
        "field": {"$literal": "$z"}, "value": 9, "input": "$$ROOT"}}}],
    )
    .await
    .unwrap();
    assert_eq!(
        coll.find_one(doc! {"_id": 1}).await.unwrap().unwrap(),
        doc! {"_id": 1, "$a": 3, "b": {"$c": 3}, "$z": 9}
    );
}
