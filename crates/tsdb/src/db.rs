//! The durable ingest path for all tenants: one WAL, one head per tenant.
//!
//! ```text
//!  append(tenant, series) ─► head write lock: lookup/create series, ordering checks,
//!                            append to chunks, frame WAL records (series first)
//!                         ─► WAL writer (group commit) ─► Commit::wait() ─► acknowledge
//!  open(dir) ─► replay WAL segments ─► rebuild heads exactly ─► ready
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
use strata_model::{Sample, TenantId};

use crate::head::append::Put;
use crate::head::{AppendOutcome, Head, HeadQuerier, HeadStats, Metadata, SeriesInput};
use crate::lock::DirLock;
use crate::wal::record::{self, MetadataEntry, Record, RefSample};
use crate::wal::{Commit, Wal, WalOptions, WalStats, put_frame};
use crate::{Error, Result};

/// Settings of the ingest path.
#[derive(Debug, Clone)]
pub struct TsdbOptions {
    pub wal: WalOptions,
    /// How far behind a series' newest sample (in ms) a sample may still be accepted.
    /// 0 rejects every out-of-order sample, as Prometheus does by default.
    pub out_of_order_window_ms: i64,
    /// Closed chunks older than this (ms) behind their head's newest sample are
    /// moved to files under `<dir>/head_chunks` by [`Tsdb::spill`]; `None` keeps
    /// every chunk in memory.
    pub memory_window_ms: Option<i64>,
    /// How far (ms) ahead of the wall clock a sample may be (Mimir's
    /// `creation_grace_period`): later ones are refused as `too_far_in_future`, and
    /// no cut treats a head as newer than the wall clock plus this.
    pub creation_grace_ms: i64,
}

/// Mimir's default creation grace period: 10 minutes.
pub const DEFAULT_CREATION_GRACE_MS: i64 = 10 * 60_000;

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            wal: WalOptions::default(),
            out_of_order_window_ms: 0,
            memory_window_ms: None,
            creation_grace_ms: DEFAULT_CREATION_GRACE_MS,
        }
    }
}

impl TsdbOptions {
    /// The newest timestamp a sample may have now.
    pub(crate) fn future_limit(&self) -> i64 {
        strata_model::now_ms().saturating_add(self.creation_grace_ms.max(0))
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub samples_appended: AtomicU64,
    /// Bytes of closed chunks moved from memory to head chunk files.
    pub chunk_bytes_spilled: AtomicU64,
    pub duplicates_ignored: AtomicU64,
    pub rejected_out_of_order: AtomicU64,
    pub rejected_duplicate: AtomicU64,
    pub rejected_too_old: AtomicU64,
    pub rejected_too_far_in_future: AtomicU64,
    /// Blocks cut and uploaded by the background flusher.
    pub blocks_uploaded: AtomicU64,
    /// Failed background flush attempts (each is retried).
    pub flush_failures: AtomicU64,
    pub series_created: AtomicU64,
    pub replayed_records: AtomicU64,
}

/// One WAL and the heads it protects.
#[derive(Debug)]
pub struct Tsdb {
    wal: Arc<Wal>,
    dir: std::path::PathBuf,
    pub(crate) flush_lock: tokio::sync::Mutex<()>,
    pub(crate) spiller: Arc<parking_lot::Mutex<crate::head::spill::Spiller>>,
    pub(crate) wal_truncated_once: AtomicBool,
    pub(crate) cuts: parking_lot::Mutex<std::collections::BTreeMap<String, crate::flush::TenantCuts>>,
    heads: RwLock<HashMap<TenantId, Arc<Head>>>,
    pub(crate) opts: TsdbOptions,
    stats: IngestStats,
    /// The data dir's lock. Last, so it is released after the WAL writer has
    /// flushed and exited (fields drop in order).
    _lock: DirLock,
}

/// Samples replayed between two spill passes during start-up.
const REPLAY_SPILL_EVERY_SAMPLES: usize = if cfg!(test) { 1_000 } else { 2_000_000 };

impl Tsdb {
    /// Opens the WAL under `dir/wal`, replays it into fresh heads, and starts the
    /// writer. Returns once the heads hold everything the WAL held.
    ///
    /// Takes the data dir's lock first (before anything reads or clears a file in
    /// `dir`) and holds it for the life of the `Tsdb`: fails with
    /// [`Error::Locked`] while another `Tsdb`, in any process, has `dir` open.
    pub fn open(dir: &Path, opts: TsdbOptions) -> Result<Tsdb> {
        Self::open_locked(DirLock::acquire(dir)?, opts)
    }

    /// [`Tsdb::open`] on a dir whose lock the caller took earlier (the binary
    /// locks before it starts anything else that touches the dir).
    pub fn open_locked(lock: DirLock, opts: TsdbOptions) -> Result<Tsdb> {
        let dir_buf = lock.dir().to_path_buf();
        let dir = dir_buf.as_path();
        let mut heads: HashMap<TenantId, Arc<Head>> = HashMap::new();
        // WAL series ref → head series id, per tenant.
        let mut refs: HashMap<String, HashMap<u64, u32>> = HashMap::new();
        let mut remapped = false;
        let stats = IngestStats::default();
        let head_for = |tenant: &str, heads: &mut HashMap<TenantId, Arc<Head>>| -> Option<Arc<Head>> {
            let id = TenantId::new(tenant).ok()?;
            Some(heads.entry(id.clone()).or_insert_with(|| Arc::new(Head::new(id))).clone())
        };
        let cuts = crate::flush::load_cuts(dir)?;
        // Blocks half-written when the process died: the WAL still holds their data.
        let _ = std::fs::remove_dir_all(dir.join(crate::flush::SPOOL_DIR));
        let mut skipped_uploaded = 0u64;
        let spiller = Arc::new(parking_lot::Mutex::new(crate::head::spill::Spiller::open(&dir.join("head_chunks"))?));
        // Replay moves old chunks to files as it goes, so a restart peaks no higher
        // than the running process does.
        let mut replayed_since_spill = 0usize;
        let wal = Wal::open(&dir.join("wal"), opts.wal.clone(), |seg, rec| {
            stats.replayed_records.fetch_add(1, Ordering::Relaxed);
            match rec {
                Record::Series { tenant, series } => {
                    let Some(head) = head_for(&tenant, &mut heads) else { return };
                    let map = refs.entry(tenant).or_default();
                    let mut g = head.inner.write();
                    for s in series.into_iter().filter(|s| !s.labels.is_empty()) {
                        let pairs: Vec<(&str, &str)> = s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                        let id = match u32::try_from(s.series_ref) {
                            Ok(r) => g.get_or_create_at(r, &pairs),
                            Err(_) => g.get_or_create(&pairs).0,
                        };
                        remapped |= u64::from(id) != s.series_ref;
                        map.insert(s.series_ref, id);
                    }
                }
                Record::Samples { tenant, samples } => {
                    let Some(head) = head_for(&tenant, &mut heads) else { return };
                    let Some(map) = refs.get(&tenant) else {
                        tracing::warn!(%tenant, n = samples.len(), "wal samples for unknown series skipped");
                        return;
                    };
                    let cut = cuts.get(&tenant);
                    let samples_len = samples.len();
                    let mut g = head.inner.write();
                    for s in samples {
                        if cut.is_some_and(|c| c.uploaded(seg, s.sample.t)) {
                            skipped_uploaded += 1;
                            continue;
                        }
                        match map.get(&s.series_ref) {
                            Some(&id) => {
                                g.put(id, s.sample, i64::MIN);
                            }
                            None => {
                                tracing::warn!(%tenant, series_ref = s.series_ref, "wal sample for unknown series skipped")
                            }
                        }
                    }
                    drop(g);
                    replayed_since_spill += samples_len;
                    if let Some(window) = opts.memory_window_ms
                        && replayed_since_spill >= REPLAY_SPILL_EVERY_SAMPLES
                    {
                        replayed_since_spill = 0;
                        if let Err(e) = crate::head::spill::spill_head(&head, &spiller, window) {
                            tracing::warn!(error = %e, "moving head chunks to files during replay failed");
                        }
                    }
                }
                Record::Metadata { tenant, entries } => {
                    let Some(head) = head_for(&tenant, &mut heads) else { return };
                    let mut g = head.inner.write();
                    for e in entries {
                        g.set_metadata(&e.family, Metadata { kind: e.kind, help: e.help, unit: e.unit });
                    }
                }
            }
        })?;
        let db = Tsdb {
            wal: Arc::new(wal),
            dir: dir.to_path_buf(),
            flush_lock: tokio::sync::Mutex::new(()),
            spiller,
            wal_truncated_once: AtomicBool::new(false),
            heads: RwLock::new(heads),
            opts,
            stats,
            cuts: parking_lot::Mutex::new(cuts),
            _lock: lock,
        };
        crate::flush::apply_cuts(&db, &db.cuts.lock().clone());
        // Series whose logged samples were all in blocks came back empty.
        for head in db.heads.read().values() {
            head.inner.write().after_replay();
            if let Some(window) = db.opts.memory_window_ms
                && let Err(e) = crate::head::spill::spill_head(head, &db.spiller, window)
            {
                tracing::warn!(error = %e, "moving head chunks to files after replay failed");
            }
        }
        if skipped_uploaded > 0 {
            tracing::info!(samples = skipped_uploaded, "wal replay skipped samples already in blocks");
        }
        if remapped {
            // Head ids differ from the refs in the log (garbage-collected series left
            // gaps in the logged ids, or a series record was lost with a failed write). Re-announce every series under its head id so that later
            // records, which use head ids, replay correctly.
            db.log_all_series()?;
        }
        Ok(db)
    }

    fn log_all_series(&self) -> Result<()> {
        let heads: Vec<Arc<Head>> = self.heads.read().values().cloned().collect();
        for head in heads {
            let (mut frames, mut n) = (Vec::new(), 0);
            crate::flush::series_frames::<std::convert::Infallible>(&head, |f| {
                frames.extend_from_slice(f);
                n += 1;
                Ok(())
            })
            .unwrap_or_else(|never| match never {});
            // Not waited for: the writer writes and syncs in order, so the first
            // acknowledged append after this (the first that uses these ids) makes
            // it durable too. (Waiting here would need a runtime, and `open` may be
            // called from one.)
            drop(self.wal.append(frames, n, None));
        }
        Ok(())
    }

    /// Appends samples and metadata for one tenant. Checks ordering per series, stores
    /// what passes in the head, and queues the WAL records; the caller must await the
    /// returned [`Commit`] before acknowledging anything.
    pub fn append(
        &self,
        tenant: &TenantId,
        series: &[SeriesInput<'_>],
        metadata: &[MetadataEntry],
    ) -> Result<(AppendOutcome, Commit)> {
        self.append_limited(tenant, series, metadata, 0)
    }

    /// [`Tsdb::append`] with a limit on the tenant's live series in the head
    /// (Mimir's `max_global_series_per_user`; 0: none): samples of a series that
    /// does not exist yet are rejected with [`crate::head::RejectReason::SeriesLimit`]
    /// when the head holds `max_series` series already. Checked under the head
    /// lock, so concurrent requests cannot overshoot it; existing series always
    /// take samples.
    pub fn append_limited(
        &self,
        tenant: &TenantId,
        series: &[SeriesInput<'_>],
        metadata: &[MetadataEntry],
        max_series: u64,
    ) -> Result<(AppendOutcome, Commit)> {
        if self.wal.is_failed() {
            return Err(Error::WalFailed);
        }
        let head = self.head_or_create(tenant);
        let mut outcome = AppendOutcome::default();
        let mut new_series: Vec<u32> = Vec::new();
        let mut accepted: Vec<RefSample> = Vec::new();
        let mut frames = Vec::new();
        let mut nrec = 0;
        let mut g = head.inner.write();
        let ooo = self.opts.out_of_order_window_ms;
        let future = self.opts.future_limit();
        // The window hangs off the newest credible sample: one sample from a skewed
        // clock (accepted before the limit existed) must not move it.
        let floor = if ooo > 0 { g.max_t.min(future).saturating_sub(ooo) } else { i64::MAX };
        let cut_floor = g.cut_floor;
        let mut newest = i64::MIN;
        for s in series {
            let Some((id, created)) = g.get_or_create_limited(s.labels, max_series) else {
                for &sample in s.samples {
                    outcome_reject(&mut outcome, crate::head::RejectReason::SeriesLimit, s.labels, sample);
                }
                continue;
            };
            if created {
                new_series.push(id);
            }
            for &sample in s.samples {
                if sample.t > future {
                    outcome_reject(&mut outcome, crate::head::RejectReason::TooFarInFuture, s.labels, sample);
                    continue;
                }
                if sample.t < cut_floor && sample.t < floor {
                    outcome_reject(&mut outcome, crate::head::RejectReason::TooOld, s.labels, sample);
                    continue;
                }
                newest = newest.max(sample.t);
                match g.put(id, sample, floor) {
                    Put::Stored => accepted.push(RefSample { series_ref: u64::from(id), sample }),
                    Put::Duplicate => outcome.duplicates_ignored += 1,
                    Put::Rejected(reason) => outcome_reject(&mut outcome, reason, s.labels, sample),
                }
            }
        }
        let mut changed_meta = Vec::new();
        for e in metadata {
            let m = Metadata { kind: e.kind.clone(), help: e.help.clone(), unit: e.unit.clone() };
            if g.set_metadata(&e.family, m) {
                changed_meta.push(e.clone());
            }
        }
        let mut payload = Vec::new();
        if !new_series.is_empty() {
            record::encode_series(
                &mut payload,
                tenant.as_str(),
                new_series.iter().map(|&id| (u64::from(id), g.label_strs(id))),
            );
            put_frame(&mut frames, record::TYPE_SERIES, &payload);
            nrec += 1;
        }
        if !accepted.is_empty() {
            payload.clear();
            record::encode_samples(&mut payload, tenant.as_str(), &accepted);
            put_frame(&mut frames, record::TYPE_SAMPLES, &payload);
            nrec += 1;
        }
        if !changed_meta.is_empty() {
            payload.clear();
            record::encode_metadata(&mut payload, tenant.as_str(), &changed_meta);
            put_frame(&mut frames, record::TYPE_METADATA, &payload);
            nrec += 1;
        }
        outcome.accepted = accepted.len() as u64;
        self.count(&outcome, new_series.len());
        let newest = (!accepted.is_empty()).then(|| (tenant.as_str().to_string(), newest));
        // Queued under the head lock: the log's order is the head's, so a series id
        // freed by a cut and reused is never logged ahead of its earlier owner's
        // records, and a cut's WAL rotation (also under this lock) separates exactly
        // the samples it took.
        let commit = self.wal.append(frames, nrec, newest);
        drop(g);
        Ok((outcome, commit))
    }

    /// Whether appends are refused because the WAL cannot write (a full disk, an I/O
    /// error). Clears by itself once the WAL has written what was pending.
    pub fn is_failed(&self) -> bool {
        self.wal.is_failed()
    }

    fn count(&self, o: &AppendOutcome, created: usize) {
        use crate::head::RejectReason::*;
        self.stats.samples_appended.fetch_add(o.accepted, Ordering::Relaxed);
        self.stats.duplicates_ignored.fetch_add(o.duplicates_ignored, Ordering::Relaxed);
        self.stats.series_created.fetch_add(created as u64, Ordering::Relaxed);
        for (reason, (n, _)) in &o.rejected {
            match reason {
                OutOfOrder => &self.stats.rejected_out_of_order,
                DuplicateTimestamp => &self.stats.rejected_duplicate,
                TooOld => &self.stats.rejected_too_old,
                TooFarInFuture => &self.stats.rejected_too_far_in_future,
                // Counted by the caller, which knows the limit (per tenant, on /metrics).
                SeriesLimit => continue,
            }
            .fetch_add(*n, Ordering::Relaxed);
        }
    }

    pub(crate) fn wal_handle(&self) -> Arc<Wal> {
        self.wal.clone()
    }

    /// The data directory (WAL under `wal/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn head_or_create(&self, tenant: &TenantId) -> Arc<Head> {
        if let Some(h) = self.heads.read().get(tenant) {
            return h.clone();
        }
        self.heads.write().entry(tenant.clone()).or_insert_with(|| Arc::new(Head::new(tenant.clone()))).clone()
    }

    /// The head of `tenant`, if it has written anything.
    pub fn head(&self, tenant: &TenantId) -> Option<Arc<Head>> {
        self.heads.read().get(tenant).cloned()
    }

    /// A querier over `tenant`'s head (empty for unknown tenants).
    pub fn querier(&self, tenant: &TenantId) -> HeadQuerier {
        HeadQuerier::new(self.head(tenant))
    }

    pub fn tenants(&self) -> Vec<TenantId> {
        let mut t: Vec<TenantId> = self.heads.read().keys().cloned().collect();
        t.sort();
        t
    }

    pub fn head_stats(&self) -> Vec<(TenantId, HeadStats)> {
        let heads: Vec<Arc<Head>> = self.heads.read().values().cloned().collect();
        let mut out: Vec<(TenantId, HeadStats)> = heads.iter().map(|h| (h.tenant().clone(), h.stats())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn wal_stats(&self) -> &Arc<WalStats> {
        self.wal.stats()
    }

    pub fn ingest_stats(&self) -> &IngestStats {
        &self.stats
    }
}

fn outcome_reject(o: &mut AppendOutcome, reason: crate::head::RejectReason, labels: &[(&str, &str)], s: Sample) {
    o.rejected
        .entry(reason)
        .or_insert_with(|| {
            let l = strata_model::Labels::from_pairs(labels.iter().copied());
            (0, format!("series {l} timestamp {}", s.t))
        })
        .0 += 1;
}

#[cfg(test)]
mod tests {
    use strata_model::{Matcher, Querier, SelectHints};

    use super::*;
    use crate::head::RejectReason;

    fn t() -> TenantId {
        TenantId::new("team-a").unwrap()
    }

    async fn all(db: &Tsdb, tenant: &TenantId) -> Vec<strata_model::Series> {
        db.querier(tenant)
            .select(
                &SelectHints::range(i64::MIN, i64::MAX),
                &[Matcher::new(strata_model::MatchOp::RegexMatch, "__name__", ".+").unwrap()],
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn replay_rebuilds_the_head_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let stale = strata_model::stale_nan();
        let before = {
            let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
            for round in 0..3i64 {
                let samples: Vec<Sample> = (0..50).map(|i| Sample::new(round * 1000 + i, i as f64 * 0.1)).collect();
                let labels = [("__name__", "m"), ("job", "j")];
                let labels2 = [("__name__", "n"), ("x", "y")];
                let stale_s = [Sample::new(round * 1000 + 999, stale)];
                let series = [
                    SeriesInput { labels: &labels, samples: &samples },
                    SeriesInput { labels: &labels2, samples: &stale_s },
                ];
                let meta =
                    [MetadataEntry { family: "m".into(), kind: "gauge".into(), help: "h".into(), unit: "".into() }];
                let (o, c) = db.append(&t(), &series, &meta).unwrap();
                c.wait().await.unwrap();
                assert_eq!(o.accepted, 51);
            }
            all(&db, &t()).await
        };
        let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        assert_eq!(all(&db, &t()).await, before);
        assert_eq!(before[1].samples[0].v.to_bits(), stale.to_bits());
        assert_eq!(db.head(&t()).unwrap().metadata()["m"].kind, "gauge");
        // Another tenant sees nothing.
        assert!(all(&db, &TenantId::new("other").unwrap()).await.is_empty());
    }

    #[tokio::test]
    async fn rejections_do_not_fail_other_series() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        let a = [("__name__", "a")];
        let b = [("__name__", "b")];
        let (_, c) = db.append(&t(), &[SeriesInput { labels: &a, samples: &[Sample::new(10, 1.0)] }], &[]).unwrap();
        c.wait().await.unwrap();
        let late = [Sample::new(5, 1.0), Sample::new(10, 2.0), Sample::new(10, 1.0)];
        let fine = [Sample::new(1, 1.0)];
        let (o, c) = db
            .append(
                &t(),
                &[SeriesInput { labels: &a, samples: &late }, SeriesInput { labels: &b, samples: &fine }],
                &[],
            )
            .unwrap();
        c.wait().await.unwrap();
        assert_eq!(o.accepted, 1);
        assert_eq!(o.duplicates_ignored, 1);
        assert_eq!(o.rejected[&RejectReason::OutOfOrder].0, 1);
        assert_eq!(o.rejected[&RejectReason::DuplicateTimestamp].0, 1);
        assert!(o.rejected[&RejectReason::OutOfOrder].1.contains("timestamp 5"));
    }

    #[tokio::test]
    async fn series_limit_refuses_new_series_only_and_nothing_of_them_is_logged() {
        fn input<'a>(l: &'a [(&'a str, &'a str)], s: &'a [Sample]) -> SeriesInput<'a> {
            SeriesInput { labels: l, samples: s }
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        let (a, b, c) = ([("__name__", "a")], [("__name__", "b")], [("__name__", "c")]);
        let s1 = [Sample::new(1, 1.0)];
        let s2 = [Sample::new(2, 2.0), Sample::new(3, 3.0)];
        let (o, w) = db.append_limited(&t(), &[input(&a, &s1), input(&b, &s1)], &[], 2).unwrap();
        w.wait().await.unwrap();
        assert_eq!((o.accepted, o.rejected_total()), (2, 0));
        // Full: the existing series take samples, a new one is refused whole.
        let (o, w) = db.append_limited(&t(), &[input(&c, &s2), input(&a, &s2)], &[], 2).unwrap();
        w.wait().await.unwrap();
        assert_eq!(o.accepted, 2);
        assert_eq!(o.rejected[&RejectReason::SeriesLimit].0, 2);
        assert!(o.rejected[&RejectReason::SeriesLimit].1.contains("series c"), "{:?}", o.rejected);
        // A raised limit (or none) admits it.
        let (o, w) = db.append_limited(&t(), &[input(&c, &s2)], &[], 3).unwrap();
        w.wait().await.unwrap();
        assert_eq!(o.accepted, 2);
        drop(db);
        let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        assert_eq!(db.head(&t()).unwrap().stats().series, 3);
        assert_eq!(db.head(&t()).unwrap().stats().samples, 6);
    }

    #[tokio::test]
    async fn out_of_order_window_accepts_late_samples_and_replays_them() {
        let dir = tempfile::tempdir().unwrap();
        let opts = TsdbOptions { out_of_order_window_ms: 100, ..Default::default() };
        let a = [("__name__", "a")];
        {
            let db = Tsdb::open(dir.path(), opts.clone()).unwrap();
            let (_, c) =
                db.append(&t(), &[SeriesInput { labels: &a, samples: &[Sample::new(1000, 1.0)] }], &[]).unwrap();
            c.wait().await.unwrap();
            let late = [Sample::new(950, 2.0), Sample::new(800, 3.0)];
            let (o, c) = db.append(&t(), &[SeriesInput { labels: &a, samples: &late }], &[]).unwrap();
            c.wait().await.unwrap();
            assert_eq!((o.accepted, o.rejected_total()), (1, 1));
        }
        let db = Tsdb::open(dir.path(), opts).unwrap();
        let got = all(&db, &t()).await;
        assert_eq!(got[0].samples, vec![Sample::new(950, 2.0), Sample::new(1000, 1.0)]);
    }
}

#[cfg(test)]
mod resend_tests {
    use super::*;

    #[tokio::test]
    async fn an_append_with_nothing_new_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        let t = TenantId::new("t").unwrap();
        let a = [("__name__", "a")];
        let s = [Sample::new(1, 1.0)];
        for _ in 0..2 {
            let (_, c) = db.append(&t, &[SeriesInput { labels: &a, samples: &s }], &[]).unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(5), c.wait()).await.expect("commit resolves").unwrap();
        }
        let (_, c) = db.append(&t, &[], &[]).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), c.wait()).await.expect("commit resolves").unwrap();
    }
}
