//! `NativeMemoryCluster`: the testkit's in-memory replica set, served from this process's
//! tokio runtime, so Node tests need no `mongod` download.

use std::sync::Arc;

use mongosync_core::ErrorCode;
use mongosync_testkit::{ClusterOptions, MemoryCluster};
use napi_derive::napi;

use crate::error::{binding, task_failed};

/// How to start a cluster.
#[napi(object)]
#[derive(Default)]
pub struct NativeClusterOptions {
    /// The replica set's name (`rs0`).
    pub replica_set: Option<String>,
    /// The port (a free one when absent or 0).
    pub port: Option<u32>,
    /// Turns authentication on with this user (root, in `admin`); needs `password`.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
}

impl NativeClusterOptions {
    fn into_core(self) -> napi::Result<ClusterOptions> {
        let mut o = ClusterOptions::default();
        if let Some(name) = self.replica_set {
            o = o.replica_set(name);
        }
        if let Some(port) = self.port {
            let port = u16::try_from(port).map_err(|_| {
                binding(
                    ErrorCode::InvalidOptions,
                    format!("invalid option `port`: {port} is not a TCP port; allowed: 0 to 65535"),
                )
            })?;
            o = o.port(port);
        }
        match (self.user, self.password) {
            (Some(user), Some(password)) => o = o.auth(user, password),
            (None, None) => {}
            _ => {
                return Err(binding(
                    ErrorCode::InvalidOptions,
                    "invalid option `auth`: `user` and `password` go together; give both to turn authentication on, or neither",
                ));
            }
        }
        Ok(o)
    }
}

/// A running in-memory replica set; dropping it (garbage collection) stops it too.
#[napi]
pub struct NativeMemoryCluster {
    cluster: Arc<tokio::sync::Mutex<Option<MemoryCluster>>>,
    uri: String,
}

#[napi]
impl NativeMemoryCluster {
    /// Starts a cluster.
    #[napi(factory)]
    pub async fn start(options: Option<NativeClusterOptions>) -> napi::Result<NativeMemoryCluster> {
        let options = options.unwrap_or_default().into_core()?;
        // The server's tasks need the runtime: started from one of its tasks.
        let task = tokio::spawn(MemoryCluster::start_with(options));
        let cluster = match task.await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let code = if e.kind() == std::io::ErrorKind::InvalidInput {
                    ErrorCode::InvalidOptions
                } else {
                    ErrorCode::LocalIoFailed
                };
                return Err(binding(code, format!("the cluster could not start: {e}")));
            }
            Err(e) => return Err(task_failed("starting the cluster", e)),
        };
        Ok(NativeMemoryCluster {
            uri: cluster.uri().to_string(),
            cluster: Arc::new(tokio::sync::Mutex::new(Some(cluster))),
        })
    }

    /// `mongodb://HOST:PORT/?replicaSet=rs0` (no credentials).
    #[napi(getter, catch_unwind)]
    pub fn uri(&self) -> String {
        self.uri.clone()
    }

    /// The connection string with credentials, percent-encoded, `authSource=admin`.
    #[napi]
    pub async fn uri_with_credentials(
        &self,
        user: String,
        password: String,
    ) -> napi::Result<String> {
        let cluster = self.cluster.lock().await;
        match cluster.as_ref() {
            Some(c) => Ok(c.uri_with_credentials(&user, &password)),
            None => Err(stopped()),
        }
    }

    /// Stops the cluster and waits until its connections are closed; idempotent.
    #[napi]
    pub async fn stop(&self) -> napi::Result<()> {
        let cluster = self.cluster.lock().await.take();
        if let Some(c) = cluster {
            tokio::spawn(c.shutdown())
                .await
                .map_err(|e| task_failed("stopping the cluster", e))?;
        }
        Ok(())
    }
}

fn stopped() -> napi::Error {
    binding(ErrorCode::InvalidState, "the cluster is stopped")
}
