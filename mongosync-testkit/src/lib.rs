//! `mongosync-testkit`: an in-memory, wire-compatible MongoDB 8.0 replica set.
//!
//! Start one with [`MemoryCluster::start`]; connect any official driver to its
//! [`uri`](MemoryCluster::uri). The server speaks the real wire protocol (OP_MSG, and legacy
//! OP_QUERY for the handshake), answers as a single-member replica set primary named `rs0`,
//! and keeps everything in memory.
//!
//! The way of a command through the crate: [`wire`] frames it, `server` runs it on its own
//! task, `commands` dispatches it to its handler, which reads and writes [`storage`] using the
//! pure [`query`] engine.
#![warn(missing_docs)]
// A command error carries the whole error reply (labels, extra fields); it travels only on the
// failure path, where its size costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod changestream;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod cursor;
pub mod error;
pub mod failpoint;
pub mod oplog;
pub mod query;
pub mod server;
pub mod session;
mod snapshot;
pub mod storage;
pub mod transaction;
mod ttl;
pub mod util;
pub mod wire;

pub use cluster::{AuthOptions, ClusterOptions, MemoryCluster, ServerVersion};
pub use error::CommandError;
