//! Per-tenant limits with runtime overrides, after Mimir's `limits` and its
//! runtime-config file.
//!
//! ```text
//!  config `limits:` ─► defaults (built-in defaults ◄─ the keys set in the config)
//!  overrides_file ──(read at start, then every reload_interval)──► overrides: {tenant: {keys}}
//!      tenant's limits = built-in defaults ◄─ config keys ◄─ tenant's keys
//!      a file that does not read or parse: the last good one stays, an error is
//!      logged, strata_limits_overrides_last_reload_successful = 0
//!  write:  ingestion_rate/ingestion_burst_size (429), max_label_names_per_series,
//!          max_global_series_per_user (400, per series)
//!  query:  max_query_length (400), max_samples_per_query, max_series_per_query (422),
//!          max_concurrent_queries (429); the frontend: max_query_parallelism
//!  every refusal ─► strata_limits_exceeded_total{tenant,limit}, and its message
//!          names the limit: "... (limit: max_series_per_query=10)"
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use strata_model::{Matcher, Querier, SelectHints, Series, TenantId, TimeRange, WindowedSeries};

use crate::config::duration;
use crate::error::{ApiError, ApiErrorKind};

pub(crate) const LIMITS_EXCEEDED: &str = "strata_limits_exceeded";
pub(crate) const RELOADS: &str = "strata_limits_overrides_reloads";
pub(crate) const RELOAD_OK: &str = "strata_limits_overrides_last_reload_successful";
pub(crate) const RELOAD_OK_AT: &str = "strata_limits_overrides_last_reload_success_timestamp_seconds";
pub(crate) const TENANTS_OVERRIDDEN: &str = "strata_limits_overrides_tenants";

/// The limits of one tenant. 0 turns a limit off (Mimir's convention), except
/// `ingestion_burst_size`, which only matters with an `ingestion_rate`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Samples per second a tenant may write (token bucket); over it a request gets
    /// 429 and is retried by Prometheus. 0: no limit.
    pub ingestion_rate: f64,
    /// Bucket size of the ingestion rate limit, in samples: how much a tenant may
    /// send at once after a quiet period.
    pub ingestion_burst_size: f64,
    /// Most series a tenant's head holds (Mimir's active series in the ingesters);
    /// samples that would create a further series are refused (400, per series;
    /// the rest of the request is stored). 0: no limit.
    pub max_global_series_per_user: u64,
    /// Most labels a series may have, `__name__` included; longer series are
    /// refused (400, per series).
    pub max_label_names_per_series: usize,
    /// Longest `end - start` of a range query (400). 0s: no limit.
    #[serde(deserialize_with = "duration", serialize_with = "write_duration")]
    pub max_query_length: Duration,
    /// Most samples one query may hold in memory (Prometheus's
    /// `--query.max-samples`); over it the query fails with 422.
    pub max_samples_per_query: usize,
    /// Most series one query, series call or remote read may select (422).
    pub max_series_per_query: usize,
    /// Most queries (instant and range) of a tenant running at once on this node;
    /// a further one gets 429. 0: no limit.
    pub max_concurrent_queries: usize,
    /// Most pieces of one split range query the query frontend runs at once for
    /// the tenant (the frontend's `max_parallelism` is used when 0).
    pub max_query_parallelism: usize,
}

fn write_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ingestion_rate: 0.0,
            ingestion_burst_size: 200_000.0,
            max_global_series_per_user: 0,
            max_label_names_per_series: 30,
            max_query_length: Duration::ZERO,
            max_samples_per_query: 50_000_000,
            max_series_per_query: 1_000_000,
            max_concurrent_queries: 0,
            max_query_parallelism: 0,
        }
    }
}

/// The `limits:` section: the defaults of every tenant, inline, plus where the
/// per-tenant overrides are and how often they are read again.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// A YAML file `overrides: {tenant: {limit: value, ...}}`, read at start (a bad
    /// one fails the start) and again every `reload_interval` without a restart.
    pub overrides_file: Option<PathBuf>,
    /// How often the overrides file is read again.
    pub reload_interval: Duration,
    /// Every tenant's limits unless overridden; a tenant's keys are laid over them.
    pub defaults: Limits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { overrides_file: None, reload_interval: Duration::from_secs(10), defaults: Limits::default() }
    }
}

impl<'de> Deserialize<'de> for LimitsConfig {
    /// The defaults sit inline next to `overrides_file` and `reload_interval`,
    /// which `#[serde(flatten)]` cannot combine with `deny_unknown_fields`; so the
    /// section is read as a map and its parts parsed one by one.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut raw = Map::<String, Value>::deserialize(d)?;
        let overrides_file = match raw.remove("overrides_file") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(PathBuf::from(s)),
            Some(v) => return Err(D::Error::custom(format!("overrides_file: expected a path, got {v}"))),
        };
        let reload_interval = match raw.remove("reload_interval") {
            None => LimitsConfig::default().reload_interval,
            Some(Value::String(s)) => {
                humantime::parse_duration(&s).map_err(|e| D::Error::custom(format!("reload_interval: {e}")))?
            }
            Some(v) => return Err(D::Error::custom(format!("reload_interval: expected a duration, got {v}"))),
        };
        if reload_interval.is_zero() {
            return Err(D::Error::custom("reload_interval: must be positive"));
        }
        let defaults = Limits::deserialize(Value::Object(raw)).map_err(D::Error::custom)?;
        Ok(LimitsConfig { overrides_file, reload_interval, defaults })
    }
}

/// The overrides file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverridesFile {
    #[serde(default)]
    overrides: Option<HashMap<String, Map<String, Value>>>,
}

/// Which limit a refusal names; the `limit` label of `strata_limits_exceeded_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    IngestionRate,
    MaxGlobalSeriesPerUser,
    MaxLabelNamesPerSeries,
    MaxQueryLength,
    MaxSamplesPerQuery,
    MaxSeriesPerQuery,
    MaxConcurrentQueries,
}

impl Limit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Limit::IngestionRate => "ingestion_rate",
            Limit::MaxGlobalSeriesPerUser => "max_global_series_per_user",
            Limit::MaxLabelNamesPerSeries => "max_label_names_per_series",
            Limit::MaxQueryLength => "max_query_length",
            Limit::MaxSamplesPerQuery => "max_samples_per_query",
            Limit::MaxSeriesPerQuery => "max_series_per_query",
            Limit::MaxConcurrentQueries => "max_concurrent_queries",
        }
    }
}

/// The limits of every tenant, re-read from the overrides file at run time.
#[derive(Debug)]
pub struct Overrides {
    config: LimitsConfig,
    defaults: Arc<Limits>,
    tenants: RwLock<Arc<HashMap<String, Arc<Limits>>>>,
    exceeded: Family<Vec<(&'static str, String)>, Counter>,
    reloads: Family<Vec<(&'static str, String)>, Counter>,
    reload_ok: Gauge,
    reload_ok_at: Gauge<f64, AtomicU64>,
    tenants_overridden: Gauge<i64, AtomicI64>,
}

impl Overrides {
    /// Reads the overrides file once; a file that does not read or parse is an
    /// error here (a start with limits other than the operator's is worse than none).
    pub fn new(config: LimitsConfig) -> Result<Self, String> {
        let o = Overrides {
            defaults: Arc::new(config.defaults.clone()),
            config,
            tenants: RwLock::new(Arc::new(HashMap::new())),
            exceeded: Family::default(),
            reloads: Family::default(),
            reload_ok: Gauge::default(),
            reload_ok_at: Gauge::default(),
            tenants_overridden: Gauge::default(),
        };
        if let Some(path) = &o.config.overrides_file {
            let t = o.load(path)?;
            o.install(t);
        } else {
            o.reload_ok.set(1);
        }
        Ok(o)
    }

    /// The limits of `tenant`.
    pub fn for_tenant(&self, tenant: &TenantId) -> Arc<Limits> {
        self.tenants.read().get(tenant.as_str()).cloned().unwrap_or_else(|| self.defaults.clone())
    }

    /// Reads the overrides file again. On failure the limits in force stay, the
    /// error is logged and counted; returns whether it succeeded.
    pub fn reload(&self) -> bool {
        let Some(path) = &self.config.overrides_file else { return true };
        match self.load(path) {
            Ok(t) => {
                let n = t.len();
                let changed = **self.tenants.read() != t;
                self.install(t);
                if changed {
                    tracing::info!(path = %path.display(), tenants = n, "limits overrides reloaded");
                }
                true
            }
            Err(error) => {
                self.reloads.get_or_create(&vec![("result", "failure".into())]).inc();
                self.reload_ok.set(0);
                tracing::error!(path = %path.display(), %error, "limits overrides not reloaded; keeping the last good ones");
                false
            }
        }
    }

    /// Reloads every `reload_interval` until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.config.overrides_file.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(self.config.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let me = self.clone();
                    // File I/O and parsing off the async workers.
                    let _ = tokio::task::spawn_blocking(move || me.reload()).await;
                }
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            }
        }
    }

    /// Counts a refusal by `limit` for `tenant`.
    pub(crate) fn exceeded(&self, tenant: &TenantId, limit: Limit) {
        self.exceeded
            .get_or_create(&vec![("tenant", tenant.as_str().to_string()), ("limit", limit.as_str().into())])
            .inc();
    }

    /// Counts the refusal and words its error: `message (limit: name=value)`.
    pub(crate) fn refuse(
        &self,
        tenant: &TenantId,
        kind: ApiErrorKind,
        limit: Limit,
        value: impl std::fmt::Display,
        message: impl std::fmt::Display,
    ) -> ApiError {
        self.exceeded(tenant, limit);
        ApiError::new(kind, format!("{message} (limit: {}={value})", limit.as_str()))
    }

    /// Registers this node's limit metrics.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            LIMITS_EXCEEDED,
            "Requests (or series of a write) refused by a per-tenant limit, by tenant and limit",
            self.exceeded.clone(),
        );
        registry.register(RELOADS, "Reloads of the limits overrides file, by result", self.reloads.clone());
        registry.register(
            RELOAD_OK,
            "Whether the last read of the limits overrides file succeeded (1) or failed and the previous limits stay (0)",
            self.reload_ok.clone(),
        );
        registry.register(
            RELOAD_OK_AT,
            "When the limits overrides file was last read successfully, in Unix seconds",
            self.reload_ok_at.clone(),
        );
        registry.register(
            TENANTS_OVERRIDDEN,
            "Tenants with overrides in the limits overrides file",
            self.tenants_overridden.clone(),
        );
    }

    fn load(&self, path: &Path) -> Result<HashMap<String, Arc<Limits>>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let file: OverridesFile = if text.trim().is_empty() {
            OverridesFile { overrides: None }
        } else {
            serde_norway::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?
        };
        let mut out = HashMap::new();
        let base = match serde_json::to_value(&self.config.defaults) {
            Ok(Value::Object(m)) => m,
            _ => return Err("the default limits do not serialize".into()),
        };
        for (tenant, keys) in file.overrides.unwrap_or_default() {
            TenantId::new(&tenant).map_err(|e| format!("{}: tenant {tenant:?}: {e}", path.display()))?;
            let mut merged = base.clone();
            merged.extend(keys);
            let limits = Limits::deserialize(Value::Object(merged))
                .map_err(|e| format!("{}: tenant {tenant:?}: {e}", path.display()))?;
            out.insert(tenant, Arc::new(limits));
        }
        Ok(out)
    }

    fn install(&self, t: HashMap<String, Arc<Limits>>) {
        self.tenants_overridden.set(t.len() as i64);
        *self.tenants.write() = Arc::new(t);
        self.reloads.get_or_create(&vec![("result", "success".into())]).inc();
        self.reload_ok.set(1);
        self.reload_ok_at.set(strata_model::now_ms() as f64 / 1000.0);
    }
}

/// A querier that fails once the series its selects returned, all together, pass
/// the tenant's `max_series_per_query` (0: no limit). Wraps the read side of one
/// request, so every read API (queries, series, remote read) is capped the same.
#[derive(Debug)]
pub(crate) struct SeriesCap {
    inner: Arc<dyn Querier>,
    max: usize,
    seen: std::sync::atomic::AtomicUsize,
    tenant: TenantId,
    overrides: Arc<Overrides>,
}

impl SeriesCap {
    pub(crate) fn wrap(inner: Arc<dyn Querier>, tenant: &TenantId, overrides: &Arc<Overrides>) -> Arc<dyn Querier> {
        let max = overrides.for_tenant(tenant).max_series_per_query;
        if max == 0 {
            return inner;
        }
        Arc::new(SeriesCap {
            inner,
            max,
            seen: Default::default(),
            tenant: tenant.clone(),
            overrides: overrides.clone(),
        })
    }
}

impl SeriesCap {
    /// Counts `n` more selected series; past the limit, the query fails.
    fn count(&self, n: usize) -> strata_model::Result<()> {
        use std::sync::atomic::Ordering;
        let seen = self.seen.fetch_add(n, Ordering::Relaxed) + n;
        if seen > self.max {
            self.overrides.exceeded(&self.tenant, Limit::MaxSeriesPerQuery);
            return Err(strata_model::Error::LimitExceeded {
                what: format!(
                    "the query selected more than {} series (limit: max_series_per_query={})",
                    self.max, self.max
                ),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Querier for SeriesCap {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> strata_model::Result<Vec<Series>> {
        let series = self.inner.select(hints, matchers).await?;
        self.count(series.len())?;
        Ok(series)
    }

    async fn select_windows(
        &self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> strata_model::Result<Vec<WindowedSeries>> {
        let series = self.inner.select_windows(hints, matchers).await?;
        self.count(series.len())?;
        Ok(series)
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> strata_model::Result<Vec<String>> {
        self.inner.label_names(range, matchers).await
    }

    async fn label_values(
        &self,
        name: &str,
        range: TimeRange,
        matchers: &[Matcher],
    ) -> strata_model::Result<Vec<String>> {
        self.inner.label_values(name, range, matchers).await
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides::new(LimitsConfig::default()).unwrap_or_else(|_| unreachable!("no file to read"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> LimitsConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    fn t(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    #[test]
    fn config_defaults_inline_and_unknown_keys_refused() {
        let c = cfg("{overrides_file: /x.yaml, reload_interval: 2s, max_series_per_query: 7, max_query_length: 1h}");
        assert_eq!(c.overrides_file.as_deref(), Some(Path::new("/x.yaml")));
        assert_eq!(c.reload_interval, Duration::from_secs(2));
        assert_eq!(c.defaults.max_series_per_query, 7);
        assert_eq!(c.defaults.max_query_length, Duration::from_secs(3600));
        assert_eq!(c.defaults.max_label_names_per_series, 30);
        assert_eq!(cfg("{}"), LimitsConfig::default());
        assert!(serde_norway::from_str::<LimitsConfig>("{max_series: 1}").is_err());
        assert!(serde_norway::from_str::<LimitsConfig>("{reload_interval: soon}").is_err());
        assert!(serde_norway::from_str::<LimitsConfig>("{reload_interval: 0s}").is_err());
        assert!(serde_norway::from_str::<LimitsConfig>("{max_query_length: 5}").is_err());
    }

    #[test]
    fn tenant_keys_over_config_keys_over_built_in_and_a_bad_file_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overrides.yaml");
        std::fs::write(&path, "overrides:\n  a: {max_series_per_query: 3}\n").unwrap();
        let mut c = cfg("{max_series_per_query: 7, max_samples_per_query: 9}");
        c.overrides_file = Some(path.clone());
        let o = Overrides::new(c).unwrap();
        assert_eq!(o.for_tenant(&t("a")).max_series_per_query, 3);
        assert_eq!(o.for_tenant(&t("a")).max_samples_per_query, 9, "config key kept");
        assert_eq!(o.for_tenant(&t("b")).max_series_per_query, 7);
        let mut want = Limits { max_series_per_query: 7, max_samples_per_query: 9, ..Default::default() };
        want.max_query_length = Duration::from_secs(90);
        assert_eq!(
            Limits::deserialize(serde_json::to_value(&want).unwrap()).unwrap(),
            want,
            "defaults round-trip through the merge"
        );

        for bad in ["overrides: {a: {max_series_per_query: -1}}", "overrides: {a: {nope: 1}}", "overrides: [", "x: 1"] {
            std::fs::write(&path, bad).unwrap();
            assert!(!o.reload(), "{bad}");
            assert_eq!(o.for_tenant(&t("a")).max_series_per_query, 3, "{bad}");
            assert_eq!(o.reload_ok.get(), 0);
        }
        std::fs::write(&path, "overrides:\n  b: {max_series_per_query: 1}\n").unwrap();
        assert!(o.reload());
        assert_eq!(o.reload_ok.get(), 1);
        assert_eq!(o.for_tenant(&t("a")).max_series_per_query, 7, "override removed");
        assert_eq!(o.for_tenant(&t("b")).max_series_per_query, 1);
        std::fs::write(&path, "").unwrap();
        assert!(o.reload());
        assert_eq!(o.for_tenant(&t("b")).max_series_per_query, 7);
        std::fs::remove_file(&path).unwrap();
        assert!(!o.reload());
    }

    #[test]
    fn a_bad_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.yaml");
        std::fs::write(&path, "overrides: {a: {max_concurrent_queries: many}}").unwrap();
        let c = LimitsConfig { overrides_file: Some(path), ..Default::default() };
        assert!(Overrides::new(c).unwrap_err().contains("tenant \"a\""));
    }

    #[test]
    fn refusals_name_the_limit_and_count() {
        let o = Overrides::default();
        let e = o.refuse(&t("a"), ApiErrorKind::Execution, Limit::MaxSeriesPerQuery, 5, "too many series");
        assert_eq!(e.message, "too many series (limit: max_series_per_query=5)");
        let labels = vec![("tenant", "a".to_string()), ("limit", "max_series_per_query".to_string())];
        assert_eq!(o.exceeded.get_or_create(&labels).get(), 1);
    }
}
