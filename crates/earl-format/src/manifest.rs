//! `manifest.json`: what a finished dataset directory holds and how it was made.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::{FormatError, Result, SchemaKind};

/// One Parquet shard of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Path relative to the dataset directory, e.g. `data/train-00000-of-00001.parquet`.
    pub path: String,
    pub split: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// What a stage read, wrote and dropped. `read = written + rejected + duplicate + filtered`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub read: u64,
    pub written: u64,
    pub rejected: u64,
    pub duplicate: u64,
    /// Rows dropped on purpose by a filter of the recipe (not bad input; not in `rejects/`).
    #[serde(default)]
    pub filtered: u64,
    /// Whole input files that could not be read at all (their rows are not in `read`).
    pub bad_files: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.read += o.read;
        self.written += o.written;
        self.rejected += o.rejected;
        self.duplicate += o.duplicate;
        self.filtered += o.filtered;
        self.bad_files += o.bad_files;
    }
}

/// Where the rejected rows are and why they were rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectSummary {
    pub files: Vec<String>,
    pub by_reason: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The schema of every shard, e.g. `triplet.v1`.
    pub schema: SchemaKind,
    /// The tool that wrote it, e.g. `earl 0.1.0`.
    pub tool: String,
    pub created: String,
    /// The recipe and options the stage ran with.
    pub recipe: serde_json::Value,
    pub shards: Vec<ShardEntry>,
    pub counts: Counts,
    pub rejects: RejectSummary,
    /// Stage-specific facts (e.g. the VQ checkpoint of a token dataset).
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl Manifest {
    pub const FILE: &'static str = "manifest.json";

    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path).at(&path)?;
        serde_json::from_str(&text).map_err(|source| FormatError::Json { path, source })
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(|source| FormatError::Json {
            path: dir.join(Self::FILE),
            source,
        })?;
        text.push('\n');
        crate::write_atomic(&dir.join(Self::FILE), text.as_bytes())
    }

    /// Rows per split, in split order of first appearance.
    pub fn split_rows(&self) -> BTreeMap<String, (u64, u64)> {
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for s in &self.shards {
            let e = out.entry(s.split.clone()).or_default();
            e.0 += s.rows;
            e.1 += s.bytes;
        }
        out
    }
}
