//! The bucket as readers and maintainers see it: block listing (complete blocks
//! only, with their markers), a memory-bounded cache of block indexes, and a
//! [`Querier`] over one tenant's blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strata_model::{Matcher, Querier, SelectHints, Series, TenantId, TimeRange, WindowedSeries};
use ulid::Ulid;

use crate::aggr::{AggrSeries, AggrWindow};
use crate::meta::{BlockMeta, DeletionMark, NoCompactMark, RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW};
use crate::paths::{BlockFile, BlockPath};
use crate::postings::Postings;
use crate::read::BlockIndex;
use crate::resolution::{Span, plan_spans};
use crate::{Error, Result};

/// Reader settings.
#[derive(Debug, Clone)]
pub struct BucketOptions {
    /// Memory budget for cached block indexes (series tables, postings, footers).
    pub index_cache_bytes: usize,
    /// How long a block listing is reused before the bucket is listed again.
    /// Changes made through this `Bucket` are seen at once.
    pub list_ttl: Duration,
}

impl Default for BucketOptions {
    fn default() -> Self {
        BucketOptions { index_cache_bytes: 512 << 20, list_ttl: Duration::from_secs(30) }
    }
}

/// A complete block (its `meta.json` exists) and its markers.
#[derive(Debug, Clone)]
pub struct BlockInfo {
    pub path: BlockPath,
    pub meta: BlockMeta,
    pub deletion_mark: Option<DeletionMark>,
    pub no_compact: Option<NoCompactMark>,
}

/// Everything found under one block directory, complete or not (for `verify`
/// and garbage collection).
#[derive(Debug, Clone)]
pub struct BlockScan {
    pub path: BlockPath,
    /// Files present, with sizes.
    pub files: BTreeMap<BlockFile, u64>,
    /// The newest modification time among the files (Unix ms).
    pub last_modified: i64,
    /// The parsed `meta.json`, or why it could not be read.
    pub meta: Option<std::result::Result<BlockMeta, String>>,
}

#[derive(Debug, Default)]
struct IndexCache {
    entries: HashMap<Ulid, (Arc<BlockIndex>, u64)>,
    bytes: usize,
    tick: u64,
}

/// A tenant's block listing and when it was taken.
type Listing = (Instant, Arc<Vec<BlockInfo>>);

/// Shared handle on the bucket.
#[derive(Debug)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    opts: BucketOptions,
    metas: Mutex<HashMap<Ulid, BlockMeta>>,
    listings: Mutex<HashMap<TenantId, Listing>>,
    indexes: Mutex<IndexCache>,
}

async fn get_json<T: DeserializeOwned>(store: &dyn ObjectStore, key: &object_store::path::Path) -> Result<T> {
    let bytes = store.get(key).await.map_err(|e| Error::store("get", key, e))?;
    let bytes = bytes.bytes().await.map_err(|e| Error::store("get", key, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(key, e))
}

impl Bucket {
    pub fn new(store: Arc<dyn ObjectStore>, opts: BucketOptions) -> Arc<Bucket> {
        Arc::new(Bucket { store, opts, metas: Mutex::default(), listings: Mutex::default(), indexes: Mutex::default() })
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Tenants with at least one object in the bucket.
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        let r = self.store.list_with_delimiter(None).await.map_err(|e| Error::store("list", "/", e))?;
        let mut out: Vec<TenantId> =
            r.common_prefixes.iter().filter_map(|p| TenantId::new(p.filename().unwrap_or_default()).ok()).collect();
        out.sort();
        Ok(out)
    }

    /// Every block directory of `tenant`, complete or not, sorted by ULID.
    pub async fn scan(&self, tenant: &TenantId) -> Result<Vec<BlockScan>> {
        let prefix = BlockPath::tenant_prefix(tenant);
        let objects: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await.map_err(|e| Error::store("list", &prefix, e))?;
        let mut dirs: BTreeMap<Ulid, BlockScan> = BTreeMap::new();
        for o in objects {
            let Some((path, Some(file))) = BlockPath::parse(&o.location) else { continue };
            if &path.tenant != tenant {
                continue;
            }
            let e = dirs.entry(path.id).or_insert_with(|| BlockScan {
                path,
                files: BTreeMap::new(),
                last_modified: 0,
                meta: None,
            });
            e.files.insert(file, o.size);
            e.last_modified = e.last_modified.max(o.last_modified.timestamp_millis());
        }
        for scan in dirs.values_mut() {
            if scan.files.contains_key(&BlockFile::Meta) {
                scan.meta = Some(self.meta(&scan.path).await.map_err(|e| e.to_string()));
            }
        }
        Ok(dirs.into_values().collect())
    }

    async fn meta(&self, path: &BlockPath) -> Result<BlockMeta> {
        if let Some(m) = self.metas.lock().get(&path.id) {
            return Ok(m.clone());
        }
        let m: BlockMeta = get_json(&*self.store, &path.file(BlockFile::Meta)).await?;
        if m.ulid != path.id {
            return Err(Error::corrupt(path, format!("meta.json names block {}", m.ulid)));
        }
        self.metas.lock().insert(path.id, m.clone());
        Ok(m)
    }

    /// The complete blocks of `tenant` with their markers, sorted by min time.
    /// Reused for [`BucketOptions::list_ttl`]. Blocks whose `meta.json` cannot be
    /// read are logged and left out.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<Arc<Vec<BlockInfo>>> {
        if let Some((at, l)) = self.listings.lock().get(tenant)
            && at.elapsed() < self.opts.list_ttl
        {
            return Ok(l.clone());
        }
        let mut out = Vec::new();
        for scan in self.scan(tenant).await? {
            let meta = match scan.meta {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(block = %scan.path, error = %e, "unreadable meta.json, block skipped");
                    continue;
                }
                None => continue,
            };
            let deletion_mark = if scan.files.contains_key(&BlockFile::DeletionMark) {
                get_json(&*self.store, &scan.path.file(BlockFile::DeletionMark)).await.ok()
            } else {
                None
            };
            let no_compact = if scan.files.contains_key(&BlockFile::NoCompactMark) {
                get_json(&*self.store, &scan.path.file(BlockFile::NoCompactMark)).await.ok()
            } else {
                None
            };
            out.push(BlockInfo { path: scan.path, meta, deletion_mark, no_compact });
        }
        out.sort_by_key(|b| (b.meta.min_time, b.meta.ulid));
        let out = Arc::new(out);
        self.listings.lock().insert(tenant.clone(), (Instant::now(), out.clone()));
        Ok(out)
    }

    /// Forgets the cached listing of `tenant` (after this process changed it).
    pub fn invalidate(&self, tenant: &TenantId) {
        self.listings.lock().remove(tenant);
    }

    /// Writes a marker file into a block directory.
    pub async fn put_marker<T: Serialize>(&self, path: &BlockPath, file: BlockFile, marker: &T) -> Result<()> {
        let key = path.file(file);
        let body = serde_json::to_vec_pretty(marker).expect("marker serializes");
        self.store.put(&key, PutPayload::from(body)).await.map_err(|e| Error::store("put", &key, e))?;
        self.invalidate(&path.tenant);
        Ok(())
    }

    /// Deletes every object of a block, `meta.json` first so that readers stop
    /// seeing the block before its data goes.
    pub async fn delete_block(&self, path: &BlockPath) -> Result<()> {
        for f in BlockFile::ALL {
            let key = path.file(f);
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store("delete", &key, e)),
            }
        }
        self.metas.lock().remove(&path.id);
        let mut c = self.indexes.lock();
        if let Some((ix, _)) = c.entries.remove(&path.id) {
            c.bytes -= ix.mem_bytes();
        }
        drop(c);
        self.invalidate(&path.tenant);
        Ok(())
    }

    /// The index of a block, from the cache or loaded (and cached within budget).
    pub async fn index(&self, b: &BlockInfo) -> Result<Arc<BlockIndex>> {
        {
            let mut c = self.indexes.lock();
            c.tick += 1;
            let tick = c.tick;
            if let Some(e) = c.entries.get_mut(&b.meta.ulid) {
                e.1 = tick;
                return Ok(e.0.clone());
            }
        }
        let ix = Arc::new(BlockIndex::load(self.store.clone(), b.path.clone(), b.meta.clone()).await?);
        let mut c = self.indexes.lock();
        c.tick += 1;
        let tick = c.tick;
        if c.entries.insert(b.meta.ulid, (ix.clone(), tick)).is_none() {
            c.bytes += ix.mem_bytes();
        }
        while c.bytes > self.opts.index_cache_bytes && c.entries.len() > 1 {
            let Some((&victim, _)) = c.entries.iter().filter(|(id, _)| **id != b.meta.ulid).min_by_key(|(_, e)| e.1)
            else {
                break;
            };
            if let Some((old, _)) = c.entries.remove(&victim) {
                c.bytes -= old.mem_bytes();
            }
        }
        Ok(ix)
    }

    /// Bytes of block indexes held in memory.
    pub fn cached_index_bytes(&self) -> usize {
        self.indexes.lock().bytes
    }

    pub fn querier(self: &Arc<Self>, tenant: TenantId) -> BlockQuerier {
        BlockQuerier { bucket: self.clone(), tenant }
    }
}

/// Rows above which a block read runs on a blocking thread rather than inline.
const INLINE_READ_ROWS: u64 = 64 * 1024;

/// A [`Querier`] over the live (unmarked) blocks of one tenant. Overlapping blocks
/// are merged and identical timestamps deduplicated.
#[derive(Debug, Clone)]
pub struct BlockQuerier {
    bucket: Arc<Bucket>,
    tenant: TenantId,
}

impl BlockQuerier {
    /// Live raw blocks overlapping `range`: the [`Querier`] reads raw data only.
    async fn live(&self, range: TimeRange) -> Result<Vec<BlockInfo>> {
        self.live_at(RESOLUTION_RAW, range).await
    }

    async fn live_at(&self, resolution: i64, range: TimeRange) -> Result<Vec<BlockInfo>> {
        let blocks = self.bucket.blocks(&self.tenant).await?;
        Ok(blocks
            .iter()
            .filter(|b| {
                b.deletion_mark.is_none() && b.meta.resolution == resolution && b.meta.overlaps(range.start, range.end)
            })
            .cloned()
            .collect())
    }

    /// The live blocks of `resolution` overlapping `range` (inclusive), sorted by
    /// min time: which time spans that resolution covers, for a caller choosing
    /// resolutions per time range.
    pub async fn blocks_at(&self, resolution: i64, range: TimeRange) -> Result<Vec<BlockMeta>> {
        Ok(self.live_at(resolution, range).await?.into_iter().map(|b| b.meta).collect())
    }

    /// The aggregates of the series matching `matchers` at `resolution`
    /// ([`RESOLUTION_5M`](crate::RESOLUTION_5M) or
    /// [`RESOLUTION_1H`](crate::RESOLUTION_1H)), windows overlapping `range`
    /// (`t + resolution > range.start`, `t <= range.end`), from the live
    /// downsampled blocks of that resolution. Series come in label order, windows
    /// in time order; a window present in several blocks (overlapping copies) is
    /// taken once, from the block with the earliest `(min_time, ulid)`. Empty when
    /// the resolution has no blocks there (the caller falls back to finer data).
    pub async fn select_aggr(
        &self,
        resolution: i64,
        range: TimeRange,
        matchers: &[Matcher],
    ) -> Result<Vec<AggrSeries>> {
        if resolution == RESOLUTION_RAW {
            return Err(Error::Config("select_aggr needs a downsampled resolution".into()));
        }
        let blocks = self.live_at(resolution, range).await?;
        let sets =
            futures::future::try_join_all(blocks.into_iter().map(|b| self.select_aggr_block(b, range, matchers)))
                .await?;
        Ok(merge_aggr(sets))
    }

    async fn select_aggr_block(&self, b: BlockInfo, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<AggrSeries>> {
        let ix = self.bucket.index(&b).await?;
        // Series bounds are window starts: widen so a window ending inside the range counts.
        let widened = TimeRange { start: range.start.saturating_sub(b.meta.resolution - 1), end: range.end };
        let ids: Vec<u32> = ix.in_range(ix.resolve(matchers), widened).into_iter().collect();
        let rows: u64 = ids.iter().map(|&i| u64::from(ix.series[i as usize].rows)).sum();
        let store = self.bucket.store().clone();
        if rows <= INLINE_READ_ROWS {
            return ix.read_aggr(store, &ids, range).await;
        }
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(ix.read_aggr(store, &ids, range)))
            .await
            .map_err(|e| Error::corrupt(&b.path, e))?
    }

    /// [`Querier::select_windows`]: raw samples for the spans
    /// [`plan_spans`] gives raw, windows of the live copies for the others.
    async fn windows(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<WindowedSeries>> {
        let all = self.bucket.blocks(&self.tenant).await?;
        // Windows up to two of the coarsest resolution before the range may be read.
        let reach = TimeRange::new(hints.range.start.saturating_sub(2 * RESOLUTION_1H), hints.range.end);
        let live: Vec<&BlockInfo> =
            all.iter().filter(|b| b.deletion_mark.is_none() && b.meta.overlaps(reach.start, reach.end)).collect();
        let metas: Vec<&BlockMeta> = live.iter().map(|b| &b.meta).collect();
        let spans = plan_spans(hints.range.start, hints.range.end, hints.max_resolution, &metas);
        let raw: Vec<Span> = spans.iter().copied().filter(|s| s.resolution == RESOLUTION_RAW).collect();
        if raw.len() == spans.len() {
            let series = self.select_in(self.live(hints.range).await?, hints, matchers).await?;
            return Ok(series.into_iter().map(WindowedSeries::from).collect());
        }
        let mut parts = Vec::new();
        if !raw.is_empty() {
            let blocks: Vec<BlockInfo> = live
                .iter()
                .filter(|b| b.meta.is_raw() && raw.iter().any(|s| b.meta.overlaps(s.start, s.end - 1)))
                .map(|b| (*b).clone())
                .collect();
            let hull = TimeRange::new(raw[0].start, raw[raw.len() - 1].end - 1);
            let mut series = self.select_in(blocks, &SelectHints { range: hull, ..hints.clone() }, matchers).await?;
            for s in &mut series {
                s.samples.retain(|x| raw.iter().any(|sp| x.t >= sp.start && x.t < sp.end));
            }
            series.retain(|s| !s.samples.is_empty());
            parts.push(series.into_iter().map(WindowedSeries::from).collect());
        }
        for res in [RESOLUTION_5M, RESOLUTION_1H] {
            let mut mine: Vec<Span> = spans.iter().copied().filter(|s| s.resolution == res).collect();
            let Some(first) = mine.first_mut() else { continue };
            if first.start == hints.range.start {
                first.start = first.start.saturating_sub(2 * res);
            }
            let hull = TimeRange::new(mine[0].start, mine[mine.len() - 1].end - 1);
            let mut got = self.select_aggr(res, hull, matchers).await?;
            for s in &mut got {
                s.windows.retain(|w| mine.iter().any(|sp| w.last_t >= sp.start && w.last_t < sp.end));
            }
            parts.push(
                got.into_iter()
                    .filter(|s| !s.windows.is_empty())
                    .map(|s| WindowedSeries {
                        labels: s.labels,
                        samples: Vec::new(),
                        windows: s.windows,
                        resolution: res,
                    })
                    .collect(),
            );
        }
        Ok(WindowedSeries::merge(parts))
    }

    async fn select_in(
        &self,
        blocks: Vec<BlockInfo>,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Vec<Series>> {
        let sets =
            futures::future::try_join_all(blocks.into_iter().map(|b| self.select_block(b, hints, matchers))).await?;
        Ok(strata_model::merge_series(sets))
    }

    async fn select_block(&self, b: BlockInfo, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>> {
        let ix = self.bucket.index(&b).await?;
        let ids: Vec<u32> = ix.in_range(ix.resolve(matchers), hints.range).into_iter().collect();
        if hints.labels_only {
            return Ok(ids
                .iter()
                .map(|&i| Series { labels: ix.series[i as usize].labels.clone(), samples: Vec::new() })
                .collect());
        }
        let rows: u64 = ids.iter().map(|&i| u64::from(ix.series[i as usize].rows)).sum();
        let store = self.bucket.store().clone();
        let range = hints.range;
        if rows <= INLINE_READ_ROWS {
            return ix.read(store, &ids, range).await;
        }
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(ix.read(store, &ids, range)))
            .await
            .map_err(|e| Error::corrupt(&b.path, e))?
    }
}

/// Merges per-block answers (each in label order, blocks in `(min_time, ulid)`
/// order): one series per label set, windows sorted, the first block's window
/// kept at an identical `t`.
pub fn merge_aggr(sets: Vec<Vec<AggrSeries>>) -> Vec<AggrSeries> {
    let mut by_labels: BTreeMap<strata_model::Labels, Vec<AggrWindow>> = BTreeMap::new();
    for set in sets {
        for s in set {
            match by_labels.entry(s.labels) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(s.windows);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let have = e.get_mut();
                    have.extend(s.windows);
                    // Stable: at an identical t the earlier block's window comes first.
                    have.sort_by_key(|w| w.t);
                    have.dedup_by_key(|w| w.t);
                }
            }
        }
    }
    by_labels.into_iter().map(|(labels, windows)| AggrSeries { labels, windows }).collect()
}

/// A store that is down or failing (or an object gone under a reader, which a
/// retry with a fresh listing fixes) is `Unavailable`; a damaged block is not.
fn model_err(e: Error) -> strata_model::Error {
    match e.kind() {
        crate::ErrorKind::Unavailable | crate::ErrorKind::NotFound => {
            strata_model::Error::unavailable("object store", e)
        }
        crate::ErrorKind::Corrupt | crate::ErrorKind::Config => strata_model::Error::storage(e),
    }
}

#[async_trait]
impl Querier for BlockQuerier {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> strata_model::Result<Vec<Series>> {
        let blocks = self.live(hints.range).await.map_err(model_err)?;
        self.select_in(blocks, hints, matchers).await.map_err(model_err)
    }

    async fn select_windows(
        &self,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> strata_model::Result<Vec<WindowedSeries>> {
        if hints.max_resolution <= 0 || hints.labels_only {
            return Ok(self.select(hints, matchers).await?.into_iter().map(WindowedSeries::from).collect());
        }
        self.windows(hints, matchers).await.map_err(model_err)
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> strata_model::Result<Vec<String>> {
        let mut names = BTreeSet::new();
        for b in self.live(range).await.map_err(model_err)? {
            let ix = self.bucket.index(&b).await.map_err(model_err)?;
            names.extend(ix.names_of(&ix.in_range(ix.resolve(matchers), range)));
        }
        Ok(names.into_iter().collect())
    }

    async fn label_values(
        &self,
        name: &str,
        range: TimeRange,
        matchers: &[Matcher],
    ) -> strata_model::Result<Vec<String>> {
        let mut values = BTreeSet::new();
        for b in self.live(range).await.map_err(model_err)? {
            let ix = self.bucket.index(&b).await.map_err(model_err)?;
            values.extend(ix.values_of(name, &ix.in_range(ix.resolve(matchers), range)));
        }
        Ok(values.into_iter().collect())
    }
}
