//! The habits Prometheus operators bring, on the real binary: `--version` and help
//! with defaults, `--listen :PORT`, log lines without a terminal (no colour codes,
//! logfmt and JSON parse), the start-up log, and start-up checks of the data dir and
//! the bucket.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_tests::{free_port, run_strata, strata_bin};

#[test]
fn version_and_help_work_on_every_command() {
    let Some(bin) = strata_bin() else { return };
    for args in [&["--version"][..], &["serve", "--version"], &["query", "--version"], &["compact", "--version"]] {
        let r = run_strata(&bin, args, Duration::from_secs(20)).unwrap();
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.output);
        assert!(r.output.contains(env!("CARGO_PKG_VERSION")), "{args:?}: {}", r.output);
    }
    let r = run_strata(&bin, &["serve", "--help"], Duration::from_secs(20)).unwrap();
    assert_eq!(r.code, Some(0), "{}", r.output);
    for want in ["[default: ./data]", "[default: 127.0.0.1:9201]", "--log.level", "--log.format", "logfmt"] {
        assert!(r.output.contains(want), "{want} missing: {}", r.output);
    }
}

/// Runs `strata serve` with stderr piped (not a terminal) until ready, stops it with
/// SIGTERM and returns what it logged.
async fn serve_and_log(args: &[&str], port: u16) -> String {
    let bin = strata_bin().expect("checked by the caller");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "strata exited during start-up");
        if client.get(format!("http://127.0.0.1:{port}/-/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_without_a_terminal_have_no_colour_and_parse() {
    if strata_bin().is_none() {
        return;
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let text = serve_and_log(&["--listen", &listen], port).await;
    assert!(!text.contains('\u{1b}'), "ANSI codes in a pipe: {text:?}");
    assert!(text.contains("starting strata serve") && text.contains("objstore=FILESYSTEM"), "{text}");

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let text = serve_and_log(&["--listen", &listen, "--log.format", "logfmt"], port).await;
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines {
        assert!(l.starts_with("ts=") && l.contains(" level=") && l.contains(" msg="), "not logfmt: {l}");
    }
    let pos = |msg: &str| lines.iter().position(|l| l.contains(msg)).unwrap_or_else(|| panic!("{msg}: {text}"));
    let start = lines[pos("starting strata serve")];
    assert!(
        start.contains(&format!("version={}", env!("CARGO_PKG_VERSION"))) && start.contains("revision="),
        "{start}"
    );
    assert!(start.contains("objstore=\"FILESYSTEM directory="), "{start}");
    // Listening comes after the data dir and the bucket were checked; ready after replay.
    assert!(pos("starting strata serve") < pos("listening") && pos("listening") < pos("ready"), "{text}");

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let text = serve_and_log(&["--listen", &listen, "--log.format=json", "--log.level=debug"], port).await;
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
    }
    assert!(text.contains("\"DEBUG\""), "--log.level=debug shows debug lines: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_without_a_host_is_every_interface() {
    if strata_bin().is_none() {
        return;
    }
    let port = free_port();
    let text = serve_and_log(&["--listen", &format!(":{port}")], port).await;
    assert!(text.contains(&format!("0.0.0.0:{port}")), "{text}");
}

#[test]
fn an_unreachable_bucket_fails_the_start_naming_the_store() {
    let Some(bin) = strata_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket.yml");
    std::fs::write(
        &bucket,
        "type: S3\nconfig: {bucket: nowhere, endpoint: '127.0.0.1:1', insecure: true, access_key: a, secret_key: s, request_timeout: 1s}\n",
    )
    .unwrap();
    let data = dir.path().join("data").display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let args = ["serve", "--data-dir", &data, "--listen", &listen, "--objstore.config-file", bucket.to_str().unwrap()];
    let r = run_strata(&bin, &args, Duration::from_secs(60)).unwrap();
    assert_eq!(r.code, Some(1), "{}", r.output);
    assert!(
        r.output.contains("S3 bucket=nowhere endpoint=127.0.0.1:1") && r.output.contains("not reachable"),
        "{}",
        r.output
    );
    assert!(!r.output.contains("listening"), "{}", r.output);
}

#[test]
fn an_unusable_data_dir_is_reported_as_the_data_dir() {
    let Some(bin) = strata_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let data = file.join("data").display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let r = run_strata(&bin, &["serve", "--data-dir", &data, "--listen", &listen], Duration::from_secs(30)).unwrap();
    assert_eq!(r.code, Some(1), "{}", r.output);
    assert!(r.output.contains(&format!("data dir {data}")), "{}", r.output);
    assert!(!r.output.contains("object storage"), "{}", r.output);
}
