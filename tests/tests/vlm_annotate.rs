//! The cot-annotate stage end to end: a triplet dataset in, the same rows out with CoT columns,
//! against the loopback server with faults, and a resume after the run is killed.

use std::path::Path;
use std::time::Duration;

use earl_format::{
    Dataset, DatasetWriter, FinishInfo, ImageBlob, Opened, SchemaKind, Triplet, WriterOptions,
    read_shard,
};
use earl_tests::fake_vlm::{FakeVlm, Fault};
use earl_vlm::annotate::{AnnotateOptions, run};
use earl_vlm::{ClientConfig, ImagePrep};
use image::ImageEncoder;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut buf = Vec::new();
    image::codecs::png::PngEncoder::new(&mut buf)
        .write_image(&img, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    buf
}

fn make_input(dir: &Path, instructions: &[String]) {
    let Opened::Writer(mut w) = DatasetWriter::open(
        dir,
        SchemaKind::Triplet,
        WriterOptions::for_kind(SchemaKind::Triplet),
        "test-input",
    )
    .unwrap() else {
        panic!("fresh directory expected")
    };
    let bytes = png(400, 300);
    let blob = ImageBlob {
        bytes,
        width: 400,
        height: 300,
        format: "png".into(),
    };
    let rows: Vec<Triplet> = instructions
        .iter()
        .enumerate()
        .map(|(i, ins)| Triplet {
            id: format!("fake/{i}"),
            source_dataset: "fake".into(),
            upstream_id: i.to_string(),
            split: "train".into(),
            instruction: ins.clone(),
            instructions: vec![ins.clone()],
            // Distinct bytes per row, so rows do not share cache entries.
            source: ImageBlob {
                bytes: png(400, 300).into_iter().chain([i as u8]).collect(),
                ..blob.clone()
            },
            target: blob.clone(),
            ..Triplet::default()
        })
        .collect();
    let sources: Vec<String> = (0..rows.len()).map(|i| format!("test:{i}")).collect();
    w.count_read(rows.len() as u64);
    w.write("train", &Triplet::to_batch(&rows).unwrap(), &sources)
        .unwrap();
    w.finish(serde_json::json!({}), FinishInfo::default())
        .unwrap();
}

fn read_output(dir: &Path) -> Vec<Triplet> {
    let ds = Dataset::open(dir).unwrap();
    let mut out = Vec::new();
    for shard in ds.shards(None) {
        for batch in read_shard(&shard, 64).unwrap() {
            out.extend(Triplet::from_batch(&batch.unwrap()).unwrap());
        }
    }
    out.sort_by_key(|t| t.upstream_id.parse::<usize>().unwrap());
    out
}

fn options(server: &FakeVlm, input: &Path, output: &Path) -> AnnotateOptions {
    let mut c = ClientConfig::new(server.url(), "fake-qwen2.5-vl");
    c.timeout = Duration::from_millis(300);
    // Enough attempts to absorb all four queued transient faults landing on one row.
    c.max_attempts = 6;
    c.backoff_base = Duration::from_millis(5);
    c.backoff_max = Duration::from_millis(50);
    c.concurrency = 4;
    let mut o = AnnotateOptions::new(input, output, c);
    o.prep = ImagePrep {
        max_side: Some(112),
        multiple_of: Some(28),
        ..ImagePrep::default()
    };
    o.batch_rows = Some(4);
    o
}

#[tokio::test]
async fn annotates_every_row_and_keeps_bad_answers_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, output) = (tmp.path().join("in"), tmp.path().join("out"));
    let ins: Vec<String> = [
        "make the car red",
        "remove the dog",
        "OOB add a hat",
        "NOTEXT add snow",
        "DOWN turn it into night",
        "make the sky orange",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    make_input(&input, &ins);
    let server = FakeVlm::start().await;
    let oob = r#"{"change": "Add a hat.", "location": "On the head.", "preserve": "Everything else.",
        "outcome": "A hat on the head.", "bbox": [10, 10, 500, 60]}"#;
    server.rule("OOB", Fault::Content(oob.into()));
    let empty = r#"{"change": " ", "location": "Sky.", "preserve": "Ground.",
        "outcome": "Snow.", "bbox": [0, 0, 10, 10]}"#;
    server.rule("NOTEXT", Fault::Content(empty.into()));
    server.rule("DOWN", Fault::Status(503));
    // Transient faults for the first requests: retried transparently.
    server.push([
        Fault::Status(500),
        Fault::Drop,
        Fault::TooMany {
            retry_after: "0.01".into(),
        },
        Fault::Malformed,
    ]);

    let summary = run(options(&server, &input, &output)).await.unwrap();
    assert_eq!(summary.rows, 6);
    assert_eq!(
        (summary.annotated, summary.rejected, summary.failed),
        (3, 2, 1)
    );
    assert!(summary.usage.retries >= 4, "{:?}", summary.usage);

    let rows = read_output(&output);
    assert_eq!(rows.len(), 6);
    for t in &rows {
        let cot = t.cot.as_ref().unwrap();
        assert_eq!(cot.model, "fake-qwen2.5-vl");
        assert_eq!(cot.prompt, "cot_edit@1");
        // The image data survives the round trip.
        assert_eq!(t.target.width, 400);
    }
    let ok = rows[0].cot.as_ref().unwrap();
    assert_eq!(ok.status, "ok");
    assert!(
        ok.text
            .as_ref()
            .unwrap()
            .starts_with("Recolour the main subject")
    );
    // Sent at 112x84; the server boxed [28, 16, 84, 67]; back in 400x300 pixels.
    let b = ok.bbox.unwrap();
    let want = [100.0, 16.0 * 300.0 / 84.0, 300.0, 67.0 * 300.0 / 84.0];
    for (g, w) in b.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-3, "{b:?} vs {want:?}");
    }
    let oob = rows[2].cot.as_ref().unwrap();
    assert!(oob.status.starts_with("rejected: bbox"), "{}", oob.status);
    assert!(oob.raw.contains("500, 60"));
    assert!(oob.bbox.is_none() && oob.text.is_none());
    let empty = rows[3].cot.as_ref().unwrap();
    assert!(
        empty.status.contains("\"change\" is empty"),
        "{}",
        empty.status
    );
    let down = rows[4].cot.as_ref().unwrap();
    assert!(
        down.status.starts_with("failed: ") && down.status.contains("503"),
        "{}",
        down.status
    );

    // The size the prompt announced is the size that was sent.
    for s in server.seen() {
        assert!(
            s.text.contains("112 pixels wide and 84 pixels high"),
            "{}",
            s.text
        );
    }
    let m = Dataset::open(&output).unwrap().manifest;
    assert_eq!((m.counts.read, m.counts.written), (6, 6));
    assert_eq!(m.recipe["prompt"], "cot_edit@1");

    // A finished output is left alone.
    let again = run(options(&server, &input, &output)).await.unwrap();
    assert!(again.already_complete);
}

fn cached_answers(dir: &Path) -> usize {
    let mut n = 0;
    let Ok(shards) = std::fs::read_dir(dir) else {
        return 0;
    };
    for shard in shards.flatten() {
        for f in std::fs::read_dir(shard.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "json") {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test]
async fn a_killed_run_resumes_without_asking_answered_requests_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, output, cache) = (
        tmp.path().join("in"),
        tmp.path().join("out"),
        tmp.path().join("cache"),
    );
    let n = 24;
    let ins: Vec<String> = (0..n).map(|i| format!("paint object {i} blue")).collect();
    make_input(&input, &ins);
    let server = FakeVlm::start().await;
    server.set_latency(Duration::from_millis(15));
    let mut opts = options(&server, &input, &output);
    opts.cache_dir = Some(cache.clone());

    let task = tokio::spawn(run(opts.clone()));
    while server.answered() < 8 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task.abort();
    let _ = task.await;
    // Let cache writes already handed to the blocking pool land.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stored = cached_answers(&cache);
    assert!(stored >= 1 && stored < n, "stored {stored}");
    let before = server.requests();

    let summary = run(opts).await.unwrap();
    assert_eq!(summary.annotated, n as u64);
    assert_eq!(summary.usage.cache_hits, stored as u64);
    // Exactly one request for each row whose answer was not stored; none for the others.
    assert_eq!(server.requests() - before, n - stored);
    let rows = read_output(&output);
    assert_eq!(rows.len(), n);
    assert!(rows.iter().all(|t| t.cot.as_ref().unwrap().status == "ok"));
}
