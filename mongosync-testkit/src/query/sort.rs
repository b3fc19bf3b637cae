//! Sort specifications (`{a: 1, b: -1}`, `{$natural: 1}`, `{score: {$meta: "textScore"}}`).
// `CommandError` is the crate-wide error type; its size is a crate design decision.
#![allow(clippy::result_large_err)]

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::error::{CommandError, Result};
use crate::query::collation::{Collation, compare_with};
use crate::query::expr::DocMeta;
use crate::query::path::is_index;

/// A parsed sort specification.
#[derive(Debug, Clone)]
pub struct SortSpec {
    keys: Vec<(String, Direction)>,
    natural: Option<i32>,
    /// Strings sort by this collation; `None` is binary.
    collation: Option<Collation>,
}

/// The direction of one sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `1`.
    Ascending,
    /// `-1`.
    Descending,
    /// `{$meta: ...}`: by the document's metadata, highest first, as the server's `$meta`
    /// sorts always are.
    Meta(MetaSort),
}

/// The metadata a `{$meta: ...}` sort key reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaSort {
    /// `textScore`.
    TextScore,
    /// `randVal`.
    RandVal,
    /// `geoNearDistance`.
    GeoNearDistance,
    /// `searchScore`, `vectorSearchScore`: never produced here (no Atlas Search).
    Search,
}

impl SortSpec {
    /// Parses a sort document; a bad direction fails as on the server (15975 / 2).
    pub fn new(spec: &Document) -> Result<SortSpec> {
        let mut keys = Vec::new();
        let mut natural = None;
        for (k, v) in spec {
            let dir = match v {
                Bson::Document(meta) => {
                    let first = meta.keys().next().map(String::as_str);
                    if first != Some("$meta") {
                        return Err(CommandError::new(
                            17312,
                            "$meta is the only expression supported by $sort right now",
                        ));
                    }
                    if meta.len() != 1 {
                        return Err(CommandError::failed_to_parse(
                            "Cannot have additional keys in a $meta sort specification",
                        ));
                    }
                    let which = match meta.get("$meta") {
                        Some(Bson::String(s)) if s == "textScore" => MetaSort::TextScore,
                        Some(Bson::String(s)) if s == "randVal" => MetaSort::RandVal,
                        Some(Bson::String(s)) if s == "geoNearDistance" => {
                            MetaSort::GeoNearDistance
                        }
                        Some(Bson::String(s)) if s == "searchScore" || s == "vectorSearchScore" => {
                            MetaSort::Search
                        }
                        Some(other) => {
                            return Err(CommandError::new(
                                31138,
                                format!(
                                    "Illegal $meta sort: $meta: {}",
                                    crate::query::matcher::server_display(other)
                                ),
                            ));
                        }
                        None => MetaSort::Search,
                    };
                    Direction::Meta(which)
                }
                _ => {
                    let Some(n) = crate::query::compare::number_as_f64(v) else {
                        return Err(CommandError::new(
                            15974,
                            format!(
                                "Illegal key in $sort specification: {k}: {}",
                                crate::query::matcher::server_display(v)
                            ),
                        ));
                    };
                    let dir = if n == 1.0 {
                        Direction::Ascending
                    } else if n == -1.0 {
                        Direction::Descending
                    } else {
                        return Err(CommandError::new(
                            15975,
                            "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                        ));
                    };
                    if k == "$natural" {
                        natural = Some(if dir == Direction::Ascending { 1 } else { -1 });
                        continue;
                    }
                    dir
                }
            };
            if k.is_empty() {
                return Err(CommandError::new(
                    40352,
                    "FieldPath cannot be constructed with empty string",
                ));
            }
            if k.starts_with('$') {
                return Err(CommandError::new(
                    16410,
                    "FieldPath field names may not start with '$'. Consider using $getField or \
                     $setField.",
                ));
            }
            if k.split('.').any(str::is_empty) {
                return Err(CommandError::new(
                    15998,
                    "FieldPath field names may not be empty strings.",
                ));
            }
            keys.push((k.clone(), dir));
        }
        Ok(SortSpec {
            keys,
            natural,
            collation: None,
        })
    }

    /// Like [`SortSpec::new`], sorting strings under `collation`.
    pub fn with_collation(spec: &Document, collation: Option<Collation>) -> Result<SortSpec> {
        let mut s = Self::new(spec)?;
        s.collation = collation;
        Ok(s)
    }

    /// This sort with strings compared by `collation` (an aggregate's).
    pub fn collated(mut self, collation: Option<Collation>) -> SortSpec {
        self.collation = collation;
        self
    }

    /// The collation strings sort by (`None`: binary).
    pub fn collation(&self) -> Option<&Collation> {
        self.collation.as_ref()
    }

    /// Compares two documents under this sort (arrays sort by their smallest element ascending
    /// and largest descending, as the server does; missing sorts as null).
    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        self.compare_meta(a, None, b, None)
    }

    /// Like [`SortSpec::compare`], `{$meta: ...}` keys sorting by each document's metadata,
    /// highest first (absent metadata last).
    pub fn compare_meta(
        &self,
        a: &Document,
        meta_a: Option<&DocMeta>,
        b: &Document,
        meta_b: Option<&DocMeta>,
    ) -> Ordering {
        let c = self.collation.as_ref();
        let value = |m: Option<&DocMeta>, which: MetaSort| -> Option<f64> {
            match which {
                MetaSort::TextScore => m.and_then(|m| m.text_score),
                MetaSort::RandVal => m.and_then(|m| m.rand_val),
                MetaSort::GeoNearDistance => m.and_then(|m| m.geo_near_distance),
                MetaSort::Search => None,
            }
        };
        for (path, dir) in &self.keys {
            let o = match dir {
                Direction::Meta(which) => value(meta_b, *which)
                    .partial_cmp(&value(meta_a, *which))
                    .unwrap_or(Ordering::Equal),
                Direction::Ascending => compare_with(
                    &sort_key_with(a, path, false, c),
                    &sort_key_with(b, path, false, c),
                    c,
                ),
                Direction::Descending => compare_with(
                    &sort_key_with(a, path, true, c),
                    &sort_key_with(b, path, true, c),
                    c,
                )
                .reverse(),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    /// The document's sort key as `{$meta: "sortKey"}` shows it (the server's
    /// `serializeSortKey`): one value per key, the element an array sorts by, a `$meta` key's
    /// metadata, missing as null.
    pub fn key_values(&self, doc: &Document, meta: Option<&DocMeta>) -> Bson {
        let c = self.collation.as_ref();
        let values = self.keys.iter().map(|(path, dir)| match dir {
            Direction::Meta(which) => {
                let v = match which {
                    MetaSort::TextScore => meta.and_then(|m| m.text_score),
                    MetaSort::RandVal => meta.and_then(|m| m.rand_val),
                    MetaSort::GeoNearDistance => meta.and_then(|m| m.geo_near_distance),
                    MetaSort::Search => None,
                };
                v.map_or(Bson::Null, Bson::Double)
            }
            Direction::Ascending => sort_key_with(doc, path, false, c),
            Direction::Descending => sort_key_with(doc, path, true, c),
        });
        Bson::Array(values.collect())
    }

    /// `Some(direction)` when the sort is `{$natural: ±1}` alone.
    pub fn natural(&self) -> Option<i32> {
        if self.keys.is_empty() {
            self.natural
        } else {
            None
        }
    }

    /// The sort keys in order (`$natural` excluded).
    pub fn keys(&self) -> &[(String, Direction)] {
        &self.keys
    }

    /// Whether the specification sorts by nothing (`{}` or `{$natural: ...}`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The value a document sorts by for `path`: the smallest (or, for descending, the largest)
/// of the values the path reaches, as the server's sort key generator computes them
/// (missing is null, an empty array is below null).
pub fn sort_key(doc: &Document, path: &str, descending: bool) -> Bson {
    sort_key_with(doc, path, descending, None)
}

/// [`sort_key`] with strings ordered by an optional collation (the smallest string is the
/// collation's smallest).
pub fn sort_key_with(
    doc: &Document,
    path: &str,
    descending: bool,
    collation: Option<&Collation>,
) -> Bson {
    let parts: Vec<&str> = path.split('.').collect();
    let mut values = Vec::new();
    collect_doc(doc, &parts, &mut values);
    let mut best: Option<Bson> = None;
    for v in values {
        best = match best {
            None => Some(v),
            Some(b) => {
                let o = compare_with(&v, &b, collation);
                let better = if descending {
                    o == Ordering::Greater
                } else {
                    o == Ordering::Less
                };
                Some(if better { v } else { b })
            }
        };
    }
    best.unwrap_or(Bson::Null)
}

fn collect_doc(doc: &Document, parts: &[&str], out: &mut Vec<Bson>) {
    match doc.get(parts[0]) {
        None => out.push(Bson::Null),
        Some(v) => collect_value(v, &parts[1..], out),
    }
}

fn collect_value(v: &Bson, rest: &[&str], out: &mut Vec<Bson>) {
    if rest.is_empty() {
        match v {
            // An empty array sorts below null (the server keys it as undefined).
            Bson::Array(a) if a.is_empty() => out.push(Bson::Undefined),
            Bson::Array(a) => out.extend(a.iter().cloned()),
            _ => out.push(v.clone()),
        }
        return;
    }
    match v {
        Bson::Document(d) => collect_doc(d, rest, out),
        // The server's key generator keys every path through an empty array as undefined.
        Bson::Array(a) if a.is_empty() => out.push(Bson::Undefined),
        Bson::Array(a) => {
            // A positional component selects one element when it exists.
            if is_index(rest[0])
                && let Some(e) = rest[0].parse::<usize>().ok().and_then(|i| a.get(i))
            {
                collect_value(e, &rest[1..], out);
                return;
            }
            // Otherwise each element continues the path; non-documents (scalars, nested
            // arrays) key as null.
            for e in a {
                match e {
                    Bson::Document(d) => collect_doc(d, rest, out),
                    _ => out.push(Bson::Null),
                }
            }
        }
        _ => out.push(Bson::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn sorted(spec: Document, docs: Vec<Document>) -> Vec<Bson> {
        let s = SortSpec::new(&spec).unwrap();
        let mut docs = docs;
        docs.sort_by(|a, b| s.compare(a, b));
        docs.into_iter()
            .map(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
            .collect()
    }

    #[test]
    fn multi_key_directions() {
        let docs = vec![
            doc! {"_id": 1, "a": 1, "b": 1},
            doc! {"_id": 2, "a": 1, "b": 2},
            doc! {"_id": 3, "a": 0, "b": 3},
        ];
        assert_eq!(
            sorted(doc! {"a": 1, "b": -1}, docs.clone()),
            vec![Bson::Int32(3), Bson::Int32(2), Bson::Int32(1)]
        );
        assert_eq!(
            sorted(doc! {"a": -1.0, "b": 1i64}, docs),
            vec![Bson::Int32(1), Bson::Int32(2), Bson::Int32(3)]
        );
    }

    #[test]
    fn missing_sorts_as_null_and_types_by_rank() {
        let docs = vec![
            doc! {"_id": 1, "a": "x"},
            doc! {"_id": 2},
            doc! {"_id": 3, "a": 5},
            doc! {"_id": 4, "a": null},
            doc! {"_id": 5, "a": []},
        ];
        // Empty array < null == missing < numbers < strings; ties keep input order.
        assert_eq!(
            sorted(doc! {"a": 1}, docs),
            vec![
                Bson::Int32(5),
                Bson::Int32(2),
                Bson::Int32(4),
                Bson::Int32(3),
                Bson::Int32(1)
            ]
        );
    }

    #[test]
    fn arrays_sort_by_min_ascending_and_max_descending() {
        let docs = vec![
            doc! {"_id": 1, "a": [1, 10]},
            doc! {"_id": 2, "a": [3, 4]},
            doc! {"_id": 3, "a": 2},
        ];
        assert_eq!(
            sorted(doc! {"a": 1}, docs.clone()),
            vec![Bson::Int32(1), Bson::Int32(3), Bson::Int32(2)]
        );
        assert_eq!(
            sorted(doc! {"a": -1}, docs),
            vec![Bson::Int32(1), Bson::Int32(2), Bson::Int32(3)]
        );
        let docs = vec![
            doc! {"_id": 1, "a": [{"b": 5}, {"b": 1}]},
            doc! {"_id": 2, "a": {"b": 3}},
        ];
        assert_eq!(
            sorted(doc! {"a.b": 1}, docs.clone()),
            vec![Bson::Int32(1), Bson::Int32(2)]
        );
        assert_eq!(
            sorted(doc! {"a.b": -1}, docs),
            vec![Bson::Int32(1), Bson::Int32(2)]
        );
        assert_eq!(
            sort_key(&doc! {"a": [{"b": 5}, {}]}, "a.b", false),
            Bson::Null
        );
        assert_eq!(sort_key(&doc! {"a": [7, 8]}, "a.1", false), Bson::Int32(8));
        // Scalars in an array key as null when the path continues; an empty array as undefined.
        assert_eq!(
            sort_key(&doc! {"a": [1, {"b": 2}]}, "a.b", false),
            Bson::Null
        );
        assert_eq!(
            sort_key(&doc! {"a": [1, {"b": 2}]}, "a.b", true),
            Bson::Int32(2)
        );
        assert_eq!(sort_key(&doc! {"a": []}, "a.b", false), Bson::Undefined);
        assert_eq!(
            sort_key(&doc! {"a": [{"5": 9}]}, "a.5", false),
            Bson::Int32(9)
        );
    }

    #[test]
    fn errors_meta_and_natural() {
        let e = SortSpec::new(&doc! {"a": 2}).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                15975,
                "$sort key ordering must be 1 (for ascending) or -1 (for descending)"
            )
        );
        let e = SortSpec::new(&doc! {"asc": "123"}).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (15974, "Illegal key in $sort specification: asc: \"123\"")
        );
        assert_eq!(SortSpec::new(&doc! {"a": 42.12}).unwrap_err().code, 15975);
        assert_eq!(
            SortSpec::new(&doc! {"a": i64::MAX}).unwrap_err().code,
            15975
        );
        assert_eq!(
            SortSpec::new(&doc! {"a": {"x": 1}}).unwrap_err().code,
            17312
        );
        assert_eq!(SortSpec::new(&doc! {"$a": 1}).unwrap_err().code, 16410);
        let s = SortSpec::new(&doc! {"score": {"$meta": "textScore"}, "a": 1}).unwrap();
        assert_eq!(s.compare(&doc! {"a": 1}, &doc! {"a": 2}), Ordering::Less);
        assert_eq!(
            SortSpec::new(&doc! {"$natural": -1}).unwrap().natural(),
            Some(-1)
        );
        assert_eq!(SortSpec::new(&doc! {"a": 1}).unwrap().natural(), None);
        assert!(SortSpec::new(&doc! {}).unwrap().is_empty());
    }

    fn sorted_with(spec: Document, collation: Document, docs: Vec<Document>) -> Vec<Bson> {
        let c = Collation::parse(&collation).unwrap();
        let s = SortSpec::with_collation(&spec, c).unwrap();
        let mut docs = docs;
        docs.sort_by(|a, b| s.compare(a, b));
        docs.into_iter()
            .map(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
            .collect()
    }

    #[test]
    fn collation_orders_strings() {
        let docs = vec![
            doc! {"_id": 1, "s": "b"},
            doc! {"_id": 2, "s": "B"},
            doc! {"_id": 3, "s": "a"},
            doc! {"_id": 4, "s": "é"},
            doc! {"_id": 5, "s": "e"},
            doc! {"_id": 6, "s": 7},
        ];
        // Binary: numbers, then "B" < "a" < "b" < "e" < "é".
        assert_eq!(
            sorted(doc! {"s": 1}, docs.clone()),
            vec![
                Bson::Int32(6),
                2.into(),
                3.into(),
                1.into(),
                5.into(),
                4.into()
            ]
        );
        // en tertiary: a < b < B < e < é (lowercase first, accents after base letters).
        assert_eq!(
            sorted_with(doc! {"s": 1}, doc! {"locale": "en"}, docs.clone()),
            vec![
                Bson::Int32(6),
                3.into(),
                1.into(),
                2.into(),
                5.into(),
                4.into()
            ]
        );
        assert_eq!(
            sorted_with(
                doc! {"s": -1},
                doc! {"locale": "en", "caseFirst": "upper"},
                docs.clone()
            ),
            vec![
                Bson::Int32(4),
                5.into(),
                1.into(),
                2.into(),
                3.into(),
                6.into()
            ]
        );
        // numericOrdering.
        let nums = vec![
            doc! {"_id": 1, "s": "10"},
            doc! {"_id": 2, "s": "9"},
            doc! {"_id": 3, "s": "100"},
        ];
        assert_eq!(
            sorted_with(
                doc! {"s": 1},
                doc! {"locale": "en", "numericOrdering": true},
                nums
            ),
            vec![Bson::Int32(2), 1.into(), 3.into()]
        );
        // Array sort keys take the collation's smallest/largest element.
        let arrs = vec![
            doc! {"_id": 1, "s": ["B", "c"]},
            doc! {"_id": 2, "s": ["a", "D"]},
        ];
        assert_eq!(
            sorted_with(doc! {"s": 1}, doc! {"locale": "en"}, arrs.clone()),
            vec![Bson::Int32(2), 1.into()]
        );
        assert_eq!(
            sorted_with(doc! {"s": -1}, doc! {"locale": "en"}, arrs),
            vec![Bson::Int32(2), 1.into()]
        );
    }
}
