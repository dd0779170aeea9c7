//! Errors of the vision tokenizer, each naming the file, tensor or input at fault.

use std::path::PathBuf;

/// Everything that can go wrong loading or running the VQ model.
#[derive(Debug, thiserror::Error)]
pub enum VqError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{origin}: invalid VQ config: {reason}")]
    Config { origin: String, reason: String },

    #[error("{path}: not a readable safetensors checkpoint: {reason}")]
    Checkpoint { path: PathBuf, reason: String },

    #[error(
        "{path}: no tensor `{name}`; the config.json beside it describes a different model \
         (use the config.json shipped with these weights)"
    )]
    MissingTensor { path: PathBuf, name: String },

    #[error(
        "{path}: tensor `{name}` has shape {found:?} but the config asks for {expected:?} \
         (use the config.json shipped with these weights)"
    )]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },

    #[error(
        "{path}: {count} tensor(s) the config does not use, e.g. `{example}`; \
         the config.json does not describe these weights"
    )]
    UnusedTensors {
        path: PathBuf,
        count: usize,
        example: String,
    },

    #[error("device `{spec}`: {reason}")]
    Device { spec: String, reason: String },

    #[error("precision {kind:?} is not supported: use fp32 (Float) or bf16 (BFloat16)")]
    Kind { kind: tch::Kind },

    #[error("invalid input: {0}")]
    Input(String),

    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = VqError> = std::result::Result<T, E>;
