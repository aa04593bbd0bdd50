//! Cutting the head: a snapshot of everything older than a boundary (taken under
//! the lock, decoded outside it), and after the block holding it is uploaded, the
//! truncation of exactly what the snapshot held.
//!
//! ```text
//!  snapshot(before) ─► per series: chunk handles, open-chunk copy, ooo samples < before,
//!                      and the newest in-order timestamp taken (inorder_upto)
//!  ... block written and uploaded ...
//!  truncate(marks)  ─► drop in-order samples <= inorder_upto and the ooo samples taken;
//!                      anything that arrived meanwhile stays for the next cut
//! ```

use std::sync::Arc;

use strata_model::{Labels, Sample};

use super::{ClosedChunk, HeadInner};
use crate::chunk::{XorAppender, XorIter};

/// What a cut took from one series.
#[derive(Debug)]
pub(crate) struct CutSeries {
    pub(crate) id: u32,
    pub(crate) labels: Labels,
    chunks: Vec<Arc<[u8]>>,
    open: Option<Vec<u8>>,
    pub(crate) ooo: Vec<Sample>,
    pub(crate) inorder_upto: i64,
}

impl CutSeries {
    /// The samples taken, in time order.
    pub(crate) fn decode(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        for c in self.chunks.iter().map(|c| &c[..]).chain(self.open.as_deref()) {
            if let Ok(it) = XorIter::new(c) {
                out.extend(it.map_while(Result::ok).take_while(|s| s.t <= self.inorder_upto));
            }
        }
        out.retain(|s| s.t <= self.inorder_upto);
        strata_model::merge_samples(out, self.ooo.clone())
    }
}

impl HeadInner {
    /// Snapshots every sample older than `before` and raises the floor below which
    /// new samples are refused (unless the out-of-order window admits them) to
    /// `floor` (at most `before`).
    pub(crate) fn cut_snapshot(&mut self, before: i64, floor: i64) -> Vec<CutSeries> {
        self.cut_floor = self.cut_floor.max(floor.min(before));
        self.cut_before = self.cut_before.max(before);
        let mut out = Vec::new();
        for (id, s) in self.series.iter().enumerate() {
            if s.first_t >= before {
                continue;
            }
            let inorder_upto = s.last_t.min(before - 1);
            let chunks = s.closed.iter().filter(|c| c.min_t < before).map(|c| c.data.clone()).collect();
            let open = (!s.open.is_empty() && s.open_min_t < before).then(|| s.open.bytes().to_vec());
            let ooo: Vec<Sample> = s.ooo.iter().copied().filter(|x| x.t < before).collect();
            out.push(CutSeries { id: id as u32, labels: self.labels_of(id as u32), chunks, open, ooo, inorder_upto });
        }
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Removes what `cut` took. Returns how many samples were removed.
    pub(crate) fn truncate(&mut self, cut: &[CutSeries]) -> u64 {
        let mut removed = 0u64;
        for c in cut {
            let s = &mut self.series[c.id as usize];
            let upto = c.inorder_upto;
            let mut kept_closed = Vec::with_capacity(s.closed.len());
            for chunk in s.closed.drain(..) {
                if chunk.max_t <= upto {
                    removed += XorIter::new(&chunk.data).map_or(0, |it| u64::from(it.declared_len()));
                } else if chunk.min_t <= upto {
                    let (app, min_t, n) = keep_after(&chunk.data, upto);
                    removed += n;
                    if !app.is_empty() {
                        let max_t = app.last_t();
                        kept_closed.push(ClosedChunk { min_t, max_t, data: app.finish().into() });
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
            if !c.ooo.is_empty() {
                let before = s.ooo.len();
                s.ooo.retain(|x| c.ooo.binary_search_by_key(&x.t, |y| y.t).is_err());
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
        self.samples = self.samples.saturating_sub(removed);
        self.min_t = self.series.iter().map(|s| s.first_t).min().unwrap_or(i64::MAX);
        removed
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
