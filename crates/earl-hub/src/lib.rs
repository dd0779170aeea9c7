//! earl-hub: resolve Hugging Face Hub repositories into local files.
//!
//! - [`HubClient::dataset_files`]: a dataset id + revision + glob → its (Parquet) files.
//! - [`HubClient::model_dir`]: a model id + revision + file names → a snapshot folder.
//! - [`Source::parse`]: `hub:org/name@rev`, `org/name` or a local path.
//!
//! Files land in the standard Hugging Face cache (`$HF_HOME/hub`, see [`cache`'s layout]), so
//! whatever Python's `huggingface_hub` already downloaded is reused without network, and the
//! usual variables apply (`HF_TOKEN`, `HF_ENDPOINT`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`).
//! Downloads resume from partial files and are checked against the sha256 (LFS files) or git
//! blob id (other files) that the Hub lists.
//!
//! [`cache`'s layout]: https://huggingface.co/docs/huggingface_hub/guides/manage-cache

mod api;
mod cache;
mod client;
mod config;
mod download;
mod error;
mod source;

pub use client::HubClient;
pub use config::{DEFAULT_ENDPOINT, HubConfig, Token};
pub use error::{ChecksumMismatch, Error, Result};
pub use source::{HubRef, Source};
