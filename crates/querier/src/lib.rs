//! The read side: one [`Querier`] over the in-memory head and the blocks in the
//! bucket, with their overlap deduplicated.
//!
//! ```text
//!   select(range, matchers) ─┬─► HeadQuerier (recent data, WAL-backed)
//!                            └─► BlockQuerier (bucket; skipped when the range starts
//!                                at or after the head's cut floor) ─► merge_series
//!                                                                   (one sample per timestamp)
//! ```
//! Head and blocks can overlap: a range uploaded but not yet truncated, a block
//! uploaded twice after a crash, out-of-order samples cut into an overlapping block.
//! Identical timestamps are merged, so every answer holds each sample once.
//!
//! When the object store is down or failing, a call that needs blocks either fails
//! with an `Unavailable` error (HTTP 503) or, with partial responses allowed,
//! answers from the head alone and says so in [`Querier::warnings`] (Thanos's
//! `partial_response`). A call whose range lies wholly in the head never touches
//! the bucket, so it answers as usual.

mod external;
mod federation;
mod remote;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use strata_block::BlockQuerier;
use strata_model::{
    ErrorKind, Matcher, Querier, Result, SelectHints, Series, TimeRange, WindowedSeries, dedup_series, dedup_windowed,
    merge_series,
};
use strata_tsdb::HeadQuerier;

pub use external::{ExternalLabels, WithExternalLabels};
pub use federation::{FanOut, FederationConfig, Peers};
pub use remote::{BasicAuth, Peer, PeerConfig, PeerStatus, RemoteQuerier, TlsConfig};

/// Settings of the read side (the `querier:` section of the configuration).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerierConfig {
    /// Labels that tell the replicas of an HA pair apart (e.g. `[__replica__]`):
    /// queries merge series that differ only in them into one series without them
    /// (Thanos Query's `--query.replica-label`). A request's `dedup=false` turns it
    /// off, `replicaLabels[]=` replaces the list. Empty: no dedup.
    pub replica_labels: Vec<String>,
    /// Queries (instant and range) running longer than this are logged at `warn`
    /// with tenant, query, range, duration and samples. `0s` turns the log off.
    #[serde(deserialize_with = "strata_model::config_duration::required")]
    pub slow_query_threshold: std::time::Duration,
    /// Which resolution queries read when they do not say
    /// (`max_source_resolution` parameter, as in Thanos): `auto` (the coarsest that
    /// still gives every step five windows and every range-function window two),
    /// `raw`, or a resolution (`5m`, `1h`). See docs/downsampling.md.
    pub max_source_resolution: strata_model::SourceResolution,
}

impl Default for QuerierConfig {
    fn default() -> Self {
        QuerierConfig {
            replica_labels: Vec::new(),
            slow_query_threshold: std::time::Duration::from_secs(10),
            max_source_resolution: strata_model::SourceResolution::Auto,
        }
    }
}

/// Head and blocks of one tenant as one [`Querier`], made per request.
#[derive(Debug)]
pub struct TenantQuerier {
    /// `None` on a query node (`strata query`): a read-only bucket and no head.
    head: Option<HeadQuerier>,
    /// Samples at or after this are only in the head (the end of the head's newest
    /// cut; `i64::MIN` when nothing was cut yet: blocks may still exist from another
    /// process or an earlier data directory).
    head_floor: i64,
    blocks: Option<BlockQuerier>,
    /// Whether an unavailable bucket leaves its data out with a warning (`true`)
    /// or fails the call (`false`, Thanos's `partial_response=false`).
    partial_response: bool,
    /// Labels that tell HA replicas apart; series that differ only in them are
    /// merged into one ([`strata_model::dedup_series`]). Empty: no dedup.
    replica_labels: Vec<String>,
    warnings: Mutex<Vec<String>>,
}

impl TenantQuerier {
    /// A querier that fails when the bucket is unavailable; see [`Self::partial_response`].
    pub fn new(head: HeadQuerier, head_floor: i64, blocks: Option<BlockQuerier>) -> Self {
        TenantQuerier {
            head: Some(head),
            head_floor,
            blocks,
            partial_response: false,
            replica_labels: Vec::new(),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// A querier with no data (a query node with neither bucket nor peers).
    fn empty() -> Self {
        TenantQuerier {
            head: None,
            head_floor: i64::MIN,
            blocks: None,
            partial_response: false,
            replica_labels: Vec::new(),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// A querier over the bucket alone (a query node's store-gateway role).
    pub fn bucket_only(blocks: BlockQuerier) -> Self {
        TenantQuerier {
            head: None,
            head_floor: i64::MIN,
            blocks: Some(blocks),
            partial_response: false,
            replica_labels: Vec::new(),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Merges series that differ only in these labels (HA replicas) into one
    /// without them, as Thanos Query's `--query.replica-label` does. Selectors may
    /// still match on a replica label; answers never show one.
    pub fn replica_labels(mut self, labels: Vec<String>) -> Self {
        self.replica_labels = labels;
        self
    }

    fn dedup(&self, series: Vec<Series>, hints: &SelectHints) -> Vec<Series> {
        if self.replica_labels.is_empty() {
            return series;
        }
        let names: Vec<&str> = self.replica_labels.iter().map(String::as_str).collect();
        dedup_series(series, &names, hints.reads_counter())
    }

    /// The sorted union of the head's label answer and, when the range needs them,
    /// the blocks' (left out with a warning when the store is unavailable and
    /// partial responses are allowed).
    async fn union(
        &self,
        head: impl Future<Output = Result<Vec<String>>>,
        blocks: Option<impl Future<Output = Result<Vec<String>>>>,
    ) -> Result<Vec<String>> {
        let Some(blocks) = blocks else { return head.await };
        let (a, b) = futures::future::join(head, blocks).await;
        let a = a?;
        let b = self.blocks_part(b)?.unwrap_or_default();
        Ok(a.into_iter().chain(b).collect::<BTreeSet<_>>().into_iter().collect())
    }

    fn is_replica_label(&self, name: &str) -> bool {
        self.replica_labels.iter().any(|l| l == name)
    }

    /// With `true`, a call whose blocks cannot be read because the object store is
    /// down or failing answers from the head alone and records a warning.
    pub fn partial_response(mut self, partial: bool) -> Self {
        self.partial_response = partial;
        self
    }

    fn blocks_for(&self, range: TimeRange) -> Option<&BlockQuerier> {
        self.blocks.as_ref().filter(|_| range.start < self.head_floor || self.head_floor == i64::MIN)
    }

    /// The blocks' part of an answer: `None` (with a warning recorded) when the
    /// store is unavailable and partial responses are allowed.
    fn blocks_part<T>(&self, r: Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if self.partial_response && e.kind() == ErrorKind::Unavailable => {
                let w = format!("{e}; the answer holds only the data not yet moved to blocks");
                let mut ws = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
                if !ws.contains(&w) {
                    ws.push(w);
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Querier for TenantQuerier {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>> {
        if matchers.is_empty() {
            return Ok(Vec::new());
        }
        // With dedup, a limit counts merged series: the parts are asked for all.
        let part_hints =
            if self.replica_labels.is_empty() { hints.clone() } else { SelectHints { limit: 0, ..hints.clone() } };
        let out = match (&self.head, self.blocks_for(hints.range)) {
            (None, None) => Vec::new(),
            (Some(head), None) => head.select(&part_hints, matchers).await?,
            (None, Some(blocks)) => self.blocks_part(blocks.select(&part_hints, matchers).await)?.unwrap_or_default(),
            (Some(head), Some(blocks)) => {
                let (head, blocks) =
                    futures::future::join(head.select(&part_hints, matchers), blocks.select(&part_hints, matchers))
                        .await;
                match (head?, self.blocks_part(blocks)?) {
                    (head, None) => head,
                    (head, Some(blocks)) => merge_series(vec![head, blocks]),
                }
            }
        };
        let mut out = self.dedup(out, hints);
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(out)
    }

    async fn select_windows(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<WindowedSeries>> {
        if matchers.is_empty() {
            return Ok(Vec::new());
        }
        let part_hints = SelectHints { limit: 0, ..hints.clone() };
        let head = async {
            match &self.head {
                Some(h) => h.select(&part_hints, matchers).await,
                None => Ok(Vec::new()),
            }
        };
        let blocks = async {
            match self.blocks_for(hints.range) {
                Some(b) => self.blocks_part(b.select_windows(&part_hints, matchers).await),
                None => Ok(None),
            }
        };
        let (head, blocks) = futures::future::join(head, blocks).await;
        let head: Vec<WindowedSeries> = head?.into_iter().map(WindowedSeries::from).collect();
        // The head first: it wins ties, as in `select`.
        let mut out = WindowedSeries::merge(vec![head, blocks?.unwrap_or_default()]);
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
        let blocks = self.blocks_for(range).map(|b| b.label_names(range, matchers));
        let head = async {
            match &self.head {
                Some(h) => h.label_names(range, matchers).await,
                None => Ok(Vec::new()),
            }
        };
        let mut names = self.union(head, blocks).await?;
        names.retain(|n| !self.is_replica_label(n));
        Ok(names)
    }

    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        if self.is_replica_label(name) {
            return Ok(Vec::new());
        }
        let blocks = self.blocks_for(range).map(|b| b.label_values(name, range, matchers));
        let head = async {
            match &self.head {
                Some(h) => h.label_values(name, range, matchers).await,
                None => Ok(Vec::new()),
            }
        };
        self.union(head, blocks).await
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The read side of one request: this node's own data (`local`, `None` on a query
/// node without a bucket) with its external labels, and the peers, with partial
/// responses and HA dedup as the request says. Without peers or external labels
/// this is the local querier itself.
pub fn assemble(
    local: Option<TenantQuerier>,
    external: &ExternalLabels,
    peers: &Peers,
    tenant: &str,
    partial_response: bool,
    replica_labels: Vec<String>,
) -> Arc<dyn Querier> {
    if peers.is_empty() && external.is_empty() {
        let local = local.unwrap_or_else(TenantQuerier::empty);
        return Arc::new(local.partial_response(partial_response).replica_labels(replica_labels));
    }
    let local = local.map(|q| {
        Arc::new(WithExternalLabels::new(q.partial_response(partial_response), external.clone())) as Arc<dyn Querier>
    });
    Arc::new(FanOut::new(local, peers, tenant).partial_response(partial_response).replica_labels(replica_labels))
}
