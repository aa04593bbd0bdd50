//! Crash safety: concurrent writers, the real binary killed with SIGKILL at random
//! moments, restarted, 20 cycles. Every acknowledged sample must be there afterwards,
//! bit-exact, and nothing may be duplicated or invented.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::prometheus as pb;
use strata_tests::{StrataProcess, all_series, remote_read, series, strata_bin, write_v1};
use tokio::sync::Mutex;

const WRITERS: usize = 4;
const SERIES_PER_WRITER: usize = 5;
const CYCLES: usize = 20;

/// The value a series has at a timestamp: lets the check spot invented samples.
fn value(series: usize, t: i64) -> f64 {
    (series as f64) * 1e6 + (t as f64) * 0.25
}

/// A small deterministic PRNG (xorshift64*), seeded per run and printed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[derive(Default)]
struct Acked {
    /// series index → acknowledged timestamps.
    samples: BTreeMap<usize, Vec<i64>>,
    /// series index → next timestamp to send.
    next_t: BTreeMap<usize, i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_acknowledged_sample() {
    let Some(bin) = strata_bin() else { return };
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    for cycle in 0..CYCLES {
        let proc = StrataProcess::start(&bin, dir.path(), &[]).await.unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        let base = proc.base();
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
            writers.push(tokio::spawn(async move {
                loop {
                    let (batch, ts): (Vec<pb::TimeSeries>, Vec<(usize, Vec<i64>)>) = {
                        let mut a = acked.lock().await;
                        (0..SERIES_PER_WRITER)
                            .map(|k| {
                                let s = w * SERIES_PER_WRITER + k;
                                let t0 = *a.next_t.entry(s).or_insert(1);
                                let times: Vec<i64> = (t0..t0 + 3).collect();
                                a.next_t.insert(s, t0 + 3);
                                let samples: Vec<(i64, f64)> = times.iter().map(|&t| (t, value(s, t))).collect();
                                (series(&[("__name__", "crash"), ("s", &s.to_string())], &samples), (s, times))
                            })
                            .unzip()
                    };
                    let req = pb::WriteRequest { timeseries: batch, metadata: vec![] };
                    match write_v1(&client, &base, &req, None).await {
                        Ok((204, _)) => {
                            let mut a = acked.lock().await;
                            for (s, times) in ts {
                                a.samples.entry(s).or_default().extend(times);
                            }
                        }
                        Ok((status, body)) => panic!("unexpected answer {status}: {body}"),
                        Err(_) => return, // the server died under us
                    }
                }
            }));
        }
        let delay = 50 + rng.next() % 400;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        proc.kill();
        for w in writers {
            w.await.unwrap();
        }
    }

    // Final start: read everything back and check it.
    let proc = StrataProcess::start(&bin, dir.path(), &[]).await.unwrap();
    let got = remote_read(&client, &proc.base(), all_series(), 0, i64::MAX, None).await.unwrap();
    let a = acked.lock().await;
    let total_acked: usize = a.samples.values().map(Vec::len).sum();
    assert!(total_acked > 0, "no write was ever acknowledged");
    let mut found = 0;
    for ts in &got {
        let s: usize = ts.labels.iter().find(|l| l.name == "s").unwrap().value.parse().unwrap();
        let times: Vec<i64> = ts.samples.iter().map(|x| x.timestamp).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "series {s}: duplicated or unordered timestamps");
        for x in &ts.samples {
            assert_eq!(
                x.value.to_bits(),
                value(s, x.timestamp).to_bits(),
                "series {s} t={}: invented value",
                x.timestamp
            );
        }
        for t in a.samples.get(&s).into_iter().flatten() {
            assert!(times.binary_search(t).is_ok(), "series {s}: acknowledged sample t={t} lost");
            found += 1;
        }
    }
    assert_eq!(found, total_acked, "some acknowledged series are missing entirely");
    println!("crash test: {CYCLES} SIGKILL cycles, {total_acked} acknowledged samples all present");
    let status = proc.terminate().unwrap();
    assert!(status.success(), "SIGTERM must shut down cleanly, got {status}");
}
