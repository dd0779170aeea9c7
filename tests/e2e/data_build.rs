//! `earl-data build omniedit` end to end: ingest → cot-annotate (against the loopback VLM
//! server) → tokenize with the tiny VQ, then `render` a row.

use earl_format::{Dataset, TokenRow, Triplet};
use earl_tests::bins::{run, text};
use earl_tests::fake_vlm::FakeVlm;

const EARL_DATA: &str = env!("CARGO_BIN_EXE_earl-data");

fn rows<T>(
    dir: &std::path::Path,
    parse: fn(&arrow::array::RecordBatch) -> earl_format::Result<Vec<T>>,
) -> Vec<T> {
    let ds = Dataset::open(dir).unwrap();
    let mut out = Vec::new();
    for shard in ds.shards(None) {
        for b in earl_format::read_shard(&shard, 256).unwrap() {
            out.extend(parse(&b.unwrap()).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_with_cot_then_render() {
    let server = FakeVlm::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("build");
    let url = server.url();
    let out_s = out.to_str().unwrap().to_string();
    let o = tokio::task::spawn_blocking(move || {
        run(
            EARL_DATA,
            &[
                "build",
                "omniedit",
                "--out",
                &out_s,
                "--vq",
                "tiny-random",
                "--image-area",
                "4096",
                "--cot",
                "--endpoint",
                &url,
                "--model",
                "fake-qwen",
                "--concurrency",
                "8",
            ],
        )
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        server.answered(),
        24,
        "one answered CoT request per triplet"
    );

    let annotated: Vec<Triplet> = rows(&out.join("annotated"), Triplet::from_batch);
    assert_eq!(annotated.len(), 24);
    assert!(annotated.iter().all(|t| {
        t.cot
            .as_ref()
            .is_some_and(|c| c.status == "ok" && c.text.is_some())
    }));
    let tokens: Vec<TokenRow> = rows(&out.join("tokens"), TokenRow::from_batch);
    assert_eq!(tokens.len(), 24);
    for t in &tokens {
        assert_eq!(
            t.source_codes.len(),
            t.source_h as usize * t.source_w as usize
        );
        assert!(
            t.cot_text.is_some() && t.cot_bbox.is_some(),
            "CoT carried into tokens: {}",
            t.id
        );
        let [x1, y1, x2, y2] = t.cot_bbox.unwrap();
        assert!(
            x1 < x2 && y1 < y2 && x2 <= 8.0 * t.source_w as f32 + 1.0,
            "box in resized pixels: {:?}",
            t.cot_bbox
        );
    }

    let png = tmp.path().join("row.png");
    let o = run(
        EARL_DATA,
        &[
            "render",
            out.join("tokens").to_str().unwrap(),
            "--id",
            &tokens[0].id,
            "--out",
            png.to_str().unwrap(),
            "--vq",
            "tiny-random",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let img = image::open(&png).unwrap();
    assert!(img.width() > img.height(), "source | target side by side");

    // Rerunning the whole build sends no request: every answer is stored.
    let before = server.requests();
    let out_s = out.to_str().unwrap().to_string();
    let url = server.url();
    let o = tokio::task::spawn_blocking(move || {
        run(
            EARL_DATA,
            &[
                "build",
                "omniedit",
                "--out",
                &out_s,
                "--vq",
                "tiny-random",
                "--image-area",
                "4096",
                "--cot",
                "--endpoint",
                &url,
                "--model",
                "fake-qwen",
            ],
        )
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(server.requests(), before);
}
