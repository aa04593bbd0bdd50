//! Garbage collection: deleting what no reader needs any more.
//!
//! ```text
//!   complete block with a deletion mark older than deletion_delay ─► delete_block
//!   directory without meta.json, newest file older than
//!   max(deletion_delay, 1h) (a failed upload or a half-done delete) ─► delete_block
//! ```

use std::time::Duration;

use strata_block::Bucket;
use strata_model::TenantId;
use ulid::Ulid;

use crate::{Error, Result};

/// The youngest an incomplete block directory can be and still be deleted: an
/// upload may be in progress until then.
pub const MIN_INCOMPLETE_AGE: Duration = Duration::from_secs(3600);

/// What one garbage collection of a tenant removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blocks deleted because their deletion mark was old enough.
    pub deleted: Vec<Ulid>,
    /// Directories without `meta.json` deleted.
    pub incomplete: Vec<Ulid>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Deletes the blocks of `tenant` whose deletion mark is at least `deletion_delay`
/// old, and the incomplete block directories whose newest file is at least
/// `max(deletion_delay, 1h)` old.
pub async fn collect_garbage(
    bucket: &Bucket,
    tenant: &TenantId,
    deletion_delay: Duration,
    now_ms: i64,
) -> Result<GcReport> {
    let mut report = GcReport::default();
    let now_s = now_ms / 1000;
    let blocks = bucket.blocks(tenant).await.map_err(|e| Error::bucket(tenant, e))?;
    for b in blocks.iter() {
        let Some(mark) = &b.deletion_mark else { continue };
        if now_s.saturating_sub(mark.deletion_time) < ms(deletion_delay) / 1000 {
            continue;
        }
        bucket.delete_block(&b.path).await.map_err(|e| Error::block(&b.path, e))?;
        tracing::info!(block = %b.path, reason = %mark.reason, "deleted marked block");
        report.deleted.push(b.meta.ulid);
    }
    let min_age = ms(deletion_delay.max(MIN_INCOMPLETE_AGE));
    for scan in bucket.scan(tenant).await.map_err(|e| Error::bucket(tenant, e))? {
        if scan.meta.is_some() || now_ms.saturating_sub(scan.last_modified) < min_age {
            continue;
        }
        bucket.delete_block(&scan.path).await.map_err(|e| Error::block(&scan.path, e))?;
        tracing::info!(
            block = %scan.path,
            files = scan.files.len(),
            age_s = (now_ms - scan.last_modified) / 1000,
            "deleted incomplete block directory"
        );
        report.incomplete.push(scan.path.id);
    }
    Ok(report)
}
