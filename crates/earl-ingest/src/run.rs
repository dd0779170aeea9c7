//! The ingest driver: units → reader thread → checks on a worker pool → resumable writer.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use earl_format::{
    DatasetWriter, FinishInfo, FormatError, Manifest, Opened, Rank, Reject, SchemaKind, Triplet,
    WriterOptions,
};
use indicatif::ProgressBar;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::extract::{RawRow, Verdict, check, from_batch, from_json_line};
use crate::recipe::Recipe;
use crate::source::{Source, SourceFormat, Unit};

pub struct IngestOptions {
    pub out: PathBuf,
    /// Read only this split.
    pub split: Option<String>,
    /// Split of rows whose file or folder names none.
    pub default_split: String,
    /// Stop after this many rows read (per rank).
    pub limit: Option<u64>,
    pub rank: Rank,
    /// Fail (after writing everything) when rejected + duplicate rows exceed this share.
    pub max_reject_fraction: f64,
    pub writer: WriterOptions,
    pub limits: earl_image::Limits,
    /// Rows read and checked together.
    pub batch_rows: usize,
    pub progress: ProgressBar,
}

impl IngestOptions {
    pub fn new(out: PathBuf) -> Self {
        IngestOptions {
            out,
            split: None,
            default_split: "train".into(),
            limit: None,
            rank: Rank::default(),
            max_reject_fraction: 0.05,
            writer: WriterOptions::for_kind(SchemaKind::Triplet),
            limits: earl_image::Limits::default(),
            batch_rows: 64,
            progress: ProgressBar::hidden(),
        }
    }
}

#[derive(Debug)]
pub struct IngestSummary {
    /// The directory this rank wrote (`<out>` or `<out>/ranks/rank-R-of-W`).
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// True when the output was already complete and nothing was read.
    pub already_complete: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{0}")]
    Source(String),
    #[error(
        "{bad} of {read} rows ({pct:.1}%) were rejected, over --max-reject-fraction {max}; \
         the dataset is written to {dir} and the reasons are in its rejects/ folder"
    )]
    TooManyRejects {
        bad: u64,
        read: u64,
        pct: f64,
        max: f64,
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// Index into this rank's units.
    unit: usize,
    /// Next row to read in that unit.
    row: u64,
}

/// A chunk of rows read from a unit, or the reason the rest of the unit is unreadable.
struct Chunk {
    unit: usize,
    end: u64,
    rows: Result<Vec<RawRow>, String>,
}

/// Ingests `source` under `recipe` into `opts.out`. Rerunning after a kill finishes the job.
pub fn ingest(
    recipe: &Recipe,
    source: &Source,
    opts: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    let (all_units, unreadable) = source.units(&opts.default_split);
    let units: Vec<Unit> = all_units
        .into_iter()
        .filter(|u| opts.split.as_ref().is_none_or(|s| *s == u.split))
        .enumerate()
        .filter(|(i, _)| i % opts.rank.world == opts.rank.rank)
        .map(|(_, u)| u)
        .collect();
    let dir = opts.rank.output_dir(&opts.out);
    let fingerprint = fingerprint(recipe, source, opts);
    let mut w =
        match DatasetWriter::open(&dir, SchemaKind::Triplet, opts.writer.clone(), &fingerprint)? {
            Opened::Complete(manifest) => {
                return Ok(IngestSummary {
                    dir,
                    manifest,
                    already_complete: true,
                });
            }
            Opened::Writer(w) => w,
        };
    let start: Cursor = w
        .resume_cursor()
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    if w.resume_cursor().is_none() && opts.rank.rank == 0 {
        for (path, why) in &unreadable {
            tracing::warn!(file = %path.display(), "skipping unreadable file: {why}");
            w.bad_file(path.display().to_string(), why.clone());
        }
    } else if w.resume_cursor().is_some() {
        tracing::info!(
            unit = start.unit,
            row = start.row,
            "resuming an interrupted ingest"
        );
    }
    let total: u64 = units.iter().map(|u| u.rows).sum();
    opts.progress
        .set_length(opts.limit.map_or(total, |l| l.min(total.max(l))));
    opts.progress.set_position(w.counts().read);

    let budget = opts.limit.map(|l| l.saturating_sub(w.counts().read));
    let mut cursor = start;
    if !w.finishing() {
        std::thread::scope(|scope| -> Result<(), IngestError> {
            let (tx, rx) = sync_channel::<Chunk>(2);
            let units = &units;
            scope.spawn(move || {
                read_units(source, recipe, units, start, opts.batch_rows, budget, tx)
            });
            for chunk in rx {
                let name = source.files[units[chunk.unit].file].display().to_string();
                let rows = match chunk.rows {
                    Ok(rows) => rows,
                    Err(why) => {
                        tracing::warn!(file = %name, "skipping the rest of an unreadable file: {why}");
                        w.bad_file(name, why);
                        cursor = Cursor {
                            unit: chunk.unit + 1,
                            row: 0,
                        };
                        w.commit(serde_json::to_value(cursor).unwrap_or_default())?;
                        continue;
                    }
                };
                write_rows(&mut w, rows, recipe, source, &units[chunk.unit], opts)?;
                cursor = Cursor {
                    unit: chunk.unit,
                    row: chunk.end,
                };
                w.commit(serde_json::to_value(cursor).unwrap_or_default())?;
            }
            Ok(())
        })?;
    }
    let info = FinishInfo {
        recipe: recipe.to_json(),
        extra: serde_json::json!({ "stage": "ingest", "source": source.root.display().to_string() }),
        title: format!("{} (earl triplets)", recipe.name),
    };
    let manifest = w.finish(serde_json::to_value(cursor).unwrap_or_default(), info)?;
    opts.progress.finish_and_clear();
    let c = &manifest.counts;
    let bad = c.rejected + c.duplicate;
    if c.read == 0 && c.bad_files > 0 {
        return Err(IngestError::Source(format!(
            "no row could be read: all {} input files are unreadable (see {}/rejects)",
            c.bad_files,
            dir.display()
        )));
    }
    if c.read > 0 && bad as f64 > opts.max_reject_fraction * c.read as f64 {
        return Err(IngestError::TooManyRejects {
            bad,
            read: c.read,
            pct: 100.0 * bad as f64 / c.read as f64,
            max: opts.max_reject_fraction,
            dir,
        });
    }
    Ok(IngestSummary {
        dir,
        manifest,
        already_complete: false,
    })
}

/// Checks a chunk's rows in parallel and hands the good ones to the writer, in order.
fn write_rows(
    w: &mut DatasetWriter,
    rows: Vec<RawRow>,
    recipe: &Recipe,
    source: &Source,
    unit: &Unit,
    opts: &IngestOptions,
) -> Result<(), IngestError> {
    let n = rows.len() as u64;
    let checked: Vec<(String, Option<String>, Result<Triplet, Verdict>)> = rows
        .into_par_iter()
        .map(|row| {
            let (loc, id) = (row.locator.clone(), row.upstream_id.clone());
            (
                loc,
                id,
                check(row, recipe, &source.root, &unit.split, &opts.limits),
            )
        })
        .collect();
    w.count_read(n);
    let mut by_split: std::collections::BTreeMap<String, (Vec<Triplet>, Vec<String>)> =
        Default::default();
    for (locator, id, result) in checked {
        match result {
            Ok(t) => {
                let e = by_split.entry(t.split.clone()).or_default();
                e.0.push(t);
                e.1.push(locator);
            }
            Err(Verdict::Filtered(reason)) => w.filtered(reason),
            Err(Verdict::Reject { reason, detail }) => {
                tracing::debug!(%locator, reason, "{detail}");
                w.reject(Reject {
                    source: locator,
                    id: id.map(|i| format!("{}/{i}", recipe.name)),
                    reason: reason.into(),
                    detail,
                });
            }
        }
    }
    for (split, (triplets, locators)) in by_split {
        w.write(&split, &Triplet::to_batch(&triplets)?, &locators)?;
    }
    opts.progress.inc(n);
    Ok(())
}

/// Reads this rank's units from `start`, in chunks, until done or `budget` rows are read.
fn read_units(
    source: &Source,
    recipe: &Recipe,
    units: &[Unit],
    start: Cursor,
    batch_rows: usize,
    mut budget: Option<u64>,
    tx: std::sync::mpsc::SyncSender<Chunk>,
) {
    for (i, unit) in units.iter().enumerate().skip(start.unit) {
        let first = if i == start.unit { start.row } else { 0 };
        let path = &source.files[unit.file];
        let name = path
            .strip_prefix(&source.root)
            .unwrap_or(path)
            .display()
            .to_string();
        let mut send = |end: u64, rows: Result<Vec<RawRow>, String>| -> bool {
            let rows = rows.map(|mut r| {
                if let Some(b) = budget.as_mut() {
                    r.truncate(*b as usize);
                    *b -= r.len() as u64;
                }
                r
            });
            tx.send(Chunk { unit: i, end, rows }).is_ok() && budget != Some(0)
        };
        let go_on = match source.format {
            SourceFormat::Parquet => {
                read_parquet(path, unit, first, batch_rows, recipe, &name, &mut send)
            }
            SourceFormat::Arrow => read_arrow(path, first, batch_rows, recipe, &name, &mut send),
            SourceFormat::Jsonl => read_jsonl(path, first, batch_rows, recipe, &name, &mut send),
        };
        if !go_on {
            return;
        }
    }
}

type Send<'a> = dyn FnMut(u64, Result<Vec<RawRow>, String>) -> bool + 'a;

fn read_parquet(
    path: &Path,
    unit: &Unit,
    first: u64,
    batch_rows: usize,
    recipe: &Recipe,
    name: &str,
    send: &mut Send,
) -> bool {
    let reader = File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string()))
        .and_then(|b| {
            let rg_start: u64 = b.metadata().row_groups()[..unit.row_group.unwrap_or(0)]
                .iter()
                .map(|g| g.num_rows() as u64)
                .sum();
            b.with_row_groups(vec![unit.row_group.unwrap_or(0)])
                .with_offset(first as usize)
                .with_batch_size(batch_rows)
                .build()
                .map(|r| (r, rg_start))
                .map_err(|e| e.to_string())
        });
    let (reader, rg_start) = match reader {
        Ok(r) => r,
        Err(e) => return send(first, Err(e)),
    };
    let mut row = first;
    for batch in reader {
        let rows = batch
            .map_err(|e| format!("reading rows from {row}: {e}"))
            .and_then(|b| from_batch(&b, recipe, name, rg_start + row));
        let failed = rows.is_err();
        row += rows.as_ref().map_or(0, |r| r.len() as u64);
        // After an unreadable part, go on with the next unit: the rest of this one is lost
        // and reported as a bad file.
        let more = send(row, rows);
        if !more || failed {
            return more;
        }
    }
    true
}

fn read_arrow(
    path: &Path,
    first: u64,
    batch_rows: usize,
    recipe: &Recipe,
    name: &str,
    send: &mut Send,
) -> bool {
    let reader = File::open(path).map_err(|e| e.to_string()).and_then(|f| {
        arrow::ipc::reader::StreamReader::try_new(BufReader::new(f), None)
            .map_err(|e| format!("not an Arrow stream: {e}"))
    });
    let reader = match reader {
        Ok(r) => r,
        Err(e) => return send(first, Err(e)),
    };
    let mut row = 0u64;
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                return send(row.max(first), Err(format!("reading rows from {row}: {e}")));
            }
        };
        let mut off = 0usize;
        while off < batch.num_rows() {
            let len = batch_rows.min(batch.num_rows() - off);
            let (lo, hi) = (row + off as u64, row + (off + len) as u64);
            off += len;
            if hi <= first {
                continue;
            }
            let skip = first.saturating_sub(lo) as usize;
            let part = batch.slice(off - len + skip, len - skip);
            if !send(hi, from_batch(&part, recipe, name, lo + skip as u64)) {
                return false;
            }
        }
        row += batch.num_rows() as u64;
    }
    true
}

fn read_jsonl(
    path: &Path,
    first: u64,
    batch_rows: usize,
    recipe: &Recipe,
    name: &str,
    send: &mut Send,
) -> bool {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return send(first, Err(e.to_string())),
    };
    let mut chunk = Vec::new();
    let mut row = 0u64;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return send(row, Err(format!("reading line {}: {e}", row + 1))),
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if row >= first {
            chunk.push(from_json_line(text, recipe, format!("{name}:{}", row + 1)));
        }
        row += 1;
        if chunk.len() >= batch_rows && !send(row, Ok(std::mem::take(&mut chunk))) {
            return false;
        }
    }
    chunk.is_empty() || send(row, Ok(chunk))
}

/// Identifies the job: a rerun into the same directory must be the same job.
fn fingerprint(recipe: &Recipe, source: &Source, opts: &IngestOptions) -> String {
    let files: Vec<(String, u64)> = source
        .files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&source.root)
                .unwrap_or(f)
                .display()
                .to_string();
            (rel, std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        })
        .collect();
    let l = &opts.limits;
    let job = serde_json::json!({
        "recipe": recipe.to_json(), "files": files, "split": opts.split, "limit": opts.limit,
        "rank": [opts.rank.rank, opts.rank.world], "default_split": opts.default_split,
        "limits": [l.max_pixels, l.max_bytes, l.max_aspect], "batch_rows": opts.batch_rows,
    });
    hex::encode(Sha256::digest(job.to_string().as_bytes()))
}
