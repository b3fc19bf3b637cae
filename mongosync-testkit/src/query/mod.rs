//! The query engine: how the server compares, matches, projects, sorts, evaluates expressions,
//! updates documents and runs aggregation pipelines. Everything here is pure: it works on
//! `bson` values and knows nothing of collections, cursors or the network.

pub mod collation;
pub mod compare;
pub mod expr;
pub mod matcher;
pub mod path;
pub mod pipeline;
pub mod projection;
pub mod sort;
pub mod update;
