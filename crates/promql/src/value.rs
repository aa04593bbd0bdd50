//! Query results as the engine hands them to callers.

use strata_model::{Labels, Sample};

/// One series of a range result: its labels and its points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Evaluation timestamp in milliseconds.
    pub t: i64,
    pub v: f64,
}

/// The value of a query, in the four shapes of the Prometheus API.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Matrix(Vec<RangeSeries>),
    Vector(Vec<InstantSample>),
    Scalar { t: i64, v: f64 },
    String { t: i64, s: String },
}

impl QueryValue {
    /// The `resultType` name used by the Prometheus HTTP API.
    pub fn type_name(&self) -> &'static str {
        match self {
            QueryValue::Matrix(_) => "matrix",
            QueryValue::Vector(_) => "vector",
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::String { .. } => "string",
        }
    }
}

/// A query's value plus the annotations Prometheus reports beside it
/// (`warnings` and `infos` in the API answer).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: QueryValue,
    /// Messages starting with "PromQL warning: ".
    pub warnings: Vec<String>,
    /// Messages starting with "PromQL info: ".
    pub infos: Vec<String>,
    /// What the evaluation cost, for the API's `stats` parameter.
    pub stats: QueryStats,
}

/// Sample counts of one query, as Prometheus's `stats` report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Samples the query's selectors fetched from storage (each selection counted
    /// once per use in the query).
    pub total_queryable_samples: u64,
    /// The most samples held at once, as Strata counts it: the fetched total, or
    /// the largest value of any node (selector, function, operator; all its steps
    /// together) when larger. Bounded by `max_samples`.
    pub peak_samples: u64,
}

/// Annotations gathered while evaluating, deduplicated, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Annotations {
    pub(crate) warnings: Vec<String>,
    pub(crate) infos: Vec<String>,
}

impl Annotations {
    pub(crate) fn warn(&mut self, msg: String) {
        let msg = format!("PromQL warning: {msg}");
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub(crate) fn info(&mut self, msg: String) {
        let msg = format!("PromQL info: {msg}");
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }
}
