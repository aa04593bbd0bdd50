//! Entry points for the fuzz targets in `fuzz/`; not a stable API. Each function
//! runs the real parsing code on untrusted bytes and uses the result the way the
//! bucket and the tools do; it panics only when that code does.

use crate::meta::{BlockMeta, DeletionMark, NoCompactMark};
use crate::paths::BlockPath;

/// `meta.json`, `deletion-mark.json` and `no-compact-mark.json` from the same
/// bytes, and the bytes as an object key. A document that parses is used as a
/// listing uses it and survives a serialize/parse round trip unchanged.
pub fn meta_and_markers(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<BlockMeta>(data) {
        let _ = m.data_bytes();
        let _ = m.file_size("samples.parquet");
        let _ = m.overlaps(m.min_time, m.max_time);
        let _ = m.overlaps(i64::MIN, i64::MAX);
        round_trip(&m);
    }
    if let Ok(m) = serde_json::from_slice::<DeletionMark>(data) {
        round_trip(&m);
    }
    if let Ok(m) = serde_json::from_slice::<NoCompactMark>(data) {
        round_trip(&m);
    }
    if let Ok(key) = std::str::from_utf8(data)
        && let Some((path, file)) = BlockPath::parse(&object_store::path::Path::from(key))
    {
        let again = match file {
            Some(f) => path.file(f),
            None => path.dir(),
        };
        assert_eq!(BlockPath::parse(&again), Some((path, file)), "block key does not round-trip");
    }
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(m: &T) {
    let s = serde_json::to_vec_pretty(m).expect("serializes");
    let back: T = serde_json::from_slice(&s).expect("what was written parses");
    assert_eq!(&back, m, "serialize/parse round trip changed the document");
}
