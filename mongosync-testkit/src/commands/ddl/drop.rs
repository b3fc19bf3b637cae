//! `drop` and `dropDatabase`.

use bson::{Document, doc};

use super::super::{Ctx, Reply};
use super::check_collection_uuid;
use crate::error::{CommandError, Result, codes};
use crate::storage::catalog::Namespace;

pub fn drop(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["collectionUUID"])?;
    let coll = ctx.collection_arg()?;
    check_collection_uuid(ctx, &ctx.db, &coll)?;
    let ns = ctx.ns(&coll);
    match ctx.server.catalog.drop_namespace(&ctx.db, &coll) {
        Some(Namespace::Collection(c)) => {
            let n = 1 + c.data.read().indexes.len() as i32;
            Ok(Reply::Doc(doc! {"nIndexesWas": n, "ns": ns}))
        }
        Some(Namespace::View(_)) => Ok(Reply::Doc(doc! {"ns": ns})),
        // Since 7.0 dropping a missing collection succeeds.
        None => Ok(Reply::Doc(Document::new())),
    }
}

/// `dropDatabase`: 8.x replies `{ok: 1}` alone, whether the database existed or not.
pub fn drop_database(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[])?;
    // A replica-set member keeps its oplog and its users.
    match ctx.db.as_str() {
        "local" => {
            return Err(CommandError::new(
                codes::ILLEGAL_OPERATION,
                "Cannot drop 'local' database while replication is active",
            ));
        }
        "admin" => {
            return Err(CommandError::new(
                codes::ILLEGAL_OPERATION,
                "Dropping the 'admin' database is prohibited.",
            ));
        }
        _ => {}
    }
    // `CmdDropDatabase`: the argument must be 1.
    if let Some(n) = crate::util::as_f64(ctx.arg())
        && n != 1.0
    {
        return Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            "have to pass 1 as db parameter",
        ));
    }
    ctx.server.catalog.drop_database(&ctx.db);
    Ok(Reply::Doc(Document::new()))
}
