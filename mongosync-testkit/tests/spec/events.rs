//! `expectEvents`: command monitoring events matched against the captured ones.

use bson::{Bson, Document};

use crate::Fail;
use crate::entities::{Entities, Ev};
use crate::matching::{Lookup, match_doc};

pub fn check(expect: &[Bson], ents: &Entities) -> Result<(), Fail> {
    let lookup = |id: &str| ents.lookup(id);
    for e in expect {
        let e = e
            .as_document()
            .ok_or_else(|| Fail::Failed("bad expectEvents".into()))?;
        let kind = e.get_str("eventType").unwrap_or("command");
        if kind != "command" {
            return Err(Fail::Unsupported(format!("{kind} events")));
        }
        let cid = e.get_str("client").unwrap_or_default();
        let client = ents.client(cid)?;
        let actual: Vec<Ev> = client.events.lock().expect("lock").clone();
        let expected = e
            .get_array("events")
            .map_err(|_| Fail::Failed("no events".into()))?;
        let extra_ok = e.get_bool("ignoreExtraEvents").unwrap_or(false);
        let names: Vec<&str> = actual.iter().map(Ev::name).collect();
        if actual.len() < expected.len() || (!extra_ok && actual.len() != expected.len()) {
            return Err(Fail::Failed(format!(
                "{cid}: {} events {names:?}, expected {}",
                actual.len(),
                expected.len()
            )));
        }
        for (i, (a, x)) in actual.iter().zip(expected).enumerate() {
            let x = x
                .as_document()
                .ok_or_else(|| Fail::Failed("bad event".into()))?;
            one(a, x, &lookup)
                .map_err(|m| Fail::Failed(format!("{cid} event {i} ({}): {m}", a.name())))?;
        }
    }
    Ok(())
}

fn one(a: &Ev, x: &Document, ents: Lookup) -> Result<(), String> {
    let (kind, spec) = x.iter().next().ok_or("empty event")?;
    let spec = spec.as_document().ok_or("bad event")?;
    let (name, db) = match a {
        Ev::Started { name, db, .. } | Ev::Succeeded { name, db, .. } | Ev::Failed { name, db } => {
            (name, db)
        }
    };
    let want_kind = match a {
        Ev::Started { .. } => "commandStartedEvent",
        Ev::Succeeded { .. } => "commandSucceededEvent",
        Ev::Failed { .. } => "commandFailedEvent",
    };
    if kind != want_kind {
        return Err(format!("got {want_kind} of {name}, expected {kind}"));
    }
    if let Ok(n) = spec.get_str("commandName")
        && n != name
    {
        return Err(format!("command {name}, expected {n}"));
    }
    if let Ok(d) = spec.get_str("databaseName")
        && d != db
    {
        return Err(format!("database {db}, expected {d}"));
    }
    match a {
        Ev::Started {
            command,
            service_id,
            conn_id,
            ..
        } => {
            if let Ok(c) = spec.get_document("command") {
                match_doc(command, c, true, ents)?;
            }
            if let Ok(b) = spec.get_bool("hasServiceId")
                && b != *service_id
            {
                return Err(format!("hasServiceId {service_id}"));
            }
            if let Ok(b) = spec.get_bool("hasServerConnectionId")
                && b != *conn_id
            {
                return Err(format!("hasServerConnectionId {conn_id}"));
            }
        }
        Ev::Succeeded { reply, .. } => {
            if let Ok(r) = spec.get_document("reply") {
                match_doc(reply, r, true, ents)?;
            }
        }
        Ev::Failed { .. } => {}
    }
    Ok(())
}
