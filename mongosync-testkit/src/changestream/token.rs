//! Change-stream resume tokens: `{_data: "<hex>", _typeBits?: BinData(0)}`.
//!
//! `_data` is the upper-case hex of a KeyString V1 encoding of the sequence (clusterTime,
//! version, tokenType, txnOpIndex, fromInvalidate, uuid-or-null, eventIdentifier[,
//! fragmentNum]) followed by the end byte `0x04`, exactly as the server's `ResumeToken` builds
//! it. Because KeyString is order-preserving, comparing `_data` strings orders tokens by
//! (clusterTime, version, tokenType, txnOpIndex, ...), which drivers and the conformance tests
//! rely on (the tests even rewrite the timestamp's hex digits to build a "pre-oplog" token).
//!
//! Every BSON type is encoded as KeyString V1 does it, type bits included (`_typeBits` is only
//! present when a numeric value is not an int32, or a string is a symbol), with one exception:
//! Decimal128 uses a private, decodable encoding (ctype `0x37` followed by the 16 raw bytes, no
//! type bits), because the real decimal encoding needs decimal arithmetic. Tokens holding a
//! decimal `_id` are therefore not byte-identical to a real server's, but still round-trip.
#![allow(clippy::result_large_err)]

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, JavaScriptCodeWithScope, Regex, Timestamp};

use crate::error::{CommandError, Result, codes};

/// Which kind of token: an event's `_id`, or a high-water mark (`postBatchResumeToken` of an
/// empty batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// Encoded as 0: sorts before any event token at the same cluster time.
    HighWaterMark,
    /// Encoded as 128.
    Event,
}

impl TokenType {
    /// The integer the server encodes.
    pub fn as_i32(self) -> i32 {
        match self {
            TokenType::HighWaterMark => 0,
            TokenType::Event => 128,
        }
    }
}

/// The decoded content of a resume token (the server's `ResumeTokenData`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeTokenData {
    /// The event's (or high-water mark's) cluster time.
    pub cluster_time: Timestamp,
    /// Token format version: 2 on current servers (0 and 1 are accepted when decoding).
    pub version: i32,
    /// Event or high-water mark.
    pub token_type: TokenType,
    /// Position inside a transaction or batched write (0 otherwise).
    pub txn_op_index: u32,
    /// Whether this is the token of an `invalidate` event.
    pub from_invalidate: bool,
    /// The collection UUID, when the event has one (v2 encodes its absence as null).
    pub uuid: Option<bson::Uuid>,
    /// v2: `{operationType, documentKey}` or `{operationType, operationDescription}`;
    /// v1: the `documentKey`.
    pub event_identifier: Option<Document>,
    /// Fragment number of a `$changeStreamSplitLargeEvent` fragment.
    pub fragment_num: Option<i32>,
}

impl ResumeTokenData {
    /// A version 2 high-water-mark token at `ts`.
    pub fn high_water_mark(ts: Timestamp) -> Self {
        ResumeTokenData {
            cluster_time: ts,
            version: 2,
            token_type: TokenType::HighWaterMark,
            txn_op_index: 0,
            from_invalidate: false,
            uuid: None,
            event_identifier: None,
            fragment_num: None,
        }
    }

    /// A version 2 event token.
    pub fn event(
        cluster_time: Timestamp,
        txn_op_index: u32,
        uuid: Option<bson::Uuid>,
        event_identifier: Document,
    ) -> Self {
        ResumeTokenData {
            cluster_time,
            version: 2,
            token_type: TokenType::Event,
            txn_op_index,
            from_invalidate: false,
            uuid,
            event_identifier: Some(event_identifier),
            fragment_num: None,
        }
    }

    /// The token of the `invalidate` event that follows the event with this token: the same
    /// data with `fromInvalidate` set (as the server's `DocumentSourceCheckInvalidate` does).
    pub fn invalidate_of(&self) -> Self {
        ResumeTokenData {
            from_invalidate: true,
            ..self.clone()
        }
    }

    /// Whether this is a high-water-mark token (the server's `isHighWaterMarkToken`: equal to
    /// the HWM token of its own cluster time and version).
    pub fn is_high_water_mark(&self) -> bool {
        self.token_type == TokenType::HighWaterMark
            && self.txn_op_index == 0
            && !self.from_invalidate
            && self.uuid.is_none()
            && self.event_identifier.is_none()
            && self.fragment_num.is_none()
    }

    /// The values encoded in the KeyString, in order (the server's `ResumeToken(data)`).
    fn key_values(&self) -> Vec<Bson> {
        let mut values = vec![
            Bson::Timestamp(self.cluster_time),
            Bson::Int32(self.version),
        ];
        if self.version >= 1 {
            values.push(Bson::Int32(self.token_type.as_i32()));
        }
        // `appendNumber(long long)` stores an int32 whenever the value fits.
        values.push(match i32::try_from(self.txn_op_index) {
            Ok(v) => Bson::Int32(v),
            Err(_) => Bson::Int64(i64::from(self.txn_op_index)),
        });
        if self.version >= 1 {
            values.push(Bson::Boolean(self.from_invalidate));
        }
        match self.uuid {
            Some(uuid) => values.push(Bson::Binary(Binary {
                subtype: BinarySubtype::Uuid,
                bytes: uuid.bytes().to_vec(),
            })),
            None if self.version >= 2 => values.push(Bson::Null),
            None => {}
        }
        if let Some(id) = &self.event_identifier {
            values.push(Bson::Document(id.clone()));
        }
        if let Some(n) = self.fragment_num {
            values.push(Bson::Int32(n));
        }
        values
    }

    /// The token document: `{_data: "<UPPER HEX>"}`, plus `_typeBits` only when the type bits
    /// are not all zero (as the server does).
    pub fn encode(&self) -> Document {
        let mut w = KsWriter::default();
        for v in self.key_values() {
            w.value(&v);
        }
        w.buf.push(K_END);
        let mut token = Document::new();
        token.insert("_data", hex_upper(&w.buf));
        if let Some(bits) = w.bits.serialize() {
            token.insert(
                "_typeBits",
                Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: bits,
                },
            );
        }
        token
    }

    /// The `_data` string alone (token equality and ordering are decided on it).
    pub fn data_string(&self) -> String {
        match self.encode().get("_data") {
            Some(Bson::String(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// Parses a token document with the server's checks and error codes.
    pub fn decode(token: &Document) -> Result<ResumeTokenData> {
        let data = match token.get("_data") {
            Some(Bson::String(s)) => s,
            _ => {
                return Err(CommandError::new(
                    40647,
                    format!(
                        "Bad resume token: _data of missing or of wrong type. Expected string, got {token}"
                    ),
                ));
            }
        };
        let type_bits = match token.get("_typeBits") {
            None => None,
            Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Generic => Some(b.bytes.clone()),
            Some(_) => {
                return Err(CommandError::new(
                    40648,
                    format!("Bad resume token: _typeBits of wrong type {token}"),
                ));
            }
        };
        let bits = TypeBitsReader::parse(type_bits.as_deref().unwrap_or(&[]))?;
        let bytes = hex_decode(data).ok_or_else(|| {
            CommandError::failed_to_parse("resume token string was not a valid hex string")
        })?;
        let mut r = KsReader {
            buf: &bytes,
            pos: 0,
            bits,
        };
        let mut values = Vec::new();
        while r.pos < r.buf.len() {
            let ctype = r.byte()?;
            if ctype == K_END {
                break;
            }
            values.push(r.value(ctype, 0)?);
        }
        Self::from_values(values)
    }

    /// The server's `ResumeToken::getData()` checks over the decoded values.
    fn from_values(values: Vec<Bson>) -> Result<ResumeTokenData> {
        let mut it = values.into_iter().peekable();
        let cluster_time = match it.next() {
            None => return Err(CommandError::new(40649, "invalid empty resume token")),
            Some(Bson::Timestamp(ts)) => ts,
            Some(Bson::DateTime(d)) => {
                let v = d.timestamp_millis() as u64;
                Timestamp {
                    time: (v >> 32) as u32,
                    increment: v as u32,
                }
            }
            Some(_) => Timestamp {
                time: 0,
                increment: 0,
            },
        };
        let version = match it.next() {
            None => {
                return Err(CommandError::new(
                    50796,
                    "Resume Token does not contain version",
                ));
            }
            Some(Bson::Int32(v)) => v,
            Some(_) => {
                return Err(CommandError::new(
                    50854,
                    "Invalid resume token: wrong type for version",
                ));
            }
        };
        if !(0..=2).contains(&version) {
            return Err(CommandError::new(
                50795,
                "Invalid Resume Token: only supports version 0, 1 and 2",
            ));
        }
        let mut token_type = TokenType::Event;
        if version >= 1 {
            token_type = match it.next() {
                None => {
                    return Err(CommandError::new(
                        51055,
                        "Resume Token does not contain tokenType",
                    ));
                }
                Some(Bson::Int32(128)) => TokenType::Event,
                Some(Bson::Int32(0)) => TokenType::HighWaterMark,
                Some(Bson::Int32(t)) => {
                    return Err(CommandError::new(
                        51057,
                        format!("Token type {t} not recognized"),
                    ));
                }
                Some(_) => {
                    return Err(CommandError::new(
                        51056,
                        "Resume Token tokenType is not an int.",
                    ));
                }
            };
        }
        let txn_op_index = match it.next() {
            None => {
                return Err(CommandError::new(
                    50793,
                    "Resume Token does not contain txnOpIndex",
                ));
            }
            Some(Bson::Int32(i)) if i >= 0 => i as u32,
            Some(Bson::Int32(_)) => {
                return Err(CommandError::new(
                    50794,
                    "Invalid Resume Token: txnOpIndex should be non-negative",
                ));
            }
            Some(_) => {
                return Err(CommandError::new(
                    50855,
                    "Resume Token txnOpIndex is not an integer",
                ));
            }
        };
        let mut from_invalidate = false;
        if version >= 1 {
            from_invalidate = match it.next() {
                None => {
                    return Err(CommandError::new(
                        50872,
                        "Resume Token does not contain fromInvalidate",
                    ));
                }
                Some(Bson::Boolean(b)) => b,
                Some(_) => {
                    return Err(CommandError::new(
                        50870,
                        "Resume Token fromInvalidate is not a boolean.",
                    ));
                }
            };
        }
        let mut data = ResumeTokenData {
            cluster_time,
            version,
            token_type,
            txn_op_index,
            from_invalidate,
            uuid: None,
            event_identifier: None,
            fragment_num: None,
        };
        let Some(uuid_elem) = it.next() else {
            if version > 1 {
                return Err(CommandError::new(6189500, "Expected UUID or null"));
            }
            return Ok(data);
        };
        match uuid_elem {
            Bson::Null => {}
            Bson::Binary(b) if b.subtype == BinarySubtype::Uuid && b.bytes.len() == 16 => {
                let mut raw = [0u8; 16];
                raw.copy_from_slice(&b.bytes);
                data.uuid = Some(bson::Uuid::from_bytes(raw));
            }
            _ => {
                return Err(CommandError::new(
                    codes::INVALID_UUID,
                    "uuid must be a 16-byte binary field with UUID (4) subtype",
                ));
            }
        }
        if token_type == TokenType::HighWaterMark && it.peek().is_some() {
            return Err(CommandError::new(6189504, "Invalid high water mark token"));
        }
        let Some(ident) = it.next() else {
            if token_type == TokenType::Event && version >= 2 {
                return Err(CommandError::new(
                    6189501,
                    "Expected an eventIdentifier for an event resume token",
                ));
            }
            return Ok(data);
        };
        match ident {
            Bson::Document(d) => data.event_identifier = Some(d),
            _ => {
                return Err(CommandError::new(
                    6189503,
                    "Resume Token eventIdentifier is not an object",
                ));
            }
        }
        if version >= 2
            && let Some(frag) = it.next()
        {
            match frag {
                Bson::Int32(n) if n >= 0 => data.fragment_num = Some(n),
                _ => {
                    return Err(CommandError::new(
                        7182501,
                        "Resume token 'fragmentNum' must be a non-negative integer.",
                    ));
                }
            }
        }
        if it.next().is_some() {
            return Err(CommandError::new(40646, "invalid oversized resume token"));
        }
        Ok(data)
    }
}

// ---- KeyString V1 -------------------------------------------------------------------------

// CType bytes of KeyString (key_string.cpp).
const K_END: u8 = 4;
const K_MIN_KEY: u8 = 10;
const K_UNDEFINED: u8 = 15;
const K_NULLISH: u8 = 20;
const K_NUMERIC: u8 = 30;
const K_NUMERIC_NAN: u8 = K_NUMERIC;
const K_NEG_LARGE: u8 = K_NUMERIC + 1;
const K_NEG_8BYTE_INT: u8 = K_NUMERIC + 2;
const K_NEG_1BYTE_INT: u8 = K_NUMERIC + 9;
const K_NEG_SMALL: u8 = K_NUMERIC + 10;
const K_ZERO: u8 = K_NUMERIC + 11;
const K_POS_SMALL: u8 = K_NUMERIC + 12;
const K_POS_1BYTE_INT: u8 = K_NUMERIC + 13;
const K_POS_8BYTE_INT: u8 = K_NUMERIC + 20;
const K_POS_LARGE: u8 = K_NUMERIC + 21;
/// Private (not KeyString): Decimal128, followed by its 16 raw bytes. Unused by KeyString.
const K_PRIVATE_DECIMAL: u8 = 0x37;
const K_STRING_LIKE: u8 = 60;
const K_OBJECT: u8 = 70;
const K_ARRAY: u8 = 80;
const K_BINDATA: u8 = 90;
const K_OID: u8 = 100;
const K_BOOL_FALSE: u8 = 110;
const K_BOOL_TRUE: u8 = 111;
const K_DATE: u8 = 120;
const K_TIMESTAMP: u8 = 130;
const K_REGEX: u8 = 140;
const K_DBREF: u8 = 150;
const K_CODE: u8 = 160;
const K_CODE_WITH_SCOPE: u8 = 170;
const K_MAX_KEY: u8 = 240;

// Type bits (2 bits for numbers, 1 for strings).
const TB_INT: u8 = 0;
const TB_LONG: u8 = 1;
const TB_DOUBLE: u8 = 2;
const TB_SPECIAL_ZERO: u8 = 3;
const TB_V1_NEGATIVE_DOUBLE_ZERO: u8 = 0x18;

/// 2**63: doubles at least this large use the large-magnitude encoding.
const MIN_LARGE_DOUBLE: f64 = 9_223_372_036_854_775_808.0;

fn tiny_upshift() -> f64 {
    2f64.powi(256)
}

fn tiniest_with_2bit_dcm() -> f64 {
    2f64.powi(-255)
}

/// The generic type byte written before a field name inside an object (`bsonTypeToGenericKeyStringType`).
fn generic_ctype(v: &Bson) -> u8 {
    match v {
        Bson::MinKey => K_MIN_KEY,
        Bson::Undefined => K_UNDEFINED,
        Bson::Null => K_NULLISH,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => K_NUMERIC,
        Bson::String(_) | Bson::Symbol(_) => K_STRING_LIKE,
        Bson::Document(_) => K_OBJECT,
        Bson::Array(_) => K_ARRAY,
        Bson::Binary(_) => K_BINDATA,
        Bson::ObjectId(_) => K_OID,
        Bson::Boolean(_) => K_BOOL_FALSE,
        Bson::DateTime(_) => K_DATE,
        Bson::Timestamp(_) => K_TIMESTAMP,
        Bson::RegularExpression(_) => K_REGEX,
        Bson::DbPointer(_) => K_DBREF,
        Bson::JavaScriptCode(_) => K_CODE,
        Bson::JavaScriptCodeWithScope(_) => K_CODE_WITH_SCOPE,
        Bson::MaxKey => K_MAX_KEY,
    }
}

#[derive(Default)]
struct TypeBitsWriter {
    bytes: Vec<u8>,
    nbits: usize,
    all_zeros: bool,
}

impl TypeBitsWriter {
    fn bit(&mut self, b: u8) {
        if self.nbits == 0 {
            self.all_zeros = true;
        }
        if self.nbits.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b != 0 {
            self.all_zeros = false;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.nbits % 8);
        }
        self.nbits += 1;
    }

    fn numeric(&mut self, t: u8) {
        self.bit(t >> 1);
        self.bit(t & 1);
    }

    /// `getBuffer()`/`getSize()`: `None` when all zero (no `_typeBits`), one bare byte when it
    /// fits in 7 bits, else a size byte `0x80|n` (or `0x80` + 4-byte little-endian size).
    fn serialize(&self) -> Option<Vec<u8>> {
        if self.nbits == 0 || self.all_zeros {
            return None;
        }
        let n = self.bytes.len();
        if n == 1 && self.bytes[0] & 0x80 == 0 {
            return Some(self.bytes.clone());
        }
        let mut out = Vec::with_capacity(n + 5);
        if n <= 127 {
            out.push(0x80 | n as u8);
        } else {
            out.push(0x80);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        out.extend_from_slice(&self.bytes);
        Some(out)
    }
}

#[derive(Default)]
struct KsWriter {
    buf: Vec<u8>,
    bits: TypeBitsWriter,
}

impl KsWriter {
    fn value(&mut self, v: &Bson) {
        match v {
            Bson::MinKey => self.buf.push(K_MIN_KEY),
            Bson::MaxKey => self.buf.push(K_MAX_KEY),
            Bson::Undefined => self.buf.push(K_UNDEFINED),
            Bson::Null => self.buf.push(K_NULLISH),
            Bson::Double(d) => {
                if *d == 0.0 && d.is_sign_negative() {
                    for i in (0..5).rev() {
                        self.bits.bit((TB_V1_NEGATIVE_DOUBLE_ZERO >> i) & 1);
                    }
                } else {
                    self.bits.numeric(TB_DOUBLE);
                }
                self.double(*d);
            }
            Bson::Int32(i) => {
                self.bits.numeric(TB_INT);
                self.integer(i64::from(*i));
            }
            Bson::Int64(i) => {
                self.bits.numeric(TB_LONG);
                self.integer(*i);
            }
            Bson::Decimal128(d) => {
                self.buf.push(K_PRIVATE_DECIMAL);
                self.buf.extend_from_slice(&d.bytes());
            }
            Bson::String(s) => {
                self.bits.bit(0);
                self.buf.push(K_STRING_LIKE);
                self.string_like(s);
            }
            Bson::Symbol(s) => {
                self.bits.bit(1);
                self.buf.push(K_STRING_LIKE);
                self.string_like(s);
            }
            Bson::Document(d) => {
                self.buf.push(K_OBJECT);
                self.object_body(d);
            }
            Bson::Array(a) => {
                self.buf.push(K_ARRAY);
                for e in a {
                    self.value(e);
                }
                self.buf.push(0);
            }
            Bson::Binary(b) => {
                self.buf.push(K_BINDATA);
                let len = b.bytes.len();
                if len < 0xff {
                    self.buf.push(len as u8);
                } else {
                    self.buf.push(0xff);
                    self.buf.extend_from_slice(&(len as u32).to_be_bytes());
                }
                self.buf.push(u8::from(b.subtype));
                self.buf.extend_from_slice(&b.bytes);
            }
            Bson::ObjectId(o) => {
                self.buf.push(K_OID);
                self.buf.extend_from_slice(&o.bytes());
            }
            Bson::Boolean(b) => self.buf.push(if *b { K_BOOL_TRUE } else { K_BOOL_FALSE }),
            Bson::DateTime(d) => {
                self.buf.push(K_DATE);
                let encoded = (d.timestamp_millis() as u64) ^ (1u64 << 63);
                self.buf.extend_from_slice(&encoded.to_be_bytes());
            }
            Bson::Timestamp(ts) => {
                self.buf.push(K_TIMESTAMP);
                self.buf.extend_from_slice(&ts.time.to_be_bytes());
                self.buf.extend_from_slice(&ts.increment.to_be_bytes());
            }
            Bson::RegularExpression(re) => {
                self.buf.push(K_REGEX);
                self.buf.extend_from_slice(re.pattern.as_str().as_bytes());
                self.buf.push(0);
                self.buf.extend_from_slice(re.options.as_str().as_bytes());
                self.buf.push(0);
            }
            Bson::DbPointer(p) => {
                // The fields are private in the bson crate: read them from its BSON bytes.
                let (ns, oid) = db_pointer_parts(p).unwrap_or_default();
                self.buf.push(K_DBREF);
                self.buf.extend_from_slice(&(ns.len() as u32).to_be_bytes());
                self.buf.extend_from_slice(ns.as_bytes());
                self.buf.extend_from_slice(&oid);
            }
            Bson::JavaScriptCode(c) => {
                self.buf.push(K_CODE);
                self.string_like(c);
            }
            Bson::JavaScriptCodeWithScope(c) => {
                self.buf.push(K_CODE_WITH_SCOPE);
                self.string_like(&c.code);
                self.object_body(&c.scope);
            }
        }
    }

    fn object_body(&mut self, d: &Document) {
        for (k, v) in d {
            self.buf.push(generic_ctype(v));
            self.buf.extend_from_slice(k.as_bytes());
            self.buf.push(0);
            self.value(v);
        }
        self.buf.push(0);
    }

    /// NUL-terminated, with embedded NULs escaped as `00 FF`.
    fn string_like(&mut self, s: &str) {
        for &b in s.as_bytes() {
            self.buf.push(b);
            if b == 0 {
                self.buf.push(0xff);
            }
        }
        self.buf.push(0);
    }

    fn integer(&mut self, n: i64) {
        if n == i64::MIN {
            // -2**63 is not a positive int64 magnitude: the server encodes it as a double.
            self.large_double(n as f64);
            return;
        }
        if n == 0 {
            self.buf.push(K_ZERO);
            return;
        }
        self.preshifted_integer(n.unsigned_abs() << 1, n < 0);
    }

    fn preshifted_integer(&mut self, value: u64, negative: bool) {
        let bytes_needed = (64 - value.leading_zeros() as usize).div_ceil(8);
        let be = value.to_be_bytes();
        let used = &be[8 - bytes_needed..];
        if negative {
            self.buf.push(K_NEG_1BYTE_INT - (bytes_needed as u8 - 1));
            self.buf.extend(used.iter().map(|b| !b));
        } else {
            self.buf.push(K_POS_1BYTE_INT + (bytes_needed as u8 - 1));
            self.buf.extend_from_slice(used);
        }
    }

    fn push_u64(&mut self, v: u64, invert: bool) {
        let be = v.to_be_bytes();
        if invert {
            self.buf.extend(be.iter().map(|b| !b));
        } else {
            self.buf.extend_from_slice(&be);
        }
    }

    fn double(&mut self, num: f64) {
        let negative = num < 0.0;
        let magnitude = num.abs();
        // NaN falls in this branch too.
        if magnitude.is_nan() || magnitude < 1.0 {
            if magnitude > 0.0 {
                self.small_double(num);
            } else if num == 0.0 {
                self.buf.push(K_ZERO);
            } else {
                self.buf.push(K_NUMERIC_NAN);
            }
            return;
        }
        if magnitude < MIN_LARGE_DOUBLE {
            let integer_part = magnitude as u64;
            if integer_part as f64 == magnitude {
                self.preshifted_integer(integer_part << 1, negative);
                return;
            }
            let fractional_bytes = ((integer_part << 1).leading_zeros() / 8) as usize;
            let ctype = if negative {
                K_NEG_8BYTE_INT + fractional_bytes as u8
            } else {
                K_POS_8BYTE_INT - fractional_bytes as u8
            };
            self.buf.push(ctype);
            // Shift the fraction left by whole bytes, then merge in the integer part doubled
            // plus the "has fraction" bit; the low 2 bits stay 0 (decimal continuation marker).
            let mut encoding = (magnitude * 256f64.powi(fractional_bytes as i32)) as u64;
            encoding = encoding.wrapping_add((integer_part + 1) << (fractional_bytes * 8));
            self.push_u64(encoding, negative);
            return;
        }
        self.large_double(num);
    }

    fn small_double(&mut self, value: f64) {
        let negative = value < 0.0;
        let magnitude = value.abs();
        self.buf
            .push(if negative { K_NEG_SMALL } else { K_POS_SMALL });
        let encoded = if magnitude >= tiniest_with_2bit_dcm() {
            magnitude.to_bits() << 2
        } else {
            let scaled = magnitude * tiny_upshift();
            (scaled.to_bits() << 1) + (1u64 << 62)
        };
        self.push_u64(encoded, negative);
    }

    fn large_double(&mut self, value: f64) {
        let negative = value < 0.0;
        self.buf
            .push(if negative { K_NEG_LARGE } else { K_POS_LARGE });
        let encoded = if value.is_finite() {
            (value.to_bits() << 1) & !(1u64 << 63)
        } else {
            !0u64
        };
        self.push_u64(encoded, negative);
    }
}

/// The namespace and ObjectId bytes of a DBPointer, read from its BSON encoding.
fn db_pointer_parts(p: &bson::DbPointer) -> Option<(String, [u8; 12])> {
    let mut d = Document::new();
    d.insert("x", Bson::DbPointer(p.clone()));
    let raw = d.to_vec().ok()?;
    // int32 size, type 0x0C, "x\0", int32 string length, string with NUL, 12 bytes.
    let body = raw.get(4 + 1 + 2..)?;
    let len = i32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let ns = std::str::from_utf8(body.get(4..4 + len - 1)?)
        .ok()?
        .to_string();
    let oid: [u8; 12] = body.get(4 + len..4 + len + 12)?.try_into().ok()?;
    Some((ns, oid))
}

/// A DBPointer rebuilt from its parts, through its BSON encoding.
fn make_db_pointer(ns: &str, oid: &[u8; 12]) -> Option<Bson> {
    let mut elem = vec![0x0C, b'x', 0];
    elem.extend_from_slice(&((ns.len() + 1) as i32).to_le_bytes());
    elem.extend_from_slice(ns.as_bytes());
    elem.push(0);
    elem.extend_from_slice(oid);
    let mut raw = ((elem.len() + 5) as i32).to_le_bytes().to_vec();
    raw.extend_from_slice(&elem);
    raw.push(0);
    Document::from_reader(raw.as_slice())
        .ok()?
        .get("x")
        .cloned()
}

struct TypeBitsReader {
    bytes: Vec<u8>,
    all_zeros: bool,
    pos: usize,
}

impl TypeBitsReader {
    fn parse(raw: &[u8]) -> Result<Self> {
        let zero = TypeBitsReader {
            bytes: Vec::new(),
            all_zeros: true,
            pos: 0,
        };
        let Some(&first) = raw.first() else {
            return Ok(zero);
        };
        let (size, start) = if first > 0 && first < 0x80 {
            (1, 0)
        } else if first > 0x80 {
            ((first & 0x7f) as usize, 1)
        } else if first == 0x80 {
            let s = raw.get(1..5).ok_or_else(overflow)?;
            let s = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
            if s <= 127 {
                return Err(CommandError::new(50910, "Invalid overlong encoding."));
            }
            (s, 5)
        } else {
            return Ok(zero);
        };
        let bytes = raw.get(start..start + size).ok_or_else(overflow)?.to_vec();
        Ok(TypeBitsReader {
            all_zeros: size == 0,
            bytes,
            pos: 0,
        })
    }

    fn bit(&mut self) -> Result<u8> {
        if self.all_zeros {
            return Ok(0);
        }
        let byte = self.pos / 8;
        let off = self.pos % 8;
        self.pos += 1;
        let b = self
            .bytes
            .get(byte)
            .ok_or_else(|| CommandError::new(50615, "Invalid size byte(s)."))?;
        Ok((b >> off) & 1)
    }

    fn numeric(&mut self) -> Result<u8> {
        let high = self.bit()?;
        let low = self.bit()?;
        Ok((high << 1) | low)
    }
}

fn overflow() -> CommandError {
    CommandError::new(
        codes::OVERFLOW,
        "Invalid resume token: buffer size too small (truncated KeyString)",
    )
}

fn no_terminator() -> CommandError {
    CommandError::new(50816, "Failed to find null terminator in string.")
}

fn unknown_type(ctype: u8) -> CommandError {
    CommandError::new(50811, format!("Unknown type: {ctype}"))
}

struct KsReader<'a> {
    buf: &'a [u8],
    pos: usize,
    bits: TypeBitsReader,
}

impl KsReader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(overflow)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).ok_or_else(overflow)?;
        let s = self.buf.get(self.pos..end).ok_or_else(overflow)?;
        self.pos = end;
        Ok(s)
    }

    fn u64(&mut self, invert: bool) -> Result<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        let v = u64::from_be_bytes(a);
        Ok(if invert { !v } else { v })
    }

    fn cstring(&mut self) -> Result<String> {
        let start = self.pos;
        let rel = self.buf[start..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(no_terminator)?;
        self.pos = start + rel + 1;
        String::from_utf8(self.buf[start..start + rel].to_vec())
            .map_err(|_| CommandError::failed_to_parse("resume token holds invalid UTF-8"))
    }

    /// A string with `00 FF` escapes for embedded NULs.
    fn string_like(&mut self) -> Result<String> {
        let mut out = Vec::new();
        loop {
            let b = self.byte().map_err(|_| no_terminator())?;
            if b == 0 {
                if self.buf.get(self.pos) == Some(&0xff) {
                    self.pos += 1;
                    out.push(0);
                    continue;
                }
                break;
            }
            out.push(b);
        }
        String::from_utf8(out)
            .map_err(|_| CommandError::failed_to_parse("resume token holds invalid UTF-8"))
    }

    fn object_body(&mut self, depth: usize) -> Result<Document> {
        let mut d = Document::new();
        loop {
            let generic = self.byte()?;
            if generic == 0 {
                return Ok(d);
            }
            let name = self.cstring()?;
            let ctype = self.byte()?;
            let v = self.value(ctype, depth + 1)?;
            d.insert(name, v);
        }
    }

    fn value(&mut self, ctype: u8, depth: usize) -> Result<Bson> {
        if depth > 200 {
            return Err(CommandError::new(
                codes::OVERFLOW,
                "resume token nested too deeply",
            ));
        }
        Ok(match ctype {
            K_MIN_KEY => Bson::MinKey,
            K_MAX_KEY => Bson::MaxKey,
            K_UNDEFINED => Bson::Undefined,
            K_NULLISH => Bson::Null,
            K_BOOL_FALSE => Bson::Boolean(false),
            K_BOOL_TRUE => Bson::Boolean(true),
            K_DATE => {
                let v = self.u64(false)? ^ (1u64 << 63);
                Bson::DateTime(bson::DateTime::from_millis(v as i64))
            }
            K_TIMESTAMP => {
                let v = self.u64(false)?;
                Bson::Timestamp(Timestamp {
                    time: (v >> 32) as u32,
                    increment: v as u32,
                })
            }
            K_OID => {
                let s = self.take(12)?;
                let mut a = [0u8; 12];
                a.copy_from_slice(s);
                Bson::ObjectId(bson::oid::ObjectId::from_bytes(a))
            }
            K_STRING_LIKE => {
                let symbol = self.bits.bit()? == 1;
                let s = self.string_like()?;
                if symbol {
                    Bson::Symbol(s)
                } else {
                    Bson::String(s)
                }
            }
            K_CODE => Bson::JavaScriptCode(self.string_like()?),
            K_CODE_WITH_SCOPE => {
                let code = self.string_like()?;
                let scope = self.object_body(depth + 2)?;
                Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code, scope })
            }
            K_BINDATA => {
                let mut size = self.byte()? as usize;
                if size == 0xff {
                    let s = self.take(4)?;
                    size = u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
                }
                let subtype = BinarySubtype::from(self.byte()?);
                let bytes = self.take(size)?.to_vec();
                Bson::Binary(Binary { subtype, bytes })
            }
            K_REGEX => {
                let pattern = self.cstring()?;
                let options = self.cstring()?;
                let cstring = |s: String| {
                    bson::raw::CString::try_from(s).map_err(|e| {
                        CommandError::failed_to_parse(format!("invalid resume token regex: {e}"))
                    })
                };
                Bson::RegularExpression(Regex {
                    pattern: cstring(pattern)?,
                    options: cstring(options)?,
                })
            }
            K_DBREF => {
                let s = self.take(4)?;
                let len = u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
                let ns = String::from_utf8(self.take(len)?.to_vec()).map_err(|_| {
                    CommandError::failed_to_parse("resume token holds invalid UTF-8")
                })?;
                let mut oid = [0u8; 12];
                oid.copy_from_slice(self.take(12)?);
                make_db_pointer(&ns, &oid).ok_or_else(|| unknown_type(ctype))?
            }
            K_OBJECT => Bson::Document(self.object_body(depth)?),
            K_ARRAY => {
                let mut a = Vec::new();
                loop {
                    let t = self.byte()?;
                    if t == 0 {
                        break;
                    }
                    a.push(self.value(t, depth + 1)?);
                }
                Bson::Array(a)
            }
            K_PRIVATE_DECIMAL => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16)?);
                Bson::Decimal128(bson::Decimal128::from_bytes(a))
            }
            K_NUMERIC_NAN => match self.bits.numeric()? {
                TB_DOUBLE => Bson::Double(f64::NAN),
                _ => {
                    return Err(CommandError::new(
                        50819,
                        "Invalid type bits for numeric NaN",
                    ));
                }
            },
            K_ZERO => {
                let mut t = self.bits.numeric()?;
                if t == TB_SPECIAL_ZERO {
                    for _ in 0..3 {
                        t = (t << 1) | self.bits.bit()?;
                    }
                }
                match t {
                    TB_INT => Bson::Int32(0),
                    TB_LONG => Bson::Int64(0),
                    TB_DOUBLE => Bson::Double(0.0),
                    TB_V1_NEGATIVE_DOUBLE_ZERO => Bson::Double(-0.0),
                    _ => {
                        return Err(CommandError::new(50846, "Invalid numeric zero decimal."));
                    }
                }
            }
            K_NEG_LARGE | K_POS_LARGE => {
                let negative = ctype == K_NEG_LARGE;
                let t = self.bits.numeric()?;
                let encoded = self.u64(negative)?;
                let bin = if encoded == !0u64 {
                    f64::INFINITY
                } else if encoded & (1u64 << 63) == 0 {
                    f64::from_bits((encoded >> 1) | (1u64 << 62))
                } else {
                    return Err(CommandError::new(
                        50818,
                        "Invalid type bits for decimal number.",
                    ));
                };
                let bin = if negative { -bin } else { bin };
                match t {
                    TB_DOUBLE => Bson::Double(bin),
                    TB_LONG if bin == i64::MIN as f64 => Bson::Int64(i64::MIN),
                    _ => {
                        return Err(CommandError::new(50826, "Unexpected type of large number."));
                    }
                }
            }
            K_NEG_SMALL | K_POS_SMALL => {
                let negative = ctype == K_NEG_SMALL;
                let t = self.bits.numeric()?;
                let encoded = self.u64(negative)?;
                if t != TB_DOUBLE {
                    return Err(CommandError::new(
                        50825,
                        "Unexpected type for small number, expected decimal.",
                    ));
                }
                let bin = match encoded >> 62 {
                    0x3 => f64::from_bits(encoded >> 2),
                    0x1 | 0x2 => f64::from_bits((encoded - (1u64 << 62)) >> 1) / tiny_upshift(),
                    _ => return Err(unknown_type(ctype)),
                };
                Bson::Double(if negative { -bin } else { bin })
            }
            K_NEG_8BYTE_INT..=K_NEG_1BYTE_INT | K_POS_1BYTE_INT..=K_POS_8BYTE_INT => {
                let negative = ctype <= K_NEG_1BYTE_INT;
                let nbytes = if negative {
                    (K_NEG_1BYTE_INT - ctype + 1) as usize
                } else {
                    (ctype - K_POS_1BYTE_INT + 1) as usize
                };
                let t = self.bits.numeric()?;
                let mut encoded: u64 = 0;
                for _ in 0..nbytes {
                    let b = self.byte()?;
                    encoded = (encoded << 8) | u64::from(if negative { !b } else { b });
                }
                let has_fraction = encoded & 1 == 1;
                let integer_part = encoded >> 1;
                if !has_fraction {
                    let signed = if negative {
                        (integer_part as i64).wrapping_neg()
                    } else {
                        integer_part as i64
                    };
                    match t {
                        TB_DOUBLE => Bson::Double(signed as f64),
                        TB_INT => Bson::Int32(signed as i32),
                        TB_LONG => Bson::Int64(signed),
                        _ => {
                            return Err(CommandError::new(
                                50831,
                                "Unexpected type for positive int.",
                            ));
                        }
                    }
                } else {
                    let frac_bytes = 8 - nbytes;
                    let mut fraction = integer_part;
                    for _ in 0..frac_bytes {
                        let b = self.byte()?;
                        fraction = (fraction << 8) | u64::from(if negative { !b } else { b });
                    }
                    if t != TB_DOUBLE {
                        return Err(CommandError::new(50810, "Expected type Decimal."));
                    }
                    let bin = (fraction & !3u64) as f64 / 256f64.powi(frac_bytes as i32);
                    Bson::Double(if negative { -bin } else { bin })
                }
            }
            _ => return Err(unknown_type(ctype)),
        })
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex (either case) to bytes; `None` on odd length or a non-hex character.
fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;
    use bson::{Decimal128, doc};

    fn ts(time: u32, increment: u32) -> Timestamp {
        Timestamp { time, increment }
    }

    fn uuid() -> bson::Uuid {
        bson::Uuid::from_bytes([
            0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed,
            0xfe, 0x0f,
        ])
    }

    fn data(token: &Document) -> String {
        token.get_str("_data").unwrap().to_string()
    }

    fn insert_event(time: u32, inc: u32, op_index: u32, id: Bson) -> ResumeTokenData {
        ResumeTokenData::event(
            ts(time, inc),
            op_index,
            Some(uuid()),
            doc! { "operationType": "insert", "documentKey": { "_id": id } },
        )
    }

    fn round_trip(t: &ResumeTokenData) {
        let enc = t.encode();
        let dec = ResumeTokenData::decode(&enc).unwrap();
        // Compare through encoding too: NaN is not PartialEq-equal to itself.
        assert_eq!(dec.encode(), enc, "{t:?}");
        assert_eq!(format!("{dec:?}"), format!("{t:?}"));
    }

    /// The decoded real v1 token of the reference (§7.1), byte for byte.
    #[test]
    fn real_v1_token_layout() {
        let oid = ObjectId::parse_str("5f2f617f0123456789abcdef").unwrap();
        let t = ResumeTokenData {
            cluster_time: ts(0x612F617F, 1),
            version: 1,
            token_type: TokenType::Event,
            txn_op_index: 0,
            from_invalidate: false,
            uuid: Some(uuid()),
            event_identifier: Some(doc! { "_id": oid }),
            fragment_num: None,
        };
        let enc = t.encode();
        let expected = format!(
            "82612F617F000000012B022C0100296E5A1004{}46645F69640064{}0004",
            hex_upper(&uuid().bytes()),
            hex_upper(&oid.bytes())
        );
        assert_eq!(data(&enc), expected);
        assert!(enc.get("_typeBits").is_none());
        round_trip(&t);
    }

    fn real(data: &str, type_bits: Option<&[u8]>) -> Document {
        let mut d = doc! { "_data": data };
        if let Some(b) = type_bits {
            d.insert(
                "_typeBits",
                Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: b.to_vec(),
                },
            );
        }
        d
    }

    /// Tokens published from real servers decode to what they hold and re-encode byte for
    /// byte, type bits included.
    #[test]
    fn real_server_tokens_round_trip() {
        // v2 insert, ObjectId _id.
        let t = real(
            "8266B518C6000000012B042C0100296E5A1004CDFFC2D506504F98B11EDBF328641438463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F6964006466B518C657C4C7204E91E80F000004",
            None,
        );
        let d = ResumeTokenData::decode(&t).unwrap();
        assert_eq!(d.cluster_time, ts(1723144390, 1));
        assert_eq!(
            (d.version, d.token_type, d.txn_op_index),
            (2, TokenType::Event, 0)
        );
        let oid = ObjectId::parse_str("66b518c657c4c7204e91e80f").unwrap();
        assert_eq!(
            d.event_identifier,
            Some(doc! { "operationType": "insert", "documentKey": { "_id": oid } })
        );
        assert_eq!(d.encode(), t);

        // v2 update, string _id.
        let t = real(
            "8265580539000000012B042C0100296E5A1004A7F55A5B35BD4C7DB2CD56C6CFEA9C49463C6F7065726174696F6E54797065003C7570646174650046646F63756D656E744B657900463C5F6964003C6265657200000004",
            None,
        );
        let d = ResumeTokenData::decode(&t).unwrap();
        assert_eq!(
            d.event_identifier,
            Some(doc! { "operationType": "update", "documentKey": { "_id": "beer" } })
        );
        assert_eq!(d.encode(), t);

        // v2 high-water mark.
        let t = real("826A8C8E64000000012B0429296E1404", None);
        assert_eq!(
            ResumeTokenData::decode(&t).unwrap(),
            ResumeTokenData::high_water_mark(ts(1787596388, 1))
        );
        assert_eq!(
            ResumeTokenData::high_water_mark(ts(1787596388, 1)).encode(),
            t
        );

        // v1, document _id of doubles: type bits 0x82 0x40 0x01.
        let t = real(
            "82647A41A6000000012B022C0100296E5A10042409C0859BCF45ABBE0E0BD72AB4040346465F696400461E666F6F002B021E626172002B04000004",
            Some(&[0x82, 0x40, 0x01]),
        );
        let d = ResumeTokenData::decode(&t).unwrap();
        assert_eq!(d.version, 1);
        assert_eq!(
            d.event_identifier,
            Some(doc! { "_id": { "foo": 1.0, "bar": 2.0 } })
        );
        assert_eq!(d.encode(), t);

        // v1, fractional double in the shard key: type bits 0x40.
        let t = real(
            "82617256D2000000012B022C0100296E5A1004820D46C9E475484991403FB14ECF4ABF461E6964002B171CAC083126E980645F69640064617256D2D34E7914E0B064640004",
            Some(&[0x40]),
        );
        let d = ResumeTokenData::decode(&t).unwrap();
        let key = d.event_identifier.clone().unwrap();
        let id = key.get_f64("id").unwrap();
        assert!(id > 11.0 && id < 12.0, "{id}");
        assert_eq!(d.encode(), t);

        // v2 modify event (expanded): an int64 in operationDescription, type bits 0x82 0x00 0x02.
        let t = real(
            "826AAA2A6C000000012B042C0100296E5A1004ADB3EAFEEBCF423683BE8CF7CBC7F1D2463C6F7065726174696F6E54797065003C6D6F6469667900466F7065726174696F6E4465736372697074696F6E004646696E64657800463C6E616D65003C6578706972657341745F31001E65787069726541667465725365636F6E6473002C1C2000000004",
            Some(&[0x82, 0x00, 0x02]),
        );
        let d = ResumeTokenData::decode(&t).unwrap();
        assert_eq!(
            d.event_identifier,
            Some(doc! {
                "operationType": "modify",
                "operationDescription": {
                    "index": { "name": "expiresAt_1", "expireAfterSeconds": 3600_i64 },
                },
            })
        );
        assert_eq!(d.encode(), t);
    }

    #[test]
    fn high_water_mark_layout() {
        let t = ResumeTokenData::high_water_mark(ts(1_700_000_000, 7));
        assert_eq!(t.version, 2);
        assert!(t.is_high_water_mark());
        // ts, version 2, tokenType 0, txnOpIndex 0, false, null, end.
        assert_eq!(
            data(&t.encode()),
            "826553F10000000007".to_string() + "2B0429296E1404"
        );
        round_trip(&t);
    }

    #[test]
    fn v2_event_layout_and_type_bits() {
        let t = insert_event(1, 2, 3, Bson::Int32(1));
        let enc = t.encode();
        // 2C0100 = tokenType 128; 2B06 = txnOpIndex 3; the identifier is an object with a
        // string and a document; int32 _id: no type bits.
        assert!(data(&enc).starts_with("8200000001000000022B042C01002B066E5A1004"));
        assert!(data(&enc).ends_with("0004"));
        assert!(enc.get("_typeBits").is_none());
        // A double or int64 _id needs type bits; an int32 never does.
        let d = insert_event(1, 2, 0, Bson::Double(1.0)).encode();
        let l = insert_event(1, 2, 0, Bson::Int64(1)).encode();
        assert!(d.get("_typeBits").is_some() && l.get("_typeBits").is_some());
        // Same _data for 1, 1.0 and NumberLong(1): they compare equal in KeyString.
        assert_eq!(data(&d), data(&l));
        assert_eq!(
            ResumeTokenData::decode(&d)
                .unwrap()
                .event_identifier
                .unwrap(),
            doc! { "operationType": "insert", "documentKey": { "_id": 1.0 } }
        );
    }

    #[test]
    fn round_trips_many_id_types() {
        let ids = vec![
            Bson::Int32(0),
            Bson::Int32(1),
            Bson::Int32(-1),
            Bson::Int32(127),
            Bson::Int32(128),
            Bson::Int32(i32::MAX),
            Bson::Int32(i32::MIN),
            Bson::Int64(0),
            Bson::Int64(1 << 40),
            Bson::Int64(-(1 << 40)),
            Bson::Int64(i64::MAX),
            Bson::Int64(i64::MIN),
            Bson::Double(0.0),
            Bson::Double(-0.0),
            Bson::Double(1.5),
            Bson::Double(-1.5),
            Bson::Double(0.1),
            Bson::Double(-0.25),
            Bson::Double(std::f64::consts::PI),
            Bson::Double(-123456.789),
            Bson::Double(4503599627370495.5),
            Bson::Double(1e-300),
            Bson::Double(-5e-324),
            Bson::Double(1e20),
            Bson::Double(-1e300),
            // The largest double below 2**63.
            Bson::Double(2f64.powi(63) - 1024.0),
            Bson::Double(f64::INFINITY),
            Bson::Double(f64::NEG_INFINITY),
            Bson::Double(f64::NAN),
            Bson::Double(f64::MAX),
            Bson::Double(f64::MIN_POSITIVE),
            Bson::String(String::new()),
            Bson::String("héllo".into()),
            Bson::String("a\0b\0".into()),
            Bson::Symbol("sym".into()),
            Bson::ObjectId(ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap()),
            Bson::Boolean(true),
            Bson::Boolean(false),
            Bson::Null,
            Bson::Undefined,
            Bson::MinKey,
            Bson::MaxKey,
            Bson::DateTime(bson::DateTime::from_millis(1_700_000_000_123)),
            Bson::DateTime(bson::DateTime::from_millis(-86_400_000)),
            Bson::Timestamp(ts(5, 6)),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![1, 2, 3],
            }),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Uuid,
                bytes: uuid().bytes().to_vec(),
            }),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![7; 300],
            }),
            Bson::Array(vec![]),
            Bson::Array(vec![
                Bson::Int32(1),
                Bson::String("x".into()),
                Bson::Double(2.5),
            ]),
            Bson::Document(doc! {}),
            Bson::Document(doc! { "a": 1, "b": { "c": [1.5, -2, "z", null], "d": 3_i64 } }),
            Bson::Document(doc! { "x": { "y": { "z": { "w": -0.001 } } } }),
            Bson::RegularExpression(Regex {
                pattern: "^a.*".try_into().unwrap(),
                options: "i".try_into().unwrap(),
            }),
            Bson::JavaScriptCode("function() {}".into()),
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "x".into(),
                scope: doc! { "x": 1.25 },
            }),
            Bson::Decimal128("1.5".parse::<Decimal128>().unwrap()),
        ];
        for (i, id) in ids.into_iter().enumerate() {
            round_trip(&insert_event(1_700_000_000, i as u32, i as u32, id));
        }
        let ptr = make_db_pointer("db.coll", &[3; 12]).unwrap();
        round_trip(&insert_event(1, 1, 0, ptr));
    }

    #[test]
    fn round_trips_token_variants() {
        let mut t = insert_event(10, 1, 0, Bson::Int32(5));
        t.fragment_num = Some(3);
        round_trip(&t);
        let mut inv = insert_event(10, 1, 0, Bson::Int32(5));
        inv.from_invalidate = true;
        inv.event_identifier = Some(doc! { "operationType": "drop", "operationDescription": {} });
        round_trip(&inv);
        // The invalidate token sorts right after the token of the event that caused it.
        let drop = insert_event(10, 1, 0, Bson::Int32(5));
        assert!(drop.data_string() < drop.invalidate_of().data_string());
        assert!(drop.invalidate_of().from_invalidate);
        let no_uuid = ResumeTokenData::event(
            ts(3, 4),
            0,
            None,
            doc! { "operationType": "dropDatabase", "operationDescription": {} },
        );
        round_trip(&no_uuid);
        round_trip(&insert_event(10, 1, u32::MAX >> 1, Bson::Int32(5)));
    }

    /// Numbers compare by value in KeyString, whatever their BSON type.
    #[test]
    fn numeric_encoding_orders_by_value() {
        let values = [
            f64::NEG_INFINITY,
            -1e300,
            -1e19,
            -4503599627370495.5,
            -300.0,
            -2.5,
            -1.0,
            -0.5,
            -1e-300,
            0.0,
            1e-300,
            0.25,
            0.75,
            1.0,
            1.5,
            2.0,
            255.0,
            256.0,
            256.5,
            1e15,
            1e19,
            1e300,
            f64::INFINITY,
        ];
        let encode = |v: &Bson| {
            let mut w = KsWriter::default();
            w.value(v);
            w.buf
        };
        let keys: Vec<Vec<u8>> = values.iter().map(|v| encode(&Bson::Double(*v))).collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        assert_eq!(encode(&Bson::Int32(-7)), encode(&Bson::Double(-7.0)));
        assert_eq!(
            encode(&Bson::Int64(1 << 50)),
            encode(&Bson::Double(2f64.powi(50)))
        );
        assert!(encode(&Bson::Int64(i64::MIN)) < encode(&Bson::Int64(i64::MIN + 1)));
        assert!(encode(&Bson::Int64(i64::MAX)) < encode(&Bson::Double(1e19)));
    }

    #[test]
    fn data_orders_by_cluster_time_then_txn_op_index() {
        let tokens = [
            ResumeTokenData::high_water_mark(ts(100, 1)),
            insert_event(100, 1, 0, Bson::Int32(9)),
            insert_event(100, 1, 1, Bson::Int32(1)),
            insert_event(100, 1, 200, Bson::Int32(1)),
            insert_event(100, 1, 70_000, Bson::Int32(1)),
            ResumeTokenData::high_water_mark(ts(100, 2)),
            insert_event(100, 2, 0, Bson::String("a".into())),
            insert_event(100, 300, 0, Bson::Int32(1)),
            ResumeTokenData::high_water_mark(ts(101, 0)),
            insert_event(0x1_0000, 0, 0, Bson::Int32(1)),
            insert_event(u32::MAX, 0, 0, Bson::Int32(1)),
        ];
        let strings: Vec<String> = tokens.iter().map(|t| data(&t.encode())).collect();
        for pair in strings.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
    }

    /// Conformance tests rewrite hex characters 2..10 (the timestamp seconds) to go back in time.
    #[test]
    fn rewriting_timestamp_seconds_in_hex() {
        let t = insert_event(1_700_000_000, 5, 0, Bson::Int32(1));
        let mut s = data(&t.encode());
        s.replace_range(2..10, "00000001");
        let dec = ResumeTokenData::decode(&doc! { "_data": s }).unwrap();
        assert_eq!(dec.cluster_time, ts(1, 5));
        assert_eq!(dec.event_identifier, t.event_identifier);
    }

    #[test]
    fn lower_case_hex_is_accepted() {
        let t = insert_event(7, 7, 0, Bson::Int32(1));
        let lower = data(&t.encode()).to_lowercase();
        assert_eq!(
            ResumeTokenData::decode(&doc! { "_data": lower }).unwrap(),
            t
        );
    }

    fn code_of(token: Document) -> i32 {
        ResumeTokenData::decode(&token).unwrap_err().code
    }

    /// Hex of a token built from raw KeyString values, for error cases.
    fn raw(values: &[Bson]) -> Document {
        let mut w = KsWriter::default();
        for v in values {
            w.value(v);
        }
        w.buf.push(K_END);
        let mut d = doc! { "_data": hex_upper(&w.buf) };
        if let Some(b) = w.bits.serialize() {
            d.insert(
                "_typeBits",
                Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: b,
                },
            );
        }
        d
    }

    #[test]
    fn parse_errors_use_server_codes() {
        assert_eq!(code_of(doc! {}), 40647);
        assert_eq!(code_of(doc! { "_data": 1 }), 40647);
        assert_eq!(code_of(doc! { "_data": "82", "_typeBits": "x" }), 40648);
        let bin4 = Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![1],
        };
        assert_eq!(code_of(doc! { "_data": "82", "_typeBits": bin4 }), 40648);
        assert_eq!(code_of(doc! { "_data": "" }), 40649);
        assert_eq!(code_of(doc! { "_data": "04" }), 40649);
        assert_eq!(code_of(doc! { "_data": "zz" }), codes::FAILED_TO_PARSE);
        assert_eq!(code_of(doc! { "_data": "820" }), codes::FAILED_TO_PARSE);
        // Truncated in the middle of the timestamp, and in the middle of the identifier.
        assert_eq!(code_of(doc! { "_data": "8265" }), codes::OVERFLOW);
        let full = data(&insert_event(1, 1, 0, Bson::Int32(1)).encode());
        assert_eq!(
            code_of(doc! { "_data": &full[..full.len() - 8] }),
            codes::OVERFLOW
        );
        // Unknown ctype (the server's own unit tests: zeros and nonsense bytes).
        assert_eq!(code_of(doc! { "_data": "FF" }), 50811);
        assert_eq!(code_of(doc! { "_data": "0000000000" }), 50811);
        assert_eq!(code_of(doc! { "_data": "A5554D56FF" }), 50811);
        // A string without its terminator.
        assert_eq!(code_of(doc! { "_data": "3C37" }), 50816);
        // Type bits claiming more bytes than they hold.
        let hwm = ResumeTokenData::high_water_mark(ts(1010, 4)).encode();
        let mut bad_bits = hwm.clone();
        bad_bits.insert(
            "_typeBits",
            Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![165, 85, 77, 86, 255],
            },
        );
        assert_eq!(code_of(bad_bits), codes::OVERFLOW);

        let t = Bson::Timestamp(ts(1, 1));
        assert_eq!(code_of(raw(std::slice::from_ref(&t))), 50796);
        assert_eq!(code_of(raw(&[t.clone(), Bson::Int64(2)])), 50854);
        assert_eq!(code_of(raw(&[t.clone(), Bson::Int32(3)])), 50795);
        assert_eq!(code_of(raw(&[t.clone(), Bson::Int32(2)])), 51055);
        assert_eq!(
            code_of(raw(&[t.clone(), Bson::Int32(2), Bson::Boolean(true)])),
            51056
        );
        assert_eq!(
            code_of(raw(&[t.clone(), Bson::Int32(2), Bson::Int32(5)])),
            51057
        );
        let pre = [t.clone(), Bson::Int32(2), Bson::Int32(128)];
        let with = |extra: &[Bson]| {
            let mut v = pre.to_vec();
            v.extend_from_slice(extra);
            raw(&v)
        };
        assert_eq!(code_of(with(&[])), 50793);
        assert_eq!(code_of(with(&[Bson::String("x".into())])), 50855);
        assert_eq!(code_of(with(&[Bson::Int32(-1)])), 50794);
        assert_eq!(code_of(with(&[Bson::Int32(0)])), 50872);
        assert_eq!(code_of(with(&[Bson::Int32(0), Bson::Null])), 50870);
        let ok = [Bson::Int32(0), Bson::Boolean(false)];
        assert_eq!(code_of(with(&ok)), 6189500);
        let mut v = ok.to_vec();
        v.push(Bson::String("not a uuid".into()));
        assert_eq!(code_of(with(&v)), codes::INVALID_UUID);
        let mut v = ok.to_vec();
        v.push(Bson::Null);
        assert_eq!(code_of(with(&v)), 6189501);
        v.push(Bson::Int32(1));
        assert_eq!(code_of(with(&v)), 6189503);
        v.pop();
        v.push(Bson::Document(doc! { "operationType": "insert" }));
        v.push(Bson::Int32(-1));
        assert_eq!(code_of(with(&v)), 7182501);
        v.pop();
        v.push(Bson::Int32(1));
        v.push(Bson::Int32(1));
        assert_eq!(code_of(with(&v)), 40646);
        // A high-water mark with an identifier.
        let hwm = [
            t,
            Bson::Int32(2),
            Bson::Int32(0),
            Bson::Int32(0),
            Bson::Boolean(false),
            Bson::Null,
            Bson::Document(doc! {}),
        ];
        assert_eq!(code_of(raw(&hwm)), 6189504);
    }

    #[test]
    fn older_versions_decode() {
        // v0: no tokenType, no fromInvalidate, no null UUID.
        let v0 = raw(&[Bson::Timestamp(ts(1, 1)), Bson::Int32(0), Bson::Int32(0)]);
        let d = ResumeTokenData::decode(&v0).unwrap();
        assert_eq!(d.version, 0);
        assert_eq!(d.token_type, TokenType::Event);
        // v1 HWM: no trailing null.
        let v1 = ResumeTokenData {
            version: 1,
            ..ResumeTokenData::high_water_mark(ts(2, 2))
        };
        assert_eq!(data(&v1.encode()), "8200000002000000022B0229296E04");
        round_trip(&v1);
    }
}
