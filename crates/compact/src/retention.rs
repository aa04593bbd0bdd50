//! Retention: blocks whose newest sample is older than the tenant's retention get a
//! deletion mark; garbage collection removes them after the deletion delay.

use std::time::Duration;

use strata_block::{BlockFile, Bucket, DeletionMark, MARKER_VERSION};
use strata_model::TenantId;
use ulid::Ulid;

use crate::{Error, Result};

/// Reason written into deletion marks of expired blocks.
pub const RETENTION_REASON: &str = "retention";

/// Marks every block of `tenant` that lies entirely before `now_ms - retention`
/// (its exclusive `max_time` at or before that instant) and has no deletion mark
/// yet. No-compact blocks expire like any other. Returns the blocks marked.
pub async fn apply_retention(
    bucket: &Bucket,
    tenant: &TenantId,
    retention: Duration,
    now_ms: i64,
) -> Result<Vec<Ulid>> {
    let cutoff = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let blocks = bucket.blocks(tenant).await.map_err(|e| Error::bucket(tenant, e))?;
    let mut marked = Vec::new();
    for b in blocks.iter().filter(|b| b.deletion_mark.is_none() && b.meta.max_time <= cutoff) {
        let mark = DeletionMark {
            version: MARKER_VERSION,
            id: b.meta.ulid,
            deletion_time: now_ms / 1000,
            reason: RETENTION_REASON.into(),
        };
        bucket.put_marker(&b.path, BlockFile::DeletionMark, &mark).await.map_err(|e| Error::block(&b.path, e))?;
        tracing::info!(
            block = %b.path,
            max_time = %strata_model::format_rfc3339_ms(b.meta.max_time),
            cutoff = %strata_model::format_rfc3339_ms(cutoff),
            "block expired by retention"
        );
        marked.push(b.meta.ulid);
    }
    Ok(marked)
}
