//! The `strata` binary: command line, configuration, runtime, telemetry, shutdown.
//!
//! ```text
//!  strata query ─► stateless query node: federation peers + read-only bucket (query.rs)
//!  strata serve ─► Config (YAML + flags) ─► tracing ─► data dir writable? ─► lock <data_dir>/lock (or exit 1)
//!               ─► log version and object store ─► object store (Thanos objstore config)
//!               ─► write, read back, delete a check object (or exit 1) ─► Bucket (listing, index cache)
//!               ─► bind listener (healthy, not ready)
//!               ─► Tsdb::open (WAL replay, off the I/O threads) ─► AppState::set_ready
//!               ─► background: flusher (cut + upload + WAL truncation), compactor
//!               ─► serve until SIGTERM/SIGINT ─► drain requests ─► WAL flushed and fsynced
//! ```

mod compact;
mod config;
mod frontend;
mod query;
mod telemetry;
mod tools;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use strata_block::{Bucket, BucketOptions, MeteredStore, StoreKind};
use strata_compact::Compactor;
use strata_server::{AppState, Blocks, router};
use strata_tsdb::{CutPolicy, DirLock, Tsdb, run_flusher, run_spiller};

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
#[command(name = "strata", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

/// Logging flags, accepted by every command (before or after its name).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogArgs {
    /// Log level or `tracing` filter (`debug`, `strata_tsdb=debug,info`); overrides
    /// RUST_LOG and `log.level` in the file [default: info]
    #[arg(long = "log.level", value_name = "LEVEL", global = true)]
    pub(crate) level: Option<String>,
    /// Log line format; overrides `log.format` in the file [default: text]
    #[arg(long = "log.format", value_name = "FORMAT", global = true)]
    pub(crate) format: Option<LogFormat>,
}

impl LogArgs {
    /// Applies the flags to the configuration's logging section.
    pub(crate) fn apply(&self, cfg: &mut config::LogConfig) {
        if let Some(l) = &self.level {
            cfg.level = l.clone();
        }
        if let Some(f) = self.format {
            cfg.format = f;
        }
    }
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
    /// YAML configuration file (see configs/strata.example.yaml); without one, the defaults
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for local state (WAL, head chunks, the default FILESYSTEM bucket);
    /// overrides `data_dir` in the file [default: ./data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on, `host:port`, or `:port` for every interface (as
    /// Prometheus's --web.listen-address); overrides `listen` in the file [default: 127.0.0.1:9201]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Object storage config in Thanos's objstore YAML shape; replaces `objstore` in the file
    /// [default: FILESYSTEM in <data-dir>/bucket]
    #[arg(long = "objstore.config-file", value_name = "FILE")]
    objstore_config_file: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let started = std::time::SystemTime::now();
    let mut command = Cli::command();
    // Built, so the global logging flags appear among each subcommand's arguments.
    command.build();
    let matches = command.clone().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let sub = |name: &str| -> (Option<&clap::Command>, Option<&clap::ArgMatches>) {
        (command.find_subcommand(name), matches.subcommand_matches(name))
    };
    match cli.command {
        Command::Serve(args) => {
            let mut cfg = Config::load(args.config.as_deref(), args.objstore_config_file.as_deref())?;
            if let Some(d) = args.data_dir {
                cfg.data_dir = d;
            }
            if let Some(l) = args.listen {
                cfg.listen = config::listen_addr(&l);
            }
            cli.log.apply(&mut cfg.log);
            telemetry::init(&cfg.log, cli.log.level.as_deref())?;
            let status = runtime_status(&cfg, sub("serve"), started);
            // The data dir before anything else touches it (the WAL, head_chunks/, the
            // default FILESYSTEM bucket under it and the compactor rewriting that).
            check_data_dir(&cfg.data_dir)?;
            let lock = match DirLock::acquire(&cfg.data_dir) {
                Ok(lock) => lock,
                Err(e @ strata_tsdb::Error::Locked { .. }) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
                Err(e) => return Err(e).with_context(|| format!("data dir {}", cfg.data_dir.display())),
            };
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(cfg, lock, status))
        }
        Command::Query(args) => {
            let mut cfg = query::load(&args)?;
            cli.log.apply(&mut cfg.log);
            telemetry::init(&cfg.log, cli.log.level.as_deref())?;
            let status = runtime_status(&cfg, sub("query"), started);
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(query::run(cfg, status))
        }
        Command::Compact(args) => {
            let mut cfg = args.store.load()?;
            cli.log.apply(&mut cfg.log);
            telemetry::init(&cfg.log, cli.log.level.as_deref())?;
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(compact::run(cfg, args.once))
        }
        Command::Tools(args) => tools::run(args, &cli.log),
        Command::QueryFrontend(args) => frontend::run(args, &cli.log),
    }
}

/// What `/api/v1/status/*` report: the command line as parsed (flags left out show
/// the value in effect, from the file or the default), the configuration, times.
fn runtime_status(
    cfg: &Config,
    (command, matches): (Option<&clap::Command>, Option<&clap::ArgMatches>),
    started: std::time::SystemTime,
) -> strata_server::RuntimeStatus {
    let in_effect = |flag: &str| -> Option<String> {
        Some(match flag {
            "data-dir" => cfg.data_dir.display().to_string(),
            "listen" => cfg.listen.clone(),
            "log.level" => cfg.log.level.clone(),
            "log.format" => format!("{:?}", cfg.log.format).to_ascii_lowercase(),
            _ => return None,
        })
    };
    let mut flags = std::collections::BTreeMap::new();
    if let (Some(command), Some(matches)) = (command, matches) {
        for arg in command.get_arguments() {
            let Some(name) = arg.get_long() else { continue };
            if matches!(name, "help" | "version") {
                continue;
            }
            let given = matches
                .try_get_raw(arg.get_id().as_str())
                .ok()
                .flatten()
                .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(","));
            let default = || arg.get_default_values().iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>().join(",");
            let value = given.or_else(|| in_effect(name)).unwrap_or_else(default);
            flags.insert(name.to_string(), value);
        }
    }
    let now = std::time::SystemTime::now();
    strata_server::RuntimeStatus {
        flags,
        config_yaml: cfg.status_yaml(),
        start_time: started,
        config_time: now,
        storage_retention: if cfg.retention.raw.is_zero() { String::new() } else { fmt_retention(cfg.retention.raw) },
    }
}

/// A retention the way Prometheus prints one: `30d`, `36h`, else humantime.
fn fmt_retention(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s > 0 && s % 86_400 == 0 && d.subsec_nanos() == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 && d.subsec_nanos() == 0 => format!("{}h", s / 3_600),
        _ => humantime::format_duration(d).to_string(),
    }
}

/// The data dir exists (or is created) and takes a file: said about the data dir by
/// name, before storage of any kind is opened.
fn check_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("data dir {}: cannot create it", dir.display()))?;
    let probe = dir.join(".strata-write-check");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| format!("data dir {} is not writable", dir.display()))
}

/// The object store, described for the start-up log and errors: type and where.
fn describe_store(o: &strata_block::ObjStoreConfig) -> String {
    let c = &o.config;
    let mut out = match o.kind {
        StoreKind::Filesystem => {
            format!(
                "FILESYSTEM directory={}",
                c.directory.as_ref().map(|d| d.display().to_string()).unwrap_or_default()
            )
        }
        StoreKind::S3 => format!(
            "S3 bucket={} endpoint={}",
            c.bucket.as_deref().unwrap_or(""),
            c.endpoint.as_deref().filter(|e| !e.is_empty()).unwrap_or("AWS")
        ),
    };
    if !o.prefix.is_empty() {
        out.push_str(&format!(" prefix={}", o.prefix));
    }
    out
}

/// Writes, reads back and deletes a small object, so an unreachable or read-only
/// store fails the start with its name instead of the first block upload hours later.
async fn check_bucket(store: &dyn strata_block::ObjectStore, describe: &str) -> anyhow::Result<()> {
    use object_store::ObjectStoreExt as _;
    let key = object_store::path::Path::from(BUCKET_CHECK_OBJECT);
    let what = || format!("object storage ({describe}) is not reachable or not writable");
    store.put(&key, object_store::PutPayload::from_static(b"strata start-up check\n")).await.with_context(what)?;
    store.head(&key).await.with_context(what)?;
    store.delete(&key).await.with_context(what)?;
    Ok(())
}

/// The object [`check_bucket`] writes and deletes at the bucket's root (not a
/// tenant: tenants are directories).
const BUCKET_CHECK_OBJECT: &str = ".strata-startup-check";

/// Serves with the data dir's `lock` held (it moves into the `Tsdb`).
async fn serve(cfg: Config, lock: DirLock, status: strata_server::RuntimeStatus) -> anyhow::Result<()> {
    let b = strata_server::BUILD_INFO;
    let objstore = describe_store(&cfg.objstore());
    tracing::info!(
        version = b.version,
        revision = b.revision,
        data_dir = %cfg.data_dir.display(),
        objstore = %objstore,
        "starting strata serve"
    );
    let mut opts = query::state_options(&cfg, false)?;
    opts.status = status;
    let peers = opts.peers.clone();
    let limits = opts.limits.clone();
    let state = AppState::build(opts).map_err(|e| anyhow::anyhow!("{e}"))?;

    let store = cfg.objstore().build().with_context(|| format!("object storage ({objstore})"))?;
    check_bucket(store.as_ref(), &objstore).await?;
    let store = Arc::new(MeteredStore::new(store));
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

    let listener = tokio::net::TcpListener::bind(config::listen_addr(&cfg.listen))
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening; replaying the write-ahead log");
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
    let elapsed = humantime::format_duration(std::time::Duration::from_millis(started.elapsed().as_millis() as u64));
    tracing::info!(%elapsed, series, "wal replayed; ready");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn help(path: &[&str]) -> String {
        let mut cmd = Cli::command();
        cmd.build();
        let mut c = &mut cmd;
        for p in path {
            c = c.find_subcommand_mut(p).expect("subcommand");
        }
        c.render_long_help().to_string()
    }

    #[test]
    fn help_names_the_defaults_the_config_has() {
        let d = Config::default();
        let serve = help(&["serve"]);
        assert!(serve.contains(&format!("[default: {}]", d.data_dir.display())), "{serve}");
        assert!(serve.contains(&format!("[default: {}]", d.listen)), "{serve}");
        assert!(serve.contains("--log.level") && serve.contains("--log.format"), "{serve}");
        assert!(serve.contains("[default: info]") && serve.contains(&d.log.level), "{serve}");
        assert!(serve.contains("logfmt") && serve.contains("json"), "{serve}");
        assert!(help(&[]).contains("--version"));
        assert!(help(&["query"]).contains(&format!("[default: {}]", d.listen)));
    }

    #[test]
    fn version_is_accepted_by_every_command() {
        for args in [&["strata", "--version"][..], &["strata", "serve", "--version"], &["strata", "query", "-V"]] {
            let e = Cli::try_parse_from(args).expect_err("--version exits");
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion, "{args:?}");
            assert!(e.to_string().contains(env!("CARGO_PKG_VERSION")), "{e}");
        }
    }

    #[test]
    fn log_flags_parse_before_or_after_the_command() {
        let cli = Cli::try_parse_from(["strata", "serve", "--log.level", "debug", "--log.format", "logfmt"]).unwrap();
        assert_eq!((cli.log.level.as_deref(), cli.log.format), (Some("debug"), Some(LogFormat::Logfmt)));
        let cli = Cli::try_parse_from(["strata", "--log.format=json", "compact", "--once"]).unwrap();
        assert_eq!(cli.log.format, Some(LogFormat::Json));
        assert!(Cli::try_parse_from(["strata", "serve", "--log.format", "xml"]).is_err());
        let mut log = config::LogConfig::default();
        Cli::try_parse_from(["strata", "serve", "--log.level=warn"]).unwrap().log.apply(&mut log);
        assert_eq!((log.level.as_str(), log.format), ("warn", LogFormat::Text));
    }

    #[test]
    fn flags_status_lists_every_flag_with_the_value_in_effect() {
        let mut cmd = Cli::command();
        cmd.build();
        let m = cmd.clone().get_matches_from(["strata", "serve", "--listen", ":9301", "--log.format", "json"]);
        let mut cfg = Config { listen: config::listen_addr(":9301"), ..Default::default() };
        cfg.log.format = LogFormat::Json;
        let s = runtime_status(
            &cfg,
            (cmd.find_subcommand("serve"), m.subcommand_matches("serve")),
            std::time::SystemTime::now(),
        );
        let f = &s.flags;
        assert_eq!(f.get("listen").map(String::as_str), Some(":9301"), "{f:?}");
        assert_eq!(f.get("data-dir").map(String::as_str), Some("./data"), "{f:?}");
        assert_eq!(f.get("log.format").map(String::as_str), Some("json"), "{f:?}");
        assert_eq!(f.get("log.level").map(String::as_str), Some("info"), "{f:?}");
        assert_eq!(f.get("config").map(String::as_str), Some(""), "{f:?}");
        assert!(f.contains_key("objstore.config-file") && !f.contains_key("help"), "{f:?}");
        assert_eq!(s.storage_retention, "30d");
        assert!(s.config_yaml.contains("listen: 0.0.0.0:9301"), "{}", s.config_yaml);
    }

    #[test]
    fn retention_prints_as_prometheus_does() {
        let h = |n: u64| std::time::Duration::from_secs(n * 3600);
        assert_eq!(fmt_retention(h(30 * 24)), "30d");
        assert_eq!(fmt_retention(h(36)), "36h");
        assert_eq!(fmt_retention(std::time::Duration::from_secs(90)), "1m 30s");
    }

    #[test]
    fn the_object_store_is_described_by_type_and_place() {
        assert_eq!(
            describe_store(&strata_block::ObjStoreConfig::filesystem("./data/bucket")),
            "FILESYSTEM directory=./data/bucket"
        );
        let s3: strata_block::ObjStoreConfig =
            serde_norway::from_str("type: S3\nconfig: {bucket: b, endpoint: 'h:1', secret_key: s}\nprefix: p\n")
                .unwrap();
        let d = describe_store(&s3);
        assert_eq!(d, "S3 bucket=b endpoint=h:1 prefix=p");
    }

    #[tokio::test]
    async fn the_bucket_check_leaves_nothing_and_fails_on_an_unreachable_store() {
        use object_store::ObjectStoreExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = strata_block::ObjStoreConfig::filesystem(dir.path()).build().unwrap();
        check_bucket(store.as_ref(), "here").await.unwrap();
        assert!(
            store.head(&object_store::path::Path::from(BUCKET_CHECK_OBJECT)).await.is_err(),
            "check object deleted"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Nothing listens on port 1: the check fails, naming the store.
        let s3: strata_block::ObjStoreConfig = serde_norway::from_str(
            "type: S3\nconfig: {bucket: b, endpoint: '127.0.0.1:1', insecure: true, access_key: a, secret_key: s, request_timeout: 1s}\n",
        )
        .unwrap();
        let e = check_bucket(s3.build().unwrap().as_ref(), &describe_store(&s3)).await.unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("S3 bucket=b endpoint=127.0.0.1:1") && e.contains("not reachable"), "{e}");
    }

    #[test]
    fn an_unusable_data_dir_is_named_as_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = format!("{:#}", check_data_dir(&file.join("data")).unwrap_err());
        assert!(e.starts_with("data dir ") && e.contains(&file.display().to_string()), "{e}");
        check_data_dir(&dir.path().join("fresh")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("fresh")).unwrap().count(), 0, "the probe file is removed");
    }
}
