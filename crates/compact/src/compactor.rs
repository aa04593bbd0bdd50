//! The compactor loop: per tenant, retention, then compaction until the planner has
//! nothing left, then garbage collection; a pass every interval until shutdown.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_block::{BlockInfo, BlockMeta, Bucket};
use strata_model::TenantId;
use tokio::sync::watch;
use ulid::Ulid;

use crate::downsample::{DownsampleOptions, downsample_block, plan_downsample, supersede};
use crate::gc::collect_garbage;
use crate::merge::{GroupOutcome, compact_group};
use crate::planner::{DEFAULT_RANGES, dedup_groups, plan};
use crate::retention::{Retention, apply_retention};
use crate::stats::CompactorStats;
use crate::{Error, Result, now_unix_ms};

/// Rounds of planning per tenant and pass, a guard against a planner that never
/// runs dry (each round merges at least two blocks into one, so it should).
const MAX_ROUNDS: usize = 1_000;

/// How long a tenant's data is kept at each resolution.
pub type RetentionFn = Arc<dyn Fn(&TenantId) -> Retention + Send + Sync>;

/// What the compactor does.
#[derive(Clone)]
pub struct CompactorOptions {
    /// Block ranges in ms, strictly ascending. The first is the range of blocks cut
    /// from the head; each later one is a window size blocks are merged up to.
    pub ranges: Vec<i64>,
    /// How long a marked block stays before it is deleted, so queries that listed
    /// it can finish reading it.
    pub deletion_delay: Duration,
    /// Retention per tenant and resolution.
    pub retention: RetentionFn,
    /// When raw blocks get 5m copies and 5m blocks 1h copies.
    pub downsample: DownsampleOptions,
    /// Where merges and downsampling spool the blocks they write (under the data
    /// dir in the binary; the system temp dir may be small or a RAM disk).
    pub spool_dir: PathBuf,
    /// HA replica labels to deduplicate by (Thanos's `--deduplication.replica-label`):
    /// merged blocks keep one series per target, and a block not yet deduplicated by
    /// all of them is rewritten on its own.
    pub replica_labels: Vec<String>,
}

impl fmt::Debug for CompactorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactorOptions")
            .field("ranges", &self.ranges)
            .field("deletion_delay", &self.deletion_delay)
            .field("downsample", &self.downsample)
            .field("spool_dir", &self.spool_dir)
            .finish_non_exhaustive()
    }
}

impl Default for CompactorOptions {
    /// Thanos's ranges (2h, 12h, 2d, 14d) and downsampling (5m after 40h, 1h after
    /// 10d), a 2h deletion delay, data kept forever, spooling to the temp dir.
    fn default() -> Self {
        CompactorOptions {
            ranges: DEFAULT_RANGES.to_vec(),
            deletion_delay: Duration::from_secs(2 * 3600),
            retention: Arc::new(|_: &TenantId| Retention::default()),
            replica_labels: Vec::new(),
            downsample: DownsampleOptions::default(),
            spool_dir: std::env::temp_dir(),
        }
    }
}

impl CompactorOptions {
    /// Ranges from durations (as configured).
    pub fn ranges_from(durations: &[Duration]) -> Vec<i64> {
        durations.iter().map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).collect()
    }

    /// The same retention for every tenant.
    pub fn uniform_retention(retention: Retention) -> RetentionFn {
        Arc::new(move |_: &TenantId| retention)
    }

    pub fn validate(&self) -> Result<()> {
        if self.ranges.is_empty() {
            return Err(Error::Config("at least one block range is needed".into()));
        }
        if self.ranges.iter().any(|&r| r <= 0) {
            return Err(Error::Config(format!("block ranges must be positive: {:?}", self.ranges)));
        }
        if self.ranges.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Config(format!("block ranges must be strictly ascending: {:?}", self.ranges)));
        }
        Ok(())
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Tenants found in the bucket.
    pub tenants: usize,
    /// Groups of blocks merged.
    pub groups_merged: usize,
    /// Blocks written by those merges.
    pub blocks_written: usize,
    /// Blocks marked for deletion because they were merged into another.
    pub blocks_compacted: usize,
    /// Blocks marked for deletion by retention.
    pub blocks_expired: usize,
    /// Downsampled blocks written (5m and 1h).
    pub blocks_downsampled: usize,
    /// Marked blocks deleted.
    pub blocks_deleted: usize,
    /// Incomplete block directories (failed uploads) deleted.
    pub incomplete_deleted: usize,
    /// Blocks found unreadable and marked no-compact.
    pub blocks_no_compact: usize,
    /// Tenants whose work failed this pass (logged; retried on the next pass).
    pub failures: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tenants {}, groups merged {}, blocks written {}, compacted away {}, expired {}, downsampled {}, \
             deleted {}, incomplete deleted {}, marked no-compact {}, failures {}",
            self.tenants,
            self.groups_merged,
            self.blocks_written,
            self.blocks_compacted,
            self.blocks_expired,
            self.blocks_downsampled,
            self.blocks_deleted,
            self.incomplete_deleted,
            self.blocks_no_compact,
            self.failures
        )
    }
}

/// Compaction, retention and garbage collection over every tenant of a bucket.
/// One compactor per bucket: two working on the same bucket would merge the same
/// blocks twice (harmless to the data, wasteful).
#[derive(Debug)]
pub struct Compactor {
    bucket: Arc<Bucket>,
    opts: CompactorOptions,
    stats: Arc<CompactorStats>,
}

impl Compactor {
    pub fn new(bucket: Arc<Bucket>, opts: CompactorOptions) -> Result<Compactor> {
        opts.validate()?;
        Ok(Compactor { bucket, opts, stats: Arc::default() })
    }

    /// Counters, live while the compactor runs.
    pub fn stats(&self) -> Arc<CompactorStats> {
        self.stats.clone()
    }

    /// One pass over every tenant. A tenant whose work fails is logged and counted
    /// in [`Report::failures`], and the others still run; only failing to list the
    /// tenants at all is an error.
    pub async fn run_once(&self) -> Result<Report> {
        CompactorStats::add(&self.stats.runs, 1);
        clean_spool(&self.opts.spool_dir, SPOOL_MAX_AGE);
        let tenants = match self.bucket.tenants().await {
            Ok(t) => t,
            Err(e) => {
                CompactorStats::add(&self.stats.run_failures, 1);
                return Err(Error::bucket("*", e));
            }
        };
        let mut report = Report { tenants: tenants.len(), ..Report::default() };
        for tenant in &tenants {
            if let Err(e) = self.tenant_pass(tenant, &mut report).await {
                report.failures += 1;
                tracing::error!(%tenant, error = %e, "compactor pass failed for tenant");
            }
        }
        if report.failures > 0 {
            CompactorStats::add(&self.stats.run_failures, 1);
        } else {
            self.stats.last_success_unix_seconds.store(now_unix_ms() / 1000, Ordering::Relaxed);
        }
        Ok(report)
    }

    /// Passes every `interval` (the first at once) until `shutdown` turns true or
    /// its sender is dropped. Errors are logged and the loop goes on.
    ///
    /// Shutdown does not wait for a pass to end: the pass is dropped where it
    /// stands, which leaves the bucket consistent (see the `merge` module) — at
    /// worst an incomplete upload for garbage collection, or a merged block whose
    /// inputs are not yet marked, which the next pass deduplicates.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let ranges: Vec<String> = self
            .opts
            .ranges
            .iter()
            .map(|ms| humantime::format_duration(Duration::from_millis(u64::try_from(*ms).unwrap_or(0))).to_string())
            .collect();
        tracing::info!(interval = %humantime::format_duration(interval), ranges = ?ranges, "compactor started");
        loop {
            tokio::select! {
                r = self.run_once() => match r {
                    Ok(report) if report.failures > 0 => tracing::warn!(%report, "compactor pass had failures"),
                    Ok(report) if report == (Report { tenants: report.tenants, ..Report::default() }) => {
                        tracing::debug!(tenants = report.tenants, "compactor pass: nothing to do");
                    }
                    Ok(report) => tracing::info!(%report, "compactor pass done"),
                    Err(e) => tracing::error!(error = %e, "compactor pass failed"),
                },
                () = stopped(&mut shutdown) => break,
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stopped(&mut shutdown) => break,
            }
        }
        tracing::info!("compactor stopped");
    }

    async fn tenant_pass(&self, tenant: &TenantId, report: &mut Report) -> Result<()> {
        // Other processes (the ingester uploading, another tool) change the bucket.
        self.bucket.invalidate(tenant);
        let retention = (self.opts.retention)(tenant);
        let downsampling = self.opts.downsample.enabled;
        let marked = apply_retention(&self.bucket, tenant, &retention, downsampling, now_unix_ms()).await?;
        report.blocks_expired += marked.len();
        CompactorStats::add(&self.stats.blocks_marked_for_deletion, marked.len() as u64);
        self.compact_tenant(tenant, report).await?;
        if downsampling {
            self.downsample_tenant(tenant, report).await?;
        }
        let gc = collect_garbage(&self.bucket, tenant, self.opts.deletion_delay, now_unix_ms()).await?;
        report.blocks_deleted += gc.deleted.len();
        report.incomplete_deleted += gc.incomplete.len();
        CompactorStats::add(&self.stats.blocks_deleted, (gc.deleted.len() + gc.incomplete.len()) as u64);
        Ok(())
    }

    async fn compact_tenant(&self, tenant: &TenantId, report: &mut Report) -> Result<()> {
        for round in 0.. {
            let blocks = self.bucket.blocks(tenant).await.map_err(|e| Error::bucket(tenant, e))?;
            let live = workable(&blocks);
            // Downsampled blocks are never merged: each is the copy of one raw block
            // and is replaced when that block's data is compacted further.
            let metas: Vec<BlockMeta> = live.values().filter(|b| b.meta.is_raw()).map(|b| b.meta.clone()).collect();
            let mut groups = plan(&metas, &self.opts.ranges);
            groups.extend(dedup_groups(&metas, &groups, &self.opts.replica_labels));
            if groups.is_empty() {
                return Ok(());
            }
            if round >= MAX_ROUNDS {
                tracing::warn!(%tenant, groups = groups.len(), "compaction still planning after many rounds; next pass");
                return Ok(());
            }
            for g in groups {
                let inputs: Vec<BlockInfo> =
                    g.blocks.iter().filter_map(|u| live.get(u)).map(|b| (*b).clone()).collect();
                tracing::debug!(
                    %tenant,
                    kind = ?g.kind,
                    blocks = inputs.len(),
                    min_time = %strata_model::format_rfc3339_ms(g.min_time),
                    max_time = %strata_model::format_rfc3339_ms(g.max_time),
                    "merging group"
                );
                match compact_group(&self.bucket, &inputs, &self.opts.replica_labels, &self.opts.spool_dir).await {
                    Ok(GroupOutcome::Merged { block, inputs }) => {
                        report.groups_merged += 1;
                        report.blocks_compacted += inputs.len();
                        report.blocks_written += usize::from(block.is_some());
                        CompactorStats::add(&self.stats.compactions, 1);
                        CompactorStats::add(&self.stats.blocks_written, u64::from(block.is_some()));
                        CompactorStats::add(&self.stats.blocks_marked_for_deletion, inputs.len() as u64);
                    }
                    Ok(GroupOutcome::Unreadable { blocks }) => {
                        report.blocks_no_compact += blocks.len();
                        CompactorStats::add(&self.stats.blocks_marked_no_compact, blocks.len() as u64);
                    }
                    Ok(GroupOutcome::Stale { block }) => {
                        tracing::info!(%tenant, %block, "block vanished while compacting; listing again");
                        self.bucket.invalidate(tenant);
                        break;
                    }
                    Err(e) => {
                        CompactorStats::add(&self.stats.compaction_failures, 1);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Raw to 5m, then 5m to 1h (so a pass can take fresh 5m copies further).
    async fn downsample_tenant(&self, tenant: &TenantId, report: &mut Report) -> Result<()> {
        for (from, to, after) in self.opts.downsample.steps() {
            let cutoff = now_unix_ms().saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
            let blocks = self.bucket.blocks(tenant).await.map_err(|e| Error::bucket(tenant, e))?;
            let live = workable(&blocks);
            let metas: Vec<BlockMeta> = live.values().map(|b| b.meta.clone()).collect();
            for id in plan_downsample(&metas, from, to, cutoff) {
                let Some(input) = live.get(&id) else { continue };
                match downsample_block(&self.bucket, input, to, &self.opts.spool_dir).await {
                    Ok(GroupOutcome::Merged { block, .. }) => {
                        report.blocks_downsampled += usize::from(block.is_some());
                        CompactorStats::add(&self.stats.downsamplings, u64::from(block.is_some()));
                    }
                    Ok(GroupOutcome::Unreadable { blocks }) => {
                        report.blocks_no_compact += blocks.len();
                        CompactorStats::add(&self.stats.blocks_marked_no_compact, blocks.len() as u64);
                    }
                    Ok(GroupOutcome::Stale { block }) => {
                        tracing::info!(%tenant, %block, "block vanished while downsampling; next pass");
                        self.bucket.invalidate(tenant);
                        return Ok(());
                    }
                    Err(e) => {
                        CompactorStats::add(&self.stats.downsampling_failures, 1);
                        return Err(e);
                    }
                }
            }
            self.bucket.invalidate(tenant);
            let superseded = supersede(&self.bucket, tenant, to).await?;
            CompactorStats::add(&self.stats.blocks_marked_for_deletion, superseded.len() as u64);
        }
        Ok(())
    }
}

/// Spool files older than this are left over from a killed process (a block being
/// written is spooled for as long as its merge takes, far less than this).
const SPOOL_MAX_AGE: Duration = Duration::from_secs(3600);

/// Deletes spool files older than `max_age`: what a killed merge or downsampling
/// left behind. Another compactor on the same data dir may be spooling, so young
/// files stay. Failures are logged only.
fn clean_spool(dir: &std::path::Path, max_age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut removed = 0;
    for e in entries.flatten() {
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .is_some_and(|t| t.elapsed().is_ok_and(|age| age >= max_age));
        if old && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), files = removed, "removed spool files left by a killed compactor");
    }
}

/// The blocks maintenance may work on: neither marked for deletion nor no-compact.
fn workable(blocks: &[BlockInfo]) -> HashMap<Ulid, &BlockInfo> {
    blocks.iter().filter(|b| b.deletion_mark.is_none() && b.no_compact.is_none()).map(|b| (b.meta.ulid, b)).collect()
}

/// Resolves once shutdown is requested (the value turns true or the sender goes).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|&stop| stop).await;
}
