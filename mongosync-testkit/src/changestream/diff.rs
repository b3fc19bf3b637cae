//! Update descriptions (stub: replaced by the real implementation).
use bson::Document;
/// Description.
#[derive(Debug, Clone, Default)]
pub struct UpdateDescription { /// u
 pub updated_fields: Document, /// r
 pub removed_fields: Vec<String>, /// t
 pub truncated_arrays: Vec<(String, i32)>, /// d
 pub disambiguated_paths: Document }
/// Describe.
pub fn describe(before: &Document, after: &Document) -> UpdateDescription { let _ = (before, after); todo!() }
impl UpdateDescription {
    /// Doc.
    pub fn to_document(&self, expanded: bool) -> Document { let _ = expanded; todo!() }
}
