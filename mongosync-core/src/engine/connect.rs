//! Step 1 of the data's way: connect to both clusters and check them.

use std::time::{Duration, Instant};

use bson::{Document, Timestamp, doc};
use mongodb::options::{ClientOptions, ReadConcern, SelectionCriteria, WriteConcern};
use mongodb::{Client, ClientSession};

use crate::error::{Error, Result};
use crate::options::ClusterName;

/// One cluster: its client, its name and the address users know it by.
#[derive(Clone)]
pub(crate) struct Cluster {
    pub name: ClusterName,
    pub client: Client,
    /// `host:port` of the first seed, for `directionMapping` and restart checks.
    pub address: String,
    /// `hello.maxWireVersion`: what the server's commands can do (client-level `bulkWrite`
    /// needs 25, MongoDB 8.0).
    pub wire_version: i32,
}

/// The wire version of MongoDB 6.1, the first whose update events carry
/// `disambiguatedPaths`.
pub(crate) const WIRE_VERSION_6_1: i32 = 18;

/// The wire version of MongoDB 8.0, the first with the client-level `bulkWrite` command.
pub(crate) const WIRE_VERSION_8_0: i32 = 25;

impl Cluster {
    /// Connects and checks the topology and server version.
    pub async fn connect(name: ClusterName, uri: &str) -> Result<Cluster> {
        let label = name.as_str();
        let mut opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| Error::Connection {
                cluster: label.into(),
                message: format!("the URI is not valid: {}", redact(&e.to_string(), uri)),
                source: None,
            })?;
        check_uri_options(label, &opts)?;
        opts.read_concern = Some(ReadConcern::majority());
        opts.write_concern = Some(WriteConcern::majority());
        opts.selection_criteria = Some(SelectionCriteria::ReadPreference(
            mongodb::options::ReadPreference::Primary,
        ));
        opts.app_name.get_or_insert_with(|| "mongosync".into());
        opts.server_selection_timeout
            .get_or_insert(Duration::from_secs(10));
        // After a state-change error (NotWritablePrimary, ShutdownInProgress) the driver waits
        // for its next server check before it selects the server again; at the default 10 s
        // every such error stalls the sync that long. A URI's own value wins.
        opts.heartbeat_freq.get_or_insert(Duration::from_secs(1));
        let address = opts
            .hosts
            .first()
            .map(|h| h.to_string())
            .unwrap_or_default();
        let client = Client::with_options(opts).map_err(|e| Error::Connection {
            cluster: label.into(),
            message: redact(&e.to_string(), uri),
            source: None,
        })?;
        let mut cluster = Cluster {
            name,
            client,
            address,
            wire_version: 0,
        };
        cluster.wire_version = cluster.check().await?;
        Ok(cluster)
    }

    /// Checks the cluster, and returns its wire version.
    async fn check(&self) -> Result<i32> {
        let admin = self.client.database("admin");
        let hello = admin
            .run_command(doc! {"hello": 1})
            .await
            .map_err(|e| self.connection_error("it did not answer `hello`", e))?;
        if hello.get_str("msg").ok() == Some("isdbgrid") {
            return Err(Error::Unsupported {
                what: format!("the {} cluster, a sharded cluster (mongos)", self.name.as_str()),
                reason: "this engine syncs replica sets only; migrate a sharded cluster with MongoDB's mongosync, or sync each shard's data through a replica set".into(),
            });
        }
        if hello.get_str("setName").is_err() {
            return Err(Error::Connection {
                cluster: self.name.as_str().into(),
                message: "it is a standalone server; mongosync needs a replica set (convert the standalone to a single-member replica set)".into(),
                source: None,
            });
        }
        let info = admin
            .run_command(doc! {"buildInfo": 1})
            .await
            .map_err(|e| self.connection_error("it did not answer `buildInfo`", e))?;
        let version = info.get_str("version").unwrap_or("0.0.0").to_string();
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 6 {
            return Err(Error::Connection {
                cluster: self.name.as_str().into(),
                message: format!(
                    "it runs MongoDB {version}; this engine needs 6.0 or later (change streams with DDL events, write blocking)"
                ),
                source: None,
            });
        }
        Ok(hello.get_i32("maxWireVersion").unwrap_or(0))
    }

    /// Whether the server's update events say which paths are ambiguous (6.1 and later).
    pub fn disambiguates_paths(&self) -> bool {
        self.wire_version >= WIRE_VERSION_6_1
    }

    /// Whether the server has the client-level `bulkWrite` command (8.0 and later).
    pub fn has_bulk_write(&self) -> bool {
        self.wire_version >= WIRE_VERSION_8_0
    }

    /// The replica set's name and members as the cluster itself reports them (`hello`), so
    /// that one cluster reached through two URIs (other host names, other seeds) is known.
    pub async fn identity(&self) -> Result<(String, Vec<String>)> {
        let hello = self
            .admin(doc! {"hello": 1})
            .await
            .map_err(|e| self.connection_error("it did not answer `hello`", e))?;
        let mut members: Vec<String> = ["hosts", "passives", "arbiters"]
            .iter()
            .filter_map(|f| hello.get_array(f).ok())
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_ascii_lowercase))
            .collect();
        members.sort();
        Ok((
            hello.get_str("setName").unwrap_or_default().to_string(),
            members,
        ))
    }

    /// `None` when this client may write while user writes are blocked: it authenticated as
    /// a user holding `bypassWriteBlockingMode` on the cluster (`root` and `restore` do). A
    /// connection that did not authenticate never bypasses, even with authentication off
    /// (server-emulation §11.1). Otherwise, what is missing.
    pub async fn bypass_missing(&self) -> Result<Option<String>> {
        let status = self
            .admin(doc! {"connectionStatus": 1, "showPrivileges": true})
            .await
            .map_err(|e| {
                Error::step(
                    "checking the connection's privileges",
                    self.name.as_str(),
                    e,
                )
            })?;
        let info = status.get_document("authInfo").cloned().unwrap_or_default();
        let users: Vec<String> = info
            .get_array("authenticatedUsers")
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_document())
                    .map(|u| {
                        format!(
                            "{}@{}",
                            u.get_str("user").unwrap_or_default(),
                            u.get_str("db").unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if users.is_empty() {
            return Ok(Some("the URI has no credentials".into()));
        }
        let holds = info
            .get_array("authenticatedUserPrivileges")
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_document())
            .any(|p| {
                p.get_document("resource")
                    .is_ok_and(|r| r.get_bool("cluster").unwrap_or(false))
                    && p.get_array("actions").is_ok_and(|a| {
                        a.iter()
                            .any(|x| x.as_str() == Some("bypassWriteBlockingMode"))
                    })
            });
        Ok((!holds).then(|| format!("the user {} does not hold it", users.join(", "))))
    }

    pub fn connection_error(&self, what: &str, e: mongodb::error::Error) -> Error {
        Error::Connection {
            cluster: self.name.as_str().into(),
            message: format!("{what}: {e}"),
            source: Some(e.into()),
        }
    }

    /// Runs an admin command.
    pub async fn admin(&self, command: Document) -> mongodb::error::Result<Document> {
        self.client.database("admin").run_command(command).await
    }

    /// Writes a no-op to the oplog and returns its time: a point no in-flight write can
    /// precede unseen (peers.md §6.2). `step` names the step in errors.
    pub async fn oplog_note(&self, what: &str, step: &str) -> Result<Timestamp> {
        let fail = |e| Error::step(step, self.name.as_str(), e);
        let mut session: ClientSession = self.client.start_session().await.map_err(fail)?;
        self.client
            .database("admin")
            .run_command(doc! {"appendOplogNote": 1, "data": {"mongosync": what}})
            .session(&mut session)
            .await
            .map_err(fail)?;
        operation_time(session.operation_time(), step, self.name.as_str())
    }

    /// Round trip of a `ping`, in milliseconds (`-1` when it fails).
    pub async fn ping_ms(&self) -> i64 {
        let t = Instant::now();
        match self.admin(doc! {"ping": 1}).await {
            Ok(_) => t.elapsed().as_millis() as i64,
            Err(_) => -1,
        }
    }

    /// Turns user write blocking on or off (mongosync's reason).
    pub async fn set_write_block(&self, on: bool) -> Result<()> {
        self.admin(doc! {
            "setUserWriteBlockMode": 1,
            "global": on,
            "reason": "ClusterToClusterMigrationInProgress",
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::step(
                if on {
                    "blocking user writes"
                } else {
                    "unblocking user writes"
                },
                self.name.as_str(),
                e,
            )
        })
    }
}

/// The `operationTime` of a reply: a missing one is an error, never time zero (which would
/// put a start or commit point before all history).
fn operation_time(time: Option<Timestamp>, step: &str, cluster: &str) -> Result<Timestamp> {
    time.ok_or_else(|| Error::Step {
        step: step.into(),
        cluster: cluster.into(),
        message: "the reply has no `operationTime`, so the point in the oplog is unknown; mongosync needs a replica set member that reports cluster times".into(),
        source: None,
    })
}

/// mongosync's URI rules: majority read and write concerns, primary reads.
fn check_uri_options(cluster: &str, opts: &ClientOptions) -> Result<()> {
    let refuse = |message: String| {
        Err(Error::Connection {
            cluster: cluster.into(),
            message,
            source: None,
        })
    };
    if let Some(rc) = &opts.read_concern
        && rc.level != mongodb::options::ReadConcernLevel::Majority
    {
        return refuse(format!(
            "the URI sets readConcernLevel {:?}; read concern must be majority (or left out)",
            rc.level
        ));
    }
    if let Some(wc) = &opts.write_concern
        && let Some(w) = &wc.w
        && *w != mongodb::options::Acknowledgment::Majority
    {
        return refuse(format!(
            "the URI sets w={w:?}; write concern must be majority (or left out)"
        ));
    }
    if let Some(SelectionCriteria::ReadPreference(rp)) = &opts.selection_criteria
        && !matches!(rp, mongodb::options::ReadPreference::Primary)
    {
        return refuse(
            "the URI sets a read preference other than primary; mongosync reads from primaries only"
                .into(),
        );
    }
    Ok(())
}

/// Removes the password of `uri` from a message, should the driver have echoed it.
fn redact(message: &str, uri: &str) -> String {
    let password = uri
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "****"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_operation_time_is_an_error() {
        let e = operation_time(None, "taking the start point", "cluster0").unwrap_err();
        assert!(e.to_string().contains("no `operationTime`"), "{e}");
        assert_eq!(e.code(), crate::ErrorCode::OperationFailed);
        let t = Timestamp {
            time: 5,
            increment: 1,
        };
        assert_eq!(operation_time(Some(t), "s", "c").unwrap(), t);
    }

    #[test]
    fn passwords_never_reach_messages() {
        let uri = "mongodb://app:s3cret@h:1/?replicaSet=x";
        assert_eq!(
            redact("bad uri mongodb://app:s3cret@h:1", uri),
            "bad uri mongodb://app:****@h:1"
        );
        assert_eq!(redact("fine", "mongodb://h:1"), "fine");
    }
}
