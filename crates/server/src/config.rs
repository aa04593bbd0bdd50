//! Limits and behaviour of the HTTP surface, embedded in the binary's config file.

use std::time::Duration;

use serde::Deserialize;

/// Server-side limits and tenant handling. Every field has a default, so an empty
/// block is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Tenant used when a request carries no `X-Scope-OrgID` header.
    pub default_tenant: String,
    /// Largest compressed remote-write or remote-read body accepted, in bytes (413 above).
    pub max_request_body_bytes: usize,
    /// Largest decompressed size a snappy body may declare, in bytes; checked before
    /// any allocation (413 above).
    pub max_decompressed_bytes: usize,
    /// Longest label name accepted, in bytes.
    pub max_label_name_length: usize,
    /// Longest label value accepted, in bytes.
    pub max_label_value_length: usize,
    /// With remote write 2.0, store a zero-valued sample at a series' created
    /// timestamp when it is older than the series' first sample (as Prometheus's
    /// `created-timestamp-zero-ingestion` feature does). Off by default.
    pub ingest_created_timestamps: bool,
    /// How far back an instant selector looks for a sample (Prometheus's
    /// `--query.lookback-delta`).
    #[serde(deserialize_with = "duration")]
    pub query_lookback_delta: Duration,
    /// Longest a PromQL query may run; a request's `timeout` may shorten it.
    #[serde(deserialize_with = "duration")]
    pub query_timeout: Duration,
    /// How far ahead of the wall clock a sample may be (Mimir's
    /// `creation_grace_period`); later samples are refused per sample with reason
    /// `too_far_in_future`, the rest of the request is stored.
    #[serde(deserialize_with = "duration")]
    pub creation_grace_period: Duration,
    /// Whether query and read APIs answer without the blocks' data (HTTP 200 with a
    /// Prometheus `warnings` entry) while the object store is down, rather than
    /// failing with 503. A request's `partial_response` parameter overrides it.
    /// Remote read has no warnings and always answers 503 then.
    pub query_partial_response: bool,
}

/// The shared config duration helpers, under the names this crate's fields use.
pub(crate) use strata_model::config_duration::{optional as opt_duration, required as duration};

impl ServerConfig {
    /// The PromQL engine settings these limits imply (the per-tenant ones, such as
    /// `max_samples`, are set per query from the tenant's [`crate::Limits`]).
    pub fn engine_options(&self) -> strata_promql::EngineOptions {
        strata_promql::EngineOptions {
            lookback_delta: self.query_lookback_delta,
            timeout: self.query_timeout,
            ..Default::default()
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            default_tenant: "anonymous".into(),
            max_request_body_bytes: 10 << 20,
            max_decompressed_bytes: 64 << 20,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            ingest_created_timestamps: false,
            query_lookback_delta: Duration::from_secs(300),
            query_timeout: Duration::from_secs(120),
            creation_grace_period: Duration::from_millis(strata_tsdb::DEFAULT_CREATION_GRACE_MS as u64),
            query_partial_response: true,
        }
    }
}
