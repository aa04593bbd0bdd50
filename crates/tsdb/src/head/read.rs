//! Reading the head: matcher resolution over postings, and sample decoding done
//! outside the lock from shared chunk handles.

use std::sync::Arc;

use async_trait::async_trait;
use roaring::RoaringBitmap;
use strata_block::Postings;
use strata_model::{Label, Labels, Matcher, Querier, Sample, SelectHints, Series, TimeRange};

use super::spill::ChunkData;
use super::{Head, HeadInner};
use crate::chunk::XorIter;

/// A [`Querier`] over one tenant's head.
#[derive(Debug, Clone)]
pub struct HeadQuerier {
    head: Option<Arc<Head>>,
}

impl HeadQuerier {
    /// `None` stands for a tenant that has written nothing: every answer is empty.
    pub fn new(head: Option<Arc<Head>>) -> Self {
        HeadQuerier { head }
    }
}

/// What a reader (or a cut) copies out under the lock.
pub(crate) struct Snapshot {
    labels: Labels,
    chunks: Vec<ChunkData>,
    open: Option<Vec<u8>>,
    pub(crate) ooo: Vec<Sample>,
}

/// Matcher resolution and label lookups are the shared implementation over the
/// head's symbol-id postings.
impl Postings for HeadInner {
    fn all(&self) -> RoaringBitmap {
        self.live.clone()
    }

    fn get(&self, name: &str, value: &str) -> Option<&RoaringBitmap> {
        self.postings.get(&self.symbols.get(name)?)?.get(&self.symbols.get(value)?)
    }

    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&str, &RoaringBitmap)) {
        let values = self.symbols.get(name).and_then(|n| self.postings.get(&n));
        for (v, b) in values.into_iter().flatten() {
            f(self.symbols.str(*v), b);
        }
    }

    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        for n in self.postings.keys() {
            f(self.symbols.str(*n));
        }
    }
}

impl HeadInner {
    fn in_range(&self, ids: RoaringBitmap, range: TimeRange) -> RoaringBitmap {
        // Every series lies within [min_t, max_t]: a range covering it filters nothing.
        if range.start <= self.min_t && range.end >= self.max_t {
            return ids;
        }
        ids.into_iter().filter(|&id| self.series[id as usize].overlaps(range.start, range.end)).collect()
    }

    pub(crate) fn labels_of(&self, id: u32) -> Labels {
        let s = &self.series[id as usize];
        Labels::from_sorted_unchecked(
            s.labels
                .iter()
                .map(|&(n, v)| Label { name: self.symbols.str(n).clone(), value: self.symbols.str(v).clone() })
                .collect(),
        )
    }

    pub(crate) fn snapshot(&self, id: u32, range: TimeRange, labels_only: bool) -> Snapshot {
        let s = &self.series[id as usize];
        let labels = self.labels_of(id);
        if labels_only {
            return Snapshot { labels, chunks: Vec::new(), open: None, ooo: Vec::new() };
        }
        let chunks = s.closed.iter().filter(|c| range.overlaps(c.min_t, c.max_t)).map(|c| c.data.clone()).collect();
        let open = (!s.open.is_empty() && range.overlaps(s.open_min_t, s.last_t)).then(|| s.open.bytes().to_vec());
        let ooo = s.ooo.iter().copied().filter(|x| range.contains(x.t)).collect();
        Snapshot { labels, chunks, open, ooo }
    }
}

impl Snapshot {
    pub(crate) fn decode(self, range: TimeRange) -> crate::Result<Series> {
        let mut bufs = Vec::with_capacity(self.chunks.len());
        for c in &self.chunks {
            bufs.push(c.load()?);
        }
        let declared: usize = bufs
            .iter()
            .map(|c| &c[..])
            .chain(self.open.as_deref())
            .filter_map(|c| XorIter::new(c).ok())
            .map(|it| usize::from(it.declared_len()))
            .sum();
        let mut samples = Vec::with_capacity(declared);
        for c in bufs.iter().map(|c| &c[..]).chain(self.open.as_deref()) {
            if let Ok(it) = XorIter::new(c) {
                // Chunks are written by this process; a decode error cannot happen
                // short of memory corruption, and would only shorten the answer.
                samples.extend(it.map_while(Result::ok).filter(|s| range.contains(s.t)));
            }
        }
        if !self.ooo.is_empty() {
            samples = strata_model::merge_samples(samples, self.ooo);
        }
        Ok(Series { labels: self.labels, samples })
    }
}

/// Below this many chunks a selection is decoded inline; above, off the async
/// workers and split across the machine's cores.
const PARALLEL_DECODE_CHUNKS: usize = 256;

/// Decodes snapshots into series, keeping their order. Large selections run on
/// blocking threads (decoding is CPU work that must not stall the async workers),
/// one part per core.
async fn decode_all_parallel(snaps: Vec<Snapshot>, range: TimeRange) -> crate::Result<Vec<Series>> {
    let chunks: usize = snaps.iter().map(|s| s.chunks.len() + usize::from(s.open.is_some())).sum();
    if chunks < PARALLEL_DECODE_CHUNKS || tokio::runtime::Handle::try_current().is_err() {
        return snaps.into_iter().map(|s| s.decode(range)).collect();
    }
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let per = snaps.len().div_ceil(parts).max(1);
    let mut snaps = snaps;
    let mut tasks = Vec::new();
    while !snaps.is_empty() {
        let rest = snaps.split_off(per.min(snaps.len()));
        let part = std::mem::replace(&mut snaps, rest);
        tasks.push(tokio::task::spawn_blocking(move || {
            part.into_iter().map(|s| s.decode(range)).collect::<crate::Result<Vec<_>>>()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        match t.await {
            Ok(part) => out.extend(part?),
            // A panic while decoding is a bug; surface it where it happened.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    Ok(out)
}

#[async_trait]
impl Querier for HeadQuerier {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> strata_model::Result<Vec<Series>> {
        let Some(head) = &self.head else { return Ok(Vec::new()) };
        if matchers.is_empty() {
            return Ok(Vec::new());
        }
        let snaps: Vec<Snapshot> = {
            let g = head.inner.read();
            let ids = g.in_range(g.resolve(matchers), hints.range);
            let mut snaps: Vec<Snapshot> =
                ids.into_iter().map(|id| g.snapshot(id, hints.range, hints.labels_only)).collect();
            drop(g);
            snaps.sort_by(|a, b| a.labels.cmp(&b.labels));
            if hints.limit > 0 {
                snaps.truncate(hints.limit);
            }
            snaps
        };
        let mut out = decode_all_parallel(snaps, hints.range).await.map_err(strata_model::Error::storage)?;
        if !hints.labels_only {
            // A series can overlap the range by its extent yet have no sample inside it.
            out.retain(|s| !s.samples.is_empty());
        }
        Ok(out)
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> strata_model::Result<Vec<String>> {
        let Some(head) = &self.head else { return Ok(Vec::new()) };
        let g = head.inner.read();
        let ids = g.in_range(g.resolve(matchers), range);
        let mut names = g.names_of(&ids);
        names.sort_unstable();
        Ok(names)
    }

    async fn label_values(
        &self,
        name: &str,
        range: TimeRange,
        matchers: &[Matcher],
    ) -> strata_model::Result<Vec<String>> {
        let Some(head) = &self.head else { return Ok(Vec::new()) };
        let g = head.inner.read();
        let ids = g.in_range(g.resolve(matchers), range);
        let mut out = g.values_of(name, &ids);
        out.sort_unstable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_model::MatchOp;
    use strata_model::TenantId;

    type Fixture<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    fn head_with(series: &[Fixture<'_>]) -> Arc<Head> {
        let head = Arc::new(Head::new(TenantId::new("t").unwrap()));
        {
            let mut g = head.inner.write();
            for (labels, samples) in series {
                let (id, _) = g.get_or_create(labels);
                for &(t, v) in *samples {
                    g.put(id, Sample::new(t, v), i64::MAX);
                }
            }
        }
        head
    }

    #[tokio::test]
    async fn matchers_follow_prometheus_semantics() {
        let head = head_with(&[
            (&[("__name__", "up"), ("job", "a")], &[(1, 1.0)]),
            (&[("__name__", "up"), ("job", "b")], &[(1, 2.0)]),
            (&[("__name__", "up")], &[(1, 3.0)]),
        ]);
        let q = HeadQuerier::new(Some(head));
        let sel = |ms: Vec<Matcher>| {
            let q = q.clone();
            async move {
                q.select(&SelectHints::range(0, 10), &ms)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.labels.to_string())
                    .collect::<Vec<_>>()
            }
        };
        let name = || Matcher::equal("__name__", "up");
        assert_eq!(sel(vec![name(), Matcher::equal("job", "a")]).await, vec![r#"up{job="a"}"#]);
        // job="" selects series without the label.
        assert_eq!(sel(vec![name(), Matcher::equal("job", "")]).await, vec!["up"]);
        // != keeps series without the label.
        assert_eq!(
            sel(vec![name(), Matcher::new(MatchOp::NotEqual, "job", "a").unwrap()]).await,
            vec!["up", r#"up{job="b"}"#]
        );
        assert_eq!(sel(vec![Matcher::new(MatchOp::RegexMatch, "job", "a|b").unwrap()]).await.len(), 2);
        assert_eq!(sel(vec![Matcher::new(MatchOp::RegexMatch, "job", ".+").unwrap()]).await.len(), 2);
        assert_eq!(sel(vec![name(), Matcher::new(MatchOp::RegexNoMatch, "job", "a").unwrap()]).await.len(), 2);
    }

    #[tokio::test]
    async fn time_range_filters_samples_and_series() {
        let head = head_with(&[
            (&[("__name__", "x"), ("i", "1")], &[(10, 1.0), (20, 2.0), (30, 3.0)]),
            (&[("__name__", "x"), ("i", "2")], &[(100, 1.0)]),
        ]);
        let q = HeadQuerier::new(Some(head));
        let got = q.select(&SelectHints::range(15, 30), &[Matcher::equal("__name__", "x")]).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, vec![Sample::new(20, 2.0), Sample::new(30, 3.0)]);
        assert_eq!(q.label_values("i", TimeRange::new(50, 200), &[]).await.unwrap(), vec!["2"]);
        assert_eq!(q.label_names(TimeRange::new(0, 5), &[]).await.unwrap(), Vec::<String>::new());
        assert_eq!(q.label_names(TimeRange::all(), &[]).await.unwrap(), vec!["__name__", "i"]);
    }

    #[test]
    fn merge_prefers_in_order_samples() {
        let a = vec![Sample::new(1, 1.0), Sample::new(3, 3.0)];
        let b = vec![Sample::new(2, 2.0), Sample::new(3, 9.0)];
        assert_eq!(
            strata_model::merge_samples(a, b),
            vec![Sample::new(1, 1.0), Sample::new(2, 2.0), Sample::new(3, 3.0)]
        );
    }
}
