//! The query seam: what the PromQL engine and the HTTP read APIs ask of storage.

use async_trait::async_trait;

use crate::aggr::AggrWindow;
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
    /// The query's step in ms (0 for an instant query): how far apart the
    /// evaluations that read this selection are.
    pub step: i64,
    /// The range of the range selector (`5m` in `rate(x[5m])`) in ms; 0 for an
    /// instant vector selector.
    pub window: i64,
    /// For [`Querier::select_windows`]: the coarsest downsampled resolution (ms)
    /// the caller can use. 0 asks for raw samples only; any other value lets
    /// storage answer a time span from the coarsest resolution at most this coarse
    /// that covers it, fill what that leaves with finer data, and fill what raw
    /// data no longer covers (expired) with coarser data.
    pub max_resolution: i64,
}

impl SelectHints {
    pub fn range(start: i64, end: i64) -> Self {
        SelectHints {
            range: TimeRange::new(start, end),
            labels_only: false,
            limit: 0,
            func: None,
            step: 0,
            window: 0,
            max_resolution: 0,
        }
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

/// A series of which some time spans may come as downsampled windows
/// ([`Querier::select_windows`]).
///
/// `samples` and `windows` are each in time order and do not overlap: no raw
/// sample lies within a window's `[first_t, last_t]`. A window stands for its
/// samples at its `last_t` (where a range function's window `(t - range, t]` takes
/// it in); `resolution` is the coarsest resolution among the windows (0: none).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowedSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub windows: Vec<AggrWindow>,
    pub resolution: i64,
}

impl From<Series> for WindowedSeries {
    fn from(s: Series) -> Self {
        WindowedSeries { labels: s.labels, samples: s.samples, windows: Vec::new(), resolution: 0 }
    }
}

impl WindowedSeries {
    /// Merges answers of several parts (each sorted by labels) into one series per
    /// label set: samples merged by timestamp (the first part wins at an equal
    /// one), windows merged by start (likewise), and raw samples that fall within
    /// a window's span dropped (the window holds them).
    pub fn merge(parts: Vec<Vec<WindowedSeries>>) -> Vec<WindowedSeries> {
        use std::collections::btree_map::Entry;
        let mut by: std::collections::BTreeMap<Labels, WindowedSeries> = std::collections::BTreeMap::new();
        for s in parts.into_iter().flatten() {
            match by.entry(s.labels.clone()) {
                Entry::Vacant(e) => {
                    e.insert(s);
                }
                Entry::Occupied(mut e) => {
                    let have = e.get_mut();
                    have.samples = crate::merge_samples(std::mem::take(&mut have.samples), s.samples);
                    have.resolution = have.resolution.max(s.resolution);
                    if !s.windows.is_empty() {
                        have.windows.extend(s.windows);
                        // Stable: at an equal start the earlier part's window stays first.
                        have.windows.sort_by_key(|w| w.t);
                        have.windows.dedup_by_key(|w| w.t);
                    }
                }
            }
        }
        by.into_values()
            .map(|mut s| {
                s.drop_covered_samples();
                s
            })
            .collect()
    }

    /// Drops raw samples inside a window's `[first_t, last_t]`.
    pub fn drop_covered_samples(&mut self) {
        if self.windows.is_empty() || self.samples.is_empty() {
            return;
        }
        let windows = &self.windows;
        let mut i = 0;
        self.samples.retain(|x| {
            while i < windows.len() && windows[i].last_t < x.t {
                i += 1;
            }
            !(i < windows.len() && windows[i].first_t <= x.t)
        });
    }
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

    /// Like [`Querier::select`], but with `hints.max_resolution > 0` time spans
    /// covered by downsampled data may come as windows instead of raw samples (see
    /// [`SelectHints::max_resolution`] for which). Windows a range function or
    /// lookback reaching back from `hints.range.start` needs are included: up to
    /// two windows' length before it. The default answers raw samples only, which
    /// is always correct: storage without downsampled data need not override it.
    async fn select_windows(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<WindowedSeries>> {
        Ok(self.select(hints, matchers).await?.into_iter().map(WindowedSeries::from).collect())
    }

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

/// Which resolution a query reads (Thanos's `max_source_resolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceResolution {
    /// Raw samples only (`raw`, `0s`): where raw data has expired, nothing.
    Raw,
    /// Downsampled data at most this coarse (ms), raw where none covers a span,
    /// coarser where raw has expired.
    UpTo(i64),
    /// Per selector, the coarsest resolution that leaves every step at least five
    /// windows and every range-function window at least two (`step / 5`,
    /// `range / 2`), finer data where none covers a span, coarser where raw has
    /// expired.
    #[default]
    Auto,
}

impl SourceResolution {
    /// Parses `raw`, `auto` or a duration (`0s`, `5m`, `1h`, `300s`, a number of
    /// seconds); `None` for anything else.
    pub fn parse(s: &str) -> Option<SourceResolution> {
        match s.trim() {
            "raw" => Some(SourceResolution::Raw),
            "auto" => Some(SourceResolution::Auto),
            other => {
                let ms = crate::api_time::parse_duration(other).ok()?;
                match ms {
                    ..0 => None,
                    0 => Some(SourceResolution::Raw),
                    ms => Some(SourceResolution::UpTo(ms)),
                }
            }
        }
    }

    /// The [`SelectHints::max_resolution`] for a selection read every `step` ms (0:
    /// once) through a window of `window` ms (0: an instant vector selector).
    pub fn max_resolution(self, step: i64, window: i64) -> i64 {
        let cap = |r: i64| {
            let r = if window > 0 { r.min(window / 2) } else { r };
            r.max(1)
        };
        match self {
            SourceResolution::Raw => 0,
            SourceResolution::UpTo(r) => cap(r),
            SourceResolution::Auto => cap(if step > 0 { step / 5 } else { i64::MAX }),
        }
    }
}

impl std::fmt::Display for SourceResolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceResolution::Raw => f.write_str("raw"),
            SourceResolution::Auto => f.write_str("auto"),
            SourceResolution::UpTo(ms) => write!(f, "{}", crate::time::format_resolution(*ms)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for SourceResolution {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SourceResolution::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid max_source_resolution {s:?}: want raw, auto or a duration (5m, 1h)"
            ))
        })
    }
}
