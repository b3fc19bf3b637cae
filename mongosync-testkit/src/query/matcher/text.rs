//! `$text`: the search string's terms, phrases and negations, the text index's fields and
//! weights, and the server's score (term frequency, field weight, a bonus for a whole-field
//! match), tokenised as the server's text index version 3 does for each of its languages:
//! lowercased, stop words dropped, Snowball-stemmed, then diacritics stripped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use super::*;

/// A text index as `$text` uses it.
#[derive(Debug, Clone)]
pub struct TextIndex {
    /// Field paths (`$**`: every string) and weights.
    pub weights: Vec<(String, f64)>,
    pub default_language: String,
    pub language_override: String,
}

impl TextIndex {
    /// Reads a stored text index specification (`key: {_fts: "text", _ftsx: 1}`).
    pub fn from_spec(spec: &Document) -> Option<TextIndex> {
        let key = spec.get_document("key").ok()?;
        if key.get_str("_fts").ok() != Some("text") {
            return None;
        }
        let weights = spec
            .get_document("weights")
            .map(|w| {
                w.iter()
                    .map(|(k, v)| (k.clone(), num(v).unwrap_or(1.0)))
                    .collect()
            })
            .unwrap_or_default();
        Some(TextIndex {
            weights,
            default_language: spec
                .get_str("default_language")
                .unwrap_or("english")
                .to_string(),
            language_override: spec
                .get_str("language_override")
                .unwrap_or("language")
                .to_string(),
        })
    }
}

fn num(v: &Bson) -> Option<f64> {
    crate::query::compare::number_as_f64(v)
}

/// A parsed `$text` query.
#[derive(Debug, Clone)]
pub struct TextQuery {
    language: Option<String>,
    case_sensitive: bool,
    diacritic_sensitive: bool,
    /// Raw (unstemmed) words of the search, positive and negated, and phrases.
    positive: Vec<String>,
    negated: Vec<String>,
    phrases: Vec<String>,
    negated_phrases: Vec<String>,
    /// The collection's text index, bound before matching.
    pub(super) index: Arc<OnceLock<TextIndex>>,
}

/// The languages of text index version 3 (`kLanguagesV2V3` in the server's `fts_language.cpp`):
/// each name with its alias, matched without regard to ASCII case.
const LANGUAGES: &[(&str, &str)] = &[
    ("none", ""),
    ("danish", "da"),
    ("dutch", "nl"),
    ("english", "en"),
    ("finnish", "fi"),
    ("french", "fr"),
    ("german", "de"),
    ("hungarian", "hu"),
    ("italian", "it"),
    ("norwegian", "nb"),
    ("portuguese", "pt"),
    ("romanian", "ro"),
    ("russian", "ru"),
    ("spanish", "es"),
    ("swedish", "sv"),
    ("turkish", "tr"),
];

/// The language's full name (`"fr"` and `"French"` are `"french"`), or `None` when the server
/// does not support it.
pub fn canonical_language(lang: &str) -> Option<&'static str> {
    LANGUAGES
        .iter()
        .find(|(name, alias)| {
            lang.eq_ignore_ascii_case(name)
                || (!alias.is_empty() && lang.eq_ignore_ascii_case(alias))
        })
        .map(|(name, _)| *name)
}

/// Whether the server's text search supports `lang`.
pub fn is_language(lang: &str) -> bool {
    canonical_language(lang).is_some()
}

/// The server's stop words of a language (none for `none` and `romanian`), from the data file
/// copied from its source.
fn stop_words(lang: &str) -> &'static HashSet<&'static str> {
    static LISTS: OnceLock<HashMap<&'static str, HashSet<&'static str>>> = OnceLock::new();
    static EMPTY: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let lists = LISTS.get_or_init(|| {
        let mut lists: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut current = None;
        for line in include_str!("data/stop_words.txt").lines() {
            if let Some(lang) = line.strip_prefix("= ") {
                current = Some(lang);
            } else if let Some(lang) =
                current.filter(|_| !line.starts_with('#') && !line.is_empty())
            {
                lists.entry(lang).or_default().insert(line);
            }
        }
        lists
    });
    lists
        .get(lang)
        .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
}

/// The Snowball stemmer the server's libstemmer uses for a language (none for `none`).
fn stemmer(lang: &str) -> Option<rust_stemmers::Stemmer> {
    use rust_stemmers::Algorithm as A;
    let alg = match lang {
        "danish" => A::Danish,
        "dutch" => A::Dutch,
        "english" => A::English,
        "finnish" => A::Finnish,
        "french" => A::French,
        "german" => A::German,
        "hungarian" => A::Hungarian,
        "italian" => A::Italian,
        "norwegian" => A::Norwegian,
        "portuguese" => A::Portuguese,
        "romanian" => A::Romanian,
        "russian" => A::Russian,
        "spanish" => A::Spanish,
        "swedish" => A::Swedish,
        "turkish" => A::Turkish,
        _ => return None,
    };
    Some(rust_stemmers::Stemmer::create(alg))
}

/// Lowercases as the server's tokenizer: Turkish maps `I` to dotless `ı` and `İ` to `i`.
fn lower(w: &str, lang: &str) -> String {
    if lang == "turkish" {
        w.chars()
            .map(|c| match c {
                'I' => "ı".to_string(),
                'İ' => "i".to_string(),
                c => c.to_lowercase().collect(),
            })
            .collect()
    } else {
        w.to_lowercase()
    }
}

/// A word as a text index version 3 term, in the server's order (`UnicodeFTSTokenizer`):
/// lowercased, dropped if a stop word (checked with its diacritics), stemmed (the stemmer
/// sees the diacritics), then diacritics stripped.
pub fn index_term(w: &str, lang: &str) -> Option<String> {
    let lang = canonical_language(lang).unwrap_or("none");
    let t = lower(w, lang);
    if stop_words(lang).contains(t.as_str()) {
        return None;
    }
    let stemmed = match stemmer(lang) {
        Some(s) => s.stem(&t).into_owned(),
        None => t,
    };
    Some(fold(&stemmed))
}

impl TextQuery {
    /// Parses `{$search, $language, $caseSensitive, $diacriticSensitive}`.
    pub fn parse(v: &Bson) -> Result<TextQuery> {
        let Bson::Document(d) = v else {
            return Err(CommandError::bad_value("$text expects an object"));
        };
        let mut search = None;
        let mut q = TextQuery {
            language: None,
            case_sensitive: false,
            diacritic_sensitive: false,
            positive: Vec::new(),
            negated: Vec::new(),
            phrases: Vec::new(),
            negated_phrases: Vec::new(),
            index: Arc::new(OnceLock::new()),
        };
        for (k, v) in d {
            match (k.as_str(), v) {
                ("$search", Bson::String(s)) => search = Some(s.clone()),
                ("$search", _) => {
                    return Err(CommandError::type_mismatch(format!(
                        "$search had the wrong type. Expected string, found {}",
                        type_name(v)
                    )));
                }
                ("$language", Bson::String(s)) => {
                    if !is_language(s) {
                        return Err(CommandError::bad_value(format!(
                            "unsupported language: \"{s}\" for text index version 3"
                        )));
                    }
                    q.language = Some(s.to_lowercase());
                }
                ("$caseSensitive", Bson::Boolean(b)) => q.case_sensitive = *b,
                ("$diacriticSensitive", Bson::Boolean(b)) => q.diacritic_sensitive = *b,
                ("$language" | "$caseSensitive" | "$diacriticSensitive", _) => {
                    return Err(CommandError::type_mismatch(format!(
                        "{k} had the wrong type. Expected {}, found {}",
                        if k == "$language" { "string" } else { "bool" },
                        type_name(v)
                    )));
                }
                _ => {
                    return Err(CommandError::bad_value(format!(
                        "Unexpected field in $text: {k}"
                    )));
                }
            }
        }
        let Some(search) = search else {
            return Err(CommandError::failed_to_parse(
                "$text requires a $search field",
            ));
        };
        q.parse_search(&search);
        Ok(q)
    }

    /// Splits the search string as the server does: quoted phrases (a `-` before the quote
    /// negates), words (a leading `-` negates).
    fn parse_search(&mut self, s: &str) {
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let negate = chars[i] == '-' && i + 1 < chars.len() && chars[i + 1] != ' ';
            let start = if negate { i + 1 } else { i };
            if chars.get(start) == Some(&'"') {
                let end = chars[start + 1..]
                    .iter()
                    .position(|c| *c == '"')
                    .map_or(chars.len(), |p| start + 1 + p);
                let phrase: String = chars[start + 1..end].iter().collect();
                for w in search_words(&phrase) {
                    if negate {
                        // The words of a negated phrase are not search terms.
                    } else {
                        self.positive.push(w);
                    }
                }
                if negate {
                    self.negated_phrases.push(phrase);
                } else {
                    self.phrases.push(phrase);
                }
                i = end + 1;
                continue;
            }
            if is_word_char(chars[i]) || negate {
                let end = chars[start..]
                    .iter()
                    .position(|c| !is_word_char(*c))
                    .map_or(chars.len(), |p| start + p);
                let word: String = chars[start..end].iter().collect();
                if !word.is_empty() {
                    if negate {
                        self.negated.push(word);
                    } else {
                        self.positive.push(word);
                    }
                }
                i = end.max(i + 1);
                continue;
            }
            i += 1;
        }
    }

    fn index(&self) -> Result<&TextIndex> {
        self.index.get().ok_or_else(|| {
            CommandError::new(
                codes::INDEX_NOT_FOUND,
                "text index required for $text query",
            )
        })
    }

    /// The query's language: its `$language`, else the index's default (the server
    /// tokenises the search string once, in this language).
    fn query_language(&self, idx: &TextIndex) -> &'static str {
        let l = self.language.as_deref().unwrap_or(&idx.default_language);
        canonical_language(l).unwrap_or("none")
    }

    /// The stemmed query terms (positive, negated) for `lang`: a raw word keeps its
    /// apostrophes, which split it in every language but English.
    fn terms(&self, lang: &str) -> (Vec<String>, Vec<String>) {
        let f = |ws: &Vec<String>| {
            let mut out: Vec<String> = ws
                .iter()
                .flat_map(|w| words(w, lang))
                .filter_map(|w| self.term(&w, lang))
                .collect();
            out.sort();
            out.dedup();
            out
        };
        (f(&self.positive), f(&self.negated))
    }

    /// A word as an index term (see `index_term`).
    fn term(&self, w: &str, lang: &str) -> Option<String> {
        index_term(w, lang)
    }

    /// With `$caseSensitive`/`$diacriticSensitive`, whether the document word `d` is the query
    /// word `w` under those flags (beyond sharing its index term): the characters they
    /// share, up to the shorter's length, must agree in case and accents.
    fn sensitive_eq(&self, d: &str, w: &str) -> bool {
        d.chars().zip(w.chars()).all(|(a, b)| {
            let (a, b) = if self.diacritic_sensitive {
                (a, b)
            } else {
                (fold_char(a), fold_char(b))
            };
            if self.case_sensitive {
                a == b
            } else {
                a.to_lowercase().eq(b.to_lowercase())
            }
        })
    }

    /// Whether a query word is in `fields` (checked only when sensitivity flags are set).
    fn word_present(&self, w: &str, fields: &[(String, f64, &str)], query_lang: &str) -> bool {
        let Some(t) = self.term(w, query_lang) else {
            return false;
        };
        fields.iter().any(|(raw, _, lang)| {
            words(raw, lang)
                .iter()
                .any(|d| self.term(d, lang).as_ref() == Some(&t) && self.sensitive_eq(d, w))
        })
    }

    /// The text score of `doc` if it matches, else `None`.
    pub fn score(&self, doc: &Document) -> Result<Option<f64>> {
        let idx = self.index()?;
        let query_lang = self.query_language(idx);
        let (positive, negated) = self.terms(query_lang);
        if positive.is_empty() {
            return Ok(None);
        }
        let fields = indexed_strings(idx, doc);
        // Term -> score, as the server's scoring of each field's string.
        let mut scores: BTreeMap<String, f64> = BTreeMap::new();
        for (raw, weight, lang) in &fields {
            let mut counts: BTreeMap<String, (u32, f64, f64)> = BTreeMap::new();
            let mut tokens = 0u32;
            for w in words(raw, lang) {
                let Some(t) = self.term(&w, lang) else {
                    continue;
                };
                let e = counts.entry(t).or_insert((0, 0.0, 0.0));
                // Repeats count for less and less: 1 + 1/2 + 1/4 ...
                e.2 = if e.2 == 0.0 { 1.0 } else { e.2 * 2.0 };
                e.0 += 1;
                e.1 += 1.0 / e.2;
                tokens += 1;
            }
            for (t, (count, freq, _)) in counts {
                let coeff = 0.5 * count as f64 / tokens as f64 + 0.5;
                let bonus = if raw.len() == t.len() && raw.eq_ignore_ascii_case(&t) {
                    1.1
                } else {
                    1.0
                };
                *scores.entry(t).or_default() += weight * freq * coeff * bonus;
            }
        }
        if negated.iter().any(|t| scores.contains_key(t)) {
            return Ok(None);
        }
        let score: f64 = positive.iter().filter_map(|t| scores.get(t)).sum();
        if !positive.iter().any(|t| scores.contains_key(t)) {
            return Ok(None);
        }
        let present = |w: &String| self.word_present(w, &fields, query_lang);
        if (self.case_sensitive || self.diacritic_sensitive)
            && (!self.positive.iter().any(present) || self.negated.iter().any(present))
        {
            return Ok(None);
        }
        let norm = |s: &str| {
            let s = if self.case_sensitive {
                s.to_string()
            } else {
                s.to_lowercase()
            };
            if self.diacritic_sensitive {
                s
            } else {
                fold(&s)
            }
        };
        let has = |p: &String| {
            fields
                .iter()
                .any(|(raw, _, _)| norm(raw).contains(&norm(p)))
        };
        if !self.phrases.iter().all(has) || self.negated_phrases.iter().any(has) {
            return Ok(None);
        }
        Ok(Some(score))
    }
}

/// The strings of `doc` the index covers, with their weights and languages: the language of
/// a string is its (sub)document's override field, else its parent's, down from the index's
/// default (the server's `FTSElementIterator`).
fn indexed_strings(idx: &TextIndex, doc: &Document) -> Vec<(String, f64, &'static str)> {
    type Out = Vec<(String, f64, &'static str)>;
    let language = |d: &Document, parent: &'static str| match d.get(&idx.language_override) {
        Some(Bson::String(l)) => canonical_language(l).unwrap_or(parent),
        _ => parent,
    };
    // `$**`: every string, at any depth.
    // `$**` skips the language override fields themselves.
    fn all(
        v: &Bson,
        w: f64,
        lang: &'static str,
        over: &str,
        lang_of: &dyn Fn(&Document, &'static str) -> &'static str,
        out: &mut Out,
    ) {
        match v {
            Bson::String(s) => out.push((s.clone(), w, lang)),
            Bson::Array(a) => a.iter().for_each(|x| all(x, w, lang, over, lang_of, out)),
            Bson::Document(d) => {
                let lang = lang_of(d, lang);
                d.iter()
                    .filter(|(k, _)| k.as_str() != over)
                    .for_each(|(_, x)| all(x, w, lang, over, lang_of, out))
            }
            _ => {}
        }
    }
    // A dotted path through subdocuments and arrays of them; the strings at its end (or in
    // an array there).
    fn along(
        v: &Bson,
        parts: &[&str],
        w: f64,
        lang: &'static str,
        lang_of: &dyn Fn(&Document, &'static str) -> &'static str,
        out: &mut Out,
    ) {
        match (v, parts.split_first()) {
            (Bson::String(s), None) => out.push((s.clone(), w, lang)),
            (Bson::Array(a), None) => a.iter().for_each(|x| {
                if let Bson::String(s) = x {
                    out.push((s.clone(), w, lang))
                }
            }),
            (Bson::Document(d), Some((first, rest))) => {
                let lang = lang_of(d, lang);
                if let Some(x) = d.get(*first) {
                    along(x, rest, w, lang, lang_of, out);
                }
            }
            (Bson::Array(a), Some(_)) => a
                .iter()
                .filter(|x| matches!(x, Bson::Document(_)))
                .for_each(|x| along(x, parts, w, lang, lang_of, out)),
            _ => {}
        }
    }
    let default = canonical_language(&idx.default_language).unwrap_or("none");
    let top = language(doc, default);
    let mut out = Vec::new();
    for (path, w) in &idx.weights {
        if path == "$**" {
            for (k, v) in doc {
                if *k == idx.language_override || idx.weights.iter().any(|(p, _)| p == k) {
                    continue;
                }
                all(v, *w, top, &idx.language_override, &language, &mut out);
            }
            continue;
        }
        let parts: Vec<&str> = path.split('.').collect();
        let root = Bson::Document(doc.clone());
        along(&root, &parts, *w, default, &language, &mut out);
    }
    out
}

/// Whether `c` belongs to a word in the search string (apostrophes kept: `words` splits on
/// them by language).
fn is_word_char(c: char) -> bool {
    c == '\'' || is_token_char(c, "english")
}

/// Whether `c` belongs to a token: the server's delimiters are white space and punctuation
/// (all ASCII punctuation but `_`), except that English keeps the apostrophe in a word.
fn is_token_char(c: char, lang: &str) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_' || (c == '\'' && lang == "english");
    }
    !c.is_whitespace() && !is_unicode_delimiter(c)
}

/// The server's delimiters beyond ASCII (`codepointIsDelimiter`: the White_Space, Dash,
/// Hyphen, Quotation_Mark, Terminal_Punctuation, Pattern_Syntax and STerm properties), by
/// their blocks; other symbols (`€`) and combining marks belong to words.
fn is_unicode_delimiter(c: char) -> bool {
    matches!(c,
        '\u{A1}'..='\u{A7}' | '\u{A9}' | '\u{AB}' | '\u{AC}' | '\u{AE}' | '\u{B0}' | '\u{B1}'
        | '\u{B6}' | '\u{B7}' | '\u{BB}' | '\u{BF}' | '\u{D7}' | '\u{F7}'
        | '\u{37E}' | '\u{387}' | '\u{589}' | '\u{58A}' | '\u{5BE}' | '\u{5C0}' | '\u{5C3}'
        | '\u{5C6}' | '\u{5F3}' | '\u{5F4}' | '\u{60C}' | '\u{61B}' | '\u{61F}' | '\u{6D4}'
        | '\u{964}' | '\u{965}' | '\u{E5A}' | '\u{E5B}' | '\u{1806}' | '\u{1361}'..='\u{1368}'
        | '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '\u{2190}'..='\u{245F}'
        | '\u{2500}'..='\u{2775}' | '\u{2794}'..='\u{2BFF}' | '\u{2E00}'..='\u{2E7F}'
        | '\u{3001}'..='\u{3003}' | '\u{3008}'..='\u{3020}' | '\u{3030}'
        | '\u{FD3E}' | '\u{FD3F}' | '\u{FE10}'..='\u{FE19}' | '\u{FE30}'..='\u{FE52}'
        | '\u{FE54}'..='\u{FE63}' | '\u{FF01}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}'
        | '\u{FF3B}'..='\u{FF3D}' | '\u{FF3F}' | '\u{FF5B}'..='\u{FF65}')
}

/// The words of a search string, apostrophes kept.
fn search_words(s: &str) -> Vec<String> {
    s.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The tokens of `s` in `lang`.
fn words(s: &str, lang: &str) -> Vec<String> {
    let lang = canonical_language(lang).unwrap_or("none");
    s.split(|c: char| !is_token_char(c, lang))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Removes diacritics as the server's text index version 3 does (its generated tables): a
/// combining mark is dropped, and a character becomes the single character left once its
/// canonical decomposition loses its marks (`é` is `e`, `й` is `и`, `ά` is `α`); a letter
/// without a decomposition (`ø`, `ł`, dotless `ı`) is kept.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !is_diacritic_mark(*c))
        .map(fold_char)
        .collect()
}

fn fold_char(c: char) -> char {
    use unicode_normalization::UnicodeNormalization;
    if c.is_ascii() {
        return c;
    }
    let base: String = std::iter::once(c)
        .nfd()
        .filter(|m| !is_diacritic_mark(*m))
        .collect();
    let mut composed = base.nfc();
    match (composed.next(), composed.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// The combining marks with Unicode's Diacritic property (Latin, Greek, Cyrillic, Hebrew and
/// Arabic points, and the supplements), which the server strips.
fn is_diacritic_mark(c: char) -> bool {
    matches!(c,
        '\u{300}'..='\u{34E}'
        | '\u{350}'..='\u{357}'
        | '\u{35D}'..='\u{362}'
        | '\u{483}'..='\u{487}'
        | '\u{591}'..='\u{5A1}'
        | '\u{5A3}'..='\u{5BD}'
        | '\u{5BF}'
        | '\u{5C1}'..='\u{5C2}'
        | '\u{5C4}'
        | '\u{64B}'..='\u{652}'
        | '\u{1AB0}'..='\u{1ABD}'
        | '\u{1DC4}'..='\u{1DCF}'
        | '\u{1DF5}'..='\u{1DFF}'
        | '\u{FE20}'..='\u{FE2F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(search: Document) -> TextQuery {
        let q = TextQuery::parse(&Bson::Document(search)).unwrap();
        let idx = TextIndex::from_spec(&bson::doc! {
            "key": {"_fts": "text", "_ftsx": 1},
            "weights": {"body": 1},
            "default_language": "english",
            "language_override": "lang",
        })
        .unwrap();
        q.index.set(idx).unwrap();
        q
    }

    #[test]
    fn snowball_stems_as_libstemmer() {
        // Snowball English (Porter2, as the server's libstemmer), not the 1980 Porter.
        for (w, t) in [
            ("Running", "run"),
            ("dying", "die"),
            ("generously", "generous"),
            ("cats", "cat"),
            ("dog's", "dog"),
        ] {
            assert_eq!(index_term(w, "english").as_deref(), Some(t), "{w}");
        }
        // Stemmed before the diacritics go, so the French stemmer sees them.
        assert_eq!(
            index_term("continuellement", "fr").as_deref(),
            Some("continuel")
        );
        // French deletes the verb-like ending "-ants" in RV ("éléph"), then the accents go.
        assert_eq!(index_term("Éléphants", "french").as_deref(), Some("eleph"));
        assert_eq!(index_term("Häuser", "German").as_deref(), Some("haus"));
        assert_eq!(index_term("chicas", "es").as_deref(), Some("chic"));
        // `none`: no stemming, no stop words.
        assert_eq!(index_term("Running", "none").as_deref(), Some("running"));
        assert_eq!(index_term("the", "none").as_deref(), Some("the"));
        // Diacritics of any script go after stemming; letters without a decomposition stay.
        assert_eq!(index_term("йогурт", "none").as_deref(), Some("иогурт"));
        assert_eq!(index_term("ἄνθρωπος", "none").as_deref(), Some("ανθρωπος"));
        assert_eq!(
            index_term("smørrebrød", "none").as_deref(),
            Some("smørrebrød")
        );
        assert_eq!(index_term("cafe\u{301}", "none").as_deref(), Some("cafe"));
        // Turkish lowercasing (I is dotless ı), then the Snowball Turkish stemmer, which
        // removes noun suffixes (plural -lAr, cases) from words of more than one syllable.
        assert_eq!(index_term("IŞIK", "turkish").as_deref(), Some("ısık"));
        for (word, stem) in [
            ("kitaplar", "kitap"),
            ("kitapları", "kitap"),
            ("evlerden", "ev"),
            ("çocuklar", "cocuk"),
            ("arabalar", "araba"),
        ] {
            assert_eq!(index_term(word, "tr").as_deref(), Some(stem), "{word}");
        }
    }

    #[test]
    fn stop_words_per_language() {
        // Each language's list from the server's source, checked before diacritics go.
        for (w, lang) in [
            ("the", "english"),
            ("don't", "en"),
            ("été", "french"),
            ("und", "german"),
            ("estaría", "spanish"),
            ("perché", "italian"),
            ("не", "russian"),
            ("için", "turkish"),
        ] {
            assert_eq!(index_term(w, lang), None, "{w} in {lang}");
        }
        assert_eq!(index_term("ete", "french").as_deref(), Some("ete"));
        assert_eq!(index_term("the", "french").as_deref(), Some("the"));
        // English keeps apostrophes in words; other languages split on them.
        assert_eq!(words("l'été don't", "french"), vec!["l", "été", "don", "t"]);
        assert_eq!(words("l'été don't", "english"), vec!["l'été", "don't"]);
        // Unicode punctuation splits (the typographic apostrophe too); symbols and combining
        // marks stay in the word.
        assert_eq!(
            words("«prix» 5€ — it’s cafe\u{301}", "english"),
            vec!["prix", "5€", "it", "s", "cafe\u{301}"]
        );
        assert!(stop_words("romanian").is_empty());
    }

    #[test]
    fn document_language_and_query_language() {
        let fr = bson::doc! {"body": "Les éléphants mangent", "lang": "fr"};
        let en = bson::doc! {"body": "The elephants eat"};
        // The search string is stemmed in the query's language, each document in its own.
        let q = bound(bson::doc! {"$search": "éléphant", "$language": "french"});
        assert!(q.score(&fr).unwrap().is_some());
        assert!(
            bound(bson::doc! {"$search": "elephant"})
                .score(&en)
                .unwrap()
                .is_some()
        );
        // A French stop word is no search term: nothing matches.
        let q = bound(bson::doc! {"$search": "les", "$language": "fr"});
        assert!(q.score(&fr).unwrap().is_none());
        let e = TextQuery::parse(&Bson::Document(
            bson::doc! {"$search": "a", "$language": "xx"},
        ))
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (2, "unsupported language: \"xx\" for text index version 3")
        );
        // A subdocument's own override field sets the language of its strings.
        let nested = bson::doc! {"body": "x", "lang": "english", "quotes": [
            {"body": "Die Häuser", "lang": "german"}
        ]};
        let idx = TextIndex::from_spec(&bson::doc! {
            "key": {"_fts": "text", "_ftsx": 1},
            "weights": {"quotes.body": 1},
            "language_override": "lang",
        })
        .unwrap();
        let q = TextQuery::parse(&Bson::Document(
            bson::doc! {"$search": "haus", "$language": "de"},
        ))
        .unwrap();
        q.index.set(idx.clone()).unwrap();
        assert!(q.score(&nested).unwrap().is_some());
        let fields = indexed_strings(&idx, &nested);
        assert_eq!(fields, vec![("Die Häuser".to_string(), 1.0, "german")]);
        // A wildcard index does not index the override fields themselves.
        let wild = TextIndex::from_spec(&bson::doc! {
            "key": {"_fts": "text", "_ftsx": 1},
            "weights": {"$**": 1},
            "language_override": "lang",
        })
        .unwrap();
        assert_eq!(
            indexed_strings(&wild, &nested),
            vec![
                ("x".to_string(), 1.0, "english"),
                ("Die Häuser".to_string(), 1.0, "german")
            ]
        );
        // Diacritics: insensitive by default, exact with `$diacriticSensitive`.
        let q = bound(bson::doc! {"$search": "elephants", "$language": "FR"});
        assert!(q.score(&fr).unwrap().is_some());
        let q = bound(bson::doc! {
            "$search": "elephants", "$language": "french", "$diacriticSensitive": true
        });
        assert!(q.score(&fr).unwrap().is_none());
    }
}
