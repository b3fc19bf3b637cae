//! The testkit passing for 6.0, 7.0 and 8.0 (`ClusterOptions::server_version`): what a
//! client sees of the version, and the commands an older release lacks, answered as that
//! server answers them.

use bson::{Document, doc};
use mongodb::Client;
use mongodb::error::ErrorKind;
use mongodb::options::{InsertOneModel, WriteModel};
use mongosync_testkit::{ClusterOptions, MemoryCluster, ServerVersion};

async fn start(version: ServerVersion) -> (MemoryCluster, Client) {
    let cluster = MemoryCluster::start_with(ClusterOptions::default().server_version(version))
        .await
        .unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    (cluster, client)
}

#[tokio::test]
async fn each_release_reports_its_version_and_wire_version() {
    for (version, release, wire, fcv) in [
        (ServerVersion::V6_0, "6.0.20", 17, "6.0"),
        (ServerVersion::V7_0, "7.0.16", 21, "7.0"),
        (ServerVersion::V8_0, "8.0.4", 25, "8.0"),
    ] {
        let (_cluster, client) = start(version).await;
        let admin = client.database("admin");
        let info = admin.run_command(doc! {"buildInfo": 1}).await.unwrap();
        assert_eq!(info.get_str("version").unwrap(), release);
        let array: Vec<i32> = info
            .get_array("versionArray")
            .unwrap()
            .iter()
            .map(|v| v.as_i32().unwrap())
            .collect();
        let parts: Vec<i32> = release.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(array[..3], parts[..]);
        let hello = admin.run_command(doc! {"hello": 1}).await.unwrap();
        assert_eq!(hello.get_i32("maxWireVersion").unwrap(), wire);
        let fcv_reply = admin
            .run_command(doc! {"getParameter": 1, "featureCompatibilityVersion": 1})
            .await
            .unwrap();
        assert_eq!(
            fcv_reply
                .get_document("featureCompatibilityVersion")
                .unwrap()
                .get_str("version")
                .unwrap(),
            fcv
        );
        let status = admin.run_command(doc! {"serverStatus": 1}).await.unwrap();
        assert_eq!(status.get_str("version").unwrap(), release);
    }
}

#[tokio::test]
async fn releases_before_8_0_refuse_bulk_write_as_the_server_does() {
    for version in [ServerVersion::V6_0, ServerVersion::V7_0] {
        let (cluster, client) = start(version).await;
        let command = doc! {
            "bulkWrite": 1,
            "ops": [{"insert": 0, "document": {"_id": 1}}],
            "nsInfo": [{"ns": "d.c"}],
        };
        let err = client
            .database("admin")
            .run_command(command)
            .await
            .unwrap_err();
        let ErrorKind::Command(e) = &*err.kind else {
            panic!("{version}: not a command error: {err}");
        };
        assert_eq!(e.code, 59, "{version}");
        assert_eq!(e.code_name, "CommandNotFound", "{version}");
        assert_eq!(e.message, "no such command: 'bulkWrite'", "{version}");
        // Nothing was written, and the refused command is not counted as run.
        let coll = client.database("d").collection::<Document>("c");
        assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 0);
        assert_eq!(cluster.server().command_count("bulkWrite"), 0);
        // The driver itself knows from the wire version that the server is too old.
        let model = WriteModel::InsertOne(
            InsertOneModel::builder()
                .namespace(coll.namespace())
                .document(doc! {"_id": 2})
                .build(),
        );
        assert!(client.bulk_write(vec![model]).await.is_err(), "{version}");
        // The per-collection commands work.
        coll.insert_one(doc! {"_id": 3}).await.unwrap();
        assert_eq!(cluster.server().command_count("insert"), 1);
    }
}

#[tokio::test]
async fn release_8_0_runs_bulk_write_and_counts_commands() {
    let (cluster, client) = start(ServerVersion::V8_0).await;
    let coll = client.database("d").collection::<Document>("c");
    let model = WriteModel::InsertOne(
        InsertOneModel::builder()
            .namespace(coll.namespace())
            .document(doc! {"_id": 1})
            .build(),
    );
    client.bulk_write(vec![model]).await.unwrap();
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1);
    assert_eq!(cluster.server().command_count("bulkWrite"), 1);
    let status = client
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    let commands = status
        .get_document("metrics")
        .unwrap()
        .get_document("commands")
        .unwrap();
    assert_eq!(
        commands
            .get_document("bulkWrite")
            .unwrap()
            .get_i64("total")
            .unwrap(),
        1
    );
}

#[test]
fn versions_parse_from_series_or_release() {
    assert_eq!("7.0".parse::<ServerVersion>(), Ok(ServerVersion::V7_0));
    assert_eq!("6.0.20".parse::<ServerVersion>(), Ok(ServerVersion::V6_0));
    assert_eq!("8".parse::<ServerVersion>(), Ok(ServerVersion::V8_0));
    let e = "5.0".parse::<ServerVersion>().unwrap_err();
    assert!(e.contains("5.0") && e.contains("6.0, 7.0 or 8.0"), "{e}");
}

/// `disambiguatedPaths` arrived in 6.1: a 6.0 server's update events never carry it.
#[tokio::test]
async fn update_events_of_6_0_carry_no_disambiguated_paths() {
    use futures::StreamExt;
    for (version, expected) in [(ServerVersion::V6_0, false), (ServerVersion::V7_0, true)] {
        let (_cluster, client) = start(version).await;
        let coll = client.database("d").collection::<Document>("c");
        coll.insert_one(doc! {"_id": 1}).await.unwrap();
        let mut stream = coll
            .watch()
            .show_expanded_events(true)
            .await
            .unwrap()
            .with_type::<Document>();
        coll.update_one(
            doc! {"_id": 1},
            vec![doc! {"$replaceWith": {"$setField": {"field": "a.b", "input": "$$ROOT", "value": 1}}}],
        )
        .await
        .unwrap();
        let event = stream.next().await.unwrap().unwrap();
        let description = event.get_document("updateDescription").unwrap();
        assert_eq!(
            description.contains_key("disambiguatedPaths"),
            expected,
            "{version}: {description}"
        );
    }
}
