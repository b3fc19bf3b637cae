//! The options of a sync: [`StartOptions`] mirror the body of mongosync's `POST /start`,
//! [`ConnectOptions`] tune the engine. Validation happens in one place,
//! [`StartOptions::validate`], before anything is written.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::namespace::{NamespaceFilter, SYSTEM_DATABASES};

/// The two clusters of `--cluster0` / `--cluster1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterName {
    /// The first cluster given to `connect`.
    Cluster0,
    /// The second cluster given to `connect`.
    Cluster1,
}

impl ClusterName {
    /// `"cluster0"` or `"cluster1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterName::Cluster0 => "cluster0",
            ClusterName::Cluster1 => "cluster1",
        }
    }

    /// The other cluster.
    pub fn other(self) -> ClusterName {
        match self {
            ClusterName::Cluster0 => ClusterName::Cluster1,
            ClusterName::Cluster1 => ClusterName::Cluster0,
        }
    }
}

/// `buildIndexes`: when the destination's indexes are built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BuildIndexes {
    /// After the copy (the default for 6.0+ sources).
    #[default]
    AfterDataCopy,
    /// While initialising, before the copy.
    BeforeDataCopy,
    /// Before the copy, skipping hashed indexes.
    ExcludeHashed,
    /// After the copy, skipping hashed indexes.
    ExcludeHashedAfterCopy,
    /// Only `_id`.
    Never,
}

impl BuildIndexes {
    pub(crate) fn before_copy(self) -> bool {
        matches!(
            self,
            BuildIndexes::BeforeDataCopy | BuildIndexes::ExcludeHashed
        )
    }
    pub(crate) fn skips_hashed(self) -> bool {
        matches!(
            self,
            BuildIndexes::ExcludeHashed | BuildIndexes::ExcludeHashedAfterCopy
        )
    }
}

/// `enableUserWriteBlocking`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteBlocking {
    /// Destination blocked for users until `canWrite` (mongosync's default since 1.11).
    #[default]
    DestinationOnly,
    /// Also block the source's user writes when commit starts.
    SourceAndDestination,
    /// Block nothing; the user stops source writes before commit.
    None,
}

impl<'de> Deserialize<'de> for WriteBlocking {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // mongosync accepts the strings (1.12+) and the older booleans.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(WriteBlocking::SourceAndDestination),
            Raw::Bool(false) => Ok(WriteBlocking::None),
            Raw::Str(s) => match s.as_str() {
                "destinationOnly" => Ok(WriteBlocking::DestinationOnly),
                "sourceAndDestination" => Ok(WriteBlocking::SourceAndDestination),
                "none" => Ok(WriteBlocking::None),
                other => Err(serde::de::Error::custom(format!(
                    "unknown value \"{other}\"; allowed: \"destinationOnly\", \"sourceAndDestination\", \"none\", true, false"
                ))),
            },
        }
    }
}

/// The body of `POST /start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct StartOptions {
    /// Which cluster is the source.
    pub source: ClusterName,
    /// Which cluster is the destination.
    pub destination: ClusterName,
    /// Namespaces to sync (everything when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_namespaces: Vec<NamespaceFilter>,
    /// Namespaces to leave out; applied after the includes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_namespaces: Vec<NamespaceFilter>,
    /// When indexes are built.
    #[serde(default)]
    pub build_indexes: BuildIndexes,
    /// Whether `reverse` is allowed after commit.
    #[serde(default)]
    pub reversible: bool,
    /// Which clusters are write-blocked for users.
    #[serde(default)]
    pub enable_user_write_blocking: WriteBlocking,
    /// Allow a destination that already holds data (requires a namespace filter).
    #[serde(default)]
    pub pre_existing_destination_data: bool,
}

impl StartOptions {
    /// Options syncing everything from `source` to the other cluster, with mongosync's defaults.
    pub fn new(source: ClusterName) -> StartOptions {
        StartOptions {
            source,
            destination: source.other(),
            include_namespaces: vec![],
            exclude_namespaces: vec![],
            build_indexes: BuildIndexes::default(),
            reversible: false,
            enable_user_write_blocking: WriteBlocking::default(),
            pre_existing_destination_data: false,
        }
    }

    /// Parses the JSON body of `POST /start`.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the field that is wrong and what is allowed.
    pub fn from_json(body: &str) -> Result<StartOptions> {
        let opts: StartOptions = serde_json::from_str(body).map_err(|e| {
            let msg = e.to_string();
            let field = msg
                .split('`')
                .nth(1)
                .filter(|_| msg.starts_with("unknown field") || msg.starts_with("missing field"))
                .unwrap_or("body")
                .to_string();
            Error::invalid(field, msg)
        })?;
        opts.validate()?;
        Ok(opts)
    }

    /// Adds an include filter.
    #[must_use]
    pub fn include(mut self, filter: NamespaceFilter) -> Self {
        self.include_namespaces.push(filter);
        self
    }

    /// Adds an exclude filter.
    #[must_use]
    pub fn exclude(mut self, filter: NamespaceFilter) -> Self {
        self.exclude_namespaces.push(filter);
        self
    }

    /// Sets `buildIndexes`.
    #[must_use]
    pub fn build_indexes(mut self, b: BuildIndexes) -> Self {
        self.build_indexes = b;
        self
    }

    /// Sets `enableUserWriteBlocking`.
    #[must_use]
    pub fn write_blocking(mut self, w: WriteBlocking) -> Self {
        self.enable_user_write_blocking = w;
        self
    }

    /// Sets `reversible`.
    #[must_use]
    pub fn reversible(mut self, r: bool) -> Self {
        self.reversible = r;
        self
    }

    /// Sets `preExistingDestinationData`.
    #[must_use]
    pub fn pre_existing_destination_data(mut self, p: bool) -> Self {
        self.pre_existing_destination_data = p;
        self
    }

    pub(crate) fn filtered(&self) -> bool {
        !self.include_namespaces.is_empty() || !self.exclude_namespaces.is_empty()
    }

    /// Checks the combination of options as mongosync's `/start` does.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the field and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if self.source == self.destination {
            return Err(Error::invalid(
                "destination",
                format!(
                    "the destination must be the other cluster than the source (source is \"{}\"; allowed: \"{}\")",
                    self.source.as_str(),
                    self.source.other().as_str()
                ),
            ));
        }
        for (field, filters) in [
            ("includeNamespaces", &self.include_namespaces),
            ("excludeNamespaces", &self.exclude_namespaces),
        ] {
            for (i, f) in filters.iter().enumerate() {
                f.validate(&format!("{field}[{i}]"))?;
            }
        }
        if self.reversible {
            if self.build_indexes == BuildIndexes::Never {
                return Err(Error::invalid(
                    "reversible",
                    "a reversible sync needs indexes: `buildIndexes: \"never\"` cannot be combined with `reversible: true`",
                ));
            }
            if self.filtered() {
                return Err(Error::invalid(
                    "reversible",
                    "a sync with `includeNamespaces` or `excludeNamespaces` cannot be reversible",
                ));
            }
            if self.pre_existing_destination_data {
                return Err(Error::invalid(
                    "reversible",
                    "`preExistingDestinationData` cannot be combined with `reversible: true`",
                ));
            }
        }
        if self.enable_user_write_blocking == WriteBlocking::SourceAndDestination && self.filtered()
        {
            return Err(Error::invalid(
                "enableUserWriteBlocking",
                "\"sourceAndDestination\" cannot be combined with a namespace filter; allowed with a filter: \"destinationOnly\" or \"none\"",
            ));
        }
        if self.pre_existing_destination_data && !self.filtered() {
            return Err(Error::invalid(
                "preExistingDestinationData",
                "requires `includeNamespaces` or `excludeNamespaces`, so that pre-existing destination namespaces are left out",
            ));
        }
        Ok(())
    }
}

/// Engine settings that are not part of `/start` (mongosync's command-line flags and tuning).
///
/// Built with consuming setters from [`ConnectOptions::default`]; checked once, by `connect`.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// This instance's ID (`mongosyncID`); `"coordinator"` for a single process, as mongosync.
    pub(crate) id: String,
    /// Target size of a copy partition, in bytes.
    pub(crate) partition_bytes: u64,
    /// Partitions copied at once.
    pub(crate) copy_workers: usize,
    /// Bytes in one insert batch of the copy.
    pub(crate) copy_batch_bytes: usize,
    /// Parallel change-event appliers.
    pub(crate) appliers: usize,
    /// Events applied in one round (between two persisted resume points).
    pub(crate) apply_round_events: usize,
    /// Change events kept in memory before spilling to disk.
    pub(crate) buffer_memory_bytes: usize,
    /// Where spilled events go (a fresh directory under the system's temp dir by default).
    pub(crate) spill_dir: Option<PathBuf>,
    /// How often the source gets a no-op and both clusters a ping (for lag and latency).
    pub(crate) monitor_interval: Duration,
    /// How often the source's oplog window is checked (`estimatedOplogTimeRemaining`;
    /// mongosync: every 5 minutes).
    pub(crate) oplog_check_interval: Duration,
    /// The largest lag (seconds) at which commit is allowed.
    pub(crate) commit_lag_limit_secs: i64,
    /// How long transient failures are retried before the sync stops (mongosync: 30 min).
    pub(crate) retry_window: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            id: "coordinator".into(),
            partition_bytes: 64 << 20,
            copy_workers: 4,
            // Workers × (2 queued + 1 being written) batches bound the copy's memory.
            copy_batch_bytes: 4 << 20,
            appliers: 8,
            apply_round_events: 10_000,
            buffer_memory_bytes: 64 << 20,
            spill_dir: None,
            monitor_interval: Duration::from_secs(1),
            oplog_check_interval: Duration::from_secs(5 * 60),
            commit_lag_limit_secs: 30,
            retry_window: Duration::from_secs(30 * 60),
        }
    }
}

impl ConnectOptions {
    /// Sets this instance's ID (`mongosyncID`, mongosync's `--id`).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }
    /// Sets where spilled change events go.
    #[must_use]
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }
    /// Sets the largest lag (seconds) at which commit is allowed.
    #[must_use]
    pub fn commit_lag_limit_secs(mut self, secs: i64) -> Self {
        self.commit_lag_limit_secs = secs;
        self
    }
    /// Sets the copy partition size.
    #[must_use]
    pub fn partition_bytes(mut self, n: u64) -> Self {
        self.partition_bytes = n;
        self
    }
    /// Sets the number of copy workers.
    #[must_use]
    pub fn copy_workers(mut self, n: usize) -> Self {
        self.copy_workers = n;
        self
    }
    /// Sets the bytes of one copy insert batch.
    #[must_use]
    pub fn copy_batch_bytes(mut self, n: usize) -> Self {
        self.copy_batch_bytes = n;
        self
    }
    /// Sets how many events one change-application round takes at most.
    #[must_use]
    pub fn apply_round_events(mut self, n: usize) -> Self {
        self.apply_round_events = n;
        self
    }
    /// Sets the number of change-event appliers.
    #[must_use]
    pub fn appliers(mut self, n: usize) -> Self {
        self.appliers = n;
        self
    }
    /// Sets how many change-event bytes stay in memory before spilling.
    #[must_use]
    pub fn buffer_memory_bytes(mut self, n: usize) -> Self {
        self.buffer_memory_bytes = n;
        self
    }
    /// Sets how long transient failures are retried.
    #[must_use]
    pub fn retry_window(mut self, d: Duration) -> Self {
        self.retry_window = d;
        self
    }
    /// Sets the monitor interval.
    #[must_use]
    pub fn monitor_interval(mut self, d: Duration) -> Self {
        self.monitor_interval = d;
        self
    }
    /// Sets how often the source's oplog window is checked.
    #[must_use]
    pub fn oplog_check_interval(mut self, d: Duration) -> Self {
        self.oplog_check_interval = d;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = [
            ("copyWorkers", self.copy_workers),
            ("appliers", self.appliers),
            ("copyBatchBytes", self.copy_batch_bytes),
            ("applyRoundEvents", self.apply_round_events),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::invalid(field, "must be at least 1"));
            }
        }
        if self.partition_bytes == 0 {
            return Err(Error::invalid("partitionBytes", "must be at least 1"));
        }
        if self.id.is_empty() {
            return Err(Error::invalid("id", "must not be empty"));
        }
        Ok(())
    }
}

pub(crate) fn is_system_database(db: &str) -> bool {
    SYSTEM_DATABASES.contains(&db) || db.starts_with("__mdb_internal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_example() {
        let o = StartOptions::from_json(
            r#"{"source": "cluster0", "destination": "cluster1", "buildIndexes": "beforeDataCopy",
                "includeNamespaces": [{"database": "sales", "collectionsRegex": {"pattern": "^accounts_.+$", "options": "i"}},
                                      {"database": "marketing"}],
                "excludeNamespaces": [{"database": "sales", "collections": ["accounts_old"]}],
                "enableUserWriteBlocking": "destinationOnly"}"#,
        )
        .unwrap();
        assert_eq!(o.build_indexes, BuildIndexes::BeforeDataCopy);
        assert_eq!(o.include_namespaces.len(), 2);
    }

    #[test]
    fn unknown_field_is_named() {
        let e = StartOptions::from_json(
            r#"{"source": "cluster0", "destination": "cluster1", "verbose": 1}"#,
        )
        .unwrap_err();
        assert!(e.is_invalid_options());
        assert!(e.to_string().contains("`verbose`"), "{e}");
    }

    #[test]
    fn bad_values_name_what_is_allowed() {
        let e = StartOptions::from_json(
            r#"{"source": "cluster0", "destination": "cluster1", "buildIndexes": "sometimes"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("afterDataCopy"), "{e}");
        let e = StartOptions::from_json(r#"{"source": "cluster0", "destination": "cluster0"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("`destination`"), "{e}");
        let e = StartOptions::from_json(
            r#"{"source": "cluster0", "destination": "cluster1", "enableUserWriteBlocking": "both"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("sourceAndDestination"), "{e}");
    }

    #[test]
    fn write_blocking_accepts_booleans() {
        let o = StartOptions::from_json(
            r#"{"source": "cluster1", "destination": "cluster0", "enableUserWriteBlocking": true}"#,
        )
        .unwrap();
        assert_eq!(
            o.enable_user_write_blocking,
            WriteBlocking::SourceAndDestination
        );
    }

    #[test]
    fn combinations_mongosync_refuses() {
        let filter = NamespaceFilter::database("a");
        let cases = [
            (
                StartOptions::new(ClusterName::Cluster0)
                    .reversible(true)
                    .build_indexes(BuildIndexes::Never),
                "reversible",
            ),
            (
                StartOptions::new(ClusterName::Cluster0)
                    .reversible(true)
                    .include(filter.clone()),
                "reversible",
            ),
            (
                StartOptions::new(ClusterName::Cluster0)
                    .write_blocking(WriteBlocking::SourceAndDestination)
                    .include(filter.clone()),
                "enableUserWriteBlocking",
            ),
            (
                StartOptions::new(ClusterName::Cluster0).pre_existing_destination_data(true),
                "preExistingDestinationData",
            ),
        ];
        for (o, field) in cases {
            let e = o.validate().unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
    }
}
