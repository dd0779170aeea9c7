//! The crate's error type: every variant names what failed and what to do about it.

use std::path::PathBuf;

/// Errors of the client, the cache, the templates and the stages.
#[derive(Debug, thiserror::Error)]
pub enum VlmError {
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("cannot read API key file {path}: {source}")]
    ApiKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("prompt template {path}: {reason}")]
    Template { path: String, reason: String },

    #[error("image {what}: {reason}")]
    Image { what: String, reason: String },

    /// The server kept failing in a retryable way (connection, timeout, 429, 5xx).
    #[error("{url}: gave up after {attempts} attempts; last error: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },

    /// The server refused the request in a way retrying cannot fix (400, 401, 404, ...).
    #[error("{url}: HTTP {status}: {body} (check the endpoint, model name and API key)")]
    Http {
        url: String,
        status: u16,
        body: String,
    },

    /// Every reply failed validation; the last one is kept for the record.
    #[error("reply rejected after {attempts} attempts: {reason}")]
    Rejected {
        reason: String,
        raw: String,
        attempts: u32,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}, line {line}: {reason}")]
    Input {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("dataset: {0}")]
    Format(String),
}

impl VlmError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VlmError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = VlmError> = std::result::Result<T, E>;
