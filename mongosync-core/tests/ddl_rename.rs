//! DDL during the sync: renames within a database and across databases, with and without
//! `dropTarget`, onto names then re-created, and into and out of a namespace filter, while the
//! copy runs and during change application.

mod common;
mod ddl_util;

use bson::{Document, doc};
use ddl_util::{When, crud, fill, filler, finish, note, start, start_with};
use mongodb::Client;
use mongosync_core::{ClusterName, NamespaceFilter, StartOptions};

async fn rename(c: &Client, from: &str, to: &str, drop_target: bool) {
    c.database("admin")
        .run_command(doc! {"renameCollection": from, "to": to, "dropTarget": drop_target})
        .await
        .unwrap();
}

async fn within_and_across_databases(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "a", 2000, 500).await;
    fill(&pair.src, "app", "x", 1000, 500).await;
    pair.src
        .database("app")
        .run_command(doc! {"createIndexes": "a", "indexes": [
            {"key": {"k": 1}, "name": "k_1", "unique": true},
            {"key": {"pad": 1}, "name": "pad_1", "hidden": true},
        ]})
        .await
        .unwrap();
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "a", 5000).await;
    crud(&pair.src, "app", "x", 5000).await;
    rename(&pair.src, "app.a", "app.b", false).await;
    rename(&pair.src, "app.x", "other.y", false).await;
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "b", 6000).await;
    crud(&pair.src, "other", "y", 6000).await;
    finish(&pair, running).await;
    let idx = common::indexes(&pair.dst, "app", "b").await;
    assert_eq!(idx["k_1"].get_bool("unique").ok(), Some(true));
}

async fn drop_target(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "a", 2000, 500).await;
    fill(&pair.src, "app", "t", 800, 300).await;
    pair.src
        .database("app")
        .run_command(doc! {"collMod": "t", "validator": {"k": {"$exists": true}}})
        .await
        .unwrap();
    fill(&pair.src, "app", "u", 300, 100).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "a", 5000).await;
    crud(&pair.src, "app", "t", 5000).await;
    rename(&pair.src, "app.a", "app.t", true).await;
    // Across databases too, onto an existing name.
    rename(&pair.src, "app.u", "other.t", true).await;
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "t", 6000).await;
    crud(&pair.src, "other", "t", 6000).await;
    finish(&pair, running).await;
}

async fn names_re_created(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "a", 2000, 500).await;
    let running = start(&pair, when).await;
    crud(&pair.src, "app", "a", 5000).await;
    rename(&pair.src, "app.a", "app.b", false).await;
    // The old name is used again, then the new one is dropped and re-created.
    crud(&pair.src, "app", "a", 6000).await;
    crud(&pair.src, "app", "b", 6000).await;
    let db = pair.src.database("app");
    db.collection::<Document>("b").drop().await.unwrap();
    db.run_command(doc! {"create": "b", "collation": {"locale": "fr"}})
        .await
        .unwrap();
    crud(&pair.src, "app", "b", 7000).await;
    // And a rename back onto the first name.
    rename(&pair.src, "app.b", "app.a", true).await;
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "a", 8000).await;
    finish(&pair, running).await;
}

fn filtered() -> StartOptions {
    StartOptions::new(ClusterName::Cluster0)
        .include(NamespaceFilter::database("app").collections(["a", "kept", "inside"]))
        .include(NamespaceFilter::database("filler"))
}

async fn out_of_filter(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "a", 2000, 500).await;
    fill(&pair.src, "app", "kept", 200, 100).await;
    let running = start_with(&pair, when, filtered()).await;
    crud(&pair.src, "app", "a", 5000).await;
    rename(&pair.src, "app.a", "app.outside", false).await;
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "outside", 6000).await;
    crud(&pair.src, "app", "kept", 6000).await;
    let _committed = common::commit(running).await;
    let expected: Vec<(String, String)> = [("app", "kept"), ("filler", "big")]
        .iter()
        .map(|(d, c)| (d.to_string(), c.to_string()))
        .collect();
    assert_eq!(common::user_namespaces(&pair.dst).await, expected);
    common::assert_same(&pair.src, &pair.dst, Some(&expected)).await;
}

async fn into_filter(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "outside", 500, 500).await;
    fill(&pair.src, "app", "kept", 200, 100).await;
    let running = start_with(&pair, when, filtered()).await;
    rename(&pair.src, "app.outside", "app.inside", false).await;
    note(&pair, &running, when).await;
    crud(&pair.src, "app", "inside", 6000).await;
    // The sync stops when it reaches the rename (it may be able to commit before that).
    let p = common::wait_for(
        || running.progress(),
        |p| p.warnings.iter().any(|w| w.contains("app.inside")),
    )
    .await;
    let err = running.wait_can_commit().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("app.outside") && text.contains("app.inside"),
        "the error names the rename: {text}"
    );
    assert!(
        p.warnings.iter().any(|w| w.contains(&text)),
        "the error is in the warnings: {:?}",
        p.warnings
    );
    // The state is kept: what was synced stays, with the sync's metadata.
    let kept = pair.dst.database("app").collection::<Document>("kept");
    assert!(kept.count_documents(doc! {}).await.unwrap() >= 200);
    assert!(
        pair.dst
            .list_database_names()
            .await
            .unwrap()
            .contains(&"__mdb_internal_mongosync".to_string())
    );
    let mongosync_core::Error::Stopped(inner) = &err else {
        panic!("not a stop: {err:?}")
    };
    assert!(
        matches!(&**inner, mongosync_core::Error::Unsupported { .. }),
        "{inner:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_during_copy() {
    within_and_across_databases(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_during_change_application() {
    within_and_across_databases(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_drop_target_during_copy() {
    drop_target(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_drop_target_during_change_application() {
    drop_target(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_then_names_re_created_during_copy() {
    names_re_created(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_then_names_re_created_during_change_application() {
    names_re_created(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_out_of_filter_during_copy() {
    out_of_filter(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_out_of_filter_during_change_application() {
    out_of_filter(When::Cea).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_into_filter_during_copy_is_refused() {
    into_filter(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_into_filter_during_change_application_is_refused() {
    into_filter(When::Cea).await;
}

/// A capped collection renamed keeps its insertion order on the destination.
async fn capped(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    let db = pair.src.database("app");
    db.run_command(doc! {"create": "ring", "capped": true, "size": 1 << 20, "max": 500})
        .await
        .unwrap();
    let ring = db.collection::<Document>("ring");
    ring.insert_many((0..300).map(|i| doc! {"n": i, "pad": "y".repeat(300)}))
        .await
        .unwrap();
    let running = start(&pair, when).await;
    for i in 300..350 {
        ring.insert_one(doc! {"n": i}).await.unwrap();
    }
    rename(&pair.src, "app.ring", "other.ring2", false).await;
    note(&pair, &running, when).await;
    let ring2 = pair.src.database("other").collection::<Document>("ring2");
    for i in 350..600 {
        ring2.insert_one(doc! {"n": i}).await.unwrap();
    }
    finish(&pair, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_capped_during_copy() {
    capped(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_capped_during_change_application() {
    capped(When::Cea).await;
}

/// A real server renames across databases in steps: inserts into
/// `<target db>.tmpXXXXX.renameCollection`, a rename of that onto the target, a drop of the
/// source (the testkit makes one `rename` event instead; the steps are made by hand here). The
/// temporary name is outside the filter, the target inside: no error, the target is synced.
async fn cross_database_in_steps(when: When) {
    let pair = common::pair().await;
    filler(&pair.src).await;
    fill(&pair.src, "app", "a", 2000, 500).await;
    fill(&pair.src, "app", "kept", 200, 100).await;
    let running = start_with(&pair, when, filtered_with_other()).await;
    crud(&pair.src, "app", "a", 5000).await;
    let tmp = "tmpAb12C.renameCollection";
    let docs = common::documents(&pair.src, "app", "a", false).await;
    pair.src
        .database("other")
        .collection::<bson::RawDocumentBuf>(tmp)
        .insert_many(docs)
        .await
        .unwrap();
    rename(&pair.src, &format!("other.{tmp}"), "other.t", false).await;
    pair.src
        .database("app")
        .collection::<Document>("a")
        .drop()
        .await
        .unwrap();
    note(&pair, &running, when).await;
    crud(&pair.src, "other", "t", 6000).await;
    let _committed = common::commit(running).await;
    let expected: Vec<(String, String)> = [("app", "kept"), ("filler", "big"), ("other", "t")]
        .iter()
        .map(|(d, c)| (d.to_string(), c.to_string()))
        .collect();
    assert_eq!(common::user_namespaces(&pair.dst).await, expected);
    let n = common::assert_same(&pair.src, &pair.dst, Some(&expected)).await;
    assert!(n > 2000);
}

fn filtered_with_other() -> StartOptions {
    filtered().include(NamespaceFilter::database("other").collections(["t"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_across_databases_in_steps_during_copy() {
    cross_database_in_steps(When::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_across_databases_in_steps_during_change_application() {
    cross_database_in_steps(When::Cea).await;
}
