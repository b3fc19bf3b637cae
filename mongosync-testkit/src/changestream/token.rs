//! Resume tokens (stub: replaced by the real implementation).
use bson::{Document, Timestamp};
use crate::error::{CommandError, Result};
/// Token kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType { /// HWM
 HighWaterMark, /// event
 Event }
/// Decoded token.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeTokenData { /// ts
 pub cluster_time: Timestamp, /// v
 pub version: i32, /// type
 pub token_type: TokenType, /// idx
 pub txn_op_index: u32, /// inv
 pub from_invalidate: bool, /// uuid
 pub uuid: Option<bson::Uuid>, /// id
 pub event_identifier: Option<Document>, /// frag
 pub fragment_num: Option<i32> }
impl ResumeTokenData {
    /// HWM.
    pub fn high_water_mark(ts: Timestamp) -> Self { ResumeTokenData { cluster_time: ts, version: 2, token_type: TokenType::HighWaterMark, txn_op_index: 0, from_invalidate: false, uuid: None, event_identifier: None, fragment_num: None } }
    /// Encode.
    pub fn encode(&self) -> Document { let _ = self; todo!() }
    /// Decode.
    pub fn decode(token: &Document) -> Result<ResumeTokenData> { let _ = token; Err(CommandError::new(1, "todo")) }
}
