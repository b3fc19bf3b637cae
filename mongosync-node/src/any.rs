//! The entry points: `connect` (a new sync, IDLE) and `attach` (the sync persisted on the
//! destination, in whatever state it is), both giving a `NativeSyncer`.

use mongosync_core::{AnySyncer, Syncer};
use napi_derive::napi;

use crate::error::{task_failed, to_napi};
use crate::options::NativeConnectOptions;
use crate::syncer::NativeSyncer;

/// Connects to both clusters and checks them: an IDLE syncer.
#[napi]
pub async fn connect(
    cluster0: String,
    cluster1: String,
    options: Option<NativeConnectOptions>,
) -> napi::Result<NativeSyncer> {
    let options = options.unwrap_or_default().into_core()?;
    // In a task of its own: the driver's futures are not dropped half-way (pitfall 5).
    let task = tokio::spawn(async move { Syncer::connect(&cluster0, &cluster1, options).await });
    match task.await {
        Ok(Ok(idle)) => Ok(NativeSyncer::new(AnySyncer::Idle(idle))),
        Ok(Err(e)) => Err(to_napi(&e)),
        Err(e) => Err(task_failed("connect", e)),
    }
}

/// Connects and re-enters the sync persisted on the destination (IDLE when there is none).
#[napi]
pub async fn attach(
    cluster0: String,
    cluster1: String,
    options: Option<NativeConnectOptions>,
) -> napi::Result<NativeSyncer> {
    let options = options.unwrap_or_default().into_core()?;
    let task = tokio::spawn(async move { AnySyncer::attach(&cluster0, &cluster1, options).await });
    match task.await {
        Ok(Ok(any)) => Ok(NativeSyncer::new(any)),
        Ok(Err(e)) => Err(to_napi(&e)),
        Err(e) => Err(task_failed("attach", e)),
    }
}
