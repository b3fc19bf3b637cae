//! `NativeSyncer`: one sync in one state. The TypeScript layer wraps it in the class of that
//! state (`IdleSyncer`, `RunningSyncer`…); a transition hands the engine's syncer to a new
//! `NativeSyncer` and leaves this one spent, or, when it fails, gives it back unchanged.

use std::sync::{Arc, Mutex};

use mongosync_core::{AnySyncer, AnyTransition, ErrorCode, StartOptions, SyncHandle, SyncState};
use napi_derive::napi;

use crate::error::{binding, task_failed, to_napi};
use crate::handle::NativeHandle;
use crate::options::start_options;

/// The engine's syncer while this object owns it, else the operation that took it.
struct Inner {
    syncer: Option<AnySyncer>,
    taken_by: &'static str,
    /// Whether the operation that took it has finished (spent) or runs still.
    done: bool,
}

/// A sync in the state it was created in (see the TypeScript classes).
#[napi]
pub struct NativeSyncer {
    inner: Arc<Mutex<Inner>>,
    handle: SyncHandle,
    /// The state this object stands for (its TypeScript class).
    typed: SyncState,
}

#[derive(Clone, Copy)]
enum Operation {
    Start,
    Pause,
    Resume,
    Commit,
    Wait,
    Reverse,
}

impl Operation {
    fn parse(name: &str) -> napi::Result<Operation> {
        Ok(match name {
            "start" => Operation::Start,
            "pause" => Operation::Pause,
            "resume" => Operation::Resume,
            "commit" => Operation::Commit,
            "wait" => Operation::Wait,
            "reverse" => Operation::Reverse,
            other => {
                return Err(binding(
                    ErrorCode::Internal,
                    format!("unknown transition `{other}` (a bug of the TypeScript layer)"),
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Commit => "commit",
            Operation::Wait => "wait",
            Operation::Reverse => "reverse",
        }
    }
}

/// The TypeScript class of a state, for messages.
pub(crate) fn class_name(state: SyncState) -> &'static str {
    match state {
        SyncState::Idle => "IdleSyncer",
        SyncState::Running => "RunningSyncer",
        SyncState::Paused => "PausedSyncer",
        SyncState::Committing => "CommittingSyncer",
        SyncState::Committed => "CommittedSyncer",
        SyncState::Reversing => "ReversingSyncer",
    }
}

async fn run(op: Operation, syncer: AnySyncer, options: Option<StartOptions>) -> AnyTransition {
    match (op, syncer) {
        // The typed start: a persisted PAUSED or COMMITTED sync is refused with the syncer
        // handed back (`attach` is the way to re-enter it), so `start` yields RUNNING only.
        (Operation::Start, AnySyncer::Idle(idle)) => {
            let options = options.expect("parsed before the transition");
            Ok(idle.start(options).await?.into())
        }
        (Operation::Start, other) => {
            let options = options.expect("parsed before the transition");
            other.start(options).await
        }
        (Operation::Pause, s) => s.pause().await,
        (Operation::Resume, s) => s.resume().await,
        (Operation::Commit, s) => s.commit().await,
        (Operation::Wait, s) => s.wait().await,
        (Operation::Reverse, s) => s.reverse().await,
    }
}

impl NativeSyncer {
    pub(crate) fn new(syncer: AnySyncer) -> NativeSyncer {
        NativeSyncer {
            handle: syncer.handle(),
            // The variant, not the live state: a COMMITTING syncer stays one until `wait`.
            typed: match &syncer {
                AnySyncer::Idle(_) => SyncState::Idle,
                AnySyncer::Running(_) => SyncState::Running,
                AnySyncer::Paused(_) => SyncState::Paused,
                AnySyncer::Committing(_) => SyncState::Committing,
                AnySyncer::Committed(_) => SyncState::Committed,
                AnySyncer::Reversing(_) => SyncState::Reversing,
            },
            inner: Arc::new(Mutex::new(Inner {
                syncer: Some(syncer),
                taken_by: "",
                done: false,
            })),
        }
    }

    /// The error of an object that no longer owns its syncer.
    fn gone(&self, inner: &Inner) -> napi::Error {
        let class = class_name(self.typed);
        let op = inner.taken_by;
        let message = if !inner.done {
            format!(
                "this {class} is busy: its `{op}` is in progress (the sync is {})",
                self.handle.state()
            )
        } else if op == "shutdown" {
            format!("this {class} is spent: the sync was shut down")
        } else {
            format!(
                "this {class} is spent: `{op}` moved the sync to {}; use the object that `{op}` returned",
                self.handle.state()
            )
        };
        binding(ErrorCode::InvalidState, message)
    }

    /// Takes the syncer for `op`, or says why it is not here.
    fn take(&self, op: &'static str) -> napi::Result<AnySyncer> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.syncer.take() {
            Some(s) => {
                inner.taken_by = op;
                inner.done = false;
                Ok(s)
            }
            None => Err(self.gone(&inner)),
        }
    }

    fn check(&self) -> napi::Result<()> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.syncer {
            Some(_) => Ok(()),
            None => Err(self.gone(&inner)),
        }
    }
}

#[napi]
impl NativeSyncer {
    /// The state this object stands for (`IDLE`, `RUNNING`…).
    #[napi(getter, catch_unwind)]
    pub fn typed_state(&self) -> &'static str {
        self.typed.as_str()
    }

    /// Whether this object still owns its syncer (no transition took it).
    #[napi(getter, catch_unwind)]
    pub fn usable(&self) -> bool {
        self.check().is_ok()
    }

    /// The `/progress` document.
    #[napi(catch_unwind)]
    pub fn progress(&self) -> napi::Result<serde_json::Value> {
        self.check()?;
        crate::progress::progress(&self.handle.progress())
    }

    /// A handle that watches this sync through every later transition.
    #[napi(catch_unwind)]
    pub fn handle(&self) -> napi::Result<NativeHandle> {
        self.check()?;
        Ok(NativeHandle::new(self.handle.clone()))
    }

    /// Runs a transition (`start` with the `/start` body as JSON, `pause`, `resume`,
    /// `commit`, `wait`, `reverse`) and returns the syncer in its new state. The transition
    /// runs in a task of its own: it completes even if the promise is dropped, and the task
    /// puts the syncer back here if it fails.
    #[napi]
    pub async fn transition(
        &self,
        operation: String,
        body: Option<String>,
    ) -> napi::Result<NativeSyncer> {
        let op = Operation::parse(&operation)?;
        // Options are checked before the syncer is taken: bad options leave it as it was.
        let options = match op {
            Operation::Start => Some(start_options(body.as_deref().unwrap_or("{}"))?),
            _ => None,
        };
        let syncer = self.take(op.name())?;
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            let result = run(op, syncer, options).await;
            let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(next) => {
                    inner.done = true;
                    Ok(next)
                }
                Err(e) => {
                    inner.syncer = Some(e.syncer);
                    Err(e.error)
                }
            }
        });
        match task.await {
            Ok(Ok(next)) => Ok(NativeSyncer::new(next)),
            Ok(Err(e)) => Err(to_napi(&e)),
            Err(e) => {
                self.inner.lock().unwrap_or_else(|p| p.into_inner()).done = true;
                Err(task_failed(op.name(), e))
            }
        }
    }

    /// Stops the sync gracefully (positions persisted; `attach` continues it).
    #[napi]
    pub async fn shutdown(&self) -> napi::Result<()> {
        let syncer = self.take("shutdown")?;
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            let result = syncer.shutdown().await;
            inner.lock().unwrap_or_else(|p| p.into_inner()).done = true;
            result
        });
        match task.await {
            Ok(r) => r.map_err(|e| to_napi(&e)),
            Err(e) => Err(task_failed("shutdown", e)),
        }
    }
}
