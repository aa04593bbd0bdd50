//! Which blocks to merge next. Pure: block metas in, groups out, no I/O.
//!
//! One call plans one round; the compactor merges the groups, lists again and
//! asks again until nothing is left. Per resolution (never mixed):
//!
//! ```text
//!   overlapping blocks (copies, out-of-order blocks) ─► vertical groups, first
//!   otherwise, for each range r after the first, smallest first:
//!     blocks entirely inside one window [k*r, (k+1)*r), at least 2 of them,
//!     window complete (the newest block ends at or after its end; a window its
//!     blocks cover entirely is complete by that rule too)
//!       ─► horizontal groups of the first range that has any
//! ```
//!
//! No group spans more than the largest range, so no block produced grows past it.

use std::collections::BTreeMap;

use strata_block::BlockMeta;
use ulid::Ulid;

const HOUR_MS: i64 = 3_600_000;

/// Thanos's default block ranges: 2h, 12h, 2d, 14d (in ms).
pub const DEFAULT_RANGES: [i64; 4] = [2 * HOUR_MS, 12 * HOUR_MS, 48 * HOUR_MS, 14 * 24 * HOUR_MS];

/// Why the blocks of a [`Group`] are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// The blocks overlap in time: merging them deduplicates.
    Vertical,
    /// The blocks sit side by side in one window of `range` ms.
    Horizontal { range: i64 },
    /// One block, rewritten to deduplicate HA replicas (offline dedup).
    Deduplicate,
}

/// Blocks to merge into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub kind: GroupKind,
    pub resolution: i64,
    /// At least two (one for [`GroupKind::Deduplicate`]), sorted by `(min_time,
    /// ulid)`: the order in which they are merged, so at an identical timestamp the
    /// sample of the earlier block wins.
    pub blocks: Vec<Ulid>,
    /// Smallest `min_time` of the blocks (inclusive).
    pub min_time: i64,
    /// Largest `max_time` of the blocks (exclusive).
    pub max_time: i64,
}

impl Group {
    fn new(kind: GroupKind, blocks: &[&BlockMeta]) -> Group {
        let mut blocks = blocks.to_vec();
        blocks.sort_by_key(|b| (b.min_time, b.ulid));
        Group {
            kind,
            resolution: blocks[0].resolution,
            min_time: blocks.iter().map(|b| b.min_time).min().unwrap_or_default(),
            max_time: blocks.iter().map(|b| b.max_time).max().unwrap_or_default(),
            blocks: blocks.iter().map(|b| b.ulid).collect(),
        }
    }
}

/// Plans one round for one tenant. `blocks` are the tenant's live blocks that may
/// be compacted (no deletion mark, no no-compact mark); `ranges` are in ms (zero and
/// negative ranges are ignored, the rest used in ascending order).
///
/// Groups are disjoint and each holds at least two blocks of one resolution.
/// Returns nothing when the tenant needs no compaction.
pub fn plan(blocks: &[BlockMeta], ranges: &[i64]) -> Vec<Group> {
    let mut ranges: Vec<i64> = ranges.iter().copied().filter(|&r| r > 0).collect();
    ranges.sort_unstable();
    ranges.dedup();
    let max_span = ranges.last().copied().unwrap_or(i64::MAX);
    let newest = blocks.iter().map(|b| b.max_time).max().unwrap_or(i64::MIN);

    let mut by_resolution: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
    for b in blocks {
        by_resolution.entry(b.resolution).or_default().push(b);
    }
    let mut out = Vec::new();
    for (_, mut blocks) in by_resolution {
        blocks.sort_by_key(|b| (b.min_time, b.ulid));
        let clusters = overlap_clusters(&blocks);
        let vertical: Vec<Group> = clusters
            .iter()
            .filter(|c| c.len() > 1)
            .flat_map(|c| split_by_span(c, max_span))
            .map(|g| Group::new(GroupKind::Vertical, &g))
            .collect();
        if !vertical.is_empty() {
            // Overlaps first: horizontal windows are judged on deduplicated blocks.
            out.extend(vertical);
            continue;
        }
        // Blocks in an overlap that could not be planned (too long to merge) stay
        // out of horizontal groups, which would only grow the overlap.
        let single: Vec<&BlockMeta> = clusters.into_iter().filter(|c| c.len() == 1).flatten().collect();
        for &r in ranges.iter().skip(1) {
            let groups = horizontal(&single, r, newest);
            if !groups.is_empty() {
                out.extend(groups);
                break;
            }
        }
    }
    out
}

/// Maximal runs of blocks (sorted by min time) whose time ranges chain into one
/// overlapping stretch. Blocks that only touch (`a.max_time == b.min_time`) do not
/// overlap: `max_time` is exclusive.
fn overlap_clusters<'a>(sorted: &[&'a BlockMeta]) -> Vec<Vec<&'a BlockMeta>> {
    let mut out: Vec<Vec<&BlockMeta>> = Vec::new();
    let mut hi = i64::MIN;
    for &b in sorted {
        match out.last_mut() {
            Some(cur) if b.min_time < hi => {
                cur.push(b);
                hi = hi.max(b.max_time);
            }
            _ => {
                out.push(vec![b]);
                hi = b.max_time;
            }
        }
    }
    out
}

/// Splits an overlap cluster into groups of overlapping blocks spanning at most
/// `max_span`, greedily from the earliest block. Blocks that fit no such group are
/// left out (they stay overlapping; queries deduplicate them).
fn split_by_span<'a>(cluster: &[&'a BlockMeta], max_span: i64) -> Vec<Vec<&'a BlockMeta>> {
    let mut out = Vec::new();
    let mut cur: Vec<&BlockMeta> = Vec::new();
    let (mut lo, mut hi) = (0i64, 0i64);
    for &b in cluster {
        let fits = !cur.is_empty() && b.min_time < hi && hi.max(b.max_time).saturating_sub(lo) <= max_span;
        if fits {
            cur.push(b);
            hi = hi.max(b.max_time);
            continue;
        }
        if cur.len() > 1 {
            out.push(std::mem::take(&mut cur));
        }
        cur = vec![b];
        (lo, hi) = (b.min_time, b.max_time);
    }
    if cur.len() > 1 {
        out.push(cur);
    }
    out
}

/// Horizontal groups for range `r` among non-overlapping blocks.
fn horizontal(blocks: &[&BlockMeta], r: i64, newest: i64) -> Vec<Group> {
    let mut windows: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
    for &b in blocks {
        let start = b.min_time.div_euclid(r).saturating_mul(r);
        if b.max_time <= start.saturating_add(r) {
            windows.entry(start).or_default().push(b);
        }
    }
    windows
        .into_iter()
        .filter(|(start, w)| {
            let end = start.saturating_add(r);
            // A window whose blocks cover it entirely is complete by this rule too.
            w.len() > 1 && newest >= end
        })
        .map(|(_, w)| Group::new(GroupKind::Horizontal { range: r }, &w))
        .collect()
}

/// Offline HA dedup: every block that is in none of `planned` and has not yet been
/// deduplicated by all of `replica_labels` becomes a group of its own, to be
/// rewritten with one series per target. Merged groups deduplicate as they merge.
pub fn dedup_groups(blocks: &[BlockMeta], planned: &[Group], replica_labels: &[String]) -> Vec<Group> {
    if replica_labels.is_empty() {
        return Vec::new();
    }
    let taken: std::collections::HashSet<Ulid> = planned.iter().flat_map(|g| g.blocks.iter().copied()).collect();
    let mut out: Vec<Group> = blocks
        .iter()
        .filter(|b| !taken.contains(&b.ulid))
        .filter(|b| !replica_labels.iter().all(|l| b.compaction.deduplicated_replica_labels.contains(l)))
        .map(|b| Group {
            kind: GroupKind::Deduplicate,
            resolution: b.resolution,
            blocks: vec![b.ulid],
            min_time: b.min_time,
            max_time: b.max_time,
        })
        .collect();
    out.sort_by_key(|g| (g.min_time, g.blocks[0]));
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strata_block::RESOLUTION_RAW;

    use super::*;

    const H: i64 = HOUR_MS;

    fn meta(n: u64, min: i64, max: i64) -> BlockMeta {
        meta_res(n, min, max, RESOLUTION_RAW)
    }

    fn meta_res(n: u64, min: i64, max: i64, resolution: i64) -> BlockMeta {
        crate::tests::block_meta(n, min, max, resolution, &[n])
    }

    fn ids(g: &Group) -> Vec<u64> {
        g.blocks.iter().map(|u| u.timestamp_ms()).collect()
    }

    /// Blocks cut from the head: one per 2h window, data up to one scrape before its end.
    fn head_blocks(first: u64, from_h: i64, count: i64) -> Vec<BlockMeta> {
        (0..count).map(|i| meta(first + i as u64, (from_h + 2 * i) * H, (from_h + 2 * i + 2) * H - 14_999)).collect()
    }

    #[test]
    fn nothing_to_do() {
        assert!(plan(&[], &DEFAULT_RANGES).is_empty());
        assert!(plan(&[meta(1, 0, 2 * H)], &DEFAULT_RANGES).is_empty());
        // Side by side in an incomplete 12h window: wait for the window to end.
        assert!(plan(&head_blocks(1, 0, 3), &DEFAULT_RANGES).is_empty());
    }

    #[test]
    fn identical_copies_merge_vertically() {
        let blocks = [meta(1, 0, 2 * H), meta(2, 0, 2 * H)];
        let g = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].kind, GroupKind::Vertical);
        assert_eq!(ids(&g[0]), [1, 2]);
        assert_eq!((g[0].min_time, g[0].max_time), (0, 2 * H));
    }

    #[test]
    fn out_of_order_block_merges_with_the_block_it_overlaps() {
        // A 12h block, a later head block, and an out-of-order block inside the first.
        let blocks = [meta(1, 0, 12 * H), meta(2, 12 * H, 14 * H), meta(3, 4 * H, 6 * H)];
        let g = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].kind, GroupKind::Vertical);
        assert_eq!(ids(&g[0]), [1, 3]);
    }

    #[test]
    fn touching_blocks_do_not_overlap() {
        let blocks = [meta(1, 0, 2 * H), meta(2, 2 * H, 4 * H)];
        assert!(plan(&blocks, &DEFAULT_RANGES).is_empty());
    }

    #[test]
    fn vertical_comes_before_horizontal() {
        let mut blocks = head_blocks(1, 0, 7);
        blocks.push(meta(100, 2 * H, 4 * H - 1));
        let g = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(g.len(), 1);
        assert_eq!(ids(&g[0]), [2, 100]);
    }

    #[test]
    fn complete_window_merges_horizontally() {
        // Six 2h blocks fill [0, 12h); a seventh starts the next window.
        let blocks = head_blocks(1, 0, 7);
        let g = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].kind, GroupKind::Horizontal { range: 12 * H });
        assert_eq!(ids(&g[0]), [1, 2, 3, 4, 5, 6]);
        // The window counts as complete once the newest block reaches its end,
        // even with gaps inside it.
        let sparse = [meta(1, 0, H), meta(2, 6 * H, 7 * H), meta(3, 12 * H, 13 * H)];
        let g = plan(&sparse, &DEFAULT_RANGES);
        assert_eq!(ids(&g[0]), [1, 2]);
    }

    #[test]
    fn fully_covered_window_merges_without_a_newer_block() {
        let blocks: Vec<BlockMeta> = (0..6).map(|i| meta(i as u64 + 1, 2 * i * H, 2 * (i + 1) * H)).collect();
        let g = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].kind, GroupKind::Horizontal { range: 12 * H });
        // The last 2h block missing: the window may still get data.
        assert!(plan(&blocks[..5], &DEFAULT_RANGES).is_empty());
    }

    #[test]
    fn blocks_crossing_a_window_boundary_wait_for_a_larger_range() {
        // [10h, 14h) crosses the 12h boundary but fits the 2d window.
        let blocks = [meta(1, 0, 10 * H), meta(2, 10 * H, 14 * H), meta(3, 48 * H, 50 * H)];
        let g = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].kind, GroupKind::Horizontal { range: 48 * H });
        assert_eq!(ids(&g[0]), [1, 2]);
    }

    #[test]
    fn smallest_range_first_then_the_next() {
        // Four complete 12h windows of 2h blocks, then the start of the next day pair.
        let mut blocks = head_blocks(1, 0, 24);
        blocks.push(meta(99, 48 * H, 49 * H));
        let g = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(g.len(), 4);
        assert!(g.iter().all(|g| g.kind == GroupKind::Horizontal { range: 12 * H } && g.blocks.len() == 6));
        // After those merges, the four 12h blocks make one 2d block.
        let merged: Vec<BlockMeta> = g
            .iter()
            .enumerate()
            .map(|(i, g)| meta(200 + i as u64, g.min_time, g.max_time))
            .chain([blocks[24].clone()])
            .collect();
        let g = plan(&merged, &DEFAULT_RANGES);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].kind, GroupKind::Horizontal { range: 48 * H });
        assert_eq!(ids(&g[0]), [200, 201, 202, 203]);
    }

    #[test]
    fn resolutions_are_never_mixed() {
        let blocks = [meta_res(1, 0, 2 * H, 0), meta_res(2, 0, 2 * H, 300_000), meta_res(3, 2 * H, 4 * H, 300_000)];
        assert!(plan(&blocks, &DEFAULT_RANGES).is_empty());
        let mut blocks = head_blocks(1, 0, 7);
        blocks.extend((0..6).map(|i| meta_res(50 + i, 2 * i as i64 * H, 2 * (i as i64 + 1) * H - 1, 300_000)));
        blocks.push(meta_res(60, 0, 12 * H, 3_600_000));
        let g = plan(&blocks, &DEFAULT_RANGES);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].resolution, ids(&g[0])), (0, vec![1, 2, 3, 4, 5, 6]));
        assert_eq!((g[1].resolution, ids(&g[1])), (300_000, vec![50, 51, 52, 53, 54, 55]));
    }

    #[test]
    fn overlaps_are_not_merged_past_the_largest_range() {
        let ranges = [2 * H, 12 * H];
        // A chain of overlaps 20h long: only pairs within 12h merge.
        let blocks = [meta(1, 0, 8 * H), meta(2, 7 * H, 11 * H), meta(3, 10 * H, 20 * H)];
        let g = plan(&blocks, &ranges);
        assert_eq!(g.len(), 1);
        assert_eq!(ids(&g[0]), [1, 2]);
        // Two overlapping blocks whose union exceeds the largest range: left alone,
        // and kept out of horizontal groups.
        let blocks = [meta(1, 0, 8 * H), meta(2, 7 * H, 14 * H), meta(3, 24 * H, 25 * H)];
        assert!(plan(&blocks, &ranges).is_empty());
    }

    #[test]
    fn month_of_head_blocks_compacts_to_aligned_blocks() {
        let mut blocks = head_blocks(1, 0, 12 * 30);
        let mut next = 10_000u64;
        let mut rounds = 0;
        loop {
            let groups = plan(&blocks, &DEFAULT_RANGES);
            if groups.is_empty() {
                break;
            }
            rounds += 1;
            assert!(rounds < 20, "planner does not converge");
            for g in groups {
                blocks.retain(|b| !g.blocks.contains(&b.ulid));
                blocks.push(meta(next, g.min_time, g.max_time));
                next += 1;
            }
        }
        blocks.sort_by_key(|b| b.min_time);
        let spans: Vec<(i64, i64)> = blocks.iter().map(|b| (b.min_time / H, (b.max_time + H - 1) / H)).collect();
        // Two 14d blocks; the last, incomplete 2d window holds three 12h blocks and
        // the 2h blocks of its incomplete last 12h window.
        let mut want = vec![(0, 336), (336, 672), (672, 684), (684, 696), (696, 708)];
        want.extend((0..6).map(|i| (708 + 2 * i, 710 + 2 * i)));
        assert_eq!(spans, want);
        assert_eq!(rounds, 3);
    }

    fn arb_blocks() -> impl Strategy<Value = Vec<BlockMeta>> {
        proptest::collection::vec((0i64..400, 1i64..60, prop_oneof![Just(0i64), Just(300_000)]), 0..25).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (start, len, res))| meta_res(i as u64 + 1, start * H / 2, (start + len) * H / 2, res))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn groups_are_sound_and_planning_converges(mut blocks in arb_blocks()) {
            let ranges = [2 * H, 12 * H, 48 * H];
            let mut next = 1_000u64;
            for _round in 0..60 {
                let groups = plan(&blocks, &ranges);
                if groups.is_empty() {
                    return Ok(());
                }
                let mut seen = std::collections::HashSet::new();
                for g in &groups {
                    prop_assert!(g.blocks.len() >= 2);
                    prop_assert!(g.max_time - g.min_time <= 48 * H);
                    let members: Vec<&BlockMeta> = blocks.iter().filter(|b| g.blocks.contains(&b.ulid)).collect();
                    prop_assert_eq!(members.len(), g.blocks.len());
                    prop_assert!(members.iter().all(|b| b.resolution == g.resolution));
                    for u in &g.blocks {
                        prop_assert!(seen.insert(*u), "block in two groups");
                    }
                }
                for g in groups {
                    blocks.retain(|b| !g.blocks.contains(&b.ulid));
                    blocks.push(meta_res(next, g.min_time, g.max_time, g.resolution));
                    next += 1;
                }
            }
            prop_assert!(false, "planner did not converge");
        }
    }
}
