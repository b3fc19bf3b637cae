use bson::{Bson, doc};

use super::*;

fn parse(u: Document) -> Result<Update> {
    Update::parse(&Bson::Document(u), None)
}

fn apply(u: Document, d: Document) -> Document {
    parse(u)
        .and_then(|u| u.apply(&d, &UpdateContext::default()))
        .expect("update applies")
}

fn apply_pos(u: Document, d: Document, pos: usize) -> Result<Document> {
    let ctx = UpdateContext {
        positional: Some(pos),
        ..Default::default()
    };
    parse(u)?.apply(&d, &ctx)
}

fn changed(u: Document, d: Document) -> bool {
    parse(u)
        .and_then(|u| u.apply_with_change(&d, &UpdateContext::default()))
        .expect("update applies")
        .1
}

fn err(u: Document, d: Document) -> CommandError {
    match parse(u).and_then(|u| u.apply(&d, &UpdateContext::default())) {
        Ok(doc) => panic!("expected an error, got {doc:?}"),
        Err(e) => e,
    }
}

fn with_filters(u: Document, filters: Vec<Document>, d: Document) -> Result<Document> {
    Update::parse(&Bson::Document(u), Some(&filters))?.apply(&d, &UpdateContext::default())
}

// ----- kinds and parse errors -----

#[test]
fn replacement_keeps_id_first() {
    let u = parse(doc! {"x": 2, "y": 3}).unwrap();
    assert!(u.is_replacement());
    let out = u
        .apply(&doc! {"_id": 1, "x": 1, "z": 0}, &UpdateContext::default())
        .unwrap();
    assert_eq!(out, doc! {"_id": 1, "x": 2, "y": 3});
}

#[test]
fn empty_document_is_a_replacement() {
    let u = parse(doc! {}).unwrap();
    assert!(u.is_replacement());
    assert_eq!(
        u.apply(&doc! {"_id": 1, "a": 1}, &UpdateContext::default())
            .unwrap(),
        doc! {"_id": 1}
    );
}

#[test]
fn replacement_changing_id_fails() {
    let e = err(doc! {"_id": 2, "x": 1}, doc! {"_id": 1});
    assert_eq!(e.code, codes::IMMUTABLE_FIELD);
    assert_eq!(
        e.message,
        "After applying the update, the (immutable) field '_id' was found to have been \
         altered to _id: 2"
    );
    // The same _id is fine, and keeps the replacement's order (the server appends it as is).
    assert_eq!(
        apply(doc! {"x": 1, "_id": 1}, doc! {"_id": 1}),
        doc! {"x": 1, "_id": 1}
    );
}

#[test]
fn replacement_with_top_level_dollar_field_fails() {
    let e = err(doc! {"a": 1, "$b": 1}, doc! {"_id": 1});
    assert_eq!(e.code, codes::DOLLAR_PREFIXED_FIELD_NAME);
    assert!(
        e.message
            .starts_with("The dollar ($) prefixed field '$b' in '$b'")
    );
    // Dotted and nested `$` names are storable since 5.0.
    assert_eq!(
        apply(doc! {"a.b": 1, "c": {"$d": 1}}, doc! {"_id": 1}),
        doc! {"_id": 1, "a.b": 1, "c": {"$d": 1}}
    );
}

#[test]
fn identical_replacement_is_a_noop() {
    assert!(!changed(doc! {"_id": 1, "a": 1}, doc! {"_id": 1, "a": 1}));
    assert!(!changed(doc! {"a": 1}, doc! {"_id": 1, "a": 1}));
    assert!(changed(doc! {"a": 1.0}, doc! {"_id": 1, "a": 1}));
}

#[test]
fn unknown_modifier_and_mixed_documents() {
    let e = parse(doc! {"$foo": {"a": 1}}).unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    assert_eq!(
        e.message,
        "Unknown modifier: $foo. Expected a valid update modifier or pipeline-style update \
         specified as an array"
    );
    let e = parse(doc! {"$set": {"a": 1}, "b": 1}).unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    assert!(e.message.starts_with("Unknown modifier: b."));
}

#[test]
fn empty_and_non_document_operator_arguments() {
    // Servers since 5.0 accept an empty operand and change nothing.
    let u = parse(doc! {"$set": {}}).unwrap();
    let doc = doc! {"_id": 1, "a": 1};
    assert_eq!(u.apply(&doc, &UpdateContext::default()).unwrap(), doc);
    let e = parse(doc! {"$inc": 1}).unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    assert!(
        e.message
            .starts_with("Modifiers operate on fields but we found type int")
    );
}

#[test]
fn empty_paths_are_rejected() {
    assert_eq!(
        parse(doc! {"$set": {"": 1}}).unwrap_err().code,
        codes::EMPTY_FIELD_NAME
    );
    let e = parse(doc! {"$set": {"a..b": 1}}).unwrap_err();
    assert_eq!(e.code, codes::EMPTY_FIELD_NAME);
    assert_eq!(
        e.message,
        "The update path 'a..b' contains an empty field name, which is not allowed."
    );
}

#[test]
fn conflicting_paths() {
    let e = parse(doc! {"$set": {"a": 1, "a.b": 2}}).unwrap_err();
    assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
    assert_eq!(
        e.message,
        "Updating the path 'a.b' would create a conflict at 'a'"
    );
    let e = parse(doc! {"$set": {"a.b": 1}, "$inc": {"a": 2}}).unwrap_err();
    assert_eq!(
        e.message,
        "Updating the path 'a' would create a conflict at 'a'"
    );
    let e = parse(doc! {"$set": {"a": 1}, "$unset": {"a": 1}}).unwrap_err();
    assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
    let e = parse(doc! {"$rename": {"a": "b"}, "$set": {"a": 1}}).unwrap_err();
    assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
    // Siblings do not conflict.
    assert!(parse(doc! {"$set": {"a.b": 1, "a.c": 2, "ab": 3}}).is_ok());
}

#[test]
fn positional_placement_errors() {
    let e = parse(doc! {"$set": {"$": 1}}).unwrap_err();
    assert_eq!(e.code, codes::BAD_VALUE);
    assert_eq!(
        e.message,
        "Cannot have positional (i.e. '$') element in the first position in path '$'"
    );
    let e = parse(doc! {"$set": {"a.$.b.$": 1}}).unwrap_err();
    assert_eq!(
        e.message,
        "Too many positional (i.e. '$') elements found in path 'a.$.b.$'"
    );
}

// ----- $set / $unset and paths -----

#[test]
fn set_keeps_position_of_existing_fields_and_appends_new_ones() {
    assert_eq!(
        apply(
            doc! {"$set": {"a": 10, "z": 1, "b": 2}},
            doc! {"_id": 1, "a": 1, "c": 3}
        ),
        doc! {"_id": 1, "a": 10, "c": 3, "b": 2, "z": 1}
    );
}

#[test]
fn new_fields_are_created_in_lexicographic_then_numeric_order() {
    // 5.0+: "update operators process document fields with string-based names in
    // lexicographic order. Fields with numeric names are processed in numeric order."
    assert_eq!(
        apply(
            doc! {"$set": {"b": 1, "a": 2, "10": 3, "9": 4}},
            doc! {"_id": 1}
        ),
        doc! {"_id": 1, "9": 4, "10": 3, "a": 2, "b": 1}
    );
}

#[test]
fn set_dotted_paths_create_documents_and_index_arrays() {
    assert_eq!(
        apply(doc! {"$set": {"a.b.c": 1}}, doc! {"_id": 1}),
        doc! {"_id": 1, "a": {"b": {"c": 1}}}
    );
    // A numeric component of a missing path makes a field, not an array.
    assert_eq!(
        apply(doc! {"$set": {"a.0": 1}}, doc! {"_id": 1}),
        doc! {"_id": 1, "a": {"0": 1}}
    );
    assert_eq!(
        apply(
            doc! {"$set": {"a.1.x": 5}},
            doc! {"_id": 1, "a": [{"x": 1}, {"x": 2}]}
        ),
        doc! {"_id": 1, "a": [{"x": 1}, {"x": 5}]}
    );
    // Setting past the end pads with nulls.
    assert_eq!(
        apply(doc! {"$set": {"a.4": 9}}, doc! {"_id": 1, "a": [1, 2]}),
        doc! {"_id": 1, "a": [1, 2, Bson::Null, Bson::Null, 9]}
    );
}

#[test]
fn set_inside_a_scalar_is_not_viable() {
    let e = err(doc! {"$set": {"a.b": 1}}, doc! {"_id": 1, "a": 1});
    assert_eq!(e.code, codes::PATH_NOT_VIABLE);
    assert_eq!(e.message, "Cannot create field 'b' in element {a: 1}");
    let e = err(doc! {"$set": {"a.b.c": 1}}, doc! {"_id": 1, "a": "x"});
    assert_eq!(e.message, "Cannot create field 'b' in element {a: \"x\"}");
    let e = err(doc! {"$set": {"a.b": 1}}, doc! {"_id": 1, "a": [1, 2]});
    assert_eq!(
        e.message,
        "Cannot create field 'b' in element {a: [ 1, 2 ]}"
    );
    // $unset of such a path is a no-op.
    assert!(!changed(
        doc! {"$unset": {"a.b": 1}},
        doc! {"_id": 1, "a": 1}
    ));
}

#[test]
fn set_same_value_is_a_noop_but_another_type_is_not() {
    assert!(!changed(doc! {"$set": {"a": 1}}, doc! {"_id": 1, "a": 1}));
    assert!(!changed(
        doc! {"$set": {"a": {"b": [1, 2]}}},
        doc! {"_id": 1, "a": {"b": [1, 2]}}
    ));
    assert!(changed(doc! {"$set": {"a": 1.0}}, doc! {"_id": 1, "a": 1}));
    assert!(changed(doc! {"$set": {"a": 1i64}}, doc! {"_id": 1, "a": 1}));
    assert!(changed(doc! {"$set": {"b": 1}}, doc! {"_id": 1, "a": 1}));
}

#[test]
fn unset_removes_fields_and_nulls_array_elements() {
    assert_eq!(
        apply(
            doc! {"$unset": {"a": "", "b.c": 1, "missing": 1}},
            doc! {"_id": 1, "a": 1, "b": {"c": 1, "d": 2}}
        ),
        doc! {"_id": 1, "b": {"d": 2}}
    );
    assert_eq!(
        apply(doc! {"$unset": {"a.1": 1}}, doc! {"_id": 1, "a": [1, 2, 3]}),
        doc! {"_id": 1, "a": [1, Bson::Null, 3]}
    );
    assert!(!changed(doc! {"$unset": {"x": 1}}, doc! {"_id": 1}));
}

#[test]
fn modifying_id_fails() {
    let e = err(doc! {"$set": {"_id": 2}}, doc! {"_id": 1});
    assert_eq!(e.code, codes::IMMUTABLE_FIELD);
    assert_eq!(
        e.message,
        "Updating the path '_id' to _id: 2 would modify the immutable field '_id'"
    );
    let e = err(doc! {"$inc": {"_id": 1}}, doc! {"_id": 1});
    assert_eq!(
        e.message,
        "Performing an update on the path '_id' would modify the immutable field '_id'"
    );
    let e = err(doc! {"$set": {"_id.a": 2}}, doc! {"_id": {"a": 1}});
    assert_eq!(e.code, codes::IMMUTABLE_FIELD);
    // Setting the same value is allowed.
    assert_eq!(
        apply(doc! {"$set": {"_id": 1, "a": 1}}, doc! {"_id": 1}),
        doc! {"_id": 1, "a": 1}
    );
}

// ----- $setOnInsert and upserts -----

#[test]
fn set_on_insert_only_applies_to_inserts() {
    let u = parse(doc! {"$setOnInsert": {"a": 1}, "$set": {"b": 2}}).unwrap();
    assert_eq!(
        u.apply(&doc! {"_id": 1}, &UpdateContext::default())
            .unwrap(),
        doc! {"_id": 1, "b": 2}
    );
    let ctx = UpdateContext {
        is_insert: true,
        ..Default::default()
    };
    assert_eq!(
        u.apply(&doc! {"x": 1}, &ctx).unwrap(),
        doc! {"x": 1, "a": 1, "b": 2}
    );
    // On insert, _id comes first even when the update creates it, for replacements too.
    let r = parse(doc! {"a": 1, "_id": 7}).unwrap();
    assert_eq!(
        r.apply(&doc! {"_id": 7}, &ctx).unwrap(),
        doc! {"_id": 7, "a": 1}
    );
    let u = parse(doc! {"$set": {"a": 1, "_id": 7}}).unwrap();
    assert_eq!(
        u.apply(&doc! {"x": 1}, &ctx).unwrap(),
        doc! {"_id": 7, "x": 1, "a": 1}
    );
}

#[test]
fn upsert_document_expands_dotted_equalities() {
    assert_eq!(
        upsert_document(&doc! {"a.b": 1, "_id": 5, "c": "x"}).unwrap(),
        doc! {"_id": 5, "a": {"b": 1}, "c": "x"}
    );
    assert_eq!(
        upsert_document(&doc! {"a.b": 1, "a.c": 2}).unwrap(),
        doc! {"a": {"b": 1, "c": 2}}
    );
    let e = upsert_document(&doc! {"a": 1, "a.b": 2}).unwrap_err();
    assert_eq!(e.code, codes::NOT_SINGLE_VALUE_FIELD);
    assert_eq!(
        e.message,
        "cannot infer query fields to set, both paths 'a.b' and 'a' are matched"
    );
    // Numeric components make fields, as for $set on a missing path.
    assert_eq!(
        upsert_document(&doc! {"a.0": 1}).unwrap(),
        doc! {"a": {"0": 1}}
    );
}

// ----- arithmetic -----

#[test]
fn inc_types_and_overflow() {
    assert_eq!(
        apply(
            doc! {"$inc": {"a": 1, "b": 2.5, "c": 3}},
            doc! {"_id": 1, "a": 1}
        ),
        doc! {"_id": 1, "a": 2, "b": 2.5, "c": 3}
    );
    // int32 overflow promotes to int64.
    assert_eq!(
        apply(doc! {"$inc": {"a": 1}}, doc! {"_id": 1, "a": i32::MAX}),
        doc! {"_id": 1, "a": i64::from(i32::MAX) + 1}
    );
    // Mixed int32/int64 gives int64; a double wins.
    assert_eq!(
        apply(
            doc! {"$inc": {"a": 1i64, "b": 1.5}},
            doc! {"_id": 1, "a": 1, "b": 1i64}
        ),
        doc! {"_id": 1, "a": 2i64, "b": 2.5}
    );
    // int64 overflow fails.
    let e = err(doc! {"$inc": {"a": 1}}, doc! {"_id": 1, "a": i64::MAX});
    assert_eq!(e.code, codes::BAD_VALUE);
    assert_eq!(
        e.message,
        "Failed to apply $inc operations to current value ((NumberLong)9223372036854775807) \
         for document {_id: 1}"
    );
    // Adding 0 is a no-op.
    assert!(!changed(doc! {"$inc": {"a": 0}}, doc! {"_id": 1, "a": 5}));
}

#[test]
fn decimal_arithmetic_is_exact() {
    let dec = |s: &str| Bson::Decimal128(s.parse().unwrap());
    let out = apply(
        doc! {"$inc": {"a": dec("0.2"), "b": 1}, "$mul": {"c": dec("1.5")}},
        doc! {"_id": 1, "a": dec("0.1"), "b": dec("2.50"), "c": 3},
    );
    assert_eq!(out.get("a"), Some(&dec("0.3")));
    assert_eq!(out.get("b"), Some(&dec("3.50")));
    assert_eq!(out.get("c"), Some(&dec("4.5")));
    // A double is first rounded to 15 digits.
    let out = apply(doc! {"$inc": {"a": 0.1}}, doc! {"_id": 1, "a": dec("1")});
    assert_eq!(out.get("a"), Some(&dec("1.100000000000000")));
}

#[test]
fn inc_errors() {
    let e = parse(doc! {"$inc": {"a": "x"}}).unwrap_err();
    assert_eq!(e.code, codes::TYPE_MISMATCH);
    assert_eq!(
        e.message,
        "Cannot increment with non-numeric argument: {a: \"x\"}"
    );
    let e = err(doc! {"$inc": {"a": 1}}, doc! {"_id": 1, "a": "s"});
    assert_eq!(e.code, codes::TYPE_MISMATCH);
    assert_eq!(
        e.message,
        "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of \
         non-numeric type string"
    );
    let e = parse(doc! {"$mul": {"a": true}}).unwrap_err();
    assert_eq!(
        e.message,
        "Cannot multiply with non-numeric argument: {a: true}"
    );
}

#[test]
fn negative_zero_is_kept_by_mul_and_inc_of_a_missing_field() {
    let out = apply(
        doc! {"$mul": {"m": -1.5}, "$inc": {"i": -0.0}},
        doc! {"_id": 1},
    );
    for f in ["m", "i"] {
        let v = out.get_f64(f).unwrap();
        assert!(v == 0.0 && v.is_sign_negative(), "{f}: {v}");
    }
    // An existing field multiplied by a negative number keeps IEEE's sign too.
    let out = apply(doc! {"$mul": {"a": -2.0}}, doc! {"_id": 1, "a": 0.0});
    assert!(out.get_f64("a").unwrap().is_sign_negative());
}

#[test]
fn mul_creates_zero_of_the_argument_type() {
    assert_eq!(
        apply(
            doc! {"$mul": {"a": 3, "b": 2i64, "c": 1.5}},
            doc! {"_id": 1, "a": 2}
        ),
        doc! {"_id": 1, "a": 6, "b": 0i64, "c": 0.0}
    );
    assert_eq!(
        apply(doc! {"$mul": {"a": 2}}, doc! {"_id": 1, "a": i32::MAX}),
        doc! {"_id": 1, "a": i64::from(i32::MAX) * 2}
    );
}

#[test]
fn min_and_max() {
    let d = doc! {"_id": 1, "lo": 5, "hi": 5};
    assert_eq!(
        apply(
            doc! {"$min": {"lo": 3, "hi": 9}, "$max": {"x": 1}},
            d.clone()
        ),
        doc! {"_id": 1, "lo": 3, "hi": 5, "x": 1}
    );
    assert_eq!(
        apply(doc! {"$max": {"lo": 3, "hi": 9}}, d.clone()),
        doc! {"_id": 1, "lo": 5, "hi": 9}
    );
    // Equal values (even of another numeric type) leave the field alone.
    assert!(!changed(doc! {"$min": {"lo": 5.0}}, d.clone()));
    // BSON order across types: a string is greater than any number.
    assert_eq!(
        apply(doc! {"$max": {"lo": "a"}}, d),
        doc! {"_id": 1, "lo": "a", "hi": 5}
    );
}

#[test]
fn bit_operations() {
    assert_eq!(
        apply(
            doc! {"$bit": {"a": {"and": 10}, "b": {"or": 5i64}, "c": {"xor": 1}}},
            doc! {"_id": 1, "a": 13, "b": 1, "c": 3}
        ),
        doc! {"_id": 1, "a": 8, "b": 5i64, "c": 2}
    );
    assert_eq!(
        apply(doc! {"$bit": {"n": {"or": 4}}}, doc! {"_id": 1}),
        doc! {"_id": 1, "n": 4}
    );
    assert_eq!(
        parse(doc! {"$bit": {"a": {"and": 1.0}}}).unwrap_err().code,
        codes::BAD_VALUE
    );
    assert_eq!(
        parse(doc! {"$bit": {"a": {"nand": 1}}}).unwrap_err().code,
        codes::BAD_VALUE
    );
    let e = err(doc! {"$bit": {"a": {"and": 1}}}, doc! {"_id": 1, "a": 1.5});
    assert_eq!(e.code, codes::BAD_VALUE);
}

// ----- $rename / $currentDate -----

#[test]
fn rename_moves_values() {
    assert_eq!(
        apply(
            doc! {"$rename": {"a": "z", "b.c": "d"}},
            doc! {"_id": 1, "a": 1, "b": {"c": 2, "e": 3}, "d": 0}
        ),
        doc! {"_id": 1, "b": {"e": 3}, "d": 2, "z": 1}
    );
    assert!(!changed(
        doc! {"$rename": {"missing": "x"}},
        doc! {"_id": 1}
    ));
}

#[test]
fn rename_errors() {
    assert_eq!(
        parse(doc! {"$rename": {"a": 1}}).unwrap_err().code,
        codes::BAD_VALUE
    );
    assert_eq!(
        parse(doc! {"$rename": {"a": "a"}}).unwrap_err().code,
        codes::BAD_VALUE
    );
    assert_eq!(
        parse(doc! {"$rename": {"a": "a.b"}}).unwrap_err().code,
        codes::BAD_VALUE
    );
    let e = err(doc! {"$rename": {"a.0": "b"}}, doc! {"_id": 1, "a": [1]});
    assert_eq!(e.code, codes::BAD_VALUE);
    assert!(
        e.message
            .starts_with("The source field cannot be an array element")
    );
    let e = err(doc! {"$rename": {"a": "_id"}}, doc! {"_id": 1, "a": 2});
    assert_eq!(e.code, codes::IMMUTABLE_FIELD);
    let e = err(doc! {"$rename": {"_id": "b"}}, doc! {"_id": 1});
    assert_eq!(e.code, codes::IMMUTABLE_FIELD);
}

#[test]
fn current_date() {
    let out = apply(
        doc! {"$currentDate": {"d": true, "t": {"$type": "timestamp"}, "e": {"$type": "date"}}},
        doc! {"_id": 1},
    );
    assert!(matches!(out.get("d"), Some(Bson::DateTime(_))));
    assert!(matches!(out.get("e"), Some(Bson::DateTime(_))));
    assert!(matches!(out.get("t"), Some(Bson::Timestamp(_))));
    assert_eq!(
        parse(doc! {"$currentDate": {"d": 1}}).unwrap_err().code,
        codes::BAD_VALUE
    );
    assert_eq!(
        parse(doc! {"$currentDate": {"d": {"$type": "x"}}})
            .unwrap_err()
            .code,
        codes::BAD_VALUE
    );
}

// ----- arrays -----

#[test]
fn push_values_and_modifiers() {
    assert_eq!(
        apply(
            doc! {"$push": {"a": 3, "b": [1]}},
            doc! {"_id": 1, "a": [1, 2]}
        ),
        doc! {"_id": 1, "a": [1, 2, 3], "b": [[1]]}
    );
    assert_eq!(
        apply(
            doc! {"$push": {"a": {"$each": [8, 9], "$position": 1}}},
            doc! {"_id": 1, "a": [1, 2]}
        ),
        doc! {"_id": 1, "a": [1, 8, 9, 2]}
    );
    assert_eq!(
        apply(
            doc! {"$push": {"a": {"$each": [0], "$position": -1}}},
            doc! {"_id": 1, "a": [1, 2]}
        ),
        doc! {"_id": 1, "a": [1, 0, 2]}
    );
    assert_eq!(
        apply(
            doc! {"$push": {"a": {"$each": [5, 1], "$sort": -1, "$slice": 3}}},
            doc! {"_id": 1, "a": [3, 4]}
        ),
        doc! {"_id": 1, "a": [5, 4, 3]}
    );
    assert_eq!(
        apply(
            doc! {"$push": {"a": {"$each": [], "$slice": -2}}},
            doc! {"_id": 1, "a": [1, 2, 3]}
        ),
        doc! {"_id": 1, "a": [2, 3]}
    );
    assert_eq!(
        apply(
            doc! {"$push": {"a": {"$each": [{"s": 2, "n": "b"}], "$sort": {"s": 1}}}},
            doc! {"_id": 1, "a": [{"s": 3, "n": "c"}, {"s": 1, "n": "a"}]}
        ),
        doc! {"_id": 1, "a": [{"s": 1, "n": "a"}, {"s": 2, "n": "b"}, {"s": 3, "n": "c"}]}
    );
}

#[test]
fn push_errors() {
    let e = err(doc! {"$push": {"a": 1}}, doc! {"_id": 1, "a": 1});
    assert_eq!(e.code, codes::BAD_VALUE);
    assert_eq!(
        e.message,
        "The field 'a' must be an array but is of type int in document {_id: 1}"
    );
    assert_eq!(
        parse(doc! {"$push": {"a": {"$each": 1}}}).unwrap_err().code,
        codes::BAD_VALUE
    );
    assert_eq!(
        parse(doc! {"$push": {"a": {"$each": [1], "$foo": 1}}})
            .unwrap_err()
            .message,
        "Unrecognized clause in $push: $foo"
    );
    assert_eq!(
        parse(doc! {"$push": {"a": {"$each": [1], "$slice": "x"}}})
            .unwrap_err()
            .code,
        codes::BAD_VALUE
    );
    assert_eq!(
        parse(doc! {"$push": {"a": {"$each": [1], "$sort": 2}}})
            .unwrap_err()
            .code,
        codes::BAD_VALUE
    );
}

#[test]
fn add_to_set() {
    assert_eq!(
        apply(
            doc! {"$addToSet": {"a": 2, "b": {"$each": [1, 1, 2]}}},
            doc! {"_id": 1, "a": [1, 2]}
        ),
        doc! {"_id": 1, "a": [1, 2], "b": [1, 2]}
    );
    // Numeric equality: 1.0 is already in the set.
    assert!(!changed(
        doc! {"$addToSet": {"a": 1.0}},
        doc! {"_id": 1, "a": [1]}
    ));
    let e = err(doc! {"$addToSet": {"a": 1}}, doc! {"_id": 1, "a": 5});
    assert_eq!(e.code, codes::BAD_VALUE);
    assert_eq!(
        e.message,
        "Cannot apply $addToSet to non-array field. Field named 'a' has non-array type int"
    );
}

#[test]
fn pop() {
    let d = doc! {"_id": 1, "a": [1, 2, 3]};
    assert_eq!(
        apply(doc! {"$pop": {"a": 1}}, d.clone()),
        doc! {"_id": 1, "a": [1, 2]}
    );
    assert_eq!(
        apply(doc! {"$pop": {"a": -1}}, d.clone()),
        doc! {"_id": 1, "a": [2, 3]}
    );
    assert!(!changed(doc! {"$pop": {"x": 1}}, d.clone()));
    assert!(!changed(doc! {"$pop": {"a": 1}}, doc! {"_id": 1, "a": []}));
    let e = parse(doc! {"$pop": {"a": 2}}).unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    assert_eq!(e.message, "$pop expects 1 or -1, found: 2");
    assert_eq!(
        parse(doc! {"$pop": {"a": "x"}}).unwrap_err().code,
        codes::FAILED_TO_PARSE
    );
    let e = err(doc! {"$pop": {"a": 1}}, doc! {"_id": 1, "a": 1});
    assert_eq!(e.code, codes::TYPE_MISMATCH);
}

#[test]
fn pull_all_and_pull_by_value() {
    assert_eq!(
        apply(
            doc! {"$pullAll": {"a": [1, 3]}, "$pull": {"b": "x"}},
            doc! {"_id": 1, "a": [1, 2, 3, 1.0], "b": ["x", "y", "x"]}
        ),
        doc! {"_id": 1, "a": [2], "b": ["y"]}
    );
    assert!(!changed(
        doc! {"$pull": {"a": 9}},
        doc! {"_id": 1, "a": [1]}
    ));
    assert!(!changed(doc! {"$pull": {"m": 9}}, doc! {"_id": 1}));
    assert!(!changed(
        doc! {"$pull": {"m.n": 9}},
        doc! {"_id": 1, "m": {}}
    ));
    // A path through a scalar cannot exist: unlike $unset, $pull and $pop fail.
    let e = err(doc! {"$pull": {"a.b": 1}}, doc! {"_id": 1, "a": 1});
    assert_eq!(e.code, codes::PATH_NOT_VIABLE);
    assert_eq!(
        e.message,
        "Cannot use the part (b) of (a.b) to traverse the element ({a: 1})"
    );
    let e = err(doc! {"$pop": {"a.x": 1}}, doc! {"_id": 1, "a": [1]});
    assert_eq!(e.code, codes::PATH_NOT_VIABLE);
    assert!(!changed(
        doc! {"$pop": {"a.5": 1}},
        doc! {"_id": 1, "a": [1]}
    ));
    let e = err(doc! {"$pull": {"a": 1}}, doc! {"_id": 1, "a": 1});
    assert_eq!(e.message, "Cannot apply $pull to a non-array value");
    assert_eq!(
        parse(doc! {"$pullAll": {"a": 1}}).unwrap_err().code,
        codes::BAD_VALUE
    );
}

// ----- positional and array filters -----

#[test]
fn positional_operator_uses_the_matched_index() {
    assert_eq!(
        apply_pos(
            doc! {"$set": {"a.$.b": 9}},
            doc! {"_id": 1, "a": [{"b": 1}, {"b": 2}]},
            1
        )
        .unwrap(),
        doc! {"_id": 1, "a": [{"b": 1}, {"b": 9}]}
    );
    let e = err(doc! {"$set": {"a.$": 9}}, doc! {"_id": 1, "a": [1]});
    assert_eq!(e.code, codes::BAD_VALUE);
    assert_eq!(
        e.message,
        "The positional operator did not find the match needed from the query."
    );
    let e = apply_pos(
        doc! {"$set": {"a.$": 1, "a.0": 2}},
        doc! {"_id": 1, "a": [0]},
        0,
    )
    .unwrap_err();
    assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
}

#[test]
fn all_positional_updates_every_element() {
    assert_eq!(
        apply(doc! {"$inc": {"a.$[]": 10}}, doc! {"_id": 1, "a": [1, 2]}),
        doc! {"_id": 1, "a": [11, 12]}
    );
    assert_eq!(
        apply(
            doc! {"$set": {"a.$[].b.$[]": 0}},
            doc! {"_id": 1, "a": [{"b": [1, 2]}, {"b": [3]}]}
        ),
        doc! {"_id": 1, "a": [{"b": [0, 0]}, {"b": [0]}]}
    );
    let e = err(doc! {"$set": {"a.$[]": 1}}, doc! {"_id": 1});
    assert_eq!(e.code, codes::BAD_VALUE);
    assert_eq!(
        e.message,
        "The path 'a' must exist in the document in order to apply array updates."
    );
    let e = err(doc! {"$set": {"a.$[]": 1}}, doc! {"_id": 1, "a": 5});
    assert_eq!(
        e.message,
        "Cannot apply array updates to non-array element a: 5"
    );
    let e = parse(doc! {"$set": {"a.$[]": 1, "a.0": 2}}).unwrap_err();
    assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
}

#[test]
fn array_filter_identifiers_are_validated() {
    let e = Update::parse(&Bson::Document(doc! {"$set": {"a.$[x]": 1}}), Some(&[])).unwrap_err();
    assert_eq!(e.code, codes::BAD_VALUE);
    assert_eq!(
        e.message,
        "No array filter found for identifier 'x' in path 'a.$[x]'"
    );
    let e = Update::parse(&Bson::Document(doc! {"$set": {"a.$[x]": 1}}), None).unwrap_err();
    assert_eq!(e.code, codes::BAD_VALUE);
}

#[test]
fn pipeline_rejects_array_filters() {
    let e = Update::parse(&Bson::Array(vec![]), Some(&[doc! {"x": 1}])).unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    assert_eq!(
        e.message,
        "arrayFilters may not be specified for pipeline-style updates"
    );
}

#[test]
fn updates_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Update>();
}

#[test]
fn version_field_is_internal() {
    let e = parse(doc! {"$v": 1, "$set": {"a": 1}}).unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    assert_eq!(
        e.message,
        "The $v update field is only recognized internally"
    );
}

#[test]
fn update_must_be_a_document_or_array() {
    assert_eq!(
        Update::parse(&Bson::Int32(1), None).unwrap_err().code,
        codes::FAILED_TO_PARSE
    );
}

#[test]
fn padding_is_limited() {
    let e = err(doc! {"$set": {"a.1500001": 1}}, doc! {"_id": 1, "a": []});
    assert_eq!(e.code, 10);
    assert_eq!(e.message, "can't backfill more than 1500000 elements");
    let out = apply(doc! {"$set": {"a.1500000": 1}}, doc! {"_id": 1, "a": []});
    assert_eq!(out.get_array("a").map(Vec::len).ok(), Some(1_500_001));
}

#[test]
fn identical_replacement_skips_validation() {
    // A stored top-level `$` field (written by a pipeline) does not fail an identical
    // replacement, which is a no-op before any validation.
    assert!(!changed(doc! {"_id": 1, "$a": 1}, doc! {"_id": 1, "$a": 1}));
    let e = err(doc! {"_id": 2, "$a": 1}, doc! {"_id": 1});
    assert_eq!(e.code, codes::DOLLAR_PREFIXED_FIELD_NAME);
}

#[test]
fn signed_zero_is_a_change() {
    // -0.0 and 0.0 compare equal but are different values to store.
    assert!(changed(
        doc! {"$set": {"a": -0.0}},
        doc! {"_id": 1, "a": 0.0}
    ));
    assert!(!changed(
        doc! {"$set": {"a": 0.0}},
        doc! {"_id": 1, "a": 0.0}
    ));
    assert!(changed(doc! {"a": -0.0}, doc! {"_id": 1, "a": 0.0}));
}

#[test]
fn stored_dollar_fields_do_not_block_other_updates() {
    // A `$a` field written by a pipeline update stays; operators on other fields work.
    assert_eq!(
        apply(doc! {"$set": {"b": 1}}, doc! {"_id": 1, "$a": 1}),
        doc! {"_id": 1, "$a": 1, "b": 1}
    );
    let e = err(doc! {"$set": {"$x": 1}}, doc! {"_id": 1});
    assert_eq!(e.code, codes::DOLLAR_PREFIXED_FIELD_NAME);
}

#[test]
fn pop_argument_messages() {
    let e = parse(doc! {"$pop": {"a": "x"}}).unwrap_err();
    assert_eq!(e.message, "Expected a number in: a: \"x\"");
    let e = parse(doc! {"$pop": {"a": 1.5}}).unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    assert_eq!(e.message, "Expected an integer: a: 1.5");
    let e = parse(doc! {"$pop": {"a": 2.0}}).unwrap_err();
    assert_eq!(e.message, "$pop expects 1 or -1, found: 2");
    assert_eq!(
        apply(doc! {"$pop": {"a": -1.0}}, doc! {"_id": 1, "a": [1, 2]}),
        doc! {"_id": 1, "a": [2]}
    );
    let e = err(doc! {"$pop": {"a": 1}}, doc! {"_id": 1, "a": 1});
    assert_eq!(
        e.message,
        "Path 'a' contains an element of non-array type 'int'"
    );
}

#[test]
fn current_date_messages() {
    let e = parse(doc! {"$currentDate": {"d": 1}}).unwrap_err();
    assert_eq!(
        e.message,
        "int is not valid type for $currentDate. Please use a boolean ('true') or a $type \
         expression ({$type: 'timestamp/date'})."
    );
    let e = parse(doc! {"$currentDate": {"d": {"$type": "x"}}}).unwrap_err();
    assert_eq!(
        e.message,
        "The '$type' string field is required to be 'date' or 'timestamp': \
         {$currentDate: {field : {$type: 'date'}}}"
    );
    let e = parse(doc! {"$currentDate": {"d": {"x": 1}}}).unwrap_err();
    assert_eq!(e.message, "Unrecognized $currentDate option: x");
}

#[test]
fn bit_messages() {
    let e = err(doc! {"$bit": {"a": {"and": 1}}}, doc! {"_id": 1, "a": "s"});
    assert_eq!(
        e.message,
        "Cannot apply $bit to a value of non-integral type._id: 1 has the field a of \
         non-integer type string"
    );
    let e = parse(doc! {"$bit": {"a": 5}}).unwrap_err();
    assert!(
        e.message
            .starts_with("The $bit modifier is not compatible with a int")
    );
    let e = parse(doc! {"$bit": {"a": {"and": 1.0}}}).unwrap_err();
    assert_eq!(
        e.message,
        "The $bit modifier field must be an Integer(32/64 bit); a 'double' is not \
         supported here: {and: 1.0}"
    );
}

#[test]
fn push_sort_and_slice_messages() {
    let p = |v: Bson| parse(doc! {"$push": {"a": v}}).unwrap_err().message;
    assert_eq!(
        p(Bson::Document(doc! {"$each": [1], "$sort": {}})),
        "The $sort pattern is empty when it should be a set of fields."
    );
    assert_eq!(
        p(Bson::Document(doc! {"$each": [1], "$sort": 2})),
        "The $sort element value must be either 1 or -1"
    );
    assert_eq!(
        p(Bson::Document(doc! {"$each": [1], "$sort": "x"})),
        "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort \
         embedded fields"
    );
    assert_eq!(
        p(Bson::Document(doc! {"$each": [1], "$slice": 1.5})),
        "The value for $slice must be an integer value but was given type: double"
    );
    assert_eq!(
        p(Bson::Document(doc! {"$each": [1], "$position": "x"})),
        "The value for $position must be an integer value, not of type: string"
    );
    assert_eq!(
        p(Bson::Document(doc! {"$each": 3})),
        "The argument to $each in $push must be an array but it was of type: int"
    );
    // Without $each, a document with $-fields is just a value to push.
    assert_eq!(
        apply(doc! {"$push": {"a": {"$slice": 1}}}, doc! {"_id": 1}),
        doc! {"_id": 1, "a": [{"$slice": 1}]}
    );
    // Sorting by a field puts elements lacking it (and scalars) first, as nulls.
    assert_eq!(
        apply(
            doc! {"$push": {"a": {"$each": [], "$sort": {"k": -1}}}},
            doc! {"_id": 1, "a": [{"k": 1}, 5, {"k": 3}]}
        ),
        doc! {"_id": 1, "a": [{"k": 3}, {"k": 1}, 5]}
    );
}

#[test]
fn add_to_set_each_messages_and_dedup() {
    let e = parse(doc! {"$addToSet": {"a": {"$each": 1}}}).unwrap_err();
    assert_eq!(e.code, codes::TYPE_MISMATCH);
    assert_eq!(
        e.message,
        "The argument to $each in $addToSet must be an array but it was of type int"
    );
    let e = parse(doc! {"$addToSet": {"a": {"$each": [1], "x": 1}}}).unwrap_err();
    assert_eq!(e.code, codes::BAD_VALUE);
    // A document not starting with $each is a value.
    assert_eq!(
        apply(
            doc! {"$addToSet": {"a": {"x": 1, "$each": 1}}},
            doc! {"_id": 1}
        ),
        doc! {"_id": 1, "a": [{"x": 1, "$each": 1}]}
    );
    assert_eq!(
        apply(
            doc! {"$addToSet": {"a": {"$each": [2, 2.0, 3]}}},
            doc! {"_id": 1, "a": [3]}
        ),
        doc! {"_id": 1, "a": [3, 2]}
    );
}

#[test]
fn rename_paths_through_scalars_and_arrays() {
    let e = err(doc! {"$rename": {"a.b": "c"}}, doc! {"_id": 1, "a": 1});
    assert_eq!(e.code, codes::PATH_NOT_VIABLE);
    assert_eq!(
        e.message,
        "cannot use the part (b of a.b) to traverse the element ({a: 1})"
    );
    let e = err(
        doc! {"$rename": {"a.0.b": "c"}},
        doc! {"_id": 1, "a": [{"b": 1}]},
    );
    assert_eq!(
        e.message,
        "The source field cannot be an array element, 'a.0.b' in doc with _id: 1 has an \
         array field called 'a'"
    );
    let e = err(
        doc! {"$rename": {"x": "a.0"}},
        doc! {"_id": 1, "x": 1, "a": [1]},
    );
    assert_eq!(
        e.message,
        "The destination field cannot be an array element, 'a.0' in doc with _id: 1 has \
         an array field called 'a'"
    );
    // The destination may itself be an array: it is overwritten.
    assert_eq!(
        apply(
            doc! {"$rename": {"x": "a"}},
            doc! {"_id": 1, "a": [1], "x": 2}
        ),
        doc! {"_id": 1, "a": 2}
    );
    let e = err(doc! {"$rename": {"_id": "b"}}, doc! {"_id": 1});
    assert_eq!(
        e.message,
        "Unsetting the path '_id' using $rename would modify the immutable field '_id'"
    );
}

#[test]
fn id_must_remain_storable() {
    let ctx = UpdateContext {
        is_insert: true,
        ..Default::default()
    };
    let e = parse(doc! {"$set": {"_id": [1]}})
        .unwrap()
        .apply(&doc! {}, &ctx)
        .unwrap_err();
    assert_eq!(e.code, codes::INVALID_ID_FIELD);
    assert_eq!(e.message, "The '_id' value cannot be of type array");
}

// ----- matcher-backed features (need crate::query::matcher) -----

#[test]
fn array_filters_select_elements() {
    // From the CRUD spec tests (updateMany-arrayFilters.json).
    let d = doc! {"_id": 1, "y": [{"b": 3}, {"b": 1}]};
    assert_eq!(
        with_filters(
            doc! {"$set": {"y.$[i].b": 2}},
            vec![doc! {"i.b": 3}],
            d.clone()
        )
        .unwrap(),
        doc! {"_id": 1, "y": [{"b": 2}, {"b": 1}]}
    );
    assert_eq!(
        with_filters(doc! {"$set": {"y.$[i].b": 2}}, vec![doc! {"i.b": 4}], d).unwrap(),
        doc! {"_id": 1, "y": [{"b": 3}, {"b": 1}]}
    );
    assert_eq!(
        with_filters(
            doc! {"$set": {"a.$[e]": 0}},
            vec![doc! {"e": {"$gte": 5}}],
            doc! {"_id": 1, "a": [1, 5, 7]}
        )
        .unwrap(),
        doc! {"_id": 1, "a": [1, 0, 0]}
    );
    // Nested: every element of a, then the filtered elements of its b.
    assert_eq!(
        with_filters(
            doc! {"$inc": {"a.$[].b.$[x]": 100}},
            vec![doc! {"x": {"$lt": 2}}],
            doc! {"_id": 1, "a": [{"b": [1, 2]}, {"b": [0]}]}
        )
        .unwrap(),
        doc! {"_id": 1, "a": [{"b": [101, 2]}, {"b": [100]}]}
    );
}

#[test]
fn array_filter_errors() {
    let e = with_filters(
        doc! {"$set": {"a": 1}},
        vec![doc! {"x": 1}],
        doc! {"_id": 1},
    )
    .unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    assert!(
        e.message
            .starts_with("The array filter for identifier 'x' was not used in the update")
    );
    let e = with_filters(
        doc! {"$set": {"a.$[x]": 1}},
        vec![doc! {"x": 1}, doc! {"x": 2}],
        doc! {"_id": 1},
    )
    .unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    let e = with_filters(
        doc! {"$set": {"a.$[x]": 1}},
        vec![doc! {"x": 1, "y": 2}],
        doc! {"_id": 1},
    )
    .unwrap_err();
    assert_eq!(e.code, codes::FAILED_TO_PARSE);
    let e = with_filters(
        doc! {"$set": {"a.$[X]": 1}},
        vec![doc! {"X": 1}],
        doc! {"_id": 1},
    )
    .unwrap_err();
    assert_eq!(e.code, codes::BAD_VALUE);
}

#[test]
fn array_filters_with_logical_operators_and_query_errors() {
    assert_eq!(
        with_filters(
            doc! {"$set": {"a.$[x].ok": true}},
            vec![doc! {"$or": [{"x.n": 1}, {"x.n": 3}]}],
            doc! {"_id": 1, "a": [{"n": 1}, {"n": 2}, {"n": 3}]}
        )
        .unwrap(),
        doc! {"_id": 1, "a": [{"n": 1, "ok": true}, {"n": 2}, {"n": 3, "ok": true}]}
    );
    // The filter is a query first: an unknown top-level operator is the matcher's error.
    let e = with_filters(
        doc! {"$set": {"a.$[i]": 1}},
        vec![doc! {"$i": 0}],
        doc! {"_id": 1},
    )
    .unwrap_err();
    assert_eq!(e.code, codes::BAD_VALUE);
    // `a.$[i.j]` is not an identifier: `$[i` is a plain field, not viable in an array.
    let e = with_filters(
        doc! {"$set": {"a.$[i.j]": 1, "b.$[i]": 1}},
        vec![doc! {"i.j": 0}],
        doc! {"_id": 0, "a": [0.0], "b": [{"j": 0}]},
    )
    .unwrap_err();
    assert_eq!(e.code, codes::PATH_NOT_VIABLE);
    assert_eq!(
        e.message,
        "Cannot create field '$[i' in element {a: [ 0.0 ]}"
    );
}

#[test]
fn pull_with_conditions() {
    assert_eq!(
        apply(
            doc! {"$pull": {"a": {"$gte": 6}}},
            doc! {"_id": 1, "a": [5, 6, 7, 1]}
        ),
        doc! {"_id": 1, "a": [5, 1]}
    );
    // A condition on fields applies to document elements only, as a query.
    assert_eq!(
        apply(
            doc! {"$pull": {"a": {"b": 1}}},
            doc! {"_id": 1, "a": [{"b": 1, "c": 2}, {"b": 2}, 1]}
        ),
        doc! {"_id": 1, "a": [{"b": 2}, 1]}
    );
    assert_eq!(
        apply(
            doc! {"$pull": {"a": {"$in": ["x", "y"]}}},
            doc! {"_id": 1, "a": ["x", "z", "y"]}
        ),
        doc! {"_id": 1, "a": ["z"]}
    );
}

#[test]
fn nested_array_filters_from_the_spec_tests() {
    // updateOne-arrayFilters.json: y.$[i].c.$[j].d with two filters.
    let d = doc! {"_id": 3, "y": [{"b": 5, "c": [{"d": 2}, {"d": 1}]}]};
    let u = doc! {"$set": {"y.$[i].c.$[j].d": 0}};
    assert_eq!(
        with_filters(u.clone(), vec![doc! {"i.b": 5}, doc! {"j.d": 1}], d.clone()).unwrap(),
        doc! {"_id": 3, "y": [{"b": 5, "c": [{"d": 2}, {"d": 0}]}]}
    );
    let out = Update::parse(
        &Bson::Document(u),
        Some(&[doc! {"i.b": 5}, doc! {"j.d": 3}]),
    )
    .unwrap()
    .apply_with_change(&d, &UpdateContext::default())
    .unwrap();
    assert!(!out.1);
}

#[test]
fn two_filters_matching_one_element_conflict() {
    let e = with_filters(
        doc! {"$set": {"a.$[x]": 1, "a.$[y]": 2}},
        vec![doc! {"x": {"$gt": 0}}, doc! {"y": {"$lt": 5}}],
        doc! {"_id": 1, "a": [3]},
    )
    .unwrap_err();
    assert_eq!(e.code, codes::CONFLICTING_UPDATE_OPERATORS);
    assert_eq!(e.message, "Update created a conflict at 'a.0'");
}

// ----- pipeline updates (need crate::query::pipeline) -----

fn pipeline(stages: Vec<Document>, d: Document) -> Result<(Document, bool)> {
    let stages = Bson::Array(stages.into_iter().map(Bson::Document).collect());
    Update::parse(&stages, None)?.apply_with_change(&d, &UpdateContext::default())
}

#[test]
fn pipeline_updates_from_the_spec_tests() {
    let d = doc! {"_id": 1, "x": 1, "y": 1, "t": {"u": {"v": 1}}};
    // updateOne-pipeline.json: the replaced root keeps the original _id.
    assert_eq!(
        pipeline(
            vec![
                doc! {"$replaceRoot": {"newRoot": "$t"}},
                doc! {"$addFields": {"foo": 1}}
            ],
            d.clone()
        )
        .unwrap(),
        (doc! {"_id": 1, "u": {"v": 1}, "foo": 1}, true)
    );
    // updateMany-pipeline.json.
    assert_eq!(
        pipeline(
            vec![doc! {"$project": {"x": 1}}, doc! {"$addFields": {"foo": 1}}],
            d.clone()
        )
        .unwrap()
        .0,
        doc! {"_id": 1, "x": 1, "foo": 1}
    );
    // A pipeline that changes nothing is a no-op.
    assert!(!pipeline(vec![doc! {"$set": {"x": 1}}], d).unwrap().1);
}

#[test]
fn pipeline_stage_restrictions() {
    let e = pipeline(vec![doc! {"$match": {"a": 1}}], doc! {"_id": 1}).unwrap_err();
    assert_eq!(e.code, codes::INVALID_OPTIONS);
    assert_eq!(
        e.message,
        "$match is not allowed to be used within an update"
    );
    let e = pipeline(vec![doc! {"$set": {"_id": 2}}], doc! {"_id": 1}).unwrap_err();
    assert_eq!(e.code, codes::IMMUTABLE_FIELD);
    // Top-level `$` fields can be written by pipelines (updateOne-dots_and_dollars.json).
    let out = pipeline(
        vec![doc! {"$replaceWith": {"$setField": {
        "field": {"$literal": "$a"}, "value": 1, "input": "$$ROOT"}}}],
        doc! {"_id": 1, "foo": {}},
    )
    .unwrap();
    assert_eq!(out.0, doc! {"_id": 1, "foo": {}, "$a": 1});
}

#[test]
fn pipeline_errors_surface_at_parse_time() {
    let stages = |v: Vec<Document>| Bson::Array(v.into_iter().map(Bson::Document).collect());
    let e = Update::parse(&stages(vec![doc! {"$foo": {}}]), None).unwrap_err();
    assert_eq!(e.code, codes::UNRECOGNIZED_PIPELINE_STAGE);
    let e = Update::parse(&stages(vec![doc! {"$group": {"_id": null}}]), None).unwrap_err();
    assert_eq!(e.code, codes::INVALID_OPTIONS);
    assert_eq!(
        e.message,
        "$group is not allowed to be used within an update"
    );
    let e = Update::parse(&Bson::Array(vec![Bson::Int32(1)]), None).unwrap_err();
    assert_eq!(e.code, codes::TYPE_MISMATCH);
    assert!(Update::parse(&stages(vec![]), None).unwrap().is_pipeline());
}

#[test]
fn pipeline_sees_let_variables() {
    let stages = Bson::Array(vec![Bson::Document(doc! {"$set": {"x": "$$v"}})]);
    let vars = doc! {"v": 5};
    let ctx = UpdateContext {
        vars: Some(&vars),
        ..Default::default()
    };
    assert_eq!(
        Update::parse(&stages, None)
            .unwrap()
            .apply(&doc! {"_id": 1}, &ctx)
            .unwrap(),
        doc! {"_id": 1, "x": 5}
    );
}
