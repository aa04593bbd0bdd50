//! Strata's benchmark harness: generates a realistic, seeded node_exporter workload,
//! replays it over remote write 1.0 into Strata, VictoriaMetrics and Prometheus, and
//! compares CPU, memory, disk and query latency, after checking every database
//! returns the same series and sample counts (a fast wrong answer cannot win).
//!
//! ```text
//!  workload (seeded hosts ─► shard batches ─► snappy bodies) ─► <cache>/bodies.bin
//!                                                                   │ load + shift to "now"
//!                                                                   ▼
//!  run:  for each target ─ spawn on 127.0.0.1:<free port>, fresh data dir, wait ready
//!          ├─ replay (N workers, shard order kept) ─► POST /api/v1/write
//!          ├─ /proc/<pid>: CPU-seconds over the replay ─ flush ─ VmHWM, VmRSS
//!          ├─ count check (/api/v1/series, count_over_time) vs manifest and peers
//!          ├─ dashboard queries × reps (median latency)
//!          └─ stop by PID (SIGTERM, then SIGKILL) ─ du data dir
//!        report ─► table (ratios to VictoriaMetrics), report.json, ratios.svg
//!  ha:   the same workload as an HA pair writes it (two replicas, `ha` module):
//!        tracker and VictoriaMetrics dedup on the doubled stream, query-time dedup
//!        against one replica ─► table, ha-report.json
//! ```

mod progress;
mod rng;

pub mod downsample;
pub mod ha;
pub mod replay;
pub mod report;
pub mod run;
pub mod workload;
