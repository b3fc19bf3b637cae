//! Document metadata (the server's `DocumentMetadataFields`: text score, `$geoNear` distance
//! and point, `randVal`, sort key) and `$meta`, which reads it. Metadata travels beside a
//! document, never inside it: `find` builds it from its filter, a pipeline carries it from the
//! stage that produced it to the stages that read it.
//!
//! Metadata that only a stage produces (`$text`, `$geoNear`, `$search`) must be available where
//! it is read: a pipeline checks that when it is parsed (`DepsTracker::setNeedsMetadata`,
//! 40218), so in a pipeline an absent value is missing; an expression evaluated without any
//! metadata (outside a pipeline) fails the same way.

use super::*;

/// One document's metadata; `None` fields are absent. Boxed beside documents only when a
/// stage produces some, so documents without metadata pay nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocMeta {
    /// `$text`: the document's score.
    pub text_score: Option<f64>,
    /// `$sample` (and `{$meta: "randVal"}` sorts).
    pub rand_val: Option<f64>,
    /// `$geoNear`: the distance, in the query's units (before `distanceMultiplier`).
    pub geo_near_distance: Option<f64>,
    /// `$geoNear`: the location that matched.
    pub geo_near_point: Option<Bson>,
    /// A `$sort`'s key for the document (an array of its key values).
    pub sort_key: Option<Bson>,
}

impl DocMeta {
    /// No metadata at all.
    pub const EMPTY: DocMeta = DocMeta {
        text_score: None,
        rand_val: None,
        geo_near_distance: None,
        geo_near_point: None,
        sort_key: None,
    };

    /// A `$text` match's metadata: its score.
    pub fn text(score: Option<f64>) -> DocMeta {
        DocMeta {
            text_score: score,
            ..DocMeta::EMPTY
        }
    }

    /// The value `{$meta: name}` reads, if present.
    pub fn get(&self, name: &str) -> Option<Bson> {
        match name {
            "textScore" => self.text_score.map(Bson::Double),
            "randVal" => self.rand_val.map(Bson::Double),
            "geoNearDistance" => self.geo_near_distance.map(Bson::Double),
            "geoNearPoint" => self.geo_near_point.clone(),
            "sortKey" => self.sort_key.clone(),
            _ => None,
        }
    }
}

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
pub(crate) fn check_meta(arg: &Bson) -> Result<()> {
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
pub(crate) fn validated(name: &str) -> Option<&'static str> {
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
    if let Some(meta) = scope.meta {
        return Ok(meta.get(name));
    }
    match validated(name) {
        Some(what) => Err(unavailable(what)),
        None => Ok(None),
    }
}

/// The server's 40218 for metadata a query reads but nothing produces.
pub(crate) fn unavailable(what: &str) -> CommandError {
    CommandError::new(
        40218,
        format!("query requires {what} metadata, but it is not available"),
    )
}
