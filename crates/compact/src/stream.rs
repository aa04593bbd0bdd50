//! Reading the inputs of a merge or a downsampling pass in bounded batches of
//! series, so memory follows the batch size and the series count, never the number
//! of samples in a block.
//!
//! ```text
//!   input blocks ─► BlockIndex::load each (series table + samples footer, not samples)
//!     ─► one entry per (input, series), keyed by its output labels
//!        (the labels, or the labels without the replica labels for offline dedup)
//!     ─► sorted by key ─► batches of whole keys, about BATCH_ROWS samples each
//!     ─► per batch and input: BlockIndex::read of its ids (only their pages)
//! ```
//!
//! A key never spans two batches: every copy and every replica of a series is in the
//! batch that writes it, and batches come in key order, so the output is sorted.

use std::sync::Arc;

use strata_block::{BlockFile, BlockIndex, BlockInfo, ErrorKind, ObjectStore};
use strata_model::{Labels, Series, TimeRange};

use crate::Error;

/// Samples (or windows) read per batch, summed over the inputs. A batch holds at
/// least one whole key, however large. Small in tests, so they cross batches.
#[cfg(not(test))]
pub(crate) const BATCH_ROWS: u64 = 1 << 20;
#[cfg(test)]
pub(crate) const BATCH_ROWS: u64 = 100;

/// Why a streamed read stopped.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// Input `input` is damaged (or disagrees with its `meta.json`).
    Unreadable { input: usize, reason: String },
    /// Input `input` vanished: its `meta.json` is gone.
    Stale { input: usize },
    /// The store failed: worth retrying later.
    Failed(Error),
}

impl From<Error> for StreamError {
    fn from(e: Error) -> Self {
        StreamError::Failed(e)
    }
}

/// One series of one input.
#[derive(Debug)]
struct Entry {
    key: Labels,
    input: usize,
    id: u32,
}

/// The inputs' series in key order, in batches.
#[derive(Debug)]
pub(crate) struct Batches {
    store: Arc<dyn ObjectStore>,
    pub(crate) indexes: Vec<BlockIndex>,
    entries: Vec<Entry>,
    pos: usize,
}

/// Every sample of a block.
const ALL: TimeRange = TimeRange { start: i64::MIN, end: i64::MAX };

impl Batches {
    /// Loads the indexes of `inputs` (in merge order: at an identical timestamp the
    /// earlier input wins) and orders their series by `key_of(labels)`.
    pub(crate) async fn open(
        store: Arc<dyn ObjectStore>,
        inputs: &[&BlockInfo],
        key_of: impl Fn(&Labels) -> Labels,
    ) -> std::result::Result<Batches, StreamError> {
        let loads = futures::future::join_all(
            inputs.iter().map(|b| BlockIndex::load(store.clone(), b.path.clone(), b.meta.clone())),
        )
        .await;
        let mut indexes = Vec::with_capacity(inputs.len());
        for (input, (b, ix)) in inputs.iter().zip(loads).enumerate() {
            match ix {
                Ok(ix) => {
                    check_index(&ix).map_err(|reason| StreamError::Unreadable { input, reason })?;
                    indexes.push(ix);
                }
                Err(e) => return Err(classify(&*store, b, input, e).await),
            }
        }
        let mut entries: Vec<Entry> = indexes
            .iter()
            .enumerate()
            .flat_map(|(input, ix)| ix.series.iter().enumerate().map(move |(id, s)| (input, id as u32, &s.labels)))
            .map(|(input, id, labels)| Entry { key: key_of(labels), input, id })
            .collect();
        // Stable by (key, input, id): ids ascend within an input for each batch.
        entries.sort_by(|a, b| (&a.key, a.input, a.id).cmp(&(&b.key, b.input, b.id)));
        Ok(Batches { store, indexes, entries, pos: 0 })
    }

    /// The ids of the next batch, per input (ascending), or `None` at the end.
    fn next_ids(&mut self) -> Option<Vec<Vec<u32>>> {
        if self.pos >= self.entries.len() {
            return None;
        }
        let mut ids = vec![Vec::new(); self.indexes.len()];
        let mut rows = 0u64;
        while self.pos < self.entries.len() {
            let key = &self.entries[self.pos].key;
            let end = self.pos + self.entries[self.pos..].iter().take_while(|e| &e.key == key).count();
            let key_rows = self.key_rows(self.pos..end);
            if rows > 0 && rows + key_rows > BATCH_ROWS {
                break;
            }
            rows += key_rows;
            for e in &self.entries[self.pos..end] {
                ids[e.input].push(e.id);
            }
            self.pos = end;
        }
        for v in &mut ids {
            v.sort_unstable();
        }
        Some(ids)
    }

    fn key_rows(&self, r: std::ops::Range<usize>) -> u64 {
        self.entries[r].iter().map(|e| u64::from(self.indexes[e.input].series[e.id as usize].rows)).sum()
    }

    /// The next batch of raw series, one set per input (each in label order), or
    /// `None` when every series was read.
    pub(crate) async fn next_raw(&mut self) -> Option<std::result::Result<Vec<Vec<Series>>, StreamError>> {
        let ids = self.next_ids()?;
        let mut sets = Vec::with_capacity(ids.len());
        for (input, ids) in ids.iter().enumerate() {
            let ix = &self.indexes[input];
            let read = ix.read(self.store.clone(), ids, ALL).await;
            let series = match read {
                Ok(s) => s,
                Err(e) => return Some(Err(self.read_failed(input, e))),
            };
            if let Err(reason) = check_bounds(
                ix,
                series.iter().flat_map(|s| [s.samples.first(), s.samples.last()]).flatten().map(|s| s.t),
            ) {
                return Some(Err(StreamError::Unreadable { input, reason }));
            }
            sets.push(series);
        }
        Some(Ok(sets))
    }

    /// The next batch of a single downsampled input's series (label order).
    pub(crate) async fn next_aggr(
        &mut self,
    ) -> Option<std::result::Result<Vec<strata_block::AggrSeries>, StreamError>> {
        let ids = self.next_ids()?;
        let ix = &self.indexes[0];
        Some(match ix.read_aggr(self.store.clone(), &ids[0], ALL).await {
            Ok(s) => Ok(s),
            Err(e) => Err(self.read_failed(0, e)),
        })
    }

    fn read_failed(&self, input: usize, e: strata_block::Error) -> StreamError {
        let path = &self.indexes[input].path;
        match e.kind() {
            ErrorKind::Corrupt | ErrorKind::NotFound => StreamError::Unreadable { input, reason: e.to_string() },
            _ => StreamError::Failed(Error::block(path, e)),
        }
    }
}

/// A load that failed: a damaged block, a block gone (its `meta.json` too), or a
/// store failure.
async fn classify(store: &dyn ObjectStore, b: &BlockInfo, input: usize, e: strata_block::Error) -> StreamError {
    use object_store::ObjectStoreExt;
    match e.kind() {
        ErrorKind::Corrupt => StreamError::Unreadable { input, reason: e.to_string() },
        ErrorKind::NotFound => match store.head(&b.path.file(BlockFile::Meta)).await {
            Ok(_) => StreamError::Unreadable { input, reason: format!("data file missing: {e}") },
            Err(object_store::Error::NotFound { .. }) => StreamError::Stale { input },
            Err(e) => StreamError::Failed(Error::Store {
                path: b.path.file(BlockFile::Meta).to_string(),
                source: Box::new(e),
            }),
        },
        _ => StreamError::Failed(Error::block(&b.path, e)),
    }
}

/// A block whose series table disagrees with its `meta.json` is damaged.
fn check_index(ix: &BlockIndex) -> std::result::Result<(), String> {
    let rows: u64 = ix.series.iter().map(|s| u64::from(s.rows)).sum();
    let stats = &ix.meta.stats;
    if ix.series.len() as u64 != stats.num_series || rows != stats.num_samples {
        return Err(format!(
            "holds {} series and {rows} samples, meta.json says {} and {}",
            ix.series.len(),
            stats.num_series,
            stats.num_samples
        ));
    }
    Ok(())
}

/// Samples outside the block's `[min_time, max_time)` mean a damaged block.
fn check_bounds(ix: &BlockIndex, mut ts: impl Iterator<Item = i64>) -> std::result::Result<(), String> {
    let (lo, hi) = (ix.meta.min_time, ix.meta.max_time);
    match ts.find(|&t| t < lo || t >= hi) {
        Some(t) => Err(format!("sample at {t} outside [{lo}, {hi})")),
        None => Ok(()),
    }
}
