//! The Parquet block format and its object-storage protocol.
//!
//! A block is an immutable directory `<tenant>/<ULID>/` holding two standard Parquet
//! files and a `meta.json` written last (see `docs/format/block.md`).
//!
//! ```text
//!   series (label order) ─► BlockBuilder ─► series.parquet + samples.parquet + meta
//!                        ─► upload: data files, then meta.json ─► object store
//!   Bucket: list ─► complete blocks + markers ─► BlockIndex cache (postings, footers)
//!         ─► BlockQuerier: prune by time ─► postings ─► row selection ─► page reads
//! ```

/// The window math of downsampled blocks (in `strata-model`, shared with the engine).
pub use strata_model::aggr;
mod bucket;
mod error;
mod format;
/// Entry points for the fuzz targets in fuzz/; not a stable API.
#[doc(hidden)]
pub mod fuzzing;
mod meta;
mod paths;
mod postings;
mod read;
mod resolution;
mod store;
mod write;

#[cfg(test)]
mod tests;

pub use aggr::{AggrSeries, AggrWindow};
pub use bucket::{BlockInfo, BlockQuerier, BlockScan, Bucket, BucketOptions, merge_aggr};
pub use error::{Error, ErrorKind, Result};
pub use meta::{
    BlockMeta, BlockStats, Compaction, DeletionMark, FORMAT_VERSION, FileStat, MARKER_VERSION, NoCompactMark,
    RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW,
};
pub use paths::{BlockFile, BlockPath};
pub use postings::Postings;
pub use read::{BlockIndex, IndexSeries, decode_aggr_block, decode_block, read_aggr_block, read_block};
pub use resolution::{Span, plan_spans};
pub use store::{MeteredStore, ObjStoreConfig, StoreKind, StoreSettings, StoreStats};
pub use write::{AggrBlockBuilder, BlockBuilder, BlockData, BlockOrigin, EncodedBlock, upload};

pub use object_store::ObjectStore;
