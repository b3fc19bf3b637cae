//! Step 6 of the data's way: the cutover.
//!
//! [`begin`] blocks the source's user writes (with `sourceAndDestination`) and takes the commit
//! point; the running task drains change events up to it; [`finish`] restores the
//! destination's characteristics (prepareUnique, unblock: `canWrite`, then unique, TTL, hidden,
//! capped) and checks that no write reached the source after the commit point.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bson::{Bson, Document, Timestamp, doc};

use super::buffer::{EventBuffer, Item};
use super::initialise::{CollSpec, TTL_DISABLED, builds};
use super::metadata::Phase;
use super::retry::retry;
use super::{Engine, pack};
use crate::error::{Error, Result, server_code};
use crate::namespace::{Namespace, Scope};
use crate::options::WriteBlocking;
use crate::progress::SyncState;

pub(crate) async fn begin(engine: &Arc<Engine>) -> Result<Timestamp> {
    let opts = engine
        .start_options()
        .unwrap_or_else(|| crate::StartOptions::new(crate::ClusterName::Cluster0));
    let meta = engine.metadata();
    // COMMITTING is persisted before the source is blocked: a process killed from here on
    // comes back committing (and blocks again, and takes a new commit point), never RUNNING
    // against a blocked source.
    meta.set_state(&engine.opts.id, "COMMITTING", Phase::Committing)
        .await?;
    engine.set_phase(Phase::Committing);
    if opts.enable_user_write_blocking == WriteBlocking::SourceAndDestination {
        retry(engine, "blocking the source's writes", || {
            engine.source().set_write_block(true)
        })
        .await?;
    }
    let cp = engine
        .source()
        .oplog_note("commit point", "taking the commit point")
        .await?;
    meta.set_fields(&engine.opts.id, doc! {"commitPoint": cp})
        .await?;
    Ok(cp)
}

/// Reports the in-scope writes later than the commit point that were applied (while the
/// destination was still blocked), summed over the drain's rounds: one warning per namespace.
pub(crate) fn warn_late_applied(engine: &Engine, late: &BTreeMap<String, usize>) {
    for (ns, n) in late {
        engine.warn(format!(
            "{n} write(s) to `{ns}` reached the source after the commit point; they were applied before the destination was unblocked, but the source was still being written to during the commit"
        ));
    }
}

pub(crate) fn late_writes(scope: &Scope, cp: Timestamp, items: &[Item]) -> BTreeMap<String, usize> {
    let mut late = BTreeMap::new();
    for item in items {
        let Item::Event(raw) = item else { continue };
        let Ok(ts) = raw.get_timestamp("clusterTime") else {
            continue;
        };
        if pack(ts) <= pack(cp) {
            continue;
        }
        let Ok(ns) = raw.get_document("ns") else {
            continue;
        };
        let ns = Namespace::new(
            ns.get_str("db").unwrap_or_default(),
            ns.get_str("coll").unwrap_or_default(),
        );
        if scope.includes(&ns) || ns.coll.is_empty() {
            *late.entry(ns.to_string()).or_insert(0) += 1;
        }
    }
    late
}

fn name_or_key(idx: &Document) -> Document {
    match idx.get_str("name") {
        Ok(n) => doc! {"name": n},
        Err(_) => doc! {"keyPattern": idx.get_document("key").cloned().unwrap_or_default()},
    }
}

async fn coll_mod(engine: &Engine, ns: &Namespace, change: Document) -> Result<()> {
    let dest = engine.destination();
    let mut cmd = doc! {"collMod": &ns.coll};
    cmd.extend(change);
    match dest.client.database(&ns.db).run_command(cmd.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if server_code(&e) == Some(359) => Err(Error::Step {
            step: format!("restoring the unique index of `{ns}`"),
            cluster: dest.name.as_str().into(),
            message: format!(
                "the destination holds duplicate keys for a unique index of the source ({e}); the source must have been written to without the unique constraint, or after the commit point"
            ),
            source: Some(e.into()),
        }),
        Err(e) => Err(Error::step(
            format!("restoring `{ns}` ({cmd})"),
            dest.name.as_str(),
            e,
        )),
    }
}

pub(crate) async fn finish(
    engine: &Arc<Engine>,
    scope: &Scope,
    cp: Timestamp,
    buffer: &EventBuffer,
) -> Result<()> {
    let meta = engine.metadata();
    let opts = engine
        .start_options()
        .unwrap_or_else(|| crate::StartOptions::new(crate::ClusterName::Cluster0));
    let build = opts.build_indexes;
    // A reversed sync leaves its destination's collections as they were: nothing to restore.
    let resume = meta.resume_data(&engine.opts.id).await?.unwrap_or_default();
    let altered = resume.get_bool("indexesAltered").unwrap_or(true);
    let specs: Vec<CollSpec> = if altered {
        meta.collections()
            .await?
            .iter()
            .filter_map(CollSpec::from_metadata)
            .filter(|s| !s.is_view())
            .collect()
    } else {
        vec![]
    };
    let built = |idx: &Document| builds(build, idx);
    // Unique indexes, and indexes the source itself had set to prepareUnique.
    let unique_like = |i: &Document| {
        i.get_bool("unique").unwrap_or(false) || i.get_bool("prepareUnique").unwrap_or(false)
    };
    let uniques: Vec<(Namespace, Document)> = if altered {
        specs
            .iter()
            .flat_map(|s| {
                s.indexes
                    .iter()
                    .filter(|i| built(i) && unique_like(i))
                    .map(|i| (s.ns.clone(), i.clone()))
            })
            .collect()
    } else {
        reverse_uniques(engine, &resume, build).await?
    };
    // prepareUnique first: from here on, new duplicates are refused.
    for (ns, idx) in &uniques {
        let mut change = name_or_key(idx);
        change.insert("prepareUnique", true);
        retry(engine, "restoring the destination's collections", || {
            coll_mod(engine, ns, doc! {"index": change.clone()})
        })
        .await?;
    }
    // Where a reverse sync will start: users may write to the destination from here on. A
    // resumed commit keeps the first one, which may precede users' writes.
    let reverse_start = match resume.get_timestamp("reverseStartTime") {
        Ok(ts) => ts,
        Err(_) => reverse_start_point(engine).await?,
    };
    meta.set_fields(&engine.opts.id, doc! {"reverseStartTime": reverse_start})
        .await?;
    if opts.enable_user_write_blocking != WriteBlocking::None {
        retry(engine, "unblocking the destination's writes", || {
            engine.destination().set_write_block(false)
        })
        .await?;
    }
    engine.stats.can_write.store(true, Ordering::SeqCst);
    engine.publish();
    meta.set_fields(&engine.opts.id, doc! {"canWrite": true})
        .await?;
    for (ns, idx) in uniques
        .iter()
        .filter(|(_, i)| i.get_bool("unique").unwrap_or(false))
    {
        let mut change = name_or_key(idx);
        change.insert("unique", true);
        retry(engine, "restoring the destination's collections", || {
            coll_mod(engine, ns, doc! {"index": change.clone()})
        })
        .await?;
    }
    for s in &specs {
        for idx in s.indexes.iter().filter(|i| built(i)) {
            if let Some(ttl) = idx.get("expireAfterSeconds")
                && ttl != &Bson::Int32(TTL_DISABLED)
            {
                let mut change = name_or_key(idx);
                change.insert("expireAfterSeconds", ttl.clone());
                retry(engine, "restoring the destination's collections", || {
                    coll_mod(engine, &s.ns, doc! {"index": change.clone()})
                })
                .await?;
            }
            if idx.get_bool("hidden").unwrap_or(false) {
                let mut change = name_or_key(idx);
                change.insert("hidden", true);
                retry(engine, "restoring the destination's collections", || {
                    coll_mod(engine, &s.ns, doc! {"index": change.clone()})
                })
                .await?;
            }
        }
        if s.is_capped() {
            let mut change = Document::new();
            if let Some(size) = s.options.get("size") {
                change.insert("cappedSize", size.clone());
            }
            if let Some(max) = s.options.get("max") {
                change.insert("cappedMax", max.clone());
            }
            if !change.is_empty() {
                retry(engine, "restoring the destination's collections", || {
                    coll_mod(engine, &s.ns, change.clone())
                })
                .await?;
            }
        }
    }
    check_source_quiet(engine, scope, cp, buffer).await?;
    meta.set_state(&engine.opts.id, "COMMITTED", Phase::CommitCompleted)
        .await?;
    engine.set_phase(Phase::CommitCompleted);
    engine.set_state(SyncState::Committed);
    Ok(())
}

/// The unique indexes of a catalog (not `_id`, not clustered), as persisted for a reverse:
/// `{db, coll, index}` with the index's original specification.
pub(crate) fn unique_indexes(specs: &[CollSpec]) -> Vec<Document> {
    specs
        .iter()
        .filter(|s| !s.is_view())
        .flat_map(|s| {
            s.indexes
                .iter()
                .filter(|i| {
                    i.get_bool("unique").unwrap_or(false)
                        && i.get_str("name").is_ok_and(|n| n != "_id_")
                        && !i.get_bool("clustered").unwrap_or(false)
                })
                .map(|i| doc! {"db": &s.ns.db, "coll": &s.ns.coll, "index": i.clone()})
        })
        .collect()
}

fn recorded_uniques(resume: &Document) -> Vec<(Namespace, Document)> {
    resume
        .get_array("reverseUnique")
        .map(|a| {
            a.iter()
                .filter_map(|b| {
                    let d = b.as_document()?;
                    Some((
                        Namespace::new(d.get_str("db").ok()?, d.get_str("coll").ok()?),
                        d.get_document("index").ok()?.clone(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Makes a reversed sync's recorded unique indexes non-unique on its destination. A real
/// server's `collMod` only converts towards unique, so each index is dropped and built again
/// without `unique` (same name, key and other options). Idempotent: an index already
/// non-unique is kept, one dropped by a killed earlier run is built, a vanished collection is
/// skipped.
pub(crate) async fn relax_reverse_unique(
    engine: &Arc<Engine>,
    dest: &super::connect::Cluster,
    resume: &Document,
) -> Result<()> {
    for (ns, spec) in recorded_uniques(resume) {
        let Ok(name) = spec.get_str("name") else {
            continue;
        };
        let current = super::initialise::list_indexes(dest, &ns).await?;
        // No index at all (not even `_id_`): the collection is gone.
        if current.is_empty() {
            continue;
        }
        let existing = current
            .iter()
            .find(|i| i.get_str("name").ok() == Some(name));
        if existing.is_some_and(|i| !i.get_bool("unique").unwrap_or(false)) {
            continue;
        }
        let db = dest.client.database(&ns.db);
        let ns = &ns;
        if existing.is_some() {
            retry(engine, "making a unique index non-unique for the reverse", || {
                let db = db.clone();
                let cmd = doc! {"dropIndexes": &ns.coll, "index": name};
                async move {
                    match db.run_command(cmd).await {
                        Ok(_) => Ok(()),
                        // Already dropped (a retry after a lost reply).
                        Err(e) if server_code(&e) == Some(27) => Ok(()),
                        Err(e) => Err(Error::step(
                            format!("dropping the unique index `{name}` of `{ns}` to build it non-unique"),
                            dest.name.as_str(),
                            e,
                        )),
                    }
                }
            })
            .await?;
        }
        let mut relaxed = spec.clone();
        relaxed.remove("unique");
        relaxed.remove("prepareUnique");
        retry(
            engine,
            "making a unique index non-unique for the reverse",
            || {
                let db = db.clone();
                let cmd = doc! {"createIndexes": &ns.coll, "indexes": [relaxed.clone()]};
                async move {
                    db.run_command(cmd).await.map(|_| ()).map_err(|e| {
                        Error::step(
                            format!("building the index `{name}` of `{ns}` non-unique"),
                            dest.name.as_str(),
                            e,
                        )
                    })
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// What a reversed sync's commit makes unique again: the indexes it made non-unique, and the
/// unique indexes of the source's specifications (kept current by DDL events, whose indexes
/// are built non-unique), each once, if the destination still has it.
async fn reverse_uniques(
    engine: &Arc<Engine>,
    resume: &Document,
    build: crate::options::BuildIndexes,
) -> Result<Vec<(Namespace, Document)>> {
    let mut wanted = recorded_uniques(resume);
    for spec in engine
        .metadata()
        .collections()
        .await?
        .iter()
        .filter_map(CollSpec::from_metadata)
        .filter(|s| !s.is_view())
    {
        for idx in &spec.indexes {
            if builds(build, idx) && idx.get_bool("unique").unwrap_or(false) {
                wanted.push((spec.ns.clone(), idx.clone()));
            }
        }
    }
    let mut out: Vec<(Namespace, Document)> = vec![];
    let mut present: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (ns, idx) in wanted {
        let Ok(name) = idx.get_str("name") else {
            continue;
        };
        if out
            .iter()
            .any(|(n, i)| n == &ns && i.get_str("name").ok() == Some(name))
        {
            continue;
        }
        let key = ns.to_string();
        if !present.contains_key(&key) {
            let names = super::initialise::list_indexes(engine.destination(), &ns)
                .await?
                .iter()
                .filter_map(|i| i.get_str("name").ok().map(String::from))
                .collect();
            present.insert(key.clone(), names);
        }
        if present[&key].iter().any(|n| n == name) {
            out.push((ns, idx));
        }
    }
    Ok(out)
}

async fn reverse_start_point(engine: &Arc<Engine>) -> Result<Timestamp> {
    let destination = engine.destination();
    retry(engine, "taking the reverse start point", || async {
        destination
            .oplog_note("reverse start point", "taking the reverse start point")
            .await
    })
    .await
}

/// How long the post-commit check reads the source's events before it gives up.
const LATE_WRITES_CHECK: Duration = Duration::from_secs(30);

/// Reads the source's events from the commit point up to a fresh no-op: any in-scope write
/// there reached the source after cutover and is reported (never silently lost).
async fn check_source_quiet(
    engine: &Arc<Engine>,
    scope: &Scope,
    cp: Timestamp,
    buffer: &EventBuffer,
) -> Result<()> {
    let source = engine.source();
    let end = source
        .oplog_note("commit check", "checking the source after the commit point")
        .await?;
    let deadline = Instant::now() + LATE_WRITES_CHECK;
    let mut late: BTreeMap<String, usize> = BTreeMap::new();
    let mut reached_end = false;
    'drain: while Instant::now() < deadline {
        let items = buffer.pop(10_000, Duration::from_millis(200)).await?;
        for (ns, n) in late_writes(scope, cp, &items) {
            *late.entry(ns).or_insert(0) += n;
        }
        for item in &items {
            let time = match item {
                Item::Event(raw) => raw.get_timestamp("clusterTime").ok(),
                Item::Position(token) => super::capture::token_time(token),
            };
            if time.is_some_and(|t| pack(t) >= pack(end)) {
                reached_end = true;
                break 'drain;
            }
        }
    }
    if !reached_end {
        engine.warn(format!(
            "the check for writes that reached the source after the commit point gave up after {} s without reading up to {end:?}; writes after the commit point may have gone unnoticed (and unapplied): compare the source with the destination",
            LATE_WRITES_CHECK.as_secs()
        ));
    }
    for (ns, n) in late {
        engine.warn(format!(
            "{n} write(s) to `{ns}` reached the source after the commit point and were not applied to the destination; stop writing to the source before committing (or use `enableUserWriteBlocking: \"sourceAndDestination\"`)"
        ));
    }
    Ok(())
}
