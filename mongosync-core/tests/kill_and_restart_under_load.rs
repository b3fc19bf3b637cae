//! A long sync under a continuous write load, killed (dropped) and restarted many times at
//! random points of every phase, each time by a new syncer attached to the persisted state.
//! After the final commit the comparison must be exact.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bson::doc;
use mongodb::Client;
use mongosync_core::{AnySyncer, ClusterName, Progress, StartOptions, SyncState};
use rand::Rng;

async fn load(src: Client, stop: Arc<AtomicBool>) -> u64 {
    let colls: Vec<_> = (0..3)
        .map(|i| {
            src.database("app")
                .collection::<bson::Document>(&format!("c{i}"))
        })
        .collect();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (c, id, op) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..3usize),
                rng.random_range(0..3000i32),
                rng.random_range(0..4),
            )
        };
        let coll = &colls[c];
        match op {
            0 => {
                coll.update_one(
                    doc! {"_id": id},
                    doc! {"$inc": {"n": 1}, "$set": {"at": n as i64}},
                )
                .upsert(true)
                .await
                .unwrap();
            }
            1 => {
                coll.replace_one(doc! {"_id": id}, doc! {"r": n as i64})
                    .upsert(true)
                    .await
                    .unwrap();
            }
            2 => {
                coll.delete_one(doc! {"_id": id}).await.unwrap();
            }
            _ => {
                coll.update_one(doc! {"_id": id}, doc! {"$push": {"log": n as i64}})
                    .await
                    .unwrap();
            }
        }
        n += 1;
        // Paces the load (not a synchronisation), so that the syncer keeps up.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    n
}

const CEA: &str = "change event application";

fn copied(p: &Progress) -> i64 {
    p.collection_copy
        .as_ref()
        .map_or(0, |c| c.estimated_copied_bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_kills_and_restarts_lose_nothing() {
    let pair = common::pair().await;
    for i in 0..3 {
        pair.src
            .database("app")
            .collection::<bson::Document>(&format!("c{i}"))
            .insert_many((0..3000).map(|j| doc! {"_id": j, "pad": "x".repeat(200)}))
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(load(pair.src.clone(), stop.clone()));
    let options = || {
        common::options()
            .copy_workers(2)
            .partition_bytes(32 << 10)
            .copy_batch_bytes(8 << 10)
    };

    let mut started = false;
    let mut phases = vec![];
    // Kill at random points until it has happened several times in each phase.
    let in_cea = |phases: &Vec<String>| {
        phases
            .iter()
            .filter(|p| *p == "change event application")
            .count()
    };
    for _ in 0..60 {
        if phases.len() >= 10 && in_cea(&phases) >= 3 {
            break;
        }
        let any = AnySyncer::attach(&pair.source_uri, &pair.destination_uri, options())
            .await
            .unwrap();
        let any = if started {
            assert_eq!(any.state(), SyncState::Running);
            any
        } else {
            started = true;
            any.start(StartOptions::new(ClusterName::Cluster0))
                .await
                .unwrap()
        };
        // Killed at a random point given by the sync's own progress (never by a clock): at
        // once (often while initialising), after a random amount of copying, or after a
        // random number of events applied by this syncer.
        let (now, copied_bytes, events) = {
            let mut rng = rand::rng();
            (
                rng.random_ratio(1, 6),
                rng.random_range(1..=512i64 << 10),
                rng.random_range(1..=300u64),
            )
        };
        let handle = any.handle();
        let at_attach = handle.progress();
        let p = if now {
            at_attach
        } else if at_attach.info.as_deref() == Some(CEA) {
            handle
                .wait_for(|p| p.total_events_applied.unwrap_or(0) >= events)
                .await
                .unwrap()
        } else {
            let from = copied(&at_attach);
            handle
                .wait_for(|p| p.info.as_deref() == Some(CEA) || copied(p) >= from + copied_bytes)
                .await
                .unwrap()
        };
        phases.push(p.info.unwrap_or_default());
        drop(any); // killed: no pause, no goodbye
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    let any = AnySyncer::attach(&pair.source_uri, &pair.destination_uri, options())
        .await
        .unwrap();
    let AnySyncer::Running(running) = any else {
        panic!("not running")
    };
    let _committed = common::commit(running).await;
    let n = common::assert_same(&pair.src, &pair.dst, None).await;
    eprintln!("{writes} writes, {n} documents compared, killed in phases {phases:?}");
    assert!(phases.iter().any(|p| p == "collection copy"), "{phases:?}");
    assert!(
        phases.iter().any(|p| p == "change event application"),
        "{phases:?}"
    );
}
