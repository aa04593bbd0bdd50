//! Strata's HTTP surface: Prometheus remote write and remote read, and the
//! Prometheus HTTP API over the read side. [`router`] builds the whole service from
//! an [`AppState`], so tests run it in-process without the CLI.
//!
//! ```text
//!  POST /api/v1/write ──► write:  cap ─► snappy ─► decode v1|v2 ─► validate ─► Tsdb::append ─► WAL
//!  POST /api/v1/read  ──► remote_read ─┐
//!  /api/v1/series|labels|label/…/values ├──► AppState::querier(tenant) ─► impl Querier
//!  /api/v1/metadata   ──► read ─────────┤
//!  /api/v1/query[_range] ──► query: strata_promql::Engine (fetch async, evaluate on a blocking thread)
//!  POST /api/v1/admin/flush ──► admin: cut the whole head into blocks, upload, answer
//!  /metrics /-/healthy /-/ready ──► ops
//!  / /api/v1/rules|alerts /api/v1/status/runtimeinfo|flags|config|tsdb ──► status
//!  every error ──► error::ApiError (one kind → status mapping, Prometheus JSON body)
//!  every request ──► layers: a panic is a JSON 500 (counted); other non-JSON API errors become JSON
//! ```

mod admin;
mod body;
mod config;
mod error;
/// Entry points for the fuzz targets in fuzz/; not a stable API.
#[doc(hidden)]
pub mod fuzzing;
mod ha_tracker;
mod layers;
mod limiter;
mod limits;
mod metrics;
mod params;
mod query;
mod read;
mod remote_read;
mod status;
mod version;
mod write;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use strata_model::TenantId;
use strata_tsdb::Tsdb;

pub use config::ServerConfig;
pub use error::{ApiError, ApiErrorKind};
pub use ha_tracker::{HaTrackerConfig, HaTrackerOverride};
pub use limits::{Limits, LimitsConfig, Overrides};
pub use status::RuntimeStatus;
pub use strata_querier::{ExternalLabels, FederationConfig, Peers};
pub use version::{BUILD_INFO, BuildInfo};
/// The zero-copy remote write 1.0/2.0 decoders (public for benchmarks and tools).
pub use write::decode as remote_write_decode;

use error::ApiResult;
use limiter::RateLimiter;
use metrics::Metrics;

/// The header carrying the tenant id, as in Mimir, Cortex and Thanos.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Shared state of every handler. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// Block storage as the server uses it: the bucket (queries, uploads) and when to cut.
#[derive(Clone)]
pub struct Blocks {
    pub bucket: Arc<strata_block::Bucket>,
    pub policy: strata_tsdb::CutPolicy,
    /// Request counters of the bucket's store, when it is metered.
    pub store_stats: Option<Arc<strata_block::StoreStats>>,
    /// Further figures for `/metrics` (the compactor's, when it runs in this process).
    pub extra_metrics: Option<ExtraMetrics>,
}

/// A source of `(name, help, is_counter, value)` figures rendered on `/metrics`.
pub type ExtraMetrics = Arc<dyn Fn() -> Vec<(&'static str, &'static str, bool, f64)> + Send + Sync>;

impl std::fmt::Debug for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocks").field("bucket", &self.bucket).field("policy", &self.policy).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Inner {
    tsdb: Arc<OnceLock<Arc<Tsdb>>>,
    blocks: Arc<OnceLock<Blocks>>,
    config: ServerConfig,
    limiter: RateLimiter,
    limits: Arc<Overrides>,
    active: Arc<query::ActiveQueries>,
    metrics: Metrics,
    discards: write::DiscardLog,
    engine: strata_promql::EngineOptions,
    querier: strata_querier::QuerierConfig,
    ha: Arc<ha_tracker::HaTracker>,
    external: strata_querier::ExternalLabels,
    peers: Arc<strata_querier::Peers>,
    query_only: bool,
    status: RuntimeStatus,
}

/// Everything an [`AppState`] is made from; the binary fills it from its config.
#[derive(Debug, Default)]
pub struct StateOptions {
    pub server: ServerConfig,
    /// Read-side settings (HA replica dedup at query time).
    pub querier: strata_querier::QuerierConfig,
    /// The ingest-time HA tracker.
    pub ha: HaTrackerConfig,
    /// Labels every series of this node carries in answers (`external_labels`).
    pub external_labels: strata_querier::ExternalLabels,
    /// Federation peers every query also reads.
    pub peers: Arc<strata_querier::Peers>,
    /// A query node (`strata query`): no WAL, no head, no ingest endpoints; ready at once.
    pub query_only: bool,
    /// Flags, configuration and start time for the status endpoints.
    pub status: RuntimeStatus,
    /// Per-tenant limits (reloaded by whoever runs [`Overrides::run`]).
    pub limits: Arc<Overrides>,
}

impl AppState {
    /// A state that is not ready yet: write and read requests get 503 until
    /// [`AppState::set_ready`] hands over the replayed storage.
    pub fn new(config: ServerConfig) -> Result<Self, ApiError> {
        Self::with_querier(config, strata_querier::QuerierConfig::default())
    }

    /// [`AppState::new`] with read-side settings (HA replica dedup).
    pub fn with_querier(config: ServerConfig, querier: strata_querier::QuerierConfig) -> Result<Self, ApiError> {
        Self::with_ha(config, querier, HaTrackerConfig::default())
    }

    /// [`AppState::with_querier`] with the ingest-time HA tracker's settings.
    pub fn with_ha(
        config: ServerConfig,
        querier: strata_querier::QuerierConfig,
        ha: HaTrackerConfig,
    ) -> Result<Self, ApiError> {
        Self::build(StateOptions { server: config, querier, ha, ..Default::default() })
    }

    /// A state from all its parts.
    pub fn build(o: StateOptions) -> Result<Self, ApiError> {
        let StateOptions { server: config, querier, ha, external_labels, peers, query_only, status, limits } = o;
        let ha = Arc::new(ha_tracker::HaTracker::new(ha));
        TenantId::new(&config.default_tenant).map_err(|e| ApiError::bad_data(format!("default_tenant: {e}")))?;
        let tsdb = Arc::new(OnceLock::new());
        let blocks = Arc::new(OnceLock::new());
        Ok(AppState(Arc::new(Inner {
            limiter: RateLimiter::default(),
            metrics: Metrics::new(tsdb.clone(), blocks.clone(), ha.clone(), peers.clone(), &limits),
            limits,
            active: Arc::default(),
            ha,
            external: external_labels,
            peers,
            query_only,
            status,
            discards: write::DiscardLog::default(),
            querier,
            blocks,
            engine: config.engine_options(),
            tsdb,
            config,
        })))
    }

    /// Marks the server ready with storage whose WAL replay has finished.
    pub fn set_ready(&self, tsdb: Arc<Tsdb>) {
        self.0.ha.load(tsdb.dir());
        let _ = self.0.tsdb.set(tsdb);
    }

    /// Enables block storage: queries read the bucket too, and `/api/v1/admin/flush`
    /// cuts into it. Set before [`AppState::set_ready`].
    pub fn set_blocks(&self, blocks: Blocks) {
        let _ = self.0.blocks.set(blocks);
    }

    fn blocks(&self) -> Option<&Blocks> {
        self.0.blocks.get()
    }

    pub fn is_ready(&self) -> bool {
        self.0.query_only || self.0.tsdb.get().is_some_and(|t| !t.is_failed())
    }

    /// The federation peers (empty when none are configured).
    fn peers(&self) -> &strata_querier::Peers {
        &self.0.peers
    }

    fn tsdb(&self) -> ApiResult<&Arc<Tsdb>> {
        self.0
            .tsdb
            .get()
            .ok_or_else(|| ApiError::new(ApiErrorKind::Unavailable, "starting up: replaying the write-ahead log"))
    }

    fn runtime_status(&self) -> &RuntimeStatus {
        &self.0.status
    }

    fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    fn engine_options(&self) -> &strata_promql::EngineOptions {
        &self.0.engine
    }

    fn limiter(&self) -> &RateLimiter {
        &self.0.limiter
    }

    /// The per-tenant limits in force.
    fn limits(&self) -> &Overrides {
        &self.0.limits
    }

    fn active_queries(&self) -> &Arc<query::ActiveQueries> {
        &self.0.active
    }

    fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    fn ha(&self) -> &ha_tracker::HaTracker {
        &self.0.ha
    }

    /// Counts refused samples per tenant and reason, and logs them rate-limited.
    fn discard(&self, tenant: &TenantId, reason: &'static str, n: u64, example: &str) {
        self.0.discards.record(&self.0.metrics, tenant, reason, n, example, std::time::Instant::now());
    }

    /// The tenant of a request: `X-Scope-OrgID`, or the default tenant when absent.
    fn tenant(&self, headers: &HeaderMap) -> ApiResult<TenantId> {
        match headers.get(TENANT_HEADER) {
            None => Ok(TenantId::new(&self.0.config.default_tenant)?),
            Some(v) => {
                let s = v.to_str().map_err(|_| ApiError::bad_data("X-Scope-OrgID is not valid text"))?;
                Ok(TenantId::new(s)?)
            }
        }
    }

    /// The read side for one tenant, for one request: partial responses and HA
    /// replica dedup as the request's [`params::ReadOptions`] say.
    /// With peers or external labels configured, it is the fan-out over this node's
    /// data and every peer (`strata_querier::assemble`).
    fn querier(&self, tenant: &TenantId, opts: params::ReadOptions) -> ApiResult<Arc<dyn strata_model::Querier>> {
        let blocks = self.blocks().map(|b| b.bucket.querier(tenant.clone()));
        let local = if self.0.query_only {
            blocks.map(strata_querier::TenantQuerier::bucket_only)
        } else {
            let db = self.tsdb()?;
            let floor = db.head(tenant).map_or(i64::MIN, |h| h.cut_before());
            Some(strata_querier::TenantQuerier::new(db.querier(tenant), floor, blocks))
        };
        let q = strata_querier::assemble(
            local,
            &self.0.external,
            &self.0.peers,
            tenant.as_str(),
            opts.partial_response,
            opts.replica_labels,
        );
        Ok(limits::SeriesCap::wrap(q, tenant, &self.0.limits))
    }

    /// The read options of a request: its parameters over the configured defaults.
    fn read_options(&self, p: &params::Params) -> ApiResult<params::ReadOptions> {
        p.read_options(self.0.config.query_partial_response, &self.0.querier.replica_labels)
    }
}

/// Builds the complete HTTP service.
pub fn router(state: AppState) -> Router {
    let mut routes = Router::new()
        .route("/api/v1/read", post(remote_read::handler))
        .route("/api/v1/series", get(read::series).post(read::series))
        .route("/api/v1/labels", get(read::labels).post(read::labels))
        .route("/api/v1/label/{name}/values", get(read::label_values).post(read::label_values))
        .route("/api/v1/metadata", get(read::metadata).post(read::metadata))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/query_exemplars", get(query::exemplars).post(query::exemplars))
        .route("/api/v1/format_query", get(query::format_query).post(query::format_query))
        .route("/api/v1/status/buildinfo", get(query::buildinfo))
        .route("/api/v1/status/peers", get(peers_status))
        .route("/api/v1/rules", get(status::rules))
        .route("/api/v1/alerts", get(status::alerts))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/", get(status::index))
        .route("/api/v1/status/active_queries", get(query::active_queries))
        .route("/metrics", get(metrics_handler))
        .route("/-/healthy", get(|| async { "Strata is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .fallback(not_found);
    if !state.0.query_only {
        routes = routes
            .route("/api/v1/write", post(write::handler))
            .route("/api/v1/status/ha", get(write::ha_status))
            .route("/api/v1/status/tsdb", get(status::tsdb))
            .route("/api/v1/admin/flush", post(admin::flush));
    }
    // Innermost first: a panic becomes a JSON 500, any other non-JSON API error
    // (405, path rejections) becomes JSON, then latency is recorded with the final status.
    layers::catch_panics(routes, state.metrics().http_panics.clone())
        .layer(axum::middleware::from_fn(layers::json_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn ready(State(st): State<AppState>) -> Response {
    if st.is_ready() {
        "Strata is Ready.\n".into_response()
    } else if st.0.tsdb.get().is_some() {
        (StatusCode::SERVICE_UNAVAILABLE, "write-ahead log failed; restart required\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "replaying the write-ahead log\n").into_response()
    }
}

/// `GET /api/v1/status/peers`: health, last error, latency, time range and
/// external labels of every federation peer.
async fn peers_status(State(st): State<AppState>) -> axum::Json<serde_json::Value> {
    let data = serde_json::to_value(st.peers().status()).unwrap_or_default();
    axum::Json(serde_json::json!({"status": "success", "data": data}))
}

async fn metrics_handler(State(st): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics().render()).into_response()
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(ApiErrorKind::NotFound, format!("no such endpoint: {}", uri.path()))
}

/// Records request latency per route and status.
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "other".into());
    let resp = next.run(req).await;
    let labels = vec![("handler", path), ("code", resp.status().as_u16().to_string())];
    st.metrics().request_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn not_ready_until_replay_finished() {
        let state = AppState::new(ServerConfig::default()).unwrap();
        let app = router(state.clone());
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(get("/-/healthy")).await.unwrap().status(), StatusCode::OK);
        assert_eq!(app.clone().oneshot(get("/-/ready")).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        let write = Request::post("/api/v1/write").body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(write).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        let dir = tempfile::tempdir().unwrap();
        state.set_ready(Arc::new(Tsdb::open(dir.path(), Default::default()).unwrap()));
        assert_eq!(app.oneshot(get("/-/ready")).await.unwrap().status(), StatusCode::OK);
    }
}
