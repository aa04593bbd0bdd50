//! The configuration file (YAML). Every field is optional; `configs/strata.example.yaml`
//! documents each one and is checked to parse by a test.

use std::path::PathBuf;
use std::time::Duration;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:9201".into(),
            log: LogConfig::default(),
            wal: WalConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// A `tracing` filter such as `info` or `strata_tsdb=debug,info`; the
    /// `RUST_LOG` environment variable overrides it.
    pub(crate) level: String,
    /// `text` for people, `json` for log pipelines.
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
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            fsync: FsyncMode::PerRequest,
            fsync_interval: Duration::from_secs(1),
            segment_size_bytes: 128 << 20,
            out_of_order_window: Duration::ZERO,
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
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

impl Config {
    pub(crate) fn from_yaml(text: &str) -> anyhow::Result<Config> {
        Ok(serde_norway::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults_where_it_says_so() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/strata.example.yaml");
        let text = std::fs::read_to_string(path).expect("example config exists");
        let c = Config::from_yaml(&text).expect("example config parses");
        assert_eq!(c.listen, "127.0.0.1:9201");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.wal.fsync, FsyncMode::PerRequest);
        assert_eq!(c.server.default_tenant, "anonymous");
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(Config::from_yaml("listen: a\nlisten_addr: b\n").is_err());
        assert!(Config::from_yaml("wal:\n  fsync: sometimes\n").is_err());
        assert!(Config::from_yaml("wal:\n  out_of_order_window: banana\n").is_err());
    }

    #[test]
    fn empty_file_is_the_default() {
        let c = Config::from_yaml("{}").unwrap();
        assert_eq!(c.listen, Config::default().listen);
    }
}
