//! [`MemoryCluster`]: one in-memory replica set, listening on a TCP port.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::Server;

/// Options of a [`MemoryCluster`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// The address to listen on; the default `127.0.0.1`.
    pub host: String,
    /// The port; `0` (the default) picks a free one.
    pub port: u16,
    /// The replica set name; the default `rs0`.
    pub replica_set: String,
    /// How often the TTL monitor deletes expired documents (the real one: 60 s).
    pub ttl_monitor_period: std::time::Duration,
    /// How much history the oplog keeps.
    pub oplog_limits: crate::oplog::OplogLimits,
    /// Authentication: `None` (the default) lets every client do everything, as a server
    /// without `--auth`.
    pub auth: Option<AuthOptions>,
    /// Answer the handshake as a sharded cluster's router (`msg: "isdbgrid"`, no replica set
    /// fields), for tests of clients that refuse one. Everything else stays a replica set.
    pub mongos: bool,
    /// The MongoDB release this server claims to be (the default 8.0): its `buildInfo`
    /// version, `maxWireVersion` and feature compatibility version, and the commands it
    /// lacks (see [`ServerVersion`]).
    pub server_version: ServerVersion,
}

/// A MongoDB release the testkit can pass for. Everything the testkit implements still
/// behaves as 8.0, except what a client can see of the version: `buildInfo`,
/// `hello.maxWireVersion`, the feature compatibility version, and commands the release lacks
/// (`bulkWrite` before 8.0 answers CommandNotFound, 59, as that server does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum ServerVersion {
    /// MongoDB 6.0 (wire version 17).
    V6_0,
    /// MongoDB 7.0 (wire version 21).
    V7_0,
    /// MongoDB 8.0 (wire version 25), the default.
    #[default]
    V8_0,
}

impl ServerVersion {
    /// Every release, oldest first.
    pub const ALL: [ServerVersion; 3] = [Self::V6_0, Self::V7_0, Self::V8_0];

    /// The full version string `buildInfo` reports (a late patch release of the series).
    pub fn release(self) -> &'static str {
        match self {
            Self::V6_0 => "6.0.20",
            Self::V7_0 => "7.0.16",
            Self::V8_0 => "8.0.4",
        }
    }

    /// `buildInfo.versionArray`.
    pub fn version_array(self) -> [i32; 4] {
        match self {
            Self::V6_0 => [6, 0, 20, 0],
            Self::V7_0 => [7, 0, 16, 0],
            Self::V8_0 => [8, 0, 4, 0],
        }
    }

    /// `hello.maxWireVersion` of the release (the server's `WireVersion` enum).
    pub fn max_wire_version(self) -> i32 {
        match self {
            Self::V6_0 => 17,
            Self::V7_0 => 21,
            Self::V8_0 => 25,
        }
    }

    /// The series, `"6.0"`, `"7.0"` or `"8.0"` (also the feature compatibility version).
    pub fn series(self) -> &'static str {
        match self {
            Self::V6_0 => "6.0",
            Self::V7_0 => "7.0",
            Self::V8_0 => "8.0",
        }
    }

    /// Whether the release has the command `name` (of those the testkit implements).
    pub fn has_command(self, name: &str) -> bool {
        match name {
            // Client-level bulk writes arrived in 8.0.
            "bulkWrite" => self >= Self::V8_0,
            _ => true,
        }
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.series())
    }
}

impl std::str::FromStr for ServerVersion {
    type Err = String;

    /// Parses a series (`"7.0"`) or a release of one (`"7.0.16"`, `"7"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('.');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or("0");
        match (major, minor) {
            ("6", "0") => Ok(Self::V6_0),
            ("7", "0") => Ok(Self::V7_0),
            ("8", "0") => Ok(Self::V8_0),
            _ => Err(format!(
                "unsupported server version `{s}`; the testkit can pass for 6.0, 7.0 or 8.0"
            )),
        }
    }
}

/// The first user of a cluster started with authentication on.
#[derive(Clone)]
#[non_exhaustive]
pub struct AuthOptions {
    /// The user name (on `admin`, with the `root` role).
    pub user: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOptions")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            host: "127.0.0.1".into(),
            port: 0,
            replica_set: "rs0".into(),
            ttl_monitor_period: std::time::Duration::from_secs(60),
            oplog_limits: crate::oplog::OplogLimits::default(),
            auth: None,
            mongos: false,
            server_version: ServerVersion::default(),
        }
    }
}

impl ClusterOptions {
    /// Sets the host to listen on.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }
    /// Sets the port (`0` for a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// Sets the replica set name.
    pub fn replica_set(mut self, name: impl Into<String>) -> Self {
        self.replica_set = name.into();
        self
    }
    /// Bounds the oplog's history: at most `max_entries` entries and about `max_bytes` bytes.
    pub fn oplog_limits(mut self, max_entries: usize, max_bytes: usize) -> Self {
        self.oplog_limits = crate::oplog::OplogLimits {
            max_entries,
            max_bytes,
        };
        self
    }
    /// Turns authentication on: clients must authenticate (SCRAM-SHA-1 or SCRAM-SHA-256) and
    /// hold the privileges each command needs. `user` is created on `admin` with the `root`
    /// role before the cluster accepts connections.
    pub fn auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(AuthOptions {
            user: user.into(),
            password: password.into(),
        });
        self
    }
    /// Answers the handshake as a `mongos` (see [`ClusterOptions::mongos`]).
    pub fn mongos(mut self) -> Self {
        self.mongos = true;
        self
    }
    /// Passes for another MongoDB release (see [`ServerVersion`]).
    pub fn server_version(mut self, version: ServerVersion) -> Self {
        self.server_version = version;
        self
    }
    /// Sets the TTL monitor's period.
    pub fn ttl_monitor_period(mut self, period: std::time::Duration) -> Self {
        self.ttl_monitor_period = period;
        self
    }
}

/// A single-member replica set, in memory, serving the MongoDB wire protocol.
///
/// Dropping it stops the server (without waiting); [`shutdown`](Self::shutdown) stops it and
/// waits until the listener is closed.
#[must_use = "the cluster stops when dropped"]
pub struct MemoryCluster {
    addr: SocketAddr,
    uri: String,
    server: Arc<Server>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MemoryCluster {
    /// Starts a cluster with the default options: replica set `rs0` on 127.0.0.1 and a free
    /// port.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start() -> std::io::Result<MemoryCluster> {
        Self::start_with(ClusterOptions::default()).await
    }

    /// Starts a cluster with `options`.
    ///
    /// # Errors
    /// When the address cannot be bound, or the `auth` password is not a valid SASLprep
    /// string.
    pub async fn start_with(options: ClusterOptions) -> std::io::Result<MemoryCluster> {
        if let Some(auth) = &options.auth
            && crate::auth::scram::Mechanism::Sha256
                .prepare_password(&auth.user, &auth.password)
                .is_none()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the password is refused by SASLprep (SCRAM-SHA-256)",
            ));
        }
        let listener = TcpListener::bind((options.host.as_str(), options.port)).await?;
        let addr = listener.local_addr()?;
        let host = format!("{}:{}", options.host, addr.port());
        let uri = if options.mongos {
            format!("mongodb://{host}/")
        } else {
            format!("mongodb://{host}/?replicaSet={}", options.replica_set)
        };
        let server = Server::new(host, options);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(Arc::clone(&server).serve(listener, stop_rx));
        Ok(MemoryCluster {
            addr,
            uri,
            server,
            stop,
            task: Some(task),
        })
    }

    /// The connection string: `mongodb://HOST:PORT/?replicaSet=rs0`.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The connection string with credentials: `mongodb://USER:PASSWORD@HOST:PORT/?replicaSet=rs0&authSource=admin`
    /// (user and password percent-encoded).
    pub fn uri_with_credentials(&self, user: &str, password: &str) -> String {
        let host = self.server.host.as_str();
        format!(
            "mongodb://{}:{}@{host}/?replicaSet={}&authSource=admin",
            percent_encode(user),
            percent_encode(password),
            self.server.replica_set()
        )
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server behind the cluster, for test hooks.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Stops accepting connections, closes every open one, and waits until done.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MemoryCluster {
    fn drop(&mut self) {
        // No I/O here: signal the server task, which closes its listener and connections.
        let _ = self.stop.send(true);
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (user info in a URI).
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_info_is_percent_encoded() {
        assert_eq!(super::percent_encode("a b:c@d/é"), "a%20b%3Ac%40d%2F%C3%A9");
        assert_eq!(super::percent_encode("plain-user_1.x~"), "plain-user_1.x~");
    }
}
