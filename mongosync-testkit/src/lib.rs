//! `mongosync-testkit`: an in-memory, wire-compatible MongoDB 8.0 replica set.
//!
//! Start one with [`MemoryCluster::start`]; connect any official driver to its
//! [`uri`](MemoryCluster::uri). The server speaks the real wire protocol (OP_MSG, and legacy
//! OP_QUERY for the handshake), answers as a single-member replica set primary named `rs0`,
//! and keeps everything in memory.
#![warn(missing_docs)]

pub mod error;
pub mod query;
