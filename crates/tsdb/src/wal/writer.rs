//! The writer thread: group commit, and riding out a disk that cannot take writes.
//!
//! ```text
//!            ┌──────── ok ────────┐
//!            ▼                    │  write+fsync of a batch fails (disk full, EIO):
//!  healthy: batch ─► write+fsync ─┘  cut the segment back, keep the bytes pending,
//!            │                       answer the batch with errors, set `failed`
//!            ▼ error
//!  failed:  queued frames join the pending bytes (their samples are in the head),
//!           every request and rotation is answered with an error; retry writing
//!           the pending bytes + fsync with backoff (100 ms doubling to 5 s)
//!            │ ok: clear `failed`, back to healthy
//! ```
//!
//! While `failed` is set, `Tsdb::append` refuses before touching the head, so no
//! sample enters the head without its frames reaching the writer. A request answered
//! with an error may still become durable (its bytes were pending): the client's
//! retry then finds exact duplicates, which are acknowledged only through this
//! thread (FIFO), after what preceded them is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::segment::SegmentWriter;
use super::{FsyncPolicy, Op, SegmentTimes, WalStats, note_time};

/// First retry delay after a failed write; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Frames that were queued but are not yet in the log, in queue order.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    records: u64,
    newest: Vec<(String, i64)>,
}

/// Set while the log cannot write.
#[derive(Debug)]
struct Fault {
    since: Instant,
    reason: String,
    retry_at: Instant,
    backoff: Duration,
    attempts: u64,
}

pub(super) struct Writer {
    pub(super) w: SegmentWriter,
    pub(super) policy: FsyncPolicy,
    pub(super) stats: Arc<WalStats>,
    pub(super) times: SegmentTimes,
    /// Shared with `Wal::is_failed`, read by `Tsdb::append` before the head.
    pub(super) failed: Arc<AtomicBool>,
}

struct State {
    pending: Pending,
    fault: Option<Fault>,
    dirty: bool,
    last_sync: Instant,
}

impl Writer {
    pub(super) fn run(mut self, rx: mpsc::Receiver<Op>) {
        let mut st = State { pending: Pending::default(), fault: None, dirty: false, last_sync: Instant::now() };
        loop {
            let deadline = self.deadline(&st);
            let first = match deadline {
                None => rx.recv().ok(),
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(op) => Some(op),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.on_timer(&mut st);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
            };
            let Some(first) = first else { break };
            let mut shutdown = false;
            let mut buf = Vec::new();
            let mut records = 0;
            let mut newest: Vec<(String, i64)> = Vec::new();
            let mut acks = Vec::new();
            let mut rotate = Vec::new();
            for op in std::iter::once(first).chain(rx.try_iter()) {
                match op {
                    Op::Append { frames, records: n, newest: t, done } => {
                        buf.extend_from_slice(&frames);
                        records += n;
                        newest.extend(t);
                        acks.push(done);
                    }
                    Op::Rotate { done } => rotate.push(done),
                    Op::Shutdown => shutdown = true,
                }
            }
            let outcome = if st.fault.is_some() {
                // Their samples are in the head already: keep the frames, in order.
                st.pending.bytes.extend_from_slice(&buf);
                st.pending.records += records;
                st.pending.newest.append(&mut newest);
                Err(self.refusal(&st))
            } else if buf.is_empty() {
                // Only re-sends whose samples were all duplicates: everything queued
                // before them is durable by now.
                Ok(())
            } else {
                match self.w.write_batch(&buf, self.policy == FsyncPolicy::PerRequest) {
                    Ok(()) => {
                        self.written(buf.len(), records, newest);
                        if self.policy == FsyncPolicy::PerRequest {
                            self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                        } else {
                            st.dirty = true;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        st.pending = Pending { bytes: buf, records, newest };
                        self.enter_failed(&mut st, e.to_string());
                        Err(self.refusal(&st))
                    }
                }
            };
            for done in acks {
                let _ = done.send(outcome.clone());
            }
            if st.fault.as_ref().is_some_and(|f| Instant::now() >= f.retry_at) {
                self.retry(&mut st);
            }
            for done in rotate {
                let r = if st.fault.is_some() {
                    // Sealing now would put the pending bytes after the seal.
                    Err(self.refusal(&st))
                } else {
                    let before = self.w.number();
                    let r = self.w.rotate().map_err(|e| e.to_string());
                    if self.w.number() != before {
                        self.stats.segments.fetch_add(1, Ordering::Relaxed);
                    }
                    r
                };
                let _ = done.send(r);
            }
            if shutdown {
                break;
            }
        }
        self.close(&mut st);
    }

    /// When the loop must wake up without a request: the next retry while failed,
    /// the next fsync in interval mode.
    fn deadline(&self, st: &State) -> Option<Instant> {
        if let Some(f) = &st.fault {
            return Some(f.retry_at);
        }
        match self.policy {
            FsyncPolicy::PerRequest => None,
            FsyncPolicy::Interval(every) => Some(st.last_sync + every),
        }
    }

    fn on_timer(&mut self, st: &mut State) {
        if st.fault.is_some() {
            if st.fault.as_ref().is_some_and(|f| Instant::now() >= f.retry_at) {
                self.retry(st);
            }
            return;
        }
        if st.dirty {
            match self.w.sync() {
                Ok(()) => {
                    self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                    st.dirty = false;
                }
                // Nothing pending to write again: the retry fsyncs until one succeeds.
                Err(e) => self.enter_failed(st, e.to_string()),
            }
        }
        st.last_sync = Instant::now();
    }

    fn written(&self, bytes: usize, records: u64, newest: Vec<(String, i64)>) {
        let mut t = self.times.lock();
        for (tenant, max) in newest {
            note_time(&mut t, self.w.number(), &tenant, max);
        }
        drop(t);
        self.stats.bytes_written.fetch_add(bytes as u64, Ordering::Relaxed);
        self.stats.records_written.fetch_add(records, Ordering::Relaxed);
    }

    fn enter_failed(&self, st: &mut State, reason: String) {
        self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %reason, pending_bytes = st.pending.bytes.len(), "wal cannot write; refusing appends until it can");
        let now = Instant::now();
        st.fault = Some(Fault { since: now, reason, retry_at: now + RETRY_FIRST, backoff: RETRY_FIRST, attempts: 1 });
        self.failed.store(true, Ordering::Release);
    }

    fn refusal(&self, st: &State) -> String {
        let reason = st.fault.as_ref().map_or("", |f| f.reason.as_str());
        format!("write-ahead log cannot write ({reason}); retry later")
    }

    /// Writes and fsyncs the pending bytes; on success the log is healthy again.
    fn retry(&mut self, st: &mut State) {
        let Some(f) = st.fault.as_mut() else { return };
        let r = if st.pending.bytes.is_empty() { self.w.sync() } else { self.w.write_batch(&st.pending.bytes, true) };
        match r {
            Ok(()) => {
                let p = std::mem::take(&mut st.pending);
                let bytes = p.bytes.len();
                self.written(bytes, p.records, p.newest);
                self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.stats.recoveries.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    failed_for = %humantime::format_duration(std::time::Duration::from_millis(
                        f.since.elapsed().as_millis() as u64
                    )),
                    attempts = f.attempts,
                    pending_bytes = bytes,
                    "wal writes again; appends resume"
                );
                st.fault = None;
                st.dirty = false;
                st.last_sync = Instant::now();
                self.failed.store(false, Ordering::Release);
            }
            Err(e) => {
                self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                f.attempts += 1;
                f.reason = e.to_string();
                f.backoff = (f.backoff * 2).min(RETRY_MAX);
                f.retry_at = Instant::now() + f.backoff;
                tracing::debug!(error = %e, attempts = f.attempts, "wal retry failed");
            }
        }
    }

    /// At shutdown: one last try at what is pending, then the final fsync.
    fn close(&mut self, st: &mut State) {
        if st.fault.is_some() {
            self.retry(st);
        }
        if st.fault.is_some() {
            // Never acknowledged: the senders got errors and will send again.
            tracing::error!(
                bytes = st.pending.bytes.len(),
                records = st.pending.records,
                "wal shut down with records it could not write (never acknowledged)"
            );
            return;
        }
        if st.dirty || self.policy == FsyncPolicy::PerRequest {
            match self.w.sync() {
                Ok(()) => {
                    self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "wal fsync failed"),
            }
        }
    }
}
