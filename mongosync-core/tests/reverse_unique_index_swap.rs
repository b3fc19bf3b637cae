//! A reversed sync where the application swaps unique values between documents. Change
//! application spreads the events over several lanes and reorders writes across documents, so
//! the new destination (the old source) passes through duplicates: its unique indexes must be
//! non-unique while the reverse runs, and unique again after the reverse's commit. Also with
//! the reverse killed (the syncer dropped) between the steps that make an index non-unique,
//! and again once swaps were applied (with more swaps made while no syncer runs), each time
//! attached again.

mod common;

use bson::{Document, doc};
use mongodb::{Client, Collection};
use mongosync_core::{
    AnySyncer, ClusterName, ConnectOptions, StartOptions, SyncState, Syncer, WriteBlocking,
};

fn users(c: &Client) -> Collection<Document> {
    c.database("app").collection("users")
}

fn accounts(c: &Client) -> Collection<Document> {
    c.database("app").collection("accounts")
}

fn connect_options() -> ConnectOptions {
    common::options().appliers(8)
}

fn reversible() -> StartOptions {
    StartOptions::new(ClusterName::Cluster0)
        .reversible(true)
        .write_blocking(WriteBlocking::SourceAndDestination)
}

async fn seed(c: &Client) {
    users(c)
        .insert_many((0..400).map(|i| doc! {"_id": i, "email": format!("u{i}@x")}))
        .await
        .unwrap();
    common::unique_index(&users(c), "email").await;
    accounts(c)
        .insert_many((0..100).map(|i| doc! {"_id": i, "no": i}))
        .await
        .unwrap();
    common::unique_index(&accounts(c), "no").await;
}

/// Swaps the `field` values of pairs (`i`, `i + 1`) through a temporary value, as an
/// application does under a unique index.
async fn swap_pairs(coll: &Collection<Document>, field: &str, pairs: i32, round: i32) {
    for i in (0..pairs * 2).step_by(2) {
        let get = |id: i32| async move {
            coll.find_one(doc! {"_id": id})
                .await
                .unwrap()
                .unwrap()
                .get(field)
                .unwrap()
                .clone()
        };
        let (va, vb) = (get(i).await, get(i + 1).await);
        for (id, v) in [
            (i, bson::Bson::String(format!("tmp{round}-{i}"))),
            (i + 1, va),
            (i, vb),
        ] {
            coll.update_one(doc! {"_id": id}, doc! {"$set": {field: v}})
                .await
                .unwrap();
        }
    }
}

async fn swap_round(c: &Client, round: i32) {
    swap_pairs(&users(c), "email", 100, round).await;
    swap_pairs(&accounts(c), "no", 30, round).await;
}

fn unique_flag(idx: &std::collections::BTreeMap<String, Document>, name: &str) -> Option<bool> {
    idx.get(name).map(|i| i.get_bool("unique").unwrap_or(false))
}

/// The old source's unique indexes are unique again and enforced; the clusters are equal
/// (document by document, indexes and options; field order as the oracle compares it).
async fn assert_restored(pair: &common::Pair) {
    for (coll, name) in [("users", "email_1"), ("accounts", "no_1")] {
        let idx = common::indexes(&pair.src, "app", coll).await;
        assert_eq!(
            unique_flag(&idx, name),
            Some(true),
            "{coll}: {:?}",
            idx[name]
        );
        assert!(!idx[name].contains_key("prepareUnique"), "{:?}", idx[name]);
    }
    common::assert_same(&pair.src, &pair.dst, None).await;
    let e = users(&pair.src)
        .insert_one(doc! {"_id": 9000, "email": "u7@x"})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("E11000"), "{e}");
}

/// Forward sync, commit, and a reverse: returns the reversed sync, RUNNING.
async fn reversed(pair: &common::Pair) -> Syncer<mongosync_core::Running> {
    seed(&pair.src).await;
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, connect_options())
        .await
        .unwrap()
        .start(reversible())
        .await
        .unwrap();
    let committed = common::commit(running).await;
    committed.reverse().await.unwrap().wait().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapped_unique_values_in_a_reversed_sync() {
    let pair = common::pair().await;
    let running = reversed(&pair).await;
    assert_eq!(running.progress().state, SyncState::Running);
    // While the reverse runs, the old source's unique indexes are non-unique.
    let idx = common::indexes(&pair.src, "app", "users").await;
    assert_eq!(unique_flag(&idx, "email_1"), Some(false), "{idx:?}");
    for round in 0..4 {
        swap_round(&pair.dst, round).await;
    }
    running.wait_can_commit().await.unwrap();
    assert!(running.warnings().is_empty(), "{:?}", running.warnings());
    let committed = running.commit().await.unwrap().wait().await.unwrap();
    assert!(
        committed.warnings().is_empty(),
        "{:?}",
        committed.warnings()
    );
    assert_restored(&pair).await;

    // And back: the original direction as a reverse of the reverse; now cluster1's unique
    // indexes go non-unique, and are unique again after the commit.
    let running = committed.reverse().await.unwrap().wait().await.unwrap();
    let idx = common::indexes(&pair.dst, "app", "accounts").await;
    assert_eq!(unique_flag(&idx, "no_1"), Some(false), "{idx:?}");
    for round in 10..12 {
        swap_round(&pair.src, round).await;
    }
    let committed = common::commit(running).await;
    assert!(
        committed.warnings().is_empty(),
        "{:?}",
        committed.warnings()
    );
    for (coll, name) in [("users", "email_1"), ("accounts", "no_1")] {
        let idx = common::indexes(&pair.dst, "app", coll).await;
        assert_eq!(
            unique_flag(&idx, name),
            Some(true),
            "{coll}: {:?}",
            idx[name]
        );
    }
    common::assert_same(&pair.src, &pair.dst, None).await;
}

async fn fail_point(c: &Client, data: Document, times: i32) {
    c.database("admin")
        .run_command(
            doc! {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": data},
        )
        .await
        .unwrap();
}

async fn attach(pair: &common::Pair) -> AnySyncer {
    AnySyncer::attach(&pair.source_uri, &pair.destination_uri, connect_options())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reverse_killed_midway_keeps_everything_and_restores_the_indexes() {
    let pair = common::pair().await;
    seed(&pair.src).await;
    let running = Syncer::connect(&pair.source_uri, &pair.destination_uri, connect_options())
        .await
        .unwrap()
        .start(reversible())
        .await
        .unwrap();
    let committed = common::commit(running).await;

    // Kill 1: after the first index was dropped, before it was built again non-unique (the
    // engine's createIndexes is held by a fail point on the new destination).
    fail_point(
        &pair.src,
        doc! {"failCommands": ["createIndexes"], "blockConnection": true, "blockTimeMS": 60_000,
        "appName": "mongosync"},
        1,
    )
    .await;
    let reversing = committed.reverse().await.unwrap();
    let dropped = |idx: &std::collections::BTreeMap<String, Document>| {
        !idx.contains_key("email_1") || !idx.contains_key("no_1")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the reverse never dropped a unique index of the new destination"
        );
        let a = common::indexes(&pair.src, "app", "accounts").await;
        let u = common::indexes(&pair.src, "app", "users").await;
        let mut both = a;
        both.extend(u);
        if dropped(&both) {
            break;
        }
        tokio::task::yield_now().await;
    }
    drop(reversing);
    pair.src
        .database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();

    // Attached again: the reverse continues (the dropped index is built non-unique).
    let syncer = attach(&pair).await;
    assert_eq!(syncer.state(), SyncState::Running);
    let AnySyncer::Running(r) = &syncer else {
        unreachable!()
    };
    let mapping = r.progress().direction_mapping.unwrap();
    assert!(mapping.source.starts_with("cluster1"), "{mapping:?}");
    swap_round(&pair.dst, 0).await;
    r.handle()
        .wait_for(|p| p.total_events_applied.unwrap_or(0) > 0)
        .await
        .unwrap();

    // Kill 2: once swaps were applied; more come while no syncer runs.
    drop(syncer);
    swap_round(&pair.dst, 1).await;
    let syncer = attach(&pair).await;
    assert_eq!(syncer.state(), SyncState::Running);
    for (coll, name) in [("users", "email_1"), ("accounts", "no_1")] {
        let idx = common::indexes(&pair.src, "app", coll).await;
        assert_eq!(unique_flag(&idx, name), Some(false), "{coll}: {idx:?}");
    }
    swap_round(&pair.dst, 2).await;
    let AnySyncer::Running(r) = &syncer else {
        unreachable!()
    };
    r.wait_can_commit().await.unwrap();
    let committed = syncer.commit().await.unwrap().wait().await.unwrap();
    assert_eq!(committed.state(), SyncState::Committed);
    let AnySyncer::Committed(c) = &committed else {
        unreachable!()
    };
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    assert_restored(&pair).await;
}
