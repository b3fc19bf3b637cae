//! Session commands as a real 8.x server answers them: `startSession`, and `commitTransaction` /
//! `abortTransaction` sent outside a transaction (codes and messages recorded on a real server).

use bson::{Bson, doc};
use mongodb::Client;
use mongosync_testkit::MemoryCluster;

fn code_and_message(e: &mongodb::error::Error) -> (i32, String) {
    match &*e.kind {
        mongodb::error::ErrorKind::Command(c) => (c.code, c.message.clone()),
        other => panic!("not a command error: {other:?}"),
    }
}

#[tokio::test]
async fn start_session_returns_a_new_uuid_and_the_timeout() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let a = client
        .database("admin")
        .run_command(doc! {"startSession": 1})
        .await
        .unwrap();
    let b = client
        .database("admin")
        .run_command(doc! {"startSession": 1})
        .await
        .unwrap();
    let id = |d: &bson::Document| d.get_document("id").unwrap().get("id").cloned().unwrap();
    assert!(
        matches!(id(&a), Bson::Binary(ref bin) if bin.subtype == bson::spec::BinarySubtype::Uuid && bin.bytes.len() == 16)
    );
    assert_ne!(id(&a), id(&b));
    assert_eq!(a.get_i32("timeoutMinutes").unwrap(), 30);
}

#[tokio::test]
async fn commit_and_abort_outside_a_transaction_fail_as_the_server() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let admin = client.database("admin");
    for (cmd, name) in [
        ("commitTransaction", "CommitTransaction"),
        ("abortTransaction", "AbortTransaction"),
    ] {
        // The driver attaches an implicit session; no txnNumber, no autocommit.
        let e = admin.run_command(doc! {cmd: 1}).await.unwrap_err();
        assert_eq!(
            code_and_message(&e),
            (125, format!("{name} must be run within a transaction"))
        );
        let lsid = doc! {"id": bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: uuid::Uuid::new_v4().as_bytes().to_vec(),
        }};
        let e = admin
            .run_command(doc! {cmd: 1, "lsid": lsid.clone(), "txnNumber": 1_i64})
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(&e),
            (
                50768,
                format!(
                    "txnNumber may only be provided for multi-document transactions and retryable write commands. autocommit:false was not provided, and {name} is not a retryable write command."
                )
            )
        );
        // Admin-only commands: another database is refused before the transaction is sought.
        let e = client
            .database("app")
            .run_command(doc! {cmd: 1})
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(&e),
            (
                13,
                format!("{cmd} may only be run against the admin database.")
            )
        );
        let e = admin
            .run_command(doc! {cmd: 1, "lsid": lsid, "autocommit": false})
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(&e),
            (
                72,
                "'autocommit' field requires a transaction number to also be specified".to_string()
            )
        );
    }
    // Outside a transaction a txnNumber is for retryable writes only; other commands are
    // refused under their own names (an alias under its canonical one).
    let lsid = doc! {"id": bson::Binary {
        subtype: bson::spec::BinarySubtype::Uuid,
        bytes: uuid::Uuid::new_v4().as_bytes().to_vec(),
    }};
    let app = client.database("app");
    for (cmd, name) in [
        (doc! {"find": "c"}, "find"),
        (
            doc! {"aggregate": "c", "pipeline": [], "cursor": {}},
            "aggregate",
        ),
        (doc! {"count": "c"}, "count"),
        (doc! {"create": "fresh"}, "create"),
    ] {
        let mut cmd = cmd;
        cmd.insert("lsid", lsid.clone());
        cmd.insert("txnNumber", 7_i64);
        let e = app.run_command(cmd).await.unwrap_err();
        assert_eq!(
            code_and_message(&e),
            (
                50768,
                format!(
                    "txnNumber may only be provided for multi-document transactions and retryable write commands. autocommit:false was not provided, and {name} is not a retryable write command."
                )
            )
        );
    }
    let names = app.list_collection_names().await.unwrap();
    assert!(
        !names.contains(&"fresh".to_string()),
        "the refused create ran"
    );
    // A retryable write takes one.
    app.run_command(
        doc! {"insert": "c", "documents": [{"_id": 1}], "lsid": lsid, "txnNumber": 7_i64},
    )
    .await
    .unwrap();
}

/// Snapshot reads outside a transaction read the collection as of `atClusterTime`: inserts,
/// updates and deletes made after it are not seen, a `getMore` stays in the snapshot, and the
/// reply carries `atClusterTime`. (A document deleted since is restored at the end of the
/// natural order, not at its old place: the test reads in `_id` order.)
#[tokio::test]
async fn snapshot_reads_see_the_collection_as_of_their_time() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("app");
    let coll = db.collection::<bson::Document>("c");
    coll.insert_many((0..5).map(|i| doc! {"_id": i, "v": 0}))
        .await
        .unwrap();
    let first = db
        .run_command(doc! {"find": "c", "batchSize": 2, "readConcern": {"level": "snapshot"}})
        .await
        .unwrap();
    let cursor = first.get_document("cursor").unwrap();
    let at = cursor.get_timestamp("atClusterTime").unwrap();
    let id = cursor.get_i64("id").unwrap();

    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"v": 1}})
        .await
        .unwrap();
    coll.delete_one(doc! {"_id": 3}).await.unwrap();
    coll.insert_one(doc! {"_id": 9, "v": 9}).await.unwrap();
    coll.replace_one(doc! {"_id": 4}, doc! {"w": 4})
        .await
        .unwrap();

    // The rest of the first cursor, then a new read at the same time.
    let more = db
        .run_command(doc! {"getMore": id, "collection": "c"})
        .await
        .unwrap();
    let rest = more
        .get_document("cursor")
        .unwrap()
        .get_array("nextBatch")
        .unwrap()
        .len();
    assert_eq!(2 + rest, 5);
    let again = db
        .run_command(doc! {"find": "c", "sort": {"_id": 1}, "readConcern": {"level": "snapshot", "atClusterTime": at}})
        .await
        .unwrap();
    let docs: Vec<_> = again
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect();
    assert_eq!(
        docs,
        (0..5).map(|i| doc! {"_id": i, "v": 0}).collect::<Vec<_>>()
    );
    let d = db
        .run_command(doc! {"distinct": "c", "key": "v", "readConcern": {"level": "snapshot", "atClusterTime": at}})
        .await
        .unwrap();
    assert_eq!(d.get_array("values").unwrap(), &vec![Bson::Int32(0)]);
    assert_eq!(d.get_timestamp("atClusterTime").unwrap(), at);

    // The present, read as a snapshot, sees every write.
    let now = db.run_command(doc! {"count": "c"}).await.unwrap();
    assert_eq!(now.get_i32("n").unwrap(), 5);

    // A time in the future is refused; so is one older than the history kept.
    let future = bson::Timestamp {
        time: at.time + 3600,
        increment: 0,
    };
    let e = db
        .run_command(
            doc! {"find": "c", "readConcern": {"level": "snapshot", "atClusterTime": future}},
        )
        .await
        .unwrap_err();
    let (code, message) = code_and_message(&e);
    assert_eq!(code, 72);
    assert!(
        message.starts_with(
            "readConcern atClusterTime value must not be greater than the current clusterTime."
        ),
        "{message}"
    );
    // A collection dropped since the snapshot cannot be rebuilt.
    db.collection::<bson::Document>("gone")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let t = db
        .run_command(doc! {"find": "gone", "readConcern": {"level": "snapshot"}})
        .await
        .unwrap();
    let t = t
        .get_document("cursor")
        .unwrap()
        .get_timestamp("atClusterTime")
        .unwrap();
    db.collection::<bson::Document>("gone")
        .drop()
        .await
        .unwrap();
    let e = db
        .run_command(
            doc! {"find": "gone", "readConcern": {"level": "snapshot", "atClusterTime": t}},
        )
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&e).0, 246);
}

/// `$out` and `$merge` write another collection: a transaction refuses them (263).
#[tokio::test]
async fn out_and_merge_are_refused_in_a_transaction() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let coll = client.database("app").collection::<bson::Document>("c");
    coll.insert_one(doc! {"_id": 1}).await.unwrap();
    let mut session = client.start_session().await.unwrap();
    for (stage, spec) in [("$out", Bson::from("o")), ("$merge", Bson::from("m"))] {
        session.start_transaction().await.unwrap();
        let e = coll
            .aggregate(vec![doc! {stage: spec.clone()}])
            .session(&mut session)
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(&e),
            (263, format!("{stage} cannot be used in a transaction"))
        );
        session.abort_transaction().await.ok();
    }
}

/// `killSessions` and `killAllSessions` kill the sessions' cursors (a later `getMore` gets
/// CursorNotFound); their arguments are checked as the server's IDL does.
#[tokio::test]
async fn kill_sessions_kills_their_cursors_and_checks_arguments() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("app");
    db.collection::<bson::Document>("c")
        .insert_many((0..10).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let admin = client.database("admin");
    for kill in ["killSessions", "killAllSessions"] {
        let mut session = client.start_session().await.unwrap();
        let lsid = session.id().clone();
        let first = db
            .run_command(doc! {"find": "c", "batchSize": 2})
            .session(&mut session)
            .await
            .unwrap();
        let id = first.get_document("cursor").unwrap().get_i64("id").unwrap();
        let arg = if kill == "killSessions" {
            bson::Bson::Array(vec![lsid.clone().into()])
        } else {
            bson::Bson::Array(vec![])
        };
        admin.run_command(doc! {kill: arg}).await.unwrap();
        let e = db
            .run_command(doc! {"getMore": id, "collection": "c"})
            .session(&mut session)
            .await
            .unwrap_err();
        assert_eq!(code_and_message(&e).0, 43, "{kill}");
    }
    for (cmd, code) in [
        (doc! {"killSessions": 1}, 14),
        (doc! {"killSessions": [{"x": 1}]}, 40415),
        (doc! {"killSessions": [{}]}, 40414),
        (doc! {"killSessions": [{"id": "not a uuid"}]}, 14),
        (doc! {"killAllSessions": [{"user": "u"}]}, 40414),
        (doc! {"endSessions": "x"}, 14),
    ] {
        let e = admin.run_command(cmd.clone()).await.unwrap_err();
        assert_eq!(code_and_message(&e).0, code, "{cmd}");
    }
}

/// What a transaction refuses before its command runs, as `CommandHelpers::canUseTransactions`
/// and `LiteParsedDocumentSource::transactionNotSupported` word it (263): `count` with its own
/// message, commands outside the allowlist, namespaces in `local` or `config` or
/// `system.views`/`system.profile`, and stages such as `$collStats` or `$changeStream`.
#[tokio::test]
async fn what_a_transaction_refuses_before_running_the_command() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    client
        .database("app")
        .collection::<bson::Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let stage_refused = |stage: &str| {
        format!(
            "Operation not permitted in transaction :: caused by :: Aggregation stage {stage} cannot run within a multi-document transaction."
        )
    };
    let cases = [
        (
            "app",
            doc! {"count": "c"},
            "Cannot run 'count' in a multi-document transaction. Please see http://dochub.mongodb.org/core/transaction-count for a recommended alternative.".to_string(),
        ),
        (
            "app",
            doc! {"listIndexes": "c"},
            "Cannot run 'listIndexes' in a multi-document transaction.".to_string(),
        ),
        (
            "local",
            doc! {"find": "oplog.rs"},
            "Cannot run command against the 'local' database in a transaction.".to_string(),
        ),
        (
            "local",
            doc! {"insert": "x", "documents": [{}]},
            "Cannot run command against the 'local' database in a transaction.".to_string(),
        ),
        (
            "config",
            doc! {"find": "x"},
            "Cannot run command against the config database in a transaction.".to_string(),
        ),
        (
            "app",
            doc! {"find": "system.views"},
            "Cannot run command against the 'app.system.views' collection in a transaction."
                .to_string(),
        ),
        (
            "app",
            doc! {"insert": "system.profile", "documents": [{}]},
            "Cannot run command against the 'app.system.profile' collection in a transaction."
                .to_string(),
        ),
        (
            "app",
            doc! {"aggregate": "c", "pipeline": [{"$collStats": {}}], "cursor": {}},
            stage_refused("$collStats"),
        ),
        (
            "app",
            doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}},
            stage_refused("$changeStream"),
        ),
        (
            "admin",
            doc! {"aggregate": 1, "pipeline": [{"$currentOp": {}}], "cursor": {}},
            stage_refused("$currentOp"),
        ),
    ];
    let mut session = client.start_session().await.unwrap();
    for (db, cmd, message) in cases {
        session.start_transaction().await.unwrap();
        let e = client
            .database(db)
            .run_command(cmd.clone())
            .session(&mut session)
            .await
            .unwrap_err();
        assert_eq!(code_and_message(&e), (263, message), "{db} {cmd}");
        session.abort_transaction().await.ok();
    }
    // Another system collection is refused by the write itself (50791), after these checks.
    session.start_transaction().await.unwrap();
    let e = client
        .database("app")
        .run_command(doc! {"insert": "system.x", "documents": [{}]})
        .session(&mut session)
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&e).0, 50791);
}

/// `validateSessionOptions` and `validateWriteConcernForTransaction`
/// (`logical_session_id_helpers.cpp`): killCursors, commit and abort cannot start a
/// transaction, and inside one only commit and abort take a write concern.
#[tokio::test]
async fn what_may_not_start_a_transaction_and_write_concerns_inside_one() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let (app, admin) = (client.database("app"), client.database("admin"));
    let session = client.start_session().await.unwrap();
    let lsid = session.id().clone();
    let txn = |mut cmd: bson::Document, n: i64| {
        cmd.insert("lsid", lsid.clone());
        cmd.insert("txnNumber", n);
        cmd.insert("autocommit", false);
        cmd.insert("startTransaction", true);
        cmd
    };
    for (db, cmd, message) in [
        (
            &app,
            doc! {"killCursors": "c", "cursors": []},
            "Cannot run killCursors as the first operation in a multi-document transaction.",
        ),
        (
            &admin,
            doc! {"commitTransaction": 1},
            "Cannot start a transaction with a commit",
        ),
        (
            &admin,
            doc! {"abortTransaction": 1},
            "Cannot start a transaction with an abort",
        ),
    ] {
        let e = db.run_command(txn(cmd.clone(), 1)).await.unwrap_err();
        assert_eq!(code_and_message(&e), (263, message.to_string()), "{cmd}");
    }
    let e = app
        .run_command(txn(
            doc! {"insert": "c", "documents": [{}], "writeConcern": {"w": 1}},
            2,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&e),
        (
            72,
            "writeConcern is not allowed within a multi-statement transaction".to_string()
        )
    );
    // Nothing was started by the refused commands: the same number starts one now.
    app.run_command(txn(doc! {"insert": "c", "documents": [{"_id": 1}]}, 2))
        .await
        .unwrap();
    let mut commit =
        doc! {"commitTransaction": 1, "lsid": lsid.clone(), "txnNumber": 2i64, "autocommit": false};
    commit.insert("writeConcern", doc! {"w": "majority"});
    admin.run_command(commit).await.unwrap();
    assert_eq!(
        app.collection::<bson::Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap(),
        1
    );
}

/// `initializeOperationSessionInfo` (`logical_session_id_helpers.cpp`): a negative
/// `txnNumber`, `startTransaction` without `autocommit`, `startTransaction: false` and
/// `autocommit: true` are refused (72) before the command runs.
#[tokio::test]
async fn session_fields_must_go_together() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let app = client.database("app");
    let session = client.start_session().await.unwrap();
    let lsid = session.id().clone();
    for (extra, message) in [
        (
            doc! {"txnNumber": -1i64},
            "Transaction number cannot be negative",
        ),
        (
            doc! {"startTransaction": true},
            "'startTransaction' field requires 'autocommit' field to also be specified",
        ),
        (
            doc! {"txnNumber": 1i64, "autocommit": false, "startTransaction": false},
            "Specifying startTransaction=false is not allowed.",
        ),
        (
            doc! {"txnNumber": 1i64, "autocommit": true},
            "Specifying autocommit=true is not allowed.",
        ),
    ] {
        let mut cmd = doc! {"insert": "c", "documents": [{}], "lsid": lsid.clone()};
        cmd.extend(extra.clone());
        let e = app.run_command(cmd).await.unwrap_err();
        assert_eq!(code_and_message(&e), (72, message.to_string()), "{extra}");
    }
    assert_eq!(
        app.collection::<bson::Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap(),
        0
    );
}
