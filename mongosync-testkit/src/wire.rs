//! The MongoDB wire protocol: message framing, OP_MSG, and the legacy OP_QUERY/OP_REPLY pair
//! that drivers still use for the first `hello` on a connection.

use bson::{Document, RawDocumentBuf};
use tokio::io::{AsyncRead, AsyncReadExt};

/// OP_REPLY, the answer to an OP_QUERY.
pub const OP_REPLY: i32 = 1;
/// OP_QUERY (handshake only since server 5.1).
pub const OP_QUERY: i32 = 2004;
/// OP_COMPRESSED (never negotiated: hello advertises no compressor).
pub const OP_COMPRESSED: i32 = 2012;
/// OP_MSG, every command.
pub const OP_MSG: i32 = 2013;

/// The largest message the server accepts (`maxMessageSizeBytes`).
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;
/// The largest BSON document (`maxBsonObjectSize`).
pub const MAX_BSON_SIZE: usize = 16 * 1024 * 1024;

const CHECKSUM_PRESENT: u32 = 1;
const MORE_TO_COME: u32 = 1 << 1;
const EXHAUST_ALLOWED: u32 = 1 << 16;
/// Bits 0-15 are required: an unknown one set means the message cannot be understood.
const KNOWN_REQUIRED_FLAGS: u32 = CHECKSUM_PRESENT | MORE_TO_COME;

/// The 16-byte header of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The whole message's length, header included.
    pub length: i32,
    /// The sender's id for this message.
    pub request_id: i32,
    /// The request this message answers (0 in requests).
    pub response_to: i32,
    /// The opcode.
    pub op_code: i32,
}

/// A request as the command layer sees it.
#[derive(Debug)]
pub enum Request {
    /// An OP_MSG command: its body (kind-0 section) and document sequences (kind-1).
    Msg {
        /// The command document.
        body: RawDocumentBuf,
        /// Each kind-1 section: its identifier and documents.
        sequences: Vec<(String, Vec<RawDocumentBuf>)>,
        /// `moreToCome`: the client expects no reply.
        more_to_come: bool,
        /// `exhaustAllowed`: the server may stream replies (awaitable hello).
        exhaust_allowed: bool,
    },
    /// A legacy OP_QUERY command on `<db>.$cmd`.
    Query {
        /// The full collection name, e.g. `admin.$cmd`.
        full_collection_name: String,
        /// The query document (a command, possibly wrapped in `$query`).
        query: RawDocumentBuf,
    },
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed or was closed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The framing is broken: the connection must be closed (as a real server does).
    #[error("{0}")]
    Fatal(String),
    /// The message was framed correctly but its content is invalid: the server answers with
    /// an error (code, message) and keeps the connection.
    #[error("{1}")]
    Invalid(i32, String, Header),
}

/// Reads one message: `Ok(None)` on a clean end of stream before a header.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<(Header, Request)>, WireError> {
    let mut head = [0u8; 16];
    match reader.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let header = Header {
        length: i32::from_le_bytes(head[0..4].try_into().expect("4 bytes")),
        request_id: i32::from_le_bytes(head[4..8].try_into().expect("4 bytes")),
        response_to: i32::from_le_bytes(head[8..12].try_into().expect("4 bytes")),
        op_code: i32::from_le_bytes(head[12..16].try_into().expect("4 bytes")),
    };
    if header.length < 16 || header.length as usize > MAX_MESSAGE_SIZE {
        return Err(WireError::Fatal(format!(
            "message length {} is outside the allowed range 16..={MAX_MESSAGE_SIZE}",
            header.length
        )));
    }
    let mut body = vec![0u8; header.length as usize - 16];
    reader.read_exact(&mut body).await?;
    let request = match header.op_code {
        OP_MSG => parse_msg(&header, &head, &body)?,
        OP_QUERY => parse_query(&header, &body)?,
        // Legacy write/read opcodes were removed in 5.1 and OP_COMPRESSED is never
        // negotiated: the server closes the connection.
        other => return Err(WireError::Fatal(format!("unsupported opcode {other}"))),
    };
    Ok(Some((header, request)))
}

fn invalid(header: &Header, code: i32, msg: impl Into<String>) -> WireError {
    WireError::Invalid(code, msg.into(), *header)
}

fn parse_msg(header: &Header, head: &[u8; 16], body: &[u8]) -> Result<Request, WireError> {
    if body.len() < 5 {
        return Err(WireError::Fatal("OP_MSG too short".into()));
    }
    let flags = u32::from_le_bytes(body[0..4].try_into().expect("4 bytes"));
    if flags & 0xffff & !KNOWN_REQUIRED_FLAGS != 0 {
        return Err(invalid(
            header,
            40632,
            format!("Unrecognized required flags in OP_MSG: {flags:#x}"),
        ));
    }
    let mut end = body.len();
    if flags & CHECKSUM_PRESENT != 0 {
        if body.len() < 9 {
            return Err(WireError::Fatal("OP_MSG too short for its checksum".into()));
        }
        end -= 4;
        let expected = u32::from_le_bytes(body[end..].try_into().expect("4 bytes"));
        let actual = crc32c::crc32c_append(crc32c::crc32c(head), &body[..end]);
        if expected != actual {
            return Err(WireError::Fatal("OP_MSG checksum mismatch".into()));
        }
    }
    let mut pos = 4;
    let mut command: Option<RawDocumentBuf> = None;
    let mut sequences = Vec::new();
    while pos < end {
        let kind = body[pos];
        pos += 1;
        match kind {
            0 => {
                let doc = read_document(header, body, &mut pos, end)?;
                if command.is_some() {
                    return Err(invalid(header, 40430, "Multiple body sections in message"));
                }
                command = Some(doc);
            }
            1 => {
                if pos + 4 > end {
                    return Err(invalid(
                        header,
                        40431,
                        "Document sequence section truncated",
                    ));
                }
                let size = i32::from_le_bytes(body[pos..pos + 4].try_into().expect("4 bytes"));
                if size < 5 || pos + size as usize > end {
                    return Err(invalid(header, 40431, "Invalid document sequence size"));
                }
                let section_end = pos + size as usize;
                pos += 4;
                let name_end = body[pos..section_end]
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| {
                        invalid(header, 40431, "Document sequence identifier not terminated")
                    })?;
                let name = String::from_utf8_lossy(&body[pos..pos + name_end]).into_owned();
                pos += name_end + 1;
                let mut docs = Vec::new();
                while pos < section_end {
                    docs.push(read_document(header, body, &mut pos, section_end)?);
                }
                sequences.push((name, docs));
            }
            other => {
                return Err(invalid(
                    header,
                    40432,
                    format!("Unknown section kind {other}"),
                ));
            }
        }
    }
    let body_doc = command.ok_or_else(|| invalid(header, 40587, "OP_MSG requires a body"))?;
    for (name, _) in &sequences {
        if body_doc.get(name).ok().flatten().is_some() {
            return Err(invalid(
                header,
                40433,
                format!("Duplicate field {name} in OP_MSG"),
            ));
        }
    }
    Ok(Request::Msg {
        body: body_doc,
        sequences,
        more_to_come: flags & MORE_TO_COME != 0,
        exhaust_allowed: flags & EXHAUST_ALLOWED != 0,
    })
}

fn read_document(
    header: &Header,
    buf: &[u8],
    pos: &mut usize,
    end: usize,
) -> Result<RawDocumentBuf, WireError> {
    if *pos + 4 > end {
        return Err(invalid(header, 22, "BSON document truncated"));
    }
    let len = i32::from_le_bytes(buf[*pos..*pos + 4].try_into().expect("4 bytes"));
    if len < 5 || *pos + len as usize > end {
        return Err(invalid(
            header,
            22,
            format!("invalid BSON document length {len}"),
        ));
    }
    if len as usize > MAX_BSON_SIZE + 16 * 1024 {
        return Err(invalid(
            header,
            10334,
            format!("BSONObj size: {len} is invalid"),
        ));
    }
    let bytes = buf[*pos..*pos + len as usize].to_vec();
    *pos += len as usize;
    let doc = RawDocumentBuf::from_bytes(bytes)
        .map_err(|e| invalid(header, 22, format!("invalid BSON: {e}")))?;
    validate(&doc).map_err(|e| invalid(header, 22, format!("invalid BSON: {e}")))?;
    Ok(doc)
}

/// Walks every element so that malformed BSON is rejected at the door, not deep in a handler.
fn validate(doc: &bson::RawDocument) -> Result<(), bson::error::Error> {
    for elem in doc.iter() {
        let (_, value) = elem?;
        match value {
            bson::RawBsonRef::Document(d) => validate(d)?,
            bson::RawBsonRef::Array(a) => {
                for v in a.into_iter() {
                    match v? {
                        bson::RawBsonRef::Document(d) => validate(d)?,
                        bson::RawBsonRef::Array(inner) => {
                            for w in inner.into_iter() {
                                if let bson::RawBsonRef::Document(d) = w? {
                                    validate(d)?;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_query(header: &Header, body: &[u8]) -> Result<Request, WireError> {
    if body.len() < 4 {
        return Err(WireError::Fatal("OP_QUERY too short".into()));
    }
    let mut pos = 4;
    let name_end = body[pos..]
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| WireError::Fatal("OP_QUERY collection name not terminated".into()))?;
    let full_collection_name = String::from_utf8_lossy(&body[pos..pos + name_end]).into_owned();
    pos += name_end + 1 + 8; // numberToSkip, numberToReturn
    if pos > body.len() {
        return Err(WireError::Fatal("OP_QUERY too short".into()));
    }
    let query = read_document(header, body, &mut pos, body.len())?;
    Ok(Request::Query {
        full_collection_name,
        query,
    })
}

/// Encodes an OP_MSG reply: one kind-0 section, no flags (drivers reject anything else).
pub fn encode_msg_reply(request_id: i32, response_to: i32, body: &bson::RawDocument) -> Vec<u8> {
    encode_msg_reply_flags(request_id, response_to, body, false)
}

/// Encodes an OP_MSG reply, flagged `moreToCome` when more replies follow unasked (the
/// streaming protocol of the awaitable hello).
pub fn encode_msg_reply_flags(
    request_id: i32,
    response_to: i32,
    body: &bson::RawDocument,
    more_to_come: bool,
) -> Vec<u8> {
    let bytes = body.as_bytes();
    let len = 16 + 4 + 1 + bytes.len();
    let mut out = Vec::with_capacity(len);
    push_header(&mut out, len, request_id, response_to, OP_MSG);
    out.extend_from_slice(&(if more_to_come { MORE_TO_COME } else { 0 }).to_le_bytes());
    out.push(0);
    out.extend_from_slice(bytes);
    out
}

/// The header, flags and section kind of an OP_MSG reply whose body (`body_len` bytes) is
/// written after it: a large reply (a batch) is sent as is rather than copied behind them.
pub fn encode_msg_head(request_id: i32, response_to: i32, body_len: usize) -> [u8; 21] {
    let mut out = [0u8; 21];
    let len = (16 + 4 + 1 + body_len) as i32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&request_id.to_le_bytes());
    out[8..12].copy_from_slice(&response_to.to_le_bytes());
    out[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
    // flags 0 (bytes 16..20), section kind 0 (byte 20)
    out
}

/// Encodes an OP_REPLY holding one document, with the AwaitCapable flag as real servers send.
pub fn encode_op_reply(request_id: i32, response_to: i32, body: &bson::RawDocument) -> Vec<u8> {
    let bytes = body.as_bytes();
    let len = 16 + 4 + 8 + 4 + 4 + bytes.len();
    let mut out = Vec::with_capacity(len);
    push_header(&mut out, len, request_id, response_to, OP_REPLY);
    out.extend_from_slice(&8i32.to_le_bytes());
    out.extend_from_slice(&0i64.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&1i32.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

fn push_header(out: &mut Vec<u8>, len: usize, request_id: i32, response_to: i32, op: i32) {
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op.to_le_bytes());
}

/// Converts a raw document into an owned one (commands are small; the hot paths stay raw).
pub fn to_document(raw: &bson::RawDocument) -> Result<Document, bson::error::Error> {
    raw.try_into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    fn msg(flags: u32, sections: &[u8], checksum: bool) -> Vec<u8> {
        let mut body = flags.to_le_bytes().to_vec();
        body.extend_from_slice(sections);
        let len = 16 + body.len() + if checksum { 4 } else { 0 };
        let mut out = Vec::new();
        push_header(&mut out, len, 7, 0, OP_MSG);
        out.extend_from_slice(&body);
        if checksum {
            let c = crc32c::crc32c(&out);
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    #[tokio::test]
    async fn parses_body_and_sequences_with_checksum() {
        let body = rawdoc! {"insert": "c", "$db": "d"};
        let d1 = rawdoc! {"_id": 1};
        let mut sections = vec![0u8];
        sections.extend_from_slice(body.as_bytes());
        sections.push(1);
        let size = 4 + "documents\0".len() + d1.as_bytes().len();
        sections.extend_from_slice(&(size as i32).to_le_bytes());
        sections.extend_from_slice(b"documents\0");
        sections.extend_from_slice(d1.as_bytes());
        let bytes = msg(CHECKSUM_PRESENT, &sections, true);
        let (header, req) = read_message(&mut bytes.as_slice()).await.unwrap().unwrap();
        assert_eq!(header.request_id, 7);
        match req {
            Request::Msg {
                body,
                sequences,
                more_to_come,
                ..
            } => {
                assert_eq!(body.get_str("insert").unwrap(), "c");
                assert_eq!(sequences.len(), 1);
                assert_eq!(sequences[0].0, "documents");
                assert!(!more_to_come);
            }
            _ => panic!("expected OP_MSG"),
        }
    }

    #[tokio::test]
    async fn rejects_bad_checksum_and_lengths() {
        let body = rawdoc! {"ping": 1, "$db": "admin"};
        let mut sections = vec![0u8];
        sections.extend_from_slice(body.as_bytes());
        let mut bytes = msg(CHECKSUM_PRESENT, &sections, true);
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        assert!(matches!(
            read_message(&mut bytes.as_slice()).await,
            Err(WireError::Fatal(_))
        ));

        let mut huge = Vec::new();
        push_header(&mut huge, 60_000_000, 1, 0, OP_MSG);
        assert!(matches!(
            read_message(&mut huge.as_slice()).await,
            Err(WireError::Fatal(_))
        ));
    }

    #[test]
    fn a_head_then_its_body_is_the_whole_reply() {
        let body = rawdoc! {"ok": 1.0, "n": 3};
        let mut split = encode_msg_head(9, 4, body.as_bytes().len()).to_vec();
        split.extend_from_slice(body.as_bytes());
        assert_eq!(split, encode_msg_reply(9, 4, &body));
    }

    #[tokio::test]
    async fn invalid_bson_is_an_error_reply_not_a_crash() {
        let mut sections = vec![0u8];
        sections.extend_from_slice(&[12, 0, 0, 0, 0x10, b'a', 0, 1, 0, 0, 0, 0]);
        sections[5] = 0x7f; // unknown element type
        let bytes = msg(0, &sections, false);
        assert!(matches!(
            read_message(&mut bytes.as_slice()).await,
            Err(WireError::Invalid(22, _, _))
        ));
    }
}
