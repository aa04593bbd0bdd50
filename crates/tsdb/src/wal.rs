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
pub(crate) mod segment;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

pub use record::{DecodeError, MetadataEntry, Record, RefSample, SeriesEntry};
pub(crate) use segment::put_frame;
use segment::{SegmentWriter, checkpoint_name, list_checkpoints, list_segments, replay_segment, sync_dir};

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
    /// Failed writes or fsyncs, retries included.
    pub write_failures: AtomicU64,
    /// Times the log wrote again after failing.
    pub recoveries: AtomicU64,
    pub torn_tails_truncated: AtomicU64,
    pub segments: AtomicU64,
}

enum Op {
    Append { frames: Vec<u8>, records: u64, newest: Option<(String, i64)>, done: oneshot::Sender<Result<(), String>> },
    Rotate { done: oneshot::Sender<Result<u64, String>> },
    Shutdown,
}

/// Per segment, per tenant: the newest sample timestamp the segment holds. A segment
/// whose every tenant's newest sample is older than what that tenant's head still
/// holds carries nothing that is not already in a block, and may be dropped.
type SegmentTimes = Arc<parking_lot::Mutex<BTreeMap<u64, HashMap<String, i64>>>>;

fn note_time(times: &mut BTreeMap<u64, HashMap<String, i64>>, seg: u64, tenant: &str, t: i64) {
    let m = times.entry(seg).or_default();
    match m.get_mut(tenant) {
        Some(x) => *x = (*x).max(t),
        None => {
            m.insert(tenant.to_string(), t);
        }
    }
}

/// A handle to the WAL writer thread.
#[derive(Debug)]
pub struct Wal {
    tx: mpsc::Sender<Op>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<WalStats>,
    dir: PathBuf,
    times: SegmentTimes,
    /// Set by the writer while it cannot write (and for good if it stopped).
    failed: Arc<AtomicBool>,
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
    /// Replays the newest checkpoint and every later segment in `dir` through
    /// `on_record` (oldest first), cutting off a torn or corrupt tail, then opens a
    /// fresh segment for appending.
    pub fn open(dir: &Path, opts: WalOptions, mut on_record: impl FnMut(u64, Record)) -> Result<Wal> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create wal dir", dir, e))?;
        let stats = Arc::new(WalStats::default());
        let times: SegmentTimes = Arc::default();
        let checkpoints = list_checkpoints(dir)?;
        let covered = checkpoints.last().map(|(n, _)| *n);
        if let Some((n, path)) = checkpoints.last() {
            let outcome = replay_segment(path, &mut |rec| on_record(*n, rec))?;
            if let Some(at) = outcome.truncated_at {
                // Checkpoints are renamed into place only once fsynced: damage here is not a torn write.
                return Err(Error::WalWrite {
                    reason: format!("checkpoint {} corrupt at offset {at}: {:?}", path.display(), outcome.reason),
                });
            }
            tracing::info!(checkpoint = n, "wal checkpoint replayed");
        }
        let mut segments = list_segments(dir)?;
        if let Some(k) = covered {
            // Left over from a crash between writing a checkpoint and deleting what it replaced.
            for (_, path) in segments.iter().filter(|(n, _)| *n <= k) {
                let _ = std::fs::remove_file(path);
            }
            segments.retain(|(n, _)| *n > k);
            for (_, path) in &checkpoints[..checkpoints.len() - 1] {
                let _ = std::fs::remove_file(path);
            }
        }
        for (i, (seg, path)) in segments.iter().enumerate() {
            let mut t = times.lock();
            let outcome = replay_segment(path, &mut |rec: Record| {
                if let Record::Samples { tenant, samples } = &rec
                    && let Some(max) = samples.iter().map(|s| s.sample.t).max()
                {
                    note_time(&mut t, *seg, tenant, max);
                }
                on_record(*seg, rec)
            })?;
            drop(t);
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
        let next = segments.last().map(|(n, _)| n + 1).or(covered.map(|k| k + 1)).unwrap_or(1);
        let writer = SegmentWriter::create(dir, next, opts.segment_size)?;
        stats.segments.store(segments.len() as u64 + 1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let w = writer::Writer {
            w: writer,
            policy: opts.fsync,
            stats: stats.clone(),
            times: times.clone(),
            failed: failed.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|e| Error::io("spawn wal writer", dir, e))?;
        Ok(Wal { tx, thread: Some(thread), stats, dir: dir.to_path_buf(), times, failed })
    }

    /// Drops the oldest segments whose samples are all in blocks, keeping the series
    /// and metadata records they held in a checkpoint.
    ///
    /// `head_min(tenant)` is the oldest sample timestamp the tenant's head still
    /// holds (`i64::MAX` for an empty head): a sealed segment whose newest sample per
    /// tenant is older holds nothing the head still needs. `write_checkpoint` is
    /// called after the active segment is sealed and must write the framed series
    /// and metadata records of everything in the heads. Blocking: run off the async
    /// workers. Returns the last segment number dropped, if any.
    pub fn truncate(
        &self,
        head_min: impl Fn(&str) -> i64,
        write_checkpoint: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<Option<u64>> {
        let active = self
            .request_rotate()
            .blocking_recv()
            .map_err(|_| Error::WalWrite { reason: "wal writer stopped".into() })?
            .map_err(|reason| Error::WalWrite { reason })?;
        let segments = list_segments(&self.dir)?;
        let mut last = None;
        {
            let times = self.times.lock();
            for (n, _) in segments.iter().filter(|(n, _)| *n < active) {
                let keep = times.get(n).is_some_and(|m| m.iter().any(|(tenant, &t)| t >= head_min(tenant)));
                if keep {
                    break;
                }
                last = Some(*n);
            }
        }
        let Some(k) = last else { return Ok(None) };
        let tmp = self.dir.join(format!("{}.tmp", checkpoint_name(k)));
        let dst = self.dir.join(checkpoint_name(k));
        let write = || -> std::io::Result<u64> {
            let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
            write_checkpoint(&mut f)?;
            let f = f.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            let len = f.metadata()?.len();
            std::fs::rename(&tmp, &dst)?;
            Ok(len)
        };
        let bytes = write().map_err(|e| Error::io("write wal checkpoint", &dst, e))?;
        sync_dir(&self.dir)?;
        for (n, path) in segments.iter().filter(|(n, _)| *n <= k) {
            std::fs::remove_file(path).map_err(|e| Error::io("remove wal segment", path, e))?;
            self.times.lock().remove(n);
        }
        for (n, path) in list_checkpoints(&self.dir)? {
            if n < k {
                std::fs::remove_file(&path).map_err(|e| Error::io("remove wal checkpoint", &path, e))?;
            }
        }
        self.stats.segments.store(list_segments(&self.dir)?.len() as u64, Ordering::Relaxed);
        tracing::info!(upto = k, checkpoint_bytes = bytes, "wal truncated");
        Ok(Some(k))
    }

    /// Asks the writer to seal the active segment; answers the new active segment's
    /// number once done. Records queued before this call land in earlier segments.
    pub(crate) fn request_rotate(&self) -> oneshot::Receiver<Result<u64, String>> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Op::Rotate { done });
        rx
    }

    /// Queues already-framed records (see [`put_frame`]). The frames of one call are
    /// written contiguously and in call order relative to other calls.
    /// `newest` names the tenant and newest sample timestamp among the frames, if
    /// they hold samples (for [`Wal::truncate`]).
    ///
    /// Empty `frames` (every sample was an exact re-send) still go through the
    /// writer: the commit resolves only once everything queued before is durable,
    /// so a re-sent sample is never acknowledged ahead of its original.
    pub(crate) fn append(&self, frames: Vec<u8>, records: u64, newest: Option<(String, i64)>) -> Commit {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::SendError(op)) = self.tx.send(Op::Append { frames, records, newest, done }) {
            self.failed.store(true, Ordering::Release);
            if let Op::Append { done, .. } = op {
                let _ = done.send(Err("wal writer stopped".into()));
            }
        }
        Commit(rx)
    }

    /// Whether the log cannot write right now. Appends must be refused before they
    /// touch the head while this holds; it clears by itself once the writer has
    /// written and fsynced what was pending.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
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

#[cfg(test)]
mod tests;
