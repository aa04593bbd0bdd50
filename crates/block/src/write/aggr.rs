//! Writing a downsampled block: series of windows in label order go in, the same
//! `series.parquet` as a raw block and a `samples.parquet` of one row per window
//! come out (see `docs/format/block.md`, "Downsampled blocks").

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use strata_model::Labels;

use super::{BlockOrigin, EncodedBlock, PAGE_ROWS, ROW_GROUP_ROWS, SeriesTable, Sink, ZSTD_LEVEL, finish_block};
use crate::aggr::AggrWindow;
use crate::format::{self, col};
use crate::{Error, Result};

/// Window rows buffered before a batch goes to the Parquet writer.
const BATCH_ROWS: usize = 32 * 1024;

fn aggr_props() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).expect("valid zstd level")))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("strata {}", env!("CARGO_PKG_VERSION")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS)
        .set_dictionary_enabled(false);
    for c in [col::SERIES_ID, col::T, col::FIRST_T, col::LAST_T] {
        b = b.set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    for c in [col::SUM, col::MIN, col::MAX, col::FIRST, col::LAST, col::CORRECTION] {
        b = b.set_column_encoding(ColumnPath::from(c), Encoding::BYTE_STREAM_SPLIT);
    }
    // Mostly one value per series (samples per window; no resets).
    for c in [col::COUNT, col::RESETS] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), true);
    }
    b.build()
}

/// Builds one downsampled block of `resolution`. Feed series in strictly
/// increasing label order, each with windows in strictly increasing `t`, every
/// `t` a multiple of the resolution. CPU-bound: run it off the async workers.
pub struct AggrBlockBuilder {
    tenant: String,
    resolution: i64,
    series: SeriesTable,
    buf: Vec<(u32, AggrWindow)>,
    samples: ArrowWriter<Sink>,
    rows: u64,
    min_t: i64,
    max_t: i64,
}

impl std::fmt::Debug for AggrBlockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggrBlockBuilder")
            .field("tenant", &self.tenant)
            .field("resolution", &self.resolution)
            .field("rows", &self.rows)
            .finish()
    }
}

impl AggrBlockBuilder {
    /// A builder that keeps the block in memory.
    pub fn new(tenant: &str, resolution: i64) -> Result<Self> {
        Self::with_sink(tenant, resolution, Sink::Memory(Vec::new()))
    }

    /// A builder that spools `samples.parquet` to a temporary file in `dir`.
    pub fn spooled(tenant: &str, resolution: i64, dir: &std::path::Path) -> Result<Self> {
        Self::with_sink(tenant, resolution, Sink::spool(dir)?)
    }

    fn with_sink(tenant: &str, resolution: i64, sink: Sink) -> Result<Self> {
        if resolution <= 0 {
            return Err(Error::corrupt("new block", format!("resolution {resolution} is not a downsampled one")));
        }
        let samples = ArrowWriter::try_new(sink, format::aggr_schema(), Some(aggr_props()))
            .map_err(|e| Error::corrupt("new block", e))?;
        Ok(AggrBlockBuilder {
            tenant: tenant.to_string(),
            resolution,
            series: SeriesTable::new()?,
            buf: Vec::new(),
            samples,
            rows: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
        })
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Window rows added so far (`meta.json`'s `num_samples`).
    pub fn num_windows(&self) -> u64 {
        self.rows
    }

    /// Adds one series. Series without windows are skipped.
    pub fn add_series(&mut self, labels: &Labels, windows: &[AggrWindow]) -> Result<()> {
        let (Some(first), Some(last)) = (windows.first(), windows.last()) else { return Ok(()) };
        self.series.check_order(labels)?;
        if windows.windows(2).any(|w| w[0].t >= w[1].t) || windows.iter().any(|w| w.t % self.resolution != 0) {
            return Err(Error::corrupt("new block", format!("series {labels}: windows not aligned and increasing")));
        }
        if let Some(w) =
            windows.iter().find(|w| w.first_t > w.last_t || w.first_t < w.t || w.last_t >= w.t + self.resolution)
        {
            return Err(Error::corrupt("new block", format!("series {labels}: window {} holds times outside it", w.t)));
        }
        let id = self.series.push(labels, first.t, last.t, self.rows, windows.len() as u32, self.resolution)?;
        for w in windows {
            self.buf.push((id, *w));
            if self.buf.len() >= BATCH_ROWS {
                self.flush_batch()?;
            }
        }
        self.rows += windows.len() as u64;
        self.min_t = self.min_t.min(windows.iter().map(|w| w.first_t).min().unwrap_or(first.t));
        self.max_t = self.max_t.max(last.last_t);
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.buf);
        let f = |g: fn(&AggrWindow) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(b.iter().map(|(_, w)| g(w))))
        };
        let i = |g: fn(&AggrWindow) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(b.iter().map(|(_, w)| g(w))))
        };
        let u = |g: fn(&AggrWindow) -> u32| -> ArrayRef {
            Arc::new(UInt32Array::from_iter_values(b.iter().map(|(_, w)| g(w))))
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(b.iter().map(|(id, _)| *id))),
            i(|w| w.t),
            u(|w| w.count),
            f(|w| w.sum),
            f(|w| w.min),
            f(|w| w.max),
            i(|w| w.first_t),
            f(|w| w.first),
            i(|w| w.last_t),
            f(|w| w.last),
            u(|w| w.resets),
            f(|w| w.correction),
            Arc::new(BooleanArray::from_iter(b.iter().map(|(_, w)| Some(w.stale_end)))),
        ];
        let batch = RecordBatch::try_new(format::aggr_schema(), cols).map_err(|e| Error::corrupt("new block", e))?;
        self.samples.write(&batch).map_err(|e| Error::corrupt("new block", e))
    }

    /// Finishes both files. `None` when no series had windows. `origin.resolution`
    /// is replaced by the builder's.
    pub fn finish(mut self, mut origin: BlockOrigin) -> Result<Option<EncodedBlock>> {
        if self.rows == 0 {
            return Ok(None);
        }
        self.flush_batch()?;
        origin.resolution = self.resolution;
        let sink = self.samples.into_inner().map_err(|e| Error::corrupt("new block", e))?;
        finish_block(self.tenant, self.series, sink, self.rows, (self.min_t, self.max_t), origin).map(Some)
    }
}
