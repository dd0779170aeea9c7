//! `earl-data`: builds training data for text-guided image editing. Each subcommand parses its
//! options and calls the stage crate that does the work.

mod bench;
mod ingest_cmd;
mod inspect;
mod tokenize_cmd;
mod ui;
mod vlm_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "earl-data", version, about, long_about = None)]
#[command(
    after_help = "Logs go to stderr; set RUST_LOG=debug for more. Exit status 0 means success."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a source dataset by recipe into triplet.v1 shards (resumable).
    Ingest(ingest_cmd::IngestArgs),
    /// VQ-encode triplet.v1 shards into tokens.v1 shards (resumable, batched, CPU or CUDA).
    Tokenize(tokenize_cmd::TokenizeArgs),
    /// ingest -> tokenize in one command (omniedit without --source: the bundled sample).
    Build(tokenize_cmd::BuildArgs),
    /// Decode a token row back to pictures: source | target side by side, CoT box outlined.
    Render(tokenize_cmd::RenderArgs),
    /// Ask a VLM for a reasoning trace and the edit box of every triplet (resumable, cached).
    CotAnnotate(vlm_cmd::AnnotateArgs),
    /// Score edited images with VIEScore through a VLM; prints the mean per dataset.
    Score(vlm_cmd::ScoreArgs),
    /// Merge the per-rank outputs of a distributed run (<dir>/ranks/*) into one dataset.
    Finalize(inspect::FinalizeArgs),
    /// Counts per source and split, image size and aspect histograms, instruction lengths, rejects.
    Stats(inspect::StatsArgs),
    /// Run SQL over a dataset (the table is `data`).
    Query(inspect::QueryArgs),
    /// Check a dataset against its manifest: files, sizes, sha256, rows, schema, counts.
    Validate(inspect::ValidateArgs),
    /// Print a schema (triplet.v1, tokens.v1) as Markdown or Arrow.
    Schema(inspect::SchemaArgs),
    /// Decode an image and smart-resize it as the tokenizer will see it.
    Resize(inspect::ResizeArgs),
    /// Benchmarks: ingest throughput, decode+resize speed.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    // Behave like a Unix filter: `earl-data query … | head` ends quietly on a closed pipe.
    // SAFETY: restoring the default action of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    ui::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(a) => ingest_cmd::run(a),
        Command::Tokenize(a) => tokenize_cmd::tokenize(a),
        Command::Build(a) => tokenize_cmd::build(a),
        Command::Render(a) => tokenize_cmd::render(a),
        Command::CotAnnotate(a) => vlm_cmd::run_annotate(a),
        Command::Score(a) => vlm_cmd::run_score(a),
        Command::Finalize(a) => inspect::finalize(a),
        Command::Stats(a) => inspect::stats(a),
        Command::Query(a) => inspect::query(a),
        Command::Validate(a) => inspect::validate(a),
        Command::Schema(a) => inspect::schema(a),
        Command::Resize(a) => inspect::resize(a),
        Command::Bench(c) => bench::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
