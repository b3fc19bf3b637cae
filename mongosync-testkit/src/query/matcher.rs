//! Query filters (`find`, `update`, `delete`, `$match`): parsing with the server's errors,
//! and matching.

use bson::{Bson, Document};

use crate::error::Result;

/// A parsed query filter.
#[derive(Debug, Clone)]
pub struct Matcher {
    _private: (),
}

/// The outcome of matching one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchDetails {
    /// Whether the document matched.
    pub matched: bool,
    /// For the positional update operator `$`: the index of the first array element that
    /// made the match, if an array was traversed.
    pub array_index: Option<usize>,
}

impl Matcher {
    /// Parses a filter document; unknown operators and malformed arguments fail with the
    /// server's error codes (e.g. 2 BadValue "unknown operator: $foo").
    ///
    /// `vars` are the `let` variables visible to `$expr`.
    pub fn new(filter: &Document, vars: &Document) -> Result<Matcher> {
        let _ = (filter, vars);
        todo!("query engine")
    }

    /// Whether `doc` matches.
    pub fn matches(&self, doc: &Document) -> bool {
        self.match_details(doc).matched
    }

    /// Matches `doc`, also reporting the array position for the positional `$` operator.
    pub fn match_details(&self, doc: &Document) -> MatchDetails {
        let _ = doc;
        todo!("query engine")
    }

    /// The `_id` equality value when the filter pins `_id` to one value (`{_id: v}` or
    /// `{_id: {$eq: v}}`, possibly inside an `$and` with other conditions), so callers can use
    /// the `_id` index instead of scanning.
    pub fn id_equality(&self) -> Option<&Bson> {
        todo!("query engine")
    }

    /// The `_id` range the filter restricts to (`$gt`/`$gte`/`$lt`/`$lte` on `_id`), as
    /// bounds, so callers can scan the `_id` index from the lower bound only. `None` if
    /// unrestricted. Bounds are inclusive/exclusive as written; the matcher still checks
    /// each document, so the range may be wider than exact.
    pub fn id_range(&self) -> Option<(std::ops::Bound<Bson>, std::ops::Bound<Bson>)> {
        todo!("query engine")
    }

    /// The equality conditions of the filter (`{a: 1, "b.c": 2}`, `$eq`, inside `$and`) as a
    /// document, used to seed the document an upsert inserts.
    pub fn equality_fields(&self) -> Document {
        todo!("query engine")
    }
}
