//! Cutting the head: what a cut takes is fixed under the write lock (per series,
//! the newest in-order timestamp taken and the out-of-order samples taken), the
//! samples themselves are read in small batches while the block is written, and
//! after the block is uploaded exactly what was taken is truncated.
//!
//! ```text
//!  marks(before)      ─► per series: id, inorder_upto; ooo samples < before  (write lock)
//!  order(marks)       ─► sorted by label strings                   (symbol copy, no lock)
//!  take(batch)        ─► labels, chunk handles, open-chunk copy     (read lock per batch)
//!  ... block written and uploaded ...
//!  truncate(marks)    ─► drop in-order samples <= inorder_upto and the ooo samples taken;
//!                        anything that arrived meanwhile stays for the next cut;
//!                        series left empty whose newest sample is below the cut floor
//!                        are removed (postings, hash index, symbols; the id is reused)
//! ```
//! In-order samples at or before a series' `inorder_upto` cannot change between the
//! marks and the truncation: appends only add newer samples and only the flush
//! (one at a time) truncates. So reading them batch by batch later sees exactly
//! what the marks describe, and memory stays bounded by one batch instead of a
//! copy of every series' labels and chunk list.

use std::cmp::Ordering;
use std::collections::HashMap;

use strata_model::{Sample, TimeRange};

use super::read::Snapshot;
use super::spill::ChunkData;
use super::{ClosedChunk, Head, HeadInner};
use crate::chunk::{XorAppender, XorIter};

/// Sorts a cut's marks into label order (the order blocks are written in). The
/// label sets (flat, as symbol ids) and the symbol strings are copied under the read
/// lock and the sort runs on the copy, so writers wait only for the copy.
pub(crate) fn order_by_labels(head: &Head, cut: &mut Cut) {
    let (flat, ends, strs) = {
        let g = head.inner.read();
        let total = cut.marks.iter().map(|m| g.series[m.id as usize].labels.len()).sum();
        let mut flat: Vec<(u32, u32)> = Vec::with_capacity(total);
        let mut ends: Vec<u32> = Vec::with_capacity(cut.marks.len());
        for m in &cut.marks {
            flat.extend_from_slice(&g.series[m.id as usize].labels);
            ends.push(flat.len() as u32);
        }
        (flat, ends, g.symbols.snapshot())
    };
    let set = |i: u32| {
        let i = i as usize;
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        &flat[start..ends[i] as usize]
    };
    let cmp_sets = |a: &[(u32, u32)], b: &[(u32, u32)]| -> Ordering {
        for (x, y) in a.iter().zip(b) {
            let o =
                strs[x.0 as usize].cmp(&strs[y.0 as usize]).then_with(|| strs[x.1 as usize].cmp(&strs[y.1 as usize]));
            if o != Ordering::Equal {
                return o;
            }
        }
        a.len().cmp(&b.len())
    };
    let mut order: Vec<u32> = (0..cut.marks.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| cmp_sets(set(a), set(b)));
    cut.marks = order.into_iter().map(|i| cut.marks[i as usize]).collect();
}

/// What a cut takes from the head.
#[derive(Debug, Default)]
pub(crate) struct Cut {
    pub(crate) marks: Vec<CutMark>,
    /// Out-of-order samples taken, by series id (rare: only with an out-of-order
    /// window). New ones may arrive for the same times later and stay in the head.
    pub(crate) ooo: HashMap<u32, Vec<Sample>>,
}

/// What a cut takes from one series' in-order samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CutMark {
    pub(crate) id: u32,
    /// The newest in-order timestamp taken.
    pub(crate) inorder_upto: i64,
}

impl CutMark {
    /// The time range whose samples the cut takes.
    pub(crate) fn range(&self) -> TimeRange {
        TimeRange::new(i64::MIN, self.inorder_upto)
    }
}

impl HeadInner {
    /// Marks every sample older than `before` for a cut and raises the floor below
    /// which new samples are refused (unless the out-of-order window admits them)
    /// to `floor` (at most `before`). Marks are in series-id order ([`order_by_labels`] sorts them).
    pub(crate) fn cut_marks(&mut self, before: i64, floor: i64) -> Cut {
        self.cut_floor = self.cut_floor.max(floor.min(before));
        self.cut_before = self.cut_before.max(before);
        let mut cut = Cut::default();
        for (id, s) in self.series.iter().enumerate() {
            if s.first_t >= before {
                continue;
            }
            if s.ooo.first().is_some_and(|x| x.t < before) {
                cut.ooo.insert(id as u32, s.ooo.iter().copied().filter(|x| x.t < before).collect());
            }
            cut.marks.push(CutMark { id: id as u32, inorder_upto: s.last_t.min(before - 1) });
        }
        cut
    }

    /// The samples `mark` stands for: a reader's snapshot of the in-order samples up
    /// to `inorder_upto` (decode it with [`CutMark::range`]) with exactly the
    /// out-of-order samples the cut took.
    pub(crate) fn take(&self, cut: &Cut, mark: &CutMark) -> Snapshot {
        let mut snap = self.snapshot(mark.id, mark.range(), false);
        snap.ooo = cut.ooo.get(&mark.id).cloned().unwrap_or_default();
        snap
    }

    /// Removes what `cut` took, and the series left empty below the cut floor.
    /// Returns how many samples were removed.
    pub(crate) fn truncate(&mut self, cut: &Cut) -> u64 {
        let mut removed = 0u64;
        for c in &cut.marks {
            let s = &mut self.series[c.id as usize];
            let upto = c.inorder_upto;
            let mut kept_closed = Vec::with_capacity(s.closed.len());
            for chunk in s.closed.drain(..) {
                if chunk.max_t <= upto {
                    removed += u64::from(chunk.data.samples());
                } else if chunk.min_t <= upto {
                    let bytes = match chunk.data.load() {
                        Ok(b) => b,
                        Err(e) => {
                            // Keep it whole: its older samples are then in the head and
                            // in the block, which readers and compaction deduplicate.
                            tracing::error!(error = %e, "head chunk unreadable; kept untruncated");
                            kept_closed.push(chunk);
                            continue;
                        }
                    };
                    let (app, min_t, n) = keep_after(&bytes, upto);
                    removed += n;
                    if !app.is_empty() {
                        let max_t = app.last_t();
                        kept_closed.push(ClosedChunk { min_t, max_t, data: ChunkData::Mem(app.finish().into()) });
                    }
                } else {
                    kept_closed.push(chunk);
                }
            }
            s.closed = kept_closed;
            if !s.open.is_empty() && s.open_min_t <= upto {
                let (app, min_t, n) = keep_after(s.open.bytes(), upto);
                removed += n;
                s.open = app;
                s.open_min_t = min_t;
            }
            if let Some(taken) = cut.ooo.get(&c.id) {
                let before = s.ooo.len();
                s.ooo.retain(|x| taken.binary_search_by_key(&x.t, |y| y.t).is_err());
                removed += (before - s.ooo.len()) as u64;
            }
            s.first_t = [
                s.closed.first().map(|c| c.min_t),
                (!s.open.is_empty()).then_some(s.open_min_t),
                s.ooo.first().map(|x| x.t),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(i64::MAX);
        }
        self.remove_empty();
        self.samples = self.samples.saturating_sub(removed);
        self.min_t = self.series.iter().map(|s| s.first_t).min().unwrap_or(i64::MAX);
        removed
    }
}

impl HeadInner {
    /// Removes the series that hold no samples and can take none of their own time
    /// range: their newest sample is below the cut floor (churned series whose data
    /// is all in blocks), or they never stored one (created by requests whose every
    /// sample was refused, or by WAL replay for samples all in blocks). A later
    /// sample with their labels creates them anew.
    pub(crate) fn remove_empty(&mut self) {
        let floor = self.cut_floor;
        let gone: Vec<u32> = self
            .live
            .iter()
            .filter(|&id| {
                let s = &self.series[id as usize];
                s.first_t == i64::MAX && (s.last_t == i64::MIN || s.last_t < floor)
            })
            .collect();
        for id in gone {
            self.remove_series(id);
        }
    }

    /// After WAL replay: drops empty series and frees every slot no series holds
    /// (replay creates series at their logged ids, leaving gaps).
    pub(crate) fn after_replay(&mut self) {
        self.remove_empty();
        self.free_ids = (0..self.series.len() as u32).rev().filter(|&id| !self.live.contains(id)).collect();
    }
}

/// The samples of `chunk` newer than `upto`, re-encoded: (appender, its first
/// timestamp or `i64::MAX`, samples dropped).
fn keep_after(chunk: &[u8], upto: i64) -> (XorAppender, i64, u64) {
    let mut app = XorAppender::new();
    let mut removed = 0;
    let mut min_t = i64::MAX;
    if let Ok(it) = XorIter::new(chunk) {
        for x in it.map_while(Result::ok) {
            if x.t > upto {
                min_t = min_t.min(x.t);
                app.append(x.t, x.v);
            } else {
                removed += 1;
            }
        }
    }
    (app, min_t, removed)
}
