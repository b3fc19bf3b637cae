//! [`AnySyncer`]: the runtime view of a sync, for bindings, the REST server, and re-attaching
//! to a sync that a previous process started. Its operations are the typed ones; a wrong
//! state is an error that names the operation, the state and the states that allow it.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::handle::SyncHandle;
use crate::options::{ConnectOptions, StartOptions};
use crate::progress::{Progress, SyncState};
use crate::syncer::{
    Committed, Committing, Core, Idle, Paused, Reversing, Running, State, Syncer, TransitionError,
};

/// A [`Syncer`] in any state.
#[must_use = "dropping an AnySyncer stops the sync"]
pub enum AnySyncer {
    /// Connected, not started.
    Idle(Syncer<Idle>),
    /// Copying or applying change events.
    Running(Syncer<Running>),
    /// Paused.
    Paused(Syncer<Paused>),
    /// Cutting over.
    Committing(Syncer<Committing>),
    /// Cut over.
    Committed(Syncer<Committed>),
    /// Swapping the direction.
    Reversing(Syncer<Reversing>),
}

/// A runtime transition that failed: the error and the syncer, unchanged.
#[derive(Debug)]
pub struct AnyTransitionError {
    /// The syncer, in the state it had.
    pub syncer: AnySyncer,
    /// What went wrong.
    pub error: Error,
}

impl std::fmt::Display for AnyTransitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AnyTransitionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl std::fmt::Debug for AnySyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnySyncer({})", self.state())
    }
}

impl<S: State> From<TransitionError<S>> for AnyTransitionError
where
    AnySyncer: From<Syncer<S>>,
{
    fn from(e: TransitionError<S>) -> Self {
        AnyTransitionError {
            syncer: e.syncer.into(),
            error: e.error,
        }
    }
}

macro_rules! from_typed {
    ($($state:ident),*) => {$(
        impl From<Syncer<$state>> for AnySyncer {
            fn from(s: Syncer<$state>) -> Self {
                AnySyncer::$state(s)
            }
        }
    )*};
}
from_typed!(Idle, Running, Paused, Committing, Committed, Reversing);

/// The result of a runtime transition.
pub type AnyTransition = std::result::Result<AnySyncer, AnyTransitionError>;

impl AnySyncer {
    /// Connects to both clusters and re-enters the state persisted by an earlier process (a
    /// RUNNING or COMMITTING sync continues at once); IDLE when there is none.
    ///
    /// # Errors
    /// A cluster cannot be used, or the persisted state was written for other clusters.
    pub async fn attach(
        cluster0: &str,
        cluster1: &str,
        options: ConnectOptions,
    ) -> Result<AnySyncer> {
        let engine = Engine::connect(cluster0, cluster1, options).await?;
        let core = Core(engine);
        core.0.attach().await?;
        Ok(AnySyncer::in_state(core))
    }

    /// The typed syncer of the engine's state.
    fn in_state(core: Core) -> AnySyncer {
        match core.0.state() {
            SyncState::Idle => AnySyncer::Idle(Syncer::from_core(core)),
            SyncState::Running => AnySyncer::Running(Syncer::from_core(core)),
            SyncState::Paused => AnySyncer::Paused(Syncer::from_core(core)),
            SyncState::Committing => AnySyncer::Committing(Syncer::from_core(core)),
            SyncState::Committed => AnySyncer::Committed(Syncer::from_core(core)),
            SyncState::Reversing => AnySyncer::Reversing(Syncer::from_core(core)),
        }
    }

    /// The state (COMMITTING becomes COMMITTED here as soon as the commit finishes).
    pub fn state(&self) -> SyncState {
        self.engine().state()
    }

    fn engine(&self) -> &Engine {
        match self {
            AnySyncer::Idle(s) => &s.core.0,
            AnySyncer::Running(s) => &s.core.0,
            AnySyncer::Paused(s) => &s.core.0,
            AnySyncer::Committing(s) => &s.core.0,
            AnySyncer::Committed(s) => &s.core.0,
            AnySyncer::Reversing(s) => &s.core.0,
        }
    }

    /// The `/progress` document.
    pub fn progress(&self) -> Progress {
        self.engine().progress()
    }

    /// A handle to watch this sync (see [`Syncer::handle`]).
    pub fn handle(&self) -> SyncHandle {
        match self {
            AnySyncer::Idle(s) => s.handle(),
            AnySyncer::Running(s) => s.handle(),
            AnySyncer::Paused(s) => s.handle(),
            AnySyncer::Committing(s) => s.handle(),
            AnySyncer::Committed(s) => s.handle(),
            AnySyncer::Reversing(s) => s.handle(),
        }
    }

    /// Stops the sync gracefully (see [`Syncer::shutdown`]).
    ///
    /// # Errors
    /// Persisting the positions failed (the tasks are stopped all the same).
    pub async fn shutdown(self) -> Result<()> {
        match self {
            AnySyncer::Idle(s) => s.shutdown().await,
            AnySyncer::Running(s) => s.shutdown().await,
            AnySyncer::Paused(s) => s.shutdown().await,
            AnySyncer::Committing(s) => s.shutdown().await,
            AnySyncer::Committed(s) => s.shutdown().await,
            AnySyncer::Reversing(s) => s.shutdown().await,
        }
    }

    fn wrong(self, operation: &'static str, allowed: &[SyncState]) -> AnyTransitionError {
        let state = self.state();
        AnyTransitionError {
            syncer: self,
            error: Error::InvalidState {
                operation,
                state,
                allowed: allowed.to_vec(),
            },
        }
    }

    /// IDLE → RUNNING; or, when the destination holds this sync's persisted state (same
    /// options), that state whatever it is (PAUSED, COMMITTING, COMMITTED…), as mongosync's
    /// `/start` after an unplanned stop.
    ///
    /// # Errors
    /// A wrong state, or what [`Syncer::start`] refuses.
    pub async fn start(self, options: StartOptions) -> AnyTransition {
        const EVERY: &[SyncState] = &[
            SyncState::Running,
            SyncState::Paused,
            SyncState::Committing,
            SyncState::Committed,
        ];
        match self {
            AnySyncer::Idle(s) => match s.core.0.start(options, EVERY).await {
                Ok(_) => Ok(AnySyncer::in_state(s.core)),
                Err(error) => Err(AnyTransitionError {
                    syncer: AnySyncer::Idle(s),
                    error,
                }),
            },
            other => Err(other.wrong("start", &[SyncState::Idle])),
        }
    }

    /// RUNNING → PAUSED.
    ///
    /// # Errors
    /// A wrong state, or what [`Syncer::pause`] refuses.
    pub async fn pause(self) -> AnyTransition {
        match self {
            AnySyncer::Running(s) => Ok(s.pause().await?.into()),
            other => Err(other.wrong("pause", &[SyncState::Running])),
        }
    }

    /// PAUSED → RUNNING.
    ///
    /// # Errors
    /// A wrong state, or what [`Syncer::resume`] refuses.
    pub async fn resume(self) -> AnyTransition {
        match self {
            AnySyncer::Paused(s) => Ok(s.resume().await?.into()),
            other => Err(other.wrong("resume", &[SyncState::Paused])),
        }
    }

    /// RUNNING → COMMITTING (returns at once, as mongosync's `/commit`).
    ///
    /// # Errors
    /// A wrong state, or `canCommit` is false.
    pub async fn commit(self) -> AnyTransition {
        match self {
            AnySyncer::Running(s) => Ok(s.commit().await?.into()),
            other => Err(other.wrong("commit", &[SyncState::Running])),
        }
    }

    /// The automatic transitions: COMMITTING → COMMITTED, REVERSING → RUNNING.
    ///
    /// # Errors
    /// A wrong state; the commit failed (COMMITTING kept); the reverse failed (the syncer is
    /// COMMITTED again).
    pub async fn wait(self) -> AnyTransition {
        match self {
            AnySyncer::Committing(s) => Ok(s.wait().await?.into()),
            AnySyncer::Reversing(s) => Ok(s.wait().await?.into()),
            other => Err(other.wrong("wait", &[SyncState::Committing, SyncState::Reversing])),
        }
    }

    /// COMMITTED → REVERSING (returns once the reverse has begun; [`AnySyncer::wait`] waits
    /// for RUNNING).
    ///
    /// # Errors
    /// A wrong state, or what [`Syncer::reverse`] refuses.
    pub async fn reverse(self) -> AnyTransition {
        match self {
            AnySyncer::Committed(s) => Ok(s.reverse().await?.into()),
            other => Err(other.wrong("reverse", &[SyncState::Committed])),
        }
    }
}
