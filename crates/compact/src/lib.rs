//! The compactor: keeps a bucket of blocks few, large and within retention, as
//! Thanos's compactor does.
//!
//! Blocks are immutable; every change is a new block or a new marker, so readers
//! listing the bucket at any moment see complete data (possibly twice, which they
//! deduplicate), never a gap.
//!
//! ```text
//!   Bucket::tenants ─► per tenant, each pass:
//!     retention per resolution: max_time <= now - retention
//!       (raw and 5m only once the next resolution covers them) ───► deletion-mark.json
//!     compaction, until the planner has nothing left:
//!       Bucket::blocks ─► live (unmarked) metas ─► planner (pure)
//!         ─► groups: vertical (overlaps) first, then horizontal (aligned windows)
//!         ─► merge (raw blocks only): series in batches ─► merge_series ─► BlockBuilder ─► upload
//!              ─► deletion-mark.json on every input
//!              └► unreadable input ─► no-compact-mark.json, plan again without it
//!     downsampling: raw older than raw_to_5m_after ─► 5m block; 5m older than
//!       5m_to_1h_after ─► 1h block (streamed in batches; smaller copies superseded)
//!     gc: deletion mark older than deletion_delay ─► delete_block
//!         no meta.json, newest file older than max(deletion_delay, 1h) ─► delete_block
//!   CompactorStats (atomics) ─► /metrics
//! ```

mod compactor;
mod downsample;
mod error;
mod gc;
mod marks;
mod merge;
mod planner;
mod retention;
mod stats;
mod stream;

#[cfg(test)]
mod tests;

pub use compactor::{Compactor, CompactorOptions, Report, RetentionFn};
pub use downsample::{
    DownsampleOptions, covered_sources, downsample_block, is_covered, next_resolution, plan_downsample, plan_supersede,
    supersede,
};
pub use error::{Error, Result};
pub use gc::{GcReport, MIN_INCOMPLETE_AGE, collect_garbage};
pub use merge::{GroupOutcome, compact_group};
pub use planner::{DEFAULT_RANGES, Group, GroupKind, dedup_groups, plan};
pub use retention::{RETENTION_REASON, Retention, apply_retention};
pub use stats::{CompactorStats, Metric, metric_names};

/// Wall-clock time in Unix milliseconds.
pub(crate) use strata_model::now_ms as now_unix_ms;
