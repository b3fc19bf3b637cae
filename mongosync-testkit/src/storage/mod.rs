//! In-memory storage: the catalog of databases, collections and views, and each collection's
//! documents (raw BSON in insertion order) with its `_id` index and secondary indexes.

pub mod catalog;
pub mod collection;
pub mod index;

pub use catalog::{Catalog, View};
pub use collection::{Collection, CollectionData, RecordId};
pub use index::Index;
