//! mongosync's command-line flags and `--config` YAML file (reference §9): the same names,
//! flags winning over the file. Errors are one line naming the flag or key and never echo a
//! password.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};
use serde::Deserialize;

use crate::redact::{redact, redact_text};

/// The log levels of `--verbosity` (mongosync's names, any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Deserialize)]
#[value(rename_all = "UPPER")]
pub enum Verbosity {
    /// Everything.
    Trace,
    /// Debugging detail (mongosync's default).
    Debug,
    /// Normal operation.
    Info,
    /// Problems that are handled.
    Warn,
    /// Errors.
    Error,
    /// Fatal errors only (as ERROR here).
    Fatal,
    /// As FATAL.
    Panic,
}

impl Verbosity {
    fn parse(s: &str) -> Option<Verbosity> {
        Verbosity::from_str(s, true).ok()
    }

    /// The most verbose tracing level shown.
    pub fn level(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            Verbosity::Trace => LevelFilter::TRACE,
            Verbosity::Debug => LevelFilter::DEBUG,
            Verbosity::Info => LevelFilter::INFO,
            Verbosity::Warn => LevelFilter::WARN,
            Verbosity::Error | Verbosity::Fatal | Verbosity::Panic => LevelFilter::ERROR,
        }
    }
}

/// Continuously syncs one MongoDB cluster into another, driven over HTTP like MongoDB's
/// mongosync (REST API on 127.0.0.1:27182 by default).
#[derive(Parser, Debug, Default)]
#[command(
    name = "mongosync",
    version,
    disable_version_flag = true,
    after_help = "Every flag is also a key of the --config YAML file; flags win over the file.\n\
                  REST API: POST /api/v1/{start,pause,resume,commit,reverse}, GET /api/v1/progress;\n\
                  beyond mongosync: GET /metrics (Prometheus), GET / (dashboard)."
)]
pub struct Flags {
    /// The first cluster's connection string.
    #[arg(long, value_name = "URI")]
    pub cluster0: Option<String>,
    /// The second cluster's connection string.
    #[arg(long, value_name = "URI")]
    pub cluster1: Option<String>,
    /// The REST API's port (default 27182; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// The address the REST API listens on (default 127.0.0.1). The API has no
    /// authentication: another address makes it reachable by anyone who can connect.
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// A YAML file with the same keys as the flags.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the log to DIR/mongosync.log instead of stdout (an existing log is renamed with
    /// its time; SIGUSR1 rotates it).
    #[arg(long = "logPath", value_name = "DIR")]
    pub log_path: Option<PathBuf>,
    /// The least severe log level written: TRACE, DEBUG, INFO, WARN, ERROR, FATAL, PANIC.
    #[arg(long, ignore_case = true, value_enum)]
    pub verbosity: Option<Verbosity>,
    /// This instance's ID (mongosyncID); "coordinator" by default.
    #[arg(long)]
    pub id: Option<String>,
    /// How hard the copy loads the clusters, 1 to 4 (default 3): 1, 2, 4 or 8 copy workers.
    #[arg(long = "loadLevel", value_parser = clap::value_parser!(u8).range(1..=4))]
    pub load_level: Option<u8>,
    /// Accepted for compatibility (mongosync asks it for its disclaimer).
    #[arg(long = "acceptDisclaimer")]
    pub accept_disclaimer: bool,
    /// Accepted for compatibility: there is no embedded verifier yet, so nothing verifies.
    #[arg(long = "disableVerification")]
    pub disable_verification: bool,
    /// Accepted for compatibility: nothing is ever sent anywhere.
    #[arg(long = "disableTelemetry")]
    pub disable_telemetry: bool,
    /// Print the version and exit (as mongosync, `-v` is the version).
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: Option<bool>,
}

/// The keys of the `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileConfig {
    cluster0: Option<String>,
    cluster1: Option<String>,
    port: Option<u16>,
    bind: Option<IpAddr>,
    log_path: Option<PathBuf>,
    verbosity: Option<String>,
    id: Option<String>,
    load_level: Option<u8>,
    accept_disclaimer: Option<bool>,
    disable_verification: Option<bool>,
    disable_telemetry: Option<bool>,
}

/// The settings of a run, flags and file merged.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--cluster0`.
    pub cluster0: String,
    /// `--cluster1`.
    pub cluster1: String,
    /// `--port`.
    pub port: u16,
    /// `--bind`.
    pub bind: IpAddr,
    /// `--logPath`.
    pub log_path: Option<PathBuf>,
    /// `--verbosity`.
    pub verbosity: Verbosity,
    /// `--id`.
    pub id: String,
    /// `--loadLevel`.
    pub load_level: u8,
    /// `--acceptDisclaimer`.
    pub accept_disclaimer: bool,
    /// `--disableVerification`.
    pub disable_verification: bool,
    /// `--disableTelemetry`.
    pub disable_telemetry: bool,
    /// `--config`.
    pub config_file: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// Print this (help or version) and exit successfully.
    Print(String),
}

impl Config {
    /// Parses the command line (without the program name's handling: `args` includes it).
    ///
    /// # Errors
    /// One line naming the flag, key or value that is wrong.
    pub fn parse<I, T>(args: I) -> Result<Parsed, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let flags = match Flags::try_parse_from(args) {
            Ok(f) => f,
            Err(e) => {
                use clap::error::ErrorKind;
                if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    return Ok(Parsed::Print(e.render().to_string()));
                }
                // clap's first line names the flag; the usage and tips follow on others.
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                return Err(format!("{} (see --help)", redact_text(first)));
            }
        };
        Config::from_flags(flags).map(|c| Parsed::Run(Box::new(c)))
    }

    fn from_flags(flags: Flags) -> Result<Config, String> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the --config file {}: {e}", path.display())
                })?;
                serde_saphyr::from_str::<Option<FileConfig>>(&text)
                    .map_err(|e| {
                        let msg = redact_text(&e.to_string());
                        let msg = msg.lines().next().unwrap_or_default().to_string();
                        let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
                        let keys = if msg.contains("expected one of") {
                            ""
                        } else {
                            "; allowed keys: cluster0, cluster1, port, bind, logPath, verbosity, id, loadLevel, acceptDisclaimer, disableVerification, disableTelemetry"
                        };
                        format!("invalid --config file {}: {msg}{keys}", path.display())
                    })?
                    .unwrap_or_default()
            }
            None => FileConfig::default(),
        };
        let verbosity = match (flags.verbosity, file.verbosity) {
            (Some(v), _) => v,
            (None, Some(s)) => Verbosity::parse(&s).ok_or_else(|| {
                format!(
                    "invalid value '{s}' for `verbosity` in the --config file; allowed: TRACE, DEBUG, INFO, WARN, ERROR, FATAL, PANIC"
                )
            })?,
            (None, None) => Verbosity::Debug,
        };
        let load_level = flags.load_level.or(file.load_level).unwrap_or(3);
        if !(1..=4).contains(&load_level) {
            return Err(format!(
                "invalid value '{load_level}' for `loadLevel` in the --config file; allowed: 1 to 4"
            ));
        }
        let cluster0 = flags.cluster0.or(file.cluster0).ok_or(
            "the --cluster0 connection string is required (flag or `cluster0` in --config)",
        )?;
        let cluster1 = flags.cluster1.or(file.cluster1).ok_or(
            "the --cluster1 connection string is required (flag or `cluster1` in --config)",
        )?;
        check_uri("cluster0", &cluster0)?;
        check_uri("cluster1", &cluster1)?;
        let id = flags.id.or(file.id).unwrap_or_else(|| "coordinator".into());
        if id.is_empty() {
            return Err("invalid value '' for --id: must not be empty".into());
        }
        Ok(Config {
            cluster0,
            cluster1,
            port: flags.port.or(file.port).unwrap_or(27182),
            bind: flags
                .bind
                .or(file.bind)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            log_path: flags.log_path.or(file.log_path),
            verbosity,
            id,
            load_level,
            accept_disclaimer: flags.accept_disclaimer || file.accept_disclaimer.unwrap_or(false),
            disable_verification: flags.disable_verification
                || file.disable_verification.unwrap_or(false),
            disable_telemetry: flags.disable_telemetry || file.disable_telemetry.unwrap_or(false),
            config_file: flags.config,
        })
    }

    /// The copy workers of `--loadLevel`.
    pub fn copy_workers(&self) -> usize {
        1 << (self.load_level.clamp(1, 4) - 1)
    }

    /// The options as logged in "Mongosync Options" (connection strings redacted).
    pub fn log_fields(&self) -> serde_json::Value {
        serde_json::json!({
            "cluster0": redact(&self.cluster0),
            "cluster1": redact(&self.cluster1),
            "port": self.port,
            "bind": self.bind.to_string(),
            "logPath": self.log_path.as_ref().map(|p| p.display().to_string()),
            "verbosity": format!("{:?}", self.verbosity).to_uppercase(),
            "id": self.id,
            "loadLevel": self.load_level,
            "acceptDisclaimer": self.accept_disclaimer,
            "disableVerification": self.disable_verification,
            "disableTelemetry": self.disable_telemetry,
            "config": self.config_file.as_ref().map(|p| p.display().to_string()),
        })
    }
}

/// A connection string the driver can parse (no DNS lookup, no connection yet).
fn check_uri(name: &str, uri: &str) -> Result<(), String> {
    mongodb::options::ConnectionString::parse(uri)
        .map(drop)
        .map_err(|e| {
            let why = redact_text(&e.kind.to_string());
            let why = why.lines().next().unwrap_or_default().to_string();
            format!(
                "invalid --{name} connection string '{}': {why}",
                redact(uri)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        Config::parse(std::iter::once("mongosync").chain(args.iter().copied()))
    }

    #[test]
    fn verbosity_is_case_insensitive_and_defaults_are_mongosyncs() {
        let Ok(Parsed::Run(c)) = parse(&[
            "--cluster0",
            "mongodb://a:1",
            "--cluster1",
            "mongodb://b:2",
            "--verbosity",
            "warn",
        ]) else {
            panic!()
        };
        assert_eq!(c.verbosity, Verbosity::Warn);
        assert_eq!(
            (c.port, c.id.as_str(), c.load_level),
            (27182, "coordinator", 3)
        );
        assert_eq!(c.bind.to_string(), "127.0.0.1");
    }

    #[test]
    fn a_bad_uri_names_the_flag_and_hides_the_password() {
        let e = parse(&[
            "--cluster0",
            "mongodb://u:s3cret@a:1/?replicaSet=",
            "--cluster1",
            "http://u:s3cret@b",
        ])
        .unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(e.contains("--cluster"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
