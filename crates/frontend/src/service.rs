//! The query-service seam: one trait for instant and range queries that the HTTP
//! handlers call and that every layer (split, cache, ...) both implements and wraps.

use std::sync::Arc;

use async_trait::async_trait;
use strata_model::TenantId;

use crate::error::Result;
use crate::response::PromResponse;

/// Parameters of a query other than the query text and its times, in request order
/// grouped by name: `dedup`, `replicaLabels[]`, `partial_response`,
/// `max_source_resolution`, `lookback_delta`, `limit`, `stats`, `timeout`, ...
/// They are passed on to the service below unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ExtraParams(Vec<(String, String)>);

/// Names the frontend reads itself; never part of [`ExtraParams`].
const OWN_PARAMS: [&str; 5] = ["query", "start", "end", "step", "time"];

/// Parameters that do not change an answer, so they are not part of a cache key.
const NOT_IN_CACHE_KEY: [&str; 1] = ["timeout"];

impl ExtraParams {
    /// From a request's pairs: the frontend's own parameters and empty values are
    /// dropped, the rest grouped by name (stable, so repeated names keep their order).
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut v: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, v)| !v.is_empty() && !OWN_PARAMS.contains(&k.as_str())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        ExtraParams(v)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The parameters that can change an answer, form-encoded, for cache keys.
    pub(crate) fn cache_key_part(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            if !NOT_IN_CACHE_KEY.contains(&k.as_str()) {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }
}

/// A range query: `query` evaluated at `start`, `start + step`, ... up to `end`.
/// Times and step are in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    pub query: String,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub params: ExtraParams,
}

impl RangeQuery {
    /// The same query over another span (a piece of a split).
    pub fn with_range(&self, start: i64, end: i64) -> RangeQuery {
        RangeQuery { start, end, ..self.clone() }
    }
}

/// An instant query: `query` evaluated at `time` (milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct InstantQuery {
    pub query: String,
    pub time: i64,
    pub params: ExtraParams,
}

/// Answers PromQL queries for a tenant.
///
/// Implemented by the downstreams (an HTTP Prometheus-compatible API, or an
/// in-process engine) and by every layer, which wraps another `QueryService`.
#[async_trait]
pub trait QueryService: Send + Sync + std::fmt::Debug {
    /// Evaluates a range query. Callers guarantee `start <= end` and `step > 0`.
    /// The answer's data is a matrix whose points lie on `start + k * step` for
    /// `start + k * step <= end`, series sorted by labels; an answer is a pure
    /// function of the query, its parameters and the data (so a piece of a range
    /// gives exactly that part of the whole range's answer), except that the `@
    /// start()` and `@ end()` modifiers refer to this call's `start` and `end`.
    /// An evaluation error is an [`crate::Error::Api`] with Prometheus's status and
    /// `errorType`.
    async fn range(&self, tenant: &TenantId, q: &RangeQuery) -> Result<PromResponse>;

    /// Evaluates an instant query. The answer's data is any of the four types.
    async fn instant(&self, tenant: &TenantId, q: &InstantQuery) -> Result<PromResponse>;
}

#[async_trait]
impl<S: QueryService + ?Sized> QueryService for Arc<S> {
    async fn range(&self, tenant: &TenantId, q: &RangeQuery) -> Result<PromResponse> {
        (**self).range(tenant, q).await
    }

    async fn instant(&self, tenant: &TenantId, q: &InstantQuery) -> Result<PromResponse> {
        (**self).instant(tenant, q).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_params_drop_own_and_empty_and_group_by_name() {
        let p = ExtraParams::new(
            [("replicaLabels[]", "b"), ("query", "up"), ("dedup", "true"), ("replicaLabels[]", "a"), ("x", "")]
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(p.cache_key_part(), "dedup=true&replicaLabels%5B%5D=b&replicaLabels%5B%5D=a");
        let t = ExtraParams::new([("timeout".to_string(), "1s".to_string())]);
        assert_eq!(t.cache_key_part(), "");
        assert_eq!(t.get("timeout"), Some("1s"));
    }
}
