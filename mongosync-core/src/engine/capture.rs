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

/// Reads until aborted; returns only on an error that retries did not cure. After a transient
/// failure the stream is reopened after the last position it delivered.
pub(crate) async fn read(engine: Arc<Engine>, from: From, buffer: Arc<EventBuffer>) -> Result<()> {
    let position = std::sync::Mutex::new(from);
    super::retry::retry(&engine, "reading the source's change events", || {
        read_once(&engine, &position, &buffer)
    })
    .await
}

async fn read_once(
    engine: &Arc<Engine>,
    position: &std::sync::Mutex<From>,
    buffer: &EventBuffer,
) -> Result<()> {
    let source = engine.source().clone();
    let step = "reading the source's change events";
    // The engine's own metadata never travels (it lives on the destination, but a reversed
    // sync reads from the old destination).
    let pipeline = [doc! {"$match": {"ns.db": {"$ne": METADATA_DATABASE}}}];
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
    let mut stream = watch
        .await
        .map_err(|e| Error::step(step, source.name.as_str(), e))?
        .with_type::<RawDocumentBuf>();
    let mut last_position: Option<Document> = None;
    loop {
        match stream
            .next_if_any()
            .await
            .map_err(|e| Error::step(step, source.name.as_str(), e))?
        {
            Some(event) => {
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
