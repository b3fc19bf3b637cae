//! The typed [`Syncer`]: its state is a type parameter, so an illegal transition (committing
//! an IDLE sync, pausing a COMMITTED one) does not compile.
//!
//! ```compile_fail
//! # async fn f(idle: mongosync_core::Syncer<mongosync_core::Idle>) {
//! idle.commit().await; // no `commit` on an IDLE syncer
//! # }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::handle::SyncHandle;
use crate::options::{ConnectOptions, StartOptions};
use crate::progress::{Progress, SyncState};

mod sealed {
    pub trait Sealed {}
}

/// A state of a [`Syncer`]. Sealed: the states are the ones below.
pub trait State: sealed::Sealed + Send + Sync + 'static {
    /// The state's runtime value.
    const STATE: SyncState;
}

macro_rules! states {
    ($($(#[$doc:meta])* $name:ident => $value:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[must_use]
        #[derive(Debug)]
        pub struct $name;
        impl sealed::Sealed for $name {}
        impl State for $name {
            const STATE: SyncState = SyncState::$value;
        }
    )*};
}

states! {
    /// Connected, not started.
    Idle => Idle,
    /// Copying, then applying change events.
    Running => Running,
    /// Stopped with positions persisted.
    Paused => Paused,
    /// Cutting over.
    Committing => Committing,
    /// Cut over.
    Committed => Committed,
    /// Swapping the direction.
    Reversing => Reversing,
}

/// Owns the engine's tasks: dropping it stops them (an abort, no I/O; the persisted state
/// lets `attach` resume).
pub(crate) struct Core(pub(crate) Arc<Engine>);

impl Drop for Core {
    fn drop(&mut self) {
        self.0.abort();
        // Wakes every watcher, so that their waits see the syncer gone.
        self.0.published.send_replace(self.0.progress());
    }
}

/// A sync between two clusters, in state `S`.
///
/// Transitions consume the syncer and return the next state's; a failed transition returns the
/// unchanged syncer inside its [`TransitionError`]. To watch a sync while it moves, take a
/// [`SyncHandle`] with [`Syncer::handle`].
///
/// # Dropping and cancelling
/// `Drop` does no I/O: dropping a syncer stops every task of the sync at once, as a kill of the
/// process would, and nothing runs on unreachable. Every step persists before it acts and is
/// idempotent, so the state persisted on the destination is consistent at any point, and
/// [`AnySyncer::attach`](crate::AnySyncer::attach) continues from it. A transition future owns
/// its syncer, so cancelling (dropping) a pending transition is the same: the sync stops, and
/// `attach` finds the state before or after the transition (each transition's docs say
/// which). To stop with positions persisted first, use [`Syncer::shutdown`].
#[must_use = "dropping a Syncer stops the sync"]
pub struct Syncer<S: State> {
    pub(crate) core: Core,
    _state: PhantomData<S>,
}

impl<S: State> std::fmt::Debug for Syncer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Syncer<{}>", S::STATE)
    }
}

/// A transition that failed: the error and the syncer, unchanged.
#[must_use]
pub struct TransitionError<S: State> {
    /// The syncer, still in its state.
    pub syncer: Syncer<S>,
    /// What went wrong.
    pub error: Error,
}

impl<S: State> TransitionError<S> {
    /// The syncer and the error.
    pub fn into_parts(self) -> (Syncer<S>, Error) {
        (self.syncer, self.error)
    }
}

impl<S: State> std::fmt::Debug for TransitionError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitionError")
            .field("state", &S::STATE)
            .field("error", &self.error)
            .finish()
    }
}

impl<S: State> std::fmt::Display for TransitionError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<S: State> std::error::Error for TransitionError<S> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The result of a transition from state `S` to state `T`.
pub type Transition<S, T> = std::result::Result<Syncer<T>, TransitionError<S>>;

impl<S: State> Syncer<S> {
    pub(crate) fn from_core(core: Core) -> Syncer<S> {
        Syncer {
            core,
            _state: PhantomData,
        }
    }

    fn into_state<T: State>(self) -> Syncer<T> {
        Syncer::from_core(self.core)
    }

    fn fail(self, error: Error) -> TransitionError<S> {
        TransitionError {
            syncer: self,
            error,
        }
    }

    /// The `/progress` document. Never fails: every figure is measured, or `null`.
    pub fn progress(&self) -> Progress {
        self.core.0.progress()
    }

    /// A handle to watch this sync (progress, changes, warnings, counters) from anywhere,
    /// while this syncer moves through its transitions.
    pub fn handle(&self) -> SyncHandle {
        SyncHandle::new(&self.core.0)
    }

    /// The warnings of `/progress`.
    pub fn warnings(&self) -> Vec<String> {
        self.progress().warnings
    }

    /// Stops the sync gracefully and returns once its tasks have stopped: a running copy or
    /// change application persists its positions first (the persisted state stays RUNNING, so
    /// `attach` continues it, unlike `pause`); a commit or reverse in progress stops where it
    /// is and resumes on `attach`.
    ///
    /// # Errors
    /// Persisting the positions failed (the tasks are stopped all the same).
    pub async fn shutdown(self) -> Result<()> {
        self.core.0.shutdown().await
    }

    /// The state this syncer is typed with.
    pub fn state(&self) -> SyncState {
        S::STATE
    }
}

impl Syncer<Idle> {
    /// Connects to both clusters and checks them (replica sets, MongoDB 6.0+; a sharded cluster is refused as Unsupported).
    ///
    /// # Errors
    /// [`Error::Connection`] naming the cluster and what failed (never a password);
    /// [`Error::InvalidOptions`] for bad engine settings.
    pub async fn connect(
        cluster0: &str,
        cluster1: &str,
        options: ConnectOptions,
    ) -> Result<Syncer<Idle>> {
        let engine = Engine::connect(cluster0, cluster1, options).await?;
        Ok(Syncer::from_core(Core(engine)))
    }

    /// IDLE → RUNNING: validates the options, checks the destination, takes the start point
    /// and starts the copy. If the destination holds this sync's persisted RUNNING state (same
    /// options), it resumes instead, as mongosync's `/start` does after an unplanned stop.
    ///
    /// Cancelling it before it returns leaves IDLE (nothing persisted) or RUNNING (the start
    /// point persisted; `attach` continues).
    ///
    /// # Errors
    /// Invalid options (nothing is written), a non-empty destination, a cluster failure;
    /// [`Error::AlreadyStarted`] when the persisted state is PAUSED, COMMITTING or COMMITTED
    /// (use [`AnySyncer::attach`](crate::AnySyncer::attach) or [`AnySyncer::start`](crate::AnySyncer::start), which return it).
    pub async fn start(self, options: StartOptions) -> Transition<Idle, Running> {
        match self.core.0.start(options, &[SyncState::Running]).await {
            Ok(_) => Ok(self.into_state()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Syncer<Running> {
    /// RUNNING → PAUSED, once every worker has stopped with its position persisted.
    ///
    /// Cancelling it stops the sync; `attach` finds RUNNING (and continues) or PAUSED.
    ///
    /// # Errors
    /// The sync had stopped on an error (kept in the error), or persisting failed.
    pub async fn pause(self) -> Transition<Running, Paused> {
        match self.core.0.pause().await {
            Ok(()) => Ok(self.into_state()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// RUNNING → COMMITTING. Allowed when `canCommit`: copy finished, change application
    /// running, lag at most 30 s. Returns at once, as mongosync's `/commit`; the commit runs
    /// in the sync's task.
    ///
    /// Cancelling it stops the sync; `attach` finds RUNNING or COMMITTING (and continues the
    /// commit).
    ///
    /// # Errors
    /// [`Error::NotReadyToCommit`] with the condition not met.
    pub async fn commit(self) -> Transition<Running, Committing> {
        match self.core.0.commit().await {
            Ok(()) => Ok(self.into_state()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Waits until `canCommit` is true (or the sync stops on an error), on the published
    /// progress (no polling).
    ///
    /// # Errors
    /// The error that stopped the sync.
    pub async fn wait_can_commit(&self) -> Result<()> {
        self.handle().wait_can_commit().await.map(|_| ())
    }
}

impl Syncer<Paused> {
    /// PAUSED → RUNNING, from the persisted positions.
    ///
    /// Cancelling it stops the sync; `attach` finds PAUSED or RUNNING.
    ///
    /// # Errors
    /// Persisting the state failed.
    pub async fn resume(self) -> Transition<Paused, Running> {
        match self.core.0.resume().await {
            Ok(()) => Ok(self.into_state()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Syncer<Committing> {
    /// COMMITTING → COMMITTED: waits for the drain to the commit point and the restoration of
    /// the destination's characteristics.
    ///
    /// Cancelling it stops the sync; `attach` finds COMMITTING (and continues the commit) or
    /// COMMITTED.
    ///
    /// # Errors
    /// The commit failed (state kept: a new process resumes the commit).
    pub async fn wait(self) -> Transition<Committing, Committed> {
        match self.core.0.wait_committed().await {
            Ok(()) => Ok(self.into_state()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Syncer<Committed> {
    /// COMMITTED → REVERSING: the destination becomes the source, from the point where it
    /// opened to users, and its changes since then flow back. Needs `reversible: true` and
    /// `enableUserWriteBlocking: "sourceAndDestination"` at start. Returns once the reverse
    /// has begun (`progress().state` is REVERSING); [`Syncer::<Reversing>::wait`] waits for
    /// RUNNING.
    ///
    /// Cancelling it (or dropping the REVERSING syncer) stops the sync; `attach` finds
    /// COMMITTED (reverse again) or RUNNING in the new direction.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] when the sync was not started reversible (state unchanged).
    pub async fn reverse(self) -> Transition<Committed, Reversing> {
        match self.core.0.begin_reverse().await {
            Ok(()) => Ok(self.into_state()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Syncer<Reversing> {
    /// REVERSING → RUNNING, once change application runs in the new direction.
    ///
    /// # Errors
    /// The reverse failed: the sync is COMMITTED again, and the syncer handed back can
    /// reverse again.
    pub async fn wait(self) -> Transition<Committed, Running> {
        match self.core.0.wait_reversed().await {
            Ok(()) => Ok(self.into_state()),
            Err(e) => Err(self.into_state::<Committed>().fail(e)),
        }
    }
}
