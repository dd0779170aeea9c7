//! The datasets a run reads: one token dataset directory each, its training and validation
//! shards as listed by its manifest, and its mixing coefficient (upstream EARL's semantics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use earl_format::{Dataset, SchemaKind};

use crate::TrainError;

/// Splits whose shards form the validation slice instead of training data.
const VALIDATION_SPLITS: [&str; 3] = ["validation", "val", "test"];

/// One `tokens.v1` dataset directory.
#[derive(Debug, Clone)]
pub struct Source {
    /// The directory's file name: the key of `data.coefficients`.
    pub name: String,
    pub dir: PathBuf,
    /// Training shards with their row counts, in manifest order.
    pub train_shards: Vec<(PathBuf, u64)>,
    pub validation_shards: Vec<PathBuf>,
}

impl Source {
    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        let manifest = Dataset::open(dir)
            .map_err(|e| TrainError::Data(format!("--shards {}: {e}", dir.display())))?
            .manifest;
        if manifest.schema != SchemaKind::Tokens {
            return Err(TrainError::Data(format!(
                "{}: holds {:?} shards, but training needs tokens.v1 (run `earl-data tokenize`)",
                dir.display(),
                manifest.schema
            )));
        }
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_owned())
            .file_name()
            .map_or_else(
                || "dataset".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
        let (mut train_shards, mut validation_shards) = (Vec::new(), Vec::new());
        for shard in &manifest.shards {
            let path = dir.join(&shard.path);
            if VALIDATION_SPLITS.contains(&shard.split.as_str()) {
                validation_shards.push(path);
            } else {
                train_shards.push((path, shard.rows));
            }
        }
        Ok(Self {
            name,
            dir: dir.to_owned(),
            train_shards,
            validation_shards,
        })
    }

    pub fn train_rows(&self) -> u64 {
        self.train_shards.iter().map(|(_, rows)| rows).sum()
    }
}

/// Per-dataset mixing coefficients, as upstream EARL's SFT dataset: with no coefficients at all
/// every dataset is upsampled to the size of the largest; otherwise a dataset without one
/// takes 1.0. Names in the table that match no dataset are an error (a typo would otherwise
/// silently change the mixture).
pub fn coefficients(
    sources: &[Source],
    table: &BTreeMap<String, f64>,
) -> Result<Vec<f64>, TrainError> {
    if let Some(unknown) = table
        .keys()
        .find(|k| !sources.iter().any(|s| &s.name == *k))
    {
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        return Err(TrainError::Data(format!(
            "data.coefficients names {unknown:?}, which is not among the --shards datasets \
             {names:?} (keys are dataset directory names)"
        )));
    }
    if table.is_empty() {
        let largest = sources.iter().map(Source::train_rows).max().unwrap_or(0) as f64;
        return Ok(sources
            .iter()
            .map(|s| {
                if s.train_rows() == 0 {
                    0.0
                } else {
                    largest / s.train_rows() as f64
                }
            })
            .collect());
    }
    Ok(sources
        .iter()
        .map(|s| table.get(&s.name).copied().unwrap_or(1.0))
        .collect())
}

/// Rows one epoch takes from a dataset of `rows` rows: `floor(c)` full passes plus a random
/// `floor(rows * frac(c))` more (upstream's `int(len * remainder)`), or `floor(rows * c)` below 1.
pub fn epoch_quota(rows: u64, coefficient: f64) -> u64 {
    let whole = coefficient.trunc();
    let fraction = coefficient - whole;
    whole as u64 * rows + (rows as f64 * fraction) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_follow_upstream_rounding() {
        assert_eq!(epoch_quota(10, 2.5), 25);
        assert_eq!(epoch_quota(10, 0.33), 3);
        assert_eq!(epoch_quota(7, 1.0), 7);
        assert_eq!(epoch_quota(7, 0.0), 0);
    }
}
