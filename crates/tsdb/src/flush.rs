//! Cutting heads into blocks, uploading them, and truncating the WAL afterwards.
//!
//! ```text
//!  per tenant, oldest range first (ranges aligned to multiples of block_range):
//!    head spans past range end + grace (or flush) ─► snapshot < end (floor raised)
//!    ─► BlockBuilder (blocking thread) ─► upload: data files, meta.json last
//!    ─► truncate head (exactly what was taken) ─► persist cut floors (cuts.json)
//!  then: seal the active WAL segment ─► checkpoint series + metadata
//!        ─► delete segments whose samples are all in blocks
//! ```
//! An upload failure leaves the head and the WAL as they were: the next attempt
//! cuts the same data again. A crash after an upload but before truncation means
//! the range is uploaded twice after restart; readers and compaction deduplicate.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strata_block::{BlockBuilder, BlockMeta, BlockOrigin, ObjectStore, upload};
use strata_model::TenantId;

use crate::db::Tsdb;
use crate::head::Head;
use crate::head::cut::order_by_labels;
use crate::wal::record::{self, MetadataEntry};
use crate::wal::{put_frame, record::TYPE_METADATA, record::TYPE_SERIES};
use crate::{Error, Result};

/// When the head is cut.
#[derive(Debug, Clone, Copy)]
pub struct CutPolicy {
    /// Block span in ms; ranges are aligned to multiples of it.
    pub range_ms: i64,
    /// A range is cut once the head's newest sample is this far (ms) past its end.
    pub grace_ms: i64,
}

impl Default for CutPolicy {
    fn default() -> Self {
        CutPolicy { range_ms: 2 * 3_600_000, grace_ms: 3_600_000 }
    }
}

const CUTS_FILE: &str = "cuts.json";

/// Series whose samples a cut takes from the head at a time (under the read lock)
/// while writing a block: bounds the cut's memory to one batch.
const CUT_BATCH_SERIES: usize = 1024;

/// Where blocks are written before upload (emptied at start-up).
pub(crate) const SPOOL_DIR: &str = "spool";

/// Cuts due ranges in the background until `shutdown` turns true: every `interval`,
/// and after a failure again with exponential backoff (1 s doubling to 2 min) while
/// ingestion goes on. Data is never dropped: a failed cut leaves it in head and WAL.
pub async fn run_flusher(
    db: Arc<Tsdb>,
    store: Arc<dyn ObjectStore>,
    policy: CutPolicy,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    on_upload: impl Fn(&[BlockMeta]) + Send,
) {
    let mut backoff = std::time::Duration::from_secs(1);
    let mut wait = interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        match db.flush(&store, policy, false).await {
            Ok(metas) => {
                if !metas.is_empty() {
                    on_upload(&metas);
                }
                db.ingest_stats().blocks_uploaded.fetch_add(metas.len() as u64, std::sync::atomic::Ordering::Relaxed);
                backoff = std::time::Duration::from_secs(1);
                wait = interval;
            }
            Err(e) => {
                db.ingest_stats().flush_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in = ?backoff, "cutting blocks failed; data stays in the head and WAL");
                wait = backoff;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(120));
            }
        }
    }
}

/// Moves old closed head chunks to files every `interval` (see [`Tsdb::spill`])
/// until `shutdown` turns true. Does nothing without a memory window.
pub async fn run_spiller(
    db: Arc<Tsdb>,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if db.opts.memory_window_ms.is_none() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = db.spill().await {
            // Chunks stay in memory; nothing is lost.
            tracing::warn!(error = %e, "moving head chunks to files failed");
        }
    }
}

impl Tsdb {
    /// Moves each head's closed chunks that end more than the memory window before
    /// its newest sample to files under `head_chunks/`. Returns the bytes moved.
    pub async fn spill(&self) -> Result<u64> {
        let Some(window) = self.opts.memory_window_ms else { return Ok(0) };
        let _no_truncation = self.flush_lock.lock().await;
        let mut moved = 0;
        for tenant in self.tenants() {
            let Some(head) = self.head(&tenant) else { continue };
            moved += self.spill_head(head, window).await?;
        }
        Ok(moved)
    }

    /// One head's spill pass, off the async workers. The caller holds the flush lock.
    async fn spill_head(&self, head: Arc<Head>, window: i64) -> Result<u64> {
        let spiller = self.spiller.clone();
        let moved = tokio::task::spawn_blocking(move || crate::head::spill::spill_head(&head, &spiller, window))
            .await
            .map_err(|e| Error::Flush { reason: e.to_string() })??;
        self.ingest_stats().chunk_bytes_spilled.fetch_add(moved, std::sync::atomic::Ordering::Relaxed);
        Ok(moved)
    }

    /// Cuts every range that is due (or, with `everything`, all the heads hold),
    /// uploads the blocks, truncates the heads and then the WAL. Returns the metas
    /// of the uploaded blocks. One flush runs at a time.
    pub async fn flush(
        &self,
        store: &Arc<dyn ObjectStore>,
        policy: CutPolicy,
        everything: bool,
    ) -> Result<Vec<BlockMeta>> {
        let _one_at_a_time = self.flush_lock.lock().await;
        self.lower_future_floors(policy)?;
        let mut metas = Vec::new();
        let mut cut_any = false;
        for tenant in self.tenants() {
            let Some(head) = self.head(&tenant) else { continue };
            while let Some((before, floor)) = next_cut(&head, policy, everything, self.opts.creation_grace_ms) {
                // Seal the WAL segment under the same lock as the snapshot: every sample
                // the snapshot takes is in a segment up to the sealed one, and every
                // sample appended later is in a newer one.
                let (cut, rotated) = {
                    let mut g = head.inner.write();
                    (g.cut_marks(before, floor), self.wal_handle().request_rotate())
                };
                let sealed = rotated
                    .await
                    .map_err(|_| Error::WalWrite { reason: "wal writer stopped".into() })?
                    .map_err(|reason| Error::WalWrite { reason })?
                    - 1;
                if cut.marks.is_empty() {
                    break;
                }
                let t = tenant.as_str().to_string();
                let spool = self.dir().join(SPOOL_DIR);
                let h = head.clone();
                let (cut, block) = tokio::task::spawn_blocking(move || -> Result<_> {
                    let mut cut = cut;
                    order_by_labels(&h, &mut cut);
                    let mut b = BlockBuilder::spooled(&t, &spool)?;
                    for batch in cut.marks.chunks(CUT_BATCH_SERIES) {
                        let taken: Vec<_> = {
                            let g = h.inner.read();
                            batch.iter().map(|m| g.take(&cut, m)).collect()
                        };
                        for (m, snap) in batch.iter().zip(taken) {
                            let s = snap.decode(m.range())?;
                            b.add_series(&s.labels, &s.samples)?;
                        }
                    }
                    Ok((cut, b.finish(BlockOrigin::fresh())?))
                })
                .await
                .map_err(|e| Error::Flush { reason: e.to_string() })??;
                if let Some(block) = block {
                    upload(&**store, &block).await?;
                    tracing::info!(
                        tenant = %tenant,
                        block = %block.meta.ulid,
                        min_time = %strata_model::format_rfc3339_ms(block.meta.min_time),
                        max_time = %strata_model::format_rfc3339_ms(block.meta.max_time),
                        series = block.meta.stats.num_series,
                        samples = block.meta.stats.num_samples,
                        bytes = block.meta.data_bytes(),
                        "block uploaded"
                    );
                    metas.push(block.meta);
                }
                let removed = head.inner.write().truncate(&cut);
                if let Some(window) = self.opts.memory_window_ms {
                    // Truncation re-encoded the chunks spanning the cut's end in memory,
                    // spilled ones included: move those back out before the next cut.
                    if let Err(e) = self.spill_head(head.clone(), window).await {
                        tracing::warn!(error = %e, "moving head chunks to files failed");
                    }
                }
                cut_any = true;
                self.cuts.lock().entry(tenant.as_str().to_string()).or_default().record(before, floor, sealed);
                self.save_cuts()?;
                if removed == 0 {
                    tracing::warn!(tenant = %tenant, before, "cut removed nothing from the head; stopping this flush");
                    break;
                }
            }
        }
        if cut_any || self.wal_needs_truncation() {
            self.truncate_wal().await?;
        }
        Ok(metas)
    }

    /// Lowers every cut floor that is past [`max_floor`] (cut from a head holding a
    /// sample from a skewed clock, before such samples were refused, or by a version
    /// without the clock bound), so on-time samples are accepted again. What they
    /// add below the old floor goes into a later block that compaction merges.
    fn lower_future_floors(&self, policy: CutPolicy) -> Result<()> {
        let limit = max_floor(policy.range_ms, strata_model::now_ms());
        let mut lowered = false;
        for tenant in self.tenants() {
            let Some(head) = self.head(&tenant) else { continue };
            let mut g = head.inner.write();
            if g.cut_floor > limit {
                tracing::warn!(
                    tenant = %tenant,
                    floor = g.cut_floor,
                    lowered_to = limit,
                    "cut floor was ahead of the wall clock (a cut of samples from a skewed clock); lowered so on-time samples are accepted"
                );
                g.cut_floor = limit;
            }
            drop(g);
            if let Some(c) = self.cuts.lock().get_mut(tenant.as_str())
                && c.floor > limit
            {
                c.floor = limit;
                lowered = true;
            }
        }
        if lowered {
            self.save_cuts()?;
        }
        Ok(())
    }

    /// Whether replay left segments holding only uploaded samples (after a restart).
    fn wal_needs_truncation(&self) -> bool {
        self.cuts.lock().values().any(|c| !c.segments.is_empty())
            && self.wal_stats().segments.load(std::sync::atomic::Ordering::Relaxed) > 1
            && !self.wal_truncated_once.swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    /// Seals the active segment and drops the segments the heads no longer need.
    async fn truncate_wal(&self) -> Result<()> {
        let heads: Vec<Arc<Head>> = self.tenants().iter().filter_map(|t| self.head(t)).collect();
        let mins: BTreeMap<String, i64> =
            heads.iter().map(|h| (h.tenant().as_str().to_string(), h.inner.read().min_t)).collect();
        let wal = self.wal_handle();
        let dropped = tokio::task::spawn_blocking(move || {
            wal.truncate(|tenant| mins.get(tenant).copied().unwrap_or(i64::MAX), |out| write_checkpoint(&heads, out))
        })
        .await
        .map_err(|e| Error::Flush { reason: e.to_string() })??;
        if let Some(k) = dropped {
            // Cuts whose sealed segments are all gone no longer filter anything.
            for c in self.cuts.lock().values_mut() {
                c.segments.retain(|&(_, sealed)| sealed > k);
            }
            self.save_cuts()?;
        }
        Ok(())
    }

    /// Writes the cut records to `cuts.json` (atomically).
    fn save_cuts(&self) -> Result<()> {
        let floors = self.cuts.lock().clone();
        let path = self.dir().join(CUTS_FILE);
        let tmp = self.dir().join(format!("{CUTS_FILE}.tmp"));
        let body = serde_json::to_vec(&floors).expect("floors serialize");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| Error::io("write cut floors", &path, e))
    }
}

/// What has been cut from one tenant's head, kept in `cuts.json`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct TenantCuts {
    /// Samples older than this are refused unless the out-of-order window admits them.
    pub(crate) floor: i64,
    /// `(before, sealed)`: samples older than `before` in WAL segments up to `sealed`
    /// are in a block, so replay skips them.
    pub(crate) segments: Vec<(i64, u64)>,
    /// The end of the newest cut: blocks hold nothing newer.
    #[serde(default)]
    pub(crate) cut_before: i64,
}

impl TenantCuts {
    fn record(&mut self, before: i64, floor: i64, sealed: u64) {
        self.floor = self.floor.max(floor.min(before));
        self.cut_before = self.cut_before.max(before);
        self.segments.push((before, sealed));
    }

    /// Whether a sample at `t` read from WAL segment `seg` is already in a block.
    pub(crate) fn uploaded(&self, seg: u64, t: i64) -> bool {
        self.segments.iter().any(|&(before, sealed)| seg <= sealed && t < before)
    }
}

/// Reads `cuts.json` from `dir` (empty when absent).
pub(crate) fn load_cuts(dir: &Path) -> Result<BTreeMap<String, TenantCuts>> {
    let path = dir.join(CUTS_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::io("read cut floors", &path, std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(Error::io("read cut floors", &path, e)),
    }
}

/// The end of the oldest range to cut now, if any, and the floor to raise to.
///
/// A flush of everything cuts the newest range before it is complete; its floor
/// stays at that range's start, so samples still arriving for it (other series a
/// few seconds behind) are accepted and go into a later, overlapping block.
///
/// The wall clock bounds both: a head counts as no newer than the clock plus
/// `creation_grace_ms`, and the floor never passes the start of the range the clock
/// is in. So samples from a skewed clock (in the WAL from before they were refused)
/// can neither cut the current range early nor make on-time samples "too old".
fn next_cut(head: &Head, policy: CutPolicy, everything: bool, creation_grace_ms: i64) -> Option<(i64, i64)> {
    next_cut_at(head, policy, everything, creation_grace_ms, strata_model::now_ms())
}

fn next_cut_at(
    head: &Head,
    policy: CutPolicy,
    everything: bool,
    creation_grace_ms: i64,
    now: i64,
) -> Option<(i64, i64)> {
    let g = head.inner.read();
    if g.min_t == i64::MAX || g.samples == 0 {
        return None;
    }
    let r = policy.range_ms.max(1);
    let newest = g.max_t.min(now.saturating_add(creation_grace_ms.max(0)));
    let end = (g.min_t.div_euclid(r) + 1).saturating_mul(r);
    if everything {
        let before = end.min(g.max_t.saturating_add(1));
        let open_range_start = g.max_t.min(now).div_euclid(r).saturating_mul(r);
        return Some((before, before.min(open_range_start)));
    }
    (newest >= end.saturating_add(policy.grace_ms)).then_some((end, end.min(max_floor(r, now))))
}

/// The highest cut floor the wall clock allows: the start of the range it is in
/// (floors are range boundaries, and a cut's range ends at least the grace period
/// before the clock). A higher floor, from a skewed sample cut before this limit
/// existed, is lowered at start-up.
pub(crate) fn max_floor(policy_range_ms: i64, now: i64) -> i64 {
    let r = policy_range_ms.max(1);
    now.div_euclid(r).saturating_mul(r)
}

/// Series per checkpoint record: records are built one at a time under the read
/// lock, so a checkpoint costs one record's memory, not the whole series table's.
const CHECKPOINT_SERIES_PER_RECORD: usize = 4096;

/// Writes the series and metadata records of every head, for a WAL checkpoint.
fn write_checkpoint(heads: &[Arc<Head>], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut frame = Vec::new();
    let mut payload = Vec::new();
    for head in heads {
        series_frames(head, |f| out.write_all(f))?;
        let meta: Vec<MetadataEntry> = head
            .inner
            .read()
            .metadata
            .iter()
            .map(|(family, m)| MetadataEntry {
                family: family.clone(),
                kind: m.kind.clone(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            })
            .collect();
        if !meta.is_empty() {
            payload.clear();
            record::encode_metadata(&mut payload, head.tenant().as_str(), &meta);
            frame.clear();
            put_frame(&mut frame, TYPE_METADATA, &payload);
            out.write_all(&frame)?;
        }
    }
    Ok(())
}

/// Hands `out` framed series records declaring every series of `head` under its
/// id, [`CHECKPOINT_SERIES_PER_RECORD`] to a record, each built under the read lock.
/// Series created after the ids are listed are declared by their own records; series
/// are only removed by a flush's truncation, which callers exclude.
pub(crate) fn series_frames<E>(head: &Head, mut out: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let ids: Vec<u32> = head.inner.read().live.iter().collect();
    let (mut payload, mut frame) = (Vec::new(), Vec::new());
    for batch in ids.chunks(CHECKPOINT_SERIES_PER_RECORD) {
        payload.clear();
        {
            let g = head.inner.read();
            record::encode_series(
                &mut payload,
                head.tenant().as_str(),
                batch.iter().map(|&id| (u64::from(id), g.label_strs(id))),
            );
        }
        frame.clear();
        put_frame(&mut frame, TYPE_SERIES, &payload);
        out(&frame)?;
    }
    Ok(())
}

/// Sets cut floors loaded from disk on the heads (creating heads as needed).
pub(crate) fn apply_cuts(db: &Tsdb, cuts: &BTreeMap<String, TenantCuts>) {
    for (tenant, c) in cuts {
        let Ok(t) = TenantId::new(tenant) else { continue };
        let head = db.head_or_create(&t);
        let mut g = head.inner.write();
        g.cut_floor = g.cut_floor.max(c.floor);
        g.cut_before = g.cut_before.max(c.cut_before.max(c.floor));
    }
}

#[cfg(test)]
mod tests {
    use strata_block::{Bucket, BucketOptions, ObjStoreConfig};
    use strata_model::{MatchOp, Matcher, Querier, Sample, SelectHints, Series, merge_series};

    use super::*;
    use crate::db::TsdbOptions;
    use crate::head::{RejectReason, SeriesInput};
    use crate::wal::WalOptions;

    const H: i64 = 3_600_000;

    fn opts(ooo: i64) -> TsdbOptions {
        TsdbOptions {
            wal: WalOptions { segment_size: 16 << 10, ..Default::default() },
            out_of_order_window_ms: ooo,
            memory_window_ms: None,
            ..TsdbOptions::default()
        }
    }

    async fn write(db: &Tsdb, tenant: &TenantId, from: i64, to: i64, step: i64) {
        let mut t = from;
        while t < to {
            let samples: Vec<Sample> = (0..20)
                .map(|k| t + k * step)
                .filter(|&x| x < to)
                .map(|x| Sample::new(x, (x / 1000) as f64 * 0.5))
                .collect();
            t += 20 * step;
            for i in 0..5 {
                let inst = format!("i{i}");
                let labels = [("__name__", "m"), ("instance", inst.as_str())];
                let (_, c) = db.append(tenant, &[SeriesInput { labels: &labels, samples: &samples }], &[]).unwrap();
                c.wait().await.unwrap();
            }
        }
    }

    /// A temporary directory, a local bucket in it, and a tenant.
    fn setup(tenant: &str) -> (tempfile::TempDir, Arc<dyn ObjectStore>, Arc<Bucket>, TenantId) {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjStoreConfig::filesystem(dir.path().join("bucket")).build().unwrap();
        let bucket = Bucket::new(store.clone(), BucketOptions::default());
        (dir, store, bucket, TenantId::new(tenant).unwrap())
    }

    /// Everything the head and the bucket hold together, each sample once.
    async fn head_and_blocks(db: &Tsdb, bucket: &Arc<Bucket>, tenant: &TenantId) -> Vec<Series> {
        bucket.invalidate(tenant);
        merge_series(vec![everything(&db.querier(tenant)).await, everything(&bucket.querier(tenant.clone())).await])
    }

    async fn everything(q: &dyn Querier) -> Vec<Series> {
        let m = [Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap()];
        q.select(&SelectHints::range(i64::MIN, i64::MAX), &m).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cut_upload_truncate_and_restart_lose_nothing() {
        let (dir, store, bucket, tenant) = setup("team-a");
        let data = dir.path().join("data");
        let policy = CutPolicy::default();
        let expected = {
            let db = Tsdb::open(&data, opts(0)).unwrap();
            write(&db, &tenant, 0, 5 * H + 60_000, 15_000).await;
            let expected = everything(&db.querier(&tenant)).await;
            let segments_before = std::fs::read_dir(data.join("wal")).unwrap().count();
            // Head spans [0, 5h): ranges [0,2h) and [2h,4h) are due (4h + 1h grace <= newest).
            let metas = db.flush(&store, policy, false).await.unwrap();
            assert_eq!(
                metas.iter().map(|m| (m.min_time, m.max_time)).collect::<Vec<_>>(),
                [(0, 2 * H - 15_000 + 1), (2 * H, 4 * H - 15_000 + 1)]
            );
            assert_eq!(metas[0].stats.num_series, 5);
            let head_min = db.head(&tenant).unwrap().inner.read().min_t;
            assert_eq!(head_min, 4 * H);
            let segments_after = std::fs::read_dir(data.join("wal")).unwrap().count();
            assert!(segments_after < segments_before, "wal not truncated: {segments_before} -> {segments_after}");
            // Head and blocks together still hold everything, exactly once.
            let merged = head_and_blocks(&db, &bucket, &tenant).await;
            assert_eq!(merged, expected);
            // A sample for a cut range is refused with a clear reason.
            let labels = [("__name__", "m"), ("instance", "new")];
            let (o, c) =
                db.append(&tenant, &[SeriesInput { labels: &labels, samples: &[Sample::new(H, 1.0)] }], &[]).unwrap();
            c.wait().await.unwrap();
            assert_eq!(o.rejected[&RejectReason::TooOld].0, 1);
            expected
        };
        // Restart: checkpoint + remaining segments rebuild the head; the cut floor survives.
        let db = Tsdb::open(&data, opts(0)).unwrap();
        let head_part = everything(&db.querier(&tenant)).await;
        assert!(head_part.iter().all(|s| s.samples[0].t >= 4 * H), "uploaded data came back into the head");
        let merged = merge_series(vec![head_part, everything(&bucket.querier(tenant.clone())).await]);
        assert_eq!(merged, expected);
        assert_eq!(db.head(&tenant).unwrap().inner.read().cut_floor, 4 * H);
        // Flushing everything empties the head.
        let metas = db.flush(&store, policy, true).await.unwrap();
        assert_eq!(metas.len(), 1);
        assert!(everything(&db.querier(&tenant)).await.is_empty());
        bucket.invalidate(&tenant);
        assert_eq!(everything(&bucket.querier(tenant.clone())).await, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_of_many_series_is_taken_in_batches_in_label_order() {
        let (dir, store, bucket, tenant) = setup("t");
        let db = Tsdb::open(&dir.path().join("data"), opts(0)).unwrap();
        // Series created in an order unlike their label order, more than one batch,
        // with label sets of different lengths.
        let n = 2 * CUT_BATCH_SERIES + 77;
        for i in (0..n).rev() {
            let inst = format!("{:05}", (i * 7919) % n);
            let extra = if i % 3 == 0 { "a" } else { "" };
            let labels: Vec<(&str, &str)> = [("__name__", "m"), ("extra", extra), ("instance", inst.as_str())]
                .into_iter()
                .filter(|l| !l.1.is_empty())
                .collect();
            let samples: Vec<Sample> = (0..4).map(|k| Sample::new(k * 15_000, (i * 10 + k as usize) as f64)).collect();
            let (o, c) = db.append(&tenant, &[SeriesInput { labels: &labels, samples: &samples }], &[]).unwrap();
            c.wait().await.unwrap();
            assert_eq!(o.accepted, 4);
        }
        let expected = everything(&db.querier(&tenant)).await;
        let metas = db.flush(&store, CutPolicy::default(), true).await.unwrap();
        assert_eq!(metas.len(), 1);
        assert_eq!(metas[0].stats.num_series, n as u64);
        assert!(everything(&db.querier(&tenant)).await.is_empty());
        bucket.invalidate(&tenant);
        assert_eq!(everything(&bucket.querier(tenant.clone())).await, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn churned_series_leave_the_head_after_their_range_is_cut() {
        let (dir, store, bucket, tenant) = setup("t");
        let data = dir.path().join("data");
        let put = |db: &Tsdb, inst: &str, from: i64, to: i64| {
            let labels = [("__name__", "m"), ("instance", inst), ("pod", inst)];
            let samples: Vec<Sample> =
                (from / 60_000..to / 60_000).map(|k| Sample::new(k * 60_000, k as f64)).collect();
            let (o, c) = db.append(&tenant, &[SeriesInput { labels: &labels, samples: &samples }], &[]).unwrap();
            assert_eq!(o.accepted as usize, samples.len());
            c
        };
        let db = Tsdb::open(&data, opts(0)).unwrap();
        put(&db, "stays", 0, 3 * H + 60_000).wait().await.unwrap();
        put(&db, "churned", 0, H / 2).wait().await.unwrap();
        // A request whose every sample is refused (too old) still creates its series.
        let labels = [("__name__", "m"), ("instance", "refused")];
        let (_, c) = db.append(&tenant, &[SeriesInput { labels: &labels, samples: &[] }], &[]).unwrap();
        c.wait().await.unwrap();
        let expected = everything(&db.querier(&tenant)).await;
        let head = db.head(&tenant).unwrap();
        assert_eq!(head.stats().series, 3);
        let slots = head.inner.read().series.len();

        let metas = db.flush(&store, CutPolicy::default(), false).await.unwrap();
        assert_eq!(metas.len(), 1);
        // Only the series still written stays; its labels alone are indexed.
        assert_eq!(head.stats().series, 1);
        let q = db.querier(&tenant);
        let all = strata_model::TimeRange::all();
        assert_eq!(q.label_values("pod", all, &[]).await.unwrap(), ["stays"]);
        assert_eq!(q.label_values("instance", all, &[]).await.unwrap(), ["stays"]);
        assert!(head.inner.read().symbols.get("churned").is_none(), "symbol of a removed series kept");
        let merged = merge_series(vec![everything(&q).await, everything(&bucket.querier(tenant.clone())).await]);
        assert_eq!(merged, expected);

        // New series reuse the freed slots; a returning series starts anew.
        put(&db, "new", 3 * H, 3 * H + 120_000).wait().await.unwrap();
        put(&db, "churned", 3 * H, 3 * H + 120_000).wait().await.unwrap();
        assert_eq!(head.inner.read().series.len(), slots);
        assert_eq!(head.stats().series, 3);
        let expected = merge_series(vec![everything(&db.querier(&tenant)).await, expected]);
        drop(head);
        drop(db);

        // Replay rebuilds the same head from the checkpoint and segments.
        let db = Tsdb::open(&data, opts(0)).unwrap();
        assert_eq!(db.head(&tenant).unwrap().stats().series, 3);
        let merged = head_and_blocks(&db, &bucket, &tenant).await;
        assert_eq!(merged, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_freed_by_collection_stay_consistent_across_restarts() {
        let (dir, store, bucket, tenant) = setup("t");
        let data = dir.path().join("data");
        // Each series in 10-minute requests, in time order across series, so the WAL
        // (16 KiB segments) spreads over many segments.
        let put = |db: &Tsdb, insts: &[&str], from: i64, to: i64| {
            let mut commits = Vec::new();
            let mut t = from;
            while t < to {
                let end = (t + 600_000).min(to);
                for inst in insts {
                    let labels = [("__name__", "m"), ("instance", *inst)];
                    let samples: Vec<Sample> =
                        (t / 60_000..end / 60_000).map(|k| Sample::new(k * 60_000, (k * 3) as f64 + 0.5)).collect();
                    let (o, c) =
                        db.append(&tenant, &[SeriesInput { labels: &labels, samples: &samples }], &[]).unwrap();
                    assert_eq!(o.accepted as usize, samples.len(), "{inst}: {:?}", o.rejected);
                    commits.push(c);
                }
                t = end;
            }
            commits
        };
        let wait = |commits: Vec<crate::wal::Commit>| async move {
            for c in commits {
                c.wait().await.unwrap();
            }
        };
        let fillers: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
        let mut steady: Vec<&str> = vec!["a", "c"];
        steady.extend(fillers.iter().map(String::as_str));
        let db = Tsdb::open(&data, opts(0)).unwrap();
        wait(put(&db, &["b"], 0, H / 2)).await;
        wait(put(&db, &steady, 0, 3 * H + 60_000)).await;
        // [0, 2h) is cut: "b" is collected and its id freed; the WAL checkpoint has a gap.
        assert_eq!(db.flush(&store, CutPolicy::default(), false).await.unwrap().len(), 1);
        assert_eq!(db.head(&tenant).unwrap().stats().series, steady.len() as u64);
        // Logged before the restart under the old ids; the part after 4h is still
        // needed after the next cut, so its segments outlive the next WAL truncation.
        wait(put(&db, &steady, 3 * H + 60_000, 4 * H + 30 * 60_000)).await;
        drop(db);

        // Restart: series keep their logged ids, so records before and after agree.
        let db = Tsdb::open(&data, opts(0)).unwrap();
        wait(put(&db, &["d"], 4 * H + 30 * 60_000, 5 * H + 60_000)).await;
        wait(put(&db, &steady, 4 * H + 30 * 60_000, 5 * H + 60_000)).await;
        let expected = head_and_blocks(&db, &bucket, &tenant).await;
        assert_eq!(expected.len(), steady.len() + 2);
        // [2h, 4h) is cut and the WAL truncated: a new checkpoint, while the segments
        // logged before the restart with samples after 4h stay.
        assert_eq!(db.flush(&store, CutPolicy::default(), false).await.unwrap().len(), 1);
        assert_eq!(head_and_blocks(&db, &bucket, &tenant).await, expected);
        drop(db);

        // Later restarts attach every logged sample to its own series.
        for _ in 0..2 {
            let db = Tsdb::open(&data, opts(0)).unwrap();
            assert_eq!(head_and_blocks(&db, &bucket, &tenant).await, expected);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spilled_chunks_answer_like_memory_through_cut_and_restart() {
        let (dir, store, bucket, tenant) = setup("t");
        let data = dir.path().join("data");
        let o = TsdbOptions { memory_window_ms: Some(H / 2), ..opts(0) };
        let db = Tsdb::open(&data, o.clone()).unwrap();
        write(&db, &tenant, 0, 3 * H + 30_000, 15_000).await;
        let expected = everything(&db.querier(&tenant)).await;
        let head = db.head(&tenant).unwrap();
        let before = head.stats();
        let moved = db.spill().await.unwrap();
        let after = head.stats();
        assert!(moved > 0);
        assert_eq!(after.spilled_chunk_bytes, moved);
        assert_eq!(after.chunk_bytes + moved, before.chunk_bytes);
        // Everything but the last half hour left memory.
        assert!(after.chunk_bytes * 4 < before.chunk_bytes, "{after:?}");
        assert_eq!(db.spill().await.unwrap(), 0, "a second pass finds nothing new");
        assert_eq!(everything(&db.querier(&tenant)).await, expected);
        let q = db.querier(&tenant);
        let mid = q
            .select(&SelectHints::range(H, H + 60_000), &[Matcher::new(MatchOp::Equal, "instance", "i3").unwrap()])
            .await
            .unwrap();
        assert_eq!(mid[0].samples.len(), 5);

        // A cut reads spilled chunks and truncates across them (the chunk spanning
        // 2h is spilled and re-encoded).
        let metas = db.flush(&store, CutPolicy::default(), false).await.unwrap();
        assert_eq!(metas.len(), 1);
        let merged = head_and_blocks(&db, &bucket, &tenant).await;
        assert_eq!(merged, expected);
        drop((q, head));
        drop(db);

        // Restart: the old spill files are stale and removed; replay moves old
        // chunks to new files as it goes.
        let db = Tsdb::open(&data, o).unwrap();
        let files: Vec<_> =
            std::fs::read_dir(data.join("head_chunks")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, ["00000000"], "stale spill files left");
        assert!(db.head(&tenant).unwrap().stats().spilled_chunk_bytes > 0);
        let merged = head_and_blocks(&db, &bucket, &tenant).await;
        assert_eq!(merged, expected);
        // Flushing everything drops every chunk, and with them their files (but the
        // one still being appended to).
        db.spill().await.unwrap();
        assert!(std::fs::read_dir(data.join("head_chunks")).unwrap().count() >= 1);
        db.flush(&store, CutPolicy::default(), true).await.unwrap();
        assert!(std::fs::read_dir(data.join("head_chunks")).unwrap().count() <= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn late_samples_in_the_ooo_window_land_in_an_overlapping_block() {
        let (dir, store, bucket, tenant) = setup("t");
        let db = Tsdb::open(&dir.path().join("data"), opts(4 * H)).unwrap();
        write(&db, &tenant, 0, 3 * H + 30_000, 60_000).await;
        let metas = db.flush(&store, CutPolicy::default(), false).await.unwrap();
        assert_eq!(metas.len(), 1);
        // 30 s past a stored sample, in the cut range, inside the 4h window.
        let labels = [("__name__", "m"), ("instance", "i0")];
        let (o, c) = db
            .append(&tenant, &[SeriesInput { labels: &labels, samples: &[Sample::new(H + 30_000, 7.0)] }], &[])
            .unwrap();
        c.wait().await.unwrap();
        assert_eq!(o.accepted, 1);
        let metas = db.flush(&store, CutPolicy::default(), true).await.unwrap();
        assert_eq!(metas[0].min_time, H + 30_000);
        bucket.invalidate(&tenant);
        let got = everything(&bucket.querier(tenant.clone())).await;
        let i0 = got.iter().find(|s| s.labels.get("instance") == Some("i0")).unwrap();
        assert!(i0.samples.contains(&Sample::new(H + 30_000, 7.0)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_of_everything_keeps_accepting_the_open_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjStoreConfig::filesystem(dir.path().join("bucket")).build().unwrap();
        let tenant = TenantId::new("t").unwrap();
        let db = Tsdb::open(&dir.path().join("data"), opts(0)).unwrap();
        write(&db, &tenant, 0, 3 * H, 60_000).await;
        let metas = db.flush(&store, CutPolicy::default(), true).await.unwrap();
        assert_eq!(metas.len(), 2);
        // A series a few seconds behind the newest sample is still in the open range [2h, 4h).
        let labels = [("__name__", "m"), ("instance", "late")];
        let (o, c) = db
            .append(&tenant, &[SeriesInput { labels: &labels, samples: &[Sample::new(3 * H - 5_000, 1.0)] }], &[])
            .unwrap();
        c.wait().await.unwrap();
        assert_eq!(o.accepted, 1, "{:?}", o.rejected);
        // The closed range [0, 2h) is refused.
        let (o, c) =
            db.append(&tenant, &[SeriesInput { labels: &labels, samples: &[Sample::new(H, 1.0)] }], &[]).unwrap();
        c.wait().await.unwrap();
        assert_eq!(o.rejected[&RejectReason::TooOld].0, 1);
    }

    /// Appends one sample for series `name` and returns how it went.
    async fn put(db: &Tsdb, tenant: &TenantId, name: &str, t: i64) -> crate::AppendOutcome {
        let labels = [("__name__", "m"), ("instance", name)];
        let (o, c) =
            db.append(tenant, &[SeriesInput { labels: &labels, samples: &[Sample::new(t, 1.0)] }], &[]).unwrap();
        c.wait().await.unwrap();
        o
    }

    /// Issue 10, bug 1: one sample 3 h ahead used to be stored, make the flusher cut
    /// the current range, and from then on every on-time sample was refused as
    /// `too_old_range_already_in_block`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sample_from_a_skewed_clock_is_refused_and_cannot_wedge_the_tenant() {
        let (dir, store, _bucket, tenant) = setup("t");
        let db = Tsdb::open(&dir.path().join("data"), opts(0)).unwrap();
        let now = strata_model::now_ms();
        assert_eq!(put(&db, &tenant, "good", now).await.accepted, 1);
        let o = put(&db, &tenant, "skewed", now + 3 * H).await;
        assert_eq!(o.accepted, 0);
        assert_eq!(o.rejected[&RejectReason::TooFarInFuture].0, 1);
        assert!(o.rejected[&RejectReason::TooFarInFuture].1.contains("skewed"), "{:?}", o.rejected);
        // Within the grace period is fine.
        assert_eq!(put(&db, &tenant, "early", now + 5 * 60_000).await.accepted, 1);
        assert!(db.flush(&store, CutPolicy::default(), false).await.unwrap().is_empty());
        assert_eq!(put(&db, &tenant, "good", now + 15_000).await.accepted, 1);
    }

    /// A WAL written before the limit existed holds a sample 3 h ahead: after the
    /// upgrade, replay keeps it, but no cut treats the head as 3 h newer than the
    /// clock, so on-time samples go on being accepted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_skewed_sample_in_an_old_wal_cannot_wedge_the_tenant_after_an_upgrade() {
        let (dir, store, bucket, tenant) = setup("t");
        let data = dir.path().join("data");
        let now = strata_model::now_ms();
        {
            // The old behaviour: no limit on future samples.
            let old = TsdbOptions { creation_grace_ms: i64::MAX / 4, ..opts(0) };
            let db = Tsdb::open(&data, old).unwrap();
            assert_eq!(put(&db, &tenant, "good", now).await.accepted, 1);
            assert_eq!(put(&db, &tenant, "skewed", now + 3 * H).await.accepted, 1);
        }
        let db = Tsdb::open(&data, opts(0)).unwrap();
        assert_eq!(db.head(&tenant).unwrap().inner.read().max_t, now + 3 * H, "replay keeps the logged sample");
        for _ in 0..2 {
            db.flush(&store, CutPolicy::default(), false).await.unwrap();
        }
        let o = put(&db, &tenant, "good", now + 15_000).await;
        assert_eq!(o.accepted, 1, "{:?}", o.rejected);
        // Nothing is lost: the skewed sample is still readable, and a flush of
        // everything keeps the range the clock is in writable.
        db.flush(&store, CutPolicy::default(), true).await.unwrap();
        assert_eq!(put(&db, &tenant, "good", now + 30_000).await.accepted, 1);
        let all = head_and_blocks(&db, &bucket, &tenant).await;
        let skewed = all.iter().find(|s| s.labels.get("instance") == Some("skewed")).unwrap();
        assert_eq!(skewed.samples, [Sample::new(now + 3 * H, 1.0)]);
    }

    /// A tenant wedged by an earlier version (a cut floor past the range the clock
    /// is in, persisted in cuts.json) is freed by the next flush, across restarts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_floor_ahead_of_the_clock_is_lowered_by_the_next_flush() {
        let (dir, store, _bucket, tenant) = setup("t");
        let data = dir.path().join("data");
        let now = strata_model::now_ms();
        let wedged = (now.div_euclid(2 * H) + 2) * 2 * H;
        std::fs::create_dir_all(&data).unwrap();
        let cuts = serde_json::json!({ "t": { "floor": wedged, "segments": [], "cut_before": wedged } });
        std::fs::write(data.join(CUTS_FILE), cuts.to_string()).unwrap();
        {
            let db = Tsdb::open(&data, opts(0)).unwrap();
            assert_eq!(put(&db, &tenant, "good", now).await.rejected[&RejectReason::TooOld].0, 1, "the wedge");
            db.flush(&store, CutPolicy::default(), false).await.unwrap();
            assert_eq!(put(&db, &tenant, "good", now).await.accepted, 1);
        }
        let db = Tsdb::open(&data, opts(0)).unwrap();
        assert_eq!(db.head(&tenant).unwrap().inner.read().cut_floor, max_floor(2 * H, strata_model::now_ms()));
        assert_eq!(put(&db, &tenant, "good", now + 15_000).await.accepted, 1);
    }

    #[test]
    fn cuts_are_bounded_by_the_clock() {
        let head = Head::new(TenantId::new("t").unwrap());
        let now = 10 * H + 30 * 60_000; // 10:30, in the range [10h, 12h).
        {
            let mut g = head.inner.write();
            let (id, _) = g.get_or_create(&[("__name__", "m")]);
            g.put(id, Sample::new(now - 60_000, 1.0), i64::MIN);
            g.put(id, Sample::new(now + 3 * H, 1.0), i64::MIN);
        }
        let p = CutPolicy::default();
        // The head spans past 12h + 1h grace, but the clock does not.
        assert_eq!(next_cut_at(&head, p, false, 10 * 60_000, now), None);
        // Three hours later the range [10h, 12h) is due: floor at its end.
        assert_eq!(next_cut_at(&head, p, false, 10 * 60_000, now + 3 * H), Some((12 * H, 12 * H)));
        // Everything: the floor stays at the start of the range the clock is in.
        assert_eq!(next_cut_at(&head, p, true, 10 * 60_000, now), Some((12 * H, 10 * H)));
    }
}
