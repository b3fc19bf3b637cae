//! Writes that keep reaching the source while the commit runs (no source write blocking) are
//! never silently lost: each is either applied to the destination before it is unblocked, or
//! reported in the warnings as not applied.

mod common;

use bson::doc;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_source_writes_are_applied_or_reported() {
    let pair = common::pair().await;
    let late = pair.src.database("d").collection::<bson::Document>("late");
    late.insert_one(doc! {"_id": -1, "k": -1}).await.unwrap();
    common::unique_index(&late, "k").await;
    let running = common::start(&pair).await;
    running.wait_can_commit().await.unwrap();
    // Hold the commit in its restoration step (the destination's collMod) for a while.
    pair.dst
        .database("admin")
        .run_command(
            doc! {"configureFailPoint": "failCommand", "mode": {"times": 1},
            "data": {"failCommands": ["collMod"], "blockConnection": true, "blockTimeMS": 1500}},
        )
        .await
        .unwrap();
    let committing = running.commit().await.unwrap();
    common::wait_for(
        || committing.progress(),
        |p| p.info.as_deref() == Some("waiting for commit to complete"),
    )
    .await;
    // The commit point is taken: these writes come after it, and before the final check.
    for i in 0..200 {
        late.insert_one(doc! {"_id": i, "k": i}).await.unwrap();
    }
    let committed = committing.wait().await.unwrap();
    let warnings = committed.warnings();
    let not_applied = reported(&warnings, "d.late", "were not applied");
    let applied_late = reported(&warnings, "d.late", "were applied");
    let on_destination = pair
        .dst
        .database("d")
        .collection::<bson::Document>("late")
        .count_documents(doc! {"_id": {"$gte": 0}})
        .await
        .unwrap() as usize;
    assert_eq!(on_destination, applied_late, "{warnings:?}");
    assert_eq!(
        on_destination + not_applied,
        200,
        "every late write is accounted for: {warnings:?}"
    );
    assert!(not_applied > 0, "{warnings:?}");
}
