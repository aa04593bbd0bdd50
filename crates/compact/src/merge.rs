//! Merging one group of blocks into one.
//!
//! ```text
//!   inputs ─► read_block each (decode off the I/O workers)
//!          ─► unreadable? no-compact mark on it, nothing written, plan again
//!          ─► merge_series (dedup of identical timestamps) ─► BlockBuilder (blocking thread)
//!          ─► upload (data files, meta.json last) ─► deletion mark on every input
//! ```
//!
//! Every step leaves the bucket consistent if the process dies after it: before the
//! new `meta.json` exists nothing changed; after it, the inputs and the new block
//! hold the same data until the inputs are marked, and queries deduplicate.

use std::collections::BTreeSet;

use object_store::ObjectStoreExt;
use strata_block::{
    BlockBuilder, BlockFile, BlockInfo, BlockMeta, BlockOrigin, Bucket, DeletionMark, ErrorKind, MARKER_VERSION,
    NoCompactMark, read_block, upload,
};
use strata_model::Series;
use ulid::Ulid;

use crate::{Error, Result, now_unix_ms};

/// What became of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOutcome {
    /// The inputs were merged into `block` (`None` if they held no samples at all)
    /// and now carry deletion marks.
    Merged { block: Option<BlockMeta>, inputs: Vec<Ulid> },
    /// These inputs could not be read and now carry no-compact marks (block id and
    /// reason). Nothing was written; the rest of the group is planned again.
    Unreadable { blocks: Vec<(Ulid, String)> },
    /// An input vanished (its `meta.json` is gone: deleted by another process).
    /// Nothing was written; the caller lists again.
    Stale { block: Ulid },
}

/// Merges `inputs` (blocks of one tenant and resolution) into one block. Inputs
/// are merged in `(min_time, ulid)` order: at an identical timestamp, the sample of
/// the earlier block is kept.
///
/// With `replica_labels`, series that differ only in them (HA replicas) become one
/// series without them ([`strata_model::dedup_series`]; counters, by their
/// Prometheus naming, never go backwards at a switch of replicas), and `meta.json`
/// records the labels.
///
/// Errors only when the store fails (worth retrying later); unreadable inputs are
/// an [`GroupOutcome::Unreadable`] outcome, not an error.
pub async fn compact_group(bucket: &Bucket, inputs: &[BlockInfo], replica_labels: &[String]) -> Result<GroupOutcome> {
    let mut inputs: Vec<&BlockInfo> = inputs.iter().collect();
    inputs.sort_by_key(|b| (b.meta.min_time, b.meta.ulid));
    let Some(first) = inputs.first() else {
        return Ok(GroupOutcome::Merged { block: None, inputs: Vec::new() });
    };
    let tenant = first.path.tenant.clone();
    let resolution = first.meta.resolution;
    if let Some(b) = inputs.iter().find(|b| b.path.tenant != tenant || b.meta.resolution != resolution) {
        return Err(Error::Config(format!("block {} does not belong in a group of {}", b.path, first.path)));
    }

    let store = bucket.store();
    let reads = futures::future::join_all(inputs.iter().map(|b| read_block(&**store, &b.path))).await;
    let mut sets: Vec<Vec<Series>> = Vec::with_capacity(inputs.len());
    let mut unreadable = Vec::new();
    for (b, read) in inputs.iter().zip(reads) {
        match read {
            Ok(series) => match check_counts(&b.meta, &series) {
                Ok(()) => sets.push(series),
                Err(reason) => unreadable.push((b, reason)),
            },
            Err(e) if e.kind() == ErrorKind::Corrupt => unreadable.push((b, e.to_string())),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let meta = store.head(&b.path.file(BlockFile::Meta)).await;
                match meta {
                    Ok(_) => unreadable.push((b, format!("data file missing: {e}"))),
                    Err(object_store::Error::NotFound { .. }) => {
                        return Ok(GroupOutcome::Stale { block: b.meta.ulid });
                    }
                    Err(e) => {
                        return Err(Error::Store {
                            path: b.path.file(BlockFile::Meta).to_string(),
                            source: Box::new(e),
                        });
                    }
                }
            }
            Err(e) => return Err(Error::block(&b.path, e)),
        }
    }
    if !unreadable.is_empty() {
        let mut marked = Vec::new();
        for (b, reason) in unreadable {
            tracing::warn!(block = %b.path, %reason, "unreadable block, marked no-compact");
            let mark = NoCompactMark {
                version: MARKER_VERSION,
                id: b.meta.ulid,
                no_compact_time: now_unix_ms() / 1000,
                reason: reason.clone(),
            };
            bucket.put_marker(&b.path, BlockFile::NoCompactMark, &mark).await.map_err(|e| Error::block(&b.path, e))?;
            marked.push((b.meta.ulid, reason));
        }
        return Ok(GroupOutcome::Unreadable { blocks: marked });
    }

    let sources: BTreeSet<Ulid> = inputs.iter().flat_map(|b| b.meta.compaction.sources.iter().copied()).collect();
    let deduplicated: BTreeSet<String> = inputs
        .iter()
        .flat_map(|b| b.meta.compaction.deduplicated_replica_labels.iter().cloned())
        .chain(replica_labels.iter().cloned())
        .collect();
    let origin = BlockOrigin {
        level: inputs.iter().map(|b| b.meta.compaction.level).max().unwrap_or(0) + 1,
        sources: sources.into_iter().collect(),
        parents: inputs.iter().map(|b| b.meta.ulid).collect(),
        resolution,
        deduplicated_replica_labels: deduplicated.into_iter().collect(),
    };
    let replica_labels = replica_labels.to_vec();
    let started = std::time::Instant::now();
    let t = tenant.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let mut builder = BlockBuilder::spooled(t.as_str(), &std::env::temp_dir())?;
        let merged = strata_model::merge_series(sets);
        for s in dedup_replicas(merged, &replica_labels) {
            builder.add_series(&s.labels, &s.samples)?;
        }
        builder.finish(origin)
    })
    .await
    .map_err(|e| Error::Task { block: first.path.to_string(), reason: e.to_string() })?
    .map_err(|e| Error::block(&first.path, e))?;

    let new_meta = match &encoded {
        Some(block) => {
            let path = upload(&**store, block).await.map_err(|e| Error::block(&first.path, e))?;
            bucket.invalidate(&tenant);
            tracing::info!(
                block = %path,
                inputs = inputs.len(),
                level = block.meta.compaction.level,
                series = block.meta.stats.num_series,
                samples = block.meta.stats.num_samples,
                bytes = block.meta.data_bytes(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "compacted"
            );
            Some(block.meta.clone())
        }
        None => None,
    };
    let reason = match &new_meta {
        Some(m) => format!("compacted into {}", m.ulid),
        None => "compacted: no samples".to_string(),
    };
    for b in &inputs {
        let mark = DeletionMark {
            version: MARKER_VERSION,
            id: b.meta.ulid,
            deletion_time: now_unix_ms() / 1000,
            reason: reason.clone(),
        };
        bucket.put_marker(&b.path, BlockFile::DeletionMark, &mark).await.map_err(|e| Error::block(&b.path, e))?;
    }
    Ok(GroupOutcome::Merged { block: new_meta, inputs: inputs.iter().map(|b| b.meta.ulid).collect() })
}

/// A block that decodes but holds other counts than its `meta.json` says is damaged.
fn check_counts(meta: &BlockMeta, series: &[Series]) -> std::result::Result<(), String> {
    let samples: u64 = series.iter().map(|s| s.samples.len() as u64).sum();
    if series.len() as u64 != meta.stats.num_series || samples != meta.stats.num_samples {
        return Err(format!(
            "holds {} series and {samples} samples, meta.json says {} and {}",
            series.len(),
            meta.stats.num_series,
            meta.stats.num_samples
        ));
    }
    // Samples are sorted within a series: its ends bound it (O(series), not O(samples)).
    let ends = series.iter().flat_map(|s| [s.samples.first(), s.samples.last()]).flatten();
    let outside = ends.into_iter().find(|s| s.t < meta.min_time || s.t >= meta.max_time);
    if let Some(s) = outside {
        return Err(format!("sample at {} outside [{}, {})", s.t, meta.min_time, meta.max_time));
    }
    Ok(())
}

/// Offline HA dedup of merged series: counters (by Prometheus's naming conventions:
/// `_total`, `_count`, `_sum`, `_bucket`) get the counter rule, everything else the
/// plain merge. Stored data has no type, and a query's `rate` over a deduplicated
/// block sees one series, so the adjustment has to happen here.
fn dedup_replicas(series: Vec<Series>, replica_labels: &[String]) -> Vec<Series> {
    if replica_labels.is_empty() {
        return series;
    }
    let names: Vec<&str> = replica_labels.iter().map(String::as_str).collect();
    let is_counter = |s: &Series| {
        s.labels.metric_name().is_some_and(|n| ["_total", "_count", "_sum", "_bucket"].iter().any(|x| n.ends_with(x)))
    };
    let (counters, others): (Vec<Series>, Vec<Series>) = series.into_iter().partition(is_counter);
    let mut out = strata_model::dedup_series(counters, &names, true);
    out.extend(strata_model::dedup_series(others, &names, false));
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}
