//! `mongosync-core`: the engine of an open-source reimplementation of MongoDB's `mongosync`.
#![warn(missing_docs)]

pub mod error;

pub use error::{Error, Result};
