//! `Syncer`: the native object behind every typed Python syncer (`IdleSyncer`…). It holds the
//! engine's `AnySyncer` in an `Option`-like slot: a transition moves it out into a tokio task
//! this object owns and awaits (TOOLCHAIN pitfall 5), and the object is spent once the
//! transition succeeds; a failed transition puts the syncer back.
//!
//! An interrupted wait (Ctrl-C, a cancelled asyncio task) leaves the transition running in its
//! task, owned by this object: calling the same transition again picks up its result, and
//! dropping the object stops the sync like a kill (the engine's persisted state stays
//! consistent, so `attach` continues it).

use std::sync::Arc;

use mongosync_core::{
    AnySyncer, AnyTransition, ConnectOptions, StartOptions, SyncHandle, SyncState,
};
use parking_lot::Mutex;
use pyo3::prelude::*;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::{internal, invalid_state, to_py};
use crate::handle::ProgressStream;
use crate::runtime::{awaitable, enter, rt, wait};

/// A transition of the runtime syncer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Start,
    StartAny,
    Pause,
    Resume,
    Commit,
    Wait,
    Reverse,
    Shutdown,
}

impl Op {
    fn parse(op: &str) -> PyResult<Op> {
        Ok(match op {
            "start" => Op::Start,
            "start_any" => Op::StartAny,
            "pause" => Op::Pause,
            "resume" => Op::Resume,
            "commit" => Op::Commit,
            "wait" => Op::Wait,
            "reverse" => Op::Reverse,
            "shutdown" => Op::Shutdown,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown operation {other:?}; allowed: start, start_any, pause, resume, commit, wait, reverse, shutdown"
                )));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::Start | Op::StartAny => "start",
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Commit => "commit",
            Op::Wait => "wait",
            Op::Reverse => "reverse",
            Op::Shutdown => "shutdown",
        }
    }
}

/// What the task of a transition ends with: the next syncer, or none after `shutdown`.
type Outcome = Result<Option<AnySyncer>, (Option<AnySyncer>, mongosync_core::Error)>;

/// A transition's task. Dropping it aborts the task (and so drops the syncer inside).
struct Task(Option<JoinHandle<Outcome>>);

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

enum Slot {
    /// Usable.
    Ready(AnySyncer),
    /// A transition is being awaited by a caller.
    Joining(Op),
    /// A transition whose caller stopped waiting (Ctrl-C, cancellation); still running.
    Pending(Op, Task),
    /// Used by a successful transition.
    Spent(Op),
}

/// The state a variant of `AnySyncer` stands for (the engine's state may be ahead: COMMITTING
/// turns COMMITTED by itself).
fn kind(s: &AnySyncer) -> SyncState {
    match s {
        AnySyncer::Idle(_) => SyncState::Idle,
        AnySyncer::Running(_) => SyncState::Running,
        AnySyncer::Paused(_) => SyncState::Paused,
        AnySyncer::Committing(_) => SyncState::Committing,
        AnySyncer::Committed(_) => SyncState::Committed,
        AnySyncer::Reversing(_) => SyncState::Reversing,
    }
}

pub fn class_name(state: SyncState) -> String {
    let s = state.as_str();
    format!("{}{}Syncer", &s[..1], s[1..].to_lowercase())
}

/// A sync in one state (the typed Python classes wrap it).
#[pyclass(module = "mongosync._mongosync", frozen)]
pub struct Syncer {
    shared: Arc<Shared>,
    handle: SyncHandle,
    kind: SyncState,
}

/// The slot, shared with the caller awaiting a transition.
struct Shared {
    slot: Mutex<Slot>,
    /// Signalled each time the slot leaves `Joining`.
    released: Notify,
}

impl Shared {
    fn set(&self, slot: Slot) {
        *self.slot.lock() = slot;
        self.released.notify_waiters();
    }
}

impl Syncer {
    pub fn new(syncer: AnySyncer) -> Syncer {
        Syncer {
            handle: syncer.handle(),
            kind: kind(&syncer),
            shared: Arc::new(Shared {
                slot: Mutex::new(Slot::Ready(syncer)),
                released: Notify::new(),
            }),
        }
    }

    /// Takes the syncer out for `op` (or the interrupted task of the same `op`). A caller
    /// whose wait was just cancelled hands its task back asynchronously: the same `op` waits
    /// for that.
    fn begin(
        &self,
        op: Op,
        options: Option<StartOptions>,
    ) -> impl std::future::Future<Output = PyResult<Joining>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let (kind, handle) = (self.kind, self.handle.clone());
        async move {
            let mut options = options;
            loop {
                let waker = Arc::clone(&shared);
                let released = waker.released.notified();
                let step = {
                    let mut slot = shared.slot.lock();
                    match std::mem::replace(&mut *slot, Slot::Joining(op)) {
                        Slot::Ready(syncer) => Ok(Some(Task(Some(tokio::spawn(run(
                            syncer,
                            op,
                            options.take(),
                        )))))),
                        Slot::Pending(pending, task) if pending == op => Ok(Some(task)),
                        Slot::Joining(by) if by == op => Ok(None),
                        other => {
                            let message = unusable(kind, &handle, &other, op);
                            *slot = other;
                            Err(message)
                        }
                    }
                };
                match step {
                    Ok(Some(task)) => {
                        return Ok(Joining {
                            shared,
                            op,
                            task,
                            kind,
                        });
                    }
                    Ok(None) => released.await,
                    Err(message) => return Err(Python::attach(|py| invalid_state(py, message))),
                }
            }
        }
    }
}

/// Why `op` cannot run on an object in `slot`, naming the state the sync is in now.
fn unusable(kind: SyncState, handle: &SyncHandle, slot: &Slot, op: Op) -> String {
    let me = class_name(kind);
    let now = handle.state();
    let (op, by) = (op.name(), slot_op(slot));
    match slot {
        Slot::Spent(Op::Shutdown) => format!("cannot {op}: this {me} was shut down"),
        Slot::Spent(_) => format!(
            "cannot {op}: this {me} was spent by {by}(); the sync moved to {now}: use the syncer that {by}() returned"
        ),
        Slot::Joining(_) => {
            format!("cannot {op}: {by}() is in progress on this {me} in another thread")
        }
        Slot::Pending(..) => format!(
            "cannot {op}: {by}() on this {me} was interrupted and continues in the background (the sync is {now}); call {by}() again to get its result"
        ),
        Slot::Ready(_) => format!("cannot {op}: this {me} is usable"),
    }
}

fn slot_op(slot: &Slot) -> &'static str {
    match slot {
        Slot::Spent(o) | Slot::Joining(o) | Slot::Pending(o, _) => o.name(),
        Slot::Ready(_) => "",
    }
}

/// The transition, in the task that owns the syncer.
async fn run(syncer: AnySyncer, op: Op, options: Option<StartOptions>) -> Outcome {
    let result = match op {
        Op::Shutdown => {
            return syncer
                .shutdown()
                .await
                .map(|()| None)
                .map_err(|e| (None, e));
        }
        Op::Start => match syncer {
            AnySyncer::Idle(s) => {
                let options = options.expect("start has options");
                s.start(options)
                    .await
                    .map(AnySyncer::from)
                    .map_err(Into::into)
            }
            other => other.start(options.expect("start has options")).await,
        },
        Op::StartAny => syncer.start(options.expect("start has options")).await,
        Op::Pause => syncer.pause().await,
        Op::Resume => syncer.resume().await,
        Op::Commit => syncer.commit().await,
        Op::Wait => syncer.wait().await,
        Op::Reverse => syncer.reverse().await,
    };
    let result: AnyTransition = result;
    result.map(Some).map_err(|e| (Some(e.syncer), e.error))
}

/// A caller waiting on a transition's task. Dropped before the task ends (Ctrl-C, asyncio
/// cancellation), it hands the task back to the slot: the transition goes on.
struct Joining {
    shared: Arc<Shared>,
    op: Op,
    task: Task,
    kind: SyncState,
}

impl Drop for Joining {
    fn drop(&mut self) {
        if self.task.0.is_some() {
            let task = Task(self.task.0.take());
            self.shared.set(Slot::Pending(self.op, task));
        }
    }
}

impl Joining {
    /// Waits for the task; the result as the next native syncer (`None` after shutdown).
    async fn join(mut self) -> PyResult<Option<Syncer>> {
        let handle = self.task.0.as_mut().expect("joined once");
        let joined = handle.await;
        self.task.0 = None;
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) => {
                self.shared.set(Slot::Spent(self.op));
                return Err(if e.is_panic() {
                    internal(e.into_panic())
                } else {
                    Python::attach(|py| {
                        invalid_state(py, format!("{}() was aborted", self.op.name()))
                    })
                });
            }
        };
        match outcome {
            Ok(next) => {
                self.shared.set(Slot::Spent(self.op));
                Ok(next.map(Syncer::new))
            }
            Err((syncer, error)) => Python::attach(|py| {
                let err = to_py(py, &error);
                match syncer {
                    // Unchanged: this object stays usable.
                    Some(s) if kind(&s) == self.kind => self.shared.set(Slot::Ready(s)),
                    // Another state (a failed reverse is COMMITTED again): handed over with the error.
                    Some(s) => {
                        self.shared.set(Slot::Spent(self.op));
                        let _ = err.value(py).setattr("_native_syncer", Syncer::new(s));
                    }
                    None => self.shared.set(Slot::Spent(self.op)),
                }
                Err(err)
            }),
        }
    }
}

fn start_options(py: Python<'_>, op: Op, body: Option<&str>) -> PyResult<Option<StartOptions>> {
    match (op, body) {
        (Op::Start | Op::StartAny, Some(body)) => StartOptions::from_json(body)
            .map(Some)
            .map_err(|e| to_py(py, &e)),
        (Op::Start | Op::StartAny, None) => Err(pyo3::exceptions::PyValueError::new_err(
            "start needs its options (the /start body)",
        )),
        _ => Ok(None),
    }
}

#[pymethods]
impl Syncer {
    /// Runs a transition and blocks until it ends (Ctrl-C interrupts the wait, not the
    /// transition). Returns the next syncer, or `None` after `shutdown`.
    #[pyo3(signature = (op, body = None))]
    fn run(&self, py: Python<'_>, op: &str, body: Option<&str>) -> PyResult<Option<Syncer>> {
        let op = Op::parse(op)?;
        let options = start_options(py, op, body)?;
        let begin = self.begin(op, options);
        wait(py, async move { begin.await?.join().await })
    }

    /// `run` as an awaitable.
    #[pyo3(signature = (op, body = None))]
    fn run_async<'py>(
        &self,
        py: Python<'py>,
        op: &str,
        body: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = Op::parse(op)?;
        let options = start_options(py, op, body)?;
        let begin = self.begin(op, options);
        awaitable(py, async move { begin.await?.join().await })
    }

    /// The state this object stands for (`IDLE`, `RUNNING`…).
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The engine's state now.
    #[getter]
    fn state(&self) -> &'static str {
        self.handle.state().as_str()
    }

    /// Whether a transition may be called (not spent, not in progress).
    #[getter]
    fn usable(&self) -> bool {
        matches!(
            &*self.shared.slot.lock(),
            Slot::Ready(_) | Slot::Pending(..)
        )
    }

    /// The `/progress` document as JSON.
    fn progress_json(&self) -> PyResult<String> {
        enter(|| crate::progress::progress_json(&self.handle.progress()))?
    }

    /// The engine's counters as JSON.
    fn metrics_json(&self) -> PyResult<String> {
        enter(|| crate::progress::metrics_json(&self.handle.metrics()))?
    }

    /// The warnings of `/progress`.
    fn warnings(&self) -> PyResult<Vec<String>> {
        enter(|| self.handle.warnings())
    }

    /// A stream of progress documents: now, then on each change, until the sync is gone.
    fn watch(&self) -> PyResult<ProgressStream> {
        enter(|| ProgressStream::new(&self.handle))
    }

    /// Blocks until `canCommit` is true (Ctrl-C interrupts the wait).
    fn wait_can_commit(&self, py: Python<'_>) -> PyResult<String> {
        let handle = self.handle.clone();
        wait(py, async move { can_commit(handle).await })
    }

    /// `wait_can_commit` as an awaitable.
    fn wait_can_commit_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        awaitable(py, async move { can_commit(handle).await })
    }

    fn __repr__(&self) -> String {
        format!(
            "<{} (the sync is {})>",
            class_name(self.kind),
            self.handle.state()
        )
    }
}

async fn can_commit(handle: SyncHandle) -> PyResult<String> {
    match handle.wait_can_commit().await {
        Ok(p) => crate::progress::progress_json(&p),
        Err(e) => Err(Python::attach(|py| to_py(py, &e))),
    }
}

/// Connects to both clusters: an IDLE syncer.
pub async fn connect(
    cluster0: String,
    cluster1: String,
    options: ConnectOptions,
) -> PyResult<Syncer> {
    let task = rt()?
        .spawn(async move { mongosync_core::Syncer::connect(&cluster0, &cluster1, options).await });
    match task.await {
        Ok(Ok(s)) => Ok(Syncer::new(AnySyncer::Idle(s))),
        Ok(Err(e)) => Err(Python::attach(|py| to_py(py, &e))),
        Err(e) => Err(crate::error::join_error(e)),
    }
}
