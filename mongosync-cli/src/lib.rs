//! The `mongosync` command as a library: its configuration, its JSON logs, and the HTTP API
//! ([`router`]) that embedding applications can mount on their own server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mongosync_core::{AnySyncer, ConnectOptions};
//! let syncer = AnySyncer::attach("mongodb://a/", "mongodb://b/", ConnectOptions::default()).await?;
//! let app = mongosync_cli::App::with_syncer("coordinator", syncer).await;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:27182").await?;
//! axum::serve(listener, mongosync_cli::router(app)).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod command;
pub mod config;
pub mod dashboard;
pub mod log;
pub mod metrics;
pub mod redact;
pub mod server;

pub use server::{App, router};
