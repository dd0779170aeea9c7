//! Tokenize: `triplet.v1` shards into `tokens.v1` shards, and token rows back into pictures.
//!
//! ```text
//! triplet shards ─ reader thread ─▶ [queue] ─ prep pool: decode, RGB, smart resize, [-1,1]
//!   ─▶ [queue] ─ encoder (device): images bucketed by size, batched ─▶ resumable writer
//! ```
//! [`tokenize`] is a pipeline with bounded queues, so memory stays flat whatever the input size.
//! Its cursor is (input shard, row), committed at input-batch boundaries in input order, so a
//! rerun after a kill (or a [`TokenizeOptions::stop_after`]) writes every row exactly once and
//! the output is the same as one uninterrupted run.
//!
//! [`VqSource`] names the tokenizer (`tiny-random`, a folder, or a Hub id); [`render_row`] decodes a
//! row's two grids side by side; [`bench_tokenize`] measures images per second.

mod bench;
mod error;
mod prep;
mod render;
mod run;
mod vq;

pub use bench::{TokenizeBenchRow, TokenizeBenchSpec, bench_tokenize, format_bench};
pub use earl_format::Rank;
/// The VQ crate this one runs, so binaries can parse devices and name the model type.
pub use earl_vq;
pub use error::TokenizeError;
pub use prep::{Prepared, prepare, rescale_bbox};
pub use render::{codes_to_image, find_row, render_row};
pub use run::{TokenizeOptions, TokenizeSummary, tokenize};
pub use vq::VqSource;
