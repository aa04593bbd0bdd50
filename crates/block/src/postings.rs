//! Matcher resolution over an inverted index of label pairs, shared by the head
//! (symbol ids) and block indexes (strings): one implementation of Prometheus's
//! selection rules, whatever the index stores.
//!
//! ```text
//!   matchers ─► positive ones intersect their value bitmaps ─► minus the series a
//!   negative-or-empty-matching matcher excludes ─► series ids
//!   ids ─► label names / values whose bitmaps meet them
//! ```

use roaring::RoaringBitmap;
use strata_model::{MatchOp, Matcher};

/// An inverted index: label name → label value → ids of the series carrying it.
pub trait Postings {
    /// Ids of all series (those without any label included).
    fn all(&self) -> RoaringBitmap;
    /// The series with `name="value"`.
    fn get(&self, name: &str, value: &str) -> Option<&RoaringBitmap>;
    /// Calls `f` with every value of `name` and its series.
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&str, &RoaringBitmap));
    /// Calls `f` with every label name.
    fn for_each_name(&self, f: &mut dyn FnMut(&str));

    /// Series ids matching every matcher (all series when `matchers` is empty). A
    /// missing label equals the empty string, as in Prometheus.
    fn resolve(&self, matchers: &[Matcher]) -> RoaringBitmap {
        let mut positive: Option<RoaringBitmap> = None;
        let mut negative = RoaringBitmap::new();
        for m in matchers {
            let union = |want: bool| -> RoaringBitmap {
                let mut out = RoaringBitmap::new();
                if want && m.op == MatchOp::Equal {
                    if let Some(b) = self.get(&m.name, &m.value) {
                        out |= b;
                    }
                    return out;
                }
                if let (true, Some(set)) = (want, m.set_matches()) {
                    for v in set {
                        if let Some(b) = self.get(&m.name, v) {
                            out |= b;
                        }
                    }
                    return out;
                }
                self.for_each_value(&m.name, &mut |v, b| {
                    if m.matches(v) == want {
                        out |= b;
                    }
                });
                out
            };
            if m.matches_empty() {
                negative |= union(false);
            } else {
                let b = union(true);
                positive = Some(match positive {
                    Some(p) => p & b,
                    None => b,
                });
            }
        }
        let mut ids = positive.unwrap_or_else(|| self.all());
        ids -= negative;
        ids
    }

    /// Label names carried by at least one of `ids`, unsorted.
    fn names_of(&self, ids: &RoaringBitmap) -> Vec<String> {
        let mut names = Vec::new();
        self.for_each_name(&mut |n| names.push(n.to_string()));
        names.retain(|n| {
            let mut hit = false;
            self.for_each_value(n, &mut |_, b| hit = hit || !b.is_disjoint(ids));
            hit
        });
        names
    }

    /// Values of `name` carried by at least one of `ids`, unsorted.
    fn values_of(&self, name: &str, ids: &RoaringBitmap) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_value(name, &mut |v, b| {
            if !b.is_disjoint(ids) {
                out.push(v.to_string());
            }
        });
        out
    }
}
