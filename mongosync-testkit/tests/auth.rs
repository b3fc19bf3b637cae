//! Authentication (SCRAM-SHA-1, SCRAM-SHA-256) and authorization with the official Rust
//! driver, against a cluster started with `ClusterOptions::auth`.

use std::time::Duration;

use bson::{Bson, Document, doc, spec::BinarySubtype};
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::options::{AuthMechanism, ClientOptions};
use mongodb::{Client, Database};
use mongosync_testkit::{ClusterOptions, MemoryCluster};

async fn start() -> MemoryCluster {
    MemoryCluster::start_with(ClusterOptions::default().auth("root", "s3cret:/@"))
        .await
        .expect("cluster starts")
}

async fn client_as(
    cluster: &MemoryCluster,
    user: &str,
    pwd: &str,
    mechanism: Option<AuthMechanism>,
) -> Client {
    let mut opts = ClientOptions::parse(cluster.uri_with_credentials(user, pwd))
        .await
        .expect("valid uri");
    if let Some(m) = mechanism {
        opts.credential.as_mut().expect("credentials").mechanism = Some(m);
    }
    opts.server_selection_timeout = Some(Duration::from_secs(5));
    Client::with_options(opts).expect("client")
}

async fn anonymous(cluster: &MemoryCluster) -> Client {
    Client::with_uri_str(cluster.uri()).await.expect("client")
}

async fn root(cluster: &MemoryCluster) -> Client {
    client_as(cluster, "root", "s3cret:/@", None).await
}

/// The server code inside a driver error (command errors and write errors).
fn code(e: &Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        _ => None,
    }
}

fn message(e: &Error) -> String {
    match &*e.kind {
        ErrorKind::Command(c) => c.message.clone(),
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.message.clone(),
        ErrorKind::Authentication { message, .. } => message.clone(),
        other => format!("{other:?}"),
    }
}

async fn create_user(cluster: &MemoryCluster, db: &str, user: &str, roles: Bson) {
    root(cluster)
        .await
        .database(db)
        .run_command(doc! {"createUser": user, "pwd": "pw", "roles": roles})
        .await
        .expect("createUser");
}

async fn whoami(db: &Database) -> Document {
    db.run_command(doc! {"connectionStatus": 1})
        .await
        .expect("connectionStatus")
        .get_document("authInfo")
        .expect("authInfo")
        .clone()
}

#[tokio::test]
async fn scram_sha_256_with_the_right_password_authenticates() {
    let cluster = start().await;
    let client = client_as(
        &cluster,
        "root",
        "s3cret:/@",
        Some(AuthMechanism::ScramSha256),
    )
    .await;
    let info = whoami(&client.database("admin")).await;
    assert_eq!(
        info.get_array("authenticatedUsers").unwrap(),
        &vec![Bson::Document(doc! {"user": "root", "db": "admin"})]
    );
    assert_eq!(
        info.get_array("authenticatedUserRoles").unwrap(),
        &vec![Bson::Document(doc! {"role": "root", "db": "admin"})]
    );
    client
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"x": 1})
        .await
        .expect("root writes");
}

#[tokio::test]
async fn scram_sha_1_with_the_right_password_authenticates() {
    let cluster = start().await;
    let client = client_as(
        &cluster,
        "root",
        "s3cret:/@",
        Some(AuthMechanism::ScramSha1),
    )
    .await;
    let info = whoami(&client.database("admin")).await;
    assert_eq!(info.get_array("authenticatedUsers").unwrap().len(), 1);
    let n = client
        .database("app")
        .collection::<Document>("c")
        .count_documents(doc! {})
        .await
        .expect("root reads");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn default_negotiation_authenticates() {
    let cluster = start().await;
    let client = root(&cluster).await;
    let info = whoami(&client.database("admin")).await;
    assert_eq!(info.get_array("authenticatedUsers").unwrap().len(), 1);
}

#[tokio::test]
async fn default_negotiation_follows_the_users_mechanisms() {
    let cluster = start().await;
    let admin = root(&cluster).await.database("admin");
    for (user, mechanism) in [("only1", "SCRAM-SHA-1"), ("only256", "SCRAM-SHA-256")] {
        admin
            .run_command(doc! {"createUser": user, "pwd": "pw", "roles": ["root"], "mechanisms": [mechanism]})
            .await
            .unwrap();
        let client = client_as(&cluster, user, "pw", None).await;
        let info = whoami(&client.database("admin")).await;
        assert_eq!(
            info.get_array("authenticatedUsers").unwrap().len(),
            1,
            "{user}"
        );
        // The other mechanism is refused.
        let other = if mechanism == "SCRAM-SHA-1" {
            AuthMechanism::ScramSha256
        } else {
            AuthMechanism::ScramSha1
        };
        let client = client_as(&cluster, user, "pw", Some(other)).await;
        assert!(
            client
                .database("admin")
                .run_command(doc! {"ping": 1})
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn a_password_refused_by_saslprep_cannot_start_a_cluster() {
    let err = MemoryCluster::start_with(ClusterOptions::default().auth("root", "bell\u{7}"))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn hello_announces_mechanisms_and_answers_speculative_authentication() {
    let cluster = start().await;
    let client = anonymous(&cluster).await;
    let payload = Bson::Binary(bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes: b"n,,n=root,r=clientnonce".to_vec(),
    });
    let hello = client
        .database("admin")
        .run_command(doc! {
            "hello": 1,
            "saslSupportedMechs": "admin.root",
            "speculativeAuthenticate": {
                "saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": payload,
                "db": "admin", "options": {"skipEmptyExchange": true},
            },
        })
        .await
        .unwrap();
    assert_eq!(
        hello.get_array("saslSupportedMechs").unwrap(),
        &vec![Bson::from("SCRAM-SHA-1"), Bson::from("SCRAM-SHA-256")]
    );
    let spec = hello.get_document("speculativeAuthenticate").unwrap();
    assert_eq!(spec.get_i32("conversationId").unwrap(), 1);
    assert!(!spec.get_bool("done").unwrap());
    let server_first =
        String::from_utf8(spec.get_binary_generic("payload").unwrap().clone()).unwrap();
    assert!(server_first.starts_with("r=clientnonce"), "{server_first}");
    assert!(server_first.contains(",s=") && server_first.ends_with(",i=15000"));

    // An unknown user: no mechanisms, no speculative answer.
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1, "saslSupportedMechs": "admin.nobody"})
        .await
        .unwrap();
    assert!(!hello.contains_key("saslSupportedMechs"));
}

#[tokio::test]
async fn wrong_password_fails_with_authentication_failed() {
    let cluster = start().await;
    for mechanism in [AuthMechanism::ScramSha1, AuthMechanism::ScramSha256] {
        let client = client_as(&cluster, "root", "wrong", Some(mechanism.clone())).await;
        let err = client
            .database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .unwrap_err();
        assert!(
            matches!(&*err.kind, ErrorKind::Authentication { .. }),
            "{mechanism:?}: {err:?}"
        );
        assert!(message(&err).contains("Authentication failed."), "{err:?}");
    }
}

#[tokio::test]
async fn unknown_user_fails_like_a_wrong_password() {
    let cluster = start().await;
    let client = client_as(&cluster, "nobody", "pw", Some(AuthMechanism::ScramSha256)).await;
    let err = client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap_err();
    assert!(
        matches!(&*err.kind, ErrorKind::Authentication { .. }),
        "{err:?}"
    );
    assert!(message(&err).contains("Authentication failed."), "{err:?}");

    // The server's own reply, without the driver's wrapping: 18, no hint of the cause.
    let raw = anonymous(&cluster).await;
    let payload = Bson::Binary(bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes: b"n,,n=nobody,r=abcdef".to_vec(),
    });
    let err = raw
        .database("admin")
        .run_command(doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": payload})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(18));
    assert_eq!(message(&err), "Authentication failed.");
}

#[tokio::test]
async fn unauthenticated_find_requires_authentication() {
    let cluster = start().await;
    let client = anonymous(&cluster).await;
    let err = client
        .database("app")
        .collection::<Document>("c")
        .find_one(doc! {})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13));
    assert_eq!(message(&err), "Command find requires authentication");
    // The command is looked up first: an unknown one is CommandNotFound.
    let err = client
        .database("app")
        .run_command(doc! {"noSuchCommand": 1})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(59));
    // The handshake and a few harmless commands stay open.
    let admin = client.database("admin");
    admin.run_command(doc! {"ping": 1}).await.unwrap();
    admin.run_command(doc! {"buildInfo": 1}).await.unwrap();
    let info = whoami(&admin).await;
    assert!(info.get_array("authenticatedUsers").unwrap().is_empty());
}

#[tokio::test]
async fn read_user_finds_but_cannot_insert() {
    let cluster = start().await;
    create_user(&cluster, "app", "reader", Bson::Array(vec!["read".into()])).await;
    root(&cluster)
        .await
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let mut opts = ClientOptions::parse(cluster.uri_with_credentials("reader", "pw"))
        .await
        .unwrap();
    opts.credential.as_mut().unwrap().source = Some("app".into());
    let reader = Client::with_options(opts).unwrap();
    let coll = reader.database("app").collection::<Document>("c");
    assert_eq!(coll.find_one(doc! {}).await.unwrap(), Some(doc! {"_id": 1}));
    let err = coll.insert_one(doc! {"_id": 2}).await.unwrap_err();
    assert_eq!(code(&err), Some(13));
    assert!(
        message(&err).starts_with(r#"not authorized on app to execute command { insert: "c""#),
        "{}",
        message(&err)
    );
    // Another database is out of reach even for reading.
    let err = reader
        .database("other")
        .collection::<Document>("c")
        .find_one(doc! {})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(13));
}

#[tokio::test]
async fn create_users_info_drop_round_trip() {
    let cluster = start().await;
    let admin = root(&cluster).await;
    let app = admin.database("app");
    app.run_command(doc! {
        "createUser": "alice", "pwd": "pw",
        "roles": ["readWrite", {"role": "read", "db": "reports"}],
        "customData": {"team": "sync"},
    })
    .await
    .unwrap();
    let err = app
        .run_command(doc! {"createUser": "alice", "pwd": "pw", "roles": []})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(51003));
    let err = app
        .run_command(doc! {"createUser": "bob", "pwd": "pw", "roles": ["noSuchRole"]})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(31));

    let info = app.run_command(doc! {"usersInfo": "alice"}).await.unwrap();
    let users = info.get_array("users").unwrap();
    assert_eq!(users.len(), 1);
    let u = users[0].as_document().unwrap();
    assert_eq!(u.get_str("_id").unwrap(), "app.alice");
    assert_eq!(u.get_str("user").unwrap(), "alice");
    assert_eq!(u.get_str("db").unwrap(), "app");
    assert!(matches!(u.get("userId"), Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Uuid));
    assert_eq!(
        u.get_document("customData").unwrap(),
        &doc! {"team": "sync"}
    );
    assert_eq!(
        u.get_array("roles").unwrap(),
        &vec![
            Bson::Document(doc! {"role": "readWrite", "db": "app"}),
            Bson::Document(doc! {"role": "read", "db": "reports"}),
        ]
    );
    assert_eq!(
        u.get_array("mechanisms").unwrap(),
        &vec![Bson::from("SCRAM-SHA-1"), Bson::from("SCRAM-SHA-256")]
    );
    let all = app.run_command(doc! {"usersInfo": 1}).await.unwrap();
    assert_eq!(all.get_array("users").unwrap().len(), 1);

    // alice logs in on her database.
    let mut opts = ClientOptions::parse(cluster.uri_with_credentials("alice", "pw"))
        .await
        .unwrap();
    opts.credential.as_mut().unwrap().source = Some("app".into());
    let alice = Client::with_options(opts.clone()).unwrap();
    alice
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {})
        .await
        .unwrap();

    app.run_command(doc! {"dropUser": "alice"}).await.unwrap();
    let info = app.run_command(doc! {"usersInfo": "alice"}).await.unwrap();
    assert!(info.get_array("users").unwrap().is_empty());
    let err = app
        .run_command(doc! {"dropUser": "alice"})
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(11));
    // A new connection cannot log in any more.
    let err = Client::with_options(opts)
        .unwrap()
        .database("app")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap_err();
    assert!(
        matches!(&*err.kind, ErrorKind::Authentication { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn update_user_changes_password_and_mechanisms() {
    let cluster = start().await;
    let admin = root(&cluster).await.database("admin");
    admin
        .run_command(doc! {"createUser": "carol", "pwd": "old", "roles": ["readAnyDatabase"]})
        .await
        .unwrap();
    admin
        .run_command(doc! {"updateUser": "carol", "pwd": "new", "mechanisms": ["SCRAM-SHA-256"]})
        .await
        .unwrap();
    let old = client_as(&cluster, "carol", "old", Some(AuthMechanism::ScramSha256)).await;
    assert!(
        old.database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .is_err()
    );
    let sha1 = client_as(&cluster, "carol", "new", Some(AuthMechanism::ScramSha1)).await;
    assert!(
        sha1.database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .is_err()
    );
    let new = client_as(&cluster, "carol", "new", Some(AuthMechanism::ScramSha256)).await;
    new.database("x")
        .collection::<Document>("c")
        .find_one(doc! {})
        .await
        .expect("readAnyDatabase reads");
}

#[tokio::test]
async fn sasl_prepared_passwords_match_their_normalised_form() {
    let cluster = start().await;
    let admin = root(&cluster).await.database("admin");
    // U+2168 ROMAN NUMERAL NINE normalises to "IX" under SASLprep (SCRAM-SHA-256 only).
    admin
        .run_command(doc! {"createUser": "dave", "pwd": "\u{2168}", "roles": ["root"], "mechanisms": ["SCRAM-SHA-256"]})
        .await
        .unwrap();
    let client = client_as(&cluster, "dave", "IX", Some(AuthMechanism::ScramSha256)).await;
    client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .expect("same password after SASLprep");
}

#[tokio::test]
async fn without_auth_everything_is_allowed() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = anonymous(&cluster).await;
    client
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {})
        .await
        .unwrap();
    let info = whoami(&client.database("admin")).await;
    assert!(info.get_array("authenticatedUsers").unwrap().is_empty());
    assert!(!cluster.uri().contains('@'));
}

#[tokio::test]
async fn list_collections_with_authorized_collections_lists_what_the_user_may_act_on() {
    let cluster = start().await;
    let admin = root(&cluster).await;
    for db in ["app", "reports"] {
        for c in ["a", "b"] {
            admin.database(db).create_collection(c).await.unwrap();
        }
    }
    // bob reads "reports" only.
    create_user(
        &cluster,
        "admin",
        "bob",
        Bson::Array(vec![Bson::Document(doc! {"role": "read", "db": "reports"})]),
    )
    .await;
    let bob = client_as(&cluster, "bob", "pw", None).await;
    let names = |reply: Document| -> Vec<String> {
        reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .iter()
            .map(|e| {
                e.as_document()
                    .unwrap()
                    .get_str("name")
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let authorized = doc! {"listCollections": 1, "nameOnly": true, "authorizedCollections": true};
    // With nameOnly, no listCollections privilege is needed: the list holds what he may use.
    let reply = bob
        .database("app")
        .run_command(authorized.clone())
        .await
        .unwrap();
    assert_eq!(names(reply), Vec::<String>::new());
    let reply = bob
        .database("reports")
        .run_command(authorized)
        .await
        .unwrap();
    assert_eq!(names(reply), vec!["a", "b"]);
    // Without nameOnly the privilege is required, as without authorizedCollections.
    for cmd in [
        doc! {"listCollections": 1, "authorizedCollections": true},
        doc! {"listCollections": 1, "nameOnly": true},
    ] {
        let e = bob.database("app").run_command(cmd).await.unwrap_err();
        assert_eq!(code(&e), Some(13), "{}", message(&e));
    }
    // root may act on everything: all of them, with or without the flag.
    let reply = admin
        .database("app")
        .run_command(doc! {"listCollections": 1, "authorizedCollections": true})
        .await
        .unwrap();
    assert_eq!(names(reply), vec!["a", "b"]);
}
