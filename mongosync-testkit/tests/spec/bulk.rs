//! `clientBulkWrite`: the driver's `Client::bulk_write` (the 8.0 `bulkWrite` command), with
//! its results and errors turned into the spec's shapes.

use std::collections::HashMap;
use std::sync::Arc;

use bson::{Bson, Document, doc};
use mongodb::error::{Error as DErr, ErrorKind, PartialBulkWriteResult};
use mongodb::options::{
    BulkWriteOptions, DeleteManyModel, DeleteOneModel, InsertOneModel, ReplaceOneModel,
    UpdateManyModel, UpdateModifications, UpdateOneModel, WriteModel,
};
use mongodb::results::{SummaryBulkWriteResult, VerboseBulkWriteResult};
use mongodb::{Client, Namespace};

use crate::entities::{SessionEntity, opts, rw_opts};
use crate::matching::{Lookup, matches};
use crate::operations::{E, Res};

fn bad(m: impl Into<String>) -> E {
    E::Fail(crate::Fail::Failed(m.into()))
}

fn model(m: &Bson) -> Result<WriteModel, E> {
    let m = m.as_document().ok_or_else(|| bad("bad model"))?;
    let (kind, a) = m.iter().next().ok_or_else(|| bad("empty model"))?;
    let a = a.as_document().ok_or_else(|| bad("bad model"))?;
    let ns: Namespace = a
        .get_str("namespace")
        .map_err(|_| bad("model without namespace"))?
        .parse()
        .map_err(|_| bad("bad namespace"))?;
    let filter = || {
        a.get_document("filter")
            .cloned()
            .map_err(|_| bad("model without filter"))
    };
    let update = || match a.get("update") {
        Some(Bson::Document(d)) => Ok(UpdateModifications::Document(d.clone())),
        Some(Bson::Array(v)) => Ok(UpdateModifications::Pipeline(
            v.iter().filter_map(|x| x.as_document().cloned()).collect(),
        )),
        _ => Err(bad("model without update")),
    };
    let coll = a.get_document("collation").ok().cloned();
    let hint = a.get("hint").cloned();
    let upsert = a.get_bool("upsert").ok();
    let af = a.get_array("arrayFilters").ok().cloned();
    let sort = a.get_document("sort").ok().cloned();
    Ok(match kind.as_str() {
        "insertOne" => InsertOneModel::builder()
            .namespace(ns)
            .document(
                a.get_document("document")
                    .cloned()
                    .map_err(|_| bad("no document"))?,
            )
            .build()
            .into(),
        "updateOne" => UpdateOneModel::builder()
            .namespace(ns)
            .filter(filter()?)
            .update(update()?)
            .array_filters(af)
            .collation(coll)
            .hint(hint)
            .upsert(upsert)
            .sort(sort)
            .build()
            .into(),
        "updateMany" => UpdateManyModel::builder()
            .namespace(ns)
            .filter(filter()?)
            .update(update()?)
            .array_filters(af)
            .collation(coll)
            .hint(hint)
            .upsert(upsert)
            .build()
            .into(),
        "replaceOne" => ReplaceOneModel::builder()
            .namespace(ns)
            .filter(filter()?)
            .replacement(
                a.get_document("replacement")
                    .cloned()
                    .map_err(|_| bad("no replacement"))?,
            )
            .collation(coll)
            .hint(hint)
            .upsert(upsert)
            .sort(sort)
            .build()
            .into(),
        "deleteOne" => DeleteOneModel::builder()
            .namespace(ns)
            .filter(filter()?)
            .collation(coll)
            .hint(hint)
            .build()
            .into(),
        "deleteMany" => DeleteManyModel::builder()
            .namespace(ns)
            .filter(filter()?)
            .collation(coll)
            .hint(hint)
            .build()
            .into(),
        other => return Err(bad(format!("unknown model {other}"))),
    })
}

fn summary(s: &SummaryBulkWriteResult) -> Document {
    doc! {
        "insertedCount": s.inserted_count,
        "upsertedCount": s.upserted_count,
        "matchedCount": s.matched_count,
        "modifiedCount": s.modified_count,
        "deletedCount": s.deleted_count,
    }
}

fn indexed<T>(m: &HashMap<usize, T>, f: impl Fn(&T) -> Document) -> Document {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by_key(|(i, _)| **i);
    v.into_iter()
        .map(|(i, x)| (i.to_string(), Bson::Document(f(x))))
        .collect()
}

fn verbose(r: &VerboseBulkWriteResult) -> Document {
    let mut d = summary(&r.summary);
    d.insert(
        "insertResults",
        indexed(
            &r.insert_results,
            |x| doc! {"insertedId": x.inserted_id.clone()},
        ),
    );
    d.insert(
        "updateResults",
        indexed(&r.update_results, |x| {
            let mut d = doc! {"matchedCount": x.matched_count as i64, "modifiedCount": x.modified_count as i64};
            if let Some(id) = &x.upserted_id {
                d.insert("upsertedId", id.clone());
            }
            d
        }),
    );
    d.insert(
        "deleteResults",
        indexed(
            &r.delete_results,
            |x| doc! {"deletedCount": x.deleted_count as i64},
        ),
    );
    d
}

pub async fn client_bulk_write(
    c: &Client,
    mut a: Document,
    s: Option<Arc<SessionEntity>>,
) -> Result<Res, E> {
    let models: Vec<WriteModel> = a
        .get_array("models")
        .map_err(|_| bad("no models"))?
        .iter()
        .map(model)
        .collect::<Result<_, _>>()?;
    a.remove("models");
    let verbose_results = a.get_bool("verboseResults").unwrap_or(false);
    // The client bulk write spec's own checks, which this driver makes with another message
    // (it refuses every unacknowledged write concern).
    let w0 = a
        .get_document("writeConcern")
        .is_ok_and(|w| matches!(w.get("w"), Some(Bson::Int32(0) | Bson::Int64(0))));
    if w0 && verbose_results {
        return Err(E::Driver(DErr::custom(
            crate::crud_emulated::ClientSideError(
                "Cannot request unacknowledged write concern and verbose results".into(),
            ),
        )));
    }
    if w0 && a.get_bool("ordered").unwrap_or(true) {
        return Err(E::Driver(DErr::custom(
            crate::crud_emulated::ClientSideError(
                "Cannot request unacknowledged write concern and ordered writes".into(),
            ),
        )));
    }
    a.remove("verboseResults");
    let o: BulkWriteOptions = opts(&rw_opts(&a))?;
    let act = c.bulk_write(models).with_options(o);
    let d = if verbose_results {
        let act = act.verbose_results();
        let r = match &s {
            Some(s) => {
                let mut g = s.session.lock().await;
                act.session(&mut *g).await?
            }
            None => act.await?,
        };
        verbose(&r)
    } else {
        let r = match &s {
            Some(s) => {
                let mut g = s.session.lock().await;
                act.session(&mut *g).await?
            }
            None => act.await?,
        };
        summary(&r)
    };
    Ok(Res::Value(Bson::Document(d)))
}

/// `expectError.expectResult`, `writeErrors` and `writeConcernErrors` of a client bulk write.
pub fn check_bulk_error(e: &DErr, x: &Document, ents: Lookup) -> Result<(), String> {
    let ErrorKind::BulkWrite(b) = &*e.kind else {
        // Other errors carry no partial result in this driver: `expectResult` must allow an
        // unset value (the spec wraps insertMany's partial results in $$unsetOrMatches).
        if let Some(want) = x.get("expectResult") {
            matches(None, want, true, ents).map_err(|m| {
                format!(
                    "this driver exposes no partial result here: {m} (error: {})",
                    e.kind
                )
            })?;
        }
        if x.contains_key("writeErrors") || x.contains_key("writeConcernErrors") {
            return Err(format!("not a client bulk write error: {}", e.kind));
        }
        return Ok(());
    };
    if let Some(want) = x.get("expectResult") {
        let got = b.partial_result.as_ref().map(|p| match p {
            PartialBulkWriteResult::Summary(s) => Bson::Document(summary(s)),
            PartialBulkWriteResult::Verbose(v) => Bson::Document(verbose(v)),
        });
        matches(got.as_ref(), want, true, ents).map_err(|m| format!("partial result: {m}"))?;
    }
    if let Ok(want) = x.get_document("writeErrors") {
        let got = indexed(
            &b.write_errors,
            |w| doc! {"code": w.code, "message": w.message.clone()},
        );
        for (k, v) in want {
            matches(got.get(k), v, true, ents).map_err(|m| format!("writeErrors {k}: {m}"))?;
        }
        if got.len() != want.len() {
            return Err(format!("writeErrors {got}, expected {want}"));
        }
    }
    if let Ok(want) = x.get_array("writeConcernErrors") {
        let got: Vec<Bson> = b
            .write_concern_errors
            .iter()
            .map(|w| Bson::Document(doc! {"code": w.code, "message": w.message.clone()}))
            .collect();
        if got.len() != want.len() {
            return Err(format!("writeConcernErrors {got:?}, expected {want:?}"));
        }
        for (g, w) in got.iter().zip(want) {
            matches(Some(g), w, true, ents).map_err(|m| format!("writeConcernErrors: {m}"))?;
        }
    }
    Ok(())
}
