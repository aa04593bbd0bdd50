//! The series one node_exporter target exposes (plus the `up`/`scrape_*` series
//! Prometheus adds per target): metric names, labels and how each value evolves.
//! Shapes follow node_exporter 1.x on a typical Linux VM: ~600 series per host.

use super::model::{Model, Precision};
use crate::rng::Rng;

/// One series of a host, without the `job`/`instance` target labels.
#[derive(Debug, Clone)]
pub(crate) struct SeriesDef {
    /// Sorted by name once the target labels are added; `__name__` comes first here.
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) model: Model,
}

/// The hardware a host exposes; drawn once per host from its own random stream.
#[derive(Debug, Clone)]
pub(crate) struct HostShape {
    pub(crate) cpus: u32,
    pub(crate) mem_bytes: f64,
    pub(crate) disks: Vec<&'static str>,
    pub(crate) nics: Vec<&'static str>,
    pub(crate) filesystems: Vec<(&'static str, &'static str, &'static str)>,
}

impl HostShape {
    pub(crate) fn draw(rng: &mut Rng) -> Self {
        let cpus = *rng.pick(&[2, 4, 4, 4, 8]);
        let mem_gib = *rng.pick(&[4.0, 8.0, 16.0, 16.0, 32.0]);
        let disks = rng.pick(&[vec!["sda"], vec!["sda", "sdb"], vec!["nvme0n1"]]).clone();
        let nics = rng.pick(&[vec!["eth0", "lo"], vec!["docker0", "eth0", "lo"]]).clone();
        let mut filesystems = vec![
            ("/dev/sda1", "ext4", "/"),
            ("/dev/sda15", "vfat", "/boot/efi"),
            ("tmpfs", "tmpfs", "/run"),
            ("tmpfs", "tmpfs", "/run/lock"),
            ("tmpfs", "tmpfs", "/run/user/1000"),
        ];
        if disks.contains(&"sdb") {
            filesystems.push(("/dev/sdb1", "xfs", "/var/lib/data"));
        }
        Self { cpus, mem_bytes: mem_gib * 1024.0 * 1024.0 * 1024.0, disks, nics, filesystems }
    }
}

const CPU_MODES: [&str; 8] = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"];

const COLLECTORS: [&str; 34] = [
    "arp",
    "bcache",
    "bonding",
    "btrfs",
    "conntrack",
    "cpu",
    "cpufreq",
    "diskstats",
    "dmi",
    "edac",
    "entropy",
    "fibrechannel",
    "filefd",
    "filesystem",
    "hwmon",
    "infiniband",
    "ipvs",
    "loadavg",
    "mdadm",
    "meminfo",
    "netclass",
    "netdev",
    "netstat",
    "nfs",
    "nfsd",
    "nvme",
    "powersupplyclass",
    "pressure",
    "rapl",
    "schedstat",
    "sockstat",
    "softnet",
    "stat",
    "time",
];

struct Builder {
    out: Vec<SeriesDef>,
}

impl Builder {
    fn add(&mut self, name: &str, labels: &[(&str, &str)], model: Model) {
        let mut l = vec![("__name__".to_string(), name.to_string())];
        l.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.out.push(SeriesDef { labels: l, model });
    }
}

fn counter(rate: f64, prec: Precision) -> Model {
    Model::Counter { rate, noise: 0.3, prec }
}

fn gauge(lo: f64, hi: f64, prec: Precision) -> Model {
    Model::Gauge { lo, hi, step: 0.02, prec }
}

const INT: Precision = Precision::Dec(0);
const SEC2: Precision = Precision::Dec(2);
const SEC3: Precision = Precision::Dec(3);
const KIB: Precision = Precision::Kib;
const FULL: Precision = Precision::Full;

/// The series of the virtual interface `dev` (container veths come and go: churn).
pub(crate) fn veth_series(dev: &str) -> Vec<SeriesDef> {
    let mut b = Builder { out: Vec::new() };
    let d = [("device", dev)];
    for (dir, bytes) in [("receive", 40e3), ("transmit", 25e3)] {
        b.add(&format!("node_network_{dir}_bytes_total"), &d, counter(bytes, INT));
        b.add(&format!("node_network_{dir}_packets_total"), &d, counter(bytes / 600.0, INT));
        b.add(&format!("node_network_{dir}_drop_total"), &d, counter(0.0, INT));
        b.add(&format!("node_network_{dir}_errs_total"), &d, counter(0.0, INT));
    }
    b.add("node_network_up", &d, Model::Const(1.0));
    b.add("node_network_mtu_bytes", &d, Model::Const(1500.0));
    b.out
}

/// Every fixed series of a host (veths excluded).
pub(crate) fn host_series(shape: &HostShape) -> Vec<SeriesDef> {
    let mut b = Builder { out: Vec::new() };
    let cpus: Vec<String> = (0..shape.cpus).map(|c| c.to_string()).collect();

    // CPU
    for cpu in &cpus {
        for (i, mode) in CPU_MODES.iter().enumerate() {
            b.add("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)], Model::Cpu { mode: i as u8 });
        }
        for mode in ["nice", "user"] {
            b.add("node_cpu_guest_seconds_total", &[("cpu", cpu), ("mode", mode)], Model::Const(0.0));
        }
        let c = [("cpu", cpu.as_str())];
        b.add(
            "node_cpu_info",
            &[
                ("cachesize", "36608 KB"),
                ("core", cpu),
                ("cpu", cpu),
                ("family", "6"),
                ("model", "106"),
                ("model_name", "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"),
                ("package", "0"),
                ("stepping", "6"),
                ("vendor", "GenuineIntel"),
            ],
            Model::Const(1.0),
        );
        b.add("node_cpu_core_throttles_total", &[("core", cpu), ("package", "0")], counter(0.0, INT));
        b.add("node_schedstat_running_seconds_total", &c, counter(0.2, FULL));
        b.add("node_schedstat_waiting_seconds_total", &c, counter(0.01, FULL));
        b.add("node_schedstat_timeslices_total", &c, counter(300.0, INT));
        b.add("node_softnet_processed_total", &c, counter(50.0, INT));
        b.add("node_softnet_dropped_total", &c, counter(0.0, INT));
        b.add("node_softnet_times_squeezed_total", &c, counter(0.01, INT));
        b.add(
            "node_cpu_scaling_frequency_hertz",
            &c,
            Model::Gauge { lo: 1.2e9, hi: 3.5e9, step: 0.2, prec: Precision::Dec(-3) },
        );
        b.add("node_cpu_scaling_frequency_max_hertz", &c, Model::Const(3.5e9));
        b.add("node_cpu_scaling_frequency_min_hertz", &c, Model::Const(1.2e9));
    }

    // Memory
    let m = shape.mem_bytes;
    let consts = [
        ("MemTotal", m),
        ("SwapTotal", 0.0),
        ("SwapFree", 0.0),
        ("SwapCached", 0.0),
        ("VmallocTotal", 35_184_372_087_808.0),
        ("HugePages_Total", 0.0),
        ("HugePages_Free", 0.0),
        ("HugePages_Rsvd", 0.0),
        ("HugePages_Surp", 0.0),
        ("Hugepagesize", 2_097_152.0),
        ("Hugetlb", 0.0),
        ("CommitLimit", m / 2.0),
        ("DirectMap4k", 300_000_000.0),
        ("DirectMap2M", m * 0.8),
        ("DirectMap1G", 0.0),
        ("Unevictable", 0.0),
        ("Mlocked", 0.0),
        ("HardwareCorrupted", 0.0),
        ("Bounce", 0.0),
        ("NFS_Unstable", 0.0),
    ];
    for (field, v) in consts {
        b.add(&format!("node_memory_{field}_bytes"), &[], Model::Const(v));
    }
    let walks = [
        ("MemFree", 0.05, 0.4),
        ("MemAvailable", 0.2, 0.7),
        ("Buffers", 0.01, 0.05),
        ("Cached", 0.1, 0.4),
        ("Active", 0.2, 0.5),
        ("Inactive", 0.1, 0.3),
        ("Active_anon", 0.1, 0.3),
        ("Inactive_anon", 0.01, 0.05),
        ("Active_file", 0.1, 0.2),
        ("Inactive_file", 0.05, 0.2),
        ("Dirty", 0.0, 0.001),
        ("Writeback", 0.0, 0.0001),
        ("AnonPages", 0.1, 0.3),
        ("Mapped", 0.02, 0.05),
        ("Shmem", 0.001, 0.01),
        ("Slab", 0.02, 0.05),
        ("SReclaimable", 0.01, 0.03),
        ("SUnreclaim", 0.01, 0.02),
        ("KernelStack", 0.001, 0.002),
        ("PageTables", 0.002, 0.005),
        ("Committed_AS", 0.3, 0.9),
        ("VmallocUsed", 0.002, 0.004),
        ("Percpu", 0.0005, 0.001),
        ("AnonHugePages", 0.0, 0.02),
        ("ShmemHugePages", 0.0, 0.0),
        ("WritebackTmp", 0.0, 0.0),
    ];
    for (field, lo, hi) in walks {
        b.add(&format!("node_memory_{field}_bytes"), &[], gauge(m * lo, m * hi, KIB));
    }

    // Disks
    for (i, dev) in shape.disks.iter().enumerate() {
        let d = [("device", *dev)];
        let ops = [
            ("reads_completed_total", 5.0, INT),
            ("reads_merged_total", 0.5, INT),
            ("read_bytes_total", 80e3, INT),
            ("read_time_seconds_total", 0.005, SEC3),
            ("writes_completed_total", 12.0, INT),
            ("writes_merged_total", 6.0, INT),
            ("written_bytes_total", 200e3, INT),
            ("write_time_seconds_total", 0.02, SEC3),
            ("io_time_seconds_total", 0.015, SEC3),
            ("io_time_weighted_seconds_total", 0.025, SEC3),
            ("discards_completed_total", 0.0, INT),
            ("discards_merged_total", 0.0, INT),
            ("discarded_sectors_total", 0.0, INT),
            ("discard_time_seconds_total", 0.0, SEC3),
            ("flush_requests_total", 1.0, INT),
            ("flush_requests_time_seconds_total", 0.001, SEC3),
        ];
        for (name, rate, prec) in ops {
            b.add(&format!("node_disk_{name}"), &d, counter(rate, prec));
        }
        b.add("node_disk_io_now", &d, gauge(0.0, 3.0, INT));
        let minor = (i * 16).to_string();
        b.add("node_disk_info", &[("device", dev), ("major", "8"), ("minor", &minor)], Model::Const(1.0));
    }

    // Filesystems
    for (i, (device, fstype, mountpoint)) in shape.filesystems.iter().enumerate() {
        let l = [("device", *device), ("fstype", *fstype), ("mountpoint", *mountpoint)];
        let size = if *fstype == "tmpfs" { m / 10.0 } else { (20 << (i % 4)) as f64 * 1e9 };
        b.add("node_filesystem_size_bytes", &l, Model::Const(size));
        b.add("node_filesystem_avail_bytes", &l, gauge(size * 0.2, size * 0.6, Precision::Kib));
        b.add("node_filesystem_free_bytes", &l, gauge(size * 0.25, size * 0.65, Precision::Kib));
        b.add("node_filesystem_files", &l, Model::Const(1_310_720.0));
        b.add("node_filesystem_files_free", &l, gauge(900_000.0, 1_200_000.0, INT));
        b.add("node_filesystem_readonly", &l, Model::Const(0.0));
        b.add("node_filesystem_device_error", &l, Model::Const(0.0));
    }

    // Network interfaces (netdev + netclass collectors)
    for nic in &shape.nics {
        let d = [("device", *nic)];
        let scale = if *nic == "eth0" { 1.0 } else { 0.05 };
        for (dir, bytes) in [("receive", 120e3), ("transmit", 90e3)] {
            let names = [
                ("bytes_total", bytes * scale),
                ("packets_total", bytes * scale / 700.0),
                ("errs_total", 0.0),
                ("drop_total", 0.001),
                ("fifo_total", 0.0),
                ("compressed_total", 0.0),
            ];
            for (n, rate) in names {
                b.add(&format!("node_network_{dir}_{n}"), &d, counter(rate, INT));
            }
        }
        b.add("node_network_receive_frame_total", &d, counter(0.0, INT));
        b.add("node_network_receive_multicast_total", &d, counter(0.02, INT));
        b.add("node_network_transmit_colls_total", &d, counter(0.0, INT));
        b.add("node_network_transmit_carrier_total", &d, counter(0.0, INT));
        for (n, v) in [
            ("up", 1.0),
            ("mtu_bytes", 1500.0),
            ("speed_bytes", 1.25e9),
            ("transmit_queue_length", 1000.0),
            ("carrier", 1.0),
            ("carrier_changes_total", 1.0),
            ("carrier_up_changes_total", 1.0),
            ("carrier_down_changes_total", 0.0),
            ("dormant", 0.0),
            ("flags", 4099.0),
            ("iface_id", 2.0),
            ("iface_link", 2.0),
            ("iface_link_mode", 0.0),
            ("net_dev_group", 0.0),
            ("protocol_type", 1.0),
            ("address_assign_type", 0.0),
            ("name_assign_type", 4.0),
        ] {
            b.add(&format!("node_network_{n}"), &d, Model::Const(v));
        }
        b.add(
            "node_network_info",
            &[
                ("address", "52:54:00:12:34:56"),
                ("broadcast", "ff:ff:ff:ff:ff:ff"),
                ("device", nic),
                ("duplex", "full"),
                ("operstate", "up"),
            ],
            Model::Const(1.0),
        );
    }

    // netstat, sockstat, vmstat
    for (name, rate) in [
        ("Icmp_InErrors", 0.0),
        ("Icmp_InMsgs", 0.05),
        ("Icmp_OutMsgs", 0.05),
        ("Icmp6_InErrors", 0.0),
        ("Icmp6_InMsgs", 0.02),
        ("Icmp6_OutMsgs", 0.03),
        ("Ip6_InOctets", 100.0),
        ("Ip6_OutOctets", 100.0),
        ("IpExt_InOctets", 120e3),
        ("IpExt_OutOctets", 90e3),
        ("Ip_Forwarding", 0.0),
        ("TcpExt_ListenDrops", 0.0),
        ("TcpExt_ListenOverflows", 0.0),
        ("TcpExt_SyncookiesFailed", 0.0),
        ("TcpExt_SyncookiesRecv", 0.0),
        ("TcpExt_SyncookiesSent", 0.0),
        ("TcpExt_TCPSynRetrans", 0.01),
        ("TcpExt_TCPTimeouts", 0.01),
        ("Tcp_ActiveOpens", 2.0),
        ("Tcp_InErrs", 0.0),
        ("Tcp_InSegs", 150.0),
        ("Tcp_OutRsts", 0.5),
        ("Tcp_OutSegs", 140.0),
        ("Tcp_PassiveOpens", 1.5),
        ("Tcp_RetransSegs", 0.05),
        ("Udp6_InDatagrams", 0.0),
        ("Udp6_InErrors", 0.0),
        ("Udp6_NoPorts", 0.0),
        ("Udp6_OutDatagrams", 0.0),
        ("UdpLite_InErrors", 0.0),
        ("Udp_InDatagrams", 3.0),
        ("Udp_InErrors", 0.0),
        ("Udp_NoPorts", 0.01),
        ("Udp_OutDatagrams", 3.0),
    ] {
        b.add(&format!("node_netstat_{name}"), &[], counter(rate, INT));
    }
    b.add("node_netstat_Tcp_CurrEstab", &[], gauge(10.0, 80.0, INT));
    for (name, lo, hi) in [
        ("FRAG_inuse", 0.0, 0.0),
        ("FRAG_memory", 0.0, 0.0),
        ("RAW_inuse", 0.0, 1.0),
        ("TCP_alloc", 20.0, 90.0),
        ("TCP_inuse", 10.0, 80.0),
        ("TCP_mem", 1.0, 40.0),
        ("TCP_mem_bytes", 4096.0, 163_840.0),
        ("TCP_orphan", 0.0, 2.0),
        ("TCP_tw", 0.0, 30.0),
        ("UDPLITE_inuse", 0.0, 0.0),
        ("UDP_inuse", 2.0, 6.0),
        ("UDP_mem", 1.0, 10.0),
        ("UDP_mem_bytes", 4096.0, 40_960.0),
        ("sockets_used", 200.0, 400.0),
        ("TCP6_inuse", 2.0, 10.0),
        ("UDP6_inuse", 1.0, 3.0),
    ] {
        b.add(&format!("node_sockstat_{name}"), &[], gauge(lo, hi, INT));
    }
    for (name, rate) in [
        ("oom_kill", 0.0),
        ("pgfault", 2000.0),
        ("pgmajfault", 0.2),
        ("pgpgin", 40.0),
        ("pgpgout", 200.0),
        ("pswpin", 0.0),
        ("pswpout", 0.0),
    ] {
        b.add(&format!("node_vmstat_{name}"), &[], counter(rate, INT));
    }

    // Kernel, time, misc
    let load = |lo, hi| Model::Gauge { lo, hi, step: 0.05, prec: SEC2 };
    b.add("node_load1", &[], load(0.0, f64::from(shape.cpus)));
    b.add("node_load5", &[], load(0.1, f64::from(shape.cpus) * 0.8));
    b.add("node_load15", &[], load(0.2, f64::from(shape.cpus) * 0.6));
    b.add("node_boot_time_seconds", &[], Model::BootTime);
    b.add("node_time_seconds", &[], Model::Time);
    b.add("node_context_switches_total", &[], counter(1500.0, INT));
    b.add("node_intr_total", &[], counter(900.0, INT));
    b.add("node_forks_total", &[], counter(3.0, INT));
    b.add("node_procs_running", &[], gauge(1.0, 4.0, INT));
    b.add("node_procs_blocked", &[], gauge(0.0, 1.0, INT));
    b.add("node_entropy_available_bits", &[], Model::Const(256.0));
    b.add("node_entropy_pool_size_bits", &[], Model::Const(256.0));
    b.add("node_filefd_allocated", &[], gauge(1500.0, 3000.0, INT));
    b.add("node_filefd_maximum", &[], Model::Const(9_223_372_036_854_775_807.0));
    b.add("node_nf_conntrack_entries", &[], gauge(50.0, 400.0, INT));
    b.add("node_nf_conntrack_entries_limit", &[], Model::Const(262_144.0));
    b.add("node_arp_entries", &[("device", "eth0")], gauge(1.0, 5.0, INT));
    b.add("node_textfile_scrape_error", &[], Model::Const(0.0));
    b.add("node_selinux_enabled", &[], Model::Const(0.0));
    b.add("node_cpu_package_throttles_total", &[("package", "0")], counter(0.0, INT));
    b.add("node_edac_correctable_errors_total", &[("controller", "0")], counter(0.0, INT));
    b.add("node_edac_uncorrectable_errors_total", &[("controller", "0")], counter(0.0, INT));
    b.add(
        "node_rapl_package_joules_total",
        &[("index", "0"), ("path", "/sys/class/powercap/intel-rapl:0")],
        counter(35.0, SEC3),
    );
    b.add(
        "node_rapl_dram_joules_total",
        &[("index", "0"), ("path", "/sys/class/powercap/intel-rapl:0:0")],
        counter(4.0, SEC3),
    );
    b.add(
        "node_dmi_info",
        &[
            ("bios_vendor", "SeaBIOS"),
            ("bios_version", "1.16.2-debian-1.16.2-1"),
            ("product_name", "Standard PC (Q35 + ICH9, 2009)"),
            ("system_vendor", "QEMU"),
        ],
        Model::Const(1.0),
    );
    for ip in ["v4", "v6"] {
        for queue in ["rx", "tx"] {
            b.add("node_udp_queues", &[("ip", ip), ("queue", queue)], gauge(0.0, 2.0, INT));
        }
    }
    for (name, rate) in [
        ("cpu_waiting_seconds_total", 0.01),
        ("io_stalled_seconds_total", 0.001),
        ("io_waiting_seconds_total", 0.002),
        ("memory_stalled_seconds_total", 0.0),
        ("memory_waiting_seconds_total", 0.0),
    ] {
        b.add(&format!("node_pressure_{name}"), &[], counter(rate, Precision::Dec(6)));
    }
    for (name, model) in [
        ("offset_seconds", gauge(-0.001, 0.001, FULL)),
        ("sync_status", Model::Const(1.0)),
        ("frequency_adjustment_ratio", gauge(0.99999, 1.00001, FULL)),
        ("maxerror_seconds", gauge(0.01, 0.5, Precision::Dec(6))),
        ("estimated_error_seconds", gauge(0.0, 0.001, Precision::Dec(6))),
        ("loop_time_constant", Model::Const(7.0)),
        ("status", Model::Const(8193.0)),
        ("tick_seconds", Model::Const(0.01)),
        ("tai_offset_seconds", Model::Const(0.0)),
        ("pps_frequency_hertz", Model::Const(0.0)),
        ("pps_jitter_seconds", Model::Const(0.0)),
        ("pps_shift_seconds", Model::Const(0.0)),
        ("pps_stability_hertz", Model::Const(0.0)),
        ("pps_calibration_total", Model::Const(0.0)),
        ("pps_error_total", Model::Const(0.0)),
    ] {
        b.add(&format!("node_timex_{name}"), &[], model);
    }
    for (chip, sensor) in [
        ("platform_coretemp_0", "temp1"),
        ("platform_coretemp_0", "temp2"),
        ("platform_coretemp_0", "temp3"),
        ("acpitz", "temp1"),
    ] {
        let l = [("chip", chip), ("sensor", sensor)];
        b.add("node_hwmon_temp_celsius", &l, gauge(35.0, 80.0, Precision::Dec(1)));
        b.add("node_hwmon_temp_crit_celsius", &l, Model::Const(100.0));
    }
    b.add(
        "node_uname_info",
        &[
            ("domainname", "(none)"),
            ("machine", "x86_64"),
            ("nodename", "host"),
            ("release", "6.1.0-27-amd64"),
            ("sysname", "Linux"),
            ("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)"),
        ],
        Model::Const(1.0),
    );
    b.add(
        "node_os_info",
        &[
            ("id", "debian"),
            ("name", "Debian GNU/Linux"),
            ("pretty_name", "Debian GNU/Linux 12 (bookworm)"),
            ("version", "12 (bookworm)"),
            ("version_id", "12"),
        ],
        Model::Const(1.0),
    );
    b.add(
        "node_exporter_build_info",
        &[
            ("branch", "HEAD"),
            ("goversion", "go1.21.4"),
            ("revision", "f1e0e8360aa60b6cb5e5cc1560bed348fc2c1895"),
            ("version", "1.7.0"),
        ],
        Model::Const(1.0),
    );
    for c in COLLECTORS {
        b.add("node_scrape_collector_duration_seconds", &[("collector", c)], Model::Duration { median: 0.0004 });
        b.add("node_scrape_collector_success", &[("collector", c)], Model::Const(1.0));
    }

    // The exporter's own Go runtime and process metrics
    for q in ["0", "0.25", "0.5", "0.75", "1"] {
        b.add("go_gc_duration_seconds", &[("quantile", q)], Model::Duration { median: 4e-5 });
    }
    b.add("go_gc_duration_seconds_sum", &[], counter(0.0002, FULL));
    b.add("go_gc_duration_seconds_count", &[], counter(0.05, INT));
    b.add("go_goroutines", &[], gauge(7.0, 12.0, INT));
    b.add("go_threads", &[], gauge(6.0, 9.0, INT));
    b.add("go_info", &[("version", "go1.21.4")], Model::Const(1.0));
    for (name, lo, hi) in [
        ("alloc_bytes", 2e6, 6e6),
        ("buck_hash_sys_bytes", 1.45e6, 1.46e6),
        ("gc_sys_bytes", 3e6, 4e6),
        ("heap_alloc_bytes", 2e6, 6e6),
        ("heap_idle_bytes", 2e6, 8e6),
        ("heap_inuse_bytes", 3e6, 7e6),
        ("heap_objects", 1e4, 4e4),
        ("heap_released_bytes", 1e6, 5e6),
        ("heap_sys_bytes", 1.1e7, 1.2e7),
        ("mcache_inuse_bytes", 4800.0, 4800.0),
        ("mcache_sys_bytes", 15600.0, 15600.0),
        ("mspan_inuse_bytes", 1e5, 1.5e5),
        ("mspan_sys_bytes", 1.5e5, 1.7e5),
        ("next_gc_bytes", 4e6, 8e6),
        ("other_sys_bytes", 1e6, 1.2e6),
        ("stack_inuse_bytes", 6e5, 8e5),
        ("stack_sys_bytes", 6e5, 8e5),
        ("sys_bytes", 1.9e7, 2.1e7),
    ] {
        b.add(&format!("go_memstats_{name}"), &[], gauge(lo, hi, INT));
    }
    b.add("go_memstats_alloc_bytes_total", &[], counter(2e5, INT));
    b.add("go_memstats_frees_total", &[], counter(2000.0, INT));
    b.add("go_memstats_mallocs_total", &[], counter(2100.0, INT));
    b.add("go_memstats_lookups_total", &[], Model::Const(0.0));
    b.add("go_memstats_last_gc_time_seconds", &[], Model::Time);
    b.add("process_cpu_seconds_total", &[], counter(0.01, SEC2));
    b.add("process_open_fds", &[], gauge(8.0, 12.0, INT));
    b.add("process_max_fds", &[], Model::Const(1_048_576.0));
    b.add("process_resident_memory_bytes", &[], gauge(1.8e7, 2.4e7, KIB));
    b.add("process_virtual_memory_bytes", &[], gauge(7.3e8, 7.4e8, KIB));
    b.add("process_virtual_memory_max_bytes", &[], Model::Const(1.8446744073709552e19));
    b.add("process_start_time_seconds", &[], Model::BootTime);
    b.add("promhttp_metric_handler_requests_in_flight", &[], Model::Const(1.0));
    for code in ["200", "500", "503"] {
        let rate = if code == "200" { 1.0 / 15.0 } else { 0.0 };
        b.add("promhttp_metric_handler_requests_total", &[("code", code)], counter(rate, INT));
    }
    b.out
}

/// The series Prometheus itself adds to every target, and how they are filled.
pub(crate) fn scrape_series() -> Vec<SeriesDef> {
    let mut b = Builder { out: Vec::new() };
    b.add("up", &[], Model::Up);
    b.add("scrape_duration_seconds", &[], Model::ScrapeDuration);
    b.add("scrape_samples_scraped", &[], Model::ScrapeSamples);
    b.add("scrape_samples_post_metric_relabeling", &[], Model::ScrapeSamples);
    b.add("scrape_series_added", &[], Model::ScrapeSeriesAdded);
    b.out
}
