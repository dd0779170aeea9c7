//! Tokenize end to end on the omniedit-mini sample: grids match direct encoding, resume writes
//! every row once, undecodable images become rejects, the CoT box is rescaled.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use earl_format::{
    Cot, Dataset, DatasetWriter, FinishInfo, Opened, SchemaKind, TokenRow, Triplet, WriterOptions,
    read_shard,
};
use earl_tokenize::{TokenizeOptions, prepare, tokenize};
use earl_vq::{VqConfig, VqModel};
use tch::{Device, Kind, Tensor};

const AREA: u32 = 4096;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/samples/omniedit-mini")
}

fn model() -> VqModel {
    VqModel::random(&VqConfig::tiny(), 0, Device::Cpu, Kind::Float).unwrap()
}

/// Ingests the sample into `dir/triplets`.
fn triplets(dir: &Path) -> PathBuf {
    let out = dir.join("triplets");
    let recipe = earl_ingest::Recipe::builtin("omniedit").unwrap();
    let source =
        earl_ingest::Source::local(&sample(), &recipe.format, recipe.files.as_deref()).unwrap();
    earl_ingest::ingest(
        &recipe,
        &source,
        &earl_ingest::IngestOptions::new(out.clone()),
    )
    .unwrap();
    out
}

fn rows_of<T>(dir: &Path, from: fn(&RecordBatch) -> earl_format::Result<Vec<T>>) -> Vec<T> {
    let data = Dataset::open(dir).unwrap();
    let mut out = Vec::new();
    for shard in data.shards(None) {
        for b in read_shard(&shard, 1024).unwrap() {
            out.extend(from(&b.unwrap()).unwrap());
        }
    }
    out
}

fn options(input: &Path, out: &Path) -> TokenizeOptions {
    let mut o = TokenizeOptions::new(input.into(), out.into());
    o.image_area = AREA;
    o.batch_size = 4;
    o.batch_rows = 5;
    o.workers = 2;
    o
}

fn direct_codes(model: &VqModel, bytes: &[u8]) -> (Vec<u16>, u16, u16) {
    let p = prepare(bytes, AREA, &earl_image::Limits::default(), 8).unwrap();
    let (w, h) = p.size;
    let t = Tensor::from_slice(&p.pixels).reshape([1, 3, i64::from(h), i64::from(w)]);
    let codes = model.encode(&t).unwrap();
    let (_, gh, gw) = codes.size3().unwrap();
    let v: Vec<i64> = Vec::try_from(codes.flatten(0, -1)).unwrap();
    (
        v.into_iter().map(|c| c as u16).collect(),
        gh as u16,
        gw as u16,
    )
}

#[test]
fn tokens_match_direct_encoding_and_resume_writes_each_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let input = triplets(tmp.path());
    let model = model();
    let source_rows: Vec<Triplet> = rows_of(&input, Triplet::from_batch);
    assert_eq!(source_rows.len(), 24);

    // One uninterrupted run.
    let full = tmp.path().join("full");
    let s = tokenize(&model, &options(&input, &full)).unwrap();
    let m = s.manifest.unwrap();
    assert_eq!(
        (m.counts.read, m.counts.written, m.counts.rejected),
        (24, 24, 0)
    );
    assert_eq!(s.images, 48);
    assert_eq!(m.extra["vq_checkpoint"], model.checkpoint_id());
    let rows: Vec<TokenRow> = rows_of(&full, TokenRow::from_batch);
    assert_eq!(rows.len(), 24);
    for (row, t) in rows.iter().zip(&source_rows) {
        assert_eq!(
            (&row.id, &row.instruction),
            (&t.id, &t.instruction),
            "input order kept"
        );
        assert_eq!(
            row.source_codes.len(),
            row.source_h as usize * row.source_w as usize
        );
        assert_eq!(
            row.target_codes.len(),
            row.target_h as usize * row.target_w as usize
        );
        assert_eq!(
            (row.vq_checkpoint.as_str(), row.image_area),
            (model.checkpoint_id(), AREA)
        );
        let src = direct_codes(&model, &t.source.bytes);
        let tgt = direct_codes(&model, &t.target.bytes);
        assert_eq!((row.source_h, row.source_w), (src.1, src.2), "{}", row.id);
        assert_eq!((row.target_h, row.target_w), (tgt.1, tgt.2), "{}", row.id);
        // Batching may flip a near-tie; the batched and single encodings must agree almost everywhere.
        let same = |a: &[u16], b: &[u16]| a.iter().zip(b).filter(|(x, y)| x == y).count();
        let n = src.0.len() + tgt.0.len();
        let agree = same(&row.source_codes, &src.0) + same(&row.target_codes, &tgt.0);
        assert!(
            agree as f64 >= 0.99 * n as f64,
            "{}: {agree}/{n} codes agree",
            row.id
        );
    }

    // The same job stopped twice on the way (every 7 rows, not at a batch boundary) and rerun.
    let parts = tmp.path().join("parts");
    let mut runs = 0;
    loop {
        let mut o = options(&input, &parts);
        o.stop_after = Some(7);
        // The writer persists its cursor when it cuts shards: cut at every commit, as a kill
        // between cuts would otherwise just redo the whole (short) run.
        o.writer.max_open = std::time::Duration::ZERO;
        let s = tokenize(&model, &o).unwrap();
        runs += 1;
        if s.manifest.is_some() {
            break;
        }
        assert!(runs < 10, "tokenize never finished");
    }
    assert!(runs >= 3, "the job was interrupted ({runs} runs)");
    let resumed: Vec<TokenRow> = rows_of(&parts, TokenRow::from_batch);
    let m = Dataset::open(&parts).unwrap().manifest;
    assert_eq!(
        (m.counts.read, m.counts.written, m.counts.duplicate),
        (24, 24, 0)
    );
    assert_eq!(resumed, rows, "resumed output equals the uninterrupted one");
    assert!(
        Dataset::open(&parts)
            .unwrap()
            .validate()
            .problems
            .is_empty()
    );

    // A finished output is left alone.
    let again = tokenize(&model, &options(&input, &parts)).unwrap();
    assert!(again.already_complete);
}

/// A triplet dataset written directly: one good row with a CoT box, one with a broken source.
fn handmade(dir: &Path) -> PathBuf {
    let out = dir.join("handmade");
    let mut png = Vec::new();
    image::RgbImage::from_fn(200, 100, |x, y| image::Rgb([x as u8, y as u8, 7]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let blob = |bytes: &[u8]| earl_format::ImageBlob {
        bytes: bytes.to_vec(),
        width: 200,
        height: 100,
        format: "png".into(),
    };
    let good = Triplet {
        id: "hand/good".into(),
        split: "train".into(),
        instruction: "make it red".into(),
        source: blob(&png),
        target: blob(&png),
        cot: Some(Cot {
            text: Some("the left half".into()),
            bbox: Some([0.0, 0.0, 100.0, 50.0]),
            status: "ok".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bad = Triplet {
        id: "hand/bad".into(),
        source: blob(b"\x89PNG\r\n\x1a\n truncated"),
        ..good.clone()
    };
    let opts = WriterOptions::for_kind(SchemaKind::Triplet);
    let Opened::Writer(mut w) = DatasetWriter::open(&out, SchemaKind::Triplet, opts, "t").unwrap()
    else {
        panic!("fresh dir")
    };
    w.count_read(2);
    let batch = Triplet::to_batch(&[good, bad]).unwrap();
    w.write("train", &batch, &["a:0".into(), "a:1".into()])
        .unwrap();
    w.finish(serde_json::json!({}), FinishInfo::default())
        .unwrap();
    out
}

#[test]
fn broken_images_are_rejected_and_the_cot_box_is_rescaled() {
    let tmp = tempfile::tempdir().unwrap();
    let input = handmade(tmp.path());
    let out = tmp.path().join("tokens");
    let model = model();
    let m = tokenize(&model, &options(&input, &out))
        .unwrap()
        .manifest
        .unwrap();
    assert_eq!(
        (m.counts.read, m.counts.written, m.counts.rejected),
        (2, 1, 1)
    );
    assert_eq!(m.rejects.by_reason.get("corrupt_image"), Some(&1));
    let rejects = std::fs::read_to_string(out.join(&m.rejects.files[0])).unwrap();
    assert!(
        rejects.contains("hand/bad") && rejects.contains("source image"),
        "{rejects}"
    );

    let rows: Vec<TokenRow> = rows_of(&out, TokenRow::from_batch);
    let row = &rows[0];
    assert_eq!(row.cot_text.as_deref(), Some("the left half"));
    // 200x100 at area 4096 -> 91x45: the box scales by 91/200 and 45/100.
    assert_eq!((row.source_w, row.source_h), (91 / 8, 45 / 8));
    let b = row.cot_bbox.unwrap();
    assert!(
        (b[2] - 45.5).abs() < 1e-4 && (b[3] - 22.5).abs() < 1e-4,
        "{b:?}"
    );

    // Rendering decodes both grids side by side.
    let im = earl_tokenize::render_row(&model, row).unwrap();
    assert_eq!((im.width(), im.height()), (88 + 4 + 88, 40));
    let other = VqModel::random(&VqConfig::tiny(), 1, Device::Cpu, Kind::Float).unwrap();
    assert!(
        earl_tokenize::render_row(&other, row).is_err(),
        "another VQ is refused"
    );
}
