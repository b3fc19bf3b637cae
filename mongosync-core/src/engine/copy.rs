//! Step 4 of the data's way: copy partitions in parallel, as raw BSON end to end.
//!
//! Each worker reads its partition with one cursor and writes large unordered batches with
//! `bypassDocumentValidation`. Reading and writing overlap through a channel of two batches, so
//! memory stays bounded by workers × batches × batch size, whatever the data size. A
//! partition's completion is persisted, and within a partition the last `_id` written, about
//! once a second: a restart continues each unfinished partition from there. The duplicate keys
//! that a redo meets are benign (change application replays from the start point and
//! converges).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bson::{Bson, RawDocumentBuf, doc};
use futures::TryStreamExt;
use mongodb::options::Hint;
use tokio::sync::mpsc;

use super::initialise::create_collection;
use super::metadata::Partition;
use super::{Control, Engine};
use crate::error::{Error, Result, only_duplicate_keys, server_code};

/// QueryPlanKilled: the collection of a cursor was dropped or renamed.
pub(crate) const QUERY_PLAN_KILLED: i32 = 175;
/// CappedPositionLost: capping deleted the record a capped collection's cursor stood on.
const CAPPED_POSITION_LOST: i32 = 136;
/// How many times a capped collection's copy starts again after losing its position.
const CAPPED_RESTARTS: u32 = 20;

/// How often a partition's progress is persisted while it is copied.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The outcome of the copy: finished, or stopped by a pause.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Paused,
}

/// Copies every pending partition with the configured number of workers.
pub(crate) async fn copy_all(engine: &Arc<Engine>, pending: Vec<Partition>) -> Result<Outcome> {
    let queue = Arc::new(std::sync::Mutex::new(VecDeque::from(pending)));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..engine.opts.copy_workers {
        let engine = Arc::clone(engine);
        let queue = Arc::clone(&queue);
        workers.spawn(async move {
            loop {
                if engine.control() == Control::Pause {
                    return Ok(Outcome::Paused);
                }
                let next = queue.lock().expect("queue lock").pop_front();
                let Some(part) = next else {
                    return Ok(Outcome::Done);
                };
                let what = format!("copying partition `{}`", part.id);
                // A retry continues from the attempt's last checkpoint.
                let progress = std::sync::Mutex::new(part.clone());
                let mut restarts = 0;
                let outcome = loop {
                    let attempt = super::retry::retry(&engine, &what, || {
                        let part = progress.lock().expect("partition lock").clone();
                        copy_partition(&engine, part, &progress)
                    })
                    .await;
                    match attempt {
                        // Inserts capped away the position of a capped collection's cursor
                        // (copied whole, in natural order): copy it again from the start.
                        Err(e)
                            if part.natural
                                && restarts < CAPPED_RESTARTS
                                && code_of(&e) == Some(CAPPED_POSITION_LOST) =>
                        {
                            restarts += 1;
                            tracing::warn!("{what}: {e}; copying it again");
                            *progress.lock().expect("partition lock") = part.clone();
                        }
                        other => break other?,
                    }
                };
                if outcome == Outcome::Paused {
                    return Ok(Outcome::Paused);
                }
            }
        });
    }
    let mut outcome = Outcome::Done;
    while let Some(joined) = workers.join_next().await {
        let result = joined.map_err(|e| Error::task("a copy worker", e))?;
        match result {
            Ok(Outcome::Paused) => outcome = Outcome::Paused,
            Ok(Outcome::Done) => {}
            Err(e) => {
                // One failure stops the copy; the other workers stop with it (JoinSet drop).
                return Err(e);
            }
        }
    }
    Ok(outcome)
}

/// Copies one partition from `part.lower` (the last checkpoint, when `part.copied > 0`); each
/// checkpoint is also recorded in `progress`, where a retry starts from. Figures counted after
/// the last checkpoint are taken back when the attempt fails or pauses, since the next attempt
/// copies those documents again.
async fn copy_partition(
    engine: &Arc<Engine>,
    part: Partition,
    progress: &std::sync::Mutex<Partition>,
) -> Result<Outcome> {
    let part = &part;
    let unsaved_documents = AtomicU64::new(0);
    let unsaved_bytes = AtomicU64::new(0);
    let outcome = copy_attempt(engine, part, progress, &unsaved_documents, &unsaved_bytes).await;
    if !matches!(outcome, Ok(Outcome::Done)) {
        engine.stats.uncopied(
            &part.ns,
            unsaved_documents.load(Ordering::Relaxed),
            unsaved_bytes.load(Ordering::Relaxed),
        );
    }
    outcome
}

async fn copy_attempt(
    engine: &Arc<Engine>,
    part: &Partition,
    progress: &std::sync::Mutex<Partition>,
    unsaved_documents: &AtomicU64,
    unsaved_bytes: &AtomicU64,
) -> Result<Outcome> {
    let source = engine.source().clone();
    let dest = engine.destination().clone();
    let meta = engine.metadata();
    let step = format!("copying partition `{}`", part.id);
    meta.partition_phase(&part.id, "in progress", part.copied)
        .await?;
    if part.natural {
        // A natural-order partition is redone from an empty collection, so that order holds.
        recreate(engine, part).await?;
    }
    let src = source
        .client
        .database(&part.ns.db)
        .collection::<RawDocumentBuf>(&part.ns.coll);
    let mut find = src.find(doc! {}).batch_size(4096);
    if !part.natural {
        find = find.hint(Hint::Keys(doc! {"_id": 1}));
        if part.lower != Bson::MinKey {
            find = find.min(doc! {"_id": part.lower.clone()});
        }
        if part.upper != Bson::MaxKey {
            find = find.max(doc! {"_id": part.upper.clone()});
        }
    }
    let mut cursor = find
        .await
        .map_err(|e| Error::step(step.clone(), source.name.as_str(), e))?;
    // From a checkpoint, the bound itself was written already (`min` is inclusive).
    let mut skip_first = (!part.natural && part.copied > 0 && part.lower != Bson::MinKey)
        .then(|| part.lower.clone());

    let batch_bytes = engine.opts.copy_batch_bytes;
    let (tx, rx) = mpsc::channel::<Vec<RawDocumentBuf>>(2);
    let reader = {
        let step = step.clone();
        let engine = Arc::clone(engine);
        async move {
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            loop {
                let doc = match cursor.try_next().await {
                    Ok(Some(doc)) => doc,
                    Ok(None) => break,
                    // The collection was dropped or renamed under the cursor: what was read is
                    // copied, and the change stream replays the drop or rename (a rename's
                    // target is copied again whole).
                    Err(e) if server_code(&e) == Some(QUERY_PLAN_KILLED) => {
                        tracing::info!("copy of `{}` stopped: {e}", part.ns);
                        break;
                    }
                    Err(e) => return Err(Error::step(step.clone(), source.name.as_str(), e)),
                };
                if let Some(bound) = skip_first.take()
                    && doc
                        .get("_id")
                        .ok()
                        .flatten()
                        .and_then(|id| Bson::try_from(id.to_owned()).ok())
                        == Some(bound)
                {
                    continue;
                }
                bytes += doc.as_bytes().len();
                batch.push(doc);
                if bytes >= batch_bytes || batch.len() >= 100_000 {
                    if engine.control() == Control::Pause {
                        return Ok(Outcome::Paused);
                    }
                    if tx.send(std::mem::take(&mut batch)).await.is_err() {
                        return Ok(Outcome::Done);
                    }
                    bytes = 0;
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch).await;
            }
            Ok::<_, Error>(Outcome::Done)
        }
    };
    let dst = dest
        .client
        .database(&part.ns.db)
        .collection::<RawDocumentBuf>(&part.ns.coll);
    let natural = part.natural;
    let writer = async {
        // Owned here, so that a writer that fails closes the channel and the reader stops
        // (borrowed, a full channel would keep the reader waiting for ever).
        let mut rx = rx;
        let mut copied = part.copied;
        let mut checkpointed = Instant::now();
        while let Some(batch) = rx.recv().await {
            let bytes: i64 = batch.iter().map(|d| d.as_bytes().len() as i64).sum();
            let documents = batch.len() as u64;
            let began = Instant::now();
            // Batches are written one after another in `_id` order: once this one is in,
            // everything up to its last `_id` is.
            let last = batch
                .last()
                .and_then(|d| d.get("_id").ok().flatten())
                .and_then(|id| Bson::try_from(id.to_owned()).ok());
            match dst
                .insert_many(batch)
                .ordered(natural)
                .bypass_document_validation(true)
                .await
            {
                Ok(_) => {}
                Err(e) if only_duplicate_keys(&e) => {}
                Err(e) => return Err(Error::step(step.clone(), dest.name.as_str(), e)),
            }
            copied += bytes;
            engine
                .stats
                .copied(&part.ns, documents, bytes as u64, began.elapsed());
            unsaved_documents.fetch_add(documents, Ordering::Relaxed);
            unsaved_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            engine.publish();
            if !natural
                && checkpointed.elapsed() >= CHECKPOINT_EVERY
                && let Some(last) = &last
            {
                meta.partition_checkpoint(&part.id, copied, last).await?;
                {
                    let mut p = progress.lock().expect("partition lock");
                    p.lower = last.clone();
                    p.copied = copied;
                }
                unsaved_documents.store(0, Ordering::Relaxed);
                unsaved_bytes.store(0, Ordering::Relaxed);
                checkpointed = Instant::now();
            }
        }
        Ok(copied)
    };
    let (read, written) = tokio::join!(reader, writer);
    let copied = written?;
    if read? == Outcome::Paused {
        return Ok(Outcome::Paused);
    }
    meta.partition_phase(&part.id, "done", copied).await?;
    Ok(Outcome::Done)
}

/// The server's code behind an engine error, if a server answered with one.
pub(crate) fn code_of(e: &Error) -> Option<i32> {
    match e {
        Error::Step {
            source: Some(s), ..
        } => server_code(&s.0),
        _ => None,
    }
}

async fn recreate(engine: &Engine, part: &Partition) -> Result<()> {
    let Some(spec) = super::ddl::spec_of(engine, &part.ns).await? else {
        return Ok(());
    };
    let dest = engine.destination();
    dest.client
        .database(&part.ns.db)
        .collection::<bson::Document>(&part.ns.coll)
        .drop()
        .await
        .map_err(|e| Error::step(format!("re-creating `{}`", part.ns), dest.name.as_str(), e))?;
    create_collection(dest, &spec).await?;
    let build = engine
        .start_options()
        .map(|o| o.build_indexes)
        .unwrap_or_default();
    if build.before_copy() {
        super::initialise::create_indexes(dest, &spec.ns, &spec.indexes, build).await?;
    }
    Ok(())
}
