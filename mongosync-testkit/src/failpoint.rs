//! Fail points, as a real server exposes them under `enableTestCommands`:
//! `configureFailPoint` with `failCommand` (errors, labels, closed connections, blocked
//! connections, write concern errors), `onPrimaryTransactionalWrite` (in the write path of
//! retryable writes), `failGetMoreAfterCursorCheckout` and `hangTTLMonitorBetweenPasses`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bson::{Bson, Document};
use parking_lot::Mutex;

use crate::error::{CommandError, Result};

/// The retryable write a command runs as, while it runs (see
/// [`FailPoints::transactional_write`]).
#[derive(Clone, Default)]
pub struct RetryableWrite {
    /// The server whose fail points the writes pass.
    pub server: Option<Arc<crate::server::Server>>,
    /// The session's key (`lsid.id`).
    pub key: Vec<u8>,
    /// Whether its executed statements are recorded and looked up one by one: while the fail
    /// point that can leave a reply unrecorded is set, or when an earlier attempt recorded some
    /// (the retry skips them).
    pub per_statement: bool,
    /// The session as the server prints a `LogicalSessionId`: `<id> - <uid> -  - `.
    pub session: String,
    /// Its `txnNumber`.
    pub txn_number: i64,
    /// Set when the connection is to be closed instead of replying.
    pub close: Arc<AtomicBool>,
    /// Set when a write failed by the fail point: the reply must not be recorded for retry.
    pub failed: Arc<AtomicBool>,
}

tokio::task_local! {
    /// Set while a retryable write (`lsid` and `txnNumber`, no `autocommit`) executes.
    pub static RETRYABLE_WRITE: RetryableWrite;
}

fn truthy(v: &Bson) -> bool {
    v.as_bool()
        .unwrap_or_else(|| crate::util::as_f64(v).is_some_and(|f| f != 0.0))
}

/// When a fail point fires.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Off,
    AlwaysOn,
    Times(i64),
    Skip(i64),
    Probability(f64),
}

#[derive(Debug, Clone)]
struct FailPoint {
    mode: Mode,
    data: Document,
    entered: i64,
}

/// What a `failCommand` that fired asks of the command.
#[derive(Debug, Clone, Default)]
pub struct Action {
    /// Sleep first (`blockConnection` with `blockTimeMS`).
    pub block_ms: Option<u64>,
    /// Close the connection without executing.
    pub close_connection: bool,
    /// Fail without executing, with this error.
    pub error: Option<CommandError>,
    /// Execute, then attach this `writeConcernError`.
    pub write_concern_error: Option<Document>,
    /// `errorLabels`, replacing the server's own (`Some(vec![])`: none at all).
    pub labels: Option<Vec<String>>,
}

/// Every fail point of the server.
#[derive(Debug, Default)]
pub struct FailPoints {
    points: Mutex<HashMap<String, FailPoint>>,
    /// Woken whenever a fail point fires (`waitForFailPoint`).
    fired: tokio::sync::Notify,
    /// Woken whenever a fail point is configured (the end of a hang).
    configured: tokio::sync::Notify,
    /// How many times fail points were configured.
    generation: std::sync::atomic::AtomicU64,
}

fn parse_mode(mode: &Bson) -> Result<Mode> {
    match mode {
        Bson::String(s) if s == "off" => Ok(Mode::Off),
        Bson::String(s) if s == "alwaysOn" => Ok(Mode::AlwaysOn),
        Bson::Document(d) => {
            if let Some(n) = d.get("times").and_then(crate::util::as_f64) {
                Ok(Mode::Times(n as i64))
            } else if let Some(n) = d.get("skip").and_then(crate::util::as_f64) {
                Ok(Mode::Skip(n as i64))
            } else if let Some(p) = d.get("activationProbability").and_then(crate::util::as_f64) {
                Ok(Mode::Probability(p))
            } else {
                Err(CommandError::failed_to_parse(format!(
                    "invalid mode object: {}",
                    crate::util::shell_repr(mode)
                )))
            }
        }
        other => Err(CommandError::failed_to_parse(format!(
            "invalid mode: {}",
            crate::util::shell_repr(other)
        ))),
    }
}

impl FailPoints {
    /// Whether fail point `name` is set (not off).
    pub fn is_set(&self, name: &str) -> bool {
        self.points
            .lock()
            .get(name)
            .is_some_and(|p| p.mode != Mode::Off)
    }

    /// `configureFailPoint`: sets a fail point; returns how often it had been entered.
    pub fn configure(&self, name: &str, mode: &Bson, data: Document) -> Result<i64> {
        if ![
            "failCommand",
            "failGetMoreAfterCursorCheckout",
            "onPrimaryTransactionalWrite",
            "hangTTLMonitorBetweenPasses",
        ]
        .contains(&name)
        {
            return Err(CommandError::failed_to_parse(format!(
                "Unknown fail point: {name}"
            )));
        }
        let mode = parse_mode(mode)?;
        if name == "failCommand" && mode != Mode::Off {
            let commands = data.get_array("failCommands").map_err(|_| {
                CommandError::failed_to_parse(
                    "'failCommands' must be an array of strings in the failCommand data",
                )
            })?;
            if commands.iter().any(|c| c.as_str().is_none()) {
                return Err(CommandError::failed_to_parse(
                    "'failCommands' must be an array of strings",
                ));
            }
            if data.contains_key("blockConnection") && data.get("blockTimeMS").is_none() {
                return Err(CommandError::failed_to_parse(
                    "'blockTimeMS' must be set with 'blockConnection'",
                ));
            }
        }
        let entered = {
            let mut points = self.points.lock();
            let entered = points.get(name).map_or(0, |p| p.entered);
            points.insert(
                name.to_string(),
                FailPoint {
                    mode,
                    data,
                    entered,
                },
            );
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            entered
        };
        self.configured.notify_waiters();
        Ok(entered)
    }

    /// A server's `pauseWhileSet`: when fail point `name` fires, waits until it is configured
    /// again (turned off, or set anew: the next check fires again). Each hang counts one
    /// entry for `waitForFailPoint`.
    pub async fn pause_while_set(&self, name: &str) {
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        if self.fire(name, |_| true).is_none() {
            return;
        }
        loop {
            let configured = self.configured.notified();
            if self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
                return;
            }
            configured.await;
        }
    }

    /// `waitForFailPoint`: waits until fail point `name` has fired `times` times in all, at
    /// most `max` (MaxTimeMSExpired, 50, after that).
    pub async fn wait_entered(
        &self,
        name: &str,
        times: i64,
        max: std::time::Duration,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let fired = self.fired.notified();
            if self.points.lock().get(name).map_or(0, |p| p.entered) >= times {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, fired).await.is_err() {
                return Err(CommandError::new(50, "operation exceeded time limit"));
            }
        }
    }

    /// Whether fail point `name` fires now, given that its `data` matches; counts the entry.
    fn fire(&self, name: &str, matches: impl Fn(&Document) -> bool) -> Option<Document> {
        let mut points = self.points.lock();
        let point = points.get_mut(name)?;
        if point.mode == Mode::Off || !matches(&point.data) {
            return None;
        }
        let fires = match &mut point.mode {
            Mode::Off => false,
            Mode::AlwaysOn => true,
            Mode::Times(n) => {
                *n -= 1;
                true
            }
            Mode::Skip(n) if *n > 0 => {
                *n -= 1;
                false
            }
            Mode::Skip(_) => true,
            Mode::Probability(p) => rand::random::<f64>() < *p,
        };
        if matches!(point.mode, Mode::Times(n) if n <= 0) {
            point.mode = Mode::Off;
        }
        if fires {
            point.entered += 1;
            self.fired.notify_waiters();
            Some(point.data.clone())
        } else {
            None
        }
    }

    /// The `failCommand` action for command `name` from a client named `app_name` on `ns`.
    pub fn fail_command(&self, name: &str, app_name: Option<&str>, ns: &str) -> Option<Action> {
        if name == "configureFailPoint" {
            return None;
        }
        let data = self.fire("failCommand", |d| {
            let listed = d.get_array("failCommands").is_ok_and(|cs| {
                cs.iter()
                    .any(|c| c.as_str().is_some_and(|c| c == name || aliases(c, name)))
            });
            let app_ok = d.get_str("appName").map_or(true, |a| Some(a) == app_name);
            let ns_ok = d.get_str("namespace").map_or(true, |n| n == ns);
            listed && app_ok && ns_ok
        })?;
        let mut action = Action::default();
        if data.get_bool("blockConnection").unwrap_or(false) {
            action.block_ms = data
                .get("blockTimeMS")
                .and_then(crate::util::as_f64)
                .map(|m| m as u64);
        }
        action.close_connection = data.get_bool("closeConnection").unwrap_or(false);
        if let Some(code) = data.get("errorCode").and_then(crate::util::as_f64) {
            let mut e =
                CommandError::new(code as i32, "Failing command via 'failCommand' failpoint");
            if let Ok(extra) = data.get_document("errorExtraInfo") {
                e.extra.extend(extra.clone());
            }
            action.error = Some(e);
        }
        action.write_concern_error = data.get_document("writeConcernError").ok().cloned();
        action.labels = data.get_array("errorLabels").ok().map(|ls| {
            ls.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        });
        Some(action)
    }

    /// `onPrimaryTransactionalWrite`, checked as each write of a retryable write is recorded
    /// for retry, before it commits (the server's `TransactionParticipant`): unless
    /// `closeConnection: false`, the connection is closed (here: after the command, whose
    /// reply is lost); with `failBeforeCommitExceptionCode` the write fails with that code and
    /// is not applied, nor recorded, so that the driver's retry writes it. Outside a retryable
    /// write it does nothing.
    pub fn transactional_write() -> Result<()> {
        let Ok(write) = RETRYABLE_WRITE.try_with(Clone::clone) else {
            return Ok(());
        };
        let Some(data) = write
            .server
            .as_ref()
            .and_then(|s| s.failpoints.fire("onPrimaryTransactionalWrite", |_| true))
        else {
            return Ok(());
        };
        if data.get("closeConnection").is_none_or(truthy) {
            write.close.store(true, Ordering::SeqCst);
        }
        if let Some(code) = data
            .get("failBeforeCommitExceptionCode")
            .and_then(crate::util::as_f64)
        {
            write.failed.store(true, Ordering::SeqCst);
            return Err(CommandError::new(
                code as i32,
                format!(
                    "Failing write for {}:{} due to failpoint. The write must not be reflected.",
                    write.session, write.txn_number
                ),
            ));
        }
        Ok(())
    }

    /// The error of `failGetMoreAfterCursorCheckout`, if it fires.
    pub fn get_more_after_checkout(&self) -> Option<(CommandError, Option<Vec<String>>)> {
        let data = self.fire("failGetMoreAfterCursorCheckout", |_| true)?;
        let code = data
            .get("errorCode")
            .and_then(crate::util::as_f64)
            .map_or(1, |c| c as i32);
        let labels = data.get_array("errorLabels").ok().map(|ls| {
            ls.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        });
        Some((
            CommandError::new(
                code,
                "Failing command via 'failGetMoreAfterCursorCheckout' failpoint",
            ),
            labels,
        ))
    }
}

fn aliases(a: &str, b: &str) -> bool {
    let group = |n: &str| match n {
        "hello" | "isMaster" | "ismaster" => 1,
        "findAndModify" | "findandmodify" => 2,
        _ => 0,
    };
    group(a) != 0 && group(a) == group(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn times_and_skip_modes_count_down() {
        let fp = FailPoints::default();
        fp.configure(
            "failCommand",
            &Bson::Document(doc! {"times": 2}),
            doc! {"failCommands": ["insert"], "errorCode": 91},
        )
        .unwrap();
        assert!(fp.fail_command("find", None, "d.c").is_none());
        assert_eq!(
            fp.fail_command("insert", None, "d.c")
                .unwrap()
                .error
                .unwrap()
                .code,
            91
        );
        assert!(fp.fail_command("insert", None, "d.c").is_some());
        assert!(
            fp.fail_command("insert", None, "d.c").is_none(),
            "off after two"
        );
        let count = fp
            .configure(
                "failCommand",
                &Bson::Document(doc! {"skip": 1}),
                doc! {"failCommands": ["ping"], "closeConnection": true},
            )
            .unwrap();
        assert_eq!(count, 2);
        assert!(fp.fail_command("ping", None, "admin.$cmd").is_none());
        assert!(
            fp.fail_command("ping", None, "admin.$cmd")
                .unwrap()
                .close_connection
        );
    }

    #[tokio::test]
    async fn a_hang_lasts_until_the_fail_point_is_configured_again() {
        let fp = std::sync::Arc::new(FailPoints::default());
        let name = "hangTTLMonitorBetweenPasses";
        fp.pause_while_set(name).await; // never configured: no hang
        fp.configure(name, &Bson::String("alwaysOn".into()), doc! {})
            .unwrap();
        let hung = tokio::spawn({
            let fp = fp.clone();
            async move { fp.pause_while_set(name).await }
        });
        fp.wait_entered(name, 1, std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!hung.is_finished());
        let entered = fp
            .configure(name, &Bson::String("off".into()), doc! {})
            .unwrap();
        assert_eq!(entered, 1);
        hung.await.unwrap();
        fp.pause_while_set(name).await; // off: no hang
    }

    #[test]
    fn app_name_filters() {
        let fp = FailPoints::default();
        fp.configure(
            "failCommand",
            &Bson::String("alwaysOn".into()),
            doc! {"failCommands": ["find"], "errorCode": 2, "appName": "tool"},
        )
        .unwrap();
        assert!(fp.fail_command("find", Some("other"), "d.c").is_none());
        assert!(fp.fail_command("find", Some("tool"), "d.c").is_some());
    }
}
