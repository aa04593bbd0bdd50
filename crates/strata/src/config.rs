//! The configuration file (YAML). Every field is optional; `configs/strata.example.yaml`
//! documents each one and is checked to parse by a test.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::time::Duration;
use strata_block::ObjStoreConfig;

use serde::{Deserialize, Deserializer};
use strata_server::ServerConfig;
use strata_tsdb::{FsyncPolicy, TsdbOptions, WalOptions};

/// The whole configuration of `strata serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Directory for all local state: the write-ahead log under `wal/`.
    pub(crate) data_dir: PathBuf,
    /// Address the HTTP server listens on.
    pub(crate) listen: String,
    /// Logging.
    pub(crate) log: LogConfig,
    /// Write-ahead log and head behaviour.
    pub(crate) wal: WalConfig,
    /// Limits and tenant handling of the HTTP surface.
    pub(crate) server: ServerConfig,
    /// Per-tenant limits: the defaults inline, plus `overrides_file` (re-read every
    /// `reload_interval`) with per-tenant values.
    pub(crate) limits: strata_server::LimitsConfig,
    /// The read side: HA replica deduplication at query time.
    pub(crate) querier: strata_querier::QuerierConfig,
    /// Ingest-time HA deduplication: one elected replica per (tenant, cluster).
    pub(crate) ha_tracker: strata_server::HaTrackerConfig,
    /// Labels that every series of this node carries in query answers and remote
    /// read (a Prometheus's `global.external_labels`): they tell this node's data
    /// apart in a global view, and selections that contradict them skip it.
    pub(crate) external_labels: std::collections::BTreeMap<String, String>,
    /// The global view: peers (other Strata nodes, Prometheus servers) that every
    /// query also reads through remote read.
    pub(crate) federation: strata_querier::FederationConfig,
    /// Object storage for blocks, in Thanos's objstore shape (`type: FILESYSTEM` or
    /// `type: S3` with `config: {...}`). Default: FILESYSTEM under `<data_dir>/bucket`.
    /// `--objstore.config-file` replaces this section.
    pub(crate) objstore: Option<ObjStoreConfig>,
    /// Cutting the head into blocks and reading blocks back.
    pub(crate) blocks: BlocksConfig,
    /// Merging small blocks into large ones (inside `serve`, or `strata compact`).
    pub(crate) compactor: CompactorConfig,
    /// How long data is kept.
    pub(crate) retention: RetentionConfig,
    /// The file as read (with `--objstore.config-file`'s section in place), for
    /// `/api/v1/status/config`; not a setting.
    #[serde(skip)]
    pub(crate) source: serde_norway::Mapping,
}

/// Block cutting and reading.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BlocksConfig {
    /// Time span of a block cut from the head, aligned to multiples of it (as in Prometheus).
    #[serde(deserialize_with = "duration")]
    pub(crate) block_range: Duration,
    /// How long after a range ends its block is cut, so late samples still land in the head.
    #[serde(deserialize_with = "duration")]
    pub(crate) grace_period: Duration,
    /// Memory budget for cached block indexes (series tables, postings, Parquet footers).
    pub(crate) index_cache_bytes: usize,
    /// How long a bucket listing is reused by queries before listing again.
    #[serde(deserialize_with = "duration")]
    pub(crate) list_interval: Duration,
}

impl Default for BlocksConfig {
    fn default() -> Self {
        BlocksConfig {
            block_range: Duration::from_secs(2 * 3600),
            grace_period: Duration::from_secs(3600),
            index_cache_bytes: 512 << 20,
            list_interval: Duration::from_secs(30),
        }
    }
}

/// Compaction settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CompactorConfig {
    /// Run compaction, retention and garbage collection inside `strata serve`. Turn off
    /// when a separate `strata compact` process works on the same bucket.
    pub(crate) enabled: bool,
    /// Pause between compaction passes.
    #[serde(deserialize_with = "duration")]
    pub(crate) interval: Duration,
    /// Block ranges, smallest first; adjacent blocks merge up to the next range.
    #[serde(deserialize_with = "durations")]
    pub(crate) ranges: Vec<Duration>,
    /// How long a replaced or expired block stays after its deletion mark, so
    /// queries in flight can finish reading it.
    #[serde(deserialize_with = "duration")]
    pub(crate) deletion_delay: Duration,
    /// Offline HA dedup (Thanos's `--deduplication.replica-label`).
    pub(crate) deduplication: DeduplicationConfig,
    /// 5m and 1h aggregate copies of old data.
    pub(crate) downsample: DownsampleConfig,
}

/// Downsampling settings (docs/downsampling.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DownsampleConfig {
    pub(crate) enabled: bool,
    /// Raw data this old gets a 5m copy.
    #[serde(deserialize_with = "duration")]
    pub(crate) raw_to_5m_after: Duration,
    /// 5m data this old gets a 1h copy.
    #[serde(rename = "5m_to_1h_after", deserialize_with = "duration")]
    pub(crate) five_m_to_1h_after: Duration,
}

impl Default for DownsampleConfig {
    fn default() -> Self {
        let d = strata_compact::DownsampleOptions::default();
        DownsampleConfig {
            enabled: d.enabled,
            raw_to_5m_after: d.raw_to_5m_after,
            five_m_to_1h_after: d.five_m_to_1h_after,
        }
    }
}

/// Offline HA replica deduplication in compaction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DeduplicationConfig {
    /// Labels that tell HA replicas apart: compaction merges series that differ
    /// only in them into one series without them, so the bucket keeps one copy.
    pub(crate) replica_labels: Vec<String>,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        let h = |n: u64| Duration::from_secs(n * 3600);
        CompactorConfig {
            enabled: true,
            interval: Duration::from_secs(300),
            ranges: vec![h(2), h(12), h(48), h(14 * 24)],
            deletion_delay: h(2),
            deduplication: DeduplicationConfig::default(),
            downsample: DownsampleConfig::default(),
        }
    }
}

/// Retention settings: per resolution, with per-tenant overrides. 0 keeps forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetentionConfig {
    #[serde(deserialize_with = "duration")]
    pub(crate) raw: Duration,
    #[serde(rename = "5m", deserialize_with = "duration")]
    pub(crate) five_m: Duration,
    #[serde(rename = "1h", deserialize_with = "duration")]
    pub(crate) one_h: Duration,
    /// Per-tenant overrides: a duration (of raw data, as before) or any of
    /// `raw`, `5m`, `1h` (the rest from the defaults).
    pub(crate) tenants: std::collections::BTreeMap<String, TenantRetention>,
}

/// A tenant's override.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum TenantRetention {
    Raw(#[serde(deserialize_with = "duration")] Duration),
    Resolutions(PartialRetention),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartialRetention {
    #[serde(default, deserialize_with = "strata_model::config_duration::optional")]
    raw: Option<Duration>,
    #[serde(default, rename = "5m", deserialize_with = "strata_model::config_duration::optional")]
    five_m: Option<Duration>,
    #[serde(default, rename = "1h", deserialize_with = "strata_model::config_duration::optional")]
    one_h: Option<Duration>,
}

impl Default for RetentionConfig {
    /// Raw 30 days; the downsampled copies forever (Thanos keeps all forever).
    fn default() -> Self {
        RetentionConfig {
            raw: Duration::from_secs(30 * 24 * 3600),
            five_m: Duration::ZERO,
            one_h: Duration::ZERO,
            tenants: Default::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:9201".into(),
            log: LogConfig::default(),
            wal: WalConfig::default(),
            server: ServerConfig::default(),
            limits: Default::default(),
            querier: strata_querier::QuerierConfig::default(),
            ha_tracker: strata_server::HaTrackerConfig::default(),
            external_labels: Default::default(),
            federation: Default::default(),
            objstore: None,
            blocks: BlocksConfig::default(),
            compactor: CompactorConfig::default(),
            retention: RetentionConfig::default(),
            source: serde_norway::Mapping::new(),
        }
    }
}

/// How log lines look (`--log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogFormat {
    /// For people: time, level, target, message, fields.
    Text,
    /// Prometheus's format: `ts=… level=… msg=… key=value`.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// A `tracing` filter such as `info` or `strata_tsdb=debug,info`; the
    /// `RUST_LOG` environment variable overrides it.
    pub(crate) level: String,
    /// `text` for people, `logfmt` as Prometheus logs, `json` for log pipelines.
    pub(crate) format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Text }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FsyncMode {
    PerRequest,
    Interval,
}

/// Write-ahead log settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WalConfig {
    /// `per_request`: a write is acknowledged only after its records are fsynced
    /// (concurrent writes share one fsync). `interval`: acknowledged once written to
    /// the OS, fsynced every `fsync_interval` (survives a crash of Strata, not a
    /// power loss).
    pub(crate) fsync: FsyncMode,
    /// Period of fsync in `interval` mode.
    #[serde(deserialize_with = "duration")]
    pub(crate) fsync_interval: Duration,
    /// Size at which a new WAL segment file is started.
    pub(crate) segment_size_bytes: u64,
    /// How far behind a series' newest sample a sample is still accepted. 0 rejects
    /// every out-of-order sample, as Prometheus does by default.
    #[serde(deserialize_with = "duration")]
    pub(crate) out_of_order_window: Duration,
    /// Move closed head chunks out of memory into files under
    /// `<data_dir>/head_chunks/` once all their samples are `head_memory_window`
    /// behind the tenant's newest sample (reads then go through the page cache).
    pub(crate) spill_head_chunks: bool,
    /// How much recent data the head keeps in memory when spilling.
    #[serde(deserialize_with = "duration")]
    pub(crate) head_memory_window: Duration,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            fsync: FsyncMode::PerRequest,
            fsync_interval: Duration::from_secs(1),
            segment_size_bytes: 128 << 20,
            out_of_order_window: Duration::ZERO,
            spill_head_chunks: true,
            head_memory_window: Duration::from_secs(3600),
        }
    }
}

impl WalConfig {
    pub(crate) fn tsdb_options(&self) -> TsdbOptions {
        TsdbOptions {
            wal: WalOptions {
                fsync: match self.fsync {
                    FsyncMode::PerRequest => FsyncPolicy::PerRequest,
                    FsyncMode::Interval => FsyncPolicy::Interval(self.fsync_interval),
                },
                segment_size: self.segment_size_bytes,
            },
            out_of_order_window_ms: self.out_of_order_window.as_millis() as i64,
            memory_window_ms: self.spill_head_chunks.then_some(self.head_memory_window.as_millis() as i64),
            ..TsdbOptions::default()
        }
    }
}

use strata_model::config_duration::required as duration;

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| {
            humantime::parse_duration(s).map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
        })
        .collect()
}

impl Config {
    pub(crate) fn from_yaml(text: &str) -> anyhow::Result<Config> {
        Ok(serde_norway::from_str(text)?)
    }

    /// Reads `--config FILE` (or the defaults), then applies `--objstore.config-file`.
    pub(crate) fn load(config: Option<&Path>, objstore_file: Option<&Path>) -> anyhow::Result<Config> {
        let mut cfg = match config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
                let mut cfg = Config::from_yaml(&text).with_context(|| format!("parsing config {}", path.display()))?;
                cfg.source = serde_norway::from_str::<Option<serde_norway::Mapping>>(&text)?.unwrap_or_default();
                cfg
            }
            None => Config::default(),
        };
        if let Some(path) = objstore_file {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let o: ObjStoreConfig =
                serde_norway::from_str(&text).with_context(|| format!("parsing objstore config {}", path.display()))?;
            cfg.objstore = Some(o);
            cfg.source.insert("objstore".into(), serde_norway::from_str(&text)?);
        }
        cfg.listen = listen_addr(&cfg.listen);
        Ok(cfg)
    }

    /// The configuration for `/api/v1/status/config`: the file as read, with the
    /// values the command line can override (`data_dir`, `listen`, `log`) as in
    /// effect, and every secret (passwords, keys, tokens, authorization headers)
    /// replaced by `<secret>` as Prometheus does. Options the file leaves out have
    /// their defaults (`configs/strata.example.yaml`).
    pub(crate) fn status_yaml(&self) -> String {
        use serde_norway::Value;
        let mut m = self.source.clone();
        m.insert("data_dir".into(), Value::String(self.data_dir.display().to_string()));
        m.insert("listen".into(), Value::String(self.listen.clone()));
        let format = match self.log.format {
            LogFormat::Text => "text",
            LogFormat::Logfmt => "logfmt",
            LogFormat::Json => "json",
        };
        let mut log = serde_norway::Mapping::new();
        log.insert("level".into(), Value::String(self.log.level.clone()));
        log.insert("format".into(), Value::String(format.into()));
        m.insert("log".into(), Value::Mapping(log));
        let mut v = Value::Mapping(m);
        redact(&mut v);
        serde_norway::to_string(&v).unwrap_or_default()
    }

    /// The object storage to use: the configured one, or a directory under `data_dir`.
    pub(crate) fn objstore(&self) -> ObjStoreConfig {
        self.objstore.clone().unwrap_or_else(|| ObjStoreConfig::filesystem(self.data_dir.join("bucket")))
    }

    /// Retention of each resolution for `tenant` (`None`: keep forever).
    pub(crate) fn retention(&self, tenant: &str) -> strata_compact::Retention {
        let d = &self.retention;
        let (raw, five_m, one_h) = match d.tenants.get(tenant) {
            None => (d.raw, d.five_m, d.one_h),
            Some(TenantRetention::Raw(raw)) => (*raw, d.five_m, d.one_h),
            Some(TenantRetention::Resolutions(p)) => {
                (p.raw.unwrap_or(d.raw), p.five_m.unwrap_or(d.five_m), p.one_h.unwrap_or(d.one_h))
            }
        };
        let keep = |d: Duration| (!d.is_zero()).then_some(d);
        strata_compact::Retention { raw: keep(raw), five_m: keep(five_m), one_h: keep(one_h) }
    }
}

/// Keys whose values are secrets, anywhere in the file (Thanos's S3 `secret_key`,
/// peers' `password` and `bearer_token`, and the like).
const SECRET_KEYS: &[&str] =
    &["password", "secret_key", "session_token", "bearer_token", "credentials", "authorization", "token"];

/// Replaces every secret in `v` by `<secret>`.
fn redact(v: &mut serde_norway::Value) {
    use serde_norway::Value;
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let secret = k.as_str().is_some_and(|k| SECRET_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s)));
                if secret && !val.is_null() {
                    *val = Value::String("<secret>".into());
                } else {
                    redact(val);
                }
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(redact),
        Value::Tagged(t) => redact(&mut t.value),
        _ => {}
    }
}

/// A listen address as Prometheus's `--web.listen-address` takes it: `:9201`
/// (no host) means every interface, `0.0.0.0:9201`.
pub(crate) fn listen_addr(s: &str) -> String {
    match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_address_without_host_is_every_interface() {
        assert_eq!(listen_addr(":9201"), "0.0.0.0:9201");
        assert_eq!(listen_addr("127.0.0.1:9201"), "127.0.0.1:9201");
        assert_eq!(listen_addr("[::]:9201"), "[::]:9201");
        let c = Config::from_yaml("listen: ':9301'\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yml");
        std::fs::write(&f, "listen: ':9301'\n").unwrap();
        assert_eq!(c.listen, ":9301", "from_yaml alone keeps the text");
        assert_eq!(Config::load(Some(&f), None).unwrap().listen, "0.0.0.0:9301");
    }

    #[test]
    fn status_yaml_is_the_loaded_file_with_overrides_and_no_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yml");
        std::fs::write(
            &f,
            "listen: 127.0.0.1:1\nfederation:\n  peers:\n    - name: p\n      url: http://p\n      \
             basic_auth: {username: u, password: hunter2}\n      headers: {Authorization: Bearer abc, x-a: b}\n",
        )
        .unwrap();
        let o = dir.path().join("bucket.yml");
        std::fs::write(&o, "type: S3\nconfig: {bucket: b, endpoint: 'e:1', access_key: AK, secret_key: SK}\n").unwrap();
        let mut c = Config::load(Some(&f), Some(&o)).unwrap();
        c.data_dir = PathBuf::from("/srv/strata");
        c.log.format = LogFormat::Logfmt;
        let y = c.status_yaml();
        for secret in ["hunter2", "Bearer abc", "SK"] {
            assert!(!y.contains(secret), "{secret} in {y}");
        }
        let v: serde_norway::Value = serde_norway::from_str(&y).unwrap();
        assert_eq!(v["data_dir"].as_str(), Some("/srv/strata"));
        assert_eq!(v["listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(v["log"]["format"].as_str(), Some("logfmt"));
        assert_eq!(v["objstore"]["config"]["bucket"].as_str(), Some("b"));
        assert_eq!(v["objstore"]["config"]["secret_key"].as_str(), Some("<secret>"));
        assert_eq!(v["federation"]["peers"][0]["basic_auth"]["username"].as_str(), Some("u"));
        assert_eq!(v["federation"]["peers"][0]["basic_auth"]["password"].as_str(), Some("<secret>"));
        assert_eq!(v["federation"]["peers"][0]["headers"]["Authorization"].as_str(), Some("<secret>"));
        assert_eq!(v["federation"]["peers"][0]["headers"]["x-a"].as_str(), Some("b"));
        // The redacted text is still a configuration that parses.
        assert!(Config::from_yaml(&y).is_ok(), "{y}");
        assert!(Config::default().status_yaml().contains("listen: 127.0.0.1:9201"));
    }

    #[test]
    fn example_config_parses_and_matches_defaults_where_it_says_so() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/strata.example.yaml");
        let text = std::fs::read_to_string(path).expect("example config exists");
        let c = Config::from_yaml(&text).expect("example config parses");
        assert_eq!(c.listen, "127.0.0.1:9201");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.wal.fsync, FsyncMode::PerRequest);
        assert_eq!(c.server.default_tenant, "anonymous");
        assert_eq!(c.objstore(), Config::default().objstore());
        assert_eq!(c.blocks.block_range, BlocksConfig::default().block_range);
        assert_eq!(c.compactor.ranges, CompactorConfig::default().ranges);
        assert_eq!(c.retention.raw, RetentionConfig::default().raw);
        assert_eq!(c.compactor.downsample.raw_to_5m_after, DownsampleConfig::default().raw_to_5m_after);
        assert_eq!(c.compactor.downsample.five_m_to_1h_after, DownsampleConfig::default().five_m_to_1h_after);
        assert!(c.external_labels.is_empty());
        assert_eq!(c.federation, strata_querier::FederationConfig::default());
    }

    #[test]
    fn federation_peers_parse_with_every_option() {
        let c = Config::from_yaml(
            "external_labels: {cluster: eu}\nfederation:\n  peers:\n    - name: us\n      url: http://us:9201\n      \
             external_labels: {cluster: us}\n      timeout: 5s\n      tenant: t\n      headers: {x-a: b}\n      \
             basic_auth: {username: u, password: p}\n      retention: 15d\n",
        )
        .expect("parses");
        assert_eq!(c.external_labels.get("cluster").map(String::as_str), Some("eu"));
        let p = &c.federation.peers[0];
        assert_eq!(
            (p.name.as_str(), p.timeout, p.retention),
            ("us", Duration::from_secs(5), Some(Duration::from_secs(15 * 86400)))
        );
        strata_querier::Peers::new(&c.federation).expect("peers build");
        assert!(
            Config::from_yaml("federation:\n  peers:\n    - name: x\n      url: http://x\n      tls_config: {}\n")
                .is_err()
        );
        let dup = Config::from_yaml(
            "federation:\n  peers:\n    - {name: x, url: 'http://a'}\n    - {name: x, url: 'http://b'}\n",
        )
        .unwrap();
        assert!(strata_querier::Peers::new(&dup.federation).is_err(), "peer names are unique");
    }

    #[test]
    fn the_compose_deployment_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/compose/strata.yaml");
        let c = Config::from_yaml(&std::fs::read_to_string(path).unwrap()).expect("compose config parses");
        assert_eq!(c.objstore().kind, strata_block::StoreKind::S3);
        c.objstore().build().expect("compose objstore config builds");
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(Config::from_yaml("listen: a\nlisten_addr: b\n").is_err());
        assert!(Config::from_yaml("wal:\n  fsync: sometimes\n").is_err());
        assert!(Config::from_yaml("wal:\n  out_of_order_window: banana\n").is_err());
    }

    #[test]
    fn objstore_file_in_thanos_shape_replaces_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bucket.yml");
        std::fs::write(
            &f,
            "type: S3\nconfig:\n  bucket: strata\n  endpoint: 127.0.0.1:8333\n  access_key: a\n  secret_key: s\n  insecure: true\n",
        )
        .unwrap();
        let c = Config::load(None, Some(&f)).unwrap();
        assert_eq!(c.objstore().kind, strata_block::StoreKind::S3);
        assert_eq!(c.objstore().config.bucket.as_deref(), Some("strata"));
        let d = Config::default();
        assert_eq!(d.objstore(), ObjStoreConfig::filesystem("./data/bucket"));
        assert_eq!(
            d.retention("x"),
            strata_compact::Retention { raw: Some(Duration::from_secs(30 * 86400)), five_m: None, one_h: None }
        );
    }

    #[test]
    fn empty_file_is_the_default() {
        let c = Config::from_yaml("{}").unwrap();
        assert_eq!(c.listen, Config::default().listen);
    }
}
