//! Every kind of bad remote-write input gets the right status and a message naming
//! the problem; valid series in the same request are stored; the server keeps serving.

use serde_json::Value;
use strata_model::now_ms;
use strata_proto::Message;
use strata_proto::prometheus as pb;
use strata_server::ServerConfig;
use strata_tests::{Sandbox, all_series, post_write, query_string, remote_read, series, snappy, write_v1};
use strata_tsdb::TsdbOptions;

fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["status"], "error", "{body}");
    assert!(v["errorType"].is_string(), "{body}");
    v["error"].as_str().unwrap().to_string()
}

fn good() -> pb::WriteRequest {
    pb::WriteRequest { timeseries: vec![series(&[("__name__", "ok"), ("i", "1")], &[(1000, 1.0)])], metadata: vec![] }
}

async fn assert_still_serving(sb: &Sandbox) {
    let req =
        pb::WriteRequest { timeseries: vec![series(&[("__name__", "alive")], &[(now_ms(), 1.0)])], metadata: vec![] };
    assert_eq!(write_v1(&sb.client, &sb.url(""), &req, None).await.unwrap().0, 204);
}

#[tokio::test]
async fn malformed_bodies() {
    let sb = Sandbox::start().await;
    let base = sb.url("");
    let raw = good().encode_to_vec();

    // Truncated protobuf inside valid snappy.
    let (s, b, _) =
        post_write(&sb.client, &base, snappy(&raw[..raw.len() - 3]), "application/x-protobuf", None).await.unwrap();
    assert_eq!(s, 400);
    assert!(error_of(&b).contains("malformed remote write 1.0 request"), "{b}");

    // Garbage that is not snappy.
    let (s, b, _) =
        post_write(&sb.client, &base, b"\x10definitely not snappy".to_vec(), "application/x-protobuf", None)
            .await
            .unwrap();
    assert_eq!(s, 400);
    assert!(error_of(&b).contains("invalid snappy body"), "{b}");

    // A snappy header declaring 4 GiB: refused before allocating.
    let (s, b, _) =
        post_write(&sb.client, &base, vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0], "application/x-protobuf", None)
            .await
            .unwrap();
    assert_eq!(s, 413);
    assert!(error_of(&b).contains("declares 4294967295 decompressed bytes"), "{b}");

    // Unknown content type and encoding.
    let (s, b, _) = post_write(&sb.client, &base, snappy(&raw), "application/json", None).await.unwrap();
    assert_eq!(s, 415);
    assert!(error_of(&b).contains("unsupported content type"), "{b}");
    let r = sb
        .client
        .post(sb.url("/api/v1/write"))
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "application/x-protobuf")
        .body(snappy(&raw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // Invalid tenant id.
    let (s, b, _) = post_write(&sb.client, &base, snappy(&raw), "application/x-protobuf", Some("a/b")).await.unwrap();
    assert_eq!(s, 400);
    assert!(error_of(&b).contains("invalid tenant id"), "{b}");

    assert!(
        remote_read(&sb.client, &base, all_series(), 0, i64::MAX, None).await.unwrap().is_empty(),
        "nothing stored from bad requests"
    );
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let cfg = ServerConfig { max_request_body_bytes: 1024, ..Default::default() };
    let sb = Sandbox::start_with(cfg, TsdbOptions::default(), None).await;
    let big = pb::WriteRequest {
        timeseries: (0..200)
            .map(|i| series(&[("__name__", "m"), ("i", &format!("{i:05}-{}", "x".repeat(40)))], &[(1, 1.0)]))
            .collect(),
        metadata: vec![],
    };
    let (s, b) = write_v1(&sb.client, &sb.url(""), &big, None).await.unwrap();
    assert_eq!(s, 413);
    assert!(error_of(&b).contains("larger than the 1024-byte limit"), "{b}");
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn invalid_series_are_rejected_and_the_rest_is_stored() {
    let sb = Sandbox::start().await;
    let req = pb::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "good"), ("a", "1")], &[(1000, 1.0), (2000, 2.0)]),
            series(&[("__name__", "0bad")], &[(1000, 1.0)]),
            series(&[("__name__", "m"), ("bad-label", "x")], &[(1000, 1.0)]),
            series(&[("__name__", "m"), ("dup", "x"), ("dup", "y")], &[(1000, 1.0)]),
            series(&[("job", "no-name")], &[(1000, 1.0)]),
            series(&[("__name__", "good"), ("a", "2"), ("empty", "")], &[(1000, 3.0)]),
        ],
        metadata: vec![],
    };
    let (s, b) = write_v1(&sb.client, &sb.url(""), &req, None).await.unwrap();
    assert_eq!(s, 400);
    let e = error_of(&b);
    assert!(e.starts_with("4 of 7 samples rejected"), "{e}");
    for reason in ["invalid_metric_name", "invalid_label_name", "duplicate_label_name", "missing_metric_name"] {
        assert!(e.contains(reason), "{reason} missing from {e}");
    }
    let got = remote_read(&sb.client, &sb.url(""), all_series(), 0, 10_000, None).await.unwrap();
    assert_eq!(got.len(), 2, "both valid series stored");
    // The empty-valued label was dropped, not stored.
    assert!(got.iter().all(|s| s.labels.iter().all(|l| l.name != "empty")));
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn out_of_order_and_duplicate_samples() {
    let sb = Sandbox::start().await;
    let base = sb.url("");
    let first = pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "c")], &[(1000, 1.0), (2000, 2.0)])],
        metadata: vec![],
    };
    assert_eq!(write_v1(&sb.client, &base, &first, None).await.unwrap().0, 204);
    // An exact re-send is not an error (Prometheus retries resend batches).
    assert_eq!(write_v1(&sb.client, &base, &first, None).await.unwrap().0, 204);

    let req = pb::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "c")], &[(1500, 9.0), (2000, 7.0), (3000, 3.0)]),
            series(&[("__name__", "other")], &[(10, 1.0)]),
        ],
        metadata: vec![],
    };
    let (s, b) = write_v1(&sb.client, &base, &req, None).await.unwrap();
    assert_eq!(s, 400, "{b}");
    let e = error_of(&b);
    assert!(e.starts_with("2 of 4 samples rejected"), "{e}");
    assert!(e.contains("out_of_order: 1 (first: series c timestamp 1500)"), "{e}");
    assert!(e.contains("duplicate_timestamp: 1 (first: series c timestamp 2000)"), "{e}");
    let got = remote_read(&sb.client, &base, all_series(), 0, 10_000, None).await.unwrap();
    let c = got.iter().find(|s| s.labels[0].value == "c").unwrap();
    assert_eq!(
        c.samples.iter().map(|s| (s.timestamp, s.value)).collect::<Vec<_>>(),
        vec![(1000, 1.0), (2000, 2.0), (3000, 3.0)]
    );
    assert!(got.iter().any(|s| s.labels[0].value == "other"));

    let text = sb.client.get(sb.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("strata_discarded_samples_total{tenant=\"anonymous\",reason=\"out_of_order\"} 1"), "{text}");
}

#[tokio::test]
async fn rate_limit_is_429_per_tenant() {
    let limits = strata_server::Limits { ingestion_rate: 1.0, ingestion_burst_size: 3.0, ..Default::default() };
    let sb = Sandbox::start_with_limits(ServerConfig::default(), limits).await;
    let base = sb.url("");
    let req = |t0: i64| pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "r")], &[(t0, 1.0), (t0 + 1, 1.0)])],
        metadata: vec![],
    };
    assert_eq!(write_v1(&sb.client, &base, &req(0), Some("a")).await.unwrap().0, 204);
    let (s, b) = write_v1(&sb.client, &base, &req(10), Some("a")).await.unwrap();
    assert_eq!(s, 429);
    assert!(error_of(&b).contains("ingestion rate limit"), "{b}");
    assert!(error_of(&b).contains("(limit: ingestion_rate=1, ingestion_burst_size=3)"), "{b}");
    // Another tenant has its own budget.
    assert_eq!(write_v1(&sb.client, &base, &req(0), Some("b")).await.unwrap().0, 204);
}

/// `GET path` with `params` URL-encoded; the answer must be Prometheus JSON.
async fn api(sb: &Sandbox, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let r = sb.client.get(format!("{}?{}", sb.url(path), query_string(params))).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
}

fn assert_bad_data(what: &str, (status, v): (u16, Value), needle: &str) {
    assert_eq!(status, 400, "{what}: {v}");
    assert_eq!(v["status"], "error", "{what}: {v}");
    assert_eq!(v["errorType"], "bad_data", "{what}: {v}");
    assert!(v["error"].as_str().unwrap().contains(needle), "{what}: {needle:?} not in {v}");
}

#[tokio::test]
async fn times_with_multibyte_characters_are_400_on_every_api() {
    let sb = Sandbox::start().await;
    // Six bytes from the end of "€a€" falls inside the first "€": this used to panic.
    let bad = "\u{20ac}a\u{20ac}";
    // (path, the other parameters, the time parameter to break)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        ("/api/v1/query", &[("query", "up")], "time"),
        ("/api/v1/query_range", &[("query", "up"), ("start", "0"), ("end", "60"), ("step", "15")], "start"),
        ("/api/v1/series", &[("match[]", "up")], "start"),
        ("/api/v1/labels", &[], "start"),
        ("/api/v1/label/job/values", &[], "start"),
    ];
    for (path, base, first) in cases {
        for key in [first, "end"] {
            if path == "/api/v1/query" && key == "end" {
                continue;
            }
            let mut params: Vec<(&str, &str)> = base.iter().filter(|(k, _)| *k != key).copied().collect();
            params.push((key, bad));
            let what = format!("{path} {key}");
            assert_bad_data(
                &what,
                api(&sb, path, &params).await,
                &format!("invalid parameter \"{key}\": cannot parse"),
            );
        }
    }
    // The exact request of the bug report, byte for byte.
    let r = sb.client.get(sb.url("/api/v1/query?query=up&time=%E2%82%ACa%E2%82%AC")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn durations_overflowing_int64_are_400() {
    let sb = Sandbox::start().await;
    let range = |extra: (&'static str, &'static str)| {
        let mut p = vec![("query", "up"), ("start", "0"), ("end", "60"), ("step", "15")];
        p.retain(|(k, _)| *k != extra.0);
        p.push(extra);
        p
    };
    for key in ["step", "timeout", "lookback_delta"] {
        assert_bad_data(
            key,
            api(&sb, "/api/v1/query_range", &range((key, "1e300"))).await,
            &format!("invalid parameter \"{key}\": cannot parse \"1e300\" to a valid duration. It overflows int64"),
        );
    }
    assert_bad_data("timeout", api(&sb, "/api/v1/query", &[("query", "up"), ("timeout", "1e300")]).await, "overflows");
    assert_bad_data("step 293y", api(&sb, "/api/v1/query_range", &range(("step", "293y"))).await, "valid duration");
    // Large but representable: answered.
    let (s, v) = api(&sb, "/api/v1/query", &[("query", "up"), ("time", "60"), ("lookback_delta", "292y")]).await;
    assert_eq!(s, 200, "{v}");
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn backtick_strings_are_raw() {
    let sb = Sandbox::start().await;
    let t = now_ms();
    let req = pb::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "disk"), ("path", r"C:\data")], &[(t, 1.0)]),
            series(&[("__name__", "disk"), ("path", r"C:data")], &[(t, 2.0)]),
        ],
        metadata: vec![],
    };
    assert_eq!(write_v1(&sb.client, &sb.url(""), &req, None).await.unwrap().0, 204);
    let time = format!("{}", t / 1000 + 1);
    let (s, v) = api(&sb, "/api/v1/query", &[("query", r"disk{path=`C:\data`}"), ("time", &time)]).await;
    assert_eq!(s, 200, "{v}");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["metric"]["path"], r"C:\data");
    // A regex with an escape class, and label_replace with one.
    let (s, v) = api(&sb, "/api/v1/query", &[("query", r"disk{path=~`C:\\d.*`}"), ("time", &time)]).await;
    assert_eq!((s, v["data"]["result"].as_array().unwrap().len()), (200, 1), "{v}");
    let q = r#"label_replace(disk, "drive", "$1", "path", `(\w):\\.*`)"#;
    let (s, v) = api(&sb, "/api/v1/query", &[("query", q), ("time", &time)]).await;
    assert_eq!(s, 200, "{v}");
    let drives: Vec<_> = v["data"]["result"].as_array().unwrap().iter().map(|r| r["metric"]["drive"].clone()).collect();
    assert!(drives.contains(&Value::from("C")), "{v}");
    // match[] takes them too.
    let (s, v) = api(&sb, "/api/v1/series", &[("match[]", r"disk{path=`C:\data`}")]).await;
    assert_eq!((s, v["data"].as_array().unwrap().len()), (200, 1), "{v}");
}

#[tokio::test]
async fn parse_errors_carry_prometheus_positions() {
    let sb = Sandbox::start().await;
    assert_bad_data(
        "1+",
        api(&sb, "/api/v1/query", &[("query", "1+")]).await,
        "invalid parameter \"query\": 1:3: parse error: ",
    );
    assert_bad_data(
        "unterminated",
        api(&sb, "/api/v1/query_range", &[("query", r#"x{a="b}"#), ("start", "0"), ("end", "1"), ("step", "1")]).await,
        "invalid parameter \"query\": 1:5: parse error: ",
    );
    assert_bad_data(
        "match[]",
        api(&sb, "/api/v1/series", &[("match[]", "up{")]).await,
        "invalid parameter \"match[]\": 1:4: parse error: ",
    );
}

#[tokio::test]
async fn snappy_declaring_4_gib_or_more_is_413() {
    let sb = Sandbox::start().await;
    let base = sb.url("");
    // Exactly 4 GiB (2^32), which snappy's u32 length cannot hold, and 2^63.
    for body in
        [vec![0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0], vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]]
    {
        let (s, b, _) = post_write(&sb.client, &base, body.clone(), "application/x-protobuf", None).await.unwrap();
        assert_eq!(s, 413, "{b}");
        assert!(error_of(&b).contains("decompressed bytes, over the"), "{b}");
        // Remote read uses the same reader.
        let r = sb
            .client
            .post(sb.url("/api/v1/read"))
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
    }
    assert_still_serving(&sb).await;
}

#[tokio::test]
async fn malformed_api_requests_answer_json_4xx() {
    let sb = Sandbox::start().await;
    // Wrong methods: 405 with a JSON body.
    for (method, path) in [
        ("DELETE", "/api/v1/query"),
        ("GET", "/api/v1/write"),
        ("GET", "/api/v1/read"),
        ("PUT", "/api/v1/series"),
        ("GET", "/api/v1/admin/flush"),
    ] {
        let r = sb.client.request(method.parse().unwrap(), sb.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert!(r.headers().contains_key("allow"), "{method} {path}");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v["status"], "error", "{method} {path}");
    }
    let (s, v) = api(&sb, "/api/v1/no_such_thing", &[]).await;
    assert_eq!((s, v["errorType"].as_str()), (404, Some("not_found")));
    // A label name that is not UTF-8 once decoded, and one that is not a label name.
    let r = sb.client.get(sb.url("/api/v1/label/%FF%FE/values")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()["errorType"], "bad_data");
    assert_bad_data("label name", api(&sb, "/api/v1/label/a-b/values", &[]).await, "invalid label name");
    // Bad match[] selectors.
    for m in ["up{", "sum(up)", "{job=\"\"}", "\u{20ac}", "up{job=~\"(\"}"] {
        assert_bad_data(m, api(&sb, "/api/v1/series", &[("match[]", m)]).await, "invalid parameter \"match[]\"");
    }
    assert_bad_data("series without match[]", api(&sb, "/api/v1/series", &[]).await, "no match[]");
    // Bad limit, bad tenant header.
    assert_bad_data("limit", api(&sb, "/api/v1/labels", &[("limit", "-1")]).await, "invalid parameter \"limit\"");
    let r = sb.client.get(sb.url("/api/v1/labels")).header("X-Scope-OrgID", "a/b").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = sb.client.get(sb.url("/api/v1/labels")).header("X-Scope-OrgID", &b"\xff\xfe"[..]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()["errorType"], "bad_data");
    // Form bodies that are not valid: invalid UTF-8 and a broken percent escape.
    for body in [&b"query=%FF%FE&time=1"[..], b"query=up&time=%E2%82", b"query=up&&&=&time=%zz"] {
        let r = sb
            .client
            .post(sb.url("/api/v1/query"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(status == 400 || status == 200, "{status} {v}");
        assert!(v["status"].is_string(), "{v}");
    }
    // Remote read with garbage snappy, and with valid snappy around garbage protobuf.
    for (body, needle) in [
        (b"\x10not snappy".to_vec(), "invalid snappy body"),
        (snappy(b"\xff\xff\xff garbage"), "malformed remote read request"),
    ] {
        let r = sb
            .client
            .post(sb.url("/api/v1/read"))
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(error_of(&r.text().await.unwrap()).contains(needle), "{needle}");
    }
    assert_still_serving(&sb).await;
}
