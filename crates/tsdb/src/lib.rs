//! Strata's local durable ingest path: every accepted sample goes to the write-ahead
//! log before it is acknowledged, and lives in a compressed in-memory head per tenant
//! until it is cut into blocks.
//!
//! ```text
//!                 ┌───────────────────── Tsdb ──────────────────────┐
//!  remote write ─►│ head (per tenant): series, postings, XOR chunks │─► HeadQuerier ─► queries
//!                 │        │ records (series, samples, metadata)     │
//!                 │        ▼                                         │
//!                 │ wal/: 00000001 00000002 …  (group-commit fsync)  │
//!                 └──────────────────────────────────────────────────┘
//!  flush: head ranges past block_range + grace ─► Parquet block ─► object store
//!         ─► head truncated ─► WAL checkpoint (series, metadata) ─► old segments deleted
//!  restart: wal/ checkpoint + segments ──replay──► heads rebuilt (torn tail cut off and logged)
//! ```

pub mod chunk;
mod db;
mod error;
mod flush;
/// Entry points for the fuzz targets in fuzz/; not a stable API.
#[doc(hidden)]
pub mod fuzzing;
pub mod head;
mod lock;
pub mod wal;

pub use db::{DEFAULT_CREATION_GRACE_MS, IngestStats, Tsdb, TsdbOptions};
pub use error::{Error, ErrorKind, Result};
pub use flush::{CutPolicy, run_flusher, run_spiller};
pub use head::{
    AppendOutcome, Cardinality, CardinalityStat, Head, HeadQuerier, HeadStats, Metadata, RejectReason, SeriesInput,
};
pub use lock::{DirLock, LOCK_FILE};
pub use wal::{FsyncPolicy, MetadataEntry, WalOptions, WalStats};
