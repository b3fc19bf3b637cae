//! Namespaces and the `includeNamespaces` / `excludeNamespaces` filters.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Databases that are never synced and cannot be named in a filter.
pub(crate) const SYSTEM_DATABASES: &[&str] = &["admin", "config", "local"];

/// Where the engine keeps its state on the destination (mongosync 1.20's name).
pub const METADATA_DATABASE: &str = "__mdb_internal_mongosync";

/// A `database.collection` pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Namespace {
    /// The database.
    pub db: String,
    /// The collection.
    pub coll: String,
}

impl Namespace {
    /// A namespace.
    pub fn new(db: impl Into<String>, coll: impl Into<String>) -> Namespace {
        Namespace {
            db: db.into(),
            coll: coll.into(),
        }
    }
}

impl Namespace {
    /// A change event's `{db, coll}` document (`coll` is absent for database events).
    pub(crate) fn from_document(d: &bson::Document) -> Option<Namespace> {
        Some(Namespace::new(
            d.get_str("db").ok()?,
            d.get_str("coll").unwrap_or_default(),
        ))
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.db, self.coll)
    }
}

/// A regular expression as mongosync's filters take it: `{pattern, options}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexSpec {
    /// The pattern (server `$regex` syntax).
    pub pattern: String,
    /// Flags among `i`, `m`, `s`, `x`.
    #[serde(default)]
    pub options: String,
}

/// One entry of `includeNamespaces` or `excludeNamespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceFilter {
    /// A database name (exactly one of `database` and `databaseRegex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// A database pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_regex: Option<RegexSpec>,
    /// Collection names; every collection when neither this nor `collectionsRegex` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<String>>,
    /// A collection pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections_regex: Option<RegexSpec>,
}

impl NamespaceFilter {
    /// Every collection of one database.
    pub fn database(db: impl Into<String>) -> NamespaceFilter {
        NamespaceFilter {
            database: Some(db.into()),
            ..Default::default()
        }
    }

    /// Databases matching a pattern.
    pub fn database_regex(
        pattern: impl Into<String>,
        options: impl Into<String>,
    ) -> NamespaceFilter {
        NamespaceFilter {
            database_regex: Some(RegexSpec {
                pattern: pattern.into(),
                options: options.into(),
            }),
            ..Default::default()
        }
    }

    /// Restricts the filter to these collections.
    #[must_use]
    pub fn collections<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.collections = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Restricts the filter to collections matching a pattern.
    #[must_use]
    pub fn collections_regex(
        mut self,
        pattern: impl Into<String>,
        options: impl Into<String>,
    ) -> Self {
        self.collections_regex = Some(RegexSpec {
            pattern: pattern.into(),
            options: options.into(),
        });
        self
    }

    pub(crate) fn validate(&self, field: &str) -> Result<()> {
        match (&self.database, &self.database_regex) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(Error::invalid(
                    field,
                    "a filter needs exactly one of `database` and `databaseRegex`",
                ));
            }
            (Some(db), None) => {
                if db.is_empty() || db.contains(['.', '/', '\\', ' ', '"', '$', '\0']) {
                    return Err(Error::invalid(
                        format!("{field}.database"),
                        format!("\"{db}\" is not a valid database name"),
                    ));
                }
                if crate::options::is_system_database(db) {
                    return Err(Error::invalid(
                        format!("{field}.database"),
                        format!(
                            "the system database \"{db}\" cannot be synced; name a user database"
                        ),
                    ));
                }
            }
            (None, Some(re)) => {
                compile(re, &format!("{field}.databaseRegex"))?;
            }
        }
        if let Some(colls) = &self.collections {
            for c in colls {
                if c.is_empty() || c.starts_with("system.") || c.contains(['$', '\0']) {
                    return Err(Error::invalid(
                        format!("{field}.collections"),
                        format!(
                            "\"{c}\" cannot be synced: name a user collection (not empty, not `system.*`, no `$`)"
                        ),
                    ));
                }
            }
        }
        if let Some(re) = &self.collections_regex {
            compile(re, &format!("{field}.collectionsRegex"))?;
        }
        Ok(())
    }
}

fn compile(spec: &RegexSpec, field: &str) -> Result<Regex> {
    let mut flags = String::new();
    for c in spec.options.chars() {
        match c {
            'i' | 'm' | 's' | 'x' => flags.push(c),
            other => {
                return Err(Error::invalid(
                    format!("{field}.options"),
                    format!("unknown regex option '{other}'; allowed: i, m, s, x"),
                ));
            }
        }
    }
    let pattern = if flags.is_empty() {
        spec.pattern.clone()
    } else {
        format!("(?{flags}){}", spec.pattern)
    };
    Regex::new(&pattern).map_err(|e| {
        Error::invalid(
            format!("{field}.pattern"),
            format!(
                "\"{}\" is not a valid regular expression: {e}",
                spec.pattern
            ),
        )
    })
}

struct CompiledFilter {
    database: Option<String>,
    database_regex: Option<Regex>,
    collections: Option<Vec<String>>,
    collections_regex: Option<Regex>,
}

impl CompiledFilter {
    fn new(f: &NamespaceFilter) -> Result<CompiledFilter> {
        Ok(CompiledFilter {
            database: f.database.clone(),
            database_regex: f
                .database_regex
                .as_ref()
                .map(|r| compile(r, "filter"))
                .transpose()?,
            collections: f.collections.clone(),
            collections_regex: f
                .collections_regex
                .as_ref()
                .map(|r| compile(r, "filter"))
                .transpose()?,
        })
    }

    fn matches_db(&self, db: &str) -> bool {
        self.database.as_deref() == Some(db)
            || self.database_regex.as_ref().is_some_and(|r| r.is_match(db))
    }

    /// Whether the filter names every collection of its databases.
    fn whole_database(&self) -> bool {
        self.collections.is_none() && self.collections_regex.is_none()
    }

    fn matches(&self, ns: &Namespace) -> bool {
        if !self.matches_db(&ns.db) {
            return false;
        }
        self.whole_database()
            || self
                .collections
                .as_ref()
                .is_some_and(|c| c.contains(&ns.coll))
            || self
                .collections_regex
                .as_ref()
                .is_some_and(|r| r.is_match(&ns.coll))
    }
}

/// The compiled filters of a sync: which namespaces are in scope.
pub struct Scope {
    include: Vec<CompiledFilter>,
    exclude: Vec<CompiledFilter>,
}

impl Scope {
    /// Compiles validated filters.
    pub(crate) fn new(include: &[NamespaceFilter], exclude: &[NamespaceFilter]) -> Result<Scope> {
        Ok(Scope {
            include: include
                .iter()
                .map(CompiledFilter::new)
                .collect::<Result<_>>()?,
            exclude: exclude
                .iter()
                .map(CompiledFilter::new)
                .collect::<Result<_>>()?,
        })
    }

    /// Whether a database might hold namespaces in scope.
    pub fn may_include_database(&self, db: &str) -> bool {
        if crate::options::is_system_database(db) {
            return false;
        }
        (self.include.is_empty() || self.include.iter().any(|f| f.matches_db(db)))
            && !self
                .exclude
                .iter()
                .any(|f| f.whole_database() && f.matches_db(db))
    }

    /// Whether a namespace is synced: includes first, then excludes, as mongosync applies them.
    pub fn includes(&self, ns: &Namespace) -> bool {
        if crate::options::is_system_database(&ns.db) || ns.coll.starts_with("system.") {
            return false;
        }
        (self.include.is_empty() || self.include.iter().any(|f| f.matches(ns)))
            && !self.exclude.iter().any(|f| f.matches(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> Namespace {
        let (db, coll) = s.split_once('.').unwrap();
        Namespace::new(db, coll)
    }

    #[test]
    fn includes_then_excludes() {
        let scope = Scope::new(
            &[
                NamespaceFilter::database("sales").collections_regex("^accounts_.+$", "i"),
                NamespaceFilter::database("marketing"),
            ],
            &[NamespaceFilter::database("sales").collections(["accounts_old"])],
        )
        .unwrap();
        assert!(scope.includes(&ns("sales.ACCOUNTS_eu")));
        assert!(!scope.includes(&ns("sales.accounts_old")));
        assert!(!scope.includes(&ns("sales.orders")));
        assert!(scope.includes(&ns("marketing.anything")));
        assert!(!scope.includes(&ns("other.x")));
        assert!(!scope.includes(&ns("marketing.system.views")));
        assert!(!scope.may_include_database("other"));
    }

    #[test]
    fn everything_but_system_namespaces_without_filters() {
        let scope = Scope::new(&[], &[]).unwrap();
        assert!(scope.includes(&ns("a.b")));
        assert!(!scope.includes(&ns("admin.b")));
        assert!(!scope.includes(&ns("config.b")));
        assert!(!scope.includes(&ns("__mdb_internal_mongosync.resumeData")));
    }

    #[test]
    fn bad_filters_are_named() {
        let e = NamespaceFilter::database("admin")
            .validate("includeNamespaces[0]")
            .unwrap_err();
        assert!(
            e.to_string().contains("`includeNamespaces[0].database`"),
            "{e}"
        );
        let e = NamespaceFilter::database_regex("(", "")
            .validate("excludeNamespaces[1]")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`excludeNamespaces[1].databaseRegex.pattern`"),
            "{e}"
        );
        let e = NamespaceFilter::database_regex("a", "q")
            .validate("f")
            .unwrap_err();
        assert!(e.to_string().contains("allowed: i, m, s, x"), "{e}");
        let e = NamespaceFilter::default().validate("f").unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
    }
}
