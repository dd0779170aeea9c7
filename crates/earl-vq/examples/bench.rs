//! One-frame vs upstream-style encoding, plus decode, in the dev build:
//!
//! ```text
//! cargo run -p earl-vq --example bench -- --config emu3 --size 256 --batch 1
//! ```
//!
//! Random weights unless `--weights DIR` names a model folder (config.json + model.safetensors).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use earl_vq::{BenchSpec, VqConfig, VqModel};

#[derive(Parser)]
struct Args {
    /// Model shape for random weights: `tiny`, `emu3`, or a config.json path.
    #[arg(long, default_value = "tiny")]
    config: String,
    /// A model folder to load instead of random weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// fp32 or bf16.
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Comma-separated batch sizes.
    #[arg(long, default_value = "1", value_delimiter = ',')]
    batch: Vec<i64>,
    /// Square image side in pixels.
    #[arg(long, default_value_t = 256)]
    size: i64,
    #[arg(long, default_value_t = 1)]
    iters: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = earl_vq::parse_device(&args.device)?;
    let kind = earl_vq::parse_kind(&args.precision)?;
    let started = std::time::Instant::now();
    let model = match &args.weights {
        Some(dir) => VqModel::load(dir, device, kind)?,
        None => {
            let config = match VqConfig::builtin(&args.config) {
                Some(config) => config,
                None => VqConfig::from_file(args.config.as_ref()).with_context(|| {
                    format!("--config {}: not tiny, emu3 or a config.json", args.config)
                })?,
            };
            VqModel::random(&config, 0, device, kind)?
        }
    };
    println!(
        "model {} (ch {}, codebook {}) on {device:?} in {kind:?}, built in {:.1} s, {} threads",
        model.checkpoint_id(),
        model.config().ch,
        model.config().codebook_size,
        started.elapsed().as_secs_f64(),
        tch::get_num_threads(),
    );
    let spec = BenchSpec {
        batch_sizes: args.batch,
        height: args.size,
        width: args.size,
        iters: args.iters,
        warmup: args.warmup,
        seed: 0,
    };
    let rows = earl_vq::bench_encode(&model, &spec)?;
    print!("{}", earl_vq::format_table(&rows));
    Ok(())
}
