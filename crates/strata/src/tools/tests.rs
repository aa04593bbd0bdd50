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
    assert_eq!(fmt_time(-5), "-5ms");
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
    assert_eq!(ellipsize("compacted into 01ARZ3NDEKTSV4RRFFQ69G5FAV", 20), "compacted into 01AR…");
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
    assert!(out.contains("2 blocks (1 without deletion mark), 2,880 samples"), "{out}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_overlaps_missing_files_garbage_and_old_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(dir.path());
    let t = TenantId::new("t").unwrap();
    let good = put(&b, "t", &series("up", 2, 0, 2 * H)).await;
    let overlapping = put(&b, "t", &series("up", 2, H, 3 * H)).await;
    let missing = put(&b, "t", &series("up", 2, 10 * H, 12 * H)).await;
    let garbage = put(&b, "t", &series("up", 2, 20 * H, 22 * H)).await;
    let resized = put(&b, "t", &series("up", 2, 30 * H, 32 * H)).await;
    let replaced = put(&b, "t", &series("up", 2, 0, 2 * H)).await;
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

    let now = crate::tools::now_ms();
    let found = verify(&b, std::slice::from_ref(&t), now, &ProgressBar::hidden()).await.unwrap();
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
    assert_eq!(got, want, "{}", verify::render(&found));
    assert!(found.iter().all(|f| f.block.id != good.ulid && f.block.id != replaced.ulid));
    assert_eq!(found.iter().filter(|f| f.is_problem()).count(), 4);
    let overlap = found.iter().find(|f| f.problem == Problem::Overlap).unwrap();
    assert!(overlap.detail.contains(&good.ulid.to_string()), "{}", overlap.detail);
    let text = verify::render(&found);
    assert!(text.contains("4 problem(s), 1 note(s)"), "{text}");

    // Two hours later the partial upload is a problem too.
    let later = verify(&b, std::slice::from_ref(&t), now + 2 * H, &ProgressBar::hidden()).await.unwrap();
    assert_eq!(later.iter().filter(|f| f.is_problem()).count(), 5);

    // A clean bucket has nothing to say.
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = bucket(clean_dir.path());
    put(&clean, "t", &series("up", 2, 0, 2 * H)).await;
    let found = verify(&clean, std::slice::from_ref(&t), now, &ProgressBar::hidden()).await.unwrap();
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(verify::render(&found), "no problems found\n");
}
