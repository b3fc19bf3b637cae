//! Authentication and authorization: users (the state behind `admin.system.users`), the
//! built-in roles and their privileges, as in the server's `role_graph_builtin_roles.cpp`.
//!
//! Users live in a map on the server, not in a collection: they are not queryable with
//! `find`, and user commands produce no oplog entries or change events.

pub mod scram;

use std::collections::BTreeMap;

use bson::{Bson, Document, doc};
use parking_lot::RwLock;

use crate::error::{CommandError, Result, codes};
use scram::{Credentials, Mechanism};

/// A user as `createUser` stored it.
#[derive(Debug, Clone)]
pub struct User {
    /// The user name.
    pub user: String,
    /// The database it is defined on (its authentication database).
    pub db: String,
    /// `userId`.
    pub user_id: bson::Uuid,
    /// Granted roles, `(role, db)`.
    pub roles: Vec<(String, String)>,
    /// `customData`.
    pub custom_data: Option<Document>,
    /// Credentials per mechanism (`mechanisms` lists them).
    pub credentials: Vec<Credentials>,
}

impl User {
    /// The mechanisms the user can authenticate with, in the server's order.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for m in [Mechanism::Sha1, Mechanism::Sha256] {
            if self.credentials.iter().any(|c| c.mechanism == m) {
                out.push(m.name());
            }
        }
        out
    }

    /// The credentials for `mechanism`, if the user has them.
    pub fn credentials_for(&self, mechanism: Mechanism) -> Option<&Credentials> {
        self.credentials.iter().find(|c| c.mechanism == mechanism)
    }

    /// The `usersInfo` entry.
    pub fn info(&self) -> Document {
        let mut d = doc! {
            "_id": format!("{}.{}", self.db, self.user),
            "userId": self.user_id,
            "user": self.user.clone(),
            "db": self.db.clone(),
        };
        if let Some(c) = &self.custom_data {
            d.insert("customData", c.clone());
        }
        d.insert("roles", roles_doc(&self.roles));
        d.insert("mechanisms", self.mechanisms());
        d
    }
}

/// `[{role, db}, ...]`.
pub fn roles_doc(roles: &[(String, String)]) -> Vec<Bson> {
    roles
        .iter()
        .map(|(r, d)| Bson::Document(doc! {"role": r.clone(), "db": d.clone()}))
        .collect()
}

/// The users of the server, keyed by `(db, user)`.
#[derive(Debug, Default)]
pub struct Users {
    map: RwLock<BTreeMap<(String, String), User>>,
}

impl Users {
    /// A user by database and name.
    pub fn get(&self, db: &str, user: &str) -> Option<User> {
        self.map
            .read()
            .get(&(db.to_string(), user.to_string()))
            .cloned()
    }

    /// Adds a user; 51003 if it exists (as the server reports it).
    pub fn insert(&self, user: User) -> Result<()> {
        let mut map = self.map.write();
        let key = (user.db.clone(), user.user.clone());
        if map.contains_key(&key) {
            return Err(CommandError::new(
                51003,
                format!("User \"{}@{}\" already exists", user.user, user.db),
            ));
        }
        map.insert(key, user);
        Ok(())
    }

    /// Replaces a user in place (`updateUser`).
    pub fn update(&self, user: User) {
        self.map
            .write()
            .insert((user.db.clone(), user.user.clone()), user);
    }

    /// Removes a user; whether it existed.
    pub fn remove(&self, db: &str, user: &str) -> bool {
        self.map
            .write()
            .remove(&(db.to_string(), user.to_string()))
            .is_some()
    }

    /// Every user of `db` (every user when `db` is `None`), sorted by `db.user`.
    pub fn list(&self, db: Option<&str>) -> Vec<User> {
        self.map
            .read()
            .values()
            .filter(|u| db.is_none_or(|d| u.db == d))
            .cloned()
            .collect()
    }
}

/// Creates credentials for `mechanisms` (both SCRAM mechanisms by default).
pub fn make_credentials(
    user: &str,
    pwd: &str,
    mechanisms: &[Mechanism],
) -> Result<Vec<Credentials>> {
    mechanisms
        .iter()
        .map(|m| {
            Credentials::new(*m, user, pwd).ok_or_else(|| {
                CommandError::bad_value(
                    "Error preflighting SCRAM-SHA-256 credentials: invalid password",
                )
            })
        })
        .collect()
}

/// A resource an action applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// The cluster (`{cluster: true}`).
    Cluster,
    /// A database (`{db, collection: ""}`).
    Db(String),
    /// A collection (`{db, collection}`).
    Ns(String, String),
    /// Every normal collection of every database (cluster-wide change streams).
    AnyNormal,
}

impl Resource {
    /// A collection resource.
    pub fn ns(db: &str, coll: &str) -> Resource {
        Resource::Ns(db.to_string(), coll.to_string())
    }
    /// A database resource.
    pub fn db(db: &str) -> Resource {
        Resource::Db(db.to_string())
    }
}

/// What a role's privilege applies to (the server's `ResourcePattern`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Cluster,
    /// Every database and collection except `system.*` collections and the `local` and
    /// `config` databases.
    AnyNormal,
    /// Everything.
    AnyResource,
    /// A database and its non-system collections.
    Db(String),
    /// One namespace.
    ExactNs(String, String),
    /// A collection name in any database.
    CollName(&'static str),
}

fn is_system(coll: &str) -> bool {
    coll.starts_with("system.")
}

impl Pattern {
    fn matches(&self, r: &Resource) -> bool {
        match (self, r) {
            (Pattern::AnyResource, _) => true,
            (Pattern::Cluster, Resource::Cluster) => true,
            (Pattern::AnyNormal, Resource::Db(db)) => db != "local" && db != "config",
            (Pattern::AnyNormal, Resource::Ns(db, c)) => {
                db != "local" && db != "config" && !is_system(c)
            }
            (Pattern::AnyNormal, Resource::AnyNormal) => true,
            (Pattern::Db(d), Resource::Db(db)) => d == db,
            (Pattern::Db(d), Resource::Ns(db, c)) => d == db && !is_system(c),
            (Pattern::ExactNs(d, c), Resource::Ns(db, coll)) => d == db && c == coll,
            (Pattern::CollName(c), Resource::Ns(_, coll)) => c == coll,
            _ => false,
        }
    }
}

const READ: &[&str] = &[
    "changeStream",
    "collStats",
    "dbHash",
    "dbStats",
    "find",
    "killCursors",
    "listCollections",
    "listIndexes",
    "planCacheRead",
];
const READ_WRITE_EXTRA: &[&str] = &[
    "compactStructuredEncryptionData",
    "convertToCapped",
    "createCollection",
    "createIndex",
    "dropCollection",
    "dropIndex",
    "insert",
    "remove",
    "renameCollectionSameDB",
    "update",
];
const USER_ADMIN: &[&str] = &[
    "changeCustomData",
    "changePassword",
    "createUser",
    "createRole",
    "dropUser",
    "dropRole",
    "grantRole",
    "revokeRole",
    "setAuthenticationRestriction",
    "viewUser",
    "viewRole",
];
const DB_ADMIN: &[&str] = &[
    "bypassDocumentValidation",
    "collMod",
    "collStats",
    "compact",
    "convertToCapped",
    "createCollection",
    "dbStats",
    "dropCollection",
    "dropDatabase",
    "dropIndex",
    "createIndex",
    "enableProfiler",
    "listCollections",
    "listIndexes",
    "planCacheIndexFilter",
    "planCacheRead",
    "planCacheWrite",
    "reIndex",
    "renameCollectionSameDB",
    "storageDetails",
    "validate",
];
const CLUSTER_MONITOR_CLUSTER: &[&str] = &[
    "checkFreeMonitoringStatus",
    "connPoolStats",
    "getCmdLineOpts",
    "getDefaultRWConcern",
    "getLog",
    "getParameter",
    "getShardMap",
    "hostInfo",
    "listDatabases",
    "listSessions",
    "listShards",
    "netstat",
    "operationMetrics",
    "replSetGetConfig",
    "replSetGetStatus",
    "serverStatus",
    "top",
    "useUUID",
    "inprog",
    "shardingState",
];
const CLUSTER_MONITOR_DB: &[&str] = &[
    "collStats",
    "dbStats",
    "getDatabaseVersion",
    "getShardVersion",
    "indexStats",
];
const HOST_MANAGER_CLUSTER: &[&str] = &[
    "applicationMessage",
    "auditConfigure",
    "connPoolSync",
    "dropConnections",
    "logRotate",
    "oidReset",
    "setParameter",
    "shutdown",
    "touch",
    "unlock",
    "flushRouterConfig",
    "fsync",
    "invalidateUserCache",
    "killAnyCursor",
    "killAnySession",
    "killop",
    "replSetResizeOplog",
    "resync",
    "trafficRecord",
    "rotateCertificates",
];
const CLUSTER_MANAGER_CLUSTER: &[&str] = &[
    "appendOplogNote",
    "applicationMessage",
    "replSetConfigure",
    "replSetGetConfig",
    "replSetGetStatus",
    "replSetStateChange",
    "resync",
    "addShard",
    "removeShard",
    "listSessions",
    "listShards",
    "flushRouterConfig",
    "cleanupOrphaned",
    "getDefaultRWConcern",
    "runTenantMigration",
    "setDefaultRWConcern",
    "setFeatureCompatibilityVersion",
    "setFreeMonitoring",
    "setClusterParameter",
    "getClusterParameter",
];
const CLUSTER_MANAGER_DB: &[&str] = &[
    "clearJumboFlag",
    "splitChunk",
    "moveChunk",
    "enableSharding",
    "splitVector",
    "refineCollectionShardKey",
    "reshardCollection",
];
const WRITE: &[&str] = &["insert", "update", "remove"];
const RESTORE: &[&str] = &[
    "bypassDocumentValidation",
    "collMod",
    "convertToCapped",
    "createCollection",
    "createIndex",
    "dropCollection",
    "insert",
];

/// One privilege: actions on a resource pattern.
#[derive(Debug, Clone)]
struct Privilege {
    pattern: Pattern,
    actions: Vec<&'static str>,
}

/// The privileges of a set of roles.
#[derive(Debug, Clone, Default)]
pub struct Privileges {
    list: Vec<Privilege>,
}

impl Privileges {
    fn add(&mut self, pattern: Pattern, actions: &[&'static str]) {
        self.list.push(Privilege {
            pattern,
            actions: actions.to_vec(),
        });
    }

    /// Whether `action` is allowed on `resource`.
    pub fn allows(&self, resource: &Resource, action: &str) -> bool {
        self.list
            .iter()
            .any(|p| p.actions.contains(&action) && p.pattern.matches(resource))
    }

    /// Whether some action is allowed on `resource` (the server's
    /// `isAuthorizedForAnyActionOnResource`).
    pub fn any_action_on(&self, resource: &Resource) -> bool {
        self.list
            .iter()
            .any(|p| !p.actions.is_empty() && p.pattern.matches(resource))
    }

    /// Whether any action is allowed on `db` or one of its collections (`listDatabases`
    /// without the `listDatabases` privilege shows those databases).
    pub fn touches_db(&self, db: &str) -> bool {
        self.list.iter().any(|p| match &p.pattern {
            Pattern::AnyResource => true,
            Pattern::AnyNormal => db != "local" && db != "config",
            Pattern::Db(d) | Pattern::ExactNs(d, _) => d == db,
            _ => false,
        })
    }

    fn read(&mut self, db: &str) {
        self.add(Pattern::Db(db.into()), READ);
        self.add(Pattern::ExactNs(db.into(), "system.js".into()), READ);
    }
    fn read_write(&mut self, db: &str) {
        self.read(db);
        self.add(Pattern::Db(db.into()), READ_WRITE_EXTRA);
        self.add(
            Pattern::ExactNs(db.into(), "system.js".into()),
            READ_WRITE_EXTRA,
        );
    }
    fn db_admin(&mut self, db: &str) {
        self.add(Pattern::Db(db.into()), DB_ADMIN);
        let profile = [
            READ,
            &["convertToCapped", "createCollection", "dropCollection"],
        ]
        .concat();
        self.add(
            Pattern::ExactNs(db.into(), "system.profile".into()),
            &profile,
        );
    }
    fn read_any(&mut self) {
        self.add(Pattern::AnyNormal, READ);
        self.add(Pattern::Cluster, &["listDatabases"]);
        self.add(Pattern::CollName("system.js"), READ);
    }
    fn read_write_any(&mut self) {
        self.read_any();
        self.add(Pattern::AnyNormal, READ_WRITE_EXTRA);
        self.add(Pattern::CollName("system.js"), READ_WRITE_EXTRA);
    }
    fn user_admin_any(&mut self) {
        self.add(Pattern::AnyNormal, USER_ADMIN);
        self.add(Pattern::Db("local".into()), USER_ADMIN);
        self.add(Pattern::Db("config".into()), USER_ADMIN);
        self.add(
            Pattern::Cluster,
            &[
                "listDatabases",
                "authSchemaUpgrade",
                "invalidateUserCache",
                "viewUser",
            ],
        );
        self.add(Pattern::CollName("system.users"), READ);
        let index = [READ, &["createIndex", "dropIndex"]].concat();
        self.add(
            Pattern::ExactNs("admin".into(), "system.users".into()),
            &index,
        );
        self.add(
            Pattern::ExactNs("admin".into(), "system.roles".into()),
            &index,
        );
    }
    fn db_admin_any(&mut self) {
        self.add(Pattern::Cluster, &["listDatabases", "applyOps"]);
        self.add(Pattern::AnyNormal, DB_ADMIN);
        let profile = [
            READ,
            &["convertToCapped", "createCollection", "dropCollection"],
        ]
        .concat();
        self.add(Pattern::CollName("system.profile"), &profile);
    }
    fn cluster_monitor(&mut self) {
        self.add(Pattern::Cluster, CLUSTER_MONITOR_CLUSTER);
        self.add(Pattern::AnyNormal, CLUSTER_MONITOR_DB);
        self.add(Pattern::Db("config".into()), CLUSTER_MONITOR_DB);
        self.add(Pattern::Db("local".into()), CLUSTER_MONITOR_DB);
        self.read("config");
        self.read("local");
        self.add(Pattern::CollName("system.profile"), &["find"]);
    }
    fn host_manager(&mut self) {
        self.add(Pattern::Cluster, HOST_MANAGER_CLUSTER);
        self.add(Pattern::AnyNormal, &["killCursors"]);
    }
    fn cluster_manager(&mut self) {
        self.add(Pattern::Cluster, CLUSTER_MANAGER_CLUSTER);
        self.add(Pattern::AnyNormal, CLUSTER_MANAGER_DB);
        self.add(Pattern::Db("config".into()), CLUSTER_MANAGER_DB);
        self.add(Pattern::Db("local".into()), CLUSTER_MANAGER_DB);
        self.read("config");
        self.add(Pattern::Db("config".into()), WRITE);
        self.add(Pattern::Db("local".into()), WRITE);
    }
    fn cluster_admin(&mut self) {
        self.cluster_monitor();
        self.host_manager();
        self.cluster_manager();
        self.add(Pattern::AnyNormal, &["dropDatabase"]);
    }
    fn backup(&mut self) {
        self.add(
            Pattern::Cluster,
            &["appendOplogNote", "serverStatus", "setUserWriteBlockMode"],
        );
        self.add(
            Pattern::ExactNs("config".into(), "settings".into()),
            &["insert", "update", "find"],
        );
        // __queryableBackup
        self.add(
            Pattern::AnyResource,
            &["collStats", "listCollections", "listIndexes"],
        );
        self.add(Pattern::AnyNormal, &["find"]);
        self.add(
            Pattern::Cluster,
            &["getParameter", "listDatabases", "useUUID"],
        );
        self.add(Pattern::Db("config".into()), &["find"]);
        self.add(Pattern::Db("local".into()), &["find"]);
        for c in ["system.js", "system.users", "system.profile"] {
            self.add(Pattern::CollName(c), &["find"]);
        }
    }
    fn restore(&mut self) {
        self.add(Pattern::AnyNormal, RESTORE);
        self.add(Pattern::CollName("system.js"), RESTORE);
        self.add(Pattern::AnyResource, &["listCollections"]);
        self.add(Pattern::Db("config".into()), RESTORE);
        self.add(Pattern::Db("local".into()), RESTORE);
        self.add(Pattern::AnyNormal, USER_ADMIN);
        let users = [RESTORE, &["find", "update", "remove"]].concat();
        self.add(Pattern::CollName("system.users"), &users);
        self.add(Pattern::Cluster, &["getParameter"]);
        // For cluster-to-cluster replication: set and bypass user write blocking.
        self.add(
            Pattern::Cluster,
            &[
                "forceUUID",
                "useUUID",
                "bypassWriteBlockingMode",
                "setUserWriteBlockMode",
                "applyOps",
            ],
        );
    }
    fn root(&mut self) {
        self.cluster_admin();
        self.user_admin_any();
        self.db_admin_any();
        self.read_write_any();
        self.backup();
        self.restore();
        self.add(Pattern::AnyResource, &["validate"]);
        self.add(Pattern::Cluster, &["useTenant"]);
    }

    /// Adds the privileges of built-in role `role` on `db`; false if there is no such role.
    pub fn add_role(&mut self, role: &str, db: &str) -> bool {
        let admin = db == "admin";
        match role {
            "read" => self.read(db),
            "readWrite" => self.read_write(db),
            "dbAdmin" => self.db_admin(db),
            "userAdmin" => self.add(Pattern::Db(db.into()), USER_ADMIN),
            "dbOwner" => {
                self.read_write(db);
                self.db_admin(db);
                self.add(Pattern::Db(db.into()), USER_ADMIN);
            }
            "readAnyDatabase" if admin => self.read_any(),
            "readWriteAnyDatabase" if admin => self.read_write_any(),
            "userAdminAnyDatabase" if admin => self.user_admin_any(),
            "dbAdminAnyDatabase" if admin => self.db_admin_any(),
            "clusterMonitor" if admin => self.cluster_monitor(),
            "hostManager" if admin => self.host_manager(),
            "clusterManager" if admin => self.cluster_manager(),
            "clusterAdmin" if admin => self.cluster_admin(),
            "backup" if admin => self.backup(),
            "restore" if admin => self.restore(),
            "root" if admin => self.root(),
            "enableSharding" if admin => self.add(
                Pattern::AnyNormal,
                &[
                    "enableSharding",
                    "refineCollectionShardKey",
                    "reshardCollection",
                ],
            ),
            _ => return false,
        }
        true
    }

    /// The privileges of `roles`.
    pub fn of_roles(roles: &[(String, String)]) -> Privileges {
        let mut p = Privileges::default();
        for (role, db) in roles {
            p.add_role(role, db);
        }
        p
    }

    /// `connectionStatus`'s `authenticatedUserPrivileges`.
    pub fn to_bson(&self) -> Vec<Bson> {
        self.list
            .iter()
            .map(|p| {
                let resource = match &p.pattern {
                    Pattern::Cluster => doc! {"cluster": true},
                    Pattern::AnyResource => doc! {"anyResource": true},
                    Pattern::AnyNormal => doc! {"db": "", "collection": ""},
                    Pattern::Db(d) => doc! {"db": d.clone(), "collection": ""},
                    Pattern::ExactNs(d, c) => doc! {"db": d.clone(), "collection": c.clone()},
                    Pattern::CollName(c) => doc! {"db": "", "collection": *c},
                };
                Bson::Document(doc! {"resource": resource, "actions": p.actions.clone()})
            })
            .collect()
    }
}

/// Whether `role` on `db` is a built-in role (the admin-only ones exist only on `admin`).
pub fn is_builtin_role(role: &str, db: &str) -> bool {
    Privileges::default().add_role(role, db)
}

/// Parses a `roles` array (`"name"` meaning a role on `default_db`, or `{role, db}`), checking
/// that each role exists (RoleNotFound, 31, otherwise).
pub fn parse_roles(value: &Bson, command: &str, default_db: &str) -> Result<Vec<(String, String)>> {
    let Bson::Array(items) = value else {
        return Err(CommandError::wrong_field_type(
            command,
            "roles",
            crate::util::type_name(value),
            &["array"],
        ));
    };
    let mut roles = Vec::new();
    for item in items {
        let (role, db) = match item {
            Bson::String(r) => (r.clone(), default_db.to_string()),
            Bson::Document(d) => match (d.get_str("role"), d.get_str("db")) {
                (Ok(r), Ok(db)) => (r.to_string(), db.to_string()),
                _ => {
                    return Err(CommandError::bad_value(
                        "Role names must be either strings or objects with \"role\" and \"db\" fields",
                    ));
                }
            },
            _ => {
                return Err(CommandError::bad_value(
                    "Role names must be either strings or objects with \"role\" and \"db\" fields",
                ));
            }
        };
        if !is_builtin_role(&role, &db) {
            return Err(CommandError::new(
                31,
                format!("Could not find role: {role}@{db}"),
            ));
        }
        if !roles.contains(&(role.clone(), db.clone())) {
            roles.push((role, db));
        }
    }
    Ok(roles)
}

/// Unauthorized (13) as a real server words it for a missing privilege.
pub fn unauthorized(db: &str, body: &Document) -> CommandError {
    CommandError::new(
        codes::UNAUTHORIZED,
        format!(
            "not authorized on {db} to execute command {}",
            render_command(body)
        ),
    )
}

/// A command rendered as the server logs a BSON object: `{ insert: "c", ordered: true, ... }`.
pub fn render_command(body: &Document) -> String {
    fn value(v: &Bson) -> String {
        match v {
            Bson::String(s) => format!("{s:?}"),
            Bson::Document(d) => render_command(d),
            Bson::Array(a) => {
                if a.is_empty() {
                    "[]".to_string()
                } else {
                    let items: Vec<String> = a.iter().map(value).collect();
                    format!("[ {} ]", items.join(", "))
                }
            }
            Bson::Int64(n) => n.to_string(),
            Bson::Int32(n) => n.to_string(),
            Bson::Double(f) => {
                if f.fract() == 0.0 && f.is_finite() {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                }
            }
            other => other.to_string(),
        }
    }
    if body.is_empty() {
        return "{}".to_string();
    }
    let fields: Vec<String> = body
        .iter()
        .map(|(k, v)| format!("{k}: {}", value(v)))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn privs(role: &str, db: &str) -> Privileges {
        Privileges::of_roles(&[(role.to_string(), db.to_string())])
    }

    #[test]
    fn read_role_reads_its_database_only() {
        let p = privs("read", "app");
        assert!(p.allows(&Resource::ns("app", "c"), "find"));
        assert!(p.allows(&Resource::db("app"), "listCollections"));
        assert!(p.allows(&Resource::ns("app", "c"), "changeStream"));
        assert!(!p.allows(&Resource::ns("app", "c"), "insert"));
        assert!(!p.allows(&Resource::ns("other", "c"), "find"));
        assert!(!p.allows(&Resource::ns("app", "system.users"), "find"));
    }

    #[test]
    fn read_write_writes_but_does_not_bypass() {
        let p = privs("readWrite", "app");
        for a in [
            "insert",
            "update",
            "remove",
            "createCollection",
            "createIndex",
        ] {
            assert!(p.allows(&Resource::ns("app", "c"), a), "{a}");
        }
        assert!(!p.allows(&Resource::ns("app", "c"), "bypassDocumentValidation"));
        assert!(!p.allows(&Resource::db("app"), "dropDatabase"));
        assert!(!p.allows(&Resource::Cluster, "bypassWriteBlockingMode"));
    }

    #[test]
    fn any_database_roles_skip_local_config_and_system_collections() {
        let p = privs("readWriteAnyDatabase", "admin");
        assert!(p.allows(&Resource::ns("x", "c"), "insert"));
        assert!(p.allows(&Resource::Cluster, "listDatabases"));
        assert!(!p.allows(&Resource::ns("local", "c"), "find"));
        assert!(!p.allows(&Resource::ns("config", "c"), "find"));
        assert!(!p.allows(&Resource::ns("x", "system.views"), "insert"));
        // Admin-only roles do not exist on other databases.
        assert!(!is_builtin_role("readWriteAnyDatabase", "app"));
        assert!(is_builtin_role("readWrite", "app"));
    }

    #[test]
    fn bypass_write_blocking_comes_from_restore_and_root_only() {
        for (role, bypass, set_mode) in [
            ("restore", true, true),
            ("root", true, true),
            ("backup", false, true),
            ("clusterManager", false, false),
            ("clusterAdmin", false, false),
            ("readWriteAnyDatabase", false, false),
            ("dbAdminAnyDatabase", false, false),
            ("userAdminAnyDatabase", false, false),
        ] {
            let p = privs(role, "admin");
            assert_eq!(
                p.allows(&Resource::Cluster, "bypassWriteBlockingMode"),
                bypass,
                "{role}"
            );
            assert_eq!(
                p.allows(&Resource::Cluster, "setUserWriteBlockMode"),
                set_mode,
                "{role}"
            );
        }
    }

    #[test]
    fn restore_inserts_but_does_not_find_or_update() {
        let p = privs("restore", "admin");
        assert!(p.allows(&Resource::ns("x", "c"), "insert"));
        assert!(p.allows(&Resource::ns("x", "c"), "createCollection"));
        assert!(!p.allows(&Resource::ns("x", "c"), "find"));
        assert!(!p.allows(&Resource::ns("x", "c"), "update"));
    }

    #[test]
    fn cluster_roles() {
        let monitor = privs("clusterMonitor", "admin");
        assert!(monitor.allows(&Resource::Cluster, "serverStatus"));
        assert!(monitor.allows(&Resource::Cluster, "replSetGetStatus"));
        assert!(!monitor.allows(&Resource::Cluster, "setClusterParameter"));
        let manager = privs("clusterManager", "admin");
        assert!(manager.allows(&Resource::Cluster, "setClusterParameter"));
        assert!(manager.allows(&Resource::Cluster, "appendOplogNote"));
        assert!(!manager.allows(&Resource::Cluster, "serverStatus"));
        let root = privs("root", "admin");
        assert!(root.allows(&Resource::db("x"), "dropDatabase"));
        assert!(root.allows(&Resource::db("x"), "createUser"));
    }

    #[test]
    fn roles_parse_as_strings_or_documents() {
        let roles = parse_roles(
            &Bson::Array(vec![
                Bson::String("read".into()),
                Bson::Document(doc! {"role": "root", "db": "admin"}),
            ]),
            "createUser",
            "app",
        )
        .unwrap();
        assert_eq!(
            roles,
            vec![
                ("read".to_string(), "app".to_string()),
                ("root".to_string(), "admin".to_string())
            ]
        );
        let err = parse_roles(&Bson::Array(vec!["nope".into()]), "createUser", "app").unwrap_err();
        assert_eq!(err.code, 31);
    }

    #[test]
    fn commands_render_like_the_server() {
        let s = render_command(&doc! {"insert": "c", "ordered": true, "n": 1.0, "$db": "app"});
        assert_eq!(s, r#"{ insert: "c", ordered: true, n: 1.0, $db: "app" }"#);
    }
}
