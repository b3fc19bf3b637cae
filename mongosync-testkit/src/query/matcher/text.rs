//! `$text`: the search string's terms, phrases and negations, the text index's fields and
//! weights, and the server's score (term frequency, field weight, a bonus for a whole-field
//! match), with English stemming (Porter) and stop words.

use std::collections::BTreeMap;
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

/// The languages the server's text search knows (and `none`).
const LANGUAGES: &[&str] = &[
    "none",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "turkish",
    "da",
    "nl",
    "en",
    "fi",
    "fr",
    "de",
    "hu",
    "it",
    "nb",
    "pt",
    "ro",
    "ru",
    "es",
    "sv",
    "tr",
];

/// Whether the server's text search supports `lang`.
pub fn is_language(lang: &str) -> bool {
    LANGUAGES.contains(&lang.to_lowercase().as_str())
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
                for w in words(&phrase) {
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

    fn language<'a>(&'a self, idx: &'a TextIndex, doc: &'a Document) -> &'a str {
        if let Some(l) = &self.language {
            return l;
        }
        doc.get_str(&idx.language_override)
            .unwrap_or(&idx.default_language)
    }

    /// The stemmed query terms (positive, negated) for `lang`.
    fn terms(&self, lang: &str) -> (Vec<String>, Vec<String>) {
        let f = |ws: &Vec<String>| {
            let mut out: Vec<String> = ws.iter().filter_map(|w| self.term(w, lang)).collect();
            out.sort();
            out.dedup();
            out
        };
        (f(&self.positive), f(&self.negated))
    }

    /// A word as an index term: lowercased and without diacritics (text index version 3
    /// folds both), stop words dropped, stemmed.
    fn term(&self, w: &str, lang: &str) -> Option<String> {
        let t = fold(&w.to_lowercase());
        let english = matches!(lang, "english" | "en");
        if english && STOP_WORDS.contains(&t.as_str()) {
            return None;
        }
        Some(if english { stem(&t) } else { t })
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
    fn word_present(&self, w: &str, fields: &[(String, f64)], lang: &str) -> bool {
        let Some(t) = self.term(w, lang) else {
            return false;
        };
        fields.iter().any(|(raw, _)| {
            words(raw)
                .iter()
                .any(|d| self.term(d, lang).as_ref() == Some(&t) && self.sensitive_eq(d, w))
        })
    }

    /// The text score of `doc` if it matches, else `None`.
    pub fn score(&self, doc: &Document) -> Result<Option<f64>> {
        let idx = self.index()?;
        let lang = self.language(idx, doc).to_lowercase();
        let (positive, negated) = self.terms(&lang);
        if positive.is_empty() {
            return Ok(None);
        }
        let fields = indexed_strings(idx, doc);
        // Term -> score, as the server's scoring of each field's string.
        let mut scores: BTreeMap<String, f64> = BTreeMap::new();
        for (raw, weight) in &fields {
            let mut counts: BTreeMap<String, (u32, f64, f64)> = BTreeMap::new();
            let mut tokens = 0u32;
            for w in words(raw) {
                let Some(t) = self.term(&w, &lang) else {
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
        let present = |w: &String| self.word_present(w, &fields, &lang);
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
        let has = |p: &String| fields.iter().any(|(raw, _)| norm(raw).contains(&norm(p)));
        if !self.phrases.iter().all(has) || self.negated_phrases.iter().any(has) {
            return Ok(None);
        }
        Ok(Some(score))
    }
}

/// The strings of `doc` the index covers, with their weights.
fn indexed_strings(idx: &TextIndex, doc: &Document) -> Vec<(String, f64)> {
    fn all(v: &Bson, w: f64, out: &mut Vec<(String, f64)>) {
        match v {
            Bson::String(s) => out.push((s.clone(), w)),
            Bson::Array(a) => a.iter().for_each(|x| all(x, w, out)),
            Bson::Document(d) => d.values().for_each(|x| all(x, w, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (path, w) in &idx.weights {
        if path == "$**" {
            for (k, v) in doc {
                if idx.weights.iter().any(|(p, _)| p == k) {
                    continue;
                }
                all(v, *w, &mut out);
            }
            continue;
        }
        for v in crate::query::path::lookup_all(doc, path) {
            match v {
                Bson::String(s) => out.push((s.clone(), *w)),
                Bson::Array(a) => a.iter().for_each(|x| {
                    if let Bson::String(s) = x {
                        out.push((s.clone(), *w))
                    }
                }),
                _ => {}
            }
        }
    }
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Removes the common Latin diacritics (the server's diacritic-insensitive folding).
fn fold(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

fn fold_char(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
        'ç' => 'c',
        'Ç' => 'C',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'È' | 'É' | 'Ê' | 'Ë' => 'E',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'ñ' => 'n',
        'Ñ' => 'N',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'O',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
        'ý' | 'ÿ' => 'y',
        'Ý' => 'Y',
        other => other,
    }
}

/// The server's English stop words (`stop_words_english.txt`, the common ones).
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// The Porter stemmer (M.F. Porter, 1980), on lowercase ASCII words; other words are kept.
pub fn stem(w: &str) -> String {
    if w.len() <= 2 || !w.bytes().all(|b| b.is_ascii_lowercase()) {
        return w.to_string();
    }
    let mut s: Vec<u8> = w.bytes().collect();
    step1ab(&mut s);
    step1c(&mut s);
    step2(&mut s);
    step3(&mut s);
    step4(&mut s);
    step5(&mut s);
    String::from_utf8(s).unwrap_or_else(|_| w.to_string())
}

fn is_cons(s: &[u8], i: usize) -> bool {
    match s[i] {
        b'a' | b'e' | b'i' | b'o' | b'u' => false,
        b'y' => i == 0 || !is_cons(s, i - 1),
        _ => true,
    }
}

/// The measure m of `s[..len]`: the number of VC sequences.
fn measure(s: &[u8], len: usize) -> usize {
    let mut m = 0;
    let mut i = 0;
    while i < len && is_cons(s, i) {
        i += 1;
    }
    loop {
        while i < len && !is_cons(s, i) {
            i += 1;
        }
        if i >= len {
            return m;
        }
        while i < len && is_cons(s, i) {
            i += 1;
        }
        m += 1;
    }
}

fn has_vowel(s: &[u8], len: usize) -> bool {
    (0..len).any(|i| !is_cons(s, i))
}

fn double_cons(s: &[u8], len: usize) -> bool {
    len >= 2 && s[len - 1] == s[len - 2] && is_cons(s, len - 1)
}

/// cvc, the last c not w, x or y.
fn cvc(s: &[u8], len: usize) -> bool {
    len >= 3
        && is_cons(s, len - 3)
        && !is_cons(s, len - 2)
        && is_cons(s, len - 1)
        && !matches!(s[len - 1], b'w' | b'x' | b'y')
}

/// Replaces the suffix `from` by `to` when the stem before it has a measure above `m`.
fn replace(s: &mut Vec<u8>, from: &str, to: &str, m: usize) -> bool {
    if !s.ends_with(from.as_bytes()) {
        return false;
    }
    let stem = s.len() - from.len();
    if measure(s, stem) > m {
        s.truncate(stem);
        s.extend_from_slice(to.as_bytes());
    }
    true
}

fn step1ab(s: &mut Vec<u8>) {
    if s.ends_with(b"sses") || s.ends_with(b"ies") {
        s.truncate(s.len() - 2);
    } else if s.ends_with(b"ss") {
    } else if s.ends_with(b"s") {
        s.pop();
    }
    if s.ends_with(b"eed") {
        if measure(s, s.len() - 3) > 0 {
            s.pop();
        }
        return;
    }
    let cut = if s.ends_with(b"ed") && has_vowel(s, s.len() - 2) {
        2
    } else if s.ends_with(b"ing") && has_vowel(s, s.len() - 3) {
        3
    } else {
        return;
    };
    s.truncate(s.len() - cut);
    if s.ends_with(b"at") || s.ends_with(b"bl") || s.ends_with(b"iz") {
        s.push(b'e');
    } else if double_cons(s, s.len()) && !matches!(s[s.len() - 1], b'l' | b's' | b'z') {
        s.pop();
    } else if measure(s, s.len()) == 1 && cvc(s, s.len()) {
        s.push(b'e');
    }
}

fn step1c(s: &mut [u8]) {
    let n = s.len();
    if s[n - 1] == b'y' && has_vowel(s, n - 1) {
        s[n - 1] = b'i';
    }
}

fn step2(s: &mut Vec<u8>) {
    const RULES: &[(&str, &str)] = &[
        ("ational", "ate"),
        ("tional", "tion"),
        ("enci", "ence"),
        ("anci", "ance"),
        ("izer", "ize"),
        ("bli", "ble"),
        ("alli", "al"),
        ("entli", "ent"),
        ("eli", "e"),
        ("ousli", "ous"),
        ("ization", "ize"),
        ("ation", "ate"),
        ("ator", "ate"),
        ("alism", "al"),
        ("iveness", "ive"),
        ("fulness", "ful"),
        ("ousness", "ous"),
        ("aliti", "al"),
        ("iviti", "ive"),
        ("biliti", "ble"),
        ("logi", "log"),
    ];
    for (from, to) in RULES {
        if replace(s, from, to, 0) {
            return;
        }
    }
}

fn step3(s: &mut Vec<u8>) {
    const RULES: &[(&str, &str)] = &[
        ("icate", "ic"),
        ("ative", ""),
        ("alize", "al"),
        ("iciti", "ic"),
        ("ical", "ic"),
        ("ful", ""),
        ("ness", ""),
    ];
    for (from, to) in RULES {
        if replace(s, from, to, 0) {
            return;
        }
    }
}

fn step4(s: &mut Vec<u8>) {
    const SUFFIXES: &[&str] = &[
        "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion",
        "ou", "ism", "ate", "iti", "ous", "ive", "ize",
    ];
    // The longest matching suffix decides.
    let Some(suf) = SUFFIXES
        .iter()
        .filter(|x| s.ends_with(x.as_bytes()))
        .max_by_key(|x| x.len())
    else {
        return;
    };
    let stem = s.len() - suf.len();
    if *suf == "ion" && !(stem > 0 && matches!(s[stem - 1], b's' | b't')) {
        return;
    }
    if measure(s, stem) > 1 {
        s.truncate(stem);
    }
}

fn step5(s: &mut Vec<u8>) {
    let n = s.len();
    if s[n - 1] == b'e' {
        let m = measure(s, n - 1);
        if m > 1 || (m == 1 && !cvc(s, n - 1)) {
            s.pop();
        }
    }
    let n = s.len();
    if s[n - 1] == b'l' && double_cons(s, n) && measure(s, n) > 1 {
        s.pop();
    }
}

#[cfg(test)]
mod stem_tests {
    use super::stem;

    #[test]
    fn porter_examples() {
        for (w, s) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("running", "run"),
            ("hopping", "hop"),
            ("relational", "relat"),
            ("coffees", "coffe"),
            ("generalizations", "gener"),
            ("happy", "happi"),
            ("cats", "cat"),
            ("motoring", "motor"),
        ] {
            assert_eq!(stem(w), s, "{w}");
        }
    }
}
