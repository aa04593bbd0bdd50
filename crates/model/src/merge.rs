//! Merging series from several sources that may overlap (head and blocks, two
//! copies of one block): one series per label set, samples in time order, one
//! sample per timestamp. Pure, so it is property-tested for idempotence.

use std::collections::HashMap;

use crate::{Labels, Sample, Series};

/// Merges two time-sorted sample lists; at equal timestamps the sample of `a` wins.
pub fn merge_samples(a: Vec<Sample>, b: Vec<Sample>) -> Vec<Sample> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    if a[a.len() - 1].t < b[0].t {
        let mut a = a;
        a.extend(b);
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].t.cmp(&b[j].t) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Merges series sets: series with equal labels are combined with
/// [`merge_samples`] (earlier sets win ties). The result is sorted by labels.
pub fn merge_series(sets: Vec<Vec<Series>>) -> Vec<Series> {
    let mut nonempty = sets.into_iter().filter(|s| !s.is_empty());
    let Some(first) = nonempty.next() else { return Vec::new() };
    let mut by_labels: HashMap<Labels, Vec<Sample>> = first.into_iter().map(|s| (s.labels, s.samples)).collect();
    for set in nonempty {
        for s in set {
            match by_labels.get_mut(&s.labels) {
                Some(existing) => {
                    let a = std::mem::take(existing);
                    *existing = merge_samples(a, s.samples);
                }
                None => {
                    by_labels.insert(s.labels, s.samples);
                }
            }
        }
    }
    let mut out: Vec<Series> = by_labels.into_iter().map(|(labels, samples)| Series { labels, samples }).collect();
    out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn samples() -> impl Strategy<Value = Vec<Sample>> {
        proptest::collection::btree_map(0i64..200, -5i32..5, 0..40)
            .prop_map(|m| m.into_iter().map(|(t, v)| Sample::new(t, f64::from(v))).collect())
    }

    proptest! {
        #[test]
        fn merge_is_sorted_unique_and_complete(a in samples(), b in samples()) {
            let m = merge_samples(a.clone(), b.clone());
            prop_assert!(m.windows(2).all(|w| w[0].t < w[1].t));
            for s in a.iter() { prop_assert!(m.contains(s)); }
            for s in b.iter() { prop_assert!(m.iter().any(|x| x.t == s.t)); }
        }

        #[test]
        fn merging_with_itself_changes_nothing(a in samples()) {
            prop_assert_eq!(merge_samples(a.clone(), a.clone()), a.clone());
            let s = vec![Series { labels: Labels::from_pairs([("a", "1")]), samples: a.clone() }];
            prop_assert_eq!(merge_series(vec![s.clone(), s.clone()]), s);
        }
    }
}
