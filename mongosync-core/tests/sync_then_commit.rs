//! The main scenario: a source with several kinds of collections and indexes, written to while
//! it is copied (on the very documents being copied), synced, committed, and compared
//! document by document with its indexes and options.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bson::{Bson, doc, oid::ObjectId};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use mongosync_core::{ClusterName, StartOptions, SyncState, Syncer};

async fn seed(src: &Client) {
    let shop = src.database("shop");
    let orders = shop.collection::<bson::Document>("orders");
    let docs: Vec<_> = (0..3000)
        .map(|i| {
            doc! {"_id": i, "sku": format!("sku-{i:05}"), "qty": i % 7, "tags": ["a", "b", "c", "d"],
            "createdAt": bson::DateTime::now(), "nested": {"x": i, "y": {"z": "deep"}}, "pad": "p".repeat(100)}
        })
        .collect();
    orders.insert_many(docs).await.unwrap();
    orders
        .create_indexes([
            IndexModel::builder()
                .keys(doc! {"sku": 1})
                .options(IndexOptions::builder().unique(true).build())
                .build(),
            IndexModel::builder()
                .keys(doc! {"createdAt": 1})
                .options(
                    IndexOptions::builder()
                        .expire_after(Duration::from_secs(3600))
                        .build(),
                )
                .build(),
            IndexModel::builder()
                .keys(doc! {"qty": -1, "sku": 1})
                .options(IndexOptions::builder().hidden(true).build())
                .build(),
        ])
        .await
        .unwrap();

    // Every BSON type bracket of `_id` (peers.md §6.1).
    let mixed = shop.collection::<bson::Document>("mixed_ids");
    let ids = vec![
        Bson::MinKey,
        Bson::Null,
        Bson::Int32(1),
        Bson::Int64(2),
        Bson::Double(2.5),
        Bson::Double(f64::NAN),
        Bson::Double(f64::NEG_INFINITY),
        Bson::String("a".into()),
        Bson::String("zzz".into()),
        Bson::Document(doc! {"k": 1}),
        Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![1, 2],
        }),
        Bson::ObjectId(ObjectId::new()),
        Bson::Boolean(false),
        Bson::Boolean(true),
        Bson::DateTime(bson::DateTime::from_millis(5)),
        Bson::Timestamp(bson::Timestamp {
            time: 1,
            increment: 1,
        }),
        Bson::MaxKey,
    ];
    let mut many = vec![];
    for (i, id) in ids.into_iter().enumerate() {
        many.push(doc! {"_id": id, "i": i as i32, "pad": "x".repeat(2000)});
    }
    for i in 0..200 {
        many.push(doc! {"_id": format!("s{i:04}"), "pad": "y".repeat(300)});
        many.push(doc! {"_id": ObjectId::new(), "pad": "z".repeat(300)});
    }
    mixed.insert_many(many).await.unwrap();

    // A capped collection, a validator the copied documents violate, a view, an empty one.
    shop.create_collection("log")
        .capped(true)
        .size(1 << 20)
        .max(500)
        .await
        .unwrap();
    let log = shop.collection::<bson::Document>("log");
    log.insert_many((0..300).map(|i| doc! {"n": i}))
        .await
        .unwrap();
    let strict = src.database("crm").collection::<bson::Document>("strict");
    strict
        .insert_many((0..50).map(|i| doc! {"_id": i, "age": -i}))
        .await
        .unwrap();
    src.database("crm")
        .run_command(doc! {"collMod": "strict", "validator": {"age": {"$gte": 0}}, "validationAction": "error"})
        .await
        .unwrap();
    shop.create_collection("big_orders")
        .view_on("orders".to_string())
        .pipeline(vec![doc! {"$match": {"qty": {"$gte": 5}}}])
        .await
        .unwrap();
    src.database("crm")
        .create_collection("empty")
        .await
        .unwrap();
}

/// Writes on the documents being copied: updates (with dotted paths and array truncation),
/// replaces, deletes and inserts, until told to stop.
async fn write_load(src: Client, stop: Arc<AtomicBool>) -> usize {
    let orders = src.database("shop").collection::<bson::Document>("orders");
    let mut n = 0;
    let mut i = 0i32;
    while !stop.load(Ordering::Relaxed) {
        let id = (i * 37) % 3000;
        match i % 6 {
            0 => {
                orders
                    .update_one(
                        doc! {"_id": id},
                        doc! {"$set": {"nested.y.z": format!("v{i}"), "qty": i}, "$inc": {"n": 1}},
                    )
                    .await
                    .unwrap();
            }
            1 => {
                orders
                    .update_one(
                        doc! {"_id": id},
                        vec![doc! {"$set": {"tags": {"$slice": ["$tags", 2]}}}],
                    )
                    .await
                    .unwrap();
            }
            2 => {
                orders
                    .replace_one(
                        doc! {"_id": id},
                        doc! {"sku": format!("sku-{id:05}"), "replaced": i},
                    )
                    .await
                    .unwrap();
            }
            3 => {
                orders.delete_one(doc! {"_id": id}).await.unwrap();
            }
            4 => {
                orders
                    .insert_one(doc! {"_id": 10_000 + i, "sku": format!("new-{i}"), "createdAt": bson::DateTime::now()})
                    .await
                    .unwrap();
            }
            _ => {
                orders
                    .update_one(
                        doc! {"_id": id},
                        doc! {"$unset": {"nested.x": ""}, "$push": {"tags": "e"}},
                    )
                    .await
                    .unwrap();
            }
        }
        n += 1;
        i += 1;
        // Paces the load (not a synchronisation): the syncer keeps up while it runs.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_written_source_syncs_commits_and_matches_document_by_document() {
    let pair = common::pair().await;
    seed(&pair.src).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_load(pair.src.clone(), stop.clone()));

    let idle = Syncer::connect(&pair.source_uri, &pair.destination_uri, common::options())
        .await
        .unwrap();
    assert_eq!(idle.progress().state, SyncState::Idle);
    let running = idle
        .start(StartOptions::new(ClusterName::Cluster0))
        .await
        .unwrap();
    let p = common::wait_for(|| running.progress(), common::in_cea).await;
    let copy = p.collection_copy.unwrap();
    assert!(copy.estimated_copied_bytes > 500_000, "{copy:?}");
    assert_eq!(copy.estimated_copied_bytes, copy.estimated_total_bytes);

    // While change application runs, the destination's unique index is not unique yet, its
    // TTL does not expire, and its hidden index is visible.
    let dst_indexes = common::indexes(&pair.dst, "shop", "orders").await;
    assert!(!dst_indexes["sku_1"].contains_key("unique"));
    assert_eq!(
        dst_indexes["createdAt_1"]
            .get_i32("expireAfterSeconds")
            .ok(),
        Some(i32::MAX)
    );
    assert!(!dst_indexes["qty_-1_sku_1"].contains_key("hidden"));

    // The load keeps writing while change application runs: 20 more events applied.
    let applied = running.progress().total_events_applied.unwrap_or(0);
    running
        .handle()
        .wait_for(|p| p.total_events_applied.unwrap_or(0) >= applied + 20)
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let writes = load.await.unwrap();
    assert!(writes > 20, "the load wrote {writes} times");

    running.wait_can_commit().await.unwrap();
    let committing = running.commit().await.unwrap();
    let committed = committing.wait().await.unwrap();
    let p = committed.progress();
    assert_eq!(p.state, SyncState::Committed);
    assert_eq!(p.can_write, Some(true));
    assert_eq!(p.info.as_deref(), Some("commit completed"));
    assert!(p.total_events_applied.unwrap() > 0, "{p:?}");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    let compared = common::assert_same(&pair.src, &pair.dst, None).await;
    assert!(compared > 3000, "compared {compared}");
}
