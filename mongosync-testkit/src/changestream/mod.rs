//! Pure building blocks of the testkit's change streams: [`token`] encodes and decodes resume
//! tokens exactly as a MongoDB 8.0 server does (KeyString V1, upper-case hex, so that `_data`
//! strings sort in event order), and [`diff`] computes an update event's `updateDescription`
//! (and the `$v: 2` oplog diff it comes from) from the document before and after the update,
//! following the server's delta calculator and change-stream diff parser.

pub mod diff;
pub mod token;
