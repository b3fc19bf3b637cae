use super::*;
use bson::{bson, doc};

fn ev_in(e: Bson, d: Document) -> Option<Bson> {
    evaluate(&e, &d, &Document::new()).unwrap()
}
fn ev(e: Bson) -> Option<Bson> {
    ev_in(e, Document::new())
}
fn err_in(e: Bson, d: Document) -> CommandError {
    evaluate(&e, &d, &Document::new()).unwrap_err()
}
fn err(e: Bson) -> CommandError {
    err_in(e, Document::new())
}
fn dec(s: &str) -> Bson {
    Bson::Decimal128(s.parse().unwrap())
}

#[test]
fn field_paths_traverse_arrays_of_documents() {
    let d = doc! {"a": [{"b": 1}, {"b": 2}, {"c": 3}, 7, [{"b": 4}]], "x": {"y": {"z": 5}}};
    // Missing elements and scalars are dropped; nested arrays are traversed.
    assert_eq!(ev_in(bson!("$a.b"), d.clone()), Some(bson!([1, 2, [4]])));
    assert_eq!(ev_in(bson!("$x.y.z"), d.clone()), Some(bson!(5)));
    assert_eq!(ev_in(bson!("$x.q"), d.clone()), None);
    assert_eq!(ev_in(bson!("$$ROOT.x.y"), d.clone()), Some(bson!({"z": 5})));
    assert_eq!(ev_in(bson!("$$CURRENT.x.y.z"), d.clone()), Some(bson!(5)));
    assert_eq!(ev_in(bson!("$$REMOVE"), d.clone()), None);
    assert!(matches!(ev(bson!("$$NOW")), Some(Bson::DateTime(_))));
    assert_eq!(err(bson!("$$nope")).code, 17276);
    assert_eq!(err(bson!("$")).code, 16872);
}

#[test]
fn literals_and_user_variables() {
    let d = doc! {"a": 1};
    assert_eq!(
        ev_in(
            bson!({"x": "$a", "y": "$missing", "z": ["$a", "$missing"]}),
            d.clone()
        ),
        // A missing field is omitted from an object and null inside an array.
        Some(bson!({"x": 1, "z": [1, null]}))
    );
    assert_eq!(ev(bson!({"$literal": "$a"})), Some(bson!("$a")));
    let vars = doc! {"v": 10};
    assert_eq!(
        evaluate(&bson!({"$add": ["$$v", "$a"]}), &d, &vars).unwrap(),
        Some(bson!(11))
    );
    assert_eq!(
        ev_in(
            bson!({"$let": {"vars": {"x": {"$add": ["$a", 1]}}, "in": {"$multiply": ["$$x", 10]}}}),
            d
        ),
        Some(bson!(20))
    );
    assert_eq!(
        err(bson!({"$let": {"vars": {"X": 1}, "in": 1}})).code,
        16867
    );
    assert_eq!(err(bson!({"$foo": 1})).code, 168);
    assert_eq!(
        err(bson!({"$foo": 1})).message,
        "Unrecognized expression '$foo'"
    );
    assert_eq!(err(bson!({"$add": [1], "$sub": 2})).code, 15983);
    assert!(validate(&bson!({"a": {"$bogus": 1}})).is_err());
    assert!(validate(&bson!({"a": {"$literal": {"$bogus": 1}}})).is_ok());
}

#[test]
fn let_documents_are_evaluated_once() {
    let vars = evaluate_let(
        &doc! {"id": 1, "y": {"$literal": "$bar"}, "r": {"$rand": {}}, "m": "$nothing"},
        &Document::new(),
    )
    .unwrap();
    assert_eq!(vars.get("y"), Some(&bson!("$bar")));
    assert!(matches!(vars.get("r"), Some(Bson::Double(_))));
    assert_eq!(
        evaluate(&bson!("$$y"), &doc! {}, &vars).unwrap(),
        Some(bson!("$bar"))
    );
    // A missing value stays missing.
    assert_eq!(evaluate(&bson!("$$m"), &doc! {}, &vars).unwrap(), None);
    assert_eq!(
        evaluate(&bson!({"$eq": ["$$m", "$x"]}), &doc! {}, &vars).unwrap(),
        Some(bson!(true))
    );
    assert_eq!(
        evaluate_let(&doc! {"Bad": 1}, &Document::new())
            .unwrap_err()
            .code,
        16867
    );
}

#[test]
fn add_promotes_numeric_types() {
    assert_eq!(ev(bson!({"$add": [1, 2]})), Some(Bson::Int32(3)));
    assert_eq!(
        ev(bson!({"$add": [i32::MAX, 1]})),
        Some(Bson::Int64(i32::MAX as i64 + 1))
    );
    assert_eq!(
        ev(bson!({"$add": [i64::MAX, 1i64]})),
        Some(Bson::Double(i64::MAX as f64 + 1.0))
    );
    assert_eq!(ev(bson!({"$add": [1, 2i64]})), Some(Bson::Int64(3)));
    assert_eq!(ev(bson!({"$add": [1, 0.5]})), Some(Bson::Double(1.5)));
    assert_eq!(ev(bson!({"$add": [1, dec("1.1")]})), Some(dec("2.1")));
    assert_eq!(ev(bson!({"$add": []})), Some(Bson::Int32(0)));
    // Missing and null make the result null.
    assert_eq!(ev(bson!({"$add": [1, "$missing"]})), Some(Bson::Null));
    assert_eq!(ev(bson!({"$add": [1, null]})), Some(Bson::Null));
    let e = err(bson!({"$add": [1, "x"]}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (14, "$add only supports numeric or date types, not string")
    );
    let date = bson::DateTime::from_millis(1000);
    assert_eq!(
        ev(bson!({"$add": [date, 500, 0.4]})),
        Some(Bson::DateTime(bson::DateTime::from_millis(1500)))
    );
    assert_eq!(err(bson!({"$add": [date, date]})).code, 16612);
}

#[test]
fn decimal_arithmetic_is_exact() {
    assert_eq!(
        ev(bson!({"$add": [dec("0.1"), dec("0.2")]})),
        Some(dec("0.3"))
    );
    assert_eq!(
        ev(bson!({"$subtract": [dec("1.00"), dec("0.01")]})),
        Some(dec("0.99"))
    );
    assert_eq!(ev(bson!({"$multiply": [dec("1.5"), 2]})), Some(dec("3.0")));
    assert_eq!(ev(bson!({"$divide": [dec("6"), 3]})), Some(dec("2")));
    assert_eq!(
        ev(bson!({"$divide": [dec("10"), dec("4")]})),
        Some(dec("2.5"))
    );
    assert_eq!(
        ev(bson!({"$divide": [1, dec("3")]})),
        Some(dec("0.3333333333333333333333333333333333"))
    );
    assert_eq!(
        ev(bson!({"$divide": [2, dec("3")]})),
        Some(dec("0.6666666666666666666666666666666667"))
    );
    // A double joins decimal arithmetic through its 15 significant digits.
    assert_eq!(
        ev(bson!({"$add": [dec("1"), 0.1]})),
        Some(dec("1.100000000000000"))
    );
    assert_eq!(
        ev(bson!({"$add": [dec("1"), i64::MAX]})),
        Some(dec("9223372036854775808"))
    );
    assert_eq!(
        ev(bson!({"$sum": [dec("0.1"), dec("0.2"), 1]})),
        Some(dec("1.3"))
    );
    assert_eq!(ev(bson!({"$avg": [dec("1"), dec("2")]})), Some(dec("1.5")));
    assert_eq!(ev(bson!({"$abs": dec("-2.5")})), Some(dec("2.5")));
}

#[test]
fn subtract_multiply_divide_mod() {
    let d1 = bson::DateTime::from_millis(5000);
    let d2 = bson::DateTime::from_millis(2000);
    assert_eq!(ev(bson!({"$subtract": [d1, d2]})), Some(Bson::Int64(3000)));
    assert_eq!(
        ev(bson!({"$subtract": [d1, 1000]})),
        Some(Bson::DateTime(bson::DateTime::from_millis(4000)))
    );
    assert_eq!(
        ev(bson!({"$subtract": [i32::MIN, 1]})),
        Some(Bson::Int64(i32::MIN as i64 - 1))
    );
    assert_eq!(err(bson!({"$subtract": [1, d1]})).code, 14);
    let e = err(bson!({"$subtract": [1]}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            16020,
            "Expression $subtract takes exactly 2 arguments. 1 were passed in."
        )
    );
    assert_eq!(
        ev(bson!({"$multiply": [65536, 65536]})),
        Some(Bson::Int64(4294967296))
    );
    assert_eq!(ev(bson!({"$multiply": [2, 1.5]})), Some(Bson::Double(3.0)));
    // $divide always returns a double (or a decimal).
    assert_eq!(ev(bson!({"$divide": [6, 3]})), Some(Bson::Double(2.0)));
    assert_eq!(ev(bson!({"$divide": [dec("1"), 4]})), Some(dec("0.25")));
    let e = err(bson!({"$divide": [1, 0]}));
    assert_eq!((e.code, e.message.as_str()), (2, "can't $divide by zero"));
    assert_eq!(ev(bson!({"$divide": [1, null]})), Some(Bson::Null));
    assert_eq!(ev(bson!({"$mod": [7, 3]})), Some(Bson::Int32(1)));
    assert_eq!(ev(bson!({"$mod": [-7, 3i64]})), Some(Bson::Int64(-1)));
    assert_eq!(ev(bson!({"$mod": [7.5, 2]})), Some(Bson::Double(1.5)));
    assert_eq!(err(bson!({"$mod": [7, 0]})).code, 16610);
}

#[test]
fn unary_math() {
    assert_eq!(ev(bson!({"$abs": -5})), Some(Bson::Int32(5)));
    assert_eq!(ev(bson!({"$abs": i32::MIN})), Some(Bson::Int64(2147483648)));
    assert_eq!(err(bson!({"$abs": i64::MIN})).code, 28680);
    assert_eq!(ev(bson!({"$abs": null})), Some(Bson::Null));
    assert_eq!(err(bson!({"$abs": "x"})).code, 28765);
    assert_eq!(ev(bson!({"$ceil": 1.2})), Some(Bson::Double(2.0)));
    assert_eq!(ev(bson!({"$floor": -1.2})), Some(Bson::Double(-2.0)));
    assert_eq!(ev(bson!({"$floor": 3})), Some(Bson::Int32(3)));
    assert_eq!(ev(bson!({"$sqrt": 16})), Some(Bson::Double(4.0)));
    assert_eq!(err(bson!({"$sqrt": -1})).code, 28714);
    assert_eq!(ev(bson!({"$ln": 1})), Some(Bson::Double(0.0)));
    assert_eq!(ev(bson!({"$log10": 1000})), Some(Bson::Double(3.0)));
    assert_eq!(err(bson!({"$log10": 0})).code, 28761);
    assert_eq!(ev(bson!({"$log": [8, 2]})), Some(Bson::Double(3.0)));
    assert_eq!(err(bson!({"$log": [8, 1]})).code, 28759);
    assert_eq!(ev(bson!({"$exp": 0})), Some(Bson::Double(1.0)));
    assert_eq!(ev(bson!({"$pow": [2, 10]})), Some(Bson::Int32(1024)));
    assert_eq!(ev(bson!({"$pow": [2, 40]})), Some(Bson::Int64(1 << 40)));
    assert_eq!(ev(bson!({"$pow": [2, -1]})), Some(Bson::Double(0.5)));
    assert_eq!(ev(bson!({"$pow": [-1, -3]})), Some(Bson::Int32(-1)));
    assert_eq!(err(bson!({"$pow": [0, -1]})).code, 28764);
    // $round rounds half to even; integers with a negative place round to tens etc.
    assert_eq!(ev(bson!({"$round": [2.5]})), Some(Bson::Double(2.0)));
    assert_eq!(ev(bson!({"$round": [3.5]})), Some(Bson::Double(4.0)));
    assert_eq!(ev(bson!({"$round": [1.2345, 2]})), Some(Bson::Double(1.23)));
    assert_eq!(ev(bson!({"$round": [1234, -2]})), Some(Bson::Int32(1200)));
    assert_eq!(ev(bson!({"$trunc": [-1.7]})), Some(Bson::Double(-1.0)));
    assert_eq!(ev(bson!({"$trunc": [1.789, 1]})), Some(Bson::Double(1.7)));
    assert_eq!(err(bson!({"$round": [1, 101]})).code, 51083);
}

#[test]
fn comparisons_use_full_bson_order() {
    assert_eq!(ev(bson!({"$eq": [1, 1.0]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$lt": [5, "a"]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$gt": [{"a": 1}, "zzz"]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$cmp": ["b", "a"]})), Some(bson!(1)));
    assert_eq!(ev(bson!({"$cmp": [2, 2i64]})), Some(bson!(0)));
    // Missing sorts below null in aggregation comparisons.
    assert_eq!(ev(bson!({"$eq": ["$missing", null]})), Some(bson!(false)));
    assert_eq!(ev(bson!({"$lt": ["$missing", null]})), Some(bson!(true)));
    assert_eq!(
        ev(bson!({"$eq": ["$missing", "$alsoMissing"]})),
        Some(bson!(true))
    );
    assert_eq!(err(bson!({"$eq": [1]})).code, 16020);
    assert_eq!(ev(bson!({"$ne": [[1, 2], [1, 2]]})), Some(bson!(false)));
}

#[test]
fn booleans_and_conditionals() {
    assert!(!truthy(None));
    assert!(!truthy(Some(&Bson::Int64(0))));
    assert!(!truthy(Some(&dec("0"))));
    assert!(truthy(Some(&bson!(""))));
    assert!(truthy(Some(&bson!([]))));
    assert_eq!(ev(bson!({"$and": [1, "x", true]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$and": []})), Some(bson!(true)));
    assert_eq!(
        ev(bson!({"$or": [0, null, "$missing"]})),
        Some(bson!(false))
    );
    assert_eq!(ev(bson!({"$not": [0]})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$cond": [true, 1, 2]})), Some(bson!(1)));
    assert_eq!(
        ev(bson!({"$cond": {"if": null, "then": 1, "else": 2}})),
        Some(bson!(2))
    );
    assert_eq!(err(bson!({"$cond": {"then": 1, "else": 2}})).code, 17080);
    assert_eq!(
        err(bson!({"$cond": {"if": 1, "then": 1, "else": 2, "x": 1}})).code,
        17083
    );
    assert_eq!(err(bson!({"$cond": [1, 2]})).code, 16020);
    // $ifNull takes any number of arguments and replaces both null and missing.
    assert_eq!(
        ev(bson!({"$ifNull": ["$missing", null, 3, 4]})),
        Some(bson!(3))
    );
    assert_eq!(ev(bson!({"$ifNull": ["$missing", "$alsoMissing"]})), None);
    assert_eq!(err(bson!({"$ifNull": [1]})).code, 1257300);
    let sw = bson!({"$switch": {"branches": [{"case": {"$gt": ["$a", 5]}, "then": "big"}, {"case": {"$gt": ["$a", 1]}, "then": "mid"}], "default": "small"}});
    assert_eq!(ev_in(sw.clone(), doc! {"a": 3}), Some(bson!("mid")));
    assert_eq!(ev_in(sw, doc! {"a": 0}), Some(bson!("small")));
    let e = err(bson!({"$switch": {"branches": [{"case": false, "then": 1}]}}));
    assert_eq!(e.code, 40066);
    assert_eq!(err(bson!({"$switch": {"branches": []}})).code, 40068);
}

#[test]
fn type_operators_and_conversions() {
    assert_eq!(ev(bson!({"$type": "$missing"})), Some(bson!("missing")));
    assert_eq!(ev(bson!({"$type": [[1]]})), Some(bson!("array")));
    assert_eq!(ev(bson!({"$type": 1i64})), Some(bson!("long")));
    assert_eq!(ev(bson!({"$isNumber": dec("1")})), Some(bson!(true)));
    assert_eq!(ev(bson!({"$isNumber": "1"})), Some(bson!(false)));
    assert_eq!(ev(bson!({"$toString": 1.5})), Some(bson!("1.5")));
    assert_eq!(ev(bson!({"$toString": 2.0})), Some(bson!("2")));
    assert_eq!(ev(bson!({"$toString": true})), Some(bson!("true")));
    assert_eq!(
        ev(bson!({"$toString": bson::DateTime::from_millis(86_400_000 * 365 + 1)})),
        Some(bson!("1971-01-01T00:00:00.001Z"))
    );
    let oid = ObjectId::parse_str("5f0c3f1e9b1e8a3d4c2b1a09").unwrap();
    assert_eq!(
        ev(bson!({"$toString": oid})),
        Some(bson!("5f0c3f1e9b1e8a3d4c2b1a09"))
    );
    assert_eq!(
        ev(bson!({"$toObjectId": "5f0c3f1e9b1e8a3d4c2b1a09"})),
        Some(Bson::ObjectId(oid))
    );
    assert_eq!(ev(bson!({"$toInt": "42"})), Some(Bson::Int32(42)));
    assert_eq!(ev(bson!({"$toInt": 4.9})), Some(Bson::Int32(4)));
    assert_eq!(ev(bson!({"$toInt": null})), Some(Bson::Null));
    assert_eq!(err(bson!({"$toInt": "4x"})).code, 241);
    assert_eq!(err(bson!({"$toInt": 1e12})).code, 241);
    assert_eq!(
        ev(bson!({"$toLong": bson::DateTime::from_millis(7)})),
        Some(Bson::Int64(7))
    );
    assert_eq!(ev(bson!({"$toDouble": "2.5"})), Some(Bson::Double(2.5)));
    assert_eq!(ev(bson!({"$toBool": 0})), Some(bson!(false)));
    assert_eq!(ev(bson!({"$toBool": "false"})), Some(bson!(true)));
    assert_eq!(
        ev(bson!({"$toDate": "2021-03-04T05:06:07.089Z"})),
        Some(Bson::DateTime(
            bson::DateTime::parse_rfc3339_str("2021-03-04T05:06:07.089Z").unwrap()
        ))
    );
    assert_eq!(
        ev(bson!({"$toDate": 0i64})),
        Some(Bson::DateTime(bson::DateTime::from_millis(0)))
    );
    // An int does not convert to a date, only a long or a double.
    let e = err(bson!({"$toDate": 5}));
    assert_eq!(e.code, 241);
    assert!(
        e.message
            .starts_with("Unsupported conversion from int to date")
    );
    assert_eq!(
        ev(bson!({"$convert": {"input": "x", "to": "int", "onError": -1}})),
        Some(bson!(-1))
    );
    assert_eq!(
        ev(bson!({"$convert": {"input": "$m", "to": "int", "onNull": 0}})),
        Some(bson!(0))
    );
    assert_eq!(
        ev(bson!({"$convert": {"input": "7", "to": 18}})),
        Some(Bson::Int64(7))
    );
    assert_eq!(
        err(bson!({"$convert": {"input": 1, "to": "bogus"}})).code,
        2
    );
}

#[test]
fn strings() {
    assert_eq!(ev(bson!({"$concat": ["a", "b", "c"]})), Some(bson!("abc")));
    assert_eq!(ev(bson!({"$concat": ["a", "$missing"]})), Some(Bson::Null));
    assert_eq!(err(bson!({"$concat": ["a", 1]})).code, 16702);
    assert_eq!(ev(bson!({"$substr": ["hello", 1, 3]})), Some(bson!("ell")));
    assert_eq!(
        ev(bson!({"$substrBytes": ["hello", 2, -1]})),
        Some(bson!("llo"))
    );
    assert_eq!(ev(bson!({"$substrBytes": [123, 0, 2]})), Some(bson!("12")));
    assert_eq!(err(bson!({"$substrBytes": ["é", 1, 1]})).code, 28656);
    assert_eq!(ev(bson!({"$substrCP": ["héllo", 1, 2]})), Some(bson!("él")));
    assert_eq!(ev(bson!({"$toUpper": "abC"})), Some(bson!("ABC")));
    assert_eq!(ev(bson!({"$toLower": null})), Some(bson!("")));
    assert_eq!(ev(bson!({"$strLenBytes": "é"})), Some(bson!(2)));
    assert_eq!(ev(bson!({"$strLenCP": "é"})), Some(bson!(1)));
    assert_eq!(err(bson!({"$strLenCP": "$missing"})).code, 34471);
    assert_eq!(
        ev(bson!({"$split": ["a,b,,c", ","]})),
        Some(bson!(["a", "b", "", "c"]))
    );
    assert_eq!(err(bson!({"$split": ["a", ""]})).code, 40087);
    assert_eq!(ev(bson!({"$trim": {"input": "  x \n"}})), Some(bson!("x")));
    assert_eq!(
        ev(bson!({"$ltrim": {"input": "xxyx", "chars": "x"}})),
        Some(bson!("yx"))
    );
    assert_eq!(
        ev(bson!({"$rtrim": {"input": "xxyx", "chars": "x"}})),
        Some(bson!("xxy"))
    );
    assert_eq!(err(bson!({"$trim": {"input": 1}})).code, 50699);
    assert_eq!(
        ev(bson!({"$indexOfBytes": ["abcabc", "c", 3]})),
        Some(bson!(5))
    );
    assert_eq!(ev(bson!({"$indexOfBytes": ["abc", "z"]})), Some(bson!(-1)));
    assert_eq!(ev(bson!({"$indexOfCP": ["héllo", "l"]})), Some(bson!(2)));
    assert_eq!(
        ev(bson!({"$regexMatch": {"input": "Hello", "regex": "^h", "options": "i"}})),
        Some(bson!(true))
    );
    assert_eq!(
        ev(bson!({"$regexMatch": {"input": "$missing", "regex": "x"}})),
        Some(bson!(false))
    );
    assert_eq!(
        err(bson!({"$regexMatch": {"input": 1, "regex": "x"}})).code,
        51104
    );
    assert_eq!(ev(bson!({"$strcasecmp": ["ABC", "abc"]})), Some(bson!(0)));
}

#[test]
fn arrays() {
    let d = doc! {"a": [1, 2, 3, 4]};
    assert_eq!(
        ev_in(bson!({"$arrayElemAt": ["$a", -1]}), d.clone()),
        Some(bson!(4))
    );
    assert_eq!(ev_in(bson!({"$arrayElemAt": ["$a", 10]}), d.clone()), None);
    assert_eq!(err(bson!({"$arrayElemAt": ["x", 0]})).code, 28689);
    assert_eq!(ev_in(bson!({"$first": "$a"}), d.clone()), Some(bson!(1)));
    assert_eq!(ev_in(bson!({"$last": "$a"}), d.clone()), Some(bson!(4)));
    assert_eq!(ev(bson!({"$first": [[]]})), None);
    assert_eq!(ev_in(bson!({"$size": "$a"}), d.clone()), Some(bson!(4)));
    let e = err(bson!({"$size": "$missing"}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            17124,
            "The argument to $size must be an array. Type of argument is missing"
        )
    );
    assert_eq!(
        ev_in(bson!({"$slice": ["$a", 2]}), d.clone()),
        Some(bson!([1, 2]))
    );
    assert_eq!(
        ev_in(bson!({"$slice": ["$a", -2]}), d.clone()),
        Some(bson!([3, 4]))
    );
    assert_eq!(
        ev_in(bson!({"$slice": ["$a", 1, 2]}), d.clone()),
        Some(bson!([2, 3]))
    );
    assert_eq!(
        ev_in(bson!({"$slice": ["$a", -3, 2]}), d.clone()),
        Some(bson!([2, 3]))
    );
    assert_eq!(
        err_in(bson!({"$slice": ["$a", 0, 0]}), d.clone()).code,
        28729
    );
    assert_eq!(
        ev(bson!({"$concatArrays": [[1], [2, 3]]})),
        Some(bson!([1, 2, 3]))
    );
    assert_eq!(
        ev(bson!({"$concatArrays": [[1], "$missing"]})),
        Some(Bson::Null)
    );
    assert_eq!(
        ev_in(bson!({"$in": [2.0, "$a"]}), d.clone()),
        Some(bson!(true))
    );
    assert_eq!(err(bson!({"$in": [1, "$missing"]})).code, 40081);
    assert_eq!(
        ev_in(bson!({"$isArray": "$a"}), d.clone()),
        Some(bson!(true))
    );
    assert_eq!(
        ev_in(
            bson!({"$filter": {"input": "$a", "as": "x", "cond": {"$gt": ["$$x", 2]}}}),
            d.clone()
        ),
        Some(bson!([3, 4]))
    );
    assert_eq!(
        ev_in(
            bson!({"$filter": {"input": "$a", "cond": {"$gt": ["$$this", 1]}, "limit": 2}}),
            d.clone()
        ),
        Some(bson!([2, 3]))
    );
    assert_eq!(
        ev_in(
            bson!({"$map": {"input": "$a", "in": {"$multiply": ["$$this", 2]}}}),
            d.clone()
        ),
        Some(bson!([2, 4, 6, 8]))
    );
    assert_eq!(
        ev(bson!({"$map": {"input": "$missing", "in": 1}})),
        Some(Bson::Null)
    );
    assert_eq!(err(bson!({"$map": {"input": 1, "in": 1}})).code, 16883);
    assert_eq!(
        ev_in(
            bson!({"$reduce": {"input": "$a", "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}),
            d.clone()
        ),
        Some(bson!(10))
    );
    assert_eq!(
        ev_in(bson!({"$indexOfArray": ["$a", 3]}), d.clone()),
        Some(bson!(2))
    );
    assert_eq!(
        ev_in(bson!({"$indexOfArray": ["$a", 1, 1]}), d.clone()),
        Some(bson!(-1))
    );
    assert_eq!(
        ev_in(bson!({"$reverseArray": "$a"}), d.clone()),
        Some(bson!([4, 3, 2, 1]))
    );
    assert_eq!(ev(bson!({"$range": [0, 10, 3]})), Some(bson!([0, 3, 6, 9])));
    assert_eq!(ev(bson!({"$range": [5, 0, -2]})), Some(bson!([5, 3, 1])));
    assert_eq!(err(bson!({"$range": [0, 5, 0]})).code, 34449);
    assert_eq!(
        ev(bson!({"$arrayToObject": [[["a", 1], ["b", 2]]]})),
        Some(bson!({"a": 1, "b": 2}))
    );
    assert_eq!(
        ev(bson!({"$arrayToObject": [[{"k": "a", "v": 1}]]})),
        Some(bson!({"a": 1}))
    );
    assert_eq!(
        ev(bson!({"$objectToArray": {"a": 1}})),
        Some(bson!([{"k": "a", "v": 1}]))
    );
    assert_eq!(
        ev(bson!({"$zip": {"inputs": [[1, 2], ["a"]]}})),
        Some(bson!([[1, "a"]]))
    );
    assert_eq!(
        ev(
            bson!({"$zip": {"inputs": [[1, 2], ["a"]], "useLongestLength": true, "defaults": [0, "z"]}})
        ),
        Some(bson!([[1, "a"], [2, "z"]]))
    );
    assert_eq!(
        ev(bson!({"$setUnion": [[1, 2], [2, 3]]})),
        Some(bson!([1, 2, 3]))
    );
    assert_eq!(
        ev(bson!({"$setIsSubset": [[1], [1, 2]]})),
        Some(bson!(true))
    );
}

#[test]
fn expression_accumulators() {
    let d = doc! {"a": [1, 2i64, 3.5, "x", null]};
    // One array argument: over its elements; non-numbers are ignored.
    assert_eq!(
        ev_in(bson!({"$sum": "$a"}), d.clone()),
        Some(Bson::Double(6.5))
    );
    assert_eq!(
        ev_in(bson!({"$avg": "$a"}), d.clone()),
        Some(Bson::Double(6.5 / 3.0))
    );
    assert_eq!(ev_in(bson!({"$max": "$a"}), d.clone()), Some(bson!("x")));
    assert_eq!(ev_in(bson!({"$min": "$a"}), d.clone()), Some(bson!(1)));
    assert_eq!(ev(bson!({"$sum": [1, 2, 3]})), Some(Bson::Int32(6)));
    assert_eq!(ev(bson!({"$sum": "$missing"})), Some(Bson::Int32(0)));
    assert_eq!(ev(bson!({"$avg": "$missing"})), Some(Bson::Null));
    assert_eq!(ev(bson!({"$max": [null, "$missing"]})), Some(Bson::Null));
}

#[test]
fn objects() {
    let d = doc! {"a": {"b": 1, "c": 2}, "price.usd": 5};
    assert_eq!(
        ev_in(bson!({"$getField": "price.usd"}), d.clone()),
        Some(bson!(5))
    );
    assert_eq!(
        ev_in(
            bson!({"$getField": {"field": "b", "input": "$a"}}),
            d.clone()
        ),
        Some(bson!(1))
    );
    assert_eq!(
        ev_in(
            bson!({"$getField": {"field": "z", "input": "$a"}}),
            d.clone()
        ),
        None
    );
    assert_eq!(
        ev_in(
            bson!({"$setField": {"field": "d", "input": "$a", "value": 3}}),
            d.clone()
        ),
        Some(bson!({"b": 1, "c": 2, "d": 3}))
    );
    assert_eq!(
        ev_in(
            bson!({"$setField": {"field": "b", "input": "$a", "value": "$$REMOVE"}}),
            d.clone()
        ),
        Some(bson!({"c": 2}))
    );
    assert_eq!(
        ev_in(
            bson!({"$unsetField": {"field": "c", "input": "$a"}}),
            d.clone()
        ),
        Some(bson!({"b": 1}))
    );
    assert_eq!(
        ev_in(
            bson!({"$mergeObjects": ["$a", {"c": 3, "e": 4}, null]}),
            d.clone()
        ),
        Some(bson!({"b": 1, "c": 3, "e": 4}))
    );
    assert_eq!(err(bson!({"$mergeObjects": [1]})).code, 40400);
}

#[test]
fn dates() {
    // 2020-02-29T13:14:15.678Z, a Saturday.
    let dt = bson::DateTime::parse_rfc3339_str("2020-02-29T13:14:15.678Z").unwrap();
    let d = doc! {"d": dt};
    let get = |op: &str| ev_in(bson!({op: "$d"}), d.clone());
    assert_eq!(get("$year"), Some(bson!(2020)));
    assert_eq!(get("$month"), Some(bson!(2)));
    assert_eq!(get("$dayOfMonth"), Some(bson!(29)));
    assert_eq!(get("$hour"), Some(bson!(13)));
    assert_eq!(get("$minute"), Some(bson!(14)));
    assert_eq!(get("$second"), Some(bson!(15)));
    assert_eq!(get("$millisecond"), Some(bson!(678)));
    assert_eq!(get("$dayOfWeek"), Some(bson!(7)));
    assert_eq!(get("$dayOfYear"), Some(bson!(60)));
    assert_eq!(get("$isoDayOfWeek"), Some(bson!(6)));
    assert_eq!(get("$week"), Some(bson!(8)));
    assert_eq!(get("$isoWeek"), Some(bson!(9)));
    // 2021-01-01 (a Friday) is in ISO week 53 of 2020; 2024-12-30 in week 1 of 2025.
    let d2 = doc! {"d": bson::DateTime::parse_rfc3339_str("2021-01-01T00:00:00Z").unwrap()};
    assert_eq!(
        ev_in(bson!({"$isoWeek": "$d"}), d2.clone()),
        Some(bson!(53))
    );
    assert_eq!(
        ev_in(bson!({"$isoWeekYear": "$d"}), d2.clone()),
        Some(Bson::Int64(2020))
    );
    assert_eq!(ev_in(bson!({"$week": "$d"}), d2), Some(bson!(0)));
    let d3 = doc! {"d": bson::DateTime::parse_rfc3339_str("2024-12-30T00:00:00Z").unwrap()};
    assert_eq!(
        ev_in(
            bson!({"$dateToString": {"date": "$d", "format": "%G-W%V-%u"}}),
            d3
        ),
        Some(bson!("2025-W01-1"))
    );
    assert_eq!(ev(bson!({"$year": "$missing"})), Some(Bson::Null));
    assert_eq!(err(bson!({"$year": "2020"})).code, 16006);
    assert_eq!(
        ev_in(
            bson!({"$year": {"date": "$d", "timezone": "UTC"}}),
            d.clone()
        ),
        Some(bson!(2020))
    );
    assert_eq!(
        ev_in(bson!({"$dateToString": {"date": "$d"}}), d.clone()),
        Some(bson!("2020-02-29T13:14:15.678Z"))
    );
    assert_eq!(
        ev_in(
            bson!({"$dateToString": {"date": "$d", "format": "%Y/%m/%d %j %%"}}),
            d.clone()
        ),
        Some(bson!("2020/02/29 060 %"))
    );
    assert_eq!(
        ev(bson!({"$dateToString": {"date": "$missing", "onNull": "none"}})),
        Some(bson!("none"))
    );
    // Before the epoch.
    let old = bson::DateTime::from_millis(-1);
    assert_eq!(
        ev(bson!({"$toString": old})),
        Some(bson!("1969-12-31T23:59:59.999Z"))
    );
}

fn date(s: &str) -> Bson {
    Bson::DateTime(bson::DateTime::parse_rfc3339_str(s).unwrap())
}

#[test]
fn time_zones() {
    // New York is at -05:00 in January and -04:00 (DST) in July; Kolkata at +05:30 all year.
    let jan = doc! {"d": date("2020-01-15T12:00:00Z")};
    let jul = doc! {"d": date("2020-07-15T12:00:00Z")};
    let hour =
        |tz: &str, d: &Document| ev_in(bson!({"$hour": {"date": "$d", "timezone": tz}}), d.clone());
    assert_eq!(hour("America/New_York", &jan), Some(bson!(7)));
    assert_eq!(hour("America/New_York", &jul), Some(bson!(8)));
    // Links of the tz database are identifiers too.
    assert_eq!(hour("US/Eastern", &jul), Some(bson!(8)));
    assert_eq!(hour("Asia/Kolkata", &jan), Some(bson!(17)));
    // The server's three offset forms.
    assert_eq!(hour("+05:30", &jan), Some(bson!(17)));
    assert_eq!(hour("+0530", &jan), Some(bson!(17)));
    assert_eq!(hour("-03", &jan), Some(bson!(9)));
    assert_eq!(
        ev_in(
            bson!({"$minute": {"date": "$d", "timezone": "+05:30"}}),
            jan.clone()
        ),
        Some(bson!(30))
    );
    // The day changes with the zone.
    assert_eq!(
        ev_in(
            bson!({"$dayOfMonth": {"date": "$d", "timezone": "Pacific/Kiritimati"}}),
            doc! {"d": date("2020-01-15T12:00:00Z")}
        ),
        Some(bson!(16))
    );

    // %z is ±hhmm, %Z the offset in minutes as a plain integer.
    let fmt = |tz: &str, d: &Document| {
        ev_in(
            bson!({"$dateToString": {"date": "$d", "format": "%Y-%m-%dT%H:%M %z %Z", "timezone": tz}}),
            d.clone(),
        )
    };
    assert_eq!(
        fmt("America/New_York", &jan),
        Some(bson!("2020-01-15T07:00 -0500 -300"))
    );
    assert_eq!(
        fmt("Asia/Kolkata", &jul),
        Some(bson!("2020-07-15T17:30 +0530 330"))
    );
    assert_eq!(fmt("UTC", &jul), Some(bson!("2020-07-15T12:00 +0000 0")));

    // Wall-clock parts in a zone give the instant.
    assert_eq!(
        ev(
            bson!({"$dateFromParts": {"year": 2020, "month": 7, "day": 15, "hour": 8, "timezone": "America/New_York"}})
        ),
        Some(date("2020-07-15T12:00:00Z"))
    );
    assert_eq!(
        ev(bson!({"$dateFromParts": {"year": 2020, "month": 1, "day": 1, "timezone": "+01:00"}})),
        Some(date("2019-12-31T23:00:00Z"))
    );
    assert_eq!(
        ev(
            bson!({"$dateFromString": {"dateString": "2020-07-15T08:00:00", "timezone": "America/New_York"}})
        ),
        Some(date("2020-07-15T12:00:00Z"))
    );
    // A string with its own zone and a timezone argument: ConversionFailure, unless the
    // argument is the UTC zone.
    let e = err(
        bson!({"$dateFromString": {"dateString": "2020-07-15T08:00:00+02:00", "timezone": "Europe/Paris"}}),
    );
    assert_eq!(e.code, 241);
    assert_eq!(
        e.message,
        "you cannot pass in a date/time string with GMT offset together with a timezone argument"
    );
    assert_eq!(
        err(bson!({"$dateFromString": {"dateString": "2020-07-15T08:00:00Z", "timezone": "Europe/Paris"}})).code,
        241
    );
    assert_eq!(
        ev(
            bson!({"$dateFromString": {"dateString": "2020-07-15T08:00:00Z", "timezone": "+00:00"}})
        ),
        Some(date("2020-07-15T08:00:00Z"))
    );

    // A day added across the start of DST keeps the wall clock in the zone (07:00 EST is
    // 12:00Z; 07:00 EDT the next day is 11:00Z), and the instant without a zone.
    let before_dst = doc! {"d": date("2020-03-07T12:00:00Z")};
    assert_eq!(
        ev_in(
            bson!({"$dateAdd": {"startDate": "$d", "unit": "day", "amount": 1, "timezone": "America/New_York"}}),
            before_dst.clone()
        ),
        Some(date("2020-03-08T11:00:00Z"))
    );
    assert_eq!(
        ev_in(
            bson!({"$dateAdd": {"startDate": "$d", "unit": "day", "amount": 1}}),
            before_dst.clone()
        ),
        Some(date("2020-03-08T12:00:00Z"))
    );
    assert_eq!(
        ev_in(
            bson!({"$dateAdd": {"startDate": "$d", "unit": "hour", "amount": 24, "timezone": "America/New_York"}}),
            before_dst
        ),
        Some(date("2020-03-08T12:00:00Z"))
    );

    // Identifiers are matched exactly; anything else is 40485 with the name quoted.
    for bad in [
        "america/new_york",
        "Mars/Olympus_Mons",
        "+5",
        "+05:3",
        "05:00",
        "",
    ] {
        let e = err_in(
            bson!({"$hour": {"date": "$d", "timezone": bad}}),
            jan.clone(),
        );
        assert_eq!(e.code, 40485, "{bad}");
        assert_eq!(
            e.message,
            format!("unrecognized time zone identifier: \"{bad}\"")
        );
    }
    // A non-string: 40517 (8.x's makeTimeZone, for every operator).
    let e = err_in(bson!({"$year": {"date": "$d", "timezone": 5}}), jan.clone());
    assert_eq!(
        (e.code, e.message.as_str()),
        (40517, "timezone must evaluate to a string, found int")
    );
    let e = err_in(
        bson!({"$dateToString": {"date": "$d", "timezone": 5}}),
        jan.clone(),
    );
    assert_eq!(e.code, 40517);
    assert_eq!(e.message, "timezone must evaluate to a string, found int");
    // A null timezone makes the result null.
    assert_eq!(
        ev_in(
            bson!({"$year": {"date": "$d", "timezone": null}}),
            jan.clone()
        ),
        Some(Bson::Null)
    );
    assert_eq!(
        ev_in(
            bson!({"$dateToString": {"date": "$d", "timezone": "$nothing"}}),
            jan
        ),
        Some(Bson::Null)
    );
}

#[test]
fn date_to_parts() {
    let d = doc! {"d": date("2017-01-01T23:15:30.052Z")};
    assert_eq!(
        ev_in(bson!({"$dateToParts": {"date": "$d"}}), d.clone()),
        Some(
            bson!({"year": 2017, "month": 1, "day": 1, "hour": 23, "minute": 15, "second": 30, "millisecond": 52})
        )
    );
    // In New York it is still New Year's Day at 18:15; ISO week 52 of 2016, a Sunday.
    assert_eq!(
        ev_in(
            bson!({"$dateToParts": {"date": "$d", "timezone": "America/New_York", "iso8601": true}}),
            d.clone()
        ),
        Some(
            bson!({"isoWeekYear": 2016, "isoWeek": 52, "isoDayOfWeek": 7, "hour": 18, "minute": 15, "second": 30, "millisecond": 52})
        )
    );
    assert_eq!(
        ev_in(
            bson!({"$dateToParts": {"date": "$d", "timezone": "+01:00"}}),
            d.clone()
        ),
        Some(
            bson!({"year": 2017, "month": 1, "day": 2, "hour": 0, "minute": 15, "second": 30, "millisecond": 52})
        )
    );
    assert_eq!(
        ev(bson!({"$dateToParts": {"date": null}})),
        Some(Bson::Null)
    );
    assert_eq!(
        ev_in(
            bson!({"$dateToParts": {"date": "$d", "iso8601": null}}),
            d.clone()
        ),
        Some(Bson::Null)
    );
    let e = err_in(
        bson!({"$dateToParts": {"date": "$d", "iso8601": 1}}),
        d.clone(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (40521, "iso8601 must evaluate to a bool, found int")
    );
    // The timezone is checked before a null date.
    assert_eq!(
        err(bson!({"$dateToParts": {"date": null, "timezone": "Nowhere"}})).code,
        40485
    );
    let e = err(bson!({"$dateToParts": {"date": 1, "foo": 1}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (40520, "Unrecognized argument to $dateToParts: foo")
    );
    assert_eq!(err(bson!({"$dateToParts": {}})).code, 40522);
    assert_eq!(err(bson!({"$dateToParts": 1})).code, 40524);
}

#[test]
fn trigonometry() {
    let close = |e: Bson, want: f64| match ev(e.clone()) {
        Some(Bson::Double(d)) => assert!((d - want).abs() < 1e-12, "{e}: {d} != {want}"),
        other => panic!("{e}: {other:?}"),
    };
    close(bson!({"$sin": 0}), 0.0);
    close(bson!({"$cos": 0}), 1.0);
    close(bson!({"$tan": {"$literal": 1.0}}), 1.0f64.tan());
    close(bson!({"$asin": 1}), std::f64::consts::FRAC_PI_2);
    close(bson!({"$acos": 1}), 0.0);
    close(bson!({"$atan": 1}), std::f64::consts::FRAC_PI_4);
    close(bson!({"$atan2": [1, 1]}), std::f64::consts::FRAC_PI_4);
    close(bson!({"$sinh": 0}), 0.0);
    close(bson!({"$cosh": 0}), 1.0);
    close(bson!({"$tanh": 0}), 0.0);
    close(bson!({"$asinh": 0}), 0.0);
    close(bson!({"$acosh": 1}), 0.0);
    close(bson!({"$atanh": 0}), 0.0);
    close(bson!({"$degreesToRadians": 180}), std::f64::consts::PI);
    close(bson!({"$radiansToDegrees": std::f64::consts::PI}), 180.0);
    assert_eq!(ev(bson!({"$sin": null})), Some(Bson::Null));
    assert_eq!(ev(bson!({"$atan2": [1, null]})), Some(Bson::Null));
    assert!(matches!(ev(bson!({"$acos": f64::NAN})), Some(Bson::Double(d)) if d.is_nan()));
    // The server's wording, with its %g doubles and bounds.
    let e = err(bson!({"$asin": 2}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (50989, "cannot apply $asin to 2, value must in [-1,1]")
    );
    let e = err(bson!({"$acosh": 0.5}));
    assert_eq!(
        e.message,
        "cannot apply $acosh to 0.5, value must in [1,inf]"
    );
    let e = err(bson!({"$cos": f64::INFINITY}));
    assert_eq!(
        e.message,
        "cannot apply $cos to inf, value must in (-inf,inf)"
    );
    let e = err(bson!({"$sin": "x"}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (28765, "$sin only supports numeric types, not string")
    );
    assert_eq!(err(bson!({"$atan2": ["x", 1]})).code, 51044);
    assert_eq!(err(bson!({"$atan2": [1, "x"]})).code, 51045);
    assert_eq!(err(bson!({"$sin": [1, 2]})).code, 16020);
}

#[test]
fn bitwise_and_const() {
    assert_eq!(ev(bson!({"$bitAnd": [12, 10]})), Some(bson!(8)));
    assert_eq!(ev(bson!({"$bitOr": [12, 10]})), Some(bson!(14)));
    assert_eq!(ev(bson!({"$bitXor": [12, 10]})), Some(bson!(6)));
    // A long operand makes a long; no operand gives the identity.
    assert_eq!(
        ev(bson!({"$bitOr": [1, Bson::Int64(2)]})),
        Some(Bson::Int64(3))
    );
    assert_eq!(ev(bson!({"$bitAnd": []})), Some(bson!(-1)));
    assert_eq!(ev(bson!({"$bitAnd": 5})), Some(bson!(5)));
    assert_eq!(ev(bson!({"$bitAnd": [1, null, "x"]})), Some(Bson::Null));
    let e = err(bson!({"$bitAnd": 1.5}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (14, "$bitAnd only supports int and long operands.")
    );
    assert_eq!(ev(bson!({"$bitNot": 5})), Some(bson!(-6)));
    assert_eq!(
        ev(bson!({"$bitNot": Bson::Int64(0)})),
        Some(Bson::Int64(-1))
    );
    let e = err(bson!({"$bitNot": 1.5}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (14, "$bitNot only supports int and long, not: double.")
    );
    let e = err(bson!({"$bitNot": "abc"}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (28765, "$bitNot only supports numeric types, not string")
    );
    // $const is $literal: its argument is not evaluated.
    assert_eq!(
        ev(bson!({"$const": {"$add": [1, 2]}})),
        Some(bson!({"$add": [1, 2]}))
    );
    assert!(validate(&bson!({"$const": {"$nope": 1}})).is_ok());
}

#[test]
fn doubles_as_cpp_streams_print_them() {
    for (d, s) in [
        (2.0, "2"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (1234567.0, "1.23457e+06"),
        (123456.0, "123456"),
        (0.0001, "0.0001"),
        (0.00001234, "1.234e-05"),
        (-3.25, "-3.25"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        assert_eq!(stream_double(d), s);
    }
}

#[test]
fn date_diff() {
    let diff = |start: &str, end: &str, unit: &str, extra: Document| {
        let mut spec = doc! {"startDate": date(start), "endDate": date(end), "unit": unit};
        spec.extend(extra);
        ev(bson!({"$dateDiff": spec}))
    };
    let long = |n: i64| Some(Bson::Int64(n));
    // Boundaries crossed, not elapsed time: one millisecond over a new year is a year.
    assert_eq!(
        diff(
            "2020-12-31T23:59:59.999Z",
            "2021-01-01T00:00:00Z",
            "year",
            doc! {}
        ),
        long(1)
    );
    assert_eq!(
        diff(
            "2020-01-01T00:00:00Z",
            "2020-12-31T23:59:59Z",
            "year",
            doc! {}
        ),
        long(0)
    );
    assert_eq!(
        diff(
            "2020-02-15T00:00:00Z",
            "2021-05-01T00:00:00Z",
            "month",
            doc! {}
        ),
        long(15)
    );
    assert_eq!(
        diff(
            "2020-03-31T00:00:00Z",
            "2020-04-01T00:00:00Z",
            "quarter",
            doc! {}
        ),
        long(1)
    );
    assert_eq!(
        diff(
            "2020-03-01T00:00:00Z",
            "2021-03-01T00:00:00Z",
            "day",
            doc! {}
        ),
        long(365)
    );
    assert_eq!(
        diff(
            "2020-01-01T10:59:00Z",
            "2020-01-01T11:00:00Z",
            "hour",
            doc! {}
        ),
        long(1)
    );
    assert_eq!(
        diff(
            "2020-01-01T00:00:00Z",
            "2020-01-01T00:00:01.5Z",
            "millisecond",
            doc! {}
        ),
        long(1500)
    );
    assert_eq!(
        diff(
            "2020-01-01T00:00:10Z",
            "2020-01-01T00:00:00Z",
            "second",
            doc! {}
        ),
        long(-10)
    );
    // 2020-01-04 is a Saturday, 2020-01-05 a Sunday: a new week by default (Sunday), not
    // when weeks start on Monday.
    assert_eq!(
        diff(
            "2020-01-04T00:00:00Z",
            "2020-01-05T00:00:00Z",
            "week",
            doc! {}
        ),
        long(1)
    );
    assert_eq!(
        diff(
            "2020-01-04T00:00:00Z",
            "2020-01-05T00:00:00Z",
            "week",
            doc! {"startOfWeek": "MON"}
        ),
        long(0)
    );
    // In a zone, days are counted between its wall-clock dates: 03:00Z and 05:00Z on the
    // same UTC day are on two New York days.
    assert_eq!(
        diff(
            "2020-01-02T03:00:00Z",
            "2020-01-02T05:00:00Z",
            "day",
            doc! {"timezone": "America/New_York"}
        ),
        long(1)
    );
    // Across the start of DST, New York's wall clock moves 3 hours in 2 elapsed.
    assert_eq!(
        diff(
            "2020-03-08T05:00:00Z",
            "2020-03-08T07:00:00Z",
            "hour",
            doc! {"timezone": "America/New_York"}
        ),
        long(2)
    );
    assert_eq!(
        diff(
            "2020-01-01T00:00:00Z",
            "2020-01-02T00:00:00Z",
            "day",
            doc! {"timezone": null}
        ),
        Some(Bson::Null)
    );
    let e = err(
        bson!({"$dateDiff": {"startDate": date("2020-01-01T00:00:00Z"), "endDate": date("2020-01-01T00:00:00Z"), "unit": "fortnight"}}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            9,
            "$dateDiff parameter 'unit' value parsing failed :: caused by :: unknown time unit value: fortnight"
        )
    );
    let e = err(
        bson!({"$dateDiff": {"startDate": date("2020-01-01T00:00:00Z"), "endDate": date("2020-01-01T00:00:00Z"), "unit": 1}}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            5439013,
            "$dateDiff requires 'unit' to be a string, but got int"
        )
    );
    let e = err(
        bson!({"$dateDiff": {"startDate": "x", "endDate": date("2020-01-01T00:00:00Z"), "unit": "day"}}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            5166307,
            "$dateDiff requires 'startDate' to be a date, but got string"
        )
    );
    let e = err(
        bson!({"$dateDiff": {"startDate": date("2020-01-01T00:00:00Z"), "endDate": date("2020-01-01T00:00:00Z"), "unit": "day", "timezone": "Nowhere"}}),
    );
    assert_eq!(e.code, 40485);
    assert_eq!(
        e.message,
        "$dateDiff parameter 'timezone' value parsing failed :: caused by :: unrecognized time zone identifier: \"Nowhere\""
    );
    let e = err(
        bson!({"$dateDiff": {"startDate": 1, "endDate": 1, "unit": "week", "startOfWeek": "someday"}}),
    );
    assert_eq!(e.code, 5439016);
    assert_eq!(err(bson!({"$dateDiff": 1})).code, 5166301);
    assert_eq!(err(bson!({"$dateDiff": {"foo": 1}})).code, 5166302);
    assert_eq!(err(bson!({"$dateDiff": {}})).code, 5166303);
    assert_eq!(err(bson!({"$dateDiff": {"startDate": 1}})).code, 5166304);
    assert_eq!(
        err(bson!({"$dateDiff": {"startDate": 1, "endDate": 1}})).code,
        5166305
    );
}

#[test]
fn date_trunc() {
    let trunc = |d: &str, unit: &str, extra: Document| {
        let mut spec = doc! {"date": date(d), "unit": unit};
        spec.extend(extra);
        ev(bson!({"$dateTrunc": spec}))
    };
    let at = |s: &str| Some(date(s));
    assert_eq!(
        trunc("2021-03-20T11:30:05.123Z", "hour", doc! {}),
        at("2021-03-20T11:00:00Z")
    );
    assert_eq!(
        trunc("2021-03-20T11:30:05.123Z", "second", doc! {}),
        at("2021-03-20T11:30:05Z")
    );
    assert_eq!(
        trunc("2021-03-20T11:30:05Z", "minute", doc! {"binSize": 15}),
        at("2021-03-20T11:30:00Z")
    );
    assert_eq!(
        trunc("2021-03-20T11:30:05Z", "day", doc! {}),
        at("2021-03-20T00:00:00Z")
    );
    assert_eq!(
        trunc("2021-03-20T11:30:05Z", "month", doc! {}),
        at("2021-03-01T00:00:00Z")
    );
    assert_eq!(
        trunc("2021-08-20T11:30:05Z", "quarter", doc! {}),
        at("2021-07-01T00:00:00Z")
    );
    assert_eq!(
        trunc("2021-08-20T11:30:05Z", "year", doc! {}),
        at("2021-01-01T00:00:00Z")
    );
    // Bins count from 2000: two-year bins start in even years, 7-day bins on 2000-01-01 + 7k.
    assert_eq!(
        trunc("2021-08-20T11:30:05Z", "year", doc! {"binSize": 2}),
        at("2020-01-01T00:00:00Z")
    );
    assert_eq!(
        trunc("2000-01-07T10:00:00Z", "day", doc! {"binSize": 7}),
        at("2000-01-01T00:00:00Z")
    );
    // 2021-03-20 is a Saturday: its week starts on Sunday the 14th, or Monday the 15th.
    assert_eq!(
        trunc("2021-03-20T11:30:05Z", "week", doc! {}),
        at("2021-03-14T00:00:00Z")
    );
    assert_eq!(
        trunc(
            "2021-03-20T11:30:05Z",
            "week",
            doc! {"startOfWeek": "monday"}
        ),
        at("2021-03-15T00:00:00Z")
    );
    // In a zone, the day starts at its midnight: New York's 2021-03-20 began at 04:00Z (EDT).
    assert_eq!(
        trunc(
            "2021-03-20T11:30:05Z",
            "day",
            doc! {"timezone": "America/New_York"}
        ),
        at("2021-03-20T04:00:00Z")
    );
    assert_eq!(
        trunc("2021-03-20T11:30:05Z", "hour", doc! {"timezone": "+05:30"}),
        at("2021-03-20T11:30:00Z")
    );
    assert_eq!(
        ev(bson!({"$dateTrunc": {"date": null, "unit": "nope"}})),
        Some(Bson::Null)
    );
    let e = err(
        bson!({"$dateTrunc": {"date": date("2021-01-01T00:00:00Z"), "unit": "day", "binSize": 0}}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            5439018,
            "$dateTrunc requires 'binSize' to be greater than 0, but got value 0"
        )
    );
    let e = err(
        bson!({"$dateTrunc": {"date": date("2021-01-01T00:00:00Z"), "unit": "day", "binSize": 1.5}}),
    );
    assert_eq!(e.code, 5439017);
    let e = err(bson!({"$dateTrunc": {"date": "x", "unit": "day"}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            5166307,
            "$dateTrunc requires 'date' to be a date, but got string"
        )
    );
    assert_eq!(err(bson!({"$dateTrunc": 1})).code, 5439007);
    assert_eq!(
        err(bson!({"$dateTrunc": {"date": 1, "x": 1}})).code,
        5439008
    );
    assert_eq!(err(bson!({"$dateTrunc": {}})).code, 5439009);
    assert_eq!(err(bson!({"$dateTrunc": {"date": 1}})).code, 5439010);
}

#[test]
fn let_variable_names() {
    let e = err(bson!({"$let": {"vars": {"aB-c": 1}, "in": 1}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            16868,
            "'aB-c' contains an invalid character for a variable name: '-'"
        )
    );
    let e = err(bson!({"$let": {"vars": {"Ab": 1}, "in": 1}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            16867,
            "'Ab' starts with an invalid character for a user variable name"
        )
    );
    assert_eq!(
        ev(bson!({"$let": {"vars": {"a_B9": 2}, "in": "$$a_B9"}})),
        Some(bson!(2))
    );
}

#[test]
fn regex_find() {
    let find =
        |op: &str, input: &str, regex: &str| ev(bson!({op: {"input": input, "regex": regex}}));
    assert_eq!(
        find("$regexFind", "héllo wörld", "(w)(x)?ö"),
        Some(bson!({"match": "wö", "idx": 6, "captures": ["w", null]}))
    );
    assert_eq!(find("$regexFind", "abc", "z"), Some(Bson::Null));
    assert_eq!(
        ev(bson!({"$regexFind": {"input": null, "regex": "a"}})),
        Some(Bson::Null)
    );
    assert_eq!(
        find("$regexFindAll", "a1b22c333", "[0-9]+"),
        Some(bson!([
            {"match": "1", "idx": 1, "captures": []},
            {"match": "22", "idx": 3, "captures": []},
            {"match": "333", "idx": 6, "captures": []}
        ]))
    );
    // An empty match moves the search on by one character.
    assert_eq!(
        find("$regexFindAll", "ab", "x*"),
        Some(bson!([
            {"match": "", "idx": 0, "captures": []},
            {"match": "", "idx": 1, "captures": []}
        ]))
    );
    // Options, and the regexMatch family's errors under each operator's name.
    assert_eq!(
        ev(bson!({"$regexFindAll": {"input": "Aa", "regex": "a", "options": "i"}})),
        Some(bson!([
            {"match": "A", "idx": 0, "captures": []},
            {"match": "a", "idx": 1, "captures": []}
        ]))
    );
    assert_eq!(
        ev(bson!({"$regexFindAll": {"input": null, "regex": "a"}})),
        Some(bson!([]))
    );
    let e = err(bson!({"$regexFind": {"input": 1, "regex": "a"}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (51104, "$regexFind needs 'input' to be of type string")
    );
    assert_eq!(err(bson!({"$regexFindAll": {"regex": "a"}})).code, 31022);
    // PCRE2 (the server's library): lookaround, backreferences, possessive quantifiers,
    // Unicode properties, and capture offsets in code points.
    assert_eq!(
        find("$regexFind", "price: €42, tax 7", r"(?<=€)(\d+)"),
        Some(bson!({"match": "42", "idx": 8, "captures": ["42"]}))
    );
    assert_eq!(
        find("$regexFindAll", "abab cdcd xyxz", r"\b(\w\w)\1\b"),
        Some(bson!([
            {"match": "abab", "idx": 0, "captures": ["ab"]},
            {"match": "cdcd", "idx": 5, "captures": ["cd"]}
        ]))
    );
    assert_eq!(
        find("$regexFind", "ÉTÉ été", r"\p{Lu}+"),
        Some(bson!({"match": "ÉTÉ", "idx": 0, "captures": []}))
    );
    assert_eq!(find("$regexFind", "aaa", "a++a"), Some(Bson::Null));
    assert_eq!(
        find("$regexFind", "x1 y2", r"(?!x)\w(\d)"),
        Some(bson!({"match": "y2", "idx": 3, "captures": ["2"]}))
    );
    // Without (*UCP) \w is ASCII only, as on the server; with it, Unicode letters count.
    assert_eq!(find("$regexFind", "é", r"\w"), Some(Bson::Null));
    assert_eq!(
        find("$regexFind", "é", r"(*UCP)\w"),
        Some(bson!({"match": "é", "idx": 0, "captures": []}))
    );
    // The server's codes and messages (`extractRegexAndOptions`, `compile`, `flagsToOptions`).
    let e = err(bson!({"$regexMatch": {"input": "a", "regex": "(a"}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            51111,
            "Invalid Regex in $regexMatch: missing closing parenthesis"
        )
    );
    let e = err(bson!({"$regexFind": {"input": "a", "regex": "a", "options": "g"}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (51108, "$regexFind invalid flag in regex options: g")
    );
    let e = err(bson!({"$regexMatch": {"input": "a", "regex": "a", "options": 1}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (51106, "$regexMatch needs 'options' to be of type string")
    );
    let e = err(bson!({"$regexMatch": {"input": "a", "regex": 1}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            51105,
            "$regexMatch needs 'regex' to be of type string or regex"
        )
    );
    let re_i = Bson::RegularExpression(bson::Regex {
        pattern: "a".try_into().unwrap(),
        options: "i".try_into().unwrap(),
    });
    assert_eq!(
        err(bson!({"$regexMatch": {"input": "a", "regex": re_i.clone(), "options": "m"}})).code,
        51107
    );
    assert_eq!(
        ev(bson!({"$regexMatch": {"input": "A", "regex": re_i}})),
        Some(bson!(true))
    );
    assert_eq!(
        err(bson!({"$regexMatch": {"input": "a", "regex": "a\u{0}b"}})).code,
        51109
    );
    // The input is checked after the regex, even when the regex is null.
    assert_eq!(
        err(bson!({"$regexMatch": {"input": 1, "regex": null}})).code,
        51104
    );
    assert_eq!(
        ev(bson!({"$regexMatch": {"input": "a", "regex": null, "options": "g"}})),
        Some(bson!(false))
    );
    // A constant regex compiles when the expression is parsed: its errors need no document.
    let parse = |e: Bson| validate(&bson!({"m": e})).map_err(|e| e.code);
    assert_eq!(
        parse(bson!({"$regexMatch": {"input": "$s", "regex": "(a"}})),
        Err(51111)
    );
    assert_eq!(
        parse(bson!({"$regexFindAll": {"input": "$s", "regex": "a", "options": "q"}})),
        Err(51108)
    );
    assert_eq!(parse(bson!({"$regexFind": {"regex": "a"}})), Err(31022));
    assert_eq!(
        parse(bson!({"$regexFind": {"input": "$s", "regex": "$r"}})),
        Ok(())
    );
    assert_eq!(
        parse(bson!({"$regexFind": {"input": "$s", "regex": "a", "options": "$o"}})),
        Ok(())
    );
}

#[test]
fn median_and_percentile() {
    let d = doc! {"a": [10, 1, "x", 3, null, 2.5, f64::NAN], "n": 7};
    assert_eq!(
        ev_in(
            bson!({"$median": {"input": "$a", "method": "approximate"}}),
            d.clone()
        ),
        Some(bson!(2.5))
    );
    // Discrete ranks: ceil(n·p) - 1 of the sorted numbers [1, 2.5, 3, 10].
    assert_eq!(
        ev_in(
            bson!({"$percentile": {"input": "$a", "p": [0, 0.25, 0.5, 0.9, 1], "method": "approximate"}}),
            d.clone()
        ),
        Some(bson!([1.0, 1.0, 2.5, 10.0, 10.0]))
    );
    // A number is every percentile of itself; nothing numeric gives nulls.
    assert_eq!(
        ev_in(
            bson!({"$percentile": {"input": "$n", "p": [0.1, 0.9], "method": "approximate"}}),
            d.clone()
        ),
        Some(bson!([7.0, 7.0]))
    );
    assert_eq!(
        ev(bson!({"$percentile": {"input": [], "p": [0.5], "method": "approximate"}})),
        Some(bson!([null]))
    );
    assert_eq!(
        ev(bson!({"$median": {"input": "abc", "method": "approximate"}})),
        Some(Bson::Null)
    );
    assert_eq!(
        err(bson!({"$median": {"input": [1], "method": "discrete"}})).code,
        2
    );
    let e = err(bson!({"$median": {"input": [1]}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            40414,
            "BSON field '$median.method' is missing but a required field"
        )
    );
    let e = err(bson!({"$median": {"input": [1], "method": "approximate", "p": [0.5]}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (40415, "BSON field '$median.p' is an unknown field.")
    );
    assert_eq!(err(bson!({"$median": 1})).code, 7436201);
    assert_eq!(err(bson!({"$percentile": 1})).code, 7436200);
    assert_eq!(
        err(bson!({"$percentile": {"input": [1], "p": [], "method": "approximate"}})).code,
        7750301
    );
    assert_eq!(
        err(bson!({"$percentile": {"input": [1], "p": ["a"], "method": "approximate"}})).code,
        7750302
    );
    assert_eq!(
        err(bson!({"$percentile": {"input": [1], "p": [1.5], "method": "approximate"}})).code,
        7750303
    );
}

#[test]
fn sums_are_compensated() {
    let tenths: Vec<Bson> = (0..10).map(|_| Bson::Double(0.1)).collect();
    assert_eq!(
        ev(bson!({"$sum": {"$literal": tenths.clone()}})),
        Some(bson!(1.0))
    );
    assert_eq!(ev(bson!({"$avg": {"$literal": tenths}})), Some(bson!(0.1)));
    // Integers stay exact and integral; a double makes the result a double.
    assert_eq!(ev(bson!({"$sum": [1, 2, 3]})), Some(bson!(6)));
    assert_eq!(ev(bson!({"$sum": [1, 0.5]})), Some(bson!(1.5)));
    assert_eq!(
        ev(bson!({"$sum": [1e308, 1e308]})),
        Some(bson!(f64::INFINITY))
    );
}

#[test]
fn round_keeps_negative_zero() {
    let is_neg_zero =
        |v: Option<Bson>| matches!(v, Some(Bson::Double(d)) if d == 0.0 && d.is_sign_negative());
    assert!(is_neg_zero(ev(bson!({"$round": [-0.5]}))));
    assert!(is_neg_zero(ev(bson!({"$round": [-0.0]}))));
    assert!(is_neg_zero(ev(bson!({"$trunc": [-0.7]}))));
    assert_eq!(ev(bson!({"$round": [2.5]})), Some(bson!(2.0)));
    assert_eq!(ev(bson!({"$round": [-2.5]})), Some(bson!(-2.0)));
    assert_eq!(ev(bson!({"$round": [3.5]})), Some(bson!(4.0)));
    assert_eq!(ev(bson!({"$round": [1.25, 1]})), Some(bson!(1.2)));
}

#[test]
fn doubles_as_strings() {
    // $toString: fmt's shortest form, exponent below 1e-4 and from 1e16.
    for (d, s) in [
        (9999999999999998.0, "9999999999999998"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000"),
        (0.1, "0.1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e300, "1.5e+300"),
        (-2.5e-7, "-2.5e-07"),
        (1.23456789, "1.23456789"),
    ] {
        assert_eq!(ev(bson!({"$toString": d})), Some(bson!(s)), "{d}");
    }
    assert_eq!(ev(bson!({"$toString": f64::NAN})), Some(bson!("NaN")));
    assert_eq!(ev(bson!({"$toString": -0.0})), Some(bson!("-0")));
    // $toLower and $substr coerce with %g: six significant digits, `nan`.
    assert_eq!(ev(bson!({"$toLower": 1.23456789})), Some(bson!("1.23457")));
    assert_eq!(ev(bson!({"$toUpper": f64::NAN})), Some(bson!("NAN")));
    assert_eq!(ev(bson!({"$toLower": 1e16})), Some(bson!("1e+16")));
    assert_eq!(
        ev(bson!({"$substrBytes": [1234567.0, 0, 20]})),
        Some(bson!("1.23457e+06"))
    );
}

#[test]
fn date_from_iso_parts() {
    // ISO week 1 of 2017 starts on Monday 2017-01-02; week 52 of 2016 ends on Sunday the 1st.
    assert_eq!(
        ev(bson!({"$dateFromParts": {"isoWeekYear": 2017, "isoWeek": 1, "isoDayOfWeek": 1}})),
        Some(date("2017-01-02T00:00:00Z"))
    );
    assert_eq!(
        ev(
            bson!({"$dateFromParts": {"isoWeekYear": 2016, "isoWeek": 52, "isoDayOfWeek": 7, "hour": 5}})
        ),
        Some(date("2017-01-01T05:00:00Z"))
    );
    // 2020-W53-5 is 2021-01-01; the defaults are week 1, Monday.
    assert_eq!(
        ev(bson!({"$dateFromParts": {"isoWeekYear": 2020, "isoWeek": 53, "isoDayOfWeek": 5}})),
        Some(date("2021-01-01T00:00:00Z"))
    );
    assert_eq!(
        ev(bson!({"$dateFromParts": {"isoWeekYear": 2021}})),
        Some(date("2021-01-04T00:00:00Z"))
    );
    let e = err(bson!({"$dateFromParts": {"year": 2017, "isoWeek": 1}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            40489,
            "$dateFromParts does not allow mixing natural dates with ISO dates"
        )
    );
    let e = err(bson!({"$dateFromParts": {"isoWeekYear": 2017, "month": 1}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            40525,
            "$dateFromParts does not allow mixing ISO dates with natural dates"
        )
    );
    assert_eq!(
        err(bson!({"$dateFromParts": {"isoWeekYear": 0}})).code,
        31095
    );
    let e = err(bson!({"$dateFromParts": {"year": 2017, "foo": 1}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (40518, "Unrecognized argument to $dateFromParts: foo")
    );
    assert_eq!(err(bson!({"$dateFromParts": 1})).code, 40519);
}

#[test]
fn more_operators() {
    let d = doc! {"a": [3, 1, null, 2], "t": bson::Timestamp { time: 5, increment: 7 }};
    assert_eq!(
        ev_in(bson!({"$firstN": {"input": "$a", "n": 2}}), d.clone()),
        Some(bson!([3, 1]))
    );
    assert_eq!(
        ev_in(bson!({"$lastN": {"input": "$a", "n": 2}}), d.clone()),
        Some(bson!([null, 2]))
    );
    assert_eq!(
        ev_in(bson!({"$maxN": {"input": "$a", "n": 2}}), d.clone()),
        Some(bson!([3, 2]))
    );
    assert_eq!(
        ev_in(bson!({"$minN": {"input": "$a", "n": 9}}), d.clone()),
        Some(bson!([1, 2, 3]))
    );
    assert_eq!(
        ev_in(
            bson!({"$sortArray": {"input": "$a", "sortBy": -1}}),
            d.clone()
        ),
        Some(bson!([3, 2, 1, null]))
    );
    assert_eq!(
        ev(bson!({"$sortArray": {"input": [{"x": 2}, {"x": 1}], "sortBy": {"x": 1}}})),
        Some(bson!([{"x": 1}, {"x": 2}]))
    );
    assert_eq!(
        ev_in(bson!({"$tsSecond": "$t"}), d.clone()),
        Some(Bson::Int64(5))
    );
    assert_eq!(
        ev_in(bson!({"$tsIncrement": "$t"}), d.clone()),
        Some(Bson::Int64(7))
    );
    // {a: 1} is 12 bytes: length, one int32 element, terminator.
    assert_eq!(
        ev(bson!({"$bsonSize": {"$literal": {"a": 1}}})),
        Some(bson!(12))
    );
    assert_eq!(ev(bson!({"$bsonSize": "$missing"})), Some(Bson::Null));
    assert_eq!(ev(bson!({"$binarySize": "héllo"})), Some(bson!(6)));
    assert_eq!(
        ev(bson!({"$replaceOne": {"input": "a.b.c", "find": ".", "replacement": "-"}})),
        Some(bson!("a-b.c"))
    );
    assert_eq!(
        ev(bson!({"$replaceAll": {"input": "a.b.c", "find": ".", "replacement": "-"}})),
        Some(bson!("a-b-c"))
    );
    assert_eq!(
        ev(bson!({"$replaceAll": {"input": null, "find": ".", "replacement": "-"}})),
        Some(Bson::Null)
    );
    let jan31 = bson::DateTime::parse_rfc3339_str("2021-01-31T10:00:00Z").unwrap();
    assert_eq!(
        ev(bson!({"$dateAdd": {"startDate": jan31, "unit": "month", "amount": 1}})),
        Some(Bson::DateTime(
            bson::DateTime::parse_rfc3339_str("2021-02-28T10:00:00Z").unwrap()
        ))
    );
    assert_eq!(
        ev(bson!({"$dateSubtract": {"startDate": jan31, "unit": "hour", "amount": 10}})),
        Some(Bson::DateTime(
            bson::DateTime::parse_rfc3339_str("2021-01-31T00:00:00Z").unwrap()
        ))
    );
    assert_eq!(
        ev(bson!({"$dateFromParts": {"year": 2020, "month": 13, "day": 1}})),
        Some(Bson::DateTime(
            bson::DateTime::parse_rfc3339_str("2021-01-01T00:00:00Z").unwrap()
        ))
    );
    assert_eq!(
        ev(bson!({"$dateFromString": {"dateString": "2021-01-31T10:00:00Z"}})),
        Some(Bson::DateTime(jan31))
    );
    assert_eq!(
        ev(bson!({"$dateFromString": {"dateString": "garbage", "onError": "bad"}})),
        Some(bson!("bad"))
    );
}

#[test]
fn rand_is_in_unit_interval() {
    for _ in 0..20 {
        let Some(Bson::Double(x)) = ev(bson!({"$rand": {}})) else {
            panic!("not a double");
        };
        assert!((0.0..1.0).contains(&x));
    }
}

#[test]
fn decimal_operators_at_decimal_precision() {
    // Beyond 128-bit intermediate coefficients: still one rounding, half to even.
    assert_eq!(
        ev(
            bson!({"$multiply": [dec("9999999999999999999999999999999999"), dec("9999999999999999999999999999999999")]})
        ),
        Some(dec("9.999999999999999999999999999999998E+67"))
    );
    assert_eq!(
        ev(bson!({"$add": [dec("1E+40"), dec("1E-40")]})),
        Some(dec("1.000000000000000000000000000000000E+40"))
    );
    // -0 - 0 is -0; $add starts from the integer 0, as the server's, so its sums of -0 are +0.
    assert_eq!(
        ev(bson!({"$subtract": [dec("-0"), dec("0")]})),
        Some(dec("-0"))
    );
    assert_eq!(ev(bson!({"$add": [dec("-0"), dec("-0")]})), Some(dec("0")));
    assert_eq!(
        ev(bson!({"$subtract": [dec("1.5"), dec("1.5")]})),
        Some(dec("0.0"))
    );
    assert_eq!(
        ev(bson!({"$add": [dec("Infinity"), dec("-Infinity")]})),
        Some(dec("NaN"))
    );
    assert_eq!(ev(bson!({"$multiply": [dec("NaN"), 2]})), Some(dec("NaN")));
    // $sqrt: IEEE square root at 34 digits; exact roots at the ideal exponent; -0 stays -0.
    assert_eq!(
        ev(bson!({"$sqrt": dec("2")})),
        Some(dec("1.414213562373095048801688724209698"))
    );
    assert_eq!(ev(bson!({"$sqrt": dec("0.25")})), Some(dec("0.5")));
    assert_eq!(ev(bson!({"$sqrt": dec("-0")})), Some(dec("-0")));
    assert_eq!(err(bson!({"$sqrt": dec("-1E-6176")})).code, 28714);
    // $abs, $ceil, $floor keep decimal digits.
    assert_eq!(
        ev(bson!({"$abs": dec("-12345678901234567890.123456789")})),
        Some(dec("12345678901234567890.123456789"))
    );
    assert_eq!(ev(bson!({"$ceil": dec("-1.5")})), Some(dec("-1")));
    assert_eq!(ev(bson!({"$floor": dec("-1.5")})), Some(dec("-2")));
    assert_eq!(ev(bson!({"$floor": dec("1E+3")})), Some(dec("1E+3")));
    // $round / $trunc quantize to exponent -place (the server pads: 1.298 to 4 places).
    assert_eq!(ev(bson!({"$round": [dec("1.298"), 2]})), Some(dec("1.30")));
    assert_eq!(
        ev(bson!({"$round": [dec("1.298"), 4]})),
        Some(dec("1.2980"))
    );
    assert_eq!(ev(bson!({"$round": [dec("2.5"), 0]})), Some(dec("2")));
    assert_eq!(ev(bson!({"$round": [dec("-0.4"), 0]})), Some(dec("-0")));
    assert_eq!(
        ev(bson!({"$round": [dec("1234.5678"), -2]})),
        Some(dec("1.2E+3"))
    );
    assert_eq!(ev(bson!({"$trunc": [dec("1.298"), 2]})), Some(dec("1.29")));
    assert_eq!(
        ev(bson!({"$trunc": [dec("-1.99999999999999999999999999999999"), 0]})),
        Some(dec("-1"))
    );
    // $sum / $avg of decimals add exactly.
    assert_eq!(
        ev(bson!({"$sum": [dec("0.1"), dec("0.2"), dec("0.3")]})),
        Some(dec("0.6"))
    );
    assert_eq!(
        ev(bson!({"$avg": [dec("1"), dec("2"), 4]})),
        Some(dec("2.333333333333333333333333333333333"))
    );
}

#[test]
fn decimal_conversions_are_exact() {
    // Double to decimal: the server's 15 significant digits, trailing zeros kept.
    assert_eq!(
        ev(bson!({"$toDecimal": 2.5})),
        Some(dec("2.50000000000000"))
    );
    assert_eq!(
        ev(bson!({"$toDecimal": 1e20})),
        Some(dec("1.00000000000000E+20"))
    );
    assert_eq!(ev(bson!({"$toDecimal": -0.0})), Some(dec("-0")));
    // Decimal to long truncates at decimal precision over the whole range.
    assert_eq!(
        ev(bson!({"$toLong": dec("9223372036854775807.9")})),
        Some(Bson::Int64(i64::MAX))
    );
    assert_eq!(
        ev(bson!({"$toLong": dec("-9223372036854775808")})),
        Some(Bson::Int64(i64::MIN))
    );
    let e = err(bson!({"$toLong": dec("9223372036854775808")}));
    assert_eq!(e.code, 241);
    assert!(
        e.message.contains("Conversion would overflow target type"),
        "{}",
        e.message
    );
    assert_eq!(
        ev(bson!({"$toInt": dec("-2147483648.7")})),
        Some(Bson::Int32(i32::MIN))
    );
    assert_eq!(err(bson!({"$toInt": dec("2147483648")})).code, 241);
    let e = err(bson!({"$toInt": dec("NaN")}));
    assert_eq!(e.code, 241);
    assert!(e.message.contains("NaN"), "{}", e.message);
}

#[test]
fn sigmoid_and_to_uuid() {
    let Some(Bson::Double(s)) = ev(bson!({"$sigmoid": 1})) else {
        panic!("$sigmoid of an int is a double")
    };
    assert!((s - 0.7310585786300049).abs() < 1e-15);
    assert_eq!(ev(bson!({"$sigmoid": 0.0})), Some(Bson::Double(0.5)));
    assert_eq!(ev(bson!({"$sigmoid": "$missing"})), Some(Bson::Null));
    assert_eq!(
        ev(bson!({"$sigmoid": {"input": null, "onNull": 7}})),
        Some(bson!(7))
    );
    assert!(matches!(
        ev(bson!({"$sigmoid": dec("0")})),
        Some(Bson::Decimal128(_))
    ));
    assert_eq!(err(bson!({"$sigmoid": "x"})).code, 14);

    let Some(Bson::Binary(b)) = ev(bson!({"$toUUID": "123e4567-e89b-12d3-a456-426614174000"}))
    else {
        panic!("$toUUID gives binData")
    };
    assert_eq!(b.subtype, bson::spec::BinarySubtype::Uuid);
    assert_eq!(b.bytes[0], 0x12);
    assert_eq!(ev(bson!({"$toUUID": null})), Some(Bson::Null));
    assert_eq!(err(bson!({"$toUUID": "not-a-uuid"})).code, 241);
    assert_eq!(err(bson!({"$toUUID": 5})).code, 241);
}

#[test]
fn eight_x_argument_codes() {
    // $replaceOne/$replaceAll: parse codes, then one type code per argument.
    assert_eq!(err(bson!({"$replaceAll": "x"})).code, 51751);
    assert_eq!(
        err(bson!({"$replaceAll": {"input": "a", "find": "a", "replacement": "b", "x": 1}})).code,
        51750
    );
    assert_eq!(
        err(bson!({"$replaceAll": {"find": "a", "replacement": "b"}})).code,
        51749
    );
    assert_eq!(
        err(bson!({"$replaceAll": {"input": "a", "replacement": "b"}})).code,
        51748
    );
    assert_eq!(
        err(bson!({"$replaceOne": {"input": "a", "find": "a"}})).code,
        51747
    );
    assert_eq!(
        err(bson!({"$replaceAll": {"input": 1, "find": "a", "replacement": "b"}})).code,
        10503904
    );
    assert_eq!(
        err(bson!({"$replaceAll": {"input": "a", "find": 1, "replacement": "b"}})).code,
        10503901
    );
    assert_eq!(
        err(bson!({"$replaceAll": {"input": "a", "find": "a", "replacement": 1}})).code,
        10503902
    );
    // $indexOfCP has its own codes; $indexOfBytes keeps 40091/40092.
    assert_eq!(err(bson!({"$indexOfCP": [1, "a"]})).code, 40093);
    assert_eq!(err(bson!({"$indexOfCP": ["a", 1]})).code, 40094);
    assert_eq!(err(bson!({"$indexOfBytes": [1, "a"]})).code, 40091);
    assert_eq!(err(bson!({"$indexOfBytes": ["a", 1]})).code, 40092);
    assert_eq!(err(bson!({"$split": ["a", 1]})).code, 10503900);
    // n of $firstN & co.: fractional or non-positive is 7548606, a non-number 5787902.
    for n in [bson!(0), bson!(-1), bson!(2.5), dec("1.5")] {
        assert_eq!(
            err(bson!({"$firstN": {"input": [1, 2], "n": n.clone()}})).code,
            7548606,
            "{n}"
        );
    }
    assert_eq!(
        err(bson!({"$lastN": {"input": [1, 2], "n": "x"}})).code,
        5787902
    );
    assert_eq!(err(bson!({"$maxN": {"input": [1, 2]}})).code, 5787906);
}

/// The server's own test vectors for `BSONElementHasher::hash64` (`db/hasher_test.cpp`) and
/// the manual's `$toHashedIndexKey` example.
#[test]
fn to_hashed_index_key_matches_the_servers_hash64() {
    use bson::{Binary, JavaScriptCodeWithScope, Regex, spec::BinarySubtype};
    let h = |v: Bson| match ev(bson!({"$toHashedIndexKey": {"$literal": v}})) {
        Some(Bson::Int64(i)) => i,
        other => panic!("not a long: {other:?}"),
    };
    assert_eq!(h(bson!("string to hash")), 763543691661428748);
    for v in [bson!(42), bson!(42.123), bson!(42i64), dec("42.4")] {
        assert_eq!(h(v), -944302157085130861);
    }
    for v in [bson!(0), bson!(0.456), Bson::Double(f64::NAN), dec("NaN")] {
        assert_eq!(h(v), 4854801880128277513);
    }
    assert_eq!(h(bson!(1.987)), 5902408780260971510);
    assert_eq!(h(bson!(-1.789)), 1140205862565771219);
    assert_eq!(h(bson!(i32::MIN)), 6165898260261354870);
    assert_eq!(h(bson!(i32::MAX as f64)), 1143184177162245883);
    for v in [
        bson!(f64::MAX),
        bson!(i64::MAX),
        dec("Infinity"),
        dec("1E+30"),
    ] {
        assert_eq!(h(v), 921523596458303250);
    }
    for v in [
        bson!(-f64::MAX),
        bson!(i64::MIN),
        bson!(9223372036854775808.0),
    ] {
        assert_eq!(h(v), 4532067210535695462);
    }
    // Decimals round half to even before hashing (1.5 and 2.5 are both 2).
    assert_eq!(h(dec("1.5")), h(bson!(2)));
    assert_eq!(h(dec("2.5")), h(bson!(2)));
    assert_eq!(h(Bson::MinKey), 7961148599568647290);
    assert_eq!(h(Bson::MaxKey), 5504842513779440750);
    assert_eq!(h(Bson::Undefined), 40158834000849533);
    assert_eq!(h(bson!("abc")), 8478485326885698097);
    assert_eq!(h(Bson::Symbol("abc".into())), 8478485326885698097);
    assert_eq!(h(bson!("")), 2049396243249673340);
    assert_eq!(h(bson!({"a": "abc", "b": 123i64})), 4771603801758380216);
    assert_eq!(h(bson!({})), 7980500913326740417);
    assert_eq!(h(bson!(["bar", "baz", "qux"])), -2938911267422831539);
    assert_eq!(h(bson!([])), 8849948234993459283);
    let bin = |subtype, bytes: &[u8]| {
        Bson::Binary(Binary {
            subtype,
            bytes: bytes.to_vec(),
        })
    };
    assert_eq!(
        h(bin(BinarySubtype::Generic, &[0, 1, 2, 3, 4, 6])),
        7252465090394235301
    );
    assert_eq!(
        h(bin(BinarySubtype::UserDefined(128), &[0, 1, 2, 3, 4, 6])),
        5736670452907618262
    );
    let uuid: Vec<u8> = (0..16).collect();
    assert_eq!(h(bin(BinarySubtype::Uuid, &uuid)), 6084661258071355978);
    let oid = |s: &str| Bson::ObjectId(s.parse().unwrap());
    assert_eq!(h(oid("010203040506070809101112")), -5588663249627035708);
    assert_eq!(h(oid("000000000000000000000000")), -4293118519463489418);
    assert_eq!(h(bson!(true)), 6405873908747105701);
    assert_eq!(h(bson!(false)), 6289544573401934092);
    let date = |ms| Bson::DateTime(bson::DateTime::from_millis(ms));
    assert_eq!(h(date(0x5566778811223344)), 4476222765095560467);
    assert_eq!(h(date(0)), -1178696894582842035);
    let re = |p: &str, o: &str| {
        Bson::RegularExpression(Regex {
            pattern: p.try_into().unwrap(),
            options: o.try_into().unwrap(),
        })
    };
    assert_eq!(h(re("mongodb", "")), -7275792090268217043);
    assert_eq!(h(re(".*", "i")), 7095855029187981886);
    assert_eq!(
        h(Bson::JavaScriptCode("func f() { return 1; }".into())),
        6861638109178014270
    );
    assert_eq!(
        h(Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
            code: "func f() { return 1; }".into(),
            scope: doc! {"c": true},
        })),
        501342939894575968
    );
    // A missing input hashes as null; the argument is an expression.
    assert_eq!(
        ev(bson!({"$toHashedIndexKey": "$nope"})),
        ev(bson!({"$toHashedIndexKey": null}))
    );
    assert_eq!(
        ev_in(bson!({"$toHashedIndexKey": "$a"}), doc! {"a": 42}),
        Some(Bson::Int64(-944302157085130861))
    );
}

#[test]
fn meta_names_and_unavailable_metadata() {
    // Parse-time checks, as ExpressionMeta::parse.
    assert_eq!(validate(&bson!({"$meta": 1})).unwrap_err().code, 17307);
    let e = validate(&bson!({"$meta": "nope"})).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (17308, "Unsupported argument to $meta: nope")
    );
    assert!(validate(&bson!({"$meta": "searchHighlights"})).is_ok());
    // Metadata only a stage produces is refused when absent (DepsTracker, 40218).
    let e = err(bson!({"$meta": "textScore"}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            40218,
            "query requires text score metadata, but it is not available"
        )
    );
    assert_eq!(
        err(bson!({"$meta": "geoNearDistance"})).message,
        "query requires $geoNear distance metadata, but it is not available"
    );
    assert_eq!(
        err(bson!({"$meta": "searchScore"})).message,
        "query requires $search score metadata, but it is not available"
    );
    // Other metadata is missing without Atlas Search or an index scan.
    for name in [
        "searchHighlights",
        "recordId",
        "indexKey",
        "sortKey",
        "randVal",
    ] {
        assert_eq!(ev(bson!({"$meta": name})), None, "{name}");
    }
    // Available metadata is read from the document's metadata, in nested expressions too;
    // with metadata given, what is absent is missing (a pipeline checked it when parsed).
    let meta = DocMeta::text(Some(2.5));
    let with = |e: Bson| evaluate_with_meta(&e, &Document::new(), &Document::new(), Some(&meta));
    assert_eq!(
        with(bson!({"$multiply": [{"$meta": "textScore"}, 2]})).unwrap(),
        Some(bson!(5.0))
    );
    assert_eq!(with(bson!({"$meta": "geoNearDistance"})).unwrap(), None);
    // A user variable named like the metadata is not metadata.
    let e = evaluate(
        &bson!({"$meta": "textScore"}),
        &Document::new(),
        &doc! {"$meta": {"textScore": 2.5}},
    )
    .unwrap_err();
    assert_eq!(e.code, 40218);
}

/// 8.0's BinData `$convert` (jstests/aggregation/expressions/convert_bindata.js): `to` as
/// `{type, subtype}`, `format` both ways, the conversions it refuses (241, which `onError`
/// catches) and the targets it cannot parse (4341107, 9).
#[test]
fn convert_bindata_formats_and_targets() {
    let bin = |subtype: u8, b64: &str| {
        use base64::Engine;
        Bson::Binary(bson::Binary {
            subtype: subtype.into(),
            bytes: base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        })
    };
    let conv = |input: Bson, to: Bson, format: Option<&str>| {
        let mut spec = doc! {"input": {"$literal": input}, "to": to};
        if let Some(f) = format {
            spec.insert("format", f);
        }
        evaluate(
            &bson!({"$convert": spec}),
            &Document::new(),
            &Document::new(),
        )
    };
    let uuid_bin = bin(4, "hn3uUsMxSE6S0cVkebjmfg==");
    let gen_bin = bin(0, "hn3uUsMxSE6S0cVkebjmfg==");
    let ok =
        |input: Bson, to: Bson, format: Option<&str>| conv(input, to, format).unwrap().unwrap();
    let to_bin = |subtype: i32| bson!({"type": "binData", "subtype": subtype});
    assert_eq!(ok(bson!(1.9), bson!({"type": "double"}), None), bson!(1.9));
    assert_eq!(
        ok(bson!(1.9), bson!({"type": "string"}), None),
        bson!("1.9")
    );
    assert_eq!(
        ok(bson!(1.9), bson!({"type": "long"}), None),
        Bson::Int64(1)
    );
    assert_eq!(
        ok(
            bson!("867dee52-c331-484e-92d1-c56479b8e67e"),
            to_bin(4),
            Some("uuid")
        ),
        uuid_bin
    );
    assert_eq!(
        ok(bson!("hn3uUsMxSE6S0cVkebjmfg=="), to_bin(0), Some("base64")),
        gen_bin
    );
    assert_eq!(
        ok(
            bson!("hn3uUsMxSE6S0cVkebjmfg"),
            to_bin(0),
            Some("base64url")
        ),
        gen_bin
    );
    assert_eq!(
        ok(
            bson!("867DEE52C331484E92D1C56479B8E67E"),
            to_bin(0),
            Some("hex")
        ),
        gen_bin
    );
    assert_eq!(
        ok(bson!("🙂😎"), to_bin(0), Some("utf8")),
        bin(0, "8J+ZgvCfmI4=")
    );
    let s = |v: &str| Bson::String(v.to_string());
    assert_eq!(
        ok(uuid_bin.clone(), s("string"), Some("uuid")),
        s("867dee52-c331-484e-92d1-c56479b8e67e")
    );
    assert_eq!(
        ok(uuid_bin.clone(), s("string"), Some("auto")),
        s("867dee52-c331-484e-92d1-c56479b8e67e")
    );
    assert_eq!(
        ok(gen_bin.clone(), s("string"), Some("auto")),
        s("hn3uUsMxSE6S0cVkebjmfg==")
    );
    assert_eq!(
        ok(uuid_bin.clone(), s("string"), Some("base64")),
        s("hn3uUsMxSE6S0cVkebjmfg==")
    );
    assert_eq!(
        ok(gen_bin.clone(), s("string"), Some("base64url")),
        s("hn3uUsMxSE6S0cVkebjmfg")
    );
    assert_eq!(
        ok(gen_bin.clone(), s("string"), Some("hex")),
        s("867DEE52C331484E92D1C56479B8E67E")
    );
    assert_eq!(
        ok(bin(0, "8J+ZgvCfmI4="), s("string"), Some("utf8")),
        s("🙂😎")
    );
    assert_eq!(ok(uuid_bin.clone(), to_bin(4), None), uuid_bin);
    assert_eq!(ok(gen_bin.clone(), s("binData"), None), gen_bin);
    // $toString uses the 'auto' format.
    assert_eq!(
        ev(bson!({"$toString": {"$literal": uuid_bin.clone()}})),
        Some(s("867dee52-c331-484e-92d1-c56479b8e67e"))
    );
    // Illegal conversions: ConversionFailure, caught by onError.
    let oid = Bson::ObjectId("0123456789abcdef01234567".parse().unwrap());
    let illegal: Vec<(Bson, Bson, Option<&str>)> = vec![
        (oid.clone(), to_bin(4), None),
        (oid, to_bin(0), None),
        (
            s("867dee52-c331-484e-92d1-c56479b8e67e"),
            to_bin(0),
            Some("uuid"),
        ),
        (s("867dee--52-c331-484e-"), to_bin(4), Some("uuid")),
        (s("867dee--52-c331-484e-"), to_bin(0), Some("base64")),
        (s("867dee--52-c331-484e-"), to_bin(0), Some("base64url")),
        (s("867dee--52-c331-484e-zx"), to_bin(0), Some("hex")),
        (
            s("867dee52-c331-484e-92d1-c56479b8e67e"),
            to_bin(0),
            Some("auto"),
        ),
        (s("hn3uUsMxSE6S0cVkebjmfg=="), to_bin(4), Some("base64")),
        (s("hn3uUsMxSE6S0cVkebjmfg=="), to_bin(4), Some("auto")),
        (uuid_bin.clone(), to_bin(0), None),
        (gen_bin.clone(), to_bin(4), None),
        (uuid_bin, to_bin(255), None),
        (bin(255, "hn3uUsMxSE6S0cVkebjmfg=="), to_bin(0), None),
        (bson!(1), s("object"), None),
    ];
    for (input, to, format) in illegal {
        let e = conv(input.clone(), to.clone(), format).unwrap_err();
        assert_eq!(e.code, 241, "{input} -> {to}: {}", e.message);
        let mut spec = doc! {"input": {"$literal": input}, "to": to, "onError": "ERROR"};
        if let Some(f) = format {
            spec.insert("format", f);
        }
        assert_eq!(ev(bson!({"$convert": spec})), Some(s("ERROR")));
    }
    // Invalid targets fail even with onError.
    for (to, code) in [
        (to_bin(-1), 4341107),
        (to_bin(1000), 4341107),
        (to_bin(256), 4341107),
        (to_bin(127), 4341107),
        (bson!({"type": -2}), 9),
        (bson!(-2), 9),
        (bson!(true), 9),
        (bson!("bogus"), 2),
    ] {
        let spec = doc! {"input": "hn3uUsMxSE6S0cVkebjmfg==", "to": to.clone(),
        "format": "base64", "onError": "NULL"};
        assert_eq!(err(bson!({"$convert": spec})).code, code, "{to}");
    }
}

/// 8.1's numbers to and from BinData, little-endian unless `byteOrder: "big"`.
#[test]
fn convert_numbers_and_bindata_bytes() {
    let bin = |bytes: &[u8]| {
        Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: bytes.to_vec(),
        })
    };
    let conv = |input: Bson, to: &str, order: Option<&str>| {
        let mut spec = doc! {"input": {"$literal": input}, "to": to};
        if let Some(o) = order {
            spec.insert("byteOrder", o);
        }
        evaluate(
            &bson!({"$convert": spec}),
            &Document::new(),
            &Document::new(),
        )
    };
    assert_eq!(
        conv(bson!(1), "binData", None).unwrap(),
        Some(bin(&[1, 0, 0, 0]))
    );
    assert_eq!(
        conv(bson!(1i64), "binData", Some("big")).unwrap(),
        Some(bin(&[0, 0, 0, 0, 0, 0, 0, 1]))
    );
    assert_eq!(
        conv(bson!(1.0), "binData", Some("big")).unwrap(),
        Some(bin(&1.0f64.to_be_bytes()))
    );
    assert_eq!(conv(bin(&[0xff]), "int", None).unwrap(), Some(bson!(-1)));
    assert_eq!(
        conv(bin(&[0, 1]), "int", Some("big")).unwrap(),
        Some(bson!(1))
    );
    assert_eq!(
        conv(bin(&[1, 0, 0, 0, 0, 0, 0, 0]), "long", None).unwrap(),
        Some(Bson::Int64(1))
    );
    assert_eq!(
        conv(bin(&1.5f32.to_le_bytes()), "double", None).unwrap(),
        Some(bson!(1.5))
    );
    assert_eq!(conv(bin(&[1, 2, 3]), "int", None).unwrap_err().code, 241);
    assert_eq!(
        conv(bin(&[1, 0, 0, 0, 0, 0, 0, 0]), "int", None)
            .unwrap_err()
            .code,
        241
    );
    // byteOrder and format argument errors are not conversion failures.
    let e = conv(bson!(1), "binData", Some("middle")).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (9130002, "Invalid 'byteOrder' argument for $convert: middle")
    );
    let e = conv(bin(&[1, 2, 3]), "long", None).unwrap_err();
    assert_eq!(
        e.message,
        "Failed to convert 'BinData(0, 010203)' to number in $convert because of invalid length: 3"
    );
    let e = err(bson!({"$convert": {"input": 1, "to": "binData", "format": 1, "onError": 0}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            4341114,
            "$convert requires that 'format' be a string, found: int with value 1"
        )
    );
    assert_eq!(
        err(bson!({"$convert": {"input": 1, "to": "binData", "format": "b64", "onError": 0}})).code,
        4341125
    );
    // BinData <-> string without a format (4341115, the server's spelling).
    let e = err(bson!({"$convert": {"input": "abc", "to": "binData", "onError": 0}}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            4341115,
            "Format must be speficied when converting from 'string' to 'binData'"
        )
    );
    // The target is parsed before a null input takes onNull.
    assert_eq!(
        err(bson!({"$convert": {"input": null, "to": -2, "onNull": 0}})).code,
        9
    );
}
