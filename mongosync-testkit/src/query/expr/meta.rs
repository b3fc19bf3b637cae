//! `$meta` in aggregation expressions: a document's metadata (text score, `$geoNear` distance,
//! sort key...). The caller hands the current document's metadata in the variables under the
//! reserved name [`META_VAR`] (no user variable can start with `$`). Metadata that only a stage
//! produces (`$text`, `$geoNear`, `$search`) is an error when absent, as the server's
//! `DepsTracker::setNeedsMetadata` refuses it (40218); any other absent metadata is missing.

use super::*;

/// The reserved variable holding the current document's metadata, e.g. `{textScore: 1.5}`.
pub(super) const META_VAR: &str = "$meta";

/// The names `$meta` accepts (`DocumentMetadataFields::parseMetaType`).
const NAMES: &[&str] = &[
    "textScore",
    "randVal",
    "searchScore",
    "searchHighlights",
    "searchScoreDetails",
    "searchSequenceToken",
    "vectorSearchScore",
    "score",
    "scoreDetails",
    "geoNearDistance",
    "geoNearPoint",
    "recordId",
    "indexKey",
    "sortKey",
    "timeseriesBucketMinTime",
    "timeseriesBucketMaxTime",
    "changeStreamControlEvent",
];

/// Parse-time checks: a string argument (17307) naming known metadata (17308).
pub(super) fn check_meta(arg: &Bson) -> Result<()> {
    match arg {
        Bson::String(name) if NAMES.contains(&name.as_str()) => Ok(()),
        Bson::String(name) => Err(CommandError::new(
            17308,
            format!("Unsupported argument to $meta: {name}"),
        )),
        _ => Err(CommandError::new(
            17307,
            "$meta only supports string arguments",
        )),
    }
}

/// The metadata the server checks for availability, with the name its message prints
/// (`DocumentMetadataFields::typeNameToDebugString`).
fn validated(name: &str) -> Option<&'static str> {
    Some(match name {
        "textScore" => "text score",
        "geoNearDistance" => "$geoNear distance",
        "geoNearPoint" => "$geoNear point",
        "searchScore" => "$search score",
        "vectorSearchScore" => "$vectorSearch score",
        "score" => "score",
        "scoreDetails" => "scoreDetails",
        _ => return None,
    })
}

pub(super) fn op_meta(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    check_meta(arg)?;
    let Bson::String(name) = arg else {
        return Ok(None);
    };
    if let Some(Bson::Document(meta)) = scope.user.get(META_VAR)
        && let Some(v) = meta.get(name)
    {
        return Ok(Some(v.clone()));
    }
    match validated(name) {
        Some(what) => Err(CommandError::new(
            40218,
            format!("query requires {what} metadata, but it is not available"),
        )),
        None => Ok(None),
    }
}
