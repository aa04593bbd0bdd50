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

use std::collections::BTreeSet;

use async_trait::async_trait;
use strata_block::BlockQuerier;
use strata_model::{Matcher, Querier, Result, SelectHints, Series, TimeRange, merge_series};
use strata_tsdb::HeadQuerier;

/// Head and blocks of one tenant as one [`Querier`].
#[derive(Debug, Clone)]
pub struct TenantQuerier {
    head: HeadQuerier,
    /// Samples at or after this are only in the head (the end of the head's newest
    /// cut; `i64::MIN` when nothing was cut yet: blocks may still exist from another
    /// process or an earlier data directory).
    head_floor: i64,
    blocks: Option<BlockQuerier>,
}

impl TenantQuerier {
    pub fn new(head: HeadQuerier, head_floor: i64, blocks: Option<BlockQuerier>) -> Self {
        TenantQuerier { head, head_floor, blocks }
    }

    fn blocks_for(&self, range: TimeRange) -> Option<&BlockQuerier> {
        self.blocks.as_ref().filter(|_| range.start < self.head_floor || self.head_floor == i64::MIN)
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
        let (head, blocks) =
            futures::future::try_join(self.head.select(hints, matchers), blocks.select(hints, matchers)).await?;
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
            futures::future::try_join(self.head.label_names(range, matchers), blocks.label_names(range, matchers))
                .await?;
        Ok(a.into_iter().chain(b).collect::<BTreeSet<_>>().into_iter().collect())
    }

    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let Some(blocks) = self.blocks_for(range) else {
            return self.head.label_values(name, range, matchers).await;
        };
        let (a, b) = futures::future::try_join(
            self.head.label_values(name, range, matchers),
            blocks.label_values(name, range, matchers),
        )
        .await?;
        Ok(a.into_iter().chain(b).collect::<BTreeSet<_>>().into_iter().collect())
    }
}
