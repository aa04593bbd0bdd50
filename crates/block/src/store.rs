//! Object storage construction from Thanos's objstore YAML shape, and a metering
//! decorator that counts what every request moved.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ClientConfigKey, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, RetryConfig,
};
use serde::Deserialize;

use crate::{Error, Result};

/// Object storage settings in Thanos's objstore shape, so a Thanos bucket config
/// file works unchanged for the fields Strata uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjStoreConfig {
    /// `FILESYSTEM` or `S3`.
    #[serde(rename = "type")]
    pub kind: StoreKind,
    /// Settings of that store type.
    #[serde(default)]
    pub config: StoreSettings,
    /// Optional key prefix under which everything is stored.
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum StoreKind {
    #[serde(rename = "FILESYSTEM", alias = "filesystem")]
    Filesystem,
    #[serde(rename = "S3", alias = "s3")]
    S3,
}

/// The union of the FILESYSTEM and S3 settings (Thanos names).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// FILESYSTEM: the directory holding the bucket (created if missing).
    pub directory: Option<PathBuf>,
    /// S3: bucket name.
    pub bucket: Option<String>,
    /// S3: `host:port` (or a full URL). Empty means AWS.
    pub endpoint: Option<String>,
    /// S3: region (default `us-east-1`, which S3-compatible servers accept).
    pub region: Option<String>,
    /// S3: access key; the `AWS_ACCESS_KEY_ID` environment variable otherwise.
    pub access_key: Option<String>,
    /// S3: secret key; `AWS_SECRET_ACCESS_KEY` otherwise.
    pub secret_key: Option<String>,
    /// S3: session token; `AWS_SESSION_TOKEN` otherwise.
    pub session_token: Option<String>,
    /// S3: plain HTTP instead of HTTPS.
    #[serde(default)]
    pub insecure: bool,
    /// S3: `auto` or `path` (path-style, the default) or `virtual-hosted`.
    pub bucket_lookup_type: Option<String>,
    /// S3: give up on one request after this long (default 30s), from connecting to
    /// the last byte of the answer; the same bound caps the time spent retrying it
    /// (at most 3 retries), so a store slower than this fails (503 upstream) instead
    /// of being waited out. Callers retry with backoff.
    #[serde(default, with = "humantime_opt")]
    pub request_timeout: Option<Duration>,
}

mod humantime_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
        })
        .transpose()
    }
}

/// `request_timeout` when the config leaves it out.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// object_store's own connect timeout, kept when `request_timeout` is longer.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The S3 client for `c`, not built yet.
fn s3_builder(c: &StoreSettings) -> Result<AmazonS3Builder> {
    let bucket = c.bucket.as_deref().filter(|b| !b.is_empty());
    let bucket = bucket.ok_or_else(|| Error::Config("S3 needs config.bucket".into()))?;
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    b = b.with_region(c.region.clone().unwrap_or_else(|| "us-east-1".into()));
    if let Some(ep) = c.endpoint.as_deref().filter(|e| !e.is_empty()) {
        let url = if ep.contains("://") {
            ep.to_string()
        } else {
            format!("{}://{ep}", if c.insecure { "http" } else { "https" })
        };
        b = b.with_endpoint(url);
    }
    b = b.with_allow_http(c.insecure);
    if let Some(k) = &c.access_key {
        b = b.with_access_key_id(k);
    }
    if let Some(k) = &c.secret_key {
        b = b.with_secret_access_key(k);
    }
    if let Some(t) = &c.session_token {
        b = b.with_token(t);
    }
    let virtual_hosted = match c.bucket_lookup_type.as_deref().unwrap_or("auto") {
        "auto" | "path" => false,
        "virtual-hosted" => true,
        other => return Err(Error::Config(format!("unknown bucket_lookup_type {other:?}"))),
    };
    b = b.with_virtual_hosted_style_request(virtual_hosted);
    let timeout = c.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    // Per request (connect to last byte), not only the retry budget below: with just
    // the latter one slow request was waited out however long it took.
    let connect = timeout.min(MAX_CONNECT_TIMEOUT);
    for (key, d) in [(ClientConfigKey::Timeout, timeout), (ClientConfigKey::ConnectTimeout, connect)] {
        b = b.with_config(AmazonS3ConfigKey::Client(key), humantime::format_duration(d).to_string());
    }
    b = b.with_retry(RetryConfig { max_retries: 3, retry_timeout: timeout, ..Default::default() });
    Ok(b)
}

impl ObjStoreConfig {
    /// A local directory bucket.
    pub fn filesystem(dir: impl Into<PathBuf>) -> Self {
        ObjStoreConfig {
            kind: StoreKind::Filesystem,
            config: StoreSettings { directory: Some(dir.into()), ..Default::default() },
            prefix: String::new(),
        }
    }

    /// Builds the store. Nothing is contacted yet: an unreachable S3 endpoint shows
    /// up as errors on the first requests, which callers retry.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>> {
        let c = &self.config;
        let store: Arc<dyn ObjectStore> = match self.kind {
            StoreKind::Filesystem => {
                let dir =
                    c.directory.as_ref().ok_or_else(|| Error::Config("FILESYSTEM needs config.directory".into()))?;
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Config(format!("create bucket directory {}: {e}", dir.display())))?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| Error::Config(format!("bucket directory {}: {e}", dir.display())))?,
                )
            }
            StoreKind::S3 => Arc::new(s3_builder(c)?.build().map_err(|e| Error::Config(format!("S3: {e}")))?),
        };
        if self.prefix.is_empty() {
            return Ok(store);
        }
        Ok(Arc::new(object_store::prefix::PrefixStore::new(store, self.prefix.as_str())))
    }
}

/// Request and byte counts of a [`MeteredStore`].
#[derive(Debug, Default)]
pub struct StoreStats {
    pub get_requests: AtomicU64,
    pub get_bytes: AtomicU64,
    pub put_requests: AtomicU64,
    pub put_bytes: AtomicU64,
    pub list_requests: AtomicU64,
    pub delete_requests: AtomicU64,
}

impl StoreStats {
    pub fn get_bytes(&self) -> u64 {
        self.get_bytes.load(Ordering::Relaxed)
    }
}

/// Wraps a store and counts requests and bytes (for `/metrics` and for measuring
/// how much of a block a query reads).
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    stats: Arc<StoreStats>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        MeteredStore { inner, stats: Arc::default() }
    }

    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.stats
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        add(&self.stats.put_requests, 1);
        add(&self.stats.put_bytes, payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        add(&self.stats.put_requests, 1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        add(&self.stats.get_requests, 1);
        let r = self.inner.get_opts(location, options).await?;
        if !r.meta.location.as_ref().is_empty() {
            add(&self.stats.get_bytes, r.range.end - r.range.start);
        }
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        add(&self.stats.get_requests, ranges.len() as u64);
        let out = self.inner.get_ranges(location, ranges).await?;
        add(&self.stats.get_bytes, out.iter().map(|b| b.len() as u64).sum());
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        add(&self.stats.delete_requests, 1);
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        add(&self.stats.list_requests, 1);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        add(&self.stats.list_requests, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        add(&self.stats.list_requests, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thanos_shaped_configs_parse() {
        let fs: ObjStoreConfig =
            serde_json::from_str(r#"{"type":"FILESYSTEM","config":{"directory":"/tmp/b"}}"#).unwrap();
        assert_eq!(fs, ObjStoreConfig::filesystem("/tmp/b"));
        let s3: ObjStoreConfig = serde_json::from_str(
            r#"{"type":"S3","config":{"bucket":"b","endpoint":"127.0.0.1:8333","region":"r","access_key":"a",
               "secret_key":"s","insecure":true,"request_timeout":"5s"}}"#,
        )
        .unwrap();
        assert_eq!(s3.kind, StoreKind::S3);
        assert_eq!(s3.config.request_timeout, Some(Duration::from_secs(5)));
        s3.build().unwrap();
        let bad = serde_json::from_str::<ObjStoreConfig>(r#"{"type":"S3","config":{"bucket":"b","bogus":1}}"#);
        assert!(bad.unwrap_err().to_string().contains("bogus"));
        // request_timeout bounds each request, not only the retries.
        let b = s3_builder(&s3.config).unwrap();
        let get = |k| b.get_config_value(&AmazonS3ConfigKey::Client(k));
        assert_eq!(get(ClientConfigKey::Timeout).as_deref(), Some("5s"));
        assert_eq!(get(ClientConfigKey::ConnectTimeout).as_deref(), Some("5s"));
        let short = StoreSettings { request_timeout: Some(Duration::from_millis(1500)), ..s3.config.clone() };
        let b = s3_builder(&short).unwrap();
        let get = |k| b.get_config_value(&AmazonS3ConfigKey::Client(k));
        assert_eq!(get(ClientConfigKey::Timeout).as_deref(), Some("1s 500ms"));
        assert_eq!(get(ClientConfigKey::ConnectTimeout).as_deref(), Some("1s 500ms"));
        let default = StoreSettings { request_timeout: None, ..s3.config.clone() };
        let b = s3_builder(&default).unwrap();
        assert_eq!(b.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::Timeout)).as_deref(), Some("30s"));
        assert_eq!(b.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(), Some("true"));
        let no_bucket: ObjStoreConfig = serde_json::from_str(r#"{"type":"S3","config":{}}"#).unwrap();
        assert!(no_bucket.build().unwrap_err().to_string().contains("bucket"));
    }
}
