use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use strata_block::{
    BlockBuilder, BlockFile, BlockOrigin, Bucket, BucketOptions, DeletionMark, MARKER_VERSION, ObjStoreConfig, upload,
};
use strata_model::{Labels, Sample, Series};

use super::verify::{Problem, verify};
use super::*;

const H: i64 = 3_600_000;

fn bucket(dir: &Path) -> Arc<Bucket> {
    Bucket::new(ObjStoreConfig::filesystem(dir).build().unwrap(), BucketOptions::default())
}

fn series(metric: &str, n: usize, from: i64, to: i64) -> Vec<Series> {
    let mut out: Vec<Series> = (0..n)
        .map(|i| Series {
            labels: Labels::from_pairs([("__name__", metric), ("instance", &*format!("host-{i:02}"))]),
            samples: (from..to).step_by(15_000).map(|t| Sample::new(t, i as f64)).collect(),
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

async fn put(bucket: &Bucket, tenant: &str, series: &[Series]) -> BlockMeta {
    let mut b = BlockBuilder::new(tenant).unwrap();
    for s in series {
        b.add_series(&s.labels, &s.samples).unwrap();
    }
    let block = b.finish(BlockOrigin::fresh()).unwrap().unwrap();
    upload(&**bucket.store(), &block).await.unwrap();
    block.meta
}

fn file(dir: &Path, m: &BlockMeta, f: BlockFile) -> PathBuf {
    dir.join(&m.tenant).join(m.ulid.to_string()).join(f.name())
}

#[test]
fn formats_are_readable() {
    assert_eq!(fmt_time(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(fmt_time(1_700_000_000_001), "2023-11-14T22:13:20.001Z");
    assert_eq!(fmt_time(-5), "1969-12-31T23:59:59.995Z");
    assert_eq!(fmt_duration_ms(2 * H), "2h");
    assert_eq!(fmt_duration_ms(14 * 24 * H), "14d");
    assert_eq!(fmt_duration_ms(2 * H - 15_000 + 1), "1h59m45s");
    assert_eq!(fmt_duration_ms(250), "250ms");
    assert_eq!(fmt_resolution(0), "raw");
    assert_eq!(fmt_resolution(300_000), "5m");
    assert_eq!(fmt_bytes(512), "512 B");
    assert_eq!(fmt_bytes(1536), "1.50 KiB");
    assert_eq!(fmt_bytes(50 << 20), "50.0 MiB");
    assert_eq!(fmt_count(0), "0");
    assert_eq!(fmt_count(999), "999");
    assert_eq!(fmt_count(1_234_567), "1,234,567");
    assert_eq!(ellipsize("compacted into 01ARZ3NDEKTSV4RRFFQ69G5FAV", 20), "compacted into 01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(
        ellipsize("compacted into 01ARZ3NDEKTSV4RRFFQ69G5FAV and more", 20),
        "compacted into 01ARZ3NDEKTSV4RRFFQ69G5FAV…"
    );
}

#[test]
fn every_timestamp_prints_however_extreme() {
    assert_eq!(fmt_time(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    assert_eq!(fmt_time(253_402_300_800_000), "253402300800000ms (out of range)");
    assert_eq!(fmt_time(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
    assert_eq!(fmt_time(-62_167_219_200_001), "-62167219200001ms (out of range)");
    assert_eq!(fmt_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(fmt_time(i64::MAX), "9223372036854775807ms (out of range)");
    assert_eq!(fmt_time(i64::MIN), "-9223372036854775808ms (out of range)");
    assert_eq!(fmt_time_secs(1_700_000_000), "2023-11-14T22:13:20.000Z");
    assert_eq!(fmt_time_secs(i64::MAX), "9223372036854775807s (out of range)");
    assert_eq!(fmt_time_secs(i64::MIN), "-9223372036854775808s (out of range)");
    // Every day from year 0 to 9999 agrees with humantime where both apply, and the
    // formatter never panics anywhere in between or beyond.
    for ms in (0..253_402_300_800_000i64).step_by(86_399_999_937) {
        let want =
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string();
        assert_eq!(fmt_time(ms), want);
    }
    for ms in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
        for d in [i64::MIN, -1, 0, 1, i64::MAX] {
            let _ = (fmt_time(ms), fmt_span_ms(ms, d), fmt_duration_ms(ms), fmt_time_secs(ms));
        }
    }
    assert_eq!(fmt_span_ms(i64::MIN, i64::MAX), "213503982334d14h25m52s");
    assert_eq!(fmt_span_ms(i64::MAX, i64::MIN), "-213503982334d14h25m52s");
    assert_eq!(fmt_duration_ms(i64::MIN), "-106751991167d7h12m56s");
}

#[test]
fn marks_never_cut_a_block_id() {
    let id = ulid::Ulid::new().to_string();
    let mark = DeletionMark {
        version: MARKER_VERSION,
        id: ulid::Ulid::new(),
        deletion_time: 0,
        reason: format!("compacted into {id}"),
    };
    assert_eq!(marks(Some(&mark), None), format!("deletion (compacted into {id})"));
    // Other long text is still cut, after an id that ends past the limit.
    let long = format!("unreadable: reading t/{id}/samples.parquet: bad page header at 123456");
    let nc = NoCompactMark { version: MARKER_VERSION, id: ulid::Ulid::new(), no_compact_time: 0, reason: long };
    assert_eq!(marks(None, Some(&nc)), format!("no-compact (unreadable: reading t/{id}…)"));
    assert_eq!(ellipsize("short", 40), "short");
    assert_eq!(ellipsize(&"x".repeat(50), 40), format!("{}…", "x".repeat(39)));
}

#[test]
fn table_aligns_columns() {
    let mut t = Table::new(&["NAME", "N", "NOTE"]).right_aligned(&[1]);
    t.row(vec!["a".into(), "1,000".into(), "-".into()]);
    t.row(vec!["long name".into(), "7".into(), "x y".into()]);
    assert_eq!(t.render(), "NAME           N  NOTE\na          1,000  -\nlong name      7  x y\n");
    assert_eq!(t.render_without_header().lines().next(), Some("a          1,000  -"));
}

#[test]
fn block_argument_parses() {
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let p = parse_block(&format!("team-a/{id}")).unwrap();
    assert_eq!((p.tenant.as_str(), p.id.to_string().as_str()), ("team-a", id));
    assert_eq!(parse_block(&format!("team-a/{id}/")).unwrap(), p);
    assert_eq!(parse_block(&format!("team-a/{id}/meta.json")).unwrap(), p);
    for bad in ["team-a", "team-a/nope", &format!("team-a/{id}/x/y"), &format!("a b/{id}")] {
        assert!(parse_block(bad).is_err(), "{bad}");
    }
}

#[test]
fn command_line_parses() {
    let cli = crate::Cli::try_parse_from([
        "strata",
        "tools",
        "bucket",
        "ls",
        "--tenant",
        "t",
        "--json",
        "--objstore.config-file",
        "b.yml",
    ])
    .unwrap();
    let crate::Command::Tools(ToolsArgs { command: ToolsCommand::Bucket(BucketCommand::Ls(a)) }) = cli.command else {
        panic!("parsed as {:?}", cli.command)
    };
    assert!(a.json);
    assert_eq!(a.tenant.as_deref(), Some("t"));
    assert_eq!(a.store.objstore_config_file, Some(PathBuf::from("b.yml")));
    let cli = crate::Cli::try_parse_from(["strata", "compact", "--once", "--data-dir", "/d"]).unwrap();
    let crate::Command::Compact(c) = cli.command else { panic!() };
    assert!(c.once);
    assert_eq!(c.store.load().unwrap().objstore(), ObjStoreConfig::filesystem("/d/bucket"));
    assert!(crate::Cli::try_parse_from(["strata", "tools", "bucket", "inspect"]).is_err());
    assert!(crate::Cli::try_parse_from(["strata", "tools", "bucket", "verify", "--tenant", "x"]).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_shows_blocks_and_marks() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(dir.path());
    let m1 = put(&b, "team-a", &series("up", 3, 0, 2 * H)).await;
    let m2 = put(&b, "team-a", &series("up", 3, 2 * H, 4 * H)).await;
    let mark = DeletionMark { version: MARKER_VERSION, id: m2.ulid, deletion_time: 0, reason: "retention".into() };
    b.put_marker(&BlockPath::new(TenantId::new("team-a").unwrap(), m2.ulid), BlockFile::DeletionMark, &mark)
        .await
        .unwrap();
    let blocks = list(&b, None).await.unwrap();
    let out = ls_table(&blocks);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("TENANT  ULID"), "{out}");
    assert!(lines[1].contains(&m1.ulid.to_string()) && lines[1].ends_with('-'), "{out}");
    assert!(lines[1].contains("1970-01-01T00:00:00.000Z") && lines[1].contains("1h59m45s"), "{out}");
    assert!(lines[2].ends_with("deletion (retention)"), "{out}");
    // The footer counts the block without deletion mark only.
    assert!(out.contains("2 blocks; 1 without deletion mark: 1,440 samples, "), "{out}");
    assert!(out.contains(&format!("; 1 marked for deletion: {}\n", fmt_bytes(m2.data_bytes()))), "{out}");
    let json: serde_json::Value = serde_json::from_str(&ls_json(&blocks).unwrap()).unwrap();
    assert_eq!(json[1]["meta"]["ulid"], m2.ulid.to_string());
    assert_eq!(json[1]["deletion_mark"]["reason"], "retention");
    assert!(json[0]["deletion_mark"].is_null());
    assert!(list(&b, Some("other")).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_counts_series_per_metric() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(dir.path());
    let mut s = series("up", 2, 0, H);
    s.extend(series("node_load1", 5, 0, H / 2));
    s.sort_by(|a, b| a.labels.cmp(&b.labels));
    let m = put(&b, "t", &s).await;
    let info = b.blocks(&TenantId::new("t").unwrap()).await.unwrap()[0].clone();
    let d = describe(&info);
    let field = |k: &str| d.lines().find(|l| l.starts_with(k)).map(|l| l[k.len()..].trim().to_string());
    assert_eq!(field("block"), Some(format!("t/{}", m.ulid)), "{d}");
    assert_eq!(field("samples").as_deref(), Some("1,080"), "{d}");
    assert_eq!(field("parents").as_deref(), Some("-"), "{d}");
    let ix = BlockIndex::load(b.store().clone(), info.path.clone(), m.clone()).await.unwrap();
    let per = per_metric(&ix, &ProgressBar::hidden());
    assert_eq!(per, [("node_load1".to_string(), 5, 600), ("up".to_string(), 2, 480)]);
    let t = metrics_table(per.clone(), 1);
    assert!(t.contains("2 metric names") && t.contains("node_load1") && t.contains("... 1 more"), "{t}");
    assert!(!metrics_table(per, 0).contains("more"));
    assert!(inspect(&b, &format!("t/{}", ulid::Ulid::new()), 0).await.is_err());
}

/// Rewrites a block's meta.json with other bounds, as a damaged or hand-made one
/// (or a sender's clock far off) would have them.
fn set_times(dir: &Path, m: &BlockMeta, min_time: i64, max_time: i64) -> BlockMeta {
    let mut m = m.clone();
    (m.min_time, m.max_time) = (min_time, max_time);
    std::fs::write(file(dir, &m, BlockFile::Meta), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_inspect_and_verify_survive_blocks_at_the_ends_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(dir.path());
    let t = TenantId::new("t").unwrap();
    let now = strata_model::now_ms();
    let t0 = (now / H - 48) * H;
    let sane = put(&b, "t", &series("up", 2, t0, t0 + 2 * H)).await;
    let raw = [
        put(&b, "t", &series("up", 2, t0 + 2 * H, t0 + 4 * H)).await,
        put(&b, "t", &series("up", 2, t0 + 4 * H, t0 + 6 * H)).await,
        put(&b, "t", &series("up", 2, t0 + 6 * H, t0 + 8 * H)).await,
        put(&b, "t", &series("up", 2, t0 + 8 * H, t0 + 10 * H)).await,
    ];
    let far = [
        set_times(dir.path(), &raw[0], i64::MAX - 2 * H, i64::MAX),
        set_times(dir.path(), &raw[1], i64::MIN, i64::MAX),
        set_times(dir.path(), &raw[2], -5 * H, -3 * H),
        set_times(dir.path(), &raw[3], now + 2 * 24 * H, now + 2 * 24 * H + 2 * H),
    ];

    let blocks = list(&b, None).await.unwrap();
    assert_eq!(blocks.len(), 5);
    let out = ls_table(&blocks);
    assert!(out.contains("9223372036854775807ms (out of range)"), "{out}");
    assert!(out.contains("-9223372036854775808ms (out of range)"), "{out}");
    assert!(out.contains("213503982334d14h25m52s"), "{out}");
    assert!(out.contains("1969-12-31T19:00:00.000Z"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&ls_json(&blocks).unwrap()).unwrap();
    assert!(json.as_array().unwrap().iter().any(|e| e["meta"]["min_time"] == i64::MIN), "{json}");

    for m in &far {
        let info = blocks.iter().find(|i| i.meta.ulid == m.ulid).unwrap();
        let d = describe(info);
        assert!(d.contains(&format!("({}, exclusive)", m.max_time)), "{d}");
        inspect(&b, &format!("t/{}", m.ulid), 0).await.unwrap();
    }

    let report = verify(&b, std::slice::from_ref(&t), now, &ProgressBar::hidden()).await.unwrap();
    let implausible: Vec<&verify::Finding> =
        report.findings.iter().filter(|f| f.problem == Problem::ImplausibleTime).collect();
    let mut got: Vec<ulid::Ulid> = implausible.iter().map(|f| f.block.id).collect();
    got.sort();
    let mut want: Vec<ulid::Ulid> = far.iter().map(|m| m.ulid).collect();
    want.sort();
    assert_eq!(got, want, "{}", verify::render(&report));
    // The sane block is only an overlap (of the block spanning all of time).
    assert!(
        report.findings.iter().filter(|f| f.block.id == sane.ulid).all(|f| f.problem == Problem::Overlap),
        "{}",
        verify::render(&report)
    );
    let detail = &implausible.iter().find(|f| f.block.id == far[1].ulid).unwrap().detail;
    assert!(detail.contains("-9223372036854775808ms (out of range) (-9223372036854775808)"), "{detail}");
    assert!(detail.contains("starts before 1990-01-01T00:00:00.000Z") && detail.contains("past now"), "{detail}");
    let detail = &implausible.iter().find(|f| f.block.id == far[3].ulid).unwrap().detail;
    assert!(detail.contains("reaches more than 1d past now") && !detail.contains("1990"), "{detail}");
    assert!(report.problems() >= 4, "{}", verify::render(&report));
    let text = verify::render(&report);
    assert!(text.contains("implausible time") && text.contains("5 block(s) checked"), "{text}");

    // A block ending exactly a day ahead is still fine.
    let edge_dir = tempfile::tempdir().unwrap();
    let edge = bucket(edge_dir.path());
    let m = put(&edge, "t", &series("up", 1, t0, t0 + H)).await;
    set_times(edge_dir.path(), &m, verify::EARLIEST_PLAUSIBLE_MS, now + verify::MAX_AHEAD_MS + 1);
    let report = verify(&edge, std::slice::from_ref(&t), now, &ProgressBar::hidden()).await.unwrap();
    assert!(report.findings.is_empty(), "{}", verify::render(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_overlaps_missing_files_garbage_and_old_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(dir.path());
    let t = TenantId::new("t").unwrap();
    // Two days back: blocks near 1970 would be implausible times.
    let t0 = (strata_model::now_ms() / H - 48) * H;
    let good = put(&b, "t", &series("up", 2, t0, t0 + 2 * H)).await;
    let overlapping = put(&b, "t", &series("up", 2, t0 + H, t0 + 3 * H)).await;
    let missing = put(&b, "t", &series("up", 2, t0 + 10 * H, t0 + 12 * H)).await;
    let garbage = put(&b, "t", &series("up", 2, t0 + 20 * H, t0 + 22 * H)).await;
    let resized = put(&b, "t", &series("up", 2, t0 + 30 * H, t0 + 32 * H)).await;
    let replaced = put(&b, "t", &series("up", 2, t0, t0 + 2 * H)).await;
    std::fs::remove_file(file(dir.path(), &missing, BlockFile::Series)).unwrap();
    let size = garbage.file_size(BlockFile::Samples.name()).unwrap() as usize;
    std::fs::write(file(dir.path(), &garbage, BlockFile::Samples), vec![0x42u8; size]).unwrap();
    std::fs::write(file(dir.path(), &resized, BlockFile::Samples), b"short").unwrap();
    // A block with a deletion mark overlapping the others is not an overlap.
    let mark = DeletionMark { version: MARKER_VERSION, id: replaced.ulid, deletion_time: 0, reason: "x".into() };
    b.put_marker(&BlockPath::new(t.clone(), replaced.ulid), BlockFile::DeletionMark, &mark).await.unwrap();
    // An upload that has only its first file so far.
    let upload_dir = dir.path().join("t").join(ulid::Ulid::new().to_string());
    std::fs::create_dir_all(&upload_dir).unwrap();
    std::fs::write(upload_dir.join("series.parquet"), b"partial").unwrap();

    let now = strata_model::now_ms();
    let report = verify(&b, std::slice::from_ref(&t), now, &ProgressBar::hidden()).await.unwrap();
    assert_eq!((report.blocks, report.read), (7, 3), "6 blocks and an upload; good, overlapping and garbage read");
    let found = &report.findings;
    let summary: Vec<(ulid::Ulid, Problem)> = found.iter().map(|f| (f.block.id, f.problem)).collect();
    let young = summary.iter().find(|(_, p)| matches!(p, Problem::Incomplete { .. })).unwrap();
    assert_eq!(young.1, Problem::Incomplete { young: true });
    let mut want = vec![
        (overlapping.ulid, Problem::Overlap),
        (missing.ulid, Problem::MissingFile),
        (garbage.ulid, Problem::Unreadable),
        (resized.ulid, Problem::SizeMismatch),
        (young.0, Problem::Incomplete { young: true }),
    ];
    want.sort();
    let mut got = summary.clone();
    got.sort();
    assert_eq!(got, want, "{}", verify::render(&report));
    assert!(found.iter().all(|f| f.block.id != good.ulid && f.block.id != replaced.ulid));
    assert_eq!(found.iter().filter(|f| f.is_problem()).count(), 4);
    let overlap = found.iter().find(|f| f.problem == Problem::Overlap).unwrap();
    assert!(overlap.detail.contains(&good.ulid.to_string()), "{}", overlap.detail);
    let text = verify::render(&report);
    assert!(text.contains("7 block(s) checked, 3 read back: 4 problem(s), 1 note(s)"), "{text}");

    // Two hours later the partial upload is a problem too.
    let later = verify(&b, std::slice::from_ref(&t), now + 2 * H, &ProgressBar::hidden()).await.unwrap();
    assert_eq!(later.problems(), 5);

    // A clean bucket has nothing to say.
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = bucket(clean_dir.path());
    put(&clean, "t", &series("up", 2, t0, t0 + 2 * H)).await;
    let report = verify(&clean, std::slice::from_ref(&t), now, &ProgressBar::hidden()).await.unwrap();
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(verify::render(&report), "1 block(s) checked, 1 read back: no problems found\n");
}
