//! The replayer: sends cached bodies to a remote write 1.0 endpoint the way
//! Prometheus's queue manager does — one request in flight per shard, shards in
//! parallel, Prometheus's headers — and checks every response.
//!
//! ```text
//! bodies (send order) ─dispatcher─► worker[shard % N] (bounded queue, in order)
//!                                      └─ POST url ─► status, latency ─► ReplayStats
//! ```
//!
//! A shard always maps to the same worker, so a series' samples arrive in order; the
//! bounded queues keep all workers within a few bodies of the global send order.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::progress;
use crate::workload::Body;

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The remote write URL, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    /// Requests in flight at most (workers).
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Show a progress bar.
    pub progress: bool,
    /// Give up after this many consecutive connection failures (server gone).
    pub max_consecutive_transport_errors: u64,
}

impl ReplayOptions {
    /// Defaults for `url`: 4 in flight, 60 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            concurrency: 4,
            timeout: Duration::from_secs(60),
            progress: false,
            max_consecutive_transport_errors: 20,
        }
    }
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Number of observations.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `ms` (sorted in place).
    pub fn of(ms: &mut [f64]) -> Self {
        if ms.is_empty() {
            return Self::default();
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[(((ms.len() as f64) * q).ceil() as usize).clamp(1, ms.len()) - 1];
        Self { count: ms.len(), p50: at(0.5), p90: at(0.9), p99: at(0.99), max: ms[ms.len() - 1] }
    }
}

/// What a replay achieved.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayStats {
    /// Requests sent.
    pub requests: u64,
    /// Requests answered with a 2xx.
    pub ok_requests: u64,
    /// Requests answered otherwise or not at all.
    pub failed_requests: u64,
    /// Samples in all sent bodies.
    pub samples_sent: u64,
    /// Samples in bodies answered with a 2xx.
    pub samples_accepted: u64,
    /// Wall time of the whole replay.
    pub wall_seconds: f64,
    /// `samples_accepted / wall_seconds`.
    pub samples_per_second: f64,
    /// Request latency.
    pub latency_ms: Percentiles,
    /// Responses per HTTP status (0 = no response).
    pub status_counts: BTreeMap<u16, u64>,
    /// Samples of the bodies answered with each HTTP status: a receiver that
    /// deduplicates HA replicas (Strata's tracker) answers the refused ones 202.
    pub samples_by_status: BTreeMap<u16, u64>,
    /// The first few failures, with the response body.
    pub errors: Vec<String>,
    /// The replay stopped early (the server stopped answering).
    pub aborted: bool,
}

const MAX_KEPT_ERRORS: usize = 10;

struct Shared {
    errors: Mutex<Vec<String>>,
    statuses: Mutex<BTreeMap<u16, (u64, u64)>>,
    samples_accepted: AtomicU64,
    consecutive_transport_errors: AtomicU64,
    abort: AtomicBool,
}

/// Sends `bodies` in order to `opts.url`.
pub fn replay(bodies: &[Body], opts: &ReplayOptions) -> Result<ReplayStats> {
    if opts.concurrency == 0 {
        bail!("concurrency must be > 0");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .http_status_as_error(false)
        .user_agent(concat!("strata-benches/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let shared = Shared {
        errors: Mutex::new(Vec::new()),
        statuses: Mutex::new(BTreeMap::new()),
        samples_accepted: AtomicU64::new(0),
        consecutive_transport_errors: AtomicU64::new(0),
        abort: AtomicBool::new(false),
    };
    let pb = progress::bar(opts.progress, bodies.len() as u64, "replay");
    let started = Instant::now();
    let mut latencies: Vec<f64> = Vec::with_capacity(bodies.len());
    let mut sent = 0u64;
    let mut samples_sent = 0u64;
    std::thread::scope(|scope| {
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..opts.concurrency {
            let (tx, rx) = mpsc::sync_channel::<&Body>(2);
            queues.push(tx);
            let (agent, shared, pb) = (agent.clone(), &shared, pb.clone());
            handles.push(scope.spawn(move || {
                let mut lat = Vec::new();
                for body in rx {
                    if shared.abort.load(Ordering::Relaxed) {
                        continue;
                    }
                    let t = Instant::now();
                    let outcome = send(&agent, &opts.url, body);
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    record(shared, opts, body, outcome);
                    pb.inc(1);
                }
                lat
            }));
        }
        for body in bodies {
            if shared.abort.load(Ordering::Relaxed) {
                break;
            }
            let worker = usize::from(body.shard) % opts.concurrency;
            if queues[worker].send(body).is_err() {
                break;
            }
            sent += 1;
            samples_sent += u64::from(body.samples);
        }
        drop(queues);
        for h in handles {
            if let Ok(l) = h.join() {
                latencies.extend(l);
            }
        }
    });
    pb.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let by_status = shared.statuses.into_inner().unwrap_or_default();
    let statuses: BTreeMap<u16, u64> = by_status.iter().map(|(s, (n, _))| (*s, *n)).collect();
    let samples_by_status: BTreeMap<u16, u64> = by_status.iter().map(|(s, (_, n))| (*s, *n)).collect();
    let ok: u64 = statuses.iter().filter(|(s, _)| (200..300).contains(*s)).map(|(_, n)| n).sum();
    let accepted = shared.samples_accepted.load(Ordering::Relaxed);
    Ok(ReplayStats {
        requests: sent,
        ok_requests: ok,
        failed_requests: sent - ok,
        samples_sent,
        samples_accepted: accepted,
        wall_seconds: wall,
        samples_per_second: accepted as f64 / wall.max(1e-9),
        latency_ms: Percentiles::of(&mut latencies),
        status_counts: statuses,
        samples_by_status,
        errors: shared.errors.into_inner().unwrap_or_default(),
        aborted: shared.abort.load(Ordering::Relaxed),
    })
}

/// `Ok(status, body-if-not-2xx)` or a transport error.
fn send(agent: &ureq::Agent, url: &str, body: &Body) -> Result<(u16, String), String> {
    let resp = agent
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .send(body.data.as_slice());
    match resp {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = if (200..300).contains(&status) {
                // Drain the body so the connection is reused.
                let _ = r.body_mut().read_to_vec();
                String::new()
            } else {
                // Keep the start of the error body, however long it is.
                let mut buf = Vec::new();
                let _ = r.body_mut().as_reader().take(4096).read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            };
            Ok((status, text))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn record(shared: &Shared, opts: &ReplayOptions, body: &Body, outcome: Result<(u16, String), String>) {
    let (status, err) = match outcome {
        Ok((s, _)) if (200..300).contains(&s) => {
            shared.consecutive_transport_errors.store(0, Ordering::Relaxed);
            shared.samples_accepted.fetch_add(u64::from(body.samples), Ordering::Relaxed);
            (s, None)
        }
        Ok((s, text)) => {
            shared.consecutive_transport_errors.store(0, Ordering::Relaxed);
            (s, Some(format!("HTTP {s}: {}", text.trim())))
        }
        Err(e) => {
            let n = shared.consecutive_transport_errors.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= opts.max_consecutive_transport_errors {
                shared.abort.store(true, Ordering::Relaxed);
            }
            (0, Some(format!("transport: {e}")))
        }
    };
    if let Ok(mut m) = shared.statuses.lock() {
        let e = m.entry(status).or_default();
        e.0 += 1;
        e.1 += u64::from(body.samples);
    }
    if let Some(e) = err
        && let Ok(mut errs) = shared.errors.lock()
        && errs.len() < MAX_KEPT_ERRORS
    {
        errs.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p90, 90.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert_eq!(Percentiles::of(&mut []).count, 0);
    }
}
