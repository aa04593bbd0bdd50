//! One database under test as a child process: start on a free 127.0.0.1 port with a
//! fresh data dir, wait until ready, read its CPU/memory from /proc, flush, size its
//! data dir, and stop it by PID (SIGTERM, then SIGKILL) — also when dropped on an
//! error path.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// The databases the harness knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TargetKind {
    /// `strata serve`.
    Strata,
    /// Single-node VictoriaMetrics.
    VictoriaMetrics,
    /// Prometheus with the remote write receiver enabled.
    Prometheus,
}

impl TargetKind {
    /// All kinds, in report order (VictoriaMetrics first: it is the ratio baseline).
    pub const ALL: [TargetKind; 3] = [TargetKind::VictoriaMetrics, TargetKind::Prometheus, TargetKind::Strata];

    /// Short name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Strata => "strata",
            TargetKind::VictoriaMetrics => "victoriametrics",
            TargetKind::Prometheus => "prometheus",
        }
    }

    /// Parses a short name (`vm` is accepted for VictoriaMetrics).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "strata" => TargetKind::Strata,
            "vm" | "victoriametrics" | "victoria-metrics" => TargetKind::VictoriaMetrics,
            "prometheus" | "prom" => TargetKind::Prometheus,
            other => bail!("unknown target {other:?} (strata, vm, prometheus)"),
        })
    }

    /// Where the binary is looked for when not given.
    pub fn default_binary(self, workspace: &Path) -> PathBuf {
        match self {
            TargetKind::Strata => workspace.join("target/release/strata"),
            TargetKind::VictoriaMetrics => PathBuf::from("/usr/bin/victoria-metrics"),
            TargetKind::Prometheus => PathBuf::from("/usr/bin/prometheus"),
        }
    }

    fn ready_path(self) -> &'static str {
        match self {
            TargetKind::VictoriaMetrics => "/health",
            TargetKind::Strata | TargetKind::Prometheus => "/-/ready",
        }
    }
}

/// A database to benchmark: its kind and binary, and how this run sets it up.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSpec {
    /// Which database.
    pub kind: TargetKind,
    /// Its executable.
    pub bin: PathBuf,
    /// Name in reports and of the log file (the kind's name unless one kind runs in
    /// several setups, e.g. `strata-tracker`).
    pub label: String,
    /// Command-line arguments after the harness's own; `{dir}` stands for the
    /// target's temporary directory (where `files` are written).
    pub args: Vec<String>,
    /// Files written into the temporary directory before the start: (name, content).
    pub files: Vec<(String, String)>,
}

impl TargetSpec {
    /// `kind` run from `bin` with the harness's default setup.
    pub fn new(kind: TargetKind, bin: PathBuf) -> Self {
        Self { kind, bin, label: kind.name().to_string(), args: Vec::new(), files: Vec::new() }
    }
}

/// Outcome of asking a target to persist its in-memory data.
#[derive(Debug, Clone)]
pub(crate) enum Flush {
    /// Flushed; wall seconds of the call.
    Done(f64),
    /// The target has no such API (or returned 404): sizes exclude nothing flushed.
    NotSupported(String),
}

/// Data dir size, bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DirSize {
    /// Sum of file lengths.
    pub apparent: u64,
    /// Allocated blocks (`du`).
    pub allocated: u64,
}

/// A running target.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) kind: TargetKind,
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) log_path: PathBuf,
    _root: Option<tempfile::TempDir>,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The last `n` bytes of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(n);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

impl Server {
    /// Starts `spec` with a fresh data dir under `work_dir` and waits until it is
    /// ready. Retries on another port if the process exits during startup.
    pub(crate) fn start(
        spec: &TargetSpec,
        work_dir: &Path,
        log_dir: &Path,
        keep_data: bool,
        ready_timeout: Duration,
        agent: &ureq::Agent,
    ) -> Result<Self> {
        let mut last_err = None;
        for attempt in 0..3 {
            let mut server = Self::spawn(spec, work_dir, log_dir, keep_data, attempt)?;
            match server.wait_ready(ready_timeout, agent) {
                Ok(()) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
            // `server` is dropped here, which stops it.
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("start failed")))
    }

    fn spawn(spec: &TargetSpec, work_dir: &Path, log_dir: &Path, keep_data: bool, attempt: u32) -> Result<Self> {
        std::fs::create_dir_all(work_dir)?;
        std::fs::create_dir_all(log_dir)?;
        let root = tempfile::Builder::new()
            .prefix(&format!("strata-bench-{}-", spec.label))
            .tempdir_in(work_dir)
            .with_context(|| format!("temp dir in {}", work_dir.display()))?;
        let data_dir = root.path().join("data");
        std::fs::create_dir_all(&data_dir)?;
        for (name, content) in &spec.files {
            std::fs::write(root.path().join(name), content)?;
        }
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(&spec.bin);
        match spec.kind {
            TargetKind::Strata => {
                cmd.arg("serve").arg("--data-dir").arg(&data_dir).arg("--listen").arg(&listen);
            }
            TargetKind::VictoriaMetrics => {
                cmd.arg(format!("-storageDataPath={}", data_dir.display()))
                    .arg(format!("-httpListenAddr={listen}"))
                    .arg("-retentionPeriod=100y")
                    // Make every sample visible at once and disable the result cache,
                    // so the count check and query timings are fair.
                    .arg("-search.latencyOffset=0s")
                    .arg("-search.disableCache")
                    .arg("-search.maxSeries=100000000")
                    .arg("-search.maxUniqueTimeseries=100000000")
                    .arg("-search.maxSamplesPerQuery=100000000000")
                    .arg("-search.maxQueryDuration=10m");
            }
            TargetKind::Prometheus => {
                let config = root.path().join("prometheus.yml");
                std::fs::write(
                    &config,
                    "# No scrape jobs: data arrives by remote write only.\nglobal:\n  scrape_interval: 15s\nscrape_configs: []\n",
                )?;
                cmd.arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                    .arg(format!("--web.listen-address={listen}"))
                    .arg("--web.enable-remote-write-receiver")
                    .arg("--query.max-samples=2000000000")
                    .arg("--query.timeout=10m");
            }
        }
        let dir = root.path().display().to_string();
        cmd.args(spec.args.iter().map(|a| a.replace("{dir}", &dir)));
        let log_path = log_dir.join(format!("{}.log", spec.label));
        let log = if attempt == 0 { File::create(&log_path)? } else { File::options().append(true).open(&log_path)? };
        cmd.stdin(Stdio::null()).stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
        let child = cmd.spawn().with_context(|| format!("spawn {}", spec.bin.display()))?;
        let pid = child.id();
        let mut root = Some(root);
        if keep_data && let Some(r) = root.take() {
            let _ = r.keep();
        }
        Ok(Self { kind: spec.kind, child, pid, base: format!("http://{listen}"), data_dir, log_path, _root: root })
    }

    fn wait_ready(&mut self, timeout: Duration, agent: &ureq::Agent) -> Result<()> {
        let url = format!("{}{}", self.base, self.kind.ready_path());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited during startup ({status}); log tail:\n{}",
                    self.kind.name(),
                    log_tail(&self.log_path, 2000)
                );
            }
            if let Ok(r) = agent.get(&url).call()
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready at {url} after {timeout:?}; log tail:\n{}",
                    self.kind.name(),
                    log_tail(&self.log_path, 2000)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// utime + stime of the whole process, seconds.
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name (which may contain spaces) in parentheses.
        let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
        let utime: u64 = f.get(11).context("no utime")?.parse()?;
        let stime: u64 = f.get(12).context("no stime")?.parse()?;
        let hz = rustix::param::clock_ticks_per_second() as f64;
        Ok((utime + stime) as f64 / hz)
    }

    /// `(VmHWM, VmRSS)` in bytes.
    pub(crate) fn memory(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            let line =
                status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} in /proc status"))?;
            let kb: u64 = line.split_whitespace().nth(1).context("bad /proc status line")?.parse()?;
            Ok(kb * 1024)
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// Asks the target to persist what it holds in memory.
    pub(crate) fn flush(&self, agent: &ureq::Agent) -> Result<Flush> {
        // The request is sent by the call below, so the clock starts before it.
        let t = Instant::now();
        let req = match self.kind {
            TargetKind::Strata => agent.post(format!("{}/api/v1/admin/flush", self.base)).send_empty(),
            TargetKind::VictoriaMetrics => agent.get(format!("{}/internal/force_flush", self.base)).call(),
            TargetKind::Prometheus => {
                return Ok(Flush::NotSupported("no flush API: the head stays in WAL + memory until compaction".into()));
            }
        };
        let mut resp = req.context("flush request")?;
        let status = resp.status().as_u16();
        if status == 404 || status == 405 {
            return Ok(Flush::NotSupported(format!("flush returned {status}")));
        }
        if !(200..300).contains(&status) {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            bail!("flush returned {status}: {}", body.trim());
        }
        Ok(Flush::Done(t.elapsed().as_secs_f64()))
    }

    /// The version a running target reports in its own metrics (VictoriaMetrics'
    /// Debian build prints nothing for `-version`).
    pub(crate) fn version_from_metrics(&self, agent: &ureq::Agent) -> Option<String> {
        let mut resp = agent.get(format!("{}/metrics", self.base)).call().ok()?;
        let text = resp.body_mut().with_config().limit(16 << 20).read_to_string().ok()?;
        let line =
            text.lines().find(|l| l.starts_with("vm_app_version{") || l.starts_with("prometheus_build_info{"))?;
        // The `version` label itself, not `goversion`.
        let (at, _) = line
            .match_indices("version=\"")
            .find(|(i, _)| matches!(line.as_bytes().get(i.wrapping_sub(1)), Some(b'{' | b',')))?;
        let rest = &line[at + "version=\"".len()..];
        let v = rest.split('"').next()?;
        (!v.is_empty()).then(|| v.to_string())
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`.
    /// Returns false when the process had to be killed (or had already died).
    pub(crate) fn stop(&mut self, grace: Duration) -> bool {
        if !self.alive() {
            return false;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(30));
    }
}

/// Size of every file under `dir` except the top-level entries named in `skip`.
pub(crate) fn dir_size_except(dir: &Path, skip: &[&str]) -> DirSize {
    let mut size = DirSize::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return size;
    };
    for e in entries.flatten() {
        if skip.iter().any(|s| e.file_name() == *s) {
            continue;
        }
        let sub = if e.path().is_dir() {
            dir_size(&e.path())
        } else {
            use std::os::unix::fs::MetadataExt;
            e.metadata().map_or(DirSize::default(), |m| DirSize { apparent: m.len(), allocated: m.blocks() * 512 })
        };
        size.apparent += sub.apparent;
        size.allocated += sub.allocated;
    }
    size
}

/// Size of every file under `dir` (0 if it does not exist).
pub(crate) fn dir_size(dir: &Path) -> DirSize {
    use std::os::unix::fs::MetadataExt;
    let mut size = DirSize::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                size.apparent += meta.len();
                size.allocated += meta.blocks() * 512;
            }
        }
    }
    size
}

/// The first line `bin --version` (or `-version`) prints, if any.
pub(crate) fn binary_version(spec: &TargetSpec) -> Option<String> {
    let flag = match spec.kind {
        TargetKind::VictoriaMetrics => "-version",
        _ => "--version",
    };
    let out = Command::new(&spec.bin).arg(flag).stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

/// The Debian package version owning the binary, e.g. "victoria-metrics 1.79.5+ds1-2+b5".
pub(crate) fn package_version(bin: &Path) -> Option<String> {
    let out = Command::new("dpkg-query").arg("-S").arg(bin).output().ok()?;
    let owner = String::from_utf8_lossy(&out.stdout);
    let pkg = owner.split(':').next()?.trim().to_string();
    if !out.status.success() || pkg.is_empty() {
        return None;
    }
    let out = Command::new("dpkg-query").args(["-W", "-f=${Version}"]).arg(&pkg).output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then(|| format!("{pkg} {v} (Debian package)"))
}
