//! The generic command arguments, checked as the server's IDL parser checks them, through the
//! official Rust driver: `writeConcern` (`w`, `j`, `fsync`, `wtimeout`, commands that do not
//! take one), `readConcern` (unknown fields, typed times), `maxTimeMS`, and `null` for an
//! optional argument meaning "omitted".

use bson::{Document, doc};
use mongodb::{Client, Database};
use mongosync_testkit::MemoryCluster;

async fn db() -> (MemoryCluster, Database) {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("app");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    (cluster, db)
}

fn code_and_message(e: &mongodb::error::Error) -> (i32, String) {
    match &*e.kind {
        mongodb::error::ErrorKind::Command(c) => (c.code, c.message.clone()),
        other => panic!("not a command error: {other:?}"),
    }
}

async fn refused(db: &Database, cmd: Document) -> (i32, String) {
    let e = db
        .run_command(cmd.clone())
        .await
        .expect_err(&cmd.to_string());
    code_and_message(&e)
}

#[tokio::test]
async fn write_concern_is_parsed_whole() {
    let (_c, db) = db().await;
    let insert = |wc: Document| doc! {"insert": "c", "documents": [{}], "writeConcern": wc};
    assert_eq!(
        refused(&db, insert(doc! {"w": 51})).await,
        (
            9,
            "w has to be a non-negative number and not greater than 50; found: 51".into()
        )
    );
    assert_eq!(refused(&db, insert(doc! {"w": -1})).await.0, 9);
    assert_eq!(
        refused(&db, insert(doc! {"w": true})).await,
        (
            9,
            "w has to be a number, string, or object; found: bool".into()
        )
    );
    assert_eq!(
        refused(&db, insert(doc! {"w": {}})).await,
        (9, "tagged write concern requires tags".into())
    );
    assert_eq!(
        refused(&db, insert(doc! {"j": true, "fsync": true})).await,
        (9, "fsync and j options cannot be used together".into())
    );
    assert_eq!(
        refused(&db, insert(doc! {"j": "yes"})).await,
        (
            14,
            "BSON field 'writeConcern.j' is the wrong type 'string', expected types '[bool, long, int, decimal, double]'".into()
        )
    );
    assert_eq!(
        refused(&db, insert(doc! {"wtimeout": 3_000_000_000i64})).await,
        (9, "wtimeout must be a 32-bit integer".into())
    );
    assert_eq!(refused(&db, insert(doc! {"x": 1})).await.0, 40415);
    assert_eq!(
        refused(
            &db,
            doc! {"insert": "c", "documents": [{}], "writeConcern": 1}
        )
        .await
        .0,
        14
    );
    // Accepted: numbers for j, a wtimeout of another type (read as 0), an empty document,
    // and null (omitted).
    for wc in [
        bson::Bson::Document(doc! {"w": 1, "j": 1, "wtimeout": "soon"}),
        bson::Bson::Document(doc! {}),
        bson::Bson::Null,
    ] {
        db.run_command(doc! {"insert": "c", "documents": [{}], "writeConcern": wc})
            .await
            .unwrap();
    }
    // A command that does not write refuses one.
    assert_eq!(
        refused(&db, doc! {"count": "c", "writeConcern": {"w": 1}}).await,
        (72, "Command does not support writeConcern".into())
    );
}

#[tokio::test]
async fn read_concern_and_max_time_ms() {
    let (_c, db) = db().await;
    let find = |rc: bson::Bson| doc! {"find": "c", "readConcern": rc};
    assert_eq!(
        refused(&db, find(doc! {"level": "local", "x": 1}.into())).await,
        (
            40415,
            "BSON field 'readConcern.x' is an unknown field.".into()
        )
    );
    assert_eq!(
        refused(&db, find(doc! {"afterClusterTime": 5}.into())).await,
        (
            14,
            "BSON field 'readConcern.afterClusterTime' is the wrong type 'int', expected type 'timestamp'".into()
        )
    );
    let ts = bson::Timestamp {
        time: 1,
        increment: 1,
    };
    assert_eq!(
        refused(
            &db,
            find(doc! {"level": "majority", "atClusterTime": ts}.into())
        )
        .await
        .0,
        72
    );
    assert_eq!(refused(&db, find(bson::Bson::Int32(1))).await.0, 14);
    db.run_command(find(bson::Bson::Null)).await.unwrap();

    for (v, want) in [
        (bson::Bson::String("x".into()), "maxTimeMS must be a number"),
        (bson::Bson::Double(1.5), "maxTimeMS has non-integral value"),
        (
            bson::Bson::Int32(-1),
            "-1 value for maxTimeMS is out of range [0, 2147483647]",
        ),
        (
            bson::Bson::Int64(1 << 40),
            "1099511627776 value for maxTimeMS is out of range [0, 2147483647]",
        ),
    ] {
        assert_eq!(
            refused(&db, doc! {"find": "c", "maxTimeMS": v}).await,
            (2, want.to_string())
        );
    }
    // Null options are omitted: the find runs as without them.
    let r = db
        .run_command(doc! {"find": "c", "filter": null, "sort": null, "batchSize": null, "collation": null, "maxTimeMS": null})
        .await
        .unwrap();
    assert_eq!(
        r.get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .len(),
        1
    );
}

/// `validateAPIParameters` (`initialize_api_parameters.cpp`): the version must be "1",
/// `apiStrict`/`apiDeprecationErrors` need it, and `apiStrict: true` refuses commands outside
/// API Version 1 under the name the command reports (`isMaster`, not `hello`).
#[tokio::test]
async fn api_parameters_are_validated() {
    let (_c, db) = db().await;
    let admin = db.client().database("admin");
    assert_eq!(
        refused(&admin, doc! {"ping": 1, "apiVersion": "3"}).await,
        (322, "API version must be \"1\"".into())
    );
    assert_eq!(
        refused(&admin, doc! {"ping": 1, "apiVersion": "2"}).await,
        (322, "Cannot accept API version 2".into())
    );
    assert_eq!(
        refused(&admin, doc! {"ping": 1, "apiVersion": 1}).await,
        (
            14,
            "BSON field 'ping.apiVersion' is the wrong type 'int', expected type 'string'".into()
        )
    );
    // Present, whatever its value, the flag needs a version.
    for flag in ["apiStrict", "apiDeprecationErrors"] {
        assert_eq!(
            refused(&admin, doc! {"ping": 1, flag: false}).await,
            (
                4886600,
                "Provided apiStrict and/or apiDeprecationErrors without passing apiVersion".into()
            )
        );
    }
    let strict = |mut cmd: Document| {
        cmd.insert("apiVersion", "1");
        cmd.insert("apiStrict", true);
        cmd
    };
    let not_in_v1 = |name: &str| {
        format!(
            "Provided apiStrict:true, but the command {name} is not in API Version 1. Information on supported commands and migrations in API Version 1 can be found at https://dochub.mongodb.org/core/manual-versioned-api."
        )
    };
    assert_eq!(
        refused(&db, strict(doc! {"distinct": "c", "key": "a"})).await,
        (323, not_in_v1("distinct"))
    );
    assert_eq!(
        refused(&admin, strict(doc! {"isMaster": 1})).await,
        (323, not_in_v1("isMaster"))
    );
    assert_eq!(
        refused(&db, strict(doc! {"insert": "system.js", "documents": [{}]})).await,
        (
            323,
            "Provided apiStrict:true, but the command insert attempts to write to system.js."
                .into()
        )
    );
    // Commands in Version 1 run; so does one outside it without apiStrict.
    let n = db.run_command(strict(doc! {"count": "c"})).await.unwrap();
    assert_eq!(n.get_i32("n").unwrap(), 1);
    admin.run_command(strict(doc! {"hello": 1})).await.unwrap();
    db.run_command(doc! {"distinct": "c", "key": "a", "apiVersion": "1", "apiStrict": false, "apiDeprecationErrors": true})
        .await
        .unwrap();
}

/// Typed options the IDL parser checks before the collection is looked up: `collation` is an
/// `object` (`count_command.idl`, `distinct_command.idl`, `find_command.idl`, ...), `hint` an
/// `indexHint` (`IndexHint::parse`).
#[tokio::test]
async fn collation_and_hint_types_are_checked_even_without_the_collection() {
    let (_c, db) = db().await;
    for coll in ["c", "missing"] {
        assert_eq!(
            refused(&db, doc! {"count": coll, "collation": "fr"}).await,
            (
                14,
                "BSON field 'count.collation' is the wrong type 'string', expected type 'object'"
                    .into()
            )
        );
        assert_eq!(
            refused(&db, doc! {"distinct": coll, "key": "a", "hint": 5}).await,
            (9, "Hint must be a string or an object".into())
        );
        assert_eq!(
            refused(
                &db,
                doc! {"findAndModify": coll, "query": {}, "remove": true, "hint": 5}
            )
            .await,
            (9, "Hint must be a string or an object".into())
        );
    }
    assert_eq!(
        refused(
            &db,
            doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "collation": 1}
        )
        .await,
        (
            14,
            "BSON field 'aggregate.collation' is the wrong type 'int', expected type 'object'"
                .into()
        )
    );
}

/// The listing commands' options as their IDL types them: `listCollections` `nameOnly` and
/// `authorizedCollections` are `bool` (no numbers), `listDatabases` `nameOnly` a `safeBool` and
/// `authorizedDatabases` a `bool`; the `cursor` of `listCollections`/`listIndexes` is a strict
/// `SimpleCursorOptions` whose `batchSize` is at least 0 (`list_collections.idl`,
/// `list_databases.idl`, `list_indexes.idl`, `basic_types.idl`).
#[tokio::test]
async fn listing_options_are_typed_as_their_idl() {
    let (_c, db) = db().await;
    let admin = db.client().database("admin");
    let cases = [
        (
            &db,
            doc! {"listCollections": 1, "nameOnly": 1},
            14,
            "BSON field 'listCollections.nameOnly' is the wrong type 'int', expected type 'bool'",
        ),
        (
            &db,
            doc! {"listCollections": 1, "authorizedCollections": 0},
            14,
            "BSON field 'listCollections.authorizedCollections' is the wrong type 'int', expected type 'bool'",
        ),
        (
            &db,
            doc! {"listCollections": 1, "cursor": {"batchSize": -1}},
            51024,
            "BSON field 'batchSize' value must be >= 0, actual value '-1'",
        ),
        (
            &db,
            doc! {"listIndexes": "c", "cursor": {"batch": 1}},
            40415,
            "BSON field 'listIndexes.cursor.batch' is an unknown field.",
        ),
        (
            &db,
            doc! {"listIndexes": "c", "cursor": {"batchSize": "1"}},
            14,
            "BSON field 'listIndexes.cursor.batchSize' is the wrong type 'string', expected types '[long, int, decimal, double]'",
        ),
        (
            &admin,
            doc! {"listDatabases": 1, "nameOnly": "yes"},
            14,
            "BSON field 'listDatabases.nameOnly' is the wrong type 'string', expected types '[bool, long, int, decimal, double]'",
        ),
        (
            &admin,
            doc! {"listDatabases": 1, "authorizedDatabases": 1},
            14,
            "BSON field 'listDatabases.authorizedDatabases' is the wrong type 'int', expected type 'bool'",
        ),
    ];
    for (target, cmd, code, message) in cases {
        assert_eq!(
            refused(target, cmd.clone()).await,
            (code, message.to_string()),
            "{cmd}"
        );
    }
    // A safeBool takes a number; a batch size of 0 opens a cursor with an empty first batch.
    let r = admin
        .run_command(doc! {"listDatabases": 1, "nameOnly": 1})
        .await
        .unwrap();
    assert!(
        r.get_array("databases").unwrap().iter().all(|d| d
            .as_document()
            .unwrap()
            .keys()
            .eq(["name"]))
    );
    let r = db
        .run_command(doc! {"listCollections": 1, "cursor": {"batchSize": 0}})
        .await
        .unwrap();
    let cursor = r.get_document("cursor").unwrap();
    assert!(cursor.get_array("firstBatch").unwrap().is_empty());
    assert_ne!(cursor.get_i64("id").unwrap(), 0);
}

/// `killCursors` takes `cursors` as an `array<cursorId>` of longs (`kill_cursors.idl`), all
/// parsed before any cursor is killed.
#[tokio::test]
async fn kill_cursors_parses_every_id_before_killing() {
    let (_c, db) = db().await;
    db.collection::<Document>("c")
        .insert_many((2..10).map(|i| doc! {"_id": i}))
        .await
        .unwrap();
    let r = db
        .run_command(doc! {"find": "c", "batchSize": 1})
        .await
        .unwrap();
    let id = r.get_document("cursor").unwrap().get_i64("id").unwrap();
    assert_eq!(
        refused(&db, doc! {"killCursors": "c", "cursors": [id, 7]}).await,
        (
            14,
            "BSON field 'killCursors.cursors.1' is the wrong type 'int', expected type 'long'"
                .into()
        )
    );
    assert_eq!(
        refused(&db, doc! {"killCursors": "c", "cursors": id}).await,
        (
            14,
            "BSON field 'killCursors.cursors' is the wrong type 'long', expected type 'array'"
                .into()
        )
    );
    // The cursor named first was not killed by the refused command.
    let more = db
        .run_command(doc! {"getMore": id, "collection": "c", "batchSize": 1})
        .await
        .unwrap();
    assert_eq!(
        more.get_document("cursor")
            .unwrap()
            .get_array("nextBatch")
            .unwrap()
            .len(),
        1
    );
}

/// Under `apiStrict: true` the fields an API Version 1 command's IDL marks `unstable` are
/// refused (`throwAPIStrictErrorIfApplicable`): `create`'s `size`, `listIndexes`'
/// `includeBuildUUIDs`...; stable ones run.
#[tokio::test]
async fn api_strict_refuses_unstable_fields() {
    let (_c, db) = db().await;
    let strict = |mut cmd: Document| {
        cmd.insert("apiVersion", "1");
        cmd.insert("apiStrict", true);
        cmd
    };
    for (cmd, field) in [
        (
            doc! {"create": "capped", "capped": true, "size": 4096},
            "create.size",
        ),
        (
            doc! {"listIndexes": "c", "includeBuildUUIDs": true},
            "listIndexes.includeBuildUUIDs",
        ),
        (
            doc! {"listCollections": 1, "includePendingDrops": true},
            "listCollections.includePendingDrops",
        ),
    ] {
        assert_eq!(
            refused(&db, strict(cmd.clone())).await,
            (
                323,
                format!("BSON field '{field}' is not allowed with apiStrict:true.")
            ),
            "{cmd}"
        );
    }
    db.run_command(strict(doc! {"create": "plain", "validator": {"a": 1}}))
        .await
        .unwrap();
    // Without apiStrict the same field is fine.
    db.run_command(doc! {"create": "capped", "capped": true, "size": 4096, "apiVersion": "1"})
        .await
        .unwrap();
}

/// `listCommands` tells each command's API versions (`Command::apiVersions()`), the same
/// table `apiStrict` uses: `find` is in Version 1, `distinct` and `isMaster` are not.
#[tokio::test]
async fn list_commands_reports_api_versions() {
    let (_c, db) = db().await;
    let r = db
        .client()
        .database("admin")
        .run_command(doc! {"listCommands": 1})
        .await
        .unwrap();
    let commands = r.get_document("commands").unwrap();
    let versions = |name: &str| {
        let c = commands.get_document(name).unwrap();
        assert!(c.get_array("deprecatedApiVersions").unwrap().is_empty());
        c.get_array("apiVersions").unwrap().clone()
    };
    assert_eq!(versions("find"), vec![bson::Bson::from("1")]);
    assert_eq!(versions("hello"), vec![bson::Bson::from("1")]);
    assert!(versions("distinct").is_empty());
    assert!(versions("isMaster").is_empty());
}

/// `allowDiskUse` (find, aggregate) and `singleBatch` (find) are `optionalBool`s:
/// `OptionalBool::parseFromBSON` takes a boolean only, and refuses even a null.
#[tokio::test]
async fn optional_bools_take_only_booleans() {
    let (_c, db) = db().await;
    for (cmd, field, found) in [
        (doc! {"find": "c", "allowDiskUse": 1}, "allowDiskUse", "int"),
        (
            doc! {"find": "c", "singleBatch": null},
            "singleBatch",
            "null",
        ),
        (
            doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "allowDiskUse": "yes"},
            "allowDiskUse",
            "string",
        ),
    ] {
        assert_eq!(
            refused(&db, cmd.clone()).await,
            (
                14,
                format!("Field '{field}' should be a boolean value, but found: {found}")
            ),
            "{cmd}"
        );
    }
    db.run_command(doc! {"find": "c", "allowDiskUse": false, "singleBatch": true})
        .await
        .unwrap();
}
