//! Bitwise query operators: `$bitsAllSet`, `$bitsAnySet`, `$bitsAllClear`, `$bitsAnyClear`.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BitsOp {
    AllSet,
    AllClear,
    AnySet,
    AnyClear,
}

pub(super) fn parse_bits(name: &str, op: BitsOp, v: &Bson) -> Result<Pred> {
    let mut positions = Vec::new();
    match v {
        Bson::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = parse_non_negative_element(&i.to_string(), item).map_err(|e| {
                    CommandError::bad_value(format!("Failed to parse bit position. {}", e.message))
                })?;
                positions.push(p.min(u32::MAX as i64) as u32);
            }
        }
        Bson::Binary(b) => {
            for (byte_idx, byte) in b.bytes.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        positions.push((byte_idx * 8 + bit) as u32);
                    }
                }
            }
        }
        _ if is_number(v) => {
            let m = parse_non_negative_element(name, v)?;
            for bit in 0..64 {
                if m & (1i64 << bit) != 0 {
                    positions.push(bit);
                }
            }
        }
        _ => {
            return Err(CommandError::bad_value(format!(
                "{name} takes an Array, a number, or a BinData but received: {name}: {}",
                server_display(v)
            )));
        }
    }
    let mut mask = 0u64;
    for p in &positions {
        // Bits past 63 test the sign bit: numbers are sign-extended.
        mask |= 1u64 << (*p).min(63);
    }
    Ok(Pred::Bits(op, mask, positions))
}

// ---------------------------------------------------------------------------------------------
// Matching

pub(super) fn bits_matches(op: BitsOp, mask: u64, positions: &[u32], x: &Bson) -> bool {
    let bit_set: Box<dyn Fn(u32) -> bool> = match x {
        Bson::Binary(b) => {
            let bytes = b.bytes.clone();
            Box::new(move |p: u32| {
                let byte = (p / 8) as usize;
                byte < bytes.len() && bytes[byte] & (1 << (p % 8)) != 0
            })
        }
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            let n = match x {
                Bson::Int32(i) => *i as i64,
                Bson::Int64(i) => *i,
                _ => match as_i64_exact(x) {
                    Some(n) => n,
                    None => return false,
                },
            };
            let n = n as u64;
            return match op {
                BitsOp::AllSet => n & mask == mask,
                BitsOp::AllClear => !n & mask == mask,
                BitsOp::AnySet => n & mask != 0,
                BitsOp::AnyClear => !n & mask != 0,
            };
        }
        _ => return false,
    };
    match op {
        BitsOp::AllSet => positions.iter().all(|p| bit_set(*p)),
        BitsOp::AllClear => positions.iter().all(|p| !bit_set(*p)),
        BitsOp::AnySet => positions.iter().any(|p| bit_set(*p)),
        BitsOp::AnyClear => positions.iter().any(|p| !bit_set(*p)),
    }
}

// ---------------------------------------------------------------------------------------------
// $jsonSchema (a subset: the keywords validators commonly use)
