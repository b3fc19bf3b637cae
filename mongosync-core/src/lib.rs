//! `mongosync-core`: the engine of an open-source reimplementation of MongoDB's `mongosync`
//! (Cluster-to-Cluster Sync).
//!
//! A [`Syncer`] copies every collection in scope from a source cluster to a destination,
//! applies the source's change events until you commit, then cuts over. Its state is a type
//! parameter, so illegal transitions do not compile; [`AnySyncer`] is the runtime view.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mongosync_core::{ClusterName, ConnectOptions, StartOptions, Syncer};
//! let idle = Syncer::connect("mongodb://a:27017/?replicaSet=rs0", "mongodb://b:27017/?replicaSet=rs1",
//!                            ConnectOptions::default()).await?;
//! let running = idle.start(StartOptions::new(ClusterName::Cluster0)).await?;
//! // Watch from another task while the syncer moves through its transitions.
//! let handle = running.handle();
//! tokio::spawn(async move {
//!     let mut rx = handle.subscribe();
//!     while rx.changed().await.is_ok() {
//!         let p = rx.borrow_and_update().clone();
//!         println!("{} canCommit={} {:?}", p.state, p.can_commit, handle.metrics().events_applied);
//!     }
//! });
//! running.wait_can_commit().await?;
//! let committed = running.commit().await?.wait().await?;
//! println!("{}", serde_json::to_string_pretty(&committed.progress())?);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
// Errors carry the driver's error as their cause; they are rare, so their size does not matter.
#![allow(clippy::result_large_err)]

mod any;
mod engine;
pub mod error;
mod handle;
pub mod metrics;
pub mod namespace;
pub mod options;
pub mod progress;
mod syncer;

pub use any::{AnySyncer, AnyTransition, AnyTransitionError};
pub use error::{DriverError, Error, ErrorCode, Result};
pub use handle::SyncHandle;
pub use metrics::{Batches, Metrics, NamespaceCopy};
pub use namespace::{Namespace, NamespaceFilter, RegexSpec};
pub use options::{BuildIndexes, ClusterName, ConnectOptions, StartOptions, WriteBlocking};
pub use progress::{Progress, SyncState};
pub use syncer::{
    Committed, Committing, Idle, Paused, Reversing, Running, State, Syncer, Transition,
    TransitionError,
};
