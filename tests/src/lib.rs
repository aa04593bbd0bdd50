//! Shared helpers for Strata's end-to-end tests: an in-process [`Sandbox`] running the
//! real router on a loopback port, a [`StrataProcess`] running the real binary, and
//! protocol helpers (remote write 1.0/2.0 and remote read clients).
//!
//! ```text
//!  test ──reqwest──► 127.0.0.1:<port 0> ──► strata_server::router ──► Tsdb (tempdir)
//!  test ──spawn────► target/debug/strata serve ──► SIGKILL / restart (crash tests)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use strata_block::{Bucket, BucketOptions, MeteredStore, ObjStoreConfig};
use strata_proto::Message;
use strata_proto::prometheus as pb;
use strata_server::{AppState, Blocks, ServerConfig, router};
use strata_tsdb::{CutPolicy, Tsdb, TsdbOptions};

/// The real server, in this process, on a loopback port chosen by the OS.
#[derive(Debug)]
pub struct Sandbox {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// The storage behind the server (for passes a test triggers, such as spilling).
    pub tsdb: Arc<Tsdb>,
    _tmp: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub client: reqwest::Client,
}

impl Sandbox {
    pub async fn start() -> Sandbox {
        Self::start_with(ServerConfig::default(), TsdbOptions::default(), None).await
    }

    /// Starts on `dir` (a fresh temporary directory when `None`).
    pub async fn start_with(cfg: ServerConfig, opts: TsdbOptions, dir: Option<&Path>) -> Sandbox {
        Self::start_full(cfg, opts, dir, None).await
    }

    /// Starts with these limits for every tenant.
    pub async fn start_with_limits(cfg: ServerConfig, limits: strata_server::Limits) -> Sandbox {
        let overrides =
            strata_server::Overrides::new(strata_server::LimitsConfig { defaults: limits, ..Default::default() })
                .expect("no overrides file");
        let state = AppState::build(strata_server::StateOptions {
            server: cfg,
            limits: Arc::new(overrides),
            ..Default::default()
        })
        .expect("valid config");
        Self::serve(state, TsdbOptions::default(), None, None).await
    }

    /// Starts on `dir` with block storage in `bucket` (default cut policy).
    pub async fn start_with_bucket(dir: &Path, bucket: ObjStoreConfig) -> Sandbox {
        Self::start_full(ServerConfig::default(), TsdbOptions::default(), Some(dir), Some(bucket)).await
    }

    pub async fn start_full(
        cfg: ServerConfig,
        opts: TsdbOptions,
        dir: Option<&Path>,
        bucket: Option<ObjStoreConfig>,
    ) -> Sandbox {
        Self::start_with_querier(cfg, strata_querier::QuerierConfig::default(), opts, dir, bucket).await
    }

    /// [`Sandbox::start_full`] with read-side settings (HA replica dedup).
    pub async fn start_with_querier(
        cfg: ServerConfig,
        querier: strata_querier::QuerierConfig,
        opts: TsdbOptions,
        dir: Option<&Path>,
        bucket: Option<ObjStoreConfig>,
    ) -> Sandbox {
        Self::start_with_ha(cfg, querier, Default::default(), opts, dir, bucket).await
    }

    /// [`Sandbox::start_with_querier`] with the ingest-time HA tracker's settings.
    pub async fn start_with_ha(
        cfg: ServerConfig,
        querier: strata_querier::QuerierConfig,
        ha: strata_server::HaTrackerConfig,
        opts: TsdbOptions,
        dir: Option<&Path>,
        bucket: Option<ObjStoreConfig>,
    ) -> Sandbox {
        let state = AppState::with_ha(cfg, querier, ha).expect("valid config");
        Self::serve(state, opts, dir, bucket).await
    }

    async fn serve(state: AppState, opts: TsdbOptions, dir: Option<&Path>, bucket: Option<ObjStoreConfig>) -> Sandbox {
        let tmp = if dir.is_none() { Some(tempfile::tempdir().expect("tempdir")) } else { None };
        let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| tmp.as_ref().expect("tempdir").path().to_path_buf());
        if let Some(b) = bucket {
            let store = Arc::new(MeteredStore::new(b.build().expect("object store")));
            let store_stats = Some(store.stats().clone());
            let bucket = Bucket::new(store, BucketOptions::default());
            state.set_blocks(Blocks { bucket, policy: CutPolicy::default(), store_stats, extra_metrics: None });
        }
        let tsdb = Arc::new(Tsdb::open(&dir, opts).expect("open tsdb"));
        state.set_ready(tsdb.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Sandbox { addr, dir, tsdb, _tmp: tmp, shutdown: Some(tx), task: Some(task), client: reqwest::Client::new() }
    }

    /// GETs `path` with query parameters `q`, asserts a 2xx answer, and parses its JSON.
    pub async fn get_json(&self, path: &str, q: &[(&str, String)]) -> serde_json::Value {
        let url = reqwest::Url::parse_with_params(&self.url(path), q).expect("url");
        let r = self.client.get(url).send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert!(status.is_success(), "{path} {q:?}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and waits until its storage is closed.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Snappy block compression, as remote write bodies use.
pub fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).expect("snappy compress")
}

/// Sends a remote write 1.0 request; returns status and body.
pub async fn write_v1(
    client: &reqwest::Client,
    base: &str,
    req: &pb::WriteRequest,
    tenant: Option<&str>,
) -> Result<(u16, String)> {
    post_write(client, base, snappy(&req.encode_to_vec()), "application/x-protobuf", tenant)
        .await
        .map(|(s, b, _)| (s, b))
}

/// Posts a raw body to `/api/v1/write` with Prometheus's headers.
pub async fn post_write(
    client: &reqwest::Client,
    base: &str,
    body: Vec<u8>,
    content_type: &str,
    tenant: Option<&str>,
) -> Result<(u16, String, reqwest::header::HeaderMap)> {
    let mut rb = client
        .post(format!("{base}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", content_type)
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    if let Some(t) = tenant {
        rb = rb.header("X-Scope-OrgID", t);
    }
    let resp = rb.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Ok((status, resp.text().await?, headers))
}

/// Reads samples back with remote read (`SAMPLES` response).
pub async fn remote_read(
    client: &reqwest::Client,
    base: &str,
    matchers: Vec<pb::LabelMatcher>,
    start: i64,
    end: i64,
    tenant: Option<&str>,
) -> Result<Vec<pb::TimeSeries>> {
    remote_read_url(client, &format!("{base}/api/v1/read"), matchers, start, end, tenant).await
}

/// [`remote_read`] at a full URL (with URL parameters such as `dedup=false`).
pub async fn remote_read_url(
    client: &reqwest::Client,
    url: &str,
    matchers: Vec<pb::LabelMatcher>,
    start: i64,
    end: i64,
    tenant: Option<&str>,
) -> Result<Vec<pb::TimeSeries>> {
    let req = pb::ReadRequest {
        queries: vec![pb::Query { start_timestamp_ms: start, end_timestamp_ms: end, matchers, hints: None }],
        accepted_response_types: vec![pb::read_request::ResponseType::Samples as i32],
    };
    let mut rb = client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(snappy(&req.encode_to_vec()));
    if let Some(t) = tenant {
        rb = rb.header("X-Scope-OrgID", t);
    }
    let resp = rb.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("remote read: {status}: {}", String::from_utf8_lossy(&body));
    }
    // A test reading the server's answer: the size is what we asked for.
    #[allow(clippy::disallowed_methods)]
    let raw = snap::raw::Decoder::new().decompress_vec(&body).context("snappy")?;
    let mut r = pb::ReadResponse::decode(&raw[..])?;
    Ok(r.results.pop().map(|q| q.timeseries).unwrap_or_default())
}

/// A matcher for remote read.
pub fn matcher(kind: pb::label_matcher::Type, name: &str, value: &str) -> pb::LabelMatcher {
    pb::LabelMatcher { r#type: kind as i32, name: name.into(), value: value.into() }
}

/// `{__name__=~".+"}`: every series.
pub fn all_series() -> Vec<pb::LabelMatcher> {
    vec![matcher(pb::label_matcher::Type::Re, "__name__", ".+")]
}

/// A label list for remote write.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<pb::Label> {
    pairs.iter().map(|(n, v)| pb::Label { name: n.to_string(), value: v.to_string() }).collect()
}

/// A series with samples for remote write 1.0.
pub fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> pb::TimeSeries {
    pb::TimeSeries {
        labels: labels(pairs),
        samples: samples.iter().map(|&(t, v)| pb::Sample { value: v, timestamp: t }).collect(),
        ..Default::default()
    }
}

/// The `strata` binary built in this workspace's target directory, or `STRATA_BIN`.
/// When it is absent, says so through [`missing_tool`] (a failure in CI) and
/// returns `None`, so callers just return.
pub fn strata_bin() -> Option<PathBuf> {
    let found = std::env::var("STRATA_BIN").ok().map(PathBuf::from).or_else(|| {
        // target/<profile>/deps/<test binary> → target/<profile>/strata
        let exe = std::env::current_exe().ok()?;
        let bin = exe.parent()?.parent()?.join("strata");
        bin.exists().then_some(bin)
    });
    if found.is_none() {
        missing_tool("the strata binary", "not built (cargo build -p strata --bins, or set STRATA_BIN)");
    }
    found
}

/// Percent-encodes a query-string key or value (RFC 3986's unreserved characters
/// stay as they are).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k=v` from pairs, both sides percent-encoded.
pub fn query_string<V: AsRef<str>>(params: &[(&str, V)]) -> String {
    let pairs: Vec<String> =
        params.iter().map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v.as_ref()))).collect();
    pairs.join("&")
}

/// A free loopback port (bound and released; the caller binds it again soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The real binary as a child process.
#[derive(Debug)]
pub struct StrataProcess {
    pub child: Child,
    pub port: u16,
}

impl StrataProcess {
    /// Starts `strata serve` on `data_dir` and waits until `/-/ready` answers 200.
    pub async fn start(bin: &Path, data_dir: &Path, extra: &[&str]) -> Result<StrataProcess> {
        let port = free_port();
        let child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn strata")?;
        let mut p = StrataProcess { child, port };
        p.wait_ready(Duration::from_secs(60)).await?;
        Ok(p)
    }

    /// Starts `strata query --config config` (a query node) on `port` and waits until ready.
    pub async fn query(bin: &Path, config: &Path, port: u16) -> Result<StrataProcess> {
        let child = Command::new(bin)
            .arg("query")
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn strata query")?;
        let mut p = StrataProcess { child, port };
        p.wait_ready(Duration::from_secs(60)).await?;
        Ok(p)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("strata exited during start-up: {status}");
            }
            if let Ok(r) = client.get(format!("{}/-/ready", self.base())).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("strata not ready after {timeout:?}")
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for StrataProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus on a loopback port, on a config file the caller wrote; killed
/// (by its process id) when dropped.
#[derive(Debug)]
pub struct PrometheusProcess {
    child: Child,
    pub port: u16,
}

impl PrometheusProcess {
    /// Whether the `prometheus` binary is installed.
    pub fn installed() -> bool {
        Command::new("prometheus").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    /// Starts `prometheus` with `dir/prometheus.yml` and storage under `dir/data` on
    /// `port`, plus `extra` flags, and waits until `/-/ready` answers 200.
    pub async fn start(dir: &Path, port: u16, extra: &[&str]) -> Result<PrometheusProcess> {
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start prometheus")?;
        let p = PrometheusProcess { child, port };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if client.get(format!("{}/-/ready", p.base())).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(p);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("prometheus on port {port} not ready after 60 s")
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SeaweedFS `weed mini` S3 server on loopback ports, started and stopped with
/// `scripts/weed-mini.sh` (which sets every port flag). Stopped when dropped.
#[derive(Debug)]
pub struct WeedS3 {
    pub dir: PathBuf,
    pub port: u16,
    pub base: u16,
}

impl WeedS3 {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/weed-mini.sh")
    }

    /// Starts (or restarts, with `base` from an earlier start) the server. `Ok(None)`
    /// with the reason printed when no `weed` binary is installed.
    pub fn start(dir: &Path, base: Option<u16>) -> Result<Option<WeedS3>> {
        let mut cmd = Command::new("bash");
        cmd.arg(Self::script()).arg("start").arg(dir);
        if let Some(b) = base {
            cmd.env("WEED_PORT_BASE", b.to_string());
        }
        let out = cmd.output().context("run weed-mini.sh")?;
        if out.status.code() == Some(77) {
            missing_tool("weed (SeaweedFS)", String::from_utf8_lossy(&out.stderr).trim());
            return Ok(None);
        }
        if !out.status.success() {
            bail!("weed-mini.sh start failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let port = stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix("S3_PORT="))
            .context("no S3_PORT in weed-mini.sh output")?
            .parse()?;
        let ports = std::fs::read_to_string(dir.join("weed.ports"))?;
        let base = ports.split_whitespace().next().context("weed.ports")?.parse()?;
        Ok(Some(WeedS3 { dir: dir.to_path_buf(), port, base }))
    }

    pub fn stop(&self) {
        let _ = Command::new("bash").arg(Self::script()).arg("stop").arg(&self.dir).status();
    }

    /// A Thanos-shaped objstore file for this server.
    pub fn objstore_yaml(&self) -> String {
        format!(
            "type: S3\nconfig:\n  bucket: strata\n  endpoint: 127.0.0.1:{}\n  region: us-east-1\n  access_key: strata\n  secret_key: strata-secret\n  insecure: true\n  request_timeout: 5s\n",
            self.port
        )
    }
}

impl Drop for WeedS3 {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether this runs in CI: `CI` set to `true` or `1` (as CI systems and `.ci/run` set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A test's outside tool (`what`: prometheus, weed, DuckDB, the strata binary) is
/// missing, for the reason `why`. In CI that fails the test, since CI installs
/// everything and a skip there would hide a test that never ran; elsewhere it prints
/// the skip and the caller returns.
pub fn missing_tool(what: &str, why: &str) {
    if in_ci() {
        panic!("{what} is missing in CI (CI={:?}): {why}", std::env::var("CI").unwrap_or_default());
    }
    println!("SKIPPED: {what} missing: {why}");
}

/// A tmpfs mounted on a directory for the life of the value (a small disk to fill).
/// Unmounted when dropped, lazily if something still holds a file there.
#[derive(Debug)]
pub struct TmpfsMount {
    pub dir: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size_mib` MiB on `dir` (created). `Ok(None)` with the reason
    /// printed when mounting is not possible here (not root, no mount privilege);
    /// with `CI=true` that is an error instead.
    pub fn mount(dir: &Path, size_mib: u64) -> Result<Option<TmpfsMount>> {
        std::fs::create_dir_all(dir)?;
        let out =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"]).arg(dir).output();
        let why = match out {
            Ok(o) if o.status.success() => return Ok(Some(TmpfsMount { dir: dir.to_path_buf() })),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            bail!("cannot mount a tmpfs on {}: {why}", dir.display());
        }
        println!("SKIPPED: cannot mount a tmpfs on {} ({why}); run as root", dir.display());
        Ok(None)
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Fills the filesystem holding `path` with one file, written until the disk
/// refuses; returns the bytes written.
pub fn fill_disk(path: &Path) -> Result<u64> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0x5au8; 64 << 10];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// One value of a Prometheus text exposition (`/metrics`), summed over its label sets.
pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> Result<f64> {
    let text = client.get(format!("{base}/metrics")).send().await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            (metric == name).then(|| v.parse::<f64>().ok()).flatten()
        })
        .sum())
}

/// The fault-injecting object-store proxy.
pub mod faultproxy;

/// How a `strata` command run by [`run_strata`] ended.
#[derive(Debug)]
pub struct CommandRun {
    /// The exit code; `None` when it was killed (at its time limit or by a signal).
    pub code: Option<i32>,
    /// Stdout then stderr.
    pub output: String,
    pub took: Duration,
    pub timed_out: bool,
}

/// Runs `bin args` (an offline command: `compact --once`, `tools bucket verify`) to
/// its end, SIGKILLed by its pid if it takes longer than `limit`.
pub fn run_strata(bin: &Path, args: &[&str], limit: Duration) -> Result<CommandRun> {
    let start = Instant::now();
    let mut child = spawn_strata(bin, args)?;
    let mut timed_out = false;
    while child.try_wait()?.is_none() {
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    Ok(CommandRun {
        code: out.status.code(),
        output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        took: start.elapsed(),
        timed_out,
    })
}

/// Starts `bin args` with stdout and stderr piped (read them with
/// `wait_with_output`; with `RUST_LOG=warn` the commands print little, only their
/// report and failures). The caller stops it by its pid.
pub fn spawn_strata(bin: &Path, args: &[&str]) -> Result<Child> {
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn strata")
}
