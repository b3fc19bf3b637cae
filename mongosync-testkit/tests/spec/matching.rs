//! The unified test format's value matching rules ("Evaluating Matches" in the spec).

use bson::{Bson, Document};

/// Looks up entities for `$$matchesEntity` / `$$sessionLsid`: returns the entity's value
/// (for a session: its lsid document).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<Bson>;

/// No entities (for results where operators that need them cannot appear).
pub fn no_entities(_: &str) -> Option<Bson> {
    None
}

/// Matches `actual` (None = the key is absent) against `expected`. `root` allows extra keys in
/// a document (only root documents may have them).
pub fn matches(
    actual: Option<&Bson>,
    expected: &Bson,
    root: bool,
    ents: Lookup,
) -> Result<(), String> {
    if let Bson::Document(e) = expected
        && e.len() == 1
    {
        let (k, v) = e.iter().next().expect("one key");
        if k.starts_with("$$") {
            return special(actual, k, v, root, ents);
        }
    }
    let Some(actual) = actual else {
        return Err(format!("expected {expected}, found nothing"));
    };
    match (actual, expected) {
        (Bson::Document(a), Bson::Document(e)) => match_doc(a, e, root, ents),
        (Bson::Array(a), Bson::Array(e)) => {
            if a.len() != e.len() {
                return Err(format!(
                    "array length {} != expected {} (actual {})",
                    a.len(),
                    e.len(),
                    short(&Bson::Array(a.clone()))
                ));
            }
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                matches(Some(x), y, false, ents).map_err(|m| format!("[{i}]: {m}"))?;
            }
            Ok(())
        }
        _ => {
            if let (Some(x), Some(y)) = (num(actual), num(expected)) {
                if x == y {
                    return Ok(());
                }
                return Err(format!("{actual} != expected {expected}"));
            }
            if actual == expected {
                Ok(())
            } else {
                Err(format!("{} != expected {}", short(actual), short(expected)))
            }
        }
    }
}

/// Matches a document; `root` allows extra keys in `actual`.
pub fn match_doc(a: &Document, e: &Document, root: bool, ents: Lookup) -> Result<(), String> {
    for (k, ev) in e {
        matches(a.get(k), ev, false, ents).map_err(|m| format!("{k}: {m}"))?;
    }
    if !root {
        for k in a.keys() {
            if !e.contains_key(k) {
                return Err(format!(
                    "unexpected key {k:?} in {}",
                    short(&Bson::Document(a.clone()))
                ));
            }
        }
    }
    Ok(())
}

fn short(b: &Bson) -> String {
    let s = b.to_string();
    if s.len() > 300 {
        format!("{}…", cut(&s, 300))
    } else {
        s
    }
}

/// The longest prefix of `s` of at most `n` bytes that ends on a character boundary.
pub fn cut(s: &str, n: usize) -> &str {
    let mut n = n.min(s.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// Int32, Int64 and Double compare by value.
fn num(b: &Bson) -> Option<f64> {
    match b {
        Bson::Int32(i) => Some(*i as f64),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// The `$type` alias of a value: the server's type name.
pub use mongosync_testkit::util::type_name as type_alias;

fn special(
    actual: Option<&Bson>,
    op: &str,
    arg: &Bson,
    root: bool,
    ents: Lookup,
) -> Result<(), String> {
    match op {
        "$$exists" => {
            let want = arg.as_bool().ok_or("$$exists needs a bool")?;
            if actual.is_some() == want {
                Ok(())
            } else if want {
                Err("expected to exist".into())
            } else {
                Err(format!(
                    "expected not to exist, found {}",
                    short(actual.unwrap_or(&Bson::Null))
                ))
            }
        }
        "$$type" => {
            let a = actual.ok_or("expected a value ($$type), found nothing")?;
            let t = type_alias(a);
            let ok = match arg {
                Bson::String(s) => s == t || (s == "number" && num(a).is_some()),
                Bson::Array(v) => v.iter().any(|x| x.as_str() == Some(t)),
                _ => return Err("bad $$type".into()),
            };
            if ok {
                Ok(())
            } else {
                Err(format!("type {t} ({}) is not {arg}", short(a)))
            }
        }
        "$$unsetOrMatches" => match actual {
            None => Ok(()),
            Some(a) => matches(Some(a), arg, root, ents),
        },
        "$$matchesEntity" => {
            let id = arg.as_str().ok_or("$$matchesEntity needs a string")?;
            let v = ents(id).ok_or_else(|| format!("no entity {id}"))?;
            matches(actual, &v, root, ents)
        }
        "$$matchesHexBytes" => {
            let hex = arg.as_str().ok_or("$$matchesHexBytes needs a string")?;
            match actual {
                Some(Bson::Binary(b)) if to_hex(&b.bytes).eq_ignore_ascii_case(hex) => Ok(()),
                other => Err(format!("expected bytes {hex}, found {other:?}")),
            }
        }
        "$$sessionLsid" => {
            let id = arg.as_str().ok_or("$$sessionLsid needs a string")?;
            let v = ents(id).ok_or_else(|| format!("no session {id}"))?;
            match actual {
                Some(a) if *a == v => Ok(()),
                other => Err(format!("lsid {other:?} is not session {id}'s {v}")),
            }
        }
        "$$lte" => {
            let a = actual.and_then(num).ok_or("$$lte needs a number")?;
            let e = num(arg).ok_or("$$lte needs a number")?;
            if a <= e {
                Ok(())
            } else {
                Err(format!("{a} > {e}"))
            }
        }
        "$$matchAsDocument" => {
            let s = match actual {
                Some(Bson::String(s)) => s,
                other => return Err(format!("$$matchAsDocument needs a string, found {other:?}")),
            };
            let d = crate::load::parse_doc(s).map_err(|e| format!("not JSON: {e}"))?;
            matches(Some(&Bson::Document(d)), arg, false, ents)
        }
        "$$matchAsRoot" => matches(actual, arg, true, ents),
        other => Err(format!("unsupported operator {other}")),
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Start-up checks of the rules above (`MONGOSYNC_SPEC_SELFTEST=1`).
pub fn selftest() -> Result<(), String> {
    use bson::doc;
    let m = |a: Bson, e: Bson, root: bool| matches(Some(&a), &e, root, &no_entities);
    let cases: Vec<(Bson, Bson, bool, bool)> = vec![
        // Root documents may have extra keys; nested ones may not.
        (
            doc! {"a": 1, "b": 2}.into(),
            doc! {"a": 1}.into(),
            true,
            true,
        ),
        (
            doc! {"x": {"a": 1, "b": 2}}.into(),
            doc! {"x": {"a": 1}}.into(),
            true,
            false,
        ),
        // Numbers compare by value across types.
        (doc! {"n": 1_i64}.into(), doc! {"n": 1.0}.into(), true, true),
        (
            doc! {"n": 1_i32}.into(),
            doc! {"n": 2_i64}.into(),
            true,
            false,
        ),
        (doc! {"n": "1"}.into(), doc! {"n": 1}.into(), true, false),
        // Arrays: same length, elements matched as nested documents.
        (
            doc! {"a": [1, 2]}.into(),
            doc! {"a": [1]}.into(),
            true,
            false,
        ),
        (
            doc! {"a": [{"x": 1, "y": 2}]}.into(),
            doc! {"a": [{"x": 1}]}.into(),
            true,
            false,
        ),
        // Operators.
        (
            doc! {"a": 1}.into(),
            doc! {"b": {"$$exists": false}}.into(),
            true,
            true,
        ),
        (
            doc! {"a": 1}.into(),
            doc! {"a": {"$$exists": false}}.into(),
            true,
            false,
        ),
        (
            doc! {"a": 1}.into(),
            doc! {"b": {"$$exists": true}}.into(),
            true,
            false,
        ),
        (
            doc! {"a": 1}.into(),
            doc! {"b": {"$$unsetOrMatches": 1}}.into(),
            true,
            true,
        ),
        (
            doc! {"b": 2}.into(),
            doc! {"b": {"$$unsetOrMatches": 1}}.into(),
            true,
            false,
        ),
        (
            doc! {"a": 1_i64}.into(),
            doc! {"a": {"$$type": ["int", "long"]}}.into(),
            true,
            true,
        ),
        (
            doc! {"a": 1_i64}.into(),
            doc! {"a": {"$$type": "int"}}.into(),
            true,
            false,
        ),
        (
            doc! {"a": 3}.into(),
            doc! {"a": {"$$lte": 3}}.into(),
            true,
            true,
        ),
        (
            doc! {"a": 4}.into(),
            doc! {"a": {"$$lte": 3}}.into(),
            true,
            false,
        ),
        (
            doc! {"s": "{\"x\": 1}"}.into(),
            doc! {"s": {"$$matchAsDocument": {"x": 1}}}.into(),
            true,
            true,
        ),
        (
            doc! {"x": {"a": 1, "b": 2}}.into(),
            doc! {"x": {"$$matchAsRoot": {"a": 1}}}.into(),
            true,
            true,
        ),
        // Nested extra keys allowed under $$unsetOrMatches only at root level.
        (
            doc! {"a": {"b": 1, "c": 1}}.into(),
            doc! {"a": {"$$unsetOrMatches": {"b": 1}}}.into(),
            true,
            false,
        ),
    ];
    for (i, (a, e, root, want)) in cases.into_iter().enumerate() {
        let got = m(a.clone(), e.clone(), root);
        if got.is_ok() != want {
            return Err(format!(
                "selftest case {i}: {a} vs {e}: got {got:?}, want match={want}"
            ));
        }
    }
    Ok(())
}
