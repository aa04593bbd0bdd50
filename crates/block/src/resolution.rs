//! Which resolution answers which part of a query's time range (pure).
//!
//! ```text
//!   query range, max resolution, live blocks
//!     ─► coarsest resolution ≤ max that covers a span ─► finer ones for what is left
//!     ─► raw where raw blocks are ─► coarser than max where raw is gone (expired)
//!     ─► raw for the rest (the head's time: not in blocks yet)
//! ```
//!
//! A block covers `[min_time, max_time)`. A downsampled block's span is widened to
//! whole windows of its resolution (its samples' bounds rounded out), so adjacent
//! copies leave no gaps; gaps shorter than five minutes between raw blocks (the
//! scrape interval between one block's last sample and the next one's first) are
//! not holes either.

use crate::aggr::window_start;
use crate::meta::{BlockMeta, RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW};

/// A part of a query range `[start, end)` and the resolution that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
    pub resolution: i64,
}

/// Raw blocks closer than this are treated as adjacent.
const RAW_SLACK: i64 = RESOLUTION_5M;

/// The spans of `[start, end]` (inclusive) and their resolutions, in time order,
/// adjacent spans of one resolution joined. `max_resolution` 0 gives one raw span.
pub fn plan_spans(start: i64, end: i64, max_resolution: i64, blocks: &[&BlockMeta]) -> Vec<Span> {
    let end = end.saturating_add(1);
    if end <= start {
        return Vec::new();
    }
    if max_resolution <= 0 {
        return vec![Span { start, end, resolution: RESOLUTION_RAW }];
    }
    let finer_or_equal = [RESOLUTION_1H, RESOLUTION_5M].into_iter().filter(|&r| r <= max_resolution);
    let coarser = [RESOLUTION_5M, RESOLUTION_1H].into_iter().filter(|&r| r > max_resolution);
    let order: Vec<i64> = finer_or_equal.chain([RESOLUTION_RAW]).chain(coarser).collect();
    let mut todo = vec![(start, end)];
    let mut out = Vec::new();
    for res in order {
        if todo.is_empty() {
            break;
        }
        let cov = coverage(blocks, res);
        let mut left = Vec::new();
        for (a, b) in todo {
            let mut at = a;
            for &(c, d) in &cov {
                if d <= at || c >= b {
                    continue;
                }
                if c > at {
                    left.push((at, c));
                }
                let (s, e) = (c.max(at), d.min(b));
                out.push(Span { start: s, end: e, resolution: res });
                at = e;
                if at >= b {
                    break;
                }
            }
            if at < b {
                left.push((at, b));
            }
        }
        todo = left;
    }
    out.extend(todo.into_iter().map(|(s, e)| Span { start: s, end: e, resolution: RESOLUTION_RAW }));
    out.sort_by_key(|s| s.start);
    let mut joined: Vec<Span> = Vec::with_capacity(out.len());
    for s in out {
        match joined.last_mut() {
            Some(l) if l.end == s.start && l.resolution == s.resolution => l.end = s.end,
            _ => joined.push(s),
        }
    }
    joined
}

/// The merged time intervals the blocks of `res` cover.
fn coverage(blocks: &[&BlockMeta], res: i64) -> Vec<(i64, i64)> {
    let mut iv: Vec<(i64, i64)> = blocks
        .iter()
        .filter(|b| b.resolution == res && b.max_time > b.min_time)
        .map(|b| {
            if res == RESOLUTION_RAW {
                (b.min_time, b.max_time)
            } else {
                (window_start(b.min_time, res), window_start(b.max_time - 1, res).saturating_add(res))
            }
        })
        .collect();
    iv.sort_unstable();
    let slack = if res == RESOLUTION_RAW { RAW_SLACK } else { 0 };
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(iv.len());
    for (s, e) in iv {
        match out.last_mut() {
            Some(l) if s <= l.1.saturating_add(slack) => l.1 = l.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{BlockStats, Compaction, FORMAT_VERSION};

    const H: i64 = 3_600_000;

    fn block(resolution: i64, min_time: i64, max_time: i64) -> BlockMeta {
        BlockMeta {
            version: FORMAT_VERSION,
            ulid: ulid::Ulid::new(),
            tenant: "t".into(),
            min_time,
            max_time,
            stats: BlockStats { num_series: 0, num_samples: 0, files: Vec::new() },
            compaction: Compaction {
                level: 1,
                sources: Vec::new(),
                parents: Vec::new(),
                deduplicated_replica_labels: Vec::new(),
            },
            resolution,
        }
    }

    fn plan(start: i64, end: i64, max: i64, blocks: &[BlockMeta]) -> Vec<(i64, i64, i64)> {
        let refs: Vec<&BlockMeta> = blocks.iter().collect();
        plan_spans(start, end, max, &refs).into_iter().map(|s| (s.start, s.end, s.resolution)).collect()
    }

    #[test]
    fn coarsest_allowed_first_then_finer_then_raw_then_coarser() {
        // Raw expired before 10h; 5m copies of [0, 20h); 1h copies of [0, 8h); head after 30h.
        let blocks = [
            block(RESOLUTION_RAW, 10 * H, 20 * H - 15_000),
            block(RESOLUTION_RAW, 20 * H, 30 * H - 15_000),
            block(RESOLUTION_5M, 15_000, 20 * H - 15_000),
            block(RESOLUTION_1H, 15_000, 8 * H - 15_000),
        ];
        let end = 40 * H - 1;
        assert_eq!(
            plan(0, end, RESOLUTION_1H, &blocks),
            vec![(0, 8 * H, RESOLUTION_1H), (8 * H, 20 * H, RESOLUTION_5M), (20 * H, 40 * H, RESOLUTION_RAW)]
        );
        assert_eq!(plan(0, end, RESOLUTION_5M, &blocks), vec![(0, 20 * H, RESOLUTION_5M), (20 * H, 40 * H, 0)]);
        // Raw preferred; where raw is gone, 5m before 1h.
        assert_eq!(plan(0, end, 1, &blocks), vec![(0, 10 * H, RESOLUTION_5M), (10 * H, 40 * H, 0)]);
        assert_eq!(plan(0, end, 0, &blocks), vec![(0, 40 * H, 0)]);
    }

    #[test]
    fn small_gaps_between_raw_blocks_are_not_holes() {
        let blocks = [
            block(RESOLUTION_RAW, 2 * H, 4 * H - 15_000),
            block(RESOLUTION_RAW, 4 * H + 10_000, 6 * H - 15_000),
            block(RESOLUTION_1H, 0, 6 * H - 15_000),
        ];
        assert_eq!(plan(3 * H, 5 * H, 1, &blocks), vec![(3 * H, 5 * H + 1, 0)]);
        // A real hole (raw of [6h, 8h) expired or never written) is filled from 1h.
        let blocks =
            [block(RESOLUTION_RAW, 0, 4 * H), block(RESOLUTION_RAW, 6 * H, 8 * H), block(RESOLUTION_1H, 0, 8 * H)];
        assert_eq!(
            plan(0, 8 * H - 1, 1, &blocks),
            vec![(0, 4 * H, 0), (4 * H, 6 * H, RESOLUTION_1H), (6 * H, 8 * H, 0)]
        );
    }
}
