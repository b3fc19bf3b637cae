//! The update tree: one node per path component, built from the operators' paths, detecting
//! conflicts, and ordered as the server applies fields.

use super::*;

/// A field name ordered as the server orders update children: numeric names numerically,
/// others lexicographically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key(pub(super) String);

pub(super) fn numeric(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (numeric(&self.0), numeric(&other.0)) {
            (Some(a), Some(b)) => a.cmp(&b).then_with(|| self.0.cmp(&other.0)),
            _ => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Leaf(Box<Leaf>),
    Obj(ObjNode),
    Arr(ArrNode),
}

#[derive(Debug, Clone, Default)]
pub(super) struct ObjNode {
    pub(super) children: BTreeMap<Key, Node>,
    pub(super) positional: Option<Box<Node>>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct ArrNode {
    /// Keyed by identifier; `""` is `$[]`.
    pub(super) children: BTreeMap<String, Node>,
}

pub(super) fn conflict(path: &str, parts: &[Part], upto: usize) -> CommandError {
    let prefix: Vec<String> = parts[..=upto]
        .iter()
        .map(|p| match p {
            Part::Field(f) => f.clone(),
            Part::Positional => "$".to_string(),
            Part::Array(id) => format!("$[{id}]"),
        })
        .collect();
    CommandError::new(
        codes::CONFLICTING_UPDATE_OPERATORS,
        format!(
            "Updating the path '{path}' would create a conflict at '{}'",
            prefix.join(".")
        ),
    )
}

impl ObjNode {
    pub(super) fn insert(&mut self, parts: &[Part], path: &str, leaf: Leaf) -> Result<()> {
        insert_into_obj(self, parts, 0, path, leaf)
    }
}

/// Builds the node for `parts[i]` of a path not yet in the tree.
pub(super) fn build(parts: &[Part], i: usize, path: &str, leaf: Leaf) -> Result<Node> {
    if i + 1 == parts.len() {
        return Ok(Node::Leaf(Box::new(leaf)));
    }
    let mut node = if matches!(parts[i + 1], Part::Array(_)) {
        Node::Arr(ArrNode::default())
    } else {
        Node::Obj(ObjNode::default())
    };
    descend(&mut node, parts, i, path, leaf)?;
    Ok(node)
}

pub(super) fn descend(
    node: &mut Node,
    parts: &[Part],
    i: usize,
    path: &str,
    leaf: Leaf,
) -> Result<()> {
    match node {
        Node::Leaf(..) => Err(conflict(path, parts, i)),
        Node::Obj(o) => {
            if matches!(parts[i + 1], Part::Array(_)) {
                return Err(conflict(path, parts, i));
            }
            insert_into_obj(o, parts, i + 1, path, leaf)
        }
        Node::Arr(a) => {
            if !matches!(parts[i + 1], Part::Array(_)) {
                return Err(conflict(path, parts, i));
            }
            insert_into_arr(a, parts, i + 1, path, leaf)
        }
    }
}

pub(super) fn insert_into_obj(
    obj: &mut ObjNode,
    parts: &[Part],
    i: usize,
    path: &str,
    leaf: Leaf,
) -> Result<()> {
    let last = i + 1 == parts.len();
    let existing = match &parts[i] {
        Part::Field(f) => obj.children.get_mut(&Key(f.clone())),
        Part::Positional => obj.positional.as_deref_mut(),
        Part::Array(_) => return Err(conflict(path, parts, i)),
    };
    if let Some(node) = existing {
        if last {
            return Err(conflict(path, parts, i));
        }
        return descend(node, parts, i, path, leaf);
    }
    let node = build(parts, i, path, leaf)?;
    match &parts[i] {
        Part::Field(f) => {
            obj.children.insert(Key(f.clone()), node);
        }
        _ => obj.positional = Some(Box::new(node)),
    }
    Ok(())
}

pub(super) fn insert_into_arr(
    arr: &mut ArrNode,
    parts: &[Part],
    i: usize,
    path: &str,
    leaf: Leaf,
) -> Result<()> {
    let Part::Array(id) = &parts[i] else {
        return Err(conflict(path, parts, i));
    };
    if let Some(node) = arr.children.get_mut(id) {
        if i + 1 == parts.len() {
            return Err(conflict(path, parts, i));
        }
        return descend(node, parts, i, path, leaf);
    }
    let node = build(parts, i, path, leaf)?;
    arr.children.insert(id.clone(), node);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Merges two nodes that apply to the same element (positional `$` and an index, or several
/// matching array filters); two modifiers on one element conflict.
pub(super) fn merge(a: &Node, b: &Node, path: &str) -> Result<Node> {
    let conflict = || {
        CommandError::new(
            codes::CONFLICTING_UPDATE_OPERATORS,
            format!("Update created a conflict at '{path}'"),
        )
    };
    match (a, b) {
        (Node::Obj(x), Node::Obj(y)) => {
            let mut out = x.clone();
            for (k, v) in &y.children {
                let merged = match out.children.get(k) {
                    Some(existing) => merge(existing, v, &join(path, &k.0))?,
                    None => v.clone(),
                };
                out.children.insert(k.clone(), merged);
            }
            out.positional = match (&x.positional, &y.positional) {
                (Some(p), Some(q)) => Some(Box::new(merge(p, q, &join(path, "$"))?)),
                (p, q) => p.clone().or_else(|| q.clone()),
            };
            Ok(Node::Obj(out))
        }
        (Node::Arr(x), Node::Arr(y)) => {
            let mut out = x.clone();
            for (k, v) in &y.children {
                let merged = match out.children.get(k) {
                    Some(existing) => merge(existing, v, path)?,
                    None => v.clone(),
                };
                out.children.insert(k.clone(), merged);
            }
            Ok(Node::Arr(out))
        }
        _ => Err(conflict()),
    }
}
