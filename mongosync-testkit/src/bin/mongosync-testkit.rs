//! The `mongosync-testkit` command: an in-memory MongoDB replica set on a TCP port.
//!
//! Prints the connection string as its first line on stdout once it accepts connections, and
//! exits cleanly on SIGINT or SIGTERM.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use mongosync_testkit::{ClusterOptions, MemoryCluster, ServerVersion};

/// An in-memory, wire-compatible MongoDB 8.0 replica set for tests and demos.
///
/// Prints `mongodb://HOST:PORT/?replicaSet=NAME` on the first line of stdout once it accepts
/// connections. Everything is kept in memory and lost on exit.
///
/// With `--auth-user` and `--auth-password`, authentication is on: that user is created on
/// `admin` with the `root` role before the URI is printed, and clients must authenticate
/// (SCRAM-SHA-1 or SCRAM-SHA-256). The printed URI stays credential-free, so that no secret is
/// echoed: add `USER:PASSWORD@` and `authSource=admin` yourself.
#[derive(Parser, Debug)]
#[command(name = "mongosync-testkit", version)]
struct Args {
    /// The address to listen on (and advertise in `hello`).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 27017)]
    port: u16,
    /// The replica set name reported to clients.
    #[arg(long, default_value = "rs0")]
    replica_set: String,
    /// Seconds between passes of the TTL monitor (a real server: 60).
    #[arg(long, default_value_t = 60)]
    ttl_monitor_secs: u64,
    /// The most oplog entries kept; older history is lost (change streams resuming from it
    /// fail with ChangeStreamHistoryLost).
    #[arg(long, default_value_t = 5_000_000)]
    oplog_max_entries: usize,
    /// The most oplog bytes kept (approximate).
    #[arg(long, default_value_t = 2 << 30)]
    oplog_max_bytes: usize,
    /// Turn authentication on, with this user as `root` on `admin` (needs --auth-password).
    #[arg(long, requires = "auth_password")]
    auth_user: Option<String>,
    /// The password of --auth-user (needs --auth-user).
    #[arg(long, requires = "auth_user")]
    auth_password: Option<String>,
    /// The MongoDB release to pass for: 6.0, 7.0 or 8.0 (its `buildInfo` version,
    /// `maxWireVersion`, and the commands it lacks, such as `bulkWrite` before 8.0).
    #[arg(long, default_value = "8.0")]
    server_version: ServerVersion,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut options = ClusterOptions::default()
        .host(args.host)
        .port(args.port)
        .replica_set(args.replica_set)
        .ttl_monitor_period(Duration::from_secs(args.ttl_monitor_secs.max(1)))
        .oplog_limits(args.oplog_max_entries.max(1), args.oplog_max_bytes.max(1))
        .server_version(args.server_version);
    if let (Some(user), Some(password)) = (args.auth_user, args.auth_password) {
        options = options.auth(user, password);
    }
    let cluster = match MemoryCluster::start_with(options).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mongosync-testkit: cannot listen: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", cluster.uri());
        let _ = out.flush();
    }
    wait_for_signal().await;
    cluster.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
