//! The sync's persisted state, in a metadata database on the destination (excluded from the
//! sync). A restarted or resumed engine reads everything it needs from here.
//!
//! | collection | what |
//! |---|---|
//! | `globalState` | start point, `/start` options, which clusters (schema-versioned) |
//! | `resumeData` | state, phase and its history, change-application resume point |
//! | `collections` | every synced collection's original options and indexes (restored at commit) |
//! | `partitions` | `_id` ranges to copy and whether each is done |

use bson::{Bson, Document, Timestamp, doc};
use futures::TryStreamExt;
use mongodb::{Collection, Database};

use crate::error::{Error, Result};
use crate::namespace::{METADATA_DATABASE, Namespace};

/// Bumped when the persisted shape changes, so that a newer engine can migrate it.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// The phases of RUNNING and COMMITTING, with mongosync's `syncPhase` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    InitializingCollections,
    InitializingPartitions,
    CollectionCopy,
    ChangeEventApplication,
    Committing,
    CommitCompleted,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::InitializingCollections => "initializing collections and indexes",
            Phase::InitializingPartitions => "initializing partitions",
            Phase::CollectionCopy => "collection copy",
            Phase::ChangeEventApplication => "change event application",
            Phase::Committing => "waiting for commit to complete",
            Phase::CommitCompleted => "commit completed",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [
            Phase::InitializingCollections,
            Phase::InitializingPartitions,
            Phase::CollectionCopy,
            Phase::ChangeEventApplication,
            Phase::Committing,
            Phase::CommitCompleted,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// Handles to the metadata collections.
#[derive(Clone)]
pub(crate) struct Metadata {
    db: Database,
}

/// A copy partition: `[lower, upper)` on `_id`, MinKey/MaxKey meaning unbounded.
#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub id: String,
    pub ns: Namespace,
    pub lower: Bson,
    pub upper: Bson,
    /// Copy in natural order as one piece (capped collections).
    pub natural: bool,
    pub total_bytes: i64,
    /// Bytes copied before a restart; `lower` is then the last `_id` checkpointed.
    pub copied: i64,
}

impl Metadata {
    pub fn new(client: &mongodb::Client) -> Metadata {
        Metadata {
            db: client.database(METADATA_DATABASE),
        }
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    fn err(&self, what: &str, e: mongodb::error::Error) -> Error {
        Error::step(format!("{what} (metadata)"), "destination", e)
    }

    /// Removes every piece of persisted state.
    pub async fn drop_all(&self) -> Result<()> {
        self.db
            .drop()
            .await
            .map_err(|e| self.err("dropping the metadata database", e))
    }

    pub async fn global(&self) -> Result<Option<Document>> {
        self.coll("globalState")
            .find_one(doc! {"_id": "global"})
            .await
            .map_err(|e| self.err("reading the global state", e))
    }

    pub async fn save_global(&self, global: Document) -> Result<()> {
        self.coll("globalState")
            .replace_one(doc! {"_id": "global"}, global)
            .upsert(true)
            .await
            .map_err(|e| self.err("saving the global state", e))?;
        Ok(())
    }

    pub async fn resume_data(&self, id: &str) -> Result<Option<Document>> {
        self.coll("resumeData")
            .find_one(doc! {"_id": id})
            .await
            .map_err(|e| self.err("reading the resume data", e))
    }

    /// Records a state and phase change, with the phase history mongosync keeps.
    pub async fn set_state(&self, id: &str, state: &str, phase: Phase) -> Result<()> {
        let now = bson::DateTime::now();
        self.coll("resumeData")
            .update_one(
                doc! {"_id": id},
                doc! {
                    "$set": {"state": state, "syncPhase": phase.as_str()},
                    "$push": {"phaseTransitions": {"phase": phase.as_str(), "ts": now}},
                },
            )
            .upsert(true)
            .await
            .map_err(|e| self.err("saving the state", e))?;
        Ok(())
    }

    pub async fn set_fields(&self, id: &str, fields: Document) -> Result<()> {
        self.coll("resumeData")
            .update_one(doc! {"_id": id}, doc! {"$set": fields})
            .upsert(true)
            .await
            .map_err(|e| self.err("saving the resume data", e))?;
        Ok(())
    }

    /// The change-application resume point: a token and its time.
    pub async fn save_resume_point(&self, id: &str, token: &Document, ts: Timestamp) -> Result<()> {
        self.set_fields(
            id,
            doc! {"crudChangeStreamResumeInfo": {"resumeToken": token.clone(), "lastEventTs": ts}},
        )
        .await
    }

    pub async fn save_collection(&self, ns: &Namespace, spec: Document) -> Result<()> {
        self.coll("collections")
            .replace_one(doc! {"_id": ns.to_string()}, spec)
            .upsert(true)
            .await
            .map_err(|e| self.err("saving a collection's specification", e))?;
        Ok(())
    }

    pub async fn collections(&self) -> Result<Vec<Document>> {
        self.coll("collections")
            .find(doc! {})
            .await
            .map_err(|e| self.err("reading the collections", e))?
            .try_collect()
            .await
            .map_err(|e| self.err("reading the collections", e))
    }

    pub async fn delete_collection(&self, ns: &Namespace) -> Result<()> {
        self.coll("collections")
            .delete_one(doc! {"_id": ns.to_string()})
            .await
            .map_err(|e| self.err("forgetting a collection", e))?;
        Ok(())
    }

    pub async fn has_partitions(&self, ns: &Namespace) -> Result<bool> {
        Ok(self
            .coll("partitions")
            .find_one(doc! {"namespace": {"db": &ns.db, "coll": &ns.coll}})
            .await
            .map_err(|e| self.err("reading partitions", e))?
            .is_some())
    }

    pub async fn save_partitions(&self, parts: &[Partition]) -> Result<()> {
        if parts.is_empty() {
            return Ok(());
        }
        let docs = parts.iter().map(|p| {
            doc! {
                "_id": &p.id,
                "namespace": {"db": &p.ns.db, "coll": &p.ns.coll},
                "lowerBound": p.lower.clone(),
                "upperBound": p.upper.clone(),
                "natural": p.natural,
                "partitionPhase": "not started",
                "copiedByteCount": 0i64,
                "totalByteCount": p.total_bytes,
            }
        });
        // Unordered, and duplicates ignored: a retry after a dropped connection may find
        // some of them saved already.
        match self
            .coll("partitions")
            .insert_many(docs)
            .ordered(false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if crate::error::only_duplicate_keys(&e) => Ok(()),
            Err(e) => Err(self.err("saving partitions", e)),
        }
    }

    /// Partitions not yet copied, and the bytes of those already copied.
    pub async fn pending_partitions(&self) -> Result<(Vec<Partition>, i64, i64)> {
        let all: Vec<Document> = self
            .coll("partitions")
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .map_err(|e| self.err("reading partitions", e))?
            .try_collect()
            .await
            .map_err(|e| self.err("reading partitions", e))?;
        let mut pending = vec![];
        let (mut done_bytes, mut total) = (0i64, 0i64);
        for d in all {
            let total_bytes = d.get_i64("totalByteCount").unwrap_or(0);
            total += total_bytes;
            let copied = d.get_i64("copiedByteCount").unwrap_or(0);
            if d.get_str("partitionPhase").ok() == Some("done") {
                done_bytes += copied;
                continue;
            }
            // An unfinished partition continues from its checkpoint (inclusive: that one
            // document is inserted again, a benign duplicate).
            let resume_after = d.get("resumeAfter").cloned();
            let copied = if resume_after.is_some() { copied } else { 0 };
            done_bytes += copied;
            let ns = d.get_document("namespace").map_err(|_| Error::Metadata {
                reason: "a partition has no namespace".into(),
            })?;
            pending.push(Partition {
                id: d.get_str("_id").unwrap_or_default().to_string(),
                ns: Namespace::new(
                    ns.get_str("db").unwrap_or_default(),
                    ns.get_str("coll").unwrap_or_default(),
                ),
                lower: resume_after
                    .or_else(|| d.get("lowerBound").cloned())
                    .unwrap_or(Bson::MinKey),
                upper: d.get("upperBound").cloned().unwrap_or(Bson::MaxKey),
                natural: d.get_bool("natural").unwrap_or(false),
                total_bytes,
                copied,
            });
        }
        Ok((pending, done_bytes, total))
    }

    pub async fn partition_phase(&self, id: &str, phase: &str, copied: i64) -> Result<()> {
        self.coll("partitions")
            .update_one(
                doc! {"_id": id},
                doc! {"$set": {"partitionPhase": phase, "copiedByteCount": copied}},
            )
            .await
            .map_err(|e| self.err("saving a partition's progress", e))?;
        Ok(())
    }

    /// Everything up to `_id` `last` of the partition is on the destination.
    pub async fn partition_checkpoint(&self, id: &str, copied: i64, last: &Bson) -> Result<()> {
        self.coll("partitions")
            .update_one(
                doc! {"_id": id},
                doc! {"$set": {"copiedByteCount": copied, "resumeAfter": last.clone()}},
            )
            .await
            .map_err(|e| self.err("saving a partition's progress", e))?;
        Ok(())
    }

    pub async fn delete_partitions(&self, ns: &Namespace) -> Result<()> {
        self.coll("partitions")
            .delete_many(doc! {"namespace": {"db": &ns.db, "coll": &ns.coll}})
            .await
            .map_err(|e| self.err("forgetting partitions", e))?;
        Ok(())
    }
}
