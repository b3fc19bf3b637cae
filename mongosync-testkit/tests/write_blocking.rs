//! `setUserWriteBlockMode` with the official Rust driver: who is blocked, who writes through,
//! and how the state shows in `serverStatus`.

use std::time::Duration;

use bson::{Document, doc};
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};
use mongosync_testkit::{ClusterOptions, MemoryCluster};

async fn start() -> MemoryCluster {
    MemoryCluster::start_with(ClusterOptions::default().auth("admin", "pw"))
        .await
        .expect("cluster starts")
}

async fn client_as(cluster: &MemoryCluster, user: &str) -> Client {
    let mut opts = ClientOptions::parse(cluster.uri_with_credentials(user, "pw"))
        .await
        .unwrap();
    opts.server_selection_timeout = Some(Duration::from_secs(5));
    Client::with_options(opts).unwrap()
}

/// A cluster with users `app` (readWrite on app), `restorer` (restore) and `admin` (root),
/// and one document in `app.c`.
async fn setup() -> (MemoryCluster, Client) {
    let cluster = start().await;
    let admin = client_as(&cluster, "admin").await;
    let db = admin.database("admin");
    db.run_command(
        doc! {"createUser": "app", "pwd": "pw", "roles": [{"role": "readWrite", "db": "app"}]},
    )
    .await
    .unwrap();
    db.run_command(doc! {"createUser": "restorer", "pwd": "pw", "roles": ["restore"]})
        .await
        .unwrap();
    admin
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 0})
        .await
        .unwrap();
    (cluster, admin)
}

async fn block(admin: &Client, on: bool, reason: Option<&str>) -> Result<Document, Error> {
    let mut cmd = doc! {"setUserWriteBlockMode": 1, "global": on};
    if let Some(r) = reason {
        cmd.insert("reason", r);
    }
    admin.database("admin").run_command(cmd).await
}

fn code(e: &Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        _ => None,
    }
}

fn coll(client: &Client) -> Collection<Document> {
    client.database("app").collection("c")
}

#[tokio::test]
async fn read_write_user_is_blocked_but_reads() {
    let (cluster, admin) = setup().await;
    block(&admin, true, None).await.unwrap();
    let app = client_as(&cluster, "app").await;
    let err = coll(&app).insert_one(doc! {"_id": 1}).await.unwrap_err();
    assert_eq!(code(&err), Some(371), "{err:?}");
    assert!(
        matches!(&*err.kind, ErrorKind::Write(WriteFailure::WriteError(w)) if w.message == "User writes blocked")
    );
    let err = coll(&app)
        .update_one(doc! {"_id": 0}, doc! {"$set": {"x": 1}})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(371));
    let err = app
        .database("app")
        .create_collection("d")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(371), "{err:?}");
    let err = coll(&app)
        .create_index(mongodb::IndexModel::builder().keys(doc! {"x": 1}).build())
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(371));
    let err = app.database("app").drop().await.unwrap_err();
    assert_eq!(
        code(&err),
        Some(13),
        "readWrite may not dropDatabase at all"
    );
    // Reads and change streams work.
    assert_eq!(
        coll(&app).find_one(doc! {}).await.unwrap(),
        Some(doc! {"_id": 0})
    );
    coll(&app).watch().await.expect("change stream opens");
    // A delete that matches nothing writes nothing, so nothing is blocked.
    coll(&app).delete_one(doc! {"_id": 42}).await.unwrap();
    // Unblocked: writes again.
    block(&admin, false, None).await.unwrap();
    coll(&app).insert_one(doc! {"_id": 1}).await.unwrap();
}

#[tokio::test]
async fn transactions_are_blocked_too() {
    let (cluster, admin) = setup().await;
    block(&admin, true, None).await.unwrap();
    let app = client_as(&cluster, "app").await;
    let mut session = app.start_session().await.unwrap();
    session.start_transaction().await.unwrap();
    let err = coll(&app)
        .insert_one(doc! {"_id": 5})
        .session(&mut session)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(371), "{err:?}");
    let _ = session.abort_transaction().await;
    assert_eq!(coll(&admin).count_documents(doc! {}).await.unwrap(), 1);
}

#[tokio::test]
async fn restore_user_writes_through() {
    let (cluster, admin) = setup().await;
    block(&admin, true, Some("ClusterToClusterMigrationInProgress"))
        .await
        .unwrap();
    let restorer = client_as(&cluster, "restorer").await;
    coll(&restorer).insert_one(doc! {"_id": 1}).await.unwrap();
    restorer
        .database("app")
        .create_collection("d")
        .await
        .unwrap();
    assert_eq!(coll(&admin).count_documents(doc! {}).await.unwrap(), 2);
}

#[tokio::test]
async fn root_user_writes_through() {
    let (_cluster, admin) = setup().await;
    block(&admin, true, None).await.unwrap();
    coll(&admin).insert_one(doc! {"_id": 1}).await.unwrap();
    coll(&admin)
        .update_one(doc! {"_id": 1}, doc! {"$set": {"y": 1}})
        .await
        .unwrap();
    admin.database("app").create_collection("d").await.unwrap();
    admin
        .database("app")
        .collection::<Document>("d")
        .drop()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_different_reason_is_an_illegal_operation() {
    let (_cluster, admin) = setup().await;
    block(&admin, true, Some("ClusterToClusterMigrationInProgress"))
        .await
        .unwrap();
    // Enabling again with the same reason is fine.
    block(&admin, true, Some("ClusterToClusterMigrationInProgress"))
        .await
        .unwrap();
    let err = block(&admin, true, None).await.unwrap_err();
    assert_eq!(code(&err), Some(20));
    let err = block(&admin, false, Some("DiskUseThresholdExceeded"))
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(20));
    block(&admin, false, Some("ClusterToClusterMigrationInProgress"))
        .await
        .unwrap();
    // Disabling when nothing is blocked succeeds whatever the reason.
    block(&admin, false, Some("DiskUseThresholdExceeded"))
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_commands_fail_to_parse() {
    let (cluster, admin) = setup().await;
    let db = admin.database("admin");
    let err = db
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": true, "extra": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(40415));
    let err = db
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(14));
    let err = db
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": true, "reason": "Because"})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(2));
    let err = db
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": null})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(40414));
    let err = db
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": true, "reason": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(14));
    // Not admin-only (the server's command says so); the state is global.
    admin
        .database("app")
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": false})
        .await
        .unwrap();
    // A readWrite user may not set the mode.
    let app = client_as(&cluster, "app").await;
    let err = app
        .database("admin")
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": true})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13));
}

#[tokio::test]
async fn without_auth_a_connection_that_did_not_authenticate_is_blocked() {
    let cluster = MemoryCluster::start().await.unwrap();
    let anonymous = Client::with_uri_str(cluster.uri()).await.unwrap();
    anonymous
        .database("admin")
        .run_command(doc! {"createUser": "someone", "pwd": "pw", "roles": ["readWrite"]})
        .await
        .unwrap();
    // Even the client that blocked writes: it never authenticated (server-emulation §11.1).
    block(&anonymous, true, None).await.unwrap();
    let err = coll(&anonymous)
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(371));
    let err = anonymous
        .database("app")
        .create_collection("d")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(371));
    // With authentication off, a connection that authenticated bypasses, whatever its roles.
    let someone = client_as(&cluster, "someone").await;
    coll(&someone).insert_one(doc! {"_id": 2}).await.unwrap();
    someone
        .database("app")
        .create_collection("d")
        .await
        .unwrap();
    let status = anonymous
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    assert_eq!(
        status
            .get_document("repl")
            .unwrap()
            .get_i32("userWriteBlockMode")
            .ok(),
        Some(2)
    );
}

#[tokio::test]
async fn server_status_shows_the_state() {
    let (cluster, admin) = setup().await;
    let repl = || async {
        admin
            .database("admin")
            .run_command(doc! {"serverStatus": 1})
            .await
            .unwrap()
            .get_document("repl")
            .unwrap()
            .clone()
    };
    let r = repl().await;
    assert_eq!(r.get_i32("userWriteBlockMode").ok(), Some(1));
    assert_eq!(r.get_i32("userWriteBlockReason").ok(), Some(0));
    block(&admin, true, Some("ClusterToClusterMigrationInProgress"))
        .await
        .unwrap();
    let app = client_as(&cluster, "app").await;
    assert!(coll(&app).insert_one(doc! {}).await.is_err());
    let r = repl().await;
    assert_eq!(r.get_i32("userWriteBlockMode").ok(), Some(2));
    assert_eq!(r.get_i32("userWriteBlockReason").ok(), Some(1));
    let counters = r.get_document("userWriteBlockModeCounters").unwrap();
    assert_eq!(
        counters.get_i64("ClusterToClusterMigrationInProgress").ok(),
        Some(1)
    );
    block(&admin, false, Some("ClusterToClusterMigrationInProgress"))
        .await
        .unwrap();
    assert_eq!(repl().await.get_i32("userWriteBlockMode").ok(), Some(1));
}

#[tokio::test]
async fn ttl_deletes_wait_while_writes_are_blocked() {
    let cluster = MemoryCluster::start_with(
        ClusterOptions::default()
            .auth("admin", "pw")
            .ttl_monitor_period(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let admin = client_as(&cluster, "admin").await;
    let c = admin.database("app").collection::<Document>("t");
    c.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"at": 1})
            .options(
                mongodb::options::IndexOptions::builder()
                    .expire_after(Duration::from_secs(0))
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap();
    block(&admin, true, None).await.unwrap();
    c.insert_one(doc! {"at": bson::DateTime::from_millis(0)})
        .await
        .unwrap();
    ttl_pass(&admin).await;
    assert_eq!(c.count_documents(doc! {}).await.unwrap(), 1, "TTL blocked");
    block(&admin, false, None).await.unwrap();
    ttl_pass(&admin).await;
    assert_eq!(
        c.count_documents(doc! {}).await.unwrap(),
        0,
        "TTL resumes once unblocked"
    );
}

/// Waits for a whole TTL pass begun after the call: `hangTTLMonitorBetweenPasses` holds the
/// monitor between two passes; entered once, set anew (which releases the hang), entered
/// again once the next pass is over.
async fn ttl_pass(client: &Client) {
    let admin = client.database("admin");
    let hang =
        |mode: &str| doc! {"configureFailPoint": "hangTTLMonitorBetweenPasses", "mode": mode};
    let entered = |n: i64| {
        doc! {"waitForFailPoint": "hangTTLMonitorBetweenPasses", "timesEntered": n, "maxTimeMS": 60_000}
    };
    let before = admin.run_command(hang("alwaysOn")).await.unwrap();
    let before = before.get_i64("count").unwrap();
    admin.run_command(entered(before + 1)).await.unwrap();
    admin.run_command(hang("alwaysOn")).await.unwrap();
    admin.run_command(entered(before + 2)).await.unwrap();
    admin.run_command(hang("off")).await.unwrap();
}
