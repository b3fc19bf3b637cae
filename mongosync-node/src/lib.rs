//! The native module of the `mongosync` npm package (napi-rs). It is private: users import
//! the hand-written TypeScript layer (`src/*.ts`), which gives each state its own class and
//! rethrows errors as typed `MongosyncError`s. Files are named after the core's modules.
//!
//! Two rules hold everywhere: no panic reaches Node (sync functions use `catch_unwind`, async
//! ones run their work in tokio tasks whose panics become `[Internal]` errors), and every
//! transition runs in a task this module owns, so a promise JavaScript drops never cancels a
//! transition half-way (TOOLCHAIN.md pitfall 5).
#![deny(clippy::all)]
#![allow(clippy::result_large_err)]

pub mod any;
pub mod error;
pub mod handle;
pub mod options;
pub mod progress;
pub mod syncer;
pub mod testkit;
