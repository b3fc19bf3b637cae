//! The unified-test-format runner: runs MongoDB's specification tests (JSON, under
//! `shared/spec-tests`) with the official Rust driver against a fresh `MemoryCluster` per file.
//!
//! Env: `MONGOSYNC_SPEC_TESTS` (folder), `MONGOSYNC_SPEC_FILTER` (substring of file paths),
//! `MONGOSYNC_SPEC_UPDATE=1` (grow the pass list and rewrite the known failures),
//! `MONGOSYNC_SPEC_SELFTEST=1` (matcher
//! self-checks and the format's own valid-pass files), `MONGOSYNC_SPEC_URI` (run against an
//! external server instead, e.g. a real mongod, to tell runner bugs from server bugs).

mod bulk;
mod crud_emulated;
mod entities;
mod events;
mod load;
mod matching;
mod operations;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use mongodb::Client;
use mongodb::options::{ClientOptions, WriteConcern};

use entities::{Entities, Entity};
use operations::{Ctx, E, Res};

/// Why a test did not pass.
#[derive(Debug)]
pub enum Fail {
    Failed(String),
    Unsupported(String),
    /// The Rust driver cannot do what the test asks (an option it refuses, a command it shapes
    /// otherwise, its own wording of a client-side error): a runner gap the server never saw.
    /// The message starts with "the Rust driver".
    DriverGap(String),
    /// Failed, then passed when run again: counts as failing.
    Flaky(String),
    NotApplicable,
}

impl Fail {
    /// Whose gap a failure shows, and the first failure's message: the runner lacks an
    /// operation or entity it needs (`Unsupported`), or the server answered otherwise.
    fn reason(&self) -> String {
        match self {
            Fail::Unsupported(m) | Fail::DriverGap(m) => format!("runner: {}", one_line(m)),
            Fail::Failed(m) => format!("testkit: {}", one_line(m)),
            Fail::Flaky(m) => format!("flaky (passes only on a retry): {}", one_line(m)),
            Fail::NotApplicable => "not applicable".into(),
        }
    }
}

const FOLDERS: &[&str] = &[
    "crud",
    "collection-management",
    "index-management",
    "run-command",
    "change-streams",
    "sessions",
    "retryable-writes",
    "transactions",
];
const TEST_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_SCHEMA: (u64, u64) = (1, 28);

/// The server under test: a fresh `MemoryCluster`, or an external server.
enum Server {
    Memory(mongosync_testkit::MemoryCluster),
    External(String),
}

impl Server {
    async fn start() -> std::io::Result<Server> {
        match std::env::var("MONGOSYNC_SPEC_URI") {
            Ok(u) => Ok(Server::External(u)),
            Err(_) => Ok(Server::Memory(
                mongosync_testkit::MemoryCluster::start().await?,
            )),
        }
    }
    fn uri(&self) -> String {
        match self {
            Server::Memory(c) => c.uri().to_string(),
            Server::External(u) => u.clone(),
        }
    }
    async fn shutdown(self) {
        if let Server::Memory(c) = self {
            c.shutdown().await;
        }
    }
}

struct Outcome {
    /// `<folder>/<file> :: <description>` → result.
    results: BTreeMap<String, Result<(), Fail>>,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    std::process::exit(rt.block_on(run()));
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            list_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

async fn run() -> i32 {
    let root = std::env::var("MONGOSYNC_SPEC_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec-tests"));
    if !root.is_dir() {
        // Not a skip: a run that checked nothing must not look like a pass.
        println!(
            "spec tests not found at {}: put the shared folder beside the repository, or set MONGOSYNC_SPEC_TESTS",
            root.display()
        );
        return 1;
    }
    let selftest = std::env::var("MONGOSYNC_SPEC_SELFTEST").is_ok_and(|v| v == "1");
    let filter = std::env::var("MONGOSYNC_SPEC_FILTER").ok();
    // Always: the emulated bulk write's batching is pure and no spec test reaches its limits.
    if let Err(e) = crud_emulated::selftest() {
        println!("emulated bulk write self-test FAILED: {e}");
        return 1;
    }
    if selftest {
        match matching::selftest() {
            Ok(()) => println!("matcher self-test: ok"),
            Err(e) => {
                println!("matcher self-test FAILED: {e}");
                return 1;
            }
        }
    }
    let mut folders: Vec<(String, PathBuf)> = FOLDERS
        .iter()
        .map(|f| (f.to_string(), root.join(f).join("tests")))
        .collect();
    if selftest {
        folders.insert(
            0,
            (
                "unified-test-format".into(),
                root.join("unified-test-format/tests/valid-pass"),
            ),
        );
    }
    let started = std::time::Instant::now();
    let mut out = Outcome {
        results: BTreeMap::new(),
    };
    let mut ran_files: BTreeSet<String> = BTreeSet::new();
    let mut per_folder: Vec<(String, usize, usize, usize)> = vec![];
    for (folder, dir) in &folders {
        let mut files = vec![];
        list_files(dir, &mut files);
        files.sort();
        let before: BTreeSet<String> = out.results.keys().cloned().collect();
        for f in files {
            let rel = format!(
                "{folder}/{}",
                f.file_name().unwrap_or_default().to_string_lossy()
            );
            if filter
                .as_ref()
                .is_some_and(|s| !f.to_string_lossy().contains(s.as_str()))
            {
                continue;
            }
            ran_files.insert(rel.clone());
            run_file(&f, &rel, &mut out).await;
        }
        let mine: Vec<_> = out
            .results
            .iter()
            .filter(|(k, _)| !before.contains(*k))
            .collect();
        let passed = mine.iter().filter(|(_, r)| r.is_ok()).count();
        let applicable = mine
            .iter()
            .filter(|(_, r)| !matches!(r, Err(Fail::NotApplicable)))
            .count();
        per_folder.push((folder.clone(), passed, applicable, mine.len()));
    }

    // The pass list.
    let list_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec-pass-list.txt");
    let listed: BTreeSet<String> = std::fs::read_to_string(&list_path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    for (k, r) in &out.results {
        match r {
            Err(Fail::Failed(m)) => println!("FAIL {k}: {}", one_line(m)),
            Err(Fail::Unsupported(m)) => {
                println!("FAIL {k}: failed (unsupported: {})", one_line(m))
            }
            Err(Fail::DriverGap(m)) => println!("FAIL {k}: failed (driver gap: {})", one_line(m)),
            Err(Fail::Flaky(m)) => {
                println!("FAIL {k}: flaky, passed only on a retry: {}", one_line(m))
            }
            _ => {}
        }
    }
    let mut listed_failed = 0;
    for l in &listed {
        let file = l.split(" :: ").next().unwrap_or_default();
        if !ran_files.contains(file) && filter.is_some() {
            continue;
        }
        match out.results.get(l) {
            Some(Ok(())) => {}
            Some(_) => {
                listed_failed += 1;
                println!("REGRESSION (listed test failed) {l}");
            }
            None => {
                listed_failed += 1;
                println!("REGRESSION (listed test missing) {l}");
            }
        }
    }
    let passed: BTreeSet<String> = out
        .results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(k, _)| k.clone())
        .collect();
    let flaky = known_flaky();
    let new: Vec<_> = passed
        .iter()
        .filter(|k| !listed.contains(*k) && !flaky.contains_key(*k))
        .collect();
    let update = std::env::var("MONGOSYNC_SPEC_UPDATE").is_ok_and(|v| v == "1");
    let unlisted = check_known_failures(&out, &listed, &ran_files, filter.is_some(), update);
    if !new.is_empty() {
        if update {
            let all: BTreeSet<String> = listed
                .iter()
                .cloned()
                .chain(new.iter().map(|s| s.to_string()))
                .filter(|k| !k.starts_with("unified-test-format/"))
                .collect();
            let text: String = all.iter().map(|l| format!("{l}\n")).collect();
            if let Err(e) = std::fs::write(&list_path, text) {
                println!("cannot write {}: {e}", list_path.display());
            } else {
                println!("pass list updated: {} lines", all.len());
            }
        } else {
            println!(
                "{} passing tests are not in the pass list (MONGOSYNC_SPEC_UPDATE=1 adds them), e.g.:",
                new.len()
            );
            for k in new.iter().take(10) {
                println!("  {k}");
            }
        }
    }
    for (f, p, a, t) in &per_folder {
        let pct = 100.0 * *p as f64 / (*a).max(1) as f64;
        println!("{f}: {p} passed / {a} applicable / {t} total ({pct:.1}%)");
    }
    println!("time: {:.1}s", started.elapsed().as_secs_f64());
    println!(
        "{} passed, {} failed",
        passed.len(),
        listed_failed + unlisted
    );
    i32::from(listed_failed + unlisted > 0)
}

/// The known failures whose reason says they are flaky (a race outside the server, such as
/// inside the driver): never promoted to the pass list, whether a run passes them or not.
fn known_flaky() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec-known-failures.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, r)| r.starts_with("flaky"))
        .map(|(k, r)| (k.to_string(), r.to_string()))
        .collect()
}

/// `tests/spec-known-failures.txt`: every applicable test that fails, with its reason, one
/// `<test>\t<reason>` a line. A failure in neither list (a new spec test, say) fails the run
/// until it is listed; a listed failure that passes now is reported (it belongs in the pass
/// list). With `update`, the file is rewritten from this run. Returns the unlisted failures.
fn check_known_failures(
    out: &Outcome,
    passing: &BTreeSet<String>,
    ran_files: &BTreeSet<String>,
    filtered: bool,
    update: bool,
) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec-known-failures.txt");
    let known: BTreeMap<String, String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, r)| (k.to_string(), r.to_string()))
        .collect();
    let failing: BTreeMap<&String, &Fail> = out
        .results
        .iter()
        .filter_map(|(k, r)| match r {
            Err(f) if !matches!(f, Fail::NotApplicable) => Some((k, f)),
            _ => None,
        })
        .collect();
    if update {
        let mut text = String::from(
            "# Applicable spec tests that fail, with the first failure's message: `runner:` the\n# runner lacks what the test needs (`runner: the Rust driver ...`: the driver cannot do\n# it); `testkit:` the server answered otherwise; `flaky` passed only on a retry.\n# Rewritten by MONGOSYNC_SPEC_UPDATE=1 (with a filter, only the lines of the files run).\n",
        );
        // Known flaky tests stay listed (with their recorded reason) when this run passed them,
        // and so do the lines of the files a filtered run left out.
        let mut lines: BTreeMap<String, String> = known
            .iter()
            .filter(|(k, r)| {
                let file = k.split(" :: ").next().unwrap_or_default();
                r.starts_with("flaky") || (filtered && !ran_files.contains(file))
            })
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (k, f) in &failing {
            lines.entry((*k).clone()).or_insert_with(|| f.reason());
        }
        for (k, r) in &lines {
            text.push_str(&format!("{k}\t{r}\n"));
        }
        match std::fs::write(&path, text) {
            Ok(()) => println!("known failures rewritten: {} lines", failing.len()),
            Err(e) => println!("cannot write {}: {e}", path.display()),
        }
        return 0;
    }
    let mut unlisted = 0;
    for (k, f) in &failing {
        if !known.contains_key(*k) && !passing.contains(*k) {
            unlisted += 1;
            println!(
                "UNLISTED FAILURE (add it to spec-known-failures.txt with its reason) {k}: {}",
                f.reason()
            );
        }
    }
    for k in known.keys() {
        let file = k.split(" :: ").next().unwrap_or_default();
        if filtered && !ran_files.contains(file) {
            continue;
        }
        if matches!(out.results.get(k), Some(Ok(()))) && !known[k].starts_with("flaky") {
            println!("NOW PASSES (move it to the pass list) {k}");
        }
    }
    unlisted
}

fn one_line(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.len() > 400 {
        format!("{}…", matching::cut(&s, 400))
    } else {
        s
    }
}

async fn run_file(path: &Path, rel: &str, out: &mut Outcome) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            out.results
                .insert(format!("{rel} :: <file>"), Err(Fail::Failed(e.to_string())));
            return;
        }
    };
    let file = match load::parse_doc(&text) {
        Ok(d) => d,
        Err(e) => {
            out.results.insert(
                format!("{rel} :: <file>"),
                Err(Fail::Failed(format!("parse: {e}"))),
            );
            return;
        }
    };
    let tests: Vec<Document> = file
        .get_array("tests")
        .map(|a| a.iter().filter_map(|t| t.as_document().cloned()).collect())
        .unwrap_or_default();
    let key = |t: &Document| format!("{rel} :: {}", t.get_str("description").unwrap_or("?"));
    let schema = file.get_str("schemaVersion").unwrap_or("0");
    let mut parts = schema.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (maj, min) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if maj != MAX_SCHEMA.0 || min > MAX_SCHEMA.1 {
        println!("{rel}: schemaVersion {schema} is not supported: not run");
        for t in &tests {
            out.results.insert(key(t), Err(Fail::NotApplicable));
        }
        return;
    }
    let server = match Server::start().await {
        Ok(s) => s,
        Err(e) => {
            for t in &tests {
                out.results
                    .insert(key(t), Err(Fail::Failed(format!("server start: {e}"))));
            }
            return;
        }
    };
    let uri = server.uri();
    let internal = match internal_client(&uri).await {
        Ok(c) => c,
        Err(e) => {
            for t in &tests {
                out.results
                    .insert(key(t), Err(Fail::Failed(format!("internal client: {e}"))));
            }
            server.shutdown().await;
            return;
        }
    };
    let info = ServerInfo::fetch(&internal).await;
    let file_ok = info.applies(file.get_array("runOnRequirements").ok());
    for t in &tests {
        let r = if !file_ok
            || !info.applies(t.get_array("runOnRequirements").ok())
            || t.contains_key("skipReason")
        {
            Err(Fail::NotApplicable)
        } else {
            let mut r = attempt(&file, t, &uri, &internal).await;
            // A failure is retried once: a few tests race inside the driver (for instance which
            // pooled implicit session an operation takes). A retried pass is reported, so a
            // flaky test stays visible rather than hidden.
            if let Err(Fail::Failed(first)) = &r {
                let first = first.clone();
                r = attempt(&file, t, &uri, &internal).await;
                if r.is_ok() {
                    r = Err(Fail::Flaky(first));
                }
            }
            r
        };
        out.results.insert(key(t), r);
    }
    internal.shutdown().immediate(true).await;
    server.shutdown().await;
}

async fn attempt(file: &Document, t: &Document, uri: &str, internal: &Client) -> Result<(), Fail> {
    match tokio::time::timeout(TEST_TIMEOUT, run_test(file, t, uri, internal)).await {
        Ok(r) => r,
        Err(_) => Err(Fail::Failed(format!("timed out after {TEST_TIMEOUT:?}"))),
    }
}

async fn internal_client(uri: &str) -> mongodb::error::Result<Client> {
    let mut o = ClientOptions::parse(uri).await?;
    o.write_concern = Some(WriteConcern::majority());
    Client::with_options(o)
}

struct ServerInfo {
    version: Vec<u64>,
    /// `getParameter: "*"`, for `serverParameters` requirements.
    params: Option<Document>,
}

impl ServerInfo {
    async fn fetch(c: &Client) -> ServerInfo {
        let v = c
            .database("admin")
            .run_command(doc! {"buildInfo": 1})
            .await
            .ok()
            .and_then(|d| d.get_str("version").ok().map(String::from))
            .unwrap_or_else(|| "8.0.0".into());
        let params = c
            .database("admin")
            .run_command(doc! {"getParameter": "*"})
            .await
            .ok();
        ServerInfo {
            version: version(&v),
            params,
        }
    }

    fn applies(&self, reqs: Option<&Vec<Bson>>) -> bool {
        let Some(reqs) = reqs else { return true };
        if reqs.is_empty() {
            return true;
        }
        reqs.iter()
            .filter_map(Bson::as_document)
            .any(|r| self.one(r))
    }

    fn one(&self, r: &Document) -> bool {
        if let Ok(v) = r.get_str("minServerVersion")
            && cmp_version(&self.version, &version(v)).is_lt()
        {
            return false;
        }
        if let Ok(v) = r.get_str("maxServerVersion")
            && cmp_version(&self.version, &version(v)).is_gt()
        {
            return false;
        }
        if let Ok(t) = r.get_array("topologies")
            && !t.iter().any(|x| x.as_str() == Some("replicaset"))
        {
            return false;
        }
        if r.get_str("serverless").ok() == Some("require") {
            return false;
        }
        if r.get_bool("auth").unwrap_or(false) || r.contains_key("authMechanism") {
            return false;
        }
        if r.get_bool("csfle").unwrap_or(false) {
            return false;
        }
        if let Ok(p) = r.get_document("serverParameters") {
            let Some(actual) = &self.params else {
                return false;
            };
            for (k, v) in p {
                if matching::matches(actual.get(k), v, false, &matching::no_entities).is_err() {
                    return false;
                }
            }
        }
        true
    }
}

fn version(s: &str) -> Vec<u64> {
    s.split(['.', '-'])
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

fn cmp_version(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    for i in 0..3 {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

async fn initial_data(internal: &Client, data: &[Bson]) -> Result<(), Fail> {
    for d in data {
        let d = d
            .as_document()
            .ok_or_else(|| Fail::Failed("bad initialData".into()))?;
        let db = internal.database(d.get_str("databaseName").unwrap_or_default());
        let name = d.get_str("collectionName").unwrap_or_default();
        let coll = db.collection::<Document>(name);
        let e = |m: &str, e: mongodb::error::Error| {
            Fail::Failed(format!("initialData {m}: {}", e.kind))
        };
        coll.drop().await.map_err(|x| e("drop", x))?;
        let docs: Vec<Document> = d
            .get_array("documents")
            .map(|a| a.iter().filter_map(|x| x.as_document().cloned()).collect())
            .unwrap_or_default();
        if let Ok(o) = d.get_document("createOptions") {
            let mut cmd = doc! {"create": name};
            cmd.extend(o.clone());
            cmd.insert("writeConcern", doc! {"w": "majority"});
            db.run_command(cmd).await.map_err(|x| e("create", x))?;
        } else if docs.is_empty() {
            db.create_collection(name)
                .await
                .map_err(|x| e("create", x))?;
        }
        if !docs.is_empty() {
            coll.insert_many(docs).await.map_err(|x| e("insert", x))?;
        }
    }
    Ok(())
}

async fn run_test(file: &Document, t: &Document, uri: &str, internal: &Client) -> Result<(), Fail> {
    if t.contains_key("expectLogMessages") {
        return Err(Fail::Unsupported("expectLogMessages".into()));
    }
    // As the unified format asks: end transactions a previous test left open (11601 and 13
    // are acceptable answers).
    let _ = internal
        .database("admin")
        .run_command(doc! {"killAllSessions": []})
        .await;
    if let Ok(d) = file.get_array("initialData") {
        initial_data(internal, d).await?;
    }
    let mut ents = Entities::default();
    let mut failpoints = vec![];
    let r = run_body(file, t, uri, internal, &mut ents, &mut failpoints).await;
    for (_, ent) in ents.map.iter() {
        if let Entity::Client(c) = ent {
            c.listening.store(false, Ordering::SeqCst);
        }
    }
    for (c, name) in failpoints {
        let _ = c
            .database("admin")
            .run_command(doc! {"configureFailPoint": name, "mode": "off"})
            .await;
    }
    let r = r.and_then(|()| match t.get_array("expectEvents") {
        Ok(x) => events::check(x, &ents),
        Err(_) => Ok(()),
    });
    // Drop sessions, cursors and streams before their clients.
    let clients: Vec<Client> = ents
        .map
        .values()
        .filter_map(|e| {
            if let Entity::Client(c) = e {
                Some(c.client.clone())
            } else {
                None
            }
        })
        .collect();
    drop(ents);
    for c in clients {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.shutdown().immediate(true)).await;
    }
    r?;
    if let Ok(o) = t.get_array("outcome") {
        outcome(internal, o).await?;
    }
    Ok(())
}

async fn run_body(
    file: &Document,
    t: &Document,
    uri: &str,
    internal: &Client,
    ents: &mut Entities,
    failpoints: &mut Vec<(Client, String)>,
) -> Result<(), Fail> {
    if let Ok(list) = file.get_array("createEntities") {
        ents.create(list, uri).await?;
    }
    let ops = t
        .get_array("operations")
        .map_err(|_| Fail::Failed("no operations".into()))?;
    for (i, op) in ops.iter().enumerate() {
        let op = op
            .as_document()
            .ok_or_else(|| Fail::Failed("bad operation".into()))?;
        let mut ctx = Ctx {
            ents,
            uri,
            internal,
            failpoints,
            callback: None,
        };
        run_op(&mut ctx, i, op).await?;
    }
    Ok(())
}

/// Runs one operation and checks its `expectError`/`expectResult`, saving its result as an
/// entity when asked. A driver error the test expected (or ignores) is handed back: a
/// `withTransaction` callback passes it on to the driver, as the unified format asks.
pub async fn run_op(
    ctx: &mut Ctx<'_>,
    i: usize,
    op: &Document,
) -> Result<Option<mongodb::error::Error>, Fail> {
    let name = op.get_str("name").unwrap_or("?").to_string();
    let r = operations::execute(ctx, op).await;
    let ctxm = |m: String| Fail::Failed(format!("op {i} {name}: {m}"));
    let ents = &mut *ctx.ents;
    let value = match r {
        Err(E::Fail(Fail::Failed(m))) => return Err(ctxm(m)),
        Err(E::Fail(Fail::DriverGap(m))) => {
            return Err(Fail::DriverGap(format!("{m} (op {i} {name})")));
        }
        Err(E::Fail(f)) => return Err(f),
        Err(E::Driver(e)) => {
            if let Ok(x) = op.get_document("expectError") {
                let lookup = |id: &str| ents.lookup(id);
                if let Err(m) = operations::check_error(&e, x, &lookup) {
                    // An argument the driver refused before sending anything: the test
                    // expected a client-side error and got one, worded the driver's way.
                    if x.get_bool("isClientError").unwrap_or(false)
                        && matches!(*e.kind, mongodb::error::ErrorKind::InvalidArgument { .. })
                    {
                        return Err(Fail::DriverGap(format!(
                            "the Rust driver words this client-side error otherwise (op {i} {name}: {m})"
                        )));
                    }
                    return Err(ctxm(m));
                }
                return Ok(Some(e));
            }
            if op.get_bool("ignoreResultAndError").unwrap_or(false) {
                return Ok(Some(e));
            }
            // Refused by the driver before anything was sent (such as any unacknowledged
            // write in mongodb 3.9.1): the server was never asked.
            if let mongodb::error::ErrorKind::InvalidArgument { message, .. } = &*e.kind {
                return Err(Fail::DriverGap(format!(
                    "the Rust driver refuses the operation before sending it: {message} (op {i} {name})"
                )));
            }
            return Err(ctxm(format!(
                "unexpected error: {}",
                one_line(&crud_emulated::describe(&e))
            )));
        }
        Ok(v) => v,
    };
    if op.contains_key("expectError") {
        return Err(ctxm("expected an error, got success".into()));
    }
    let value = match value {
        Res::Entity(ent) => {
            if let Ok(id) = op.get_str("saveResultAsEntity") {
                ents.map.insert(id.to_string(), ent);
            }
            return Ok(None);
        }
        Res::Value(v) => Some(v),
        Res::Nothing => None,
    };
    if let Some(x) = op.get("expectResult") {
        let lookup = |id: &str| ents.lookup(id);
        operations::check_result(value.as_ref(), x, &lookup).map_err(ctxm)?;
    }
    if let (Ok(id), Some(v)) = (op.get_str("saveResultAsEntity"), value) {
        ents.map.insert(id.to_string(), Entity::Value(v));
    }
    Ok(None)
}

async fn outcome(internal: &Client, o: &[Bson]) -> Result<(), Fail> {
    for d in o {
        let d = d
            .as_document()
            .ok_or_else(|| Fail::Failed("bad outcome".into()))?;
        let db = d.get_str("databaseName").unwrap_or_default();
        let name = d.get_str("collectionName").unwrap_or_default();
        let want = d.get_array("documents").cloned().unwrap_or_default();
        let coll = internal.database(db).collection::<Document>(name);
        let got: Vec<Document> = match coll
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .read_concern(mongodb::options::ReadConcern::local())
            .await
        {
            Ok(c) => c
                .try_collect()
                .await
                .map_err(|e| Fail::Failed(format!("outcome: {}", e.kind)))?,
            Err(e) => return Err(Fail::Failed(format!("outcome find: {}", e.kind))),
        };
        let got = Bson::Array(got.into_iter().map(Bson::Document).collect());
        matching::matches(
            Some(&got),
            &Bson::Array(want),
            false,
            &matching::no_entities,
        )
        .map_err(|m| Fail::Failed(format!("outcome {db}.{name}: {m} (actual {got})")))?;
    }
    Ok(())
}
