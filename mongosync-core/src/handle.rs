//! [`SyncHandle`]: one cloneable handle to watch a sync while the typed syncer moves through its
//! transitions (the REST server's `/progress` and `/metrics`, a binding's `watch_progress`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use futures::Stream;
use tokio::sync::watch;

use crate::engine::{Engine, Stats};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::progress::{Progress, SyncState};

/// Watches a sync: progress, a change notification, warnings and counters.
///
/// `Clone + Send + Sync + 'static`; any number of observers may hold one. Holding it never
/// keeps a sync alive nor stops one: once the syncer is dropped or shut down, the handle
/// answers with the last progress published and its waits end with [`Error::Cancelled`].
#[derive(Clone)]
pub struct SyncHandle {
    engine: Weak<Engine>,
    stats: Arc<Stats>,
    published: watch::Receiver<Progress>,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncHandle({})", self.state())
    }
}

impl SyncHandle {
    pub(crate) fn new(engine: &Arc<Engine>) -> SyncHandle {
        SyncHandle {
            engine: Arc::downgrade(engine),
            stats: Arc::clone(&engine.stats),
            published: engine.published.subscribe(),
        }
    }

    /// The `/progress` document, measured now (the last one published once the syncer is
    /// gone).
    pub fn progress(&self) -> Progress {
        match self.engine.upgrade() {
            Some(e) => e.progress(),
            None => self.published.borrow().clone(),
        }
    }

    /// The state.
    pub fn state(&self) -> SyncState {
        match self.engine.upgrade() {
            Some(e) => e.state(),
            None => self.published.borrow().state,
        }
    }

    /// Conditions the user should know about (as in `/progress`).
    pub fn warnings(&self) -> Vec<String> {
        self.progress().warnings
    }

    /// The engine's counters.
    pub fn metrics(&self) -> Metrics {
        match self.engine.upgrade() {
            Some(e) => e.metrics(),
            None => {
                // The counters outlive the engine; the figures that need it are gone.
                self.stats.metrics(self.published.borrow().state)
            }
        }
    }

    /// Whether the syncer still exists (not dropped, not shut down).
    pub fn is_alive(&self) -> bool {
        self.engine().is_some()
    }

    /// The engine, unless its syncer is gone (dropped or shut down; its tasks only wind down).
    fn engine(&self) -> Option<Arc<Engine>> {
        self.engine
            .upgrade()
            .filter(|e| !e.stopped.load(Ordering::SeqCst))
    }

    /// A receiver that sees every published progress (state changes, copied bytes, applied
    /// rounds, lag, warnings): `changed().await` wakes on each; it errs once the syncer is
    /// gone.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.published.clone()
    }

    /// The progress now, then each change, until the syncer is gone. Consecutive equal
    /// documents are not repeated; a slow reader skips to the latest.
    pub fn changes(&self) -> impl Stream<Item = Progress> + Send + 'static {
        let mut rx = self.published.clone();
        rx.mark_changed();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            let p = rx.borrow_and_update().clone();
            Some((p, rx))
        })
    }

    /// Waits until `done` holds for the progress.
    ///
    /// # Errors
    /// [`Error::Stopped`] if the sync stops on an error first; [`Error::Cancelled`] if the
    /// syncer is dropped or shut down first.
    pub async fn wait_for(&self, mut done: impl FnMut(&Progress) -> bool) -> Result<Progress> {
        let mut rx = self.published.clone();
        loop {
            // Seen before measuring, so that a change published meanwhile wakes the wait.
            rx.borrow_and_update();
            // Measured, not only the last published: a condition may hold already.
            let Some(engine) = self.engine() else {
                return Err(Error::Cancelled {
                    operation: "waiting on the sync".into(),
                });
            };
            let now = engine.progress();
            if done(&now) {
                return Ok(now);
            }
            if let Some(e) = engine.fatal() {
                return Err(Error::Stopped(e));
            }
            drop(engine);
            if rx.changed().await.is_err() {
                return Err(Error::Cancelled {
                    operation: "waiting on the sync".into(),
                });
            }
        }
    }

    /// Waits until `canCommit` is true.
    ///
    /// # Errors
    /// As [`SyncHandle::wait_for`].
    pub async fn wait_can_commit(&self) -> Result<Progress> {
        self.wait_for(|p| p.can_commit).await
    }

    /// Waits until the sync is in `state`.
    ///
    /// # Errors
    /// As [`SyncHandle::wait_for`].
    pub async fn wait_state(&self, state: SyncState) -> Result<Progress> {
        self.wait_for(|p| p.state == state).await
    }
}
