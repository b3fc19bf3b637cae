//! Field order after updates that move fields, in change application: a `$replaceWith` that
//! reorders fields, a pipeline that removes and re-adds a field, a reordered sub-document, and
//! reordered documents inside an array. A real server logs these as `$v: 2` diffs whose
//! inserted fields (`i`) are appended, so the source's order changes; the change event's
//! `updateDescription` reports them as `updatedFields`, which cannot say that a field moved,
//! and the Rust driver cannot open a stream with `showRawUpdateDescription` (the raw diff).
//! So this is the documented limit (README, "Status"): the destination holds the same fields
//! with the same values, possibly in another order.
//!
//! The final comparison is therefore **order-insensitive** (fields compared as sets at every
//! level of sub-documents; arrays in order, values by exact BSON type), and the test also pins
//! the limit: the remove-and-re-add case, a small delta in a large document, does end in
//! another order on the destination. No document is re-read from the source (refetches 0).

mod common;

use bson::{Bson, Document, doc};

/// A document with its fields sorted by name at every level (arrays keep their order).
fn normalised(d: &Document) -> Document {
    let mut keys: Vec<&String> = d.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k.clone(), normalised_value(&d[k])))
        .collect()
}

fn normalised_value(v: &Bson) -> Bson {
    match v {
        Bson::Document(d) => Bson::Document(normalised(d)),
        Bson::Array(a) => Bson::Array(a.iter().map(normalised_value).collect()),
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moved_fields_converge_in_value_and_the_order_is_the_documented_limit() {
    let pair = common::pair().await;
    let c = pair.src.database("d").collection::<Document>("c");
    // A large field keeps every change below a delta's size, so the server logs a diff (an
    // `update` event), never a replacement.
    c.insert_many((0..6).map(|i| {
        doc! {"_id": i, "a": 1, "b": 2, "c": 3, "sub": {"x": 1, "y": 2},
        "arr": [{"p": 1, "q": 2}, {"p": 3, "q": 4}], "pad": "p".repeat(4000)}
    }))
    .await
    .unwrap();
    let running = common::start(&pair).await;
    let handle = running.handle();
    common::wait_for(|| running.progress(), common::in_cea).await;
    let updates: Vec<(i32, Vec<Document>)> = vec![
        // `$replaceWith` reordering top-level fields.
        (
            0,
            vec![
                doc! {"$replaceWith": {"_id": "$_id", "b": "$b", "a": "$a", "c": "$c", "sub": "$sub", "arr": "$arr", "pad": "$pad"}},
            ],
        ),
        // Remove and re-add: `a` moves to the end.
        (1, vec![doc! {"$unset": "a"}, doc! {"$set": {"a": 1}}]),
        // A reordered sub-document.
        (
            2,
            // (`$set: {sub: {…}}` would merge into `sub` and keep its order.)
            vec![
                doc! {"$replaceWith": {"$mergeObjects": ["$$ROOT", {"sub": {"y": "$sub.y", "x": "$sub.x"}}]}},
            ],
        ),
        // Reordered documents inside an array.
        (
            3,
            vec![
                doc! {"$set": {"arr": {"$map": {"input": "$arr", "in": {"q": "$$this.q", "p": "$$this.p"}}}}},
            ],
        ),
        // A remove-and-re-add with a new value, nested.
        (
            4,
            vec![
                doc! {"$unset": "sub.x"},
                doc! {"$set": {"sub.x": 10, "new": true}},
            ],
        ),
    ];
    for (id, pipeline) in updates {
        c.update_one(doc! {"_id": id}, pipeline).await.unwrap();
    }
    let committed = common::commit(running).await;
    assert!(
        committed.warnings().is_empty(),
        "{:?}",
        committed.warnings()
    );
    let metrics = handle.metrics();
    assert_eq!(metrics.refetches, 0, "{metrics:?}");
    assert_eq!(metrics.events_applied, 5, "{metrics:?}");

    let source = common::documents(&pair.src, "d", "c", false).await;
    let destination = common::documents(&pair.dst, "d", "c", false).await;
    assert_eq!(source.len(), destination.len());
    let mut reordered = vec![];
    for (raw_s, raw_d) in source.iter().zip(&destination) {
        let (s, d) = (
            Document::try_from(raw_s.as_ref()).unwrap(),
            Document::try_from(raw_d.as_ref()).unwrap(),
        );
        // Order-insensitive: the same fields and values (with their BSON types).
        assert_eq!(
            bson::serialize_to_vec(&normalised(&s)).unwrap(),
            bson::serialize_to_vec(&normalised(&d)).unwrap(),
            "values differ:\n source {s:?}\n   dest {d:?}"
        );
        // Equal values, other bytes: only the order differs.
        if raw_s.as_bytes() != raw_d.as_bytes() {
            reordered.push(s.get_i32("_id").unwrap());
        }
    }
    eprintln!("documents whose field order differs on the destination: {reordered:?}");
    // The documented limit, as it stands: every moved field lands where `$set` leaves it
    // (in place, or at the end if it was removed), and the untouched document (5) keeps its
    // order exactly.
    assert_eq!(reordered, [0, 1, 2, 3, 4]);
}
