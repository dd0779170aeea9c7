//! `earl-data ingest / validate / stats / query / finalize` end to end on real files.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use earl_format::{Dataset, Triplet};
use earl_tests::bins::{python, run, text};

const EARL_DATA: &str = env!("CARGO_BIN_EXE_earl-data");

fn earl_data(args: &[&str]) -> std::process::Output {
    run(EARL_DATA, args)
}

fn ids(dir: &Path) -> Vec<String> {
    let ds = Dataset::open(dir).unwrap();
    let mut ids = Vec::new();
    for shard in ds.shards(None) {
        for batch in earl_format::read_shard(&shard, 512).unwrap() {
            ids.extend(
                Triplet::from_batch(&batch.unwrap())
                    .unwrap()
                    .into_iter()
                    .map(|t| t.id),
            );
        }
    }
    ids.sort();
    ids
}

#[test]
fn omniedit_sample_ingests_validates_and_answers_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mini");
    let o = earl_data(&[
        "ingest",
        "omniedit",
        "--source",
        "datasets/samples/omniedit-mini",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ds = Dataset::open(&out).unwrap();
    assert_eq!(ds.manifest.counts.written, 24);
    assert_eq!(ds.manifest.counts.rejected, 0);
    assert!(
        ds.manifest.shards[0]
            .path
            .starts_with("data/train-00000-of-")
    );
    // Upstream bytes are stored unchanged: compare one image with the source Parquet's.
    let shard = &ds.shards(None)[0];
    let batch = earl_format::read_shard(shard, 64)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let rows = Triplet::from_batch(&batch).unwrap();
    assert!(rows.iter().all(|t| t.instructions.contains(&t.instruction)));
    assert!(
        rows.iter().any(|t| t.source.format == "webp"),
        "sample has a WebP image"
    );

    let o = earl_data(&["validate", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = earl_data(&["stats", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("rows per source and split") && s.contains("omniedit"),
        "{s}"
    );
    let o = earl_data(&[
        "query",
        out.to_str().unwrap(),
        "SELECT split, count(*) AS n FROM data GROUP BY split",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        r#"{"split":"train","n":24}"#
    );

    // A rerun of a finished job is a no-op that says so.
    let o = earl_data(&[
        "ingest",
        "omniedit",
        "--source",
        "datasets/samples/omniedit-mini",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success() && text(&o).contains("already complete"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_rows_are_rejected_with_reasons_and_the_build_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bad");
    let o = earl_data(&[
        "ingest",
        "omniedit",
        "--source",
        "datasets/samples/bad-mini",
        "--out",
        out.to_str().unwrap(),
    ]);
    // 11 of 14 rows are bad: over the default 5%, so the command fails, saying why...
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("max-reject-fraction"), "{}", text(&o));
    // ...but the dataset is complete, with every bad row kept with its reason.
    let m = Dataset::open(&out).unwrap().manifest;
    let c = m.counts;
    assert_eq!(
        (c.read, c.written, c.rejected, c.duplicate, c.bad_files),
        (14, 3, 10, 1, 1),
        "{c:?}"
    );
    let mut rejects = String::new();
    for f in &m.rejects.files {
        rejects += &std::fs::read_to_string(out.join(f)).unwrap();
    }
    for (id, reason) in [
        ("bad_corrupt_src_001", "corrupt_image"),
        ("bad_truncated_jpeg_002", "corrupt_image"),
        ("bad_zero_byte_003", "empty_image"),
        ("bad_empty_instruction_004", "empty_instruction"),
        ("bad_blank_instruction_005", "empty_instruction"),
        ("bad_nan_score_006", "nan_score"),
        ("bad_good_000", "duplicate_id"),
        ("bad_aspect_6to1_008", "aspect_ratio"),
        ("bad_null_src_009", "missing_image"),
        ("bad_path_only_010", "missing_image"),
        ("bad_no_instruction_011", "empty_instruction"),
    ] {
        let line = rejects
            .lines()
            .find(|l| l.contains(id) && l.contains(reason));
        assert!(line.is_some(), "no reject {id} / {reason} in:\n{rejects}");
    }
    assert!(
        rejects.contains("train-00001-of-00002.parquet") && rejects.contains("bad_file"),
        "{rejects}"
    );

    let out2 = tmp.path().join("bad2");
    let o = earl_data(&[
        "ingest",
        "omniedit",
        "--source",
        "datasets/samples/bad-mini",
        "--out",
        out2.to_str().unwrap(),
        "--max-reject-fraction",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn jsonl_folder_and_arrow_save_to_disk_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("jsonl");
    let o = earl_data(&[
        "ingest",
        "generic",
        "--source",
        "datasets/samples/jsonl-mini",
        "--out",
        out.to_str().unwrap(),
        "--id-key",
        "id",
        "--source-image-key",
        "source",
        "--target-image-key",
        "target",
        "--instruction-key",
        "instruction",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(Dataset::open(&out).unwrap().manifest.counts.written, 8);

    let out = tmp.path().join("arrow");
    let o = earl_data(&[
        "ingest",
        "vismin",
        "--source",
        "datasets/samples/arrow-mini",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(Dataset::open(&out).unwrap().manifest.counts.written, 8);
}

/// Writes a synthetic OmniEdit-layout input of `rows` rows.
fn synthetic(dir: &Path, rows: usize) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    earl_ingest::synthetic::write_omniedit(
        &dir.join("data/train-00000-of-00001.parquet"),
        rows,
        24,
        100,
        3,
    )
    .unwrap();
}

#[test]
fn sigkill_at_any_moment_then_rerun_gives_every_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    synthetic(&input, 3000);
    let out = tmp.path().join("out");
    let args = [
        "ingest",
        "omniedit",
        "--source",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--shard-size-mb",
        "1",
    ];
    // Kill points spread over the run; each run resumes from the previous one's journal.
    let mut kills = 0;
    for delay_ms in [150u64, 400, 250, 700, 350] {
        let mut child = Command::new(EARL_DATA)
            .current_dir(earl_tests::bins::root())
            .args(args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            kills += 1;
        }
        child.wait().unwrap();
    }
    let o = earl_data(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        kills >= 2,
        "the test must really interrupt the ingest (killed {kills} times)"
    );
    let got = ids(&out);
    let mut want: Vec<String> = (0..3000)
        .map(|i| format!("omniedit/synthetic_3_{i:07}"))
        .collect();
    want.sort();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let o = earl_data(&["validate", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn ranks_split_the_work_and_finalize_merges_them() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    synthetic(&input, 700);
    let out = tmp.path().join("out");
    for rank in ["0", "1", "2"] {
        let o = earl_data(&[
            "ingest",
            "omniedit",
            "--source",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--world-size",
            "3",
            "--rank",
            rank,
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = earl_data(&["finalize", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let got = ids(&out);
    assert_eq!(got.len(), 700);
    got.windows(2).for_each(|w| assert_ne!(w[0], w[1]));
    let o = earl_data(&["validate", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn python_datasets_loads_the_directory_with_images() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mini");
    let o = earl_data(&[
        "ingest",
        "omniedit",
        "--source",
        "datasets/samples/omniedit-mini",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let script = r#"
import sys
from datasets import load_dataset
ds = load_dataset(sys.argv[1])
train = ds["train"]
row = train[0]
assert len(train) == 24, len(train)
assert row["source_image"].size == (row["source_width"], row["source_height"]), row["source_image"]
assert type(row["target_image"]).__module__.startswith("PIL"), type(row["target_image"])
assert row["instruction"] in row["instructions"]
print("ok", len(train), train.features["source_image"])
"#;
    let o = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(&out)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HOME", tmp.path().join("hf"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ok 24 Image"),
        "{}",
        text(&o)
    );
}
