//! The TTL monitor: like the real one, a background pass every period that deletes documents
//! whose indexed date (or earliest date in an array) is older than `expireAfterSeconds`.
//! Hidden TTL indexes still expire documents, as on a real server.

use std::sync::Weak;
use std::time::Duration;

use bson::Bson;

use crate::server::Server;
use crate::storage::collection::decode;

/// Runs the monitor until the server is gone.
pub(crate) async fn run(server: Weak<Server>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(server) = server.upgrade() else {
            return;
        };
        // Between passes, as the server's monitor: a test waits for a whole pass by waiting
        // for the fail point's next entry.
        server
            .failpoints
            .pause_while_set("hangTTLMonitorBetweenPasses")
            .await;
        // `setParameter: {ttlMonitorEnabled: false}` stops the passes; an fsync lock holds
        // back the monitor's deletes as it holds every write.
        let enabled = server.admin.parameter("ttlMonitorEnabled") != Some(Bson::Boolean(false));
        if enabled && !server.admin.fsync_locked() {
            pass(&server);
        }
    }
}

/// One pass over every collection; returns how many documents were deleted.
pub(crate) fn pass(server: &Server) -> usize {
    let now = bson::DateTime::now().timestamp_millis();
    let mut deleted = 0;
    // The TTL monitor's deletes are user writes: blocked by setUserWriteBlockMode, except on
    // the internal databases (the server's TTL monitor checks the same write-block state).
    let blocked = server.write_block.lock().enabled;
    for db in server.catalog.database_names() {
        if blocked && !crate::commands::security::internal_db(&db) {
            continue;
        }
        let Some(database) = server.catalog.database(&db) else {
            continue;
        };
        for collection in database.collections.values() {
            let mut data = collection.data.write();
            if data.is_capped() {
                continue;
            }
            let rules: Vec<(String, i64)> = data
                .indexes
                .iter()
                .filter_map(|i| {
                    let secs = i
                        .spec
                        .get("expireAfterSeconds")
                        .and_then(crate::storage::collection::as_i64)?;
                    let field = i.key().keys().next()?.clone();
                    Some((field, secs))
                })
                .collect();
            if rules.is_empty() {
                continue;
            }
            let expired: Vec<u64> = data
                .iter()
                .filter_map(|(rid, raw)| {
                    let doc = decode(raw).ok()?;
                    let is_expired = rules.iter().any(|(field, secs)| {
                        earliest_date(crate::query::path::lookup_all(&doc, field))
                            .is_some_and(|ms| ms + secs * 1000 <= now)
                    });
                    is_expired.then_some(rid)
                })
                .collect();
            for rid in expired {
                if data.remove(rid).is_some() {
                    deleted += 1;
                }
            }
        }
    }
    deleted
}

fn earliest_date(values: Vec<&Bson>) -> Option<i64> {
    let mut out: Option<i64> = None;
    let mut consider = |v: &Bson| {
        if let Bson::DateTime(d) = v {
            let ms = d.timestamp_millis();
            out = Some(out.map_or(ms, |o| o.min(ms)));
        }
    };
    for v in values {
        match v {
            Bson::Array(items) => items.iter().for_each(&mut consider),
            other => consider(other),
        }
    }
    out
}
