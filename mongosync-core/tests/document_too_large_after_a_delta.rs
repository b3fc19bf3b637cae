//! A delta that would grow a destination document past 16 MiB. The copy reads a document
//! after the events that changed it; replaying the first of them over the copied version
//! (which has the field a later event added) would make it 18 MiB, which the destination
//! refuses (10334, "Resulting document after update is larger than 16777216"). The document is
//! re-read from the source instead, and the later events replay over it: nothing is lost.

mod common;

use bson::doc;

const NINE_MIB: usize = 9 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delta_too_large_for_the_copied_version_is_replaced_by_a_reread() {
    let pair = common::pair().await;
    let big = pair.src.database("d").collection::<bson::Document>("big");
    big.insert_many([doc! {"_id": 1, "v": 0}, doc! {"_id": 2, "v": 0}])
        .await
        .unwrap();

    // The premise: on a document that already holds `b`, the first delta is too large.
    let scratch = pair
        .dst
        .database("scratch")
        .collection::<bson::Document>("c");
    scratch
        .insert_one(doc! {"_id": 1, "b": "b".repeat(NINE_MIB)})
        .await
        .unwrap();
    let e = scratch
        .update_one(doc! {"_id": 1}, doc! {"$set": {"a": "a".repeat(NINE_MIB)}})
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), Some(10334), "{e}");
    pair.dst.database("scratch").drop().await.unwrap();

    // The copy's read of the source waits until the events below are written.
    pair.src
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand", "mode": {"times": 1},
            "data": {"failCommands": ["find"], "blockConnection": true, "blockTimeMS": 1500,
                     "appName": "mongosync"},
        })
        .await
        .unwrap();
    let running = common::start(&pair).await;
    big.update_one(doc! {"_id": 1}, doc! {"$set": {"a": "a".repeat(NINE_MIB)}})
        .await
        .unwrap();
    big.update_one(
        doc! {"_id": 1},
        doc! {"$unset": {"a": ""}, "$set": {"b": "b".repeat(NINE_MIB)}},
    )
    .await
    .unwrap();
    big.update_one(doc! {"_id": 2}, doc! {"$set": {"v": 1}})
        .await
        .unwrap();
    // And once more after the copy, growing the document to just under the limit.
    common::wait_for(|| running.progress(), common::in_cea).await;
    big.update_one(
        doc! {"_id": 1},
        doc! {"$set": {"c": "c".repeat((16 << 20) - NINE_MIB - 1024)}},
    )
    .await
    .unwrap();
    let committed = common::commit(running).await;
    assert!(
        committed.warnings().is_empty(),
        "{:?}",
        committed.warnings()
    );
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    assert_eq!(n, 2);
}
