//! `explain` of `find`, `count`, `distinct`, `aggregate`, `update`, `delete` and
//! `findAndModify`: a plausible plan in the server's shape (`queryPlanner.winningPlan` with
//! `EXPRESS_IDHACK`, `IXSCAN` under `FETCH`, or `COLLSCAN`, wrapped by `SORT`, `SKIP`, `LIMIT`,
//! `PROJECTION_*`, `COUNT`, `UPDATE`, `DELETE`), and for `executionStats` and
//! `allPlansExecution` the counts of a real evaluation. Explaining a write changes nothing.
//!
//! The plan is chosen as the server's planner would for the simple cases users assert on in
//! their tests ("does this query use my index?"): an `_id` point query takes the express path;
//! otherwise the index whose leading fields are most constrained by the filter's top-level
//! equality or range predicates wins; with none, a collection scan.

use bson::{Bson, Document, doc};

use super::{Ctx, Reply, support};
use crate::error::{CommandError, Result, codes};
use crate::query::matcher::Matcher;
use crate::storage::collection::decode;
use crate::util::type_name;

const VERBOSITIES: &[&str] = &["queryPlanner", "executionStats", "allPlansExecution"];

pub fn explain(ctx: &mut Ctx<'_>) -> Result<Reply> {
    ctx.check_fields(&["verbosity"])?;
    let inner = match ctx.arg() {
        Bson::Document(d) => d.clone(),
        other => {
            return Err(CommandError::wrong_field_type(
                "explain",
                "explain",
                type_name(other),
                &["object"],
            ));
        }
    };
    let verbosity = match ctx.body.get("verbosity") {
        None | Some(Bson::Null) => "allPlansExecution".to_string(),
        Some(Bson::String(v)) if VERBOSITIES.contains(&v.as_str()) => v.clone(),
        Some(Bson::String(v)) => {
            return Err(CommandError::bad_value(format!(
                "Enumeration value '{v}' for field 'verbosity' is not a valid value."
            )));
        }
        Some(other) => {
            return Err(CommandError::wrong_field_type(
                "explain",
                "verbosity",
                type_name(other),
                &["string"],
            ));
        }
    };
    let Some((name, target)) = inner.iter().next().map(|(k, v)| (k.clone(), v.clone())) else {
        return Err(CommandError::bad_value(
            "explain command requires a nested object",
        ));
    };
    let shape = Shape::of(&name, &inner)?;
    // An explained aggregate may not carry its own explain flag (`PipelineCommand::explain`).
    if name == "aggregate" && inner.contains_key("explain") {
        return Err(CommandError::failed_to_parse(
            "The 'explain' option is illegal when an explain verbosity is also provided",
        ));
    }
    // The explained command is parsed by its own IDL: its unknown fields are refused.
    let own_fields = match name.as_str() {
        "find" => super::read::FIND_FIELDS,
        "aggregate" => super::read::AGG_FIELDS,
        "count" => super::read::COUNT_FIELDS,
        "distinct" => super::read::DISTINCT_FIELDS,
        "update" => super::write::UPDATE_FIELDS,
        "delete" => super::write::DELETE_FIELDS,
        _ => super::write::FAM_FIELDS,
    };
    if let Some(k) = inner
        .keys()
        .skip(1)
        .find(|k| !own_fields.contains(&k.as_str()) && !super::GENERIC_FIELDS.contains(&k.as_str()))
    {
        return Err(CommandError::unknown_field(&name, k));
    }
    let coll = match &target {
        Bson::String(c) => c.clone(),
        other => {
            return Err(CommandError::wrong_field_type(
                &name,
                &name,
                type_name(other),
                &["string"],
            ));
        }
    };
    let (winning, stats) = plan(ctx, &coll, &shape)?;
    let mut command = inner.clone();
    command.insert("$db", ctx.db.clone());
    let mut reply = doc! {
        "explainVersion": "1",
        "queryPlanner": {
            "namespace": format!("{}.{coll}", ctx.db),
            "parsedQuery": parsed_query(&shape.filter),
            "indexFilterSet": false,
            "planCacheShapeHash": shape_hash(&name, &shape.filter),
            "maxIndexedOrSolutionsReached": false,
            "maxIndexedAndSolutionsReached": false,
            "maxScansToExplodeReached": false,
            "prunedSimilarIndexes": false,
            "winningPlan": winning.clone(),
            "rejectedPlans": [],
        },
    };
    if verbosity != "queryPlanner" {
        let mut execution = doc! {
            "executionSuccess": true,
            "nReturned": stats.returned,
            "executionTimeMillis": 0,
            "totalKeysExamined": stats.keys,
            "totalDocsExamined": stats.docs,
            "executionStages": with_counts(&winning, &stats),
        };
        if verbosity == "allPlansExecution" {
            execution.insert("allPlansExecution", Bson::Array(Vec::new()));
        }
        reply.insert("executionStats", execution);
    }
    reply.insert("command", command);
    reply.insert(
        "serverInfo",
        doc! {
            "host": "localhost",
            "port": ctx.server.host.rsplit(':').next().and_then(|p| p.parse::<i32>().ok()).unwrap_or(27017),
            "version": ctx.server.options.server_version.release(),
            "gitVersion": "0000000000000000000000000000000000000000",
        },
    );
    reply.insert(
        "serverParameters",
        doc! {
            "internalQueryFacetBufferSizeBytes": 104_857_600,
            "internalQueryFacetMaxOutputDocSizeBytes": 104_857_600,
            "internalLookupStageIntermediateDocumentMaxSizeBytes": 104_857_600,
            "internalDocumentSourceGroupMaxMemoryBytes": 104_857_600,
            "internalQueryMaxBlockingSortMemoryUsageBytes": 104_857_600,
            "internalQueryProhibitBlockingMergeOnMongoS": 0,
            "internalQueryMaxAddToSetBytes": 104_857_600,
            "internalDocumentSourceSetWindowFieldsMaxMemoryBytes": 104_857_600,
            "internalQueryFrameworkControl": "trySbeRestricted",
            "internalQueryPlannerIgnoreIndexWithCollationForRegex": 1,
        },
    );
    Ok(Reply::Doc(reply))
}

/// `{aggregate: ..., pipeline, explain: true}`: the server runs it as an explain of the
/// aggregate at `queryPlanner` verbosity (`runAggregate` with the request's explain flag).
pub(super) fn explain_aggregate(ctx: &mut Ctx<'_>) -> Result<Reply> {
    let mut inner = Document::new();
    let mut outer = Document::new();
    for (k, v) in &ctx.body {
        if k == "explain" {
            continue;
        }
        if super::GENERIC_FIELDS.contains(&k.as_str()) && k != "comment" && k != "maxTimeMS" {
            outer.insert(k.clone(), v.clone());
        } else {
            inner.insert(k.clone(), v.clone());
        }
    }
    let mut body = doc! {"explain": inner, "verbosity": "queryPlanner"};
    body.extend(outer);
    let saved_body = std::mem::replace(&mut ctx.body, body);
    let saved_name = std::mem::replace(&mut ctx.name, "explain".to_string());
    let result = explain(ctx);
    ctx.body = saved_body;
    ctx.name = saved_name;
    result
}

/// What the explained command asks of the query layer.
struct Shape {
    kind: Kind,
    filter: Document,
    sort: Option<Document>,
    skip: i64,
    limit: i64,
    projection: Option<Document>,
    /// Further aggregation stages after a leading `$match`/`$sort`/`$skip`/`$limit`.
    rest: Vec<Document>,
}

#[derive(PartialEq)]
enum Kind {
    Find,
    Count,
    Distinct,
    Aggregate,
    Update,
    Delete,
}

fn opt_doc(d: &Document, field: &str) -> Option<Document> {
    d.get_document(field).ok().cloned()
}

fn opt_i64(d: &Document, field: &str) -> i64 {
    d.get(field)
        .and_then(crate::storage::collection::as_i64)
        .unwrap_or(0)
}

impl Shape {
    fn of(name: &str, inner: &Document) -> Result<Shape> {
        let mut s = Shape {
            kind: Kind::Find,
            filter: Document::new(),
            sort: None,
            skip: 0,
            limit: 0,
            projection: None,
            rest: Vec::new(),
        };
        match name {
            "find" => {
                s.filter = opt_doc(inner, "filter").unwrap_or_default();
                s.sort = opt_doc(inner, "sort").filter(|d| !d.is_empty());
                s.projection = opt_doc(inner, "projection").filter(|d| !d.is_empty());
                s.skip = opt_i64(inner, "skip");
                s.limit = opt_i64(inner, "limit").abs();
            }
            "count" => {
                s.kind = Kind::Count;
                s.filter = opt_doc(inner, "query").unwrap_or_default();
                s.skip = opt_i64(inner, "skip");
                s.limit = opt_i64(inner, "limit").abs();
            }
            "distinct" => {
                s.kind = Kind::Distinct;
                s.filter = opt_doc(inner, "query").unwrap_or_default();
            }
            "aggregate" => {
                s.kind = Kind::Aggregate;
                let pipeline = inner
                    .get_array("pipeline")
                    .map_err(|_| CommandError::missing_field("aggregate", "pipeline"))?;
                let mut leading = true;
                for stage in pipeline {
                    let Bson::Document(stage) = stage else {
                        return Err(CommandError::type_mismatch(
                            "Each element of the 'pipeline' array must be an object",
                        ));
                    };
                    let (op, arg) = stage.iter().next().ok_or_else(|| {
                        CommandError::new(
                            40323,
                            "A pipeline stage specification object must contain exactly one field.",
                        )
                    })?;
                    match (leading, op.as_str(), arg) {
                        (true, "$match", Bson::Document(f))
                            if s.sort.is_none() && s.skip == 0 && s.limit == 0 =>
                        {
                            s.filter.extend(f.clone());
                        }
                        (true, "$sort", Bson::Document(d)) if s.skip == 0 && s.limit == 0 => {
                            s.sort = Some(d.clone())
                        }
                        (true, "$skip", v) if s.limit == 0 => {
                            s.skip += crate::storage::collection::as_i64(v).unwrap_or(0)
                        }
                        (true, "$limit", v) => {
                            s.limit = crate::storage::collection::as_i64(v).unwrap_or(0)
                        }
                        _ => {
                            leading = false;
                            s.rest.push(stage.clone());
                        }
                    }
                }
            }
            "update" | "delete" | "findAndModify" | "findandmodify" => {
                s.kind = if name == "delete" || inner.get_bool("remove").unwrap_or(false) {
                    Kind::Delete
                } else {
                    Kind::Update
                };
                let statement = match name {
                    "update" | "delete" => {
                        let list = if name == "update" {
                            "updates"
                        } else {
                            "deletes"
                        };
                        inner
                            .get_array(list)
                            .ok()
                            .and_then(|a| a.first())
                            .and_then(Bson::as_document)
                            .cloned()
                            .ok_or_else(|| CommandError::missing_field(name, list))?
                    }
                    _ => {
                        let mut d = inner.clone();
                        if let Some(q) = opt_doc(inner, "query") {
                            d.insert("q", q);
                        }
                        d.insert("multi", false);
                        d
                    }
                };
                s.filter = opt_doc(&statement, "q").unwrap_or_default();
                s.sort = opt_doc(&statement, "sort").filter(|d| !d.is_empty());
                let multi = statement.get_bool("multi").unwrap_or(false)
                    || (name == "delete" && opt_i64(&statement, "limit") == 0);
                if !multi {
                    s.limit = 1;
                }
            }
            other if super::security::is_known_command(other) => {
                return Err(CommandError::new(
                    codes::ILLEGAL_OPERATION,
                    format!("Cannot explain cmd: {other}"),
                ));
            }
            other => {
                return Err(CommandError::new(
                    codes::COMMAND_NOT_FOUND,
                    format!("Explain failed due to unknown command: {other}"),
                ));
            }
        }
        Ok(s)
    }
}

/// The counts of an evaluation.
#[derive(Default)]
struct Stats {
    returned: i64,
    keys: i64,
    docs: i64,
}

/// The winning plan and its counts (the query is run; nothing is written).
fn plan(ctx: &Ctx<'_>, coll: &str, shape: &Shape) -> Result<(Document, Stats)> {
    let handle = match support::resolve(ctx, coll)? {
        support::Target::Collection(h) => h,
        // A missing collection (or a view, whose plan is its base's) explains as EOF.
        _ => return Ok((wrap(doc! {"stage": "EOF"}, shape), Stats::default())),
    };
    let data = handle.read();
    let matcher = Matcher::new(&shape.filter, &Document::new())?;
    let mut matched = 0i64;
    let total = data.count() as i64;
    for (_, raw) in data.iter() {
        if matcher.try_matches(&decode(raw)?)? {
            matched += 1;
        }
    }
    let mut returned = (matched - shape.skip).max(0);
    if shape.limit > 0 {
        returned = returned.min(shape.limit);
    }
    let id_point = shape.filter.len() == 1
        && matches!(shape.filter.get("_id"), Some(v) if !matches!(v, Bson::Document(d) if d.keys().any(|k| k.starts_with('$'))) && !matches!(v, Bson::RegularExpression(_) | Bson::Array(_)))
        && data.has_id_index();
    let (access, stats) = if id_point {
        (
            doc! {"stage": "EXPRESS_IDHACK", "keyPattern": {"_id": 1}, "indexName": "_id_", "indexVersion": 2},
            Stats {
                returned,
                keys: matched,
                docs: matched,
            },
        )
    } else if let Some(index) = best_index(&data.indexes, &shape.filter) {
        let key = index.key().clone();
        let mut ixscan = doc! {
            "stage": "IXSCAN",
            "keyPattern": key.clone(),
            "indexName": index.name(),
            "isMultiKey": false,
            "multiKeyPaths": key.keys().map(|k| (k.clone(), Bson::Array(Vec::new()))).collect::<Document>(),
            "isUnique": index.is_unique(),
            "isSparse": index.spec.get_bool("sparse").unwrap_or(false),
            "isPartial": index.spec.contains_key("partialFilterExpression"),
            "indexVersion": 2,
            "direction": "forward",
            "indexBounds": bounds(&key, &shape.filter),
        };
        let residual = residual(&key, &shape.filter);
        let plan = if shape.kind == Kind::Count && residual.is_empty() {
            // A count answered from the index alone.
            ixscan.insert("stage", "COUNT_SCAN");
            ixscan
        } else if residual.is_empty() {
            doc! {"stage": "FETCH", "inputStage": ixscan}
        } else {
            doc! {"stage": "FETCH", "filter": parsed_query(&residual), "inputStage": ixscan}
        };
        (
            plan,
            Stats {
                returned,
                keys: matched,
                docs: matched,
            },
        )
    } else if shape.kind == Kind::Count && shape.filter.is_empty() {
        (
            doc! {"stage": "RECORD_STORE_FAST_COUNT"},
            Stats {
                returned: 0,
                keys: 0,
                docs: 0,
            },
        )
    } else {
        let mut scan = doc! {"stage": "COLLSCAN"};
        if !shape.filter.is_empty() {
            scan.insert("filter", parsed_query(&shape.filter));
        }
        scan.insert("direction", "forward");
        (
            scan,
            Stats {
                returned,
                keys: 0,
                docs: total,
            },
        )
    };
    Ok((wrap(access, shape), stats))
}

/// The index the planner would pick: most leading key fields constrained by a top-level
/// equality or range predicate (hidden, text and geo indexes excluded); `None` for no index.
fn best_index<'a>(
    indexes: &'a [crate::storage::index::Index],
    filter: &Document,
) -> Option<&'a crate::storage::index::Index> {
    let mut best: Option<(usize, &crate::storage::index::Index)> = None;
    for index in indexes {
        if index.spec.get_bool("hidden").unwrap_or(false)
            || index
                .key()
                .values()
                .any(|v| matches!(v, Bson::String(s) if s != "hashed"))
        {
            continue;
        }
        let leading = index
            .key()
            .keys()
            .take_while(|k| filter.get(k.as_str()).is_some_and(sargable))
            .count();
        if leading > 0 && best.is_none_or(|(n, _)| leading > n) {
            best = Some((leading, index));
        }
    }
    best.map(|(_, i)| i)
}

/// Whether a predicate can bound an index scan.
fn sargable(v: &Bson) -> bool {
    match v {
        Bson::Document(d) if d.keys().any(|k| k.starts_with('$')) => d
            .keys()
            .all(|k| matches!(k.as_str(), "$eq" | "$in" | "$gt" | "$gte" | "$lt" | "$lte")),
        Bson::RegularExpression(r) => r.pattern.as_str().starts_with('^'),
        _ => true,
    }
}

/// The filter's predicates that the index does not bound (checked by `FETCH`).
fn residual(key: &Document, filter: &Document) -> Document {
    filter
        .iter()
        .filter(|(k, v)| !(key.contains_key(k.as_str()) && sargable(v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `indexBounds` in the server's interval notation.
fn bounds(key: &Document, filter: &Document) -> Document {
    let show = |v: &Bson| match v {
        Bson::String(s) => format!("\"{s}\""),
        Bson::Int32(n) => n.to_string(),
        Bson::Int64(n) => n.to_string(),
        Bson::Double(f) => f.to_string(),
        Bson::Boolean(b) => b.to_string(),
        Bson::Null => "null".to_string(),
        other => other.to_string(),
    };
    let mut out = Document::new();
    for (field, dir) in key {
        let reversed = matches!(dir, Bson::Int32(n) if *n < 0)
            || matches!(dir, Bson::Int64(n) if *n < 0)
            || matches!(dir, Bson::Double(n) if *n < 0.0);
        let mut intervals: Vec<String> = match filter.get(field.as_str()) {
            Some(Bson::Document(ops)) if ops.keys().all(|k| k.starts_with('$')) => {
                let (mut lo, mut hi) = ("[MinKey".to_string(), "MaxKey]".to_string());
                let mut points = Vec::new();
                for (op, v) in ops {
                    match op.as_str() {
                        "$eq" => points.push(format!("[{0}, {0}]", show(v))),
                        "$in" => {
                            if let Bson::Array(a) = v {
                                points.extend(a.iter().map(|v| format!("[{0}, {0}]", show(v))));
                            }
                        }
                        "$gt" => lo = format!("({}", show(v)),
                        "$gte" => lo = format!("[{}", show(v)),
                        "$lt" => hi = format!("{})", show(v)),
                        "$lte" => hi = format!("{}]", show(v)),
                        _ => {}
                    }
                }
                if points.is_empty() {
                    vec![format!("{lo}, {hi}")]
                } else {
                    points
                }
            }
            Some(v) if sargable(v) && !matches!(v, Bson::RegularExpression(_)) => {
                vec![format!("[{0}, {0}]", show(v))]
            }
            _ => vec!["[MinKey, MaxKey]".to_string()],
        };
        if reversed {
            intervals.reverse();
        }
        out.insert(
            field.clone(),
            Bson::Array(intervals.into_iter().map(Bson::String).collect()),
        );
    }
    out
}

/// Wraps the access path in the stages the command adds.
fn wrap(mut plan: Document, shape: &Shape) -> Document {
    if let Some(sort) = &shape.sort {
        plan = doc! {"stage": "SORT", "sortPattern": sort.clone(), "memLimit": 104_857_600, "type": "simple", "inputStage": plan};
        if shape.limit > 0 {
            plan.insert("limitAmount", shape.limit);
        }
    }
    if shape.skip > 0 {
        plan = doc! {"stage": "SKIP", "skipAmount": shape.skip, "inputStage": plan};
    }
    if shape.limit > 0
        && shape.sort.is_none()
        && shape.kind != Kind::Update
        && shape.kind != Kind::Delete
    {
        plan = doc! {"stage": "LIMIT", "limitAmount": shape.limit, "inputStage": plan};
    }
    if let Some(p) = &shape.projection {
        let simple = p.values().all(|v| {
            matches!(
                v,
                Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Boolean(_)
            )
        });
        let stage = if simple {
            "PROJECTION_SIMPLE"
        } else {
            "PROJECTION_DEFAULT"
        };
        plan = doc! {"stage": stage, "transformBy": p.clone(), "inputStage": plan};
    }
    match shape.kind {
        Kind::Count => doc! {"stage": "COUNT", "inputStage": plan},
        Kind::Update => doc! {"stage": "UPDATE", "inputStage": plan},
        Kind::Delete => doc! {"stage": "DELETE", "inputStage": plan},
        Kind::Distinct => doc! {"stage": "PROJECTION_DEFAULT", "inputStage": plan},
        Kind::Aggregate if !shape.rest.is_empty() => {
            let mut d = doc! {"stage": "PIPELINE", "inputStage": plan};
            d.insert("pipeline", shape.rest.clone());
            d
        }
        _ => plan,
    }
}

/// The plan with `nReturned`, `docsExamined` and `keysExamined` on its stages.
fn with_counts(plan: &Document, stats: &Stats) -> Document {
    let mut d = plan.clone();
    d.insert("nReturned", stats.returned);
    d.insert("executionTimeMillisEstimate", 0);
    match d.get_str("stage").unwrap_or_default() {
        "COLLSCAN" => {
            d.insert("docsExamined", stats.docs);
        }
        "IXSCAN" | "COUNT_SCAN" | "EXPRESS_IDHACK" => {
            d.insert("keysExamined", stats.keys);
        }
        "FETCH" => {
            d.insert("docsExamined", stats.docs);
        }
        _ => {}
    }
    if let Ok(inner) = plan.get_document("inputStage") {
        d.insert("inputStage", with_counts(inner, stats));
    }
    d
}

/// The filter as `parsedQuery` shows it: each predicate `{field: {$op: value}}`, several
/// under `$and`.
pub(super) fn parsed_query(filter: &Document) -> Document {
    let mut parts: Vec<Document> = Vec::new();
    for (k, v) in filter {
        if k.starts_with('$') {
            parts.push(doc! {k.clone(): v.clone()});
            continue;
        }
        match v {
            Bson::Document(ops) if ops.keys().next().is_some_and(|o| o.starts_with('$')) => {
                for (op, arg) in ops {
                    parts.push(doc! {k.clone(): {op.clone(): arg.clone()}});
                }
            }
            Bson::RegularExpression(_) => parts.push(doc! {k.clone(): {"$regex": v.clone()}}),
            _ => parts.push(doc! {k.clone(): {"$eq": v.clone()}}),
        }
    }
    match parts.len() {
        0 => Document::new(),
        1 => parts.pop().expect("one"),
        _ => doc! {"$and": parts},
    }
}

/// A stable hash of the query's shape (command and filter fields), as the server's
/// `planCacheShapeHash` is: equal for queries that differ only in values.
fn shape_hash(name: &str, filter: &Document) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    for k in filter.keys() {
        k.hash(&mut h);
    }
    format!("{:08X}", h.finish() as u32)
}
