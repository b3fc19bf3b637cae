//! BSON comparison order as the server defines it (MinKey < null < numbers < strings < objects
//! < arrays < binary < ObjectId < booleans < dates < timestamps < regex < MaxKey), with
//! numbers of every type compared by value.

use std::cmp::Ordering;

use bson::Bson;

/// The rank of a value's type in the server's comparison order (numbers share one rank).
pub fn type_rank(value: &Bson) -> u8 {
    let _ = value;
    todo!("query engine")
}

/// Compares two values as the server does (`$sort`, range operators, index order).
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let _ = (a, b);
    todo!("query engine")
}

/// Whether two values are equal as the server's `$eq` sees them (1 == 1.0 == Int64(1)).
pub fn values_equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}
