//! The change-event buffer between the reader and the appliers.
//!
//! The reader never waits: events read during a long copy must leave the source's oplog
//! window for the buffer (peers.md §6.3). Past a memory limit, events go to a spill file on
//! disk, and keep going there until the appliers have drained it, so order is kept. The spill
//! file is unlinked once opened, and its I/O runs on the blocking pool.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{Document, RawDocumentBuf};
use tokio::sync::Notify;

use crate::error::{Error, Result};

/// One entry read from the change stream.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A change event, raw.
    Event(RawDocumentBuf),
    /// The stream's position moved without an event (a post-batch resume token).
    Position(Document),
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Item::Event(e) => e.as_bytes().len(),
            Item::Position(_) => 64,
        }
    }
}

/// The spill file: unlinked as soon as it is opened (only its two handles keep it), so
/// nothing is left on disk whatever way the process ends.
struct Spill {
    /// Where it was created, for error messages.
    path: PathBuf,
    writer: BufWriter<File>,
    reader: BufReader<File>,
    pending: u64,
}

struct Inner {
    memory: VecDeque<Item>,
    memory_bytes: usize,
    spill: Option<Spill>,
    spilled_total: u64,
}

pub(crate) struct EventBuffer {
    /// Shared with the blocking tasks that do the spill file's I/O.
    inner: Arc<Mutex<Inner>>,
    ready: Notify,
    limit: usize,
    dir: PathBuf,
}

fn spill_error(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::Spill {
        path: path.display().to_string(),
        source: e,
    }
}

/// Runs `f` on the blocking pool (file I/O never occupies a runtime worker thread).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::task("the event buffer's spill file I/O", e))?
}

impl EventBuffer {
    pub fn new(limit: usize, dir: PathBuf) -> EventBuffer {
        EventBuffer {
            inner: Arc::new(Mutex::new(Inner {
                memory: VecDeque::new(),
                memory_bytes: 0,
                spill: None,
                spilled_total: 0,
            })),
            ready: Notify::new(),
            limit,
            dir,
        }
    }

    pub async fn push(&self, item: Item) -> Result<()> {
        {
            let mut inner = self.inner.lock().expect("buffer lock");
            let len = item.len();
            if inner.spill.is_none() && inner.memory_bytes + len <= self.limit {
                inner.memory_bytes += len;
                inner.memory.push_back(item);
                drop(inner);
                self.ready.notify_one();
                return Ok(());
            }
        }
        let (inner, dir) = (Arc::clone(&self.inner), self.dir.clone());
        blocking(move || spill(&inner, &dir, item)).await?;
        self.ready.notify_one();
        Ok(())
    }

    /// Up to `max` items, waiting at most `wait` for the first.
    pub async fn pop(&self, max: usize, wait: Duration) -> Result<Vec<Item>> {
        let out = self.take(max).await?;
        if !out.is_empty() {
            return Ok(out);
        }
        let _ = tokio::time::timeout(wait, self.ready.notified()).await;
        self.take(max).await
    }

    async fn take(&self, max: usize) -> Result<Vec<Item>> {
        let spilling = self.inner.lock().expect("buffer lock").spill.is_some();
        if !spilling {
            return try_pop(&self.inner, max);
        }
        let inner = Arc::clone(&self.inner);
        blocking(move || try_pop(&inner, max)).await
    }

    pub fn is_empty(&self) -> bool {
        let inner = self.inner.lock().expect("buffer lock");
        inner.memory.is_empty() && inner.spill.as_ref().is_none_or(|s| s.pending == 0)
    }

    /// Events written to disk so far.
    #[cfg(test)]
    pub fn spilled_total(&self) -> u64 {
        self.inner.lock().expect("buffer lock").spilled_total
    }
}

/// Appends `item` to the spill file (created, and unlinked, on first use). Blocking.
fn spill(inner: &Mutex<Inner>, dir: &std::path::Path, item: Item) -> Result<()> {
    let mut inner = inner.lock().expect("buffer lock");
    if inner.spill.is_none() {
        std::fs::create_dir_all(dir).map_err(|e| spill_error(dir, e))?;
        let path = dir.join(format!("mongosync-events-{}.bson", uuid::Uuid::new_v4()));
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| spill_error(&path, e))?;
        // A second open, not a clone: each end needs its own file offset.
        let reader = File::open(&path).map_err(|e| spill_error(&path, e));
        // Unlinked at once: the open handles keep the data until they are closed.
        let unlinked = std::fs::remove_file(&path).map_err(|e| spill_error(&path, e));
        let reader = reader?;
        unlinked?;
        inner.spill = Some(Spill {
            path,
            writer: BufWriter::new(file),
            reader: BufReader::new(reader),
            pending: 0,
        });
    }
    let spill = inner.spill.as_mut().expect("just created");
    // A spilled entry: a tag byte, then the BSON document (its own length prefix).
    let (tag, bytes) = match &item {
        Item::Event(e) => (0u8, e.as_bytes().to_vec()),
        Item::Position(d) => (1u8, bson::serialize_to_vec(d).unwrap_or_default()),
    };
    spill
        .writer
        .write_all(&[tag])
        .and_then(|_| spill.writer.write_all(&bytes))
        .map_err(|e| spill_error(&spill.path, e))?;
    spill.pending += 1;
    inner.spilled_total += 1;
    Ok(())
}

/// Takes up to `max` items, memory first, then the spill file (reads block).
fn try_pop(inner: &Mutex<Inner>, max: usize) -> Result<Vec<Item>> {
    let mut inner = inner.lock().expect("buffer lock");
    let mut out = Vec::new();
    while out.len() < max {
        if let Some(item) = inner.memory.pop_front() {
            inner.memory_bytes -= item.len();
            out.push(item);
            continue;
        }
        let Some(spill) = inner.spill.as_mut() else {
            break;
        };
        if spill.pending == 0 {
            // Drained: closing the handles frees the file's space.
            inner.spill = None;
            break;
        }
        spill
            .writer
            .flush()
            .map_err(|e| spill_error(&spill.path, e))?;
        let item = read_one(&mut spill.reader).map_err(|e| spill_error(&spill.path, e))?;
        spill.pending -= 1;
        out.push(item);
    }
    Ok(out)
}

fn read_one(r: &mut impl Read) -> std::io::Result<Item> {
    let mut tag = [0u8; 1];
    r.read_exact(&mut tag)?;
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let n = i32::from_le_bytes(len) as usize;
    let mut bytes = vec![0u8; n];
    bytes[..4].copy_from_slice(&len);
    r.read_exact(&mut bytes[4..])?;
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    match tag[0] {
        0 => Ok(Item::Event(
            RawDocumentBuf::from_bytes(bytes).map_err(|e| bad(e.to_string()))?,
        )),
        _ => Ok(Item::Position(
            bson::deserialize_from_slice(&bytes).map_err(|e| bad(e.to_string()))?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[tokio::test]
    async fn keeps_order_across_memory_and_spill() {
        let dir = std::env::temp_dir().join(format!("buffer-test-{}", uuid::Uuid::new_v4()));
        let buf = EventBuffer::new(200, dir.clone());
        for i in 0..100 {
            buf.push(Item::Event(rawdoc! {"i": i, "pad": "x".repeat(20)}))
                .await
                .unwrap();
            if i % 10 == 0 {
                buf.push(Item::Position(bson::doc! {"_data": format!("{i}")}))
                    .await
                    .unwrap();
            }
        }
        assert!(buf.spilled_total() > 50);
        // The spill file is unlinked while in use: nothing in its directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let mut seen = vec![];
        let mut pushed = false;
        loop {
            let items = buf.pop(7, Duration::from_millis(1)).await.unwrap();
            if items.is_empty() {
                break;
            }
            for it in items {
                if let Item::Event(e) = it {
                    seen.push(e.get_i32("i").unwrap());
                }
            }
            // Interleave new pushes once the spill has started draining.
            if seen.len() >= 50 && !pushed {
                buf.push(Item::Event(rawdoc! {"i": 100})).await.unwrap();
                pushed = true;
            }
        }
        assert_eq!(seen, (0..=100).collect::<Vec<_>>());
        assert!(buf.is_empty());
        drop(buf);
        let _ = std::fs::remove_dir_all(dir);
    }
}
