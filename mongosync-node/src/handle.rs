//! `NativeHandle`: the engine's `SyncHandle` (watch without owning), and the progress stream
//! behind `watchProgress()`: each `next()` waits on the engine's watch channel, no timer.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use mongosync_core::{ErrorCode, Progress, SyncHandle, SyncState};
use napi_derive::napi;

use crate::error::{binding, to_napi};
use crate::progress::{metrics, progress};

/// Watches a sync; holding it never keeps the sync alive.
#[napi]
pub struct NativeHandle {
    handle: SyncHandle,
}

impl NativeHandle {
    pub(crate) fn new(handle: SyncHandle) -> NativeHandle {
        NativeHandle { handle }
    }
}

fn parse_state(name: &str) -> napi::Result<SyncState> {
    serde_json::from_value(serde_json::Value::String(name.into())).map_err(|_| {
        binding(
            ErrorCode::InvalidOptions,
            format!(
                "invalid option `state`: unknown state \"{name}\"; allowed: IDLE, RUNNING, PAUSED, COMMITTING, COMMITTED, REVERSING"
            ),
        )
    })
}

#[napi]
impl NativeHandle {
    /// The `/progress` document, measured now.
    #[napi(catch_unwind)]
    pub fn progress(&self) -> napi::Result<serde_json::Value> {
        progress(&self.handle.progress())
    }

    /// The state now.
    #[napi(catch_unwind)]
    pub fn state(&self) -> &'static str {
        self.handle.state().as_str()
    }

    /// The engine's counters.
    #[napi(catch_unwind)]
    pub fn metrics(&self) -> napi::Result<serde_json::Value> {
        metrics(&self.handle.metrics())
    }

    /// Whether the syncer still exists.
    #[napi(catch_unwind)]
    pub fn is_alive(&self) -> bool {
        self.handle.is_alive()
    }

    /// The progress now, then each change, until the syncer is gone.
    #[napi(catch_unwind)]
    pub fn changes(&self) -> NativeProgressStream {
        NativeProgressStream {
            stream: Arc::new(tokio::sync::Mutex::new(Box::pin(self.handle.changes()))),
        }
    }

    /// Waits until `canCommit` is true; rejects if the sync stops first.
    #[napi]
    pub async fn wait_can_commit(&self) -> napi::Result<serde_json::Value> {
        let p = self
            .handle
            .wait_can_commit()
            .await
            .map_err(|e| to_napi(&e))?;
        progress(&p)
    }

    /// Waits until the sync is in `state`.
    #[napi]
    pub async fn wait_state(&self, state: String) -> napi::Result<serde_json::Value> {
        let state = parse_state(&state)?;
        let p = self
            .handle
            .wait_state(state)
            .await
            .map_err(|e| to_napi(&e))?;
        progress(&p)
    }
}

type Changes = Pin<Box<dyn Stream<Item = Progress> + Send>>;

/// The stream of progress documents.
#[napi]
pub struct NativeProgressStream {
    stream: Arc<tokio::sync::Mutex<Changes>>,
}

#[napi]
impl NativeProgressStream {
    /// The next progress document; `null` once the syncer is gone.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<serde_json::Value>> {
        let stream = Arc::clone(&self.stream);
        let next = stream.lock().await.next().await;
        next.map(|p| progress(&p)).transpose()
    }
}
