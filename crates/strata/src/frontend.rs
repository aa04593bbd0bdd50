//! `strata query-frontend`: the query frontend alone, in front of any
//! Prometheus-compatible API (a Strata, a `strata query`, a Prometheus), as Thanos's
//! query frontend runs.
//!
//! ```text
//!  --config FILE (FrontendFile) + --downstream URL + --listen ADDR ─► tracing
//!  ─► HttpDownstream ─► Frontend (align? ─► split ─► cache) ─► strata_frontend::router
//!  ─► serve until SIGTERM/SIGINT ─► drain requests
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use strata_frontend::{Frontend, FrontendConfig, HttpDownstream, HttpState, Metrics, Proxy};

use crate::config::LogConfig;

#[derive(Debug, clap::Args)]
pub(crate) struct FrontendArgs {
    /// Root URL of the Prometheus-compatible API to forward to; overrides `downstream` in the file.
    #[arg(long, value_name = "URL")]
    downstream: Option<String>,
    /// YAML configuration file (see configs/query-frontend.example.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address; overrides `listen` in the file.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

/// The configuration file of `strata query-frontend`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FrontendFile {
    /// Address the HTTP server listens on.
    pub(crate) listen: String,
    /// Root URL of the downstream Prometheus-compatible API (`--downstream` overrides it).
    pub(crate) downstream: Option<String>,
    /// Longest a request to the downstream may take (one piece of a split query).
    #[serde(deserialize_with = "duration")]
    pub(crate) downstream_timeout: Duration,
    /// Tenant of requests without `X-Scope-OrgID`; it is sent downstream in that header.
    pub(crate) default_tenant: String,
    /// Logging.
    pub(crate) log: LogConfig,
    /// Splitting, parallelism and the results cache.
    pub(crate) frontend: FrontendConfig,
    /// Per-tenant limits; the frontend uses `max_query_parallelism` (overrides
    /// file re-read every `reload_interval`, as in `strata serve`).
    pub(crate) limits: strata_server::LimitsConfig,
}

impl Default for FrontendFile {
    fn default() -> Self {
        FrontendFile {
            listen: "127.0.0.1:9091".into(),
            downstream: None,
            downstream_timeout: Duration::from_secs(120),
            default_tenant: "anonymous".into(),
            log: LogConfig::default(),
            frontend: FrontendConfig::default(),
            limits: Default::default(),
        }
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

impl FrontendFile {
    fn from_yaml(text: &str) -> anyhow::Result<FrontendFile> {
        Ok(serde_norway::from_str(text)?)
    }

    fn load(path: Option<&Path>) -> anyhow::Result<FrontendFile> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                FrontendFile::from_yaml(&text).with_context(|| format!("parsing config {}", p.display()))
            }
            None => Ok(FrontendFile::default()),
        }
    }
}

/// Runs the frontend until SIGTERM or SIGINT.
pub(crate) fn run(args: FrontendArgs, log: &crate::LogArgs) -> anyhow::Result<()> {
    let mut cfg = FrontendFile::load(args.config.as_deref())?;
    if let Some(d) = args.downstream {
        cfg.downstream = Some(d);
    }
    if let Some(l) = args.listen {
        cfg.listen = crate::config::listen_addr(&l);
    }
    log.apply(&mut cfg.log);
    crate::telemetry::init(&cfg.log, log.level.as_deref())?;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(cfg))
}

async fn serve(cfg: FrontendFile) -> anyhow::Result<()> {
    let downstream =
        cfg.downstream.as_deref().context("no downstream: give --downstream URL or `downstream:` in the file")?;
    let default_tenant = strata_model::TenantId::new(&cfg.default_tenant).context("default_tenant")?;
    let metrics = Arc::new(Metrics::default());
    let http = HttpDownstream::new(downstream, cfg.downstream_timeout, metrics.clone()).context("downstream")?;
    let proxy = Proxy { client: http.client().clone(), base: http.base().to_string() };
    let limits =
        Arc::new(strata_server::Overrides::new(cfg.limits.clone()).map_err(anyhow::Error::msg).context("limits")?);
    let per_tenant: strata_frontend::TenantParallelism = {
        let limits = limits.clone();
        Arc::new(move |t| limits.for_tenant(t).max_query_parallelism)
    };
    let frontend = Frontend::with_tenant_parallelism(&cfg.frontend, Arc::new(http), metrics.clone(), Some(per_tenant))
        .context("frontend")?;
    metrics.render_also(strata_frontend::ExtraMetrics({
        let limits = limits.clone();
        Arc::new(move |r| limits.register(r))
    }));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reloading = tokio::spawn(limits.run(stopped));
    let state = HttpState { service: frontend.service(), metrics, default_tenant, proxy: Some(proxy) };
    let listener = tokio::net::TcpListener::bind(crate::config::listen_addr(&cfg.listen))
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, downstream, "query frontend listening");
    axum::serve(listener, strata_frontend::router(state))
        .with_graceful_shutdown(crate::shutdown_signal())
        .await
        .context("http server")?;
    let _ = stop.send(true);
    let _ = reloading.await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/query-frontend.example.yaml");
        let c = FrontendFile::from_yaml(&std::fs::read_to_string(path).expect("example exists")).expect("parses");
        assert_eq!(c.listen, "127.0.0.1:9091");
        assert_eq!(c.downstream.as_deref(), Some("http://127.0.0.1:9201"));
        assert_eq!(c.frontend.split_interval, Duration::from_secs(86400));
        assert!(matches!(c.frontend.cache, strata_frontend::CacheConfig::Memcached(_)));
        assert!(FrontendFile::from_yaml("{}").is_ok());
        assert!(FrontendFile::from_yaml("downstreams: [a]").is_err());
        assert!(FrontendFile::from_yaml("frontend: {split_interval: x}").is_err());
    }
}
