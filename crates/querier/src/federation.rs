//! The global view: one [`Querier`] over this node's own data and its peers
//! (the `federation:` section), like Thanos Query over its store APIs.
//!
//! ```text
//!  select / label_names / label_values
//!    ├─► local (head + bucket, with the node's external_labels) ─┐
//!    ├─► peer a (remote read, its external_labels, its timeout) ─┼─► merge_series ─► HA dedup
//!    └─► peer b … (skipped when its labels contradict the matchers)┘   (one sample per timestamp)
//! ```
//! Sources are asked concurrently. A source that fails with an `Unavailable`
//! error (a peer down, slow past its timeout, or answering garbage; the bucket
//! down) is left out with a warning naming it when partial responses are allowed,
//! and fails the call otherwise (HTTP 503).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use strata_model::{
    Error, ErrorKind, Matcher, Querier, Result, SelectHints, Series, TimeRange, WindowedSeries, dedup_series,
    dedup_windowed, merge_series,
};

use crate::external::WithExternalLabels;
use crate::remote::{Peer, PeerConfig, PeerStatus};

/// The `federation:` section: the peers one query fans out to.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Servers that answer Prometheus remote read: other Strata nodes, Prometheus servers.
    pub peers: Vec<PeerConfig>,
    /// How often each peer's `/-/ready` is checked for `/api/v1/status/peers`. A peer
    /// that fails it is shown down but still asked by queries.
    #[serde(deserialize_with = "strata_model::config_duration::required")]
    pub health_check_interval: Duration,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig { peers: Vec::new(), health_check_interval: Duration::from_secs(15) }
    }
}

/// The configured peers, built once and shared by every request.
#[derive(Debug, Default)]
pub struct Peers {
    peers: Vec<Arc<Peer>>,
    interval: Duration,
}

impl Peers {
    /// Checks every peer's configuration (unique names, URLs, labels, TLS files).
    pub fn new(cfg: &FederationConfig) -> Result<Self> {
        let mut names = BTreeSet::new();
        let mut peers = Vec::with_capacity(cfg.peers.len());
        for p in &cfg.peers {
            if !names.insert(p.name.clone()) {
                return Err(Error::storage(format!("federation peer name {:?} is used twice", p.name)));
            }
            peers.push(Arc::new(Peer::new(p.clone())?));
        }
        Ok(Peers { peers, interval: cfg.health_check_interval.max(Duration::from_secs(1)) })
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.peers.iter()
    }

    pub fn status(&self) -> Vec<PeerStatus> {
        self.peers.iter().map(|p| p.status()).collect()
    }

    /// Checks every peer's health now and then every interval until `stop` turns true.
    pub async fn run_health_checks(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            futures::future::join_all(self.peers.iter().map(|p| p.check_health())).await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// One part of a fan-out.
#[derive(Debug)]
struct Source {
    name: String,
    querier: Arc<dyn Querier>,
    timeout: Option<Duration>,
}

/// This node's data and its peers as one [`Querier`], made per request.
#[derive(Debug)]
pub struct FanOut {
    sources: Vec<Source>,
    partial_response: bool,
    replica_labels: Vec<String>,
    warnings: Mutex<Vec<String>>,
}

impl FanOut {
    /// A fan-out over `local` (this node's head and bucket, already carrying its
    /// external labels; `None` on a query node without a bucket) and every peer,
    /// reading as `tenant`.
    pub fn new(local: Option<Arc<dyn Querier>>, peers: &Peers, tenant: &str) -> Self {
        let mut sources: Vec<Source> =
            local.into_iter().map(|q| Source { name: "local storage".into(), querier: q, timeout: None }).collect();
        for p in peers.iter() {
            let q = WithExternalLabels::new(p.querier(tenant), p.external_labels().clone());
            sources.push(Source {
                name: format!("peer {}", p.name()),
                querier: Arc::new(q),
                timeout: Some(p.config().timeout),
            });
        }
        FanOut { sources, partial_response: false, replica_labels: Vec::new(), warnings: Mutex::new(Vec::new()) }
    }

    /// With `true`, a source that is unavailable is left out with a warning.
    pub fn partial_response(mut self, partial: bool) -> Self {
        self.partial_response = partial;
        self
    }

    /// Merges series that differ only in these labels (HA replicas, possibly in
    /// different clusters) after the sources' answers are merged.
    pub fn replica_labels(mut self, labels: Vec<String>) -> Self {
        self.replica_labels = labels;
        self
    }

    fn warn(&self, w: String) {
        let mut ws = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        if !ws.contains(&w) {
            ws.push(w);
        }
    }

    /// Asks every source concurrently; failed sources become warnings or the error.
    async fn gather<'a, T, F>(&'a self, ask: impl Fn(&'a dyn Querier) -> F) -> Result<Vec<T>>
    where
        F: Future<Output = Result<T>> + Send + 'a,
    {
        let calls = self.sources.iter().map(|s| {
            let fut = ask(s.querier.as_ref());
            async move {
                match s.timeout {
                    None => fut.await,
                    Some(t) => match tokio::time::timeout(t, fut).await {
                        Ok(r) => r,
                        Err(_) => Err(Error::unavailable(
                            &s.name,
                            format!("no answer within {}", humantime::format_duration(t)),
                        )),
                    },
                }
            }
        });
        let results = futures::future::join_all(calls).await;
        let mut out = Vec::with_capacity(results.len());
        for (s, r) in self.sources.iter().zip(results) {
            match r {
                Ok(v) => out.push(v),
                Err(e) if self.partial_response && e.kind() == ErrorKind::Unavailable => {
                    tracing::debug!(source = %s.name, error = %e, "left out of a partial response");
                    self.warn(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Querier for FanOut {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>> {
        if matchers.is_empty() {
            return Ok(Vec::new());
        }
        // Limits count merged series: the parts are asked for all when merging can shrink them.
        let part = if self.replica_labels.is_empty() && self.sources.len() == 1 {
            hints.clone()
        } else {
            SelectHints { limit: 0, ..hints.clone() }
        };
        let sets = self.gather(|q| q.select(&part, matchers)).await?;
        let mut out = merge_series(sets);
        if !self.replica_labels.is_empty() {
            let names: Vec<&str> = self.replica_labels.iter().map(String::as_str).collect();
            out = dedup_series(out, &names, hints.reads_counter());
        }
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(out)
    }

    async fn select_windows(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<WindowedSeries>> {
        if matchers.is_empty() {
            return Ok(Vec::new());
        }
        let part = SelectHints { limit: 0, ..hints.clone() };
        let sets = self.gather(|q| q.select_windows(&part, matchers)).await?;
        let mut out = WindowedSeries::merge(sets);
        if !self.replica_labels.is_empty() {
            let names: Vec<&str> = self.replica_labels.iter().map(String::as_str).collect();
            out = dedup_windowed(out, &names, hints.reads_counter());
        }
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(out)
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let sets = self.gather(|q| q.label_names(range, matchers)).await?;
        let names: BTreeSet<String> = sets.into_iter().flatten().collect();
        Ok(names.into_iter().filter(|n| !self.replica_labels.contains(n)).collect())
    }

    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        if self.replica_labels.iter().any(|l| l == name) {
            return Ok(Vec::new());
        }
        let sets = self.gather(|q| q.label_values(name, range, matchers)).await?;
        Ok(sets.into_iter().flatten().collect::<BTreeSet<_>>().into_iter().collect())
    }

    fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for w in self.sources.iter().flat_map(|s| s.querier.warnings()) {
            if !out.contains(&w) {
                out.push(w);
            }
        }
        for w in self.warnings.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if !out.contains(w) {
                out.push(w.clone());
            }
        }
        out
    }
}
