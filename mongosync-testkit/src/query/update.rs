//! Updates: operator updates (`$set`, `$inc`, `$push` with modifiers, positional `$`, `$[]`,
//! `$[<id>]` with `arrayFilters`, ...), replacements, and pipeline updates.

use bson::{Bson, Document};

use crate::error::Result;

/// A parsed update.
#[derive(Debug, Clone)]
pub struct Update {
    _private: (),
}

/// What an update is applied with.
#[derive(Debug, Clone, Default)]
pub struct UpdateContext<'a> {
    /// The array index the query matched, for the positional `$` operator.
    pub positional: Option<usize>,
    /// Whether this update builds the document an upsert inserts (`$setOnInsert` applies).
    pub is_insert: bool,
    /// The `let` variables, for pipeline updates.
    pub vars: Option<&'a Document>,
}

impl Update {
    /// Parses an update: a document of operators, a replacement document, or an array (a
    /// pipeline). `array_filters` are the `arrayFilters` of the statement. Errors are the
    /// server's (e.g. 9 FailedToParse "Unknown modifier: $foo", 40 ConflictingUpdateOperators).
    pub fn parse(update: &Bson, array_filters: Option<&[Document]>) -> Result<Update> {
        let _ = (update, array_filters);
        todo!("updates")
    }

    /// Whether this is a replacement document (no operators).
    pub fn is_replacement(&self) -> bool {
        todo!("updates")
    }

    /// Applies the update to `doc`, returning the new document. `_id` may not change
    /// (66 ImmutableField); a replacement keeps `doc`'s `_id` first. Field order follows the
    /// server (new fields appended; `_id` first).
    pub fn apply(&self, doc: &Document, ctx: &UpdateContext<'_>) -> Result<Document> {
        let _ = (doc, ctx);
        todo!("updates")
    }
}
