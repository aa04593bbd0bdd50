//! Strata's PromQL engine: Prometheus 3 query semantics over the model crate's
//! [`Querier`](strata_model::Querier) seam, with no I/O of its own.
//!
//! A query is parsed by `promql-parser`, walked once to find every selector and the
//! time range it reads (offsets, `@`, subqueries and the lookback delta included),
//! fetched with one `select` per selector, then evaluated synchronously: each node
//! once over all steps, range functions sliding a window over sorted samples.
//!
//! ```text
//!   query text ──► parse ──► plan selectors ──► Querier::select (async, once each)
//!                                                      │
//!                         QueryResult ◄── evaluate all steps (sync, no I/O)
//!                  (value + warnings/infos)
//! ```
//!
//! Entry points: [`Engine::instant_query`] and [`Engine::range_query`] return a
//! [`QueryResult`] (a [`QueryValue`] plus Prometheus's warning and info
//! annotations). A server that must not run CPU-heavy work on its async workers
//! uses [`Engine::prepare_instant`]/[`Engine::prepare_range`] (async, fetches) and
//! then [`PreparedQuery::execute`] (sync, evaluates) on a blocking thread. Errors
//! classify through [`Error::kind`].
//!
//! Native histograms are out of scope: the functions that need them return an
//! error. [`test_source::MemQuerier`] is an in-memory source for tests.

mod engine;
mod error;
mod eval;
mod syntax;
pub mod test_source;
mod value;

pub use engine::{
    Engine, EngineOptions, MAX_POINTS_PER_SERIES, PreparedQuery, WINDOW_FUNCTIONS, parse, parse_selector,
};
pub use error::{Error, ErrorKind, Result};
pub use eval::{PromFloat, format_float};
pub use value::{InstantSample, QueryResult, QueryStats, QueryValue, RangeSeries};
