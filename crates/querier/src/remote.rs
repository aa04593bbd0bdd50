//! A peer: any server that answers Prometheus remote read (`POST /api/v1/read`),
//! such as another Strata, a Prometheus, or the Prometheus behind a Thanos sidecar.
//! [`Peer::querier`] makes a [`Querier`] that reads it.
//!
//! ```text
//!  select ─► clip the range to the peer's time range ─► ReadRequest (matchers, hints)
//!         ─► snappy ─► POST {url}/api/v1/read (tenant, headers, auth, timeout)
//!         ─► STREAMED_XOR_CHUNKS frames (CRC-checked) | snappy ReadResponse
//!         ─► samples in range, one series per label set, sorted
//! ```
//! Every failure of a peer (unreachable, timeout, non-2xx, undecodable answer) is
//! an `Unavailable` error naming the peer: the caller leaves the peer out with a
//! warning or fails the query, as partial responses say.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prost::Message;
use strata_model::{
    Error, Labels, MatchOp, Matcher, Querier, Result, Sample, SelectHints, Series, TimeRange, merge_series,
};
use strata_proto::prometheus as pb;

use crate::external::ExternalLabels;

/// One peer of the `federation.peers` list.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Name used in warnings, logs, metrics and `/api/v1/status/peers`.
    pub name: String,
    /// Base URL of the peer (`http://prometheus-b:9090`); `/api/v1/read` is added.
    /// A URL already ending in `/api/v1/read` is taken as is.
    pub url: String,
    /// Labels added to every series of this peer (the peer's own labels win), and
    /// used to skip the peer for selections they contradict.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Tenant sent to the peer as `X-Scope-OrgID`. Default: the querying request's tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Extra HTTP headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long one request to the peer may take before it counts as failed.
    #[serde(default = "default_timeout", deserialize_with = "strata_model::config_duration::required")]
    pub timeout: Duration,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// File holding a bearer token (re-read on every request, so rotation needs no restart).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// TLS settings for `https://` URLs.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How far back the peer holds data (a Prometheus's retention, say): older parts
    /// of a query's range are not asked of it. Default: everything.
    #[serde(default, deserialize_with = "strata_model::config_duration::optional")]
    pub retention: Option<Duration>,
}

/// Basic authentication for a peer.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password (prefer `password_file`).
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password, re-read on every request.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// TLS settings for a peer (rustls).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with the CA certificates that sign the peer's certificate (added to the system roots).
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate chain, for mutual TLS (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM file with the client's private key.
    pub key_file: Option<PathBuf>,
    /// Accept any certificate: for tests only.
    pub insecure_skip_verify: bool,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The remote read response types, in the order we prefer them.
const ACCEPTED: [pb::read_request::ResponseType; 2] =
    [pb::read_request::ResponseType::StreamedXorChunks, pb::read_request::ResponseType::Samples];
const STREAMED_CONTENT_TYPE: &str = "application/x-streamed-protobuf";
/// Largest answer body taken from a peer (decompressed), so one peer cannot exhaust memory.
const MAX_RESPONSE_BYTES: usize = 1 << 30;
/// Largest frame of a streamed answer (Prometheus cuts them at 1 MiB of chunks).
const MAX_FRAME_BYTES: u64 = 64 << 20;

/// Health and traffic of a peer, as `/api/v1/status/peers` and `/metrics` show them.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    pub name: String,
    pub url: String,
    /// `up`, `down` (the last health check failed; queries still try it) or `unknown`.
    pub health: &'static str,
    pub last_error: Option<String>,
    /// Unix ms of the last health check.
    pub last_check: Option<i64>,
    /// Duration of the last successful request (health check or read), seconds.
    pub last_latency_seconds: Option<f64>,
    pub external_labels: BTreeMap<String, String>,
    /// Oldest data asked of the peer (Unix ms), from `retention`; `null`: all.
    pub min_time: Option<i64>,
    pub requests: u64,
    pub failures: u64,
    /// Response bytes read from the peer (compressed, as on the wire).
    pub bytes_read: u64,
}

#[derive(Debug, Default)]
struct Health {
    up: Option<bool>,
    last_error: Option<String>,
    last_check: Option<i64>,
    last_latency: Option<Duration>,
}

/// A configured peer with its HTTP client and health. Shared by every request.
#[derive(Debug)]
pub struct Peer {
    cfg: PeerConfig,
    base: String,
    read_url: String,
    ready_url: String,
    client: reqwest::Client,
    external: ExternalLabels,
    health: Mutex<Health>,
    requests: AtomicU64,
    failures: AtomicU64,
    bytes_read: AtomicU64,
}

impl Peer {
    /// Checks the configuration and builds the HTTP client (TLS files are read now).
    pub fn new(cfg: PeerConfig) -> Result<Self> {
        let bad = |what: String| Error::storage(format!("federation peer {:?}: {what}", cfg.name));
        if cfg.name.is_empty() {
            return Err(Error::storage("federation peer without a name"));
        }
        let base = cfg.url.trim_end_matches('/');
        let base = base.strip_suffix("/api/v1/read").unwrap_or(base).to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| bad(format!("url {:?}: {e}", cfg.url)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!("url {:?}: only http and https are supported", cfg.url)));
        }
        let external = ExternalLabels::new(&cfg.external_labels).map_err(|e| bad(e.to_string()))?;
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = &cfg.tls {
            if let Some(ca) = &tls.ca_file {
                let pem = std::fs::read(ca).map_err(|e| bad(format!("tls.ca_file {}: {e}", ca.display())))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(format!("tls.ca_file: {e}")))? {
                    builder = builder.add_root_certificate(cert);
                }
            }
            match (&tls.cert_file, &tls.key_file) {
                (Some(cert), Some(key)) => {
                    let mut pem =
                        std::fs::read(cert).map_err(|e| bad(format!("tls.cert_file {}: {e}", cert.display())))?;
                    pem.extend(std::fs::read(key).map_err(|e| bad(format!("tls.key_file {}: {e}", key.display())))?);
                    let id = reqwest::Identity::from_pem(&pem).map_err(|e| bad(format!("tls client identity: {e}")))?;
                    builder = builder.identity(id);
                }
                (None, None) => {}
                _ => return Err(bad("tls.cert_file and tls.key_file go together".into())),
            }
            if tls.insecure_skip_verify {
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
        }
        let client = builder.build().map_err(|e| bad(format!("http client: {e}")))?;
        Ok(Peer {
            read_url: format!("{base}/api/v1/read"),
            ready_url: format!("{base}/-/ready"),
            base,
            cfg,
            client,
            external,
            health: Mutex::new(Health::default()),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    pub fn external_labels(&self) -> &ExternalLabels {
        &self.external
    }

    /// A querier reading this peer for `tenant` (the request's; the peer's
    /// configured tenant replaces it).
    pub fn querier(self: &std::sync::Arc<Self>, tenant: &str) -> RemoteQuerier {
        let tenant = self.cfg.tenant.clone().unwrap_or_else(|| tenant.to_string());
        RemoteQuerier { peer: self.clone(), tenant }
    }

    /// Oldest timestamp asked of the peer, from its `retention`.
    fn min_time(&self, now: i64) -> Option<i64> {
        self.cfg.retention.map(|r| now.saturating_sub(r.as_millis() as i64))
    }

    /// Asks `/-/ready` (served by Prometheus and Strata) and records the outcome.
    pub async fn check_health(&self) {
        let started = Instant::now();
        let outcome = match self.authorize(self.client.get(&self.ready_url)) {
            Ok(req) => match req.send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("health check: HTTP {}", resp.status())),
                Err(e) => Err(format!("health check: {}", error_chain(&e))),
            },
            Err(e) => Err(e),
        };
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.last_check = Some(strata_model::now_ms());
        match outcome {
            Ok(()) => {
                h.up = Some(true);
                h.last_latency = Some(started.elapsed());
            }
            Err(e) => {
                if h.up != Some(false) {
                    tracing::warn!(peer = %self.cfg.name, error = %e, "peer down");
                }
                h.up = Some(false);
                h.last_error = Some(e);
            }
        }
    }

    pub fn status(&self) -> PeerStatus {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        PeerStatus {
            name: self.cfg.name.clone(),
            url: self.base.clone(),
            health: match h.up {
                Some(true) => "up",
                Some(false) => "down",
                None => "unknown",
            },
            last_error: h.last_error.clone(),
            last_check: h.last_check,
            last_latency_seconds: h.last_latency.map(|d| d.as_secs_f64()),
            external_labels: self.cfg.external_labels.clone(),
            min_time: self.min_time(strata_model::now_ms()),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
        }
    }

    /// Credentials and headers on a request; files are read now, so rotated secrets apply.
    fn authorize(&self, mut req: reqwest::RequestBuilder) -> std::result::Result<reqwest::RequestBuilder, String> {
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        if let Some(a) = &self.cfg.basic_auth {
            let password = match (&a.password, &a.password_file) {
                (_, Some(f)) => Some(read_secret(f)?),
                (p, None) => p.clone(),
            };
            req = req.basic_auth(&a.username, password);
        }
        if let Some(f) = &self.cfg.bearer_token_file {
            req = req.bearer_auth(read_secret(f)?);
        }
        Ok(req)
    }

    fn failed(&self, what: String) -> Error {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.last_error = Some(what.clone());
        drop(h);
        Error::unavailable(format!("peer {}", self.cfg.name), what)
    }

    /// One remote read query; the answer's series in label order.
    /// With `labels_only`, series without samples in range are kept.
    async fn read(&self, tenant: &str, query: pb::Query, labels_only: bool) -> Result<Vec<Series>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let (start, end) = (query.start_timestamp_ms, query.end_timestamp_ms);
        let req = pb::ReadRequest { queries: vec![query], accepted_response_types: ACCEPTED.map(|t| t as i32).into() };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .map_err(|e| self.failed(format!("compressing the request: {e}")))?;
        let http = self
            .client
            .post(&self.read_url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .header("X-Scope-OrgID", tenant)
            .body(body);
        let http = self.authorize(http).map_err(|e| self.failed(e))?;
        let mut resp = http.send().await.map_err(|e| self.failed(error_chain(&e)))?;
        let status = resp.status();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let mut raw = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.failed(error_chain(&e)))? {
            if raw.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(self.failed(format!("answer larger than {MAX_RESPONSE_BYTES} bytes")));
            }
            raw.extend_from_slice(&chunk);
        }
        self.bytes_read.fetch_add(raw.len() as u64, Ordering::Relaxed);
        if !status.is_success() {
            let text = String::from_utf8_lossy(&raw[..raw.len().min(512)]).trim().to_string();
            return Err(self.failed(format!("HTTP {status}: {text}")));
        }
        let series = if content_type.starts_with(STREAMED_CONTENT_TYPE) {
            decode_streamed(&raw, start, end, labels_only)
        } else {
            decode_samples(&raw, labels_only)
        }
        .map_err(|e| self.failed(format!("undecodable answer: {e}")))?;
        self.health.lock().unwrap_or_else(|p| p.into_inner()).last_latency = Some(started.elapsed());
        Ok(series)
    }
}

fn read_secret(path: &PathBuf) -> std::result::Result<String, String> {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

fn labels_of(labels: Vec<pb::Label>) -> Labels {
    Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)))
}

/// A `SAMPLES` answer: snappy-compressed `ReadResponse`.
fn decode_samples(raw: &[u8], keep_empty: bool) -> std::result::Result<Vec<Series>, String> {
    let len = snap::raw::decompress_len(raw).map_err(|e| e.to_string())?;
    if len > MAX_RESPONSE_BYTES {
        return Err(format!("decompressed answer larger than {MAX_RESPONSE_BYTES} bytes"));
    }
    #[allow(clippy::disallowed_methods, reason = "the declared size is checked against MAX_RESPONSE_BYTES above")]
    let data = snap::raw::Decoder::new().decompress_vec(raw).map_err(|e| e.to_string())?;
    let resp = pb::ReadResponse::decode(&data[..]).map_err(|e| e.to_string())?;
    let mut sets = Vec::new();
    for r in resp.results {
        let series: Vec<Series> = r
            .timeseries
            .into_iter()
            .map(|ts| {
                let mut samples: Vec<Sample> =
                    ts.samples.iter().map(|s| Sample { t: s.timestamp, v: s.value }).collect();
                samples.sort_by_key(|s| s.t);
                samples.dedup_by_key(|s| s.t);
                Series { labels: labels_of(ts.labels), samples }
            })
            .filter(|s| keep_empty || !s.samples.is_empty())
            .collect();
        sets.push(series);
    }
    Ok(merge_series(sets))
}

/// A `STREAMED_XOR_CHUNKS` answer: frames of uvarint length, big-endian CRC-32C,
/// `ChunkedReadResponse`. A series' chunks may span frames; chunks are whole, so
/// samples outside `[start, end]` are dropped here.
fn decode_streamed(mut raw: &[u8], start: i64, end: i64, keep_empty: bool) -> std::result::Result<Vec<Series>, String> {
    let mut parts: Vec<Vec<Series>> = Vec::new();
    while !raw.is_empty() {
        let mut len: u64 = 0;
        let mut shift = 0;
        loop {
            let (&b, rest) = raw.split_first().ok_or("truncated frame length")?;
            raw = rest;
            if shift > 63 {
                return Err("frame length overflows".into());
            }
            len |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        if len > MAX_FRAME_BYTES || raw.len() < 4 + len as usize {
            return Err(format!("frame of {len} bytes is truncated or too large"));
        }
        let crc = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let data = &raw[4..4 + len as usize];
        raw = &raw[4 + len as usize..];
        if crc32c::crc32c(data) != crc {
            return Err("frame checksum mismatch".into());
        }
        let msg = pb::ChunkedReadResponse::decode(data).map_err(|e| e.to_string())?;
        let mut frame = Vec::with_capacity(msg.chunked_series.len());
        for cs in msg.chunked_series {
            let mut samples = Vec::new();
            for c in &cs.chunks {
                if c.r#type != pb::chunk::Encoding::Xor as i32 {
                    return Err(format!("chunk encoding {} is not XOR", c.r#type));
                }
                if c.max_time_ms < start || c.min_time_ms > end {
                    continue;
                }
                let decoded = strata_tsdb::chunk::decode_all(&c.data).map_err(|_| "corrupt XOR chunk".to_string())?;
                samples.extend(decoded.into_iter().filter(|s| s.t >= start && s.t <= end));
            }
            samples.sort_by_key(|s| s.t);
            samples.dedup_by_key(|s| s.t);
            if keep_empty || !samples.is_empty() {
                frame.push(Series { labels: labels_of(cs.labels), samples });
            }
        }
        parts.push(frame);
    }
    // One part per frame: merging joins a series whose chunks span frames.
    Ok(merge_series(parts))
}

fn pb_matcher(m: &Matcher) -> pb::LabelMatcher {
    use pb::label_matcher::Type;
    let t = match m.op {
        MatchOp::Equal => Type::Eq,
        MatchOp::NotEqual => Type::Neq,
        MatchOp::RegexMatch => Type::Re,
        MatchOp::RegexNoMatch => Type::Nre,
    };
    pb::LabelMatcher { r#type: t as i32, name: m.name.clone(), value: m.value.clone() }
}

/// Reads one peer for one tenant. External labels are not added here: wrap it in
/// [`crate::WithExternalLabels`] with [`Peer::external_labels`].
#[derive(Debug, Clone)]
pub struct RemoteQuerier {
    peer: std::sync::Arc<Peer>,
    tenant: String,
}

impl RemoteQuerier {
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The range asked of the peer: the request's, clipped to the peer's retention.
    fn clip(&self, range: TimeRange) -> Option<TimeRange> {
        let start = match self.peer.min_time(strata_model::now_ms()) {
            Some(min) => range.start.max(min),
            None => range.start,
        };
        (start <= range.end).then(|| TimeRange::new(start, range.end))
    }

    async fn select_labels(&self, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<Series>> {
        let matchers = crate::external::selective(matchers.to_vec());
        let hints = SelectHints { labels_only: true, ..SelectHints::range(range.start, range.end) };
        self.select(&hints, &matchers).await
    }
}

#[async_trait]
impl Querier for RemoteQuerier {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>> {
        if matchers.is_empty() {
            return Ok(Vec::new());
        }
        let Some(range) = self.clip(hints.range) else { return Ok(Vec::new()) };
        // `series` is Prometheus's hint for "labels only" (its TSDB then skips chunks).
        let func = if hints.labels_only { "series" } else { hints.func.unwrap_or_default() };
        let query = pb::Query {
            start_timestamp_ms: range.start,
            end_timestamp_ms: range.end,
            matchers: matchers.iter().map(pb_matcher).collect(),
            hints: Some(pb::ReadHints {
                start_ms: range.start,
                end_ms: range.end,
                func: func.to_string(),
                ..Default::default()
            }),
        };
        let mut out = self.peer.read(&self.tenant, query, hints.labels_only).await?;
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(out)
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let series = self.select_labels(range, matchers).await?;
        let mut names: Vec<String> = series.iter().flat_map(|s| s.labels.iter().map(|l| l.name.to_string())).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let series = self.select_labels(range, matchers).await?;
        let mut values: Vec<String> =
            series.iter().filter_map(|s| s.labels.get(name)).filter(|v| !v.is_empty()).map(str::to_string).collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}
