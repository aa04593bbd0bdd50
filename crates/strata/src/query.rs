//! `strata query`: a stateless query node (Thanos Query's role). No WAL, no head,
//! no ingest endpoints: it answers the Prometheus HTTP API and remote read from its
//! federation peers and, when `objstore` is configured, from that bucket read-only
//! (a store gateway's role). Query nodes can be stacked: a regional node is a peer
//! of a global one.
//!
//! ```text
//!  strata query ─► Config (same file as serve) ─► peers (health checks) ─► bucket (optional)
//!               ─► router (query-only) ─► serve until SIGTERM/SIGINT
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use strata_block::{Bucket, BucketOptions, MeteredStore};
use strata_server::{AppState, Blocks, router};

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    /// YAML configuration file: `federation`, `external_labels`, `querier`, `server`,
    /// `log`, `listen`, and optionally `objstore` (read-only).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, `host:port`, or `:port` for every interface; overrides
    /// `listen` in the file [default: 127.0.0.1:9201]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

pub(crate) fn load(args: &QueryArgs) -> anyhow::Result<Config> {
    let mut cfg = Config::load(args.config.as_deref(), None)?;
    if let Some(l) = &args.listen {
        cfg.listen = crate::config::listen_addr(l);
    }
    Ok(cfg)
}

/// The parts of an [`AppState`] that come from the configuration, shared by
/// `serve` and `query`.
pub(crate) fn state_options(cfg: &Config, query_only: bool) -> anyhow::Result<strata_server::StateOptions> {
    let external_labels = strata_querier::ExternalLabels::new(&cfg.external_labels).context("external_labels")?;
    let peers = strata_querier::Peers::new(&cfg.federation).context("federation")?;
    Ok(strata_server::StateOptions {
        server: cfg.server.clone(),
        querier: cfg.querier.clone(),
        ha: cfg.ha_tracker.clone(),
        external_labels,
        peers: Arc::new(peers),
        query_only,
        status: Default::default(),
        limits: Arc::new(
            strata_server::Overrides::new(cfg.limits.clone()).map_err(anyhow::Error::msg).context("limits")?,
        ),
    })
}

pub(crate) async fn run(cfg: Config, status: strata_server::RuntimeStatus) -> anyhow::Result<()> {
    let mut opts = state_options(&cfg, true)?;
    opts.status = status;
    let peers = opts.peers.clone();
    let limits = opts.limits.clone();
    if peers.is_empty() && cfg.objstore.is_none() {
        tracing::warn!("no federation peers and no objstore: every query answers empty");
    }
    let state = AppState::build(opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let b = strata_server::BUILD_INFO;
    let objstore = cfg.objstore.as_ref().map(crate::describe_store);
    tracing::info!(
        version = b.version,
        revision = b.revision,
        objstore = objstore.as_deref().unwrap_or("none"),
        "starting strata query"
    );
    if let Some(o) = &cfg.objstore {
        let store = Arc::new(MeteredStore::new(
            o.build().with_context(|| format!("object storage ({})", objstore.as_deref().unwrap_or_default()))?,
        ));
        let store_stats = store.stats().clone();
        let bucket = Bucket::new(
            store,
            BucketOptions { index_cache_bytes: cfg.blocks.index_cache_bytes, list_ttl: cfg.blocks.list_interval },
        );
        let policy = strata_tsdb::CutPolicy::default();
        state.set_blocks(Blocks { bucket, policy, store_stats: Some(store_stats), extra_metrics: None });
    }
    let listener = tokio::net::TcpListener::bind(crate::config::listen_addr(&cfg.listen))
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let names: Vec<&str> = peers.iter().map(|p| p.name()).collect();
    tracing::info!(%addr, peers = ?names, bucket = cfg.objstore.is_some(), "query node listening");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let health = tokio::spawn(peers.run_health_checks(stopped.clone()));
    let reloading = tokio::spawn(limits.run(stopped));
    axum::serve(listener, router(state)).with_graceful_shutdown(crate::shutdown_signal()).await?;
    let _ = stop.send(true);
    let _ = health.await;
    let _ = reloading.await;
    tracing::info!("stopped");
    Ok(())
}
