use super::*;
use bson::{Decimal128, doc};
use std::str::FromStr;

fn m(filter: Document) -> Matcher {
    Matcher::new(&filter, &doc! {}).unwrap()
}

fn yes(filter: Document, d: Document) {
    assert!(m(filter.clone()).matches(&d), "{filter} should match {d}");
}

fn no(filter: Document, d: Document) {
    assert!(
        !m(filter.clone()).matches(&d),
        "{filter} should not match {d}"
    );
}

fn err(filter: Document) -> CommandError {
    Matcher::new(&filter, &doc! {}).expect_err("should fail")
}

fn dec(s: &str) -> Bson {
    Bson::Decimal128(Decimal128::from_str(s).unwrap())
}

#[test]
fn equality_across_numeric_types_and_exact_documents() {
    yes(doc! {"a": 1}, doc! {"a": 1.0});
    yes(doc! {"a": 1i64}, doc! {"a": dec("1.00")});
    no(doc! {"a": 1}, doc! {"a": "1"});
    yes(doc! {"a": {"b": 1}}, doc! {"a": {"b": 1.0}});
    // Embedded document equality is exact: extra fields or a different order do not match.
    no(doc! {"a": {"b": 1}}, doc! {"a": {"b": 1, "c": 2}});
    no(doc! {"a": {"b": 1, "c": 2}}, doc! {"a": {"c": 2, "b": 1}});
    yes(doc! {"a.b": 1}, doc! {"a": {"b": 1, "c": 2}});
    yes(doc! {}, doc! {"x": 1});
}

#[test]
fn null_matches_missing_but_not_undefined() {
    yes(doc! {"a": null}, doc! {"b": 1});
    yes(doc! {"a": null}, doc! {"a": null});
    no(doc! {"a": null}, doc! {"a": 0});
    // MongoDB 8.0: null equality no longer matches undefined.
    no(doc! {"a": null}, doc! {"a": Bson::Undefined});
    yes(doc! {"a.b": null}, doc! {"a": [{"b": 1}, {"c": 1}]});
    no(doc! {"a.b": null}, doc! {"a": [{"b": 1}]});
    // Scalars inside an array are not documents with a missing field.
    no(doc! {"a.b": null}, doc! {"a": [1, 2]});
    yes(doc! {"a.b": null}, doc! {"a": 5});
    no(doc! {"a": null}, doc! {"a": []});
    yes(doc! {"a": {"$gte": null}}, doc! {});
    no(doc! {"a": {"$gt": null}}, doc! {"a": null});
    yes(doc! {"a": {"$in": [null, 5]}}, doc! {"b": 1});
    no(doc! {"a": {"$ne": null}}, doc! {"b": 1});
    yes(doc! {"a": {"$ne": null}}, doc! {"a": 1});
}

/// MongoDB 8.0 null semantics (before SERVER-36681 changed dotted paths in a later
/// version): `{"a.b": null}` skips scalars and empty arrays inside arrays.
#[test]
fn null_semantics_over_a_corpus() {
    let docs = vec![
        doc! {"_id": "empty_sub", "a": {}},
        doc! {"_id": "null", "a": null},
        doc! {"_id": "number", "a": 4},
        doc! {"_id": "sub_b_hi", "a": {"b": "hi"}},
        doc! {"_id": "sub_b_null", "a": {"b": null}},
        doc! {"_id": "sub_b_undef", "a": {"b": Bson::Undefined}},
        doc! {"_id": "undef", "a": Bson::Undefined},
        doc! {"_id": "no_a"},
        doc! {"_id": "double_array", "a": [[]]},
        doc! {"_id": "empty_array", "a": []},
        doc! {"_id": "objs_mix", "a": [{"b": null}, {"b": Bson::Undefined}, {}]},
        doc! {"_id": "objs_no_null", "a": [{"b": 1}, {"b": "s"}]},
        doc! {"_id": "objs_missing", "a": [{"b": 3}, {}]},
        doc! {"_id": "vals_nulls", "a": [null, null]},
        doc! {"_id": "vals_no_null", "a": [1, "s"]},
        doc! {"_id": "vals_undef", "a": [1, Bson::Undefined]},
    ];
    let ids = |filter: Document| -> Vec<String> {
        let f = m(filter);
        docs.iter()
            .filter(|d| f.matches(d))
            .map(|d| d.get_str("_id").unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(doc! {"a": null}), ["null", "no_a", "vals_nulls"]);
    assert_eq!(
        ids(doc! {"a.b": null}),
        [
            "empty_sub",
            "null",
            "number",
            "sub_b_null",
            "undef",
            "no_a",
            "objs_mix",
            "objs_missing"
        ]
    );
    assert_eq!(
        ids(doc! {"a.b": {"$ne": null}}),
        [
            "sub_b_hi",
            "sub_b_undef",
            "double_array",
            "empty_array",
            "objs_no_null",
            "vals_nulls",
            "vals_no_null",
            "vals_undef"
        ]
    );
    assert_eq!(
        ids(doc! {"a": {"$nin": [null, []]}}),
        [
            "empty_sub",
            "number",
            "sub_b_hi",
            "sub_b_null",
            "sub_b_undef",
            "undef",
            "objs_mix",
            "objs_no_null",
            "objs_missing",
            "vals_no_null",
            "vals_undef"
        ]
    );
    assert_eq!(
        ids(doc! {"a": {"$elemMatch": {"$eq": null}}}),
        ["vals_nulls"]
    );
    // Array elements are matched as objects by the object form: [] has no `b`.
    assert_eq!(
        ids(doc! {"a": {"$elemMatch": {"b": null}}}),
        ["double_array", "objs_mix", "objs_missing"]
    );
    assert!(ids(doc! {"a.b": {"$elemMatch": {"$ne": null}}}).is_empty());
    assert_eq!(ids(doc! {"a": {"$exists": false}}), ["no_a"]);
}

#[test]
fn comparisons_respect_type_brackets() {
    yes(doc! {"a": {"$gt": 1}}, doc! {"a": 2i64});
    no(doc! {"a": {"$gt": 1}}, doc! {"a": "2"});
    no(doc! {"a": {"$lt": "z"}}, doc! {"a": 1});
    yes(doc! {"a": {"$lt": "b"}}, doc! {"a": "a"});
    yes(doc! {"a": {"$gte": dec("1.5")}}, doc! {"a": 1.5});
    no(
        doc! {"a": {"$gt": 9007199254740992.0f64}},
        doc! {"a": 9007199254740992i64},
    );
    yes(
        doc! {"a": {"$gt": 9007199254740992.0f64}},
        doc! {"a": 9007199254740993i64},
    );
    // MinKey / MaxKey bounds cross brackets.
    yes(doc! {"a": {"$gt": Bson::MinKey}}, doc! {"a": "x"});
    yes(doc! {"a": {"$lt": Bson::MaxKey}}, doc! {"a": {"x": 1}});
    no(doc! {"a": {"$lt": Bson::MinKey}}, doc! {"a": 1});
    yes(doc! {"a": {"$gt": 1, "$lt": 5}}, doc! {"a": 3});
    no(doc! {"a": {"$gt": 1, "$lt": 5}}, doc! {"a": 7});
    // Dates compare only with dates.
    let t = bson::DateTime::from_millis(1000);
    yes(
        doc! {"a": {"$gt": bson::DateTime::from_millis(0)}},
        doc! {"a": t},
    );
    no(doc! {"a": {"$gt": 0}}, doc! {"a": t});
}

#[test]
fn nan_semantics() {
    yes(doc! {"a": f64::NAN}, doc! {"a": f64::NAN});
    yes(doc! {"a": {"$gte": f64::NAN}}, doc! {"a": dec("NaN")});
    no(doc! {"a": {"$lt": 0}}, doc! {"a": f64::NAN});
    no(doc! {"a": {"$gt": f64::NAN}}, doc! {"a": 1});
}

#[test]
fn arrays_match_elements_or_whole() {
    yes(doc! {"a": 2}, doc! {"a": [1, 2, 3]});
    yes(doc! {"a": [1, 2]}, doc! {"a": [1, 2]});
    yes(doc! {"a": [1, 2]}, doc! {"a": [[1, 2], 3]});
    no(doc! {"a": [1, 2]}, doc! {"a": [2, 1]});
    no(doc! {"a": 1}, doc! {"a": [[1]]});
    // Range conditions are satisfied by any element, independently.
    yes(doc! {"a": {"$gt": 1, "$lt": 5}}, doc! {"a": [0, 10]});
    no(
        doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}},
        doc! {"a": [0, 10]},
    );
    yes(
        doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}},
        doc! {"a": [0, 3]},
    );
    yes(doc! {"a.b": 2}, doc! {"a": [{"b": 1}, {"b": [2]}]});
    yes(doc! {"a.1": 5}, doc! {"a": [4, 5]});
    yes(doc! {"a.1.b": 5}, doc! {"a": [4, {"b": 5}]});
    yes(doc! {"a.0": 1}, doc! {"a": [{"0": 1}]});
    no(doc! {"a": {"$gt": [3]}}, doc! {"a": [1, 2]});
    // The whole array compares too: [1, 2] < [3].
    yes(doc! {"a": {"$lt": [3]}}, doc! {"a": [1, 2]});
}

#[test]
fn ne_and_nin_negate_the_array_aware_equality() {
    no(doc! {"a": {"$ne": 1}}, doc! {"a": [1, 2]});
    yes(doc! {"a": {"$ne": 3}}, doc! {"a": [1, 2]});
    yes(doc! {"a": {"$ne": 1}}, doc! {});
    no(doc! {"a": {"$nin": [2, 9]}}, doc! {"a": [1, 2]});
    yes(doc! {"a": {"$nin": [8, 9]}}, doc! {"a": [1, 2]});
    no(doc! {"a": {"$nin": [null]}}, doc! {});
}

#[test]
fn in_with_values_and_regexes() {
    yes(doc! {"a": {"$in": [1, "x"]}}, doc! {"a": "x"});
    yes(
        doc! {"a": {"$in": [Bson::RegularExpression(bson::Regex {pattern: "^ab".try_into().unwrap(), options: "".try_into().unwrap()})]}},
        doc! {"a": ["zz", "abc"]},
    );
    no(doc! {"a": {"$in": []}}, doc! {"a": 1});
    yes(doc! {"a": {"$in": [[1, 2]]}}, doc! {"a": [1, 2]});
    assert_eq!(err(doc! {"a": {"$in": 5}}).message, "$in needs an array");
    assert_eq!(err(doc! {"a": {"$nin": 5}}).message, "$nin needs an array");
    assert_eq!(err(doc! {"a": {"$in": [{"$gt": 1}]}}).code, 2);
}

#[test]
fn logical_operators() {
    yes(doc! {"$or": [{"a": 1}, {"b": 2}]}, doc! {"b": 2});
    no(doc! {"$and": [{"a": 1}, {"b": 2}]}, doc! {"b": 2});
    yes(doc! {"$nor": [{"a": 1}, {"b": 2}]}, doc! {"b": 3});
    yes(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": 3});
    yes(doc! {"a": {"$not": {"$gt": 5}}}, doc! {});
    yes(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": "x"});
    no(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": [1, 7]});
    let e = err(doc! {"$or": []});
    assert_eq!(
        (e.code, e.message.as_str()),
        (2, "$and/$or/$nor must be a nonempty array")
    );
    assert_eq!(err(doc! {"$and": 1}).message, "$and must be an array");
    assert_eq!(err(doc! {"$or": [1]}).code, 2);
    assert_eq!(
        err(doc! {"a": {"$not": 5}}).message,
        "$not needs a regex or a document"
    );
}

#[test]
fn unknown_operators() {
    let e = err(doc! {"$foo": 1});
    assert_eq!(e.code, 2);
    assert!(e.message.starts_with("unknown top level operator: $foo"));
    let e = err(doc! {"a": {"$foo": 1}});
    assert_eq!((e.code, e.message.as_str()), (2, "unknown operator: $foo"));
    assert_eq!(
        err(doc! {"a": {"$gt": 1, "b": 1}}).message,
        "unknown operator: b"
    );
    assert_eq!(
        err(doc! {"a": Bson::Undefined}).message,
        "cannot compare to undefined"
    );
    assert!(err(doc! {"$where": "true"}).code == 2);
    assert_eq!(
        err(doc! {"a": {"$where": "x"}}).message,
        "$where cannot be applied to a field"
    );
    assert!(err(doc! {"$not": {"a": 1}}).message.ends_with("use $nor."));
    // `$id`, `$ref` and `$db` at the top level are equalities on those fields.
    yes(doc! {"$id": 5}, doc! {"$id": 5});
    yes(
        doc! {"a": {"$id": 1, "$ref": "c"}},
        doc! {"a": {"$id": 1, "$ref": "c"}},
    );
    yes(doc! {"$sampleRate": 1.0}, doc! {});
    no(doc! {"$sampleRate": 0}, doc! {});
    assert_eq!(err(doc! {"$sampleRate": 2}).code, 2);
    assert_eq!(
        err(doc! {"$alwaysTrue": 2}).message,
        "$alwaysTrue must be an integer value of 1"
    );
    // $comment is ignored.
    yes(doc! {"a": 1, "$comment": "hi"}, doc! {"a": 1});
    // A DBRef-shaped document is a value, not an operator document.
    yes(
        doc! {"a": {"$ref": "c", "$id": 1}},
        doc! {"a": {"$ref": "c", "$id": 1}},
    );
}

#[test]
fn exists_and_type() {
    yes(doc! {"a": {"$exists": true}}, doc! {"a": null});
    no(doc! {"a": {"$exists": true}}, doc! {});
    yes(doc! {"a": {"$exists": false}}, doc! {});
    yes(doc! {"a": {"$exists": 0}}, doc! {});
    yes(doc! {"a.b": {"$exists": false}}, doc! {"a": [1]});
    yes(doc! {"a": {"$exists": true}}, doc! {"a": []});
    yes(doc! {"a": {"$type": "string"}}, doc! {"a": ["x", 1]});
    yes(doc! {"a": {"$type": "array"}}, doc! {"a": []});
    yes(doc! {"a": {"$type": "number"}}, doc! {"a": dec("1")});
    yes(doc! {"a": {"$type": ["int", "long"]}}, doc! {"a": 5i64});
    no(doc! {"a": {"$type": "int"}}, doc! {"a": 5.0});
    yes(doc! {"a": {"$type": 2}}, doc! {"a": "s"});
    yes(doc! {"a": {"$type": 1.0}}, doc! {"a": 1.5});
    yes(doc! {"a": {"$type": "null"}}, doc! {"a": null});
    no(doc! {"a": {"$type": "null"}}, doc! {});
    yes(doc! {"a": {"$type": "minKey"}}, doc! {"a": Bson::MinKey});
    yes(doc! {"a": {"$type": "object"}}, doc! {"a": {}});
    // Type 0 (EOO) is accepted by the server and matches a missing field.
    yes(doc! {"a": {"$type": 0}}, doc! {});
    no(doc! {"a": {"$type": 0}}, doc! {"a": null});
    assert_eq!(
        err(doc! {"a": {"$type": 2.5}}).message,
        "Invalid numerical type code: 2.5"
    );
    assert_eq!(
        err(doc! {"a": {"$type": "missing"}}).message,
        "Unknown type name alias: missing"
    );
    assert_eq!(err(doc! {"a": {"$type": 99}}).code, 2);
    assert_eq!(err(doc! {"a": {"$type": {}}}).code, 14);
    let e = err(doc! {"a": {"$type": []}});
    assert_eq!(
        (e.code, e.message.as_str()),
        (9, "a must match at least one type")
    );
}

#[test]
fn regex_matching_and_options() {
    yes(
        doc! {"a": {"$regex": "^Ab", "$options": "i"}},
        doc! {"a": "abc"},
    );
    no(doc! {"a": {"$regex": "^Ab"}}, doc! {"a": "abc"});
    yes(
        doc! {"a": {"$options": "i", "$regex": "B"}},
        doc! {"a": "abc"},
    );
    yes(
        doc! {"a": {"$regex": "^b", "$options": "m"}},
        doc! {"a": "a\nb"},
    );
    no(doc! {"a": {"$regex": "^b"}}, doc! {"a": "a\nb"});
    yes(
        doc! {"a": {"$regex": "a.b", "$options": "s"}},
        doc! {"a": "a\nb"},
    );
    yes(
        doc! {"a": {"$regex": "a b # comment", "$options": "x"}},
        doc! {"a": "ab"},
    );
    // PCRE's `$` also matches before a final newline.
    yes(doc! {"a": {"$regex": "c$"}}, doc! {"a": "abc\n"});
    yes(doc! {"a": {"$regex": "b"}}, doc! {"a": ["x", "abc"]});
    no(doc! {"a": {"$regex": "1"}}, doc! {"a": 1});
    let re = Bson::RegularExpression(bson::Regex {
        pattern: "^a".try_into().unwrap(),
        options: "".try_into().unwrap(),
    });
    yes(doc! {"a": re.clone()}, doc! {"a": "abc"});
    // A regex value as the target of $eq is an equality on regex values.
    no(doc! {"a": {"$eq": re.clone()}}, doc! {"a": "abc"});
    yes(doc! {"a": {"$eq": re.clone()}}, doc! {"a": re.clone()});
    yes(doc! {"a": re.clone()}, doc! {"a": re.clone()});
    yes(doc! {"a": {"$not": re.clone()}}, doc! {"a": "xyz"});
    assert_eq!(
        err(doc! {"a": {"$regex": "a", "$options": "z"}}).code,
        51108
    );
    assert_eq!(err(doc! {"a": {"$regex": "(a"}}).code, 51091);
    assert_eq!(
        err(doc! {"a": {"$options": "i"}}).message,
        "$options needs a $regex"
    );
    assert_eq!(
        err(doc! {"a": {"$regex": 5}}).message,
        "$regex has to be a string"
    );
    assert_eq!(
        err(doc! {"a": {"$ne": re.clone()}}).message,
        "Can't have regex as arg to $ne."
    );
    let re_i = Bson::RegularExpression(bson::Regex {
        pattern: "^a".try_into().unwrap(),
        options: "i".try_into().unwrap(),
    });
    assert_eq!(
        err(doc! {"a": {"$regex": re_i.clone(), "$options": "m"}}).code,
        51075
    );
    assert_eq!(
        err(doc! {"a": {"$options": "m", "$regex": re_i.clone()}}).code,
        51074
    );
    yes(
        doc! {"a": {"$options": "", "$regex": re_i}},
        doc! {"a": "ABC"},
    );
    assert_eq!(err(doc! {"a": {"$gt": re}}).code, 2);
}

#[test]
fn elem_match_both_forms() {
    let d = doc! {"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]};
    yes(doc! {"a": {"$elemMatch": {"b": 2, "c": 1}}}, d.clone());
    no(doc! {"a": {"$elemMatch": {"b": 1, "c": 1}}}, d.clone());
    // Without $elemMatch, conditions may be met by different elements.
    yes(doc! {"a.b": 1, "a.c": 1}, d.clone());
    yes(
        doc! {"a": {"$elemMatch": {"$or": [{"b": 9}, {"c": 1}]}}},
        d.clone(),
    );
    no(doc! {"a": {"$elemMatch": {"b": 1}}}, doc! {"a": {"b": 1}});
    yes(doc! {"a": {"$elemMatch": {"$eq": 3}}}, doc! {"a": [1, 3]});
    no(doc! {"a": {"$elemMatch": {"$ne": 1}}}, doc! {"a": [1, 1]});
    yes(doc! {"a": {"$elemMatch": {"$ne": 1}}}, doc! {"a": [1, 2]});
    assert_eq!(
        err(doc! {"a": {"$elemMatch": 1}}).message,
        "$elemMatch needs an Object"
    );
    assert_eq!(
        err(doc! {"a": {"$elemMatch": {"$expr": {"$eq": [1, 1]}}}}).code,
        2
    );
}

#[test]
fn size_all_mod() {
    yes(doc! {"a": {"$size": 2}}, doc! {"a": [1, [2, 3]]});
    no(doc! {"a": {"$size": 2}}, doc! {"a": [[1, 2]]});
    yes(doc! {"a": {"$size": 0}}, doc! {"a": []});
    no(doc! {"a": {"$size": 0}}, doc! {});
    yes(doc! {"a": {"$size": 2.0}}, doc! {"a": [1, 2]});
    assert_eq!(
        err(doc! {"a": {"$size": "2"}}).message,
        "Failed to parse $size. Expected a number in: $size: \"2\""
    );
    let e = err(doc! {"a": {"$size": -1}});
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            2,
            "Failed to parse $size. Expected a positive number in: $size: -1"
        )
    );
    assert_eq!(
        err(doc! {"a": {"$size": 2.5}}).message,
        "Failed to parse $size. Expected an integer: $size: 2.5"
    );
    assert_eq!(
        err(doc! {"a": {"$size": {"$gte": 3.0}}}).message,
        "Failed to parse $size. Expected a number in: $size: { $gte: 3.0 }"
    );
    yes(doc! {"a": {"$all": [1, 3]}}, doc! {"a": [3, 2, 1]});
    no(doc! {"a": {"$all": [1, 4]}}, doc! {"a": [3, 2, 1]});
    yes(doc! {"a": {"$all": [1]}}, doc! {"a": 1});
    no(doc! {"a": {"$all": []}}, doc! {"a": [1]});
    yes(
        doc! {"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"b": 2}}]}},
        doc! {"a": [{"b": 1}, {"b": 2}]},
    );
    assert_eq!(err(doc! {"a": {"$all": 1}}).message, "$all needs an array");
    yes(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 5});
    yes(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 5.9});
    yes(doc! {"a": {"$mod": [4, -1]}}, doc! {"a": -5});
    no(doc! {"a": {"$mod": [4, 1]}}, doc! {"a": "5"});
    assert_eq!(
        err(doc! {"a": {"$mod": [0, 1]}}).message,
        "divisor cannot be 0"
    );
    assert_eq!(
        err(doc! {"a": {"$mod": [1]}}).message,
        "malformed mod, not enough elements"
    );
    assert_eq!(
        err(doc! {"a": {"$mod": ["x"]}}).message,
        "malformed mod, divisor not a number"
    );
    assert_eq!(
        err(doc! {"a": {"$mod": [1, 2, 3]}}).message,
        "malformed mod, too many elements"
    );
    assert_eq!(err(doc! {"a": {"$mod": [f64::NAN, 1]}}).code, 2);
    assert_eq!(
        err(doc! {"a": {"$mod": 1}}).message,
        "malformed mod, needs to be an array"
    );
}

#[test]
fn server_style_display() {
    assert_eq!(
        server_display(&bson::bson!({"a": [1, 2.0, "x"], "b": {}})),
        "{ a: [ 1, 2.0, \"x\" ], b: {} }"
    );
    assert_eq!(server_display(&Bson::Double(2.5)), "2.5");
    assert_eq!(type_name(&Bson::Int64(1)), "long");
}

#[test]
fn bit_operators() {
    assert_eq!(
        err(doc! {"a": {"$bitsAllSet": [-1]}}).message,
        "Failed to parse bit position. Expected a positive number in: 0: -1"
    );
    assert_eq!(err(doc! {"a": {"$bitsAllSet": -1}}).code, 9);
    yes(doc! {"a": {"$bitsAllSet": [0, 2]}}, doc! {"a": 5});
    no(doc! {"a": {"$bitsAllSet": 6}}, doc! {"a": 5});
    yes(doc! {"a": {"$bitsAnySet": 6}}, doc! {"a": 5});
    yes(doc! {"a": {"$bitsAllClear": [1]}}, doc! {"a": 5});
    yes(doc! {"a": {"$bitsAnyClear": [1, 0]}}, doc! {"a": 5});
    // Negative numbers are sign-extended: bit 100 tests the sign bit.
    yes(doc! {"a": {"$bitsAllSet": [100]}}, doc! {"a": -1});
}

#[test]
fn positional_index_of_first_traversed_array() {
    let f = m(doc! {"a": {"$gte": 2}});
    assert_eq!(
        f.match_details(&doc! {"a": [1, 2, 3]}),
        MatchDetails {
            matched: true,
            array_index: Some(1)
        }
    );
    let f = m(doc! {"a.b": 5});
    assert_eq!(
        f.match_details(&doc! {"a": [{"b": 1}, {"b": [4, 5]}]})
            .array_index,
        Some(1)
    );
    let f = m(doc! {"a": {"$elemMatch": {"b": 2}}});
    assert_eq!(
        f.match_details(&doc! {"a": [{"b": 1}, {"b": 2}]})
            .array_index,
        Some(1)
    );
    let f = m(doc! {"x": 1, "a": 3});
    assert_eq!(
        f.match_details(&doc! {"x": 1, "a": [1, 3]}).array_index,
        Some(1)
    );
    // A whole-array match has no position.
    let f = m(doc! {"a": [1, 2]});
    assert_eq!(f.match_details(&doc! {"a": [1, 2]}).array_index, None);
    assert_eq!(f.match_details(&doc! {"a": 1}), MatchDetails::default());
}

#[test]
fn id_equality_range_and_equality_fields() {
    let f = m(doc! {"_id": 5, "a": 1});
    assert_eq!(f.id_equality(), Some(&Bson::Int32(5)));
    let f = m(doc! {"$and": [{"a": 1}, {"_id": {"$eq": "x"}}]});
    assert_eq!(f.id_equality(), Some(&Bson::String("x".into())));
    assert_eq!(
        m(doc! {"$or": [{"_id": 1}, {"_id": 2}]}).id_equality(),
        None
    );
    assert_eq!(m(doc! {"_id": {"$gt": 1}}).id_equality(), None);

    let f = m(doc! {"_id": {"$gt": 1, "$lte": 9}, "$and": [{"_id": {"$gte": 3}}]});
    assert_eq!(
        f.id_range(),
        Some((
            Bound::Included(Bson::Int32(3)),
            Bound::Included(Bson::Int32(9))
        ))
    );
    assert_eq!(m(doc! {"a": 1}).id_range(), None);
    assert_eq!(
        m(doc! {"_id": {"$lt": 4}}).id_range(),
        Some((Bound::Unbounded, Bound::Excluded(Bson::Int32(4))))
    );

    let f = m(
        doc! {"a": 1, "b.c": {"$eq": 2}, "d": {"$gt": 3}, "$and": [{"e": "x"}], "$or": [{"f": 1}], "g": {"$in": [7]}},
    );
    assert_eq!(
        f.equality_fields(),
        doc! {"a": 1, "b.c": 2, "e": "x", "f": 1, "g": 7}
    );
    let f = m(doc! {"$or": [{"a": 1}, {"b": 2}], "c": 3});
    assert_eq!(f.equality_fields(), doc! {"c": 3});
    let f = m(doc! {"$or": [{"_id": 3, "x": {"y": 1}}]});
    assert_eq!(f.equality_fields(), doc! {"_id": 3, "x": {"y": 1}});
    assert_eq!(f.id_equality(), Some(&Bson::Int32(3)));
}

#[test]
fn always_true_false_and_json_schema() {
    yes(doc! {"$alwaysTrue": 1}, doc! {});
    no(doc! {"$alwaysFalse": 1}, doc! {});
    let schema = doc! {"$jsonSchema": {
        "bsonType": "object",
        "required": ["name"],
        "properties": {
            "name": {"bsonType": "string", "minLength": 2},
            "age": {"bsonType": ["int", "long"], "minimum": 0, "maximum": 150},
            "kind": {"enum": ["a", "b"]},
        }
    }};
    yes(schema.clone(), doc! {"name": "bob", "age": 30});
    no(schema.clone(), doc! {"age": 30});
    no(schema.clone(), doc! {"name": "b"});
    no(schema.clone(), doc! {"name": "bob", "age": 200});
    no(schema.clone(), doc! {"name": "bob", "age": 3.0});
    no(schema.clone(), doc! {"name": "bob", "kind": "c"});
    yes(schema, doc! {"name": "bob", "kind": "a"});
    assert_eq!(err(doc! {"$jsonSchema": {"foo": 1}}).code, 9);
    let strict = doc! {"$jsonSchema": {
        "properties": {"a": {"bsonType": "int"}},
        "additionalProperties": {"bsonType": "string"},
    }};
    yes(strict.clone(), doc! {"a": 1, "b": "x"});
    no(strict, doc! {"a": 1, "b": 2});
    let closed = doc! {"$jsonSchema": {"properties": {"a": {}}, "additionalProperties": false}};
    yes(closed.clone(), doc! {"a": 1});
    no(closed, doc! {"a": 1, "b": 2});
    let mult = doc! {"$jsonSchema": {"properties": {"n": {"multipleOf": 3}}}};
    yes(mult.clone(), doc! {"n": 9.0});
    no(mult, doc! {"n": 10});
}

#[test]
fn pcre2_semantics() {
    // The server compiles with PCRE2 in UTF mode: its dialect, natively.
    for (pattern, options, subject) in [
        ("c$", "", "abc\n"),
        (r"^\Q1+1\E$", "", "1+1"),
        (r"[[]", "", "["),
        (r"[]a]", "", "]"),
        (r"{a}", "", "{a}"),
        (r"x{1,2}y", "", "xxy"),
        (r"(?<n>a)b\k<n>", "", "aba"),
        (r"(\w)\1", "", "xx"),
        (r"(?<=\$)\d+", "", "$42"),
        (r"foo(?!bar)", "", "foobaz"),
        (r"\p{L}+\d", "", "日本1"),
        (r"(*UCP)^\w+$", "", "héllo"),
        (r"^ a b c # comment", "x", "abc"),
        ("^b", "m", "a\nb"),
        ("a.b", "s", "a\nb"),
        ("ÉTÉ", "iu", "été"),
        (r"(?i)straße", "", "STRASSE"),
    ] {
        let re = Re::new(pattern, options).unwrap();
        let ok = re.is_match(subject);
        // Caseless matching folds single characters only: ß is not SS.
        assert_eq!(
            ok,
            !pattern.contains("straße"),
            "/{pattern}/{options} on {subject:?}"
        );
    }
    for (pattern, subject) in [("a++a", "aaa"), (r"^\w$", "é"), ("c$", "abc\n\n")] {
        assert!(
            !Re::new(pattern, "").unwrap().is_match(subject),
            "{pattern}"
        );
    }
    let e = Re::new("(a", "").unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            51091,
            "Regular expression is invalid: missing closing parenthesis"
        )
    );
    let e = Re::new("a{2,1}", "").unwrap_err();
    assert_eq!(
        e.message,
        "Regular expression is invalid: numbers out of order in {} quantifier"
    );
    let e = Re::new("a", "ig").unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (51108, " invalid flag in regex options: g")
    );
    assert_eq!(Re::new("a\0b", "").unwrap_err().code, 2);
    assert!(Re::new(&"a".repeat(16384), "").is_ok());
    assert_eq!(
        Re::new(&"a".repeat(16385), "").unwrap_err().message,
        "Regular expression is invalid: pattern string is longer than the limit set by the application"
    );
}

fn mc(filter: Document, spec: Document) -> Matcher {
    let c = Collation::parse(&spec).unwrap();
    Matcher::with_collation(&filter, &doc! {}, c).unwrap()
}

#[test]
fn collation_applies_to_equality_ranges_and_in() {
    let s2 = doc! {"locale": "en_US", "strength": 2};
    // The crud spec's find-collation case.
    assert!(mc(doc! {"x": "PING"}, s2.clone()).matches(&doc! {"_id": 1, "x": "ping"}));
    assert!(!m(doc! {"x": "PING"}).matches(&doc! {"x": "ping"}));
    assert!(!mc(doc! {"x": "PING"}, s2.clone()).matches(&doc! {"x": "pïng"}));
    assert!(
        mc(doc! {"x": "PÏNG"}, doc! {"locale": "fr", "strength": 1}).matches(&doc! {"x": "ping"})
    );
    // Ranges: binary "B" < "a", but alphabetically "a" < "B".
    assert!(mc(doc! {"x": {"$gt": "a"}}, s2.clone()).matches(&doc! {"x": "B"}));
    assert!(!m(doc! {"x": {"$gt": "a"}}).matches(&doc! {"x": "B"}));
    assert!(mc(doc! {"x": {"$lte": "A"}}, s2.clone()).matches(&doc! {"x": "a"}));
    assert!(mc(doc! {"x": {"$in": ["PING", 1]}}, s2.clone()).matches(&doc! {"x": "ping"}));
    assert!(!mc(doc! {"x": {"$nin": ["PING"]}}, s2.clone()).matches(&doc! {"x": "ping"}));
    assert!(!mc(doc! {"x": {"$ne": "PING"}}, s2.clone()).matches(&doc! {"x": "ping"}));
    // Array elements, whole arrays, embedded documents, $elemMatch, $all.
    assert!(mc(doc! {"x": "PING"}, s2.clone()).matches(&doc! {"x": ["a", "ping"]}));
    assert!(mc(doc! {"x": ["A", "PING"]}, s2.clone()).matches(&doc! {"x": ["a", "ping"]}));
    assert!(mc(doc! {"x": {"y": "Z"}}, s2.clone()).matches(&doc! {"x": {"y": "z"}}));
    assert!(
        mc(doc! {"x": {"$elemMatch": {"$eq": "PING"}}}, s2.clone()).matches(&doc! {"x": ["ping"]})
    );
    assert!(
        mc(doc! {"x": {"$elemMatch": {"y": "Q"}}}, s2.clone()).matches(&doc! {"x": [{"y": "q"}]})
    );
    assert!(mc(doc! {"x": {"$all": ["A", "B"]}}, s2.clone()).matches(&doc! {"x": ["b", "a"]}));
    assert!(
        mc(doc! {"$or": [{"x": "NO"}, {"x": "PING"}]}, s2.clone()).matches(&doc! {"x": "ping"})
    );
    // Regexes stay binary, as on the server.
    assert!(!mc(doc! {"x": {"$regex": "^PING"}}, s2.clone()).matches(&doc! {"x": "ping"}));
    // Numbers are unaffected; numericOrdering only changes strings.
    let num = doc! {"locale": "en", "numericOrdering": true};
    assert!(mc(doc! {"x": {"$lt": "10"}}, num.clone()).matches(&doc! {"x": "9"}));
    assert!(!m(doc! {"x": {"$lt": "10"}}).matches(&doc! {"x": "9"}));
    assert!(mc(doc! {"x": {"$lt": 10}}, num).matches(&doc! {"x": 9}));
    // Simple collation is binary.
    assert!(!mc(doc! {"x": "PING"}, doc! {"locale": "simple"}).matches(&doc! {"x": "ping"}));
}

#[test]
fn collation_disables_string_id_shortcuts() {
    let s2 = doc! {"locale": "en_US", "strength": 2};
    assert!(mc(doc! {"_id": "A"}, s2.clone()).id_equality().is_none());
    assert!(
        mc(doc! {"_id": {"$gt": "A"}}, s2.clone())
            .id_range()
            .is_none()
    );
    assert_eq!(
        mc(doc! {"_id": 1}, s2.clone()).id_equality(),
        Some(&Bson::Int32(1))
    );
    assert!(mc(doc! {"_id": {"$gt": 1}}, s2).id_range().is_some());
    assert!(m(doc! {"_id": "A"}).id_equality().is_some());
}
