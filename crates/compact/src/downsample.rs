//! Downsampling: 5m aggregate blocks from raw blocks, 1h blocks from 5m blocks.
//!
//! ```text
//!   live blocks of resolution `from`, max_time at or before now - after,
//!   whose sources are not all in some live block of resolution `to`   (plan: pure)
//!     ─► Batches of whole series (bounded memory, see `stream`)
//!        raw ─► aggr::aggregate(5m)      5m ─► aggr::coarsen(1h)
//!     ─► AggrBlockBuilder (spool dir) ─► upload (meta.json last)
//!     ─► supersede: deletion mark on every live `to` block whose sources another holds
//!        (also after a pass killed between a copy and its marks)
//! ```
//!
//! Coverage is by source blocks (the level-1 blocks cut from the head), not by
//! block size: a block is downsampled once its data is old enough however far it
//! was compacted (Thanos waits for 40h-long blocks, so shorter ones were never
//! downsampled, its issue #7908). When compaction later merges downsampled sources
//! into a larger block, that block is downsampled again and its copy replaces the
//! smaller copies, so each resolution converges to the block layout of its source.
//!
//! Killed at any point, the bucket stays consistent: before the new `meta.json`
//! nothing changed; after it, the superseded copies hold the same windows and
//! queries take each window once until they are marked.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use strata_block::{
    AggrBlockBuilder, BlockInfo, BlockMeta, BlockOrigin, Bucket, RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW, aggr,
    upload,
};
use strata_model::TenantId;
use ulid::Ulid;

use crate::marks::mark_for_deletion;
use crate::merge::{GroupOutcome, stream_outcome};
use crate::stream::{Batches, StreamError};
use crate::{Error, Result, now_unix_ms};

/// When blocks are downsampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownsampleOptions {
    pub enabled: bool,
    /// Raw data this old (its block's newest sample) gets a 5m copy (Thanos: 40h).
    pub raw_to_5m_after: Duration,
    /// 5m data this old gets a 1h copy (Thanos: 10d).
    pub five_m_to_1h_after: Duration,
}

impl Default for DownsampleOptions {
    fn default() -> Self {
        DownsampleOptions {
            enabled: true,
            raw_to_5m_after: Duration::from_secs(40 * 3600),
            five_m_to_1h_after: Duration::from_secs(10 * 24 * 3600),
        }
    }
}

impl DownsampleOptions {
    /// The passes in order: `(from, to, after)`.
    pub fn steps(&self) -> [(i64, i64, Duration); 2] {
        [(RESOLUTION_RAW, RESOLUTION_5M, self.raw_to_5m_after), (RESOLUTION_5M, RESOLUTION_1H, self.five_m_to_1h_after)]
    }
}

/// The resolution a block of `resolution` is downsampled to, if any.
pub fn next_resolution(resolution: i64) -> Option<i64> {
    match resolution {
        RESOLUTION_RAW => Some(RESOLUTION_5M),
        RESOLUTION_5M => Some(RESOLUTION_1H),
        _ => None,
    }
}

/// The sources held by the blocks of `resolution` among `blocks`: what that
/// resolution covers.
pub fn covered_sources<'a>(blocks: impl IntoIterator<Item = &'a BlockMeta>, resolution: i64) -> HashSet<Ulid> {
    blocks
        .into_iter()
        .filter(|b| b.resolution == resolution)
        .flat_map(|b| b.compaction.sources.iter().copied())
        .collect()
}

/// Whether every source of `block` is in `covered` ([`covered_sources`] of the
/// next resolution): then its data has a downsampled copy.
pub fn is_covered(block: &BlockMeta, covered: &HashSet<Ulid>) -> bool {
    block.compaction.sources.iter().all(|s| covered.contains(s))
}

/// The blocks to downsample from `from` to `to` (pure): live blocks of `from`
/// whose newest sample is at or before `cutoff` and whose sources are not all
/// covered by live `to` blocks, oldest first. `blocks` are the tenant's live,
/// compactable blocks.
pub fn plan_downsample(blocks: &[BlockMeta], from: i64, to: i64, cutoff: i64) -> Vec<Ulid> {
    let covered = covered_sources(blocks, to);
    let mut todo: Vec<&BlockMeta> =
        blocks.iter().filter(|b| b.resolution == from && b.max_time <= cutoff && !is_covered(b, &covered)).collect();
    todo.sort_by_key(|b| (b.min_time, b.ulid));
    todo.into_iter().map(|b| b.ulid).collect()
}

/// Writes the `to` copy of `input` (the caller marks the copies it replaces with
/// [`supersede`]).
pub async fn downsample_block(bucket: &Bucket, input: &BlockInfo, to: i64, spool_dir: &Path) -> Result<GroupOutcome> {
    let from = input.meta.resolution;
    if next_resolution(from) != Some(to) {
        return Err(Error::Config(format!("block {} of resolution {from} cannot be downsampled to {to}", input.path)));
    }
    let inputs = [input];
    let batches = match Batches::open(bucket.store().clone(), &inputs, Clone::clone).await {
        Ok(b) => b,
        Err(e) => return stream_outcome(bucket, &inputs, e).await,
    };
    let origin = BlockOrigin {
        level: input.meta.compaction.level,
        sources: input.meta.compaction.sources.clone(),
        parents: vec![input.meta.ulid],
        resolution: to,
        deduplicated_replica_labels: input.meta.compaction.deduplicated_replica_labels.clone(),
    };
    let started = std::time::Instant::now();
    let (tenant, spool, path) = (input.path.tenant.clone(), spool_dir.to_path_buf(), input.path.clone());
    let handle = tokio::runtime::Handle::current();
    let encoded = tokio::task::spawn_blocking(move || {
        let mut batches = batches;
        let build = |e: strata_block::Error| StreamError::Failed(Error::block(&path, e));
        let mut builder = AggrBlockBuilder::spooled(tenant.as_str(), to, &spool).map_err(build)?;
        if from == RESOLUTION_RAW {
            while let Some(sets) = handle.block_on(batches.next_raw()) {
                for s in sets?.into_iter().flatten() {
                    builder.add_series(&s.labels, &aggr::aggregate(&s.samples, to)).map_err(build)?;
                }
            }
        } else {
            while let Some(series) = handle.block_on(batches.next_aggr()) {
                for s in series? {
                    builder.add_series(&s.labels, &aggr::coarsen(&s.windows, to)).map_err(build)?;
                }
            }
        }
        builder.finish(origin).map_err(build)
    })
    .await
    .map_err(|e| Error::Task { block: input.path.to_string(), reason: e.to_string() })?;
    let encoded = match encoded {
        Ok(e) => e,
        Err(e) => return stream_outcome(bucket, &inputs, e).await,
    };
    let store = bucket.store();
    let block = match &encoded {
        Some(block) => {
            let path = upload(&**store, block).await.map_err(|e| Error::block(&input.path, e))?;
            bucket.invalidate(&input.path.tenant);
            tracing::info!(
                block = %path,
                source = %input.path,
                resolution = to,
                series = block.meta.stats.num_series,
                windows = block.meta.stats.num_samples,
                source_samples = input.meta.stats.num_samples,
                bytes = block.meta.data_bytes(),
                source_bytes = input.meta.data_bytes(),
                elapsed = ?started.elapsed(),
                "downsampled"
            );
            Some(block.meta.clone())
        }
        None => None,
    };
    Ok(GroupOutcome::Merged { block, inputs: Vec::new() })
}

/// Copies of `resolution` made redundant by another (pure): a live copy whose
/// sources another live copy holds entirely (a smaller copy of the same data), or
/// holds exactly and is newer (a copy made twice). Returns `(redundant, by)`.
pub fn plan_supersede(blocks: &[BlockMeta], resolution: i64) -> Vec<(Ulid, Ulid)> {
    let copies: Vec<(&BlockMeta, HashSet<Ulid>)> = blocks
        .iter()
        .filter(|b| b.resolution == resolution)
        .map(|b| (b, b.compaction.sources.iter().copied().collect()))
        .collect();
    let mut out = Vec::new();
    for (a, sa) in &copies {
        let by = copies
            .iter()
            .find(|(b, sb)| b.ulid != a.ulid && sa.is_subset(sb) && (sa.len() < sb.len() || b.ulid > a.ulid));
        if let Some((b, _)) = by {
            out.push((a.ulid, b.ulid));
        }
    }
    out
}

/// Marks the redundant copies of `resolution` ([`plan_supersede`]): after a
/// larger block's copy is written, and after a pass that was killed between
/// writing a copy and marking what it replaces. Returns the blocks marked.
pub async fn supersede(bucket: &Bucket, tenant: &TenantId, resolution: i64) -> Result<Vec<Ulid>> {
    let blocks = bucket.blocks(tenant).await.map_err(|e| Error::bucket(tenant, e))?;
    let live: Vec<&BlockInfo> = blocks.iter().filter(|b| b.deletion_mark.is_none()).collect();
    let metas: Vec<BlockMeta> = live.iter().map(|b| b.meta.clone()).collect();
    let mut marked = Vec::new();
    for (old, by) in plan_supersede(&metas, resolution) {
        let Some(b) = live.iter().find(|b| b.meta.ulid == old) else { continue };
        mark_for_deletion(bucket, b, format!("downsampled again into {by}"), now_unix_ms()).await?;
        marked.push(old);
    }
    if !marked.is_empty() {
        bucket.invalidate(tenant);
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    use crate::tests::block_meta as meta;

    fn ids(v: &[Ulid]) -> Vec<u64> {
        v.iter().map(|u| u.timestamp_ms()).collect()
    }

    #[test]
    fn old_enough_uncovered_blocks_are_planned_whatever_their_size() {
        // A 2h block never compacted and a 2d block, both older than the cutoff;
        // a third too young.
        let blocks = [
            meta(1, 0, 2 * H, RESOLUTION_RAW, &[1]),
            meta(2, 2 * H, 50 * H, RESOLUTION_RAW, &[2, 3]),
            meta(4, 50 * H, 52 * H, RESOLUTION_RAW, &[4]),
        ];
        assert_eq!(ids(&plan_downsample(&blocks, RESOLUTION_RAW, RESOLUTION_5M, 50 * H)), [1, 2]);
    }

    #[test]
    fn covered_blocks_are_not_planned_again() {
        let mut blocks = vec![
            meta(1, 0, 2 * H, RESOLUTION_RAW, &[1]),
            meta(2, 2 * H, 4 * H, RESOLUTION_RAW, &[2]),
            meta(10, 0, 2 * H, RESOLUTION_5M, &[1]),
        ];
        assert_eq!(ids(&plan_downsample(&blocks, RESOLUTION_RAW, RESOLUTION_5M, 10 * H)), [2]);
        // Compaction merged the two: the merged block holds a source not yet copied.
        blocks.drain(..2);
        blocks.push(meta(3, 0, 4 * H, RESOLUTION_RAW, &[1, 2]));
        assert_eq!(ids(&plan_downsample(&blocks, RESOLUTION_RAW, RESOLUTION_5M, 10 * H)), [3]);
        // Sources covered by two copies together count as covered.
        blocks.push(meta(11, 2 * H, 4 * H, RESOLUTION_5M, &[2]));
        assert!(plan_downsample(&blocks, RESOLUTION_RAW, RESOLUTION_5M, 10 * H).is_empty());
    }

    #[test]
    fn smaller_and_repeated_copies_are_superseded() {
        let blocks = [
            meta(10, 0, 2 * H, RESOLUTION_5M, &[1]),
            meta(11, 2 * H, 4 * H, RESOLUTION_5M, &[2]),
            meta(12, 0, 4 * H, RESOLUTION_5M, &[1, 2]),
            // The same copy twice (a pass killed before its marks): the older goes.
            meta(13, 4 * H, 6 * H, RESOLUTION_5M, &[3]),
            meta(14, 4 * H, 6 * H, RESOLUTION_5M, &[3]),
            // Another resolution is not compared with.
            meta(20, 0, 4 * H, RESOLUTION_1H, &[1]),
            meta(1, 0, 4 * H, RESOLUTION_RAW, &[1, 2, 3]),
        ];
        let got: Vec<(u64, u64)> = plan_supersede(&blocks, RESOLUTION_5M)
            .into_iter()
            .map(|(a, b)| (a.timestamp_ms(), b.timestamp_ms()))
            .collect();
        assert_eq!(got, [(10, 12), (11, 12), (13, 14)]);
        assert!(plan_supersede(&blocks, RESOLUTION_1H).is_empty());
    }

    #[test]
    fn each_step_reads_its_own_resolution() {
        let blocks = [meta(1, 0, 2 * H, RESOLUTION_RAW, &[1]), meta(10, 0, 2 * H, RESOLUTION_5M, &[1])];
        assert!(plan_downsample(&blocks, RESOLUTION_RAW, RESOLUTION_5M, 10 * H).is_empty());
        assert_eq!(ids(&plan_downsample(&blocks, RESOLUTION_5M, RESOLUTION_1H, 10 * H)), [10]);
        assert_eq!(next_resolution(RESOLUTION_1H), None);
    }
}
