//! Pings both clusters and writes periodic no-ops on the source while the sync runs, so that
//! lag is measured from real timestamps even when the source is idle (mongosync does the
//! same with `appendOplogNote`).

use std::sync::Weak;
use std::sync::atomic::Ordering;

use super::{Engine, raise};
use crate::progress::SyncState;

pub(crate) async fn run(engine: Weak<Engine>) {
    loop {
        let Some(e) = engine.upgrade() else { return };
        let interval = e.opts.monitor_interval;
        let (source, destination) = {
            let (s, d) = e.roles();
            (s.clone(), d.clone())
        };
        let (ps, pd) = tokio::join!(source.ping_ms(), destination.ping_ms());
        e.stats.ping_source.store(ps, Ordering::Relaxed);
        e.stats.ping_destination.store(pd, Ordering::Relaxed);
        if matches!(e.state(), SyncState::Running | SyncState::Committing)
            && let Ok(ts) = source.oplog_note("periodic no-op").await
        {
            raise(&e.stats.source_time, ts);
        }
        drop(e);
        tokio::time::sleep(interval).await;
    }
}
