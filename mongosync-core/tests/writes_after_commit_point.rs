//! Writes that keep reaching the source while the commit runs (no source write blocking) are
//! never silently lost: each is either applied to the destination before it is unblocked, or
//! reported in the warnings as not applied.
//!
//! Every step is held by a fail point that the test releases, never by timing: the source's
//! change stream (so that writes after the commit point are read in the drain, and applied),
//! then the destination's `collMod` of the restoration step (so that writes made then come
//! after the drain, and are not applied).

mod common;

use bson::{Document, doc};
use mongodb::Client;

fn reported(warnings: &[String], ns: &str, marker: &str) -> usize {
    warnings
        .iter()
        .filter(|w| w.contains(&format!("`{ns}`")) && w.contains(marker))
        .map(|w| {
            w.split_whitespace()
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}

/// Fails `commands` on `client`'s server with HostUnreachable (6, transient: the engine
/// retries until the fail point is turned off) and waits until it fired once.
async fn hold(client: &Client, commands: &[&str], namespace: Option<&str>) {
    let admin = client.database("admin");
    let mut data = doc! {"failCommands": commands, "errorCode": 6};
    if let Some(ns) = namespace {
        data.insert("namespace", ns);
    }
    let before = admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "alwaysOn", "data": data})
        .await
        .unwrap()
        .get("count")
        .and_then(bson::Bson::as_i64)
        .unwrap_or(0);
    admin
        .run_command(
            doc! {"waitForFailPoint": "failCommand", "timesEntered": before + 1,
            "maxTimeMS": 60_000},
        )
        .await
        .unwrap();
}

async fn release(client: &Client) {
    client
        .database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_source_writes_are_applied_or_reported() {
    let pair = common::pair().await;
    let late = pair.src.database("d").collection::<Document>("late");
    late.insert_one(doc! {"_id": -1, "k": -1}).await.unwrap();
    common::unique_index(&late, "k").await;
    let running = common::start(&pair).await;
    running.wait_can_commit().await.unwrap();

    // Hold the source's change stream (its getMore and the reopening aggregate, both on the
    // collectionless aggregate's namespace `admin.$cmd.aggregate`, as a real server sees them):
    // from here on the drain cannot read past the commit point until released.
    hold(
        &pair.src,
        &["getMore", "aggregate"],
        Some("admin.$cmd.aggregate"),
    )
    .await;
    let committing = running.commit().await.unwrap();
    // The commit point is taken once it is persisted (the "waiting for commit to complete"
    // phase is published before it is taken: writes seen after that phase may precede it).
    let cp = common::wait_persisted(
        &pair.dst,
        "resumeData",
        doc! {"commitPoint": {"$exists": true}},
    )
    .await
    .get_timestamp("commitPoint")
    .unwrap();
    // Late writes the drain will read: each acknowledged after the commit point.
    let mut session = pair.src.start_session().await.unwrap();
    for i in 0..50 {
        late.insert_one(doc! {"_id": i, "k": i})
            .session(&mut session)
            .await
            .unwrap();
        let t = session.operation_time().unwrap();
        assert!((t.time, t.increment) > (cp.time, cp.increment));
    }
    // Hold the restoration step, then let the drain read.
    pair.dst
        .database("admin")
        .run_command(
            doc! {"configureFailPoint": "failCommand", "mode": "alwaysOn",
            "data": {"failCommands": ["collMod"], "errorCode": 6}},
        )
        .await
        .unwrap();
    release(&pair.src).await;
    pair.dst
        .database("admin")
        .run_command(doc! {"waitForFailPoint": "failCommand", "timesEntered": 1,
        "maxTimeMS": 60_000})
        .await
        .unwrap();
    // The drain is over (the restoration follows it): these writes are not applied, and the
    // final check (after the restoration) must report them.
    for i in 50..100 {
        late.insert_one(doc! {"_id": i, "k": i}).await.unwrap();
    }
    release(&pair.dst).await;
    let committed = committing.wait().await.unwrap();

    let warnings = committed.warnings();
    let not_applied = reported(&warnings, "d.late", "were not applied");
    let applied_late = reported(&warnings, "d.late", "were applied");
    eprintln!("late writes: {applied_late} applied, {not_applied} reported as not applied");
    let on_destination = common::documents(&pair.dst, "d", "late", false).await;
    let from_source = common::documents(&pair.src, "d", "late", false).await;
    // The destination holds `_id` -1 and the first late writes, in stream order, byte for
    // byte as on the source; the count reported as applied is exact.
    assert!(on_destination.len() <= 51, "{warnings:?}");
    for (d, s) in on_destination.iter().zip(&from_source) {
        assert_eq!(d.as_bytes(), s.as_bytes());
    }
    assert_eq!(on_destination.len() - 1, applied_late, "{warnings:?}");
    // The drain read at least the first late write before it could reach the commit point.
    assert!(applied_late >= 1, "{warnings:?}");
    assert_eq!(
        applied_late + not_applied,
        100,
        "every late write is accounted for: {warnings:?}"
    );
}
