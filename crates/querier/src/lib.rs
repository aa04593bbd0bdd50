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

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;
use strata_block::BlockQuerier;
use strata_model::{ErrorKind, Matcher, Querier, Result, SelectHints, Series, TimeRange, merge_series};
use strata_tsdb::HeadQuerier;

/// Head and blocks of one tenant as one [`Querier`], made per request.
#[derive(Debug)]
pub struct TenantQuerier {
    head: HeadQuerier,
    /// Samples at or after this are only in the head (the end of the head's newest
    /// cut; `i64::MIN` when nothing was cut yet: blocks may still exist from another
    /// process or an earlier data directory).
    head_floor: i64,
    blocks: Option<BlockQuerier>,
    /// Whether an unavailable bucket leaves its data out with a warning (`true`)
    /// or fails the call (`false`, Thanos's `partial_response=false`).
    partial_response: bool,
    warnings: Mutex<Vec<String>>,
}

impl TenantQuerier {
    /// A querier that fails when the bucket is unavailable; see [`Self::partial_response`].
    pub fn new(head: HeadQuerier, head_floor: i64, blocks: Option<BlockQuerier>) -> Self {
        TenantQuerier { head, head_floor, blocks, partial_response: false, warnings: Mutex::new(Vec::new()) }
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
        let Some(blocks) = self.blocks_for(hints.range) else {
            return self.head.select(hints, matchers).await;
        };
        let (head, blocks) = futures::future::join(self.head.select(hints, matchers), blocks.select(hints, matchers)).await;
        let (head, blocks) = (head?, self.blocks_part(blocks)?);
        let Some(blocks) = blocks else { return Ok(head) };
        let mut out = merge_series(vec![head, blocks]);
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(out)
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let Some(blocks) = self.blocks_for(range) else {
            return self.head.label_names(range, matchers).await;
        };
        let (a, b) =
            futures::future::join(self.head.label_names(range, matchers), blocks.label_names(range, matchers)).await;
        let (a, b) = (a?, self.blocks_part(b)?.unwrap_or_default());
        Ok(a.into_iter().chain(b).collect::<BTreeSet<_>>().into_iter().collect())
    }

    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let Some(blocks) = self.blocks_for(range) else {
            return self.head.label_values(name, range, matchers).await;
        };
        let (a, b) = futures::future::join(
            self.head.label_values(name, range, matchers),
            blocks.label_values(name, range, matchers),
        )
        .await;
        let (a, b) = (a?, self.blocks_part(b)?.unwrap_or_default());
        Ok(a.into_iter().chain(b).collect::<BTreeSet<_>>().into_iter().collect())
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
