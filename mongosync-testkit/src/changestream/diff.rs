//! The `updateDescription` of an update event, from the documents before and after the update.
//!
//! A real server records an update in the oplog as a `$v: 2` delta (`{d, u, i, s<field>}` for
//! documents, `{a: true, l, u<idx>, s<idx>}` for arrays) and the change stream turns that delta
//! into `updateDescription`. Here the delta is computed the way the server's
//! `document_diff_calculator` computes it (descend into sub-documents and arrays of the same
//! type, compare arrays position by position, truncate shrunk arrays; for pipeline updates,
//! [`delta`] also replaces a whole sub-document or array when its diff would be larger than the
//! new value, and gives up when the whole diff would be), then parsed the way
//! `change_stream_document_diff_parser` parses it (section order, dotted paths,
//! `truncatedArrays`, `disambiguatedPaths`).
//!
//! Known difference: for modifier updates (`$set`, `$push`, ...) the server logs the modified
//! paths instead of diffing, so e.g. `{$set: {a: {x: 1, y: 2}}}` over `{a: {x: 1, y: 1}}` is
//! reported by the server as `updatedFields: {a: {x: 1, y: 2}}` but here as `{"a.y": 2}`.
//! Both forms describe the same change (§6.4 of the reference: byte-for-byte agreement is not
//! required).

use std::collections::BTreeSet;

use bson::{Bson, Document, doc};

/// `updateDescription` of an update event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateDescription {
    /// Dotted path → new value.
    pub updated_fields: Document,
    /// Dotted paths of removed fields.
    pub removed_fields: Vec<String>,
    /// (dotted path of an array, its new length) for arrays that shrank.
    pub truncated_arrays: Vec<(String, i32)>,
    /// Dotted path → path components (array indexes as int32), for ambiguous paths only.
    pub disambiguated_paths: Document,
}

impl UpdateDescription {
    /// `{updatedFields, removedFields, truncatedArrays: [{field, newSize}]}`, plus
    /// `disambiguatedPaths` (possibly `{}`) when `expanded` (`showExpandedEvents`).
    pub fn to_document(&self, expanded: bool) -> Document {
        let truncated: Vec<Bson> = self
            .truncated_arrays
            .iter()
            .map(|(field, size)| Bson::Document(doc! { "field": field.clone(), "newSize": *size }))
            .collect();
        let mut d = doc! {
            "updatedFields": self.updated_fields.clone(),
            "removedFields": self.removed_fields.clone(),
            "truncatedArrays": truncated,
        };
        if expanded {
            d.insert("disambiguatedPaths", self.disambiguated_paths.clone());
        }
        d
    }

    /// Whether the update changed nothing.
    pub fn is_empty(&self) -> bool {
        self.updated_fields.is_empty()
            && self.removed_fields.is_empty()
            && self.truncated_arrays.is_empty()
    }
}

/// The `updateDescription` the server reports for an update from `before` to `after`.
///
/// Every changed leaf is reported at its own path (no size heuristic), which is what the
/// server reports for modifier updates (`$set: {"a.0.b": 1}` gives `"a.0.b"`, as the spec
/// tests on `disambiguatedPaths` expect). For pipeline updates use [`delta`] then
/// [`describe_delta`]: the server replaces whole sub-documents or arrays when their diff would
/// be larger, and logs a replacement when the whole diff would be.
pub fn describe(before: &Document, after: &Document) -> UpdateDescription {
    describe_delta(&modifier_delta(before, after))
}

/// The `$v: 2` diff matching [`describe`]: every changed leaf at its own path, no size
/// heuristic (for the oplog entry or `rawUpdateDescription` of a modifier update).
/// `describe(b, a) == describe_delta(&modifier_delta(b, a))`.
pub fn modifier_delta(before: &Document, after: &Document) -> Document {
    doc_diff(before, after, true, 0)
        .unwrap_or_else(|| DocNode::new(0))
        .serialize()
}

/// Size the server adds for `{$v: 2, diff: ...}` when deciding whether a delta is viable
/// (`update_oplog_entry::kSizeOfDeltaOplogEntryMetadata`).
const DELTA_METADATA_SIZE: usize = 15;

/// The server's `computeOplogDiff`: the `diff` of a `$v: 2` oplog entry for a pipeline update
/// from `before` to `after`, or `None` when the server would log a full replacement instead
/// (the diff would not be smaller than the new document), which a change stream then reports
/// as a `replace` event. An unchanged document gives `Some({})`.
pub fn delta(before: &Document, after: &Document) -> Option<Document> {
    let node = doc_diff(before, after, false, DELTA_METADATA_SIZE)?;
    let diff = node.serialize();
    (doc_size(&diff) < doc_size(after)).then_some(diff)
}

/// Parses a `$v: 2` diff into an `updateDescription` (the server's
/// `change_stream_document_diff_parser::parseDiff`); also what `rawUpdateDescription` holds.
/// Malformed sections are skipped.
pub fn describe_delta(diff: &Document) -> UpdateDescription {
    let mut b = Builder::default();
    b.document(diff);
    b.desc
}

// ---- parsing a delta ------------------------------------------------------------------------

#[derive(Default)]
struct Builder {
    desc: UpdateDescription,
    /// Current path: (component, is array index, path ambiguous as of this component).
    path: Vec<(String, bool, bool)>,
}

impl Builder {
    fn push(&mut self, part: String, array_index: bool) {
        let already = self.path.last().is_some_and(|p| p.2);
        // Numeric field names (not at the start of the path) and dotted field names make a
        // path ambiguous; array indexes alone do not.
        let ambiguous = already
            || (!array_index
                && ((!self.path.is_empty() && is_numeric_strict(&part)) || part.contains('.')));
        self.path.push((part, array_index, ambiguous));
    }

    fn pop(&mut self) {
        self.path.pop();
    }

    fn dotted(&self) -> String {
        self.path
            .iter()
            .map(|p| p.0.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }

    fn disambiguate(&mut self) {
        if self.path.last().is_some_and(|p| p.2) {
            let parts: Vec<Bson> = self
                .path
                .iter()
                .map(|(s, idx, _)| match (idx, s.parse::<i32>()) {
                    (true, Ok(i)) => Bson::Int32(i),
                    _ => Bson::String(s.clone()),
                })
                .collect();
            let key = self.dotted();
            self.desc.disambiguated_paths.insert(key, parts);
        }
    }

    fn updated(&mut self, part: String, array_index: bool, value: Bson) {
        self.push(part, array_index);
        let key = self.dotted();
        self.desc.updated_fields.insert(key, value);
        self.disambiguate();
        self.pop();
    }

    fn document(&mut self, diff: &Document) {
        for section in ["u", "i", "b"] {
            if let Some(Bson::Document(fields)) = diff.get(section) {
                for (k, v) in fields {
                    self.updated(k.clone(), false, v.clone());
                }
            }
        }
        if let Some(Bson::Document(fields)) = diff.get("d") {
            for k in fields.keys() {
                self.push(k.clone(), false);
                let key = self.dotted();
                self.desc.removed_fields.push(key);
                self.disambiguate();
                self.pop();
            }
        }
        for (k, v) in diff {
            if let (Some(field), Bson::Document(sub)) = (k.strip_prefix('s'), v) {
                self.push(field.to_string(), false);
                self.sub(sub);
                self.pop();
            }
        }
    }

    fn sub(&mut self, sub: &Document) {
        if sub.get("a") == Some(&Bson::Boolean(true)) {
            self.array(sub);
        } else {
            self.document(sub);
        }
    }

    fn array(&mut self, diff: &Document) {
        if let Some(Bson::Int32(n)) = diff.get("l") {
            let key = self.dotted();
            self.desc.truncated_arrays.push((key, *n));
            self.disambiguate();
        }
        for (k, v) in diff {
            if k == "a" || k == "l" {
                continue;
            }
            let (kind, idx) = k.split_at(1.min(k.len()));
            if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            match (kind, v) {
                ("u", _) => self.updated(idx.to_string(), true, v.clone()),
                ("s", Bson::Document(sub)) => {
                    self.push(idx.to_string(), true);
                    self.sub(sub);
                    self.pop();
                }
                _ => {}
            }
        }
    }
}

/// `FieldRef::isNumericPathComponentStrict`: digits only, no leading zero (except "0").
fn is_numeric_strict(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s.len() == 1 || !s.starts_with('0'))
}

// ---- computing a delta ----------------------------------------------------------------------

/// A document sub-diff, with the server's approximate size tracking.
struct DocNode {
    size: usize,
    updates: Vec<(String, Bson)>,
    inserts: Vec<(String, Bson)>,
    deletes: Vec<String>,
    subs: Vec<(String, Sub)>,
}

enum Sub {
    Doc(DocNode),
    Arr(ArrNode),
}

impl Sub {
    fn size(&self) -> usize {
        match self {
            Sub::Doc(d) => d.size,
            Sub::Arr(a) => a.size,
        }
    }

    fn serialize(&self) -> Document {
        match self {
            Sub::Doc(d) => d.serialize(),
            Sub::Arr(a) => a.serialize(),
        }
    }
}

/// An array sub-diff: updates and sub-diffs by index, and an optional new length.
struct ArrNode {
    size: usize,
    entries: Vec<(usize, ArrEntry)>,
    resize: Option<usize>,
}

enum ArrEntry {
    Update(Bson),
    Sub(Sub),
}

/// Type byte + NUL of a field name, plus 8 when a section (`d`/`u`/`i`) is first opened.
const WRAP_SIZE: usize = 8;

impl DocNode {
    fn new(padding: usize) -> Self {
        DocNode {
            size: padding + 5,
            updates: Vec::new(),
            inserts: Vec::new(),
            deletes: Vec::new(),
            subs: Vec::new(),
        }
    }

    fn add_update(&mut self, name: &str, v: &Bson) {
        self.size += name.len() + 2 + value_size(v);
        if self.updates.is_empty() {
            self.size += WRAP_SIZE;
        }
        self.updates.push((name.to_string(), v.clone()));
    }

    fn add_insert(&mut self, name: &str, v: &Bson) {
        self.size += name.len() + 2 + value_size(v);
        if self.inserts.is_empty() {
            self.size += WRAP_SIZE;
        }
        self.inserts.push((name.to_string(), v.clone()));
    }

    fn add_delete(&mut self, name: &str) {
        self.size += name.len() + 2 + 1;
        if self.deletes.is_empty() {
            self.size += WRAP_SIZE;
        }
        self.deletes.push(name.to_string());
    }

    fn add_sub(&mut self, name: &str, sub: Sub) {
        self.size += name.len() + 2 + sub.size() + 1;
        self.subs.push((name.to_string(), sub));
    }

    /// `{d: {f: false}, u: {...}, i: {...}, s<f>: {...}}`, sections in the server's order.
    fn serialize(&self) -> Document {
        let mut d = Document::new();
        if !self.deletes.is_empty() {
            let mut del = Document::new();
            for f in &self.deletes {
                del.insert(f.clone(), false);
            }
            d.insert("d", del);
        }
        if !self.updates.is_empty() {
            d.insert("u", self.updates.iter().cloned().collect::<Document>());
        }
        if !self.inserts.is_empty() {
            d.insert("i", self.inserts.iter().cloned().collect::<Document>());
        }
        for (f, sub) in &self.subs {
            d.insert(format!("s{f}"), sub.serialize());
        }
        d
    }
}

impl ArrNode {
    fn new() -> Self {
        ArrNode {
            size: 9,
            entries: Vec::new(),
            resize: None,
        }
    }

    fn add(&mut self, idx: usize, entry: ArrEntry) {
        self.size += 1 + idx.to_string().len() + 2;
        self.size += match &entry {
            ArrEntry::Update(v) => value_size(v),
            ArrEntry::Sub(s) => s.size(),
        };
        self.entries.push((idx, entry));
    }

    fn set_resize(&mut self, n: usize) {
        self.resize = Some(n);
        self.size += 1 + 4 + 2;
    }

    fn serialize(&self) -> Document {
        let mut d = doc! { "a": true };
        if let Some(n) = self.resize {
            d.insert("l", n as i32);
        }
        for (idx, e) in &self.entries {
            match e {
                ArrEntry::Update(v) => d.insert(format!("u{idx}"), v.clone()),
                ArrEntry::Sub(s) => d.insert(format!("s{idx}"), s.serialize()),
            };
        }
        d
    }
}

/// The server's `computeDocDiff`; `ignore_size` (`ignoreSizeLimit`) disables the bail-outs
/// that replace a sub-document or array whose diff would be larger than its new value.
fn doc_diff(pre: &Document, post: &Document, ignore_size: bool, padding: usize) -> Option<DocNode> {
    let mut node = DocNode::new(padding);
    let post_size = doc_size(post);
    let pre_items: Vec<(&String, &Bson)> = pre.iter().collect();
    let post_items: Vec<(&String, &Bson)> = post.iter().collect();
    let (mut i, mut j) = (0, 0);
    let mut deletes: BTreeSet<&str> = BTreeSet::new();
    while i < pre_items.len() && j < post_items.len() {
        if !ignore_size && post_size < node.size {
            return None;
        }
        let (pk, pv) = pre_items[i];
        let (qk, qv) = post_items[j];
        if pk == qk && binary_eq(pv, qv) {
            i += 1;
            j += 1;
            continue;
        }
        if pk == qk {
            match sub_diff(pv, qv, ignore_size) {
                Some(SubResult::Diff(sub)) => node.add_sub(pk, sub),
                Some(SubResult::TooBig) | None => node.add_update(pk, qv),
            }
            i += 1;
            j += 1;
        } else {
            // Removed, unless it reappears later (it is then re-inserted at its new place).
            deletes.insert(pk.as_str());
            i += 1;
        }
    }
    for (k, _) in &pre_items[i..] {
        node.add_delete(k);
    }
    for (k, v) in &post_items[j..] {
        node.add_insert(k, v);
        deletes.remove(k.as_str());
    }
    for k in deletes {
        node.add_delete(k);
    }
    (ignore_size || post_size > node.size).then_some(node)
}

enum SubResult {
    Diff(Sub),
    TooBig,
}

/// `calculateSubDiffHelper`: a sub-diff when both values are documents or both arrays.
fn sub_diff(pre: &Bson, post: &Bson, ignore_size: bool) -> Option<SubResult> {
    let sub = match (pre, post) {
        (Bson::Document(a), Bson::Document(b)) => doc_diff(a, b, ignore_size, 0).map(Sub::Doc),
        (Bson::Array(a), Bson::Array(b)) => array_diff(a, b, ignore_size).map(Sub::Arr),
        _ => return None,
    };
    Some(match sub {
        Some(s) => SubResult::Diff(s),
        None => SubResult::TooBig,
    })
}

/// The server's `computeArrayDiff`: position by position, extra elements as updates, a resize
/// when the array shrank.
fn array_diff(pre: &[Bson], post: &[Bson], ignore_size: bool) -> Option<ArrNode> {
    let mut node = ArrNode::new();
    let post_size = array_size(post);
    let common = pre.len().min(post.len());
    for idx in 0..common {
        if !ignore_size && post_size < node.size {
            return None;
        }
        let (a, b) = (&pre[idx], &post[idx]);
        if binary_eq(a, b) {
            continue;
        }
        match sub_diff(a, b, ignore_size) {
            Some(SubResult::Diff(sub)) => node.add(idx, ArrEntry::Sub(sub)),
            Some(SubResult::TooBig) | None => node.add(idx, ArrEntry::Update(b.clone())),
        }
    }
    for (idx, v) in post.iter().enumerate().skip(common) {
        node.add(idx, ArrEntry::Update(v.clone()));
    }
    if pre.len() > post.len() {
        node.set_resize(post.len());
    }
    (ignore_size || post_size > node.size).then_some(node)
}

/// BSON binary equality: same types, same bytes (so `0.0` differs from `-0.0`, `1` from `1.0`,
/// and field order matters).
fn binary_eq(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && binary_eq(va, vb))
        }
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| binary_eq(p, q))
        }
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => {
            x.code == y.code
                && binary_eq(
                    &Bson::Document(x.scope.clone()),
                    &Bson::Document(y.scope.clone()),
                )
        }
        _ => a == b,
    }
}

/// BSON size of a document.
fn doc_size(d: &Document) -> usize {
    5 + d
        .iter()
        .map(|(k, v)| 1 + k.len() + 1 + value_size(v))
        .sum::<usize>()
}

/// BSON size of an array (as an embedded document with keys "0", "1", ...).
fn array_size(a: &[Bson]) -> usize {
    5 + a
        .iter()
        .enumerate()
        .map(|(i, v)| 1 + i.to_string().len() + 1 + value_size(v))
        .sum::<usize>()
}

/// `BSONElement::valuesize()`: the size of a value without its type byte and name.
fn value_size(v: &Bson) -> usize {
    match v {
        Bson::Double(_) | Bson::Int64(_) | Bson::DateTime(_) | Bson::Timestamp(_) => 8,
        Bson::Int32(_) => 4,
        Bson::Decimal128(_) => 16,
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => 4 + s.len() + 1,
        Bson::Document(d) => doc_size(d),
        Bson::Array(a) => array_size(a),
        Bson::Binary(b) => {
            let old = if u8::from(b.subtype) == 2 { 4 } else { 0 };
            4 + 1 + old + b.bytes.len()
        }
        Bson::ObjectId(_) => 12,
        Bson::Boolean(_) => 1,
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => 0,
        Bson::RegularExpression(r) => r.pattern.as_str().len() + 1 + r.options.as_str().len() + 1,
        Bson::JavaScriptCodeWithScope(c) => 4 + 4 + c.code.len() + 1 + doc_size(&c.scope),
        Bson::DbPointer(_) => {
            let mut d = Document::new();
            d.insert("x", v.clone());
            d.to_vec().map(|b| b.len().saturating_sub(8)).unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(d: &UpdateDescription) -> Vec<String> {
        d.updated_fields.keys().cloned().collect()
    }

    /// change-streams.json, "Test array truncation" (a pipeline update).
    #[test]
    fn spec_array_truncation() {
        let before = doc! { "_id": 1, "a": 1, "array": ["foo", { "a": "bar" }, 1, 2, 3] };
        let after = doc! { "_id": 1, "a": 1, "array": ["foo", { "a": "bar" }] };
        let d = describe(&before, &after);
        assert_eq!(
            d.to_document(false),
            doc! {
                "updatedFields": {},
                "removedFields": [],
                "truncatedArrays": [{ "field": "array", "newSize": 2 }],
            }
        );
        let raw = delta(&before, &after).unwrap();
        assert_eq!(raw, doc! { "sarray": { "a": true, "l": 2 } });
        assert_eq!(describe_delta(&raw), d);
    }

    /// change-streams.json: `$set: {x: 2}` on `{_id, x: 1}`.
    #[test]
    fn spec_simple_set() {
        let d = describe(&doc! { "_id": 1, "x": 1 }, &doc! { "_id": 1, "x": 2 });
        assert_eq!(d.updated_fields, doc! { "x": 2 });
        assert!(d.removed_fields.is_empty() && d.truncated_arrays.is_empty());
        let expanded = d.to_document(true);
        assert_eq!(
            expanded.get_document("disambiguatedPaths").unwrap(),
            &doc! {}
        );
        assert!(d.to_document(false).get("disambiguatedPaths").is_none());
    }

    /// change-streams-disambiguatedPaths.json: `$set: {"a.1": 2}` on `{a: {"1": 1}}`.
    #[test]
    fn spec_numeric_field_name_is_ambiguous() {
        let d = describe(
            &doc! { "_id": 1, "a": { "1": 1 } },
            &doc! { "_id": 1, "a": { "1": 2 } },
        );
        assert_eq!(d.updated_fields, doc! { "a.1": 2 });
        assert_eq!(d.disambiguated_paths, doc! { "a.1": ["a", "1"] });
    }

    /// change-streams-disambiguatedPaths.json: array indexes become int32.
    #[test]
    fn spec_array_index_is_int() {
        let d = describe(
            &doc! { "_id": 1, "a": [{ "1": 1 }] },
            &doc! { "_id": 1, "a": [{ "1": 2 }] },
        );
        assert_eq!(d.updated_fields, doc! { "a.0.1": 2 });
        assert_eq!(d.disambiguated_paths, doc! { "a.0.1": ["a", 0_i32, "1"] });
    }

    #[test]
    fn unambiguous_paths_are_not_listed() {
        // Array indexes alone, a numeric top-level field, a leading-zero field.
        let d = describe(
            &doc! { "arr": [{ "x": 1 }, { "x": 2 }], "1": 1, "a": { "01": 1 } },
            &doc! { "arr": [{ "x": 1 }, { "x": 3 }], "1": 2, "a": { "01": 2 } },
        );
        assert_eq!(d.updated_fields, doc! { "1": 2, "arr.1.x": 3, "a.01": 2 });
        assert_eq!(d.disambiguated_paths, doc! {});
    }

    #[test]
    fn dotted_field_names_and_propagation() {
        let d = describe(&doc! { "a.b": 1 }, &doc! { "a.b": 2 });
        assert_eq!(d.disambiguated_paths, doc! { "a.b": ["a.b"] });
        // Once ambiguous, deeper paths stay ambiguous (and removals/truncations count too).
        let d = describe(
            &doc! { "a": { "1": { "b": 1, "c": 1, "arr": [1, 2] } } },
            &doc! { "a": { "1": { "b": 2, "arr": [1] } } },
        );
        assert_eq!(d.updated_fields, doc! { "a.1.b": 2 });
        assert_eq!(d.removed_fields, vec!["a.1.c".to_string()]);
        assert_eq!(d.truncated_arrays, vec![("a.1.arr".to_string(), 1)]);
        assert_eq!(
            d.disambiguated_paths,
            doc! {
                "a.1.b": ["a", "1", "b"],
                "a.1.c": ["a", "1", "c"],
                "a.1.arr": ["a", "1", "arr"],
            }
        );
    }

    #[test]
    fn sub_documents_are_descended_into() {
        let d = describe(
            &doc! { "_id": 1, "a": { "b": 1, "c": { "d": 1, "e": 1 } } },
            &doc! { "_id": 1, "a": { "b": 2, "c": { "d": 1, "e": 5, "f": 6 } } },
        );
        assert_eq!(d.updated_fields, doc! { "a.b": 2, "a.c.e": 5, "a.c.f": 6 });
    }

    #[test]
    fn removals_in_server_order() {
        // Trailing removals first in document order, then the others sorted by name.
        let d = describe(
            &doc! { "z": 1, "y": 1, "a": 1, "q": 1, "p": 1 },
            &doc! { "a": 1 },
        );
        assert_eq!(d.removed_fields, vec!["q", "p", "y", "z"]);
        let d = describe(&doc! { "a": 1, "b": 2, "c": 3 }, &doc! { "a": 1, "c": 3 });
        assert_eq!(d.removed_fields, vec!["b"]);
        assert!(d.updated_fields.is_empty());
    }

    #[test]
    fn moved_fields_are_reinserted() {
        let d = describe(&doc! { "a": 1, "b": 2 }, &doc! { "b": 2, "a": 1 });
        assert_eq!(d.updated_fields, doc! { "a": 1 });
        assert!(d.removed_fields.is_empty());
    }

    #[test]
    fn type_changes_replace_the_value() {
        let d = describe(
            &doc! { "a": { "b": 1 }, "n": 1, "z": 0.0, "arr": [1] },
            &doc! { "a": [1], "n": 1.0, "z": -0.0, "arr": { "0": 1 } },
        );
        assert_eq!(
            d.updated_fields,
            doc! { "a": [1], "n": 1.0, "z": -0.0, "arr": { "0": 1 } }
        );
    }

    #[test]
    fn arrays_in_place() {
        let d = describe(&doc! { "arr": [1, 2, 3] }, &doc! { "arr": [1, 5, 3, 4] });
        assert_eq!(d.updated_fields, doc! { "arr.1": 5, "arr.3": 4 });
        assert!(d.truncated_arrays.is_empty());
        // Shrink plus change: both.
        let d = describe(&doc! { "arr": [1, 2, 3] }, &doc! { "arr": [9, 2] });
        assert_eq!(d.updated_fields, doc! { "arr.0": 9 });
        assert_eq!(d.truncated_arrays, vec![("arr".to_string(), 2)]);
        // Nested arrays.
        let d = describe(
            &doc! { "m": [[1, 2], [3, 4, 5]] },
            &doc! { "m": [[1, 2, 9], [3]] },
        );
        assert_eq!(d.updated_fields, doc! { "m.0.2": 9 });
        assert_eq!(d.truncated_arrays, vec![("m.1".to_string(), 1)]);
        assert_eq!(d.disambiguated_paths, doc! {});
    }

    #[test]
    fn unchanged_document() {
        let d = doc! { "_id": 1, "a": [1, { "b": 2 }] };
        assert!(describe(&d, &d).is_empty());
        assert_eq!(delta(&d, &d), Some(doc! {}));
    }

    /// Pipeline updates: the server gives up on a delta that is not smaller than the new
    /// document (the event is then a `replace`), and replaces sub-values whose diff is larger.
    #[test]
    fn delta_size_heuristics() {
        let small_before = doc! { "_id": 1, "a": { "1": 1 } };
        let small_after = doc! { "_id": 1, "a": { "1": 2 } };
        assert_eq!(delta(&small_before, &small_after), None);

        let filler = "x".repeat(200);
        let before = doc! { "_id": 1, "f": &filler, "arr": [1, 2, 3], "s": { "k": 1 } };
        let after = doc! { "_id": 1, "f": &filler, "arr": [4, 5, 6], "s": { "k": 2 } };
        let raw = delta(&before, &after).unwrap();
        assert_eq!(raw, doc! { "u": { "arr": [4, 5, 6], "s": { "k": 2 } } });
        assert_eq!(
            describe_delta(&raw).updated_fields,
            doc! { "arr": [4, 5, 6], "s": { "k": 2 } }
        );
        // Modifier-style description: every leaf.
        assert_eq!(
            modifier_delta(&before, &after),
            doc! {
                "sarr": { "a": true, "u0": 4, "u1": 5, "u2": 6 },
                "ss": { "u": { "k": 2 } },
            }
        );
        assert_eq!(
            paths(&describe(&before, &after)),
            vec!["arr.0", "arr.1", "arr.2", "s.k"]
        );

        // A large sub-document with one small change keeps its sub-diff.
        let big = doc! { "_id": 1, "s": { "f": &filler, "k": 1 } };
        let big2 = doc! { "_id": 1, "s": { "f": &filler, "k": 2 } };
        assert_eq!(delta(&big, &big2), Some(doc! { "ss": { "u": { "k": 2 } } }));
    }

    /// Section order of a raw diff: updates, inserts, then removals, then sub-diffs.
    #[test]
    fn describe_raw_delta_in_section_order() {
        let raw = doc! {
            "d": { "x": false },
            "u": { "a": 1 },
            "i": { "b": 2 },
            "sc": { "a": true, "l": 1, "u0": 7, "s1": { "i": { "q": 1 } } },
        };
        let d = describe_delta(&raw);
        assert_eq!(paths(&d), vec!["a", "b", "c.0", "c.1.q"]);
        assert_eq!(d.removed_fields, vec!["x"]);
        assert_eq!(d.truncated_arrays, vec![("c".to_string(), 1)]);
    }
}
