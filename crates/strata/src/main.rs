//! The `strata` binary: command line, configuration, runtime, telemetry, shutdown.
//!
//! ```text
//!  strata query ─► stateless query node: federation peers + read-only bucket (query.rs)
//!  strata serve ─► Config (YAML + flags) ─► tracing ─► lock <data_dir>/lock (or exit 1)
//!               ─► bind listener (healthy, not ready)
//!               ─► object store (Thanos objstore config) ─► Bucket (listing, index cache)
//!               ─► Tsdb::open (WAL replay, off the I/O threads) ─► AppState::set_ready
//!               ─► background: flusher (cut + upload + WAL truncation), compactor
//!               ─► serve until SIGTERM/SIGINT ─► drain requests ─► WAL flushed and fsynced
//! ```

mod compact;
mod config;
mod frontend;
mod query;
mod tools;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strata_block::{Bucket, BucketOptions, MeteredStore};
use strata_compact::Compactor;
use strata_server::{AppState, Blocks, router};
use strata_tsdb::{CutPolicy, DirLock, Tsdb, run_flusher, run_spiller};
use tracing_subscriber::EnvFilter;

use config::{Config, LogFormat};

/// jemalloc instead of the system allocator. glibc gives each thread its own arena,
/// so the memory a cut frees (head chunks, freed by the flusher) is not reused by
/// the threads that allocate next, and it keeps freed memory resident. jemalloc is
/// configured in `.cargo/config.toml` (one arena, freed pages returned to the OS
/// after a second by a background thread). Measured in issue 2's note: peak RSS
/// through ingest and a flush of 113k series went from 348 to 294 MiB and RSS
/// 10 s after the flush from 278 to 110 MiB.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How often closed head chunks past the memory window move to files.
const SPILL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the background flusher checks whether a head range is due for cutting.
const FLUSH_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// Long-term storage for Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive remote write, keep it durable, and answer queries.
    Serve(ServeArgs),
    /// Run a stateless query node over federation peers and, optionally, a bucket (read-only).
    Query(query::QueryArgs),
    /// Compact, expire and garbage-collect the blocks in object storage (alone, without serving).
    Compact(compact::CompactArgs),
    /// Offline tools: list, inspect and verify the blocks in object storage.
    Tools(tools::ToolsArgs),
    /// Split, cache and run range queries in parallel in front of a Prometheus-compatible API.
    QueryFrontend(frontend::FrontendArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// YAML configuration file (see configs/strata.example.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for local state; overrides `data_dir` in the file.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address; overrides `listen` in the file.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Object storage config in Thanos's objstore YAML shape; replaces `objstore` in the file.
    #[arg(long = "objstore.config-file", value_name = "FILE")]
    objstore_config_file: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let mut cfg = Config::load(args.config.as_deref(), args.objstore_config_file.as_deref())?;
            if let Some(d) = args.data_dir {
                cfg.data_dir = d;
            }
            if let Some(l) = args.listen {
                cfg.listen = l;
            }
            init_tracing(&cfg)?;
            // Before anything else touches the data dir: the WAL, head_chunks/, the
            // default FILESYSTEM bucket under it and the compactor rewriting that.
            let lock = match DirLock::acquire(&cfg.data_dir) {
                Ok(lock) => lock,
                Err(e @ strata_tsdb::Error::Locked { .. }) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
                Err(e) => return Err(e).context("locking the data dir"),
            };
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(cfg, lock))
        }
        Command::Query(args) => {
            let cfg = query::load(&args)?;
            init_tracing(&cfg)?;
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(query::run(cfg))
        }
        Command::Compact(args) => {
            let cfg = args.store.load()?;
            init_tracing(&cfg)?;
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(compact::run(cfg, args.once))
        }
        Command::Tools(args) => tools::run(args),
        Command::QueryFrontend(args) => frontend::run(args),
    }
}

fn init_tracing(cfg: &Config) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&cfg.log.level)).context("log.level")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Serves with the data dir's `lock` held (it moves into the `Tsdb`).
async fn serve(cfg: Config, lock: DirLock) -> anyhow::Result<()> {
    let opts = query::state_options(&cfg, false)?;
    let peers = opts.peers.clone();
    let limits = opts.limits.clone();
    let state = AppState::build(opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener =
        tokio::net::TcpListener::bind(&cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "listening");

    let store = Arc::new(MeteredStore::new(cfg.objstore().build().context("object storage")?));
    let store_stats = store.stats().clone();
    let bucket = Bucket::new(
        store,
        BucketOptions { index_cache_bytes: cfg.blocks.index_cache_bytes, list_ttl: cfg.blocks.list_interval },
    );
    let policy = CutPolicy {
        range_ms: cfg.blocks.block_range.as_millis() as i64,
        grace_ms: cfg.blocks.grace_period.as_millis() as i64,
    };
    let compactor = if cfg.compactor.enabled {
        let opts = compact::compactor_options(&cfg);
        Some(Compactor::new(bucket.clone(), opts).context("compactor")?)
    } else {
        None
    };
    let extra_metrics: Option<strata_server::ExtraMetrics> = compactor.as_ref().map(|c| {
        let stats = c.stats();
        Arc::new(move || stats.metrics().into_iter().map(|m| (m.name, m.help, m.counter, m.value)).collect())
            as strata_server::ExtraMetrics
    });
    state.set_blocks(Blocks { bucket: bucket.clone(), policy, store_stats: Some(store_stats), extra_metrics });

    let app = router(state.clone());
    let server =
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await });

    let mut opts = cfg.wal.tsdb_options();
    opts.creation_grace_ms = i64::try_from(cfg.server.creation_grace_period.as_millis()).unwrap_or(i64::MAX);
    let started = std::time::Instant::now();
    let tsdb = tokio::task::spawn_blocking(move || Tsdb::open_locked(lock, opts))
        .await?
        .context("opening the write-ahead log")?;
    let tsdb = Arc::new(tsdb);
    let series: u64 = tsdb.head_stats().iter().map(|(_, s)| s.series).sum();
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, series, "wal replayed; ready");
    state.set_ready(tsdb.clone());

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let on_upload = {
        let bucket = bucket.clone();
        move |metas: &[strata_block::BlockMeta]| {
            for m in metas {
                if let Ok(t) = strata_model::TenantId::new(&m.tenant) {
                    bucket.invalidate(&t);
                }
            }
        }
    };
    let flusher = tokio::spawn(run_flusher(
        tsdb.clone(),
        bucket.store().clone(),
        policy,
        FLUSH_CHECK_INTERVAL,
        stopped.clone(),
        on_upload,
    ));

    let spilling = tokio::spawn(run_spiller(tsdb.clone(), SPILL_INTERVAL, stopped.clone()));
    let health = tokio::spawn(peers.run_health_checks(stopped.clone()));
    let reloading = tokio::spawn(limits.run(stopped.clone()));

    let compacting = compactor.map(|c| tokio::spawn(c.run(cfg.compactor.interval, stopped.clone())));

    server.await?.context("http server")?;
    let _ = stop.send(true);
    let _ = health.await;
    let _ = reloading.await;
    if let Some(c) = compacting
        && tokio::time::timeout(std::time::Duration::from_secs(30), c).await.is_err()
    {
        tracing::warn!("compaction still running at shutdown; the next pass redoes it");
    }
    if tokio::time::timeout(std::time::Duration::from_secs(30), flusher).await.is_err() {
        tracing::warn!("block upload still running at shutdown; it resumes from the WAL at the next start");
    }
    if tokio::time::timeout(std::time::Duration::from_secs(30), spilling).await.is_err() {
        tracing::warn!("moving head chunks to files still running at shutdown");
    }
    tracing::info!("shutting down: flushing the write-ahead log");
    drop(state);
    // The last handle closes the WAL writer, which fsyncs before exiting.
    match Arc::try_unwrap(tsdb) {
        Ok(db) => drop(db),
        Err(db) => tracing::warn!(refs = Arc::strong_count(&db), "storage still referenced at shutdown"),
    }
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "SIGINT", "shutdown requested"),
        _ = term => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}
