//! earl's on-disk formats.
//!
//! - [`schema`]: the two versioned Arrow schemas (`triplet.v1`, `tokens.v1`), described as data so
//!   the readable copies in `schemas/` are generated from the same table.
//! - [`records`]: plain Rust records and their conversion to and from Arrow batches.
//! - [`DatasetWriter`]: a resumable, atomic writer of a dataset directory (shards, rejects,
//!   manifest, dataset card); [`Dataset`] and [`read_shard`] read one back.
//!
//! A dataset directory:
//! ```text
//! <dir>/manifest.json                          written last: its presence means "complete"
//! <dir>/README.md                              dataset card the `datasets` library understands
//! <dir>/data/{split}-{i:05}-of-{n:05}.parquet  zstd shards
//! <dir>/rejects/part-{k:05}.jsonl              every rejected row with its reason
//! <dir>/.earl/                                 journal and committed shards of a run in progress
//! ```

mod atomic;
mod card;
mod error;
mod manifest;
mod reader;
pub mod records;
pub mod schema;
mod writer;

pub use atomic::{fsync_dir, write_atomic};
pub use error::{FormatError, Result};
pub use manifest::{Counts, Manifest, RejectSummary, ShardEntry};
pub use reader::{Dataset, ValidationReport, read_shard};
pub use records::{Cot, ImageBlob, Scores, TokenRow, Triplet};
pub use schema::SchemaKind;
pub use writer::{DatasetWriter, FinishInfo, Opened, Rank, Reject, WriterOptions, merge_ranks};

/// The version of the tool, recorded in every manifest.
pub const TOOL_VERSION: &str = concat!("earl ", env!("CARGO_PKG_VERSION"));
