//! Secondary indexes: their specification as `listIndexes` reports it and, for unique
//! indexes, the key entries that enforce uniqueness.

use std::collections::{BTreeMap, BTreeSet};

use bson::{Bson, Document};

use crate::error::{CommandError, Result, codes};
use crate::query::compare::OrdBson;
use crate::query::matcher::Matcher;
use crate::query::matcher::geo;
use crate::query::path;

use super::collection::RecordId;

/// One index of a collection.
#[derive(Debug, Clone)]
pub struct Index {
    /// The specification as stored and listed: `{v: 2, key, name, ...options}`.
    pub spec: Document,
    /// The partial filter, if any.
    partial: Option<Matcher>,
    /// Unique keys to the records holding them (only maintained for unique indexes).
    entries: BTreeMap<Vec<OrdBson>, BTreeSet<RecordId>>,
}

impl Index {
    /// An index from a validated specification.
    pub fn new(spec: Document) -> Result<Index> {
        let partial = match spec.get_document("partialFilterExpression") {
            Ok(f) => Some(Matcher::new(f, &Document::new())?),
            Err(_) => None,
        };
        Ok(Index {
            spec,
            partial,
            entries: BTreeMap::new(),
        })
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        self.spec.get_str("name").unwrap_or("")
    }

    /// The key pattern.
    pub fn key(&self) -> &Document {
        static EMPTY: std::sync::OnceLock<Document> = std::sync::OnceLock::new();
        self.spec
            .get_document("key")
            .unwrap_or_else(|_| EMPTY.get_or_init(Document::new))
    }

    /// Whether uniqueness is enforced.
    pub fn is_unique(&self) -> bool {
        self.spec.get_bool("unique").unwrap_or(false)
    }

    /// Whether new duplicates are refused: unique indexes, and `prepareUnique` ones (which
    /// refuse new duplicates while tolerating old ones, before a conversion to unique).
    fn refuses_duplicates(&self) -> bool {
        self.is_unique() || self.spec.get_bool("prepareUnique").unwrap_or(false)
    }

    fn is_sparse(&self) -> bool {
        self.spec.get_bool("sparse").unwrap_or(false)
    }

    /// The index keys of `doc` (several for a multikey index; none if the document is not
    /// indexed because of `sparse` or the partial filter).
    pub fn keys_of(&self, doc: &Document) -> Result<Vec<Vec<OrdBson>>> {
        if let Some(p) = &self.partial
            && !p.matches(doc)
        {
            return Ok(Vec::new());
        }
        let mut keys: Vec<Vec<OrdBson>> = vec![Vec::new()];
        let mut all_missing = true;
        let mut array_fields = 0;
        for (field, _) in self.key() {
            let values = path::lookup_all(doc, field);
            let values: Vec<Bson> = if values.is_empty() {
                vec![Bson::Null]
            } else {
                all_missing = false;
                let mut out = Vec::new();
                let mut saw_array = false;
                for v in values {
                    match v {
                        Bson::Array(items) => {
                            saw_array = true;
                            if items.is_empty() {
                                out.push(Bson::Undefined);
                            }
                            out.extend(items.iter().cloned());
                        }
                        other => out.push(other.clone()),
                    }
                }
                if saw_array {
                    array_fields += 1;
                }
                out.sort_by(crate::query::compare::compare);
                out.dedup_by(|a, b| crate::query::compare::compare(a, b).is_eq());
                out
            };
            if array_fields > 1 {
                return Err(CommandError::new(
                    171,
                    format!("cannot index parallel arrays for index {}", self.name()),
                ));
            }
            keys = keys
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut k = prefix.clone();
                        k.push(OrdBson(v.clone()));
                        k
                    })
                })
                .collect();
        }
        if all_missing && self.is_sparse() {
            return Ok(Vec::new());
        }
        Ok(keys)
    }

    /// Checks that `doc` (to be stored as `rid`) violates no uniqueness; `ns` names the
    /// collection in the error.
    pub fn check_unique(&self, ns: &str, doc: &Document, rid: RecordId) -> Result<()> {
        self.check_geo(doc)?;
        if !self.refuses_duplicates() {
            return Ok(());
        }
        for key in self.keys_of(doc)? {
            if let Some(holders) = self.entries.get(&key)
                && holders.iter().any(|r| *r != rid)
            {
                return Err(self.duplicate_error(ns, &key));
            }
        }
        Ok(())
    }

    /// A `2dsphere` index refuses documents whose indexed value is not a valid geometry
    /// (16755; null is not indexed), a `2d` index legacy pairs out of its bounds (13027), and
    /// a text index a language override it does not know (17262).
    fn check_geo(&self, doc: &Document) -> Result<()> {
        if let Some(over) = self.spec.get_str("language_override").ok()
            && let Some(lang) = doc.get(over)
        {
            match lang {
                Bson::String(l) if crate::query::matcher::text::is_language(l) => {}
                Bson::String(l) => {
                    return Err(CommandError::new(
                        17262,
                        format!("language override unsupported: {l}"),
                    ));
                }
                _ => {
                    return Err(CommandError::new(
                        17261,
                        "found language override field in document with non-string type",
                    ));
                }
            }
        }
        for (field, kind) in self.key() {
            let kind = match kind {
                Bson::String(k) if k == "2dsphere" || k == "2d" => k.as_str(),
                _ => continue,
            };
            for v in geo::geo_values(doc, field) {
                if matches!(v, Bson::Null | Bson::Undefined) {
                    continue;
                }
                if kind == "2dsphere" {
                    {
                        if let Err(e) = geo::check_indexable(v) {
                            return Err(CommandError::new(
                                16755,
                                format!(
                                    "Can't extract geo keys: {}  {}",
                                    crate::util::shell_repr(&Bson::Document(doc.clone())),
                                    e.message
                                ),
                            ));
                        }
                    }
                } else if let Some(p) = geo::legacy_point(v) {
                    let min = self
                        .spec
                        .get("min")
                        .and_then(crate::util::as_f64)
                        .unwrap_or(-180.0);
                    let max = self
                        .spec
                        .get("max")
                        .and_then(crate::util::as_f64)
                        .unwrap_or(180.0);
                    if p.x < min || p.x >= max || p.y < min || p.y >= max {
                        return Err(CommandError::new(
                            13027,
                            format!(
                                "point not in interval of [ {min}, {max} ) :: caused by :: {}",
                                crate::util::shell_repr(v)
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The DuplicateKey error a real server gives for `key`.
    pub fn duplicate_error(&self, ns: &str, key: &[OrdBson]) -> CommandError {
        duplicate_key_error(ns, self.name(), self.key(), key.iter().map(|k| &k.0))
    }

    /// Records `doc` as `rid`'s entry (unique indexes only keep entries).
    pub fn add(&mut self, doc: &Document, rid: RecordId) -> Result<()> {
        if !self.refuses_duplicates() {
            return Ok(());
        }
        for key in self.keys_of(doc)? {
            self.entries.entry(key).or_default().insert(rid);
        }
        Ok(())
    }

    /// Removes `doc`'s entries for `rid`.
    pub fn remove(&mut self, doc: &Document, rid: RecordId) {
        if !self.refuses_duplicates() {
            return;
        }
        if let Ok(keys) = self.keys_of(doc) {
            for key in keys {
                if let Some(set) = self.entries.get_mut(&key) {
                    set.remove(&rid);
                    if set.is_empty() {
                        self.entries.remove(&key);
                    }
                }
            }
        }
    }

    /// Rebuilds the entries from every document; fails on the first duplicate.
    pub fn rebuild<'a>(
        &mut self,
        ns: &str,
        docs: impl Iterator<Item = (RecordId, Document)> + 'a,
    ) -> Result<()> {
        self.entries.clear();
        if !self.refuses_duplicates() {
            return Ok(());
        }
        for (rid, doc) in docs {
            for key in self.keys_of(&doc)? {
                let unique = self.is_unique();
                let set = self.entries.entry(key.clone()).or_default();
                if unique && !set.is_empty() && !set.contains(&rid) {
                    return Err(self.duplicate_error(ns, &key));
                }
                set.insert(rid);
            }
        }
        Ok(())
    }

    /// The keys held by more than one record: what stops a conversion to unique.
    pub fn duplicates<'a>(
        &self,
        docs: impl Iterator<Item = (RecordId, Document)> + 'a,
    ) -> Result<Vec<(Vec<OrdBson>, Vec<RecordId>)>> {
        let mut seen: BTreeMap<Vec<OrdBson>, BTreeSet<RecordId>> = BTreeMap::new();
        for (rid, doc) in docs {
            for key in self.keys_of(&doc)? {
                seen.entry(key).or_default().insert(rid);
            }
        }
        Ok(seen
            .into_iter()
            .filter(|(_, rids)| rids.len() > 1)
            .map(|(k, rids)| (k, rids.into_iter().collect()))
            .collect())
    }
}

/// `E11000 duplicate key error collection: db.c index: a_1 dup key: { a: 1 }`, with
/// `keyPattern` and `keyValue` as a real server reports them.
pub fn duplicate_key_error<'a>(
    ns: &str,
    index_name: &str,
    key_pattern: &Document,
    values: impl Iterator<Item = &'a Bson>,
) -> CommandError {
    let mut key_value = Document::new();
    for ((field, _), v) in key_pattern.iter().zip(values) {
        key_value.insert(field.clone(), v.clone());
    }
    let shown = key_value
        .iter()
        .map(|(k, v)| format!("{k}: {}", crate::util::shell_repr(v)))
        .collect::<Vec<_>>()
        .join(", ");
    CommandError::new(
        codes::DUPLICATE_KEY,
        format!(
            "E11000 duplicate key error collection: {ns} index: {index_name} dup key: {{ {shown} }}"
        ),
    )
    .with_extra("keyPattern", key_pattern.clone())
    .with_extra("keyValue", key_value)
}

/// Completes a validated `text`, `2dsphere` or `2d` index specification as the server
/// stores it: text keys become `{_fts: "text", _ftsx: 1}` with `weights`,
/// `default_language`, `language_override` and `textIndexVersion: 3`; `2dsphere` gets
/// `2dsphereIndexVersion: 3`; `2d` options are checked. Bad options fail with 67.
pub fn complete_special(spec: Document) -> Result<Document> {
    let key = spec.get_document("key").cloned().unwrap_or_default();
    let kinds: Vec<&str> = key
        .values()
        .filter_map(|v| match v {
            Bson::String(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let cannot = |m: String| CommandError::new(codes::CANNOT_CREATE_INDEX, m);
    let num = |k: &str| spec.get(k).map(|v| (v, crate::util::as_f64(v)));
    let mut out = spec.clone();
    if kinds.contains(&"text") {
        let mut weights = Document::new();
        let mut new_key = Document::new();
        for (f, v) in &key {
            // A specification as listed (`{_fts: "text", _ftsx: 1}`, weights given), as tools
            // that copy indexes send it back.
            if f == "_fts" || f == "_ftsx" {
                new_key.insert(f.clone(), v.clone());
            } else if v == &Bson::String("text".into()) {
                if !new_key.contains_key("_fts") {
                    new_key.insert("_fts", "text");
                    new_key.insert("_ftsx", 1);
                }
                weights.insert(f.clone(), 1);
            } else {
                new_key.insert(f.clone(), v.clone());
            }
        }
        match spec.get("weights") {
            None => {}
            Some(Bson::Document(w)) => {
                for (f, v) in w {
                    let Some(x) = crate::util::as_f64(v) else {
                        return Err(cannot("weight for text index needs numeric type".into()));
                    };
                    if !(x > 0.0 && x < 100_000.0) {
                        return Err(cannot(format!(
                            "text index weight must be in the exclusive interval (0,100000) but found: {x}"
                        )));
                    }
                    weights.insert(f.clone(), v.clone());
                }
            }
            Some(_) => {
                return Err(cannot(
                    "text index option 'weights' must be an object".into(),
                ));
            }
        }
        let language = match spec.get("default_language") {
            None => "english".to_string(),
            Some(Bson::String(l)) if crate::query::matcher::text::is_language(l) => l.clone(),
            Some(v) => {
                return Err(cannot(format!(
                    "default_language: unsupported language: {} for text index version 3",
                    crate::util::shell_repr(v)
                )));
            }
        };
        let over = match spec.get("language_override") {
            None => "language".to_string(),
            Some(Bson::String(l)) if !l.is_empty() => l.clone(),
            Some(_) => {
                return Err(cannot(
                    "language_override must be a non-empty string".into(),
                ));
            }
        };
        // Weights are listed in field order, as the server keeps them in a map.
        let mut sorted: Vec<(String, Bson)> = weights.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        out.insert("key", new_key);
        out.insert("weights", sorted.into_iter().collect::<Document>());
        out.insert("default_language", language);
        out.insert("language_override", over);
        out.insert("textIndexVersion", 3);
    } else if spec.contains_key("weights") || spec.contains_key("default_language") {
        return Err(cannot(
            "text index options given for a non-text index".into(),
        ));
    }
    if kinds.contains(&"2dsphere") {
        match num("2dsphereIndexVersion") {
            None => {
                out.insert("2dsphereIndexVersion", 3);
            }
            Some((_, Some(v))) if [1.0, 2.0, 3.0].contains(&v) => {}
            Some((v, _)) => {
                return Err(cannot(format!(
                    "unsupported geo index version {{ 2dsphereIndexVersion : {} }}, only support versions: [1,2,3]",
                    crate::util::shell_repr(v)
                )));
            }
        }
    }
    if kinds.contains(&"2d") {
        if key.values().position(|v| v == &Bson::String("2d".into())) != Some(0) {
            return Err(cannot("2d has to be first in index".into()));
        }
        if kinds.iter().filter(|k| **k == "2d").count() > 1 {
            return Err(cannot("can't have 2 geo fields".into()));
        }
        if let Some((_, b)) = num("bits")
            && !b.is_some_and(|b| b > 0.0 && b <= 32.0)
        {
            return Err(cannot("bits in geo index must be between 1 and 32".into()));
        }
        let min = num("min").and_then(|m| m.1).unwrap_or(-180.0);
        let max = num("max").and_then(|m| m.1).unwrap_or(180.0);
        if min >= max {
            return Err(cannot(
                "region for hash must be valid and have positive area".into(),
            ));
        }
    }
    Ok(out)
}
