//! `$jsonSchema`: parsing the schema keywords the server supports and validating documents.

use super::*;

#[derive(Debug, Clone, Default)]
pub(super) struct Schema {
    bson_types: Option<Vec<TypeSel>>,
    json_types: Option<Vec<String>>,
    required: Vec<String>,
    properties: Vec<(String, Schema)>,
    additional_properties: Option<bool>,
    additional_schema: Option<Box<Schema>>,
    multiple_of: Option<Bson>,
    minimum: Option<(Bson, bool)>,
    maximum: Option<(Bson, bool)>,
    min_length: Option<i64>,
    max_length: Option<i64>,
    pattern: Option<Re>,
    enum_values: Option<Vec<Bson>>,
    items: Option<Box<Schema>>,
    /// `items` as an array: a schema per position, and `additionalItems` for the rest.
    tuple_items: Option<Vec<Schema>>,
    additional_items: Option<bool>,
    additional_items_schema: Option<Box<Schema>>,
    pattern_properties: Vec<(Re, Schema)>,
    /// `dependencies`: a present property requires other properties, or a schema.
    dependencies: Vec<(String, Dependency)>,
    min_items: Option<i64>,
    max_items: Option<i64>,
    unique_items: bool,
    min_properties: Option<i64>,
    max_properties: Option<i64>,
    any_of: Vec<Schema>,
    all_of: Vec<Schema>,
    one_of: Vec<Schema>,
    not: Option<Box<Schema>>,
}

#[derive(Debug, Clone)]
enum Dependency {
    Properties(Vec<String>),
    Schema(Box<Schema>),
}

pub(super) fn schema_err(msg: impl Into<String>) -> CommandError {
    CommandError::failed_to_parse(msg)
}

impl Schema {
    pub(super) fn parse(d: &Document) -> Result<Schema> {
        let mut s = Schema::default();
        let non_neg = |k: &str, v: &Bson| -> Result<i64> {
            match as_i64_exact(v) {
                Some(n) if n >= 0 => Ok(n),
                _ => Err(schema_err(format!(
                    "$jsonSchema keyword '{k}' must be a representable nonnegative integer"
                ))),
            }
        };
        let sub_list = |k: &str, v: &Bson| -> Result<Vec<Schema>> {
            match v {
                Bson::Array(a) if !a.is_empty() => a
                    .iter()
                    .map(|x| match x {
                        Bson::Document(d) => Schema::parse(d),
                        _ => Err(schema_err(format!(
                            "$jsonSchema keyword '{k}' must be an array of objects"
                        ))),
                    })
                    .collect(),
                _ => Err(schema_err(format!(
                    "$jsonSchema keyword '{k}' must be a nonempty array"
                ))),
            }
        };
        for (k, v) in d {
            match k.as_str() {
                "bsonType" => {
                    let names: Vec<&Bson> = match v {
                        Bson::Array(a) => a.iter().collect(),
                        _ => vec![v],
                    };
                    let mut sels = Vec::new();
                    for n in names {
                        match n {
                            Bson::String(s) => sels.push(type_alias(s).ok_or_else(|| {
                                CommandError::bad_value(format!("Unknown type name alias: {s}"))
                            })?),
                            _ => {
                                return Err(CommandError::type_mismatch(
                                    "$jsonSchema keyword 'bsonType' must be either a string or an array of strings",
                                ));
                            }
                        }
                    }
                    s.bson_types = Some(sels);
                }
                "type" => {
                    let names: Vec<&Bson> = match v {
                        Bson::Array(a) => a.iter().collect(),
                        _ => vec![v],
                    };
                    let mut out = Vec::new();
                    for n in names {
                        match n {
                            Bson::String(t)
                                if matches!(
                                    t.as_str(),
                                    "object" | "array" | "number" | "boolean" | "string" | "null"
                                ) =>
                            {
                                out.push(t.clone())
                            }
                            Bson::String(t) if t == "integer" => {
                                return Err(schema_err(
                                    "$jsonSchema type 'integer' is not currently supported.",
                                ));
                            }
                            _ => {
                                return Err(CommandError::bad_value(format!(
                                    "Unknown type name alias: {n}"
                                )));
                            }
                        }
                    }
                    s.json_types = Some(out);
                }
                "required" => match v {
                    Bson::Array(a) if !a.is_empty() => {
                        for x in a {
                            match x {
                                Bson::String(f) => s.required.push(f.clone()),
                                _ => {
                                    return Err(schema_err(
                                        "$jsonSchema keyword 'required' must contain only strings",
                                    ));
                                }
                            }
                        }
                    }
                    _ => {
                        return Err(schema_err(
                            "$jsonSchema keyword 'required' must be a nonempty array",
                        ));
                    }
                },
                "properties" => {
                    let Bson::Document(props) = v else {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'properties' must be an object",
                        ));
                    };
                    for (name, sub) in props {
                        let Bson::Document(sd) = sub else {
                            return Err(CommandError::type_mismatch(format!(
                                "Nested schema for $jsonSchema property '{name}' must be an object"
                            )));
                        };
                        s.properties.push((name.clone(), Schema::parse(sd)?));
                    }
                }
                "additionalProperties" => match v {
                    Bson::Boolean(b) => s.additional_properties = Some(*b),
                    Bson::Document(sd) => s.additional_schema = Some(Box::new(Schema::parse(sd)?)),
                    _ => {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'additionalProperties' must be either an object or a boolean",
                        ));
                    }
                },
                "multipleOf" => {
                    if !is_number(v) {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'multipleOf' must be a number",
                        ));
                    }
                    let n = crate::query::compare::number_as_f64(v).unwrap_or(f64::NAN);
                    if n.is_nan() || n <= 0.0 {
                        return Err(schema_err(
                            "$jsonSchema keyword 'multipleOf' must have a positive value",
                        ));
                    }
                    s.multiple_of = Some(v.clone());
                }
                "minimum" | "maximum" => {
                    if !is_number(v) {
                        return Err(CommandError::type_mismatch(format!(
                            "$jsonSchema keyword '{k}' must be a number"
                        )));
                    }
                    let excl_key = if k == "minimum" {
                        "exclusiveMinimum"
                    } else {
                        "exclusiveMaximum"
                    };
                    let excl = matches!(d.get(excl_key), Some(Bson::Boolean(true)));
                    if k == "minimum" {
                        s.minimum = Some((v.clone(), excl));
                    } else {
                        s.maximum = Some((v.clone(), excl));
                    }
                }
                "exclusiveMinimum" | "exclusiveMaximum" => {
                    let base = if k == "exclusiveMinimum" {
                        "minimum"
                    } else {
                        "maximum"
                    };
                    if !matches!(v, Bson::Boolean(_)) {
                        return Err(CommandError::type_mismatch(format!(
                            "$jsonSchema keyword '{k}' must be a boolean"
                        )));
                    }
                    if !d.contains_key(base) {
                        return Err(schema_err(format!(
                            "$jsonSchema keyword '{base}' must be a present if {k} is present"
                        )));
                    }
                }
                "minLength" => s.min_length = Some(non_neg(k, v)?),
                "maxLength" => s.max_length = Some(non_neg(k, v)?),
                "minItems" => s.min_items = Some(non_neg(k, v)?),
                "maxItems" => s.max_items = Some(non_neg(k, v)?),
                "minProperties" => s.min_properties = Some(non_neg(k, v)?),
                "maxProperties" => s.max_properties = Some(non_neg(k, v)?),
                "uniqueItems" => s.unique_items = matches!(v, Bson::Boolean(true)),
                "pattern" => match v {
                    Bson::String(p) => s.pattern = Some(Re::new(p, "")?),
                    _ => {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'pattern' must be a string",
                        ));
                    }
                },
                "enum" => match v {
                    Bson::Array(a) if !a.is_empty() => s.enum_values = Some(a.clone()),
                    _ => {
                        return Err(schema_err(
                            "$jsonSchema keyword 'enum' cannot be an empty array",
                        ));
                    }
                },
                "items" => match v {
                    Bson::Document(sd) => s.items = Some(Box::new(Schema::parse(sd)?)),
                    Bson::Array(a) => {
                        let mut list = Vec::with_capacity(a.len());
                        for x in a {
                            let Bson::Document(sd) = x else {
                                return Err(CommandError::type_mismatch(format!(
                                    "$jsonSchema keyword 'items' requires that each element of the array is an object, but found a {}",
                                    type_name(x)
                                )));
                            };
                            list.push(Schema::parse(sd)?);
                        }
                        s.tuple_items = Some(list);
                    }
                    _ => {
                        return Err(CommandError::type_mismatch(format!(
                            "$jsonSchema keyword 'items' must be an array or an object, not {}",
                            type_name(v)
                        )));
                    }
                },
                "additionalItems" => match v {
                    Bson::Boolean(b) => s.additional_items = Some(*b),
                    Bson::Document(sd) => {
                        s.additional_items_schema = Some(Box::new(Schema::parse(sd)?))
                    }
                    _ => {
                        return Err(CommandError::type_mismatch(format!(
                            "$jsonSchema keyword 'additionalItems' must be either an object or a boolean, but got a {}",
                            type_name(v)
                        )));
                    }
                },
                "patternProperties" => {
                    let Bson::Document(pats) = v else {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'patternProperties' must be an object",
                        ));
                    };
                    for (pat, sub) in pats {
                        let Bson::Document(sd) = sub else {
                            return Err(CommandError::type_mismatch(format!(
                                "$jsonSchema keyword 'patternProperties' has property '{pat}' which is not an object"
                            )));
                        };
                        s.pattern_properties
                            .push((Re::new(pat, "")?, Schema::parse(sd)?));
                    }
                }
                "dependencies" => {
                    let Bson::Document(deps) = v else {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'dependencies' must be an object",
                        ));
                    };
                    for (name, dep) in deps {
                        let parsed = match dep {
                            Bson::Document(sd) => Dependency::Schema(Box::new(Schema::parse(sd)?)),
                            Bson::Array(a) if !a.is_empty() => {
                                let mut names = Vec::with_capacity(a.len());
                                for x in a {
                                    let Bson::String(f) = x else {
                                        return Err(CommandError::type_mismatch(format!(
                                            "property '{name}' in $jsonSchema keyword 'dependencies' must be an array of strings"
                                        )));
                                    };
                                    names.push(f.clone());
                                }
                                Dependency::Properties(names)
                            }
                            Bson::Array(_) => {
                                return Err(schema_err(format!(
                                    "property '{name}' in $jsonSchema keyword 'dependencies' must be a nonempty array"
                                )));
                            }
                            _ => {
                                return Err(CommandError::type_mismatch(format!(
                                    "property '{name}' in $jsonSchema keyword 'dependencies' must be either an object or an array"
                                )));
                            }
                        };
                        s.dependencies.push((name.clone(), parsed));
                    }
                }
                "anyOf" => s.any_of = sub_list(k, v)?,
                "allOf" => s.all_of = sub_list(k, v)?,
                "oneOf" => s.one_of = sub_list(k, v)?,
                "not" => match v {
                    Bson::Document(sd) => s.not = Some(Box::new(Schema::parse(sd)?)),
                    _ => {
                        return Err(CommandError::type_mismatch(
                            "$jsonSchema keyword 'not' must be an object",
                        ));
                    }
                },
                "title" | "description" => {}
                _ => {
                    return Err(schema_err(format!("Unknown $jsonSchema keyword: {k}")));
                }
            }
        }
        Ok(s)
    }

    pub(super) fn validate_doc(&self, doc: &Document) -> bool {
        self.validate(&Bson::Document(doc.clone()))
    }

    /// Validates a present value. Keywords that do not apply to the value's type pass, as in
    /// JSON Schema.
    fn validate(&self, v: &Bson) -> bool {
        if let Some(sels) = &self.bson_types
            && !sels.iter().any(|s| match s {
                TypeSel::Number => is_number(v),
                TypeSel::Code(c) => type_code(v) == *c,
            })
        {
            return false;
        }
        if let Some(types) = &self.json_types
            && !types.iter().any(|t| match t.as_str() {
                "object" => matches!(v, Bson::Document(_)),
                "array" => matches!(v, Bson::Array(_)),
                "number" => is_number(v),
                "boolean" => matches!(v, Bson::Boolean(_)),
                "string" => matches!(v, Bson::String(_)),
                "null" => matches!(v, Bson::Null),
                _ => false,
            })
        {
            return false;
        }
        if let Some(values) = &self.enum_values
            && !values
                .iter()
                .any(|e| crate::query::compare::values_equal(e, v) && type_rank(e) == type_rank(v))
        {
            return false;
        }
        if is_number(v) {
            if let Some((m, excl)) = &self.minimum {
                let o = compare(v, m);
                if o == Ordering::Less || (*excl && o == Ordering::Equal) || is_nan(v) {
                    return false;
                }
            }
            if let Some((m, excl)) = &self.maximum {
                let o = compare(v, m);
                if o == Ordering::Greater || (*excl && o == Ordering::Equal) || is_nan(v) {
                    return false;
                }
            }
        }
        if let Some(m) = &self.multiple_of
            && is_number(v)
        {
            let x = crate::query::compare::number_as_f64(v).unwrap_or(f64::NAN);
            let d = crate::query::compare::number_as_f64(m).unwrap_or(f64::NAN);
            if !x.is_finite() || x % d != 0.0 {
                return false;
            }
        }
        if let Bson::String(s) = v {
            let len = s.chars().count() as i64;
            if self.min_length.is_some_and(|m| len < m) || self.max_length.is_some_and(|m| len > m)
            {
                return false;
            }
            if let Some(re) = &self.pattern
                && !re.is_match(s)
            {
                return false;
            }
        }
        if let Bson::Array(a) = v {
            let len = a.len() as i64;
            if self.min_items.is_some_and(|m| len < m) || self.max_items.is_some_and(|m| len > m) {
                return false;
            }
            if let Some(items) = &self.items
                && !a.iter().all(|x| items.validate(x))
            {
                return false;
            }
            if let Some(tuple) = &self.tuple_items {
                if !a.iter().zip(tuple).all(|(x, sub)| sub.validate(x)) {
                    return false;
                }
                let rest = a.get(tuple.len()..).unwrap_or(&[]);
                if self.additional_items == Some(false) && !rest.is_empty() {
                    return false;
                }
                if let Some(sub) = &self.additional_items_schema
                    && !rest.iter().all(|x| sub.validate(x))
                {
                    return false;
                }
            }
            if self.unique_items {
                for (i, x) in a.iter().enumerate() {
                    if a[..i]
                        .iter()
                        .any(|y| compare(x, y) == Ordering::Equal && type_rank(x) == type_rank(y))
                    {
                        return false;
                    }
                }
            }
        }
        if let Bson::Document(d) = v {
            if self.required.iter().any(|f| !d.contains_key(f)) {
                return false;
            }
            let n = d.len() as i64;
            if self.min_properties.is_some_and(|m| n < m)
                || self.max_properties.is_some_and(|m| n > m)
            {
                return false;
            }
            for (name, sub) in &self.properties {
                if let Some(x) = d.get(name)
                    && !sub.validate(x)
                {
                    return false;
                }
            }
            for (re, sub) in &self.pattern_properties {
                if d.iter().any(|(k, x)| re.is_match(k) && !sub.validate(x)) {
                    return false;
                }
            }
            for (name, dep) in &self.dependencies {
                if !d.contains_key(name) {
                    continue;
                }
                let ok = match dep {
                    Dependency::Properties(names) => names.iter().all(|n| d.contains_key(n)),
                    Dependency::Schema(sub) => sub.validate(v),
                };
                if !ok {
                    return false;
                }
            }
            // Properties named or matched by a pattern are not "additional".
            let mut additional = d.iter().filter(|(k, _)| {
                !self.properties.iter().any(|(name, _)| name == *k)
                    && !self.pattern_properties.iter().any(|(re, _)| re.is_match(k))
            });
            if self.additional_properties == Some(false) && additional.next().is_some() {
                return false;
            }
            if let Some(sub) = &self.additional_schema
                && !additional.all(|(_, x)| sub.validate(x))
            {
                return false;
            }
        }
        if !self.all_of.iter().all(|s| s.validate(v)) {
            return false;
        }
        if !self.any_of.is_empty() && !self.any_of.iter().any(|s| s.validate(v)) {
            return false;
        }
        if !self.one_of.is_empty() && self.one_of.iter().filter(|s| s.validate(v)).count() != 1 {
            return false;
        }
        if let Some(n) = &self.not
            && n.validate(v)
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::Matcher;
    use bson::{Document, doc};

    fn matches(schema: Document, d: Document) -> bool {
        Matcher::new(&doc! {"$jsonSchema": schema}, &doc! {})
            .unwrap()
            .matches(&d)
    }

    fn err(schema: Document) -> (i32, String) {
        let e = Matcher::new(&doc! {"$jsonSchema": schema}, &doc! {}).unwrap_err();
        (e.code, e.message)
    }

    #[test]
    fn tuple_items_and_additional_items() {
        let s = doc! {"properties": {"p": {
            "items": [{"bsonType": "int"}, {"bsonType": "string"}],
            "additionalItems": false,
        }}};
        assert!(matches(s.clone(), doc! {"p": [1, "a"]}));
        assert!(matches(s.clone(), doc! {"p": [1]}));
        assert!(!matches(s.clone(), doc! {"p": ["a", 1]}));
        assert!(!matches(s, doc! {"p": [1, "a", 2]}));
        let s = doc! {"properties": {"p": {
            "items": [{"bsonType": "int"}],
            "additionalItems": {"bsonType": "bool"},
        }}};
        assert!(matches(s.clone(), doc! {"p": [1, true, false]}));
        assert!(!matches(s, doc! {"p": [1, true, 3]}));
        // additionalItems alone (items an object or absent) constrains nothing.
        assert!(matches(
            doc! {"properties": {"p": {"additionalItems": false}}},
            doc! {"p": [1, 2]}
        ));
        assert_eq!(
            err(doc! {"items": 1}),
            (
                14,
                "$jsonSchema keyword 'items' must be an array or an object, not int".into()
            )
        );
        assert_eq!(
            err(doc! {"items": [1]}),
            (14, "$jsonSchema keyword 'items' requires that each element of the array is an object, but found a int".into())
        );
        assert_eq!(
            err(doc! {"additionalItems": "x"}),
            (14, "$jsonSchema keyword 'additionalItems' must be either an object or a boolean, but got a string".into())
        );
    }

    #[test]
    fn pattern_properties_and_dependencies() {
        let s = doc! {
            "properties": {"name": {"bsonType": "string"}},
            "patternProperties": {"^n_": {"bsonType": "int"}},
            "additionalProperties": false,
        };
        assert!(matches(s.clone(), doc! {"name": "x", "n_a": 1, "n_b": 2}));
        assert!(!matches(s.clone(), doc! {"n_a": "one"}));
        assert!(!matches(s, doc! {"other": 1}));

        let s = doc! {"dependencies": {
            "card": ["billing"],
            "vip": {"required": ["since"]},
        }};
        assert!(matches(s.clone(), doc! {"card": 1, "billing": 2}));
        assert!(!matches(s.clone(), doc! {"card": 1}));
        assert!(matches(s.clone(), doc! {"billing": 2}));
        assert!(matches(s.clone(), doc! {"vip": true, "since": 2020}));
        assert!(!matches(s, doc! {"vip": true}));

        assert_eq!(err(doc! {"patternProperties": 1}).0, 14);
        assert_eq!(err(doc! {"patternProperties": {"a": 1}}).0, 14);
        assert_eq!(err(doc! {"dependencies": 1}).0, 14);
        assert_eq!(err(doc! {"dependencies": {"a": 1}}).0, 14);
        assert_eq!(err(doc! {"dependencies": {"a": [1]}}).0, 14);
    }
}
