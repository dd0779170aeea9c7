//! Ingest: any editing dataset, described by a recipe, into `triplet.v1` shards.
//!
//! A [`Recipe`] says which columns mean what; a [`Source`] lists the input *units* (a Parquet row
//! group, an Arrow file, a JSONL file) in a fixed order. [`ingest`] splits the units between
//! ranks, reads them on a background thread, checks every row on a worker pool (every image is
//! fully decoded, but its upstream bytes are stored unchanged), and writes through the
//! resumable `earl_format::DatasetWriter`, whose cursor is (unit, row).

mod extract;
mod recipe;
mod run;
mod source;
pub mod synthetic;

pub use earl_format::Rank;
pub use recipe::{Choose, Columns, Filters, InstructionRule, Recipe, RecipeError};
pub use run::{IngestError, IngestOptions, IngestSummary, ingest};
pub use source::{Source, SourceFormat, Unit};
