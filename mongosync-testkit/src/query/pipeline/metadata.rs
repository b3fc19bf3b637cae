//! Document metadata in pipelines (the server's `DocumentMetadataFields`): each document
//! travels as a [`Row`] with the metadata stages produced for it (`$text` scores, `$geoNear`
//! distances and points, `$sample`'s `randVal`, `$sort` keys), and the parse-time check that
//! every `$meta` reads metadata an earlier stage produces (40218).

use bson::{Bson, Document};

use super::{Pipeline, Stage};
use crate::error::Result;
use crate::query::expr::{self, DocMeta};
use crate::query::sort::SortSpec;

/// A document on its way through a pipeline, with its metadata (the server's
/// `DocumentMetadataFields`): `None` until a stage produces some (`$text`, `$geoNear`,
/// `$sample`), so documents without metadata carry one empty pointer.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(super) doc: Document,
    pub(super) meta: Option<Box<DocMeta>>,
}

impl Row {
    pub(super) fn plain(doc: Document) -> Row {
        Row { doc, meta: None }
    }

    /// The metadata `$meta` reads. Always some inside a pipeline: what is available was checked
    /// when the pipeline was parsed, so an absent value is missing, not an error.
    pub(super) fn meta(&self) -> Option<&DocMeta> {
        Some(meta_or_empty(&self.meta))
    }

    pub(super) fn meta_mut(&mut self) -> &mut DocMeta {
        self.meta.get_or_insert_with(Box::default)
    }
}

pub(super) fn rows(docs: Vec<Document>) -> Vec<Row> {
    docs.into_iter().map(Row::plain).collect()
}

pub(super) fn docs(rows: Vec<Row>) -> Vec<Document> {
    rows.into_iter().map(|r| r.doc).collect()
}

pub(super) fn meta_or_empty(meta: &Option<Box<DocMeta>>) -> &DocMeta {
    meta.as_deref().unwrap_or(&DocMeta::EMPTY)
}

/// Orders rows by their `randVal`.
pub(super) fn compare_rand(a: &Row, b: &Row) -> std::cmp::Ordering {
    let v = |r: &Row| r.meta.as_ref().and_then(|m| m.rand_val);
    v(a).partial_cmp(&v(b)).unwrap_or(std::cmp::Ordering::Equal)
}

/// Sorts rows by `spec`, `{$meta: ...}` keys reading each row's metadata.
pub(super) fn compare_rows(spec: &SortSpec, a: &Row, b: &Row) -> std::cmp::Ordering {
    spec.compare_meta(&a.doc, a.meta.as_deref(), &b.doc, b.meta.as_deref())
}

impl Pipeline {
    /// Checks, as the server's dependency analysis does when it plans a pipeline, that every
    /// `$meta` reads metadata some stage before it produces (40218): `$text` as the first
    /// stage gives text scores, `$geoNear` distances and points; nothing gives `$search`
    /// metadata. A stage that rebuilds its documents (`$group`...) ends the check: after it,
    /// metadata is simply missing. `$facet` pipelines see what their input has; `$lookup` and
    /// `$unionWith` pipelines start afresh on their own collection.
    pub(super) fn check_metadata(&self, available: Available) -> Result<()> {
        let mut rebuilt = false;
        for (spec, stage) in self.specs.iter().zip(&self.stages) {
            match stage {
                Stage::Facet(facets) if !rebuilt => {
                    for (_, p) in facets {
                        p.check_metadata(available)?;
                    }
                }
                Stage::Facet(_) => {}
                Stage::Lookup(l) => {
                    if !rebuilt {
                        l.let_vars
                            .values()
                            .try_for_each(|e| reads_available(e, available))?;
                    }
                    if let Some(p) = &l.pipeline {
                        p.check_metadata(Available::at_start(&p.stages))?;
                    }
                }
                Stage::UnionWith {
                    pipeline: Some(p), ..
                } => p.check_metadata(Available::at_start(&p.stages))?,
                Stage::UnionWith { .. } => {}
                _ if !rebuilt => spec
                    .values()
                    .try_for_each(|v| reads_available(v, available))?,
                _ => {}
            }
            rebuilt |= matches!(
                stage,
                Stage::Group(_)
                    | Stage::Bucket(_)
                    | Stage::BucketAuto(_)
                    | Stage::SortByCount(_)
                    | Stage::Count(_)
                    | Stage::Facet(_)
            );
        }
        Ok(())
    }
}

/// The metadata a pipeline's stages (or a find's projection and sort) can read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Available {
    /// Text scores (`$text`).
    pub text: bool,
    /// Distances and points (`$geoNear`, a find's `$near`).
    pub geo_near: bool,
}

impl Available {
    /// What the first stage produces: text scores after `$text`, distances and points after
    /// `$geoNear`.
    pub(super) fn at_start(stages: &[Stage]) -> Available {
        match stages.first() {
            Some(Stage::Match(_, m)) if m.has_text() => Available {
                text: true,
                geo_near: false,
            },
            Some(Stage::GeoNear(_)) => Available {
                text: false,
                geo_near: true,
            },
            _ => Available::default(),
        }
    }

    fn has(self, name: &str) -> bool {
        match name {
            "textScore" => self.text,
            "geoNearDistance" | "geoNearPoint" => self.geo_near,
            _ => false,
        }
    }
}

/// Whether `v` holds `{$meta: name}`.
pub(super) fn reads_meta(v: &Bson, name: &str) -> bool {
    match v {
        Bson::Document(d) => {
            (d.len() == 1 && d.get("$meta") == Some(&Bson::String(name.to_string())))
                || d.values().any(|x| reads_meta(x, name))
        }
        Bson::Array(items) => items.iter().any(|x| reads_meta(x, name)),
        _ => false,
    }
}

/// Fails with 40218 when `v` holds a `{$meta: name}` (in an expression, or a `$sort` key) for
/// metadata the server checks and that is not available.
pub(crate) fn reads_available(v: &Bson, available: Available) -> Result<()> {
    match v {
        Bson::Document(d) => {
            if d.len() == 1 {
                if let Some(Bson::String(name)) = d.get("$meta") {
                    return match expr::validated_meta(name) {
                        Some(what) if !available.has(name) => Err(expr::unavailable(what)),
                        _ => Ok(()),
                    };
                }
                if d.contains_key("$literal") {
                    return Ok(());
                }
            }
            d.values().try_for_each(|x| reads_available(x, available))
        }
        Bson::Array(items) => items.iter().try_for_each(|x| reads_available(x, available)),
        _ => Ok(()),
    }
}
