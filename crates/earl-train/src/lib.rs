//! earl-train: supervised fine-tuning of the Emu3 editor on `tokens.v1` datasets.
//!
//! - [`loader`]: streaming, mixing, shuffling, rank-split, resumable loader.
//! - [`sft::train`]: the training loop, one function over the parts below.
//! - [`step`]: forward/backward of one accumulated batch (optionally recomputing layers).
//! - [`adamw`], [`schedule`]: the optimizer over plain tensors and the learning-rate curve.
//! - [`checkpoint`]: the run directory, atomic checkpoints, resume, retention.
//! - [`metrics`], [`tfevents`]: JSONL, TensorBoard event files and the progress bar.
//! - [`bench`]: tokens/s and peak memory of a configuration.

pub mod adamw;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod rng;
pub mod schedule;
pub mod sft;
pub mod step;
pub mod tfevents;

use std::path::{Path, PathBuf};

pub use config::TrainConfig;
pub use sft::{RunSummary, TrainOptions, train};

/// Everything that can stop a training run, naming the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("setting: {0}")]
    Setting(String),
    #[error("data: {0}")]
    Data(String),
    #[error("model: {0}")]
    Model(#[from] earl_model::Error),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
