//! Cardinality of one tenant's head for `/api/v1/status/tsdb`: the figures of
//! Prometheus's `index.MemPostings.Stats`, read from the head's postings.
//!
//! ```text
//!  postings: name ─► value ─► series ids
//!    __name__ values          ─► series per metric name
//!    values per name          ─► label value count per label name
//!    Σ len(value) × series    ─► bytes of label values per label name
//!    each (name, value)       ─► series per label pair
//!  each list: largest `limit`, ties by name
//! ```

use strata_model::METRIC_NAME;

use super::Head;

/// A name and its count, as Prometheus's `index.Stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardinalityStat {
    pub name: String,
    pub count: u64,
}

/// The head's cardinality: totals and the largest entries of each list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cardinality {
    pub num_series: u64,
    /// Distinct (label name, label value) pairs.
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    /// Oldest sample in the head (`i64::MAX` when it has none, as Prometheus says).
    pub min_time: i64,
    /// Newest sample in the head (`i64::MIN` when it has none).
    pub max_time: i64,
    pub series_count_by_metric_name: Vec<CardinalityStat>,
    pub label_value_count_by_label_name: Vec<CardinalityStat>,
    /// Bytes of label values per label name, each value counted once per series.
    pub memory_in_bytes_by_label_name: Vec<CardinalityStat>,
    /// Series per `name=value` pair.
    pub series_count_by_label_value_pair: Vec<CardinalityStat>,
}

/// The `limit` largest of `items` by count, largest first, ties by name; `name`
/// is only called for those kept.
fn top<K: Copy>(items: Vec<(K, u64)>, limit: usize, name: impl Fn(K) -> String) -> Vec<CardinalityStat> {
    if limit == 0 {
        return Vec::new();
    }
    let mut named: Vec<(u64, K)> = items.into_iter().map(|(k, c)| (c, k)).collect();
    // Only the `limit` largest counts (and ties with the last of them, cut by name
    // below) are named.
    if named.len() > limit {
        named.select_nth_unstable_by(limit - 1, |a, b| b.0.cmp(&a.0));
        let edge = named[limit - 1].0;
        named.retain(|(c, _)| *c >= edge);
    }
    let mut out: Vec<CardinalityStat> =
        named.into_iter().map(|(count, k)| CardinalityStat { name: name(k), count }).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    out.truncate(limit);
    out
}

impl Head {
    /// The head's cardinality with at most `limit` entries per list. Holds the read
    /// lock while it counts (one pass over the postings): call it off the async workers.
    pub fn cardinality(&self, limit: usize) -> Cardinality {
        let chunk_count = self.stats().chunks;
        let g = self.inner.read();
        let sym = |id: u32| g.symbols.str(id).to_string();
        let name_sym = g.symbols.get(METRIC_NAME);
        let (mut by_metric, mut values_per_name, mut bytes_per_name, mut pairs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut num_label_pairs = 0u64;
        for (&n, values) in &g.postings {
            values_per_name.push((n, values.len() as u64));
            num_label_pairs += values.len() as u64;
            let mut bytes = 0u64;
            for (&v, ids) in values {
                let series = ids.len();
                if Some(n) == name_sym {
                    by_metric.push((v, series));
                }
                pairs.push(((n, v), series));
                bytes = bytes.saturating_add((g.symbols.str(v).len() as u64).saturating_mul(series));
            }
            bytes_per_name.push((n, bytes));
        }
        Cardinality {
            num_series: g.live.len(),
            num_label_pairs,
            chunk_count,
            min_time: g.min_t,
            max_time: g.max_t,
            series_count_by_metric_name: top(by_metric, limit, sym),
            label_value_count_by_label_name: top(values_per_name, limit, sym),
            memory_in_bytes_by_label_name: top(bytes_per_name, limit, sym),
            series_count_by_label_value_pair: top(pairs, limit, |(n, v)| format!("{}={}", sym(n), sym(v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_model::{Sample, TenantId};

    use super::*;

    fn head(series: &[&[(&str, &str)]]) -> Head {
        let h = Head::new(TenantId::new("t").unwrap());
        let mut g = h.inner.write();
        for (i, labels) in series.iter().enumerate() {
            let (id, _) = g.get_or_create(labels);
            g.put(id, Sample { t: 1000 + i as i64, v: 1.0 }, i64::MIN);
        }
        drop(g);
        h
    }

    fn stat(name: &str, count: u64) -> CardinalityStat {
        CardinalityStat { name: name.into(), count }
    }

    #[test]
    fn counts_like_prometheus_postings_stats() {
        let h = head(&[
            &[("__name__", "up"), ("job", "a")],
            &[("__name__", "up"), ("job", "bb")],
            &[("__name__", "go_info"), ("job", "a"), ("version", "go1")],
        ]);
        let c = h.cardinality(10);
        assert_eq!((c.num_series, c.num_label_pairs, c.chunk_count), (3, 5, 3));
        assert_eq!((c.min_time, c.max_time), (1000, 1002));
        assert_eq!(c.series_count_by_metric_name, vec![stat("up", 2), stat("go_info", 1)]);
        assert_eq!(c.label_value_count_by_label_name, vec![stat("__name__", 2), stat("job", 2), stat("version", 1)]);
        // __name__: "up" × 2 + "go_info" × 1; job: "a" × 2 + "bb" × 1; version: "go1".
        assert_eq!(c.memory_in_bytes_by_label_name, vec![stat("__name__", 11), stat("job", 4), stat("version", 3)]);
        assert_eq!(c.series_count_by_label_value_pair[..2], [stat("__name__=up", 2), stat("job=a", 2)]);
        assert_eq!(c.series_count_by_label_value_pair.len(), 5);
    }

    #[test]
    fn limit_keeps_the_largest_with_ties_by_name() {
        let h =
            head(&[&[("__name__", "c")], &[("__name__", "b")], &[("__name__", "a")], &[("__name__", "a"), ("x", "1")]]);
        let c = h.cardinality(2);
        assert_eq!(c.series_count_by_metric_name, vec![stat("a", 2), stat("b", 1)]);
        assert!(h.cardinality(0).series_count_by_metric_name.is_empty());
    }

    #[test]
    fn an_empty_head_has_prometheus_empty_bounds() {
        let c = Head::new(TenantId::new("t").unwrap()).cardinality(10);
        assert_eq!((c.num_series, c.min_time, c.max_time), (0, i64::MAX, i64::MIN));
        assert!(c.series_count_by_label_value_pair.is_empty());
    }
}
