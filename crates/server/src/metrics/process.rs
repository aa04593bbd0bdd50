//! The standard `process_*` metrics (as the Go and Python clients' process
//! collectors export them, so stock dashboards work) and `strata_build_info`.
//! Read from `/proc/self` at scrape time; on a system without `/proc` the process
//! metrics are left out.
//!
//! ```text
//!  /proc/self/stat   ─► process_cpu_seconds_total, process_start_time_seconds (with /proc/stat btime),
//!                       process_virtual_memory_bytes, process_resident_memory_bytes
//!  /proc/self/fd     ─► process_open_fds       getrlimit(NOFILE) ─► process_max_fds
//!  BUILD_INFO        ─► strata_build_info{version,revision,branch,rustversion} 1
//! ```

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::version::BUILD_INFO;

pub(crate) const BUILD_INFO_METRIC: &str = "strata_build_info";

/// What `/proc/self/stat` says, in the units of the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProcStat {
    /// User plus system CPU time.
    pub(crate) cpu_seconds: f64,
    /// Start time after boot, in clock ticks.
    pub(crate) start_ticks: u64,
    pub(crate) virtual_bytes: u64,
    pub(crate) resident_pages: u64,
    pub(crate) threads: u64,
}

/// Parses `/proc/<pid>/stat` (`proc(5)`): the command name in parentheses may hold
/// spaces and parentheses, so fields are counted after its last `)`. `None` for a
/// line that does not parse (never panics).
pub(crate) fn parse_stat(line: &str, ticks_per_second: u64) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    let ticks = ticks_per_second.max(1) as f64;
    Some(ProcStat {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        threads: field(20)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
        resident_pages: field(24)?,
    })
}

/// `btime` of `/proc/stat`: when the system booted, in Unix seconds.
pub(crate) fn parse_boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

fn read_self_stat() -> Option<ProcStat> {
    let line = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&line, rustix::param::clock_ticks_per_second())
}

/// Threads of this process (`None` without `/proc`).
pub(crate) fn threads() -> Option<u64> {
    read_self_stat().map(|s| s.threads)
}

/// Collects the process metrics and the build info when scraped.
#[derive(Debug)]
pub(crate) struct ProcessCollector;

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: f64) -> std::fmt::Result {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let b = BUILD_INFO;
        let labels =
            [("version", b.version), ("revision", b.revision), ("branch", b.branch), ("rustversion", b.rust_version)];
        let mut me = enc.encode_descriptor(
            BUILD_INFO_METRIC,
            "A metric with a constant '1' value labeled by version, revision, branch, and rustversion from which strata was built",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1).encode(me.encode_family(&labels)?)?;

        let Some(s) = read_self_stat() else { return Ok(()) };
        let ticks = rustix::param::clock_ticks_per_second().max(1);
        ConstCounter::new(s.cpu_seconds).encode(enc.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?)?;
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|t| parse_boot_time(&t));
        if let Some(boot) = boot {
            let start = boot as f64 + s.start_ticks as f64 / ticks as f64;
            gauge(
                &mut enc,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                start,
            )?;
        }
        gauge(&mut enc, "process_virtual_memory_bytes", "Virtual memory size in bytes.", s.virtual_bytes as f64)?;
        let resident = s.resident_pages.saturating_mul(rustix::param::page_size() as u64);
        gauge(&mut enc, "process_resident_memory_bytes", "Resident memory size in bytes.", resident as f64)?;
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The count includes the descriptor reading the directory, as Prometheus's does.
            let open = dir.count();
            gauge(&mut enc, "process_open_fds", "Number of open file descriptors.", open as f64)?;
        }
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(max) = limit.current {
            gauge(&mut enc, "process_max_fds", "Maximum number of open file descriptors.", max as f64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        // A command name with spaces and a ')' of its own.
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line, 100).expect("parses");
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!((s.threads, s.start_ticks, s.virtual_bytes, s.resident_pages), (7, 12345, 104857600, 2560));
        assert_eq!(parse_stat("garbage", 100), None);
        assert_eq!(parse_stat("1 (x) S 1", 100), None);
        assert_eq!(parse_stat("", 0), None);
    }

    #[test]
    fn boot_time_is_btime() {
        assert_eq!(parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"), Some(1_700_000_000));
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_plausibly() {
        let s = read_self_stat().expect("/proc/self/stat");
        assert!(s.threads >= 1 && s.resident_pages > 0 && s.virtual_bytes > 0, "{s:?}");
    }
}
