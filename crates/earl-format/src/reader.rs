//! Reading a dataset directory back, and checking it against its manifest.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use sha2::{Digest, Sha256};

use crate::error::IoContext;
use crate::{FormatError, Manifest, Result};

/// Streams the record batches of one Parquet shard, `batch_rows` rows at a time.
pub fn read_shard(path: &Path, batch_rows: usize) -> Result<ParquetRecordBatchReader> {
    let file = File::open(path).at(path)?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .at(path)?
        .with_batch_size(batch_rows)
        .build()
        .at(path)
}

/// A finished dataset directory.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// What `validate` found; `problems` is empty for a sound dataset.
#[derive(Debug, Clone, Default)]
pub struct ValidationReport {
    pub shards: usize,
    pub rows: u64,
    pub bytes: u64,
    pub problems: Vec<String>,
}

impl Dataset {
    pub fn open(dir: &Path) -> Result<Dataset> {
        if !dir.join(Manifest::FILE).exists() {
            let hint = if dir.join(".earl/journal.json").exists() {
                "a run is unfinished there: rerun the command that writes it"
            } else {
                "not an earl dataset directory"
            };
            return Err(FormatError::Invalid(format!(
                "{}: no manifest.json ({hint})",
                dir.display()
            )));
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            manifest: Manifest::read(dir)?,
        })
    }

    /// Absolute paths of every shard, in manifest order (optionally one split only).
    pub fn shards(&self, split: Option<&str>) -> Vec<PathBuf> {
        self.manifest
            .shards
            .iter()
            .filter(|s| split.is_none_or(|want| s.split == want))
            .map(|s| self.dir.join(&s.path))
            .collect()
    }

    /// Checks every shard against the manifest: present, size, sha256, row count, schema;
    /// and the counts: written rows equal shard rows, read = written + rejected + duplicate.
    pub fn validate(&self) -> ValidationReport {
        let mut r = ValidationReport::default();
        let m = &self.manifest;
        for s in &m.shards {
            r.shards += 1;
            let path = self.dir.join(&s.path);
            let mut problem = |p: String| r.problems.push(format!("{}: {p}", s.path));
            let Ok(meta) = std::fs::metadata(&path) else {
                problem("missing".into());
                continue;
            };
            if meta.len() != s.bytes {
                problem(format!("{} bytes, manifest says {}", meta.len(), s.bytes));
            }
            match sha256_file(&path) {
                Ok(h) if h != s.sha256 => {
                    problem(format!("sha256 {h}, manifest says {}", s.sha256))
                }
                Err(e) => problem(e.to_string()),
                Ok(_) => {}
            }
            match File::open(&path).map_err(|e| e.to_string()).and_then(|f| {
                ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string())
            }) {
                Ok(b) => {
                    let rows = b.metadata().file_metadata().num_rows() as u64;
                    if rows != s.rows {
                        problem(format!("{rows} rows, manifest says {}", s.rows));
                    }
                    if let Err(e) = crate::schema::check(m.schema, b.schema()) {
                        problem(e.to_string());
                    }
                    r.rows += rows;
                }
                Err(e) => problem(format!("unreadable Parquet: {e}")),
            }
            r.bytes += meta.len();
        }
        let c = &m.counts;
        if r.rows != c.written {
            r.problems.push(format!(
                "shards hold {} rows, manifest counts {} written",
                r.rows, c.written
            ));
        }
        if c.read != c.written + c.rejected + c.duplicate + c.filtered {
            r.problems.push(format!(
                "counts do not add up: read {} != written {} + rejected {} + duplicate {} + filtered {}",
                c.read, c.written, c.rejected, c.duplicate, c.filtered
            ));
        }
        for f in &m.rejects.files {
            if !self.dir.join(f).is_file() {
                r.problems.push(format!("{f}: rejects file missing"));
            }
        }
        r
    }
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).at(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
