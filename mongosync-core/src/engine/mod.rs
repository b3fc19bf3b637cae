//! The engine behind every view of a sync (the typed `Syncer`, `AnySyncer`, the bindings, the
//! REST server). Its files follow the data's way:
//!
//! 1. [`connect`]: both clusters, checked;
//! 2. [`initialise`]: start point, destination collections and indexes (with the temporary
//!    characteristic changes);
//! 3. [`partition`]: `_id` ranges of each collection;
//! 4. [`copy`]: partitions copied in parallel as raw BSON;
//! 5. [`capture`] → [`buffer`] → [`apply`]: change events read from the start point,
//!    buffered (spilled to disk when large), applied in parallel by document key;
//! 6. [`commit`]: drain to the commit point, restore the destination, unblock it.
//!
//! State lives in [`metadata`] on the destination; [`monitor`] measures lag and latency, and
//! [`oplog_window`] how long the source keeps the history the sync still needs.

pub(crate) mod apply;
pub(crate) mod buffer;
pub(crate) mod capture;
pub(crate) mod commit;
pub(crate) mod connect;
pub(crate) mod copy;
pub(crate) mod ddl;
pub(crate) mod initialise;
pub(crate) mod lifecycle;
pub(crate) mod metadata;
pub(crate) mod monitor;
pub(crate) mod oplog_window;
pub(crate) mod partition;
pub(crate) mod retry;
pub(crate) mod run;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::Timestamp;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::error::{Error, Result};
use crate::metrics::{BatchHistogram, Metrics, NamespaceCopy};
use crate::namespace::{Namespace, Scope};
use crate::options::{ClusterName, ConnectOptions, StartOptions};
use crate::progress::{Progress, SyncState};
use connect::Cluster;
use metadata::{Metadata, Phase};

/// What the running task is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Run,
    Pause,
    Commit,
}

/// Figures measured while the sync runs (read by `progress`).
#[derive(Default)]
pub(crate) struct Stats {
    pub copied_bytes: AtomicI64,
    pub total_bytes: AtomicI64,
    pub copy_started: AtomicBool,
    pub copy_done: AtomicBool,
    pub cea_running: AtomicBool,
    pub events_applied: AtomicU64,
    /// The source's latest time (from the monitor's no-ops and the stream), packed.
    pub source_time: AtomicU64,
    /// The time of the last applied position, packed.
    pub applied_time: AtomicU64,
    pub crud_time: AtomicU64,
    pub ddl_time: AtomicU64,
    pub ping_source: AtomicI64,
    pub ping_destination: AtomicI64,
    pub can_write: AtomicBool,
    /// Whether the event buffer held nothing at the last look (backlog drained).
    pub caught_up: AtomicBool,
    /// Transient failures retried so far, by reason.
    pub retries: Mutex<BTreeMap<String, u64>>,
    pub documents_copied: AtomicU64,
    /// Per namespace, what this process copied.
    pub namespaces: Mutex<BTreeMap<String, NamespaceCopy>>,
    pub events_read: AtomicU64,
    pub ddl_applied: AtomicU64,
    pub refetches: AtomicU64,
    pub copy_batches: Mutex<BatchHistogram>,
    pub apply_batches: Mutex<BatchHistogram>,
}

impl Stats {
    /// The counters; the figures that need the engine (lag, oplog) are left empty.
    pub fn metrics(&self, state: SyncState) -> Metrics {
        let stats = self;
        Metrics {
            state,
            documents_copied: stats.documents_copied.load(Ordering::Relaxed),
            bytes_copied: stats.copied_bytes.load(Ordering::Relaxed).max(0) as u64,
            bytes_to_copy: stats.total_bytes.load(Ordering::Relaxed).max(0) as u64,
            namespaces: stats.namespaces.lock().expect("stats lock").clone(),
            events_read: stats.events_read.load(Ordering::Relaxed),
            events_applied: stats.events_applied.load(Ordering::Relaxed),
            ddl_applied: stats.ddl_applied.load(Ordering::Relaxed),
            refetches: stats.refetches.load(Ordering::Relaxed),
            retries: stats.retries.lock().expect("stats lock").clone(),
            copy_batches: stats.copy_batches.lock().expect("stats lock").snapshot(),
            apply_batches: stats.apply_batches.lock().expect("stats lock").snapshot(),
            lag_seconds: None,
            oplog_headroom_seconds: None,
        }
    }

    pub fn copied(&self, ns: &Namespace, documents: u64, bytes: u64, took: Duration) {
        self.copied_bytes.fetch_add(bytes as i64, Ordering::Relaxed);
        self.documents_copied
            .fetch_add(documents, Ordering::Relaxed);
        {
            let mut per_ns = self.namespaces.lock().expect("stats lock");
            let entry = per_ns.entry(ns.to_string()).or_default();
            entry.documents += documents;
            entry.bytes += bytes;
        }
        self.copy_batches
            .lock()
            .expect("stats lock")
            .observe(documents, took);
    }

    /// Takes back figures of documents that will be copied again (an attempt that failed or
    /// paused after its last checkpoint).
    pub fn uncopied(&self, ns: &Namespace, documents: u64, bytes: u64) {
        if documents == 0 && bytes == 0 {
            return;
        }
        self.copied_bytes.fetch_sub(bytes as i64, Ordering::Relaxed);
        self.documents_copied
            .fetch_sub(documents, Ordering::Relaxed);
        let mut per_ns = self.namespaces.lock().expect("stats lock");
        if let Some(entry) = per_ns.get_mut(&ns.to_string()) {
            entry.documents = entry.documents.saturating_sub(documents);
            entry.bytes = entry.bytes.saturating_sub(bytes);
        }
    }

    pub fn retried(&self, reason: &str) {
        *self
            .retries
            .lock()
            .expect("stats lock")
            .entry(reason.to_string())
            .or_default() += 1;
    }

    /// A reversed sync starts in change application, with nothing copied.
    pub fn reset_for_reverse(&self) {
        self.copied_bytes.store(0, Ordering::SeqCst);
        self.total_bytes.store(0, Ordering::SeqCst);
        self.copy_started.store(true, Ordering::SeqCst);
        self.copy_done.store(true, Ordering::SeqCst);
        self.can_write.store(false, Ordering::SeqCst);
        for t in [
            &self.source_time,
            &self.applied_time,
            &self.crud_time,
            &self.ddl_time,
        ] {
            t.store(0, Ordering::SeqCst);
        }
    }
}

pub(crate) fn pack(ts: Timestamp) -> u64 {
    ((ts.time as u64) << 32) | ts.increment as u64
}

pub(crate) fn unpack(v: u64) -> Timestamp {
    Timestamp {
        time: (v >> 32) as u32,
        increment: v as u32,
    }
}

/// Raises an atomic timestamp, never lowers it.
pub(crate) fn raise(cell: &AtomicU64, ts: Timestamp) {
    cell.fetch_max(pack(ts), Ordering::SeqCst);
}

/// The state shared by the engine's views.
pub(crate) struct Shared {
    pub state: SyncState,
    pub phase: Option<Phase>,
    pub start: Option<StartOptions>,
    /// The error that stopped the running task, kept until the sync is restarted.
    pub fatal: Option<Arc<Error>>,
    pub warnings: Vec<String>,
    /// The source's oplog window, as last checked.
    pub oplog: oplog_window::Forecast,
}

pub(crate) struct Engine {
    pub cluster0: Cluster,
    pub cluster1: Cluster,
    pub opts: ConnectOptions,
    pub stats: Arc<Stats>,
    pub shared: Mutex<Shared>,
    pub control: watch::Sender<Control>,
    /// The running task: copy, change application, commit.
    pub task: Mutex<Option<JoinHandle<()>>>,
    /// A transition's own task (the reverse), awaited by the syncer that started it.
    pub transition: Mutex<Option<JoinHandle<Result<()>>>>,
    /// Abort handles of the running task and the transition's task: a waiter takes a task's
    /// `JoinHandle` out of its slot, and if the waiter is dropped the task must still stop
    /// with the syncer, never run on detached.
    pub aborts: Mutex<Vec<AbortHandle>>,
    pub monitor: Mutex<Option<JoinHandle<()>>>,
    /// The progress, published on every change of state and figures, for `SyncHandle`s.
    pub published: watch::Sender<Progress>,
    /// Set when the owning syncer is dropped or shut down: the engine only winds down.
    pub stopped: AtomicBool,
}

impl Engine {
    pub async fn connect(uri0: &str, uri1: &str, opts: ConnectOptions) -> Result<Arc<Engine>> {
        opts.validate()?;
        let (cluster0, cluster1) = tokio::try_join!(
            Cluster::connect(ClusterName::Cluster0, uri0),
            Cluster::connect(ClusterName::Cluster1, uri1)
        )?;
        let engine = Arc::new(Engine {
            cluster0,
            cluster1,
            opts,
            stats: Arc::default(),
            shared: Mutex::new(Shared {
                state: SyncState::Idle,
                phase: None,
                start: None,
                fatal: None,
                warnings: vec![],
                oplog: oplog_window::Forecast::default(),
            }),
            control: watch::channel(Control::Run).0,
            task: Mutex::new(None),
            transition: Mutex::new(None),
            aborts: Mutex::new(vec![]),
            monitor: Mutex::new(None),
            published: watch::channel(Progress::empty(SyncState::Idle)).0,
            stopped: AtomicBool::new(false),
        });
        let handle = tokio::spawn(monitor::run(Arc::downgrade(&engine)));
        *engine.monitor.lock().expect("lock") = Some(handle);
        Ok(engine)
    }

    pub fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("engine state lock")
    }

    pub fn state(&self) -> SyncState {
        self.shared().state
    }

    pub fn set_state(&self, state: SyncState) {
        self.shared().state = state;
        self.publish();
    }

    pub fn set_phase(&self, phase: Phase) {
        self.shared().phase = Some(phase);
        self.publish();
    }

    /// Tells the sync's watchers, if the progress changed.
    pub fn publish(&self) {
        let now = self.progress();
        self.published.send_if_modified(|p| {
            let changed = *p != now;
            if changed {
                *p = now;
            }
            changed
        });
    }

    /// The engine's counters.
    pub fn metrics(&self) -> Metrics {
        let p = self.progress();
        let mut m = self.stats.metrics(p.state);
        m.lag_seconds = p.lag_time_seconds;
        m.oplog_headroom_seconds = self.shared().oplog.remaining_secs;
        m
    }

    pub fn start_options(&self) -> Option<StartOptions> {
        self.shared().start.clone()
    }

    /// The source and destination when `source` is the source.
    pub fn clusters_for(&self, source: ClusterName) -> (&Cluster, &Cluster) {
        match source {
            ClusterName::Cluster0 => (&self.cluster0, &self.cluster1),
            ClusterName::Cluster1 => (&self.cluster1, &self.cluster0),
        }
    }

    /// The source and destination of the current direction.
    pub fn roles(&self) -> (&Cluster, &Cluster) {
        let source = self.shared().start.as_ref().map(|o| o.source);
        self.clusters_for(source.unwrap_or(ClusterName::Cluster0))
    }

    pub fn source(&self) -> &Cluster {
        self.roles().0
    }

    pub fn destination(&self) -> &Cluster {
        self.roles().1
    }

    pub fn metadata(&self) -> Metadata {
        Metadata::new(&self.destination().client)
    }

    pub fn scope(&self) -> Result<Scope> {
        let opts = self
            .start_options()
            .ok_or_else(|| Error::internal("the sync has no start options"))?;
        Scope::new(&opts.include_namespaces, &opts.exclude_namespaces)
    }

    pub fn control(&self) -> Control {
        *self.control.borrow()
    }

    pub fn warn(&self, message: String) {
        tracing::warn!("{message}");
        {
            let mut shared = self.shared();
            if shared.warnings.contains(&message) {
                return;
            }
            shared.warnings.push(message);
        }
        self.publish();
    }

    /// Stops every task (no I/O: used on drop). A task stops at its next await; what it had
    /// persisted stays consistent, as after a kill.
    pub fn abort(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for slot in [&self.task, &self.monitor] {
            if let Some(t) = slot.lock().expect("lock").take() {
                t.abort();
            }
        }
        if let Some(t) = self.transition.lock().expect("lock").take() {
            t.abort();
        }
        for a in self.aborts.lock().expect("lock").drain(..) {
            a.abort();
        }
    }

    /// Keeps a task's abort handle, so that `abort` reaches it wherever its `JoinHandle` is.
    pub fn track<T>(&self, task: &JoinHandle<T>) {
        let mut aborts = self.aborts.lock().expect("lock");
        aborts.retain(|a| !a.is_finished());
        aborts.push(task.abort_handle());
    }

    /// Stops every task gracefully: the running task persists its positions first (as for
    /// a pause, but the persisted state stays RUNNING, so `attach` continues). A commit in
    /// progress is stopped where it is; it resumes on attach.
    pub async fn shutdown(&self) -> Result<()> {
        self.stopped.store(true, Ordering::SeqCst);
        let transition = self.transition.lock().expect("lock").take();
        if let Some(t) = transition {
            t.abort();
            let _ = t.await;
        }
        let stopped = if self.state() == SyncState::Running {
            self.control.send_replace(Control::Pause);
            self.join_run().await
        } else {
            let task = self.task.lock().expect("lock").take();
            if let Some(t) = task {
                t.abort();
                let _ = t.await;
            }
            Ok(())
        };
        let monitor = self.monitor.lock().expect("lock").take();
        if let Some(t) = monitor {
            t.abort();
            let _ = t.await;
        }
        self.published.send_replace(self.progress());
        match stopped {
            // A sync that had stopped on an error is still shut down.
            Err(Error::Stopped(_)) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts the running task (copy, then change application, then commit if asked).
    pub fn spawn_run(self: &Arc<Self>) {
        self.shared().fatal = None;
        let engine = Arc::clone(self);
        let handle = tokio::spawn(async move {
            // The running task resumes from persisted state, so a transient failure that
            // the inner retries did not absorb restarts it from there.
            let result = retry::retry(&engine, "the sync", || run::run(&engine)).await;
            engine.stats.cea_running.store(false, Ordering::SeqCst);
            if let Err(e) = result {
                tracing::error!("the sync stopped: {e}");
                engine.shared().fatal = Some(Arc::new(e));
            }
            engine.publish();
        });
        self.track(&handle);
        *self.task.lock().expect("lock") = Some(handle);
    }

    /// Waits for the running task to end and returns its outcome.
    pub async fn join_run(&self) -> Result<()> {
        let handle = self.task.lock().expect("lock").take();
        if let Some(h) = handle
            && let Err(e) = h.await
        {
            return Err(Error::task("the sync's task", e));
        }
        match self.fatal() {
            Some(e) => Err(Error::Stopped(e)),
            None => Ok(()),
        }
    }

    pub fn fatal(&self) -> Option<Arc<Error>> {
        self.shared().fatal.clone()
    }
}
