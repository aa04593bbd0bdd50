//! The query seam: what the PromQL engine and the HTTP read APIs ask of storage.

use async_trait::async_trait;

use crate::{Labels, Matcher, Result, Sample, TimeRange};

/// Hints that let a querier read less.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectHints {
    /// Samples with timestamps in this closed range are wanted.
    pub range: TimeRange,
    /// Only the label sets are needed (the `series` API); samples may be left empty.
    pub labels_only: bool,
    /// Stop after this many series (0 means no limit). Only a hint: callers must
    /// still apply their own limit.
    pub limit: usize,
    /// The PromQL function the selection feeds, for a range selector that is a
    /// function's argument (`rate` for `rate(x[5m])`): lets storage treat the data
    /// as a counter where that matters (HA replica dedup) or pick an aggregate.
    pub func: Option<&'static str>,
}

impl SelectHints {
    pub fn range(start: i64, end: i64) -> Self {
        SelectHints { range: TimeRange::new(start, end), labels_only: false, limit: 0, func: None }
    }

    /// Whether the selection feeds a function that reads its input as a counter.
    pub fn reads_counter(&self) -> bool {
        matches!(self.func, Some("rate" | "increase" | "irate" | "resets"))
    }
}

/// One series with its samples in the selected range, sorted by timestamp with no
/// duplicate timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Read access to one tenant's data.
///
/// Implemented by the head, by blocks, by remote stores, and by merges of those.
/// A querier is made per request: a merge that answers without one of its parts
/// (a store down while partial responses are allowed) says so in [`Querier::warnings`].
#[async_trait]
pub trait Querier: Send + Sync + std::fmt::Debug {
    /// Series matching every matcher that have at least one sample in
    /// `hints.range`, sorted by labels. With `labels_only`, `samples` may be empty.
    /// An empty matcher list selects nothing (callers reject it before asking).
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>>;

    /// Sorted, unique label names of the series selected by `matchers` (all series
    /// when empty) with samples in `range`.
    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>>;

    /// Sorted, unique, non-empty values of label `name` over the series selected by
    /// `matchers` (all series when empty) with samples in `range`.
    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>>;

    /// Why answers given so far may lack data (Prometheus's `warnings`), each
    /// reason once, in the order first met: a store that failed with an
    /// [`crate::ErrorKind::Unavailable`] error left out instead of failing the call.
    /// Empty for queriers that never leave anything out (the default).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}
