use std::path::PathBuf;

/// Everything that can go wrong reading or writing a dataset directory.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("column `{column}`: {reason}")]
    Column { column: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| FormatError::Io {
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for std::result::Result<T, parquet::errors::ParquetError> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| FormatError::Parquet {
            path: path.into(),
            source,
        })
    }
}
