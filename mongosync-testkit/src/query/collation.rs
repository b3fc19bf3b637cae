//! Collations (`{locale: "en_US", strength: 2, ...}`): parsing with the server's errors, and
//! string comparison by the Unicode Collation Algorithm with CLDR data, as the server does
//! with ICU. The comparator is ICU4X (`icu_collator`) with its compiled-in data, so no data is
//! loaded at run time.
//!
//! Locale `"simple"` means binary comparison: [`Collation::parse`] returns `None` for it, and
//! every function here treats `None` as the plain [`compare`].
// `CommandError` is the crate-wide error type; its size is a crate design decision.
#![allow(clippy::result_large_err)]

use crate::util::type_name;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use bson::{Bson, Document};
use icu_collator::options::{AlternateHandling, CaseLevel, CollatorOptions, MaxVariable, Strength};
use icu_collator::preferences::{CollationCaseFirst, CollationNumericOrdering};
use icu_collator::{CollatorBorrowed, CollatorPreferences};
use icu_locale_core::Locale;

use crate::error::{CommandError, Result, codes};
use crate::query::compare::{compare, type_rank};
use crate::query::matcher::server_display;

/// 51024: an IDL field validator failed (e.g. `strength: 6`).
const IDL_VALIDATOR_FAILED: i32 = 51024;

/// The ICU version the server reports in a collation's `version` field (MongoDB 8.0 bundles
/// ICU 57.1 for collation).
pub const ICU_VERSION: &str = "57.1";

/// A parsed, non-simple collation.
#[derive(Clone)]
pub struct Collation {
    /// The fully resolved specification, as the server reports it (listCollections, index
    /// specs, explain).
    spec: Document,
    collator: Arc<CollatorBorrowed<'static>>,
}

impl fmt::Debug for Collation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Collation({})", self.spec)
    }
}

/// Two collations are the same when their resolved specifications are (the server's rule for
/// matching an operation's collation against an index's).
impl PartialEq for Collation {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

/// The options of a collation document, before resolution against the locale's defaults.
#[derive(Default)]
struct Requested {
    locale: Option<String>,
    case_level: Option<bool>,
    case_first: Option<&'static str>,
    strength: Option<i64>,
    numeric_ordering: Option<bool>,
    alternate: Option<&'static str>,
    max_variable: Option<&'static str>,
    normalization: Option<bool>,
    backwards: Option<bool>,
}

fn wrong_type(field: &str, v: &Bson, expected: &str) -> CommandError {
    CommandError::type_mismatch(format!(
        "BSON field '{field}' is the wrong type '{}', expected type '{expected}'",
        type_name(v)
    ))
}

fn want_bool(field: &str, v: &Bson) -> Result<bool> {
    match v {
        Bson::Boolean(b) => Ok(*b),
        _ => Err(wrong_type(field, v, "bool")),
    }
}

/// An enumerated string option (`caseFirst`, `alternate`, `maxVariable`).
fn want_enum(field: &str, v: &Bson, allowed: &[&'static str]) -> Result<&'static str> {
    let Bson::String(s) = v else {
        return Err(wrong_type(field, v, "string"));
    };
    allowed.iter().copied().find(|a| a == s).ok_or_else(|| {
        CommandError::bad_value(format!(
            "Enumeration value '{s}' for field '{field}' is not a valid value."
        ))
    })
}

/// `strength` is an IDL `safeInt`: any numeric type holding an integral value.
fn want_int(field: &str, v: &Bson) -> Result<i64> {
    let mismatch = || {
        CommandError::type_mismatch(format!(
            "BSON field '{field}' is the wrong type '{}', expected types '[long, int, decimal, \
             double]'",
            type_name(v)
        ))
    };
    match v {
        Bson::Int32(i) => Ok(i64::from(*i)),
        Bson::Int64(i) => Ok(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Ok(*d as i64),
        Bson::Decimal128(_) => {
            let d = crate::query::compare::number_as_f64(v).ok_or_else(mismatch)?;
            if d.fract() == 0.0 && d.abs() < 9.2e18 {
                Ok(d as i64)
            } else {
                Err(CommandError::bad_value(format!(
                    "Expected an integer: {field}: {}",
                    server_display(v)
                )))
            }
        }
        Bson::Double(_) => Err(CommandError::bad_value(format!(
            "Expected an integer: {field}: {}",
            server_display(v)
        ))),
        _ => Err(mismatch()),
    }
}

/// Converts an ICU locale ID (`en_US`, `zh_Hant`, `de@collation=phonebook`) to a BCP 47 tag
/// ICU4X understands, or `None` when it is not well-formed. The server rejects any ID that ICU
/// would have to canonicalize, so this is strict about case and separators.
fn icu_id_to_bcp47(id: &str) -> Option<String> {
    if id == "root" {
        return Some("und".to_string());
    }
    let (base, keyword) = match id.split_once('@') {
        Some((b, k)) => (b, Some(k)),
        None => (id, None),
    };
    let mut parts = base.split('_');
    let lang = parts.next()?;
    if !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut tag = lang.to_string();
    let mut seen_script = false;
    let mut seen_region = false;
    for p in parts {
        let b = p.as_bytes();
        let is_script = p.len() == 4
            && b[0].is_ascii_uppercase()
            && b[1..].iter().all(|c| c.is_ascii_lowercase());
        let is_region = (p.len() == 2 && b.iter().all(|c| c.is_ascii_uppercase()))
            || (p.len() == 3 && b.iter().all(|c| c.is_ascii_digit()));
        if is_script && !seen_script && !seen_region {
            seen_script = true;
        } else if is_region && !seen_region {
            seen_region = true;
        } else {
            // Variants (e.g. `_POSIX`) are canonicalized away by ICU: the server rejects them.
            return None;
        }
        tag.push('-');
        tag.push_str(p);
    }
    if let Some(k) = keyword {
        let ty = k.strip_prefix("collation=")?;
        // BCP 47 spells some ICU collation types differently.
        let ty = match ty {
            "phonebook" => "phonebk",
            "traditional" => "trad",
            "dictionary" => "dict",
            "gb2312han" => "gb2312",
            other if !other.is_empty() && other.bytes().all(|c| c.is_ascii_lowercase()) => other,
            _ => return None,
        };
        tag.push_str("-u-co-");
        tag.push_str(ty);
    }
    Some(tag)
}

impl Collation {
    /// Parses a collation document as the server does. `None` for `{locale: "simple"}` (binary
    /// comparison). Errors: 40414 without `locale`, 40415 for an unknown field, 14 for a
    /// wrongly typed field, 2 for a bad enumeration value or an unknown locale, 51024 for a
    /// strength outside 1..=5.
    pub fn parse(spec: &Document) -> Result<Option<Collation>> {
        let mut req = Requested::default();
        for (k, v) in spec {
            match k.as_str() {
                "locale" => match v {
                    Bson::String(s) => req.locale = Some(s.clone()),
                    _ => return Err(wrong_type("locale", v, "string")),
                },
                "caseLevel" => req.case_level = Some(want_bool(k, v)?),
                "caseFirst" => req.case_first = Some(want_enum(k, v, &["upper", "lower", "off"])?),
                "strength" => {
                    let n = want_int(k, v)?;
                    if n < 1 {
                        return Err(CommandError::new(
                            IDL_VALIDATOR_FAILED,
                            format!("BSON field 'strength' value must be >= 1, actual value '{n}'"),
                        ));
                    }
                    if n > 5 {
                        return Err(CommandError::new(
                            IDL_VALIDATOR_FAILED,
                            format!("BSON field 'strength' value must be <= 5, actual value '{n}'"),
                        ));
                    }
                    req.strength = Some(n);
                }
                "numericOrdering" => req.numeric_ordering = Some(want_bool(k, v)?),
                "alternate" => {
                    req.alternate = Some(want_enum(k, v, &["non-ignorable", "shifted"])?)
                }
                "maxVariable" => req.max_variable = Some(want_enum(k, v, &["punct", "space"])?),
                "normalization" => req.normalization = Some(want_bool(k, v)?),
                "backwards" => req.backwards = Some(want_bool(k, v)?),
                // Drivers echo back the version a server reported; any string is accepted.
                "version" => {
                    if !matches!(v, Bson::String(_)) {
                        return Err(wrong_type("version", v, "string"));
                    }
                }
                _ => {
                    return Err(CommandError::new(
                        codes::IDL_UNKNOWN_FIELD,
                        format!("BSON field '{k}' is an unknown field."),
                    ));
                }
            }
        }
        let Some(locale) = req.locale.clone() else {
            return Err(CommandError::new(
                codes::IDL_MISSING_FIELD,
                "BSON field 'locale' is missing but a required field",
            ));
        };
        let shown = || server_display(&Bson::Document(spec.clone()));
        if locale == "simple" {
            if spec.len() > 1 {
                return Err(CommandError::failed_to_parse(format!(
                    "If locale=simple, no other fields should be present in: {}",
                    shown()
                )));
            }
            return Ok(None);
        }
        if locale.is_empty() {
            return Err(CommandError::bad_value(format!(
                "Field 'locale' cannot be the empty string in: {}",
                shown()
            )));
        }
        if locale.contains('\0') {
            return Err(CommandError::bad_value(format!(
                "Field 'locale' cannot contain null byte. Collation spec: {}",
                shown()
            )));
        }
        let parsed: Option<Locale> = icu_id_to_bcp47(&locale).and_then(|t| t.parse().ok());
        let Some(icu_locale) = parsed else {
            return Err(CommandError::bad_value(format!(
                "Field 'locale' is invalid in: {}",
                shown()
            )));
        };
        Self::build(&req, locale, &icu_locale).map(Some)
    }

    fn build(req: &Requested, locale: String, icu_locale: &Locale) -> Result<Collation> {
        let mut prefs = CollatorPreferences::from(icu_locale);
        if let Some(cf) = req.case_first {
            prefs.case_first = Some(match cf {
                "upper" => CollationCaseFirst::Upper,
                "lower" => CollationCaseFirst::Lower,
                _ => CollationCaseFirst::False,
            });
        }
        if let Some(n) = req.numeric_ordering {
            prefs.numeric_ordering = Some(if n {
                CollationNumericOrdering::True
            } else {
                CollationNumericOrdering::False
            });
        }
        let mut options = CollatorOptions::default();
        options.strength = req.strength.map(|s| match s {
            1 => Strength::Primary,
            2 => Strength::Secondary,
            3 => Strength::Tertiary,
            4 => Strength::Quaternary,
            _ => Strength::Identical,
        });
        options.case_level = req
            .case_level
            .map(|b| if b { CaseLevel::On } else { CaseLevel::Off });
        options.alternate_handling = req.alternate.map(|a| {
            if a == "shifted" {
                AlternateHandling::Shifted
            } else {
                AlternateHandling::NonIgnorable
            }
        });
        options.max_variable = req.max_variable.map(|m| {
            if m == "space" {
                MaxVariable::Space
            } else {
                MaxVariable::Punctuation
            }
        });
        let collator = CollatorBorrowed::try_new(prefs, options).map_err(|e| {
            CommandError::new(
                codes::INTERNAL_ERROR,
                format!("Failed to create collator: {e}"),
            )
        })?;
        let r = collator.resolved_options();
        let strength = match r.strength {
            Strength::Primary => 1,
            Strength::Secondary => 2,
            Strength::Tertiary => 3,
            Strength::Quaternary => 4,
            _ => 5,
        };
        let case_first = match r.case_first {
            CollationCaseFirst::Upper => "upper",
            CollationCaseFirst::Lower => "lower",
            _ => "off",
        };
        let spec = bson::doc! {
            "locale": locale.clone(),
            "caseLevel": r.case_level == CaseLevel::On,
            "caseFirst": case_first,
            "strength": strength,
            "numericOrdering": r.numeric == CollationNumericOrdering::True,
            "alternate": if r.alternate_handling == AlternateHandling::Shifted {
                "shifted"
            } else {
                "non-ignorable"
            },
            "maxVariable": if r.max_variable == MaxVariable::Space { "space" } else { "punct" },
            "normalization": req.normalization.unwrap_or(false),
            // ICU4X takes backward secondary ordering from the locale only (fr_CA).
            "backwards": req.backwards.unwrap_or(locale.starts_with("fr_CA")),
            "version": ICU_VERSION,
        };
        Ok(Collation {
            spec,
            collator: Arc::new(collator),
        })
    }

    /// The resolved specification with every field, as the server reports it.
    pub fn to_document(&self) -> Document {
        self.spec.clone()
    }

    /// The locale as given (`"en_US"`).
    pub fn locale(&self) -> &str {
        self.spec.get_str("locale").unwrap_or_default()
    }

    /// Compares two strings under this collation.
    pub fn compare_strings(&self, a: &str, b: &str) -> Ordering {
        self.collator.compare(a, b)
    }

    /// The collation key of a string (the ICU sort key, hex-encoded so that it is still a
    /// string and sorts in the same order): strings that compare equal have equal keys.
    pub fn string_key(&self, s: &str) -> String {
        let mut key: Vec<u8> = Vec::new();
        let Ok(()) = self.collator.write_sort_key_to(s, &mut key);
        let mut out = String::with_capacity(key.len() * 2);
        for b in key {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// Compares two values as the server does under an optional collation: strings and symbols,
/// also inside documents and arrays, compare by the collation; field names and everything
/// else compare as without one.
pub fn compare_with(a: &Bson, b: &Bson, collation: Option<&Collation>) -> Ordering {
    let Some(c) = collation else {
        return compare(a, b);
    };
    match (a, b) {
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            c.compare_strings(x, y)
        }
        (Bson::Document(x), Bson::Document(y)) => compare_documents_with(x, y, c),
        (Bson::Array(x), Bson::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let o = compare_with(p, q, collation);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => compare(a, b),
    }
}

/// `BSONObj::woCompare` with a collator: type rank, then field name (binary), then value.
fn compare_documents_with(a: &Document, b: &Document, c: &Collation) -> Ordering {
    let mut ia = a.iter();
    let mut ib = b.iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = type_rank(va)
                    .cmp(&type_rank(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare_with(va, vb, Some(c)));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Whether two values are equal under an optional collation.
pub fn values_equal_with(a: &Bson, b: &Bson, collation: Option<&Collation>) -> bool {
    compare_with(a, b, collation) == Ordering::Equal
}

/// The value with every string (and symbol) replaced by its collation key, recursively, so
/// that values equal under the collation become equal under the plain [`compare`] (and hash
/// alike in an `OrdBson`): what `distinct`, `$group` and unique indexes key on. Without a
/// collation, the value itself.
pub fn comparison_key(v: &Bson, collation: Option<&Collation>) -> Bson {
    let Some(c) = collation else {
        return v.clone();
    };
    match v {
        Bson::String(s) => Bson::String(c.string_key(s)),
        // Symbols compare like strings; keep them strings so the two still meet.
        Bson::Symbol(s) => Bson::String(c.string_key(s)),
        Bson::Document(d) => Bson::Document(
            d.iter()
                .map(|(k, x)| (k.clone(), comparison_key(x, collation)))
                .collect(),
        ),
        Bson::Array(a) => Bson::Array(a.iter().map(|x| comparison_key(x, collation)).collect()),
        _ => v.clone(),
    }
}

/// Whether a value holds a string or symbol anywhere (a collation can change how it compares).
pub fn contains_strings(v: &Bson) -> bool {
    match v {
        Bson::String(_) | Bson::Symbol(_) => true,
        Bson::Document(d) => d.values().any(contains_strings),
        Bson::Array(a) => a.iter().any(contains_strings),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};
    use bson::doc;

    fn coll(spec: Document) -> Collation {
        Collation::parse(&spec).unwrap().unwrap()
    }

    fn en(strength: i32) -> Collation {
        coll(doc! {"locale": "en_US", "strength": strength})
    }

    fn err(spec: Document) -> CommandError {
        Collation::parse(&spec).unwrap_err()
    }

    #[test]
    fn shareable_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Collation>();
        send_sync::<crate::query::matcher::Matcher>();
        send_sync::<crate::query::sort::SortSpec>();
    }

    #[test]
    fn distinct_keeps_the_first_of_equal_strings() {
        // The crud spec's distinct-collation case: "PING" and "ping" are one value at
        // strength 2, reported as the first one seen.
        let c = en(2);
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for v in [Bson::from("PING"), Bson::from("ping")] {
            if seen.insert(crate::query::compare::OrdBson::from(comparison_key(
                &v,
                Some(&c),
            ))) {
                out.push(v);
            }
        }
        assert_eq!(out, vec![Bson::from("PING")]);
    }

    #[test]
    fn simple_is_binary_and_alone() {
        assert!(
            Collation::parse(&doc! {"locale": "simple"})
                .unwrap()
                .is_none()
        );
        assert_eq!(err(doc! {"locale": "simple", "strength": 2}).code, 9);
        assert_eq!(compare_with(&"B".into(), &"a".into(), None), Less);
    }

    #[test]
    fn parse_errors() {
        let e = err(doc! {"strength": 2});
        assert_eq!(e.code, 40414);
        assert_eq!(
            e.message,
            "BSON field 'locale' is missing but a required field"
        );
        assert_eq!(err(doc! {"locale": "en", "foo": 1}).code, 40415);
        assert_eq!(err(doc! {"locale": 1}).code, 14);
        assert_eq!(err(doc! {"locale": "en", "strength": "2"}).code, 14);
        assert_eq!(err(doc! {"locale": "en", "caseLevel": 1}).code, 14);
        assert_eq!(err(doc! {"locale": "en", "strength": 6}).code, 51024);
        assert_eq!(err(doc! {"locale": "en", "strength": 0}).code, 51024);
        assert_eq!(err(doc! {"locale": "en", "caseFirst": "UPPER"}).code, 2);
        assert_eq!(err(doc! {"locale": "en", "alternate": "blanked"}).code, 2);
        assert_eq!(err(doc! {"locale": "en", "maxVariable": "symbol"}).code, 2);
        // ICU locale IDs must be exact: no BCP 47 dashes, no wrong case, no garbage.
        for bad in ["", "en-US", "en_us", "EN", "xx_YY_ZZ", "english"] {
            assert_eq!(err(doc! {"locale": bad}).code, 2, "{bad}");
        }
        let e = err(doc! {"locale": "en-US"});
        assert_eq!(
            e.message,
            "Field 'locale' is invalid in: { locale: \"en-US\" }"
        );
        // Integral doubles are accepted for strength (IDL safeInt).
        assert!(Collation::parse(&doc! {"locale": "en", "strength": 2.0}).is_ok());
        assert_eq!(err(doc! {"locale": "en", "strength": 2.5}).code, 2);
    }

    #[test]
    fn resolved_spec_has_every_field() {
        let c = coll(doc! {"locale": "fr", "strength": 1});
        assert_eq!(
            c.to_document(),
            doc! {
                "locale": "fr", "caseLevel": false, "caseFirst": "off", "strength": 1,
                "numericOrdering": false, "alternate": "non-ignorable", "maxVariable": "punct",
                "normalization": false, "backwards": false, "version": "57.1",
            }
        );
        assert_eq!(c, coll(doc! {"strength": 1, "locale": "fr"}));
        assert_ne!(c, coll(doc! {"locale": "fr"}));
        // Danish sorts uppercase first by default (CLDR), as the server reports.
        assert_eq!(
            coll(doc! {"locale": "da"})
                .to_document()
                .get_str("caseFirst")
                .ok(),
            Some("upper")
        );
        for ok in [
            "en",
            "en_US",
            "zh_Hant",
            "zh_Hant_TW",
            "de@collation=phonebook",
            "root",
        ] {
            assert!(Collation::parse(&doc! {"locale": ok}).is_ok(), "{ok}");
        }
    }

    #[test]
    fn strength_levels_on_ascii_and_accents() {
        let (p, s, t) = (en(1), en(2), en(3));
        // Primary: base letters only.
        assert_eq!(p.compare_strings("cafe", "Café"), Equal);
        assert_eq!(p.compare_strings("resume", "RÉSUMÉ"), Equal);
        assert_eq!(p.compare_strings("a", "b"), Less);
        // Secondary: accents count, case does not.
        assert_eq!(s.compare_strings("ping", "PING"), Equal);
        assert_eq!(s.compare_strings("cafe", "café"), Less);
        assert_eq!(s.compare_strings("café", "CAFÉ"), Equal);
        // Tertiary (the default): lowercase before uppercase, accents before case.
        assert_eq!(t.compare_strings("ping", "PING"), Less);
        assert_eq!(t.compare_strings("a", "A"), Less);
        assert_eq!(t.compare_strings("A", "b"), Less);
        assert_eq!(coll(doc! {"locale": "en"}).compare_strings("a", "A"), Less);
        // Letters interleave alphabetically, unlike the binary order ("B" < "a").
        assert_eq!(t.compare_strings("B", "a"), Greater);
        // Non-Latin text: Greek final sigma and case.
        assert_eq!(p.compare_strings("ΣΟΦΟΣ", "σοφος"), Equal);
        assert_eq!(p.compare_strings("straße", "STRASSE"), Equal);
    }

    #[test]
    fn case_level_and_case_first() {
        let cl = coll(doc! {"locale": "en", "strength": 1, "caseLevel": true});
        assert_eq!(cl.compare_strings("cafe", "café"), Equal);
        assert_eq!(cl.compare_strings("cafe", "Cafe"), Less);
        let upper = coll(doc! {"locale": "en", "caseFirst": "upper"});
        assert_eq!(upper.compare_strings("A", "a"), Less);
        assert_eq!(upper.compare_strings("A", "b"), Less);
        let lower = coll(doc! {"locale": "en", "caseFirst": "lower"});
        assert_eq!(lower.compare_strings("a", "A"), Less);
        let off = coll(doc! {"locale": "en", "caseFirst": "off"});
        assert_eq!(off.compare_strings("a", "A"), Less);
        // caseFirst does not matter at strength 2.
        let s2 = coll(doc! {"locale": "en", "strength": 2, "caseFirst": "upper"});
        assert_eq!(s2.compare_strings("a", "A"), Equal);
    }

    #[test]
    fn numeric_ordering() {
        let n = coll(doc! {"locale": "en", "numericOrdering": true});
        assert_eq!(n.compare_strings("2", "10"), Less);
        assert_eq!(n.compare_strings("item 9", "item 10"), Less);
        // Leading zeros are not significant in a digit run.
        assert_eq!(n.compare_strings("007", "7"), Equal);
        let plain = coll(doc! {"locale": "en"});
        assert_eq!(plain.compare_strings("2", "10"), Greater);
    }

    #[test]
    fn alternate_shifted_ignores_punctuation() {
        let sh = coll(doc! {"locale": "en", "strength": 1, "alternate": "shifted"});
        assert_eq!(sh.compare_strings("black-bird", "blackbird"), Equal);
        assert_eq!(sh.compare_strings("black bird", "blackbird"), Equal);
        let sp = coll(doc! {
            "locale": "en", "strength": 1, "alternate": "shifted", "maxVariable": "space"
        });
        assert_eq!(sp.compare_strings("black bird", "blackbird"), Equal);
        assert_ne!(sp.compare_strings("black-bird", "blackbird"), Equal);
        let ni = en(1);
        assert_ne!(ni.compare_strings("black-bird", "blackbird"), Equal);
    }

    #[test]
    fn values_inside_documents_and_arrays() {
        let c = en(2);
        let a = Bson::Document(doc! {"x": "PING", "y": ["A", "b"]});
        let b = Bson::Document(doc! {"x": "ping", "y": ["a", "B"]});
        assert!(values_equal_with(&a, &b, Some(&c)));
        assert!(!values_equal_with(&a, &b, None));
        // Field names stay binary.
        let d = Bson::Document(doc! {"X": "ping"});
        let e = Bson::Document(doc! {"x": "ping"});
        assert!(!values_equal_with(&d, &e, Some(&c)));
        // Symbols compare like strings; type brackets are unchanged.
        assert!(values_equal_with(
            &Bson::Symbol("PING".into()),
            &"ping".into(),
            Some(&c)
        ));
        assert_eq!(compare_with(&Bson::Int32(5), &"a".into(), Some(&c)), Less);
        assert_eq!(
            compare_with(&"a".into(), &Bson::Document(doc! {}), Some(&c)),
            Less
        );
    }

    #[test]
    fn comparison_keys_agree_with_the_collation() {
        let c = en(2);
        let k = |v: Bson| comparison_key(&v, Some(&c));
        assert_eq!(k("PING".into()), k("ping".into()));
        assert_ne!(k("ping".into()), k("pïng".into()));
        assert_eq!(
            k(Bson::Document(doc! {"a": ["X", 1]})),
            k(Bson::Document(doc! {"a": ["x", 1]}))
        );
        let words = ["b", "A", "a", "é", "e", "B", "10", "9"];
        for x in words {
            for y in words {
                assert_eq!(
                    compare(&k(x.into()), &k(y.into())),
                    c.compare_strings(x, y),
                    "{x} vs {y}"
                );
            }
        }
        assert_eq!(comparison_key(&"A".into(), None), Bson::from("A"));
        assert!(contains_strings(&Bson::Array(vec![1.into(), "a".into()])));
        assert!(!contains_strings(&Bson::Array(vec![1.into()])));
    }
}
