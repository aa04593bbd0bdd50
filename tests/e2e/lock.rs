//! The data dir lock with the real binary: a second `strata serve` on a dir in use
//! exits 1 naming the holder and touches nothing; after the holder is SIGKILLed
//! (its lock file left behind) the next start takes over.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use strata_model::now_ms;
use strata_proto::prometheus as pb;
use strata_tests::{StrataProcess, all_series, free_port, remote_read, series, strata_bin, write_v1};

/// Every file under `dir` (relative path → contents).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_strata_on_one_data_dir_exits_and_a_dead_holder_is_taken_over() {
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let req = |t: i64| pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "locked")], &[(t, 1.0)])],
        metadata: vec![],
    };

    let first = StrataProcess::start(&bin, &data, &[]).await.unwrap();
    let t0 = now_ms();
    assert_eq!(write_v1(&client, &first.base(), &req(t0), None).await.unwrap().0, 204);
    let first_pid = first.child.id();
    assert_eq!(std::fs::read_to_string(data.join("lock")).unwrap().trim(), first_pid.to_string());
    let before = files(&data);

    // The second exits 1 at once, with one line naming the dir and the holder.
    let port = free_port();
    let second = tokio::process::Command::new(&bin)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), second).await.expect("second strata kept running").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let want = format!(
        "data dir {} is locked by another strata (pid {first_pid}); stop it or use another --data-dir",
        data.display()
    );
    assert_eq!(stderr.trim(), want);
    // It stopped before listening, and left the first's files as they were.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the second strata listened");
    assert_eq!(files(&data), before, "the second strata touched the data dir");

    // The first keeps serving: writes are acknowledged, reads answer.
    assert_eq!(write_v1(&client, &first.base(), &req(t0 + 1), None).await.unwrap().0, 204);
    let got = remote_read(&client, &first.base(), all_series(), 0, i64::MAX, None).await.unwrap();
    assert_eq!(got.iter().map(|s| s.samples.len()).sum::<usize>(), 2);

    // SIGKILL leaves the lock file (with the dead pid) behind; the kernel dropped the lock.
    first.kill();
    assert_eq!(std::fs::read_to_string(data.join("lock")).unwrap().trim(), first_pid.to_string());
    let next = StrataProcess::start(&bin, &data, &[]).await.expect("a start after the holder died takes over");
    assert_eq!(std::fs::read_to_string(data.join("lock")).unwrap().trim(), next.child.id().to_string());
    let got = remote_read(&client, &next.base(), all_series(), 0, i64::MAX, None).await.unwrap();
    assert_eq!(got.iter().map(|s| s.samples.len()).sum::<usize>(), 2, "acknowledged samples lost");
    let status = next.terminate().unwrap();
    assert!(status.success(), "SIGTERM must shut down cleanly, got {status}");
}
