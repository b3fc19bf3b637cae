//! Reading the spec's extended JSON into BSON, keeping key order.

use bson::{Bson, Document};
use serde_json::Value;

/// Parses extended JSON text into a document. bson's own visitor keeps key order and decodes
/// `$oid`, `$numberLong`, ...; but it reads every negative JSON integer as an int64, so a
/// second, order-free parse tells which integers were plain JSON numbers (int32 when they fit).
pub fn parse_doc(text: &str) -> Result<Document, String> {
    let doc: Document = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let plain: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut b = Bson::Document(doc);
    fix_ints(&mut b, &plain);
    match b {
        Bson::Document(d) => Ok(d),
        _ => Err("not a document".into()),
    }
}

fn fix_ints(b: &mut Bson, v: &Value) {
    match (b, v) {
        (Bson::Document(d), Value::Object(o)) => {
            for (k, x) in d.iter_mut() {
                if let Some(y) = o.get(k) {
                    if let (Bson::Int64(i), Value::Number(_)) = (&*x, y)
                        && let Ok(n) = i32::try_from(*i)
                    {
                        *x = Bson::Int32(n);
                        continue;
                    }
                    fix_ints(x, y);
                }
            }
        }
        (Bson::Array(a), Value::Array(o)) => {
            for (x, y) in a.iter_mut().zip(o) {
                if let (Bson::Int64(i), Value::Number(_)) = (&*x, y)
                    && let Ok(n) = i32::try_from(*i)
                {
                    *x = Bson::Int32(n);
                    continue;
                }
                fix_ints(x, y);
            }
        }
        _ => {}
    }
}
