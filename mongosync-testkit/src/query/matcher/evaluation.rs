//! Evaluation query operators: `$regex` (with the server's PCRE dialect translated) and `$mod`.

use super::*;

/// 51091: an invalid regular expression.
pub(super) const REGEX_INVALID: i32 = 51091;
/// 51108: an invalid regex flag.
pub(super) const REGEX_BAD_FLAG: i32 = 51108;

/// A compiled query regex, with its source for regex-value equality.
#[derive(Debug, Clone)]
pub(crate) struct Re {
    pattern: String,
    options: String,
    re: regex::Regex,
}

impl Re {
    /// Compiles a PCRE-style pattern with MongoDB's options (`i`, `m`, `s`, `x`, `u`).
    pub(crate) fn new(pattern: &str, options: &str) -> Result<Re> {
        let mut flags = String::new();
        for c in options.chars() {
            match c {
                'i' | 'm' | 's' | 'x' => {
                    if !flags.contains(c) {
                        flags.push(c);
                    }
                }
                // PCRE's UTF mode: the `regex` crate is always Unicode-aware.
                'u' => {}
                _ => {
                    return Err(CommandError::new(
                        REGEX_BAD_FLAG,
                        format!("invalid flag in regex options: {c}"),
                    ));
                }
            }
        }
        if pattern.contains('\0') {
            return Err(CommandError::bad_value(
                "Regular expression cannot contain an embedded null byte",
            ));
        }
        let translated = translate_pcre(pattern, flags.contains('m'));
        let source = if flags.is_empty() {
            translated
        } else {
            format!("(?{flags}){translated}")
        };
        let re = regex::Regex::new(&source).map_err(|e| {
            CommandError::new(REGEX_INVALID, format!("Regular expression is invalid: {e}"))
        })?;
        Ok(Re {
            pattern: pattern.to_string(),
            options: options.to_string(),
            re,
        })
    }

    /// Whether the regex matches a value: strings and symbols by pattern, regex values by
    /// identical pattern and options (as the server does).
    pub(super) fn matches_value(&self, v: &Bson) -> bool {
        match v {
            Bson::String(s) | Bson::Symbol(s) => self.re.is_match(s),
            Bson::RegularExpression(r) => {
                r.pattern.as_str() == self.pattern && r.options.as_str() == self.options
            }
            _ => false,
        }
    }

    /// Whether a string matches.
    pub(crate) fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// The first match at or after byte `start`, the text before it still in view (for
    /// anchors and word boundaries), with its groups.
    pub(crate) fn captures_at<'t>(&self, s: &'t str, start: usize) -> Option<regex::Captures<'t>> {
        self.re.captures_at(s, start)
    }
}

/// Translates the PCRE constructs whose meaning differs in the `regex` crate: without the `m`
/// flag PCRE's `$` (and `\Z`) also match before a final newline; `\Q...\E` quotes; inside a
/// class `[`, `&&`, `--` and `~~` are literals; a `{` that does not start a quantifier is a
/// literal.
pub(super) fn translate_pcre(pattern: &str, multiline: bool) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => match chars.get(i) {
                Some('Q') => {
                    // Quote everything up to `\E` (or the end).
                    i += 1;
                    while i < chars.len() && !(chars[i] == '\\' && chars.get(i + 1) == Some(&'E')) {
                        let q = chars[i];
                        if q.is_ascii_alphanumeric() || q == ' ' || !q.is_ascii() {
                            out.push(q);
                        } else {
                            out.push('\\');
                            out.push(q);
                        }
                        i += 1;
                    }
                    i += 2;
                }
                Some('E') => i += 1,
                Some('Z') if !in_class => {
                    out.push_str(r"(?:\n?\z)");
                    i += 1;
                }
                Some(&n) => {
                    out.push('\\');
                    out.push(n);
                    i += 1;
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal in PCRE.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            '[' if in_class => {
                if chars.get(i) == Some(&':') {
                    // A POSIX class `[:alpha:]`, which both dialects support.
                    while i <= chars.len() {
                        let p = chars[i - 1];
                        out.push(p);
                        if p == ']' && i >= 2 && chars[i - 2] == ':' {
                            break;
                        }
                        i += 1;
                    }
                } else {
                    out.push_str(r"\[");
                }
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.get(i) == Some(&'-') => out.push_str(r"\-"),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class && !multiline => out.push_str(r"(?:\n?\z)"),
            '{' if !in_class && !starts_quantifier(&chars[i..]) => out.push_str(r"\{"),
            _ => out.push(c),
        }
    }
    out
}

/// Whether the text after a `{` makes it a quantifier (`{n}`, `{n,}`, `{n,m}`).
pub(super) fn starts_quantifier(rest: &[char]) -> bool {
    let mut j = 0;
    let digits = |j: &mut usize| {
        let start = *j;
        while rest.get(*j).is_some_and(|c| c.is_ascii_digit()) {
            *j += 1;
        }
        *j > start
    };
    if !digits(&mut j) {
        return false;
    }
    if rest.get(j) == Some(&',') {
        j += 1;
        digits(&mut j);
    }
    rest.get(j) == Some(&'}')
}

pub(super) fn parse_mod(v: &Bson) -> Result<Pred> {
    let Bson::Array(items) = v else {
        return Err(CommandError::bad_value(
            "malformed mod, needs to be an array",
        ));
    };
    let not_enough = || CommandError::bad_value("malformed mod, not enough elements");
    let divisor = items.first().ok_or_else(not_enough)?;
    if !is_number(divisor) {
        return Err(CommandError::bad_value(
            "malformed mod, divisor not a number",
        ));
    }
    let remainder = items.get(1).ok_or_else(not_enough)?;
    if !is_number(remainder) {
        return Err(CommandError::bad_value(
            "malformed mod, remainder not a number",
        ));
    }
    if items.len() > 2 {
        return Err(CommandError::bad_value("malformed mod, too many elements"));
    }
    // The server coerces both (truncating) and rejects NaN, infinities and out-of-range values.
    let coerce = |x: &Bson, what: &str| -> Result<i64> {
        match x {
            Bson::Int32(i) => Ok(*i as i64),
            Bson::Int64(i) => Ok(*i),
            _ => {
                let f = crate::query::compare::number_as_f64(x).unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(CommandError::bad_value(format!(
                        "malformed mod, {what} value is invalid :: caused by :: Unable to coerce NaN/Inf to integral type"
                    )));
                }
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f.trunc()) {
                    return Err(CommandError::bad_value(format!(
                        "malformed mod, {what} value is invalid :: caused by :: Out of bounds coercing to integral value"
                    )));
                }
                Ok(f.trunc() as i64)
            }
        }
    };
    let d = coerce(divisor, "divisor")?;
    let r = coerce(remainder, "remainder")?;
    if d == 0 {
        return Err(CommandError::bad_value("divisor cannot be 0"));
    }
    Ok(Pred::Mod(d, r))
}

/// `$regex` with its `$options` sibling, in document order as the server reads them.
pub(super) fn parse_regex(ops: &Document) -> Result<Pred> {
    let mut pattern = String::new();
    let mut options = String::new();
    for (k, v) in ops {
        match k.as_str() {
            "$regex" => match v {
                Bson::String(p) => pattern = p.clone(),
                Bson::RegularExpression(r) => {
                    pattern = r.pattern.as_str().to_string();
                    if !r.options.as_str().is_empty() {
                        if !options.is_empty() {
                            return Err(CommandError::new(
                                51074,
                                "options set in both $regex and $options",
                            ));
                        }
                        options = r.options.as_str().to_string();
                    }
                }
                _ => return Err(CommandError::bad_value("$regex has to be a string")),
            },
            "$options" => {
                let Bson::String(o) = v else {
                    return Err(CommandError::bad_value("$options has to be a string"));
                };
                if !options.is_empty() {
                    return Err(CommandError::new(
                        51075,
                        "options set in both $regex and $options",
                    ));
                }
                options = o.clone();
            }
            _ => {}
        }
    }
    Ok(Pred::Regex(Re::new(&pattern, &options)?))
}

pub(super) fn mod_matches(x: &Bson, d: i64, r: i64) -> bool {
    let dividend = match x {
        Bson::Int32(i) => *i as i64,
        Bson::Int64(i) => *i,
        Bson::Double(_) | Bson::Decimal128(_) => {
            let f = crate::query::compare::number_as_f64(x).unwrap_or(f64::NAN);
            if !f.is_finite()
                || f.trunc() >= 9.223_372_036_854_776e18
                || f.trunc() < -9.223_372_036_854_776e18
            {
                return false;
            }
            f.trunc() as i64
        }
        _ => return false,
    };
    dividend.wrapping_rem(d) == r
}
