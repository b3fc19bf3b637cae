//! Aggregation pipelines: parsing stages with the server's errors and running them over a
//! stream of documents.

#![allow(clippy::result_large_err)]

mod densify;
mod geo_near;
mod group;
mod metadata;
mod project;
mod window;

use bson::{Bson, Document, doc};

use crate::error::{CommandError, Result, codes};
use crate::query::expr::{self, DocMeta};
use crate::query::matcher::Matcher;
use crate::query::sort::SortSpec;

use group::{Bucket, BucketAuto, Group};
pub(crate) use metadata::{Available, reads_available};
use metadata::{Row, compare_rand, compare_rows, docs, meta_or_empty, reads_meta, rows};
use project::Projection;
use window::{Fill, SetWindowFields};

/// What a pipeline may ask of the server beyond its input documents: other collections
/// (`$lookup`, `$unionWith`), collection statistics (`$collStats`), and writes (`$out`,
/// `$merge`). The command layer implements it over the catalog.
pub trait PipelineEnv {
    /// Every document of `db.coll` (empty if it does not exist), in natural order.
    fn collection_documents(&self, db: &str, coll: &str) -> Result<Vec<Document>>;
    /// The `$collStats` document for the pipeline's own collection, for the given options.
    fn coll_stats(&self, options: &Document) -> Result<Document>;
    /// Replaces `db.coll` with `docs` (`$out`).
    fn write_out(&self, db: &str, coll: &str, docs: Vec<Document>) -> Result<()>;
    /// Merges `docs` into `db.coll` (`$merge` with its `on`, `whenMatched`, `whenNotMatched`).
    fn merge_into(&self, db: &str, coll: &str, docs: Vec<Document>, spec: &Document) -> Result<()>;
    /// The index specifications of the pipeline's own collection (`$geoNear`, `$text`).
    fn index_specs(&self) -> Result<Vec<Document>> {
        Ok(Vec::new())
    }
    /// The index specifications of `db.coll` (a `$lookup` or `$unionWith` pipeline's own
    /// collection).
    fn index_specs_of(&self, db: &str, coll: &str) -> Result<Vec<Document>> {
        let _ = (db, coll);
        Ok(Vec::new())
    }
    /// The sessions for `$listLocalSessions` (its specification given), as the server reports
    /// them (`{_id: {id, uid}, lastUse, ...}`). None by default.
    fn local_sessions(&self, spec: &Document) -> Result<Vec<Document>> {
        let _ = spec;
        Ok(Vec::new())
    }
    /// The documents of a server-state source stage that must come first and that the
    /// command layer knows (`$indexStats`, `$currentOp`, `$listCatalog`, `$listSessions`,
    /// `$planCacheStats`, ...), given the whole stage `{$name: spec}`. By default the server
    /// does not know the stage (40324).
    fn source_stage(&self, stage: &Document) -> Result<Vec<Document>> {
        let name = stage.keys().next().map(String::as_str).unwrap_or("");
        Err(CommandError::new(
            codes::UNRECOGNIZED_PIPELINE_STAGE,
            format!("Unrecognized pipeline stage name: '{name}'"),
        ))
    }
}

/// The environment of a `$lookup` or `$unionWith` pipeline: the outer one's, but its own
/// collection is the foreign one (whose indexes `$text` and `$geoNear` use).
struct Foreign<'a> {
    outer: &'a dyn PipelineEnv,
    db: &'a str,
    coll: &'a str,
}

impl PipelineEnv for Foreign<'_> {
    fn collection_documents(&self, db: &str, coll: &str) -> Result<Vec<Document>> {
        self.outer.collection_documents(db, coll)
    }
    fn coll_stats(&self, options: &Document) -> Result<Document> {
        self.outer.coll_stats(options)
    }
    fn write_out(&self, db: &str, coll: &str, docs: Vec<Document>) -> Result<()> {
        self.outer.write_out(db, coll, docs)
    }
    fn merge_into(&self, db: &str, coll: &str, docs: Vec<Document>, spec: &Document) -> Result<()> {
        self.outer.merge_into(db, coll, docs, spec)
    }
    fn index_specs(&self) -> Result<Vec<Document>> {
        self.outer.index_specs_of(self.db, self.coll)
    }
    fn index_specs_of(&self, db: &str, coll: &str) -> Result<Vec<Document>> {
        self.outer.index_specs_of(db, coll)
    }
    fn local_sessions(&self, spec: &Document) -> Result<Vec<Document>> {
        self.outer.local_sessions(spec)
    }
    fn source_stage(&self, stage: &Document) -> Result<Vec<Document>> {
        self.outer.source_stage(stage)
    }
}

/// The environment of [`Pipeline::run_local`].
struct NoEnv;

impl PipelineEnv for NoEnv {
    fn collection_documents(&self, _: &str, _: &str) -> Result<Vec<Document>> {
        Ok(Vec::new())
    }
    fn coll_stats(&self, _: &Document) -> Result<Document> {
        Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            "$collStats needs a collection",
        ))
    }
    fn write_out(&self, _: &str, _: &str, _: Vec<Document>) -> Result<()> {
        Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            "$out needs a database",
        ))
    }
    fn merge_into(&self, _: &str, _: &str, _: Vec<Document>, _: &Document) -> Result<()> {
        Err(CommandError::new(
            codes::ILLEGAL_OPERATION,
            "$merge needs a database",
        ))
    }
}

/// A parsed pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    stages: Vec<Stage>,
    /// The stages as given, for the metadata check ([`Pipeline::check_metadata`]).
    specs: Vec<Document>,
    /// Whether a stage reads `{$meta: "sortKey"}`: only then does a `$sort` record each
    /// document's key, as the server's sort produces it only when asked.
    sort_key: bool,
    vars: Document,
    /// `allowDiskUse` (true by default since 6.0, `allowDiskUseByDefault`): with `false`, a
    /// blocking `$sort` over [`SORT_MEMORY_LIMIT`] fails as on the server.
    allow_disk_use: bool,
}

/// What a streaming pipeline did with one input document.
#[derive(Debug)]
pub enum Step {
    /// This output document.
    Emit(Document),
    /// Nothing for this input (filtered or skipped).
    Skip,
    /// Nothing, and nothing ever again (a `$limit` is used up).
    Done,
}

/// A pipeline whose every stage works one document at a time (`$match`, `$project`,
/// `$addFields`/`$set`, `$unset`, `$replaceRoot`/`$replaceWith`, `$skip`, `$limit`), run
/// document by document as its input is read: a cursor over it reads its collection lazily
/// between `getMore`s instead of materialising the result.
#[derive(Debug, Clone)]
pub struct Streaming {
    stages: Vec<Stage>,
    vars: Document,
    /// Per stage: the documents a `$skip` still drops or a `$limit` still lets through.
    left: Vec<u64>,
}

impl Streaming {
    /// Runs one input document through every stage.
    pub fn push(&mut self, doc: Document) -> Result<Step> {
        // No stage here produces metadata (`$text` and `$geoNear` do not stream).
        let mut row = Row::plain(doc);
        for (i, stage) in self.stages.iter().enumerate() {
            match stage {
                Stage::Skip(_) => {
                    if self.left[i] > 0 {
                        self.left[i] -= 1;
                        return Ok(Step::Skip);
                    }
                }
                Stage::Limit(_) => {
                    if self.left[i] == 0 {
                        return Ok(Step::Done);
                    }
                    self.left[i] -= 1;
                }
                _ => {
                    // The same code as the materialising executor, over one document.
                    let out = run_stage(stage, vec![row], "", &NoEnv, &self.vars, &self.vars)?;
                    match out.into_iter().next() {
                        Some(r) => row = r,
                        None => return Ok(Step::Skip),
                    }
                }
            }
        }
        Ok(Step::Emit(row.doc))
    }

    /// Whether a `$limit` is used up: no input can give an output any more.
    pub fn finished(&self) -> bool {
        self.stages
            .iter()
            .zip(&self.left)
            .any(|(s, left)| matches!(s, Stage::Limit(_)) && *left == 0)
    }
}

/// `internalQueryMaxBlockingSortMemoryUsageBytes`: what a blocking sort may hold in memory.
pub const SORT_MEMORY_LIMIT: usize = 100 * 1024 * 1024;

/// The error of a blocking sort over [`SORT_MEMORY_LIMIT`] without `allowDiskUse`, as the
/// server's sorter raises it (the command adds its own "caused by" prefix).
pub fn sort_memory_error(prefix: &str) -> CommandError {
    CommandError::new(
        codes::QUERY_EXCEEDED_MEMORY_LIMIT_NO_DISK_USE_ALLOWED,
        format!(
            "{prefix} :: caused by :: Sort exceeded memory limit of {SORT_MEMORY_LIMIT} bytes, \
             but did not opt in to external sorting."
        ),
    )
}

/// The first `k` documents of `docs` in `spec` order, holding no more than `k` at a time (the
/// server's top-k sort for a `$sort` followed by a `$limit`); ties keep their input order.
pub fn top_k(docs: impl IntoIterator<Item = Document>, spec: &SortSpec, k: usize) -> Vec<Document> {
    top_k_by(docs, k, |a, b| spec.compare(a, b))
}

/// [`top_k`] under any order.
fn top_k_by<T>(
    items: impl IntoIterator<Item = T>,
    k: usize,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Vec<T> {
    let mut top: Vec<T> = Vec::with_capacity(k.min(1024));
    if k == 0 {
        return top;
    }
    for d in items {
        if top.len() == k
            && top
                .last()
                .is_some_and(|last| cmp(&d, last) != std::cmp::Ordering::Less)
        {
            continue;
        }
        let at = top.partition_point(|x| cmp(x, &d) != std::cmp::Ordering::Greater);
        top.insert(at, d);
        top.truncate(k);
    }
    top
}

/// A `$lookup` stage.
#[derive(Debug, Clone)]
struct Lookup {
    /// `None` when the sub-pipeline starts with `$documents`.
    from: Option<(Option<String>, String)>,
    local_field: Option<String>,
    foreign_field: Option<String>,
    let_vars: Document,
    pipeline: Option<Pipeline>,
    as_field: String,
}

#[derive(Debug, Clone)]
enum Stage {
    /// The filter (to rebuild the matcher when a sub-pipeline's variables change) and its
    /// matcher built with the parse-time variables.
    Match(Document, Matcher),
    Project(Projection),
    Sort(SortSpec),
    Limit(u64),
    Skip(u64),
    Count(String),
    Group(Group),
    SortByCount(Bson),
    Sample(u64),
    BucketAuto(BucketAuto),
    Bucket(Bucket),
    ReplaceRoot(Bson),
    Unwind {
        path: Vec<String>,
        index_field: Option<String>,
        preserve: bool,
    },
    Lookup(Box<Lookup>),
    GraphLookup(Box<GraphLookup>),
    UnionWith {
        db: Option<String>,
        coll: Option<String>,
        pipeline: Option<Pipeline>,
    },
    Facet(Vec<(String, Pipeline)>),
    Documents(Bson),
    CollStats(Document),
    ListLocalSessions(Document),
    /// A first-stage source served by [`PipelineEnv::source_stage`].
    Source(Document),
    Out {
        db: Option<String>,
        coll: String,
    },
    Merge {
        db: Option<String>,
        coll: String,
        spec: Document,
    },
    Redact(Bson),
    GeoNear(Box<geo_near::GeoNear>),
    SetWindowFields(Box<SetWindowFields>),
    Fill(Box<Fill>),
    Densify(Box<densify::Densify>),
}

fn type_name(v: &Bson) -> &'static str {
    expr::type_name(Some(v))
}

/// An integral, non-negative-or-not number argument (`$limit`, `$skip`, `$sample.size`).
fn integral(v: &Bson) -> Option<i64> {
    match expr::Num::from_bson(v)? {
        n if n.f64().fract() == 0.0 => match v {
            Bson::Int64(l) => Some(*l),
            _ => Some(n.f64() as i64),
        },
        _ => None,
    }
}

/// The server's `parseIntegerElementToNonNegativeLong` for `$limit`/`$skip`, its reason
/// prefixed as the stage does: "invalid argument to $skip stage: Expected an integer: …".
fn count_argument(stage: &str, v: &Bson, code: i32) -> Result<i64> {
    let reason = match crate::query::matcher::parse_integer_element(stage, v) {
        Ok(n) if n >= 0 => return Ok(n),
        Ok(_) => format!(
            "Expected a non-negative number in: {stage}: {}",
            crate::query::matcher::server_display(v)
        ),
        Err(e) => e.message,
    };
    Err(CommandError::new(
        code,
        format!("invalid argument to {stage} stage: {reason}"),
    ))
}

/// The collection named by `$lookup.from`, `$unionWith.coll`, `$out`: a string or
/// `{db, coll}`.
fn namespace(stage: &str, v: &Bson) -> Result<(Option<String>, String)> {
    match v {
        Bson::String(s) => {
            if s.is_empty() {
                return Err(CommandError::invalid_namespace(format!(
                    "Invalid {stage} :: caused by :: Invalid collection name: empty"
                )));
            }
            Ok((None, s.clone()))
        }
        Bson::Document(d) => {
            let db = match d.get("db") {
                Some(Bson::String(s)) => Some(s.clone()),
                None => None,
                Some(other) => {
                    return Err(CommandError::wrong_field_type(
                        stage,
                        "db",
                        type_name(other),
                        &["string"],
                    ));
                }
            };
            match d.get("coll") {
                Some(Bson::String(s)) => Ok((db, s.clone())),
                Some(other) => Err(CommandError::wrong_field_type(
                    stage,
                    "coll",
                    type_name(other),
                    &["string"],
                )),
                None => Err(CommandError::missing_field(stage, "coll")),
            }
        }
        other => Err(CommandError::failed_to_parse(format!(
            "{stage} 'from' field must be a string or an object, but found {}",
            type_name(other)
        ))),
    }
}

fn sub_pipeline(stage: &str, v: &Bson, vars: &Document) -> Result<Pipeline> {
    let Bson::Array(items) = v else {
        return Err(CommandError::failed_to_parse(format!(
            "{stage} 'pipeline' must be an array, found {}",
            type_name(v)
        )));
    };
    let mut stages = Vec::new();
    for i in items {
        match i {
            Bson::Document(d) => stages.push(d.clone()),
            other => {
                return Err(CommandError::type_mismatch(format!(
                    "Each element of the 'pipeline' array must be an object, found {}",
                    type_name(other)
                )));
            }
        }
    }
    // Checked for metadata with the pipeline it belongs to.
    let p = Pipeline::parse_unchecked(&stages, vars)?;
    for s in &p.stages {
        if matches!(s, Stage::Out { .. } | Stage::Merge { .. }) {
            return Err(CommandError::new(
                51047,
                format!("{} is not allowed within a {stage} sub-pipeline", s.name()),
            ));
        }
    }
    Ok(p)
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Match(..) => "$match",
            Stage::Project(_) => "$project",
            Stage::Sort(_) => "$sort",
            Stage::Limit(_) => "$limit",
            Stage::Skip(_) => "$skip",
            Stage::Count(_) => "$count",
            Stage::Group(_) => "$group",
            Stage::SortByCount(_) => "$sortByCount",
            Stage::Sample(_) => "$sample",
            Stage::BucketAuto(_) => "$bucketAuto",
            Stage::SetWindowFields(_) => "$setWindowFields",
            Stage::Fill(_) => "$fill",
            Stage::Densify(_) => "$densify",
            Stage::Bucket(_) => "$bucket",
            Stage::ReplaceRoot(_) => "$replaceRoot",
            Stage::Unwind { .. } => "$unwind",
            Stage::Lookup(_) => "$lookup",
            Stage::GraphLookup(_) => "$graphLookup",
            Stage::UnionWith { .. } => "$unionWith",
            Stage::Facet(_) => "$facet",
            Stage::Documents(_) => "$documents",
            Stage::CollStats(_) => "$collStats",
            Stage::ListLocalSessions(_) => "$listLocalSessions",
            Stage::Source(_) => "source stage",
            Stage::Out { .. } => "$out",
            Stage::Merge { .. } => "$merge",
            Stage::Redact(_) => "$redact",
            Stage::GeoNear(_) => "$geoNear",
        }
    }

    fn parse(name: &str, spec: &Bson, vars: &Document) -> Result<Stage> {
        let object = |code: i32, msg: &str| -> Result<&Document> {
            match spec {
                Bson::Document(d) => Ok(d),
                other => Err(CommandError::new(
                    code,
                    format!("{msg}, got {}", type_name(other)),
                )),
            }
        };
        Ok(match name {
            "$match" => {
                let Bson::Document(filter) = spec else {
                    return Err(CommandError::new(
                        15959,
                        "the match filter must be an expression in an object",
                    ));
                };
                let m = Matcher::new(filter, vars)?;
                if m.near().is_some() {
                    return Err(crate::query::matcher::geo::near_not_allowed());
                }
                Stage::Match(filter.clone(), m)
            }
            "$project" => {
                let d = object(15969, "$project specification must be an object")?;
                Stage::Project(Projection::parse_project(d)?)
            }
            "$addFields" | "$set" => {
                let d = object(
                    40272,
                    &format!("{name} specification stage must be an object"),
                )?;
                Stage::Project(Projection::parse_add_fields(d, name)?)
            }
            "$unset" => Stage::Project(Projection::parse_unset(spec)?),
            "$sort" => {
                let Bson::Document(d) = spec else {
                    return Err(CommandError::new(
                        15973,
                        "the $sort key specification must be an object",
                    ));
                };
                if d.is_empty() {
                    return Err(CommandError::new(
                        15976,
                        "$sort stage must have at least one sort key",
                    ));
                }
                Stage::Sort(SortSpec::new(d)?)
            }
            // 8.x: parseIntegerElementToNonNegativeLong, its reason prefixed (5107201/5107200).
            "$limit" => match count_argument("$limit", spec, 5107201)? {
                0 => return Err(CommandError::new(15958, "the limit must be positive")),
                n => Stage::Limit(n as u64),
            },
            "$skip" => Stage::Skip(count_argument("$skip", spec, 5107200)? as u64),
            "$count" => {
                let Bson::String(s) = spec else {
                    return Err(CommandError::new(
                        40156,
                        "the count field must be a non-empty string",
                    ));
                };
                if s.is_empty() {
                    return Err(CommandError::new(
                        40157,
                        "the count field must be a non-empty string",
                    ));
                }
                if s.starts_with('$') {
                    return Err(CommandError::new(
                        40158,
                        "the count field cannot be a $-prefixed path",
                    ));
                }
                if s.contains('.') {
                    return Err(CommandError::new(
                        40160,
                        "the count field cannot contain '.'",
                    ));
                }
                Stage::Count(s.clone())
            }
            "$group" => {
                let d = object(15947, "a group's fields must be specified in an object")?;
                Stage::Group(Group::parse(d)?)
            }
            "$sortByCount" => {
                let ok = match spec {
                    Bson::String(s) => s.starts_with('$'),
                    Bson::Document(d) => d.keys().next().is_some_and(|k| k.starts_with('$')),
                    _ => false,
                };
                if !ok {
                    return Err(CommandError::new(
                        40148,
                        "the sortByCount field must be defined as a $-prefixed path or an expression",
                    ));
                }
                expr::validate(spec)?;
                Stage::SortByCount(spec.clone())
            }
            "$sample" => {
                let d = object(28745, "the $sample stage specification must be an object")?;
                let mut size = None;
                for (k, v) in d {
                    if k != "size" {
                        return Err(CommandError::new(
                            28748,
                            format!("unrecognized option to $sample: {k}"),
                        ));
                    }
                    match integral(v).or_else(|| expr::Num::from_bson(v).map(|n| n.f64() as i64)) {
                        Some(n) if n >= 0 => size = Some(n as u64),
                        Some(_) => {
                            return Err(CommandError::new(
                                28747,
                                "size argument to $sample must not be negative",
                            ));
                        }
                        None => {
                            return Err(CommandError::new(
                                28746,
                                "size argument to $sample must be a number",
                            ));
                        }
                    }
                }
                Stage::Sample(
                    size.ok_or_else(|| {
                        CommandError::new(28749, "$sample stage must specify a size")
                    })?,
                )
            }
            "$bucketAuto" => Stage::BucketAuto(BucketAuto::parse(spec)?),
            "$setWindowFields" => Stage::SetWindowFields(Box::new(SetWindowFields::parse(spec)?)),
            "$fill" => Stage::Fill(Box::new(Fill::parse(spec)?)),
            "$densify" => Stage::Densify(Box::new(densify::Densify::parse(spec)?)),
            "$bucket" => Stage::Bucket(Bucket::parse(spec)?),
            "$replaceRoot" => {
                let d = object(
                    40229,
                    "expected an object as specification for $replaceRoot stage",
                )?;
                for k in d.keys() {
                    if k != "newRoot" {
                        return Err(CommandError::new(
                            40415,
                            format!("BSON field '$replaceRoot.{k}' is an unknown field."),
                        ));
                    }
                }
                let root = d.get("newRoot").ok_or_else(|| {
                    CommandError::new(
                        40414,
                        "BSON field '$replaceRoot.newRoot' is missing but a required field",
                    )
                })?;
                expr::validate(root)?;
                Stage::ReplaceRoot(root.clone())
            }
            "$replaceWith" => {
                expr::validate(spec)?;
                Stage::ReplaceRoot(spec.clone())
            }
            "$unwind" => parse_unwind(spec)?,
            "$lookup" => parse_lookup(spec, vars)?,
            "$graphLookup" => parse_graph_lookup(spec, vars)?,
            "$unionWith" => match spec {
                Bson::String(s) => Stage::UnionWith {
                    db: None,
                    coll: Some(s.clone()),
                    pipeline: None,
                },
                Bson::Document(d) => {
                    let mut coll = None;
                    let mut db = None;
                    let mut pipeline = None;
                    for (k, v) in d {
                        match k.as_str() {
                            "coll" => match v {
                                Bson::String(s) => coll = Some(s.clone()),
                                Bson::Document(_) => {
                                    let (d, c) = namespace("$unionWith", v)?;
                                    db = d;
                                    coll = Some(c);
                                }
                                other => {
                                    return Err(CommandError::wrong_field_type(
                                        "$unionWith",
                                        "coll",
                                        type_name(other),
                                        &["string"],
                                    ));
                                }
                            },
                            "pipeline" => pipeline = Some(sub_pipeline("$unionWith", v, vars)?),
                            other => {
                                return Err(CommandError::unknown_field("$unionWith", other));
                            }
                        }
                    }
                    let starts_with_documents = pipeline
                        .as_ref()
                        .is_some_and(|p| matches!(p.stages.first(), Some(Stage::Documents(_))));
                    if coll.is_none() && !starts_with_documents {
                        return Err(CommandError::missing_field("$unionWith", "coll"));
                    }
                    Stage::UnionWith { db, coll, pipeline }
                }
                other => {
                    return Err(CommandError::new(
                        ErrorCodeLocal::UNION_WITH_SPEC,
                        format!(
                            "the $unionWith stage specification must be an object or string, but found {}",
                            type_name(other)
                        ),
                    ));
                }
            },
            "$facet" => {
                let d = match spec {
                    Bson::Document(d) if !d.is_empty() => d,
                    _ => {
                        return Err(CommandError::new(
                            40169,
                            "the $facet specification must be a non-empty object",
                        ));
                    }
                };
                let mut facets = Vec::new();
                for (k, v) in d {
                    let Bson::Array(_) = v else {
                        return Err(CommandError::new(
                            40170,
                            format!(
                                "arguments to $facet must be arrays, {k} is type {}",
                                type_name(v)
                            ),
                        ));
                    };
                    let p = sub_pipeline("$facet", v, vars).map_err(|e| {
                        if e.code == 51047 {
                            CommandError::new(
                                40600,
                                e.message.replace(
                                    "within a $facet sub-pipeline",
                                    "to be used within a $facet stage",
                                ),
                            )
                        } else {
                            e
                        }
                    })?;
                    for s in &p.stages {
                        if matches!(
                            s,
                            Stage::Facet(_)
                                | Stage::CollStats(_)
                                | Stage::Documents(_)
                                | Stage::ListLocalSessions(_)
                                | Stage::Source(_)
                        ) {
                            return Err(CommandError::new(
                                40600,
                                format!(
                                    "{} is not allowed to be used within a $facet stage",
                                    s.name()
                                ),
                            ));
                        }
                    }
                    facets.push((k.clone(), p));
                }
                Stage::Facet(facets)
            }
            "$documents" => {
                expr::validate(spec)?;
                Stage::Documents(spec.clone())
            }
            "$collStats" => {
                let d = object(5447000, "$collStats must take a nested object")?;
                Stage::CollStats(d.clone())
            }
            "$listLocalSessions" => {
                let d = object(
                    ErrorCodeLocal::LIST_SESSIONS_SPEC,
                    "$listLocalSessions options must be specified in an object",
                )?;
                for k in d.keys() {
                    if k != "allUsers" && k != "users" {
                        return Err(CommandError::unknown_field("$listLocalSessions", k));
                    }
                }
                Stage::ListLocalSessions(d.clone())
            }
            "$indexStats"
            | "$currentOp"
            | "$listCatalog"
            | "$listSessions"
            | "$planCacheStats"
            | "$listClusterCatalog"
            | "$querySettings"
            | "$shardedDataDistribution" => Stage::Source(doc! {name: spec.clone()}),
            // A change stream is opened by its first stage (`changestream::stream`).
            "$geoNear" => Stage::GeoNear(Box::new(geo_near::GeoNear::parse(spec, vars)?)),
            "$changeStream" => {
                return Err(CommandError::new(
                    40602,
                    "$changeStream is only valid as the first stage in a pipeline.",
                ));
            }
            // Run by the change stream itself (`changestream::stream`); nowhere else.
            "$changeStreamSplitLargeEvent" => {
                return Err(CommandError::new(
                    codes::ILLEGAL_OPERATION,
                    "$changeStreamSplitLargeEvent can only be used in a $changeStream pipeline",
                ));
            }
            // Atlas Search stages exist only on Atlas; a plain server refuses them.
            "$listSearchIndexes" | "$search" | "$searchMeta" | "$vectorSearch" => {
                return Err(CommandError::new(
                    ErrorCodeLocal::SEARCH_NOT_ENABLED,
                    "Using Atlas Search Database Commands and the $listSearchIndexes aggregation stage requires additional configuration. Please connect to Atlas or an AtlasCLI local deployment to enable. For more information on how to connect, see https://dochub.mongodb.org/core/atlas-cli-deploy-local-reqs",
                ));
            }
            "$out" => {
                let (db, coll) = match spec {
                    Bson::String(_) | Bson::Document(_) => namespace("$out", spec)?,
                    other => {
                        return Err(CommandError::new(
                            16990,
                            format!(
                                "$out only supports a string or object argument, but found {}",
                                type_name(other)
                            ),
                        ));
                    }
                };
                Stage::Out { db, coll }
            }
            "$merge" => {
                let spec_doc = match spec {
                    Bson::String(s) => doc! {"into": s.clone()},
                    Bson::Document(d) => d.clone(),
                    other => {
                        return Err(CommandError::new(
                            51182,
                            format!(
                                "$merge only supports a string or object argument, not {}",
                                type_name(other)
                            ),
                        ));
                    }
                };
                let into = spec_doc
                    .get("into")
                    .ok_or_else(|| CommandError::missing_field("$merge", "into"))?;
                let (db, coll) = namespace("$merge", into)?;
                Stage::Merge {
                    db,
                    coll,
                    spec: spec_doc,
                }
            }
            "$redact" => {
                expr::validate(spec)?;
                Stage::Redact(spec.clone())
            }
            other => {
                return Err(CommandError::new(
                    codes::UNRECOGNIZED_PIPELINE_STAGE,
                    format!("Unrecognized pipeline stage name: '{other}'"),
                ));
            }
        })
    }
}

/// Error codes used here that `codes` lacks.
struct ErrorCodeLocal;
impl ErrorCodeLocal {
    const UNION_WITH_SPEC: i32 = 4556300;
    const LIST_SESSIONS_SPEC: i32 = 50700;
    /// SearchNotEnabled.
    const SEARCH_NOT_ENABLED: i32 = 31082;
}

fn parse_unwind(spec: &Bson) -> Result<Stage> {
    let (path, index_field, preserve) = match spec {
        Bson::String(s) => (s.clone(), None, false),
        Bson::Document(d) => {
            let mut path = None;
            let mut index = None;
            let mut preserve = false;
            for (k, v) in d {
                match k.as_str() {
                    "path" => match v {
                        Bson::String(s) => path = Some(s.clone()),
                        other => {
                            return Err(CommandError::new(
                                28808,
                                format!(
                                    "expected a string as the path for $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ));
                        }
                    },
                    "includeArrayIndex" => match v {
                        Bson::String(s) if !s.is_empty() => {
                            if s.starts_with('$') {
                                return Err(CommandError::new(
                                    28822,
                                    format!(
                                        "includeArrayIndex option to $unwind stage should not be prefixed with a '$': {s}"
                                    ),
                                ));
                            }
                            index = Some(s.clone());
                        }
                        other => {
                            return Err(CommandError::new(
                                28810,
                                format!(
                                    "expected a non-empty string for the includeArrayIndex  option to $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ));
                        }
                    },
                    "preserveNullAndEmptyArrays" => match v {
                        Bson::Boolean(b) => preserve = *b,
                        other => {
                            return Err(CommandError::new(
                                28809,
                                format!(
                                    "expected a boolean for the preserveNullAndEmptyArrays option to $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ));
                        }
                    },
                    other => {
                        return Err(CommandError::new(
                            28811,
                            format!("unrecognized option to $unwind stage: {other}"),
                        ));
                    }
                }
            }
            let path =
                path.ok_or_else(|| CommandError::new(28812, "no path specified to $unwind stage"))?;
            (path, index, preserve)
        }
        other => {
            return Err(CommandError::new(
                15981,
                format!(
                    "expected either a string or an object as specification for $unwind stage, got {}",
                    type_name(other)
                ),
            ));
        }
    };
    let Some(body) = path.strip_prefix('$') else {
        return Err(CommandError::new(
            28818,
            format!("path option to $unwind stage should be prefixed with a '$': {path}"),
        ));
    };
    if body.is_empty() || body.split('.').any(str::is_empty) || body.starts_with('$') {
        return Err(CommandError::new(
            15998,
            "FieldPath field names may not be empty strings.",
        ));
    }
    Ok(Stage::Unwind {
        path: body.split('.').map(str::to_string).collect(),
        index_field,
        preserve,
    })
}

fn parse_lookup(spec: &Bson, vars: &Document) -> Result<Stage> {
    let Bson::Document(d) = spec else {
        return Err(CommandError::new(
            ErrorCodeLocal::LOOKUP_SPEC,
            "the $lookup specification must be an Object",
        ));
    };
    let mut from = None;
    let mut local_field = None;
    let mut foreign_field = None;
    let mut let_vars = Document::new();
    let mut pipeline_spec = None;
    let mut as_field = None;
    let string = |k: &str, v: &Bson| -> Result<String> {
        match v {
            Bson::String(s) => Ok(s.clone()),
            other => Err(CommandError::failed_to_parse(format!(
                "$lookup argument '{k}: {other}' must be a string, is type {}",
                type_name(other)
            ))),
        }
    };
    for (k, v) in d {
        match k.as_str() {
            "from" => from = Some(namespace("$lookup", v)?),
            "localField" => local_field = Some(string(k, v)?),
            "foreignField" => foreign_field = Some(string(k, v)?),
            "as" => as_field = Some(string(k, v)?),
            "let" => match v {
                Bson::Document(l) => {
                    for (name, e) in l {
                        expr::validate(e)?;
                        let _ = name;
                    }
                    let_vars = l.clone();
                }
                other => {
                    return Err(CommandError::failed_to_parse(format!(
                        "$lookup argument 'let' must be an object, is type {}",
                        type_name(other)
                    )));
                }
            },
            "pipeline" => pipeline_spec = Some(v.clone()),
            other => {
                return Err(CommandError::failed_to_parse(format!(
                    "unknown argument to $lookup: {other}"
                )));
            }
        }
    }
    let as_field = as_field
        .ok_or_else(|| CommandError::failed_to_parse("must specify 'as' field for a $lookup"))?;
    if local_field.is_some() != foreign_field.is_some() {
        return Err(CommandError::failed_to_parse(
            "$lookup requires both or neither of 'localField' and 'foreignField' to be specified",
        ));
    }
    if pipeline_spec.is_none() && local_field.is_none() {
        return Err(CommandError::failed_to_parse(
            "$lookup requires either 'pipeline' or both 'localField' and 'foreignField' to be specified",
        ));
    }
    if pipeline_spec.is_none() && !let_vars.is_empty() {
        return Err(CommandError::failed_to_parse(
            "$lookup with 'let' must also specify 'pipeline'",
        ));
    }
    // Let variables are visible in the sub-pipeline: parse it with placeholders for them.
    let mut sub_vars = vars.clone();
    for k in let_vars.keys() {
        sub_vars.insert(k.clone(), Bson::Null);
    }
    let pipeline = match &pipeline_spec {
        Some(p) => Some(sub_pipeline("$lookup", p, &sub_vars)?),
        None => None,
    };
    let starts_with_documents = pipeline
        .as_ref()
        .is_some_and(|p| matches!(p.stages.first(), Some(Stage::Documents(_))));
    if from.is_none() && !starts_with_documents {
        return Err(CommandError::failed_to_parse(
            "must specify 'from' field for a $lookup",
        ));
    }
    Ok(Stage::Lookup(Box::new(Lookup {
        from,
        local_field,
        foreign_field,
        let_vars,
        pipeline,
        as_field,
    })))
}

impl ErrorCodeLocal {
    const LOOKUP_SPEC: i32 = 40319;
}

/// Sets `path` (dotted) in `doc`, creating intermediate documents (a non-document on the way is
/// replaced, as `$lookup`'s `as` and `$unwind` do).
fn set_path(doc: &mut Document, path: &[String], value: Bson) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        doc.insert(first.clone(), value);
        return;
    }
    let mut sub = match doc.get(first) {
        Some(Bson::Document(d)) => d.clone(),
        _ => Document::new(),
    };
    set_path(&mut sub, rest, value);
    doc.insert(first.clone(), sub);
}

fn remove_path(doc: &mut Document, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        doc.remove(first);
    } else if let Some(Bson::Document(sub)) = doc.get_mut(first) {
        remove_path(sub, rest);
    }
}

/// The value at `path` through documents only (no array traversal), as `$unwind` reads it.
fn get_path<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Bson> {
    let (first, rest) = path.split_first()?;
    let v = doc.get(first)?;
    if rest.is_empty() {
        return Some(v);
    }
    match v {
        Bson::Document(d) => get_path(d, rest),
        _ => None,
    }
}

impl Pipeline {
    /// Parses `stages`. An unknown stage fails with 40324 ("Unrecognized pipeline stage name:
    /// '$foo'"); a stage that is not a one-key document with 40323; `$out`/`$merge` not last
    /// with 40601; and so on as on the server.
    pub fn parse(stages: &[Document], vars: &Document) -> Result<Pipeline> {
        let p = Pipeline::parse_unchecked(stages, vars)?;
        p.check_metadata(Available::at_start(&p.stages))?;
        Ok(p)
    }

    /// Parses a view's definition: the metadata check waits until the view is read, with the
    /// reader's stages after it (as the server's planner checks a query, not a view).
    pub fn parse_view(stages: &[Document]) -> Result<Pipeline> {
        Pipeline::parse_unchecked(stages, &Document::new())
    }

    /// Parses `stages` without the metadata check (a sub-pipeline, checked with its parent).
    fn parse_unchecked(stages: &[Document], vars: &Document) -> Result<Pipeline> {
        let mut parsed = Vec::with_capacity(stages.len());
        for (i, s) in stages.iter().enumerate() {
            if s.len() != 1 {
                return Err(CommandError::new(
                    40323,
                    "A pipeline stage specification object must contain exactly one field.",
                ));
            }
            let Some((name, spec)) = s.iter().next() else {
                return Err(CommandError::new(
                    40323,
                    "A pipeline stage specification object must contain exactly one field.",
                ));
            };
            let stage = Stage::parse(name, spec, vars)?;
            let last = i + 1 == stages.len();
            match &stage {
                Stage::Out { .. } | Stage::Merge { .. } if !last => {
                    return Err(CommandError::new(
                        40601,
                        format!("{name} can only be the final stage in the pipeline"),
                    ));
                }
                Stage::GeoNear(_) if i != 0 => {
                    return Err(CommandError::new(
                        40603,
                        "$geoNear was not the first stage in the pipeline.",
                    ));
                }
                Stage::Match(_, m) if i != 0 && m.has_text() => {
                    return Err(CommandError::new(
                        17313,
                        "$match with $text is only allowed as the first pipeline stage",
                    ));
                }
                Stage::CollStats(_)
                | Stage::Documents(_)
                | Stage::ListLocalSessions(_)
                | Stage::Source(_)
                    if i != 0 =>
                {
                    return Err(CommandError::new(
                        40602,
                        format!("{name} is only valid as the first stage in a pipeline"),
                    ));
                }
                _ => {}
            }
            parsed.push(stage);
        }
        Ok(Pipeline {
            stages: parsed,
            specs: stages.to_vec(),
            sort_key: stages
                .iter()
                .any(|s| s.values().any(|v| reads_meta(v, "sortKey"))),
            vars: vars.clone(),
            allow_disk_use: true,
        })
    }

    /// Parses a pipeline given as BSON values (the `pipeline` field of a command): an element
    /// that is not a document fails with 14 TypeMismatch.
    pub fn parse_values(stages: &[Bson], vars: &Document) -> Result<Pipeline> {
        let mut docs = Vec::with_capacity(stages.len());
        for s in stages {
            match s {
                Bson::Document(d) => docs.push(d.clone()),
                other => {
                    return Err(CommandError::type_mismatch(format!(
                        "Each element of the 'pipeline' array must be an object, found {}",
                        type_name(other)
                    )));
                }
            }
        }
        Pipeline::parse(&docs, vars)
    }

    /// Parses the pipeline of a pipeline-style update: only `$addFields`, `$set`, `$project`,
    /// `$unset`, `$replaceRoot` and `$replaceWith` are allowed (72 InvalidOptions otherwise, as
    /// on the server).
    pub fn parse_update(stages: &[Document], vars: &Document) -> Result<Pipeline> {
        for s in stages {
            if let Some(name) = s.keys().next()
                && s.len() == 1
                && !matches!(
                    name.as_str(),
                    "$addFields" | "$set" | "$project" | "$unset" | "$replaceRoot" | "$replaceWith"
                )
            {
                return Err(CommandError::invalid_options(format!(
                    "{name} is not allowed to be used within an update"
                )));
            }
        }
        Pipeline::parse(stages, vars)
    }

    /// Runs a pipeline that needs nothing from the server (a pipeline update): stages that read
    /// other collections see none, and `$collStats`, `$out` and `$merge` fail.
    pub fn run_local(&self, input: Vec<Document>) -> Result<Vec<Document>> {
        self.run(input, "", &NoEnv)
    }

    /// Whether the first stage is `$collStats` (which then replaces the input) or another
    /// stage that does not read the collection (`$documents`).
    pub fn reads_input(&self) -> bool {
        !matches!(
            self.stages.first(),
            Some(
                Stage::CollStats(_)
                    | Stage::Documents(_)
                    | Stage::ListLocalSessions(_)
                    | Stage::Source(_)
            )
        )
    }

    /// The pipeline as a [`Streaming`] executor, when every stage works one document at a
    /// time and needs nothing from the server.
    pub fn streaming(&self) -> Option<Streaming> {
        let per_document = self.stages.iter().all(|s| match s {
            Stage::Match(_, m) => !m.has_text() && m.near().is_none(),
            Stage::Project(_) | Stage::ReplaceRoot(_) | Stage::Skip(_) | Stage::Limit(_) => true,
            _ => false,
        });
        if !per_document || self.stages.is_empty() {
            return None;
        }
        let left = self
            .stages
            .iter()
            .map(|s| match s {
                Stage::Skip(n) | Stage::Limit(n) => *n,
                _ => 0,
            })
            .collect();
        Some(Streaming {
            stages: self.stages.clone(),
            vars: self.vars.clone(),
            left,
        })
    }

    /// Sets `allowDiskUse` (true unless the command says `false`).
    pub fn allow_disk_use(mut self, allow: bool) -> Pipeline {
        self.allow_disk_use = allow;
        self
    }

    /// Whether the pipeline ends with `$out` or `$merge` (it then returns no documents).
    pub fn writes_output(&self) -> bool {
        matches!(
            self.stages.last(),
            Some(Stage::Out { .. } | Stage::Merge { .. })
        )
    }

    /// The pipeline with the command's `collation` applied to the string comparisons of its
    /// `$match` and `$sort` stages, as the server's expression context applies it to the
    /// whole pipeline.
    pub fn with_collation(
        mut self,
        collation: Option<crate::query::collation::Collation>,
    ) -> Result<Pipeline> {
        let Some(collation) = collation else {
            return Ok(self);
        };
        for stage in &mut self.stages {
            match stage {
                Stage::Match(filter, m) => {
                    *m = Matcher::with_collation(filter, &self.vars, Some(collation.clone()))?;
                }
                Stage::Sort(spec) => *spec = spec.clone().collated(Some(collation.clone())),
                _ => {}
            }
        }
        Ok(self)
    }

    /// Runs the pipeline over `input` (the collection's documents in natural order).
    pub fn run(
        &self,
        input: Vec<Document>,
        db: &str,
        env: &dyn PipelineEnv,
    ) -> Result<Vec<Document>> {
        self.run_with(input, db, env, &self.vars)
    }

    fn run_with(
        &self,
        input: Vec<Document>,
        db: &str,
        env: &dyn PipelineEnv,
        vars: &Document,
    ) -> Result<Vec<Document>> {
        Ok(docs(self.run_rows(rows(input), db, env, vars)?))
    }

    /// Runs the stages over rows: metadata travels with each document from the stage that
    /// produces it to the stages that read it.
    fn run_rows(
        &self,
        input: Vec<Row>,
        db: &str,
        env: &dyn PipelineEnv,
        vars: &Document,
    ) -> Result<Vec<Row>> {
        let mut rows = input;
        let mut stages = self.stages.iter().peekable();
        while let Some(stage) = stages.next() {
            rows = match stage {
                // A `$sort` then `$limit` keeps only the top k (bounded memory).
                Stage::Sort(spec) if matches!(stages.peek(), Some(Stage::Limit(_))) => {
                    let Some(Stage::Limit(k)) = stages.next() else {
                        unreachable!("peeked")
                    };
                    let k = usize::try_from(*k).unwrap_or(usize::MAX);
                    top_k_by(rows, k, |a, b| compare_rows(spec, a, b))
                }
                Stage::Sort(_) if !self.allow_disk_use => {
                    let mut held = 0usize;
                    for r in &rows {
                        held += bson::RawDocumentBuf::try_from(&r.doc)
                            .map_or(0, |raw| raw.as_bytes().len());
                        if held > SORT_MEMORY_LIMIT {
                            return Err(sort_memory_error("PlanExecutor error during aggregation"));
                        }
                    }
                    run_stage(stage, rows, db, env, vars, &self.vars)?
                }
                _ => run_stage(stage, rows, db, env, vars, &self.vars)?,
            };
            if let Stage::Sort(spec) = stage {
                self.record_sort_keys(spec, &mut rows);
            }
        }
        Ok(rows)
    }

    /// Gives each row its sort key, when a later stage reads it.
    fn record_sort_keys(&self, spec: &SortSpec, rows: &mut [Row]) {
        if self.sort_key {
            for r in rows {
                let key = spec.key_values(&r.doc, r.meta.as_deref());
                r.meta_mut().sort_key = Some(key);
            }
        }
    }
}

fn run_stage(
    stage: &Stage,
    rows: Vec<Row>,
    db: &str,
    env: &dyn PipelineEnv,
    vars: &Document,
    parse_vars: &Document,
) -> Result<Vec<Row>> {
    Ok(match stage {
        Stage::Match(filter, matcher) => {
            let rebuilt;
            let m = if vars == parse_vars {
                matcher
            } else {
                rebuilt = Matcher::new(filter, vars)?;
                &rebuilt
            };
            let text = m.has_text();
            if text {
                m.bind_indexes(env.index_specs()?.iter())?;
            }
            let mut out = Vec::with_capacity(rows.len());
            for mut r in rows {
                // `$expr` errors fail the aggregation, as on the server.
                if m.try_matches_meta(&r.doc, r.meta())? {
                    if text {
                        r.meta_mut().text_score = m.text_score(&r.doc);
                    }
                    out.push(r);
                }
            }
            out
        }
        Stage::Project(p) => {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let doc = p.apply(&r.doc, vars, r.meta())?;
                out.push(Row { doc, meta: r.meta });
            }
            out
        }
        Stage::Sort(spec) => {
            let mut rows = rows;
            rows.sort_by(|a, b| compare_rows(spec, a, b));
            rows
        }
        Stage::Limit(n) => rows.into_iter().take(*n as usize).collect(),
        Stage::Skip(n) => rows.into_iter().skip(*n as usize).collect(),
        Stage::Count(field) => {
            if rows.is_empty() {
                Vec::new()
            } else {
                let n = rows.len();
                let v = i32::try_from(n)
                    .map(Bson::Int32)
                    .unwrap_or(Bson::Int64(n as i64));
                vec![Row::plain(doc! {field.clone(): v})]
            }
        }
        Stage::Group(g) => self::rows(g.run(rows, vars)?),
        Stage::SortByCount(e) => {
            let g = Group::parse(&doc! {"_id": e.clone(), "count": {"$sum": 1}})?;
            let mut out = g.run(rows, vars)?;
            // Stable: ties keep their first-appearance order.
            out.sort_by(|a, b| expr::compare_values(b.get("count"), a.get("count")));
            self::rows(out)
        }
        Stage::Sample(n) => {
            // As the server's: each document gets a random value (`randVal`) and the stage
            // keeps the first `n` in that order.
            use rand::seq::SliceRandom;
            let mut rows = rows;
            rows.shuffle(&mut rand::rng());
            rows.truncate(*n as usize);
            for r in &mut rows {
                r.meta_mut().rand_val = Some(rand::random::<f64>());
            }
            rows.sort_by(|a, b| compare_rand(b, a));
            rows
        }
        // Groups: their accumulators read metadata, their outputs have none.
        Stage::BucketAuto(b) => self::rows(b.run(rows, vars)?),
        Stage::Bucket(b) => self::rows(b.run(rows, vars)?),
        Stage::SetWindowFields(w) => w.run_rows(rows, vars)?,
        Stage::Fill(f) => f.run(rows, vars)?,
        // Metadata is not carried through `$densify` (a testkit limit).
        Stage::Densify(d) => self::rows(d.run(docs(rows))?),
        // The new root keeps the document's metadata, as the server's `$replaceRoot` does.
        Stage::ReplaceRoot(e) => {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let d = &r.doc;
                match expr::evaluate_with_meta(e, d, vars, r.meta())? {
                    Some(Bson::Document(nd)) => out.push(Row {
                        doc: nd,
                        meta: r.meta,
                    }),
                    other => {
                        let shown = match &other {
                            Some(v) => v.to_string(),
                            None => "MISSING".to_string(),
                        };
                        return Err(CommandError::new(
                            40228,
                            format!(
                                "'replacement document' must evaluate to an object, but resulting value was: {shown}. Type of resulting value: '{}'. Input document: {}",
                                expr::type_name(other.as_ref()),
                                Bson::Document(d.clone())
                            ),
                        ));
                    }
                }
            }
            out
        }
        Stage::Unwind {
            path,
            index_field,
            preserve,
        } => {
            let mut out = Vec::new();
            let index_path: Option<Vec<String>> = index_field
                .as_ref()
                .map(|f| f.split('.').map(str::to_string).collect());
            // Every output of a document keeps its metadata.
            for Row { doc: d, meta } in rows {
                let row = |doc: Document| Row {
                    doc,
                    meta: meta.clone(),
                };
                match get_path(&d, path).cloned() {
                    Some(Bson::Array(items)) if !items.is_empty() => {
                        for (i, item) in items.into_iter().enumerate() {
                            let mut nd = d.clone();
                            set_path(&mut nd, path, item);
                            if let Some(ip) = &index_path {
                                set_path(&mut nd, ip, Bson::Int64(i as i64));
                            }
                            out.push(row(nd));
                        }
                    }
                    Some(Bson::Array(_)) => {
                        // An empty array survives only with preserveNullAndEmptyArrays, and
                        // then without the field.
                        if *preserve {
                            let mut nd = d;
                            remove_path(&mut nd, path);
                            if let Some(ip) = &index_path {
                                set_path(&mut nd, ip, Bson::Null);
                            }
                            out.push(row(nd));
                        }
                    }
                    None | Some(Bson::Null) | Some(Bson::Undefined) => {
                        if *preserve {
                            let mut nd = d;
                            if let Some(ip) = &index_path {
                                set_path(&mut nd, ip, Bson::Null);
                            }
                            out.push(row(nd));
                        }
                    }
                    Some(_) => {
                        // A non-array value is unwound as itself, with a null index.
                        let mut nd = d;
                        if let Some(ip) = &index_path {
                            set_path(&mut nd, ip, Bson::Null);
                        }
                        out.push(row(nd));
                    }
                }
            }
            out
        }
        Stage::Lookup(l) => run_lookup(l, rows, db, env, vars)?,
        Stage::GraphLookup(g) => {
            // One output per input, in order: each keeps its metadata.
            let (ds, metas): (Vec<Document>, Vec<_>) =
                rows.into_iter().map(|r| (r.doc, r.meta)).unzip();
            run_graph_lookup(g, ds, db, env, vars)?
                .into_iter()
                .zip(metas)
                .map(|(doc, meta)| Row { doc, meta })
                .collect()
        }
        Stage::UnionWith {
            db: other_db,
            coll,
            pipeline,
        } => {
            let mut rows = rows;
            let fdb = other_db.as_deref().unwrap_or(db);
            let foreign = match coll {
                Some(c) => env.collection_documents(fdb, c)?,
                None => Vec::new(),
            };
            let own = Foreign {
                outer: env,
                db: fdb,
                coll: coll.as_deref().unwrap_or(""),
            };
            // The other collection's documents come with what its own pipeline gave them.
            let extra = match pipeline {
                Some(p) => p.run_rows(self::rows(foreign), db, &own, vars)?,
                None => self::rows(foreign),
            };
            rows.extend(extra);
            rows
        }
        // Each facet sees the documents with their metadata; the one output has none.
        Stage::Facet(facets) => {
            let mut out = Document::new();
            for (name, p) in facets {
                let results = p.run_rows(rows.clone(), db, env, vars)?;
                out.insert(
                    name.clone(),
                    Bson::Array(results.into_iter().map(|r| Bson::Document(r.doc)).collect()),
                );
            }
            vec![Row::plain(out)]
        }
        Stage::Documents(e) => {
            let v = expr::evaluate(e, &Document::new(), vars)?;
            let Some(Bson::Array(items)) = v else {
                return Err(CommandError::new(
                    5858203,
                    "error during $documents stage :: caused by :: an array is expected",
                ));
            };
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match i {
                    Bson::Document(d) => out.push(Row::plain(d)),
                    other => {
                        return Err(CommandError::new(
                            40228,
                            format!(
                                "'replacement document' must evaluate to an object, but resulting value was: {other}. Type of resulting value: '{}'. Input document: {{}}",
                                type_name(&other)
                            ),
                        ));
                    }
                }
            }
            out
        }
        Stage::CollStats(options) => vec![Row::plain(env.coll_stats(options)?)],
        Stage::ListLocalSessions(spec) => self::rows(env.local_sessions(spec)?),
        Stage::Source(stage) => self::rows(env.source_stage(stage)?),
        Stage::Out { db: out_db, coll } => {
            env.write_out(out_db.as_deref().unwrap_or(db), coll, docs(rows))?;
            Vec::new()
        }
        Stage::Merge {
            db: out_db,
            coll,
            spec,
        } => {
            env.merge_into(out_db.as_deref().unwrap_or(db), coll, docs(rows), spec)?;
            Vec::new()
        }
        Stage::GeoNear(g) => g.run(docs(rows), &env.index_specs()?)?,
        Stage::Redact(e) => {
            let mut out = Vec::new();
            for r in rows {
                if let Some(nd) = redact(e, &r.doc, &r.doc, vars, r.meta())? {
                    out.push(Row {
                        doc: nd,
                        meta: r.meta,
                    });
                }
            }
            out
        }
    })
}

fn run_lookup(
    l: &Lookup,
    rows: Vec<Row>,
    db: &str,
    env: &dyn PipelineEnv,
    vars: &Document,
) -> Result<Vec<Row>> {
    let foreign = match &l.from {
        Some((fdb, coll)) => env.collection_documents(fdb.as_deref().unwrap_or(db), coll)?,
        None => Vec::new(),
    };
    let own = Foreign {
        outer: env,
        db: l
            .from
            .as_ref()
            .and_then(|(fdb, _)| fdb.as_deref())
            .unwrap_or(db),
        coll: l.from.as_ref().map_or("", |(_, c)| c.as_str()),
    };
    let as_path: Vec<String> = l.as_field.split('.').map(str::to_string).collect();
    let mut out = Vec::with_capacity(rows.len());
    for Row { doc: d, meta } in rows {
        let mut candidates = foreign.clone();
        if let (Some(local), Some(foreign_field)) = (&l.local_field, &l.foreign_field) {
            // As the server builds it: the local values (arrays expanded; none means null),
            // then `$eq` for one value, `$in` for several, or an `$or` of `$eq`s when a regex
            // is among them (a regex in `$in` would match as a pattern).
            let mut values: Vec<Bson> = crate::query::path::lookup_all(&d, local)
                .into_iter()
                .cloned()
                .collect();
            if values.is_empty() {
                values.push(Bson::Null);
            }
            let filter = if values.len() == 1 {
                doc! {foreign_field.clone(): {"$eq": values[0].clone()}}
            } else if values
                .iter()
                .any(|v| matches!(v, Bson::RegularExpression(_)))
            {
                let clauses: Vec<Bson> = values
                    .iter()
                    .map(|v| Bson::Document(doc! {foreign_field.clone(): {"$eq": v.clone()}}))
                    .collect();
                doc! {"$or": clauses}
            } else {
                doc! {foreign_field.clone(): {"$in": values}}
            };
            let matcher = Matcher::new(&filter, vars)?;
            candidates.retain(|f| matcher.matches(f));
        }
        let matched = match &l.pipeline {
            Some(p) => {
                let mut sub_vars = vars.clone();
                for (k, e) in &l.let_vars {
                    // Missing stays missing (stored as undefined, read back as missing).
                    let v = expr::evaluate_with_meta(e, &d, vars, Some(meta_or_empty(&meta)))?
                        .unwrap_or(Bson::Undefined);
                    sub_vars.insert(k.clone(), v);
                }
                p.run_with(candidates, db, &own, &sub_vars)?
            }
            None => candidates,
        };
        let mut nd = d;
        set_path(
            &mut nd,
            &as_path,
            Bson::Array(matched.into_iter().map(Bson::Document).collect()),
        );
        out.push(Row { doc: nd, meta });
    }
    Ok(out)
}

/// A `$graphLookup` stage.
#[derive(Debug, Clone)]
struct GraphLookup {
    from: (Option<String>, String),
    start_with: Bson,
    connect_from: String,
    connect_to: String,
    as_field: String,
    max_depth: Option<i64>,
    depth_field: Option<String>,
    restrict: Option<Document>,
}

fn parse_graph_lookup(spec: &Bson, vars: &Document) -> Result<Stage> {
    let Bson::Document(d) = spec else {
        return Err(CommandError::new(
            40327,
            "the $graphLookup stage specification must be an object",
        ));
    };
    let mut from = None;
    let mut start_with = None;
    let mut connect_from = None;
    let mut connect_to = None;
    let mut as_field = None;
    let mut max_depth = None;
    let mut depth_field = None;
    let mut restrict = None;
    let string = |k: &str, v: &Bson| -> Result<String> {
        match v {
            Bson::String(s) if !s.starts_with('$') => Ok(s.clone()),
            other => Err(CommandError::new(
                40103,
                format!("expected string as argument for {k}, found: {other}"),
            )),
        }
    };
    for (k, v) in d {
        match k.as_str() {
            "from" => from = Some(namespace("$graphLookup", v)?),
            "startWith" => {
                expr::validate(v)?;
                start_with = Some(v.clone());
            }
            "connectFromField" => connect_from = Some(string(k, v)?),
            "connectToField" => connect_to = Some(string(k, v)?),
            "as" => as_field = Some(string(k, v)?),
            "depthField" => depth_field = Some(string(k, v)?),
            "maxDepth" => match integral(v) {
                Some(n) if n >= 0 => max_depth = Some(n),
                Some(n) => {
                    return Err(CommandError::new(
                        40101,
                        format!("maxDepth requires a nonnegative argument, found: {n}"),
                    ));
                }
                None => {
                    return Err(CommandError::new(
                        40100,
                        format!("maxDepth must be numeric, found type: {}", type_name(v)),
                    ));
                }
            },
            "restrictSearchWithMatch" => match v {
                Bson::Document(m) => {
                    Matcher::new(m, vars)?;
                    restrict = Some(m.clone());
                }
                other => {
                    return Err(CommandError::new(
                        40185,
                        format!(
                            "restrictSearchWithMatch must be an object, found {}",
                            type_name(other)
                        ),
                    ));
                }
            },
            other => {
                return Err(CommandError::new(
                    40104,
                    format!("Unknown argument to $graphLookup: {other}"),
                ));
            }
        }
    }
    match (from, start_with, connect_from, connect_to, as_field) {
        (Some(from), Some(start_with), Some(connect_from), Some(connect_to), Some(as_field)) => {
            Ok(Stage::GraphLookup(Box::new(GraphLookup {
                from,
                start_with,
                connect_from,
                connect_to,
                as_field,
                max_depth,
                depth_field,
                restrict,
            })))
        }
        _ => Err(CommandError::new(
            40105,
            "must specify 'connectToField', 'connectFromField', 'from', 'as', and 'startWith' for a $graphLookup",
        )),
    }
}

/// Breadth-first search: each round matches `connectToField` against the values found so far;
/// every foreign document is added once (by `_id`), at its smallest depth.
fn run_graph_lookup(
    g: &GraphLookup,
    docs: Vec<Document>,
    db: &str,
    env: &dyn PipelineEnv,
    vars: &Document,
) -> Result<Vec<Document>> {
    let foreign = env.collection_documents(g.from.0.as_deref().unwrap_or(db), &g.from.1)?;
    let restrict = match &g.restrict {
        Some(m) => Some(Matcher::new(m, vars)?),
        None => None,
    };
    let as_path: Vec<String> = g.as_field.split('.').map(str::to_string).collect();
    let from_parts: Vec<&str> = g.connect_from.split('.').collect();
    let flatten = |v: Option<Bson>| -> Vec<Bson> {
        match v {
            Some(Bson::Array(items)) => items,
            Some(v) => vec![v],
            None => Vec::new(),
        }
    };
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let mut frontier = match expr::evaluate(&g.start_with, &d, vars)? {
            Some(Bson::Array(items)) => items,
            Some(v) => vec![v],
            None => vec![Bson::Null],
        };
        let mut found: Vec<Document> = Vec::new();
        let mut seen: Vec<Bson> = Vec::new();
        let mut depth = 0i64;
        while !frontier.is_empty() && g.max_depth.is_none_or(|m| depth <= m) {
            let m = Matcher::new(
                &doc! {g.connect_to.clone(): {"$in": frontier.clone()}},
                vars,
            )?;
            let mut next = Vec::new();
            for f in &foreign {
                if !m.matches(f) || restrict.as_ref().is_some_and(|r| !r.matches(f)) {
                    continue;
                }
                let id = f.get("_id").cloned().unwrap_or(Bson::Null);
                if seen
                    .iter()
                    .any(|s| expr::compare_values(Some(s), Some(&id)).is_eq())
                {
                    continue;
                }
                seen.push(id);
                next.extend(flatten(expr::traverse(
                    &Bson::Document(f.clone()),
                    &from_parts,
                )));
                let mut f = f.clone();
                if let Some(df) = &g.depth_field {
                    let p: Vec<String> = df.split('.').map(str::to_string).collect();
                    set_path(&mut f, &p, Bson::Int64(depth));
                }
                found.push(f);
            }
            frontier = next;
            depth += 1;
        }
        let mut nd = d;
        set_path(
            &mut nd,
            &as_path,
            Bson::Array(found.into_iter().map(Bson::Document).collect()),
        );
        out.push(nd);
    }
    Ok(out)
}

/// `$redact` of `current` (with `$$ROOT` = `root`): `None` when pruned.
fn redact(
    e: &Bson,
    current: &Document,
    root: &Document,
    vars: &Document,
    meta: Option<&DocMeta>,
) -> Result<Option<Document>> {
    let mut v = vars.clone();
    v.insert("CURRENT", current.clone());
    let decision = expr::evaluate_with_meta(e, root, &v, meta)?;
    match decision {
        Some(Bson::String(s)) if s == "keep" => Ok(Some(current.clone())),
        Some(Bson::String(s)) if s == "prune" => Ok(None),
        Some(Bson::String(s)) if s == "descend" => {
            let mut out = Document::new();
            for (k, val) in current {
                match val {
                    Bson::Document(sub) => {
                        if let Some(r) = redact(e, sub, root, vars, meta)? {
                            out.insert(k.clone(), r);
                        }
                    }
                    Bson::Array(items) => {
                        let mut kept = Vec::new();
                        for i in items {
                            match i {
                                Bson::Document(sub) => {
                                    if let Some(r) = redact(e, sub, root, vars, meta)? {
                                        kept.push(Bson::Document(r));
                                    }
                                }
                                other => kept.push(other.clone()),
                            }
                        }
                        out.insert(k.clone(), kept);
                    }
                    other => {
                        out.insert(k.clone(), other.clone());
                    }
                }
            }
            Ok(Some(out))
        }
        other => Err(CommandError::new(
            17053,
            format!(
                "$redact's expression should not return anything aside from the variables $$KEEP, $$DESCEND, and $$PRUNE, but returned {}",
                other
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "MISSING".into())
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
