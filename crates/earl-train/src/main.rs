//! `earl-train`: supervised fine-tuning of the Emu3 editor on token shards.
//!
//! ```text
//! earl-train --shards <dir>[,<dir>...] --config pipelines/sft-tiny.toml --out runs/tiny [--max-steps N]
//! ```
//! Rerunning the same command resumes from the newest checkpoint in `--out`. SIGINT/SIGTERM
//! finish the current step, write a checkpoint and exit; a second SIGINT exits at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Parser;
use earl_train::{TrainConfig, TrainOptions};

#[derive(Debug, Parser)]
#[command(
    name = "earl-train",
    version,
    about = "Fine-tune the Emu3 image editor (SFT)"
)]
struct Args {
    /// Token dataset directories (tokens.v1, as written by `earl-data tokenize`), comma-separated
    /// or repeated. Mixing coefficients in the config are keyed by directory name.
    #[arg(long, required = true, value_delimiter = ',')]
    shards: Vec<PathBuf>,
    /// Training configuration (see pipelines/sft-*.toml).
    #[arg(long)]
    config: PathBuf,
    /// Run directory: checkpoints/, metrics.jsonl, tb/. Reusing it resumes the run.
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many optimizer steps in total (counting resumed ones), with a checkpoint.
    #[arg(long)]
    max_steps: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = TrainConfig::load(&args.config)?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping exits immediately.
        signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handler")?;
    }

    let opts = TrainOptions {
        shards: args.shards,
        config,
        out: args.out,
        max_steps: args.max_steps,
    };
    let summary = earl_train::train(&opts, &stop)
        .with_context(|| format!("training into {}", opts.out.display()))?;
    let loss = summary.last_loss.map_or("-".into(), |l| format!("{l:.4}"));
    let ckpt = summary
        .checkpoint
        .as_ref()
        .map_or("-".into(), |p| p.display().to_string());
    let l = summary.loader;
    println!(
        "step {}/{}  last loss {loss}  checkpoint {ckpt}\nsamples {}  skipped: too long {}, \
         wrong image area {}, malformed {}; unreadable shards {}{}",
        summary.step,
        summary.total_steps,
        l.samples,
        l.too_long,
        l.wrong_area,
        l.bad_rows,
        l.corrupt_shards,
        if summary.stopped_by_signal {
            "\nstopped by signal"
        } else {
            ""
        }
    );
    Ok(())
}
