//! `find` projections: inclusion, exclusion, `_id` rules, `$slice`, `$elemMatch`, positional
//! `$`, and aggregation expressions.

use bson::Document;

use crate::error::Result;
use crate::query::matcher::Matcher;

/// A parsed find projection.
#[derive(Debug, Clone)]
pub struct Projection {
    _private: (),
}

impl Projection {
    /// Parses a projection; a mix of inclusion and exclusion fails as on the server (31254 /
    /// 31253), and so on.
    pub fn new(spec: &Document, vars: &Document) -> Result<Projection> {
        let _ = (spec, vars);
        todo!("query engine")
    }

    /// Applies the projection. `filter` is the query, needed by the positional `$` projection.
    pub fn apply(&self, doc: &Document, filter: Option<&Matcher>) -> Result<Document> {
        let _ = (doc, filter);
        todo!("query engine")
    }
}
