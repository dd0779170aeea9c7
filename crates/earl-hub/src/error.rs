//! Errors that say what went wrong and what to do about it.

use std::path::PathBuf;

/// Everything `earl-hub` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid source {input:?}: {reason}")]
    InvalidSource { input: String, reason: String },

    #[error("invalid file filter {pattern:?}: {source}")]
    BadFilter {
        pattern: String,
        #[source]
        source: globset::Error,
    },

    #[error(
        "{repo}: the Hub asks for authentication ({url}); set HF_TOKEN (or log in with \
         `hf auth login`, which writes $HF_HOME/token): private and gated repos need one, and \
         the Hub also answers 401 to anonymous requests for repos that do not exist"
    )]
    Unauthorized { repo: String, url: String },

    #[error(
        "{repo}: access denied ({url}); the token has no read access: for a gated repo accept \
         its terms at {page}, otherwise use a token of an account that can read it"
    )]
    Forbidden {
        repo: String,
        url: String,
        page: String,
    },

    #[error(
        "{repo}@{revision}: {what} not found ({url}); check the repo id and the revision \
         (the Hub also answers 404 for private repos when no HF_TOKEN is set)"
    )]
    NotFound {
        repo: String,
        revision: String,
        what: String,
        url: String,
    },

    #[error("{repo}@{revision}: no file matches {pattern:?}; the revision has {available}")]
    NoMatch {
        repo: String,
        revision: String,
        pattern: String,
        available: String,
    },

    #[error("{repo}@{revision}: {path:?} is not a file of that revision; it has {available}")]
    MissingFile {
        repo: String,
        revision: String,
        path: String,
        available: String,
    },

    #[error(
        "HF_HUB_OFFLINE=1 and {what} is not in the cache at {}; run once without \
         HF_HUB_OFFLINE to download it, or point HF_HOME / HF_HUB_CACHE at a cache that has it",
        path.display()
    )]
    OfflineMiss { what: String, path: PathBuf },

    #[error("{0}")]
    Checksum(Box<ChecksumMismatch>),

    #[error("{url}: HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },

    #[error(
        "{url}: {source}; check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use \
             the local cache"
    )]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("{repo}: downloading {path} failed: {source}")]
    Download {
        repo: String,
        path: String,
        #[source]
        source: Box<hf_hub::HFError>,
    },

    #[error("malformed Hub response from {url}: {reason}")]
    Malformed { url: String, reason: String },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot start the HTTP client: {0}")]
    Setup(String),
}

/// A downloaded file that is not what the Hub listed (boxed: it is the largest error).
#[derive(Debug, thiserror::Error)]
#[error(
    "{repo}: {path} arrived with {received} bytes and {kind} {actual}, but the Hub lists {size} \
     bytes and {expected}; the bad copy was deleted, run again to re-download (if it repeats, \
     the Hub or a proxy serves wrong bytes)"
)]
pub struct ChecksumMismatch {
    pub repo: String,
    pub path: String,
    /// `sha256` (LFS files) or `git blob sha1` (files stored in git).
    pub kind: &'static str,
    pub expected: String,
    pub actual: String,
    pub received: u64,
    pub size: u64,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach the path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
