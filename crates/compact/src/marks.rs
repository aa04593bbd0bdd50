//! Writing the markers the compactor puts next to a block's data.

use strata_block::{BlockFile, BlockInfo, Bucket, DeletionMark, MARKER_VERSION, NoCompactMark};

use crate::{Error, Result};

/// A deletion mark on `b` (`now_ms`: the mark's time), for garbage collection
/// after the deletion delay.
pub(crate) async fn mark_for_deletion(bucket: &Bucket, b: &BlockInfo, reason: String, now_ms: i64) -> Result<()> {
    let mark = DeletionMark { version: MARKER_VERSION, id: b.meta.ulid, deletion_time: now_ms / 1000, reason };
    bucket.put_marker(&b.path, BlockFile::DeletionMark, &mark).await.map_err(|e| Error::block(&b.path, e))
}

/// A no-compact mark on `b`: maintenance leaves it alone from now on.
pub(crate) async fn mark_no_compact(bucket: &Bucket, b: &BlockInfo, reason: String, now_ms: i64) -> Result<()> {
    let mark = NoCompactMark { version: MARKER_VERSION, id: b.meta.ulid, no_compact_time: now_ms / 1000, reason };
    bucket.put_marker(&b.path, BlockFile::NoCompactMark, &mark).await.map_err(|e| Error::block(&b.path, e))
}
