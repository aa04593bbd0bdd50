//! The frontend over a real in-process Strata server (the real router on a loopback
//! port, data written by remote write across UTC midnights): split + merge answers
//! equal the unsplit ones exactly, the caches serve old pieces, memcached going away
//! degrades to no cache.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use strata_proto::prometheus as pb;
use strata_tests::{Sandbox, missing_tool, series, write_v1};

use super::*;

const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

/// A Strata with three days of data up to now.
struct Data {
    strata: Sandbox,
    now: i64,
    /// Today's UTC midnight.
    day0: i64,
}

async fn strata_with_data() -> Data {
    let strata = Sandbox::start().await;
    let now = strata_model::now_ms();
    let day0 = now - now.rem_euclid(DAY);
    let from = day0 - 2 * DAY - 3 * 3_600_000;
    let every = |step: i64, skip: &dyn Fn(i64) -> bool, f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..).map(|k| from + k * step).take_while(|&t| t <= now).filter(|&t| !skip(t)).map(|t| (t, f(t))).collect()
    };
    // No gauge samples from 4 minutes before to 1 minute after each midnight, so the
    // 5-minute lookback at the first steps of a day reaches into the day before.
    let near_midnight = |t: i64| {
        let r = t.rem_euclid(DAY);
        !(MIN..DAY - 4 * MIN).contains(&r)
    };
    let mut ts = Vec::new();
    for (job, inst, rate) in [("a", "1", 1.0), ("a", "2", 2.5), ("b", "1", 0.5)] {
        ts.push(series(
            &[("__name__", "c_total"), ("job", job), ("instance", inst)],
            &every(30_000, &|_| false, &|t| ((t - from) / 30_000) as f64 * rate),
        ));
        ts.push(series(
            &[("__name__", "g"), ("job", job), ("instance", inst)],
            &every(45_000, &near_midnight, &|t| ((t / 45_000) % 17) as f64 * rate),
        ));
    }
    ts.push(series(
        &[("__name__", "sparse"), ("job", "a")],
        &every(10 * MIN + 7_000, &|_| false, &|t| (t % 1000) as f64),
    ));
    let req = pb::WriteRequest { timeseries: ts, ..Default::default() };
    let (status, body) = write_v1(&strata.client, &strata.url(""), &req, None).await.expect("write");
    assert_eq!(status, 204, "{body}");
    Data { strata, now, day0 }
}

/// The frontend router on a loopback port in front of `downstream`.
async fn start_frontend(cfg: FrontendConfig, downstream: &str) -> (SocketAddr, Frontend) {
    let metrics = Arc::new(Metrics::default());
    let http = HttpDownstream::new(downstream, Duration::from_secs(30), metrics.clone()).unwrap();
    let proxy = Proxy { client: http.client().clone(), base: http.base().to_string() };
    let fe = Frontend::new(&cfg, Arc::new(http), metrics.clone()).unwrap();
    let state = HttpState {
        service: fe.service(),
        metrics,
        default_tenant: strata_model::TenantId::new("anonymous").unwrap(),
        proxy: Some(proxy),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).await;
    });
    (addr, fe)
}

async fn get(client: &reqwest::Client, url: &str, q: &[(&str, String)]) -> (u16, Value) {
    let url = reqwest::Url::parse_with_params(url, q).unwrap();
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn range_params<'a>(query: &str, start: i64, end: i64, step: i64, extra: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    let mut v = vec![
        ("query", query.to_string()),
        ("start", downstream::secs(start)),
        ("end", downstream::secs(end)),
        ("step", downstream::secs(step)),
    ];
    for (k, val) in extra {
        v.push((k, val.to_string()));
    }
    v
}

/// Queries whose answers must not change by splitting: offsets, `@`, subqueries,
/// lookback across midnight, range functions over a whole day.
fn queries(d: &Data) -> Vec<String> {
    let at = downstream::secs(d.day0 - DAY + 30_000);
    vec![
        "g".into(),
        "c_total".into(),
        "rate(c_total[5m])".into(),
        "sum by (job) (rate(c_total[10m] offset 1h))".into(),
        "c_total offset 25h".into(),
        format!("g @ {at}"),
        format!("rate(c_total[5m] @ {at} offset 5m)"),
        "g @ start()".into(),
        "rate(c_total[5m] @ end())".into(),
        "max_over_time(g[1h:7m])".into(),
        "avg_over_time(rate(c_total[5m])[30m:1m] offset 2m)".into(),
        "last_over_time(g[20m])".into(),
        "count_over_time(sparse[1d])".into(),
        "timestamp(g)".into(),
        "time()".into(),
        "scalar(sum(g)) * 2".into(),
        "g > 5".into(),
        "absent(nonexistent)".into(),
        "topk(2, g)".into(),
    ]
}

#[tokio::test]
async fn split_and_merged_answers_equal_unsplit_ones_exactly() {
    let d = strata_with_data().await;
    let cfg = FrontendConfig { cache: CacheConfig::None, ..FrontendConfig::default() };
    let (fe, frontend) = start_frontend(cfg, &d.strata.url("")).await;
    let client = reqwest::Client::new();
    let ranges = [
        (d.day0 - 2 * DAY - 3_600_000 + 17_000, d.now, 60_000),
        (d.day0 - 2 * DAY, d.day0 - 1, 7 * MIN),
        (d.day0 - DAY - 5 * 3_600_000, d.day0 - DAY + 3 * 3_600_000, 77_000),
        (d.day0 - 2 * DAY - 2 * 3_600_000, d.now, 3_600_000),
    ];
    let mut compared = 0;
    for q in queries(&d) {
        for &(start, end, step) in &ranges {
            for extra in [&[][..], &[("lookback_delta", "10m")][..]] {
                let p = range_params(&q, start, end, step, extra);
                let (s1, direct) = get(&client, &d.strata.url("/api/v1/query_range"), &p).await;
                let (s2, split) = get(&client, &format!("http://{fe}/api/v1/query_range"), &p).await;
                assert_eq!(s1, 200, "{q}: {direct}");
                assert_eq!((s2, &split), (s1, &direct), "{q} over [{start}, {end}] step {step} {extra:?}");
                compared += 1;
            }
        }
    }
    // The answers compared were really split: more pieces than queries.
    let pieces = frontend.metrics().split_pieces.get();
    assert!(pieces >= compared as u64 * 2, "{pieces} pieces for {compared} queries");

    // Instant queries pass through unchanged.
    let p = vec![("query", "sum by (job) (g)".to_string()), ("time", downstream::secs(d.day0 - 3 * MIN))];
    let direct = get(&client, &d.strata.url("/api/v1/query"), &p).await;
    assert_eq!(get(&client, &format!("http://{fe}/api/v1/query"), &p).await, direct);
}

#[tokio::test]
async fn errors_keep_the_downstream_status_and_other_paths_are_proxied() {
    let d = strata_with_data().await;
    let (fe, _) = start_frontend(FrontendConfig::default(), &d.strata.url("")).await;
    let client = reqwest::Client::new();
    let url = format!("http://{fe}/api/v1/query_range");
    // A parse error from the downstream: its 400 and its words.
    let (s, body) = get(&client, &url, &range_params("sum((", d.day0 - DAY, d.day0, 60_000, &[])).await;
    let (s0, direct) =
        get(&client, &d.strata.url("/api/v1/query_range"), &range_params("sum((", d.day0 - DAY, d.day0, 60_000, &[]))
            .await;
    assert_eq!((s, &body), (s0, &direct));
    assert_eq!(s, 400);
    // Refused by the frontend itself, as Prometheus refuses it.
    let (s, body) =
        get(&client, &url, &[("query", "g".into()), ("start", "10".into()), ("end", "1".into()), ("step", "1".into())])
            .await;
    assert_eq!((s, body["status"].as_str(), body["errorType"].as_str()), (400, Some("error"), Some("bad_data")));
    // Label APIs and build info go to the downstream unchanged.
    for path in ["/api/v1/labels", "/api/v1/label/job/values", "/api/v1/status/buildinfo"] {
        let direct = get(&client, &d.strata.url(path), &[]).await;
        assert_eq!(get(&client, &format!("http://{fe}{path}"), &[]).await, direct, "{path}");
    }
    let m = [("match[]", "g".to_string())];
    assert_eq!(
        get(&client, &format!("http://{fe}/api/v1/series"), &m).await,
        get(&client, &d.strata.url("/api/v1/series"), &m).await
    );
    let (s, body) = get(&client, &format!("http://{fe}/nope"), &[]).await;
    assert_eq!((s, body["errorType"].as_str()), (404, Some("not_found")));

    // Downstream gone: 502 in Prometheus's shape.
    d.strata.stop().await;
    let (s, body) = get(&client, &url, &range_params("g", d.day0 - DAY, d.day0, 60_000, &[])).await;
    assert_eq!(
        (s, body["status"].as_str(), body["errorType"].as_str()),
        (502, Some("error"), Some("unavailable")),
        "{body}"
    );
    let (s, _) = get(&client, &format!("http://{fe}/api/v1/labels"), &[]).await;
    assert_eq!(s, 502);
}

/// One value of the frontend's `/metrics`, summed over label sets.
async fn metric(addr: SocketAddr, name: &str) -> f64 {
    strata_tests::metric(&reqwest::Client::new(), &format!("http://{addr}"), name).await.unwrap()
}

/// A dashboard load twice: the second is served from the cache except the fresh
/// piece; answers equal Strata's own. Returns (cacheable pieces, all pieces).
async fn dashboard_twice(d: &Data, fe: SocketAddr, backend: &str) -> (f64, f64) {
    let client = reqwest::Client::new();
    let (start, end, step) = (d.day0 - 2 * DAY - 3_600_000, d.now, 60_000);
    let pieces = split_ranges(start, end, step, DAY);
    let fresh_after = strata_model::now_ms() - 10 * MIN;
    let cacheable = pieces.iter().filter(|(_, e)| *e <= fresh_after).count() as f64;
    let queries = ["rate(c_total[5m])", "max_over_time(g[1h:7m])"];
    let hits0 = metric(fe, "strata_frontend_cache_hits_total").await;
    let misses0 = metric(fe, "strata_frontend_cache_misses_total").await;
    for load in 0..2 {
        for q in queries {
            let p = range_params(q, start, end, step, &[]);
            let direct = get(&client, &d.strata.url("/api/v1/query_range"), &p).await;
            assert_eq!(get(&client, &format!("http://{fe}/api/v1/query_range"), &p).await, direct, "{q}, load {load}");
        }
    }
    let n = queries.len() as f64;
    assert_eq!(metric(fe, "strata_frontend_cache_misses_total").await - misses0, n * cacheable, "{backend}");
    assert_eq!(metric(fe, "strata_frontend_cache_hits_total").await - hits0, n * cacheable, "{backend}");
    (cacheable, pieces.len() as f64)
}

#[tokio::test]
async fn memory_cache_serves_the_second_load_except_the_fresh_piece() {
    let d = strata_with_data().await;
    let (fe, _) = start_frontend(FrontendConfig::default(), &d.strata.url("")).await;
    let (cacheable, pieces) = dashboard_twice(&d, fe, "memory").await;
    assert!(cacheable >= 2.0 && pieces > cacheable, "{cacheable} of {pieces}");
    assert_eq!(metric(fe, "strata_frontend_cache_skipped_total").await, 2.0 * 2.0 * (pieces - cacheable));
    assert!(metric(fe, "strata_frontend_cache_memory_bytes").await > 0.0);
    assert_eq!(metric(fe, "strata_frontend_queries_total").await, 4.0);
}

/// A real memcached on 127.0.0.1:`port`, stopped by pid when dropped.
struct MemcachedProc(Child);

impl MemcachedProc {
    async fn start(port: u16) -> Option<MemcachedProc> {
        let child = Command::new("memcached")
            // `-u` is used only when run as root, which memcached refuses otherwise.
            .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-m", "64", "-u", "nobody"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                missing_tool("memcached", &format!("{e} (apt-get install memcached; scripts/install-deps.sh)"));
                return None;
            }
        };
        let p = MemcachedProc(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(p);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("memcached did not listen on {port}");
    }
}

impl Drop for MemcachedProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The port of this test's memcached (below 32768, away from the ephemeral range).
const MEMCACHED_PORT: u16 = 21211;

#[tokio::test]
async fn memcached_cache_serves_old_pieces_and_a_dead_memcached_is_no_cache() {
    let Some(mc) = MemcachedProc::start(MEMCACHED_PORT).await else { return };
    let d = strata_with_data().await;
    let cfg = FrontendConfig {
        cache: CacheConfig::Memcached(MemcachedConfig {
            addresses: vec![format!("127.0.0.1:{MEMCACHED_PORT}")],
            ..MemcachedConfig::default()
        }),
        ..FrontendConfig::default()
    };
    let (fe, _) = start_frontend(cfg, &d.strata.url("")).await;
    let (cacheable, _) = dashboard_twice(&d, fe, "memcached").await;
    assert!(cacheable >= 2.0);
    assert_eq!(metric(fe, "strata_frontend_cache_errors_total").await, 0.0);

    // Killed mid-test: answers stay right, failures are counted, no error reaches a client.
    drop(mc);
    let client = reqwest::Client::new();
    let p = range_params("rate(c_total[5m])", d.day0 - 2 * DAY - 3_600_000, d.now, 60_000, &[]);
    let direct = get(&client, &d.strata.url("/api/v1/query_range"), &p).await;
    for _ in 0..3 {
        assert_eq!(get(&client, &format!("http://{fe}/api/v1/query_range"), &p).await, direct);
    }
    assert!(metric(fe, "strata_frontend_cache_errors_total").await >= 3.0 * cacheable);

    // Back again (empty): filled by the next load, served from it after that.
    let _mc = MemcachedProc::start(MEMCACHED_PORT).await.expect("restart memcached");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hits = metric(fe, "strata_frontend_cache_hits_total").await;
    for _ in 0..2 {
        assert_eq!(get(&client, &format!("http://{fe}/api/v1/query_range"), &p).await, direct);
    }
    assert_eq!(metric(fe, "strata_frontend_cache_hits_total").await - hits, cacheable);
}
