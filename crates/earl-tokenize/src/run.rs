//! The tokenize driver: reader thread → prep pool → batched encoder → resumable writer.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};
use earl_format::{
    Dataset, DatasetWriter, FinishInfo, Manifest, Opened, Rank, Reject, SchemaKind, TokenRow,
    Triplet, WriterOptions,
};
use earl_vq::VqModel;
use indicatif::ProgressBar;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::Tensor;

use crate::TokenizeError;
use crate::prep::{Prepared, prepare, rescale_bbox};

pub struct TokenizeOptions {
    /// A finished `triplet.v1` dataset.
    pub input: PathBuf,
    pub out: PathBuf,
    /// Pixel budget of the smart resize (65536 = 256x256).
    pub image_area: u32,
    /// Images per encoder call (per size bucket).
    pub batch_size: usize,
    /// Input rows read, prepared and committed together.
    pub batch_rows: usize,
    /// Threads decoding and resizing (0: one per core).
    pub workers: usize,
    pub rank: Rank,
    /// Read at most this many rows (per rank); part of the job's identity.
    pub limit: Option<u64>,
    /// Stop this run after about this many rows, leaving the output unfinished and resumable
    /// (a time-boxed job); a rerun continues from the writer's last shard cut (see
    /// `WriterOptions::max_open`). Not part of the job's identity.
    pub stop_after: Option<u64>,
    pub limits: earl_image::Limits,
    pub writer: WriterOptions,
    pub progress: ProgressBar,
}

impl TokenizeOptions {
    pub fn new(input: PathBuf, out: PathBuf) -> Self {
        TokenizeOptions {
            input,
            out,
            image_area: 65536,
            batch_size: 8,
            batch_rows: 64,
            workers: 0,
            rank: Rank::default(),
            limit: None,
            stop_after: None,
            limits: earl_image::Limits::default(),
            writer: WriterOptions::for_kind(SchemaKind::Tokens),
            progress: ProgressBar::hidden(),
        }
    }
}

#[derive(Debug)]
pub struct TokenizeSummary {
    /// The directory this rank wrote (`<out>` or `<out>/ranks/rank-R-of-W`).
    pub dir: PathBuf,
    /// `None` when the run stopped early (`stop_after`) and the output is unfinished.
    pub manifest: Option<Manifest>,
    /// True when the output was already complete and nothing was read.
    pub already_complete: bool,
    /// Images encoded by this run, and their rate.
    pub images: u64,
    pub images_per_s: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// Index into this rank's input shards.
    shard: usize,
    /// Next row to read in that shard.
    row: u64,
}

/// Rows read from one input shard, or why the rest of it is unreadable.
struct Chunk<T> {
    shard: usize,
    /// Row of the first item, and the row after the last.
    start: u64,
    end: u64,
    rows: Result<Vec<T>, String>,
}

/// A row without its image bytes, and its two prepared images (or why it was refused).
struct PrepRow {
    meta: TokenRow,
    images: Result<[Prepared; 2], (&'static str, String)>,
}

/// Tokenizes `opts.input` into `opts.out` with `model`. Rerunning after a kill finishes the job.
pub fn tokenize(model: &VqModel, opts: &TokenizeOptions) -> Result<TokenizeSummary, TokenizeError> {
    let input = Dataset::open(&opts.input)?;
    if input.manifest.schema != SchemaKind::Triplet {
        return Err(TokenizeError::Input(format!(
            "{} is a {} dataset; tokenize reads triplet.v1 (the output of ingest)",
            opts.input.display(),
            input.manifest.schema.tag()
        )));
    }
    let world = opts.rank.world.max(1);
    let shards: Vec<(PathBuf, u64)> = (input.manifest.shards.iter())
        .enumerate()
        .filter(|(i, _)| i % world == opts.rank.rank)
        .map(|(_, s)| (input.dir.join(&s.path), s.rows))
        .collect();
    let dir = opts.rank.output_dir(&opts.out);
    let fingerprint = fingerprint(&input.manifest, model, opts);
    let kind = SchemaKind::Tokens;
    let mut w = match DatasetWriter::open(&dir, kind, opts.writer.clone(), &fingerprint)? {
        Opened::Complete(m) => {
            return Ok(TokenizeSummary {
                dir,
                manifest: Some(m),
                already_complete: true,
                images: 0,
                images_per_s: 0.0,
            });
        }
        Opened::Writer(w) => w,
    };
    let start: Cursor = w
        .resume_cursor()
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    if w.resume_cursor().is_some() {
        tracing::info!(
            shard = start.shard,
            row = start.row,
            "resuming an interrupted tokenize"
        );
    }
    let total: u64 = shards.iter().map(|s| s.1).sum();
    opts.progress
        .set_length(opts.limit.map_or(total, |l| l.min(total)));
    opts.progress.set_position(w.counts().read);

    let done = w.counts().read;
    let mut budget = opts.limit.map(|l| l.saturating_sub(done));
    if let Some(stop) = opts.stop_after {
        budget = Some(budget.map_or(stop, |b| b.min(stop)));
    }
    let mut cursor = start;
    let mut encoder = Encoder::new(model, opts);
    if !w.finishing() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.workers)
            .thread_name(|i| format!("tokenize-prep-{i}"))
            .build()
            .map_err(|e| TokenizeError::Input(format!("cannot start the worker pool: {e}")))?;
        std::thread::scope(|scope| -> Result<(), TokenizeError> {
            let (read_tx, read_rx) = bounded::<Chunk<Triplet>>(2);
            let (prep_tx, prep_rx) = bounded::<Chunk<PrepRow>>(2);
            let shards = &shards;
            scope.spawn(move || read_shards(shards, start, opts.batch_rows, budget, read_tx));
            let (pool, min_side) = (&pool, model.config().spatial_factor() as u32);
            scope.spawn(move || prepare_chunks(read_rx, prep_tx, pool, opts, min_side));
            for chunk in prep_rx.iter() {
                let name = shards[chunk.shard].0.display().to_string();
                cursor = match chunk.rows {
                    Ok(rows) => {
                        encoder.write(&mut w, rows, &name, chunk.start)?;
                        Cursor {
                            shard: chunk.shard,
                            row: chunk.end,
                        }
                    }
                    Err(why) => {
                        tracing::warn!(file = %name, "skipping the rest of an unreadable shard: {why}");
                        w.bad_file(name, why);
                        Cursor {
                            shard: chunk.shard + 1,
                            row: 0,
                        }
                    }
                };
                w.commit(serde_json::to_value(cursor).unwrap_or_default())?;
                opts.progress.set_message(encoder.status(&prep_rx));
            }
            Ok(())
        })?;
    }
    let (images, images_per_s) = (encoder.images, encoder.rate());
    let read = w.counts().read;
    let exhausted = shards.get(cursor.shard).is_none_or(|s| cursor.row >= s.1)
        && cursor.shard + 1 >= shards.len();
    let at_limit = opts.limit.is_some_and(|l| read >= l);
    let stopped_early =
        opts.stop_after.is_some_and(|s| read - done >= s) && !exhausted && !at_limit;
    if stopped_early {
        // Leave the journal as the next run's starting point; drop the writer unfinished.
        drop(w);
        opts.progress.abandon();
        return Ok(TokenizeSummary {
            dir,
            manifest: None,
            already_complete: false,
            images,
            images_per_s,
        });
    }
    let info = FinishInfo {
        recipe: serde_json::json!({
            "stage": "tokenize",
            "input": opts.input.display().to_string(),
            "image_area": opts.image_area,
            "vq_checkpoint": model.checkpoint_id(),
            "limit": opts.limit,
            "rank": [opts.rank.rank, world],
        }),
        extra: serde_json::json!({
            "stage": "tokenize",
            "vq_checkpoint": model.checkpoint_id(),
            "image_area": opts.image_area,
            "codebook_size": model.config().codebook_size,
        }),
        title: format!("{} (earl tokens)", dataset_title(&input)),
    };
    let manifest = w.finish(serde_json::to_value(cursor).unwrap_or_default(), info)?;
    opts.progress.finish_and_clear();
    Ok(TokenizeSummary {
        dir,
        manifest: Some(manifest),
        already_complete: false,
        images,
        images_per_s,
    })
}

fn dataset_title(input: &Dataset) -> String {
    input
        .manifest
        .recipe
        .get("name")
        .and_then(|n| n.as_str())
        .map_or_else(
            || {
                input
                    .dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            },
            str::to_string,
        )
}

/// The device stage: encodes the prepared images of a chunk, bucketed by size, and writes
/// the chunk's rows in input order.
struct Encoder<'a> {
    model: &'a VqModel,
    opts: &'a TokenizeOptions,
    started: Instant,
    images: u64,
}

impl<'a> Encoder<'a> {
    fn new(model: &'a VqModel, opts: &'a TokenizeOptions) -> Self {
        Encoder {
            model,
            opts,
            started: Instant::now(),
            images: 0,
        }
    }

    fn rate(&self) -> f64 {
        self.images as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn status(&self, prep_rx: &Receiver<Chunk<PrepRow>>) -> String {
        format!(
            "{:.1} img/s, prepared batches queued {}/2",
            self.rate(),
            prep_rx.len()
        )
    }

    fn write(
        &mut self,
        w: &mut DatasetWriter,
        rows: Vec<PrepRow>,
        shard: &str,
        start: u64,
    ) -> Result<(), TokenizeError> {
        let n = rows.len() as u64;
        w.count_read(n);
        // Every good image, by resized size (width, height) -> (row, 0 source | 1 target).
        let mut buckets: BTreeMap<(u32, u32), Vec<(usize, usize)>> = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            if let Ok(images) = &r.images {
                for (k, im) in images.iter().enumerate() {
                    buckets.entry(im.size).or_default().push((i, k));
                }
            }
        }
        let mut grids: HashMap<(usize, usize), (Vec<u16>, u16, u16)> = HashMap::new();
        for ((width, height), members) in &buckets {
            for part in members.chunks(self.opts.batch_size.max(1)) {
                let pixels: Vec<f32> = part
                    .iter()
                    .flat_map(|&(i, k)| match &rows[i].images {
                        Ok(images) => images[k].pixels.as_slice(),
                        Err(_) => &[],
                    })
                    .copied()
                    .collect();
                let shape = [part.len() as i64, 3, i64::from(*height), i64::from(*width)];
                let batch = Tensor::f_from_slice(&pixels)
                    .and_then(|t| t.f_reshape(shape))
                    .map_err(earl_vq::VqError::from)?;
                for (&key, grid) in part.iter().zip(self.encode(&batch)?) {
                    grids.insert(key, grid);
                }
                self.images += part.len() as u64;
            }
        }
        let mut by_split: BTreeMap<String, (Vec<TokenRow>, Vec<String>)> = BTreeMap::new();
        for (i, r) in rows.into_iter().enumerate() {
            let locator = format!("{shard}:{}", start + i as u64);
            if let Err((reason, detail)) = r.images {
                w.reject(Reject {
                    source: locator,
                    id: Some(r.meta.id),
                    reason: reason.into(),
                    detail,
                });
                continue;
            }
            let mut row = r.meta;
            row.vq_checkpoint = self.model.checkpoint_id().to_string();
            let (Some(src), Some(tgt)) = (grids.remove(&(i, 0)), grids.remove(&(i, 1))) else {
                unreachable!("every good image of the chunk was encoded")
            };
            (row.source_codes, row.source_h, row.source_w) = src;
            (row.target_codes, row.target_h, row.target_w) = tgt;
            let e = by_split.entry(row.split.clone()).or_default();
            e.0.push(row);
            e.1.push(locator);
        }
        for (split, (rows, locators)) in by_split {
            w.write(&split, &TokenRow::to_batch(&rows)?, &locators)?;
        }
        self.opts.progress.inc(n);
        Ok(())
    }

    /// Code grids `(codes, h, w)` of a batch of images.
    fn encode(&self, batch: &Tensor) -> Result<Vec<(Vec<u16>, u16, u16)>, TokenizeError> {
        let codes = self
            .model
            .encode(batch)?
            .f_to_device(tch::Device::Cpu)
            .map_err(earl_vq::VqError::from)?;
        let (b, h, w) = codes.size3().map_err(earl_vq::VqError::from)?;
        let flat: Vec<i64> = Vec::try_from(codes.flatten(0, -1)).map_err(earl_vq::VqError::from)?;
        let per = (h * w) as usize;
        (0..b as usize)
            .map(|i| {
                let grid = flat[i * per..(i + 1) * per]
                    .iter()
                    .map(|&c| u16::try_from(c))
                    .collect::<Result<Vec<u16>, _>>()
                    .map_err(|_| {
                        TokenizeError::Input(
                            "a code does not fit in u16 (codebook over 65536)".into(),
                        )
                    })?;
                Ok((grid, h as u16, w as u16))
            })
            .collect()
    }
}

/// The CPU stage: decodes and resizes every row of a chunk on the pool, keeping order.
fn prepare_chunks(
    rx: Receiver<Chunk<Triplet>>,
    tx: Sender<Chunk<PrepRow>>,
    pool: &rayon::ThreadPool,
    opts: &TokenizeOptions,
    min_side: u32,
) {
    for chunk in rx {
        let rows = chunk.rows.map(|rows| {
            pool.install(|| {
                rows.into_par_iter()
                    .map(|t| prepare_row(t, opts, min_side))
                    .collect()
            })
        });
        let out = Chunk {
            shard: chunk.shard,
            start: chunk.start,
            end: chunk.end,
            rows,
        };
        if tx.send(out).is_err() {
            return;
        }
    }
}

fn prepare_row(t: Triplet, opts: &TokenizeOptions, min_side: u32) -> PrepRow {
    let prep = |bytes: &[u8], which: &str| {
        prepare(bytes, opts.image_area, &opts.limits, min_side)
            .map_err(|(reason, detail)| (reason, format!("{which} image: {detail}")))
    };
    let images =
        prep(&t.source.bytes, "source").and_then(|s| Ok([s, prep(&t.target.bytes, "target")?]));
    // Only a usable annotation travels; its box moves to resized source pixels.
    let cot = t.cot.filter(|c| c.status == "ok");
    let cot_bbox = match (&images, cot.as_ref().and_then(|c| c.bbox)) {
        (Ok([src, _]), Some(b)) => Some(rescale_bbox(b, src.orig, src.size)),
        _ => None,
    };
    PrepRow {
        meta: TokenRow {
            id: t.id,
            source_dataset: t.source_dataset,
            upstream_id: t.upstream_id,
            split: t.split,
            instruction: t.instruction,
            cot_text: cot.and_then(|c| c.text),
            cot_bbox,
            image_area: opts.image_area,
            ..Default::default()
        },
        images,
    }
}

/// Reads this rank's shards from `start`, in chunks, until done or `budget` rows are read.
fn read_shards(
    shards: &[(PathBuf, u64)],
    start: Cursor,
    batch_rows: usize,
    mut budget: Option<u64>,
    tx: Sender<Chunk<Triplet>>,
) {
    for (i, (path, _)) in shards.iter().enumerate().skip(start.shard) {
        if budget == Some(0) {
            return;
        }
        let first = if i == start.shard { start.row } else { 0 };
        let reader = open_at(path, first, batch_rows.max(1));
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Chunk {
                    shard: i,
                    start: first,
                    end: first,
                    rows: Err(e),
                });
                continue;
            }
        };
        let mut row = first;
        for batch in reader {
            let mut rows = batch
                .map_err(|e| format!("reading rows from {row}: {e}"))
                .and_then(|b| Triplet::from_batch(&b).map_err(|e| format!("rows from {row}: {e}")));
            if let (Ok(r), Some(b)) = (rows.as_mut(), budget.as_mut()) {
                r.truncate(*b as usize);
                *b -= r.len() as u64;
            }
            let failed = rows.is_err();
            let end = row + rows.as_ref().map_or(0, |r| r.len() as u64);
            if tx
                .send(Chunk {
                    shard: i,
                    start: row,
                    end,
                    rows,
                })
                .is_err()
                || failed
            {
                break;
            }
            row = end;
            if budget == Some(0) {
                return;
            }
        }
    }
}

fn open_at(
    path: &Path,
    first: u64,
    batch_rows: usize,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| {
            b.with_offset(first as usize)
                .with_batch_size(batch_rows)
                .build()
        })
        .map_err(|e| e.to_string())
}

/// Identifies the job: a rerun into the same directory must be the same job.
fn fingerprint(input: &Manifest, model: &VqModel, opts: &TokenizeOptions) -> String {
    let shards: Vec<&str> = input.shards.iter().map(|s| s.sha256.as_str()).collect();
    let l = &opts.limits;
    let job = serde_json::json!({
        "input": shards, "vq": model.checkpoint_id(), "area": opts.image_area,
        "limit": opts.limit, "rank": [opts.rank.rank, opts.rank.world],
        "limits": [l.max_pixels, l.max_bytes, l.max_aspect],
    });
    hex::encode(Sha256::digest(job.to_string().as_bytes()))
}
