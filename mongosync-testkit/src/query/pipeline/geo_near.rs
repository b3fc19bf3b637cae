//! `$geoNear`: the documents nearest a point first, with their distance (and location), over
//! the collection's one `2d` or `2dsphere` index.

use bson::{Bson, Document};

use super::metadata::Row;
use super::{set_path, type_name};
use crate::error::{CommandError, Result, codes};
use crate::query::expr::DocMeta;
use crate::query::matcher::Matcher;
use crate::query::matcher::geo::{Geometry, Near, legacy_point, parse_geojson};

/// A parsed `$geoNear` stage.
#[derive(Debug, Clone)]
pub struct GeoNear {
    near: Near,
    distance_field: Vec<String>,
    include_locs: Option<Vec<String>>,
    multiplier: f64,
    query: Option<Matcher>,
    key: Option<String>,
}

fn bad(code: i32, msg: impl Into<String>) -> CommandError {
    CommandError::new(code, msg)
}

fn field_path(v: &Bson, what: &str) -> Result<Vec<String>> {
    match v {
        Bson::String(s) if !s.is_empty() && !s.starts_with('$') => {
            Ok(s.split('.').map(str::to_string).collect())
        }
        Bson::String(_) => Err(bad(
            16411,
            format!("{what} must not be empty or start with '$'"),
        )),
        other => Err(CommandError::type_mismatch(format!(
            "$geoNear requires that '{what}' option is a String, found {}",
            type_name(other)
        ))),
    }
}

impl GeoNear {
    /// Parses the stage's options (`vars`: the pipeline's `let`).
    pub fn parse(spec: &Bson, vars: &Document) -> Result<GeoNear> {
        let Bson::Document(d) = spec else {
            return Err(bad(
                10065,
                format!(
                    "invalid parameter: expected an object ($geoNear), found {}",
                    type_name(spec)
                ),
            ));
        };
        let num = |k: &str| -> Result<Option<f64>> {
            match d.get(k) {
                None => Ok(None),
                Some(v) => match crate::query::compare::number_as_f64(v) {
                    Some(x) if x >= 0.0 => Ok(Some(x)),
                    Some(_) => Err(bad(codes::BAD_VALUE, format!("{k} must be nonnegative"))),
                    None => Err(CommandError::type_mismatch(format!(
                        "{k} must be a number, found {}",
                        type_name(v)
                    ))),
                },
            }
        };
        for k in d.keys() {
            if !matches!(
                k.as_str(),
                "near"
                    | "distanceField"
                    | "spherical"
                    | "maxDistance"
                    | "minDistance"
                    | "query"
                    | "includeLocs"
                    | "distanceMultiplier"
                    | "key"
            ) {
                return Err(bad(
                    codes::FAILED_TO_PARSE,
                    format!("Unknown argument to $geoNear: {k}"),
                ));
            }
        }
        let spherical = match d.get("spherical") {
            None => false,
            Some(v) => crate::query::expr::truthy(Some(v)),
        };
        let (point, geojson) = match d.get("near") {
            Some(Bson::Document(g)) if g.contains_key("type") => match parse_geojson(g)? {
                Geometry::Point(p) => (p, true),
                _ => {
                    return Err(bad(
                        codes::BAD_VALUE,
                        "$geoNear requires near to be a Point",
                    ));
                }
            },
            Some(v) => match legacy_point(v) {
                Some(p) => (p, false),
                None => {
                    return Err(bad(
                        codes::BAD_VALUE,
                        "$geoNear requires a 'near' option as an Array",
                    ));
                }
            },
            None => {
                return Err(bad(codes::BAD_VALUE, "$geoNear requires a 'near' argument"));
            }
        };
        let distance_field = match d.get("distanceField") {
            Some(v) => field_path(v, "distanceField")?,
            None => {
                return Err(bad(
                    codes::BAD_VALUE,
                    "$geoNear requires a 'distanceField' option as a String",
                ));
            }
        };
        let include_locs = d
            .get("includeLocs")
            .map(|v| field_path(v, "includeLocs"))
            .transpose()?;
        let query = match d.get("query") {
            None => None,
            Some(Bson::Document(q)) => {
                let m = Matcher::new(q, vars)?;
                if m.near().is_some() {
                    return Err(crate::query::matcher::geo::near_not_allowed());
                }
                Some(m)
            }
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "query must be an object, found {}",
                    type_name(other)
                )));
            }
        };
        let key = match d.get("key") {
            None => None,
            Some(Bson::String(k)) if !k.is_empty() => Some(k.clone()),
            Some(Bson::String(_)) => {
                return Err(bad(
                    codes::BAD_VALUE,
                    "$geoNear parameter 'key' cannot be the empty string",
                ));
            }
            Some(other) => {
                return Err(CommandError::type_mismatch(format!(
                    "$geoNear parameter 'key' must be of type string but found type: {}",
                    type_name(other)
                )));
            }
        };
        Ok(GeoNear {
            near: Near {
                point,
                spherical: spherical || geojson,
                geojson,
                min: num("minDistance")?,
                max: num("maxDistance")?,
            },
            distance_field,
            include_locs,
            multiplier: num("distanceMultiplier")?.unwrap_or(1.0),
            query,
            key,
        })
    }

    /// The indexed field: `key`, else the one `2d` index, else the one `2dsphere` index
    /// (IndexNotFound, 27, as the server otherwise).
    fn field(&self, specs: &[Document]) -> Result<String> {
        let of_kind = |kind: &str| -> Vec<String> {
            specs
                .iter()
                .filter_map(|s| s.get_document("key").ok())
                .filter_map(|k| {
                    k.iter()
                        .find(|(_, v)| matches!(v, Bson::String(t) if t == kind))
                        .map(|(f, _)| f.clone())
                })
                .collect()
        };
        let (flat, sphere) = (of_kind("2d"), of_kind("2dsphere"));
        if let Some(k) = &self.key {
            if flat.contains(k) || sphere.contains(k) {
                return Ok(k.clone());
            }
            return Err(bad(
                codes::BAD_VALUE,
                format!("no geo indices for geoNear on key: {k}"),
            ));
        }
        let pick = |v: Vec<String>, kind: &str| -> Result<Option<String>> {
            match v.len() {
                0 => Ok(None),
                1 => Ok(v.into_iter().next()),
                _ => Err(bad(
                    codes::INDEX_NOT_FOUND,
                    format!(
                        "There is more than one {kind} index; unsure which to use for $geoNear"
                    ),
                )),
            }
        };
        if let Some(f) = pick(flat, "2d")? {
            return Ok(f);
        }
        pick(sphere, "2dsphere")?.ok_or_else(|| {
            bad(
                codes::INDEX_NOT_FOUND,
                "$geoNear requires a 2d or 2dsphere index, but none were found",
            )
        })
    }

    /// Runs the stage over the collection's documents, given its index specifications. Each
    /// output carries its distance (unscaled by `distanceMultiplier`, as the server keeps it)
    /// and matched point as metadata.
    pub fn run(&self, docs: Vec<Document>, specs: &[Document]) -> Result<Vec<Row>> {
        let field = self.field(specs)?;
        if let Some(q) = &self.query {
            q.bind_indexes(specs.iter())?;
        }
        let mut hits = Vec::new();
        for doc in docs {
            if let Some(q) = &self.query
                && !q.try_matches(&doc)?
            {
                continue;
            }
            if let Some((d, loc)) = self.near.nearest(&doc, &field) {
                hits.push((d, loc, doc));
            }
        }
        hits.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(hits
            .into_iter()
            .map(|(d, loc, mut doc)| {
                set_path(
                    &mut doc,
                    &self.distance_field,
                    Bson::Double(d * self.multiplier),
                );
                if let Some(p) = &self.include_locs {
                    set_path(&mut doc, p, loc.clone());
                }
                let meta = DocMeta {
                    geo_near_distance: Some(d),
                    geo_near_point: Some(loc),
                    ..DocMeta::EMPTY
                };
                Row {
                    doc,
                    meta: Some(Box::new(meta)),
                }
            })
            .collect())
    }
}
