//! The change-stream cursor: opened by an `aggregate` whose first stage is `$changeStream`,
//! fed from the oplog by each `getMore` (which waits up to `maxTimeMS` for new entries), with a
//! `postBatchResumeToken` in every batch that never goes backwards.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bson::{Bson, Document, RawDocumentBuf, Timestamp};

use super::event::{self, Built, EventOptions, Scope};
use super::token::{ResumeTokenData, TokenType};
use crate::commands::{Ctx, Reply};
use crate::cursor::{Cursor, MAX_BATCH_BYTES};
use crate::error::{CommandError, Result, codes};
use crate::query::pipeline::Pipeline;
use crate::server::Server;

/// How many oplog entries one scan reads at a time.
const SCAN_CHUNK: usize = 1024;

/// The largest document a reply may carry (the server's `BSONObjMaxInternalSize`): an event
/// above it fails the stream with BSONObjectTooLarge.
const MAX_INTERNAL_SIZE: usize = 16 * 1024 * 1024 + 16 * 1024;

/// Above this size `$changeStreamSplitLargeEvent` splits an event (the server's
/// `kBSONObjMaxChangeEventSize`, leaving room for the reply's resume token).
const MAX_CHANGE_EVENT_SIZE: usize = MAX_INTERNAL_SIZE - 8 * 1024;

const SPLIT_STAGE: &str = "$changeStreamSplitLargeEvent";

/// The IDL `bool` options of `$changeStream`.
const BOOL_FIELDS: &[&str] = &[
    "allChangesForCluster",
    "showExpandedEvents",
    "showSystemEvents",
    "showRawUpdateDescription",
    "allowToRunOnConfigDB",
    "allowToRunOnSystemNS",
    "showMigrationEvents",
    "showCommitTimestamp",
];

/// The stages allowed after `$changeStream`.
const ALLOWED_STAGES: &[&str] = &[
    "$match",
    "$project",
    "$addFields",
    "$set",
    "$unset",
    "$replaceRoot",
    "$replaceWith",
    "$redact",
    "$changeStreamSplitLargeEvent",
];

const SPEC_FIELDS: &[&str] = &[
    "fullDocument",
    "fullDocumentBeforeChange",
    "resumeAfter",
    "startAfter",
    "startAtOperationTime",
    "allChangesForCluster",
    "showExpandedEvents",
    "showSystemEvents",
    "showRawUpdateDescription",
    "allowToRunOnConfigDB",
    "allowToRunOnSystemNS",
    "showMigrationEvents",
    "showCommitTimestamp",
];

/// Where the next scan starts.
#[derive(Debug, Clone, Copy)]
enum Position {
    /// At `ts` inclusive (startAtOperationTime).
    From(Timestamp),
    /// Strictly after `(ts, txn_op_index)`; `None`: after every entry at `ts`.
    After(Timestamp, Option<u32>),
}

impl Position {
    fn ts(&self) -> Timestamp {
        match self {
            Position::From(t) | Position::After(t, _) => *t,
        }
    }
}

/// The state of one open change stream.
#[derive(Debug)]
pub struct StreamState {
    scope: Scope,
    opts: EventOptions,
    pipeline: Pipeline,
    position: Position,
    /// Built events not yet returned (an `invalidate` owed after a resume from its cause).
    pending: VecDeque<Built>,
    /// The latest `postBatchResumeToken` handed out.
    pbrt: Document,
    /// An `invalidate` was returned: the cursor closes.
    finished: bool,
    /// The pipeline ends with `$changeStreamSplitLargeEvent`.
    split: bool,
    /// Documents ready to return (the fragments of a split event not yet handed out).
    ready: VecDeque<(RawDocumentBuf, Document)>,
    /// Resumed from fragment `n` of the first pending event: its fragments up to `n` were
    /// already returned.
    resume_fragment: Option<i32>,
    /// The resume token's event is not in this stream: the first event it sees fails it
    /// (ChangeStreamFatalError), as the server's resume check does.
    resume_missing: Option<Document>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built").field("event", &self.event).finish()
    }
}

fn token_string(token: &Document) -> &str {
    token.get_str("_data").unwrap_or("")
}

fn enum_option(spec: &Document, field: &str, allowed: &[&str], default: &str) -> Result<String> {
    match spec.get(field) {
        None => Ok(default.to_string()),
        Some(Bson::String(s)) if allowed.contains(&s.as_str()) => Ok(s.clone()),
        Some(Bson::String(s)) => Err(CommandError::bad_value(format!(
            "Enumeration value '{s}' for field '$changeStream.{field}' is not a valid value."
        ))),
        Some(other) => Err(CommandError::wrong_field_type(
            "$changeStream",
            field,
            crate::util::type_name(other),
            &["string"],
        )),
    }
}

fn history_lost() -> CommandError {
    let mut e = CommandError::new(
        286,
        "Resume of change stream was not possible, as the resume point may no longer be in the oplog.",
    );
    e.labels.push("NonResumableChangeStreamError".into());
    e
}

/// ChangeStreamFatalError (280), which drivers never resume from.
fn fatal(message: impl Into<String>) -> CommandError {
    let mut e = CommandError::new(280, message.into());
    e.labels.push("NonResumableChangeStreamError".into());
    e
}

/// The documents one event yields: itself, or its fragments when it is too large and the
/// pipeline splits events; BSONObjectTooLarge when it is too large to return.
fn finish(
    state: &mut StreamState,
    doc: Document,
    token: &ResumeTokenData,
) -> Result<Vec<(RawDocumentBuf, Document)>> {
    let raw = RawDocumentBuf::try_from(&doc)
        .map_err(|e| CommandError::new(codes::BSON_OBJECT_TOO_LARGE, e.to_string()))?;
    let len = raw.as_bytes().len();
    let resume_fragment = state.resume_fragment.take();
    if !state.split {
        if len > MAX_INTERNAL_SIZE {
            let first = doc
                .iter()
                .next()
                .map(|(k, v)| format!("{k}: {}", crate::util::shell_repr(v)))
                .unwrap_or_default();
            return Err(CommandError::new(
                codes::BSON_OBJECT_TOO_LARGE,
                format!(
                    "BSONObj size: {len} (0x{len:X}) is invalid. Size must be between 0 and {MAX_INTERNAL_SIZE}(16MB) First element: {first}"
                ),
            ));
        }
        return Ok(vec![(raw, token.encode())]);
    }
    if resume_fragment.is_some() && len <= MAX_CHANGE_EVENT_SIZE {
        return Err(fatal(
            "Attempted to resume from a split event fragment, but the event in the resumed stream was not large enough to be split",
        ));
    }
    if len <= MAX_CHANGE_EVENT_SIZE {
        return Ok(vec![(raw, token.encode())]);
    }
    let token_size = bson_size(&token.encode());
    let mut fragments = split_event(&doc, token, MAX_CHANGE_EVENT_SIZE - token_size)?;
    if let Some(n) = resume_fragment {
        // Fragments up to the resumed one were returned before.
        let skip = usize::try_from(n).unwrap_or(usize::MAX).saturating_add(1);
        if skip > fragments.len() {
            return Err(fatal(
                "Attempted to resume from a split event, but the resumed stream produced a different split. Ensure that the pipeline used to resume is the same as the original",
            ));
        }
        fragments.drain(..skip);
    }
    Ok(fragments)
}

fn bson_size(doc: &Document) -> usize {
    RawDocumentBuf::try_from(doc).map_or(0, |r| r.as_bytes().len())
}

/// Splits an event as the server's `splitChangeEvent` does: its top-level fields but `_id`,
/// ordered by (encoded size, name), fill fragments greedily; each fragment carries its own
/// resume token (the event's, with the fragment's index) and `splitEvent: {fragment, of}`.
fn split_event(
    event: &Document,
    token: &ResumeTokenData,
    max_fragment: usize,
) -> Result<Vec<(RawDocumentBuf, Document)>> {
    let mut fields: Vec<(usize, &String, &Bson)> = event
        .iter()
        .filter(|(k, _)| k.as_str() != "_id")
        .map(|(k, v)| {
            let mut one = Document::new();
            one.insert(k.clone(), v.clone());
            // The element alone: its document minus the 4-byte length and the end byte.
            (bson_size(&one) - 5, k, v)
        })
        .collect();
    if fields.is_empty() {
        return Err(CommandError::new(
            7182502,
            "Cannot split an empty event or an event containing solely '_id' field",
        ));
    }
    fields.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut docs: Vec<(Document, Document)> = Vec::new();
    let mut it = fields.into_iter().peekable();
    while it.peek().is_some() {
        let fragment_token = ResumeTokenData {
            fragment_num: Some(i32::try_from(docs.len()).unwrap_or(i32::MAX)),
            ..token.clone()
        };
        let encoded = fragment_token.encode();
        let mut fragment = Document::new();
        fragment.insert("_id", encoded.clone());
        fragment.insert(
            "splitEvent",
            doc_fragment(i32::try_from(docs.len() + 1).unwrap_or(i32::MAX), 0),
        );
        // The server counts the fragment with its sort key metadata (the token again).
        let mut size = bson_size(&fragment) + bson_size(&encoded) + 10;
        while let Some((field_size, key, value)) = it.next() {
            fragment.insert(key.clone(), value.clone());
            size += field_size;
            match it.peek() {
                Some((next, _, _)) if size + next <= max_fragment => {}
                _ => break,
            }
        }
        if size > max_fragment {
            return Err(CommandError::new(
                7182500,
                format!(
                    "Splitting change event failed: fragment size {size} is greater than maximum allowed fragment size {max_fragment}"
                ),
            ));
        }
        docs.push((fragment, encoded));
    }
    let total = i32::try_from(docs.len()).unwrap_or(i32::MAX);
    docs.into_iter()
        .map(|(mut fragment, token)| {
            if let Ok(split) = fragment.get_document_mut("splitEvent") {
                split.insert("of", total);
            }
            let raw = RawDocumentBuf::try_from(&fragment)
                .map_err(|e| CommandError::new(codes::BSON_OBJECT_TOO_LARGE, e.to_string()))?;
            Ok((raw, token))
        })
        .collect()
}

fn doc_fragment(fragment: i32, of: i32) -> Document {
    bson::doc! {"fragment": fragment, "of": of}
}

/// Opens a change stream for `aggregate` (`coll` is `None` for `aggregate: 1`).
pub fn open(
    ctx: &Ctx<'_>,
    coll: Option<&str>,
    pipeline: &[Document],
    batch: Option<usize>,
) -> Result<Reply> {
    let spec = match pipeline[0].get("$changeStream") {
        Some(Bson::Document(d)) => d.clone(),
        Some(other) => {
            return Err(CommandError::new(
                6188500,
                format!(
                    "$changeStream must take a nested object but found: $changeStream: {}",
                    crate::util::shell_repr(other)
                ),
            ));
        }
        None => unreachable!("caller checked the first stage"),
    };
    // An explicit null means the option was omitted, as in the server's IDL parser.
    let spec: Document = spec
        .into_iter()
        .filter(|(_, v)| !matches!(v, Bson::Null))
        .collect();
    for key in spec.keys() {
        if !SPEC_FIELDS.contains(&key.as_str()) {
            return Err(CommandError::unknown_field("$changeStream", key));
        }
    }
    for field in BOOL_FIELDS {
        if let Some(v) = spec.get(*field)
            && !matches!(v, Bson::Boolean(_))
        {
            return Err(CommandError::wrong_field_type(
                "$changeStream",
                field,
                crate::util::type_name(v),
                &["bool"],
            ));
        }
    }
    // `showExpandedEvents` is outside the Stable API.
    if spec.contains_key("showExpandedEvents") && ctx.body.get_bool("apiStrict").unwrap_or(false) {
        return Err(CommandError::new(
            323,
            "BSON field '$changeStream.showExpandedEvents' is not allowed with apiStrict:true.",
        ));
    }
    if let Some(c) = coll {
        crate::commands::support::refuse_view(ctx, c)?;
    }
    let opts = EventOptions {
        full_document: enum_option(
            &spec,
            "fullDocument",
            &["default", "updateLookup", "whenAvailable", "required"],
            "default",
        )?,
        full_document_before_change: enum_option(
            &spec,
            "fullDocumentBeforeChange",
            &["off", "whenAvailable", "required"],
            "off",
        )?,
        expanded: spec.get_bool("showExpandedEvents").unwrap_or(false),
        no_disambiguated_paths: ctx.server.options.server_version < crate::ServerVersion::V7_0,
    };
    let all_cluster = spec.get_bool("allChangesForCluster").unwrap_or(false);
    let scope = match (coll, all_cluster) {
        (Some(_), true) | (None, true) if ctx.db != "admin" => {
            return Err(CommandError::invalid_options(
                "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, and with no collection name",
            ));
        }
        (Some(_), true) => {
            return Err(CommandError::invalid_options(
                "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, and with no collection name",
            ));
        }
        (None, true) => Scope::Cluster,
        (None, false) if ctx.db == "admin" => {
            return Err(CommandError::invalid_namespace(
                "$changeStream may not be opened on the internal admin database",
            ));
        }
        (None, false) => Scope::Database { db: ctx.db.clone() },
        (Some(c), false) => {
            if matches!(ctx.db.as_str(), "admin" | "config" | "local") {
                return Err(CommandError::invalid_namespace(format!(
                    "$changeStream may not be opened on the internal {} database",
                    ctx.db
                )));
            }
            if c.starts_with("system.") {
                return Err(CommandError::invalid_namespace(format!(
                    "$changeStream may not be opened on the internal {}.{c} collection",
                    ctx.db
                )));
            }
            Scope::Collection {
                db: ctx.db.clone(),
                coll: c.to_string(),
            }
        }
    };
    let stages = &pipeline[1..];
    for stage in stages {
        if let Some(name) = stage.keys().next()
            && name == "$changeStream"
        {
            return Err(CommandError::new(
                40602,
                "$changeStream is only valid as the first stage in a pipeline.",
            ));
        }
    }
    // `$changeStreamSplitLargeEvent` is run here, after the user's stages: it must be last.
    let mut split = false;
    for (i, stage) in stages.iter().enumerate() {
        if let Some((name, arg)) = stage.iter().next()
            && name == SPLIT_STAGE
        {
            if !matches!(arg, Bson::Document(d) if d.is_empty()) {
                return Err(CommandError::new(
                    7182800,
                    "$changeStreamSplitLargeEvent spec should be an empty object",
                ));
            }
            if i + 1 != stages.len() {
                return Err(CommandError::new(
                    7182802,
                    "$changeStreamSplitLargeEvent must be the last stage in the pipeline",
                ));
            }
            if ctx.body.get_bool("apiStrict").unwrap_or(false) {
                return Err(CommandError::new(
                    323,
                    format!(
                        "{SPLIT_STAGE} is not allowed with 'apiStrict: true' in API Version {}",
                        ctx.body.get_str("apiVersion").unwrap_or("1")
                    ),
                ));
            }
            split = true;
        }
    }
    let user_stages = &stages[..stages.len() - usize::from(split)];
    let parsed = Pipeline::parse(user_stages, &ctx.let_vars()?)?;
    for stage in user_stages {
        if let Some(name) = stage.keys().next()
            && !ALLOWED_STAGES.contains(&name.as_str())
        {
            return Err(CommandError::new(
                codes::ILLEGAL_OPERATION,
                format!("{name} is not permitted in a $changeStream pipeline"),
            ));
        }
    }
    let resume_after = spec.get("resumeAfter");
    let start_after = spec.get("startAfter");
    let start_at = spec.get("startAtOperationTime");
    if resume_after.is_some() && start_after.is_some() {
        return Err(CommandError::new(
            50865,
            "Do not specify both 'startAfter' and 'resumeAfter' in a $changeStream stage.",
        ));
    }
    if (resume_after.is_some() || start_after.is_some()) && start_at.is_some() {
        return Err(CommandError::new(
            40674,
            "Only one type of resume option is allowed, but multiple were found.",
        ));
    }
    let oplog = ctx.server.oplog.as_ref();
    let mut pending = VecDeque::new();
    let mut resume_fragment = None;
    let mut resume_missing = None;
    let position = if let Some(ts) = start_at {
        let Bson::Timestamp(ts) = ts else {
            return Err(CommandError::wrong_field_type(
                "$changeStream",
                "startAtOperationTime",
                crate::util::type_name(ts),
                &["timestamp"],
            ));
        };
        Position::From(*ts)
    } else if let Some(token) = resume_after.or(start_after) {
        let Bson::Document(token) = token else {
            return Err(CommandError::wrong_field_type(
                "$changeStream",
                if resume_after.is_some() {
                    "resumeAfter"
                } else {
                    "startAfter"
                },
                crate::util::type_name(token),
                &["object"],
            ));
        };
        let data = ResumeTokenData::decode(token)?;
        if data.fragment_num.is_some() && !split {
            return Err(fatal(
                "To resume from a split event, the $changeStream pipeline must include a $changeStreamSplitLargeEvent stage",
            ));
        }
        match data.token_type {
            TokenType::HighWaterMark => Position::After(data.cluster_time, None),
            TokenType::Event if data.from_invalidate => {
                if resume_after.is_some() {
                    return Err(CommandError::new(
                        codes::INVALID_RESUME_TOKEN,
                        "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.",
                    ));
                }
                Position::After(data.cluster_time, Some(data.txn_op_index))
            }
            TokenType::Event => {
                // The token's own event must exist in this stream, unless history is gone.
                if oplog.covers(data.cluster_time) {
                    let mut found = false;
                    for entry in oplog.from(data.cluster_time, usize::MAX) {
                        if entry.ts != data.cluster_time {
                            break;
                        }
                        if entry.txn_op_index != data.txn_op_index {
                            continue;
                        }
                        let built =
                            event::build(&entry, &scope, &opts, ctx.server).unwrap_or_default();
                        let mut built = built.into_iter();
                        if let Some(first) = built.next()
                            && first.token.event_identifier == data.event_identifier
                        {
                            found = true;
                            if let Some(n) = data.fragment_num {
                                // Resumed from a fragment: the event's later fragments are owed.
                                pending.push_back(first);
                                resume_fragment = Some(n);
                            }
                            // A drop or rename resumed from: its invalidate is still owed.
                            pending.extend(built);
                        }
                    }
                    if !found {
                        // The server opens the stream; its resume check fails on the first
                        // event it sees after the token.
                        resume_missing = Some(token.clone());
                    }
                }
                Position::After(data.cluster_time, Some(data.txn_op_index))
            }
        }
    } else {
        Position::After(oplog.now(), None)
    };
    check_history(ctx.server, position)?;
    let pbrt = ResumeTokenData::high_water_mark(position.ts()).encode();
    let mut state = StreamState {
        scope: scope.clone(),
        opts,
        pipeline: parsed,
        position,
        pending,
        pbrt,
        finished: false,
        split,
        ready: VecDeque::new(),
        resume_fragment,
        resume_missing,
    };
    let ns = match &scope {
        Scope::Collection { db, coll } => format!("{db}.{coll}"),
        Scope::Database { db } => format!("{db}.$cmd.aggregate"),
        Scope::Cluster => "admin.$cmd.aggregate".to_string(),
    };
    let limit = batch.unwrap_or(101);
    // A pending resume check answers on a getMore, as the server's does.
    let docs = if state.resume_missing.is_some() {
        Vec::new()
    } else {
        scan(&mut state, ctx.server, limit)?
    };
    let pbrt = state.pbrt.clone();
    let id = if state.finished {
        0
    } else {
        ctx.server.cursors.register(Cursor {
            ns: ns.clone(),
            pending: VecDeque::new(),
            lsid: ctx.body.get("lsid").cloned(),
            origin: "aggregate".into(),
            last_used: Instant::now(),
            no_timeout: false,
            stream: Some(Box::new(state)),
            scan: None,
            eof_on_read: false,
            collection: None,
        })
    };
    Ok(Reply::Raw(stream_reply(id, &ns, docs, &pbrt, true)?))
}

fn check_history(server: &Server, position: Position) -> Result<()> {
    let oplog = &server.oplog;
    let lost = match position {
        Position::From(ts) => !oplog.covers(ts),
        // Everything at `ts` was consumed: only entries after it matter.
        Position::After(ts, None) => !oplog.covers(Timestamp {
            time: ts.time,
            increment: ts.increment.saturating_add(1),
        }),
        Position::After(ts, Some(_)) => !oplog.covers(ts),
    };
    if lost { Err(history_lost()) } else { Ok(()) }
}

/// Reads events from the oplog into one batch of at most `limit` events.
fn scan(state: &mut StreamState, server: &Server, limit: usize) -> Result<Vec<RawDocumentBuf>> {
    let horizon = server.oplog.now();
    let mut out: Vec<RawDocumentBuf> = Vec::new();
    let mut bytes = 0usize;
    let mut last_token: Option<Document> = None;
    let mut stopped_early = false;
    if !state.finished {
        check_history(server, state.position)?;
    }
    'outer: while !state.finished {
        while !state.ready.is_empty() {
            if out.len() >= limit || bytes > MAX_BATCH_BYTES {
                stopped_early = true;
                break 'outer;
            }
            let (raw, token) = state.ready.pop_front().expect("not empty");
            bytes += raw.as_bytes().len();
            out.push(raw);
            last_token = Some(token);
        }
        if let Some(built) = state.pending.pop_front() {
            if out.len() >= limit || bytes > MAX_BATCH_BYTES {
                state.pending.push_front(built);
                stopped_early = true;
                break 'outer;
            }
            let is_invalidate = built.event.get_str("operationType").ok() == Some("invalidate");
            if let Some(doc) = transform(state, built.event)? {
                let docs = finish(state, doc, &built.token)?;
                state.ready.extend(docs);
            }
            if is_invalidate {
                // The stream ends with its invalidate, whatever the batch's size.
                for (raw, token) in state.ready.drain(..) {
                    out.push(raw);
                    last_token = Some(token);
                }
                state.finished = true;
                break 'outer;
            }
            continue 'outer;
        }
        let entries = match state.position {
            Position::From(ts) => server.oplog.from(ts, SCAN_CHUNK),
            Position::After(ts, idx) => server.oplog.after(ts, idx, SCAN_CHUNK),
        };
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            if out.len() >= limit || bytes > MAX_BATCH_BYTES {
                stopped_early = true;
                break 'outer;
            }
            state.position = Position::After(entry.ts, Some(entry.txn_op_index));
            state
                .pending
                .extend(event::build(&entry, &state.scope, &state.opts, server)?);
            if !state.pending.is_empty() {
                if let Some(token) = state.resume_missing.take() {
                    return Err(fatal(format!(
                        "cannot resume stream; the resume token was not found. {}",
                        crate::util::shell_repr(&Bson::Document(token))
                    )));
                }
                continue 'outer;
            }
        }
    }
    // The batch's resume point: the last event's token when the batch stopped at it, else a
    // high-water mark at the newest time examined; never behind what was handed out before.
    let examined = match state.position {
        Position::From(ts) | Position::After(ts, _) => ts,
    };
    let mut candidate = match (&last_token, stopped_early || state.finished) {
        (Some(t), true) => t.clone(),
        _ => {
            let hwm_ts = if (examined.time, examined.increment) > (horizon.time, horizon.increment)
            {
                examined
            } else {
                horizon
            };
            let hwm = ResumeTokenData::high_water_mark(hwm_ts).encode();
            match &last_token {
                Some(t) if token_string(t) > token_string(&hwm) => t.clone(),
                _ => hwm,
            }
        }
    };
    if token_string(&candidate) < token_string(&state.pbrt) {
        candidate = state.pbrt.clone();
    }
    state.pbrt = candidate;
    Ok(out)
}

/// Runs the user's stages over one event; `None` if filtered out. The `_id` (the resume
/// token) must survive unchanged.
fn transform(state: &StreamState, event: Document) -> Result<Option<Document>> {
    let id = event.get("_id").cloned();
    let mut out = state.pipeline.run_local(vec![event])?;
    let Some(doc) = out.pop() else {
        return Ok(None);
    };
    if doc.get("_id") != id.as_ref() {
        let mut e = CommandError::new(
            280,
            "Encountered an event whose _id field, which contains the resume token, was modified by the pipeline. Modifying the _id field of an event makes it impossible to resume the stream from that point. Only transformations that retain the unmodified _id field are allowed.",
        );
        e.labels.push("NonResumableChangeStreamError".into());
        return Err(e);
    }
    Ok(Some(doc))
}

fn stream_reply(
    id: i64,
    ns: &str,
    docs: Vec<RawDocumentBuf>,
    pbrt: &Document,
    first: bool,
) -> Result<RawDocumentBuf> {
    let mut batch = bson::RawArrayBuf::new();
    for d in docs {
        batch.push(d);
    }
    let mut cursor = RawDocumentBuf::new();
    cursor.append(
        if first {
            bson::raw::cstr!("firstBatch")
        } else {
            bson::raw::cstr!("nextBatch")
        },
        batch,
    );
    cursor.append(
        bson::raw::cstr!("postBatchResumeToken"),
        RawDocumentBuf::try_from(pbrt).map_err(|e| CommandError::new(1, e.to_string()))?,
    );
    cursor.append(bson::raw::cstr!("id"), id);
    cursor.append(bson::raw::cstr!("ns"), ns);
    let mut reply = RawDocumentBuf::new();
    reply.append(bson::raw::cstr!("cursor"), cursor);
    Ok(reply)
}

/// A `getMore` on a change stream: returns at once if events are waiting, else waits up to
/// `maxTimeMS` (1 s by default, as on a real server) for some.
pub async fn get_more(
    ctx: &Ctx<'_>,
    id: i64,
    mut cursor: Cursor,
    batch: Option<usize>,
) -> Result<Reply> {
    let mut state = cursor.stream.take().expect("a change stream cursor");
    let wait = ctx
        .body
        .get("maxTimeMS")
        .and_then(crate::util::as_f64)
        .unwrap_or(1000.0)
        .max(0.0);
    let deadline = Instant::now() + Duration::from_millis(wait as u64);
    let limit = batch.filter(|b| *b > 0).unwrap_or(usize::MAX);
    let mut changes = ctx.server.oplog.subscribe();
    let result = loop {
        changes.borrow_and_update();
        match scan(&mut state, ctx.server, limit) {
            Err(e) => break Err(e),
            Ok(docs) if !docs.is_empty() || state.finished => break Ok(docs),
            Ok(_) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            break Ok(Vec::new());
        }
        if tokio::time::timeout(deadline - now, changes.changed())
            .await
            .is_err()
        {
            // One last look: the deadline passed.
            break scan(&mut state, ctx.server, limit);
        }
    };
    let docs = match result {
        Ok(d) => d,
        Err(e) => {
            // The cursor is dead after an error, as on a real server.
            return Err(e);
        }
    };
    let ns = cursor.ns.clone();
    let pbrt = state.pbrt.clone();
    let reply_id = if state.finished {
        0
    } else {
        cursor.stream = Some(state);
        ctx.server.cursors.restore(id, cursor);
        id
    };
    Ok(Reply::Raw(stream_reply(reply_id, &ns, docs, &pbrt, false)?))
}
