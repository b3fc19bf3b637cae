//! Change streams. [`token`] encodes and decodes resume tokens as a MongoDB 8.0 server does
//! (KeyString V1, upper-case hex, so that `_data` strings sort in event order); [`diff`]
//! computes an update event's `updateDescription` from the document before and after the
//! update, following the server's delta calculator; [`event`] builds events from oplog
//! entries; [`stream`] is the tailable cursor that serves them.

pub mod diff;
pub mod event;
pub mod stream;
pub mod token;
