//! Collection and index commands: `create`, `drop`, `dropDatabase`, `renameCollection`,
//! `collMod`, `listCollections`, `createIndexes`, `dropIndexes`, `listIndexes`, and the size
//! figures (`collStats`, `dataSize`).

mod coll_mod;
mod create;
mod drop;
mod indexes;
mod list;
mod options;
mod rename;
mod stats;

pub use coll_mod::coll_mod;
pub use create::create;
pub use drop::{drop, drop_database};
pub use indexes::{create_indexes, drop_indexes, list_indexes};
pub use list::list_collections;
pub use rename::rename_collection;
pub use stats::{coll_stats, data_size, storage_stats};

use bson::Bson;

use super::Ctx;
use crate::error::{CommandError, Result, codes};

/// The generic `collectionUUID` argument: the namespace must be the collection with that
/// UUID, or the command fails with CollectionUUIDMismatch (361) naming the collection that
/// has it, as `checkCollectionUUIDMismatch`.
fn check_collection_uuid(ctx: &Ctx<'_>, db: &str, coll: &str) -> Result<()> {
    let expected = match ctx.body.get("collectionUUID") {
        None => return Ok(()),
        Some(Bson::Binary(b)) if b.subtype == bson::spec::BinarySubtype::Uuid => {
            bson::Uuid::from_bytes(b.bytes.as_slice().try_into().map_err(|_| {
                CommandError::new(codes::INVALID_UUID, "uuid must be a 16-byte binary field")
            })?)
        }
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                &ctx.name,
                "collectionUUID",
                crate::util::type_name(other),
                &["binData"],
            ));
        }
    };
    if ctx
        .server
        .catalog
        .collection(db, coll)
        .is_some_and(|c| c.uuid == expected)
    {
        return Ok(());
    }
    let actual = ctx.server.catalog.database(db).and_then(|d| {
        d.collections
            .iter()
            .find(|(_, c)| c.uuid == expected)
            .map(|(name, _)| name.clone())
    });
    Err(CommandError::new(
        codes::COLLECTION_UUID_MISMATCH,
        "Collection UUID does not match that specified",
    )
    .with_extra("db", db)
    .with_extra(
        "collectionUUID",
        Bson::Binary(bson::Binary::from_uuid(expected)),
    )
    .with_extra("expectedCollection", coll)
    .with_extra("actualCollection", actual.map_or(Bson::Null, Bson::String)))
}

/// OperationNotSupportedInTransaction (263).
fn not_in_transaction(message: String) -> CommandError {
    CommandError::new(263, message)
}
