//! Strata's shared vocabulary, with no I/O and no runtime.
//!
//! Every other crate speaks in these types: a series is a sorted [`Labels`] set, a
//! point is a [`Sample`], a selection is a list of [`Matcher`]s over a [`TimeRange`],
//! and data belongs to exactly one [`TenantId`]. The query seam ([`Querier`]) sits
//! here so that neither the PromQL engine nor the storage owns it:
//!
//! ```text
//!   remote write ──► tsdb (WAL, head) ──┐
//!                    block (Parquet) ───┼──► impl Querier ──► promql / HTTP read APIs
//!                    remote stores  ────┘
//! ```

/// Aggregates of downsampled data: per series and aligned window, what PromQL's
/// functions need to answer from a window instead of its raw samples.
pub mod aggr;
/// Prometheus HTTP API times and durations (`time`, `step`, …), parsed totally.
pub mod api_time;
mod dedup;
mod error;
mod labels;
mod matcher;
mod merge;
mod query;
mod sample;
mod tenant;
mod time;

pub use dedup::{DedupIter, dedup_samples, dedup_series, dedup_windowed};
pub use error::{Error, ErrorKind, Result};
pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME, is_valid_label_name, is_valid_metric_name};
pub use matcher::{MatchOp, Matcher};
pub use merge::{merge_samples, merge_series};
pub use query::{Querier, SelectHints, Series, SourceResolution, WindowedSeries};
pub use sample::{STALE_NAN_BITS, Sample, is_stale_nan, stale_nan};
pub use tenant::TenantId;
pub use time::{TimeRange, config_duration, format_resolution, format_rfc3339_ms, now_ms};
