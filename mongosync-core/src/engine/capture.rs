//! Step 5a of the data's way: read the source's cluster-wide change stream from the start
//! point (or the persisted resume point) into the [`EventBuffer`], while the copy runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bson::{Document, RawDocumentBuf, Timestamp, doc};
use mongodb::change_stream::event::ResumeToken;

use super::buffer::{EventBuffer, Item};
use super::{Engine, raise};
use crate::error::{Error, Result};
use crate::namespace::METADATA_DATABASE;

/// Where reading starts.
#[derive(Debug, Clone)]
pub(crate) enum From {
    /// The start point: events at or after this time.
    Time(Timestamp),
    /// After this token (the last applied position).
    Token(Document),
}

/// The cluster time inside a resume token (its KeyString starts with the Timestamp type byte
/// 130, then the time big-endian). `None` for a token of another shape.
pub(crate) fn token_time(token: &Document) -> Option<Timestamp> {
    let data = token.get_str("_data").ok()?;
    if data.len() < 18 || !data.starts_with("82") {
        return None;
    }
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    Some(Timestamp {
        time: hex(&data[2..10])?,
        increment: hex(&data[10..18])?,
    })
}

/// Reassembles the fragments `$changeStreamSplitLargeEvent` makes of an event over 16 MiB.
/// A server splits an event by top-level fields, so only an event with several large fields
/// (pre- or post-images, which this engine does not request today) comes split; an event
/// whose one large field does not fit in a fragment cannot be returned at all (see [`too_large`]).
#[derive(Default)]
struct Fragments {
    /// The fields so far, without `_id` and `splitEvent`.
    fields: RawDocumentBuf,
    /// The fragment expected next (1-based); 0 when no event is pending.
    next: i32,
}

impl Fragments {
    fn pending(&self) -> bool {
        self.next > 0
    }

    /// Takes one change-stream document: the event itself, `None` while fragments are
    /// pending, or the whole event (`_id`: the last fragment's token, after which a resume
    /// continues past the event) once its last fragment arrived.
    fn take(&mut self, doc: RawDocumentBuf) -> Result<Option<RawDocumentBuf>> {
        let Ok(split) = doc.get_document("splitEvent") else {
            if self.pending() {
                return Err(self.broken("an unsplit event"));
            }
            return Ok(Some(doc));
        };
        let (Ok(n), Ok(of)) = (split.get_i32("fragment"), split.get_i32("of")) else {
            return Err(self.broken("a fragment without its number"));
        };
        if n == 1 {
            if self.pending() {
                return Err(self.broken("the first fragment of another event"));
            }
            self.fields = RawDocumentBuf::new();
        } else if n != self.next {
            return Err(self.broken(&format!("fragment {n} of {of}")));
        }
        for element in doc.iter() {
            let (key, value) = element.map_err(|e| Error::Internal {
                reason: format!("a change event fragment does not decode: {e}"),
            })?;
            if key.as_str() != "_id" && key.as_str() != "splitEvent" {
                self.fields.append(key, value);
            }
        }
        if n < of {
            self.next = n + 1;
            return Ok(None);
        }
        self.next = 0;
        let mut event = RawDocumentBuf::new();
        if let Ok(id) = doc.get_document("_id") {
            event.append(bson::raw::cstr!("_id"), id);
        }
        for element in std::mem::take(&mut self.fields).iter().flatten() {
            event.append(element.0, element.1);
        }
        Ok(Some(event))
    }

    fn broken(&self, got: &str) -> Error {
        Error::Internal {
            reason: format!(
                "the source's change stream returned {got} while expecting fragment {} of a split event",
                self.next
            ),
        }
    }
}

/// An event the source cannot return at all: over 16 MiB (BSONObjectTooLarge) and not
/// splittable because one of its fields, with the event's resume token, is too large for a
/// fragment (7182500). It happens to a document near 16 MiB with a large `_id` (the event
/// carries the `_id` in its token, twice as wide, and in `documentKey`).
fn too_large(e: mongodb::error::Error) -> std::result::Result<Error, mongodb::error::Error> {
    match &*e.kind {
        mongodb::error::ErrorKind::Command(c) if c.code == 10334 || c.code == 7182500 => {
            // The server's message quotes the event's resume token, which holds the `_id`.
            let mut said: String = c.message.chars().take(200).collect();
            if said.len() < c.message.len() {
                said.push('…');
            }
            Ok(Error::Unsupported {
                what: "a change event over 16 MiB on the source".into(),
                reason: format!(
                    "the server cannot return it, even split into fragments (each top-level field of the event must fit in one fragment beside the event's resume token, which holds the _id); this happens to a document near 16 MiB with a large _id, and the sync cannot continue past it: keep such documents smaller (or their _id shorter) on the source and start a new sync (the server said: {said})"
                ),
            })
        }
        _ => Err(e),
    }
}

/// Reads until aborted; returns only on an error that retries did not cure. After a transient
/// failure the stream is reopened after the last position it delivered.
pub(crate) async fn read(engine: Arc<Engine>, from: From, buffer: Arc<EventBuffer>) -> Result<()> {
    let position = std::sync::Mutex::new(from);
    let split = std::sync::atomic::AtomicBool::new(true);
    super::retry::retry(&engine, "reading the source's change events", || {
        read_once(&engine, &position, &split, &buffer)
    })
    .await
}

/// Code of "Unrecognized pipeline stage name" (a source older than 6.0.9 lacks the split stage).
const UNRECOGNIZED_STAGE: i32 = 40324;

async fn read_once(
    engine: &Arc<Engine>,
    position: &std::sync::Mutex<From>,
    split: &std::sync::atomic::AtomicBool,
    buffer: &EventBuffer,
) -> Result<()> {
    let source = engine.source().clone();
    let step = "reading the source's change events";
    // The engine's own metadata never travels (it lives on the destination, but a reversed
    // sync reads from the old destination). Events over 16 MiB come split (the stage must be
    // last) and are reassembled below.
    let mut pipeline = vec![doc! {"$match": {"ns.db": {"$ne": METADATA_DATABASE}}}];
    if split.load(Ordering::Relaxed) {
        pipeline.push(doc! {"$changeStreamSplitLargeEvent": {}});
    }
    let watch = source
        .client
        .watch()
        .pipeline(pipeline)
        .show_expanded_events(true)
        .max_await_time(Duration::from_millis(500))
        .batch_size(1000);
    let from = position.lock().expect("position lock").clone();
    let watch = match &from {
        From::Time(ts) => watch.start_at_operation_time(*ts),
        From::Token(t) => {
            let token: ResumeToken =
                bson::deserialize_from_document(t.clone()).map_err(|e| Error::Metadata {
                    reason: format!("the persisted resume token is not valid: {e}"),
                })?;
            watch.start_after(token)
        }
    };
    let mut stream = match watch.await {
        Ok(stream) => stream.with_type::<RawDocumentBuf>(),
        Err(e)
            if matches!(&*e.kind, mongodb::error::ErrorKind::Command(c) if c.code == UNRECOGNIZED_STAGE)
                && split.swap(false, Ordering::Relaxed) =>
        {
            // Without the stage an event over 16 MiB fails the stream, as it would anyway.
            tracing::warn!(
                "the source does not know $changeStreamSplitLargeEvent; change events over 16 MiB will stop the sync"
            );
            return Box::pin(read_once(engine, position, split, buffer)).await;
        }
        Err(e) => return Err(Error::step(step, source.name.as_str(), e)),
    };
    let mut last_position: Option<Document> = None;
    let mut fragments = Fragments::default();
    loop {
        match stream.next_if_any().await.map_err(|e| {
            too_large(e).unwrap_or_else(|e| Error::step(step, source.name.as_str(), e))
        })? {
            Some(event) => {
                // A resume (ours or the driver's) never starts inside an event: positions are
                // only taken from whole events.
                let Some(event) = fragments.take(event)? else {
                    continue;
                };
                if let Ok(ts) = event.get_timestamp("clusterTime") {
                    raise(&engine.stats.source_time, ts);
                }
                let token = event
                    .get_document("_id")
                    .ok()
                    .and_then(|t| Document::try_from(t).ok());
                buffer.push(Item::Event(event)).await?;
                engine.stats.events_read.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = token {
                    *position.lock().expect("position lock") = From::Token(t);
                }
            }
            None if fragments.pending() => {}
            None => {
                let token = stream
                    .resume_token()
                    .and_then(|t| bson::serialize_to_document(&t).ok());
                if let Some(p) = token
                    && last_position.as_ref() != Some(&p)
                {
                    if let Some(ts) = token_time(&p) {
                        raise(&engine.stats.source_time, ts);
                    }
                    buffer.push(Item::Position(p.clone())).await?;
                    *position.lock().expect("position lock") = From::Token(p.clone());
                    last_position = Some(p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(n: i32, of: i32, fields: RawDocumentBuf) -> RawDocumentBuf {
        let mut f = bson::rawdoc! {"_id": {"_data": format!("T{n}")}, "splitEvent": {"fragment": n, "of": of}};
        for e in fields.iter() {
            let (k, v) = e.unwrap();
            f.append(k, v);
        }
        f
    }

    #[test]
    fn fragments_are_reassembled_into_one_event() {
        let mut f = Fragments::default();
        let whole = bson::rawdoc! {"_id": {"_data": "E"}, "operationType": "delete"};
        assert_eq!(f.take(whole.clone()).unwrap(), Some(whole));
        let parts = [
            bson::rawdoc! {"operationType": "insert", "ns": {"db": "d", "coll": "c"}},
            bson::rawdoc! {"documentKey": {"_id": 1}},
            bson::rawdoc! {"fullDocument": {"_id": 1, "a": "x"}},
        ];
        for (i, p) in parts.iter().enumerate().take(2) {
            assert_eq!(f.take(fragment(i as i32 + 1, 3, p.clone())).unwrap(), None);
            assert!(f.pending());
        }
        let event = f.take(fragment(3, 3, parts[2].clone())).unwrap().unwrap();
        assert!(!f.pending());
        // The last fragment's token: a resume from it continues after the whole event.
        assert_eq!(
            event,
            bson::rawdoc! {"_id": {"_data": "T3"}, "operationType": "insert",
            "ns": {"db": "d", "coll": "c"}, "documentKey": {"_id": 1},
            "fullDocument": {"_id": 1, "a": "x"}}
        );
    }

    #[test]
    fn a_missing_fragment_is_an_error() {
        let mut f = Fragments::default();
        assert!(f.take(fragment(2, 3, bson::rawdoc! {"a": 1})).is_err());
        let mut f = Fragments::default();
        f.take(fragment(1, 3, bson::rawdoc! {"a": 1})).unwrap();
        assert!(f.take(fragment(3, 3, bson::rawdoc! {"b": 1})).is_err());
        let mut f = Fragments::default();
        f.take(fragment(1, 2, bson::rawdoc! {"a": 1})).unwrap();
        assert!(f.take(bson::rawdoc! {"_id": {"_data": "E"}}).is_err());
    }

    #[test]
    fn reads_the_time_of_a_keystring_token() {
        let t = doc! {"_data": "8263A1B2C3000000052B042C0100296E5A1004"};
        assert_eq!(
            token_time(&t),
            Some(Timestamp {
                time: 0x63A1B2C3,
                increment: 5
            })
        );
        assert_eq!(token_time(&doc! {"_data": "zz"}), None);
    }
}
