//! Dotted paths (`a.b.0.c`) through documents and arrays.

use bson::{Bson, Document};

/// What the query traversal does with an array found at the end of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafArrays {
    /// Yield each element (with its index), then the array itself (most query operators).
    Traverse,
    /// Yield each element only (distinct values, index keys).
    TraverseOmitArray,
    /// Yield the array itself only (`$size`, `$elemMatch`, `$all` of `$elemMatch`).
    NoTraversal,
}

/// One value the query traversal reaches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reached<'a> {
    /// The value; `None` when the path is missing there (which matches `null`).
    pub value: Option<&'a Bson>,
    /// The index in the outermost implicitly traversed array, for the positional `$`.
    pub array_index: Option<usize>,
}

/// Whether a path component is an array index: ASCII digits in canonical form (the server
/// matches `a.1` against the array element named "1", so `a.01` indexes nothing).
pub fn is_index(component: &str) -> bool {
    !component.is_empty()
        && component.bytes().all(|b| b.is_ascii_digit())
        && (component == "0" || !component.starts_with('0'))
}

/// Walks `path` as the server's query matcher does (its `BSONElementIterator`), calling `f` with
/// each reached value until `f` returns true. Returns whether `f` returned true.
///
/// Semantics: fields are followed through documents; an array met before the end of the path
/// is traversed (each element that is a document continues with the rest of the path; an
/// element whose index equals the next numeric component is also followed, positionally); a
/// path that stops at a missing field or at a scalar yields "missing"; an array at the end of
/// the path is handled per `leaf`.
pub fn traverse<'a>(
    doc: &'a Document,
    path: &str,
    leaf: LeafArrays,
    f: &mut dyn FnMut(Reached<'a>) -> bool,
) -> bool {
    let parts: Vec<&str> = path.split('.').collect();
    traverse_doc(doc, &parts, leaf, None, f)
}

/// Calls `f` with `r`, replacing its array index by `outer` when there is one (the server
/// prefers the outermost array offset).
fn emit<'a>(r: Reached<'a>, outer: Option<usize>, f: &mut dyn FnMut(Reached<'a>) -> bool) -> bool {
    f(Reached {
        value: r.value,
        array_index: outer.or(r.array_index),
    })
}

fn traverse_doc<'a>(
    doc: &'a Document,
    parts: &[&str],
    leaf: LeafArrays,
    outer: Option<usize>,
    f: &mut dyn FnMut(Reached<'a>) -> bool,
) -> bool {
    // Follow documents until the path ends or meets an array or a dead end.
    let mut cur = doc;
    let mut i = 0;
    loop {
        let Some(v) = cur.get(parts[i]) else {
            return emit(
                Reached {
                    value: None,
                    array_index: None,
                },
                outer,
                f,
            );
        };
        let last = i + 1 == parts.len();
        match v {
            Bson::Array(arr) => return traverse_array(arr, v, &parts[i + 1..], leaf, outer, f),
            _ if last => {
                return emit(
                    Reached {
                        value: Some(v),
                        array_index: None,
                    },
                    outer,
                    f,
                );
            }
            Bson::Document(d) => {
                cur = d;
                i += 1;
            }
            _ => {
                return emit(
                    Reached {
                        value: None,
                        array_index: None,
                    },
                    outer,
                    f,
                );
            }
        }
    }
}

/// Traverses array `arr` (the value `whole`) with `rest` of the path still to follow.
fn traverse_array<'a>(
    arr: &'a [Bson],
    whole: &'a Bson,
    rest: &[&str],
    leaf: LeafArrays,
    outer: Option<usize>,
    f: &mut dyn FnMut(Reached<'a>) -> bool,
) -> bool {
    if rest.is_empty() {
        if leaf != LeafArrays::NoTraversal {
            for (idx, e) in arr.iter().enumerate() {
                let r = Reached {
                    value: Some(e),
                    array_index: Some(idx),
                };
                if emit(r, outer, f) {
                    return true;
                }
            }
        }
        if leaf == LeafArrays::TraverseOmitArray {
            return false;
        }
        return emit(
            Reached {
                value: Some(whole),
                array_index: None,
            },
            outer,
            f,
        );
    }
    let offset: Option<usize> = if is_index(rest[0]) {
        rest[0].parse().ok()
    } else {
        None
    };
    for (idx, e) in arr.iter().enumerate() {
        let is_offset = offset == Some(idx);
        match e {
            Bson::Document(d) => {
                // The element's fields, with the numeric component as a field name.
                if traverse_doc(d, rest, leaf, outer.or(Some(idx)), f) {
                    return true;
                }
                if is_offset {
                    if rest.len() == 1 {
                        let r = Reached {
                            value: Some(e),
                            array_index: None,
                        };
                        if emit(r, outer, f) {
                            return true;
                        }
                    } else if traverse_doc(d, &rest[1..], leaf, outer, f) {
                        return true;
                    }
                }
            }
            _ if is_offset => {
                if rest.len() == 1 {
                    let r = Reached {
                        value: Some(e),
                        array_index: None,
                    };
                    if emit(r, outer, f) {
                        return true;
                    }
                } else if let Bson::Array(inner) = e {
                    // A nested array at the offset is traversed with the rest of the path.
                    if traverse_array(inner, e, &rest[1..], leaf, outer, f) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// The values a dotted path reaches in `doc`, traversing arrays as queries do (`a.b` on
/// `{a: [{b: 1}, {b: 2}]}` reaches 1 and 2; a numeric component also indexes arrays).
///
/// Missing values are left out, and an array at the end of the path is replaced by its
/// elements (one level), as `distinct` and multikey index keys see them: `a` on
/// `{a: [1, [2]]}` reaches 1 and `[2]`. Use [`traverse`] for the matcher's view.
pub fn lookup_all<'a>(doc: &'a Document, path: &str) -> Vec<&'a Bson> {
    let mut out = Vec::new();
    traverse(doc, path, LeafArrays::TraverseOmitArray, &mut |r| {
        if let Some(v) = r.value {
            out.push(v);
        }
        false
    });
    out
}

/// The single value at a dotted path without array expansion other than numeric indexes
/// (as `$set`, `$project` and `_id` extraction read it); `None` if missing.
pub fn get<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur: &Bson = doc.get(parts.next()?)?;
    for p in parts {
        cur = get_child(cur, p)?;
    }
    Some(cur)
}

/// The child of a value by one path component: a field of a document, or an element of an
/// array by numeric index.
pub fn get_child<'a>(v: &'a Bson, component: &str) -> Option<&'a Bson> {
    match v {
        Bson::Document(d) => d.get(component),
        Bson::Array(a) if is_index(component) => a.get(component.parse::<usize>().ok()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn reached(d: &Document, path: &str, leaf: LeafArrays) -> Vec<(Option<Bson>, Option<usize>)> {
        let mut out = Vec::new();
        traverse(d, path, leaf, &mut |r| {
            out.push((r.value.cloned(), r.array_index));
            false
        });
        out
    }

    #[test]
    fn lookup_all_traverses_arrays_of_documents() {
        let d = doc! {"a": [{"b": 1}, {"b": 2}, {"c": 3}, 4]};
        assert_eq!(lookup_all(&d, "a.b"), vec![&bson!(1), &bson!(2)]);
        let d = doc! {"a": {"b": [1, [2]]}};
        assert_eq!(lookup_all(&d, "a.b"), vec![&bson!(1), &bson!([2])]);
        assert!(lookup_all(&d, "a.x").is_empty());
    }

    #[test]
    fn numeric_component_is_index_and_field_name() {
        let d = doc! {"a": [{"b": 1}, {"b": 2}]};
        assert_eq!(lookup_all(&d, "a.1.b"), vec![&bson!(2)]);
        let d = doc! {"a": [{"0": "field"}, "x"]};
        assert_eq!(
            lookup_all(&d, "a.0"),
            vec![&bson!("field"), &bson!({"0": "field"})]
        );
        let d = doc! {"a": [[10, 11], [12]]};
        assert_eq!(lookup_all(&d, "a.0"), vec![&bson!([10, 11])]);
        let d = doc! {"a": [[{"b": 1}, {"b": 2}]]};
        assert_eq!(lookup_all(&d, "a.0.b"), vec![&bson!(1), &bson!(2)]);
    }

    #[test]
    fn traversal_yields_missing_and_leaf_arrays() {
        let d = doc! {"a": [{"b": [1, 2]}, {"c": 1}]};
        assert_eq!(
            reached(&d, "a.b", LeafArrays::Traverse),
            vec![
                (Some(bson!(1)), Some(0)),
                (Some(bson!(2)), Some(0)),
                (Some(bson!([1, 2])), Some(0)),
                (None, Some(1)),
            ]
        );
        assert_eq!(
            reached(&d, "a.b", LeafArrays::NoTraversal),
            vec![(Some(bson!([1, 2])), Some(0)), (None, Some(1))]
        );
        // A scalar in the middle of the path is a dead end: missing.
        assert_eq!(
            reached(&doc! {"a": 5}, "a.b", LeafArrays::Traverse),
            vec![(None, None)]
        );
        // Scalars in an array with path left are skipped.
        assert!(reached(&doc! {"a": [1, 2]}, "a.b", LeafArrays::Traverse).is_empty());
    }

    #[test]
    fn get_does_not_traverse_arrays() {
        let d = doc! {"a": [{"b": 1}], "c": {"d": {"e": null}}};
        assert_eq!(get(&d, "a.b"), None);
        assert_eq!(get(&d, "a.0.b"), Some(&bson!(1)));
        assert_eq!(get(&d, "c.d.e"), Some(&Bson::Null));
        assert_eq!(get(&d, "c.x"), None);
        assert_eq!(get(&d, "a.5"), None);
        assert_eq!(get(&d, "a.00"), None);
        assert!(lookup_all(&doc! {"a": [1, 2]}, "a.01").is_empty());
    }
}
