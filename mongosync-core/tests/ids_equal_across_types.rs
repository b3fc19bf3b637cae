//! `_id`s that the server's `_id` index holds equal but that differ in BSON type (`7`,
//! `NumberLong(7)`, `7.0`, `Decimal128("7")`; `0` and `-0.0`): a delete of one followed by an
//! insert of another, in one round of change application with several appliers, must land in
//! that order, or the delete removes the new document.

mod common;

use bson::{Bson, Decimal128, Document, doc};
use mongosync_core::{ClusterName, StartOptions, Syncer};

/// `v` as the `t`-th numeric type.
fn number(v: i64, t: usize) -> Bson {
    match t % 4 {
        0 => Bson::Int32(v as i32),
        1 => Bson::Int64(v),
        2 => Bson::Double(v as f64),
        _ => Bson::Decimal128(v.to_string().parse::<Decimal128>().unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_then_an_insert_of_an_equal_id_of_another_type_keeps_the_document() {
    let pair = common::pair().await;
    let c = pair.src.database("d").collection::<Document>("c");
    const N: i64 = 400;
    c.insert_many((0..N).map(|i| doc! {"_id": number(1000 + i, i as usize), "gen": 0}))
        .await
        .unwrap();
    c.insert_one(doc! {"_id": 0, "gen": 0}).await.unwrap();
    // Embedded numbers compare by value too.
    c.insert_one(doc! {"_id": {"k": 5}, "gen": 0})
        .await
        .unwrap();

    let options = common::options().appliers(8);
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, options)
        .await
        .unwrap()
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap();
    running.handle().wait_for(common::in_cea).await.unwrap();
    // Paused, the events pile up; resumed, they are read back as one round.
    let paused = running.pause().await.unwrap();
    for i in 0..N {
        c.delete_one(doc! {"_id": number(1000 + i, i as usize)})
            .await
            .unwrap();
        c.insert_one(doc! {"_id": number(1000 + i, i as usize + 1), "gen": 1})
            .await
            .unwrap();
    }
    c.delete_one(doc! {"_id": 0}).await.unwrap();
    c.insert_one(doc! {"_id": -0.0, "gen": 1}).await.unwrap();
    c.delete_one(doc! {"_id": {"k": 5}}).await.unwrap();
    c.insert_one(doc! {"_id": {"k": 5.0}, "gen": 1})
        .await
        .unwrap();
    let running = paused.resume().await.unwrap();

    let _committed = common::commit(running).await;
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, N as usize + 2);
    // Every document is the new one, with its new type.
    let gens = pair
        .dst
        .database("d")
        .collection::<Document>("c")
        .count_documents(doc! {"gen": 1})
        .await
        .unwrap();
    assert_eq!(gens, N as u64 + 2);
}
