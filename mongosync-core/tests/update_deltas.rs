//! Updates arrive as deltas (`updateDescription`): nested paths, array element updates,
//! truncated arrays, removed fields, field names with dots or digits (ambiguous as paths, so
//! re-read from the source), and updates to documents the destination does not have.

mod common;

use bson::doc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_shape_of_update_converges() {
    let pair = common::pair().await;
    let c = pair.src.database("d").collection::<bson::Document>("c");
    c.insert_many((0..20).map(|i| {
        doc! {"_id": i, "arr": [1, 2, 3, 4, 5, 6], "sub": {"a": 1, "b": {"c": [ {"x": 1}, {"x": 2} ]}},
        "obj": {"1": "one", "2": "two"}, "gone": true}
    }))
    .await
    .unwrap();
    let running = common::start(&pair).await;
    common::wait_for(|| running.progress(), common::in_cea).await;

    // Nested and array element paths, removal.
    c.update_one(
        doc! {"_id": 0},
        doc! {"$set": {"sub.b.c.1.x": 20, "arr.0": 100}, "$unset": {"gone": ""}},
    )
    .await
    .unwrap();
    // Truncation (a pipeline update shortening an array), then growth.
    c.update_one(
        doc! {"_id": 1},
        vec![doc! {"$set": {"arr": {"$slice": ["$arr", 2]}}}],
    )
    .await
    .unwrap();
    c.update_one(doc! {"_id": 1}, doc! {"$push": {"arr": {"$each": [7, 8]}}})
        .await
        .unwrap();
    c.update_one(
        doc! {"_id": 2},
        vec![doc! {"$set": {"arr": {"$slice": ["$arr", 3]}, "sub.a": 2}}],
    )
    .await
    .unwrap();
    // Field names that are ambiguous as paths: a digit key inside an object, a dotted name.
    c.update_one(doc! {"_id": 3}, doc! {"$set": {"obj.1": "uno"}})
        .await
        .unwrap();
    c.update_one(
        doc! {"_id": 4},
        vec![
            doc! {"$replaceWith": {"$setField": {"field": "a.b", "input": "$$ROOT", "value": 42}}},
        ],
    )
    .await
    .unwrap();
    c.update_one(
        doc! {"_id": 4},
        vec![
            doc! {"$replaceWith": {"$setField": {"field": "a.b", "input": "$$ROOT", "value": 43}}},
        ],
    )
    .await
    .unwrap();
    // Many updates to one hot document, interleaved with a replace and a delete elsewhere.
    for i in 0..200 {
        c.update_one(
            doc! {"_id": 5},
            doc! {"$inc": {"n": 1}, "$set": {"last": i}},
        )
        .await
        .unwrap();
    }
    c.replace_one(doc! {"_id": 6}, doc! {"whole": "new"})
        .await
        .unwrap();
    c.delete_one(doc! {"_id": 7}).await.unwrap();
    // An update to a document inserted and deleted again: its delta has nothing to apply to.
    c.insert_one(doc! {"_id": 100, "v": 1}).await.unwrap();
    c.update_one(doc! {"_id": 100}, doc! {"$set": {"v": 2}})
        .await
        .unwrap();
    c.delete_one(doc! {"_id": 100}).await.unwrap();

    let handle = running.handle();
    let _committed = common::commit(running).await;
    // The ambiguous field names and the update of a deleted document are re-read.
    assert!(handle.metrics().refetches >= 1, "{:?}", handle.metrics());
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 19);
}

/// Deltas that apply as they are (nested and array element paths, removals, truncations, a
/// hot document): no document is re-read from the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_deltas_apply_without_a_refetch() {
    let pair = common::pair().await;
    let c = pair.src.database("d").collection::<bson::Document>("c");
    c.insert_many(
        (0..10).map(|i| doc! {"_id": i, "arr": [1, 2, 3, 4, 5, 6], "sub": {"a": 1, "b": {"c": [{"x": 1}, {"x": 2}]}}, "gone": true}),
    )
    .await
    .unwrap();
    let running = common::start(&pair).await;
    let handle = running.handle();
    handle.wait_for(common::in_cea).await.unwrap();
    c.update_one(
        doc! {"_id": 0},
        doc! {"$set": {"sub.b.c.1.x": 20, "arr.0": 100}, "$unset": {"gone": ""}},
    )
    .await
    .unwrap();
    c.update_one(
        doc! {"_id": 1},
        vec![doc! {"$set": {"arr": {"$slice": ["$arr", 2]}}}],
    )
    .await
    .unwrap();
    c.update_one(doc! {"_id": 1}, doc! {"$push": {"arr": {"$each": [7, 8]}}})
        .await
        .unwrap();
    for i in 0..100 {
        c.update_one(
            doc! {"_id": 2},
            doc! {"$inc": {"n": 1}, "$set": {"last": i}},
        )
        .await
        .unwrap();
    }
    c.replace_one(doc! {"_id": 3}, doc! {"whole": "new"})
        .await
        .unwrap();
    let _committed = common::commit(running).await;
    assert_eq!(handle.metrics().refetches, 0, "{:?}", handle.metrics());
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 10);
}
