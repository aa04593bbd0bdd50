//! `meta.json` and the marker files: small versioned JSON documents. A block is
//! immutable once its `meta.json` exists; state changes are new marker objects.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// The version of the block layout this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Raw data: samples as ingested.
pub const RESOLUTION_RAW: i64 = 0;
/// Downsampled to five-minute windows (ms).
pub const RESOLUTION_5M: i64 = 300_000;
/// Downsampled to one-hour windows (ms).
pub const RESOLUTION_1H: i64 = 3_600_000;

/// What a block holds. Written last, so its presence means the block is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Layout version ([`FORMAT_VERSION`]).
    pub version: u32,
    pub ulid: Ulid,
    /// Tenant the data belongs to (also the first path segment).
    pub tenant: String,
    /// Earliest sample timestamp (ms, inclusive).
    pub min_time: i64,
    /// One past the latest sample timestamp (ms, exclusive), as in Prometheus blocks.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: Compaction,
    /// Sample resolution in ms: 0 for raw data, else the window length of a
    /// downsampled block. Absent in old files: raw.
    #[serde(default)]
    pub resolution: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    pub num_series: u64,
    pub num_samples: u64,
    /// Data files and their sizes in bytes (meta.json itself excluded).
    pub files: Vec<FileStat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub name: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// 1 for a block cut from the head; one more than the highest input after a merge.
    pub level: u32,
    /// The level-1 blocks whose data this block holds (itself, for a level-1 block).
    pub sources: Vec<Ulid>,
    /// The blocks merged into this one (empty for a level-1 block).
    #[serde(default)]
    pub parents: Vec<Ulid>,
    /// HA replica labels removed by offline deduplication: series that differed
    /// only in them were merged into one (empty: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deduplicated_replica_labels: Vec<String>,
}

impl BlockMeta {
    /// Total bytes of the block's data files.
    pub fn data_bytes(&self) -> u64 {
        self.stats.files.iter().map(|f| f.size_bytes).sum()
    }

    pub fn file_size(&self, name: &str) -> Option<u64> {
        self.stats.files.iter().find(|f| f.name == name).map(|f| f.size_bytes)
    }

    /// Whether the block holds raw samples (not downsampled aggregates).
    pub fn is_raw(&self) -> bool {
        self.resolution == RESOLUTION_RAW
    }

    /// Whether the block holds data in `[start, end]` (both inclusive, as queries are).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_time <= end && self.max_time > start
    }
}

/// `deletion-mark.json`: the block is replaced or expired and will be deleted once
/// `deletion_time` is older than the configured delay (queries in flight finish first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionMark {
    pub version: u32,
    pub id: Ulid,
    /// Unix seconds when the mark was written.
    pub deletion_time: i64,
    pub reason: String,
}

/// `no-compact-mark.json`: compaction leaves this block alone (it could not be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoCompactMark {
    pub version: u32,
    pub id: Ulid,
    /// Unix seconds when the mark was written.
    pub no_compact_time: i64,
    pub reason: String,
}

pub const MARKER_VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_json_round_trips_and_has_stable_field_names() {
        let m = BlockMeta {
            version: FORMAT_VERSION,
            ulid: Ulid::from_parts(1, 2),
            tenant: "t".into(),
            min_time: 0,
            max_time: 7_200_000,
            stats: BlockStats {
                num_series: 2,
                num_samples: 10,
                files: vec![FileStat { name: "samples.parquet".into(), size_bytes: 99 }],
            },
            compaction: Compaction {
                level: 1,
                sources: vec![Ulid::from_parts(1, 2)],
                parents: vec![],
                deduplicated_replica_labels: vec![],
            },
            resolution: RESOLUTION_RAW,
        };
        let s = serde_json::to_string(&m).unwrap();
        for k in ["\"min_time\":0", "\"max_time\":7200000", "\"num_samples\":10", "\"level\":1", "\"version\":1"] {
            assert!(s.contains(k), "{k} missing in {s}");
        }
        assert_eq!(serde_json::from_str::<BlockMeta>(&s).unwrap(), m);
        assert!(m.overlaps(7_199_999, 8_000_000));
        assert!(!m.overlaps(7_200_000, 8_000_000));
    }

    #[test]
    fn meta_json_without_resolution_is_raw() {
        let s = r#"{"version":1,"ulid":"01JDZ3N5V0Q8M3X2Y7K4T6R9AB","tenant":"t","min_time":0,"max_time":1,
            "stats":{"num_series":1,"num_samples":1,"files":[]},"compaction":{"level":1,"sources":[]}}"#;
        let m: BlockMeta = serde_json::from_str(s).unwrap();
        assert_eq!(m.resolution, RESOLUTION_RAW);
        assert!(m.is_raw());
    }
}
