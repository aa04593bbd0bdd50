//! Strata's own metrics, served at `/metrics` in Prometheus text format. Names are
//! the constants below; counters get `_total` appended on exposition. The standard
//! `process_*` metrics and `strata_build_info` come from [`process`].

mod process;

pub(crate) use process::threads as process_threads;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use strata_tsdb::Tsdb;

pub(crate) const SAMPLES_RECEIVED: &str = "strata_remote_write_samples_received";
/// Mimir's `cortex_discarded_samples_total{user,reason}`, with `tenant`.
pub(crate) const DISCARDED_SAMPLES: &str = "strata_discarded_samples";
pub(crate) const EXEMPLARS_DROPPED: &str = "strata_remote_write_exemplars_dropped";
pub(crate) const HISTOGRAMS_REJECTED: &str = "strata_remote_write_histograms_rejected";
pub(crate) const REQUESTS_REJECTED: &str = "strata_remote_write_requests_rejected";
pub(crate) const REQUEST_DURATION: &str = "strata_http_request_duration_seconds";
pub(crate) const HTTP_PANICS: &str = "strata_http_panics";
/// Mimir's `cortex_distributor_deduped_samples_total`.
pub(crate) const HA_DEDUPLICATED: &str = "strata_ha_tracker_deduplicated_samples";
pub(crate) const HA_ELECTED: &str = "strata_ha_tracker_elected_replica";
pub(crate) const HA_ELECTED_AT: &str = "strata_ha_tracker_elected_replica_timestamp_seconds";
pub(crate) const HA_FAILOVERS: &str = "strata_ha_tracker_elected_replica_changes";
pub(crate) const PEER_UP: &str = "strata_federation_peer_up";
pub(crate) const PEER_REQUESTS: &str = "strata_federation_peer_requests";
pub(crate) const PEER_FAILURES: &str = "strata_federation_peer_failures";
pub(crate) const PEER_BYTES: &str = "strata_federation_peer_read_bytes";
pub(crate) const PEER_LATENCY: &str = "strata_federation_peer_last_latency_seconds";

type L = Vec<(&'static str, String)>;

/// A per-tenant head gauge: name, help, and how to read it from the stats.
type HeadGauge = (&'static str, &'static str, fn(&strata_tsdb::HeadStats) -> u64);

/// Metrics the HTTP layer updates, plus a collector that reads the ingest path's
/// counters at scrape time.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) samples_received: Family<L, Counter>,
    pub(crate) discarded_samples: Family<L, Counter>,
    pub(crate) exemplars_dropped: Counter,
    pub(crate) histograms_rejected: Family<L, Counter>,
    pub(crate) requests_rejected: Family<L, Counter>,
    pub(crate) request_duration: Family<L, Histogram, fn() -> Histogram>,
    pub(crate) http_panics: Counter,
    pub(crate) ha_deduplicated: Family<L, Counter>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// Metrics of a node with nothing behind them yet (no head, no bucket, no
    /// peers, default HA and limits), for tests of what they render.
    #[cfg(test)]
    pub(crate) fn detached() -> Metrics {
        let ha = Arc::new(crate::ha_tracker::HaTracker::new(Default::default()));
        Metrics::new(Arc::new(OnceLock::new()), Arc::new(OnceLock::new()), ha, Default::default(), &Default::default())
    }

    pub(crate) fn new(
        tsdb: Arc<OnceLock<Arc<Tsdb>>>,
        blocks: Arc<OnceLock<crate::Blocks>>,
        ha: Arc<crate::ha_tracker::HaTracker>,
        peers: Arc<strata_querier::Peers>,
        limits: &crate::limits::Overrides,
    ) -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            samples_received: Family::default(),
            discarded_samples: Family::default(),
            exemplars_dropped: Counter::default(),
            histograms_rejected: Family::default(),
            requests_rejected: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            http_panics: Counter::default(),
            ha_deduplicated: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            SAMPLES_RECEIVED,
            "Samples received by remote write, by protocol version",
            m.samples_received.clone(),
        );
        registry.register(
            DISCARDED_SAMPLES,
            "Samples refused by remote write and not stored, by tenant and reason",
            m.discarded_samples.clone(),
        );
        registry.register(
            EXEMPLARS_DROPPED,
            "Exemplars received and dropped (Strata does not store exemplars)",
            m.exemplars_dropped.clone(),
        );
        registry.register(
            HISTOGRAMS_REJECTED,
            "Native histogram samples refused (not supported yet), by tenant",
            m.histograms_rejected.clone(),
        );
        registry.register(
            REQUESTS_REJECTED,
            "Whole remote write requests refused, by tenant (empty when the request names none validly) and HTTP status",
            m.requests_rejected.clone(),
        );
        registry.register(
            REQUEST_DURATION,
            "HTTP request latency by handler and status code",
            m.request_duration.clone(),
        );
        registry.register(
            HTTP_PANICS,
            "Requests whose handler panicked, answered 500 (the server keeps serving)",
            m.http_panics.clone(),
        );
        registry.register(
            HA_DEDUPLICATED,
            "Samples of non-elected HA replicas answered 202 and not stored, by tenant and cluster",
            m.ha_deduplicated.clone(),
        );
        limits.register(&mut registry);
        registry.register_collector(Box::new(TsdbCollector { tsdb, blocks }));
        registry.register_collector(Box::new(HaCollector(ha)));
        registry.register_collector(Box::new(PeerCollector(peers)));
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics { registry, ..m }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Reads the WAL and head counters when scraped.
#[derive(Debug)]
struct TsdbCollector {
    tsdb: Arc<OnceLock<Arc<Tsdb>>>,
    blocks: Arc<OnceLock<crate::Blocks>>,
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

impl prometheus_client::collector::Collector for TsdbCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some(db) = self.tsdb.get() else { return Ok(()) };
        let w = db.wal_stats();
        counter(
            &mut enc,
            "strata_wal_bytes_written",
            "Bytes written to the write-ahead log",
            w.bytes_written.load(Ordering::Relaxed),
        )?;
        counter(&mut enc, "strata_wal_fsyncs", "fsync calls on the write-ahead log", w.fsyncs.load(Ordering::Relaxed))?;
        counter(
            &mut enc,
            "strata_wal_records_written",
            "Records written to the write-ahead log",
            w.records_written.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "strata_wal_write_failures",
            "Failed write-ahead log writes or fsyncs, retries included",
            w.write_failures.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "strata_wal_recoveries",
            "Times the write-ahead log wrote again after failing",
            w.recoveries.load(Ordering::Relaxed),
        )?;
        ConstGauge::new(i64::from(db.is_failed())).encode(enc.encode_descriptor(
            "strata_wal_failed",
            "1 while the write-ahead log cannot write and appends get 503",
            None,
            MetricType::Gauge,
        )?)?;
        counter(
            &mut enc,
            "strata_wal_torn_records_truncated",
            "Torn or corrupt records cut off during replay",
            w.torn_tails_truncated.load(Ordering::Relaxed),
        )?;
        let i = db.ingest_stats();
        counter(
            &mut enc,
            "strata_head_samples_appended",
            "Samples appended to the head",
            i.samples_appended.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "strata_head_duplicate_samples_ignored",
            "Exact re-sends of stored samples, ignored",
            i.duplicates_ignored.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "strata_head_samples_rejected_too_old",
            "Samples refused because their range was already cut into a block",
            i.rejected_too_old.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "strata_blocks_uploaded",
            "Blocks cut from the head and uploaded by the background flusher",
            i.blocks_uploaded.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "strata_head_chunk_bytes_spilled",
            "Bytes of closed head chunks moved from memory to files",
            i.chunk_bytes_spilled.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "strata_block_flush_failures",
            "Failed attempts to cut and upload blocks (each is retried)",
            i.flush_failures.load(Ordering::Relaxed),
        )?;
        if let Some(b) = self.blocks.get() {
            if let Some(s) = &b.store_stats {
                let c: [(&str, &str, &AtomicU64); 5] = [
                    ("strata_objstore_get_requests", "Object store GET requests", &s.get_requests),
                    ("strata_objstore_get_bytes", "Bytes read from the object store", &s.get_bytes),
                    ("strata_objstore_put_requests", "Object store PUT requests", &s.put_requests),
                    ("strata_objstore_put_bytes", "Bytes written to the object store", &s.put_bytes),
                    ("strata_objstore_list_requests", "Object store LIST requests", &s.list_requests),
                ];
                for (name, help, v) in c {
                    counter(&mut enc, name, help, v.load(Ordering::Relaxed))?;
                }
            }
            ConstGauge::new(b.bucket.cached_index_bytes() as i64).encode(enc.encode_descriptor(
                "strata_block_index_cache_bytes",
                "Memory held by cached block indexes",
                None,
                MetricType::Gauge,
            )?)?;
            if let Some(extra) = &b.extra_metrics {
                for (name, help, is_counter, v) in extra() {
                    if is_counter {
                        // The text encoder appends `_total` to counters itself.
                        let name = name.strip_suffix("_total").unwrap_or(name);
                        ConstCounter::new(v as u64).encode(enc.encode_descriptor(
                            name,
                            help,
                            None,
                            MetricType::Counter,
                        )?)?;
                    } else {
                        ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
                    }
                }
            }
        }
        counter(
            &mut enc,
            "strata_head_series_created",
            "Series created in the head",
            i.series_created.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "strata_wal_replayed_records",
            "Records replayed from the WAL at start-up",
            i.replayed_records.load(Ordering::Relaxed),
        )?;
        let stats = db.head_stats();
        let gauges: [HeadGauge; 5] = [
            ("strata_head_series", "Series in the head", |s| s.series),
            ("strata_head_samples", "Samples in the head", |s| s.samples),
            ("strata_head_chunks", "Compressed chunks in the head", |s| s.chunks),
            ("strata_head_chunk_bytes", "Bytes of compressed chunk data the head holds in memory", |s| s.chunk_bytes),
            ("strata_head_spilled_chunk_bytes", "Bytes of closed head chunks moved to files under head_chunks/", |s| {
                s.spilled_chunk_bytes
            }),
        ];
        for (name, help, get) in gauges {
            let mut me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (tenant, s) in &stats {
                let labels = [("tenant", tenant.as_str())];
                ConstGauge::new(get(s) as i64).encode(me.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The HA tracker's elections, read when scraped.
#[derive(Debug)]
struct HaCollector(Arc<crate::ha_tracker::HaTracker>);

impl prometheus_client::collector::Collector for HaCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let elections = self.0.elections();
        if elections.is_empty() {
            return Ok(());
        }
        let mut me =
            enc.encode_descriptor(HA_ELECTED, "1 for the elected replica of each HA cluster", None, MetricType::Gauge)?;
        for (tenant, cluster, e) in &elections {
            let labels = [("tenant", tenant.as_str()), ("cluster", cluster.as_str()), ("replica", e.replica.as_str())];
            ConstGauge::new(1).encode(me.encode_family(&labels)?)?;
        }
        let mut me = enc.encode_descriptor(
            HA_ELECTED_AT,
            "When the elected replica of each HA cluster was elected (Unix seconds)",
            None,
            MetricType::Gauge,
        )?;
        for (tenant, cluster, e) in &elections {
            let labels = [("tenant", tenant.as_str()), ("cluster", cluster.as_str())];
            ConstGauge::new(e.elected_at / 1000).encode(me.encode_family(&labels)?)?;
        }
        let mut me = enc.encode_descriptor(
            HA_FAILOVERS,
            "Failovers from a silent elected replica to another, per HA cluster",
            None,
            MetricType::Counter,
        )?;
        for (tenant, cluster, e) in &elections {
            let labels = [("tenant", tenant.as_str()), ("cluster", cluster.as_str())];
            ConstCounter::new(e.failovers).encode(me.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Federation peers' health and traffic, read when scraped.
#[derive(Debug)]
struct PeerCollector(Arc<strata_querier::Peers>);

impl prometheus_client::collector::Collector for PeerCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let peers = self.0.status();
        if peers.is_empty() {
            return Ok(());
        }
        let mut me = enc.encode_descriptor(
            PEER_UP,
            "1 when the peer's last health check passed, 0 when it failed (queries still ask it)",
            None,
            MetricType::Gauge,
        )?;
        for p in &peers {
            ConstGauge::new(i64::from(p.health == "up")).encode(me.encode_family(&[("peer", p.name.as_str())])?)?;
        }
        type Get = fn(&strata_querier::PeerStatus) -> u64;
        let counters: [(&str, &str, Get); 3] = [
            (PEER_REQUESTS, "Remote read requests sent to the peer", |p| p.requests),
            (PEER_FAILURES, "Remote read requests to the peer that failed", |p| p.failures),
            (PEER_BYTES, "Answer bytes read from the peer, as on the wire", |p| p.bytes_read),
        ];
        for (name, help, get) in counters {
            let mut me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in &peers {
                ConstCounter::new(get(p)).encode(me.encode_family(&[("peer", p.name.as_str())])?)?;
            }
        }
        let mut me = enc.encode_descriptor(
            PEER_LATENCY,
            "Duration of the last successful request to the peer",
            None,
            MetricType::Gauge,
        )?;
        for p in &peers {
            if let Some(s) = p.last_latency_seconds {
                ConstGauge::new(s).encode(me.encode_family(&[("peer", p.name.as_str())])?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_build_info_and_process_metrics() {
        let text = Metrics::detached().render();
        let b = crate::BUILD_INFO;
        let want = format!(
            "strata_build_info{{version=\"{}\",revision=\"{}\",branch=\"{}\",rustversion=\"{}\"}} 1",
            b.version, b.revision, b.branch, b.rust_version
        );
        assert!(text.contains(&want), "{text}");
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
        ] {
            let line =
                text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {text}"));
            let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            // CPU time counts in clock ticks (10 ms): a young test process may have none.
            assert!(v > 0.0 || (name == "process_cpu_seconds_total" && v == 0.0), "{line}");
        }
    }
}
