//! `renameCollection`.

use bson::{Bson, Document};

use super::super::{Ctx, Reply};
use super::check_collection_uuid;
use crate::error::{CommandError, Result, codes};

/// `db.coll` of `renameCollection`'s source or target (`NamespaceString::isValid`).
fn split_ns<'a>(ns: &'a str, which: &str) -> Result<(&'a str, &'a str)> {
    ns.split_once('.')
        .filter(|(d, c)| crate::storage::catalog::validate_collection_name(d, c).is_ok())
        .ok_or_else(|| CommandError::invalid_namespace(format!("Invalid {which} namespace: {ns}")))
}

pub fn rename_collection(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&[
        "to",
        "dropTarget",
        "stayTemp",
        "collectionUUID",
        "newTargetCollectionUuid",
    ])?;
    if ctx.db != "admin" {
        return Err(CommandError::new(
            codes::UNAUTHORIZED,
            "renameCollection may only be run against the admin database.",
        ));
    }
    let from = match ctx.arg() {
        Bson::String(s) => s.clone(),
        other => {
            return Err(CommandError::wrong_field_type(
                "renameCollection",
                "renameCollection",
                crate::util::type_name(other),
                &["string"],
            ));
        }
    };
    let to = match ctx.body.get("to") {
        Some(Bson::String(s)) => s.clone(),
        None => return Err(CommandError::missing_field("renameCollection", "to")),
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "renameCollection",
                "to",
                crate::util::type_name(other),
                &["string"],
            ));
        }
    };
    let drop_target = match ctx.body.get("dropTarget") {
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Binary(_)) => true,
        _ => false,
    };
    let from = split_ns(&from, "source")?;
    let to = split_ns(&to, "target")?;
    check_collection_uuid(ctx, from.0, from.1)?;
    ctx.server.catalog.rename(from, to, drop_target)?;
    Ok(Reply::Doc(Document::new()))
}
