//! Applying an update tree to a document: walking fields and arrays, creating missing paths,
//! and the checks on immutable fields and traversal.

use super::*;

/// What applying a node does to the value it is applied to.
pub(super) enum Out {
    Keep,
    Set(Bson),
    Remove,
}

/// The value a node is applied to.
#[derive(Clone)]
pub(super) enum Slot<'v> {
    Present(&'v Bson),
    Missing,
    /// Under a scalar (or an array indexed by a name): `desc` is `{name: value}` of that
    /// element and `part` the first field that would have to be created in it.
    NonViable {
        desc: String,
        part: String,
    },
}

pub(super) struct Applier<'a> {
    pub(super) ctx: &'a UpdateContext<'a>,
    pub(super) original: &'a Document,
    pub(super) filters: &'a BTreeMap<String, Matcher>,
    pub(super) now: bson::DateTime,
}

impl Applier<'_> {
    fn node(&self, node: &Node, slot: Slot<'_>, path: &str, name: &str) -> Result<Out> {
        match node {
            Node::Leaf(leaf) => self.leaf(leaf, slot, path, name),
            Node::Obj(o) => self.obj(o, slot, path, name),
            Node::Arr(a) => self.arr(a, slot, path, name),
        }
    }

    /// The children of an object node in application order, with the positional child put at
    /// the matched index.
    fn children(&self, obj: &ObjNode, path: &str) -> Result<Vec<(String, Node)>> {
        let mut out: BTreeMap<Key, Node> = obj.children.clone();
        if let Some(p) = &obj.positional {
            let Some(idx) = self.ctx.positional else {
                return Err(CommandError::bad_value(
                    "The positional operator did not find the match needed from the query.",
                ));
            };
            let key = Key(idx.to_string());
            let merged = match out.get(&key) {
                Some(existing) => merge(existing, p, &join(path, &key.0))?,
                None => (**p).clone(),
            };
            out.insert(key, merged);
        }
        Ok(out.into_iter().map(|(k, v)| (k.0, v)).collect())
    }

    pub(super) fn obj(&self, obj: &ObjNode, slot: Slot<'_>, path: &str, name: &str) -> Result<Out> {
        let children = self.children(obj, path)?;
        match slot {
            Slot::Present(Bson::Document(d)) => {
                let mut nd = d.clone();
                let mut changed = false;
                for (key, child) in &children {
                    let cslot = match d.get(key) {
                        Some(v) => Slot::Present(v),
                        None => Slot::Missing,
                    };
                    match self.node(child, cslot, &join(path, key), key)? {
                        Out::Keep => {}
                        Out::Set(v) => {
                            nd.insert(key.clone(), v);
                            changed = true;
                        }
                        Out::Remove => {
                            nd.remove(key);
                            changed = true;
                        }
                    }
                }
                Ok(if changed {
                    Out::Set(Bson::Document(nd))
                } else {
                    Out::Keep
                })
            }
            Slot::Present(Bson::Array(a)) => {
                let mut na = a.clone();
                let mut changed = false;
                for (key, child) in &children {
                    let Some(idx) = numeric(key).and_then(|i| usize::try_from(i).ok()) else {
                        let nv = Slot::NonViable {
                            desc: format!("{{{}}}", fmt_elem(name, &Bson::Array(a.clone()))),
                            part: key.clone(),
                        };
                        self.node(child, nv, &join(path, key), key)?;
                        continue;
                    };
                    let cslot = match a.get(idx) {
                        Some(v) => Slot::Present(v),
                        None => Slot::Missing,
                    };
                    match self.node(child, cslot, &join(path, key), key)? {
                        Out::Keep => {}
                        Out::Set(v) => {
                            if idx >= na.len() {
                                if idx - na.len() > MAX_PADDING {
                                    return Err(CommandError::new(
                                        CANNOT_BACKFILL_ARRAY,
                                        format!("can't backfill more than {MAX_PADDING} elements"),
                                    ));
                                }
                                na.resize(idx + 1, Bson::Null);
                            }
                            na[idx] = v;
                            changed = true;
                        }
                        Out::Remove => {
                            // `$unset` of an array element leaves a null in its place.
                            if idx < na.len() {
                                na[idx] = Bson::Null;
                                changed = true;
                            }
                        }
                    }
                }
                Ok(if changed {
                    Out::Set(Bson::Array(na))
                } else {
                    Out::Keep
                })
            }
            Slot::Present(scalar) => {
                for (key, child) in &children {
                    let nv = Slot::NonViable {
                        desc: format!("{{{}}}", fmt_elem(name, scalar)),
                        part: key.clone(),
                    };
                    self.node(child, nv, &join(path, key), key)?;
                }
                Ok(Out::Keep)
            }
            Slot::Missing => {
                let mut nd = Document::new();
                for (key, child) in &children {
                    if let Out::Set(v) = self.node(child, Slot::Missing, &join(path, key), key)? {
                        nd.insert(key.clone(), v);
                    }
                }
                Ok(if nd.is_empty() {
                    Out::Keep
                } else {
                    Out::Set(Bson::Document(nd))
                })
            }
            Slot::NonViable { .. } => {
                for (key, child) in &children {
                    self.node(child, slot.clone(), &join(path, key), key)?;
                }
                Ok(Out::Keep)
            }
        }
    }

    fn arr(&self, arr: &ArrNode, slot: Slot<'_>, path: &str, name: &str) -> Result<Out> {
        let a = match slot {
            Slot::Present(Bson::Array(a)) => a,
            Slot::Present(other) => {
                return Err(CommandError::bad_value(format!(
                    "Cannot apply array updates to non-array element {}",
                    fmt_elem(name, other)
                )));
            }
            Slot::Missing | Slot::NonViable { .. } => {
                return Err(CommandError::bad_value(format!(
                    "The path '{path}' must exist in the document in order to apply array \
                     updates."
                )));
            }
        };
        let mut na = a.clone();
        let mut changed = false;
        for (i, elem) in a.iter().enumerate() {
            let epath = join(path, &i.to_string());
            let mut merged: Option<Node> = None;
            for (id, child) in &arr.children {
                let matches = id.is_empty() || {
                    let mut wrapper = Document::new();
                    wrapper.insert(id.clone(), elem.clone());
                    self.filters.get(id).is_some_and(|m| m.matches(&wrapper))
                };
                if matches {
                    merged = Some(match merged {
                        Some(m) => merge(&m, child, &epath)?,
                        None => child.clone(),
                    });
                }
            }
            let Some(node) = merged else { continue };
            match self.node(&node, Slot::Present(elem), &epath, &i.to_string())? {
                Out::Keep => {}
                Out::Set(v) => {
                    na[i] = v;
                    changed = true;
                }
                Out::Remove => {
                    na[i] = Bson::Null;
                    changed = true;
                }
            }
        }
        Ok(if changed {
            Out::Set(Bson::Array(na))
        } else {
            Out::Keep
        })
    }

    fn id_elem(&self) -> String {
        match self.original.get("_id") {
            Some(id) => fmt_elem("_id", id),
            None => "no id".to_string(),
        }
    }

    fn id_doc(&self) -> String {
        format!("{{{}}}", self.id_elem())
    }

    fn leaf(&self, leaf: &Leaf, slot: Slot<'_>, path: &str, name: &str) -> Result<Out> {
        if matches!(leaf, Leaf::SetOnInsert(_)) && !self.ctx.is_insert {
            return Ok(Out::Keep);
        }
        // A rename of a missing field does nothing, whatever the destination.
        let rename_value = match leaf {
            Leaf::RenameTo { from } => match self.rename_source(from, path)? {
                Some(v) => Some(v),
                None => return Ok(Out::Keep),
            },
            _ => None,
        };
        let out = match slot {
            Slot::NonViable { desc, part } => {
                if leaf.creates() {
                    return Err(CommandError::new(
                        codes::PATH_NOT_VIABLE,
                        format!("Cannot create field '{part}' in element {desc}"),
                    ));
                }
                // Only `$unset` ignores a path that could not exist; `$pop`, `$pull` and
                // `$pullAll` do nothing on a missing path but fail on an impossible one.
                if matches!(leaf, Leaf::Unset | Leaf::RenameFrom) {
                    return Ok(Out::Keep);
                }
                return Err(CommandError::new(
                    codes::PATH_NOT_VIABLE,
                    format!(
                        "Cannot use the part ({part}) of ({path}) to traverse the element ({desc})"
                    ),
                ));
            }
            Slot::Missing => match rename_value {
                Some(v) => Out::Set(v),
                None => self.create(leaf)?,
            },
            Slot::Present(old) => {
                let out = match rename_value {
                    Some(v) => Out::Set(v),
                    None => self.modify(leaf, old, path, name)?,
                };
                // Identical values are no-ops (the server compares binary values).
                if let Out::Set(new) = &out
                    && binary_equal(old, new)
                {
                    return Ok(Out::Keep);
                }
                out
            }
        };
        if !matches!(out, Out::Keep) {
            self.check_immutable(leaf, path, &out)?;
        }
        Ok(out)
    }

    fn check_immutable(&self, leaf: &Leaf, path: &str, out: &Out) -> Result<()> {
        if path != "_id" && !path.starts_with("_id.") {
            return Ok(());
        }
        if !self.original.contains_key("_id") {
            return Ok(());
        }
        let sets_object = matches!(
            leaf,
            Leaf::Set(_) | Leaf::SetOnInsert(_) | Leaf::RenameTo { .. }
        );
        let msg = match out {
            _ if matches!(leaf, Leaf::RenameFrom) => format!(
                "Unsetting the path '{path}' using $rename would modify the immutable field '_id'"
            ),
            Out::Set(v) if path == "_id" && sets_object => format!(
                "Updating the path '_id' to {} would modify the immutable field '_id'",
                fmt_elem("_id", v)
            ),
            _ => format!(
                "Performing an update on the path '{path}' would modify the immutable field '_id'"
            ),
        };
        Err(CommandError::new(codes::IMMUTABLE_FIELD, msg))
    }

    /// The value at a rename's source path in the original document (`None` if missing).
    /// As on the server, a source path through a scalar is not viable, and sources or
    /// destinations inside arrays are rejected.
    fn rename_source(&self, from: &str, to: &str) -> Result<Option<Bson>> {
        let parts: Vec<&str> = from.split('.').collect();
        let mut cur = self.original_bson();
        let mut array_field: Option<&str> = None;
        let mut taken: Vec<&str> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let next = match &cur {
                Bson::Document(d) => d.get(*p),
                Bson::Array(a) => match numeric(p).and_then(|n| usize::try_from(n).ok()) {
                    Some(idx) => {
                        array_field.get_or_insert(taken.last().copied().unwrap_or(""));
                        a.get(idx)
                    }
                    None => return Err(self.not_traversable(&parts, i, &taken, &cur)),
                },
                _ => return Err(self.not_traversable(&parts, i, &taken, &cur)),
            };
            let Some(next) = next else {
                return Ok(None);
            };
            taken.push(p);
            cur = next.clone();
        }
        if let Some(field) = array_field {
            return Err(CommandError::bad_value(format!(
                "The source field cannot be an array element, '{from}' in doc with {} has an \
                 array field called '{field}'",
                self.id_elem()
            )));
        }
        self.check_rename_dest(to)?;
        Ok(Some(cur))
    }

    fn original_bson(&self) -> Bson {
        Bson::Document(self.original.clone())
    }

    fn not_traversable(
        &self,
        parts: &[&str],
        i: usize,
        taken: &[&str],
        cur: &Bson,
    ) -> CommandError {
        let name = taken.last().copied().unwrap_or("");
        CommandError::new(
            codes::PATH_NOT_VIABLE,
            format!(
                "cannot use the part ({} of {}) to traverse the element ({{{}}})",
                parts[i],
                parts.join("."),
                fmt_elem(name, cur)
            ),
        )
    }

    /// A rename may not write into an array element (the destination itself may be an array).
    fn check_rename_dest(&self, to: &str) -> Result<()> {
        let parts: Vec<&str> = to.split('.').collect();
        let mut cur: &Document = self.original;
        for (i, p) in parts.iter().enumerate() {
            match cur.get(*p) {
                Some(Bson::Document(d)) => cur = d,
                Some(Bson::Array(_)) if i + 1 < parts.len() => {
                    return Err(CommandError::bad_value(format!(
                        "The destination field cannot be an array element, '{to}' in doc with \
                         {} has an array field called '{p}'",
                        self.id_elem()
                    )));
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn current_date(&self, timestamp: bool) -> Bson {
        if timestamp {
            let millis = self.now.timestamp_millis();
            Bson::Timestamp(Timestamp {
                time: u32::try_from(millis / 1000).unwrap_or(u32::MAX),
                increment: 1,
            })
        } else {
            Bson::DateTime(self.now)
        }
    }

    /// The value a creating modifier gives a missing field.
    fn create(&self, leaf: &Leaf) -> Result<Out> {
        Ok(match leaf {
            Leaf::Set(v) | Leaf::SetOnInsert(v) | Leaf::Min(v) | Leaf::Max(v) | Leaf::Inc(v) => {
                Out::Set(v.clone())
            }
            // `$mul` of a missing field sets the multiplier times int32 0, as the server's
            // ArithmeticNode::setValueForNewElement: 0 of its type, -0.0 for a negative double.
            Leaf::Mul(v) => {
                Out::Set(arithmetic(v, &Bson::Int32(0), false).unwrap_or_else(|| v.clone()))
            }
            Leaf::CurrentDate { timestamp } => Out::Set(self.current_date(*timestamp)),
            Leaf::Push(spec) => Out::Set(Bson::Array(push(Vec::new(), spec))),
            Leaf::AddToSet(values) => {
                let mut out: Vec<Bson> = Vec::new();
                for v in values {
                    if !out.iter().any(|e| values_equal(e, v)) {
                        out.push(v.clone());
                    }
                }
                Out::Set(Bson::Array(out))
            }
            Leaf::Bit(ops) => Out::Set(apply_bits(&Bson::Int32(0), ops)),
            Leaf::Unset
            | Leaf::Pop { .. }
            | Leaf::Pull(_)
            | Leaf::PullAll(_)
            | Leaf::RenameFrom
            | Leaf::RenameTo { .. } => Out::Keep,
        })
    }

    fn modify(&self, leaf: &Leaf, old: &Bson, path: &str, name: &str) -> Result<Out> {
        Ok(match leaf {
            Leaf::Set(v) | Leaf::SetOnInsert(v) => Out::Set(v.clone()),
            Leaf::Unset | Leaf::RenameFrom => Out::Remove,
            Leaf::Inc(v) | Leaf::Mul(v) => {
                let is_inc = matches!(leaf, Leaf::Inc(_));
                let op_name = if is_inc { "$inc" } else { "$mul" };
                if !is_number(old) {
                    return Err(CommandError::type_mismatch(format!(
                        "Cannot apply {op_name} to a value of non-numeric type. {} has the field \
                         '{name}' of non-numeric type {}",
                        self.id_doc(),
                        type_name(old)
                    )));
                }
                match arithmetic(old, v, is_inc) {
                    Some(n) => Out::Set(n),
                    None => {
                        return Err(CommandError::bad_value(format!(
                            "Failed to apply {op_name} operations to current value ({}) for \
                             document {}",
                            debug_num(old),
                            self.id_doc()
                        )));
                    }
                }
            }
            Leaf::Min(v) => {
                if compare(v, old) == Ordering::Less {
                    Out::Set(v.clone())
                } else {
                    Out::Keep
                }
            }
            Leaf::Max(v) => {
                if compare(v, old) == Ordering::Greater {
                    Out::Set(v.clone())
                } else {
                    Out::Keep
                }
            }
            Leaf::CurrentDate { timestamp } => Out::Set(self.current_date(*timestamp)),
            Leaf::Push(spec) => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::bad_value(format!(
                        "The field '{path}' must be an array but is of type {} in document {}",
                        type_name(old),
                        self.id_doc()
                    )));
                };
                Out::Set(Bson::Array(push(a.clone(), spec)))
            }
            Leaf::AddToSet(values) => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::bad_value(format!(
                        "Cannot apply $addToSet to non-array field. Field named '{name}' has \
                         non-array type {}",
                        type_name(old)
                    )));
                };
                let mut out = a.clone();
                for v in values {
                    if !out.iter().any(|e| values_equal(e, v)) {
                        out.push(v.clone());
                    }
                }
                Out::Set(Bson::Array(out))
            }
            Leaf::Pop { first } => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::type_mismatch(format!(
                        "Path '{path}' contains an element of non-array type '{}'",
                        type_name(old)
                    )));
                };
                if a.is_empty() {
                    return Ok(Out::Keep);
                }
                let mut out = a.clone();
                if *first {
                    out.remove(0);
                } else {
                    out.pop();
                }
                Out::Set(Bson::Array(out))
            }
            Leaf::Pull(cond) => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::bad_value(
                        "Cannot apply $pull to a non-array value",
                    ));
                };
                let out: Vec<Bson> = a
                    .iter()
                    .filter(|e| !pull_matches(cond, e))
                    .cloned()
                    .collect();
                Out::Set(Bson::Array(out))
            }
            Leaf::PullAll(values) => {
                let Bson::Array(a) = old else {
                    return Err(CommandError::bad_value(
                        "Cannot apply $pull to a non-array value",
                    ));
                };
                let out: Vec<Bson> = a
                    .iter()
                    .filter(|e| !values.iter().any(|v| values_equal(e, v)))
                    .cloned()
                    .collect();
                Out::Set(Bson::Array(out))
            }
            Leaf::Bit(ops) => {
                if !matches!(old, Bson::Int32(_) | Bson::Int64(_)) {
                    return Err(CommandError::bad_value(format!(
                        "Cannot apply $bit to a value of non-integral type.{} has the field \
                         {name} of non-integer type {}",
                        self.id_elem(),
                        type_name(old)
                    )));
                }
                Out::Set(apply_bits(old, ops))
            }
            Leaf::RenameTo { .. } => Out::Keep,
        })
    }
}
