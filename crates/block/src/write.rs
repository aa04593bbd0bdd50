//! Writing a block: series in label order go in, two Parquet files and a
//! `meta.json` come out; [`upload`] puts them in the bucket, `meta.json` last.

use std::sync::Arc;

use arrow_array::builder::{MapBuilder, MapFieldNames, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int8Array, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use strata_model::{Labels, Sample};
use ulid::Ulid;

use crate::format::{self, col};
use crate::meta::{BlockMeta, BlockStats, Compaction, FORMAT_VERSION, FileStat};
use crate::paths::{BlockFile, BlockPath};
use crate::{Error, Result};

/// Rows buffered before a batch goes to the Parquet writer.
const BATCH_ROWS: usize = 64 * 1024;
/// Series rows buffered before a batch goes to the series table's writer.
pub(crate) const BATCH_SERIES: usize = 8 * 1024;
/// Rows per row group of `samples.parquet`. The writer holds a row group's pages in
/// memory until it closes (heaptrack: ~9 MiB for 1M-row groups); at 256K rows the
/// flush peaked ~10 MiB lower with the same bytes per sample.
pub(crate) const ROW_GROUP_ROWS: usize = 256 * 1024;
/// Rows per data page: small pages let a one-series read fetch little.
pub(crate) const PAGE_ROWS: usize = 8 * 1024;
pub(crate) const ZSTD_LEVEL: i32 = 9;

/// A block encoded and ready to upload: the series table in memory, the samples
/// in memory or spooled to a temporary file (deleted when this is dropped).
#[derive(Debug)]
pub struct EncodedBlock {
    pub meta: BlockMeta,
    pub series: Bytes,
    pub samples: BlockData,
}

/// Where an encoded file lives until it is uploaded.
#[derive(Debug)]
pub enum BlockData {
    Memory(Bytes),
    File(tempfile::TempPath),
}

impl BlockData {
    /// The whole file in memory (tests, tools).
    pub fn to_bytes(&self) -> Result<Bytes> {
        match self {
            BlockData::Memory(b) => Ok(b.clone()),
            BlockData::File(p) => {
                std::fs::read(p).map(Bytes::from).map_err(|e| Error::corrupt(p.display(), format!("read spool: {e}")))
            }
        }
    }
}

/// Where `samples.parquet` is written while a block is built.
pub(crate) enum Sink {
    Memory(Vec<u8>),
    File(std::io::BufWriter<tempfile::NamedTempFile>),
}

impl Sink {
    /// A temporary file in `dir` (created if missing), deleted unless uploaded.
    pub(crate) fn spool(dir: &std::path::Path) -> Result<Sink> {
        std::fs::create_dir_all(dir).map_err(|e| Error::corrupt(dir.display(), format!("spool dir: {e}")))?;
        let f = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| Error::corrupt(dir.display(), format!("spool file: {e}")))?;
        Ok(Sink::File(std::io::BufWriter::with_capacity(1 << 20, f)))
    }
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Memory(v) => v.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(_) => Ok(()),
            Sink::File(f) => f.flush(),
        }
    }
}

/// How the new block came to be (goes into `meta.json`).
#[derive(Debug, Clone)]
pub struct BlockOrigin {
    pub level: u32,
    /// Level-1 ancestors; empty for a fresh block (it becomes its own source).
    pub sources: Vec<Ulid>,
    pub parents: Vec<Ulid>,
    pub resolution: i64,
    /// HA replica labels the data was deduplicated by (recorded in `meta.json`).
    pub deduplicated_replica_labels: Vec<String>,
}

impl BlockOrigin {
    pub fn fresh() -> Self {
        BlockOrigin {
            level: 1,
            sources: Vec::new(),
            parents: Vec::new(),
            resolution: 0,
            deduplicated_replica_labels: Vec::new(),
        }
    }
}

/// Builds one block. Feed series in strictly increasing label order, each with
/// samples sorted by time and without duplicate timestamps. CPU-bound: run it off
/// the async workers.
pub struct BlockBuilder {
    tenant: String,
    series: SeriesTable,
    // samples.parquet columns, buffered up to BATCH_ROWS
    sid: Vec<u32>,
    t_res: Vec<i64>,
    mant: Vec<i64>,
    scale: Vec<i8>,
    raw: Vec<Option<f64>>,
    samples: ArrowWriter<Sink>,
    rows: u64,
    min_t: i64,
    max_t: i64,
    scratch: Vec<i64>,
    ts: Vec<i64>,
    /// Each value's own smallest decimal form, per series (reused buffer).
    enc: Vec<Option<(i64, i8)>>,
}

impl std::fmt::Debug for BlockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuilder").field("tenant", &self.tenant).field("rows", &self.rows).finish()
    }
}

pub(crate) fn props(samples: bool) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).expect("valid zstd level")))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("strata {}", env!("CARGO_PKG_VERSION")));
    if samples {
        b = b
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_data_page_row_count_limit(PAGE_ROWS)
            .set_write_batch_size(PAGE_ROWS)
            .set_dictionary_enabled(false);
        for (c, enc) in [
            (col::SERIES_ID, Encoding::DELTA_BINARY_PACKED),
            // Mostly zeros: plain bytes that zstd squeezes beat bit-packed deltas.
            (col::T_RESIDUAL, Encoding::PLAIN),
            // Byte planes of mantissas at one scale per series compress best
            // (measured on the benchmark workload: 1.16 B/sample against 1.39 for
            // delta-binary-packed mantissas at each value's own scale).
            (col::V_MANTISSA, Encoding::BYTE_STREAM_SPLIT),
            (col::V_RAW, Encoding::BYTE_STREAM_SPLIT),
        ] {
            b = b.set_column_encoding(ColumnPath::from(c), enc);
        }
        b = b.set_column_dictionary_enabled(ColumnPath::from(col::V_SCALE), true);
    }
    b.build()
}

impl BlockBuilder {
    /// A builder that keeps the whole block in memory.
    pub fn new(tenant: &str) -> Result<Self> {
        Self::with_sink(tenant, Sink::Memory(Vec::new()))
    }

    /// A builder that spools `samples.parquet` to a temporary file in `dir`, so a
    /// large block costs little memory (the file is streamed by [`upload`]).
    pub fn spooled(tenant: &str, dir: &std::path::Path) -> Result<Self> {
        Self::with_sink(tenant, Sink::spool(dir)?)
    }

    fn with_sink(tenant: &str, sink: Sink) -> Result<Self> {
        let samples = ArrowWriter::try_new(sink, format::samples_schema(), Some(props(true)))
            .map_err(|e| Error::corrupt("new block", e))?;
        Ok(BlockBuilder {
            tenant: tenant.to_string(),
            series: SeriesTable::new()?,
            sid: Vec::new(),
            t_res: Vec::new(),
            mant: Vec::new(),
            scale: Vec::new(),
            raw: Vec::new(),
            samples,
            rows: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
            scratch: Vec::new(),
            ts: Vec::new(),
            enc: Vec::new(),
        })
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    pub fn num_samples(&self) -> u64 {
        self.rows
    }

    /// Adds one series. Series without samples are skipped.
    pub fn add_series(&mut self, labels: &Labels, samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.series.check_order(labels)?;
        if samples.windows(2).any(|w| w[0].t >= w[1].t) {
            return Err(Error::corrupt("new block", format!("series {labels}: samples not strictly increasing")));
        }
        self.ts.clear();
        self.ts.extend(samples.iter().map(|s| s.t));
        let step = format::grid_step(&self.ts, &mut self.scratch);
        let start = samples[0].t;
        let id =
            self.series.push(labels, start, samples[samples.len() - 1].t, self.rows, samples.len() as u32, step)?;
        // One scale for the series: the largest any of its values needs. A value
        // with no decimal form at its own scale has none at a larger one either.
        let mut encs = std::mem::take(&mut self.enc);
        encs.clear();
        encs.extend(samples.iter().map(|s| format::encode_value(s.v)));
        let common = encs.iter().flatten().map(|&(_, k)| k).max().unwrap_or(0);
        for (i, (s, own)) in samples.iter().zip(&encs).enumerate() {
            self.sid.push(id);
            self.t_res.push(s.t - start - i as i64 * step);
            let enc = match *own {
                Some((_, k)) if k != common => format::encode_at(s.v, common).map(|m| (m, common)).or(*own),
                own => own,
            };
            match enc {
                Some((m, k)) => {
                    self.mant.push(m);
                    self.scale.push(k);
                    self.raw.push(None);
                }
                None => {
                    self.mant.push(0);
                    self.scale.push(-1);
                    self.raw.push(Some(s.v));
                }
            }
            if self.sid.len() >= BATCH_ROWS {
                self.flush_batch()?;
            }
        }
        self.enc = encs;
        self.rows += samples.len() as u64;
        self.min_t = self.min_t.min(start);
        self.max_t = self.max_t.max(samples[samples.len() - 1].t);
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.sid.is_empty() {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(std::mem::take(&mut self.sid))),
            Arc::new(Int64Array::from(std::mem::take(&mut self.t_res))),
            Arc::new(Int64Array::from(std::mem::take(&mut self.mant))),
            Arc::new(Int8Array::from(std::mem::take(&mut self.scale))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.raw))),
        ];
        let batch = RecordBatch::try_new(format::samples_schema(), cols).map_err(|e| Error::corrupt("new block", e))?;
        self.samples.write(&batch).map_err(|e| Error::corrupt("new block", e))
    }

    /// Finishes both files. `None` when no series had samples.
    pub fn finish(mut self, origin: BlockOrigin) -> Result<Option<EncodedBlock>> {
        if self.rows == 0 {
            return Ok(None);
        }
        self.flush_batch()?;
        let sink = self.samples.into_inner().map_err(|e| Error::corrupt("new block", e))?;
        finish_block(self.tenant, self.series, sink, self.rows, (self.min_t, self.max_t), origin).map(Some)
    }
}

/// The series table of a block being built: rows buffered up to [`BATCH_SERIES`].
pub(crate) struct SeriesTable {
    writer: ArrowWriter<Vec<u8>>,
    written: u32,
    labels: MapBuilder<StringBuilder, StringBuilder>,
    s_min: Vec<i64>,
    s_max: Vec<i64>,
    s_first: Vec<u64>,
    s_rows: Vec<u32>,
    s_start: Vec<i64>,
    s_step: Vec<i64>,
    last_labels: Option<Labels>,
}

impl SeriesTable {
    pub(crate) fn new() -> Result<Self> {
        let writer = ArrowWriter::try_new(Vec::new(), format::series_schema(), Some(props(false)))
            .map_err(|e| Error::corrupt("new block", e))?;
        let names = MapFieldNames { entry: "entries".into(), key: "keys".into(), value: "values".into() };
        Ok(SeriesTable {
            writer,
            written: 0,
            labels: MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new()),
            s_min: Vec::new(),
            s_max: Vec::new(),
            s_first: Vec::new(),
            s_rows: Vec::new(),
            s_start: Vec::new(),
            s_step: Vec::new(),
            last_labels: None,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.written as usize + self.s_min.len()
    }

    /// Errors unless `labels` sorts after the last series added.
    pub(crate) fn check_order(&self, labels: &Labels) -> Result<()> {
        if self.last_labels.as_ref().is_some_and(|l| l >= labels) {
            return Err(Error::corrupt("new block", format!("series {labels} out of label order")));
        }
        Ok(())
    }

    /// Adds a row (the grid origin is `min`); returns its series id.
    pub(crate) fn push(
        &mut self,
        labels: &Labels,
        min: i64,
        max: i64,
        first_row: u64,
        rows: u32,
        step: i64,
    ) -> Result<u32> {
        let id = self.len() as u32;
        for l in labels.iter() {
            self.labels.keys().append_value(&*l.name);
            self.labels.values().append_value(&*l.value);
        }
        self.labels.append(true).map_err(|e| Error::corrupt("new block", e))?;
        self.s_min.push(min);
        self.s_max.push(max);
        self.s_first.push(first_row);
        self.s_rows.push(rows);
        self.s_start.push(min);
        self.s_step.push(step);
        self.last_labels = Some(labels.clone());
        if self.s_min.len() >= BATCH_SERIES {
            self.flush()?;
        }
        Ok(id)
    }

    fn flush(&mut self) -> Result<()> {
        let n = self.s_min.len() as u32;
        if n == 0 {
            return Ok(());
        }
        let first = self.written;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(first..first + n)),
            Arc::new(self.labels.finish()),
            Arc::new(Int64Array::from(std::mem::take(&mut self.s_min))),
            Arc::new(Int64Array::from(std::mem::take(&mut self.s_max))),
            Arc::new(UInt64Array::from(std::mem::take(&mut self.s_first))),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.s_rows))),
            Arc::new(Int64Array::from(std::mem::take(&mut self.s_start))),
            Arc::new(Int64Array::from(std::mem::take(&mut self.s_step))),
        ];
        let batch = RecordBatch::try_new(format::series_schema(), cols).map_err(|e| Error::corrupt("new block", e))?;
        self.writer.write(&batch).map_err(|e| Error::corrupt("new block", e))?;
        self.written += n;
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<u8>, u32)> {
        self.flush()?;
        let n = self.written;
        Ok((self.writer.into_inner().map_err(|e| Error::corrupt("new block", e))?, n))
    }
}

/// Closes the files of a block and writes its `meta.json` document. `times` are
/// the smallest and largest timestamps held (inclusive).
pub(crate) fn finish_block(
    tenant: String,
    series: SeriesTable,
    sink: Sink,
    rows: u64,
    times: (i64, i64),
    origin: BlockOrigin,
) -> Result<EncodedBlock> {
    {
        let (samples, samples_len) = match sink {
            Sink::Memory(v) => {
                let n = v.len() as u64;
                (BlockData::Memory(v.into()), n)
            }
            Sink::File(f) => {
                let f =
                    f.into_inner().map_err(|e| Error::corrupt("new block", format!("spool flush: {}", e.error())))?;
                let n = f.as_file().metadata().map_err(|e| Error::corrupt("new block", e))?.len();
                (BlockData::File(f.into_temp_path()), n)
            }
        };
        let (series, n) = series.finish()?;
        let ulid = Ulid::new();
        let sources = if origin.sources.is_empty() { vec![ulid] } else { origin.sources };
        let meta = BlockMeta {
            version: FORMAT_VERSION,
            ulid,
            tenant,
            min_time: times.0,
            max_time: times.1 + 1,
            stats: BlockStats {
                num_series: u64::from(n),
                num_samples: rows,
                files: vec![
                    FileStat { name: BlockFile::Series.name().into(), size_bytes: series.len() as u64 },
                    FileStat { name: BlockFile::Samples.name().into(), size_bytes: samples_len },
                ],
            },
            compaction: Compaction {
                level: origin.level,
                sources,
                parents: origin.parents,
                deduplicated_replica_labels: origin.deduplicated_replica_labels,
            },
            resolution: origin.resolution,
        };
        Ok(EncodedBlock { meta, series: series.into(), samples })
    }
}

/// Part size of multipart uploads (S3 needs at least 5 MiB per part). An upload
/// runs while the head still holds the data it is cutting, so its buffers add to
/// the process's peak memory: one part filling and one in flight, 16 MiB in all.
const PART_BYTES: usize = 8 << 20;

/// Streams a file to `key`: one PUT when small, a multipart upload otherwise, with
/// at most one part in flight while the next fills (memory stays bounded whatever
/// the file size).
async fn upload_file(store: &dyn ObjectStore, key: &object_store::path::Path, file: &std::path::Path) -> Result<()> {
    use tokio::io::AsyncReadExt;
    let io = |e: std::io::Error| Error::corrupt(file.display(), format!("read spool: {e}"));
    let len = tokio::fs::metadata(file).await.map_err(io)?.len();
    if len <= PART_BYTES as u64 {
        let data = tokio::fs::read(file).await.map_err(io)?;
        store.put(key, PutPayload::from(data)).await.map_err(|e| Error::store("put", key, e))?;
        return Ok(());
    }
    let upload = store.put_multipart(key).await.map_err(|e| Error::store("put", key, e))?;
    let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let mut f = tokio::fs::File::open(file).await.map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        w.wait_for_capacity(1).await.map_err(|e| Error::store("put", key, e))?;
        w.write(&buf[..n]);
    }
    w.finish().await.map_err(|e| Error::store("put", key, e))?;
    Ok(())
}

/// Uploads a block: data files first, `meta.json` last, so readers never see a
/// partial block. Safe to repeat after a failure (same keys, same bytes).
pub async fn upload(store: &dyn ObjectStore, block: &EncodedBlock) -> Result<BlockPath> {
    let tenant = strata_model::TenantId::new(&block.meta.tenant).map_err(|e| Error::corrupt(block.meta.ulid, e))?;
    let path = BlockPath::new(tenant, block.meta.ulid);
    let key = path.file(BlockFile::Series);
    store.put(&key, PutPayload::from_bytes(block.series.clone())).await.map_err(|e| Error::store("put", &key, e))?;
    let key = path.file(BlockFile::Samples);
    match &block.samples {
        BlockData::Memory(b) => {
            store.put(&key, PutPayload::from_bytes(b.clone())).await.map_err(|e| Error::store("put", &key, e))?;
        }
        BlockData::File(p) => upload_file(store, &key, p).await?,
    }
    let meta = serde_json::to_vec_pretty(&block.meta).expect("meta serializes");
    let key = path.file(BlockFile::Meta);
    store.put(&key, PutPayload::from(meta)).await.map_err(|e| Error::store("put", &key, e))?;
    Ok(path)
}

mod aggr;
pub use aggr::AggrBlockBuilder;
