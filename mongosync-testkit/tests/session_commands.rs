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
}
