//! Cluster time: a `Timestamp(seconds, increment)` that strictly grows with every write, as the
//! oplog's `ts` does on a real primary. `operationTime` and `$clusterTime` in replies read it.

use std::time::{SystemTime, UNIX_EPOCH};

use bson::Timestamp;
use parking_lot::Mutex;

/// The cluster's logical clock.
#[derive(Debug)]
pub struct Clock {
    last: Mutex<Timestamp>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting at the current wall time.
    pub fn new() -> Clock {
        Clock {
            last: Mutex::new(Timestamp {
                time: now_secs(),
                increment: 1,
            }),
        }
    }

    /// The latest cluster time handed out.
    pub fn now(&self) -> Timestamp {
        *self.last.lock()
    }

    /// A new cluster time, strictly greater than every earlier one.
    pub fn tick(&self) -> Timestamp {
        let mut last = self.last.lock();
        let secs = now_secs();
        *last = if secs > last.time {
            Timestamp {
                time: secs,
                increment: 1,
            }
        } else {
            Timestamp {
                time: last.time,
                increment: last.increment + 1,
            }
        };
        *last
    }
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_strictly_grow() {
        let c = Clock::new();
        let mut prev = c.tick();
        for _ in 0..10_000 {
            let t = c.tick();
            assert!((t.time, t.increment) > (prev.time, prev.increment));
            prev = t;
        }
        assert_eq!(c.now(), prev);
    }
}
