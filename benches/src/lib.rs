//! Benchmark harnesses live as binaries of this crate.
