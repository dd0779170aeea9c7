//! The resumable writer: shards, rejects, manifest, resume after a simulated kill.

use earl_format::{
    Dataset, DatasetWriter, FinishInfo, ImageBlob, Opened, Reject, SchemaKind, TokenRow, Triplet,
    WriterOptions,
};
use std::time::Duration;

fn triplet(i: usize) -> Triplet {
    Triplet {
        id: format!("test/{i}"),
        source_dataset: "test".into(),
        upstream_id: i.to_string(),
        split: if i.is_multiple_of(5) {
            "validation".into()
        } else {
            "train".into()
        },
        instruction: format!("edit number {i}"),
        instructions: vec![format!("edit number {i}"), "other".into()],
        source: ImageBlob {
            bytes: vec![i as u8; 300],
            width: 4,
            height: 3,
            format: "png".into(),
        },
        target: ImageBlob {
            bytes: vec![1; 10],
            width: 4,
            height: 3,
            format: "jpeg".into(),
        },
        ..Default::default()
    }
}

fn small_opts() -> WriterOptions {
    WriterOptions {
        target_shard_bytes: 2_000,
        row_group_rows: 8,
        max_open: Duration::from_secs(3600),
        ..WriterOptions::for_kind(SchemaKind::Triplet)
    }
}

fn writer(dir: &std::path::Path) -> Box<DatasetWriter> {
    match DatasetWriter::open(dir, SchemaKind::Triplet, small_opts(), "job-1").unwrap() {
        Opened::Writer(w) => w,
        Opened::Complete(_) => panic!("unexpectedly complete"),
    }
}

/// Feeds rows `from..to` in batches of 4, committing after each batch.
fn feed(w: &mut DatasetWriter, from: usize, to: usize, stop_after: Option<usize>) {
    let mut i = from;
    while i < to {
        let rows: Vec<Triplet> = (i..(i + 4).min(to)).map(triplet).collect();
        w.count_read(rows.len() as u64);
        for split in ["train", "validation"] {
            let part: Vec<Triplet> = rows.iter().filter(|r| r.split == split).cloned().collect();
            let batch = Triplet::to_batch(&part).unwrap();
            let sources: Vec<String> = part
                .iter()
                .map(|r| format!("in:{}", r.upstream_id))
                .collect();
            w.write(split, &batch, &sources).unwrap();
        }
        i += rows.len();
        w.commit(serde_json::json!(i)).unwrap();
        if stop_after.is_some_and(|s| i >= s) {
            return;
        }
    }
}

fn all_ids(dir: &std::path::Path) -> Vec<String> {
    let ds = Dataset::open(dir).unwrap();
    let mut ids = Vec::new();
    for shard in ds.shards(None) {
        for batch in earl_format::read_shard(&shard, 100).unwrap() {
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
fn round_trip_shards_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    feed(&mut w, 0, 40, None);
    w.reject(Reject {
        source: "in:x".into(),
        id: Some("test/x".into()),
        reason: "corrupt_image".into(),
        detail: "bad".into(),
    });
    w.count_read(1);
    let m = w
        .finish(serde_json::json!(40), FinishInfo::default())
        .unwrap();
    assert_eq!(m.counts.written, 40);
    assert_eq!(m.counts.rejected, 1);
    assert!(m.shards.len() > 2, "small target size cuts several shards");
    assert!(
        m.shards
            .iter()
            .all(|s| s.path.starts_with("data/") && s.path.contains("-of-"))
    );
    let report = Dataset::open(dir.path()).unwrap().validate();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(all_ids(dir.path()).len(), 40);
    let back = {
        let ds = Dataset::open(dir.path()).unwrap();
        let shard = ds.shards(Some("train"))[0].clone();
        let batch = earl_format::read_shard(&shard, 100)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        Triplet::from_batch(&batch).unwrap()
    };
    assert_eq!(back[0], triplet(back[0].upstream_id.parse().unwrap()));
    assert!(!dir.path().join(".earl").exists());
    assert!(
        std::fs::read_to_string(dir.path().join("README.md"))
            .unwrap()
            .contains("dataset_info:")
    );
    // Rerunning a finished job is a no-op.
    assert!(matches!(
        DatasetWriter::open(dir.path(), SchemaKind::Triplet, small_opts(), "job-1").unwrap(),
        Opened::Complete(_)
    ));
}

#[test]
fn resume_after_kill_writes_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    feed(&mut w, 0, 100, Some(60));
    // Simulate a kill: rows after the last cut are in an open temp file, never committed.
    drop(w);
    let mut w = writer(dir.path());
    let from: usize = w.resume_cursor().and_then(|c| c.as_u64()).unwrap() as usize;
    assert!(
        from > 0 && from <= 60,
        "resumes from a committed boundary, got {from}"
    );
    feed(&mut w, from, 100, None);
    let m = w
        .finish(serde_json::json!(100), FinishInfo::default())
        .unwrap();
    let ids = all_ids(dir.path());
    let mut want: Vec<String> = (0..100).map(|i| format!("test/{i}")).collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(m.counts.read, 100);
    assert_eq!(m.counts.written, 100);
}

#[test]
fn duplicates_are_rejected_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    let rows = vec![triplet(1), triplet(1), triplet(2)];
    w.count_read(3);
    let n = w
        .write("train", &Triplet::to_batch(&rows).unwrap(), &[])
        .unwrap();
    assert_eq!(n, 2);
    let m = w
        .finish(serde_json::json!(3), FinishInfo::default())
        .unwrap();
    assert_eq!(m.counts.duplicate, 1);
    assert_eq!(m.rejects.by_reason["duplicate_id"], 1);
    let text = std::fs::read_to_string(dir.path().join(&m.rejects.files[0])).unwrap();
    assert!(text.contains("test/1") && text.contains("duplicate_id"));
}

#[test]
fn other_job_in_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    feed(&mut w, 0, 40, Some(20));
    drop(w);
    let err = DatasetWriter::open(dir.path(), SchemaKind::Triplet, small_opts(), "job-2")
        .err()
        .unwrap();
    assert!(err.to_string().contains("different job"), "{err}");
}

#[test]
fn validate_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    feed(&mut w, 0, 12, None);
    let m = w
        .finish(serde_json::json!(12), FinishInfo::default())
        .unwrap();
    let shard = dir.path().join(&m.shards[0].path);
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&shard, bytes).unwrap();
    let report = Dataset::open(dir.path()).unwrap().validate();
    assert!(
        report.problems.iter().any(|p| p.contains("sha256")),
        "{:?}",
        report.problems
    );
}

#[test]
fn token_rows_round_trip_and_check_grids() {
    let row = TokenRow {
        id: "t/1".into(),
        source_dataset: "t".into(),
        upstream_id: "1".into(),
        split: "train".into(),
        instruction: "x".into(),
        source_codes: (0..6).collect(),
        source_h: 2,
        source_w: 3,
        target_codes: vec![32767; 6],
        target_h: 3,
        target_w: 2,
        cot_text: Some("think".into()),
        cot_bbox: Some([1.0, 2.0, 3.0, 4.0]),
        vq_checkpoint: "abc".into(),
        image_area: 65536,
    };
    let batch = TokenRow::to_batch(std::slice::from_ref(&row)).unwrap();
    assert_eq!(TokenRow::from_batch(&batch).unwrap(), vec![row.clone()]);
    let bad = TokenRow { source_h: 3, ..row };
    let batch = TokenRow::to_batch(&[bad]).unwrap();
    let err = TokenRow::from_batch(&batch).unwrap_err().to_string();
    assert!(err.contains("6 codes for a 3x3 grid"), "{err}");
}
