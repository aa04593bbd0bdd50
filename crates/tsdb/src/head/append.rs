//! Appending to the head: series lookup or creation, ordering checks, chunk cutting.

use std::collections::BTreeMap;

use strata_model::Sample;

use super::spill::ChunkData;
use super::{ClosedChunk, HeadInner, MemSeries, Metadata, hash_pairs};
use crate::chunk::SAMPLES_PER_CHUNK;

/// One series of an incoming request: labels sorted by name with unique names and
/// no empty values (the caller validates), and its samples in request order.
#[derive(Debug, Clone, Copy)]
pub struct SeriesInput<'a> {
    pub labels: &'a [(&'a str, &'a str)],
    pub samples: &'a [Sample],
}

/// Why a sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// Older than the series' newest sample and outside the out-of-order window.
    OutOfOrder,
    /// Same timestamp as a stored sample but a different value.
    DuplicateTimestamp,
    /// In a time range already cut into a block, and outside the out-of-order window.
    TooOld,
    /// Further ahead of the wall clock than the creation grace period allows.
    TooFarInFuture,
    /// The sample would create a series while the tenant's head already holds the
    /// most series its limit allows (`Tsdb::append_limited`).
    SeriesLimit,
}

impl RejectReason {
    /// The reason as a metric label value and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::DuplicateTimestamp => "duplicate_timestamp",
            RejectReason::TooOld => "too_old_range_already_in_block",
            RejectReason::TooFarInFuture => "too_far_in_future",
            RejectReason::SeriesLimit => "per_user_series_limit",
        }
    }
}

/// What happened to the samples of one append call.
#[derive(Debug, Clone, Default)]
pub struct AppendOutcome {
    /// Samples stored.
    pub accepted: u64,
    /// Exact re-sends of stored samples (same timestamp and value bits): not stored
    /// again, not an error.
    pub duplicates_ignored: u64,
    /// Rejections per reason: count and the first example.
    pub rejected: BTreeMap<RejectReason, (u64, String)>,
}

impl AppendOutcome {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().map(|(n, _)| n).sum()
    }
}

/// Result of putting one sample into a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Put {
    Stored,
    Duplicate,
    Rejected(RejectReason),
}

impl MemSeries {
    fn last(&self) -> Option<(i64, f64)> {
        (self.last_t != i64::MIN).then_some((self.last_t, self.last_v))
    }

    /// The stored in-order value at exactly `t`, if any (decodes one chunk).
    fn stored_value(&self, t: i64) -> Option<f64> {
        let find = |bytes: &[u8]| -> Option<f64> {
            crate::chunk::XorIter::new(bytes).ok()?.map_while(Result::ok).find(|x| x.t == t).map(|x| x.v)
        };
        if !self.open.is_empty() && t >= self.open_min_t {
            return find(self.open.bytes());
        }
        let i = self.closed.partition_point(|c| c.max_t < t);
        // A spilled chunk that cannot be read answers "not stored": the sample is
        // then refused as out of order rather than taken for a duplicate.
        self.closed.get(i).filter(|c| c.min_t <= t).and_then(|c| find(&c.data.load().ok()?))
    }

    /// Puts one sample. `ooo_floor` is the oldest timestamp the out-of-order window
    /// admits (`i64::MIN` during WAL replay, which must accept what was accepted).
    pub(crate) fn put(&mut self, s: Sample, ooo_floor: i64) -> Put {
        match self.last() {
            Some((lt, lv)) if s.t == lt => {
                return if lv.to_bits() == s.v.to_bits() {
                    Put::Duplicate
                } else {
                    Put::Rejected(RejectReason::DuplicateTimestamp)
                };
            }
            Some((lt, _)) if s.t < lt => {
                if s.t < ooo_floor {
                    // A re-send of a sample already stored is not an error (senders
                    // retry whole batches after a timeout); anything else is.
                    return match self.stored_value(s.t) {
                        Some(v) if v.to_bits() == s.v.to_bits() => Put::Duplicate,
                        Some(_) => Put::Rejected(RejectReason::DuplicateTimestamp),
                        None => Put::Rejected(RejectReason::OutOfOrder),
                    };
                }
                return match self.ooo.binary_search_by_key(&s.t, |x| x.t) {
                    Ok(i) if self.ooo[i].v.to_bits() == s.v.to_bits() => Put::Duplicate,
                    Ok(_) => Put::Rejected(RejectReason::DuplicateTimestamp),
                    Err(i) => {
                        self.ooo.insert(i, s);
                        self.first_t = self.first_t.min(s.t);
                        Put::Stored
                    }
                };
            }
            _ => {}
        }
        if self.open.len() >= SAMPLES_PER_CHUNK {
            let open = std::mem::take(&mut self.open);
            self.closed.push(ClosedChunk {
                min_t: self.open_min_t,
                max_t: open.last_t(),
                data: ChunkData::Mem(open.finish().into()),
            });
        }
        if self.open.is_empty() {
            self.open_min_t = s.t;
        }
        self.open.append(s.t, s.v);
        self.last_v = s.v;
        self.first_t = self.first_t.min(s.t);
        self.last_t = s.t;
        Put::Stored
    }
}

impl HeadInner {
    /// The id of the series with exactly these labels, if it exists.
    pub(crate) fn lookup(&self, hash: u128) -> Option<u32> {
        self.by_hash.get(&hash).copied()
    }

    /// Creates a series (the caller checked it does not exist) and indexes it.
    pub(crate) fn create(&mut self, hash: u128, labels: &[(&str, &str)]) -> u32 {
        let syms: Box<[(u32, u32)]> =
            labels.iter().map(|(n, v)| (self.symbols.intern(n), self.symbols.intern(v))).collect();
        let id = self.free_ids.pop().unwrap_or(self.series.len() as u32);
        self.create_in(id, syms, hash)
    }

    /// During WAL replay: the series of log ref `want` with these labels, created at
    /// id `want` so that ids stay what the log says (records written before and after
    /// a restart then agree). A series already in that slot with no samples is one
    /// the running process collected before reusing its id: it goes. Any other clash
    /// (a log that lost a record) gets a fresh id, which the caller sees and remaps.
    pub(crate) fn get_or_create_at(&mut self, want: u32, labels: &[(&str, &str)]) -> u32 {
        let hash = hash_pairs(&mut self.scratch, labels);
        if let Some(id) = self.lookup(hash) {
            return id;
        }
        let slot = want as usize;
        // A ref far beyond every id seen is not worth a table that large.
        if slot > self.series.len() + (1 << 20) {
            return self.create(hash, labels);
        }
        if self.series.len() <= slot {
            self.series.resize_with(slot + 1, || MemSeries::new(Box::new([])));
        }
        if self.live.contains(want) {
            if self.series[slot].first_t != i64::MAX {
                return self.create(hash, labels);
            }
            self.remove_series(want);
        }
        let syms: Box<[(u32, u32)]> =
            labels.iter().map(|(n, v)| (self.symbols.intern(n), self.symbols.intern(v))).collect();
        self.create_in(want, syms, hash)
    }

    /// Puts a new series with interned labels `syms` in the empty slot `id` (or in a
    /// new slot at the end when `id` is the slot count).
    fn create_in(&mut self, id: u32, syms: Box<[(u32, u32)]>, hash: u128) -> u32 {
        for &(n, v) in syms.iter() {
            self.postings.entry(n).or_default().entry(v).or_default().insert(id);
        }
        let s = MemSeries::new(syms);
        if id as usize == self.series.len() {
            self.series.push(s);
        } else {
            self.series[id as usize] = s;
        }
        self.live.insert(id);
        self.by_hash.insert(hash, id);
        id
    }

    /// Removes a series that holds no samples: from the hash index, the postings
    /// and the symbol counts. Its slot is emptied and its id reused.
    pub(crate) fn remove_series(&mut self, id: u32) {
        let s = std::mem::replace(&mut self.series[id as usize], MemSeries::new(Box::new([])));
        let pairs: Vec<(&str, &str)> =
            s.labels.iter().map(|&(n, v)| (&**self.symbols.str(n), &**self.symbols.str(v))).collect();
        let hash = hash_pairs(&mut self.scratch, &pairs);
        self.by_hash.remove(&hash);
        for &(n, v) in s.labels.iter() {
            if let Some(values) = self.postings.get_mut(&n) {
                if let Some(b) = values.get_mut(&v) {
                    b.remove(id);
                    if b.is_empty() {
                        values.remove(&v);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&n);
                }
            }
            self.symbols.release(n);
            self.symbols.release(v);
        }
        self.live.remove(id);
        self.free_ids.push(id);
    }

    pub(crate) fn get_or_create(&mut self, labels: &[(&str, &str)]) -> (u32, bool) {
        self.get_or_create_limited(labels, 0).unwrap_or_else(|| unreachable!("0 is no limit"))
    }

    /// [`HeadInner::get_or_create`], but `None` instead of creating a series when
    /// `max_series` (0: no limit) live series exist already.
    pub(crate) fn get_or_create_limited(&mut self, labels: &[(&str, &str)], max_series: u64) -> Option<(u32, bool)> {
        let hash = hash_pairs(&mut self.scratch, labels);
        match self.lookup(hash) {
            Some(id) => Some((id, false)),
            None if max_series > 0 && self.live.len() >= max_series => None,
            None => Some((self.create(hash, labels), true)),
        }
    }

    pub(crate) fn put(&mut self, id: u32, s: Sample, ooo_floor: i64) -> Put {
        let put = self.series[id as usize].put(s, ooo_floor);
        if put == Put::Stored {
            self.samples += 1;
            self.min_t = self.min_t.min(s.t);
            self.max_t = self.max_t.max(s.t);
        }
        put
    }

    /// Sets metadata for a family; returns whether it changed.
    pub(crate) fn set_metadata(&mut self, family: &str, m: Metadata) -> bool {
        match self.metadata.get(family) {
            Some(old) if *old == m => false,
            _ => {
                self.metadata.insert(family.to_string(), m);
                true
            }
        }
    }

    /// Label pairs of a series as strings.
    pub(crate) fn label_strs(&self, id: u32) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.series[id as usize].labels.iter().map(|&(n, v)| (&**self.symbols.str(n), &**self.symbols.str(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> MemSeries {
        MemSeries::new(Box::new([]))
    }

    #[test]
    fn ordering_rules() {
        let mut s = series();
        assert_eq!(s.put(Sample::new(10, 1.0), i64::MAX), Put::Stored);
        assert_eq!(s.put(Sample::new(10, 1.0), i64::MAX), Put::Duplicate);
        assert_eq!(s.put(Sample::new(10, 2.0), i64::MAX), Put::Rejected(RejectReason::DuplicateTimestamp));
        assert_eq!(s.put(Sample::new(5, 2.0), i64::MAX), Put::Rejected(RejectReason::OutOfOrder));
        assert_eq!(s.put(Sample::new(5, 2.0), 0), Put::Stored);
        let mut r = series();
        for t in [1, 2, 3] {
            r.put(Sample::new(t, t as f64), i64::MAX);
        }
        assert_eq!(r.put(Sample::new(2, 2.0), i64::MAX), Put::Duplicate, "re-send of an older sample");
        assert_eq!(r.put(Sample::new(2, 9.0), i64::MAX), Put::Rejected(RejectReason::DuplicateTimestamp));
        assert_eq!(s.put(Sample::new(5, 2.0), 0), Put::Duplicate);
        assert_eq!(s.put(Sample::new(5, 3.0), 0), Put::Rejected(RejectReason::DuplicateTimestamp));
    }

    #[test]
    fn duplicate_check_survives_chunk_cut() {
        let mut s = series();
        for i in 0..i64::from(SAMPLES_PER_CHUNK) {
            s.put(Sample::new(i, i as f64), i64::MAX);
        }
        let last = i64::from(SAMPLES_PER_CHUNK) - 1;
        assert_eq!(s.put(Sample::new(last, last as f64), i64::MAX), Put::Duplicate);
        assert_eq!(s.put(Sample::new(last + 1, 0.5), i64::MAX), Put::Stored);
        assert_eq!(s.closed.len(), 1);
        assert_eq!(s.put(Sample::new(last + 1, 0.5), i64::MAX), Put::Duplicate);
    }

    #[test]
    fn label_sets_map_to_their_own_series() {
        let mut h = HeadInner::default();
        let (a, b) = ([("__name__", "a"), ("x", "1")], [("__name__", "a"), ("x", "11")]);
        let (ia, created) = h.get_or_create(&a);
        assert!(created);
        let (ib, _) = h.get_or_create(&b);
        assert_ne!(ia, ib);
        assert_eq!(h.get_or_create(&a), (ia, false));
        // Boundaries between names and values are part of the hash.
        let (ic, _) = h.get_or_create(&[("__name__", "a"), ("x1", "1")]);
        assert!(ic != ia && ic != ib);
    }

    #[test]
    fn stale_nan_duplicate_is_bitwise() {
        let mut s = series();
        let stale = strata_model::stale_nan();
        s.put(Sample::new(1, stale), i64::MAX);
        assert_eq!(s.put(Sample::new(1, stale), i64::MAX), Put::Duplicate);
        assert_eq!(s.put(Sample::new(1, f64::NAN), i64::MAX), Put::Rejected(RejectReason::DuplicateTimestamp));
    }
}
