//! Dotted paths (`a.b.0.c`) through documents and arrays.

use bson::{Bson, Document};

/// The values a dotted path reaches in `doc`, traversing arrays as queries do (`a.b` on
/// `{a: [{b: 1}, {b: 2}]}` reaches 1 and 2; a numeric component also indexes arrays).
pub fn lookup_all<'a>(doc: &'a Document, path: &str) -> Vec<&'a Bson> {
    let _ = (doc, path);
    todo!("query engine")
}

/// The single value at a dotted path without array expansion other than numeric indexes
/// (as `$set`, `$project` and `_id` extraction read it); `None` if missing.
pub fn get<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let _ = (doc, path);
    todo!("query engine")
}
