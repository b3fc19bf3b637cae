//! One run of the command: logs, the HTTP server, re-attaching to the persisted sync, the
//! progress log lines, and the signals (SIGTERM/SIGINT stop gracefully, SIGUSR1 rotates the
//! log).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mongosync_core::{AnySyncer, Batches, ConnectOptions, Error, SyncHandle, SyncState};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

use crate::config::Config;
use crate::log::{JsonLayer, LogSink};
use crate::redact::redact_text;
use crate::server::{App, router};

/// How often `Replication progress` is logged during change event application.
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(10);

/// Prints a one-line error on stderr (and in the log) and returns the failure code.
fn fail(message: &str, code: Option<&str>) -> ExitCode {
    let message = redact_text(message);
    tracing::error!(fatal = true, error = %message, code, "Got a fatal error running Mongosync");
    match code {
        Some(code) => eprintln!("mongosync: error: {code}: {message}"),
        None => eprintln!("mongosync: error: {message}"),
    }
    ExitCode::FAILURE
}

/// Runs the command until a signal or a fatal error.
pub async fn run(config: Config) -> ExitCode {
    let sink = match &config.log_path {
        Some(dir) => match LogSink::file(dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "mongosync: error: cannot open the log in --logPath {}: {e}",
                    dir.display()
                );
                return ExitCode::FAILURE;
            }
        },
        None => LogSink::stdout(),
    };
    let layer =
        JsonLayer::new(Arc::clone(&sink), config.id.clone()).with_filter(config.verbosity.level());
    if tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).is_err()
    {
        eprintln!("mongosync: error: a logger is already installed");
        return ExitCode::FAILURE;
    }

    tracing::info!(options_json = %config.log_fields(), "Mongosync Options");
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        "Version info"
    );
    if !config.bind.is_loopback() {
        let warning = format!(
            "the REST API listens on {}, which is not a loopback address: it has no authentication, so anyone who can reach it can start, commit or reverse the sync",
            config.bind
        );
        tracing::warn!("{warning}");
        eprintln!("mongosync: warning: {warning}");
    }

    let listener = match tokio::net::TcpListener::bind((config.bind, config.port)).await {
        Ok(l) => l,
        Err(e) => {
            return fail(
                &format!("cannot listen on {}:{}: {e}", config.bind, config.port),
                None,
            );
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(config.port);
    tracing::info!(address = %address, port, "Starting the web server");

    let app = App::new(config.id.clone());
    let stop_server = Arc::new(tokio::sync::Notify::new());
    let server = {
        let stop = Arc::clone(&stop_server);
        let service = router(Arc::clone(&app));
        tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await
        })
    };

    let (Ok(mut sigterm), Ok(mut sigint), Ok(mut sigusr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        return fail("cannot install the signal handlers", None);
    };
    {
        let sink = Arc::clone(&sink);
        tokio::spawn(async move {
            while sigusr1.recv().await.is_some() {
                match sink.rotate() {
                    Ok(()) => tracing::info!("Log file rotated"),
                    Err(e) => tracing::error!(error = %e, "The log file could not be rotated"),
                }
            }
        });
    }

    // INITIALIZING: /progress answers while the persisted state is read.
    let options = ConnectOptions::default()
        .id(config.id.clone())
        .copy_workers(config.copy_workers());
    let attached = tokio::select! {
        r = AnySyncer::attach(&config.cluster0, &config.cluster1, options) => r,
        _ = sigterm.recv() => return stop(&app, &stop_server, server, "SIGTERM").await,
        _ = sigint.recv() => return stop(&app, &stop_server, server, "SIGINT").await,
    };
    let syncer = match attached {
        Ok(s) => s,
        Err(e) => {
            stop_server.notify_one();
            return fail(&e.to_string(), Some(e.code().as_str()));
        }
    };
    let state = syncer.state();
    let handle = syncer.handle();
    if state == SyncState::Idle {
        tracing::info!(
            state = state.as_str(),
            "Mongosync is ready: waiting for /start"
        );
    } else {
        tracing::info!(
            state = state.as_str(),
            "Resumed the sync persisted on the destination"
        );
    }
    app.install(syncer).await;
    tokio::spawn(log_progress(handle.clone()));

    let mut fatal = app.fatal();
    tokio::select! {
        _ = sigterm.recv() => stop(&app, &stop_server, server, "SIGTERM").await,
        _ = sigint.recv() => stop(&app, &stop_server, server, "SIGINT").await,
        e = stopped(handle) => {
            let code = fail(&e.to_string(), Some(e.code().as_str()));
            let _ = app.shutdown().await;
            code
        }
        _ = fatal.wait_for(|f| f.is_some()) => {
            let _ = app.shutdown().await;
            ExitCode::FAILURE
        }
    }
}

/// Waits until the sync stops on an error (mongosync then exits; a restart re-attaches).
async fn stopped(handle: SyncHandle) -> Error {
    loop {
        match handle.wait_for(|_| false).await {
            Err(e @ Error::Stopped(_)) => return e,
            // Cancelled: the syncer was shut down; nothing more to watch.
            _ => std::future::pending::<()>().await,
        }
    }
}

/// A graceful stop: the sync persists its positions, the server finishes its responses.
async fn stop(
    app: &App,
    stop_server: &tokio::sync::Notify,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    signal: &str,
) -> ExitCode {
    tracing::info!(signal, "Received a signal: shutting down gracefully");
    let result = app.shutdown().await;
    stop_server.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    match result {
        Ok(()) => {
            tracing::info!("Mongosync stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(
            &format!("the sync could not persist its positions: {e}"),
            Some(e.code().as_str()),
        ),
    }
}

/// The phase for mongosync's "Starting … phase" lines.
fn phase_line(info: &str) -> Option<&'static str> {
    Some(match info {
        "initializing collections and indexes" => {
            "Starting initializing collections and indexes phase"
        }
        "initializing partitions" => "Starting initializing partitions phase",
        "collection copy" => "Starting collection copy phase",
        "change event application" => "Starting change event application phase",
        "waiting for commit to complete" => "Starting commit phase",
        "commit completed" => "Commit completed",
        _ => return None,
    })
}

/// `numOperations`, `averageDurationMs` and `maximumDurationMs` of the batches written since
/// `prev`, as in mongosync's `Operation duration stats`. The maximum is the bucket bound that
/// holds every batch of the interval (capped by the interval's total time).
fn op_stats(prev: Option<&Batches>, now: &Batches) -> serde_json::Value {
    let (count0, secs0) = prev.map_or((0, 0.0), |p| (p.count, p.seconds));
    let n = now.count.saturating_sub(count0);
    let secs = (now.seconds - secs0).max(0.0);
    let cumulative_before = |bound: f64| {
        prev.and_then(|p| p.buckets.iter().find(|(b, _)| *b == bound))
            .map_or(0, |(_, c)| *c)
    };
    let bound = now
        .buckets
        .iter()
        .find(|(b, c)| c.saturating_sub(cumulative_before(*b)) >= n)
        .map_or(f64::INFINITY, |(b, _)| *b);
    let ms = |s: f64| (s * 1000.0 * 1000.0).round() / 1000.0;
    serde_json::json!({
        "numOperations": n,
        "averageDurationMs": if n == 0 { 0.0 } else { ms(secs / n as f64) },
        "maximumDurationMs": if n == 0 { 0.0 } else { ms(bound.min(secs)) },
    })
}

/// Logs `Operation duration stats` for the copy's and change application's destination
/// writes since the last call.
fn log_op_stats(handle: &SyncHandle, last: &mut Option<(Batches, Batches)>) {
    let m = handle.metrics();
    let (copy, apply) = match last {
        Some((c, a)) => (
            op_stats(Some(c), &m.copy_batches),
            op_stats(Some(a), &m.apply_batches),
        ),
        None => (
            op_stats(None, &m.copy_batches),
            op_stats(None, &m.apply_batches),
        ),
    };
    tracing::info!(
        CollectionCopyDestinationWrite_json = %copy,
        CEADestinationWrite_json = %apply,
        "Operation duration stats"
    );
    *last = Some((m.copy_batches, m.apply_batches));
}

/// Logs the state and phase transitions as they happen, and `Replication progress`
/// (`totalEventsApplied`, `lagTimeSeconds`) and `Operation duration stats` on entering change
/// event application and every [`PROGRESS_LOG_EVERY`] while RUNNING.
async fn log_progress(handle: SyncHandle) {
    let mut last_stats = None;
    let mut changes = Box::pin(handle.changes());
    let mut tick = tokio::time::interval(PROGRESS_LOG_EVERY);
    let (mut state, mut info): (Option<SyncState>, Option<String>) = (None, None);
    let replication = |p: &mongosync_core::Progress| {
        tracing::info!(
            componentName = "Change Event Application",
            totalEventsApplied = p.total_events_applied.unwrap_or(0),
            lagTimeSeconds = p.lag_time_seconds,
            "Replication progress"
        );
    };
    loop {
        tokio::select! {
            p = changes.next() => {
                let Some(p) = p else { return };
                if state != Some(p.state) {
                    if let Some(old) = state {
                        tracing::info!(oldState = old.as_str(), newState = p.state.as_str(), "Mongosync state changed");
                    }
                    state = Some(p.state);
                }
                if info != p.info {
                    let from = info.as_deref().unwrap_or("uninitialized");
                    let to = p.info.as_deref().unwrap_or("uninitialized");
                    tracing::debug!("Updating the in-memory phase from `{from}` to `{to}`.");
                    if let Some(line) = phase_line(to) {
                        tracing::info!(phase = to, "{line}");
                    }
                    if to == "change event application" {
                        replication(&p);
                        log_op_stats(&handle, &mut last_stats);
                    }
                    info = p.info.clone();
                }
            }
            _ = tick.tick() => {
                let p = handle.progress();
                if p.state == SyncState::Running && p.info.as_deref() == Some("change event application") {
                    replication(&p);
                }
                if p.state == SyncState::Running {
                    log_op_stats(&handle, &mut last_stats);
                }
            }
        }
    }
}
