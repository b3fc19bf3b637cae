//! Pings both clusters and writes periodic no-ops on the source while the sync runs, so that
//! lag is measured from real timestamps even when the source is idle (mongosync does the
//! same with `appendOplogNote`); checks the source's oplog window every
//! `oplog_check_interval` until the destination opens to users.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Engine, oplog_window, raise, unpack};
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
            && let Ok(ts) = source.oplog_note("periodic no-op", "writing a no-op").await
        {
            raise(&e.stats.source_time, ts);
        }
        check_oplog_window(&e, &source).await;
        // Lag moves with the source's time even when nothing else changes.
        e.publish();
        drop(e);
        tokio::time::sleep(interval).await;
    }
}

async fn check_oplog_window(e: &Engine, source: &super::connect::Cluster) {
    if !matches!(e.state(), SyncState::Running | SyncState::Paused)
        || e.stats.can_write.load(Ordering::SeqCst)
    {
        return;
    }
    // Until a forecast exists (a filling oplog needs two readings), check again sooner.
    let due = {
        let shared = e.shared();
        let every = match shared.oplog.remaining_secs {
            Some(_) => e.opts.oplog_check_interval,
            None => e.opts.oplog_check_interval.min(Duration::from_secs(30)),
        };
        shared.oplog.last.is_none_or(|r| r.at.elapsed() >= every)
    };
    if !due {
        return;
    }
    match oplog_window::read(source).await {
        Ok(now) => {
            // The resume point: a restart reads the source again from there (unknown until
            // the running task has loaded it).
            let needed = match e.stats.applied_time.load(Ordering::SeqCst) {
                0 => return,
                t => unpack(t),
            };
            let mut shared = e.shared();
            let before = shared.oplog.last;
            if let Some(secs) = oplog_window::remaining_secs(needed, &now, before.as_ref()) {
                shared.oplog.remaining_secs = Some(secs);
            }
            shared.oplog.last = Some(now);
        }
        Err(err) => tracing::debug!("the source's oplog window could not be read: {err}"),
    }
}
