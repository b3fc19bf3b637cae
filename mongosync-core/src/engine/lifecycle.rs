//! The transitions, shared by the typed `Syncer` and `AnySyncer`, and `progress`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bson::doc;

use super::initialise::{catalog, check_destination, check_supported};
use super::metadata::{Metadata, Phase, SCHEMA_VERSION};
use super::{Control, Engine, oplog_window, unpack};
use crate::error::{Error, Result};
use crate::namespace::Scope;
use crate::options::{ClusterName, StartOptions, WriteBlocking};
use crate::progress::{ClusterPing, CollectionCopy, DirectionMapping, Lag, Progress, SyncState};

/// The state in persisted resume data (RUNNING until a first state is written).
fn state_of(resume: &bson::Document) -> SyncState {
    resume
        .get_str("state")
        .ok()
        .and_then(SyncState::parse)
        .unwrap_or(SyncState::Running)
}

async fn persisted_state(meta: &Metadata, id: &str) -> Result<SyncState> {
    Ok(state_of(&meta.resume_data(id).await?.unwrap_or_default()))
}

fn wrong_state(operation: &'static str, state: SyncState, allowed: &[SyncState]) -> Error {
    Error::InvalidState {
        operation,
        state,
        allowed: allowed.to_vec(),
    }
}

/// Refuses a source and a destination that are one cluster: the sync would block the
/// application's own writes and write its metadata and copies over the source.
async fn check_distinct(
    source: &super::connect::Cluster,
    destination: &super::connect::Cluster,
) -> Result<()> {
    let (s_name, s_members) = source.identity().await?;
    let (d_name, d_members) = destination.identity().await?;
    let shared: Vec<&String> = s_members.iter().filter(|h| d_members.contains(h)).collect();
    if s_name == d_name && !shared.is_empty() {
        return Err(Error::Unsupported {
            what: "syncing a cluster to itself".into(),
            reason: format!(
                "cluster0 and cluster1 are the same replica set `{s_name}` (members {}); give the URI of another cluster as the destination",
                shared
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(())
}

/// Refuses write blocking on a cluster this engine cannot write to once it is blocked: the
/// sync's own writes (copies, change events, metadata, the commit's restorations) must bypass
/// it, which needs an authenticated user with `bypassWriteBlockingMode` (as mongosync 1.20+).
async fn check_write_blocking(
    opts: &StartOptions,
    source: &super::connect::Cluster,
    destination: &super::connect::Cluster,
) -> Result<()> {
    let mut blocked = vec![];
    if opts.enable_user_write_blocking != WriteBlocking::None && !opts.pre_existing_destination_data
    {
        blocked.push(destination);
    }
    if opts.enable_user_write_blocking == WriteBlocking::SourceAndDestination {
        blocked.push(source);
    }
    for cluster in blocked {
        if let Some(missing) = cluster.bypass_missing().await? {
            return Err(Error::InvalidOptions {
                field: "enableUserWriteBlocking".into(),
                reason: format!(
                    "blocking user writes on {name} needs a connection to {name} as a user holding the `bypassWriteBlockingMode` privilege (the `root` or `restore` role), or the sync's own writes are blocked too, and {missing}; put such a user's credentials in the {name} URI, or start with `enableUserWriteBlocking: \"none\"`",
                    name = cluster.name.as_str(),
                ),
            });
        }
    }
    Ok(())
}

impl Engine {
    pub(crate) fn expect_state(
        &self,
        operation: &'static str,
        allowed: &[SyncState],
    ) -> Result<()> {
        let state = self.state();
        if allowed.contains(&state) {
            Ok(())
        } else {
            Err(wrong_state(operation, state, allowed))
        }
    }

    /// IDLE → RUNNING. With persisted state from identical options, the sync resumes where it
    /// stopped (mongosync's `/start` after an unplanned stop), if that state is `allowed`;
    /// returns the state it is in.
    pub(crate) async fn start(
        self: &Arc<Self>,
        opts: StartOptions,
        allowed: &[SyncState],
    ) -> Result<SyncState> {
        self.expect_state("start", &[SyncState::Idle])?;
        opts.validate()?;
        let scope = Scope::new(&opts.include_namespaces, &opts.exclude_namespaces)?;
        let (source, destination) = self.clusters_for(opts.source);
        check_distinct(source, destination).await?;
        check_write_blocking(&opts, source, destination).await?;
        let meta = Metadata::new(&destination.client);
        let persisted = bson::serialize_to_document(&opts)
            .map_err(|e| Error::internal(format!("the options cannot be persisted: {e}")))?;
        if let Some(global) = meta.global().await? {
            let same = global.get_document("startOptions").ok() == Some(&persisted);
            if !same {
                return Err(Error::Metadata {
                    reason: format!(
                        "the destination holds the state of a migration started with other options ({}); start with the same options to resume it, or drop the `{}` database and the migrated data to start over",
                        global
                            .get_document("startOptions")
                            .map(|d| d.to_string())
                            .unwrap_or_default(),
                        crate::namespace::METADATA_DATABASE
                    ),
                });
            }
            self.check_addresses(&global)?;
            let state = persisted_state(&meta, &self.opts.id).await?;
            if !allowed.contains(&state) {
                return Err(Error::AlreadyStarted { state });
            }
            self.shared().start = Some(opts);
            self.restore(&meta).await?;
            return Ok(self.state());
        }
        // Everything that can refuse is checked before anything is written.
        let specs = catalog(source, &scope).await?;
        check_supported(&specs)?;
        check_destination(self, &scope, opts.pre_existing_destination_data).await?;
        if opts.enable_user_write_blocking != WriteBlocking::None
            && !opts.pre_existing_destination_data
        {
            destination.set_write_block(true).await?;
        }
        let start_time = source
            .oplog_note("start point", "taking the start point")
            .await?;
        meta.save_global(self.global_state(start_time, persisted))
            .await?;
        meta.set_state(&self.opts.id, "RUNNING", Phase::InitializingCollections)
            .await?;
        self.shared().start = Some(opts);
        self.set_state(SyncState::Running);
        self.set_phase(Phase::InitializingCollections);
        self.control.send_replace(Control::Run);
        self.spawn_run();
        Ok(SyncState::Running)
    }

    /// The persisted global state of a sync (or of a reversed one) starting at `start_time`.
    fn global_state(&self, start_time: bson::Timestamp, options: bson::Document) -> bson::Document {
        doc! {
            "_id": "global",
            "schemaVersion": SCHEMA_VERSION,
            "changeStreamStartTime": start_time,
            "startOptions": options,
            "cluster0": &self.cluster0.address,
            "cluster1": &self.cluster1.address,
            "mongosyncID": &self.opts.id,
        }
    }

    fn check_addresses(&self, global: &bson::Document) -> Result<()> {
        let c0 = global.get_str("cluster0").unwrap_or_default();
        let c1 = global.get_str("cluster1").unwrap_or_default();
        if c0 != self.cluster0.address || c1 != self.cluster1.address {
            return Err(Error::Metadata {
                reason: format!(
                    "it was written for cluster0 = {c0} and cluster1 = {c1}, but this process connects cluster0 = {} and cluster1 = {}; connect the same clusters in the same order",
                    self.cluster0.address, self.cluster1.address
                ),
            });
        }
        Ok(())
    }

    /// Re-enters the persisted state (restart or attach).
    async fn restore(self: &Arc<Self>, meta: &Metadata) -> Result<()> {
        let resume = meta.resume_data(&self.opts.id).await?.unwrap_or_default();
        let state = state_of(&resume);
        if let Some(phase) = resume.get_str("syncPhase").ok().and_then(Phase::parse) {
            self.set_phase(phase);
            // The copy figures as persisted, so that progress shows them from the start.
            if phase >= Phase::CollectionCopy {
                let (_, done, total) = meta.pending_partitions().await?;
                self.stats.total_bytes.store(total, Ordering::Relaxed);
                self.stats.copied_bytes.store(done, Ordering::Relaxed);
                self.stats.copy_started.store(true, Ordering::Relaxed);
            }
        }
        if resume.get_bool("canWrite").unwrap_or(false) {
            self.stats.can_write.store(true, Ordering::SeqCst);
        }
        self.set_state(state);
        match state {
            SyncState::Running => {
                self.control.send_replace(Control::Run);
                self.spawn_run();
            }
            SyncState::Committing => {
                self.control.send_replace(Control::Commit);
                self.spawn_run();
            }
            _ => {}
        }
        Ok(())
    }

    /// Finds persisted state on either cluster and re-enters it; IDLE if there is none.
    pub(crate) async fn attach(self: &Arc<Self>) -> Result<()> {
        // After a reverse the state lives on the old source; a crash during the reverse can
        // leave both, and then the one that is not COMMITTED is the newer.
        let mut candidates = vec![];
        for dest in [&self.cluster1, &self.cluster0] {
            let meta = Metadata::new(&dest.client);
            let state = meta
                .resume_data(&self.opts.id)
                .await?
                .and_then(|r| r.get_str("state").ok().map(String::from));
            candidates.push((state.as_deref() == Some("COMMITTED"), dest));
        }
        candidates.sort_by_key(|(committed, _)| *committed);
        for dest in candidates.into_iter().map(|(_, d)| d) {
            let meta = Metadata::new(&dest.client);
            let Some(global) = meta.global().await? else {
                continue;
            };
            self.check_addresses(&global)?;
            let opts: StartOptions = global
                .get_document("startOptions")
                .ok()
                .and_then(|d| bson::deserialize_from_document(d.clone()).ok())
                .ok_or_else(|| Error::Metadata {
                    reason: "its start options cannot be read".into(),
                })?;
            if opts.destination != dest.name {
                continue;
            }
            self.shared().start = Some(opts);
            return self.restore(&meta).await;
        }
        Ok(())
    }

    /// COMMITTED → REVERSING: checks that the sync can reverse, then runs the reverse in its
    /// own task ([`Engine::wait_reversed`] awaits it). The state is REVERSING meanwhile.
    pub(crate) async fn begin_reverse(self: &Arc<Self>) -> Result<()> {
        self.expect_state("reverse", &[SyncState::Committed])?;
        let opts = self
            .start_options()
            .ok_or_else(|| Error::internal("the sync has no start options"))?;
        if !opts.reversible {
            return Err(Error::InvalidOptions {
                field: "reversible".into(),
                reason: "the sync was started with `reversible: false`; start it with `reversible: true` (and `enableUserWriteBlocking: \"sourceAndDestination\"`) to reverse it".into(),
            });
        }
        if opts.enable_user_write_blocking != WriteBlocking::SourceAndDestination {
            return Err(Error::InvalidOptions {
                field: "enableUserWriteBlocking".into(),
                reason: "reversing needs write blocking on both clusters: start the sync with `enableUserWriteBlocking: \"sourceAndDestination\"`".into(),
            });
        }
        let resume = self
            .metadata()
            .resume_data(&self.opts.id)
            .await?
            .unwrap_or_default();
        let start_time = resume
            .get_timestamp("reverseStartTime")
            .map_err(|_| Error::Metadata {
                reason: "the commit did not record where a reverse sync starts".into(),
            })?;
        self.shared().fatal = None;
        self.set_state(SyncState::Reversing);
        let engine = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = engine.reverse(opts, start_time).await;
            if let Err(e) = &result {
                // Nothing of the new direction is in force: the sync is COMMITTED again.
                engine.warn(format!(
                    "the reverse failed ({e}); the sync is COMMITTED and can reverse again"
                ));
                engine.set_state(SyncState::Committed);
            }
            result
        });
        self.track(&task);
        *self.transition.lock().expect("lock") = Some(task);
        Ok(())
    }

    /// REVERSING → RUNNING: waits for the reverse's task.
    pub(crate) async fn wait_reversed(&self) -> Result<()> {
        let task = self.transition.lock().expect("lock").take();
        let Some(task) = task else {
            return match self.state() {
                SyncState::Running => Ok(()),
                state => Err(wrong_state(
                    "wait for the reverse",
                    state,
                    &[SyncState::Reversing],
                )),
            };
        };
        task.await.map_err(|e| Error::task("the reverse", e))?
    }

    /// The reverse itself: the old destination becomes the source, from the point where it
    /// opened to users; its state moves to the old source (the new destination). No data is
    /// copied again.
    async fn reverse(
        self: &Arc<Self>,
        opts: StartOptions,
        start_time: bson::Timestamp,
    ) -> Result<()> {
        let old_meta = self.metadata();
        let mut reversed = opts.clone();
        reversed.source = opts.destination;
        reversed.destination = opts.source;
        let (new_source, new_destination) = self.clusters_for(reversed.source);
        let scope = Scope::new(&reversed.include_namespaces, &reversed.exclude_namespaces)?;
        let new_meta = Metadata::new(&new_destination.client);
        // A state left there by an earlier direction is stale.
        new_meta.drop_all().await?;
        for spec in catalog(new_source, &scope).await? {
            new_meta
                .save_collection(&spec.ns, spec.to_metadata())
                .await?;
        }
        // The new destination keeps its collections as they are, except its unique indexes:
        // change application reorders writes across documents (lanes), so a swap of unique
        // values passes through duplicates. They are recorded here, made non-unique when the
        // reversed sync first runs (`reverseUniqueRelaxed`) and made unique again at its commit.
        let unique = super::commit::unique_indexes(&catalog(new_destination, &scope).await?);
        new_meta
            .set_fields(
                &self.opts.id,
                doc! {"indexesAltered": false, "reverseUnique": unique, "reverseUniqueRelaxed": false},
            )
            .await?;
        new_meta
            .set_state(&self.opts.id, "RUNNING", Phase::ChangeEventApplication)
            .await?;
        // The global state goes last: `attach` takes a state for whole once it is there, so a
        // process killed before this point is still COMMITTED (and may reverse again).
        let persisted = bson::serialize_to_document(&reversed)
            .map_err(|e| Error::internal(format!("the options cannot be persisted: {e}")))?;
        new_meta
            .save_global(self.global_state(start_time, persisted))
            .await?;
        // The unique indexes go non-unique before the reverse is RUNNING (the running task
        // does it again if a kill lands in between).
        let resume = new_meta
            .resume_data(&self.opts.id)
            .await?
            .unwrap_or_default();
        super::commit::relax_reverse_unique(self, new_destination, &resume).await?;
        new_meta
            .set_fields(&self.opts.id, doc! {"reverseUniqueRelaxed": true})
            .await?;
        // From here on the reverse is in force; the old direction's state is only stale
        // (`attach` prefers the state that is not COMMITTED, and the next reverse drops it).
        if let Err(e) = old_meta.drop_all().await {
            tracing::warn!("the old direction's state could not be dropped: {e}");
        }
        self.shared().start = Some(reversed);
        self.shared().warnings.clear();
        self.shared().oplog = Default::default();
        self.stats.reset_for_reverse();
        self.set_phase(Phase::ChangeEventApplication);
        self.set_state(SyncState::Running);
        self.control.send_replace(Control::Run);
        self.spawn_run();
        Ok(())
    }

    /// RUNNING → PAUSED, once every worker has stopped and its position is persisted.
    pub(crate) async fn pause(&self) -> Result<()> {
        self.expect_state("pause", &[SyncState::Running])?;
        self.control.send_replace(Control::Pause);
        let stopped = self.join_run().await;
        self.control.send_replace(Control::Run);
        stopped?;
        let phase = self.shared().phase.unwrap_or(Phase::CollectionCopy);
        self.metadata()
            .set_state(&self.opts.id, "PAUSED", phase)
            .await?;
        self.set_state(SyncState::Paused);
        Ok(())
    }

    /// PAUSED → RUNNING, from the persisted positions.
    pub(crate) async fn resume(self: &Arc<Self>) -> Result<()> {
        self.expect_state("resume", &[SyncState::Paused])?;
        let phase = self.shared().phase.unwrap_or(Phase::CollectionCopy);
        self.metadata()
            .set_state(&self.opts.id, "RUNNING", phase)
            .await?;
        self.set_state(SyncState::Running);
        self.control.send_replace(Control::Run);
        self.spawn_run();
        Ok(())
    }

    /// RUNNING → COMMITTING, when `canCommit`.
    pub(crate) async fn commit(&self) -> Result<()> {
        self.expect_state("commit", &[SyncState::Running])?;
        if let Some(e) = self.fatal() {
            return Err(Error::Stopped(e));
        }
        let p = self.progress();
        if !p.can_commit {
            let reason = if !self.stats.copy_done.load(Ordering::SeqCst) {
                "the collection copy has not finished".to_string()
            } else {
                format!(
                    "the lag is {} s; commit is allowed at {} s or less",
                    p.lag_time_seconds.unwrap_or(-1),
                    self.opts.commit_lag_limit_secs
                )
            };
            return Err(Error::NotReadyToCommit { reason });
        }
        self.set_state(SyncState::Committing);
        self.control.send_replace(Control::Commit);
        Ok(())
    }

    /// COMMITTING → COMMITTED: waits for the running task to finish the commit.
    pub(crate) async fn wait_committed(&self) -> Result<()> {
        self.expect_state("wait", &[SyncState::Committing, SyncState::Committed])?;
        self.join_run().await?;
        if self.state() != SyncState::Committed {
            return Err(Error::internal(
                "the commit ended without reaching COMMITTED",
            ));
        }
        Ok(())
    }

    fn lag_of(&self, time: u64) -> Option<i64> {
        if time == 0 {
            return None;
        }
        let source = unpack(self.stats.source_time.load(Ordering::SeqCst)).time as i64;
        Some((source - unpack(time).time as i64).max(0))
    }

    /// The `/progress` document, from measured figures only.
    pub(crate) fn progress(&self) -> Progress {
        let shared = self.shared();
        let state = shared.state;
        let mut p = Progress::empty(state);
        if state == SyncState::Idle {
            return p;
        }
        let stats = &self.stats;
        let copy_done = stats.copy_done.load(Ordering::SeqCst);
        let cea = stats.cea_running.load(Ordering::SeqCst);
        p.info = shared.phase.map(|ph| ph.as_str().to_string());
        if state == SyncState::Committed {
            p.info = Some(Phase::CommitCompleted.as_str().into());
        }
        p.can_write = Some(state == SyncState::Committed || stats.can_write.load(Ordering::SeqCst));
        if cea && matches!(state, SyncState::Running | SyncState::Committing) {
            p.cea_stage = Some(
                if stats.caught_up.load(Ordering::SeqCst) {
                    "steady state"
                } else {
                    "collection copy drain"
                }
                .into(),
            );
        }
        if state != SyncState::Paused && state != SyncState::Committed {
            let overall = self.lag_of(stats.applied_time.load(Ordering::SeqCst));
            p.lag_time_seconds = overall;
            p.lag = overall.map(|o| Lag {
                overall_lag_seconds: o,
                crud_lag_seconds: self.lag_of(stats.crud_time.load(Ordering::SeqCst)),
                ddl_lag_seconds: self.lag_of(stats.ddl_time.load(Ordering::SeqCst)),
            });
        } else if state == SyncState::Committed {
            p.lag_time_seconds = Some(0);
        }
        p.total_events_applied = Some(stats.events_applied.load(Ordering::Relaxed));
        p.collection_copy = Some(if stats.copy_started.load(Ordering::Relaxed) {
            let copied = stats.copied_bytes.load(Ordering::Relaxed);
            let total = stats.total_bytes.load(Ordering::Relaxed).max(copied);
            CollectionCopy {
                estimated_total_bytes: total,
                estimated_copied_bytes: copied,
            }
        } else {
            CollectionCopy {
                estimated_total_bytes: 1,
                estimated_copied_bytes: 0,
            }
        });
        let source = shared.start.as_ref().map(|o| o.source);
        let (source, destination) = self.clusters_for(source.unwrap_or(ClusterName::Cluster0));
        p.direction_mapping = Some(DirectionMapping {
            source: format!("{}: {}", source.name.as_str(), source.address),
            destination: format!("{}: {}", destination.name.as_str(), destination.address),
        });
        let ping = |ms: i64| ClusterPing {
            ping_latency_ms: (ms != 0).then_some(ms),
        };
        p.source = Some(ping(stats.ping_source.load(Ordering::Relaxed)));
        p.destination = Some(ping(stats.ping_destination.load(Ordering::Relaxed)));
        p.mongosync_id = Some(self.opts.id.clone());
        p.coordinator_id = Some(self.opts.id.clone());
        p.warnings = shared.warnings.clone();
        if state == SyncState::Running && p.can_write != Some(true) {
            let remaining = shared.oplog.remaining_secs;
            p.estimated_oplog_time_remaining = Some(oplog_window::describe(remaining));
            if let Some(secs) = remaining.filter(|s| *s < oplog_window::WARN_BELOW_SECS) {
                p.warnings.push(oplog_window::warning(secs));
            }
        }
        if let Some(e) = &shared.fatal {
            p.warnings.push(format!("the sync stopped: {e}"));
        }
        let running = self
            .task
            .lock()
            .expect("lock")
            .as_ref()
            .is_some_and(|t| !t.is_finished());
        p.can_commit = state == SyncState::Running
            && running
            && shared.fatal.is_none()
            && copy_done
            && cea
            && p.lag_time_seconds
                .is_some_and(|l| l <= self.opts.commit_lag_limit_secs);
        p
    }
}
