//! Type expressions and conversions: `$convert` and its `$toX` shorthands, and the server's
//! string forms of numbers.

use super::*;

/// 241 ConversionFailure (`$convert` and the `$toX` shorthands).
pub(super) const CONVERSION_FAILURE: i32 = 241;

/// A double as 8.x's `$toString`/`$convert` prints it (`fmt::format("{}")`): the shortest
/// digits that read back the same, in exponent form (`1e+16`, `1e-05`) when the decimal
/// exponent is below -4 or at least 16; `NaN`, `Infinity`, `-0` spelled out.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the same shortest digits, as `1.5e16`.
    let sci = format!("{d:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        format!("{d}")
    } else {
        format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

/// The type a BSON type number names (`isValidBSONType`), as `$type` spells it.
fn type_by_number(n: i64) -> Option<&'static str> {
    Some(match n {
        -1 => "minKey",
        1 => "double",
        2 => "string",
        3 => "object",
        4 => "array",
        5 => "binData",
        6 => "undefined",
        7 => "objectId",
        8 => "bool",
        9 => "date",
        10 => "null",
        11 => "regex",
        12 => "dbPointer",
        13 => "javascript",
        14 => "symbol",
        15 => "javascriptWithScope",
        16 => "int",
        17 => "timestamp",
        18 => "long",
        19 => "decimal",
        127 => "maxKey",
        _ => return None,
    })
}

/// A `$convert` target: the type's name and, for `binData`, the raw `subtype` (8.0's
/// `to: {type, subtype}`), checked only by the conversions that use it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) name: &'static str,
    subtype: Option<Bson>,
}

/// `computeBinDataType`: an integral number naming a BinData subtype, 0-8 or the
/// user-defined 128-255 (0 when not given).
fn bindata_subtype(subtype: &Option<Bson>) -> Result<u8> {
    let Some(v) = subtype else {
        return Ok(0);
    };
    let Some(n) = Num::from_bson(v).map(Num::f64) else {
        return Err(CommandError::new(
            4341108,
            format!(
                "For BinData, $convert's 'subtype' argument must be a number, but is {}",
                type_name(Some(v))
            ),
        ));
    };
    if n.fract() != 0.0 {
        return Err(CommandError::new(
            4341106,
            "In $convert, numeric 'subtype' argument is not an integer",
        ));
    }
    let code = n.clamp(i32::MIN as f64, i32::MAX as f64) as i32;
    if !((0..=8).contains(&code) || (128..=255).contains(&code)) {
        return Err(CommandError::new(
            4341107,
            format!(
                "In $convert, numeric value for 'subtype' does not correspond to a BinData type: {code}"
            ),
        ));
    }
    Ok(code as u8)
}

/// `ExpressionConvert`'s target type: a type name (BadValue when unknown), a BSON type number
/// (FailedToParse when not one) or `{type, subtype}`; conversions the table lacks fail later
/// with ConversionFailure, which `onError` catches.
pub(super) fn parse_target(to: &Bson) -> Result<Target> {
    let name = |v: &Bson| -> Result<&'static str> {
        match v {
            Bson::String(s) => {
                const NAMES: &[&str] = &[
                    "double",
                    "string",
                    "object",
                    "array",
                    "binData",
                    "undefined",
                    "objectId",
                    "bool",
                    "date",
                    "null",
                    "regex",
                    "dbPointer",
                    "javascript",
                    "symbol",
                    "javascriptWithScope",
                    "int",
                    "timestamp",
                    "long",
                    "decimal",
                    "minKey",
                    "maxKey",
                    "missing",
                ];
                NAMES
                    .iter()
                    .find(|n| **n == s.as_str())
                    .copied()
                    .ok_or_else(|| CommandError::bad_value(format!("Unknown type name: {s}")))
            }
            v => match Num::from_bson(v) {
                Some(n) => {
                    let f = n.f64();
                    if f.fract() != 0.0 || !f.is_finite() {
                        return Err(CommandError::failed_to_parse(
                            "In $convert, numeric 'to' argument is not an integer",
                        ));
                    }
                    type_by_number(f as i64).ok_or_else(|| {
                        CommandError::failed_to_parse(format!(
                            "In $convert, numeric value for 'to' does not correspond to a BSON type: {}",
                            f as i64
                        ))
                    })
                }
                None => Err(CommandError::failed_to_parse(format!(
                    "$convert's 'to' argument must be a string or number, but is {}",
                    type_name(Some(v))
                ))),
            },
        }
    };
    let Bson::Document(d) = to else {
        return Ok(Target {
            name: name(to)?,
            subtype: None,
        });
    };
    let mut target = None;
    let mut subtype = None;
    for (k, v) in d {
        match k.as_str() {
            "type" => target = Some(name(v)?),
            "subtype" => subtype = Some(v.clone()),
            other => {
                return Err(CommandError::failed_to_parse(format!(
                    "$convert's 'to' argument found an unknown field: {other}; only 'type' and 'subtype' are allowed"
                )));
            }
        }
    }
    Ok(Target {
        name: target.ok_or_else(|| {
            CommandError::failed_to_parse("$convert's 'to' argument is missing its 'type' field")
        })?,
        subtype,
    })
}

/// 8.0's `format` of BinData <-> string conversions.
const FORMATS: &[&str] = &["auto", "base64", "base64url", "hex", "utf8", "uuid"];

/// How the server prints a BinData value in messages (`Value::toString`).
fn show_bindata(b: &bson::Binary) -> String {
    let hex: String = b.bytes.iter().map(|x| format!("{x:02X}")).collect();
    format!("BinData({}, {hex})", u8::from(b.subtype))
}

/// `checkFormat`: the BinData <-> string conversions need a `format` (4341115, sic).
fn need_format<'a>(format: Option<&'a str>, from: &str, to: &str) -> Result<&'a str> {
    format.ok_or_else(|| {
        CommandError::new(
            4341115,
            format!("Format must be speficied when converting from '{from}' to '{to}'"),
        )
    })
}

/// `parseStringToBinData`: a string to BinData of `subtype` in `format`; any failure is a
/// ConversionFailure naming the input.
fn string_to_bindata(s: &str, subtype: u8, format: &str) -> Result<Bson> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let fail = |why: &str| {
        CommandError::new(
            CONVERSION_FAILURE,
            format!("Failed to parse BinData '{s}' in $convert with no onError value: {why}"),
        )
    };
    if (format == "uuid") != (subtype == 4) {
        return Err(fail(
            "Only the 'uuid' format is allowed with the UUID subtype",
        ));
    }
    let bytes = match format {
        "base64" => STANDARD
            .decode(s)
            .map_err(|_| fail("Input is not a valid base64 string"))?,
        "base64url" => URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| fail("Input is not a valid base64url string"))?,
        "hex" => {
            let valid = s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid {
                return Err(fail("Input is not a valid hexadecimal string"));
            }
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
                .collect()
        }
        "uuid" => match uuid::Uuid::try_parse(s) {
            Ok(u) if s.len() == 36 => u.as_bytes().to_vec(),
            _ => return Err(fail(&format!("Invalid UUID string: {s}"))),
        },
        "utf8" => s.as_bytes().to_vec(),
        other => return Err(fail(&format!("Invalid format '{other}'"))),
    };
    Ok(Bson::Binary(bson::Binary {
        subtype: subtype.into(),
        bytes,
    }))
}

/// `performConvertBinDataToString`: 'auto' is the UUID string of a 16-byte UUID and base64
/// otherwise; hex is upper case, base64url unpadded.
fn bindata_to_string(b: &bson::Binary, format: &str) -> Result<Bson> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let fail = |why: &str| {
        CommandError::new(
            CONVERSION_FAILURE,
            format!(
                "Failed to convert '{}' to string in $convert with no onError value: {why}",
                show_bindata(b)
            ),
        )
    };
    let uuid = (u8::from(b.subtype) == 4)
        .then(|| uuid::Uuid::from_slice(&b.bytes).ok())
        .flatten();
    Ok(Bson::String(match (format, uuid) {
        ("auto" | "uuid", Some(u)) => u.hyphenated().to_string(),
        ("uuid", None) => return Err(fail("BinData does not represent a valid UUID")),
        ("auto" | "base64", _) => STANDARD.encode(&b.bytes),
        ("base64url", _) => URL_SAFE_NO_PAD.encode(&b.bytes),
        ("hex", _) => b.bytes.iter().map(|x| format!("{x:02X}")).collect(),
        _ => String::from_utf8(b.bytes.clone())
            .map_err(|_| fail("BinData does not represent a valid UTF-8 string"))?,
    }))
}

pub(super) fn conversion_error(from: &Bson, to: &str) -> CommandError {
    CommandError::new(
        CONVERSION_FAILURE,
        format!(
            "Unsupported conversion from {} to {to} in $convert with no onError value",
            type_name(Some(from))
        ),
    )
}

pub(super) fn parse_failure(s: &str, why: &str) -> CommandError {
    CommandError::new(
        CONVERSION_FAILURE,
        format!("Failed to parse number '{s}' in $convert with no onError value: {why}"),
    )
}

pub(super) fn parse_int_str(s: &str) -> Result<i64> {
    if s.is_empty() {
        return Err(parse_failure(s, "No digits"));
    }
    s.parse::<i64>().map_err(|_| {
        if s.chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
        {
            parse_failure(s, "Overflow")
        } else {
            parse_failure(s, "Did not consume whole string.")
        }
    })
}

pub(super) fn double_to_integer(d: f64, from: &Bson, min: f64, max: f64) -> Result<i64> {
    if d.is_nan() {
        return Err(CommandError::new(
            CONVERSION_FAILURE,
            "Attempt to convert NaN value to integer type in $convert with no onError value",
        ));
    }
    let t = d.trunc();
    if t < min || t > max {
        return Err(CommandError::new(
            CONVERSION_FAILURE,
            format!(
                "Conversion would overflow target type in $convert with no onError value: {}",
                from
            ),
        ));
    }
    Ok(t as i64)
}

/// `$convert` of a non-null value to the target type name (`$toString` and the other
/// shorthands: BinData prints in the 'auto' format).
pub(crate) fn convert(v: Bson, to: &str) -> Result<Bson> {
    convert_to(v, to, &None, Some("auto"), false)
}

/// `$convert` of a non-null value to `to` (BinData of `subtype`), with 8.0's `format` for
/// BinData <-> string.
fn convert_to(
    v: Bson,
    to: &str,
    subtype: &Option<Bson>,
    format: Option<&str>,
    big_endian: bool,
) -> Result<Bson> {
    let err = || conversion_error(&v, to);
    // 8.1: numbers to and from their bytes, in `byteOrder` (little-endian by default).
    let ordered = |mut bytes: Vec<u8>| {
        if big_endian {
            bytes.reverse();
        }
        bytes
    };
    if to == "binData" {
        let bytes = match &v {
            Bson::String(s) => {
                let format = need_format(format, "string", "binData")?;
                return string_to_bindata(s, bindata_subtype(subtype)?, format);
            }
            Bson::Binary(b) => {
                if u8::from(b.subtype) != bindata_subtype(subtype)? {
                    return Err(CommandError::new(
                        CONVERSION_FAILURE,
                        "Conversions between different BinData subtypes are not supported",
                    ));
                }
                return Ok(v.clone());
            }
            Bson::Int32(i) => i.to_le_bytes().to_vec(),
            Bson::Int64(i) => i.to_le_bytes().to_vec(),
            Bson::Double(d) => d.to_le_bytes().to_vec(),
            _ => return Err(err()),
        };
        return Ok(Bson::Binary(bson::Binary {
            subtype: bindata_subtype(subtype)?.into(),
            bytes: ordered(bytes),
        }));
    }
    if let Bson::Binary(b) = &v {
        let le = ordered(b.bytes.clone());
        // readSizedNumberFromBinData: the value's own width, sign-extended.
        let sized = |widths: &[usize]| -> Result<()> {
            if widths.contains(&le.len()) {
                Ok(())
            } else {
                Err(CommandError::new(
                    CONVERSION_FAILURE,
                    format!(
                        "Failed to convert '{}' to number in $convert because of invalid length: {}",
                        show_bindata(b),
                        le.len()
                    ),
                ))
            }
        };
        let int = |widths: &[usize]| -> Result<i64> {
            sized(widths)?;
            let fill = if le.last().is_some_and(|b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut buf = [fill; 8];
            buf[..le.len()].copy_from_slice(&le);
            Ok(i64::from_le_bytes(buf))
        };
        match to {
            "string" => return bindata_to_string(b, need_format(format, "binData", "string")?),
            "int" => return Ok(Bson::Int32(int(&[1, 2, 4])? as i32)),
            "long" => return Ok(Bson::Int64(int(&[1, 2, 4, 8])?)),
            "double" => {
                sized(&[4, 8])?;
                return Ok(Bson::Double(if le.len() == 4 {
                    f32::from_le_bytes([le[0], le[1], le[2], le[3]]) as f64
                } else {
                    let mut buf = [0u8; 8];
                    buf.copy_from_slice(&le);
                    f64::from_le_bytes(buf)
                }));
            }
            _ => {}
        }
    }
    Ok(match to {
        "bool" => match &v {
            Bson::Boolean(_) => v.clone(),
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
                Bson::Boolean(truthy(Some(&v)))
            }
            Bson::String(_) | Bson::ObjectId(_) | Bson::DateTime(_) | Bson::Timestamp(_)
            | Bson::Document(_) | Bson::Array(_) | Bson::Binary(_) | Bson::RegularExpression(_)
            | Bson::JavaScriptCode(_) | Bson::MinKey | Bson::MaxKey => Bson::Boolean(true),
            _ => return Err(err()),
        },
        "int" | "long" => {
            let (min, max) = if to == "int" {
                (i32::MIN as f64, i32::MAX as f64)
            } else {
                (i64::MIN as f64, 9.223372036854775e18)
            };
            let i: i64 = match &v {
                Bson::Boolean(b) => *b as i64,
                Bson::Int32(i) => *i as i64,
                Bson::Int64(i) => {
                    if to == "int" && i32::try_from(*i).is_err() {
                        return Err(CommandError::new(
                            CONVERSION_FAILURE,
                            format!("Conversion would overflow target type in $convert with no onError value: {i}"),
                        ));
                    }
                    *i
                }
                Bson::Double(d) => double_to_integer(*d, &v, min, max)?,
                // Truncated at decimal precision: a long's full range converts exactly.
                Bson::Decimal128(d) => match D128::from_decimal128(d).trunc_i64() {
                    Some(i) if to == "long" || i32::try_from(i).is_ok() => i,
                    Some(_) => double_to_integer(f64::INFINITY, &v, min, max)?,
                    None => double_to_integer(dec_to_f64(d).signum() * f64::INFINITY, &v, min, max)?,
                },
                Bson::DateTime(d) if to == "long" => d.timestamp_millis(),
                Bson::String(s) => {
                    let i = parse_int_str(s)?;
                    if to == "int" && i32::try_from(i).is_err() {
                        return Err(parse_failure(s, "Overflow"));
                    }
                    i
                }
                _ => return Err(err()),
            };
            if to == "int" { Bson::Int32(i as i32) } else { Bson::Int64(i) }
        }
        "double" | "decimal" => {
            let d = match &v {
                Bson::Boolean(b) => *b as i64 as f64,
                Bson::Int32(i) => *i as f64,
                Bson::Int64(i) => *i as f64,
                Bson::Double(d) => *d,
                Bson::Decimal128(d) => {
                    if to == "decimal" {
                        return Ok(v.clone());
                    }
                    dec_to_f64(d)
                }
                Bson::DateTime(d) => d.timestamp_millis() as f64,
                Bson::String(s) => {
                    if to == "decimal" {
                        return s
                            .parse::<Decimal128>()
                            .map(Bson::Decimal128)
                            .map_err(|_| parse_failure(s, "Failed to parse string to decimal"));
                    }
                    let t = s.trim();
                    if t.len() != s.len() || s.is_empty() {
                        return Err(parse_failure(s, "Did not consume whole string."));
                    }
                    s.parse::<f64>()
                        .map_err(|_| parse_failure(s, "Did not consume whole string."))?
                }
                _ => return Err(err()),
            };
            if to == "double" {
                Bson::Double(d)
            } else {
                match &v {
                    Bson::Int32(i) => Bson::Decimal128(
                        i.to_string().parse().unwrap_or_else(|_| f64_to_dec(d)),
                    ),
                    Bson::Int64(i) => Bson::Decimal128(
                        i.to_string().parse().unwrap_or_else(|_| f64_to_dec(d)),
                    ),
                    // The server's `Decimal128(double)`: 15 significant digits.
                    _ => Bson::Decimal128(D128::from_f64(d).into_decimal128()),
                }
            }
        }
        "string" => match &v {
            Bson::ObjectId(o) => Bson::String(o.to_hex()),
            Bson::String(_) => v.clone(),
            Bson::Double(d) => Bson::String(format_double(*d)),
            Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) | Bson::Boolean(_)
            | Bson::DateTime(_) => {
                Bson::String(coerce_to_string("$convert", &Some(v.clone()))?)
            }
            _ => return Err(err()),
        },
        "objectId" => match &v {
            Bson::ObjectId(_) => v.clone(),
            Bson::String(s) => Bson::ObjectId(ObjectId::parse_str(s).map_err(|_| {
                CommandError::new(
                    CONVERSION_FAILURE,
                    format!("Failed to parse objectId '{s}' in $convert with no onError value: Invalid string length for parsing to OID, expected 24 but found {}", s.len()),
                )
            })?),
            _ => return Err(err()),
        },
        "date" => match &v {
            Bson::DateTime(_) => v.clone(),
            Bson::Int64(i) => Bson::DateTime(bson::DateTime::from_millis(*i)),
            Bson::Double(d) => Bson::DateTime(bson::DateTime::from_millis(*d as i64)),
            Bson::Decimal128(d) => {
                Bson::DateTime(bson::DateTime::from_millis(dec_to_f64(d) as i64))
            }
            Bson::ObjectId(o) => Bson::DateTime(o.timestamp()),
            Bson::Timestamp(t) => Bson::DateTime(bson::DateTime::from_millis(t.time as i64 * 1000)),
            Bson::String(s) => Bson::DateTime(parse_date(s).ok_or_else(|| {
                CommandError::new(
                    CONVERSION_FAILURE,
                    format!("Error parsing date string '{s}'; in $convert with no onError value"),
                )
            })?),
            _ => return Err(err()),
        },
        _ => return Err(err()),
    })
}

pub(super) fn op_convert(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let d = object_arg("$convert", arg, 9)?;
    for k in d.keys() {
        if !matches!(
            k.as_str(),
            "input" | "to" | "onError" | "onNull" | "format" | "base" | "byteOrder"
        ) {
            return Err(CommandError::failed_to_parse(format!(
                "$convert found an unknown argument: {k}"
            )));
        }
    }
    let input_expr = d
        .get("input")
        .ok_or_else(|| CommandError::failed_to_parse("Missing 'input' parameter to $convert"))?;
    let to_expr = d
        .get("to")
        .ok_or_else(|| CommandError::failed_to_parse("Missing 'to' parameter to $convert"))?;
    let to = eval(to_expr, scope)?;
    let input = eval(input_expr, scope)?;
    let format = d
        .get("format")
        .map(|f| eval(f, scope))
        .transpose()?
        .flatten();
    let byte_order = d
        .get("byteOrder")
        .map(|b| eval(b, scope))
        .transpose()?
        .flatten();
    // As the server: the target is parsed first, then a nullish input gives onNull and a
    // nullish target null; 'format' and 'byteOrder' errors are not conversion failures.
    let target = (!nullish(&to))
        .then(|| parse_target(to.as_ref().unwrap_or(&Bson::Null)))
        .transpose()?;
    if nullish(&input) {
        return match d.get("onNull") {
            Some(e) => eval(e, scope),
            None => Ok(Some(Bson::Null)),
        };
    }
    let Some(target) = target else {
        return Ok(Some(Bson::Null));
    };
    let shown = |v: &Bson| {
        format!(
            "{} with value {}",
            type_name(Some(v)),
            crate::query::matcher::server_display(v)
        )
    };
    let format = match format {
        None | Some(Bson::Null) | Some(Bson::Undefined) => None,
        Some(Bson::String(f)) if FORMATS.contains(&f.as_str()) => Some(f),
        Some(Bson::String(f)) => {
            return Err(CommandError::new(
                4341125,
                format!("Invalid 'format' argument for $convert: {f}"),
            ));
        }
        Some(other) => {
            return Err(CommandError::new(
                4341114,
                format!(
                    "$convert requires that 'format' be a string, found: {}",
                    shown(&other)
                ),
            ));
        }
    };
    let big_endian = match byte_order {
        None | Some(Bson::Null) | Some(Bson::Undefined) => false,
        Some(Bson::String(b)) if b == "little" => false,
        Some(Bson::String(b)) if b == "big" => true,
        Some(Bson::String(b)) => {
            return Err(CommandError::new(
                9130002,
                format!("Invalid 'byteOrder' argument for $convert: {b}"),
            ));
        }
        Some(other) => {
            return Err(CommandError::new(
                9130001,
                format!(
                    "$convert requires that 'byteOrder' be a string, found: {}",
                    shown(&other)
                ),
            ));
        }
    };
    match convert_to(
        input.unwrap_or(Bson::Null),
        target.name,
        &target.subtype,
        format.as_deref(),
        big_endian,
    ) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == CONVERSION_FAILURE => match d.get("onError") {
            Some(on_error) => eval(on_error, scope),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Strings

/// A double as C++'s `ostream << double` prints it (`%g`, 6 significant digits), which the
/// server uses in many messages: `2`, `1.5`, `1.23457e+06`, `inf`, `nan`.
pub(crate) fn stream_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    let sci = format!("{d:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        trim(format!("{:.*}", (5 - exp) as usize, d))
    } else {
        format!(
            "{}e{}{:02}",
            trim(mantissa.to_string()),
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

/// `$toUUID` (8.x): a UUID string to binData subtype 4, as `$convert` with `format: "uuid"`.
pub(super) fn op_to_uuid(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$toUUID", arg, 1, scope)?;
    let input = v.into_iter().next().flatten();
    if nullish(&input) {
        return Ok(Some(Bson::Null));
    }
    match &input {
        Some(Bson::Binary(b)) if b.subtype == bson::spec::BinarySubtype::Uuid => Ok(input),
        Some(Bson::String(s)) => match uuid::Uuid::try_parse(s) {
            // The server takes only the hyphenated 36-character form.
            Ok(u) if s.len() == 36 => Ok(Some(Bson::Binary(bson::Binary {
                subtype: bson::spec::BinarySubtype::Uuid,
                bytes: u.as_bytes().to_vec(),
            }))),
            _ => Err(CommandError::new(
                CONVERSION_FAILURE,
                format!(
                    "Failed to parse BinData '{s}' in $convert with no onError value: Invalid UUID string: {s}"
                ),
            )),
        },
        other => Err(CommandError::new(
            CONVERSION_FAILURE,
            format!(
                "Unsupported conversion from {} to binData in $convert with no onError value",
                tn(other)
            ),
        )),
    }
}
