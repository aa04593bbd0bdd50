//! The compactor's counters, shared with whoever exposes `/metrics`. Metric names
//! live here and nowhere else.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Metric names, for the server's `/metrics`.
pub mod metric_names {
    pub const RUNS: &str = "strata_compactor_runs_total";
    pub const RUN_FAILURES: &str = "strata_compactor_run_failures_total";
    pub const COMPACTIONS: &str = "strata_compactor_compactions_total";
    pub const COMPACTION_FAILURES: &str = "strata_compactor_compaction_failures_total";
    pub const BLOCKS_WRITTEN: &str = "strata_compactor_blocks_written_total";
    pub const BLOCKS_MARKED_FOR_DELETION: &str = "strata_compactor_blocks_marked_for_deletion_total";
    pub const BLOCKS_MARKED_NO_COMPACT: &str = "strata_compactor_blocks_marked_no_compact_total";
    pub const BLOCKS_DELETED: &str = "strata_compactor_blocks_deleted_total";
    pub const DOWNSAMPLINGS: &str = "strata_compactor_downsamplings_total";
    pub const DOWNSAMPLING_FAILURES: &str = "strata_compactor_downsampling_failures_total";
    pub const LAST_SUCCESS: &str = "strata_compactor_last_successful_run_timestamp_seconds";
}

/// Counters since start-up. Updated as work happens, so a scrape during a long
/// pass sees its progress.
#[derive(Debug, Default)]
pub struct CompactorStats {
    /// Passes started (compaction, retention and garbage collection over all tenants).
    pub runs: AtomicU64,
    /// Passes in which some tenant's work failed (it is retried on the next pass).
    pub run_failures: AtomicU64,
    /// Groups of blocks merged into one.
    pub compactions: AtomicU64,
    /// Merges that failed (the store was unavailable, or a bug).
    pub compaction_failures: AtomicU64,
    /// Blocks uploaded by compaction.
    pub blocks_written: AtomicU64,
    /// Deletion marks written (blocks compacted away or expired by retention).
    pub blocks_marked_for_deletion: AtomicU64,
    /// Blocks found unreadable and marked no-compact.
    pub blocks_marked_no_compact: AtomicU64,
    /// Downsampled blocks written (5m from raw, 1h from 5m).
    pub downsamplings: AtomicU64,
    /// Downsamplings that failed (the store was unavailable, or a bug).
    pub downsampling_failures: AtomicU64,
    /// Block directories deleted (marked blocks past the delay, abandoned uploads).
    pub blocks_deleted: AtomicU64,
    /// Unix seconds at the end of the last pass without failures (0: none yet).
    pub last_success_unix_seconds: AtomicI64,
}

/// One value of [`CompactorStats::metrics`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    /// `true` for a counter, `false` for a gauge.
    pub counter: bool,
    pub value: f64,
}

impl CompactorStats {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Every counter with its name and help text, for an exporter.
    pub fn metrics(&self) -> Vec<Metric> {
        let c =
            |name, help, v: &AtomicU64| Metric { name, help, counter: true, value: v.load(Ordering::Relaxed) as f64 };
        vec![
            c(metric_names::RUNS, "Compactor passes started.", &self.runs),
            c(metric_names::RUN_FAILURES, "Compactor passes in which some tenant's work failed.", &self.run_failures),
            c(metric_names::COMPACTIONS, "Groups of blocks merged into one.", &self.compactions),
            c(metric_names::COMPACTION_FAILURES, "Block merges that failed.", &self.compaction_failures),
            c(metric_names::BLOCKS_WRITTEN, "Blocks uploaded by compaction.", &self.blocks_written),
            c(
                metric_names::BLOCKS_MARKED_FOR_DELETION,
                "Deletion marks written by compaction and retention.",
                &self.blocks_marked_for_deletion,
            ),
            c(
                metric_names::BLOCKS_MARKED_NO_COMPACT,
                "Blocks found unreadable and excluded from compaction.",
                &self.blocks_marked_no_compact,
            ),
            c(metric_names::DOWNSAMPLINGS, "Downsampled blocks written (5m and 1h).", &self.downsamplings),
            c(metric_names::DOWNSAMPLING_FAILURES, "Downsamplings that failed.", &self.downsampling_failures),
            c(metric_names::BLOCKS_DELETED, "Block directories deleted from the bucket.", &self.blocks_deleted),
            Metric {
                name: metric_names::LAST_SUCCESS,
                help: "Unix time of the end of the last compactor pass without failures.",
                counter: false,
                value: self.last_success_unix_seconds.load(Ordering::Relaxed) as f64,
            },
        ]
    }
}
