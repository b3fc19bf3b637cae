//! Log lines as mongosync writes them: one JSON object a line with `time` (RFC 3339 with
//! fractional seconds), lowercase `level`, `message`, `mongosyncID`, `componentName`, `pid`
//! and the event's fields, to stdout or `DIR/mongosync.log`. Every line passes through
//! [`redact_text`], so no password reaches the log whatever a message holds.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::redact::redact_text;

const TIME_FORMAT: &[BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// The log file's name inside `--logPath`.
pub const LOG_FILE: &str = "mongosync.log";

/// Where log lines go.
#[derive(Debug)]
pub struct LogSink {
    target: Mutex<Target>,
}

#[derive(Debug)]
enum Target {
    Stdout,
    File { dir: PathBuf, file: File },
}

impl LogSink {
    /// Lines go to stdout.
    pub fn stdout() -> Arc<LogSink> {
        Arc::new(LogSink {
            target: Mutex::new(Target::Stdout),
        })
    }

    /// Lines go to `dir/mongosync.log`; an existing log is first renamed with its time.
    ///
    /// # Errors
    /// The directory or the file cannot be created.
    pub fn file(dir: &Path) -> std::io::Result<Arc<LogSink>> {
        std::fs::create_dir_all(dir)?;
        let file = open_fresh(dir)?;
        Ok(Arc::new(LogSink {
            target: Mutex::new(Target::File {
                dir: dir.to_path_buf(),
                file,
            }),
        }))
    }

    /// SIGUSR1: the current log is renamed with its time (unless something moved it
    /// already, as logrotate does) and a new one is opened.
    ///
    /// # Errors
    /// The new file cannot be created (lines keep going to the old one).
    pub fn rotate(&self) -> std::io::Result<()> {
        let mut target = self.target.lock().unwrap_or_else(|e| e.into_inner());
        if let Target::File { dir, file } = &mut *target {
            *file = open_fresh(dir)?;
        }
        Ok(())
    }

    /// Writes one line (a newline is added).
    pub fn write_line(&self, line: &str) {
        let mut target = self.target.lock().unwrap_or_else(|e| e.into_inner());
        // A log that cannot be written must not stop the sync: the line is lost.
        let _ = match &mut *target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}").and_then(|()| out.flush())
            }
            Target::File { file, .. } => writeln!(file, "{line}"),
        };
    }
}

/// Renames `dir/mongosync.log` (if present) to `mongosync-<its time>.log` and opens a new one.
fn open_fresh(dir: &Path) -> std::io::Result<File> {
    let path = dir.join(LOG_FILE);
    if let Ok(meta) = std::fs::metadata(&path) {
        let when: OffsetDateTime = meta
            .modified()
            .map(OffsetDateTime::from)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]-[minute]-[second].[subsecond digits:3]"
        );
        let stamp = when.format(&fmt).unwrap_or_default();
        let mut to = dir.join(format!("mongosync-{stamp}.log"));
        let mut n = 1;
        while to.exists() {
            to = dir.join(format!("mongosync-{stamp}-{n}.log"));
            n += 1;
        }
        std::fs::rename(&path, &to)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// A `tracing` layer writing mongosync's JSON lines.
#[derive(Debug)]
pub struct JsonLayer {
    sink: Arc<LogSink>,
    id: String,
    pid: u32,
}

impl JsonLayer {
    /// Lines for instance `id` (`mongosyncID`) into `sink`.
    pub fn new(sink: Arc<LogSink>, id: impl Into<String>) -> JsonLayer {
        JsonLayer {
            sink,
            id: id.into(),
            pid: std::process::id(),
        }
    }
}

/// The component of an event: its `componentName` field, else its module.
fn component(target: &str) -> &'static str {
    if target.contains("::engine::apply") || target.contains("::changes") {
        "Change Event Application"
    } else if target.contains("::engine::copy") || target.contains("::partition") {
        "Collection Copy"
    } else if target.contains("::engine::commit") || target.contains("::lifecycle") {
        "Commit"
    } else if target.contains("::server") {
        "Web Server"
    } else {
        "Mongosync"
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    component: Option<String>,
    fatal: bool,
    rest: Vec<(String, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_value(field, serde_json::Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_value(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_value(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_value(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record_value(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "fatal" {
            self.fatal = value;
            return;
        }
        self.record_value(field, value.into());
    }
}

impl Fields {
    fn record_value(&mut self, field: &Field, value: serde_json::Value) {
        match (field.name(), value) {
            // `x_json` fields carry a JSON document, logged as `x`.
            (name, serde_json::Value::String(s))
                if name.ends_with("_json")
                    && serde_json::from_str::<serde_json::Value>(&s).is_ok() =>
            {
                let v = serde_json::from_str(&s).unwrap_or_default();
                self.rest
                    .push((name.trim_end_matches("_json").to_string(), v));
            }
            ("message", serde_json::Value::String(s)) => self.message = s,
            ("componentName", serde_json::Value::String(s)) => self.component = Some(s),
            (name, v) => self.rest.push((name.to_string(), v)),
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

impl<S: Subscriber> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let level = if fields.fatal {
            "fatal"
        } else {
            level_name(meta.level())
        };
        let component = fields
            .component
            .unwrap_or_else(|| component(meta.target()).to_string());
        // RFC 3339 with always six fractional digits (analysers slice `time[:26]`).
        let time = OffsetDateTime::now_utc()
            .format(TIME_FORMAT)
            .unwrap_or_default();
        let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let mut line = format!(
            "{{\"time\":{},\"level\":{},\"pid\":{},\"mongosyncID\":{},\"componentName\":{},\"message\":{}",
            q(&time),
            q(level),
            self.pid,
            q(&self.id),
            q(&component),
            q(&fields.message)
        );
        for (k, v) in &fields.rest {
            let _ = write!(line, ",{}:{}", q(k), v);
        }
        line.push('}');
        self.sink.write_line(&redact_text(&line));
    }
}
