//! The REST API, byte-compatible with mongosync's (reference §2), plus `/metrics`, the
//! dashboard and its JSON.
//!
//! Transitions move the one [`AnySyncer`], held behind an async mutex; `/progress` and
//! `/metrics` read a [`SyncHandle`] and so answer at once in every state, also while a
//! transition or a commit runs. COMMITTING → COMMITTED and REVERSING → RUNNING run in a task
//! the [`App`] owns.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mongosync_core::{
    AnySyncer, AnyTransitionError, Error, ErrorCode, StartOptions, SyncHandle, SyncState,
};
use serde::Serialize;
use tokio::sync::{Mutex, watch};

use crate::metrics::MetricsRegistry;
use crate::redact::redact_text;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 256 * 1024;

/// Where the one syncer is.
enum Slot {
    /// The process is re-attaching to the persisted sync (mongosync's INITIALIZING).
    Initializing,
    /// Ready for a transition.
    Ready(AnySyncer),
    /// An automatic transition (COMMITTING → COMMITTED, REVERSING → RUNNING) holds it.
    Busy,
    /// Shut down.
    Closed,
}

/// The state of one `mongosync` server: the syncer, its handle, its metrics registry.
pub struct App {
    id: String,
    slot: Mutex<Slot>,
    handle: Arc<RwLock<Option<SyncHandle>>>,
    registry: MetricsRegistry,
    fatal: watch::Sender<Option<String>>,
    auto: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// Samples for the dashboard's chart: (unix seconds, lag, events applied).
    history: std::sync::Mutex<VecDeque<(f64, Option<i64>, u64)>>,
}

/// How often the dashboard's history is sampled, and how far back it goes.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const HISTORY_SAMPLES: usize = 300;

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "App({})", self.state_name())
    }
}

/// A transition asked over HTTP.
#[derive(Debug)]
enum Op {
    Start(Box<StartOptions>),
    Pause,
    Resume,
    Commit,
    Reverse,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Start(_) => "start",
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Commit => "commit",
            Op::Reverse => "reverse",
        }
    }

    fn allowed(&self) -> SyncState {
        match self {
            Op::Start(_) => SyncState::Idle,
            Op::Pause | Op::Commit => SyncState::Running,
            Op::Resume => SyncState::Paused,
            Op::Reverse => SyncState::Committed,
        }
    }
}

impl App {
    /// A server for instance `id` (`mongosyncID`) whose syncer is not there yet: it reports
    /// INITIALIZING until [`App::install`].
    pub fn new(id: impl Into<String>) -> Arc<App> {
        let handle = Arc::new(RwLock::new(None));
        Arc::new(App {
            id: id.into(),
            slot: Mutex::new(Slot::Initializing),
            registry: MetricsRegistry::new(Arc::clone(&handle)),
            handle,
            fatal: watch::channel(None).0,
            auto: std::sync::Mutex::new(None),
            history: std::sync::Mutex::new(VecDeque::new()),
        })
    }

    /// A server over `syncer`.
    pub async fn with_syncer(id: impl Into<String>, syncer: AnySyncer) -> Arc<App> {
        let app = App::new(id);
        app.install(syncer).await;
        app
    }

    /// Hands the syncer to the server (after `AnySyncer::attach`); a COMMITTING or
    /// REVERSING sync continues at once.
    pub async fn install(self: &Arc<Self>, syncer: AnySyncer) {
        let handle = syncer.handle();
        *self.handle.write().unwrap_or_else(|e| e.into_inner()) = Some(handle.clone());
        // The dashboard's lag chart covers the last minutes even on a page opened just now.
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            while handle.is_alive() {
                tick.tick().await;
                let Some(app) = app.upgrade() else { return };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let sample = (
                    now,
                    handle.progress().lag_time_seconds,
                    handle.metrics().events_applied,
                );
                let mut h = app.history.lock().unwrap_or_else(|e| e.into_inner());
                if h.len() == HISTORY_SAMPLES {
                    h.pop_front();
                }
                h.push_back(sample);
            }
        });
        let mut slot = self.slot.lock().await;
        self.place(&mut slot, syncer);
    }

    /// The handle of the sync, once installed.
    pub fn handle(&self) -> Option<SyncHandle> {
        self.handle
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The state's name as `/progress` shows it (`INITIALIZING` before the syncer is there).
    pub fn state_name(&self) -> &'static str {
        self.handle()
            .map(|h| h.state().as_str())
            .unwrap_or("INITIALIZING")
    }

    /// Changes to `Some(description)` when an automatic transition failed: as mongosync,
    /// the process should then exit (a restart re-attaches).
    pub fn fatal(&self) -> watch::Receiver<Option<String>> {
        self.fatal.subscribe()
    }

    /// Stops the sync gracefully (positions persisted). An automatic transition in flight is
    /// stopped as by a kill; the next process continues it.
    ///
    /// # Errors
    /// The engine could not persist its positions.
    pub async fn shutdown(&self) -> Result<(), Error> {
        if let Some(task) = self.auto.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        let mut slot = self.slot.lock().await;
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Ready(s) => s.shutdown().await,
            _ => Ok(()),
        }
    }

    /// Puts a syncer back in the slot, or hands it to the automatic-transition task.
    fn place(self: &Arc<Self>, slot: &mut Slot, syncer: AnySyncer) {
        if matches!(syncer.state(), SyncState::Committing | SyncState::Reversing) {
            *slot = Slot::Busy;
            let app = Arc::clone(self);
            let task = tokio::spawn(async move {
                let from = syncer.state();
                let result = syncer.wait().await;
                let mut slot = app.slot.lock().await;
                if matches!(*slot, Slot::Closed) {
                    return;
                }
                match result {
                    Ok(s) => {
                        tracing::info!(
                            oldState = from.as_str(),
                            newState = s.state().as_str(),
                            "Automatic transition completed"
                        );
                        *slot = Slot::Ready(s);
                    }
                    Err(AnyTransitionError { syncer, error }) => {
                        let msg = error.to_string();
                        tracing::error!(
                            fatal = true,
                            error = %msg,
                            code = error.code().as_str(),
                            "Got a fatal error running Mongosync"
                        );
                        *slot = Slot::Ready(syncer);
                        app.fatal.send_replace(Some(msg));
                    }
                }
            });
            *self.auto.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        } else {
            *slot = Slot::Ready(syncer);
        }
    }

    async fn transition(self: Arc<Self>, op: Op) -> Result<(), ApiError> {
        let mut slot = self.slot.lock().await;
        let syncer = match std::mem::replace(&mut *slot, Slot::Busy) {
            Slot::Ready(s) => s,
            other => {
                let state = match &other {
                    Slot::Initializing => "INITIALIZING",
                    Slot::Closed => "shut down",
                    _ => self.state_name(),
                };
                *slot = other;
                return Err(ApiError::new(
                    ErrorCode::InvalidState.as_str(),
                    format!(
                        "cannot {}: the sync is {state}; {} is allowed in {}",
                        op.name(),
                        op.name(),
                        op.allowed()
                    ),
                ));
            }
        };
        let name = op.name();
        let result = match op {
            Op::Start(o) => syncer.start(*o).await,
            Op::Pause => syncer.pause().await,
            Op::Resume => syncer.resume().await,
            Op::Commit => syncer.commit().await,
            Op::Reverse => syncer.reverse().await,
        };
        match result {
            Ok(s) => {
                tracing::info!(
                    operation = name,
                    state = s.state().as_str(),
                    "Transition done"
                );
                self.place(&mut slot, s);
                Ok(())
            }
            Err(AnyTransitionError { syncer, error }) => {
                self.place(&mut slot, syncer);
                Err(ApiError::from(&error))
            }
        }
    }
}

/// `{"success": false, "error": "<ErrorCode>", "errorDescription": "…"}`.
#[derive(Debug, Serialize)]
struct ApiError {
    success: bool,
    error: &'static str,
    #[serde(rename = "errorDescription")]
    error_description: String,
    #[serde(skip)]
    status: StatusCode,
}

impl ApiError {
    fn new(error: &'static str, description: impl Into<String>) -> ApiError {
        let status = match error {
            "InvalidOptions"
            | "InvalidState"
            | "NotReadyToCommit"
            | "DestinationNotEmpty"
            | "Unsupported"
            | "MetadataMismatch" => StatusCode::BAD_REQUEST,
            "NotFound" => StatusCode::NOT_FOUND,
            "MethodNotAllowed" => StatusCode::METHOD_NOT_ALLOWED,
            "PayloadTooLarge" => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            success: false,
            error,
            error_description: redact_text(&description.into()),
            status,
        }
    }
}

impl From<&Error> for ApiError {
    fn from(e: &Error) -> ApiError {
        ApiError::new(e.code().as_str(), e.to_string())
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&self).unwrap_or_default();
        json_response(self.status, body)
    }
}

fn success() -> Response {
    json_response(StatusCode::OK, r#"{"success":true}"#.into())
}

/// The field names of the `/start` body, matched case-insensitively as mongosync (Go's JSON
/// decoding) does.
const START_KEYS: &[&str] = &[
    "source",
    "destination",
    "includeNamespaces",
    "excludeNamespaces",
    "buildIndexes",
    "reversible",
    "enableUserWriteBlocking",
    "preExistingDestinationData",
    "database",
    "databaseRegex",
    "collections",
    "collectionsRegex",
    "pattern",
    "options",
];

/// Renames every key that matches a known field but for its case to that field's name.
fn normalise_keys(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let k = START_KEYS
                        .iter()
                        .find(|known| known.eq_ignore_ascii_case(&k))
                        .map_or(k, |known| (*known).to_string());
                    (k, normalise_keys(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalise_keys).collect()),
        other => other,
    }
}

/// The body as a JSON object; an empty body is `{}` when `empty_ok`.
async fn read_object(
    body: Body,
    empty_ok: bool,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        ApiError::new(
            "PayloadTooLarge",
            format!("the request body is larger than {BODY_LIMIT} bytes"),
        )
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::new("InvalidOptions", "the request body is not UTF-8 text"))?;
    if text.trim().is_empty() {
        return if empty_ok {
            Ok(serde_json::Map::new())
        } else {
            Err(ApiError::new(
                "InvalidOptions",
                "the request body is empty; send a JSON object such as {\"source\": \"cluster0\", \"destination\": \"cluster1\"}",
            ))
        };
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::new(
            "InvalidOptions",
            format!(
                "the request body must be a JSON object, not {}",
                match other {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            ),
        )),
        Err(e) => Err(ApiError::new(
            "InvalidOptions",
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

/// Runs a transition in a task the server owns: a client that hangs up does not drop it
/// half-way.
async fn run(app: Arc<App>, op: Op) -> Response {
    match tokio::spawn(app.transition(op)).await {
        Ok(Ok(())) => success(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => {
            ApiError::new("Internal", format!("the transition task failed: {e}")).into_response()
        }
    }
}

async fn start(State(app): State<Arc<App>>, body: Body) -> Response {
    let map = match read_object(body, false).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let body = normalise_keys(serde_json::Value::Object(map)).to_string();
    tracing::info!(options_json = %body, "Start options");
    match StartOptions::from_json(&body) {
        Ok(o) => run(app, Op::Start(Box::new(o))).await,
        Err(e) => ApiError::from(&e).into_response(),
    }
}

/// `/pause`, `/resume`, `/commit`, `/reverse`: the body, if any, must be an empty object.
async fn simple(app: Arc<App>, body: Body, op: Op) -> Response {
    match read_object(body, true).await {
        Ok(m) if m.is_empty() => run(app, op).await,
        Ok(m) => ApiError::new(
            "InvalidOptions",
            format!(
                "/{} takes no parameters (got {}); send an empty JSON object {{}}",
                op.name(),
                m.keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn pause(State(app): State<Arc<App>>, body: Body) -> Response {
    simple(app, body, Op::Pause).await
}
async fn resume(State(app): State<Arc<App>>, body: Body) -> Response {
    simple(app, body, Op::Resume).await
}
async fn commit(State(app): State<Arc<App>>, body: Body) -> Response {
    tracing::info!("Commit handler called");
    simple(app, body, Op::Commit).await
}
async fn reverse(State(app): State<Arc<App>>, body: Body) -> Response {
    simple(app, body, Op::Reverse).await
}

/// The `/progress` document of a process still re-attaching.
fn initializing_progress() -> serde_json::Value {
    serde_json::json!({
        "state": "INITIALIZING", "canCommit": false, "canWrite": null, "info": null,
        "lagTimeSeconds": null, "lag": null, "totalEventsApplied": null,
        "collectionCopy": null, "directionMapping": null, "source": null,
        "destination": null, "mongosyncID": null, "coordinatorID": null,
    })
}

fn progress_value(app: &App) -> serde_json::Value {
    match app.handle() {
        Some(h) => serde_json::to_value(h.progress()).unwrap_or_default(),
        None => initializing_progress(),
    }
}

async fn progress(State(app): State<Arc<App>>) -> Response {
    // The engine's field order, as mongosync's document.
    let progress = match app.handle() {
        Some(h) => serde_json::to_string(&h.progress()).unwrap_or_default(),
        None => initializing_progress().to_string(),
    };
    json_response(
        StatusCode::OK,
        format!(r#"{{"progress":{progress},"success":true}}"#),
    )
}

/// Extension: the progress, the engine's counters and the samples of the last minutes
/// (`history`: `[unix seconds, lagTimeSeconds, events applied]`) in one JSON document (the
/// dashboard reads it).
async fn metrics_json(State(app): State<Arc<App>>) -> Response {
    let metrics = app.handle().map(|h| h.metrics());
    let body = serde_json::json!({
        "progress": progress_value(&app),
        "metrics": metrics,
        "history": app.history.lock().unwrap_or_else(|e| e.into_inner()).iter().collect::<Vec<_>>(),
        "mongosyncID": app.id,
        "success": true,
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.registry.encode() {
        Ok(text) => {
            let mut r = (StatusCode::OK, text).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        Err(e) => {
            ApiError::new("Internal", format!("encoding the metrics failed: {e}")).into_response()
        }
    }
}

async fn dashboard() -> Response {
    let mut r = (StatusCode::OK, crate::dashboard::PAGE).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

const ENDPOINTS: &str = "POST /api/v1/start, GET /api/v1/progress, POST /api/v1/pause, POST /api/v1/resume, POST /api/v1/commit, POST /api/v1/reverse, GET /api/v1/metrics.json, GET /metrics, GET /";

async fn not_found(request: Request) -> Response {
    ApiError::new(
        "NotFound",
        format!(
            "no endpoint {} {}; the endpoints are {ENDPOINTS}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path();
    let allowed = if path.starts_with("/api/v1/progress")
        || path.starts_with("/api/v1/metrics.json")
        || path == "/metrics"
        || path == "/"
    {
        "GET"
    } else {
        "POST"
    };
    ApiError::new(
        "MethodNotAllowed",
        format!(
            "{} {path} is not allowed; use {allowed} {path}",
            request.method()
        ),
    )
    .into_response()
}

/// mongosync's `Received request` / `sent response` lines, with the fields MongoDB's log
/// analysers read: `uri`, the request's `body` and the JSON response's `body` (as strings).
/// The polled GETs log at debug level.
async fn log_requests(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().path().to_string();
    let (parts, body) = request.into_parts();
    // The limit is checked here already, so that an oversized body is never buffered whole.
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return ApiError::new(
            "PayloadTooLarge",
            format!("the request body is larger than {BODY_LIMIT} bytes"),
        )
        .into_response();
    };
    let request_body = String::from_utf8_lossy(&bytes).into_owned();
    let request = Request::from_parts(parts, Body::from(bytes));
    let quiet = method == Method::GET;
    if quiet {
        tracing::debug!(method = %method, uri = %uri, "Received request");
    } else {
        tracing::info!(method = %method, uri = %uri, body = %request_body, "Received request");
    }
    let began = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = began.elapsed().as_millis() as u64;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !json {
        tracing::debug!(method = %method, uri = %uri, status, durationMS = ms, "sent response");
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let response_body = String::from_utf8_lossy(&bytes).into_owned();
    if quiet {
        tracing::debug!(method = %method, uri = %uri, status, durationMS = ms, body = %response_body, "sent response");
    } else {
        tracing::info!(method = %method, uri = %uri, status, durationMS = ms, body = %response_body, "sent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The HTTP API of `app`: mongosync's six endpoints, `/metrics`, `/api/v1/metrics.json` and
/// the dashboard at `/`. Embedding applications mount it on their own server.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/start", post(start))
        .route("/api/v1/progress", get(progress))
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
        .route("/api/v1/commit", post(commit))
        .route("/api/v1/reverse", post(reverse))
        .route("/api/v1/metrics.json", get(metrics_json))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_requests))
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_without_case_at_every_level() {
        let v = normalise_keys(serde_json::json!({
            "Source": "cluster0", "DESTINATION": "cluster1",
            "IncludeNamespaces": [{"Database": "a", "CollectionsRegex": {"Pattern": "^x"}}],
            "unknownKey": 1,
        }));
        assert_eq!(
            v,
            serde_json::json!({
                "source": "cluster0", "destination": "cluster1",
                "includeNamespaces": [{"database": "a", "collectionsRegex": {"pattern": "^x"}}],
                "unknownKey": 1,
            })
        );
    }

    #[test]
    fn error_shape_is_mongosyncs() {
        let e = ApiError::new("InvalidState", "x");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"success":false,"error":"InvalidState","errorDescription":"x"}"#
        );
    }
}
