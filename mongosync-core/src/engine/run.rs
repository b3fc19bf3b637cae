//! The running task: from the persisted phase onwards, initialise, partition, copy (with the
//! change stream read into the buffer meanwhile), then apply change events until paused or
//! until a commit has drained to its commit point.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bson::{Document, Timestamp};
use tokio::task::JoinSet;

use super::apply::Prepared;
use super::buffer::{EventBuffer, Item};
use super::capture::{self, From};
use super::copy::{self, Outcome};
use super::initialise::{self, CollSpec};
use super::metadata::Phase;
use super::{Control, Engine, commit, pack, partition, raise};
use crate::error::{Error, Result};

pub(crate) async fn run(engine: &Arc<Engine>) -> Result<()> {
    let meta = engine.metadata();
    let id = engine.opts.id.clone();
    let global = meta.global().await?.ok_or_else(|| Error::Metadata {
        reason: "the global state is missing".into(),
    })?;
    let start_time =
        global
            .get_timestamp("changeStreamStartTime")
            .map_err(|_| Error::Metadata {
                reason: "the start point is missing".into(),
            })?;
    let resume = meta.resume_data(&id).await?.unwrap_or_default();
    let mut phase = resume
        .get_str("syncPhase")
        .ok()
        .and_then(Phase::parse)
        .unwrap_or(Phase::InitializingCollections);
    let scope = engine.scope()?;
    let source = engine.source().clone();
    let stats = &engine.stats;
    raise(&stats.applied_time, start_time);
    raise(&stats.source_time, start_time);

    if phase == Phase::InitializingCollections {
        engine.set_phase(phase);
        let specs = initialise::catalog(&source, &scope).await?;
        initialise::check_supported(&specs)?;
        initialise::create_destination(engine, &specs).await?;
        phase = Phase::InitializingPartitions;
        meta.set_state(&id, "RUNNING", phase).await?;
    }
    if phase == Phase::InitializingPartitions {
        engine.set_phase(phase);
        for spec in meta
            .collections()
            .await?
            .iter()
            .filter_map(CollSpec::from_metadata)
        {
            if spec.is_view() || meta.has_partitions(&spec.ns).await? {
                continue;
            }
            let parts = partition::plan(&source, &spec, engine.opts.partition_bytes).await?;
            meta.save_partitions(&parts).await?;
        }
        phase = Phase::CollectionCopy;
        meta.set_state(&id, "RUNNING", phase).await?;
    }

    // A reversed sync's new destination: its unique indexes go non-unique before any event
    // is applied (idempotent, so a kill midway is redone).
    if resume.get_bool("reverseUniqueRelaxed").ok() == Some(false) {
        commit::relax_reverse_unique(engine, engine.destination(), &resume).await?;
        meta.set_fields(&id, bson::doc! {"reverseUniqueRelaxed": true})
            .await?;
    }
    // The reader starts before the copy, so a long copy cannot outrun the source's history.
    let resume_info = resume.get_document("crudChangeStreamResumeInfo").ok();
    let from = match resume_info.and_then(|r| r.get_document("resumeToken").ok()) {
        Some(token) => From::Token(token.clone()),
        None => From::Time(start_time),
    };
    if let Some(ts) = resume_info.and_then(|r| r.get_timestamp("lastEventTs").ok()) {
        raise(&stats.applied_time, ts);
    }
    // The spill file is unlinked once opened: no directory of its own is needed.
    let spill_dir = engine
        .opts
        .spill_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let buffer = Arc::new(EventBuffer::new(engine.opts.buffer_memory_bytes, spill_dir));
    let mut reader = JoinSet::new();
    reader.spawn(capture::read(Arc::clone(engine), from, Arc::clone(&buffer)));

    let (pending, done_bytes, total) = meta.pending_partitions().await?;
    stats.total_bytes.store(total, Ordering::Relaxed);
    stats.copied_bytes.store(done_bytes, Ordering::Relaxed);
    stats.copy_started.store(true, Ordering::Relaxed);
    if phase == Phase::CollectionCopy {
        engine.set_phase(phase);
        let outcome = tokio::select! {
            r = copy::copy_all(engine, pending) => r?,
            Some(r) = reader.join_next() => return Err(reader_ended(r)),
        };
        if outcome == Outcome::Paused {
            return Ok(());
        }
        let build = engine
            .start_options()
            .map(|o| o.build_indexes)
            .unwrap_or_default();
        if !build.before_copy() {
            for spec in meta
                .collections()
                .await?
                .iter()
                .filter_map(CollSpec::from_metadata)
            {
                if !spec.is_view() {
                    initialise::create_indexes(
                        engine.destination(),
                        &spec.ns,
                        &spec.indexes,
                        build,
                    )
                    .await?;
                }
            }
        }
        phase = Phase::ChangeEventApplication;
        meta.set_state(&id, "RUNNING", phase).await?;
    }
    let copied = stats.copied_bytes.load(Ordering::Relaxed);
    // After the copy the estimate equals what was copied (mongosync 1.21).
    stats.total_bytes.store(copied, Ordering::Relaxed);
    stats.copy_done.store(true, Ordering::Relaxed);
    if phase < Phase::Committing {
        engine.set_phase(Phase::ChangeEventApplication);
    }
    // Change application counts as running once the stream has delivered (see below).
    stats.cea_running.store(false, Ordering::SeqCst);

    let mut known = super::apply::Known {
        ambiguous_paths: !engine.source().disambiguates_paths(),
        ..Default::default()
    };
    for spec in meta
        .collections()
        .await?
        .iter()
        .filter_map(CollSpec::from_metadata)
    {
        if spec.is_capped() {
            known.capped.insert(spec.ns.clone());
        }
        if super::apply::has_collation(&spec.options) {
            known.collated.insert(spec.ns);
        }
    }
    let mut commit_point: Option<Timestamp> = resume.get_timestamp("commitPoint").ok();
    // In-scope writes after the commit point that were applied, per namespace: summed over
    // the rounds and reported once, so that equal per-round figures cannot merge into one
    // warning.
    let mut late_applied: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_saved = Instant::now();
    let mut unsaved: Option<(Document, Timestamp)> = None;
    let round_events = engine.opts.apply_round_events;
    // The next round, read and prepared while the current one was written.
    let mut next: Option<(Prepared, bool)> = None;
    loop {
        if let Some(r) = reader.try_join_next() {
            return Err(reader_ended(r));
        }
        match engine.control() {
            Control::Pause => {
                // A prepared but unwritten round is read again after the saved point.
                if let Some((token, ts)) = unsaved.take() {
                    meta.save_resume_point(&id, &token, ts).await?;
                }
                reader.abort_all();
                return Ok(());
            }
            Control::Commit if commit_point.is_none() => {
                let cp = commit::begin(engine).await?;
                commit_point = Some(cp);
            }
            _ => {}
        }
        let current = match next.take() {
            Some(round) => Some(round),
            None => {
                let items = buffer.pop(round_events, Duration::from_millis(100)).await?;
                take_round(
                    engine,
                    &scope,
                    &mut known,
                    commit_point,
                    items,
                    &mut late_applied,
                )?
            }
        };
        let Some((round, had_events)) = current else {
            stats.caught_up.store(buffer.is_empty(), Ordering::Relaxed);
            continue;
        };
        // Write this round while the next is read and prepared; not while committing, so
        // that every event after the commit point is seen by the final check.
        let prefetch = commit_point.is_none();
        let began = Instant::now();
        let (written, upcoming) = tokio::join!(
            // A round is idempotent: after a transient failure it is written again whole.
            super::retry::retry(engine, "applying change events", || {
                super::apply::execute(engine, &scope, &round)
            }),
            async {
                if !prefetch {
                    return Ok(None);
                }
                let items = buffer.pop(round_events, Duration::from_millis(0)).await?;
                take_round(
                    engine,
                    &scope,
                    &mut known,
                    commit_point,
                    items,
                    &mut late_applied,
                )
            }
        );
        written?;
        let took = began.elapsed();
        next = upcoming?;
        if let Some(reached) = round.reached {
            stats.cea_running.store(true, Ordering::SeqCst);
            stats
                .events_applied
                .fetch_add(reached.applied, Ordering::Relaxed);
            if reached.applied > 0 {
                stats
                    .apply_batches
                    .lock()
                    .expect("stats lock")
                    .observe(reached.applied, took);
            }
            let ts = reached.time.unwrap_or(Timestamp {
                time: 0,
                increment: 0,
            });
            raise(&stats.applied_time, ts);
            // Positions alone are saved at most once a second; applied events at once.
            if had_events || last_saved.elapsed() >= Duration::from_secs(1) {
                meta.save_resume_point(&id, &reached.token, ts).await?;
                last_saved = Instant::now();
                unsaved = None;
            } else {
                unsaved = Some((reached.token, ts));
            }
        }
        stats
            .caught_up
            .store(next.is_none() && buffer.is_empty(), Ordering::Relaxed);
        engine.publish();
        if let Some(cp) = commit_point
            && next.is_none()
            && stats.applied_time.load(Ordering::SeqCst) >= pack(cp)
        {
            if let Some((token, ts)) = unsaved.take() {
                meta.save_resume_point(&id, &token, ts).await?;
            }
            commit::warn_late_applied(engine, &late_applied);
            let late = commit::finish(engine, &scope, cp, &buffer).await;
            reader.abort_all();
            return late;
        }
    }
}

/// Prepares popped items as a round, adding its writes after the commit point (if one is
/// taken) to `late`.
fn take_round(
    engine: &Engine,
    scope: &crate::namespace::Scope,
    known: &mut super::apply::Known,
    commit_point: Option<Timestamp>,
    items: Vec<Item>,
    late: &mut BTreeMap<String, usize>,
) -> Result<Option<(Prepared, bool)>> {
    if items.is_empty() {
        return Ok(None);
    }
    if let Some(cp) = commit_point {
        for (ns, n) in commit::late_writes(scope, cp, &items) {
            *late.entry(ns).or_insert(0) += n;
        }
    }
    let had_events = items.iter().any(|i| matches!(i, Item::Event(_)));
    let round = super::apply::prepare(engine.opts.appliers, scope, known, items)?;
    Ok(Some((round, had_events)))
}

fn reader_ended(r: std::result::Result<Result<()>, tokio::task::JoinError>) -> Error {
    match r {
        Ok(Err(e)) => e,
        Ok(Ok(())) => Error::internal("the change stream reader stopped unexpectedly"),
        Err(e) => Error::task("the change stream reader", e),
    }
}
