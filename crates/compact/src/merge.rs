//! Merging one group of blocks into one.
//!
//! ```text
//!   inputs ─► Batches (series tables only; samples in batches of whole series, see `stream`)
//!          ─► per batch: merge_series (identical timestamps once) ─► offline HA dedup
//!             ─► BlockBuilder spooling to the spool dir (blocking thread)
//!          ─► unreadable input? no-compact mark on it, nothing uploaded, plan again
//!          ─► upload (data files, meta.json last) ─► deletion mark on every input
//! ```
//!
//! Every step leaves the bucket consistent if the process dies after it: before the
//! new `meta.json` exists nothing changed; after it, the inputs and the new block
//! hold the same data until the inputs are marked, and queries deduplicate.

use std::collections::BTreeSet;
use std::path::Path;

use strata_block::{BlockBuilder, BlockInfo, BlockMeta, BlockOrigin, Bucket, upload};
use strata_model::Series;
use ulid::Ulid;

use crate::marks::{mark_for_deletion, mark_no_compact};
use crate::stream::{Batches, StreamError};
use crate::{Error, Result, now_unix_ms};

/// What became of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOutcome {
    /// The inputs were merged into `block` (`None` if they held no samples at all)
    /// and now carry deletion marks.
    Merged { block: Option<BlockMeta>, inputs: Vec<Ulid> },
    /// These inputs could not be read and now carry no-compact marks (block id and
    /// reason). Nothing was written; the rest of the group is planned again.
    Unreadable { blocks: Vec<(Ulid, String)> },
    /// An input vanished (its `meta.json` is gone: deleted by another process).
    /// Nothing was written; the caller lists again.
    Stale { block: Ulid },
}

/// Merges `inputs` (blocks of one tenant and resolution) into one block. Inputs
/// are merged in `(min_time, ulid)` order: at an identical timestamp, the sample of
/// the earlier block is kept.
///
/// With `replica_labels`, series that differ only in them (HA replicas) become one
/// series without them ([`strata_model::dedup_series`]; counters, by their
/// Prometheus naming, never go backwards at a switch of replicas), and `meta.json`
/// records the labels.
///
/// Errors only when the store fails (worth retrying later); unreadable inputs are
/// an [`GroupOutcome::Unreadable`] outcome, not an error.
pub async fn compact_group(
    bucket: &Bucket,
    inputs: &[BlockInfo],
    replica_labels: &[String],
    spool_dir: &Path,
) -> Result<GroupOutcome> {
    let mut inputs: Vec<&BlockInfo> = inputs.iter().collect();
    inputs.sort_by_key(|b| (b.meta.min_time, b.meta.ulid));
    let Some(first) = inputs.first() else {
        return Ok(GroupOutcome::Merged { block: None, inputs: Vec::new() });
    };
    let tenant = first.path.tenant.clone();
    let resolution = first.meta.resolution;
    if let Some(b) = inputs.iter().find(|b| b.path.tenant != tenant || b.meta.resolution != resolution) {
        return Err(Error::Config(format!("block {} does not belong in a group of {}", b.path, first.path)));
    }

    let store = bucket.store().clone();
    let names: Vec<&str> = replica_labels.iter().map(String::as_str).collect();
    let batches =
        Batches::open(store.clone(), &inputs, |l| if names.is_empty() { l.clone() } else { l.without(&names) }).await;
    let batches = match batches {
        Ok(b) => b,
        Err(e) => return stream_outcome(bucket, &inputs, e).await,
    };
    let sources: BTreeSet<Ulid> = inputs.iter().flat_map(|b| b.meta.compaction.sources.iter().copied()).collect();
    let deduplicated: BTreeSet<String> = inputs
        .iter()
        .flat_map(|b| b.meta.compaction.deduplicated_replica_labels.iter().cloned())
        .chain(replica_labels.iter().cloned())
        .collect();
    let origin = BlockOrigin {
        level: inputs.iter().map(|b| b.meta.compaction.level).max().unwrap_or(0) + 1,
        sources: sources.into_iter().collect(),
        parents: inputs.iter().map(|b| b.meta.ulid).collect(),
        resolution,
        deduplicated_replica_labels: deduplicated.into_iter().collect(),
    };
    let replica_labels = replica_labels.to_vec();
    let started = std::time::Instant::now();
    let t = tenant.clone();
    let spool = spool_dir.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    let path = first.path.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let mut batches = batches;
        let build = |e: strata_block::Error| StreamError::Failed(Error::block(&path, e));
        let mut builder = BlockBuilder::spooled(t.as_str(), &spool).map_err(build)?;
        while let Some(sets) = handle.block_on(batches.next_raw()) {
            let merged = strata_model::merge_series(sets?);
            for s in dedup_replicas(merged, &replica_labels) {
                builder.add_series(&s.labels, &s.samples).map_err(build)?;
            }
        }
        builder.finish(origin).map_err(build)
    })
    .await
    .map_err(|e| Error::Task { block: first.path.to_string(), reason: e.to_string() })?;
    let encoded = match encoded {
        Ok(e) => e,
        Err(e) => return stream_outcome(bucket, &inputs, e).await,
    };

    let new_meta = match &encoded {
        Some(block) => {
            let path = upload(&*store, block).await.map_err(|e| Error::block(&first.path, e))?;
            bucket.invalidate(&tenant);
            tracing::info!(
                block = %path,
                inputs = inputs.len(),
                level = block.meta.compaction.level,
                series = block.meta.stats.num_series,
                samples = block.meta.stats.num_samples,
                bytes = block.meta.data_bytes(),
                elapsed = ?started.elapsed(),
                "compacted"
            );
            Some(block.meta.clone())
        }
        None => None,
    };
    let reason = match &new_meta {
        Some(m) => format!("compacted into {}", m.ulid),
        None => "compacted: no samples".to_string(),
    };
    for b in &inputs {
        mark_for_deletion(bucket, b, reason.clone(), now_unix_ms()).await?;
    }
    Ok(GroupOutcome::Merged { block: new_meta, inputs: inputs.iter().map(|b| b.meta.ulid).collect() })
}

/// The outcome of a streamed read that stopped: a damaged input is marked
/// no-compact (nothing was written), a vanished one makes the caller list again.
pub(crate) async fn stream_outcome(bucket: &Bucket, inputs: &[&BlockInfo], e: StreamError) -> Result<GroupOutcome> {
    match e {
        StreamError::Failed(e) => Err(e),
        StreamError::Stale { input } => Ok(GroupOutcome::Stale { block: inputs[input].meta.ulid }),
        StreamError::Unreadable { input, reason } => {
            let b = inputs[input];
            tracing::warn!(block = %b.path, %reason, "unreadable block, marked no-compact");
            mark_no_compact(bucket, b, reason.clone(), now_unix_ms()).await?;
            Ok(GroupOutcome::Unreadable { blocks: vec![(b.meta.ulid, reason)] })
        }
    }
}

/// Offline HA dedup of merged series: counters (by Prometheus's naming conventions:
/// `_total`, `_count`, `_sum`, `_bucket`) get the counter rule, everything else the
/// plain merge. Stored data has no type, and a query's `rate` over a deduplicated
/// block sees one series, so the adjustment has to happen here.
fn dedup_replicas(series: Vec<Series>, replica_labels: &[String]) -> Vec<Series> {
    if replica_labels.is_empty() {
        return series;
    }
    let names: Vec<&str> = replica_labels.iter().map(String::as_str).collect();
    let is_counter = |s: &Series| {
        s.labels.metric_name().is_some_and(|n| ["_total", "_count", "_sum", "_bucket"].iter().any(|x| n.ends_with(x)))
    };
    let (counters, others): (Vec<Series>, Vec<Series>) = series.into_iter().partition(is_counter);
    let mut out = strata_model::dedup_series(counters, &names, true);
    out.extend(strata_model::dedup_series(others, &names, false));
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}
