//! The write-ahead log: numbered segment files of checksummed records, appended by
//! one writer thread that batches concurrent requests into one write and one fsync
//! (group commit). The byte format is specified in `docs/format/wal.md`.
//!
//! ```text
//!  request A ─┐  frames   ┌──────────────┐ write+fsync ┌──────────────────────┐
//!  request B ─┼─────────► │ writer thread │───────────►│ wal/00000003 (active)│
//!  request C ─┘  channel  └──────┬───────┘            └──────────────────────┘
//!        ▲                       │ one ack per request, after the batch is durable
//!        └───────────────────────┘
//! ```

pub(crate) mod record;
mod segment;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use record::{DecodeError, MetadataEntry, Record, RefSample, SeriesEntry};
pub(crate) use segment::put_frame;
use segment::{SegmentWriter, list_segments, replay_segment};

use crate::{Error, Result};

/// When the WAL calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every request waits until its records are fsynced; concurrent requests share
    /// one fsync (group commit). Survives power loss.
    PerRequest,
    /// Requests are acknowledged once their records are written to the OS; fsync runs
    /// on this interval. Survives a process crash; power loss may lose up to one
    /// interval of acknowledged samples.
    Interval(Duration),
}

/// WAL settings.
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub fsync: FsyncPolicy,
    /// A new segment starts when the active one would grow past this many bytes.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { fsync: FsyncPolicy::PerRequest, segment_size: 128 << 20 }
    }
}

/// Counters the WAL keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct WalStats {
    pub bytes_written: AtomicU64,
    pub fsyncs: AtomicU64,
    pub records_written: AtomicU64,
    pub write_failures: AtomicU64,
    pub torn_tails_truncated: AtomicU64,
    pub segments: AtomicU64,
}

enum Op {
    Append { frames: Vec<u8>, records: u64, done: oneshot::Sender<Result<(), String>> },
    Shutdown,
}

/// A handle to the WAL writer thread.
#[derive(Debug)]
pub struct Wal {
    tx: mpsc::Sender<Op>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<WalStats>,
    dir: PathBuf,
}

/// Resolves when the records it was issued for are durable per the fsync policy.
#[derive(Debug)]
pub struct Commit(oneshot::Receiver<Result<(), String>>);

impl Commit {
    /// Waits for durability.
    pub async fn wait(self) -> Result<()> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::WalWrite { reason }),
            Err(_) => Err(Error::WalWrite { reason: "wal writer stopped".into() }),
        }
    }
}

impl Wal {
    /// Replays every record in `dir` through `on_record` (oldest first), cutting off a
    /// torn or corrupt tail, then opens a fresh segment for appending.
    pub fn open(dir: &Path, opts: WalOptions, mut on_record: impl FnMut(Record)) -> Result<Wal> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create wal dir", dir, e))?;
        let stats = Arc::new(WalStats::default());
        let segments = list_segments(dir)?;
        for (i, (_, path)) in segments.iter().enumerate() {
            let outcome = replay_segment(path, &mut on_record)?;
            if let Some(at) = outcome.truncated_at {
                stats.torn_tails_truncated.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    segment = %path.display(),
                    offset = at,
                    last = i + 1 == segments.len(),
                    reason = %outcome.reason.unwrap_or_default(),
                    "wal torn record cut off"
                );
            }
        }
        let next = segments.last().map_or(1, |(n, _)| n + 1);
        let writer = SegmentWriter::create(dir, next, opts.segment_size)?;
        stats.segments.store(segments.len() as u64 + 1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer_loop(writer, rx, opts.fsync, thread_stats))
            .map_err(|e| Error::io("spawn wal writer", dir, e))?;
        Ok(Wal { tx, thread: Some(thread), stats, dir: dir.to_path_buf() })
    }

    /// Queues already-framed records (see [`put_frame`]). The frames of one call are
    /// written contiguously and in call order relative to other calls.
    pub(crate) fn append(&self, frames: Vec<u8>, records: u64) -> Commit {
        let (done, rx) = oneshot::channel();
        if frames.is_empty() {
            // Nothing to make durable (e.g. every sample was an exact re-send).
            let _ = done.send(Ok(()));
            return Commit(rx);
        }
        if self.tx.send(Op::Append { frames, records, done }).is_err() {
            let (done, rx) = oneshot::channel();
            let _ = done.send(Err("wal writer stopped".into()));
            return Commit(rx);
        }
        Commit(rx)
    }

    pub fn stats(&self) -> &Arc<WalStats> {
        &self.stats
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.tx.send(Op::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn writer_loop(mut w: SegmentWriter, rx: mpsc::Receiver<Op>, policy: FsyncPolicy, stats: Arc<WalStats>) {
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut buf = Vec::new();
    let mut acks = Vec::new();
    loop {
        let first = match policy {
            FsyncPolicy::PerRequest => rx.recv().ok(),
            FsyncPolicy::Interval(every) => {
                let wait = every.saturating_sub(last_sync.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(op) => Some(op),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if dirty {
                            sync(&mut w, &stats);
                            dirty = false;
                        }
                        last_sync = Instant::now();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            }
        };
        let Some(first) = first else { break };
        let mut shutdown = false;
        let mut records = 0;
        for op in std::iter::once(first).chain(rx.try_iter()) {
            match op {
                Op::Append { frames, records: n, done } => {
                    buf.extend_from_slice(&frames);
                    records += n;
                    acks.push(done);
                }
                Op::Shutdown => shutdown = true,
            }
        }
        if !buf.is_empty() {
            let result = w.write_batch(&buf).and_then(|rotated| {
                if rotated {
                    stats.segments.fetch_add(1, Ordering::Relaxed);
                }
                if policy == FsyncPolicy::PerRequest {
                    w.sync()?;
                    stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                } else {
                    dirty = true;
                }
                Ok(())
            });
            match &result {
                Ok(()) => {
                    stats.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    stats.records_written.fetch_add(records, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.write_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "wal write failed");
                }
            }
            let outcome = result.map_err(|e| e.to_string());
            for done in acks.drain(..) {
                let _ = done.send(outcome.clone());
            }
            buf.clear();
        }
        for done in acks.drain(..) {
            let _ = done.send(Ok(()));
        }
        if shutdown {
            break;
        }
    }
    if dirty || policy == FsyncPolicy::PerRequest {
        sync(&mut w, &stats);
    }
}

fn sync(w: &mut SegmentWriter, stats: &WalStats) {
    match w.sync() {
        Ok(()) => {
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::error!(error = %e, "wal fsync failed"),
    }
}
