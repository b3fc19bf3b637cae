use std::cell::RefCell;
use std::collections::HashMap;

use bson::{Bson, Document, bson, doc};

use super::{Pipeline, PipelineEnv};
use crate::error::{CommandError, Result};

/// A recorded `$out` (no spec) or `$merge` (its spec): database, collection, documents.
type Write = (String, String, Vec<Document>, Option<Document>);

/// Collections in memory; `$out`/`$merge` writes are recorded.
#[derive(Default)]
struct Env {
    colls: HashMap<(String, String), Vec<Document>>,
    writes: RefCell<Vec<Write>>,
}

impl Env {
    fn with(mut self, db: &str, coll: &str, docs: Vec<Document>) -> Env {
        self.colls.insert((db.into(), coll.into()), docs);
        self
    }
}

impl PipelineEnv for Env {
    fn collection_documents(&self, db: &str, coll: &str) -> Result<Vec<Document>> {
        Ok(self
            .colls
            .get(&(db.to_string(), coll.to_string()))
            .cloned()
            .unwrap_or_default())
    }
    fn coll_stats(&self, options: &Document) -> Result<Document> {
        Ok(doc! {"ns": "db.c", "options": options.clone(), "count": 3})
    }
    fn write_out(&self, db: &str, coll: &str, docs: Vec<Document>) -> Result<()> {
        self.writes
            .borrow_mut()
            .push((db.into(), coll.into(), docs, None));
        Ok(())
    }
    fn merge_into(&self, db: &str, coll: &str, docs: Vec<Document>, spec: &Document) -> Result<()> {
        self.writes
            .borrow_mut()
            .push((db.into(), coll.into(), docs, Some(spec.clone())));
        Ok(())
    }
}

fn stages(p: Bson) -> Vec<Document> {
    match p {
        Bson::Array(a) => a
            .into_iter()
            .map(|s| match s {
                Bson::Document(d) => d,
                other => panic!("not a stage: {other}"),
            })
            .collect(),
        other => panic!("not an array: {other}"),
    }
}

fn run_env(p: Bson, input: Vec<Document>, env: &Env) -> Result<Vec<Document>> {
    Pipeline::parse(&stages(p), &Document::new())?.run(input, "db", env)
}

fn run(p: Bson, input: Vec<Document>) -> Vec<Document> {
    run_env(p, input, &Env::default()).unwrap()
}

fn err(p: Bson, input: Vec<Document>) -> CommandError {
    run_env(p, input, &Env::default()).unwrap_err()
}

fn parse_err(p: Bson) -> CommandError {
    Pipeline::parse(&stages(p), &Document::new()).unwrap_err()
}

fn docs(b: Bson) -> Vec<Document> {
    stages(b)
}

#[test]
fn parse_errors() {
    let e = parse_err(bson!([{"$foo": 1}]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (40324, "Unrecognized pipeline stage name: '$foo'")
    );
    let e = parse_err(bson!([{"$match": {}, "$limit": 1}]));
    assert_eq!(e.code, 40323);
    assert_eq!(parse_err(bson!([{}])).code, 40323);
    let e = Pipeline::parse_values(&[Bson::Int32(1)], &Document::new()).unwrap_err();
    assert_eq!(e.code, 14);
    assert_eq!(
        parse_err(bson!([{"$out": "x"}, {"$match": {}}])).code,
        40601
    );
    assert_eq!(
        parse_err(bson!([{"$merge": {"into": "x"}}, {"$limit": 1}])).code,
        40601
    );
    assert_eq!(parse_err(bson!([{"$limit": 0}])).code, 15958);
    // 8.x's codes and wording for $limit and $skip arguments.
    let e = parse_err(bson!([{"$limit": -1}]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            5107201,
            "invalid argument to $limit stage: Expected a non-negative number in: $limit: -1"
        )
    );
    let e = parse_err(bson!([{"$limit": "a"}]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            5107201,
            "invalid argument to $limit stage: Expected a number in: $limit: \"a\""
        )
    );
    let e = parse_err(bson!([{"$skip": -1}]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            5107200,
            "invalid argument to $skip stage: Expected a non-negative number in: $skip: -1"
        )
    );
    let e = parse_err(bson!([{"$skip": 1.5}]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            5107200,
            "invalid argument to $skip stage: Expected an integer: $skip: 1.5"
        )
    );
    assert!(
        Pipeline::parse(
            &stages(bson!([{"$skip": 2.0}, {"$limit": 3.0}])),
            &Document::new()
        )
        .is_ok()
    );
    assert_eq!(
        parse_err(bson!([{"$match": {}}, {"$collStats": {}}])).code,
        40602
    );
    assert_eq!(
        parse_err(bson!([{"$match": {}}, {"$documents": []}])).code,
        40602
    );
    // Expressions are checked at parse time, before any document is seen.
    assert_eq!(
        parse_err(bson!([{"$addFields": {"a": {"$nope": 1}}}])).code,
        168
    );
    assert_eq!(
        parse_err(bson!([{"$group": {"n": {"$sum": 1}}}])).code,
        15955
    );
    assert_eq!(
        parse_err(bson!([{"$group": {"_id": 1, "n": {"$bogus": 1}}}])).code,
        15952
    );
    assert_eq!(
        parse_err(bson!([{"$group": {"_id": 1, "a.b": {"$sum": 1}}}])).code,
        40235
    );
    assert_eq!(parse_err(bson!([{"$count": "$x"}])).code, 40158);
    assert_eq!(parse_err(bson!([{"$count": "a.b"}])).code, 40160);
    assert_eq!(parse_err(bson!([{"$unset": []}])).code, 31119);
    assert_eq!(parse_err(bson!([{"$unset": [1]}])).code, 31120);
    assert_eq!(
        parse_err(bson!([{"$lookup": {"from": "f", "as": "x"}}])).code,
        9
    );
    assert_eq!(
        parse_err(bson!([{"$facet": {"a": [{"$out": "x"}]}}])).code,
        40600
    );
    assert_eq!(parse_err(bson!([{"$sortByCount": "a"}])).code, 40148);
    assert_eq!(parse_err(bson!([{"$sort": {}}])).code, 15976);
}

#[test]
fn reads_input() {
    let p = |b: Bson| Pipeline::parse(&stages(b), &Document::new()).unwrap();
    assert!(p(bson!([{"$match": {}}])).reads_input());
    assert!(p(bson!([])).reads_input());
    assert!(!p(bson!([{"$collStats": {"count": {}}}])).reads_input());
    assert!(!p(bson!([{"$documents": [{"a": 1}]}])).reads_input());
}

#[test]
fn match_sort_skip_limit_count() {
    let input =
        docs(bson!([{"_id": 1, "x": 3}, {"_id": 2, "x": 1}, {"_id": 3, "x": 2}, {"_id": 4}]));
    let out = run(
        bson!([{"$match": {"x": {"$gte": 1}}}, {"$sort": {"x": -1}}, {"$skip": 1}, {"$limit": 1}]),
        input.clone(),
    );
    assert_eq!(out, docs(bson!([{"_id": 3, "x": 2}])));
    assert_eq!(
        run(bson!([{"$count": "n"}]), input.clone()),
        docs(bson!([{"n": 4}]))
    );
    // $count over nothing outputs nothing.
    assert!(
        run(
            bson!([{"$match": {"x": 99}}, {"$count": "n"}]),
            input.clone()
        )
        .is_empty()
    );
    // $expr sees the pipeline's let variables.
    let p = Pipeline::parse(
        &stages(bson!([{"$match": {"$expr": {"$eq": ["$x", "$$v"]}}}])),
        &doc! {"v": 2},
    )
    .unwrap();
    assert_eq!(
        p.run(input, "db", &Env::default()).unwrap(),
        docs(bson!([{"_id": 3, "x": 2}]))
    );
}

#[test]
fn project_inclusion_exclusion_and_computed() {
    let input =
        docs(bson!([{"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [{"c": 1, "f": 2}, 5]}]));
    assert_eq!(
        run(bson!([{"$project": {"b.c": 1, "a": 1}}]), input.clone()),
        // Included fields keep the input order; _id is included by default.
        docs(bson!([{"_id": 1, "a": 1, "b": {"c": 2}}]))
    );
    assert_eq!(
        run(bson!([{"$project": {"_id": 0, "e.c": 1}}]), input.clone()),
        // Scalars inside arrays are dropped by a nested inclusion.
        docs(bson!([{"e": [{"c": 1}]}]))
    );
    assert_eq!(
        run(
            bson!([{"$project": {"b": {"d": 0}, "e": 0}}]),
            input.clone()
        ),
        docs(bson!([{"_id": 1, "a": 1, "b": {"c": 2}}]))
    );
    assert_eq!(
        run(bson!([{"$project": {"_id": 0}}]), input.clone()),
        docs(bson!([{"a": 1, "b": {"c": 2, "d": 3}, "e": [{"c": 1, "f": 2}, 5]}]))
    );
    assert_eq!(
        run(
            bson!([{"$project": {"sum": {"$add": ["$a", "$b.c"]}, "lit": "x", "gone": "$nothing", "a": 1}}]),
            input.clone()
        ),
        // Computed fields follow the included ones; a missing result is omitted.
        docs(bson!([{"_id": 1, "a": 1, "sum": 3, "lit": "x"}]))
    );
    assert_eq!(
        run(
            bson!([{"$project": {"_id": 0, "b.z": {"$literal": 9}}}]),
            input.clone()
        ),
        docs(bson!([{"b": {"z": 9}}]))
    );
    assert_eq!(
        parse_err(bson!([{"$project": {"a": 1, "b": 0}}])).code,
        31254
    );
    assert_eq!(
        parse_err(bson!([{"$project": {"b": 0, "a": 1}}])).code,
        31253
    );
    assert_eq!(
        parse_err(bson!([{"$project": {"b": 0, "a": {"$add": [1]}}}])).code,
        31252
    );
    let e = parse_err(bson!([{"$project": {"b": 0, "a": "$x"}}]));
    assert_eq!(e.code, 31310);
    assert_eq!(
        e.message,
        "Invalid $project :: caused by :: Cannot use an expression a: \"$x\" in an exclusion projection"
    );
    // Messages name the field, not its path.
    let e = parse_err(bson!([{"$project": {"a": {"b": 1, "c": 0}}}]));
    assert_eq!(
        e.message,
        "Invalid $project :: caused by :: Cannot do exclusion on field c in inclusion projection"
    );
    assert_eq!(
        parse_err(bson!([{"$project": {"a": {"$nope": 1}}}])).code,
        31325
    );
    // _id may go either way; a nested _id is an ordinary field.
    assert!(
        Pipeline::parse(
            &stages(bson!([{"$project": {"_id": 1, "a": 0}}])),
            &Document::new()
        )
        .is_ok()
    );
    assert_eq!(
        parse_err(bson!([{"$project": {"a": 1, "b": {"_id": 0}}}])).code,
        31254
    );
    assert_eq!(parse_err(bson!([{"$project": {}}])).code, 51272);
    assert_eq!(
        parse_err(bson!([{"$project": {"a": 1, "a.b": 1}}])).code,
        31250
    );
    assert_eq!(parse_err(bson!([{"$project": {"a": {}}}])).code, 51270);
}

#[test]
fn add_fields_set_unset() {
    let input = docs(bson!([{"_id": 1, "a": {"x": 1}, "arr": [{"y": 1}, 2], "s": 5}]));
    assert_eq!(
        run(
            bson!([{"$addFields": {"a.z": 2, "n": {"$multiply": ["$s", 2]}, "s": "$$REMOVE"}}]),
            input.clone()
        ),
        docs(bson!([{"_id": 1, "a": {"x": 1, "z": 2}, "arr": [{"y": 1}, 2], "n": 10}]))
    );
    assert_eq!(
        run(bson!([{"$set": {"arr.k": 0}}]), input.clone()),
        // Applied to each element; a scalar element becomes a document.
        docs(bson!([{"_id": 1, "a": {"x": 1}, "arr": [{"y": 1, "k": 0}, {"k": 0}], "s": 5}]))
    );
    assert_eq!(
        run(bson!([{"$set": {"s": {"sub": 1}}}]), input.clone()),
        docs(bson!([{"_id": 1, "a": {"x": 1}, "arr": [{"y": 1}, 2], "s": {"sub": 1}}]))
    );
    assert_eq!(
        run(bson!([{"$unset": ["a.x", "s"]}]), input.clone()),
        docs(bson!([{"_id": 1, "a": {}, "arr": [{"y": 1}, 2]}]))
    );
    assert_eq!(run(bson!([{"$unset": "_id"}]), input).len(), 1);
}

#[test]
fn group_with_mixed_types_and_accumulators() {
    let input = docs(bson!([
        {"k": 1, "v": 1, "s": "a"},
        {"k": 1.0, "v": 2i64, "s": "b"},
        {"k": "1", "v": 2.5},
        {"v": 4, "s": "c"},
        {"k": null, "v": "x", "s": "c"},
    ]));
    let out = run(
        bson!([{"$group": {
            "_id": "$k",
            "sum": {"$sum": "$v"}, "avg": {"$avg": "$v"}, "min": {"$min": "$v"}, "max": {"$max": "$v"},
            "first": {"$first": "$s"}, "last": {"$last": "$s"}, "push": {"$push": "$s"},
            "set": {"$addToSet": "$s"}, "n": {"$count": {}}
        }}]),
        input,
    );
    // 1 and 1.0 are one group (keyed by the first value seen); missing and null are one group.
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0],
        doc! {"_id": 1, "sum": Bson::Int64(3), "avg": 1.5, "min": 1, "max": Bson::Int64(2),
        "first": "a", "last": "b", "push": ["a", "b"], "set": ["a", "b"], "n": 1 + 1}
    );
    assert_eq!(
        out[1],
        doc! {"_id": "1", "sum": 2.5, "avg": 2.5, "min": 2.5, "max": 2.5,
        "first": Bson::Null, "last": Bson::Null, "push": [], "set": [], "n": 1}
    );
    assert_eq!(
        out[2],
        doc! {"_id": Bson::Null, "sum": 4, "avg": 4.0, "min": 4, "max": "x",
        "first": "c", "last": "c", "push": ["c", "c"], "set": ["c"], "n": 2}
    );
    // Compound keys and the whole collection.
    let out = run(
        bson!([{"$group": {"_id": {"a": "$a"}, "c": {"$sum": 1}}}]),
        docs(bson!([{"a": 1}, {"a": 1}, {}])),
    );
    assert_eq!(
        out,
        docs(bson!([{"_id": {"a": 1}, "c": 2}, {"_id": {}, "c": 1}]))
    );
    let out = run(
        bson!([{"$group": {"_id": null, "t": {"$sum": "$a"}}}]),
        docs(bson!([{"a": i32::MAX}, {"a": 1}])),
    );
    assert_eq!(
        out,
        vec![doc! {"_id": Bson::Null, "t": Bson::Int64(i32::MAX as i64 + 1)}]
    );
    assert_eq!(
        parse_err(bson!([{"$group": {"_id": null, "t": {"$sum": [1, 2]}}}])).code,
        40237
    );
}

#[test]
fn group_concat_arrays_and_set_union() {
    let input = docs(bson!([
        {"k": 1, "a": [1, 2]},
        {"k": 1, "a": [2, 3]},
        {"k": 1},
        {"k": 2, "a": []}
    ]));
    let out = run(
        bson!([
            {"$group": {"_id": "$k", "all": {"$concatArrays": "$a"}, "set": {"$setUnion": "$a"}}},
            {"$sort": {"_id": 1}}
        ]),
        input,
    );
    assert_eq!(
        out,
        docs(bson!([
            {"_id": 1, "all": [1, 2, 2, 3], "set": [1, 2, 3]},
            {"_id": 2, "all": [], "set": []}
        ]))
    );
    let e = err(
        bson!([{"$group": {"_id": null, "all": {"$concatArrays": "$a"}}}]),
        docs(bson!([{"a": 5}])),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            14,
            "$concatArrays requires array inputs, but input 5 is of type int"
        )
    );
    assert_eq!(
        err(
            bson!([{"$group": {"_id": null, "s": {"$setUnion": "$a"}}}]),
            docs(bson!([{"a": null}]))
        )
        .code,
        14
    );
}

#[test]
fn group_median_and_percentile() {
    let input = docs(bson!([
        {"k": 1, "v": 10}, {"k": 1, "v": 1}, {"k": 1, "v": "x"}, {"k": 1, "v": 3.0},
        {"k": 1, "v": 2.5}, {"k": 2, "v": null}
    ]));
    let out = run(
        bson!([
            {"$group": {
                "_id": "$k",
                "m": {"$median": {"input": "$v", "method": "approximate"}},
                "p": {"$percentile": {"input": "$v", "p": [0.25, 0.9], "method": "approximate"}}
            }},
            {"$sort": {"_id": 1}}
        ]),
        input,
    );
    assert_eq!(
        out,
        docs(bson!([
            {"_id": 1, "m": 2.5, "p": [1.0, 10.0]},
            {"_id": 2, "m": null, "p": [null, null]}
        ]))
    );
    assert_eq!(
        parse_err(bson!([{"$group": {"_id": null, "m": {"$median": 1}}}])).code,
        7436100
    );
    assert_eq!(
        parse_err(bson!([{"$group": {"_id": null, "m": {"$percentile": {"input": "$v", "p": [2], "method": "approximate"}}}}])).code,
        7750303
    );
}

#[test]
fn group_top_bottom_and_n_accumulators() {
    let input = docs(
        bson!([{"g": 1, "x": 3, "n": "c"}, {"g": 1, "x": 1, "n": "a"}, {"g": 1, "x": 2, "n": "b"}, {"g": 1, "n": "z"}]),
    );
    let out = run(
        bson!([{"$group": {
            "_id": "$g",
            "top": {"$top": {"sortBy": {"x": 1}, "output": "$n"}},
            "bottom": {"$bottom": {"sortBy": {"x": 1}, "output": ["$n", "$x"]}},
            "top2": {"$topN": {"n": 2, "sortBy": {"x": -1}, "output": "$n"}},
            "first2": {"$firstN": {"input": "$x", "n": 2}},
            "last2": {"$lastN": {"input": "$x", "n": 2}},
            "max2": {"$maxN": {"input": "$x", "n": 2}},
            "min2": {"$minN": {"input": "$x", "n": 5}},
            "merged": {"$mergeObjects": {"k": "$n"}}
        }}]),
        input,
    );
    assert_eq!(
        out,
        vec![doc! {
            "_id": 1,
            // Missing sorts first in ascending order.
            "top": "z", "bottom": ["c", 3], "top2": ["c", "b"],
            "first2": [3, 1], "last2": [2, Bson::Null], "max2": [3, 2], "min2": [1, 2, 3],
            "merged": {"k": "z"}
        }]
    );
}

#[test]
fn sort_by_count_and_sample() {
    let input =
        docs(bson!([{"t": "a"}, {"t": "b"}, {"t": "b"}, {"t": "c"}, {"t": "b"}, {"t": "c"}]));
    assert_eq!(
        run(bson!([{"$sortByCount": "$t"}]), input.clone()),
        docs(bson!([{"_id": "b", "count": 3}, {"_id": "c", "count": 2}, {"_id": "a", "count": 1}]))
    );
    let out = run(bson!([{"$sample": {"size": 4}}]), input.clone());
    assert_eq!(out.len(), 4);
    let out = run(
        bson!([{"$sample": {"size": 100}}]),
        (0..10).map(|i| doc! {"_id": i}).collect(),
    );
    let mut ids: Vec<i32> = out.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    ids.sort();
    // No repeats.
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert_eq!(parse_err(bson!([{"$sample": {"size": -1}}])).code, 28747);
    assert_eq!(parse_err(bson!([{"$sample": {}}])).code, 28749);
}

#[test]
fn bucket_auto_boundaries() {
    let input: Vec<Document> = (1..=10).map(|i| doc! {"x": i}).collect();
    let out = run(
        bson!([{"$bucketAuto": {"groupBy": "$x", "buckets": 3}}]),
        input.clone(),
    );
    // round(10/3) = 3 per bucket; the last takes the rest; max is the next bucket's min.
    assert_eq!(
        out,
        docs(bson!([
            {"_id": {"min": 1, "max": 4}, "count": 3},
            {"_id": {"min": 4, "max": 7}, "count": 3},
            {"_id": {"min": 7, "max": 10}, "count": 4},
        ]))
    );
    // Equal values never straddle buckets: with 2 per bucket, the third 1 joins the first
    // bucket and the second bucket [2, 3] takes the other 3, leaving nothing for a third.
    let input = docs(bson!([{"x": 3}, {"x": 1}, {"x": 1}, {"x": 2}, {"x": 1}, {"x": 3}]));
    let out = run(
        bson!([{"$bucketAuto": {"groupBy": "$x", "buckets": 3, "output": {"xs": {"$push": "$x"}}}}]),
        input,
    );
    assert_eq!(
        out,
        docs(bson!([
            {"_id": {"min": 1, "max": 2}, "xs": [1, 1, 1]},
            {"_id": {"min": 2, "max": 3}, "xs": [2, 3, 3]},
        ]))
    );
    // Missing and null group values sort first, as null.
    let out = run(
        bson!([{"$bucketAuto": {"groupBy": "$x", "buckets": 2}}]),
        docs(bson!([{"x": 5}, {}, {"x": null}, {"x": 7}])),
    );
    assert_eq!(
        out,
        docs(
            bson!([{"_id": {"min": null, "max": 5}, "count": 2}, {"_id": {"min": 5, "max": 7}, "count": 2}])
        )
    );
    // More buckets than documents: one per document.
    let out = run(
        bson!([{"$bucketAuto": {"groupBy": "$x", "buckets": 5}}]),
        docs(bson!([{"x": 2}, {"x": 1}])),
    );
    assert_eq!(
        out,
        docs(
            bson!([{"_id": {"min": 1, "max": 2}, "count": 1}, {"_id": {"min": 2, "max": 2}, "count": 1}])
        )
    );
    assert!(
        run(
            bson!([{"$bucketAuto": {"groupBy": "$x", "buckets": 2}}]),
            vec![]
        )
        .is_empty()
    );
    assert_eq!(
        parse_err(bson!([{"$bucketAuto": {"groupBy": "$x", "buckets": 0}}])).code,
        40243
    );
    assert_eq!(
        parse_err(bson!([{"$bucketAuto": {"groupBy": "x", "buckets": 2}}])).code,
        40239
    );
    assert_eq!(
        parse_err(bson!([{"$bucketAuto": {"groupBy": "$x"}}])).code,
        40246
    );
}

#[test]
fn bucket() {
    let input = docs(bson!([{"x": 1}, {"x": 5}, {"x": 12}, {"x": "str"}, {"x": 7}]));
    let out = run(
        bson!([{"$bucket": {"groupBy": "$x", "boundaries": [0, 5, 10], "default": "other"}}]),
        input.clone(),
    );
    assert_eq!(
        out,
        docs(bson!([{"_id": 0, "count": 1}, {"_id": 5, "count": 2}, {"_id": "other", "count": 2}]))
    );
    assert_eq!(
        err(
            bson!([{"$bucket": {"groupBy": "$x", "boundaries": [0, 5]}}]),
            input
        )
        .code,
        40066
    );
    assert_eq!(
        parse_err(bson!([{"$bucket": {"groupBy": "$x", "boundaries": [5, 0]}}])).code,
        40194
    );
    assert_eq!(
        parse_err(bson!([{"$bucket": {"groupBy": "$x", "boundaries": [0, "a"]}}])).code,
        40193
    );
    assert_eq!(
        parse_err(bson!([{"$bucket": {"groupBy": "$x", "boundaries": [0]}}])).code,
        40192
    );
}

#[test]
fn replace_root() {
    let input = docs(bson!([{"_id": 1, "a": {"b": 2}}]));
    assert_eq!(
        run(bson!([{"$replaceRoot": {"newRoot": "$a"}}]), input.clone()),
        docs(bson!([{"b": 2}]))
    );
    assert_eq!(
        run(
            bson!([{"$replaceWith": {"$mergeObjects": ["$a", {"c": "$_id"}]}}]),
            input.clone()
        ),
        docs(bson!([{"b": 2, "c": 1}]))
    );
    let e = err(bson!([{"$replaceWith": "$missing"}]), input.clone());
    assert_eq!(e.code, 40228);
    assert_eq!(
        err(bson!([{"$replaceRoot": {"newRoot": "$_id"}}]), input).code,
        40228
    );
}

#[test]
fn unwind_options() {
    let input = docs(bson!([
        {"_id": 1, "a": [1, 2]},
        {"_id": 2, "a": []},
        {"_id": 3, "a": null},
        {"_id": 4},
        {"_id": 5, "a": "s"},
    ]));
    assert_eq!(
        run(bson!([{"$unwind": "$a"}]), input.clone()),
        docs(bson!([{"_id": 1, "a": 1}, {"_id": 1, "a": 2}, {"_id": 5, "a": "s"}]))
    );
    assert_eq!(
        run(
            bson!([{"$unwind": {"path": "$a", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}}]),
            input
        ),
        docs(bson!([
            {"_id": 1, "a": 1, "i": 0i64},
            {"_id": 1, "a": 2, "i": 1i64},
            // The empty array's field is removed; null stays null; indexes are null.
            {"_id": 2, "i": null},
            {"_id": 3, "a": null, "i": null},
            {"_id": 4, "i": null},
            {"_id": 5, "a": "s", "i": null},
        ]))
    );
    assert_eq!(
        run(
            bson!([{"$unwind": "$x.y"}]),
            docs(bson!([{"x": {"y": [1, 2], "z": 0}}]))
        ),
        docs(bson!([{"x": {"y": 1, "z": 0}}, {"x": {"y": 2, "z": 0}}]))
    );
    assert_eq!(parse_err(bson!([{"$unwind": "a"}])).code, 28818);
    assert_eq!(parse_err(bson!([{"$unwind": {}}])).code, 28812);
    assert_eq!(
        parse_err(bson!([{"$unwind": {"path": "$a", "bogus": 1}}])).code,
        28811
    );
    assert_eq!(
        parse_err(bson!([{"$unwind": {"path": "$a", "preserveNullAndEmptyArrays": 1}}])).code,
        28809
    );
    assert_eq!(
        parse_err(bson!([{"$unwind": {"path": "$a", "includeArrayIndex": "$i"}}])).code,
        28822
    );
    assert_eq!(parse_err(bson!([{"$unwind": 1}])).code, 15981);
}

#[test]
fn lookup_both_forms() {
    let env = Env::default().with(
        "db",
        "items",
        docs(bson!([
            {"_id": 1, "sku": "a", "qty": 5},
            {"_id": 2, "sku": "b", "qty": 1},
            {"_id": 3, "qty": 7},
            {"_id": 4, "sku": ["a", "c"], "qty": 2},
        ])),
    );
    let orders =
        docs(bson!([{"_id": 10, "item": "a"}, {"_id": 11, "item": ["b", "c"]}, {"_id": 12}]));
    let out = run_env(
        bson!([{"$lookup": {"from": "items", "localField": "item", "foreignField": "sku", "as": "m"}},
               {"$project": {"ids": "$m._id"}}]),
        orders.clone(),
        &env,
    )
    .unwrap();
    // Arrays match by element on both sides; a missing local field matches missing/null.
    assert_eq!(
        out,
        docs(
            bson!([{"_id": 10, "ids": [1, 4]}, {"_id": 11, "ids": [2, 4]}, {"_id": 12, "ids": [3]}])
        )
    );
    let out = run_env(
        bson!([{"$lookup": {
            "from": "items",
            "let": {"want": "$item"},
            "pipeline": [
                {"$match": {"$expr": {"$eq": ["$sku", "$$want"]}}},
                {"$project": {"_id": 0, "qty": 1}}
            ],
            "as": "info.m"
        }}]),
        orders[..1].to_vec(),
        &env,
    )
    .unwrap();
    assert_eq!(
        out,
        docs(bson!([{"_id": 10, "item": "a", "info": {"m": [{"qty": 5}]}}]))
    );
    // Both forms at once: the equality join first, then the pipeline.
    let out = run_env(
        bson!([{"$lookup": {"from": "items", "localField": "item", "foreignField": "sku",
                            "pipeline": [{"$match": {"qty": {"$gt": 3}}}], "as": "m"}}]),
        orders[..1].to_vec(),
        &env,
    )
    .unwrap();
    assert_eq!(out[0].get_array("m").unwrap().len(), 1);
    // A missing collection joins nothing.
    let out = run_env(
        bson!([{"$lookup": {"from": "nope", "localField": "item", "foreignField": "sku", "as": "m"}}]),
        orders[..1].to_vec(),
        &env,
    )
    .unwrap();
    assert_eq!(out[0].get_array("m").unwrap().len(), 0);
}

#[test]
fn union_with_facet_documents() {
    let env = Env::default().with("db", "other", docs(bson!([{"_id": "o1"}, {"_id": "o2"}])));
    let out = run_env(
        bson!([{"$unionWith": {"coll": "other", "pipeline": [{"$match": {"_id": "o2"}}]}}]),
        docs(bson!([{"_id": 1}])),
        &env,
    )
    .unwrap();
    assert_eq!(out, docs(bson!([{"_id": 1}, {"_id": "o2"}])));
    let out = run_env(bson!([{"$unionWith": "other"}]), vec![], &env).unwrap();
    assert_eq!(out.len(), 2);
    let out = run(
        bson!([{"$facet": {"n": [{"$count": "c"}], "top": [{"$sort": {"x": -1}}, {"$limit": 1}]}}]),
        docs(bson!([{"x": 1}, {"x": 3}])),
    );
    assert_eq!(out, docs(bson!([{"n": [{"c": 2}], "top": [{"x": 3}]}])));
    let out = run(
        bson!([{"$documents": [{"a": 1}, {"a": 2}]}, {"$match": {"a": 2}}]),
        vec![],
    );
    assert_eq!(out, docs(bson!([{"a": 2}])));
    assert_eq!(err(bson!([{"$documents": [1]}]), vec![]).code, 40228);
}

#[test]
fn coll_stats_out_and_merge() {
    let env = Env::default();
    let out = run_env(bson!([{"$collStats": {"count": {}}}]), vec![], &env).unwrap();
    assert_eq!(
        out,
        vec![doc! {"ns": "db.c", "options": {"count": {}}, "count": 3}]
    );
    let out = run_env(
        bson!([{"$match": {}}, {"$out": "target"}]),
        docs(bson!([{"_id": 1}])),
        &env,
    )
    .unwrap();
    assert!(out.is_empty());
    let out = run_env(
        bson!([{"$merge": {"into": {"db": "d2", "coll": "t2"}, "on": "_id"}}]),
        docs(bson!([{"_id": 2}])),
        &env,
    )
    .unwrap();
    assert!(out.is_empty());
    let writes = env.writes.borrow();
    assert_eq!(writes[0].0, "db");
    assert_eq!(writes[0].1, "target");
    assert_eq!(writes[0].2, docs(bson!([{"_id": 1}])));
    assert_eq!((writes[1].0.as_str(), writes[1].1.as_str()), ("d2", "t2"));
    assert_eq!(writes[1].3.as_ref().unwrap().get_str("on").unwrap(), "_id");
}

#[test]
fn redact() {
    let input = docs(
        bson!([{"_id": 1, "level": 1, "sub": {"level": 5, "x": 1}, "list": [{"level": 0}, {"level": 9}, 3]}]),
    );
    let out = run(
        bson!([{"$redact": {"$cond": [{"$gt": [{"$ifNull": ["$level", 0]}, 4]}, "$$PRUNE", "$$DESCEND"]}}]),
        input.clone(),
    );
    assert_eq!(
        out,
        docs(bson!([{"_id": 1, "level": 1, "list": [{"level": 0}, 3]}]))
    );
    assert!(run(bson!([{"$redact": "$$PRUNE"}]), input.clone()).is_empty());
    assert_eq!(
        run(bson!([{"$redact": "$$KEEP"}]), input.clone()),
        input.clone()
    );
    assert_eq!(err(bson!([{"$redact": 1}]), input).code, 17053);
}

#[test]
fn let_variables_reach_every_stage() {
    let vars = doc! {"f": 10};
    let p = Pipeline::parse(
        &stages(bson!([{"$addFields": {"y": {"$multiply": ["$x", "$$f"]}}}, {"$group": {"_id": null, "t": {"$sum": {"$add": ["$y", "$$f"]}}}}])),
        &vars,
    )
    .unwrap();
    let out = p
        .run(docs(bson!([{"x": 1}, {"x": 2}])), "db", &Env::default())
        .unwrap();
    assert_eq!(out, vec![doc! {"_id": Bson::Null, "t": 50}]);
}

#[test]
fn list_local_sessions_and_search_stages() {
    struct Sessions;
    impl PipelineEnv for Sessions {
        fn collection_documents(&self, _: &str, _: &str) -> Result<Vec<Document>> {
            Ok(vec![])
        }
        fn coll_stats(&self, _: &Document) -> Result<Document> {
            Ok(Document::new())
        }
        fn write_out(&self, _: &str, _: &str, _: Vec<Document>) -> Result<()> {
            Ok(())
        }
        fn merge_into(&self, _: &str, _: &str, _: Vec<Document>, _: &Document) -> Result<()> {
            Ok(())
        }
        fn local_sessions(&self, _: &Document) -> Result<Vec<Document>> {
            Ok(docs(bson!([{"_id": {"id": 1}}, {"_id": {"id": 2}}])))
        }
        fn source_stage(&self, stage: &Document) -> Result<Vec<Document>> {
            Ok(vec![doc! {"stage": stage.clone()}])
        }
    }
    let p = Pipeline::parse(
        &stages(bson!([{"$listLocalSessions": {}}, {"$limit": 1}, {"$addFields": {"dummy": "dummy field"}}, {"$project": {"_id": 0, "dummy": 1}}])),
        &Document::new(),
    )
    .unwrap();
    assert!(!p.reads_input());
    assert_eq!(
        p.run(vec![], "admin", &Sessions).unwrap(),
        docs(bson!([{"dummy": "dummy field"}]))
    );
    assert_eq!(
        parse_err(bson!([{"$match": {}}, {"$listLocalSessions": {}}])).code,
        40602
    );
    let p = Pipeline::parse(&stages(bson!([{"$indexStats": {}}])), &Document::new()).unwrap();
    assert!(!p.reads_input());
    assert_eq!(
        p.run(vec![], "db", &Sessions).unwrap(),
        vec![doc! {"stage": {"$indexStats": {}}}]
    );
    // Without support from the command layer the stage is unknown, as on a server without it.
    assert_eq!(
        run_env(bson!([{"$currentOp": {}}]), vec![], &Env::default())
            .unwrap_err()
            .code,
        40324
    );
    assert_eq!(
        parse_err(bson!([{"$match": {}}, {"$indexStats": {}}])).code,
        40602
    );
    assert_eq!(parse_err(bson!([{"$densify": {}}])).code, 40414);
    assert_eq!(parse_err(bson!([{"$setWindowFields": {}}])).code, 40414);
    let e = parse_err(bson!([{"$listSearchIndexes": {}}]));
    assert!(e.message.contains("Atlas"));
}

#[test]
fn aggregate_let_with_expressions() {
    // As the `let` of an aggregate command: evaluated once, then visible everywhere.
    let vars = crate::query::expr::evaluate_let(
        &doc! {"id": 1, "x": "foo", "y": {"$literal": "$bar"}, "rand": {"$rand": {}}},
        &Document::new(),
    )
    .unwrap();
    let p = Pipeline::parse(
        &stages(bson!([
            {"$match": {"$expr": {"$eq": ["$_id", "$$id"]}}},
            {"$project": {"_id": 0, "x": "$$x", "y": "$$y", "rand": "$$rand"}}
        ])),
        &vars,
    )
    .unwrap();
    let out = p
        .run(docs(bson!([{"_id": 1}, {"_id": 2}])), "db", &Env::default())
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].get_str("x").unwrap(), "foo");
    assert_eq!(out[0].get_str("y").unwrap(), "$bar");
    assert!(out[0].get_f64("rand").is_ok());
}

#[test]
fn pipeline_updates() {
    let p = Pipeline::parse_update(
        &stages(bson!([
            {"$set": {"n": {"$add": ["$n", 1]}}},
            {"$replaceWith": {"$setField": {"field": {"$literal": "$a"}, "value": 1, "input": "$$ROOT"}}}
        ])),
        &Document::new(),
    )
    .unwrap();
    let out = p.run_local(docs(bson!([{"_id": 1, "n": 1}]))).unwrap();
    assert_eq!(out, vec![doc! {"_id": 1, "n": 2, "$a": 1}]);
    let e = Pipeline::parse_update(&stages(bson!([{"$match": {}}])), &Document::new()).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (72, "$match is not allowed to be used within an update")
    );
}

#[test]
fn graph_lookup() {
    let env = Env::default().with(
        "db",
        "emp",
        docs(bson!([
            {"_id": 1, "name": "Dev"},
            {"_id": 2, "name": "Eliot", "reportsTo": "Dev"},
            {"_id": 3, "name": "Ron", "reportsTo": "Eliot"},
            {"_id": 4, "name": "Andrew", "reportsTo": "Eliot"},
            {"_id": 5, "name": "Asya", "reportsTo": "Ron"},
        ])),
    );
    let out = run_env(
        bson!([{"$graphLookup": {
            "from": "emp", "startWith": "$reportsTo", "connectFromField": "reportsTo",
            "connectToField": "name", "as": "chain", "depthField": "d"
        }}, {"$project": {"chain": {"$map": {"input": "$chain", "in": ["$$this.name", "$$this.d"]}}}}]),
        docs(bson!([{"_id": 5, "reportsTo": "Ron"}])),
        &env,
    )
    .unwrap();
    assert_eq!(
        out,
        docs(bson!([{"_id": 5, "chain": [["Ron", 0i64], ["Eliot", 1i64], ["Dev", 2i64]]}]))
    );
    let out = run_env(
        bson!([{"$graphLookup": {
            "from": "emp", "startWith": "$reportsTo", "connectFromField": "reportsTo",
            "connectToField": "name", "as": "chain", "maxDepth": 0
        }}]),
        docs(bson!([{"_id": 5, "reportsTo": "Ron"}])),
        &env,
    )
    .unwrap();
    assert_eq!(out[0].get_array("chain").unwrap().len(), 1);
    assert_eq!(
        parse_err(bson!([{"$graphLookup": {"from": "emp"}}])).code,
        40105
    );
    assert_eq!(
        parse_err(
            bson!([{"$graphLookup": {"from": "e", "startWith": 1, "connectFromField": "a",
            "connectToField": "b", "as": "c", "maxDepth": -1}}])
        )
        .code,
        40101
    );
}

/// The regex `/^a/`.
fn regex() -> Bson {
    Bson::RegularExpression(bson::Regex {
        pattern: "^a".to_string().try_into().unwrap(),
        options: String::new().try_into().unwrap(),
    })
}

#[test]
fn lookup_local_values_as_the_server_builds_them() {
    let env = Env::default().with(
        "db",
        "f",
        docs(bson!([
            {"_id": 1, "k": 1},
            {"_id": 2, "k": 2},
            {"_id": 3},
            {"_id": 4, "k": "abc"},
            {"_id": 5, "k": regex()},
        ])),
    );
    let ids = |input: Bson| -> Vec<Bson> {
        let out = run_env(
            bson!([{"$lookup": {"from": "f", "localField": "l.v", "foreignField": "k", "as": "m"}},
                   {"$project": {"_id": 0, "ids": "$m._id"}}]),
            docs(input),
            &env,
        )
        .unwrap();
        out[0].get_array("ids").unwrap().clone()
    };
    // Arrays along the path and at its end are expanded.
    assert_eq!(
        ids(bson!([{"l": [{"v": [1, 2]}]}])),
        vec![bson!(1), bson!(2)]
    );
    // An empty array or a missing value joins as null (documents without the field).
    assert_eq!(ids(bson!([{"l": {"v": []}}])), vec![bson!(3)]);
    assert_eq!(ids(bson!([{}])), vec![bson!(3)]);
    // A regex joins by equality, never as a pattern.
    let re = regex();
    assert_eq!(ids(bson!([{"l": {"v": re.clone()}}])), vec![bson!(5)]);
    assert_eq!(
        ids(bson!([{"l": {"v": [re, 1]}}])),
        vec![bson!(1), bson!(5)]
    );
}

#[test]
fn group_n_accumulators_refuse_a_bad_n_with_7548606() {
    for n in [bson!(0), bson!(-1), bson!(2.5)] {
        let e = Pipeline::parse(
            &[doc! {"$group": {"_id": null, "r": {"$lastN": {"n": n.clone(), "input": "$v"}}}}],
            &Document::new(),
        )
        .and_then(|p| p.run_local(vec![doc! {"v": 1}]))
        .unwrap_err();
        assert_eq!(e.code, 7548606, "{n}");
    }
}

#[test]
fn bucket_auto_granularity_rounds_boundaries_to_the_series() {
    let docs: Vec<Document> = (1..=10).map(|v| doc! {"v": v}).collect();
    let out = Pipeline::parse(
        &[doc! {"$bucketAuto": {"groupBy": "$v", "buckets": 3, "granularity": "R5"}}],
        &Document::new(),
    )
    .unwrap()
    .run_local(docs)
    .unwrap();
    // Boundaries are series numbers times powers of ten, in the server's double arithmetic;
    // each max is exclusive and the next bucket's min.
    let r = |x: f64| Bson::Double(x);
    assert_eq!(
        out,
        vec![
            doc! {"_id": {"min": r(63.0 * 0.01), "max": r(4.0)}, "count": 3},
            doc! {"_id": {"min": r(4.0), "max": r(63.0 * 0.1)}, "count": 3},
            doc! {"_id": {"min": r(63.0 * 0.1), "max": r(16.0)}, "count": 4},
        ]
    );
    let parse = |g: Bson| {
        Pipeline::parse(
            &[doc! {"$bucketAuto": {"groupBy": "$v", "buckets": 2, "granularity": g}}],
            &Document::new(),
        )
    };
    assert_eq!(parse(bson!("R7")).unwrap_err().code, 40257);
    assert_eq!(parse(bson!(5)).unwrap_err().code, 40261);
    let run = |d: Document| {
        parse(bson!("E6"))
            .unwrap()
            .run_local(vec![d])
            .unwrap_err()
            .code
    };
    assert_eq!(run(doc! {"v": "x"}), 40258);
    assert_eq!(run(doc! {"v": -1}), 40268);
    assert_eq!(run(doc! {"v": f64::NAN}), 40263);
}
