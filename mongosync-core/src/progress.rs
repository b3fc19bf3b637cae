//! The `/progress` document of MongoDB's mongosync, typed.
//!
//! Field names and types follow the reference (`mongosync-behaviour.md` §2.2), so dashboards
//! that poll mongosync's `/progress` can read ours.

use serde::{Deserialize, Serialize};

/// The states of a sync (mongosync's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncState {
    /// Connected to both clusters, ready to start.
    Idle,
    /// Copying collections, then applying change events.
    Running,
    /// Stopped with every position persisted; `resume` continues.
    Paused,
    /// Cutting over: draining to the commit point, restoring the destination.
    Committing,
    /// Cut over: the destination is writable and complete.
    Committed,
    /// Swapping the direction after a commit.
    Reversing,
}

impl SyncState {
    /// The state's name as mongosync prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Idle => "IDLE",
            SyncState::Running => "RUNNING",
            SyncState::Paused => "PAUSED",
            SyncState::Committing => "COMMITTING",
            SyncState::Committed => "COMMITTED",
            SyncState::Reversing => "REVERSING",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<SyncState> {
        [
            SyncState::Idle,
            SyncState::Running,
            SyncState::Paused,
            SyncState::Committing,
            SyncState::Committed,
            SyncState::Reversing,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `progress` document of `GET /api/v1/progress`.
///
/// In IDLE every field but `state` and `canCommit` is `null`, as in mongosync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Progress {
    /// The state.
    pub state: SyncState,
    /// Whether `commit` is allowed now: copy done, change application running, lag ≤ 30 s.
    pub can_commit: bool,
    /// Whether the destination accepts user writes.
    pub can_write: Option<bool>,
    /// The phase, e.g. "collection copy", "change event application", "commit completed".
    pub info: Option<String>,
    /// Whether change application drains the copy's backlog or follows live events.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cea_stage: Option<String>,
    /// The source's latest time minus the last applied event's time; `null` when paused.
    pub lag_time_seconds: Option<i64>,
    /// The lag, split as mongosync 1.21 splits it.
    pub lag: Option<Lag>,
    /// Change events applied by this process.
    pub total_events_applied: Option<u64>,
    /// Copy figures.
    pub collection_copy: Option<CollectionCopy>,
    /// How long the source keeps the oldest entry the sync still needs, e.g. "12 hours",
    /// "less than 15 minutes", "not checked yet"; only while RUNNING before `canWrite`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub estimated_oplog_time_remaining: Option<String>,
    /// Which cluster is the source and which the destination.
    pub direction_mapping: Option<DirectionMapping>,
    /// The source's ping latency.
    pub source: Option<ClusterPing>,
    /// The destination's ping latency.
    pub destination: Option<ClusterPing>,
    /// This instance.
    #[serde(rename = "mongosyncID")]
    pub mongosync_id: Option<String>,
    /// The coordinating instance (this one: a single process coordinates).
    #[serde(rename = "coordinatorID")]
    pub coordinator_id: Option<String>,
    /// Conditions the user should know about; omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
}

/// `progress.lag`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Lag {
    /// Equals `lagTimeSeconds`.
    pub overall_lag_seconds: i64,
    /// The lag of CRUD application; `null` until a CRUD event has been applied.
    pub crud_lag_seconds: Option<i64>,
    /// The lag of DDL application; `null` until a DDL event has been applied.
    pub ddl_lag_seconds: Option<i64>,
}

/// `progress.collectionCopy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CollectionCopy {
    /// Bytes to copy, measured before the copy (1 before it starts, as in mongosync); raised
    /// to the copied bytes if they exceed it, and equal to them after the copy.
    pub estimated_total_bytes: i64,
    /// Bytes copied so far.
    pub estimated_copied_bytes: i64,
}

/// `progress.directionMapping` (capitalised keys, as mongosync).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DirectionMapping {
    /// `"cluster0: host:port"`.
    #[serde(rename = "Source")]
    pub source: String,
    /// `"cluster1: host:port"`.
    #[serde(rename = "Destination")]
    pub destination: String,
}

/// `progress.source` / `progress.destination`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ClusterPing {
    /// The last ping's round trip in milliseconds; absent below 1 ms; -1 if it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ping_latency_ms: Option<i64>,
}

impl Progress {
    /// A progress with every figure `null`, as in IDLE.
    pub(crate) fn empty(state: SyncState) -> Progress {
        Progress {
            state,
            can_commit: false,
            can_write: None,
            info: None,
            cea_stage: None,
            lag_time_seconds: None,
            lag: None,
            total_events_applied: None,
            collection_copy: None,
            estimated_oplog_time_remaining: None,
            direction_mapping: None,
            source: None,
            destination: None,
            mongosync_id: None,
            coordinator_id: None,
            warnings: vec![],
        }
    }

    /// The document mongosync's `/progress` returns: `{"progress": {...}, "success": true}`.
    pub fn to_response_json(&self) -> serde_json::Value {
        serde_json::json!({"progress": self, "success": true})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_progress_has_nulls_and_mongosync_names() {
        let p = Progress::empty(SyncState::Idle);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["state"], "IDLE");
        assert_eq!(v["canCommit"], false);
        assert!(v["canWrite"].is_null());
        assert!(v.get("mongosyncID").is_some());
        assert!(v.get("coordinatorID").is_some());
        assert!(v.get("warnings").is_none());
    }

    #[test]
    fn direction_mapping_keys_are_capitalised() {
        let d = DirectionMapping {
            source: "cluster0: a:1".into(),
            destination: "cluster1: b:2".into(),
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["Source"], "cluster0: a:1");
        assert_eq!(v["Destination"], "cluster1: b:2");
    }
}
