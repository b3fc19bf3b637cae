//! Administration commands through the official Rust driver: fsync locks (writes held until
//! the last unlock, visible in `currentOp`, killable with `killOp`), `getParameter` /
//! `setParameter`, `getDefaultRWConcern` / `setDefaultRWConcern`,
//! `setFeatureCompatibilityVersion`, `profile`, `logRotate`, `dropConnections`,
//! `autoCompact`. Codes and messages are the server's (see `commands/admin.rs`).

use std::time::Duration;

use bson::{Bson, Document, doc};
use mongodb::error::{Error, ErrorKind};
use mongodb::{Client, Database};
use mongosync_testkit::{ClusterOptions, MemoryCluster};

async fn admin(cluster: &MemoryCluster) -> (Client, Database) {
    let c = Client::with_uri_str(cluster.uri()).await.unwrap();
    let a = c.database("admin");
    (c, a)
}

fn code(e: &Error) -> i32 {
    match &*e.kind {
        ErrorKind::Command(c) => c.code,
        other => panic!("not a command error: {other:?}"),
    }
}

fn message(e: &Error) -> String {
    match &*e.kind {
        ErrorKind::Command(c) => c.message.clone(),
        other => panic!("not a command error: {other:?}"),
    }
}

/// Runs `cmd` and checks that the server refuses it with `want` (code, message).
async fn assert_refused(db: &Database, cmd: Document, want: (i32, &str)) {
    let e = db.run_command(cmd.clone()).await.unwrap_err();
    assert_eq!(
        (code(&e), message(&e)),
        (want.0, want.1.to_string()),
        "{cmd}"
    );
}

/// Waits until `currentOp` shows an insert waiting for the fsync lock; returns its opid.
async fn blocked_insert_opid(admin: &Database) -> i64 {
    loop {
        let r = admin
            .run_command(doc! {"currentOp": 1, "waitingForLock": true, "command.insert": "c"})
            .await
            .unwrap();
        if let Some(Bson::Document(op)) = r.get_array("inprog").unwrap().first() {
            assert_eq!(op.get_str("ns").unwrap(), "app.c");
            return op.get_i64("opid").unwrap();
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn fsync_lock_holds_writes_until_the_last_unlock() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (client, admin) = admin(&cluster).await;
    let coll = client.database("app").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0}).await.unwrap();

    // Without lock: a flush, nothing held.
    let r = admin.run_command(doc! {"fsync": 1}).await.unwrap();
    assert_eq!(r.get_i32("numFiles").unwrap(), 1);

    let e = admin
        .run_command(doc! {"fsyncUnlock": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 20);
    assert_eq!(message(&e), "fsyncUnlock called when not locked");

    // Two locks: a lock count of 2, and writes held until both are released.
    for n in 1..=2i64 {
        let r = admin
            .run_command(doc! {"fsync": 1, "lock": true})
            .await
            .unwrap();
        assert_eq!(r.get_i64("lockCount").unwrap(), n);
        assert_eq!(
            r.get_str("info").unwrap(),
            "now locked against writes, use db.fsyncUnlock() to unlock"
        );
    }
    let op = admin.run_command(doc! {"currentOp": 1}).await.unwrap();
    assert!(op.get_bool("fsyncLock").unwrap());

    let writer = {
        let coll = coll.clone();
        tokio::spawn(async move { coll.insert_one(doc! {"_id": 1}).await })
    };
    blocked_insert_opid(&admin).await;
    // Reads go on while writes wait.
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1);

    let r = admin.run_command(doc! {"fsyncUnlock": 1}).await.unwrap();
    assert_eq!(r.get_i64("lockCount").unwrap(), 1);
    // Still locked: the write still waits (it shows in currentOp again).
    blocked_insert_opid(&admin).await;
    assert!(!writer.is_finished());

    let r = admin.run_command(doc! {"fsyncUnlock": 1}).await.unwrap();
    assert_eq!(r.get_i64("lockCount").unwrap(), 0);
    assert_eq!(r.get_str("info").unwrap(), "fsyncUnlock completed");
    writer.await.unwrap().unwrap();
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 2);
}

/// `profile` (`profile_common.cpp`, `profile.idl`): the level and filter are the database's,
/// `slowms` and `sampleRate` the server's; each reply shows the settings before the command,
/// the filter as its parsed match expression, with a note while a filter is involved.
#[tokio::test]
async fn profile_settings_per_database_and_global_thresholds() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (client, _admin) = admin(&cluster).await;
    let (app, other) = (client.database("app"), client.database("other"));
    let note = "When a filter expression is set, slowms and sampleRate are not used for profiling and slow-query log lines.";
    // The reply without its cluster-time fields.
    let bare = |mut r: Document| {
        r.remove("$clusterTime");
        r.remove("operationTime");
        r
    };
    let r = bare(
        app.run_command(
            doc! {"profile": 1, "slowms": 50, "sampleRate": 0.5, "filter": {"op": "query"}},
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        r,
        doc! {"was": 0, "slowms": 100, "sampleRate": 1.0, "note": note, "ok": 1.0},
        "{r}"
    );
    let r = app.run_command(doc! {"profile": -1}).await.unwrap();
    assert_eq!(r.get_i32("was").unwrap(), 1);
    assert_eq!(
        r.get_document("filter").unwrap(),
        &doc! {"op": {"$eq": "query"}}
    );
    assert_eq!(r.get_str("note").unwrap(), note);
    // The thresholds are global; another database has its own level and no filter.
    let r = bare(other.run_command(doc! {"profile": -1}).await.unwrap());
    assert_eq!(
        r,
        doc! {"was": 0, "slowms": 50, "sampleRate": 0.5, "ok": 1.0},
        "{r}"
    );
    app.run_command(doc! {"profile": 0, "filter": "unset"})
        .await
        .unwrap();
    let r = app.run_command(doc! {"profile": -1}).await.unwrap();
    assert_eq!(r.get_i32("was").unwrap(), 0);
    assert!(!r.contains_key("filter") && !r.contains_key("note"), "{r}");

    for (cmd, want) in [
        (
            doc! {"profile": 0, "sampleRate": 2},
            (2, "'sampleRate' must be between 0.0 and 1.0 inclusive"),
        ),
        (
            doc! {"profile": 0, "filter": 3},
            (2, "Expected an object, or the string 'unset'."),
        ),
        (
            doc! {"profile": "all"},
            (
                14,
                "BSON field 'profile.profile' is the wrong type 'string', expected types '[long, int, decimal, double]'",
            ),
        ),
    ] {
        assert_refused(&app, cmd, want).await;
    }
}

/// `fsync.idl` is strict: unknown fields (the legacy `async` among them) are refused, `lock`
/// is a `safeBool`, `fsyncLockAcquisitionTimeoutMillis` an `int`; null reads as omitted.
#[tokio::test]
async fn fsync_arguments_are_parsed_as_its_idl() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (_client, admin) = admin(&cluster).await;
    for (cmd, want) in [
        (
            doc! {"fsync": 1, "async": true},
            (40415, "BSON field 'fsync.async' is an unknown field."),
        ),
        (
            doc! {"fsync": 1, "lock": "yes"},
            (
                14,
                "BSON field 'fsync.lock' is the wrong type 'string', expected types '[bool, long, int, decimal, double]'",
            ),
        ),
        (
            doc! {"fsync": 1, "lock": true, "fsyncLockAcquisitionTimeoutMillis": 1.5},
            (
                14,
                "BSON field 'fsync.fsyncLockAcquisitionTimeoutMillis' is the wrong type 'double', expected type 'int'",
            ),
        ),
    ] {
        assert_refused(&admin, cmd, want).await;
    }
    // Nothing was locked by the refused commands; a null lock is no lock.
    let r = admin
        .run_command(doc! {"fsync": 1, "lock": null})
        .await
        .unwrap();
    assert_eq!(r.get_i32("numFiles").unwrap(), 1);
    let e = admin
        .run_command(doc! {"fsyncUnlock": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 20);
}

#[tokio::test]
async fn kill_op_interrupts_a_write_waiting_for_the_fsync_lock() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (client, admin) = admin(&cluster).await;
    let coll = client.database("app").collection::<Document>("c");
    admin
        .run_command(doc! {"fsync": 1, "lock": true})
        .await
        .unwrap();
    let writer = {
        let coll = coll.clone();
        tokio::spawn(async move { coll.insert_one(doc! {"_id": 1}).await })
    };
    let opid = blocked_insert_opid(&admin).await;
    let r = admin
        .run_command(doc! {"killOp": 1, "op": opid})
        .await
        .unwrap();
    assert_eq!(r.get_str("info").unwrap(), "attempting to kill op");
    let e = writer.await.unwrap().unwrap_err();
    assert_eq!(code(&e), 11601);
    admin.run_command(doc! {"fsyncUnlock": 1}).await.unwrap();
    // Nothing was written by the killed insert.
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 0);

    // `op` is read by `bsonExtractIntegerField` and must fit 32 bits (`parseOpId`); killOp is
    // not an IDL command, so other fields are ignored.
    for (cmd, want) in [
        (
            doc! {"killOp": 1, "op": "x"},
            (
                14,
                "Expected field \"op\" to have numeric type, but found string",
            ),
        ),
        (doc! {"killOp": 1}, (4, "Missing expected field \"op\"")),
        (
            doc! {"killOp": 1, "op": 1.5},
            (
                2,
                "Expected field \"op\" to have a value exactly representable as a 64-bit integer, but found op: 1.5",
            ),
        ),
        (
            doc! {"killOp": 1, "op": 1i64 << 40},
            (
                26823,
                "invalid op : 1099511627776. Op ID cannot be represented with 32 bits",
            ),
        ),
    ] {
        assert_refused(&admin, cmd, want).await;
    }
    admin
        .run_command(doc! {"killOp": 1, "op": 123456, "comment": "x", "extra": true})
        .await
        .unwrap();
}

#[tokio::test]
async fn current_op_shows_itself_and_filters() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (_client, admin) = admin(&cluster).await;
    let r = admin
        .run_command(doc! {"currentOp": 1, "$ownOps": true})
        .await
        .unwrap();
    let ops = r.get_array("inprog").unwrap();
    let me = ops
        .iter()
        .filter_map(Bson::as_document)
        .find(|o| {
            o.get_document("command")
                .is_ok_and(|c| c.contains_key("currentOp"))
        })
        .expect("currentOp lists itself");
    assert_eq!(me.get_str("op").unwrap(), "command");
    assert!(me.get_bool("active").unwrap());
    assert!(me.get_i64("opid").is_ok());
    let none = admin
        .run_command(doc! {"currentOp": 1, "ns": "nowhere.at.all"})
        .await
        .unwrap();
    assert!(none.get_array("inprog").unwrap().is_empty());
    let e = client_db(&cluster, "app")
        .await
        .run_command(doc! {"currentOp": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 13);
}

async fn client_db(cluster: &MemoryCluster, db: &str) -> Database {
    Client::with_uri_str(cluster.uri())
        .await
        .unwrap()
        .database(db)
}

#[tokio::test]
async fn parameters_round_trip_with_the_servers_errors() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (_client, admin) = admin(&cluster).await;
    let r = admin
        .run_command(doc! {"getParameter": 1, "cursorTimeoutMillis": 1})
        .await
        .unwrap();
    assert_eq!(r.get_i64("cursorTimeoutMillis").unwrap(), 600_000);

    // `was` is the previous value; the new one is read back with its type.
    let r = admin
        .run_command(doc! {"setParameter": 1, "cursorTimeoutMillis": 1000})
        .await
        .unwrap();
    assert_eq!(r.get_i64("was").unwrap(), 600_000);
    let r = admin
        .run_command(doc! {"getParameter": {"showDetails": true}, "cursorTimeoutMillis": 1})
        .await
        .unwrap();
    let d = r.get_document("cursorTimeoutMillis").unwrap();
    assert_eq!(d.get_i64("value").unwrap(), 1000);
    assert!(d.get_bool("settableAtRuntime").unwrap());

    let all = admin.run_command(doc! {"getParameter": "*"}).await.unwrap();
    assert_eq!(
        all.get_document("featureCompatibilityVersion")
            .unwrap()
            .get_str("version")
            .unwrap(),
        "8.0"
    );

    let e = admin
        .run_command(doc! {"setParameter": 1, "noSuchParameter": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 72);
    assert_eq!(
        message(&e),
        "attempted to set unrecognized parameter [noSuchParameter], use help:true to see options "
    );
    let e = admin
        .run_command(doc! {"setParameter": 1, "enableTestCommands": false})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 20);
    assert_eq!(
        message(&e),
        "not allowed to change [enableTestCommands] at runtime"
    );
    let e = admin
        .run_command(doc! {"setParameter": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 72);
    let e = admin
        .run_command(doc! {"setParameter": 1, "notablescan": "yes"})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 2);
    // A batch with one bad parameter changes nothing.
    let e = admin
        .run_command(doc! {"setParameter": 1, "logLevel": 2, "nope": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 72);
    let r = admin
        .run_command(doc! {"getParameter": 1, "logLevel": 1})
        .await
        .unwrap();
    assert_eq!(r.get_i32("logLevel").unwrap(), 0);
    let e = client_db(&cluster, "app")
        .await
        .run_command(doc! {"setParameter": 1, "logLevel": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 13);
    assert_eq!(
        message(&e),
        "setParameter may only be run against the admin database."
    );
}

/// The monitor's switch round-trips and expiry resumes once it is on again. (That a disabled
/// monitor deletes nothing cannot be observed without waiting: the server counts no pass
/// while it is disabled.)
#[tokio::test]
async fn ttl_monitor_enabled_round_trips_and_expiry_resumes() {
    let cluster = MemoryCluster::start_with(
        ClusterOptions::default().ttl_monitor_period(Duration::from_millis(20)),
    )
    .await
    .unwrap();
    let (client, admin) = admin(&cluster).await;
    let r = admin
        .run_command(doc! {"setParameter": 1, "ttlMonitorEnabled": false})
        .await
        .unwrap();
    assert!(r.get_bool("was").unwrap());
    let db = client.database("app");
    db.run_command(doc! {"createIndexes": "t", "indexes": [
        {"key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 0}
    ]})
    .await
    .unwrap();
    let coll = db.collection::<Document>("t");
    coll.insert_one(doc! {"_id": 1, "at": bson::DateTime::from_millis(0)})
        .await
        .unwrap();
    let r = admin
        .run_command(doc! {"getParameter": 1, "ttlMonitorEnabled": 1})
        .await
        .unwrap();
    assert!(!r.get_bool("ttlMonitorEnabled").unwrap());
    admin
        .run_command(doc! {"setParameter": 1, "ttlMonitorEnabled": true})
        .await
        .unwrap();
    while coll.count_documents(doc! {}).await.unwrap() != 0 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn default_read_write_concerns_round_trip() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (_client, admin) = admin(&cluster).await;
    let r = admin
        .run_command(doc! {"getDefaultRWConcern": 1})
        .await
        .unwrap();
    assert_eq!(r.get_str("defaultWriteConcernSource").unwrap(), "implicit");
    assert_eq!(r.get_str("defaultReadConcernSource").unwrap(), "implicit");
    assert!(!r.contains_key("updateOpTime"));
    assert!(r.get_datetime("localUpdateWallClockTime").is_ok());

    let r = admin
        .run_command(doc! {
            "setDefaultRWConcern": 1,
            "defaultReadConcern": {"level": "majority"},
            "defaultWriteConcern": {"w": 1},
        })
        .await
        .unwrap();
    assert_eq!(
        r.get_document("defaultWriteConcern").unwrap(),
        &doc! {"w": 1, "wtimeout": 0}
    );
    assert!(r.get_timestamp("updateOpTime").is_ok());
    assert!(r.get_datetime("localUpdateWallClockTime").is_ok());

    // Setting only the read concern keeps the write concern.
    admin
        .run_command(doc! {"setDefaultRWConcern": 1, "defaultReadConcern": {"level": "local"}})
        .await
        .unwrap();
    let r = admin
        .run_command(doc! {"getDefaultRWConcern": 1})
        .await
        .unwrap();
    assert_eq!(
        r.get_document("defaultReadConcern").unwrap(),
        &doc! {"level": "local"}
    );
    assert_eq!(
        r.get_document("defaultWriteConcern").unwrap(),
        &doc! {"w": 1, "wtimeout": 0}
    );
    assert_eq!(r.get_str("defaultWriteConcernSource").unwrap(), "global");
    assert_eq!(r.get_str("defaultReadConcernSource").unwrap(), "global");
    // `makeResponse` (`rwc_defaults_commands.cpp`): always the cache's update time, `inMemory`
    // only when the cached values were asked for; `inMemory` is an IDL bool.
    let set_at = r.get_datetime("localUpdateWallClockTime").unwrap();
    assert!(!r.contains_key("inMemory"));
    let r = admin
        .run_command(doc! {"getDefaultRWConcern": 1, "inMemory": true})
        .await
        .unwrap();
    assert!(r.get_bool("inMemory").unwrap());
    assert_eq!(r.get_datetime("localUpdateWallClockTime").unwrap(), set_at);
    let e = admin
        .run_command(doc! {"getDefaultRWConcern": 1, "inMemory": 1})
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e), message(&e)),
        (
            14,
            "BSON field 'getDefaultRWConcern.inMemory' is the wrong type 'int', expected type 'bool'"
                .to_string()
        )
    );

    for (cmd, want) in [
        (doc! {"setDefaultRWConcern": 1}, 2),
        (
            doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": {"w": 0}},
            2,
        ),
        (
            doc! {"setDefaultRWConcern": 1, "defaultReadConcern": {"level": "snapshot"}},
            2,
        ),
        // Once set, the write concern cannot be unset.
        (
            doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": {}},
            20,
        ),
    ] {
        let e = admin.run_command(cmd.clone()).await.unwrap_err();
        assert_eq!(code(&e), want, "{cmd}");
    }
    let e = admin
        .run_command(doc! {"setDefaultRWConcern": 1, "defaultReadConcern": {"level": "snapshot"}})
        .await
        .unwrap_err();
    assert_eq!(
        message(&e),
        "level: 'snapshot' is not suitable for the default read concern"
    );
}

#[tokio::test]
async fn feature_compatibility_version_and_smaller_commands() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (client, admin) = admin(&cluster).await;
    let e = admin
        .run_command(doc! {"setFeatureCompatibilityVersion": "7.0"})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 7369100);
    let e = admin
        .run_command(doc! {"setFeatureCompatibilityVersion": "5.0", "confirm": true})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 2);
    // The version is an `fcv_string` the IDL parser checks before `confirm` is looked at.
    let e = admin
        .run_command(doc! {"setFeatureCompatibilityVersion": "5.0"})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 2);
    admin
        .run_command(doc! {"setFeatureCompatibilityVersion": "7.0", "confirm": true})
        .await
        .unwrap();
    let r = admin
        .run_command(doc! {"getParameter": 1, "featureCompatibilityVersion": 1})
        .await
        .unwrap();
    assert_eq!(
        r.get_document("featureCompatibilityVersion").unwrap(),
        &doc! {"version": "7.0"}
    );

    let app = client.database("app");
    let r = app
        .run_command(doc! {"profile": 1, "slowms": 5})
        .await
        .unwrap();
    assert_eq!(r.get_i32("was").unwrap(), 0);
    assert_eq!(r.get_i32("slowms").unwrap(), 100);
    let r = app.run_command(doc! {"profile": -1}).await.unwrap();
    assert_eq!(r.get_i32("was").unwrap(), 1);
    assert_eq!(r.get_i32("slowms").unwrap(), 5);
    // A level outside [0, 2] only reads (mongod's `CmdProfile`): the level stays 1.
    app.run_command(doc! {"profile": 7}).await.unwrap();
    let r = app.run_command(doc! {"profile": -1}).await.unwrap();
    assert_eq!(r.get_i32("was").unwrap(), 1);

    admin.run_command(doc! {"logRotate": 1}).await.unwrap();
    let e = admin
        .run_command(doc! {"logRotate": "nope"})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 4);
    admin
        .run_command(doc! {"dropConnections": 1, "hostAndPort": ["localhost:1"]})
        .await
        .unwrap();
    let e = admin
        .run_command(doc! {"dropConnections": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 40414);
    admin.run_command(doc! {"autoCompact": true}).await.unwrap();
    let e = admin
        .run_command(doc! {"autoCompact": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 14);
}

/// The stage names from the winning plan down.
fn stages(plan: &Document) -> Vec<String> {
    let mut out = vec![plan.get_str("stage").unwrap().to_string()];
    if let Ok(inner) = plan.get_document("inputStage") {
        out.extend(stages(inner));
    }
    out
}

async fn explain(db: &Database, cmd: Document, verbosity: &str) -> Document {
    db.run_command(doc! {"explain": cmd, "verbosity": verbosity})
        .await
        .unwrap()
}

fn winning(r: &Document) -> Vec<String> {
    stages(
        r.get_document("queryPlanner")
            .unwrap()
            .get_document("winningPlan")
            .unwrap(),
    )
}

#[tokio::test]
async fn explain_shows_the_index_a_query_uses_and_writes_nothing() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("app");
    let coll = db.collection::<Document>("c");
    coll.insert_many((0..10).map(|i| doc! {"_id": i, "a": i % 3, "b": i}))
        .await
        .unwrap();
    db.run_command(doc! {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1"}]})
        .await
        .unwrap();

    let r = explain(
        &db,
        doc! {"find": "c", "filter": {"_id": 4}},
        "queryPlanner",
    )
    .await;
    assert_eq!(winning(&r), ["EXPRESS_IDHACK"]);
    assert!(!r.contains_key("executionStats"));
    assert_eq!(
        r.get_document("queryPlanner")
            .unwrap()
            .get_str("namespace")
            .unwrap(),
        "app.c"
    );

    let r = explain(
        &db,
        doc! {"find": "c", "filter": {"a": 1, "b": {"$gt": 3}}},
        "executionStats",
    )
    .await;
    assert_eq!(winning(&r), ["FETCH", "IXSCAN"]);
    let plan = r
        .get_document("queryPlanner")
        .unwrap()
        .get_document("winningPlan")
        .unwrap();
    let ixscan = plan.get_document("inputStage").unwrap();
    assert_eq!(ixscan.get_str("indexName").unwrap(), "a_1");
    assert_eq!(
        ixscan.get_document("indexBounds").unwrap(),
        &doc! {"a": ["[1, 1]"]}
    );
    assert_eq!(
        plan.get_document("filter").unwrap(),
        &doc! {"b": {"$gt": 3}}
    );
    // a == 1 for 1, 4, 7; b > 3 leaves 4 and 7.
    let stats = r.get_document("executionStats").unwrap();
    assert_eq!(stats.get_i64("nReturned").unwrap(), 2);

    let r = explain(
        &db,
        doc! {"find": "c", "filter": {"b": 3}, "sort": {"b": -1}, "limit": 1},
        "executionStats",
    )
    .await;
    assert_eq!(winning(&r), ["SORT", "COLLSCAN"]);
    let stats = r.get_document("executionStats").unwrap();
    assert_eq!(stats.get_i64("totalDocsExamined").unwrap(), 10);
    assert_eq!(
        r.get_document("queryPlanner")
            .unwrap()
            .get_document("parsedQuery")
            .unwrap(),
        &doc! {"b": {"$eq": 3}}
    );

    // A hidden index is not used.
    db.run_command(doc! {"collMod": "c", "index": {"name": "a_1", "hidden": true}})
        .await
        .unwrap();
    let r = explain(&db, doc! {"find": "c", "filter": {"a": 1}}, "queryPlanner").await;
    assert_eq!(winning(&r), ["COLLSCAN"]);

    let r = explain(&db, doc! {"count": "c"}, "queryPlanner").await;
    assert_eq!(winning(&r), ["COUNT", "RECORD_STORE_FAST_COUNT"]);

    // Explaining writes writes nothing.
    let r = explain(
        &db,
        doc! {"delete": "c", "deletes": [{"q": {"b": {"$lt": 5}}, "limit": 0}]},
        "executionStats",
    )
    .await;
    assert_eq!(winning(&r), ["DELETE", "COLLSCAN"]);
    let r = explain(
        &db,
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"x": 1}}}]},
        "executionStats",
    )
    .await;
    assert_eq!(winning(&r)[0], "UPDATE");
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 10);
    assert_eq!(coll.count_documents(doc! {"x": 1}).await.unwrap(), 0);

    // A missing collection explains as EOF; bad input names what is allowed.
    let r = explain(&db, doc! {"find": "nope"}, "queryPlanner").await;
    assert_eq!(winning(&r), ["EOF"]);
    let e = db
        .run_command(doc! {"explain": {"find": "c"}, "verbosity": "loud"})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 2);
    let e = db
        .run_command(doc! {"explain": {"noSuchCommand": "c"}})
        .await
        .unwrap_err();
    assert_eq!(code(&e), 59);
    assert_eq!(
        message(&e),
        "Explain failed due to unknown command: noSuchCommand"
    );
}

/// The explained command is parsed by its own IDL (`CmdExplain::parse` hands it to the
/// command's parser): an unknown field in it is refused under that command's name.
#[tokio::test]
async fn explain_refuses_unknown_fields_of_the_explained_command() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("app");
    for (inner, name) in [
        (doc! {"find": "c", "filtr": {}}, "find"),
        (doc! {"count": "c", "filtr": {}}, "count"),
        (doc! {"distinct": "c", "key": "a", "filtr": {}}, "distinct"),
        (
            doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "filtr": {}},
            "aggregate",
        ),
        (
            doc! {"findAndModify": "c", "remove": true, "filtr": {}},
            "findAndModify",
        ),
    ] {
        let e = db
            .run_command(doc! {"explain": inner.clone(), "verbosity": "queryPlanner"})
            .await
            .unwrap_err();
        assert_eq!(
            (code(&e), message(&e)),
            (
                40415,
                format!("BSON field '{name}.filtr' is an unknown field.")
            ),
            "{inner}"
        );
    }
    // Generic arguments inside it are fine.
    db.run_command(doc! {"explain": {"find": "c", "comment": "why"}, "verbosity": "queryPlanner"})
        .await
        .unwrap();
}

/// `aggregate` with `explain: true` is the aggregate's own explain form: it answers the plan at
/// `queryPlanner` verbosity instead of running the pipeline (no cursor, nothing executed).
#[tokio::test]
async fn an_aggregate_with_explain_true_answers_its_plan() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("app");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1, "a": 1})
        .await
        .unwrap();
    let r = db
        .run_command(doc! {"aggregate": "c", "pipeline": [{"$match": {"a": 1}}], "explain": true})
        .await
        .unwrap();
    assert!(!r.contains_key("cursor"), "{r}");
    assert_eq!(r.get_str("explainVersion").unwrap(), "1");
    let planner = r.get_document("queryPlanner").unwrap();
    assert_eq!(planner.get_str("namespace").unwrap(), "app.c");
    assert_eq!(
        planner.get_document("parsedQuery").unwrap(),
        &doc! {"a": {"$eq": 1}}
    );
    assert!(!r.contains_key("executionStats"), "{r}");
    assert_eq!(
        r.get_document("command")
            .unwrap()
            .get_str("aggregate")
            .unwrap(),
        "c"
    );
    // Both forms at once are refused (`PipelineCommand::explain`).
    let e = db
        .run_command(doc! {
            "explain": {"aggregate": "c", "pipeline": [], "explain": true},
            "verbosity": "queryPlanner",
        })
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e), message(&e)),
        (
            9,
            "The 'explain' option is illegal when an explain verbosity is also provided"
                .to_string()
        )
    );
}

/// `getLog` (`CmdGetLog`): `*` names the logs, `global`/`startupWarnings` answer lines, another
/// name is OperationFailed; the argument is a required string.
#[tokio::test]
async fn get_log_knows_its_logs() {
    let cluster = MemoryCluster::start().await.unwrap();
    let (_client, admin) = admin(&cluster).await;
    let r = admin.run_command(doc! {"getLog": "*"}).await.unwrap();
    assert_eq!(
        r.get_array("names").unwrap(),
        &vec![Bson::from("global"), Bson::from("startupWarnings")]
    );
    admin
        .run_command(doc! {"getLog": "startupWarnings"})
        .await
        .unwrap();
    for (cmd, want) in [
        (doc! {"getLog": "nope"}, (96, "No log named 'nope'")),
        (
            doc! {"getLog": null},
            (
                40414,
                "BSON field 'getLog.getLog' is missing but a required field",
            ),
        ),
        (
            doc! {"getLog": []},
            (
                14,
                "BSON field 'getLog.getLog' is the wrong type 'array', expected type 'string'",
            ),
        ),
    ] {
        assert_refused(&admin, cmd, want).await;
    }
}
