//! An in-memory [`Querier`] for tests and the conformance runner.

use async_trait::async_trait;
use strata_model::{Labels, Matcher, Querier, Result, Sample, SelectHints, Series, TimeRange};

/// Series kept in memory, sorted by labels.
#[derive(Debug, Default, Clone)]
pub struct MemQuerier {
    series: Vec<Series>,
}

impl MemQuerier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series with `labels`, creating it if needed. Samples are
    /// kept sorted by time; a repeated timestamp keeps the newest value.
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let i = match self.series.binary_search_by(|s| s.labels.cmp(&labels)) {
            Ok(i) => i,
            Err(i) => {
                self.series.insert(i, Series { labels, samples: Vec::new() });
                i
            }
        };
        let s = &mut self.series[i].samples;
        s.extend(samples);
        s.sort_by_key(|x| x.t);
        // Keep the last sample written for each timestamp.
        let mut out: Vec<Sample> = Vec::with_capacity(s.len());
        for x in s.drain(..) {
            match out.last_mut() {
                Some(l) if l.t == x.t => *l = x,
                _ => out.push(x),
            }
        }
        *s = out;
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }

    fn matching<'a>(&'a self, range: TimeRange, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| {
            matchers.iter().all(|m| m.matches_labels(&s.labels)) && s.samples.iter().any(|x| range.contains(x.t))
        })
    }
}

#[async_trait]
impl Querier for MemQuerier {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>> {
        if matchers.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .matching(hints.range, matchers)
            .map(|s| Series {
                labels: s.labels.clone(),
                samples: if hints.labels_only {
                    Vec::new()
                } else {
                    s.samples.iter().filter(|x| hints.range.contains(x.t)).copied().collect()
                },
            })
            .collect())
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut out: Vec<String> =
            self.matching(range, matchers).flat_map(|s| s.labels.iter().map(|l| l.name.to_string())).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut out: Vec<String> =
            self.matching(range, matchers).filter_map(|s| s.labels.get(name).map(str::to_string)).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}
