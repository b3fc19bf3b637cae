//! Evaluation query operators: `$regex` (PCRE2, as the server) and `$mod`.

use super::*;

/// 51091: an invalid regular expression in a query.
pub(super) const REGEX_INVALID: i32 = 51091;
/// 51108: an invalid regex flag.
pub(super) const REGEX_BAD_FLAG: i32 = 51108;
/// 51111: an invalid regular expression in `$regexMatch`, `$regexFind` or `$regexFindAll`.
const EXPR_REGEX_INVALID: i32 = 51111;

/// A compiled regex, with its source for regex-value equality. The server compiles every regex
/// (query `$regex`, `$in` members, `$jsonSchema` `pattern`, the `$regex*` expressions) with
/// PCRE2 in UTF mode (`pcre_util::flagsToOptions`): so does this, through the same library.
#[derive(Debug, Clone)]
pub(crate) struct Re {
    pattern: String,
    options: String,
    re: pcre2::bytes::Regex,
}

/// Why a pattern did not compile: a flag outside `imsux`, or PCRE2's own message.
enum CompileError {
    Flag(char),
    Pattern(String),
}

/// The byte ranges of one match: group 0 (the whole match), then each group, `None` for a
/// group that took no part.
pub(crate) struct Captures {
    groups: Vec<Option<(usize, usize)>>,
}

impl Captures {
    /// The whole match's byte range.
    pub(crate) fn whole(&self) -> (usize, usize) {
        self.groups[0].expect("group 0 always matches")
    }

    /// Each capture group's byte range (`None` when unmatched), without group 0.
    pub(crate) fn groups(&self) -> &[Option<(usize, usize)>] {
        &self.groups[1..]
    }
}

impl Re {
    /// Compiles a query regex (`$regex`, a regex value in a filter or `$in`): the codes and
    /// messages of the server's `RegexMatchExpression` (flags first, then the null byte, then
    /// the pattern).
    pub(crate) fn new(pattern: &str, options: &str) -> Result<Re> {
        let built = compile(pattern, options);
        if let Err(CompileError::Flag(c)) = built {
            // `flagsToOptions` with no operator name: the message starts with a space.
            return Err(CommandError::new(
                REGEX_BAD_FLAG,
                format!(" invalid flag in regex options: {c}"),
            ));
        }
        if pattern.contains('\0') {
            return Err(CommandError::bad_value(
                "Regular expression cannot contain an embedded null byte",
            ));
        }
        match built {
            Ok(re) => Ok(Re {
                pattern: pattern.to_string(),
                options: options.to_string(),
                re,
            }),
            Err(CompileError::Pattern(m)) => Err(CommandError::new(
                REGEX_INVALID,
                format!("Regular expression is invalid: {m}"),
            )),
            Err(CompileError::Flag(_)) => unreachable!("handled above"),
        }
    }

    /// Compiles the regex of `$regexMatch`, `$regexFind` or `$regexFindAll` (`op`), with the
    /// codes of the server's expression `compile` helper.
    pub(crate) fn for_expression(op: &str, pattern: &str, options: &str) -> Result<Re> {
        match compile(pattern, options) {
            Ok(re) => Ok(Re {
                pattern: pattern.to_string(),
                options: options.to_string(),
                re,
            }),
            Err(CompileError::Flag(c)) => Err(CommandError::new(
                REGEX_BAD_FLAG,
                format!("{op} invalid flag in regex options: {c}"),
            )),
            Err(CompileError::Pattern(m)) => Err(CommandError::new(
                EXPR_REGEX_INVALID,
                format!("Invalid Regex in {op}: {m}"),
            )),
        }
    }

    /// Whether the regex matches a value: strings and symbols by pattern, regex values by
    /// identical pattern and options (as the server does).
    pub(super) fn matches_value(&self, v: &Bson) -> bool {
        match v {
            Bson::String(s) | Bson::Symbol(s) => self.is_match(s),
            Bson::RegularExpression(r) => {
                r.pattern.as_str() == self.pattern && r.options.as_str() == self.options
            }
            _ => false,
        }
    }

    /// Whether a string matches (a matching error, such as PCRE2's match limit, is no match).
    pub(crate) fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s.as_bytes()).unwrap_or(false)
    }

    /// The first match at or after byte `start` (a character boundary), the text before it
    /// still in view (for lookbehind, anchors and word boundaries), with its groups.
    pub(crate) fn captures_at(&self, s: &str, start: usize) -> Option<Captures> {
        let mut locs = self.re.capture_locations();
        self.re
            .captures_read_at(&mut locs, s.as_bytes(), start)
            .ok()
            .flatten()?;
        Some(Captures {
            groups: (0..locs.len()).map(|i| locs.get(i)).collect(),
        })
    }
}

/// The one compile helper: MongoDB's flags (`pcre_util::flagsToOptions`: `i` caseless, `m`
/// multiline, `s` dotall, `x` extended, `u` accepted, UTF always on) and PCRE2's error text.
fn compile(pattern: &str, options: &str) -> std::result::Result<pcre2::bytes::Regex, CompileError> {
    // No JIT, as the server: the interpreter has no JIT stack limit to fail a deep match on,
    // and a regex compiled per document (from a field) stays cheap.
    let mut b = pcre2::bytes::RegexBuilder::new();
    b.utf(true);
    for c in options.chars() {
        match c {
            'i' => b.caseless(true),
            'm' => b.multi_line(true),
            's' => b.dotall(true),
            'x' => b.extended(true),
            'u' => &mut b,
            _ => return Err(CompileError::Flag(c)),
        };
    }
    // The server sets PCRE2's maximum pattern length to 16384 bytes (`kMaxPatternLength`).
    if pattern.len() > 16384 {
        return Err(CompileError::Pattern(
            "pattern string is longer than the limit set by the application".to_string(),
        ));
    }
    b.build(pattern)
        .map_err(|e| CompileError::Pattern(pcre2_message(&e)))
}

/// PCRE2's own message (what the server appends), without the crate's "PCRE2: error compiling
/// pattern at offset N: " prefix.
fn pcre2_message(e: &pcre2::Error) -> String {
    let full = e.to_string();
    match full.split_once("pattern at offset ") {
        Some((_, rest)) => rest.split_once(": ").map_or(rest, |(_, m)| m).to_string(),
        None => full
            .split_once("pattern: ")
            .map_or(full.as_str(), |(_, m)| m)
            .to_string(),
    }
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
