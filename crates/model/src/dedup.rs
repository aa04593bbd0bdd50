//! HA replica deduplication: the series of an HA pair (or more replicas), which
//! differ only in replica labels, merged into one series. Pure: no I/O, shared by
//! the querier (at query time) and the compactor (offline).
//!
//! ```text
//!  replica a: ●──●──●──●           ●──●──●──●      (a restarts: a 10-minute hole)
//!  replica b:   ○──○──○──○──○──○──○──○──○──○──○
//!  merged:    ●──●──●──●──○──○──○──○──○──○──○──   stay on one replica; switch only
//!                                                  when its next sample is a gap away
//! ```
//!
//! The rules ([`DedupIter`]):
//! - Start on the replica with the earliest sample (the first in input order on a tie).
//! - Stay on the current replica while its next sample comes within 1.5 of its own
//!   scrape interval (the gap between its last two samples) after the last sample
//!   given out. Scrapes jitter by milliseconds, so staying put is the normal case and
//!   replicas, whose scrapes are out of phase, are never interleaved.
//! - Past that (a gap, or the replica ended), switch to the replica whose next sample
//!   is earliest, if it is earlier than the current one's: the hole is filled by a
//!   replica that has data there, never by one that has a hole there too (Thanos
//!   issue #981). A staleness marker on the current replica counts as a gap when
//!   another replica has a real sample within the interval.
//! - Counters ([`DedupIter::counter`], for `rate`, `increase`, `irate`, `resets`):
//!   replicas scrape at slightly different moments, so right after a switch the new
//!   replica's value can be a little lower than the last one given out, which a rate
//!   would read as a counter reset (Thanos issue #2890: rate spikes). A value lower
//!   than the last one given out is raised to it unless the replica's own previous
//!   sample shows a reset (a value lower than that sample) that the output has not
//!   already shown. So a switch never makes a counter go backwards, and real resets
//!   are kept.

use std::collections::BTreeMap;

use crate::{Labels, Sample, Series, WindowedSeries, is_stale_nan};

/// Merges the samples of several replicas (each sorted by time with unique
/// timestamps) into one sequence with strictly increasing timestamps.
#[derive(Debug, Clone)]
pub struct DedupIter<'a> {
    replicas: Vec<&'a [Sample]>,
    /// Per replica, the index of its first sample after `last_t`.
    pos: Vec<usize>,
    cur: usize,
    last_t: Option<i64>,
    counter: bool,
    /// The last value given out, and when the output last went down (a reset).
    last_v: Option<f64>,
    last_reset_t: i64,
}

impl<'a> DedupIter<'a> {
    /// Replicas in a fixed order (callers sort them by their labels): ties between
    /// replicas go to the earlier one, so the output is deterministic.
    pub fn new(replicas: Vec<&'a [Sample]>) -> Self {
        let n = replicas.len();
        let cur = (0..n).filter(|&i| !replicas[i].is_empty()).min_by_key(|&i| (replicas[i][0].t, i)).unwrap_or(0);
        DedupIter { replicas, pos: vec![0; n], cur, last_t: None, counter: false, last_v: None, last_reset_t: i64::MIN }
    }

    /// Treats the samples as a counter: a switch of replicas never makes it go down.
    pub fn counter(mut self, counter: bool) -> Self {
        self.counter = counter;
        self
    }

    fn next_of(&self, i: usize) -> Option<Sample> {
        self.replicas[i].get(self.pos[i]).copied()
    }

    /// The current replica's own scrape interval: the gap between its last sample
    /// at or before `last_t` and the one before that, else its first two samples.
    fn interval(&self, i: usize) -> Option<i64> {
        let s = self.replicas[i];
        let p = self.pos[i];
        if p >= 2 {
            Some(s[p - 1].t - s[p - 2].t)
        } else if s.len() >= 2 {
            Some(s[1].t - s[0].t)
        } else {
            None
        }
    }

    /// The replica (other than `cur`) with the earliest next sample, preferring a
    /// real sample over a staleness marker at the same time.
    fn earliest_other(&self) -> Option<(usize, Sample)> {
        (0..self.replicas.len())
            .filter(|&i| i != self.cur)
            .filter_map(|i| self.next_of(i).map(|s| (i, s)))
            .min_by_key(|&(i, s)| (s.t, is_stale_nan(s.v), i))
    }

    fn choose(&self) -> Option<usize> {
        let cur = self.next_of(self.cur);
        let other = self.earliest_other();
        let (Some(c), Some((o, os))) = (cur, other) else {
            return cur.map(|_| self.cur).or(other.map(|(o, _)| o));
        };
        let Some(last_t) = self.last_t else {
            return Some(if os.t < c.t { o } else { self.cur });
        };
        let allowed = self.interval(self.cur).map(|d| d.saturating_add(d / 2));
        let within = |t: i64| allowed.is_none_or(|a| t - last_t <= a);
        if is_stale_nan(c.v) && !is_stale_nan(os.v) && within(os.t) {
            return Some(o);
        }
        if within(c.t) || os.t >= c.t { Some(self.cur) } else { Some(o) }
    }

    /// A counter value as given out: see the module docs.
    fn adjust(&mut self, r: usize, s: Sample) -> Sample {
        if !self.counter || s.v.is_nan() {
            return s;
        }
        let Some(last) = self.last_v else {
            self.last_v = Some(s.v);
            return s;
        };
        let own_prev = self.pos[r].checked_sub(1).map(|p| self.replicas[r][p]).filter(|p| !p.v.is_nan());
        let own_reset = own_prev.is_some_and(|p| s.v < p.v);
        let shown = own_reset && own_prev.is_some_and(|p| self.last_reset_t > p.t);
        let v = if s.v < last && (!own_reset || shown) {
            last
        } else {
            if s.v < last {
                self.last_reset_t = s.t;
            }
            s.v
        };
        self.last_v = Some(v);
        Sample::new(s.t, v)
    }
}

impl Iterator for DedupIter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if let Some(last_t) = self.last_t {
            for i in 0..self.replicas.len() {
                let s = self.replicas[i];
                self.pos[i] += s[self.pos[i]..].partition_point(|x| x.t <= last_t);
            }
        }
        let r = self.choose()?;
        let s = self.next_of(r)?;
        let out = self.adjust(r, s);
        self.pos[r] += 1;
        self.cur = r;
        self.last_t = Some(s.t);
        Some(out)
    }
}

/// Merges the replicas' samples into one sequence ([`DedupIter`]).
pub fn dedup_samples(replicas: &[&[Sample]], counter: bool) -> Vec<Sample> {
    DedupIter::new(replicas.to_vec()).counter(counter).collect()
}

/// Series that differ only in `replica_labels` become one series without those
/// labels, its samples merged by [`DedupIter`]. The input may come in any order;
/// the output is sorted by labels. A series without any replica label passes
/// through (merged with any series that lost only replica labels to equal it).
pub fn dedup_series(series: Vec<Series>, replica_labels: &[&str], counter: bool) -> Vec<Series> {
    if replica_labels.is_empty() {
        return series;
    }
    // The common case behind an HA tracker: nothing carries a replica label, so
    // nothing is rebuilt or regrouped.
    if !series.iter().any(|s| replica_labels.iter().any(|l| s.labels.get(l).is_some())) {
        let mut series = series;
        if !series.is_sorted_by(|a, b| a.labels <= b.labels) {
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        return series;
    }
    let mut groups: BTreeMap<Labels, Vec<Series>> = BTreeMap::new();
    for s in series {
        groups.entry(s.labels.without(replica_labels)).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(labels, mut replicas)| {
            if replicas.len() == 1 {
                return Series { labels, samples: replicas.remove(0).samples };
            }
            replicas.sort_by(|a, b| a.labels.cmp(&b.labels));
            let slices: Vec<&[Sample]> = replicas.iter().map(|r| r.samples.as_slice()).collect();
            Series { labels, samples: dedup_samples(&slices, counter) }
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// [`dedup_series`] for series that may carry downsampled windows: raw samples are
/// deduplicated as there; the windows of replicas are merged by window start, the
/// first replica (in label order) winning (a window already summarises a whole
/// span of one replica, so there is nothing finer to choose between).
pub fn dedup_windowed(series: Vec<WindowedSeries>, replica_labels: &[&str], counter: bool) -> Vec<WindowedSeries> {
    if series.iter().all(|s| s.windows.is_empty()) {
        let raw = series.into_iter().map(|s| Series { labels: s.labels, samples: s.samples }).collect();
        return dedup_series(raw, replica_labels, counter).into_iter().map(WindowedSeries::from).collect();
    }
    let mut raw = Vec::new();
    let mut windows = Vec::new();
    for s in series {
        if !s.samples.is_empty() {
            raw.push(Series { labels: s.labels.clone(), samples: s.samples });
        }
        if !s.windows.is_empty() {
            windows.push(WindowedSeries {
                labels: s.labels.without(replica_labels),
                samples: Vec::new(),
                windows: s.windows,
                resolution: s.resolution,
            });
        }
    }
    let raw: Vec<WindowedSeries> =
        dedup_series(raw, replica_labels, counter).into_iter().map(WindowedSeries::from).collect();
    WindowedSeries::merge(vec![raw, windows])
}
