//! The in-memory head of one tenant: a series registry, postings per label pair, and
//! samples held in compressed XOR chunks.
//!
//! ```text
//!   labels ──hash──► by_hash ──► series id ──► MemSeries { labels: [(name, value) symbol ids],
//!                                                          closed: [Arc<[u8]> XOR chunks],
//!                                                          open: XorAppender, ooo: [Sample] }
//!   (name, value) ──► postings: RoaringBitmap of series ids   (matchers resolve here)
//! ```
//!
//! Writers hold the write lock only to check ordering and append; readers copy chunk
//! handles under the read lock and decode outside it.

pub(crate) mod append;
mod cardinality;
pub(crate) mod cut;
mod read;
pub(crate) mod spill;
mod symbols;

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use parking_lot::RwLock;
use roaring::RoaringBitmap;

pub use append::{AppendOutcome, RejectReason, SeriesInput};
pub use cardinality::{Cardinality, CardinalityStat};
pub use read::HeadQuerier;
use symbols::Symbols;

use crate::chunk::XorAppender;
use spill::ChunkData;
use strata_model::{Sample, TenantId};

/// Metric metadata as remote write carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown.
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// A closed, immutable chunk, in memory or spilled to a file.
#[derive(Debug, Clone)]
pub(crate) struct ClosedChunk {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) data: ChunkData,
}

#[derive(Debug)]
pub(crate) struct MemSeries {
    /// (name, value) symbol ids, sorted by name string.
    pub(crate) labels: Box<[(u32, u32)]>,
    pub(crate) closed: Vec<ClosedChunk>,
    pub(crate) open: XorAppender,
    pub(crate) open_min_t: i64,
    /// Accepted out-of-order samples, sorted by time (empty unless a window is set).
    pub(crate) ooo: Vec<Sample>,
    pub(crate) first_t: i64,
    pub(crate) last_t: i64,
    /// Value of the newest in-order sample (for the duplicate check).
    pub(crate) last_v: f64,
}

impl MemSeries {
    fn new(labels: Box<[(u32, u32)]>) -> Self {
        MemSeries {
            labels,
            closed: Vec::new(),
            open: XorAppender::new(),
            open_min_t: i64::MAX,
            ooo: Vec::new(),
            first_t: i64::MAX,
            last_t: i64::MIN,
            last_v: 0.0,
        }
    }

    pub(crate) fn overlaps(&self, min: i64, max: i64) -> bool {
        self.first_t <= max && self.last_t >= min
    }
}

#[derive(Debug, Default)]
pub(crate) struct HeadInner {
    pub(crate) symbols: Symbols,
    /// Series slots by id. Slots of garbage-collected series are empty and their
    /// ids reused (see `cut.rs`).
    pub(crate) series: Vec<MemSeries>,
    /// Ids of the series that exist.
    pub(crate) live: RoaringBitmap,
    /// Ids of garbage-collected series, reused by the next new ones.
    pub(crate) free_ids: Vec<u32>,
    /// 128-bit label-set hash to series id. With 128 bits a collision among even
    /// 10^9 series has probability about 10^-21, so a hit is taken as the series
    /// without comparing labels (which would chase three pointers per label).
    pub(crate) by_hash: HashMap<u128, u32, BuildHasherDefault<PrehashedKey>>,
    /// Reused buffer for hashing incoming label sets.
    pub(crate) scratch: Vec<u8>,
    /// name symbol → value symbol → series ids.
    pub(crate) postings: HashMap<u32, HashMap<u32, RoaringBitmap>>,
    pub(crate) metadata: BTreeMap<String, Metadata>,
    pub(crate) samples: u64,
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    /// Samples older than this are refused unless the out-of-order window admits them.
    pub(crate) cut_floor: i64,
    /// Blocks may hold samples older than this (the end of the newest cut); newer
    /// samples are only in the head.
    pub(crate) cut_before: i64,
}

/// One tenant's in-memory head.
#[derive(Debug)]
pub struct Head {
    tenant: TenantId,
    pub(crate) inner: RwLock<HeadInner>,
}

/// Size figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadStats {
    pub series: u64,
    pub samples: u64,
    pub chunks: u64,
    /// Bytes of chunks held in memory.
    pub chunk_bytes: u64,
    /// Bytes of closed chunks spilled to head chunk files.
    pub spilled_chunk_bytes: u64,
    pub symbols: u64,
    pub min_t: i64,
    pub max_t: i64,
}

impl Head {
    pub fn new(tenant: TenantId) -> Self {
        Head {
            tenant,
            inner: RwLock::new(HeadInner {
                min_t: i64::MAX,
                max_t: i64::MIN,
                cut_floor: i64::MIN,
                cut_before: i64::MIN,
                ..Default::default()
            }),
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Samples at or after this time were never cut into blocks by this head
    /// (`i64::MIN` before the first cut): queries of newer data need no bucket.
    pub fn cut_before(&self) -> i64 {
        self.inner.read().cut_before
    }

    /// Metadata per metric family, sorted by family name.
    pub fn metadata(&self) -> BTreeMap<String, Metadata> {
        self.inner.read().metadata.clone()
    }

    pub fn stats(&self) -> HeadStats {
        let g = self.inner.read();
        let mut s = HeadStats {
            series: g.live.len(),
            samples: g.samples,
            symbols: g.symbols.len() as u64,
            min_t: g.min_t,
            max_t: g.max_t,
            ..Default::default()
        };
        for m in g.live.iter().map(|id| &g.series[id as usize]) {
            s.chunks += m.closed.len() as u64 + u64::from(!m.open.is_empty());
            for c in &m.closed {
                if c.data.in_memory() {
                    s.chunk_bytes += c.data.len() as u64;
                } else {
                    s.spilled_chunk_bytes += c.data.len() as u64;
                }
            }
            s.chunk_bytes += m.open.bytes().len() as u64;
        }
        s
    }
}

/// The 128-bit hash of a sorted label set: xxh3-128 over `name 0xff value 0xff ...`,
/// computed in one shot over `scratch` (much cheaper than streaming small pieces).
pub(crate) fn hash_pairs(scratch: &mut Vec<u8>, pairs: &[(&str, &str)]) -> u128 {
    scratch.clear();
    for (n, v) in pairs {
        scratch.extend_from_slice(n.as_bytes());
        scratch.push(0xff);
        scratch.extend_from_slice(v.as_bytes());
        scratch.push(0xff);
    }
    xxhash_rust::xxh3::xxh3_128(scratch)
}

/// A `Hasher` for keys that already are uniformly distributed hashes: folds the
/// 128-bit key to 64 bits instead of hashing it again.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrehashedKey(u64);

impl std::hash::Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-u128 keys, which this hasher is not used with; stay
        // correct anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, k: u128) {
        self.0 = (k as u64) ^ ((k >> 64) as u64);
    }
}
