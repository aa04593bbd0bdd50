//! Reading a block: the series table becomes an in-memory index (labels, postings,
//! row spans); samples are fetched by byte ranges for just the selected rows.
//!
//! ```text
//!   matchers ─► postings (roaring) ─► series ids ─► row spans ─► RowSelection
//!            ─► parquet page index ─► only the pages holding those rows are fetched
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int8Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use bytes::Bytes;
use futures::FutureExt;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use roaring::RoaringBitmap;
use std::ops::Range;
use strata_model::{Label, Labels, Sample, Series, TimeRange, stale_nan};

use crate::aggr::{AggrSeries, AggrWindow};

use crate::format::{self, col};
use crate::meta::BlockMeta;
use crate::paths::{BlockFile, BlockPath};
use crate::postings::Postings;
use crate::{Error, Result};

/// One row of `series.parquet`.
#[derive(Debug, Clone)]
pub struct IndexSeries {
    pub labels: Labels,
    pub min_t: i64,
    pub max_t: i64,
    pub first_row: u64,
    pub rows: u32,
    pub t_start: i64,
    pub t_step: i64,
}

/// What a reader keeps in memory per block: the series table, postings over it,
/// and the Parquet footer (with page index) of `samples.parquet`.
#[derive(Debug)]
pub struct BlockIndex {
    pub path: BlockPath,
    pub meta: BlockMeta,
    pub series: Vec<IndexSeries>,
    postings: PostingsMap,
    samples_meta: ArrowReaderMetadata,
    mem_bytes: usize,
}

fn parquet_err(path: &BlockPath, what: &str, e: impl std::fmt::Display) -> Error {
    Error::corrupt(path, format!("{what}: {e}"))
}

/// A Parquet reader's error: the object store's own error when a read failed (so
/// it keeps its kind: a store that is down is not a damaged block), else corruption.
fn read_failed(path: &BlockPath, what: &str, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
            Ok(store) => Error::store("get", format!("{path} {what}"), *store),
            Err(other) => parquet_err(path, what, other),
        },
        other => parquet_err(path, what, other),
    }
}

impl BlockIndex {
    /// Fetches and decodes the series table and the samples footer.
    pub async fn load(store: Arc<dyn ObjectStore>, path: BlockPath, meta: BlockMeta) -> Result<BlockIndex> {
        let key = path.file(BlockFile::Series);
        let bytes = store
            .get(&key)
            .await
            .map_err(|e| Error::store("get", &key, e))?
            .bytes()
            .await
            .map_err(|e| Error::store("get", &key, e))?;
        let key = path.file(BlockFile::Samples);
        let size = meta
            .file_size(BlockFile::Samples.name())
            .ok_or_else(|| parquet_err(&path, "meta.json", "no samples.parquet size"))?;
        let mut reader = ObjectReader { store, key, size };
        let opts = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let samples_meta = ArrowReaderMetadata::load_async(&mut reader, opts)
            .await
            .map_err(|e| read_failed(&path, "samples.parquet footer", e))?;
        let mem_bytes_footer = samples_meta.metadata().memory_size();
        let p = path.clone();
        let (series, postings, mem) = tokio::task::spawn_blocking(move || decode_series_table(&p, bytes))
            .await
            .map_err(|e| Error::corrupt(&path, e))??;
        Ok(BlockIndex { path, meta, series, postings, samples_meta, mem_bytes: mem + mem_bytes_footer })
    }

    /// Approximate memory held, for the cache budget.
    pub fn mem_bytes(&self) -> usize {
        self.mem_bytes
    }

    /// Ids among `ids` whose samples overlap `range`; all of them when the range
    /// covers the whole block.
    pub fn in_range(&self, ids: RoaringBitmap, range: TimeRange) -> RoaringBitmap {
        if range.start <= self.meta.min_time && range.end >= self.meta.max_time - 1 {
            return ids;
        }
        ids.into_iter()
            .filter(|&i| range.overlaps(self.series[i as usize].min_t, self.series[i as usize].max_t))
            .collect()
    }

    /// Reads the samples of `ids` (ascending) within `range`, fetching only the
    /// pages that hold their rows.
    pub async fn read(&self, store: Arc<dyn ObjectStore>, ids: &[u32], range: TimeRange) -> Result<Vec<Series>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if !self.meta.is_raw() {
            return Err(parquet_err(&self.path, "samples.parquet", "a downsampled block: use read_aggr"));
        }
        let selectors = row_selectors(&self.series, ids);
        let key = self.path.file(BlockFile::Samples);
        let size = self.meta.file_size(BlockFile::Samples.name()).unwrap_or_default();
        let reader = ObjectReader { store, key, size };
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.samples_meta.clone());
        let mask = ProjectionMask::roots(builder.parquet_schema(), [1, 2, 3, 4]);
        let stream = builder
            .with_projection(mask)
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(8192)
            .build()
            .map_err(|e| read_failed(&self.path, "samples.parquet", e))?;
        let batches: Vec<RecordBatch> =
            stream.try_collect().await.map_err(|e| read_failed(&self.path, "samples.parquet", e))?;
        let spans: Vec<&IndexSeries> = ids.iter().map(|&i| &self.series[i as usize]).collect();
        decode_samples(&self.path, &batches, &spans, range, 0)
    }
}

impl BlockIndex {
    /// Reads the windows of `ids` (ascending) of a downsampled block that overlap
    /// `range` (`t + resolution > range.start` and `t <= range.end`), fetching only
    /// the pages that hold their rows. Errors on a raw block.
    pub async fn read_aggr(
        &self,
        store: Arc<dyn ObjectStore>,
        ids: &[u32],
        range: TimeRange,
    ) -> Result<Vec<AggrSeries>> {
        if self.meta.is_raw() {
            return Err(parquet_err(&self.path, "samples.parquet", "a raw block has no aggregates"));
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.path.file(BlockFile::Samples);
        let size = self.meta.file_size(BlockFile::Samples.name()).unwrap_or_default();
        let reader = ObjectReader { store, key, size };
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.samples_meta.clone());
        let mask = ProjectionMask::roots(builder.parquet_schema(), 1..AGGR_COLUMNS);
        let stream = builder
            .with_projection(mask)
            .with_row_selection(RowSelection::from(row_selectors(&self.series, ids)))
            .with_batch_size(8192)
            .build()
            .map_err(|e| read_failed(&self.path, "samples.parquet", e))?;
        let batches: Vec<RecordBatch> =
            stream.try_collect().await.map_err(|e| read_failed(&self.path, "samples.parquet", e))?;
        let spans: Vec<&IndexSeries> = ids.iter().map(|&i| &self.series[i as usize]).collect();
        decode_aggr(&self.path, &batches, &spans, self.meta.resolution, range, 0)
    }
}

/// Columns of a downsampled block's `samples.parquet` (`series_id` first).
const AGGR_COLUMNS: usize = 13;

/// Skips and selects covering exactly the rows of `ids` (ascending).
fn row_selectors(series: &[IndexSeries], ids: &[u32]) -> Vec<RowSelector> {
    let mut selectors = Vec::new();
    let mut pos = 0u64;
    for &id in ids {
        let s = &series[id as usize];
        if s.first_row > pos {
            selectors.push(RowSelector::skip((s.first_row - pos) as usize));
        }
        selectors.push(RowSelector::select(s.rows as usize));
        pos = s.first_row + u64::from(s.rows);
    }
    selectors
}

/// Turns projected window batches (the aggregate columns after `series_id`, from
/// index `col0`) holding the rows of `spans`, in order, into series.
fn decode_aggr(
    path: &BlockPath,
    batches: &[RecordBatch],
    spans: &[&IndexSeries],
    resolution: i64,
    range: TimeRange,
    col0: usize,
) -> Result<Vec<AggrSeries>> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let want: u64 = spans.iter().map(|s| u64::from(s.rows)).sum();
    if total as u64 != want {
        return Err(parquet_err(path, "samples.parquet", format!("expected {want} rows, read {total}")));
    }
    let mut out: Vec<AggrSeries> = Vec::with_capacity(spans.len());
    let mut span_i = 0;
    let mut k = 0u32;
    let mut cur: Vec<AggrWindow> = Vec::new();
    for b in batches {
        let i64c = |i: usize, name: &str| {
            b.column(col0 + i).as_primitive_opt::<Int64Type>().ok_or_else(|| parquet_err(path, name, "type"))
        };
        let f64c = |i: usize, name: &str| {
            b.column(col0 + i).as_primitive_opt::<Float64Type>().ok_or_else(|| parquet_err(path, name, "type"))
        };
        let u32c = |i: usize, name: &str| {
            b.column(col0 + i).as_primitive_opt::<UInt32Type>().ok_or_else(|| parquet_err(path, name, "type"))
        };
        let (t, count, sum, min, max) =
            (i64c(0, col::T)?, u32c(1, col::COUNT)?, f64c(2, col::SUM)?, f64c(3, col::MIN)?, f64c(4, col::MAX)?);
        let (first_t, first, last_t, last) =
            (i64c(5, col::FIRST_T)?, f64c(6, col::FIRST)?, i64c(7, col::LAST_T)?, f64c(8, col::LAST)?);
        let (resets, correction) = (u32c(9, col::RESETS)?, f64c(10, col::CORRECTION)?);
        let stale = b.column(col0 + 11).as_boolean_opt().ok_or_else(|| parquet_err(path, col::STALE_END, "type"))?;
        for r in 0..b.num_rows() {
            while k == spans[span_i].rows {
                out.push(AggrSeries { labels: spans[span_i].labels.clone(), windows: std::mem::take(&mut cur) });
                span_i += 1;
                k = 0;
            }
            k += 1;
            let wt = t.value(r);
            if wt.saturating_add(resolution) <= range.start || wt > range.end {
                continue;
            }
            cur.push(AggrWindow {
                t: wt,
                count: count.value(r),
                sum: sum.value(r),
                min: min.value(r),
                max: max.value(r),
                first_t: first_t.value(r),
                first: first.value(r),
                last_t: last_t.value(r),
                last: last.value(r),
                resets: resets.value(r),
                correction: correction.value(r),
                stale_end: stale.value(r),
            });
        }
    }
    while span_i < spans.len() {
        out.push(AggrSeries { labels: spans[span_i].labels.clone(), windows: std::mem::take(&mut cur) });
        span_i += 1;
    }
    out.retain(|s| !s.windows.is_empty());
    Ok(out)
}

/// Byte-range reads of one object for the Parquet reader.
struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    key: object_store::path::Path,
    size: u64,
}

fn read_err(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.key, range).await.map_err(read_err) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.key, &ranges).await.map_err(read_err) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let m = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Required)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(m))
        }
        .boxed()
    }
}

impl Postings for BlockIndex {
    fn all(&self) -> RoaringBitmap {
        (0..self.series.len() as u32).collect()
    }

    fn get(&self, name: &str, value: &str) -> Option<&RoaringBitmap> {
        self.postings.get(name)?.get(value)
    }

    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&str, &RoaringBitmap)) {
        for (v, b) in self.postings.get(name).into_iter().flatten() {
            f(v, b);
        }
    }

    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        for n in self.postings.keys() {
            f(n);
        }
    }
}

type PostingsMap = HashMap<Arc<str>, HashMap<Arc<str>, RoaringBitmap>>;

fn decode_series_table(path: &BlockPath, bytes: Bytes) -> Result<(Vec<IndexSeries>, PostingsMap, usize)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|e| parquet_err(path, "series.parquet", e))?;
    let mut interned: HashSet<Arc<str>> = HashSet::new();
    let mut intern = |s: &str| -> Arc<str> {
        if let Some(a) = interned.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        interned.insert(a.clone());
        a
    };
    let mut series = Vec::new();
    let mut postings: PostingsMap = HashMap::new();
    let mut mem = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, "series.parquet", e))?;
        let c = |name: &str| batch.column_by_name(name).ok_or_else(|| parquet_err(path, "series.parquet", name));
        let labels = c(col::LABELS)?.as_map_opt().ok_or_else(|| parquet_err(path, "labels", "not a map"))?;
        let keys = labels.keys().as_string_opt::<i32>().ok_or_else(|| parquet_err(path, "labels", "keys"))?;
        let vals = labels.values().as_string_opt::<i32>().ok_or_else(|| parquet_err(path, "labels", "values"))?;
        let i64col = |name: &str| -> Result<_> {
            c(name)?.as_primitive_opt::<Int64Type>().ok_or_else(|| parquet_err(path, name, "type")).cloned()
        };
        let (min, max, start, step) =
            (i64col(col::MIN_TIME)?, i64col(col::MAX_TIME)?, i64col(col::T_START)?, i64col(col::T_STEP)?);
        let first = c(col::FIRST_ROW)?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| parquet_err(path, "first_row", "type"))?;
        let rows =
            c(col::NUM_ROWS)?.as_primitive_opt::<UInt32Type>().ok_or_else(|| parquet_err(path, "num_rows", "type"))?;
        let offsets = labels.value_offsets();
        for row in 0..batch.num_rows() {
            let id = series.len() as u32;
            let mut ls = Vec::with_capacity((offsets[row + 1] - offsets[row]) as usize);
            for j in offsets[row] as usize..offsets[row + 1] as usize {
                let (n, v) = (intern(keys.value(j)), intern(vals.value(j)));
                postings.entry(n.clone()).or_default().entry(v.clone()).or_default().insert(id);
                ls.push(Label { name: n, value: v });
            }
            mem += 64 + ls.len() * 32;
            series.push(IndexSeries {
                labels: Labels::new(ls),
                min_t: min.value(row),
                max_t: max.value(row),
                first_row: first.value(row),
                rows: rows.value(row),
                t_start: start.value(row),
                t_step: step.value(row),
            });
        }
    }
    mem += interned.iter().map(|s| s.len() + 32).sum::<usize>();
    mem += postings.values().flat_map(|m| m.values()).map(|b| b.serialized_size() + 48).sum::<usize>();
    Ok((series, postings, mem))
}

/// Turns projected sample batches (t_residual, v_mantissa, v_scale, v_raw) holding
/// the rows of `spans`, in order, into series. `col0` is the index of t_residual.
fn decode_samples(
    path: &BlockPath,
    batches: &[RecordBatch],
    spans: &[&IndexSeries],
    range: TimeRange,
    col0: usize,
) -> Result<Vec<Series>> {
    let mut out = Vec::with_capacity(spans.len());
    let mut span_i = 0;
    let mut k = 0u32; // row within the current series
    let mut cur: Vec<Sample> = Vec::new();
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let want: u64 = spans.iter().map(|s| u64::from(s.rows)).sum();
    if total as u64 != want {
        return Err(parquet_err(path, "samples.parquet", format!("expected {want} rows, read {total}")));
    }
    for b in batches {
        let res =
            b.column(col0).as_primitive_opt::<Int64Type>().ok_or_else(|| parquet_err(path, "t_residual", "type"))?;
        let mant = b
            .column(col0 + 1)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| parquet_err(path, "v_mantissa", "type"))?;
        let scale =
            b.column(col0 + 2).as_primitive_opt::<Int8Type>().ok_or_else(|| parquet_err(path, "v_scale", "type"))?;
        let raw =
            b.column(col0 + 3).as_primitive_opt::<Float64Type>().ok_or_else(|| parquet_err(path, "v_raw", "type"))?;
        for r in 0..b.num_rows() {
            while k == spans[span_i].rows {
                out.push(Series { labels: spans[span_i].labels.clone(), samples: std::mem::take(&mut cur) });
                span_i += 1;
                k = 0;
            }
            let s = spans[span_i];
            let t = s.t_start + i64::from(k) * s.t_step + res.value(r);
            k += 1;
            if !range.contains(t) {
                continue;
            }
            let v = if raw.is_valid(r) {
                raw.value(r)
            } else {
                format::decode_value(mant.value(r), scale.value(r))
                    .ok_or_else(|| parquet_err(path, "v_scale", format!("invalid scale {}", scale.value(r))))?
            };
            cur.push(Sample { t, v });
        }
    }
    while span_i < spans.len() {
        out.push(Series { labels: spans[span_i].labels.clone(), samples: std::mem::take(&mut cur) });
        span_i += 1;
    }
    out.retain(|s| !s.samples.is_empty());
    Ok(out)
}

/// Reads a whole block from memory (compaction, verification, tests).
///
/// A downsampled block (its `samples.parquet` has the aggregate schema) decodes
/// to one sample per window: at the window start, the window's average
/// (`sum / count`), or the stale marker for a window of stale markers only. So
/// counts match `meta.json` either way; [`decode_aggr_block`] gives the aggregates.
pub fn decode_block(path: &BlockPath, series: Bytes, samples: Bytes) -> Result<Vec<Series>> {
    let (index, _, _) = decode_series_table(path, series)?;
    let (batches, aggr) = decode_all(path, samples)?;
    let spans: Vec<&IndexSeries> = index.iter().collect();
    if !aggr {
        return decode_samples(path, &batches, &spans, TimeRange::all(), 1);
    }
    let step = index.iter().map(|s| s.t_step).find(|&s| s > 0).unwrap_or(1);
    let windows = decode_aggr(path, &batches, &spans, step, TimeRange::all(), 1)?;
    Ok(windows
        .into_iter()
        .map(|s| Series {
            labels: s.labels,
            samples: s
                .windows
                .iter()
                .map(|w| Sample::new(w.t, if w.count == 0 { stale_nan() } else { w.sum / f64::from(w.count) }))
                .collect(),
        })
        .collect())
}

/// Every batch of a `samples.parquet`, and whether it has the aggregate schema.
fn decode_all(path: &BlockPath, samples: Bytes) -> Result<(Vec<RecordBatch>, bool)> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(samples).map_err(|e| parquet_err(path, "samples.parquet", e))?;
    let schema = builder.schema().clone();
    let aggr = schema.fields().len() == AGGR_COLUMNS && schema.field(1).name() == col::T;
    if !aggr && schema.fields().len() != format::samples_schema().fields().len() {
        return Err(parquet_err(path, "samples.parquet", "neither the raw nor the aggregate schema"));
    }
    let reader = builder.with_batch_size(64 * 1024).build().map_err(|e| parquet_err(path, "samples.parquet", e))?;
    let batches: Vec<RecordBatch> =
        reader.collect::<Result<_, _>>().map_err(|e| parquet_err(path, "samples.parquet", e))?;
    Ok((batches, aggr))
}

/// Reads a whole downsampled block from memory. Errors on a raw block.
pub fn decode_aggr_block(path: &BlockPath, series: Bytes, samples: Bytes) -> Result<Vec<AggrSeries>> {
    let (index, _, _) = decode_series_table(path, series)?;
    let (batches, aggr) = decode_all(path, samples)?;
    if !aggr {
        return Err(parquet_err(path, "samples.parquet", "a raw block has no aggregates"));
    }
    let spans: Vec<&IndexSeries> = index.iter().collect();
    let step = index.iter().map(|s| s.t_step).find(|&s| s > 0).unwrap_or(1);
    decode_aggr(path, &batches, &spans, step, TimeRange::all(), 1)
}

/// Downloads and decodes a whole block.
pub async fn read_block(store: &dyn ObjectStore, path: &BlockPath) -> Result<Vec<Series>> {
    let mut files = Vec::new();
    for f in BlockFile::DATA {
        let key = path.file(f);
        let r = store.get(&key).await.map_err(|e| Error::store("get", &key, e))?;
        files.push(r.bytes().await.map_err(|e| Error::store("get", &key, e))?);
    }
    let p = path.clone();
    let samples = files.pop().expect("two files");
    let series = files.pop().expect("two files");
    tokio::task::spawn_blocking(move || decode_block(&p, series, samples)).await.map_err(|e| Error::corrupt(path, e))?
}

/// Downloads and decodes a whole downsampled block.
pub async fn read_aggr_block(store: &dyn ObjectStore, path: &BlockPath) -> Result<Vec<AggrSeries>> {
    let mut files = Vec::new();
    for f in BlockFile::DATA {
        let key = path.file(f);
        let r = store.get(&key).await.map_err(|e| Error::store("get", &key, e))?;
        files.push(r.bytes().await.map_err(|e| Error::store("get", &key, e))?);
    }
    let p = path.clone();
    let samples = files.pop().expect("two files");
    let series = files.pop().expect("two files");
    tokio::task::spawn_blocking(move || decode_aggr_block(&p, series, samples))
        .await
        .map_err(|e| Error::corrupt(path, e))?
}
