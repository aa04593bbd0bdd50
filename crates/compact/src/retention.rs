//! Retention per resolution: blocks whose newest sample is older than the tenant's
//! retention for their resolution get a deletion mark; garbage collection removes
//! them after the deletion delay.
//!
//! With downsampling on, a raw or 5m block expires only once its data has a copy
//! at the next resolution (Thanos's users lost history when raw expired first, its
//! issue #4634): a 7d raw retention keeps the 5m and 1h history. A no-compact block
//! (damaged, never downsampled) expires on time regardless.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use strata_block::{Bucket, RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW};
use strata_model::TenantId;
use ulid::Ulid;

use crate::downsample::{covered_sources, is_covered, next_resolution};
use crate::marks::mark_for_deletion;
use crate::{Error, Result};

/// Reason written into deletion marks of expired blocks.
pub const RETENTION_REASON: &str = "retention";

/// How long a tenant's data is kept at each resolution (`None`: forever).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub raw: Option<Duration>,
    pub five_m: Option<Duration>,
    pub one_h: Option<Duration>,
}

impl Retention {
    /// The retention of blocks of `resolution` (unknown resolutions: forever).
    pub fn of(&self, resolution: i64) -> Option<Duration> {
        match resolution {
            RESOLUTION_RAW => self.raw,
            RESOLUTION_5M => self.five_m,
            RESOLUTION_1H => self.one_h,
            _ => None,
        }
    }
}

/// Marks every block of `tenant` that lies entirely before `now_ms - retention`
/// for its resolution (its exclusive `max_time` at or before that instant) and has
/// no deletion mark yet. With `downsampling`, a raw or 5m block that is not yet
/// covered by the next resolution is kept. Returns the blocks marked.
pub async fn apply_retention(
    bucket: &Bucket,
    tenant: &TenantId,
    retention: &Retention,
    downsampling: bool,
    now_ms: i64,
) -> Result<Vec<Ulid>> {
    let blocks = bucket.blocks(tenant).await.map_err(|e| Error::bucket(tenant, e))?;
    let live = blocks.iter().filter(|b| b.deletion_mark.is_none()).map(|b| &b.meta);
    let covered: HashMap<i64, HashSet<Ulid>> =
        [RESOLUTION_5M, RESOLUTION_1H].into_iter().map(|r| (r, covered_sources(live.clone(), r))).collect();
    let mut marked = Vec::new();
    for b in blocks.iter().filter(|b| b.deletion_mark.is_none()) {
        let Some(keep) = retention.of(b.meta.resolution) else { continue };
        let cutoff = now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        if b.meta.max_time > cutoff {
            continue;
        }
        if downsampling
            && b.no_compact.is_none()
            && let Some(next) = next_resolution(b.meta.resolution)
            && !covered.get(&next).is_some_and(|c| is_covered(&b.meta, c))
        {
            tracing::debug!(block = %b.path, "expired but kept until downsampled");
            continue;
        }
        mark_for_deletion(bucket, b, RETENTION_REASON.into(), now_ms).await?;
        tracing::info!(
            block = %b.path,
            resolution = b.meta.resolution,
            max_time = %strata_model::format_rfc3339_ms(b.meta.max_time),
            cutoff = %strata_model::format_rfc3339_ms(cutoff),
            "block expired by retention"
        );
        marked.push(b.meta.ulid);
    }
    Ok(marked)
}
