//! Geospatial query operators (`$geoWithin`, `$geoIntersects`, `$near`, `$nearSphere`):
//! GeoJSON and legacy-pair parsing with the server's messages, spherical geometry on great
//! circles (a sphere of the server's Earth radius) and flat geometry for legacy shapes.

use super::*;

/// The server's Earth radius (`kRadiusOfEarthInMeters`).
pub const EARTH_RADIUS_M: f64 = 6_378_100.0;

/// A position: `x` is the longitude, `y` the latitude for spherical shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pt {
    pub x: f64,
    pub y: f64,
}

/// A GeoJSON geometry (or a legacy pair, as a point).
#[derive(Debug, Clone)]
pub enum Geometry {
    Point(Pt),
    LineString(Vec<Pt>),
    Polygon(Vec<Vec<Pt>>),
    MultiPoint(Vec<Pt>),
    MultiLineString(Vec<Vec<Pt>>),
    MultiPolygon(Vec<Vec<Vec<Pt>>>),
    Collection(Vec<Geometry>),
    /// A polygon with the strict-winding CRS (`urn:x-mongodb:crs:strictwinding:EPSG:4326`):
    /// one loop (its vertices, not closed) whose interior is on its left, counter-clockwise,
    /// and which may cover more than a hemisphere.
    BigPolygon(Vec<Pt>),
}

/// The CRS names the server accepts (`geoparser.cpp`); the strict-winding one makes a
/// polygon a big polygon.
const CRS_STRICT_WINDING: &str = "urn:x-mongodb:crs:strictwinding:EPSG:4326";

/// The shape of a `$geoWithin`.
#[derive(Debug, Clone)]
pub(super) enum Within {
    /// `$geometry`: a (multi)polygon on the sphere.
    Sphere(Geometry),
    /// `$box`: flat, lower-left and upper-right corners.
    Box(Pt, Pt),
    /// `$polygon`: flat.
    Polygon(Vec<Pt>),
    /// `$center`: flat, radius in coordinate units.
    Center(Pt, f64),
    /// `$centerSphere`: radius in radians.
    CenterSphere(Pt, f64),
}

/// A parsed geospatial predicate.
#[derive(Debug, Clone)]
pub(super) enum GeoPred {
    Within(Within),
    Intersects(Geometry),
    /// `$near`/`$nearSphere`: matches within the distance bounds; results are sorted by
    /// distance by the caller.
    Near(Near),
}

/// `$near`, `$nearSphere` or a `$geoNear` stage's point and bounds.
#[derive(Debug, Clone)]
pub struct Near {
    pub point: Pt,
    /// Distances on the sphere: meters for a GeoJSON point, radians for a legacy pair.
    pub spherical: bool,
    /// Whether the point was GeoJSON (distances in meters).
    pub geojson: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

fn num(v: &Bson) -> Option<f64> {
    crate::query::compare::number_as_f64(v)
}

fn bad(msg: impl Into<String>) -> CommandError {
    CommandError::bad_value(msg)
}

/// A legacy pair: an array of numbers or a document whose first two values are numbers.
pub fn legacy_point(v: &Bson) -> Option<Pt> {
    let mut it: Box<dyn Iterator<Item = &Bson>> = match v {
        Bson::Array(a) => Box::new(a.iter()),
        Bson::Document(d) if !d.contains_key("type") => Box::new(d.values()),
        _ => return None,
    };
    let x = num(it.next()?)?;
    let y = num(it.next()?)?;
    Some(Pt { x, y })
}

fn position(v: &Bson) -> Result<Pt> {
    let Bson::Array(a) = v else {
        return Err(bad("Point must be an array or object, instead got type "
            .to_string()
            + type_name(v)));
    };
    if a.iter().any(|e| num(e).is_none()) {
        return Err(bad("Point must only contain numeric elements"));
    }
    if a.len() < 2 || a.len() > 3 {
        return Err(bad("Point must only contain two numeric elements"));
    }
    let p = Pt {
        x: num(&a[0]).unwrap_or(0.0),
        y: num(&a[1]).unwrap_or(0.0),
    };
    if !(-180.0..=180.0).contains(&p.x) || !(-90.0..=90.0).contains(&p.y) {
        return Err(bad(format!(
            "longitude/latitude is out of bounds, lng: {} lat: {}",
            p.x, p.y
        )));
    }
    Ok(p)
}

fn positions(v: &Bson, what: &str) -> Result<Vec<Pt>> {
    let Bson::Array(a) = v else {
        return Err(bad(format!("{what} coordinates must be an array")));
    };
    a.iter().map(position).collect()
}

fn ring(v: &Bson) -> Result<Vec<Pt>> {
    let pts = positions(v, "Polygon")?;
    if pts.len() < 4 {
        return Err(bad(format!(
            "Loop must have at least 4 vertices: {}",
            server_display(v)
        )));
    }
    if pts.first() != pts.last() {
        return Err(bad(format!(
            "Loop is not closed, first vertex does not equal last vertex: {}",
            server_display(v)
        )));
    }
    let mut distinct: Vec<Pt> = Vec::new();
    for p in &pts[..pts.len() - 1] {
        if !distinct.contains(p) {
            distinct.push(*p);
        }
    }
    if distinct.len() < 3 {
        return Err(bad(format!(
            "Loop must have at least 3 different vertices: {}",
            server_display(v)
        )));
    }
    Ok(pts)
}

fn polygon(v: &Bson) -> Result<Vec<Vec<Pt>>> {
    let Bson::Array(rings) = v else {
        return Err(bad("Polygon coordinates must be an array"));
    };
    if rings.is_empty() {
        return Err(bad("Polygon has no loops."));
    }
    rings.iter().map(ring).collect()
}

/// The `crs` field of a GeoJSON object (`parseGeoJSONCRS`): `true` for the strict-winding
/// CRS, which only a polygon may name.
fn parse_crs(d: &Document, polygon: bool) -> Result<bool> {
    let Some(crs) = d.get("crs") else {
        return Ok(false);
    };
    let Bson::Document(crs) = crs else {
        return Err(bad("GeoJSON CRS must be an object"));
    };
    if crs.get_str("type").ok() != Some("name") {
        return Err(bad("GeoJSON CRS must have field \"type\": \"name\""));
    }
    let Some(Bson::Document(props)) = crs.get("properties") else {
        return Err(bad("CRS must have field \"properties\" which is an object"));
    };
    let Some(Bson::String(name)) = props.get("name") else {
        return Err(bad("In CRS, \"properties.name\" must be a string"));
    };
    match name.as_str() {
        "urn:ogc:def:crs:OGC:1.3:CRS84" | "EPSG:4326" => Ok(false),
        CRS_STRICT_WINDING if polygon => Ok(true),
        CRS_STRICT_WINDING => Err(bad("Strict winding order is only supported by polygon")),
        _ => Err(bad(format!("Unknown CRS name: {name}"))),
    }
}

/// A big polygon's coordinates (`parseBigSimplePolygonCoordinates`): exactly one closed
/// loop of at least 3 different vertices whose edges do not cross, kept in its winding.
fn big_polygon(coords: &Bson) -> Result<Vec<Pt>> {
    let Bson::Array(rings) = coords else {
        return Err(bad("Coordinates of polygon must be an array"));
    };
    if rings.len() != 1 {
        return Err(bad(format!(
            "Only one simple loop is allowed in a big polygon: {}",
            server_display(coords)
        )));
    }
    let Bson::Array(items) = &rings[0] else {
        return Err(bad("GeoJSON coordinates must be an array of coordinates"));
    };
    let mut pts = items.iter().map(position).collect::<Result<Vec<Pt>>>()?;
    if pts.is_empty() {
        return Err(bad(format!(
            "Loop has no vertices: {}",
            server_display(&rings[0])
        )));
    }
    if pts.first() != pts.last() {
        return Err(bad(format!(
            "Loop is not closed: {}",
            server_display(&rings[0])
        )));
    }
    pts.dedup();
    pts.pop();
    if pts.len() < 3 {
        return Err(bad(format!(
            "Loop must have at least 3 different vertices: {}",
            server_display(coords)
        )));
    }
    let invalid = |why: String| {
        bad(format!(
            "Loop is not valid: {} {why}",
            server_display(coords)
        ))
    };
    let n = pts.len();
    for i in 0..n {
        for j in i + 1..n {
            if pts[i] == pts[j] {
                return Err(invalid(format!("Duplicate vertices: {i} and {j}")));
            }
        }
    }
    let v: Vec<V3> = pts.iter().map(|p| to_v3(*p)).collect();
    for i in 0..n {
        // Edges that share no vertex with edge i.
        for j in i + 2..n {
            if i == 0 && j == n - 1 {
                continue;
            }
            if arcs_cross(v[i], v[(i + 1) % n], v[j], v[(j + 1) % n], false) {
                return Err(invalid(format!("Edges {i} and {j} cross")));
            }
        }
    }
    Ok(pts)
}

/// Parses a GeoJSON object (`{type, coordinates}` or a `GeometryCollection`), with the
/// server's BadValue messages.
pub fn parse_geojson(d: &Document) -> Result<Geometry> {
    let ty = match d.get("type") {
        Some(Bson::String(t)) => t.as_str(),
        _ => return Err(bad("GeoJSON type must be a string")),
    };
    if ty == "GeometryCollection" {
        let Some(Bson::Array(gs)) = d.get("geometries") else {
            return Err(bad("GeometryCollection geometries must be an array"));
        };
        let mut out = Vec::new();
        for g in gs {
            let Bson::Document(g) = g else {
                return Err(bad("Element 0 of \"geometries\" is not an object"));
            };
            out.push(parse_geojson(g)?);
        }
        return Ok(Geometry::Collection(out));
    }
    let strict = parse_crs(d, ty == "Polygon")?;
    let Some(coords) = d.get("coordinates") else {
        return Err(bad(format!(
            "unknown GeoJSON type: {}",
            server_display(&Bson::Document(d.clone()))
        )));
    };
    if !matches!(coords, Bson::Array(_)) {
        return Err(bad("GeoJSON coordinates must be an array"));
    }
    let Bson::Array(items) = coords else {
        unreachable!()
    };
    Ok(match ty {
        "Point" => Geometry::Point(position(coords)?),
        "LineString" => {
            let pts = positions(coords, "LineString")?;
            if pts.len() < 2 {
                return Err(bad(format!(
                    "GeoJSON LineString must have at least 2 vertices: {}",
                    server_display(coords)
                )));
            }
            Geometry::LineString(pts)
        }
        "Polygon" if strict => Geometry::BigPolygon(big_polygon(coords)?),
        "Polygon" => Geometry::Polygon(polygon(coords)?),
        "MultiPoint" => Geometry::MultiPoint(positions(coords, "MultiPoint")?),
        "MultiLineString" => Geometry::MultiLineString(
            items
                .iter()
                .map(|l| positions(l, "MultiLineString"))
                .collect::<Result<_>>()?,
        ),
        "MultiPolygon" => Geometry::MultiPolygon(items.iter().map(polygon).collect::<Result<_>>()?),
        _ => {
            return Err(bad(format!(
                "unknown GeoJSON type: {}",
                server_display(&Bson::Document(d.clone()))
            )));
        }
    })
}

/// A stored value as a geometry: GeoJSON or a legacy pair; `None` if it is neither.
pub fn stored_geometry(v: &Bson) -> Option<Geometry> {
    match v {
        Bson::Document(d) if d.contains_key("type") => parse_geojson(d).ok(),
        _ => legacy_point(v).map(Geometry::Point),
    }
}

/// Checks a value stored under a `2dsphere` index key (16755 as on the server).
pub fn check_indexable(v: &Bson) -> Result<()> {
    match v {
        Bson::Document(d) if d.contains_key("type") => parse_geojson(d).map(|_| ()),
        _ => match legacy_point(v) {
            Some(p) if (-180.0..=180.0).contains(&p.x) && (-90.0..=90.0).contains(&p.y) => Ok(()),
            Some(p) => Err(bad(format!(
                "longitude/latitude is out of bounds, lng: {} lat: {}",
                p.x, p.y
            ))),
            None => Err(bad(format!(
                "Point must be an array or object, instead got type {}",
                type_name(v)
            ))),
        },
    }
}

/// The values at `path` that may be geometries: an array that is not a legacy pair itself
/// stands for its elements (a multikey geo field).
pub fn geo_values<'a>(doc: &'a Document, path: &str) -> Vec<&'a Bson> {
    let mut out = Vec::new();
    crate::query::path::traverse(doc, path, LeafArrays::NoTraversal, &mut |r| {
        match r.value {
            Some(Bson::Array(a)) if legacy_point(r.value.unwrap_or(&Bson::Null)).is_none() => {
                out.extend(a.iter())
            }
            Some(v) => out.push(v),
            None => {}
        }
        false
    });
    out
}

/// The error for `$near`-like operators where no geospatial sort can happen (a `$match`
/// stage, `countDocuments`, a `$geoNear` query).
pub fn near_not_allowed() -> CommandError {
    CommandError::new(
        5626500,
        "$geoNear, $near, and $nearSphere are not allowed in this context, as these operators \
         require sorting geospatial data. If you do not need sort, consider using $geoWithin \
         instead. Check out https://dochub.mongodb.org/core/near-sort-operation and \
         https://dochub.mongodb.org/core/nearSphere-sort-operationfor more details.",
    )
}

// ---- parsing the operators ----

pub(super) fn parse_geo_within(v: &Bson) -> Result<Pred> {
    let Bson::Document(d) = v else {
        return Err(bad("$geoWithin not an object"));
    };
    let Some((k, arg)) = d.iter().next() else {
        return Err(bad("$geoWithin requires a shape"));
    };
    let pair =
        |v: &Bson| legacy_point(v).ok_or_else(|| bad("Point must only contain numeric elements"));
    let shape = match k.as_str() {
        "$geometry" => {
            let Bson::Document(g) = arg else {
                return Err(bad("$geometry must be an object"));
            };
            let g = parse_geojson(g)?;
            if !matches!(
                g,
                Geometry::Polygon(_) | Geometry::MultiPolygon(_) | Geometry::BigPolygon(_)
            ) {
                return Err(bad(format!(
                    "$geoWithin not supported with provided geometry: {}",
                    server_display(v)
                )));
            }
            Within::Sphere(g)
        }
        "$box" => match arg {
            Bson::Array(a) if a.len() == 2 => Within::Box(pair(&a[0])?, pair(&a[1])?),
            _ => return Err(bad(format!("malformed query: {}", server_display(v)))),
        },
        "$polygon" => match arg {
            Bson::Array(a) if a.len() >= 3 => {
                Within::Polygon(a.iter().map(pair).collect::<Result<_>>()?)
            }
            Bson::Array(_) => {
                return Err(bad("Polygon must have at least 3 points"));
            }
            _ => return Err(bad(format!("malformed query: {}", server_display(v)))),
        },
        "$center" | "$centerSphere" => {
            let (c, r) = match arg {
                Bson::Array(a) if a.len() == 2 => (pair(&a[0])?, num(&a[1])),
                _ => return Err(bad(format!("malformed query: {}", server_display(v)))),
            };
            let Some(r) = r.filter(|r| *r >= 0.0) else {
                return Err(bad("radius must be a non-negative number"));
            };
            if k == "$center" {
                Within::Center(c, r)
            } else {
                Within::CenterSphere(c, r)
            }
        }
        _ => {
            return Err(bad(format!(
                "unknown geo specifier: {k}: {}",
                server_display(arg)
            )));
        }
    };
    Ok(Pred::Geo(Box::new(GeoPred::Within(shape))))
}

pub(super) fn parse_geo_intersects(v: &Bson) -> Result<Pred> {
    let g = match v {
        Bson::Document(d) => match d.get("$geometry") {
            Some(Bson::Document(g)) => parse_geojson(g)?,
            _ => return Err(bad(format!("bad geo query: {}", server_display(v)))),
        },
        _ => return Err(bad("$geoIntersect must take an object")),
    };
    Ok(Pred::Geo(Box::new(GeoPred::Intersects(g))))
}

/// Parses `$near`/`$nearSphere` (with the sibling `$maxDistance`/`$minDistance` of the same
/// operator document, passed in `ops`).
pub(super) fn parse_near(op: &str, v: &Bson, ops: &Document) -> Result<Pred> {
    let mut min = ops.get("$minDistance").map(num);
    let mut max = ops.get("$maxDistance").map(num);
    let sphere = op == "$nearSphere";
    let (point, geojson) = match v {
        Bson::Document(d) if d.contains_key("$geometry") => {
            let Some(Bson::Document(g)) = d.get("$geometry") else {
                return Err(bad("$geometry must be an object"));
            };
            let Geometry::Point(p) = parse_geojson(g)? else {
                return Err(bad(format!(
                    "invalid point in geo near query $geometry argument: {}",
                    server_display(v)
                )));
            };
            if let Some(m) = d.get("$maxDistance") {
                max = Some(num(m));
            }
            if let Some(m) = d.get("$minDistance") {
                min = Some(num(m));
            }
            (p, true)
        }
        // A GeoJSON point without `$geometry`.
        Bson::Document(d) if d.contains_key("type") => match parse_geojson(d)? {
            Geometry::Point(p) => (p, true),
            _ => {
                return Err(bad(format!(
                    "invalid point in geo near query: {}",
                    server_display(v)
                )));
            }
        },
        _ => match legacy_point(v) {
            Some(p) => (p, false),
            None => {
                return Err(bad(format!(
                    "near must be first in: {}",
                    server_display(&Bson::Document(ops.clone()))
                )));
            }
        },
    };
    let check = |m: Option<Option<f64>>, name: &str| -> Result<Option<f64>> {
        match m {
            None => Ok(None),
            Some(None) => Err(bad(format!("{name} must be a number"))),
            Some(Some(x)) if x < 0.0 || x.is_nan() => {
                Err(bad(format!("{name} must be non-negative")))
            }
            Some(Some(x)) => Ok(Some(x)),
        }
    };
    let min = check(min, "minDistance")?;
    let max = check(max, "maxDistance")?;
    if min.is_some() && !geojson && !sphere {
        return Err(bad("$minDistance not allowed in legacy $near queries"));
    }
    Ok(Pred::Geo(Box::new(GeoPred::Near(Near {
        point,
        spherical: sphere || geojson,
        geojson,
        min,
        max,
    }))))
}

// ---- matching ----

impl GeoPred {
    pub(super) fn matches(&self, v: &Bson) -> bool {
        match self {
            GeoPred::Within(w) => stored_geometry(v).is_some_and(|g| within(w, &g)),
            GeoPred::Intersects(q) => stored_geometry(v).is_some_and(|g| intersects(&g, q)),
            GeoPred::Near(n) => stored_geometry(v).is_some_and(|g| n.accepts(n.distance(&g))),
        }
    }

    pub(super) fn near(&self) -> Option<&Near> {
        match self {
            GeoPred::Near(n) => Some(n),
            _ => None,
        }
    }
}

impl Near {
    /// The distance from the query point to `g` in the query's units.
    pub fn distance(&self, g: &Geometry) -> f64 {
        let d = if self.spherical {
            sphere_distance(self.point, g)
        } else {
            all_points(g)
                .iter()
                .map(|p| ((p.x - self.point.x).powi(2) + (p.y - self.point.y).powi(2)).sqrt())
                .fold(f64::INFINITY, f64::min)
        };
        if self.geojson { d * EARTH_RADIUS_M } else { d }
    }

    /// Whether `d` lies within the bounds.
    pub fn accepts(&self, d: f64) -> bool {
        d.is_finite() && self.min.is_none_or(|m| d >= m) && self.max.is_none_or(|m| d <= m)
    }

    /// The smallest distance over the geometries `path` reaches in `doc`, with the point
    /// that gave it.
    pub fn nearest(&self, doc: &Document, path: &str) -> Option<(f64, Bson)> {
        let mut best: Option<(f64, Bson)> = None;
        let mut consider = |v: &Bson| {
            if let Some(g) = stored_geometry(v) {
                let d = self.distance(&g);
                if best.as_ref().is_none_or(|(b, _)| d < *b) {
                    best = Some((d, v.clone()));
                }
            }
        };
        geo_values(doc, path).into_iter().for_each(&mut consider);
        best.filter(|(d, _)| self.accepts(*d))
    }
}

fn all_points(g: &Geometry) -> Vec<Pt> {
    match g {
        Geometry::Point(p) => vec![*p],
        Geometry::LineString(l) | Geometry::MultiPoint(l) => l.clone(),
        Geometry::Polygon(r) | Geometry::MultiLineString(r) => r.concat(),
        Geometry::BigPolygon(r) => r.clone(),
        Geometry::MultiPolygon(p) => p.iter().flat_map(|r| r.concat()).collect(),
        Geometry::Collection(gs) => gs.iter().flat_map(all_points).collect(),
    }
}

type V3 = [f64; 3];

fn to_v3(p: Pt) -> V3 {
    let (lng, lat) = (p.x.to_radians(), p.y.to_radians());
    [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
}

fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    if n == 0.0 {
        a
    } else {
        [a[0] / n, a[1] / n, a[2] / n]
    }
}

/// The angle between two unit vectors (radians), stable for small angles.
fn angle(a: V3, b: V3) -> f64 {
    let c = cross(a, b);
    dot(c, c).sqrt().atan2(dot(a, b))
}

/// The great-circle distance in radians between two positions.
pub fn great_circle(a: Pt, b: Pt) -> f64 {
    angle(to_v3(a), to_v3(b))
}

/// The distance (radians) from `p` to the great-circle arc `a`-`b`.
fn arc_distance(p: V3, a: V3, b: V3) -> f64 {
    let n = norm(cross(a, b));
    if dot(n, n) > 0.0 {
        // The projection of p on the arc's great circle, if it falls between a and b.
        let q = norm({
            let k = dot(p, n);
            [p[0] - k * n[0], p[1] - k * n[1], p[2] - k * n[2]]
        });
        if dot(cross(a, q), n) >= 0.0 && dot(cross(q, b), n) >= 0.0 {
            return angle(p, q);
        }
    }
    angle(p, a).min(angle(p, b))
}

fn sphere_distance(from: Pt, g: &Geometry) -> f64 {
    let p = to_v3(from);
    let lines = |l: &[Pt]| {
        let v: Vec<V3> = l.iter().map(|x| to_v3(*x)).collect();
        if v.len() == 1 {
            return angle(p, v[0]);
        }
        v.windows(2)
            .map(|w| arc_distance(p, w[0], w[1]))
            .fold(f64::INFINITY, f64::min)
    };
    let poly = |rings: &[Vec<Pt>]| {
        if sphere_polygon_contains(rings, from) {
            0.0
        } else {
            rings.iter().map(|r| lines(r)).fold(f64::INFINITY, f64::min)
        }
    };
    match g {
        Geometry::Point(q) => angle(p, to_v3(*q)),
        Geometry::LineString(l) => lines(l),
        Geometry::MultiPoint(ps) => ps
            .iter()
            .map(|q| angle(p, to_v3(*q)))
            .fold(f64::INFINITY, f64::min),
        Geometry::MultiLineString(ls) => ls.iter().map(|l| lines(l)).fold(f64::INFINITY, f64::min),
        Geometry::Polygon(r) => poly(r),
        Geometry::MultiPolygon(ps) => ps.iter().map(|r| poly(r)).fold(f64::INFINITY, f64::min),
        Geometry::Collection(gs) => gs
            .iter()
            .map(|g| sphere_distance(from, g))
            .fold(f64::INFINITY, f64::min),
        Geometry::BigPolygon(r) => {
            if big_contains(r, from) {
                0.0
            } else {
                let v = loop_v3(r);
                (0..v.len())
                    .map(|i| arc_distance(p, v[i], v[(i + 1) % v.len()]))
                    .fold(f64::INFINITY, f64::min)
            }
        }
    }
}

/// The gnomonic projection centred on `c`: great circles become straight lines, so
/// containment and crossing tests in the hemisphere around `c` are planar there.
struct Gnomonic {
    c: V3,
    e1: V3,
    e2: V3,
}

impl Gnomonic {
    fn around(pts: &[Pt]) -> Gnomonic {
        let mut s = [0.0; 3];
        for p in pts {
            let v = to_v3(*p);
            s = [s[0] + v[0], s[1] + v[1], s[2] + v[2]];
        }
        let c = norm(s);
        let helper = if c[2].abs() < 0.9 {
            [0.0, 0.0, 1.0]
        } else {
            [1.0, 0.0, 0.0]
        };
        let e1 = norm(cross(helper, c));
        let e2 = cross(c, e1);
        Gnomonic { c, e1, e2 }
    }

    /// `None` for points in the far hemisphere.
    fn project(&self, p: Pt) -> Option<Pt> {
        let v = to_v3(p);
        let d = dot(v, self.c);
        (d > 1e-12).then(|| Pt {
            x: dot(v, self.e1) / d,
            y: dot(v, self.e2) / d,
        })
    }
}

/// Planar even-odd containment; points on an edge count as inside, as the server's
/// covering tests do.
fn flat_ring_contains(ring: &[Pt], p: Pt) -> bool {
    let n = ring.len();
    let mut inside = false;
    for i in 0..n {
        let (a, b) = (ring[i], ring[(i + 1) % n]);
        if on_segment(a, b, p) {
            return true;
        }
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
    }
    inside
}

fn orient(a: Pt, b: Pt, c: Pt) -> f64 {
    (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)
}

fn on_segment(a: Pt, b: Pt, p: Pt) -> bool {
    let scale = (b.x - a.x).abs().max((b.y - a.y).abs()).max(1e-300);
    orient(a, b, p).abs() <= 1e-12 * scale * scale.max(1.0)
        && p.x >= a.x.min(b.x) - 1e-12
        && p.x <= a.x.max(b.x) + 1e-12
        && p.y >= a.y.min(b.y) - 1e-12
        && p.y <= a.y.max(b.y) + 1e-12
}

fn segments_cross(a: Pt, b: Pt, c: Pt, d: Pt) -> bool {
    let (o1, o2, o3, o4) = (
        orient(a, b, c),
        orient(a, b, d),
        orient(c, d, a),
        orient(c, d, b),
    );
    ((o1 > 0.0) != (o2 > 0.0) && (o3 > 0.0) != (o4 > 0.0))
        || on_segment(a, b, c)
        || on_segment(a, b, d)
        || on_segment(c, d, a)
        || on_segment(c, d, b)
}

/// Whether a spherical polygon (shell and holes; the smaller region each ring bounds, as
/// the server reads GeoJSON polygons) contains `p`.
fn sphere_polygon_contains(rings: &[Vec<Pt>], p: Pt) -> bool {
    let g = Gnomonic::around(&rings[0]);
    let proj = |r: &Vec<Pt>| r.iter().map(|q| g.project(*q)).collect::<Option<Vec<Pt>>>();
    let Some(pp) = g.project(p) else {
        return false;
    };
    let Some(shell) = proj(&rings[0]) else {
        return false;
    };
    if !flat_ring_contains(&shell, pp) {
        return false;
    }
    !rings[1..]
        .iter()
        .filter_map(proj)
        .any(|h| flat_ring_contains(&h, pp) && !h.windows(2).any(|w| on_segment(w[0], w[1], pp)))
}

/// The edges of a geometry (points are degenerate edges).
fn edges(g: &Geometry) -> Vec<(Pt, Pt)> {
    let line = |l: &[Pt]| -> Vec<(Pt, Pt)> {
        if l.len() == 1 {
            vec![(l[0], l[0])]
        } else {
            l.windows(2).map(|w| (w[0], w[1])).collect()
        }
    };
    match g {
        Geometry::Point(p) => vec![(*p, *p)],
        Geometry::MultiPoint(ps) => ps.iter().map(|p| (*p, *p)).collect(),
        Geometry::LineString(l) => line(l),
        Geometry::MultiLineString(ls) | Geometry::Polygon(ls) => {
            ls.iter().flat_map(|l| line(l)).collect()
        }
        Geometry::MultiPolygon(ps) => ps.iter().flatten().flat_map(|l| line(l)).collect(),
        Geometry::Collection(gs) => gs.iter().flat_map(edges).collect(),
        Geometry::BigPolygon(r) => (0..r.len()).map(|i| (r[i], r[(i + 1) % r.len()])).collect(),
    }
}

fn polygons(g: &Geometry) -> Vec<&Vec<Vec<Pt>>> {
    match g {
        Geometry::Polygon(r) => vec![r],
        Geometry::MultiPolygon(ps) => ps.iter().collect(),
        Geometry::Collection(gs) => gs.iter().flat_map(polygons).collect(),
        _ => Vec::new(),
    }
}

/// Whether the spherical geometries `a` and `b` share a point.
fn intersects(a: &Geometry, b: &Geometry) -> bool {
    match (a, b) {
        (Geometry::BigPolygon(r), other) | (other, Geometry::BigPolygon(r)) => {
            return big_intersects(r, other);
        }
        _ => {}
    }
    // A vertex of one inside a polygon of the other.
    let inside = |x: &Geometry, y: &Geometry| {
        polygons(y).iter().any(|poly| {
            all_points(x)
                .iter()
                .any(|p| sphere_polygon_contains(poly, *p))
        })
    };
    if inside(a, b) || inside(b, a) {
        return true;
    }
    // Crossing edges, tested in a projection centred between them.
    let (ea, eb) = (edges(a), edges(b));
    let mut pts = all_points(a);
    pts.extend(all_points(b));
    let g = Gnomonic::around(&pts);
    ea.iter().any(|(p, q)| {
        eb.iter().any(
            |(r, s)| match (g.project(*p), g.project(*q), g.project(*r), g.project(*s)) {
                (Some(p), Some(q), Some(r), Some(s)) => segments_cross(p, q, r, s),
                _ => false,
            },
        )
    })
}

// ---- big polygons: exact spherical tests, with no projection (they may cover more than a
// hemisphere) ----

fn loop_v3(r: &[Pt]) -> Vec<V3> {
    r.iter().map(|p| to_v3(*p)).collect()
}

/// The direction from `from` towards `to`, in the tangent plane at `from`.
fn bearing(from: V3, to: V3) -> V3 {
    let k = dot(to, from);
    [
        to[0] - k * from[0],
        to[1] - k * from[1],
        to[2] - k * from[2],
    ]
}

/// The signed angle from `a` to `b` (tangent vectors at `at`), counter-clockwise seen from
/// outside the sphere.
fn turn(at: V3, a: V3, b: V3) -> f64 {
    dot(at, cross(a, b)).atan2(dot(a, b))
}

/// Whether the minor arcs `a`-`b` and `c`-`d` meet (`touching`: a shared point counts).
fn arcs_cross(a: V3, b: V3, c: V3, d: V3, touching: bool) -> bool {
    let (n1, n2) = (cross(a, b), cross(c, d));
    let (s1, s2, s3, s4) = (dot(n1, c), dot(n1, d), dot(n2, a), dot(n2, b));
    let apart = |x: f64, y: f64| if touching { x * y > 0.0 } else { x * y >= 0.0 };
    if apart(s1, s2) || apart(s3, s4) {
        return false;
    }
    let mut x = cross(n1, n2);
    if dot(x, x) < 1e-30 {
        // One great circle: the arcs meet if one's endpoint lies on the other.
        return touching
            && [(a, c, d), (b, c, d), (c, a, b), (d, a, b)]
                .iter()
                .any(|(p, q, r)| arc_distance(*p, *q, *r) < 1e-12);
    }
    // The crossing of the two great circles that lies on a-b must also lie on c-d.
    if dot(x, [a[0] + b[0], a[1] + b[1], a[2] + b[2]]) < 0.0 {
        x = [-x[0], -x[1], -x[2]];
    }
    dot(x, [c[0] + d[0], c[1] + d[1], c[2] + d[2]]) > 0.0
}

/// Whether the region on the left of the loop `r` (its interior under strict winding)
/// contains `p`; a point on the loop counts as inside. The loop's winding number around `p`
/// (the bearings from `p` to its vertices) is +1 when `p` is inside, -1 when outside, and 0
/// when `p` and its antipode are on the same side, decided by the interior's area (Girard:
/// 2π minus the loop's total turning).
fn big_contains(r: &[Pt], p: Pt) -> bool {
    let v = loop_v3(r);
    let n = v.len();
    let pv = to_v3(p);
    if (0..n).any(|i| arc_distance(pv, v[i], v[(i + 1) % n]) < 1e-12) {
        return true;
    }
    let winding: f64 = (0..n)
        .map(|i| turn(pv, bearing(pv, v[i]), bearing(pv, v[(i + 1) % n])))
        .sum::<f64>()
        / std::f64::consts::TAU;
    if winding > 0.5 {
        return true;
    }
    if winding < -0.5 {
        return false;
    }
    let turning: f64 = (0..n)
        .map(|i| {
            let (prev, at, next) = (v[(i + n - 1) % n], v[i], v[(i + 1) % n]);
            let incoming = bearing(at, prev);
            turn(
                at,
                [-incoming[0], -incoming[1], -incoming[2]],
                bearing(at, next),
            )
        })
        .sum();
    // The interior's area, 2π minus the turning, exceeds a hemisphere.
    turning < 0.0
}

/// Whether a big polygon and another geometry share a point.
fn big_intersects(r: &[Pt], other: &Geometry) -> bool {
    if all_points(other).iter().any(|p| big_contains(r, *p)) {
        return true;
    }
    if polygons(other)
        .iter()
        .any(|poly| r.iter().any(|p| sphere_polygon_contains(poly, *p)))
    {
        return true;
    }
    let v = loop_v3(r);
    edges(other).iter().any(|(p, q)| {
        (0..v.len()).any(|i| arcs_cross(to_v3(*p), to_v3(*q), v[i], v[(i + 1) % v.len()], true))
    })
}

fn within(w: &Within, g: &Geometry) -> bool {
    let pts = all_points(g);
    match w {
        Within::Sphere(Geometry::BigPolygon(r)) => {
            // Every vertex inside, no edge crossing the loop; a stored polygon may not hold a vertex of the loop (it would reach outside).
            let v = loop_v3(r);
            pts.iter().all(|p| big_contains(r, *p))
                && polygons(g)
                    .iter()
                    .all(|poly| !r.iter().any(|p| sphere_polygon_contains(poly, *p)))
                && edges(g).iter().all(|(p, q)| {
                    (0..v.len()).all(|i| {
                        !arcs_cross(to_v3(*p), to_v3(*q), v[i], v[(i + 1) % v.len()], false)
                    })
                })
        }
        Within::Sphere(q) => {
            let polys = polygons(q);
            // Every vertex inside, and no edge leaving the region through its boundary.
            let all_in = pts
                .iter()
                .all(|p| polys.iter().any(|poly| sphere_polygon_contains(poly, *p)));
            if !all_in {
                return false;
            }
            let gp = Gnomonic::around(&all_points(q));
            let boundary = edges(q);
            edges(g).iter().all(|(p, r)| {
                p == r
                    || !boundary.iter().any(|(b1, b2)| {
                        match (
                            gp.project(*p),
                            gp.project(*r),
                            gp.project(*b1),
                            gp.project(*b2),
                        ) {
                            (Some(p), Some(r), Some(b1), Some(b2)) => {
                                let (o1, o2) = (orient(p, r, b1), orient(p, r, b2));
                                let (o3, o4) = (orient(b1, b2, p), orient(b1, b2, r));
                                o1 * o2 < 0.0 && o3 * o4 < 0.0
                            }
                            _ => true,
                        }
                    })
            })
        }
        // Legacy shapes hold points only.
        Within::Box(lo, hi) => {
            matches!(g, Geometry::Point(_))
                && pts.iter().all(|p| {
                    p.x >= lo.x.min(hi.x)
                        && p.x <= lo.x.max(hi.x)
                        && p.y >= lo.y.min(hi.y)
                        && p.y <= lo.y.max(hi.y)
                })
        }
        Within::Polygon(ring) => {
            matches!(g, Geometry::Point(_)) && pts.iter().all(|p| flat_ring_contains(ring, *p))
        }
        Within::Center(c, r) => {
            matches!(g, Geometry::Point(_))
                && pts
                    .iter()
                    .all(|p| ((p.x - c.x).powi(2) + (p.y - c.y).powi(2)).sqrt() <= *r)
        }
        Within::CenterSphere(c, r) => pts.iter().all(|p| great_circle(*c, *p) <= *r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f64, y: f64) -> Pt {
        Pt { x, y }
    }

    fn ring(v: &[(f64, f64)]) -> Vec<Pt> {
        v.iter().map(|(x, y)| pt(*x, *y)).collect()
    }

    #[test]
    fn great_circle_distances() {
        assert!(
            (great_circle(pt(0.0, 0.0), pt(90.0, 0.0)) - std::f64::consts::FRAC_PI_2).abs() < 1e-12
        );
        assert!(
            (great_circle(pt(0.0, 90.0), pt(123.0, -90.0)) - std::f64::consts::PI).abs() < 1e-12
        );
        // Across the antimeridian: 2 degrees, not 358.
        assert!((great_circle(pt(179.0, 0.0), pt(-179.0, 0.0)) - 2f64.to_radians()).abs() < 1e-12);
    }

    #[test]
    fn polygons_on_the_sphere() {
        // Across the antimeridian.
        let across = vec![ring(&[
            (170.0, -10.0),
            (-170.0, -10.0),
            (-170.0, 10.0),
            (170.0, 10.0),
            (170.0, -10.0),
        ])];
        assert!(sphere_polygon_contains(&across, pt(180.0, 0.0)));
        assert!(sphere_polygon_contains(&across, pt(-175.0, 5.0)));
        assert!(!sphere_polygon_contains(&across, pt(0.0, 0.0)));
        assert!(!sphere_polygon_contains(&across, pt(160.0, 0.0)));
        // Around the pole.
        let polar = vec![ring(&[
            (0.0, 80.0),
            (90.0, 80.0),
            (180.0, 80.0),
            (-90.0, 80.0),
            (0.0, 80.0),
        ])];
        assert!(sphere_polygon_contains(&polar, pt(0.0, 90.0)));
        assert!(sphere_polygon_contains(&polar, pt(45.0, 85.0)));
        assert!(!sphere_polygon_contains(&polar, pt(45.0, 70.0)));
        // A hole.
        let holed = vec![
            ring(&[
                (0.0, 0.0),
                (10.0, 0.0),
                (10.0, 10.0),
                (0.0, 10.0),
                (0.0, 0.0),
            ]),
            ring(&[(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0), (4.0, 4.0)]),
        ];
        assert!(!sphere_polygon_contains(&holed, pt(5.0, 5.0)));
        assert!(sphere_polygon_contains(&holed, pt(1.0, 1.0)));
        // Edges are great circles: a point just north of the parallel at 10 degrees but
        // under the bulging edge (10.037 degrees at its middle) is inside.
        assert!(sphere_polygon_contains(&holed[..1], pt(5.0, 10.03)));
        assert!(!sphere_polygon_contains(&holed[..1], pt(5.0, 10.05)));
    }

    #[test]
    fn distance_to_lines_and_polygons() {
        let near = Near {
            point: pt(0.0, 1.0),
            spherical: true,
            geojson: false,
            min: None,
            max: None,
        };
        // The closest point of the equator segment is below the query point.
        let line = Geometry::LineString(ring(&[(-5.0, 0.0), (5.0, 0.0)]));
        assert!((near.distance(&line) - 1f64.to_radians()).abs() < 1e-12);
        let square = Geometry::Polygon(vec![ring(&[
            (-1.0, -1.0),
            (1.0, -1.0),
            (1.0, 2.0),
            (-1.0, 2.0),
            (-1.0, -1.0),
        ])]);
        assert_eq!(near.distance(&square), 0.0);
    }

    fn geojson(d: Document) -> Result<Geometry> {
        parse_geojson(&d)
    }

    fn strict(coords: Bson) -> Document {
        bson::doc! {
            "type": "Polygon",
            "coordinates": coords,
            "crs": {"type": "name", "properties": {"name": CRS_STRICT_WINDING}},
        }
    }

    #[test]
    fn big_polygon_parsing_and_its_codes() {
        let msg = |d: Document| geojson(d).unwrap_err().message;
        let mut p = bson::doc! {"type": "Point", "coordinates": [0, 0]};
        p.insert("crs", strict(bson::bson!([])).get("crs").unwrap().clone());
        assert_eq!(msg(p), "Strict winding order is only supported by polygon");
        let mut bad_name = strict(bson::bson!([[[0, 0], [1, 0], [1, 1], [0, 0]]]));
        bad_name.insert(
            "crs",
            bson::doc! {"type": "name", "properties": {"name": "EPSG:3857"}},
        );
        assert_eq!(msg(bad_name), "Unknown CRS name: EPSG:3857");
        let mut no_props = strict(bson::bson!([]));
        no_props.insert("crs", bson::doc! {"type": "name"});
        assert_eq!(
            msg(no_props),
            "CRS must have field \"properties\" which is an object"
        );
        // Plain EPSG:4326 is the default CRS.
        let mut plain = strict(bson::bson!([[[0, 0], [1, 0], [1, 1], [0, 0]]]));
        plain.insert(
            "crs",
            bson::doc! {"type": "name", "properties": {"name": "EPSG:4326"}},
        );
        assert!(matches!(geojson(plain).unwrap(), Geometry::Polygon(_)));
        let holes = strict(bson::bson!([
            [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
            [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
        ]));
        assert!(msg(holes).starts_with("Only one simple loop is allowed in a big polygon: "));
        let bow_tie = strict(bson::bson!([[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]));
        assert!(msg(bow_tie).starts_with("Loop is not valid: "));
        let open = strict(bson::bson!([[[0, 0], [10, 0], [10, 10], [0, 10]]]));
        assert!(msg(open).starts_with("Loop is not closed: "));
        let flat = strict(bson::bson!([[[0, 0], [10, 0], [0, 0], [0, 0]]]));
        assert!(msg(flat).starts_with("Loop must have at least 3 different vertices: "));
        // The loop keeps its vertices (not closed) in their order.
        let Geometry::BigPolygon(r) =
            geojson(strict(bson::bson!([[[0, 0], [1, 0], [1, 1], [0, 0]]]))).unwrap()
        else {
            panic!("a big polygon")
        };
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn big_polygon_winding_decides_the_interior() {
        let ccw = ring(&[(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0)]);
        let mut cw = ccw.clone();
        cw.reverse();
        assert!(big_contains(&ccw, pt(0.0, 0.0)));
        assert!(!big_contains(&ccw, pt(50.0, 50.0)));
        assert!(big_contains(&ccw, pt(10.0, 0.0)), "on an edge");
        // Clockwise: everything but the square.
        assert!(!big_contains(&cw, pt(0.0, 0.0)));
        for (x, y) in [(50.0, 50.0), (180.0, 0.0), (0.0, -90.0), (-170.0, 45.0)] {
            assert!(big_contains(&cw, pt(x, y)), "({x}, {y})");
        }
        // Eastward around the south at 10°S: the north of it, more than a hemisphere (the
        // great-circle edges dip to about 14°S between vertices).
        let north = ring(&[(0.0, -10.0), (90.0, -10.0), (180.0, -10.0), (-90.0, -10.0)]);
        for (x, y) in [(0.0, 90.0), (0.0, 0.0), (180.0, 0.0), (45.0, -12.0)] {
            assert!(big_contains(&north, pt(x, y)), "({x}, {y})");
        }
        for (x, y) in [(45.0, -16.0), (0.0, -90.0), (100.0, -60.0)] {
            assert!(!big_contains(&north, pt(x, y)), "({x}, {y})");
        }
    }

    #[test]
    fn big_polygon_within_and_intersects() {
        let cw = Geometry::BigPolygon(ring(&[
            (-10.0, 10.0),
            (10.0, 10.0),
            (10.0, -10.0),
            (-10.0, -10.0),
        ]));
        let w = Within::Sphere(cw.clone());
        assert!(within(&w, &Geometry::Point(pt(100.0, 0.0))));
        assert!(!within(&w, &Geometry::Point(pt(0.0, 0.0))));
        // A line across the excluded square is not within; one beside it is.
        let across = Geometry::LineString(ring(&[(-20.0, 0.0), (20.0, 0.0)]));
        let beside = Geometry::LineString(ring(&[(20.0, 0.0), (40.0, 0.0)]));
        assert!(!within(&w, &across));
        assert!(within(&w, &beside));
        // A polygon around the square holds points outside the big polygon.
        let around = Geometry::Polygon(vec![ring(&[
            (-20.0, -20.0),
            (20.0, -20.0),
            (20.0, 20.0),
            (-20.0, 20.0),
            (-20.0, -20.0),
        ])]);
        assert!(!within(&w, &around));
        assert!(intersects(&around, &cw));
        // Intersects: a point in the square does not, a line crossing into it does.
        assert!(!intersects(&Geometry::Point(pt(0.0, 0.0)), &cw));
        let inner = Geometry::LineString(ring(&[(-5.0, 0.0), (5.0, 0.0)]));
        assert!(!intersects(&inner, &cw));
        assert!(intersects(&across, &cw));
    }
}
