//! String expressions: `$substrBytes`, `$substrCP`, `$split`, `$trim`, `$indexOfBytes`/`$indexOfCP`,
//! `$regexMatch`.

use super::*;

pub(super) fn coerce_to_string(name: &str, v: &Option<Bson>) -> Result<String> {
    match v {
        x if nullish(x) => Ok(String::new()),
        Some(Bson::String(s)) | Some(Bson::Symbol(s)) => Ok(s.clone()),
        Some(Bson::Int32(i)) => Ok(i.to_string()),
        Some(Bson::Int64(i)) => Ok(i.to_string()),
        // The server's coerceToString streams doubles with %g: 6 significant digits.
        Some(Bson::Double(d)) => Ok(stream_double(*d)),
        Some(Bson::Decimal128(d)) => Ok(d.to_string()),
        Some(Bson::DateTime(d)) => Ok(format_date(d.timestamp_millis())),
        Some(Bson::Timestamp(t)) => Ok(format!("Timestamp({}, {})", t.time, t.increment)),
        Some(Bson::Boolean(b)) => Ok(b.to_string()),
        other => Err(CommandError::new(
            16007,
            format!(
                "can't convert from BSON type {} to String ({name})",
                tn(other)
            ),
        )),
    }
}

pub(super) fn op_substr_bytes(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact(name, arg, 3, scope)?;
    let s = coerce_to_string(name, &v[0])?;
    let start = match v[1].as_ref().and_then(Num::from_bson) {
        Some(n) => n.f64(),
        None => {
            return Err(CommandError::new(
                16034,
                format!(
                    "{name}:  starting index must be a numeric type (is BSON type {})",
                    tn(&v[1])
                ),
            ));
        }
    };
    let len = match v[2].as_ref().and_then(Num::from_bson) {
        Some(n) => n.f64(),
        None => {
            return Err(CommandError::new(
                16035,
                format!(
                    "{name}:  length must be a numeric type (is BSON type {})",
                    tn(&v[2])
                ),
            ));
        }
    };
    let bytes = s.as_bytes();
    if start < 0.0 || start as usize >= bytes.len() {
        return Ok(Some(Bson::String(String::new())));
    }
    let start = start as usize;
    let end = if len < 0.0 {
        bytes.len()
    } else {
        (start.saturating_add(len as usize)).min(bytes.len())
    };
    if !s.is_char_boundary(start) {
        return Err(CommandError::new(
            28656,
            format!("{name}:  Invalid range, starting index is a UTF-8 continuation byte."),
        ));
    }
    if !s.is_char_boundary(end) {
        return Err(CommandError::new(
            28657,
            format!("{name}:  Invalid range, ending index is in the middle of a UTF-8 character."),
        ));
    }
    Ok(Some(Bson::String(s[start..end].to_string())))
}

pub(super) fn op_substr_cp(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$substrCP", arg, 3, scope)?;
    let s = coerce_to_string("$substrCP", &v[0])?;
    let start = match int_arg(&v[1]) {
        Some(i) if i >= 0 => i as usize,
        Some(_) => {
            return Err(CommandError::new(
                34455,
                "$substrCP: the starting index must be nonnegative integer.",
            ));
        }
        None => {
            return Err(CommandError::new(
                34450,
                format!(
                    "$substrCP: starting index must be a numeric type (is BSON type {})",
                    tn(&v[1])
                ),
            ));
        }
    };
    let len = match int_arg(&v[2]) {
        Some(i) if i >= 0 => i as usize,
        Some(_) => {
            return Err(CommandError::new(
                34454,
                "$substrCP: length must be a nonnegative integer.",
            ));
        }
        None => {
            return Err(CommandError::new(
                34452,
                format!(
                    "$substrCP: length must be a numeric type (is BSON type {})",
                    tn(&v[2])
                ),
            ));
        }
    };
    Ok(Some(Bson::String(
        s.chars().skip(start).take(len).collect(),
    )))
}

pub(super) fn op_split(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let v = eval_exact("$split", arg, 2, scope)?;
    if nullish(&v[0]) || nullish(&v[1]) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::String(s)) = &v[0] else {
        return Err(CommandError::new(
            40085,
            format!(
                "$split requires an expression that evaluates to a string as a first argument, found: {}",
                tn(&v[0])
            ),
        ));
    };
    let Some(Bson::String(sep)) = &v[1] else {
        return Err(CommandError::new(
            // 8.x (which also splits on a regex) numbers the delimiter's type error 10503900.
            10503900,
            format!(
                "$split requires an expression that evaluates to a string or a regular expression as a second argument, found: {}",
                tn(&v[1])
            ),
        ));
    };
    if sep.is_empty() {
        return Err(CommandError::new(
            40087,
            "$split requires a non-empty separator",
        ));
    }
    Ok(Some(Bson::Array(
        s.split(sep.as_str())
            .map(|p| Bson::String(p.to_string()))
            .collect(),
    )))
}

pub(super) fn op_trim(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let d = object_arg(name, arg, 50696)?;
    for k in d.keys() {
        if k != "input" && k != "chars" {
            return Err(CommandError::new(
                50694,
                format!("{name} found an unknown argument: {k}"),
            ));
        }
    }
    let input = d
        .get("input")
        .ok_or_else(|| CommandError::new(50695, format!("{name} requires an 'input' field")))?;
    let input = eval(input, scope)?;
    if nullish(&input) {
        return Ok(Some(Bson::Null));
    }
    let Some(Bson::String(s)) = &input else {
        return Err(CommandError::new(
            50699,
            format!(
                "{name} requires its input to be a string, got {} (of type {}) instead.",
                input.clone().unwrap_or(Bson::Null),
                tn(&input)
            ),
        ));
    };
    let chars: Vec<char> = match d.get("chars") {
        None => vec![
            '\0', ' ', '\t', '\n', '\u{0B}', '\u{0C}', '\r', '\u{A0}', '\u{1680}', '\u{2000}',
            '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}',
            '\u{2008}', '\u{2009}', '\u{200A}',
        ],
        Some(c) => match eval(c, scope)? {
            v if nullish(&v) => return Ok(Some(Bson::Null)),
            Some(Bson::String(c)) => c.chars().collect(),
            v => {
                return Err(CommandError::new(
                    50700,
                    format!(
                        "{name} requires 'chars' to be a string, got {} (of type {}) instead.",
                        v.clone().unwrap_or(Bson::Null),
                        tn(&v)
                    ),
                ));
            }
        },
    };
    let t = match name {
        "$trim" => s.trim_matches(chars.as_slice()),
        "$ltrim" => s.trim_start_matches(chars.as_slice()),
        _ => s.trim_end_matches(chars.as_slice()),
    };
    Ok(Some(Bson::String(t.to_string())))
}

pub(super) fn op_index_of_str(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let args = range_args(name, arg, 2, 4)?;
    let v = eval_all(&args, scope)?;
    if nullish(&v[0]) {
        return Ok(Some(Bson::Null));
    }
    // $indexOfBytes: 40091/40092; $indexOfCP: 40093/40094.
    let cp = name == "$indexOfCP";
    let Some(Bson::String(s)) = &v[0] else {
        return Err(CommandError::new(
            if cp { 40093 } else { 40091 },
            format!(
                "{name} requires a string as the first argument, found: {}",
                tn(&v[0])
            ),
        ));
    };
    let Some(Bson::String(sub)) = &v[1] else {
        return Err(CommandError::new(
            if cp { 40094 } else { 40092 },
            format!(
                "{name} requires a string as the second argument, found: {}",
                tn(&v[1])
            ),
        ));
    };
    let bound = |i: usize| index_bound(&v, i, name, "start");
    let start = bound(2)?.unwrap_or(0);
    if name == "$indexOfBytes" {
        let end = bound(3)?.unwrap_or(s.len()).min(s.len());
        if start > end {
            return Ok(Some(Bson::Int32(-1)));
        }
        let hay = &s.as_bytes()[start..end];
        let needle = sub.as_bytes();
        let pos = if needle.is_empty() {
            Some(0)
        } else {
            hay.windows(needle.len()).position(|w| w == needle)
        };
        Ok(Some(Bson::Int32(
            pos.map(|p| (p + start) as i32).unwrap_or(-1),
        )))
    } else {
        let chars: Vec<char> = s.chars().collect();
        let needle: Vec<char> = sub.chars().collect();
        let end = bound(3)?.unwrap_or(chars.len()).min(chars.len());
        if start > end {
            return Ok(Some(Bson::Int32(-1)));
        }
        let hay = &chars[start..end];
        let pos = if needle.is_empty() {
            Some(0)
        } else {
            hay.windows(needle.len())
                .position(|w| w == needle.as_slice())
        };
        Ok(Some(Bson::Int32(
            pos.map(|p| (p + start) as i32).unwrap_or(-1),
        )))
    }
}

/// The arguments of `$regexMatch`, `$regexFind` and `$regexFindAll` (their shared
/// `RegexExecutionState` on the server): the compiled regex and the input, or `None` when
/// either is null or missing. The checks run in the server's order: the regex and its options
/// (`extractRegexAndOptions`), the compilation, then the input.
fn regex_arguments(
    op: &str,
    arg: &Bson,
    scope: &Scope,
) -> Result<Option<(crate::query::matcher::Re, String)>> {
    let f = parse_object(op, arg, &["input", "regex", "options"], 31024)?;
    let input = field(&f, "input")
        .ok_or_else(|| CommandError::new(31022, format!("{op} requires 'input' parameter")))?;
    let regex = field(&f, "regex")
        .ok_or_else(|| CommandError::new(31023, format!("{op} requires 'regex' parameter")))?;
    let input = eval(input, scope)?;
    let regex = eval(regex, scope)?;
    let options = match field(&f, "options") {
        Some(o) => eval(o, scope)?,
        None => None,
    };
    let options = match options {
        v if nullish(&v) => None,
        Some(Bson::String(s)) => Some(s),
        _ => {
            return Err(CommandError::new(
                51106,
                format!("{op} needs 'options' to be of type string"),
            ));
        }
    };
    let (pattern, flags) = match regex {
        v if nullish(&v) => (None, options),
        Some(Bson::String(p)) => (Some(p), options),
        Some(Bson::RegularExpression(r)) => {
            if options.is_some() && !r.options.is_empty() {
                return Err(CommandError::new(
                    51107,
                    format!(
                        "{op}: found regex option(s) specified in both 'regex' and 'option' fields"
                    ),
                ));
            }
            let flags = options.or_else(|| Some(r.options.to_string()));
            (Some(r.pattern.to_string()), flags)
        }
        _ => {
            return Err(CommandError::new(
                51105,
                format!("{op} needs 'regex' to be of type string or regex"),
            ));
        }
    };
    if pattern.as_ref().is_some_and(|p| p.contains('\0')) {
        return Err(CommandError::new(
            51109,
            format!("{op}: regular expression cannot contain an embedded null byte"),
        ));
    }
    if flags.as_ref().is_some_and(|o| o.contains('\0')) {
        return Err(CommandError::new(
            51110,
            format!("{op}: regular expression options cannot contain an embedded null byte"),
        ));
    }
    let re = match &pattern {
        Some(p) => Some(crate::query::matcher::Re::for_expression(
            op,
            p,
            flags.as_deref().unwrap_or(""),
        )?),
        None => None,
    };
    let text = match input {
        v if nullish(&v) => None,
        Some(Bson::String(s)) => Some(s),
        _ => {
            return Err(CommandError::new(
                51104,
                format!("{op} needs 'input' to be of type string"),
            ));
        }
    };
    Ok(re.zip(text))
}

/// The server compiles a constant regex (and its options) of `$regexMatch`, `$regexFind` or
/// `$regexFindAll` when it parses the expression (`precompileRegex`), so their errors, and a
/// missing or unknown argument, come even over no documents.
pub(super) fn precompile_regex(op: &str, arg: &Document) -> Result<()> {
    if !matches!(op, "$regexMatch" | "$regexFind" | "$regexFindAll") {
        return Ok(());
    }
    let constant = |v: Option<&Bson>| match v {
        Some(Bson::String(s)) => !s.starts_with('$'),
        Some(Bson::Document(_) | Bson::Array(_)) => false,
        _ => true,
    };
    if !constant(arg.get("regex")) || !constant(arg.get("options")) {
        return Ok(());
    }
    let mut probe = arg.clone();
    if probe.contains_key("input") {
        probe.insert("input", Bson::Null);
    }
    let mut expr = Document::new();
    expr.insert(op, probe);
    evaluate(&Bson::Document(expr), &Document::new(), &Document::new()).map(|_| ())
}

pub(super) fn op_regex_match(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    Ok(Some(Bson::Boolean(
        match regex_arguments("$regexMatch", arg, scope)? {
            Some((re, text)) => re.is_match(&text),
            None => false,
        },
    )))
}

/// One `$regexFind` result: the match, its index in code points, and the captures (null for
/// a group that took no part).
fn regex_match_doc(caps: &crate::query::matcher::Captures, text: &str) -> Bson {
    let (start, end) = caps.whole();
    let captures: Vec<Bson> = caps
        .groups()
        .iter()
        .map(|g| g.map_or(Bson::Null, |(s, e)| Bson::String(text[s..e].to_string())))
        .collect();
    Bson::Document(bson::doc! {
        "match": &text[start..end],
        "idx": text[..start].chars().count() as i32,
        "captures": captures,
    })
}

/// `$regexFind`: the first match, or null.
pub(super) fn op_regex_find(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Some((re, text)) = regex_arguments("$regexFind", arg, scope)? else {
        return Ok(Some(Bson::Null));
    };
    Ok(Some(
        re.captures_at(&text, 0)
            .map_or(Bson::Null, |c| regex_match_doc(&c, &text)),
    ))
}

/// `$regexFindAll`: every non-overlapping match, an empty input tried once; after an empty
/// match the search moves on by one character, as the server does.
pub(super) fn op_regex_find_all(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Some((re, text)) = regex_arguments("$regexFindAll", arg, scope)? else {
        return Ok(Some(Bson::Array(Vec::new())));
    };
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(caps) = re.captures_at(&text, start) {
        let (s, e) = caps.whole();
        out.push(regex_match_doc(&caps, &text));
        start = if s == e {
            // Step over the character at the match (not the match's end, which is the same).
            s + text[s..].chars().next().map_or(1, char::len_utf8)
        } else {
            e
        };
        if start >= text.len() {
            break;
        }
    }
    Ok(Some(Bson::Array(out)))
}

// ---------------------------------------------------------------------------------------------
// Arrays
