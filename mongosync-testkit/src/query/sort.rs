//! Sort specifications (`{a: 1, b: -1}`, `{$natural: 1}`, `{score: {$meta: "textScore"}}`).

use std::cmp::Ordering;

use bson::Document;

use crate::error::Result;

/// A parsed sort specification.
#[derive(Debug, Clone)]
pub struct SortSpec {
    _private: (),
}

impl SortSpec {
    /// Parses a sort document; a bad direction fails as on the server (15975 / 2).
    pub fn new(spec: &Document) -> Result<SortSpec> {
        let _ = spec;
        todo!("query engine")
    }

    /// Compares two documents under this sort (arrays sort by their smallest element ascending
    /// and largest descending, as the server does; missing sorts as null).
    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        let _ = (a, b);
        todo!("query engine")
    }

    /// `Some(direction)` when the sort is `{$natural: ±1}` alone.
    pub fn natural(&self) -> Option<i32> {
        todo!("query engine")
    }
}
