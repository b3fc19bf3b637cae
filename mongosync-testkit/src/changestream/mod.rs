//! Change streams: resume tokens, update descriptions, events built from the oplog, and the
//! tailable cursor that serves them.

pub mod diff;
pub mod event;
pub mod stream;
pub mod token;
