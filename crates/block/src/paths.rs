//! Typed object keys. Every object Strata writes has one of these shapes:
//!
//! ```text
//!   <tenant>/<block ULID>/meta.json             written last: the block exists once this does
//!   <tenant>/<block ULID>/series.parquet        one row per series (labels, row span)
//!   <tenant>/<block ULID>/samples.parquet       one row per sample, sorted by series then time
//!   <tenant>/<block ULID>/deletion-mark.json    block replaced or expired; deleted after a delay
//!   <tenant>/<block ULID>/no-compact-mark.json  compaction skips this block
//! ```

use object_store::path::Path;
use strata_model::TenantId;
use ulid::Ulid;

/// The files of a block directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockFile {
    Meta,
    Series,
    Samples,
    DeletionMark,
    NoCompactMark,
}

impl BlockFile {
    pub const ALL: [BlockFile; 5] =
        [BlockFile::Meta, BlockFile::Series, BlockFile::Samples, BlockFile::DeletionMark, BlockFile::NoCompactMark];

    /// The data files every complete block has besides `meta.json`.
    pub const DATA: [BlockFile; 2] = [BlockFile::Series, BlockFile::Samples];

    pub fn name(self) -> &'static str {
        match self {
            BlockFile::Meta => "meta.json",
            BlockFile::Series => "series.parquet",
            BlockFile::Samples => "samples.parquet",
            BlockFile::DeletionMark => "deletion-mark.json",
            BlockFile::NoCompactMark => "no-compact-mark.json",
        }
    }

    pub fn from_name(name: &str) -> Option<BlockFile> {
        BlockFile::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The directory of one block: `<tenant>/<ULID>/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockPath {
    pub tenant: TenantId,
    pub id: Ulid,
}

impl BlockPath {
    pub fn new(tenant: TenantId, id: Ulid) -> Self {
        BlockPath { tenant, id }
    }

    /// The prefix holding every block of `tenant`.
    pub fn tenant_prefix(tenant: &TenantId) -> Path {
        Path::from(tenant.as_str())
    }

    pub fn dir(&self) -> Path {
        Path::from_iter([self.tenant.as_str(), &self.id.to_string()])
    }

    pub fn file(&self, f: BlockFile) -> Path {
        Path::from_iter([self.tenant.as_str(), &self.id.to_string(), f.name()])
    }

    /// Parses `<tenant>/<ULID>/<file>`; `None` for any other key (foreign objects in
    /// the bucket are ignored, not errors).
    pub fn parse(key: &Path) -> Option<(BlockPath, Option<BlockFile>)> {
        let parts: Vec<String> = key.parts().map(|p| p.as_ref().to_owned()).collect();
        let (tenant, id, file) = match parts.as_slice() {
            [t, id] => (t, id, None),
            [t, id, f] => (t, id, Some(BlockFile::from_name(f)?)),
            _ => return None,
        };
        let tenant = TenantId::new(tenant).ok()?;
        let id = Ulid::from_string(id).ok()?;
        Some((BlockPath { tenant, id }, file))
    }
}

impl std::fmt::Display for BlockPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant.as_str(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let b = BlockPath::new(TenantId::new("team-a").unwrap(), Ulid::from_parts(1_700_000_000_000, 42));
        for f in BlockFile::ALL {
            let key = b.file(f);
            assert_eq!(BlockPath::parse(&key), Some((b.clone(), Some(f))), "{key}");
        }
        assert_eq!(BlockPath::parse(&b.dir()), Some((b.clone(), None)));
        assert_eq!(b.file(BlockFile::Meta).as_ref(), format!("team-a/{}/meta.json", b.id));
    }

    #[test]
    fn foreign_keys_are_not_blocks() {
        for k in ["team-a/not-a-ulid/meta.json", "team-a", "a/b/c/d", "team-a/01ARZ3NDEKTSV4RRFFQ69G5FAV/other.txt"] {
            assert_eq!(BlockPath::parse(&Path::from(k)), None, "{k}");
        }
    }
}
