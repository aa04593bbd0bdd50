//! Issue 10, bug 1, as a new user hit it with the real binary: one sample 3 h
//! ahead (a skewed clock) was accepted, the background flusher then cut the current
//! 2 h range, and from then on every on-time sample of the tenant got
//! `400 too_old_range_already_in_block`, which Prometheus drops as permanent.

use std::time::Duration;

use strata_model::now_ms;
use strata_proto::prometheus as pb;
use strata_tests::*;

fn one(name: &str, t: i64) -> pb::TimeSeries {
    series(&[("__name__", name)], &[(t, 1.0)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_clock_cannot_wedge_a_tenant() {
    let Some(bin) = strata_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let strata = StrataProcess::start(&bin, &tmp.path().join("data"), &[]).await.unwrap();
    let (base, client) = (strata.base(), reqwest::Client::new());
    let now = now_ms();
    let req = |ts: Vec<pb::TimeSeries>| pb::WriteRequest { timeseries: ts, metadata: vec![] };
    assert_eq!(write_v1(&client, &base, &req(vec![one("good", now)]), None).await.unwrap().0, 204);
    // The skewed sample is refused, per sample: the rest of the request is stored.
    let (status, body) =
        write_v1(&client, &base, &req(vec![one("skewed", now + 3 * 3_600_000), one("other", now)]), None)
            .await
            .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("too_far_in_future: 1 (first: series skewed"), "{body}");
    // The flusher looks every 15 s: give it a pass.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (status, body) = write_v1(&client, &base, &req(vec![one("good", now + 15_000)]), None).await.unwrap();
    assert_eq!(status, 204, "on-time samples must still be accepted: {body}");
    let got = remote_read(&client, &base, all_series(), now - 60_000, now + 4 * 3_600_000, None).await.unwrap();
    let mut names: Vec<&str> = got.iter().map(|s| s.labels[0].value.as_str()).collect();
    names.sort();
    assert_eq!(names, ["good", "other"]);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"strata_discarded_samples_total{tenant="anonymous",reason="too_far_in_future"} 1"#),
        "{metrics}"
    );
    strata.terminate().unwrap();
}
