//! How long the source's oplog keeps the oldest entry the sync still needs (its resume point):
//! mongosync's `estimatedOplogTimeRemaining` and its warning, before history is lost.
//!
//! The window is read from the source as monitoring tools read it: `serverStatus`'s `oplog`
//! section (`earliestOptime`) and the storage figures of `local.oplog.rs` (`size`,
//! `maxSize`). A full oplog drops its oldest entries as fast as new ones arrive, so the
//! resume point is overwritten after about `resume point − earliest entry` seconds; an oplog
//! not yet full first has to fill its free space, at the write rate measured between two
//! checks.

use std::time::Instant;

use bson::{Timestamp, doc};

use super::connect::Cluster;
use super::partition::{number, storage_stats};

/// Below this much history left, `progress` warns.
pub(crate) const WARN_BELOW_SECS: i64 = 3600;

/// One reading of the source's oplog.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub at: Instant,
    pub earliest: Timestamp,
    pub size: i64,
    pub max_size: i64,
}

/// What the last check found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Forecast {
    pub last: Option<Reading>,
    /// Seconds until the resume point is overwritten; `None` before it can be told.
    pub remaining_secs: Option<i64>,
}

pub(crate) async fn read(source: &Cluster) -> mongodb::error::Result<Reading> {
    let status = source.admin(doc! {"serverStatus": 1, "oplog": 1}).await?;
    let earliest = status
        .get_document("oplog")
        .and_then(|o| o.get_timestamp("earliestOptime"))
        .unwrap_or(Timestamp {
            time: 0,
            increment: 0,
        });
    let storage = storage_stats(source, "local", "oplog.rs").await?;
    Ok(Reading {
        at: Instant::now(),
        earliest,
        size: number(&storage, "size"),
        max_size: number(&storage, "maxSize"),
    })
}

/// Seconds until the entry at `needed` leaves the oplog (0 if it already has; `i64::MAX` if the
/// oplog is not filling). `None` when an oplog that is not full has no earlier reading to
/// measure its write rate from.
pub(crate) fn remaining_secs(
    needed: Timestamp,
    now: &Reading,
    before: Option<&Reading>,
) -> Option<i64> {
    if needed.time < now.earliest.time
        || (needed.time == now.earliest.time && needed.increment < now.earliest.increment)
    {
        return Some(0);
    }
    let behind = i64::from(needed.time) - i64::from(now.earliest.time);
    let free = (now.max_size - now.size).max(0);
    // Full (within 1%): the window slides at the write rate already.
    if now.max_size <= 0 || free * 100 <= now.max_size {
        return Some(behind);
    }
    let before = before?;
    let secs = now.at.duration_since(before.at).as_secs_f64();
    let grown = (now.size - before.size) as f64;
    if secs <= 0.0 || grown <= 0.0 {
        return Some(i64::MAX);
    }
    let fill = free as f64 / (grown / secs);
    Some(behind.saturating_add(fill.min(i64::MAX as f64 / 2.0) as i64))
}

/// mongosync's wording: "less than 15 minutes", "45 minutes", "12 hours", "more than 72 hours".
pub(crate) fn describe(secs: Option<i64>) -> String {
    match secs {
        None => "not checked yet".into(),
        Some(s) if s < 15 * 60 => "less than 15 minutes".into(),
        Some(s) if s < 3600 => format!("{} minutes", s / 60),
        Some(s) if s < 2 * 3600 => "1 hour".into(),
        Some(s) if s <= 72 * 3600 => format!("{} hours", s / 3600),
        Some(_) => "more than 72 hours".into(),
    }
}

pub(crate) fn warning(secs: i64) -> String {
    format!(
        "The amount of available oplog on the source cluster is too small for mongosync to complete successfully: the oldest entry this sync still needs is overwritten in {} at the current write rate. Enlarge the source's oplog (replSetResizeOplog) or set a minimum retention (oplogMinRetentionHours), or reduce the write load, before history is lost and the sync must start again",
        describe(Some(secs))
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ts(time: u32) -> Timestamp {
        Timestamp { time, increment: 1 }
    }

    fn reading(at: Instant, earliest: u32, size: i64, max_size: i64) -> Reading {
        Reading {
            at,
            earliest: ts(earliest),
            size,
            max_size,
        }
    }

    #[test]
    fn a_full_oplog_keeps_the_resume_point_for_its_distance_from_the_earliest_entry() {
        let now = reading(Instant::now(), 1000, 100, 100);
        assert_eq!(remaining_secs(ts(1600), &now, None), Some(600));
        assert_eq!(remaining_secs(ts(900), &now, None), Some(0));
    }

    #[test]
    fn an_oplog_filling_up_adds_the_time_to_fill_its_free_space() {
        let t0 = Instant::now();
        let before = reading(t0, 1000, 1000, 10_000);
        let now = reading(t0 + Duration::from_secs(10), 1000, 2000, 10_000);
        // 100 bytes/s, 8000 bytes free: 80 s, plus 50 s of history behind the resume point.
        assert_eq!(remaining_secs(ts(1050), &now, Some(&before)), Some(130));
        assert_eq!(remaining_secs(ts(1050), &now, None), None);
        let idle = reading(t0 + Duration::from_secs(10), 1000, 1000, 10_000);
        assert_eq!(
            remaining_secs(ts(1050), &idle, Some(&before)),
            Some(i64::MAX)
        );
    }

    #[test]
    fn the_wording_is_mongosyncs() {
        assert_eq!(describe(None), "not checked yet");
        assert_eq!(describe(Some(60)), "less than 15 minutes");
        assert_eq!(describe(Some(45 * 60)), "45 minutes");
        assert_eq!(describe(Some(12 * 3600 + 5)), "12 hours");
        assert_eq!(describe(Some(i64::MAX)), "more than 72 hours");
    }
}
