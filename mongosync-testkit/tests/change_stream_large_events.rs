//! Change events over 16 MiB through the official Rust driver, as a real 7.0+ server serves
//! them: without `$changeStreamSplitLargeEvent` the stream fails with BSONObjectTooLarge
//! (10334); with it the event arrives as fragments (`splitEvent: {fragment, of}`), each with
//! its own resume token, and resuming from a fragment's token continues with the next one.
//! The event is the server's own test case: an update of a 16 MiB document with its pre- and
//! post-images (three ~16 MiB fields).

use bson::{Bson, Document, doc};
use futures::StreamExt;
use mongodb::error::{Error, ErrorKind};
use mongodb::{Client, Database};
use mongosync_testkit::MemoryCluster;
use mongosync_testkit::changestream::token::ResumeTokenData;

fn code(e: &Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

fn message(e: &Error) -> String {
    match &*e.kind {
        ErrorKind::Command(c) => c.message.clone(),
        _ => e.to_string(),
    }
}

/// The string length that makes `{_id: "aaa", a: <string>}` exactly 16 MiB.
fn large_len() -> usize {
    let small = bson::serialize_to_vec(&doc! {"_id": "aaa", "a": "x"})
        .unwrap()
        .len();
    16 * 1024 * 1024 - small + 1
}

struct Setup {
    _cluster: MemoryCluster,
    db: Database,
    /// A high-water mark before the large update.
    start: Document,
}

/// A collection with pre- and post-images, a 16 MiB document, and a 16 MiB update of it.
async fn setup() -> Setup {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("big");
    db.run_command(doc! {"create": "c", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .unwrap();
    let coll = db.collection::<Document>("c");
    let n = large_len();
    coll.insert_one(doc! {"_id": "aaa", "a": "x".repeat(n)})
        .await
        .unwrap();
    let opened = db
        .run_command(doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}})
        .await
        .unwrap();
    let start = opened
        .get_document("cursor")
        .unwrap()
        .get_document("postBatchResumeToken")
        .unwrap()
        .clone();
    coll.update_one(doc! {"_id": "aaa"}, doc! {"$set": {"a": "y".repeat(n)}})
        .await
        .unwrap();
    Setup {
        _cluster: cluster,
        db,
        start,
    }
}

fn images(resume: &Document) -> Document {
    doc! {"resumeAfter": resume.clone(), "fullDocument": "required",
    "fullDocumentBeforeChange": "required"}
}

async fn open(db: &Database, spec: Document, split: bool) -> Result<(i64, Vec<Document>), Error> {
    let mut pipeline = vec![doc! {"$changeStream": spec}];
    if split {
        pipeline.push(doc! {"$changeStreamSplitLargeEvent": {}});
    }
    let reply = db
        .run_command(doc! {"aggregate": "c", "pipeline": pipeline, "cursor": {"batchSize": 0}})
        .await?;
    let cursor = reply.get_document("cursor").unwrap();
    Ok((cursor.get_i64("id").unwrap(), batch(cursor, "firstBatch")))
}

fn batch(cursor: &Document, field: &str) -> Vec<Document> {
    cursor
        .get_array(field)
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect()
}

async fn get_more(db: &Database, id: i64) -> Result<Vec<Document>, Error> {
    let reply = db
        .run_command(doc! {"getMore": id, "collection": "c", "maxTimeMS": 2000})
        .await?;
    Ok(batch(reply.get_document("cursor").unwrap(), "nextBatch"))
}

/// Reads `n` documents from the cursor, one getMore at a time.
async fn read(db: &Database, id: i64, n: usize) -> Vec<Document> {
    let mut out = Vec::new();
    while out.len() < n {
        let docs = get_more(db, id).await.unwrap();
        assert!(!docs.is_empty(), "the fragments are there at once");
        out.extend(docs);
    }
    out
}

fn encoded_size(value: &Bson) -> usize {
    bson::serialize_to_vec(&doc! {"v": value.clone()})
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_the_limit_fails_the_stream_with_10334() {
    let s = setup().await;
    let (id, first) = open(&s.db, images(&s.start), false).await.unwrap();
    assert!(first.is_empty());
    let e = get_more(&s.db, id).await.unwrap_err();
    assert_eq!(code(&e), Some(10334), "{e}");
    let m = message(&e);
    assert!(m.starts_with("BSONObj size: "), "{m}");
    assert!(
        m.contains("is invalid. Size must be between 0 and 16793600(16MB) First element: _id: "),
        "{m}"
    );

    // Without the images the same update is a small event: no split, no error.
    let (id, _) = open(&s.db, doc! {"resumeAfter": s.start.clone()}, true)
        .await
        .unwrap();
    let docs = get_more(&s.db, id).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].get_str("operationType").unwrap(), "update");
    assert!(!docs[0].contains_key("splitEvent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_event_is_split_into_fragments_that_resume() {
    let s = setup().await;
    let n = large_len();
    let (id, first) = open(&s.db, images(&s.start), true).await.unwrap();
    assert!(first.is_empty());
    let fragments = read(&s.db, id, 3).await;
    assert_eq!(fragments.len(), 3);

    let mut event = Document::new();
    let mut tokens = Vec::new();
    for (i, f) in fragments.iter().enumerate() {
        let keys: Vec<&String> = f.keys().collect();
        assert_eq!(keys[0], "_id");
        assert_eq!(keys[1], "splitEvent");
        assert_eq!(
            f.get_document("splitEvent").unwrap(),
            &doc! {"fragment": i as i32 + 1, "of": 3}
        );
        // Fields by size, smallest first (then by name), across fragments.
        let sizes: Vec<usize> = f.iter().skip(2).map(|(_, v)| encoded_size(v)).collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
        let token = f.get_document("_id").unwrap();
        let data = ResumeTokenData::decode(token).unwrap();
        assert_eq!(data.fragment_num, Some(i as i32));
        assert_eq!(
            data.event_identifier,
            Some(doc! {"operationType": "update", "documentKey": {"_id": "aaa"}})
        );
        assert!(bson::serialize_to_vec(f).unwrap().len() <= 16 * 1024 * 1024 + 16 * 1024);
        tokens.push(token.clone());
        for (k, v) in f.iter().skip(2) {
            assert!(event.insert(k.clone(), v.clone()).is_none(), "{k} twice");
        }
    }
    // The small fields come first, the three large ones one per fragment.
    assert_eq!(event.get_str("operationType").unwrap(), "update");
    assert_eq!(
        event.get_document("documentKey").unwrap(),
        &doc! {"_id": "aaa"}
    );
    let full = event.get_document("fullDocument").unwrap();
    assert_eq!(full.get_str("a").unwrap().len(), n);
    assert!(full.get_str("a").unwrap().starts_with('y'));
    let before = event.get_document("fullDocumentBeforeChange").unwrap();
    assert!(before.get_str("a").unwrap().starts_with('x'));
    let updated = event
        .get_document("updateDescription")
        .unwrap()
        .get_document("updatedFields")
        .unwrap();
    assert_eq!(updated.get_str("a").unwrap().len(), n);
    assert!(fragments[0].contains_key("operationType"));

    // Resuming from the second fragment's token continues with the third.
    let (id, _) = open(&s.db, images(&tokens[1]), true).await.unwrap();
    let next = read(&s.db, id, 1).await;
    assert_eq!(next[0].get_document("_id").unwrap(), &tokens[2]);
    assert_eq!(
        next[0].get_document("splitEvent").unwrap(),
        &doc! {"fragment": 3, "of": 3}
    );
    // From the last fragment's token: the event is complete, nothing more.
    let (id, _) = open(&s.db, images(&tokens[2]), true).await.unwrap();
    let reply =
        s.db.run_command(doc! {"getMore": id, "collection": "c", "maxTimeMS": 100})
            .await
            .unwrap();
    let cursor = reply.get_document("cursor").unwrap();
    assert!(batch(cursor, "nextBatch").is_empty());

    // Through the driver: the batches hold one fragment each and the stream's resume token
    // follows them.
    let mut stream =
        s.db.collection::<Document>("c")
            .watch()
            .pipeline([doc! {"$changeStreamSplitLargeEvent": {}}])
            .resume_after(
                bson::deserialize_from_document::<mongodb::change_stream::event::ResumeToken>(
                    s.start.clone(),
                )
                .unwrap(),
            )
            .full_document(mongodb::options::FullDocumentType::Required)
            .full_document_before_change(mongodb::options::FullDocumentBeforeChangeType::Required)
            .await
            .unwrap()
            .with_type::<Document>();
    for (i, token) in tokens.iter().enumerate() {
        let f = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("a fragment within 10 s")
            .expect("stream open")
            .unwrap();
        assert_eq!(f.get_document("_id").unwrap(), token, "fragment {i}");
        let resume = bson::serialize_to_document(&stream.resume_token().unwrap()).unwrap();
        assert_eq!(&resume, token);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_a_fragment_needs_the_same_split() {
    let s = setup().await;
    let (id, _) = open(&s.db, images(&s.start), true).await.unwrap();
    let fragments = read(&s.db, id, 3).await;
    let second = fragments[1].get_document("_id").unwrap().clone();

    // Without the stage: refused when the stream opens.
    let e = open(&s.db, images(&second), false).await.unwrap_err();
    assert_eq!(code(&e), Some(280), "{e}");
    assert_eq!(
        message(&e),
        "To resume from a split event, the $changeStream pipeline must include a $changeStreamSplitLargeEvent stage"
    );
    assert!(e.contains_label("NonResumableChangeStreamError"));

    // Without the images the event is too small to have been split: the getMore fails.
    let (id, _) = open(&s.db, doc! {"resumeAfter": second.clone()}, true)
        .await
        .unwrap();
    let e = get_more(&s.db, id).await.unwrap_err();
    assert_eq!(code(&e), Some(280), "{e}");
    assert_eq!(
        message(&e),
        "Attempted to resume from a split event fragment, but the event in the resumed stream was not large enough to be split"
    );
}

#[tokio::test]
async fn the_split_stage_is_refused_where_the_server_refuses_it() {
    let cluster = MemoryCluster::start().await.unwrap();
    let client = Client::with_uri_str(cluster.uri()).await.unwrap();
    let db = client.database("big");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let run = |pipeline: Vec<Document>| {
        let db = db.clone();
        async move {
            db.run_command(doc! {"aggregate": "c", "pipeline": pipeline, "cursor": {}})
                .await
                .unwrap_err()
        }
    };
    let split = doc! {"$changeStreamSplitLargeEvent": {}};
    let cs = doc! {"$changeStream": {}};

    let e = run(vec![split.clone()]).await;
    assert_eq!(code(&e), Some(20), "{e}");
    assert_eq!(
        message(&e),
        "$changeStreamSplitLargeEvent can only be used in a $changeStream pipeline"
    );
    for pipeline in [
        vec![cs.clone(), split.clone(), split.clone()],
        vec![
            cs.clone(),
            split.clone(),
            doc! {"$project": {"fullDocument": 0}},
        ],
    ] {
        let e = run(pipeline).await;
        assert_eq!(code(&e), Some(7182802), "{e}");
        assert_eq!(
            message(&e),
            "$changeStreamSplitLargeEvent must be the last stage in the pipeline"
        );
    }
    for arg in [Bson::Document(doc! {"x": 1}), Bson::Int32(1)] {
        let e = run(vec![cs.clone(), doc! {"$changeStreamSplitLargeEvent": arg}]).await;
        assert_eq!(code(&e), Some(7182800), "{e}");
        assert_eq!(
            message(&e),
            "$changeStreamSplitLargeEvent spec should be an empty object"
        );
    }
}
